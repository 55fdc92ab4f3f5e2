/* wardenctl diagnose: one report an operator can act on.
 *
 * It asks warden for `status` and `events`, and each running worker for its
 * registered breakers (`call W breakers`), then judges what it read:
 *
 *   down (exit 2)      warden does not answer, is shutting down, or a
 *                      required worker is not running (BACKOFF, FATAL,
 *                      UNRESPONSIVE, restarting, or stopped by hand): the
 *                      service cannot do its job.
 *   degraded (exit 1)  everything required runs, but something is wrong: a
 *                      breaker open, half-open or forced open, a client not
 *                      connected, a worker not READY or still starting, an
 *                      optional worker not running.
 *   healthy (exit 0)   none of that. Past restarts alone are noted (info)
 *                      but do not change the verdict: the worker is back.
 *
 * Connectivity is read generically, as the workers see it: every breaker is
 * a guard on one dependency, named by the first word of the breaker's name
 * ("redis-sink" guards redis), and every heartbeat gauge
 * warden_<dep>_connection_state{...,state=S} (or _breaker_state) with value
 * 1 says which state a client of <dep> is in. Where the dependency's address
 * is in warden's config, the recommendation names it (wardenctl_dtarget.c).
 *
 * The whole report is built as JSON first (that is --json); the text report
 * is rendered from it (wardenctl_dreport.c), so both always agree. */
#include "clock.h"
#include "wardenctl.h"
#include "wd_error.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A worker that does not answer `breakers` in this time is reported, not
 * waited for: a hung worker must not stall the report. */
#define DG_CALL_TIMEOUT_MS 2000u
#define DG_EVENTS_N 200u
#define DG_RESTARTS_MAX 20u
#define DG_TEXT_MAX 768
#define DG_DEP_MAX 64

enum { SEV_INFO, SEV_DEGRADED, SEV_DOWN };
static const char *const sev_names[] = {"info", "degraded", "down"};
static const char *const verdicts[] = {"healthy", "degraded", "down"};

typedef struct {
    wctl *c;
    json_t *report, *findings, *workers, *breakers, *conn, *restarts;
    int verdict;
    wctl_targets *targets;
} dg;

/* ---- small helpers ---- */

static const char *dur(double s, char *buf, size_t len) {
    json_t *v = json_real(s);
    wctl_fmt_dur(v, buf, len);
    json_decref(v);
    return buf;
}

