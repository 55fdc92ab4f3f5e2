#include "backoff.h"

void wd_rng_seed(wd_rng *r, uint64_t seed) { r->s = seed ? seed : 0x9E3779B97F4A7C15ULL; }

uint64_t wd_rng_next(wd_rng *r) {
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

uint64_t wd_rng_upto(wd_rng *r, uint64_t n) {
    if (n == 0)
        return 0;
    if (n == UINT64_MAX)
        return wd_rng_next(r);
    return wd_rng_next(r) % (n + 1);
}

uint64_t wd_backoff_ceiling(uint64_t base, uint64_t cap, uint32_t attempt) {
    uint64_t c = base;
    for (uint32_t i = 0; i < attempt && c < cap; i++)
        c = c > cap / 2 ? cap : c * 2;
    return c < cap ? c : cap;
}

uint64_t wd_backoff_full_jitter(wd_rng *r, uint64_t base, uint64_t cap, uint32_t attempt) {
    return wd_rng_upto(r, wd_backoff_ceiling(base, cap, attempt));
}
