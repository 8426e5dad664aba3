/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ERecruit API 2.0 simulator (wire format: plugins/erecruit/WIRE.md; choices
 * where WIRE.md is silent: tests/sim/README-erecruit.md). It adds routes to an
 * ah_sim and keeps its data in the returned state: positions, contacts and
 * submissions generated deterministically from a seed, plus everything the
 * write endpoints change. Every function below is thread-safe: the sim's
 * server threads serve requests concurrently with the test thread.
 *
 * Kinds are named "position", "submission" and "contact" (plurals accepted).
 * Times are the provider's local time: UTC shifted by tz_offset_minutes,
 * written "YYYY-MM-DDTHH:MM:SS" with no offset.
 */
#ifndef AH_ERECRUIT_SIM_H
#define AH_ERECRUIT_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sim.h"

typedef struct ah_erecruit_sim ah_erecruit_sim;

typedef struct ah_erecruit_opts {
    uint64_t seed;                /* data generator seed */
    size_t positions, contacts, submissions; /* generated records (0: none) */
    int tz_offset_minutes;        /* provider zone; default +180 (see tz_set) */
    int tz_set;                   /* non-zero: tz_offset_minutes is meant even when 0 */
    int token_ttl_s;              /* default 3600 */
    const char *client_id;        /* default "atshub" */
    const char *client_secret;    /* default "s3cret" */
    int max_per_page;             /* default 500 */
    double rate_limit_rps;        /* > 0: token bucket on /api/v2, over-rate → 429 */
    time_t clock_utc;             /* non-zero: fixed sim clock from the start and the
                                     anchor of generated stamps (reproducible runs);
                                     0: real clock, stamps anchored at the current hour */
    size_t cursor_pad;            /* > 0: each next_cursor carries this many bytes more
                                     (ERecruit's cursors are opaque, of no set length) */
    long odd_updated_at_id;       /* > 0: in lists, the record(s) with this id carry an
                                     updated_at of 100 bytes (a broken provider's) */
    size_t page_excess;           /* > 0: each list page carries this many items more than
                                     its per_page asked for (the last item repeated) */
} ah_erecruit_opts;

/**
 * Generates the data and registers the routes (/t/token and /api/v2/...) on
 * sim, which must not be started yet. o may be NULL (100 of each kind, all
 * defaults). The caller keeps ownership of sim and frees the returned state
 * with ah_erecruit_sim_free after ah_sim_stop. Returns NULL on failure (out
 * of memory or route registration failed).
 */
ah_erecruit_sim *ah_erecruit_sim_attach(ah_sim *sim, const ah_erecruit_opts *o);

/** Frees the state; call after ah_sim_stop (no request may be in flight). NULL is fine. */
void ah_erecruit_sim_free(ah_erecruit_sim *e);

/**
 * For the atshub-sim command's provider table: attach with data_size records
 * of each kind. *state receives the ah_erecruit_sim (released with
 * ah_erecruit_sim_free_state). tz_offset_minutes is used as given (0 = UTC).
 * Returns 0 or -1.
 */
int ah_erecruit_sim_register(ah_sim *sim, uint64_t seed, size_t data_size, long token_ttl_s,
                             int tz_offset_minutes, void **state);
/** ah_erecruit_sim_free for a void * state (atshub-sim's free_state). */
void ah_erecruit_sim_free_state(void *state);

/**
 * Sets the sim's clock to utc (token expiry, write stamps, "now" of touch);
 * 0 returns to the real clock.
 */
void ah_erecruit_sim_now(ah_erecruit_sim *e, time_t utc);

/** The sim's current local time as "YYYY-MM-DDTHH:MM:SS" into buf (>= 20 bytes). */
void ah_erecruit_sim_local_now(ah_erecruit_sim *e, char *buf, size_t size);

/**
 * Sets updated_at of a record to local_time ("YYYY-MM-DDTHH:MM:SS"; NULL: now
 * in the sim's zone) and re-positions it in keyset order. Returns 0, or -1 for
 * an unknown kind, id or malformed time.
 */
int ah_erecruit_sim_touch(ah_erecruit_sim *e, const char *kind, long id, const char *local_time);

/** Removes a record: it leaves every list and GET answers 404. Returns 0 or -1. */
int ah_erecruit_sim_delete(ah_erecruit_sim *e, const char *kind, long id);

/**
 * Upserts a record from a JSON object in the wire format (borrowed). With an
 * "id" of an existing record, the given fields are changed; otherwise a record
 * is created (with that id, or the next free one). updated_at is taken from
 * the JSON when given, else now. Returns the record's id, or -1 on bad JSON,
 * unknown kind or invalid field.
 */
long ah_erecruit_sim_put(ah_erecruit_sim *e, const char *kind, const char *json);

/*
 * Getters: JSON text as the API would answer (malloc'd, caller frees), or NULL
 * when the record does not exist.
 *   _get:           the record (positions with custom_fields and hiring_team)
 *   _notes:         array of notes {id, body_html, action_id, created_at}
 *   _documents:     array of documents {id, filename, content_type, size, kind, created_at}
 *   _tags:          array of tag ids (contacts only)
 *   _custom_fields: object of custom field values
 */
char *ah_erecruit_sim_get(ah_erecruit_sim *e, const char *kind, long id);
char *ah_erecruit_sim_notes(ah_erecruit_sim *e, const char *kind, long id);
char *ah_erecruit_sim_documents(ah_erecruit_sim *e, const char *kind, long id);
char *ah_erecruit_sim_tags(ah_erecruit_sim *e, long contact_id);
char *ah_erecruit_sim_custom_fields(ah_erecruit_sim *e, const char *kind, long id);

/**
 * Ids of a kind in keyset order (updated_at, id) into a malloc'd array
 * (*out, caller frees); returns the count, or 0 with *out NULL.
 */
size_t ah_erecruit_sim_ids(ah_erecruit_sim *e, const char *kind, long **out);

/** Invalidates every issued token: the next API call with one gets 401 invalid_token. */
void ah_erecruit_sim_expire_tokens(ah_erecruit_sim *e);

typedef struct ah_erecruit_stats {
    unsigned long requests;       /* all requests that reached the provider */
    unsigned long tokens_issued;
    unsigned long invalid_client; /* 401 from /t/token */
    unsigned long invalid_token;  /* 401 from /api/v2 */
    unsigned long rate_limited;   /* 429 from the sim's own rate limit */
} ah_erecruit_stats;

/** Copies the counters. */
void ah_erecruit_sim_stats(ah_erecruit_sim *e, ah_erecruit_stats *out);

/**
 * Requests whose normalised path starts with path_prefix and whose method is
 * method (NULL: any). Paths are normalised by replacing numeric segments with
 * "{id}", e.g. "/api/v2/submissions/{id}/reject"; the query is not part of it.
 */
unsigned long ah_erecruit_sim_requests(ah_erecruit_sim *e, const char *method,
                                       const char *path_prefix);

/**
 * When submission `id` was last moved to a stage or rejected, as an ordinal
 * of those acts on every submission: 1 for the sim's first, 2 for the next,
 * ...; 0 when never (or there is no such submission). Tells the order in
 * which a client's writes reached the provider without reading a clock.
 */
unsigned long ah_erecruit_sim_acted(ah_erecruit_sim *e, long id);

#endif
