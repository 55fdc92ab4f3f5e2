/* libFuzzer target: proto_envelope_unpack, then proto_ctl_request_unpack, with a
 * pack/unpack round trip of every accepted input (see fuzz_proto.h). */
#include "fuzz_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_proto_run(data, size, PROTO_T_CTL_REQUEST);
}
