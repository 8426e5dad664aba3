/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A block's life: free (on the stack of free blocks) -> current (one
 * thread bumps allocations out of it; its count holds one more for that
 * thread) -> retired (its thread took another block or ended; the count is
 * its live allocations) -> free when the count reaches zero, on whichever
 * thread freed last. Counts are atomic, everything else is the owning
 * thread's or under g_mu (taken once per block, not per allocation).
 */
#include "jarena.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <cjson/cJSON.h>

/* Larger allocations (a long string) go to malloc: one of them would
 * leave most of a block unused. */
#define BIG (AH_JARENA_BLOCK / 16)
/* The header (the count) keeps a cache line of its own. */
#define HEAD 64
/* Released blocks kept with their pages; past these, their pages go back
 * to the kernel (a burst of large pages does not stay resident). */
#define WARM_MAX 4

typedef struct {
    _Atomic size_t refs;
} block;

static unsigned char *g_base; /* the region, AH_JARENA_BLOCK-aligned */
static size_t g_size;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static size_t *g_free; /* stack of released blocks' indices, under g_mu */
static size_t g_nfree, g_fresh, g_nblocks;
static _Atomic size_t g_in_use;
static pthread_key_t g_key;

static _Thread_local bool t_on;
static _Thread_local block *t_cur;
static _Thread_local size_t t_off;

static void release(block *b)
{
    size_t i = (size_t)((unsigned char *)b - g_base) / AH_JARENA_BLOCK;
    pthread_mutex_lock(&g_mu);
    if (g_nfree >= WARM_MAX)
        madvise(b, AH_JARENA_BLOCK, MADV_DONTNEED);
    g_free[g_nfree++] = i;
    pthread_mutex_unlock(&g_mu);
    atomic_fetch_sub_explicit(&g_in_use, 1, memory_order_relaxed);
}

/* Drops a count; the last one frees the block. acq_rel: every use of the
 * block's allocations, on any thread, happens before its reuse. */
static void unref(block *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        release(b);
}

/* The thread's block is retired: it ended, or took another. */
static void retire(void *b)
{
    if (b != NULL)
        unref(b);
}

static bool take_block(void)
{
    block *old = t_cur;
    if (old != NULL && atomic_load_explicit(&old->refs, memory_order_acquire) == 1) {
        /* Every allocation in it was freed (the usual case: a page's tree
         * deleted before the next page is parsed): it starts again, warm.
         * Only this thread adds to the count, so 1 stays 1. */
        t_off = HEAD;
        return true;
    }
    t_cur = NULL;
    retire(old);
    pthread_mutex_lock(&g_mu);
    block *b = NULL;
    if (g_nfree > 0)
        b = (block *)(g_base + g_free[--g_nfree] * AH_JARENA_BLOCK);
    else if (g_fresh < g_nblocks)
        b = (block *)(g_base + g_fresh++ * AH_JARENA_BLOCK);
    pthread_mutex_unlock(&g_mu);
    pthread_setspecific(g_key, b);
    if (b == NULL)
        return false;
    atomic_fetch_add_explicit(&g_in_use, 1, memory_order_relaxed);
    atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
    t_cur = b;
    t_off = HEAD;
    return true;
}

static void *jarena_malloc(size_t n)
{
    if (!t_on || n > BIG)
        return malloc(n);
    n = n == 0 ? 16 : (n + 15) & ~(size_t)15;
    if ((t_cur == NULL || t_off + n > AH_JARENA_BLOCK) && !take_block())
        return malloc(n);
    void *p = (unsigned char *)t_cur + t_off;
    t_off += n;
    atomic_fetch_add_explicit(&t_cur->refs, 1, memory_order_relaxed);
    return p;
}

/* The offset of p in the region, or g_size and more when p is not in it
 * (below the base, the difference wraps around). As integers: pointers
 * into different objects may not be subtracted. */
static inline uintptr_t region_off(const void *p)
{
    return (uintptr_t)p - (uintptr_t)g_base;
}

static void jarena_free(void *p)
{
    uintptr_t off = region_off(p);
    if (off < g_size)
        unref((block *)(g_base + (off & ~(uintptr_t)(AH_JARENA_BLOCK - 1))));
    else
        free(p);
}

bool ah_jarena_install(size_t region)
{
    if (g_base != NULL || region < AH_JARENA_BLOCK || region % AH_JARENA_BLOCK != 0)
        return false;
    /* Aligned by over-reserving one block and giving back the edges. */
    size_t span = region + AH_JARENA_BLOCK;
    unsigned char *m = mmap(NULL, span, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return false;
    uintptr_t a = ((uintptr_t)m + AH_JARENA_BLOCK - 1) & ~(uintptr_t)(AH_JARENA_BLOCK - 1);
    unsigned char *base = (unsigned char *)a;
    if (base > m)
        munmap(m, (size_t)(base - m));
    if (m + span > base + region)
        munmap(base + region, (size_t)(m + span - (base + region)));
    size_t n = region / AH_JARENA_BLOCK;
    g_free = malloc(n * sizeof *g_free);
    if (g_free == NULL || pthread_key_create(&g_key, retire) != 0) {
        free(g_free);
        g_free = NULL;
        munmap(base, region);
        return false;
    }
    g_nblocks = n;
    g_size = region;
    g_base = base;
    cJSON_Hooks hooks = {.malloc_fn = jarena_malloc, .free_fn = jarena_free};
    cJSON_InitHooks(&hooks);
    return true;
}

void ah_jarena_begin(void)
{
    t_on = g_base != NULL;
    /* A block whose trees are all gone starts again from its beginning. */
    if (t_cur != NULL && atomic_load_explicit(&t_cur->refs, memory_order_acquire) == 1)
        t_off = HEAD;
}

void ah_jarena_end(void)
{
    t_on = false;
}

bool ah_jarena_owns(const void *p)
{
    return g_base != NULL && region_off(p) < g_size;
}

size_t ah_jarena_blocks_in_use(void)
{
    return atomic_load_explicit(&g_in_use, memory_order_relaxed);
}
