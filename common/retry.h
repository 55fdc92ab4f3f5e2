/* Retry helpers: Retry-After parsing, error classification, decorrelated
 * jitter and a retry budget.
 *
 * Classification tells a caller whether to retry (TRANSIENT), give up on this
 * call (PERMANENT) or give up and raise an alarm (CRITICAL: retrying cannot
 * help and an operator must act, e.g. bad credentials).
 *
 * The retry budget is a token bucket fed by ordinary requests (ratio tokens
 * each) and by a small floor per second; a retry spends one whole token. While
 * a dependency is down every request fails, so without a budget each caller
 * would multiply the load by its retry count exactly when the dependency can
 * least take it. All times are monotonic nanoseconds passed in by the caller,
 * so tests drive a fake clock. No function here allocates. */
#ifndef WD_RETRY_H
#define WD_RETRY_H

#include "backoff.h"
#include <stdint.h>

/* Parses a Retry-After value: delta-seconds ("120") or an IMF-fixdate
 * ("Wed, 21 Oct 2015 07:28:00 GMT", RFC 9110 5.6.7), with optional spaces or
 * tabs around it. now_real_s is the wall clock in Unix seconds (dates are
 * wall-clock; the result is a delay to use against the monotonic clock).
 * Writes the delay in milliseconds clamped to max_ms; a date in the past gives
 * 0. Returns 0, or WD_EINVAL for NULL, empty or malformed input (then *out_ms
 * is untouched). The obsolete RFC 850 and asctime date forms are rejected. */
int wd_retry_after_parse(const char *value, uint64_t now_real_s, uint64_t max_ms,
                         uint64_t *out_ms);

typedef enum { WD_ERRCLASS_TRANSIENT, WD_ERRCLASS_PERMANENT, WD_ERRCLASS_CRITICAL } wd_errclass;

/* curl_code_or_0 is a CURLcode; any non-zero value means no usable response
 * and is transient, except the codes that say the request itself is wrong
 * (1 unsupported protocol, 3 malformed URL, 4 feature not built in), which no
 * retry can fix. With curl_code_or_0 == 0: 408, 429 and 5xx are transient,
 * everything else (other 4xx, and statuses that are not failures) permanent. */
wd_errclass wd_classify_http(long status, int curl_code_or_0);
/* 40001, 40P01, class 08 and 57P01..57P03 transient; class 28 critical;
 * everything else, NULL and malformed codes included, permanent. */
wd_errclass wd_classify_sqlstate(const char *sqlstate);
/* A Redis error reply whose first word is LOADING, BUSY, TRYAGAIN, MASTERDOWN
 * or READONLY is transient; anything else (BUSYGROUP and BUSYKEY included:
 * only the whole first word counts) and NULL are permanent. */
wd_errclass wd_classify_redis_reply(const char *error_text);
/* A lost or failed connection: always transient. */
wd_errclass wd_classify_redis_io(void);

/* Decorrelated jitter: min(cap, rand(base, prev * 3)), uniform over the closed
 * range. prev is the previous delay (pass base, or 0, for the first). When
 * prev * 3 < base the range collapses to base. Saturates instead of
 * overflowing. */
uint64_t wd_backoff_decorrelated(wd_rng *r, uint64_t base, uint64_t cap, uint64_t prev);

/* Tokens are counted in millionths so that deposits of 0.1 add up to exactly
 * one token (floating point would leave 0.9999...). */
#define WD_RETRY_BUDGET_UNIT 1000000ULL
/* The balance never exceeds this many seconds' worth of deposits. */
#define WD_RETRY_BUDGET_WINDOW_S 10ULL
/* Upper bounds for ratio and min_per_s, so the fixed-point sums cannot
 * overflow 64 bits. */
#define WD_RETRY_BUDGET_MAX_RATIO 1000.0
#define WD_RETRY_BUDGET_MAX_PER_S 1000.0

typedef struct {
    uint64_t ratio_u;    /* deposit per request, in units */
    uint64_t min_u;      /* floor deposit per second, in units */
    uint64_t balance_u;  /* current tokens, in units */
    uint64_t frac;       /* carried remainder of the floor refill (unit*ns/1e9) */
    uint64_t last_ns;    /* last refill time */
    uint64_t win_start;  /* start of the current request-count window */
    uint64_t win_cur;    /* requests in the current window */
    uint64_t win_prev;   /* requests in the previous window */
    uint64_t requests;   /* counters since init */
    uint64_t retries;
    uint64_t denied;
} wd_retry_budget;

/* ratio: retry tokens per request (0.1 = retries may add 10% to the load);
 * min_per_s: retries per second allowed even with no traffic. Both in
 * [0, 1000]; otherwise WD_EINVAL (NaN included) and b is untouched. The
 * bucket starts full. The cap is WINDOW_S seconds of the floor plus ratio
 * times the requests seen in the busier of the current and previous window,
 * and at least one token unless both ratio and min_per_s are 0 (then retries
 * are never allowed). */
int wd_retry_budget_init(wd_retry_budget *b, double ratio, double min_per_s, uint64_t now_ns);
/* Records one request (first attempts only, not retries). */
void wd_retry_budget_on_request(wd_retry_budget *b, uint64_t now_ns);
/* Spends one token for a retry: 0, or WD_EBUSY when the budget is exhausted
 * (then do not retry). A clock going backwards refills nothing. */
int wd_retry_budget_try_spend(wd_retry_budget *b, uint64_t now_ns);
/* Current balance in units (WD_RETRY_BUDGET_UNIT per retry). */
uint64_t wd_retry_budget_balance(const wd_retry_budget *b);

#endif
