#include "breaker.h"
#include "text.h"
#include "wd_error.h"
#include <stdio.h>
#include <string.h>

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
    };
}

void brk_init(brk_breaker *b, const char *name, const brk_config *cfg, uint64_t seed) {
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    b->cfg = *cfg;
    if (b->cfg.failure_threshold == 0)
        b->cfg.failure_threshold = 1;
    if (b->cfg.half_open_max == 0)
        b->cfg.half_open_max = 1;
    if (b->cfg.growth < 1.0)
        b->cfg.growth = 1.0;
    if (b->cfg.open_max_ns < b->cfg.open_ns)
        b->cfg.open_max_ns = b->cfg.open_ns;
    wd_rng_seed(&b->rng, seed);
    b->state = BRK_CLOSED;
}

void brk_set_callback(brk_breaker *b, brk_transition_cb cb, void *arg) {
    b->on_transition = cb;
    b->cb_arg = arg;
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
    if (b->on_transition)
        b->on_transition(b->cb_arg, b, t);
}

static uint64_t brk_cooldown(brk_breaker *b) {
    double d = (double)b->cfg.open_ns;
    for (uint32_t i = 1; i < b->opens && d < (double)b->cfg.open_max_ns; i++)
        d *= b->cfg.growth;
    if (d > (double)b->cfg.open_max_ns)
        d = (double)b->cfg.open_max_ns;
    if (b->cfg.jitter > 0) {
        double u = (double)(wd_rng_next(&b->rng) >> 11) / (double)(1ULL << 53); /* [0,1) */
        d *= 1.0 + b->cfg.jitter * (2.0 * u - 1.0);
    }
    return d < 0 ? 0 : (uint64_t)d;
}

static void brk_open(brk_breaker *b, uint64_t now, const char *reason) {
    b->opens++;
    b->total_opens++;
    b->open_until_ns = now + brk_cooldown(b);
    b->failures = 0;
    brk_transition_to(b, BRK_OPEN, now, reason);
}

int brk_allow(brk_breaker *b, uint64_t now, uint64_t *gen) {
    switch (b->state) {
    case BRK_DISABLED:
    case BRK_CLOSED:
        break;
    case BRK_OPEN:
        if (now < b->open_until_ns)
            goto reject;
        brk_transition_to(b, BRK_HALF_OPEN, now, "cooldown over");
        /* fall through */
    case BRK_HALF_OPEN:
        if (b->half_open_inflight >= b->cfg.half_open_max)
            goto reject;
        b->half_open_inflight++;
        break;
    case BRK_FORCED_OPEN:
        goto reject;
    }
    if (gen)
        *gen = b->generation;
    return 0;
reject:
    b->total_rejected++;
    return WD_EOPEN;
}

void brk_record_success(brk_breaker *b, uint64_t gen, uint64_t now) {
    b->total_successes++;
    if (gen != b->generation)
        return;
    if (b->state == BRK_HALF_OPEN) {
        b->opens = 0;
        b->failures = 0;
        brk_transition_to(b, BRK_CLOSED, now, "trial call succeeded");
    } else if (b->state == BRK_CLOSED && b->cfg.window_ns == 0) {
        b->failures = 0; /* consecutive mode: a success breaks the run */
    }
}

void brk_record_failure(brk_breaker *b, uint64_t gen, uint64_t now, const char *reason) {
    b->total_failures++;
    if (gen != b->generation)
        return;
    if (b->state == BRK_HALF_OPEN) {
        brk_open(b, now, reason ? reason : "trial call failed");
        return;
    }
    if (b->state != BRK_CLOSED)
        return;
    if (b->cfg.window_ns && (b->failures == 0 || now - b->window_start_ns > b->cfg.window_ns)) {
        b->failures = 0;
        b->window_start_ns = now;
    }
    if (++b->failures >= b->cfg.failure_threshold) {
        char why[BRK_REASON_MAX + 1];
        snprintf(why, sizeof why, "%u failures%s%s", b->failures, reason ? ": " : "",
                 reason ? reason : "");
        brk_open(b, now, why);
    }
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

void brk_record_call(brk_breaker *b, uint64_t gen, uint64_t now_ns, uint64_t duration_ns, bool ok,
                     const char *reason) {
    (void)duration_ns; /* slow-call accounting: see the breaker issue */
    if (ok)
        brk_record_success(b, gen, now_ns);
    else
        brk_record_failure(b, gen, now_ns, reason);
}
