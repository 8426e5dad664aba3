/* SPDX-License-Identifier: Apache-2.0 */
/* The state behind ah_trust (trust.h), shared by ratelimit.c, bulk.c and
 * trust_rest.c only. */
#ifndef AH_TRUST_STATE_H
#define AH_TRUST_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct ah_bucket {
    int64_t conn_id;
    double rate;          /* current tokens per second (after penalties) */
    double factor;        /* 1, halved per 429 */
    double penalty_until; /* monotonic seconds */
    double tokens;        /* balance; negative: reserved by waiters */
    double last;          /* monotonic seconds of the last refill */
} ah_bucket;

struct ah_trust {
    pthread_mutex_t mu; /* guards the buckets and the bulk worker's flags */
    ah_bucket *buckets;
    size_t nbuckets, capbuckets;

    pthread_cond_t bulk_cond; /* a job was queued or finished, or stop */
    pthread_t bulk_thread;
    bool bulk_running;
    bool bulk_stopping;
    bool bulk_kick;          /* a job was queued since the worker last looked */
    unsigned long bulk_done; /* jobs finished so far (what ah_bulk_wait watches) */

    long last_prune_s; /* monotonic seconds of the last event-log prune */
};

#endif
