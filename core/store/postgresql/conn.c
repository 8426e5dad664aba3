/* SPDX-License-Identifier: Apache-2.0 */
/* Shared plumbing of the PostgreSQL engine: parameters, running prepared
 * statements (PQprepare once per connection, on first use), error mapping,
 * transactions (savepoints inside a scope), reconnecting, the lock and the
 * collect-then-callback row vectors. */
#include "pg_int.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ah_pg_p_text(ah_pg_params *p, const char *v)
{
    if (p->n < AH_PG_MAXP)
        p->v[p->n++] = v;
}

void ah_pg_p_int(ah_pg_params *p, int64_t v)
{
    if (p->n < AH_PG_MAXP) {
        snprintf(p->ibuf[p->n], sizeof p->ibuf[p->n], "%" PRId64, v);
        p->v[p->n] = p->ibuf[p->n];
        p->n++;
    }
}

void ah_pg_p_bool(ah_pg_params *p, bool v)
{
    ah_pg_p_text(p, v ? "t" : "f");
}

void ah_pg_lock(ah_pg_store *s)
{
    pthread_mutex_lock(&s->mu);
    /* Outside any scope, nobody works inside the open group transaction:
     * it is committed first (its listener answers its requests). */
    if (s->group_open && s->scope_depth == 0)
        (void)ah_pg_group_end_locked(s, true);
}

void ah_pg_unlock(ah_pg_store *s)
{
    pthread_mutex_unlock(&s->mu);
}

/* libpq's messages name the server, the user and the database, never the
 * password. Trailing newlines are cut. */
void ah_pg_log_res(ah_pg_store *s, const PGresult *r, const char *what)
{
    const char *msg = r != NULL ? PQresultErrorMessage(r) : "";
    if (msg == NULL || *msg == '\0')
        msg = PQerrorMessage(s->db);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", msg != NULL ? msg : "");
    for (char *c = buf; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == ' ')
        buf[--n] = '\0';
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    ah_log(s->base.lg, AH_LOG_ERROR, "store", "postgresql: %s: %s (sqlstate %s)", what, buf,
           state != NULL ? state : "none");
}

PGconn *ah_pg_connect(const char *url)
{
    /* Before dbname: the URL's own settings, expanded there, win. */
    static const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
                                       "keepalives_interval", "keepalives_count",
                                       "tcp_user_timeout", "dbname", NULL};
    const char *values[] = {"10", "1", "30", "10", "3", "30000", url, NULL};
    return PQconnectdbParams(keys, values, 1);
}

static void forget_prepared(ah_pg_store *s)
{
    memset(s->ctl_prepared, 0, sizeof s->ctl_prepared);
    memset(s->prepared, 0, sizeof s->prepared);
    memset(s->rq_prepared, 0, sizeof s->rq_prepared);
    memset(s->lq_prepared, 0, sizeof s->lq_prepared);
}

/* Outside any transaction, before a statement: when the server ended the
 * session while it was idle (pg_terminate_backend, a restart), its
 * goodbye is waiting on the socket; read it and reconnect now, so that the
 * statement goes to a live session. Inside a transaction a lost connection
 * loses the transaction anyway: the operation fails. */
static void reconnect(ah_pg_store *s)
{
    ah_log(s->base.lg, AH_LOG_WARN, "store", "postgresql: connection to %s lost: reconnecting",
           s->safe_url);
    PQreset(s->db);
    forget_prepared(s);
    if (PQstatus(s->db) == CONNECTION_OK) {
        PGresult *r = PQexec(s->db, AH_PG_SESSION_SETUP);
        PQclear(r);
    }
}

static void ensure_conn(ah_pg_store *s)
{
    if (s->in_tx)
        return;
    if (PQstatus(s->db) == CONNECTION_OK) {
        /* The goodbye and then the end of the stream: a few reads. */
        for (int i = 0; i < 4 && PQstatus(s->db) == CONNECTION_OK; i++) {
            struct pollfd pf = {.fd = PQsocket(s->db), .events = POLLIN};
            if (pf.fd < 0 || poll(&pf, 1, 0) <= 0)
                break;
            if (!PQconsumeInput(s->db))
                break;
            PGnotify *n;
            while ((n = PQnotifies(s->db)) != NULL)
                PQfreemem(n);
        }
        if (PQstatus(s->db) == CONNECTION_OK)
            return;
    }
    reconnect(s);
}

