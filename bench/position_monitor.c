/* bench/position_monitor: the position monitor's evaluation core, in
 * process (linked with wdw_position_monitor), on books of 10 k, 100 k and
 * 1 M open positions over 2 000 symbols. Each cycle applies one batch of
 * quotes (a steady random walk) and evaluates what they can change through
 * the symbol index; the reference, in the same run, is a full scan of every
 * position per cycle on an identical book fed the same prices (its first
 * BP_SCAN_CYCLES_MAX cycles, run after the index's cycles). Printed per
 * size: cycle time (p50/p99/max), cost per quote, positions evaluated per
 * cycle, the time from a quote crossing the stops of one symbol to the last
 * of its exits being handed on (the fire callback; p50 over 50 symbols),
 * and the book's side of persisting trailing water marks (time to take one
 * batch of BP_BATCH marks). Ends with one JSON line. The end-to-end time,
 * quote to broker order with the real processes, is
 * bench/position_monitor_e2e.
 *
 *   position_monitor [--bin-dir DIR] [--max N] [--cycles N] [--quotes N] [--no-trailing]
 * Half the positions carry a trailing stop unless --no-trailing. Their water
 * marks live in per-symbol water-mark epochs (workers/position_monitor/pm.h):
 * a new high moves one running extreme per epoch, not every trailing
 * position of the symbol, so trailing stops too cost what crosses them; the
 * marks are taken for persistence in batches, outside the quote path.
 * --bin-dir is accepted for bench/run and unused (nothing is spawned).
 * Aim (issue 5): cost per quote independent of book size; 1 M positions
 * with steady-state cycles under 10 ms. */
#include "backoff.h"
#include "clock.h"
#include "pm.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BP_SYMBOLS 2000
#define BP_CYCLES_DEFAULT 400
#define BP_QUOTES_DEFAULT 500 /* quotes per cycle (one batch) */
#define BP_SCAN_CYCLES_MAX 40
#define BP_AIM_CYCLE_MS 10.0
#define BP_STEP 0.0005        /* random walk step, fraction of the price */
#define BP_SIZES 3
#define BP_CROSS_SYMBOLS 50   /* crossings timed per size */
#define BP_BATCH 2000         /* water marks per persistence batch (PM_WRITE_BATCH_MAX) */
#define BP_BATCHES 20         /* batches timed per size */

static bool bp_trailing = true; /* --no-trailing: stops and targets only */

typedef struct {
    uint64_t fired;
    uint64_t last_fire_ns;
} bp_sink;

static void on_fire(void *arg, uint32_t pos, pm_exit_reason reason, double price) {
    bp_sink *s = arg;
    (void)pos;
    (void)reason;
    (void)price;
    s->fired++;
    s->last_fire_ns = wd_clock_mono_ns();
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p) {
    qsort(v, n, sizeof *v, cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1));
    return (double)v[i] / 1e6;
}

static void fill(pm_book *b, uint32_t n, wd_rng *rng) {
    char name[16];
    for (uint32_t i = 0; i < n; i++) {
        pm_row r;
        memset(&r, 0, sizeof r);
        r.id = (int64_t)i + 1;
        snprintf(r.account, sizeof r.account, "acct%u", i % 100);
        snprintf(name, sizeof name, "S%u", (unsigned)(i % BP_SYMBOLS));
        snprintf(r.symbol, sizeof r.symbol, "%s", name);
        r.side = wd_rng_upto(rng, 1) ? PM_LONG : PM_SHORT;
        r.quantity = 10;
        r.entry = 100;
        double d = 1 + (double)wd_rng_upto(rng, 900) / 100; /* 1..10 % */
        r.stop_loss = r.side == PM_LONG ? 100 - d : 100 + d;
        r.take_profit = r.side == PM_LONG ? 100 + 2 * d : 100 - 2 * d;
        if (bp_trailing && wd_rng_upto(rng, 1)) {
            r.trail_kind = PM_TRAIL_PERCENT;
            r.trail = d;
        }
        uint32_t idx;
        if (pm_book_upsert(b, &r, &idx) != 0) {
            fprintf(stderr, "position_monitor: book full or out of memory at %u\n", i);
            exit(1);
        }
    }
}

typedef struct {
    uint32_t positions;
    double p50, p99, max, ns_per_quote, evaluated_per_cycle;
    double scan_p50, scan_ns_per_quote;
    double cross_to_fire_us, cross_max_us;
    double water_take_us;     /* per batch of BP_BATCH marks */
    uint64_t fired, epoch_joins, swept;
} bp_result;

