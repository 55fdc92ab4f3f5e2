/* The notifier as a warden worker: config, start (Redis, channels, intake),
 * stop, the pending index, the periodic tick and metrics. */
#include "nt.h"
#include "bus.h"
#include "clock.h"
#include "curl_uv.h"
#include "log.h"
#include "redis.h"
#include "wd_error.h"
#include "worker.h"
#include "alert_outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NT_INDEX_BUCKETS 65536
#define NT_DEDUP_BUCKETS 4096
#define NT_TICK_MS 250
#define NT_STOP_DRAIN_MS 2000

static uint64_t hash_id(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* ---- pending index ---- */

nt_alert *nt_alert_new(const proto_alert *a, uint32_t routes) {
    nt_alert *al = calloc(1, sizeof *al);
    if (!al)
        return NULL;
    al->a = malloc(sizeof *al->a);
    if (!al->a) {
        free(al);
        return NULL;
    }
    *al->a = *a;
    memcpy(al->id, a->id, sizeof al->id);
    al->routes = routes;
    const char *rep = proto_alert_label_get(a, "repeats");
    if (rep && a->source[0] && strcmp(a->source, "notifier") == 0)
        al->repeats = (uint32_t)strtoul(rep, NULL, 10);
    al->stored_mono_ns = wd_clock_mono_ns();
    return al;
}

nt_alert *nt_pending_find(nt_state *nt, const char *id) {
    if (!nt->idx)
        return NULL;
    for (nt_alert *al = nt->idx[hash_id(id) % nt->idx_buckets]; al; al = al->hnext)
        if (strcmp(al->id, id) == 0)
            return al;
    return NULL;
}

int nt_pending_add(nt_state *nt, nt_alert *al) {
    if (!nt->idx)
        return WD_ENOMEM;
    if (nt_pending_find(nt, al->id))
        return WD_EEXIST;
    nt_alert **slot = &nt->idx[hash_id(al->id) % nt->idx_buckets];
    al->hnext = *slot;
    *slot = al;
    nt->n_pending++;
    return 0;
}

void nt_pending_remove(nt_state *nt, nt_alert *al) {
    nt_alert **pp = &nt->idx[hash_id(al->id) % nt->idx_buckets];
    for (; *pp; pp = &(*pp)->hnext) {
        if (*pp == al) {
            *pp = al->hnext;
            nt->n_pending--;
            break;
        }
    }
    free(al->a);
    free(al);
}

void nt_route_finished(nt_state *nt, nt_alert *al, int ch_idx) {
    al->routes &= ~(1u << ch_idx);
    if (al->routes == 0)
        nt_pending_remove(nt, al);
}

uint32_t nt_routes_for(const nt_state *nt, const proto_alert *a) {
    uint32_t r = 0;
    for (int i = 0; i < nt->n_channels; i++)
        if (!nt->ch[i].disabled && nt_route_match(&nt->ch[i].route, a))
            r |= 1u << i;
    return r;
}

/* ---- tick: dedup summaries, storm digests, DLQ gauge ---- */

static void on_summary(void *arg, const nt_dedup_summary *s) {
    nt_state *nt = arg;
    proto_alert a;
    memset(&a, 0, sizeof a);
    snprintf(a.id, sizeof a.id, "%.48s.r%u", s->first_id, s->repeats);
    snprintf(a.source, sizeof a.source, "notifier");
    a.severity = s->severity;
    snprintf(a.title, sizeof a.title, "%s", s->title);
    snprintf(a.text, sizeof a.text, "%s (from %s) repeated %u more times within %llu s after "
             "alert %s", s->title, s->source, s->repeats,
             (unsigned long long)(nt->conf.dedup_window_ms / 1000), s->first_id);
    a.time_ns = wd_clock_real_ns();
    char rep[16];
    snprintf(rep, sizeof rep, "%u", s->repeats);
    proto_alert_label_add(&a, "repeats", rep);
    proto_alert_label_add(&a, "dedup_key", s->key);
    /* The summary itself must not be merged into the window it sums up. */
    snprintf(a.dedup_key, sizeof a.dedup_key, "summary:%.100s", s->first_id);
    nt_intake_internal_routed(nt, &a, s->routes);
}

static void on_tick(uv_timer_t *t) {
    nt_state *nt = t->data;
    uint64_t now = wd_clock_mono_ns();
    nt_dedup_expire(&nt->dedup, now, on_summary, nt);
    nt_channels_tick(nt, now);
    nt_store_poll_dlq(nt);
}

/* ---- metrics ---- */

static int metrics_init(nt_state *nt) {
    static const double lat[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                 1,     2.5,   5,    10,    30,   60,  300};
    static const char *const sev[] = {"severity", NULL};
    static const char *const ch[] = {"channel", NULL};
    static const char *const ch_reason[] = {"channel", "reason", NULL};
    static const char *const ch_state[] = {"channel", "state", NULL};
    wd_metrics *g = nt->reg = wd_metrics_new();
    if (!g)
        return WD_ENOMEM;
    nt->m_received = wd_metric_counter(g, "warden_notifier_alerts_received_total",
                                       "Alerts received (valid), by severity.", sev);
    nt->m_rejected = wd_metric_counter(g, "warden_notifier_alerts_rejected_total",
                                       "Malformed alerts refused with an error reply.", NULL);
    nt->m_merged = wd_metric_counter(g, "warden_notifier_alerts_merged_total",
                                     "Alerts merged into an earlier one with the same dedup key.",
                                     NULL);
    nt->m_delivered = wd_metric_counter(g, "warden_notifier_delivered_total",
                                        "Alerts delivered, by channel.", ch);
    nt->m_failed = wd_metric_counter(g, "warden_notifier_failed_total",
                                     "Failed delivery attempts, by channel and reason.", ch_reason);
    nt->m_retries = wd_metric_counter(g, "warden_notifier_retries_total",
                                      "Delivery retries, by channel.", ch);
    nt->m_dlq = wd_metric_counter(g, "warden_notifier_dead_letters_total",
                                  "Alerts sent to the dead letter queue, by channel.", ch);
    nt->m_digests = wd_metric_counter(g, "warden_notifier_digests_total",
                                      "Storm digests sent, by channel.", ch);
    nt->m_dlq_depth = wd_metric_gauge(g, "warden_notifier_dlq_depth",
                                      "Alerts in the dead letter queue.", NULL);
    nt->m_dlq_age = wd_metric_gauge(g, "warden_notifier_dlq_oldest_age_seconds",
                                    "Age of the oldest dead letter (0: none).", NULL);
    nt->m_pending = wd_metric_gauge(g, "warden_notifier_pending",
                                    "Alerts stored and not yet delivered on every route.", NULL);
    nt->m_brk_state = wd_metric_gauge(g, "warden_notifier_channel_breaker_state",
                                      "1 for the channel breaker's current state.", ch_state);
    nt->m_rate = wd_metric_gauge(g, "warden_notifier_channel_rate",
                                 "Messages per second the channel's rate limit allows now.", ch);
    nt->m_paused = wd_metric_gauge(g, "warden_notifier_channel_paused",
                                   "1 while the channel waits out a Retry-After.", ch);
    nt->m_latency = wd_metric_histogram(g, "warden_notifier_delivery_latency_seconds",
                                        "Ack to delivery, per alert and channel.", NULL, lat,
                                        sizeof lat / sizeof lat[0]);
    if (!nt->m_received || !nt->m_rejected || !nt->m_merged || !nt->m_delivered ||
        !nt->m_failed || !nt->m_retries || !nt->m_dlq || !nt->m_digests || !nt->m_dlq_depth ||
        !nt->m_dlq_age || !nt->m_pending || !nt->m_brk_state || !nt->m_rate || !nt->m_paused ||
        !nt->m_latency)
        return wd_metrics_error(g);
    return 0;
}

static void nt_metrics(wrk_ctx *ctx, proto_heartbeat *hb) {
    nt_state *nt = wrk_data(ctx);
    uint64_t now = wd_clock_mono_ns();
    wd_gauge_set(wd_metric_series(nt->m_pending, NULL), (double)nt->n_pending);
    wd_gauge_set(wd_metric_series(nt->m_dlq_depth, NULL), (double)nt->dlq_depth);
    uint64_t real_ms = wd_clock_real_ns() / WD_NS_PER_MS;
    wd_gauge_set(wd_metric_series(nt->m_dlq_age, NULL),
                 nt->dlq_oldest_ms && real_ms > nt->dlq_oldest_ms
                     ? (double)(real_ms - nt->dlq_oldest_ms) / 1000.0
                     : 0);
    for (int i = 0; i < nt->n_channels; i++) {
        nt_channel *ch = &nt->ch[i];
        if (ch->disabled)
            continue;
        brk_stats bs;
        brk_stats_get(&ch->brk, now, &bs);
        for (int s = BRK_CLOSED; s <= BRK_DISABLED; s++) {
            const char *l[] = {ch->name, brk_state_name((brk_state)s), NULL};
            wd_gauge_set(wd_metric_series(nt->m_brk_state, l), bs.state == (brk_state)s);
        }
        throttle_stats ts;
        throttle_stats_get(&ch->thr, &ts);
        const char *l[] = {ch->name, NULL};
        wd_gauge_set(wd_metric_series(nt->m_rate, l), ch->thr_on ? ts.rate_per_s : 0);
        wd_gauge_set(wd_metric_series(nt->m_paused, l), ts.paused_until_ns > now);
    }
    wd_metrics_snapshot(nt->reg, hb);
}

/* ---- ops ---- */

static int nt_init(wrk_ctx *ctx, int argc, char **argv) {
    nt_state *nt = calloc(1, sizeof *nt);
    wd_conf_errors errs = {0};
    static nt_channel_conf chconf[NT_CONF_CHANNELS_MAX];
    static char names[NT_CONF_CHANNELS_MAX][WD_CONF_NAME_MAX + 1];
    if (!nt)
        return WD_ENOMEM;
    nt->ctx = ctx;
    nt->loop = wrk_loop(ctx);
    snprintf(nt->name, sizeof nt->name, "%s", wrk_name(ctx));
    const char *path = wrk_config_path(ctx);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else {
            fprintf(stderr, "warden-notifier: unknown argument '%s' (--config FILE)\n", argv[i]);
            free(nt);
            return WD_EINVAL;
        }
    }
    if (path)
        snprintf(nt->config_path, sizeof nt->config_path, "%s", path);
    int rc = nt_conf_load(path, NULL, &nt->conf, chconf, names, &nt->n_channels, &errs);
    if (rc != 0) {
        for (int i = 0; i < errs.n; i++)
            wd_error("config: %s", errs.msg[i]);
        if (errs.n == 0)
            wd_error("config: %s", wd_strerror(rc));
        free(nt);
        return rc;
    }
    for (int i = 0; i < nt->n_channels; i++) {
        nt->ch[i].conf = chconf[i];
        memcpy(nt->ch[i].name, names[i], strnlen(names[i], WD_CONF_NAME_MAX));
    }
    if (nt->n_channels == 0) {
        /* No channel configured: alerts are still logged, never dropped. */
        nt->n_channels = 1;
        snprintf(nt->ch[0].name, sizeof nt->ch[0].name, "log");
        nt->ch[0].conf.type = NT_CH_LOG;
        snprintf(nt->ch[0].conf.severities, sizeof nt->ch[0].conf.severities,
                 "info,warning,critical");
        nt->ch[0].conf.burst = 1;
        nt->ch[0].conf.timeout_ms = 1000;
        nt->ch[0].conf.breaker_failures = 5;
        nt->ch[0].conf.breaker_cooldown_ms = 1000;
    }
    const char *run = getenv("WARDEN_RUN_DIR");
    if (nt->conf.listen[0])
        snprintf(nt->listen_url, sizeof nt->listen_url, "%s", nt->conf.listen);
    else if (alert_outbox_url(run ? run : ".", nt->listen_url, sizeof nt->listen_url) != 0) {
        wd_error("config: run dir path too long for alerts.sock");
        free(nt);
        return WD_ECONFIG;
    }
    const char *ev = getenv("WARDEN_EVENTS_URL");
    snprintf(nt->events_url, sizeof nt->events_url, "%s",
             nt->conf.events_url[0] ? nt->conf.events_url : ev ? ev : "");
    wrk_set_data(ctx, nt);
    return 0;
}

