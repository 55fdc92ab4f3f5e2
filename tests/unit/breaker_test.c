/* Breaker state machine on a fake clock (times are passed in). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "breaker.h"
#include "breaker_json.h"
#include <string.h>
#include "wd_error.h"

#define MS 1000000ULL

static brk_config cfg(uint32_t threshold, uint64_t window_ms) {
    brk_config c = {.failure_threshold = threshold,
                    .window_ns = window_ms * MS,
                    .open_ns = 1000 * MS,
                    .open_max_ns = 8000 * MS,
                    .growth = 2.0,
                    .jitter = 0.0,
                    .half_open_max = 1};
    return c;
}

static int transitions;
static void count_cb(void *arg, brk_breaker *b, const brk_transition *t) {
    (void)arg;
    (void)b;
    (void)t;
    transitions++;
}

static void opens_after_threshold_consecutive(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(3, 0);
    brk_init(&b, "t", &c, 1);
    uint64_t g;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(brk_allow(&b, 0, &g), 0);
        brk_record_failure(&b, g, 0, "boom");
    }
    /* A success breaks a run of consecutive failures. */
    assert_int_equal(brk_allow(&b, 0, &g), 0);
    brk_record_success(&b, g, 0);
    for (int i = 0; i < 2; i++) {
        brk_allow(&b, 0, &g);
        brk_record_failure(&b, g, 0, "boom");
    }
    assert_int_equal(b.state, BRK_CLOSED);
    brk_allow(&b, 0, &g);
    brk_record_failure(&b, g, 0, "boom");
    assert_int_equal(b.state, BRK_OPEN);
    assert_int_equal(brk_allow(&b, 10 * MS, &g), WD_EOPEN);
    assert_int_equal(brk_retry_in(&b, 10 * MS), 990 * MS);
}

static void window_forgets_old_failures(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(3, 1000);
    brk_init(&b, "t", &c, 1);
    uint64_t g;
    brk_allow(&b, 0, &g);
    brk_record_failure(&b, g, 0, NULL);
    brk_record_failure(&b, g, 500 * MS, NULL);
    /* Third failure lands after the window: the count starts over. */
    brk_record_failure(&b, g, 1500 * MS, NULL);
    assert_int_equal(b.state, BRK_CLOSED);
    brk_record_failure(&b, g, 1600 * MS, NULL);
    brk_record_failure(&b, g, 1700 * MS, NULL);
    assert_int_equal(b.state, BRK_OPEN);
}

static void half_open_admits_one_and_closes_on_success(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    brk_init(&b, "t", &c, 1);
    uint64_t g, g2;
    brk_allow(&b, 0, &g);
    brk_record_failure(&b, g, 0, NULL);
    assert_int_equal(brk_allow(&b, 999 * MS, &g), WD_EOPEN);
    assert_int_equal(brk_allow(&b, 1000 * MS, &g), 0);
    assert_int_equal(b.state, BRK_HALF_OPEN);
    assert_int_equal(brk_allow(&b, 1000 * MS, &g2), WD_EOPEN); /* only one trial */
    brk_record_success(&b, g, 1001 * MS);
    assert_int_equal(b.state, BRK_CLOSED);
}

static void cooldown_grows_on_reopen_and_caps(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    brk_init(&b, "t", &c, 1);
    uint64_t g, now = 0;
    uint64_t expect[] = {1000, 2000, 4000, 8000, 8000};
    brk_allow(&b, now, &g);
    brk_record_failure(&b, g, now, NULL);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(brk_retry_in(&b, now), expect[i] * MS);
        now += expect[i] * MS;
        assert_int_equal(brk_allow(&b, now, &g), 0);
        brk_record_failure(&b, g, now, "trial failed");
    }
}

static void stale_generation_is_ignored(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    brk_init(&b, "t", &c, 1);
    uint64_t old, g;
    brk_allow(&b, 0, &old);
    brk_allow(&b, 0, &g);
    brk_record_failure(&b, g, 0, NULL); /* opens: generation moves on */
    brk_allow(&b, 1000 * MS, &g);       /* half-open trial */
    brk_record_success(&b, old, 1000 * MS);
    assert_int_equal(b.state, BRK_HALF_OPEN);
}

