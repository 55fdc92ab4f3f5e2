/* The config tables and their values: the built-in [supervisor], [worker:]
 * and [program:] tables; parsers for durations, sizes, booleans, integers,
 * signals and command lines; typed fields; a program's derived lists
 * (argv, environment, depends_on). Reading files and cross-checks are in
 * config.c. The parsers are strict on purpose: a value is either read whole
 * or rejected, never read up to the first odd character (which is what
 * atoi/strtoull alone would do). */
#include "config.h"
#include "wd_error.h"
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MS_PER_S 1000ULL
#define MS_PER_M (60ULL * MS_PER_S)
#define MS_PER_H (60ULL * MS_PER_M)
#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)

/* ---- the built-in tables ---- */

static const char *const log_level_names[] = {"debug", "info", "warn", "error", NULL};
static const char *const restart_names[] = {"always", "on-failure", "never", NULL};

#define SF(n, t, m, lo, hi, d, h)                                                                  \
    {                                                                                              \
        .name = n, .type = t, .offset = offsetof(wd_supervisor_conf, m),                           \
        .size = sizeof(((wd_supervisor_conf *)0)->m), .min = lo, .max = hi, .def = d, .help = h    \
    }

const wd_conf_field wd_conf_supervisor_fields[] = {
    SF("run_dir", WD_CONF_STRING, run_dir, 0, 0, "/run/warden",
       "Directory of the control, heartbeat, event and worker sockets (relative: to warden's)."),
    {.name = "log_level",
     .type = WD_CONF_ENUM,
     .offset = offsetof(wd_supervisor_conf, log_level),
     .size = sizeof(int),
     .def = "info",
     .names = log_level_names,
     .help = "Lowest level of the supervisor's own log lines."},
    SF("log_line_max", WD_CONF_SIZE, log_line_max, 256, 1024 * 1024, "16K",
       "Longest line kept from a program's output; longer lines are cut and marked."),
    SF("log_ring_lines", WD_CONF_INT, log_ring_lines, 10, 100000, "1000",
       "Output lines kept per program for 'wardenctl logs' (a program may set its own)."),
    SF("shutdown_timeout", WD_CONF_DURATION, shutdown_timeout_ms, 100, MS_PER_H, "30s",
       "On SIGTERM, how long to wait for every program to stop before killing what is left."),
    SF("control_mode", WD_CONF_STRING, control_mode, 0, 0, "0600",
       "Octal permissions of the control socket."),
};

#define PF(n, t, m, lo, hi, d, h)                                                                  \
    {                                                                                              \
        .name = n, .type = t, .offset = offsetof(wd_program_conf, m),                              \
        .size = sizeof(((wd_program_conf *)0)->m), .min = lo, .max = hi, .def = d, .help = h       \
    }

