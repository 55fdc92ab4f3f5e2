/* The aggregator's ops table: init (config), start (sources, publisher,
 * timers, config watch), stop, commands and metrics. */
#include "agg_worker.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AGG_SYNTH_TICK_MS 5      /* synthetic source's timer period */
#define AGG_SYNTH_BURST_S 0.1    /* most a late timer catches up on, in seconds of ticks */
#define AGG_SWEEP_MIN_MS 10
#define AGG_SWEEP_MAX_MS 250
#define AGG_PUB_MODE 0600
#define AGG_STOP_DRAIN_MS 2000

static const char *const venue_label_other = "other";

/* ---- sources ---- */

static void on_synth(uv_timer_t *t) {
    agg_worker *w = t->data;
    uint64_t now = wd_clock_mono_ns(), real = wd_clock_real_ns();
    double due = w->synth_carry +
                 (double)w->conf.synthetic_rate * (double)(now - w->synth_last_mono_ns) / 1e9;
    double cap = (double)w->conf.synthetic_rate * AGG_SYNTH_BURST_S + 1;
    if (due > cap)
        due = cap;
    w->synth_last_mono_ns = now;
    uint64_t n = (uint64_t)due;
    w->synth_carry = due - (double)n;
    for (uint64_t i = 0; i < n; i++) {
        agg_tick tk;
        agg_synth_next(w->synth, real, &tk);
        agg_process_tick(w, AGG_SRC_SYNTHETIC, &tk, now, real);
    }
}

static int synth_start(agg_worker *w, char *err, size_t errlen) {
    /* The generator walks the configured list; the cache decides later
     * which of its ticks are kept, like any other source's. */
    int rc = agg_synth_new((uint64_t)w->conf.synthetic_seed, w->symcache.names, w->symcache.n,
                           w->book.venues, w->book.n_venues, w->conf.synthetic_gap_probability,
                           &w->synth);
    if (rc != 0) {
        snprintf(err, errlen, "synthetic source: %s", wd_strerror(rc));
        return rc;
    }
    w->synth_last_mono_ns = wd_clock_mono_ns();
    uv_timer_start(&w->synth_timer, on_synth, AGG_SYNTH_TICK_MS, AGG_SYNTH_TICK_MS);
    return 0;
}

static int parse_sources(agg_worker *w, char *err, size_t errlen) {
    agg_symname names[AGG_SRC_COUNT + 1];
    size_t n = 0;
    int rc = agg_parse_names(w->conf.source, PROTO_MD_SYMBOL_MAX, names, AGG_SRC_COUNT, &n, err,
                             errlen);
    if (rc != 0 || n == 0) {
        if (rc == 0)
            snprintf(err, errlen, "source: empty (synthetic, replay and/or redis)");
        return WD_ECONFIG;
    }
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (int s = 0; s < AGG_SRC_COUNT; s++)
            if (strcmp(names[i], agg_source_name((agg_source)s)) == 0)
                w->src_on[s] = found = true;
        if (!found) {
            snprintf(err, errlen, "source: unknown '%s' (synthetic, replay, redis)", names[i]);
            return WD_ECONFIG;
        }
    }
    if (w->src_on[AGG_SRC_REPLAY] && w->conf.replay_file[0] == '\0') {
        snprintf(err, errlen, "source replay needs replay_file");
        return WD_ECONFIG;
    }
    if (w->src_on[AGG_SRC_REDIS] && w->conf.redis_url[0] == '\0') {
        snprintf(err, errlen, "source redis needs redis_url");
        return WD_ECONFIG;
    }
    return 0;
}

/* ---- timers and the config watch ---- */

static void on_sweep(uv_timer_t *t) {
    agg_worker *w = t->data;
    agg_process_sweep(w, wd_clock_mono_ns(), wd_clock_real_ns());
}

static void on_conf_change(uv_fs_event_t *h, const char *file, int events, int status) {
    agg_worker *w = h->data;
    (void)file;
    (void)events;
    if (status < 0)
        wd_warn("config watch: %s", uv_strerror(status));
    agg_symcache_invalidate(&w->symcache);
    wd_info("config changed: the symbol list will be read again");
    /* Editors replace the file (a new inode): watch the path afresh. */
    uv_fs_event_stop(h);
    int rc = uv_fs_event_start(h, on_conf_change, w->config_path, 0);
    if (rc != 0)
        wd_warn("config watch: %s: %s", w->config_path, uv_strerror(rc));
}

