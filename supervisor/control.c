/* The control socket: decodes a request, checks the peer, runs the command
 * and replies; `call` is forwarded to the worker's own command socket and its
 * reply passed back unchanged. Every malformed request gets an error reply
 * naming what was wrong; the supervisor keeps serving. See docs/CONTROL.md. */
#include "sup.h"
#include "clock.h"
#include "log.h"
#include "text.h"
#include "wd_error.h"
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Below wardenctl's default deadline (5 s), so a hung worker is reported as
 * such rather than as a supervisor that does not answer. */
#define CTL_CALL_TIMEOUT_MS 3000
#define CTL_LOGS_DEFAULT 100
#define CTL_EVENTS_DEFAULT 50

typedef struct {
    sup *s;
    bus_rep_request *req;
    uint64_t peer_uid, peer_pid;
    proto_ctl_request r;
} ctl_ctx;

/* The commands, in the order of enum ctl_cmd; sup_ctl_parse returns the index. */
enum ctl_cmd {
    CTL_PING, CTL_VERSION, CTL_STATUS, CTL_START, CTL_STOP, CTL_RESTART, CTL_SIGNAL,
    CTL_LOGS, CTL_EVENTS, CTL_RESET, CTL_RELOAD, CTL_CALL, CTL_N
};
static const char *const ctl_cmd_names[CTL_N] = {
    "ping", "version", "status", "start", "stop", "restart", "signal",
    "logs", "events", "reset", "reload", "call",
};

/* The pure half of the control socket, kept apart from the dispatch so it
 * can be fuzzed (tests/fuzz/fuzz_sup_control.c) without a running
 * supervisor; the dispatch below adds only what needs its state. */
/* Decodes buf as a control request into r and names its command: returns
 * its index in ctl_cmd_names (>= 0), or WD_EPROTO (not a decodable control
 * request) / WD_EINVAL (unknown command) with err set to the error the
 * reply carries. */
int sup_ctl_parse(const void *buf, size_t len, proto_ctl_request *r, char *err, size_t errlen) {
    char why[PROTO_ERROR_MAX + 1];
    proto_envelope env;
    if (proto_envelope_unpack(buf, len, &env, why, sizeof why) != 0 ||
        (env.type != PROTO_T_CTL_REQUEST &&
         snprintf(why, sizeof why, "expected a control request, got message type %d",
                  (int)env.type) > 0) ||
        proto_ctl_request_unpack(&env, r, why, sizeof why) != 0) {
        snprintf(err, errlen, "bad request: %s", why);
        return WD_EPROTO;
    }
    for (int i = 0; i < CTL_N; i++)
        if (strcmp(r->cmd, ctl_cmd_names[i]) == 0)
            return i;
    snprintf(err, errlen, "unknown command '%s'", r->cmd);
    return WD_EINVAL;
}

static void ctl_reply(sup *s, bus_rep_request *req, int status, const char *error, json_t *data) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    proto_header h = {.seq = ++s->seq, .ts_ns = wd_clock_real_ns()};
    snprintf(h.sender, sizeof h.sender, "warden");
    proto_ctl_reply rep = {.status = status};
    wd_utf8_copy(rep.error, sizeof rep.error, error);
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    rep.data = text ? text : "";
    rep.data_len = text ? strlen(text) : 0;
    if (status != 0)
        s->ctl_errors++;
    if (proto_ctl_reply_pack(&sb, &h, &rep) != 0) {
        /* The data was too large for one message: say so instead. */
        msgpack_sbuffer_clear(&sb);
        proto_ctl_reply small = {.status = WD_ETOOBIG};
        snprintf(small.error, sizeof small.error, "reply too large");
        proto_ctl_reply_pack(&sb, &h, &small);
    }
    bus_rep_reply(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    free(text);
    json_decref(data);
}

