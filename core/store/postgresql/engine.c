/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PostgreSQL engine of the store: its lifecycle, scopes, the vtable and
 * the opener. The operations live in the other files of this folder, one
 * per group of tables (as in core/store/sqlite/); pg_int.h is what they
 * share.
 *
 * Concurrency: one libpq connection writes, guarded by one recursive mutex
 * in the store struct, exactly like the SQLite engine's writer. Every
 * operation holds the mutex for its whole duration, so prepared statements
 * and the connection's state are never shared between threads; a scope
 * (scope_begin .. scope_end) holds it across its operations, which run in
 * the scope's transaction as savepoints. The reads a client waits on (a
 * record, a query, the event and integration logs, a bulk job, webhooks)
 * go to up to AH_PG_READERS reader sessions of their own
 * (ah_pg_read_lock), as in the SQLite engine: they see what is committed,
 * which is everything a client has been answered for, and a thread that
 * wrote something not yet committed reads through the writer. Callbacks
 * of the *_list and *_query operations run AFTER the mutex is released, on
 * copies of the rows, so a callback may call the store again.
 *
 * Secrets: the URL may carry a password (libpq also reads PGPASSWORD and
 * PGPASSFILE). It is kept only to connect; every message names the server
 * by the URL with the password replaced (ah_store_url_scrub), and libpq's
 * own messages never contain it (they are scrubbed of it all the same).
 */
#include "clock.h"
#include "pg_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const q_sql[P_COUNT] = {
    [P_PING] = "SELECT 1",
    /* The newest change (schema.c v6): every instance's own changes
     * count too (a pooler leaves no way to tell them apart), which only
     * costs it a reload. */
    [P_DATA_VERSION] = "SELECT coalesce(max(id), 0)::bigint FROM change_log",
    /* A tenant's lock for an open group (ah_pg_group_begin): the one that
     * orders the tenant's events (outbox.c), not waited for. */
    [P_TENANT_TRY] = "SELECT pg_try_advisory_xact_lock(" AH_PG_TENANT_LOCK_CLASS ", "
                     "($1::bigint % 2147483647)::integer)",
};

/* Readers: sessions for the reads a client waits on (pg_int.h). */
#define AH_PG_READERS 2

/* What the calling thread has written and not committed: inside a scope of
 * that store (it holds the store's lock), or in a group transaction that
 * had not ended when its scope ended. Its reads go to the writer then. */
static _Thread_local const ah_pg_store *tl_scope_store;
static _Thread_local const ah_pg_store *tl_group_store;
static _Thread_local uint64_t tl_group_id;
static _Thread_local unsigned tl_reader_hint;

void ah_pg_note_scope(ah_pg_store *s, bool begun, bool in_group)
{
    if (begun) {
        tl_scope_store = s;
        if (in_group) {
            tl_group_store = s;
            tl_group_id = s->group_id;
        }
    } else if (tl_scope_store == s) {
        tl_scope_store = NULL;
    }
}

void ah_pg_note_group_ended(ah_pg_store *s)
{
    atomic_store_explicit(&s->group_ended_id, s->group_id, memory_order_release);
}

static bool own_writes_pending(const ah_pg_store *s)
{
    return tl_scope_store == s ||
           (tl_group_store == s &&
            atomic_load_explicit(&s->group_ended_id, memory_order_acquire) < tl_group_id);
}

static bool connect_session(ah_pg_store *s, char *err, size_t errlen);

/* A reader that could not connect tries again after this long; meanwhile
 * the writer serves its reads. */
#define AH_PG_READER_RETRY_MS 5000

/* A reader's session, made on its first use (r->mu held). */
static bool reader_ready(ah_pg_store *r)
{
    if (r->db != NULL)
        return true;
    int64_t now = ah_mono_ms();
    if (r->reader_retry_ms != 0 && now < r->reader_retry_ms)
        return false;
    char err[640];
    if (connect_session(r, err, sizeof err)) {
        if (r->reader_retry_ms != 0)
            ah_log(r->base.lg, AH_LOG_INFO, "store", "postgresql: reader session back");
        r->reader_retry_ms = 0;
        return true;
    }
    PQfinish(r->db);
    r->db = NULL;
    if (r->reader_retry_ms == 0) /* said once, not at every retry */
        ah_log(r->base.lg, AH_LOG_WARN, "store",
               "postgresql: no reader session (%s): the writer serves the reads meanwhile", err);
    r->reader_retry_ms = now + AH_PG_READER_RETRY_MS;
    return false;
}

