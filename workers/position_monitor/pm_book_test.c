/* The book: the symbol index fires exactly what a full scan fires, a quote
 * touches only what it can change, water marks are queued for persistence,
 * the kill switch respects its scope, max holding uses the caller's clock,
 * and heaps stay bounded under a trending price. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "backoff.h"
#include "pm.h"
#include "wd_error.h"

#define S 1000000000ULL
#define MAXF 4096

typedef struct {
    int n;
    int64_t ids[MAXF];
    int reasons[MAXF];
    pm_book *b;
} fired;

static void on_fire(void *arg, uint32_t pos, pm_exit_reason reason, double price) {
    fired *f = arg;
    (void)price;
    if (f->n < MAXF) {
        f->ids[f->n] = f->b->pos[pos].id;
        f->reasons[f->n++] = reason;
    }
}

static pm_row row(int64_t id, const char *acct, const char *sym, pm_side side, double entry) {
    pm_row r;
    memset(&r, 0, sizeof r);
    r.id = id;
    snprintf(r.account, sizeof r.account, "%s", acct);
    snprintf(r.symbol, sizeof r.symbol, "%s", sym);
    r.side = side;
    r.quantity = 1;
    r.entry = entry;
    return r;
}

static int64_t sym(pm_book *b, const char *name) { return pm_book_symbol_find(b, name); }

static void index_fires_only_what_a_price_reaches(void **st) {
    (void)st;
    pm_book b;
    fired f = {.b = &b};
    uint32_t i;
    pm_book_init(&b, 1000, on_fire, &f);
    for (int k = 0; k < 100; k++) {
        pm_row r = row(k + 1, "a", k % 2 ? "AAA" : "BBB", PM_LONG, 100);
        r.stop_loss = 90 + (k / 2) * 0.1; /* AAA stops 90.0 .. 94.9 */
        assert_int_equal(pm_book_upsert(&b, &r, &i), 0);
    }
    assert_int_equal(b.n_open, 100);
    pm_book_set_price(&b, (uint32_t)sym(&b, "AAA"), 95, 1);
    assert_int_equal(pm_book_eval_dirty(&b, 1), 0); /* above every stop: nothing popped */
    pm_book_set_price(&b, (uint32_t)sym(&b, "AAA"), 92.05, 2);
    size_t ev = pm_book_eval_dirty(&b, 2);
    /* AAA positions k odd with stop 90 + (k/2)*0.1 >= 92.05: k/2 >= 20.5 */
    assert_int_equal(f.n, 29);
    assert_int_equal(ev, 29); /* evaluated exactly the ones it fired */
    for (int k = 0; k < f.n; k++)
        assert_int_equal(f.reasons[k], PM_EXIT_STOP_LOSS);
    assert_int_equal(b.n_open, 71);
    assert_int_equal(b.n_exiting, 29);
    pm_book_free(&b);
}

/* A random book and random prices: the index and a full scan fire the same
 * exits and end with the same water marks. */
