/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cJSON's allocator in the plugin host process (plugin_host.c): the trees a
 * plugin's json_parse builds from a large text (a provider's page) are
 * carved from 1 MiB blocks instead of taking a malloc and a free per node,
 * key and string. A first sync's plugin process spent about a fifth of its
 * instructions in malloc and free for them (bench/README.md).
 *
 * Nothing changes for the code that holds such a tree: it is read, changed,
 * detached from and deleted with cJSON's functions as any other, on any
 * thread, at any time. A block is reused once every allocation in it was
 * freed and its thread moved on to another, so a node kept from a page keeps
 * that page's block (up to 1 MiB) alive. What is not allowed is what cJSON
 * never allowed either: freeing a tree's key or string with free() instead
 * of cJSON's deallocator (cJSON_Delete, cJSON_free).
 *
 * Every other cJSON allocation of the process (and every one outside
 * ah_jarena_begin/end) goes to malloc as before: the hooks tell the two
 * apart by address (the blocks lie in one region reserved at install).
 */
#ifndef AH_JARENA_H
#define AH_JARENA_H

#include <stdbool.h>
#include <stddef.h>

/** Blocks the arena's allocations come from. */
#define AH_JARENA_BLOCK ((size_t)1 << 20)

/** Reserves `region` bytes of address space (a multiple of AH_JARENA_BLOCK,
 *  at least one block; the pages are used only as trees need them) and
 *  installs the arena's functions as cJSON's hooks. Once per process, before
 *  any cJSON allocation that could outlive it and before other threads use
 *  cJSON. false (and cJSON left as it was) when the region cannot be had. */
bool ah_jarena_install(size_t region);

/** From now until ah_jarena_end, this thread's cJSON allocations come from
 *  its current block (one larger than a sixteenth of a block from malloc;
 *  when no block is free, from malloc). Not nested. */
void ah_jarena_begin(void);
void ah_jarena_end(void);

/** Whether `p` lies in the arena's region (tests). */
bool ah_jarena_owns(const void *p);

/** Blocks in use: a thread's current block, and retired blocks with
 *  allocations left in them (tests; an ended thread's block is retired). */
size_t ah_jarena_blocks_in_use(void);

#endif
