/* proto: round trips for every message type, and rejection of malformed
 * input with the exact error code and an err text that names the field.
 *
 * Malformed messages are written as JSON (with ' for ") and converted to
 * msgpack, so each case reads as the message it sends. What JSON cannot say
 * is spliced in as raw msgpack: a string "@hex:cb7ff8..." becomes those bytes
 * (as a value or as a map key). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "proto_internal.h"
#include "wd_error.h"

#define A8 "aaaaaaaa"
#define A32 A8 A8 A8 A8
#define A64 A32 A32
#define A192 A64 A64 A64
#define A512 A64 A64 A64 A64 A64 A64 A64 A64
#define A1024 A512 A512

#define MSG_CAP (PROTO_MSG_MAX + 16)

/* ---- building messages ---- */

static void raw_hex(msgpack_sbuffer *sb, const char *hex) {
    unsigned char byte;
    size_t n = strlen(hex);
    assert_int_equal(n % 2, 0);
    for (size_t i = 0; i < n; i += 2) {
        char pair[3] = {hex[i], hex[i + 1], 0};
        byte = (unsigned char)strtoul(pair, NULL, 16);
        msgpack_sbuffer_write(sb, (const char *)&byte, 1);
    }
}

static void pack_str_or_raw(msgpack_packer *pk, msgpack_sbuffer *sb, const char *s, size_t n) {
    if (n >= 5 && memcmp(s, "@hex:", 5) == 0) {
        raw_hex(sb, s + 5);
        return;
    }
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_json(msgpack_packer *pk, msgpack_sbuffer *sb, json_t *j) {
    const char *k;
    json_t *v;
    size_t i;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach(j, k, v) {
            pack_str_or_raw(pk, sb, k, strlen(k));
            pack_json(pk, sb, v);
        }
        break;
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, v) pack_json(pk, sb, v);
        break;
    case JSON_STRING:
        pack_str_or_raw(pk, sb, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        if (json_integer_value(j) >= 0)
            msgpack_pack_uint64(pk, (uint64_t)json_integer_value(j));
        else
            msgpack_pack_int64(pk, json_integer_value(j));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(j));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        msgpack_pack_nil(pk);
        break;
    }
}

static json_t *parse(const char *text) {
    char *t = strdup(text);
    json_error_t jerr;
    assert_non_null(t);
    for (char *p = t; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_t *j = json_loads(t, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!j)
        fail_msg("bad test JSON '%s': %s", text, jerr.text);
    free(t);
    return j;
}

/* type 0: json is the whole envelope. Otherwise json is the body, wrapped in
 * a valid envelope of that type. Leaves the message in sb. */
static void build_json(msgpack_sbuffer *sb, int type, json_t *j) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (type != 0) {
        msgpack_pack_array(&pk, 6);
        msgpack_pack_uint32(&pk, PROTO_VERSION);
        msgpack_pack_uint32(&pk, (uint32_t)type);
        msgpack_pack_str(&pk, 4);
        msgpack_pack_str_body(&pk, "test", 4);
        msgpack_pack_uint64(&pk, 7);
        msgpack_pack_uint64(&pk, 1000);
    }
    pack_json(&pk, sb, j);
}

static void build(msgpack_sbuffer *sb, int type, const char *text) {
    json_t *j = parse(text);
    build_json(sb, type, j);
    json_decref(j);
}

static proto_heartbeat g_hb, g_hb2;
static proto_ready g_rd;
static proto_ctl_request g_rq;
static proto_ctl_reply g_rp;
static proto_event g_ev;

static int unpack_typed(const proto_envelope *env, int type, char *err, size_t errlen) {
    switch (type) {
    case PROTO_T_HEARTBEAT: return proto_heartbeat_unpack(env, &g_hb, err, errlen);
    case PROTO_T_READY: return proto_ready_unpack(env, &g_rd, err, errlen);
    case PROTO_T_CTL_REQUEST: return proto_ctl_request_unpack(env, &g_rq, err, errlen);
    case PROTO_T_CTL_REPLY: return proto_ctl_reply_unpack(env, &g_rp, err, errlen);
    case PROTO_T_EVENT: return proto_event_unpack(env, &g_ev, err, errlen);
    }
    fail_msg("no such type %d", type);
    return 0;
}

/* Decodes buf as envelope then (if type) typed body; returns the first error. */
static int decode(const void *buf, size_t len, int type, char *err, size_t errlen) {
    proto_envelope env;
    err[0] = '\0';
    int rc = proto_envelope_unpack(buf, len, &env, err, errlen);
    if (rc == 0 && type != 0)
        rc = unpack_typed(&env, type, err, errlen);
    return rc;
}

static void expect(int rc, int code, const char *err, const char *needle, const char *what) {
    if (rc != code)
        fail_msg("%s: rc %d (%s), want %d (%s); err '%s'", what, rc, wd_strerror(rc), code,
                 wd_strerror(code), err);
    if (code != 0 && !strstr(err, needle))
        fail_msg("%s: err '%s' does not name '%s'", what, err, needle);
}

/* ---- the table of malformed (and edge-valid) messages ---- */

typedef struct {
    const char *name;
    int type;         /* 0: json is the whole envelope */
    const char *json;
    int code;         /* 0: must be accepted */
    const char *needle;
} wire_case;

#define HB PROTO_T_HEARTBEAT
#define RD PROTO_T_READY
#define RQ PROTO_T_CTL_REQUEST
#define RP PROTO_T_CTL_REPLY
#define EV PROTO_T_EVENT
#define HB_BASE "'pid':42,'progress':1,'loop_lag_us':0"
#define ENV(v, t, s, q, ts) "[" v "," t "," s "," q "," ts ",{}]"

