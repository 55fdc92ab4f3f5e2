/* redis client against the suite's real Redis (WARDEN_REDIS_URL, started by
 * scripts/test): commands, binary-safe arguments, pipelining, error
 * replies, timeouts, pub/sub, streams, metrics, secrets, options and the
 * config table. Tests that kill or stop a server are in redis_fault_test.c
 * with a private one. Keys carry the pid so parallel runs do not meet. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "clock.h"
#include "config.h"
#include "metrics.h"
#include "redis.h"
#include "wd_error.h"

#define WAIT_MS 5000 /* upper bound of any wait: failures end, never hang */
#define ERR_MAX 256
#define KEY_MAX 96
#define N_PIPE 2000
#define SECRET "s3cretPW-do-not-leak"

typedef struct {
    uv_loop_t loop;
    wd_metrics *reg;
    wd_redis *r;
    const char *url;
    bool closed;
    char key[KEY_MAX];
} fx;

typedef struct {
    int n, ok, status;
    wd_errclass cls;
    int rtype;
    long long integer;
    char str[256];
    size_t len;
    char error[ERR_MAX];
} res_t;

static const char *redis_url(void) {
    const char *u = getenv("WARDEN_REDIS_URL");
    return u && *u ? u : NULL;
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->reg = wd_metrics_new();
    assert_non_null(f->reg);
    f->url = redis_url();
    snprintf(f->key, sizeof f->key, "wdt:redis_test:%ld", (long)getpid());
    *state = f;
    return 0;
}

static void on_closed(wd_redis *r, void *arg) {
    (void)r;
    *(bool *)arg = true;
}

