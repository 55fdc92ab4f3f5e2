/* The HTTP client against a real HTTP/1.1 server on loopback
 * (tests/support/http_fault_server.py): GET/POST, headers, keep-alive
 * reuse, the response size limit, URL redaction, metrics, bad input, close
 * with requests pending. Faults are in http_fault_test.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "curl_uv.h"
#include "http.h"
#include "http_server.h"
#include "log.h"
#include "support.h"
#include "wd_error.h"

#define WAIT_MS 10000
#define URL_MAX 512

static wdt_http_server server;

typedef struct {
    uv_loop_t loop;
    wd_http *h;
    wd_metrics *metrics;
    int closed;
} fixture;

static int group_setup(void **state) {
    (void)state;
    /* Once per process, before any loop runs, as a worker's main does:
     * libcurl's (and OpenSSL's) init is slow, and it is not the client. */
    if (wd_curl_global_init() != 0)
        return -1;
    return wdt_http_server_start(&server) == 0 ? 0 : -1;
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
    *state = f;
    return 0;
}

static void on_closed(void *arg) { ((fixture *)arg)->closed++; }
static int is_closed(void *arg) { return ((fixture *)arg)->closed > 0; }

/* Closes the client (if any), checks that every handle went away, frees. */
static int teardown(void **state) {
    fixture *f = *state;
    int rc = 0;
    if (f->h != NULL) {
        wd_http_close(f->h, on_closed, f);
        if (!wdt_run_until(&f->loop, is_closed, f, WAIT_MS))
            rc = -1;
    }
    uv_run(&f->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&f->loop) != 0)
        rc = -1;
    wd_metrics_free(f->metrics);
    free(f);
    return rc;
}

static void client(fixture *f, wd_http_opts *o) {
    wd_http_opts d;
    char err[256] = "";
    if (o == NULL) {
        wd_http_opts_defaults(&d);
        o = &d;
    }
    int rc = wd_http_new(&f->loop, o, &f->h, err, sizeof err);
    if (rc != 0)
        fail_msg("wd_http_new: %s (%s)", wd_strerror(rc), err);
}

static const char *url(char *buf, const char *path) {
    return wdt_http_url(buf, URL_MAX, server.http_port, path);
}

/* One request, run to its callback. */
static void run(fixture *f, const wd_http_req *req, wdt_http_result *res) {
    char err[256] = "";
    memset(res, 0, sizeof *res);
    int rc = wd_http_request(f->h, req, wdt_http_on_resp, res, err, sizeof err);
    if (rc != 0)
        fail_msg("wd_http_request: %s (%s)", wd_strerror(rc), err);
    assert_true(wdt_http_wait(&f->loop, res, WAIT_MS));
    assert_int_equal(res->calls, 1);
}

static void get(fixture *f, const char *path, wdt_http_result *res) {
    char u[URL_MAX];
    wd_http_req req = {.url = url(u, path)};
    run(f, &req, res);
}

static long json_int(const char *text, const char *key) {
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    assert_non_null(doc);
    json_t *v = json_object_get(doc, key);
    assert_true(json_is_integer(v));
    long n = (long)json_integer_value(v);
    json_decref(doc);
    return n;
}

static void get_ok(void **state) {
    fixture *f = *state;
    wdt_http_result res;
    client(f, NULL);
    get(f, "/ok", &res);
    assert_int_equal(res.r.err, 0);
    assert_int_equal(res.r.status, 200);
    assert_string_equal(res.body, "{\"ok\": true}");
    assert_int_equal(res.r.body_len, strlen("{\"ok\": true}"));
    assert_string_equal(res.content_type, "application/json");
    assert_string_equal(res.r.error, "");
    assert_false(res.r.has_retry_after);
    assert_true(res.r.duration_ns > 0);
    /* A 404 is an answer, not a transport error: permanent. */
    get(f, "/nope", &res);
    assert_int_equal(res.r.status, 404);
    assert_int_equal(res.r.err, WD_EPERMANENT);
    assert_int_equal(res.r.errclass, WD_ERRCLASS_PERMANENT);
    assert_non_null(strstr(res.r.error, "HTTP 404"));
}

