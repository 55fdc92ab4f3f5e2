/* redis client under faults, each against a real server of the test's own
 * (tests/support/redis_server.h) or a black-hole listener:
 *   (a) redis-server SIGKILLed mid-pipeline: in-flight commands fail
 *       transient, the breaker opens, calls fail fast with WD_EOPEN without
 *       any I/O, the client reconnects to the restarted server, the breaker
 *       goes half-open and closes; pub/sub subscribes again;
 *   (b) a listener that never answers, and a server that is SIGSTOPped:
 *       connect, command and PING timeouts fire and the client keeps
 *       retrying, it does not hang;
 *   (c) during every fault a 10 ms loop-lateness probe runs, and its worst
 *       lateness stays small: nothing blocks the loop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "clock.h"
#include "redis.h"
#include "redis_server.h"
#include "support.h"
#include "wd_error.h"

#define WAIT_MS 8000     /* upper bound of any wait */
#define LATE_MAX_MS 200  /* worst loop lateness allowed, valgrind included */
#define PROBE_MS 10
#define N_INFLIGHT 200
#define N_REJECT 5
#define ERR_MAX 256

typedef struct {
    uv_loop_t loop;
    wd_redis *r;
    bool closed;
    wdt_redis_server srv;
    wdt_lateness probe;
    bool probing;
    int lfd; /* black-hole listener */
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->lfd = -1;
    *state = f;
    return 0;
}

static void on_closed(wd_redis *r, void *arg) {
    (void)r;
    *(bool *)arg = true;
}

