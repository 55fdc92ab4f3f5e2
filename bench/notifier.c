/* bench/notifier: alerts per second from 4 producers through warden-notifier
 * to a local keep-alive webhook sink, and the acked-to-delivered latency
 * (p50/p99), beside the same sink driven directly by a tight libcurl multi
 * loop in the same run (the reference: what the sink and loopback HTTP can
 * take at all).
 *
 *   bench/run notifier [--bin-dir DIR] [--alerts N] [--concurrency C]
 *
 * Everything is real: a private redis-server (the notifier stores every
 * alert before acking it), warden-notifier run standalone, 4 producer
 * threads each with its own loop and the real producer library
 * (common/alert_outbox.h), and a sink thread that answers HTTP/1.1 on
 * keep-alive connections and records when each alert id arrived. Ends with
 * one JSON line. The aim (issue 6): >= 5000 alerts/s and >= 50 % of direct. */
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "alert_outbox.h"
#include "bus.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"

#define PROG "bench/notifier"
#define PRODUCERS 4
#define DEFAULT_ALERTS 20000
#define DEFAULT_CONCURRENCY 32
#define SINK_BUF 65536
#define PATH_MAX_LEN 4096

static int n_per; /* alerts per producer */
static uint64_t *ack_ns[PRODUCERS], *dlv_ns[PRODUCERS], *push_ns[PRODUCERS];
static atomic_ulong delivered, direct_done;
/* TCP connections the sink accepted: a keep-alive client needs about as
 * many as its concurrency; more means its connection cache is churning. */
static atomic_ulong sink_accepts;
static int sink_port;

/* ---- sink: one thread, its own loop ---- */

typedef struct {
    uv_tcp_t tcp;
    char buf[SINK_BUF];
    size_t len;
} sink_conn;

static uv_loop_t sink_loop;
static uv_tcp_t sink_srv;
static uv_async_t sink_stop;
static const char RESP[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";

static void on_conn_closed(uv_handle_t *h) { free(h->data); }

static void sink_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
    sink_conn *c = h->data;
    (void)hint;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(SINK_BUF - c->len));
}

static void on_written(uv_write_t *w, int status) {
    (void)status;
    free(w);
}

static size_t header_num(const char *h, size_t hl, const char *name) {
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl < hl; i++)
        if (strncasecmp(h + i, name, nl) == 0)
            return strtoul(h + i + nl, NULL, 10);
    return 0;
}

static void record(const char *h, size_t hl) {
    static const char K[] = "X-Warden-Alert-Id: ";
    for (size_t i = 0; i + sizeof K < hl; i++) {
        if (strncasecmp(h + i, K, sizeof K - 1) != 0)
            continue;
        const char *v = h + i + sizeof K - 1;
        if (v[0] == 'd') {
            atomic_fetch_add(&direct_done, 1);
        } else if (v[0] == 'p') {
            int p = v[1] - '0';
            long n = strtol(v + 3, NULL, 10);
            if (p >= 0 && p < PRODUCERS && n >= 0 && n < n_per && dlv_ns[p][n] == 0) {
                dlv_ns[p][n] = wd_clock_mono_ns();
                atomic_fetch_add(&delivered, 1);
            }
        }
        return;
    }
}

static void sink_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    sink_conn *c = s->data;
    (void)b;
    if (n < 0) {
        uv_close((uv_handle_t *)s, on_conn_closed);
        return;
    }
    c->len += (size_t)n;
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t hl = (size_t)(end - c->buf) + 4;
        size_t bl = header_num(c->buf, hl, "Content-Length:");
        if (c->len < hl + bl)
            break;
        record(c->buf, hl);
        uv_write_t *w = malloc(sizeof *w);
        uv_buf_t out = uv_buf_init((char *)RESP, sizeof RESP - 1);
        uv_write(w, s, &out, 1, on_written);
        memmove(c->buf, c->buf + hl + bl, c->len - hl - bl);
        c->len -= hl + bl;
    }
    if (c->len == SINK_BUF)
        uv_close((uv_handle_t *)s, on_conn_closed);
}

static void sink_accept(uv_stream_t *srv, int status) {
    if (status < 0)
        return;
    sink_conn *c = calloc(1, sizeof *c);
    uv_tcp_init(&sink_loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) == 0) {
        atomic_fetch_add(&sink_accepts, 1);
        uv_tcp_nodelay(&c->tcp, 1);
        uv_read_start((uv_stream_t *)&c->tcp, sink_alloc, sink_read);
    } else {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    }
}

static void close_all(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, h->data && h != (uv_handle_t *)&sink_srv && h != (uv_handle_t *)&sink_stop
                        ? on_conn_closed
                        : NULL);
}

static void on_sink_stop(uv_async_t *a) { uv_walk(a->loop, close_all, NULL); }

