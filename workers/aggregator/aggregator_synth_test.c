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
        cmocka_unit_test(cache_ttl_bypass_invalidate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