static void post_put_headers_echoed(void **state) {
    fixture *f = *state;
    wd_http_opts o;
    wdt_http_result res;
    char u[URL_MAX];
    json_error_t je;
    wd_http_opts_defaults(&o);
    o.user_agent = "warden-test/1";
    client(f, &o);
    const char *hdrs[] = {"X-Trace: abc-123", "Content-Type: text/plain", NULL};
    wd_http_req req = {.url = url(u, "/echo"), .headers = hdrs, .body = "hello body",
                       .body_len = 10};
    run(f, &req, &res);
    assert_int_equal(res.r.err, 0);
    json_t *doc = json_loads(res.body, 0, &je);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(doc, "body")), "hello body");
    json_t *h = json_object_get(doc, "headers");
    assert_string_equal(json_string_value(json_object_get(h, "X-Trace")), "abc-123");
    assert_string_equal(json_string_value(json_object_get(h, "Content-Type")), "text/plain");
    assert_string_equal(json_string_value(json_object_get(h, "User-Agent")), "warden-test/1");
    /* Expect: 100-continue is switched off: bodies go out at once. */
    assert_null(json_object_get(h, "Expect"));
    json_decref(doc);

    wd_http_req put = {.method = "PUT", .url = url(u, "/echo/x"), .body = "{}", .body_len = 2};
    run(f, &put, &res);
    doc = json_loads(res.body, 0, &je);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "PUT");
    assert_string_equal(json_string_value(json_object_get(doc, "path")), "/echo/x");
    assert_string_equal(json_string_value(json_object_get(doc, "body")), "{}");
    json_decref(doc);

    /* A GET with a body stays a GET; DELETE without one is sent as named. */
    wd_http_req getb = {.method = "GET", .url = url(u, "/echo"), .body = "q", .body_len = 1};
    run(f, &getb, &res);
    doc = json_loads(res.body, 0, &je);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(doc, "body")), "q");
    json_decref(doc);
    wd_http_req del = {.method = "DELETE", .url = url(u, "/echo")};
    run(f, &del, &res);
    doc = json_loads(res.body, 0, &je);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "DELETE");
    json_decref(doc);

    /* An empty POST still is a POST, with Content-Length: 0. */
    wd_http_req empty = {.method = "POST", .url = url(u, "/echo")};
    run(f, &empty, &res);
    doc = json_loads(res.body, 0, &je);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "POST");
    h = json_object_get(doc, "headers");
    assert_string_equal(json_string_value(json_object_get(h, "Content-Length")), "0");
    json_decref(doc);
}

/* Sequential requests from one client share one TCP connection; a new
 * client (a new connection cache) opens another, which shows /conns counts. */
static void keepalive_reuses_one_connection(void **state) {
    fixture *f = *state;
    wdt_http_result res;
    client(f, NULL);
    get(f, "/conns", &res);
    long before = json_int(res.body, "conns");
    for (int i = 0; i < 10; i++) {
        get(f, "/ok", &res);
        assert_int_equal(res.r.status, 200);
    }
    get(f, "/conns", &res);
    assert_int_equal(json_int(res.body, "conns"), before);

    wd_http_close(f->h, on_closed, f);
    f->h = NULL;
    assert_true(wdt_run_until(&f->loop, is_closed, f, WAIT_MS));
    f->closed = 0;
    client(f, NULL);
    get(f, "/conns", &res);
    assert_true(json_int(res.body, "conns") > before);
}

static void response_size_limit(void **state) {
    fixture *f = *state;
    wd_http_opts o;
    wdt_http_result res;
    wd_http_opts_defaults(&o);
    o.max_response_bytes = 1000;
    o.breaker.failure_threshold = 1;
    client(f, &o);
    get(f, "/big?bytes=1000", &res);
    assert_int_equal(res.r.err, 0);
    assert_int_equal(res.r.body_len, 1000);
    /* Over the limit with a Content-Length: curl refuses before reading. */
    get(f, "/big?bytes=200000", &res);
    assert_int_equal(res.r.err, WD_ETOOBIG);
    assert_int_equal(res.r.errclass, WD_ERRCLASS_PERMANENT);
    assert_non_null(strstr(res.r.error, "1000 byte limit"));
    /* Chunked, no length: aborted once the bytes pass the limit. */
    get(f, "/big?bytes=200000&chunked=1", &res);
    assert_int_equal(res.r.err, WD_ETOOBIG);
    assert_true(res.r.body_len <= 1000);
    assert_non_null(strstr(res.r.error, "1000 byte limit"));
    /* Our limit is not the server's failure: the breaker (threshold 1)
     * stayed closed and the client still works. */
    wd_http_endpoint_stats st;
    char u[URL_MAX];
    assert_int_equal(wd_http_endpoint_stats_get(f->h, url(u, "/"), &st), 0);
    assert_int_equal(st.breaker_state, BRK_CLOSED);
    assert_int_equal(st.breaker_failures, 0);
    get(f, "/ok", &res);
    assert_int_equal(res.r.err, 0);
}

