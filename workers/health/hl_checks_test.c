/* Readiness evaluation and probe texts of the health worker (hl_checks.c),
 * from supervisor status JSON shaped as docs/CONTROL.md says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hl.h"

#define MAX_AGE_MS 5000

static json_t *status(const char *workers_json, bool draining) {
    json_error_t e;
    json_t *w = json_loads(workers_json, 0, &e);
    if (w == NULL)
        fail_msg("bad test JSON: %s", e.text);
    return json_pack("{s:{s:s,s:b,s:f},s:o}", "supervisor", "version", "0.1.0", "draining",
                     draining, "uptime_s", 12.5, "workers", w);
}

#define RUNNING_W(name, required)                                                                  \
    "{\"name\":\"" name "\",\"kind\":\"worker\",\"state\":\"RUNNING\",\"desired\":\"up\","        \
    "\"ready\":true,\"required\":" required ",\"heartbeat_age_s\":0.1,\"restarts\":0,"              \
    "\"breaker\":{\"state\":\"closed\"},\"breakers\":[],\"metrics\":{}}"

static const hl_check *find(const hl_check *c, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(c[i].name, name) == 0)
            return &c[i];
    fail_msg("no check %s", name);
    /* fail_msg does not return; saying so keeps gcc's ASan build from
     * warning about a NULL result read by the callers' strstr. */
    abort();
}

static bool all_ok(const hl_check *c, int n) {
    for (int i = 0; i < n; i++)
        if (!c[i].ok)
            return false;
    return true;
}

static void all_ready(void **state) {
    (void)state;
    hl_check c[16];
    json_t *st = status("[" RUNNING_W("db", "true") "," RUNNING_W("opt", "false") "]", false);
    int n = hl_checks_eval(st, MAX_AGE_MS, c, 16);
    assert_int_equal(n, 3); /* startup, draining, worker:db; opt is not required */
    assert_true(all_ok(c, n));
    json_decref(st);
}

static void crash_looping_required_worker(void **state) {
    (void)state;
    hl_check c[16];
    json_t *st = status(
        "[{\"name\":\"db\",\"kind\":\"worker\",\"state\":\"BACKOFF\",\"desired\":\"up\","
        "\"ready\":false,\"required\":true,\"heartbeat_age_s\":null,\"restarts\":4,"
        "\"reason\":\"exit 1\",\"breaker\":{\"state\":\"open\",\"retry_in_s\":12.0},"
        "\"breakers\":[],\"metrics\":{}}]",
        false);
    int n = hl_checks_eval(st, MAX_AGE_MS, c, 16);
    const hl_check *w = find(c, n, "worker:db");
    assert_false(w->ok);
    assert_non_null(strstr(w->reason, "BACKOFF"));
    assert_non_null(strstr(w->reason, "crash-loop breaker open"));
    assert_true(find(c, n, "startup")->ok); /* it has started before */
    json_decref(st);
}

static void stale_heartbeat_and_not_ready(void **state) {
    (void)state;
    hl_check c[16];
    json_t *st = status(
        "[{\"name\":\"a\",\"kind\":\"worker\",\"state\":\"RUNNING\",\"desired\":\"up\","
        "\"ready\":true,\"required\":true,\"heartbeat_age_s\":9.5,\"restarts\":0,"
        "\"breaker\":{},\"breakers\":[],\"metrics\":{}},"
        "{\"name\":\"b\",\"kind\":\"worker\",\"state\":\"RUNNING\",\"desired\":\"up\","
        "\"ready\":false,\"required\":true,\"heartbeat_age_s\":0.1,\"restarts\":0,"
        "\"breaker\":{},\"breakers\":[],\"metrics\":{}},"
        "{\"name\":\"p\",\"kind\":\"program\",\"state\":\"RUNNING\",\"desired\":\"up\","
        "\"ready\":false,\"required\":true,\"heartbeat_age_s\":null,\"restarts\":0,"
        "\"breaker\":{},\"breakers\":[],\"metrics\":{}}]",
        false);
    int n = hl_checks_eval(st, MAX_AGE_MS, c, 16);
    assert_false(find(c, n, "worker:a")->ok);
    assert_non_null(strstr(find(c, n, "worker:a")->reason, "9.5 s ago"));
    assert_false(find(c, n, "worker:b")->ok);
    assert_non_null(strstr(find(c, n, "worker:b")->reason, "not READY"));
    assert_true(find(c, n, "worker:p")->ok); /* a program has process liveness only */
    json_decref(st);
}

