/* The HTTP server: nng's, with one tree handler at "/" for every method, so
 * routing, 404/405/400/414 and their JSON bodies are ours (hl_route.c).
 * Handlers run on nng's threads and answer from the current view under the
 * shared mutex; they never wait on the supervisor. POSTs go to the loop
 * (hl_api.c) and are answered when the supervisor replies.
 *
 * What nng 1.5.2's server lets us bound, and what it does by itself (see
 * docs/HEALTH.md): request bodies (nng_http_handler_collect_body: 413 past
 * max_body); the request line and headers must fit nng's 8 KiB read buffer,
 * else the connection is closed (so a 1 MB header costs 8 KiB and a closed
 * connection). There is no knob for idle or slow-client timeouts nor for a
 * connection limit: nng keeps every connection on asynchronous I/O, so a
 * slow or idle client holds one descriptor and a few KiB but never a
 * thread, and probes keep being answered; the descriptor limit is raised to
 * its hard limit at start for that reason. */
#include "hl.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"
#include <arpa/inet.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT_JSON "application/json"
#define CT_TEXT "text/plain; charset=utf-8"
#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"
#define CT_HTML "text/html; charset=utf-8"
#define HL_LIVE_PREFIX_MAX 160

void hl_http_reply(void *aiov, int code, const char *ctype, const char *body, size_t len,
                   const char *xh, const char *xv) {
    nng_aio *aio = aiov;
    nng_http_res *res;
    int rv = nng_http_res_alloc(&res);
    if (rv != 0) {
        nng_aio_finish(aio, rv);
        return;
    }
    if ((rv = nng_http_res_set_status(res, (uint16_t)code)) != 0 ||
        (rv = nng_http_res_set_header(res, "Content-Type", ctype)) != 0 ||
        (rv = nng_http_res_set_header(res, "Cache-Control", "no-store")) != 0 ||
        (xh != NULL && (rv = nng_http_res_set_header(res, xh, xv)) != 0) ||
        (len > 0 && (rv = nng_http_res_copy_data(res, body, len)) != 0)) {
        nng_http_res_free(res);
        nng_aio_finish(aio, rv);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

void hl_http_reply_json(void *aio, int code, json_t *body) {
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        static const char oom[] = "{\"error\":\"out of memory\",\"status\":500}";
        hl_http_reply(aio, 500, CT_JSON, oom, sizeof oom - 1, NULL, NULL);
        return;
    }
    hl_http_reply(aio, code, CT_JSON, text, strlen(text), NULL, NULL);
    free(text);
}

void hl_http_reply_error(void *aio, int code, const char *msg) {
    hl_http_reply_json(aio, code, json_pack("{s:s,s:i}", "error", msg, "status", code));
}

/* The client's address. nng 1.5.2 has no public call for an HTTP
 * connection's peer; its connection struct starts with the nng_stream, as
 * the stream-level options (NNG_OPT_REMADDR) need. Checked against the
 * version so a different nng reports "unknown" rather than misreading. */
static void peer_addr(nng_http_conn *conn, char *buf, size_t len) {
    snprintf(buf, len, "unknown");
#if NNG_MAJOR_VERSION == 1 && NNG_MINOR_VERSION == 5
    nng_stream *s = conn != NULL ? *(nng_stream **)(void *)conn : NULL;
    nng_sockaddr sa;
    char ip[INET6_ADDRSTRLEN];
    if (s == NULL || nng_stream_get_addr(s, NNG_OPT_REMADDR, &sa) != 0)
        return;
    if (sa.s_family == NNG_AF_INET && inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof ip))
        snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(sa.s_in.sa_port));
    else if (sa.s_family == NNG_AF_INET6 && inet_ntop(AF_INET6, sa.s_in6.sa_addr, ip, sizeof ip))
        snprintf(buf, len, "[%s]:%u", ip, (unsigned)ntohs(sa.s_in6.sa_port));
#else
    (void)conn;
#endif
}

/* Liveness right now: the supervisor answered within probe_deadline and our
 * own loop is turning. Both are checked per request against the clock, not
 * from the snapshot, so a stopped supervisor shows within the deadline. */
static int live_checks(hl *h, hl_check *c, uint64_t *age_ns) {
    uint64_t now = wd_clock_mono_ns(), dl = h->conf.probe_deadline_ms * WD_NS_PER_MS;
    pthread_mutex_lock(&h->sh.mu);
    uint64_t last = h->sh.last_ok_ns, beat = h->sh.loop_beat_ns;
    char why[HL_CHECK_REASON_MAX + 1];
    snprintf(why, sizeof why, "%s", h->sh.sup_error);
    pthread_mutex_unlock(&h->sh.mu);
    *age_ns = last != 0 && now > last ? now - last : 0;
    snprintf(c[0].name, sizeof c[0].name, "supervisor");
    c[0].ok = last != 0 && now - last <= dl;
    if (last == 0)
        snprintf(c[0].reason, sizeof c[0].reason, "no answer from the supervisor yet%s%.150s",
                 why[0] ? ": " : "", why);
    else if (!c[0].ok)
        snprintf(c[0].reason, sizeof c[0].reason,
                 "the supervisor has not answered for %.1f s (probe_deadline %.1f s)%s%.120s",
                 (double)(now - last) / 1e9, (double)dl / 1e9, why[0] ? "; " : "", why);
    else
        c[0].reason[0] = '\0';
    snprintf(c[1].name, sizeof c[1].name, "loop");
    c[1].ok = now - beat <= dl;
    if (!c[1].ok)
        snprintf(c[1].reason, sizeof c[1].reason, "the health worker's loop stalled for %.1f s",
                 (double)(now - beat) / 1e9);
    else
        c[1].reason[0] = '\0';
    return 2;
}

