/* The batch under construction: conflated quotes (one slot per symbol,
 * overwritten by newer states) and closed bars. */
#include "agg.h"
#include "wd_error.h"

#include <stdlib.h>
#include <string.h>

int agg_batch_init(agg_batch *b, uint32_t max) {
    memset(b, 0, sizeof *b);
    if (max == 0 || max > PROTO_MD_QUOTES_MAX)
        return WD_EINVAL;
    b->quotes = calloc(max, sizeof *b->quotes);
    b->bars = calloc(max, sizeof *b->bars);
    b->quote_sym = calloc(max, sizeof *b->quote_sym);
    if (b->quotes == NULL || b->bars == NULL || b->quote_sym == NULL) {
        agg_batch_free(b);
        return WD_ENOMEM;
    }
    b->max = max;
    return 0;
}

void agg_batch_free(agg_batch *b) {
    free(b->quotes);
    free(b->bars);
    free(b->slot);
    free(b->quote_sym);
    memset(b, 0, sizeof *b);
}

static bool batch_full(const agg_batch *b) { return b->n_quotes + b->n_bars >= b->max; }

bool agg_batch_quote(agg_batch *b, int sym, const proto_md_quote *q, uint64_t now_mono_ns) {
    if ((size_t)sym >= b->n_slot) {
        size_t n = b->n_slot ? b->n_slot : 64;
        while (n <= (size_t)sym)
            n *= 2;
        int32_t *slot = realloc(b->slot, n * sizeof *slot);
        if (slot == NULL)
            return true;
        for (size_t i = b->n_slot; i < n; i++)
            slot[i] = -1;
        b->slot = slot;
        b->n_slot = n;
    }
    if (b->n_quotes + b->n_bars == 0)
        b->first_mono_ns = now_mono_ns;
    int32_t at = b->slot[sym];
    if (at >= 0) {
        b->quotes[at] = *q;
        return false;
    }
    b->slot[sym] = (int32_t)b->n_quotes;
    b->quote_sym[b->n_quotes] = sym;
    b->quotes[b->n_quotes++] = *q;
    return batch_full(b);
}

bool agg_batch_bar(agg_batch *b, const proto_md_bar *bar, uint64_t now_mono_ns) {
    if (b->n_quotes + b->n_bars == 0)
        b->first_mono_ns = now_mono_ns;
    b->bars[b->n_bars++] = *bar;
    return batch_full(b);
}

bool agg_batch_empty(const agg_batch *b) { return b->n_quotes + b->n_bars == 0; }

void agg_batch_clear(agg_batch *b) {
    /* Only the slots in use are reset: clearing every symbol's slot on each
     * flush would cost O(symbols) per batch. */
    for (uint32_t i = 0; i < b->n_quotes; i++)
        b->slot[b->quote_sym[i]] = -1;
    b->n_quotes = 0;
    b->n_bars = 0;
}
