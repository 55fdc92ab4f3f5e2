/* Requests of the PostgreSQL client: the FIFO queue, the breaker in front,
 * sending one request at a time (a batch in pipeline mode), reading its
 * results without blocking, the client-side deadline and the per-request
 * metrics. See pg.h for the rules. */
#include "pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "wd_error.h"

#define SQL_SETUP_MAX 128 /* "SET statement_timeout = N", "LISTEN \"chan\"" */

/* ---- building and freeing ---- */

pg_req *pg_req_new(const wd_pg_stmt *stmts, size_t n) {
    size_t size = sizeof(pg_req) + n * sizeof(wd_pg_stmt), nptr = 0, chars = 0;
    for (size_t i = 0; i < n; i++) {
        nptr += (size_t)stmts[i].nparams;
        chars += stmts[i].sql ? strlen(stmts[i].sql) + 1 : 0;
        chars += stmts[i].stmt_name ? strlen(stmts[i].stmt_name) + 1 : 0;
        for (int k = 0; stmts[i].params != NULL && k < stmts[i].nparams; k++)
            chars += stmts[i].params[k] ? strlen(stmts[i].params[k]) + 1 : 0;
    }
    size += nptr * sizeof(char *) + chars;
    pg_req *r = calloc(1, size);
    if (r == NULL)
        return NULL;
    r->n = n;
    r->stmts = (wd_pg_stmt *)(r + 1);
    const char **ptrs = (const char **)(r->stmts + n);
    char *text = (char *)(ptrs + nptr);
#define PG_COPY_STR(dst, src)                                                                      \
    do {                                                                                           \
        size_t l_ = strlen(src) + 1;                                                               \
        memcpy(text, (src), l_);                                                                   \
        (dst) = text;                                                                              \
        text += l_;                                                                                \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        wd_pg_stmt *s = &r->stmts[i];
        s->nparams = stmts[i].nparams;
        if (stmts[i].sql)
            PG_COPY_STR(s->sql, stmts[i].sql);
        if (stmts[i].stmt_name)
            PG_COPY_STR(s->stmt_name, stmts[i].stmt_name);
        if (s->nparams > 0 && stmts[i].params != NULL) {
            for (int k = 0; k < s->nparams; k++) {
                ptrs[k] = NULL;
                if (stmts[i].params[k] != NULL)
                    PG_COPY_STR(ptrs[k], stmts[i].params[k]);
            }
            s->params = ptrs;
            ptrs += s->nparams;
        }
    }
#undef PG_COPY_STR
    return r;
}

void pg_req_free(pg_req *r) {
    if (r == NULL)
        return;
    PQclear(r->res);
    free(r);
}

pg_req *pg_queue_pop(wd_pg *pg) {
    pg_req *r = pg->head;
    if (r == NULL)
        return NULL;
    pg->head = r->next;
    if (pg->head == NULL)
        pg->tail = NULL;
    r->next = NULL;
    pg->queued--;
    return r;
}

static void queue_push(wd_pg *pg, pg_req *r) {
    r->next = NULL;
    if (pg->tail != NULL)
        pg->tail->next = r;
    else
        pg->head = r;
    pg->tail = r;
    pg->queued++;
}

/* ---- outcomes ---- */

static void count(wd_pg *pg, const pg_req *r, int status, wd_errclass cls) {
    if (r->origin != PGR_USER || status == WD_ECLOSED)
        return;
    if (pg->m_queries != NULL)
        wd_counter_add(pg->m_queries, 1);
    if (status != 0 && (unsigned)cls < 3 && pg->m_err[cls] != NULL)
        wd_counter_add(pg->m_err[cls], 1);
}

/* Settles the breaker permit of a request that is over. */
static void settle(wd_pg *pg, pg_req *r, bool closed) {
    if (!r->admitted)
        return;
    r->admitted = false;
    uint64_t now = wd_clock_mono_ns();
    if (closed && !r->failed)
        brk_release(&pg->breaker, r->gen);
    else
        brk_record_call(&pg->breaker, r->gen, now, r->start_ns ? now - r->start_ns : 0,
                        !r->brk_failure, r->brk_failure ? "postgres call failed" : NULL);
}

