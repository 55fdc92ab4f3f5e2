/* Redis for the aggregator: the sink (the last quote per symbol as the hash
 * PREFIX last:SYMBOL, closed bars to the capped stream PREFIX bars:SYMBOL)
 * and the redis source (a stream read with XREADGROUP, acked after
 * processing). Each has its own wd_redis client, so the source's blocking
 * read never holds up the sink's pipelined writes, and its own breaker.
 *
 * Sink while Redis is down or its breaker open: nothing is queued. A quote
 * only marks its symbol dirty (one flag per symbol, so memory is bounded by
 * the symbol count); every AGG_REDIS_FLUSH_MS the dirty symbols' latest
 * quotes are written if the client is ready, and a write that fails marks
 * its symbol dirty again. So the latest state is rewritten once Redis is
 * back, and what could not be written is counted as skipped. Bars closed
 * while Redis is unreachable are skipped and counted (a bar is history, the
 * stream is capped anyway).
 *
 * Source: the group is created at id 0 (MKSTREAM) if missing, so entries
 * written before the first start are read too. On start the consumer first
 * re-reads its own pending entries (delivered before a crash, never acked),
 * then new ones (">"). Entries are processed, then acked in one XACK: a
 * crash between the two re-delivers those entries (at least once); acked
 * entries are never read again.
 *
 * Names: each client, and so its breaker (common/redis.h names the breaker
 * after the client), is "redis-sink" / "redis-source". The breakers are
 * registered with the runtime (wrk_breaker_register), so heartbeats, the
 * `breakers` and `breaker-reset` commands and the health API all reach the
 * very breaker the client consults; and wardenctl diagnose reads the
 * dependency from the first word of the name ("redis"). */
#include "agg_worker.h"
#include "clock.h"
#include "log.h"
#include "redis.h"
#include "wd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AGG_REDIS_FLUSH_MS 10       /* sink write period */
#define AGG_REDIS_INFLIGHT_MAX 2048 /* sink commands in flight */
#define AGG_REDIS_BLOCK_MS 500      /* XREADGROUP BLOCK; < command timeout */
#define AGG_REDIS_RETRY_MS 200      /* source: pause after a failed read */
#define AGG_REDIS_NUM_MAX 32
#define AGG_REDIS_KEY_MAX (AGG_CONF_NAME_MAX + PROTO_MD_SYMBOL_MAX + 8)
#define AGG_REDIS_ACK_MAX 10003     /* XACK key group + ids of one read */
#define AGG_REDIS_LINE_MAX AGG_CSV_LINE_MAX

struct agg_redis {
    agg_worker *w;
    wd_redis *sink, *src;
    wd_redis_metrics mset;
    uv_timer_t flush_t, read_t;
    int handles; /* open handles + clients; freed at 0 after stop */
    bool closing;
    /* sink */
    uint8_t *dirty; /* per symbol */
    size_t n_dirty_cap;
    uint64_t writes, write_errors, skipped, bars_skipped, rewritten;
    uint32_t inflight;
    /* source */
    bool reading, group_ready, pending_phase;
    uint64_t read_entries, read_errors, acked;
    char consumer[AGG_CONF_NAME_MAX + 1];
};

static void maybe_free(agg_redis *r) {
    if (r->closing && r->handles == 0) {
        free(r->dirty);
        free(r);
    }
}

static void fmt_num(char *buf, double v) { snprintf(buf, AGG_REDIS_NUM_MAX, "%.17g", v); }

/* ---- sink ---- */

typedef struct {
    agg_redis *r;
    int sym;
} write_ctx;

static void on_hset(wd_redis *c, const wd_redis_result *res, void *arg) {
    write_ctx *x = arg;
    agg_redis *r = x->r;
    (void)c;
    r->inflight--;
    if (res->status == 0) {
        r->writes++;
    } else {
        r->write_errors++;
        /* Written again at the next flush, with whatever is newest by then. */
        if (!r->closing && (size_t)x->sym < r->n_dirty_cap)
            r->dirty[x->sym] = 1;
    }
    free(x);
}

