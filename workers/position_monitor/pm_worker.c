/* The position monitor's ops table and its cycle. Prices arrive on the
 * marketdata SUB socket between cycles (decoded at once: the "prices"
 * phase); each cycle then evaluates the symbols that got a new price, fires
 * due max-holding times, drives the exits (database writes, broker calls)
 * and persists moved water marks. A cycle with no new price and nothing to
 * exit makes no query and evaluates nothing. */
#include "pm_worker.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PM_STALE_CHECK_MIN_MS 10
#define PM_MD_BAD_LOG_EVERY 1000 /* log one undecodable batch in this many */
#define PM_CLOSE_DRAIN_MS 2000
#define PM_REDIS_FIELD_MAX 32

static const char *const err_names[PM_ERR_COUNT] = {
    "db", "broker", "broker_rejected", "retry_budget", "redis", "marketdata", "book_full",
};

const char *pm_err_type_name(pm_err_type t) {
    return (unsigned)t < PM_ERR_COUNT ? err_names[t] : "unknown";
}

void pm_count_error(pm_worker *w, pm_err_type t) {
    if ((unsigned)t < PM_ERR_COUNT)
        w->errors[t]++;
}

/* The book fired an exit: it waits for its "closing" write. */
void pm_on_fire(void *arg, uint32_t pos, pm_exit_reason reason, double price) {
    pm_worker *w = arg;
    pm_pos *p = &w->book.pos[pos];
    w->exits[reason]++;
    wd_info("exit: position %lld %s %s (%s at %g)", (long long)p->id,
            p->side == PM_LONG ? "long" : "short", w->book.syms[p->sym].name,
            pm_exit_reason_name(reason), price);
    if (!pm_exiting_push(w, pos))
        /* Without room to queue it the exit cannot be tracked: watch the
         * position again, the next price fires it again. */
        pm_book_reopen(&w->book, pos);
}

bool pm_exiting_push(pm_worker *w, uint32_t pos) {
    if (w->n_exiting == w->cap_exiting) {
        size_t cap = w->cap_exiting ? w->cap_exiting * 2 : 64;
        void *np = realloc(w->exiting, cap * sizeof *w->exiting);
        if (np == NULL)
            return false;
        w->exiting = np;
        w->cap_exiting = cap;
    }
    w->exiting[w->n_exiting++] = pos;
    return true;
}

/* ---- prices ---- */

static void on_md(void *arg, const void *buf, size_t len, uint64_t peer_pid) {
    pm_worker *w = arg;
    char err[256];
    (void)peer_pid;
    uint64_t t0 = wd_clock_mono_ns();
    int rc = proto_md_batch_unpack(buf, len, w->md, err, sizeof err);
    if (rc != 0) {
        if (w->md_bad++ % PM_MD_BAD_LOG_EVERY == 0)
            wd_warn("marketdata: batch dropped: %s", err);
        pm_count_error(w, PM_ERR_MARKETDATA);
        return;
    }
    w->md_batches++;
    w->md_last_ns = t0;
    for (uint32_t i = 0; i < w->md->n_quotes; i++) {
        const proto_md_quote *q = &w->md->quotes[i];
        double mark = pm_mark_price(q->bid, q->ask);
        /* Symbols without positions are kept too (bounded by PM_SYMBOLS_MAX):
         * a position inserted later starts with a known price. */
        int64_t s = pm_book_symbol(&w->book, q->symbol);
        if (s < 0 || !(mark > 0))
            continue;
        pm_sym *sym = &w->book.syms[s];
        sym->bid = q->bid;
        sym->ask = q->ask;
        pm_book_set_price(&w->book, (uint32_t)s, mark, t0);
    }
    w->quotes += w->md->n_quotes;
    w->cur.quotes += w->md->n_quotes;
    w->cur.phase_ns[0] += wd_clock_mono_ns() - t0;
}

typedef struct {
    pm_worker *w;
    uint32_t sym;
} fetch_ctx;

