/* Control plane: requests and replies on control.sock and worker-NAME.sock,
 * and events on events.sock. */
#include "proto_internal.h"
#include "wd_error.h"

#include <string.h>

/* ---- control request ---- */

enum { RQ_CMD, RQ_TARGET, RQ_ARGS, RQ_NFIELDS };
static const char *const rq_fields[RQ_NFIELDS] = {"cmd", "target", "args"};
/* target and args may be left out: most commands take neither. */
#define RQ_REQUIRED (1u << RQ_CMD)

static int rq_args(const msgpack_object *o, proto_ctl_request *req, char *err, size_t errlen) {
    if (o->type != MSGPACK_OBJECT_MAP)
        return proto_fail(err, errlen, WD_EPROTO, "ctl_request: field 'args': expected map");
    const msgpack_object_map *m = &o->via.map;
    if (m->size > PROTO_ARGS_MAX)
        return proto_fail(err, errlen, WD_ETOOBIG,
                          "ctl_request: field 'args': more than %d entries", PROTO_ARGS_MAX);
    for (uint32_t i = 0; i < m->size; i++) {
        proto_arg *a = &req->args[i];
        int rc = proto_get_str(&m->ptr[i].key, a->key, PROTO_ARG_KEY_MAX, PROTO_STR_NAME, false,
                               "ctl_request", "args.key", err, errlen);
        if (rc != 0)
            return rc;
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(req->args[j].key, a->key) == 0)
                return proto_fail(err, errlen, WD_EINVAL,
                                  "ctl_request: field 'args': duplicate key '%s'", a->key);
        }
        rc = proto_get_str(&m->ptr[i].val, a->val, PROTO_ARG_VAL_MAX, PROTO_STR_TEXT, true,
                           "ctl_request", "args.value", err, errlen);
        if (rc != 0)
            return rc;
        req->n_args = i + 1;
    }
    return 0;
}

int proto_ctl_request_unpack(const proto_envelope *env, proto_ctl_request *req, char *err,
                             size_t errlen) {
    proto_body b;
    unsigned seen = 0, idx;
    int rc;
    if (!req)
        return proto_fail(err, errlen, WD_EINVAL, "ctl_request: no output");
    memset(req, 0, sizeof *req);
    rc = proto_body_open(&b, env, PROTO_T_CTL_REQUEST, "ctl_request", err, errlen);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < b.map->size; i++) {
        const msgpack_object *val = &b.map->ptr[i].val;
        rc = proto_body_field(&b, &b.map->ptr[i].key, rq_fields, RQ_NFIELDS, &seen, &idx, err,
                              errlen);
        if (rc != 0)
            goto fail;
        if (idx == RQ_CMD)
            rc = proto_get_str(val, req->cmd, PROTO_CMD_MAX, PROTO_STR_NAME, false,
                               "ctl_request", "cmd", err, errlen);
        else if (idx == RQ_TARGET)
            rc = proto_get_str(val, req->target, PROTO_NAME_MAX, PROTO_STR_NAME, true,
                               "ctl_request", "target", err, errlen);
        else if (idx == RQ_ARGS)
            rc = rq_args(val, req, err, errlen);
        if (rc != 0)
            goto fail;
    }
    rc = proto_body_require(&b, rq_fields, RQ_NFIELDS, RQ_REQUIRED, seen, err, errlen);
fail:
    proto_body_close(&b);
    return rc;
}

static int rq_check(const proto_ctl_request *req) {
    int rc = proto_check_fixed(req->cmd, PROTO_CMD_MAX, PROTO_STR_NAME, false, NULL);
    if (rc == 0)
        rc = proto_check_fixed(req->target, PROTO_NAME_MAX, PROTO_STR_NAME, true, NULL);
    if (rc == 0 && req->n_args > PROTO_ARGS_MAX)
        rc = WD_ETOOBIG;
    for (uint32_t i = 0; rc == 0 && i < req->n_args; i++) {
        rc = proto_check_fixed(req->args[i].key, PROTO_ARG_KEY_MAX, PROTO_STR_NAME, false, NULL);
        if (rc == 0)
            rc = proto_check_fixed(req->args[i].val, PROTO_ARG_VAL_MAX, PROTO_STR_TEXT, true,
                                   NULL);
        for (uint32_t j = 0; rc == 0 && j < i; j++)
            if (strcmp(req->args[j].key, req->args[i].key) == 0)
                rc = WD_EINVAL;
    }
    return rc;
}

