#include "breaker.h"
#include "text.h"
#include "wd_error.h"
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define NS_PER_MS UINT64_C(1000000)

static const char *const state_names[] = {"closed", "open", "half_open", "forced_open",
                                          "disabled"};

const char *brk_state_name(brk_state s) {
    return (unsigned)s <= BRK_DISABLED ? state_names[s] : "unknown";
}

void brk_config_defaults(brk_config *c) {
    *c = (brk_config){
        .failure_threshold = 5,
        .window_ns = 0,
        .open_ns = 60ull * 1000000000ull,
        .open_max_ns = 600ull * 1000000000ull,
        .growth = 2.0,
        .jitter = 0.1,
        .half_open_max = 3,
        .window_calls = 20,
        .min_calls = 10,
    };
}

static double clamp_pct(double p) {
    /* NaN compares false both ways: it ends up 0 (off). */
    return p > 100.0 ? 100.0 : p > 0.0 ? p : 0.0;
}

void brk_init(brk_breaker *b, const char *name, const brk_config *cfg, uint64_t seed) {
    memset(b, 0, sizeof *b);
    wd_utf8_copy(b->name, sizeof b->name, name);
    b->cfg = *cfg;
    brk_config *c = &b->cfg;
    if (c->window_calls > BRK_WINDOW_MAX)
        c->window_calls = BRK_WINDOW_MAX;
    if (c->min_calls == 0 || c->min_calls > c->window_calls)
        c->min_calls = c->window_calls;
    c->failure_rate_pct = clamp_pct(c->failure_rate_pct);
    c->slow_call_rate_pct = clamp_pct(c->slow_call_rate_pct);
    bool rate_trip = c->window_calls > 0 &&
                     (c->failure_rate_pct > 0 || (c->slow_call_rate_pct > 0 && c->slow_call_ns));
    if (c->failure_threshold == 0 && !rate_trip)
        c->failure_threshold = 1;
    if (c->half_open_max == 0)
        c->half_open_max = 1;
    if (!(c->growth >= 1.0))
        c->growth = 1.0;
    if (!(c->jitter > 0.0))
        c->jitter = 0.0;
    else if (c->jitter > BRK_JITTER_MAX)
        c->jitter = BRK_JITTER_MAX;
    if (c->open_max_ns < c->open_ns)
        c->open_max_ns = c->open_ns;
    wd_rng_seed(&b->rng, seed);
    b->state = BRK_CLOSED;
}

void brk_set_callback(brk_breaker *b, brk_transition_cb cb, void *arg) {
    b->on_transition = cb;
    b->cb_arg = arg;
}

static void window_clear(brk_breaker *b) {
    memset(b->win_fail, 0, sizeof b->win_fail);
    memset(b->win_slow, 0, sizeof b->win_slow);
    b->win_pos = b->win_len = b->win_fails = b->win_slows = 0;
}

/* Adds one outcome to the ring, dropping the oldest once it is full. */
static void window_push(brk_breaker *b, bool fail, bool slow) {
    uint32_t w = b->cfg.window_calls;
    if (w == 0)
        return;
    uint32_t i = b->win_pos, word = i >> 6;
    uint64_t bit = 1ULL << (i & 63);
    if (b->win_len == w) {
        b->win_fails -= (b->win_fail[word] & bit) != 0;
        b->win_slows -= (b->win_slow[word] & bit) != 0;
    } else {
        b->win_len++;
    }
    b->win_fail[word] = fail ? b->win_fail[word] | bit : b->win_fail[word] & ~bit;
    b->win_slow[word] = slow ? b->win_slow[word] | bit : b->win_slow[word] & ~bit;
    b->win_fails += fail;
    b->win_slows += slow;
    b->win_pos = i + 1 == w ? 0 : i + 1;
}

static void brk_transition_to(brk_breaker *b, brk_state to, uint64_t now, const char *reason) {
    brk_transition *t = &b->history[b->history_len % BRK_HISTORY];
    t->at_ns = now;
    t->from = b->state;
    t->to = to;
    wd_utf8_copy(t->reason, sizeof t->reason, reason);
    b->history_len++;
    b->state = to;
    b->generation++;
    b->half_open_inflight = 0;
    if (to == BRK_HALF_OPEN)
        b->half_open_since_ns = now;
    if (to == BRK_CLOSED || to == BRK_DISABLED)
        window_clear(b); /* a fresh start: old outcomes must not re-trip it */
    if (b->on_transition)
        b->on_transition(b->cb_arg, b, t);
}