static const wire_case cases[] = {
    /* envelope */
    {"env_not_array", 0, "{'a':1}", WD_EPROTO, "array of 6"},
    {"env_empty_array", 0, "[]", WD_EPROTO, "array of 6"},
    {"env_arity_5", 0, "[1,1,'w',1,2]", WD_EPROTO, "array of 6"},
    {"env_arity_7", 0, "[1,1,'w',1,2,{},3]", WD_EPROTO, "array of 6"},
    {"env_scalar", 0, "1", WD_EPROTO, "array of 6"},
    {"env_version_2", 0, ENV("2", "1", "'w'", "1", "2"), WD_EINVAL, "'version'"},
    {"env_version_0", 0, ENV("0", "1", "'w'", "1", "2"), WD_EINVAL, "'version'"},
    {"env_version_str", 0, ENV("'1'", "1", "'w'", "1", "2"), WD_EPROTO, "'version'"},
    {"env_version_negative", 0, ENV("-1", "1", "'w'", "1", "2"), WD_EPROTO, "'version'"},
    {"env_version_float", 0, ENV("1.0", "1", "'w'", "1", "2"), WD_EPROTO, "'version'"},
    {"env_type_unknown_6", 0, ENV("1", "6", "'w'", "1", "2"), WD_EINVAL, "'type'"},
    {"env_type_unknown_0", 0, ENV("1", "0", "'w'", "1", "2"), WD_EINVAL, "'type'"},
    {"env_type_reserved_16", 0, ENV("1", "16", "'w'", "1", "2"), WD_EINVAL, "'type'"},
    {"env_type_huge", 0, ENV("1", "4294967297", "'w'", "1", "2"), WD_EINVAL, "'type'"},
    {"env_type_str", 0, ENV("1", "'heartbeat'", "'w'", "1", "2"), WD_EPROTO, "'type'"},
    {"env_type_negative", 0, ENV("1", "-1", "'w'", "1", "2"), WD_EPROTO, "'type'"},
    {"env_sender_int", 0, ENV("1", "1", "5", "1", "2"), WD_EPROTO, "'sender'"},
    {"env_sender_nil", 0, ENV("1", "1", "null", "1", "2"), WD_EPROTO, "'sender'"},
    {"env_sender_bin", 0, ENV("1", "1", "'@hex:c40177'", "1", "2"), WD_EPROTO, "'sender'"},
    {"env_sender_empty", 0, ENV("1", "1", "''", "1", "2"), WD_EINVAL, "'sender'"},
    {"env_sender_63_ok", 0, ENV("1", "1", "'" A32 A8 A8 A8 "aaaaaaa'", "1", "2"), 0, ""},
    {"env_sender_64", 0, ENV("1", "1", "'" A64 "'", "1", "2"), WD_ETOOBIG, "'sender'"},
    {"env_sender_nul", 0, ENV("1", "1", "'a\\u0000b'", "1", "2"), WD_EINVAL, "'sender'"},
    {"env_sender_newline", 0, ENV("1", "1", "'a\\nb'", "1", "2"), WD_EINVAL, "'sender'"},
    {"env_sender_del", 0, ENV("1", "1", "'a\\u007fb'", "1", "2"), WD_EINVAL, "'sender'"},
    {"env_sender_bad_utf8", 0, ENV("1", "1", "'@hex:a2c328'", "1", "2"), WD_EINVAL, "'sender'"},
    {"env_sender_overlong_utf8", 0, ENV("1", "1", "'@hex:a2c0af'", "1", "2"), WD_EINVAL,
     "'sender'"},
    {"env_sender_surrogate", 0, ENV("1", "1", "'@hex:a3eda080'", "1", "2"), WD_EINVAL,
     "'sender'"},
    {"env_sender_utf8_ok", 0, ENV("1", "1", "'w\\u00e9rker'", "1", "2"), 0, ""},
    {"env_seq_negative", 0, ENV("1", "1", "'w'", "-1", "2"), WD_EPROTO, "'seq'"},
    {"env_seq_float", 0, ENV("1", "1", "'w'", "1.5", "2"), WD_EPROTO, "'seq'"},
    {"env_seq_str", 0, ENV("1", "1", "'w'", "'1'", "2"), WD_EPROTO, "'seq'"},
    {"env_seq_u64_max_ok", 0, ENV("1", "1", "'w'", "'@hex:cfffffffffffffffff'", "2"), 0, ""},
    {"env_ts_negative", 0, ENV("1", "1", "'w'", "1", "-5"), WD_EPROTO, "'ts_ns'"},
    {"env_ts_nil", 0, ENV("1", "1", "'w'", "1", "null"), WD_EPROTO, "'ts_ns'"},
    {"env_int8_encoded_ok", 0, "['@hex:d001','@hex:d001','w','@hex:d000','@hex:d100ff',{}]", 0,
     ""},
    {"env_reserved_byte_c1", 0, "[1,1,'w',1,2,'@hex:c1']", WD_EPROTO, "envelope: truncated"},
    {"env_array32_claims_4g", 0, "[1,1,'w',1,2,'@hex:ddffffffff']", WD_EPROTO, "exceeds"},
    {"env_map32_claims_4g", 0, "[1,1,'w',1,2,'@hex:dfffffffff']", WD_EPROTO, "exceeds"},
    {"env_str32_claims_4g", 0, "[1,1,'w',1,2,'@hex:dbffffffff']", WD_EPROTO, "truncated"},
    {"env_ext32_claims_4g", 0, "[1,1,'w',1,2,'@hex:c9ffffffff01']", WD_EPROTO, "truncated"},
    {"env_nested_9_in_body", HB, "{" HB_BASE ",'x':[[[[[[[[1]]]]]]]]}", WD_ETOOBIG, "nested"},
    {"env_nested_8_in_body_ok", HB, "{" HB_BASE ",'x':[[[[[[[1]]]]]]]}", 0, ""},

    /* heartbeat */
    {"hb_ok_minimal", HB, "{" HB_BASE "}", 0, ""},
    {"hb_ok_empty_maps", HB, "{" HB_BASE ",'breakers':{},'metrics':{}}", 0, ""},
    {"hb_ok_unknown_keys_ignored", HB, "{" HB_BASE ",'future':{'a':[1,{'b':null}]},'z':1.5}", 0,
     ""},
    {"hb_unknown_key_reserved_byte", HB, "{" HB_BASE ",'extra':'@hex:c1'}", WD_EPROTO,
     "truncated"},
    {"hb_ok_metric_negative", HB, "{" HB_BASE ",'metrics':{'m':-7}}", 0, ""},
    {"hb_ok_metric_float32", HB, "{" HB_BASE ",'metrics':{'m':'@hex:ca3fc00000'}}", 0, ""},
    {"hb_ok_pid_int8_encoded", HB, "{'pid':'@hex:d005','progress':1,'loop_lag_us':0}", 0, ""},
    {"hb_body_array", HB, "[42,1,0]", WD_EPROTO, "'body'"},
    {"hb_body_int", HB, "5", WD_EPROTO, "'body'"},
    {"hb_body_nil", HB, "null", WD_EPROTO, "'body'"},
    {"hb_body_str", HB, "'pid'", WD_EPROTO, "'body'"},
    {"hb_key_int", HB, "{" HB_BASE ",'@hex:01':1}", WD_EPROTO, "not a string"},
    {"hb_key_nil", HB, "{'@hex:c0':1," HB_BASE "}", WD_EPROTO, "not a string"},
    {"hb_key_dup_pid", HB, "{" HB_BASE ",'@hex:a3706964':43}", WD_EPROTO, "'pid': duplicate"},
    {"hb_missing_pid", HB, "{'progress':1,'loop_lag_us':0}", WD_EPROTO, "'pid': missing"},
    {"hb_missing_progress", HB, "{'pid':1,'loop_lag_us':0}", WD_EPROTO, "'progress': missing"},
    {"hb_missing_lag", HB, "{'pid':1,'progress':0}", WD_EPROTO, "'loop_lag_us': missing"},
    {"hb_empty_body", HB, "{}", WD_EPROTO, "'pid': missing"},
    {"hb_pid_str", HB, "{'pid':'42','progress':1,'loop_lag_us':0}", WD_EPROTO, "'pid'"},
    {"hb_pid_negative", HB, "{'pid':-42,'progress':1,'loop_lag_us':0}", WD_EPROTO, "'pid'"},
    {"hb_pid_float", HB, "{'pid':42.0,'progress':1,'loop_lag_us':0}", WD_EPROTO, "'pid'"},
    {"hb_pid_bool", HB, "{'pid':true,'progress':1,'loop_lag_us':0}", WD_EPROTO, "'pid'"},
    {"hb_pid_zero", HB, "{'pid':0,'progress':1,'loop_lag_us':0}", WD_EINVAL, "'pid'"},
    {"hb_pid_over_u32", HB, "{'pid':4294967296,'progress':1,'loop_lag_us':0}", WD_EINVAL,
     "'pid'"},
    {"hb_progress_negative", HB, "{'pid':1,'progress':-1,'loop_lag_us':0}", WD_EPROTO,
     "'progress'"},
    {"hb_progress_str", HB, "{'pid':1,'progress':'1','loop_lag_us':0}", WD_EPROTO,
     "'progress'"},
    {"hb_lag_str", HB, "{'pid':1,'progress':1,'loop_lag_us':'0'}", WD_EPROTO, "'loop_lag_us'"},
    {"hb_lag_nil", HB, "{'pid':1,'progress':1,'loop_lag_us':null}", WD_EPROTO, "'loop_lag_us'"},
    {"hb_breakers_array", HB, "{" HB_BASE ",'breakers':['redis']}", WD_EPROTO, "'breakers'"},
    {"hb_breakers_nil", HB, "{" HB_BASE ",'breakers':null}", WD_EPROTO, "'breakers'"},
    {"hb_breaker_state_int", HB, "{" HB_BASE ",'breakers':{'redis':1}}", WD_EPROTO,
     "'breakers.state'"},
    {"hb_breaker_state_unknown", HB, "{" HB_BASE ",'breakers':{'redis':'broken'}}", WD_EINVAL,
     "'breakers.state'"},
    {"hb_breaker_state_case", HB, "{" HB_BASE ",'breakers':{'redis':'Closed'}}", WD_EINVAL,
     "'breakers.state'"},
    {"hb_breaker_state_prefix", HB, "{" HB_BASE ",'breakers':{'redis':'close'}}", WD_EINVAL,
     "'breakers.state'"},
    {"hb_breaker_state_nul_suffix", HB, "{" HB_BASE ",'breakers':{'redis':'open\\u0000'}}",
     WD_EINVAL, "'breakers.state'"},
    {"hb_breaker_state_empty", HB, "{" HB_BASE ",'breakers':{'redis':''}}", WD_EINVAL,
     "'breakers.state'"},
    {"hb_breaker_name_64", HB, "{" HB_BASE ",'breakers':{'" A64 "':'open'}}", WD_ETOOBIG,
     "'breakers.name'"},
    {"hb_breaker_name_empty", HB, "{" HB_BASE ",'breakers':{'':'open'}}", WD_EINVAL,
     "'breakers.name'"},
    {"hb_breaker_name_ctrl", HB, "{" HB_BASE ",'breakers':{'re\\tdis':'open'}}", WD_EINVAL,
     "'breakers.name'"},
    {"hb_breaker_name_int", HB, "{" HB_BASE ",'breakers':{'@hex:07':'open'}}", WD_EPROTO,
     "'breakers.name'"},
    {"hb_breaker_dup", HB, "{" HB_BASE ",'breakers':{'pg':'open','@hex:a27067':'closed'}}",
     WD_EINVAL, "'breakers': duplicate"},
    {"hb_metrics_array", HB, "{" HB_BASE ",'metrics':[1]}", WD_EPROTO, "'metrics'"},
    {"hb_metric_value_str", HB, "{" HB_BASE ",'metrics':{'m':'1'}}", WD_EPROTO,
     "'metrics.value'"},
    {"hb_metric_value_nil", HB, "{" HB_BASE ",'metrics':{'m':null}}", WD_EPROTO,
     "'metrics.value'"},
    {"hb_metric_value_map", HB, "{" HB_BASE ",'metrics':{'m':{}}}", WD_EPROTO,
     "'metrics.value'"},
    {"hb_metric_nan", HB, "{" HB_BASE ",'metrics':{'m':'@hex:cb7ff8000000000000'}}", WD_EINVAL,
     "'metrics.value'"},
    {"hb_metric_inf", HB, "{" HB_BASE ",'metrics':{'m':'@hex:cb7ff0000000000000'}}", WD_EINVAL,
     "'metrics.value'"},
    {"hb_metric_neg_inf", HB, "{" HB_BASE ",'metrics':{'m':'@hex:cbfff0000000000000'}}",
     WD_EINVAL, "'metrics.value'"},
    {"hb_metric_float32_nan", HB, "{" HB_BASE ",'metrics':{'m':'@hex:ca7fc00000'}}", WD_EINVAL,
     "'metrics.value'"},
    {"hb_metric_name_192", HB, "{" HB_BASE ",'metrics':{'" A192 "':1}}", WD_ETOOBIG,
     "'metrics.name'"},
    {"hb_metric_name_empty", HB, "{" HB_BASE ",'metrics':{'':1}}", WD_EINVAL, "'metrics.name'"},
    {"hb_metric_name_int", HB, "{" HB_BASE ",'metrics':{'@hex:2a':1}}", WD_EPROTO,
     "'metrics.name'"},
    {"hb_metric_dup", HB, "{" HB_BASE ",'metrics':{'m':1,'@hex:a16d':2}}", WD_EINVAL,
     "'metrics': duplicate"},

    /* ready */
    {"rd_ok", RD, "{'pid':9,'version':'0.1.0'}", 0, ""},
    {"rd_missing_pid", RD, "{'version':'0.1.0'}", WD_EPROTO, "'pid': missing"},
    {"rd_missing_version", RD, "{'pid':9}", WD_EPROTO, "'version': missing"},
    {"rd_version_empty", RD, "{'pid':9,'version':''}", WD_EINVAL, "'version'"},
    {"rd_version_32", RD, "{'pid':9,'version':'" A32 "'}", WD_ETOOBIG, "'version'"},
    {"rd_version_int", RD, "{'pid':9,'version':1}", WD_EPROTO, "'version'"},
    {"rd_pid_zero", RD, "{'pid':0,'version':'1'}", WD_EINVAL, "'pid'"},
    {"rd_pid_negative", RD, "{'pid':-9,'version':'1'}", WD_EPROTO, "'pid'"},
    {"rd_pid_str", RD, "{'pid':'9','version':'1'}", WD_EPROTO, "'pid'"},
    {"rd_body_array", RD, "[9,'1']", WD_EPROTO, "'body'"},

    /* control request */
    {"rq_ok_cmd_only", RQ, "{'cmd':'status'}", 0, ""},
    {"rq_ok_newline_in_value", RQ, "{'cmd':'reset','args':{'reason':'a\\nb'}}", 0, ""},
    {"rq_missing_cmd", RQ, "{'target':'agg'}", WD_EPROTO, "'cmd': missing"},
    {"rq_cmd_empty", RQ, "{'cmd':''}", WD_EINVAL, "'cmd'"},
    {"rq_cmd_32", RQ, "{'cmd':'" A32 "'}", WD_ETOOBIG, "'cmd'"},
    {"rq_cmd_int", RQ, "{'cmd':1}", WD_EPROTO, "'cmd'"},
    {"rq_cmd_ctrl", RQ, "{'cmd':'st\\u001batus'}", WD_EINVAL, "'cmd'"},
    {"rq_cmd_dup", RQ, "{'cmd':'a','@hex:a3636d64':'b'}", WD_EPROTO, "'cmd': duplicate"},
    {"rq_target_64", RQ, "{'cmd':'stop','target':'" A64 "'}", WD_ETOOBIG, "'target'"},
    {"rq_target_int", RQ, "{'cmd':'stop','target':3}", WD_EPROTO, "'target'"},
    {"rq_args_array", RQ, "{'cmd':'stop','args':['a']}", WD_EPROTO, "'args'"},
    {"rq_arg_value_int", RQ, "{'cmd':'stop','args':{'a':1}}", WD_EPROTO, "'args.value'"},
    {"rq_arg_value_1024", RQ, "{'cmd':'stop','args':{'a':'" A1024 "'}}", WD_ETOOBIG,
     "'args.value'"},
    {"rq_arg_value_nul", RQ, "{'cmd':'stop','args':{'a':'x\\u0000'}}", WD_EINVAL,
     "'args.value'"},
    {"rq_arg_key_64", RQ, "{'cmd':'stop','args':{'" A64 "':'v'}}", WD_ETOOBIG, "'args.key'"},
    {"rq_arg_key_empty", RQ, "{'cmd':'stop','args':{'':'v'}}", WD_EINVAL, "'args.key'"},
    {"rq_arg_key_int", RQ, "{'cmd':'stop','args':{'@hex:01':'v'}}", WD_EPROTO, "'args.key'"},
    {"rq_arg_dup", RQ, "{'cmd':'stop','args':{'a':'1','@hex:a161':'2'}}", WD_EINVAL,
     "'args': duplicate"},

    /* control reply */
    {"rp_ok_status_only", RP, "{'status':0}", 0, ""},
    {"rp_ok_status_int32_min", RP, "{'status':-2147483648}", 0, ""},
    {"rp_missing_status", RP, "{'error':'x'}", WD_EPROTO, "'status': missing"},
    {"rp_status_positive", RP, "{'status':1}", WD_EINVAL, "'status'"},
    {"rp_status_below_int32", RP, "{'status':-2147483649}", WD_EINVAL, "'status'"},
    {"rp_status_str", RP, "{'status':'0'}", WD_EPROTO, "'status'"},
    {"rp_status_float", RP, "{'status':-1.0}", WD_EPROTO, "'status'"},
    {"rp_error_512", RP, "{'status':-1,'error':'" A512 "'}", WD_ETOOBIG, "'error'"},
    {"rp_error_int", RP, "{'status':-1,'error':5}", WD_EPROTO, "'error'"},
    {"rp_error_nul", RP, "{'status':-1,'error':'a\\u0000'}", WD_EINVAL, "'error'"},
    {"rp_error_bad_utf8", RP, "{'status':-1,'error':'@hex:a1ff'}", WD_EINVAL, "'error'"},
    {"rp_ok_data_empty", RP, "{'status':0,'data':''}", 0, ""},
    {"rp_data_int", RP, "{'status':0,'data':5}", WD_EPROTO, "'data'"},
    {"rp_data_bin", RP, "{'status':0,'data':'@hex:c4017b'}", WD_EPROTO, "'data'"},
    {"rp_data_map", RP, "{'status':0,'data':{}}", WD_EPROTO, "'data'"},

    /* event */
    {"ev_ok_kind_only", EV, "{'kind':'config'}", 0, ""},
    {"ev_ok_reason_newline", EV, "{'kind':'audit','reason':'a\\nb'}", 0, ""},
    {"ev_missing_kind", EV, "{'worker':'agg'}", WD_EPROTO, "'kind': missing"},
    {"ev_kind_unknown", EV, "{'kind':'party'}", WD_EINVAL, "'kind'"},
    {"ev_kind_empty", EV, "{'kind':''}", WD_EINVAL, "'kind'"},
    {"ev_kind_int", EV, "{'kind':1}", WD_EPROTO, "'kind'"},
    {"ev_kind_32", EV, "{'kind':'" A32 "'}", WD_ETOOBIG, "'kind'"},
    {"ev_worker_64", EV, "{'kind':'state','worker':'" A64 "'}", WD_ETOOBIG, "'worker'"},
    {"ev_worker_ctrl", EV, "{'kind':'state','worker':'a\\rb'}", WD_EINVAL, "'worker'"},
    {"ev_worker_int", EV, "{'kind':'state','worker':7}", WD_EPROTO, "'worker'"},
    {"ev_to_array", EV, "{'kind':'state','to':['open']}", WD_EPROTO, "'to'"},
    {"ev_from_int", EV, "{'kind':'state','from':1}", WD_EPROTO, "'from'"},
    {"ev_to_32", EV, "{'kind':'state','to':'" A32 "'}", WD_ETOOBIG, "'to'"},
    {"ev_reason_512", EV, "{'kind':'audit','reason':'" A512 "'}", WD_ETOOBIG, "'reason'"},
    {"ev_reason_nul", EV, "{'kind':'audit','reason':'\\u0000'}", WD_EINVAL, "'reason'"},
    {"ev_reason_nil", EV, "{'kind':'audit','reason':null}", WD_EPROTO, "'reason'"},
    {"ev_body_array", EV, "['state']", WD_EPROTO, "'body'"},
};