/* The [worker:] and [program:] tables differ only in the default of required. */
#define PROGRAM_ROWS(REQUIRED_DEFAULT)                                                             \
    PF("command", WD_CONF_STRING, command, 0, 0, NULL,                                             \
       "Required. Program and arguments, split into words like sh does (quotes, "                  \
       "backslashes), but not run by a shell."),                                                   \
        {.name = "restart",                                                                        \
         .type = WD_CONF_ENUM,                                                                     \
         .offset = offsetof(wd_program_conf, restart),                                             \
         .size = sizeof(int),                                                                      \
         .def = "always",                                                                          \
         .names = restart_names,                                                                   \
         .help = "When to restart after an exit (on-failure: nonzero status or a signal)."},       \
        PF("min_uptime", WD_CONF_DURATION, min_uptime_ms, 0, MS_PER_H, "10s",                      \
           "A run this long counts as good: restart at once, backoff and breaker reset."),         \
        PF("backoff_base", WD_CONF_DURATION, backoff_base_ms, 1, MS_PER_H, "100ms",                \
           "First delay after a quick failure; doubles each time, with full jitter."),             \
        PF("backoff_cap", WD_CONF_DURATION, backoff_cap_ms, 1, MS_PER_H, "30s",                    \
           "Longest restart delay; at least backoff_base."),                                       \
        PF("start_timeout", WD_CONF_DURATION, start_timeout_ms, 10, MS_PER_H, "10s",               \
           "Time to become ready (READY from a worker, exec for a program)."),                     \
        PF("stop_timeout", WD_CONF_DURATION, stop_timeout_ms, 10, MS_PER_H, "5s",                  \
           "Time between stop_signal and SIGKILL."),                                               \
        PF("stop_signal", WD_CONF_SIGNAL, stop_signal, 0, 0, "TERM",                               \
           "Signal that asks the process group to stop: a name (TERM, SIGINT) or a number."),      \
        PF("heartbeat_interval", WD_CONF_DURATION, heartbeat_interval_ms, 10, 10 * MS_PER_M, "1s", \
           "How often a worker sends a heartbeat (programs only if they speak the protocol)."),    \
        PF("heartbeat_timeout", WD_CONF_DURATION, heartbeat_timeout_ms, 20, MS_PER_H, "5s",        \
           "Silence after which it is UNRESPONSIVE and restarted; more than heartbeat_interval."), \
        PF("depends_on", WD_CONF_STRING, depends_on_raw, 0, 0, "",                                 \
           "Names (comma or space separated) that must be ready before it starts; "                \
           "they stop after it."),                                                                 \
        PF("required", WD_CONF_BOOL, required, 0, 0, REQUIRED_DEFAULT,                             \
           "Whether /readyz needs it ready (default yes for [worker:], no for [program:])."),      \
        PF("autostart", WD_CONF_BOOL, autostart, 0, 0, "yes",                                      \
           "Start with the supervisor; otherwise only on 'wardenctl start NAME'."),                \
        PF("breaker_failures", WD_CONF_INT, breaker_failures, 1, 1000, "5",                        \
           "Quick failures within breaker_window that open the crash-loop breaker."),              \
        PF("breaker_window", WD_CONF_DURATION, breaker_window_ms, MS_PER_S, 24 * MS_PER_H, "60s",  \
           "Window over which quick failures are counted."),                                       \
        PF("breaker_cooldown", WD_CONF_DURATION, breaker_cooldown_ms, 10, 24 * MS_PER_H, "30s",    \
           "Time the open breaker waits before one trial start."),                                 \
        PF("breaker_cooldown_max", WD_CONF_DURATION, breaker_cooldown_max_ms, 10, 24 * MS_PER_H,   \
           "10m",                                                                                  \
           "Cap of the cooldown, which doubles on each re-open; at least breaker_cooldown."),      \
        PF("user", WD_CONF_STRING, user, 0, 0, "",                                                 \
           "User (name or uid) to run as; empty: the supervisor's."),                              \
        PF("group", WD_CONF_STRING, group, 0, 0, "",                                               \
           "Group (name or gid) to run as; empty: the user's primary group."),                     \
        PF("directory", WD_CONF_STRING, directory, 0, 0, "",                                       \
           "Working directory, absolute; empty: the supervisor's."),                               \
        PF("environment", WD_CONF_STRING, environment_raw, 0, 0, "",                               \
           "Extra variables: KEY=VALUE pairs separated by spaces; a value may be double-quoted."), \
        PF("limit_memory", WD_CONF_SIZE, limit_memory, 0, TIB, "0",                                \
           "Address space limit (RLIMIT_AS); 0 = unlimited, else at least 1M."),                   \
        PF("limit_nofile", WD_CONF_INT, limit_nofile, 0, 1048576, "0",                             \
           "Open files limit (RLIMIT_NOFILE); 0 = the supervisor's."),                             \
        PF("limit_core", WD_CONF_SIZE, limit_core, 0, TIB, "0",                                    \
           "Core file size limit (RLIMIT_CORE); 0 = no core files."),                              \
        PF("log_ring_lines", WD_CONF_INT, log_ring_lines, 10, 100000, "",                          \
           "Output lines kept for 'wardenctl logs'; empty: [supervisor] log_ring_lines.")

const wd_conf_field wd_conf_worker_fields[] = {PROGRAM_ROWS("yes")};
const wd_conf_field wd_conf_program_fields[] = {PROGRAM_ROWS("no")};
#define N_FIELDS(t) (sizeof(t) / sizeof((t)[0]))
const size_t wd_conf_supervisor_n_fields = N_FIELDS(wd_conf_supervisor_fields);
const size_t wd_conf_worker_n_fields = N_FIELDS(wd_conf_worker_fields);
const size_t wd_conf_program_n_fields = N_FIELDS(wd_conf_program_fields);

