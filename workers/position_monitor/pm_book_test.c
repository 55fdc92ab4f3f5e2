/* The book: the symbol index fires exactly what a full scan fires (also
 * with trailing stops in water-mark epochs, own bands, merges and updates),
 * a quote touches only what it can change (a new high touches no trailing
 * position), water marks are taken for persistence in batches, the kill
 * switch respects its scope, max holding uses the caller's clock, and heaps
 * stay bounded under a trending price through incremental compaction. */
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
        assert_float_equal(pm_book_water(&a, k), pm_book_water(&c, k), 0);
    }
    /* Stale entries are compacted away: heaps stay near the live count. */
    for (uint32_t s = 0; s < a.n_syms; s++)
        assert_true(a.syms[s].lo.n <= 2 * (size_t)a.syms[s].refs + 64);
    pm_book_free(&a);
    pm_book_free(&c);
}

/* Takes every pending water mark, in batches of at most max. */
static size_t take_all(pm_book *b, pm_water *out, size_t cap, size_t max) {
    size_t n = 0;
    for (int guard = 0; guard < 10000 && pm_book_water_pending(b) && n < cap; guard++)
        n += pm_book_water_take(b, out + n, cap - n < max ? cap - n : max);
    assert_false(pm_book_water_pending(b));
    return n;
}

static void trailing_water_marks_are_queued_once(void **st) {
    (void)st;
    pm_book b;
    fired f = {.b = &b};
    uint32_t i;
    pm_water w[8];
    pm_book_init(&b, 10, on_fire, &f);
    pm_row r = row(1, "a", "X", PM_LONG, 100);
    r.trail_kind = PM_TRAIL_ABSOLUTE;
    r.trail = 5;
    r.water = 104; /* persisted earlier */
    assert_int_equal(pm_book_upsert(&b, &r, &i), 0);
    uint32_t x = (uint32_t)sym(&b, "X");
    pm_book_set_price(&b, x, 103, 1);
    pm_book_eval_dirty(&b, 1);
    assert_false(pm_book_water_pending(&b)); /* below the persisted mark */
    assert_int_equal(pm_book_water_take(&b, w, 8), 0);
    for (double p = 105; p <= 110; p += 1) {
        pm_book_set_price(&b, x, p, 2);
        pm_book_eval_dirty(&b, 2);
    }
    assert_float_equal(pm_book_water(&b, i), 110, 0);
    /* one mark however often it moved, at its latest value */
    assert_int_equal(take_all(&b, w, 8, 8), 1);
    assert_int_equal(w[0].id, 1);
    assert_float_equal(w[0].water, 110, 0);
    assert_int_equal(pm_book_water_take(&b, w, 8), 0);
    /* a failed write: queued again, taken again though unchanged */
    pm_book_note_water(&b, i);
    assert_int_equal(take_all(&b, w, 8, 8), 1);
    assert_float_equal(w[0].water, 110, 0);
    assert_int_equal(f.n, 0);
    /* An older water mark from the database never moves it back. */
    r.water = 106;
    assert_int_equal(pm_book_upsert(&b, &r, &i), 0);
    assert_float_equal(pm_book_water(&b, i), 110, 0);
    pm_book_set_price(&b, x, 105, 3);
    pm_book_eval_dirty(&b, 3);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.reasons[0], PM_EXIT_TRAILING_STOP);
    pm_book_free(&b);
}

/* 2000 trailing positions on one symbol, loaded with the same mark: rising
 * prices evaluate none of them (one epoch moves), a fall evaluates exactly
 * those it fires, and the marks are taken for persistence in bounded
 * batches at the epoch's high. */
