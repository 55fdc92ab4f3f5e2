/* bench/health: requests/s and p99 latency of warden-health's /livez and
 * /metrics under wrk, beside nginx serving a static 200 on the same machine
 * in the same run (the reference), and the supervisor's control-socket
 * request rate while the probe load runs (it must stay at or below
 * 1/snapshot_ttl, whatever the HTTP load).
 *
 *   bench/run health [--bin-dir DIR] [--duration S] [--connections N]
 *
 * Starts warden with 4 warden-testworker workers and warden-health in a temp
 * directory; nginx (1 worker process) gets its own minimal config there. wrk
 * runs 2 threads. Ends with one JSON line. Needs the Debian packages wrk and
 * nginx (scripts/lib/deps.sh). */
#include "bus.h"
#include "proto.h"
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HB_TTL_MS 100
#define HB_PATH_MAX 4096
#define HB_OUT_MAX 65536
#define HB_WORKERS 4
#define HB_DEFAULT_DURATION_S 5
#define HB_DEFAULT_CONNS 50
#define HB_START_TIMEOUT_S 15

typedef struct {
    double rps, p99_ms, p50_ms;
    long errors;
} hb_result;

static char dir[HB_PATH_MAX], bindir[HB_PATH_MAX];
static pid_t warden_pid, nginx_pid;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* The status code of GET path on 127.0.0.1:port, or -1. */
static int http_get(int port, const char *path) {
    char buf[512];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int n = snprintf(buf, sizeof buf, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    if (write(fd, buf, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (r < 12)
        return -1;
    buf[r] = '\0';
    return atoi(buf + 9);
}

static pid_t spawn(char *const argv[], const char *log) {
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        if (f == NULL || dup2(STDOUT_FILENO, STDERR_FILENO) < 0)
            _exit(127);
        setsid();
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Runs a command and returns its stdout (malloc'ed), or NULL. */
static char *run_capture(char *const argv[]) {
    int p[2];
    if (pipe(p) != 0)
        return NULL;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    char *out = calloc(1, HB_OUT_MAX);
    size_t len = 0;
    ssize_t n;
    while (out != NULL && len < HB_OUT_MAX - 1 && (n = read(p[0], out + len, HB_OUT_MAX - 1 - len)) > 0)
        len += (size_t)n;
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* wrk's latency figures ("1.23ms", "850.00us", "1.01s") in milliseconds. */
static double wrk_ms(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (strncmp(end, "us", 2) == 0)
        return v / 1000.0;
    if (strncmp(end, "ms", 2) == 0)
        return v;
    if (strncmp(end, "s", 1) == 0)
        return v * 1000.0;
    return v;
}

static int run_wrk(int port, const char *path, int duration, int conns, hb_result *r) {
    char url[128], d[16], c[16];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    snprintf(d, sizeof d, "%ds", duration);
    snprintf(c, sizeof c, "%d", conns);
    char *argv[] = {"wrk", "-t2", "-c", c, "-d", d, "--latency", url, NULL};
    char *out = run_capture(argv);
    if (out == NULL)
        return -1;
    const char *p = strstr(out, "Requests/sec:");
    const char *q99 = strstr(out, " 99%"), *q50 = strstr(out, " 50%");
    const char *non2xx = strstr(out, "Non-2xx or 3xx responses:");
    const char *sockerr = strstr(out, "Socket errors:");
    memset(r, 0, sizeof *r);
    if (p == NULL || q99 == NULL || q50 == NULL) {
        fprintf(stderr, "unexpected wrk output:\n%s\n", out);
        free(out);
        return -1;
    }
    r->rps = strtod(p + strlen("Requests/sec:"), NULL);
    r->p99_ms = wrk_ms(q99 + 4 + strspn(q99 + 4, " "));
    r->p50_ms = wrk_ms(q50 + 4 + strspn(q50 + 4, " "));
    if (non2xx != NULL)
        r->errors += strtol(non2xx + strlen("Non-2xx or 3xx responses:"), NULL, 10);
    if (sockerr != NULL)
        r->errors += 1; /* connect/read/write/timeout counts are listed; any is an error */
    free(out);
    return 0;
}

/* The supervisor's control requests served so far. */
static long ctl_requests(void) {
    char url[HB_PATH_MAX + 32];
    msgpack_sbuffer sb;
    proto_header h = {.seq = 1};
    proto_ctl_request req;
    void *reply = NULL;
    size_t len = 0;
    long n = -1;
    snprintf(url, sizeof url, "ipc://%s/run/control.sock", dir);
    memset(&req, 0, sizeof req);
    snprintf(req.cmd, sizeof req.cmd, "status");
    snprintf(h.sender, sizeof h.sender, "bench");
    msgpack_sbuffer_init(&sb);
    if (proto_ctl_request_pack(&sb, &h, &req) == 0 &&
        bus_call_sync(url, sb.data, sb.size, 5000, &reply, &len) == 0) {
        proto_envelope env;
        proto_ctl_reply rep;
        char err[256];
        if (proto_envelope_unpack(reply, len, &env, err, sizeof err) == 0 &&
            proto_ctl_reply_unpack(&env, &rep, err, sizeof err) == 0 && rep.status == 0) {
            json_t *j = json_loadb(rep.data, rep.data_len, 0, NULL);
            json_t *v = json_object_get(json_object_get(j, "supervisor"), "ctl_requests");
            if (json_is_integer(v))
                n = (long)json_integer_value(v);
            json_decref(j);
        }
    }
    free(reply);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static int write_file(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int write_file(const char *path, const char *fmt, ...) {
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    return fclose(f);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void cleanup(void) {
    if (warden_pid > 0) {
        kill(warden_pid, SIGTERM);
        waitpid(warden_pid, NULL, 0);
    }
    if (nginx_pid > 0) {
        kill(nginx_pid, SIGTERM);
        waitpid(nginx_pid, NULL, 0);
    }
    if (dir[0])
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int wait_200(int port, const char *path) {
    double end = now_s() + HB_START_TIMEOUT_S;
    while (now_s() < end) {
        if (http_get(port, path) == 200)
            return 0;
        usleep(50000);
    }
    return -1;
}

static json_t *res_json(const hb_result *r) {
    return json_pack("{s:f,s:f,s:f,s:I}", "rps", r->rps, "p50_ms", r->p50_ms, "p99_ms", r->p99_ms,
                     "errors", (json_int_t)r->errors);
}

int main(int argc, char **argv) {
    int duration = HB_DEFAULT_DURATION_S, conns = HB_DEFAULT_CONNS;
    snprintf(bindir, sizeof bindir, "build/bin");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bin-dir") == 0 && i + 1 < argc)
            snprintf(bindir, sizeof bindir, "%s", argv[++i]);
        else if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc)
            duration = atoi(argv[++i]);
        else if (strcmp(argv[i], "--connections") == 0 && i + 1 < argc)
            conns = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: health [--bin-dir DIR] [--duration S] [--connections N]\n");
            return 2;
        }
    }
    if (duration < 1 || conns < 1) {
        fprintf(stderr, "health: --duration and --connections must be >= 1\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "/tmp/wd-bench-health-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    int hport = free_port(), nport = free_port();
    char conf[HB_PATH_MAX + 32], path[HB_PATH_MAX + 64], ngconf[HB_PATH_MAX + 32];
    snprintf(conf, sizeof conf, "%s/warden.conf", dir);
    char workers[4096] = "";
    size_t off = 0;
    for (int i = 0; i < HB_WORKERS; i++)
        off += (size_t)snprintf(workers + off, sizeof workers - off,
                                "[worker:w%d]\ncommand = %s/warden-testworker\n\n", i, bindir);
    if (write_file(conf,
                   "[supervisor]\nrun_dir = %s/run\nlog_level = warn\n\n%s"
                   "[worker:health]\ncommand = %s/warden-health\n\n"
                   "[health]\nlisten = 127.0.0.1:%d\nsnapshot_ttl = %dms\n",
                   dir, workers, bindir, hport, HB_TTL_MS) != 0 ||
        write_file((snprintf(ngconf, sizeof ngconf, "%s/nginx.conf", dir), ngconf),
                   "daemon off;\nworker_processes 1;\npid %s/nginx.pid;\n"
                   "error_log %s/nginx.err warn;\nevents { worker_connections 4096; }\n"
                   "http {\n access_log off;\n client_body_temp_path %s;\n"
                   " proxy_temp_path %s;\n fastcgi_temp_path %s;\n uwsgi_temp_path %s;\n"
                   " scgi_temp_path %s;\n server {\n  listen 127.0.0.1:%d;\n"
                   "  location / { default_type text/plain; return 200 \"ok\\n\"; }\n }\n}\n",
                   dir, dir, dir, dir, dir, dir, dir, nport) != 0) {
        perror("write config");
        return 1;
    }
    snprintf(path, sizeof path, "%s/warden", bindir);
    char log[HB_PATH_MAX + 32];
    snprintf(log, sizeof log, "%s/warden.log", dir);
    char *wargv[] = {path, "-c", conf, NULL};
    warden_pid = spawn(wargv, log);
    char nglog[HB_PATH_MAX + 32];
    snprintf(nglog, sizeof nglog, "%s/nginx.out", dir);
    char *nargv[] = {"/usr/sbin/nginx", "-c", ngconf, "-p", dir, NULL};
    nginx_pid = spawn(nargv, nglog);
    if (wait_200(hport, "/readyz") != 0) {
        fprintf(stderr, "warden-health did not become ready on port %d (see %s)\n", hport, log);
        return 1;
    }
    if (wait_200(nport, "/") != 0) {
        fprintf(stderr, "nginx did not answer on port %d\n", nport);
        return 1;
    }
    hb_result ng, lz, mx;
    if (run_wrk(nport, "/", duration, conns, &ng) != 0)
        return 1;
    long c0 = ctl_requests();
    double t0 = now_s();
    if (run_wrk(hport, "/livez", duration, conns, &lz) != 0 ||
        run_wrk(hport, "/metrics", duration, conns, &mx) != 0)
        return 1;
    double t1 = now_s();
    long c1 = ctl_requests();
    /* Our own two status requests are not the health worker's. */
    double sup_rate = c0 >= 0 && c1 >= 0 ? (double)(c1 - c0 - 1) / (t1 - t0) : -1;
    double ratio = ng.rps > 0 ? lz.rps / ng.rps : 0;
    printf("nginx static 200 : %10.0f req/s  p50 %.3f ms  p99 %.3f ms\n", ng.rps, ng.p50_ms,
           ng.p99_ms);
    printf("health /livez    : %10.0f req/s  p50 %.3f ms  p99 %.3f ms  (%.0f %% of nginx; aim >= 50 %%, p99 < 5 ms)\n",
           lz.rps, lz.p50_ms, lz.p99_ms, ratio * 100.0);
    printf("health /metrics  : %10.0f req/s  p50 %.3f ms  p99 %.3f ms\n", mx.rps, mx.p50_ms,
           mx.p99_ms);
    printf("supervisor control requests during the load: %.1f /s (aim <= %.0f /s = 1/snapshot_ttl)\n",
           sup_rate, 1000.0 / HB_TTL_MS);
    json_t *j = json_pack("{s:s,s:i,s:i,s:i,s:o,s:o,s:o,s:f,s:f,s:f}", "bench", "health",
                          "workers", HB_WORKERS, "connections", conns, "duration_s", duration,
                          "nginx", res_json(&ng), "livez", res_json(&lz), "metrics", res_json(&mx),
                          "livez_vs_nginx", ratio, "supervisor_req_per_s", sup_rate,
                          "supervisor_req_per_s_max", 1000.0 / HB_TTL_MS);
    char *line = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
    printf("%s\n", line);
    free(line);
    json_decref(j);
    return 0;
}
