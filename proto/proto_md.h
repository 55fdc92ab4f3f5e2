/* Market data on marketdata.sock (aggregator -> subscribers, PUB/SUB): one
 * message type, the batch (type 16), documented in proto/PROTOCOL.md
 * ("Market data").
 *
 * A marketdata.sock message is two msgpack values back to back: a topic str
 * (a symbol, or "*" for a batch that mixes symbols), then the usual envelope
 * [version, 16, sender, seq, ts_ns, body]. The topic comes first so that an
 * nng SUB socket can subscribe by prefix: the msgpack encoding of a str
 * starts with its length, so subscribing to the encoded topic
 * (proto_md_topic_encode) matches that symbol exactly and not a longer one
 * that shares its first letters. Subscribing to "" takes everything.
 *
 * The body is positional (arrays), unlike control-plane maps: it is the hot
 * path, and several quotes and bars travel in one message.
 *
 * Unpack validates everything (shape, types, bounds, names, finite and
 * non-negative numbers, consistency of empty sides and bars) and never
 * trusts the peer; see proto.h for the error codes. */
#ifndef WD_PROTO_MD_H
#define WD_PROTO_MD_H

#include "proto.h"

#include <stdbool.h>

#define PROTO_T_MD_BATCH 16          /* proto_type value of a market data batch */
#define PROTO_MD_SYMBOL_MAX 31       /* bytes of a symbol */
#define PROTO_MD_VENUE_MAX 15        /* bytes of a venue name */
#define PROTO_MD_TOPIC_MAX PROTO_MD_SYMBOL_MAX
#define PROTO_MD_QUOTES_MAX 512      /* quotes in one batch */
#define PROTO_MD_BARS_MAX 512        /* bars in one batch */
#define PROTO_MD_QUOTE_FIELDS 13
#define PROTO_MD_BAR_FIELDS 9
#define PROTO_MD_TOPIC_ALL "*"       /* topic of a batch that mixes symbols */
/* msgpack objects in one message: the envelope's 6 plus the body's. */
#define PROTO_MD_OBJECTS_MAX                                                                   \
    (16 + PROTO_MD_QUOTES_MAX * (PROTO_MD_QUOTE_FIELDS + 1) +                                  \
     PROTO_MD_BARS_MAX * (PROTO_MD_BAR_FIELDS + 1))

/* Quote flags. */
#define PROTO_MD_CROSSED 0x1u  /* best bid > best ask (from different venues) */
#define PROTO_MD_LOCKED 0x2u   /* best bid == best ask */
#define PROTO_MD_NO_BID 0x4u   /* no live venue has a bid: bid side empty */
#define PROTO_MD_NO_ASK 0x8u   /* no live venue has an ask: ask side empty */
#define PROTO_MD_FLAGS_ALL 0xfu

/* A consolidated quote: the best bid and ask over the symbol's live venues.
 * An empty side has price 0, size 0, venue "" and its NO_* flag; mid and
 * spread are then 0. */
typedef struct {
    char symbol[PROTO_MD_SYMBOL_MAX + 1];
    double bid, bid_size;
    char bid_venue[PROTO_MD_VENUE_MAX + 1];
    double ask, ask_size;
    char ask_venue[PROTO_MD_VENUE_MAX + 1];
    double mid, spread; /* spread is negative when crossed */
    uint32_t flags;     /* PROTO_MD_* */
    uint32_t n_venues;  /* live venues that contributed */
    uint64_t ts_ns;     /* source timestamp of the newest tick in the quote */
    uint64_t recv_ns;   /* realtime when the aggregator received that tick */
} proto_md_quote;

/* A closed OHLCV bar. start_ns is the bar's start in source time (a multiple
 * of interval_ms); count is the number of prices folded in (>= 1). */
typedef struct {
    char symbol[PROTO_MD_SYMBOL_MAX + 1];
    uint64_t interval_ms;
    uint64_t start_ns;
    double open, high, low, close, volume;
    uint64_t count;
} proto_md_bar;

/* An unpacked batch. About 100 KiB: allocate it, do not put it on a stack. */
typedef struct {
    char topic[PROTO_MD_TOPIC_MAX + 1];
    proto_header hdr;
    uint32_t n_quotes;
    proto_md_quote quotes[PROTO_MD_QUOTES_MAX];
    uint32_t n_bars;
    proto_md_bar bars[PROTO_MD_BARS_MAX];
} proto_md_batch;

/* True if s[0..len) is a valid symbol (1..PROTO_MD_SYMBOL_MAX of
 * A-Z a-z 0-9 . _ - / :) or, with max PROTO_MD_VENUE_MAX, a venue name. */
bool proto_md_name_ok(const char *s, size_t len, size_t max);

/* Appends the msgpack encoding of topic (a symbol or "*") to buf (at least
 * PROTO_MD_TOPIC_MAX + 2 bytes): the bytes to subscribe to. Returns their
 * count, or WD_EINVAL for a bad topic. */
int proto_md_topic_encode(const char *topic, uint8_t *buf, size_t buflen);

/* Appends one message (topic, then envelope) to out. Validates every field
 * by the unpack rules first (WD_EINVAL / WD_ETOOBIG) and leaves out as it
 * was on error. Quotes and bars are in the caller's arrays. */
int proto_md_batch_pack(msgpack_sbuffer *out, const char *topic, const proto_header *hdr,
                        const proto_md_quote *quotes, uint32_t n_quotes,
                        const proto_md_bar *bars, uint32_t n_bars);

/* Decodes and validates one whole message into *out (nothing may follow
 * it). Returns 0 or WD_EPROTO / WD_ETOOBIG / WD_EINVAL / WD_ENOMEM with err
 * naming the field, e.g. "md_batch: quote 3: field 'bid': negative". */
int proto_md_batch_unpack(const void *buf, size_t len, proto_md_batch *out, char *err,
                          size_t errlen);

#endif