static void *sink_main(void *arg) {
    (void)arg;
    uv_run(&sink_loop, UV_RUN_DEFAULT);
    return NULL;
}

static int sink_start(pthread_t *th) {
    struct sockaddr_in a;
    uv_loop_init(&sink_loop);
    uv_tcp_init(&sink_loop, &sink_srv);
    uv_ip4_addr("127.0.0.1", 0, &a);
    if (uv_tcp_bind(&sink_srv, (const struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&sink_srv, 512, sink_accept) != 0)
        return -1;
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    uv_tcp_getsockname(&sink_srv, (struct sockaddr *)&ss, &sl);
    sink_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_async_init(&sink_loop, &sink_stop, on_sink_stop);
    return pthread_create(th, NULL, sink_main, NULL);
}

/* ---- child processes ---- */

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t spawn(char *const argv[], char *const envp[], const char *out) {
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(out, "w", stderr);
        (void)f;
        if (!freopen("/dev/null", "w", stdout))
            _exit(127);
        if (envp)
            execve(argv[0], argv, envp);
        else
            execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static int redis_ping(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char buf[16] = "";
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
             write(fd, "PING\r\n", 6) == 6 && read(fd, buf, sizeof buf - 1) > 0 &&
             strncmp(buf, "+PONG", 5) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* ---- producers: a thread each, with its own loop and outbox ---- */

typedef struct {
    int idx;
    char url[ALERT_OUTBOX_URL_MAX + 1];
    int acked, failed;
    uint64_t start_ns;
    pthread_barrier_t *go;
} producer;

static void on_done(void *arg, const char *id, int status) {
    producer *p = arg;
    long n = strtol(id + 3, NULL, 10);
    if (status == 0 && n >= 0 && n < n_per)
        ack_ns[p->idx][n] = wd_clock_mono_ns(), p->acked++;
    else
        p->failed++;
}

static int all_acked(void *arg) {
    producer *p = arg;
    return p->acked + p->failed >= n_per;
}

static void *producer_main(void *arg) {
    producer *p = arg;
    uv_loop_t loop;
    alert_outbox *ob;
    char err[256], sender[16];
    uv_loop_init(&loop);
    snprintf(sender, sizeof sender, "bench%d", p->idx);
    alert_outbox_opts o = {.url = p->url, .sender = sender, .capacity = (uint32_t)n_per + 16,
                           .inflight_max = 64, .ack_timeout_ms = 10000, .retry_ms = 20,
                           .on_done = on_done, .on_done_arg = p};
    if (alert_outbox_open(&loop, &o, &ob, err, sizeof err) != 0) {
        fprintf(stderr, PROG ": outbox: %s\n", err);
        pthread_barrier_wait(p->go);
        return NULL;
    }
    pthread_barrier_wait(p->go);
    p->start_ns = wd_clock_mono_ns();
    for (int i = 0; i < n_per; i++) {
        proto_alert a;
        memset(&a, 0, sizeof a);
        snprintf(a.id, sizeof a.id, "p%d-%d", p->idx, i);
        snprintf(a.source, sizeof a.source, "bench");
        a.severity = PROTO_SEV_WARNING;
        snprintf(a.title, sizeof a.title, "position %d of producer %d exited", i, p->idx);
        snprintf(a.text, sizeof a.text, "stop loss hit at 101.5; qty 100; pnl -250.00");
        snprintf(a.dedup_key, sizeof a.dedup_key, "p%d-%d", p->idx, i);
        proto_alert_label_add(&a, "symbol", "AAPL");
        push_ns[p->idx][i] = wd_clock_mono_ns();
        alert_outbox_push(ob, &a, NULL, NULL, 0);
        if ((i & 63) == 0)
            uv_run(&loop, UV_RUN_NOWAIT); /* keep the window moving while pushing */
    }
    while (!all_acked(p))
        uv_run(&loop, UV_RUN_ONCE);
    alert_outbox_close(ob, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return NULL;
}

/* ---- the reference: a tight libcurl multi loop straight at the sink ---- */

static size_t discard(char *p, size_t s, size_t n, void *u) {
    (void)p, (void)u;
    return s * n;
}

static double direct_rate(int total, int conc, const char *body) {
    CURLM *m = curl_multi_init();
    CURL **e = calloc((size_t)conc, sizeof *e);
    struct curl_slist **h = calloc((size_t)conc, sizeof *h);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", sink_port);
    int started = 0, done = 0;
    uint64_t t0 = wd_clock_mono_ns();
    atomic_store(&direct_done, 0);
    for (int i = 0; i < conc && started < total; i++) {
        e[i] = curl_easy_init();
        curl_easy_setopt(e[i], CURLOPT_URL, url);
        curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(e[i], CURLOPT_PRIVATE, (void *)(intptr_t)i);
        char hid[64];
        snprintf(hid, sizeof hid, "X-Warden-Alert-Id: d-%d", started++);
        h[i] = curl_slist_append(curl_slist_append(NULL, "Content-Type: application/json"), hid);
        curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, h[i]);
        curl_multi_add_handle(m, e[i]);
    }
    while (done < total) {
        int running, q;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(m, &q))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *x = msg->easy_handle;
            intptr_t i;
            curl_easy_getinfo(x, CURLINFO_PRIVATE, (char **)&i);
            curl_multi_remove_handle(m, x);
            done++;
            if (started < total) {
                char hid[64];
                snprintf(hid, sizeof hid, "X-Warden-Alert-Id: d-%d", started++);
                curl_slist_free_all(h[i]);
                h[i] = curl_slist_append(curl_slist_append(NULL, "Content-Type: application/json"),
                                         hid);
                curl_easy_setopt(x, CURLOPT_HTTPHEADER, h[i]);
                curl_multi_add_handle(m, x);
            }
        }
        if (done < total)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    double secs = (double)(wd_clock_mono_ns() - t0) / 1e9;
    for (int i = 0; i < conc; i++) {
        if (e[i])
            curl_easy_cleanup(e[i]);
        curl_slist_free_all(h[i]);
    }
    free(e);
    free(h);
    curl_multi_cleanup(m);
    return total / secs;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *bin_dir = NULL;
    int total = DEFAULT_ALERTS, conc = DEFAULT_CONCURRENCY;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bin-dir") == 0 && i + 1 < argc)
            bin_dir = argv[++i];
        else if (strcmp(argv[i], "--alerts") == 0 && i + 1 < argc)
            total = atoi(argv[++i]);
        else if (strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc)
            conc = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: " PROG " [--bin-dir DIR] [--alerts N] [--concurrency C]\n");
            return 2;
        }
    }
    if (!bin_dir || total < PRODUCERS * 100 || conc < 1 || conc > 256) {
        fprintf(stderr, PROG ": need --bin-dir, --alerts >= %d, --concurrency 1..256\n",
                PRODUCERS * 100);
        return 2;
    }
    wd_log_init("bench", WD_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_ALL);
    n_per = total / PRODUCERS;
    total = n_per * PRODUCERS;
    for (int p = 0; p < PRODUCERS; p++) {
        ack_ns[p] = calloc((size_t)n_per, sizeof(uint64_t));
        dlv_ns[p] = calloc((size_t)n_per, sizeof(uint64_t));
        push_ns[p] = calloc((size_t)n_per, sizeof(uint64_t));
    }
    char dir[] = "/tmp/wd-bench-notifier-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    pthread_t sink_th;
    if (sink_start(&sink_th) != 0) {
        fprintf(stderr, PROG ": sink: cannot listen\n");
        return 1;
    }
    int rport = free_port();
    char rport_s[16], path[PATH_MAX_LEN], conf[PATH_MAX_LEN], nbin[PATH_MAX_LEN];
    snprintf(rport_s, sizeof rport_s, "%d", rport);
    snprintf(path, sizeof path, "%s/redis.log", dir);
    char *rargv[] = {"redis-server", "--port", rport_s, "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", dir, NULL};
    pid_t redis = spawn(rargv, NULL, path);
    for (int i = 0; i < 100 && !redis_ping(rport); i++)
        usleep(50000);
    if (!redis_ping(rport)) {
        fprintf(stderr, PROG ": redis-server did not start (is it installed?)\n");
        kill(redis, SIGKILL);
        return 1;
    }
    snprintf(conf, sizeof conf, "%s/notifier.conf", dir);
    FILE *f = fopen(conf, "w");
    fprintf(f,
            "[notifier]\nredis_url = redis://127.0.0.1:%d\ndedup_window = 0\nstorm_threshold = "
            "0\nmax_pending = 1000000\n\n[channel:bench]\ntype = webhook\nurl = "
            "http://127.0.0.1:%d/hook\nconcurrency = %d\n",
            rport, sink_port, conc);
    fclose(f);
    snprintf(nbin, sizeof nbin, "%s/warden-notifier", bin_dir);
    char env_run[PATH_MAX_LEN + 32];
    snprintf(env_run, sizeof env_run, "WARDEN_RUN_DIR=%s", dir);
    char *nenv[] = {env_run, "WARDEN_LOG_LEVEL=warn", "PATH=/usr/bin:/bin", NULL};
    char *nargv[] = {nbin, "--config", conf, NULL};
    snprintf(path, sizeof path, "%s/notifier.log", dir);
    pid_t notifier = spawn(nargv, nenv, path);

    /* The run: 4 producers start together; the clock stops when the sink
     * has every alert. */
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, PRODUCERS + 1);
    producer prod[PRODUCERS];
    pthread_t th[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++) {
        memset(&prod[p], 0, sizeof prod[p]);
        prod[p].idx = p;
        prod[p].go = &go;
        alert_outbox_url(dir, prod[p].url, sizeof prod[p].url);
        pthread_create(&th[p], NULL, producer_main, &prod[p]);
    }
    usleep(300000); /* the notifier loads (nothing) and listens */
    pthread_barrier_wait(&go);
    uint64_t t0 = wd_clock_mono_ns(), deadline = t0 + 120 * WD_NS_PER_SEC;
    while (atomic_load(&delivered) < (unsigned long)total && wd_clock_mono_ns() < deadline)
        usleep(1000);
    uint64_t t1 = wd_clock_mono_ns();
    unsigned long conns = atomic_load(&sink_accepts);
    for (int p = 0; p < PRODUCERS; p++)
        pthread_join(th[p], NULL);
    unsigned long got = atomic_load(&delivered);
    double rate = got / ((double)(t1 - t0) / 1e9);
    uint64_t *lat = calloc((size_t)total, sizeof *lat);
    int nl = 0;
    for (int p = 0; p < PRODUCERS; p++)
        for (int i = 0; i < n_per; i++)
            if (ack_ns[p][i] && dlv_ns[p][i])
                lat[nl++] = dlv_ns[p][i] > ack_ns[p][i] ? dlv_ns[p][i] - ack_ns[p][i] : 0;
    qsort(lat, (size_t)nl, sizeof *lat, cmp_u64);
    double p50 = nl ? (double)lat[nl / 2] / 1e6 : -1, p99 = nl ? (double)lat[nl * 99 / 100] / 1e6 : -1;
    /* End to end (push into the outbox -> at the sink), queueing included:
     * the producers push everything at once, so this grows with --alerts. */
    nl = 0;
    for (int p = 0; p < PRODUCERS; p++)
        for (int i = 0; i < n_per; i++)
            if (push_ns[p][i] && dlv_ns[p][i])
                lat[nl++] = dlv_ns[p][i] > push_ns[p][i] ? dlv_ns[p][i] - push_ns[p][i] : 0;
    qsort(lat, (size_t)nl, sizeof *lat, cmp_u64);
    double e50 = nl ? (double)lat[nl / 2] / 1e6 : -1, e99 = nl ? (double)lat[nl * 99 / 100] / 1e6 : -1;
    kill(notifier, SIGTERM);
    waitpid(notifier, NULL, 0);

    /* The reference, same sink, same body size. */
    char body[1024];
    snprintf(body, sizeof body,
             "{\"id\":\"d-0\",\"source\":\"bench\",\"severity\":\"warning\",\"title\":\"position 1 "
             "of producer 0 exited\",\"text\":\"stop loss hit at 101.5; qty 100; pnl "
             "-250.00\",\"labels\":{\"symbol\":\"AAPL\"},\"time\":1700000000000,\"dedup_key\":"
             "\"p0-1\",\"count\":1}");
    double direct = direct_rate(total, conc, body);
    kill(redis, SIGKILL);
    waitpid(redis, NULL, 0);
    uv_async_send(&sink_stop);
    pthread_join(sink_th, NULL);
    double pct = direct > 0 ? 100.0 * rate / direct : 0;
    printf("notifier: %lu/%d alerts delivered, %.0f alerts/s from %d producers (acked -> delivered "
           "p50 %.2f ms, p99 %.2f ms)\n",
           got, total, rate, PRODUCERS, p50, p99);
    printf("          push -> delivered (all pushed at once) p50 %.0f ms, p99 %.0f ms\n", e50, e99);
    printf("          %lu connections to the sink for %d alerts (channel concurrency %d)\n", conns,
           total, conc);
    printf("direct:   %.0f requests/s (libcurl multi, %d connections, same sink)\n", direct, conc);
    bool met = rate >= 5000 && pct >= 50;
    printf("ratio:    %.1f %% of direct; aim >= 5000 alerts/s and >= 50 %% of direct: %s\n", pct,
           met ? "met" : "not met");
    printf("{\"bench\":\"notifier\",\"alerts\":%d,\"delivered\":%lu,\"producers\":%d,"
           "\"alerts_per_s\":%.0f,\"latency_p50_ms\":%.3f,\"latency_p99_ms\":%.3f,"
           "\"e2e_p50_ms\":%.1f,\"e2e_p99_ms\":%.1f,\"sink_connections\":%lu,\"direct_per_s\":%.0f,\"pct_of_direct\":%.1f,\"aim_met\":%s}\n",
           total, got, PRODUCERS, rate, p50, p99, e50, e99, conns, direct, pct, met ? "true" : "false");
    char cmd[PATH_MAX_LEN + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, PROG ": could not remove %s\n", dir);
    /* A missed aim is reported, not failed; a lost alert is a broken run. */
    return got == (unsigned long)total ? 0 : 1;
}
