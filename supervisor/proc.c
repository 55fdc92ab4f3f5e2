/* A child's process: its environment and wiring, fork+exec through spawn.c,
 * the pidfd that reports its exit (no SIGCHLD handler, no PID-reuse race),
 * and its captured output. */
#include "sup.h"
#include "clock.h"
#include "log.h"
#include "spawn.h"
#include "wd_error.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define PROC_ENV_MAX (WD_CONF_ENV_MAX + 64)
#define PROC_ENV_ITEM_MAX (WD_CONF_PATH_MAX + 64)
#define PROC_OUT_LINE_MAX (1024 * 1024 + 512)

typedef struct {
    int n;
    char *ptrs[PROC_ENV_MAX + 1];
    char items[PROC_ENV_MAX][PROC_ENV_ITEM_MAX];
} proc_env;

static void env_set(proc_env *e, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets KEY=value, replacing an earlier KEY so later sources win. */
static void env_set(proc_env *e, const char *key, const char *fmt, ...) {
    size_t klen = strlen(key);
    int slot = e->n;
    for (int i = 0; i < e->n; i++)
        if (strncmp(e->items[i], key, klen) == 0 && e->items[i][klen] == '=')
            slot = i;
    if (slot == PROC_ENV_MAX)
        return;
    char *dst = e->items[slot];
    int n = snprintf(dst, PROC_ENV_ITEM_MAX, "%s=", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst + n, PROC_ENV_ITEM_MAX - (size_t)n, fmt, ap);
    va_end(ap);
    if (slot == e->n)
        e->n++;
}

static void env_put_raw(proc_env *e, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv || (size_t)(eq - kv) >= WD_CONF_NAME_MAX + 64)
        return;
    char key[WD_CONF_NAME_MAX + 64];
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = '\0';
    env_set(e, key, "%s", eq + 1);
}

/* A clean environment: a few basics from the supervisor's own, every
 * WARDEN_* override (so workers see the same config), the wiring, then the
 * program's own `environment` entries. */
