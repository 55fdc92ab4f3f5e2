/* The notifier's typed tables; see notifier_conf.h. */
#include "notifier_conf.h"
#include "wd_error.h"

#include <stdio.h>
#include <string.h>

#define MS_S 1000
#define MS_M (60 * MS_S)
#define MS_H (60 * MS_M)

static const char *const rule_names[] = {"off", "info", "warning", "critical", NULL};
static const char *const type_names[] = {"log", "webhook", "slack", "email", NULL};

const char *nt_channel_type_name(nt_channel_type t) {
    return (unsigned)t < NT_CH_TYPES ? type_names[t] : "unknown";
}

#define NF(key_, type_, field_, lo_, hi_, def_, help_)                                         \
    {.name = key_, .type = type_, .offset = offsetof(nt_conf, field_),                          \
     .size = sizeof(((nt_conf *)0)->field_), .min = lo_, .max = hi_, .def = def_, .help = help_}
#define ND(key_, field_, lo_, hi_, def_, help_)                                                 \
    {.name = key_, .type = WD_CONF_DOUBLE, .offset = offsetof(nt_conf, field_),                 \
     .size = sizeof(double), .dmin = lo_, .dmax = hi_, .def = def_, .help = help_}
#define NR(key_, field_, def_, help_)                                                          \
    {.name = key_, .type = WD_CONF_ENUM, .offset = offsetof(nt_conf, field_), .size = sizeof(int), \
     .def = def_, .names = rule_names, .help = help_}

const wd_conf_field nt_conf_fields[] = {
    NF("redis_url", WD_CONF_STRING, redis_url, 0, 0, "redis://127.0.0.1:6379",
       "Redis that stores alerts before they are acked, the pending set and the dead letter "
       "queue. Put a password in redis_password_env, not here."),
    NF("redis_password_env", WD_CONF_STRING, redis_password_env, 0, 0, "",
       "Environment variable holding the Redis password (empty: none)."),
    NF("key_prefix", WD_CONF_STRING, key_prefix, 0, 0, "warden:notifier:",
       "Prefix of every Redis key the notifier writes."),
    NF("listen", WD_CONF_STRING, listen, 0, 0, "",
       "URL of the alerts REP socket; empty: ipc://RUN_DIR/alerts.sock."),
    NF("events_url", WD_CONF_STRING, events_url, 0, 0, "",
       "Supervisor events PUB socket; empty: WARDEN_EVENTS_URL (none when run by hand)."),
    NF("dedup_window", WD_CONF_DURATION, dedup_window_ms, 0, 24 * MS_H, "60s",
       "Alerts with the same dedup key within this window are merged into one, with a count; "
       "0 turns dedup off."),
    NF("storm_threshold", WD_CONF_INT, storm_threshold, 0, 1000000, "20",
       "More alerts than this to one channel within storm_window start a storm: the rest of "
       "the window's alerts go out as one digest per channel. 0 turns storm grouping off."),
    NF("storm_window", WD_CONF_DURATION, storm_window_ms, 100, 24 * MS_H, "60s",
       "Window of storm_threshold, and how long a digest collects."),
    NF("max_pending", WD_CONF_INT, max_pending, 1, 10000000, "100000",
       "Alerts stored but not yet delivered; beyond it new alerts get a 'not now' reply and "
       "stay in their producer's outbox."),
    NF("max_attempts", WD_CONF_INT, max_attempts, 1, 1000, "8",
       "Delivery attempts per alert and channel before it goes to the dead letter queue."),
    NF("retry_base", WD_CONF_DURATION, retry_base_ms, 1, 10 * MS_M, "1s",
       "Retry delay: full jitter, rand(0, min(retry_cap, retry_base * 2^attempt))."),
    NF("retry_cap", WD_CONF_DURATION, retry_cap_ms, 1, 24 * MS_H, "5m", "Longest retry delay."),
    ND("retry_budget_ratio", retry_budget_ratio, 0, 1000, "0.5",
       "Retries per first attempt a channel may spend (retry budget), so retries cannot "
       "amplify an outage."),
    ND("retry_budget_min", retry_budget_min_per_s, 0, 1000, "2",
       "Retries per second a channel may always spend."),
    NF("id_ttl", WD_CONF_DURATION, id_ttl_ms, MS_M, 30LL * 24 * MS_H, "24h",
       "How long an alert id is remembered: a resend with a known id is acked and not "
       "delivered again."),
    NF("dlq_max", WD_CONF_INT, dlq_max, 1, 10000000, "100000",
       "Dead letters kept; the oldest are trimmed beyond it."),
    NR("rule_breaker_open", rule_breaker_open, "warning",
       "Severity of the alert made when a breaker opens (off: none)."),
    NR("rule_breaker_closed", rule_breaker_closed, "info",
       "Severity of the alert made when a breaker closes again."),
    NR("rule_crash_loop", rule_crash_loop, "critical",
       "Severity of the alert made when a worker enters BACKOFF or FATAL."),
    NR("rule_unresponsive", rule_unresponsive, "warning",
       "Severity of the alert made when a worker becomes UNRESPONSIVE."),
    NR("rule_recovered", rule_recovered, "info",
       "Severity of the alert made when a worker is RUNNING again after one of the above."),
};
const size_t nt_conf_n_fields = sizeof nt_conf_fields / sizeof nt_conf_fields[0];

