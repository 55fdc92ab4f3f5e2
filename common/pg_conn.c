/* The connection of the PostgreSQL client: open and close, the non-blocking
 * connect (PQconnectStartParams / PQconnectPoll on uv_poll), the connect
 * timeout, losing a connection and reconnecting with backoff. See pg.h. */
#include "pg_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "text.h"
#include "wd_error.h"

static const char *const state_names[WD_PG_N_STATES] = {"connecting", "ready", "backoff",
                                                        "closed"};

const char *wd_pg_state_name(wd_pg_state s) {
    return (unsigned)s < WD_PG_N_STATES ? state_names[s] : "unknown";
}

void wd_pg_opts_default(wd_pg_opts *o) {
    memset(o, 0, sizeof *o);
    o->name = "pg";
    o->connect_timeout_ms = 10000;
    o->statement_timeout_ms = 30000;
    o->deadline_grace_ms = 2000;
    o->reconnect_initial_ms = 1000;
    o->reconnect_max_ms = 120000;
    o->reconnect_multiplier = 1.6;
    o->reconnect_jitter = 0.2;
    o->queue_max = WD_PG_QUEUE_DEFAULT;
    brk_config_defaults(&o->breaker);
}

void pg_scrub(const wd_pg *pg, const char *src, char *dst, size_t dstlen) {
    static const char mask[] = "***";
    size_t pw = strlen(pg->password), o = 0;
    if (dstlen == 0)
        return;
    while (*src != '\0' && o + 1 < dstlen) {
        if (pw > 0 && strncmp(src, pg->password, pw) == 0) {
            for (size_t i = 0; mask[i] != '\0' && o + 1 < dstlen; i++)
                dst[o++] = mask[i];
            src += pw;
            continue;
        }
        /* libpq ends its messages with a newline; keep log lines single. */
        dst[o++] = (unsigned char)*src < 0x20 ? ' ' : *src;
        src++;
    }
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
}

/* A libpq parse error may quote a fragment of the conninfo, which could be
 * the password: every quoted run is replaced before the text is shown. */
static void unquote_fragments(const char *src, char *dst, size_t dstlen) {
    static const char hidden[] = "\"...\"";
    size_t o = 0;
    bool in = false;
    for (; *src != '\0' && o + sizeof hidden < dstlen; src++) {
        if (*src == '"') {
            in = !in;
            if (in) {
                memcpy(dst + o, hidden, sizeof hidden - 1);
                o += sizeof hidden - 1;
            }
            continue;
        }
        if (!in)
            dst[o++] = (*src == '\n') ? ' ' : *src;
    }
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
}

void pg_set_state(wd_pg *pg, wd_pg_state s) {
    pg->state = s;
    for (int i = 0; i < WD_PG_N_STATES; i++)
        if (pg->m_state[i] != NULL)
            wd_gauge_set(pg->m_state[i], i == (int)s ? 1 : 0);
}

static void set_error(wd_pg *pg, const char *what, const char *detail) {
    char clean[WD_PG_ERR_MAX + 1];
    pg_scrub(pg, detail != NULL ? detail : "", clean, sizeof clean);
    /* Joined by hand: a cut message is still useful, and snprintf would
     * draw a truncation warning for doing exactly that. */
    const char *parts[3] = {what, clean[0] ? ": " : "", clean};
    size_t o = 0;
    for (int i = 0; i < 3; i++)
        for (const char *c = parts[i]; *c != '\0' && o + 1 < sizeof pg->last_error; c++)
            pg->last_error[o++] = *c;
    pg->last_error[o] = '\0';
}

/* ---- handles ---- */

static void free_if_done(wd_pg *pg) {
    if (pg->state != WD_PG_CLOSED || pg->closing_handles > 0)
        return;
    wd_pg_close_cb cb = pg->close_cb;
    void *arg = pg->close_arg;
    for (size_t i = 0; i < pg->n_prepared; i++)
        free(pg->prepared[i].sql);
    free(pg);
    if (cb != NULL)
        cb(arg);
}

static void poll_closed(uv_handle_t *h) {
    wd_pg *pg = h->data;
    free(h);
    pg->closing_handles--;
    free_if_done(pg);
}

static void timer_closed(uv_handle_t *h) {
    wd_pg *pg = h->data;
    pg->closing_handles--;
    free_if_done(pg);
}

