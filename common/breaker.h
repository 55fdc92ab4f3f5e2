/* Circuit breaker: CLOSED -> OPEN on any of three trips,
 *   - failure_threshold failures in a row (window_ns == 0), or within
 *     window_ns of the first of them (window_ns > 0);
 *   - a failure rate >= failure_rate_pct over the last window_calls calls,
 *     once min_calls calls are in that window;
 *   - a slow-call rate >= slow_call_rate_pct over the same window and
 *     min_calls, a call being slow when it ran longer than slow_call_ns.
 * OPEN lasts a cooldown that grows by `growth` on each re-open (with jitter,
 * capped at open_max; back to open_ns once closed); then HALF_OPEN admits up
 * to half_open_max trial calls: a success closes it, a failure (or, when the
 * slow-call trip is on, a slow success) re-opens it, and so does staying
 * half-open longer than half_open_max_ns. FORCED_OPEN and DISABLED are set by
 * hand; DISABLED admits everything and never trips.
 *
 * All times are monotonic nanoseconds passed in by the caller, so tests drive
 * a fake clock. Results carry the generation they started in; results from
 * an earlier generation are ignored, so a slow call that began before a
 * transition cannot flip the new state. The count window holds only calls
 * made while CLOSED (or DISABLED); it is emptied when the breaker closes and
 * kept, frozen, while it is open, so stats show the rate that tripped it.
 *
 * Not thread-safe: a breaker belongs to one loop thread. */
#ifndef WD_BREAKER_H
#define WD_BREAKER_H

#include "backoff.h"
#include <stdbool.h>
#include <stdint.h>

#define BRK_NAME_MAX 63
#define BRK_REASON_MAX 255
#define BRK_HISTORY 16
#define BRK_WINDOW_MAX 256 /* longest count window, in calls */
#define BRK_WINDOW_WORDS (BRK_WINDOW_MAX / 64)
#define BRK_JITTER_MAX 0.5

typedef enum {
    BRK_CLOSED = 0,
    BRK_OPEN,
    BRK_HALF_OPEN,
    BRK_FORCED_OPEN,
    BRK_DISABLED
} brk_state;

/* A zero in any field after half_open_max turns that feature off, so a
 * designated initializer that does not name them keeps the older meaning. */
typedef struct {
    /* Failures that open it. 0 turns this trip off when a rate trip is on;
     * with no rate trip brk_init takes 0 as 1 (a breaker must trip somehow). */
    uint32_t failure_threshold;
    uint64_t window_ns;     /* 0: consecutive failures */
    uint64_t open_ns;       /* first cooldown */
    uint64_t open_max_ns;   /* cap of the growing cooldown, jitter included */
    double growth;          /* cooldown multiplier per re-open; >= 1 */
    double jitter;          /* +- fraction of the cooldown, 0..BRK_JITTER_MAX */
    uint32_t half_open_max; /* trial calls admitted at once while half-open */
    /* Count window: the outcomes of the last window_calls calls (at most
     * BRK_WINDOW_MAX); 0 keeps no window, so both rate trips are off. */
    uint32_t window_calls;
    uint32_t min_calls;         /* calls in the window before a rate counts; 0: window_calls */
    double failure_rate_pct;    /* percent, 0..100; 0: off */
    uint64_t slow_call_ns;      /* a call running longer is slow; 0: none is */
    double slow_call_rate_pct;  /* percent, 0..100; 0: off (slow calls are still counted) */
    uint64_t half_open_max_ns;  /* longest stay in HALF_OPEN; 0: unbounded */
    bool critical;              /* readiness depends on this breaker being closed */
} brk_config;

typedef struct {
    uint64_t at_ns;
    brk_state from, to;
    char reason[BRK_REASON_MAX + 1];
} brk_transition;

