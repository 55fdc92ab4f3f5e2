/* bench/position_monitor_e2e: the end-to-end time from a quote crossing a
 * stop to the broker receiving the exit order, with the real binaries:
 * warden supervising warden-position-monitor and warden-paper-broker, a
 * private Redis and PostgreSQL (scripts/lib/services.sh), and this program
 * as the aggregator's side of marketdata.sock (a PUB listener sending
 * proto_md batches).
 *
 *   position_monitor_e2e [--bin-dir DIR] [--crossings N] [--spacing-ms MS]
 *                        [--cycle-interval MS]
 *
 * N positions (default 200), each a long on its own symbol with a stop loss
 * at 95, are loaded; after a warm-up quote at 100 for every symbol, one
 * quote at 94 crosses one stop every spacing-ms (default 50, above the
 * broker throttle's floor so the throttle does not queue them). Timestamps:
 * the quote's send time (realtime, here), closing_at of the row (the
 * monitor's "closing" transaction, PostgreSQL's clock: same host) and
 * filled_at_ns of the broker's order (GET /orders/{client_order_id}; the
 * broker stamps it when it handles the POST, after one Redis read of the
 * last price). Printed: p50/p99/max of quote -> closing written and quote ->
 * broker order, and one JSON line. The path includes the monitor's cycle
 * (cycle_interval, default 10 ms: a quote waits for the next cycle), the
 * closing transaction, the throttle and one HTTP call: this is the figure
 * an operator sees, not the evaluation cost (bench/position_monitor). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <msgpack.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "clock.h"
#include "proto_md.h"

#define PROG "position_monitor_e2e"
#define E2E_MAX 2000
#define E2E_WAIT_S 60

static char root[PATH_MAX], bindir[PATH_MAX], tmp[PATH_MAX];
static char dsn[256];
static int redis_port;
static pid_t warden_pid;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Runs a shell command and returns its whole output (malloc'd), or NULL. */
static char *sh_out(const char *cmd) {
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (n + 1 == cap) {
            char *p = realloc(buf, cap *= 2);
            if (p == NULL) {
                free(buf);
                buf = NULL;
            }
            buf = p;
        }
    }
    int rc = pclose(f);
    if (buf == NULL || rc != 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int free_port(void) {
    char *o = sh_out("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); "
                     "print(s.getsockname()[1])'");
    int p = o ? atoi(o) : 0;
    free(o);
    return p;
}

static size_t on_body(char *p, size_t s, size_t n, void *u) {
    json_t **j = u;
    /* bodies here are small: one write */
    *j = json_loadb(p, s * n, 0, NULL);
    return s * n;
}

static json_t *http_get(CURL *c, const char *url) {
    json_t *j = NULL;
    long code = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &j);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    if (curl_easy_perform(c) != CURLE_OK ||
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code != 200) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static int publish(bus_out *pub, char (*syms)[PROTO_MD_SYMBOL_MAX + 1], int n, double bid,
                   double ask, uint64_t seq) {
    static proto_md_quote q[PROTO_MD_QUOTES_MAX];
    msgpack_sbuffer sb;
    proto_header h = {.seq = seq, .ts_ns = wd_clock_real_ns()};
    snprintf(h.sender, sizeof h.sender, "bench");
    if (n > PROTO_MD_QUOTES_MAX)
        n = PROTO_MD_QUOTES_MAX;
    for (int k = 0; k < n; k++) {
        memset(&q[k], 0, sizeof q[k]);
        snprintf(q[k].symbol, sizeof q[k].symbol, "%s", syms[k]);
        q[k].bid = bid;
        q[k].ask = ask;
        q[k].bid_size = q[k].ask_size = 100;
        snprintf(q[k].bid_venue, sizeof q[k].bid_venue, "BENCH");
        snprintf(q[k].ask_venue, sizeof q[k].ask_venue, "BENCH");
        q[k].mid = (bid + ask) / 2;
        q[k].spread = ask - bid;
        q[k].n_venues = 1;
        q[k].ts_ns = q[k].recv_ns = h.ts_ns;
    }
    msgpack_sbuffer_init(&sb);
    int rc = proto_md_batch_pack(&sb, PROTO_MD_TOPIC_ALL, &h, q, (uint32_t)n, NULL, 0);
    if (rc == 0)
        rc = bus_out_send(pub, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(int64_t *v, int n, double p) {
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    return (double)v[(int)(p * (n - 1))] / 1e6;
}

static void services(const char *verb) {
    sh("bash -c 'source %s/scripts/lib/services.sh && %s %s/svc' >/dev/null 2>&1", root, verb,
       tmp);
}

static void cleanup(void) {
    if (warden_pid > 0) {
        kill(warden_pid, SIGTERM);
        waitpid(warden_pid, NULL, 0);
        warden_pid = 0;
    }
    services("services_stop");
    if (tmp[0] != '\0')
        sh("rm -rf %s", tmp);
}

static int die(const char *what) {
    fprintf(stderr, PROG ": %s (logs: %s/warden.log)\n", what, tmp);
    if (warden_pid > 0) {
        kill(warden_pid, SIGTERM);
        waitpid(warden_pid, NULL, 0);
    }
    services("services_stop");
    return 1;
}

/* A JSON number field of `wardenctl call pm CMD --json`, or -1. */
static double pm_field(const char *cmd, const char *obj, const char *key) {
    char line[PATH_MAX * 3];
    snprintf(line, sizeof line, "%s/wardenctl -s %s/run/control.sock call pm %s --json 2>/dev/null",
             bindir, tmp, cmd);
    char *o = sh_out(line);
    json_t *j = o ? json_loads(o, 0, NULL) : NULL, *v = j;
    free(o);
    if (v != NULL && obj != NULL)
        v = json_object_get(v, obj);
    v = v ? json_object_get(v, key) : NULL;
    double d = v == NULL ? -1 : json_is_true(v) ? 1 : json_is_number(v) ? json_number_value(v) : -1;
    json_decref(j);
    return d;
}

int main(int argc, char **argv) {
    int n = 200, spacing = 50, cycle = 10;
    snprintf(bindir, sizeof bindir, "build/bin");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bin-dir") == 0 && i + 1 < argc)
            snprintf(bindir, sizeof bindir, "%s", argv[++i]);
        else if (strcmp(argv[i], "--crossings") == 0 && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (strcmp(argv[i], "--spacing-ms") == 0 && i + 1 < argc)
            spacing = atoi(argv[++i]);
        else if (strcmp(argv[i], "--cycle-interval") == 0 && i + 1 < argc)
            cycle = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: " PROG " [--bin-dir DIR] [--crossings N] [--spacing-ms MS] "
                            "[--cycle-interval MS]\n");
            return 2;
        }
    }
    if (n < 1 || n > E2E_MAX || spacing < 1 || cycle < 1) {
        fprintf(stderr, PROG ": --crossings 1..%d, --spacing-ms >= 1, --cycle-interval >= 1\n",
                E2E_MAX);
        return 2;
    }
    char here[PATH_MAX];
    snprintf(here, sizeof here, "%s", __FILE__); /* an absolute path in a CMake build */
    snprintf(root, sizeof root, "%s", dirname(dirname(here)));
    char *bd = realpath(bindir, NULL);
    if (bd == NULL) {
        fprintf(stderr, PROG ": --bin-dir %s: %s\n", bindir, strerror(errno));
        return 2;
    }
    snprintf(bindir, sizeof bindir, "%s", bd);
    free(bd);
    snprintf(tmp, sizeof tmp, "/tmp/wd-pme2e.XXXXXX");
    if (mkdtemp(tmp) == NULL) {
        perror(PROG ": mkdtemp");
        return 1;
    }
    chmod(tmp, 0755); /* PostgreSQL (the postgres user) keeps its files under it */

    /* Redis and PostgreSQL of our own. */
    services("services_start");
    char envf[PATH_MAX + 32];
    snprintf(envf, sizeof envf, "%s/svc/services.env", tmp);
    FILE *f = fopen(envf, "r");
    int pg_port = 0;
    for (char line[512]; f && fgets(line, sizeof line, f);) {
        sscanf(line, "WARDEN_REDIS_PORT=%d", &redis_port);
        sscanf(line, "WARDEN_PG_PORT=%d", &pg_port);
    }
    if (f)
        fclose(f);
    if (redis_port == 0 || pg_port == 0)
        return die("services did not start");
    snprintf(dsn, sizeof dsn, "host=127.0.0.1 port=%d user=warden dbname=warden", pg_port);

    /* The schema and the positions: symbol E2E<k>, stop loss 95. */
    if (sh("psql '%s' -X -q -v ON_ERROR_STOP=1 -f %s/config/schema.sql >/dev/null", dsn, root) ||
        sh("psql '%s' -X -q -v ON_ERROR_STOP=1 -c \"INSERT INTO positions (account, symbol, side, "
           "quantity, entry_price, stop_loss) SELECT 'bench', 'E2E' || k, 'long', 10, 100, 95 "
           "FROM generate_series(0, %d) AS k ORDER BY k\" >/dev/null", dsn, n - 1))
        return die("could not load the schema or the positions");
    /* The broker fills at md:last in Redis. */
    char cmds[PATH_MAX + 32];
    snprintf(cmds, sizeof cmds, "%s/redis.cmds", tmp);
    f = fopen(cmds, "w");
    for (int k = 0; f && k < n; k++)
        fprintf(f, "HSET md:last:E2E%d bid 94 ask 94.02 mid 94.01 recv_ns %llu ts_ns %llu\n", k,
                (unsigned long long)wd_clock_real_ns(), (unsigned long long)wd_clock_real_ns());
    if (f == NULL || fclose(f) != 0 || sh("redis-cli -p %d < %s >/dev/null", redis_port, cmds))
        return die("could not write md:last to Redis");

    /* The market data socket (ours), then warden. */
    char md_url[PATH_MAX + 16], err[256];
    bus_out *pub = NULL;
    snprintf(md_url, sizeof md_url, "ipc://%s/md.sock", tmp);
    if (bus_pub_listen(md_url, 0600, &pub, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return die("no market data socket");
    }
    int bport = free_port();
    char cfg[PATH_MAX + 16];
    snprintf(cfg, sizeof cfg, "%s/warden.ini", tmp);
    f = fopen(cfg, "w");
    if (f == NULL || bport == 0)
        return die("could not write the config");
    fprintf(f,
            "[supervisor]\nrun_dir = %s/run\nlog_level = warn\n\n"
            "[program:broker]\ncommand = %s/warden-paper-broker --listen 127.0.0.1:%d "
            "--redis-url redis://127.0.0.1:%d --seed 1\n\n"
            "[worker:pm]\ncommand = %s/warden-position-monitor\nstart_timeout = 20s\n\n"
            "[position_monitor]\ndsn = %s\nredis_url = redis://127.0.0.1:%d\n"
            "broker_url = http://127.0.0.1:%d\nmarketdata_url = %s\nalerts = no\n"
            "cycle_interval = %dms\nprice_stale_after = 60s\n",
            tmp, bindir, bport, redis_port, bindir, dsn, redis_port, bport, md_url, cycle);
    fclose(f);
    char log[PATH_MAX + 16], wbin[PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/warden.log", tmp);
    snprintf(wbin, sizeof wbin, "%s/warden", bindir);
    if ((warden_pid = fork()) == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(wbin, wbin, "-c", cfg, (char *)NULL);
        _exit(127);
    }

    /* Ready: positions loaded and our quotes arriving. */
    static char syms[E2E_MAX][PROTO_MD_SYMBOL_MAX + 1];
    for (int k = 0; k < n; k++)
        snprintf(syms[k], sizeof syms[k], "E2E%d", k);
    uint64_t seq = 0, t_end = wd_clock_mono_ns() + E2E_WAIT_S * WD_NS_PER_SEC;
    bool ready = false;
    while (!ready && wd_clock_mono_ns() < t_end) {
        for (int k = 0; k < n; k += PROTO_MD_QUOTES_MAX)
            publish(pub, syms + k, n - k, 99.99, 100.01, ++seq);
        sleep_ms(200);
        ready = pm_field("health", NULL, "loaded") == 1 &&
                pm_field("metrics", "positions", "open") == n &&
                pm_field("metrics", "totals", "quotes") >= n;
    }
    if (!ready) {
        bus_out_close(pub);
        return die("the monitor did not load the positions or see quotes");
    }
    sleep_ms(300);

    /* The crossings, one per spacing. */
    static int64_t sent[E2E_MAX];
    for (int k = 0; k < n; k++) {
        sent[k] = (int64_t)wd_clock_real_ns();
        publish(pub, syms + k, 1, 94, 94.02, ++seq);
        sleep_ms(spacing);
    }

    /* The orders, as the broker recorded them. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    static int64_t to_broker[E2E_MAX], to_closing[E2E_MAX];
    int got = 0;
    char url[256];
    t_end = wd_clock_mono_ns() + E2E_WAIT_S * WD_NS_PER_SEC;
    for (int k = 0; k < n && wd_clock_mono_ns() < t_end;) {
        /* ids follow the insert order: 1 + k */
        snprintf(url, sizeof url, "http://127.0.0.1:%d/orders/wd-pm-%d", bport, k + 1);
        json_t *o = http_get(c, url);
        json_t *fa = o ? json_object_get(o, "filled_at_ns") : NULL;
        if (fa != NULL && json_integer_value(fa) > 0) {
            to_broker[got++] = json_integer_value(fa) - sent[k];
            k++;
        } else {
            sleep_ms(50);
        }
        json_decref(o);
    }
    curl_easy_cleanup(c);
    curl_global_cleanup();
    char q[512];
    snprintf(q, sizeof q,
             "psql '%s' -X -q -A -t -c \"SELECT (extract(epoch FROM closing_at) * 1e9)::bigint "
             "FROM positions ORDER BY id\"",
             dsn);
    char *rows = sh_out(q), *save = NULL;
    int nc = 0;
    for (char *t = rows ? strtok_r(rows, "\n", &save) : NULL; t && nc < n;
         t = strtok_r(NULL, "\n", &save), nc++)
        to_closing[nc] = strtoll(t, NULL, 10) - sent[nc];
    free(rows);
    bus_out_close(pub);
    if (got < n) {
        fprintf(stderr, PROG ": only %d of %d orders reached the broker\n", got, n);
        cleanup();
        return 1;
    }
    double b50 = pct_ms(to_broker, n, 0.5), b99 = pct_ms(to_broker, n, 0.99),
           bmax = pct_ms(to_broker, n, 1);
    double c50 = nc == n ? pct_ms(to_closing, n, 0.5) : -1,
           c99 = nc == n ? pct_ms(to_closing, n, 0.99) : -1;
    printf("%-10s %12s %12s %12s %14s %14s\n", "crossings", "broker_p50", "broker_p99",
           "broker_max", "closing_p50", "closing_p99");
    printf("%-10d %12.3f %12.3f %12.3f %14.3f %14.3f\n", n, b50, b99, bmax, c50, c99);
    json_t *j = json_pack("{s:s, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f}", "bench",
                          "position_monitor_e2e", "crossings", n, "spacing_ms", spacing,
                          "cycle_interval_ms", cycle, "quote_to_broker_ms_p50", b50,
                          "quote_to_broker_ms_p99", b99, "quote_to_broker_ms_max", bmax,
                          "quote_to_closing_ms_p50", c50, "quote_to_closing_ms_p99", c99);
    char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    printf("%s\n", line);
    free(line);
    json_decref(j);
    cleanup();
    return 0;
}