static void reset_and_force_open_record_reason(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    brk_init(&b, "t", &c, 1);
    transitions = 0;
    brk_set_callback(&b, count_cb, NULL);
    brk_force_open(&b, 5, "maintenance");
    uint64_t g;
    assert_int_equal(brk_allow(&b, 1000000 * MS, &g), WD_EOPEN);
    brk_reset(&b, 6, "operator: fixed");
    assert_int_equal(b.state, BRK_CLOSED);
    assert_int_equal(transitions, 2);
    const brk_transition *t = brk_history_at(&b, 0);
    assert_non_null(t);
    assert_string_equal(t->reason, "operator: fixed");
    assert_int_equal(t->from, BRK_FORCED_OPEN);
    assert_null(brk_history_at(&b, 2));
}

static void release_returns_permit(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    brk_init(&b, "t", &c, 1);
    uint64_t g;
    brk_allow(&b, 0, &g);
    brk_record_failure(&b, g, 0, NULL);
    assert_int_equal(brk_allow(&b, 1000 * MS, &g), 0);
    brk_release(&b, g);
    assert_int_equal(brk_allow(&b, 1000 * MS, &g), 0);
}


/* ---- count window, rates, slow calls ---- */

static void call(brk_breaker *b, uint64_t now, bool ok, uint64_t duration_ms) {
    uint64_t g;
    assert_int_equal(brk_allow(b, now, &g), 0);
    brk_record_call(b, g, now, duration_ms * MS, ok, ok ? NULL : "io error");
}

static brk_config rate_cfg(uint32_t window, uint32_t min, double fail_pct) {
    brk_config c = cfg(0, 0);
    c.window_calls = window;
    c.min_calls = min;
    c.failure_rate_pct = fail_pct;
    return c;
}

static void failure_rate_waits_for_min_calls(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = rate_cfg(10, 5, 50.0);
    brk_init(&b, "t", &c, 1);
    /* With a rate trip on, a zero threshold stays zero: no consecutive trip. */
    assert_int_equal(b.cfg.failure_threshold, 0);
    call(&b, 0, false, 0);
    call(&b, 0, false, 0); /* 100 % of 2 calls, but fewer than min_calls */
    assert_int_equal(b.state, BRK_CLOSED);
    call(&b, 0, true, 0);
    call(&b, 0, true, 0);
    call(&b, 0, true, 0); /* min_calls reached: 40 % < 50 % */
    assert_int_equal(b.state, BRK_CLOSED);
    call(&b, 0, false, 0); /* 3 of 6: 50 % >= 50 % */
    assert_int_equal(b.state, BRK_OPEN);
    const brk_transition *t = brk_history_at(&b, 0);
    assert_non_null(t);
    assert_string_equal(t->reason, "failure rate 50.0% >= 50% over the last 6 calls: io error");
    assert_int_equal(b.total_opens, 1);
}

static void failure_rate_below_threshold_stays_closed(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = rate_cfg(10, 10, 50.0);
    brk_init(&b, "t", &c, 1);
    /* 4 of every 10 fail, for a long time: 40 % never opens it. */
    for (int i = 0; i < 200; i++)
        call(&b, (uint64_t)i * MS, i % 10 < 6, 0); /* ok 6 times in 10 */
    assert_int_equal(b.state, BRK_CLOSED);
    brk_stats s;
    brk_stats_get(&b, 200 * MS, &s);
    assert_int_equal(s.window_calls, 10);
    assert_int_equal(s.window_failures, 4);
    assert_true(s.failure_rate_pct > 39.99 && s.failure_rate_pct < 40.01);
    assert_int_equal(s.failures, 80);
    assert_int_equal(s.successes, 120);
}

static void window_slides_over_the_last_calls(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = rate_cfg(4, 4, 100.0);
    brk_init(&b, "t", &c, 1);
    call(&b, 0, false, 0);
    call(&b, 0, true, 0);
    call(&b, 0, false, 0);
    call(&b, 0, false, 0);
    call(&b, 0, false, 0); /* [S F F F]: 75 %, 4 of 5 overall */
    assert_int_equal(b.state, BRK_CLOSED);
    brk_stats s;
    brk_stats_get(&b, 0, &s);
    assert_int_equal(s.window_calls, 4);
    assert_int_equal(s.window_failures, 3);
    call(&b, 0, false, 0); /* the success falls out: [F F F F] */
    assert_int_equal(b.state, BRK_OPEN);
}

