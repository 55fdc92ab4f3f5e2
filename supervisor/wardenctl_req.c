/* wardenctl's side of the control protocol: requests built from checked user
 * text, one round trip to warden (bus_call_sync, no event loop), and the
 * failures every command reports in the same words: not running, an error
 * reply, a malformed reply. */
#include "bus.h"
#include "clock.h"
#include "wardenctl.h"
#include "wd_error.h"
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wctl_check_text(const char *s, size_t max, bool allow_empty) {
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

int wctl_check_name(const wctl *c, const char *what, const char *s) {
    int rc = wctl_check_text(s, PROTO_NAME_MAX, false);
    if (rc == WD_ETOOBIG)
        return wctl_usage_err(c, "%s '%.40s...' is longer than %d bytes", what, s, PROTO_NAME_MAX);
    if (rc != 0)
        return wctl_usage_err(c, "%s must be non-empty printable text", what);
    return 0;
}

void wctl_req_init(proto_ctl_request *req, const char *cmd, const char *target) {
    memset(req, 0, sizeof *req);
    snprintf(req->cmd, sizeof req->cmd, "%s", cmd);
    snprintf(req->target, sizeof req->target, "%s", target != NULL ? target : "");
}

/* Callers check user text first, so a failure here is a bound we set ourselves. */
int wctl_req_arg(proto_ctl_request *req, const char *key, const char *val) {
    if (req->n_args >= PROTO_ARGS_MAX || strlen(key) > PROTO_ARG_KEY_MAX ||
        strlen(val) > PROTO_ARG_VAL_MAX)
        return WD_ETOOBIG;
    proto_arg *a = &req->args[req->n_args++];
    snprintf(a->key, sizeof a->key, "%s", key);
    snprintf(a->val, sizeof a->val, "%s", val);
    return 0;
}

int wctl_req_arg_u64(proto_ctl_request *req, const char *key, uint64_t v) {
    char buf[WCTL_SMALL_MAX];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return wctl_req_arg(req, key, buf);
}

static void not_running(const wctl *c, int rc) {
    if (rc == WD_ETIMEDOUT)
        fprintf(stderr, "wardenctl: warden is not answering (no reply on %s within %llu ms)\n",
                c->url, (unsigned long long)c->timeout_ms);
    else
        fprintf(stderr, "wardenctl: warden is not running (no answer on %s)\n", c->url);
}

/* Sends req and reads the reply into *r (r->data owned by the caller).
 * Returns 0 when a well-formed reply arrived, whatever its status; otherwise
 * a negative error, with a one-line explanation in err. Nothing is printed. */
int wctl_call(wctl *c, const proto_ctl_request *req, wctl_reply *r, char *err, size_t errlen) {
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
        snprintf(err, errlen, "warden is %s", rc == WD_EUNAVAIL ? "not running" : "not answering");
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

void wctl_reply_error(const wctl *c, const wctl_reply *r) {
    fprintf(stderr, "wardenctl: %s: %s\n", c->cmd->name,
            r->error[0] != '\0' ? r->error : wd_strerror(r->status));
}

/* wctl_call that prints any failure and returns an exit code. On WCTL_OK r
 * holds the reply (r->data owned by the caller); its status is 0 unless
 * keep_error asked for error replies too. */
int wctl_send(wctl *c, const proto_ctl_request *req, wctl_reply *r, bool keep_error) {
    char err[WCTL_ERR_MAX];
    int rc = wctl_call(c, req, r, err, sizeof err);
    if (rc == WD_EUNAVAIL || rc == WD_ETIMEDOUT) {
        not_running(c, rc);
        return WCTL_FAIL;
    }
    if (rc != 0) {
        fprintf(stderr, "wardenctl: %s: %s\n", c->cmd->name, err);
        return WCTL_FAIL;
    }
    if (r->status != 0 && !keep_error) {
        wctl_reply_error(c, r);
        json_decref(r->data);
        r->data = NULL;
        return WCTL_FAIL;
    }
    return WCTL_OK;
}

/* The common case: only the data of a successful reply matters. */
int wctl_do(wctl *c, const proto_ctl_request *req, json_t **data) {
    wctl_reply r;
    int rc = wctl_send(c, req, &r, false);
    *data = rc == WCTL_OK ? r.data : NULL;
    return rc;
}

/* A reply without what the command needs. */
int wctl_malformed(const wctl *c, const char *what) {
    fprintf(stderr, "wardenctl: %s: malformed reply from warden: %s\n", c->cmd->name, what);
    return WCTL_FAIL;
}