ah_pg_store *ah_pg_read_lock(ah_pg_store *s)
{
    if (s->nreaders > 0 && !own_writes_pending(s)) {
        if (tl_reader_hint == 0)
            tl_reader_hint = (unsigned)((uintptr_t)&tl_reader_hint >> 6) | 1u;
        ah_pg_store *r = NULL;
        for (int i = 0; i < s->nreaders && r == NULL; i++) {
            ah_pg_store *c = s->readers[(tl_reader_hint + (unsigned)i) % (unsigned)s->nreaders];
            if (pthread_mutex_trylock(&c->mu) == 0)
                r = c;
        }
        if (r == NULL) {
            r = s->readers[tl_reader_hint % (unsigned)s->nreaders];
            pthread_mutex_lock(&r->mu);
        }
        if (reader_ready(r))
            return r;
        pthread_mutex_unlock(&r->mu);
    }
    ah_pg_lock(s);
    return s;
}

void ah_pg_read_unlock(ah_pg_store *r)
{
    if (r->writer != NULL)
        pthread_mutex_unlock(&r->mu);
    else
        ah_pg_unlock(r);
}

static void free_store(ah_pg_store *s)
{
    PQfinish(s->db);
    pthread_mutex_destroy(&s->mu);
    if (s->conninfo != NULL)
        explicit_bzero(s->conninfo, strlen(s->conninfo));
    free(s->conninfo);
    free(s->safe_url);
    free(s->scratch);
    free(s);
}

void ah_pg_readers_close(ah_pg_store *s)
{
    for (int i = 0; i < s->nreaders; i++)
        free_store(s->readers[i]);
    free(s->readers);
    s->readers = NULL;
    s->nreaders = 0;
}

static bool init_mutex(pthread_mutex_t *mu)
{
    pthread_mutexattr_t ma;
    bool ok = pthread_mutexattr_init(&ma) == 0 &&
              pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE) == 0 &&
              pthread_mutex_init(mu, &ma) == 0;
    pthread_mutexattr_destroy(&ma);
    return ok;
}

bool ah_pg_readers_make(ah_pg_store *s)
{
    s->readers = calloc(AH_PG_READERS, sizeof *s->readers);
    if (s->readers == NULL)
        return false;
    for (int i = 0; i < AH_PG_READERS; i++) {
        ah_pg_store *r = calloc(1, sizeof *r);
        if (r == NULL)
            break;
        r->base.ops = &ah_pg_ops;
        r->base.lg = s->base.lg;
        r->fail_after = -1;
        r->writer = s;
        r->conninfo = strdup(s->conninfo);
        r->safe_url = strdup(s->safe_url);
        if (r->conninfo == NULL || r->safe_url == NULL || !init_mutex(&r->mu)) {
            if (r->conninfo != NULL)
                explicit_bzero(r->conninfo, strlen(r->conninfo));
            free(r->conninfo);
            free(r->safe_url);
            free(r);
            break;
        }
        s->readers[s->nreaders++] = r;
    }
    return s->nreaders > 0;
}

void ah_pg_close(ah_store *st)
{
    if (st == NULL)
        return;
    ah_pg_store *s = ah_pg(st);
    ah_pg_readers_close(s);
    pthread_mutex_lock(&s->mu);
    (void)ah_pg_group_end_locked(s, true);
    pthread_mutex_unlock(&s->mu);
    free_store(s);
}

int ah_pg_ping(ah_store *st)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_lock(s);
    int rc = AH_PG_EXEC(s, P_PING, NULL, "ping", NULL);
    ah_pg_unlock(s);
    return rc;
}

/* The changes other sessions made to tenants and connections, counted by a
 * trigger per writing session (schema.c): this connection's own writes do
 * not change it. A reconnect may change it once (a new backend). */
