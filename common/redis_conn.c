/* Redis client: one connection's life. Resolve (uv_getaddrinfo unless the
 * host is numeric), connect (hiredis, non-blocking), handshake (AUTH,
 * SELECT, PING), READY, health PINGs, and after any failure a reconnect
 * with growing, jittered delays. Used for both the command connection and
 * the pub/sub connection. See redis.h. */
#include "redis_int.h"

#include <arpa/inet.h>
#include <hiredis/adapters/libuv.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "log.h"
#include "wd_error.h"

#define RDS_ATTEMPT_MAX 64 /* the delay is capped long before this */

/* ---- the libuv adapter, with its error path fixed and its writes batched ----
 *
 * hiredis 0.14's adapter returns from its poll callback when libuv reports
 * an error status (libuv does so for POLLERR: a refused connect, a reset),
 * and libuv has stopped the handle by then: hiredis never hears of the
 * error and the connection hangs until a timeout. rds_poll_cb hands an
 * error to hiredis as readiness instead, so its read or connect check sees
 * it.
 *
 * Writes: the adapter arms UV_WRITABLE for every command queued and drops
 * it once the output buffer is written, and libuv's uv_poll_start takes
 * the fd out of epoll and puts it back each time: with pipelining that was
 * four epoll_ctl and a second epoll_wait for every batch of commands, more
 * system calls than the read and the write themselves. On a connected
 * socket the buffer is now written without asking epoll first, once per
 * batch: at the end of the poll callback (the replies just read queued the
 * next commands), or from the client's idle handle for commands queued
 * anywhere else (a timer, the caller's own code). UV_WRITABLE is armed
 * only while connecting (hiredis learns of the connect that way) and after
 * a partial write, until the socket drains; read interest stays armed for
 * the connection's life, so the poll is touched only on those edges. */

static void rds_poll_cb(uv_poll_t *h, int status, int events);

static void rds_poll_set(redisLibuvEvents *p, int events) {
    if (events == p->events)
        return;
    p->events = events;
    if (events)
        uv_poll_start(&p->handle, events, rds_poll_cb);
    else
        uv_poll_stop(&p->handle);
}

/* Writes what hiredis has buffered for c, now. Not inside a hiredis
 * callback (an I/O error frees the context from here). */
void rds_conn_flush(wd_redis_conn *c) {
    redisAsyncContext *ac = c->ac;
    if (!c->flush_pending)
        return;
    c->flush_pending = false;
    if (!ac || !(ac->c.flags & REDIS_CONNECTED))
        return;
    if (((redisLibuvEvents *)ac->ev.data)->events & UV_WRITABLE)
        return; /* a partial write is waiting for the socket: the poll writes */
    c->in_flush = true;
    redisAsyncHandleWrite(ac); /* not all written: ev_add_write arms UV_WRITABLE */
    c->in_flush = false;
}

static void rds_poll_cb(uv_poll_t *h, int status, int events) {
    redisLibuvEvents *p = h->data;
    wd_redis_conn *c = p->context ? p->context->data : NULL;
    if (status < 0)
        events = UV_READABLE | UV_WRITABLE;
    if (c)
        c->in_poll = true;
    if (p->context != NULL && (events & UV_READABLE))
        redisAsyncHandleRead(p->context);
    if (p->context != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->context);
    if (c) {
        c->in_poll = false;
        /* the commands the replies' callbacks queued: one write for all */
        if (p->context != NULL)
            rds_conn_flush(c);
    }
    /* libuv stopped the handle on the error; resume if hiredis kept it. */
    if (status < 0 && p->context != NULL && p->events)
        uv_poll_start(&p->handle, p->events, rds_poll_cb);
}

static void ev_add_read(void *p) { rds_poll_set(p, ((redisLibuvEvents *)p)->events | UV_READABLE); }
static void ev_del_read(void *p) { rds_poll_set(p, ((redisLibuvEvents *)p)->events & ~UV_READABLE); }

/* hiredis has output buffered (a command was queued, or a write was
 * partial). */
static void ev_add_write(void *priv) {
    redisLibuvEvents *p = priv;
    redisAsyncContext *ac = p->context;
    wd_redis_conn *c = ac ? ac->data : NULL;
    if (!c || !(ac->c.flags & REDIS_CONNECTED) || c->in_flush) {
        /* connecting, or the socket is full: wait for it to be writable */
        rds_poll_set(p, p->events | UV_WRITABLE);
        return;
    }
    if ((p->events & UV_WRITABLE) || c->flush_pending)
        return; /* a write is due already */
    c->flush_pending = true;
    if (!c->in_poll) /* else the poll callback writes when hiredis returns */
        rds_kick(c->r);
}

