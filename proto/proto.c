/* Envelope, breaker state names, and the bounded decoding helpers every
 * message type shares. See proto/PROTOCOL.md for the wire format. */
#include "proto_internal.h"
#include "wd_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Deepest nesting proto_wire_scan() can track; callers ask for less. */
#define WIRE_DEPTH_LIMIT (PROTO_DEPTH_MAX + 1)

int proto_fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- wire pre-scan ---- */

static uint64_t wire_be(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Reads the object at *off: its type byte, any length field, and any payload
 * (string, bin and ext bytes, scalar values). Containers' elements are not
 * read; *children says how many objects follow as their content (n for an
 * array, 2n for a map) and *container says whether it was one. Returns 0, or
 * -1 if the object runs past len or uses the reserved byte 0xc1. */
static int wire_head(const uint8_t *buf, size_t len, size_t *off, uint64_t *children,
                     bool *container) {
    size_t o = *off;
    size_t lenbytes = 0; /* size of a following length/count field */
    size_t fixed = 0;    /* payload bytes after that, known from the type byte */
    int kind = 0;        /* 0 scalar, 1 str/bin, 2 ext, 3 array, 4 map */
    if (o >= len)
        return -1;
    uint8_t b = buf[o++];
    *children = 0;
    *container = false;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        /* fixints, nil, booleans: the type byte is the whole object */
    } else if (b >= 0x80 && b <= 0x8f) {
        *children = 2u * (uint64_t)(b & 0x0f);
        *container = true;
    } else if (b >= 0x90 && b <= 0x9f) {
        *children = b & 0x0f;
        *container = true;
    } else if (b >= 0xa0 && b <= 0xbf) {
        fixed = b & 0x1f;
    } else {
        switch (b) {
        case 0xc4: case 0xc5: case 0xc6: /* bin 8/16/32 */
            lenbytes = (size_t)1 << (b - 0xc4), kind = 1;
            break;
        case 0xd9: case 0xda: case 0xdb: /* str 8/16/32 */
            lenbytes = (size_t)1 << (b - 0xd9), kind = 1;
            break;
        case 0xc7: case 0xc8: case 0xc9: /* ext 8/16/32: length, then a type byte */
            lenbytes = (size_t)1 << (b - 0xc7), kind = 2;
            break;
        case 0xca: fixed = 4; break; /* float 32 */
        case 0xcb: fixed = 8; break; /* float 64 */
        case 0xcc: case 0xcd: case 0xce: case 0xcf: /* uint 8..64 */
            fixed = (size_t)1 << (b - 0xcc);
            break;
        case 0xd0: case 0xd1: case 0xd2: case 0xd3: /* int 8..64 */
            fixed = (size_t)1 << (b - 0xd0);
            break;
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: /* fixext 1..16 */
            fixed = 1 + ((size_t)1 << (b - 0xd4));
            break;
        case 0xdc: case 0xdd: /* array 16/32 */
            lenbytes = (b == 0xdc) ? 2 : 4, kind = 3;
            break;
        case 0xde: case 0xdf: /* map 16/32 */
            lenbytes = (b == 0xde) ? 2 : 4, kind = 4;
            break;
        default: /* 0xc1 is never used */
            return -1;
        }
    }
    if (lenbytes > 0) {
        if (len - o < lenbytes)
            return -1;
        uint64_t n = wire_be(buf + o, lenbytes);
        o += lenbytes;
        if (kind == 3 || kind == 4) {
            *children = kind == 4 ? 2 * n : n;
            *container = true;
        } else {
            /* n < 2^32 and len <= SIZE_MAX, so comparing before adding is safe */
            if (n > len - o)
                return -1;
            fixed = (size_t)n + (kind == 2 ? 1 : 0);
        }
    }
    if (fixed > len - o)
        return -1;
    *off = o + fixed;
    return 0;
}

int proto_wire_scan(const uint8_t *buf, size_t len, unsigned max_depth, size_t max_objects,
                    size_t *end, const char **why) {
    uint64_t left[WIRE_DEPTH_LIMIT + 1]; /* objects still due at each open level */
    unsigned depth = 0;
    size_t off = 0, objects = 0;
    if (max_depth > WIRE_DEPTH_LIMIT)
        max_depth = WIRE_DEPTH_LIMIT;
    left[0] = 1;
    for (;;) {
        if (left[depth] == 0) {
            if (depth == 0)
                break;
            depth--;
            continue;
        }
        left[depth]--;
        if (++objects > max_objects) {
            *why = "too many objects";
            return WD_ETOOBIG;
        }
        uint64_t children;
        bool container;
        if (wire_head(buf, len, &off, &children, &container) != 0) {
            *why = "truncated or invalid msgpack";
            return WD_EPROTO;
        }
        if (!container)
            continue;
        /* Every element takes at least one byte, so a count larger than the
         * bytes left is a lie; refusing it here is what keeps msgpack-c from
         * allocating for it. */
        if (children > len - off) {
            *why = "container length exceeds the message";
            return WD_EPROTO;
        }
        if (depth == max_depth) {
            *why = "nested too deeply";
            return WD_ETOOBIG;
        }
        left[++depth] = children;
    }
    *end = off;
    return 0;
}

