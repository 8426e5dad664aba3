/* SPDX-License-Identifier: Apache-2.0 */
/* Secrets out of core dumps (harden.h). A crash of the daemon, of a plugin
 * process or of a CLI command would otherwise write every secret the
 * process held to a file the operator's tools keep, ship or attach to a
 * bug report. Both settings are needed: the kernel writes no core file for
 * a limit of 0, but a core_pattern that pipes to a program (systemd-coredump,
 * apport) is not bound by it; a process that is not dumpable gets no core
 * at all. ssh-agent and gpg-agent do the same for their keys. */
#include "harden.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

int ah_harden_no_dumps(char *err, size_t errlen)
{
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0) {
        snprintf(err, errlen, "cannot turn core dumps off (setrlimit RLIMIT_CORE): %s",
                 strerror(errno));
        return -1;
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        snprintf(err, errlen, "cannot turn core dumps off (prctl PR_SET_DUMPABLE): %s",
                 strerror(errno));
        return -1;
    }
    return 0;
}
