/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The INI file (core/base/config.c): the input is the whole file, loaded by
 * ah_config_load from a memory file (memfd, through /proc/self/fd/N), then
 * freed. Accepted or refused with a message, never a crash or a leak.
 */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("atshub-fuzz.ini", 0);
    if (fd < 0)
        abort();
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0)
            abort();
        off += (size_t)n;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ah_config cfg;
    memset(&cfg, 0, sizeof cfg);
    char err[512] = "";
    if (ah_config_load(path, &cfg, err, sizeof err) == 0)
        ah_config_free(&cfg);
    else if (err[0] == '\0')
        abort(); /* a refusal says why */
    close(fd);
    return 0;
}
