/* Broker calls of CLOSING positions, through common/http.h: the endpoint's
 * breaker (fails fast while open), its adaptive throttle (paced to
 * broker_min_interval at best, halved on errors, paused for a 429's
 * Retry-After), and our retry budget with decorrelated jitter.
 *
 * Exactly once: the order's client order id is derived from the position
 * (pm_client_order_id), so every retry, and every attempt after a restart,
 * names the same order, and the broker places it at most once. A position
 * loaded as closing, or closing across a reconnect, is first reconciled:
 * GET /orders/{id}; a 404 means the order never arrived and it is placed.
 * API: docs/BROKER.md. */
#include "pm_worker.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PM_BROKER_EXIT_CODE 3 /* the test hook's exit status */
#define PM_OPEN_RETRY_MIN_NS (100 * WD_NS_PER_MS)
#define PM_THROTTLE_CLEAN_NS (5 * WD_NS_PER_SEC)
#define PM_PENDING_RETRY_DIV 1 /* a "pending" answer: ask again after retry_base */

typedef struct {
    pm_worker *w;
    uint32_t pos;
    int64_t id;
    bool get;
} call_ctx;

void pm_exec_add(pm_worker *w, uint32_t pos) {
    pm_pos *p = &w->book.pos[pos];
    if (p->exec_listed)
        return;
    if (w->n_closing == w->cap_closing) {
        size_t cap = w->cap_closing ? w->cap_closing * 2 : 64;
        void *np = realloc(w->closing, cap * sizeof *w->closing);
        if (np == NULL)
            return; /* picked up again at the next reload */
        w->closing = np;
        w->cap_closing = cap;
    }
    p->exec_listed = 1;
    w->closing[w->n_closing++] = (pm_citem){.pos = pos, .id = p->id};
}

void pm_exec_refill(pm_worker *w, const pm_fill *f) {
    if (w->n_fills == w->cap_fills) {
        size_t cap = w->cap_fills ? w->cap_fills * 2 : 64;
        void *np = realloc(w->fills, cap * sizeof *w->fills);
        if (np == NULL)
            return; /* the row stays closing: reconciled at the next reload */
        w->fills = np;
        w->cap_fills = cap;
    }
    w->fills[w->n_fills++] = *f;
}

void pm_exec_filled(pm_worker *w, uint32_t pos, double price, const char *boid) {
    pm_pos *p = &w->book.pos[pos];
    pm_fill f = {.id = p->id, .price = price};
    snprintf(f.boid, sizeof f.boid, "%s", boid);
    pm_book_set_state(&w->book, pos, PM_ST_FILLED);
    pm_exec_refill(w, &f);
}

/* The delay before the next attempt of a transient failure: decorrelated
 * jitter while the retry budget allows, else the slow lane (retry_cap) so a
 * broker outage cannot be amplified by retries. */
static void schedule_retry(pm_worker *w, pm_pos *p, uint64_t now, uint64_t retry_after_ms) {
    uint64_t base = w->conf.retry_base_ms * WD_NS_PER_MS, cap = w->conf.retry_cap_ms * WD_NS_PER_MS;
    uint64_t d;
    if (wd_retry_budget_try_spend(&w->budget, now) == 0) {
        d = wd_backoff_decorrelated(&w->rng, base, cap, p->backoff_ns ? p->backoff_ns : base);
        p->backoff_ns = d;
    } else {
        pm_count_error(w, PM_ERR_BUDGET);
        d = cap;
    }
    if (retry_after_ms * WD_NS_PER_MS > d)
        d = retry_after_ms * WD_NS_PER_MS;
    p->next_try_ns = now + d;
}

static int parse_fill(const wd_http_resp *resp, double *price, char *boid, size_t boidlen,
                      bool *filled) {
    json_error_t je;
    json_t *j = json_loadb(resp->body, resp->body_len, 0, &je);
    const char *st = NULL, *b = NULL;
    double fp = 0;
    int rc = WD_EPROTO;
    if (j != NULL && json_unpack(j, "{s:s, s?F, s?s}", "status", &st, "fill_price", &fp,
                                 "broker_order_id", &b) == 0) {
        *filled = strcmp(st, "filled") == 0 && fp > 0;
        *price = fp;
        snprintf(boid, boidlen, "%s", b ? b : "");
        rc = 0;
    }
    json_decref(j);
    return rc;
}