static void window_is_capped_and_min_calls_defaults_to_it(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = rate_cfg(100000, 0, 100.0);
    brk_init(&b, "t", &c, 1);
    assert_int_equal(b.cfg.window_calls, BRK_WINDOW_MAX);
    assert_int_equal(b.cfg.min_calls, BRK_WINDOW_MAX);
    for (int i = 0; i < BRK_WINDOW_MAX - 1; i++)
        call(&b, 0, false, 0);
    assert_int_equal(b.state, BRK_CLOSED);
    call(&b, 0, false, 0);
    assert_int_equal(b.state, BRK_OPEN);
    /* No rate trip and a zero threshold: brk_init falls back to 1. */
    brk_config z = cfg(0, 0);
    brk_init(&b, "t", &z, 1);
    assert_int_equal(b.cfg.failure_threshold, 1);
}

static void slow_call_rate_trips(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = rate_cfg(4, 4, 0);
    c.slow_call_ns = 100 * MS;
    c.slow_call_rate_pct = 50.0;
    brk_init(&b, "t", &c, 1);
    call(&b, 0, true, 150);
    call(&b, 0, true, 100); /* exactly the limit: not slow */
    call(&b, 0, true, 50);
    assert_int_equal(b.state, BRK_CLOSED);
    call(&b, 0, true, 101);
    assert_int_equal(b.state, BRK_OPEN);
    assert_string_equal(brk_history_at(&b, 0)->reason,
                        "slow-call rate 50.0% >= 50% over the last 4 calls (slow: > 100 ms)");
    brk_stats s;
    brk_stats_get(&b, 0, &s);
    assert_int_equal(s.slow, 2);
    assert_int_equal(s.window_slow, 2);
    assert_int_equal(s.failures, 0);
}

static void slow_calls_counted_without_trip(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = rate_cfg(4, 1, 0);
    c.failure_threshold = 5;
    c.slow_call_ns = 10 * MS;
    brk_init(&b, "t", &c, 1);
    for (int i = 0; i < 8; i++)
        call(&b, 0, true, 20);
    assert_int_equal(b.state, BRK_CLOSED);
    brk_stats s;
    brk_stats_get(&b, 0, &s);
    assert_int_equal(s.slow, 8);
    assert_int_equal(s.window_slow, 4);
    assert_true(s.slow_rate_pct == 100.0);
}

static void slow_trial_call_reopens(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    c.window_calls = 10;
    c.slow_call_ns = 100 * MS;
    c.slow_call_rate_pct = 50.0;
    brk_init(&b, "t", &c, 1);
    call(&b, 0, false, 0);
    assert_int_equal(b.state, BRK_OPEN);
    call(&b, 1000 * MS, true, 500);
    assert_int_equal(b.state, BRK_OPEN);
    assert_string_equal(brk_history_at(&b, 0)->reason, "trial call slow (500 ms > 100 ms)");
    call(&b, 3000 * MS, true, 50);
    assert_int_equal(b.state, BRK_CLOSED);
}

static void closing_empties_the_window(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = rate_cfg(4, 2, 50.0);
    brk_init(&b, "t", &c, 1);
    call(&b, 0, false, 0);
    call(&b, 0, false, 0);
    assert_int_equal(b.state, BRK_OPEN);
    brk_stats s;
    brk_stats_get(&b, 0, &s);
    assert_int_equal(s.window_failures, 2); /* kept while open: what tripped it */
    call(&b, 1000 * MS, true, 0);           /* trial succeeds */
    assert_int_equal(b.state, BRK_CLOSED);
    brk_stats_get(&b, 1000 * MS, &s);
    assert_int_equal(s.window_calls, 0);
    /* One failure of one call is under min_calls: old failures do not count. */
    call(&b, 1001 * MS, false, 0);
    assert_int_equal(b.state, BRK_CLOSED);
}

/* ---- half-open ---- */

