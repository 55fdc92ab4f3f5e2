/* libFuzzer target: proto_md_batch_unpack; every accepted input is packed
 * again and must decode to the same batch and pack to the same bytes. */
#include "proto_md.h"
#include "wd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                               \
    do {                                                                                       \
        if (!(c)) {                                                                            \
            fprintf(stderr, "fuzz_proto_md: check failed: %s (line %d)\n", #c, __LINE__);     \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

static proto_md_batch a, b;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    if (proto_md_batch_unpack(data, size, &a, err, sizeof err) != 0)
        return 0;
    msgpack_sbuffer s1, s2;
    msgpack_sbuffer_init(&s1);
    msgpack_sbuffer_init(&s2);
    CHECK(proto_md_batch_pack(&s1, a.topic, &a.hdr, a.quotes, a.n_quotes, a.bars, a.n_bars) == 0);
    CHECK(proto_md_batch_unpack(s1.data, s1.size, &b, err, sizeof err) == 0);
    CHECK(b.n_quotes == a.n_quotes && b.n_bars == a.n_bars);
    CHECK(memcmp(a.quotes, b.quotes, a.n_quotes * sizeof a.quotes[0]) == 0);
    CHECK(memcmp(a.bars, b.bars, a.n_bars * sizeof a.bars[0]) == 0);
    CHECK(proto_md_batch_pack(&s2, b.topic, &b.hdr, b.quotes, b.n_quotes, b.bars, b.n_bars) == 0);
    CHECK(s1.size == s2.size && memcmp(s1.data, s2.data, s1.size) == 0);
    msgpack_sbuffer_destroy(&s1);
    msgpack_sbuffer_destroy(&s2);
    return 0;
}
