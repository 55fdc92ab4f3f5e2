// Writes the seed corpus of the fuzz_proto_* targets: valid messages of each
// type made by the pack functions, plus a few malformed ones. Not built by
// CMake; run it by hand from the repository root after a wire format change
// (the gcc command is one line):
//
//   gcc -std=c11 -D_GNU_SOURCE -Iproto -Icommon -o /tmp/make_seeds
//       tests/fuzz/make_seeds.c proto/*.c common/wd_error.c -lmsgpackc
//   /tmp/make_seeds tests/fuzz/corpus
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto.h"

static const char *root;
static const proto_header hdr = {.sender = "seed", .seq = 42, .ts_ns = 1700000000000000000ull};

static void put(const char *target, const char *name, const void *buf, size_t len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/fuzz_proto_%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/fuzz_proto_%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void put_sb(const char *target, const char *name, msgpack_sbuffer *sb) {
    put(target, name, sb->data, sb->size);
    msgpack_sbuffer_clear(sb);
}

/* An envelope of type around a body the caller packs next. */
static void env_head(msgpack_packer *pk, unsigned version, unsigned type) {
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint32(pk, version);
    msgpack_pack_uint32(pk, type);
    msgpack_pack_str_with_body(pk, "seed", 4);
    msgpack_pack_uint64(pk, 1);
    msgpack_pack_uint64(pk, 2);
}

static void kv_str(msgpack_packer *pk, const char *k, const char *v) {
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void kv_uint(msgpack_packer *pk, const char *k, uint64_t v) {
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_uint64(pk, v);
}

static proto_heartbeat hb;

int main(int argc, char **argv) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
        return 2;
    }
    root = argv[1];
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

    /* valid messages, one of each type (also seeds for the envelope target) */
    hb.pid = 1234;
    hb.progress = 99;
    hb.loop_lag_us = 250;
    hb.n_breakers = 3;
    hb.breakers[0] = (proto_breaker){"redis", PROTO_BRK_CLOSED};
    hb.breakers[1] = (proto_breaker){"pg", PROTO_BRK_HALF_OPEN};
    hb.breakers[2] = (proto_breaker){"broker_api", PROTO_BRK_FORCED_OPEN};
    hb.n_metrics = 3;
    hb.metrics[0] = (proto_metric){"warden_cycles_total", 12345};
    hb.metrics[1] = (proto_metric){"warden_cycle_seconds{quantile=\"0.5\"}", 0.0021};
    hb.metrics[2] = (proto_metric){"warden_drift", -3.5};
    proto_heartbeat_pack(&sb, &hdr, &hb);
    put("heartbeat", "valid_full", sb.data, sb.size);
    put_sb("envelope", "heartbeat", &sb);
    hb.n_breakers = hb.n_metrics = 0;
    proto_heartbeat_pack(&sb, &hdr, &hb);
    put_sb("heartbeat", "valid_minimal", &sb);

    proto_ready rd = {.pid = 1234, .version = "0.1.0"};
    proto_ready_pack(&sb, &hdr, &rd);
    put("ready", "valid", sb.data, sb.size);
    put_sb("envelope", "ready", &sb);

    proto_ctl_request rq = {.cmd = "reset", .target = "notifier", .n_args = 2,
                            .args = {{"breaker", "slack"}, {"reason", "provider fixed"}}};
    proto_ctl_request_pack(&sb, &hdr, &rq);
    put("ctl_request", "valid_args", sb.data, sb.size);
    put_sb("envelope", "ctl_request", &sb);
    proto_ctl_request cmd_only = {.cmd = "status"};
    proto_ctl_request_pack(&sb, &hdr, &cmd_only);
    put_sb("ctl_request", "valid_cmd_only", &sb);

    const char *json = "{\"workers\":[{\"name\":\"aggregator\",\"state\":\"RUNNING\"}]}";
    proto_ctl_reply rp = {.status = 0, .data = json, .data_len = strlen(json)};
    proto_ctl_reply_pack(&sb, &hdr, &rp);
    put("ctl_reply", "valid_data", sb.data, sb.size);
    put_sb("envelope", "ctl_reply", &sb);
    proto_ctl_reply rp_err = {.status = -6, .error = "no such worker"};
    proto_ctl_reply_pack(&sb, &hdr, &rp_err);
    put_sb("ctl_reply", "valid_error", &sb);

    proto_event ev = {.kind = "state", .worker = "aggregator", .from = "RUNNING",
                      .to = "BACKOFF", .reason = "exited with status 1"};
    proto_event_pack(&sb, &hdr, &ev);
    put("event", "valid_state", sb.data, sb.size);
    put_sb("envelope", "event", &sb);
    proto_event br = {.kind = "breaker", .worker = "notifier", .from = "closed", .to = "open",
                      .reason = "5 consecutive failures"};
    proto_event_pack(&sb, &hdr, &br);
    put_sb("event", "valid_breaker", &sb);

    /* malformed envelopes */
    proto_ready_pack(&sb, &hdr, &rd);
    put("envelope", "truncated", sb.data, sb.size - 3);
    msgpack_sbuffer_clear(&sb);
    env_head(&pk, 2, PROTO_T_READY);
    msgpack_pack_map(&pk, 0);
    put_sb("envelope", "bad_version", &sb);
    env_head(&pk, 1, PROTO_T_HEARTBEAT); /* a body claiming 2^32-1 elements */
    msgpack_sbuffer_write(&sb, "\xdd\xff\xff\xff\xff", 5);
    put_sb("envelope", "array32_claim", &sb);

    /* malformed heartbeats */
    env_head(&pk, 1, PROTO_T_HEARTBEAT);
    msgpack_pack_map(&pk, 4);
    kv_uint(&pk, "pid", 1);
    kv_uint(&pk, "progress", 1);
    kv_uint(&pk, "loop_lag_us", 1);
    msgpack_pack_str_with_body(&pk, "metrics", 7);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "m", 1);
    msgpack_sbuffer_write(&sb, "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00", 9); /* NaN */
    put_sb("heartbeat", "metric_nan", &sb);
    env_head(&pk, 1, PROTO_T_HEARTBEAT);
    msgpack_pack_map(&pk, 4);
    kv_uint(&pk, "pid", 1);
    kv_uint(&pk, "progress", 1);
    kv_uint(&pk, "loop_lag_us", 1);
    msgpack_pack_str_with_body(&pk, "breakers", 8);
    msgpack_pack_map(&pk, 1);
    kv_str(&pk, "redis", "ajar");
    put_sb("heartbeat", "unknown_state", &sb);
    msgpack_pack_map(&pk, 1); /* a bare body, nested too deep */
    msgpack_pack_str_with_body(&pk, "x", 1);
    for (int i = 0; i < 9; i++)
        msgpack_pack_array(&pk, 1);
    msgpack_pack_nil(&pk);
    put_sb("heartbeat", "bare_body_too_deep", &sb);

    /* malformed ready, requests, replies, events */
    env_head(&pk, 1, PROTO_T_READY);
    msgpack_pack_map(&pk, 1);
    kv_uint(&pk, "pid", 0);
    put_sb("ready", "pid_zero_no_version", &sb);
    env_head(&pk, 1, PROTO_T_CTL_REQUEST);
    msgpack_pack_map(&pk, 2);
    kv_str(&pk, "cmd", "stop");
    msgpack_pack_str_with_body(&pk, "args", 4);
    msgpack_pack_map(&pk, 2);
    kv_str(&pk, "a", "1");
    kv_str(&pk, "a", "2");
    put_sb("ctl_request", "dup_arg", &sb);
    env_head(&pk, 1, PROTO_T_CTL_REPLY);
    msgpack_pack_map(&pk, 2);
    kv_uint(&pk, "status", 3);
    msgpack_pack_str_with_body(&pk, "data", 4);
    msgpack_pack_bin_with_body(&pk, "{}", 2);
    put_sb("ctl_reply", "positive_status_bin_data", &sb);
    env_head(&pk, 1, PROTO_T_EVENT);
    msgpack_pack_map(&pk, 2);
    kv_str(&pk, "kind", "party");
    kv_str(&pk, "worker", "w\x01");
    put_sb("event", "unknown_kind", &sb);

    msgpack_sbuffer_destroy(&sb);
    return 0;
}
