/* Worker -> supervisor messages on heartbeat.sock: heartbeat and ready. */
#include "proto_internal.h"
#include "wd_error.h"

#include <math.h>
#include <string.h>

/* ---- heartbeat ---- */

enum { HB_PID, HB_PROGRESS, HB_LAG, HB_BREAKERS, HB_METRICS, HB_NFIELDS };
static const char *const hb_fields[HB_NFIELDS] = {"pid", "progress", "loop_lag_us",
                                                  "breakers", "metrics"};
/* breakers and metrics may be left out: a program without either still
 * speaks the heartbeat protocol. */
#define HB_REQUIRED ((1u << HB_PID) | (1u << HB_PROGRESS) | (1u << HB_LAG))

static int hb_breakers(const msgpack_object *o, proto_heartbeat *hb, char *err, size_t errlen) {
    if (o->type != MSGPACK_OBJECT_MAP)
        return proto_fail(err, errlen, WD_EPROTO, "heartbeat: field 'breakers': expected map");
    const msgpack_object_map *m = &o->via.map;
    if (m->size > PROTO_BREAKERS_MAX)
        return proto_fail(err, errlen, WD_ETOOBIG,
                          "heartbeat: field 'breakers': more than %d entries",
                          PROTO_BREAKERS_MAX);
    for (uint32_t i = 0; i < m->size; i++) {
        proto_breaker *b = &hb->breakers[i];
        const msgpack_object *val = &m->ptr[i].val;
        int rc = proto_get_str(&m->ptr[i].key, b->name, PROTO_NAME_MAX, PROTO_STR_NAME, false,
                               "heartbeat", "breakers.name", err, errlen);
        if (rc != 0)
            return rc;
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(hb->breakers[j].name, b->name) == 0)
                return proto_fail(err, errlen, WD_EINVAL,
                                  "heartbeat: field 'breakers': duplicate breaker '%s'",
                                  b->name);
        }
        if (val->type != MSGPACK_OBJECT_STR)
            return proto_fail(err, errlen, WD_EPROTO,
                              "heartbeat: field 'breakers.state': expected string for '%s'",
                              b->name);
        if (proto_breaker_state_parse(val->via.str.ptr, val->via.str.size, &b->state) != 0)
            return proto_fail(err, errlen, WD_EINVAL,
                              "heartbeat: field 'breakers.state': unknown state for '%s'",
                              b->name);
        hb->n_breakers = i + 1;
    }
    return 0;
}

static int hb_metrics(const msgpack_object *o, proto_heartbeat *hb, char *err, size_t errlen) {
    if (o->type != MSGPACK_OBJECT_MAP)
        return proto_fail(err, errlen, WD_EPROTO, "heartbeat: field 'metrics': expected map");
    const msgpack_object_map *m = &o->via.map;
    if (m->size > PROTO_METRICS_MAX)
        return proto_fail(err, errlen, WD_ETOOBIG,
                          "heartbeat: field 'metrics': more than %d entries", PROTO_METRICS_MAX);
    for (uint32_t i = 0; i < m->size; i++) {
        proto_metric *mt = &hb->metrics[i];
        const msgpack_object *val = &m->ptr[i].val;
        int rc = proto_get_str(&m->ptr[i].key, mt->name, PROTO_METRIC_NAME_MAX, PROTO_STR_NAME,
                               false, "heartbeat", "metrics.name", err, errlen);
        if (rc != 0)
            return rc;
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(hb->metrics[j].name, mt->name) == 0)
                return proto_fail(err, errlen, WD_EINVAL,
                                  "heartbeat: field 'metrics': duplicate metric '%s'", mt->name);
        }
        switch (val->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            mt->value = (double)val->via.u64;
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            mt->value = (double)val->via.i64;
            break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            mt->value = val->via.f64;
            break;
        default:
            return proto_fail(err, errlen, WD_EPROTO,
                              "heartbeat: field 'metrics.value': expected number for '%s'",
                              mt->name);
        }
        /* NaN and infinities are refused: JSON (the health API, jansson)
         * cannot carry them, and a metric that is not a number is a bug. */
        if (!isfinite(mt->value))
            return proto_fail(err, errlen, WD_EINVAL,
                              "heartbeat: field 'metrics.value': not finite for '%s'",
                              mt->name);
        hb->n_metrics = i + 1;
    }
    return 0;
}