/* ---- ops ---- */

static int agg_init(wrk_ctx *ctx, int argc, char **argv) {
    agg_worker *w = calloc(1, sizeof *w);
    char err[512];
    if (w == NULL)
        return WD_ENOMEM;
    w->ctx = ctx;
    w->loop = wrk_loop(ctx);
    snprintf(w->name, sizeof w->name, "%s", wrk_name(ctx));
    snprintf(w->section, sizeof w->section, "%s", AGG_CONF_SECTION);
    const char *path = wrk_config_path(ctx);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--section") == 0 && i + 1 < argc)
            snprintf(w->section, sizeof w->section, "%s", argv[++i]);
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            path = argv[++i];
        else {
            fprintf(stderr, "warden-aggregator: unknown argument '%s' (--config FILE, "
                            "--section NAME)\n", argv[i]);
            free(w);
            return WD_EINVAL;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "warden-aggregator: no config (WARDEN_CONFIG or --config FILE)\n");
        free(w);
        return WD_EINVAL;
    }
    snprintf(w->config_path, sizeof w->config_path, "%s", path);
    agg_conf_register();
    int rc = agg_conf_load(w->config_path, w->section, &w->conf, err, sizeof err);
    if (rc == 0)
        rc = parse_sources(w, err, sizeof err);
    if (rc == 0)
        rc = agg_pipeline_init(w, err, sizeof err);
    if (rc != 0) {
        wd_error("config: %s", err);
        agg_pipeline_free(w);
        free(w);
        return rc;
    }
    if (w->conf.publish_url[0] != '\0') {
        snprintf(w->pub_url, sizeof w->pub_url, "%s", w->conf.publish_url);
    } else {
        const char *run = getenv("WARDEN_RUN_DIR");
        snprintf(w->pub_url, sizeof w->pub_url, "ipc://%s/marketdata.sock", run ? run : ".");
    }
    wrk_set_data(ctx, w);
    return 0;
}

static int metrics_init(agg_worker *w) {
    static const double lat_bounds[] = {1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3,
                                        2e-3, 5e-3, 1e-2, 5e-2, 0.1,  1};
    static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    if ((w->reg = wd_metrics_new()) == NULL)
        return WD_ENOMEM;
    wd_metric *lat = wd_metric_histogram(
        w->reg, "warden_agg_publish_latency_seconds", "Tick received to batch sent.", NULL,
        lat_bounds, sizeof lat_bounds / sizeof lat_bounds[0]);
    wd_metric *bs = wd_metric_histogram(w->reg, "warden_agg_batch_size",
                                        "Quotes and bars per published batch.", NULL,
                                        batch_bounds, sizeof batch_bounds / sizeof batch_bounds[0]);
    if (lat == NULL || bs == NULL)
        return wd_metrics_error(w->reg);
    w->h_latency = wd_metric_series(lat, NULL);
    w->h_batch = wd_metric_series(bs, NULL);
    static const char *const src_venue[] = {"source", "venue", NULL};
    static const char *const reason[] = {"reason", NULL};
    static const char *const venue[] = {"venue", NULL};
    wd_metrics *g = w->reg;
    w->m_ticks_in = wd_metric_counter(g, "warden_agg_ticks_in_total",
                                      "Ticks received, by source and venue.", src_venue);
    w->m_dropped = wd_metric_counter(g, "warden_agg_ticks_dropped_total",
                                     "Ticks and replay lines dropped, by reason.", reason);
    w->m_quotes = wd_metric_counter(g, "warden_agg_quotes_out_total",
                                    "Consolidated quotes published.", NULL);
    w->m_bars = wd_metric_counter(g, "warden_agg_bars_out_total", "Closed bars published.", NULL);
    w->m_batches = wd_metric_counter(g, "warden_agg_batches_total",
                                     "Messages published on marketdata.sock.", NULL);
    w->m_pubdrop = wd_metric_counter(g, "warden_agg_publish_dropped_total",
                                     "Messages nng could not queue (dropped).", NULL);
    w->m_hits = wd_metric_counter(g, "warden_agg_symbols_cache_hits_total",
                                  "Symbol list lookups served by the cache.", NULL);
    w->m_misses = wd_metric_counter(g, "warden_agg_symbols_cache_misses_total",
                                    "Symbol list lookups that read the config again.", NULL);
    w->m_age = wd_metric_gauge(g, "warden_agg_symbols_cache_age_seconds",
                               "Age of the cached symbol list.", NULL);
    w->m_symbols = wd_metric_gauge(g, "warden_agg_symbols", "Symbols in the list.", NULL);
    w->m_stale = wd_metric_gauge(g, "warden_agg_venue_staleness_seconds",
                                 "Time since the venue's last tick (-1: none yet).", venue);
    if (!w->m_ticks_in || !w->m_dropped || !w->m_quotes || !w->m_bars || !w->m_batches ||
        !w->m_pubdrop || !w->m_hits || !w->m_misses || !w->m_age || !w->m_symbols || !w->m_stale)
        return wd_metrics_error(g);
    return 0;
}

