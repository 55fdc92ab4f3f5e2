/* The book (best bid/ask across venues, staleness, crossed/locked), OHLCV
 * bars, the conflating batch, and the market data message round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agg.h"
#include "wd_error.h"

#include <stdlib.h>
#include <string.h>

#define SEC 1000000000ULL

static const agg_symname VENUES[] = {"A", "B", "C"};

static agg_tick tk(const char *venue, double bid, double bsz, double ask, double asz) {
    agg_tick t;
    memset(&t, 0, sizeof t);
    strcpy(t.venue, venue);
    strcpy(t.symbol, "XYZ");
    t.bid = bid, t.bid_size = bsz, t.ask = ask, t.ask_size = asz;
    t.ts_ns = 1;
    return t;
}

static void best_across_venues(void **state) {
    (void)state;
    agg_book b;
    proto_md_quote q;
    assert_int_equal(agg_book_init(&b, VENUES, 3, 5 * SEC), 0);
    int s = agg_book_symbol(&b, "XYZ", 3, true);
    assert_int_equal(s, 0);
    assert_int_equal(agg_book_venue(&b, "B"), 1);
    assert_int_equal(agg_book_venue(&b, "Z"), -1);
    agg_tick a = tk("A", 10.0, 5, 10.4, 6), bb = tk("B", 10.1, 2, 10.5, 9);
    assert_int_equal(agg_book_update(&b, s, 0, &a, 1 * SEC, 11, &q), 1);
    assert_int_equal(agg_book_update(&b, s, 1, &bb, 1 * SEC, 12, &q), 1);
    assert_true(q.bid == 10.1 && q.bid_size == 2);
    assert_string_equal(q.bid_venue, "B");
    assert_true(q.ask == 10.4 && q.ask_size == 6);
    assert_string_equal(q.ask_venue, "A");
    assert_true(q.mid == (10.1 + 10.4) / 2);
    assert_true(q.spread > 0.299 && q.spread < 0.301);
    assert_int_equal(q.flags, 0);
    assert_int_equal(q.n_venues, 2);
    assert_int_equal(q.recv_ns, 12);
    /* The same tick again changes nothing: no new quote. */
    assert_int_equal(agg_book_update(&b, s, 1, &bb, 1 * SEC, 13, &q), 0);
    /* C crosses A's ask: flagged, not hidden. */
    agg_tick c = tk("C", 10.45, 1, 10.6, 1);
    assert_int_equal(agg_book_update(&b, s, 2, &c, 2 * SEC, 14, &q), 1);
    assert_true(q.bid == 10.45);
    assert_string_equal(q.bid_venue, "C");
    assert_true(q.flags & PROTO_MD_CROSSED);
    assert_true(q.spread < 0);
    /* Locked: best bid == best ask. */
    c = tk("C", 10.4, 1, 10.6, 1);
    assert_int_equal(agg_book_update(&b, s, 2, &c, 2 * SEC, 15, &q), 1);
    assert_int_equal(q.flags, PROTO_MD_LOCKED);
    agg_book_free(&b);
}

static void stale_venue_leaves_quote(void **state) {
    (void)state;
    agg_book b;
    proto_md_quote q;
    assert_int_equal(agg_book_init(&b, VENUES, 3, 5 * SEC), 0);
    int s = agg_book_symbol(&b, "XYZ", 3, true);
    agg_tick a = tk("A", 10.0, 5, 10.4, 6), bb = tk("B", 10.1, 2, 10.5, 9);
    agg_book_update(&b, s, 0, &a, 1 * SEC, 1, &q);
    agg_book_update(&b, s, 1, &bb, 4 * SEC, 2, &q);
    /* Not yet stale at 5.9 s (A ticked at 1 s, stale_after 5 s). */
    assert_int_equal(agg_book_expire(&b, s, 5 * SEC + SEC / 2, &q), 0);
    /* At 6 s A is stale: the quote is B's alone. */
    assert_int_equal(agg_book_expire(&b, s, 6 * SEC, &q), 1);
    assert_int_equal(q.n_venues, 1);
    assert_string_equal(q.bid_venue, "B");
    assert_string_equal(q.ask_venue, "B");
    assert_true(q.ask == 10.5);
    /* At 9 s B goes too: an empty quote, both sides flagged. */
    assert_int_equal(agg_book_expire(&b, s, 9 * SEC, &q), 1);
    assert_int_equal(q.n_venues, 0);
    assert_int_equal(q.flags, PROTO_MD_NO_BID | PROTO_MD_NO_ASK);
    assert_true(q.bid == 0 && q.ask == 0 && q.mid == 0);
    /* A ticks again and is back. */
    assert_int_equal(agg_book_update(&b, s, 0, &a, 10 * SEC, 3, &q), 1);
    assert_int_equal(q.n_venues, 1);
    assert_string_equal(q.bid_venue, "A");
    agg_book_free(&b);
}