static hl_view *view_get(hl *h) {
    pthread_mutex_lock(&h->sh.mu);
    hl_view *v = h->sh.view;
    if (v != NULL)
        hl_view_ref(v);
    pthread_mutex_unlock(&h->sh.mu);
    return v;
}

static void reply_probe(void *aio, const char *probe, const hl_check *c, int n, const hl_route *r) {
    char *body;
    size_t len;
    int code = hl_probe_text(probe, c, n, r, &body, &len);
    if (code < 0) {
        hl_http_reply_error(aio, 500, "out of memory");
        return;
    }
    hl_http_reply(aio, code, CT_TEXT, body, r->head ? 0 : len, NULL, NULL);
    free(body);
}

static void on_readyz(hl *h, void *aio, const hl_route *r) {
    hl_check *c = malloc((HL_CHECKS_MAX + 2) * sizeof *c);
    uint64_t age;
    if (c == NULL) {
        hl_http_reply_error(aio, 500, "out of memory");
        return;
    }
    live_checks(h, c, &age); /* c[0] is the supervisor check; the loop check is liveness only */
    int n = 1;
    hl_view *v = view_get(h);
    if (v != NULL) {
        memcpy(&c[n], v->checks, (size_t)v->n_checks * sizeof *c);
        n += v->n_checks;
        hl_view_unref(v);
    }
    reply_probe(aio, "readyz", c, n, r);
    free(c);
}

/* /healthz: the view's JSON with the live fields spliced in front. */
static void on_healthz(hl *h, void *aio, const hl_route *r, hl_view *v) {
    hl_check c[2];
    uint64_t age;
    live_checks(h, c, &age);
    bool ready = c[0].ok;
    for (int i = 0; i < v->n_checks && ready; i++)
        ready = v->checks[i].ok;
    char pre[HL_LIVE_PREFIX_MAX];
    int n = snprintf(pre, sizeof pre, "{\"live\":%s,\"ready\":%s,\"snapshot_age_s\":%.3f,",
                     c[0].ok && c[1].ok ? "true" : "false", ready ? "true" : "false",
                     (double)age / 1e9);
    size_t len = (size_t)n + v->healthz_len - 1;
    char *body = malloc(len + 1);
    if (body == NULL) {
        hl_http_reply_error(aio, 500, "out of memory");
        return;
    }
    memcpy(body, pre, (size_t)n);
    memcpy(body + n, v->healthz + 1, v->healthz_len - 1); /* after its '{' */
    body[len] = '\0';
    hl_http_reply(aio, 200, CT_JSON, body, r->head ? 0 : len, NULL, NULL);
    free(body);
}

static void on_metrics(hl *h, void *aio, const hl_route *r, hl_view *v) {
    hl_check c[2];
    uint64_t age;
    size_t llen;
    live_checks(h, c, &age);
    char *live = hl_prom_live(c[0].ok, (double)age / 1e9, &llen);
    char *body = live != NULL ? malloc(v->metrics_len + llen + 1) : NULL;
    if (body == NULL) {
        free(live);
        hl_http_reply_error(aio, 500, "out of memory");
        return;
    }
    memcpy(body, v->metrics, v->metrics_len);
    memcpy(body + v->metrics_len, live, llen);
    hl_http_reply(aio, 200, CT_PROM, body, r->head ? 0 : v->metrics_len + llen, NULL, NULL);
    free(body);
    free(live);
}

static void on_get_view(hl *h, void *aio, const hl_route *r) {
    hl_view *v = view_get(h);
    if (v == NULL) {
        hl_http_reply_error(aio, 503, "no status from the supervisor yet");
        return;
    }
    switch (r->id) {
    case HL_R_HEALTHZ:
        on_healthz(h, aio, r, v);
        break;
    case HL_R_METRICS:
        on_metrics(h, aio, r, v);
        break;
    case HL_R_WORKERS:
        hl_http_reply(aio, 200, CT_JSON, v->workers, r->head ? 0 : v->workers_len, NULL, NULL);
        break;
    case HL_R_BREAKERS:
        hl_http_reply(aio, 200, CT_JSON, v->breakers, r->head ? 0 : v->breakers_len, NULL, NULL);
        break;
    default: /* HL_R_HISTORY */
        pthread_mutex_lock(&h->sh.mu);
        h->sh.history_wanted_ns = wd_clock_mono_ns();
        pthread_mutex_unlock(&h->sh.mu);
        hl_http_reply(aio, 200, CT_JSON, v->history, r->head ? 0 : v->history_len, NULL, NULL);
        break;
    }
    hl_view_unref(v);
}