static void write_quote(agg_redis *r, int sym) {
    agg_worker *w = r->w;
    const proto_md_quote *q = &w->book.syms[sym].quote;
    char key[AGG_REDIS_KEY_MAX], v[10][AGG_REDIS_NUM_MAX];
    snprintf(key, sizeof key, "%slast:%s", w->conf.redis_key_prefix, q->symbol);
    fmt_num(v[0], q->bid);
    fmt_num(v[1], q->bid_size);
    fmt_num(v[2], q->ask);
    fmt_num(v[3], q->ask_size);
    fmt_num(v[4], q->mid);
    fmt_num(v[5], q->spread);
    snprintf(v[6], AGG_REDIS_NUM_MAX, "%u", q->flags);
    snprintf(v[7], AGG_REDIS_NUM_MAX, "%u", q->n_venues);
    snprintf(v[8], AGG_REDIS_NUM_MAX, "%llu", (unsigned long long)q->ts_ns);
    snprintf(v[9], AGG_REDIS_NUM_MAX, "%llu", (unsigned long long)q->recv_ns);
    const char *argv[] = {"HSET",     key,      "bid",       v[0],        "bid_size", v[1],
                          "bid_venue", q->bid_venue, "ask",  v[2],        "ask_size", v[3],
                          "ask_venue", q->ask_venue, "mid",  v[4],        "spread",   v[5],
                          "flags",    v[6],     "n_venues",  v[7],        "ts_ns",    v[8],
                          "recv_ns",  v[9]};
    write_ctx *x = malloc(sizeof *x);
    if (x == NULL)
        return;
    *x = (write_ctx){.r = r, .sym = sym};
    r->dirty[sym] = 0;
    if (wd_redis_command_argv(r->sink, on_hset, x, (int)(sizeof argv / sizeof argv[0]), argv,
                              NULL) != 0) {
        r->dirty[sym] = 1;
        free(x);
        return;
    }
    r->inflight++;
}

/* Whether the sink's breaker would admit a write now. An OPEN breaker
 * whose cooldown is over must be asked (brk_allow moves it to HALF_OPEN on
 * a call): if nothing were written while it reads OPEN, only a closing bar
 * would ever try it, and with no bar intervals it would stay open for
 * good. DISABLED admits everything. */
static bool sink_admits(const brk_breaker *b, uint64_t now) {
    if (b->state == BRK_FORCED_OPEN)
        return false;
    return b->state != BRK_OPEN || brk_retry_in(b, now) == 0;
}

static void on_flush(uv_timer_t *t) {
    agg_redis *r = t->data;
    agg_worker *w = r->w;
    if (r->sink == NULL)
        return;
    brk_breaker *b = wd_redis_breaker(r->sink);
    bool up = wd_redis_get_state(r->sink) == WD_REDIS_READY &&
              sink_admits(b, wd_clock_mono_ns());
    size_t n = w->book.n_syms < r->n_dirty_cap ? w->book.n_syms : r->n_dirty_cap;
    for (size_t i = 0; i < n; i++) {
        if (!r->dirty[i])
            continue;
        if (!up || r->inflight >= AGG_REDIS_INFLIGHT_MAX) {
            /* Stays dirty: its newest state goes once Redis is back. */
            continue;
        }
        write_quote(r, (int)i);
    }
}

void agg_redis_quote(agg_redis *r, int sym, const proto_md_quote *q) {
    (void)q;
    if (r->sink == NULL)
        return;
    if ((size_t)sym >= r->n_dirty_cap) {
        size_t cap = r->n_dirty_cap ? r->n_dirty_cap : 64;
        while (cap <= (size_t)sym)
            cap *= 2;
        uint8_t *d = realloc(r->dirty, cap);
        if (d == NULL)
            return;
        memset(d + r->n_dirty_cap, 0, cap - r->n_dirty_cap);
        r->dirty = d;
        r->n_dirty_cap = cap;
    }
    if (r->dirty[sym] && wd_redis_get_state(r->sink) != WD_REDIS_READY)
        r->skipped++; /* an update overwritten before it could be written */
    r->dirty[sym] = 1;
}

static void on_xadd(wd_redis *c, const wd_redis_result *res, void *arg) {
    agg_redis *r = arg;
    (void)c;
    r->inflight--;
    if (res->status == 0)
        r->writes++;
    else
        r->write_errors++, r->bars_skipped++;
}

