/* Market data batch: pack and unpack. See proto_md.h and proto/PROTOCOL.md. */
#include "proto_md.h"
#include "proto_internal.h"
#include "wd_error.h"

#include <math.h>
#include <string.h>

/* topic str, envelope array, body array, quotes/bars arrays, one quote/bar. */
#define MD_DEPTH_MAX 4
#define MD_BODY_FIELDS 2

static const char WHAT[] = "md_batch";

bool proto_md_name_ok(const char *s, size_t len, size_t max) {
    if (s == NULL || len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || c == '/' || c == ':';
        if (!ok)
            return false;
    }
    return true;
}

static bool topic_ok(const char *s, size_t len) {
    return (len == 1 && s[0] == '*') || proto_md_name_ok(s, len, PROTO_MD_SYMBOL_MAX);
}

int proto_md_topic_encode(const char *topic, uint8_t *buf, size_t buflen) {
    if (topic == NULL || buf == NULL)
        return WD_EINVAL;
    size_t n = strnlen(topic, PROTO_MD_TOPIC_MAX + 1);
    if (!topic_ok(topic, n) || buflen < n + 1)
        return WD_EINVAL;
    buf[0] = (uint8_t)(0xa0u | n); /* fixstr: n <= 31 */
    memcpy(buf + 1, topic, n);
    return (int)(n + 1);
}

/* ---- validation shared by pack and unpack ---- */

static bool num_ok(double v, bool nonneg) { return isfinite(v) && (!nonneg || v >= 0); }

static int check_side(double px, double sz, const char *venue, bool empty, int i,
                      const char *side, char *err, size_t errlen) {
    size_t vl = strnlen(venue, PROTO_MD_VENUE_MAX + 1);
    if (!num_ok(px, true) || !num_ok(sz, true))
        return proto_fail(err, errlen, WD_EINVAL,
                          "%s: quote %d: field '%s': negative or not finite", WHAT, i, side);
    if (empty) {
        if (px != 0 || sz != 0 || vl != 0)
            return proto_fail(err, errlen, WD_EINVAL,
                              "%s: quote %d: field '%s': empty side must be 0, 0, \"\"", WHAT,
                              i, side);
        return 0;
    }
    if (px <= 0 || !proto_md_name_ok(venue, vl, PROTO_MD_VENUE_MAX))
        return proto_fail(err, errlen, WD_EINVAL,
                          "%s: quote %d: field '%s': needs a price > 0 and a venue name", WHAT,
                          i, side);
    return 0;
}

static int check_quote(const proto_md_quote *q, int i, char *err, size_t errlen) {
    int rc;
    if (!proto_md_name_ok(q->symbol, strnlen(q->symbol, PROTO_MD_SYMBOL_MAX + 1),
                          PROTO_MD_SYMBOL_MAX))
        return proto_fail(err, errlen, WD_EINVAL, "%s: quote %d: field 'symbol': invalid", WHAT,
                          i);
    if (q->flags & ~PROTO_MD_FLAGS_ALL)
        return proto_fail(err, errlen, WD_EINVAL, "%s: quote %d: field 'flags': unknown bits",
                          WHAT, i);
    if ((rc = check_side(q->bid, q->bid_size, q->bid_venue, q->flags & PROTO_MD_NO_BID, i,
                         "bid", err, errlen)) != 0)
        return rc;
    if ((rc = check_side(q->ask, q->ask_size, q->ask_venue, q->flags & PROTO_MD_NO_ASK, i,
                         "ask", err, errlen)) != 0)
        return rc;
    if (!num_ok(q->mid, true) || !num_ok(q->spread, false))
        return proto_fail(err, errlen, WD_EINVAL,
                          "%s: quote %d: field 'mid'/'spread': negative or not finite", WHAT, i);
    return 0;
}