static void run_size(uint32_t n, int cycles, int quotes, bp_result *out) {
    pm_book idx, scan;
    bp_sink si = {0}, ss = {0};
    wd_rng rng, prng;
    double price[BP_SYMBOLS];
    uint64_t *t = calloc((size_t)cycles, sizeof *t);
    int scan_cycles = cycles < BP_SCAN_CYCLES_MAX ? cycles : BP_SCAN_CYCLES_MAX;
    uint64_t *ts = calloc((size_t)scan_cycles, sizeof *ts);
    uint32_t *ssym = calloc((size_t)scan_cycles * BP_QUOTES_DEFAULT * 4, sizeof *ssym);
    double *sprice = calloc((size_t)scan_cycles * BP_QUOTES_DEFAULT * 4, sizeof *sprice);
    int nq[BP_SCAN_CYCLES_MAX];
    pm_book_init(&idx, n, on_fire, &si);
    pm_book_init(&scan, n, on_fire, &ss);
    wd_rng_seed(&rng, 42);
    fill(&idx, n, &rng);
    wd_rng_seed(&rng, 42);
    fill(&scan, n, &rng);
    for (int s = 0; s < BP_SYMBOLS; s++)
        price[s] = 100;
    wd_rng_seed(&prng, 7);
    uint64_t evaluated0 = idx.evaluated;
    for (int c = 0; c < cycles; c++) {
        uint32_t sym[BP_QUOTES_DEFAULT * 4];
        int q = quotes < (int)(sizeof sym / sizeof sym[0]) ? quotes : (int)(sizeof sym / sizeof sym[0]);
        for (int k = 0; k < q; k++) {
            sym[k] = (uint32_t)wd_rng_upto(&prng, BP_SYMBOLS - 1);
            double step = ((double)wd_rng_upto(&prng, 2000) / 1000.0 - 1.0) * BP_STEP;
            price[sym[k]] *= 1 + step;
        }
        uint64_t t0 = wd_clock_mono_ns();
        for (int k = 0; k < q; k++)
            pm_book_set_price(&idx, sym[k], price[sym[k]], t0);
        pm_book_eval_dirty(&idx, t0);
        t[c] = wd_clock_mono_ns() - t0;
        if (c < scan_cycles) {
            nq[c] = q;
            for (int k = 0; k < q; k++) {
                ssym[c * BP_QUOTES_DEFAULT * 4 + k] = sym[k];
                sprice[c * BP_QUOTES_DEFAULT * 4 + k] = price[sym[k]];
            }
        }
    }
    /* The reference after the index's cycles, on the same prices: a scan
     * sweeps the whole book through the caches, and interleaved it would
     * leave every following index cycle cold (no monitor runs a scan). */
    for (int c = 0; c < scan_cycles; c++) {
        for (int k = 0; k < nq[c]; k++)
            scan.syms[ssym[c * BP_QUOTES_DEFAULT * 4 + k]].price =
                sprice[c * BP_QUOTES_DEFAULT * 4 + k];
        uint64_t s0 = wd_clock_mono_ns();
        pm_book_scan_all(&scan, s0);
        ts[c] = wd_clock_mono_ns() - s0;
    }
    out->positions = n;
    out->evaluated_per_cycle = (double)(idx.evaluated - evaluated0) / cycles;
    out->fired = si.fired;
    uint64_t sum = 0, ssum = 0;
    for (int c = 0; c < cycles; c++)
        sum += t[c];
    for (int c = 0; c < scan_cycles; c++)
        ssum += ts[c];
    out->ns_per_quote = (double)sum / cycles / quotes;
    out->scan_ns_per_quote = (double)ssum / scan_cycles / quotes;
    out->p50 = pct(t, (size_t)cycles, 0.5);
    out->p99 = pct(t, (size_t)cycles, 0.99);
    out->max = pct(t, (size_t)cycles, 1.0);
    out->scan_p50 = pct(ts, (size_t)scan_cycles, 0.5);
    /* Persistence: the marks moved by the run, taken in batches. */
    static pm_water marks[BP_BATCH];
    uint64_t w0 = wd_clock_mono_ns();
    int batches = 0;
    while (batches < BP_BATCHES && pm_book_water_pending(&idx) &&
           pm_book_water_take(&idx, marks, BP_BATCH) > 0)
        batches++;
    out->water_take_us = batches ? (double)(wd_clock_mono_ns() - w0) / 1e3 / batches : 0;
    out->epoch_joins = idx.epoch_joins;
    out->swept = idx.swept;
    /* Quotes crossing the stops of one symbol each: time to the last fire. */
    uint64_t cross[BP_CROSS_SYMBOLS];
    int nc = 0;
    for (uint32_t s0 = 1; s0 <= BP_CROSS_SYMBOLS; s0++) {
        uint64_t f0 = si.fired, q0 = wd_clock_mono_ns();
        pm_book_set_price(&idx, s0, price[s0] * 0.5, q0);
        pm_book_eval_dirty(&idx, q0);
        if (si.fired > f0)
            cross[nc++] = si.last_fire_ns - q0;
    }
    out->cross_to_fire_us = nc ? pct(cross, (size_t)nc, 0.5) * 1e3 : -1;
    out->cross_max_us = nc ? pct(cross, (size_t)nc, 1.0) * 1e3 : -1;
    pm_book_free(&idx);
    pm_book_free(&scan);
    free(t);
    free(ts);
    free(ssym);
    free(sprice);
}

