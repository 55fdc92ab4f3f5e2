/* bus: real nng sockets in a temporary directory, driven by a real libuv
 * loop. Blocking bus_call_sync calls run on helper threads so the loop
 * thread can serve them. Every wait is bounded; timing assertions are loose
 * (machines are noisy). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "bus.h"
#include "clock.h"
#include "proto.h"
#include "wd_error.h"

#define DIR_MAX 64
#define URL_MAX 160
#define ERR_MAX 256
#define PAYLOAD_MAX 64
#define WAIT_MS 5000   /* upper bound of any wait: failures end, never hang */
#define N_SYNC 12      /* concurrent blocking callers (more than BUS_REP_CONTEXTS) */
#define N_ASYNC 16     /* concurrent bus_req requests */
#define N_PUSH 5
#define HELD_MAX 32

typedef struct {
    uv_loop_t loop;
    char dir[DIR_MAX];
    /* server state */
    bus_rep *rep;
    int mode; /* 0 echo, 1 hold, 2 defer by timer, 3 close in callback */
    bus_rep_request *held[HELD_MAX];
    int n_held, max_held, n_requests;
    uint64_t peer_uid, peer_pid;
    /* PULL/SUB state */
    bus_in *in;
    int n_in, n_big;
    uint64_t in_pid;
    char last_in[PAYLOAD_MAX];
    bool close_in_cb;
} fx;

static void url_for(fx *f, const char *name, char *url) {
    snprintf(url, URL_MAX, "ipc://%s/%s", f->dir, name);
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/wdbus.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    *state = f;
    return 0;
}

static void walk_report(uv_handle_t *h, void *arg) {
    (void)arg;
    fprintf(stderr, "left open: handle type %s closing=%d\n", uv_handle_type_name(h->type),
            uv_is_closing(h));
}

