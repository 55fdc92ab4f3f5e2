/* See http.h. Requests live in http_call structs, each on exactly one list
 * of its endpoint: the throttle's FIFO queue or the running list (handed to
 * curl). Every path out of those lists goes through call_finish(), which
 * runs the user's callback once and frees the call. */
#include "http.h"
#include "clock.h"
#include "curl_uv.h"
#include "log.h"
#include "wd_error.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_HOST_LABEL_MAX WD_METRIC_LABEL_VALUE_MAX
#define HTTP_BODY_CHUNK 4096u /* first body allocation */
#define HTTP_CLASSES 6        /* "none", 1xx .. 5xx */

typedef struct http_ep http_ep;

typedef struct http_call {
    wd_curl_xfer xfer;
    wd_http *h;
    http_ep *ep;
    struct http_call *prev, *next; /* in ep->queue or ep->running */
    wd_http_cb cb;
    void *arg;
    struct curl_slist *headers;
    char *url; /* kept to check curl's error text for leaks */
    char method[WD_HTTP_METHOD_MAX + 1];
    char redacted[WD_HTTP_REDACTED_MAX];
    char *body; /* response */
    size_t body_len, body_cap, max_bytes;
    bool too_big;
    uint64_t gen, start_ns;
    char errbuf[CURL_ERROR_SIZE];
} http_call;

typedef struct {
    http_call *head, *tail;
    uint32_t n;
} call_list;

/* One scheme://host:port: its breaker, throttle, queue and metric series. */
struct http_ep {
    wd_http *h;
    char key[WD_HTTP_ENDPOINT_MAX];
    char host[HTTP_HOST_LABEL_MAX + 1]; /* "host:port", the metric label */
    brk_breaker brk;
    bool throttled;
    throttle thr;
    uv_timer_t timer; /* releases the queue when the throttle allows */
    call_list queue, running;
    uint64_t requests;
    wd_series *s_req[HTTP_CLASSES], *s_err[3], *s_rejected, *s_duration, *s_brk[5], *s_rate,
        *s_paused;
};

/* The client: options, the curl multi on the loop, endpoints, metrics. */
struct wd_http {
    uv_loop_t *loop;
    wd_curl_uv *cu;
    wd_http_opts opts;
    char name[WD_HTTP_NAME_MAX + 1];
    char ua[WD_HTTP_UA_MAX + 1];
    http_ep *eps[WD_HTTP_ENDPOINTS_MAX];
    size_t n_eps;
    wd_metric *m_req, *m_err, *m_rejected, *m_duration, *m_brk, *m_rate, *m_paused;
    bool closing;
    unsigned closing_handles;
    void (*close_cb)(void *arg);
    void *close_arg;
};

