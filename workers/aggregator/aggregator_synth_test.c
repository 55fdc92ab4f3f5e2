/* The synthetic source's determinism, and the symbol cache (TTL, bypass,
 * invalidation, failed reloads) on a fake clock with a real config file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agg.h"
#include "agg_conf.h"
#include "wd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEC 1000000000ULL

static const agg_symname SYMS[] = {"AAPL", "MSFT", "IBM"};
static const agg_symname VENUES[] = {"A", "B"};
static const agg_symname VENUES4[] = {"XNAS", "XNYS", "BATS", "ARCA"};

/* The demo's shape (8 symbols would be the same per symbol): 4 venues.
 * Across venues the best bid should rarely be above the best ask; the old
 * walk crossed most of the time, which made the demo's quotes look broken. */
static void consolidated_book_rarely_crossed(void **state) {
    (void)state;
    agg_synth *s;
    double bid[3][4] = {{0}}, ask[3][4] = {{0}};
    int crossed = 0, books = 0;
    assert_int_equal(agg_synth_new(42, SYMS, 3, VENUES4, 4, 0, &s), 0);
    for (int i = 0; i < 100000; i++) {
        agg_tick t;
        agg_synth_next(s, (uint64_t)i, &t);
        int sym = -1, ven = -1;
        for (int k = 0; k < 3; k++)
            if (strcmp(t.symbol, SYMS[k]) == 0)
                sym = k;
        for (int k = 0; k < 4; k++)
            if (strcmp(t.venue, VENUES4[k]) == 0)
                ven = k;
        assert_true(sym >= 0 && ven >= 0);
        assert_true(t.bid < t.ask);
        bid[sym][ven] = t.bid;
        ask[sym][ven] = t.ask;
        double best_bid = 0, best_ask = 0;
        bool full = true;
        for (int k = 0; k < 4; k++) {
            full &= ask[sym][k] > 0;
            if (bid[sym][k] > best_bid)
                best_bid = bid[sym][k];
            if (best_ask == 0 || (ask[sym][k] > 0 && ask[sym][k] < best_ask))
                best_ask = ask[sym][k];
        }
        if (!full)
            continue;
        books++;
        crossed += best_bid > best_ask;
    }
    agg_synth_free(s);
    print_message("crossed %d of %d consolidated books\n", crossed, books);
    assert_true(books > 90000);
    assert_true(crossed * 10 < books); /* under 10 % */
}

static void same_seed_same_ticks(void **state) {
    (void)state;
    agg_synth *a, *b, *c;
    assert_int_equal(agg_synth_new(7, SYMS, 3, VENUES, 2, 0.01, &a), 0);
    assert_int_equal(agg_synth_new(7, SYMS, 3, VENUES, 2, 0.01, &b), 0);
    assert_int_equal(agg_synth_new(8, SYMS, 3, VENUES, 2, 0.01, &c), 0);
    int differ = 0, trades = 0, seen[3] = {0};
    for (int i = 0; i < 5000; i++) {
        agg_tick ta, tb, tc;
        agg_synth_next(a, (uint64_t)i, &ta);
        agg_synth_next(b, (uint64_t)i, &tb);
        agg_synth_next(c, (uint64_t)i, &tc);
        assert_memory_equal(&ta, &tb, sizeof ta);
        differ += ta.bid != tc.bid;
        trades += ta.has_last;
        agg_drop_reason why;
        assert_int_equal(agg_tick_check(&ta, &why), 0);
        assert_true(ta.bid > 0 && ta.ask > ta.bid && ta.bid_size >= 1);
        for (int s = 0; s < 3; s++)
            seen[s] += strcmp(ta.symbol, SYMS[s]) == 0;
    }
    assert_true(differ > 4000); /* another seed, another walk */
    assert_true(trades > 500 && trades < 1500);
    for (int s = 0; s < 3; s++)
        assert_true(seen[s] > 1000);
    agg_synth_free(a);
    agg_synth_free(b);
    agg_synth_free(c);
    assert_int_equal(agg_synth_new(1, SYMS, 0, VENUES, 2, 0, &a), WD_EINVAL);
}

/* ---- symbol cache ---- */

typedef struct {
    char path[64];
    int applied;
    size_t last_n;
} cache_env;

static int load_file(void *arg, agg_symname *names, size_t cap, size_t *n, char *err,
                     size_t errlen) {
    cache_env *e = arg;
    agg_conf c;
    int rc = agg_conf_load(e->path, NULL, &c, err, errlen);
    if (rc == 0)
        rc = agg_parse_names(c.symbols, PROTO_MD_SYMBOL_MAX, names, cap, n, err, errlen);
    return rc;
}

static void apply(void *arg, const agg_symname *names, size_t n) {
    cache_env *e = arg;
    (void)names;
    e->applied++;
    e->last_n = n;
}

static void write_conf(const char *path, const char *symbols) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[aggregator]\nsymbols = %s\n", symbols);
    fclose(f);
}

static void cache_ttl_bypass_invalidate(void **state) {
    (void)state;
    cache_env e = {.path = "/tmp/aggcacheXXXXXX"};
    int fd = mkstemp(e.path);
    assert_true(fd >= 0);
    close(fd);
    write_conf(e.path, "AAPL,MSFT");
    agg_symcache c;
    assert_int_equal(agg_symcache_init(&c, 300 * SEC, false, load_file, apply, &e), 0);
    uint64_t now = 1000 * SEC; /* the fake clock */
    assert_int_equal(agg_symcache_check(&c, now), 1); /* first: a miss, loaded */
    assert_int_equal(c.n, 2);
    assert_int_equal(e.applied, 1);
    write_conf(e.path, "AAPL,MSFT,IBM");
    /* Within the TTL the file is not read again. */
    assert_int_equal(agg_symcache_check(&c, now + 299 * SEC), 0);
    assert_int_equal(c.n, 2);
    assert_true(agg_symcache_age_s(&c, now + 299 * SEC) == 299.0);
    /* Past it, it is. */
    assert_int_equal(agg_symcache_check(&c, now + 300 * SEC), 1);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.hits, 1);
    assert_int_equal(c.misses, 2);
    /* Invalidation forces a read at the next lookup, TTL or not. */
    write_conf(e.path, "AAPL");
    now += 301 * SEC;
    assert_int_equal(agg_symcache_check(&c, now), 0);
    agg_symcache_invalidate(&c);
    assert_int_equal(agg_symcache_check(&c, now), 1);
    assert_int_equal(e.last_n, 1);
    /* A broken file keeps the previous list, and is not re-read per lookup. */
    write_conf(e.path, "AAPL,$$$");
    agg_symcache_invalidate(&c);
    assert_int_equal(agg_symcache_check(&c, now), WD_EINVAL);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.load_errors, 1);
    assert_non_null(strstr(c.last_error, "$$$"));
    assert_int_equal(agg_symcache_check(&c, now + SEC), 0);
    /* Bypass: every lookup reads the file. */
    write_conf(e.path, "X,Y");
    c.bypass = true;
    assert_int_equal(agg_symcache_check(&c, now + SEC), 1);
    assert_int_equal(agg_symcache_check(&c, now + SEC), 1);
    assert_int_equal(c.n, 2);
    agg_symcache_free(&c);
    unlink(e.path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_seed_same_ticks),
        cmocka_unit_test(consolidated_book_rarely_crossed),
        cmocka_unit_test(cache_ttl_bypass_invalidate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
