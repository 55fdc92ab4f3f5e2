/* The paper broker's HTTP side: nng's server hands each request to
 * on_http (an nng thread), which copies it into a queue and wakes the loop;
 * the loop routes it, applies the injected faults, reads prices from Redis
 * (common/redis.h, async) and answers. */
#include "pb_server.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT_JSON "application/json"
#define PB_BODY_MAX (64u * 1024u)
#define PB_URI_MAX 512
#define PB_NUM_MAX 40

struct pb_req {
    pb_req *next;
    nng_aio *aio;
    char method[16];
    char uri[PB_URI_MAX];
    char *body;
    size_t len;
    uv_timer_t timer; /* added latency */
    pb_server *s;
    char coid[PB_COID_MAX + 1];
};

static void reply(pb_server *s, nng_aio *aio, int code, json_t *body, const char *method,
                  const char *uri, const char *xh, const char *xv) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    nng_http_res *res;
    json_decref(body);
    pb_recent *r = &s->recent[s->n_recent++ % PB_RECENT_MAX];
    r->real_ns = wd_clock_real_ns();
    r->status = code;
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->path, sizeof r->path, "%s", uri);
    int rv = nng_http_res_alloc(&res);
    if (rv != 0) {
        free(text);
        nng_aio_finish(aio, rv);
        return;
    }
    if ((rv = nng_http_res_set_status(res, (uint16_t)code)) != 0 ||
        (rv = nng_http_res_set_header(res, "Content-Type", CT_JSON)) != 0 ||
        (xh != NULL && (rv = nng_http_res_set_header(res, xh, xv)) != 0) ||
        (text != NULL && (rv = nng_http_res_copy_data(res, text, strlen(text))) != 0)) {
        nng_http_res_free(res);
        free(text);
        nng_aio_finish(aio, rv);
        return;
    }
    free(text);
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

static void reply_err(pb_server *s, pb_req *q, int code, const char *msg) {
    reply(s, q->aio, code, json_pack("{s:s, s:i}", "error", msg, "status", code), q->method,
          q->uri, NULL, NULL);
}

static void req_free(pb_req *q) {
    free(q->body);
    free(q);
}

static void on_timer_closed(uv_handle_t *h) { req_free(h->data); }

/* Frees q once its timer handle (always initialised) is closed. */
static void req_done(pb_req *q) { uv_close((uv_handle_t *)&q->timer, on_timer_closed); }

/* ---- nng thread ---- */

static void on_http(nng_aio *aio) {
    nng_http_req *hr = nng_aio_get_input(aio, 0);
    nng_http_handler *hd = nng_aio_get_input(aio, 1);
    pb_server *s = nng_http_handler_get_data(hd);
    void *data;
    size_t len;
    pb_req *q = calloc(1, sizeof *q);
    if (q == NULL) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    q->aio = aio;
    snprintf(q->method, sizeof q->method, "%s", nng_http_req_get_method(hr));
    snprintf(q->uri, sizeof q->uri, "%s", nng_http_req_get_uri(hr));
    nng_http_req_get_data(hr, &data, &len);
    if (len > 0 && (q->body = malloc(len + 1)) != NULL) {
        memcpy(q->body, data, len);
        q->body[len] = '\0';
        q->len = len;
    }
    pthread_mutex_lock(&s->mu);
    q->next = NULL;
    if (s->q_tail)
        s->q_tail->next = q;
    else
        s->q_head = q;
    s->q_tail = q;
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->wake);
}

/* ---- loop thread ---- */

static void fill_and_answer(pb_server *s, pb_order *o, double bid, double ask) {
    o->fill_price = pb_fill_price(o->buy, bid, ask);
    o->status = PB_FILLED;
    o->fills++;
    o->filled_at_ns = wd_clock_real_ns();
    snprintf(o->boid, sizeof o->boid, "pb-%llu", (unsigned long long)++s->next_boid);
    s->filled++;
    for (uint32_t k = 0; k < o->n_waiters; k++) {
        pb_req *q = o->waiters[k];
        reply(s, q->aio, k == 0 ? 201 : 200, pb_order_json(o), q->method, q->uri, NULL, NULL);
        req_done(q);
    }
    o->n_waiters = 0;
}

static void fail_waiters(pb_server *s, const char *coid, int code, const char *msg) {
    pb_order *o = pb_orders_find(&s->orders, coid);
    if (o == NULL)
        return;
    for (uint32_t k = 0; k < o->n_waiters; k++) {
        reply_err(s, o->waiters[k], code, msg);
        req_done(o->waiters[k]);
    }
    o->n_waiters = 0;
    /* Not placed: a retry with the same id may place it. */
    pb_orders_drop(&s->orders, coid);
}