static int check_bar(const proto_md_bar *b, int i, char *err, size_t errlen) {
    if (!proto_md_name_ok(b->symbol, strnlen(b->symbol, PROTO_MD_SYMBOL_MAX + 1),
                          PROTO_MD_SYMBOL_MAX))
        return proto_fail(err, errlen, WD_EINVAL, "%s: bar %d: field 'symbol': invalid", WHAT, i);
    if (b->interval_ms == 0 || b->count == 0)
        return proto_fail(err, errlen, WD_EINVAL,
                          "%s: bar %d: field 'interval_ms'/'count': must be >= 1", WHAT, i);
    if (!num_ok(b->open, true) || !num_ok(b->high, true) || !num_ok(b->low, true) ||
        !num_ok(b->close, true) || !num_ok(b->volume, true))
        return proto_fail(err, errlen, WD_EINVAL,
                          "%s: bar %d: field 'ohlcv': negative or not finite", WHAT, i);
    if (b->low > b->open || b->low > b->close || b->high < b->open || b->high < b->close)
        return proto_fail(err, errlen, WD_EINVAL,
                          "%s: bar %d: field 'ohlcv': low/high do not bound open/close", WHAT,
                          i);
    return 0;
}

/* ---- pack ---- */

static int pack_str(msgpack_packer *pk, const char *s) {
    return proto_pack_bytes(pk, s, strlen(s));
}

static int pack_quote(msgpack_packer *pk, const proto_md_quote *q) {
    int rc = 0;
    rc |= msgpack_pack_array(pk, PROTO_MD_QUOTE_FIELDS);
    rc |= pack_str(pk, q->symbol);
    rc |= msgpack_pack_double(pk, q->bid);
    rc |= msgpack_pack_double(pk, q->bid_size);
    rc |= pack_str(pk, q->bid_venue);
    rc |= msgpack_pack_double(pk, q->ask);
    rc |= msgpack_pack_double(pk, q->ask_size);
    rc |= pack_str(pk, q->ask_venue);
    rc |= msgpack_pack_double(pk, q->mid);
    rc |= msgpack_pack_double(pk, q->spread);
    rc |= msgpack_pack_uint32(pk, q->flags);
    rc |= msgpack_pack_uint32(pk, q->n_venues);
    rc |= msgpack_pack_uint64(pk, q->ts_ns);
    rc |= msgpack_pack_uint64(pk, q->recv_ns);
    return rc != 0 ? WD_ENOMEM : 0;
}

static int pack_bar(msgpack_packer *pk, const proto_md_bar *b) {
    int rc = 0;
    rc |= msgpack_pack_array(pk, PROTO_MD_BAR_FIELDS);
    rc |= pack_str(pk, b->symbol);
    rc |= msgpack_pack_uint64(pk, b->interval_ms);
    rc |= msgpack_pack_uint64(pk, b->start_ns);
    rc |= msgpack_pack_double(pk, b->open);
    rc |= msgpack_pack_double(pk, b->high);
    rc |= msgpack_pack_double(pk, b->low);
    rc |= msgpack_pack_double(pk, b->close);
    rc |= msgpack_pack_double(pk, b->volume);
    rc |= msgpack_pack_uint64(pk, b->count);
    return rc != 0 ? WD_ENOMEM : 0;
}

int proto_md_batch_pack(msgpack_sbuffer *out, const char *topic, const proto_header *hdr,
                        const proto_md_quote *quotes, uint32_t n_quotes,
                        const proto_md_bar *bars, uint32_t n_bars) {
    if (out == NULL || topic == NULL || hdr == NULL || (n_quotes && !quotes) ||
        (n_bars && !bars))
        return WD_EINVAL;
    if (n_quotes > PROTO_MD_QUOTES_MAX || n_bars > PROTO_MD_BARS_MAX)
        return WD_ETOOBIG;
    size_t tl = strnlen(topic, PROTO_MD_TOPIC_MAX + 1);
    if (!topic_ok(topic, tl))
        return WD_EINVAL;
    for (uint32_t i = 0; i < n_quotes; i++)
        if (check_quote(&quotes[i], (int)i, NULL, 0) != 0)
            return WD_EINVAL;
    for (uint32_t i = 0; i < n_bars; i++)
        if (check_bar(&bars[i], (int)i, NULL, 0) != 0)
            return WD_EINVAL;
    size_t start = out->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    int rc = proto_pack_bytes(&pk, topic, tl);
    if (rc == 0)
        rc = proto_pack_header(&pk, hdr, (proto_type)PROTO_T_MD_BATCH);
    if (rc == 0 && (msgpack_pack_array(&pk, MD_BODY_FIELDS) != 0 ||
                    msgpack_pack_array(&pk, n_quotes) != 0))
        rc = WD_ENOMEM;
    for (uint32_t i = 0; rc == 0 && i < n_quotes; i++)
        rc = pack_quote(&pk, &quotes[i]);
    if (rc == 0 && msgpack_pack_array(&pk, n_bars) != 0)
        rc = WD_ENOMEM;
    for (uint32_t i = 0; rc == 0 && i < n_bars; i++)
        rc = pack_bar(&pk, &bars[i]);
    return proto_pack_finish(out, start, rc);
}

