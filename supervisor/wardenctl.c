/* wardenctl: the operator's command-line client of the supervisor.
 *
 * It speaks the control socket protocol of docs/CONTROL.md: one CTL_REQUEST,
 * one CTL_REPLY, through bus_call_sync (no event loop). Everything it prints
 * comes from the reply's `data` JSON, read and written with jansson; the
 * human output and the --json output are described in docs/WARDENCTL.md.
 *
 * This file is the front: the command table, option parsing, help and
 * dispatch. The round trip is in wardenctl_req.c, the commands in
 * wardenctl_cmds.c, their human output in wardenctl_fmt.c.
 *
 * Exit codes follow the project: 0 done, 1 runtime failure (supervisor not
 * running, error reply, malformed reply, write error), 2 usage error. */
#include "wardenctl.h"
#include "wd_error.h"
#include <errno.h>
#include <nng/nng.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WCTL_DEFAULT_SOCKET "/run/warden/control.sock" /* default run_dir */
#define WCTL_SOCKET_ENV "WARDEN_SOCKET"
#define WCTL_IPC_PREFIX "ipc://"
/* Probes (ping, version) must answer fast or count as down; other commands
 * may be forwarded to a worker, so they get longer. */
#define WCTL_PROBE_TIMEOUT_MS 1000u
#define WCTL_TIMEOUT_MS 5000u
#define WCTL_TIMEOUT_MAX_MS 3600000u
#define WCTL_LINES_MAX 100000u

int wctl_usage_err(const wctl *c, const char *fmt, ...) {
    char msg[WCTL_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->cmd != NULL)
        fprintf(stderr, "wardenctl: %s: %s (usage: wardenctl %s)\n", c->cmd->name, msg,
                c->cmd->usage);
    else
        fprintf(stderr, "wardenctl: %s (see wardenctl --help)\n", msg);
    return WCTL_USAGE;
}

/* strtoull accepts signs and leading blanks and wraps silently; a count or a
 * timeout must be plain digits within [min, max]. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
    if (s == NULL || s[0] < '0' || s[0] > '9')
        return WD_EINVAL;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return WD_ERANGE;
    *out = v;
    return 0;
}

/* ---- command table, argument parsing, help ---- */

