/* Alerts on the wire (proto/proto_alert.h): round trips, and every kind of
 * malformed alert refused with an error naming the field; and the
 * producer's outbox (common/alert_outbox.h) against a real REP server on
 * ipc:// in the same loop: ack, "not now" then ack, refusal, drop-oldest
 * when full, and a notifier that comes up late. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <nng/nng.h>

#include "alert_outbox.h"
#include "bus.h"
#include "proto_alert.h"
#include "support.h"
#include "wd_error.h"

static const proto_header HDR = {.sender = "test", .seq = 7, .ts_ns = 123};

static proto_alert good(void) {
    proto_alert a;
    memset(&a, 0, sizeof a);
    strcpy(a.id, "pm-1:x");
    strcpy(a.source, "position_monitor");
    a.severity = PROTO_SEV_CRITICAL;
    strcpy(a.title, "exit AAPL");
    strcpy(a.text, "stop loss\nhit");
    a.time_ns = 1700000000000000000ull;
    strcpy(a.dedup_key, "exit:AAPL");
    assert_int_equal(proto_alert_label_add(&a, "symbol", "AAPL"), 0);
    return a;
}

static void round_trip(void **state) {
    (void)state;
    proto_alert a = good(), b;
    proto_header h;
    char err[256];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_alert_pack(&sb, &HDR, &a), 0);
    assert_int_equal(proto_alert_unpack(sb.data, sb.size, &h, &b, err, sizeof err), 0);
    assert_memory_equal(&a, &b, sizeof a);
    assert_string_equal(h.sender, "test");
    assert_int_equal(h.seq, 7);
    /* Trailing bytes and a wrong type are refused. */
    msgpack_sbuffer_write(&sb, "x", 1);
    assert_int_equal(proto_alert_unpack(sb.data, sb.size, &h, &b, err, sizeof err), WD_EPROTO);
    assert_non_null(strstr(err, "trailing"));
    msgpack_sbuffer_clear(&sb);
    proto_alert_reply r = {.id = "pm-1:x", .status = WD_EINVAL, .error = "alert: field 'x'"}, r2;
    assert_int_equal(proto_alert_reply_pack(&sb, &HDR, &r), 0);
    assert_int_equal(proto_alert_unpack(sb.data, sb.size, &h, &b, err, sizeof err), WD_EPROTO);
    assert_non_null(strstr(err, "'type'"));
    assert_int_equal(proto_alert_reply_unpack(sb.data, sb.size, &h, &r2, err, sizeof err), 0);
    assert_memory_equal(&r, &r2, sizeof r);
    assert_true(proto_alert_status_permanent(WD_EINVAL));
    assert_false(proto_alert_status_permanent(WD_EUNAVAIL));
    msgpack_sbuffer_destroy(&sb);
}

/* Packs a body map by hand (the pack function refuses bad alerts). */
typedef void (*body_fn)(msgpack_packer *pk);

