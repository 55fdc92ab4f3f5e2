/* The notifier's pure parts: routing by severity and labels, dedup windows
 * and storm grouping driven by a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "nt.h"
#include "wd_error.h"

#define MS 1000000ULL
#define S 1000000000ULL
#define T0 (1000 * S)

static proto_alert mk(const char *id, proto_alert_severity sev, const char *title) {
    proto_alert a;
    memset(&a, 0, sizeof a);
    strcpy(a.id, id);
    strcpy(a.source, "pm");
    a.severity = sev;
    strcpy(a.title, title);
    a.time_ns = 1;
    return a;
}

static void route_by_severity(void **state) {
    (void)state;
    nt_route r;
    char err[128];
    assert_int_equal(nt_route_parse(&r, "warning, critical", "", err, sizeof err), 0);
    proto_alert a = mk("a", PROTO_SEV_INFO, "t");
    assert_false(nt_route_match(&r, &a));
    a.severity = PROTO_SEV_WARNING;
    assert_true(nt_route_match(&r, &a));
    a.severity = PROTO_SEV_CRITICAL;
    assert_true(nt_route_match(&r, &a));
}

static void route_by_labels(void **state) {
    (void)state;
    nt_route r;
    char err[128];
    assert_int_equal(nt_route_parse(&r, "info,warning,critical", "team=risk, symbol=*", err,
                                    sizeof err),
                     0);
    proto_alert a = mk("a", PROTO_SEV_INFO, "t");
    assert_false(nt_route_match(&r, &a)); /* no labels */
    assert_int_equal(proto_alert_label_add(&a, "team", "risk"), 0);
    assert_false(nt_route_match(&r, &a)); /* symbol missing */
    assert_int_equal(proto_alert_label_add(&a, "symbol", "AAPL"), 0);
    assert_true(nt_route_match(&r, &a));
    strcpy(a.labels[0].val, "ops");
    assert_false(nt_route_match(&r, &a)); /* wrong value */
}

static void route_rejects_bad_config(void **state) {
    (void)state;
    nt_route r;
    char err[128] = "";
    assert_int_equal(nt_route_parse(&r, "info,fatal", "", err, sizeof err), WD_EINVAL);
    assert_non_null(strstr(err, "fatal"));
    assert_int_equal(nt_route_parse(&r, "info", "team", err, sizeof err), WD_EINVAL);
    assert_non_null(strstr(err, "key=value"));
    assert_int_equal(nt_route_parse(&r, "", "", err, sizeof err), WD_EINVAL);
    assert_non_null(strstr(err, "empty"));
}

typedef struct {
    int calls;
    uint32_t repeats, routes;
    char first[PROTO_ALERT_ID_MAX + 1];
    proto_alert_severity sev;
} sums;

static void on_sum(void *arg, const nt_dedup_summary *s) {
    sums *x = arg;
    x->calls++;
    x->repeats = s->repeats;
    x->routes = s->routes;
    x->sev = s->severity;
    strcpy(x->first, s->first_id);
}

