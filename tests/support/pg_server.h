/* A private PostgreSQL cluster for tests that stop, restart or freeze the
 * server (tests run in parallel and must not do that to the suite's shared
 * server). initdb runs once per test binary, into a fresh directory under
 * /var/tmp (reachable by the postgres user: PostgreSQL refuses to run as
 * root, so as root every command runs through runuser -u postgres). The
 * server listens on 127.0.0.1 on a port from wdt_free_tcp_port(), the same
 * port across restarts.
 *
 * Commands that take time (pg_ctl start/stop) can run while a libuv loop
 * keeps turning: pass the loop and they run through uv_spawn while the loop
 * runs until they exit, so a lateness probe on that loop measures the client
 * under test, not the test's own waiting. With loop == NULL they block.
 *
 * Cleanup: wdt_pg_cleanup stops the server (immediate) and removes the
 * directory; wdt_pg_init also registers it with atexit, so a test binary
 * that fails half-way (cmocka goes on to the next test, then exits) leaves
 * nothing behind. */
#ifndef WDT_PG_SERVER_H
#define WDT_PG_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define WDT_PG_PATH_MAX 512

typedef struct {
    char dir[64];               /* the cluster's directory; "" before init */
    char data[WDT_PG_PATH_MAX]; /* dir/data */
    char log[WDT_PG_PATH_MAX];  /* dir/pg.log */
    int port;
    bool running;
} wdt_pg_server;

/* Creates the directory, runs initdb and picks the port. 0 or -1 (a message
 * on stderr). The server is not started. */
int wdt_pg_init(wdt_pg_server *s);
/* pg_ctl start -w, on the same port each time. 0 or -1. */
int wdt_pg_start(wdt_pg_server *s, uv_loop_t *loop);
/* pg_ctl stop -w -m mode ("fast" or "immediate"). 0 or -1. */
int wdt_pg_stop(wdt_pg_server *s, uv_loop_t *loop, const char *mode);
int wdt_pg_restart(wdt_pg_server *s, uv_loop_t *loop, const char *mode);
/* Stops the server if it runs and removes the directory; safe to repeat. */
void wdt_pg_cleanup(wdt_pg_server *s);
/* "host=127.0.0.1 port=P user=warden dbname=postgres sslmode=disable" */
void wdt_pg_dsn(const wdt_pg_server *s, char *buf, size_t buflen);
/* The postmaster's pid from postmaster.pid, or -1. */
int wdt_pg_postmaster_pid(const wdt_pg_server *s);

#endif
