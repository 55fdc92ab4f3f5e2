/* bench/redis_client: pipelined SET/GET throughput through the warden Redis
 * client (common/redis.h: hiredis async on libuv, with its breaker, timeouts
 * and metrics on), beside redis-benchmark against the same server in the
 * same run.
 *
 * The bench starts its own redis-server (from PATH) on a free loopback
 * port, without persistence. Each round runs, in turn:
 *   - the client on one connection: --ops SETs of "key:__rand_int__" =
 *     "xxx" (what redis-benchmark sends by default), then --ops GETs,
 *     keeping --inflight commands in flight (a reply's callback sends the
 *     next command); requests per second from the first command to the
 *     last reply;
 *   - the client on --clients connections (default 50, redis-benchmark's
 *     own default): as many wd_redis clients on the one loop (one thread,
 *     as redis-benchmark is), each keeping --inflight in flight, the --ops
 *     shared among them;
 *   - the reference: `redis-benchmark -P <inflight> -c <clients> -t set,get
 *     -n <ops> -q`, whose SET and GET figures are read from its output; and
 *     the same with -c 1 (one connection).
 * Rounds alternate so machine noise hits all; the figures are medians over
 * --rounds. The aim is the client at 70 % or more of redis-benchmark on
 * equal terms: --clients connections x --inflight each side (50 x 16 by
 * default, redis-benchmark's own -c and this bench's -P). Also printed: one
 * connection against redis-benchmark -c 1 (equal terms again), and one
 * connection against redis-benchmark's --clients (the figure this bench
 * first reported). That last one is not like for like: on one connection
 * the client and the server take turns (the next batch is sent when the
 * last one is answered), while with 50 the server always has a batch to
 * work on while the client handles another.
 *
 * Output: human-readable lines, then one JSON line. Exit 0 when it ran
 * (an aim missed is printed "not met"), 1 on a failure, 2 on a usage error. */
#include "clock.h"
#include "metrics.h"
#include "redis.h"
#include "wd_error.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RC_PROG "redis_client"
#define RC_OPS_DEFAULT 200000
#define RC_OPS_MAX 100000000
#define RC_ROUNDS_DEFAULT 3
#define RC_ROUNDS_MAX 50
#define RC_INFLIGHT_DEFAULT 16
#define RC_INFLIGHT_MAX 10000
#define RC_CLIENTS_DEFAULT 50 /* redis-benchmark's default -c */
#define RC_CLIENTS_MAX 200
#define RC_AIM 0.70
#define RC_READY_MS 5000
#define RC_LINE_MAX 512
#define RC_CMD_MAX 256
#define RC_DIR_MAX 64

/* One phase: every client's commands count into done/failed. */
typedef struct {
    uint64_t done, failed;
    int last_error;
} rc_total;

typedef struct {
    wd_redis *r;
    bool is_set;
    uint64_t target, issued; /* this client's share */
    rc_total *t;
} rc_run;

static const char *const rc_set_argv[] = {"SET", "key:__rand_int__", "xxx"};
static const char *const rc_get_argv[] = {"GET", "key:__rand_int__"};

static void rc_issue(rc_run *b);

static void rc_on_reply(wd_redis *r, const wd_redis_result *res, void *arg) {
    (void)r;
    rc_run *b = arg;
    b->t->done++;
    if (res->status != 0) {
        b->t->failed++;
        b->t->last_error = res->status;
    }
    if (b->issued < b->target)
        rc_issue(b);
}

static void rc_issue(rc_run *b) {
    b->issued++;
    int rc = b->is_set ? wd_redis_command_argv(b->r, rc_on_reply, b, 3, rc_set_argv, NULL)
                       : wd_redis_command_argv(b->r, rc_on_reply, b, 2, rc_get_argv, NULL);
    if (rc != 0) {
        b->t->done++;
        b->t->failed++;
        b->t->last_error = rc;
    }
}