int64_t ah_pg_data_version(ah_store *st)
{
    ah_pg_store *s = ah_pg(st);
    int64_t v = -1;
    int rc;
    ah_pg_lock(s);
    PGresult *r = AH_PG_RUN(s, P_DATA_VERSION, NULL, "data_version", &rc);
    if (r != NULL) {
        if (PQntuples(r) == 1)
            v = ah_pg_int(r, 0, 0);
        PQclear(r);
    }
    ah_pg_unlock(s);
    return v;
}

int ah_pg_scope_begin(ah_store *st)
{
    ah_pg_store *s = ah_pg(st);
    ah_pg_lock(s);
    if (s->scope_depth == 0) {
        /* Sent with the scope's first statement (one round trip); should
         * it fail, so does that statement, and the scope's COMMIT. */
        ah_pg_defer(s, "BEGIN");
        s->in_tx = true;
        ah_pg_note_scope(s, true, false);
    } else {
        /* A scope inside another: a savepoint of its transaction, which
         * its scope_end releases or rolls back to (sent with the next
         * statement, as the BEGIN is). */
        ah_pg_defer(s, "SAVEPOINT ah_scope");
    }
    s->scope_depth++;
    return AH_STORE_OK;
}

int ah_pg_scope_end(ah_store *st, bool commit)
{
    ah_pg_store *s = ah_pg(st);
    int rc = AH_STORE_OK;
    if (s->scope_depth <= 0)
        return AH_STORE_ERR;
    if (s->scope_depth > 1) {
        /* A nested scope: its savepoint's writes stay in the enclosing
         * scope, or leave it (sent with the next statement or COMMIT:
         * should they fail, so does that, and the transaction). */
        if (!commit)
            ah_pg_defer(s, "ROLLBACK TO SAVEPOINT ah_scope");
        ah_pg_defer(s, "RELEASE SAVEPOINT ah_scope");
        s->scope_depth--;
        ah_pg_unlock(s);
        return rc;
    }
    ah_pg_note_scope(s, false, false);
    if (--s->scope_depth == 0 && s->group_scope) {
        /* The scope's writes stay in the group transaction, or leave it. */
        s->group_scope = false;
        /* Sent with the next request's first statement or the group's
         * COMMIT (one round trip): should it fail, so does the COMMIT. */
        if (!commit)
            ah_pg_defer(s, "ROLLBACK TO ah_grp");
        ah_pg_defer(s, "RELEASE ah_grp");
    } else if (s->scope_depth == 0) {
        rc = ah_pg_scope_commit(s, commit);
    }
    ah_pg_unlock(s);
    return rc;
}

int ah_pg_group_end_locked(ah_pg_store *s, bool commit)
{
    if (!s->group_open)
        return AH_STORE_OK;
    s->group_open = false;
    s->ngroup_tenants = 0;
    int rc = ah_pg_scope_commit(s, commit);
    ah_pg_note_group_ended(s);
    if (!commit)
        rc = AH_STORE_ERR;
    if (s->group_ended != NULL)
        s->group_ended(s->group_arg, s->group_id, rc == AH_STORE_OK);
    return rc;
}

static bool group_holds(const ah_pg_store *s, int64_t tenant)
{
    for (int i = 0; i < s->ngroup_tenants; i++)
        if (s->group_tenants[i] == tenant)
            return true;
    return false;
}

static void group_note_tenant(ah_pg_store *s, int64_t tenant)
{
    if (s->ngroup_tenants < AH_PG_GROUP_TENANTS)
        s->group_tenants[s->ngroup_tenants++] = tenant;
}

/* The open group takes the lock of `tenant` without waiting: 1 taken (or
 * held), 0 another session holds it, -1 the group's transaction failed
 * (a statement queued ahead of this one, the connection). */
static int group_try_tenant(ah_pg_store *s, int64_t tenant)
{
    ah_pg_params p = {0};
    ah_pg_p_int(&p, tenant);
    int rc;
    PGresult *r = AH_PG_RUN(s, P_TENANT_TRY, &p, "group tenant lock", &rc);
    int got = -1;
    if (r != NULL && PQntuples(r) == 1)
        got = ah_pg_bool(r, 0, 0) ? 1 : 0;
    PQclear(r);
    return got;
}

