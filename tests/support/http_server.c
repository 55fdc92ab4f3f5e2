/* See http_server.h. */
#include "http_server.h"
#include "support.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"
#define READY_LINE_MAX 256

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The number after "key=" in line, or -1. */
static int port_after(const char *line, const char *key) {
    const char *p = strstr(line, key);
    if (p == NULL)
        return -1;
    char *end;
    long v = strtol(p + strlen(key), &end, 10);
    return end != p + strlen(key) && v > 0 && v < 65536 ? (int)v : -1;
}

/* Reads the first line from fd within timeout_ms. */
static int read_line(int fd, char *buf, size_t cap, uint64_t timeout_ms) {
    size_t len = 0;
    uint64_t deadline = now_ms() + timeout_ms;
    while (len + 1 < cap) {
        uint64_t now = now_ms();
        if (now >= deadline)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)(deadline - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        if (strchr(buf, '\n') != NULL)
            return 0;
    }
    return -1;
}

int wdt_http_server_start(wdt_http_server *s) {
    char script[4096];
    char line[READY_LINE_MAX];
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    memset(s, 0, sizeof *s);
    s->stdin_fd = -1;
    snprintf(script, sizeof script, "%s/tests/support/http_fault_server.py", wdt_source_dir());
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        perror("http_server: pipe");
        goto fail;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("http_server: fork");
        goto fail;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec. */
        char *const argv[] = {"python3", script, NULL};
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
            _exit(127);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127); /* the test died before prctl took effect */
        execv(PYTHON, argv);
        _exit(127);
    }
    s->pid = pid;
    close(in[0]);
    close(out[1]);
    in[0] = out[1] = -1;
    s->stdin_fd = in[1];
    in[1] = -1;
    if (read_line(out[0], line, sizeof line, WDT_HTTP_READY_TIMEOUT_MS) != 0 ||
        strncmp(line, "READY ", 6) != 0) {
        fprintf(stderr, "http_server: %s did not become ready\n", script);
        goto fail;
    }
    s->http_port = port_after(line, "http=");
    s->noread_port = port_after(line, "noread=");
    s->blackhole_port = port_after(line, "blackhole=");
    if (s->http_port < 0 || s->noread_port < 0 || s->blackhole_port < 0) {
        fprintf(stderr, "http_server: bad ready line: %s", line);
        goto fail;
    }
    close(out[0]);
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
    }
    wdt_http_server_stop(s);
    return -1;
}

void wdt_http_server_stop(wdt_http_server *s) {
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        s->pid = 0;
    }
    if (s->stdin_fd >= 0) {
        close(s->stdin_fd);
        s->stdin_fd = -1;
    }
}

const char *wdt_http_url(char *buf, unsigned long buflen, int port, const char *path) {
    snprintf(buf, buflen, "http://127.0.0.1:%d%s", port, path);
    return buf;
}

void wdt_http_on_resp(void *arg, const wd_http_resp *r) {
    wdt_http_result *res = arg;
    res->calls++;
    res->r = *r;
    res->r.body = NULL;
    res->r.content_type = NULL;
    size_t n = r->body_len < sizeof res->body - 1 ? r->body_len : sizeof res->body - 1;
    if (r->body != NULL)
        memcpy(res->body, r->body, n);
    res->body[n] = '\0';
    snprintf(res->content_type, sizeof res->content_type, "%s",
             r->content_type ? r->content_type : "");
    res->done_ns = wd_clock_mono_ns();
}

/* wdt_run_until checks its predicate between UV_RUN_ONCE calls, but a
 * response that completes from curl's timer (the timers phase) leaves that
 * iteration blocked in poll until its deadline. A prepare handle runs right
 * before poll and stops the loop, which makes poll return at once. */
typedef struct {
    wdt_http_result *res;
    int expired;
} wait_ctx;

static void wait_prepare(uv_prepare_t *p) {
    wait_ctx *w = p->data;
    if (w->res->calls > 0)
        uv_stop(p->loop);
}

static void wait_deadline(uv_timer_t *t) {
    wait_ctx *w = t->data;
    w->expired = 1;
    uv_stop(t->loop);
}

int wdt_http_wait(uv_loop_t *loop, wdt_http_result *res, uint64_t timeout_ms) {
    wait_ctx w = {.res = res, .expired = 0};
    uv_prepare_t prep;
    uv_timer_t deadline;
    uv_prepare_init(loop, &prep);
    prep.data = &w;
    uv_prepare_start(&prep, wait_prepare);
    uv_timer_init(loop, &deadline);
    deadline.data = &w;
    uv_timer_start(&deadline, wait_deadline, timeout_ms, 0);
    while (res->calls == 0 && !w.expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_prepare_stop(&prep);
    uv_timer_stop(&deadline);
    uv_close((uv_handle_t *)&prep, NULL);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return res->calls > 0;
}

static int closed_flag(void *arg) { return *(int *)arg; }
static void set_flag(void *arg) { *(int *)arg = 1; }

int wdt_http_warm_up(const wdt_http_server *s) {
    uv_loop_t loop;
    wd_http *h = NULL;
    wdt_http_result res;
    char url[128];
    int closed = 0, ok = 0;
    if (uv_loop_init(&loop) != 0)
        return -1;
    if (wd_http_new(&loop, NULL, &h, NULL, 0) == 0) {
        wd_http_req req = {.url = wdt_http_url(url, sizeof url, s->http_port, "/ok")};
        memset(&res, 0, sizeof res);
        if (wd_http_request(h, &req, wdt_http_on_resp, &res, NULL, 0) == 0)
            ok = wdt_http_wait(&loop, &res, 30000) && res.r.status == 200;
        wd_http_close(h, set_flag, &closed);
        wdt_run_until(&loop, closed_flag, &closed, 30000);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&loop) != 0)
        ok = 0;
    return ok ? 0 : -1;
}
