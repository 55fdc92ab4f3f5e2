/* The HTTP client under faults from a real server on loopback
 * (tests/support/http_fault_server.py): 5xx, 429 with Retry-After, 4xx,
 * a server that never answers, one that never reads an upload, one that
 * never accepts, and a breaker that opens. Under every fault a 10 ms
 * lateness probe runs on the same loop: a blocking call anywhere would show
 * as a late tick, so a small worst lateness proves the client never blocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "curl_uv.h"
#include "http.h"
#include "http_server.h"
#include "support.h"
#include "wd_error.h"

#define WAIT_MS 10000
#define URL_MAX 512
#define PROBE_MS 10
/* Generous: valgrind slows the loop, but a blocking connect or upload would
 * stall it for the whole timeout (300 ms and more). */
#define LATE_MAX_MS 200

static wdt_http_server server;

typedef struct {
    uv_loop_t loop;
    wd_http *h;
    wdt_lateness probe;
    int closed;
} fixture;

static int group_setup(void **state) {
    (void)state;
    /* Once per process, before any loop runs, as a worker's main does:
     * libcurl's (and OpenSSL's) init is slow, and it is not the client. */
    if (wd_curl_global_init() != 0)
        return -1;
    if (wdt_http_server_start(&server) != 0)
        return -1;
    if (wdt_http_warm_up(&server) != 0) {
        wdt_http_server_stop(&server);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    wdt_http_server_stop(&server);
    return 0;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL || uv_loop_init(&f->loop) != 0)
        return -1;
    wdt_lateness_start(&f->loop, &f->probe, PROBE_MS);
    *state = f;
    return 0;
}

static void on_closed(void *arg) { ((fixture *)arg)->closed++; }
static int is_closed(void *arg) { return ((fixture *)arg)->closed > 0; }

static int teardown(void **state) {
    fixture *f = *state;
    int rc = 0;
    if (f->h != NULL) {
        wd_http_close(f->h, on_closed, f);
        if (!wdt_run_until(&f->loop, is_closed, f, WAIT_MS))
            rc = -1;
    }
    wdt_lateness_stop(&f->probe);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&f->loop) != 0)
        rc = -1;
    free(f);
    return rc;
}

static int never(void *arg) {
    (void)arg;
    return 0;
}

static void client(fixture *f, wd_http_opts *o) {
    char err[256] = "";
    int rc = wd_http_new(&f->loop, o, &f->h, err, sizeof err);
    if (rc != 0)
        fail_msg("wd_http_new: %s (%s)", wd_strerror(rc), err);
}

static wd_http_opts opts(void) {
    wd_http_opts o;
    wd_http_opts_defaults(&o);
    o.breaker.failure_threshold = 5;
    o.breaker.jitter = 0;
    return o;
}

static void run(fixture *f, const wd_http_req *req, wdt_http_result *res) {
    char err[256] = "";
    memset(res, 0, sizeof *res);
    int rc = wd_http_request(f->h, req, wdt_http_on_resp, res, err, sizeof err);
    if (rc != 0)
        fail_msg("wd_http_request: %s (%s)", wd_strerror(rc), err);
    assert_true(wdt_http_wait(&f->loop, res, WAIT_MS));
    assert_int_equal(res->calls, 1);
}

static void get_port(fixture *f, int port, const char *path, wdt_http_result *res) {
    char u[URL_MAX];
    wd_http_req req = {.url = wdt_http_url(u, URL_MAX, port, path)};
    run(f, &req, res);
}

static void get(fixture *f, const char *path, wdt_http_result *res) {
    get_port(f, server.http_port, path, res);
}

static void stats(fixture *f, wd_http_endpoint_stats *st) {
    char u[URL_MAX];
    assert_int_equal(
        wd_http_endpoint_stats_get(f->h, wdt_http_url(u, URL_MAX, server.http_port, "/"), st), 0);
}

static void assert_not_late(fixture *f) {
    /* A few more ticks, so that even a short test has some to judge by. */
    wdt_run_until(&f->loop, never, NULL, 3 * PROBE_MS);
    assert_true(f->probe.ticks > 0);
    print_message("worst loop lateness %llu ms over %llu ticks\n",
                  (unsigned long long)f->probe.worst_late_ms, (unsigned long long)f->probe.ticks);
    if (f->probe.worst_late_ms >= wdt_late_bound_ms(LATE_MAX_MS))
        fail_msg("loop was blocked: worst lateness %llu ms",
                 (unsigned long long)f->probe.worst_late_ms);
}