static void on_redis_closed(wd_redis *r, void *arg) { (void)r, (void)arg; }

static void nt_stop(wrk_ctx *ctx);

static int nt_start(wrk_ctx *ctx) {
    nt_state *nt = wrk_data(ctx);
    char err[512] = "";
    int rc = metrics_init(nt);
    if (rc != 0) {
        wd_error("metrics: %s", wd_strerror(rc));
        return rc;
    }
    nt->idx_buckets = NT_INDEX_BUCKETS;
    nt->idx = calloc(nt->idx_buckets, sizeof *nt->idx);
    if (!nt->idx ||
        nt_dedup_init(&nt->dedup, nt->conf.dedup_window_ms * WD_NS_PER_MS, NT_DEDUP_BUCKETS) != 0)
        return WD_ENOMEM;
    wd_redis_opts o;
    wd_redis_opts_default(&o);
    o.url = nt->conf.redis_url;
    o.name = "notifier";
    o.metrics = nt->reg;
    if (nt->conf.redis_password_env[0])
        o.password = getenv(nt->conf.redis_password_env);
    o.connect_timeout_ms = 1000;
    o.command_timeout_ms = 2000;
    o.reconnect_initial_ms = 200;
    o.reconnect_max_ms = 2000;
    o.ping_interval_ms = 1000;
    /* Short open times: alerts wait in their producers' outboxes meanwhile. */
    o.breaker.open_ns = 500 * WD_NS_PER_MS;
    o.breaker.open_max_ns = 3000 * WD_NS_PER_MS;
    if ((rc = wd_redis_open(nt->loop, &o, (wd_redis **)&nt->redis, err, sizeof err)) != 0) {
        wd_error("redis: %s", err);
        return rc;
    }
    if ((rc = wrk_breaker_register(ctx, wd_redis_breaker(nt->redis), true)) != 0)
        wd_warn("redis breaker not registered: %s", wd_strerror(rc));
    uv_timer_init(nt->loop, &nt->tick);
    uv_timer_init(nt->loop, &nt->load_timer);
    uv_timer_init(nt->loop, &nt->drain_timer);
    nt->tick.data = nt->load_timer.data = nt->drain_timer.data = nt;
    if ((rc = nt_store_start(nt)) != 0) {
        wd_error("store: %s", wd_strerror(rc));
        nt_stop(ctx);
        return rc;
    }
    if ((rc = nt_channels_open(nt, err, sizeof err)) != 0) {
        wd_error("config: %s", err);
        nt_stop(ctx);
        return WD_ECONFIG;
    }
    if ((rc = nt_intake_start(nt, err, sizeof err)) != 0) {
        wd_error("intake: %s", err);
        nt_stop(ctx);
        return rc;
    }
    uv_timer_start(&nt->tick, on_tick, NT_TICK_MS, NT_TICK_MS);
    nt_store_load(nt);
    wd_info("alerts on %s, events from %s, %d channel(s)", nt->listen_url,
            nt->events_url[0] ? nt->events_url : "(none)", nt->n_channels);
    wrk_ready(ctx);
    return 0;
}