/* Bounded formatting where cutting the text is the intended outcome. */
static void bfmt(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void bfmt(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    if (out == NULL || cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(out, cap, fmt, ap);
    va_end(ap);
}

#define set_err(err, errlen, fmt, detail) bfmt((err), (errlen), fmt, detail)

/* ---- lists ---- */

static void list_push(call_list *l, http_call *c) {
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    l->n++;
}

static void list_remove(call_list *l, http_call *c) {
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
    l->n--;
}

/* ---- metrics ---- */

static const char *const class_names[HTTP_CLASSES] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const errclass_names[3] = {"transient", "permanent", "critical"};
static const double duration_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,    2.5,   5,    10,  30};

static int metrics_register(wd_http *h, char *err, size_t errlen) {
    wd_metrics *r = h->opts.metrics;
    static const char *const l_host[] = {"host", NULL};
    static const char *const l_class[] = {"host", "class", NULL};
    static const char *const l_errclass[] = {"host", "errclass", NULL};
    static const char *const l_state[] = {"host", "state", NULL};
    if (r == NULL)
        return 0;
    h->m_req = wd_metric_counter(r, "warden_http_requests_total",
                                 "HTTP requests completed, by status class", l_class);
    h->m_err = wd_metric_counter(r, "warden_http_errors_total",
                                 "HTTP requests that failed, by error class", l_errclass);
    h->m_rejected = wd_metric_counter(r, "warden_http_rejected_total",
                                      "HTTP requests refused by an open breaker", l_host);
    h->m_duration = wd_metric_histogram(r, "warden_http_request_duration_seconds",
                                        "HTTP request latency", l_host, duration_bounds,
                                        sizeof duration_bounds / sizeof duration_bounds[0]);
    h->m_brk = wd_metric_gauge(r, "warden_http_breaker_state",
                               "1 for the endpoint breaker's current state", l_state);
    h->m_rate = wd_metric_gauge(r, "warden_http_throttle_rate",
                                "Allowed HTTP calls per second", l_host);
    h->m_paused = wd_metric_gauge(r, "warden_http_throttle_paused",
                                  "1 while a Retry-After pause runs", l_host);
    if (!h->m_req || !h->m_err || !h->m_rejected || !h->m_duration || !h->m_brk || !h->m_rate ||
        !h->m_paused) {
        int rc = wd_metrics_error(r);
        set_err(err, errlen, "cannot register HTTP metrics: %s", wd_strerror(rc));
        return rc != 0 ? rc : WD_EINVAL;
    }
    return 0;
}

static wd_series *series2(wd_metric *m, const char *host, const char *second) {
    if (m == NULL)
        return NULL;
    const char *v[] = {host, second, NULL};
    return wd_metric_series(m, v);
}

static void ep_metrics_init(http_ep *ep) {
    wd_http *h = ep->h;
    if (h->opts.metrics == NULL)
        return;
    /* Series that always exist for an endpoint; the per-class ones are made
     * on first use, to save the bounded series count. */
    ep->s_rejected = series2(h->m_rejected, ep->host, NULL);
    ep->s_duration = series2(h->m_duration, ep->host, NULL);
    for (int s = 0; s < 5; s++)
        ep->s_brk[s] = series2(h->m_brk, ep->host, brk_state_name((brk_state)s));
    if (ep->throttled) {
        ep->s_rate = series2(h->m_rate, ep->host, NULL);
        ep->s_paused = series2(h->m_paused, ep->host, NULL);
    }
}

static void ep_metrics_breaker(http_ep *ep) {
    for (int s = 0; s < 5; s++)
        wd_gauge_set(ep->s_brk[s], ep->brk.state == (brk_state)s ? 1 : 0);
}

static void ep_metrics_throttle(http_ep *ep, uint64_t now) {
    if (!ep->throttled)
        return;
    wd_gauge_set(ep->s_rate, ep->thr.rate);
    wd_gauge_set(ep->s_paused, ep->thr.paused_until_ns > now ? 1 : 0);
}

static int status_class(long status) {
    return status >= 100 && status < 600 ? (int)(status / 100) : 0;
}

static void ep_metrics_result(http_ep *ep, const wd_http_resp *r) {
    wd_http *h = ep->h;
    if (h->opts.metrics == NULL)
        return;
    int k = status_class(r->status);
    if (ep->s_req[k] == NULL)
        ep->s_req[k] = series2(h->m_req, ep->host, class_names[k]);
    wd_counter_add(ep->s_req[k], 1);
    if (r->err != 0) {
        int e = (int)r->errclass;
        if (ep->s_err[e] == NULL)
            ep->s_err[e] = series2(h->m_err, ep->host, errclass_names[e]);
        wd_counter_add(ep->s_err[e], 1);
    }
    wd_hist_observe(ep->s_duration, (double)r->duration_ns / 1e9);
}

/* ---- endpoints ---- */

static void on_brk_transition(void *arg, brk_breaker *b, const brk_transition *t) {
    http_ep *ep = arg;
    (void)b;
    wd_log(t->to == BRK_CLOSED ? WD_LOG_INFO : WD_LOG_WARN,
           "http[%s] breaker %s: %s -> %s (%s)", ep->h->name, ep->key, brk_state_name(t->from),
           brk_state_name(t->to), t->reason);
    ep_metrics_breaker(ep);
}

static http_ep *ep_find(wd_http *h, const char *key) {
    for (size_t i = 0; i < h->n_eps; i++)
        if (strcmp(h->eps[i]->key, key) == 0)
            return h->eps[i];
    return NULL;
}

static void ep_pump(http_ep *ep);

static void on_ep_timer(uv_timer_t *t) { ep_pump(t->data); }

static int ep_get(wd_http *h, const char *key, http_ep **out, char *err, size_t errlen) {
    http_ep *ep = ep_find(h, key);
    if (ep != NULL) {
        *out = ep;
        return 0;
    }
    if (h->n_eps == WD_HTTP_ENDPOINTS_MAX) {
        set_err(err, errlen, "too many HTTP endpoints (%s)", "WD_HTTP_ENDPOINTS_MAX");
        return WD_ETOOBIG;
    }
    ep = calloc(1, sizeof *ep);
    if (ep == NULL)
        return WD_ENOMEM;
    ep->h = h;
    bfmt(ep->key, sizeof ep->key, "%s", key);
    const char *hp = strstr(key, "://");
    bfmt(ep->host, sizeof ep->host, "%s", hp ? hp + 3 : key);
    uint64_t now = wd_clock_mono_ns();
    brk_init(&ep->brk, ep->host, &h->opts.breaker, now ^ (uint64_t)(uintptr_t)ep);
    brk_set_callback(&ep->brk, on_brk_transition, ep);
    ep->throttled = h->opts.throttle;
    if (ep->throttled)
        throttle_init(&ep->thr, &h->opts.throttle_cfg, now); /* checked in wd_http_new */
    uv_timer_init(h->loop, &ep->timer);
    ep->timer.data = ep;
    ep_metrics_init(ep);
    ep_metrics_breaker(ep);
    ep_metrics_throttle(ep, now);
    h->eps[h->n_eps++] = ep;
    *out = ep;
    return 0;
}

/* Peeks without taking a half-open permit: would brk_allow refuse now? */
static bool breaker_rejects(const brk_breaker *b, uint64_t now) {
    return b->state == BRK_FORCED_OPEN || (b->state == BRK_OPEN && brk_retry_in(b, now) > 0);
}

/* ---- calls ---- */

static void call_free(http_call *c) {
    if (c->xfer.easy != NULL)
        curl_easy_cleanup(c->xfer.easy);
    curl_slist_free_all(c->headers);
    free(c->url);
    free(c->body);
    free(c);
}

/* Runs the user's callback once, then frees the call. */
static void call_finish(http_call *c, wd_http_resp *r) {
    r->body = c->body != NULL ? c->body : "";
    r->body_len = c->body_len;
    c->cb(c->arg, r);
    call_free(c);
}

/* Ends a call that curl never ran or that we cancelled. */
static void call_fail(http_call *c, int err) {
    wd_http_resp r;
    memset(&r, 0, sizeof r);
    r.err = err;
    r.errclass = WD_ERRCLASS_TRANSIENT;
    bfmt(r.error, sizeof r.error, "%s %s: %s", c->method, c->redacted,
             err == WD_EOPEN ? "circuit breaker open" : wd_strerror(err));
    if (err == WD_EOPEN) {
        wd_counter_add(c->ep->s_rejected, 1);
    }
    call_finish(c, &r);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp) {
    http_call *c = userp;
    size_t n = size * nmemb;
    if (n > c->max_bytes - c->body_len) {
        c->too_big = true;
        return 0; /* != n: curl aborts with CURLE_WRITE_ERROR */
    }
    if (c->body_len + n + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap * 2 : HTTP_BODY_CHUNK;
        if (cap < c->body_len + n + 1)
            cap = c->body_len + n + 1;
        if (cap > c->max_bytes + 1)
            cap = c->max_bytes + 1;
        char *nb = realloc(c->body, cap);
        if (nb == NULL)
            return 0;
        c->body = nb;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, data, n);
    c->body_len += n;
    c->body[c->body_len] = '\0';
    return n;
}

static void on_done(wd_curl_xfer *x, CURLcode rc);

static void call_retry_after(http_call *c, wd_http_resp *r) {
    struct curl_header *hd = NULL;
    if (curl_easy_header(c->xfer.easy, "Retry-After", 0, CURLH_HEADER, -1, &hd) != CURLHE_OK)
        return;
    uint64_t ms = 0, now_s = wd_clock_real_ns() / WD_NS_PER_SEC;
    if (wd_retry_after_parse(hd->value, now_s, c->h->opts.retry_after_max_ms, &ms) == 0) {
        r->has_retry_after = true;
        r->retry_after_ms = ms;
    }
}

/* Maps curl's result and the status into err, errclass and error text. */
static void call_classify(http_call *c, CURLcode rc, wd_http_resp *r) {
    curl_easy_getinfo(c->xfer.easy, CURLINFO_RESPONSE_CODE, &r->status);
    char *ct = NULL;
    if (curl_easy_getinfo(c->xfer.easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK)
        r->content_type = ct;
    call_retry_after(c, r);
    if (c->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        r->err = WD_ETOOBIG;
        r->errclass = WD_ERRCLASS_PERMANENT;
        bfmt(r->error, sizeof r->error, "%s %s: response body over the %zu byte limit",
                 c->method, c->redacted, c->max_bytes);
        return;
    }
    if (rc == CURLE_OK) {
        if (r->status >= 400) {
            r->errclass = wd_classify_http(r->status, 0);
            r->err = r->errclass == WD_ERRCLASS_TRANSIENT ? WD_ETRANSIENT : WD_EPERMANENT;
            bfmt(r->error, sizeof r->error, "%s %s: HTTP %ld", c->method, c->redacted,
                     r->status);
        }
        return;
    }
    r->errclass = wd_classify_http(0, (int)rc);
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        r->err = WD_ETIMEDOUT;
        break;
    case CURLE_COULDNT_CONNECT:
        r->err = WD_EUNAVAIL;
        break;
    case CURLE_OUT_OF_MEMORY:
        r->err = WD_ENOMEM;
        break;
    default:
        r->err = WD_EIO;
    }
    /* curl's own text is the most useful ("Connection timed out after 1001
     * milliseconds") but is shown only if it repeats no secret of the URL. */
    const char *detail = c->errbuf[0] != '\0' && !wd_http_text_leaks(c->errbuf, c->url)
                             ? c->errbuf
                             : curl_easy_strerror(rc);
    bfmt(r->error, sizeof r->error, "%s %s: %s", c->method, c->redacted, detail);
}

static void on_done(wd_curl_xfer *x, CURLcode rc) {
    http_call *c = x->data;
    http_ep *ep = c->ep;
    wd_http *h = c->h;
    uint64_t now = wd_clock_mono_ns();
    wd_http_resp r;
    memset(&r, 0, sizeof r);
    r.duration_ns = now - c->start_ns;
    list_remove(&ep->running, c);
    ep->requests++;
    call_classify(c, rc, &r);
    /* The dependency failed only if retrying could help: network errors,
     * timeouts, 408, 429, 5xx. A 404 or an oversized body is our problem. */
    bool dep_failed = r.err != 0 && r.errclass == WD_ERRCLASS_TRANSIENT;
    char reason[64];
    if (r.status > 0 && rc == CURLE_OK)
        bfmt(reason, sizeof reason, "HTTP %ld", r.status);
    else
        bfmt(reason, sizeof reason, "%s", curl_easy_strerror(rc));
    brk_record_call(&ep->brk, c->gen, now, r.duration_ns, !dep_failed, reason);
    if (ep->throttled) {
        if (r.status == 429) {
            throttle_on_error(&ep->thr, now, true, r.retry_after_ms);
            /* Wake at the end of the pause even with nothing queued, so the
             * paused gauge drops back to 0 on time. */
            if (ep->queue.head == NULL && r.retry_after_ms > 0)
                uv_timer_start(&ep->timer, on_ep_timer, r.retry_after_ms + 1, 0);
        }
        else if (dep_failed)
            throttle_on_error(&ep->thr, now, false, 0);
        else
            throttle_on_success(&ep->thr, now);
        ep_metrics_throttle(ep, now);
    }
    ep_metrics_result(ep, &r);
    unsigned long long ms = (unsigned long long)(r.duration_ns / WD_NS_PER_MS);
    if (r.err != 0)
        wd_log(WD_LOG_WARN, "http[%s] %s (%s) in %llu ms", h->name, r.error,
               errclass_names[r.errclass], ms);
    else
        wd_log(WD_LOG_DEBUG, "http[%s] %s %s -> %ld in %llu ms", h->name, c->method,
               c->redacted, r.status, ms);
    call_finish(c, &r);
    if (!h->closing)
        ep_pump(ep);
}

/* Takes the breaker permit and hands the call to curl. */
static int call_start(http_call *c, uint64_t now) {
    http_ep *ep = c->ep;
    int rc = brk_allow(&ep->brk, now, &c->gen);
    if (rc != 0)
        return rc;
    c->start_ns = now;
    rc = wd_curl_uv_add(c->h->cu, &c->xfer);
    if (rc != 0) {
        brk_release(&ep->brk, c->gen);
        return rc;
    }
    list_push(&ep->running, c);
    return 0;
}

/* Starts queued calls as the breaker and throttle allow; re-arms the timer
 * for the throttle's wait. Callbacks run from here may close the client. */
static void ep_pump(http_ep *ep) {
    wd_http *h = ep->h;
    ep_metrics_throttle(ep, wd_clock_mono_ns());
    while (ep->queue.head != NULL && !h->closing) {
        uint64_t now = wd_clock_mono_ns(), wait = 0;
        if (breaker_rejects(&ep->brk, now)) {
            http_call *c = ep->queue.head;
            list_remove(&ep->queue, c);
            brk_allow(&ep->brk, now, &c->gen); /* counts the rejection */
            call_fail(c, WD_EOPEN);
            continue;
        }
        if (ep->throttled && throttle_acquire(&ep->thr, now, &wait) != 0) {
            ep_metrics_throttle(ep, now);
            uv_timer_start(&ep->timer, on_ep_timer, (wait + WD_NS_PER_MS - 1) / WD_NS_PER_MS, 0);
            return;
        }
        http_call *c = ep->queue.head;
        list_remove(&ep->queue, c);
        int rc = call_start(c, now);
        if (rc != 0)
            call_fail(c, rc);
    }
}

/* ---- building a request ---- */

static int call_setup(http_call *c, const wd_http_req *req) {
    wd_http *h = c->h;
    CURL *e = curl_easy_init();
    if (e == NULL)
        return WD_ENOMEM;
    c->xfer.easy = e;
    c->xfer.done = on_done;
    c->xfer.data = c;
    c->max_bytes = h->opts.max_response_bytes;
    uint32_t t = req->timeout_ms ? req->timeout_ms : h->opts.timeout_ms;
    uint32_t ct = req->connect_timeout_ms ? req->connect_timeout_ms : h->opts.connect_timeout_ms;
    /* Expect: 100-continue would stall every large POST by a second against
     * servers that do not answer it; we send the body straight away. */
    struct curl_slist *l = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; l != NULL && req->headers != NULL && req->headers[i] != NULL; i++) {
        struct curl_slist *n = curl_slist_append(l, req->headers[i]);
        if (n == NULL) {
            curl_slist_free_all(l);
            l = NULL;
        } else {
            l = n;
        }
    }
    if (l == NULL)
        return WD_ENOMEM;
    c->headers = l;
    bool ok = curl_easy_setopt(e, CURLOPT_URL, req->url) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ct) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEDATA, c) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_bytes) ==
                  CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_USERAGENT, h->ua) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
    /* curl picks GET, POST (when given a body) or HEAD (NOBODY) itself;
     * any other method, or a GET with a body, is named explicitly. */
    bool is_post = strcmp(c->method, "POST") == 0, is_head = strcmp(c->method, "HEAD") == 0;
    bool with_body = req->body_len > 0 || is_post;
    if (ok && is_head)
        ok = curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK;
    if (ok && with_body)
        ok = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len) ==
                 CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body_len ? req->body : "") ==
                 CURLE_OK;
    if (ok && !is_post && !is_head && (with_body || strcmp(c->method, "GET") != 0))
        ok = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method) == CURLE_OK;
    return ok ? 0 : WD_ENOMEM;
}

