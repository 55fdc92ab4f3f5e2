/* The paper broker's price source: one Redis client (common/redis.h) named
 * PB_PRICES_CLIENT, whose breaker is also named so.
 *
 * Recovery. The broker has nothing to do while Redis is away, so its
 * breaker exists to fail orders fast (503 at once, no command timeout per
 * order), not to spare a struggling server. Two things bring it back
 * quickly once Redis answers again:
 *  - a short cooldown (PB_BRK_OPEN_MS growing to PB_BRK_OPEN_MAX_MS) instead
 *    of the seed's 60 s growing x2: that made the broker refuse orders for
 *    a minute or more after Redis had come back;
 *  - a completed handshake closes it at once: the client counts a
 *    connection only after AUTH/SELECT/PING are answered, which is a better
 *    probe than one order's trial call. There is no connect callback in
 *    the client, so watch_t compares its connect count every PB_WATCH_MS.
 * An operator's [breaker:redis-prices] section (or WARDEN_BREAKER_REDIS_
 * PRICES_*) still replaces the cooldowns (wrk_breaker_register). A breaker
 * forced open or disabled by hand is left alone.
 *
 * The breaker is registered with the worker runtime: run as a [worker:] it
 * is in heartbeats, `wardenctl call NAME breakers` / `breaker-reset` and
 * the health API; run as a [program:] (or by hand) GET /stats still shows
 * it, and every transition is logged. */
#include "breaker_json.h"
#include "clock.h"
#include "log.h"
#include "pb_server.h"
#include "wd_error.h"

#define PB_WATCH_MS 250
#define PB_BRK_OPEN_MS 1000
#define PB_BRK_OPEN_MAX_MS 5000

static void on_transition(void *arg, brk_breaker *b, const brk_transition *t) {
    (void)arg;
    wd_log(t->to == BRK_CLOSED ? WD_LOG_INFO : WD_LOG_WARN, "breaker %s: %s -> %s (%s)", b->name,
           brk_state_name(t->from), brk_state_name(t->to), t->reason);
}

static void on_watch(uv_timer_t *t) {
    pb_server *s = t->data;
    wd_redis_stats st;
    if (s->redis == NULL)
        return;
    wd_redis_get_stats(s->redis, &st);
    if (st.connects == s->seen_connects)
        return;
    s->seen_connects = st.connects;
    brk_breaker *b = wd_redis_breaker(s->redis);
    if (b->state != BRK_OPEN && b->state != BRK_HALF_OPEN)
        return;
    s->breaker_resets++;
    brk_reset(b, wd_clock_mono_ns(), "redis answered again (new connection)");
}

int pb_prices_open(pb_server *s, wrk_ctx *ctx, const char *url, char *err, size_t errlen) {
    wd_redis_opts o;
    wd_redis_opts_default(&o);
    o.url = url;
    o.name = PB_PRICES_CLIENT;
    o.connect_timeout_ms = 1000;
    o.command_timeout_ms = 1000;
    /* Notice a lost server within about a second and try again often: the
     * broker is useless without it. */
    o.ping_interval_ms = 1000;
    o.reconnect_initial_ms = 250;
    o.reconnect_max_ms = 2000;
    o.breaker.open_ns = PB_BRK_OPEN_MS * WD_NS_PER_MS;
    o.breaker.open_max_ns = PB_BRK_OPEN_MAX_MS * WD_NS_PER_MS;
    int rc = wd_redis_open(s->loop, &o, &s->redis, err, errlen);
    if (rc != 0)
        return rc;
    brk_breaker *b = wd_redis_breaker(s->redis);
    brk_set_callback(b, on_transition, s);
    s->ctx = ctx;
    /* Not fatal: orders are served all the same, the breaker is only not
     * reachable through the runtime. */
    if (ctx != NULL && (rc = wrk_breaker_register(ctx, b, false)) != 0)
        wd_warn("breaker %s not registered: %s", b->name, wd_strerror(rc));
    s->brk_registered = ctx != NULL && rc == 0;
    uv_timer_init(s->loop, &s->watch_t);
    s->watch_t.data = s;
    s->watch_on = true;
    uv_timer_start(&s->watch_t, on_watch, PB_WATCH_MS, PB_WATCH_MS);
    return 0;
}

void pb_prices_close(pb_server *s) {
    if (s->watch_on) {
        uv_close((uv_handle_t *)&s->watch_t, NULL);
        s->watch_on = false;
    }
    if (s->redis == NULL)
        return;
    /* The runtime publishes registered breakers until the process exits;
     * this one is freed with the client. */
    if (s->brk_registered)
        wrk_breaker_unregister(s->ctx, wd_redis_breaker(s->redis));
    s->brk_registered = false;
    wd_redis_close(s->redis, NULL, NULL);
    s->redis = NULL;
}

json_t *pb_prices_json(pb_server *s) {
    if (s->redis == NULL)
        return NULL;
    wd_redis_stats st;
    wd_redis_get_stats(s->redis, &st);
    json_t *j = brk_to_json(wd_redis_breaker(s->redis), wd_clock_mono_ns(), false);
    if (j == NULL)
        return NULL;
    json_object_set_new(j, "connection", json_string(wd_redis_state_name(st.state)));
    json_object_set_new(j, "connects", json_integer((json_int_t)st.connects));
    json_object_set_new(j, "resets_on_reconnect", json_integer((json_int_t)s->breaker_resets));
    return j;
}