/* Whether a statement that just failed (result r) may be sent again: the
 * server said it ended the session (SQLSTATE 57P..: pg_terminate_backend,
 * a shutdown or restart), so the statement did not commit, and no
 * transaction was open, so nothing was half done; then reconnects. A
 * connection lost without the server's word is not retried: the statement
 * may have committed. */
static bool may_retry(ah_pg_store *s, const PGresult *r)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state == NULL || strncmp(state, "57P", 3) != 0)
        return false;
    if (PQstatus(s->db) != CONNECTION_BAD || s->in_tx || s->scope_depth > 0)
        return false;
    ensure_conn(s);
    return PQstatus(s->db) == CONNECTION_OK;
}

static void pend_free(ah_pg_pend *e, int n)
{
    for (int i = 0; i < n; i++) {
        free(e[i].buf);
        e[i].buf = NULL;
    }
}

/* Empties the queue without sending it (the transaction is rolled back). */
static void pend_drop(ah_pg_store *s)
{
    pend_free(s->pend, s->npend);
    s->npend = 0;
}

/* The transaction-control commands that go in pipelines (ah_pg_defer and
 * the COMMIT): sent as prepared statements ("ah_c<slot>", prepared in the
 * pipeline on first use, as a deferred data statement is), not as text the
 * server parses every time (four per ERP create: a request's savepoint and
 * its operation's, and their releases). The server prepares and binds
 * COMMIT and ROLLBACK TO in a failed transaction too; a SAVEPOINT there
 * fails whether prepared or not. */
static const char *const ctl_sql[AH_PG_NCTL] = {
    "BEGIN",           "COMMIT",
    "SAVEPOINT ah_grp", "RELEASE ah_grp", "ROLLBACK TO ah_grp",
    "SAVEPOINT ah_op",  "RELEASE ah_op",  "ROLLBACK TO ah_op",
    "SAVEPOINT ah_st",  "RELEASE ah_st",  "ROLLBACK TO ah_st",
};
static const char *const ctl_name[AH_PG_NCTL] = {
    "ah_c0", "ah_c1", "ah_c2", "ah_c3", "ah_c4", "ah_c5",
    "ah_c6", "ah_c7", "ah_c8", "ah_c9", "ah_c10",
};

/* The slot of a transaction-control command, or -1. */
static int ctl_slot(const char *sql)
{
    for (int i = 0; i < AH_PG_NCTL; i++)
        if (strcmp(sql, ctl_sql[i]) == 0)
            return i;
    return -1;
}

/* What one result of a pipeline answers. */
enum { SENT_PEND, SENT_PREPARE, SENT_FINAL };

/* The deferred queue (ah_pg_defer, ah_pg_defer_exec), then k statements (a
 * prepared one by name, with ps[0..k-1] or no parameters when ps is NULL;
 * or plain sql without parameters, k = 1), as one pipeline with one sync:
 * one round trip. out[i] receives the i-th statement's result (NULL when
 * the connection failed first). *pend_ok says whether every deferred entry
 * succeeded (a failure is logged; the statements after it are then
 * PGRES_PIPELINE_ABORTED). A deferred data statement not yet prepared on
 * this session is prepared in the same pipeline. The queue is empty
 * afterwards, whatever happened. */