int wd_http_request(wd_http *h, const wd_http_req *req, wd_http_cb cb, void *arg, char *err,
                    size_t errlen) {
    char key[WD_HTTP_ENDPOINT_MAX];
    http_ep *ep;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (h == NULL || req == NULL || cb == NULL) {
        set_err(err, errlen, "%s", "client, request and callback are required");
        return WD_EINVAL;
    }
    if (h->closing) {
        set_err(err, errlen, "%s", "HTTP client is closing");
        return WD_ECLOSED;
    }
    int rc = wd_http_url_endpoint(req->url, key, sizeof key, err, errlen);
    if (rc == 0)
        rc = wd_http_req_check(req, err, errlen);
    if (rc == 0)
        rc = ep_get(h, key, &ep, err, errlen);
    if (rc != 0)
        return rc;
    uint64_t now = wd_clock_mono_ns();
    if (breaker_rejects(&ep->brk, now)) {
        uint64_t gen;
        brk_allow(&ep->brk, now, &gen); /* counts the rejection */
        wd_counter_add(ep->s_rejected, 1);
        char what[WD_HTTP_ENDPOINT_MAX + 64];
        bfmt(what, sizeof what, "%s, retry in %llu ms", ep->key,
                 (unsigned long long)(brk_retry_in(&ep->brk, now) / WD_NS_PER_MS));
        set_err(err, errlen, "circuit breaker open for %s", what);
        return WD_EOPEN;
    }
    http_call *c = calloc(1, sizeof *c);
    if (c == NULL)
        return WD_ENOMEM;
    c->h = h;
    c->ep = ep;
    c->cb = cb;
    c->arg = arg;
    bfmt(c->method, sizeof c->method, "%s",
             req->method ? req->method : req->body_len > 0 ? "POST" : "GET");
    wd_http_redact_url(req->url, c->redacted, sizeof c->redacted);
    c->url = strdup(req->url);
    rc = c->url == NULL ? WD_ENOMEM : call_setup(c, req);
    if (rc != 0) {
        set_err(err, errlen, "%s", wd_strerror(rc));
        call_free(c);
        return rc;
    }
    uint64_t wait = 0;
    if (ep->queue.head != NULL) {
        list_push(&ep->queue, c); /* FIFO: the timer is already armed */
        return 0;
    }
    if (ep->throttled && throttle_acquire(&ep->thr, now, &wait) != 0) {
        list_push(&ep->queue, c);
        ep_metrics_throttle(ep, now);
        uv_timer_start(&ep->timer, on_ep_timer, (wait + WD_NS_PER_MS - 1) / WD_NS_PER_MS, 0);
        return 0;
    }
    rc = call_start(c, now);
    if (rc != 0) {
        if (rc == WD_EOPEN) {
            wd_counter_add(ep->s_rejected, 1);
            set_err(err, errlen, "circuit breaker open for %s (half-open, trials in use)",
                    ep->key);
        } else {
            set_err(err, errlen, "%s", wd_strerror(rc));
        }
        call_free(c);
        return rc;
    }
    return 0;
}