/* ---- strings ---- */

/* Returns the length of the UTF-8 sequence at s[0..len), or 0 if it is not a
 * valid, shortest-form encoding of a scalar value (no surrogates, <= U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t len) {
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

bool proto_str_ok(const char *s, size_t len, proto_str_class cls) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = u[i];
        if (c == 0)
            return false;
        if (cls == PROTO_STR_NAME && (c < 0x20 || c == 0x7f))
            return false;
        size_t n = utf8_seq(u + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* ---- breaker states ---- */

static const char *const brk_names[PROTO_BRK_COUNT] = {
    [PROTO_BRK_CLOSED] = "closed",
    [PROTO_BRK_OPEN] = "open",
    [PROTO_BRK_HALF_OPEN] = "half_open",
    [PROTO_BRK_FORCED_OPEN] = "forced_open",
    [PROTO_BRK_DISABLED] = "disabled",
};

const char *proto_breaker_state_name(proto_breaker_state s) {
    if ((unsigned)s >= PROTO_BRK_COUNT)
        return "unknown";
    return brk_names[s];
}

int proto_breaker_state_parse(const char *name, size_t len, proto_breaker_state *out) {
    if (!name || !out)
        return WD_EINVAL;
    for (unsigned i = 0; i < PROTO_BRK_COUNT; i++) {
        if (strlen(brk_names[i]) == len && memcmp(brk_names[i], name, len) == 0) {
            *out = (proto_breaker_state)i;
            return 0;
        }
    }
    return WD_EINVAL;
}

/* ---- field readers ---- */

bool proto_key_is(const msgpack_object *key, const char *name) {
    size_t n = strlen(name);
    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == n &&
           memcmp(key->via.str.ptr, name, n) == 0;
}

int proto_get_uint(const msgpack_object *o, uint64_t max, uint64_t *out, const char *what,
                   const char *field, char *err, size_t errlen) {
    /* msgpack-c reports any integer >= 0 as POSITIVE_INTEGER, whichever
     * encoding the peer chose, so a non-negative int8 is accepted too. */
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return proto_fail(err, errlen, WD_EPROTO, "%s: field '%s': expected unsigned integer",
                          what, field);
    if (o->via.u64 > max)
        return proto_fail(err, errlen, WD_EINVAL, "%s: field '%s': out of range (max %llu)",
                          what, field, (unsigned long long)max);
    *out = o->via.u64;
    return 0;
}

int proto_get_str(const msgpack_object *o, char *dst, size_t max, proto_str_class cls,
                  bool allow_empty, const char *what, const char *field, char *err,
                  size_t errlen) {
    if (o->type != MSGPACK_OBJECT_STR)
        return proto_fail(err, errlen, WD_EPROTO, "%s: field '%s': expected string", what,
                          field);
    size_t n = o->via.str.size;
    if (n > max)
        return proto_fail(err, errlen, WD_ETOOBIG, "%s: field '%s': longer than %zu bytes",
                          what, field, max);
    if (n == 0 && !allow_empty)
        return proto_fail(err, errlen, WD_EINVAL, "%s: field '%s': must not be empty", what,
                          field);
    if (!proto_str_ok(o->via.str.ptr, n, cls))
        return proto_fail(err, errlen, WD_EINVAL,
                          "%s: field '%s': invalid UTF-8 or control character", what, field);
    if (n > 0)
        memcpy(dst, o->via.str.ptr, n);
    dst[n] = '\0';
    return 0;
}

/* ---- bodies ---- */

static const char *type_name(proto_type t) {
    switch (t) {
    case PROTO_T_HEARTBEAT: return "heartbeat";
    case PROTO_T_READY: return "ready";
    case PROTO_T_CTL_REQUEST: return "ctl_request";
    case PROTO_T_CTL_REPLY: return "ctl_reply";
    case PROTO_T_EVENT: return "event";
    }
    return NULL;
}