static void new_high_touches_no_trailing_position(void **st) {
    (void)st;
    enum { N = 2000 };
    pm_book b;
    fired f = {.b = &b};
    uint32_t i;
    static pm_water w[N + 1];
    pm_book_init(&b, N, on_fire, &f);
    for (int k = 0; k < N; k++) {
        pm_row r = row(k + 1, "a", "X", k % 2 ? PM_LONG : PM_SHORT, 100);
        r.trail_kind = k % 4 < 2 ? PM_TRAIL_PERCENT : PM_TRAIL_ABSOLUTE;
        r.trail = 1 + (double)(k % 500) / 100; /* 1 .. 5.99 (% or absolute) */
        if (k % 2 == 0)
            r.trail += 10; /* shorts: beyond the rise below */
        assert_int_equal(pm_book_upsert(&b, &r, &i), 0);
    }
    assert_int_equal(b.epoch_joins, N); /* two epochs: longs and shorts */
    uint32_t x = (uint32_t)sym(&b, "X");
    for (int step = 1; step <= 50; step++) {
        pm_book_set_price(&b, x, 100 + step * 0.1, (uint64_t)step);
        assert_int_equal(pm_book_eval_dirty(&b, (uint64_t)step), 0);
    }
    assert_int_equal(b.evaluated, 0);
    assert_float_equal(pm_book_water(&b, 1), 105, 1e-9);  /* a long */
    assert_float_equal(pm_book_water(&b, 0), 100, 0);     /* a short: its low */
    /* Persistence: the longs' marks, 300 at a time, each once. */
    size_t n = 0;
    for (int guard = 0; guard < 100 && pm_book_water_pending(&b); guard++) {
        size_t got = pm_book_water_take(&b, w + n, 300);
        assert_true(got <= 300);
        n += got;
    }
    assert_int_equal(n, N / 2);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(w[k].id % 2, 0); /* ids of longs are even (k odd) */
        assert_float_equal(w[k].water, 105, 1e-9);
    }
    assert_int_equal(pm_book_water_take(&b, w, N), 0);
    /* A fall to 102: longs fire where trail >= 3 (3 % of 105 = 3.15,
     * absolute 3): only those are evaluated. */
    pm_book_set_price(&b, x, 102, 60);
    size_t ev = pm_book_eval_dirty(&b, 60);
    int expect = 0;
    for (int k = 1; k < N; k += 2) {
        double t = 1 + (double)(k % 500) / 100;
        double level = k % 4 < 2 ? 105 * (1 - t / 100) : 105 - t;
        expect += 102 <= level;
    }
    assert_true(expect > 100);
    assert_int_equal(f.n, expect);
    assert_int_equal(ev, expect);
    for (int k = 0; k < f.n; k++)
        assert_int_equal(f.reasons[k], PM_EXIT_TRAILING_STOP);
    pm_book_free(&b);
}

/* Epochs whose extremes meet merge; a position whose mark matches no epoch
 * and finds no free slot keeps a band of its own and still fires right. */
static void epochs_merge_and_overflow(void **st) {
    (void)st;
    pm_book b;
    fired f = {.b = &b};
    uint32_t i;
    pm_book_init(&b, 100, on_fire, &f);
    for (int k = 0; k < PM_EPOCHS_MAX + 2; k++) {
        pm_row r = row(k + 1, "a", "X", PM_LONG, 100);
        r.trail_kind = PM_TRAIL_ABSOLUTE;
        r.trail = 10;
        r.water = 101 + k; /* distinct marks: more than the slots */
        assert_int_equal(pm_book_upsert(&b, &r, &i), 0);
    }
    assert_int_equal(b.epoch_joins, PM_EPOCHS_MAX);
    assert_int_equal(b.pos[PM_EPOCHS_MAX].epoch, PM_EP_OWN);
    uint32_t x = (uint32_t)sym(&b, "X");
    pm_book_set_price(&b, x, 103.5, 1); /* moves the epochs at 101..103 */
    pm_book_eval_dirty(&b, 1);
    assert_int_equal(b.epoch_merges, 2); /* 101, 102, 103 meet at 103.5 */
    for (uint32_t k = 0; k < 3; k++)
        assert_float_equal(pm_book_water(&b, k), 103.5, 0);
    assert_float_equal(pm_book_water(&b, 3), 104, 0);
    assert_float_equal(pm_book_water(&b, 5), 106, 0);
    pm_book_set_price(&b, x, 107, 2);   /* everything meets; own bands move */
    pm_book_eval_dirty(&b, 2);
    for (uint32_t k = 0; k < PM_EPOCHS_MAX + 2; k++)
        assert_float_equal(pm_book_water(&b, k), 107, 0);
    pm_book_set_price(&b, x, 97.01, 3);
    pm_book_eval_dirty(&b, 3);
    assert_int_equal(f.n, 0);
    pm_book_set_price(&b, x, 97, 4);    /* 107 - 10 */
    pm_book_eval_dirty(&b, 4);
    assert_int_equal(f.n, PM_EPOCHS_MAX + 2);
    pm_book_free(&b);
}

