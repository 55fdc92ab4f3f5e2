/* Exit rules, row validation, client order ids: each rule on both sides of
 * its level, for longs and shorts, with a fake clock for holding times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "pm.h"
#include "wd_error.h"

#define S 1000000000ULL

static pm_pos pos(pm_side side, double entry) {
    pm_pos p;
    memset(&p, 0, sizeof p);
    p.id = 1;
    p.side = (uint8_t)side;
    p.entry = entry;
    p.quantity = 1;
    p.usym = PM_NONE;
    return p;
}

static void stop_loss_long_and_short(void **st) {
    (void)st;
    pm_pos l = pos(PM_LONG, 100);
    l.stop_loss = 95;
    assert_int_equal(pm_rules_price_exit(&l, 95.01), PM_EXIT_NONE);
    assert_int_equal(pm_rules_price_exit(&l, 95), PM_EXIT_STOP_LOSS);
    assert_int_equal(pm_rules_price_exit(&l, 80), PM_EXIT_STOP_LOSS);
    pm_pos s = pos(PM_SHORT, 100);
    s.stop_loss = 105;
    assert_int_equal(pm_rules_price_exit(&s, 104.99), PM_EXIT_NONE);
    assert_int_equal(pm_rules_price_exit(&s, 105), PM_EXIT_STOP_LOSS);
    assert_int_equal(pm_rules_price_exit(&s, 0), PM_EXIT_NONE); /* no price, no decision */
}

static void take_profit_long_and_short(void **st) {
    (void)st;
    pm_pos l = pos(PM_LONG, 100);
    l.take_profit = 110;
    assert_int_equal(pm_rules_price_exit(&l, 109.99), PM_EXIT_NONE);
    assert_int_equal(pm_rules_price_exit(&l, 110), PM_EXIT_TAKE_PROFIT);
    pm_pos s = pos(PM_SHORT, 100);
    s.take_profit = 90;
    assert_int_equal(pm_rules_price_exit(&s, 90.01), PM_EXIT_NONE);
    assert_int_equal(pm_rules_price_exit(&s, 89), PM_EXIT_TAKE_PROFIT);
}

static void trailing_percent_follows_high_water(void **st) {
    (void)st;
    pm_pos l = pos(PM_LONG, 100);
    l.trail_kind = PM_TRAIL_PERCENT;
    l.trail = 10;
    assert_float_equal(pm_rules_trail_level(&l), 90, 1e-9); /* from entry until a new high */
    assert_false(pm_rules_water(&l, 99));
    assert_true(pm_rules_water(&l, 120));
    assert_float_equal(l.water, 120, 0);
    assert_false(pm_rules_water(&l, 119)); /* a high-water mark never goes down */
    assert_float_equal(pm_rules_trail_level(&l), 108, 1e-9);
    assert_int_equal(pm_rules_price_exit(&l, 108.01), PM_EXIT_NONE);
    assert_int_equal(pm_rules_price_exit(&l, 108), PM_EXIT_TRAILING_STOP);
}

static void trailing_absolute_short_low_water(void **st) {
    (void)st;
    pm_pos s = pos(PM_SHORT, 100);
    s.trail_kind = PM_TRAIL_ABSOLUTE;
    s.trail = 2;
    assert_true(pm_rules_water(&s, 90));
    assert_false(pm_rules_water(&s, 91));
    assert_float_equal(s.water, 90, 0);
    assert_int_equal(pm_rules_price_exit(&s, 91.99), PM_EXIT_NONE);
    assert_int_equal(pm_rules_price_exit(&s, 92), PM_EXIT_TRAILING_STOP);
}

static void max_holding_with_fake_clock(void **st) {
    (void)st;
    pm_pos p = pos(PM_LONG, 100);
    p.opened_at_ns = (int64_t)(1000 * S);
    assert_int_equal(pm_rules_deadline(&p), 0); /* no limit */
    p.max_hold_ms = 60000;
    assert_int_equal(pm_rules_deadline(&p), 1060 * S);
}

static void underlying_stop_by_side(void **st) {
    (void)st;
    pm_pos l = pos(PM_LONG, 100);
    l.usym = 3;
    l.underlying_stop = 4000;
    assert_false(pm_rules_underlying_hit(&l, 4000.5));
    assert_true(pm_rules_underlying_hit(&l, 4000));
    pm_pos s = pos(PM_SHORT, 100);
    s.usym = 3;
    s.underlying_stop = 4000;
    assert_false(pm_rules_underlying_hit(&s, 3999));
    assert_true(pm_rules_underlying_hit(&s, 4001));
}

/* Prices strictly inside the band must never change anything; at its edges
 * something must. */
static void band_matches_rules(void **st) {
    (void)st;
    pm_pos l = pos(PM_LONG, 100);
    l.stop_loss = 95;
    l.take_profit = 110;
    l.trail_kind = PM_TRAIL_PERCENT;
    l.trail = 3;
    double lo, hi;
    pm_rules_band(&l, &lo, &hi);
    assert_float_equal(lo, 97, 1e-9); /* the trailing level is above the stop */
    assert_true(hi > 100 && hi < 100.0001); /* just above the water mark */
    for (double p = lo + 0.01; p < hi; p += 0.01) {
        pm_pos c = l;
        assert_false(pm_rules_water(&c, p));
        assert_int_equal(pm_rules_price_exit(&c, p), PM_EXIT_NONE);
    }
    pm_pos c = l;
    assert_int_equal(pm_rules_price_exit(&c, lo), PM_EXIT_TRAILING_STOP);
    assert_true(pm_rules_water(&c, hi));
    pm_pos n = pos(PM_SHORT, 50);
    pm_rules_band(&n, &lo, &hi);
    assert_true(isinf(lo) && isinf(hi)); /* no rule: no price matters */
}