static void half_open_admits_a_bounded_number(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    c.half_open_max = 2;
    brk_init(&b, "t", &c, 1);
    uint64_t g1, g2, g3, old;
    call(&b, 0, false, 0);
    assert_int_equal(brk_allow(&b, 1000 * MS, &g1), 0);
    assert_int_equal(brk_allow(&b, 1000 * MS, &g2), 0);
    assert_int_equal(brk_allow(&b, 1000 * MS, &g3), WD_EOPEN);
    assert_int_equal(b.total_rejected, 1);
    /* A permit from another generation gives nothing back. */
    old = g1 - 1;
    brk_release(&b, old);
    assert_int_equal(brk_allow(&b, 1000 * MS, &g3), WD_EOPEN);
    brk_release(&b, g2);
    assert_int_equal(brk_allow(&b, 1000 * MS, &g3), 0);
    assert_int_equal(b.half_open_inflight, 2);
    /* One failed trial re-opens it; the other trial's success is stale. */
    brk_record_failure(&b, g1, 1001 * MS, "still down");
    assert_int_equal(b.state, BRK_OPEN);
    assert_string_equal(brk_history_at(&b, 0)->reason, "still down");
    brk_record_success(&b, g3, 1002 * MS);
    assert_int_equal(b.state, BRK_OPEN);
}

static void half_open_bound_reopens(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    c.half_open_max_ns = 500 * MS;
    brk_init(&b, "t", &c, 1);
    uint64_t g, trial;
    call(&b, 0, false, 0);
    assert_int_equal(brk_allow(&b, 1000 * MS, &trial), 0);
    assert_int_equal(b.state, BRK_HALF_OPEN);
    assert_int_equal(brk_allow(&b, 1499 * MS, &g), WD_EOPEN); /* permit taken, bound not hit */
    assert_int_equal(b.state, BRK_HALF_OPEN);
    assert_int_equal(brk_allow(&b, 1500 * MS, &g), WD_EOPEN);
    assert_int_equal(b.state, BRK_OPEN);
    assert_string_equal(brk_history_at(&b, 0)->reason,
                        "half-open for 500 ms without a successful trial call");
    /* The re-open counts toward growth: 2 s now. */
    assert_int_equal(brk_retry_in(&b, 1500 * MS), 2000 * MS);
    /* The hung trial finally succeeds: too late, and from an old generation. */
    brk_record_success(&b, trial, 1600 * MS);
    assert_int_equal(b.state, BRK_OPEN);
}

static void half_open_bound_checked_on_late_result(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    c.half_open_max_ns = 500 * MS;
    brk_init(&b, "t", &c, 1);
    uint64_t trial;
    call(&b, 0, false, 0);
    assert_int_equal(brk_allow(&b, 1000 * MS, &trial), 0);
    /* No brk_allow in between: the result itself finds the bound passed. */
    brk_record_call(&b, trial, 1700 * MS, 700 * MS, true, NULL);
    assert_int_equal(b.state, BRK_OPEN);
    /* Within the bound a success closes it. */
    assert_int_equal(brk_allow(&b, 3700 * MS, &trial), 0);
    brk_record_call(&b, trial, 3800 * MS, 100 * MS, true, NULL);
    assert_int_equal(b.state, BRK_CLOSED);
}