/* ---- create and close ---- */

int wd_http_new(uv_loop_t *loop, const wd_http_opts *opts, wd_http **out, char *err,
                size_t errlen) {
    wd_http_opts defaults;
    if (loop == NULL || out == NULL) {
        set_err(err, errlen, "%s", "loop and out are required");
        return WD_EINVAL;
    }
    if (opts == NULL) {
        wd_http_opts_defaults(&defaults);
        opts = &defaults;
    }
    int rc = wd_http_opts_check(opts, err, errlen);
    if (rc != 0)
        return rc;
    wd_http *h = calloc(1, sizeof *h);
    if (h == NULL)
        return WD_ENOMEM;
    h->loop = loop;
    h->opts = *opts;
    bfmt(h->name, sizeof h->name, "%s", opts->name);
    bfmt(h->ua, sizeof h->ua, "%s", opts->user_agent);
    h->opts.name = h->name;
    h->opts.user_agent = h->ua;
    rc = metrics_register(h, err, errlen);
    if (rc == 0) {
        rc = wd_curl_uv_new(loop, &h->cu);
        if (rc != 0)
            set_err(err, errlen, "cannot start libcurl: %s", wd_strerror(rc));
    }
    if (rc != 0) {
        free(h);
        return rc;
    }
    *out = h;
    return 0;
}