static void poll_release(wd_pg *pg) {
    if (pg->poll == NULL)
        return;
    /* Closing the handle stops epoll on the fd now; it must happen before
     * libpq closes the socket (PQfinish) or reuses its number. */
    pg->closing_handles++;
    uv_close((uv_handle_t *)pg->poll, poll_closed);
    pg->poll = NULL;
    pg->poll_fd = -1;
    pg->poll_events = 0;
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watches PQsocket for events. The socket can change while connecting
 * (libpq tries the next address or host with a new socket), and a new
 * socket may get the old number, whose epoll registration the kernel dropped
 * when the old one closed: so the handle is re-created when the number
 * changes and re-armed (stop + start) otherwise. */
static int watch_socket(wd_pg *pg, int events, bool rearm) {
    int fd = PQsocket(pg->conn);
    if (fd < 0)
        return WD_EIO;
    if (pg->poll != NULL && pg->poll_fd != fd)
        poll_release(pg);
    if (pg->poll == NULL) {
        uv_poll_t *p = malloc(sizeof *p);
        if (p == NULL)
            return WD_ENOMEM;
        if (uv_poll_init(pg->loop, p, fd) != 0) {
            free(p);
            return WD_EIO;
        }
        p->data = pg;
        pg->poll = p;
        pg->poll_fd = fd;
        pg->poll_events = 0;
    } else if (rearm) {
        uv_poll_stop(pg->poll);
        pg->poll_events = 0;
    }
    if (events != pg->poll_events) {
        if (uv_poll_start(pg->poll, events, on_poll) != 0)
            return WD_EIO;
        pg->poll_events = events;
    }
    return 0;
}

void pg_watch(wd_pg *pg, int events) {
    if (pg->state == WD_PG_READY && watch_socket(pg, events, false) != 0)
        pg_conn_lost(pg, WD_EIO, "cannot watch the socket");
}

/* ---- reconnect ---- */

static uint64_t backoff_ms(wd_pg *pg) {
    double d = (double)pg->opts.reconnect_initial_ms;
    for (uint32_t i = 0; i < pg->attempts && d < (double)pg->opts.reconnect_max_ms; i++)
        d *= pg->opts.reconnect_multiplier;
    if (d > (double)pg->opts.reconnect_max_ms)
        d = (double)pg->opts.reconnect_max_ms;
    double u = (double)(wd_rng_next(&pg->rng) >> 11) / (double)(1ULL << 53);
    d *= 1.0 + pg->opts.reconnect_jitter * (2.0 * u - 1.0);
    return d < 1 ? 1 : (uint64_t)llround(d);
}

static void connect_start(wd_pg *pg);

static void retry_cb(uv_timer_t *t) { connect_start(t->data); }

static void schedule_reconnect(wd_pg *pg) {
    uint64_t ms = backoff_ms(pg);
    pg->attempts++;
    pg_set_state(pg, WD_PG_BACKOFF);
    wd_info("pg %s: reconnecting to %s in %llu ms", pg->name, pg->label, (unsigned long long)ms);
    uv_timer_start(&pg->retry_timer, retry_cb, ms, 0);
}

/* Tears the connection down. The state is changed first, so that a request
 * made from a failing request's callback sees it (and fails fast). */
static void teardown(wd_pg *pg, wd_pg_state next) {
    uv_timer_stop(&pg->io_timer);
    poll_release(pg);
    if (pg->conn != NULL) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    pg->conn_epoch++;
    pg_set_state(pg, next);
}

static void fail_all(wd_pg *pg, int inflight_status, const char *inflight_msg, int waiting_status,
                     const char *waiting_msg) {
    pg_req *r = pg->inflight;
    pg->inflight = NULL;
    if (r != NULL)
        pg_req_fail(pg, r, inflight_status, WD_ERRCLASS_TRANSIENT, inflight_msg);
    while ((r = pg_queue_pop(pg)) != NULL)
        pg_req_fail(pg, r, waiting_status, WD_ERRCLASS_TRANSIENT, waiting_msg);
}

void pg_conn_lost(wd_pg *pg, int status, const char *msg) {
    if (pg->state == WD_PG_CLOSED || pg->state == WD_PG_BACKOFF)
        return;
    bool was_ready = pg->state == WD_PG_READY;
    if (pg->conn != NULL && PQerrorMessage(pg->conn)[0] != '\0' && status != WD_ETIMEDOUT)
        set_error(pg, msg, PQerrorMessage(pg->conn));
    else
        set_error(pg, msg, NULL);
    wd_warn("pg %s: %s %s: %s", pg->name, was_ready ? "lost connection to" : "cannot connect to",
            pg->label, pg->last_error);
    teardown(pg, WD_PG_BACKOFF);
    fail_all(pg, status, pg->last_error, WD_EUNAVAIL, pg->last_error);
    if (pg->state == WD_PG_BACKOFF) /* a callback may have closed the client */
        schedule_reconnect(pg);
}

/* ---- connecting ---- */

static void connected(wd_pg *pg) {
    if (PQsetnonblocking(pg->conn, 1) != 0) {
        pg_conn_lost(pg, WD_EIO, "cannot set non-blocking mode");
        return;
    }
    uv_timer_stop(&pg->io_timer);
    pg->connects++;
    if (pg->connects > 1 && pg->m_reconnects != NULL)
        wd_counter_add(pg->m_reconnects, 1);
    pg->attempts = 0;
    pg->last_error[0] = '\0';
    pg_set_state(pg, WD_PG_READY);
    wd_info("pg %s: connected to %s (backend pid %d)", pg->name, pg->label,
            PQbackendPID(pg->conn));
    if (watch_socket(pg, UV_READABLE, true) != 0) {
        pg_conn_lost(pg, WD_EIO, "cannot watch the socket");
        return;
    }
    if (pg_setup_queue(pg) != 0) {
        pg_conn_lost(pg, WD_ENOMEM, "out of memory queuing the session setup");
        return;
    }
    pg_kick(pg);
}

static void connect_step(wd_pg *pg) {
    switch (PQconnectPoll(pg->conn)) {
    case PGRES_POLLING_OK:
        connected(pg);
        return;
    case PGRES_POLLING_READING:
        if (watch_socket(pg, UV_READABLE, true) != 0)
            pg_conn_lost(pg, WD_EIO, "connect failed");
        return;
    case PGRES_POLLING_WRITING:
        if (watch_socket(pg, UV_WRITABLE, true) != 0)
            pg_conn_lost(pg, WD_EIO, "connect failed");
        return;
    default:
        pg_conn_lost(pg, WD_EUNAVAIL, "connect failed");
        return;
    }
}

static void connect_timeout_cb(uv_timer_t *t) {
    wd_pg *pg = t->data;
    char why[64];
    snprintf(why, sizeof why, "connect timed out after %llu ms",
             (unsigned long long)pg->opts.connect_timeout_ms);
    pg_conn_lost(pg, WD_ETIMEDOUT, why);
}

static void notice_cb(void *arg, const PGresult *res) {
    wd_pg *pg = arg;
    char clean[WD_PG_ERR_MAX + 1];
    pg_scrub(pg, PQresultErrorMessage(res), clean, sizeof clean);
    wd_debug("pg %s: server notice: %s", pg->name, clean);
}

static void connect_start(wd_pg *pg) {
    static const char *const keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {pg->conninfo, "warden", NULL};
    pg_set_state(pg, WD_PG_CONNECTING);
    pg->conn = PQconnectStartParams(keys, vals, 1);
    if (pg->conn == NULL) {
        pg_conn_lost(pg, WD_ENOMEM, "out of memory");
        return;
    }
    if (PQstatus(pg->conn) == CONNECTION_BAD) {
        pg_conn_lost(pg, WD_EUNAVAIL, "connect failed");
        return;
    }
    PQsetNoticeReceiver(pg->conn, notice_cb, pg);
    uv_timer_start(&pg->io_timer, connect_timeout_cb, pg->opts.connect_timeout_ms, 0);
    /* libpq's rule: start as if PQconnectPoll had said PGRES_POLLING_WRITING. */
    if (watch_socket(pg, UV_WRITABLE, true) != 0)
        pg_conn_lost(pg, WD_EIO, "connect failed");
}

static void on_poll(uv_poll_t *h, int status, int events) {
    wd_pg *pg = h->data;
    if (pg->state == WD_PG_CONNECTING) {
        connect_step(pg);
        return;
    }
    if (pg->state != WD_PG_READY)
        return;
    if (status < 0) {
        pg_conn_lost(pg, WD_EIO, "socket error");
        return;
    }
    uint64_t epoch = pg->conn_epoch;
    if (events & UV_WRITABLE) {
        int f = PQflush(pg->conn);
        if (f < 0) {
            pg_conn_lost(pg, WD_EIO, "connection lost");
            return;
        }
        if (f == 0)
            pg_watch(pg, UV_READABLE);
    }
    if (pg->conn_epoch != epoch)
        return;
    int consumed = 1;
    if (events & UV_READABLE)
        consumed = PQconsumeInput(pg->conn);
    pg_drain(pg);
    if (pg->conn_epoch != epoch)
        return;
    if (!consumed || PQstatus(pg->conn) == CONNECTION_BAD)
        pg_conn_lost(pg, WD_EIO, "connection lost");
}

/* ---- open / close ---- */

static void parse_conninfo(wd_pg *pg, PQconninfoOption *opts) {
    const char *host = NULL, *hostaddr = NULL, *port = NULL, *db = NULL, *user = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        if (strcmp(o->keyword, "password") == 0)
            wd_utf8_copy(pg->password, sizeof pg->password, o->val);
        else if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
        else if (strcmp(o->keyword, "user") == 0)
            user = o->val;
    }
    snprintf(pg->label, sizeof pg->label, "%s:%s/%s", host ? host : hostaddr ? hostaddr : "local",
             port ? port : "5432", db ? db : user ? user : "default");
}