static void ctl_fail(ctl_ctx *x, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ctl_fail(ctl_ctx *x, int status, const char *fmt, ...) {
    char msg[2 * PROTO_ERROR_MAX]; /* cut to the wire bound at a character boundary */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctl_reply(x->s, x->req, status, msg, NULL);
}

static json_t *json_opt_seconds(bool have, double secs) {
    return have ? json_real(secs) : json_null();
}

/* A breaker's recent transitions, newest first, for the health worker's
 * /api/circuit-breakers/history. */
static json_t *ctl_brk_history(const brk_breaker *b, uint64_t now) {
    json_t *arr = json_array();
    const brk_transition *t;
    for (uint32_t i = 0; (t = brk_history_at(b, i)) != NULL; i++)
        json_array_append_new(arr, json_pack("{s:f,s:s,s:s,s:s}", "ago_s",
                                             (double)(now - t->at_ns) / 1e9, "from",
                                             brk_state_name(t->from), "to", brk_state_name(t->to),
                                             "reason", t->reason));
    return arr;
}

static json_t *ctl_worker_json(sup_child *c, uint64_t now) {
    char ts[WD_TIME_STR_MAX];
    json_t *w = json_object();
    json_object_set_new(w, "name", json_string(c->conf->name));
    json_object_set_new(w, "kind", json_string(c->conf->is_worker ? "worker" : "program"));
    json_object_set_new(w, "state", json_string(sup_state_name(c->state)));
    json_object_set_new(w, "desired", json_string(c->want_up ? "up" : "down"));
    json_object_set_new(w, "pid", c->pid ? json_integer(c->pid) : json_null());
    json_object_set_new(w, "uptime_s",
                        json_opt_seconds(c->pid != 0, (double)(now - c->spawn_ns) / 1e9));
    json_object_set_new(w, "restarts", json_integer(c->restarts));
    json_object_set_new(w, "last_exit", c->last_exit[0] ? json_string(c->last_exit) : json_null());
    if (c->last_exit_real_ns) {
        wd_clock_format(c->last_exit_real_ns, ts, sizeof ts);
        json_object_set_new(w, "last_exit_at", json_string(ts));
    } else {
        json_object_set_new(w, "last_exit_at", json_null());
    }
    json_object_set_new(w, "ready", json_boolean(c->ready));
    json_object_set_new(w, "required", json_boolean(c->conf->required));
    json_object_set_new(w, "reason", json_string(c->reason));
    json_object_set_new(w, "heartbeat_age_s",
                        json_opt_seconds(c->conf->is_worker && c->last_hb_ns && c->pid,
                                         (double)(now - c->last_hb_ns) / 1e9));
    json_object_set_new(w, "progress", json_integer((json_int_t)c->progress));
    json_object_set_new(w, "loop_lag_us", json_integer((json_int_t)c->loop_lag_us));
    json_object_set_new(w, "hb_rejected", json_integer((json_int_t)c->hb_rejected));
    uint64_t retry = brk_retry_in(&c->crash, now);
    json_t *crash = json_pack("{s:s,s:i,s:i,s:o,s:I,s:o}", "state", brk_state_name(c->crash.state),
                              "failures", (json_int_t)c->quick_failures, "opens",
                              (json_int_t)c->crash.total_opens, "retry_in_s",
                              json_opt_seconds(retry > 0, (double)retry / 1e9), "transitions",
                              (json_int_t)c->crash.history_len, "history", ctl_brk_history(&c->crash, now));
    const brk_transition *last = brk_history_at(&c->crash, 0);
    json_object_set_new(crash, "since_s",
                        json_opt_seconds(last != NULL, last ? (double)(now - last->at_ns) / 1e9 : 0));
    json_object_set_new(w, "breaker", crash);
    json_t *brks = json_array(), *metrics = json_object();
    if (c->hb && c->pid) {
        for (uint32_t i = 0; i < c->hb->n_breakers; i++)
            json_array_append_new(brks, json_pack("{s:s,s:s}", "name", c->hb->breakers[i].name,
                                                  "state",
                                                  proto_breaker_state_name(c->hb->breakers[i].state)));
        for (uint32_t i = 0; i < c->hb->n_metrics; i++)
            json_object_set_new(metrics, c->hb->metrics[i].name, json_real(c->hb->metrics[i].value));
    }
    json_object_set_new(w, "breakers", brks);
    json_object_set_new(w, "metrics", metrics);
    return w;
}

static void ctl_status(ctl_ctx *x) {
    sup *s = x->s;
    uint64_t now = wd_clock_mono_ns();
    json_t *workers = json_array();
    for (int i = 0; i < s->n_children; i++) {
        sup_child *c = s->children[i];
        if (x->r.target[0] && strcmp(x->r.target, c->conf->name) != 0)
            continue;
        json_array_append_new(workers, ctl_worker_json(c, now));
    }
    if (x->r.target[0] && json_array_size(workers) == 0) {
        json_decref(workers);
        ctl_fail(x, WD_ENOTFOUND, "no program named '%s'", x->r.target);
        return;
    }
    json_t *supj = json_pack(
        "{s:s,s:i,s:f,s:b,s:s,s:s,s:I,s:I,s:I}", "version", WARDEN_VERSION, "pid", (int)getpid(),
        "uptime_s", (double)(now - s->start_ns) / 1e9, "draining", s->draining, "config",
        s->config_path, "run_dir", s->conf->run_dir, "hb_rejected", (json_int_t)s->hb_rejected,
        "ctl_errors", (json_int_t)s->ctl_errors, "log_lines_dropped",
        (json_int_t)s->log_lines_dropped);
    /* Control requests served so far, this one included: lets the health
     * worker's benchmark check it costs at most one request per snapshot_ttl. */
    json_object_set_new(supj, "ctl_requests", json_integer((json_int_t)s->ctl_requests));
    ctl_reply(s, x->req, 0, NULL, json_pack("{s:o,s:o}", "supervisor", supj, "workers", workers));
}

/* Resolves NAME or "all" into a list; replies with an error and returns 0
 * when nothing matches. */
static int ctl_targets(ctl_ctx *x, sup_child **out) {
    sup *s = x->s;
    if (!x->r.target[0]) {
        ctl_fail(x, WD_EINVAL, "%s: missing program name (or 'all')", x->r.cmd);
        return 0;
    }
    int n = 0;
    /* A program a reload removed is only waiting for its exit: not a target. */
    for (int i = 0; i < s->n_children; i++)
        if (!s->children[i]->removing && (strcmp(x->r.target, "all") == 0 ||
                                          strcmp(x->r.target, s->children[i]->conf->name) == 0))
            out[n++] = s->children[i];
    if (n == 0)
        ctl_fail(x, WD_ENOTFOUND, "no program named '%s'", x->r.target);
    return n;
}

static void ctl_start_stop(ctl_ctx *x) {
    sup_child *list[WD_CONF_PROGRAMS_MAX];
    if (x->s->draining) {
        ctl_fail(x, WD_ESTATE, "warden is shutting down");
        return;
    }
    int n = ctl_targets(x, list);
    if (n == 0)
        return;
    json_t *names = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(names, json_string(list[i]->conf->name));
    sup_audit(x->s, x->r.cmd, x->r.target, proto_ctl_request_arg(&x->r, "reason"), x->peer_uid,
              x->peer_pid);
    /* Reply first: a stop may free nothing, but a dispatch can re-enter. */
    ctl_reply(x->s, x->req, 0, NULL, json_pack("{s:o}", "affected", names));
    for (int i = 0; i < n; i++) {
        sup_child *c = list[i];
        if (strcmp(x->r.cmd, "stop") == 0) {
            c->want_up = false;
            c->held_down = true;
            sup_fsm_dispatch(c, SUP_EV_DOWN);
        } else if (strcmp(x->r.cmd, "start") == 0) {
            c->want_up = true;
            c->held_down = false;
            sup_fsm_dispatch(c, c->state == SUP_BACKOFF ? SUP_EV_RESTART : SUP_EV_UP);
        } else {
            c->want_up = true;
            c->held_down = false;
            sup_fsm_dispatch(c, SUP_EV_RESTART);
        }
    }
}

static void ctl_signal(ctl_ctx *x) {
    sup_child *c = sup_child_find(x->s, x->r.target);
    const char *name = proto_ctl_request_arg(&x->r, "signal");
    int sig;
    if (!c) {
        ctl_fail(x, WD_ENOTFOUND, "no program named '%s'", x->r.target);
        return;
    }
    if (!name || wd_parse_signal(name, &sig) != 0) {
        ctl_fail(x, WD_EINVAL, "unknown signal '%s'", name ? name : "");
        return;
    }
    if (sup_child_signal(c, sig) != 0) {
        ctl_fail(x, WD_ESTATE, "%s has no running process", c->conf->name);
        return;
    }
    sup_audit(x->s, "signal", c->conf->name, wd_signal_name(sig), x->peer_uid, x->peer_pid);
    ctl_reply(x->s, x->req, 0, NULL,
              json_pack("{s:i,s:s}", "pid", (int)c->pid, "signal", wd_signal_name(sig)));
}

int sup_ctl_arg_u64(const proto_ctl_request *r, const char *key, uint64_t def, uint64_t *out,
                    char *err, size_t errlen) {
    const char *v = proto_ctl_request_arg(r, key);
    int64_t n;
    *out = def;
    if (!v)
        return 0;
    if (wd_parse_int(v, &n) != 0 || n < 0) {
        snprintf(err, errlen, "%s: bad number '%s' for '%s'", r->cmd, v, key);
        return WD_EINVAL;
    }
    *out = (uint64_t)n;
    return 0;
}

/* Parses an optional unsigned argument; replies and returns -1 when bad. */
static int ctl_arg_u64(ctl_ctx *x, const char *key, uint64_t def, uint64_t *out) {
    char err[2 * PROTO_ERROR_MAX];
    int rc = sup_ctl_arg_u64(&x->r, key, def, out, err, sizeof err);
    if (rc != 0) {
        ctl_fail(x, rc, "%s", err);
        return -1;
    }
    return 0;
}

/* A JSON string of captured output, which need not be UTF-8: invalid bytes
 * become '?' rather than failing the whole reply. */
static json_t *ctl_json_text(const char *text, size_t len) {
    json_t *j = json_stringn(text, len);
    if (j)
        return j;
    char *copy = malloc(len + 1);
    if (!copy)
        return json_string("");
    for (size_t i = 0; i < len; i++)
        copy[i] = (text[i] & 0x80) || text[i] == 0 ? '?' : text[i];
    j = json_stringn(copy, len);
    free(copy);
    return j ? j : json_string("");
}

static void ctl_logs(ctl_ctx *x) {
    sup_child *c = sup_child_find(x->s, x->r.target);
    uint64_t n, after;
    if (!c) {
        ctl_fail(x, WD_ENOTFOUND, "no program named '%s'", x->r.target);
        return;
    }
    if (ctl_arg_u64(x, "n", CTL_LOGS_DEFAULT, &n) || ctl_arg_u64(x, "after", 0, &after))
        return;
    const sup_logring *r = &c->ring;
    json_t *lines = json_array();
    /* Without `after`: the newest n lines. With it (following): the first n
     * lines after it, so a follower never skips any the ring still holds. */
    size_t first = 0;
    while (first < r->count && sup_logring_at(r, first)->seq <= after)
        first++;
    size_t end = r->count;
    if (end - first > n) {
        if (after)
            end = first + n;
        else
            first = end - n;
    }
    char ts[WD_TIME_STR_MAX];
    uint64_t oldest = r->count ? sup_logring_at(r, 0)->seq : r->next_seq;
    for (size_t i = first; i < end; i++) {
        const sup_logline *l = sup_logring_at(r, i);
        wd_clock_format(l->real_ns, ts, sizeof ts);
        json_t *line = ctl_json_text(l->text ? l->text : "", l->len);
        json_array_append_new(lines, json_pack("{s:I,s:s,s:s,s:i,s:o}", "seq", (json_int_t)l->seq,
                                               "ts", ts, "stream",
                                               l->stream == 1 ? "stdout" : "stderr", "pid", l->pid,
                                               "line", line));
    }
    uint64_t dropped = after && after + 1 < oldest ? oldest - after - 1 : 0;
    ctl_reply(x->s, x->req, 0, NULL,
              json_pack("{s:o,s:I,s:I}", "lines", lines, "next",
                        (json_int_t)(end > first ? sup_logring_at(r, end - 1)->seq
                                                 : (after > r->next_seq - 1 ? r->next_seq - 1 : after)),
                        "dropped", (json_int_t)dropped));
}

static void ctl_events(ctl_ctx *x) {
    sup *s = x->s;
    uint64_t n, after;
    if (ctl_arg_u64(x, "n", CTL_EVENTS_DEFAULT, &n) || ctl_arg_u64(x, "after", 0, &after))
        return;
    uint64_t lo = s->events_seq > SUP_EVENTS_RING ? s->events_seq - SUP_EVENTS_RING + 1 : 1;
    if (lo <= after)
        lo = after + 1;
    uint64_t hi = s->events_seq;
    if (hi >= lo && hi - lo + 1 > n) {
        if (after)
            hi = lo + n - 1; /* following: the oldest n not yet seen */
        else
            lo = hi - n + 1;
    }
    json_t *evs = json_array();
    char ts[WD_TIME_STR_MAX];
    for (uint64_t q = lo; q <= hi; q++) {
        const sup_event_rec *r = &s->events_ring[(q - 1) % SUP_EVENTS_RING];
        wd_clock_format(r->real_ns, ts, sizeof ts);
        json_array_append_new(
            evs, json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s}", "seq", (json_int_t)r->seq, "ts", ts,
                           "kind", r->ev.kind, "worker", r->ev.worker, "from", r->ev.from, "to",
                           r->ev.to, "reason", r->ev.reason));
    }
    ctl_reply(s, x->req, 0, NULL,
              json_pack("{s:o,s:I}", "events", evs, "next",
                        (json_int_t)(hi >= lo ? hi : (after < s->events_seq ? after : s->events_seq))));
}