static void finding(dg *d, int sev, const char *worker, const char *subject, const char *rec,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void finding(dg *d, int sev, const char *worker, const char *subject, const char *rec,
                    const char *fmt, ...) {
    char msg[DG_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(d->findings,
                          json_pack("{s:s, s:s?, s:s, s:s, s:s?}", "severity", sev_names[sev],
                                    "worker", worker, "subject", subject, "message", msg,
                                    "recommendation", rec));
    if (sev == SEV_DEGRADED && d->verdict < 1)
        d->verdict = 1;
    if (sev == SEV_DOWN)
        d->verdict = 2;
}

/* "redis-sink" -> "redis", "pg.main" -> "postgresql": the first word,
 * lower-cased, with PostgreSQL's usual short names made one. */
static void dep_name(const char *s, size_t n, char *out, size_t len) {
    size_t i;
    for (i = 0; i < n && i + 1 < len && !strchr("-_.:", s[i]); i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[i] = '\0';
    if (strcmp(out, "pg") == 0 || strcmp(out, "postgres") == 0 || strcmp(out, "postgresql") == 0)
        snprintf(out, len, "postgresql");
}

/* " at 127.0.0.1:6379" or " (its address is not in warden's config)" */
static void target_text(dg *d, const char *worker, const char *dep, char *target, size_t tlen,
                        char *where, size_t wlen) {
    target[0] = '\0';
    if (wctl_target_find(d->targets, worker, dep, target, tlen) == 0)
        snprintf(where, wlen, " at %s", target);
    else
        snprintf(where, wlen, " (its address is not in warden's config)");
}

static void conn_row(dg *d, const char *worker, const char *dep, const char *client,
                     const char *source, const char *state, bool ok, const char *target) {
    json_array_append_new(d->conn, json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s?}", "worker",
                                             worker, "dependency", dep, "client", client, "source",
                                             source, "state", state, "ok", ok, "target",
                                             target[0] ? target : NULL));
}

/* ---- workers ---- */

static bool is_state(const char *s, const char *want) { return strcmp(s, want) == 0; }

static void judge_worker(dg *d, const json_t *w, json_t *row) {
    const char *name = wctl_sval(w, "name"), *state = wctl_sval(w, "state");
    const json_t *brk = json_object_get(w, "breaker");
    bool required = json_is_true(json_object_get(w, "required"));
    bool up = strcmp(wctl_sval(w, "desired"), "down") != 0;
    bool ready = json_is_true(json_object_get(w, "ready"));
    json_int_t restarts = json_integer_value(json_object_get(w, "restarts"));
    const char *last_exit = wctl_sval(w, "last_exit"), *reason = wctl_sval(w, "reason");
    char msg[DG_TEXT_MAX], rec[DG_TEXT_MAX], a[WCTL_SMALL_MAX], b[WCTL_SMALL_MAX];
    int sev = SEV_INFO;
    const char *health = "ok";
    msg[0] = rec[0] = '\0';

    if (is_state(state, "RUNNING") && ready) {
        snprintf(rec, sizeof rec, "read why it exited: wardenctl logs %s", name);
        if (restarts > 0)
            finding(d, SEV_INFO, name, "restarts", rec,
                    "%s restarted %lld time%s; last exit: %s at %s", name, (long long)restarts,
                    restarts == 1 ? "" : "s", last_exit, wctl_sval(w, "last_exit_at"));
    } else if (is_state(state, "RUNNING")) {
        sev = SEV_DEGRADED, health = "not_ready";
        snprintf(msg, sizeof msg, "%s is RUNNING but not READY%s%s", name,
                 reason[0] != '-' ? ": " : "", reason[0] != '-' ? reason : "");
        snprintf(rec, sizeof rec, "read its output: wardenctl logs %s", name);
    } else if (!up) {
        sev = required ? SEV_DOWN : SEV_INFO, health = "stopped";
        snprintf(msg, sizeof msg, "%s%s is %s: stopped by an operator (desired down)", name,
                 required ? " (required)" : "", state);
        snprintf(rec, sizeof rec, "start it when it should run: wardenctl start %s", name);
    } else if (is_state(state, "STARTING") && restarts == 0) {
        sev = SEV_DEGRADED, health = "starting";
        snprintf(msg, sizeof msg, "%s is still on its first start (waiting for READY)", name);
        snprintf(rec, sizeof rec, "if it stays STARTING, read wardenctl logs %s", name);
    } else {
        sev = required ? SEV_DOWN : SEV_DEGRADED, health = "not_running";
        const char *bst = wctl_sval(brk, "state");
        if (strcmp(bst, "open") == 0) {
            const json_t *h0 = json_array_get(json_object_get(brk, "history"), 0);
            wctl_fmt_dur(json_object_get(brk, "since_s"), a, sizeof a);
            wctl_fmt_dur(json_object_get(brk, "retry_in_s"), b, sizeof b);
            snprintf(msg, sizeof msg,
                     "%s%s is %s: crash-loop breaker open for %s after '%s' (last exit: %s); "
                     "next start in %s",
                     name, required ? " (required)" : "", state, a,
                     h0 ? wctl_sval(h0, "reason") : reason, last_exit, b);
            snprintf(rec, sizeof rec,
                     "read why it fails: wardenctl logs %s; fix the cause, then start it at "
                     "once: wardenctl reset %s --reason TEXT",
                     name, name);
        } else if (is_state(state, "FATAL")) {
            snprintf(msg, sizeof msg, "%s%s is FATAL: warden gave up on it (last exit: %s)", name,
                     required ? " (required)" : "", last_exit);
            snprintf(rec, sizeof rec, "read wardenctl logs %s, fix the cause, then wardenctl "
                     "start %s", name, name);
        } else if (is_state(state, "UNRESPONSIVE") ||
                   (is_state(state, "STOPPING") && strstr(reason, "heartbeat") != NULL)) {
            wctl_fmt_dur(json_object_get(w, "heartbeat_age_s"), a, sizeof a);
            snprintf(msg, sizeof msg, "%s%s is %s: no heartbeat for %s; warden restarts it", name,
                     required ? " (required)" : "", state, a);
            snprintf(rec, sizeof rec, "a hung loop: read wardenctl logs %s and its loop lag in "
                     "wardenctl status %s", name, name);
        } else {
            snprintf(msg, sizeof msg, "%s%s is %s after %lld restart%s (last exit: %s)%s%s", name,
                     required ? " (required)" : "", state, (long long)restarts,
                     restarts == 1 ? "" : "s", last_exit, reason[0] != '-' ? ": " : "",
                     reason[0] != '-' ? reason : "");
            snprintf(rec, sizeof rec, "read why it exits: wardenctl logs %s", name);
        }
    }
    if (msg[0] != '\0')
        finding(d, sev, name, "worker", rec, "%s", msg);
    json_object_set_new(row, "health", json_string(health));
}

static json_t *worker_row(const json_t *w) {
    static const char *const keys[] = {"name", "kind", "state", "desired", "required", "ready",
                                       "pid", "uptime_s", "restarts", "last_exit",
                                       "last_exit_at", "heartbeat_age_s", "reason", "progress",
                                       "loop_lag_us", NULL};
    json_t *row = json_object();
    for (int i = 0; keys[i] != NULL; i++) {
        json_t *v = json_object_get(w, keys[i]);
        json_object_set(row, keys[i], v != NULL ? v : json_null());
    }
    return row;
}

/* ---- breakers ---- */

static json_t *crash_loop_row(const json_t *w) {
    const json_t *brk = json_object_get(w, "breaker"), *h, *e;
    json_t *hist = json_array();
    size_t i;
    const char *st = wctl_sval(brk, "state");
    h = json_object_get(brk, "history");
    json_array_foreach(h, i, e) json_array_append_new(
        hist, json_pack("{s:O?, s:s, s:s, s:s}", "ago_s", json_object_get(e, "ago_s"), "from",
                        wctl_sval(e, "from"), "to", wctl_sval(e, "to"), "reason",
                        wctl_sval(e, "reason")));
    const json_t *h0 = json_array_get(h, 0);
    return json_pack("{s:s, s:s, s:s, s:s, s:n, s:O?, s:O?, s:O?, s:s?, s:o}", "worker",
                     wctl_sval(w, "name"), "breaker", "crash_loop", "owner", "supervisor",
                     "state", st, "critical", "opened_ago_s",
                     strcmp(st, "closed") != 0 ? json_object_get(brk, "since_s") : NULL,
                     "retry_in_s", json_object_get(brk, "retry_in_s"), "opens",
                     json_object_get(brk, "opens"), "last_reason",
                     h0 ? json_string_value(json_object_get(h0, "reason")) : NULL, "history",
                     hist);
}

/* A worker's breaker: its state from the heartbeat (hb), and its details
 * from `call W breakers` (full) when the worker answered. */
static json_t *worker_brk_row(const char *worker, const char *name, const json_t *hb,
                              const json_t *full) {
    json_t *hist = json_array(), *e;
    const char *last_reason = NULL;
    size_t i;
    json_array_foreach(json_object_get(full, "history"), i, e) {
        json_t *ago = json_object_get(e, "ago_ms");
        json_array_append_new(hist, json_pack("{s:o, s:s, s:s, s:s}", "ago_s",
                                              json_is_integer(ago)
                                                  ? json_real((double)json_integer_value(ago) / 1e3)
                                                  : json_null(),
                                              "from", wctl_sval(e, "from"), "to",
                                              wctl_sval(e, "to"), "reason", wctl_sval(e, "reason")));
        if (last_reason == NULL && strcmp(wctl_sval(e, "to"), "open") == 0)
            last_reason = json_string_value(json_object_get(e, "reason"));
    }
    /* The worker's answer is fresher than the last heartbeat. */
    const char *st = full ? wctl_sval(full, "state") : wctl_sval(hb, "state");
    const json_t *crit = json_object_get(full, "critical");
    return json_pack("{s:s, s:s, s:s, s:s, s:O?, s:O?, s:O?, s:O?, s:s?, s:o}", "worker", worker,
                     "breaker", name, "owner", "worker", "state", st, "critical",
                     json_is_boolean(crit) ? crit : NULL, "opened_ago_s",
                     json_object_get(full, "opened_ago_s"), "retry_in_s",
                     json_object_get(full, "retry_in_s"), "opens", json_object_get(full, "opens"),
                     "last_reason", last_reason, "history", hist);
}

static void judge_breaker(dg *d, const json_t *row) {
    const char *worker = wctl_sval(row, "worker"), *name = wctl_sval(row, "breaker");
    const char *st = wctl_sval(row, "state");
    char dep[DG_DEP_MAX], target[WCTL_URL_MAX], where[WCTL_URL_MAX + 64], rec[DG_TEXT_MAX];
    char ago[WCTL_SMALL_MAX], retry[WCTL_SMALL_MAX], after[DG_TEXT_MAX / 2] = "";
    bool ok = strcmp(st, "closed") == 0 || strcmp(st, "disabled") == 0;
    dep_name(name, strlen(name), dep, sizeof dep);
    target_text(d, worker, dep, target, sizeof target, where, sizeof where);
    conn_row(d, worker, dep, name, "breaker", st, ok, target);
    if (ok)
        return;
    bool critical = json_is_true(json_object_get(row, "critical"));
    const char *crit = critical ? " (critical: /readyz fails while it is open)" : "";
    const json_t *ago_v = json_object_get(row, "opened_ago_s");
    const char *reason = json_string_value(json_object_get(row, "last_reason"));
    if (json_is_number(ago_v))
        snprintf(after, sizeof after, " for %s", dur(json_number_value(ago_v), ago, sizeof ago));
    if (reason != NULL)
        snprintf(after + strlen(after), sizeof after - strlen(after), " after %.200s", reason);
    if (strcmp(st, "half_open") == 0) {
        snprintf(rec, sizeof rec, "trial calls to %s are going through; if it opens again, check "
                 "%s%s", dep, dep, where);
        finding(d, SEV_DEGRADED, worker, "breaker", rec, "breaker %s in %s half-open%s%s", name,
                worker, after, crit);
    } else if (strcmp(st, "forced_open") == 0) {
        snprintf(rec, sizeof rec, "it was forced open by hand; once %s%s is fine, close it: "
                 "wardenctl call %s breaker-reset name=%s reason=TEXT", dep, where, worker, name);
        finding(d, SEV_DEGRADED, worker, "breaker", rec, "breaker %s in %s forced open%s%s", name,
                worker, after, crit);
    } else {
        const json_t *r = json_object_get(row, "retry_in_s");
        snprintf(rec, sizeof rec, "check %s%s; the breaker retries on its own%s%s (history: "
                 "wardenctl call %s breakers)", dep, where, json_is_number(r) ? " in " : "",
                 json_is_number(r) ? dur(json_number_value(r), retry, sizeof retry) : "", worker);
        finding(d, SEV_DEGRADED, worker, "breaker", rec, "breaker %s in %s %s%s%s", name, worker,
                st, after, crit);
    }
}

/* `call W breakers`, bounded in time; NULL (and an info finding) when the
 * worker does not answer. */
static json_t *fetch_breakers(dg *d, const char *worker) {
    proto_ctl_request req;
    wctl_reply r;
    char err[WCTL_ERR_MAX];
    uint64_t saved = d->c->timeout_ms;
    wctl_req_init(&req, "call", worker);
    wctl_req_arg(&req, "command", "breakers");
    if (d->c->timeout_ms > DG_CALL_TIMEOUT_MS)
        d->c->timeout_ms = DG_CALL_TIMEOUT_MS;
    int rc = wctl_call(d->c, &req, &r, err, sizeof err);
    d->c->timeout_ms = saved;
    if (rc != 0) {
        finding(d, SEV_INFO, worker, "breakers", NULL, "could not read %s's breakers: %s", worker,
                err);
        return NULL;
    }
    json_t *arr = json_incref(json_object_get(r.data, "breakers"));
    if (r.status != 0 && strstr(r.error, "unknown command") == NULL)
        finding(d, SEV_INFO, worker, "breakers", NULL, "could not read %s's breakers: %s", worker,
                r.error[0] ? r.error : wd_strerror(r.status));
    json_decref(r.data);
    if (!json_is_array(arr)) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

static const json_t *by_name(const json_t *arr, const char *name) {
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) if (strcmp(wctl_sval(e, "name"), name) == 0) return e;
    return NULL;
}

static void worker_breakers(dg *d, const json_t *w) {
    const char *name = wctl_sval(w, "name");
    const json_t *hb = json_object_get(w, "breakers"), *e;
    json_t *full = NULL;
    size_t i;
    if (strcmp(wctl_sval(w, "kind"), "worker") == 0 && strcmp(wctl_sval(w, "state"), "RUNNING") == 0)
        full = fetch_breakers(d, name);
    json_array_foreach(hb, i, e) {
        json_t *row = worker_brk_row(name, wctl_sval(e, "name"), e, by_name(full, wctl_sval(e, "name")));
        judge_breaker(d, row);
        json_array_append_new(d->breakers, row);
    }
    /* Registered since the last heartbeat: known only from the call. */
    json_array_foreach(full, i, e) {
        if (by_name(hb, wctl_sval(e, "name")) != NULL)
            continue;
        json_t *row = worker_brk_row(name, wctl_sval(e, "name"), NULL, e);
        judge_breaker(d, row);
        json_array_append_new(d->breakers, row);
    }
    json_decref(full);
}

/* ---- connection gauges in the heartbeat metrics ---- */

/* The value of label key in `name{a="x",key="y"}`, copied to out. */
static bool label(const char *m, const char *key, char *out, size_t len) {
    char pat[DG_DEP_MAX];
    snprintf(pat, sizeof pat, "%s=\"", key);
    for (const char *p = strchr(m, '{'); p != NULL; p = strchr(p + 1, ',')) {
        if (strncmp(p + 1, pat, strlen(pat)) != 0)
            continue;
        const char *v = p + 1 + strlen(pat);
        size_t n = strcspn(v, "\"");
        snprintf(out, len, "%.*s", (int)n, v);
        return true;
    }
    return false;
}

static void worker_connections(dg *d, const json_t *w) {
    static const char *const families[] = {"_connection_state{", "_breaker_state{"};
    const char *name = wctl_sval(w, "name"), *key;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(w, "metrics"), key, v) {
        if (strncmp(key, "warden_", 7) != 0 || json_number_value(v) < 0.5)
            continue;
        for (int f = 0; f < 2; f++) {
            const char *fam = strstr(key, families[f]);
            char dep[DG_DEP_MAX], st[DG_DEP_MAX], client[PROTO_NAME_MAX + 1];
            char target[WCTL_URL_MAX], where[WCTL_URL_MAX + 64], rec[DG_TEXT_MAX];
            if (fam == NULL || fam <= key + 7 || !label(key, "state", st, sizeof st))
                continue;
            if (!label(key, "client", client, sizeof client) &&
                !label(key, "host", client, sizeof client) &&
                !label(key, "name", client, sizeof client))
                snprintf(client, sizeof client, "-");
            dep_name(key + 7, (size_t)(fam - key - 7), dep, sizeof dep);
            bool ok = f == 0 ? (strcmp(st, "ready") == 0 || strcmp(st, "connected") == 0 ||
                                strcmp(st, "up") == 0)
                             : (strcmp(st, "closed") == 0 || strcmp(st, "disabled") == 0);
            char source[DG_DEP_MAX + 32];
            snprintf(source, sizeof source, "metric:%.*s", (int)(strchr(key, '{') - key), key);
            target_text(d, name, dep, target, sizeof target, where, sizeof where);
            conn_row(d, name, dep, client, source, st, ok, target);
            if (ok)
                continue;
            snprintf(rec, sizeof rec, "check %s%s", dep, where);
            finding(d, SEV_DEGRADED, name, "connectivity", rec, "%s's %s %s %s is %s", name, dep,
                    f == 0 ? "connection" : "breaker", client, st);
        }
    }
}