static int check_opts(const wd_pg_opts *o, char *err, size_t errlen) {
    const char *why = NULL;
    if (o->conninfo == NULL)
        why = "conninfo is required";
    else if (strlen(o->conninfo) > WD_PG_CONNINFO_MAX)
        why = "conninfo is too long";
    else if (o->name != NULL && (o->name[0] == '\0' || strlen(o->name) > WD_PG_NAME_MAX))
        why = "name must be 1..63 characters";
    else if (o->connect_timeout_ms == 0)
        why = "connect_timeout must be at least 1 ms";
    else if (o->reconnect_initial_ms == 0 || o->reconnect_max_ms < o->reconnect_initial_ms)
        why = "reconnect_initial must be >= 1 ms and <= reconnect_max";
    else if (!(o->reconnect_multiplier >= 1.0 && o->reconnect_multiplier <= 10.0))
        why = "reconnect_multiplier must be within 1..10";
    else if (!(o->reconnect_jitter >= 0.0 && o->reconnect_jitter <= 0.5))
        why = "reconnect_jitter must be within 0..0.5";
    else if (o->queue_max == 0)
        why = "queue_max must be at least 1";
    if (why == NULL)
        return 0;
    if (errlen > 0)
        snprintf(err, errlen, "%s", why);
    return WD_EINVAL;
}

