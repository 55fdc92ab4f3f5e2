/* Worker runtime: a worker's main() hands an ops table to wrk_main(), which
 * owns the libuv loop, signals (SIGTERM: graceful stop; SIGHUP: reload), the
 * READY message, the heartbeat timer, the command REP socket and logging.
 * The worker owns only its job.
 *
 * The supervisor passes the runtime its wiring in the environment:
 *   WARDEN_NAME                   worker name (from [worker:NAME])
 *   WARDEN_CONFIG                 path of the config file
 *   WARDEN_RUN_DIR                run directory
 *   WARDEN_HEARTBEAT_URL          where READY and heartbeats are pushed
 *   WARDEN_COMMAND_URL            where the worker's command REP socket listens
 *   WARDEN_EVENTS_URL             the supervisor's event PUB socket
 *   WARDEN_HEARTBEAT_INTERVAL_MS  heartbeat period
 *   WARDEN_LOG_LEVEL              debug|info|warn|error
 * Without WARDEN_HEARTBEAT_URL (run by hand) the worker runs standalone. */
#ifndef WD_WORKER_H
#define WD_WORKER_H

#include "proto.h"
#include <jansson.h>
#include <stdint.h>
#include <uv.h>

typedef struct wrk_ctx wrk_ctx;

typedef struct {
    const char *name; /* default name when WARDEN_NAME is unset */
    /* Parse argv/config, allocate. No network I/O yet. Nonzero: exit 2. */
    int (*init)(wrk_ctx *ctx, int argc, char **argv);
    /* Start work on the loop. Call wrk_ready() when ready to serve (now or
     * later). Nonzero: exit 1. */
    int (*start)(wrk_ctx *ctx);
    /* Graceful stop requested (SIGTERM). Close the worker's own handles; the
     * runtime exits 0 when the loop has no more active handles of the worker,
     * or at once if stop is NULL. */
    void (*stop)(wrk_ctx *ctx);
    /* SIGHUP or the "reload" command. May be NULL. */
    int (*reload)(wrk_ctx *ctx);
    /* A forwarded command (wardenctl call NAME CMD k=v...). Set *data to a new
     * JSON value for the reply (may stay NULL). Return 0 or a negative wd_errno
     * with err filled. Built-in commands ("ping", "reload") are answered by the
     * runtime before this is called. May be NULL. */
    int (*command)(wrk_ctx *ctx, const proto_ctl_request *req, json_t **data, char *err,
                   size_t errlen);
    /* Append metric samples to the heartbeat (hb->n_metrics < PROTO_METRICS_MAX). */
    void (*metrics)(wrk_ctx *ctx, proto_heartbeat *hb);
    /* Free what init allocated; called after the loop ends. May be NULL. */
    void (*fini)(wrk_ctx *ctx);
} wrk_ops;

int wrk_main(int argc, char **argv, const wrk_ops *ops);

uv_loop_t *wrk_loop(wrk_ctx *ctx);
const char *wrk_name(const wrk_ctx *ctx);
const char *wrk_config_path(const wrk_ctx *ctx); /* NULL when none */
void *wrk_data(const wrk_ctx *ctx);
void wrk_set_data(wrk_ctx *ctx, void *data);

/* Sends READY (once; later calls do nothing). */
void wrk_ready(wrk_ctx *ctx);
/* Adds to the progress counter the heartbeat carries. */
void wrk_progress(wrk_ctx *ctx, uint64_t n);
/* Publishes a breaker's state in heartbeats (registered on first use). */
void wrk_breaker_state(wrk_ctx *ctx, const char *name, proto_breaker_state state);
/* Asks the runtime to stop as if SIGTERM had arrived. */
void wrk_request_stop(wrk_ctx *ctx);

#endif