static void index_equals_full_scan(void **st) {
    (void)st;
    pm_book a, c;
    fired fa = {.b = &a}, fc = {.b = &c};
    wd_rng rng;
    uint32_t i;
    static const char *syms[] = {"S0", "S1", "S2", "S3", "S4"};
    wd_rng_seed(&rng, 7);
    pm_book_init(&a, 5000, on_fire, &fa);
    pm_book_init(&c, 5000, on_fire, &fc);
    for (int k = 0; k < 2000; k++) {
        pm_side side = (wd_rng_upto(&rng, 2 - 1)) ? PM_LONG : PM_SHORT;
        pm_row r = row(k + 1, "a", syms[(wd_rng_upto(&rng, 5 - 1))], side, 100);
        double d = 1 + (double)(wd_rng_upto(&rng, 1000 - 1)) / 100; /* 1..11 */
        if ((wd_rng_upto(&rng, 2 - 1)))
            r.stop_loss = side == PM_LONG ? 100 - d : 100 + d;
        if ((wd_rng_upto(&rng, 2 - 1)))
            r.take_profit = side == PM_LONG ? 100 + 2 * d : 100 - 2 * d;
        if ((wd_rng_upto(&rng, 2 - 1))) {
            r.trail_kind = PM_TRAIL_PERCENT;
            r.trail = d;
        }
        assert_int_equal(pm_book_upsert(&a, &r, &i), 0);
        assert_int_equal(pm_book_upsert(&c, &r, &i), 0);
    }
    for (int step = 0; step < 300; step++) {
        uint32_t s = (uint32_t)(wd_rng_upto(&rng, 5 - 1));
        double p = 85 + (double)(wd_rng_upto(&rng, 3000 - 1)) / 100;
        pm_book_set_price(&a, (uint32_t)sym(&a, syms[s]), p, (uint64_t)step);
        pm_book_eval_dirty(&a, (uint64_t)step);
        c.syms[sym(&c, syms[s])].price = p;
        c.n_dirty_syms = 0;
        /* the scan sees every symbol's last price, as the index did */
        pm_book_scan_all(&c, (uint64_t)step);
    }
    assert_true(fa.n > 100);
    assert_int_equal(fa.n, fc.n);
    assert_int_equal(a.n_open, c.n_open);
    for (uint32_t k = 0; k < a.n_pos; k++) {
        assert_int_equal(a.pos[k].state, c.pos[k].state);
        assert_int_equal(a.pos[k].reason, c.pos[k].reason);
        assert_float_equal(a.pos[k].water, c.pos[k].water, 0);
    }
    /* Stale entries are compacted away: heaps stay near the live count. */
    for (uint32_t s = 0; s < a.n_syms; s++)
        assert_true(a.syms[s].lo.n <= 2 * (size_t)a.syms[s].refs + 64);
    pm_book_free(&a);
    pm_book_free(&c);
}

static void trailing_water_marks_are_queued_once(void **st) {
    (void)st;
    pm_book b;
    fired f = {.b = &b};
    uint32_t i;
    pm_book_init(&b, 10, on_fire, &f);
    pm_row r = row(1, "a", "X", PM_LONG, 100);
    r.trail_kind = PM_TRAIL_ABSOLUTE;
    r.trail = 5;
    r.water = 104; /* persisted earlier */
    assert_int_equal(pm_book_upsert(&b, &r, &i), 0);
    uint32_t x = (uint32_t)sym(&b, "X");
    pm_book_set_price(&b, x, 103, 1);
    pm_book_eval_dirty(&b, 1);
    assert_int_equal(b.n_dirty_water, 0); /* below the persisted mark */
    for (double p = 105; p <= 110; p += 1) {
        pm_book_set_price(&b, x, p, 2);
        pm_book_eval_dirty(&b, 2);
    }
    assert_float_equal(b.pos[i].water, 110, 0);
    assert_int_equal(b.n_dirty_water, 1); /* one entry however often it moved */
    assert_true(b.pos[i].water_dirty);
    assert_int_equal(f.n, 0);
    /* An older water mark from the database never moves it back. */
    r.water = 106;
    assert_int_equal(pm_book_upsert(&b, &r, &i), 0);
    assert_float_equal(b.pos[i].water, 110, 0);
    pm_book_set_price(&b, x, 105, 3);
    pm_book_eval_dirty(&b, 3);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.reasons[0], PM_EXIT_TRAILING_STOP);
    pm_book_free(&b);
}

static void kill_switch_scope(void **st) {
    (void)st;
    pm_book b;
    fired f = {.b = &b};
    uint32_t i;
    pm_book_init(&b, 10, on_fire, &f);
    for (int k = 0; k < 6; k++) {
        pm_row r = row(k + 1, k < 2 ? "alice" : "bob", "X", PM_LONG, 100);
        assert_int_equal(pm_book_upsert(&b, &r, &i), 0);
    }
    assert_int_equal(pm_book_kill(&b, "nobody", 1), 0);
    assert_int_equal(pm_book_kill(&b, "alice", 1), 2);
    assert_int_equal(f.ids[0], 1);
    assert_int_equal(f.ids[1], 2);
    assert_int_equal(pm_book_kill(&b, "alice", 1), 0); /* already exiting: not twice */
    assert_int_equal(pm_book_kill(&b, NULL, 1), 4);
    for (int k = 0; k < f.n; k++)
        assert_int_equal(f.reasons[k], PM_EXIT_KILL_SWITCH);
    assert_int_equal(b.n_open, 0);
    pm_book_free(&b);
}