static double reply_field(const redisReply *r, const char *name, bool *found) {
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, name) == 0) {
            char tmp[PM_REDIS_FIELD_MAX];
            char *end;
            snprintf(tmp, sizeof tmp, "%.*s", (int)v->len, v->str);
            double d = strtod(tmp, &end);
            *found = end != tmp && *end == '\0';
            return *found ? d : 0;
        }
    }
    *found = false;
    return 0;
}

/* A fallback quote is used only when it is itself fresh (its recv_ns, the
 * aggregator's receipt time, within price_stale_after): a last quote that a
 * stopped aggregator left behind is no price. */
static void on_fetch(wd_redis *r, const wd_redis_result *res, void *arg) {
    fetch_ctx *x = arg;
    pm_worker *w = x->w;
    (void)r;
    if (res->status == WD_ECLOSED) {
        free(x);
        return;
    }
    pm_sym *s = &w->book.syms[x->sym];
    s->fetch_inflight = false;
    if (res->status != 0) {
        w->redis_err++;
        pm_count_error(w, PM_ERR_REDIS);
        free(x);
        return;
    }
    bool fb, fa, fr;
    const redisReply *rep = res->reply;
    double bid = 0, ask = 0, recv = 0;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY) {
        bid = reply_field(rep, "bid", &fb);
        ask = reply_field(rep, "ask", &fa);
        recv = reply_field(rep, "recv_ns", &fr);
    } else {
        fr = false;
    }
    double mark = pm_mark_price(bid, ask);
    uint64_t real = wd_clock_real_ns(), now = wd_clock_mono_ns();
    uint64_t stale = w->conf.price_stale_after_ms * WD_NS_PER_MS;
    uint64_t age = fr && recv > 0 && (double)real > recv ? real - (uint64_t)recv : 0;
    if (!fr || !(mark > 0) || age > stale) {
        w->redis_unusable++;
    } else {
        w->redis_ok++;
        s->bid = bid;
        s->ask = ask;
        pm_book_set_price(&w->book, x->sym, mark, now > age ? now - age : now);
    }
    free(x);
}

/* Symbols with positions whose last price is older than price_stale_after:
 * fetched from Redis (at most once per half the stale time each), and
 * counted as skipped meanwhile: nothing is evaluated on their old price,
 * since evaluation runs only on a price that just arrived. */
static void stale_check(pm_worker *w, uint64_t now) {
    uint64_t stale = w->conf.price_stale_after_ms * WD_NS_PER_MS;
    if (now < w->stale_next_ns)
        return;
    uint64_t period = stale / 4;
    if (period < PM_STALE_CHECK_MIN_MS * WD_NS_PER_MS)
        period = PM_STALE_CHECK_MIN_MS * WD_NS_PER_MS;
    w->stale_next_ns = now + period;
    for (uint32_t i = 0; i < w->book.n_syms; i++) {
        pm_sym *s = &w->book.syms[i];
        if (s->refs == 0 || (s->price_ns != 0 && now - s->price_ns <= stale))
            continue;
        w->skipped++;
        if (w->redis == NULL || s->fetch_inflight ||
            (s->fetch_ns != 0 && now - s->fetch_ns < stale / 2))
            continue;
        fetch_ctx *x = malloc(sizeof *x);
        char key[PM_CONF_NAME_MAX + PM_SYMBOL_MAX + 8];
        if (x == NULL)
            return;
        *x = (fetch_ctx){.w = w, .sym = i};
        snprintf(key, sizeof key, "%slast:%s", w->conf.redis_key_prefix, s->name);
        s->fetch_ns = now;
        const char *argv[] = {"HGETALL", key};
        if (wd_redis_command_argv(w->redis, on_fetch, x, 2, argv, NULL) != 0) {
            w->redis_err++;
            pm_count_error(w, PM_ERR_REDIS);
            free(x);
            continue;
        }
        s->fetch_inflight = true;
        w->cur.redis_fetches++;
    }
}