static void ev_del_write(void *p) {
    rds_poll_set(p, ((redisLibuvEvents *)p)->events & ~UV_WRITABLE);
}

/* ---- state ---- */

static void set_state(wd_redis_conn *c, wd_redis_state s) {
    c->state = s;
    if (!c->is_sub) {
        c->r->stats.state = s;
        rds_metric_state(c->r, s);
    }
}

static void copy_error(wd_redis_conn *c, const char *why) {
    if (why && why != c->last_error)
        snprintf(c->last_error, sizeof c->last_error, "%s", why);
}

static const char *role(const wd_redis_conn *c) { return c->is_sub ? " (pub/sub)" : ""; }

static void reconnect_cb(uv_timer_t *t) {
    wd_redis_conn *c = t->data;
    wd_redis *r = c->r;
    r->stats.reconnects++;
    if (r->have_metrics)
        wd_counter_add(r->s_reconnects, 1);
    rds_conn_start(c);
}

/* min(max, initial * multiplier^attempt), then +- jitter. */
static void schedule_reconnect(wd_redis_conn *c) {
    wd_redis *r = c->r;
    set_state(c, WD_REDIS_BACKOFF);
    double d = (double)r->reconnect_initial_ms * pow(r->reconnect_multiplier, (double)c->attempt);
    if (d > (double)r->reconnect_max_ms)
        d = (double)r->reconnect_max_ms;
    double u = (double)wd_rng_upto(&r->rng, 1000000) / 1000000.0; /* 0..1 */
    d *= 1.0 + r->reconnect_jitter * (2.0 * u - 1.0);
    if (d > (double)r->reconnect_max_ms)
        d = (double)r->reconnect_max_ms;
    if (d < 1.0)
        d = 1.0;
    if (c->attempt < RDS_ATTEMPT_MAX)
        c->attempt++;
    uv_timer_start(&c->reconnect_timer, reconnect_cb, (uint64_t)d, 0);
}

/* The attempt ended before a context existed (lookup or connect(2) failed). */
static void attempt_failed(wd_redis_conn *c, const char *why) {
    wd_redis *r = c->r;
    copy_error(c, why);
    uv_timer_stop(&c->connect_timer);
    if (r->closing) {
        set_state(c, WD_REDIS_CLOSED);
        return;
    }
    wd_log(c->attempt == 0 ? WD_LOG_WARN : WD_LOG_DEBUG, "redis %s%s: %s", r->name, role(c),
           c->last_error);
    schedule_reconnect(c);
    rds_fail_pending(c, WD_EUNAVAIL, c->last_error);
}

/* The live context is going away (hiredis is freeing it, or conn_drop is
 * about to): forget it first, so that callbacks run from here on never use
 * it, then plan the next attempt and fail what waited for this one. */
void rds_conn_lost(wd_redis_conn *c, const char *why) {
    wd_redis *r = c->r;
    if (!c->ac)
        return;
    c->ac = NULL;
    c->flush_pending = false;
    bool was_ready = c->state == WD_REDIS_READY;
    copy_error(c, why);
    uv_timer_stop(&c->connect_timer);
    uv_timer_stop(&c->ping_timer);
    c->ping_outstanding = false;
    if (c->is_sub)
        rds_sub_on_lost(r);
    if (r->closing) {
        set_state(c, WD_REDIS_CLOSED);
        rds_fail_pending(c, WD_ECLOSED, "client closed");
        return;
    }
    if (was_ready)
        wd_log(WD_LOG_WARN, "redis %s%s: connection to %s:%d lost: %s", r->name, role(c), r->host,
               r->port, c->last_error);
    else
        wd_log(c->attempt == 0 ? WD_LOG_WARN : WD_LOG_DEBUG, "redis %s%s: %s", r->name, role(c),
               c->last_error);
    schedule_reconnect(c);
    rds_fail_pending(c, WD_EUNAVAIL, c->last_error);
}

/* Drops the live context now. Never called inside a hiredis callback. */
void rds_conn_drop(wd_redis_conn *c, const char *why) {
    redisAsyncContext *ac = c->ac;
    if (!ac)
        return;
    copy_error(c, why);
    c->dropping = true;
    rds_conn_lost(c, NULL);
    redisAsyncFree(ac); /* in-flight callbacks run now, with NULL replies */
    c->dropping = false;
}

/* From inside a hiredis callback: the idle handle drops it. */
void rds_conn_request_drop(wd_redis_conn *c, const char *why) {
    copy_error(c, why);
    c->drop_requested = true;
    rds_kick(c->r);
}

