/* HTTP client on libcurl multi, driven by the loop through curl_uv.h.
 *
 * Every request goes to an endpoint, scheme://host:port of its URL. Each
 * endpoint gets, on first use, its own circuit breaker (breaker.h) and, when
 * opts.throttle is set, its own adaptive throttle (throttle.h):
 *
 *  - While the breaker is open, wd_http_request() fails at once with
 *    WD_EOPEN and does no I/O. Network errors, timeouts, 408, 429 and 5xx are
 *    breaker failures; other answers (4xx included) are successes: the
 *    dependency answered, the request was wrong.
 *  - With a throttle, requests beyond the allowed rate wait in a FIFO queue
 *    per endpoint, released by a timer (never a sleep). A 429 pauses the
 *    endpoint for its Retry-After (throttle_on_error(rate_limited)), other
 *    transient failures halve the rate, successes let it recover.
 *
 * Redirects are not followed: a 3xx comes back as the response.
 *
 * Keep-alive: one multi handle per client keeps libcurl's connection cache,
 * so sequential requests to one endpoint reuse one TCP connection.
 *
 * Secrets: URLs may hold tokens (a Slack webhook's path, ?token=,
 * user:pass@) and headers may hold keys (Authorization, X-Api-Key). Neither
 * is ever logged, put in an error text or a metric label: logs and errors
 * show wd_http_redact_url()'s form, labels the endpoint's host:port, and
 * headers are never shown at all.
 *
 * Metrics (when opts.metrics is set; one wd_http per registry, a second
 * registration fails with WD_EEXIST), label host = "host:port":
 *   warden_http_requests_total{host,class}   class 1xx..5xx, or "none" when
 *                                            no response came back
 *   warden_http_errors_total{host,errclass}  transient|permanent|critical
 *   warden_http_rejected_total{host}         refused by the open breaker
 *   warden_http_request_duration_seconds{host} histogram
 *   warden_http_breaker_state{host,state}    1 for the current state, one
 *                                            series per state
 *   warden_http_throttle_rate{host}          calls per second
 *   warden_http_throttle_paused{host}        1 while a Retry-After pause runs
 * Series beyond WD_METRIC_SERIES_MAX per metric are not recorded.
 *
 * Not thread-safe: a client belongs to one loop. libcurl global init: see
 * curl_uv.h (wd_curl_global_init). */
#ifndef WD_HTTP_H
#define WD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "breaker.h"
#include "metrics.h"
#include "retry.h"
#include "throttle.h"

#define WD_HTTP_NAME_MAX 63
#define WD_HTTP_UA_MAX 127
#define WD_HTTP_ENDPOINTS_MAX 32       /* distinct scheme://host:port per client */
#define WD_HTTP_ENDPOINT_MAX 300       /* "scheme://host:port" + NUL */
#define WD_HTTP_REDACTED_MAX 512       /* a redacted URL + NUL */
#define WD_HTTP_ERROR_MAX 512          /* an error text + NUL */
#define WD_HTTP_METHOD_MAX 15
#define WD_HTTP_HEADERS_MAX 64         /* request headers */
#define WD_HTTP_HEADER_MAX 8192        /* one request header line */
#define WD_HTTP_BODY_MAX (64u << 20)   /* request body bytes */
#define WD_HTTP_TIMEOUT_MAX_MS 3600000u
#define WD_HTTP_RESPONSE_MAX (256u << 20) /* bound of max_response_bytes */
#define WD_HTTP_RETRY_AFTER_MAX_MS 3600000u
#define WD_HTTP_REDACT_SEGMENT_MAX 32  /* a longer first path segment is hidden too */

typedef struct wd_http wd_http;

typedef struct {
    const char *name;            /* shown in logs; default "http" (copied) */
    uint32_t connect_timeout_ms; /* default 5000 */
    uint32_t timeout_ms;         /* whole request; default 30000 */
    size_t max_response_bytes;   /* body limit; default 1 MiB */
    const char *user_agent;      /* default "warden/VERSION" (copied) */
    uint64_t retry_after_max_ms; /* Retry-After is clamped to this; default 300000 */
    brk_config breaker;          /* per endpoint; default brk_config_defaults */
    bool throttle;               /* pace each endpoint; default false */
    throttle_config throttle_cfg;
    wd_metrics *metrics;         /* borrowed, may be NULL; outlives the client */
} wd_http_opts;

/* Fills the defaults above (throttle_cfg: 10/s max, 0.1/s min, +1/s per
 * clean 10 s, burst 5, but throttle off). */
void wd_http_opts_defaults(wd_http_opts *o);

typedef struct {
    const char *method;             /* NULL: GET, or POST when body_len > 0 */
    const char *url;                /* http:// or https:// only */
    const char *const *headers;     /* NULL-terminated "Name: value", may be NULL */
    const void *body;               /* copied; may be NULL when body_len is 0 */
    size_t body_len;
    uint32_t timeout_ms;            /* 0: the client's */
    uint32_t connect_timeout_ms;    /* 0: the client's */
} wd_http_req;

