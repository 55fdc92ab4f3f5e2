/* worker runtime: in the style of libuv's tests, this binary re-runs itself
 * as the child ("worker_test --child ...", a small worker on wrk_main) with
 * the environment wired to sockets the test binds: a PULL socket for READY
 * and heartbeats, and a REQ client for the child's command socket. A few
 * cases drive warden-testworker (built next to this binary) the same way.
 * All waits are bounded; timing checks are loose. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "bus.h"
#include "clock.h"
#include "proto.h"
#include "wd_error.h"
#include "worker.h"

#define DIR_MAX 64
#define URL_MAX 160
#define ERR_MAX 512
#define EXE_MAX 4096
#define ARGS_MAX 16
#define ENV_MAX 512
#define ENV_STR_MAX 256
#define HB_MAX 256
#define WAIT_MS 5000
#define HB_INTERVAL_MS 100
#define CHILD_NAME "wtchild"

extern char **environ;

/* ======================= the child: a worker ======================= */

typedef struct {
    uv_timer_t tick;
    uv_timer_t defer_timer;
    wrk_pending *pending;
    bool stuck_stop;
    bool no_ready;
    uint64_t reloads;
} child;

static void child_tick(uv_timer_t *t) { wrk_progress(t->data, 1); }

static int child_init(wrk_ctx *ctx, int argc, char **argv) {
    child *c = calloc(1, sizeof *c);
    if (c == NULL)
        return WD_ENOMEM;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--stuck-stop") == 0) {
            c->stuck_stop = true;
        } else if (strcmp(argv[i], "--no-ready") == 0) {
            c->no_ready = true;
        } else {
            fprintf(stderr, "child: unknown option '%s'\n", argv[i]);
            free(c);
            return WD_EINVAL;
        }
    }
    wrk_set_data(ctx, c);
    return 0;
}

static int child_start(wrk_ctx *ctx) {
    child *c = wrk_data(ctx);
    uv_timer_init(wrk_loop(ctx), &c->tick);
    uv_timer_init(wrk_loop(ctx), &c->defer_timer);
    c->tick.data = ctx;
    c->defer_timer.data = ctx;
    uv_timer_start(&c->tick, child_tick, 20, 20);
    if (!c->no_ready)
        wrk_ready(ctx);
    return 0;
}

static void child_stop(wrk_ctx *ctx) {
    child *c = wrk_data(ctx);
    if (c->stuck_stop)
        return; /* the tick keeps the loop alive: the runtime's deadline decides */
    uv_close((uv_handle_t *)&c->tick, NULL);
    uv_close((uv_handle_t *)&c->defer_timer, NULL);
    if (c->pending != NULL)
        wrk_command_finish(c->pending, WD_ECLOSED, NULL, "stopping");
    c->pending = NULL;
}

static int child_reload(wrk_ctx *ctx) {
    ((child *)wrk_data(ctx))->reloads++;
    return 0;
}

static void child_defer_fire(uv_timer_t *t) {
    wrk_ctx *ctx = t->data;
    child *c = wrk_data(ctx);
    wrk_command_finish(c->pending, 0, json_pack("{s:b}", "deferred", 1), NULL);
    c->pending = NULL;
}

static int child_command(wrk_ctx *ctx, const proto_ctl_request *req, json_t **data, char *err,
                         size_t errlen) {
    child *c = wrk_data(ctx);
    if (strcmp(req->cmd, "defer") == 0 && c->pending == NULL) {
        c->pending = wrk_command_defer(ctx);
        uv_timer_start(&c->defer_timer, child_defer_fire, 200, 0);
        return 0;
    }
    if (strcmp(req->cmd, "block") == 0) {
        usleep(300 * 1000); /* blocks the loop on purpose: loop lag */
        return 0;
    }
    if (strcmp(req->cmd, "fail") == 0) {
        snprintf(err, errlen, "failing on purpose");
        return WD_EINVAL;
    }
    if (strcmp(req->cmd, "data") == 0) {
        *data = json_pack("{s:s}", "hello", "world");
        return 0;
    }
    snprintf(err, errlen, "unknown command '%s'", req->cmd);
    return WD_ENOTFOUND;
}