int proto_heartbeat_unpack(const proto_envelope *env, proto_heartbeat *hb, char *err,
                           size_t errlen) {
    proto_body b;
    unsigned seen = 0, idx;
    uint64_t v = 0;
    int rc;
    if (!hb)
        return proto_fail(err, errlen, WD_EINVAL, "heartbeat: no output");
    memset(hb, 0, sizeof *hb);
    rc = proto_body_open(&b, env, PROTO_T_HEARTBEAT, "heartbeat", err, errlen);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < b.map->size; i++) {
        const msgpack_object *val = &b.map->ptr[i].val;
        rc = proto_body_field(&b, &b.map->ptr[i].key, hb_fields, HB_NFIELDS, &seen, &idx, err,
                              errlen);
        if (rc != 0)
            goto fail;
        switch (idx) {
        case HB_PID:
            rc = proto_get_uint(val, UINT32_MAX, &v, "heartbeat", "pid", err, errlen);
            if (rc == 0 && v == 0)
                rc = proto_fail(err, errlen, WD_EINVAL, "heartbeat: field 'pid': must not be 0");
            hb->pid = (uint32_t)v;
            break;
        case HB_PROGRESS:
            rc = proto_get_uint(val, UINT64_MAX, &hb->progress, "heartbeat", "progress", err,
                                errlen);
            break;
        case HB_LAG:
            rc = proto_get_uint(val, UINT64_MAX, &hb->loop_lag_us, "heartbeat", "loop_lag_us",
                                err, errlen);
            break;
        case HB_BREAKERS:
            rc = hb_breakers(val, hb, err, errlen);
            break;
        case HB_METRICS:
            rc = hb_metrics(val, hb, err, errlen);
            break;
        default:
            break;
        }
        if (rc != 0)
            goto fail;
    }
    rc = proto_body_require(&b, hb_fields, HB_NFIELDS, HB_REQUIRED, seen, err, errlen);
fail:
    proto_body_close(&b);
    return rc;
}

static int hb_check(const proto_heartbeat *hb) {
    if (hb->pid == 0)
        return WD_EINVAL;
    if (hb->n_breakers > PROTO_BREAKERS_MAX || hb->n_metrics > PROTO_METRICS_MAX)
        return WD_ETOOBIG;
    for (uint32_t i = 0; i < hb->n_breakers; i++) {
        const proto_breaker *b = &hb->breakers[i];
        int rc = proto_check_fixed(b->name, PROTO_NAME_MAX, PROTO_STR_NAME, false, NULL);
        if (rc != 0)
            return rc;
        if ((unsigned)b->state >= PROTO_BRK_COUNT)
            return WD_EINVAL;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(hb->breakers[j].name, b->name) == 0)
                return WD_EINVAL;
    }
    for (uint32_t i = 0; i < hb->n_metrics; i++) {
        const proto_metric *m = &hb->metrics[i];
        int rc = proto_check_fixed(m->name, PROTO_METRIC_NAME_MAX, PROTO_STR_NAME, false, NULL);
        if (rc != 0)
            return rc;
        if (!isfinite(m->value))
            return WD_EINVAL;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(hb->metrics[j].name, m->name) == 0)
                return WD_EINVAL;
    }
    return 0;
}

