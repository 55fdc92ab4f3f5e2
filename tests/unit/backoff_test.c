#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backoff.h"

static void ceiling_doubles_and_caps(void **state) {
    (void)state;
    assert_int_equal(wd_backoff_ceiling(100, 30000, 0), 100);
    assert_int_equal(wd_backoff_ceiling(100, 30000, 1), 200);
    assert_int_equal(wd_backoff_ceiling(100, 30000, 8), 25600);
    assert_int_equal(wd_backoff_ceiling(100, 30000, 9), 30000);
    /* No overflow for absurd attempts. */
    assert_int_equal(wd_backoff_ceiling(100, 30000, 4000000000u), 30000);
    assert_int_equal(wd_backoff_ceiling(UINT64_MAX / 2, UINT64_MAX, 5), UINT64_MAX);
}

static void full_jitter_stays_in_range_and_spreads(void **state) {
    (void)state;
    wd_rng r;
    wd_rng_seed(&r, 42);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t d = wd_backoff_full_jitter(&r, 100, 30000, 3);
        assert_true(d <= 800);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    /* Full jitter spans the whole range, not a band near the ceiling. */
    assert_true(lo < 50);
    assert_true(hi > 750);
}

static void same_seed_same_sequence(void **state) {
    (void)state;
    wd_rng a, b;
    wd_rng_seed(&a, 7);
    wd_rng_seed(&b, 7);
    for (int i = 0; i < 100; i++)
        assert_int_equal(wd_rng_next(&a), wd_rng_next(&b));
    assert_int_equal(wd_rng_upto(&a, 0), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ceiling_doubles_and_caps),
        cmocka_unit_test(full_jitter_stays_in_range_and_spreads),
        cmocka_unit_test(same_seed_same_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