static int teardown(void **state) {
    fx *f = *state;
    if (f->probing)
        wdt_lateness_stop(&f->probe);
    if (f->r) {
        wd_redis_close(f->r, on_closed, &f->closed);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_true(f->closed);
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    wdt_redis_server_stop(&f->srv);
    if (f->lfd >= 0)
        close(f->lfd);
    free(f);
    return 0;
}

typedef bool (*pred_fn)(void *arg);
static void guard_cb(uv_timer_t *t) { *(bool *)t->data = true; }

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
static bool never(void *arg) {
    (void)arg;
    return false;
}
static bool is_ready(void *arg) { return wd_redis_get_state(arg) == WD_REDIS_READY; }
static bool not_ready(void *arg) { return wd_redis_get_state(arg) != WD_REDIS_READY; }

typedef struct {
    int n, ok, transient, other, eopen, etimedout, eio, eunavail;
    int last_status;
    char error[ERR_MAX];
    long long integer;
} tally_t;

static void on_tally(wd_redis *r, const wd_redis_result *res, void *arg) {
    (void)r;
    tally_t *t = arg;
    t->n++;
    t->last_status = res->status;
    snprintf(t->error, sizeof t->error, "%s", res->error);
    if (res->status == 0) {
        t->ok++;
        if (res->reply && res->reply->type == REDIS_REPLY_INTEGER)
            t->integer = res->reply->integer;
        return;
    }
    if (res->errclass == WD_ERRCLASS_TRANSIENT)
        t->transient++;
    else
        t->other++;
    if (res->status == WD_EOPEN)
        t->eopen++;
    if (res->status == WD_ETIMEDOUT)
        t->etimedout++;
    if (res->status == WD_EIO)
        t->eio++;
    if (res->status == WD_EUNAVAIL)
        t->eunavail++;
}

typedef struct {
    tally_t *t;
    int want;
} want_t;
static bool tally_at(void *arg) {
    want_t *w = arg;
    return w->t->n >= w->want;
}
static bool wait_n(fx *f, tally_t *t, int n, uint64_t ms) {
    want_t w = {t, n};
    return run_until(&f->loop, tally_at, &w, ms);
}

static void base_opts(wd_redis_opts *o, int port, char *url, size_t urllen) {
    wd_redis_opts_default(o);
    snprintf(url, urllen, "redis://127.0.0.1:%d", port);
    o->url = url;
    o->name = "fault";
    o->connect_timeout_ms = 500;
    o->command_timeout_ms = 1000;
    o->ping_interval_ms = 0;
    o->reconnect_initial_ms = 50;
    o->reconnect_max_ms = 200;
    o->breaker.failure_threshold = 3;
    o->breaker.open_ns = 1500 * WD_NS_PER_MS;
    o->breaker.open_max_ns = 1500 * WD_NS_PER_MS;
    o->breaker.jitter = 0;
    o->breaker.half_open_max = 1;
}

static void open_client(fx *f, const wd_redis_opts *o) {
    char err[ERR_MAX] = "";
    int rc = wd_redis_open(&f->loop, o, &f->r, err, sizeof err);
    if (rc != 0)
        fail_msg("wd_redis_open: %s: %s", wd_strerror(rc), err);
}

static void probe_start(fx *f) {
    wdt_lateness_start(&f->loop, &f->probe, PROBE_MS);
    f->probing = true;
}

static void probe_check(fx *f) {
    print_message("loop lateness: worst %llu ms over %llu ticks\n",
                  (unsigned long long)f->probe.worst_late_ms, (unsigned long long)f->probe.ticks);
    assert_true(f->probe.ticks > 10);
    assert_true(f->probe.worst_late_ms < wdt_late_bound_ms(LATE_MAX_MS));
}

typedef struct {
    int subscribed, messages;
} sub_t;
static void on_msg(wd_redis *r, const wd_redis_msg *m, void *arg) {
    (void)r;
    sub_t *s = arg;
    if (m->kind == WD_REDIS_MSG_SUBSCRIBED)
        s->subscribed++;
    else
        s->messages++;
}
typedef struct {
    sub_t *s;
    int want;
} subwant_t;
static bool sub_at(void *arg) {
    subwant_t *w = arg;
    return w->s->subscribed >= w->want;
}
static bool msg_seen(void *arg) { return ((sub_t *)arg)->messages > 0; }

/* (a) + (c) */
static void test_kill_mid_pipeline(void **state) {
    fx *f = *state;
    assert_int_equal(wdt_redis_server_start(&f->srv, 0, NULL), 0);
    char url[ERR_MAX];
    wd_redis_opts o;
    base_opts(&o, f->srv.port, url, sizeof url);
    open_client(f, &o);
    sub_t s = {0};
    assert_int_equal(wd_redis_subscribe(f->r, "wdt:fault", on_msg, &s), 0);
    assert_true(run_until(&f->loop, is_ready, f->r, WAIT_MS));
    subwant_t sw = {&s, 1};
    assert_true(run_until(&f->loop, sub_at, &sw, WAIT_MS));
    probe_start(f);

    tally_t t = {0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(wd_redis_command(f->r, on_tally, &t, "INCR wdt:fault:n"), 0);
    assert_true(wait_n(f, &t, 5, WAIT_MS));
    assert_int_equal(t.ok, 5);
    /* stopped first, so that the pipeline is surely on the wire, unanswered,
     * when the server dies */
    assert_int_equal(wdt_redis_server_signal(&f->srv, SIGSTOP), 0);
    for (int i = 0; i < N_INFLIGHT; i++)
        assert_int_equal(wd_redis_command(f->r, on_tally, &t, "INCR wdt:fault:n"), 0);
    run_until(&f->loop, never, NULL, 50);
    wd_redis_stats mid;
    wd_redis_get_stats(f->r, &mid);
    assert_int_equal(mid.inflight, N_INFLIGHT);
    assert_int_equal(t.n, 5);
    assert_int_equal(wdt_redis_server_signal(&f->srv, SIGKILL), 0);
    assert_true(wait_n(f, &t, 5 + N_INFLIGHT, WAIT_MS));
    print_message("in flight at the kill: %d; failed: %d (%d EIO): %s\n", N_INFLIGHT,
                  t.n - t.ok, t.eio, t.error);
    assert_int_equal(t.ok, 5);
    assert_int_equal(t.other, 0); /* every failure is transient */
    assert_int_equal(t.transient, N_INFLIGHT);
    assert_int_equal(t.eio, N_INFLIGHT);
    assert_true(t.eio > 0);
    brk_breaker *b = wd_redis_breaker(f->r);
    assert_int_equal(b->state, BRK_OPEN);

    /* open: fail fast, nothing written */
    wd_redis_stats before, after;
    wd_redis_get_stats(f->r, &before);
    tally_t rej = {0};
    for (int i = 0; i < N_REJECT; i++)
        assert_int_equal(wd_redis_command(f->r, on_tally, &rej, "INCR wdt:fault:k"), 0);
    assert_int_equal(rej.n, 0); /* never inside wd_redis_command */
    assert_true(wait_n(f, &rej, N_REJECT, WAIT_MS));
    assert_int_equal(rej.eopen, N_REJECT);
    wd_redis_get_stats(f->r, &after);
    assert_int_equal(after.sent, before.sent);
    assert_int_equal(after.rejected, before.rejected + N_REJECT);

    /* the server comes back on the same port; the client reconnects while
     * the breaker is still open, and calls are still refused */
    assert_int_equal(wdt_redis_server_spawn(&f->srv), 0);
    assert_true(run_until(&f->loop, is_ready, f->r, WAIT_MS));
    assert_true(brk_retry_in(b, wd_clock_mono_ns()) > 0);
    tally_t rej2 = {0};
    assert_int_equal(wd_redis_command(f->r, on_tally, &rej2, "INCR wdt:fault:k"), 0);
    assert_true(wait_n(f, &rej2, 1, WAIT_MS));
    assert_int_equal(rej2.eopen, 1);
    /* the subscriber is back too, subscribed again */
    sw.want = 2;
    assert_true(run_until(&f->loop, sub_at, &sw, WAIT_MS));

    /* after the open time: one trial call (half-open), it succeeds, closed */
    uint64_t wait_ms = brk_retry_in(b, wd_clock_mono_ns()) / WD_NS_PER_MS + 20;
    run_until(&f->loop, never, NULL, wait_ms);
    tally_t trial = {0};
    assert_int_equal(wd_redis_command(f->r, on_tally, &trial, "INCR wdt:fault:k"), 0);
    assert_int_equal(b->state, BRK_HALF_OPEN);
    assert_true(wait_n(f, &trial, 1, WAIT_MS));
    assert_int_equal(trial.ok, 1);
    assert_int_equal(b->state, BRK_CLOSED);
    const brk_transition *last = brk_history_at(b, 0);
    assert_non_null(last);
    assert_int_equal(last->from, BRK_HALF_OPEN);
    assert_int_equal(last->to, BRK_CLOSED);
    /* the refused INCRs never reached the server: the key counts one */
    assert_int_equal(trial.integer, 1);
    tally_t pub = {0};
    assert_int_equal(wd_redis_command(f->r, on_tally, &pub, "PUBLISH wdt:fault hello"), 0);
    assert_true(wait_n(f, &pub, 1, WAIT_MS));
    assert_int_equal(pub.integer, 1);
    assert_true(run_until(&f->loop, msg_seen, &s, WAIT_MS));
    probe_check(f);
}

/* (b) + (c): a listener with a backlog that never accepts nor answers */
static void test_black_hole(void **state) {
    fx *f = *state;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(f->lfd, 64), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sa, &len), 0);
    char url[ERR_MAX];
    wd_redis_opts o;
    base_opts(&o, ntohs(sa.sin_port), url, sizeof url);
    o.connect_timeout_ms = 300;
    o.command_timeout_ms = 150;
    o.breaker.failure_threshold = 100;
    probe_start(f);
    open_client(f, &o);
    /* the TCP connect succeeds (the kernel accepts into the backlog), the
     * handshake is never answered */
    tally_t t = {0};
    assert_int_equal(wd_redis_command(f->r, on_tally, &t, "PING"), 0);
    assert_true(wait_n(f, &t, 1, WAIT_MS));
    assert_int_equal(t.last_status, WD_ETIMEDOUT); /* command timeout while connecting */
    assert_non_null(strstr(t.error, "no connection within 150 ms"));
    assert_true(run_until(&f->loop, never, NULL, 1200) == false);
    wd_redis_stats st;
    wd_redis_get_stats(f->r, &st);
    print_message("black hole: %llu reconnect attempts in ~1.5 s\n",
                  (unsigned long long)st.reconnects);
    assert_true(st.reconnects >= 2); /* connect timeouts fire, attempts go on */
    assert_int_equal(st.connects, 0);
    assert_int_not_equal(wd_redis_get_state(f->r), WD_REDIS_READY);
    /* a command while waiting to reconnect fails fast */
    tally_t t2 = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(wd_redis_command(f->r, on_tally, &t2, "PING"), 0);
    assert_true(wait_n(f, &t2, 3, WAIT_MS));
    assert_int_equal(t2.transient, 3);
    probe_check(f);
}