static void max_holding_uses_the_callers_clock(void **st) {
    (void)st;
    pm_book b;
    fired f = {.b = &b};
    uint32_t i;
    pm_book_init(&b, 10, on_fire, &f);
    pm_row r = row(1, "a", "X", PM_LONG, 100);
    r.opened_at_ns = (int64_t)(1000 * S);
    r.max_hold_ms = 30000;
    assert_int_equal(pm_book_upsert(&b, &r, &i), 0);
    pm_row r2 = row(2, "a", "X", PM_LONG, 100);
    r2.opened_at_ns = (int64_t)(1000 * S);
    r2.max_hold_ms = 60000;
    assert_int_equal(pm_book_upsert(&b, &r2, &i), 0);
    assert_int_equal(pm_book_eval_time(&b, 1029 * S, 1), 0);
    assert_int_equal(pm_book_eval_time(&b, 1030 * S, 1), 1);
    assert_int_equal(f.ids[0], 1);
    assert_int_equal(f.reasons[0], PM_EXIT_MAX_HOLDING);
    /* Extending the limit (an update of the row) moves the deadline. */
    r2.max_hold_ms = 120000;
    assert_int_equal(pm_book_upsert(&b, &r2, &i), 0);
    assert_int_equal(pm_book_eval_time(&b, 1061 * S, 1), 0);
    assert_int_equal(pm_book_eval_time(&b, 1120 * S, 1), 1);
    pm_book_free(&b);
}

static void underlying_stop_through_the_index(void **st) {
    (void)st;
    pm_book b;
    fired f = {.b = &b};
    uint32_t i;
    pm_book_init(&b, 10, on_fire, &f);
    pm_row r = row(1, "a", "OPT", PM_LONG, 5);
    strcpy(r.underlying, "IDX");
    r.underlying_stop = 4000;
    assert_int_equal(pm_book_upsert(&b, &r, &i), 0);
    pm_book_set_price(&b, (uint32_t)sym(&b, "OPT"), 1, 1); /* no stop on the option itself */
    pm_book_set_price(&b, (uint32_t)sym(&b, "IDX"), 4100, 1);
    pm_book_eval_dirty(&b, 1);
    assert_int_equal(f.n, 0);
    pm_book_set_price(&b, (uint32_t)sym(&b, "IDX"), 3999, 2);
    pm_book_eval_dirty(&b, 2);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.reasons[0], PM_EXIT_UNDERLYING_STOP);
    pm_book_free(&b);
}

static void closing_rows_remove_and_reuse(void **st) {
    (void)st;
    pm_book b;
    fired f = {.b = &b};
    uint32_t i, j;
    pm_book_init(&b, 2, on_fire, &f);
    pm_row r = row(1, "a", "X", PM_LONG, 100);
    r.stop_loss = 99;
    assert_int_equal(pm_book_upsert(&b, &r, &i), 0);
    pm_row c = row(2, "a", "X", PM_LONG, 100);
    c.closing = true;
    c.reason = PM_EXIT_STOP_LOSS;
    assert_int_equal(pm_book_upsert(&b, &c, &j), 0);
    assert_int_equal(b.pos[j].state, PM_ST_CLOSING);
    assert_true(b.pos[j].exec_get); /* reconcile before placing */
    pm_row full = row(3, "a", "X", PM_LONG, 100);
    assert_int_equal(pm_book_upsert(&b, &full, &j), WD_ETOOBIG);
    assert_int_equal(pm_book_remove(&b, 1), 0);
    assert_int_equal(pm_book_remove(&b, 1), WD_ENOTFOUND);
    assert_int_equal(pm_book_find(&b, 1), PM_NONE);
    /* The freed slot's old heap entry must not fire the new position. */
    assert_int_equal(pm_book_upsert(&b, &full, &j), 0);
    assert_int_equal(j, i);
    pm_book_set_price(&b, (uint32_t)sym(&b, "X"), 50, 1);
    pm_book_eval_dirty(&b, 1);
    assert_int_equal(f.n, 0);
    pm_book_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(index_fires_only_what_a_price_reaches),
        cmocka_unit_test(index_equals_full_scan),
        cmocka_unit_test(trailing_water_marks_are_queued_once),
        cmocka_unit_test(kill_switch_scope),
        cmocka_unit_test(max_holding_uses_the_callers_clock),
        cmocka_unit_test(underlying_stop_through_the_index),
        cmocka_unit_test(closing_rows_remove_and_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