static void dedup_merges_within_window(void **state) {
    (void)state;
    nt_dedup d;
    const char *first;
    uint32_t n;
    sums x = {0};
    assert_int_equal(nt_dedup_init(&d, 10 * S, 16), 0);
    proto_alert a = mk("a1", PROTO_SEV_WARNING, "exit AAPL");
    char key[256];
    nt_dedup_key(&a, key, sizeof key);
    assert_string_equal(key, "pm/exit AAPL");
    assert_int_equal(nt_dedup_note(&d, key, &a, 0x5, T0, &first, &n), NT_DEDUP_NEW);
    assert_string_equal(first, "a1");
    proto_alert b = mk("a2", PROTO_SEV_CRITICAL, "exit AAPL");
    assert_int_equal(nt_dedup_note(&d, key, &b, 0x5, T0 + 1 * S, &first, &n), NT_DEDUP_MERGED);
    assert_string_equal(first, "a1");
    assert_int_equal(n, 1);
    proto_alert c = mk("a3", PROTO_SEV_INFO, "exit AAPL");
    assert_int_equal(nt_dedup_note(&d, key, &c, 0x5, T0 + 9 * S, &first, &n), NT_DEDUP_MERGED);
    assert_int_equal(n, 2);
    /* Another key is its own window. */
    proto_alert o = mk("o1", PROTO_SEV_INFO, "other");
    strcpy(o.dedup_key, "k2");
    nt_dedup_key(&o, key, sizeof key);
    assert_string_equal(key, "k2");
    assert_int_equal(nt_dedup_note(&d, key, &o, 1, T0 + 9 * S, &first, &n), NT_DEDUP_NEW);
    /* Nothing expires before the window ends... */
    assert_int_equal(nt_dedup_expire(&d, T0 + 9 * S, on_sum, &x), 0);
    assert_int_equal(x.calls, 0);
    /* ...then the first window sums up its 2 repeats (highest severity,
     * the first alert's channels); the other had none: no summary. */
    assert_int_equal(nt_dedup_expire(&d, T0 + 10 * S, on_sum, &x), 1);
    assert_int_equal(x.calls, 1);
    assert_int_equal(x.repeats, 2);
    assert_int_equal(x.routes, 0x5);
    assert_int_equal(x.sev, PROTO_SEV_CRITICAL);
    assert_string_equal(x.first, "a1");
    assert_int_equal(nt_dedup_size(&d), 1);
    assert_int_equal(nt_dedup_expire(&d, T0 + 19 * S + 1, on_sum, &x), 1);
    assert_int_equal(x.calls, 1);
    assert_int_equal(nt_dedup_size(&d), 0);
    /* After the window the same key is new again. */
    nt_dedup_key(&a, key, sizeof key);
    proto_alert e = mk("a4", PROTO_SEV_INFO, "exit AAPL");
    assert_int_equal(nt_dedup_note(&d, key, &e, 1, T0 + 30 * S, &first, &n), NT_DEDUP_NEW);
    nt_dedup_free(&d);
}

static void dedup_forget_and_off(void **state) {
    (void)state;
    nt_dedup d;
    const char *first;
    uint32_t n;
    assert_int_equal(nt_dedup_init(&d, 10 * S, 4), 0);
    proto_alert a = mk("a1", PROTO_SEV_INFO, "t");
    assert_int_equal(nt_dedup_note(&d, "k", &a, 1, T0, &first, &n), NT_DEDUP_NEW);
    nt_dedup_forget(&d, "k", "a1"); /* its store failed */
    proto_alert b = mk("a2", PROTO_SEV_INFO, "t");
    assert_int_equal(nt_dedup_note(&d, "k", &b, 1, T0 + S, &first, &n), NT_DEDUP_NEW);
    nt_dedup_free(&d);
    assert_int_equal(nt_dedup_init(&d, 0, 4), 0); /* window 0: dedup off */
    assert_int_equal(nt_dedup_note(&d, "k", &a, 1, T0, &first, &n), NT_DEDUP_NEW);
    assert_int_equal(nt_dedup_note(&d, "k", &b, 1, T0, &first, &n), NT_DEDUP_NEW);
    nt_dedup_free(&d);
}

static void storm_groups_past_threshold(void **state) {
    (void)state;
    nt_storm s;
    nt_storm_init(&s, 3, 60 * S);
    assert_false(nt_storm_note(&s, T0));
    assert_false(nt_storm_note(&s, T0 + S));
    assert_false(nt_storm_note(&s, T0 + 2 * S));
    assert_true(nt_storm_note(&s, T0 + 3 * S)); /* the 4th in the window */
    assert_true(nt_storm_note(&s, T0 + 59 * S));
    assert_int_equal(nt_storm_window_end(&s), T0 + 60 * S);
    /* A new window starts calm. */
    assert_false(nt_storm_note(&s, T0 + 60 * S));
    nt_storm_init(&s, 0, 60 * S); /* off */
    for (int i = 0; i < 100; i++)
        assert_false(nt_storm_note(&s, T0));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(route_by_severity),
        cmocka_unit_test(route_by_labels),
        cmocka_unit_test(route_rejects_bad_config),
        cmocka_unit_test(dedup_merges_within_window),
        cmocka_unit_test(dedup_forget_and_off),
        cmocka_unit_test(storm_groups_past_threshold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
