/* The mutating endpoints: POST /api/workers/NAME/restart and
 * POST /api/circuit-breakers/WORKER/BREAKER/reset. An HTTP thread queues the
 * request (hl_api_submit) and wakes the loop, which sends the control
 * request and answers the HTTP request from the reply's callback: no thread
 * ever blocks on the supervisor. Every reset attempt, refused or not, is
 * appended to the supervisor's audit log (run_dir/audit.log) with the
 * client's address, the reason and the time. The bearer token is compared
 * in constant time and never logged. */
#include "hl.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HL_OP_TIMEOUT_MS 5000 /* above the supervisor's 3 s `call` timeout */
#define HL_AUDIT_MODE 0600

struct hl_op {
    hl_op *next;
    void *aio;
    hl_route r;
    char client[HL_ADDR_MAX];
};

bool hl_api_authorized(const hl *h, const char *auth) {
    static const char prefix[] = "Bearer ";
    if (auth == NULL || strncmp(auth, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *tok = auth + sizeof prefix - 1;
    size_t n = strlen(tok);
    /* Constant time over the stored token's length: the comparison does not
     * stop at the first differing byte. */
    unsigned char diff = n != h->token_len;
    for (size_t i = 0; i < h->token_len; i++)
        diff |= (unsigned char)(h->token[i] ^ (i < n ? tok[i] : 0));
    return diff == 0;
}

int hl_api_http_status(int st) {
    switch (st) {
    case 0:
        return 200;
    case WD_EINVAL:
    case WD_ERANGE:
        return 400;
    case WD_EPERM:
        return 403;
    case WD_ENOTFOUND:
        return 404;
    case WD_ESTATE:
    case WD_EEXIST:
        return 409;
    case WD_ETIMEDOUT:
        return 504;
    case WD_EUNAVAIL:
    case WD_ECLOSED:
        return 503;
    default:
        return 502;
    }
}

void hl_api_submit(hl *h, void *aio, const hl_route *r, const char *client) {
    hl_op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        hl_http_reply_error(aio, 500, "out of memory");
        return;
    }
    op->aio = aio;
    op->r = *r;
    snprintf(op->client, sizeof op->client, "%s", client);
    pthread_mutex_lock(&h->sh.mu);
    bool closing = h->sh.closing;
    if (!closing) {
        if (h->sh.ops_tail != NULL)
            h->sh.ops_tail->next = op;
        else
            h->sh.ops_head = op;
        h->sh.ops_tail = op;
    }
    pthread_mutex_unlock(&h->sh.mu);
    if (closing) {
        free(op);
        hl_http_reply_error(aio, 503, "the health worker is stopping");
        return;
    }
    uv_async_send(&h->ops_async);
}

/* Appends one JSON line to run_dir/audit.log (the supervisor's; O_APPEND
 * keeps whole lines from both writers). */
static void audit(hl *h, const hl_op *op, int http_status, const char *outcome) {
    char ts[WD_TIME_STR_MAX];
    wd_clock_format(wd_clock_real_ns(), ts, sizeof ts);
    json_t *rec = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:i,s:s,s:s}", "ts", ts, "action",
                            op->r.id == HL_R_RESET ? "breaker-reset" : "restart", "worker",
                            op->r.worker, "breaker", op->r.breaker, "reason", op->r.reason,
                            "client", op->client, "override", op->r.override, "http_status",
                            http_status, "outcome", outcome, "via", "http");
    char *line = rec != NULL ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    if (line == NULL)
        return;
    wd_info("audit: %s", line);
    int fd = open(h->audit_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, HL_AUDIT_MODE);
    if (fd >= 0) {
        size_t n = strlen(line);
        line[n] = '\n';
        if (write(fd, line, n + 1) != (ssize_t)(n + 1))
            wd_warn("audit log %s: short write", h->audit_path);
        close(fd);
    } else {
        wd_warn("audit log %s: cannot open", h->audit_path);
    }
    free(line);
}

static void on_reply(hl *h, void *arg, int status, const char *error, json_t *data) {
    hl_op *op = arg;
    int code = hl_api_http_status(status);
    if (op->r.id == HL_R_RESET)
        audit(h, op, code, status == 0 ? "reset" : error);
    if (status == 0) {
        json_t *body = json_pack("{s:b,s:s,s:O*}", "ok", 1, "worker", op->r.worker, "result", data);
        if (op->r.id == HL_R_RESET)
            json_object_set_new(body, "breaker", json_string(op->r.breaker));
        hl_http_reply_json(op->aio, 200, body);
    } else {
        hl_http_reply_error(op->aio, code, error);
    }
    free(op);
}