int proto_heartbeat_pack(msgpack_sbuffer *out, const proto_header *hdr,
                         const proto_heartbeat *hb) {
    msgpack_packer pk;
    size_t start;
    int rc;
    if (!out || !hdr || !hb)
        return WD_EINVAL;
    rc = hb_check(hb);
    if (rc != 0)
        return rc;
    start = out->size;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    rc = proto_pack_header(&pk, hdr, PROTO_T_HEARTBEAT);
    if (rc != 0)
        goto fail;
    rc = WD_ENOMEM;
    if (msgpack_pack_map(&pk, HB_NFIELDS) || proto_pack_cstr(&pk, "pid") ||
        msgpack_pack_uint32(&pk, hb->pid) || proto_pack_cstr(&pk, "progress") ||
        msgpack_pack_uint64(&pk, hb->progress) || proto_pack_cstr(&pk, "loop_lag_us") ||
        msgpack_pack_uint64(&pk, hb->loop_lag_us) || proto_pack_cstr(&pk, "breakers") ||
        msgpack_pack_map(&pk, hb->n_breakers))
        goto fail;
    for (uint32_t i = 0; i < hb->n_breakers; i++) {
        if (proto_pack_cstr(&pk, hb->breakers[i].name) ||
            proto_pack_cstr(&pk, proto_breaker_state_name(hb->breakers[i].state)))
            goto fail;
    }
    if (proto_pack_cstr(&pk, "metrics") || msgpack_pack_map(&pk, hb->n_metrics))
        goto fail;
    for (uint32_t i = 0; i < hb->n_metrics; i++) {
        if (proto_pack_cstr(&pk, hb->metrics[i].name) ||
            msgpack_pack_double(&pk, hb->metrics[i].value))
            goto fail;
    }
    rc = 0;
fail:
    return proto_pack_finish(out, start, rc);
}

/* ---- ready ---- */

enum { RD_PID, RD_VERSION, RD_NFIELDS };
static const char *const rd_fields[RD_NFIELDS] = {"pid", "version"};
#define RD_REQUIRED ((1u << RD_PID) | (1u << RD_VERSION))

int proto_ready_unpack(const proto_envelope *env, proto_ready *r, char *err, size_t errlen) {
    proto_body b;
    unsigned seen = 0, idx;
    uint64_t v = 0;
    int rc;
    if (!r)
        return proto_fail(err, errlen, WD_EINVAL, "ready: no output");
    memset(r, 0, sizeof *r);
    rc = proto_body_open(&b, env, PROTO_T_READY, "ready", err, errlen);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < b.map->size; i++) {
        const msgpack_object *val = &b.map->ptr[i].val;
        rc = proto_body_field(&b, &b.map->ptr[i].key, rd_fields, RD_NFIELDS, &seen, &idx, err,
                              errlen);
        if (rc != 0)
            goto fail;
        if (idx == RD_PID) {
            rc = proto_get_uint(val, UINT32_MAX, &v, "ready", "pid", err, errlen);
            if (rc == 0 && v == 0)
                rc = proto_fail(err, errlen, WD_EINVAL, "ready: field 'pid': must not be 0");
            r->pid = (uint32_t)v;
        } else if (idx == RD_VERSION) {
            rc = proto_get_str(val, r->version, PROTO_VERSION_STR_MAX, PROTO_STR_NAME, false,
                               "ready", "version", err, errlen);
        }
        if (rc != 0)
            goto fail;
    }
    rc = proto_body_require(&b, rd_fields, RD_NFIELDS, RD_REQUIRED, seen, err, errlen);
fail:
    proto_body_close(&b);
    return rc;
}

int proto_ready_pack(msgpack_sbuffer *out, const proto_header *hdr, const proto_ready *r) {
    msgpack_packer pk;
    size_t start;
    int rc;
    if (!out || !hdr || !r || r->pid == 0)
        return WD_EINVAL;
    rc = proto_check_fixed(r->version, PROTO_VERSION_STR_MAX, PROTO_STR_NAME, false, NULL);
    if (rc != 0)
        return rc;
    start = out->size;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    rc = proto_pack_header(&pk, hdr, PROTO_T_READY);
    if (rc == 0 && (msgpack_pack_map(&pk, RD_NFIELDS) || proto_pack_cstr(&pk, "pid") ||
                    msgpack_pack_uint32(&pk, r->pid) || proto_pack_cstr(&pk, "version") ||
                    proto_pack_cstr(&pk, r->version)))
        rc = WD_ENOMEM;
    return proto_pack_finish(out, start, rc);
}
