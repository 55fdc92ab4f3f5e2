#include "throttle.h"

#include "wd_error.h"
#include <string.h>

#define NS_PER_S 1000000000.0
#define NS_PER_MS 1000000ULL

static void set_rate(throttle *t, double rate) {
    if (rate < t->cfg.rate_min_per_s)
        rate = t->cfg.rate_min_per_s;
    if (rate > t->cfg.rate_max_per_s)
        rate = t->cfg.rate_max_per_s;
    t->rate = rate;
    /* rate >= THROTTLE_RATE_MIN keeps this far below UINT64_MAX. */
    uint64_t iv = (uint64_t)(NS_PER_S / rate + 0.5);
    t->interval_ns = iv > 0 ? iv : 1;
}

/* The bucket holds burst tokens: a call may start up to (burst-1) intervals
 * ahead of its theoretical time. */
static uint64_t tolerance_ns(const throttle *t) {
    return (uint64_t)(t->cfg.burst - 1) * t->interval_ns;
}

int throttle_init(throttle *t, const throttle_config *cfg, uint64_t now_ns) {
    if (t == NULL || cfg == NULL)
        return WD_EINVAL;
    if (!(cfg->rate_min_per_s >= THROTTLE_RATE_MIN) ||
        !(cfg->rate_max_per_s >= cfg->rate_min_per_s) ||
        !(cfg->rate_max_per_s <= THROTTLE_RATE_MAX) || !(cfg->increase_step_per_s >= 0.0) ||
        !(cfg->increase_step_per_s <= THROTTLE_RATE_MAX) || cfg->clean_interval_ns == 0 ||
        cfg->burst < 1 || cfg->burst > THROTTLE_BURST_MAX)
        return WD_EINVAL;
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    set_rate(t, cfg->rate_max_per_s);
    t->tat_ns = now_ns;
    t->clean_since_ns = now_ns;
    return 0;
}

int throttle_acquire(throttle *t, uint64_t now_ns, uint64_t *wait_ns) {
    uint64_t wait = 0;
    if (now_ns < t->paused_until_ns)
        wait = t->paused_until_ns - now_ns;
    uint64_t tat = t->tat_ns > now_ns ? t->tat_ns : now_ns;
    uint64_t tau = tolerance_ns(t);
    if (tat - now_ns > tau && tat - now_ns - tau > wait)
        wait = tat - now_ns - tau;
    if (wait > 0) {
        t->st.delayed++;
        if (wait_ns != NULL)
            *wait_ns = wait;
        return WD_EBUSY;
    }
    t->tat_ns = tat + t->interval_ns;
    t->st.acquired++;
    if (wait_ns != NULL)
        *wait_ns = 0;
    return 0;
}

void throttle_on_success(throttle *t, uint64_t now_ns) {
    if (t->rate >= t->cfg.rate_max_per_s || t->cfg.increase_step_per_s <= 0.0)
        return;
    if (now_ns < t->clean_since_ns || now_ns - t->clean_since_ns < t->cfg.clean_interval_ns)
        return;
    set_rate(t, t->rate + t->cfg.increase_step_per_s);
    t->clean_since_ns = now_ns;
    t->st.increases++;
}

void throttle_on_error(throttle *t, uint64_t now_ns, bool rate_limited, uint64_t retry_after_ms) {
    t->st.errors++;
    if (rate_limited)
        t->st.rate_limited++;
    t->clean_since_ns = now_ns;
    if (now_ns >= t->paused_until_ns) {
        set_rate(t, t->rate / 2.0);
        t->st.halvings++;
    }
    if (retry_after_ms > 0) {
        uint64_t d = retry_after_ms > (UINT64_MAX - now_ns) / NS_PER_MS
                         ? UINT64_MAX - now_ns
                         : retry_after_ms * NS_PER_MS;
        uint64_t until = now_ns + d;
        if (until > t->paused_until_ns) {
            t->paused_until_ns = until;
            t->st.pauses++;
            /* Empty the bucket but for one call at the end of the pause. */
            uint64_t tau = tolerance_ns(t);
            uint64_t at = until > UINT64_MAX - tau ? UINT64_MAX : until + tau;
            if (t->tat_ns < at)
                t->tat_ns = at;
        }
    }
}

void throttle_on_cycle_overrun(throttle *t, uint64_t now_ns) {
    set_rate(t, t->rate * 0.75);
    t->clean_since_ns = now_ns;
    t->st.slowdowns++;
}

void throttle_stats_get(const throttle *t, throttle_stats *out) {
    *out = t->st;
    out->rate_per_s = t->rate;
    out->paused_until_ns = t->paused_until_ns;
}