static void run_case(void **state) {
    const wire_case *c = *state;
    msgpack_sbuffer sb;
    char err[256];
    msgpack_sbuffer_init(&sb);
    build(&sb, c->type, c->json);
    int rc = decode(sb.data, sb.size, c->type, err, sizeof err);
    msgpack_sbuffer_destroy(&sb);
    expect(rc, c->code, err, c->needle, c->name);
    if (c->code != 0)
        assert_true(strlen(err) > 0);
}

/* ---- round trips ---- */

static const proto_header hdr = {.sender = "aggregator", .seq = 123456789012ull,
                                 .ts_ns = 1700000000123456789ull};

static void check_env(const msgpack_sbuffer *sb, int type, proto_envelope *env) {
    char err[256] = "";
    int rc = proto_envelope_unpack(sb->data, sb->size, env, err, sizeof err);
    expect(rc, 0, err, "", "envelope");
    assert_int_equal(env->version, PROTO_VERSION);
    assert_int_equal(env->type, type);
    assert_string_equal(env->hdr.sender, hdr.sender);
    assert_true(env->hdr.seq == hdr.seq);
    assert_true(env->hdr.ts_ns == hdr.ts_ns);
    assert_true(env->body > sb->data && env->body + env->body_len == sb->data + sb->size);
}