/* ---- unpack ---- */

static int get_num(const msgpack_object *o, double *out, int idx, const char *kind,
                   const char *field, char *err, size_t errlen) {
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = (double)o->via.u64;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = (double)o->via.i64;
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *out = o->via.f64;
        break;
    default:
        return proto_fail(err, errlen, WD_EPROTO, "%s: %s %d: field '%s': expected a number",
                          WHAT, kind, idx, field);
    }
    return 0;
}

static int get_u(const msgpack_object *o, uint64_t max, uint64_t *out, int idx,
                 const char *kind, const char *field, char *err, size_t errlen) {
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return proto_fail(err, errlen, WD_EPROTO,
                          "%s: %s %d: field '%s': expected unsigned integer", WHAT, kind, idx,
                          field);
    if (o->via.u64 > max)
        return proto_fail(err, errlen, WD_EINVAL, "%s: %s %d: field '%s': out of range", WHAT,
                          kind, idx, field);
    *out = o->via.u64;
    return 0;
}

/* A name field (symbol, venue); empty only when allow_empty. */
static int get_name(const msgpack_object *o, char *dst, size_t max, bool allow_empty, int idx,
                    const char *kind, const char *field, char *err, size_t errlen) {
    if (o->type != MSGPACK_OBJECT_STR)
        return proto_fail(err, errlen, WD_EPROTO, "%s: %s %d: field '%s': expected str", WHAT,
                          kind, idx, field);
    size_t n = o->via.str.size;
    if (n > max)
        return proto_fail(err, errlen, WD_ETOOBIG, "%s: %s %d: field '%s': longer than %zu",
                          WHAT, kind, idx, field, max);
    if (!(n == 0 && allow_empty) && !proto_md_name_ok(o->via.str.ptr, n, max))
        return proto_fail(err, errlen, WD_EINVAL, "%s: %s %d: field '%s': invalid name", WHAT,
                          kind, idx, field);
    memcpy(dst, o->via.str.ptr, n);
    dst[n] = '\0';
    return 0;
}

static int unpack_quote(const msgpack_object *o, proto_md_quote *q, int i, char *err,
                        size_t errlen) {
    static const char K[] = "quote";
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != PROTO_MD_QUOTE_FIELDS)
        return proto_fail(err, errlen, WD_EPROTO, "%s: quote %d: expected an array of %d", WHAT,
                          i, PROTO_MD_QUOTE_FIELDS);
    const msgpack_object *f = o->via.array.ptr;
    uint64_t u;
    int rc;
    memset(q, 0, sizeof *q);
    if ((rc = get_name(&f[0], q->symbol, PROTO_MD_SYMBOL_MAX, false, i, K, "symbol", err,
                       errlen)) ||
        (rc = get_num(&f[1], &q->bid, i, K, "bid", err, errlen)) ||
        (rc = get_num(&f[2], &q->bid_size, i, K, "bid_size", err, errlen)) ||
        (rc = get_name(&f[3], q->bid_venue, PROTO_MD_VENUE_MAX, true, i, K, "bid_venue", err,
                       errlen)) ||
        (rc = get_num(&f[4], &q->ask, i, K, "ask", err, errlen)) ||
        (rc = get_num(&f[5], &q->ask_size, i, K, "ask_size", err, errlen)) ||
        (rc = get_name(&f[6], q->ask_venue, PROTO_MD_VENUE_MAX, true, i, K, "ask_venue", err,
                       errlen)) ||
        (rc = get_num(&f[7], &q->mid, i, K, "mid", err, errlen)) ||
        (rc = get_num(&f[8], &q->spread, i, K, "spread", err, errlen)))
        return rc;
    if ((rc = get_u(&f[9], UINT32_MAX, &u, i, K, "flags", err, errlen)))
        return rc;
    q->flags = (uint32_t)u;
    if ((rc = get_u(&f[10], UINT32_MAX, &u, i, K, "n_venues", err, errlen)))
        return rc;
    q->n_venues = (uint32_t)u;
    if ((rc = get_u(&f[11], UINT64_MAX, &q->ts_ns, i, K, "ts_ns", err, errlen)) ||
        (rc = get_u(&f[12], UINT64_MAX, &q->recv_ns, i, K, "recv_ns", err, errlen)))
        return rc;
    return check_quote(q, i, err, errlen);
}

