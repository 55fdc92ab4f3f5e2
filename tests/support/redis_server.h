/* A private redis-server for tests that kill, stop or restart it (tests
 * run in parallel and must not do that to the suite's shared server). It
 * runs from PATH in a mkdtemp directory on loopback, without persistence,
 * and dies with the test (PR_SET_PDEATHSIG). */
#ifndef WDT_REDIS_SERVER_H
#define WDT_REDIS_SERVER_H

#include <sys/types.h>

#define WDT_REDIS_DIR_MAX 64

typedef struct {
    int port;
    pid_t pid; /* 0 when not running */
    char dir[WDT_REDIS_DIR_MAX];
} wdt_redis_server;

/* Starts redis-server on port (0: a free one) and waits until it answers
 * PING (up to 5 s; this blocks, so call it outside a timed part). extra is
 * NULL or one more "--option value" pair as two strings, e.g.
 * {"--requirepass", "secret"}. Returns 0 or -1. */
int wdt_redis_server_start(wdt_redis_server *s, int port, const char *const extra[2]);
/* Only forks and execs on the same port and dir again, without waiting:
 * for a restart while a loop is being timed. Returns 0 or -1. */
int wdt_redis_server_spawn(wdt_redis_server *s);
/* Sends sig (SIGKILL, SIGSTOP, SIGCONT...); SIGKILL and SIGTERM also reap. */
int wdt_redis_server_signal(wdt_redis_server *s, int sig);
/* Stops it (SIGKILL after SIGCONT, reaped) and removes the directory. */
void wdt_redis_server_stop(wdt_redis_server *s);

#endif
