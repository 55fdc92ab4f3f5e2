/* The monitor's metrics and commands (wardenctl call NAME CMD key=value):
 *   metrics                     cycle time min/max/avg/last and histogram,
 *                               positions, per-cycle averages of positions
 *                               evaluated, Redis fetches, DB queries and API
 *                               calls; exits by reason, errors by type,
 *                               throttle and breakers
 *   reset-metrics               restarts the window of the figures above
 *                               (Prometheus counters stay monotonic)
 *   health                      ok | degraded, with each dependency's state
 *   profile [cycles=N]          time per phase (prices, evaluation, actions,
 *                               persistence) over the last N cycles
 *   kill-switch account=A|all=1 reason=TEXT
 *                               exits every open position in scope
 *   seed-demo [n=N]             inserts N demo positions around live prices
 * Metric names (the health worker reads pm_cycle_seconds_sum and
 * pm_positions_open from heartbeats): see pm_metrics_init. */
#include "pm_worker.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PM_REASON_TEXT_MAX 200
#define PM_SEED_MAX 1000
#define PM_SEED_DEFAULT 20

static const char *const phase_names[PM_PHASES] = {"prices", "evaluation", "actions",
                                                   "persistence"};

/* ---- metrics ---- */

int pm_metrics_init(pm_worker *w) {
    static const double cycle_bounds[] = {1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 2.5e-3,
                                          5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.5, 1};
    static const char *const reason[] = {"reason", NULL};
    static const char *const type[] = {"type", NULL};
    static const char *const result[] = {"result", NULL};
    wd_metrics *g;
    if ((w->reg = g = wd_metrics_new()) == NULL)
        return WD_ENOMEM;
    w->m_cycle = wd_metric_histogram(g, "pm_cycle_seconds", "Monitoring cycle time.", NULL,
                                     cycle_bounds, sizeof cycle_bounds / sizeof cycle_bounds[0]);
    w->m_cmin = wd_metric_gauge(g, "pm_cycle_min_seconds", "Shortest cycle (since reset).", NULL);
    w->m_cmax = wd_metric_gauge(g, "pm_cycle_max_seconds", "Longest cycle (since reset).", NULL);
    w->m_cavg = wd_metric_gauge(g, "pm_cycle_avg_seconds", "Mean cycle (since reset).", NULL);
    w->m_open = wd_metric_gauge(g, "pm_positions_open", "Positions watched.", NULL);
    w->m_exiting = wd_metric_gauge(g, "pm_positions_exiting",
                                   "Exits fired, closing not yet written.", NULL);
    w->m_closing = wd_metric_gauge(g, "pm_positions_closing",
                                   "Positions closing (broker order under way).", NULL);
    w->m_per_cycle = wd_metric_gauge(g, "pm_positions_per_cycle",
                                     "Positions evaluated per cycle (mean since reset).", NULL);
    w->m_symbols = wd_metric_gauge(g, "pm_symbols", "Symbols known.", NULL);
    w->m_eval = wd_metric_counter(g, "pm_positions_evaluated_total",
                                  "Position evaluations caused by new prices.", NULL);
    w->m_exits = wd_metric_counter(g, "pm_exits_total", "Exits fired, by reason.", reason);
    w->m_errors = wd_metric_counter(g, "pm_errors_total", "Errors, by type.", type);
    w->m_quotes = wd_metric_counter(g, "pm_quotes_total", "Quotes received.", NULL);
    w->m_redis = wd_metric_counter(g, "pm_redis_fetches_total",
                                   "Fallback price fetches from Redis, by result.", result);
    w->m_skipped = wd_metric_counter(g, "pm_symbols_skipped_total",
                                     "Stale-check findings of a symbol with positions and no "
                                     "usable price (not evaluated).", NULL);
    w->m_db = wd_metric_counter(g, "pm_db_queries_total", "Database statements sent.", NULL);
    w->m_api = wd_metric_counter(g, "pm_api_calls_total", "Broker calls, by result.", result);
    w->m_rejected = wd_metric_counter(g, "pm_positions_rejected_total",
                                      "Rows rejected as nonsense.", NULL);
    w->m_throttle = wd_metric_gauge(g, "pm_throttle_rate",
                                    "Broker calls per second the throttle allows.", NULL);
    if (!w->m_cycle || !w->m_cmin || !w->m_cmax || !w->m_cavg || !w->m_open || !w->m_exiting ||
        !w->m_closing || !w->m_per_cycle || !w->m_symbols || !w->m_eval || !w->m_exits ||
        !w->m_errors || !w->m_quotes || !w->m_redis || !w->m_skipped || !w->m_db || !w->m_api ||
        !w->m_rejected || !w->m_throttle)
        return wd_metrics_error(g);
    return 0;
}

