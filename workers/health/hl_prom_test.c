/* Prometheus rendering of a supervisor snapshot (hl_prom.c): the series the
 * issue lists, HELP/TYPE once per family with its series together, and
 * workers' own samples passed through with a worker label. Histograms in a
 * heartbeat (NAME_count/NAME_sum, NAME_bucket{le} if a snapshot carries
 * them) have a table of cases, each also checked against the promtool lint
 * rules the operator's `promtool check metrics` failed on. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hl.h"

static const char status_json[] =
    "{\"supervisor\":{\"version\":\"9.8.7\",\"pid\":1,\"uptime_s\":3.5,\"ctl_requests\":42},"
    "\"workers\":[{\"name\":\"pm\",\"kind\":\"worker\",\"state\":\"RUNNING\",\"ready\":true,"
    "\"pid\":100,\"restarts\":2,\"heartbeat_age_s\":0.25,\"rss_bytes\":4096,\"cpu_seconds\":1.5,"
    "\"breaker\":{\"state\":\"closed\",\"transitions\":4},"
    "\"breakers\":[{\"name\":\"redis\",\"state\":\"open\"}],"
    "\"metrics\":{\"wrk_uptime_seconds\":3,\"pm_exits_total{reason=\\\"stop_loss\\\"}\":7,"
    "\"pm_exits_total{reason=\\\"take_profit\\\"}\":1,\"bad name\":1,"
    "\"x{worker=\\\"spoof\\\"}\":1,\"y{a=\\\"unterminated}\":1,"
    "\"wrk_breaker_transitions_total{breaker=\\\"redis\\\"}\":3,"
    "\"wrk_breaker_calls_total{breaker=\\\"redis\\\",result=\\\"failure\\\"}\":5}},"
    "{\"name\":\"agg\",\"kind\":\"worker\",\"state\":\"BACKOFF\",\"ready\":false,\"pid\":null,"
    "\"restarts\":9,\"heartbeat_age_s\":null,\"breaker\":{\"state\":\"open\",\"transitions\":1},"
    "\"breakers\":[],\"metrics\":{}}]}";

static char *render_json(const char *json) {
    json_error_t e;
    json_t *st = json_loads(json, 0, &e);
    if (st == NULL)
        fail_msg("bad JSON: %s", e.text);
    hl_self_stats self = {.supervisor_up = true, .snapshots_total = 5, .http_requests_total = 11};
    size_t len = 0;
    char *text = hl_prom_render(st, &self, &len);
    json_decref(st);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    return text;
}

static char *render(void) { return render_json(status_json); }

static void has(const char *text, const char *line) {
    if (strstr(text, line) == NULL)
        fail_msg("missing: %s\n--- in ---\n%s", line, text);
}

static void issue_series(void **state) {
    (void)state;
    char *t = render();
    has(t, "warden_build_info{version=\"9.8.7\"} 1\n");
    has(t, "warden_worker_state{worker=\"pm\",state=\"RUNNING\"} 1\n");
    has(t, "warden_worker_state{worker=\"pm\",state=\"BACKOFF\"} 0\n");
    has(t, "warden_worker_state{worker=\"agg\",state=\"BACKOFF\"} 1\n");
    has(t, "warden_worker_up{worker=\"pm\"} 1\n");
    has(t, "warden_worker_up{worker=\"agg\"} 0\n");
    has(t, "warden_worker_restarts_total{worker=\"agg\"} 9\n");
    has(t, "warden_worker_heartbeat_age_seconds{worker=\"pm\"} 0.25\n");
    has(t, "warden_worker_resident_memory_bytes{worker=\"pm\"} 4096\n");
    has(t, "warden_worker_cpu_seconds_total{worker=\"pm\"} 1.5\n");
    has(t, "warden_breaker_state{worker=\"pm\",breaker=\"redis\",state=\"open\"} 1\n");
    has(t, "warden_breaker_state{worker=\"pm\",breaker=\"redis\",state=\"closed\"} 0\n");
    has(t, "warden_breaker_state{worker=\"agg\",breaker=\"crash_loop\",state=\"open\"} 1\n");
    has(t, "warden_breaker_transitions_total{worker=\"pm\",breaker=\"crash_loop\"} 4\n");
    has(t, "warden_breaker_transitions_total{worker=\"pm\",breaker=\"redis\"} 3\n");
    has(t, "warden_breaker_calls_total{worker=\"pm\",breaker=\"redis\",result=\"failure\"} 5\n");
    has(t, "warden_supervisor_control_requests_total 42\n");
    has(t, "warden_health_http_requests_total 11\n");
    /* No heartbeat age or /proc figures for a worker without a process. */
    assert_null(strstr(t, "warden_worker_heartbeat_age_seconds{worker=\"agg\"}"));
    assert_null(strstr(t, "warden_worker_resident_memory_bytes{worker=\"agg\"}"));
    free(t);
}

