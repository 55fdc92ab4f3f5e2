/* Circuit breaker: CLOSED -> OPEN after failure_threshold failures within
 * window (consecutive failures when window is 0); OPEN for a cooldown that
 * grows by `growth` on each re-open (with jitter, capped at open_max); then
 * HALF_OPEN admits up to half_open_max trial calls: a success closes it, a
 * failure re-opens it. FORCED_OPEN and DISABLED are set by hand.
 *
 * All times are monotonic nanoseconds passed in by the caller, so tests drive
 * a fake clock. Results carry the generation they started in; results from
 * an earlier generation are ignored, so a slow call that began before a
 * transition cannot flip the new state. */
#ifndef WD_BREAKER_H
#define WD_BREAKER_H

#include "backoff.h"
#include <stdbool.h>
#include <stdint.h>

#define BRK_NAME_MAX 63
#define BRK_REASON_MAX 255
#define BRK_HISTORY 16

typedef enum {
    BRK_CLOSED = 0,
    BRK_OPEN,
    BRK_HALF_OPEN,
    BRK_FORCED_OPEN,
    BRK_DISABLED
} brk_state;

typedef struct {
    uint32_t failure_threshold; /* failures that open it; >= 1 */
    uint64_t window_ns;         /* 0: consecutive failures */
    uint64_t open_ns;           /* first cooldown */
    uint64_t open_max_ns;       /* cap of the growing cooldown */
    double growth;              /* cooldown multiplier per re-open; >= 1 */
    double jitter;              /* +- fraction of the cooldown, 0..0.5 */
    uint32_t half_open_max;     /* trial calls admitted while half-open */
} brk_config;

typedef struct {
    uint64_t at_ns;
    brk_state from, to;
    char reason[BRK_REASON_MAX + 1];
} brk_transition;

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
    uint32_t half_open_inflight;
    uint64_t total_successes, total_failures, total_rejected, total_opens;
    wd_rng rng; /* jitter of the cooldown */
    brk_transition history[BRK_HISTORY]; /* ring, newest at history_len-1 mod */
    uint32_t history_len;
    brk_transition_cb on_transition;
    void *cb_arg;
};

/* The seed's defaults: 5 consecutive failures, 60 s open (growing x2 with
 * 10 % jitter up to 10 min), 3 half-open trial calls. */
void brk_config_defaults(brk_config *c);

void brk_init(brk_breaker *b, const char *name, const brk_config *cfg, uint64_t seed);
void brk_set_callback(brk_breaker *b, brk_transition_cb cb, void *arg);

/* Asks to make a call at now. Returns 0 and the generation to report with,
 * or WD_EOPEN (rejected). Moves OPEN -> HALF_OPEN once the cooldown is over. */
int brk_allow(brk_breaker *b, uint64_t now_ns, uint64_t *gen);
void brk_record_success(brk_breaker *b, uint64_t gen, uint64_t now_ns);
void brk_record_failure(brk_breaker *b, uint64_t gen, uint64_t now_ns, const char *reason);
/* The one call clients use: records how a call admitted with gen ended
 * after running for duration_ns (counted toward the slow-call rate). */
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

#endif
