/* Private to common/redis*.c: the client's state and the calls between its
 * files (redis_conn.c: connections, reconnect, health; redis_cmd.c: commands,
 * timeouts, breaker, metrics; redis_sub.c: pub/sub; redis_opts.c: options,
 * url, metric families; redis_conf.c: the config table). */
#ifndef WD_REDIS_INT_H
#define WD_REDIS_INT_H

#include "redis.h"

#include <hiredis/async.h>

#define WD_REDIS_HEALTH_CHANNEL_MAX 127
#define WD_REDIS_CMDNAME_MAX 31   /* command label; longer names count as "other" */
#define WD_REDIS_CMDCACHE 16      /* command name -> counter series, per client */
#define WD_REDIS_IP_MAX 64        /* a numeric address, v6 included */
#define WD_REDIS_REQ_CACHE 64     /* finished requests kept for reuse, per client */

typedef struct wd_redis_req wd_redis_req;
typedef struct wd_redis_conn wd_redis_conn;

/* A FIFO of requests (intrusive, doubly linked). */
typedef struct {
    wd_redis_req *head, *tail;
    uint32_t n;
} wd_redis_list;

/* One command, from submission to its callback. While it is in flight the
 * hiredis callback list holds it too (privdata); hiredis calls back exactly
 * once (with the reply, or NULL when the context goes away), and that call
 * frees it. A request that timed out has had its user callback already
 * (finished) and waits only for that last hiredis call. */
struct wd_redis_req {
    wd_redis_req *next, *prev;
    wd_redis *r;
    wd_redis_cb cb;
    void *arg;
    char *cmd; /* formatted (RESP), until written */
    size_t cmdlen;
    bool cmd_sds; /* cmd is an sds string (redisFreeSdsCommand), else malloc'd */
    uint64_t gen;      /* breaker generation */
    bool admitted;     /* the breaker admitted it: its result must be recorded */
    bool finished;     /* the user callback ran (timeout); hiredis still owns it */
    uint64_t start_ns, deadline_ns;
    int status; /* for a request failed before any I/O (done list) */
    char error[WD_REDIS_ERRTEXT_MAX + 1];
};

/* One hiredis connection and its life: the command connection and the
 * pub/sub connection are each one of these. */
struct wd_redis_conn {
    wd_redis *r;
    bool is_sub;
    bool started; /* the pub/sub connection opens on the first subscription */
    redisAsyncContext *ac; /* NULL when there is no live context */
    wd_redis_state state;
    uint32_t attempt;      /* failed attempts since the last handshake */
    uint32_t hs_pending;   /* handshake replies still due */
    bool hs_failed;
    bool dropping;         /* inside conn_drop: NULL replies carry its reason */
    bool drop_requested;   /* drop from the idle handle (not inside hiredis) */
    bool ping_outstanding;
    /* Batched writes (redis_conn.c): hiredis has output the next flush
     * writes; inside this connection's poll callback; inside a flush. */
    bool flush_pending, in_poll, in_flush;
    uint64_t ping_sent_ns;
    uv_getaddrinfo_t *gai; /* current lookup, or NULL; owned by the lookup */
    uv_timer_t connect_timer, reconnect_timer, ping_timer, timeout_timer;
    uint64_t timeout_due_ns; /* when timeout_timer fires, 0 = not armed */
    wd_redis_list pending;   /* submitted before the handshake ended */
    wd_redis_list inflight;  /* written, reply due (send order) */
    char last_error[WD_REDIS_ERRTEXT_MAX + 1];
};

typedef struct {
    bool used;
    bool pattern;
    bool confirmed;
    char name[WD_REDIS_CHANNEL_MAX + 1];
    size_t len;
    wd_redis_msg_cb cb;
    void *arg;
} wd_redis_sub;

/* The client. One per wd_redis_open(); freed after its close callback. */
struct wd_redis {
    uv_loop_t *loop;
    char name[WD_REDIS_NAME_MAX + 1];
    char host[WD_REDIS_HOST_MAX + 1];
    int port, db;
    char user[WD_REDIS_USER_MAX + 1];
    char password[WD_REDIS_PASSWORD_MAX + 1]; /* secret: only ever sent in AUTH */
    uint64_t connect_timeout_ms, command_timeout_ms, ping_interval_ms;
    uint64_t reconnect_initial_ms, reconnect_max_ms;
    double reconnect_multiplier, reconnect_jitter;
    size_t max_pending;
    wd_rng rng; /* reconnect jitter */
    brk_breaker brk;

    wd_redis_conn cmd, sub;
    wd_redis_list done; /* failed before any I/O, callback due from the idle handle */
    uv_idle_t idle;     /* runs deferred work: callbacks, drops, close */
    uint32_t nreqs;     /* requests alive (queued, in flight, done) */
    wd_redis_req *spare; /* finished requests for reuse (next-linked): no malloc per command */
    uint32_t nspare;

    wd_redis_sub subs[WD_REDIS_SUBS_MAX];
    char health_channel[WD_REDIS_HEALTH_CHANNEL_MAX + 1];

    /* metrics: NULL series when there is no registry */
    wd_redis_metrics m;
    bool have_metrics;
    wd_series *s_errors[3], *s_rejected, *s_reconnects, *s_duration, *s_state[WD_REDIS_STATES];
    wd_series *s_messages;
    struct {
        char name[WD_REDIS_CMDNAME_MAX + 1];
        wd_series *s;
    } cmdcache[WD_REDIS_CMDCACHE];
    uint32_t cmdcache_next;

    wd_redis_stats stats;
    bool closing, close_started;
    uint32_t open_handles; /* closes still due before the client is freed */
    uint32_t gai_outstanding;
    wd_redis_close_cb close_cb;
    void *close_arg;
};

/* redis_opts.c */
int rds_opts_apply(wd_redis *r, const wd_redis_opts *o, char *err, size_t errlen);
int rds_metrics_init(wd_redis *r, const wd_redis_opts *o, char *err, size_t errlen);
void rds_metric_state(wd_redis *r, wd_redis_state s);
void rds_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* redis_conn.c */
void rds_conn_init(wd_redis *r, wd_redis_conn *c, bool is_sub);
void rds_conn_start(wd_redis_conn *c);
void rds_conn_request_drop(wd_redis_conn *c, const char *why);
void rds_conn_drop(wd_redis_conn *c, const char *why); /* never inside hiredis */
void rds_conn_lost(wd_redis_conn *c, const char *why);
void rds_conn_pong(wd_redis_conn *c);
void rds_conn_close(wd_redis_conn *c);
void rds_conn_flush(wd_redis_conn *c); /* writes what hiredis buffered; never inside hiredis */
void rds_kick(wd_redis *r);
void rds_timer_close(wd_redis *r, uv_timer_t *t);
void rds_gai_done(wd_redis *r); /* redis.c: a lookup ended */

/* redis_cmd.c */
void rds_list_push(wd_redis_list *l, wd_redis_req *q);
void rds_list_remove(wd_redis_list *l, wd_redis_req *q);
void rds_send_pending(wd_redis_conn *c);
void rds_fail_pending(wd_redis_conn *c, int status, const char *why);
void rds_arm_timeout(wd_redis_conn *c);
void rds_timeout_cb(uv_timer_t *t);
void rds_deliver_done(wd_redis *r, bool all);
void rds_count_error(wd_redis *r, wd_errclass cls);
void rds_free_spares(wd_redis *r);

/* redis_sub.c */
void rds_sub_resubscribe(wd_redis_conn *c);
void rds_sub_ping(wd_redis_conn *c);
void rds_sub_on_lost(wd_redis *r);

#endif