static void run_op(hl *h, hl_op *op) {
    proto_ctl_request req;
    memset(&req, 0, sizeof req);
    snprintf(req.target, sizeof req.target, "%s", op->r.worker);
#define ARG(k, v)                                                                                  \
    do {                                                                                           \
        snprintf(req.args[req.n_args].key, sizeof req.args[0].key, "%s", k);                      \
        snprintf(req.args[req.n_args].val, sizeof req.args[0].val, "%s", v);                      \
        req.n_args++;                                                                              \
    } while (0)
    char why[PROTO_ARG_VAL_MAX + 1];
    snprintf(why, sizeof why, "%s (via HTTP from %s)", op->r.reason[0] ? op->r.reason : "restart",
             op->client);
    if (op->r.id == HL_R_RESTART) {
        snprintf(req.cmd, sizeof req.cmd, "restart");
        ARG("reason", why);
    } else if (strcmp(op->r.breaker, "crash_loop") == 0) {
        /* The supervisor's own crash-loop breaker of the worker: the same
         * safety rules as a worker's breaker, checked here on the snapshot. */
        const json_t *w = NULL, *x;
        size_t i;
        json_array_foreach(json_object_get(h->last_status, "workers"), i, x)
            if (json_is_string(json_object_get(x, "name")) &&
                strcmp(json_string_value(json_object_get(x, "name")), op->r.worker) == 0)
                w = x;
        const json_t *brk = json_object_get(w, "breaker");
        const char *state = json_string_value(json_object_get(brk, "state"));
        double since = json_number_value(json_object_get(brk, "since_s"));
        char msg[256];
        int code = 0;
        if (w == NULL) {
            snprintf(msg, sizeof msg, "no worker named '%s'", op->r.worker);
            code = 404;
        } else if (state == NULL || strcmp(state, "closed") == 0) {
            snprintf(msg, sizeof msg, "breaker 'crash_loop' of %s is %s, not open: nothing to reset",
                     op->r.worker, state ? state : "unknown");
            code = 409;
        } else if (!op->r.override && since * 1000.0 < (double)h->conf.reset_min_open_ms) {
            snprintf(msg, sizeof msg,
                     "breaker 'crash_loop' of %s opened %.1f s ago, less than %.1f s: the failure "
                     "is recent; pass override=true to reset anyway",
                     op->r.worker, since, (double)h->conf.reset_min_open_ms / 1000.0);
            code = 409;
        }
        if (code != 0) {
            audit(h, op, code, msg);
            hl_http_reply_error(op->aio, code, msg);
            free(op);
            return;
        }
        snprintf(req.cmd, sizeof req.cmd, "reset");
        ARG("reason", why);
    } else {
        char min_open[32];
        snprintf(req.cmd, sizeof req.cmd, "call");
        snprintf(min_open, sizeof min_open, "%llu", (unsigned long long)h->conf.reset_min_open_ms);
        ARG("command", "breaker-reset");
        ARG("name", op->r.breaker);
        ARG("reason", why);
        ARG("override", op->r.override ? "true" : "false");
        ARG("min_open_ms", min_open);
    }
#undef ARG
    int rc = hl_ctl_send(h, &req, HL_OP_TIMEOUT_MS, on_reply, op);
    if (rc != 0)
        on_reply(h, op, rc, wd_strerror(rc), NULL);
}

void hl_api_on_async(uv_async_t *a) {
    hl *h = a->data;
    for (;;) {
        pthread_mutex_lock(&h->sh.mu);
        hl_op *op = h->sh.ops_head;
        if (op != NULL) {
            h->sh.ops_head = op->next;
            if (h->sh.ops_head == NULL)
                h->sh.ops_tail = NULL;
        }
        pthread_mutex_unlock(&h->sh.mu);
        if (op == NULL)
            return;
        if (h->stopping) {
            hl_http_reply_error(op->aio, 503, "the health worker is stopping");
            free(op);
        } else {
            run_op(h, op);
        }
    }
}

void hl_api_drain(hl *h) {
    pthread_mutex_lock(&h->sh.mu);
    hl_op *op = h->sh.ops_head;
    h->sh.ops_head = h->sh.ops_tail = NULL;
    pthread_mutex_unlock(&h->sh.mu);
    while (op != NULL) {
        hl_op *next = op->next;
        hl_http_reply_error(op->aio, 503, "the health worker is stopping");
        free(op);
        op = next;
    }
}
