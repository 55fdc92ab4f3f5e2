/* The tick path and publishing: a tick is checked, its venue and symbol
 * looked up (the symbol list through the TTL cache), folded into the book
 * and the bars, and the consolidated quote that changed goes into the batch;
 * a full or timed-out batch is packed (proto_md) and sent on marketdata.sock,
 * one message per symbol (topics = symbol) or one for all (topics = all). */
#include "agg_worker.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const source_names[AGG_SRC_COUNT] = {"synthetic", "replay", "redis"};

const char *agg_source_name(agg_source s) {
    return (unsigned)s < AGG_SRC_COUNT ? source_names[s] : "unknown";
}

int agg_symbols_load_config(void *arg, agg_symname *names, size_t cap, size_t *n, char *err,
                            size_t errlen) {
    agg_worker *w = arg;
    agg_conf *c = malloc(sizeof *c);
    if (c == NULL)
        return WD_ENOMEM;
    int rc = agg_conf_load(w->config_path, w->section, c, err, errlen);
    if (rc == 0)
        rc = agg_parse_names(c->symbols, PROTO_MD_SYMBOL_MAX, names, cap, n, err, errlen);
    free(c);
    return rc;
}

static void symbols_apply(void *arg, const agg_symname *names, size_t n) {
    agg_worker *w = arg;
    if (agg_book_set_active(&w->book, names, n) != 0)
        wd_warn("symbols: only %zu of %zu symbols fit (AGG_SYMBOLS_MAX %d)", w->book.n_syms, n,
                AGG_SYMBOLS_MAX);
    wd_info("symbols: %zu in the list", n);
}

int agg_pipeline_init(agg_worker *w, char *err, size_t errlen) {
    agg_symname venues[AGG_VENUES_MAX];
    size_t nv = 0;
    int rc = agg_parse_names(w->conf.venues, PROTO_MD_VENUE_MAX, venues, AGG_VENUES_MAX, &nv, err,
                             errlen);
    if (rc != 0)
        return rc;
    if (nv == 0) {
        snprintf(err, errlen, "venues: the list is empty");
        return WD_EINVAL;
    }
    rc = agg_parse_intervals(w->conf.bar_intervals, w->intervals_ms, AGG_INTERVALS_MAX,
                             &w->n_intervals, err, errlen);
    if (rc != 0)
        return rc;
    if ((rc = agg_book_init(&w->book, venues, nv, w->conf.venue_stale_after_ms * WD_NS_PER_MS)))
        return rc;
    if ((rc = agg_batch_init(&w->batch, (uint32_t)w->conf.batch_max)) != 0 ||
        (rc = agg_symcache_init(&w->symcache, w->conf.symbols_ttl_ms * WD_NS_PER_MS,
                                w->conf.symbols_bypass, agg_symbols_load_config, symbols_apply,
                                w)) != 0) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    msgpack_sbuffer_init(&w->sb);
    /* The first load happens now, so a bad symbol list fails start-up. */
    rc = agg_symcache_check(&w->symcache, wd_clock_mono_ns());
    if (rc < 0) {
        snprintf(err, errlen, "%s", w->symcache.last_error);
        return rc;
    }
    return 0;
}

void agg_pipeline_free(agg_worker *w) {
    agg_book_free(&w->book);
    agg_batch_free(&w->batch);
    agg_symcache_free(&w->symcache);
    msgpack_sbuffer_destroy(&w->sb);
}

void agg_process_drop(agg_worker *w, agg_source src, agg_drop_reason why) {
    (void)src;
    w->dropped[why]++;
}

static void on_flush_timer(uv_timer_t *t) {
    agg_worker *w = t->data;
    agg_publish_flush(w, wd_clock_real_ns());
}

/* The batch just got its first entry: it leaves flush_interval from now at
 * the latest. */
static void arm_flush(agg_worker *w) {
    if (w->handles_init && !w->stopping)
        uv_timer_start(&w->flush_timer, on_flush_timer, w->conf.flush_interval_ms, 0);
}

