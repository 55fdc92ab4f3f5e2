/* wardenctl: the operator's command-line client of the supervisor.
 *
 * It speaks the control socket protocol of docs/CONTROL.md: one CTL_REQUEST,
 * one CTL_REPLY, through bus_call_sync (no event loop). Everything it prints
 * comes from the reply's `data` JSON, read and written with jansson; the
 * human output and the --json output are described in docs/WARDENCTL.md.
 *
 * Exit codes follow the project: 0 done, 1 runtime failure (supervisor not
 * running, error reply, malformed reply, write error), 2 usage error. */
#include "bus.h"
#include "clock.h"
#include "proto.h"
#include "wd_error.h"
#include <errno.h>
#include <jansson.h>
#include <msgpack.h>
#include <nng/nng.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#ifndef WARDEN_VERSION
#define WARDEN_VERSION "unknown"
#endif

#define WCTL_DEFAULT_SOCKET "/run/warden/control.sock" /* default run_dir */
#define WCTL_SOCKET_ENV "WARDEN_SOCKET"
#define WCTL_URL_MAX 512
#define WCTL_IPC_PREFIX "ipc://"
/* Probes (ping, version) must answer fast or count as down; other commands
 * may be forwarded to a worker, so they get longer. */
#define WCTL_PROBE_TIMEOUT_MS 1000u
#define WCTL_TIMEOUT_MS 5000u
#define WCTL_TIMEOUT_MAX_MS 3600000u
#define WCTL_LINES_MAX 100000u
#define WCTL_POLL_MS 250
#define WCTL_FOLLOW_BATCH 1000u /* n asked for on each -f poll */
#define WCTL_POS_MAX (PROTO_ARGS_MAX + 2) /* call: NAME COMMAND and its key=value args */
#define WCTL_CELL_MAX 96
#define WCTL_SMALL_MAX 32 /* numbers and durations as text */
#define WCTL_ERR_MAX 600
/* --json output: sorted keys so it is byte-stable whatever order warden sends;
 * 15 digits so 0.1 prints as 0.1, not 0.10000000000000001. A worker's reply
 * to `call` keeps the worker's own key order. */
#define WCTL_JSON_BASE (JSON_REAL_PRECISION(15) | JSON_ENCODE_ANY)
#define WCTL_JSON_CALL (WCTL_JSON_BASE | JSON_INDENT(2))
#define WCTL_JSON_FLAGS (WCTL_JSON_CALL | JSON_SORT_KEYS)
#define WCTL_JSONL_FLAGS (WCTL_JSON_BASE | JSON_COMPACT | JSON_SORT_KEYS) /* -f: one per line */

enum { WCTL_OK = 0, WCTL_FAIL = 1, WCTL_USAGE = 2 };
enum { OPT_JSON = 1u << 0, OPT_LINES = 1u << 1, OPT_FOLLOW = 1u << 2, OPT_REASON = 1u << 3 };
#define WCTL_NOPTBITS 4

struct wctl_cmd;
typedef struct {
    const struct wctl_cmd *cmd;
    const char *socket;
    char url[WCTL_URL_MAX];
    uint64_t timeout_ms; /* 0 until -t or the command's default sets it */
    uint64_t lines;      /* -n, 0 when not given */
    const char *reason;
    bool json, follow, help;
    unsigned opts_used;
    const char *opt_spelling[WCTL_NOPTBITS]; /* as typed, for error messages */
    int npos;
    const char *pos[WCTL_POS_MAX];
    uint64_t seq;
} wctl;

typedef int (*wctl_fn)(wctl *c);
typedef struct wctl_cmd {
    const char *name;
    int min_pos, max_pos;
    const char *pos_names[2]; /* what a missing positional is called */
    unsigned opts;
    wctl_fn run;
    const char *usage, *help;
} wctl_cmd;

/* A reply that arrived: status and error as sent, data parsed (never NULL). */
typedef struct {
    int32_t status;
    char error[PROTO_ERROR_MAX + 1];
    json_t *data;
    double latency_ms;
} wctl_reply;

static volatile sig_atomic_t g_stop;
static void on_stop(int sig) {
    (void)sig;
    g_stop = 1;
}

