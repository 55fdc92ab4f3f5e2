/* warden-testworker: a worker on the runtime whose misbehaviour is chosen by
 * options and commands, for the supervisor's integration tests. Run with
 * --help for the options; the commands are listed in usage[] below. */
#include "breaker.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"
#include "worker.h"
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TW_PROG "warden-testworker"
#define TW_MS_MAX 86400000ULL         /* one day */
#define TW_BYTES_MAX (1ULL << 30)     /* 1 GiB */
#define TW_EXIT_CODE_MAX 255
#define TW_TICK_MS 100                /* progress counter period */
#define TW_FLOOD_TICK_MS 10
#define TW_FLOOD_CHUNK_MAX 65536      /* bytes written per flood tick */
#define TW_LINE_LEN 100               /* flood line length, newline included */
#define TW_WRITE_CHUNK 65536
#define TW_ACT_DELAY_MS 100           /* lets a command's reply leave first */
#define TW_BREAKERS_MAX 4             /* --breaker options */
#define TW_BREAKER_OPEN_MS 60000      /* default cooldown of a --breaker */
#define TW_FAIL_MAX 1000              /* failures one `fail` command records */

static const char usage[] =
    "usage: " TW_PROG " [options]\n"
    "  --ready-delay MS     wait MS before READY\n"
    "  --no-ready           never send READY\n"
    "  --crash-after MS     abort() after MS\n"
    "  --exit-after MS      exit after MS with --exit-code (default 0)\n"
    "  --exit-code N        0..255\n"
    "  --hang-after MS      block the loop forever after MS (no more heartbeats)\n"
    "  --ignore-term        ignore SIGTERM (the supervisor must SIGKILL)\n"
    "  --flood BYTES_PER_S  write lines to stdout continuously\n"
    "  --long-line BYTES    write one line of BYTES bytes at start\n"
    "  --print TEXT         print TEXT as a line on stdout and stderr at start\n"
    "  --slow-stop MS       take MS to stop gracefully\n"
    "  --breaker NAME[:critical]  a real circuit breaker registered with the\n"
    "                       runtime (opens on 1 failure; repeatable, up to 4)\n"
    "  --breaker-open MS    cooldown of the --breaker breakers (default 60000)\n"
    "commands: crash, hang, exit code=N, echo k=v..., progress n=N,\n"
    "  breaker name=X state=closed|open|half_open|forced_open|disabled,\n"
    "  fail breaker=X [n=N] [reason=TEXT], succeed breaker=X,\n"
    "  flood bytes=N, sleep ms=N (and the runtime's breakers, breaker-reset)\n";

typedef enum { ACT_NONE, ACT_CRASH, ACT_HANG, ACT_EXIT } tw_action;

typedef struct tw_sleep tw_sleep;
struct tw_sleep {
    uv_timer_t timer;
    struct tw *tw;
    wrk_pending *pending;
    uint64_t ms;
    tw_sleep *prev, *next;
};

typedef struct tw {
    wrk_ctx *ctx;
    /* options; -1 = not given */
    int64_t ready_delay_ms, crash_after_ms, exit_after_ms, hang_after_ms, slow_stop_ms;
    int exit_code;
    bool exit_code_set, no_ready, ignore_term;
    uint64_t flood_bps, long_line;
    const char *print_text;
    /* state */
    uv_timer_t tick, ready_t, crash_t, exit_t, hang_t, flood_t, act_t, stop_t;
    bool timers_init, stopping;
    tw_action act;
    int act_code;
    uint64_t ticks, reloads, flood_budget, flood_bytes_total, flood_seq;
    tw_sleep *sleeps;
    /* --breaker: real breakers driven by the fail/succeed commands */
    int n_brk;
    brk_breaker brk[TW_BREAKERS_MAX];
    bool brk_critical[TW_BREAKERS_MAX];
    int64_t brk_open_ms;
} tw;

/* ---- helpers ---- */

static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
    char *end;
    if (s == NULL || s[0] < '0' || s[0] > '9')
        return WD_EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v > max)
        return WD_ERANGE;
    *out = v;
    return 0;
}

static void hang_forever(void) {
    wd_warn("hanging: the loop is blocked from now on");
    for (;;)
        sleep(1);
}