static void stale_failure_after_close_is_ignored(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(2, 0);
    brk_init(&b, "t", &c, 1);
    uint64_t slow1, slow2, g;
    brk_allow(&b, 0, &slow1);
    brk_allow(&b, 0, &slow2);
    call(&b, 0, false, 0);
    call(&b, 0, false, 0); /* opens */
    assert_int_equal(brk_allow(&b, 1000 * MS, &g), 0);
    brk_record_success(&b, g, 1000 * MS); /* closes */
    /* Calls started before the open end now: they must not count. */
    brk_record_failure(&b, slow1, 1001 * MS, "late");
    brk_record_failure(&b, slow2, 1001 * MS, "late");
    assert_int_equal(b.state, BRK_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_int_equal(b.total_failures, 4); /* still counted in the totals */
}

/* ---- open time ---- */

static void cooldown_jitter_stays_in_band_and_under_cap(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    c.jitter = 0.5;
    c.open_max_ns = 5000 * MS;
    brk_init(&b, "t", &c, 42);
    uint64_t now = 0, g, seen_first = 0;
    bool differ = false;
    call(&b, now, false, 0);
    for (int i = 0; i < 12; i++) {
        uint64_t base = 1000 * MS << (i < 3 ? i : 3);
        uint64_t nominal = base < 5000 * MS ? base : 5000 * MS;
        uint64_t d = brk_retry_in(&b, now);
        assert_true(d >= nominal / 2);
        assert_true(d <= nominal + nominal / 2);
        assert_true(d <= 5000 * MS);
        if (i == 0)
            seen_first = d;
        else if (i >= 4 && d != seen_first)
            differ = true;
        now += d;
        assert_int_equal(brk_allow(&b, now, &g), 0);
        brk_record_failure(&b, g, now, NULL);
    }
    assert_true(differ);
    /* Same seed, same delays: the jitter is reproducible in tests. */
    brk_breaker b2;
    brk_init(&b2, "t", &c, 42);
    call(&b2, 0, false, 0);
    assert_int_equal(brk_retry_in(&b2, 0), seen_first);
}

static void cooldown_resets_once_closed(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    brk_init(&b, "t", &c, 1);
    uint64_t now = 0;
    call(&b, now, false, 0);
    now += 1000 * MS;
    call(&b, now, false, 0);
    assert_int_equal(brk_retry_in(&b, now), 2000 * MS);
    now += 2000 * MS;
    call(&b, now, true, 0);
    assert_int_equal(b.state, BRK_CLOSED);
    call(&b, now, false, 0);
    assert_int_equal(brk_retry_in(&b, now), 1000 * MS);
    /* A manual reset starts growth over too. */
    now += 1000 * MS;
    call(&b, now, false, 0);
    assert_int_equal(brk_retry_in(&b, now), 2000 * MS);
    brk_reset(&b, now, "operator");
    call(&b, now, false, 0);
    assert_int_equal(brk_retry_in(&b, now), 1000 * MS);
}

/* ---- forced, disabled ---- */

static void forced_open_rejects_and_ignores_results(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    brk_init(&b, "t", &c, 1);
    uint64_t g, before;
    brk_allow(&b, 0, &before);
    brk_force_open(&b, 10, "maintenance window");
    assert_int_equal(b.state, BRK_FORCED_OPEN);
    brk_record_success(&b, before, 20);
    assert_int_equal(b.state, BRK_FORCED_OPEN);
    for (int i = 0; i < 3; i++)
        assert_int_equal(brk_allow(&b, (uint64_t)i * 3600000 * MS, &g), WD_EOPEN);
    assert_int_equal(brk_retry_in(&b, 0), 0); /* no cooldown: only a reset ends it */
    assert_int_equal(b.total_rejected, 3);
}

static void disabled_admits_everything_and_never_trips(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = rate_cfg(10, 1, 10.0);
    c.failure_threshold = 1;
    brk_init(&b, "t", &c, 1);
    brk_disable(&b, 0, "flapping alarm");
    for (int i = 0; i < 50; i++)
        call(&b, 0, false, 0);
    assert_int_equal(b.state, BRK_DISABLED);
    brk_stats s;
    brk_stats_get(&b, 0, &s);
    assert_int_equal(s.failures, 50);
    assert_int_equal(s.window_failures, 10); /* still measured */
    assert_int_equal(s.opens, 0);
    brk_reset(&b, 1, "back on");
    call(&b, 1, false, 0);
    assert_int_equal(b.state, BRK_OPEN);
}

/* ---- stats, history, callbacks ---- */

static void stats_report_everything(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = rate_cfg(8, 4, 0);
    c.failure_threshold = 3;
    c.slow_call_ns = 100 * MS;
    c.critical = true;
    brk_init(&b, "redis", &c, 1);
    call(&b, 0, true, 200);
    call(&b, 0, false, 0);
    call(&b, 0, false, 0);
    brk_stats s;
    brk_stats_get(&b, 0, &s);
    assert_int_equal(s.state, BRK_CLOSED);
    assert_true(s.critical);
    assert_int_equal(s.consecutive_failures, 2);
    assert_int_equal(s.window_size, 8);
    assert_int_equal(s.window_calls, 3);
    call(&b, 0, false, 0);
    uint64_t g;
    assert_int_equal(brk_allow(&b, 250 * MS, &g), WD_EOPEN);
    brk_stats_get(&b, 250 * MS, &s);
    assert_int_equal(s.state, BRK_OPEN);
    assert_int_equal(s.successes, 1);
    assert_int_equal(s.failures, 3);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(s.slow, 1);
    assert_int_equal(s.window_calls, 4);
    assert_true(s.failure_rate_pct == 75.0);
    assert_true(s.slow_rate_pct == 25.0);
    assert_int_equal(s.retry_in_ns, 750 * MS);
    assert_int_equal(s.generation, 1);
    assert_int_equal(s.opens, 1);
    assert_int_equal(s.consecutive_failures, 0);
}

static void history_is_newest_first_and_bounded(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    brk_init(&b, "t", &c, 1);
    char why[32];
    for (int i = 0; i < BRK_HISTORY + 5; i++) {
        snprintf(why, sizeof why, "step %d", i);
        if (i % 2)
            brk_reset(&b, (uint64_t)i, why);
        else
            brk_force_open(&b, (uint64_t)i, why);
    }
    for (uint32_t i = 0; i < BRK_HISTORY; i++) {
        const brk_transition *t = brk_history_at(&b, i);
        int step = BRK_HISTORY + 4 - (int)i;
        assert_non_null(t);
        snprintf(why, sizeof why, "step %d", step);
        assert_string_equal(t->reason, why);
        assert_int_equal(t->at_ns, (uint64_t)step);
        assert_int_equal(t->to, step % 2 ? BRK_CLOSED : BRK_FORCED_OPEN);
    }
    assert_null(brk_history_at(&b, BRK_HISTORY));
}

static void long_reason_is_cut_on_a_character(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    brk_init(&b, "t", &c, 1);
    char big[600];
    /* "é" is two bytes; 300 of them do not fit in BRK_REASON_MAX. */
    for (int i = 0; i < 299; i++)
        memcpy(big + 2 * i, "\xc3\xa9", 2);
    big[598] = '\0';
    call(&b, 0, true, 0);
    uint64_t g;
    brk_allow(&b, 0, &g);
    brk_record_failure(&b, g, 0, big);
    const char *r = brk_history_at(&b, 0)->reason;
    size_t n = strlen(r);
    assert_true(n <= BRK_REASON_MAX);
    assert_memory_equal(r, "1 failures: \xc3\xa9", 14);
    assert_int_equal((n - strlen("1 failures: ")) % 2, 0); /* no half character */
}

typedef struct {
    int n;
    brk_state from[8], to[8];
    char reason[8][BRK_REASON_MAX + 1];
    brk_breaker *seen;
} cb_log;

static void log_cb(void *arg, brk_breaker *b, const brk_transition *t) {
    cb_log *l = arg;
    l->seen = b;
    /* The callback runs after the change: the breaker already shows it. */
    assert_int_equal(b->state, t->to);
    if (l->n < 8) {
        l->from[l->n] = t->from;
        l->to[l->n] = t->to;
        snprintf(l->reason[l->n], sizeof l->reason[0], "%s", t->reason);
        l->n++;
    }
}

static void callbacks_see_every_transition(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(2, 0);
    cb_log l = {0};
    brk_init(&b, "t", &c, 1);
    brk_set_callback(&b, log_cb, &l);
    call(&b, 0, false, 0);
    call(&b, 0, false, 0);          /* closed -> open */
    call(&b, 1000 * MS, false, 0);  /* open -> half_open -> open */
    call(&b, 3000 * MS, true, 0);   /* open -> half_open -> closed */
    brk_force_open(&b, 4000 * MS, "ops: vendor outage");
    assert_int_equal(l.n, 6);
    assert_ptr_equal(l.seen, &b);
    brk_state from[] = {BRK_CLOSED, BRK_OPEN, BRK_HALF_OPEN, BRK_OPEN, BRK_HALF_OPEN, BRK_CLOSED};
    brk_state to[] = {BRK_OPEN, BRK_HALF_OPEN, BRK_OPEN, BRK_HALF_OPEN, BRK_CLOSED,
                      BRK_FORCED_OPEN};
    const char *why[] = {"2 failures: io error", "cooldown over", "io error", "cooldown over",
                         "trial call succeeded", "ops: vendor outage"};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(l.from[i], from[i]);
        assert_int_equal(l.to[i], to[i]);
        assert_string_equal(l.reason[i], why[i]);
    }
}

