/* warden-aggregator: ticks from several venues in, consolidated quotes and
 * OHLCV bars out. This header holds the pieces that need no loop (ticks and
 * their validation, the CSV parser, the synthetic generator, the book, bars,
 * the symbol cache, the batch builder), each in its own .c file and each
 * tested on its own; agg_worker.h wires them to libuv, nng and Redis.
 *
 * Times: *_mono_ns are CLOCK_MONOTONIC (staleness, cache age), *_ns / ts_ns
 * are source time (bars), recv_ns is CLOCK_REALTIME (publish latency, which
 * a subscriber in another process can measure too). Every function takes its
 * "now" from the caller, so tests drive a fake clock. */
#ifndef WD_AGG_H
#define WD_AGG_H

#include "proto_md.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGG_VENUES_MAX 16
#define AGG_SYMBOLS_MAX 4096
#define AGG_INTERVALS_MAX 4
#define AGG_CSV_LINE_MAX 512    /* longest CSV line; longer ones are bad ("too_long") */
#define AGG_CSV_FIELDS_MIN 7
#define AGG_CSV_FIELDS_MAX 9

typedef char agg_symname[PROTO_MD_SYMBOL_MAX + 1];

/* ---- ticks (agg_tick.c) ---- */

typedef struct {
    uint64_t ts_ns; /* source time */
    char venue[PROTO_MD_VENUE_MAX + 1];
    agg_symname symbol;
    double bid, bid_size, ask, ask_size; /* a price 0 with size 0: that side is empty */
    double last, last_size;              /* valid when has_last */
    bool has_last;
} agg_tick;

/* Why a tick or an input line was dropped; the names are metric labels. */
typedef enum {
    AGG_DROP_MALFORMED = 0, /* wrong number of fields, empty field */
    AGG_DROP_TOO_LONG,      /* line over AGG_CSV_LINE_MAX */
    AGG_DROP_BAD_TIMESTAMP, /* ts not a number of ns or decimal seconds */
    AGG_DROP_BAD_NUMBER,    /* a price or size that is not a finite number */
    AGG_DROP_BAD_NAME,      /* venue or symbol empty, too long or with bad characters */
    AGG_DROP_UNKNOWN_VENUE, /* venue not in `venues` */
    AGG_DROP_NEGATIVE_PRICE,
    AGG_DROP_NEGATIVE_SIZE,
    AGG_DROP_CROSSED_VENUE, /* bid > ask on one venue */
    AGG_DROP_UNKNOWN_SYMBOL, /* symbol not in the symbol list */
    AGG_DROP_COUNT
} agg_drop_reason;

const char *agg_drop_reason_name(agg_drop_reason r);

/* Checks prices and sizes of a parsed tick: 0, or WD_EINVAL with *why. */
int agg_tick_check(const agg_tick *t, agg_drop_reason *why);

/* ---- CSV (agg_csv.c) ----
 * ts,venue,symbol,bid,bid_size,ask,ask_size[,last,last_size]
 * ts is integer nanoseconds since the epoch, or decimal seconds with a '.'
 * (up to 9 decimals). line excludes the newline (a trailing '\r' is
 * ignored). Returns 0 with *t filled, AGG_CSV_SKIP for a line that is not a
 * tick (empty, a '#' comment, the header "ts,..."), or WD_EINVAL with *why. */
#define AGG_CSV_SKIP 1
int agg_csv_parse(const char *line, size_t len, agg_tick *t, agg_drop_reason *why);
/* Parses ts as above into *ns; 0 or WD_EINVAL. */
int agg_parse_ts(const char *s, size_t len, uint64_t *ns);

/* ---- names and lists (agg_tick.c) ---- */

/* Splits a comma/blank separated list of names (symbols or venues, checked
 * with proto_md_name_ok against max) into out[0..*n), dropping repeats.
 * 0, or WD_EINVAL / WD_ETOOBIG with err naming the bad entry. */
int agg_parse_names(const char *list, size_t max, agg_symname *out, size_t cap, size_t *n,
                    char *err, size_t errlen);
/* Splits a list of durations ("1s,1m") into ms; 0 or WD_EINVAL / WD_ETOOBIG. */
int agg_parse_intervals(const char *list, uint64_t *out_ms, size_t cap, size_t *n, char *err,
                        size_t errlen);

/* ---- synthetic source (agg_synth.c) ----
 * A seeded random walk per symbol and venue. The sequence of ticks (which
 * symbol and venue, prices, sizes, trades, gaps) depends only on the seed
 * and the lists; ts is the caller's. */
typedef struct agg_synth agg_synth;
int agg_synth_new(uint64_t seed, const agg_symname *symbols, size_t n_symbols,
                  const agg_symname *venues, size_t n_venues, double gap_probability,
                  agg_synth **out);
void agg_synth_free(agg_synth *s);
/* The next tick, stamped ts_ns. */
void agg_synth_next(agg_synth *s, uint64_t ts_ns, agg_tick *t);

/* ---- bars (agg_bars.c) ---- */
typedef struct {
    uint64_t start_ns; /* 0: no bar open */
    double open, high, low, close, volume;
    uint64_t count;
} agg_bar;

/* Folds a price (and volume) at source time ts into the bar of interval_ms.
 * If ts is past the open bar, that bar is closed into *closed first (1 is
 * returned) and a new one starts. A price of 0 adds only volume. A tick
 * older than the open bar is ignored (returns AGG_BAR_LATE). */
#define AGG_BAR_LATE 2
int agg_bar_add(agg_bar *b, uint64_t interval_ms, uint64_t ts_ns, double px, double volume,
                proto_md_bar *closed);
/* Closes the open bar into *closed (returns 1) if source time has reached
 * its end (watermark_ns >= start + interval); else 0. */
