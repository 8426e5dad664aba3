/* SPDX-License-Identifier: Apache-2.0 */
/* Keeping a process's secrets out of core dumps (harden.c). */
#ifndef AH_HARDEN_H
#define AH_HARDEN_H

#include <stddef.h>

/** Keeps this process's memory (the tenants' API keys, the connections'
 *  tokens and secrets, the host key) out of core dumps: no core file
 *  (RLIMIT_CORE 0, soft and hard, so that no child raises it again) and
 *  not dumpable (PR_SET_DUMPABLE 0: no core through a core_pattern pipe
 *  either, and no ptrace or /proc/PID/mem by other processes of the same
 *  user). Process-wide; an execve makes a process dumpable again, so each
 *  program calls it at its start, before it reads a secret. 0, or -1 with
 *  err set. */
int ah_harden_no_dumps(char *err, size_t errlen);

#endif