static void on_call(void *arg, const wd_http_resp *resp) {
    call_ctx *x = arg;
    pm_worker *w = x->w;
    uint64_t now = wd_clock_mono_ns();
    w->broker_inflight--;
    uint32_t i = pm_book_find(&w->book, x->id);
    pm_pos *p = i != PM_NONE ? &w->book.pos[i] : NULL;
    if (p != NULL)
        p->exec_inflight = 0;
    if (resp->err == WD_ECLOSED || p == NULL || p->state != PM_ST_CLOSING) {
        free(x);
        return;
    }
    p->attempts++;
    if (resp->err == 0) {
        double price = 0;
        char boid[PM_BOID_MAX + 1];
        bool filled = false;
        if (parse_fill(resp, &price, boid, sizeof boid, &filled) != 0) {
            pm_count_error(w, PM_ERR_BROKER);
            wd_warn("broker: position %lld: answer is not an order (status %ld)",
                    (long long)p->id, resp->status);
            schedule_retry(w, p, now, 0);
        } else if (!filled) {
            p->next_try_ns = now + w->conf.retry_base_ms * WD_NS_PER_MS / PM_PENDING_RETRY_DIV;
            p->exec_get = 1; /* placed: from now on ask for it */
        } else {
            if (w->conf.test_crash_after_broker && !x->get) {
                /* Test hook: die between the broker's fill and our record of
                 * it, the window that reconciliation must cover. */
                wd_warn("test_crash_after_broker: exiting after the fill of %lld",
                        (long long)p->id);
                _exit(PM_BROKER_EXIT_CODE);
            }
            pm_exec_filled(w, i, price, boid);
        }
        free(x);
        return;
    }
    if (x->get && resp->status == 404) {
        /* Never reached the broker: place it now (same client order id). */
        p->exec_get = 0;
        p->next_try_ns = now;
        free(x);
        return;
    }
    w->api_errors++;
    pm_count_error(w, PM_ERR_BROKER);
    if (resp->errclass == WD_ERRCLASS_PERMANENT && resp->status != 0 && resp->status != 408 &&
        resp->status != 429) {
        /* The broker refused this order (bad symbol, no price...): not a
         * retry case; try again slowly in case the cause is temporary. */
        pm_count_error(w, PM_ERR_BROKER_REJECTED);
        wd_warn("broker: position %lld: order refused (%ld): %.200s", (long long)p->id,
                resp->status, resp->body ? resp->body : "");
        p->next_try_ns = now + w->conf.retry_cap_ms * WD_NS_PER_MS;
    } else {
        wd_debug("broker: position %lld: %s", (long long)p->id, resp->error);
        schedule_retry(w, p, now, resp->has_retry_after ? resp->retry_after_ms : 0);
    }
    free(x);
}

static int start_call(pm_worker *w, uint32_t i, uint64_t now) {
    pm_pos *p = &w->book.pos[i];
    char coid[PM_COID_MAX + 1], url[PM_URL_MAX + PM_COID_MAX + 16], err[WD_HTTP_ERROR_MAX];
    char *body = NULL;
    static const char *const hdrs[] = {"Content-Type: application/json",
                                       "Accept: application/json", NULL};
    pm_client_order_id(p->id, coid, sizeof coid);
    wd_http_req req = {.headers = hdrs, .timeout_ms = (uint32_t)w->conf.broker_timeout_ms};
    if (p->exec_get) {
        snprintf(url, sizeof url, "%s/orders/%s", w->broker_base, coid);
        req.method = "GET";
    } else {
        snprintf(url, sizeof url, "%s/orders", w->broker_base);
        json_t *j = json_pack("{s:s, s:s, s:s, s:f, s:s, s:s, s:s}", "client_order_id", coid,
                              "symbol", w->book.syms[p->sym].name, "side",
                              p->side == PM_LONG ? "sell" : "buy", "quantity", p->quantity,
                              "type", "market", "account",
                              pm_book_account_name(&w->book, p->account), "reason",
                              pm_exit_reason_name((pm_exit_reason)p->reason));
        body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (body == NULL)
            return WD_ENOMEM;
        req.method = "POST";
        req.body = body;
        req.body_len = strlen(body);
    }
    req.url = url;
    call_ctx *x = malloc(sizeof *x);
    if (x == NULL) {
        free(body);
        return WD_ENOMEM;
    }
    *x = (call_ctx){.w = w, .pos = i, .id = p->id, .get = p->exec_get != 0};
    int rc = wd_http_request(w->http, &req, on_call, x, err, sizeof err);
    free(body);
    if (rc != 0) {
        free(x);
        return rc;
    }
    if (p->attempts == 0)
        wd_retry_budget_on_request(&w->budget, now);
    p->exec_inflight = 1;
    w->broker_inflight++;
    w->api_calls++;
    w->cur.api_calls++;
    return 0;
}

/* Breakers: registered with the runtime once they exist (the broker's is
 * made on the first call), and an alert on each opening. */