static int usage_err(const wctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_err(const wctl *c, const char *fmt, ...) {
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

/* ---- requests ---- */

static int check_text(const char *s, size_t max, bool allow_empty) {
    size_t n = strlen(s);
    if (n == 0 && !allow_empty)
        return WD_EINVAL;
    if (n > max)
        return WD_ETOOBIG;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return WD_EINVAL;
    return 0;
}

static int check_name(const wctl *c, const char *what, const char *s) {
    int rc = check_text(s, PROTO_NAME_MAX, false);
    if (rc == WD_ETOOBIG)
        return usage_err(c, "%s '%.40s...' is longer than %d bytes", what, s, PROTO_NAME_MAX);
    if (rc != 0)
        return usage_err(c, "%s must be non-empty printable text", what);
    return 0;
}

static void req_init(proto_ctl_request *req, const char *cmd, const char *target) {
    memset(req, 0, sizeof *req);
    snprintf(req->cmd, sizeof req->cmd, "%s", cmd);
    snprintf(req->target, sizeof req->target, "%s", target != NULL ? target : "");
}

/* Callers check user text first, so a failure here is a bound we set ourselves. */
static int req_arg(proto_ctl_request *req, const char *key, const char *val) {
    if (req->n_args >= PROTO_ARGS_MAX || strlen(key) > PROTO_ARG_KEY_MAX ||
        strlen(val) > PROTO_ARG_VAL_MAX)
        return WD_ETOOBIG;
    proto_arg *a = &req->args[req->n_args++];
    snprintf(a->key, sizeof a->key, "%s", key);
    snprintf(a->val, sizeof a->val, "%s", val);
    return 0;
}

static int req_arg_u64(proto_ctl_request *req, const char *key, uint64_t v) {
    char buf[WCTL_SMALL_MAX];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return req_arg(req, key, buf);
}

static void not_running(const wctl *c, int rc) {
    if (rc == WD_ETIMEDOUT)
        fprintf(stderr, "wardenctl: warden is not running (no answer on %s within %llu ms)\n",
                c->url, (unsigned long long)c->timeout_ms);
    else
        fprintf(stderr, "wardenctl: warden is not running (no answer on %s)\n", c->url);
}

/* Sends req and reads the reply into *r (r->data owned by the caller).
 * Returns 0 when a well-formed reply arrived, whatever its status; otherwise
 * a negative error, with a one-line explanation in err. Nothing is printed. */
static int ctl_call(wctl *c, const proto_ctl_request *req, wctl_reply *r, char *err,
                    size_t errlen) {
    msgpack_sbuffer sb;
    proto_header hdr = {.seq = ++c->seq, .ts_ns = wd_clock_real_ns()};
    proto_envelope env;
    proto_ctl_reply rep;
    json_error_t jerr;
    void *buf = NULL;
    size_t len = 0;
    char perr[WCTL_ERR_MAX] = "";
    int rc;

    memset(r, 0, sizeof *r);
    snprintf(hdr.sender, sizeof hdr.sender, "wardenctl");
    msgpack_sbuffer_init(&sb);
    if ((rc = proto_ctl_request_pack(&sb, &hdr, req)) != 0) {
        snprintf(err, errlen, "cannot encode request: %s", wd_strerror(rc));
        goto fail;
    }
    uint64_t t0 = wd_clock_mono_ns();
    rc = bus_call_sync(c->url, sb.data, sb.size, c->timeout_ms, &buf, &len);
    r->latency_ms = (double)(wd_clock_mono_ns() - t0) / (double)WD_NS_PER_MS;
    if (rc == WD_EUNAVAIL || rc == WD_ETIMEDOUT) {
        snprintf(err, errlen, "warden is not running");
        goto fail;
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot talk to warden on %s: %s", c->url, wd_strerror(rc));
        goto fail;
    }
    if ((rc = proto_envelope_unpack(buf, len, &env, perr, sizeof perr)) != 0 ||
        (rc = proto_ctl_reply_unpack(&env, &rep, perr, sizeof perr)) != 0) {
        snprintf(err, errlen, "malformed reply from warden: %s", perr);
        goto fail;
    }
    r->status = rep.status;
    snprintf(r->error, sizeof r->error, "%s", rep.error);
    /* An empty data (error replies) reads as null, so callers always get a value. */
    if (rep.data_len == 0)
        r->data = json_null();
    else
        r->data = json_loadb(rep.data, rep.data_len, JSON_DECODE_ANY, &jerr);
    if (r->data == NULL) {
        snprintf(err, errlen, "malformed reply from warden: data is not JSON: %s", jerr.text);
        rc = WD_EPROTO;
        goto fail;
    }
fail:
    free(buf);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void reply_error(const wctl *c, const wctl_reply *r) {
    fprintf(stderr, "wardenctl: %s: %s\n", c->cmd->name,
            r->error[0] != '\0' ? r->error : wd_strerror(r->status));
}

/* ctl_call that prints any failure and returns an exit code. On WCTL_OK r
 * holds the reply (r->data owned by the caller); its status is 0 unless
 * keep_error asked for error replies too. */
static int ctl_send(wctl *c, const proto_ctl_request *req, wctl_reply *r, bool keep_error) {
    char err[WCTL_ERR_MAX];
    int rc = ctl_call(c, req, r, err, sizeof err);
    if (rc == WD_EUNAVAIL || rc == WD_ETIMEDOUT) {
        not_running(c, rc);
        return WCTL_FAIL;
    }
    if (rc != 0) {
        fprintf(stderr, "wardenctl: %s: %s\n", c->cmd->name, err);
        return WCTL_FAIL;
    }
    if (r->status != 0 && !keep_error) {
        reply_error(c, r);
        json_decref(r->data);
        r->data = NULL;
        return WCTL_FAIL;
    }
    return WCTL_OK;
}

/* The common case: only the data of a successful reply matters. */
static int ctl_do(wctl *c, const proto_ctl_request *req, json_t **data) {
    wctl_reply r;
    int rc = ctl_send(c, req, &r, false);
    *data = rc == WCTL_OK ? r.data : NULL;
    return rc;
}

static int malformed(const wctl *c, const char *what) {
    fprintf(stderr, "wardenctl: %s: malformed reply from warden: %s\n", c->cmd->name, what);
    return WCTL_FAIL;
}

/* ---- output helpers ---- */

static int print_json(json_t *v, size_t flags) {
    if (json_dumpf(v, stdout, flags) != 0)
        return WCTL_FAIL;
    fputc('\n', stdout);
    return WCTL_OK;
}

/* A string field, or "-" when absent, null or empty. */
static const char *sval(const json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL && s[0] != '\0' ? s : "-";
}

static void fmt_int(const json_t *v, char *buf, size_t len) {
    if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, len, "-");
}

/* 45s, 12m3s, 3h12m, 2d4h: two units are what an operator reads at a glance. */
static void fmt_dur(const json_t *v, char *buf, size_t len) {
    double s = json_number_value(v);
    if (!json_is_number(v) || !(s >= 0.0) || s > 1e12) {
        snprintf(buf, len, "-");
        return;
    }
    unsigned long long t = (unsigned long long)s;
    if (t < 60)
        snprintf(buf, len, "%llus", t);
    else if (t < 3600)
        snprintf(buf, len, "%llum%llus", t / 60, t % 60);
    else if (t < 86400)
        snprintf(buf, len, "%lluh%llum", t / 3600, (t % 3600) / 60);
    else
        snprintf(buf, len, "%llud%lluh", t / 86400, (t % 86400) / 3600);
}

/* Heartbeat ages are usually below a second or two, where tenths matter. */
static void fmt_age(const json_t *v, char *buf, size_t len) {
    double s = json_number_value(v);
    if (json_is_number(v) && s >= 0.0 && s < 10.0)
        snprintf(buf, len, "%.1fs", s);
    else
        fmt_dur(v, buf, len);
}

static void print_list(const char *label, const json_t *arr) {
    size_t i;
    json_t *v;
    printf("%s: ", label);
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        printf("%s%s", i > 0 ? ", " : "", s != NULL ? s : "?");
    }
    fputc('\n', stdout);
}

/* ---- status ---- */

enum { COL_NAME, COL_STATE, COL_PID, COL_UPTIME, COL_RESTARTS, COL_EXIT, COL_BREAKER,
       COL_HBAGE, COL_READY, COL_REASON, NCOLS };
static const char *const col_titles[NCOLS] = {"NAME", "STATE", "PID", "UPTIME", "RESTARTS",
                                              "LAST-EXIT", "BREAKER", "HB-AGE", "READY",
                                              "REASON"};
typedef char wctl_row[NCOLS][WCTL_CELL_MAX];

static void status_row(const json_t *w, wctl_row row) {
    const json_t *brk = json_object_get(w, "breaker");
    const json_t *ready = json_object_get(w, "ready");
    char retry[WCTL_SMALL_MAX];
    snprintf(row[COL_NAME], WCTL_CELL_MAX, "%s", sval(w, "name"));
    snprintf(row[COL_STATE], WCTL_CELL_MAX, "%s", sval(w, "state"));
    fmt_int(json_object_get(w, "pid"), row[COL_PID], WCTL_CELL_MAX);
    fmt_dur(json_object_get(w, "uptime_s"), row[COL_UPTIME], WCTL_CELL_MAX);
    fmt_int(json_object_get(w, "restarts"), row[COL_RESTARTS], WCTL_CELL_MAX);
    snprintf(row[COL_EXIT], WCTL_CELL_MAX, "%s", sval(w, "last_exit"));
    fmt_dur(json_object_get(brk, "retry_in_s"), retry, sizeof retry);
    if (strcmp(retry, "-") != 0)
        snprintf(row[COL_BREAKER], WCTL_CELL_MAX, "%s(%s)", sval(brk, "state"), retry);
    else
        snprintf(row[COL_BREAKER], WCTL_CELL_MAX, "%s", sval(brk, "state"));
    fmt_age(json_object_get(w, "heartbeat_age_s"), row[COL_HBAGE], WCTL_CELL_MAX);
    snprintf(row[COL_READY], WCTL_CELL_MAX, "%s",
             json_is_boolean(ready) ? (json_is_true(ready) ? "yes" : "no") : "-");
    snprintf(row[COL_REASON], WCTL_CELL_MAX, "%s", sval(w, "reason"));
}

static void status_supervisor(const json_t *sup) {
    char up[WCTL_SMALL_MAX], pid[WCTL_SMALL_MAX];
    fmt_dur(json_object_get(sup, "uptime_s"), up, sizeof up);
    fmt_int(json_object_get(sup, "pid"), pid, sizeof pid);
    printf("warden %s  pid %s  up %s  config %s%s\n", sval(sup, "version"), pid, up,
           sval(sup, "config"), json_is_true(json_object_get(sup, "draining")) ? "  DRAINING" : "");
    static const char *const counters[] = {"hb_rejected", "ctl_errors", "log_lines_dropped"};
    bool any = false;
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        json_int_t n = json_integer_value(json_object_get(sup, counters[i]));
        if (n != 0)
            printf("%s%s %lld", any ? "  " : "", counters[i], (long long)n), any = true;
    }
    if (any)
        fputc('\n', stdout);
    fputc('\n', stdout);
}

