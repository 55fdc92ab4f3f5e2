/* Backoff delays. Full jitter: rand(0, min(cap, base * 2^attempt)), which
 * spreads restarts of many failing processes instead of synchronising them. */
#ifndef WD_BACKOFF_H
#define WD_BACKOFF_H
#include <stdint.h>

/* Deterministic xorshift state, seeded by the caller (tests fix the seed). */
typedef struct {
    uint64_t s;
} wd_rng;

void wd_rng_seed(wd_rng *r, uint64_t seed);
uint64_t wd_rng_next(wd_rng *r);
/* Uniform in [0, n]; n == 0 gives 0. */
uint64_t wd_rng_upto(wd_rng *r, uint64_t n);

/* The ceiling min(cap, base * 2^attempt), without overflow. */
uint64_t wd_backoff_ceiling(uint64_t base, uint64_t cap, uint32_t attempt);
uint64_t wd_backoff_full_jitter(wd_rng *r, uint64_t base, uint64_t cap, uint32_t attempt);

#endif