static void pipeline_k(ah_pg_store *s, const char *name, const char *sql, const ah_pg_params *ps,
                       int k, PGresult **out, bool *pend_ok)
{
    ah_pg_pend pend[AH_PG_MAXPEND];
    int npend = s->npend;
    memcpy(pend, s->pend, (size_t)npend * sizeof pend[0]);
    s->npend = 0;
    *pend_ok = true;
    for (int i = 0; i < k; i++)
        out[i] = NULL;
    if (name == NULL && sql == NULL)
        k = 0;
    s->round_trips++;
    if (PQenterPipelineMode(s->db) != 1) {
        ah_pg_log_res(s, NULL, "pipeline");
        *pend_ok = false;
        pend_free(pend, npend);
        return;
    }
    /* kind[q] and idx[q]: what the q-th result answers. */
    unsigned char kind[2 * AH_PG_MAXPEND];
    int idx[2 * AH_PG_MAXPEND];
    int nsent = 0, npre = 0;
    bool sent = true;
    for (int i = 0; i < npend && sent; i++) {
        ah_pg_pend *e = &pend[i];
        int c = e->name == NULL ? ctl_slot(e->sql) : -1;
        if (c >= 0) {
            e->name = ctl_name[c];
            e->prepared = &s->ctl_prepared[c];
        }
        if (e->name == NULL) {
            sent = PQsendQueryParams(s->db, e->sql, 0, NULL, NULL, NULL, NULL, 0) == 1;
        } else {
            if (!*e->prepared) {
                /* Marked now, so that the same statement later in this
                 * pipeline is not prepared twice; unmarked below should
                 * the prepare not succeed. */
                sent = PQsendPrepare(s->db, e->name, e->sql, 0, NULL) == 1;
                if (!sent)
                    break;
                *e->prepared = true;
                kind[npre] = SENT_PREPARE;
                idx[npre++] = i;
                nsent++;
            }
            sent = PQsendQueryPrepared(s->db, e->name, e->n, e->v, NULL, NULL, 0) == 1;
        }
        if (sent) {
            kind[npre] = SENT_PEND;
            idx[npre++] = i;
            nsent++;
        }
    }
    int nfin = 0;
    for (int i = 0; i < k && sent; i++) {
        if (name != NULL) {
            const ah_pg_params *p = ps != NULL ? &ps[i] : NULL;
            sent = PQsendQueryPrepared(s->db, name, p != NULL ? p->n : 0, p != NULL ? p->v : NULL,
                                       NULL, NULL, 0) == 1;
        } else {
            sent = PQsendQueryParams(s->db, sql, 0, NULL, NULL, NULL, NULL, 0) == 1;
        }
        nfin += sent ? 1 : 0;
    }
    nsent += nfin;
    if (!sent) {
        ah_pg_log_res(s, NULL, "pipeline send");
        *pend_ok = false;
    }
    bool synced = PQpipelineSync(s->db) == 1;
    /* PQpipelineSync flushed what was sent: look for the answers before
     * PQgetResult sleeps in poll() for them (look.h); what a look finds is
     * read now, and PQgetResult then parses it without waiting (a lost
     * connection shows there, as it would without the look). */
    if (synced && ah_look_poll(&s->look, PQsocket(s->db)) > 0)
        (void)PQconsumeInput(s->db);
    for (int q = 0; q < nsent; q++) {
        PGresult *r, *last = NULL;
        while ((r = PQgetResult(s->db)) != NULL) {
            PQclear(last);
            last = r;
        }
        if (last == NULL) { /* the connection is gone */
            *pend_ok = false;
            for (int u = q; u < npre; u++)
                if (kind[u] == SENT_PREPARE)
                    *pend[idx[u]].prepared = false;
            break;
        }
        if (q >= npre) {
            out[q - npre] = last;
            continue;
        }
        ah_pg_pend *e = &pend[idx[q]];
        ExecStatusType st = PQresultStatus(last);
        if (kind[q] == SENT_PREPARE && st != PGRES_COMMAND_OK)
            *e->prepared = false;
        if (kind[q] == SENT_PREPARE && st == PGRES_COMMAND_OK) {
            /* prepared */
        } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            if (st != PGRES_PIPELINE_ABORTED)
                ah_pg_log_res(s, last, e->what != NULL ? e->what : e->sql);
            *pend_ok = false;
        }
        PQclear(last);
    }
    if (synced) {
        PGresult *r = PQgetResult(s->db);
        if (r != NULL && PQresultStatus(r) != PGRES_PIPELINE_SYNC)
            *pend_ok = false;
        PQclear(r);
    }
    if (PQexitPipelineMode(s->db) != 1 && PQstatus(s->db) == CONNECTION_OK)
        ah_pg_log_res(s, NULL, "pipeline exit");
    if (!sent && k > 0 && out[0] == NULL)
        *pend_ok = false;
    pend_free(pend, npend);
}

/* The deferred queue and at most one statement: one round trip. */
static PGresult *pipeline(ah_pg_store *s, const char *name, const char *sql,
                          const ah_pg_params *p, bool *pend_ok)
{
    PGresult *fin = NULL;
    pipeline_k(s, name, sql, p, 1, &fin, pend_ok);
    return fin;
}