int proto_body_open(proto_body *b, const proto_envelope *env, proto_type want,
                    const char *what, char *err, size_t errlen) {
    const char *why = NULL;
    size_t end = 0, off = 0;
    int rc;
    b->what = what;
    b->map = NULL;
    if (!env || (!env->body && env->body_len > 0))
        return proto_fail(err, errlen, WD_EINVAL, "%s: no envelope", what);
    if (env->type != want)
        return proto_fail(err, errlen, WD_EPROTO, "%s: field 'type': message is not a %s",
                          what, what);
    if (env->body_len > PROTO_MSG_MAX)
        return proto_fail(err, errlen, WD_ETOOBIG, "%s: field 'body': larger than %u bytes",
                          what, PROTO_MSG_MAX);
    rc = proto_wire_scan((const uint8_t *)env->body, env->body_len, PROTO_DEPTH_MAX,
                         PROTO_OBJECTS_MAX, &end, &why);
    if (rc != 0)
        return proto_fail(err, errlen, rc, "%s: field 'body': %s", what, why);
    if (end != env->body_len)
        return proto_fail(err, errlen, WD_EPROTO, "%s: field 'body': trailing bytes", what);
    msgpack_unpacked_init(&b->u);
    msgpack_unpack_return ur = msgpack_unpack_next(&b->u, env->body, env->body_len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != env->body_len) {
        rc = proto_fail(err, errlen, ur == MSGPACK_UNPACK_NOMEM_ERROR ? WD_ENOMEM : WD_EPROTO,
                        "%s: field 'body': undecodable msgpack", what);
        goto fail;
    }
    if (b->u.data.type != MSGPACK_OBJECT_MAP) {
        rc = proto_fail(err, errlen, WD_EPROTO, "%s: field 'body': expected map", what);
        goto fail;
    }
    b->map = &b->u.data.via.map;
    for (uint32_t i = 0; i < b->map->size; i++) {
        if (b->map->ptr[i].key.type != MSGPACK_OBJECT_STR) {
            rc = proto_fail(err, errlen, WD_EPROTO, "%s: field 'body': key %u is not a string",
                            what, i);
            goto fail;
        }
    }
    return 0;
fail:
    msgpack_unpacked_destroy(&b->u);
    return rc;
}

void proto_body_close(proto_body *b) { msgpack_unpacked_destroy(&b->u); }

int proto_body_field(const proto_body *b, const msgpack_object *key, const char *const *names,
                     unsigned n, unsigned *seen, unsigned *idx, char *err, size_t errlen) {
    *idx = n;
    for (unsigned i = 0; i < n; i++) {
        if (!proto_key_is(key, names[i]))
            continue;
        /* A repeated key would let two readers of one message see different
         * values (first wins here, last wins elsewhere), so it is refused. */
        if (*seen & (1u << i))
            return proto_fail(err, errlen, WD_EPROTO, "%s: field '%s': duplicate key", b->what,
                              names[i]);
        *seen |= 1u << i;
        *idx = i;
        break;
    }
    return 0;
}

int proto_body_require(const proto_body *b, const char *const *names, unsigned n,
                       unsigned required, unsigned seen, char *err, size_t errlen) {
    for (unsigned i = 0; i < n; i++) {
        if ((required & (1u << i)) && !(seen & (1u << i)))
            return proto_fail(err, errlen, WD_EPROTO, "%s: field '%s': missing", b->what,
                              names[i]);
    }
    return 0;
}

/* ---- envelope ---- */