/* The lines under the table for `status NAME`: what does not fit a column. */
static void status_detail(const json_t *w) {
    const json_t *brk = json_object_get(w, "breaker");
    const json_t *arr = json_object_get(w, "breakers"), *m = json_object_get(w, "metrics"), *v;
    char a[WCTL_SMALL_MAX], b[WCTL_SMALL_MAX], d[WCTL_SMALL_MAX];
    const char *key;
    size_t i;
    printf("\nkind %s  desired %s  required %s\n", sval(w, "kind"), sval(w, "desired"),
           json_is_true(json_object_get(w, "required")) ? "yes" : "no");
    printf("last exit %s at %s\n", sval(w, "last_exit"), sval(w, "last_exit_at"));
    fmt_int(json_object_get(w, "progress"), a, sizeof a);
    fmt_int(json_object_get(w, "loop_lag_us"), b, sizeof b);
    fmt_int(json_object_get(w, "hb_rejected"), d, sizeof d);
    printf("progress %s  loop lag %s us  heartbeats rejected %s\n", a, b, d);
    fmt_int(json_object_get(brk, "failures"), a, sizeof a);
    fmt_int(json_object_get(brk, "opens"), b, sizeof b);
    printf("crash-loop breaker %s  failures %s  opens %s\n", sval(brk, "state"), a, b);
    if (json_array_size(arr) > 0) {
        printf("breakers");
        json_array_foreach(arr, i, v) printf(" %s=%s", sval(v, "name"), sval(v, "state"));
        fputc('\n', stdout);
    }
    if (json_object_size(m) > 0) {
        printf("metrics");
        json_object_foreach((json_t *)m, key, v) printf(" %s=%.15g", key, json_number_value(v));
        fputc('\n', stdout);
    }
}

