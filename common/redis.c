/* Redis client: open, close, and the idle handle that runs deferred work.
 * See redis.h for the contract and redis_int.h for the state.
 *
 * Nothing that frees a hiredis context runs inside a hiredis callback: a
 * context freed from its own connect or reply callback is used again by
 * hiredis when the callback returns. Such work (dropping a connection,
 * closing the client) and the callbacks of requests that failed before any
 * I/O are queued and run from a uv_idle handle on the next loop iteration. */
#include "redis_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "wd_error.h"

static void idle_cb(uv_idle_t *h);

void rds_kick(wd_redis *r) {
    /* Once closing has started the handle is closing too; nothing is queued
     * after that (every call returns WD_ECLOSED). */
    if (!r->close_started)
        uv_idle_start(&r->idle, idle_cb);
}

/* The client goes once its last handle is closed and its last lookup ended. */
static void maybe_free(wd_redis *r) {
    if (!r->close_started || r->open_handles > 0 || r->gai_outstanding > 0)
        return;
    if (r->close_cb)
        r->close_cb(r, r->close_arg);
    rds_free_spares(r);
    memset(r->password, 0, sizeof r->password);
    free(r);
}

static void handle_closed(uv_handle_t *h) {
    wd_redis_conn *c = h->data;
    /* The idle handle's data is the client; the timers' is a connection. */
    wd_redis *r = h->type == UV_IDLE ? (wd_redis *)h->data : c->r;
    r->open_handles--;
    maybe_free(r);
}

void rds_timer_close(wd_redis *r, uv_timer_t *t) {
    uv_timer_stop(t);
    r->open_handles++;
    uv_close((uv_handle_t *)t, handle_closed);
}

static void close_now(wd_redis *r) {
    r->close_started = true;
    rds_conn_close(&r->cmd);
    rds_conn_close(&r->sub);
    rds_deliver_done(r, true);
    rds_metric_state(r, WD_REDIS_CLOSED);
    r->stats.state = WD_REDIS_CLOSED;
    uv_idle_stop(&r->idle);
    r->open_handles++;
    uv_close((uv_handle_t *)&r->idle, handle_closed);
}

static void idle_cb(uv_idle_t *h) {
    wd_redis *r = h->data;
    wd_redis_conn *conns[2] = {&r->cmd, &r->sub};
    for (int i = 0; i < 2; i++) {
        wd_redis_conn *c = conns[i];
        if (c->drop_requested) {
            c->drop_requested = false;
            rds_conn_drop(c, NULL);
        }
    }
    /* Only what is due now: a callback that resubmits on WD_EOPEN must not
     * keep this loop iteration going forever. */
    rds_deliver_done(r, false);
    if (r->closing && !r->close_started) {
        close_now(r);
        return;
    }
    /* Last: the commands queued by the callbacks above go in the same write. */
    rds_conn_flush(&r->cmd);
    rds_conn_flush(&r->sub);
    /* (a callback run by a failed flush may have closed the client) */
    if (r->done.n == 0 && !r->cmd.drop_requested && !r->sub.drop_requested && !r->closing)
        uv_idle_stop(&r->idle);
}

int wd_redis_open(uv_loop_t *loop, const wd_redis_opts *opts, wd_redis **out, char *err,
                  size_t errlen) {
    if (!loop || !opts || !out) {
        rds_set_err(err, errlen, "redis: NULL argument");
        return WD_EINVAL;
    }
    *out = NULL;
    wd_redis *r = calloc(1, sizeof *r);
    if (!r) {
        rds_set_err(err, errlen, "redis: out of memory");
        return WD_ENOMEM;
    }
    int rc = rds_opts_apply(r, opts, err, errlen);
    if (rc == 0)
        rc = rds_metrics_init(r, opts, err, errlen);
    if (rc != 0)
        goto fail;
    r->loop = loop;
    uint64_t seed = wd_clock_mono_ns() ^ (uint64_t)(uintptr_t)r;
    wd_rng_seed(&r->rng, seed);
    brk_init(&r->brk, r->name, &opts->breaker, seed * 31 + 7);
    /* Unique per client and process: a SUBSCRIBE to it is the pub/sub
     * connection's PING. */
    snprintf(r->health_channel, sizeof r->health_channel, "__warden:health:%s:%ld:%p", r->name,
             (long)getpid(), (void *)r);
    uv_idle_init(loop, &r->idle);
    r->idle.data = r;
    rds_conn_init(r, &r->cmd, false);
    rds_conn_init(r, &r->sub, true);
    r->sub.state = WD_REDIS_CLOSED;
    rds_conn_start(&r->cmd);
    *out = r;
    return 0;
fail:
    /* The password may be in r: do not leave it in freed memory. */
    memset(r->password, 0, sizeof r->password);
    free(r);
    return rc;
}

int wd_redis_close(wd_redis *r, wd_redis_close_cb close_cb, void *arg) {
    if (!r)
        return WD_EINVAL;
    if (r->closing)
        return WD_ESTATE;
    r->closing = true;
    r->close_cb = close_cb;
    r->close_arg = arg;
    uv_idle_start(&r->idle, idle_cb);
    return 0;
}

void rds_gai_done(wd_redis *r) {
    r->gai_outstanding--;
    maybe_free(r);
}

wd_redis_state wd_redis_get_state(const wd_redis *r) { return r->cmd.state; }
wd_redis_state wd_redis_sub_state(const wd_redis *r) { return r->sub.state; }
brk_breaker *wd_redis_breaker(wd_redis *r) { return &r->brk; }

void wd_redis_get_stats(const wd_redis *r, wd_redis_stats *out) {
    *out = r->stats;
    out->inflight = r->cmd.inflight.n;
    out->queued = r->cmd.pending.n;
    out->state = r->cmd.state;
}
