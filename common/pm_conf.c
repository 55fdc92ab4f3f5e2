/* The [position_monitor] table. Data only, apart from register and load;
 * bounds and defaults are changed here and nowhere else. */
#include "pm_conf.h"
#include "wd_error.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define MS_PER_H (3600LL * 1000LL)
#define PM_POSITIONS_MAX 10000000
#define PM_PAGE_MAX 100000
#define PM_PROFILE_MAX 10000
#define PM_INFLIGHT_MAX 1024

#define PF(n, t, m, lo, hi, d, h)                                                               \
    {                                                                                           \
        .name = n, .type = t, .offset = offsetof(pm_conf, m),                                   \
        .size = sizeof(((pm_conf *)0)->m), .min = lo, .max = hi, .def = d, .help = h            \
    }
#define PD(n, m, lo, hi, d, h)                                                                  \
    {                                                                                           \
        .name = n, .type = WD_CONF_DOUBLE, .offset = offsetof(pm_conf, m),                      \
        .size = sizeof(double), .dmin = lo, .dmax = hi, .def = d, .help = h                     \
    }

const wd_conf_field pm_conf_fields[] = {
    PF("dsn", WD_CONF_STRING, dsn, 0, 0, NULL,
       "Required. PostgreSQL conninfo of the positions table (never logged)."),
    PF("schema_file", WD_CONF_STRING, schema_file, 0, 0, "",
       "SQL applied (idempotently) at every connect, e.g. config/schema.sql; empty: none."),
    PF("redis_url", WD_CONF_STRING, redis_url, 0, 0, "",
       "Redis holding the aggregator's last quotes, the fallback for stale symbols; empty: "
       "none. The password is never logged."),
    PF("redis_key_prefix", WD_CONF_STRING, redis_key_prefix, 0, 0, "md:",
       "Fallback key is PREFIX last:SYMBOL (the aggregator's redis_key_prefix)."),
    PF("marketdata_url", WD_CONF_STRING, marketdata_url, 0, 0, "",
       "The aggregator's PUB socket; empty: ipc://RUN_DIR/marketdata.sock."),
    PF("broker_url", WD_CONF_STRING, broker_url, 0, 0, NULL,
       "Required. Base URL of the broker API (docs/BROKER.md), e.g. http://127.0.0.1:8089."),
    PF("alerts_url", WD_CONF_STRING, alerts_url, 0, 0, "",
       "The notifier's alert socket; empty: ipc://RUN_DIR/alerts.sock."),
    PF("alerts", WD_CONF_BOOL, alerts, 0, 0, "yes",
       "Send an alert for each exit and each breaker opening."),
    PF("price_stale_after", WD_CONF_DURATION, price_stale_after_ms, 10, MS_PER_H, "5s",
       "A symbol with no quote this recent is fetched from Redis; with no usable price at all "
       "it is skipped, never evaluated on an old price."),
    PF("cycle_interval", WD_CONF_DURATION, cycle_interval_ms, 1, 60000, "10ms",
       "Period of the monitoring cycle (evaluate new prices, time rules, actions)."),
    PF("persist_interval", WD_CONF_DURATION, persist_interval_ms, 10, MS_PER_H, "1s",
       "Trailing-stop water marks are written in one batch at most this often."),
    PF("broker_timeout", WD_CONF_DURATION, broker_timeout_ms, 10, 600000, "5s",
       "Whole-request timeout of a broker call."),
    PF("broker_min_interval", WD_CONF_DURATION, broker_min_interval_ms, 1, 60000, "20ms",
       "Floor between broker calls (the throttle's top rate is 1/this)."),
    PD("broker_rate_min", broker_rate_min, 0.001, 1000, "0.5",
       "Calls per second the adaptive throttle may slow down to after errors."),
    PF("broker_inflight_max", WD_CONF_INT, broker_inflight_max, 1, PM_INFLIGHT_MAX, "64",
       "Broker calls started and not yet answered (the throttle queues the rest)."),
    PF("broker_breaker_failures", WD_CONF_INT, broker_breaker_failures, 1, 1000, "5",
       "Consecutive broker failures that open its breaker."),
    PF("broker_breaker_open", WD_CONF_DURATION, broker_breaker_open_ms, 10, MS_PER_H, "10s",
       "First open time of the broker breaker (grows on each re-open)."),
    PF("broker_breaker_open_max", WD_CONF_DURATION, broker_breaker_open_max_ms, 10, MS_PER_H,
       "2m", "Cap of the broker breaker's open time."),
    PF("retry_base", WD_CONF_DURATION, retry_base_ms, 1, 600000, "200ms",
       "Base of the decorrelated-jitter delay between retries of one order."),
    PF("retry_cap", WD_CONF_DURATION, retry_cap_ms, 1, MS_PER_H, "10s",
       "Cap of that delay; also when an order is tried again once the retry budget is spent."),
    PD("retry_budget_ratio", retry_budget_ratio, 0, 1000, "0.2",
       "Retries allowed per first attempt (0.2: retries add at most 20 % to the load)."),
    PD("retry_budget_min_per_s", retry_budget_min_per_s, 0, 1000, "1",
       "Retries per second allowed even with no new orders."),
    PF("db_retry_interval", WD_CONF_DURATION, db_retry_interval_ms, 10, 600000, "500ms",
       "How often a failed write (mark closing, record fill) is tried again."),
    PF("load_page_rows", WD_CONF_INT, load_page_rows, 10, PM_PAGE_MAX, "5000",
       "Rows per query when (re)loading positions (keyset pages)."),
    PF("max_positions", WD_CONF_INT, max_positions, 1, PM_POSITIONS_MAX, "2000000",
       "Positions held in memory at most; more are rejected and counted."),
    PF("profile_cycles", WD_CONF_INT, profile_cycles, 1, PM_PROFILE_MAX, "1000",
       "Cycles kept for the profile command (time per phase)."),
    PF("test_crash_after_broker", WD_CONF_BOOL, test_crash_after_broker, 0, 0, "no",
       "Testing only: exit at once after the broker filled an order, before recording it."),
};
const size_t pm_conf_n_fields = sizeof pm_conf_fields / sizeof pm_conf_fields[0];

int pm_conf_register(void) {
    return wd_conf_register_section(PM_CONF_SECTION "*", pm_conf_fields, pm_conf_n_fields,
                                    sizeof(pm_conf));
}

int pm_conf_load(const char *path, const char *section, pm_conf *out, char *err,
                 size_t errlen) {
    wd_conf *conf = NULL;
    wd_conf_errors *errs = calloc(1, sizeof *errs);
    int rc;
    if (errs == NULL)
        return WD_ENOMEM;
    pm_conf_register();
    /* WARDEN_POSITION_MONITOR_<KEY> overrides, as for every other section. */
    rc = wd_conf_read(path, environ, &conf, errs);
    if (rc == 0)
        rc = wd_conf_apply_section(conf, section ? section : PM_CONF_SECTION, pm_conf_fields,
                                   pm_conf_n_fields, out, errs);
    if (rc != 0)
        snprintf(err, errlen, "%s", errs->n > 0 ? errs->msg[0] : wd_strerror(rc));
    wd_conf_free(conf);
    free(errs);
    return rc;
}