/* ---- events: recent restarts ---- */

static double ts_age(const char *ts, uint64_t now_ns) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = 0;
    if (sscanf(ts, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) < 6)
        return -1.0;
    tm.tm_year -= 1900, tm.tm_mon -= 1;
    double t = (double)timegm(&tm) + ms / 1e3;
    return (double)now_ns / 1e9 - t;
}

static void recent_restarts(dg *d) {
    proto_ctl_request req;
    json_t *data = NULL, *e;
    wctl_reply r;
    char err[WCTL_ERR_MAX] = "";
    wctl_req_init(&req, "events", NULL);
    wctl_req_arg_u64(&req, "n", DG_EVENTS_N);
    if (wctl_call(d->c, &req, &r, err, sizeof err) != 0 || r.status != 0) {
        finding(d, SEV_INFO, NULL, "events", NULL, "could not read warden's events: %s",
                err[0] && r.status == 0 ? err : r.error);
        json_decref(r.data);
        return;
    }
    data = r.data;
    const json_t *evs = json_object_get(data, "events");
    uint64_t now = wd_clock_real_ns();
    for (size_t i = json_array_size(evs); i-- > 0 && json_array_size(d->restarts) < DG_RESTARTS_MAX;) {
        e = json_array_get(evs, i);
        const char *kind = wctl_sval(e, "kind");
        bool crash_loop = strcmp(kind, "breaker") == 0;
        if (strcmp(kind, "exit") != 0 && !crash_loop)
            continue;
        double age = ts_age(wctl_sval(e, "ts"), now);
        json_array_append_new(d->restarts,
                              json_pack("{s:s, s:s, s:s, s:s, s:o}", "ts", wctl_sval(e, "ts"),
                                        "worker", wctl_sval(e, "worker"), "kind", kind, "what",
                                        crash_loop ? "crash-loop breaker" : wctl_sval(e, "reason"),
                                        "ago_s", age >= 0 ? json_real(age) : json_null()));
        if (crash_loop) {
            json_t *last = json_array_get(d->restarts, json_array_size(d->restarts) - 1);
            char what[DG_TEXT_MAX];
            snprintf(what, sizeof what, "crash-loop breaker %s -> %s: %s", wctl_sval(e, "from"),
                     wctl_sval(e, "to"), wctl_sval(e, "reason"));
            json_object_set_new(last, "what", json_string(what));
        }
    }
    json_decref(data);
}