static void batch_quote(agg_worker *w, int sym, const proto_md_quote *q, uint64_t now_mono_ns,
                        uint64_t now_real_ns) {
    if (w->redis != NULL)
        agg_redis_quote(w->redis, sym, q);
    bool was_empty = agg_batch_empty(&w->batch);
    if (agg_batch_quote(&w->batch, sym, q, now_mono_ns))
        agg_publish_flush(w, now_real_ns);
    else if (was_empty)
        arm_flush(w);
}

static void batch_bar(agg_worker *w, const proto_md_bar *b, uint64_t now_mono_ns,
                      uint64_t now_real_ns) {
    if (w->redis != NULL)
        agg_redis_bar(w->redis, b);
    bool was_empty = agg_batch_empty(&w->batch);
    if (agg_batch_bar(&w->batch, b, now_mono_ns))
        agg_publish_flush(w, now_real_ns);
    else if (was_empty)
        arm_flush(w);
}

static void bars_fold(agg_worker *w, agg_symbol *s, const agg_tick *t, const proto_md_quote *q,
                      uint64_t now_mono_ns, uint64_t now_real_ns) {
    double px, vol = t->has_last ? t->last_size : 0;
    if (w->conf.bar_source == AGG_BARS_FROM_TRADES)
        px = t->has_last ? t->last : 0;
    else
        px = (q->flags & (PROTO_MD_NO_BID | PROTO_MD_NO_ASK)) ? 0 : q->mid;
    if (px <= 0 && vol <= 0)
        return;
    for (size_t i = 0; i < w->n_intervals; i++) {
        proto_md_bar closed;
        int rc = agg_bar_add(&s->bars[i], w->intervals_ms[i], t->ts_ns, px, vol, &closed);
        if (rc == 1) {
            memcpy(closed.symbol, s->name, sizeof closed.symbol);
            w->bars_out++;
            batch_bar(w, &closed, now_mono_ns, now_real_ns);
        } else if (rc == AGG_BAR_LATE) {
            w->bars_late++;
        }
    }
}

void agg_process_tick(agg_worker *w, agg_source src, const agg_tick *t, uint64_t now_mono_ns,
                      uint64_t now_real_ns) {
    agg_drop_reason why;
    int venue = agg_book_venue(&w->book, t->venue);
    w->ticks_in[src][venue < 0 ? w->book.n_venues : (size_t)venue]++;
    if (w->ctx != NULL)
        wrk_progress(w->ctx, 1);
    w->ticks_processed++;
    if (venue < 0) {
        w->dropped[AGG_DROP_UNKNOWN_VENUE]++;
        return;
    }
    if (agg_tick_check(t, &why) != 0) {
        w->dropped[why]++;
        return;
    }
    agg_symcache_check(&w->symcache, now_mono_ns);
    int sym = agg_book_symbol(&w->book, t->symbol, strlen(t->symbol), false);
    if (sym < 0 || !w->book.syms[sym].active) {
        w->dropped[AGG_DROP_UNKNOWN_SYMBOL]++;
        return;
    }
    if (t->ts_ns > w->watermark_ns)
        w->watermark_ns = t->ts_ns;
    proto_md_quote q;
    agg_symbol *s = &w->book.syms[sym];
    if (agg_book_update(&w->book, sym, venue, t, now_mono_ns, now_real_ns, &q) == 1) {
        w->quotes_out++;
        batch_quote(w, sym, &q, now_mono_ns, now_real_ns);
    }
    bars_fold(w, s, t, &s->quote, now_mono_ns, now_real_ns);
}

void agg_process_sweep(agg_worker *w, uint64_t now_mono_ns, uint64_t now_real_ns) {
    /* Live sources tick in real time: bars close on the clock too, so a
     * symbol that stops trading still gets its bar. A replay's bars close
     * on its own source time only. */
    if ((w->src_on[AGG_SRC_SYNTHETIC] || w->src_on[AGG_SRC_REDIS]) &&
        now_real_ns > w->watermark_ns)
        w->watermark_ns = now_real_ns;
    for (size_t i = 0; i < w->book.n_syms; i++) {
        agg_symbol *s = &w->book.syms[i];
        proto_md_quote q;
        if (agg_book_expire(&w->book, (int)i, now_mono_ns, &q) == 1 && s->active) {
            w->quotes_out++;
            batch_quote(w, (int)i, &q, now_mono_ns, now_real_ns);
        }
        for (size_t k = 0; k < w->n_intervals; k++) {
            proto_md_bar closed;
            if (agg_bar_close_due(&s->bars[k], w->intervals_ms[k], w->watermark_ns, &closed)) {
                memcpy(closed.symbol, s->name, sizeof closed.symbol);
                w->bars_out++;
                batch_bar(w, &closed, now_mono_ns, now_real_ns);
            }
        }
    }
}

