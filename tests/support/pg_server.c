/* See pg_server.h. */
#include "pg_server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <ftw.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#define PG_BIN "/usr/lib/postgresql/15/bin"
#define ARGV_MAX 24
#define CMD_TIMEOUT_MS 90000 /* pg_ctl's own -t is 60 s */
#define SERVERS_MAX 4

static wdt_pg_server *registered[SERVERS_MAX];
static int n_registered;

/* argv with "runuser -u postgres --" in front when we are root. */
static void build_argv(const char **out, const char *const *cmd) {
    int n = 0;
    if (geteuid() == 0) {
        out[n++] = "runuser";
        out[n++] = "-u";
        out[n++] = "postgres";
        out[n++] = "--";
    }
    for (int i = 0; cmd[i] != NULL && n < ARGV_MAX - 1; i++)
        out[n++] = cmd[i];
    out[n] = NULL;
}

static int run_blocking(const char *const *argv) {
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0)
            dup2(fd, STDOUT_FILENO);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

typedef struct {
    bool exited;
    int64_t status;
} spawn_state;

static void on_exit_cb(uv_process_t *p, int64_t status, int sig) {
    spawn_state *st = p->data;
    st->exited = true;
    st->status = sig ? -1 : status;
    uv_close((uv_handle_t *)p, NULL);
}

static int exited(void *arg) { return ((spawn_state *)arg)->exited; }

static int run(uv_loop_t *loop, const char *const *cmd) {
    const char *argv[ARGV_MAX];
    build_argv(argv, cmd);
    if (loop == NULL)
        return run_blocking(argv);
    uv_process_t proc;
    spawn_state st = {0};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE}, {.flags = UV_IGNORE}, {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t o = {.exit_cb = on_exit_cb, .file = argv[0], .args = (char **)argv,
                              .stdio_count = 3, .stdio = stdio};
    proc.data = &st;
    if (uv_spawn(loop, &proc, &o) != 0) {
        fprintf(stderr, "pg_server: cannot run %s\n", argv[0]);
        return -1;
    }
    if (!wdt_run_until(loop, exited, &st, CMD_TIMEOUT_MS)) {
        uv_process_kill(&proc, SIGKILL);
        wdt_run_until(loop, exited, &st, 5000);
        return -1;
    }
    uv_run(loop, UV_RUN_NOWAIT); /* the process handle's close */
    return st.status == 0 ? 0 : -1;
}

static void cleanup_all(void) {
    for (int i = 0; i < n_registered; i++)
        wdt_pg_cleanup(registered[i]);
}

int wdt_pg_init(wdt_pg_server *s) {
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/var/tmp/warden-pgtest.XXXXXX");
    if (mkdtemp(s->dir) == NULL) {
        perror("pg_server: mkdtemp");
        s->dir[0] = '\0';
        return -1;
    }
    if (n_registered < SERVERS_MAX) {
        if (n_registered == 0)
            atexit(cleanup_all);
        registered[n_registered++] = s;
    }
    snprintf(s->data, sizeof s->data, "%s/data", s->dir);
    snprintf(s->log, sizeof s->log, "%s/pg.log", s->dir);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (pw == NULL || chown(s->dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "pg_server: no postgres user to own %s\n", s->dir);
            return -1;
        }
    }
    const char *const initdb[] = {PG_BIN "/initdb", "-D",     s->data, "-U", "warden",
                                  "--auth=trust",   "-E",     "UTF8",  "-N", NULL};
    if (run(NULL, initdb) != 0) {
        fprintf(stderr, "pg_server: initdb into %s failed\n", s->data);
        return -1;
    }
    s->port = wdt_free_tcp_port();
    return s->port > 0 ? 0 : -1;
}

int wdt_pg_start(wdt_pg_server *s, uv_loop_t *loop) {
    char opts[WDT_PG_PATH_MAX + 128];
    snprintf(opts, sizeof opts,
             "-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c max_connections=50",
             s->port, s->dir);
    const char *const cmd[] = {PG_BIN "/pg_ctl", "-D", s->data, "-l", s->log, "-w", "-t", "60",
                               "-o", opts, "start", NULL};
    if (run(loop, cmd) != 0) {
        fprintf(stderr, "pg_server: pg_ctl start failed (see %s)\n", s->log);
        return -1;
    }
    s->running = true;
    return 0;
}

int wdt_pg_stop(wdt_pg_server *s, uv_loop_t *loop, const char *mode) {
    const char *const cmd[] = {PG_BIN "/pg_ctl", "-D", s->data, "-m", mode, "-w", "-t", "60",
                               "stop", NULL};
    if (run(loop, cmd) != 0) {
        fprintf(stderr, "pg_server: pg_ctl stop -m %s failed\n", mode);
        return -1;
    }
    s->running = false;
    return 0;
}

int wdt_pg_restart(wdt_pg_server *s, uv_loop_t *loop, const char *mode) {
    return wdt_pg_stop(s, loop, mode) == 0 ? wdt_pg_start(s, loop) : -1;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void wdt_pg_cleanup(wdt_pg_server *s) {
    if (s->dir[0] == '\0')
        return;
    if (s->running || wdt_pg_postmaster_pid(s) > 0)
        wdt_pg_stop(s, NULL, "immediate");
    s->running = false;
    nftw(s->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    s->dir[0] = '\0';
}

void wdt_pg_dsn(const wdt_pg_server *s, char *buf, size_t buflen) {
    snprintf(buf, buflen, "host=127.0.0.1 port=%d user=warden dbname=postgres sslmode=disable",
             s->port);
}

int wdt_pg_postmaster_pid(const wdt_pg_server *s) {
    char path[WDT_PG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/postmaster.pid", s->data);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[32] = "";
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    if (ok == NULL)
        return -1;
    char *end;
    long pid = strtol(line, &end, 10);
    return end != line && pid > 0 ? (int)pid : -1;
}
