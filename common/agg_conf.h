/* The aggregator's settings: the [aggregator] section (or [aggregator:NAME]
 * when several aggregators share one config) of the warden config, as a
 * typed table. It lives in libwarden rather than in the worker so that the
 * supervisor can register it (agg_conf_register) and `warden check-config`
 * validates the section like its own. Every key is documented in the table
 * (agg_conf.c) and printed by wd_conf_print_defaults. */
#ifndef WD_AGG_CONF_H
#define WD_AGG_CONF_H

#include "config.h"

#include <stdbool.h>
#include <stdint.h>

#define AGG_CONF_SECTION "aggregator"
#define AGG_CONF_SHORT_MAX 255   /* lists of sources, venues, intervals */
#define AGG_CONF_NAME_MAX 127    /* stream, group, consumer, key prefix */
#define AGG_CONF_URL_MAX 1023

typedef enum { AGG_BARS_FROM_MIDS = 0, AGG_BARS_FROM_TRADES } agg_bar_source;
typedef enum { AGG_TOPIC_SYMBOL = 0, AGG_TOPIC_ALL } agg_topic_mode;

typedef struct {
    char source[AGG_CONF_SHORT_MAX + 1];       /* "synthetic,replay,redis" (any of) */
    char symbols[WD_CONF_VALUE_MAX + 1];       /* comma/space separated */
    uint64_t symbols_ttl_ms;
    bool symbols_bypass;
    char venues[AGG_CONF_SHORT_MAX + 1];
    uint64_t venue_stale_after_ms;
    char bar_intervals[AGG_CONF_SHORT_MAX + 1]; /* durations, e.g. "1s,1m" */
    int bar_source;                             /* agg_bar_source */
    int64_t batch_max;
    uint64_t flush_interval_ms;
    int topics;                                 /* agg_topic_mode */
    char publish_url[WD_CONF_PATH_MAX];         /* "" = ipc://RUN_DIR/marketdata.sock */
    int64_t synthetic_rate;                     /* ticks per second */
    int64_t synthetic_seed;
    double synthetic_gap_probability;
    char replay_file[WD_CONF_PATH_MAX];
    double replay_speed;                        /* 0 = as fast as possible */
    char redis_url[AGG_CONF_URL_MAX + 1];       /* "" = no Redis (sink nor source) */
    bool redis_sink;
    char redis_stream[AGG_CONF_NAME_MAX + 1];
    char redis_group[AGG_CONF_NAME_MAX + 1];
    char redis_consumer[AGG_CONF_NAME_MAX + 1]; /* "" = the worker's name */
    int64_t redis_read_count;
    char redis_key_prefix[AGG_CONF_NAME_MAX + 1];
    int64_t redis_bars_maxlen;
} agg_conf;

extern const wd_conf_field agg_conf_fields[];
extern const size_t agg_conf_n_fields;

/* Registers the table for "aggregator*" (see wd_conf_register_section). */
int agg_conf_register(void);

/* Reads path and applies [section] (NULL: "aggregator") into *out. Returns 0,
 * or WD_ECONFIG / WD_EIO / WD_ENOMEM with the first error in err (file:line
 * and the offending text). */
int agg_conf_load(const char *path, const char *section, agg_conf *out, char *err,
                  size_t errlen);

#endif