static int unpack_bar(const msgpack_object *o, proto_md_bar *b, int i, char *err,
                      size_t errlen) {
    static const char K[] = "bar";
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != PROTO_MD_BAR_FIELDS)
        return proto_fail(err, errlen, WD_EPROTO, "%s: bar %d: expected an array of %d", WHAT, i,
                          PROTO_MD_BAR_FIELDS);
    const msgpack_object *f = o->via.array.ptr;
    int rc;
    memset(b, 0, sizeof *b);
    if ((rc = get_name(&f[0], b->symbol, PROTO_MD_SYMBOL_MAX, false, i, K, "symbol", err,
                       errlen)) ||
        (rc = get_u(&f[1], UINT64_MAX, &b->interval_ms, i, K, "interval_ms", err, errlen)) ||
        (rc = get_u(&f[2], UINT64_MAX, &b->start_ns, i, K, "start_ns", err, errlen)) ||
        (rc = get_num(&f[3], &b->open, i, K, "open", err, errlen)) ||
        (rc = get_num(&f[4], &b->high, i, K, "high", err, errlen)) ||
        (rc = get_num(&f[5], &b->low, i, K, "low", err, errlen)) ||
        (rc = get_num(&f[6], &b->close, i, K, "close", err, errlen)) ||
        (rc = get_num(&f[7], &b->volume, i, K, "volume", err, errlen)) ||
        (rc = get_u(&f[8], UINT64_MAX, &b->count, i, K, "count", err, errlen)))
        return rc;
    return check_bar(b, i, err, errlen);
}

static int unpack_envelope(const msgpack_object *o, proto_md_batch *out, char *err,
                           size_t errlen) {
    uint64_t v;
    int rc;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 6)
        return proto_fail(err, errlen, WD_EPROTO, "%s: envelope: expected an array of 6", WHAT);
    const msgpack_object *f = o->via.array.ptr;
    if ((rc = proto_get_uint(&f[0], UINT32_MAX, &v, WHAT, "version", err, errlen)))
        return rc;
    if (v != PROTO_VERSION)
        return proto_fail(err, errlen, WD_EINVAL, "%s: field 'version': unsupported %llu", WHAT,
                          (unsigned long long)v);
    if ((rc = proto_get_uint(&f[1], UINT32_MAX, &v, WHAT, "type", err, errlen)))
        return rc;
    if (v != PROTO_T_MD_BATCH)
        return proto_fail(err, errlen, WD_EPROTO, "%s: field 'type': expected %d, got %llu",
                          WHAT, PROTO_T_MD_BATCH, (unsigned long long)v);
    if ((rc = proto_get_str(&f[2], out->hdr.sender, PROTO_NAME_MAX, PROTO_STR_NAME, false, WHAT,
                            "sender", err, errlen)) ||
        (rc = proto_get_uint(&f[3], UINT64_MAX, &out->hdr.seq, WHAT, "seq", err, errlen)) ||
        (rc = proto_get_uint(&f[4], UINT64_MAX, &out->hdr.ts_ns, WHAT, "ts_ns", err, errlen)))
        return rc;
    const msgpack_object *body = &f[5];
    if (body->type != MSGPACK_OBJECT_ARRAY || body->via.array.size != MD_BODY_FIELDS)
        return proto_fail(err, errlen, WD_EPROTO, "%s: field 'body': expected an array of 2",
                          WHAT);
    const msgpack_object *qs = &body->via.array.ptr[0], *bs = &body->via.array.ptr[1];
    if (qs->type != MSGPACK_OBJECT_ARRAY || bs->type != MSGPACK_OBJECT_ARRAY)
        return proto_fail(err, errlen, WD_EPROTO, "%s: field 'quotes'/'bars': expected arrays",
                          WHAT);
    if (qs->via.array.size > PROTO_MD_QUOTES_MAX || bs->via.array.size > PROTO_MD_BARS_MAX)
        return proto_fail(err, errlen, WD_ETOOBIG, "%s: field 'quotes'/'bars': more than %d",
                          WHAT, PROTO_MD_QUOTES_MAX);
    for (uint32_t i = 0; i < qs->via.array.size; i++)
        if ((rc = unpack_quote(&qs->via.array.ptr[i], &out->quotes[i], (int)i, err, errlen)))
            return rc;
    out->n_quotes = qs->via.array.size;
    for (uint32_t i = 0; i < bs->via.array.size; i++)
        if ((rc = unpack_bar(&bs->via.array.ptr[i], &out->bars[i], (int)i, err, errlen)))
            return rc;
    out->n_bars = bs->via.array.size;
    return 0;
}