static int cmd_status(wctl *c) {
    proto_ctl_request req;
    json_t *data = NULL;
    wctl_row *rows = NULL;
    size_t width[NCOLS], i;
    int rc;
    const char *name = c->npos > 0 ? c->pos[0] : NULL;
    if (name != NULL && (rc = check_name(c, "NAME", name)) != 0)
        return rc;
    req_init(&req, "status", name);
    if ((rc = ctl_do(c, &req, &data)) != WCTL_OK)
        return rc;
    if (c->json) {
        rc = print_json(data, WCTL_JSON_FLAGS);
        goto fail;
    }
    const json_t *workers = json_object_get(data, "workers");
    if (!json_is_array(workers)) {
        rc = malformed(c, "no 'workers' array");
        goto fail;
    }
    if (name == NULL)
        status_supervisor(json_object_get(data, "supervisor"));
    size_t n = json_array_size(workers);
    if (n == 0) {
        printf("no workers configured\n");
        goto fail;
    }
    if ((rows = calloc(n, sizeof *rows)) == NULL) {
        fprintf(stderr, "wardenctl: status: out of memory\n");
        rc = WCTL_FAIL;
        goto fail;
    }
    for (size_t col = 0; col < NCOLS; col++)
        width[col] = strlen(col_titles[col]);
    for (i = 0; i < n; i++) {
        status_row(json_array_get(workers, i), rows[i]);
        for (size_t col = 0; col < NCOLS; col++)
            if (strlen(rows[i][col]) > width[col])
                width[col] = strlen(rows[i][col]);
    }
    /* The reason is free text: last and unpadded, so long ones do not widen the table. */
    for (size_t col = 0; col + 1 < NCOLS; col++)
        printf("%-*s  ", (int)width[col], col_titles[col]);
    printf("%s\n", col_titles[COL_REASON]);
    for (i = 0; i < n; i++) {
        for (size_t col = 0; col + 1 < NCOLS; col++)
            printf("%-*s  ", (int)width[col], rows[i][col]);
        printf("%s\n", rows[i][COL_REASON]);
    }
    if (name != NULL && n == 1)
        status_detail(json_array_get(workers, 0));
fail:
    free(rows);
    json_decref(data);
    return rc;
}