/* A snapshot for status output, metrics and the health server. */
typedef struct {
    brk_state state;
    bool critical;
    uint64_t successes, failures, rejected, slow; /* since brk_init */
    uint32_t window_size;     /* cfg.window_calls */
    uint32_t window_calls;    /* calls now in the window */
    uint32_t window_failures; /* ... of which failed */
    uint32_t window_slow;     /* ... of which were slow */
    double failure_rate_pct;  /* window_failures / window_calls, 0 when empty */
    double slow_rate_pct;
    uint32_t consecutive_failures; /* the run (or time window) counting to failure_threshold */
    uint32_t half_open_inflight;
    uint64_t retry_in_ns; /* until an OPEN breaker admits a trial call */
    uint64_t generation;
    uint64_t opens; /* times opened since brk_init */
} brk_stats;

typedef struct brk_breaker brk_breaker;
typedef void (*brk_transition_cb)(void *arg, brk_breaker *b, const brk_transition *t);

/* One breaker's whole state; embedded by its owner, no heap. */
struct brk_breaker {
    char name[BRK_NAME_MAX + 1];
    brk_config cfg;
    brk_state state;
    uint64_t generation;
    uint32_t failures;          /* in the current window / run */
    uint64_t window_start_ns;
    uint32_t opens;             /* re-opens since last close: drives growth */
    uint64_t open_until_ns;
    uint64_t half_open_since_ns;
    uint32_t half_open_inflight;
    uint64_t total_successes, total_failures, total_rejected, total_opens, total_slow;
    /* Count window: bit i of win_fail/win_slow is the outcome of slot i; the
     * ring's next slot is win_pos, and win_len slots are in use. */
    uint64_t win_fail[BRK_WINDOW_WORDS], win_slow[BRK_WINDOW_WORDS];
    uint32_t win_pos, win_len, win_fails, win_slows;
    wd_rng rng; /* jitter of the cooldown */
    brk_transition history[BRK_HISTORY]; /* ring, newest at history_len-1 mod */
    uint32_t history_len;
    brk_transition_cb on_transition;
    void *cb_arg;
};

/* The seed's defaults: 5 consecutive failures, 60 s open (growing x2 with
 * 10 % jitter up to 10 min), 3 half-open trial calls; a window of the last
 * 20 calls (judged from 10) is kept for stats, with both rate trips off. */
void brk_config_defaults(brk_config *c);

/* Copies cfg, bringing out-of-range values into range (see brk_config). */
void brk_init(brk_breaker *b, const char *name, const brk_config *cfg, uint64_t seed);
/* cb runs on every transition, after the state changed; it must not free b. */
void brk_set_callback(brk_breaker *b, brk_transition_cb cb, void *arg);

/* Asks to make a call at now. Returns 0 and the generation to report with,
 * or WD_EOPEN (rejected). Moves OPEN -> HALF_OPEN once the cooldown is over,
 * and HALF_OPEN -> OPEN once half_open_max_ns has passed. */
int brk_allow(brk_breaker *b, uint64_t now_ns, uint64_t *gen);
void brk_record_success(brk_breaker *b, uint64_t gen, uint64_t now_ns);
void brk_record_failure(brk_breaker *b, uint64_t gen, uint64_t now_ns, const char *reason);
/* The one call clients use: records how a call admitted with gen ended
 * after running for duration_ns (counted toward the slow-call rate). reason
 * (may be NULL) goes into the history: it must hold no secret. */
void brk_record_call(brk_breaker *b, uint64_t gen, uint64_t now_ns, uint64_t duration_ns, bool ok,
                     const char *reason);
/* Gives back a half-open permit for a call that was cancelled before it ran. */
void brk_release(brk_breaker *b, uint64_t gen);

void brk_reset(brk_breaker *b, uint64_t now_ns, const char *reason);
void brk_force_open(brk_breaker *b, uint64_t now_ns, const char *reason);
void brk_disable(brk_breaker *b, uint64_t now_ns, const char *reason);

/* Nanoseconds until an OPEN breaker admits a trial call; 0 otherwise. */
uint64_t brk_retry_in(const brk_breaker *b, uint64_t now_ns);
const char *brk_state_name(brk_state s); /* "closed", "open", "half_open", ... */
/* The i-th most recent transition (0 = newest), or NULL. */
const brk_transition *brk_history_at(const brk_breaker *b, uint32_t i);
/* Fills out with b's counts and rates as of now_ns. */
void brk_stats_get(const brk_breaker *b, uint64_t now_ns, brk_stats *out);

#endif