static void close_step(wd_http *h) {
    if (--h->closing_handles > 0)
        return;
    void (*cb)(void *) = h->close_cb;
    void *arg = h->close_arg;
    free(h);
    if (cb != NULL)
        cb(arg);
}

static void ep_closed(uv_handle_t *t) {
    http_ep *ep = t->data;
    wd_http *h = ep->h;
    free(ep);
    close_step(h);
}

static void cu_closed(void *arg) { close_step(arg); }

int wd_http_close(wd_http *h, void (*close_cb)(void *arg), void *arg) {
    if (h == NULL)
        return WD_EINVAL;
    if (h->closing)
        return WD_ECLOSED;
    h->closing = true;
    h->close_cb = close_cb;
    h->close_arg = arg;
    /* Cancelled calls are neither breaker failures nor successes: give their
     * half-open permits back. Callbacks may run wd_http_request (refused)
     * but cannot add calls to these lists. */
    for (size_t i = 0; i < h->n_eps; i++) {
        http_ep *ep = h->eps[i];
        while (ep->queue.head != NULL) {
            http_call *c = ep->queue.head;
            list_remove(&ep->queue, c);
            call_fail(c, WD_ECLOSED);
        }
        while (ep->running.head != NULL) {
            http_call *c = ep->running.head;
            list_remove(&ep->running, c);
            wd_curl_uv_remove(h->cu, &c->xfer);
            brk_release(&ep->brk, c->gen);
            call_fail(c, WD_ECLOSED);
        }
    }
    h->closing_handles = (unsigned)h->n_eps + 1;
    for (size_t i = 0; i < h->n_eps; i++) {
        uv_timer_stop(&h->eps[i]->timer);
        uv_close((uv_handle_t *)&h->eps[i]->timer, ep_closed);
    }
    wd_curl_uv_close(h->cu, cu_closed, h);
    return 0;
}