static int teardown(void **state) {
    fx *f = *state;
    bus_rep_close(f->rep);
    bus_in_close(f->in);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    /* Sockets close in the background; a close that nng never finishes
     * (an nng 1.5.2 bug) is reported, not waited for. */
    if (bus_close_drain(WAIT_MS) != 0)
        fprintf(stderr, "note: a socket close did not finish (nng)\n");
    int rc = uv_loop_close(&f->loop);
    if (rc != 0)
        uv_walk(&f->loop, walk_report, NULL);
    assert_int_equal(rc, 0);
    DIR *d = opendir(f->dir);
    if (d != NULL) {
        struct dirent *e;
        char path[DIR_MAX + sizeof e->d_name + 2];
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", f->dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- running the loop ---- */

typedef bool (*pred_fn)(void *arg);

static void guard_cb(uv_timer_t *t) { *(bool *)t->data = true; }

/* Runs the loop until pred(arg) or ms elapse; returns pred's last value. */
static bool run_until(uv_loop_t *loop, pred_fn pred, void *arg, uint64_t ms) {
    uv_timer_t guard;
    bool expired = false;
    uv_timer_init(loop, &guard);
    guard.data = &expired;
    /* Fresh loop time, and a repeating guard: in libuv 1.44 UV_RUN_ONCE runs
     * due timers before it blocks for I/O, so a guard that fired at the start
     * of an iteration would leave that iteration blocking with no timer. */
    uv_update_time(loop);
    uv_timer_start(&guard, guard_cb, ms, ms > 0 ? ms : 1);
    while (!pred(arg) && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return pred(arg);
}

typedef struct {
    int *v;
    int want;
} int_at_least;
static bool pred_int(void *arg) {
    int_at_least *p = arg;
    return *p->v >= p->want;
}

typedef struct {
    atomic_int *v;
    int want;
} atomic_at_least;
static bool pred_atomic(void *arg) {
    atomic_at_least *p = arg;
    return atomic_load(p->v) >= p->want;
}

static bool pred_false(void *arg) {
    (void)arg;
    return false;
}

/* ---- blocking calls on helper threads ---- */

typedef struct {
    char url[URL_MAX];
    char payload[PAYLOAD_MAX];
    uint64_t timeout_ms;
    int rc;
    void *reply;
    size_t reply_len;
    uint64_t elapsed_ms;
    uv_thread_t th;
    atomic_int *done;
    uv_async_t *wake;
} sync_call;

static void sync_call_run(void *arg) {
    sync_call *c = arg;
    uint64_t t0 = wd_clock_mono_ms();
    c->rc = bus_call_sync(c->url, c->payload, strlen(c->payload), c->timeout_ms, &c->reply,
                          &c->reply_len);
    c->elapsed_ms = wd_clock_mono_ms() - t0;
    atomic_fetch_add(c->done, 1);
    uv_async_send(c->wake);
}

static void wake_cb(uv_async_t *h) { (void)h; }

/* Runs n blocking calls concurrently while the loop serves them. */
static void sync_calls(fx *f, sync_call *calls, int n) {
    atomic_int done;
    uv_async_t wake;
    atomic_init(&done, 0);
    uv_async_init(&f->loop, &wake, wake_cb);
    for (int i = 0; i < n; i++) {
        calls[i].done = &done;
        calls[i].wake = &wake;
        assert_int_equal(uv_thread_create(&calls[i].th, sync_call_run, &calls[i]), 0);
    }
    atomic_at_least p = {&done, n};
    bool ok = run_until(&f->loop, pred_atomic, &p, 3 * WAIT_MS);
    for (int i = 0; i < n; i++)
        uv_thread_join(&calls[i].th);
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_true(ok);
}

static void sync_call_init(sync_call *c, const char *url, const char *payload, uint64_t ms) {
    memset(c, 0, sizeof *c);
    snprintf(c->url, sizeof c->url, "%s", url);
    snprintf(c->payload, sizeof c->payload, "%s", payload);
    c->timeout_ms = ms;
}

/* ---- a REP server ---- */

typedef struct {
    uv_timer_t timer;
    bus_rep_request *req;
    fx *f;
} deferred;

static void deferred_close_cb(uv_handle_t *h) { free(h->data); }

static void deferred_fire(uv_timer_t *t) {
    deferred *d = t->data;
    assert_int_equal(bus_rep_reply(d->req, "later", 5), 0);
    d->f->n_held--;
    uv_close((uv_handle_t *)&d->timer, deferred_close_cb);
}

static void server_cb(void *arg, bus_rep_request *req, const void *buf, size_t len,
                      uint64_t peer_uid, uint64_t peer_pid) {
    fx *f = arg;
    f->n_requests++;
    f->peer_uid = peer_uid;
    f->peer_pid = peer_pid;
    switch (f->mode) {
    case 0: /* echo, from the request's own buffer */
        assert_int_equal(bus_rep_reply(req, buf, len), 0);
        break;
    case 1: /* hold until the test replies or closes */
        assert_true(f->n_held < HELD_MAX);
        f->held[f->n_held++] = req;
        break;
    case 2: { /* reply from a later timer */
        deferred *d = calloc(1, sizeof *d);
        assert_non_null(d);
        d->req = req;
        d->f = f;
        uv_timer_init(&f->loop, &d->timer);
        d->timer.data = d;
        uv_timer_start(&d->timer, deferred_fire, 50, 0);
        if (++f->n_held > f->max_held)
            f->max_held = f->n_held;
        break;
    }
    case 3: /* close the server from inside its own callback */
        bus_rep_close(f->rep);
        assert_int_equal(bus_rep_reply(req, "x", 1), WD_ECLOSED);
        f->rep = NULL;
        break;
    }
}

static void server_open(fx *f, const char *name, int mode, char *url) {
    char err[ERR_MAX] = "";
    url_for(f, name, url);
    int rc = bus_rep_open(&f->loop, url, 0600, server_cb, f, &f->rep, err, sizeof err);
    if (rc != 0)
        fail_msg("bus_rep_open: %s", err);
    f->mode = mode;
}

/* ---- cases ---- */

static void test_rep_call_sync_roundtrip(void **state) {
    fx *f = *state;
    char url[URL_MAX];
    sync_call c;
    server_open(f, "rep.sock", 0, url);
    sync_call_init(&c, url, "hello", WAIT_MS);
    sync_calls(f, &c, 1);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.reply_len, 5);
    assert_memory_equal(c.reply, "hello", 5);
    free(c.reply);
    assert_int_equal(f->n_requests, 1);
}

static void test_peer_credentials(void **state) {
    fx *f = *state;
    char url[URL_MAX];
    sync_call c;
    server_open(f, "cred.sock", 0, url);
    sync_call_init(&c, url, "who", WAIT_MS);
    sync_calls(f, &c, 1);
    assert_int_equal(c.rc, 0);
    free(c.reply);
    assert_int_equal(f->peer_uid, (uint64_t)getuid());
    assert_int_equal(f->peer_pid, (uint64_t)getpid());
}

static void test_rep_concurrent_sync(void **state) {
    fx *f = *state;
    char url[URL_MAX];
    sync_call calls[N_SYNC];
    server_open(f, "conc.sock", 2, url);
    for (int i = 0; i < N_SYNC; i++) {
        char p[PAYLOAD_MAX];
        snprintf(p, sizeof p, "call-%d", i);
        sync_call_init(&calls[i], url, p, WAIT_MS);
    }
    sync_calls(f, calls, N_SYNC);
    for (int i = 0; i < N_SYNC; i++) {
        assert_int_equal(calls[i].rc, 0);
        assert_int_equal(calls[i].reply_len, 5);
        assert_memory_equal(calls[i].reply, "later", 5);
        free(calls[i].reply);
    }
    assert_int_equal(f->n_requests, N_SYNC);
    /* Several requests were held at once (the contexts work in parallel). */
    assert_true(f->max_held >= 2);
    assert_true(f->max_held <= BUS_REP_CONTEXTS);
}

typedef struct {
    int n_done, n_ok;
    int status;
    char expect[N_ASYNC][PAYLOAD_MAX];
    bus_req *close_me;
} async_state;

typedef struct {
    async_state *s;
    int idx;
} async_ref;

static void async_reply_cb(void *arg, int status, const void *buf, size_t len) {
    async_ref *r = arg;
    async_state *s = r->s;
    s->n_done++;
    s->status = status;
    if (status == 0 && len == strlen(s->expect[r->idx]) && memcmp(buf, s->expect[r->idx], len) == 0)
        s->n_ok++;
    if (s->close_me != NULL) {
        bus_req *q = s->close_me;
        s->close_me = NULL;
        bus_req_close(q); /* from inside its own callback */
    }
}

static void test_req_async_concurrent(void **state) {
    fx *f = *state;
    char url[URL_MAX], err[ERR_MAX] = "";
    bus_req *r;
    async_state s = {0};
    async_ref refs[N_ASYNC];
    server_open(f, "async.sock", 0, url);
    assert_int_equal(bus_req_dial(&f->loop, url, &r, err, sizeof err), 0);
    for (int i = 0; i < N_ASYNC; i++) {
        snprintf(s.expect[i], PAYLOAD_MAX, "async-%d", i);
        refs[i] = (async_ref){&s, i};
        assert_int_equal(
            bus_req_send(r, s.expect[i], strlen(s.expect[i]), WAIT_MS, async_reply_cb, &refs[i]), 0);
    }
    int_at_least p = {&s.n_done, N_ASYNC};
    assert_true(run_until(&f->loop, pred_int, &p, 2 * WAIT_MS));
    assert_int_equal(s.n_ok, N_ASYNC);
    bus_req_close(r);
}

/* bus_rep_open_opts: the server holds exactly `contexts` requests at once
 * (the rest wait in nng and are served as contexts come free, so each
 * context receives again after its reply was sent), no_peer hands out
 * BUS_PEER_UNKNOWN, and a count out of range is refused with a reason. */
#define OPT_CONTEXTS 24
#define OPT_REQUESTS 30
static void test_rep_opts_contexts(void **state) {
    fx *f = *state;
    char url[URL_MAX], err[ERR_MAX] = "";
    bus_rep *bad = NULL;
    bus_req *r;
    async_state s = {0};
    async_ref refs[OPT_REQUESTS];
    url_for(f, "opts.sock", url);
    bus_rep_opts too_many = {.contexts = BUS_REP_CONTEXTS_MAX + 1};
    assert_int_equal(bus_rep_open_opts(&f->loop, url, 0600, &too_many, server_cb, f, &bad, err,
                                       sizeof err),
                     WD_EINVAL);
    assert_null(bad);
    assert_non_null(strstr(err, "contexts"));
    bus_rep_opts o = {.contexts = OPT_CONTEXTS, .no_peer = true};
    err[0] = '\0';
    if (bus_rep_open_opts(&f->loop, url, 0600, &o, server_cb, f, &f->rep, err, sizeof err) != 0)
        fail_msg("bus_rep_open_opts: %s", err);
    assert_int_equal(bus_rep_contexts(f->rep), OPT_CONTEXTS);
    f->mode = 1; /* hold */
    assert_int_equal(bus_req_dial(&f->loop, url, &r, err, sizeof err), 0);
    for (int i = 0; i < OPT_REQUESTS; i++) {
        snprintf(s.expect[i % N_ASYNC], PAYLOAD_MAX, "held");
        refs[i] = (async_ref){&s, i % N_ASYNC};
        assert_int_equal(bus_req_send(r, "q", 1, 3 * WAIT_MS, async_reply_cb, &refs[i]), 0);
    }
    int_at_least held = {&f->n_held, OPT_CONTEXTS};
    assert_true(run_until(&f->loop, pred_int, &held, WAIT_MS));
    /* A while longer: nothing beyond the contexts is handed out. */
    assert_false(run_until(&f->loop, pred_false, NULL, 300));
    assert_int_equal(f->n_held, OPT_CONTEXTS);
    assert_int_equal(f->n_requests, OPT_CONTEXTS);
    assert_int_equal(f->peer_uid, BUS_PEER_UNKNOWN);
    assert_int_equal(f->peer_pid, BUS_PEER_UNKNOWN);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < f->n_held; i++)
            assert_int_equal(bus_rep_reply(f->held[i], "held", 4), 0);
        f->n_held = 0;
        if (round == 0) {
            /* The freed contexts take the requests that waited. */
            int_at_least all = {&f->n_requests, OPT_REQUESTS};
            assert_true(run_until(&f->loop, pred_int, &all, WAIT_MS));
            assert_int_equal(f->n_held, OPT_REQUESTS - OPT_CONTEXTS);
        }
    }
    int_at_least done = {&s.n_done, OPT_REQUESTS};
    assert_true(run_until(&f->loop, pred_int, &done, WAIT_MS));
    assert_int_equal(s.n_ok, OPT_REQUESTS);
    assert_int_equal(f->n_requests, OPT_REQUESTS);
    bus_req_close(r);
}

