/* Alerts and their replies on alerts.sock: pack and unpack. See
 * proto_alert.h and proto/PROTOCOL.md ("Alerts"). */
#include "proto_alert.h"
#include "proto_internal.h"
#include "wd_error.h"

#include <string.h>

static const char WHAT[] = "alert";
static const char RWHAT[] = "alert_reply";

static const char *const sev_names[PROTO_SEV_COUNT] = {"info", "warning", "critical"};

const char *proto_alert_severity_name(proto_alert_severity s) {
    if ((unsigned)s >= PROTO_SEV_COUNT)
        return "unknown";
    return sev_names[s];
}

int proto_alert_severity_parse(const char *s, size_t len, proto_alert_severity *out) {
    if (!s || !out)
        return WD_EINVAL;
    for (unsigned i = 0; i < PROTO_SEV_COUNT; i++) {
        if (strlen(sev_names[i]) == len && memcmp(sev_names[i], s, len) == 0) {
            *out = (proto_alert_severity)i;
            return 0;
        }
    }
    return WD_EINVAL;
}

bool proto_alert_id_ok(const char *s, size_t len) {
    if (!s || len == 0 || len > PROTO_ALERT_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == ':'))
            return false;
    }
    return true;
}

bool proto_alert_status_permanent(int32_t status) {
    return status == WD_EINVAL || status == WD_EPROTO || status == WD_ETOOBIG;
}

const char *proto_alert_label_get(const proto_alert *a, const char *key) {
    if (!a || !key)
        return NULL;
    for (uint32_t i = 0; i < a->n_labels && i < PROTO_ALERT_LABELS_MAX; i++)
        if (strcmp(a->labels[i].key, key) == 0)
            return a->labels[i].val;
    return NULL;
}

int proto_alert_label_add(proto_alert *a, const char *key, const char *val) {
    if (!a || !key || !val)
        return WD_EINVAL;
    if (proto_alert_label_get(a, key))
        return WD_EEXIST;
    if (a->n_labels >= PROTO_ALERT_LABELS_MAX)
        return WD_ETOOBIG;
    size_t kl = strlen(key), vl = strlen(val);
    if (kl > PROTO_ALERT_LABEL_KEY_MAX || vl > PROTO_ALERT_LABEL_VAL_MAX)
        return WD_ETOOBIG;
    if (kl == 0 || !proto_str_ok(key, kl, PROTO_STR_NAME) || !proto_str_ok(val, vl, PROTO_STR_TEXT))
        return WD_EINVAL;
    proto_alert_label *l = &a->labels[a->n_labels++];
    memcpy(l->key, key, kl + 1);
    memcpy(l->val, val, vl + 1);
    return 0;
}

/* ---- validation shared by pack and unpack ---- */

static int check_str(const char *s, size_t max, proto_str_class cls, bool allow_empty,
                     const char *field, char *err, size_t errlen) {
    int rc = proto_check_fixed(s, max, cls, allow_empty, NULL);
    if (rc == WD_ETOOBIG)
        return proto_fail(err, errlen, rc, "%s: field '%s': longer than %zu bytes", WHAT, field,
                          max);
    if (rc != 0)
        return proto_fail(err, errlen, rc, "%s: field '%s': empty, invalid UTF-8 or control character",
                          WHAT, field);
    return 0;
}

