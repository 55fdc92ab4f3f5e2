/* libFuzzer target: the aggregator's CSV tick parser (agg_csv_parse, which
 * calls agg_parse_ts and agg_tick_check), line by line as the replay source
 * feeds it: the input is split on '\n' and every line is parsed, so one
 * input can hold many lines. Aborts when a result breaks the contract in
 * workers/aggregator/agg.h: a code outside {0, AGG_CSV_SKIP, WD_EINVAL}, a
 * drop reason out of range or without a name, an accepted tick with a name
 * that is not a valid name, a price or size that is negative or not finite,
 * or a crossed book. Links wdw_aggregator (the "aggregator" in the name,
 * see tests/CMakeLists.txt). */
#include "agg.h"
#include "wd_error.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_aggregator_csv: invariant broken: %s\n", what);
        abort();
    }
}

static void check_num(double v, const char *what) {
    check(isfinite(v) && v >= 0, what);
}

static void parse_line(const char *line, size_t len) {
    agg_tick t;
    agg_drop_reason why = AGG_DROP_COUNT; /* a value the parser must overwrite */
    int rc = agg_csv_parse(line, len, &t, &why);
    if (rc == AGG_CSV_SKIP)
        return;
    if (rc != 0) {
        check(rc == WD_EINVAL, "error code");
        check(why >= 0 && why < AGG_DROP_COUNT, "drop reason set");
        const char *name = agg_drop_reason_name(why);
        check(name != NULL && name[0] != '\0', "drop reason named");
        return;
    }
    check(len <= AGG_CSV_LINE_MAX + 1, "long line accepted");
    check(proto_md_name_ok(t.venue, strlen(t.venue), PROTO_MD_VENUE_MAX), "venue");
    check(proto_md_name_ok(t.symbol, strlen(t.symbol), PROTO_MD_SYMBOL_MAX), "symbol");
    check_num(t.bid, "bid");
    check_num(t.ask, "ask");
    check_num(t.bid_size, "bid size");
    check_num(t.ask_size, "ask size");
    check(!(t.bid > 0 && t.ask > 0 && t.bid > t.ask), "crossed book accepted");
    if (t.has_last) {
        check_num(t.last, "last");
        check_num(t.last_size, "last size");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A heap copy of each line, exactly its length: ASan then flags any read
     * past the end, as agg_csv_parse gets no NUL terminator from the reader. */
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n')
            continue;
        size_t n = i - start;
        char *line = malloc(n ? n : 1);
        if (!line)
            abort();
        memcpy(line, data + start, n);
        parse_line(line, n);
        free(line);
        start = i + 1;
    }
    return 0;
}
