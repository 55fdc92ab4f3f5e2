/* The HTTP fault server (tests/support/http_fault_server.py) as a child
 * process of a C test: started with fork + exec of /usr/bin/python3, ready
 * once it prints its ports, killed and reaped by wdt_http_server_stop().
 *
 * The child cannot outlive the test even when the test crashes or a cmocka
 * assertion skips the teardown: it gets PR_SET_PDEATHSIG(SIGKILL), and it
 * exits by itself when its stdin (a pipe the test holds) reaches EOF. */
#ifndef WDT_HTTP_SERVER_H
#define WDT_HTTP_SERVER_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "http.h"

#define WDT_HTTP_READY_TIMEOUT_MS 15000

typedef struct {
    pid_t pid;           /* 0 when not running */
    int stdin_fd;        /* write end of the child's stdin; -1 when closed */
    int http_port;       /* HTTP/1.1 routes: /ok /status/N /429 /hang ... */
    int noread_port;     /* accepts and never reads */
    int blackhole_port;  /* never accepts: connects hang */
} wdt_http_server;

/* Starts the server and waits until it is ready. Returns 0, or -1 (with a
 * line on stderr) when it could not start; then nothing is left running. */
int wdt_http_server_start(wdt_http_server *s);

/* Kills (SIGKILL) and reaps the server. Safe on a server that is not
 * running, and safe to call twice. */
void wdt_http_server_stop(wdt_http_server *s);

/* One GET /ok through a throwaway client on its own loop. Valgrind
 * translates code the first time it runs, which makes a process's first
 * request through libcurl take a few hundred ms of CPU; tests that measure
 * loop lateness run this first so that they measure the client, not that.
 * Returns 0 or -1. */
int wdt_http_warm_up(const wdt_http_server *s);

/* "http://127.0.0.1:PORT" + path into buf; returns buf. */
const char *wdt_http_url(char *buf, unsigned long buflen, int port, const char *path);

/* One response kept past its callback (whose body pointer dies with it). */
#define WDT_HTTP_BODY_KEEP 8192
typedef struct {
    int calls;                      /* how many times the callback ran */
    wd_http_resp r;                 /* r.body and r.content_type are NULL */
    char body[WDT_HTTP_BODY_KEEP];  /* the first bytes of the body, NUL-terminated */
    char content_type[128];
    uint64_t done_ns;               /* wd_clock_mono_ns() at the callback */
} wdt_http_result;

/* A wd_http_cb that fills the wdt_http_result passed as arg. */
void wdt_http_on_resp(void *arg, const wd_http_resp *r);
/* Runs loop until res->calls > 0 or timeout_ms; returns whether it did. */
int wdt_http_wait(uv_loop_t *loop, wdt_http_result *res, uint64_t timeout_ms);

#endif