/* n characters, unique per i as long as n leaves room for the tag. */
static void fill_name(char *dst, size_t n, unsigned i) {
    char tag[16];
    int t = snprintf(tag, sizeof tag, "n%u-", i);
    memset(dst, 'a' + (char)(i % 26), n);
    memcpy(dst, tag, (size_t)t < n ? (size_t)t : n);
    dst[n] = '\0';
}

static void test_roundtrip_heartbeat_full(void **state) {
    msgpack_sbuffer sb;
    proto_envelope env;
    char err[256] = "";
    memset(&g_hb2, 0, sizeof g_hb2);
    g_hb2.pid = UINT32_MAX;
    g_hb2.progress = UINT64_MAX;
    g_hb2.loop_lag_us = 17;
    g_hb2.n_breakers = PROTO_BREAKERS_MAX;
    for (unsigned i = 0; i < PROTO_BREAKERS_MAX; i++) {
        fill_name(g_hb2.breakers[i].name, PROTO_NAME_MAX, i);
        g_hb2.breakers[i].state = (proto_breaker_state)(i % PROTO_BRK_COUNT);
    }
    g_hb2.n_metrics = PROTO_METRICS_MAX;
    for (unsigned i = 0; i < PROTO_METRICS_MAX; i++) {
        fill_name(g_hb2.metrics[i].name, PROTO_METRIC_NAME_MAX, i);
        g_hb2.metrics[i].value = (i % 2 ? -1.0 : 1.0) * i * 0.25;
    }
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_heartbeat_pack(&sb, &hdr, &g_hb2), 0);
    check_env(&sb, PROTO_T_HEARTBEAT, &env);
    expect(proto_heartbeat_unpack(&env, &g_hb, err, sizeof err), 0, err, "", "heartbeat");
    assert_int_equal(g_hb.pid, UINT32_MAX);
    assert_true(g_hb.progress == UINT64_MAX);
    assert_int_equal(g_hb.loop_lag_us, 17);
    assert_int_equal(g_hb.n_breakers, PROTO_BREAKERS_MAX);
    assert_int_equal(g_hb.n_metrics, PROTO_METRICS_MAX);
    for (unsigned i = 0; i < PROTO_BREAKERS_MAX; i++) {
        assert_string_equal(g_hb.breakers[i].name, g_hb2.breakers[i].name);
        assert_int_equal(g_hb.breakers[i].state, g_hb2.breakers[i].state);
    }
    for (unsigned i = 0; i < PROTO_METRICS_MAX; i++) {
        assert_string_equal(g_hb.metrics[i].name, g_hb2.metrics[i].name);
        assert_true(g_hb.metrics[i].value == g_hb2.metrics[i].value);
    }
    msgpack_sbuffer_destroy(&sb);
}