int proto_alert_check(const proto_alert *a, char *err, size_t errlen) {
    int rc;
    if (!a)
        return proto_fail(err, errlen, WD_EINVAL, "%s: NULL argument", WHAT);
    size_t idl = strnlen(a->id, PROTO_ALERT_ID_MAX + 1);
    if (idl > PROTO_ALERT_ID_MAX)
        return proto_fail(err, errlen, WD_ETOOBIG, "%s: field 'id': longer than %d bytes", WHAT,
                          PROTO_ALERT_ID_MAX);
    if (!proto_alert_id_ok(a->id, idl))
        return proto_fail(err, errlen, WD_EINVAL,
                          "%s: field 'id': must be 1..%d of A-Z a-z 0-9 . _ - :", WHAT,
                          PROTO_ALERT_ID_MAX);
    if ((rc = check_str(a->source, PROTO_ALERT_SOURCE_MAX, PROTO_STR_NAME, false, "source", err,
                        errlen)) ||
        (rc = check_str(a->title, PROTO_ALERT_TITLE_MAX, PROTO_STR_NAME, false, "title", err,
                        errlen)) ||
        (rc = check_str(a->text, PROTO_ALERT_TEXT_MAX, PROTO_STR_TEXT, true, "text", err,
                        errlen)) ||
        (rc = check_str(a->dedup_key, PROTO_ALERT_DEDUP_MAX, PROTO_STR_NAME, true, "dedup_key",
                        err, errlen)))
        return rc;
    if ((unsigned)a->severity >= PROTO_SEV_COUNT)
        return proto_fail(err, errlen, WD_EINVAL,
                          "%s: field 'severity': must be info, warning or critical", WHAT);
    if (a->time_ns == 0)
        return proto_fail(err, errlen, WD_EINVAL, "%s: field 'time': must be > 0", WHAT);
    if (a->n_labels > PROTO_ALERT_LABELS_MAX)
        return proto_fail(err, errlen, WD_ETOOBIG, "%s: field 'labels': more than %d entries",
                          WHAT, PROTO_ALERT_LABELS_MAX);
    for (uint32_t i = 0; i < a->n_labels; i++) {
        if ((rc = check_str(a->labels[i].key, PROTO_ALERT_LABEL_KEY_MAX, PROTO_STR_NAME, false,
                            "labels.key", err, errlen)) ||
            (rc = check_str(a->labels[i].val, PROTO_ALERT_LABEL_VAL_MAX, PROTO_STR_TEXT, true,
                            "labels.value", err, errlen)))
            return rc;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(a->labels[j].key, a->labels[i].key) == 0)
                return proto_fail(err, errlen, WD_EINVAL, "%s: field 'labels': duplicate key '%s'",
                                  WHAT, a->labels[i].key);
    }
    return 0;
}

/* ---- envelope (proto_envelope_unpack does not know types 32/33) ---- */

/* Scans and decodes buf as one envelope of type want, fills *hdr and leaves
 * the body's map in b (close with proto_body_close on success). */
static int open_msg(const void *buf, size_t len, int want, const char *what, proto_header *hdr,
                    proto_body *b, char *err, size_t errlen) {
    const char *why = "";
    size_t end = 0, off = 0;
    uint64_t v;
    int rc;
    b->what = what;
    b->map = NULL;
    if (!buf && len > 0)
        return proto_fail(err, errlen, WD_EINVAL, "%s: no buffer", what);
    if (len > PROTO_MSG_MAX)
        return proto_fail(err, errlen, WD_ETOOBIG, "%s: larger than %u bytes", what,
                          PROTO_MSG_MAX);
    rc = proto_wire_scan(buf, len, PROTO_DEPTH_MAX + 1, PROTO_OBJECTS_MAX + 6, &end, &why);
    if (rc != 0)
        return proto_fail(err, errlen, rc, "%s: %s", what, why);
    if (end != len)
        return proto_fail(err, errlen, WD_EPROTO, "%s: trailing bytes", what);
    msgpack_unpacked_init(&b->u);
    msgpack_unpack_return ur = msgpack_unpack_next(&b->u, buf, len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
        rc = proto_fail(err, errlen, ur == MSGPACK_UNPACK_NOMEM_ERROR ? WD_ENOMEM : WD_EPROTO,
                        "%s: undecodable msgpack", what);
        goto fail;
    }
    const msgpack_object *o = &b->u.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 6) {
        rc = proto_fail(err, errlen, WD_EPROTO, "%s: envelope: expected an array of 6", what);
        goto fail;
    }
    const msgpack_object *f = o->via.array.ptr;
    if ((rc = proto_get_uint(&f[0], UINT32_MAX, &v, what, "version", err, errlen)))
        goto fail;
    if (v != PROTO_VERSION) {
        rc = proto_fail(err, errlen, WD_EINVAL, "%s: field 'version': unsupported %llu", what,
                        (unsigned long long)v);
        goto fail;
    }
    if ((rc = proto_get_uint(&f[1], UINT32_MAX, &v, what, "type", err, errlen)))
        goto fail;
    if (v != (uint64_t)want) {
        rc = proto_fail(err, errlen, WD_EPROTO, "%s: field 'type': expected %d, got %llu", what,
                        want, (unsigned long long)v);
        goto fail;
    }
    proto_header h;
    memset(&h, 0, sizeof h);
    if ((rc = proto_get_str(&f[2], h.sender, PROTO_NAME_MAX, PROTO_STR_NAME, false, what,
                            "sender", err, errlen)) ||
        (rc = proto_get_uint(&f[3], UINT64_MAX, &h.seq, what, "seq", err, errlen)) ||
        (rc = proto_get_uint(&f[4], UINT64_MAX, &h.ts_ns, what, "ts_ns", err, errlen)))
        goto fail;
    if (f[5].type != MSGPACK_OBJECT_MAP) {
        rc = proto_fail(err, errlen, WD_EPROTO, "%s: field 'body': expected map", what);
        goto fail;
    }
    b->map = &f[5].via.map;
    for (uint32_t i = 0; i < b->map->size; i++) {
        if (b->map->ptr[i].key.type != MSGPACK_OBJECT_STR) {
            rc = proto_fail(err, errlen, WD_EPROTO, "%s: field 'body': non-string key", what);
            goto fail;
        }
    }
    if (hdr)
        *hdr = h;
    return 0;