static const wctl_cmd commands[] = {
    {"status", 0, 1, {"NAME"}, OPT_JSON, wctl_cmd_status, "status [NAME] [--json]",
     "Show the supervisor and every worker (or one, with details) as a table."},
    {"start", 1, 1, {"NAME"}, OPT_JSON, wctl_cmd_lifecycle, "start NAME|all [--json]",
     "Set a worker's desired state to up and start it."},
    {"stop", 1, 1, {"NAME"}, OPT_JSON, wctl_cmd_lifecycle, "stop NAME|all [--json]",
     "Set a worker's desired state to down and stop it (SIGTERM, then SIGKILL)."},
    {"restart", 1, 1, {"NAME"}, OPT_JSON, wctl_cmd_lifecycle, "restart NAME|all [--json]",
     "Stop and start a worker again."},
    {"signal", 2, 2, {"NAME", "SIG"}, OPT_JSON, wctl_cmd_signal, "signal NAME SIG [--json]",
     "Send a signal (name like HUP, or number) to a worker's process."},
    {"logs", 1, 1, {"NAME"}, OPT_JSON | OPT_LINES | OPT_FOLLOW, wctl_cmd_stream,
     "logs NAME [-n N] [-f] [--json]",
     "Print a worker's captured output: TS STREAM PID LINE. -f keeps following."},
    {"reset", 1, 1, {"NAME"}, OPT_JSON | OPT_REASON, wctl_cmd_reset,
     "reset NAME --reason TEXT [--json]",
     "Close a worker's crash-loop breaker by hand; the reason goes to the audit log."},
    {"events", 0, 0, {NULL}, OPT_JSON | OPT_LINES | OPT_FOLLOW, wctl_cmd_stream,
     "events [-n N] [-f] [--json]",
     "Print recent events: TS KIND WORKER FROM -> TO REASON. -f keeps following."},
    {"call", 2, WCTL_POS_MAX, {"NAME", "COMMAND"}, OPT_JSON, wctl_cmd_call,
     "call NAME COMMAND [key=value ...] [--json]",
     "Send a command to a worker and print its reply as JSON."},
    {"reload", 0, 0, {NULL}, OPT_JSON, wctl_cmd_reload, "reload [--json]",
     "Re-read the config; restart only the workers whose settings changed."},
    {"ping", 0, 0, {NULL}, OPT_JSON, wctl_cmd_ping, "ping [--json]",
     "Exit 0 only if warden answers within the deadline (-t, default 1000 ms)."},
    {"version", 0, 0, {NULL}, OPT_JSON, wctl_cmd_version, "version [--json]",
     "Print wardenctl's version and, if it answers, warden's."},
    {"diagnose", 0, 0, {NULL}, OPT_JSON, wctl_cmd_diagnose, "diagnose [--json]",
     "Report workers, breakers, connectivity, restarts and what to do; exit 0\n"
     "      healthy, 1 degraded, 2 down (warden unreachable, required worker down)."},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void help(FILE *f, const wctl_cmd *cmd) {
    if (cmd != NULL) {
        fprintf(f, "usage: wardenctl [-s SOCKET] [-t TIMEOUT_MS] %s\n\n%s\n", cmd->usage,
                cmd->help);
        return;
    }
    fprintf(f, "usage: wardenctl [-s SOCKET] [-t TIMEOUT_MS] COMMAND [ARGS] [--json]\n\n"
               "Controls a running warden supervisor over its control socket.\n\n"
               "options:\n"
               "  -s, --socket SOCKET    control socket: a path or an ipc:// or tcp:// URL\n"
               "                         (default: $" WCTL_SOCKET_ENV ",\n"
               "                         else " WCTL_DEFAULT_SOCKET ")\n"
               "  -t, --timeout MS       reply deadline (default %u ms; ping, version %u ms)\n"
               "  -j, --json             print the reply as JSON (see docs/WARDENCTL.md)\n"
               "  -h, --help             this help; `wardenctl COMMAND --help` for one command\n\n"
               "commands:\n", WCTL_TIMEOUT_MS, WCTL_PROBE_TIMEOUT_MS);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %s\n      %s\n", commands[i].usage, commands[i].help);
    fprintf(f, "\nexit status: 0 done, 1 failure (warden not running, error reply),\n"
               "2 usage error; diagnose: 0 healthy, 1 degraded, 2 down\n");
}

typedef struct {
    char shrt;
    const char *lng;
    bool has_val;
    unsigned bit; /* 0 for the global options */
} wctl_opt;

static const wctl_opt options[] = {
    {'s', "socket", true, 0},          {'t', "timeout", true, 0},
    {'h', "help", false, 0},           {'j', "json", false, OPT_JSON},
    {'n', "lines", true, OPT_LINES},   {'f', "follow", false, OPT_FOLLOW},
    {'r', "reason", true, OPT_REASON},
};

static int apply_opt(wctl *c, const wctl_opt *o, const char *spelled, const char *val) {
    for (unsigned b = 0; b < WCTL_NOPTBITS; b++)
        if (o->bit == 1u << b && c->opt_spelling[b] == NULL)
            c->opt_spelling[b] = spelled;
    c->opts_used |= o->bit;
    switch (o->shrt) {
    case 's':
        c->socket = val;
        return 0;
    case 't':
        if (parse_u64(val, 1, WCTL_TIMEOUT_MAX_MS, &c->timeout_ms) != 0)
            return wctl_usage_err(c, "bad number for -t: '%s' (expected 1..%u milliseconds)", val,
                                  WCTL_TIMEOUT_MAX_MS);
        return 0;
    case 'n':
        if (parse_u64(val, 1, WCTL_LINES_MAX, &c->lines) != 0)
            return wctl_usage_err(c, "bad number for -n: '%s' (expected 1..%u)", val,
                                  WCTL_LINES_MAX);
        return 0;
    case 'h': c->help = true; return 0;
    case 'j': c->json = true; return 0;
    case 'f': c->follow = true; return 0;
    default: c->reason = val; return 0;
    }
}

/* Options may come before or after the command; `--` ends them. */
static int parse_args(wctl *c, int argc, char **argv) {
    bool opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        if (opts_done || a[0] != '-' || a[1] == '\0') {
            if (c->cmd == NULL) {
                for (size_t k = 0; k < NCOMMANDS && c->cmd == NULL; k++)
                    if (strcmp(a, commands[k].name) == 0)
                        c->cmd = &commands[k];
                if (c->cmd == NULL && strcmp(a, "help") != 0)
                    return wctl_usage_err(c, "unknown command '%s'", a);
                if (c->cmd == NULL)
                    c->help = true;
            } else if (c->npos >= WCTL_POS_MAX || c->npos >= c->cmd->max_pos) {
                if (!c->help)
                    return wctl_usage_err(c, "unexpected argument '%s'", a);
            } else {
                c->pos[c->npos++] = a;
            }
            continue;
        }
        if (strcmp(a, "--") == 0) {
            opts_done = true;
            continue;
        }
        const wctl_opt *o = NULL;
        bool lng = a[1] == '-';
        size_t nlen = lng ? strcspn(a + 2, "=") : 1;
        for (size_t k = 0; k < sizeof options / sizeof options[0] && o == NULL; k++)
            if (lng ? (strlen(options[k].lng) == nlen && strncmp(a + 2, options[k].lng, nlen) == 0)
                    : a[1] == options[k].shrt)
                o = &options[k];
        if (o == NULL || (!lng && !o->has_val && a[2] != '\0') ||
            (lng && !o->has_val && a[2 + nlen] == '='))
            return wctl_usage_err(c, "unknown option '%s'", a);
        if (o->has_val) {
            if (lng && a[2 + nlen] == '=')
                val = a + 3 + nlen;
            else if (!lng && a[2] != '\0')
                val = a + 2;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return wctl_usage_err(c, "option '%s' needs a value", a);
        }
        int rc = apply_opt(c, o, a, val);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int check_args(wctl *c) {
    const wctl_cmd *cmd = c->cmd;
    if (cmd == NULL)
        return wctl_usage_err(c, "no command given");
    for (unsigned b = 0; b < WCTL_NOPTBITS; b++)
        if ((c->opts_used & ~cmd->opts) & (1u << b))
            return wctl_usage_err(c, "option '%s' does not apply", c->opt_spelling[b]);
    if (c->npos < cmd->min_pos)
        return wctl_usage_err(c, "missing %s", cmd->pos_names[c->npos < 2 ? c->npos : 1]);
    if (c->timeout_ms == 0)
        c->timeout_ms = (cmd->run == wctl_cmd_ping || cmd->run == wctl_cmd_version)
                            ? WCTL_PROBE_TIMEOUT_MS
                            : WCTL_TIMEOUT_MS;
    const char *s = c->socket != NULL ? c->socket : getenv(WCTL_SOCKET_ENV);
    if (s == NULL || s[0] == '\0')
        s = WCTL_DEFAULT_SOCKET;
    /* A URL names its transport; anything else is a path on this host. */
    int n = strstr(s, "://") != NULL ? snprintf(c->url, sizeof c->url, "%s", s)
                                     : snprintf(c->url, sizeof c->url, WCTL_IPC_PREFIX "%s", s);
    if (n < 0 || (size_t)n >= sizeof c->url)
        return wctl_usage_err(c, "socket '%.40s...' is longer than %d bytes", s, WCTL_URL_MAX - 1);
    return 0;
}

int main(int argc, char **argv) {
    wctl c;
    memset(&c, 0, sizeof c);
    int rc = parse_args(&c, argc, argv);
    if (rc != 0)
        return rc;
    if (c.help) {
        help(stdout, c.cmd);
        return WCTL_OK;
    }
    if (argc < 2) {
        help(stderr, NULL);
        return WCTL_USAGE;
    }
    if ((rc = check_args(&c)) != 0)
        return rc;
    rc = c.cmd->run(&c);
    /* Free nng's global state so leak checkers see a clean exit. */
    nng_fini();
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "wardenctl: cannot write output: %s\n", strerror(errno));
        return WCTL_FAIL;
    }
    return rc;
}