/* (b) + (c): a server that stops answering once connected (SIGSTOP) */
static void test_stopped_server(void **state) {
    fx *f = *state;
    assert_int_equal(wdt_redis_server_start(&f->srv, 0, NULL), 0);
    char url[ERR_MAX];
    wd_redis_opts o;
    base_opts(&o, f->srv.port, url, sizeof url);
    o.command_timeout_ms = 200;
    o.connect_timeout_ms = 300;
    o.ping_interval_ms = 100;
    o.breaker.failure_threshold = 100;
    open_client(f, &o);
    assert_true(run_until(&f->loop, is_ready, f->r, WAIT_MS));
    probe_start(f);
    assert_int_equal(wdt_redis_server_signal(&f->srv, SIGSTOP), 0);
    /* commands time out */
    tally_t t = {0};
    uint64_t t0 = wd_clock_mono_ns();
    for (int i = 0; i < 4; i++)
        assert_int_equal(wd_redis_command(f->r, on_tally, &t, "GET wdt:fault:x"), 0);
    assert_true(wait_n(f, &t, 4, WAIT_MS));
    uint64_t took = (wd_clock_mono_ns() - t0) / WD_NS_PER_MS;
    assert_true(t.etimedout >= 1);
    assert_int_equal(t.transient, 4);
    assert_true(took >= 150 && took < 1500);
    /* with no traffic, the health check finds it: PING unanswered, dropped */
    assert_true(run_until(&f->loop, is_ready, f->r, 100) == false ||
                run_until(&f->loop, not_ready, f->r, WAIT_MS));
    wd_redis_stats s1;
    wd_redis_get_stats(f->r, &s1);
    run_until(&f->loop, never, NULL, 800);
    wd_redis_stats s2;
    wd_redis_get_stats(f->r, &s2);
    assert_true(s2.reconnects > s1.reconnects); /* still trying, not stuck */
    assert_int_not_equal(s2.state, WD_REDIS_READY);
    /* let it answer again: the client is back */
    assert_int_equal(wdt_redis_server_signal(&f->srv, SIGCONT), 0);
    assert_true(run_until(&f->loop, is_ready, f->r, WAIT_MS));
    tally_t ok = {0};
    assert_int_equal(wd_redis_command(f->r, on_tally, &ok, "PING"), 0);
    assert_true(wait_n(f, &ok, 1, WAIT_MS));
    assert_int_equal(ok.ok, 1);
    probe_check(f);
}