/* ---- the cycle ---- */

static void on_cycle(uv_timer_t *t) {
    pm_worker *w = t->data;
    if (w->stopping)
        return;
    uint64_t t0 = wd_clock_mono_ns();
    stale_check(w, t0);
    uint64_t t1 = wd_clock_mono_ns();
    w->cur.evaluated += (uint32_t)pm_book_eval_dirty(&w->book, t1);
    pm_book_eval_time(&w->book, wd_clock_real_ns(), t1);
    uint64_t t2 = wd_clock_mono_ns();
    pm_db_cycle(w, t2);
    pm_exec_cycle(w, t2);
    uint64_t t3 = wd_clock_mono_ns();
    pm_db_persist(w, t3);
    uint64_t t4 = wd_clock_mono_ns();
    w->cur.phase_ns[0] += t1 - t0;
    w->cur.phase_ns[1] += t2 - t1;
    w->cur.phase_ns[2] += t3 - t2;
    w->cur.phase_ns[3] += t4 - t3;
    w->cur.total_ns = 0;
    for (int i = 0; i < PM_PHASES; i++)
        w->cur.total_ns += w->cur.phase_ns[i];
    pm_cycle_record(w, &w->cur);
    memset(&w->cur, 0, sizeof w->cur);
    w->cycles++;
    wrk_progress(w->ctx, 1);
}

/* ---- ops ---- */

static int pm_init(wrk_ctx *ctx, int argc, char **argv) {
    pm_worker *w = calloc(1, sizeof *w);
    char err[512];
    if (w == NULL)
        return WD_ENOMEM;
    w->ctx = ctx;
    w->loop = wrk_loop(ctx);
    snprintf(w->section, sizeof w->section, "%s", PM_CONF_SECTION);
    const char *path = wrk_config_path(ctx);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--section") == 0 && i + 1 < argc)
            snprintf(w->section, sizeof w->section, "%s", argv[++i]);
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            path = argv[++i];
        else {
            fprintf(stderr, "warden-position-monitor: unknown argument '%s' (--config FILE, "
                            "--section NAME)\n", argv[i]);
            free(w);
            return WD_EINVAL;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "warden-position-monitor: no config (WARDEN_CONFIG or --config FILE)\n");
        free(w);
        return WD_EINVAL;
    }
    int rc = pm_conf_load(path, w->section, &w->conf, err, sizeof err);
    if (rc != 0) {
        wd_error("config: %s", err);
        free(w);
        return rc;
    }
    const char *run = getenv("WARDEN_RUN_DIR");
    if (w->conf.marketdata_url[0] != '\0')
        snprintf(w->md_url, sizeof w->md_url, "%s", w->conf.marketdata_url);
    else
        snprintf(w->md_url, sizeof w->md_url, "ipc://%s/marketdata.sock", run ? run : ".");
    if (w->conf.alerts_url[0] != '\0')
        snprintf(w->alerts_url, sizeof w->alerts_url, "%s", w->conf.alerts_url);
    else
        snprintf(w->alerts_url, sizeof w->alerts_url, "ipc://%s/alerts.sock", run ? run : ".");
    snprintf(w->broker_base, sizeof w->broker_base, "%s", w->conf.broker_url);
    size_t bl = strlen(w->broker_base);
    while (bl > 0 && w->broker_base[bl - 1] == '/')
        w->broker_base[--bl] = '\0';
    if ((rc = wd_http_url_endpoint(w->broker_base, err, sizeof err, err, sizeof err)) != 0) {
        wd_error("config: broker_url: %s", err);
        free(w);
        return WD_ECONFIG;
    }
    w->md = malloc(sizeof *w->md);
    w->ring = calloc((size_t)w->conf.profile_cycles, sizeof *w->ring);
    if (w->md == NULL || w->ring == NULL) {
        free(w->md);
        free(w->ring);
        free(w);
        return WD_ENOMEM;
    }
    pm_book_init(&w->book, (uint32_t)w->conf.max_positions, pm_on_fire, w);
    wd_rng_seed(&w->rng, wd_clock_mono_ns() ^ (uint64_t)getpid());
    wrk_set_data(ctx, w);
    return 0;
}