static void status_500_is_transient_breaker_failure(void **state) {
    fixture *f = *state;
    wd_http_opts o = opts();
    wdt_http_result res;
    wd_http_endpoint_stats st;
    client(f, &o);
    get(f, "/status/500", &res);
    assert_int_equal(res.r.status, 500);
    assert_int_equal(res.r.err, WD_ETRANSIENT);
    assert_int_equal(res.r.errclass, WD_ERRCLASS_TRANSIENT);
    stats(f, &st);
    assert_int_equal(st.breaker_failures, 1);
    assert_int_equal(st.breaker_successes, 0);
    assert_int_equal(st.breaker_state, BRK_CLOSED); /* 1 of 5 */
    get(f, "/status/503", &res);
    assert_int_equal(res.r.err, WD_ETRANSIENT);
    stats(f, &st);
    assert_int_equal(st.breaker_failures, 2);
    /* Refused connection: a network error, transient, a failure too. */
    int dead = wdt_free_tcp_port();
    get_port(f, dead, "/ok", &res);
    assert_int_equal(res.r.err, WD_EUNAVAIL);
    assert_int_equal(res.r.errclass, WD_ERRCLASS_TRANSIENT);
    assert_int_equal(res.r.status, 0);
    char u[URL_MAX];
    wd_http_endpoint_stats dst;
    assert_int_equal(wd_http_endpoint_stats_get(f->h, wdt_http_url(u, URL_MAX, dead, "/"), &dst),
                     0);
    assert_int_equal(dst.breaker_failures, 1);
    assert_not_late(f);
}

static void status_400_is_permanent_not_breaker_failure(void **state) {
    fixture *f = *state;
    wd_http_opts o = opts();
    wdt_http_result res;
    wd_http_endpoint_stats st;
    o.breaker.failure_threshold = 1; /* one failure would open it */
    client(f, &o);
    static const char *const paths[] = {"/status/400", "/status/404", "/status/422"};
    for (size_t i = 0; i < 3; i++) {
        get(f, paths[i], &res);
        assert_int_equal(res.r.err, WD_EPERMANENT);
        assert_int_equal(res.r.errclass, WD_ERRCLASS_PERMANENT);
    }
    stats(f, &st);
    assert_int_equal(st.breaker_state, BRK_CLOSED);
    assert_int_equal(st.breaker_failures, 0);
    assert_int_equal(st.breaker_successes, 3);
    /* 408 is the one 4xx that is transient, and it does count. */
    get(f, "/status/408", &res);
    assert_int_equal(res.r.err, WD_ETRANSIENT);
    stats(f, &st);
    assert_int_equal(st.breaker_failures, 1);
    assert_int_equal(st.breaker_state, BRK_OPEN);
    assert_not_late(f);
}

/* The value of the sample whose line starts with prefix, or -1. */
static double prom_value(wd_metrics *reg, const char *prefix) {
    char *text = NULL;
    size_t len;
    double v = -1;
    assert_int_equal(wd_metrics_render_prometheus(reg, &text, &len), 0);
    const char *p = strstr(text, prefix);
    if (p != NULL)
        v = strtod(p + strlen(prefix), NULL);
    free(text);
    return v;
}

/* 429 + Retry-After: 2 pauses the endpoint's throttle for ~2 s: the next
 * request is queued, not sent, and goes out only after the pause. */
