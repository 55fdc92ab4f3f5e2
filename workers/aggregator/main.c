/* warden-aggregator: market data in, consolidated quotes and bars out.
 *   warden-aggregator [--config FILE] [--section NAME]   run as a worker
 *   warden-aggregator --parse-only FILE                  time the CSV parser
 * --parse-only reads FILE as the replay source would and parses every line,
 * doing nothing else; it prints one JSON line (lines, ticks, bad, seconds).
 * bench/aggregator uses it as the reference cost of the same file. */
#include "agg_worker.h"
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARSE_BUF (1u << 20)

static int parse_only(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    char *buf = malloc(PARSE_BUF + AGG_CSV_LINE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        return 1;
    }
    uint64_t lines = 0, ticks = 0, bad = 0, t0 = wd_clock_mono_ns();
    size_t len = 0, n;
    double checksum = 0; /* keeps the parse from being optimised away */
    for (;;) {
        n = fread(buf + len, 1, PARSE_BUF, f);
        len += n;
        size_t off = 0;
        for (;;) {
            char *nl = memchr(buf + off, '\n', len - off);
            size_t ll;
            if (nl == NULL) {
                if (n > 0 || off == len)
                    break;
                ll = len - off;
            } else {
                ll = (size_t)(nl - (buf + off));
            }
            agg_tick t;
            agg_drop_reason why;
            int rc = agg_csv_parse(buf + off, ll, &t, &why);
            lines++;
            if (rc == 0) {
                ticks++;
                checksum += t.bid;
            } else if (rc != AGG_CSV_SKIP) {
                bad++;
            }
            off += ll + (nl ? 1 : 0);
        }
        memmove(buf, buf + off, len - off);
        len -= off;
        if (n == 0)
            break;
        if (len > AGG_CSV_LINE_MAX)
            len = 0; /* an overlong line: dropped, as the replay does */
    }
    double secs = (double)(wd_clock_mono_ns() - t0) / 1e9;
    printf("{\"lines\":%llu,\"ticks\":%llu,\"bad\":%llu,\"seconds\":%.6f,\"checksum\":%.2f}\n",
           (unsigned long long)lines, (unsigned long long)ticks, (unsigned long long)bad, secs,
           checksum);
    free(buf);
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--parse-only") == 0)
        return parse_only(argv[2]);
    return agg_worker_main(argc, argv);
}