static void test_rep_deferred_reply(void **state) {
    fx *f = *state;
    char url[URL_MAX];
    sync_call c;
    server_open(f, "defer.sock", 2, url);
    sync_call_init(&c, url, "now?", WAIT_MS);
    sync_calls(f, &c, 1);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.reply_len, 5);
    assert_memory_equal(c.reply, "later", 5);
    free(c.reply);
}

static void test_call_missing_socket(void **state) {
    fx *f = *state;
    char url[URL_MAX];
    void *reply = (void *)1;
    size_t len = 1;
    url_for(f, "nobody.sock", url);
    uint64_t t0 = wd_clock_mono_ms();
    assert_int_equal(bus_call_sync(url, "x", 1, WAIT_MS, &reply, &len), WD_EUNAVAIL);
    assert_true(wd_clock_mono_ms() - t0 < WAIT_MS / 2);
    assert_null(reply);
    assert_int_equal(len, 0);
}

static void test_req_missing_socket(void **state) {
    fx *f = *state;
    char url[URL_MAX], err[ERR_MAX] = "";
    bus_req *r;
    async_state s = {0};
    async_ref ref = {&s, 0};
    url_for(f, "nobody.sock", url);
    assert_int_equal(bus_req_dial(&f->loop, url, &r, err, sizeof err), 0);
    assert_int_equal(bus_req_send(r, "x", 1, 200, async_reply_cb, &ref), 0);
    int_at_least p = {&s.n_done, 1};
    assert_true(run_until(&f->loop, pred_int, &p, WAIT_MS));
    assert_int_equal(s.status, WD_EUNAVAIL);
    bus_req_close(r);
}