static int unpack_body(body_fn fn, char *err, size_t errlen) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    proto_alert a;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 6);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, PROTO_T_ALERT);
    msgpack_pack_str_with_body(&pk, "p", 1);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, 1);
    fn(&pk);
    int rc = proto_alert_unpack(sb.data, sb.size, NULL, &a, err, errlen);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void kv(msgpack_packer *pk, const char *k, const char *v) {
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void base(msgpack_packer *pk, int n, const char *skip) {
    msgpack_pack_map(pk, (uint32_t)n);
    if (strcmp(skip, "id"))
        kv(pk, "id", "a1");
    if (strcmp(skip, "source"))
        kv(pk, "source", "pm");
    if (strcmp(skip, "title"))
        kv(pk, "title", "t");
    if (strcmp(skip, "time")) {
        msgpack_pack_str_with_body(pk, "time", 4);
        msgpack_pack_uint64(pk, 5);
    }
}

static void no_title(msgpack_packer *pk) { base(pk, 4, "title"), kv(pk, "severity", "info"); }
static void bad_sev(msgpack_packer *pk) { base(pk, 5, ""), kv(pk, "severity", "fatal"); }
static void big_text(msgpack_packer *pk) {
    static char t[PROTO_ALERT_TEXT_MAX + 2];
    memset(t, 'x', sizeof t - 1);
    base(pk, 6, ""), kv(pk, "severity", "info"), kv(pk, "text", t);
}
static void bad_id(msgpack_packer *pk) {
    base(pk, 5, "id"), kv(pk, "severity", "info"), kv(pk, "id", "a b");
}
static void zero_time(msgpack_packer *pk) {
    base(pk, 5, "time"), kv(pk, "severity", "info");
    msgpack_pack_str_with_body(pk, "time", 4);
    msgpack_pack_uint64(pk, 0);
}
static void many_labels(msgpack_packer *pk) {
    base(pk, 6, ""), kv(pk, "severity", "info");
    msgpack_pack_str_with_body(pk, "labels", 6);
    msgpack_pack_map(pk, PROTO_ALERT_LABELS_MAX + 1);
    for (int i = 0; i <= PROTO_ALERT_LABELS_MAX; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        kv(pk, k, "v");
    }
}
static void ctrl_title(msgpack_packer *pk) {
    base(pk, 5, "title"), kv(pk, "severity", "info"), kv(pk, "title", "a\r\nBcc: x");
}
static void dup_key(msgpack_packer *pk) {
    base(pk, 6, ""), kv(pk, "severity", "info"), kv(pk, "severity", "info");
}

static void malformed_names_the_field(void **state) {
    (void)state;
    static const struct {
        body_fn fn;
        int rc;
        const char *field;
    } cases[] = {
        {no_title, WD_EPROTO, "'title': missing"},
        {bad_sev, WD_EINVAL, "'severity'"},
        {big_text, WD_ETOOBIG, "'text': longer than 4095"},
        {bad_id, WD_EINVAL, "'id'"},
        {zero_time, WD_EINVAL, "'time'"},
        {many_labels, WD_ETOOBIG, "'labels'"},
        {ctrl_title, WD_EINVAL, "'title'"},
        {dup_key, WD_EPROTO, "'severity': duplicate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        int rc = unpack_body(cases[i].fn, err, sizeof err);
        if (rc != cases[i].rc || !strstr(err, cases[i].field))
            fail_msg("case %zu: rc %d err '%s' (want %d, '%s')", i, rc, err, cases[i].rc,
                     cases[i].field);
    }
    /* The pack side refuses the same. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    proto_alert a = good();
    a.severity = PROTO_SEV_COUNT;
    assert_int_equal(proto_alert_pack(&sb, &HDR, &a), WD_EINVAL);
    a = good();
    memset(a.text, 'x', sizeof a.text); /* no NUL: an overflow */
    assert_int_equal(proto_alert_pack(&sb, &HDR, &a), WD_ETOOBIG);
    assert_int_equal(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- outbox against a real REP server ---- */

typedef enum { S_ACK, S_NOTNOW, S_REJECT } srv_mode;

typedef struct {
    uv_loop_t loop;
    bus_rep *rep;
    char url[128];
    srv_mode mode;
    int notnow_left;
    int requests;
    char seen[64][PROTO_ALERT_ID_MAX + 1];
    alert_outbox *ob;
    bool closed;
} fx;

static void on_req(void *arg, bus_rep_request *req, const void *buf, size_t len,
                   uint64_t uid, uint64_t pid) {
    fx *f = arg;
    (void)uid, (void)pid;
    proto_alert a;
    proto_alert_reply r;
    char err[256];
    memset(&r, 0, sizeof r);
    int rc = proto_alert_unpack(buf, len, NULL, &a, err, sizeof err);
    assert_int_equal(rc, 0);
    if (f->requests < 64)
        strcpy(f->seen[f->requests], a.id);
    f->requests++;
    strcpy(r.id, a.id);
    if (f->mode == S_REJECT) {
        r.status = WD_EINVAL;
        strcpy(r.error, "alert: field 'title': no");
    } else if (f->mode == S_NOTNOW && f->notnow_left > 0) {
        f->notnow_left--;
        r.status = WD_EUNAVAIL;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_alert_reply_pack(&sb, &HDR, &r), 0);
    bus_rep_reply(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void fx_serve(fx *f) {
    char err[256];
    assert_int_equal(bus_rep_open(&f->loop, f->url, 0600, on_req, f, &f->rep, err, sizeof err), 0);
}

static void fx_open(fx *f, uint32_t capacity, uint32_t inflight, bool serve) {
    char err[256];
    memset(f, 0, sizeof *f);
    uv_loop_init(&f->loop);
    snprintf(f->url, sizeof f->url, "ipc:///tmp/nt-outbox-%d.sock", (int)getpid());
    if (serve)
        fx_serve(f);
    alert_outbox_opts o = {.url = f->url, .sender = "pm", .capacity = capacity,
                           .inflight_max = inflight, .ack_timeout_ms = 2000, .retry_ms = 50};
    assert_int_equal(alert_outbox_open(&f->loop, &o, &f->ob, err, sizeof err), 0);
}

static void on_ob_closed(void *arg) { ((fx *)arg)->closed = true; }

static void fx_close(fx *f) {
    alert_outbox_close(f->ob, on_ob_closed, f);
    if (f->rep)
        bus_rep_close(f->rep);
    while (uv_run(&f->loop, UV_RUN_NOWAIT) != 0)
        ;
    assert_true(f->closed);
    assert_int_equal(bus_close_drain(5000), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static int drained(void *arg) {
    alert_outbox_stats st;
    alert_outbox_get_stats(((fx *)arg)->ob, &st);
    return st.depth == 0;
}

static void push_n(fx *f, int n, const char *prefix) {
    for (int i = 0; i < n; i++) {
        proto_alert a = good();
        snprintf(a.id, sizeof a.id, "%s%d", prefix, i);
        char id[PROTO_ALERT_ID_MAX + 1];
        assert_int_equal(alert_outbox_push(f->ob, &a, id, NULL, 0), 0);
        assert_string_equal(id, a.id);
    }
}

static void outbox_acks(void **state) {
    (void)state;
    fx f;
    alert_outbox_stats st;
    fx_open(&f, 16, 4, true);
    push_n(&f, 10, "a");
    assert_true(wdt_run_until(&f.loop, drained, &f, 5000));
    alert_outbox_get_stats(f.ob, &st);
    assert_int_equal(st.acked, 10);
    assert_int_equal(st.pushed, 10);
    assert_int_equal(st.resent + st.dropped + st.rejected, 0);
    /* An alert without id or time gets both. */
    proto_alert a = good();
    a.id[0] = '\0';
    a.time_ns = 0;
    char id[PROTO_ALERT_ID_MAX + 1];
    assert_int_equal(alert_outbox_push(f.ob, &a, id, NULL, 0), 0);
    assert_true(strncmp(id, "pm-", 3) == 0);
    assert_true(wdt_run_until(&f.loop, drained, &f, 5000));
    /* A bad alert is refused at push, naming the field. */
    char err[256] = "";
    a = good();
    a.title[0] = '\0';
    assert_int_equal(alert_outbox_push(f.ob, &a, NULL, err, sizeof err), WD_EINVAL);
    assert_non_null(strstr(err, "'title'"));
    fx_close(&f);
}

static void outbox_resends_after_not_now(void **state) {
    (void)state;
    fx f;
    alert_outbox_stats st;
    fx_open(&f, 16, 4, true);
    f.mode = S_NOTNOW;
    f.notnow_left = 3;
    push_n(&f, 1, "n");
    assert_true(wdt_run_until(&f.loop, drained, &f, 5000));
    alert_outbox_get_stats(f.ob, &st);
    assert_int_equal(st.acked, 1);
    assert_int_equal(st.resent, 3);
    assert_int_equal(f.requests, 4);
    for (int i = 0; i < 4; i++)
        assert_string_equal(f.seen[i], "n0"); /* the same id each time */
    fx_close(&f);
}

static void outbox_drops_rejected(void **state) {
    (void)state;
    fx f;
    alert_outbox_stats st;
    fx_open(&f, 16, 4, true);
    f.mode = S_REJECT;
    push_n(&f, 2, "r");
    assert_true(wdt_run_until(&f.loop, drained, &f, 5000));
    alert_outbox_get_stats(f.ob, &st);
    assert_int_equal(st.rejected, 2);
    assert_int_equal(st.acked, 0);
    assert_int_equal(f.requests, 2); /* not resent */
    fx_close(&f);
}

static void outbox_full_drops_oldest_then_delivers_late(void **state) {
    (void)state;
    fx f;
    alert_outbox_stats st;
    fx_open(&f, 3, 1, false); /* no notifier yet */
    push_n(&f, 5, "f");
    alert_outbox_get_stats(f.ob, &st);
    assert_int_equal(st.depth, 3);
    assert_int_equal(st.dropped, 2);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    fx_serve(&f); /* the notifier comes up */
    assert_true(wdt_run_until(&f.loop, drained, &f, 10000));
    alert_outbox_get_stats(f.ob, &st);
    assert_int_equal(st.acked, 3);
    /* Only the three newest got through. */
    /* (f0 was already handed to nng when it was dropped: it may still
     * arrive once, but it is not kept or resent.) */
    int seen[5] = {0};
    for (int i = 0; i < f.requests && i < 64; i++)
        if (f.seen[i][0] == 'f' && f.seen[i][1] >= '0' && f.seen[i][1] <= '4')
            seen[f.seen[i][1] - '0']++;
    assert_int_equal(seen[1], 0); /* dropped before it was ever sent */
    assert_true(seen[2] >= 1 && seen[3] >= 1 && seen[4] >= 1);
    fx_close(&f);
}

static int teardown_all(void **state) {
    (void)state;
    if (bus_close_drain(5000) == 0)
        nng_fini();
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(malformed_names_the_field),
        cmocka_unit_test(outbox_acks),
        cmocka_unit_test(outbox_resends_after_not_now),
        cmocka_unit_test(outbox_drops_rejected),
        cmocka_unit_test(outbox_full_drops_oldest_then_delivers_late),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}