typedef struct {
    int err;              /* 0: a response with status < 400. Otherwise WD_ETRANSIENT /
                             WD_EPERMANENT (status >= 400), WD_ETIMEDOUT, WD_EUNAVAIL
                             (refused), WD_ETOOBIG (body over the limit), WD_EOPEN
                             (breaker opened while queued), WD_ECLOSED, WD_EIO */
    wd_errclass errclass; /* meaningful when err != 0 */
    long status;          /* 0 when no response came back */
    bool has_retry_after;
    uint64_t retry_after_ms; /* parsed Retry-After, clamped; 0 if absent */
    const char *body;     /* NUL-terminated; valid only during the callback */
    size_t body_len;
    const char *content_type; /* NULL if absent; valid only during the callback */
    uint64_t duration_ns; /* from start of the transfer (not the queueing) */
    char error[WD_HTTP_ERROR_MAX]; /* redacted text when err != 0, else "" */
} wd_http_resp;

/* Runs once per accepted request, from the loop. resp is valid only during
 * the call. It may start new requests or close the client. */
typedef void (*wd_http_cb)(void *arg, const wd_http_resp *resp);

/* The checks wd_http_new() and wd_http_request() make, for callers that
 * validate config early. Return 0 or WD_EINVAL with err (may be NULL) saying
 * what is wrong; a header is named by its index, never by its text. */
int wd_http_opts_check(const wd_http_opts *o, char *err, size_t errlen);
int wd_http_req_check(const wd_http_req *req, char *err, size_t errlen);

/* Creates a client on loop. opts may be NULL (defaults). Returns 0, or
 * WD_EINVAL (bad option: err says which), WD_EEXIST (metrics already
 * registered in opts.metrics), WD_ENOMEM, WD_EIO (libcurl). err may be NULL.
 * *out is owned by the caller until wd_http_close(). */
int wd_http_new(uv_loop_t *loop, const wd_http_opts *opts, wd_http **out, char *err,
                size_t errlen);

/* Starts (or queues behind the throttle) one request; every input is
 * copied. Returns 0 and cb runs exactly once later, or an error and cb never
 * runs: WD_EINVAL (bad URL, method, header or body: err says what without
 * repeating secrets), WD_EOPEN (the endpoint's breaker is open: no I/O),
 * WD_ETOOBIG (too many endpoints), WD_ECLOSED (closing), WD_ENOMEM, WD_EIO.
 * err may be NULL. */
int wd_http_request(wd_http *h, const wd_http_req *req, wd_http_cb cb, void *arg, char *err,
                    size_t errlen);

/* Closes the client: every queued and running request gets its callback
 * with WD_ECLOSED (no breaker or throttle effect), then handles close.
 * close_cb (may be NULL) runs from the loop once all are closed; h is freed
 * right after it returns. Returns 0, or WD_ECLOSED when already closing. */
int wd_http_close(wd_http *h, void (*close_cb)(void *arg), void *arg);

typedef struct {
    char endpoint[WD_HTTP_ENDPOINT_MAX]; /* scheme://host:port */
    brk_state breaker_state;
    uint64_t breaker_successes, breaker_failures, breaker_rejected, breaker_opens;
    uint64_t breaker_retry_in_ns;        /* until a half-open trial; 0 unless open */
    bool throttled;
    throttle_stats throttle;             /* zero unless throttled */
    uint64_t paused_for_ns;              /* left of a Retry-After pause; 0 if none */
    uint32_t queued;                     /* waiting for the throttle */
    uint32_t inflight;                   /* handed to curl */
    uint64_t requests;                   /* completed, rejections excluded */
} wd_http_endpoint_stats;

/* Stats of the endpoint of url. Returns 0, WD_EINVAL (bad URL) or
 * WD_ENOTFOUND (no request went there yet). */
int wd_http_endpoint_stats_get(wd_http *h, const char *url, wd_http_endpoint_stats *out);

/* The endpoint's breaker, for a manual reset or force-open; NULL if the
 * endpoint was never used. Owned by the client. */
brk_breaker *wd_http_breaker(wd_http *h, const char *url);

/* What replaces a hidden part of a path in a redacted URL. */
#define WD_HTTP_REDACT_MARK "/***"

/* Writes url's redacted form into out: scheme://host[:port] and the first
 * path segment, the rest of the path replaced by WD_HTTP_REDACT_MARK;
 * userinfo, query and fragment dropped. A first segment longer than
 * WD_HTTP_REDACT_SEGMENT_MAX is taken for a token and replaced too. So
 * https://hooks.slack.com/services/T000/B000/XXXX is shown as
 * "https://hooks.slack.com/services" WD_HTTP_REDACT_MARK.
 * Returns 0; WD_EINVAL when url does not parse (out is then "<invalid url>",
 * never the input); WD_ETOOBIG when it did not fit (out is cut, still
 * NUL-terminated). out may be NULL only when outlen is 0. */
int wd_http_redact_url(const char *url, char *out, size_t outlen);

/* Writes url's endpoint, "scheme://host:port" (the default port filled in,
 * the host lower-cased), into out. Returns 0, WD_EINVAL (does not parse, or
 * not http/https: err says why without repeating the URL) or WD_ETOOBIG.
 * err may be NULL. */
int wd_http_url_endpoint(const char *url, char *out, size_t outlen, char *err, size_t errlen);

/* True when text contains any secret part of url (user, password, query,
 * fragment, the path past its first segment, or a long first segment).
 * Used to keep libcurl's error texts out of logs when they echo one. */
bool wd_http_text_leaks(const char *text, const char *url);

#endif