static void call(wd_pg *pg, pg_req *r, wd_pg_result *res) {
    if (r->cb != NULL)
        r->cb(pg, res, r->arg);
}

void pg_req_fail(wd_pg *pg, pg_req *r, int status, wd_errclass cls, const char *msg) {
    if (status != WD_ECLOSED) {
        r->failed = true;
        r->brk_failure = true;
    }
    settle(pg, r, status == WD_ECLOSED);
    char text[WD_PG_ERR_MAX + 1];
    snprintf(text, sizeof text, "%s", msg != NULL ? msg : wd_strerror(status));
    for (size_t i = r->done; i < r->n; i++) {
        wd_pg_result res = {.status = status, .errclass = cls, .sqlstate = "", .message = text,
                            .index = i, .last = i + 1 == r->n};
        count(pg, r, status, cls);
        call(pg, r, &res);
    }
    pg_req_free(r);
}

/* Turns a statement's PGresult into what the callback gets, and notes what
 * it means for the breaker. */
static void classify(wd_pg *pg, pg_req *r, PGresult *pr, size_t index, wd_pg_result *out) {
    *out = (wd_pg_result){.status = 0, .errclass = WD_ERRCLASS_PERMANENT, .sqlstate = "",
                          .message = "", .res = pr, .index = index, .last = index + 1 == r->n};
    ExecStatusType st = pr ? PQresultStatus(pr) : PGRES_FATAL_ERROR;
    switch (st) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
    case PGRES_SINGLE_TUPLE:
        count(pg, r, 0, WD_ERRCLASS_PERMANENT);
        return;
    case PGRES_PIPELINE_ABORTED:
        out->status = WD_ESTATE;
        out->message = "skipped: an earlier statement of the batch failed";
        count(pg, r, out->status, out->errclass);
        return;
    default:
        break;
    }
    const char *state = pr ? PQresultErrorField(pr, PG_DIAG_SQLSTATE) : NULL;
    const char *text = pr ? PQresultErrorField(pr, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (text == NULL)
        text = pr ? PQresultErrorMessage(pr) : "no result";
    pg_scrub(pg, text, pg->msg, sizeof pg->msg);
    out->message = pg->msg;
    r->failed = true;
    if (state == NULL || state[0] == '\0') {
        /* libpq's own failure (the connection broke): nothing from the server. */
        out->status = WD_EIO;
        out->errclass = WD_ERRCLASS_TRANSIENT;
        r->brk_failure = true;
    } else {
        out->sqlstate = state;
        out->errclass = wd_classify_sqlstate(state);
        bool timeout = strcmp(state, "57014") == 0;
        out->status = timeout ? WD_ETIMEDOUT
                      : out->errclass == WD_ERRCLASS_TRANSIENT ? WD_ETRANSIENT
                      : out->errclass == WD_ERRCLASS_CRITICAL  ? WD_ECRITICAL
                                                               : WD_EPERMANENT;
        if (timeout || out->errclass != WD_ERRCLASS_PERMANENT)
            r->brk_failure = true;
    }
    count(pg, r, out->status, out->errclass);
}

static void remember_prepared(wd_pg *pg, const wd_pg_stmt *s) {
    for (size_t i = 0; i < pg->n_prepared; i++)
        if (strcmp(pg->prepared[i].name, s->stmt_name) == 0)
            return; /* a re-prepare after reconnect */
    char *sql = strdup(s->sql);
    if (pg->n_prepared == WD_PG_PREPARED_MAX || sql == NULL) {
        free(sql);
        wd_warn("pg %s: cannot remember prepared statement %s: it will be missing after a "
                "reconnect", pg->name, s->stmt_name);
        return;
    }
    pg_prepared *p = &pg->prepared[pg->n_prepared++];
    snprintf(p->name, sizeof p->name, "%s", s->stmt_name);
    p->sql = sql;
    p->nparams = s->nparams;
}

