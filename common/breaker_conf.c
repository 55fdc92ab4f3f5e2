/* [breaker:NAME] sections: the typed table, environment overrides for
 * breakers the file does not mention, the cross checks a table cannot
 * express, and the conversion to brk_config (ms -> ns). */
#include "breaker_conf.h"
#include "wd_error.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MS_PER_S 1000LL
#define MS_PER_H (3600LL * MS_PER_S)
#define NS_PER_MS UINT64_C(1000000)
#define SECTION_MAX (sizeof BRK_CONF_PREFIX + WD_CONF_NAME_MAX)
#define ENV_VAR_MAX (sizeof "WARDEN_" + SECTION_MAX + WD_CONF_NAME_MAX + 1)
#define WHERE_MAX (WD_CONF_PATH_MAX + 16)

#define BF(n, t, m, lo, hi, d, h)                                                                  \
    {                                                                                              \
        .name = n, .type = t, .offset = offsetof(brk_conf_values, m),                              \
        .size = sizeof(((brk_conf_values *)0)->m), .min = lo, .max = hi, .def = d, .help = h       \
    }
#define BD(n, m, lo, hi, d, h)                                                                     \
    {                                                                                              \
        .name = n, .type = WD_CONF_DOUBLE, .offset = offsetof(brk_conf_values, m),                 \
        .size = sizeof(double), .dmin = lo, .dmax = hi, .def = d, .help = h                        \
    }

/* Row order is the index used by F_* below. */
enum {
    F_FAILURE_THRESHOLD,
    F_FAILURE_RATE,
    F_WINDOW_CALLS,
    F_MIN_CALLS,
    F_SLOW_CALL,
    F_SLOW_CALL_RATE,
    F_OPEN,
    F_OPEN_MAX,
    F_GROWTH,
    F_JITTER,
    F_HALF_OPEN_CALLS,
    F_HALF_OPEN_MAX,
    F_CRITICAL,
    F_COUNT
};

const wd_conf_field brk_conf_fields[] = {
    BF("failure_threshold", WD_CONF_INT, failure_threshold, 0, 1000, "5",
       "Failures in a row that open the breaker; 0 turns this trip off."),
    BD("failure_rate", failure_rate, 0, 100, "0",
       "Percent of failed calls in the window that opens it; 0 turns this trip off."),
    BF("window_calls", WD_CONF_INT, window_calls, 1, BRK_WINDOW_MAX, "20",
       "Calls in the count window the rates are taken over."),
    BF("min_calls", WD_CONF_INT, min_calls, 1, BRK_WINDOW_MAX, "10",
       "Calls in the window before a rate can open the breaker (at most window_calls)."),
    BF("slow_call", WD_CONF_DURATION, slow_call_ms, 0, MS_PER_H, "0",
       "A call running longer than this is slow; 0: no call is."),
    BD("slow_call_rate", slow_call_rate, 0, 100, "0",
       "Percent of slow calls in the window that opens it (needs slow_call); 0: off."),
    BF("open", WD_CONF_DURATION, open_ms, 1, 24 * MS_PER_H, "60s",
       "First time the breaker stays open before a trial call."),
    BF("open_max", WD_CONF_DURATION, open_max_ms, 1, 24 * MS_PER_H, "10m",
       "Cap of the open time as it grows on each re-open (at least open)."),
    BD("growth", growth, 1, 100, "2",
       "Open time multiplier on each re-open; back to open once closed."),
    BD("jitter", jitter, 0, BRK_JITTER_MAX, "0.1", "Random +- fraction of each open time."),
    BF("half_open_calls", WD_CONF_INT, half_open_calls, 1, 1000, "3",
       "Trial calls admitted at once while half-open; a success closes, a failure re-opens."),
    BF("half_open_max", WD_CONF_DURATION, half_open_max_ms, 0, 24 * MS_PER_H, "0",
       "Longest stay half-open without a successful trial before re-opening; 0: no bound."),
    BF("critical", WD_CONF_BOOL, critical, 0, 0, "no",
       "Readiness (/readyz) fails while this breaker is open."),
};
const size_t brk_conf_n_fields = sizeof brk_conf_fields / sizeof brk_conf_fields[0];

_Static_assert(sizeof brk_conf_fields / sizeof brk_conf_fields[0] == F_COUNT,
               "F_* must follow the rows of brk_conf_fields");