int ah_pg_group_begin(ah_store *st, int64_t tenant_id, uint64_t *group_out)
{
    ah_pg_store *s = ah_pg(st);
    pthread_mutex_lock(&s->mu); /* not ah_pg_lock: that would commit the group */
    if (s->scope_depth > 0) {
        pthread_mutex_unlock(&s->mu);
        return AH_STORE_ERR;
    }
    /* Several instances write the same tenants: a group that waited for a
     * tenant's rows (its job-number sequence, its events' lock) while
     * holding another's could wait on a group of another instance waiting
     * for it, and only the server's deadlock check (a second, then the
     * whole group failed) would end it; under load nearly every group did
     * (docs/scaling.md, "Several instances serving the same tenants"). So
     * a group takes a tenant's lock before its first scope of the tenant
     * writes, and waits only while it holds nothing: an open group asks
     * without waiting, and when another session holds the tenant it
     * commits what it has (its scopes' answers go out) and this scope
     * begins the next group, which waits for the lock before anything
     * else. Every later row of the tenant is then uncontended across
     * instances. */
    if (tenant_id > 0 && s->group_open && !group_holds(s, tenant_id)) {
        int got = group_try_tenant(s, tenant_id);
        if (got == 1)
            group_note_tenant(s, tenant_id);
        else /* busy; or failed, which the group's COMMIT reports */
            (void)ah_pg_group_end_locked(s, true);
    }
    /* BEGIN and the savepoint go with the first statement (one round
     * trip); a failure of either fails it, and the group's COMMIT. */
    if (!s->group_open) {
        ah_pg_defer(s, "BEGIN");
        s->in_tx = true;
        s->group_open = true;
        s->group_id++;
        s->ngroup_tenants = 0;
        if (tenant_id > 0) {
            snprintf(s->group_lock_sql, sizeof s->group_lock_sql,
                     "SELECT pg_advisory_xact_lock(" AH_PG_TENANT_LOCK_CLASS ", %d)",
                     (int)(tenant_id % 2147483647));
            ah_pg_defer(s, s->group_lock_sql);
            group_note_tenant(s, tenant_id);
        }
    }
    ah_pg_defer(s, "SAVEPOINT ah_grp");
    s->group_scope = true;
    s->scope_depth = 1;
    ah_pg_note_scope(s, true, true);
    if (group_out != NULL)
        *group_out = s->group_id;
    return AH_STORE_OK; /* mu stays held until scope_end */
}