/* The request's last result is in: settle it, then tell the caller. */
static void finish(wd_pg *pg) {
    pg_req *r = pg->inflight;
    pg->inflight = NULL;
    uv_timer_stop(&pg->io_timer);
    wd_pg_result res;
    size_t index = r->done < r->n ? r->done : r->n - 1;
    classify(pg, r, r->res, index, &res);
    if (r->origin == PGR_USER && pg->m_latency != NULL && r->start_ns != 0)
        wd_hist_observe(pg->m_latency, (double)(wd_clock_mono_ns() - r->start_ns) / 1e9);
    if (r->prepare && res.status == 0)
        remember_prepared(pg, &r->stmts[0]);
    settle(pg, r, false);
    r->done = r->n;
    call(pg, r, &res);
    pg_req_free(r);
    pg_kick(pg);
}

/* ---- sending ---- */

static int send_stmt(wd_pg *pg, const pg_req *r, const wd_pg_stmt *s) {
    if (r->prepare)
        return PQsendPrepare(pg->conn, s->stmt_name, s->sql, s->nparams, NULL);
    if (s->sql != NULL)
        return PQsendQueryParams(pg->conn, s->sql, s->nparams, NULL,
                                 (const char *const *)s->params, NULL, NULL, 0);
    return PQsendQueryPrepared(pg->conn, s->stmt_name, s->nparams,
                               (const char *const *)s->params, NULL, NULL, 0);
}

void pg_deadline_cb(uv_timer_t *t) {
    wd_pg *pg = t->data;
    char why[96];
    snprintf(why, sizeof why, "no answer within %llu ms; connection dropped",
             (unsigned long long)(pg->opts.statement_timeout_ms + pg->opts.deadline_grace_ms));
    pg_conn_lost(pg, WD_ETIMEDOUT, why);
}