/* ---- publishing ---- */

static void send_msg(agg_worker *w) {
    int rc = 0;
    if (w->send_hook != NULL)
        rc = w->send_hook(w->send_arg, w->sb.data, w->sb.size);
    if (w->pub != NULL)
        rc = bus_out_send(w->pub, w->sb.data, w->sb.size);
    if (rc != 0)
        w->publish_dropped++;
    w->batches_out++;
    w->sb.size = 0;
}

static void pack_one(agg_worker *w, const char *topic, const proto_md_quote *q, uint32_t nq,
                     const proto_md_bar *b, uint32_t nb, uint64_t now_real_ns) {
    proto_header hdr;
    memset(&hdr, 0, sizeof hdr);
    memcpy(hdr.sender, w->name, sizeof hdr.sender);
    hdr.seq = ++w->seq;
    hdr.ts_ns = now_real_ns;
    int rc = proto_md_batch_pack(&w->sb, topic, &hdr, q, nq, b, nb);
    if (rc != 0) {
        /* Only a bug can get here (every field was built by us). */
        wd_error("market data batch not packed: %s", wd_strerror(rc));
        w->publish_dropped++;
        w->sb.size = 0;
        return;
    }
    send_msg(w);
}

/* topics = symbol: one message per symbol, holding its quote and its bars. */
static void flush_per_symbol(agg_worker *w, uint64_t now_real_ns) {
    agg_batch *b = &w->batch;
    proto_md_bar bars[AGG_INTERVALS_MAX * 4];
    bool *used = calloc(b->n_bars ? b->n_bars : 1, sizeof *used);
    for (uint32_t i = 0; i < b->n_quotes; i++) {
        uint32_t nb = 0;
        for (uint32_t k = 0; used && k < b->n_bars && nb < sizeof bars / sizeof bars[0]; k++)
            if (!used[k] && strcmp(b->bars[k].symbol, b->quotes[i].symbol) == 0)
                bars[nb++] = b->bars[k], used[k] = true;
        pack_one(w, b->quotes[i].symbol, &b->quotes[i], 1, bars, nb, now_real_ns);
    }
    for (uint32_t k = 0; k < b->n_bars; k++) {
        if (used && used[k])
            continue;
        pack_one(w, b->bars[k].symbol, NULL, 0, &b->bars[k], 1, now_real_ns);
    }
    free(used);
}

void agg_publish_flush(agg_worker *w, uint64_t now_real_ns) {
    agg_batch *b = &w->batch;
    if (agg_batch_empty(b))
        return;
    if (w->conf.topics == AGG_TOPIC_ALL)
        pack_one(w, PROTO_MD_TOPIC_ALL, b->quotes, b->n_quotes, b->bars, b->n_bars,
                 now_real_ns);
    else
        flush_per_symbol(w, now_real_ns);
    /* Latency as the issue defines it: tick received -> batch sent. */
    uint64_t sent = wd_clock_real_ns();
    for (uint32_t i = 0; w->h_latency != NULL && i < b->n_quotes; i++) {
        uint64_t r = b->quotes[i].recv_ns;
        wd_hist_observe(w->h_latency, sent > r ? (double)(sent - r) / 1e9 : 0.0);
    }
    if (w->h_batch != NULL)
        wd_hist_observe(w->h_batch, (double)(b->n_quotes + b->n_bars));
    agg_batch_clear(b);
    if (w->handles_init)
        uv_timer_stop(&w->flush_timer);
    if (w->redis != NULL)
        agg_redis_flush(w->redis);
}
