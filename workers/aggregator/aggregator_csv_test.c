/* The replay CSV parser: good lines with and without a trade, both
 * timestamp forms, skipped lines, and every bad-line reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agg.h"
#include "wd_error.h"

#include <string.h>

static int parse(const char *line, agg_tick *t, agg_drop_reason *why) {
    return agg_csv_parse(line, strlen(line), t, why);
}

static void good_lines(void **state) {
    (void)state;
    agg_tick t;
    agg_drop_reason why;
    assert_int_equal(parse("1700000000123456789,XNAS,AAPL,100.5,10,100.75,20", &t, &why), 0);
    assert_int_equal(t.ts_ns, 1700000000123456789ULL);
    assert_string_equal(t.venue, "XNAS");
    assert_string_equal(t.symbol, "AAPL");
    assert_true(t.bid == 100.5 && t.bid_size == 10 && t.ask == 100.75 && t.ask_size == 20);
    assert_false(t.has_last);
    assert_int_equal(parse("1700000000.5,BATS,BRK.B,1,2,3,4,2.5,7\r", &t, &why), 0);
    assert_int_equal(t.ts_ns, 1700000000500000000ULL);
    assert_true(t.has_last && t.last == 2.5 && t.last_size == 7);
    /* An empty side (price 0) is allowed: a one-sided venue quote. */
    assert_int_equal(parse("1,XNAS,AAPL,0,0,3,4", &t, &why), 0);
}

static void skipped_lines(void **state) {
    (void)state;
    agg_tick t;
    agg_drop_reason why;
    assert_int_equal(parse("", &t, &why), AGG_CSV_SKIP);
    assert_int_equal(parse("# comment", &t, &why), AGG_CSV_SKIP);
    assert_int_equal(parse("ts,venue,symbol,bid,bid_size,ask,ask_size", &t, &why), AGG_CSV_SKIP);
}

static void expect_bad(const char *line, agg_drop_reason want) {
    agg_tick t;
    agg_drop_reason why = AGG_DROP_COUNT;
    assert_int_equal(parse(line, &t, &why), WD_EINVAL);
    if (why != want)
        fail_msg("'%s': reason %s, want %s", line, agg_drop_reason_name(why),
                 agg_drop_reason_name(want));
}

static void every_bad_reason(void **state) {
    (void)state;
    char longline[AGG_CSV_LINE_MAX + 50];
    memset(longline, '1', sizeof longline - 1);
    longline[sizeof longline - 1] = '\0';
    expect_bad("garbage", AGG_DROP_MALFORMED);
    expect_bad("1,XNAS,AAPL,1,2,3", AGG_DROP_MALFORMED);         /* 6 fields */
    expect_bad("1,XNAS,AAPL,1,2,3,4,5", AGG_DROP_MALFORMED);     /* 8 fields */
    expect_bad("1,XNAS,AAPL,1,2,3,4,5,6,7", AGG_DROP_MALFORMED); /* 10 fields */
    expect_bad("1,XNAS,AAPL,,2,3,4", AGG_DROP_MALFORMED);        /* empty field */
    expect_bad(longline, AGG_DROP_TOO_LONG);
    expect_bad("yesterday,XNAS,AAPL,1,2,3,4", AGG_DROP_BAD_TIMESTAMP);
    expect_bad("1.1234567891,XNAS,AAPL,1,2,3,4", AGG_DROP_BAD_TIMESTAMP); /* 10 decimals */
    expect_bad("99999999999999999999,XNAS,AAPL,1,2,3,4", AGG_DROP_BAD_TIMESTAMP);
    expect_bad("1,XNAS,AAPL,abc,2,3,4", AGG_DROP_BAD_NUMBER);
    expect_bad("1,XNAS,AAPL,nan,2,3,4", AGG_DROP_BAD_NUMBER);
    expect_bad("1,XNAS,AAPL,1e999,2,3,4", AGG_DROP_BAD_NUMBER);
    expect_bad("1,XN AS,AAPL,1,2,3,4", AGG_DROP_BAD_NAME);
    expect_bad("1,XNAS,THIS_SYMBOL_IS_FAR_TOO_LONG_TO_BE_OK,1,2,3,4", AGG_DROP_BAD_NAME);
    expect_bad("1,XNAS,AAPL,-1,2,3,4", AGG_DROP_NEGATIVE_PRICE);
    expect_bad("1,XNAS,AAPL,1,2,3,4,-5,1", AGG_DROP_NEGATIVE_PRICE);
    expect_bad("1,XNAS,AAPL,1,-2,3,4", AGG_DROP_NEGATIVE_SIZE);
    expect_bad("1,XNAS,AAPL,5,2,4,4", AGG_DROP_CROSSED_VENUE);
    /* Every reason has a distinct label name. */
    for (int i = 0; i < AGG_DROP_COUNT; i++)
        for (int j = i + 1; j < AGG_DROP_COUNT; j++)
            assert_string_not_equal(agg_drop_reason_name(i), agg_drop_reason_name(j));
}

static void lists(void **state) {
    (void)state;
    agg_symname names[4];
    uint64_t ms[AGG_INTERVALS_MAX];
    size_t n;
    char err[256];
    assert_int_equal(agg_parse_names("A, B  C,A", PROTO_MD_SYMBOL_MAX, names, 4, &n, err,
                                     sizeof err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(names[2], "C");
    assert_int_equal(agg_parse_names("A,B,C,D,E", PROTO_MD_SYMBOL_MAX, names, 4, &n, err,
                                     sizeof err), WD_ETOOBIG);
    assert_int_equal(agg_parse_names("A,$X", PROTO_MD_SYMBOL_MAX, names, 4, &n, err, sizeof err),
                     WD_EINVAL);
    assert_non_null(strstr(err, "$X"));
    assert_int_equal(agg_parse_intervals("1s, 1m", ms, AGG_INTERVALS_MAX, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ms[0], 1000);
    assert_int_equal(ms[1], 60000);
    assert_int_equal(agg_parse_intervals("1x", ms, AGG_INTERVALS_MAX, &n, err, sizeof err),
                     WD_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_lines),
        cmocka_unit_test(skipped_lines),
        cmocka_unit_test(every_bad_reason),
        cmocka_unit_test(lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