fail:
    msgpack_unpacked_destroy(&b->u);
    return rc;
}

/* ---- alert ---- */

enum { AL_ID, AL_SOURCE, AL_SEVERITY, AL_TITLE, AL_TEXT, AL_LABELS, AL_TIME, AL_DEDUP, AL_NFIELDS };
static const char *const al_fields[AL_NFIELDS] = {"id",   "source", "severity", "title",
                                                  "text", "labels", "time",     "dedup_key"};
#define AL_REQUIRED                                                                            \
    ((1u << AL_ID) | (1u << AL_SOURCE) | (1u << AL_SEVERITY) | (1u << AL_TITLE) | (1u << AL_TIME))

static int get_labels(const msgpack_object *o, proto_alert *a, char *err, size_t errlen) {
    if (o->type != MSGPACK_OBJECT_MAP)
        return proto_fail(err, errlen, WD_EPROTO, "%s: field 'labels': expected map", WHAT);
    const msgpack_object_map *m = &o->via.map;
    if (m->size > PROTO_ALERT_LABELS_MAX)
        return proto_fail(err, errlen, WD_ETOOBIG, "%s: field 'labels': more than %d entries",
                          WHAT, PROTO_ALERT_LABELS_MAX);
    for (uint32_t i = 0; i < m->size; i++) {
        proto_alert_label *l = &a->labels[i];
        int rc = proto_get_str(&m->ptr[i].key, l->key, PROTO_ALERT_LABEL_KEY_MAX, PROTO_STR_NAME,
                               false, WHAT, "labels.key", err, errlen);
        if (rc == 0)
            rc = proto_get_str(&m->ptr[i].val, l->val, PROTO_ALERT_LABEL_VAL_MAX, PROTO_STR_TEXT,
                               true, WHAT, "labels.value", err, errlen);
        if (rc != 0)
            return rc;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(a->labels[j].key, l->key) == 0)
                return proto_fail(err, errlen, WD_EINVAL, "%s: field 'labels': duplicate key '%s'",
                                  WHAT, l->key);
        a->n_labels = i + 1;
    }
    return 0;
}

static int get_field(unsigned idx, const msgpack_object *val, proto_alert *a, char *err,
                     size_t errlen) {
    int rc = 0;
    switch (idx) {
    case AL_ID:
        if (val->type != MSGPACK_OBJECT_STR)
            return proto_fail(err, errlen, WD_EPROTO, "%s: field 'id': expected string", WHAT);
        if (val->via.str.size > PROTO_ALERT_ID_MAX)
            return proto_fail(err, errlen, WD_ETOOBIG, "%s: field 'id': longer than %d bytes",
                              WHAT, PROTO_ALERT_ID_MAX);
        if (!proto_alert_id_ok(val->via.str.ptr, val->via.str.size))
            return proto_fail(err, errlen, WD_EINVAL,
                              "%s: field 'id': must be 1..%d of A-Z a-z 0-9 . _ - :", WHAT,
                              PROTO_ALERT_ID_MAX);
        memcpy(a->id, val->via.str.ptr, val->via.str.size);
        a->id[val->via.str.size] = '\0';
        return 0;
    case AL_SOURCE:
        return proto_get_str(val, a->source, PROTO_ALERT_SOURCE_MAX, PROTO_STR_NAME, false, WHAT,
                             "source", err, errlen);
    case AL_SEVERITY:
        if (val->type != MSGPACK_OBJECT_STR)
            return proto_fail(err, errlen, WD_EPROTO, "%s: field 'severity': expected string",
                              WHAT);
        if (proto_alert_severity_parse(val->via.str.ptr, val->via.str.size, &a->severity) != 0)
            return proto_fail(err, errlen, WD_EINVAL,
                              "%s: field 'severity': must be info, warning or critical", WHAT);
        return 0;
    case AL_TITLE:
        return proto_get_str(val, a->title, PROTO_ALERT_TITLE_MAX, PROTO_STR_NAME, false, WHAT,
                             "title", err, errlen);
    case AL_TEXT:
        return proto_get_str(val, a->text, PROTO_ALERT_TEXT_MAX, PROTO_STR_TEXT, true, WHAT,
                             "text", err, errlen);
    case AL_LABELS:
        return get_labels(val, a, err, errlen);
    case AL_TIME:
        rc = proto_get_uint(val, UINT64_MAX, &a->time_ns, WHAT, "time", err, errlen);
        if (rc == 0 && a->time_ns == 0)
            rc = proto_fail(err, errlen, WD_EINVAL, "%s: field 'time': must be > 0", WHAT);
        return rc;
    case AL_DEDUP:
        return proto_get_str(val, a->dedup_key, PROTO_ALERT_DEDUP_MAX, PROTO_STR_NAME, true, WHAT,
                             "dedup_key", err, errlen);
    default:
        return 0; /* a key this version does not know: ignored */
    }
}