static void worker_metrics(void **state) {
    (void)state;
    char *t = render();
    has(t, "# TYPE warden_pm_exits_total counter\n");
    has(t, "warden_pm_exits_total{worker=\"pm\",reason=\"stop_loss\"} 7\n");
    has(t, "warden_pm_exits_total{worker=\"pm\",reason=\"take_profit\"} 1\n");
    has(t, "# TYPE warden_wrk_uptime_seconds gauge\n");
    has(t, "warden_wrk_uptime_seconds{worker=\"pm\"} 3\n");
    /* Invalid names, a spoofed worker label and broken label syntax are dropped. */
    assert_null(strstr(t, "bad name"));
    assert_null(strstr(t, "spoof"));
    assert_null(strstr(t, "unterminated"));
    /* The runtime's breaker samples are not passed through raw. */
    assert_null(strstr(t, "wrk_breaker_"));
    free(t);
}

static bool ends_with(const char *s, size_t n, const char *suffix) {
    size_t k = strlen(suffix);
    return n >= k && strncmp(s + n - k, suffix, k) == 0;
}

/* The exposition format and the promtool lint rules that apply here: every
 * family HELP then TYPE once, its samples right after and never again;
 * a sample is the family's name, or NAME_bucket/_sum/_count for a
 * histogram and NAME_sum/_count for a summary; only histograms and
 * summaries have names ending in _bucket/_sum/_count and only histograms an
 * "le" label (untyped families are exempt, as in promtool); counters end in _total; a histogram series' buckets go up in
 * le and end with le="+Inf". */
static void check_text(const char *text) {
    char *copy = strdup(text);
    assert_non_null(copy);
    char seen[128][128];
    int n_seen = 0;
    char cur[128] = "", type[16] = "", prev_le_prefix[512] = "";
    double prev_le = 0;
    bool open_buckets = false; /* a bucket run not yet closed by +Inf */
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            if (open_buckets)
                fail_msg("histogram %s: a series without le=\"+Inf\"", cur);
            size_t n = strcspn(line + 7, " ");
            assert_true(n < sizeof cur);
            memcpy(cur, line + 7, n);
            cur[n] = '\0';
            type[0] = '\0';
            for (int i = 0; i < n_seen; i++)
                if (strcmp(seen[i], cur) == 0)
                    fail_msg("family %s appears twice", cur);
            assert_true(n_seen < 128);
            snprintf(seen[n_seen++], sizeof seen[0], "%s", cur);
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            size_t n = strlen(cur);
            if (strncmp(line + 7, cur, n) != 0 || line[7 + n] != ' ')
                fail_msg("TYPE line '%s' not after its HELP (%s)", line, cur);
            snprintf(type, sizeof type, "%s", line + 8 + n);
            bool hist = strcmp(type, "histogram") == 0, summ = strcmp(type, "summary") == 0;
            if (!hist && !summ && strcmp(type, "untyped") != 0 &&
                (ends_with(cur, n, "_bucket") || ends_with(cur, n, "_sum") ||
                 ends_with(cur, n, "_count")))
                fail_msg("%s %s has a histogram/summary suffix", type, cur);
            if (strcmp(type, "counter") == 0 && !ends_with(cur, n, "_total"))
                fail_msg("counter %s does not end in _total", cur);
            continue;
        }
        assert_true(type[0] != '\0');
        size_t n = strcspn(line, "{ "), c = strlen(cur);
        const char *suffix = n >= c && strncmp(line, cur, c) == 0 ? line + c : NULL;
        size_t sn = suffix != NULL ? n - c : 0;
        bool ok = suffix != NULL && sn == 0;
        if (strcmp(type, "histogram") == 0)
            ok = suffix != NULL && ((sn == 7 && strncmp(suffix, "_bucket", 7) == 0) ||
                                    (sn == 4 && strncmp(suffix, "_sum", 4) == 0) ||
                                    (sn == 6 && strncmp(suffix, "_count", 6) == 0));
        else if (strcmp(type, "summary") == 0)
            ok = ok || (suffix != NULL && ((sn == 4 && strncmp(suffix, "_sum", 4) == 0) ||
                                           (sn == 6 && strncmp(suffix, "_count", 6) == 0)));
        if (!ok)
            fail_msg("sample '%s' outside its family (%s %s)", line, type, cur);
        const char *le = strstr(line, "le=\"");
        if (le != NULL && (le[-1] == '{' || le[-1] == ',')) {
            if (strcmp(type, "untyped") == 0)
                continue; /* promtool's rules skip untyped families */
            if (strcmp(type, "histogram") != 0)
                fail_msg("%s %s has an le label: %s", type, cur, line);
            size_t plen = (size_t)(le - line);
            assert_true(plen < sizeof prev_le_prefix);
            double v = strtod(le + 4, NULL);
            if (open_buckets && strncmp(prev_le_prefix, line, plen) == 0 &&
                prev_le_prefix[plen] == '\0' && !(v > prev_le))
                fail_msg("buckets out of order at %s", line);
            if (open_buckets && (strncmp(prev_le_prefix, line, plen) != 0 ||
                                 prev_le_prefix[plen] != '\0'))
                fail_msg("histogram %s: series ended without le=\"+Inf\" before %s", cur, line);
            memcpy(prev_le_prefix, line, plen);
            prev_le_prefix[plen] = '\0';
            prev_le = v;
            open_buckets = strncmp(le + 4, "+Inf\"", 5) != 0;
        } else if (open_buckets) {
            fail_msg("histogram %s: buckets end without le=\"+Inf\" before %s", cur, line);
        }
    }
    if (open_buckets)
        fail_msg("histogram %s: a series without le=\"+Inf\"", cur);
    free(copy);
}

