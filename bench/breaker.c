/* bench/breaker: what a circuit breaker costs a call. Each call is one
 * brk_allow + brk_record_call pair on a CLOSED breaker with every trip on
 * (consecutive failures, failure rate and slow-call rate over a 100-call
 * window), fed by a random stream of outcomes (about 0.1 % failures) and
 * durations (about 12 % slow), so the count window, both rate checks and
 * the slow-call accounting all run, but the breaker never opens.
 *
 * Reference, in the same run: the same loop without the breaker, doing the
 * same arithmetic (random stream, clock steps, folding the results into a
 * sink). Rounds alternate which loop goes first so that frequency changes
 * and noise hit both alike; the figure is the median over rounds. An empty
 * asm with the loop's values as operands keeps the compiler from dropping or
 * vectorising either loop, and the breaker lives in libwarden (no LTO), so
 * its calls cannot be folded away.
 *
 * Output: human-readable lines, then one JSON line of every figure. Exit 0
 * when it ran (a missed aim is printed, not an error), 1 on a failure, 2 on a
 * usage error. --bin-dir (passed by bench/run) is accepted and ignored. */
#include "breaker.h"
#include "clock.h"
#include "wd_error.h"
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BB_PROG "breaker"
#define BB_CALLS_DEFAULT 2000000ULL
#define BB_CALLS_MIN 1000ULL
#define BB_CALLS_MAX 1000000000ULL
#define BB_ROUNDS_DEFAULT 9
#define BB_ROUNDS_MAX 101
#define BB_AIM_NS 50.0
#define BB_STEP_NS 1000ULL       /* fake clock step per call */
#define BB_FAIL_MASK 1023ULL     /* a call fails when its random bits & mask are 0 */
#define BB_DURATION_SHIFT 44     /* duration: 20 random bits of ns, up to ~1 ms */
#define BB_DURATION_MASK ((1ULL << 20) - 1)
#define BB_SLOW_NS 920000ULL     /* ~12 % of durations are above */
#define BB_SEED 0x9E3779B97F4A7C15ULL

static inline uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Keeps v live and opaque to the optimiser, at no cost. */
#define KEEP(v) __asm__ volatile("" : "+r"(v))

static uint64_t run_reference(uint64_t calls, uint64_t *sink) {
    uint64_t rng = BB_SEED, now = 0, acc = 0;
    uint64_t t0 = wd_clock_mono_ns();
    for (uint64_t i = 0; i < calls; i++) {
        uint64_t r = xorshift(&rng);
        now += BB_STEP_NS;
        bool ok = (r & BB_FAIL_MASK) != 0;
        uint64_t dur = (r >> BB_DURATION_SHIFT) & BB_DURATION_MASK;
        uint64_t gen = now; /* stands for the generation the breaker hands out */
        KEEP(gen);
        acc += gen + dur + ok;
        KEEP(acc);
    }
    uint64_t t1 = wd_clock_mono_ns();
    *sink += acc;
    return t1 - t0;
}

static uint64_t run_breaker(brk_breaker *b, uint64_t calls, uint64_t *sink, uint64_t *rejected) {
    uint64_t rng = BB_SEED, now = 0, acc = 0, rej = 0;
    uint64_t t0 = wd_clock_mono_ns();
    for (uint64_t i = 0; i < calls; i++) {
        uint64_t r = xorshift(&rng);
        now += BB_STEP_NS;
        bool ok = (r & BB_FAIL_MASK) != 0;
        uint64_t dur = (r >> BB_DURATION_SHIFT) & BB_DURATION_MASK;
        uint64_t gen = 0;
        if (brk_allow(b, now, &gen) != 0) {
            rej++;
            continue;
        }
        brk_record_call(b, gen, now + dur, dur, ok, ok ? NULL : "bench failure");
        KEEP(gen);
        acc += gen + dur + ok;
        KEEP(acc);
    }
    uint64_t t1 = wd_clock_mono_ns();
    *sink += acc;
    *rejected += rej;
    return t1 - t0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static void bench_config(brk_config *c) {
    brk_config_defaults(c);
    c->window_calls = 100;
    c->min_calls = 50;
    c->failure_rate_pct = 50.0;
    c->slow_call_ns = BB_SLOW_NS;
    c->slow_call_rate_pct = 80.0;
    c->half_open_max_ns = 30ULL * 1000000000ULL;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end = NULL;
    if (!s || !*s || *s == '-')
        return WD_EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v < lo || v > hi)
        return WD_ERANGE;
    *out = v;
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: " BB_PROG " [--calls N] [--rounds N] [--bin-dir DIR]\n"
            "  --calls N    allow+record pairs per round, default %llu\n"
            "  --rounds N   rounds of each loop (the median is reported), default %d\n"
            "  --bin-dir    accepted for bench/run, unused\n",
            BB_CALLS_DEFAULT, BB_ROUNDS_DEFAULT);
}