static void test_roundtrip_heartbeat_minimal(void **state) {
    msgpack_sbuffer sb;
    proto_envelope env;
    char err[256] = "";
    memset(&g_hb2, 0, sizeof g_hb2);
    g_hb2.pid = 1;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_heartbeat_pack(&sb, &hdr, &g_hb2), 0);
    check_env(&sb, PROTO_T_HEARTBEAT, &env);
    expect(proto_heartbeat_unpack(&env, &g_hb, err, sizeof err), 0, err, "", "heartbeat");
    assert_int_equal(g_hb.pid, 1);
    assert_int_equal(g_hb.n_breakers, 0);
    assert_int_equal(g_hb.n_metrics, 0);
    msgpack_sbuffer_destroy(&sb);
}

static void test_roundtrip_ready(void **state) {
    msgpack_sbuffer sb;
    proto_envelope env;
    proto_ready r = {.pid = 4242, .version = "0.1.0"};
    char err[256] = "";
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_ready_pack(&sb, &hdr, &r), 0);
    check_env(&sb, PROTO_T_READY, &env);
    expect(proto_ready_unpack(&env, &g_rd, err, sizeof err), 0, err, "", "ready");
    assert_int_equal(g_rd.pid, 4242);
    assert_string_equal(g_rd.version, "0.1.0");
    msgpack_sbuffer_destroy(&sb);
}

static void test_roundtrip_ctl_request(void **state) {
    msgpack_sbuffer sb;
    proto_envelope env;
    static proto_ctl_request rq;
    char err[256] = "";
    memset(&rq, 0, sizeof rq);
    fill_name(rq.cmd, PROTO_CMD_MAX, 1);
    fill_name(rq.target, PROTO_NAME_MAX, 2);
    rq.n_args = PROTO_ARGS_MAX;
    for (unsigned i = 0; i < PROTO_ARGS_MAX; i++) {
        fill_name(rq.args[i].key, PROTO_ARG_KEY_MAX, i);
        fill_name(rq.args[i].val, i == 0 ? PROTO_ARG_VAL_MAX : i, i);
    }
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_ctl_request_pack(&sb, &hdr, &rq), 0);
    check_env(&sb, PROTO_T_CTL_REQUEST, &env);
    expect(proto_ctl_request_unpack(&env, &g_rq, err, sizeof err), 0, err, "", "ctl_request");
    assert_string_equal(g_rq.cmd, rq.cmd);
    assert_string_equal(g_rq.target, rq.target);
    assert_int_equal(g_rq.n_args, PROTO_ARGS_MAX);
    for (unsigned i = 0; i < PROTO_ARGS_MAX; i++) {
        assert_string_equal(g_rq.args[i].key, rq.args[i].key);
        assert_string_equal(proto_ctl_request_arg(&g_rq, rq.args[i].key), rq.args[i].val);
    }
    assert_null(proto_ctl_request_arg(&g_rq, "nope"));
    assert_null(proto_ctl_request_arg(NULL, "nope"));
    msgpack_sbuffer_destroy(&sb);
}

static void test_roundtrip_ctl_reply(void **state) {
    msgpack_sbuffer sb;
    proto_envelope env;
    const char json[] = "{\"workers\":[{\"name\":\"agg\",\"state\":\"RUNNING\"}]}";
    proto_ctl_reply rp = {.status = WD_ENOTFOUND, .error = "no such worker: x\n",
                          .data = json, .data_len = sizeof json - 1};
    char err[256] = "";
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_ctl_reply_pack(&sb, &hdr, &rp), 0);
    check_env(&sb, PROTO_T_CTL_REPLY, &env);
    expect(proto_ctl_reply_unpack(&env, &g_rp, err, sizeof err), 0, err, "", "ctl_reply");
    assert_int_equal(g_rp.status, WD_ENOTFOUND);
    assert_string_equal(g_rp.error, rp.error);
    assert_int_equal(g_rp.data_len, rp.data_len);
    assert_memory_equal(g_rp.data, json, rp.data_len);
    /* data points into the caller's buffer, not into a copy */
    assert_true(g_rp.data > sb.data && g_rp.data + g_rp.data_len <= sb.data + sb.size);
    msgpack_sbuffer_destroy(&sb);

    /* no data at all: packed as an empty string */
    proto_ctl_reply ok = {.status = 0};
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_ctl_reply_pack(&sb, &hdr, &ok), 0);
    check_env(&sb, PROTO_T_CTL_REPLY, &env);
    expect(proto_ctl_reply_unpack(&env, &g_rp, err, sizeof err), 0, err, "", "ctl_reply");
    assert_int_equal(g_rp.status, 0);
    assert_int_equal(g_rp.data_len, 0);
    assert_string_equal(g_rp.error, "");
    msgpack_sbuffer_destroy(&sb);
}