static int teardown(void **state) {
    fx *f = *state;
    if (f->r && !f->closed) {
        wd_redis_close(f->r, on_closed, &f->closed);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_true(f->closed);
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    wd_metrics_free(f->reg);
    free(f);
    return 0;
}

typedef bool (*pred_fn)(void *arg);
static void guard_cb(uv_timer_t *t) { *(bool *)t->data = true; }

/* Runs the loop until pred(arg) or ms elapse (a repeating guard timer, so
 * UV_RUN_ONCE never blocks past it); returns pred's last value. */
static bool run_until(uv_loop_t *loop, pred_fn pred, void *arg, uint64_t ms) {
    uv_timer_t guard;
    bool expired = false;
    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_update_time(loop);
    uv_timer_start(&guard, guard_cb, ms, ms);
    while (!pred(arg) && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return pred(arg);
}

static bool res_done(void *arg) { return ((res_t *)arg)->n > 0; }

static void on_res(wd_redis *r, const wd_redis_result *res, void *arg) {
    (void)r;
    res_t *o = arg;
    o->n++;
    o->status = res->status;
    o->cls = res->errclass;
    snprintf(o->error, sizeof o->error, "%s", res->error);
    if (res->status == 0)
        o->ok++;
    if (res->reply) {
        o->rtype = res->reply->type;
        o->integer = res->reply->integer;
        o->len = 0;
        if (res->reply->str) {
            o->len = res->reply->len < sizeof o->str ? res->reply->len : sizeof o->str;
            memcpy(o->str, res->reply->str, o->len);
        }
    } else {
        o->rtype = 0;
    }
}

static void base_opts(fx *f, wd_redis_opts *o) {
    wd_redis_opts_default(o);
    o->url = f->url;
    o->metrics = f->reg;
    o->name = "test";
    o->command_timeout_ms = 2000;
    o->reconnect_initial_ms = 50;
    o->reconnect_max_ms = 200;
}

static void open_client(fx *f, const wd_redis_opts *o) {
    char err[ERR_MAX] = "";
    int rc = wd_redis_open(&f->loop, o, &f->r, err, sizeof err);
    if (rc != 0)
        fail_msg("wd_redis_open: %s: %s", wd_strerror(rc), err);
}

static bool is_ready(void *arg) { return wd_redis_get_state(arg) == WD_REDIS_READY; }

/* Runs one command to its end. */
static void run_cmd(fx *f, res_t *o, const char *fmt, ...) {
    va_list ap;
    memset(o, 0, sizeof *o);
    va_start(ap, fmt);
    int rc = wd_redis_vcommand(f->r, on_res, o, fmt, ap);
    va_end(ap);
    assert_int_equal(rc, 0);
    assert_true(run_until(&f->loop, res_done, o, WAIT_MS));
}

#define NEED_REDIS(f)                                                                              \
    do {                                                                                           \
        if (!(f)->url) {                                                                           \
            print_message("WARDEN_REDIS_URL is not set (run through scripts/test): skipped\n");    \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static double metric_value(fx *f, const char *needle) {
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(wd_metrics_render_prometheus(f->reg, &text, &len), 0);
    double v = -1;
    const char *p = strstr(text, needle);
    if (p)
        v = strtod(p + strlen(needle), NULL);
    free(text);
    return v;
}

/* ---- tests ---- */

static void test_commands_and_metrics(void **state) {
    fx *f = *state;
    NEED_REDIS(f);
    wd_redis_opts o;
    base_opts(f, &o);
    open_client(f, &o);
    res_t res;
    run_cmd(f, &res, "SET %s %s", f->key, "hello");
    assert_int_equal(res.status, 0);
    assert_int_equal(res.rtype, REDIS_REPLY_STATUS);
    assert_memory_equal(res.str, "OK", 2);
    run_cmd(f, &res, "GET %s", f->key);
    assert_int_equal(res.status, 0);
    assert_int_equal(res.rtype, REDIS_REPLY_STRING);
    assert_int_equal(res.len, 5);
    assert_memory_equal(res.str, "hello", 5);
    run_cmd(f, &res, "DEL %s", f->key);
    assert_int_equal(res.rtype, REDIS_REPLY_INTEGER);
    assert_int_equal(res.integer, 1);
    run_cmd(f, &res, "GET %s", f->key);
    assert_int_equal(res.rtype, REDIS_REPLY_NIL);
    assert_int_equal(wd_redis_get_state(f->r), WD_REDIS_READY);

    assert_true(metric_value(f, "warden_redis_commands_total{client=\"test\",command=\"GET\"} ") ==
                2);
    assert_true(metric_value(f, "warden_redis_commands_total{client=\"test\",command=\"SET\"} ") ==
                1);
    assert_true(metric_value(f, "warden_redis_command_duration_seconds_count{client=\"test\"} ") ==
                4);
    assert_true(metric_value(
                    f, "warden_redis_connection_state{client=\"test\",state=\"ready\"} ") == 1);
    assert_true(metric_value(
                    f, "warden_redis_connection_state{client=\"test\",state=\"backoff\"} ") == 0);
    assert_true(metric_value(f, "warden_redis_errors_total{client=\"test\",class=\"transient\"} ") ==
                0);
    wd_redis_stats st;
    wd_redis_get_stats(f->r, &st);
    assert_int_equal(st.submitted, 4);
    assert_int_equal(st.ok, 4);
    assert_int_equal(st.connects, 1);
}

static void test_binary_args(void **state) {
    fx *f = *state;
    NEED_REDIS(f);
    wd_redis_opts o;
    base_opts(f, &o);
    open_client(f, &o);
    static const char val[] = {'a', '\0', '\r', '\n', 'b', (char)0xff, '\0', ' ', '%'};
    char key[KEY_MAX + 4];
    int klen = snprintf(key, sizeof key, "%s", f->key);
    key[klen++] = '\0'; /* the NUL and the 'x' belong to the key */
    key[klen++] = 'x';
    const char *argv[] = {"SET", key, val};
    size_t lens[] = {3, (size_t)klen, sizeof val};
    res_t res = {0};
    assert_int_equal(wd_redis_command_argv(f->r, on_res, &res, 3, argv, lens), 0);
    assert_true(run_until(&f->loop, res_done, &res, WAIT_MS));
    assert_int_equal(res.status, 0);
    const char *gargv[] = {"GET", key};
    size_t glens[] = {3, (size_t)klen};
    memset(&res, 0, sizeof res);
    assert_int_equal(wd_redis_command_argv(f->r, on_res, &res, 2, gargv, glens), 0);
    assert_true(run_until(&f->loop, res_done, &res, WAIT_MS));
    assert_int_equal(res.status, 0);
    assert_int_equal(res.len, sizeof val);
    assert_memory_equal(res.str, val, sizeof val);
    /* the key without its tail is another key */
    run_cmd(f, &res, "EXISTS %s", f->key);
    assert_int_equal(res.integer, 0);
    run_cmd(f, &res, "DEL %b", key, (size_t)klen);
    assert_int_equal(res.integer, 1);
    /* a format with %b is binary safe too */
    run_cmd(f, &res, "SET %s %b", f->key, val, sizeof val);
    run_cmd(f, &res, "STRLEN %s", f->key);
    assert_int_equal(res.integer, sizeof val);
    run_cmd(f, &res, "DEL %s", f->key);
}

/* ---- writes: larger than the socket takes at once, and chained ---- */

#define BIG_LEN (8u << 20) /* far more than a loopback socket buffers */
#define N_CHAIN 500

typedef struct {
    int n, ok;
    size_t len;
    bool same;
    const char *want;
} big_t;

static void on_big(wd_redis *r, const wd_redis_result *res, void *arg) {
    (void)r;
    big_t *b = arg;
    b->n++;
    if (res->status != 0)
        return;
    b->ok++;
    if (res->reply->type == REDIS_REPLY_STRING) {
        b->len = res->reply->len;
        b->same = b->want && res->reply->len == BIG_LEN &&
                  memcmp(res->reply->str, b->want, BIG_LEN) == 0;
    }
}
static bool big_done4(void *arg) { return ((big_t *)arg)->n == 4; }
static bool big_done1(void *arg) { return ((big_t *)arg)->n == 1; }

typedef struct {
    int n, ok, in_order;
    const char *key;
} chain_t;

/* Each reply's callback sends the next command: these are written by the
 * client at the end of the read, not from its idle handle. */
static void on_chain(wd_redis *r, const wd_redis_result *res, void *arg) {
    chain_t *c = arg;
    c->n++;
    if (res->status == 0 && res->reply->type == REDIS_REPLY_INTEGER) {
        c->ok++;
        if (res->reply->integer == c->n)
            c->in_order++;
    }
    if (c->n < N_CHAIN)
        assert_int_equal(wd_redis_command(r, on_chain, c, "INCR %s", c->key), 0);
}
static bool chain_done(void *arg) { return ((chain_t *)arg)->n == N_CHAIN; }

static void test_big_and_chained_writes(void **state) {
    fx *f = *state;
    NEED_REDIS(f);
    wd_redis_opts o;
    base_opts(f, &o);
    open_client(f, &o);
    assert_true(run_until(&f->loop, is_ready, f->r, WAIT_MS));
    char *val = malloc(BIG_LEN);
    assert_non_null(val);
    for (size_t i = 0; i < BIG_LEN; i++)
        val[i] = (char)(i * 31 + (i >> 13));
    char key2[KEY_MAX + 8];
    snprintf(key2, sizeof key2, "%s:n", f->key);
    res_t res;
    run_cmd(f, &res, "DEL %s %s", f->key, key2);
    /* One SET that needs many partial writes (argv path), and commands
     * queued behind it while the rest of it waits for the socket. */
    const char *argv[] = {"SET", f->key, val};
    size_t lens[] = {3, strlen(f->key), BIG_LEN};
    big_t b = {0};
    assert_int_equal(wd_redis_command_argv(f->r, on_big, &b, 3, argv, lens), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(wd_redis_command(f->r, on_big, &b, "INCR %s", key2), 0);
    assert_true(run_until(&f->loop, big_done4, &b, WAIT_MS));
    assert_int_equal(b.ok, 4);
    run_cmd(f, &res, "STRLEN %s", f->key);
    assert_int_equal(res.integer, BIG_LEN);
    run_cmd(f, &res, "GET %s", key2);
    assert_memory_equal(res.str, "3", 1);
    /* the same through a format (the malloc'd command path), read back whole */
    val[0] ^= 0x5a;
    memset(&b, 0, sizeof b);
    assert_int_equal(wd_redis_command(f->r, on_big, &b, "SET %s %b", f->key, val, (size_t)BIG_LEN),
                     0);
    assert_true(run_until(&f->loop, big_done1, &b, WAIT_MS));
    assert_int_equal(b.ok, 1);
    memset(&b, 0, sizeof b);
    b.want = val;
    assert_int_equal(wd_redis_command(f->r, on_big, &b, "GET %s", f->key), 0);
    assert_true(run_until(&f->loop, big_done1, &b, WAIT_MS));
    assert_int_equal(b.len, BIG_LEN);
    assert_true(b.same);
    free(val);

    chain_t c = {.key = key2};
    run_cmd(f, &res, "DEL %s", key2);
    assert_int_equal(wd_redis_command(f->r, on_chain, &c, "INCR %s", key2), 0);
    assert_true(run_until(&f->loop, chain_done, &c, WAIT_MS));
    assert_int_equal(c.ok, N_CHAIN);
    assert_int_equal(c.in_order, N_CHAIN);
    wd_redis_stats st;
    wd_redis_get_stats(f->r, &st);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.failed, 0);
    run_cmd(f, &res, "DEL %s %s", f->key, key2);
    assert_int_equal(res.integer, 2);
}

typedef struct {
    int n, ok, in_order;
    long long last;
} pipe_t;

static void on_pipe(wd_redis *r, const wd_redis_result *res, void *arg) {
    (void)r;
    pipe_t *p = arg;
    p->n++;
    if (res->status == 0 && res->reply->type == REDIS_REPLY_INTEGER) {
        p->ok++;
        if (res->reply->integer == p->last + 1)
            p->in_order++;
        p->last = res->reply->integer;
    }
}
static bool pipe_done(void *arg) { return ((pipe_t *)arg)->n == N_PIPE; }

static void test_pipelining(void **state) {
    fx *f = *state;
    NEED_REDIS(f);
    wd_redis_opts o;
    base_opts(f, &o);
    open_client(f, &o);
    assert_true(run_until(&f->loop, is_ready, f->r, WAIT_MS));
    res_t res;
    run_cmd(f, &res, "DEL %s", f->key);
    pipe_t p = {0};
    for (int i = 0; i < N_PIPE; i++)
        assert_int_equal(wd_redis_command(f->r, on_pipe, &p, "INCR %s", f->key), 0);
    /* all of them are on the wire at once, before any reply was read */
    wd_redis_stats st;
    wd_redis_get_stats(f->r, &st);
    assert_int_equal(st.inflight, N_PIPE);
    assert_true(run_until(&f->loop, pipe_done, &p, WAIT_MS));
    assert_int_equal(p.ok, N_PIPE);
    assert_int_equal(p.in_order, N_PIPE); /* replies matched to commands in order */
    run_cmd(f, &res, "GET %s", f->key);
    assert_int_equal(atoi(res.str), N_PIPE);
    run_cmd(f, &res, "DEL %s", f->key);
}

static void test_error_reply_not_breaker_failure(void **state) {
    fx *f = *state;
    NEED_REDIS(f);
    wd_redis_opts o;
    base_opts(f, &o);
    o.breaker.failure_threshold = 2;
    open_client(f, &o);
    res_t res;
    run_cmd(f, &res, "SET %s %s", f->key, "x");
    for (int i = 0; i < 5; i++) {
        run_cmd(f, &res, "LPUSH %s %s", f->key, "y");
        assert_int_equal(res.status, WD_EPERMANENT);
        assert_int_equal(res.cls, WD_ERRCLASS_PERMANENT);
        assert_int_equal(res.rtype, REDIS_REPLY_ERROR);
        assert_non_null(strstr(res.error, "WRONGTYPE"));
    }
    /* the server answered each time: the breaker stays closed */
    assert_int_equal(wd_redis_breaker(f->r)->state, BRK_CLOSED);
    run_cmd(f, &res, "NOSUCHCOMMAND");
    assert_int_equal(res.status, WD_EPERMANENT);
    assert_true(metric_value(f, "warden_redis_errors_total{client=\"test\",class=\"permanent\"} ") ==
                6);
    /* a bad format is refused at once, and so is SUBSCRIBE on this connection */
    assert_int_equal(wd_redis_command(f->r, on_res, &res, "SUBSCRIBE x"), WD_EINVAL);
    assert_int_equal(wd_redis_command(f->r, NULL, &res, "PING"), WD_EINVAL);
    run_cmd(f, &res, "DEL %s", f->key);
    assert_int_equal(res.integer, 1);
}

static void test_command_timeout(void **state) {
    fx *f = *state;
    NEED_REDIS(f);
    wd_redis_opts o;
    base_opts(f, &o);
    o.command_timeout_ms = 300;
    o.breaker.failure_threshold = 100;
    open_client(f, &o);
    assert_true(run_until(&f->loop, is_ready, f->r, WAIT_MS));
    res_t blocked = {0}, behind = {0};
    uint64_t t0 = wd_clock_mono_ns();
    /* BLPOP blocks for 3 s on the server, longer than the command timeout;
     * the GET behind it shares its fate */
    assert_int_equal(wd_redis_command(f->r, on_res, &blocked, "BLPOP %s:empty 3", f->key), 0);
    assert_false(run_until(&f->loop, res_done, &blocked, 100)); /* its deadline is later */
    assert_int_equal(wd_redis_command(f->r, on_res, &behind, "GET %s", f->key), 0);
    assert_true(run_until(&f->loop, res_done, &behind, WAIT_MS));
    uint64_t took_ms = (wd_clock_mono_ns() - t0) / WD_NS_PER_MS;
    assert_int_equal(blocked.n, 1);
    assert_int_equal(blocked.status, WD_ETIMEDOUT);
    assert_int_equal(blocked.cls, WD_ERRCLASS_TRANSIENT);
    assert_int_equal(behind.status, WD_EIO);
    assert_int_equal(behind.cls, WD_ERRCLASS_TRANSIENT);
    assert_non_null(strstr(behind.error, "timed out"));
    assert_true(took_ms >= 250 && took_ms < 2500);
    /* the connection was dropped and comes back */
    assert_true(run_until(&f->loop, is_ready, f->r, WAIT_MS));
    res_t res;
    run_cmd(f, &res, "PING");
    assert_int_equal(res.status, 0);
    wd_redis_stats st;
    wd_redis_get_stats(f->r, &st);
    assert_int_equal(st.timeouts, 1);
    assert_true(st.reconnects >= 1);
    assert_true(metric_value(f, "warden_redis_errors_total{client=\"test\",class=\"transient\"} ") ==
                2);
}

typedef struct {
    int subscribed, messages;
    char channel[64], data[64];
    size_t len;
    bool from_pattern;
} sub_t;

static void on_msg(wd_redis *r, const wd_redis_msg *m, void *arg) {
    (void)r;
    sub_t *s = arg;
    if (m->kind == WD_REDIS_MSG_SUBSCRIBED) {
        s->subscribed++;
        return;
    }
    s->messages++;
    snprintf(s->channel, sizeof s->channel, "%.*s", (int)m->channel_len, m->channel);
    s->len = m->len < sizeof s->data ? m->len : sizeof s->data;
    memcpy(s->data, m->data, s->len);
    s->from_pattern = m->pattern != NULL;
}
static bool subscribed(void *arg) { return ((sub_t *)arg)->subscribed > 0; }
static bool got_msg(void *arg) { return ((sub_t *)arg)->messages > 0; }

static void test_pubsub(void **state) {
    fx *f = *state;
    NEED_REDIS(f);
    wd_redis_opts o;
    base_opts(f, &o);
    o.ping_interval_ms = 100; /* the pub/sub health check runs too */
    open_client(f, &o);
    char ch[KEY_MAX + 8], pat[KEY_MAX + 8];
    snprintf(ch, sizeof ch, "%s:ch", f->key);
    snprintf(pat, sizeof pat, "%s:p*", f->key);
    sub_t s = {0}, ps = {0};
    assert_int_equal(wd_redis_subscribe(f->r, ch, on_msg, &s), 0);
    assert_int_equal(wd_redis_subscribe(f->r, ch, on_msg, &s), WD_EEXIST);
    assert_int_equal(wd_redis_psubscribe(f->r, pat, on_msg, &ps), 0);
    assert_true(run_until(&f->loop, subscribed, &s, WAIT_MS));
    assert_true(run_until(&f->loop, subscribed, &ps, WAIT_MS));
    assert_int_equal(wd_redis_sub_state(f->r), WD_REDIS_READY);
    static const char payload[] = {'h', 'i', '\0', '!'};
    res_t res;
    run_cmd(f, &res, "PUBLISH %s %b", ch, payload, sizeof payload);
    assert_int_equal(res.integer, 1);
    assert_true(run_until(&f->loop, got_msg, &s, WAIT_MS));
    assert_string_equal(s.channel, ch);
    assert_int_equal(s.len, sizeof payload);
    assert_memory_equal(s.data, payload, sizeof payload);
    assert_false(s.from_pattern);
    char pch[KEY_MAX + 8];
    snprintf(pch, sizeof pch, "%s:pq", f->key);
    run_cmd(f, &res, "PUBLISH %s %s", pch, "via-pattern");
    assert_true(run_until(&f->loop, got_msg, &ps, WAIT_MS));
    assert_string_equal(ps.channel, pch);
    assert_true(ps.from_pattern);
    /* let a few health checks pass: the subscriber stays connected */
    uv_update_time(&f->loop);
    uint64_t until = wd_clock_mono_ns() + 400 * WD_NS_PER_MS;
    while (wd_clock_mono_ns() < until)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(s.subscribed, 1);
    wd_redis_stats st;
    wd_redis_get_stats(f->r, &st);
    assert_int_equal(st.messages, 2);
    assert_int_equal(st.connects, 2); /* one per connection, none dropped */
    assert_true(metric_value(f, "warden_redis_messages_total{client=\"test\"} ") == 2);
    assert_int_equal(wd_redis_unsubscribe(f->r, ch), 0);
    assert_int_equal(wd_redis_unsubscribe(f->r, ch), WD_ENOTFOUND);
    s.messages = 0;
    run_cmd(f, &res, "PUBLISH %s %s", ch, "gone");
    run_cmd(f, &res, "PING"); /* one more round trip */
    assert_int_equal(s.messages, 0);
}

typedef struct {
    int n, status, entries;
    char sym2[16], px1[16];
} xr_t;

static bool xdone(void *arg) { return ((xr_t *)arg)->n > 0; }

static void on_x(wd_redis *r, const wd_redis_result *rs, void *arg) {
    (void)r;
    xr_t *x = arg;
    x->n++;
    x->status = rs->status;
    const redisReply *streams = rs->reply;
    const redisReply *first = wd_redis_reply_at(streams, 0);
    const redisReply *entries = wd_redis_reply_at(first, 1);
    if (!entries)
        return;
    x->entries = (int)entries->elements;
    const redisReply *e1f = wd_redis_reply_at(wd_redis_reply_at(entries, 0), 1);
    const redisReply *e2f = wd_redis_reply_at(wd_redis_reply_at(entries, 1), 1);
    const redisReply *px1 = wd_redis_reply_at(e1f, 3), *sym2 = wd_redis_reply_at(e2f, 1);
    if (px1 && px1->str)
        snprintf(x->px1, sizeof x->px1, "%s", px1->str);
    if (sym2 && sym2->str)
        snprintf(x->sym2, sizeof x->sym2, "%s", sym2->str);
    /* out of range and non-arrays give NULL, not a crash */
    assert_null(wd_redis_reply_at(entries, 99));
    assert_null(wd_redis_reply_at(px1, 0));
}

static void test_streams(void **state) {
    fx *f = *state;
    NEED_REDIS(f);
    wd_redis_opts o;
    base_opts(f, &o);
    open_client(f, &o);
    char stream[KEY_MAX + 8];
    snprintf(stream, sizeof stream, "%s:stream", f->key);
    res_t res;
    run_cmd(f, &res, "DEL %s", stream);
    run_cmd(f, &res, "XADD %s * sym %s px %s", stream, "AAPL", "189.5");
    assert_int_equal(res.status, 0);
    assert_int_equal(res.rtype, REDIS_REPLY_STRING); /* the entry id */
    run_cmd(f, &res, "XADD %s * sym %s px %s", stream, "MSFT", "410.25");
    assert_int_equal(res.status, 0);

    /* XREAD COUNT 10 STREAMS key 0:
     *   [ [ key, [ [id, [f, v, f, v]], [id, [...]] ] ] ] */
    xr_t x = {0};
    assert_int_equal(wd_redis_command(f->r, on_x, &x, "XREAD COUNT 10 STREAMS %s 0", stream), 0);
    assert_true(run_until(&f->loop, xdone, &x, WAIT_MS));
    assert_int_equal(x.status, 0);
    assert_int_equal(x.entries, 2);
    assert_string_equal(x.px1, "189.5");
    assert_string_equal(x.sym2, "MSFT");
    run_cmd(f, &res, "DEL %s", stream);
    assert_int_equal(res.integer, 1);
}

typedef struct {
    int n, leaked;
} leak_t;

static void on_leak(wd_redis *r, const wd_redis_result *res, void *arg) {
    (void)r;
    leak_t *l = arg;
    l->n++;
    if (strstr(res->error, SECRET))
        l->leaked++;
}
static bool leak_done(void *arg) { return ((leak_t *)arg)->n >= 3; }

static void test_no_password_leak(void **state) {
    fx *f = *state;
    NEED_REDIS(f);
    char err[ERR_MAX];
    wd_redis *r = NULL;
    wd_redis_opts o;
    /* bad urls with a password: the error never quotes it */
    static const char *const bad[] = {
        "redis://:" SECRET "@127.0.0.1:99999",     "redis://:" SECRET "@127.0.0.1:1/x",
        "redis://:" SECRET "%zz@127.0.0.1:1",      "http://:" SECRET "@127.0.0.1:1",
        "redis://:" SECRET "@127.0.0.1:1?db=1",    "redis://" SECRET "@127.0.0.1:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        base_opts(f, &o);
        o.url = bad[i];
        o.metrics = NULL;
        err[0] = '\0';
        assert_int_not_equal(wd_redis_open(&f->loop, &o, &r, err, sizeof err), 0);
        assert_null(r);
        assert_true(err[0] != '\0');
        assert_null(strstr(err, SECRET));
        assert_null(strstr(err, "s3cret"));
    }
    /* a password the server does not take: AUTH fails (critical) */
    const char *port = strrchr(f->url, ':');
    char url[ERR_MAX];
    snprintf(url, sizeof url, "redis://:%s@127.0.0.1%s", SECRET, port);
    base_opts(f, &o);
    o.url = url;
    o.connect_timeout_ms = 300;
    o.command_timeout_ms = 300;
    open_client(f, &o);
    leak_t l = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(wd_redis_command(f->r, on_leak, &l, "PING"), 0);
    assert_true(run_until(&f->loop, leak_done, &l, WAIT_MS));
    assert_int_equal(l.leaked, 0);
    assert_int_not_equal(wd_redis_get_state(f->r), WD_REDIS_READY);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(wd_metrics_render_prometheus(f->reg, &text, &len), 0);
    assert_null(strstr(text, SECRET));
    assert_non_null(strstr(text, "class=\"critical\"} 1")); /* the failed AUTH */
    free(text);
    const brk_breaker *b = wd_redis_breaker(f->r);
    for (uint32_t i = 0; brk_history_at(b, i); i++)
        assert_null(strstr(brk_history_at(b, i)->reason, SECRET));
}

static void test_bad_options(void **state) {
    fx *f = *state;
    char err[ERR_MAX];
    wd_redis *r = NULL;
    wd_redis_opts o;
    wd_redis_opts_default(&o);
    o.command_timeout_ms = 0;
    assert_int_equal(wd_redis_open(&f->loop, &o, &r, err, sizeof err), WD_ERANGE);
    assert_non_null(strstr(err, "timeout"));
    wd_redis_opts_default(&o);
    o.reconnect_jitter = 0.9;
    assert_int_equal(wd_redis_open(&f->loop, &o, &r, err, sizeof err), WD_ERANGE);
    assert_non_null(strstr(err, "jitter"));
    wd_redis_opts_default(&o);
    o.port = 0;
    assert_int_equal(wd_redis_open(&f->loop, &o, &r, err, sizeof err), WD_ERANGE);
    wd_redis_opts_default(&o);
    o.url = "redis://localhost:6379/abc";
    assert_int_equal(wd_redis_open(&f->loop, &o, &r, err, sizeof err), WD_EINVAL);
    assert_non_null(strstr(err, "database"));
    wd_redis_opts_default(&o);
    o.breaker.failure_threshold = 0;
    assert_int_equal(wd_redis_open(&f->loop, &o, &r, err, sizeof err), WD_EINVAL);
    /* the same registry twice without metric_set: a clear error */
    wd_redis_opts_default(&o);
    o.metrics = f->reg;
    wd_redis_metrics ms;
    assert_int_equal(wd_redis_metrics_register(f->reg, &ms), 0);
    assert_int_equal(wd_redis_open(&f->loop, &o, &r, err, sizeof err), WD_ECONFIG);
    assert_non_null(strstr(err, "metric_set"));
    assert_null(r);
    /* a good url with every part parses, and the client opens */
    wd_redis_opts_default(&o);
    o.url = "redis://user:p%40ss@[::1]:6390/3";
    o.metric_set = &ms;
    o.connect_timeout_ms = 50;
    assert_int_equal(wd_redis_open(&f->loop, &o, &f->r, err, sizeof err), 0);
    assert_int_equal(uv_loop_alive(&f->loop), 1);
}

typedef struct {
    int n, closed_status;
    bool closed_seen_before_cb;
    bool *closed;
} close_t;

static void on_close_res(wd_redis *r, const wd_redis_result *res, void *arg) {
    close_t *c = arg;
    c->n++;
    c->closed_status = res->status;
    if (*c->closed)
        c->closed_seen_before_cb = true;
    /* a callback may try again: refused, its callback never runs */
    assert_int_equal(wd_redis_command(r, on_close_res, arg, "PING"), WD_ECLOSED);
}

static void test_close_with_pending(void **state) {
    fx *f = *state;
    wd_redis_opts o;
    wd_redis_opts_default(&o);
    o.url = f->url ? f->url : "redis://127.0.0.1:1";
    o.command_timeout_ms = 5000;
    open_client(f, &o);
    close_t c = {.closed = &f->closed};
    for (int i = 0; i < 10; i++)
        assert_int_equal(wd_redis_command(f->r, on_close_res, &c, "PING"), 0);
    sub_t s = {0};
    assert_int_equal(wd_redis_subscribe(f->r, "wdt:close", on_msg, &s), 0);
    assert_int_equal(wd_redis_close(f->r, on_closed, &f->closed), 0);
    assert_int_equal(wd_redis_close(f->r, on_closed, &f->closed), WD_ESTATE);
    assert_int_equal(wd_redis_command(f->r, on_close_res, &c, "PING"), WD_ECLOSED);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    assert_int_equal(c.n, 10);
    assert_int_equal(c.closed_status, WD_ECLOSED);
    assert_false(c.closed_seen_before_cb);
}

static void test_conf_table(void **state) {
    (void)state;
    char path[] = "/tmp/wdt-redis-conf.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char text[] = "[supervisor]\nrun_dir = /tmp\n"
                               "[redis]\nurl = redis://10.1.2.3:7000/2\ncommand_timeout = 250ms\n"
                               "reconnect_multiplier = 2.5\nping_interval = 0\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    wd_conf *conf = NULL;
    wd_conf_errors errs = {0};
    assert_int_equal(wd_conf_read(path, NULL, &conf, &errs), 0);
    wd_redis_conf rc;
    assert_int_equal(wd_conf_apply_section(conf, "redis", wd_redis_conf_fields,
                                           wd_redis_conf_n_fields, &rc, &errs),
                     0);
    assert_string_equal(rc.url, "redis://10.1.2.3:7000/2");
    assert_int_equal(rc.command_timeout_ms, 250);
    assert_int_equal(rc.connect_timeout_ms, 2000); /* default */
    assert_int_equal(rc.ping_interval_ms, 0);
    assert_int_equal(rc.reconnect_max_ms, 120000);
    assert_true(rc.reconnect_multiplier == 2.5);
    assert_true(rc.reconnect_jitter == 0.2);
    wd_redis_opts o;
    wd_redis_opts_default(&o);
    wd_redis_conf_to_opts(&rc, &o);
    assert_int_equal(o.command_timeout_ms, 250);
    assert_string_equal(o.url, rc.url);
    wd_conf_free(conf);
    unlink(path);

    /* a bad value is an error naming the key */
    char path2[] = "/tmp/wdt-redis-conf.XXXXXX";
    fd = mkstemp(path2);
    static const char bad[] = "[redis]\nreconnect_jitter = 0.9\n";
    assert_int_equal(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
    close(fd);
    memset(&errs, 0, sizeof errs);
    assert_int_equal(wd_conf_read(path2, NULL, &conf, &errs), 0);
    assert_int_equal(wd_conf_apply_section(conf, "redis", wd_redis_conf_fields,
                                           wd_redis_conf_n_fields, &rc, &errs),
                     WD_ECONFIG);
    assert_true(errs.n >= 1);
    assert_non_null(strstr(errs.msg[0], "reconnect_jitter"));
    wd_conf_free(conf);
    unlink(path2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commands_and_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_and_chained_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_reply_not_breaker_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pubsub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_password_leak, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_table, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