static int metrics_init(wd_pg *pg, wd_metrics *reg, char *err, size_t errlen) {
    static const char *const l_client[] = {"client", NULL};
    static const char *const l_class[] = {"client", "class", NULL};
    static const char *const l_state[] = {"client", "state", NULL};
    static const char *const classes[] = {"transient", "permanent", "critical"};
    static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    wd_metric *q = wd_metric_counter(reg, "warden_pg_queries_total",
                                     "Statements completed by the PostgreSQL client.", l_client);
    wd_metric *e = q ? wd_metric_counter(reg, "warden_pg_errors_total",
                                         "Failed statements by error class.", l_class)
                     : NULL;
    wd_metric *rc = e ? wd_metric_counter(reg, "warden_pg_reconnects_total",
                                          "Connections re-established after a loss.", l_client)
                      : NULL;
    wd_metric *lat = rc ? wd_metric_histogram(reg, "warden_pg_query_duration_seconds",
                                              "Time from sending a request to its last result.",
                                              l_client, bounds, sizeof bounds / sizeof bounds[0])
                        : NULL;
    wd_metric *st = lat ? wd_metric_gauge(reg, "warden_pg_connection_state",
                                          "1 for the connection's current state.", l_state)
                        : NULL;
    if (st == NULL) {
        int rc2 = wd_metrics_error(reg);
        snprintf(err, errlen, "cannot register the pg metrics: %s", wd_strerror(rc2));
        return rc2 != 0 ? rc2 : WD_EINVAL;
    }
    const char *const v[] = {pg->name, NULL};
    pg->m_queries = wd_metric_series(q, v);
    for (int i = 0; i < 3; i++) {
        const char *const vc[] = {pg->name, classes[i], NULL};
        pg->m_err[i] = wd_metric_series(e, vc);
    }
    pg->m_reconnects = wd_metric_series(rc, v);
    pg->m_latency = wd_metric_series(lat, v);
    for (int i = 0; i < WD_PG_N_STATES; i++) {
        const char *const vs[] = {pg->name, state_names[i], NULL};
        pg->m_state[i] = wd_metric_series(st, vs);
    }
    return 0;
}