/* Requests per second of one phase on the first n clients of r (ops
 * shared among them, each keeping inflight in flight), or -1 on a failure. */
static double rc_phase(uv_loop_t *loop, wd_redis **r, int n, bool is_set, uint64_t ops,
                       int inflight) {
    rc_total t = {0};
    rc_run b[RC_CLIENTS_MAX];
    if (n < 1 || n > RC_CLIENTS_MAX)
        return -1;
    for (int i = 0; i < n; i++)
        b[i] = (rc_run){.r = r[i], .is_set = is_set, .target = ops / (uint64_t)n, .t = &t};
    b[0].target += ops % (uint64_t)n;
    uint64_t t0 = wd_clock_mono_ns();
    for (int i = 0; i < n; i++)
        for (int k = 0; k < inflight && b[i].issued < b[i].target; k++)
            rc_issue(&b[i]);
    while (t.done < ops)
        uv_run(loop, UV_RUN_ONCE);
    uint64_t ns = wd_clock_mono_ns() - t0;
    if (t.failed > 0) {
        fprintf(stderr, RC_PROG ": %llu of %llu commands failed (last: %s)\n",
                (unsigned long long)t.failed, (unsigned long long)ops, wd_strerror(t.last_error));
        return -1;
    }
    return (double)ops * 1e9 / (double)ns;
}

static void rc_tick(uv_timer_t *t) { (void)t; }

static bool rc_ready(wd_redis **r, int n) {
    for (int i = 0; i < n; i++)
        if (wd_redis_get_state(r[i]) != WD_REDIS_READY)
            return false;
    return true;
}