static int agg_start(wrk_ctx *ctx) {
    agg_worker *w = wrk_data(ctx);
    char err[512] = "";
    int rc = metrics_init(w);
    if (rc != 0) {
        wd_error("metrics: %s", wd_strerror(rc));
        return rc;
    }
    rc = bus_pub_listen(w->pub_url, AGG_PUB_MODE, &w->pub, err, sizeof err);
    if (rc != 0) {
        wd_error("publish: %s", err);
        return rc;
    }
    uv_timer_init(w->loop, &w->flush_timer);
    uv_timer_init(w->loop, &w->sweep_timer);
    uv_timer_init(w->loop, &w->synth_timer);
    uv_fs_event_init(w->loop, &w->conf_watch);
    w->flush_timer.data = w->sweep_timer.data = w->synth_timer.data = w->conf_watch.data = w;
    w->handles_init = true;
    uint64_t sweep = w->conf.venue_stale_after_ms / 4;
    sweep = sweep < AGG_SWEEP_MIN_MS ? AGG_SWEEP_MIN_MS
                                     : (sweep > AGG_SWEEP_MAX_MS ? AGG_SWEEP_MAX_MS : sweep);
    uv_timer_start(&w->sweep_timer, on_sweep, sweep, sweep);
    if ((rc = uv_fs_event_start(&w->conf_watch, on_conf_change, w->config_path, 0)) != 0)
        wd_warn("config watch: %s: %s (invalidate-symbols still works)", w->config_path,
                uv_strerror(rc));
    if (w->src_on[AGG_SRC_SYNTHETIC] && (rc = synth_start(w, err, sizeof err)) != 0)
        goto fail;
    if (w->src_on[AGG_SRC_REPLAY] &&
        (rc = agg_replay_start(w, w->conf.replay_file, w->conf.replay_speed, err,
                               sizeof err)) != 0)
        goto fail;
    if (w->conf.redis_url[0] != '\0' && (rc = agg_redis_start(w, err, sizeof err)) != 0)
        goto fail;
    wd_info("publishing on %s (topics=%s, batch_max=%lld, flush_interval=%llums)", w->pub_url,
            w->conf.topics == AGG_TOPIC_ALL ? "all" : "symbol", (long long)w->conf.batch_max,
            (unsigned long long)w->conf.flush_interval_ms);
    wrk_ready(ctx);
    return 0;
fail:
    wd_error("start: %s", err);
    return rc;
}

static void agg_stop(wrk_ctx *ctx) {
    agg_worker *w = wrk_data(ctx);
    if (w == NULL || w->stopping || !w->handles_init)
        return;
    /* What was aggregated goes out before the socket closes. */
    agg_publish_flush(w, wd_clock_real_ns());
    w->stopping = true;
    uv_close((uv_handle_t *)&w->flush_timer, NULL);
    uv_close((uv_handle_t *)&w->sweep_timer, NULL);
    uv_close((uv_handle_t *)&w->synth_timer, NULL);
    uv_close((uv_handle_t *)&w->conf_watch, NULL);
    agg_replay_stop(w->replay);
    w->replay = NULL;
    agg_redis_stop(w->redis);
    w->redis = NULL;
}

