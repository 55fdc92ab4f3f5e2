#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "throttle.h"
#include "wd_error.h"

#define MS 1000000ULL
#define S 1000000000ULL
#define T0 (1000 * S)

/* 10/s (100 ms apart), down to 1/s, +1/s per clean 5 s, burst 2. */
static throttle_config base_cfg(void) {
    throttle_config c = {.rate_max_per_s = 10,
                         .rate_min_per_s = 1,
                         .increase_step_per_s = 1,
                         .clean_interval_ns = 5 * S,
                         .burst = 2};
    return c;
}

static void setup_at(throttle *t, uint64_t now) {
    throttle_config c = base_cfg();
    assert_int_equal(throttle_init(t, &c, now), 0);
}

typedef struct {
    const char *name;
    double max, min, step;
    uint64_t clean;
    uint32_t burst;
} bad_cfg;

static void init_rejects_bad_config(void **state) {
    (void)state;
    static const bad_cfg cases[] = {
        {"min zero", 10, 0, 1, S, 1},
        {"min below floor", 10, 0.0001, 1, S, 1},
        {"max below min", 1, 2, 1, S, 1},
        {"max above bound", 2e6, 1, 1, S, 1},
        {"negative step", 10, 1, -1, S, 1},
        {"huge step", 10, 1, 2e6, S, 1},
        {"zero interval", 10, 1, 1, 0, 1},
        {"zero burst", 10, 1, 1, S, 0},
        {"burst too big", 10, 1, 1, S, THROTTLE_BURST_MAX + 1},
        {"nan max", NAN, 1, 1, S, 1},
        {"nan min", 10, NAN, 1, S, 1},
        {"nan step", 10, 1, NAN, S, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        throttle t;
        memset(&t, 0xAB, sizeof t);
        throttle_config c = {cases[i].max, cases[i].min, cases[i].step, cases[i].clean,
                             cases[i].burst};
        if (throttle_init(&t, &c, 0) != WD_EINVAL)
            fail_msg("case '%s' accepted", cases[i].name);
        if (t.interval_ns != 0xABABABABABABABABULL)
            fail_msg("case '%s' touched t", cases[i].name);
    }
    throttle t;
    throttle_config ok = base_cfg();
    assert_int_equal(throttle_init(NULL, &ok, 0), WD_EINVAL);
    assert_int_equal(throttle_init(&t, NULL, 0), WD_EINVAL);
    ok.rate_min_per_s = ok.rate_max_per_s = THROTTLE_RATE_MAX;
    ok.burst = THROTTLE_BURST_MAX;
    assert_int_equal(throttle_init(&t, &ok, 0), 0);
    ok.rate_min_per_s = ok.rate_max_per_s = THROTTLE_RATE_MIN;
    assert_int_equal(throttle_init(&t, &ok, 0), 0);
    assert_int_equal(t.interval_ns, 1000 * S);
}

static void burst_then_paced(void **state) {
    (void)state;
    throttle t;
    uint64_t w = 12345;
    setup_at(&t, T0);
    assert_int_equal(throttle_acquire(&t, T0, &w), 0);
    assert_int_equal(w, 0);
    assert_int_equal(throttle_acquire(&t, T0, NULL), 0);
    assert_int_equal(throttle_acquire(&t, T0, &w), WD_EBUSY);
    assert_int_equal(w, 100 * MS);
    assert_int_equal(throttle_acquire(&t, T0 + 100 * MS - 1, &w), WD_EBUSY);
    assert_int_equal(w, 1);
    assert_int_equal(throttle_acquire(&t, T0 + 100 * MS - 1, NULL), WD_EBUSY);
    assert_int_equal(throttle_acquire(&t, T0 + 100 * MS, &w), 0);
    assert_int_equal(throttle_acquire(&t, T0 + 100 * MS, &w), WD_EBUSY);
    assert_int_equal(w, 100 * MS);
    /* An idle period refills to burst, not beyond. */
    uint64_t t1 = T0 + 10 * S;
    assert_int_equal(throttle_acquire(&t, t1, &w), 0);
    assert_int_equal(throttle_acquire(&t, t1, &w), 0);
    assert_int_equal(throttle_acquire(&t, t1, &w), WD_EBUSY);
    throttle_stats st;
    throttle_stats_get(&t, &st);
    assert_int_equal(st.acquired, 5);
    assert_int_equal(st.delayed, 5);
}

static void error_halves_down_to_min(void **state) {
    (void)state;
    throttle t;
    throttle_stats st;
    setup_at(&t, T0);
    static const double want[] = {5, 2.5, 1.25, 1, 1};
    for (size_t i = 0; i < 5; i++) {
        throttle_on_error(&t, T0, i % 2 == 0, 0);
        throttle_stats_get(&t, &st);
        if (st.rate_per_s != want[i])
            fail_msg("after %zu errors rate %f want %f", i + 1, st.rate_per_s, want[i]);
    }
    assert_int_equal(st.halvings, 5);
    assert_int_equal(st.errors, 5);
    assert_int_equal(st.rate_limited, 3);
    assert_int_equal(st.pauses, 0);
    assert_int_equal(st.paused_until_ns, 0);
    assert_int_equal(t.interval_ns, S);
    /* Pacing follows the lower rate: burst 2 then one per second. */
    assert_int_equal(throttle_acquire(&t, T0, NULL), 0);
    assert_int_equal(throttle_acquire(&t, T0, NULL), 0);
    uint64_t w = 0;
    assert_int_equal(throttle_acquire(&t, T0, &w), WD_EBUSY);
    assert_int_equal(w, S);
}

static void retry_after_pauses_everything(void **state) {
    (void)state;
    throttle t;
    throttle_stats st;
    uint64_t w = 0;
    setup_at(&t, T0);
    throttle_on_error(&t, T0, true, 2000);
    throttle_stats_get(&t, &st);
    assert_int_equal(st.paused_until_ns, T0 + 2 * S);
    assert_int_equal(st.pauses, 1);
    assert_int_equal(st.halvings, 1);
    assert_true(st.rate_per_s == 5);
    /* Nothing goes during the pause, whatever the bucket holds. */
    assert_int_equal(throttle_acquire(&t, T0, &w), WD_EBUSY);
    assert_int_equal(w, 2 * S);
    assert_int_equal(throttle_acquire(&t, T0 + 1500 * MS, &w), WD_EBUSY);
    assert_int_equal(w, 500 * MS);
    /* Errors from calls made before the pause: no more halving; a shorter
     * Retry-After does not shorten the pause. */
    throttle_on_error(&t, T0 + 100 * MS, true, 500);
    throttle_stats_get(&t, &st);
    assert_int_equal(st.paused_until_ns, T0 + 2 * S);
    assert_int_equal(st.pauses, 1);
    assert_int_equal(st.halvings, 1);
    assert_int_equal(st.errors, 2);
    /* A longer one extends it. */
    throttle_on_error(&t, T0 + 200 * MS, true, 3000);
    throttle_stats_get(&t, &st);
    assert_int_equal(st.paused_until_ns, T0 + 3200 * MS);
    assert_int_equal(st.pauses, 2);
    assert_int_equal(st.halvings, 1);
    /* At the end one call goes, then pacing at 5/s (200 ms): no stampede. */
    uint64_t end = T0 + 3200 * MS;
    assert_int_equal(throttle_acquire(&t, end - 1, &w), WD_EBUSY);
    assert_int_equal(w, 1);
    assert_int_equal(throttle_acquire(&t, end, &w), 0);
    assert_int_equal(throttle_acquire(&t, end, &w), WD_EBUSY);
    assert_int_equal(w, 200 * MS);
    assert_int_equal(throttle_acquire(&t, end + 200 * MS, &w), 0);
    /* A non-429 error with Retry-After (503) pauses too, and halves. */
    throttle_on_error(&t, end + 300 * MS, false, 1000);
    throttle_stats_get(&t, &st);
    assert_int_equal(st.paused_until_ns, end + 1300 * MS);
    assert_int_equal(st.pauses, 3);
    assert_int_equal(st.halvings, 2);
    assert_int_equal(st.rate_limited, 3);
}

static void retry_after_saturates(void **state) {
    (void)state;
    throttle t;
    throttle_stats st;
    setup_at(&t, T0);
    throttle_on_error(&t, T0, true, UINT64_MAX);
    throttle_stats_get(&t, &st);
    assert_int_equal(st.paused_until_ns, UINT64_MAX);
    uint64_t w = 0;
    assert_int_equal(throttle_acquire(&t, T0, &w), WD_EBUSY);
    assert_int_equal(w, UINT64_MAX - T0);
}

static void overrun_slows_by_quarter(void **state) {
    (void)state;
    throttle t;
    throttle_stats st;
    setup_at(&t, T0);
    throttle_on_cycle_overrun(&t, T0);
    throttle_stats_get(&t, &st);
    assert_true(st.rate_per_s == 7.5);
    assert_int_equal(t.interval_ns, 133333333);
    for (int i = 0; i < 20; i++)
        throttle_on_cycle_overrun(&t, T0);
    throttle_stats_get(&t, &st);
    assert_true(st.rate_per_s == 1);
    assert_int_equal(st.slowdowns, 21);
    assert_int_equal(st.halvings, 0);
}

static void clean_interval_raises_rate(void **state) {
    (void)state;
    throttle t;
    throttle_stats st;
    setup_at(&t, T0);
    /* At max already: success changes nothing. */
    throttle_on_success(&t, T0 + 60 * S);
    throttle_stats_get(&t, &st);
    assert_int_equal(st.increases, 0);
    throttle_on_error(&t, T0, false, 0); /* 5/s */
    throttle_on_success(&t, T0 + 5 * S - 1);
    throttle_stats_get(&t, &st);
    assert_true(st.rate_per_s == 5);
    throttle_on_success(&t, T0 + 5 * S);
    throttle_stats_get(&t, &st);
    assert_true(st.rate_per_s == 6);
    assert_int_equal(st.increases, 1);
    /* The next step needs another clean interval. */
    throttle_on_success(&t, T0 + 9 * S);
    throttle_stats_get(&t, &st);
    assert_true(st.rate_per_s == 6);
    /* An overrun restarts the clean interval. */
    throttle_on_cycle_overrun(&t, T0 + 9 * S); /* 4.5/s */
    throttle_on_success(&t, T0 + 13 * S);
    throttle_stats_get(&t, &st);
    assert_true(st.rate_per_s == 4.5);
    throttle_on_success(&t, T0 + 14 * S);
    throttle_stats_get(&t, &st);
    assert_true(st.rate_per_s == 5.5);
    /* A clock going backwards raises nothing. */
    throttle_on_success(&t, T0);
    throttle_stats_get(&t, &st);
    assert_true(st.rate_per_s == 5.5);
    /* Capped at max. */
    for (uint64_t k = 1; k <= 10; k++)
        throttle_on_success(&t, T0 + 14 * S + k * 5 * S);
    throttle_stats_get(&t, &st);
    assert_true(st.rate_per_s == 10);
    assert_int_equal(st.increases, 7);
    assert_int_equal(t.interval_ns, 100 * MS);
}

static void zero_step_never_recovers(void **state) {
    (void)state;
    throttle t;
    throttle_stats st;
    throttle_config c = base_cfg();
    c.increase_step_per_s = 0;
    assert_int_equal(throttle_init(&t, &c, 0), 0);
    throttle_on_error(&t, 0, false, 0);
    throttle_on_success(&t, 3600 * S);
    throttle_stats_get(&t, &st);
    assert_true(st.rate_per_s == 5);
    assert_int_equal(st.increases, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(init_rejects_bad_config),
        cmocka_unit_test(burst_then_paced),
        cmocka_unit_test(error_halves_down_to_min),
        cmocka_unit_test(retry_after_pauses_everything),
        cmocka_unit_test(retry_after_saturates),
        cmocka_unit_test(overrun_slows_by_quarter),
        cmocka_unit_test(clean_interval_raises_rate),
        cmocka_unit_test(zero_step_never_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