static void ctl_reset(ctl_ctx *x) {
    sup_child *c = sup_child_find(x->s, x->r.target);
    const char *reason = proto_ctl_request_arg(&x->r, "reason");
    if (!c) {
        ctl_fail(x, WD_ENOTFOUND, "no program named '%s'", x->r.target);
        return;
    }
    if (!reason || !*reason) {
        ctl_fail(x, WD_EINVAL, "reset: a reason is required (it goes to the audit log)");
        return;
    }
    sup_audit(x->s, "reset", c->conf->name, reason, x->peer_uid, x->peer_pid);
    char why[PROTO_REASON_MAX + 1];
    snprintf(why, sizeof why, "reset by operator: %s", reason);
    brk_reset(&c->crash, wd_clock_mono_ns(), why);
    c->quick_failures = 0;
    ctl_reply(x->s, x->req, 0, NULL, json_pack("{s:s}", "breaker", brk_state_name(c->crash.state)));
    if (c->state == SUP_BACKOFF && c->want_up)
        sup_fsm_dispatch(c, SUP_EV_RESTART);
}

static void ctl_reload(ctl_ctx *x) {
    char err[PROTO_ERROR_MAX + 1];
    json_t *report = NULL;
    if (x->s->draining) {
        ctl_fail(x, WD_ESTATE, "warden is shutting down");
        return;
    }
    sup_audit(x->s, "reload", "", "", x->peer_uid, x->peer_pid);
    if (sup_reload(x->s, err, sizeof err, &report) != 0) {
        ctl_fail(x, WD_ECONFIG, "reload refused, config unchanged: %s", err);
        return;
    }
    ctl_reply(x->s, x->req, 0, NULL, report);
}