void ah_pg_defer(ah_pg_store *s, const char *sql)
{
    if (s->npend == 0 && !s->in_tx)
        ensure_conn(s); /* a group's BEGIN goes to a live session */
    if (s->npend == AH_PG_MAXPEND)
        (void)ah_pg_flush(s);
    s->pend[s->npend++] = (ah_pg_pend){.sql = sql};
}

int ah_pg_defer_exec(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
                     const ah_pg_params *p, const char *what)
{
    /* Only inside a transaction that the server already has: a
     * queue that still starts with the scope's BEGIN may be sent again on
     * a new session (ah_pg_run), which holds commands only. */
    if (!s->in_tx || sql == NULL ||
        (s->npend > 0 && s->pend[0].name == NULL && strcmp(s->pend[0].sql, "BEGIN") == 0))
        return ah_pg_exec(s, name, prepared, sql, p, what, NULL);
    int n = p != NULL ? p->n : 0;
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += p->v[i] != NULL ? strlen(p->v[i]) + 1 : 0;
    ah_pg_pend e = {.sql = sql, .name = name, .prepared = prepared, .what = what, .n = n};
    if (len > 0 && (e.buf = malloc(len)) == NULL) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "%s: out of memory", what);
        return AH_STORE_ERR;
    }
    char *w = e.buf;
    for (int i = 0; i < n; i++) {
        if (p->v[i] == NULL) {
            e.v[i] = NULL;
            continue;
        }
        size_t l = strlen(p->v[i]) + 1;
        memcpy(w, p->v[i], l);
        e.v[i] = w;
        w += l;
    }
    if (s->npend == AH_PG_MAXPEND && ah_pg_flush(s) != AH_STORE_OK) {
        free(e.buf);
        return AH_STORE_ERR; /* the transaction failed already */
    }
    s->pend[s->npend++] = e;
    return AH_STORE_OK;
}

int ah_pg_flush(ah_pg_store *s)
{
    if (s->npend == 0)
        return AH_STORE_OK;
    bool ok;
    (void)pipeline(s, NULL, NULL, NULL, &ok);
    return ok ? AH_STORE_OK : AH_STORE_ERR;
}

int ah_pg_command(ah_pg_store *s, const char *sql, const char *what)
{
    /* What was deferred goes first (a failure there is logged, and fails
     * this command too when it is in the same transaction). */
    (void)ah_pg_flush(s);
    ensure_conn(s);
    s->round_trips++;
    PGresult *r = PQexec(s->db, sql);
    if (PQresultStatus(r) == PGRES_FATAL_ERROR && may_retry(s, r)) {
        PQclear(r);
        r = PQexec(s->db, sql);
    }
    ExecStatusType st = PQresultStatus(r);
    int rc = AH_STORE_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        ah_pg_log_res(s, r, what);
        rc = AH_STORE_ERR;
    }
    PQclear(r);
    return rc;
}

static int map_error(ah_pg_store *s, const PGresult *r, const char *what)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && strcmp(state, "23505") == 0)
        return AH_STORE_EXISTS;
    if (state != NULL && strcmp(state, "23503") == 0)
        return AH_STORE_NOT_FOUND;
    ah_pg_log_res(s, r, what);
    return AH_STORE_ERR;
}