/* ---- JSON ---- */

static void json_has_every_field(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = rate_cfg(10, 2, 0);
    c.failure_threshold = 2;
    c.critical = true;
    c.slow_call_ns = 10 * MS;
    brk_init(&b, "postgres", &c, 1);
    call(&b, 0, true, 20);
    call(&b, 0, false, 0);
    call(&b, 100 * MS, false, 0);
    uint64_t g;
    brk_allow(&b, 200 * MS, &g);
    json_t *j = brk_to_json(&b, 400 * MS, true);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "postgres");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "open");
    assert_true(json_is_true(json_object_get(j, "critical")));
    json_t *counts = json_object_get(j, "counts");
    assert_int_equal(json_integer_value(json_object_get(counts, "successes")), 1);
    assert_int_equal(json_integer_value(json_object_get(counts, "failures")), 2);
    assert_int_equal(json_integer_value(json_object_get(counts, "rejected")), 1);
    assert_int_equal(json_integer_value(json_object_get(counts, "slow")), 1);
    json_t *w = json_object_get(j, "window");
    assert_int_equal(json_integer_value(json_object_get(w, "size")), 10);
    assert_int_equal(json_integer_value(json_object_get(w, "calls")), 3);
    double fr = json_real_value(json_object_get(j, "failure_rate"));
    assert_true(fr > 66.6 && fr < 66.7);
    double sr = json_real_value(json_object_get(j, "slow_rate"));
    assert_true(sr > 33.3 && sr < 33.4);
    assert_int_equal(json_integer_value(json_object_get(j, "retry_in_ms")), 700);
    assert_int_equal(json_integer_value(json_object_get(j, "generation")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "opens")), 1);
    json_t *h = json_object_get(j, "history");
    assert_int_equal(json_array_size(h), 1);
    json_t *e = json_array_get(h, 0);
    assert_int_equal(json_integer_value(json_object_get(e, "ago_ms")), 300);
    assert_string_equal(json_string_value(json_object_get(e, "from")), "closed");
    assert_string_equal(json_string_value(json_object_get(e, "to")), "open");
    assert_string_equal(json_string_value(json_object_get(e, "reason")), "2 failures: io error");
    json_decref(j);
    /* Without history; a cooldown with under 1 ms left still says 1. */
    j = brk_to_json(&b, 1100 * MS - 1, false);
    assert_non_null(j);
    assert_null(json_object_get(j, "history"));
    assert_int_equal(json_integer_value(json_object_get(j, "retry_in_ms")), 1);
    json_decref(j);
}

