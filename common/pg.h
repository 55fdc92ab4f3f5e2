/* PostgreSQL client on libpq in non-blocking mode, driven by the caller's
 * libuv loop: uv_poll on PQsocket() and uv_timer for timeouts. Nothing here
 * blocks the loop.
 *
 * Requests. Requests run one at a time on the one connection, in the order
 * they were made (a FIFO queue, at most opts.queue_max waiting). A batch
 * (wd_pg_batch) is one request sent in pipeline mode: every statement goes
 * out at once followed by one sync, so a batch costs one round trip. The
 * statements of a batch run in one implicit transaction: when one fails, the
 * ones after it are skipped (WD_ESTATE, "skipped") and the ones before it are
 * rolled back. One request at a time keeps the error of one caller from
 * aborting another caller's statements, as pipelining across callers would.
 *
 * Timeouts. connect_timeout bounds each connection attempt (libpq's own
 * connect_timeout only applies to blocking connects). statement_timeout is
 * set on the server at every connect (SET statement_timeout), so a slow
 * statement fails with SQLSTATE 57014 and the connection stays usable; the
 * client also holds a deadline of statement_timeout + deadline_grace per
 * request, for a server that does not answer at all (a black hole, a
 * stopped process). When that deadline passes the connection is DROPPED, not
 * cancelled: PQcancel opens a second connection synchronously and would block
 * the loop for as long as the unreachable server takes to fail it. The
 * request fails with WD_ETIMEDOUT and the client reconnects.
 *
 * Reconnect. A lost or failed connection is retried after a delay of
 * reconnect_initial * reconnect_multiplier^n (n = failed attempts so far),
 * capped at reconnect_max, with +-reconnect_jitter. After each connect the
 * client first re-runs SET statement_timeout, then every remembered prepared
 * statement (wd_pg_prepare), then every LISTEN (wd_pg_listen), before any
 * queued request: when a request made after the reconnect completes, these
 * are in place. Requests waiting while a connection attempt runs are sent
 * once it succeeds, and fail with WD_EUNAVAIL when it fails. While the
 * client waits to reconnect, new requests fail at once with WD_EUNAVAIL
 * (transient, nothing was sent) and count as breaker failures.
 *
 * Breaker. Every request asks the breaker first; while it is open the call
 * returns WD_EOPEN at once, does no I/O and its callback never runs. A
 * request's outcome is a breaker failure when the connection was lost or
 * missing, on a timeout (client deadline or SQLSTATE 57014) and on a
 * transient or critical SQLSTATE; a permanent SQL error (23505, 42601...)
 * fails only that request: the server answered, it is healthy.
 *
 * Classification: wd_classify_sqlstate() (common/retry.h) on the SQLSTATE.
 * Errors without one (lost connection, timeouts, not connected) are
 * transient. 57014 keeps the class wd_classify_sqlstate gives it (permanent:
 * the same statement would time out again) but its status is WD_ETIMEDOUT.
 *
 * Secrets. The conninfo may hold a password. It is never logged, never put
 * in an error text, a metric or a label: the client is shown as
 * "host:port/dbname", and libpq's messages are scrubbed of the password.
 *
 * DNS. libpq resolves host names synchronously inside PQconnectPoll; use an
 * address (host=127.0.0.1 or hostaddr=) where a slow resolver would matter.
 *
 * Metrics (when opts.metrics is set), all labelled client=NAME:
 *   warden_pg_queries_total             statements completed (sent or failed
 *                                       fast; not WD_EOPEN rejections, not
 *                                       the client's own setup statements)
 *   warden_pg_errors_total{class}       failed statements by class
 *                                       (transient, permanent, critical)
 *   warden_pg_reconnects_total          connections established after the first
 *   warden_pg_query_duration_seconds    histogram, one sample per request sent
 *   warden_pg_connection_state{state}   1 for the current state, 0 otherwise
 * Metric names are registered once per registry: two clients need two
 * registries until metrics.h offers a lookup (see the report of issue 3).
 *
 * Ownership. wd_pg_open allocates the client; wd_pg_close releases it after
 * its handles are closed (close_cb runs last). Every string passed in is
 * copied. A result's PGresult belongs to the client and is valid only during
 * the callback. Not thread-safe: one loop. */
#ifndef WD_PG_H
#define WD_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "breaker.h"
#include "config.h"
#include "metrics.h"
#include "retry.h"

