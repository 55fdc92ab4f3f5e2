/* Breaker state machine on a fake clock (times are passed in). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "breaker.h"
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(opens_after_threshold_consecutive),
        cmocka_unit_test(window_forgets_old_failures),
        cmocka_unit_test(half_open_admits_one_and_closes_on_success),
        cmocka_unit_test(cooldown_grows_on_reopen_and_caps),
        cmocka_unit_test(stale_generation_is_ignored),
        cmocka_unit_test(reset_and_force_open_record_reason),
        cmocka_unit_test(release_returns_permit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