static void status_429_pauses_throttle(void **state) {
    fixture *f = *state;
    wd_http_opts o = opts();
    wdt_http_result res, next;
    wd_http_endpoint_stats st;
    char u[URL_MAX], err[256];
    wd_metrics *reg = wd_metrics_new();
    assert_non_null(reg);
    o.metrics = reg;
    o.throttle = true;
    o.throttle_cfg.rate_max_per_s = 100;
    o.throttle_cfg.rate_min_per_s = 1;
    o.throttle_cfg.burst = 5;
    client(f, &o);
    get(f, "/429", &res);
    uint64_t t429 = res.done_ns;
    assert_int_equal(res.r.status, 429);
    assert_int_equal(res.r.err, WD_ETRANSIENT);
    assert_int_equal(res.r.errclass, WD_ERRCLASS_TRANSIENT);
    assert_true(res.r.has_retry_after);
    assert_int_equal(res.r.retry_after_ms, 2000);
    stats(f, &st);
    assert_int_equal(st.throttle.rate_limited, 1);
    assert_int_equal(st.throttle.pauses, 1);
    assert_true(st.paused_for_ns > 1000 * WD_NS_PER_MS);
    assert_true(st.paused_for_ns <= 2000 * WD_NS_PER_MS);
    char paused[128];
    snprintf(paused, sizeof paused, "warden_http_throttle_paused{host=\"127.0.0.1:%d\"} ",
             server.http_port);
    assert_true(prom_value(reg, paused) == 1);

    memset(&next, 0, sizeof next);
    wd_http_req req = {.url = wdt_http_url(u, URL_MAX, server.http_port, "/ok")};
    assert_int_equal(wd_http_request(f->h, &req, wdt_http_on_resp, &next, err, sizeof err), 0);
    stats(f, &st);
    assert_int_equal(st.queued, 1);
    assert_int_equal(st.inflight, 0);
    assert_true(st.throttle.delayed >= 1);
    uint64_t acquired = st.throttle.acquired;
    /* Still held a while later (the pause has well over 500 ms to run). */
    assert_false(wdt_http_wait(&f->loop, &next, 300));
    stats(f, &st);
    assert_int_equal(st.queued, 1);
    assert_int_equal(st.throttle.acquired, acquired);
    /* Released when the pause ends. */
    assert_true(wdt_http_wait(&f->loop, &next, 5000));
    assert_int_equal(next.r.err, 0);
    assert_int_equal(next.r.status, 200);
    assert_true(next.done_ns - t429 >= 1500 * WD_NS_PER_MS);
    stats(f, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.paused_for_ns, 0);
    assert_true(prom_value(reg, paused) == 0);
    assert_not_late(f);
    wd_http_close(f->h, on_closed, f);
    f->h = NULL;
    assert_true(wdt_run_until(&f->loop, is_closed, f, WAIT_MS));
    wd_metrics_free(reg);
}

static void retry_after_http_date(void **state) {
    fixture *f = *state;
    wd_http_opts o = opts();
    wdt_http_result res;
    client(f, &o);
    get(f, "/retry-after-date", &res);
    assert_int_equal(res.r.status, 429);
    assert_true(res.r.has_retry_after);
    /* The date is 3 s ahead, to the second. */
    assert_true(res.r.retry_after_ms >= 1000 && res.r.retry_after_ms <= 3000);
    /* And the clamp applies: max 500 ms. */
    wd_http_close(f->h, on_closed, f);
    f->h = NULL;
    assert_true(wdt_run_until(&f->loop, is_closed, f, WAIT_MS));
    f->closed = 0;
    o.retry_after_max_ms = 500;
    client(f, &o);
    get(f, "/429", &res);
    assert_int_equal(res.r.retry_after_ms, 500);
    assert_not_late(f);
}

static void hang_times_out(void **state) {
    fixture *f = *state;
    wd_http_opts o = opts();
    wdt_http_result res;
    wd_http_endpoint_stats st;
    char u[URL_MAX];
    client(f, &o);
    wd_http_req req = {.url = wdt_http_url(u, URL_MAX, server.http_port, "/hang"),
                       .timeout_ms = 300};
    run(f, &req, &res);
    assert_int_equal(res.r.err, WD_ETIMEDOUT);
    assert_int_equal(res.r.errclass, WD_ERRCLASS_TRANSIENT);
    assert_int_equal(res.r.status, 0);
    assert_true(res.r.duration_ns >= 250 * WD_NS_PER_MS);
    assert_non_null(strstr(res.r.error, "GET http://127.0.0.1:"));
    assert_non_null(strstr(res.r.error, "timed out"));
    stats(f, &st);
    assert_int_equal(st.breaker_failures, 1);
    assert_not_late(f);
}

/* The server accepts and never reads: the 8 MiB upload stalls once the
 * socket buffers are full, and the total timeout ends it. */
static void upload_to_non_reader_times_out(void **state) {
    fixture *f = *state;
    wd_http_opts o = opts();
    wdt_http_result res;
    char u[URL_MAX];
    size_t n = 8u << 20;
    char *body = malloc(n);
    assert_non_null(body);
    memset(body, 'b', n);
    client(f, &o);
    /* Filling the body above is the test's work, not the client's. */
    wdt_run_until(&f->loop, never, NULL, 3 * PROBE_MS);
    f->probe.worst_late_ms = 0;
    wd_http_req req = {.url = wdt_http_url(u, URL_MAX, server.noread_port, "/upload"),
                       .body = body,
                       .body_len = n,
                       .timeout_ms = 800};
    run(f, &req, &res);
    free(body);
    assert_int_equal(res.r.err, WD_ETIMEDOUT);
    assert_int_equal(res.r.errclass, WD_ERRCLASS_TRANSIENT);
    assert_int_equal(res.r.status, 0);
    assert_true(res.r.duration_ns >= 700 * WD_NS_PER_MS);
    assert_not_late(f);
}