#define WD_PG_NAME_MAX 63        /* client name (the metrics' client label) */
#define WD_PG_CONNINFO_MAX 1023  /* conninfo / DSN text */
#define WD_PG_LABEL_MAX 255      /* "host:port/dbname" */
#define WD_PG_ERR_MAX 511        /* error texts kept by the client */
#define WD_PG_STMT_NAME_MAX 63   /* prepared statement names */
#define WD_PG_CHANNEL_MAX 63     /* LISTEN channel names */
#define WD_PG_PREPARED_MAX 64    /* remembered prepared statements */
#define WD_PG_LISTENS_MAX 32     /* remembered LISTEN channels */
#define WD_PG_PARAMS_MAX 1024    /* parameters of one statement */
#define WD_PG_BATCH_MAX 256      /* statements in one batch */
#define WD_PG_QUEUE_DEFAULT 1024 /* requests waiting */

typedef struct wd_pg wd_pg;

typedef enum {
    WD_PG_CONNECTING = 0, /* an attempt is under way */
    WD_PG_READY,          /* connected */
    WD_PG_BACKOFF,        /* waiting to reconnect */
    WD_PG_CLOSED,         /* wd_pg_close was called */
} wd_pg_state;
#define WD_PG_N_STATES 4

typedef struct {
    const char *conninfo; /* required: "host=... port=..." or a postgresql:// URI */
    const char *name;     /* client name for logs and metrics; default "pg" */
    uint64_t connect_timeout_ms;   /* default 10 s; >= 1 */
    uint64_t statement_timeout_ms; /* default 30 s; 0: none, and no client deadline */
    uint64_t deadline_grace_ms;    /* default 2 s: client deadline past statement_timeout */
    uint64_t reconnect_initial_ms; /* default 1 s; >= 1 */
    uint64_t reconnect_max_ms;     /* default 120 s; >= reconnect_initial_ms */
    double reconnect_multiplier;   /* default 1.6; 1..10 */
    double reconnect_jitter;       /* default 0.2 (+-20 %); 0..0.5 */
    size_t queue_max;              /* default WD_PG_QUEUE_DEFAULT; >= 1 */
    brk_config breaker;            /* default brk_config_defaults() */
    wd_metrics *metrics;           /* NULL: no metrics; not owned */
    uint64_t seed;                 /* jitter seed; 0: from the clock */
} wd_pg_opts;

/* What a callback gets. Valid only during the callback. */
typedef struct {
    int status;            /* 0, or WD_E*: see below */
    wd_errclass errclass;  /* meaningful when status != 0 */
    const char *sqlstate;  /* five characters, or "" when the server sent none */
    const char *message;   /* "" on success; never holds the password */
    const PGresult *res;   /* the statement's result (rows), or NULL; read with
                            * PQntuples/PQgetvalue... during the callback only */
    size_t index;          /* the statement's index in a batch (0 otherwise) */
    bool last;             /* this is the request's last callback */
} wd_pg_result;
/* status: WD_ETRANSIENT / WD_EPERMANENT / WD_ECRITICAL for a server error by
 * its class, WD_ETIMEDOUT (57014 or the client deadline), WD_EIO (connection
 * lost during the request), WD_EUNAVAIL (not connected; nothing was sent),
 * WD_ESTATE (batch statement skipped after an earlier one failed),
 * WD_ECLOSED (wd_pg_close before it completed). */

typedef void (*wd_pg_cb)(wd_pg *pg, const wd_pg_result *r, void *arg);
typedef void (*wd_pg_notify_cb)(wd_pg *pg, const char *channel, const char *payload, int be_pid,
                                void *arg);
typedef void (*wd_pg_close_cb)(void *arg);

/* One statement of a batch: SQL text, or the name of a prepared statement. */
typedef struct {
    const char *sql;       /* SQL with $1.. placeholders, or NULL */
    const char *stmt_name; /* prepared statement, used when sql is NULL */
    int nparams;
    const char *const *params; /* text values; a NULL entry is SQL NULL */
} wd_pg_stmt;

void wd_pg_opts_default(wd_pg_opts *o);

/* Starts connecting and returns at once. WD_EINVAL (bad options or conninfo,
 * err says which; never quoting a value of the conninfo), WD_ENOMEM,
 * WD_EEXIST (the metric names are already in opts->metrics). On success
 * *out is the client; queries made before the connection is up wait for it. */