/* INT fields write an int64_t; some targets are uint64_t with min >= 0, where
 * the representation is the same. */
_Static_assert(sizeof(int64_t) == sizeof(uint64_t), "INT fields on uint64_t targets");

/* ---- values ---- */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Reads the leading decimal digits of s into *out and points *end past them.
 * strtoull alone would also take leading blanks, a sign and "0x"; those are
 * rejected here by insisting on a digit first. */
static int parse_digits(const char *s, uint64_t *out, const char **end) {
    if (!s || !is_digit(*s))
        return WD_EINVAL;
    errno = 0;
    char *e = NULL;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno == ERANGE)
        return WD_ERANGE;
    if (e == s)
        return WD_EINVAL;
    *out = (uint64_t)v;
    *end = e;
    return 0;
}

static int mul_checked(uint64_t a, uint64_t b, uint64_t *out) {
    if (b != 0 && a > UINT64_MAX / b)
        return WD_ERANGE;
    *out = a * b;
    return 0;
}

int wd_parse_duration_ms(const char *s, uint64_t *out_ms) {
    uint64_t n;
    const char *unit;
    int rc = parse_digits(s, &n, &unit);
    if (rc != 0)
        return rc;
    /* Sub-millisecond units round up, so that a nonzero duration never
     * becomes a zero timeout. */
    if (strcmp(unit, "ns") == 0) {
        *out_ms = n / 1000000ULL + (n % 1000000ULL != 0);
        return 0;
    }
    if (strcmp(unit, "us") == 0) {
        *out_ms = n / 1000ULL + (n % 1000ULL != 0);
        return 0;
    }
    uint64_t mult;
    if (*unit == '\0' || strcmp(unit, "ms") == 0)
        mult = 1;
    else if (strcmp(unit, "s") == 0)
        mult = MS_PER_S;
    else if (strcmp(unit, "m") == 0)
        mult = MS_PER_M;
    else if (strcmp(unit, "h") == 0)
        mult = MS_PER_H;
    else
        return WD_EINVAL;
    return mul_checked(n, mult, out_ms);
}

int wd_parse_size(const char *s, uint64_t *out_bytes) {
    uint64_t n;
    const char *unit;
    int rc = parse_digits(s, &n, &unit);
    if (rc != 0)
        return rc;
    uint64_t mult;
    switch (*unit) {
    case '\0':
        *out_bytes = n;
        return 0;
    case 'k':
    case 'K':
        mult = KIB;
        break;
    case 'm':
    case 'M':
        mult = MIB;
        break;
    case 'g':
    case 'G':
        mult = GIB;
        break;
    default:
        return WD_EINVAL;
    }
    /* "64M", "64MB" and "64MiB" all mean 64 * 1024 * 1024: people write all
     * three, and a supervisor's limits are not the place for SI units. */
    const char *rest = unit + 1;
    if (*rest != '\0' && strcasecmp(rest, "b") != 0 && strcasecmp(rest, "ib") != 0)
        return WD_EINVAL;
    return mul_checked(n, mult, out_bytes);
}

int wd_parse_bool(const char *s, bool *out) {
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    if (!s)
        return WD_EINVAL;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return WD_EINVAL;
}

int wd_parse_int(const char *s, int64_t *out) {
    if (!s)
        return WD_EINVAL;
    bool neg = *s == '-';
    uint64_t mag;
    const char *end;
    int rc = parse_digits(neg ? s + 1 : s, &mag, &end);
    if (rc != 0)
        return rc;
    if (*end != '\0')
        return WD_EINVAL;
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1)
            return WD_ERANGE;
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX)
            return WD_ERANGE;
        *out = (int64_t)mag;
    }
    return 0;
}