static void json_history_is_newest_first(void **state) {
    (void)state;
    brk_breaker b;
    brk_config c = cfg(1, 0);
    brk_init(&b, "t", &c, 1);
    brk_force_open(&b, 1000 * MS, "first");
    brk_reset(&b, 2000 * MS, "second");
    json_t *j = brk_to_json(&b, 5000 * MS, true);
    assert_non_null(j);
    json_t *h = json_object_get(j, "history");
    assert_int_equal(json_array_size(h), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "reason")),
                        "second");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(h, 0), "ago_ms")), 3000);
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 1), "reason")),
                        "first");
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 1), "to")),
                        "forced_open");
    assert_int_equal(json_integer_value(json_object_get(j, "retry_in_ms")), 0);
    json_decref(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(opens_after_threshold_consecutive),
        cmocka_unit_test(window_forgets_old_failures),
        cmocka_unit_test(half_open_admits_one_and_closes_on_success),
        cmocka_unit_test(cooldown_grows_on_reopen_and_caps),
        cmocka_unit_test(stale_generation_is_ignored),
        cmocka_unit_test(reset_and_force_open_record_reason),
        cmocka_unit_test(release_returns_permit),
        cmocka_unit_test(failure_rate_waits_for_min_calls),
        cmocka_unit_test(failure_rate_below_threshold_stays_closed),
        cmocka_unit_test(window_slides_over_the_last_calls),
        cmocka_unit_test(window_is_capped_and_min_calls_defaults_to_it),
        cmocka_unit_test(slow_call_rate_trips),
        cmocka_unit_test(slow_calls_counted_without_trip),
        cmocka_unit_test(slow_trial_call_reopens),
        cmocka_unit_test(closing_empties_the_window),
        cmocka_unit_test(half_open_admits_a_bounded_number),
        cmocka_unit_test(half_open_bound_reopens),
        cmocka_unit_test(half_open_bound_checked_on_late_result),
        cmocka_unit_test(stale_failure_after_close_is_ignored),
        cmocka_unit_test(cooldown_jitter_stays_in_band_and_under_cap),
        cmocka_unit_test(cooldown_resets_once_closed),
        cmocka_unit_test(forced_open_rejects_and_ignores_results),
        cmocka_unit_test(disabled_admits_everything_and_never_trips),
        cmocka_unit_test(stats_report_everything),
        cmocka_unit_test(history_is_newest_first_and_bounded),
        cmocka_unit_test(long_reason_is_cut_on_a_character),
        cmocka_unit_test(callbacks_see_every_transition),
        cmocka_unit_test(json_has_every_field),
        cmocka_unit_test(json_history_is_newest_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