static void add_delta(wd_metric *m, const char *label, double value, double *synced) {
    const char *labels[] = {label, NULL};
    wd_series *s = wd_metric_series(m, label ? labels : NULL);
    if (s != NULL && value > *synced && wd_counter_add(s, value - *synced) == 0)
        *synced = value;
}

static void set_gauge(wd_metric *m, double v) {
    wd_series *s = wd_metric_series(m, NULL);
    if (s != NULL)
        wd_gauge_set(s, v);
}

static double throttle_rate(pm_worker *w) {
    wd_http_endpoint_stats st;
    if (w->http == NULL || wd_http_endpoint_stats_get(w->http, w->broker_base, &st) != 0)
        return 1000.0 / (double)w->conf.broker_min_interval_ms;
    return st.throttle.rate_per_s;
}

void pm_metrics_heartbeat(wrk_ctx *ctx, proto_heartbeat *hb) {
    pm_worker *w = wrk_data(ctx);
    double *s = w->synced;
    int k = 0;
    for (int r = 1; r < PM_EXIT_COUNT; r++)
        add_delta(w->m_exits, pm_exit_reason_name((pm_exit_reason)r), (double)w->exits[r], &s[k++]);
    for (int t = 0; t < PM_ERR_COUNT; t++)
        add_delta(w->m_errors, pm_err_type_name((pm_err_type)t), (double)w->errors[t], &s[k++]);
    add_delta(w->m_quotes, NULL, (double)w->quotes, &s[k++]);
    add_delta(w->m_redis, "ok", (double)w->redis_ok, &s[k++]);
    add_delta(w->m_redis, "error", (double)w->redis_err, &s[k++]);
    add_delta(w->m_redis, "unusable", (double)w->redis_unusable, &s[k++]);
    add_delta(w->m_skipped, NULL, (double)w->skipped, &s[k++]);
    add_delta(w->m_db, NULL, (double)w->db_queries, &s[k++]);
    add_delta(w->m_api, "ok", (double)(w->api_calls - w->api_errors), &s[k++]);
    add_delta(w->m_api, "error", (double)w->api_errors, &s[k++]);
    add_delta(w->m_rejected, NULL, (double)w->rejected_rows, &s[k++]);
    add_delta(w->m_eval, NULL, (double)w->book.evaluated, &s[k++]);
    set_gauge(w->m_open, w->book.n_open);
    set_gauge(w->m_exiting, w->book.n_exiting);
    set_gauge(w->m_closing, w->book.n_closing);
    set_gauge(w->m_symbols, w->book.n_syms);
    set_gauge(w->m_throttle, throttle_rate(w));
    double n = w->stat_cycles ? (double)w->stat_cycles : 1;
    set_gauge(w->m_per_cycle, (double)w->stat_evaluated / n);
    set_gauge(w->m_cmin, (double)w->stat_min_ns / 1e9);
    set_gauge(w->m_cmax, (double)w->stat_max_ns / 1e9);
    set_gauge(w->m_cavg, (double)w->stat_sum_ns / n / 1e9);
    wd_metrics_snapshot(w->reg, hb);
}

