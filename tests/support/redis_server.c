/* See redis_server.h. */
#include "redis_server.h"
#include "support.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WDT_REDIS_READY_MS 5000
#define WDT_REDIS_POLL_MS 20
#define WDT_REDIS_ARG_MAX 32

static char extra_opt[2][128];
static int have_extra;

int wdt_redis_server_spawn(wdt_redis_server *s) {
    char port[16], log[WDT_REDIS_DIR_MAX + 16];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(log, sizeof log, "%s/redis.log", s->dir);
    const char *argv[WDT_REDIS_ARG_MAX] = {"redis-server", "--bind", "127.0.0.1", "--port", port,
                                           "--dir", s->dir, "--save", "", "--appendonly", "no",
                                           "--logfile", log};
    int argc = 13;
    if (have_extra) {
        argv[argc++] = extra_opt[0];
        argv[argc++] = extra_opt[1];
    }
    argv[argc] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    return 0;
}

int wdt_redis_server_start(wdt_redis_server *s, int port, const char *const extra[2]) {
    if (s->dir[0] == '\0') {
        snprintf(s->dir, sizeof s->dir, "/tmp/wdt-redis.XXXXXX");
        if (!mkdtemp(s->dir))
            return -1;
    }
    have_extra = extra != NULL;
    if (extra) {
        snprintf(extra_opt[0], sizeof extra_opt[0], "%s", extra[0]);
        snprintf(extra_opt[1], sizeof extra_opt[1], "%s", extra[1]);
    }
    s->port = port > 0 ? port : wdt_free_tcp_port();
    if (s->port <= 0 || wdt_redis_server_spawn(s) != 0)
        return -1;
    for (int waited = 0; waited < WDT_REDIS_READY_MS; waited += WDT_REDIS_POLL_MS) {
        struct timeval tv = {.tv_sec = 1};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            /* With requirepass, NOAUTH also means it is up. */
            int up = r != NULL;
            freeReplyObject(r);
            redisFree(c);
            if (up)
                return 0;
        } else if (c) {
            redisFree(c);
        }
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return -1;
        }
        struct timespec ts = {0, WDT_REDIS_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return -1;
}

int wdt_redis_server_signal(wdt_redis_server *s, int sig) {
    if (s->pid <= 0)
        return -1;
    if (kill(s->pid, sig) != 0)
        return -1;
    if (sig == SIGKILL || sig == SIGTERM) {
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    return 0;
}

void wdt_redis_server_stop(wdt_redis_server *s) {
    if (s->pid > 0) {
        kill(s->pid, SIGCONT);
        wdt_redis_server_signal(s, SIGKILL);
    }
    if (s->dir[0]) {
        char path[WDT_REDIS_DIR_MAX + 16];
        snprintf(path, sizeof path, "%s/redis.log", s->dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/dump.rdb", s->dir);
        unlink(path);
        rmdir(s->dir);
        s->dir[0] = '\0';
    }
}
