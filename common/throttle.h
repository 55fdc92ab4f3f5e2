/* Adaptive pacing of calls to a rate-limited API: AIMD on a token bucket.
 *
 * The bucket is kept as a GCRA "theoretical arrival time" in integer
 * nanoseconds, so pacing never drifts from rounding and a refusal always
 * names a wait of at least 1 ns. The rate starts at rate_max_per_s; an error
 * halves it and a slow cycle multiplies it by 0.75 (never below
 * rate_min_per_s); each clean_interval_ns without errors or slowdowns, a
 * success raises it by increase_step_per_s (up to rate_max_per_s). A
 * Retry-After pauses every call until it ends; when the pause ends the bucket
 * is empty but for one call, so the waiting callers do not stampede.
 *
 * All times are monotonic nanoseconds passed in by the caller, so tests drive
 * a fake clock. No function here allocates. */
#ifndef WD_THROTTLE_H
#define WD_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

/* Bounds of the config, checked by throttle_init. */
#define THROTTLE_RATE_MAX 1000000.0 /* calls per second */
#define THROTTLE_RATE_MIN 0.001     /* calls per second */
#define THROTTLE_BURST_MAX 1000000u

typedef struct {
    double rate_max_per_s;     /* (0 < min <= max <= THROTTLE_RATE_MAX) */
    double rate_min_per_s;     /* >= THROTTLE_RATE_MIN */
    double increase_step_per_s; /* >= 0; 0 means the rate never recovers */
    uint64_t clean_interval_ns; /* > 0 */
    uint32_t burst;             /* calls allowed back to back, 1..BURST_MAX */
} throttle_config;

typedef struct {
    double rate_per_s;
    uint64_t paused_until_ns; /* 0 if never paused */
    uint64_t acquired;        /* acquire returned 0 */
    uint64_t delayed;         /* acquire returned WD_EBUSY */
    uint64_t errors;          /* on_error calls */
    uint64_t rate_limited;    /* on_error calls with rate_limited */
    uint64_t pauses;          /* Retry-After pauses started or extended */
    uint64_t halvings;        /* rate halvings (errors during a pause skip) */
    uint64_t slowdowns;       /* cycle overruns */
    uint64_t increases;       /* additive increases */
} throttle_stats;

typedef struct {
    throttle_config cfg;
    double rate;             /* current calls per second */
    uint64_t interval_ns;    /* 1e9 / rate, rounded */
    uint64_t tat_ns;         /* theoretical arrival time of the next call */
    uint64_t clean_since_ns; /* last error, slowdown or increase */
    uint64_t paused_until_ns;
    throttle_stats st;
} throttle;

/* Returns 0, or WD_EINVAL for a config out of bounds (NaN included); then t
 * is untouched. */
int throttle_init(throttle *t, const throttle_config *cfg, uint64_t now_ns);
/* 0: go now (one token taken). WD_EBUSY: *wait_ns (> 0) is how long until a
 * token is free or the pause ends, whichever is later; nothing is taken.
 * wait_ns may be NULL. */
int throttle_acquire(throttle *t, uint64_t now_ns, uint64_t *wait_ns);
void throttle_on_success(throttle *t, uint64_t now_ns);
/* Halves the rate (not below the minimum), except while a Retry-After pause
 * is running: errors then come from calls made before it and were already
 * answered. A non-zero retry_after_ms pauses all calls until
 * now + retry_after_ms, extending but never shortening a running pause. */
void throttle_on_error(throttle *t, uint64_t now_ns, bool rate_limited, uint64_t retry_after_ms);
/* The caller's cycle ran over its budget: rate *= 0.75 (not below minimum). */
void throttle_on_cycle_overrun(throttle *t, uint64_t now_ns);
void throttle_stats_get(const throttle *t, throttle_stats *out);

#endif