void pm_cycle_record(pm_worker *w, const pm_cycle_rec *r) {
    w->ring[w->ring_n++ % (uint64_t)w->conf.profile_cycles] = *r;
    if (w->stat_cycles == 0 || r->total_ns < w->stat_min_ns)
        w->stat_min_ns = r->total_ns;
    if (r->total_ns > w->stat_max_ns)
        w->stat_max_ns = r->total_ns;
    w->stat_cycles++;
    w->stat_sum_ns += r->total_ns;
    w->stat_evaluated += r->evaluated;
    w->stat_db += r->db_queries;
    w->stat_api += r->api_calls;
    w->stat_redis += r->redis_fetches;
    wd_series *h = wd_metric_series(w->m_cycle, NULL);
    if (h != NULL)
        wd_hist_observe(h, (double)r->total_ns / 1e9);
}

void pm_stats_reset(pm_worker *w) {
    w->ring_n = 0;
    w->stat_cycles = w->stat_min_ns = w->stat_max_ns = w->stat_sum_ns = 0;
    w->stat_evaluated = w->stat_db = w->stat_api = w->stat_redis = 0;
}

/* ---- commands ---- */

static json_t *breaker_json(brk_breaker *b) {
    brk_stats st;
    if (b == NULL)
        return json_null();
    brk_stats_get(b, wd_clock_mono_ns(), &st);
    return json_pack("{s:s, s:I, s:I, s:I, s:f}", "state", brk_state_name(st.state), "opens",
                     (json_int_t)st.opens, "failures", (json_int_t)st.failures, "rejected",
                     (json_int_t)st.rejected, "retry_in_s", (double)st.retry_in_ns / 1e9);
}

static json_t *metrics_json(pm_worker *w) {
    json_t *exits = json_object(), *errors = json_object(), *rej = json_array();
    for (int r = 1; r < PM_EXIT_COUNT; r++)
        json_object_set_new(exits, pm_exit_reason_name((pm_exit_reason)r),
                            json_integer((json_int_t)w->exits[r]));
    for (int t = 0; t < PM_ERR_COUNT; t++)
        json_object_set_new(errors, pm_err_type_name((pm_err_type)t),
                            json_integer((json_int_t)w->errors[t]));
    uint64_t first = w->n_rejects > PM_REJECTS_KEPT ? w->n_rejects - PM_REJECTS_KEPT : 0;
    for (uint64_t i = first; i < w->n_rejects; i++) {
        const pm_reject *r = &w->rejects[i % PM_REJECTS_KEPT];
        json_array_append_new(rej, json_pack("{s:I, s:s}", "id", (json_int_t)r->id, "reason",
                                             r->why));
    }
    double n = w->stat_cycles ? (double)w->stat_cycles : 1;
    wd_http_endpoint_stats hs;
    bool have_hs = w->http && wd_http_endpoint_stats_get(w->http, w->broker_base, &hs) == 0;
    json_t *thr = json_pack(
        "{s:f, s:f, s:I, s:I}", "rate_per_s", throttle_rate(w), "paused_for_s",
        have_hs ? (double)hs.paused_for_ns / 1e9 : 0.0, "queued",
        (json_int_t)(have_hs ? hs.queued : 0), "pauses",
        (json_int_t)(have_hs ? hs.throttle.pauses : 0));
    json_t *cycle = json_pack(
        "{s:I, s:f, s:f, s:f, s:f}", "count", (json_int_t)w->stat_cycles, "min_ms",
        (double)w->stat_min_ns / 1e6, "max_ms", (double)w->stat_max_ns / 1e6, "avg_ms",
        (double)w->stat_sum_ns / n / 1e6, "last_ms",
        w->ring_n ? (double)w->ring[(w->ring_n - 1) % (uint64_t)w->conf.profile_cycles].total_ns /
                        1e6
                  : 0.0);
    json_t *per_cycle = json_pack("{s:f, s:f, s:f, s:f}", "positions_evaluated",
                                  (double)w->stat_evaluated / n, "redis_fetches",
                                  (double)w->stat_redis / n, "db_queries", (double)w->stat_db / n,
                                  "api_calls", (double)w->stat_api / n);
    json_t *brk = json_pack("{s:o, s:o, s:o}", "broker", breaker_json(w->broker_brk), "postgres",
                            breaker_json(w->pg ? wd_pg_breaker(w->pg) : NULL), "redis",
                            breaker_json(w->redis ? wd_redis_breaker(w->redis) : NULL));
    json_t *totals = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "quotes",
        (json_int_t)w->quotes, "marketdata_batches", (json_int_t)w->md_batches,
        "marketdata_bad", (json_int_t)w->md_bad, "redis_fetches_ok", (json_int_t)w->redis_ok,
        "redis_fetches_error", (json_int_t)w->redis_err, "redis_fetches_unusable",
        (json_int_t)w->redis_unusable, "symbols_skipped", (json_int_t)w->skipped, "db_queries",
        (json_int_t)w->db_queries, "api_calls", (json_int_t)w->api_calls, "api_errors",
        (json_int_t)w->api_errors, "positions_evaluated", (json_int_t)w->book.evaluated,
        "duplicate_fills", (json_int_t)w->duplicate_fills);
    return json_pack("{s:o, s:o, s:o, s:{s:I, s:I, s:I, s:I}, s:o, s:o, s:I, s:o, s:o, s:o}",
                     "cycle", cycle, "per_cycle", per_cycle, "totals", totals, "positions",
                     "open", (json_int_t)w->book.n_open, "exiting",
                     (json_int_t)w->book.n_exiting, "closing", (json_int_t)w->book.n_closing,
                     "symbols", (json_int_t)w->book.n_syms, "exits_by_reason", exits,
                     "errors_by_type", errors, "rejected_rows", (json_int_t)w->rejected_rows,
                     "recent_rejections", rej, "throttle", thr, "breakers", brk);
}