#define CF(key_, type_, field_, lo_, hi_, def_, help_)                                         \
    {.name = key_, .type = type_, .offset = offsetof(nt_channel_conf, field_),                  \
     .size = sizeof(((nt_channel_conf *)0)->field_), .min = lo_, .max = hi_, .def = def_,       \
     .help = help_}

const wd_conf_field nt_channel_conf_fields[] = {
    {.name = "type", .type = WD_CONF_ENUM, .offset = offsetof(nt_channel_conf, type),
     .size = sizeof(int), .def = NULL, .names = type_names,
     .help = "log (a structured line), webhook (JSON POST), slack (incoming webhook) or email "
             "(SMTP)."},
    CF("url", WD_CONF_STRING, url, 0, 0, "",
       "Webhook URL, or smtp://host:port for email. A URL with a token belongs in url_env or "
       "url_file instead: it is never logged either way."),
    CF("url_env", WD_CONF_STRING, url_env, 0, 0, "",
       "Environment variable holding the URL (wins over url when set and not empty)."),
    CF("url_file", WD_CONF_STRING, url_file, 0, 0, "", "File holding the URL (first line)."),
    CF("severities", WD_CONF_STRING, severities, 0, 0, "info,warning,critical",
       "Severities routed to this channel."),
    CF("labels", WD_CONF_STRING, labels, 0, 0, "",
       "key=value pairs (comma separated) an alert must all carry to be routed here; "
       "key=* needs the label with any value."),
    CF("headers", WD_CONF_STRING, headers, 0, 0, "",
       "Extra HTTP headers, comma separated Name=value; a value env:VAR or file:PATH is read "
       "from there (for secrets)."),
    {.name = "rate", .type = WD_CONF_DOUBLE, .offset = offsetof(nt_channel_conf, rate_per_s),
     .size = sizeof(double), .dmin = 0, .dmax = 100000, .def = "0",
     .help = "Messages per second at most; 0: the type's default (slack 1, others unlimited)."},
    CF("burst", WD_CONF_INT, burst, 1, 100000, "1", "Messages allowed back to back."),
    CF("concurrency", WD_CONF_INT, concurrency, 0, 256, "0",
       "Deliveries in flight at once; 0: the type's default (slack and email 1, webhook 16)."),
    CF("timeout", WD_CONF_DURATION, timeout_ms, 10, 10 * MS_M, "10s", "One delivery attempt."),
    CF("max_attempts", WD_CONF_INT, max_attempts, 0, 1000, "0",
       "Attempts before the dead letter queue; 0: [notifier] max_attempts."),
    CF("breaker_failures", WD_CONF_INT, breaker_failures, 1, 1000, "5",
       "Failures in a row that open the channel's breaker."),
    CF("breaker_cooldown", WD_CONF_DURATION, breaker_cooldown_ms, 10, 24 * MS_H, "30s",
       "First open time of the channel's breaker (grows on re-open)."),
    CF("from", WD_CONF_STRING, mail_from, 0, 0, "", "email: sender address."),
    CF("to", WD_CONF_STRING, mail_to, 0, 0, "", "email: recipients, comma separated."),
    CF("username", WD_CONF_STRING, username, 0, 0, "", "email: SMTP user (empty: no AUTH)."),
    CF("password_env", WD_CONF_STRING, password_env, 0, 0, "",
       "email: environment variable holding the SMTP password."),
    CF("password_file", WD_CONF_STRING, password_file, 0, 0, "",
       "email: file holding the SMTP password."),
    {.name = "starttls", .type = WD_CONF_BOOL, .offset = offsetof(nt_channel_conf, starttls),
     .size = sizeof(bool), .def = "false", .help = "email: require STARTTLS."},
};
const size_t nt_channel_conf_n_fields =
    sizeof nt_channel_conf_fields / sizeof nt_channel_conf_fields[0];