/* "<what>: <detail>" into why, the detail cut at a character boundary. */
static void reason_join(char *why, size_t len, const char *what, const char *detail) {
    int n = snprintf(why, len, "%s%s", what, detail ? ": " : "");
    if (detail && n > 0 && (size_t)n < len)
        wd_utf8_copy(why + n, len - (size_t)n, detail);
}

static uint64_t brk_cooldown(brk_breaker *b) {
    double d = (double)b->cfg.open_ns, cap = (double)b->cfg.open_max_ns;
    for (uint32_t i = 1; i < b->opens && d < cap; i++)
        d *= b->cfg.growth;
    if (d > cap)
        d = cap;
    if (b->cfg.jitter > 0) {
        double u = (double)(wd_rng_next(&b->rng) >> 11) / (double)(1ULL << 53); /* [0,1) */
        d *= 1.0 + b->cfg.jitter * (2.0 * u - 1.0);
    }
    /* The cap holds with jitter too: an operator's open_max is a promise. */
    if (d > cap)
        d = cap;
    return d < 0 ? 0 : (uint64_t)d;
}

static void brk_open(brk_breaker *b, uint64_t now, const char *reason) {
    b->opens++;
    b->total_opens++;
    b->open_until_ns = now + brk_cooldown(b);
    b->failures = 0;
    brk_transition_to(b, BRK_OPEN, now, reason);
}

/* HALF_OPEN past half_open_max_ns: its trials hang or never come, so it goes
 * back to OPEN (with a longer cooldown) rather than stay half-open for good. */
static bool brk_half_open_expired(brk_breaker *b, uint64_t now) {
    if (b->state != BRK_HALF_OPEN || b->cfg.half_open_max_ns == 0 ||
        now - b->half_open_since_ns < b->cfg.half_open_max_ns)
        return false;
    char why[BRK_REASON_MAX + 1];
    snprintf(why, sizeof why, "half-open for %" PRIu64 " ms without a successful trial call",
             (now - b->half_open_since_ns) / NS_PER_MS);
    brk_open(b, now, why);
    return true;
}

int brk_allow(brk_breaker *b, uint64_t now, uint64_t *gen) {
    switch (b->state) {
    case BRK_CLOSED:
    case BRK_DISABLED:
        break;
    case BRK_FORCED_OPEN:
        goto reject;
    case BRK_OPEN:
    case BRK_HALF_OPEN:
        if (brk_half_open_expired(b, now))
            goto reject;
        if (b->state == BRK_OPEN) {
            if (now < b->open_until_ns)
                goto reject;
            brk_transition_to(b, BRK_HALF_OPEN, now, "cooldown over");
        }
        if (b->half_open_inflight >= b->cfg.half_open_max)
            goto reject;
        b->half_open_inflight++;
        break;
    }
    if (gen)
        *gen = b->generation;
    return 0;
reject:
    b->total_rejected++;
    return WD_EOPEN;
}

/* The rate trips, judged after each outcome while CLOSED. */
static void brk_check_rates(brk_breaker *b, uint64_t now, const char *reason) {
    const brk_config *c = &b->cfg;
    uint32_t n = b->win_len;
    char what[96], why[BRK_REASON_MAX + 1];
    if (n == 0 || n < c->min_calls)
        return;
    if (c->failure_rate_pct > 0 && (double)b->win_fails * 100.0 >= c->failure_rate_pct * n) {
        snprintf(what, sizeof what, "failure rate %.1f%% >= %g%% over the last %" PRIu32 " calls",
                 (double)b->win_fails * 100.0 / n, c->failure_rate_pct, n);
        reason_join(why, sizeof why, what, reason);
        brk_open(b, now, why);
    } else if (c->slow_call_rate_pct > 0 && c->slow_call_ns &&
               (double)b->win_slows * 100.0 >= c->slow_call_rate_pct * n) {
        snprintf(what, sizeof what,
                 "slow-call rate %.1f%% >= %g%% over the last %" PRIu32 " calls (slow: > %" PRIu64
                 " ms)",
                 (double)b->win_slows * 100.0 / n, c->slow_call_rate_pct, n,
                 c->slow_call_ns / NS_PER_MS);
        brk_open(b, now, what);
    }
}