int ah_pg_group_commit(ah_store *st)
{
    ah_pg_store *s = ah_pg(st);
    pthread_mutex_lock(&s->mu);
    int rc = s->scope_depth > 0 ? AH_STORE_ERR : ah_pg_group_end_locked(s, true);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void ah_pg_group_listen(ah_store *st, void (*ended)(void *arg, uint64_t group, bool ok), void *arg)
{
    ah_pg_store *s = ah_pg(st);
    pthread_mutex_lock(&s->mu);
    s->group_ended = ended;
    s->group_arg = arg;
    pthread_mutex_unlock(&s->mu);
}

/* The committer's longest wait for a group to grow (committer.c: 1 ms by
 * default): measured in docs/scaling.md. */
#define AH_PG_GROUP_WAIT_US 5000L

const ah_store_ops ah_pg_ops = {
    .name = "postgresql",
    /* A COMMIT is a round trip and the server's fsync, the store's lock
     * held: larger groups than SQLite's (docs/scaling.md). */
    .group_max_wait_us = AH_PG_GROUP_WAIT_US,
    .close = ah_pg_close,
    .migrate = ah_pg_migrate,
    .schema_version = ah_pg_schema_version,
    .ping = ah_pg_ping,
    .data_version = ah_pg_data_version,
    .tenant_add = ah_pg_tenant_add,
    .tenant_get = ah_pg_tenant_get,
    .tenant_by_key_hash = ah_pg_tenant_by_key_hash,
    .tenant_list = ah_pg_tenant_list,
    .tenant_remove = ah_pg_tenant_remove,
    .connection_add = ah_pg_connection_add,
    .connection_get = ah_pg_connection_get,
    .connection_list = ah_pg_connection_list,
    .connection_update = ah_pg_connection_update,
    .connection_set_enabled = ah_pg_connection_set_enabled,
    .connection_remove = ah_pg_connection_remove,
    .records_upsert = ah_pg_records_upsert,
    .record_get = ah_pg_record_get,
    .record_get_by_id = ah_pg_record_get_by_id,
    .record_query = ah_pg_record_query,
    .record_count = ah_pg_record_count,
    .cursor_get = ah_pg_cursor_get,
    .cursor_set = ah_pg_cursor_set,
    .sequence_next = ah_pg_sequence_next,
    .sequence_next_then = ah_pg_sequence_next_then,
    .sequence_next_then_put = ah_pg_sequence_next_then_put,
    .outbox_add = ah_pg_outbox_add,
    .outbox_pending = ah_pg_outbox_pending,
    .outbox_done = ah_pg_outbox_done,
    .log_add = ah_pg_log_add,
    .log_query = ah_pg_log_query,
    .outbox_add_batch = ah_pg_outbox_add_batch,
    .delivery_next = ah_pg_delivery_next,
    .delivery_done = ah_pg_delivery_done,
    .delivery_retry = ah_pg_delivery_retry,
    .delivery_due = ah_pg_delivery_due,
    .scope_begin = ah_pg_scope_begin,
    .scope_end = ah_pg_scope_end,
    .group_begin = ah_pg_group_begin,
    .group_commit = ah_pg_group_commit,
    .group_listen = ah_pg_group_listen,
    .outbox_after = ah_pg_outbox_after,
    .outbox_prune = ah_pg_outbox_prune,
    .webhook_add = ah_pg_webhook_add,
    .webhook_list = ah_pg_webhook_list,
    .webhook_set_enabled = ah_pg_webhook_set_enabled,
    .webhook_deliveries = ah_pg_webhook_deliveries,
    .webhook_due = ah_pg_webhook_due,
    .webhook_attempt = ah_pg_webhook_attempt,
    .webhook_advance = ah_pg_webhook_advance,
    .webhook_failed = ah_pg_webhook_failed,
    .idem_reserve = ah_pg_idem_reserve,
    .idem_complete = ah_pg_idem_complete,
    .idem_release = ah_pg_idem_release,
    .bulk_add = ah_pg_bulk_add,
    .bulk_get = ah_pg_bulk_get,
    .bulk_next = ah_pg_bulk_next,
    .bulk_set_status = ah_pg_bulk_set_status,
    .bulk_items = ah_pg_bulk_items,
    .bulk_item_prior = ah_pg_bulk_item_prior,
    .bulk_item_set = ah_pg_bulk_item_set,
    .record_marks = ah_pg_record_marks,
    .record_mark_deleted = ah_pg_record_mark_deleted,
    .record_is_deleted = ah_pg_record_is_deleted,
    .stage_add = ah_pg_stage_add,
    .stage_changed_since = ah_pg_stage_changed_since,
    .stage_history = ah_pg_stage_history,
    .log_prune = ah_pg_log_prune,
    .idem_prune = ah_pg_idem_prune,
    .idem_reopen = ah_pg_idem_reopen,
    .idem_complete_op = ah_pg_idem_complete_op,
    .bulk_item_set_op = ah_pg_bulk_item_set_op,
    .record_prune = ah_pg_record_prune,
    .bulk_item_settle = ah_pg_bulk_item_settle,
    .webhook_due_one = ah_pg_webhook_due_one,
    .webhook_prune = ah_pg_webhook_prune,
    .webhook_update = ah_pg_webhook_update,
    .webhook_delete = ah_pg_webhook_delete,
    .webhook_rotate = ah_pg_webhook_rotate,
    .lease_acquire = ah_pg_lease_acquire,
    .lease_hold = ah_pg_lease_hold,
    .lease_release = ah_pg_lease_release,
    .lease_take_over = ah_pg_lease_take_over,
    .lease_claim = ah_pg_lease_claim,
    .change_add = ah_pg_change_add,
    .change_after = ah_pg_change_after,
    .change_last = ah_pg_change_last,
    .change_prune = ah_pg_change_prune,
    .instance_beat = ah_pg_instance_beat,
    .instance_list = ah_pg_instance_list,
    .instance_remove = ah_pg_instance_remove,
    .lease_list = ah_pg_lease_list,
    .lease_prune = ah_pg_lease_prune,
    .bulk_item_get = ah_pg_bulk_item_get,
    .bulk_next_after = ah_pg_bulk_next_after,
    .bulk_items_queued_from = ah_pg_bulk_items_queued_from,
    .bulk_queued_count = ah_pg_bulk_queued_count,
    .bulk_prune = ah_pg_bulk_prune,
};

/* NOTICEs (e.g. "relation already exists, skipping") are not errors. */
static void quiet_notice(void *arg, const char *message)
{
}

/* Copies libpq's message into err with the connection's password (if any)
 * replaced and trailing newlines cut. */
static void conn_error(PGconn *c, const char *safe_url, char *err, size_t errlen)
{
    char msg[512];
    const char *text = c != NULL ? PQerrorMessage(c) : "out of memory";
    const char *pw = c != NULL ? PQpass(c) : NULL;
    size_t pl = pw != NULL ? strlen(pw) : 0, o = 0;
    /* Copied once, each occurrence of the password written as "***" (in
     * place, a password shorter than that grew the message past msg, and
     * one of asterisks was found again forever). */
    while (*text != '\0' && o + 1 < sizeof msg) {
        if (pl > 0 && strncmp(text, pw, pl) == 0) {
            for (const char *m = "***"; *m != '\0' && o + 1 < sizeof msg; m++)
                msg[o++] = *m;
            text += pl;
        } else {
            msg[o++] = *text++;
        }
    }
    msg[o] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == ' ')
        msg[--n] = '\0';
    snprintf(err, errlen, "cannot connect to PostgreSQL %s: %s", safe_url, msg);
}