/* Closes what nt_stop left open for the drain. Runs once. */
static void nt_stop_finish(nt_state *nt) {
    if (nt->stopped)
        return;
    nt->stopped = true;
    /* Pending deliveries stay in Redis; the next start resumes them. */
    nt_channels_close(nt);
    if (nt->tick.data) {
        uv_close((uv_handle_t *)&nt->tick, NULL);
        uv_close((uv_handle_t *)&nt->load_timer, NULL);
        uv_close((uv_handle_t *)&nt->drain_timer, NULL);
    }
    nt_store_stop(nt); /* before the client closes: queued route completions go out */
    nt_redis_close_when_idle(nt);
}

void nt_redis_close_when_idle(nt_state *nt) {
    if (!nt->stopped || nt->redis == NULL || nt->store_writes > 0)
        return;
    wrk_breaker_unregister(nt->ctx, wd_redis_breaker(nt->redis));
    wd_redis_close(nt->redis, on_redis_closed, NULL);
    nt->redis = NULL;
}

static void on_drain_timer(uv_timer_t *t) {
    nt_state *nt = t->data;
    uint32_t left = nt_channels_inflight(nt);
    if (left > 0)
        wd_warn("stopping: %u delivery(ies) still unanswered; they are sent again on the next "
                "start (the receiver may see them twice)",
                left);
    nt_stop_finish(nt);
}