static void on_post(hl *h, void *aio, nng_http_req *req, nng_http_conn *conn, const hl_route *r) {
    char client[HL_ADDR_MAX];
    if (h->token_len > 0 &&
        !hl_api_authorized(h, nng_http_req_get_header(req, "Authorization"))) {
        hl_http_reply(aio, 401, CT_JSON,
                      "{\"error\":\"a valid Authorization: Bearer token is required\","
                      "\"status\":401}",
                      strlen("{\"error\":\"a valid Authorization: Bearer token is required\","
                             "\"status\":401}"),
                      "WWW-Authenticate", "Bearer realm=\"warden\"");
        return;
    }
    if (r->id == HL_R_RESET && !r->has_reason) {
        hl_http_reply_error(aio, 400, "reason=TEXT is required: every reset goes to the audit log");
        return;
    }
    peer_addr(conn, client, sizeof client);
    hl_api_submit(h, aio, r, client);
}

static void on_http(nng_aio *aio) {
    nng_http_req *req = nng_aio_get_input(aio, 0);
    nng_http_handler *hd = nng_aio_get_input(aio, 1);
    nng_http_conn *conn = nng_aio_get_input(aio, 2);
    hl *h = nng_http_handler_get_data(hd);
    hl_route *r = malloc(sizeof *r);
    if (r == NULL) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    hl_route_parse(nng_http_req_get_method(req), nng_http_req_get_uri(req), r);
    pthread_mutex_lock(&h->sh.mu);
    h->sh.http_requests++;
    pthread_mutex_unlock(&h->sh.mu);
    hl_check live[2];
    uint64_t age;
    switch (r->id) {
    case HL_R_NOT_FOUND:
        hl_http_reply_error(aio, 404, "no such endpoint");
        break;
    case HL_R_BAD_METHOD: {
        char msg[96];
        snprintf(msg, sizeof msg, "method %s not allowed here (allowed: %s)",
                 nng_http_req_get_method(req), r->allow);
        json_t *j = json_pack("{s:s,s:i}", "error", msg, "status", 405);
        char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (text != NULL)
            hl_http_reply(aio, 405, CT_JSON, text, strlen(text), "Allow", r->allow);
        else
            hl_http_reply_error(aio, 500, "out of memory");
        free(text);
        break;
    }
    case HL_R_TOO_LONG:
        hl_http_reply_error(aio, 414, "request target too long");
        break;
    case HL_R_BAD_REQUEST:
        hl_http_reply_error(aio, 400, r->error);
        break;
    case HL_R_PAGE:
        hl_http_reply(aio, 200, CT_HTML, hl_page_html, r->head ? 0 : hl_page_html_len, NULL, NULL);
        break;
    case HL_R_LIVEZ:
        reply_probe(aio, "livez", live, live_checks(h, live, &age), r);
        break;
    case HL_R_READYZ:
        on_readyz(h, aio, r);
        break;
    case HL_R_RESTART:
    case HL_R_RESET:
        on_post(h, aio, req, conn, r);
        break;
    default:
        on_get_view(h, aio, r);
        break;
    }
    free(r);
}

int hl_http_start(hl *h, char *err, size_t errlen) {
    char urlstr[HL_LISTEN_MAX + 16];
    nng_url *url = NULL;
    nng_http_server *srv = NULL;
    nng_http_handler *hd = NULL;
    int rv;
    snprintf(urlstr, sizeof urlstr, "http://%s", h->conf.listen);
    if ((rv = nng_url_parse(&url, urlstr)) != 0) {
        snprintf(err, errlen, "listen: '%s' is not HOST:PORT (%s)", h->conf.listen,
                 nng_strerror(rv));
        return WD_ECONFIG;
    }
    if ((rv = nng_http_server_hold(&srv, url)) != 0 ||
        (rv = nng_http_handler_alloc(&hd, "/", on_http)) != 0 ||
        (rv = nng_http_handler_set_method(hd, NULL)) != 0 || /* every method: 405 is ours */
        (rv = nng_http_handler_set_tree(hd)) != 0 ||
        (rv = nng_http_handler_collect_body(hd, true, (size_t)h->conf.max_body)) != 0 ||
        (rv = nng_http_handler_set_data(hd, h, NULL)) != 0 ||
        (rv = nng_http_server_add_handler(srv, hd)) != 0) {
        snprintf(err, errlen, "http server for %s: %s", h->conf.listen, nng_strerror(rv));
        goto fail;
    }
    hd = NULL; /* the server owns it now */
    if ((rv = nng_http_server_start(srv)) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", h->conf.listen, nng_strerror(rv));
        goto fail;
    }
    nng_url_free(url);
    h->server = srv;
    return 0;
fail:
    if (hd != NULL)
        nng_http_handler_free(hd);
    if (srv != NULL)
        nng_http_server_release(srv);
    nng_url_free(url);
    return WD_EUNAVAIL;
}

void hl_http_stop(hl *h) {
    if (h->server == NULL)
        return;
    nng_http_server_stop(h->server);
    nng_http_server_release(h->server);
    h->server = NULL;
}