static void symbols_table(void **state) {
    (void)state;
    agg_book b;
    char name[PROTO_MD_SYMBOL_MAX + 1];
    assert_int_equal(agg_book_init(&b, VENUES, 3, SEC), 0);
    /* Past the initial capacity: the table grows and still finds all. */
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "S%03d", i);
        assert_int_equal(agg_book_symbol(&b, name, strlen(name), true), i);
    }
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "S%03d", i);
        assert_int_equal(agg_book_symbol(&b, name, strlen(name), false), i);
    }
    assert_int_equal(agg_book_symbol(&b, "NOPE", 4, false), -1);
    agg_symname act[] = {"S001", "NEW"};
    assert_int_equal(agg_book_set_active(&b, act, 2), 0);
    assert_true(b.syms[1].active);
    assert_false(b.syms[0].active);
    assert_true(b.syms[agg_book_symbol(&b, "NEW", 3, false)].active);
    agg_book_free(&b);
}

static void bars_ohlcv(void **state) {
    (void)state;
    agg_bar bar;
    proto_md_bar out;
    memset(&bar, 0, sizeof bar);
    uint64_t t0 = 1700000000ULL * SEC;
    assert_int_equal(agg_bar_add(&bar, 1000, t0 + 100, 10, 1, &out), 0);
    assert_int_equal(agg_bar_add(&bar, 1000, t0 + 200, 12, 2, &out), 0);
    assert_int_equal(agg_bar_add(&bar, 1000, t0 + 300, 9, 0, &out), 0);
    assert_int_equal(agg_bar_add(&bar, 1000, t0 + 400, 11, 0, &out), 0);
    /* A tick in the next second closes the bar. */
    assert_int_equal(agg_bar_add(&bar, 1000, t0 + SEC + 5, 20, 0, &out), 1);
    assert_int_equal(out.start_ns, t0);
    assert_int_equal(out.interval_ms, 1000);
    assert_true(out.open == 10 && out.high == 12 && out.low == 9 && out.close == 11);
    assert_true(out.volume == 3);
    assert_int_equal(out.count, 4);
    /* A late tick (before the open bar) is refused. */
    assert_int_equal(agg_bar_add(&bar, 1000, t0 + 500, 1, 0, &out), AGG_BAR_LATE);
    /* The watermark closes it without a tick of its own. */
    assert_int_equal(agg_bar_close_due(&bar, 1000, t0 + SEC + 999999999, &out), 0);
    assert_int_equal(agg_bar_close_due(&bar, 1000, t0 + 2 * SEC, &out), 1);
    assert_true(out.open == 20 && out.close == 20 && out.count == 1);
    assert_int_equal(agg_bar_close_due(&bar, 1000, t0 + 3 * SEC, &out), 0);
}