static double field(const redisReply *r, const char *name) {
    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, name) == 0) {
            char tmp[PB_NUM_MAX], *end;
            snprintf(tmp, sizeof tmp, "%.*s", (int)v->len, v->str);
            double d = strtod(tmp, &end);
            return end != tmp && *end == '\0' ? d : 0;
        }
    }
    return 0;
}

typedef struct {
    pb_server *s;
    char coid[PB_COID_MAX + 1];
} price_ctx;

static void on_price(wd_redis *r, const wd_redis_result *res, void *arg) {
    price_ctx *x = arg;
    pb_server *s = x->s;
    (void)r;
    pb_order *o = pb_orders_find(&s->orders, x->coid);
    if (res->status == WD_ECLOSED || o == NULL) {
        free(x);
        return;
    }
    if (res->status != 0) {
        s->price_errors++;
        fail_waiters(s, x->coid, 503, "price source (Redis) unavailable; retry");
    } else {
        double bid = field(res->reply, "bid"), ask = field(res->reply, "ask");
        if (pb_fill_price(o->buy, bid, ask) > 0) {
            fill_and_answer(s, o, bid, ask);
        } else {
            s->no_price++;
            fail_waiters(s, x->coid, 422, "no last price for this symbol");
        }
    }
    free(x);
}

static void post_order(pb_server *s, pb_req *q) {
    pb_order_req r;
    char err[PB_ERR_MAX];
    if (pb_order_req_parse(q->body ? q->body : "", q->len, &r, err, sizeof err) != 0) {
        reply_err(s, q, 400, err);
        req_done(q);
        return;
    }
    s->posts++;
    pb_order *o = pb_orders_find(&s->orders, r.coid);
    if (o != NULL) {
        /* Idempotent: the same id is the same order, never a second one. */
        o->posts++;
        s->duplicate_posts++;
        if (o->status == PB_FILLED) {
            reply(s, q->aio, 200, pb_order_json(o), q->method, q->uri, NULL, NULL);
            req_done(q);
        } else if (o->n_waiters < PB_WAITERS_MAX) {
            o->waiters[o->n_waiters++] = q;
        } else {
            reply_err(s, q, 409, "order is being filled; ask again");
            req_done(q);
        }
        return;
    }
    int rc = pb_orders_add(&s->orders, &r, &o);
    if (rc != 0) {
        reply_err(s, q, rc == WD_ETOOBIG ? 507 : 500, wd_strerror(rc));
        req_done(q);
        return;
    }
    o->posts = 1;
    o->waiters[o->n_waiters++] = q;
    price_ctx *x = malloc(sizeof *x);
    char key[PB_KEY_PREFIX_MAX + PB_SYMBOL_MAX + 8];
    snprintf(key, sizeof key, "%slast:%s", s->key_prefix, r.symbol);
    const char *argv[] = {"HGETALL", key};
    if (x == NULL || s->redis == NULL) {
        free(x);
        fail_waiters(s, r.coid, 503, s->redis ? "out of memory" : "no price source configured");
        return;
    }
    x->s = s;
    snprintf(x->coid, sizeof x->coid, "%s", r.coid);
    if (wd_redis_command_argv(s->redis, on_price, x, 2, argv, NULL) != 0) {
        free(x);
        s->price_errors++;
        fail_waiters(s, r.coid, 503, "price source (Redis) unavailable; retry");
    }
}

static void get_order(pb_server *s, pb_req *q, const char *coid) {
    pb_order *o = pb_orders_find(&s->orders, coid);
    s->gets++;
    if (o == NULL) {
        reply_err(s, q, 404, "no such order");
    } else {
        o->gets++;
        reply(s, q->aio, 200, pb_order_json(o), q->method, q->uri, NULL, NULL);
    }
    req_done(q);
}