/* ---- start / stop / restart / signal / reset / reload / call ---- */

static int cmd_lifecycle(wctl *c) {
    proto_ctl_request req;
    json_t *data = NULL;
    int rc = check_name(c, "NAME", c->pos[0]);
    if (rc != 0)
        return rc;
    req_init(&req, c->cmd->name, c->pos[0]);
    if ((rc = ctl_do(c, &req, &data)) != WCTL_OK)
        return rc;
    const json_t *aff = json_object_get(data, "affected");
    if (c->json)
        rc = print_json(data, WCTL_JSON_FLAGS);
    else if (!json_is_array(aff))
        rc = malformed(c, "no 'affected' array");
    else if (json_array_size(aff) == 0)
        printf("%s: nothing to do\n", c->cmd->name);
    else if (strcmp(c->cmd->name, "stop") == 0)
        print_list("stopped", aff);
    else
        print_list(strcmp(c->cmd->name, "start") == 0 ? "started" : "restarted", aff);
    json_decref(data);
    return rc;
}

static int cmd_signal(wctl *c) {
    proto_ctl_request req;
    json_t *data = NULL;
    int rc = check_name(c, "NAME", c->pos[0]);
    if (rc == 0 && check_text(c->pos[1], WCTL_SMALL_MAX, false) != 0)
        rc = usage_err(c, "bad signal '%.40s'", c->pos[1]);
    if (rc != 0)
        return rc;
    req_init(&req, "signal", c->pos[0]);
    req_arg(&req, "signal", c->pos[1]);
    if ((rc = ctl_do(c, &req, &data)) != WCTL_OK)
        return rc;
    char pid[WCTL_SMALL_MAX];
    fmt_int(json_object_get(data, "pid"), pid, sizeof pid);
    if (c->json)
        rc = print_json(data, WCTL_JSON_FLAGS);
    else
        printf("sent %s to %s (pid %s)\n", sval(data, "signal"), c->pos[0], pid);
    json_decref(data);
    return rc;
}

static int cmd_reset(wctl *c) {
    proto_ctl_request req;
    json_t *data = NULL;
    int rc = check_name(c, "NAME", c->pos[0]);
    if (rc != 0)
        return rc;
    /* The reason is what the audit log keeps about a hand-closed breaker. */
    if (c->reason == NULL || c->reason[0] == '\0')
        return usage_err(c, "--reason TEXT is required (it goes to the audit log)");
    if (check_text(c->reason, PROTO_REASON_MAX, false) != 0)
        return usage_err(c, "--reason must be one line of at most %d bytes", PROTO_REASON_MAX);
    req_init(&req, "reset", c->pos[0]);
    req_arg(&req, "reason", c->reason);
    if ((rc = ctl_do(c, &req, &data)) != WCTL_OK)
        return rc;
    if (c->json)
        rc = print_json(data, WCTL_JSON_FLAGS);
    else
        printf("%s: crash-loop breaker %s\n", c->pos[0], sval(data, "breaker"));
    json_decref(data);
    return rc;
}

static int cmd_reload(wctl *c) {
    static const char *const lists[] = {"added", "removed", "restarted", "unchanged"};
    proto_ctl_request req;
    json_t *data = NULL;
    bool changed = false;
    int rc;
    req_init(&req, "reload", NULL);
    if ((rc = ctl_do(c, &req, &data)) != WCTL_OK)
        return rc;
    if (c->json) {
        rc = print_json(data, WCTL_JSON_FLAGS);
        goto fail;
    }
    if (!json_is_object(data)) {
        rc = malformed(c, "data is not an object");
        goto fail;
    }
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        const json_t *arr = json_object_get(data, lists[i]);
        if (json_array_size(arr) == 0)
            continue;
        if (i < 3)
            changed = true;
        print_list(lists[i], arr);
    }
    if (!changed)
        printf("no changes\n");
fail:
    json_decref(data);
    return rc;
}