static void batch_conflates(void **state) {
    (void)state;
    agg_batch b;
    proto_md_quote q;
    proto_md_bar bar;
    memset(&q, 0, sizeof q);
    memset(&bar, 0, sizeof bar);
    assert_int_equal(agg_batch_init(&b, 3), 0);
    assert_true(agg_batch_empty(&b));
    q.bid = 1;
    assert_false(agg_batch_quote(&b, 7, &q, 100));
    q.bid = 2;
    assert_false(agg_batch_quote(&b, 7, &q, 101)); /* same symbol: replaced */
    assert_int_equal(b.n_quotes, 1);
    assert_true(b.quotes[0].bid == 2);
    assert_int_equal(b.first_mono_ns, 100);
    assert_false(agg_batch_quote(&b, 200, &q, 102));
    assert_true(agg_batch_bar(&b, &bar, 103)); /* 3 entries: full */
    agg_batch_clear(&b);
    assert_true(agg_batch_empty(&b));
    assert_false(agg_batch_quote(&b, 7, &q, 104)); /* slot was reset */
    assert_int_equal(b.n_quotes, 1);
    agg_batch_free(&b);
}

static void md_round_trip(void **state) {
    (void)state;
    proto_md_quote q[2];
    proto_md_bar bar;
    proto_header h = {.sender = "agg", .seq = 42, .ts_ns = 7};
    memset(q, 0, sizeof q);
    memset(&bar, 0, sizeof bar);
    strcpy(q[0].symbol, "AAPL");
    q[0].bid = 1.5, q[0].bid_size = 2, q[0].ask = 1.75, q[0].ask_size = 3;
    strcpy(q[0].bid_venue, "A");
    strcpy(q[0].ask_venue, "B");
    q[0].mid = 1.625, q[0].spread = 0.25, q[0].n_venues = 2, q[0].ts_ns = 5, q[0].recv_ns = 6;
    strcpy(q[1].symbol, "MSFT");
    q[1].flags = PROTO_MD_NO_BID | PROTO_MD_NO_ASK;
    strcpy(bar.symbol, "AAPL");
    bar.interval_ms = 1000, bar.start_ns = 9, bar.count = 2;
    bar.open = bar.high = bar.low = bar.close = 1.6;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_md_batch_pack(&sb, "*", &h, q, 2, &bar, 1), 0);
    proto_md_batch *out = malloc(sizeof *out);
    char err[256];
    assert_int_equal(proto_md_batch_unpack(sb.data, sb.size, out, err, sizeof err), 0);
    assert_string_equal(out->topic, "*");
    assert_string_equal(out->hdr.sender, "agg");
    assert_int_equal(out->hdr.seq, 42);
    assert_int_equal(out->n_quotes, 2);
    assert_int_equal(out->n_bars, 1);
    assert_memory_equal(&out->quotes[0], &q[0], sizeof q[0]);
    assert_memory_equal(&out->bars[0], &bar, sizeof bar);
    /* The topic prefix a SUB subscribes with is the message's first bytes. */
    uint8_t topic[PROTO_MD_TOPIC_MAX + 2];
    assert_int_equal(proto_md_topic_encode("*", topic, sizeof topic), 2);
    assert_memory_equal(sb.data, topic, 2);
    assert_int_equal(proto_md_topic_encode("BAD TOPIC", topic, sizeof topic), WD_EINVAL);
    /* Bad input is refused, with the field named. */
    size_t n = sb.size;
    assert_int_equal(proto_md_batch_unpack(sb.data, n - 1, out, err, sizeof err), WD_EPROTO);
    q[0].bid = -1;
    assert_int_equal(proto_md_batch_pack(&sb, "*", &h, q, 1, NULL, 0), WD_EINVAL);
    assert_int_equal(sb.size, n); /* left as it was */
    q[0].bid = 1.5;
    bar.low = 2; /* low above open */
    assert_int_equal(proto_md_batch_pack(&sb, "AAPL", &h, NULL, 0, &bar, 1), WD_EINVAL);
    /* A peer's negative price: crafted by hand past the packer's checks. */
    ((char *)sb.data)[0] = (char)0xa1;
    assert_int_equal(proto_md_batch_unpack(sb.data, 1, out, err, sizeof err), WD_EPROTO);
    msgpack_sbuffer_destroy(&sb);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(best_across_venues), cmocka_unit_test(stale_venue_leaves_quote),
        cmocka_unit_test(symbols_table),      cmocka_unit_test(bars_ohlcv),
        cmocka_unit_test(batch_conflates),    cmocka_unit_test(md_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
