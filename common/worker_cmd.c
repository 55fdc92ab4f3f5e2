/* Worker runtime, command socket: decodes CTL_REQUEST messages on the
 * worker's REP socket, answers the built-ins ("ping", "reload", and the
 * breaker commands of worker_brk.c), hands the
 * rest to ops->command, and encodes every answer as a CTL_REPLY. A malformed
 * request gets an error reply naming what was wrong; serving goes on. */
#include "clock.h"
#include "log.h"
#include "wd_error.h"
#include "worker_int.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WRK_NULL_JSON "null"
#define WRK_JSON_REAL_DIGITS 12 /* "1.010276356", not "1.0102763560000001" */
/* Room left for a prefix such as "malformed request: " in an error text. */
#define WRK_ERR_PREFIX_MAX 32

/* Encodes and sends one reply. data is borrowed. A reply that cannot be
 * encoded within PROTO_MSG_MAX is replaced by an error reply without data. */
static void cmd_reply(wrk_ctx *c, bus_rep_request *req, int status, const char *errtext,
                      json_t *data) {
    proto_ctl_reply rep = {.status = status};
    proto_header hdr;
    msgpack_sbuffer sb;
    char *text = NULL;
    if (status != 0) {
        c->command_errors_total++;
        if (errtext == NULL || errtext[0] == '\0')
            errtext = wd_strerror(status);
    }
    snprintf(rep.error, sizeof rep.error, "%s", errtext != NULL ? errtext : "");
    if (data != NULL)
        text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(WRK_JSON_REAL_DIGITS));
    rep.data = text != NULL ? text : WRK_NULL_JSON;
    rep.data_len = strlen(rep.data);
    msgpack_sbuffer_init(&sb);
    wrk_header(c, &hdr);
    int rc = proto_ctl_reply_pack(&sb, &hdr, &rep);
    if (rc == 0 && sb.size > PROTO_MSG_MAX)
        rc = WD_ETOOBIG;
    if (rc != 0) {
        msgpack_sbuffer_clear(&sb);
        rep.status = rc;
        snprintf(rep.error, sizeof rep.error, "reply could not be encoded: %s", wd_strerror(rc));
        rep.data = WRK_NULL_JSON;
        rep.data_len = strlen(WRK_NULL_JSON);
        proto_ctl_reply_pack(&sb, &hdr, &rep);
    }
    rc = bus_rep_reply(req, sb.data, sb.size);
    if (rc != 0)
        wd_warn("command reply not sent: %s", wd_strerror(rc));
    msgpack_sbuffer_destroy(&sb);
    free(text);
}

static json_t *cmd_ping_data(wrk_ctx *c) {
    double uptime = (double)(wd_clock_mono_ns() - c->start_mono_ns) / (double)WD_NS_PER_SEC;
    return json_pack("{s:b, s:I, s:s, s:b, s:f}", "pong", 1, "pid", (json_int_t)getpid(), "name",
                     c->name, "ready", c->ready, "uptime_s", uptime);
}

static void cmd_dispatch(wrk_ctx *c, bus_rep_request *req, const proto_ctl_request *creq) {
    char err[PROTO_ERROR_MAX + 1] = "";
    json_t *data = NULL;
    int rc;
    if (strcmp(creq->cmd, "ping") == 0) {
        data = cmd_ping_data(c);
        rc = 0;
    } else if (strcmp(creq->cmd, "reload") == 0) {
        rc = wrk_reload(c, "command");
        if (rc == 0)
            data = json_pack("{s:b}", "reloaded", c->ops->reload != NULL);
        else
            snprintf(err, sizeof err, "reload failed: %s", wd_strerror(rc));
    } else if (wrk_brk_command(c, creq, &data, &rc, err, sizeof err) == 0) {
        /* a built-in breaker command (worker_brk.c) */
    } else if (c->ops->command != NULL) {
        c->in_command = true;
        c->cur_req = req;
        c->cur_deferred = false;
        rc = c->ops->command(c, creq, &data, err, sizeof err);
        c->in_command = false;
        c->cur_req = NULL;
        if (c->cur_deferred) {
            /* The worker answers (or has answered) through wrk_command_finish(). */
            json_decref(data);
            return;
        }
        if (rc > 0)
            rc = WD_EIO; /* the contract is 0 or a negative wd_errno */
    } else {
        rc = WD_ENOTFOUND;
        snprintf(err, sizeof err, "unknown command '%s'", creq->cmd);
    }
    cmd_reply(c, req, rc, err, rc == 0 ? data : NULL);
    json_decref(data);
}

