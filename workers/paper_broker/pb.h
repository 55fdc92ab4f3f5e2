/* The paper broker: a broker HTTP API (docs/BROKER.md) that fills market
 * orders at the last price the aggregator wrote to Redis, idempotent on the
 * client order id, with fault injection for tests and chaos runs.
 *
 * Threads: nng's HTTP server calls pb_server.c's handler on its threads;
 * the handler only queues the request and wakes the loop (uv_async). All
 * state below (orders, faults, stats) is touched by the loop thread alone,
 * which also answers (nng_aio_finish is thread-safe).
 *
 * pb_orders.c is the pure part (order table, request and fault parsing,
 * fill price), unit-tested in pb_orders_test.c. */
#ifndef WD_PB_H
#define WD_PB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PB_COID_MAX 63
#define PB_SYMBOL_MAX 31
#define PB_ACCOUNT_MAX 63
#define PB_BOID_MAX 31
#define PB_WAITERS_MAX 8        /* concurrent POSTs of one pending order */
#define PB_ORDERS_DEFAULT 1000000
#define PB_RECENT_MAX 256       /* requests kept for GET /stats */
#define PB_ERR_MAX 200

typedef enum { PB_PENDING = 0, PB_FILLED } pb_status;

typedef struct {
    char coid[PB_COID_MAX + 1];
    char symbol[PB_SYMBOL_MAX + 1];
    char account[PB_ACCOUNT_MAX + 1];
    bool buy;
    double quantity;
    pb_status status;
    double fill_price;
    char boid[PB_BOID_MAX + 1];
    uint64_t filled_at_ns; /* realtime */
    uint32_t posts, gets, fills;
    void *waiters[PB_WAITERS_MAX]; /* pb_server.c's requests waiting for the fill */
    uint32_t n_waiters;
} pb_order;

typedef struct {
    pb_order **slots; /* open addressing on coid; NULL empty */
    size_t nslots, n, max;
} pb_orders;

typedef struct {
    double error_rate;  /* 0..1: answer 500 */
    double rate_429;    /* 0..1: answer 429 with Retry-After */
    double hang_rate;   /* 0..1: never answer */
    uint64_t latency_ms; /* added before answering */
    uint64_t retry_after_s;
} pb_faults;

/* A POST /orders body. */
typedef struct {
    char coid[PB_COID_MAX + 1];
    char symbol[PB_SYMBOL_MAX + 1];
    char account[PB_ACCOUNT_MAX + 1];
    bool buy;
    double quantity;
} pb_order_req;

int pb_orders_init(pb_orders *t, size_t max);
void pb_orders_free(pb_orders *t);
pb_order *pb_orders_find(const pb_orders *t, const char *coid);
/* Adds a new PENDING order from req: 0, WD_EEXIST, WD_ETOOBIG (max), WD_ENOMEM. */
int pb_orders_add(pb_orders *t, const pb_order_req *req, pb_order **out);
/* Removes a pending order that could not be filled (so a retry may place it). */
void pb_orders_drop(pb_orders *t, const char *coid);

/* Parses and checks a POST /orders body: 0 or WD_EINVAL with err naming the
 * field ("quantity must be a positive number"). */
int pb_order_req_parse(const char *body, size_t len, pb_order_req *out, char *err,
                       size_t errlen);
/* Applies the fields present in a POST /faults body to f: 0 or WD_EINVAL
 * (rates in [0, 1], latency_ms and retry_after_s in bounds); f is unchanged
 * on error. */
int pb_faults_parse(const char *body, size_t len, pb_faults *f, char *err, size_t errlen);
json_t *pb_faults_json(const pb_faults *f);
/* The fill of a market order: a buy at the ask, a sell at the bid, the mid
 * (or the side present) when that side is missing; 0 when no price. */
double pb_fill_price(bool buy, double bid, double ask);
/* The order as the API shows it. */
json_t *pb_order_json(const pb_order *o);
/* Valid client order id: 1..PB_COID_MAX of A-Z a-z 0-9 - _ . : */
bool pb_coid_ok(const char *s);

#endif
