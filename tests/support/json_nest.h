/* SPDX-License-Identifier: Apache-2.0 */
/* JSON text nested to a given depth, for the suites that test the host's
 * depth limit (check_json, check_httpd). Header-only: check_json links
 * nothing of the test harness. */
#ifndef AH_T_JSON_NEST_H
#define AH_T_JSON_NEST_H

#include <stdlib.h>

/** "[[...]]" with `depth` arrays, malloc'd (abort()s without memory). */
static inline char *ah_t_nested(int depth)
{
    char *s = malloc((size_t)depth * 2 + 1);
    if (s == NULL)
        abort();
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth * 2 - 1 - i] = ']';
    }
    s[depth * 2] = '\0';
    return s;
}

#endif