static void exit_now(int code) {
    fflush(NULL);
    _exit(code);
}

/* Writes all of buf to stdout; false when stdout is gone (EPIPE) or full. */
static bool write_all(const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* ---- timers ---- */

static void on_tick(uv_timer_t *t) {
    tw *w = t->data;
    w->ticks++;
    wrk_progress(w->ctx, 1);
}

static void on_ready(uv_timer_t *t) { wrk_ready(((tw *)t->data)->ctx); }
static void on_crash(uv_timer_t *t) {
    (void)t;
    wd_warn("crashing (abort)");
    abort();
}
static void on_exit_timer(uv_timer_t *t) {
    tw *w = t->data;
    wd_info("exiting with code %d", w->exit_code);
    exit_now(w->exit_code);
}
static void on_hang(uv_timer_t *t) {
    (void)t;
    hang_forever();
}

static void on_act(uv_timer_t *t) {
    tw *w = t->data;
    switch (w->act) {
    case ACT_CRASH:
        wd_warn("crashing (abort) on command");
        abort();
    case ACT_HANG:
        hang_forever();
        break;
    case ACT_EXIT:
        wd_info("exiting with code %d on command", w->act_code);
        exit_now(w->act_code);
        break;
    case ACT_NONE:
        break;
    }
}

static void on_flood(uv_timer_t *t) {
    tw *w = t->data;
    char buf[TW_FLOOD_CHUNK_MAX];
    w->flood_budget += w->flood_bps * TW_FLOOD_TICK_MS / 1000u;
    size_t n = w->flood_budget < sizeof buf ? (size_t)w->flood_budget : sizeof buf;
    size_t off = 0;
    while (off < n) {
        size_t line = n - off < TW_LINE_LEN ? n - off : TW_LINE_LEN;
        char head[TW_LINE_LEN + 1];
        int h = snprintf(head, sizeof head, "flood %012llu ", (unsigned long long)++w->flood_seq);
        for (size_t i = 0; i < line; i++)
            buf[off + i] = (h > 0 && i < (size_t)h) ? head[i] : 'x';
        buf[off + line - 1] = '\n';
        off += line;
    }
    w->flood_budget -= n;
    if (n > 0 && !write_all(buf, n)) {
        wd_warn("stdout is gone; flooding stops");
        w->flood_bps = 0;
        w->flood_budget = 0;
    }
    w->flood_bytes_total += n;
    if (w->flood_bps == 0 && w->flood_budget == 0)
        uv_timer_stop(&w->flood_t);
}

static void flood_start(tw *w) {
    if (!uv_is_active((uv_handle_t *)&w->flood_t))
        uv_timer_start(&w->flood_t, on_flood, TW_FLOOD_TICK_MS, TW_FLOOD_TICK_MS);
}

static void write_long_line(uint64_t bytes) {
    char buf[TW_WRITE_CHUNK];
    memset(buf, 'L', sizeof buf);
    while (bytes > 0) {
        size_t n = bytes < sizeof buf ? (size_t)bytes : sizeof buf;
        if (!write_all(buf, n))
            return;
        bytes -= n;
    }
    write_all("\n", 1);
}

/* ---- commands ---- */

static int arg_u64(const proto_ctl_request *req, const char *key, uint64_t max, uint64_t *out,
                   char *err, size_t errlen) {
    const char *v = proto_ctl_request_arg(req, key);
    if (v == NULL) {
        snprintf(err, errlen, "%s: missing argument '%s'", req->cmd, key);
        return WD_EINVAL;
    }
    if (parse_u64(v, max, out) != 0) {
        snprintf(err, errlen, "%s: argument %s='%.64s' is not a whole number in 0..%llu", req->cmd,
                 key, v, (unsigned long long)max);
        return WD_EINVAL;
    }
    return 0;
}

static void sleep_close_cb(uv_handle_t *h) { free(h->data); }

static void sleep_unlink(tw *w, tw_sleep *s) {
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        w->sleeps = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
}

static void on_sleep(uv_timer_t *t) {
    tw_sleep *s = t->data;
    sleep_unlink(s->tw, s);
    wrk_command_finish(s->pending, 0, json_pack("{s:I}", "slept_ms", (json_int_t)s->ms), NULL);
    uv_close((uv_handle_t *)&s->timer, sleep_close_cb);
}

static int cmd_sleep(tw *w, const proto_ctl_request *req, char *err, size_t errlen) {
    uint64_t ms;
    int rc = arg_u64(req, "ms", TW_MS_MAX, &ms, err, errlen);
    if (rc != 0)
        return rc;
    tw_sleep *s = calloc(1, sizeof *s);
    if (s == NULL)
        return WD_ENOMEM;
    if ((s->pending = wrk_command_defer(w->ctx)) == NULL) {
        free(s);
        snprintf(err, errlen, "sleep: cannot defer the reply");
        return WD_ESTATE;
    }
    s->tw = w;
    s->ms = ms;
    s->next = w->sleeps;
    if (w->sleeps != NULL)
        w->sleeps->prev = s;
    w->sleeps = s;
    uv_timer_init(wrk_loop(w->ctx), &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, on_sleep, ms, 0);
    return 0;
}

static int schedule_act(tw *w, tw_action act, int code, const char *what, json_t **data) {
    w->act = act;
    w->act_code = code;
    uv_timer_start(&w->act_t, on_act, TW_ACT_DELAY_MS, 0);
    *data = json_pack("{s:s, s:i}", "action", what, "in_ms", TW_ACT_DELAY_MS);
    return 0;
}

/* fail/succeed: calls through a --breaker breaker that fail or succeed, so
 * tests drive a real breaker in a real worker. */
static int cmd_fail(tw *w, const proto_ctl_request *req, json_t **data, char *err, size_t errlen) {
    const char *name = proto_ctl_request_arg(req, "breaker");
    const char *reason = proto_ctl_request_arg(req, "reason");
    bool ok = strcmp(req->cmd, "succeed") == 0;
    uint64_t n = 1, rejected = 0, gen;
    brk_breaker *b = NULL;
    for (int i = 0; i < w->n_brk && name != NULL; i++)
        if (strcmp(w->brk[i].name, name) == 0)
            b = &w->brk[i];
    if (b == NULL) {
        snprintf(err, errlen, "%s: no --breaker named '%.64s'", req->cmd, name ? name : "");
        return WD_ENOTFOUND;
    }
    if (proto_ctl_request_arg(req, "n") != NULL) {
        int rc = arg_u64(req, "n", TW_FAIL_MAX, &n, err, errlen);
        if (rc != 0)
            return rc;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t now = wd_clock_mono_ns();
        if (brk_allow(b, now, &gen) != 0) {
            rejected++;
            continue;
        }
        brk_record_call(b, gen, now, 0, ok, ok ? "" : (reason ? reason : "test failure"));
    }
    *data = json_pack("{s:s,s:s,s:I}", "breaker", b->name, "state", brk_state_name(b->state),
                      "rejected", (json_int_t)rejected);
    return 0;
}

static int tw_command(wrk_ctx *ctx, const proto_ctl_request *req, json_t **data, char *err,
                      size_t errlen) {
    tw *w = wrk_data(ctx);
    uint64_t n;
    int rc;
    if (strcmp(req->cmd, "crash") == 0)
        return schedule_act(w, ACT_CRASH, 0, "crash", data);
    if (strcmp(req->cmd, "hang") == 0)
        return schedule_act(w, ACT_HANG, 0, "hang", data);
    if (strcmp(req->cmd, "exit") == 0) {
        if ((rc = arg_u64(req, "code", TW_EXIT_CODE_MAX, &n, err, errlen)) != 0)
            return rc;
        return schedule_act(w, ACT_EXIT, (int)n, "exit", data);
    }
    if (strcmp(req->cmd, "echo") == 0) {
        json_t *o = json_object();
        for (uint32_t i = 0; i < req->n_args && o != NULL; i++)
            json_object_set_new(o, req->args[i].key, json_string(req->args[i].val));
        *data = o;
        return 0;
    }
    if (strcmp(req->cmd, "progress") == 0) {
        if ((rc = arg_u64(req, "n", UINT64_MAX, &n, err, errlen)) != 0)
            return rc;
        wrk_progress(ctx, n);
        *data = json_pack("{s:I}", "added", (json_int_t)n);
        return 0;
    }
    if (strcmp(req->cmd, "breaker") == 0) {
        const char *name = proto_ctl_request_arg(req, "name");
        const char *state = proto_ctl_request_arg(req, "state");
        proto_breaker_state st;
        if (name == NULL || name[0] == '\0' || strlen(name) > PROTO_NAME_MAX) {
            snprintf(err, errlen, "breaker: argument 'name' missing or longer than %d bytes",
                     PROTO_NAME_MAX);
            return WD_EINVAL;
        }
        if (state == NULL || proto_breaker_state_parse(state, strlen(state), &st) != 0) {
            snprintf(err, errlen,
                     "breaker: argument 'state' must be closed, open, half_open, forced_open "
                     "or disabled");
            return WD_EINVAL;
        }
        wrk_breaker_state(ctx, name, st);
        *data = json_pack("{s:s, s:s}", "name", name, "state", proto_breaker_state_name(st));
        return 0;
    }
    if (strcmp(req->cmd, "fail") == 0 || strcmp(req->cmd, "succeed") == 0)
        return cmd_fail(w, req, data, err, errlen);
    if (strcmp(req->cmd, "flood") == 0) {
        if ((rc = arg_u64(req, "bytes", TW_BYTES_MAX, &n, err, errlen)) != 0)
            return rc;
        w->flood_budget += n;
        flood_start(w);
        *data = json_pack("{s:I}", "queued_bytes", (json_int_t)w->flood_budget);
        return 0;
    }
    if (strcmp(req->cmd, "sleep") == 0)
        return cmd_sleep(w, req, err, errlen);
    snprintf(err, errlen, "unknown command '%s'", req->cmd);
    return WD_ENOTFOUND;
}

/* ---- ops ---- */

static int opt_ms(const char *opt, const char *val, int64_t *out) {
    uint64_t v;
    if (val == NULL) {
        fprintf(stderr, TW_PROG ": %s needs a value (milliseconds)\n", opt);
        return -1;
    }
    if (parse_u64(val, TW_MS_MAX, &v) != 0) {
        fprintf(stderr, TW_PROG ": %s: '%s' is not a whole number of milliseconds in 0..%llu\n",
                opt, val, (unsigned long long)TW_MS_MAX);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

static int opt_u64(const char *opt, const char *val, uint64_t max, const char *unit,
                   uint64_t *out) {
    if (val == NULL) {
        fprintf(stderr, TW_PROG ": %s needs a value (%s)\n", opt, unit);
        return -1;
    }
    if (parse_u64(val, max, out) != 0) {
        fprintf(stderr, TW_PROG ": %s: '%s' is not a whole number of %s in 0..%llu\n", opt, val,
                unit, (unsigned long long)max);
        return -1;
    }
    return 0;
}

/* --breaker NAME[:critical] */
static int opt_breaker(tw *w, const char *val) {
    char name[BRK_NAME_MAX + 1];
    const char *colon = val != NULL ? strchr(val, ':') : NULL;
    size_t len = val == NULL ? 0 : colon != NULL ? (size_t)(colon - val) : strlen(val);
    if (val == NULL || len == 0 || len > PROTO_NAME_MAX || len >= sizeof name ||
        (colon != NULL && strcmp(colon, ":critical") != 0)) {
        fprintf(stderr, TW_PROG ": --breaker needs NAME or NAME:critical (NAME 1..%d bytes)\n",
                PROTO_NAME_MAX);
        return -1;
    }
    if (w->n_brk >= TW_BREAKERS_MAX) {
        fprintf(stderr, TW_PROG ": at most %d --breaker options\n", TW_BREAKERS_MAX);
        return -1;
    }
    memcpy(name, val, len);
    name[len] = '\0';
    w->brk_critical[w->n_brk] = colon != NULL;
    snprintf(w->brk[w->n_brk].name, sizeof w->brk[w->n_brk].name, "%s", name);
    w->n_brk++;
    return 0;
}

static int parse_args(tw *w, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
        int used = 1, rc = 0; /* used: 1 = flag, 2 = flag + value */
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            exit_now(0);
        } else if (strcmp(a, "--no-ready") == 0) {
            w->no_ready = true;
        } else if (strcmp(a, "--ignore-term") == 0) {
            w->ignore_term = true;
        } else if (strcmp(a, "--ready-delay") == 0) {
            rc = opt_ms(a, val, &w->ready_delay_ms), used = 2;
        } else if (strcmp(a, "--crash-after") == 0) {
            rc = opt_ms(a, val, &w->crash_after_ms), used = 2;
        } else if (strcmp(a, "--exit-after") == 0) {
            rc = opt_ms(a, val, &w->exit_after_ms), used = 2;
        } else if (strcmp(a, "--hang-after") == 0) {
            rc = opt_ms(a, val, &w->hang_after_ms), used = 2;
        } else if (strcmp(a, "--slow-stop") == 0) {
            rc = opt_ms(a, val, &w->slow_stop_ms), used = 2;
        } else if (strcmp(a, "--exit-code") == 0) {
            rc = opt_u64(a, val, TW_EXIT_CODE_MAX, "an exit code", &u), used = 2;
            w->exit_code = (int)u;
            w->exit_code_set = true;
        } else if (strcmp(a, "--flood") == 0) {
            rc = opt_u64(a, val, TW_BYTES_MAX, "bytes per second", &w->flood_bps), used = 2;
        } else if (strcmp(a, "--long-line") == 0) {
            rc = opt_u64(a, val, TW_BYTES_MAX, "bytes", &w->long_line), used = 2;
        } else if (strcmp(a, "--breaker") == 0) {
            rc = opt_breaker(w, val), used = 2;
        } else if (strcmp(a, "--breaker-open") == 0) {
            rc = opt_ms(a, val, &w->brk_open_ms), used = 2;
        } else if (strcmp(a, "--print") == 0) {
            if (val == NULL) {
                fprintf(stderr, TW_PROG ": --print needs a value (text)\n");
                rc = -1;
            }
            w->print_text = val, used = 2;
        } else {
            fprintf(stderr, TW_PROG ": unknown option '%s'\n", a);
            rc = -1;
        }
        if (rc != 0) {
            fprintf(stderr, TW_PROG ": run with --help for the options\n");
            return -1;
        }
        i += used - 1;
    }
    if (w->exit_code_set && w->exit_after_ms < 0) {
        fprintf(stderr, TW_PROG ": --exit-code needs --exit-after\n");
        return -1;
    }
    return 0;
}

static int tw_init(wrk_ctx *ctx, int argc, char **argv) {
    tw *w = calloc(1, sizeof *w);
    if (w == NULL)
        return WD_ENOMEM;
    w->ctx = ctx;
    w->ready_delay_ms = w->crash_after_ms = w->exit_after_ms = w->hang_after_ms = -1;
    w->slow_stop_ms = -1;
    w->brk_open_ms = TW_BREAKER_OPEN_MS;
    wrk_set_data(ctx, w);
    if (parse_args(w, argc, argv) != 0) {
        /* fini is not called after a failed init. */
        wrk_set_data(ctx, NULL);
        free(w);
        return WD_EINVAL;
    }
    for (int i = 0; i < w->n_brk; i++) {
        brk_config cfg;
        char name[BRK_NAME_MAX + 1];
        brk_config_defaults(&cfg);
        cfg.failure_threshold = 1;
        cfg.open_ns = (uint64_t)w->brk_open_ms * WD_NS_PER_MS;
        cfg.open_max_ns = cfg.open_ns;
        cfg.jitter = 0;
        snprintf(name, sizeof name, "%s", w->brk[i].name);
        brk_init(&w->brk[i], name, &cfg, (uint64_t)i + 1);
        if (wrk_breaker_register(ctx, &w->brk[i], w->brk_critical[i]) != 0) {
            fprintf(stderr, TW_PROG ": --breaker %s given twice\n", name);
            wrk_set_data(ctx, NULL);
            free(w);
            return WD_EINVAL;
        }
    }
    /* The runtime leaves an ignored SIGTERM alone. */
    if (w->ignore_term)
        signal(SIGTERM, SIG_IGN);
    return 0;
}

static void timer_once(tw *w, uv_timer_t *t, uv_timer_cb cb, int64_t ms) {
    if (ms >= 0)
        uv_timer_start(t, cb, (uint64_t)ms, 0);
    (void)w;
}

static int tw_start(wrk_ctx *ctx) {
    tw *w = wrk_data(ctx);
    uv_loop_t *loop = wrk_loop(ctx);
    uv_timer_t *all[] = {&w->tick,   &w->ready_t, &w->crash_t, &w->exit_t,
                         &w->hang_t, &w->flood_t, &w->act_t,   &w->stop_t};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        uv_timer_init(loop, all[i]);
        all[i]->data = w;
    }
    w->timers_init = true;
    if (w->print_text != NULL) {
        printf("%s\n", w->print_text);
        fflush(stdout);
        fprintf(stderr, "%s\n", w->print_text);
    }
    if (w->long_line > 0)
        write_long_line(w->long_line);
    uv_timer_start(&w->tick, on_tick, TW_TICK_MS, TW_TICK_MS);
    if (w->flood_bps > 0)
        flood_start(w);
    timer_once(w, &w->crash_t, on_crash, w->crash_after_ms);
    timer_once(w, &w->exit_t, on_exit_timer, w->exit_after_ms);
    timer_once(w, &w->hang_t, on_hang, w->hang_after_ms);
    if (!w->no_ready) {
        if (w->ready_delay_ms > 0)
            timer_once(w, &w->ready_t, on_ready, w->ready_delay_ms);
        else
            wrk_ready(ctx);
    }
    return 0;
}