int proto_md_batch_unpack(const void *buf, size_t len, proto_md_batch *out, char *err,
                          size_t errlen) {
    const uint8_t *p = buf;
    const char *why = "";
    size_t tend = 0, end = 0, off = 0;
    if (buf == NULL || out == NULL)
        return proto_fail(err, errlen, WD_EINVAL, "%s: NULL argument", WHAT);
    if (err && errlen)
        err[0] = '\0';
    out->n_quotes = out->n_bars = 0;
    if (len > PROTO_MSG_MAX)
        return proto_fail(err, errlen, WD_ETOOBIG, "%s: larger than %u bytes", WHAT,
                          PROTO_MSG_MAX);
    /* The topic: one scalar str. */
    int rc = proto_wire_scan(p, len, 0, 1, &tend, &why);
    if (rc != 0)
        return proto_fail(err, errlen, rc, "%s: field 'topic': %s", WHAT, why);
    size_t tl;
    const char *tp;
    if (p[0] >= 0xa0 && p[0] <= 0xbf)
        tl = p[0] & 0x1fu, tp = (const char *)p + 1;
    else if (p[0] == 0xd9 && tend >= 2)
        tl = p[1], tp = (const char *)p + 2;
    else
        return proto_fail(err, errlen, WD_EPROTO, "%s: field 'topic': expected str", WHAT);
    if (!topic_ok(tp, tl))
        return proto_fail(err, errlen, tl > PROTO_MD_TOPIC_MAX ? WD_ETOOBIG : WD_EINVAL,
                          "%s: field 'topic': not a symbol or \"*\"", WHAT);
    memcpy(out->topic, tp, tl);
    out->topic[tl] = '\0';
    /* The envelope: bounded scan before msgpack-c sees it (proto_internal.h). */
    rc = proto_wire_scan(p + tend, len - tend, MD_DEPTH_MAX, PROTO_MD_OBJECTS_MAX, &end, &why);
    if (rc != 0)
        return proto_fail(err, errlen, rc, "%s: %s", WHAT, why);
    if (tend + end != len)
        return proto_fail(err, errlen, WD_EPROTO, "%s: trailing bytes", WHAT);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    msgpack_unpack_return ur = msgpack_unpack_next(&u, (const char *)p + tend, len - tend, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len - tend) {
        rc = proto_fail(err, errlen, ur == MSGPACK_UNPACK_NOMEM_ERROR ? WD_ENOMEM : WD_EPROTO,
                        "%s: undecodable msgpack", WHAT);
        goto done;
    }
    rc = unpack_envelope(&u.data, out, err, errlen);
    if (rc != 0)
        out->n_quotes = out->n_bars = 0;
done:
    msgpack_unpacked_destroy(&u);
    return rc;
}
