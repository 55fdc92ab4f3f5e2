/* The position monitor worker: its one state struct and the functions its
 * files share.
 *
 *   pm_worker.c   ops (init/start/stop/fini), the cycle, prices (marketdata
 *                 SUB + Redis fallback)
 *   pm_db.c       PostgreSQL: schema, load/reload in keyset pages, NOTIFY
 *   pm_write.c    the closing / closed transactions, water-mark batches
 *   pm_exec.c     broker calls: place (POST) or reconcile (GET), retries
 *                 with decorrelated jitter inside a retry budget
 *   pm_cmd.c      commands, metrics, the per-phase profile
 *   pm_alert.c    alerts for exits and breaker openings
 *
 * Everything runs on the worker's loop thread. */
#ifndef WD_PM_WORKER_H
#define WD_PM_WORKER_H

#include "backoff.h"
#include "bus.h"
#include "http.h"
#include "metrics.h"
#include "pg.h"
#include "pm.h"
#include "pm_conf.h"
#include "proto_md.h"
#include "redis.h"
#include "retry.h"
#include "worker.h"

#include <uv.h>

#define PM_URL_MAX (WD_CONF_PATH_MAX + 64)
#define PM_PHASES 4 /* prices, evaluation, actions, persistence */
#define PM_REJECTS_KEPT 16
#define PM_WRITE_BATCH_MAX 2000 /* positions per closing / closed / water statement */
#define PM_NUM_MAX 32 /* a number as text */

typedef enum {
    PM_ERR_DB = 0,
    PM_ERR_BROKER,
    PM_ERR_BROKER_REJECTED,
    PM_ERR_BUDGET,
    PM_ERR_REDIS,
    PM_ERR_MARKETDATA,
    PM_ERR_BOOK_FULL,
    PM_ERR_COUNT
} pm_err_type;

typedef struct {
    int64_t id;
    char why[PM_WHY_MAX + 1];
} pm_reject;

/* A fill waiting for its final transaction. */
typedef struct {
    int64_t id;
    double price;
    char boid[PM_BOID_MAX + 1];
} pm_fill;

/* A position in the list of broker calls; id guards against slot reuse. */
typedef struct {
    uint32_t pos;
    int64_t id;
} pm_citem;

/* Per-cycle figures, kept in a ring for the profile command. */
typedef struct {
    uint64_t phase_ns[PM_PHASES];
    uint64_t total_ns;
    uint32_t evaluated, quotes, db_queries, api_calls, redis_fetches;
} pm_cycle_rec;

typedef struct pm_worker {
    wrk_ctx *ctx;
    uv_loop_t *loop;
    pm_conf conf;
    char section[WD_CONF_NAME_MAX + 1];
    char md_url[PM_URL_MAX];
    char alerts_url[PM_URL_MAX];
    char broker_base[PM_URL_MAX]; /* broker_url without a trailing '/' */
    bool stopping;
    bool handles_init;

    pm_book book;
    proto_md_batch *md; /* decode buffer (large: on the heap) */

    /* clients */
    bus_in *sub;
    wd_pg *pg;
    wd_redis *redis;
    wd_http *http;
    wd_metrics *reg;
    uv_timer_t cycle_timer;
    brk_breaker *broker_brk; /* the broker endpoint's, once it exists */
    bool broker_brk_registered, pg_brk_registered, redis_brk_registered;
    uint64_t brk_opens_seen[3]; /* broker, pg, redis: opens already alerted */

    /* database state */
    uint64_t pg_connects_seen;  /* wd_pg_connects at the last (re)load */
    void *schema;               /* pm_db.c's statements of schema_file, or NULL */
    bool schema_failed, loading, loaded, load_again;
    int64_t load_after_id;      /* keyset cursor */
    uint64_t load_gen;          /* reload bookkeeping */
    uint32_t load_rows, load_rejected;
    bool closing_inflight, closed_inflight, water_inflight;
    uint64_t closing_next_ns, closed_next_ns;
    uint64_t persist_next_ns;
    uint32_t *exiting;          /* positions waiting for "closing" to be written */
    size_t n_exiting, cap_exiting;
    pm_fill *fills;             /* fills waiting for "closed" to be written */
    size_t n_fills, cap_fills;

    /* broker */
    pm_citem *closing;          /* CLOSING positions (their call state is in pm_pos) */
    size_t n_closing, cap_closing;
    uint32_t broker_inflight;
    wd_retry_budget budget;
    wd_rng rng;

    /* marketdata */
    uint64_t md_last_ns;        /* monotonic, last batch received */
    uint64_t stale_next_ns;

    /* counters (monotonic; exported as metrics) */
    uint64_t quotes, md_batches, md_bad, cycles;
    uint64_t redis_ok, redis_err, redis_unusable, skipped;
    uint64_t db_queries, api_calls, api_errors, rejected_rows;
    uint64_t exits[PM_EXIT_COUNT], errors[PM_ERR_COUNT];
    uint64_t duplicate_fills; /* broker answers for positions already closed */
    double synced[64];        /* counter values already added to the registry */

    /* cycle stats (reset by reset-metrics) */
    pm_cycle_rec cur;           /* the cycle being accumulated */
    pm_cycle_rec *ring;         /* profile_cycles entries */
    uint64_t ring_n;            /* cycles recorded since reset */
    uint64_t stat_cycles, stat_min_ns, stat_max_ns, stat_sum_ns;
    uint64_t stat_evaluated, stat_db, stat_api, stat_redis;
    pm_reject rejects[PM_REJECTS_KEPT];
    uint64_t n_rejects;

    /* metrics */
    wd_metric *m_cycle, *m_open, *m_closing, *m_exiting, *m_per_cycle, *m_symbols;
    wd_metric *m_exits, *m_errors, *m_quotes, *m_redis, *m_skipped, *m_db, *m_api;
    wd_metric *m_rejected, *m_eval, *m_throttle, *m_cmin, *m_cmax, *m_cavg;

    void *alerts; /* pm_alert.c's state */
} pm_worker;