static void watch_breakers(pm_worker *w) {
    brk_breaker *b[3] = {NULL, w->pg ? wd_pg_breaker(w->pg) : NULL,
                         w->redis ? wd_redis_breaker(w->redis) : NULL};
    if (w->broker_brk == NULL && (w->broker_brk = wd_http_breaker(w->http, w->broker_base)))
        w->broker_brk_registered = wrk_breaker_register(w->ctx, w->broker_brk, false) == 0;
    b[0] = w->broker_brk;
    uint64_t now = wd_clock_mono_ns();
    for (int k = 0; k < 3; k++) {
        brk_stats st;
        if (b[k] == NULL)
            continue;
        brk_stats_get(b[k], now, &st);
        if (st.opens > w->brk_opens_seen[k]) {
            w->brk_opens_seen[k] = st.opens;
            const brk_transition *t = brk_history_at(b[k], 0);
            wd_warn("breaker %s opened", b[k]->name);
            pm_alert_breaker(w, b[k]->name, t ? t->reason : "opened");
        }
    }
}

void pm_exec_cycle(pm_worker *w, uint64_t now) {
    watch_breakers(w);
    size_t j = 0;
    bool blocked = false;
    for (size_t k = 0; k < w->n_closing; k++) {
        pm_citem c = w->closing[k];
        pm_pos *p = &w->book.pos[c.pos];
        if (c.pos >= w->book.n_pos || p->id != c.id || p->state != PM_ST_CLOSING) {
            if (c.pos < w->book.n_pos && p->id == c.id)
                p->exec_listed = 0;
            continue; /* filled, closed or gone: leaves the list */
        }
        w->closing[j++] = c;
        if (blocked || p->exec_inflight || p->next_try_ns > now ||
            w->broker_inflight >= (uint32_t)w->conf.broker_inflight_max)
            continue;
        int rc = start_call(w, c.pos, now);
        if (rc == WD_EOPEN) {
            /* Fails fast while the breaker is open: the rest wait too. */
            uint64_t in = w->broker_brk ? brk_retry_in(w->broker_brk, now) : 0;
            p->next_try_ns = now + (in > PM_OPEN_RETRY_MIN_NS ? in : PM_OPEN_RETRY_MIN_NS);
            blocked = true;
        } else if (rc != 0) {
            pm_count_error(w, PM_ERR_BROKER);
            p->next_try_ns = now + w->conf.retry_base_ms * WD_NS_PER_MS;
        }
    }
    w->n_closing = j;
}

int pm_exec_start(pm_worker *w, char *err, size_t errlen) {
    wd_http_opts o;
    uint64_t now = wd_clock_mono_ns();
    wd_http_opts_defaults(&o);
    o.name = "broker";
    o.timeout_ms = (uint32_t)w->conf.broker_timeout_ms;
    o.connect_timeout_ms = (uint32_t)w->conf.broker_timeout_ms;
    o.metrics = w->reg;
    o.throttle = true;
    /* The seed's fixed stagger between calls is the throttle's ceiling rate:
     * never closer than broker_min_interval, slower after errors. */
    double top = 1000.0 / (double)w->conf.broker_min_interval_ms;
    o.throttle_cfg.rate_max_per_s = top;
    o.throttle_cfg.rate_min_per_s = w->conf.broker_rate_min < top ? w->conf.broker_rate_min : top;
    o.throttle_cfg.increase_step_per_s = top / 10;
    o.throttle_cfg.clean_interval_ns = PM_THROTTLE_CLEAN_NS;
    o.throttle_cfg.burst = 1;
    o.breaker.failure_threshold = (uint32_t)w->conf.broker_breaker_failures;
    o.breaker.window_ns = 0;
    o.breaker.open_ns = w->conf.broker_breaker_open_ms * WD_NS_PER_MS;
    o.breaker.open_max_ns = w->conf.broker_breaker_open_max_ms * WD_NS_PER_MS;
    int rc = wd_retry_budget_init(&w->budget, w->conf.retry_budget_ratio,
                                  w->conf.retry_budget_min_per_s, now);
    if (rc != 0) {
        snprintf(err, errlen, "retry budget: %s", wd_strerror(rc));
        return rc;
    }
    return wd_http_new(w->loop, &o, &w->http, err, errlen);
}

static void on_http_closed(void *arg) { (void)arg; }

void pm_exec_stop(pm_worker *w) {
    if (w->http == NULL)
        return;
    if (w->broker_brk_registered)
        wrk_breaker_unregister(w->ctx, w->broker_brk);
    w->broker_brk = NULL;
    wd_http_close(w->http, on_http_closed, NULL);
    w->http = NULL;
}