static void agg_fini(wrk_ctx *ctx) {
    agg_worker *w = wrk_data(ctx);
    if (w == NULL)
        return;
    if (w->pub != NULL) {
        bus_out_close(w->pub);
        bus_close_drain(AGG_STOP_DRAIN_MS);
    }
    agg_synth_free(w->synth);
    agg_pipeline_free(w);
    wd_metrics_free(w->reg);
    free(w);
}

static int agg_reload(wrk_ctx *ctx) {
    agg_worker *w = wrk_data(ctx);
    agg_symcache_invalidate(&w->symcache);
    wd_info("reload: the symbol list will be read again (other settings need a restart)");
    return 0;
}

/* ---- metrics ---- */

static void add_delta(wd_metric *m, const char *const *labels, double value, double *synced) {
    wd_series *s = m ? wd_metric_series(m, labels) : NULL;
    if (s != NULL && value > *synced && wd_counter_add(s, value - *synced) == 0)
        *synced = value;
}

static void set_gauge(wd_metric *m, const char *const *labels, double v) {
    wd_series *s = m ? wd_metric_series(m, labels) : NULL;
    if (s != NULL)
        wd_gauge_set(s, v);
}

static void agg_metrics(wrk_ctx *ctx, proto_heartbeat *hb) {
    agg_worker *w = wrk_data(ctx);
    uint64_t now = wd_clock_mono_ns();
    for (int s = 0; s < AGG_SRC_COUNT; s++) {
        if (!w->src_on[s])
            continue;
        for (size_t v = 0; v <= w->book.n_venues; v++) {
            const char *venue = v < w->book.n_venues ? w->book.venues[v] : venue_label_other;
            const char *labels[] = {agg_source_name((agg_source)s), venue, NULL};
            if (w->ticks_in[s][v] > 0 || v < w->book.n_venues)
                add_delta(w->m_ticks_in, labels, (double)w->ticks_in[s][v],
                          &w->synced[s][v]);
        }
    }
    for (int r = 0; r < AGG_DROP_COUNT; r++) {
        const char *labels[] = {agg_drop_reason_name((agg_drop_reason)r), NULL};
        add_delta(w->m_dropped, labels, (double)w->dropped[r],
                  &w->synced_drop[r]);
    }
    add_delta(w->m_quotes, NULL, (double)w->quotes_out, &w->synced_quotes);
    add_delta(w->m_bars, NULL, (double)w->bars_out, &w->synced_bars);
    add_delta(w->m_batches, NULL, (double)w->batches_out, &w->synced_batches);
    add_delta(w->m_pubdrop, NULL, (double)w->publish_dropped,
              &w->synced_pubdrop);
    add_delta(w->m_hits, NULL, (double)w->symcache.hits,
              &w->synced_hits);
    add_delta(w->m_misses, NULL, (double)w->symcache.misses,
              &w->synced_misses);
    set_gauge(w->m_age, NULL,
              agg_symcache_age_s(&w->symcache, now));
    set_gauge(w->m_symbols, NULL, (double)w->symcache.n);
    for (size_t v = 0; v < w->book.n_venues; v++) {
        const char *labels[] = {w->book.venues[v], NULL};
        uint64_t last = w->book.venue_last_mono[v];
        set_gauge(w->m_stale, labels,
                  last ? (double)(now - last) / 1e9 : -1);
    }
    wd_metrics_snapshot(w->reg, hb);
    if (w->redis != NULL)
        agg_redis_metrics(w->redis, hb);
}

static const wrk_ops aggregator_ops = {
    .name = "aggregator",
    .init = agg_init,
    .start = agg_start,
    .stop = agg_stop,
    .reload = agg_reload,
    .command = agg_command,
    .metrics = agg_metrics,
    .fini = agg_fini,
};

int agg_worker_main(int argc, char **argv) { return wrk_main(argc, argv, &aggregator_ops); }