/* pm_worker.c */
int pm_worker_main(int argc, char **argv);
void pm_count_error(pm_worker *w, pm_err_type t);
const char *pm_err_type_name(pm_err_type t);
void pm_on_fire(void *arg, uint32_t pos, pm_exit_reason reason, double price);
/* Queues an EXITING position for its closing write; false when out of memory. */
bool pm_exiting_push(pm_worker *w, uint32_t pos);

/* pm_db.c */
int pm_db_start(pm_worker *w, char *err, size_t errlen);
void pm_db_cycle(pm_worker *w, uint64_t now);  /* reconnect/reload, writes due */
void pm_db_stop(pm_worker *w);
void pm_db_fini(pm_worker *w);
int pm_db_seed_demo(pm_worker *w, int n, char *err, size_t errlen);
/* Shared with pm_write.c: counts a statement; sets *next to now +
 * db_retry_interval; true (and counted, logged) when r failed; reads one row
 * again (NOTIFY, or a closing write that found the row not open). */
void pm_db_count_query(pm_worker *w);
void pm_db_retry_later(pm_worker *w, uint64_t *next);
bool pm_db_failed(pm_worker *w, const wd_pg_result *r, const char *what);
void pm_db_read_one(pm_worker *w, int64_t id);

/* pm_write.c: the closing and closed writes due (pm_db_cycle calls it once
 * loaded and connected); pm_db_persist writes one batch of water marks
 * (taken from the book) every persist_interval while some are pending. */
void pm_write_cycle(pm_worker *w, uint64_t now);
void pm_db_persist(pm_worker *w, uint64_t now);

/* pm_exec.c */
int pm_exec_start(pm_worker *w, char *err, size_t errlen);
void pm_exec_add(pm_worker *w, uint32_t pos); /* a position became CLOSING */
void pm_exec_cycle(pm_worker *w, uint64_t now);
void pm_exec_stop(pm_worker *w);
/* A fill from the broker: queue the final write. */
void pm_exec_filled(pm_worker *w, uint32_t pos, double price, const char *boid);
/* Puts a fill whose write failed back in the queue. */
void pm_exec_refill(pm_worker *w, const pm_fill *f);

/* pm_cmd.c */
int pm_metrics_init(pm_worker *w);
void pm_metrics_heartbeat(wrk_ctx *ctx, proto_heartbeat *hb);
int pm_command(wrk_ctx *ctx, const proto_ctl_request *req, json_t **data, char *err,
               size_t errlen);
void pm_cycle_record(pm_worker *w, const pm_cycle_rec *r);
void pm_stats_reset(pm_worker *w);

/* pm_alert.c */
int pm_alert_start(pm_worker *w);
void pm_alert_exit(pm_worker *w, const pm_pos *p, const pm_fill *f);
void pm_alert_breaker(pm_worker *w, const char *name, const char *reason);
void pm_alert_stop(pm_worker *w);
void pm_alert_fini(pm_worker *w);

#endif