static void ctl_call_done(void *arg, int status, const void *buf, size_t len) {
    ctl_ctx *x = arg;
    if (status == 0) {
        bus_rep_reply(x->req, buf, len); /* the worker's reply, unchanged */
    } else {
        ctl_fail(x, status, "call %s: %s", x->r.target, wd_strerror(status));
    }
    free(x);
}

/* Forwards to the worker; returns 1 when x now belongs to the pending call. */
static int ctl_call(ctl_ctx *x) {
    sup_child *c = sup_child_find(x->s, x->r.target);
    const char *cmd = proto_ctl_request_arg(&x->r, "command");
    if (!c || !c->conf->is_worker) {
        ctl_fail(x, WD_ENOTFOUND, "no worker named '%s'", x->r.target);
        return 0;
    }
    if (!cmd || !*cmd) {
        ctl_fail(x, WD_EINVAL, "call: missing command");
        return 0;
    }
    if (!c->proc) {
        ctl_fail(x, WD_ESTATE, "%s is %s: no process to call", c->conf->name,
                 sup_state_name(c->state));
        return 0;
    }
    char err[256];
    if (!c->cmd && bus_req_dial(x->s->loop, c->cmd_url, &c->cmd, err, sizeof err) != 0) {
        ctl_fail(x, WD_EUNAVAIL, "call %s: %s", c->conf->name, err);
        return 0;
    }
    proto_ctl_request fwd;
    memset(&fwd, 0, sizeof fwd);
    snprintf(fwd.cmd, sizeof fwd.cmd, "%s", cmd);
    snprintf(fwd.target, sizeof fwd.target, "%s", c->conf->name);
    for (uint32_t i = 0; i < x->r.n_args; i++)
        if (strcmp(x->r.args[i].key, "command") != 0)
            fwd.args[fwd.n_args++] = x->r.args[i];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    proto_header h = {.seq = ++x->s->seq, .ts_ns = wd_clock_real_ns()};
    snprintf(h.sender, sizeof h.sender, "warden");
    int rc = proto_ctl_request_pack(&sb, &h, &fwd);
    if (rc == 0)
        rc = bus_req_send(c->cmd, sb.data, sb.size, CTL_CALL_TIMEOUT_MS, ctl_call_done, x);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) {
        ctl_fail(x, rc, "call %s: %s", c->conf->name, wd_strerror(rc));
        return 0;
    }
    return 1;
}