static int cmd_call(wctl *c) {
    proto_ctl_request req;
    wctl_reply r;
    int rc = check_name(c, "NAME", c->pos[0]);
    if (rc == 0 && check_text(c->pos[1], PROTO_ARG_VAL_MAX, false) != 0)
        rc = usage_err(c, "bad COMMAND '%.40s'", c->pos[1]);
    if (rc != 0)
        return rc;
    req_init(&req, "call", c->pos[0]);
    req_arg(&req, "command", c->pos[1]);
    for (int i = 2; i < c->npos; i++) {
        const char *a = c->pos[i], *eq = strchr(a, '=');
        char key[PROTO_ARG_KEY_MAX + 1];
        if (eq == NULL || eq == a)
            return usage_err(c, "argument '%s' is not key=value", a);
        if ((size_t)(eq - a) > PROTO_ARG_KEY_MAX)
            return usage_err(c, "key of argument '%.40s...' is longer than %d bytes", a,
                             PROTO_ARG_KEY_MAX);
        snprintf(key, sizeof key, "%.*s", (int)(eq - a), a);
        if (check_text(key, PROTO_ARG_KEY_MAX, false) != 0 ||
            strchr(eq + 1, '\0') - (eq + 1) > PROTO_ARG_VAL_MAX)
            return usage_err(c, "argument '%.40s' has a bad key or a value over %d bytes", a,
                             PROTO_ARG_VAL_MAX);
        if (proto_ctl_request_arg(&req, key) != NULL)
            return usage_err(c, "argument '%s' repeats key '%s'%s", a, key,
                             strcmp(key, "command") == 0 ? " (reserved for COMMAND)" : "");
        req_arg(&req, key, eq + 1);
    }
    if ((rc = ctl_send(c, &req, &r, true)) != WCTL_OK)
        return rc;
    /* A worker may explain its refusal in data too: show it beside the error. */
    rc = WCTL_OK;
    if (r.status == 0 || !json_is_null(r.data))
        rc = print_json(r.data, WCTL_JSON_CALL);
    if (r.status != 0) {
        reply_error(c, &r);
        rc = WCTL_FAIL;
    }
    json_decref(r.data);
    return rc;
}

/* ---- ping / version ---- */

static int cmd_ping(wctl *c) {
    proto_ctl_request req;
    json_t *data = NULL;
    char up[WCTL_SMALL_MAX], pid[WCTL_SMALL_MAX];
    wctl_reply r;
    req_init(&req, "ping", NULL);
    int rc = ctl_send(c, &req, &r, false);
    if (rc != WCTL_OK)
        return rc;
    data = r.data;
    if (c->json) {
        if (!json_is_object(data)) {
            json_decref(data);
            data = json_object();
        }
        json_object_set_new(data, "latency_ms", json_real(r.latency_ms));
        rc = print_json(data, WCTL_JSON_FLAGS);
    } else {
        fmt_dur(json_object_get(data, "uptime_s"), up, sizeof up);
        fmt_int(json_object_get(data, "pid"), pid, sizeof pid);
        printf("ok %.2f ms (warden %s, pid %s, up %s)\n", r.latency_ms, sval(data, "version"),
               pid, up);
    }
    json_decref(data);
    return rc;
}

static int cmd_version(wctl *c) {
    proto_ctl_request req;
    char err[WCTL_ERR_MAX], why[WCTL_ERR_MAX];
    wctl_reply r;
    const char *sup = NULL;
    req_init(&req, "version", NULL);
    /* An unreachable supervisor is part of the answer here, not a failure. */
    int rc = ctl_call(c, &req, &r, err, sizeof err);
    if (rc == WD_EUNAVAIL || rc == WD_ETIMEDOUT)
        snprintf(why, sizeof why, "not running: no answer on %s", c->url);
    else if (rc != 0)
        snprintf(why, sizeof why, "%s", err);
    else if (r.status != 0)
        snprintf(why, sizeof why, "%s", r.error[0] ? r.error : wd_strerror(r.status));
    else if ((sup = json_string_value(json_object_get(r.data, "version"))) == NULL)
        snprintf(why, sizeof why, "malformed reply: no version");
    if (c->json) {
        json_t *o = json_pack("{s:s, s:o}", "wardenctl", WARDEN_VERSION, "supervisor",
                              sup != NULL ? json_string(sup) : json_null());
        rc = o != NULL ? print_json(o, WCTL_JSON_FLAGS) : WCTL_FAIL;
        json_decref(o);
    } else {
        printf("wardenctl %s\n", WARDEN_VERSION);
        if (sup != NULL)
            printf("warden %s\n", sup);
        else
            printf("warden unknown (%s)\n", why);
        rc = WCTL_OK;
    }
    json_decref(r.data);
    return rc;
}

/* ---- logs / events, with -f ---- */