/* ---- health ---- */

static void ping_cb(uv_timer_t *t);

void rds_conn_pong(wd_redis_conn *c) {
    wd_redis *r = c->r;
    if (!c->ping_outstanding)
        return;
    c->ping_outstanding = false;
    if (r->ping_interval_ms && c->state == WD_REDIS_READY)
        uv_timer_start(&c->ping_timer, ping_cb, r->ping_interval_ms, 0);
}

static void on_ping(redisAsyncContext *ac, void *reply, void *privdata) {
    (void)ac;
    if (reply)
        rds_conn_pong(privdata);
}

/* Two phases on one timer: after the interval it sends a PING; if the
 * timer fires again before the answer (command_timeout_ms later), the
 * connection is dead or stuck and is dropped. */
static void ping_cb(uv_timer_t *t) {
    wd_redis_conn *c = t->data;
    wd_redis *r = c->r;
    if (c->state != WD_REDIS_READY || !c->ac)
        return;
    if (c->ping_outstanding) {
        char why[WD_REDIS_ERRTEXT_MAX + 1];
        snprintf(why, sizeof why, "health check: no PING reply within %llu ms",
                 (unsigned long long)r->command_timeout_ms);
        rds_count_error(r, WD_ERRCLASS_TRANSIENT);
        rds_conn_drop(c, why);
        return;
    }
    c->ping_outstanding = true;
    c->ping_sent_ns = wd_clock_mono_ns();
    if (c->is_sub)
        rds_sub_ping(c);
    else
        redisAsyncCommand(c->ac, on_ping, c, "PING");
    uv_timer_start(&c->ping_timer, ping_cb, r->command_timeout_ms, 0);
}

/* ---- handshake ---- */

static void conn_ready(wd_redis_conn *c) {
    wd_redis *r = c->r;
    uv_timer_stop(&c->connect_timer);
    c->attempt = 0;
    set_state(c, WD_REDIS_READY);
    r->stats.connects++;
    wd_log(WD_LOG_INFO, "redis %s%s: connected to %s:%d", r->name, role(c), r->host, r->port);
    if (r->ping_interval_ms)
        uv_timer_start(&c->ping_timer, ping_cb, r->ping_interval_ms, 0);
    if (c->is_sub)
        rds_sub_resubscribe(c);
    else
        rds_send_pending(c);
}

static void handshake_reply(wd_redis_conn *c, const redisReply *reply, bool is_auth) {
    wd_redis *r = c->r;
    if (c->hs_pending > 0)
        c->hs_pending--;
    if (reply->type == REDIS_REPLY_ERROR) {
        if (!c->hs_failed) {
            wd_errclass cls = is_auth ? WD_ERRCLASS_CRITICAL : wd_classify_redis_reply(reply->str);
            char why[WD_REDIS_ERRTEXT_MAX + 1];
            snprintf(why, sizeof why, "%s failed: %.120s", is_auth ? "AUTH" : "handshake",
                     reply->str ? reply->str : "");
            rds_count_error(r, cls);
            if (cls == WD_ERRCLASS_CRITICAL)
                wd_log(WD_LOG_ERROR, "redis %s%s: %s", r->name, role(c), why);
            c->hs_failed = true;
            rds_conn_request_drop(c, why);
        }
        return;
    }
    if (c->hs_pending == 0 && !c->hs_failed)
        conn_ready(c);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *privdata) {
    (void)ac;
    if (reply)
        handshake_reply(privdata, reply, true);
}

static void on_handshake(redisAsyncContext *ac, void *reply, void *privdata) {
    (void)ac;
    if (reply)
        handshake_reply(privdata, reply, false);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    if (status != REDIS_OK) {
        char why[WD_REDIS_ERRTEXT_MAX + 1];
        snprintf(why, sizeof why, "connect failed: %s", ac->errstr ? ac->errstr : "error");
        rds_conn_lost(ac->data, why);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    char why[WD_REDIS_ERRTEXT_MAX + 1];
    snprintf(why, sizeof why, "%s",
             status == REDIS_OK ? "disconnected" : (ac->errstr ? ac->errstr : "i/o error"));
    rds_conn_lost(ac->data, why);
}

static void connect_ip(wd_redis_conn *c, const char *ip) {
    wd_redis *r = c->r;
    char why[WD_REDIS_ERRTEXT_MAX + 1];
    redisAsyncContext *ac = redisAsyncConnect(ip, r->port);
    if (!ac) {
        attempt_failed(c, "connect: out of memory");
        return;
    }
    if (ac->err) {
        snprintf(why, sizeof why, "connect to %.100s:%d failed: %.60s", r->host, r->port, ac->errstr);
        redisAsyncFree(ac);
        attempt_failed(c, why);
        return;
    }
    if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        attempt_failed(c, "connect: cannot attach to the loop");
        return;
    }
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->data = c;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    c->flush_pending = false;
    c->hs_pending = 0;
    /* Queued now, written once the socket connects, in this order, before
     * anything else. */
    if (r->password[0]) {
        const char *argv[3] = {"AUTH", r->user, r->password};
        int argc = 2;
        if (r->user[0])
            argc = 3;
        else
            argv[1] = r->password;
        redisAsyncCommandArgv(ac, on_auth, c, argc, argv, NULL);
        c->hs_pending++;
    }
    if (!c->is_sub && r->db != 0) {
        redisAsyncCommand(ac, on_handshake, c, "SELECT %d", r->db);
        c->hs_pending++;
    }
    redisAsyncCommand(ac, on_handshake, c, "PING");
    c->hs_pending++;
}