int main(int argc, char **argv) {
    uint32_t max = 1000000;
    int cycles = BP_CYCLES_DEFAULT, quotes = BP_QUOTES_DEFAULT;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bin-dir") == 0 && i + 1 < argc)
            i++;
        else if (strcmp(argv[i], "--max") == 0 && i + 1 < argc)
            max = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--cycles") == 0 && i + 1 < argc)
            cycles = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-trailing") == 0)
            bp_trailing = false;
        else if (strcmp(argv[i], "--quotes") == 0 && i + 1 < argc)
            quotes = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: position_monitor [--bin-dir DIR] [--max N] [--cycles N] "
                            "[--quotes N] [--no-trailing]\n");
            return 2;
        }
    }
    if (cycles < 1 || quotes < 1 || quotes > BP_QUOTES_DEFAULT * 4) {
        fprintf(stderr, "position_monitor: --cycles >= 1, --quotes 1..%d\n", BP_QUOTES_DEFAULT * 4);
        return 2;
    }
    static const uint32_t sizes[BP_SIZES] = {10000, 100000, 1000000};
    bp_result r[BP_SIZES];
    int nr = 0;
    json_t *arr = json_array();
    bool aim = true;
    printf("%-10s %10s %10s %10s %12s %12s %12s %14s %10s %10s %12s\n", "positions",
           "cycle_p50", "p99", "max_ms", "ns/quote", "eval/cycle", "scan_p50", "scan_ns/quote",
           "cross_us", "cross_max", "water_us/2k");
    for (int k = 0; k < BP_SIZES && sizes[k] <= max; k++, nr++) {
        run_size(sizes[k], cycles, quotes, &r[k]);
        printf("%-10u %10.3f %10.3f %10.3f %12.1f %12.1f %12.3f %14.1f %10.1f %10.1f %12.1f\n",
               r[k].positions, r[k].p50, r[k].p99, r[k].max, r[k].ns_per_quote,
               r[k].evaluated_per_cycle, r[k].scan_p50, r[k].scan_ns_per_quote,
               r[k].cross_to_fire_us, r[k].cross_max_us, r[k].water_take_us);
        if (r[k].positions == 1000000 && r[k].p99 >= BP_AIM_CYCLE_MS)
            aim = false;
        json_array_append_new(
            arr, json_pack("{s:I, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, "
                           "s:I}", "positions",
                           (json_int_t)r[k].positions, "symbols", BP_SYMBOLS, "cycle_ms_p50",
                           r[k].p50, "cycle_ms_p99", r[k].p99, "cycle_ms_max", r[k].max,
                           "ns_per_quote", r[k].ns_per_quote, "evaluated_per_cycle",
                           r[k].evaluated_per_cycle, "scan_cycle_ms_p50", r[k].scan_p50,
                           "scan_ns_per_quote", r[k].scan_ns_per_quote, "cross_to_fire_us",
                           r[k].cross_to_fire_us, "cross_to_fire_max_us", r[k].cross_max_us,
                           "water_take_us_per_batch", r[k].water_take_us, "epoch_joins",
                           (json_int_t)r[k].epoch_joins, "swept", (json_int_t)r[k].swept));
    }
    json_t *j = json_pack("{s:s, s:b, s:i, s:i, s:o, s:f, s:b}", "bench", "position_monitor", "trailing", bp_trailing,
                          "quotes_per_cycle", quotes, "cycles", cycles, "sizes", arr,
                          "aim_cycle_ms", BP_AIM_CYCLE_MS, "aim_met", aim && nr == BP_SIZES);
    char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    printf("%s\n", line);
    free(line);
    json_decref(j);
    return 0;
}