static void startup_and_draining(void **state) {
    (void)state;
    hl_check c[16];
    json_t *st = status(
        "[{\"name\":\"a\",\"kind\":\"worker\",\"state\":\"STARTING\",\"desired\":\"up\","
        "\"ready\":false,\"required\":false,\"restarts\":0,\"breaker\":{},\"breakers\":[],"
        "\"metrics\":{}}]",
        true);
    int n = hl_checks_eval(st, MAX_AGE_MS, c, 16);
    assert_false(find(c, n, "startup")->ok);
    assert_non_null(strstr(find(c, n, "startup")->reason, "a is still starting"));
    assert_false(find(c, n, "draining")->ok);
    json_decref(st);
}

static void critical_breakers(void **state) {
    (void)state;
    hl_check c[16];
    json_t *st = status(
        "[{\"name\":\"pm\",\"kind\":\"worker\",\"state\":\"RUNNING\",\"desired\":\"up\","
        "\"ready\":true,\"required\":false,\"heartbeat_age_s\":0.1,\"restarts\":0,"
        "\"breaker\":{},\"breakers\":[{\"name\":\"redis\",\"state\":\"open\"},"
        "{\"name\":\"broker\",\"state\":\"open\"},{\"name\":\"pg\",\"state\":\"closed\"}],"
        "\"metrics\":{\"wrk_breaker_critical{breaker=\\\"redis\\\"}\":1,"
        "\"wrk_breaker_retry_in_seconds{breaker=\\\"redis\\\"}\":3.5,"
        "\"wrk_breaker_critical{breaker=\\\"broker\\\"}\":0,"
        "\"wrk_breaker_critical{breaker=\\\"pg\\\"}\":1}}]",
        false);
    int n = hl_checks_eval(st, MAX_AGE_MS, c, 16);
    const hl_check *redis = find(c, n, "breaker:pm:redis");
    assert_false(redis->ok);
    assert_non_null(strstr(redis->reason, "half-open in 3.5 s"));
    assert_true(find(c, n, "breaker:pm:pg")->ok);
    for (int i = 0; i < n; i++) /* a non-critical open breaker is no check */
        assert_null(strstr(c[i].name, "broker"));
    json_decref(st);
}

static void probe_texts(void **state) {
    (void)state;
    hl_check c[3] = {{"supervisor", true, ""}, {"worker:db", false, "state BACKOFF"},
                     {"breaker:pm:redis", true, ""}};
    hl_route r;
    char *body;
    size_t len;
    memset(&r, 0, sizeof r);
    assert_int_equal(hl_probe_text("readyz", c, 3, &r, &body, &len), 503);
    assert_string_equal(body, "[-]worker:db failed: state BACKOFF\nreadyz check failed\n");
    assert_int_equal(len, strlen(body));
    free(body);
    r.verbose = true;
    assert_int_equal(hl_probe_text("readyz", c, 3, &r, &body, &len), 503);
    assert_string_equal(body, "[+]supervisor ok\n[-]worker:db failed: state BACKOFF\n"
                              "[+]breaker:pm:redis ok\nreadyz check failed\n");
    free(body);
    /* ?exclude=db (the name after the kind) */
    snprintf(r.exclude[0], sizeof r.exclude[0], "db");
    r.n_exclude = 1;
    assert_int_equal(hl_probe_text("readyz", c, 3, &r, &body, &len), 200);
    assert_non_null(strstr(body, "[+]worker:db excluded: failed\n"));
    assert_non_null(strstr(body, "readyz check passed\n"));
    free(body);
    r.verbose = false;
    assert_int_equal(hl_probe_text("readyz", c, 3, &r, &body, &len), 200);
    assert_string_equal(body, "ok\n");
    free(body);
    /* /readyz/NAME */
    memset(&r, 0, sizeof r);
    snprintf(r.check, sizeof r.check, "worker:db");
    assert_int_equal(hl_probe_text("readyz", c, 3, &r, &body, &len), 503);
    assert_string_equal(body, "[-]worker:db failed: state BACKOFF\n");
    free(body);
    snprintf(r.check, sizeof r.check, "supervisor");
    assert_int_equal(hl_probe_text("readyz", c, 3, &r, &body, &len), 200);
    free(body);
    snprintf(r.check, sizeof r.check, "nothing");
    assert_int_equal(hl_probe_text("readyz", c, 3, &r, &body, &len), 404);
    free(body);
}

static void check_matching(void **state) {
    (void)state;
    assert_true(hl_check_matches("worker:db", "worker:db"));
    assert_true(hl_check_matches("worker:db", "db"));
    assert_true(hl_check_matches("breaker:pm:redis", "pm:redis"));
    assert_false(hl_check_matches("breaker:pm:redis", "redis"));
    assert_false(hl_check_matches("worker:db", "d"));
    assert_true(hl_check_matches("startup", "startup"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(all_ready),
        cmocka_unit_test(crash_looping_required_worker),
        cmocka_unit_test(stale_heartbeat_and_not_ready),
        cmocka_unit_test(startup_and_draining),
        cmocka_unit_test(critical_breakers),
        cmocka_unit_test(probe_texts),
        cmocka_unit_test(check_matching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
