/* Private to the PostgreSQL client (common/pg*.c): the one state struct and
 * the functions the files share.
 *
 *   pg_conn.c    open/close, connecting, the poll handle, reconnect backoff,
 *                dropping a connection, metrics of the connection state
 *   pg_query.c   the request queue, sending (plain or pipelined), results,
 *                the client deadline, the breaker and per-request metrics
 *   pg_notify.c  LISTEN bookkeeping and NOTIFY delivery
 *   pg_conf.c    the [postgres] config table */
#ifndef WD_PG_INT_H
#define WD_PG_INT_H

#include "pg.h"
#include "backoff.h"

typedef enum { PGR_USER = 0, PGR_SETUP } pg_req_origin;

/* One request: n statements, copied into the request's own allocation. */
typedef struct pg_req {
    struct pg_req *next;
    pg_req_origin origin;
    bool pipeline;      /* a batch: pipeline mode, one sync */
    bool prepare;       /* stmts[0] is a PQsendPrepare (name, sql, nparams) */
    bool admitted;      /* holds a breaker permit: gen is valid */
    uint64_t gen;       /* breaker generation at admission */
    uint64_t start_ns;  /* when it was sent */
    size_t n;           /* statements */
    size_t done;        /* statements whose results were delivered */
    bool failed;        /* a statement of it failed (breaker outcome below) */
    bool brk_failure;   /* that failure counts against the breaker */
    PGresult *res;      /* result of the current statement, not yet delivered */
    wd_pg_stmt *stmts;  /* n entries, pointing into the same allocation */
    wd_pg_cb cb;
    void *arg;
} pg_req;

typedef struct {
    char name[WD_PG_STMT_NAME_MAX + 1];
    char *sql; /* owned */
    int nparams;
} pg_prepared;

typedef struct {
    char channel[WD_PG_CHANNEL_MAX + 1];
    wd_pg_notify_cb cb;
    void *arg;
} pg_listen;

struct wd_pg {
    uv_loop_t *loop;
    wd_pg_opts opts; /* conninfo and name point at the copies below */
    char name[WD_PG_NAME_MAX + 1];
    char conninfo[WD_PG_CONNINFO_MAX + 1];
    char password[WD_PG_CONNINFO_MAX + 1]; /* only to scrub messages; "" if none */
    char label[WD_PG_LABEL_MAX + 1];       /* host:port/dbname */
    char last_error[WD_PG_ERR_MAX + 1];    /* scrubbed */
    char msg[WD_PG_ERR_MAX + 1];           /* scratch for a callback's message */

    wd_pg_state state;
    PGconn *conn;        /* NULL unless CONNECTING or READY */
    uint64_t conn_epoch; /* +1 whenever conn is dropped: stale loops stop */
    uv_poll_t *poll;     /* heap: re-created when the socket changes */
    int poll_fd;
    int poll_events;
    uv_timer_t io_timer;    /* connect timeout, or the in-flight deadline */
    uv_timer_t retry_timer; /* reconnect backoff */
    uint32_t attempts;      /* failed connects since the last success */
    uint64_t connects;
    wd_rng rng;

    pg_req *inflight;
    pg_req *head, *tail; /* waiting, FIFO */
    size_t queued;

    pg_prepared prepared[WD_PG_PREPARED_MAX];
    size_t n_prepared;
    pg_listen listens[WD_PG_LISTENS_MAX];
    size_t n_listens;

    brk_breaker breaker;

    /* metrics; all NULL without a registry */
    wd_series *m_queries, *m_err[3], *m_reconnects, *m_latency;
    wd_series *m_state[WD_PG_N_STATES];

    int closing_handles; /* handles whose close callback is still due */
    wd_pg_close_cb close_cb;
    void *close_arg;
};

/* pg_conn.c */
void pg_set_state(wd_pg *pg, wd_pg_state s);
/* Drops the connection (if any): in-flight request fails with status/msg,
 * waiting ones with WD_EUNAVAIL, then a reconnect is scheduled unless the
 * client is closing. */
void pg_conn_lost(wd_pg *pg, int status, const char *msg);
/* Copies src into dst with every occurrence of the password replaced. */
void pg_scrub(const wd_pg *pg, const char *src, char *dst, size_t dstlen);
/* Sets the poll handle's events (READY state). */
void pg_watch(wd_pg *pg, int events);

/* pg_query.c */
/* Sends the next waiting request when none is in flight. */
void pg_kick(wd_pg *pg);
/* Reads and handles whatever results are ready. */
void pg_drain(wd_pg *pg);
/* Fails one request with status (callbacks of every remaining statement). */
void pg_req_fail(wd_pg *pg, pg_req *r, int status, wd_errclass cls, const char *msg);
pg_req *pg_queue_pop(wd_pg *pg);
/* Queues a client statement (LISTEN, UNLISTEN) when connected. */
int pg_queue_internal(wd_pg *pg, const char *sql);
/* Builds a request from statements; NULL on ENOMEM. */
pg_req *pg_req_new(const wd_pg_stmt *stmts, size_t n);
void pg_req_free(pg_req *r);
/* Queues the connect-time setup: SET, PREPAREs, LISTENs. */
int pg_setup_queue(wd_pg *pg);
void pg_deadline_cb(uv_timer_t *t);

/* pg_notify.c */
void pg_notify_deliver(wd_pg *pg);
int pg_listen_sql(const char *verb, const char *channel, char *buf, size_t buflen);

#endif