int proto_ctl_request_pack(msgpack_sbuffer *out, const proto_header *hdr,
                           const proto_ctl_request *req) {
    msgpack_packer pk;
    size_t start;
    int rc;
    if (!out || !hdr || !req)
        return WD_EINVAL;
    rc = rq_check(req);
    if (rc != 0)
        return rc;
    start = out->size;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    rc = proto_pack_header(&pk, hdr, PROTO_T_CTL_REQUEST);
    if (rc != 0)
        goto fail;
    rc = WD_ENOMEM;
    if (msgpack_pack_map(&pk, RQ_NFIELDS) || proto_pack_cstr(&pk, "cmd") ||
        proto_pack_cstr(&pk, req->cmd) || proto_pack_cstr(&pk, "target") ||
        proto_pack_cstr(&pk, req->target) || proto_pack_cstr(&pk, "args") ||
        msgpack_pack_map(&pk, req->n_args))
        goto fail;
    for (uint32_t i = 0; i < req->n_args; i++) {
        if (proto_pack_cstr(&pk, req->args[i].key) || proto_pack_cstr(&pk, req->args[i].val))
            goto fail;
    }
    rc = 0;
fail:
    return proto_pack_finish(out, start, rc);
}

const char *proto_ctl_request_arg(const proto_ctl_request *req, const char *key) {
    if (!req || !key)
        return NULL;
    for (uint32_t i = 0; i < req->n_args && i < PROTO_ARGS_MAX; i++) {
        if (strcmp(req->args[i].key, key) == 0)
            return req->args[i].val;
    }
    return NULL;
}

/* ---- control reply ---- */

enum { RP_STATUS, RP_ERROR, RP_DATA, RP_NFIELDS };
static const char *const rp_fields[RP_NFIELDS] = {"status", "error", "data"};
#define RP_REQUIRED (1u << RP_STATUS)

static int rp_status(const msgpack_object *o, int32_t *out, char *err, size_t errlen) {
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        /* Success is exactly 0; positive values are not error codes. */
        if (o->via.u64 != 0)
            return proto_fail(err, errlen, WD_EINVAL,
                              "ctl_reply: field 'status': must be 0 or negative");
        *out = 0;
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return proto_fail(err, errlen, WD_EPROTO, "ctl_reply: field 'status': expected integer");
    if (o->via.i64 < INT32_MIN)
        return proto_fail(err, errlen, WD_EINVAL, "ctl_reply: field 'status': out of range");
    *out = (int32_t)o->via.i64;
    return 0;
}

int proto_ctl_reply_unpack(const proto_envelope *env, proto_ctl_reply *rep, char *err,
                           size_t errlen) {
    proto_body b;
    unsigned seen = 0, idx;
    int rc;
    if (!rep)
        return proto_fail(err, errlen, WD_EINVAL, "ctl_reply: no output");
    memset(rep, 0, sizeof *rep);
    rc = proto_body_open(&b, env, PROTO_T_CTL_REPLY, "ctl_reply", err, errlen);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < b.map->size; i++) {
        const msgpack_object *val = &b.map->ptr[i].val;
        rc = proto_body_field(&b, &b.map->ptr[i].key, rp_fields, RP_NFIELDS, &seen, &idx, err,
                              errlen);
        if (rc != 0)
            goto fail;
        if (idx == RP_STATUS) {
            rc = rp_status(val, &rep->status, err, errlen);
        } else if (idx == RP_ERROR) {
            rc = proto_get_str(val, rep->error, PROTO_ERROR_MAX, PROTO_STR_TEXT, true,
                               "ctl_reply", "error", err, errlen);
        } else if (idx == RP_DATA) {
            /* data is JSON text for the receiver's jansson, which checks it;
             * here it only has to be a string. msgpack-c's str points into the
             * body, which points into the caller's buffer. */
            if (val->type != MSGPACK_OBJECT_STR)
                rc = proto_fail(err, errlen, WD_EPROTO, "ctl_reply: field 'data': expected string");
            rep->data = val->type == MSGPACK_OBJECT_STR ? val->via.str.ptr : NULL;
            rep->data_len = val->type == MSGPACK_OBJECT_STR ? val->via.str.size : 0;
        }
        if (rc != 0)
            goto fail;
    }
    rc = proto_body_require(&b, rp_fields, RP_NFIELDS, RP_REQUIRED, seen, err, errlen);
fail:
    if (rc != 0)
        rep->data = NULL, rep->data_len = 0;
    proto_body_close(&b);
    return rc;
}

int proto_ctl_reply_pack(msgpack_sbuffer *out, const proto_header *hdr,
                         const proto_ctl_reply *rep) {
    msgpack_packer pk;
    size_t start;
    int rc;
    if (!out || !hdr || !rep || rep->status > 0 || (!rep->data && rep->data_len > 0))
        return WD_EINVAL;
    if (rep->data_len > PROTO_MSG_MAX)
        return WD_ETOOBIG;
    rc = proto_check_fixed(rep->error, PROTO_ERROR_MAX, PROTO_STR_TEXT, true, NULL);
    if (rc != 0)
        return rc;
    start = out->size;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    rc = proto_pack_header(&pk, hdr, PROTO_T_CTL_REPLY);
    if (rc == 0 && (msgpack_pack_map(&pk, RP_NFIELDS) || proto_pack_cstr(&pk, "status") ||
                    msgpack_pack_int32(&pk, rep->status) || proto_pack_cstr(&pk, "error") ||
                    proto_pack_cstr(&pk, rep->error) || proto_pack_cstr(&pk, "data") ||
                    proto_pack_bytes(&pk, rep->data, rep->data_len)))
        rc = WD_ENOMEM;
    return proto_pack_finish(out, start, rc);
}