static PGresult *run_stmt(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
                          const ah_pg_params *p, const char *what, int *rc, bool may_sp)
{
    *rc = AH_STORE_ERR;
    if (sql == NULL)
        return NULL;
    ensure_conn(s);
    /* In a scope's transaction, a failed statement would abort the whole
     * scope: a statement of an operation without its own savepoint gets
     * one, so that its failure undoes only itself (as in SQLite); unless
     * the caller says it cannot fail but with its transaction (may_sp
     * false, ah_pg_run_bare). */
    bool own_sp = may_sp && s->scope_depth > 0 && !s->sp_active;
    if (own_sp)
        ah_pg_defer(s, "SAVEPOINT ah_st"); /* sent with the statement */
    PGresult *r = NULL;
    bool retried = false;
again:
    if (!*prepared) {
        (void)ah_pg_flush(s); /* its failure fails the statement below */
        s->round_trips++;
        r = PQprepare(s->db, name, sql, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            if (!retried && !own_sp && may_retry(s, r)) {
                PQclear(r);
                retried = true;
                goto again;
            }
            ah_pg_log_res(s, r, what);
            PQclear(r);
            r = NULL;
            goto fail;
        }
        PQclear(r);
        *prepared = true;
    }
    if (s->npend > 0) {
        /* A transaction that begins in this pipeline (its BEGIN deferred)
         * has nothing on the server yet and commits nothing here: when the
         * connection is found lost (the session ended while idle, and the
         * goodbye came after ensure_conn looked), it is all sent again
         * once on a new session, as a lone statement is (may_retry). */
        ah_pg_pend saved[AH_PG_MAXPEND];
        int nsaved = s->npend;
        /* Such a queue holds commands only (ah_pg_defer_exec): nothing
         * to free in the copy. */
        bool fresh = s->pend[0].name == NULL && strcmp(s->pend[0].sql, "BEGIN") == 0;
        memcpy(saved, s->pend, (size_t)nsaved * sizeof saved[0]);
        bool pend_ok;
        r = pipeline(s, name, NULL, p, &pend_ok);
        if (fresh && !retried && PQstatus(s->db) == CONNECTION_BAD) {
            PQclear(r);
            r = NULL;
            reconnect(s);
            if (PQstatus(s->db) == CONNECTION_OK) {
                memcpy(s->pend, saved, (size_t)nsaved * sizeof saved[0]);
                s->npend = nsaved;
                retried = true;
                goto again;
            }
        }
    } else {
        s->round_trips++;
        r = PQexecPrepared(s->db, name, p != NULL ? p->n : 0, p != NULL ? p->v : NULL, NULL,
                           NULL, 0);
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (own_sp)
            ah_pg_defer(s, "RELEASE ah_st"); /* sent with what comes next */
        *rc = AH_STORE_OK;
        return r;
    }
    if (!retried && !own_sp && st == PGRES_FATAL_ERROR && may_retry(s, r)) {
        /* Reconnected (may_retry): the statements are to prepare again. */
        PQclear(r);
        retried = true;
        goto again;
    }
    *rc = map_error(s, r, what);
    PQclear(r);
    r = NULL;
    /* A statement prepared on a connection that was since reset is gone:
     * prepare it again next time. */
    if (PQstatus(s->db) == CONNECTION_BAD)
        forget_prepared(s);
fail:
    if (own_sp) {
        ah_pg_defer(s, "ROLLBACK TO ah_st");
        ah_pg_defer(s, "RELEASE ah_st");
    }
    if (*rc == AH_STORE_OK)
        *rc = AH_STORE_ERR;
    return NULL;
}

PGresult *ah_pg_run(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
                    const ah_pg_params *p, const char *what, int *rc)
{
    return run_stmt(s, name, prepared, sql, p, what, rc, true);
}

PGresult *ah_pg_run_bare(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
                         const ah_pg_params *p, const char *what, int *rc)
{
    return run_stmt(s, name, prepared, sql, p, what, rc, false);
}

