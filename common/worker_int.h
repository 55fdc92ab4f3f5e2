/* Internal to worker.c and worker_cmd.c: the runtime's state. */
#ifndef WD_WORKER_INT_H
#define WD_WORKER_INT_H

#include "bus.h"
#include "worker.h"
#include <stdbool.h>

#define WRK_URL_MAX 1024
#define WRK_PATH_MAX 4096
#define WRK_CMD_MODE 0600
#define WRK_HB_INTERVAL_DEFAULT_MS 1000
#define WRK_HB_INTERVAL_MIN_MS 10
#define WRK_HB_INTERVAL_MAX_MS 3600000
#define WRK_STOP_TIMEOUT_DEFAULT_MS 10000
#define WRK_STOP_TIMEOUT_MAX_MS 3600000
#define WRK_LAG_PROBE_MS 100 /* loop lag sampling period */
#define WRK_DRAIN_ITER_MAX 64 /* loop iterations to finish closing at exit */
#define WRK_CLOSE_DRAIN_MS 1000 /* wait for background socket closes at exit */

struct wrk_pending {
    wrk_ctx *ctx;
    bus_rep_request *req; /* NULL once the command socket closed */
    wrk_pending *prev, *next;
};

/* A breaker registered with wrk_breaker_register (owned by the worker). */
typedef struct {
    brk_breaker *b;
    bool critical;
} wrk_brk_reg;

struct wrk_ctx {
    const wrk_ops *ops;
    char name[PROTO_NAME_MAX + 1];
    char config_path[WRK_PATH_MAX];
    bool has_config;
    char hb_url[WRK_URL_MAX];
    char cmd_url[WRK_URL_MAX];
    uint64_t hb_interval_ms;
    uint64_t stop_timeout_ms;
    void *data;

    uv_loop_t loop;
    bool loop_ok;
    uv_signal_t sig_term, sig_int, sig_hup;
    bool sig_term_on, sig_int_on, sig_hup_on;
    uv_timer_t hb_timer, lag_timer, stop_timer;
    bool timers_on;

    bus_out *hb;
    bus_rep *cmd;
    wrk_pending *pending;   /* deferred command replies */
    bool in_command;            /* inside ops->command: wrk_command_defer allowed */
    bus_rep_request *cur_req;   /* the request ops->command is serving */
    bool cur_deferred;          /* ops->command called wrk_command_defer */

    uint64_t seq;
    uint64_t start_mono_ns;
    uint64_t progress;
    uint64_t lag_due_ns; /* when the lag probe should fire */
    uint64_t lag_max_us; /* since the last heartbeat */
    uint32_t n_breakers;
    proto_breaker breakers[PROTO_BREAKERS_MAX];
    bool breakers_full_warned;
    uint32_t n_regs;
    wrk_brk_reg regs[PROTO_BREAKERS_MAX];

    bool running;        /* start() returned */
    bool ready;          /* wrk_ready() called */
    bool ready_sent;
    uint64_t ready_conn;  /* heartbeat connection READY went out on */
    bool stopping;
    bool stop_pending;   /* wrk_request_stop() before start */

    uint64_t hb_sent_total;
    uint64_t commands_total;
    uint64_t command_errors_total;
    uint64_t reloads_total;

    proto_heartbeat hb_msg;     /* scratch, too big for the stack */
    proto_ctl_request cmd_req;  /* scratch for the command being served */
};

void wrk_header(wrk_ctx *c, proto_header *hdr);
int wrk_reload(wrk_ctx *c, const char *why);
/* Registered breakers (worker_brk.c): heartbeat states and samples, and the
 * built-in commands. wrk_brk_command returns 1 when cmd is not one of its own. */
void wrk_brk_heartbeat(wrk_ctx *c, proto_heartbeat *hb);
int wrk_brk_command(wrk_ctx *c, const proto_ctl_request *req, json_t **data, int *rc, char *err,
                    size_t errlen);
/* Command socket (worker_cmd.c). */
int wrk_cmd_open(wrk_ctx *c);
/* Closes the socket; deferred replies still held by the worker are dropped. */
void wrk_cmd_close(wrk_ctx *c);
/* Frees deferred-reply handles the worker never finished. */
void wrk_cmd_free_pending(wrk_ctx *c);

#endif