/* ---- event ---- */

enum { EV_KIND, EV_WORKER, EV_FROM, EV_TO, EV_REASON, EV_NFIELDS };
static const char *const ev_fields[EV_NFIELDS] = {"kind", "worker", "from", "to", "reason"};
/* Only kind is required: audit and config events have no from/to, and
 * config events no worker. */
#define EV_REQUIRED (1u << EV_KIND)

static const char *const ev_kinds[] = {"state", "breaker", "exit", "audit", "config"};

static bool ev_kind_known(const char *kind) {
    for (size_t i = 0; i < sizeof ev_kinds / sizeof ev_kinds[0]; i++)
        if (strcmp(kind, ev_kinds[i]) == 0)
            return true;
    return false;
}

int proto_event_unpack(const proto_envelope *env, proto_event *ev, char *err, size_t errlen) {
    proto_body b;
    unsigned seen = 0, idx;
    int rc;
    if (!ev)
        return proto_fail(err, errlen, WD_EINVAL, "event: no output");
    memset(ev, 0, sizeof *ev);
    rc = proto_body_open(&b, env, PROTO_T_EVENT, "event", err, errlen);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < b.map->size; i++) {
        const msgpack_object *val = &b.map->ptr[i].val;
        rc = proto_body_field(&b, &b.map->ptr[i].key, ev_fields, EV_NFIELDS, &seen, &idx, err,
                              errlen);
        if (rc != 0)
            goto fail;
        switch (idx) {
        case EV_KIND:
            rc = proto_get_str(val, ev->kind, PROTO_STATE_MAX, PROTO_STR_NAME, false, "event",
                               "kind", err, errlen);
            if (rc == 0 && !ev_kind_known(ev->kind))
                rc = proto_fail(err, errlen, WD_EINVAL, "event: field 'kind': unknown kind '%s'",
                                ev->kind);
            break;
        case EV_WORKER:
            rc = proto_get_str(val, ev->worker, PROTO_NAME_MAX, PROTO_STR_NAME, true, "event",
                               "worker", err, errlen);
            break;
        case EV_FROM:
            rc = proto_get_str(val, ev->from, PROTO_STATE_MAX, PROTO_STR_NAME, true, "event",
                               "from", err, errlen);
            break;
        case EV_TO:
            rc = proto_get_str(val, ev->to, PROTO_STATE_MAX, PROTO_STR_NAME, true, "event", "to",
                               err, errlen);
            break;
        case EV_REASON:
            rc = proto_get_str(val, ev->reason, PROTO_REASON_MAX, PROTO_STR_TEXT, true, "event",
                               "reason", err, errlen);
            break;
        default:
            break;
        }
        if (rc != 0)
            goto fail;
    }
    rc = proto_body_require(&b, ev_fields, EV_NFIELDS, EV_REQUIRED, seen, err, errlen);
fail:
    proto_body_close(&b);
    return rc;
}

int proto_event_pack(msgpack_sbuffer *out, const proto_header *hdr, const proto_event *ev) {
    msgpack_packer pk;
    size_t start;
    int rc;
    if (!out || !hdr || !ev)
        return WD_EINVAL;
    rc = proto_check_fixed(ev->kind, PROTO_STATE_MAX, PROTO_STR_NAME, false, NULL);
    if (rc == 0 && !ev_kind_known(ev->kind))
        rc = WD_EINVAL;
    if (rc == 0)
        rc = proto_check_fixed(ev->worker, PROTO_NAME_MAX, PROTO_STR_NAME, true, NULL);
    if (rc == 0)
        rc = proto_check_fixed(ev->from, PROTO_STATE_MAX, PROTO_STR_NAME, true, NULL);
    if (rc == 0)
        rc = proto_check_fixed(ev->to, PROTO_STATE_MAX, PROTO_STR_NAME, true, NULL);
    if (rc == 0)
        rc = proto_check_fixed(ev->reason, PROTO_REASON_MAX, PROTO_STR_TEXT, true, NULL);
    if (rc != 0)
        return rc;
    start = out->size;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    rc = proto_pack_header(&pk, hdr, PROTO_T_EVENT);
    if (rc == 0 && (msgpack_pack_map(&pk, EV_NFIELDS) || proto_pack_cstr(&pk, "kind") ||
                    proto_pack_cstr(&pk, ev->kind) || proto_pack_cstr(&pk, "worker") ||
                    proto_pack_cstr(&pk, ev->worker) || proto_pack_cstr(&pk, "from") ||
                    proto_pack_cstr(&pk, ev->from) || proto_pack_cstr(&pk, "to") ||
                    proto_pack_cstr(&pk, ev->to) || proto_pack_cstr(&pk, "reason") ||
                    proto_pack_cstr(&pk, ev->reason)))
        rc = WD_ENOMEM;
    return proto_pack_finish(out, start, rc);
}