void agg_redis_bar(agg_redis *r, const proto_md_bar *b) {
    agg_worker *w = r->w;
    if (r->sink == NULL)
        return;
    if (wd_redis_get_state(r->sink) != WD_REDIS_READY || r->inflight >= AGG_REDIS_INFLIGHT_MAX) {
        r->bars_skipped++;
        return;
    }
    char key[AGG_REDIS_KEY_MAX], maxlen[AGG_REDIS_NUM_MAX], v[8][AGG_REDIS_NUM_MAX];
    snprintf(key, sizeof key, "%sbars:%s", w->conf.redis_key_prefix, b->symbol);
    snprintf(maxlen, sizeof maxlen, "%lld", (long long)w->conf.redis_bars_maxlen);
    snprintf(v[0], AGG_REDIS_NUM_MAX, "%llu", (unsigned long long)b->interval_ms);
    snprintf(v[1], AGG_REDIS_NUM_MAX, "%llu", (unsigned long long)b->start_ns);
    fmt_num(v[2], b->open);
    fmt_num(v[3], b->high);
    fmt_num(v[4], b->low);
    fmt_num(v[5], b->close);
    fmt_num(v[6], b->volume);
    snprintf(v[7], AGG_REDIS_NUM_MAX, "%llu", (unsigned long long)b->count);
    const char *argv[] = {"XADD",  key,  "MAXLEN", "~",   maxlen, "*",      "interval_ms",
                          v[0],    "start_ns", v[1], "open", v[2], "high",   v[3],
                          "low",   v[4], "close",  v[5], "volume", v[6], "count", v[7]};
    if (wd_redis_command_argv(r->sink, on_xadd, r, (int)(sizeof argv / sizeof argv[0]), argv,
                              NULL) == 0)
        r->inflight++;
    else
        r->bars_skipped++;
}

void agg_redis_flush(agg_redis *r) { (void)r; /* the sink writes on its own timer */ }

/* ---- source ---- */

static void read_next(agg_redis *r);

static void on_read_retry(uv_timer_t *t) { read_next(t->data); }

static void read_later(agg_redis *r) {
    if (!r->closing)
        uv_timer_start(&r->read_t, on_read_retry, AGG_REDIS_RETRY_MS, 0);
}

static void on_xack(wd_redis *c, const wd_redis_result *res, void *arg) {
    agg_redis *r = arg;
    (void)c;
    if (res->status == 0 && res->reply && res->reply->type == REDIS_REPLY_INTEGER)
        r->acked += (uint64_t)res->reply->integer;
}

static const char *const tick_fields[] = {"ts",       "venue", "symbol", "bid",      "bid_size",
                                          "ask",      "ask_size", "last",  "last_size"};
#define TICK_FIELDS (sizeof tick_fields / sizeof tick_fields[0])

/* Rebuilds the entry as a CSV line in the canonical field order, so it gets
 * exactly the replay's validation. */
static void process_entry(agg_redis *r, const redisReply *fields, uint64_t mono, uint64_t real) {
    const redisReply *val[TICK_FIELDS] = {0};
    char line[AGG_REDIS_LINE_MAX + 1];
    size_t len = 0;
    agg_tick t;
    agg_drop_reason why;
    for (size_t i = 0; fields && i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        for (size_t f = 0; f < TICK_FIELDS; f++)
            if (k->len == strlen(tick_fields[f]) && memcmp(k->str, tick_fields[f], k->len) == 0)
                val[f] = v;
    }
    size_t n = val[7] && val[8] ? TICK_FIELDS : TICK_FIELDS - 2;
    for (size_t f = 0; f < n; f++) {
        if (val[f] == NULL || len + val[f]->len + 1 > AGG_REDIS_LINE_MAX) {
            agg_process_drop(r->w, AGG_SRC_REDIS, AGG_DROP_MALFORMED);
            return;
        }
        if (f > 0)
            line[len++] = ',';
        memcpy(line + len, val[f]->str, val[f]->len);
        len += val[f]->len;
    }
    int rc = agg_csv_parse(line, len, &t, &why);
    if (rc == 0)
        agg_process_tick(r->w, AGG_SRC_REDIS, &t, mono, real);
    else
        agg_process_drop(r->w, AGG_SRC_REDIS, rc == AGG_CSV_SKIP ? AGG_DROP_MALFORMED : why);
}

