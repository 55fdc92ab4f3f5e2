/* The JSON view of a breaker: see breaker_json.h for its shape. */
#include "breaker_json.h"

#define NS_PER_MS UINT64_C(1000000)

static json_t *history_json(const brk_breaker *b, uint64_t now_ns) {
    json_t *arr = json_array();
    const brk_transition *t;
    for (uint32_t i = 0; arr && (t = brk_history_at(b, i)) != NULL; i++) {
        /* A transition stamped after now_ns (a caller's clocks disagree)
         * is shown as just now rather than wrapping around. */
        uint64_t ago = now_ns > t->at_ns ? (now_ns - t->at_ns) / NS_PER_MS : 0;
        json_t *e = json_pack("{s:I,s:s,s:s,s:s}", "ago_ms", (json_int_t)ago, "from",
                              brk_state_name(t->from), "to", brk_state_name(t->to), "reason",
                              t->reason);
        if (!e || json_array_append_new(arr, e) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

json_t *brk_to_json(const brk_breaker *b, uint64_t now_ns, bool with_history) {
    brk_stats s;
    brk_stats_get(b, now_ns, &s);
    uint64_t retry_ms = (s.retry_in_ns + NS_PER_MS - 1) / NS_PER_MS;
    json_t *j = json_pack(
        "{s:s,s:s,s:b,s:{s:I,s:I,s:I,s:I},s:{s:I,s:I,s:I,s:I},s:f,s:f,s:I,s:I,s:I,s:I,s:I}",
        "name", b->name, "state", brk_state_name(s.state), "critical", s.critical, "counts",
        "successes", (json_int_t)s.successes, "failures", (json_int_t)s.failures, "rejected",
        (json_int_t)s.rejected, "slow", (json_int_t)s.slow, "window", "size",
        (json_int_t)s.window_size, "calls", (json_int_t)s.window_calls, "failures",
        (json_int_t)s.window_failures, "slow", (json_int_t)s.window_slow, "failure_rate",
        s.failure_rate_pct, "slow_rate", s.slow_rate_pct, "consecutive_failures",
        (json_int_t)s.consecutive_failures, "half_open_inflight", (json_int_t)s.half_open_inflight,
        "retry_in_ms", (json_int_t)retry_ms, "generation", (json_int_t)s.generation, "opens",
        (json_int_t)s.opens);
    if (j && with_history) {
        json_t *h = history_json(b, now_ns);
        if (!h || json_object_set_new(j, "history", h) != 0) {
            json_decref(j);
            return NULL;
        }
    }
    return j;
}
