/* bench/aggregator: warden-aggregator replaying a generated CSV as fast as
 * possible (replay_speed = 0, topics = all) through the whole tick path
 * (parse, validate, book, bars, batch, msgpack, nng PUB), with a SUB
 * subscriber in this process counting the consolidated quotes; beside it,
 * the reference: `warden-aggregator --parse-only` on the same file, which
 * only reads and parses it.
 *
 *   aggregator [--ticks N] [--symbols N] [--venues N] [--bin-dir DIR] [--keep]
 *
 * Figures: ticks/s in (ticks / time from the aggregator's start to the last
 * quote received), quotes/s out (received by the subscriber), publish
 * latency p50/p99 (the quote's recv_ns, stamped by the aggregator when it
 * read the tick, to this process's receipt: tick received -> batch sent ->
 * delivered, the same realtime clock on both sides), and the parse-only
 * ticks/s. Ends with one JSON line. Aim (issue 4): >= 1 M ticks/s, p99
 * < 2 ms. A bench reports; it never asserts. */
#include "clock.h"
#include "proto_md.h"
#include <errno.h>
#include <limits.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define AB_TICKS_DEFAULT 5000000ULL
#define AB_SYMBOLS_DEFAULT 500
#define AB_VENUES_DEFAULT 4
#define AB_QUIET_MS 500     /* no message for this long: the replay is over */
#define AB_START_TIMEOUT_MS 10000
#define AB_LAT_MAX 2000000  /* latency samples kept (reservoir of the first ones) */
#define AB_PATH_MAX 4096

static char bin_dir[AB_PATH_MAX], tmp_dir[AB_PATH_MAX];

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int gen_file(const char *path, uint64_t n, int nsym, int nven) {
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    uint64_t s = 88172645463325252ULL;
    double *mid = malloc((size_t)nsym * sizeof *mid);
    for (int i = 0; i < nsym; i++)
        mid[i] = 10 + (double)(rng_next(&s) % 49000) / 100.0;
    fputs("ts,venue,symbol,bid,bid_size,ask,ask_size,last,last_size\n", f);
    for (uint64_t i = 0; i < n; i++) {
        int sym = (int)(rng_next(&s) % (uint64_t)nsym), v = (int)(rng_next(&s) % (uint64_t)nven);
        mid[sym] *= 1.0 + ((double)(rng_next(&s) % 2001) - 1000.0) / 1e7;
        double half = mid[sym] * (1 + (double)(rng_next(&s) % 8)) / 1e4;
        uint64_t ts = 1700000000000000000ULL + i * 1000ULL; /* 1M ticks per source second */
        if (i % 5 == 0)
            fprintf(f, "%llu,V%d,S%03d,%.4f,%llu,%.4f,%llu,%.4f,%llu\n", (unsigned long long)ts, v,
                    sym, mid[sym] - half, (unsigned long long)(1 + rng_next(&s) % 500),
                    mid[sym] + half, (unsigned long long)(1 + rng_next(&s) % 500), mid[sym],
                    (unsigned long long)(1 + rng_next(&s) % 50));
        else
            fprintf(f, "%llu,V%d,S%03d,%.4f,%llu,%.4f,%llu\n", (unsigned long long)ts, v, sym,
                    mid[sym] - half, (unsigned long long)(1 + rng_next(&s) % 500),
                    mid[sym] + half, (unsigned long long)(1 + rng_next(&s) % 500));
    }
    free(mid);
    return fclose(f);
}

static double parse_only(const char *csv, uint64_t *ticks) {
    char cmd[3 * AB_PATH_MAX];
    snprintf(cmd, sizeof cmd, "'%s/warden-aggregator' --parse-only '%s'", bin_dir, csv);
    FILE *p = popen(cmd, "r");
    char line[512] = "";
    if (p == NULL || fgets(line, sizeof line, p) == NULL) {
        if (p)
            pclose(p);
        return -1;
    }
    pclose(p);
    unsigned long long t = 0;
    double secs = -1;
    const char *a = strstr(line, "\"ticks\":"), *b = strstr(line, "\"seconds\":");
    if (a && b) {
        t = strtoull(a + 8, NULL, 10);
        secs = strtod(b + 10, NULL);
    }
    *ticks = t;
    return secs;
}