static void child_metrics(wrk_ctx *ctx, proto_heartbeat *hb) {
    child *c = wrk_data(ctx);
    if (hb->n_metrics < PROTO_METRICS_MAX) {
        snprintf(hb->metrics[hb->n_metrics].name, sizeof hb->metrics[0].name, "child_reloads_total");
        hb->metrics[hb->n_metrics++].value = (double)c->reloads;
    }
}

static void child_fini(wrk_ctx *ctx) { free(wrk_data(ctx)); }

static const wrk_ops child_ops = {
    .name = "child-default",
    .init = child_init,
    .start = child_start,
    .stop = child_stop,
    .reload = child_reload,
    .command = child_command,
    .metrics = child_metrics,
    .fini = child_fini,
};

/* ======================= the test side ======================= */

typedef struct {
    uint64_t seq;
    uint32_t pid;
    uint64_t progress;
    uint64_t at_ms;
    uint64_t sent_ms; /* the sender's own timestamp (envelope ts_ns) */
    uint64_t lag_us;
    double reloads, child_reloads;
    bool has_cmd_metric, has_drop_metric;
    char breaker[PROTO_NAME_MAX + 1];
    proto_breaker_state breaker_state;
} hb_rec;

typedef struct {
    uv_loop_t loop;
    char dir[DIR_MAX];
    char hb_url[URL_MAX], cmd_url[URL_MAX];
    bus_in *pull;
    bus_req *req;
    uv_process_t proc;
    bool spawned, exited;
    int64_t exit_status;
    int term_signal;
    /* received */
    bool ready;
    uint32_t ready_pid;
    char ready_sender[PROTO_NAME_MAX + 1];
    int n_hb;
    hb_rec hb[HB_MAX];
    int n_bad;
    proto_heartbeat scratch;
} fx;

typedef struct {
    int status;
    char error[PROTO_ERROR_MAX + 1];
    json_t *data;
} reply;

/* ---- loop helpers ---- */

typedef bool (*pred_fn)(fx *f, void *arg);

static void guard_cb(uv_timer_t *t) { *(bool *)t->data = true; }

