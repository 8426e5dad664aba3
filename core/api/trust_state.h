/* SPDX-License-Identifier: Apache-2.0 */
/* The state behind ah_trust (trust.h), shared by ratelimit.c, bulk.c and
 * trust_rest.c only. */
#ifndef AH_TRUST_STATE_H
#define AH_TRUST_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct ah_trust {
    pthread_mutex_t mu; /* guards the bulk worker's flags */

    pthread_cond_t bulk_cond; /* a job was queued, or stop */
    pthread_t bulk_thread;
    bool bulk_running;
    bool bulk_stopping;
    bool bulk_kick; /* a job was queued since the worker last looked */

    long last_prune_s; /* monotonic seconds of the last event-log prune */
};

#endif