int nt_conf_register(void) {
    int rc = wd_conf_register_section(NT_CONF_SECTION, nt_conf_fields, nt_conf_n_fields,
                                      sizeof(nt_conf));
    if (rc != 0 && rc != WD_EEXIST)
        return rc;
    rc = wd_conf_register_section(NT_CONF_CHANNEL_PREFIX "*", nt_channel_conf_fields,
                                  nt_channel_conf_n_fields, sizeof(nt_channel_conf));
    return rc == WD_EEXIST ? 0 : rc;
}

static int defaults(const wd_conf_field *t, size_t n, void *out) {
    char why[WD_CONF_ERROR_LEN];
    for (size_t i = 0; i < n; i++)
        if (t[i].def && t[i].def[0] && wd_conf_field_set(&t[i], t[i].def, out, why, sizeof why))
            return WD_ECONFIG;
    return 0;
}

int nt_conf_load(const char *path, char *const *envp, nt_conf *out,
                 nt_channel_conf *channels, char (*names)[WD_CONF_NAME_MAX + 1], int *n_channels,
                 wd_conf_errors *errs) {
    wd_conf *conf = NULL;
    int rc = nt_conf_register();
    memset(out, 0, sizeof *out);
    *n_channels = 0;
    if (rc != 0)
        return rc;
    if (path == NULL)
        return defaults(nt_conf_fields, nt_conf_n_fields, out);
    rc = wd_conf_read(path, envp, &conf, errs);
    if (rc == 0)
        rc = wd_conf_apply_section(conf, NT_CONF_SECTION, nt_conf_fields, nt_conf_n_fields, out,
                                   errs);
    const size_t plen = strlen(NT_CONF_CHANNEL_PREFIX);
    for (size_t i = 0; rc == 0 && i < wd_conf_n_entries(conf); i++) {
        const wd_conf_entry *e = wd_conf_entry_at(conf, i);
        if (strncmp(e->section, NT_CONF_CHANNEL_PREFIX, plen) != 0)
            continue;
        const char *name = e->section + plen;
        bool seen = false;
        for (int c = 0; c < *n_channels && !seen; c++)
            seen = strcmp(names[c], name) == 0;
        if (seen)
            continue;
        if (*n_channels >= NT_CONF_CHANNELS_MAX || strlen(name) == 0 ||
            strlen(name) > WD_CONF_NAME_MAX) {
            if (errs && errs->n < WD_CONF_ERRORS_MAX)
                snprintf(errs->msg[errs->n++], WD_CONF_ERROR_LEN,
                         "%.200s:%d: [%.80s]: at most %d channels, names 1..%d bytes", e->file, e->line,
                         e->section, NT_CONF_CHANNELS_MAX, WD_CONF_NAME_MAX);
            rc = WD_ECONFIG;
            break;
        }
        memset(&channels[*n_channels], 0, sizeof channels[0]);
        rc = wd_conf_apply_section(conf, e->section, nt_channel_conf_fields,
                                   nt_channel_conf_n_fields, &channels[*n_channels], errs);
        if (rc == 0) {
            snprintf(names[*n_channels], WD_CONF_NAME_MAX + 1, "%s", name);
            (*n_channels)++;
        }
    }
    wd_conf_free(conf);
    return rc;
}