/* Closes the worker's handles, all but the slow-stop timer if keep_stop. */
static void tw_close_all(tw *w, bool keep_stop) {
    uv_timer_t *all[] = {&w->tick,   &w->ready_t, &w->crash_t, &w->exit_t,
                         &w->hang_t, &w->flood_t, &w->act_t,   &w->stop_t};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!(keep_stop && all[i] == &w->stop_t) && !uv_is_closing((uv_handle_t *)all[i]))
            uv_close((uv_handle_t *)all[i], NULL);
    while (w->sleeps != NULL) {
        tw_sleep *s = w->sleeps;
        sleep_unlink(w, s);
        wrk_command_finish(s->pending, WD_ECLOSED, NULL, "stopping");
        uv_close((uv_handle_t *)&s->timer, sleep_close_cb);
    }
}

static void on_slow_stop(uv_timer_t *t) {
    tw *w = t->data;
    wd_info("slow stop done");
    tw_close_all(w, false);
}

static void tw_stop(wrk_ctx *ctx) {
    tw *w = wrk_data(ctx);
    if (w->stopping || !w->timers_init)
        return;
    w->stopping = true;
    if (w->slow_stop_ms > 0) {
        wd_info("stopping slowly (%lld ms)", (long long)w->slow_stop_ms);
        /* Everything but the stop timer ends now; that timer keeps the loop. */
        tw_close_all(w, true);
        uv_timer_start(&w->stop_t, on_slow_stop, (uint64_t)w->slow_stop_ms, 0);
        return;
    }
    tw_close_all(w, false);
}

