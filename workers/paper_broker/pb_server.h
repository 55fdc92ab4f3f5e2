/* The paper broker's server state (one struct) and its start/stop. See pb.h
 * for the threading rules. */
#ifndef WD_PB_SERVER_H
#define WD_PB_SERVER_H

#include "backoff.h"
#include "pb.h"
#include "redis.h"
#include "worker.h"

#include <pthread.h>
#include <uv.h>

#define PB_LISTEN_MAX 255
#define PB_KEY_PREFIX_MAX 63
#define PB_STATS_IDS_MAX 10000 /* per-id counts listed by GET /stats */

typedef struct pb_req pb_req;

typedef struct {
    uint64_t real_ns;
    int status;
    char method[8];
    char path[80];
} pb_recent;

typedef struct {
    /* settings */
    char listen[PB_LISTEN_MAX + 1];
    char key_prefix[PB_KEY_PREFIX_MAX + 1];
    pb_faults faults;
    /* loop-thread state */
    uv_loop_t *loop;
    uv_async_t wake;
    struct nng_http_server *server;
    wd_redis *redis;
    /* pb_prices.c: the Redis client's breaker is closed again as soon as a
     * new connection's handshake is answered (watch_t polls the client's
     * connect count), not only when its cooldown ends. */
    wrk_ctx *ctx;
    uv_timer_t watch_t;
    bool watch_on, brk_registered;
    uint64_t seen_connects, breaker_resets;
    pb_orders orders;
    wd_rng rng;
    pb_req *hung; /* requests never to be answered (until stop) */
    bool stopping;
    uint64_t next_boid;
    uint64_t posts, duplicate_posts, gets, filled, inj_500, inj_429, inj_hang;
    uint64_t price_errors, no_price;
    pb_recent recent[PB_RECENT_MAX];
    uint64_t n_recent;
    /* the queue from nng's threads, under mu */
    pthread_mutex_t mu;
    pb_req *q_head, *q_tail;
} pb_server;

int pb_server_start(pb_server *s, uv_loop_t *loop, char *err, size_t errlen);
void pb_server_stop(pb_server *s);
/* GET /stats (and `wardenctl call NAME stats`): a new object. */
json_t *pb_server_stats(pb_server *s);

/* pb_prices.c: the price source. Opens the Redis client on s->loop
 * (registering its breaker with ctx), or WD_EINVAL & co. with err filled. */
#define PB_PRICES_CLIENT "redis-prices" /* client and breaker name */
int pb_prices_open(pb_server *s, wrk_ctx *ctx, const char *url, char *err, size_t errlen);
/* Unregisters the breaker, closes the client and the watch timer. */
void pb_prices_close(pb_server *s);
/* The breaker as GET /stats shows it (NULL without Redis): a new object. */
json_t *pb_prices_json(pb_server *s);

/* warden-paper-broker's main. */
int pb_main(int argc, char **argv);

#endif