/* ---- the report ---- */

static void recommendations(dg *d) {
    json_t *recs = json_array(), *f;
    size_t i;
    /* Worst first: what takes the service down, then what degrades it. */
    for (int sev = SEV_DOWN; sev >= SEV_INFO; sev--)
        json_array_foreach(d->findings, i, f) {
            const char *rec = json_string_value(json_object_get(f, "recommendation"));
            if (rec != NULL && strcmp(wctl_sval(f, "severity"), sev_names[sev]) == 0)
                json_array_append_new(recs, json_sprintf("%s: %s", wctl_sval(f, "message"), rec));
        }
    json_object_set_new(d->report, "recommendations", recs);
}

static void finish(dg *d) {
    json_t *sorted = json_array(), *f;
    size_t i;
    for (int sev = SEV_DOWN; sev >= SEV_INFO; sev--)
        json_array_foreach(d->findings, i, f) if (strcmp(wctl_sval(f, "severity"),
                                                         sev_names[sev]) == 0)
            json_array_append(sorted, f);
    json_decref(d->findings);
    d->findings = sorted;
    json_object_set_new(d->report, "findings", sorted); /* the report owns it now */
    recommendations(d);
    json_object_set_new(d->report, "verdict", json_string(verdicts[d->verdict]));
    json_object_set_new(d->report, "exit_code", json_integer(d->verdict));
}

