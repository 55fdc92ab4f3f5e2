/* The aggregator's commands (wardenctl call NAME CMD k=v...):
 *   stats                       counters, drops by reason, recent bad replay lines
 *   quote symbol=S              the consolidated quote of S and its venues
 *   invalidate-symbols          read the symbol list from the config now
 *   symbols [bypass=on|off]     the symbol cache's state; bypass on demand */
#include "agg_worker.h"
#include "clock.h"
#include "wd_error.h"

#include <stdio.h>
#include <string.h>

static json_t *symbols_json(agg_worker *w) {
    agg_symcache *c = &w->symcache;
    return json_pack("{s:I, s:b, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:s}", "symbols",
                     (json_int_t)c->n, "bypass", c->bypass, "age_s",
                     agg_symcache_age_s(c, wd_clock_mono_ns()), "ttl_s",
                     (double)c->ttl_ns / 1e9, "hits", (json_int_t)c->hits, "misses",
                     (json_int_t)c->misses, "loads", (json_int_t)c->loads, "load_errors",
                     (json_int_t)c->load_errors, "invalidations", (json_int_t)c->invalidations,
                     "last_error", c->last_error);
}

static json_t *stats_json(agg_worker *w) {
    json_t *in = json_object(), *drop = json_object(), *bad = json_array();
    for (int s = 0; s < AGG_SRC_COUNT; s++) {
        if (!w->src_on[s])
            continue;
        json_t *per = json_object();
        for (size_t v = 0; v <= w->book.n_venues; v++)
            json_object_set_new(per, v < w->book.n_venues ? w->book.venues[v] : "other",
                                json_integer((json_int_t)w->ticks_in[s][v]));
        json_object_set_new(in, agg_source_name((agg_source)s), per);
    }
    for (int r = 0; r < AGG_DROP_COUNT; r++)
        json_object_set_new(drop, agg_drop_reason_name((agg_drop_reason)r),
                            json_integer((json_int_t)w->dropped[r]));
    uint64_t first = w->n_bad_lines > AGG_BAD_LINES_KEPT ? w->n_bad_lines - AGG_BAD_LINES_KEPT : 0;
    for (uint64_t i = first; i < w->n_bad_lines; i++) {
        const agg_bad_line *b = &w->bad_lines[i % AGG_BAD_LINES_KEPT];
        json_array_append_new(bad, json_pack("{s:I, s:s}", "line", (json_int_t)b->line,
                                             "reason", agg_drop_reason_name(b->reason)));
    }
    json_t *o = json_pack("{s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "ticks_in", in,
                          "dropped", drop, "bad_lines", bad, "ticks_processed",
                          (json_int_t)w->ticks_processed, "quotes_out",
                          (json_int_t)w->quotes_out, "bars_out", (json_int_t)w->bars_out,
                          "batches_out", (json_int_t)w->batches_out, "publish_dropped",
                          (json_int_t)w->publish_dropped, "bars_late",
                          (json_int_t)w->bars_late, "symbols", symbols_json(w));
    if (o != NULL && w->replay != NULL) {
        uint64_t lines, ticks, nbad;
        int done;
        agg_replay_stats(w->replay, &lines, &ticks, &nbad, &done);
        json_object_set_new(o, "replay",
                            json_pack("{s:I, s:I, s:I, s:b}", "lines", (json_int_t)lines,
                                      "ticks", (json_int_t)ticks, "bad", (json_int_t)nbad,
                                      "done", done));
    }
    if (o != NULL && w->redis != NULL)
        json_object_set_new(o, "redis", agg_redis_stats(w->redis));
    return o;
}

static json_t *quote_json(agg_worker *w, const agg_symbol *s) {
    const proto_md_quote *q = &s->quote;
    json_t *venues = json_object();
    uint64_t now = wd_clock_mono_ns();
    for (size_t v = 0; v < w->book.n_venues; v++) {
        const agg_venue_quote *vq = &s->v[v];
        if (vq->mono_ns == 0)
            continue;
        json_object_set_new(venues, w->book.venues[v],
                            json_pack("{s:f, s:f, s:f, s:f, s:b, s:f}", "bid", vq->bid,
                                      "bid_size", vq->bid_size, "ask", vq->ask, "ask_size",
                                      vq->ask_size, "present", vq->present, "age_s",
                                      (double)(now - vq->mono_ns) / 1e9));
    }
    return json_pack("{s:s, s:b, s:f, s:f, s:s, s:f, s:f, s:s, s:f, s:f, s:b, s:b, s:I, s:o}",
                     "symbol", s->name, "active", s->active, "bid", q->bid, "bid_size",
                     q->bid_size, "bid_venue", q->bid_venue, "ask", q->ask, "ask_size",
                     q->ask_size, "ask_venue", q->ask_venue, "mid", q->mid, "spread", q->spread,
                     "crossed", (q->flags & PROTO_MD_CROSSED) != 0, "locked",
                     (q->flags & PROTO_MD_LOCKED) != 0, "n_venues", (json_int_t)q->n_venues,
                     "venues", venues);
}

int agg_command(wrk_ctx *ctx, const proto_ctl_request *req, json_t **data, char *err,
                size_t errlen) {
    agg_worker *w = wrk_data(ctx);
    if (strcmp(req->cmd, "stats") == 0) {
        *data = stats_json(w);
        return 0;
    }
    if (strcmp(req->cmd, "invalidate-symbols") == 0) {
        agg_symcache_invalidate(&w->symcache);
        int rc = agg_symcache_check(&w->symcache, wd_clock_mono_ns());
        if (rc < 0) {
            snprintf(err, errlen, "symbols not reloaded: %s", w->symcache.last_error);
            return rc;
        }
        *data = symbols_json(w);
        return 0;
    }
    if (strcmp(req->cmd, "symbols") == 0) {
        const char *b = proto_ctl_request_arg(req, "bypass");
        if (b != NULL) {
            bool on;
            if (wd_parse_bool(b, &on) != 0) {
                snprintf(err, errlen, "symbols: bypass must be on or off");
                return WD_EINVAL;
            }
            w->symcache.bypass = on;
        }
        *data = symbols_json(w);
        return 0;
    }
    if (strcmp(req->cmd, "quote") == 0) {
        const char *sym = proto_ctl_request_arg(req, "symbol");
        int id = sym ? agg_book_symbol(&w->book, sym, strlen(sym), false) : -1;
        if (sym == NULL || id < 0 || !w->book.syms[id].has_quote) {
            snprintf(err, errlen, "quote: no quote for symbol '%.40s'", sym ? sym : "");
            return WD_ENOTFOUND;
        }
        *data = quote_json(w, &w->book.syms[id]);
        return 0;
    }
    snprintf(err, errlen,
             "unknown command '%s' (stats, quote symbol=S, invalidate-symbols, symbols "
             "[bypass=on|off])",
             req->cmd);
    return WD_ENOTFOUND;
}