int proto_alert_unpack(const void *buf, size_t len, proto_header *hdr, proto_alert *a,
                       char *err, size_t errlen) {
    proto_body b;
    unsigned seen = 0, idx;
    int rc;
    if (err && errlen)
        err[0] = '\0';
    if (!a)
        return proto_fail(err, errlen, WD_EINVAL, "%s: no output", WHAT);
    memset(a, 0, sizeof *a);
    rc = open_msg(buf, len, PROTO_T_ALERT, WHAT, hdr, &b, err, errlen);
    if (rc != 0)
        return rc;
    /* The id first, whatever its place in the map, so that a reply to a bad
     * alert can name the alert it refuses. */
    for (uint32_t i = 0; i < b.map->size; i++) {
        if (proto_key_is(&b.map->ptr[i].key, "id")) {
            const msgpack_object *v = &b.map->ptr[i].val;
            if (v->type == MSGPACK_OBJECT_STR && proto_alert_id_ok(v->via.str.ptr, v->via.str.size)) {
                memcpy(a->id, v->via.str.ptr, v->via.str.size);
                a->id[v->via.str.size] = '\0';
            }
            break;
        }
    }
    for (uint32_t i = 0; i < b.map->size; i++) {
        rc = proto_body_field(&b, &b.map->ptr[i].key, al_fields, AL_NFIELDS, &seen, &idx, err,
                              errlen);
        if (rc == 0)
            rc = get_field(idx, &b.map->ptr[i].val, a, err, errlen);
        if (rc != 0)
            goto done;
    }
    rc = proto_body_require(&b, al_fields, AL_NFIELDS, AL_REQUIRED, seen, err, errlen);
done:
    proto_body_close(&b);
    return rc;
}

int proto_alert_pack(msgpack_sbuffer *out, const proto_header *hdr, const proto_alert *a) {
    msgpack_packer pk;
    if (!out || !hdr || !a)
        return WD_EINVAL;
    int rc = proto_alert_check(a, NULL, 0);
    if (rc != 0)
        return rc;
    size_t start = out->size;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    rc = proto_pack_header(&pk, hdr, (proto_type)PROTO_T_ALERT);
    if (rc != 0)
        goto done;
    rc = WD_ENOMEM;
    if (msgpack_pack_map(&pk, AL_NFIELDS) || proto_pack_cstr(&pk, "id") ||
        proto_pack_cstr(&pk, a->id) || proto_pack_cstr(&pk, "source") ||
        proto_pack_cstr(&pk, a->source) || proto_pack_cstr(&pk, "severity") ||
        proto_pack_cstr(&pk, sev_names[a->severity]) || proto_pack_cstr(&pk, "title") ||
        proto_pack_cstr(&pk, a->title) || proto_pack_cstr(&pk, "text") ||
        proto_pack_cstr(&pk, a->text) || proto_pack_cstr(&pk, "labels") ||
        msgpack_pack_map(&pk, a->n_labels))
        goto done;
    for (uint32_t i = 0; i < a->n_labels; i++)
        if (proto_pack_cstr(&pk, a->labels[i].key) || proto_pack_cstr(&pk, a->labels[i].val))
            goto done;
    if (proto_pack_cstr(&pk, "time") || msgpack_pack_uint64(&pk, a->time_ns) ||
        proto_pack_cstr(&pk, "dedup_key") || proto_pack_cstr(&pk, a->dedup_key))
        goto done;
    rc = 0;
done:
    return proto_pack_finish(out, start, rc);
}

