/* Worker runtime: environment, loop, signals, READY, heartbeats, loop lag,
 * graceful stop. The command socket is in worker_cmd.c. */
#include "clock.h"
#include "curl_uv.h"
#include "log.h"
#include "wd_error.h"
#include "worker_int.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WRK_EXIT_OK 0
#define WRK_EXIT_FAIL 1
#define WRK_EXIT_USAGE 2
#define WRK_DEFAULT_NAME "worker"

/* ---- environment ---- */

/* Copies env var `var` into buf (bounded); 1 if set, 0 if unset/empty, -1 if too long. */
static int env_str(const char *var, char *buf, size_t buflen) {
    const char *v = getenv(var);
    if (v == NULL || v[0] == '\0')
        return 0;
    if (strlen(v) >= buflen) {
        wd_error("%s: value longer than %zu bytes", var, buflen - 1);
        return -1;
    }
    memcpy(buf, v, strlen(v) + 1);
    return 1;
}

/* Parses a decimal env var within [min, max]; unset leaves *out. */
static int env_u64(const char *var, uint64_t min, uint64_t max, uint64_t *out) {
    const char *v = getenv(var);
    if (v == NULL || v[0] == '\0')
        return 0;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n < min || n > max) {
        wd_error("%s: '%s' is not a whole number in %llu..%llu", var, v,
                 (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = n;
    return 0;
}

static int wrk_parse_env(wrk_ctx *c) {
    const char *lvl = getenv("WARDEN_LOG_LEVEL");
    wd_log_level level = WD_LOG_INFO;
    const char *name = getenv("WARDEN_NAME");
    if (name == NULL || name[0] == '\0')
        name = c->ops->name != NULL ? c->ops->name : WRK_DEFAULT_NAME;
    /* Log under a usable name before anything can fail. */
    snprintf(c->name, sizeof c->name, "%s", name);
    wd_log_init(c->name, level);
    if (strlen(name) > PROTO_NAME_MAX) {
        wd_error("WARDEN_NAME: '%s' is longer than %d bytes", name, PROTO_NAME_MAX);
        return -1;
    }
    if (lvl != NULL && lvl[0] != '\0' && wd_log_level_parse(lvl, &level) != 0) {
        wd_error("WARDEN_LOG_LEVEL: '%s' is not one of debug, info, warn, error", lvl);
        return -1;
    }
    wd_log_init(c->name, level);
    c->hb_interval_ms = WRK_HB_INTERVAL_DEFAULT_MS;
    c->stop_timeout_ms = WRK_STOP_TIMEOUT_DEFAULT_MS;
    int cfg = env_str("WARDEN_CONFIG", c->config_path, sizeof c->config_path);
    c->has_config = cfg == 1;
    if (cfg < 0 || env_str("WARDEN_HEARTBEAT_URL", c->hb_url, sizeof c->hb_url) < 0 ||
        env_str("WARDEN_COMMAND_URL", c->cmd_url, sizeof c->cmd_url) < 0 ||
        env_u64("WARDEN_HEARTBEAT_INTERVAL_MS", WRK_HB_INTERVAL_MIN_MS, WRK_HB_INTERVAL_MAX_MS,
                &c->hb_interval_ms) < 0 ||
        env_u64("WARDEN_STOP_TIMEOUT_MS", 1, WRK_STOP_TIMEOUT_MAX_MS, &c->stop_timeout_ms) < 0)
        return -1;
    return 0;
}

/* ---- messages ---- */

void wrk_header(wrk_ctx *c, proto_header *hdr) {
    memset(hdr, 0, sizeof *hdr);
    snprintf(hdr->sender, sizeof hdr->sender, "%s", c->name);
    hdr->seq = ++c->seq;
    hdr->ts_ns = wd_clock_real_ns();
}

static void hb_metric(proto_heartbeat *hb, const char *name, double value) {
    if (hb->n_metrics >= PROTO_METRICS_MAX)
        return;
    proto_metric *m = &hb->metrics[hb->n_metrics++];
    snprintf(m->name, sizeof m->name, "%s", name);
    m->value = value;
}

static void wrk_send_ready(wrk_ctx *c) {
    proto_ready r = {.pid = (uint32_t)getpid()};
    proto_header hdr;
    msgpack_sbuffer sb;
    snprintf(r.version, sizeof r.version, "%s", WARDEN_VERSION);
    msgpack_sbuffer_init(&sb);
    wrk_header(c, &hdr);
    int rc = proto_ready_pack(&sb, &hdr, &r);
    if (rc == 0)
        rc = bus_out_send(c->hb, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (rc == 0) {
        /* Queued before any connection, it leaves on the first one. */
        uint64_t conn = bus_out_connects(c->hb);
        if (c->ready_sent)
            wd_debug("READY sent again on heartbeat connection %llu", (unsigned long long)conn);
        else
            wd_info("ready");
        c->ready_sent = true;
        c->ready_conn = conn > 0 ? conn : 1;
    } else {
        /* Retried with the next heartbeat. */
        wd_warn("READY not sent: %s", wd_strerror(rc));
    }
}

static void wrk_send_heartbeat(wrk_ctx *c) {
    proto_heartbeat *hb = &c->hb_msg;
    proto_header hdr;
    msgpack_sbuffer sb;
    /* READY is sent once, but a connection that broke right after may have
     * taken it along (a listener re-created by the bus watchdog, a restarted
     * socket): it goes again on every new connection. The supervisor ignores
     * a READY from a worker already RUNNING. */
    if (c->ready && (!c->ready_sent || bus_out_connects(c->hb) > c->ready_conn))
        wrk_send_ready(c);
    memset(hb, 0, sizeof *hb);
    hb->pid = (uint32_t)getpid();
    hb->progress = c->progress;
    hb->loop_lag_us = c->lag_max_us;
    c->lag_max_us = 0;
    hb->n_breakers = c->n_breakers;
    memcpy(hb->breakers, c->breakers, c->n_breakers * sizeof c->breakers[0]);
    /* The runtime's own samples first, so a worker filling the table cannot
     * crowd them out. */
    double uptime = (double)(wd_clock_mono_ns() - c->start_mono_ns) / (double)WD_NS_PER_SEC;
    hb_metric(hb, "wrk_heartbeats_sent_total", (double)c->hb_sent_total);
    hb_metric(hb, "wrk_heartbeats_dropped_total", (double)bus_out_dropped(c->hb));
    hb_metric(hb, "wrk_commands_total", (double)c->commands_total);
    hb_metric(hb, "wrk_command_errors_total", (double)c->command_errors_total);
    hb_metric(hb, "wrk_reloads_total", (double)c->reloads_total);
    hb_metric(hb, "wrk_uptime_seconds", uptime);
    wrk_brk_heartbeat(c, hb);
    if (c->ops->metrics != NULL)
        c->ops->metrics(c, hb);
    if (hb->n_metrics > PROTO_METRICS_MAX)
        hb->n_metrics = PROTO_METRICS_MAX;
    msgpack_sbuffer_init(&sb);
    wrk_header(c, &hdr);
    int rc = proto_heartbeat_pack(&sb, &hdr, hb);
    if (rc == 0)
        rc = bus_out_send(c->hb, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (rc == 0)
        c->hb_sent_total++;
    else if (rc != WD_EBUSY) /* drops are counted, not logged every period */
        wd_warn("heartbeat not sent: %s", wd_strerror(rc));
}

static void on_hb_timer(uv_timer_t *t) { wrk_send_heartbeat(t->data); }

/* Loop lag: how late a one-shot probe timer fires compared with when it was
 * due, by the monotonic clock; the maximum since the last heartbeat is sent. */
static void on_lag_timer(uv_timer_t *t) {
    wrk_ctx *c = t->data;
    uint64_t now = wd_clock_mono_ns();
    if (now > c->lag_due_ns) {
        uint64_t lag_us = (now - c->lag_due_ns) / 1000u;
        if (lag_us > c->lag_max_us)
            c->lag_max_us = lag_us;
    }
    c->lag_due_ns = now + WRK_LAG_PROBE_MS * WD_NS_PER_MS;
    uv_timer_start(&c->lag_timer, on_lag_timer, WRK_LAG_PROBE_MS, 0);
}

/* ---- stop and reload ---- */

static void wrk_exit_now(int code) {
    /* Skips atexit handlers and nng teardown: this is the emergency path. */
    fflush(NULL);
    _exit(code);
}

static void on_stop_timeout(uv_timer_t *t) {
    wrk_ctx *c = t->data;
    wd_error("graceful stop took longer than %llu ms; exiting",
             (unsigned long long)c->stop_timeout_ms);
    wrk_exit_now(WRK_EXIT_FAIL);
}

static void wrk_begin_stop(wrk_ctx *c, const char *why) {
    if (c->stopping)
        return;
    if (!c->running) {
        c->stop_pending = true;
        return;
    }
    c->stopping = true;
    wd_info("stopping (%s)", why);
    uv_timer_start(&c->stop_timer, on_stop_timeout, c->stop_timeout_ms, 0);
    wrk_cmd_close(c);
    /* The runtime's handles no longer keep the loop alive: uv_run returns
     * once the worker's own handles are closed. They still fire until then,
     * so heartbeats, the deadline and a second signal keep working. */
    uv_unref((uv_handle_t *)&c->stop_timer);
    uv_unref((uv_handle_t *)&c->hb_timer);
    uv_unref((uv_handle_t *)&c->lag_timer);
    if (c->sig_term_on)
        uv_unref((uv_handle_t *)&c->sig_term);
    if (c->sig_int_on)
        uv_unref((uv_handle_t *)&c->sig_int);
    if (c->sig_hup_on)
        uv_unref((uv_handle_t *)&c->sig_hup);
    if (c->ops->stop != NULL)
        c->ops->stop(c);
    else
        uv_stop(&c->loop);
}

int wrk_reload(wrk_ctx *c, const char *why) {
    c->reloads_total++;
    if (c->ops->reload == NULL) {
        wd_info("reload (%s): nothing to reload", why);
        return 0;
    }
    int rc = c->ops->reload(c);
    if (rc != 0)
        wd_warn("reload (%s) failed: %s", why, wd_strerror(rc));
    else
        wd_info("reloaded (%s)", why);
    return rc;
}

static void on_signal(uv_signal_t *h, int signum) {
    wrk_ctx *c = h->data;
    if (signum == SIGHUP) {
        if (!c->stopping)
            wrk_reload(c, "SIGHUP");
        return;
    }
    if (c->stopping) {
        wd_warn("second %s while stopping; exiting", signum == SIGINT ? "SIGINT" : "SIGTERM");
        wrk_exit_now(WRK_EXIT_FAIL);
    }
    wrk_begin_stop(c, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* Watches signum unless it is ignored (by the parent or by init). */
static int wrk_signal(wrk_ctx *c, uv_signal_t *h, bool *on, int signum) {
    struct sigaction old;
    if (sigaction(signum, NULL, &old) == 0 && old.sa_handler == SIG_IGN) {
        wd_info("signal %d is ignored; not handling it", signum);
        return 0;
    }
    int rv = uv_signal_init(&c->loop, h);
    if (rv == 0) {
        h->data = c;
        *on = true;
        rv = uv_signal_start(h, on_signal, signum);
    }
    if (rv != 0) {
        wd_error("signal %d: %s", signum, uv_strerror(rv));
        return WD_ESYS;
    }
    return 0;
}

/* ---- public accessors ---- */

uv_loop_t *wrk_loop(wrk_ctx *c) { return &c->loop; }
const char *wrk_name(const wrk_ctx *c) { return c->name; }
uint64_t wrk_stop_timeout_ms(const wrk_ctx *c) { return c->stop_timeout_ms; }
const char *wrk_config_path(const wrk_ctx *c) { return c->has_config ? c->config_path : NULL; }
void *wrk_data(const wrk_ctx *c) { return c->data; }
void wrk_set_data(wrk_ctx *c, void *data) { c->data = data; }
void wrk_progress(wrk_ctx *c, uint64_t n) { c->progress += n; }
void wrk_request_stop(wrk_ctx *c) { wrk_begin_stop(c, "requested"); }

void wrk_ready(wrk_ctx *c) {
    if (c->ready)
        return;
    c->ready = true;
    if (c->hb != NULL)
        wrk_send_ready(c);
    else if (c->hb_url[0] == '\0')
        wd_info("ready (standalone)");
}

void wrk_breaker_state(wrk_ctx *c, const char *name, proto_breaker_state state) {
    if (name == NULL || name[0] == '\0' || strlen(name) > PROTO_NAME_MAX ||
        (unsigned)state >= PROTO_BRK_COUNT) {
        wd_warn("breaker state ignored: bad name or state");
        return;
    }
    for (uint32_t i = 0; i < c->n_breakers; i++) {
        if (strcmp(c->breakers[i].name, name) == 0) {
            c->breakers[i].state = state;
            return;
        }
    }
    if (c->n_breakers >= PROTO_BREAKERS_MAX) {
        if (!c->breakers_full_warned)
            wd_warn("more than %d breakers; '%s' not reported", PROTO_BREAKERS_MAX, name);
        c->breakers_full_warned = true;
        return;
    }
    proto_breaker *b = &c->breakers[c->n_breakers++];
    snprintf(b->name, sizeof b->name, "%s", name);
    b->state = state;
}

/* ---- main ---- */

static void close_if_open(uv_handle_t *h) {
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Closes the runtime's handles and lets the loop run their close callbacks
 * without waiting on the worker's handles. */
static void wrk_teardown(wrk_ctx *c) {
    wrk_cmd_close(c);
    if (c->timers_on) {
        close_if_open((uv_handle_t *)&c->hb_timer);
        close_if_open((uv_handle_t *)&c->lag_timer);
        close_if_open((uv_handle_t *)&c->stop_timer);
        c->timers_on = false;
    }
    if (c->sig_term_on)
        close_if_open((uv_handle_t *)&c->sig_term);
    if (c->sig_int_on)
        close_if_open((uv_handle_t *)&c->sig_int);
    if (c->sig_hup_on)
        close_if_open((uv_handle_t *)&c->sig_hup);
    c->sig_term_on = c->sig_int_on = c->sig_hup_on = false;
    for (int i = 0; i < WRK_DRAIN_ITER_MAX && uv_run(&c->loop, UV_RUN_NOWAIT) != 0; i++)
        ;
}

static int wrk_setup(wrk_ctx *c) {
    char err[PROTO_ERROR_MAX + 1] = "";
    int rc;
    if ((rc = wrk_signal(c, &c->sig_term, &c->sig_term_on, SIGTERM)) != 0 ||
        (rc = wrk_signal(c, &c->sig_int, &c->sig_int_on, SIGINT)) != 0 ||
        (rc = wrk_signal(c, &c->sig_hup, &c->sig_hup_on, SIGHUP)) != 0)
        return rc;
    uv_timer_init(&c->loop, &c->hb_timer);
    uv_timer_init(&c->loop, &c->lag_timer);
    uv_timer_init(&c->loop, &c->stop_timer);
    c->hb_timer.data = c->lag_timer.data = c->stop_timer.data = c;
    c->timers_on = true;
    c->lag_due_ns = wd_clock_mono_ns() + WRK_LAG_PROBE_MS * WD_NS_PER_MS;
    uv_timer_start(&c->lag_timer, on_lag_timer, WRK_LAG_PROBE_MS, 0);
    if (c->hb_url[0] != '\0') {
        /* The dial is in the background; this fails only on a bad URL. The
         * worker keeps working without heartbeats rather than not at all. */
        if ((rc = bus_push_dial(c->hb_url, &c->hb, err, sizeof err)) != 0)
            wd_error("heartbeat socket: %s (%s); running without heartbeats", err,
                     wd_strerror(rc));
        else
            uv_timer_start(&c->hb_timer, on_hb_timer, 0, c->hb_interval_ms);
    } else {
        wd_info("no WARDEN_HEARTBEAT_URL: running standalone");
    }
    if (c->cmd_url[0] != '\0' && (rc = wrk_cmd_open(c)) != 0)
        return rc;
    return 0;
}

int wrk_main(int argc, char **argv, const wrk_ops *ops) {
    int code = WRK_EXIT_FAIL, rv;
    if (ops == NULL)
        return WRK_EXIT_USAGE;
    wrk_ctx *c = calloc(1, sizeof *c);
    if (c == NULL) {
        fprintf(stderr, "out of memory\n");
        return WRK_EXIT_FAIL;
    }
    c->ops = ops;
    c->start_mono_ns = wd_clock_mono_ns();
    /* libcurl's global set-up is not thread-safe: do it once, here, before
     * any worker code (or nng thread) might start a transfer. */
    if (wd_curl_global_init() != 0) {
        fprintf(stderr, "libcurl global init failed\n");
        free(c);
        return WRK_EXIT_FAIL;
    }
    if (wrk_parse_env(c) != 0) {
        free(c);
        return WRK_EXIT_USAGE;
    }
    if ((rv = uv_loop_init(&c->loop)) != 0) {
        wd_error("uv_loop_init: %s", uv_strerror(rv));
        free(c);
        return WRK_EXIT_FAIL;
    }
    c->loop_ok = true;
    /* A closed stdout/stderr pipe must surface as EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    if (ops->init != NULL && ops->init(c, argc, argv) != 0) {
        code = WRK_EXIT_USAGE;
        goto done;
    }
    if (wrk_setup(c) != 0)
        goto fini;
    if (c->ready && c->hb != NULL && !c->ready_sent)
        wrk_send_ready(c); /* wrk_ready() was called from init */
    if (ops->start != NULL && (rv = ops->start(c)) != 0) {
        wd_error("start failed (%d)", rv);
        goto fini;
    }
    c->running = true;
    if (c->stop_pending)
        wrk_begin_stop(c, "requested");
    uv_run(&c->loop, UV_RUN_DEFAULT);
    code = WRK_EXIT_OK;
    wd_info("stopped");
fini:
    wrk_teardown(c);
    if (ops->fini != NULL)
        ops->fini(c);
done:
    wrk_teardown(c);
    bus_out_close(c->hb);
    c->hb = NULL;
    /* Sockets close in the background (bus.h); give them a bounded moment
     * so peers see a clean close, but never hang the exit on nng. */
    if (bus_close_drain(WRK_CLOSE_DRAIN_MS) != 0)
        wd_warn("sockets still closing after %d ms; exiting anyway", WRK_CLOSE_DRAIN_MS);
    if ((rv = uv_loop_close(&c->loop)) != 0)
        wd_warn("loop not closed: the worker left handles open (%s)", uv_strerror(rv));
    wrk_cmd_free_pending(c);
    free(c);
    return code;
}
