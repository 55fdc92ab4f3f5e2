/* OHLCV bars in source time: a bar covers [start, start + interval), with
 * start a multiple of the interval, so bars from a replay line up with the
 * recorded day, not with when the replay ran. */
#include "agg.h"

#include <string.h>

#define NS_PER_MS 1000000ULL

static void bar_emit(const agg_bar *b, uint64_t interval_ms, proto_md_bar *out) {
    memset(out, 0, sizeof *out);
    out->interval_ms = interval_ms;
    out->start_ns = b->start_ns;
    out->open = b->open;
    out->high = b->high;
    out->low = b->low;
    out->close = b->close;
    out->volume = b->volume;
    out->count = b->count;
}

int agg_bar_add(agg_bar *b, uint64_t interval_ms, uint64_t ts_ns, double px, double volume,
                proto_md_bar *closed) {
    uint64_t iv = interval_ms * NS_PER_MS;
    uint64_t start = ts_ns - ts_ns % iv;
    int rc = 0;
    if (b->count > 0 && start < b->start_ns)
        return AGG_BAR_LATE;
    if (b->count > 0 && start > b->start_ns) {
        bar_emit(b, interval_ms, closed);
        rc = 1;
        memset(b, 0, sizeof *b);
    }
    if (b->count == 0) {
        if (px <= 0) {
            /* Volume with no price yet: nothing to open a bar with. */
            return rc;
        }
        b->start_ns = start;
        b->open = b->high = b->low = b->close = px;
        b->volume = volume;
        b->count = 1;
        return rc;
    }
    b->volume += volume;
    if (px > 0) {
        if (px > b->high)
            b->high = px;
        if (px < b->low)
            b->low = px;
        b->close = px;
        b->count++;
    }
    return rc;
}

int agg_bar_close_due(agg_bar *b, uint64_t interval_ms, uint64_t watermark_ns,
                      proto_md_bar *closed) {
    if (b->count == 0 || watermark_ns < b->start_ns + interval_ms * NS_PER_MS)
        return 0;
    bar_emit(b, interval_ms, closed);
    memset(b, 0, sizeof *b);
    return 1;
}