static void test_call_timeout(void **state) {
    fx *f = *state;
    char url[URL_MAX], err[ERR_MAX] = "";
    sync_call c;
    bus_req *r;
    async_state s = {0};
    async_ref ref = {&s, 0};
    server_open(f, "slow.sock", 1, url);
    sync_call_init(&c, url, "hold me", 200);
    sync_calls(f, &c, 1);
    assert_int_equal(c.rc, WD_ETIMEDOUT);
    assert_null(c.reply);
    assert_true(c.elapsed_ms >= 150);
    assert_true(c.elapsed_ms < WAIT_MS);
    /* The same through the asynchronous client. */
    assert_int_equal(bus_req_dial(&f->loop, url, &r, err, sizeof err), 0);
    assert_int_equal(bus_req_send(r, "hold", 4, 200, async_reply_cb, &ref), 0);
    int_at_least p = {&s.n_done, 1};
    assert_true(run_until(&f->loop, pred_int, &p, WAIT_MS));
    assert_int_equal(s.status, WD_ETIMEDOUT);
    bus_req_close(r);
    /* Two requests are still held: teardown closes the server with them. */
    assert_int_equal(f->n_held, 2);
}

static void test_close_with_pending(void **state) {
    fx *f = *state;
    char url[URL_MAX], err[ERR_MAX] = "";
    bus_req *r;
    async_state s = {0};
    async_ref refs[4];
    server_open(f, "pend.sock", 1, url);
    assert_int_equal(bus_req_dial(&f->loop, url, &r, err, sizeof err), 0);
    for (int i = 0; i < 4; i++) {
        refs[i] = (async_ref){&s, i};
        assert_int_equal(bus_req_send(r, "p", 1, 0, async_reply_cb, &refs[i]), 0);
    }
    int_at_least held = {&f->n_held, 4};
    assert_true(run_until(&f->loop, pred_int, &held, WAIT_MS));
    /* Every outstanding callback runs, with WD_ECLOSED, before close returns. */
    bus_req_close(r);
    assert_int_equal(s.n_done, 4);
    assert_int_equal(s.status, WD_ECLOSED);
    /* A reply to a held request after the client left is harmless. */
    assert_int_equal(bus_rep_reply(f->held[0], "late", 4), 0);
    /* The server closes with three requests never answered. */
    bus_rep_close(f->rep);
    f->rep = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void test_close_in_callbacks(void **state) {
    fx *f = *state;
    char url[URL_MAX], err[ERR_MAX] = "";
    bus_req *r;
    async_state s = {0};
    async_ref refs[3];
    server_open(f, "cb.sock", 3, url);
    assert_int_equal(bus_req_dial(&f->loop, url, &r, err, sizeof err), 0);
    s.close_me = r;
    for (int i = 0; i < 3; i++) {
        refs[i] = (async_ref){&s, i};
        assert_int_equal(bus_req_send(r, "c", 1, 300, async_reply_cb, &refs[i]), 0);
    }
    /* The server closes itself in its callback, so the requests time out;
     * the first completion closes the client, which finishes the rest. */
    int_at_least p = {&s.n_done, 3};
    assert_true(run_until(&f->loop, pred_int, &p, WAIT_MS));
    assert_null(f->rep);
    assert_int_equal(s.n_done, 3);
}

static void in_cb(void *arg, const void *buf, size_t len, uint64_t peer_pid) {
    fx *f = arg;
    f->n_in++;
    f->in_pid = peer_pid;
    if (len > PAYLOAD_MAX)
        f->n_big++;
    snprintf(f->last_in, sizeof f->last_in, "%.*s", (int)(len < PAYLOAD_MAX ? len : 0),
             (const char *)buf);
    if (f->close_in_cb) {
        bus_in_close(f->in);
        f->in = NULL;
    }
}

static void test_pull_push_peer_pid(void **state) {
    fx *f = *state;
    char url[URL_MAX], err[ERR_MAX] = "";
    bus_out *o;
    url_for(f, "pull.sock", url);
    assert_int_equal(bus_pull_listen(&f->loop, url, 0600, in_cb, f, &f->in, err, sizeof err), 0);
    assert_int_equal(bus_push_dial(url, &o, err, sizeof err), 0);
    /* Sent before the dial has connected: the send buffer holds them. */
    for (int i = 0; i < N_PUSH; i++)
        assert_int_equal(bus_out_send(o, "beat", 4), 0);
    int_at_least p = {&f->n_in, N_PUSH};
    assert_true(run_until(&f->loop, pred_int, &p, WAIT_MS));
    assert_string_equal(f->last_in, "beat");
    assert_int_equal(f->in_pid, (uint64_t)getpid());
    assert_int_equal(bus_out_dropped(o), 0);
    assert_int_equal(bus_out_connects(o), 1);
    /* The listener goes away and comes back: the pusher redials. */
    bus_in_close(f->in);
    f->in = NULL;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(bus_close_drain(WAIT_MS), 0); /* the address is free again */
    assert_int_equal(bus_pull_listen(&f->loop, url, 0600, in_cb, f, &f->in, err, sizeof err), 0);
    uint64_t deadline = wd_clock_mono_ms() + WAIT_MS;
    while (bus_out_connects(o) < 2 && wd_clock_mono_ms() < deadline)
        run_until(&f->loop, pred_false, NULL, 20);
    assert_int_equal(bus_out_connects(o), 2);
    bus_out_close(o);
}

static void test_push_without_listener(void **state) {
    fx *f = *state;
    char url[URL_MAX], err[ERR_MAX] = "";
    bus_out *o;
    url_for(f, "later.sock", url);
    /* A worker starts before the supervisor's socket exists. */
    assert_int_equal(bus_push_dial(url, &o, err, sizeof err), 0);
    assert_int_equal(bus_out_send(o, "early", 5), 0);
    assert_int_equal(bus_pull_listen(&f->loop, url, 0600, in_cb, f, &f->in, err, sizeof err), 0);
    int_at_least p = {&f->n_in, 1};
    assert_true(run_until(&f->loop, pred_int, &p, WAIT_MS));
    assert_string_equal(f->last_in, "early");
    /* Sends never block: past the buffer they are dropped and counted.
     * The listener is gone first (its close finished): pushing into a PULL
     * socket while nng closes it can strand that pipe's receive for good in
     * nng 1.5.2, which wedges nng's one reaper thread and with it every
     * later close in the process (see bus_int.h, "nng 1.5.2 close hang";
     * reproduced with nng alone). */
    bus_in_close(f->in);
    f->in = NULL;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(bus_close_drain(WAIT_MS), 0);
    int dropped = 0;
    for (int i = 0; i < 4096 && dropped == 0; i++)
        if (bus_out_send(o, "x", 1) == WD_EBUSY)
            dropped = 1;
    assert_int_equal(dropped, 1);
    assert_true(bus_out_dropped(o) >= 1);
    bus_out_close(o);
}

typedef struct {
    fx *f;
    bus_out *pub;
} pub_state;

static void pub_tick(uv_timer_t *t) {
    pub_state *ps = t->data;
    assert_int_equal(bus_out_send(ps->pub, "event", 5), 0);
}

static void test_pub_sub(void **state) {
    fx *f = *state;
    char url[URL_MAX], err[ERR_MAX] = "";
    pub_state ps = {f, NULL};
    uv_timer_t tick;
    url_for(f, "events.sock", url);
    assert_int_equal(bus_pub_listen(url, 0600, &ps.pub, err, sizeof err), 0);
    assert_int_equal(bus_sub_dial(&f->loop, url, in_cb, f, &f->in, err, sizeof err), 0);
    /* PUB drops what no subscriber is connected for yet, so publish until
     * one arrives. */
    uv_timer_init(&f->loop, &tick);
    tick.data = &ps;
    uv_timer_start(&tick, pub_tick, 0, 20);
    int_at_least p = {&f->n_in, 1};
    assert_true(run_until(&f->loop, pred_int, &p, WAIT_MS));
    assert_string_equal(f->last_in, "event");
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* tick lives on this stack frame */
    bus_out_close(ps.pub);
}

/* The raw peer that sends an oversized message runs in a child process
 * ("bus_test --raw-send push|req URL") and leaves with _exit: in nng 1.5.2 a
 * sender whose connection is cut in the middle of a large write can leave
 * its own process's reaper stuck, so that a later nng_close never returns.
 * The receiving side, which is what is tested here, is not affected. */
static int raw_send_main(const char *kind, const char *url) {
    size_t big = PROTO_MSG_MAX + 1024;
    char *buf = calloc(1, big);
    nng_socket s;
    int push = strcmp(kind, "push") == 0;
    if (buf == NULL || (push ? nng_push0_open(&s) : nng_req0_open(&s)) != 0)
        _exit(3);
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 1000);
    nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 20);
    if (nng_dial(s, url, NULL, 0) != 0)
        _exit(4);
    /* Whether this send reports success depends on how far the write got
     * before the receiver cut the connection; either way it must not arrive. */
    (void)nng_send(s, buf, big, 0);
    /* PUSH: small messages follow, over a redial, until the parent has one
     * (it then kills this process). */
    for (int i = 0; push && i < 2 * WAIT_MS / 20; i++) {
        nng_send(s, "small", 5, NNG_FLAG_NONBLOCK);
        nng_msleep(20);
    }
    if (!push)
        nng_msleep(500);
    _exit(0);
}