static void print_item(const wctl *c, const json_t *it) {
    char pid[WCTL_SMALL_MAX];
    if (c->json && c->follow) {
        print_json((json_t *)it, WCTL_JSONL_FLAGS);
        return;
    }
    if (strcmp(c->cmd->name, "events") == 0) {
        printf("%s %s %s %s -> %s %s\n", sval(it, "ts"), sval(it, "kind"), sval(it, "worker"),
               sval(it, "from"), sval(it, "to"), sval(it, "reason"));
        return;
    }
    const json_t *line = json_object_get(it, "line");
    fmt_int(json_object_get(it, "pid"), pid, sizeof pid);
    printf("%s %s %s ", sval(it, "ts"), sval(it, "stream"), pid);
    fwrite(json_string_value(line) ? json_string_value(line) : "", 1, json_string_length(line),
           stdout);
    fputc('\n', stdout);
}

/* Blocks SIGINT/SIGTERM before nng starts its threads, so they inherit the
 * mask and the signal always reaches the main thread, which only lets it in
 * while it sleeps (pselect): a ^C ends the wait at once. */
static int follow_signals(sigset_t *sleep_mask) {
    struct sigaction sa;
    sigset_t set;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigprocmask(SIG_BLOCK, &set, sleep_mask) != 0)
        return WD_ESYS;
    sigdelset(sleep_mask, SIGINT);
    sigdelset(sleep_mask, SIGTERM);
    return 0;
}

static int cmd_stream(wctl *c) {
    const bool logs = strcmp(c->cmd->name, "logs") == 0;
    const char *items_key = logs ? "lines" : "events";
    proto_ctl_request req;
    json_t *data = NULL;
    sigset_t sleep_mask;
    uint64_t after = 0, last_seq = 0;
    bool have_after = false, have_seq = false;
    int rc;
    if (logs && (rc = check_name(c, "NAME", c->pos[0])) != 0)
        return rc;
    if (c->follow && follow_signals(&sleep_mask) != 0) {
        fprintf(stderr, "wardenctl: %s: cannot set up signals: %s\n", c->cmd->name,
                strerror(errno));
        return WCTL_FAIL;
    }
    for (;;) {
        req_init(&req, c->cmd->name, logs ? c->pos[0] : NULL);
        if (have_after) {
            req_arg_u64(&req, "after", after);
            req_arg_u64(&req, "n", WCTL_FOLLOW_BATCH);
        } else if (c->lines > 0) {
            req_arg_u64(&req, "n", c->lines);
        }
        if ((rc = ctl_do(c, &req, &data)) != WCTL_OK)
            return rc;
        const json_t *items = json_object_get(data, items_key);
        const json_t *next = json_object_get(data, "next");
        if (!json_is_array(items) || (c->follow && !json_is_integer(next))) {
            json_decref(data);
            return malformed(c, logs ? "no 'lines' array or no 'next'"
                                     : "no 'events' array or no 'next'");
        }
        if (c->json && !c->follow) {
            rc = print_json(data, WCTL_JSON_FLAGS);
            json_decref(data);
            return rc;
        }
        size_t i, n = json_array_size(items);
        json_t *it;
        json_array_foreach(items, i, it) {
            /* Skip what was printed already, whichever way the supervisor
             * counts `after` (inclusive or not). */
            json_t *seq = json_object_get(it, "seq");
            if (json_is_integer(seq)) {
                uint64_t s = (uint64_t)json_integer_value(seq);
                if (have_seq && s <= last_seq)
                    continue;
                last_seq = s, have_seq = true;
            }
            print_item(c, it);
        }
        if (logs && have_after && json_integer_value(json_object_get(data, "dropped")) > 0)
            fprintf(stderr, "wardenctl: logs: %lld lines lost (log ring buffer wrapped)\n",
                    (long long)json_integer_value(json_object_get(data, "dropped")));
        uint64_t nx = (uint64_t)json_integer_value(next);
        /* A smaller `next` means a new supervisor: follow its numbering. */
        if (have_after && nx < after)
            have_seq = false;
        after = nx, have_after = true;
        json_decref(data);
        data = NULL;
        if (fflush(stdout) != 0 || !c->follow)
            return WCTL_OK; /* a write error is reported by main */
        if (n >= WCTL_FOLLOW_BATCH)
            continue; /* more may be waiting */
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)WCTL_POLL_MS * 1000000L};
        pselect(0, NULL, NULL, NULL, &ts, &sleep_mask);
        if (g_stop)
            return WCTL_OK;
    }
}

/* ---- command table, argument parsing, help ---- */