static const struct {
    int sig;
    const char *name;
} signal_names[] = {
    {SIGHUP, "HUP"},       {SIGINT, "INT"},   {SIGQUIT, "QUIT"},   {SIGILL, "ILL"},
    {SIGTRAP, "TRAP"},     {SIGABRT, "ABRT"}, {SIGBUS, "BUS"},     {SIGFPE, "FPE"},
    {SIGKILL, "KILL"},     {SIGUSR1, "USR1"}, {SIGSEGV, "SEGV"},   {SIGUSR2, "USR2"},
    {SIGPIPE, "PIPE"},     {SIGALRM, "ALRM"}, {SIGTERM, "TERM"},   {SIGCHLD, "CHLD"},
    {SIGCONT, "CONT"},     {SIGSTOP, "STOP"}, {SIGTSTP, "TSTP"},   {SIGTTIN, "TTIN"},
    {SIGTTOU, "TTOU"},     {SIGURG, "URG"},   {SIGXCPU, "XCPU"},   {SIGXFSZ, "XFSZ"},
    {SIGVTALRM, "VTALRM"}, {SIGPROF, "PROF"}, {SIGWINCH, "WINCH"}, {SIGIO, "IO"},
    {SIGPWR, "PWR"},       {SIGSYS, "SYS"},
};
#define SIGNAL_NAMES_N (sizeof signal_names / sizeof signal_names[0])

int wd_parse_signal(const char *s, int *out) {
    if (!s || !*s)
        return WD_EINVAL;
    if (is_digit(*s)) {
        int64_t n;
        int rc = wd_parse_int(s, &n);
        if (rc != 0)
            return rc;
        /* Any number the kernel accepts, realtime signals included. */
        if (n < 1 || n > SIGRTMAX)
            return WD_ERANGE;
        *out = (int)n;
        return 0;
    }
    const char *name = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
    for (size_t i = 0; i < SIGNAL_NAMES_N; i++) {
        if (strcasecmp(name, signal_names[i].name) == 0) {
            *out = signal_names[i].sig;
            return 0;
        }
    }
    return WD_EINVAL;
}

const char *wd_signal_name(int sig) {
    for (size_t i = 0; i < SIGNAL_NAMES_N; i++)
        if (signal_names[i].sig == sig)
            return signal_names[i].name;
    return "?";
}

/* Formats n * unit with the largest of units[] that divides it exactly, so the
 * text parses back to the same value. */
static int format_units(uint64_t n, const uint64_t *mult, const char *const *suffix, size_t n_units,
                        char *buf, size_t buflen) {
    size_t u = n_units - 1; /* the last unit is 1 and divides everything */
    for (size_t i = 0; i < n_units && n != 0; i++) {
        if (n % mult[i] == 0) {
            u = i;
            break;
        }
    }
    int w =
        snprintf(buf, buflen, "%llu%s", (unsigned long long)(n / mult[u]), n == 0 ? "" : suffix[u]);
    return w < 0 || (size_t)w >= buflen ? WD_ERANGE : 0;
}

int wd_format_duration_ms(uint64_t ms, char *buf, size_t buflen) {
    static const uint64_t mult[] = {MS_PER_H, MS_PER_M, MS_PER_S, 1};
    static const char *const suffix[] = {"h", "m", "s", "ms"};
    return format_units(ms, mult, suffix, 4, buf, buflen);
}

