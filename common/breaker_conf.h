/* A breaker's settings from config: the [breaker:NAME] section, typed by
 * brk_conf_fields, then WARDEN_BREAKER_<NAME>_<KEY> environment overrides
 * (NAME and KEY upper-cased, '-' as '_': WARDEN_BREAKER_REDIS_FAILURE_THRESHOLD=3).
 *
 *   [breaker:redis]
 *   failure_threshold = 5     ; failures in a row that open it; 0: this trip off
 *   failure_rate = 50         ; percent (0..100) over the last window_calls; 0: off
 *   window_calls = 20         ; calls in the count window (1..256)
 *   min_calls = 10            ; calls in the window before a rate counts
 *   slow_call = 2s            ; a call longer than this is slow; 0: none is
 *   slow_call_rate = 80       ; percent of slow calls that opens it; 0: off
 *   open = 60s                ; first cooldown
 *   open_max = 10m            ; cap of the cooldown as it grows on re-opens
 *   growth = 2                ; cooldown multiplier per re-open (1..100)
 *   jitter = 0.1              ; +- fraction of the cooldown (0..0.5)
 *   half_open_calls = 3       ; trial calls admitted while half-open
 *   half_open_max = 0         ; longest stay half-open before re-opening; 0: none
 *   critical = no             ; readiness (/readyz) fails while it is open
 *
 * Rates are percentages ("50" is half the calls), not fractions. Cross
 * checks, done by brk_conf_load: min_calls <= window_calls, open_max >= open,
 * slow_call_rate needs slow_call, and at least one trip must be on. */
#ifndef WD_BREAKER_CONF_H
#define WD_BREAKER_CONF_H

#include "breaker.h"
#include "config.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BRK_CONF_PATTERN "breaker:*"
#define BRK_CONF_PREFIX "breaker:"

/* One section as the table fills it (config units: ms, percent). */
typedef struct {
    int64_t failure_threshold;
    double failure_rate;
    int64_t window_calls, min_calls;
    uint64_t slow_call_ms;
    double slow_call_rate;
    uint64_t open_ms, open_max_ms;
    double growth, jitter;
    int64_t half_open_calls;
    uint64_t half_open_max_ms;
    bool critical;
} brk_conf_values;

extern const wd_conf_field brk_conf_fields[];
extern const size_t brk_conf_n_fields;

/* Registers [breaker:*] with the config module so `warden check-config`
 * checks every key and value of such sections (the cross checks above need
 * brk_conf_load). Call at start-up, before wd_conf_read; 0 or a WD_E* error
 * from wd_conf_register_section. */
int brk_conf_register(void);

/* out <- the defaults (those of brk_config_defaults), then [breaker:NAME] of
 * conf if it has one (conf may be NULL: no file), then the environment
 * overrides in envp (NULL: environ); pass the envp given to wd_conf_read.
 * Errors are appended to errs (may be NULL), each "file:line: message" or
 * "VARIABLE: message" with the offending text. Returns 0, WD_ECONFIG (out
 * untouched) or WD_EINVAL (bad name: 1..WD_CONF_NAME_MAX of A-Z a-z 0-9 _ -). */
int brk_conf_load(wd_conf *conf, const char *name, char *const *envp, brk_config *out,
                  wd_conf_errors *errs);

#endif
