/* A breaker as JSON, for `--json` status output, the control socket and the
 * health server (/api/circuit-breakers, /healthz). Built with jansson.
 *
 *   {"name": "redis", "state": "open", "critical": true,
 *    "counts": {"successes": 120, "failures": 9, "rejected": 4, "slow": 2},
 *    "window": {"size": 20, "calls": 20, "failures": 9, "slow": 2},
 *    "failure_rate": 45.0, "slow_rate": 10.0,     (percent, over the window)
 *    "consecutive_failures": 0, "half_open_inflight": 0,
 *    "retry_in_ms": 41250, "generation": 7, "opens": 3,
 *    "history": [{"ago_ms": 18750, "from": "closed", "to": "open",
 *                 "reason": "5 failures: connection refused"}, ...]}
 *
 * retry_in_ms is rounded up, so a breaker that is still open never says 0.
 * history is newest first; "ago_ms" is measured from now_ns, as the breaker
 * knows only monotonic time. The reasons are what callers recorded: they
 * must not carry secrets (see brk_record_call). */
#ifndef WD_BREAKER_JSON_H
#define WD_BREAKER_JSON_H

#include "breaker.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* A new object owned by the caller (json_decref), or NULL when out of
 * memory. "history" is present only when with_history is set. */
json_t *brk_to_json(const brk_breaker *b, uint64_t now_ns, bool with_history);

#endif