typedef struct {
    bool exited;
    int64_t status;
} raw_child;

static void raw_exit_cb(uv_process_t *p, int64_t status, int sig) {
    raw_child *c = p->data;
    c->exited = true;
    c->status = sig != 0 ? -sig : status;
    uv_close((uv_handle_t *)p, NULL);
}

static bool pred_raw_done(void *arg) { return ((raw_child *)arg)->exited; }

static void raw_send(fx *f, const char *kind, const char *url, raw_child *c, uv_process_t *proc) {
    char self[URL_MAX * 8];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    char *args[] = {self, "--raw-send", (char *)kind, (char *)url, NULL};
    uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                     {.flags = UV_IGNORE},
                                     {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t opt = {
        .file = self, .args = args, .stdio_count = 3, .stdio = stdio, .exit_cb = raw_exit_cb};
    memset(c, 0, sizeof *c);
    proc->data = c;
    assert_int_equal(uv_spawn(&f->loop, proc, &opt), 0);
}

static void test_oversized_not_delivered(void **state) {
    fx *f = *state;
    char url[URL_MAX], rurl[URL_MAX], err[ERR_MAX] = "";
    bus_out *o;
    raw_child child;
    uv_process_t proc;
    size_t big = PROTO_MSG_MAX + 1024;
    char *buf = calloc(1, big);
    assert_non_null(buf);
    /* Our own sender refuses it outright. (It dials a path nobody listens
     * on: closing a dialer mid-handshake would trip the nng bug covered by
     * test_listener_survives_handshake_disconnect.) */
    url_for(f, "nobody.sock", url);
    assert_int_equal(bus_push_dial(url, &o, err, sizeof err), 0);
    assert_int_equal(bus_out_send(o, buf, big), WD_ETOOBIG);
    assert_int_equal(bus_out_dropped(o), 1);
    bus_out_close(o);
    free(buf);
    /* A raw peer that sends one anyway: the receiver drops it (and the
     * connection); later small messages still arrive over a redial. */
    url_for(f, "big.sock", url);
    assert_int_equal(bus_pull_listen(&f->loop, url, 0600, in_cb, f, &f->in, err, sizeof err), 0);
    raw_send(f, "push", url, &child, &proc);
    int_at_least p = {&f->n_in, 1};
    assert_true(run_until(&f->loop, pred_int, &p, 2 * WAIT_MS));
    assert_int_equal(f->n_big, 0);
    assert_string_equal(f->last_in, "small");
    if (!child.exited)
        uv_process_kill(&proc, SIGKILL); /* it has done its part */
    assert_true(run_until(&f->loop, pred_raw_done, &child, 3 * WAIT_MS));
    assert_true(child.status == 0 || child.status == -SIGKILL);
    /* The REP server never sees an oversized request. */
    server_open(f, "bigrep.sock", 0, rurl);
    raw_send(f, "req", rurl, &child, &proc);
    assert_true(run_until(&f->loop, pred_raw_done, &child, 3 * WAIT_MS));
    assert_int_equal(child.status, 0);
    assert_int_equal(f->n_requests, 0);
}

static void test_socket_mode(void **state) {
    fx *f = *state;
    char url[URL_MAX], purl[URL_MAX], err[ERR_MAX] = "";
    struct stat st;
    server_open(f, "mode.sock", 0, url);
    assert_int_equal(stat(url + strlen("ipc://"), &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    url_for(f, "mode2.sock", purl);
    assert_int_equal(bus_pull_listen(&f->loop, purl, 0640, in_cb, f, &f->in, err, sizeof err), 0);
    assert_int_equal(stat(purl + strlen("ipc://"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
}

static void test_stale_and_live_socket(void **state) {
    fx *f = *state;
    char url[URL_MAX], err[ERR_MAX] = "";
    bus_rep *second = NULL;
    /* A socket file left by a dead process: bound, never unlinked. */
    url_for(f, "stale.sock", url);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, url + strlen("ipc://"),
           strnlen(url + strlen("ipc://"), sizeof sa.sun_path - 1));
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    server_open(f, "stale.sock", 0, url);
    /* A live listener is not taken over. */
    int rc = bus_rep_open(&f->loop, url, 0600, server_cb, f, &second, err, sizeof err);
    assert_int_equal(rc, WD_EEXIST);
    assert_null(second);
    assert_non_null(strstr(err, "in use"));
    /* And the first still answers. */
    sync_call c;
    sync_call_init(&c, url, "still", WAIT_MS);
    sync_calls(f, &c, 1);
    assert_int_equal(c.rc, 0);
    free(c.reply);
}

static void test_bad_urls(void **state) {
    fx *f = *state;
    char err[ERR_MAX] = "";
    bus_rep *rep = NULL;
    bus_in *in = NULL;
    bus_out *o = NULL;
    void *reply;
    size_t len;
    assert_true(bus_rep_open(&f->loop, "bogus://x", 0600, server_cb, f, &rep, err, sizeof err) < 0);
    assert_true(strlen(err) > 0);
    err[0] = '\0';
    assert_true(bus_pull_listen(&f->loop, "ipc://", 0600, in_cb, f, &in, err, sizeof err) < 0);
    assert_true(strlen(err) > 0);
    assert_true(bus_push_dial("nope", &o, err, sizeof err) < 0);
    assert_true(bus_call_sync("bogus://x", "x", 1, 100, &reply, &len) < 0);
    assert_null(rep);
    assert_null(in);
    assert_null(o);
}

static void test_close_in_in_callback(void **state) {
    fx *f = *state;
    char url[URL_MAX], err[ERR_MAX] = "";
    bus_out *o;
    url_for(f, "incb.sock", url);
    assert_int_equal(bus_pull_listen(&f->loop, url, 0600, in_cb, f, &f->in, err, sizeof err), 0);
    f->close_in_cb = true;
    assert_int_equal(bus_push_dial(url, &o, err, sizeof err), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(bus_out_send(o, "m", 1), 0);
    int_at_least p = {&f->n_in, 1};
    assert_true(run_until(&f->loop, pred_int, &p, WAIT_MS));
    run_until(&f->loop, pred_false, NULL, 50);
    assert_int_equal(f->n_in, 1); /* nothing delivered after close */
    assert_null(f->in);
    bus_out_close(o);
}

/* nng 1.5.2 can lose an ipc listener when a peer disconnects during the SP
 * handshake (nng issue #1518); the bus watchdog must bring it back. */
static void raw_connect_close(const char *url) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, url + strlen("ipc://"),
           strnlen(url + strlen("ipc://"), sizeof sa.sun_path - 1));
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
}

/* A listener lost to the bug leaks nng's own listener objects when closed
 * (inside libnng, nothing the bus holds). LeakSanitizer is told so; under
 * valgrind, which has no in-program suppressions, the case is skipped. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:nng_listener_create\n"; }

static void test_listener_survives_handshake_disconnect(void **state) {
    fx *f = *state;
    char url[URL_MAX], purl[URL_MAX], err[ERR_MAX] = "";
    bus_out *o;
    if (RUNNING_ON_VALGRIND) {
        fprintf(stderr, "skipped under valgrind: nng leaks the lost listener\n");
        skip();
    }
    server_open(f, "nego.sock", 0, url);
    url_for(f, "negopull.sock", purl);
    assert_int_equal(bus_pull_listen(&f->loop, purl, 0600, in_cb, f, &f->in, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) {
        raw_connect_close(url);
        raw_connect_close(purl);
    }
    /* REP: retry until a call goes through (a call stuck on a lost
     * connection ends with WD_EUNAVAIL when the listener is replaced). */
    uint64_t deadline = wd_clock_mono_ms() + WAIT_MS;
    int rc = -1;
    while (rc != 0 && wd_clock_mono_ms() < deadline) {
        sync_call c;
        sync_call_init(&c, url, "again", 1000);
        sync_calls(f, &c, 1);
        rc = c.rc;
        free(c.reply);
    }
    assert_int_equal(rc, 0);
    /* PULL: a new pusher gets through. */
    assert_int_equal(bus_push_dial(purl, &o, err, sizeof err), 0);
    deadline = wd_clock_mono_ms() + WAIT_MS;
    while (f->n_in == 0 && wd_clock_mono_ms() < deadline) {
        bus_out_send(o, "alive", 5);
        run_until(&f->loop, pred_false, NULL, 50);
    }
    assert_true(f->n_in >= 1);
    assert_string_equal(f->last_in, "alive");
    bus_out_close(o);
}

/* Each case runs in its own process ("bus_test --case NAME", this binary
 * again, as libuv's tests do), one after the other, each with a deadline.
 * nng 1.5.2 can wedge its single reaper thread for good (see bus_int.h,
 * "nng 1.5.2 close hang"), after which no later socket close in that process
 * finishes: in one shared process a single occurrence would hang every case
 * after it. Under valgrind, which does not follow children here, the cases
 * run in this process so that valgrind checks them. */
#define CASE_DEADLINE_MS 60000

static int run_case_child(const char *self, const char *name) {
    char *args[] = {(char *)self, "--case", (char *)name, NULL};
    int status;
    /* This process has not touched nng (which is not fork-safe). */
    pid_t pid = fork();
    if (pid == 0) {
        execv(self, args);
        _exit(127);
    }
    if (pid < 0) {
        fprintf(stderr, "[  FAILED  ] %s: fork: %s\n", name, strerror(errno));
        return 1;
    }
    uint64_t deadline = wd_clock_mono_ms() + CASE_DEADLINE_MS;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "[  FAILED  ] %s: waitpid: %s\n", name, strerror(errno));
            return 1;
        }
        if (wd_clock_mono_ms() >= deadline) {
            fprintf(stderr, "[  FAILED  ] %s: no result after %d ms; killed\n", name,
                    CASE_DEADLINE_MS);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return 1;
        }
        nng_msleep(10);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "[  FAILED  ] %s: killed by signal %d\n", name, WTERMSIG(status));
    return 1;
}