void pg_kick(wd_pg *pg) {
    if (pg->state != WD_PG_READY || pg->inflight != NULL || pg->head == NULL)
        return;
    pg_req *r = pg_queue_pop(pg);
    pg->inflight = r;
    r->start_ns = wd_clock_mono_ns();
    int ok = r->pipeline ? PQenterPipelineMode(pg->conn) : 1;
    for (size_t i = 0; ok && i < r->n; i++)
        ok = send_stmt(pg, r, &r->stmts[i]);
    if (ok && r->pipeline)
        ok = PQpipelineSync(pg->conn);
    int flush = ok ? PQflush(pg->conn) : -1;
    if (flush < 0) {
        pg_conn_lost(pg, WD_EIO, "cannot send");
        return;
    }
    if (pg->opts.statement_timeout_ms > 0)
        uv_timer_start(&pg->io_timer, pg_deadline_cb,
                       pg->opts.statement_timeout_ms + pg->opts.deadline_grace_ms, 0);
    pg_watch(pg, flush == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

/* ---- results ---- */

/* Keeps the result of the current statement: the first error wins, else
 * the last result. */
static void hold(pg_req *r, PGresult *res) {
    if (r->res == NULL) {
        r->res = res;
        return;
    }
    ExecStatusType held = PQresultStatus(r->res);
    if (held == PGRES_FATAL_ERROR || held == PGRES_PIPELINE_ABORTED) {
        PQclear(res);
        return;
    }
    PQclear(r->res);
    r->res = res;
}

/* One PGresult (or NULL, the end of a statement's results) for the request
 * in flight. */
static void on_result(wd_pg *pg, PGresult *res) {
    pg_req *r = pg->inflight;
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_EMPTY_QUERY;
    if (res != NULL && (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)) {
        PQclear(res);
        pg_conn_lost(pg, WD_EIO, "COPY is not supported by this client");
        return;
    }
    if (r->pipeline && res != NULL && st == PGRES_PIPELINE_SYNC) {
        PQclear(res);
        if (!PQexitPipelineMode(pg->conn)) {
            pg_conn_lost(pg, WD_EIO, "cannot leave pipeline mode");
            return;
        }
        finish(pg);
        return;
    }
    if (res != NULL) {
        hold(r, res);
        return;
    }
    /* NULL: the current statement is over. The last one of a pipeline waits
     * for the sync, so the request is settled before its last callback. */
    if (!r->pipeline) {
        finish(pg);
        return;
    }
    if (r->done + 1 >= r->n)
        return;
    wd_pg_result out;
    PGresult *cur = r->res;
    r->res = NULL;
    classify(pg, r, cur, r->done, &out);
    r->done++;
    call(pg, r, &out);
    PQclear(cur);
}

void pg_drain(wd_pg *pg) {
    uint64_t epoch = pg->conn_epoch;
    pg_notify_deliver(pg);
    while (pg->conn_epoch == epoch && pg->inflight != NULL && pg->state == WD_PG_READY) {
        /* PQgetResult only when it cannot block: PQisBusy says a whole
         * result is buffered (or the connection is gone). */
        if (PQisBusy(pg->conn))
            break;
        on_result(pg, PQgetResult(pg->conn));
        if (pg->conn_epoch == epoch && pg->state == WD_PG_READY)
            pg_notify_deliver(pg);
    }
}

/* ---- setup after connect ---- */

static void setup_cb(wd_pg *pg, const wd_pg_result *r, void *arg) {
    (void)arg;
    if (r->status != 0 && r->status != WD_ECLOSED && r->status != WD_EUNAVAIL)
        wd_warn("pg %s: session setup statement failed (%s): %s", pg->name,
                r->sqlstate[0] ? r->sqlstate : wd_strerror(r->status), r->message);
}

static pg_req *setup_req(const char *sql, const char *prep_name, int nparams) {
    wd_pg_stmt s = {.sql = sql, .stmt_name = prep_name, .nparams = nparams};
    pg_req *r = pg_req_new(&s, 1);
    if (r != NULL) {
        r->origin = PGR_SETUP;
        r->prepare = prep_name != NULL;
        r->cb = setup_cb;
    }
    return r;
}

int pg_setup_queue(wd_pg *pg) {
    pg_req *first = NULL, *last = NULL;
    size_t n = 0;
    char sql[SQL_SETUP_MAX];
    size_t total = (pg->opts.statement_timeout_ms > 0) + pg->n_prepared + pg->n_listens;
    for (size_t i = 0; i < total; i++) {
        pg_req *r;
        size_t k = i - (pg->opts.statement_timeout_ms > 0);
        if (pg->opts.statement_timeout_ms > 0 && i == 0) {
            snprintf(sql, sizeof sql, "SET statement_timeout = %llu",
                     (unsigned long long)pg->opts.statement_timeout_ms);
            r = setup_req(sql, NULL, 0);
        } else if (k < pg->n_prepared) {
            r = setup_req(pg->prepared[k].sql, pg->prepared[k].name, pg->prepared[k].nparams);
        } else {
            pg_listen_sql("LISTEN", pg->listens[k - pg->n_prepared].channel, sql, sizeof sql);
            r = setup_req(sql, NULL, 0);
        }
        if (r == NULL) {
            while (first != NULL) {
                pg_req *nx = first->next;
                pg_req_free(first);
                first = nx;
            }
            return WD_ENOMEM;
        }
        if (last != NULL)
            last->next = r;
        else
            first = r;
        last = r;
        n++;
    }
    if (first == NULL)
        return 0;
    last->next = pg->head;
    if (pg->head == NULL)
        pg->tail = last;
    pg->head = first;
    pg->queued += n;
    return 0;
}

/* Queues a LISTEN/UNLISTEN when connected; otherwise the next connect's
 * setup issues what is remembered. */
int pg_queue_internal(wd_pg *pg, const char *sql) {
    if (pg->state != WD_PG_READY)
        return 0;
    pg_req *r = setup_req(sql, NULL, 0);
    if (r == NULL)
        return WD_ENOMEM;
    queue_push(pg, r);
    pg_kick(pg);
    return 0;
}

/* ---- the public calls ---- */

static int check_stmt(const wd_pg_stmt *s) {
    if (s->sql == NULL && s->stmt_name == NULL)
        return WD_EINVAL;
    if (s->nparams < 0 || s->nparams > WD_PG_PARAMS_MAX || (s->nparams > 0 && s->params == NULL))
        return WD_EINVAL;
    if (s->sql == NULL && strlen(s->stmt_name) > WD_PG_STMT_NAME_MAX)
        return WD_EINVAL;
    return 0;
}

/* Admission: breaker, state, queue. On 0 the request is queued. */
static int submit(wd_pg *pg, const wd_pg_stmt *stmts, size_t n, bool pipeline, bool prepare,
                  wd_pg_cb cb, void *arg) {
    if (pg->state == WD_PG_CLOSED)
        return WD_ECLOSED;
    if (pg->queued >= pg->opts.queue_max)
        return WD_EBUSY;
    uint64_t gen = 0, now = wd_clock_mono_ns();
    if (brk_allow(&pg->breaker, now, &gen) != 0)
        return WD_EOPEN;
    if (pg->state == WD_PG_BACKOFF) {
        /* Nothing to send it on: fail fast, and let the breaker see it. */
        brk_record_call(&pg->breaker, gen, now, 0, false, "not connected");
        for (size_t i = 0; i < n; i++) {
            if (pg->m_queries != NULL)
                wd_counter_add(pg->m_queries, 1);
            if (pg->m_err[WD_ERRCLASS_TRANSIENT] != NULL)
                wd_counter_add(pg->m_err[WD_ERRCLASS_TRANSIENT], 1);
        }
        return WD_EUNAVAIL;
    }
    pg_req *r = pg_req_new(stmts, n);
    if (r == NULL) {
        brk_release(&pg->breaker, gen);
        return WD_ENOMEM;
    }
    r->origin = PGR_USER;
    r->pipeline = pipeline;
    r->prepare = prepare;
    r->admitted = true;
    r->gen = gen;
    r->cb = cb;
    r->arg = arg;
    queue_push(pg, r);
    pg_kick(pg);
    return 0;
}

int wd_pg_query(wd_pg *pg, const char *sql, int nparams, const char *const *params, wd_pg_cb cb,
                void *arg) {
    wd_pg_stmt s = {.sql = sql, .nparams = nparams, .params = params};
    if (pg == NULL || sql == NULL || check_stmt(&s) != 0)
        return WD_EINVAL;
    return submit(pg, &s, 1, false, false, cb, arg);
}

int wd_pg_exec_prepared(wd_pg *pg, const char *stmt_name, int nparams,
                        const char *const *params, wd_pg_cb cb, void *arg) {
    wd_pg_stmt s = {.stmt_name = stmt_name, .nparams = nparams, .params = params};
    if (pg == NULL || stmt_name == NULL || check_stmt(&s) != 0)
        return WD_EINVAL;
    return submit(pg, &s, 1, false, false, cb, arg);
}

int wd_pg_batch(wd_pg *pg, const wd_pg_stmt *stmts, size_t n, wd_pg_cb cb, void *arg) {
    if (pg == NULL || stmts == NULL || n == 0 || n > WD_PG_BATCH_MAX)
        return WD_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (check_stmt(&stmts[i]) != 0)
            return WD_EINVAL;
    return submit(pg, stmts, n, true, false, cb, arg);
}

int wd_pg_prepare(wd_pg *pg, const char *stmt_name, const char *sql, int nparams, wd_pg_cb cb,
                  void *arg) {
    if (pg == NULL || stmt_name == NULL || sql == NULL || stmt_name[0] == '\0' ||
        strlen(stmt_name) > WD_PG_STMT_NAME_MAX || nparams < 0 || nparams > WD_PG_PARAMS_MAX)
        return WD_EINVAL;
    for (size_t i = 0; i < pg->n_prepared; i++)
        if (strcmp(pg->prepared[i].name, stmt_name) == 0)
            return WD_EEXIST;
    if (pg->n_prepared == WD_PG_PREPARED_MAX)
        return WD_ETOOBIG;
    wd_pg_stmt s = {.sql = sql, .stmt_name = stmt_name, .nparams = nparams};
    return submit(pg, &s, 1, false, true, cb, arg);
}