int brk_conf_register(void) {
    return wd_conf_register_section(BRK_CONF_PATTERN, brk_conf_fields, brk_conf_n_fields,
                                    sizeof(brk_conf_values));
}

static void add_err(wd_conf_errors *errs, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_err(wd_conf_errors *errs, const char *where, const char *fmt, ...) {
    if (!errs || errs->n >= WD_CONF_ERRORS_MAX)
        return;
    char *slot = errs->msg[errs->n++];
    int n = snprintf(slot, WD_CONF_ERROR_LEN, "%s: ", where);
    if (n < 0 || n >= WD_CONF_ERROR_LEN - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(slot + n, WD_CONF_ERROR_LEN - (size_t)n, fmt, ap);
    va_end(ap);
}

/* "breaker:redis-a" -> "BREAKER_REDIS_A", as config.c names its overrides. */
static void env_mangle(const char *s, char *out, size_t outlen) {
    size_t i = 0;
    for (; s[i] && i + 1 < outlen; i++)
        out[i] = isalnum((unsigned char)s[i]) ? (char)toupper((unsigned char)s[i]) : '_';
    out[i] = '\0';
}

/* Where each field's value came from, for the cross checks' messages. */
typedef struct {
    const char *section;
    const wd_conf_entry *entry[F_COUNT]; /* from the file (or wd_conf_read's overrides) */
    char env[F_COUNT][ENV_VAR_MAX];      /* from brk_conf_load's own overrides */
} origins;

static void where_of(const origins *o, int f, char *buf, size_t len) {
    const wd_conf_entry *e = o->entry[f];
    if (o->env[f][0])
        snprintf(buf, len, "%s", o->env[f]);
    else if (e && e->line > 0)
        snprintf(buf, len, "%s:%d", e->file, e->line);
    else if (e)
        snprintf(buf, len, "%s", e->file); /* an override: its variable */
    else
        snprintf(buf, len, "[%s]", o->section);
}

static bool explicit_value(const origins *o, int f) { return o->env[f][0] || o->entry[f]; }

extern char **environ;

/* Overrides for keys the file (with wd_conf_read's overrides) did not set
 * from the same variable: a breaker absent from the file still gets them. */
static void apply_env(char *const *envp, origins *o, brk_conf_values *v, wd_conf_errors *errs,
                      int *n_err) {
    char sec_up[SECTION_MAX], key_up[WD_CONF_NAME_MAX + 1], var[ENV_VAR_MAX];
    char why[WD_CONF_ERROR_LEN], value[WD_CONF_VALUE_MAX + 1];
    env_mangle(o->section, sec_up, sizeof sec_up);
    for (int f = 0; f < F_COUNT; f++) {
        env_mangle(brk_conf_fields[f].name, key_up, sizeof key_up);
        int w = snprintf(var, sizeof var, "WARDEN_%s_%s", sec_up, key_up);
        if (w < 0 || (size_t)w >= sizeof var)
            continue;
        const wd_conf_entry *e = o->entry[f];
        if (e && e->line == 0 && strcmp(e->file, var) == 0)
            continue; /* wd_conf_read already made it an entry, applied above */
        for (char *const *p = envp ? envp : environ; p && *p; p++) {
            if (strncmp(*p, var, (size_t)w) != 0 || (*p)[w] != '=')
                continue;
            const char *s = *p + w + 1;
            while (isspace((unsigned char)*s))
                s++;
            size_t n = strlen(s);
            while (n > 0 && isspace((unsigned char)s[n - 1]))
                n--;
            if (n > WD_CONF_VALUE_MAX) {
                add_err(errs, var, "value too long (%zu characters, at most %d)", n,
                        WD_CONF_VALUE_MAX);
                (*n_err)++;
                break;
            }
            memcpy(value, s, n);
            value[n] = '\0';
            memcpy(o->env[f], var, (size_t)w + 1);
            if (wd_conf_field_set(&brk_conf_fields[f], value, v, why, sizeof why) != 0) {
                add_err(errs, var, "%s", why);
                (*n_err)++;
            }
            break;
        }
    }
}

/* What one table row cannot say: how keys relate. */
static int cross_check(const origins *o, const brk_conf_values *v, wd_conf_errors *errs) {
    char where[WHERE_MAX];
    int n = 0;
    if (v->min_calls > v->window_calls) {
        where_of(o, explicit_value(o, F_MIN_CALLS) ? F_MIN_CALLS : F_WINDOW_CALLS, where,
                 sizeof where);
        add_err(errs, where, "[%s]: min_calls %lld is more than window_calls %lld", o->section,
                (long long)v->min_calls, (long long)v->window_calls);
        n++;
    }
    if (v->open_max_ms < v->open_ms) {
        where_of(o, explicit_value(o, F_OPEN_MAX) ? F_OPEN_MAX : F_OPEN, where, sizeof where);
        add_err(errs, where, "[%s]: open_max %llums is less than open %llums", o->section,
                (unsigned long long)v->open_max_ms, (unsigned long long)v->open_ms);
        n++;
    }
    if (v->slow_call_rate > 0 && v->slow_call_ms == 0) {
        where_of(o, F_SLOW_CALL_RATE, where, sizeof where);
        add_err(errs, where, "[%s]: slow_call_rate %g needs slow_call (a duration above 0)",
                o->section, v->slow_call_rate);
        n++;
    }
    if (v->failure_threshold == 0 && v->failure_rate == 0 && v->slow_call_rate == 0) {
        where_of(o, F_FAILURE_THRESHOLD, where, sizeof where);
        add_err(errs, where,
                "[%s]: failure_threshold 0 leaves no trip on (set failure_rate or "
                "slow_call_rate too)",
                o->section);
        n++;
    }
    return n;
}

int brk_conf_load(wd_conf *conf, const char *name, char *const *envp, brk_config *out,
                  wd_conf_errors *errs) {
    char section[SECTION_MAX], why[WD_CONF_ERROR_LEN], s[WD_CONF_QUOTE_MAX];
    brk_conf_values v;
    int n_err = 0;
    if (!out || !wd_conf_name_valid(name)) {
        add_err(errs, "breaker", "bad name '%s' (1..%d characters of A-Z a-z 0-9 _ -)",
                wd_conf_quote(name ? name : "", s, sizeof s), WD_CONF_NAME_MAX);
        return WD_EINVAL;
    }
    snprintf(section, sizeof section, "%s%s", BRK_CONF_PREFIX, name);
    origins org = {.section = section}, *o = &org; /* ~2 KB */
    if (conf) {
        if (wd_conf_apply_section(conf, section, brk_conf_fields, brk_conf_n_fields, &v, errs) !=
            0)
            n_err++;
        for (size_t i = 0; i < wd_conf_n_entries(conf); i++) {
            const wd_conf_entry *e = wd_conf_entry_at(conf, i);
            const wd_conf_field *f;
            if (strcmp(e->section, section) == 0 &&
                (f = wd_conf_field_find(brk_conf_fields, brk_conf_n_fields, e->key, NULL)))
                o->entry[f - brk_conf_fields] = e; /* the last wins, as when applied */
        }
    } else {
        for (int f = 0; f < F_COUNT; f++) {
            wd_conf_field_zero(&brk_conf_fields[f], &v);
            if (wd_conf_field_set(&brk_conf_fields[f], brk_conf_fields[f].def, &v, why,
                                  sizeof why) != 0) {
                add_err(errs, section, "bad built-in default: %s", why);
                n_err++;
            }
        }
    }
    apply_env(envp, o, &v, errs, &n_err);
    if (n_err == 0)
        n_err += cross_check(o, &v, errs);
    if (n_err)
        return WD_ECONFIG;
    *out = (brk_config){
        .failure_threshold = (uint32_t)v.failure_threshold,
        .window_ns = 0,
        .open_ns = v.open_ms * NS_PER_MS,
        .open_max_ns = v.open_max_ms * NS_PER_MS,
        .growth = v.growth,
        .jitter = v.jitter,
        .half_open_max = (uint32_t)v.half_open_calls,
        .window_calls = (uint32_t)v.window_calls,
        .min_calls = (uint32_t)v.min_calls,
        .failure_rate_pct = v.failure_rate,
        .slow_call_ns = v.slow_call_ms * NS_PER_MS,
        .slow_call_rate_pct = v.slow_call_rate,
        .half_open_max_ns = v.half_open_max_ms * NS_PER_MS,
        .critical = v.critical,
    };
    return 0;
}
