/* libFuzzer target: proto_alert_unpack and proto_alert_reply_unpack on the
 * same input. Whatever either accepts is packed again, decoded again and
 * compared (pack is canonical: the second encoding is byte-identical), and
 * every refusal must carry one of the documented codes and a message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_alert.h"
#include "wd_error.h"

#define FUZZ_CHECK(cond)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz_proto_alert: check failed: %s (line %d)\n", #cond,           \
                    __LINE__);                                                                 \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static proto_alert fa, fb;

static void check_refusal(int rc, const char *err) {
    FUZZ_CHECK(rc == WD_EPROTO || rc == WD_ETOOBIG || rc == WD_EINVAL);
    FUZZ_CHECK(strlen(err) > 0);
}

static void alert_roundtrip(const proto_header *h) {
    char err[256];
    proto_header h2;
    msgpack_sbuffer s1, s2;
    msgpack_sbuffer_init(&s1);
    msgpack_sbuffer_init(&s2);
    FUZZ_CHECK(proto_alert_check(&fa, err, sizeof err) == 0);
    int rc = proto_alert_pack(&s1, h, &fa);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(proto_alert_unpack(s1.data, s1.size, &h2, &fb, err, sizeof err) == 0);
    FUZZ_CHECK(memcmp(&fa, &fb, sizeof fa) == 0);
    FUZZ_CHECK(strcmp(h->sender, h2.sender) == 0 && h->seq == h2.seq && h->ts_ns == h2.ts_ns);
    FUZZ_CHECK(proto_alert_pack(&s2, &h2, &fb) == 0);
    FUZZ_CHECK(s1.size == s2.size && memcmp(s1.data, s2.data, s1.size) == 0);
    msgpack_sbuffer_destroy(&s1);
    msgpack_sbuffer_destroy(&s2);
}

static void reply_roundtrip(const proto_header *h, const proto_alert_reply *r) {
    char err[256];
    proto_header h2;
    proto_alert_reply r2;
    msgpack_sbuffer s1, s2;
    msgpack_sbuffer_init(&s1);
    msgpack_sbuffer_init(&s2);
    FUZZ_CHECK(proto_alert_reply_pack(&s1, h, r) == 0);
    FUZZ_CHECK(proto_alert_reply_unpack(s1.data, s1.size, &h2, &r2, err, sizeof err) == 0);
    FUZZ_CHECK(memcmp(r, &r2, sizeof r2) == 0);
    FUZZ_CHECK(proto_alert_reply_pack(&s2, &h2, &r2) == 0);
    FUZZ_CHECK(s1.size == s2.size && memcmp(s1.data, s2.data, s1.size) == 0);
    msgpack_sbuffer_destroy(&s1);
    msgpack_sbuffer_destroy(&s2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256] = "";
    proto_header h;
    int rc = proto_alert_unpack(data, size, &h, &fa, err, sizeof err);
    if (rc == 0) {
        /* Unpack zeroes the struct first, so padding and tails compare. */
        alert_roundtrip(&h);
    } else {
        check_refusal(rc, err);
    }
    proto_alert_reply r;
    err[0] = '\0';
    rc = proto_alert_reply_unpack(data, size, &h, &r, err, sizeof err);
    if (rc == 0)
        reply_roundtrip(&h, &r);
    else
        check_refusal(rc, err);
    return 0;
}