static void brk_closed_outcome(brk_breaker *b, uint64_t now, bool ok, bool slow,
                               const char *reason) {
    window_push(b, !ok, slow);
    if (ok) {
        if (b->cfg.window_ns == 0)
            b->failures = 0; /* consecutive mode: a success breaks the run */
    } else if (b->cfg.failure_threshold) {
        if (b->cfg.window_ns &&
            (b->failures == 0 || now - b->window_start_ns > b->cfg.window_ns)) {
            b->failures = 0;
            b->window_start_ns = now;
        }
        if (++b->failures >= b->cfg.failure_threshold) {
            char what[32], why[BRK_REASON_MAX + 1];
            snprintf(what, sizeof what, "%" PRIu32 " failures", b->failures);
            reason_join(why, sizeof why, what, reason);
            brk_open(b, now, why);
            return;
        }
    }
    brk_check_rates(b, now, ok ? NULL : reason);
}

void brk_record_call(brk_breaker *b, uint64_t gen, uint64_t now, uint64_t duration_ns, bool ok,
                     const char *reason) {
    bool slow = b->cfg.slow_call_ns && duration_ns > b->cfg.slow_call_ns;
    if (ok)
        b->total_successes++;
    else
        b->total_failures++;
    b->total_slow += slow;
    /* Checked before the generation: a result arriving after the bound
     * finds the breaker re-opened and is discarded as stale. */
    brk_half_open_expired(b, now);
    if (gen != b->generation)
        return;
    switch (b->state) {
    case BRK_CLOSED:
        brk_closed_outcome(b, now, ok, slow, reason);
        break;
    case BRK_DISABLED:
        window_push(b, !ok, slow); /* for stats only: a disabled breaker never trips */
        break;
    case BRK_HALF_OPEN:
        if (!ok) {
            brk_open(b, now, reason ? reason : "trial call failed");
        } else if (slow && b->cfg.slow_call_rate_pct > 0) {
            char why[BRK_REASON_MAX + 1];
            snprintf(why, sizeof why, "trial call slow (%" PRIu64 " ms > %" PRIu64 " ms)",
                     duration_ns / NS_PER_MS, b->cfg.slow_call_ns / NS_PER_MS);
            brk_open(b, now, why);
        } else {
            b->opens = 0; /* growth starts over once closed */
            b->failures = 0;
            brk_transition_to(b, BRK_CLOSED, now, "trial call succeeded");
        }
        break;
    case BRK_OPEN:
    case BRK_FORCED_OPEN:
        break;
    }
}

void brk_record_success(brk_breaker *b, uint64_t gen, uint64_t now) {
    brk_record_call(b, gen, now, 0, true, NULL);
}

void brk_record_failure(brk_breaker *b, uint64_t gen, uint64_t now, const char *reason) {
    brk_record_call(b, gen, now, 0, false, reason);
}

void brk_release(brk_breaker *b, uint64_t gen) {
    if (gen == b->generation && b->state == BRK_HALF_OPEN && b->half_open_inflight > 0)
        b->half_open_inflight--;
}

void brk_reset(brk_breaker *b, uint64_t now, const char *reason) {
    b->failures = 0;
    b->opens = 0;
    b->open_until_ns = 0;
    brk_transition_to(b, BRK_CLOSED, now, reason);
}

void brk_force_open(brk_breaker *b, uint64_t now, const char *reason) {
    brk_transition_to(b, BRK_FORCED_OPEN, now, reason);
}

void brk_disable(brk_breaker *b, uint64_t now, const char *reason) {
    brk_transition_to(b, BRK_DISABLED, now, reason);
}

uint64_t brk_retry_in(const brk_breaker *b, uint64_t now) {
    if (b->state != BRK_OPEN || now >= b->open_until_ns)
        return 0;
    return b->open_until_ns - now;
}

const brk_transition *brk_history_at(const brk_breaker *b, uint32_t i) {
    if (i >= b->history_len || i >= BRK_HISTORY)
        return NULL;
    return &b->history[(b->history_len - 1 - i) % BRK_HISTORY];
}

void brk_stats_get(const brk_breaker *b, uint64_t now_ns, brk_stats *out) {
    uint32_t n = b->win_len;
    *out = (brk_stats){
        .state = b->state,
        .critical = b->cfg.critical,
        .successes = b->total_successes,
        .failures = b->total_failures,
        .rejected = b->total_rejected,
        .slow = b->total_slow,
        .window_size = b->cfg.window_calls,
        .window_calls = n,
        .window_failures = b->win_fails,
        .window_slow = b->win_slows,
        .failure_rate_pct = n ? (double)b->win_fails * 100.0 / n : 0.0,
        .slow_rate_pct = n ? (double)b->win_slows * 100.0 / n : 0.0,
        .consecutive_failures = b->failures,
        .half_open_inflight = b->half_open_inflight,
        .retry_in_ns = brk_retry_in(b, now_ns),
        .generation = b->generation,
        .opens = b->total_opens,
    };
}