int ah_pg_run_many(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
                   const ah_pg_params *ps, int k, PGresult **out, const char *what)
{
    for (int i = 0; i < k; i++)
        out[i] = NULL;
    if (sql == NULL || k < 0)
        return AH_STORE_ERR;
    if (k == 0)
        return AH_STORE_OK;
    ensure_conn(s);
    if (!*prepared) {
        (void)ah_pg_flush(s); /* its failure fails the statements below */
        s->round_trips++;
        PGresult *r = PQprepare(s->db, name, sql, 0, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            ah_pg_log_res(s, r, what);
        PQclear(r);
        if (!ok)
            return AH_STORE_ERR;
        *prepared = true;
    }
    int rc = AH_STORE_OK;
    for (int at = 0; at < k && rc == AH_STORE_OK; at += AH_PG_BATCH) {
        int m = k - at < AH_PG_BATCH ? k - at : AH_PG_BATCH;
        bool pend_ok;
        pipeline_k(s, name, NULL, ps + at, m, out + at, &pend_ok);
        for (int i = at; i < at + m && rc == AH_STORE_OK; i++) {
            ExecStatusType st = PQresultStatus(out[i]);
            if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
                rc = out[i] == NULL ? AH_STORE_ERR : map_error(s, out[i], what);
        }
        if (rc == AH_STORE_OK && !pend_ok)
            rc = AH_STORE_ERR;
    }
    if (rc != AH_STORE_OK) {
        for (int i = 0; i < k; i++) {
            PQclear(out[i]);
            out[i] = NULL;
        }
        if (PQstatus(s->db) == CONNECTION_BAD)
            forget_prepared(s);
    }
    return rc;
}

int ah_pg_exec(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
               const ah_pg_params *p, const char *what, int64_t *changes)
{
    int rc;
    PGresult *r = ah_pg_run(s, name, prepared, sql, p, what, &rc);
    if (r != NULL) {
        if (changes != NULL) {
            const char *t = PQcmdTuples(r);
            *changes = t != NULL && *t ? strtoll(t, NULL, 10) : 0;
        }
        PQclear(r);
    }
    return rc;
}

int ah_pg_delete_batched(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
                         const char *const *texts, int ntexts, const char *what,
                         int64_t *n_out)
{
    int64_t total = 0, n;
    int rc;
    do {
        n = 0;
        ah_pg_params p = {0};
        for (int i = 0; i < ntexts; i++)
            ah_pg_p_text(&p, texts[i]);
        ah_pg_p_int(&p, AH_PG_PRUNE_BATCH);
        ah_pg_lock(s);
        rc = ah_pg_exec(s, name, prepared, sql, &p, what, &n);
        ah_pg_unlock(s);
        total += n;
    } while (rc == AH_STORE_OK && n >= AH_PG_PRUNE_BATCH);
    if (n_out != NULL)
        *n_out = total;
    return rc;
}

int ah_pg_exec_change(ah_pg_store *s, const char *name, bool *prepared, const char *sql,
                      const ah_pg_params *p, const char *what)
{
    int64_t n = 0;
    int rc = ah_pg_exec(s, name, prepared, sql, p, what, &n);
    if (rc == AH_STORE_OK && n == 0)
        rc = AH_STORE_NOT_FOUND;
    return rc;
}

/* Inside a scope (scope_begin .. scope_end) an operation's transaction is a
 * savepoint of the scope's transaction: its failure undoes only its own
 * writes, and everything commits together at scope_end. */
int ah_pg_tx_begin(ah_pg_store *s)
{
    if (s->scope_depth > 0) {
        ah_pg_defer(s, "SAVEPOINT ah_op"); /* sent with the first statement */
        s->sp_active = true;
        return AH_STORE_OK;
    }
    /* Sent with the transaction's first statement (one round trip). */
    ah_pg_defer(s, "BEGIN");
    s->in_tx = true;
    return AH_STORE_OK;
}

void ah_pg_tx_rollback(ah_pg_store *s)
{
    if (s->scope_depth > 0) {
        if (s->sp_active) {
            ah_pg_defer(s, "ROLLBACK TO ah_op");
            ah_pg_defer(s, "RELEASE ah_op");
            s->sp_active = false;
        }
        return;
    }
    if (s->in_tx) {
        /* What was queued (the BEGIN perhaps, statements whose results
         * nobody read) is dropped: a ROLLBACK without a transaction is
         * only a warning. */
        pend_drop(s);
        ah_pg_command(s, "ROLLBACK", "rollback");
        s->in_tx = false;
    }
}

/* COMMIT of a transaction that failed answers "ROLLBACK": that is a
 * failure too. */
static int commit_now(ah_pg_store *s, const char *what)
{
    PGresult *r;
    /* COMMIT as a prepared statement too (ctl_sql), prepared once per
     * session on its own (the server parses it in any transaction state). */
    if (!s->ctl_prepared[1]) {
        s->round_trips++;
        PGresult *pr = PQprepare(s->db, ctl_name[1], ctl_sql[1], 0, NULL);
        s->ctl_prepared[1] = PQresultStatus(pr) == PGRES_COMMAND_OK;
        PQclear(pr);
    }
    const char *name = s->ctl_prepared[1] ? ctl_name[1] : NULL;
    if (s->npend > 0) {
        bool pend_ok;
        r = pipeline(s, name, name != NULL ? NULL : ctl_sql[1], NULL, &pend_ok);
    } else if (name != NULL) {
        s->round_trips++;
        r = PQexecPrepared(s->db, name, 0, NULL, NULL, NULL, 0);
    } else {
        s->round_trips++;
        r = PQexec(s->db, "COMMIT");
    }
    int rc = AH_STORE_OK;
    if (PQresultStatus(r) == PGRES_PIPELINE_ABORTED) {
        /* A statement queued ahead of it failed (logged as it did). */
        ah_log(s->base.lg, AH_LOG_ERROR, "store",
               "postgresql: %s: a queued statement failed: transaction rolled back", what);
        rc = AH_STORE_ERR;
    } else if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        ah_pg_log_res(s, r, what);
        rc = AH_STORE_ERR;
    } else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "postgresql: %s: transaction rolled back",
               what);
        rc = AH_STORE_ERR;
    }
    PQclear(r);
    if (rc != AH_STORE_OK && PQtransactionStatus(s->db) != PQTRANS_IDLE)
        ah_pg_command(s, "ROLLBACK", "rollback");
    return rc;
}