static pid_t spawn_agg(const char *conf) {
    char exe[AB_PATH_MAX + 32], envc[AB_PATH_MAX + 32], envr[AB_PATH_MAX + 32];
    snprintf(exe, sizeof exe, "%s/warden-aggregator", bin_dir);
    snprintf(envc, sizeof envc, "WARDEN_CONFIG=%s", conf);
    snprintf(envr, sizeof envr, "WARDEN_RUN_DIR=%s", tmp_dir);
    char *argv[] = {exe, NULL};
    char *envp[] = {envc, envr, "WARDEN_LOG_LEVEL=warn", "WARDEN_NAME=aggregator", NULL};
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execve(exe, argv, envp);
        _exit(127);
    }
    return pid;
}

int main(int argc, char **argv) {
    uint64_t n = AB_TICKS_DEFAULT;
    int nsym = AB_SYMBOLS_DEFAULT, nven = AB_VENUES_DEFAULT, keep = 0;
    snprintf(bin_dir, sizeof bin_dir, "%s", "../bin");
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--ticks") && v)
            n = strtoull(v, NULL, 10), i++;
        else if (!strcmp(argv[i], "--symbols") && v)
            nsym = atoi(v), i++;
        else if (!strcmp(argv[i], "--venues") && v)
            nven = atoi(v), i++;
        else if (!strcmp(argv[i], "--bin-dir") && v)
            snprintf(bin_dir, sizeof bin_dir, "%s", v), i++;
        else if (!strcmp(argv[i], "--keep"))
            keep = 1;
        else {
            fprintf(stderr, "usage: aggregator [--ticks N] [--symbols N<=1000] [--venues N<=16] "
                            "[--bin-dir DIR] [--keep]\n");
            return 2;
        }
    }
    if (n == 0 || nsym < 1 || nsym > 1000 || nven < 1 || nven > 16) {
        fprintf(stderr, "aggregator: bad --ticks/--symbols/--venues\n");
        return 2;
    }
    snprintf(tmp_dir, sizeof tmp_dir, "%s/aggbench-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tmp_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char csv[AB_PATH_MAX + 16], conf[AB_PATH_MAX + 16], url[AB_PATH_MAX + 32];
    snprintf(csv, sizeof csv, "%s/ticks.csv", tmp_dir);
    snprintf(conf, sizeof conf, "%s/agg.conf", tmp_dir);
    snprintf(url, sizeof url, "ipc://%s/md.sock", tmp_dir);
    fprintf(stderr, "generating %llu ticks over %d symbols x %d venues...\n",
            (unsigned long long)n, nsym, nven);
    if (gen_file(csv, n, nsym, nven) != 0) {
        perror(csv);
        return 1;
    }
    FILE *cf = fopen(conf, "w");
    fprintf(cf, "[aggregator]\nsource = replay\nreplay_file = %s\nreplay_speed = 0\n"
                "topics = all\nbatch_max = 256\npublish_url = %s\nbar_intervals = 1s,1m\nvenues = ",
            csv, url);
    for (int v = 0; v < nven; v++)
        fprintf(cf, "%sV%d", v ? "," : "", v);
    fprintf(cf, "\nsymbols = ");
    for (int s = 0; s < nsym; s++)
        fprintf(cf, "%sS%03d", s ? "," : "", s);
    fprintf(cf, "\n");
    fclose(cf);

    uint64_t pticks = 0;
    double psecs = parse_only(csv, &pticks);

    nng_socket sub;
    nng_sub0_open(&sub);
    nng_socket_set(sub, NNG_OPT_SUB_SUBSCRIBE, "", 0);
    nng_socket_set_int(sub, NNG_OPT_RECVBUF, 8192);
    nng_socket_set_size(sub, NNG_OPT_RECVMAXSZ, PROTO_MSG_MAX);
    nng_socket_set_ms(sub, NNG_OPT_RECONNMINT, 1);
    nng_socket_set_ms(sub, NNG_OPT_RECONNMAXT, 5);
    nng_socket_set_ms(sub, NNG_OPT_RECVTIMEO, AB_QUIET_MS);
    nng_dial(sub, url, NULL, NNG_FLAG_NONBLOCK);

    proto_md_batch *b = malloc(sizeof *b);
    uint64_t *lat = malloc(AB_LAT_MAX * sizeof *lat);
    uint64_t n_lat = 0, quotes = 0, bars = 0, msgs = 0, bad = 0;
    uint64_t t_start = wd_clock_mono_ns(), t_last = 0;
    pid_t pid = spawn_agg(conf);
    for (;;) {
        void *buf;
        size_t len;
        int rv = nng_recv(sub, &buf, &len, NNG_FLAG_ALLOC);
        if (rv == NNG_ETIMEDOUT) {
            if (msgs > 0 || wd_clock_mono_ns() - t_start > AB_START_TIMEOUT_MS * WD_NS_PER_MS)
                break;
            continue;
        }
        if (rv != 0)
            break;
        uint64_t now_real = wd_clock_real_ns();
        t_last = wd_clock_mono_ns();
        msgs++;
        if (proto_md_batch_unpack(buf, len, b, NULL, 0) != 0) {
            bad++;
        } else {
            quotes += b->n_quotes;
            bars += b->n_bars;
            for (uint32_t i = 0; i < b->n_quotes && n_lat < AB_LAT_MAX; i++)
                lat[n_lat++] = now_real > b->quotes[i].recv_ns ? now_real - b->quotes[i].recv_ns : 0;
        }
        nng_free(buf, len);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    nng_close(sub);
    double secs = t_last > t_start ? (double)(t_last - t_start) / 1e9 : -1;
    qsort(lat, n_lat, sizeof *lat, cmp_u64);
    double p50 = n_lat ? (double)lat[n_lat / 2] / 1e6 : -1;
    double p99 = n_lat ? (double)lat[(size_t)((double)(n_lat - 1) * 0.99)] / 1e6 : -1;
    double tps = secs > 0 ? (double)n / secs : 0, qps = secs > 0 ? (double)quotes / secs : 0;
    double ptps = psecs > 0 ? (double)pticks / psecs : 0;
    printf("aggregator: %llu ticks, %d symbols x %d venues, replay as fast as possible\n",
           (unsigned long long)n, nsym, nven);
    printf("  ticks in        %12.0f ticks/s  (%.3f s)   aim >= 1000000: %s\n", tps, secs,
           tps >= 1e6 ? "met" : "not met");
    printf("  quotes out      %12.0f quotes/s (%llu quotes, %llu bars, %llu messages, %llu undecodable)\n",
           qps, (unsigned long long)quotes, (unsigned long long)bars, (unsigned long long)msgs,
           (unsigned long long)bad);
    printf("  publish latency p50 %.3f ms, p99 %.3f ms   aim p99 < 2 ms: %s\n", p50, p99,
           p99 >= 0 && p99 < 2 ? "met" : "not met");
    printf("  reference: parse only %12.0f ticks/s (%.3f s)\n", ptps, psecs);
    printf("{\"bench\":\"aggregator\",\"ticks\":%llu,\"symbols\":%d,\"venues\":%d,"
           "\"ticks_per_s\":%.0f,\"quotes_per_s\":%.0f,\"quotes\":%llu,\"bars\":%llu,"
           "\"messages\":%llu,\"latency_p50_ms\":%.3f,\"latency_p99_ms\":%.3f,"
           "\"parse_only_ticks_per_s\":%.0f,\"seconds\":%.3f,\"parse_only_seconds\":%.3f}\n",
           (unsigned long long)n, nsym, nven, tps, qps, (unsigned long long)quotes,
           (unsigned long long)bars, (unsigned long long)msgs, p50, p99, ptps, secs, psecs);
    free(b);
    free(lat);
    if (!keep) {
        unlink(csv);
        unlink(conf);
        rmdir(tmp_dir);
    } else {
        fprintf(stderr, "kept %s\n", tmp_dir);
    }
    return 0;
}