/* Updates of the rows (NOTIFY) leave a stale entry behind each; the sweep
 * keeps each heap near its live size, a bounded slice per evaluation,
 * without a whole-heap pass. */
static void heaps_are_swept_incrementally(void **st) {
    (void)st;
    enum { N = 3000, ROUND = 500 };
    pm_book b;
    fired f = {.b = &b};
    uint32_t i;
    pm_book_init(&b, N, on_fire, &f);
    for (int k = 0; k < N; k++) {
        pm_row r = row(k + 1, "a", "X", PM_LONG, 100);
        r.stop_loss = 50;
        assert_int_equal(pm_book_upsert(&b, &r, &i), 0);
    }
    uint32_t x = (uint32_t)sym(&b, "X");
    pm_sym *s = &b.syms[x];
    size_t peak = 0;
    for (int round = 0; round < 60; round++) {
        for (int k = 0; k < ROUND; k++) {
            int id = (round * ROUND + k) % N + 1;
            pm_row r = row(id, "a", "X", PM_LONG, 100);
            r.stop_loss = 50 + (double)(round % 7); /* a changed stop loss */
            assert_int_equal(pm_book_upsert(&b, &r, &i), 0);
        }
        peak = s->lo.n > peak ? s->lo.n : peak;
        pm_book_set_price(&b, x, 100 + round * 0.01, (uint64_t)round);
        pm_book_eval_dirty(&b, (uint64_t)round);
        assert_true(s->lo.n <= 3 * (size_t)s->refs + 64);
    }
    assert_true(peak > 2 * (size_t)N); /* the sweep had work to do */
    assert_true(b.swept > 10000);
    assert_int_equal(b.full_compactions, 0);
    assert_int_equal(f.n, 0);
    /* and it removed only stale entries: every stop still fires */
    pm_book_set_price(&b, x, 49, 100);
    pm_book_eval_dirty(&b, 100);
    assert_int_equal(f.n, N);
    pm_book_free(&b);
}

/* Trailing-heavy random books with distinct persisted marks (epochs, own
 * bands, merges), absolute and percent trails, rows updated and exits
 * refused (reopen) mid-run, on trending and falling random walks: the index
 * and the full scan fire the same exits with the same reasons and end with
 * the same water marks. */