int wd_pg_open(uv_loop_t *loop, const wd_pg_opts *opts, wd_pg **out, char *err, size_t errlen);

/* Each request returns 0 (cb will run exactly once, or once per statement
 * for a batch, the last with r->last) or an error and cb never runs:
 * WD_EOPEN (breaker open), WD_EUNAVAIL (waiting to reconnect), WD_EBUSY
 * (queue full), WD_ECLOSED, WD_EINVAL (NULL or oversize arguments).
 * cb may be NULL. Parameters are text; their types are inferred. */
int wd_pg_query(wd_pg *pg, const char *sql, int nparams, const char *const *params, wd_pg_cb cb,
                void *arg);
int wd_pg_exec_prepared(wd_pg *pg, const char *stmt_name, int nparams,
                        const char *const *params, wd_pg_cb cb, void *arg);
int wd_pg_batch(wd_pg *pg, const wd_pg_stmt *stmts, size_t n, wd_pg_cb cb, void *arg);

/* Prepares stmt_name and remembers it, so it is prepared again after every
 * reconnect; a permanent error (bad SQL) forgets it. Re-preparing a name
 * already remembered replaces it (the server's copy is DEALLOCATEd first).
 * Errors as for wd_pg_query, and WD_ETOOBIG past WD_PG_PREPARED_MAX. */
int wd_pg_prepare(wd_pg *pg, const char *stmt_name, const char *sql, int nparams, wd_pg_cb cb,
                  void *arg);

/* LISTENs on channel (1..WD_PG_CHANNEL_MAX of [A-Za-z0-9_], case-sensitive:
 * send with pg_notify('channel', payload)) and calls notify_cb for each
 * NOTIFY; re-issued after every reconnect. Does not go through the breaker
 * (it is a subscription, not a call). 0, WD_EINVAL, WD_EEXIST (already
 * listening), WD_ETOOBIG, WD_ECLOSED. A request made after it completes
 * after the LISTEN took effect. */
int wd_pg_listen(wd_pg *pg, const char *channel, wd_pg_notify_cb notify_cb, void *arg);
int wd_pg_unlisten(wd_pg *pg, const char *channel);

/* Fails every pending request with WD_ECLOSED (their callbacks run before
 * this returns), drops the connection and closes the handles; close_cb(arg)
 * runs from the loop once they are closed, then the client is freed. May be
 * called from a callback. A second call returns WD_ECLOSED. */
int wd_pg_close(wd_pg *pg, wd_pg_close_cb close_cb, void *arg);

wd_pg_state wd_pg_get_state(const wd_pg *pg);
const char *wd_pg_state_name(wd_pg_state s); /* "connecting", "ready", ... */
brk_breaker *wd_pg_breaker(wd_pg *pg);
/* "host:port/dbname": safe to log. */
const char *wd_pg_label(const wd_pg *pg);
/* The last connection error ("" if none), scrubbed of the password. */
const char *wd_pg_last_error(const wd_pg *pg);
/* The server process of the current connection, 0 when not connected. */
int wd_pg_backend_pid(const wd_pg *pg);
/* Requests waiting or in flight. */
size_t wd_pg_pending(const wd_pg *pg);
/* Connections established since open (the first one included). */
uint64_t wd_pg_connects(const wd_pg *pg);

/* ---- the [postgres] config section (common/pg_conf.c) ---- */

typedef struct {
    char dsn[WD_PG_CONNINFO_MAX + 1];
    uint64_t connect_timeout_ms;
    uint64_t statement_timeout_ms;
    uint64_t reconnect_initial_ms;
    uint64_t reconnect_max_ms;
    double reconnect_multiplier;
    double reconnect_jitter;
} wd_pg_conf;

/* The table of a [postgres]-style section: dsn (required), connect_timeout,
 * statement_timeout, reconnect_initial, reconnect_max, reconnect_multiplier,
 * reconnect_jitter. Apply it with wd_conf_apply_section(); register it with
 * wd_conf_register_section() for check-config. */
extern const wd_conf_field wd_pg_conf_fields[];
extern const size_t wd_pg_conf_n_fields;
/* Fills the options from a loaded section: o->conninfo points into c, which
 * must outlive the wd_pg_open call. Other fields of o are left as they are. */
void wd_pg_conf_to_opts(const wd_pg_conf *c, wd_pg_opts *o);

#endif