/* (b) health check alone: READY, then the server stops; no command is
 * sent, and the PING timeout is what notices. */
static void test_ping_timeout(void **state) {
    fx *f = *state;
    assert_int_equal(wdt_redis_server_start(&f->srv, 0, NULL), 0);
    char url[ERR_MAX];
    wd_redis_opts o;
    base_opts(&o, f->srv.port, url, sizeof url);
    o.command_timeout_ms = 200;
    o.ping_interval_ms = 100;
    open_client(f, &o);
    assert_true(run_until(&f->loop, is_ready, f->r, WAIT_MS));
    run_until(&f->loop, never, NULL, 350); /* a few healthy PINGs */
    assert_int_equal(wd_redis_get_state(f->r), WD_REDIS_READY);
    probe_start(f);
    assert_int_equal(wdt_redis_server_signal(&f->srv, SIGSTOP), 0);
    uint64_t t0 = wd_clock_mono_ns();
    assert_true(run_until(&f->loop, not_ready, f->r, WAIT_MS));
    uint64_t took = (wd_clock_mono_ns() - t0) / WD_NS_PER_MS;
    print_message("PING timeout noticed after %llu ms\n", (unsigned long long)took);
    assert_true(took < 1000); /* interval + timeout, not a TCP timeout */
    assert_int_equal(wdt_redis_server_signal(&f->srv, SIGCONT), 0);
    assert_true(run_until(&f->loop, is_ready, f->r, WAIT_MS));
    probe_check(f);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_mid_pipeline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_black_hole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopped_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_timeout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