static void index_equals_full_scan_trailing(void **st) {
    (void)st;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        pm_book a, c;
        fired fa = {.b = &a}, fc = {.b = &c};
        wd_rng rng;
        uint32_t i;
        static const char *syms[] = {"S0", "S1", "S2"};
        double px[3] = {100, 100, 100};
        wd_rng_seed(&rng, seed);
        pm_book_init(&a, 3000, on_fire, &fa);
        pm_book_init(&c, 3000, on_fire, &fc);
        pm_row rows[1500];
        for (int k = 0; k < 1500; k++) {
            pm_side side = wd_rng_upto(&rng, 1) ? PM_LONG : PM_SHORT;
            pm_row r = row(k + 1, "a", syms[wd_rng_upto(&rng, 2)], side, 100);
            double d = 0.5 + (double)wd_rng_upto(&rng, 800) / 100;
            if (wd_rng_upto(&rng, 3) == 0)
                r.stop_loss = side == PM_LONG ? 100 - 2 * d : 100 + 2 * d;
            if (wd_rng_upto(&rng, 3) == 0)
                r.take_profit = side == PM_LONG ? 100 + 3 * d : 100 - 3 * d;
            r.trail_kind = wd_rng_upto(&rng, 1) ? PM_TRAIL_PERCENT : PM_TRAIL_ABSOLUTE;
            r.trail = d;
            if (wd_rng_upto(&rng, 1)) /* a persisted mark, one of a few */
                r.water = side == PM_LONG ? 100 + (double)wd_rng_upto(&rng, 6) * 0.25
                                          : 100 - (double)wd_rng_upto(&rng, 6) * 0.25;
            rows[k] = r;
            assert_int_equal(pm_book_upsert(&a, &r, &i), 0);
            assert_int_equal(pm_book_upsert(&c, &r, &i), 0);
        }
        double drift = seed % 2 ? 0.02 : -0.02;
        for (int step = 0; step < 600; step++) {
            uint32_t s = (uint32_t)wd_rng_upto(&rng, 2);
            double mv = ((double)wd_rng_upto(&rng, 200) - 100) / 100 * 0.6 + drift;
            if (step == 300)
                drift = -drift;
            px[s] = px[s] + mv > 1 ? px[s] + mv : 1;
            pm_book_set_price(&a, (uint32_t)sym(&a, syms[s]), px[s], (uint64_t)step);
            pm_book_eval_dirty(&a, (uint64_t)step);
            c.syms[sym(&c, syms[s])].price = px[s];
            pm_book_scan_all(&c, (uint64_t)step);
            if (step % 50 == 25) {
                /* A row updated (new stop loss, same water) in both books. */
                int k = (int)wd_rng_upto(&rng, 1499);
                uint32_t ia = pm_book_find(&a, rows[k].id), ic = pm_book_find(&c, rows[k].id);
                if (a.pos[ia].state == PM_ST_OPEN && c.pos[ic].state == PM_ST_OPEN) {
                    rows[k].stop_loss = 0;
                    rows[k].water = pm_book_water(&c, ic);
                    assert_int_equal(pm_book_upsert(&a, &rows[k], &i), 0);
                    assert_int_equal(pm_book_upsert(&c, &rows[k], &i), 0);
                }
            }
            if (step % 70 == 35 && fa.n > 0) {
                /* An exit refused: the position is watched again. */
                uint32_t ia = pm_book_find(&a, fa.ids[fa.n - 1]);
                uint32_t ic = pm_book_find(&c, fa.ids[fa.n - 1]);
                if (a.pos[ia].state == PM_ST_EXITING && c.pos[ic].state == PM_ST_EXITING) {
                    pm_book_reopen(&a, ia);
                    pm_book_reopen(&c, ic);
                }
            }
        }
        assert_true(fa.n > 100);
        assert_true(a.epoch_joins > 0);
        assert_int_equal(fa.n, fc.n);
        assert_int_equal(a.n_open, c.n_open);
        for (uint32_t k = 0; k < a.n_pos; k++) {
            assert_int_equal(a.pos[k].state, c.pos[k].state);
            assert_int_equal(a.pos[k].reason, c.pos[k].reason);
            assert_float_equal(pm_book_water(&a, k), pm_book_water(&c, k), 0);
        }
        /* Every open position whose mark moved is taken once, at its mark. */
        static pm_water w[3000];
        static bool seen[1501];
        memset(seen, 0, sizeof seen);
        size_t n = take_all(&a, w, 3000, 100);
        for (size_t k = 0; k < n; k++) {
            uint32_t ia = pm_book_find(&a, w[k].id);
            assert_int_equal(a.pos[ia].state, PM_ST_OPEN);
            assert_false(seen[w[k].id]);
            seen[w[k].id] = true;
            assert_float_equal(w[k].water, pm_book_water(&a, ia), 0);
        }
        for (uint32_t k = 0; k < a.n_pos; k++) {
            const pm_pos *p = &a.pos[k];
            double w0 = rows[p->id - 1].water > 0 ? rows[p->id - 1].water : p->entry;
            if (p->state == PM_ST_OPEN && pm_book_water(&a, k) != w0)
                assert_true(seen[p->id]);
        }
        pm_book_free(&a);
        pm_book_free(&c);
    }
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
        cmocka_unit_test(new_high_touches_no_trailing_position),
        cmocka_unit_test(epochs_merge_and_overflow),
        cmocka_unit_test(heaps_are_swept_incrementally),
        cmocka_unit_test(index_equals_full_scan_trailing),
        cmocka_unit_test(kill_switch_scope),
        cmocka_unit_test(max_holding_uses_the_callers_clock),
        cmocka_unit_test(underlying_stop_through_the_index),
        cmocka_unit_test(closing_rows_remove_and_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