static int tw_reload(wrk_ctx *ctx) {
    tw *w = wrk_data(ctx);
    w->reloads++;
    return 0;
}

static void tw_metrics(wrk_ctx *ctx, proto_heartbeat *hb) {
    tw *w = wrk_data(ctx);
    const struct {
        const char *name;
        uint64_t v;
    } m[] = {{"testworker_ticks_total", w->ticks},
             {"testworker_reloads_total", w->reloads},
             {"testworker_flood_bytes_total", w->flood_bytes_total}};
    for (size_t i = 0; i < sizeof m / sizeof m[0] && hb->n_metrics < PROTO_METRICS_MAX; i++) {
        proto_metric *pm = &hb->metrics[hb->n_metrics++];
        snprintf(pm->name, sizeof pm->name, "%s", m[i].name);
        pm->value = (double)m[i].v;
    }
}

static void tw_fini(wrk_ctx *ctx) { free(wrk_data(ctx)); }

static const wrk_ops testworker_ops = {
    .name = "testworker",
    .init = tw_init,
    .start = tw_start,
    .stop = tw_stop,
    .reload = tw_reload,
    .command = tw_command,
    .metrics = tw_metrics,
    .fini = tw_fini,
};

int main(int argc, char **argv) { return wrk_main(argc, argv, &testworker_ops); }