int agg_bar_close_due(agg_bar *b, uint64_t interval_ms, uint64_t watermark_ns,
                      proto_md_bar *closed);

/* ---- book (agg_book.c) ---- */
typedef struct {
    double bid, bid_size, ask, ask_size;
    uint64_t ts_ns, recv_ns, mono_ns;
    bool present; /* has had a tick and is not stale */
} agg_venue_quote;

typedef struct {
    agg_symname name;
    bool active; /* in the current symbol list */
    agg_venue_quote v[AGG_VENUES_MAX];
    proto_md_quote quote; /* the last consolidated quote */
    bool has_quote;
    agg_bar bars[AGG_INTERVALS_MAX];
} agg_symbol;

typedef struct {
    size_t n_venues;
    agg_symname venues[AGG_VENUES_MAX];
    uint64_t stale_after_ns;
    agg_symbol *syms; /* owned */
    size_t n_syms, cap;
    uint32_t *slots; /* open-addressing index into syms, +1 (0 = empty); owned */
    size_t n_slots;  /* a power of two, > 2 * cap */
    uint64_t venue_last_mono[AGG_VENUES_MAX];
} agg_book;

int agg_book_init(agg_book *b, const agg_symname *venues, size_t n_venues,
                  uint64_t stale_after_ns);
void agg_book_free(agg_book *b);
/* Index of a venue, or -1. */
int agg_book_venue(const agg_book *b, const char *name);
/* Index of a symbol, or -1; with create, adds it (inactive) if missing
 * (-1 then only past AGG_SYMBOLS_MAX or out of memory). */
int agg_book_symbol(agg_book *b, const char *name, size_t len, bool create);
/* Marks exactly the given symbols active (adding them as needed). Returns
 * 0 or WD_ETOOBIG / WD_ENOMEM. */
int agg_book_set_active(agg_book *b, const agg_symname *names, size_t n);
/* Applies a venue's tick to a symbol. Returns 1 and fills *out when the
 * consolidated quote changed, else 0. */
int agg_book_update(agg_book *b, int sym, int venue, const agg_tick *t, uint64_t now_mono_ns,
                    uint64_t recv_ns, proto_md_quote *out);
/* Drops the symbol's venues with no tick for stale_after; returns 1 and
 * fills *out when that changed the consolidated quote. */
int agg_book_expire(agg_book *b, int sym, uint64_t now_mono_ns, proto_md_quote *out);
/* Computes the consolidated quote of s from its present venues. */
void agg_book_consolidate(const agg_book *b, const agg_symbol *s, proto_md_quote *q);

/* ---- symbol cache (agg_symcache.c) ----
 * The symbol list comes from config through this cache: a lookup within
 * the TTL is a hit; past it, after an invalidation, or always with bypass,
 * the list is loaded again (a miss). A failed load keeps the previous list. */
typedef int (*agg_symbols_load_fn)(void *arg, agg_symname *names, size_t cap, size_t *n,
                                   char *err, size_t errlen);
/* Called with the new list after every successful load. */
typedef void (*agg_symbols_apply_fn)(void *arg, const agg_symname *names, size_t n);

typedef struct {
    uint64_t ttl_ns;
    bool bypass;
    bool valid;        /* a list is loaded and not invalidated */
    uint64_t loaded_mono_ns;
    uint64_t hits, misses, loads, load_errors, invalidations;
    agg_symbols_load_fn load;
    agg_symbols_apply_fn apply;
    void *arg;
    agg_symname *names; /* owned, AGG_SYMBOLS_MAX */
    size_t n;
    char last_error[256];
} agg_symcache;

int agg_symcache_init(agg_symcache *c, uint64_t ttl_ns, bool bypass, agg_symbols_load_fn load,
                      agg_symbols_apply_fn apply, void *arg);
void agg_symcache_free(agg_symcache *c);
/* Returns 0 on a hit, 1 after a successful (re)load, or the load's error
 * (the previous list stays in force; the next lookup tries again). */
int agg_symcache_check(agg_symcache *c, uint64_t now_mono_ns);
void agg_symcache_invalidate(agg_symcache *c);
/* Seconds since the list was loaded (0 before the first load). */
double agg_symcache_age_s(const agg_symcache *c, uint64_t now_mono_ns);

/* ---- batch (agg_batch.c) ----
 * The batch being built: the latest quote per symbol (conflated: a symbol
 * changed twice before a flush is sent once, with its newest state) and the
 * bars closed since the last flush. */
typedef struct {
    uint32_t max;               /* batch_max: quotes + bars that trigger a flush */
    proto_md_quote *quotes;     /* owned, max */
    int32_t *quote_sym;         /* owned, max: the symbol of each quote */
    uint32_t n_quotes;
    proto_md_bar *bars;         /* owned, max */
    uint32_t n_bars;
    int32_t *slot;              /* per symbol: index in quotes, or -1; owned */
    size_t n_slot;
    uint64_t first_mono_ns;     /* when the batch got its first entry */
} agg_batch;

int agg_batch_init(agg_batch *b, uint32_t max);
void agg_batch_free(agg_batch *b);
/* Adds or replaces the quote of symbol sym. Returns true when the batch is
 * now full (flush it). WD_ENOMEM is reported as full, so it is flushed. */
bool agg_batch_quote(agg_batch *b, int sym, const proto_md_quote *q, uint64_t now_mono_ns);
bool agg_batch_bar(agg_batch *b, const proto_md_bar *bar, uint64_t now_mono_ns);
bool agg_batch_empty(const agg_batch *b);
/* Forgets the entries (after they were sent). */
void agg_batch_clear(agg_batch *b);

#endif