static void bad_input_rejected(void **state) {
    fixture *f = *state;
    char err[256], u[URL_MAX];
    wdt_http_result res;
    memset(&res, 0, sizeof res);
    client(f, NULL);
    static const struct {
        const char *url, *want;
    } urls[] = {
        {"not a url", "invalid URL"},
        {"", "invalid URL"},
        {"ftp://127.0.0.1/file", "scheme 'ftp' is not http or https"},
        {"http://", "invalid URL"},
        {"http://us:hunter2@[::1/secret?token=tok123", "invalid URL"},
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        wd_http_req req = {.url = urls[i].url};
        err[0] = '\0';
        int rc = wd_http_request(f->h, &req, wdt_http_on_resp, &res, err, sizeof err);
        if (rc != WD_EINVAL || strstr(err, urls[i].want) == NULL)
            fail_msg("url #%zu: rc %d err '%s'", i, rc, err);
        assert_null(strstr(err, "hunter2"));
        assert_null(strstr(err, "tok123"));
    }
    wd_http_req null_url = {.url = NULL};
    assert_int_equal(wd_http_request(f->h, &null_url, wdt_http_on_resp, &res, err, sizeof err),
                     WD_EINVAL);

    const char *inject[] = {"X-Ok: 1", "X-Bad: a\r\nX-Injected: secret-value", NULL};
    wd_http_req hreq = {.url = url(u, "/ok"), .headers = inject};
    assert_int_equal(wd_http_request(f->h, &hreq, wdt_http_on_resp, &res, err, sizeof err),
                     WD_EINVAL);
    assert_non_null(strstr(err, "malformed header #1"));
    assert_null(strstr(err, "secret-value"));
    const char *noname[] = {": value", NULL};
    hreq.headers = noname;
    assert_int_equal(wd_http_request(f->h, &hreq, wdt_http_on_resp, &res, err, sizeof err),
                     WD_EINVAL);

    wd_http_req mreq = {.method = "get", .url = url(u, "/ok")};
    assert_int_equal(wd_http_request(f->h, &mreq, wdt_http_on_resp, &res, err, sizeof err),
                     WD_EINVAL);
    assert_non_null(strstr(err, "method"));
    wd_http_req breq = {.url = url(u, "/ok"), .body_len = 5};
    assert_int_equal(wd_http_request(f->h, &breq, wdt_http_on_resp, &res, err, sizeof err),
                     WD_EINVAL);
    assert_int_equal(wd_http_request(f->h, &breq, NULL, NULL, err, sizeof err), WD_EINVAL);

    /* None of the rejected requests ever called back. */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(res.calls, 0);

    wd_http_opts o;
    wd_http *h2 = NULL;
    wd_http_opts_defaults(&o);
    o.timeout_ms = 0;
    assert_int_equal(wd_http_new(&f->loop, &o, &h2, err, sizeof err), WD_EINVAL);
    assert_non_null(strstr(err, "timeouts"));
    wd_http_opts_defaults(&o);
    o.max_response_bytes = 0;
    assert_int_equal(wd_http_new(&f->loop, &o, &h2, err, sizeof err), WD_EINVAL);
    wd_http_opts_defaults(&o);
    o.user_agent = "x\r\nInjected: 1";
    assert_int_equal(wd_http_new(&f->loop, &o, &h2, err, sizeof err), WD_EINVAL);
    wd_http_opts_defaults(&o);
    o.throttle = true;
    o.throttle_cfg.burst = 0;
    assert_int_equal(wd_http_new(&f->loop, &o, &h2, err, sizeof err), WD_EINVAL);
    assert_non_null(strstr(err, "throttle"));
    assert_null(h2);
}