static void test_roundtrip_event(void **state) {
    static const char *kinds[] = {"state", "breaker", "exit", "audit", "config"};
    for (unsigned i = 0; i < 5; i++) {
        msgpack_sbuffer sb;
        proto_envelope env;
        proto_event ev = {.worker = "position_monitor", .from = "RUNNING", .to = "BACKOFF",
                          .reason = "exit status 1\tafter 3.2 s \xc3\xa9"};
        char err[256] = "";
        snprintf(ev.kind, sizeof ev.kind, "%s", kinds[i]);
        msgpack_sbuffer_init(&sb);
        assert_int_equal(proto_event_pack(&sb, &hdr, &ev), 0);
        check_env(&sb, PROTO_T_EVENT, &env);
        expect(proto_event_unpack(&env, &g_ev, err, sizeof err), 0, err, "", "event");
        assert_string_equal(g_ev.kind, kinds[i]);
        assert_string_equal(g_ev.worker, ev.worker);
        assert_string_equal(g_ev.from, ev.from);
        assert_string_equal(g_ev.to, ev.to);
        assert_string_equal(g_ev.reason, ev.reason);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* ---- framing ---- */

/* One valid message of each type, for the truncation and trailing tests. */
static void pack_sample(msgpack_sbuffer *sb, int type) {
    static proto_heartbeat hb = {.pid = 7, .progress = 300, .loop_lag_us = 70000,
                                 .n_breakers = 2, .breakers = {{"redis", PROTO_BRK_OPEN},
                                                               {"pg", PROTO_BRK_HALF_OPEN}},
                                 .n_metrics = 2, .metrics = {{"a_total", 3}, {"b", -0.5}}};
    proto_ready rd = {.pid = 7, .version = "1.2.3"};
    proto_ctl_request rq = {.cmd = "reset", .target = "notifier", .n_args = 1,
                            .args = {{"reason", "operator"}}};
    proto_ctl_reply rp = {.status = -1, .error = "bad", .data = "{}", .data_len = 2};
    proto_event ev = {.kind = "breaker", .worker = "notifier", .from = "closed", .to = "open",
                      .reason = "5 failures"};
    int rc = -1;
    switch (type) {
    case HB: rc = proto_heartbeat_pack(sb, &hdr, &hb); break;
    case RD: rc = proto_ready_pack(sb, &hdr, &rd); break;
    case RQ: rc = proto_ctl_request_pack(sb, &hdr, &rq); break;
    case RP: rc = proto_ctl_reply_pack(sb, &hdr, &rp); break;
    case EV: rc = proto_event_pack(sb, &hdr, &ev); break;
    }
    assert_int_equal(rc, 0);
}

static void test_truncated_every_length(void **state) {
    char err[256];
    for (int type = HB; type <= EV; type++) {
        msgpack_sbuffer sb;
        proto_envelope env;
        msgpack_sbuffer_init(&sb);
        pack_sample(&sb, type);
        expect(decode(sb.data, sb.size, type, err, sizeof err), 0, err, "", "full");
        for (size_t n = 0; n < sb.size; n++) {
            char what[64];
            snprintf(what, sizeof what, "type %d cut at %zu", type, n);
            expect(proto_envelope_unpack(sb.data, n, &env, err, sizeof err), WD_EPROTO, err,
                   "envelope", what);
        }
        /* the typed unpacks check a cut body on their own too */
        assert_int_equal(proto_envelope_unpack(sb.data, sb.size, &env, err, sizeof err), 0);
        size_t full = env.body_len;
        for (size_t n = 0; n < full; n++) {
            env.body_len = n;
            expect(unpack_typed(&env, type, err, sizeof err), WD_EPROTO, err, "'body'", "body");
        }
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_trailing_bytes(void **state) {
    char err[256];
    for (int type = HB; type <= EV; type++) {
        msgpack_sbuffer sb;
        proto_envelope env;
        msgpack_sbuffer_init(&sb);
        pack_sample(&sb, type);
        msgpack_sbuffer_write(&sb, "\xc0", 1);
        expect(proto_envelope_unpack(sb.data, sb.size, &env, err, sizeof err), WD_EPROTO, err,
               "trailing", "envelope");
        /* a body handed over directly with a byte after the map */
        assert_int_equal(proto_envelope_unpack(sb.data, sb.size - 1, &env, err, sizeof err), 0);
        env.body_len++;
        expect(unpack_typed(&env, type, err, sizeof err), WD_EPROTO, err, "trailing", "body");
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_oversized_message(void **state) {
    char err[256];
    proto_envelope env;
    char *big = calloc(1, MSG_CAP);
    assert_non_null(big);
    expect(proto_envelope_unpack(big, PROTO_MSG_MAX + 1, &env, err, sizeof err), WD_ETOOBIG, err,
           "envelope", "envelope");
    env.type = PROTO_T_EVENT;
    env.body = big;
    env.body_len = PROTO_MSG_MAX + 1;
    expect(proto_event_unpack(&env, &g_ev, err, sizeof err), WD_ETOOBIG, err, "'body'", "body");
    free(big);
}

/* Bodies given to the typed unpacks directly, without an envelope. */
static int unpack_raw_body(int type, const char *hex, char *err, size_t errlen) {
    msgpack_sbuffer sb;
    proto_envelope env = {.version = 1, .type = (proto_type)type};
    msgpack_sbuffer_init(&sb);
    raw_hex(&sb, hex);
    env.body = sb.data;
    env.body_len = sb.size;
    int rc = unpack_typed(&env, type, err, errlen);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void test_huge_length_claims(void **state) {
    char err[256];
    /* msgpack-c would allocate count * 24 bytes for these before noticing the
     * input is 5 bytes long; the pre-scan must refuse them first (run under
     * ASan or valgrind to see the difference). */
    expect(unpack_raw_body(HB, "ddffffffff", err, sizeof err), WD_EPROTO, err, "exceeds", "a32");
    expect(unpack_raw_body(HB, "dd04000000", err, sizeof err), WD_EPROTO, err, "exceeds", "a32");
    expect(unpack_raw_body(HB, "dfffffffff", err, sizeof err), WD_EPROTO, err, "exceeds", "m32");
    expect(unpack_raw_body(HB, "dcffff", err, sizeof err), WD_EPROTO, err, "exceeds", "a16");
    expect(unpack_raw_body(HB, "81a17adeffff", err, sizeof err), WD_EPROTO, err, "exceeds",
           "m16");
    expect(unpack_raw_body(HB, "dbffffffff", err, sizeof err), WD_EPROTO, err, "truncated",
           "s32");
    expect(unpack_raw_body(HB, "c6ffffffff", err, sizeof err), WD_EPROTO, err, "truncated",
           "b32");
    expect(unpack_raw_body(HB, "", err, sizeof err), WD_EPROTO, err, "truncated", "empty");
}

static void test_too_deep_and_too_many(void **state) {
    char err[256];
    char hex[128] = "81a178"; /* {"x": */
    for (int i = 0; i < 8; i++)
        strcat(hex, "91"); /* 8 more levels: 9 in all */
    strcat(hex, "c0");
    expect(unpack_raw_body(EV, hex, err, sizeof err), WD_ETOOBIG, err, "nested", "deep");

    /* {"kind":"audit","x":[nil x PROTO_OBJECTS_MAX]} */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    proto_envelope env = {.version = 1, .type = PROTO_T_EVENT};
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "kind", 4);
    msgpack_pack_str_with_body(&pk, "audit", 5);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_array(&pk, PROTO_OBJECTS_MAX);
    for (int i = 0; i < PROTO_OBJECTS_MAX; i++)
        msgpack_pack_nil(&pk);
    env.body = sb.data;
    env.body_len = sb.size;
    expect(proto_event_unpack(&env, &g_ev, err, sizeof err), WD_ETOOBIG, err, "too many objects",
           "objects");
    msgpack_sbuffer_destroy(&sb);
}

/* A body with n generated entries in one map field. */
static int many(int type, const char *base, const char *field, unsigned n, const char *val,
                char *err, size_t errlen) {
    json_t *body = parse(base), *m = json_object();
    msgpack_sbuffer sb;
    for (unsigned i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%u", i);
        json_object_set_new(m, k, val ? json_string(val) : json_integer(i));
    }
    json_object_set_new(body, field, m);
    msgpack_sbuffer_init(&sb);
    build_json(&sb, type, body);
    int rc = decode(sb.data, sb.size, type, err, errlen);
    msgpack_sbuffer_destroy(&sb);
    json_decref(body);
    return rc;
}

static void test_too_many_entries(void **state) {
    char err[256];
    const char *hb = "{" HB_BASE "}", *rq = "{'cmd':'x'}";
    expect(many(HB, hb, "breakers", PROTO_BREAKERS_MAX, "open", err, sizeof err), 0, err, "", "b");
    expect(many(HB, hb, "breakers", PROTO_BREAKERS_MAX + 1, "open", err, sizeof err), WD_ETOOBIG,
           err, "'breakers'", "breakers");
    expect(many(HB, hb, "metrics", PROTO_METRICS_MAX, NULL, err, sizeof err), 0, err, "", "m");
    expect(many(HB, hb, "metrics", PROTO_METRICS_MAX + 1, NULL, err, sizeof err), WD_ETOOBIG,
           err, "'metrics'", "metrics");
    expect(many(RQ, rq, "args", PROTO_ARGS_MAX, "v", err, sizeof err), 0, err, "", "a");
    expect(many(RQ, rq, "args", PROTO_ARGS_MAX + 1, "v", err, sizeof err), WD_ETOOBIG, err,
           "'args'", "args");
}

static void test_wrong_type_dispatch(void **state) {
    char err[256];
    for (int have = HB; have <= EV; have++) {
        msgpack_sbuffer sb;
        proto_envelope env;
        msgpack_sbuffer_init(&sb);
        pack_sample(&sb, have);
        assert_int_equal(proto_envelope_unpack(sb.data, sb.size, &env, err, sizeof err), 0);
        for (int want = HB; want <= EV; want++) {
            if (want != have)
                expect(unpack_typed(&env, want, err, sizeof err), WD_EPROTO, err, "'type'",
                       "dispatch");
        }
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_breaker_state_names(void **state) {
    proto_breaker_state s;
    for (int i = 0; i < PROTO_BRK_COUNT; i++) {
        const char *n = proto_breaker_state_name((proto_breaker_state)i);
        assert_int_equal(proto_breaker_state_parse(n, strlen(n), &s), 0);
        assert_int_equal(s, i);
    }
    assert_string_equal(proto_breaker_state_name(PROTO_BRK_HALF_OPEN), "half_open");
    assert_string_equal(proto_breaker_state_name(PROTO_BRK_FORCED_OPEN), "forced_open");
    assert_string_equal(proto_breaker_state_name(PROTO_BRK_COUNT), "unknown");
    assert_int_equal(proto_breaker_state_parse("open", 3, &s), WD_EINVAL);
    assert_int_equal(proto_breaker_state_parse("opened", 6, &s), WD_EINVAL);
    assert_int_equal(proto_breaker_state_parse("open\0", 5, &s), WD_EINVAL);
    assert_int_equal(proto_breaker_state_parse("OPEN", 4, &s), WD_EINVAL);
    assert_int_equal(proto_breaker_state_parse("", 0, &s), WD_EINVAL);
    assert_int_equal(proto_breaker_state_parse(NULL, 0, &s), WD_EINVAL);
}

static void test_pack_rejects(void **state) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, "prefix", 6); /* a failed pack must leave this alone */
    proto_header h = hdr;
    memset(&g_hb2, 0, sizeof g_hb2);
    g_hb2.pid = 1;
#define REJECT(call, code)                                                                     \
    do {                                                                                       \
        assert_int_equal((call), (code));                                                      \
        assert_int_equal(sb.size, 6);                                                          \
    } while (0)
    h.sender[0] = '\0';
    REJECT(proto_heartbeat_pack(&sb, &h, &g_hb2), WD_EINVAL);
    memset(h.sender, 'a', sizeof h.sender); /* unterminated */
    REJECT(proto_heartbeat_pack(&sb, &h, &g_hb2), WD_ETOOBIG);
    snprintf(h.sender, sizeof h.sender, "a\nb");
    REJECT(proto_heartbeat_pack(&sb, &h, &g_hb2), WD_EINVAL);
    REJECT(proto_heartbeat_pack(NULL, &hdr, &g_hb2), WD_EINVAL);
    REJECT(proto_heartbeat_pack(&sb, NULL, &g_hb2), WD_EINVAL);
    g_hb2.pid = 0;
    REJECT(proto_heartbeat_pack(&sb, &hdr, &g_hb2), WD_EINVAL);
    g_hb2.pid = 1;
    g_hb2.n_breakers = PROTO_BREAKERS_MAX + 1;
    REJECT(proto_heartbeat_pack(&sb, &hdr, &g_hb2), WD_ETOOBIG);
    g_hb2.n_breakers = 1;
    snprintf(g_hb2.breakers[0].name, sizeof g_hb2.breakers[0].name, "redis");
    g_hb2.breakers[0].state = PROTO_BRK_COUNT;
    REJECT(proto_heartbeat_pack(&sb, &hdr, &g_hb2), WD_EINVAL);
    g_hb2.breakers[0].state = PROTO_BRK_OPEN;
    g_hb2.n_breakers = 2;
    g_hb2.breakers[1] = g_hb2.breakers[0]; /* duplicate name */
    REJECT(proto_heartbeat_pack(&sb, &hdr, &g_hb2), WD_EINVAL);
    g_hb2.n_breakers = 0;
    g_hb2.n_metrics = PROTO_METRICS_MAX + 1;
    REJECT(proto_heartbeat_pack(&sb, &hdr, &g_hb2), WD_ETOOBIG);
    g_hb2.n_metrics = 1;
    snprintf(g_hb2.metrics[0].name, sizeof g_hb2.metrics[0].name, "m");
    g_hb2.metrics[0].value = NAN;
    REJECT(proto_heartbeat_pack(&sb, &hdr, &g_hb2), WD_EINVAL);
    g_hb2.metrics[0].value = -INFINITY;
    REJECT(proto_heartbeat_pack(&sb, &hdr, &g_hb2), WD_EINVAL);
    memset(g_hb2.metrics[0].name, 'm', sizeof g_hb2.metrics[0].name);
    g_hb2.metrics[0].value = 1;
    REJECT(proto_heartbeat_pack(&sb, &hdr, &g_hb2), WD_ETOOBIG);

    proto_ready rd = {.pid = 0, .version = "1"};
    REJECT(proto_ready_pack(&sb, &hdr, &rd), WD_EINVAL);
    rd.pid = 1;
    rd.version[0] = '\0';
    REJECT(proto_ready_pack(&sb, &hdr, &rd), WD_EINVAL);

    static proto_ctl_request rq;
    memset(&rq, 0, sizeof rq);
    REJECT(proto_ctl_request_pack(&sb, &hdr, &rq), WD_EINVAL); /* no cmd */
    snprintf(rq.cmd, sizeof rq.cmd, "stop");
    rq.n_args = PROTO_ARGS_MAX + 1;
    REJECT(proto_ctl_request_pack(&sb, &hdr, &rq), WD_ETOOBIG);
    rq.n_args = 1;
    REJECT(proto_ctl_request_pack(&sb, &hdr, &rq), WD_EINVAL); /* empty key */
    snprintf(rq.args[0].key, sizeof rq.args[0].key, "k");
    memset(rq.args[0].val, 'v', sizeof rq.args[0].val);
    REJECT(proto_ctl_request_pack(&sb, &hdr, &rq), WD_ETOOBIG);

    proto_ctl_reply rp = {.status = 1};
    REJECT(proto_ctl_reply_pack(&sb, &hdr, &rp), WD_EINVAL);
    rp.status = 0;
    rp.data_len = 3; /* without data */
    REJECT(proto_ctl_reply_pack(&sb, &hdr, &rp), WD_EINVAL);
    rp.data = "x";
    rp.data_len = (size_t)PROTO_MSG_MAX + 1;
    REJECT(proto_ctl_reply_pack(&sb, &hdr, &rp), WD_ETOOBIG);
    char *big = calloc(1, PROTO_MSG_MAX); /* fits the field but not the message */
    assert_non_null(big);
    rp.data = big;
    rp.data_len = PROTO_MSG_MAX;
    REJECT(proto_ctl_reply_pack(&sb, &hdr, &rp), WD_ETOOBIG);
    free(big);

    proto_event ev = {.kind = "party"};
    REJECT(proto_event_pack(&sb, &hdr, &ev), WD_EINVAL);
    snprintf(ev.kind, sizeof ev.kind, "audit");
    memset(ev.reason, 'r', sizeof ev.reason);
    REJECT(proto_event_pack(&sb, &hdr, &ev), WD_ETOOBIG);
    ev.reason[0] = '\0';
    assert_int_equal(proto_event_pack(&sb, &hdr, &ev), 0);
    assert_true(sb.size > 6);
#undef REJECT
    msgpack_sbuffer_destroy(&sb);
}

static void test_err_buffer_handling(void **state) {
    msgpack_sbuffer sb;
    proto_envelope env;
    char small[8];
    msgpack_sbuffer_init(&sb);
    build(&sb, 0, ENV("2", "1", "'w'", "1", "2"));
    /* no err buffer at all, or a zero-length one, is fine */
    assert_int_equal(proto_envelope_unpack(sb.data, sb.size, &env, NULL, 0), WD_EINVAL);
    small[0] = 'Z';
    assert_int_equal(proto_envelope_unpack(sb.data, sb.size, &env, small, 0), WD_EINVAL);
    assert_int_equal(small[0], 'Z');
    /* a short one is truncated and terminated */
    memset(small, 'Z', sizeof small);
    assert_int_equal(proto_envelope_unpack(sb.data, sb.size, &env, small, sizeof small),
                     WD_EINVAL);
    assert_string_equal(small, "envelop");
    /* NULL arguments */
    assert_int_equal(proto_envelope_unpack(NULL, 5, &env, NULL, 0), WD_EINVAL);
    assert_int_equal(proto_envelope_unpack(sb.data, sb.size, NULL, NULL, 0), WD_EINVAL);
    assert_int_equal(proto_heartbeat_unpack(NULL, &g_hb, NULL, 0), WD_EINVAL);
    assert_int_equal(proto_heartbeat_unpack(&env, NULL, NULL, 0), WD_EINVAL);
    assert_int_equal(proto_ready_unpack(NULL, &g_rd, NULL, 0), WD_EINVAL);
    assert_int_equal(proto_ctl_request_unpack(NULL, &g_rq, NULL, 0), WD_EINVAL);
    assert_int_equal(proto_ctl_reply_unpack(NULL, &g_rp, NULL, 0), WD_EINVAL);
    assert_int_equal(proto_event_unpack(NULL, &g_ev, NULL, 0), WD_EINVAL);
    msgpack_sbuffer_destroy(&sb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_heartbeat_full),
        cmocka_unit_test(test_roundtrip_heartbeat_minimal),
        cmocka_unit_test(test_roundtrip_ready),
        cmocka_unit_test(test_roundtrip_ctl_request),
        cmocka_unit_test(test_roundtrip_ctl_reply),
        cmocka_unit_test(test_roundtrip_event),
        cmocka_unit_test(test_truncated_every_length),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_oversized_message),
        cmocka_unit_test(test_huge_length_claims),
        cmocka_unit_test(test_too_deep_and_too_many),
        cmocka_unit_test(test_too_many_entries),
        cmocka_unit_test(test_wrong_type_dispatch),
        cmocka_unit_test(test_breaker_state_names),
        cmocka_unit_test(test_pack_rejects),
        cmocka_unit_test(test_err_buffer_handling),
    };
    /* Each row of the wire table is its own named test. */
    static struct CMUnitTest table[sizeof cases / sizeof cases[0]];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        table[i] = (struct CMUnitTest){cases[i].name, run_case, NULL, NULL, (void *)&cases[i]};
    int failed = cmocka_run_group_tests_name("proto", tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("proto_wire_cases", table, NULL, NULL);
    return failed;
}
