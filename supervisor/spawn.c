#include "spawn.h"
#include "wd_error.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SPAWN_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SPAWN_PW_BUF 16384

int spawn_resolve_user(const char *user, const char *group, spawn_opts *o, char *err,
                       size_t errlen) {
    char buf[SPAWN_PW_BUF];
    if (user && *user) {
        struct passwd pw, *res = NULL;
        if (getpwnam_r(user, &pw, buf, sizeof buf, &res) != 0 || !res) {
            snprintf(err, errlen, "unknown user '%s'", user);
            return WD_ENOTFOUND;
        }
        o->uid = pw.pw_uid;
        o->gid = pw.pw_gid;
        o->set_ids = true;
    }
    if (group && *group) {
        struct group gr, *res = NULL;
        if (getgrnam_r(group, &gr, buf, sizeof buf, &res) != 0 || !res) {
            snprintf(err, errlen, "unknown group '%s'", group);
            return WD_ENOTFOUND;
        }
        if (!o->set_ids)
            o->uid = getuid();
        o->gid = gr.gr_gid;
        o->set_ids = true;
    }
    return 0;
}

int spawn_resolve_path(const char *argv0, char *const *envp, char *out, size_t outlen) {
    if (strchr(argv0, '/')) {
        if ((size_t)snprintf(out, outlen, "%s", argv0) >= outlen)
            return WD_ETOOBIG;
        return 0;
    }
    const char *path = SPAWN_DEFAULT_PATH;
    for (char *const *e = envp; e && *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            path = *e + 5;
    const char *p = path;
    while (*p) {
        const char *colon = strchr(p, ':');
        size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
        int n = snprintf(out, outlen, "%.*s/%s", (int)dlen, dlen ? p : ".", argv0);
        if (n > 0 && (size_t)n < outlen && access(out, X_OK) == 0)
            return 0;
        if (!colon)
            break;
        p = colon + 1;
    }
    return WD_ENOTFOUND;
}

static int spawn_limit(int resource, uint64_t v) {
    struct rlimit rl = {.rlim_cur = (rlim_t)v, .rlim_max = (rlim_t)v};
    struct rlimit cur;
    /* With CAP_SYS_RESOURCE the hard limit may go up; without, only down,
     * so the value is then capped at the hard limit (for files the caller
     * asked spawn_nofile_granted first and warned). */
    if (setrlimit(resource, &rl) == 0)
        return 0;
    if (getrlimit(resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY && rl.rlim_max > cur.rlim_max)
        rl.rlim_max = cur.rlim_max;
    if (rl.rlim_cur > rl.rlim_max)
        rl.rlim_cur = rl.rlim_max;
    return setrlimit(resource, &rl);
}

uint64_t spawn_nofile_granted(uint64_t want) {
    struct rlimit cur;
    if (getrlimit(RLIMIT_NOFILE, &cur) != 0 || cur.rlim_max == RLIM_INFINITY ||
        want <= (uint64_t)cur.rlim_max)
        return want;
    /* Raising a hard limit needs CAP_SYS_RESOURCE (root in a container may
     * lack it) and stops at fs.nr_open: try it on ourselves, then put our
     * own limit back (lowering is always allowed). */
    uint64_t try = want;
    FILE *f = fopen("/proc/sys/fs/nr_open", "re");
    unsigned long long nr_open;
    if (f != NULL) {
        if (fscanf(f, "%llu", &nr_open) == 1 && try > nr_open)
            try = nr_open;
        fclose(f);
    }
    struct rlimit up = {.rlim_cur = cur.rlim_cur, .rlim_max = (rlim_t)try};
    if (try > (uint64_t)cur.rlim_max && setrlimit(RLIMIT_NOFILE, &up) == 0) {
        setrlimit(RLIMIT_NOFILE, &cur);
        return try;
    }
    return (uint64_t)cur.rlim_max;
}

int spawn_apply(const spawn_opts *o, const char **step) {
    /* Signals: the supervisor ignores SIGPIPE and libuv may have blocked
     * some; a fresh program starts with defaults and an empty mask. Caught
     * handlers are reset by execve itself. */
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (o->new_session && setsid() < 0) {
        *step = "setsid";
        return -errno;
    }
    if (o->pdeathsig) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) {
            *step = "prctl(PR_SET_PDEATHSIG)";
            return -errno;
        }
        /* The parent may have died before the prctl: then no signal comes. */
        if (getppid() != o->parent_pid) {
            *step = "parent exited";
            return -ESRCH;
        }
    }
    if (o->stdin_fd >= 0 && dup2(o->stdin_fd, 0) < 0) {
        *step = "dup2(stdin)";
        return -errno;
    }
    if (o->stdout_fd >= 0 && dup2(o->stdout_fd, 1) < 0) {
        *step = "dup2(stdout)";
        return -errno;
    }
    if (o->stderr_fd >= 0 && dup2(o->stderr_fd, 2) < 0) {
        *step = "dup2(stderr)";
        return -errno;
    }
    if (o->limit_as && spawn_limit(RLIMIT_AS, o->limit_as) < 0) {
        *step = "setrlimit(RLIMIT_AS)";
        return -errno;
    }
    if (o->limit_nofile && spawn_limit(RLIMIT_NOFILE, o->limit_nofile) < 0) {
        *step = "setrlimit(RLIMIT_NOFILE)";
        return -errno;
    }
    if (o->set_core && spawn_limit(RLIMIT_CORE, o->limit_core) < 0) {
        *step = "setrlimit(RLIMIT_CORE)";
        return -errno;
    }
    if (o->umask_val >= 0)
        umask((mode_t)o->umask_val);
    if (o->directory && *o->directory && chdir(o->directory) < 0) {
        *step = "chdir";
        return -errno;
    }
    if (o->set_ids) {
        if (getuid() == 0 && setgroups(0, NULL) < 0) {
            *step = "setgroups";
            return -errno;
        }
        if (setgid(o->gid) < 0) {
            *step = "setgid";
            return -errno;
        }
        if (setuid(o->uid) < 0) {
            *step = "setuid";
            return -errno;
        }
    }
    if (o->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        *step = "prctl(PR_SET_NO_NEW_PRIVS)";
        return -errno;
    }
    return 0;
}