void sup_control_on_request(void *arg, bus_rep_request *req, const void *buf, size_t len,
                            uint64_t peer_uid, uint64_t peer_pid) {
    sup *s = arg;
    ctl_ctx *x = calloc(1, sizeof *x);
    char err[2 * PROTO_ERROR_MAX];
    s->ctl_requests++;
    if (!x) {
        ctl_reply(s, req, WD_ENOMEM, "out of memory", NULL);
        return;
    }
    *x = (ctl_ctx){.s = s, .req = req, .peer_uid = peer_uid, .peer_pid = peer_pid};
    /* Only the supervisor's own user or root may steer it, whatever the
     * socket file's mode says. */
    if (peer_uid != BUS_PEER_UNKNOWN && peer_uid != 0 && peer_uid != (uint64_t)getuid()) {
        ctl_fail(x, WD_EPERM, "permission denied for uid %llu", (unsigned long long)peer_uid);
        goto done;
    }
    int cmd = sup_ctl_parse(buf, len, &x->r, err, sizeof err);
    switch (cmd) {
    case CTL_PING:
        ctl_reply(s, req, 0, NULL,
                  json_pack("{s:b,s:i,s:s,s:f}", "pong", 1, "pid", (int)getpid(), "version",
                            WARDEN_VERSION, "uptime_s",
                            (double)(wd_clock_mono_ns() - s->start_ns) / 1e9));
        break;
    case CTL_VERSION:
        ctl_reply(s, req, 0, NULL, json_pack("{s:s}", "version", WARDEN_VERSION));
        break;
    case CTL_STATUS: ctl_status(x); break;
    case CTL_START:
    case CTL_STOP:
    case CTL_RESTART: ctl_start_stop(x); break;
    case CTL_SIGNAL: ctl_signal(x); break;
    case CTL_LOGS: ctl_logs(x); break;
    case CTL_EVENTS: ctl_events(x); break;
    case CTL_RESET: ctl_reset(x); break;
    case CTL_RELOAD: ctl_reload(x); break;
    case CTL_CALL:
        if (ctl_call(x))
            return;
        break;
    default: ctl_fail(x, cmd, "%s", err); break;
    }
done:
    free(x);
}