static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    wd_redis_conn *c = req->data;
    wd_redis *r = c->r;
    bool current = c->gai == req;
    char ip[WD_REDIS_IP_MAX] = "";
    if (current)
        c->gai = NULL;
    if (current && status == 0 && res) {
        const void *a = res->ai_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
        inet_ntop(res->ai_family, a, ip, sizeof ip);
    }
    uv_freeaddrinfo(res);
    free(req);
    if (current && !r->closing) {
        if (ip[0]) {
            connect_ip(c, ip);
        } else {
            char why[WD_REDIS_ERRTEXT_MAX + 1];
            snprintf(why, sizeof why, "cannot resolve %.100s: %.60s", r->host,
                     status ? uv_strerror(status) : "no address");
            attempt_failed(c, why);
        }
    }
    rds_gai_done(r); /* last: a closing client may be freed here */
}

static void connect_timeout_cb(uv_timer_t *t) {
    wd_redis_conn *c = t->data;
    wd_redis *r = c->r;
    char why[WD_REDIS_ERRTEXT_MAX + 1];
    snprintf(why, sizeof why, "connect to %.100s:%d timed out after %llu ms", r->host, r->port,
             (unsigned long long)r->connect_timeout_ms);
    if (c->gai) {
        uv_cancel((uv_req_t *)c->gai); /* its callback still runs, and is ignored */
        c->gai = NULL;
        attempt_failed(c, why);
    } else if (c->ac) {
        rds_conn_drop(c, why);
    }
}

void rds_conn_start(wd_redis_conn *c) {
    wd_redis *r = c->r;
    struct in6_addr a6;
    c->started = true;
    c->hs_failed = false;
    set_state(c, WD_REDIS_CONNECTING);
    uv_timer_start(&c->connect_timer, connect_timeout_cb, r->connect_timeout_ms, 0);
    if (inet_pton(AF_INET, r->host, &a6) == 1 || inet_pton(AF_INET6, r->host, &a6) == 1) {
        connect_ip(c, r->host);
        return;
    }
    uv_getaddrinfo_t *req = malloc(sizeof *req);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = req ? uv_getaddrinfo(r->loop, req, on_gai, r->host, NULL, &hints) : UV_ENOMEM;
    if (rc != 0) {
        char why[WD_REDIS_ERRTEXT_MAX + 1];
        free(req);
        snprintf(why, sizeof why, "cannot resolve %.100s: %.60s", r->host, uv_strerror(rc));
        attempt_failed(c, why);
        return;
    }
    req->data = c;
    c->gai = req;
    r->gai_outstanding++;
}

void rds_conn_init(wd_redis *r, wd_redis_conn *c, bool is_sub) {
    c->r = r;
    c->is_sub = is_sub;
    c->state = WD_REDIS_CONNECTING;
    uv_timer_t *timers[] = {&c->connect_timer, &c->reconnect_timer, &c->ping_timer,
                            &c->timeout_timer};
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
        uv_timer_init(r->loop, timers[i]);
        timers[i]->data = c;
    }
}

void rds_conn_close(wd_redis_conn *c) {
    wd_redis *r = c->r;
    if (c->gai) {
        uv_cancel((uv_req_t *)c->gai);
        c->gai = NULL;
    }
    rds_fail_pending(c, WD_ECLOSED, "client closed");
    rds_conn_drop(c, "client closed");
    set_state(c, WD_REDIS_CLOSED);
    rds_timer_close(r, &c->connect_timer);
    rds_timer_close(r, &c->reconnect_timer);
    rds_timer_close(r, &c->ping_timer);
    rds_timer_close(r, &c->timeout_timer);
}