int wd_format_size(uint64_t bytes, char *buf, size_t buflen) {
    static const uint64_t mult[] = {GIB, MIB, KIB, 1};
    static const char *const suffix[] = {"G", "M", "K", ""};
    return format_units(bytes, mult, suffix, 4, buf, buflen);
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int wd_split_command(const char *cmd, char *buf, size_t buflen, char **argv, int argv_max,
                     int *argc) {
    int rc = 0;
    int n = 0;
    size_t o = 0;
    const char *p = cmd;
    if (!cmd || !buf || buflen == 0 || !argv || argv_max < 0 || !argc)
        return WD_EINVAL;
    for (;;) {
        while (is_blank(*p))
            p++;
        if (*p == '\0')
            break;
        if (n == argv_max) {
            rc = WD_ERANGE;
            goto fail;
        }
        argv[n++] = buf + o;
        /* One word: runs of unquoted, '...' and "..." text up to a blank. */
        while (*p != '\0' && !is_blank(*p)) {
            char c = *p++;
            char quote = 0;
            if (c == '\'' || c == '"') {
                quote = c;
            } else if (c == '\\') {
                if (*p == '\0') {
                    rc = WD_EINVAL;
                    goto fail;
                }
                c = *p++;
            }
            if (!quote) {
                if (o + 1 >= buflen) {
                    rc = WD_ERANGE;
                    goto fail;
                }
                buf[o++] = c;
                continue;
            }
            while (*p != quote) {
                if (*p == '\0') {
                    rc = WD_EINVAL;
                    goto fail;
                }
                c = *p++;
                /* Inside "...", as in sh, a backslash escapes only these. */
                if (quote == '"' && c == '\\' && *p && strchr("\\\"$`", *p))
                    c = *p++;
                if (o + 1 >= buflen) {
                    rc = WD_ERANGE;
                    goto fail;
                }
                buf[o++] = c;
            }
            p++; /* the closing quote */
        }
        if (o >= buflen) {
            rc = WD_ERANGE;
            goto fail;
        }
        buf[o++] = '\0';
    }
    argv[n] = NULL;
    *argc = n;
    return 0;
fail:
    argv[0] = NULL;
    *argc = 0;
    return rc;
}

/* Copies text for an error message: cut to WD_CONF_QUOTE_TEXT_MAX with "...", control
 * characters shown as '?' so a binary file cannot garble a terminal. */
const char *wd_conf_quote(const char *s, char *buf, size_t buflen) {
    size_t i = 0, n = strlen(s);
    if (buflen == 0)
        return buf;
    for (; i < n && i < WD_CONF_QUOTE_TEXT_MAX && i + 4 < buflen; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (i < n && i + 3 < buflen) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

void wd_conf_field_zero(const wd_conf_field *f, void *target) {
    char *p = (char *)target + f->offset;
    switch (f->type) {
    case WD_CONF_STRING:
        memset(p, 0, f->size);
        break;
    case WD_CONF_INT:
    case WD_CONF_DURATION:
    case WD_CONF_SIZE:
        memset(p, 0, sizeof(uint64_t));
        break;
    case WD_CONF_BOOL:
        memset(p, 0, sizeof(bool));
        break;
    case WD_CONF_ENUM:
    case WD_CONF_SIGNAL:
        memset(p, 0, sizeof(int));
        break;
    case WD_CONF_DOUBLE: {
        double d = 0;
        memcpy(p, &d, sizeof d);
        break;
    }
    }
}

static void format_bound(const wd_conf_field *f, int64_t v, char *buf, size_t len) {
    uint64_t u = v < 0 ? 0 : (uint64_t)v;
    if (f->type == WD_CONF_DURATION)
        wd_format_duration_ms(u, buf, len);
    else if (f->type == WD_CONF_SIZE)
        wd_format_size(u, buf, len);
    else
        snprintf(buf, len, "%lld", (long long)v);
}

static int bounds_err(const wd_conf_field *f, const char *value, char *why, size_t whylen) {
    char lo[WD_CONF_DURATION_STR_MAX], hi[WD_CONF_DURATION_STR_MAX], s[WD_CONF_QUOTE_MAX];
    format_bound(f, f->min, lo, sizeof lo);
    format_bound(f, f->max, hi, sizeof hi);
    snprintf(why, whylen, "value '%s' for '%s' out of bounds (%s..%s)",
             wd_conf_quote(value, s, sizeof s), f->name, lo, hi);
    return WD_ERANGE;
}

static void list_names(const char *const *names, char *buf, size_t len) {
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; names && names[i] && o < len; i++) {
        int w = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

/* Parses value for field f into target. On error, why gets the message. */
int wd_conf_field_set(const wd_conf_field *f, const char *value, void *target, char *why,
                      size_t whylen) {
    char s[WD_CONF_QUOTE_MAX], names[WD_CONF_ERROR_LEN / 2];
    char *p = (char *)target + f->offset;
    bool bounded = f->min != 0 || f->max != 0;
    const char *v = wd_conf_quote(value, s, sizeof s);
    int rc = 0;
    /* An empty value on a key whose default is empty means "the default". */
    if (value[0] == '\0' && f->def && f->def[0] == '\0') {
        wd_conf_field_zero(f, target);
        return 0;
    }
    switch (f->type) {
    case WD_CONF_STRING: {
        size_t n = strlen(value);
        if (n >= f->size) {
            snprintf(why, whylen, "value for '%s' too long (%zu characters, at most %zu)", f->name,
                     n, f->size - 1);
            return WD_ERANGE;
        }
        /* The whole field, so equal settings are equal bytes (memcmp). */
        memset(p, 0, f->size);
        memcpy(p, value, n);
        return 0;
    }
    case WD_CONF_INT: {
        int64_t i;
        if ((rc = wd_parse_int(value, &i)) == WD_EINVAL) {
            snprintf(why, whylen, "bad integer '%s' for '%s'", v, f->name);
            return rc;
        }
        if (rc != 0 || (bounded && (i < f->min || i > f->max)))
            return bounds_err(f, value, why, whylen);
        memcpy(p, &i, sizeof i);
        return 0;
    }
    case WD_CONF_DURATION:
    case WD_CONF_SIZE: {
        uint64_t u;
        bool dur = f->type == WD_CONF_DURATION;
        rc = dur ? wd_parse_duration_ms(value, &u) : wd_parse_size(value, &u);
        if (rc == WD_EINVAL) {
            snprintf(why, whylen,
                     dur ? "bad duration '%s' for '%s' (use ns, us, ms, s, m, h)"
                         : "bad size '%s' for '%s' (use K, M, G; a bare number is bytes)",
                     v, f->name);
            return rc;
        }
        if (rc != 0 || (bounded && (u < (uint64_t)(f->min < 0 ? 0 : f->min) ||
                                    u > (uint64_t)(f->max < 0 ? 0 : f->max))))
            return bounds_err(f, value, why, whylen);
        memcpy(p, &u, sizeof u);
        return 0;
    }
    case WD_CONF_BOOL: {
        bool b;
        if (wd_parse_bool(value, &b) != 0) {
            snprintf(why, whylen,
                     "bad boolean '%s' for '%s' (use yes, no, true, false, on, off, 1, 0)", v,
                     f->name);
            return WD_EINVAL;
        }
        memcpy(p, &b, sizeof b);
        return 0;
    }
    case WD_CONF_ENUM:
        for (int i = 0; f->names && f->names[i]; i++) {
            if (strcasecmp(value, f->names[i]) == 0) {
                memcpy(p, &i, sizeof i);
                return 0;
            }
        }
        list_names(f->names, names, sizeof names);
        snprintf(why, whylen, "bad value '%s' for '%s' (use %s)", v, f->name, names);
        return WD_EINVAL;
    case WD_CONF_SIGNAL: {
        int sig;
        if (wd_parse_signal(value, &sig) != 0) {
            snprintf(why, whylen,
                     "bad signal '%s' for '%s' (use a name like TERM or SIGTERM, or a number)", v,
                     f->name);
            return WD_EINVAL;
        }
        memcpy(p, &sig, sizeof sig);
        return 0;
    }
    case WD_CONF_DOUBLE: {
        char *end = NULL;
        errno = 0;
        double d = strtod(value, &end);
        if (end == value || *end != '\0' || errno == ERANGE || d != d) {
            snprintf(why, whylen, "bad number '%s' for '%s'", v, f->name);
            return WD_EINVAL;
        }
        if ((f->dmin != 0 || f->dmax != 0) && (d < f->dmin || d > f->dmax)) {
            snprintf(why, whylen, "value '%s' for '%s' out of bounds (%g..%g)", v, f->name, f->dmin,
                     f->dmax);
            return WD_ERANGE;
        }
        memcpy(p, &d, sizeof d);
        return 0;
    }
    }
    snprintf(why, whylen, "key '%s' has an unknown type", f->name);
    return WD_EINVAL;
}

/* Levenshtein distance, for "did you mean". Keys are short; longer strings
 * are simply "far". */
static int edit_distance(const char *a, const char *b) {
    enum { MAXK = WD_CONF_NAME_MAX + 1 };
    int row[MAXK + 1];
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAXK || lb > MAXK)
        return MAXK;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best =
                diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const wd_conf_field *wd_conf_field_find(const wd_conf_field *table, size_t n_fields,
                                        const char *key, const char **suggest) {
    int near_d = 3; /* suggest only close misspellings */
    if (suggest)
        *suggest = NULL;
    for (size_t i = 0; i < n_fields; i++) {
        int d = edit_distance(key, table[i].name);
        if (d == 0)
            return &table[i];
        if (d < near_d && suggest)
            near_d = d, *suggest = table[i].name;
    }
    return NULL;
}

bool wd_conf_name_valid(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > WD_CONF_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-')
            return false;
    return true;
}

int wd_program_parse_command(wd_program_conf *p, char *err, size_t errlen) {
    char s[WD_CONF_QUOTE_MAX];
    int rc = wd_split_command(p->command, p->argbuf, sizeof p->argbuf, p->argv, WD_CONF_ARGV_MAX,
                              &p->argc);
    if (rc == WD_EINVAL)
        snprintf(err, errlen, "command: unterminated quote or trailing backslash in '%s'",
                 wd_conf_quote(p->command, s, sizeof s));
    else if (rc != 0)
        snprintf(err, errlen, "command: more than %d words", WD_CONF_ARGV_MAX);
    else if (p->argc == 0)
        snprintf(err, errlen, "command is empty");
    return rc != 0 ? rc : p->argc == 0 ? WD_EINVAL : 0;
}

/* environment = KEY=VALUE ...: words split like a command (so values may be
 * quoted), each a KEY=VALUE with a C-identifier key, each key once. */
static int parse_environment(wd_program_conf *p, char *err, size_t errlen) {
    char buf[WD_CONF_VALUE_MAX + 1];
    char *words[WD_CONF_ENV_MAX + 1];
    char s[WD_CONF_QUOTE_MAX];
    const size_t val_max = sizeof p->env[0] - WD_CONF_NAME_MAX - 2;
    int n = 0;
    p->n_env = 0;
    int rc = wd_split_command(p->environment_raw, buf, sizeof buf, words, WD_CONF_ENV_MAX, &n);
    if (rc == WD_EINVAL) {
        snprintf(err, errlen, "environment: unterminated quote or trailing backslash in '%s'",
                 wd_conf_quote(p->environment_raw, s, sizeof s));
        return rc;
    }
    if (rc != 0) {
        snprintf(err, errlen, "environment: more than %d variables", WD_CONF_ENV_MAX);
        return rc;
    }
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(words[i], '=');
        size_t klen = eq ? (size_t)(eq - words[i]) : 0;
        bool ok = klen > 0 && klen <= WD_CONF_NAME_MAX && !isdigit((unsigned char)words[i][0]);
        for (size_t k = 0; ok && k < klen; k++)
            ok = isalnum((unsigned char)words[i][k]) || words[i][k] == '_';
        if (!ok) {
            snprintf(err, errlen,
                     "environment: bad entry '%s' (expected KEY=VALUE, KEY of "
                     "A-Z a-z 0-9 _, at most %d characters)",
                     wd_conf_quote(words[i], s, sizeof s), WD_CONF_NAME_MAX);
            return WD_EINVAL;
        }
        if (strlen(eq + 1) > val_max) {
            snprintf(err, errlen, "environment: value of '%.*s' too long (at most %zu characters)",
                     (int)klen, words[i], val_max);
            return WD_ERANGE;
        }
        for (int j = 0; j < p->n_env; j++) {
            if (strncmp(p->env[j], words[i], klen + 1) == 0) {
                snprintf(err, errlen, "environment: '%.*s' set twice", (int)klen, words[i]);
                return WD_EINVAL;
            }
        }
        snprintf(p->env[p->n_env++], sizeof p->env[0], "%s", words[i]);
    }
    return 0;
}

int wd_program_parse_environment(wd_program_conf *p, char *err, size_t errlen) {
    int rc = parse_environment(p, err, errlen);
    if (rc != 0)
        p->n_env = 0; /* all or nothing: never start a program with half its variables */
    return rc;
}

int wd_program_parse_depends(wd_program_conf *p, char *err, size_t errlen) {
    char s[WD_CONF_QUOTE_MAX];
    char name[WD_CONF_VALUE_MAX + 1];
    const char *q = p->depends_on_raw;
    p->n_deps = 0;
    while (*q) {
        size_t n = strcspn(q, ", \t");
        if (n == 0) {
            q++;
            continue;
        }
        memcpy(name, q, n);
        name[n] = '\0';
        q += n;
        if (!wd_conf_name_valid(name)) {
            snprintf(err, errlen, "depends_on: bad name '%s' (1..%d characters of A-Z a-z 0-9 _ -)",
                     wd_conf_quote(name, s, sizeof s), WD_CONF_NAME_MAX);
            p->n_deps = 0; /* a half list would only add "unknown program" noise */
            return WD_EINVAL;
        }
        bool repeat = false;
        for (int i = 0; i < p->n_deps && !repeat; i++)
            repeat = strcmp(p->depends_on[i], name) == 0;
        if (repeat)
            continue;
        if (p->n_deps == WD_CONF_DEPS_MAX) {
            snprintf(err, errlen, "depends_on: more than %d names", WD_CONF_DEPS_MAX);
            p->n_deps = 0;
            return WD_ERANGE;
        }
        memcpy(p->depends_on[p->n_deps++], name, n + 1);
    }
    return 0;
}

void wd_program_conf_copy(wd_program_conf *dst, const wd_program_conf *src) {
    if (dst == src)
        return;
    memcpy(dst, src, sizeof *dst);
    /* argv points into src->argbuf: re-point each word at dst->argbuf. */
    for (int i = 0; i < src->argc && i < WD_CONF_ARGV_MAX; i++) {
        const char *w = src->argv[i];
        bool inside = w >= src->argbuf && w < src->argbuf + sizeof src->argbuf;
        dst->argv[i] = inside ? dst->argbuf + (w - src->argbuf) : NULL;
    }
    dst->argv[src->argc >= 0 && src->argc <= WD_CONF_ARGV_MAX ? src->argc : 0] = NULL;
}

bool wd_program_conf_equal(const wd_program_conf *a, const wd_program_conf *b) {
    if (strcmp(a->name, b->name) || a->is_worker != b->is_worker ||
        strcmp(a->command, b->command) || a->restart != b->restart ||
        a->min_uptime_ms != b->min_uptime_ms || a->backoff_base_ms != b->backoff_base_ms ||
        a->backoff_cap_ms != b->backoff_cap_ms || a->start_timeout_ms != b->start_timeout_ms ||
        a->stop_timeout_ms != b->stop_timeout_ms || a->stop_signal != b->stop_signal ||
        a->heartbeat_interval_ms != b->heartbeat_interval_ms ||
        a->heartbeat_timeout_ms != b->heartbeat_timeout_ms || a->required != b->required ||
        a->autostart != b->autostart || a->breaker_failures != b->breaker_failures ||
        a->breaker_window_ms != b->breaker_window_ms ||
        a->breaker_cooldown_ms != b->breaker_cooldown_ms ||
        a->breaker_cooldown_max_ms != b->breaker_cooldown_max_ms || strcmp(a->user, b->user) ||
        strcmp(a->group, b->group) || strcmp(a->directory, b->directory) ||
        a->limit_memory != b->limit_memory || a->limit_nofile != b->limit_nofile ||
        a->limit_core != b->limit_core || a->log_ring_lines != b->log_ring_lines ||
        a->n_deps != b->n_deps || a->n_env != b->n_env)
        return false;
    /* The parsed lists, not the raw text: "a,b" and "a b" are the same. */
    for (int i = 0; i < a->n_deps && i < WD_CONF_DEPS_MAX; i++)
        if (strcmp(a->depends_on[i], b->depends_on[i]) != 0)
            return false;
    for (int i = 0; i < a->n_env && i < WD_CONF_ENV_MAX; i++)
        if (strcmp(a->env[i], b->env[i]) != 0)
            return false;
    return true;
}

void wd_conf_field_describe(const wd_conf_field *f, char *buf, size_t buflen) {
    char lo[WD_CONF_DURATION_STR_MAX], hi[WD_CONF_DURATION_STR_MAX];
    size_t o = 0;
    if (buflen == 0)
        return;
    buf[0] = '\0';
    if (f->type == WD_CONF_ENUM) {
        for (int k = 0; f->names && f->names[k] && o < buflen; k++) {
            int w = snprintf(buf + o, buflen - o, "%s%s", k ? " | " : "(", f->names[k]);
            o += w > 0 ? (size_t)w : 0;
        }
        if (o > 0 && o + 2 <= buflen)
            memcpy(buf + o, ")", 2);
    } else if ((f->type == WD_CONF_INT || f->type == WD_CONF_DURATION || f->type == WD_CONF_SIZE) &&
               (f->min || f->max)) {
        format_bound(f, f->min, lo, sizeof lo);
        format_bound(f, f->max, hi, sizeof hi);
        snprintf(buf, buflen, "(%s..%s)", lo, hi);
    } else if (f->type == WD_CONF_DOUBLE && (f->dmin != 0 || f->dmax != 0)) {
        snprintf(buf, buflen, "(%g..%g)", f->dmin, f->dmax);
    }
}