int ah_pg_tx_commit(ah_pg_store *s)
{
    if (s->scope_depth > 0) {
        /* Sent with what comes next; should it fail (only in a transaction
         * that failed already), the scope's COMMIT fails. */
        ah_pg_defer(s, "RELEASE ah_op");
        s->sp_active = false;
        return AH_STORE_OK;
    }
    int rc = commit_now(s, "commit");
    s->in_tx = false;
    return rc;
}

int ah_pg_scope_commit(ah_pg_store *s, bool commit)
{
    int rc = AH_STORE_OK;
    if (commit) {
        rc = commit_now(s, "scope commit");
    } else {
        pend_drop(s); /* the transaction's savepoints and writes: rolled back */
        ah_pg_command(s, "ROLLBACK", "scope rollback");
    }
    s->in_tx = false;
    return rc;
}

char *ah_pg_dup(const PGresult *r, int i, int col, bool *oom)
{
    if (PQgetisnull(r, i, col))
        return NULL;
    char *d = strdup(PQgetvalue(r, i, col));
    if (d == NULL)
        *oom = true;
    return d;
}

int64_t ah_pg_int(const PGresult *r, int i, int col)
{
    if (PQgetisnull(r, i, col))
        return 0;
    return strtoll(PQgetvalue(r, i, col), NULL, 10);
}

bool ah_pg_bool(const PGresult *r, int i, int col)
{
    if (PQgetisnull(r, i, col))
        return false;
    const char *v = PQgetvalue(r, i, col);
    return v[0] == 't' || v[0] == '1';
}

void *ah_pg_rowvec_push(ah_pg_rowvec *v)
{
    if (v->n == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 16;
        void *ni = realloc(v->items, ncap * v->elem);
        if (ni == NULL)
            return NULL;
        v->items = ni;
        v->cap = ncap;
    }
    void *slot = (char *)v->items + v->n * v->elem;
    memset(slot, 0, v->elem);
    v->n++;
    return slot;
}

int ah_pg_collect(ah_pg_store *s, const PGresult *r, ah_pg_rowvec *v, ah_pg_fill_fn fill,
                  ah_pg_free_fn fr, const char *what)
{
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        void *row = ah_pg_rowvec_push(v);
        if (row == NULL) {
            ah_log(s->base.lg, AH_LOG_ERROR, "store", "%s: out of memory", what);
            return AH_STORE_ERR;
        }
        if (!fill(r, i, row)) {
            fr(row);
            v->n--;
            ah_log(s->base.lg, AH_LOG_ERROR, "store", "%s: out of memory", what);
            return AH_STORE_ERR;
        }
    }
    return AH_STORE_OK;
}

void ah_pg_rowvec_free(ah_pg_rowvec *v, ah_pg_free_fn fr)
{
    for (size_t i = 0; i < v->n; i++)
        fr((char *)v->items + i * v->elem);
    free(v->items);
    v->items = NULL;
    v->n = v->cap = 0;
}

int ah_pg_one(ah_pg_store *s, const PGresult *r, void *out, ah_pg_fill_fn fill,
              ah_pg_free_fn fr, const char *what)
{
    if (PQntuples(r) == 0)
        return AH_STORE_NOT_FOUND;
    if (!fill(r, 0, out)) {
        fr(out);
        ah_log(s->base.lg, AH_LOG_ERROR, "store", "%s: out of memory", what);
        return AH_STORE_ERR;
    }
    return AH_STORE_OK;
}

int ah_pg_page_limit(int limit)
{
    return limit > 0 && limit <= 1000 ? limit : 100;
}