static void redact_url_cases(void **state) {
    (void)state;
    static const struct {
        const char *in, *out;
        int rc;
    } cases[] = {
        {"https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/services/***",
         0},
        {"http://user:pass@127.0.0.1:8080/ok?token=abc#frag", "http://127.0.0.1:8080/ok", 0},
        {"https://api.example.com/v1/orders?api_key=k", "https://api.example.com/v1/***", 0},
        {"https://example.com", "https://example.com", 0},
        {"https://example.com/", "https://example.com", 0},
        {"https://example.com/a/", "https://example.com/a", 0},
        {"https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/send",
         "https://api.telegram.org/***", 0},
        {"http://[::1]:9000/x/y", "http://[::1]:9000/x/***", 0},
        {"garbage://", "<invalid url>", WD_EINVAL},
        {"http://us:pw@[bad/secret", "<invalid url>", WD_EINVAL},
        {NULL, "<invalid url>", WD_EINVAL},
    };
    char out[WD_HTTP_REDACTED_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = wd_http_redact_url(cases[i].in, out, sizeof out);
        if (rc != cases[i].rc || strcmp(out, cases[i].out) != 0)
            fail_msg("case %zu: rc %d out '%s', want %d '%s'", i, rc, out, cases[i].rc,
                     cases[i].out);
    }
    char small[16];
    assert_int_equal(wd_http_redact_url("https://hooks.slack.com/services/T/B/X", small,
                                        sizeof small),
                     WD_ETOOBIG);
    assert_int_equal(strlen(small), sizeof small - 1);

    const char *u = "http://bob:pa55word@h:1/first/T000/SECRETPATH?token=tok42";
    assert_true(wd_http_text_leaks("... pa55word ...", u));
    assert_true(wd_http_text_leaks("token=tok42", u));
    assert_true(wd_http_text_leaks("/T000/SECRETPATH", u));
    assert_false(wd_http_text_leaks("Failed to connect to h port 1", u));

    char ep[WD_HTTP_ENDPOINT_MAX], err[128];
    assert_int_equal(wd_http_url_endpoint("HTTPS://Hooks.Slack.COM/services/x", ep, sizeof ep,
                                          err, sizeof err),
                     0);
    assert_string_equal(ep, "https://hooks.slack.com:443");
    assert_int_equal(wd_http_url_endpoint("http://u:p@127.0.0.1/x", ep, sizeof ep, err,
                                          sizeof err),
                     0);
    assert_string_equal(ep, "http://127.0.0.1:80");
}

/* Everything the client shows about a request with secrets in its URL and
 * headers: the error texts, every log line (stderr at debug level), the
 * metrics. None may contain a secret; the logs must show the redacted URL. */