static void on_xread(wd_redis *c, const wd_redis_result *res, void *arg) {
    agg_redis *r = arg;
    agg_worker *w = r->w;
    (void)c;
    r->reading = false;
    if (r->closing)
        return;
    if (res->status != 0) {
        r->read_errors++;
        /* The server may have delivered entries whose reply never reached
         * us (the connection broke mid-read): they are pending for this
         * consumer, so read the own backlog again before new entries. */
        r->pending_phase = true;
        read_later(r);
        return;
    }
    /* [[stream, [[id, [k, v, ...]], ...]]] or nil on a timeout. */
    const redisReply *entries = wd_redis_reply_at(wd_redis_reply_at(res->reply, 0), 1);
    size_t n = entries && entries->type == REDIS_REPLY_ARRAY ? entries->elements : 0;
    if (n == 0 && r->pending_phase) {
        r->pending_phase = false; /* own backlog done: now new entries */
    }
    const char **argv = n ? malloc((n + 3) * sizeof *argv) : NULL;
    size_t *lens = n ? malloc((n + 3) * sizeof *lens) : NULL;
    int argc = 0;
    if (argv && lens) {
        argv[argc] = "XACK", lens[argc++] = 4;
        argv[argc] = w->conf.redis_stream, lens[argc++] = strlen(w->conf.redis_stream);
        argv[argc] = w->conf.redis_group, lens[argc++] = strlen(w->conf.redis_group);
    }
    uint64_t mono = wd_clock_mono_ns(), real = wd_clock_real_ns();
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = entries->element[i];
        const redisReply *id = wd_redis_reply_at(e, 0), *fields = wd_redis_reply_at(e, 1);
        if (id == NULL || id->type != REDIS_REPLY_STRING)
            continue;
        r->read_entries++;
        /* A pending entry whose data was deleted (XDEL/trim) comes back nil. */
        if (fields && fields->type == REDIS_REPLY_ARRAY)
            process_entry(r, fields, mono, real);
        if (argv && lens)
            argv[argc] = id->str, lens[argc++] = id->len;
    }
    if (argc > 3)
        wd_redis_command_argv(r->src, on_xack, r, argc, argv, lens);
    free(argv);
    free(lens);
    read_next(r);
}

static void on_group(wd_redis *c, const wd_redis_result *res, void *arg) {
    agg_redis *r = arg;
    (void)c;
    r->reading = false;
    if (r->closing)
        return;
    /* BUSYGROUP: it exists already, which is the restart case. */
    if (res->status == 0 || (res->error && strncmp(res->error, "BUSYGROUP", 9) == 0)) {
        r->group_ready = true;
        r->pending_phase = true;
        read_next(r);
        return;
    }
    r->read_errors++;
    read_later(r);
}

static void read_next(agg_redis *r) {
    agg_worker *w = r->w;
    int rc;
    if (r->closing || r->reading)
        return;
    char count[AGG_REDIS_NUM_MAX], block[AGG_REDIS_NUM_MAX];
    snprintf(count, sizeof count, "%lld", (long long)w->conf.redis_read_count);
    snprintf(block, sizeof block, "%d", AGG_REDIS_BLOCK_MS);
    r->reading = true;
    if (!r->group_ready) {
        const char *argv[] = {"XGROUP", "CREATE", w->conf.redis_stream, w->conf.redis_group, "0",
                              "MKSTREAM"};
        rc = wd_redis_command_argv(r->src, on_group, r, 6, argv, NULL);
    } else {
        const char *argv[] = {"XREADGROUP", "GROUP", w->conf.redis_group, r->consumer, "COUNT",
                              count, "BLOCK", block, "STREAMS", w->conf.redis_stream,
                              r->pending_phase ? "0" : ">"};
        /* The backlog is read without blocking. */
        int argc = (int)(sizeof argv / sizeof argv[0]);
        if (r->pending_phase) {
            const char *pv[] = {"XREADGROUP", "GROUP",   w->conf.redis_group, r->consumer,
                                "COUNT",      count,     "STREAMS", w->conf.redis_stream, "0"};
            rc = wd_redis_command_argv(r->src, on_xread, r, 9, pv, NULL);
        } else {
            rc = wd_redis_command_argv(r->src, on_xread, r, argc, argv, NULL);
        }
    }
    if (rc != 0) {
        r->reading = false;
        read_later(r);
    }
}

/* ---- life cycle ---- */

static void on_client_closed(wd_redis *c, void *arg) {
    agg_redis *r = arg;
    (void)c;
    r->handles--;
    maybe_free(r);
}

static void on_handle_closed(uv_handle_t *h) {
    agg_redis *r = h->data;
    r->handles--;
    maybe_free(r);
}

static int open_client(agg_redis *r, const char *name, wd_redis **out, char *err, size_t errlen) {
    wd_redis_opts o;
    wd_redis_opts_default(&o);
    o.url = r->w->conf.redis_url;
    o.name = name;
    o.metric_set = &r->mset;
    o.connect_timeout_ms = 1000;
    o.reconnect_initial_ms = 250;
    o.reconnect_max_ms = 2000;
    o.ping_interval_ms = 1000;
    /* A short open time: the latest state is rewritten soon after Redis
     * returns, and skipping costs nothing while it is away. */
    o.breaker.open_ns = 1000ull * WD_NS_PER_MS;
    o.breaker.open_max_ns = 5000ull * WD_NS_PER_MS;
    int rc = wd_redis_open(r->w->loop, &o, out, err, errlen);
    if (rc != 0)
        return rc;
    r->handles++;
    /* Not fatal: the client works without it, only unreachable by hand. */
    int brc = r->w->ctx ? wrk_breaker_register(r->w->ctx, wd_redis_breaker(*out), false) : 0;
    if (brc != 0)
        wd_warn("breaker %s not registered: %s", name, wd_strerror(brc));
    return 0;
}

