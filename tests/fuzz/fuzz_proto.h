/* Shared body of the fuzz_proto_* targets: decode the input, and whenever a
 * decode succeeds, re-pack what it produced and decode that again. Aborts if
 * the round trip fails or disagrees, or if the decoders break their own
 * contract (a wrong-type envelope accepted, a body outside the input). */
#ifndef WD_FUZZ_PROTO_H
#define WD_FUZZ_PROTO_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "wd_error.h"

#define FUZZ_CHECK(cond)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz_proto: check failed: %s (line %d)\n", #cond, __LINE__);      \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* Big structs (a heartbeat is ~53 KiB) live here rather than on the stack. */
static union {
    proto_heartbeat hb;
    proto_ready rd;
    proto_ctl_request rq;
    proto_ctl_reply rp;
    proto_event ev;
} fuzz_a, fuzz_b;

static int fuzz_unpack(const proto_envelope *env, int type, void *out, char *err, size_t n) {
    switch (type) {
    case PROTO_T_HEARTBEAT: return proto_heartbeat_unpack(env, out, err, n);
    case PROTO_T_READY: return proto_ready_unpack(env, out, err, n);
    case PROTO_T_CTL_REQUEST: return proto_ctl_request_unpack(env, out, err, n);
    case PROTO_T_CTL_REPLY: return proto_ctl_reply_unpack(env, out, err, n);
    case PROTO_T_EVENT: return proto_event_unpack(env, out, err, n);
    }
    abort();
}

static int fuzz_pack(msgpack_sbuffer *sb, const proto_header *h, int type, const void *in) {
    switch (type) {
    case PROTO_T_HEARTBEAT: return proto_heartbeat_pack(sb, h, in);
    case PROTO_T_READY: return proto_ready_pack(sb, h, in);
    case PROTO_T_CTL_REQUEST: return proto_ctl_request_pack(sb, h, in);
    case PROTO_T_CTL_REPLY: return proto_ctl_reply_pack(sb, h, in);
    case PROTO_T_EVENT: return proto_event_pack(sb, h, in);
    }
    abort();
}

static size_t fuzz_size(int type) {
    switch (type) {
    case PROTO_T_HEARTBEAT: return sizeof(proto_heartbeat);
    case PROTO_T_READY: return sizeof(proto_ready);
    case PROTO_T_CTL_REQUEST: return sizeof(proto_ctl_request);
    case PROTO_T_CTL_REPLY: return sizeof(proto_ctl_reply);
    default: return sizeof(proto_event);
    }
}

static int fuzz_same(int type, const void *a, const void *b) {
    if (type != PROTO_T_CTL_REPLY) /* unpack zeroes the struct first: bytes compare */
        return memcmp(a, b, fuzz_size(type)) == 0;
    const proto_ctl_reply *x = a, *y = b;
    return x->status == y->status && strcmp(x->error, y->error) == 0 &&
           x->data_len == y->data_len &&
           (x->data_len == 0 || memcmp(x->data, y->data, x->data_len) == 0);
}

/* env decoded fine and its body decodes as type: check the round trip. */
static void fuzz_roundtrip(const proto_envelope *env, int type, size_t insize) {
    char err[256];
    msgpack_sbuffer s1, s2;
    proto_envelope e1;
    msgpack_sbuffer_init(&s1);
    msgpack_sbuffer_init(&s2);
    int rc = fuzz_pack(&s1, &env->hdr, type, &fuzz_a);
    /* Re-encoding may add the optional fields a peer left out, so an input
     * already at the size limit may not fit once packed. */
    if (rc == WD_ETOOBIG && insize > PROTO_MSG_MAX - 4096)
        goto out;
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(proto_envelope_unpack(s1.data, s1.size, &e1, err, sizeof err) == 0);
    FUZZ_CHECK((int)e1.type == type && e1.version == PROTO_VERSION);
    FUZZ_CHECK(strcmp(e1.hdr.sender, env->hdr.sender) == 0);
    FUZZ_CHECK(e1.hdr.seq == env->hdr.seq && e1.hdr.ts_ns == env->hdr.ts_ns);
    FUZZ_CHECK(fuzz_unpack(&e1, type, &fuzz_b, err, sizeof err) == 0);
    FUZZ_CHECK(fuzz_same(type, &fuzz_a, &fuzz_b));
    /* Packing is canonical: the second encoding is byte-identical. */
    FUZZ_CHECK(fuzz_pack(&s2, &e1.hdr, type, &fuzz_b) == 0);
    FUZZ_CHECK(s1.size == s2.size && memcmp(s1.data, s2.data, s1.size) == 0);
out:
    msgpack_sbuffer_destroy(&s1);
    msgpack_sbuffer_destroy(&s2);
}

/* want == 0: the envelope target, which decodes whatever type the envelope
 * names. Otherwise only that type's body decoder is exercised: on the body of
 * a valid envelope (whatever type it names), or on the whole input as a body
 * when it is no envelope at all, so the fuzzer can reach the body decoder
 * without first having to build an envelope around it. */
static int fuzz_proto_run(const uint8_t *data, size_t size, int want) {
    char err[256] = "";
    proto_envelope env;
    int rc = proto_envelope_unpack(data, size, &env, err, sizeof err);
    if (rc == 0) {
        FUZZ_CHECK(env.version == PROTO_VERSION);
        FUZZ_CHECK(env.hdr.sender[0] != '\0' && strlen(env.hdr.sender) <= PROTO_NAME_MAX);
        FUZZ_CHECK((const uint8_t *)env.body > data);
        FUZZ_CHECK((const uint8_t *)env.body + env.body_len == data + size);
    } else {
        FUZZ_CHECK(rc == WD_EPROTO || rc == WD_ETOOBIG || rc == WD_EINVAL);
        FUZZ_CHECK(strlen(err) > 0);
        if (want == 0)
            return 0;
        memset(&env, 0, sizeof env);
        env.version = PROTO_VERSION;
        memcpy(env.hdr.sender, "fuzz", 5);
        env.body = (const char *)data;
        env.body_len = size;
    }
    int type = want ? want : (int)env.type;
    if (want != 0 && (int)env.type != want) {
        /* The typed decoders refuse another type's envelope. */
        if (env.type != 0)
            FUZZ_CHECK(fuzz_unpack(&env, want, &fuzz_a, err, sizeof err) == WD_EPROTO);
        env.type = (proto_type)want;
    }
    err[0] = '\0';
    rc = fuzz_unpack(&env, type, &fuzz_a, err, sizeof err);
    if (rc != 0) {
        FUZZ_CHECK(rc == WD_EPROTO || rc == WD_ETOOBIG || rc == WD_EINVAL);
        FUZZ_CHECK(strlen(err) > 0);
        return 0;
    }
    fuzz_roundtrip(&env, type, size);
    return 0;
}

#endif