static void families_well_formed(void **state) {
    (void)state;
    char *t = render();
    check_text(t);
    free(t);
}

/* ---- histograms in heartbeats: a table of named cases ---- */

typedef struct {
    const char *name;
    const char *metrics[2]; /* the "metrics" object of workers w1 and w2 (JSON, NULL: {}) */
    const char *want[12];   /* substrings of the text, in this order */
    const char *absent[4];
} hist_case;

static const hist_case hist_cases[] = {
    {"count_and_sum_are_a_summary",
     /* What wd_metrics_snapshot() sends for the aggregator's histograms. */
     {"{\"warden_agg_batch_size_count\":3,\"warden_agg_batch_size_sum\":12}",
      "{\"warden_agg_batch_size_sum\":0.5,\"warden_agg_batch_size_count\":1}"},
     {"# TYPE warden_agg_batch_size summary\n", "warden_agg_batch_size_sum{worker=\"w1\"} 12\n",
      "warden_agg_batch_size_count{worker=\"w1\"} 3\n",
      "warden_agg_batch_size_sum{worker=\"w2\"} 0.5\n",
      "warden_agg_batch_size_count{worker=\"w2\"} 1\n"},
     {"# TYPE warden_agg_batch_size_count", "# TYPE warden_agg_batch_size_sum"}},
    {"labelled_series_stay_together",
     {"{\"warden_http_request_duration_seconds_count{channel=\\\"slack\\\"}\":2,"
      "\"warden_http_request_duration_seconds_count{channel=\\\"smtp\\\"}\":1,"
      "\"warden_http_request_duration_seconds_sum{channel=\\\"slack\\\"}\":0.25,"
      "\"warden_http_request_duration_seconds_sum{channel=\\\"smtp\\\"}\":4}",
      "{\"pm_cycle_seconds_sum\":1.5,\"pm_cycle_seconds_count\":30}"},
     {"# TYPE warden_http_request_duration_seconds summary\n",
      "warden_http_request_duration_seconds_sum{worker=\"w1\",channel=\"slack\"} 0.25\n"
      "warden_http_request_duration_seconds_count{worker=\"w1\",channel=\"slack\"} 2\n"
      "warden_http_request_duration_seconds_sum{worker=\"w1\",channel=\"smtp\"} 4\n"
      "warden_http_request_duration_seconds_count{worker=\"w1\",channel=\"smtp\"} 1\n",
      "# TYPE warden_pm_cycle_seconds summary\n", "warden_pm_cycle_seconds_sum{worker=\"w2\"} 1.5\n"
      "warden_pm_cycle_seconds_count{worker=\"w2\"} 30\n"},
     {NULL}},
    {"buckets_make_a_histogram",
     /* Out of order, as a JSON object may hold them; le last in the output. */
     {"{\"lat_seconds_bucket{route=\\\"a\\\",le=\\\"1\\\"}\":3,"
      "\"lat_seconds_bucket{route=\\\"a\\\",le=\\\"+Inf\\\"}\":4,"
      "\"lat_seconds_bucket{le=\\\"0.1\\\",route=\\\"a\\\"}\":1,"
      "\"lat_seconds_sum{route=\\\"a\\\"}\":2.5,\"lat_seconds_count{route=\\\"a\\\"}\":4}"},
     {"# TYPE warden_lat_seconds histogram\n",
      "warden_lat_seconds_bucket{worker=\"w1\",route=\"a\",le=\"0.1\"} 1\n"
      "warden_lat_seconds_bucket{worker=\"w1\",route=\"a\",le=\"1\"} 3\n"
      "warden_lat_seconds_bucket{worker=\"w1\",route=\"a\",le=\"+Inf\"} 4\n"
      "warden_lat_seconds_sum{worker=\"w1\",route=\"a\"} 2.5\n"
      "warden_lat_seconds_count{worker=\"w1\",route=\"a\"} 4\n"},
     {"# TYPE warden_lat_seconds_bucket"}},
    {"missing_inf_bucket_comes_from_count",
     {"{\"q_bucket{le=\\\"5\\\"}\":2,\"q_sum\":7,\"q_count\":3}"},
     {"# TYPE warden_q histogram\n", "warden_q_bucket{worker=\"w1\",le=\"5\"} 2\n"
                                     "warden_q_bucket{worker=\"w1\",le=\"+Inf\"} 3\n"
                                     "warden_q_sum{worker=\"w1\"} 7\n"
                                     "warden_q_count{worker=\"w1\"} 3\n"},
     {NULL}},
    {"lone_suffixes_are_untyped",
     /* No sibling: not a histogram we know of; gauge would break the lint
      * rules, so they are exported untyped, as are le/quantile labels
      * outside a histogram/summary. A plain "queue" beside queue_count and
      * queue_sum would clash with a summary "queue": those stay untyped. */
     {"{\"jobs_count\":4,\"bytes_sum\":9,\"slots_bucket{le=\\\"1\\\"}\":1,\"queue\":1,"
      "\"queue_count\":2,\"queue_sum\":3,\"gate{le=\\\"1\\\"}\":5,"
      "\"ratio{quantile=\\\"0.5\\\"}\":1}"},
     {"# TYPE warden_jobs_count untyped\nwarden_jobs_count{worker=\"w1\"} 4\n",
      "# TYPE warden_bytes_sum untyped\n", "# TYPE warden_slots_bucket untyped\n",
      "# TYPE warden_queue gauge\n", "# TYPE warden_queue_count untyped\n",
      "# TYPE warden_queue_sum untyped\n", "# TYPE warden_gate untyped\n",
      "# TYPE warden_ratio untyped\n"},
     {"# TYPE warden_queue summary", "# TYPE warden_slots histogram"}},
    {"bad_bucket_le_is_no_histogram",
     {"{\"z_bucket{le=\\\"soon\\\"}\":1,\"z_sum\":1,\"z_count\":1}"},
     {"# TYPE warden_z_bucket untyped\n", "# TYPE warden_z summary\n"},
     {"# TYPE warden_z histogram"}},
};