int agg_redis_start(agg_worker *w, char *err, size_t errlen) {
    agg_redis *r = calloc(1, sizeof *r);
    if (r == NULL)
        return WD_ENOMEM;
    r->w = w;
    snprintf(r->consumer, sizeof r->consumer, "%s",
             w->conf.redis_consumer[0] ? w->conf.redis_consumer : w->name);
    int rc = wd_redis_metrics_register(w->reg, &r->mset);
    if (rc != 0) {
        snprintf(err, errlen, "redis metrics: %s", wd_strerror(rc));
        free(r);
        return rc;
    }
    uv_timer_init(w->loop, &r->flush_t);
    uv_timer_init(w->loop, &r->read_t);
    r->flush_t.data = r->read_t.data = r;
    r->handles = 2;
    w->redis = r;
    if (w->conf.redis_sink && (rc = open_client(r, "redis-sink", &r->sink, err, errlen)) != 0)
        return rc;
    if (w->src_on[AGG_SRC_REDIS] &&
        (rc = open_client(r, "redis-source", &r->src, err, errlen)) != 0)
        return rc;
    uv_timer_start(&r->flush_t, on_flush, AGG_REDIS_FLUSH_MS, AGG_REDIS_FLUSH_MS);
    if (r->src != NULL)
        read_next(r);
    return 0;
}

void agg_redis_stop(agg_redis *r) {
    if (r == NULL || r->closing)
        return;
    r->closing = true;
    /* The runtime keeps publishing breakers until the process exits, and a
     * client's breaker is freed with the client: unregister first. */
    for (int i = 0; i < 2; i++) {
        wd_redis *c = i == 0 ? r->sink : r->src;
        if (c == NULL)
            continue;
        if (r->w->ctx != NULL)
            wrk_breaker_unregister(r->w->ctx, wd_redis_breaker(c));
        wd_redis_close(c, on_client_closed, r);
    }
    uv_close((uv_handle_t *)&r->flush_t, on_handle_closed);
    uv_close((uv_handle_t *)&r->read_t, on_handle_closed);
}

void agg_redis_metrics(agg_redis *r, proto_heartbeat *hb) {
    const struct {
        const char *name;
        uint64_t v;
    } m[] = {{"warden_agg_redis_writes_total", r->writes},
             {"warden_agg_redis_write_errors_total", r->write_errors},
             {"warden_agg_redis_skipped_total", r->skipped + r->bars_skipped},
             {"warden_agg_redis_source_entries_total", r->read_entries},
             {"warden_agg_redis_source_acked_total", r->acked},
             {"warden_agg_redis_source_errors_total", r->read_errors}};
    for (size_t i = 0; i < sizeof m / sizeof m[0] && hb->n_metrics < PROTO_METRICS_MAX; i++) {
        proto_metric *pm = &hb->metrics[hb->n_metrics++];
        snprintf(pm->name, sizeof pm->name, "%s", m[i].name);
        pm->value = (double)m[i].v;
    }
}

void *agg_redis_stats(agg_redis *r) {
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "writes", (json_int_t)r->writes,
                          "write_errors", (json_int_t)r->write_errors, "skipped",
                          (json_int_t)r->skipped, "bars_skipped", (json_int_t)r->bars_skipped,
                          "source_entries", (json_int_t)r->read_entries, "source_acked",
                          (json_int_t)r->acked, "source_errors", (json_int_t)r->read_errors);
    if (o != NULL && r->sink != NULL)
        json_object_set_new(o, "sink_state",
                            json_string(wd_redis_state_name(wd_redis_get_state(r->sink))));
    if (o != NULL && r->sink != NULL)
        json_object_set_new(o, "sink_breaker",
                            json_string(brk_state_name(wd_redis_breaker(r->sink)->state)));
    if (o != NULL && r->src != NULL)
        json_object_set_new(o, "source_breaker",
                            json_string(brk_state_name(wd_redis_breaker(r->src)->state)));
    return o;
}