int proto_envelope_unpack(const void *buf, size_t len, proto_envelope *env, char *err,
                          size_t errlen) {
    const uint8_t *p = buf;
    const char *why = NULL;
    size_t end = 0, off = 0;
    uint64_t v = 0, children = 0;
    bool container;
    proto_envelope e;
    msgpack_unpacked u;
    int rc;
    if (!env || (!buf && len > 0))
        return proto_fail(err, errlen, WD_EINVAL, "envelope: no buffer");
    memset(env, 0, sizeof *env);
    if (len > PROTO_MSG_MAX)
        return proto_fail(err, errlen, WD_ETOOBIG, "envelope: larger than %u bytes",
                          PROTO_MSG_MAX);
    rc = proto_wire_scan(p, len, PROTO_DEPTH_MAX + 1, PROTO_OBJECTS_MAX + 6, &end, &why);
    if (rc != 0)
        return proto_fail(err, errlen, rc, "envelope: %s", why);
    if (end != len)
        return proto_fail(err, errlen, WD_EPROTO, "envelope: trailing bytes");
    msgpack_unpacked_init(&u);
    msgpack_unpack_return ur = msgpack_unpack_next(&u, buf, len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
        rc = proto_fail(err, errlen, ur == MSGPACK_UNPACK_NOMEM_ERROR ? WD_ENOMEM : WD_EPROTO,
                        "envelope: undecodable msgpack");
        goto fail;
    }
    if (u.data.type != MSGPACK_OBJECT_ARRAY || u.data.via.array.size != 6) {
        rc = proto_fail(err, errlen, WD_EPROTO, "envelope: expected an array of 6 elements");
        goto fail;
    }
    const msgpack_object *f = u.data.via.array.ptr;
    memset(&e, 0, sizeof e);
    if ((rc = proto_get_uint(&f[0], UINT32_MAX, &v, "envelope", "version", err, errlen)))
        goto fail;
    if (v != PROTO_VERSION) {
        rc = proto_fail(err, errlen, WD_EINVAL, "envelope: field 'version': unsupported %llu",
                        (unsigned long long)v);
        goto fail;
    }
    e.version = (uint32_t)v;
    if ((rc = proto_get_uint(&f[1], UINT32_MAX, &v, "envelope", "type", err, errlen)))
        goto fail;
    if (!type_name((proto_type)v)) {
        rc = proto_fail(err, errlen, WD_EINVAL, "envelope: field 'type': unknown type %llu",
                        (unsigned long long)v);
        goto fail;
    }
    e.type = (proto_type)v;
    if ((rc = proto_get_str(&f[2], e.hdr.sender, PROTO_NAME_MAX, PROTO_STR_NAME, false,
                            "envelope", "sender", err, errlen)))
        goto fail;
    if ((rc = proto_get_uint(&f[3], UINT64_MAX, &e.hdr.seq, "envelope", "seq", err, errlen)))
        goto fail;
    if ((rc = proto_get_uint(&f[4], UINT64_MAX, &e.hdr.ts_ns, "envelope", "ts_ns", err,
                             errlen)))
        goto fail;
    /* msgpack-c gives objects, not offsets: find where the body starts by
     * stepping over the array header and the five scalars, which the scan
     * above has already proven well-formed. */
    off = 0;
    for (int i = 0; i < 6; i++) {
        if (wire_head(p, len, &off, &children, &container) != 0 || (i > 0 && container)) {
            rc = proto_fail(err, errlen, WD_EPROTO, "envelope: undecodable header");
            goto fail;
        }
    }
    e.body = (const char *)p + off;
    e.body_len = len - off;
    *env = e;
    rc = 0;
fail:
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* ---- pack helpers ---- */

int proto_check_fixed(const char *s, size_t max, proto_str_class cls, bool allow_empty,
                      size_t *len) {
    /* The field is a char[max + 1]: no NUL within it means it was never
     * terminated, which is the caller's overflow, not a long name. */
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return WD_ETOOBIG;
    if (n == 0 && !allow_empty)
        return WD_EINVAL;
    if (!proto_str_ok(s, n, cls))
        return WD_EINVAL;
    if (len)
        *len = n;
    return 0;
}

int proto_pack_bytes(msgpack_packer *pk, const char *s, size_t len) {
    if (msgpack_pack_str(pk, len) != 0)
        return WD_ENOMEM;
    if (len > 0 && msgpack_pack_str_body(pk, s, len) != 0)
        return WD_ENOMEM;
    return 0;
}

int proto_pack_cstr(msgpack_packer *pk, const char *s) {
    return proto_pack_bytes(pk, s, strlen(s));
}

int proto_pack_header(msgpack_packer *pk, const proto_header *hdr, proto_type type) {
    int rc = proto_check_fixed(hdr->sender, PROTO_NAME_MAX, PROTO_STR_NAME, false, NULL);
    if (rc != 0)
        return rc;
    if (msgpack_pack_array(pk, 6) != 0 || msgpack_pack_uint32(pk, PROTO_VERSION) != 0 ||
        msgpack_pack_uint32(pk, (uint32_t)type) != 0)
        return WD_ENOMEM;
    if (proto_pack_cstr(pk, hdr->sender) != 0)
        return WD_ENOMEM;
    if (msgpack_pack_uint64(pk, hdr->seq) != 0 || msgpack_pack_uint64(pk, hdr->ts_ns) != 0)
        return WD_ENOMEM;
    return 0;
}

int proto_pack_finish(msgpack_sbuffer *out, size_t start, int rc) {
    if (rc == 0 && out->size - start > PROTO_MSG_MAX)
        rc = WD_ETOOBIG;
    if (rc != 0)
        out->size = start; /* the sbuffer only appends; forget the partial message */
    return rc;
}