static int run_cases_isolated(const struct CMUnitTest *tests, size_t n, const char *filter) {
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        fprintf(stderr, "bus_test: /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    self[len] = '\0';
    int failed = 0, run = 0;
    for (size_t i = 0; i < n; i++) {
        if (filter != NULL && fnmatch(filter, tests[i].name, 0) != 0)
            continue;
        run++;
        fflush(stdout);
        failed += run_case_child(self, tests[i].name);
    }
    printf("[==========] bus: %d case(s) run in their own processes, %d failed.\n", run, failed);
    return failed;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--raw-send") == 0)
        return raw_send_main(argv[2], argv[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rep_call_sync_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rep_concurrent_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_req_async_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rep_deferred_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rep_opts_contexts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_missing_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_req_missing_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_push_peer_pid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_without_listener, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pub_sub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_not_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_and_live_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_survives_handshake_disconnect, setup,
                                        teardown),
    };
    bool child = argc == 3 && strcmp(argv[1], "--case") == 0;
    const char *filter = child ? argv[2] : argc > 1 ? argv[1] : NULL; /* e.g. 'test_pub*' */
    if (!child && !RUNNING_ON_VALGRIND)
        return run_cases_isolated(tests, sizeof tests / sizeof tests[0], filter);
    if (filter != NULL)
        cmocka_set_test_filter(filter);
    int rc = cmocka_run_group_tests_name("bus", tests, NULL, NULL);
    if (bus_close_drain(WAIT_MS) == 0)
        nng_fini(); /* frees nng's globals, for valgrind */
    return rc;
}