static bool run_until(fx *f, pred_fn pred, void *arg, uint64_t ms) {
    uv_timer_t guard;
    bool expired = false;
    uv_timer_init(&f->loop, &guard);
    guard.data = &expired;
    /* A repeating guard with fresh loop time: UV_RUN_ONCE in libuv 1.44 runs
     * due timers before blocking, and must not block with none left. */
    uv_update_time(&f->loop);
    uv_timer_start(&guard, guard_cb, ms, ms);
    while (!pred(f, arg) && !expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return pred(f, arg);
}

static bool pred_ready(fx *f, void *arg) {
    (void)arg;
    return f->ready;
}
static bool pred_hb(fx *f, void *arg) { return f->n_hb >= *(int *)arg; }
static bool pred_exited(fx *f, void *arg) {
    (void)arg;
    return f->exited;
}
static bool pred_flag(fx *f, void *arg) {
    (void)f;
    return *(bool *)arg;
}
static bool pred_never(fx *f, void *arg) {
    (void)f;
    (void)arg;
    return false;
}

/* ---- heartbeat socket ---- */

static void on_hb_msg(void *arg, const void *buf, size_t len, uint64_t peer_pid) {
    fx *f = arg;
    proto_envelope env;
    char err[ERR_MAX];
    (void)peer_pid;
    if (proto_envelope_unpack(buf, len, &env, err, sizeof err) != 0) {
        f->n_bad++;
        return;
    }
    if (env.type == PROTO_T_READY) {
        proto_ready r;
        if (proto_ready_unpack(&env, &r, err, sizeof err) != 0) {
            f->n_bad++;
            return;
        }
        f->ready = true;
        f->ready_pid = r.pid;
        snprintf(f->ready_sender, sizeof f->ready_sender, "%s", env.hdr.sender);
        return;
    }
    if (env.type != PROTO_T_HEARTBEAT || f->n_hb >= HB_MAX ||
        proto_heartbeat_unpack(&env, &f->scratch, err, sizeof err) != 0) {
        f->n_bad++;
        return;
    }
    hb_rec *h = &f->hb[f->n_hb++];
    memset(h, 0, sizeof *h);
    h->seq = env.hdr.seq;
    h->pid = f->scratch.pid;
    h->progress = f->scratch.progress;
    h->lag_us = f->scratch.loop_lag_us;
    h->at_ms = wd_clock_mono_ms();
    h->sent_ms = env.hdr.ts_ns / 1000000u;
    for (uint32_t i = 0; i < f->scratch.n_metrics; i++) {
        const proto_metric *m = &f->scratch.metrics[i];
        if (strcmp(m->name, "wrk_reloads_total") == 0)
            h->reloads = m->value;
        else if (strcmp(m->name, "child_reloads_total") == 0)
            h->child_reloads = m->value;
        else if (strcmp(m->name, "wrk_commands_total") == 0)
            h->has_cmd_metric = true;
        else if (strcmp(m->name, "wrk_heartbeats_dropped_total") == 0)
            h->has_drop_metric = true;
    }
    if (f->scratch.n_breakers > 0) {
        snprintf(h->breaker, sizeof h->breaker, "%s", f->scratch.breakers[0].name);
        h->breaker_state = f->scratch.breakers[0].state;
    }
}

/* ---- fixture ---- */

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    char err[ERR_MAX] = "";
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/wdwrk.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->hb_url, sizeof f->hb_url, "ipc://%s/heartbeat.sock", f->dir);
    snprintf(f->cmd_url, sizeof f->cmd_url, "ipc://%s/worker.sock", f->dir);
    if (bus_pull_listen(&f->loop, f->hb_url, 0600, on_hb_msg, f, &f->pull, err, sizeof err) != 0)
        fail_msg("pull: %s", err);
    if (bus_req_dial(&f->loop, f->cmd_url, &f->req, err, sizeof err) != 0)
        fail_msg("req: %s", err);
    *state = f;
    return 0;
}

static void on_proc_exit(uv_process_t *p, int64_t status, int sig) {
    fx *f = p->data;
    f->exited = true;
    f->exit_status = status;
    f->term_signal = sig;
    uv_close((uv_handle_t *)p, NULL);
}