static int parse_args(int argc, char **argv, uint64_t *calls, uint64_t *rounds) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--calls") && strcmp(a, "--rounds") && strcmp(a, "--bin-dir")) {
            fprintf(stderr, BB_PROG ": unknown option '%s'\n", a);
            return -1;
        }
        if (!v) {
            fprintf(stderr, BB_PROG ": %s needs a value\n", a);
            return -1;
        }
        i++;
        int rc = 0;
        if (!strcmp(a, "--calls"))
            rc = parse_u64(v, BB_CALLS_MIN, BB_CALLS_MAX, calls);
        else if (!strcmp(a, "--rounds"))
            rc = parse_u64(v, 1, BB_ROUNDS_MAX, rounds);
        if (rc != 0) {
            fprintf(stderr, BB_PROG ": %s: bad value '%s'\n", a, v);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    uint64_t calls = BB_CALLS_DEFAULT, rounds = BB_ROUNDS_DEFAULT, sink = 0, rejected = 0;
    double ref_ns[BB_ROUNDS_MAX], brk_ns[BB_ROUNDS_MAX], diff_ns[BB_ROUNDS_MAX];
    brk_config c;
    brk_breaker b;
    if (parse_args(argc, argv, &calls, &rounds) != 0) {
        usage(stderr);
        return 2;
    }
    bench_config(&c);
    brk_init(&b, "bench", &c, 1);
    /* Warm-up, not counted: caches, branch predictors, CPU frequency. */
    run_reference(calls / 4, &sink);
    run_breaker(&b, calls / 4, &sink, &rejected);
    /* Every round's breaker must stay closed: a rejected call skips the
     * record and would make the figure the open path's. */
    for (uint64_t r = 0; r < rounds; r++) {
        uint64_t tr, tb;
        brk_init(&b, "bench", &c, r + 1); /* each round starts closed and empty */
        if (r % 2) {
            tb = run_breaker(&b, calls, &sink, &rejected);
            tr = run_reference(calls, &sink);
        } else {
            tr = run_reference(calls, &sink);
            tb = run_breaker(&b, calls, &sink, &rejected);
        }
        ref_ns[r] = (double)tr / (double)calls;
        brk_ns[r] = (double)tb / (double)calls;
        diff_ns[r] = brk_ns[r] - ref_ns[r];
        if (b.state != BRK_CLOSED || b.total_opens != 0 || rejected != 0) {
            fprintf(stderr, BB_PROG ": the breaker left CLOSED (%s): the figure would not be "
                            "the closed path's\n",
                    brk_state_name(b.state));
            return 1;
        }
    }
    brk_stats st;
    brk_stats_get(&b, 0, &st);
    double ref = median(ref_ns, (int)rounds), brk = median(brk_ns, (int)rounds);
    double over = median(diff_ns, (int)rounds);
    printf("breaker: %llu rounds of %llu allow+record pairs, closed breaker, all trips on\n",
           (unsigned long long)rounds, (unsigned long long)calls);
    printf("  last round: %llu successes, %llu failures, %llu slow; window %.1f%% failed, "
           "%.1f%% slow\n",
           (unsigned long long)st.successes, (unsigned long long)st.failures,
           (unsigned long long)st.slow, st.failure_rate_pct, st.slow_rate_pct);
    printf("  %-34s %10s %14s\n", "median", "ns/call", "calls/s");
    printf("  %-34s %10.2f %14.0f\n", "reference (same loop, no breaker)", ref, 1e9 / ref);
    printf("  %-34s %10.2f %14.0f\n", "breaker (allow + record_call)", brk, 1e9 / brk);
    printf("  overhead per call (median of per-round differences): %.2f ns (aim: under %.0f "
           "ns: %s)\n",
           over, BB_AIM_NS, over < BB_AIM_NS ? "met" : "not met");

    json_t *j = json_object();
    if (!j || json_object_set_new(j, "bench", json_string(BB_PROG)) != 0 ||
        json_object_set_new(j, "rounds", json_integer((json_int_t)rounds)) != 0 ||
        json_object_set_new(j, "calls_per_round", json_integer((json_int_t)calls)) != 0 ||
        json_object_set_new(j, "reference_ns_per_call", json_real(round(ref * 100) / 100)) != 0 ||
        json_object_set_new(j, "breaker_ns_per_call", json_real(round(brk * 100) / 100)) != 0 ||
        json_object_set_new(j, "overhead_ns_per_call", json_real(round(over * 100) / 100)) != 0 ||
        json_object_set_new(j, "reference_calls_per_s", json_integer((json_int_t)(1e9 / ref))) !=
            0 ||
        json_object_set_new(j, "breaker_calls_per_s", json_integer((json_int_t)(1e9 / brk))) != 0 ||
        json_object_set_new(j, "aim_overhead_ns", json_real(BB_AIM_NS)) != 0 ||
        json_object_set_new(j, "aim_met", json_boolean(over < BB_AIM_NS)) != 0) {
        json_decref(j);
        fprintf(stderr, BB_PROG ": out of memory\n");
        return 1;
    }
    char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(j);
    if (!line) {
        fprintf(stderr, BB_PROG ": out of memory\n");
        return 1;
    }
    printf("%s\n", line);
    free(line);
    /* The sink is printed nowhere useful, but reading it keeps every
     * iteration's work observable. */
    if (sink == 42)
        fprintf(stderr, "\n");
    return 0;
}
