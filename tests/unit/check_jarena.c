/* SPDX-License-Identifier: Apache-2.0 */
/* cJSON's allocator in the plugin host process (core/plugin/jarena.c):
 * parsed trees in blocks, freed on any thread, blocks reused once empty. */
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jarena.h"

#define REGION_BLOCKS 16

/* An array of n objects, about 120 bytes of text each. */
static char *doc(int n)
{
    size_t cap = (size_t)n * 128 + 16, len = 0;
    char *t = malloc(cap);
    ck_assert_ptr_nonnull(t);
    t[len++] = '[';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(t + len, cap - len,
                                "%s{\"id\":%d,\"name\":\"candidate %d\",\"email\":\"c%d@example.org\","
                                "\"tags\":[\"a\",\"b\"],\"ok\":true}",
                                i ? "," : "", i, i, i);
    t[len++] = ']';
    t[len] = '\0';
    return t;
}

static cJSON *parse_in_arena(const char *text)
{
    ah_jarena_begin();
    cJSON *j = cJSON_Parse(text);
    ah_jarena_end();
    ck_assert_ptr_nonnull(j);
    return j;
}

/* Blocks in use with this thread's own block taken (it keeps one). */
static size_t settled(void)
{
    char *t = doc(1);
    cJSON_Delete(parse_in_arena(t));
    free(t);
    return ah_jarena_blocks_in_use();
}

/* Nodes, keys and strings of a tree parsed in the scope come from the
 * blocks; everything outside it from malloc, and the two mix in one tree:
 * cJSON's functions free either. */
START_TEST(test_parse_in_blocks)
{
    size_t base = settled();
    char *t = doc(500);
    cJSON *j = parse_in_arena(t);
    ck_assert_int_eq(cJSON_GetArraySize(j), 500);
    cJSON *o = cJSON_GetArrayItem(j, 321);
    cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    ck_assert_str_eq(name->valuestring, "candidate 321");
    ck_assert(ah_jarena_owns(j) && ah_jarena_owns(o) && ah_jarena_owns(name) &&
              ah_jarena_owns(name->string) && ah_jarena_owns(name->valuestring));
    /* Outside the scope: malloc's, and added to the parsed tree. */
    cJSON *extra = cJSON_CreateString("added later");
    ck_assert(!ah_jarena_owns(extra) && !ah_jarena_owns(extra->valuestring));
    ck_assert(cJSON_AddItemToObject(o, "note", extra));
    ck_assert(cJSON_SetValuestring(name, "a name longer than the one it replaces") != NULL);
    ck_assert(!ah_jarena_owns(name->valuestring));
    char *printed = cJSON_PrintUnformatted(o);
    ck_assert(!ah_jarena_owns(printed));
    ck_assert_ptr_nonnull(strstr(printed, "\"note\":\"added later\""));
    free(printed); /* what cJSON printed, free() takes as before */
    cJSON_Delete(j);
    ck_assert_uint_eq(ah_jarena_blocks_in_use(), base);
    free(t);
}
END_TEST

/* A large text (a string past a sixteenth of a block) is malloc's even in
 * the scope; so is everything when no block is left, and parsing goes on. */
