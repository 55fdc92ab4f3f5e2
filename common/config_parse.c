/* Config values: parsers and formatters for durations, sizes, booleans,
 * integers and signals; command-line splitting; quoting for error messages;
 * a program's derived lists (argv, environment, depends_on), copy and
 * comparison. The parsers are strict on purpose: a value is either read whole
 * or rejected, never read up to the first odd character (which is what
 * atoi/strtoull alone would do). */
#include "config_int.h"
#include "wd_error.h"
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* ---- a program's derived fields ---- */

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