/* ---- inspection ---- */

static http_ep *ep_of_url(wd_http *h, const char *url, int *rc) {
    char key[WD_HTTP_ENDPOINT_MAX];
    *rc = h == NULL ? WD_EINVAL : wd_http_url_endpoint(url, key, sizeof key, NULL, 0);
    if (*rc != 0)
        return NULL;
    http_ep *ep = ep_find(h, key);
    if (ep == NULL)
        *rc = WD_ENOTFOUND;
    return ep;
}

int wd_http_endpoint_stats_get(wd_http *h, const char *url, wd_http_endpoint_stats *out) {
    int rc;
    if (out == NULL)
        return WD_EINVAL;
    http_ep *ep = ep_of_url(h, url, &rc);
    if (ep == NULL)
        return rc;
    uint64_t now = wd_clock_mono_ns();
    memset(out, 0, sizeof *out);
    bfmt(out->endpoint, sizeof out->endpoint, "%s", ep->key);
    out->breaker_state = ep->brk.state;
    out->breaker_successes = ep->brk.total_successes;
    out->breaker_failures = ep->brk.total_failures;
    out->breaker_rejected = ep->brk.total_rejected;
    out->breaker_opens = ep->brk.total_opens;
    out->breaker_retry_in_ns = brk_retry_in(&ep->brk, now);
    out->throttled = ep->throttled;
    if (ep->throttled) {
        throttle_stats_get(&ep->thr, &out->throttle);
        if (ep->thr.paused_until_ns > now)
            out->paused_for_ns = ep->thr.paused_until_ns - now;
    }
    out->queued = ep->queue.n;
    out->inflight = ep->running.n;
    out->requests = ep->requests;
    return 0;
}

brk_breaker *wd_http_breaker(wd_http *h, const char *url) {
    int rc;
    http_ep *ep = ep_of_url(h, url, &rc);
    return ep != NULL ? &ep->brk : NULL;
}