/* Connects s's session (s->conninfo): AH_PG_SESSION_SETUP, quiet notices. false with err
 * set (the password never in it). */
static bool connect_session(ah_pg_store *s, char *err, size_t errlen)
{
    s->db = ah_pg_connect(s->conninfo);
    if (s->db == NULL || PQstatus(s->db) != CONNECTION_OK) {
        conn_error(s->db, s->safe_url, err, errlen);
        return false;
    }
    PQsetNoticeProcessor(s->db, quiet_notice, NULL);
    PGresult *r = PQexec(s->db, AH_PG_SESSION_SETUP);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK; /* the last statement's */
    PQclear(r);
    if (!ok)
        conn_error(s->db, s->safe_url, err, errlen);
    return ok;
}

ah_store *ah_store_pg_open(const char *url, const struct ah_logger *lg, char *err, size_t errlen)
{
    char dummy[1];
    if (err == NULL) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (url == NULL || *url == '\0') {
        snprintf(err, errlen, "no PostgreSQL URL given");
        return NULL;
    }
    ah_pg_store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &ah_pg_ops;
    s->base.lg = lg;
    s->fail_after = -1;
    s->conninfo = strdup(url);
    size_t sl = strlen(url) + 8;
    s->safe_url = malloc(sl);
    if (s->conninfo == NULL || s->safe_url == NULL) {
        snprintf(err, errlen, "out of memory");
        free(s->conninfo);
        free(s->safe_url);
        free(s);
        return NULL;
    }
    ah_store_url_scrub(url, s->safe_url, sl);
    if (!init_mutex(&s->mu)) {
        snprintf(err, errlen, "cannot create a mutex");
        explicit_bzero(s->conninfo, strlen(s->conninfo));
        free(s->conninfo);
        free(s->safe_url);
        free(s);
        return NULL;
    }
    if (!connect_session(s, err, errlen)) {
        ah_pg_close(&s->base);
        return NULL;
    }
    (void)ah_pg_readers_make(s); /* none: the writer serves the reads */
    return &s->base;
}