static void secrets_never_shown(void **state) {
    fixture *f = *state;
    static const char *const secrets[] = {"hunter2", "alice", "tok123", "XXXXSECRET",
                                          "B000",    "bearer-secret-1", "apikey-secret-2"};
    char u[URL_MAX], logpath[] = "/tmp/http_test_log_XXXXXX", err[256];
    wd_http_opts o;
    wdt_http_result ok, bad, refused;
    f->metrics = wd_metrics_new();
    assert_non_null(f->metrics);
    wd_http_opts_defaults(&o);
    o.metrics = f->metrics;
    o.throttle = true;
    client(f, &o);

    int logfd = mkstemp(logpath);
    assert_true(logfd >= 0);
    unlink(logpath);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(logfd, STDERR_FILENO) >= 0);
    wd_log_set_level(WD_LOG_DEBUG);

    const char *hdrs[] = {"Authorization: Bearer bearer-secret-1", "X-Api-Key: apikey-secret-2",
                          NULL};
    snprintf(u, sizeof u, "http://alice:hunter2@127.0.0.1:%d/echo/T000/B000/XXXXSECRET?token=tok123",
             server.http_port);
    wd_http_req r1 = {.url = u, .headers = hdrs};
    run(f, &r1, &ok);
    snprintf(u, sizeof u,
             "http://alice:hunter2@127.0.0.1:%d/status/503/B000/XXXXSECRET?token=tok123",
             server.http_port);
    wd_http_req r2 = {.url = u, .headers = hdrs};
    run(f, &r2, &bad);
    int dead = wdt_free_tcp_port();
    snprintf(u, sizeof u, "http://alice:hunter2@127.0.0.1:%d/hook/B000/XXXXSECRET?token=tok123",
             dead);
    wd_http_req r3 = {.url = u, .headers = hdrs};
    run(f, &r3, &refused);
    /* A rejected request's error text, too. */
    snprintf(u, sizeof u, "http://alice:hunter2@127.0.0.1:%d/x?token=tok123", server.http_port);
    const char *inject[] = {"Authorization: Bearer bearer-secret-1\r\nX: y", NULL};
    wd_http_req r4 = {.url = u, .headers = inject};
    assert_int_equal(wd_http_request(f->h, &r4, wdt_http_on_resp, &ok, err, sizeof err),
                     WD_EINVAL);

    wd_log_set_level(WD_LOG_INFO);
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    char logs[16384];
    ssize_t n = pread(logfd, logs, sizeof logs - 1, 0);
    close(logfd);
    assert_true(n > 0);
    logs[n] = '\0';

    /* The secrets did reach the server (so they were really in play)... */
    assert_int_equal(ok.r.err, 0);
    assert_non_null(strstr(ok.body, "apikey-secret-2"));
    assert_non_null(strstr(ok.body, "bearer-secret-1"));
    assert_int_equal(bad.r.status, 503);
    assert_int_equal(refused.r.err, WD_EUNAVAIL);
    /* ...and the logs name the requests, redacted. */
    assert_non_null(strstr(logs, "/echo/***"));
    assert_non_null(strstr(logs, "/status/***"));
    assert_non_null(strstr(logs, "/hook/***"));

    char *prom = NULL;
    size_t plen = 0;
    assert_int_equal(wd_metrics_render_prometheus(f->metrics, &prom, &plen), 0);
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        const char *s = secrets[i];
        if (strstr(logs, s) || strstr(bad.r.error, s) || strstr(refused.r.error, s) ||
            strstr(err, s) || strstr(prom, s))
            fail_msg("secret '%s' shown\nlogs:\n%s\nerrors: %s | %s | %s", s, logs,
                     bad.r.error, refused.r.error, err);
    }
    free(prom);
}

static void metrics_recorded(void **state) {
    fixture *f = *state;
    wd_http_opts o;
    wdt_http_result res;
    char line[256], *prom = NULL, err[128];
    size_t plen;
    f->metrics = wd_metrics_new();
    assert_non_null(f->metrics);
    wd_http_opts_defaults(&o);
    o.metrics = f->metrics;
    o.throttle = true;
    client(f, &o);
    for (int i = 0; i < 3; i++)
        get(f, "/ok", &res);
    get(f, "/status/404", &res);
    get(f, "/status/503", &res);
    assert_int_equal(wd_metrics_render_prometheus(f->metrics, &prom, &plen), 0);
    const char *want[] = {
        "warden_http_requests_total{host=\"127.0.0.1:%d\",class=\"2xx\"} 3\n",
        "warden_http_requests_total{host=\"127.0.0.1:%d\",class=\"4xx\"} 1\n",
        "warden_http_requests_total{host=\"127.0.0.1:%d\",class=\"5xx\"} 1\n",
        "warden_http_errors_total{host=\"127.0.0.1:%d\",errclass=\"permanent\"} 1\n",
        "warden_http_errors_total{host=\"127.0.0.1:%d\",errclass=\"transient\"} 1\n",
        "warden_http_request_duration_seconds_count{host=\"127.0.0.1:%d\"} 5\n",
        "warden_http_breaker_state{host=\"127.0.0.1:%d\",state=\"closed\"} 1\n",
        "warden_http_breaker_state{host=\"127.0.0.1:%d\",state=\"open\"} 0\n",
        "warden_http_throttle_rate{host=\"127.0.0.1:%d\"} ",
        "warden_http_throttle_paused{host=\"127.0.0.1:%d\"} 0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        snprintf(line, sizeof line, want[i], server.http_port);
        if (strstr(prom, line) == NULL)
            fail_msg("missing '%s' in:\n%s", line, prom);
    }
    free(prom);
    /* One client per registry: a second one cannot register the names. */
    wd_http *h2 = NULL;
    assert_int_equal(wd_http_new(&f->loop, &o, &h2, err, sizeof err), WD_EEXIST);
    assert_null(h2);
}

typedef struct {
    wdt_http_result res[3];
    fixture *f;
    int again_rc;
} close_ctx;

