/* Readiness from a supervisor status, and the probe texts of /livez and
 * /readyz in the Kubernetes style ("[+]name ok", "[-]name failed: reason").
 * Pure functions of their inputs: the unit tests feed them status JSON. */
#include "hl.h"
#include "wd_error.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HL_PROBE_LINE_MAX (HL_CHECK_NAME_MAX + HL_CHECK_REASON_MAX + 32)

static hl_check *add(hl_check *out, int max, int *n, bool ok, const char *fmt_name, ...)
    __attribute__((format(printf, 5, 6)));

static hl_check *add(hl_check *out, int max, int *n, bool ok, const char *fmt_name, ...) {
    if (*n >= max)
        return NULL;
    hl_check *c = &out[(*n)++];
    va_list ap;
    va_start(ap, fmt_name);
    vsnprintf(c->name, sizeof c->name, fmt_name, ap);
    va_end(ap);
    c->ok = ok;
    c->reason[0] = '\0';
    return c;
}

static const char *str(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

/* The worker's heartbeat sample "metric{breaker=\"name\"}", or -1. */
static double brk_sample(const json_t *metrics, const char *metric, const char *name) {
    char key[PROTO_METRIC_NAME_MAX + 1];
    int n = snprintf(key, sizeof key, "%s{breaker=\"%s\"}", metric, name);
    if (n < 0 || (size_t)n >= sizeof key)
        return -1;
    const json_t *v = json_object_get(metrics, key);
    return json_is_number(v) ? json_number_value(v) : -1;
}

static void eval_worker(const json_t *w, uint64_t max_age_ms, hl_check *out, int max, int *n) {
    const char *name = str(w, "name"), *state = str(w, "state");
    bool is_worker = strcmp(str(w, "kind"), "program") != 0;
    if (json_is_true(json_object_get(w, "required"))) {
        const json_t *age = json_object_get(w, "heartbeat_age_s");
        hl_check *c = add(out, max, n, false, "worker:%s", name);
        if (c == NULL)
            return;
        const char *why = str(w, "reason");
        if (strcmp(state, "RUNNING") != 0) {
            const json_t *brk = json_object_get(w, "breaker");
            const json_t *retry = json_object_get(brk, "retry_in_s");
            if (strcmp(str(brk, "state"), "open") == 0 && json_is_number(retry))
                snprintf(c->reason, sizeof c->reason,
                         "state %s, crash-loop breaker open (next start in %.1f s)%s%s", state,
                         json_number_value(retry), why[0] ? ": " : "", why);
            else
                snprintf(c->reason, sizeof c->reason, "state %s%s%s", state, why[0] ? ": " : "",
                         why);
        } else if (is_worker && !json_is_true(json_object_get(w, "ready"))) {
            snprintf(c->reason, sizeof c->reason, "running but not READY");
        } else if (is_worker && (!json_is_number(age) ||
                                 json_number_value(age) * 1000.0 > (double)max_age_ms)) {
            if (json_is_number(age))
                snprintf(c->reason, sizeof c->reason, "last heartbeat %.1f s ago (limit %.1f s)",
                         json_number_value(age), (double)max_age_ms / 1000.0);
            else
                snprintf(c->reason, sizeof c->reason, "no heartbeat yet");
        } else {
            c->ok = true;
        }
    }
    /* Critical breakers of the worker, from its heartbeat. */
    const json_t *brks = json_object_get(w, "breakers"), *metrics = json_object_get(w, "metrics");
    size_t i;
    const json_t *b;
    json_array_foreach(brks, i, b) {
        const char *bname = str(b, "name"), *bstate = str(b, "state");
        if (brk_sample(metrics, "wrk_breaker_critical", bname) != 1)
            continue;
        bool open = strcmp(bstate, "open") == 0 || strcmp(bstate, "forced_open") == 0;
        hl_check *c = add(out, max, n, !open, "breaker:%s:%s", name, bname);
        if (c == NULL || !open)
            continue;
        double retry = brk_sample(metrics, "wrk_breaker_retry_in_seconds", bname);
        if (retry > 0)
            snprintf(c->reason, sizeof c->reason,
                     "critical breaker %s of %s is %s (half-open in %.1f s)", bname, name, bstate,
                     retry);
        else
            snprintf(c->reason, sizeof c->reason, "critical breaker %s of %s is %s", bname, name,
                     bstate);
    }
}

int hl_checks_eval(const json_t *status, uint64_t max_age_ms, hl_check *out, int max) {
    int n = 0;
    const json_t *sup = json_object_get(status, "supervisor");
    const json_t *workers = json_object_get(status, "workers");
    const json_t *w;
    size_t i;
    hl_check *c = add(out, max, &n, true, "startup");
    /* Start-up is complete once no worker that should be up is still on its
     * first start (STARTING with no restart yet). */
    json_array_foreach(workers, i, w) {
        if (c != NULL && c->ok && strcmp(str(w, "desired"), "up") == 0 &&
            strcmp(str(w, "state"), "STARTING") == 0 &&
            json_integer_value(json_object_get(w, "restarts")) == 0) {
            c->ok = false;
            snprintf(c->reason, sizeof c->reason, "%s is still starting", str(w, "name"));
        }
    }
    c = add(out, max, &n, !json_is_true(json_object_get(sup, "draining")), "draining");
    if (c != NULL && !c->ok)
        snprintf(c->reason, sizeof c->reason, "warden is shutting down");
    json_array_foreach(workers, i, w)
        eval_worker(w, max_age_ms, out, max, &n);
    return n;
}

bool hl_check_matches(const char *c, const char *f) {
    if (strcmp(c, f) == 0)
        return true;
    const char *colon = strchr(c, ':');
    return colon != NULL && strcmp(colon + 1, f) == 0;
}

static bool excluded(const hl_route *r, const char *name) {
    for (int i = 0; r != NULL && i < r->n_exclude; i++)
        if (hl_check_matches(name, r->exclude[i]))
            return true;
    return false;
}

/* A growing text buffer; on allocation failure it stays NULL. */
typedef struct {
    char *p;
    size_t len, cap;
    bool failed;
} hl_buf;

static void buf_add(hl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_add(hl_buf *b, const char *fmt, ...) {
    char line[HL_PROBE_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || b->failed)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, line, len);
    b->len += len;
    b->p[b->len] = '\0';
}

int hl_probe_text(const char *probe, const hl_check *checks, int n, const hl_route *r,
                  char **body, size_t *len) {
    hl_buf b = {0};
    int code = 200;
    bool verbose = r != NULL && r->verbose;
    if (r != NULL && r->check[0] != '\0') {
        /* /readyz/NAME: that one check only. */
        const hl_check *c = NULL;
        for (int i = 0; i < n && c == NULL; i++)
            if (hl_check_matches(checks[i].name, r->check))
                c = &checks[i];
        if (c == NULL) {
            buf_add(&b, "%s: no check named '%s'\n", probe, r->check);
            code = 404;
        } else if (c->ok) {
            if (verbose)
                buf_add(&b, "[+]%s ok\n", c->name);
            else
                buf_add(&b, "ok\n");
        } else {
            buf_add(&b, "[-]%s failed: %s\n", c->name, c->reason);
            code = 503;
        }
    } else {
        for (int i = 0; i < n; i++) {
            const hl_check *c = &checks[i];
            if (excluded(r, c->name)) {
                if (verbose)
                    buf_add(&b, "[+]%s excluded: %s\n", c->name, c->ok ? "ok" : "failed");
                continue;
            }
            if (!c->ok) {
                code = 503;
                buf_add(&b, "[-]%s failed: %s\n", c->name, c->reason);
            } else if (verbose) {
                buf_add(&b, "[+]%s ok\n", c->name);
            }
        }
        if (code != 200)
            buf_add(&b, "%s check failed\n", probe);
        else if (verbose)
            buf_add(&b, "%s check passed\n", probe);
        else
            buf_add(&b, "ok\n");
    }
    if (b.failed || b.p == NULL) {
        free(b.p);
        *body = NULL;
        *len = 0;
        return WD_ENOMEM;
    }
    *body = b.p;
    *len = b.len;
    return code;
}
