/* The aggregator worker: the one state struct (agg_worker) and the functions
 * its files share. agg_worker.c owns the ops table (init, start, stop,
 * commands, metrics); agg_process.c the tick path (validate, look up, book,
 * bars, batch) and publishing; agg_replay.c and agg_synth_src.c the sources
 * on the loop; agg_redis.c the Redis sink and source.
 *
 * Everything runs on the worker runtime's loop thread. */
#ifndef WD_AGG_WORKER_H
#define WD_AGG_WORKER_H

#include "agg.h"
#include "agg_conf.h"
#include "bus.h"
#include "metrics.h"
#include "worker.h"

#include <msgpack.h>
#include <uv.h>

typedef enum { AGG_SRC_SYNTHETIC = 0, AGG_SRC_REPLAY, AGG_SRC_REDIS, AGG_SRC_COUNT } agg_source;
const char *agg_source_name(agg_source s);

#define AGG_BAD_LINES_KEPT 32    /* most recent bad replay lines kept for `stats` */
#define AGG_BAD_LINES_LOGGED 20  /* bad replay lines logged one by one, then summed up */
#define AGG_URL_MAX 4200

typedef struct agg_replay agg_replay;
typedef struct agg_redis agg_redis;

typedef struct {
    uint64_t line;
    agg_drop_reason reason;
} agg_bad_line;

typedef struct agg_worker {
    wrk_ctx *ctx; /* NULL in unit tests that drive the tick path directly */
    uv_loop_t *loop;
    char name[PROTO_NAME_MAX + 1];
    char config_path[WD_CONF_PATH_MAX];
    char section[WD_CONF_NAME_MAX + 9];
    agg_conf conf;

    /* the pipeline */
    agg_book book;
    agg_symcache symcache;
    agg_batch batch;
    uint64_t intervals_ms[AGG_INTERVALS_MAX];
    size_t n_intervals;
    uint64_t watermark_ns; /* newest source time seen: closes bars */

    /* publishing on marketdata.sock */
    char pub_url[AGG_URL_MAX];
    bus_out *pub;
    msgpack_sbuffer sb;
    uint64_t seq;
    /* for tests and the bench: called with every message instead of / as
     * well as sending it on pub */
    int (*send_hook)(void *arg, const void *buf, size_t len);
    void *send_arg;

    /* loop handles (each closed in stop, freed with the struct after the loop) */
    uv_timer_t flush_timer, sweep_timer, synth_timer;
    uv_fs_event_t conf_watch;
    bool handles_init, watching, stopping;

    /* sources */
    bool src_on[AGG_SRC_COUNT];
    agg_synth *synth;
    uint64_t synth_last_mono_ns;
    double synth_carry;
    agg_replay *replay;
    agg_redis *redis;

    /* counters (synced into the metrics registry at each heartbeat) */
    uint64_t ticks_in[AGG_SRC_COUNT][AGG_VENUES_MAX + 1]; /* [.][n_venues]: unknown */
    uint64_t dropped[AGG_DROP_COUNT];
    uint64_t ticks_processed, quotes_out, bars_out, batches_out, publish_dropped, bars_late;
    agg_bad_line bad_lines[AGG_BAD_LINES_KEPT]; /* ring */
    uint64_t n_bad_lines;

    wd_metrics *reg;
    wd_series *h_latency, *h_batch;
    wd_metric *m_ticks_in, *m_dropped, *m_quotes, *m_bars, *m_batches, *m_pubdrop, *m_hits,
        *m_misses, *m_age, *m_symbols, *m_stale;
    double synced[AGG_SRC_COUNT][AGG_VENUES_MAX + 1];
    double synced_drop[AGG_DROP_COUNT];
    double synced_quotes, synced_bars, synced_batches, synced_pubdrop, synced_hits, synced_misses;
} agg_worker;

/* ---- agg_process.c ---- */

/* Sets up the pipeline from w->conf (book, batch, intervals, symbol cache
 * loading the symbols from w->config_path [w->section]). 0 or an error with
 * err filled. */
int agg_pipeline_init(agg_worker *w, char *err, size_t errlen);
void agg_pipeline_free(agg_worker *w);
/* One tick from a source, received at now (monotonic and realtime). */
void agg_process_tick(agg_worker *w, agg_source src, const agg_tick *t, uint64_t now_mono_ns,
                      uint64_t now_real_ns);
/* A tick or line a source could not use. */
void agg_process_drop(agg_worker *w, agg_source src, agg_drop_reason why);
/* Staleness and bar closing, run periodically. */
void agg_process_sweep(agg_worker *w, uint64_t now_mono_ns, uint64_t now_real_ns);
/* Sends what the batch holds (no-op when empty). */
void agg_publish_flush(agg_worker *w, uint64_t now_real_ns);
/* The symbols loader for the cache: reads w->config_path. */
int agg_symbols_load_config(void *arg, agg_symname *names, size_t cap, size_t *n, char *err,
                            size_t errlen);

/* ---- agg_worker.c / agg_cmd.c ---- */
int agg_worker_main(int argc, char **argv); /* wrk_main with the aggregator's ops */
int agg_command(wrk_ctx *ctx, const proto_ctl_request *req, json_t **data, char *err,
                size_t errlen);

/* ---- agg_replay.c ---- */
int agg_replay_start(agg_worker *w, const char *path, double speed, char *err, size_t errlen);
void agg_replay_stop(agg_replay *r); /* closes its handles; frees itself after */
/* For `stats`: lines read, ticks delivered, bad lines, done (EOF reached). */
void agg_replay_stats(const agg_replay *r, uint64_t *lines, uint64_t *ticks, uint64_t *bad,
                      int *done);

/* ---- agg_redis.c ---- */
int agg_redis_start(agg_worker *w, char *err, size_t errlen);
void agg_redis_stop(agg_redis *r);
/* The sink: the consolidated quote of a symbol changed / a bar closed. */
void agg_redis_quote(agg_redis *r, int sym, const proto_md_quote *q);
void agg_redis_bar(agg_redis *r, const proto_md_bar *b);
void agg_redis_flush(agg_redis *r);
void agg_redis_metrics(agg_redis *r, proto_heartbeat *hb);
/* JSON object for `stats` (new reference). */
void *agg_redis_stats(agg_redis *r);

#endif