static char *render_workers(const char *m1, const char *m2) {
    char *json = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&json, &size);
    assert_non_null(f);
    fputs("{\"supervisor\":{\"version\":\"1\",\"uptime_s\":1},\"workers\":[", f);
    const char *ms[2] = {m1, m2};
    for (int i = 0; i < 2; i++)
        fprintf(f, "%s{\"name\":\"w%d\",\"state\":\"RUNNING\",\"ready\":true,\"pid\":%d,"
                   "\"restarts\":0,\"breaker\":{\"state\":\"closed\",\"transitions\":0},"
                   "\"breakers\":[],\"metrics\":%s}",
                i ? "," : "", i + 1, 10 + i, ms[i] != NULL ? ms[i] : "{}");
    fputs("]}", f);
    assert_int_equal(fclose(f), 0);
    char *t = render_json(json);
    free(json);
    return t;
}

static void histograms(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof hist_cases / sizeof hist_cases[0]; i++) {
        const hist_case *c = &hist_cases[i];
        char *t = render_workers(c->metrics[0], c->metrics[1]);
        const char *at = t;
        for (size_t j = 0; j < sizeof c->want / sizeof c->want[0] && c->want[j]; j++) {
            const char *hit = strstr(at, c->want[j]);
            if (hit == NULL)
                fail_msg("%s: missing (in order): %s\n--- in ---\n%s", c->name, c->want[j], t);
            at = hit + strlen(c->want[j]);
        }
        for (size_t j = 0; j < sizeof c->absent / sizeof c->absent[0] && c->absent[j]; j++)
            if (strstr(t, c->absent[j]) != NULL)
                fail_msg("%s: unexpected %s\n--- in ---\n%s", c->name, c->absent[j], t);
        check_text(t);
        free(t);
    }
}

static void live_families(void **state) {
    (void)state;
    size_t len;
    char *t = hl_prom_live(false, 2.5, &len);
    assert_non_null(t);
    has(t, "# TYPE warden_supervisor_up gauge\nwarden_supervisor_up 0\n");
    has(t, "warden_health_snapshot_age_seconds 2.5\n");
    free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(issue_series),
        cmocka_unit_test(worker_metrics),
        cmocka_unit_test(families_well_formed),
        cmocka_unit_test(histograms),
        cmocka_unit_test(live_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