static void proc_build_env(sup_child *c, proc_env *e) {
    sup *s = c->owner;
    static const char *const keep[] = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", NULL};
    e->n = 0;
    env_set(e, "PATH", "%s", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for (char **v = environ; v && *v; v++) {
        for (int k = 0; keep[k]; k++) {
            size_t kl = strlen(keep[k]);
            if (strncmp(*v, keep[k], kl) == 0 && (*v)[kl] == '=')
                env_put_raw(e, *v);
        }
        if (strncmp(*v, "WARDEN_", 7) == 0)
            env_put_raw(e, *v);
    }
    env_set(e, "WARDEN_NAME", "%s", c->conf->name);
    env_set(e, "WARDEN_CONFIG", "%s", s->config_path);
    env_set(e, "WARDEN_RUN_DIR", "%s", s->conf->run_dir);
    env_set(e, "WARDEN_LOG_LEVEL", "%s", wd_log_level_name((wd_log_level)s->conf->log_level));
    if (c->conf->is_worker) {
        env_set(e, "WARDEN_HEARTBEAT_URL", "%s", s->hb_url);
        env_set(e, "WARDEN_EVENTS_URL", "%s", s->events_url);
        env_set(e, "WARDEN_COMMAND_URL", "%s", c->cmd_url);
        env_set(e, "WARDEN_HEARTBEAT_INTERVAL_MS", "%llu",
                (unsigned long long)c->conf->heartbeat_interval_ms);
        /* The worker's own stop bound is the one after which we kill it. */
        env_set(e, "WARDEN_STOP_TIMEOUT_MS", "%llu",
                (unsigned long long)c->conf->stop_timeout_ms);
    }
    for (int i = 0; i < c->conf->n_env; i++)
        env_put_raw(e, c->conf->env[i]);
    for (int i = 0; i < e->n; i++)
        e->ptrs[i] = e->items[i];
    e->ptrs[e->n] = NULL;
}

static void proc_maybe_free(sup_proc *p) {
    if (p->open_handles > 0)
        return;
    sup_child *c = p->child;
    sup *s = c->owner;
    c->n_procs--;
    free(p);
    sup_child_maybe_free(c); /* may free c */
    sup_shutdown_step(s);
}

static void proc_handle_closed(void *owner) {
    sup_proc *p = owner;
    p->open_handles--;
    proc_maybe_free(p);
}

static void proc_poll_closed(uv_handle_t *h) { proc_handle_closed(h->data); }

/* A line of the process's output: into the child's ring and, stamped with
 * time, name and pid, to the supervisor's stdout. */
static void proc_on_line(void *owner, int stream, int pid, const char *line, size_t len,
                         bool truncated) {
    sup_proc *p = owner;
    sup_child *c = p->child;
    uint64_t now = wd_clock_real_ns();
    sup_logring_push(&c->ring, now, pid, stream, line, len, truncated);
    static char out[PROC_OUT_LINE_MAX];
    char ts[WD_TIME_STR_MAX];
    wd_clock_format(now, ts, sizeof ts);
    int hdr = snprintf(out, sizeof out, "%s %s[%d] %s: ", ts, c->conf->name, pid,
                       stream == 1 ? "stdout" : "stderr");
    if (hdr < 0)
        return;
    size_t pos = (size_t)hdr;
    size_t room = sizeof out - pos - sizeof SUP_LOG_TRUNC_MARK - 1;
    size_t copy = len < room ? len : room;
    memcpy(out + pos, line, copy);
    pos += copy;
    if (truncated || copy < len) {
        memcpy(out + pos, SUP_LOG_TRUNC_MARK, sizeof SUP_LOG_TRUNC_MARK - 1);
        pos += sizeof SUP_LOG_TRUNC_MARK - 1;
    }
    out[pos++] = '\n';
    ssize_t w = write(STDOUT_FILENO, out, pos);
    if (w < 0 || (size_t)w != pos)
        c->owner->log_lines_dropped++;
}

static void proc_describe_exit(sup_child *c, const siginfo_t *si) {
    if (si->si_code == CLD_EXITED) {
        c->last_exit_code = si->si_status;
        c->last_exit_signal = 0;
        snprintf(c->last_exit, sizeof c->last_exit, "exit %d", si->si_status);
    } else {
        c->last_exit_code = -1;
        c->last_exit_signal = si->si_status;
        snprintf(c->last_exit, sizeof c->last_exit, "signal %d (%s)%s", si->si_status,
                 wd_signal_name(si->si_status), si->si_code == CLD_DUMPED ? " core dumped" : "");
    }
    c->last_exit_real_ns = wd_clock_real_ns();
}

static void proc_on_exit(uv_poll_t *h, int status, int events) {
    sup_proc *p = h->data;
    if (p->exited)
        return;
    /* The leader is a zombie until reaped, so its pid still names its
     * process group: clean up anything it left in the group first. */
    kill(-p->pid, SIGKILL);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
        return; /* spurious wake-up */
    p->exited = true;
    uv_poll_stop(h);
    uv_close((uv_handle_t *)h, proc_poll_closed);
    close(p->pidfd);
    p->pidfd = -1;
    sup_child *c = p->child;
    proc_describe_exit(c, &si);
    wd_info("%s: pid %d exited: %s", c->conf->name, (int)p->pid, c->last_exit);
    sup_event_emit(c->owner, "exit", c->conf->name, "", "", c->last_exit);
    if (c->proc == p) {
        c->proc = NULL;
        c->pid = 0;
        sup_fsm_dispatch(c, SUP_EV_EXIT);
    }
}

int sup_child_spawn(sup_child *c, char *err, size_t errlen) {
    sup *s = c->owner;
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, devnull = -1;
    proc_env *env = NULL;
    sup_proc *p = NULL;
    int rc = WD_ESYS;
    if (c->next_conf) {
        free(c->conf);
        c->conf = c->next_conf;
        c->next_conf = NULL;
    }
    spawn_opts o = {
        .argv = c->conf->argv,
        .directory = c->conf->directory,
        .limit_as = c->conf->limit_memory,
        .limit_nofile = c->conf->limit_nofile,
        .set_core = true,
        .limit_core = c->conf->limit_core,
        .new_session = true,
        .pdeathsig = true,
        .parent_pid = getpid(),
        .no_new_privs = true,
        .umask_val = 022,
    };
    env = malloc(sizeof *env);
    p = calloc(1, sizeof *p);
    if (!env || !p) {
        snprintf(err, errlen, "out of memory");
        rc = WD_ENOMEM;
        goto fail;
    }
    proc_build_env(c, env);
    o.envp = env->ptrs;
    uint64_t nofile = o.limit_nofile ? spawn_nofile_granted(o.limit_nofile) : 0;
    if (nofile < o.limit_nofile)
        wd_warn("%s: limit_nofile %llu is more than warden may grant; the program gets %llu",
                c->conf->name, (unsigned long long)o.limit_nofile, (unsigned long long)nofile);
    o.limit_nofile = nofile;
    if ((rc = spawn_resolve_user(c->conf->user, c->conf->group, &o, err, errlen)) != 0)
        goto fail;
    if (spawn_resolve_path(c->conf->argv[0], o.envp, o.path, sizeof o.path) != 0) {
        snprintf(err, errlen, "command '%s' not found in PATH", c->conf->argv[0]);
        rc = WD_ENOTFOUND;
        goto fail;
    }
    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
        (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        rc = WD_ESYS;
        goto fail;
    }
    o.stdin_fd = devnull;
    o.stdout_fd = outp[1];
    o.stderr_fd = errp[1];
    c->spawn_ns = wd_clock_mono_ns();
    pid_t pid;
    if ((rc = spawn_process(&o, &pid, err, errlen)) != 0)
        goto fail;
    c->exec_ns = wd_clock_mono_ns();
    close(outp[1]);
    close(errp[1]);
    close(devnull);
    outp[1] = errp[1] = devnull = -1;

    p->child = c;
    p->pid = pid;
    /* Our unreaped child cannot lose its pid to another process, so opening
     * the pidfd after fork is race-free. */
    p->pidfd = pidfd_open(pid, 0);
    if (p->pidfd < 0) {
        snprintf(err, errlen, "pidfd_open: %s", strerror(errno));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        rc = WD_ESYS;
        goto fail;
    }
    c->n_procs++;
    uv_poll_init(s->loop, &p->exit_poll, p->pidfd);
    p->exit_poll.data = p;
    p->open_handles = 1;
    uv_poll_start(&p->exit_poll, UV_READABLE, proc_on_exit);
    size_t line_max = s->conf->log_line_max;
    if (sup_logcap_start(&p->out, s->loop, outp[0], 1, pid, line_max, proc_on_line,
                         proc_handle_closed, p) != WD_ENOMEM)
        p->open_handles++;
    if (sup_logcap_start(&p->err, s->loop, errp[0], 2, pid, line_max, proc_on_line,
                         proc_handle_closed, p) != WD_ENOMEM)
        p->open_handles++;
    c->proc = p;
    c->pid = pid;
    c->last_hb_ns = 0;
    free(env);
    wd_info("%s: started pid %d (%s)", c->conf->name, (int)pid, o.path);
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (outp[i] >= 0)
            close(outp[i]);
        if (errp[i] >= 0)
            close(errp[i]);
    }
    if (devnull >= 0)
        close(devnull);
    free(env);
    free(p);
    return rc;
}

int sup_child_signal(sup_child *c, int sig) {
    sup_proc *p = c->proc;
    if (!p || p->exited || p->pidfd < 0)
        return WD_ESTATE;
    if (pidfd_send_signal(p->pidfd, sig, NULL, 0) < 0)
        return WD_ESYS;
    /* SIGKILL also takes whatever the process started in its group. */
    if (sig == SIGKILL)
        kill(-p->pid, SIGKILL);
    return 0;
}

int sup_child_signal_group(sup_child *c, int sig) {
    sup_proc *p = c->proc;
    if (!p || p->exited || p->pidfd < 0)
        return WD_ESTATE;
    /* One signal to the group, the leader included: the leader is ours and
     * not reaped, so its pid still names its own group (setsid at spawn; a
     * session leader cannot leave it), and no other group can have that id.
     * Not pidfd + group: the leader would get it twice, and the worker
     * runtime takes a second SIGTERM as "exit now". */
    if (kill(-p->pid, sig) < 0)
        return WD_ESYS;
    return 0;
}