/* ---- reply ---- */

enum { RE_ID, RE_STATUS, RE_ERROR, RE_NFIELDS };
static const char *const re_fields[RE_NFIELDS] = {"id", "status", "error"};
#define RE_REQUIRED ((1u << RE_ID) | (1u << RE_STATUS))

static int get_status(const msgpack_object *o, int32_t *out, char *err, size_t errlen) {
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 != 0)
            return proto_fail(err, errlen, WD_EINVAL, "%s: field 'status': must be 0 or negative",
                              RWHAT);
        *out = 0;
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return proto_fail(err, errlen, WD_EPROTO, "%s: field 'status': expected integer", RWHAT);
    if (o->via.i64 < INT32_MIN)
        return proto_fail(err, errlen, WD_EINVAL, "%s: field 'status': out of range", RWHAT);
    *out = (int32_t)o->via.i64;
    return 0;
}

int proto_alert_reply_unpack(const void *buf, size_t len, proto_header *hdr,
                             proto_alert_reply *r, char *err, size_t errlen) {
    proto_body b;
    unsigned seen = 0, idx;
    int rc;
    if (err && errlen)
        err[0] = '\0';
    if (!r)
        return proto_fail(err, errlen, WD_EINVAL, "%s: no output", RWHAT);
    memset(r, 0, sizeof *r);
    rc = open_msg(buf, len, PROTO_T_ALERT_REPLY, RWHAT, hdr, &b, err, errlen);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < b.map->size; i++) {
        const msgpack_object *val = &b.map->ptr[i].val;
        rc = proto_body_field(&b, &b.map->ptr[i].key, re_fields, RE_NFIELDS, &seen, &idx, err,
                              errlen);
        if (rc != 0)
            goto done;
        if (idx == RE_ID) {
            if (val->type != MSGPACK_OBJECT_STR)
                rc = proto_fail(err, errlen, WD_EPROTO, "%s: field 'id': expected string", RWHAT);
            else if (val->via.str.size > PROTO_ALERT_ID_MAX)
                rc = proto_fail(err, errlen, WD_ETOOBIG, "%s: field 'id': longer than %d bytes",
                                RWHAT, PROTO_ALERT_ID_MAX);
            else if (val->via.str.size > 0 &&
                     !proto_alert_id_ok(val->via.str.ptr, val->via.str.size))
                rc = proto_fail(err, errlen, WD_EINVAL, "%s: field 'id': invalid id", RWHAT);
            else {
                memcpy(r->id, val->via.str.ptr, val->via.str.size);
                r->id[val->via.str.size] = '\0';
            }
        } else if (idx == RE_STATUS) {
            rc = get_status(val, &r->status, err, errlen);
        } else if (idx == RE_ERROR) {
            rc = proto_get_str(val, r->error, PROTO_ERROR_MAX, PROTO_STR_TEXT, true, RWHAT,
                               "error", err, errlen);
        }
        if (rc != 0)
            goto done;
    }
    rc = proto_body_require(&b, re_fields, RE_NFIELDS, RE_REQUIRED, seen, err, errlen);
done:
    proto_body_close(&b);
    return rc;
}

int proto_alert_reply_pack(msgpack_sbuffer *out, const proto_header *hdr,
                           const proto_alert_reply *r) {
    msgpack_packer pk;
    size_t idl;
    if (!out || !hdr || !r || r->status > 0)
        return WD_EINVAL;
    idl = strnlen(r->id, PROTO_ALERT_ID_MAX + 1);
    if (idl > PROTO_ALERT_ID_MAX)
        return WD_ETOOBIG;
    if (idl > 0 && !proto_alert_id_ok(r->id, idl))
        return WD_EINVAL;
    int rc = proto_check_fixed(r->error, PROTO_ERROR_MAX, PROTO_STR_TEXT, true, NULL);
    if (rc != 0)
        return rc;
    size_t start = out->size;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    rc = proto_pack_header(&pk, hdr, (proto_type)PROTO_T_ALERT_REPLY);
    if (rc == 0 && (msgpack_pack_map(&pk, RE_NFIELDS) || proto_pack_cstr(&pk, "id") ||
                    proto_pack_cstr(&pk, r->id) || proto_pack_cstr(&pk, "status") ||
                    msgpack_pack_int32(&pk, r->status) || proto_pack_cstr(&pk, "error") ||
                    proto_pack_cstr(&pk, r->error)))
        rc = WD_ENOMEM;
    return proto_pack_finish(out, start, rc);
}