/* Called from a delivery's completion: the channels close on the next loop
 * turn, never from inside their own client's callback. */
void nt_stop_drained(nt_state *nt) {
    if (!nt->stopped && nt->tick.data)
        uv_timer_start(&nt->drain_timer, on_drain_timer, 0, 0);
}

static void nt_stop(wrk_ctx *ctx) {
    nt_state *nt = wrk_data(ctx);
    if (!nt || nt->stopping)
        return;
    nt->stopping = true; /* no new alert taken, no new delivery started */
    nt_intake_stop(nt);
    uint32_t busy = nt_channels_inflight(nt);
    if (busy == 0 || !nt->tick.data) {
        nt_stop_finish(nt);
        return;
    }
    /* Deliveries already sent are let finish and recorded as done: cut off,
     * they would be sent again on the next start (a duplicate at the
     * receiver on every restart or reload). */
    uint64_t ms = wrk_stop_timeout_ms(ctx) / 2;
    ms = ms < NT_STOP_DRAIN_MAX_MS ? ms : NT_STOP_DRAIN_MAX_MS;
    wd_info("stopping: waiting up to %llu ms for %u delivery(ies) in flight",
            (unsigned long long)ms, busy);
    uv_timer_start(&nt->drain_timer, on_drain_timer, ms, 0);
}

static void nt_fini(wrk_ctx *ctx) {
    nt_state *nt = wrk_data(ctx);
    if (!nt)
        return;
    bus_close_drain(NT_STOP_DRAIN_MS);
    for (size_t i = 0; nt->idx && i < nt->idx_buckets; i++) {
        nt_alert *al = nt->idx[i];
        while (al) {
            nt_alert *n = al->hnext;
            free(al->a);
            free(al);
            al = n;
        }
    }
    free(nt->idx);
    nt_dedup_free(&nt->dedup);
    wd_metrics_free(nt->reg);
    free(nt);
}

static int nt_cmd(wrk_ctx *ctx, const proto_ctl_request *req, json_t **data, char *err,
                  size_t errlen) {
    return nt_command(wrk_data(ctx), req, data, err, errlen);
}

static const wrk_ops notifier_ops = {
    .name = "notifier",
    .init = nt_init,
    .start = nt_start,
    .stop = nt_stop,
    .command = nt_cmd,
    .metrics = nt_metrics,
    .fini = nt_fini,
};

int nt_worker_main(int argc, char **argv);
int nt_worker_main(int argc, char **argv) {
    wd_curl_global_init();
    return wrk_main(argc, argv, &notifier_ops);
}