static void on_resp_then_request(void *arg, const wd_http_resp *r) {
    close_ctx *c = arg;
    wdt_http_on_resp(&c->res[2], r);
    /* A callback run by the close may not start anything new. */
    wd_http_req req = {.url = "http://127.0.0.1:1/ok"};
    c->again_rc = wd_http_request(c->f->h, &req, wdt_http_on_resp, &c->res[0], NULL, 0);
}

static void close_fails_pending(void **state) {
    fixture *f = *state;
    wd_http_opts o;
    char u1[URL_MAX], u2[URL_MAX], u3[URL_MAX];
    close_ctx c;
    memset(&c, 0, sizeof c);
    c.f = f;
    wd_http_opts_defaults(&o);
    o.throttle = true;
    o.throttle_cfg.burst = 1;
    o.throttle_cfg.rate_max_per_s = 0.5; /* the third request waits in the queue */
    o.throttle_cfg.rate_min_per_s = 0.1;
    client(f, &o);
    wd_http_req a = {.url = url(u1, "/hang")};
    wd_http_req b = {.url = wdt_http_url(u2, URL_MAX, server.http_port, "/slow?ms=5000")};
    wd_http_req d = {.url = wdt_http_url(u3, URL_MAX, server.http_port, "/ok")};
    assert_int_equal(wd_http_request(f->h, &a, wdt_http_on_resp, &c.res[0], NULL, 0), 0);
    assert_int_equal(wd_http_request(f->h, &b, wdt_http_on_resp, &c.res[1], NULL, 0), 0);
    assert_int_equal(wd_http_request(f->h, &d, on_resp_then_request, &c, NULL, 0), 0);
    wd_http_endpoint_stats st;
    assert_int_equal(wd_http_endpoint_stats_get(f->h, u1, &st), 0);
    assert_int_equal(st.queued, 2);
    assert_int_equal(st.inflight, 1);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* let the first transfer start */
    assert_int_equal(wd_http_close(f->h, on_closed, f), 0);
    assert_int_equal(wd_http_close(f->h, on_closed, f), WD_ECLOSED);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c.res[i].calls, 1);
        assert_int_equal(c.res[i].r.err, WD_ECLOSED);
    }
    assert_int_equal(c.again_rc, WD_ECLOSED);
    f->h = NULL;
    assert_true(wdt_run_until(&f->loop, is_closed, f, WAIT_MS));
    assert_int_equal(f->closed, 1);
}

typedef struct {
    fixture *f;
    wdt_http_result ok, hang;
    int close_rc;
} reenter_ctx;

static void on_ok_close(void *arg, const wd_http_resp *r) {
    reenter_ctx *c = arg;
    wdt_http_on_resp(&c->ok, r);
    c->close_rc = wd_http_close(c->f->h, on_closed, c->f);
}

/* Closing the client from inside a response callback, with another request
 * still running: that one ends with WD_ECLOSED, the close completes. */
static void close_from_callback(void **state) {
    fixture *f = *state;
    reenter_ctx c;
    char u1[URL_MAX], u2[URL_MAX];
    memset(&c, 0, sizeof c);
    c.f = f;
    c.close_rc = 1;
    client(f, NULL);
    wd_http_req hang = {.url = url(u1, "/hang")};
    wd_http_req ok = {.url = url(u2, "/slow?ms=50")};
    assert_int_equal(wd_http_request(f->h, &hang, wdt_http_on_resp, &c.hang, NULL, 0), 0);
    assert_int_equal(wd_http_request(f->h, &ok, on_ok_close, &c, NULL, 0), 0);
    assert_true(wdt_run_until(&f->loop, is_closed, f, WAIT_MS));
    f->h = NULL;
    assert_int_equal(c.close_rc, 0);
    assert_int_equal(c.ok.calls, 1);
    assert_int_equal(c.ok.r.status, 200);
    assert_int_equal(c.hang.calls, 1);
    assert_int_equal(c.hang.r.err, WD_ECLOSED);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(get_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(post_put_headers_echoed, setup, teardown),
        cmocka_unit_test_setup_teardown(keepalive_reuses_one_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(response_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_input_rejected, setup, teardown),
        cmocka_unit_test(redact_url_cases),
        cmocka_unit_test_setup_teardown(secrets_never_shown, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(close_fails_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(close_from_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
