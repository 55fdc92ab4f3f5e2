/* Process set-up for a supervised child, shared by the supervisor's spawn
 * path (fork, set-up, one exec) and `warden exec` (set-up, then exec in the
 * same process: chain-loading, like s6-softlimit). Everything that may
 * allocate or take a lock (user look-up, PATH search, argv/envp) is prepared
 * before fork; the child runs only async-signal-safe calls. */
#ifndef WD_SPAWN_H
#define WD_SPAWN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SPAWN_PATH_MAX 4096

typedef struct {
    char path[SPAWN_PATH_MAX]; /* resolved executable */
    char *const *argv;
    char *const *envp;
    const char *directory; /* NULL or "" = keep */
    bool set_ids;
    uid_t uid;
    gid_t gid;
    uint64_t limit_as;     /* 0 = unlimited (left as is) */
    uint64_t limit_nofile; /* 0 = inherit */
    bool set_core;
    uint64_t limit_core;
    bool new_session;      /* setsid(): own session and process group */
    bool pdeathsig;        /* SIGKILL when the supervisor dies */
    pid_t parent_pid;      /* for the PR_SET_PDEATHSIG race check */
    bool no_new_privs;
    int umask_val;         /* -1 = keep */
    int stdin_fd, stdout_fd, stderr_fd; /* -1 = keep */
} spawn_opts;

/* Looks up a user (and optional group) for set_ids. Returns 0 or WD_ENOTFOUND. */
int spawn_resolve_user(const char *user, const char *group, spawn_opts *o, char *err,
                       size_t errlen);
/* Finds argv0 in PATH (from envp, or a default) unless it contains '/'. */
int spawn_resolve_path(const char *argv0, char *const *envp, char *out, size_t outlen);

/* What a limit_nofile of want will really be in the child: root may go up
 * to fs.nr_open, anyone else to their hard limit. Not async-signal-safe:
 * for a warning before fork. */
uint64_t spawn_nofile_granted(uint64_t want);

/* Applies the set-up in the calling process. Async-signal-safe. Returns 0, or
 * -errno with *step naming what failed. */
int spawn_apply(const spawn_opts *o, const char **step);

/* fork + spawn_apply + execve. On success *pid is the child. An exec failure
 * in the child is reported back through a close-on-exec pipe, so it returns
 * an error here with err naming the step ("exec: No such file or directory"). */
int spawn_process(const spawn_opts *o, pid_t *pid, char *err, size_t errlen);

#endif