static const wctl_cmd commands[] = {
    {"status", 0, 1, {"NAME"}, OPT_JSON, cmd_status, "status [NAME] [--json]",
     "Show the supervisor and every worker (or one, with details) as a table."},
    {"start", 1, 1, {"NAME"}, OPT_JSON, cmd_lifecycle, "start NAME|all [--json]",
     "Set a worker's desired state to up and start it."},
    {"stop", 1, 1, {"NAME"}, OPT_JSON, cmd_lifecycle, "stop NAME|all [--json]",
     "Set a worker's desired state to down and stop it (SIGTERM, then SIGKILL)."},
    {"restart", 1, 1, {"NAME"}, OPT_JSON, cmd_lifecycle, "restart NAME|all [--json]",
     "Stop and start a worker again."},
    {"signal", 2, 2, {"NAME", "SIG"}, OPT_JSON, cmd_signal, "signal NAME SIG [--json]",
     "Send a signal (name like HUP, or number) to a worker's process."},
    {"logs", 1, 1, {"NAME"}, OPT_JSON | OPT_LINES | OPT_FOLLOW, cmd_stream,
     "logs NAME [-n N] [-f] [--json]",
     "Print a worker's captured output: TS STREAM PID LINE. -f keeps following."},
    {"reset", 1, 1, {"NAME"}, OPT_JSON | OPT_REASON, cmd_reset,
     "reset NAME --reason TEXT [--json]",
     "Close a worker's crash-loop breaker by hand; the reason goes to the audit log."},
    {"events", 0, 0, {NULL}, OPT_JSON | OPT_LINES | OPT_FOLLOW, cmd_stream,
     "events [-n N] [-f] [--json]",
     "Print recent events: TS KIND WORKER FROM -> TO REASON. -f keeps following."},
    {"call", 2, WCTL_POS_MAX, {"NAME", "COMMAND"}, OPT_JSON, cmd_call,
     "call NAME COMMAND [key=value ...] [--json]",
     "Send a command to a worker and print its reply as JSON."},
    {"reload", 0, 0, {NULL}, OPT_JSON, cmd_reload, "reload [--json]",
     "Re-read the config; restart only the workers whose settings changed."},
    {"ping", 0, 0, {NULL}, OPT_JSON, cmd_ping, "ping [--json]",
     "Exit 0 only if warden answers within the deadline (-t, default 1000 ms)."},
    {"version", 0, 0, {NULL}, OPT_JSON, cmd_version, "version [--json]",
     "Print wardenctl's version and, if it answers, warden's."},
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
               "2 usage error\n");
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
            return usage_err(c, "bad number for -t: '%s' (expected 1..%u milliseconds)", val,
                             WCTL_TIMEOUT_MAX_MS);
        return 0;
    case 'n':
        if (parse_u64(val, 1, WCTL_LINES_MAX, &c->lines) != 0)
            return usage_err(c, "bad number for -n: '%s' (expected 1..%u)", val, WCTL_LINES_MAX);
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
                    return usage_err(c, "unknown command '%s'", a);
                if (c->cmd == NULL)
                    c->help = true;
            } else if (c->npos >= WCTL_POS_MAX || c->npos >= c->cmd->max_pos) {
                if (!c->help)
                    return usage_err(c, "unexpected argument '%s'", a);
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
            return usage_err(c, "unknown option '%s'", a);
        if (o->has_val) {
            if (lng && a[2 + nlen] == '=')
                val = a + 3 + nlen;
            else if (!lng && a[2] != '\0')
                val = a + 2;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return usage_err(c, "option '%s' needs a value", a);
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
        return usage_err(c, "no command given");
    for (unsigned b = 0; b < WCTL_NOPTBITS; b++)
        if ((c->opts_used & ~cmd->opts) & (1u << b))
            return usage_err(c, "option '%s' does not apply", c->opt_spelling[b]);
    if (c->npos < cmd->min_pos)
        return usage_err(c, "missing %s", cmd->pos_names[c->npos < 2 ? c->npos : 1]);
    if (c->timeout_ms == 0)
        c->timeout_ms = (cmd->run == cmd_ping || cmd->run == cmd_version) ? WCTL_PROBE_TIMEOUT_MS
                                                                         : WCTL_TIMEOUT_MS;
    const char *s = c->socket != NULL ? c->socket : getenv(WCTL_SOCKET_ENV);
    if (s == NULL || s[0] == '\0')
        s = WCTL_DEFAULT_SOCKET;
    /* A URL names its transport; anything else is a path on this host. */
    int n = strstr(s, "://") != NULL ? snprintf(c->url, sizeof c->url, "%s", s)
                                     : snprintf(c->url, sizeof c->url, WCTL_IPC_PREFIX "%s", s);
    if (n < 0 || (size_t)n >= sizeof c->url)
        return usage_err(c, "socket '%.40s...' is longer than %d bytes", s, WCTL_URL_MAX - 1);
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
