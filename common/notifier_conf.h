/* The notifier's settings: [notifier] (intake, storage, dedup, retries,
 * event rules) and one [channel:NAME] per delivery channel, as typed tables.
 * They live in libwarden so that `warden check-config` validates them like
 * the built-in sections (nt_conf_register, called from conf_sections.c).
 * Every key is documented in its table (notifier_conf.c) and in
 * docs/NOTIFIER.md.
 *
 * Secrets are never written in a table field that is shown: a channel's
 * URL, SMTP password and header values can come from the environment
 * (url_env, password_env, "env:NAME" header values) or a file (url_file,
 * password_file, "file:PATH"), and nothing here logs them. */
#ifndef WD_NOTIFIER_CONF_H
#define WD_NOTIFIER_CONF_H

#include "config.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NT_CONF_SECTION "notifier"
#define NT_CONF_CHANNEL_PREFIX "channel:"
#define NT_CONF_URL_MAX 1023
#define NT_CONF_LIST_MAX 1023
#define NT_CONF_ENV_NAME_MAX 127
#define NT_CONF_CHANNELS_MAX 16

typedef enum { NT_CH_LOG = 0, NT_CH_WEBHOOK, NT_CH_SLACK, NT_CH_EMAIL, NT_CH_TYPES } nt_channel_type;
/* Severity of an alert made from a supervisor event; OFF: no alert. */
typedef enum { NT_RULE_OFF = 0, NT_RULE_INFO, NT_RULE_WARNING, NT_RULE_CRITICAL } nt_rule_level;

typedef struct {
    char redis_url[NT_CONF_URL_MAX + 1];
    char redis_password_env[NT_CONF_ENV_NAME_MAX + 1];
    char key_prefix[64];
    char listen[NT_CONF_URL_MAX + 1]; /* "": ipc://RUN_DIR/alerts.sock */
    char events_url[NT_CONF_URL_MAX + 1]; /* "": WARDEN_EVENTS_URL */
    uint64_t dedup_window_ms;
    int64_t storm_threshold; /* alerts to one channel within storm_window; 0: off */
    uint64_t storm_window_ms;
    int64_t max_pending;
    int64_t max_attempts;
    uint64_t retry_base_ms, retry_cap_ms;
    double retry_budget_ratio, retry_budget_min_per_s;
    uint64_t id_ttl_ms;
    uint64_t dlq_max;
    int rule_breaker_open, rule_breaker_closed, rule_crash_loop, rule_unresponsive,
        rule_recovered; /* nt_rule_level */
} nt_conf;

typedef struct {
    int type; /* nt_channel_type */
    char url[NT_CONF_URL_MAX + 1];
    char url_env[NT_CONF_ENV_NAME_MAX + 1];
    char url_file[WD_CONF_PATH_MAX];
    char severities[NT_CONF_LIST_MAX + 1]; /* "info,warning,critical" */
    char labels[NT_CONF_LIST_MAX + 1];     /* "k=v,k2=v2": all must match */
    char headers[NT_CONF_LIST_MAX + 1];    /* "Name=value|env:VAR|file:PATH, ..." */
    double rate_per_s;                     /* 0: the type's default */
    int64_t burst;
    int64_t concurrency;                   /* 0: the type's default */
    uint64_t timeout_ms;
    int64_t max_attempts;                  /* 0: [notifier] max_attempts */
    int64_t breaker_failures;
    uint64_t breaker_cooldown_ms;
    /* email */
    char mail_from[256];
    char mail_to[NT_CONF_LIST_MAX + 1];
    char username[128];
    char password_env[NT_CONF_ENV_NAME_MAX + 1];
    char password_file[WD_CONF_PATH_MAX];
    bool starttls;
} nt_channel_conf;

extern const wd_conf_field nt_conf_fields[];
extern const size_t nt_conf_n_fields;
extern const wd_conf_field nt_channel_conf_fields[];
extern const size_t nt_channel_conf_n_fields;

const char *nt_channel_type_name(nt_channel_type t);

/* Registers [notifier] and [channel:*] (idempotent). 0 or a WD_E* code. */
int nt_conf_register(void);

/* Reads [notifier] and every [channel:NAME] of path (NULL: defaults and no
 * channel) with the WARDEN_* overrides from envp (NULL = environ). names
 * receives the channel names (NT_CONF_CHANNELS_MAX at most). 0, or
 * WD_ECONFIG with errs filled. */
int nt_conf_load(const char *path, char *const *envp, nt_conf *out,
                 nt_channel_conf *channels, char (*names)[WD_CONF_NAME_MAX + 1], int *n_channels,
                 wd_conf_errors *errs);

#endif
