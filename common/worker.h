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
 *   WARDEN_STOP_TIMEOUT_MS        graceful stop bound (default 10000), then exit 1
 * Without WARDEN_HEARTBEAT_URL (run by hand) the worker runs standalone.
 *
 * Signals: SIGTERM and SIGINT stop gracefully (a second one exits 1 at once),
 * SIGHUP reloads. A signal whose disposition is SIG_IGN when init returns
 * (set by init, or inherited) is left ignored, so a worker can opt out.
 * On stop the command socket closes first (deferred replies are dropped),
 * then ops->stop runs; heartbeats continue until the process exits. */
#ifndef WD_WORKER_H
#define WD_WORKER_H

#include "breaker.h"
#include "proto.h"
#include <jansson.h>
#include <stdbool.h>
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
     * with err filled. Built-in commands ("ping", "reload", "breakers", "breaker-reset") are answered by the
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
/* The graceful stop bound (WARDEN_STOP_TIMEOUT_MS): a worker that waits for
 * work in flight on stop keeps well inside it. */
uint64_t wrk_stop_timeout_ms(const wrk_ctx *ctx);
void *wrk_data(const wrk_ctx *ctx);
void wrk_set_data(wrk_ctx *ctx, void *data);

/* Sends READY (once; later calls do nothing). */
void wrk_ready(wrk_ctx *ctx);
/* Adds to the progress counter the heartbeat carries. */
void wrk_progress(wrk_ctx *ctx, uint64_t n);
/* Publishes a breaker's state in heartbeats (registered on first use). */
void wrk_breaker_state(wrk_ctx *ctx, const char *name, proto_breaker_state state);
/* Registers a breaker the worker owns (it must outlive the loop, or be
 * unregistered first). The runtime then publishes it in every heartbeat: its
 * state, and the samples wrk_breaker_{critical,transitions_total,opens_total,
 * calls_total{result},retry_in_seconds}{breaker="NAME"}, and answers the
 * built-in commands for it:
 *   breakers                       {"breakers": [JSON of each breaker]}
 *   breaker-reset name=N reason=R [override=true] [min_open_ms=MS]
 *     closes an open (or half-open / forced-open) breaker; refused with
 *     WD_ESTATE when it is closed or disabled, or when it opened less than
 *     min_open_ms ago (default WRK_BRK_MIN_OPEN_MS) unless override=true.
 * critical: readiness (/readyz) depends on this breaker being closed.
 * Returns 0, WD_EEXIST (same name or breaker twice), WD_ETOOBIG (more than
 * PROTO_BREAKERS_MAX), WD_EINVAL (NULL or a name longer than PROTO_NAME_MAX). */
#define WRK_BRK_MIN_OPEN_MS 30000
int wrk_breaker_register(wrk_ctx *ctx, brk_breaker *b, bool critical);
void wrk_breaker_unregister(wrk_ctx *ctx, brk_breaker *b);
/* Asks the runtime to stop as if SIGTERM had arrived. */
void wrk_request_stop(wrk_ctx *ctx);

/* Deferred command replies. Called inside ops->command only (else, or a
 * second time in the same command, NULL): the reply is then sent by
 * wrk_command_finish(), now or later, and the command's return value, err
 * and *data are ignored. wrk_command_finish() must be called exactly once per
 * handle; if the command socket closed meanwhile (stop), the reply is
 * dropped. Handles never finished are freed when wrk_main returns. */
typedef struct wrk_pending wrk_pending;
wrk_pending *wrk_command_defer(wrk_ctx *ctx);
/* status: 0 or a negative wd_errno; data: a new reference, stolen (may be
 * NULL); err: text for a failed status (may be NULL). Frees p. */
void wrk_command_finish(wrk_pending *p, int status, json_t *data, const char *err);

#endif
