/* Prometheus rendering of a supervisor snapshot (hl_prom.c): the series the
 * issue lists, HELP/TYPE once per family with its series together, and
 * workers' own samples passed through with a worker label. */
#include <setjmp.h>
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

static char *render(void) {
    json_error_t e;
    json_t *st = json_loads(status_json, 0, &e);
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

/* Every family: HELP then TYPE once, its samples right after, never again. */
static void families_well_formed(void **state) {
    (void)state;
    char *t = render();
    char seen[64][128];
    int n_seen = 0;
    char cur[128] = "";
    for (char *line = strtok(t, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            size_t n = strcspn(line + 7, " ");
            assert_true(n < sizeof cur);
            memcpy(cur, line + 7, n);
            cur[n] = '\0';
            for (int i = 0; i < n_seen; i++)
                if (strcmp(seen[i], cur) == 0)
                    fail_msg("family %s appears twice", cur);
            assert_true(n_seen < 64);
            snprintf(seen[n_seen++], sizeof seen[0], "%s", cur);
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            assert_int_equal(strncmp(line + 7, cur, strlen(cur)), 0);
        } else {
            size_t n = strcspn(line, "{ ");
            if (strlen(cur) != n || strncmp(line, cur, n) != 0)
                fail_msg("sample '%s' outside its family (%s)", line, cur);
        }
    }
    free(t);
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
        cmocka_unit_test(live_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