static void unreachable(dg *d, int rc, const char *err) {
    char why[WCTL_ERR_MAX + WCTL_URL_MAX], rec[DG_TEXT_MAX];
    if (rc == WD_ETIMEDOUT)
        snprintf(why, sizeof why, "warden is not answering (no reply on %s within %llu ms)",
                 d->c->url, (unsigned long long)d->c->timeout_ms);
    else if (rc == WD_EUNAVAIL)
        snprintf(why, sizeof why, "warden is not running (no answer on %s)", d->c->url);
    else
        snprintf(why, sizeof why, "%s", err);
    if (rc == WD_ETIMEDOUT)
        snprintf(rec, sizeof rec,
                 "its socket accepts connections but nothing answers: is warden stopped "
                 "(ps -o stat= -p PID shows T) or starved of CPU? kill -CONT it, or restart it");
    else
        snprintf(rec, sizeof rec,
                 "start warden (systemctl status warden, or kubectl get pods), or point wardenctl "
                 "at its socket with -s RUN_DIR/control.sock (WARDEN_SOCKET)");
    json_object_set_new(d->report, "supervisor",
                        json_pack("{s:b, s:s, s:s}", "reachable", 0, "url", d->c->url, "error", why));
    finding(d, SEV_DOWN, NULL, "supervisor", rec, "%s", why);
    fprintf(stderr, "wardenctl: %s\n", why);
}

