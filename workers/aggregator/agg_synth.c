/* Synthetic source: a seeded random walk per (symbol, venue). Each call
 * picks a symbol and a venue from the rng, moves the symbol-wide drift by
 * a random step and quotes that venue around it with a little noise of its
 * own. The noise is smaller than the narrowest half spread, so two venues
 * quoting at the same moment never cross; a venue that has not quoted for
 * a while can, as real consolidated books sometimes are. It also sometimes
 * prints a trade. With gap_probability a venue falls silent for a symbol for a while
 * (AGG_SYNTH_GAP_TICKS of its own turns), which is how gaps and stale venues
 * show up in the demo. Everything comes from one wd_rng, so a seed gives
 * one sequence. */
#include "agg.h"
#include "backoff.h"
#include "wd_error.h"

#include <stdlib.h>
#include <string.h>

#define SYNTH_PRICE_MIN 10.0
#define SYNTH_PRICE_SPAN 490.0   /* starting mids in [10, 500) */
#define SYNTH_STEP_BP 2.0        /* max step of a symbol's drift, basis points */
#define SYNTH_NOISE_BP 1.0       /* max distance of a venue's mid from it */
#define SYNTH_HALF_MIN_BP 2.5    /* half spread: at least this ... */
#define SYNTH_HALF_SPAN_BP 6.0   /* ... plus up to this, basis points */
#define SYNTH_SIZE_MAX 1000      /* lots */
#define SYNTH_TRADE_PERMILLE 200 /* share of ticks that carry a trade */
#define SYNTH_GAP_TURNS 50       /* a silent venue skips this many of its turns */
#define SYNTH_FLOOR 0.01

typedef struct {
    double mid;
    uint32_t silent; /* turns left in a gap */
} synth_cell;

struct agg_synth {
    wd_rng rng;
    size_t n_symbols, n_venues;
    agg_symname *symbols; /* owned copies */
    agg_symname *venues;
    double *symbol_mid;   /* shared drift per symbol */
    synth_cell *cells;    /* n_symbols * n_venues */
    double gap_probability;
};

/* A uniform double in [0, 1) from the rng. */
static double unit(wd_rng *r) { return (double)(wd_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

int agg_synth_new(uint64_t seed, const agg_symname *symbols, size_t n_symbols,
                  const agg_symname *venues, size_t n_venues, double gap_probability,
                  agg_synth **out) {
    if (n_symbols == 0 || n_venues == 0 || n_venues > AGG_VENUES_MAX)
        return WD_EINVAL;
    agg_synth *s = calloc(1, sizeof *s);
    if (s == NULL)
        return WD_ENOMEM;
    s->symbols = calloc(n_symbols, sizeof *s->symbols);
    s->venues = calloc(n_venues, sizeof *s->venues);
    s->symbol_mid = calloc(n_symbols, sizeof *s->symbol_mid);
    s->cells = calloc(n_symbols * n_venues, sizeof *s->cells);
    if (!s->symbols || !s->venues || !s->symbol_mid || !s->cells) {
        agg_synth_free(s);
        return WD_ENOMEM;
    }
    memcpy(s->symbols, symbols, n_symbols * sizeof *symbols);
    memcpy(s->venues, venues, n_venues * sizeof *venues);
    s->n_symbols = n_symbols;
    s->n_venues = n_venues;
    s->gap_probability = gap_probability;
    wd_rng_seed(&s->rng, seed);
    for (size_t i = 0; i < n_symbols; i++) {
        s->symbol_mid[i] = SYNTH_PRICE_MIN + unit(&s->rng) * SYNTH_PRICE_SPAN;
        for (size_t v = 0; v < n_venues; v++)
            s->cells[i * n_venues + v].mid = s->symbol_mid[i];
    }
    *out = s;
    return 0;
}

void agg_synth_free(agg_synth *s) {
    if (s == NULL)
        return;
    free(s->symbols);
    free(s->venues);
    free(s->symbol_mid);
    free(s->cells);
    free(s);
}

void agg_synth_next(agg_synth *s, uint64_t ts_ns, agg_tick *t) {
    size_t sym, ven;
    synth_cell *c;
    /* Skip cells in a gap; bounded, since a silent cell's counter drops on
     * every turn it is picked. */
    for (;;) {
        sym = (size_t)wd_rng_upto(&s->rng, s->n_symbols - 1); /* upto is inclusive */
        ven = (size_t)wd_rng_upto(&s->rng, s->n_venues - 1);
        c = &s->cells[sym * s->n_venues + ven];
        if (c->silent == 0)
            break;
        c->silent--;
    }
    if (s->gap_probability > 0 && unit(&s->rng) < s->gap_probability)
        c->silent = SYNTH_GAP_TURNS;
    double *drift = &s->symbol_mid[sym];
    *drift *= 1.0 + (unit(&s->rng) * 2.0 - 1.0) * SYNTH_STEP_BP / 10000.0;
    /* Each venue follows the symbol's drift with its own noise. */
    c->mid = *drift * (1.0 + (unit(&s->rng) * 2.0 - 1.0) * SYNTH_NOISE_BP / 10000.0);
    if (c->mid < SYNTH_FLOOR)
        c->mid = SYNTH_FLOOR;
    double half = c->mid * (SYNTH_HALF_MIN_BP + unit(&s->rng) * SYNTH_HALF_SPAN_BP) / 10000.0;
    memset(t, 0, sizeof *t);
    t->ts_ns = ts_ns;
    memcpy(t->symbol, s->symbols[sym], sizeof t->symbol);
    memcpy(t->venue, s->venues[ven], sizeof t->venue);
    t->bid = c->mid - half;
    t->ask = c->mid + half;
    t->bid_size = (double)(1 + wd_rng_upto(&s->rng, SYNTH_SIZE_MAX));
    t->ask_size = (double)(1 + wd_rng_upto(&s->rng, SYNTH_SIZE_MAX));
    if (wd_rng_upto(&s->rng, 999) < SYNTH_TRADE_PERMILLE) {
        t->has_last = true;
        t->last = wd_rng_upto(&s->rng, 1) ? t->ask : t->bid;
        t->last_size = (double)(1 + wd_rng_upto(&s->rng, SYNTH_SIZE_MAX / 10));
    }
}