json_t *pb_server_stats(pb_server *s) {
    json_t *per = json_object(), *recent = json_array();
    uint32_t maxp = 0, maxf = 0;
    for (size_t i = 0; i < s->orders.nslots; i++) {
        pb_order *o = s->orders.slots[i];
        if (o == NULL)
            continue;
        maxp = o->posts > maxp ? o->posts : maxp;
        maxf = o->fills > maxf ? o->fills : maxf;
        if (json_object_size(per) < PB_STATS_IDS_MAX)
            json_object_set_new(per, o->coid,
                                json_pack("{s:I, s:I, s:I, s:s}", "posts", (json_int_t)o->posts,
                                          "gets", (json_int_t)o->gets, "fills",
                                          (json_int_t)o->fills, "status",
                                          o->status == PB_FILLED ? "filled" : "pending"));
    }
    uint64_t first = s->n_recent > PB_RECENT_MAX ? s->n_recent - PB_RECENT_MAX : 0;
    for (uint64_t i = first; i < s->n_recent; i++) {
        const pb_recent *r = &s->recent[i % PB_RECENT_MAX];
        json_array_append_new(recent, json_pack("{s:f, s:s, s:s, s:i}", "t", (double)r->real_ns / 1e9,
                                                "method", r->method, "path", r->path, "status",
                                                r->status));
    }
    json_t *st = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}",
                     "orders", (json_int_t)s->orders.n, "filled", (json_int_t)s->filled,
                     "posts", (json_int_t)s->posts, "duplicate_posts",
                     (json_int_t)s->duplicate_posts, "gets", (json_int_t)s->gets,
                     "max_posts_per_id", (json_int_t)maxp, "max_fills_per_id", (json_int_t)maxf,
                     "injected_500", (json_int_t)s->inj_500, "injected_429",
                     (json_int_t)s->inj_429, "injected_hang", (json_int_t)s->inj_hang,
                     "price_errors", (json_int_t)s->price_errors, "no_price",
                     (json_int_t)s->no_price, "per_id", per, "recent", recent, "faults",
                     pb_faults_json(&s->faults));
    json_t *brk = pb_prices_json(s);
    if (st != NULL)
        json_object_set_new(st, "price_breaker", brk != NULL ? brk : json_null());
    else
        json_decref(brk);
    return st;
}

static double roll(pb_server *s) { return (double)(wd_rng_next(&s->rng) >> 11) / 9007199254740992.0; }

static void route_orders(pb_server *s, pb_req *q, const char *path) {
    if (strcmp(path, "/orders") == 0 && strcmp(q->method, "POST") == 0)
        post_order(s, q);
    else if (strncmp(path, "/orders/", 8) == 0 && strcmp(q->method, "GET") == 0 &&
             pb_coid_ok(path + 8))
        get_order(s, q, path + 8);
    else {
        reply_err(s, q, strncmp(path, "/orders", 7) == 0 ? 405 : 404, "no such endpoint");
        req_done(q);
    }
}

static void on_latency(uv_timer_t *t) {
    pb_req *q = t->data;
    char path[PB_URI_MAX];
    snprintf(path, sizeof path, "%s", q->uri);
    char *qm = strchr(path, '?');
    if (qm)
        *qm = '\0';
    route_orders(q->s, q, path);
}

static void handle(pb_server *s, pb_req *q) {
    char path[PB_URI_MAX];
    snprintf(path, sizeof path, "%s", q->uri);
    char *qm = strchr(path, '?');
    if (qm)
        *qm = '\0';
    uv_timer_init(s->loop, &q->timer);
    q->timer.data = q;
    q->s = s;
    if (strcmp(path, "/healthz") == 0) {
        reply(s, q->aio, 200, json_pack("{s:b}", "ok", 1), q->method, q->uri, NULL, NULL);
        req_done(q);
        return;
    }
    if (strcmp(path, "/stats") == 0) {
        reply(s, q->aio, 200, pb_server_stats(s), q->method, q->uri, NULL, NULL);
        req_done(q);
        return;
    }
    if (strcmp(path, "/faults") == 0) {
        char err[PB_ERR_MAX];
        if (strcmp(q->method, "POST") == 0 &&
            pb_faults_parse(q->body ? q->body : "", q->len, &s->faults, err, sizeof err) != 0)
            reply_err(s, q, 400, err);
        else
            reply(s, q->aio, 200, pb_faults_json(&s->faults), q->method, q->uri, NULL, NULL);
        if (strcmp(q->method, "POST") == 0)
            wd_info("faults: error_rate=%g rate_429=%g hang_rate=%g latency_ms=%llu "
                    "retry_after_s=%llu", s->faults.error_rate, s->faults.rate_429,
                    s->faults.hang_rate, (unsigned long long)s->faults.latency_ms,
                    (unsigned long long)s->faults.retry_after_s);
        req_done(q);
        return;
    }
    if (strncmp(path, "/orders", 7) != 0) {
        reply_err(s, q, 404, "no such endpoint");
        req_done(q);
        return;
    }
    /* Faults apply to the order endpoints only, before anything is placed:
     * a 500 or 429 here means the order does not exist. */
    const pb_faults *f = &s->faults;
    if (f->hang_rate > 0 && roll(s) < f->hang_rate) {
        s->inj_hang++;
        q->next = s->hung;
        s->hung = q;
        return;
    }
    if (f->rate_429 > 0 && roll(s) < f->rate_429) {
        char ra[PB_NUM_MAX];
        s->inj_429++;
        snprintf(ra, sizeof ra, "%llu", (unsigned long long)f->retry_after_s);
        reply(s, q->aio, 429, json_pack("{s:s, s:i}", "error", "rate limited", "status", 429),
              q->method, q->uri, "Retry-After", ra);
        req_done(q);
        return;
    }
    if (f->error_rate > 0 && roll(s) < f->error_rate) {
        s->inj_500++;
        reply_err(s, q, 500, "injected error");
        req_done(q);
        return;
    }
    if (f->latency_ms > 0) {
        uv_timer_start(&q->timer, on_latency, f->latency_ms, 0);
        return;
    }
    route_orders(s, q, path);
}