int wctl_cmd_diagnose(wctl *c) {
    proto_ctl_request req;
    wctl_reply r;
    char err[WCTL_ERR_MAX] = "", ts[40];
    dg d = {.c = c};
    size_t i;
    json_t *w;
    d.report = json_object();
    d.findings = json_array(), d.workers = json_array(), d.breakers = json_array();
    d.conn = json_array(), d.restarts = json_array();
    wd_clock_format(wd_clock_real_ns(), ts, sizeof ts);
    json_object_set_new(d.report, "generated_at", json_string(ts));

    wctl_req_init(&req, "status", NULL);
    int rc = wctl_call(c, &req, &r, err, sizeof err);
    const json_t *sup = json_object_get(rc == 0 ? r.data : NULL, "supervisor");
    const json_t *workers = json_object_get(rc == 0 ? r.data : NULL, "workers");
    if (rc != 0 || r.status != 0 || !json_is_array(workers) || !json_is_object(sup)) {
        if (rc == 0 && r.status != 0)
            snprintf(err, sizeof err, "warden refused status: %s",
                     r.error[0] ? r.error : wd_strerror(r.status));
        else if (rc == 0)
            snprintf(err, sizeof err, "malformed reply from warden: no supervisor or workers");
        unreachable(&d, rc, err);
        if (rc == 0)
            json_decref(r.data);
    } else {
        json_t *s = json_pack("{s:b, s:s, s:O?, s:O?, s:O?, s:O?, s:O?}", "reachable", 1, "url",
                              c->url, "version", json_object_get(sup, "version"), "pid",
                              json_object_get(sup, "pid"), "uptime_s",
                              json_object_get(sup, "uptime_s"), "draining",
                              json_object_get(sup, "draining"), "config",
                              json_object_get(sup, "config"));
        json_object_set_new(d.report, "supervisor", s);
        if (json_is_true(json_object_get(sup, "draining")))
            finding(&d, SEV_DOWN, NULL, "supervisor", "wait for it to exit and start it again",
                    "warden is shutting down (draining)");
        d.targets = wctl_targets_load(json_string_value(json_object_get(sup, "config")),
                                      (long)json_integer_value(json_object_get(sup, "pid")));
        json_array_foreach(workers, i, w) {
            json_t *row = worker_row(w);
            judge_worker(&d, w, row);
            json_array_append_new(d.workers, row);
            json_array_append_new(d.breakers, crash_loop_row(w));
            worker_breakers(&d, w);
            worker_connections(&d, w);
        }
        if (json_array_size(workers) == 0)
            finding(&d, SEV_INFO, NULL, "workers", "add [worker:NAME] sections to the config",
                    "no workers are configured");
        json_decref(r.data);
        recent_restarts(&d);
        wctl_targets_free(d.targets);
    }
    json_object_set_new(d.report, "workers", d.workers);
    json_object_set_new(d.report, "breakers", d.breakers);
    json_object_set_new(d.report, "connectivity", d.conn);
    json_object_set_new(d.report, "restarts", d.restarts);
    finish(&d);
    int out = c->json ? wctl_print_json(d.report, WCTL_JSON_FLAGS) : wctl_diag_print(d.report);
    json_decref(d.report);
    /* A report that could not be written is no diagnosis. */
    return out != WCTL_OK ? WCTL_DIAG_DOWN : d.verdict;
}