static int rc_free_port(void) {
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (fd < 0)
        return -1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static pid_t rc_start_server(int port, const char *dir) {
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        execlp("redis-server", "redis-server", "--bind", "127.0.0.1", "--port", p, "--dir", dir,
               "--save", "", "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Runs redis-benchmark and reads "SET: 123.45 requests per second..." */
static int rc_reference(int port, uint64_t ops, int inflight, int clients, double *set_rps,
                        double *get_rps) {
    char cmd[RC_CMD_MAX], line[RC_LINE_MAX];
    snprintf(cmd, sizeof cmd,
             "redis-benchmark -h 127.0.0.1 -p %d -P %d -c %d -t set,get -n %llu -q 2>&1", port,
             inflight, clients, (unsigned long long)ops);
    FILE *fp = popen(cmd, "r");
    if (!fp)
        return -1;
    *set_rps = *get_rps = -1;
    while (fgets(line, sizeof line, fp)) {
        /* -q prints progress with \r before each final line: take the last part */
        char *p = strrchr(line, '\r');
        p = p ? p + 1 : line;
        double *dst = strncmp(p, "SET:", 4) == 0 ? set_rps : strncmp(p, "GET:", 4) == 0 ? get_rps
                                                                                       : NULL;
        if (dst) {
            char *end;
            errno = 0;
            double v = strtod(p + 4, &end);
            if (errno == 0 && end != p + 4)
                *dst = v;
        }
    }
    int st = pclose(fp);
    return (st == 0 && *set_rps > 0 && *get_rps > 0) ? 0 : -1;
}

static int rc_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double rc_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, rc_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void usage(void) {
    fprintf(stderr, "usage: " RC_PROG
                    " [--ops N] [--rounds N] [--inflight N] [--clients N] [--bin-dir DIR]\n");
}

static int parse_num(const char *s, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 1 || v > max)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    long ops = RC_OPS_DEFAULT, rounds = RC_ROUNDS_DEFAULT, inflight = RC_INFLIGHT_DEFAULT;
    long clients = RC_CLIENTS_DEFAULT;
    for (int i = 1; i < argc; i++) {
        long *dst = strcmp(argv[i], "--ops") == 0        ? &ops
                    : strcmp(argv[i], "--rounds") == 0   ? &rounds
                    : strcmp(argv[i], "--inflight") == 0 ? &inflight
                    : strcmp(argv[i], "--clients") == 0  ? &clients
                                                         : NULL;
        long max = dst == &ops        ? RC_OPS_MAX
                   : dst == &rounds   ? RC_ROUNDS_MAX
                   : dst == &clients  ? RC_CLIENTS_MAX
                                      : RC_INFLIGHT_MAX;
        if (strcmp(argv[i], "--bin-dir") == 0 && i + 1 < argc) {
            i++; /* accepted for bench/run; this bench needs no warden binary */
        } else if (dst && i + 1 < argc && parse_num(argv[i + 1], max, dst) == 0) {
            i++;
        } else {
            usage();
            return strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ? 0 : 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    char dir[RC_DIR_MAX];
    snprintf(dir, sizeof dir, "/tmp/wd-redis-bench.XXXXXX");
    if (!mkdtemp(dir)) {
        perror(RC_PROG ": mkdtemp");
        return 1;
    }
    int port = rc_free_port(), ret = 1, nc = (int)clients, nopen = 0;
    pid_t srv = port > 0 ? rc_start_server(port, dir) : -1;
    uv_loop_t loop;
    uv_loop_init(&loop);
    wd_metrics *reg = wd_metrics_new();
    wd_redis_metrics mset;
    wd_redis *r[RC_CLIENTS_MAX] = {0};
    char err[256] = "", url[64];
    /* per round: [0] one connection, [1] nc connections, [2] redis-benchmark
     * -c nc, [3] redis-benchmark -c 1; each SET and GET */
    double set[4][RC_ROUNDS_MAX], get[4][RC_ROUNDS_MAX];
    if (srv <= 0) {
        fprintf(stderr, RC_PROG ": cannot start redis-server\n");
        goto out;
    }
    if (!reg || wd_redis_metrics_register(reg, &mset) != 0) {
        fprintf(stderr, RC_PROG ": cannot register the metrics\n");
        goto out;
    }
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    wd_redis_opts o;
    wd_redis_opts_default(&o);
    o.url = url;
    o.metric_set = &mset; /* every client counts into the one registry */
    o.name = "bench";
    o.max_pending = (size_t)inflight + 16;
    o.reconnect_initial_ms = 20;
    for (; nopen < nc; nopen++) {
        if (wd_redis_open(&loop, &o, &r[nopen], err, sizeof err) != 0) {
            fprintf(stderr, RC_PROG ": %s\n", err);
            goto out;
        }
    }
    uint64_t until = wd_clock_mono_ns() + RC_READY_MS * WD_NS_PER_MS;
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    /* a repeating tick bounds each UV_RUN_ONCE while the connections come up */
    uv_timer_start(&tick, rc_tick, 10, 10);
    while (!rc_ready(r, nc) && wd_clock_mono_ns() < until)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&tick);
    uv_close((uv_handle_t *)&tick, NULL);
    if (!rc_ready(r, nc)) {
        fprintf(stderr, RC_PROG ": redis-server on port %d did not come up\n", port);
        goto out;
    }
    printf("redis-server on 127.0.0.1:%d; %ld ops per phase, %ld in flight per connection, "
           "%d connections, %ld rounds\n",
           port, ops, inflight, nc, rounds);
    /* a warm-up phase, not counted */
    if (rc_phase(&loop, r, nc, true, (uint64_t)ops / 10 + 1, (int)inflight) < 0)
        goto out;
    for (int i = 0; i < rounds; i++) {
        for (int k = 0; k < 2; k++) {
            int n = k == 0 ? 1 : nc;
            set[k][i] = rc_phase(&loop, r, n, true, (uint64_t)ops, (int)inflight);
            get[k][i] = rc_phase(&loop, r, n, false, (uint64_t)ops, (int)inflight);
            if (set[k][i] < 0 || get[k][i] < 0)
                goto out;
        }
        if (rc_reference(port, (uint64_t)ops, (int)inflight, nc, &set[2][i], &get[2][i]) != 0 ||
            rc_reference(port, (uint64_t)ops, (int)inflight, 1, &set[3][i], &get[3][i]) != 0) {
            fprintf(stderr, RC_PROG ": redis-benchmark failed or printed no figures\n");
            goto out;
        }
        printf("round %d: client x1 SET %.0f GET %.0f | client x%d SET %.0f GET %.0f | "
               "redis-benchmark -c %d SET %.0f GET %.0f | redis-benchmark -c 1 SET %.0f GET %.0f "
               "(requests/s)\n",
               i + 1, set[0][i], get[0][i], nc, set[1][i], get[1][i], nc, set[2][i], get[2][i],
               set[3][i], get[3][i]);
    }
    double ms[4], mg[4];
    for (int k = 0; k < 4; k++) {
        ms[k] = rc_median(set[k], (int)rounds);
        mg[k] = rc_median(get[k], (int)rounds);
    }
    /* the aim: nc connections against redis-benchmark's nc, both x inflight */
    double rs = ms[1] / ms[2], rg = mg[1] / mg[2], ratio = fmin(rs, rg);
    double r1 = fmin(ms[0] / ms[3], mg[0] / mg[3]);  /* one connection each */
    double r1n = fmin(ms[0] / ms[2], mg[0] / mg[2]); /* one against nc */
    printf("median requests/s   client x1   client x%-3d   redis-benchmark -c %-3d   "
           "redis-benchmark -c 1\n",
           nc, nc);
    printf("SET               %9.0f   %11.0f   %22.0f   %20.0f\n", ms[0], ms[1], ms[2], ms[3]);
    printf("GET               %9.0f   %11.0f   %22.0f   %20.0f\n", mg[0], mg[1], mg[2], mg[3]);
    printf("ratio, %d connections each (the aim): SET %.2f GET %.2f\n", nc, rs, rg);
    printf("ratio, 1 connection each: %.2f; 1 connection against %d: %.2f\n", r1, nc, r1n);
    printf("aim: client >= %.0f%% of redis-benchmark (-P %ld, %d connections each): %s (%.0f%%)\n",
           RC_AIM * 100, inflight, nc, ratio >= RC_AIM ? "met" : "not met", ratio * 100);
    json_t *j = json_pack(
        "{s:s,s:I,s:I,s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:b}", "bench",
        RC_PROG, "ops", (json_int_t)ops, "inflight", (json_int_t)inflight, "clients",
        (json_int_t)nc, "rounds", (json_int_t)rounds, "client_set_rps", round(ms[0]),
        "client_get_rps", round(mg[0]), "client_n_set_rps", round(ms[1]), "client_n_get_rps",
        round(mg[1]), "redis_benchmark_set_rps", round(ms[2]), "redis_benchmark_get_rps",
        round(mg[2]), "redis_benchmark_c1_set_rps", round(ms[3]), "redis_benchmark_c1_get_rps",
        round(mg[3]), "ratio_set", round(rs * 1000) / 1000, "ratio_get", round(rg * 1000) / 1000,
        "ratio", round(ratio * 1000) / 1000, "ratio_c1", round(r1 * 1000) / 1000,
        "ratio_1_vs_n", round(r1n * 1000) / 1000, "aim", RC_AIM, "aim_met", ratio >= RC_AIM);
    char *js = json_dumps(j, JSON_COMPACT);
    printf("%s\n", js);
    free(js);
    json_decref(j);
    ret = 0;
out:
    for (int i = 0; i < nopen; i++)
        wd_redis_close(r[i], NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    wd_metrics_free(reg);
    if (srv > 0) {
        kill(srv, SIGTERM);
        waitpid(srv, NULL, 0);
    }
    char path[RC_DIR_MAX + 16];
    snprintf(path, sizeof path, "%s/dump.rdb", dir);
    unlink(path);
    rmdir(dir);
    return ret;
}