static void on_wake(uv_async_t *a) {
    pb_server *s = a->data;
    pthread_mutex_lock(&s->mu);
    pb_req *q = s->q_head;
    s->q_head = s->q_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (q != NULL) {
        pb_req *next = q->next;
        if (s->stopping) {
            nng_aio_finish(q->aio, NNG_ECLOSED);
            req_free(q);
        } else {
            handle(s, q);
        }
        q = next;
    }
}

int pb_server_start(pb_server *s, uv_loop_t *loop, char *err, size_t errlen) {
    char urlstr[PB_LISTEN_MAX + 16];
    nng_url *url = NULL;
    nng_http_handler *hd = NULL;
    int rv;
    s->loop = loop;
    pthread_mutex_init(&s->mu, NULL);
    uv_async_init(loop, &s->wake, on_wake);
    s->wake.data = s;
    snprintf(urlstr, sizeof urlstr, "http://%s", s->listen);
    if ((rv = nng_url_parse(&url, urlstr)) != 0) {
        snprintf(err, errlen, "--listen '%s' is not HOST:PORT", s->listen);
        uv_close((uv_handle_t *)&s->wake, NULL); /* the runtime then closes the loop cleanly */
        return WD_EINVAL;
    }
    if ((rv = nng_http_server_hold(&s->server, url)) != 0 ||
        (rv = nng_http_handler_alloc(&hd, "/", on_http)) != 0 ||
        (rv = nng_http_handler_set_method(hd, NULL)) != 0 ||
        (rv = nng_http_handler_set_tree(hd)) != 0 ||
        (rv = nng_http_handler_collect_body(hd, true, PB_BODY_MAX)) != 0 ||
        (rv = nng_http_handler_set_data(hd, s, NULL)) != 0 ||
        (rv = nng_http_server_add_handler(s->server, hd)) != 0) {
        snprintf(err, errlen, "http server: %s", nng_strerror(rv));
        goto fail;
    }
    hd = NULL;
    if ((rv = nng_http_server_start(s->server)) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", s->listen, nng_strerror(rv));
        goto fail;
    }
    nng_url_free(url);
    return 0;
fail:
    if (hd != NULL)
        nng_http_handler_free(hd);
    if (s->server != NULL)
        nng_http_server_release(s->server);
    s->server = NULL;
    nng_url_free(url);
    uv_close((uv_handle_t *)&s->wake, NULL);
    return WD_EUNAVAIL;
}

/* Answers what is held (hung requests, waiters) before stopping the
 * server, so no handler is left waiting on the loop that is going away. */
void pb_server_stop(pb_server *s) {
    s->stopping = true;
    while (s->hung != NULL) {
        pb_req *q = s->hung;
        s->hung = q->next;
        reply_err(s, q, 503, "shutting down");
        req_done(q);
    }
    for (size_t i = 0; i < s->orders.nslots; i++) {
        pb_order *o = s->orders.slots[i];
        for (uint32_t k = 0; o != NULL && k < o->n_waiters; k++) {
            reply_err(s, o->waiters[k], 503, "shutting down");
            req_done(o->waiters[k]);
        }
        if (o != NULL)
            o->n_waiters = 0;
    }
    if (s->server != NULL) {
        nng_http_server_stop(s->server);
        nng_http_server_release(s->server);
        s->server = NULL;
    }
    on_wake(&s->wake); /* requests that arrived meanwhile: refused */
    uv_close((uv_handle_t *)&s->wake, NULL);
}