/* The child's report of a failed step: errno, then the step's name. */
typedef struct {
    int err;
    char step[60];
} spawn_report;

int spawn_process(const spawn_opts *o, pid_t *pid_out, char *err, size_t errlen) {
    int rep[2];
    if (pipe2(rep, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe2: %s", strerror(errno));
        return WD_ESYS;
    }
    /* vfork: the child borrows the parent's memory until it execs, so a
     * restart does not pay for copying the page tables of a process with
     * nng's threads (measured: ~2 ms per spawn with fork). The parent's
     * signal handlers must never run in the borrowed memory: all signals are
     * blocked across vfork, and the child resets every handler to SIG_DFL
     * before it unblocks them (spawn_apply). */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t pid = vfork();
    if (pid != 0)
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (pid < 0) {
        snprintf(err, errlen, "vfork: %s", strerror(errno));
        close(rep[0]);
        close(rep[1]);
        return WD_ESYS;
    }
    if (pid == 0) {
        const char *step = "exec";
        int rc = spawn_apply(o, &step);
        if (rc == 0) {
            /* Every descriptor the child should not keep is close-on-exec
             * except possibly some from libraries; close all but 0-2 and the
             * report pipe. */
            if (rep[1] > 3)
                close_range(3, (unsigned)rep[1] - 1, 0);
            close_range((unsigned)rep[1] + 1, ~0U, 0);
            execve(o->path, o->argv, o->envp);
            rc = -errno;
        }
        spawn_report r = {.err = -rc};
        size_t i = 0;
        for (; step[i] && i < sizeof r.step - 1; i++)
            r.step[i] = step[i];
        r.step[i] = '\0';
        ssize_t w = write(rep[1], &r, sizeof r);
        (void)w;
        _exit(127);
    }
    close(rep[1]);
    /* The child has exec'd or failed by now (vfork suspends us until then);
     * the report pipe says which. */
    spawn_report r;
    ssize_t n;
    do {
        n = read(rep[0], &r, sizeof r);
    } while (n < 0 && errno == EINTR);
    close(rep[0]);
    if (n == (ssize_t)sizeof r) {
        r.step[sizeof r.step - 1] = '\0';
        snprintf(err, errlen, "%s: %s", r.step, strerror(r.err));
        int status;
        waitpid(pid, &status, 0);
        return WD_ESYS;
    }
    *pid_out = pid;
    return 0;
}
