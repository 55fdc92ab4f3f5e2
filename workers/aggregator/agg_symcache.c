/* The symbol list's TTL cache. Loading is synchronous: the list comes from
 * the config file (a few KiB on a local disk), read at most once per TTL or
 * invalidation; the hot path only compares a timestamp. */
#include "agg.h"
#include "log.h"
#include "wd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int agg_symcache_init(agg_symcache *c, uint64_t ttl_ns, bool bypass, agg_symbols_load_fn load,
                      agg_symbols_apply_fn apply, void *arg) {
    memset(c, 0, sizeof *c);
    c->names = calloc(AGG_SYMBOLS_MAX, sizeof *c->names);
    if (c->names == NULL)
        return WD_ENOMEM;
    c->ttl_ns = ttl_ns;
    c->bypass = bypass;
    c->load = load;
    c->apply = apply;
    c->arg = arg;
    return 0;
}

void agg_symcache_free(agg_symcache *c) {
    free(c->names);
    c->names = NULL;
}

int agg_symcache_check(agg_symcache *c, uint64_t now_mono_ns) {
    if (c->valid && !c->bypass && now_mono_ns - c->loaded_mono_ns < c->ttl_ns) {
        c->hits++;
        return 0;
    }
    c->misses++;
    size_t n = 0;
    char err[sizeof c->last_error];
    err[0] = '\0';
    int rc = c->load(c->arg, c->names, AGG_SYMBOLS_MAX, &n, err, sizeof err);
    /* Failed or not, the next attempt waits for the TTL: a broken config
     * must not be re-read on every tick. The previous list stays. */
    c->loaded_mono_ns = now_mono_ns;
    c->valid = true;
    if (rc != 0) {
        c->load_errors++;
        if (strcmp(err, c->last_error) != 0)
            wd_warn("symbols: reload failed, keeping the previous %zu symbols: %s", c->n, err);
        snprintf(c->last_error, sizeof c->last_error, "%s", err);
        return rc;
    }
    c->last_error[0] = '\0';
    c->n = n;
    c->loads++;
    if (c->apply != NULL)
        c->apply(c->arg, c->names, n);
    return 1;
}

void agg_symcache_invalidate(agg_symcache *c) {
    c->valid = false;
    c->invalidations++;
}

double agg_symcache_age_s(const agg_symcache *c, uint64_t now_mono_ns) {
    if (c->loads == 0 && c->load_errors == 0)
        return 0;
    return (double)(now_mono_ns - c->loaded_mono_ns) / 1e9;
}