static int pm_start(wrk_ctx *ctx) {
    pm_worker *w = wrk_data(ctx);
    char err[512] = "";
    int rc = pm_metrics_init(w);
    if (rc != 0) {
        wd_error("metrics: %s", wd_strerror(rc));
        return rc;
    }
    uv_timer_init(w->loop, &w->cycle_timer);
    w->cycle_timer.data = w;
    w->handles_init = true;
    if ((rc = bus_sub_dial(w->loop, w->md_url, on_md, w, &w->sub, err, sizeof err)) != 0) {
        wd_error("marketdata: %s", err);
        return rc;
    }
    if (w->conf.redis_url[0] != '\0') {
        wd_redis_opts o;
        wd_redis_opts_default(&o);
        o.url = w->conf.redis_url;
        o.name = "pm_redis";
        o.metrics = w->reg;
        /* A fallback that waits is worse than none: fail fast while down. */
        o.connect_timeout_ms = 500;
        o.command_timeout_ms = 500;
        o.reconnect_max_ms = 5000;
        if ((rc = wd_redis_open(w->loop, &o, &w->redis, err, sizeof err)) != 0) {
            wd_error("redis: %s", err);
            return rc;
        }
        if (wrk_breaker_register(ctx, wd_redis_breaker(w->redis), false) == 0)
            w->redis_brk_registered = true;
    }
    if ((rc = pm_exec_start(w, err, sizeof err)) != 0 ||
        (rc = pm_db_start(w, err, sizeof err)) != 0) {
        wd_error("start: %s", err);
        return rc;
    }
    pm_alert_start(w);
    uv_timer_start(&w->cycle_timer, on_cycle, w->conf.cycle_interval_ms,
                   w->conf.cycle_interval_ms);
    wd_info("monitoring: marketdata %s, broker %s, cycle %llums, stale after %llums", w->md_url,
            w->broker_base, (unsigned long long)w->conf.cycle_interval_ms,
            (unsigned long long)w->conf.price_stale_after_ms);
    wrk_ready(ctx);
    return 0;
}

static void on_redis_closed(wd_redis *r, void *arg) {
    (void)r;
    (void)arg;
}

static void pm_stop(wrk_ctx *ctx) {
    pm_worker *w = wrk_data(ctx);
    if (w == NULL || w->stopping)
        return;
    w->stopping = true;
    if (w->handles_init)
        uv_close((uv_handle_t *)&w->cycle_timer, NULL);
    if (w->sub != NULL) {
        bus_in_close(w->sub);
        w->sub = NULL;
    }
    if (w->redis != NULL) {
        if (w->redis_brk_registered)
            wrk_breaker_unregister(ctx, wd_redis_breaker(w->redis));
        wd_redis_close(w->redis, on_redis_closed, NULL);
        w->redis = NULL;
    }
    pm_alert_stop(w);
    pm_exec_stop(w);
    pm_db_stop(w);
}

static void pm_fini(wrk_ctx *ctx) {
    pm_worker *w = wrk_data(ctx);
    if (w == NULL)
        return;
    bus_close_drain(PM_CLOSE_DRAIN_MS);
    pm_alert_fini(w);
    pm_db_fini(w);
    pm_book_free(&w->book);
    free(w->md);
    free(w->ring);
    free(w->exiting);
    free(w->fills);
    free(w->closing);
    wd_metrics_free(w->reg);
    free(w);
}

static const wrk_ops pm_ops = {
    .name = "position_monitor",
    .init = pm_init,
    .start = pm_start,
    .stop = pm_stop,
    .command = pm_command,
    .metrics = pm_metrics_heartbeat,
    .fini = pm_fini,
};

int pm_worker_main(int argc, char **argv) { return wrk_main(argc, argv, &pm_ops); }