static int teardown(void **state) {
    fx *f = *state;
    if (f->spawned && !f->exited) {
        uv_process_kill(&f->proc, SIGKILL);
        run_until(f, pred_exited, NULL, WAIT_MS);
    }
    bus_req_close(f->req);
    bus_in_close(f->pull);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    if (bus_close_drain(WAIT_MS) != 0)
        fprintf(stderr, "note: a socket close did not finish (nng)\n");
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char path[DIR_MAX + 32];
    snprintf(path, sizeof path, "%s/heartbeat.sock", f->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/worker.sock", f->dir);
    unlink(path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Spawns exe (NULL: this binary as --child) with args, the wiring in the
 * environment, and extra "K=V" entries (which override). */
static void spawn(fx *f, const char *exe, const char *const *args, const char *const *extra_env,
                  bool with_hb) {
    static char self[EXE_MAX];
    char *argv[ARGS_MAX + 3];
    char *envp[ENV_MAX + 1];
    char wiring[5][ENV_STR_MAX];
    int na = 0, ne = 0;
    if (exe == NULL) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        assert_true(n > 0);
        self[n] = '\0';
        argv[na++] = self;
        argv[na++] = "--child";
    } else {
        argv[na++] = (char *)exe;
    }
    for (int i = 0; args != NULL && args[i] != NULL && na < ARGS_MAX; i++)
        argv[na++] = (char *)args[i];
    argv[na] = NULL;
    snprintf(wiring[0], ENV_STR_MAX, "WARDEN_NAME=%s", CHILD_NAME);
    snprintf(wiring[1], ENV_STR_MAX, "WARDEN_COMMAND_URL=%s", f->cmd_url);
    snprintf(wiring[2], ENV_STR_MAX, "WARDEN_HEARTBEAT_INTERVAL_MS=%d", HB_INTERVAL_MS);
    snprintf(wiring[3], ENV_STR_MAX, "WARDEN_LOG_LEVEL=warn");
    snprintf(wiring[4], ENV_STR_MAX, "WARDEN_HEARTBEAT_URL=%s", f->hb_url);
    for (char **e = environ; *e != NULL && ne < ENV_MAX - 16; e++)
        if (strncmp(*e, "WARDEN_", 7) != 0)
            envp[ne++] = *e;
    /* getenv() returns the first match: the extras come before the wiring. */
    for (int i = 0; extra_env != NULL && extra_env[i] != NULL && ne < ENV_MAX - 5; i++)
        envp[ne++] = (char *)extra_env[i];
    for (int i = 0; i < (with_hb ? 5 : 4); i++)
        envp[ne++] = wiring[i];
    envp[ne] = NULL;
    uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                     {.flags = UV_IGNORE},
                                     {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t opt = {.file = argv[0],
                                .args = argv,
                                .env = envp,
                                .stdio_count = 3,
                                .stdio = stdio,
                                .exit_cb = on_proc_exit};
    f->proc.data = f;
    int rv = uv_spawn(&f->loop, &f->proc, &opt);
    if (rv != 0)
        fail_msg("spawn %s: %s", argv[0], uv_strerror(rv));
    f->spawned = true;
}

static void wait_ready(fx *f) {
    if (!run_until(f, pred_ready, NULL, WAIT_MS))
        fail_msg("no READY within %d ms", WAIT_MS);
    assert_int_equal(f->ready_pid, (uint32_t)f->proc.pid);
}

static void wait_exit(fx *f, int64_t status, int sig) {
    if (!run_until(f, pred_exited, NULL, 2 * WAIT_MS))
        fail_msg("child did not exit");
    assert_int_equal(f->term_signal, sig);
    assert_int_equal(f->exit_status, status);
}

/* ---- commands ---- */

typedef struct {
    bool done;
    int status;
    void *buf;
    size_t len;
} raw_res;

static void raw_cb(void *arg, int status, const void *buf, size_t len) {
    raw_res *r = arg;
    r->done = true;
    r->status = status;
    if (status == 0 && len > 0) {
        r->buf = malloc(len);
        memcpy(r->buf, buf, len);
        r->len = len;
    }
}

static void decode_reply(raw_res *r, reply *out) {
    proto_envelope env;
    proto_ctl_reply rep;
    char err[ERR_MAX];
    memset(out, 0, sizeof *out);
    assert_int_equal(r->status, 0);
    if (proto_envelope_unpack(r->buf, r->len, &env, err, sizeof err) != 0)
        fail_msg("reply envelope: %s", err);
    assert_int_equal(env.type, PROTO_T_CTL_REPLY);
    assert_string_equal(env.hdr.sender, CHILD_NAME);
    if (proto_ctl_reply_unpack(&env, &rep, err, sizeof err) != 0)
        fail_msg("reply: %s", err);
    out->status = rep.status;
    snprintf(out->error, sizeof out->error, "%s", rep.error);
    out->data = json_loadb(rep.data, rep.data_len, JSON_DECODE_ANY, NULL);
    assert_non_null(out->data);
    free(r->buf);
}

static void send_raw(fx *f, const void *buf, size_t len, raw_res *r) {
    memset(r, 0, sizeof *r);
    assert_int_equal(bus_req_send(f->req, buf, len, WAIT_MS, raw_cb, r), 0);
}

static void wait_raw(fx *f, raw_res *r) {
    if (!run_until(f, pred_flag, &r->done, 2 * WAIT_MS))
        fail_msg("no reply");
}

/* Packs cmd with "k=v" args. */
static void pack_cmd(msgpack_sbuffer *sb, const char *cmd, const char *const *kv) {
    proto_ctl_request req;
    proto_header hdr = {.seq = 1, .ts_ns = wd_clock_real_ns()};
    memset(&req, 0, sizeof req);
    snprintf(hdr.sender, sizeof hdr.sender, "worker_test");
    snprintf(req.cmd, sizeof req.cmd, "%s", cmd);
    for (int i = 0; kv != NULL && kv[i] != NULL && i < PROTO_ARGS_MAX; i++) {
        const char *eq = strchr(kv[i], '=');
        assert_non_null(eq);
        snprintf(req.args[i].key, sizeof req.args[i].key, "%.*s", (int)(eq - kv[i]), kv[i]);
        snprintf(req.args[i].val, sizeof req.args[i].val, "%s", eq + 1);
        req.n_args++;
    }
    msgpack_sbuffer_init(sb);
    assert_int_equal(proto_ctl_request_pack(sb, &hdr, &req), 0);
}

static void call(fx *f, const char *cmd, const char *const *kv, reply *out) {
    msgpack_sbuffer sb;
    raw_res r;
    pack_cmd(&sb, cmd, kv);
    send_raw(f, sb.data, sb.size, &r);
    msgpack_sbuffer_destroy(&sb);
    wait_raw(f, &r);
    decode_reply(&r, out);
}

static json_int_t data_int(const reply *r, const char *key) {
    json_t *v = json_object_get(r->data, key);
    assert_non_null(v);
    return json_integer_value(v);
}

/* ======================= cases ======================= */

static void test_ready_and_heartbeats(void **state) {
    fx *f = *state;
    spawn(f, NULL, NULL, NULL, true);
    wait_ready(f);
    assert_string_equal(f->ready_sender, CHILD_NAME);
    int want = f->n_hb + 8;
    assert_true(run_until(f, pred_hb, &want, WAIT_MS));
    assert_int_equal(f->n_bad, 0);
    hb_rec *first = &f->hb[0], *last = &f->hb[f->n_hb - 1];
    for (int i = 0; i < f->n_hb; i++) {
        assert_int_equal(f->hb[i].pid, (uint32_t)f->proc.pid);
        assert_true(f->hb[i].has_cmd_metric);
        assert_true(f->hb[i].has_drop_metric);
        if (i > 0) {
            assert_true(f->hb[i].seq > f->hb[i - 1].seq);
            assert_true(f->hb[i].progress >= f->hb[i - 1].progress);
        }
    }
    assert_true(last->progress > first->progress);
    /* About the configured period on average (loose: noisy machines). The
     * sender's timestamps, not arrival times: a receiver slowed by valgrind
     * or a loaded machine drains queued heartbeats in a burst. */
    uint64_t avg = (last->sent_ms - first->sent_ms) / (uint64_t)(f->n_hb - 1);
    assert_true(avg >= HB_INTERVAL_MS / 2);
    assert_true(avg <= HB_INTERVAL_MS * 5);
}

static void test_command_socket_mode(void **state) {
    fx *f = *state;
    struct stat st;
    spawn(f, NULL, NULL, NULL, true);
    wait_ready(f);
    assert_int_equal(stat(f->cmd_url + strlen("ipc://"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_ping(void **state) {
    fx *f = *state;
    reply r;
    spawn(f, NULL, NULL, NULL, true);
    call(f, "ping", NULL, &r);
    assert_int_equal(r.status, 0);
    assert_true(json_is_true(json_object_get(r.data, "pong")));
    assert_int_equal(data_int(&r, "pid"), f->proc.pid);
    json_decref(r.data);
    call(f, "data", NULL, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(json_string_value(json_object_get(r.data, "hello")), "world");
    json_decref(r.data);
}

static void test_unknown_and_failing_command(void **state) {
    fx *f = *state;
    reply r;
    spawn(f, NULL, NULL, NULL, true);
    call(f, "bogus", NULL, &r);
    assert_int_equal(r.status, WD_ENOTFOUND);
    assert_non_null(strstr(r.error, "bogus"));
    assert_true(json_is_null(r.data));
    json_decref(r.data);
    call(f, "fail", NULL, &r);
    assert_int_equal(r.status, WD_EINVAL);
    assert_string_equal(r.error, "failing on purpose");
    json_decref(r.data);
}

static void test_malformed_then_ping(void **state) {
    fx *f = *state;
    raw_res raw;
    reply r;
    spawn(f, NULL, NULL, NULL, true);
    /* Not msgpack at all. */
    send_raw(f, "\xc1garbage", 8, &raw);
    wait_raw(f, &raw);
    decode_reply(&raw, &r);
    assert_true(r.status < 0);
    assert_non_null(strstr(r.error, "malformed"));
    json_decref(r.data);
    /* A valid envelope of the wrong type (READY). */
    msgpack_sbuffer sb;
    proto_header hdr = {.seq = 1};
    proto_ready rd = {.pid = 1, .version = "x"};
    snprintf(hdr.sender, sizeof hdr.sender, "worker_test");
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_ready_pack(&sb, &hdr, &rd), 0);
    send_raw(f, sb.data, sb.size, &raw);
    msgpack_sbuffer_destroy(&sb);
    wait_raw(f, &raw);
    decode_reply(&raw, &r);
    assert_int_equal(r.status, WD_EPROTO);
    assert_non_null(strstr(r.error, "CTL_REQUEST"));
    json_decref(r.data);
    /* Empty message. */
    send_raw(f, NULL, 0, &raw);
    wait_raw(f, &raw);
    decode_reply(&raw, &r);
    assert_true(r.status < 0);
    json_decref(r.data);
    /* Still serving. */
    call(f, "ping", NULL, &r);
    assert_int_equal(r.status, 0);
    json_decref(r.data);
}

static void test_deferred_reply(void **state) {
    fx *f = *state;
    msgpack_sbuffer sb;
    raw_res deferred;
    reply r;
    spawn(f, NULL, NULL, NULL, true);
    pack_cmd(&sb, "defer", NULL);
    send_raw(f, sb.data, sb.size, &deferred);
    msgpack_sbuffer_destroy(&sb);
    /* The loop is free meanwhile: ping answers first. */
    call(f, "ping", NULL, &r);
    assert_int_equal(r.status, 0);
    json_decref(r.data);
    assert_false(deferred.done);
    wait_raw(f, &deferred);
    decode_reply(&deferred, &r);
    assert_int_equal(r.status, 0);
    assert_true(json_is_true(json_object_get(r.data, "deferred")));
    json_decref(r.data);
}

static void test_ready_again_after_reconnect(void **state) {
    fx *f = *state;
    char err[ERR_MAX] = "";
    spawn(f, NULL, NULL, NULL, true);
    wait_ready(f);
    /* The heartbeat listener is re-created (as the bus watchdog does): the
     * worker's connection drops, it redials and sends READY again. */
    bus_in_close(f->pull);
    f->pull = NULL;
    run_until(f, pred_never, NULL, 50);
    assert_int_equal(bus_close_drain(WAIT_MS), 0); /* the address is free again */
    f->ready = false;
    f->ready_pid = 0;
    if (bus_pull_listen(&f->loop, f->hb_url, 0600, on_hb_msg, f, &f->pull, err, sizeof err) != 0)
        fail_msg("pull: %s", err);
    wait_ready(f);
}

static bool pred_lag(fx *f, void *arg) {
    for (int i = *(int *)arg; i < f->n_hb; i++)
        if (f->hb[i].lag_us >= 200 * 1000)
            return true;
    return false;
}

static void test_loop_lag_reported(void **state) {
    fx *f = *state;
    reply r;
    spawn(f, NULL, NULL, NULL, true);
    wait_ready(f);
    int from = f->n_hb;
    call(f, "block", NULL, &r); /* the child's loop stalls for 300 ms */
    json_decref(r.data);
    assert_true(run_until(f, pred_lag, &from, WAIT_MS));
}

static void test_sigterm_exits_0(void **state) {
    fx *f = *state;
    spawn(f, NULL, NULL, NULL, true);
    wait_ready(f);
    assert_int_equal(uv_process_kill(&f->proc, SIGTERM), 0);
    wait_exit(f, 0, 0);
}

static bool pred_reloads(fx *f, void *arg) {
    double want = *(double *)arg;
    return f->n_hb > 0 && f->hb[f->n_hb - 1].reloads >= want &&
           f->hb[f->n_hb - 1].child_reloads >= want;
}

static void test_sighup_reloads(void **state) {
    fx *f = *state;
    reply r;
    double want = 1;
    spawn(f, NULL, NULL, NULL, true);
    wait_ready(f);
    assert_int_equal(uv_process_kill(&f->proc, SIGHUP), 0);
    assert_true(run_until(f, pred_reloads, &want, WAIT_MS));
    call(f, "reload", NULL, &r);
    assert_int_equal(r.status, 0);
    json_decref(r.data);
    want = 2;
    assert_true(run_until(f, pred_reloads, &want, WAIT_MS));
    /* Still running: SIGHUP is not a stop. */
    assert_false(f->exited);
}

static void test_stop_deadline_exits_1(void **state) {
    fx *f = *state;
    const char *args[] = {"--stuck-stop", NULL};
    const char *env[] = {"WARDEN_STOP_TIMEOUT_MS=300", NULL};
    spawn(f, NULL, args, env, true);
    wait_ready(f);
    assert_int_equal(uv_process_kill(&f->proc, SIGTERM), 0);
    wait_exit(f, 1, 0);
}

static void test_second_sigterm_exits_1(void **state) {
    fx *f = *state;
    const char *args[] = {"--stuck-stop", NULL};
    spawn(f, NULL, args, NULL, true);
    wait_ready(f);
    assert_int_equal(uv_process_kill(&f->proc, SIGTERM), 0);
    run_until(f, pred_never, NULL, 200);
    assert_false(f->exited); /* the default deadline is 10 s */
    assert_int_equal(uv_process_kill(&f->proc, SIGTERM), 0);
    wait_exit(f, 1, 0);
}

static void test_heartbeats_while_stopping(void **state) {
    fx *f = *state;
    const char *args[] = {"--stuck-stop", NULL};
    const char *env[] = {"WARDEN_STOP_TIMEOUT_MS=1500", NULL};
    spawn(f, NULL, args, env, true);
    wait_ready(f);
    assert_int_equal(uv_process_kill(&f->proc, SIGTERM), 0);
    run_until(f, pred_never, NULL, 100);
    int want = f->n_hb + 3;
    assert_true(run_until(f, pred_hb, &want, WAIT_MS));
    wait_exit(f, 1, 0);
}

static void test_bad_env_exits_2(void **state) {
    fx *f = *state;
    const char *env[] = {"WARDEN_HEARTBEAT_INTERVAL_MS=abc", NULL};
    spawn(f, NULL, NULL, env, true);
    wait_exit(f, 2, 0);
    f->spawned = false;
    f->exited = false;
    const char *env2[] = {"WARDEN_LOG_LEVEL=loud", NULL};
    spawn(f, NULL, NULL, env2, true);
    wait_exit(f, 2, 0);
    f->spawned = false;
    f->exited = false;
    const char *args[] = {"--what", NULL};
    spawn(f, NULL, args, NULL, true);
    wait_exit(f, 2, 0);
}

static void test_standalone(void **state) {
    fx *f = *state;
    reply r;
    spawn(f, NULL, NULL, NULL, false);
    call(f, "ping", NULL, &r);
    assert_int_equal(r.status, 0);
    json_decref(r.data);
    assert_false(f->ready); /* nothing pushed without WARDEN_HEARTBEAT_URL */
    assert_int_equal(f->n_hb, 0);
    assert_int_equal(uv_process_kill(&f->proc, SIGTERM), 0);
    wait_exit(f, 0, 0);
}

/* ---- warden-testworker ---- */

static const char *testworker_path(void) {
    static char path[EXE_MAX + 32];
    char self[EXE_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return NULL;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return NULL;
    *slash = '\0';
    snprintf(path, sizeof path, "%s/warden-testworker", self);
    return access(path, X_OK) == 0 ? path : NULL;
}

static const char *need_testworker(void) {
    const char *tw = testworker_path();
    if (tw == NULL) {
        fprintf(stderr, "warden-testworker not built next to this binary; skipped\n");
        skip();
    }
    return tw;
}

static void test_testworker_usage_errors(void **state) {
    fx *f = *state;
    const char *tw = need_testworker();
    const char *bad[][3] = {{"--bogus", NULL, NULL},
                            {"--ready-delay", "abc", NULL},
                            {"--flood", NULL, NULL},
                            {"--exit-code", "3", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f->spawned = f->exited = false;
        spawn(f, tw, bad[i], NULL, true);
        wait_exit(f, 2, 0);
    }
}

static void test_testworker_commands(void **state) {
    fx *f = *state;
    const char *tw = need_testworker();
    reply r;
    spawn(f, tw, NULL, NULL, true);
    wait_ready(f);
    const char *echo_args[] = {"a=1", "b=two", NULL};
    call(f, "echo", echo_args, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(json_string_value(json_object_get(r.data, "b")), "two");
    json_decref(r.data);
    call(f, "nonsense", NULL, &r);
    assert_int_equal(r.status, WD_ENOTFOUND);
    assert_non_null(strstr(r.error, "nonsense"));
    json_decref(r.data);
    const char *bad_args[] = {"n=many", NULL};
    call(f, "progress", bad_args, &r);
    assert_int_equal(r.status, WD_EINVAL);
    assert_non_null(strstr(r.error, "n="));
    json_decref(r.data);
    /* sleep answers later without blocking the loop. */
    msgpack_sbuffer sb;
    raw_res slept;
    const char *sleep_args[] = {"ms=300", NULL};
    pack_cmd(&sb, "sleep", sleep_args);
    send_raw(f, sb.data, sb.size, &slept);
    msgpack_sbuffer_destroy(&sb);
    call(f, "ping", NULL, &r);
    json_decref(r.data);
    assert_false(slept.done);
    wait_raw(f, &slept);
    decode_reply(&slept, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(data_int(&r, "slept_ms"), 300);
    json_decref(r.data);
    /* A breaker state shows up in heartbeats. */
    const char *brk_args[] = {"name=redis", "state=open", NULL};
    call(f, "breaker", brk_args, &r);
    assert_int_equal(r.status, 0);
    json_decref(r.data);
    int want = f->n_hb + 2;
    assert_true(run_until(f, pred_hb, &want, WAIT_MS));
    assert_string_equal(f->hb[f->n_hb - 1].breaker, "redis");
    assert_int_equal(f->hb[f->n_hb - 1].breaker_state, PROTO_BRK_OPEN);
    /* exit code=N */
    const char *exit_args[] = {"code=3", NULL};
    call(f, "exit", exit_args, &r);
    assert_int_equal(r.status, 0);
    json_decref(r.data);
    wait_exit(f, 3, 0);
}

static void test_testworker_ready_delay_and_crash(void **state) {
    fx *f = *state;
    const char *tw = need_testworker();
    const char *args[] = {"--ready-delay", "1000", "--crash-after", "1500", NULL};
    spawn(f, tw, args, NULL, true);
    int want = 1;
    assert_true(run_until(f, pred_hb, &want, WAIT_MS)); /* heartbeats before READY */
    assert_false(f->ready);
    wait_ready(f);
    wait_exit(f, 0, SIGABRT);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--child") == 0)
        return wrk_main(argc - 1, argv + 1, &child_ops);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ready_and_heartbeats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_socket_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_failing_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_then_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ready_again_after_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_lag_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_exits_0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sighup_reloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_deadline_exits_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_sigterm_exits_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeats_while_stopping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_env_exits_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_standalone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_testworker_usage_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_testworker_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_testworker_ready_delay_and_crash, setup, teardown),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("worker", tests, NULL, NULL);
}