void ah_store_pg_fail_after(ah_store *st, int n)
{
    if (st == NULL || st->ops != &ah_pg_ops)
        return;
    ah_pg_store *s = ah_pg(st);
    ah_pg_lock(s);
    s->fail_after = n < 0 ? -1 : n;
    ah_pg_unlock(s);
}

int64_t ah_store_pg_round_trips(ah_store *st)
{
    if (st == NULL || st->ops != &ah_pg_ops)
        return -1;
    ah_pg_store *s = ah_pg(st);
    ah_pg_lock(s);
    int64_t n = s->round_trips;
    ah_pg_unlock(s);
    return n;
}

/* ---- test hooks: throwaway databases ---------------------------------- */

static bool valid_db_name(const char *name)
{
    if (name == NULL || *name == '\0' || strlen(name) > 60)
        return false;
    for (const char *p = name; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
            return false;
    return !isdigit((unsigned char)name[0]);
}

/* server_url with its database replaced by name (query kept). */
static int url_with_db(const char *server_url, const char *name, char *out, size_t n)
{
    const char *hier = strstr(server_url, "://");
    if (hier == NULL)
        return -1;
    hier += 3;
    const char *q = strchr(hier, '?');
    const char *slash = strchr(hier, '/');
    if (slash != NULL && q != NULL && slash > q)
        slash = NULL;
    size_t head = slash != NULL ? (size_t)(slash - server_url)
                  : q != NULL   ? (size_t)(q - server_url)
                                : strlen(server_url);
    int w = snprintf(out, n, "%.*s/%s%s", (int)head, server_url, name, q != NULL ? q : "");
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

static int admin_command(const char *server_url, const char *sql, char *err, size_t errlen)
{
    PGconn *c = PQconnectdb(server_url);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        char safe[512];
        ah_store_url_scrub(server_url, safe, sizeof safe);
        conn_error(c, safe, err, errlen);
        PQfinish(c);
        return AH_STORE_ERR;
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    PGresult *r = PQexec(c, sql);
    int rc = AH_STORE_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        rc = AH_STORE_ERR;
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

int ah_store_pg_create_database(const char *server_url, const char *name, const char *template,
                                char *url_out, size_t url_len, char *err, size_t errlen)
{
    char dummy[1];
    if (err == NULL) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (server_url == NULL || !valid_db_name(name) ||
        (template != NULL && !valid_db_name(template)) ||
        url_with_db(server_url, name, url_out, url_len) != 0) {
        snprintf(err, errlen, "bad server URL or database name");
        return AH_STORE_ERR;
    }
    /* FILE_COPY (PostgreSQL 15 and later; older servers copy files
     * anyway): a third of the server's CPU of the default WAL_LOG, which
     * writes every page of the copy through the WAL (51 against 135 ms a
     * database on the 2-core VM), and tests make a database each. */
    char sql[200];
    for (int strategy = 1; strategy >= 0; strategy--) {
        if (template == NULL)
            snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8'%s",
                     name, strategy ? " STRATEGY FILE_COPY" : "");
        else
            snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE %s%s", name, template,
                     strategy ? " STRATEGY FILE_COPY" : "");
        int rc = admin_command(server_url, sql, err, errlen);
        if (rc == AH_STORE_OK || !strategy || strstr(err, "strategy") == NULL)
            return rc;
    }
    return AH_STORE_ERR;
}

int ah_store_pg_rename_database(const char *server_url, const char *from, const char *to,
                                char *err, size_t errlen)
{
    char dummy[1];
    if (err == NULL) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (server_url == NULL || !valid_db_name(from) || !valid_db_name(to)) {
        snprintf(err, errlen, "bad server URL or database name");
        return AH_STORE_ERR;
    }
    char sql[160];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s RENAME TO %s", from, to);
    return admin_command(server_url, sql, err, errlen);
}

int ah_store_pg_drop_database(const char *server_url, const char *name)
{
    char err[256];
    if (server_url == NULL || !valid_db_name(name))
        return AH_STORE_ERR;
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    return admin_command(server_url, sql, err, sizeof err);
}