/* Nobody accepts: the connect hangs and the connect timeout (not the
 * much longer total one) ends it. */
static void black_hole_connect_times_out(void **state) {
    fixture *f = *state;
    wd_http_opts o = opts();
    wdt_http_result res;
    char u[URL_MAX];
    client(f, &o);
    wd_http_req req = {.url = wdt_http_url(u, URL_MAX, server.blackhole_port, "/ok"),
                       .connect_timeout_ms = 300,
                       .timeout_ms = 8000};
    run(f, &req, &res);
    assert_int_equal(res.r.err, WD_ETIMEDOUT);
    assert_int_equal(res.r.errclass, WD_ERRCLASS_TRANSIENT);
    assert_true(res.r.duration_ns >= 250 * WD_NS_PER_MS);
    assert_true(res.r.duration_ns < 4000 * WD_NS_PER_MS);
    assert_not_late(f);
}

static long server_requests(fixture *f) {
    /* A separate client: its own breaker, so it can ask while ours is open. */
    wd_http *probe = NULL;
    wdt_http_result res;
    char u[URL_MAX];
    json_error_t je;
    assert_int_equal(wd_http_new(&f->loop, NULL, &probe, NULL, 0), 0);
    wd_http_req req = {.url = wdt_http_url(u, URL_MAX, server.http_port, "/requests")};
    memset(&res, 0, sizeof res);
    assert_int_equal(wd_http_request(probe, &req, wdt_http_on_resp, &res, NULL, 0), 0);
    assert_true(wdt_http_wait(&f->loop, &res, WAIT_MS));
    fixture tmp = {.closed = 0};
    wd_http_close(probe, on_closed, &tmp);
    assert_true(wdt_run_until(&f->loop, is_closed, &tmp, WAIT_MS));
    json_t *doc = json_loads(res.body, 0, &je);
    assert_non_null(doc);
    long n = (long)json_integer_value(json_object_get(doc, "requests"));
    json_decref(doc);
    return n;
}

/* Three 503s open the breaker; while open, requests fail at once with
 * WD_EOPEN, never reach the server and never call back; after the cooldown
 * one trial goes through and closes it again. */
static void breaker_opens_and_fails_fast(void **state) {
    fixture *f = *state;
    wd_http_opts o = opts();
    wdt_http_result res;
    wd_http_endpoint_stats st;
    char u[URL_MAX], err[256];
    o.breaker.failure_threshold = 3;
    o.breaker.open_ns = 1500 * WD_NS_PER_MS;
    o.breaker.open_max_ns = 1500 * WD_NS_PER_MS;
    client(f, &o);
    for (int i = 0; i < 3; i++) {
        get(f, "/status/503", &res);
        assert_int_equal(res.r.err, WD_ETRANSIENT);
    }
    stats(f, &st);
    assert_int_equal(st.breaker_state, BRK_OPEN);
    assert_int_equal(st.breaker_opens, 1);
    assert_true(st.breaker_retry_in_ns > 0);

    long before = server_requests(f);
    memset(&res, 0, sizeof res);
    wd_http_req req = {.url = wdt_http_url(u, URL_MAX, server.http_port, "/ok")};
    for (int i = 0; i < 5; i++) {
        err[0] = '\0';
        assert_int_equal(wd_http_request(f->h, &req, wdt_http_on_resp, &res, err, sizeof err),
                         WD_EOPEN);
        assert_non_null(strstr(err, "circuit breaker open"));
    }
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(res.calls, 0);
    stats(f, &st);
    assert_int_equal(st.breaker_rejected, 5);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.queued, 0);
    /* Only the probe's own /requests reached the server. */
    assert_int_equal(server_requests(f), before + 1);

    /* After the cooldown a trial call is admitted and closes the breaker. */
    stats(f, &st);
    wdt_http_result idle = {.calls = 0};
    wdt_http_wait(&f->loop, &idle, st.breaker_retry_in_ns / WD_NS_PER_MS + 50);
    get(f, "/ok", &res);
    assert_int_equal(res.r.err, 0);
    stats(f, &st);
    assert_int_equal(st.breaker_state, BRK_CLOSED);
    assert_not_late(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(status_500_is_transient_breaker_failure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(status_400_is_permanent_not_breaker_failure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(status_429_pauses_throttle, setup, teardown),
        cmocka_unit_test_setup_teardown(retry_after_http_date, setup, teardown),
        cmocka_unit_test_setup_teardown(hang_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(upload_to_non_reader_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(black_hole_connect_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(breaker_opens_and_fails_fast, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
