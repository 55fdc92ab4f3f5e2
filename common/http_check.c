/* Checks of the HTTP client's inputs, apart from the client so that config
 * loading can validate a webhook's options before anything starts: options
 * and requests are refused with a clear error, and never by echoing a
 * header's text (it may hold a key). */
#include "http.h"
#include "clock.h"
#include "wd_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifndef WARDEN_VERSION
#define WARDEN_VERSION "0"
#endif

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap); /* a cut message is still a message */
    va_end(ap);
}

void wd_http_opts_defaults(wd_http_opts *o) {
    memset(o, 0, sizeof *o);
    o->name = "http";
    o->connect_timeout_ms = 5000;
    o->timeout_ms = 30000;
    o->max_response_bytes = 1u << 20;
    o->user_agent = "warden/" WARDEN_VERSION;
    o->retry_after_max_ms = 300000;
    brk_config_defaults(&o->breaker);
    o->throttle = false;
    o->throttle_cfg = (throttle_config){.rate_max_per_s = 10,
                                        .rate_min_per_s = 0.1,
                                        .increase_step_per_s = 1,
                                        .clean_interval_ns = 10 * WD_NS_PER_SEC,
                                        .burst = 5};
}

static bool valid_method(const char *m) {
    size_t n = strlen(m);
    if (n == 0 || n > WD_HTTP_METHOD_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (m[i] < 'A' || m[i] > 'Z')
            return false;
    return true;
}

/* "Name: value" with a token name and no CR, LF or NUL tricks. */
static bool valid_header(const char *hd) {
    size_t n = strnlen(hd, WD_HTTP_HEADER_MAX + 1);
    const char *colon = memchr(hd, ':', n);
    if (n > WD_HTTP_HEADER_MAX || colon == NULL || colon == hd)
        return false;
    for (const char *p = hd; p < colon; p++)
        if (*p <= ' ' || *p >= 127 || strchr("()<>@,;\\\"/[]?={}", *p) != NULL)
            return false;
    return strpbrk(hd, "\r\n") == NULL;
}

int wd_http_req_check(const wd_http_req *req, char *err, size_t errlen) {
    if (req->method != NULL && !valid_method(req->method)) {
        set_err(err, errlen, "invalid HTTP method%s", " (want 1-15 upper-case letters)");
        return WD_EINVAL;
    }
    if (req->body_len > 0 && req->body == NULL) {
        set_err(err, errlen, "%s", "body is NULL but body_len is not 0");
        return WD_EINVAL;
    }
    if (req->body_len > WD_HTTP_BODY_MAX) {
        set_err(err, errlen, "%s", "request body over WD_HTTP_BODY_MAX");
        return WD_EINVAL;
    }
    if (req->timeout_ms > WD_HTTP_TIMEOUT_MAX_MS ||
        req->connect_timeout_ms > WD_HTTP_TIMEOUT_MAX_MS) {
        set_err(err, errlen, "%s", "timeout over WD_HTTP_TIMEOUT_MAX_MS");
        return WD_EINVAL;
    }
    size_t i = 0;
    for (; req->headers != NULL && req->headers[i] != NULL; i++) {
        if (i == WD_HTTP_HEADERS_MAX) {
            set_err(err, errlen, "%s", "more than WD_HTTP_HEADERS_MAX headers");
            return WD_EINVAL;
        }
        if (!valid_header(req->headers[i])) {
            /* Name the header by position: its text may be a secret. */
            char what[32];
            snprintf(what, sizeof what, "%zu", i);
            set_err(err, errlen, "malformed header #%s (want 'Name: value', no CR/LF)", what);
            return WD_EINVAL;
        }
    }
    return 0;
}

int wd_http_opts_check(const wd_http_opts *o, char *err, size_t errlen) {
    const brk_config *b = &o->breaker;
    throttle scratch;
    if (o->name == NULL || strlen(o->name) > WD_HTTP_NAME_MAX) {
        set_err(err, errlen, "%s", "name missing or over WD_HTTP_NAME_MAX");
        return WD_EINVAL;
    }
    if (o->user_agent == NULL || strlen(o->user_agent) > WD_HTTP_UA_MAX ||
        strpbrk(o->user_agent, "\r\n") != NULL) {
        set_err(err, errlen, "%s", "user_agent missing, too long or holding CR/LF");
        return WD_EINVAL;
    }
    if (o->connect_timeout_ms == 0 || o->connect_timeout_ms > WD_HTTP_TIMEOUT_MAX_MS ||
        o->timeout_ms == 0 || o->timeout_ms > WD_HTTP_TIMEOUT_MAX_MS) {
        set_err(err, errlen, "%s", "timeouts must be 1 .. WD_HTTP_TIMEOUT_MAX_MS ms");
        return WD_EINVAL;
    }
    if (o->max_response_bytes == 0 || o->max_response_bytes > WD_HTTP_RESPONSE_MAX) {
        set_err(err, errlen, "%s", "max_response_bytes must be 1 .. WD_HTTP_RESPONSE_MAX");
        return WD_EINVAL;
    }
    if (o->retry_after_max_ms > WD_HTTP_RETRY_AFTER_MAX_MS) {
        set_err(err, errlen, "%s", "retry_after_max_ms over WD_HTTP_RETRY_AFTER_MAX_MS");
        return WD_EINVAL;
    }
    if (b->failure_threshold < 1 || !(b->growth >= 1) || !(b->jitter >= 0 && b->jitter <= 0.5) ||
        b->half_open_max < 1 || b->open_ns == 0 || b->open_max_ns < b->open_ns) {
        set_err(err, errlen, "%s", "invalid breaker config");
        return WD_EINVAL;
    }
    if (o->throttle && throttle_init(&scratch, &o->throttle_cfg, 0) != 0) {
        set_err(err, errlen, "%s", "invalid throttle config");
        return WD_EINVAL;
    }
    return 0;
}

