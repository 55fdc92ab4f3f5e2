/* The position monitor's settings: the [position_monitor] section (or
 * [position_monitor:NAME] for a second monitor) as a typed table. It lives in
 * libwarden so that `warden check-config` validates it like the built-in
 * sections (pm_conf_register, called from conf_sections.c). Every key is
 * documented in the table (pm_conf.c). */
#ifndef WD_PM_CONF_H
#define WD_PM_CONF_H

#include "config.h"

#include <stdbool.h>
#include <stdint.h>

#define PM_CONF_SECTION "position_monitor"
#define PM_CONF_URL_MAX 1023
#define PM_CONF_NAME_MAX 127

typedef struct {
    char dsn[PM_CONF_URL_MAX + 1];          /* PostgreSQL conninfo (may hold a password) */
    char schema_file[WD_CONF_PATH_MAX];     /* "" = do not apply a schema */
    char redis_url[PM_CONF_URL_MAX + 1];    /* "" = no Redis fallback */
    char redis_key_prefix[PM_CONF_NAME_MAX + 1];
    char marketdata_url[WD_CONF_PATH_MAX];  /* "" = ipc://RUN_DIR/marketdata.sock */
    char broker_url[PM_CONF_URL_MAX + 1];   /* http://HOST:PORT of the broker API */
    char alerts_url[WD_CONF_PATH_MAX];      /* "" = ipc://RUN_DIR/alerts.sock */
    bool alerts;
    uint64_t price_stale_after_ms;
    uint64_t cycle_interval_ms;
    uint64_t persist_interval_ms;
    uint64_t broker_timeout_ms;
    uint64_t broker_min_interval_ms; /* the throttle's floor between calls */
    double broker_rate_min;          /* calls per second the throttle may fall to */
    int64_t broker_inflight_max;
    int64_t broker_breaker_failures;
    uint64_t broker_breaker_open_ms;
    uint64_t broker_breaker_open_max_ms;
    uint64_t retry_base_ms;
    uint64_t retry_cap_ms;
    double retry_budget_ratio;
    double retry_budget_min_per_s;
    uint64_t db_retry_interval_ms;
    int64_t load_page_rows;
    int64_t max_positions;
    int64_t profile_cycles;
    bool test_crash_after_broker; /* testing only: _exit right after a broker fill */
} pm_conf;

extern const wd_conf_field pm_conf_fields[];
extern const size_t pm_conf_n_fields;

/* Registers the table for "position_monitor*" (see wd_conf_register_section). */
int pm_conf_register(void);

/* Reads path and applies [section] (NULL: "position_monitor") into *out.
 * Returns 0, or WD_ECONFIG / WD_EIO / WD_ENOMEM with the first error in err
 * (file:line and the offending text). */
int pm_conf_load(const char *path, const char *section, pm_conf *out, char *err,
                 size_t errlen);

#endif