static json_t *health_json(pm_worker *w) {
    uint64_t now = wd_clock_mono_ns();
    const char *pg = w->pg ? wd_pg_state_name(wd_pg_get_state(w->pg)) : "none";
    const char *rd = w->redis ? wd_redis_state_name(wd_redis_get_state(w->redis)) : "none";
    const char *bk = w->broker_brk ? brk_state_name(w->broker_brk->state) : "closed";
    double md_age = w->md_last_ns ? (double)(now - w->md_last_ns) / 1e9 : -1;
    bool md_ok = w->md_last_ns && now - w->md_last_ns <= w->conf.price_stale_after_ms * WD_NS_PER_MS;
    bool ok = w->loaded && strcmp(pg, "ready") == 0 && strcmp(bk, "closed") == 0 && md_ok;
    return json_pack("{s:s, s:b, s:s, s:s, s:s, s:f, s:I, s:I, s:I, s:I}", "status",
                     ok ? "ok" : "degraded", "loaded", w->loaded, "postgres", pg, "redis", rd,
                     "broker_breaker", bk, "marketdata_age_s", md_age, "positions_open",
                     (json_int_t)w->book.n_open, "positions_closing",
                     (json_int_t)w->book.n_closing, "exits_queued",
                     (json_int_t)w->n_exiting, "fills_unrecorded", (json_int_t)w->n_fills);
}

static json_t *profile_json(pm_worker *w, uint64_t want) {
    uint64_t cap = (uint64_t)w->conf.profile_cycles;
    uint64_t n = w->ring_n < cap ? w->ring_n : cap;
    if (want > 0 && want < n)
        n = want;
    uint64_t sum[PM_PHASES] = {0}, max[PM_PHASES] = {0}, tot = 0, tmax = 0;
    for (uint64_t k = 0; k < n; k++) {
        const pm_cycle_rec *r = &w->ring[(w->ring_n - 1 - k) % cap];
        for (int p = 0; p < PM_PHASES; p++) {
            sum[p] += r->phase_ns[p];
            if (r->phase_ns[p] > max[p])
                max[p] = r->phase_ns[p];
        }
        tot += r->total_ns;
        if (r->total_ns > tmax)
            tmax = r->total_ns;
    }
    json_t *phases = json_object();
    double d = n ? (double)n : 1;
    for (int p = 0; p < PM_PHASES; p++)
        json_object_set_new(phases, phase_names[p],
                            json_pack("{s:f, s:f, s:f, s:f}", "avg_ms", (double)sum[p] / d / 1e6,
                                      "max_ms", (double)max[p] / 1e6, "total_ms",
                                      (double)sum[p] / 1e6, "share",
                                      tot ? (double)sum[p] / (double)tot : 0.0));
    return json_pack("{s:I, s:o, s:f, s:f}", "cycles", (json_int_t)n, "phases", phases,
                     "cycle_avg_ms", (double)tot / d / 1e6, "cycle_max_ms", (double)tmax / 1e6);
}

