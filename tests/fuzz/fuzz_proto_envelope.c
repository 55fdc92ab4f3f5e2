/* libFuzzer target: proto_envelope_unpack, then the typed unpack that the
 * envelope's type names, with a pack/unpack round trip of every accepted
 * input (see fuzz_proto.h). */
#include "fuzz_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_proto_run(data, size, 0);
}
