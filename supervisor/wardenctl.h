/* Private to wardenctl (supervisor/wardenctl*.c), not part of wdsup: the
 * parsed command line and what its files share.
 *
 *   wardenctl.c       main, the command table, option parsing, help
 *   wardenctl_req.c   building a request, one round trip to warden, the
 *                     failures every command reports the same way
 *   wardenctl_cmds.c  each command's request and what it does with the reply
 *   wardenctl_fmt.c   human output: cells, durations, the status table, items
 *   wardenctl_diagnose.c  `diagnose`: gathers status, events and each
 *                     worker's breakers into one JSON report with a verdict
 *   wardenctl_dreport.c   the text rendering of that report
 *   wardenctl_dtarget.c   a dependency's host:port, from warden's config */
#ifndef WD_WARDENCTL_H
#define WD_WARDENCTL_H

#include "proto.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef WARDEN_VERSION
#define WARDEN_VERSION "unknown"
#endif

#define WCTL_URL_MAX 512
#define WCTL_POS_MAX (PROTO_ARGS_MAX + 2) /* call: NAME COMMAND and its key=value args */
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

/* ---- wardenctl.c ---- */

/* Prints a usage error (with the command's usage line) and returns WCTL_USAGE. */
int wctl_usage_err(const wctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- wardenctl_req.c ---- */

/* 0 when s is 1..max (or 0..max) bytes without control characters. */
int wctl_check_text(const char *s, size_t max, bool allow_empty);
/* A NAME (or other word) the user typed: 0, else a usage error printed. */
int wctl_check_name(const wctl *c, const char *what, const char *s);
void wctl_req_init(proto_ctl_request *req, const char *cmd, const char *target);
int wctl_req_arg(proto_ctl_request *req, const char *key, const char *val);
int wctl_req_arg_u64(proto_ctl_request *req, const char *key, uint64_t v);
/* One round trip; prints nothing, explains a failure in err. */
int wctl_call(wctl *c, const proto_ctl_request *req, wctl_reply *r, char *err, size_t errlen);
/* wctl_call that prints any failure and returns an exit code. */
int wctl_send(wctl *c, const proto_ctl_request *req, wctl_reply *r, bool keep_error);
/* wctl_send for a successful reply's data only. */
int wctl_do(wctl *c, const proto_ctl_request *req, json_t **data);
/* Print the failure under the command's name; wctl_malformed returns WCTL_FAIL. */
void wctl_reply_error(const wctl *c, const wctl_reply *r);
int wctl_malformed(const wctl *c, const char *what);

/* ---- wardenctl_cmds.c: the commands' run functions ---- */

int wctl_cmd_status(wctl *c);
int wctl_cmd_lifecycle(wctl *c); /* start, stop, restart */
int wctl_cmd_signal(wctl *c);
int wctl_cmd_reset(wctl *c);
int wctl_cmd_reload(wctl *c);
int wctl_cmd_call(wctl *c);
int wctl_cmd_ping(wctl *c);
int wctl_cmd_version(wctl *c);
int wctl_cmd_stream(wctl *c); /* logs, events */

/* ---- wardenctl_diagnose.c ---- */

/* diagnose's exit codes: the verdict (usage errors are WCTL_USAGE, 2, too). */
enum { WCTL_DIAG_HEALTHY = 0, WCTL_DIAG_DEGRADED = 1, WCTL_DIAG_DOWN = 2 };
int wctl_cmd_diagnose(wctl *c);

/* ---- wardenctl_dreport.c ---- */

/* Prints the text form of a diagnose report; WCTL_FAIL when out of memory. */
int wctl_diag_print(const json_t *report);

/* ---- wardenctl_dtarget.c ---- */

/* Addresses read from warden's config file, with the WARDEN_* overrides of
 * warden's own environment (warden_pid; 0 = wardenctl's): never NULL unless
 * out of memory; empty (every target unknown) when the file cannot be read. */
typedef struct wctl_targets wctl_targets;
wctl_targets *wctl_targets_load(const char *config_path, long warden_pid);
void wctl_targets_free(wctl_targets *t);
/* "host:port" of dependency dep ("redis", "postgresql", "broker"...) as
 * worker's config sections name it; never user, password, path or query.
 * 0 when found, -1 when unknown. */
int wctl_target_find(const wctl_targets *t, const char *worker, const char *dep, char *out,
                     size_t len);

/* ---- wardenctl_fmt.c ---- */

int wctl_print_json(json_t *v, size_t flags);
/* A string field, or "-" when absent, null or empty. */
const char *wctl_sval(const json_t *o, const char *key);
void wctl_fmt_int(const json_t *v, char *buf, size_t len);
void wctl_fmt_dur(const json_t *v, char *buf, size_t len);
void wctl_print_list(const char *label, const json_t *arr);
void wctl_status_supervisor(const json_t *sup);
/* The table of workers (a non-empty array); WCTL_FAIL when out of memory. */
int wctl_status_table(const json_t *workers);
void wctl_status_detail(const json_t *w);
/* One line of `logs` or `events` output. */
void wctl_print_item(const wctl *c, const json_t *it);

#endif
