/* The [health] section: settings of the warden-health worker (workers/health).
 * The table lives in libwarden, not in the worker, so that `warden
 * check-config` can validate the section: the warden binary calls
 * hl_conf_register() at start-up, like every module with its own section. */
#ifndef WD_HEALTH_CONF_H
#define WD_HEALTH_CONF_H

#include "config.h"
#include <stddef.h>
#include <stdint.h>

#define HL_CONF_SECTION "health"
#define HL_LISTEN_MAX 255

typedef struct {
    char listen[HL_LISTEN_MAX + 1]; /* HOST:PORT, e.g. "127.0.0.1:8080", "0.0.0.0:8080" */
    uint64_t snapshot_ttl_ms;       /* supervisor status is asked at most once per TTL */
    uint64_t probe_deadline_ms;     /* /livez fails when the supervisor has not answered for this long */
    uint64_t heartbeat_max_age_ms;  /* /readyz: a required worker's heartbeat must be younger */
    char api_token_file[WD_CONF_PATH_MAX]; /* "": mutating endpoints open to anyone who can connect */
    uint64_t reset_min_open_ms;     /* a breaker reset within this time of its opening needs override */
    uint64_t history_ttl_ms;        /* worker breaker histories are fetched at most this often */
    uint64_t max_body;              /* request body bound (bytes); larger bodies get 413 */
} hl_conf;

extern const wd_conf_field hl_conf_fields[];
extern const size_t hl_conf_n_fields;

/* Registers [health] with the config module (idempotent). 0 or a WD_E* code. */
int hl_conf_register(void);

/* Reads path's [health] section (defaults when absent) with the WARDEN_HEALTH_*
 * overrides from envp (NULL = environ). 0, or WD_ECONFIG with errs filled. */
int hl_conf_load(const char *path, char *const *envp, hl_conf *out, wd_conf_errors *errs);

#endif