static pm_row good_row(void) {
    pm_row r;
    memset(&r, 0, sizeof r);
    r.id = 7;
    strcpy(r.account, "acct");
    strcpy(r.symbol, "AAPL");
    r.side = PM_LONG;
    r.quantity = 10;
    r.entry = 100;
    r.stop_loss = 95;
    r.take_profit = 110;
    return r;
}

static void validation_rejects_nonsense_with_reason(void **st) {
    (void)st;
    char why[PM_WHY_MAX + 1];
    pm_row r = good_row();
    assert_int_equal(pm_row_validate(&r, why, sizeof why), 0);
    r.quantity = -5;
    assert_int_equal(pm_row_validate(&r, why, sizeof why), WD_EINVAL);
    assert_non_null(strstr(why, "quantity -5"));
    r = good_row();
    r.stop_loss = 105;
    assert_int_equal(pm_row_validate(&r, why, sizeof why), WD_EINVAL);
    assert_non_null(strstr(why, "stop_loss 105 at or above entry_price 100 for a long"));
    r = good_row();
    r.side = PM_SHORT;
    r.stop_loss = 105;
    r.take_profit = 110;
    assert_int_equal(pm_row_validate(&r, why, sizeof why), WD_EINVAL);
    assert_non_null(strstr(why, "take_profit"));
    r = good_row();
    r.trail_kind = PM_TRAIL_PERCENT;
    r.trail = 150;
    assert_int_equal(pm_row_validate(&r, why, sizeof why), WD_EINVAL);
    r = good_row();
    r.underlying_stop = 10;
    assert_int_equal(pm_row_validate(&r, why, sizeof why), WD_EINVAL);
    r = good_row();
    strcpy(r.symbol, "BAD SYMBOL");
    assert_int_equal(pm_row_validate(&r, why, sizeof why), WD_EINVAL);
}

static void row_parse_from_text(void **st) {
    (void)st;
    char why[PM_WHY_MAX + 1];
    pm_row r;
    const char *ok[PM_ROW_NCOLS] = {"5", "a", "MSFT", "short", "3", "200", "210", NULL,
                                    "percent", "2.5", "190", "60000", NULL, NULL,
                                    "1700000000000000", "closing", "kill_switch"};
    assert_int_equal(pm_row_parse(ok, &r, why, sizeof why), 0);
    assert_int_equal(r.side, PM_SHORT);
    assert_true(r.closing);
    assert_int_equal(r.reason, PM_EXIT_KILL_SWITCH);
    assert_int_equal(r.max_hold_ms, 60000);
    assert_int_equal(r.opened_at_ns, 1700000000000000000LL);
    const char *bad[PM_ROW_NCOLS] = {"6", "a", "MSFT", "sideways", "3", "200", NULL, NULL,
                                     NULL, NULL, NULL, NULL, NULL, NULL, "0", "open", NULL};
    assert_int_equal(pm_row_parse(bad, &r, why, sizeof why), WD_EINVAL);
    assert_non_null(strstr(why, "side"));
    bad[3] = "long";
    bad[4] = "12abc";
    assert_int_equal(pm_row_parse(bad, &r, why, sizeof why), WD_EINVAL);
    assert_non_null(strstr(why, "quantity"));
}

static void client_order_id_is_derived_from_the_position(void **st) {
    (void)st;
    char a[PM_COID_MAX + 1], b[PM_COID_MAX + 1], small[4];
    assert_int_equal(pm_client_order_id(42, a, sizeof a), 0);
    assert_int_equal(pm_client_order_id(42, b, sizeof b), 0);
    assert_string_equal(a, "wd-pm-42");
    assert_string_equal(a, b); /* the same id on every retry and restart */
    assert_int_equal(pm_client_order_id(43, b, sizeof b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(pm_client_order_id(42, small, sizeof small), WD_ETOOBIG);
}

static void mark_price_and_reason_names(void **st) {
    (void)st;
    assert_float_equal(pm_mark_price(99, 101), 100, 0);
    assert_float_equal(pm_mark_price(99, 0), 99, 0);
    assert_float_equal(pm_mark_price(0, 0), 0, 0);
    for (int r = 1; r < PM_EXIT_COUNT; r++)
        assert_int_equal(pm_exit_reason_parse(pm_exit_reason_name((pm_exit_reason)r)), r);
    assert_int_equal(pm_exit_reason_parse("bogus"), PM_EXIT_NONE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stop_loss_long_and_short),
        cmocka_unit_test(take_profit_long_and_short),
        cmocka_unit_test(trailing_percent_follows_high_water),
        cmocka_unit_test(trailing_absolute_short_low_water),
        cmocka_unit_test(max_holding_with_fake_clock),
        cmocka_unit_test(underlying_stop_by_side),
        cmocka_unit_test(band_matches_rules),
        cmocka_unit_test(validation_rejects_nonsense_with_reason),
        cmocka_unit_test(row_parse_from_text),
        cmocka_unit_test(client_order_id_is_derived_from_the_position),
        cmocka_unit_test(mark_price_and_reason_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