START_TEST(test_big_and_exhausted)
{
    size_t base = settled();
    size_t n = AH_JARENA_BLOCK / 8;
    char *big = malloc(n + 3);
    big[0] = '"';
    memset(big + 1, 'x', n);
    big[n + 1] = '"';
    big[n + 2] = '\0';
    cJSON *s = parse_in_arena(big);
    ck_assert(ah_jarena_owns(s) && !ah_jarena_owns(s->valuestring));
    ck_assert_uint_eq(strlen(s->valuestring), n);
    cJSON_Delete(s);
    free(big);

    /* More than a block of tree each, until the region's blocks run out. */
    char *t = doc(2000);
    cJSON *kept[2 * REGION_BLOCKS];
    int n_kept = 0;
    bool spilled = false;
    while (!spilled && n_kept < 2 * REGION_BLOCKS) {
        cJSON *j = kept[n_kept++] = parse_in_arena(t);
        ck_assert_int_eq(cJSON_GetArraySize(j), 2000);
        cJSON *last = cJSON_GetArrayItem(j, 1999);
        ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(last, "id")->valueint, 1999);
        spilled = !ah_jarena_owns(last); /* malloc's: no block was free */
    }
    ck_assert(spilled);
    ck_assert_uint_eq(ah_jarena_blocks_in_use(), REGION_BLOCKS);
    for (int i = 0; i < n_kept; i++)
        cJSON_Delete(kept[i]);
    ck_assert_uint_le(ah_jarena_blocks_in_use(), base);
    cJSON *again = parse_in_arena(t);
    ck_assert(ah_jarena_owns(again));
    cJSON_Delete(again);
    free(t);
}
END_TEST

/* A node detached and kept keeps its block; the block is reused once it
 * goes too. */
START_TEST(test_detached_node_keeps_block)
{
    size_t base = settled();
    char *t = doc(4000); /* a few blocks */
    cJSON *j = parse_in_arena(t);
    cJSON *first = cJSON_DetachItemFromArray(j, 0);
    cJSON_Delete(j);
    /* The first node's block is retired (the thread went on to another)
     * and held by the node alone. */
    ck_assert_uint_eq(ah_jarena_blocks_in_use(), base + 1);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(first, "email")->valuestring,
                     "c0@example.org");
    /* A small tree kept in the thread's current block is not written over
     * by the next parse, which starts a block again only when it is empty. */
    cJSON *small = parse_in_arena("{\"keep\":\"me\"}");
    char *more = doc(50);
    cJSON *next = parse_in_arena(more);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(small, "keep")->valuestring, "me");
    cJSON_Delete(next);
    cJSON_Delete(small);
    free(more);
    cJSON_Delete(first);
    ck_assert_uint_eq(ah_jarena_blocks_in_use(), base);
    free(t);
}
END_TEST

typedef struct {
    const char *text;
    cJSON *trees[16];
} parse_job;

static void *parse_many(void *arg)
{
    parse_job *p = arg;
    for (int i = 0; i < 16; i++)
        p->trees[i] = parse_in_arena(p->text);
    return NULL;
}

static void *delete_many(void *arg)
{
    parse_job *p = arg;
    for (int i = 0; i < 16; i++)
        cJSON_Delete(p->trees[i]);
    return NULL;
}

/* Trees parsed on threads that then end, deleted on others at once: every
 * block comes back (an ended thread's block is retired with it). */
START_TEST(test_threads)
{
    size_t base = settled();
    char *t = doc(100); /* ~80 KiB of tree: several to a block */
    parse_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].text = t;
        ck_assert_int_eq(pthread_create(&th[i], NULL, parse_many, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ck_assert_uint_gt(ah_jarena_blocks_in_use(), base);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(cJSON_GetArraySize(jobs[i].trees[15]), 100);
    /* Each thread deletes another's trees. */
    for (int i = 0; i < 4; i++) {
        parse_job *other = &jobs[(i + 1) % 4];
        ck_assert_int_eq(pthread_create(&th[i], NULL, delete_many, other), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ck_assert_uint_eq(ah_jarena_blocks_in_use(), base);
    free(t);
}
END_TEST

int main(void)
{
    /* Once for the process: the tests run in it one after another. */
    if (!ah_jarena_install((size_t)REGION_BLOCKS * AH_JARENA_BLOCK)) {
        fprintf(stderr, "cannot reserve the arena's region\n");
        return 1;
    }
    Suite *s = suite_create("jarena");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_parse_in_blocks);
    tcase_add_test(tc, test_big_and_exhausted);
    tcase_add_test(tc, test_detached_node_keeps_block);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