int wd_pg_open(uv_loop_t *loop, const wd_pg_opts *opts, wd_pg **out, char *err, size_t errlen) {
    char perr[WD_PG_ERR_MAX + 1];
    char *pqerr = NULL;
    int rc;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    else
        err = perr, errlen = sizeof perr;
    if (loop == NULL || opts == NULL || out == NULL) {
        snprintf(err, errlen, "loop, opts and out are required");
        return WD_EINVAL;
    }
    *out = NULL;
    if ((rc = check_opts(opts, err, errlen)) != 0)
        return rc;
    PQconninfoOption *ci = PQconninfoParse(opts->conninfo, &pqerr);
    if (ci == NULL) {
        char clean[WD_PG_ERR_MAX + 1];
        unquote_fragments(pqerr != NULL ? pqerr : "out of memory", clean, sizeof clean);
        snprintf(err, errlen, "invalid conninfo: %s", clean);
        PQfreemem(pqerr);
        return pqerr != NULL ? WD_EINVAL : WD_ENOMEM;
    }
    wd_pg *pg = calloc(1, sizeof *pg);
    if (pg == NULL) {
        PQconninfoFree(ci);
        snprintf(err, errlen, "out of memory");
        return WD_ENOMEM;
    }
    pg->loop = loop;
    pg->opts = *opts;
    snprintf(pg->name, sizeof pg->name, "%s", opts->name ? opts->name : "pg");
    snprintf(pg->conninfo, sizeof pg->conninfo, "%s", opts->conninfo);
    pg->opts.name = pg->name;
    pg->opts.conninfo = pg->conninfo;
    parse_conninfo(pg, ci);
    PQconninfoFree(ci);
    pg->poll_fd = -1;
    if (opts->metrics != NULL && (rc = metrics_init(pg, opts->metrics, err, errlen)) != 0) {
        free(pg);
        return rc;
    }
    wd_rng_seed(&pg->rng, opts->seed ? opts->seed : wd_clock_mono_ns());
    brk_init(&pg->breaker, pg->name, &opts->breaker, opts->seed ? opts->seed : wd_clock_mono_ns());
    uv_timer_init(loop, &pg->io_timer);
    uv_timer_init(loop, &pg->retry_timer);
    pg->io_timer.data = pg;
    pg->retry_timer.data = pg;
    *out = pg;
    connect_start(pg);
    return 0;
}

int wd_pg_close(wd_pg *pg, wd_pg_close_cb close_cb, void *arg) {
    if (pg == NULL)
        return WD_EINVAL;
    if (pg->state == WD_PG_CLOSED)
        return WD_ECLOSED;
    pg->close_cb = close_cb;
    pg->close_arg = arg;
    teardown(pg, WD_PG_CLOSED);
    uv_timer_stop(&pg->retry_timer);
    fail_all(pg, WD_ECLOSED, "client closed", WD_ECLOSED, "client closed");
    pg->closing_handles += 2;
    uv_close((uv_handle_t *)&pg->io_timer, timer_closed);
    uv_close((uv_handle_t *)&pg->retry_timer, timer_closed);
    return 0;
}

wd_pg_state wd_pg_get_state(const wd_pg *pg) { return pg->state; }
brk_breaker *wd_pg_breaker(wd_pg *pg) { return &pg->breaker; }
const char *wd_pg_label(const wd_pg *pg) { return pg->label; }
const char *wd_pg_last_error(const wd_pg *pg) { return pg->last_error; }
int wd_pg_backend_pid(const wd_pg *pg) {
    return pg->state == WD_PG_READY && pg->conn != NULL ? PQbackendPID(pg->conn) : 0;
}
size_t wd_pg_pending(const wd_pg *pg) { return pg->queued + (pg->inflight != NULL); }
uint64_t wd_pg_connects(const wd_pg *pg) { return pg->connects; }