static int cmd_kill(pm_worker *w, const proto_ctl_request *req, json_t **data, char *err,
                    size_t errlen) {
    const char *acct = proto_ctl_request_arg(req, "account");
    const char *all = proto_ctl_request_arg(req, "all");
    const char *reason = proto_ctl_request_arg(req, "reason");
    bool everything = false;
    if (all != NULL && wd_parse_bool(all, &everything) != 0) {
        snprintf(err, errlen, "kill-switch: all must be 1 or 0");
        return WD_EINVAL;
    }
    if ((acct == NULL) == !everything) {
        snprintf(err, errlen, "kill-switch: give exactly one of account=A or all=1");
        return WD_EINVAL;
    }
    if (reason == NULL || reason[0] == '\0') {
        snprintf(err, errlen, "kill-switch: reason=TEXT is required (it goes to the log)");
        return WD_EINVAL;
    }
    size_t n = pm_book_kill(&w->book, everything ? NULL : acct, wd_clock_mono_ns());
    wd_warn("kill switch (%s): %zu positions exiting; reason: %.*s",
            everything ? "all accounts" : acct, n, PM_REASON_TEXT_MAX, reason);
    *data = json_pack("{s:s, s:I, s:s}", "scope", everything ? "all" : acct, "exiting",
                      (json_int_t)n, "reason", reason);
    return 0;
}

int pm_command(wrk_ctx *ctx, const proto_ctl_request *req, json_t **data, char *err,
               size_t errlen) {
    pm_worker *w = wrk_data(ctx);
    if (strcmp(req->cmd, "metrics") == 0) {
        *data = metrics_json(w);
        return 0;
    }
    if (strcmp(req->cmd, "reset-metrics") == 0) {
        pm_stats_reset(w);
        *data = json_pack("{s:b}", "reset", 1);
        return 0;
    }
    if (strcmp(req->cmd, "health") == 0) {
        *data = health_json(w);
        return 0;
    }
    if (strcmp(req->cmd, "profile") == 0) {
        const char *c = proto_ctl_request_arg(req, "cycles");
        int64_t n = 0;
        if (c != NULL && (wd_parse_int(c, &n) != 0 || n < 1)) {
            snprintf(err, errlen, "profile: cycles must be a positive integer");
            return WD_EINVAL;
        }
        *data = profile_json(w, (uint64_t)n);
        return 0;
    }
    if (strcmp(req->cmd, "kill-switch") == 0)
        return cmd_kill(w, req, data, err, errlen);
    if (strcmp(req->cmd, "seed-demo") == 0) {
        const char *c = proto_ctl_request_arg(req, "n");
        int64_t n = PM_SEED_DEFAULT;
        if (c != NULL && (wd_parse_int(c, &n) != 0 || n < 1 || n > PM_SEED_MAX)) {
            snprintf(err, errlen, "seed-demo: n must be 1..%d", PM_SEED_MAX);
            return WD_EINVAL;
        }
        int rc = pm_db_seed_demo(w, (int)n, err, errlen);
        if (rc == 0)
            *data = json_pack("{s:I}", "seeding", (json_int_t)n);
        return rc;
    }
    snprintf(err, errlen,
             "unknown command '%s' (metrics, reset-metrics, health, profile [cycles=N], "
             "kill-switch account=A|all=1 reason=TEXT, seed-demo [n=N])",
             req->cmd);
    return WD_ENOTFOUND;
}