static void cmd_on_request(void *arg, bus_rep_request *req, const void *buf, size_t len,
                           uint64_t peer_uid, uint64_t peer_pid) {
    wrk_ctx *c = arg;
    proto_envelope env;
    char perr[PROTO_ERROR_MAX + 1 - WRK_ERR_PREFIX_MAX] = "";
    char err[PROTO_ERROR_MAX + 1];
    int rc;
    (void)peer_pid;
    c->commands_total++;
    /* The socket file is 0600 already; this also covers tcp:// peers that
     * report no uid (those pass) and a loosened mode. */
    if (peer_uid != BUS_PEER_UNKNOWN && peer_uid != 0 && peer_uid != (uint64_t)getuid()) {
        snprintf(err, sizeof err, "permission denied for uid %llu", (unsigned long long)peer_uid);
        cmd_reply(c, req, WD_EPERM, err, NULL);
        return;
    }
    if ((rc = proto_envelope_unpack(buf, len, &env, perr, sizeof perr)) != 0) {
        snprintf(err, sizeof err, "malformed request: %s", perr);
        cmd_reply(c, req, rc, err, NULL);
        return;
    }
    if (env.type != PROTO_T_CTL_REQUEST) {
        snprintf(err, sizeof err, "malformed request: expected a CTL_REQUEST (type %d), got type %d",
                 (int)PROTO_T_CTL_REQUEST, (int)env.type);
        cmd_reply(c, req, WD_EPROTO, err, NULL);
        return;
    }
    memset(&c->cmd_req, 0, sizeof c->cmd_req);
    if ((rc = proto_ctl_request_unpack(&env, &c->cmd_req, perr, sizeof perr)) != 0) {
        snprintf(err, sizeof err, "malformed request: %s", perr);
        cmd_reply(c, req, rc, err, NULL);
        return;
    }
    wd_debug("command '%s' from %s", c->cmd_req.cmd, env.hdr.sender);
    cmd_dispatch(c, req, &c->cmd_req);
}

int wrk_cmd_open(wrk_ctx *c) {
    char err[PROTO_ERROR_MAX + 1] = "";
    int rc = bus_rep_open(&c->loop, c->cmd_url, WRK_CMD_MODE, cmd_on_request, c, &c->cmd, err,
                          sizeof err);
    if (rc != 0)
        wd_error("command socket: %s (%s)", err, wd_strerror(rc));
    return rc;
}

void wrk_cmd_close(wrk_ctx *c) {
    if (c->cmd == NULL)
        return;
    bus_rep_close(c->cmd);
    c->cmd = NULL;
    for (wrk_pending *p = c->pending; p != NULL; p = p->next)
        p->req = NULL;
}

void wrk_cmd_free_pending(wrk_ctx *c) {
    while (c->pending != NULL) {
        wrk_pending *p = c->pending;
        c->pending = p->next;
        free(p);
    }
}

wrk_pending *wrk_command_defer(wrk_ctx *c) {
    /* One deferral per command: a second handle would answer twice. */
    if (c == NULL || !c->in_command || c->cur_deferred)
        return NULL;
    wrk_pending *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->ctx = c;
    p->req = c->cur_req;
    p->next = c->pending;
    if (c->pending != NULL)
        c->pending->prev = p;
    c->pending = p;
    c->cur_deferred = true;
    return p;
}

void wrk_command_finish(wrk_pending *p, int status, json_t *data, const char *err) {
    if (p == NULL) {
        json_decref(data);
        return;
    }
    wrk_ctx *c = p->ctx;
    if (p->req != NULL)
        cmd_reply(c, p->req, status > 0 ? WD_EIO : status, err, status == 0 ? data : NULL);
    json_decref(data);
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        c->pending = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    free(p);
}
