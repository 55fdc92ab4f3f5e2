/* The [aggregator] table. Data only, apart from register and load; bounds
 * and defaults are changed here and nowhere else. */
#include "agg_conf.h"
#include <unistd.h>
#include "wd_error.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define MS_PER_H (3600ULL * 1000ULL)
#define AGG_RATE_MAX 10000000       /* synthetic ticks per second */
#define AGG_BATCH_MAX 512           /* PROTO_MD_QUOTES_MAX */
#define AGG_READ_COUNT_MAX 10000
#define AGG_MAXLEN_MAX 100000000

static const char *const bar_source_names[] = {"mids", "trades", NULL};
static const char *const topic_names[] = {"symbol", "all", NULL};

#define AF(n, t, m, lo, hi, d, h)                                                               \
    {                                                                                           \
        .name = n, .type = t, .offset = offsetof(agg_conf, m),                                  \
        .size = sizeof(((agg_conf *)0)->m), .min = lo, .max = hi, .def = d, .help = h           \
    }

const wd_conf_field agg_conf_fields[] = {
    AF("source", WD_CONF_STRING, source, 0, 0, "synthetic",
       "Tick sources, comma separated: synthetic, replay, redis (several at once allowed)."),
    AF("symbols", WD_CONF_STRING, symbols, 0, 0, NULL,
       "Required. Symbols to aggregate, comma or space separated; ticks for others are "
       "dropped and counted."),
    AF("symbols_ttl", WD_CONF_DURATION, symbols_ttl_ms, 1, 24 * MS_PER_H, "5m",
       "How long the symbol list read from this file is trusted before it is read again."),
    AF("symbols_bypass", WD_CONF_BOOL, symbols_bypass, 0, 0, "no",
       "Read the symbol list from the file on every lookup (no cache); for debugging."),
    AF("venues", WD_CONF_STRING, venues, 0, 0, "XNAS,XNYS,BATS,ARCA",
       "Known venues, comma separated (at most 16); ticks from others are dropped."),
    AF("venue_stale_after", WD_CONF_DURATION, venue_stale_after_ms, 1, MS_PER_H, "5s",
       "A venue with no tick for a symbol this long leaves that symbol's consolidated quote."),
    AF("bar_intervals", WD_CONF_STRING, bar_intervals, 0, 0, "1s,1m",
       "OHLCV bar intervals, comma separated durations (at most 4); empty for none."),
    {.name = "bar_source",
     .type = WD_CONF_ENUM,
     .offset = offsetof(agg_conf, bar_source),
     .size = sizeof(int),
     .def = "mids",
     .names = bar_source_names,
     .help = "Prices bars are built from: consolidated mids, or trades (ticks with last)."},
    AF("batch_max", WD_CONF_INT, batch_max, 1, AGG_BATCH_MAX, "256",
       "A batch is published once it holds this many quotes and bars."),
    AF("flush_interval", WD_CONF_DURATION, flush_interval_ms, 1, 60000, "1ms",
       "A batch is published at the latest this long after its first quote."),
    {.name = "topics",
     .type = WD_CONF_ENUM,
     .offset = offsetof(agg_conf, topics),
     .size = sizeof(int),
     .def = "symbol",
     .names = topic_names,
     .help = "symbol: one message per symbol and flush, topic = the symbol; all: one "
             "message per flush for every symbol, topic \"*\" (for high tick rates)."},
    AF("publish_url", WD_CONF_STRING, publish_url, 0, 0, "",
       "Where the PUB socket listens; empty: ipc://RUN_DIR/marketdata.sock."),
    AF("synthetic_rate", WD_CONF_INT, synthetic_rate, 1, AGG_RATE_MAX, "200",
       "Synthetic source: ticks per second over all symbols and venues."),
    AF("synthetic_seed", WD_CONF_INT, synthetic_seed, 0, INT64_MAX, "1",
       "Synthetic source: the seed; the same seed gives the same ticks."),
    {.name = "synthetic_gap_probability",
     .type = WD_CONF_DOUBLE,
     .offset = offsetof(agg_conf, synthetic_gap_probability),
     .size = sizeof(double),
     .dmin = 0,
     .dmax = 1,
     .def = "0.001",
     .help = "Synthetic source: chance per tick that the venue falls silent for a while."},
    AF("replay_file", WD_CONF_STRING, replay_file, 0, 0, "",
       "Replay source: CSV of ts,venue,symbol,bid,bid_size,ask,ask_size[,last,last_size]."),
    {.name = "replay_speed",
     .type = WD_CONF_DOUBLE,
     .offset = offsetof(agg_conf, replay_speed),
     .size = sizeof(double),
     .dmin = 0,
     .dmax = 1e6,
     .def = "1",
     .help = "Replay source: 1 = original pace, N = N times faster, 0 = as fast as possible."},
    AF("redis_url", WD_CONF_STRING, redis_url, 0, 0, "",
       "Redis for the sink and the redis source (redis://[:PASSWORD@]HOST:PORT[/DB]); "
       "empty: none. The password is never logged."),
    AF("redis_sink", WD_CONF_BOOL, redis_sink, 0, 0, "yes",
       "Write the last quote per symbol and closed bars to Redis (when redis_url is set)."),
    AF("redis_stream", WD_CONF_STRING, redis_stream, 0, 0, "md:ticks",
       "Redis source: the stream feed handlers XADD ticks to."),
    AF("redis_group", WD_CONF_STRING, redis_group, 0, 0, "aggregator",
       "Redis source: the consumer group (created if missing)."),
    AF("redis_consumer", WD_CONF_STRING, redis_consumer, 0, 0, "",
       "Redis source: this consumer's name; empty: the worker's name."),
    AF("redis_read_count", WD_CONF_INT, redis_read_count, 1, AGG_READ_COUNT_MAX, "512",
       "Redis source: entries asked for per XREADGROUP."),
    AF("redis_key_prefix", WD_CONF_STRING, redis_key_prefix, 0, 0, "md:",
       "Redis sink: keys are PREFIX last:SYMBOL (hash) and PREFIX bars:SYMBOL (stream)."),
    AF("redis_bars_maxlen", WD_CONF_INT, redis_bars_maxlen, 1, AGG_MAXLEN_MAX, "10000",
       "Redis sink: approximate cap of each bar stream (XADD MAXLEN ~)."),
};
const size_t agg_conf_n_fields = sizeof agg_conf_fields / sizeof agg_conf_fields[0];

int agg_conf_register(void) {
    return wd_conf_register_section(AGG_CONF_SECTION "*", agg_conf_fields, agg_conf_n_fields,
                                    sizeof(agg_conf));
}

int agg_conf_load(const char *path, const char *section, agg_conf *out, char *err,
                  size_t errlen) {
    wd_conf *conf = NULL;
    wd_conf_errors *errs = calloc(1, sizeof *errs);
    int rc;
    if (errs == NULL)
        return WD_ENOMEM;
    /* WARDEN_AGGREGATOR_<KEY> overrides, as for every other section. */
    rc = wd_conf_read(path, environ, &conf, errs);
    if (rc == 0)
        rc = wd_conf_apply_section(conf, section ? section : AGG_CONF_SECTION, agg_conf_fields,
                                   agg_conf_n_fields, out, errs);
    if (rc != 0)
        snprintf(err, errlen, "%s", errs->n > 0 ? errs->msg[0] : wd_strerror(rc));
    wd_conf_free(conf);
    free(errs);
    return rc;
}
