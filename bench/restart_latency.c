/* bench/restart_latency: how long the supervisor takes to replace a worker
 * killed with SIGKILL, beside the floor of the same machine in the same run.
 *
 * The bench starts the real `warden` with RL_WORKERS test workers, then, one
 * at a time and round robin, SIGKILLs a worker that has lived past
 * min_uptime (so the supervisor restarts it at once, without backoff) and
 * times from just before kill(2) to the supervisor's events for that worker:
 *   exit            the supervisor saw the death (pidfd readable, reaped)
 *   state STARTING  the replacement's exec succeeded (spawn returns after exec)
 *   state RUNNING   the replacement's READY arrived
 * Those times come from the envelope's ts_ns, the supervisor's own realtime
 * stamp, against a CLOCK_REALTIME reading taken right before kill(2): the
 * same kernel clock on both sides, and it leaves out how long the event takes
 * to reach us.
 *
 * After each kill the bench measures the floor: it fork+execs the same worker
 * binary itself, with the wiring a worker needs, and times from just before
 * fork(2) to exec (a close-on-exec pipe closing) and to receipt of READY on
 * its own PULL socket. The floor therefore includes the same worker -> nng ->
 * receiver hop that the supervisor's RUNNING stamp includes. Kills and floor
 * samples alternate so machine noise hits both alike.
 *
 * Last, the supervisor sits idle with its workers heartbeating and the bench
 * reads its RSS and CPU time from /proc.
 *
 * Output: human-readable lines, then one JSON line of every figure. Exit 0 on
 * success, 1 on a failure (with the reason on stderr), 2 on a usage error.
 * nng is not fork-safe: every fork here execs at once, with only
 * async-signal-safe calls in between. */
#include "bus.h"
#include "proto.h"
#include "wd_error.h"
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pubsub0/sub.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RL_PROG "restart_latency"
#define RL_WORKERS 4
#define RL_KILLS_DEFAULT 200
#define RL_KILLS_MAX 100000
#define RL_WARMUP_KILLS RL_WORKERS /* one per worker: caches warm, SUB attached */
#define RL_IDLE_DEFAULT_S 60
#define RL_IDLE_MAX_S 86400
#define RL_MIN_UPTIME_DEFAULT_MS 300
#define RL_MIN_UPTIME_MAX_MS 60000
#define RL_UPTIME_MARGIN_MS 50 /* a victim lives this much past min_uptime */
#define RL_SETTLE_MS 50        /* quiet before every sample, kill or floor alike */
#define RL_HB_INTERVAL_MS 250
#define RL_HB_TIMEOUT_MS 2000
#define RL_START_TIMEOUT_MS 10000 /* warden up and all workers RUNNING */
#define RL_SAMPLE_TIMEOUT_MS 5000 /* one kill or floor sample */
#define RL_STOP_TIMEOUT_MS 15000  /* warden's exit after SIGTERM */
#define RL_CTL_TIMEOUT_MS 2000
#define RL_POLL_MS 20            /* retry period while waiting for warden */
#define RL_IDLE_TICK_MS 1000     /* RSS sampling period while idle */
#define RL_CLOCK_SLACK_NS 100000 /* realtime vs monotonic disagreement allowed */

#define RL_PATH_MAX 4096
#define RL_URL_MAX (RL_PATH_MAX + 16)
#define RL_SUN_PATH_MAX 107                   /* sizeof sockaddr_un.sun_path - 1 */
#define RL_LONGEST_SOCK "/run/heartbeat.sock" /* the longest socket path we make */
#define RL_ENV_MAX 16
#define RL_ENV_ITEM_MAX (RL_URL_MAX + 64)
#define RL_NAME_MAX 15
#define RL_ERR_MAX 512
#define RL_PROC_FILE_MAX 4096 /* /proc/PID/stat and /proc/PID/status */
#define RL_LOG_TAIL_MAX 4096  /* warden's stderr shown on failure */
#define RL_NFTW_FDS 16

#define NS_PER_MS 1000000ULL
#define NS_PER_S 1000000000ULL

typedef struct {
    char name[RL_NAME_MAX + 1];
    pid_t pid;
    uint64_t up_real_ns; /* when it was last seen RUNNING (supervisor's stamp) */
} rl_worker;

/* One figure's samples, in milliseconds. */
typedef struct {
    double *v;
    size_t n;
} rl_series;

typedef struct {
    double median, p90, p99, max;
} rl_stats;

/* The figures. A restart's three steps add up to kill -> READY, and the
 * floor's three steps to its kill+reap then fork -> READY, which makes the
 * overhead easy to place. */
typedef enum {
    S_READY,            /* kill -> RUNNING event */
    S_EXEC,             /* kill -> STARTING event */
    S_FLOOR_READY,      /* fork -> READY received */
    S_FLOOR_FULL,       /* S_FLOOR_REAP + S_FLOOR_READY of the same sample */
    S_EXIT,             /* kill -> exit event */
    S_SPAWN,            /* exit event -> STARTING event */
    S_EXEC_READY,       /* STARTING event -> RUNNING event */
    S_FLOOR_EXEC,       /* fork -> exec */
    S_FLOOR_EXEC_READY, /* exec -> READY received */
    S_FLOOR_REAP,       /* kill -> reaped, of the floor's worker */
    S_COUNT
} rl_series_id;

static const struct {
    const char *key, *label;
} series_info[S_COUNT] = {
    [S_READY] = {"restart_to_ready_ms", "restart: kill -> READY"},
    [S_EXEC] = {"restart_to_exec_ms", "restart: kill -> exec'd"},
    [S_FLOOR_READY] = {"floor_fork_exec_ready_ms", "floor: fork -> READY"},
    [S_FLOOR_FULL] = {"floor_reap_fork_ready_ms", "floor: kill -> reaped, fork -> READY"},
    [S_EXIT] = {"kill_to_exit_seen_ms", "  step: kill -> exit seen"},
    [S_SPAWN] = {"exit_seen_to_exec_ms", "  step: exit seen -> exec'd"},
    [S_EXEC_READY] = {"exec_to_ready_ms", "  step: exec'd -> READY"},
    [S_FLOOR_EXEC] = {"floor_fork_exec_ms", "  floor step: fork -> exec'd"},
    [S_FLOOR_EXEC_READY] = {"floor_exec_to_ready_ms", "  floor step: exec'd -> READY"},
    [S_FLOOR_REAP] = {"floor_kill_to_reaped_ms", "  floor step: kill -> reaped"},
};

typedef struct {
    /* options */
    uint64_t kills, idle_s, min_uptime_ms;
    bool keep;
    char bin_dir[RL_PATH_MAX];
    /* paths */
    char tmp[RL_PATH_MAX], run_dir[RL_PATH_MAX], conf_path[RL_PATH_MAX];
    char warden_log[RL_PATH_MAX], warden_bin[RL_PATH_MAX], worker_bin[RL_PATH_MAX];
    char ctl_url[RL_URL_MAX], events_url[RL_URL_MAX];
    char floor_hb_url[RL_URL_MAX], floor_cmd_url[RL_URL_MAX];
    /* processes and sockets */
    pid_t warden_pid;
    bool sub_open, pull_open;
    nng_socket sub, pull;
    rl_worker w[RL_WORKERS];
    uint64_t ctl_seq;
    /* results */
    rl_series s[S_COUNT];
    uint64_t stray_events; /* events we did not cause, outside the idle period */
    uint64_t rss_before_kb, rss_idle_kb, rss_idle_max_kb;
    double idle_cpu_s, idle_worker_cpu_s;
    uint64_t idle_events;
    double load_start, load_end; /* 1-minute load average: how shared the machine was */
} rl_bench;

static volatile sig_atomic_t rl_interrupted;

static void rl_on_signal(int sig) {
    (void)sig;
    rl_interrupted = 1;
}

/* ---- small helpers ---- */

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(uint64_t ms) {
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !rl_interrupted)
        ;
}

static double ns_to_ms(uint64_t ns) { return (double)ns / (double)NS_PER_MS; }

/* Decimal whole number in [min, max], nothing else in the string. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
    char *end;
    if (s == NULL || s[0] < '0' || s[0] > '9')
        return WD_EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v < min || v > max)
        return WD_ERANGE;
    *out = v;
    return 0;
}

/* snprintf that reports truncation instead of hiding it. */
static int fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fmt(char *buf, size_t len, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(buf, len, f, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= len) ? WD_ETOOBIG : 0;
}

/* Error text: cut to the caller's buffer on purpose (messages are bounded,
 * paths in them may not be). */
static void set_err(char *err, size_t errlen, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(err, errlen, f, ap);
    va_end(ap);
}

static int series_init(rl_series *s, size_t cap) {
    s->n = 0;
    s->v = calloc(cap ? cap : 1, sizeof *s->v);
    return s->v ? 0 : WD_ENOMEM;
}

/* The caller sized every series for all its samples (series_init) and
 * checked that the stamps are in order. */
static void series_add(rl_series *s, uint64_t ns) { s->v[s->n++] = ns_to_ms(ns); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile q of sorted v by linear interpolation between closest ranks
 * (numpy's default), so the median of an even count is the mean of the
 * middle two. */
static double quantile(const double *v, size_t n, double q) {
    if (n == 0)
        return NAN;
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (v[hi] - v[lo]) * (pos - (double)lo);
}

static int series_stats(const rl_series *s, rl_stats *st) {
    double *v = malloc((s->n ? s->n : 1) * sizeof *v);
    if (v == NULL)
        return WD_ENOMEM;
    memcpy(v, s->v, s->n * sizeof *v);
    qsort(v, s->n, sizeof *v, cmp_double);
    st->median = quantile(v, s->n, 0.5);
    st->p90 = quantile(v, s->n, 0.9);
    st->p99 = quantile(v, s->n, 0.99);
    st->max = s->n ? v[s->n - 1] : NAN;
    free(v);
    return 0;
}

/* Milliseconds rounded to the microsecond: nobody reads nanoseconds here. */
static json_t *json_ms(double ms) { return json_real(round(ms * 1000.0) / 1000.0); }

static json_t *stats_json(const rl_stats *st) {
    return json_pack("{s:o,s:o,s:o,s:o}", "median", json_ms(st->median), "p90", json_ms(st->p90),
                     "p99", json_ms(st->p99), "max", json_ms(st->max));
}

/* ---- /proc ---- */

static int read_small_file(const char *path, char *buf, size_t len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return WD_ESYS;
    size_t off = 0;
    while (off + 1 < len) {
        ssize_t n = read(fd, buf + off, len - 1 - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    buf[off] = '\0';
    return off > 0 ? 0 : WD_EIO;
}

/* utime + stime of pid, in clock ticks. Fields are counted after the last
 * ')' because the command name may itself hold spaces and parentheses. */
static int proc_cpu_ticks(pid_t pid, uint64_t *ticks) {
    char path[64], buf[RL_PROC_FILE_MAX];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_small_file(path, buf, sizeof buf) != 0)
        return WD_ESYS;
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return WD_EPROTO;
    p++;
    /* After ')' come field 3 (state) onwards; utime is field 14, stime 15. */
    uint64_t sum = 0;
    for (int field = 3; field <= 15; field++) {
        while (*p == ' ')
            p++;
        char *end;
        if (field >= 14) {
            errno = 0;
            unsigned long long v = strtoull(p, &end, 10);
            if (end == p || errno != 0)
                return WD_EPROTO;
            sum += v;
        } else {
            end = strchr(p, ' ');
            if (end == NULL)
                return WD_EPROTO;
        }
        p = end;
    }
    *ticks = sum;
    return 0;
}

static int proc_rss_kb(pid_t pid, uint64_t *kb) {
    char path[64], buf[RL_PROC_FILE_MAX];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (read_small_file(path, buf, sizeof buf) != 0)
        return WD_ESYS;
    char *p = strstr(buf, "\nVmRSS:");
    if (p == NULL)
        return WD_ENOTFOUND;
    p += strlen("\nVmRSS:");
    while (*p == ' ' || *p == '\t')
        p++;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p || errno != 0)
        return WD_EPROTO;
    *kb = v;
    return 0;
}

/* The 1-minute load average, or NAN. */
static double loadavg_1m(void) {
    char buf[128];
    if (read_small_file("/proc/loadavg", buf, sizeof buf) != 0)
        return NAN;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    return (end == buf || errno != 0) ? NAN : v;
}

/* ---- set-up: temp dir, config, warden ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* The socket paths must fit sockaddr_un, so check before anything starts. */
static int make_paths(rl_bench *b, char *err, size_t errlen) {
    const char *tmpdir = getenv("TMPDIR");
    if (tmpdir == NULL || tmpdir[0] == '\0')
        tmpdir = "/tmp";
    if (fmt(b->tmp, sizeof b->tmp, "%s/wbench.XXXXXX", tmpdir) != 0 ||
        strlen(b->tmp) + strlen(RL_LONGEST_SOCK) > RL_SUN_PATH_MAX) {
        set_err(err, errlen,
                "TMPDIR '%s' is too long for ipc:// socket paths (at most %zu bytes); set "
                "TMPDIR to a shorter directory",
                tmpdir, RL_SUN_PATH_MAX - strlen(RL_LONGEST_SOCK) - strlen("/wbench.XXXXXX"));
        b->tmp[0] = '\0';
        return WD_ETOOBIG;
    }
    if (mkdtemp(b->tmp) == NULL) {
        set_err(err, errlen, "mkdtemp %s: %s", b->tmp, strerror(errno));
        b->tmp[0] = '\0';
        return WD_ESYS;
    }
    if (fmt(b->run_dir, sizeof b->run_dir, "%s/run", b->tmp) != 0 ||
        fmt(b->conf_path, sizeof b->conf_path, "%s/warden.conf", b->tmp) != 0 ||
        fmt(b->warden_log, sizeof b->warden_log, "%s/warden.stderr", b->tmp) != 0 ||
        fmt(b->ctl_url, sizeof b->ctl_url, "ipc://%s/control.sock", b->run_dir) != 0 ||
        fmt(b->events_url, sizeof b->events_url, "ipc://%s/events.sock", b->run_dir) != 0 ||
        fmt(b->floor_hb_url, sizeof b->floor_hb_url, "ipc://%s/hb.sock", b->tmp) != 0 ||
        fmt(b->floor_cmd_url, sizeof b->floor_cmd_url, "ipc://%s/floor-cmd.sock", b->tmp) != 0) {
        set_err(err, errlen, "temp directory path too long");
        return WD_ETOOBIG;
    }
    return 0;
}

/* The binaries, and whether their path can go into the config as one word. */
static int find_binaries(rl_bench *b, char *err, size_t errlen) {
    if (fmt(b->warden_bin, sizeof b->warden_bin, "%s/warden", b->bin_dir) != 0 ||
        fmt(b->worker_bin, sizeof b->worker_bin, "%s/warden-testworker", b->bin_dir) != 0) {
        set_err(err, errlen, "--bin-dir path too long");
        return WD_ETOOBIG;
    }
    const char *bins[] = {b->warden_bin, b->worker_bin};
    for (size_t i = 0; i < sizeof bins / sizeof bins[0]; i++) {
        if (access(bins[i], X_OK) != 0) {
            set_err(err, errlen, "%s: %s (build first: scripts/build, or pass --bin-dir)", bins[i],
                    strerror(errno));
            return WD_ENOTFOUND;
        }
        /* Single-quoted in the config; INI comments start at ';' or '#'. */
        if (strpbrk(bins[i], "'\n;#") != NULL) {
            set_err(err, errlen, "%s: path holds a quote, ';', '#' or newline", bins[i]);
            return WD_EINVAL;
        }
    }
    return 0;
}

static int write_config(rl_bench *b, char *err, size_t errlen) {
    FILE *f = fopen(b->conf_path, "w");
    if (f == NULL) {
        set_err(err, errlen, "%s: %s", b->conf_path, strerror(errno));
        return WD_ESYS;
    }
    fprintf(f,
            "# Generated by bench/restart_latency.\n"
            "[supervisor]\n"
            "run_dir = %s\n"
            "log_level = warn\n",
            b->run_dir);
    for (int i = 0; i < RL_WORKERS; i++)
        fprintf(f,
                "\n[worker:%s]\n"
                "command = '%s'\n"
                "restart = always\n"
                "heartbeat_interval = %dms\n"
                "heartbeat_timeout = %dms\n"
                "min_uptime = %llums\n",
                b->w[i].name, b->worker_bin, RL_HB_INTERVAL_MS, RL_HB_TIMEOUT_MS,
                (unsigned long long)b->min_uptime_ms);
    if (fclose(f) != 0) {
        set_err(err, errlen, "%s: %s", b->conf_path, strerror(errno));
        return WD_ESYS;
    }
    return 0;
}

/* warden with a clean environment (so no WARDEN_* override of the caller's
 * leaks into the run), stdout to /dev/null, stderr to a file we show on
 * failure. */
static int start_warden(rl_bench *b, char *err, size_t errlen) {
    char *argv[] = {b->warden_bin, "-c", b->conf_path, NULL};
    char home[RL_ENV_ITEM_MAX] = "HOME=/";
    const char *h = getenv("HOME");
    if (h != NULL && fmt(home, sizeof home, "HOME=%s", h) != 0)
        snprintf(home, sizeof home, "HOME=/");
    char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", home, NULL};
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    int logfd = open(b->warden_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    pid_t parent = getpid();
    if (devnull < 0 || logfd < 0) {
        set_err(err, errlen, "open /dev/null or %s: %s", b->warden_log, strerror(errno));
        goto fail;
    }
    pid_t pid = fork();
    if (pid < 0) {
        set_err(err, errlen, "fork: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        /* Async-signal-safe calls only: nng's threads did not survive fork.
         * The supervisor gets SIGTERM if the bench dies, so nothing lingers. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
            _exit(127);
        if (dup2(devnull, STDIN_FILENO) < 0 || dup2(devnull, STDOUT_FILENO) < 0 ||
            dup2(logfd, STDERR_FILENO) < 0)
            _exit(127);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    b->warden_pid = pid;
    close(devnull);
    close(logfd);
    return 0;
fail:
    if (devnull >= 0)
        close(devnull);
    if (logfd >= 0)
        close(logfd);
    return WD_ESYS;
}

/* The end of warden's stderr, for a failure report. */
static void show_warden_log(const rl_bench *b) {
    char buf[RL_LOG_TAIL_MAX + 1];
    int fd = open(b->warden_log, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > RL_LOG_TAIL_MAX ? size - RL_LOG_TAIL_MAX : 0;
    ssize_t n = pread(fd, buf, RL_LOG_TAIL_MAX, from);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    fprintf(stderr, RL_PROG ": warden's stderr (%s)%s:\n%s", b->warden_log,
            from > 0 ? ", last part" : "", buf);
}

/* Returns true once warden has exited (and reaps it). */
static bool warden_gone(rl_bench *b, int *status) {
    if (b->warden_pid <= 0)
        return true;
    pid_t r = waitpid(b->warden_pid, status, WNOHANG);
    if (r == b->warden_pid || (r < 0 && errno == ECHILD)) {
        b->warden_pid = 0;
        return true;
    }
    return false;
}

/* SIGTERM, as an operator would stop it; SIGKILL if it does not exit in
 * time. Returns 0 when it exited 0 on SIGTERM. */
static int stop_warden(rl_bench *b) {
    int status = 0;
    if (b->warden_pid <= 0)
        return 0;
    if (warden_gone(b, &status)) {
        fprintf(stderr, RL_PROG ": warden had already exited (status 0x%x)\n", status);
        return WD_ESTATE;
    }
    kill(b->warden_pid, SIGTERM);
    uint64_t deadline = clock_ns(CLOCK_MONOTONIC) + RL_STOP_TIMEOUT_MS * NS_PER_MS;
    while (!warden_gone(b, &status)) {
        if (clock_ns(CLOCK_MONOTONIC) > deadline) {
            fprintf(stderr, RL_PROG ": warden did not exit within %d ms of SIGTERM; killing it\n",
                    RL_STOP_TIMEOUT_MS);
            kill(b->warden_pid, SIGKILL);
            waitpid(b->warden_pid, &status, 0);
            b->warden_pid = 0;
            return WD_ETIMEDOUT;
        }
        sleep_ms(RL_POLL_MS);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, RL_PROG ": warden exited with status 0x%x after SIGTERM (expected 0)\n",
                status);
        return WD_ESTATE;
    }
    return 0;
}

/* ---- control socket ---- */

/* One control request; on success *data is the parsed JSON of the reply. */
static int ctl_call(rl_bench *b, const char *cmd, const char *target, json_t **data, char *err,
                    size_t errlen) {
    msgpack_sbuffer sb;
    void *reply = NULL;
    size_t reply_len = 0;
    proto_ctl_request req;
    proto_header hdr = {.seq = ++b->ctl_seq, .ts_ns = clock_ns(CLOCK_REALTIME)};
    proto_envelope env;
    proto_ctl_reply rep;
    char perr[RL_ERR_MAX];
    int rc;
    *data = NULL;
    memset(&req, 0, sizeof req);
    snprintf(hdr.sender, sizeof hdr.sender, "%s", RL_PROG);
    snprintf(req.cmd, sizeof req.cmd, "%s", cmd);
    snprintf(req.target, sizeof req.target, "%s", target ? target : "");
    msgpack_sbuffer_init(&sb);
    if ((rc = proto_ctl_request_pack(&sb, &hdr, &req)) != 0) {
        set_err(err, errlen, "%s: cannot pack the request: %s", cmd, wd_strerror(rc));
        goto fail;
    }
    if ((rc = bus_call_sync(b->ctl_url, sb.data, sb.size, RL_CTL_TIMEOUT_MS, &reply, &reply_len)) !=
        0) {
        set_err(err, errlen, "%s: %s: %s", cmd, b->ctl_url, wd_strerror(rc));
        goto fail;
    }
    if ((rc = proto_envelope_unpack(reply, reply_len, &env, perr, sizeof perr)) != 0 ||
        (env.type == PROTO_T_CTL_REPLY &&
         (rc = proto_ctl_reply_unpack(&env, &rep, perr, sizeof perr)) != 0)) {
        set_err(err, errlen, "%s: malformed reply: %s", cmd, perr);
        goto fail;
    }
    if (env.type != PROTO_T_CTL_REPLY) {
        set_err(err, errlen, "%s: reply of type %d, expected CTL_REPLY", cmd, (int)env.type);
        rc = WD_EPROTO;
        goto fail;
    }
    if (rep.status != 0) {
        set_err(err, errlen, "%s: %s (%s)", cmd, rep.error, wd_strerror(rep.status));
        rc = rep.status;
        goto fail;
    }
    json_error_t jerr;
    if ((*data = json_loadb(rep.data, rep.data_len, 0, &jerr)) == NULL) {
        set_err(err, errlen, "%s: reply data is not JSON: %s", cmd, jerr.text);
        rc = WD_EPROTO;
        goto fail;
    }
    rc = 0;
fail:
    free(reply);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* One worker's entry in a status reply, or NULL. */
static json_t *status_worker(json_t *data, const char *name) {
    json_t *arr = json_object_get(data, "workers"), *w;
    size_t i;
    json_array_foreach(arr, i, w) {
        const char *n = json_string_value(json_object_get(w, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return w;
    }
    return NULL;
}

/* True and *pid set when the worker is RUNNING and ready with a pid. */
static bool worker_running(json_t *w, pid_t *pid) {
    const char *state = json_string_value(json_object_get(w, "state"));
    json_t *p = json_object_get(w, "pid");
    if (state == NULL || strcmp(state, "RUNNING") != 0 || !json_is_integer(p) ||
        !json_is_true(json_object_get(w, "ready")))
        return false;
    json_int_t v = json_integer_value(p);
    if (v <= 0 || v > INT_MAX)
        return false;
    *pid = (pid_t)v;
    return true;
}

static const char *json_str_or(json_t *o, const char *key, const char *dflt) {
    const char *v = json_string_value(json_object_get(o, key));
    return v != NULL ? v : dflt;
}

static void describe_worker(json_t *w, char *buf, size_t len) {
    json_t *pid = json_object_get(w, "pid");
    snprintf(buf, len, "state=%s ready=%s pid=%lld reason='%s'", json_str_or(w, "state", "?"),
             json_is_true(json_object_get(w, "ready")) ? "true" : "false",
             json_is_integer(pid) ? (long long)json_integer_value(pid) : -1LL,
             json_str_or(w, "reason", ""));
}

/* Waits until warden answers and every worker is RUNNING and ready. */
static int wait_all_running(rl_bench *b, char *err, size_t errlen) {
    uint64_t deadline = clock_ns(CLOCK_MONOTONIC) + RL_START_TIMEOUT_MS * NS_PER_MS;
    char last[RL_ERR_MAX] = "no answer on the control socket";
    for (;;) {
        int status;
        if (warden_gone(b, &status)) {
            set_err(err, errlen, "warden exited during start-up (status 0x%x)", status);
            return WD_ESTATE;
        }
        json_t *data = NULL;
        if (ctl_call(b, "status", NULL, &data, last, sizeof last) == 0) {
            int up = 0;
            for (int i = 0; i < RL_WORKERS; i++) {
                json_t *w = status_worker(data, b->w[i].name);
                if (w != NULL && worker_running(w, &b->w[i].pid)) {
                    up++;
                } else if (w != NULL) {
                    char d[RL_ERR_MAX];
                    describe_worker(w, d, sizeof d);
                    set_err(last, sizeof last, "%s: %s", b->w[i].name, d);
                } else {
                    set_err(last, sizeof last, "%s: not in status", b->w[i].name);
                }
            }
            json_decref(data);
            if (up == RL_WORKERS) {
                uint64_t now = clock_ns(CLOCK_REALTIME);
                for (int i = 0; i < RL_WORKERS; i++)
                    b->w[i].up_real_ns = now;
                return 0;
            }
        }
        if (clock_ns(CLOCK_MONOTONIC) > deadline || rl_interrupted) {
            set_err(err, errlen, "workers not all RUNNING within %d ms; last seen: %s",
                    RL_START_TIMEOUT_MS, last);
            return WD_ETIMEDOUT;
        }
        sleep_ms(RL_POLL_MS);
    }
}

/* ---- sockets of our own ---- */

static int open_sub(rl_bench *b, char *err, size_t errlen) {
    int rv;
    if ((rv = nng_sub0_open(&b->sub)) != 0) {
        set_err(err, errlen, "sub socket: %s", nng_strerror(rv));
        return WD_ESYS;
    }
    b->sub_open = true;
    /* A deep queue: events that arrive while we run a floor sample must not
     * be dropped before we read them. */
    if ((rv = nng_socket_set(b->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0 ||
        (rv = nng_socket_set_int(b->sub, NNG_OPT_RECVBUF, 8192)) != 0 ||
        (rv = nng_socket_set_size(b->sub, NNG_OPT_RECVMAXSZ, PROTO_MSG_MAX)) != 0 ||
        (rv = nng_dial(b->sub, b->events_url, NULL, 0)) != 0) {
        set_err(err, errlen, "%s: %s", b->events_url, nng_strerror(rv));
        return WD_ESYS;
    }
    return 0;
}

static int open_pull(rl_bench *b, char *err, size_t errlen) {
    int rv;
    if ((rv = nng_pull0_open(&b->pull)) != 0) {
        set_err(err, errlen, "pull socket: %s", nng_strerror(rv));
        return WD_ESYS;
    }
    b->pull_open = true;
    if ((rv = nng_socket_set_size(b->pull, NNG_OPT_RECVMAXSZ, PROTO_MSG_MAX)) != 0 ||
        (rv = nng_listen(b->pull, b->floor_hb_url, NULL, 0)) != 0) {
        set_err(err, errlen, "%s: %s", b->floor_hb_url, nng_strerror(rv));
        return WD_ESYS;
    }
    return 0;
}

/* Receives one message within timeout_ms; *msg is nng-allocated (nng_free). */
static int recv_msg(nng_socket s, uint64_t timeout_ms, void **msg, size_t *len) {
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, (nng_duration)timeout_ms);
    int rv = nng_recv(s, msg, len, NNG_FLAG_ALLOC);
    if (rv == NNG_ETIMEDOUT)
        return WD_ETIMEDOUT;
    return rv == 0 ? 0 : WD_EIO;
}

/* The next event, with the supervisor's timestamp. Malformed messages are
 * errors: the supervisor is the only publisher. */
static int next_event(rl_bench *b, uint64_t timeout_ms, proto_event *ev, uint64_t *ts_ns, char *err,
                      size_t errlen) {
    void *msg;
    size_t len;
    proto_envelope env;
    char perr[RL_ERR_MAX];
    int rc = recv_msg(b->sub, timeout_ms, &msg, &len);
    if (rc != 0) {
        if (rc != WD_ETIMEDOUT)
            set_err(err, errlen, "events: receive failed");
        return rc;
    }
    if ((rc = proto_envelope_unpack(msg, len, &env, perr, sizeof perr)) == 0 &&
        env.type != PROTO_T_EVENT)
        rc = WD_EPROTO, snprintf(perr, sizeof perr, "type %d, expected EVENT", (int)env.type);
    if (rc == 0)
        rc = proto_event_unpack(&env, ev, perr, sizeof perr);
    if (rc == 0)
        *ts_ns = env.hdr.ts_ns;
    else
        set_err(err, errlen, "events: malformed message: %s", perr);
    nng_free(msg, len);
    return rc;
}

static int worker_index(const rl_bench *b, const char *name) {
    for (int i = 0; i < RL_WORKERS; i++)
        if (strcmp(b->w[i].name, name) == 0)
            return i;
    return -1;
}

/* Reads events for up to wait_ms; any event now is about something we did
 * not cause, so it is counted (and an exit is reported). */
static int drain_events(rl_bench *b, uint64_t wait_ms, uint64_t *count, char *err, size_t errlen) {
    uint64_t until = clock_ns(CLOCK_MONOTONIC) + wait_ms * NS_PER_MS;
    for (;;) {
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        if (now >= until || rl_interrupted)
            return 0;
        proto_event ev;
        uint64_t ts;
        uint64_t left_ms = (until - now + NS_PER_MS - 1) / NS_PER_MS;
        int rc = next_event(b, left_ms, &ev, &ts, err, errlen);
        if (rc == WD_ETIMEDOUT)
            return 0;
        if (rc != 0)
            return rc;
        (*count)++;
        if (strcmp(ev.kind, "exit") == 0 || strcmp(ev.to, "UNRESPONSIVE") == 0)
            fprintf(stderr, RL_PROG ": unexpected event: %s %s %s -> %s (%s)\n", ev.kind, ev.worker,
                    ev.from, ev.to, ev.reason);
    }
}

/* ---- one supervised kill ---- */

/* Kills worker i and times the supervisor's exit, STARTING and RUNNING
 * events for it. Samples are recorded unless warm-up. */
static int kill_sample(rl_bench *b, int i, bool record, char *err, size_t errlen) {
    rl_worker *w = &b->w[i];
    int rc;
    /* Only a run longer than min_uptime restarts at once; the supervisor
     * counts uptime from its fork, before the RUNNING stamp we hold. */
    uint64_t due = w->up_real_ns + (b->min_uptime_ms + RL_UPTIME_MARGIN_MS) * NS_PER_MS;
    uint64_t now = clock_ns(CLOCK_REALTIME);
    /* Both kinds of sample start after the same quiet time, so the tail of
     * the previous one (a worker starting, a status request) lands in
     * neither. */
    if (due < now + RL_SETTLE_MS * NS_PER_MS)
        due = now + RL_SETTLE_MS * NS_PER_MS;
    if ((rc = drain_events(b, (due - now) / NS_PER_MS + 1, &b->stray_events, err, errlen)) != 0)
        return rc;
    if (rl_interrupted)
        return WD_ECLOSED;

    uint64_t exit_ts = 0, starting_ts = 0, running_ts = 0, running_mono = 0;
    uint64_t kill_mono = clock_ns(CLOCK_MONOTONIC);
    uint64_t kill_real = clock_ns(CLOCK_REALTIME);
    if (kill(w->pid, SIGKILL) < 0) {
        set_err(err, errlen, "%s: kill %d: %s", w->name, (int)w->pid, strerror(errno));
        return WD_ESYS;
    }
    uint64_t deadline = kill_mono + RL_SAMPLE_TIMEOUT_MS * NS_PER_MS;
    while (running_ts == 0) {
        proto_event ev;
        uint64_t ts;
        uint64_t m = clock_ns(CLOCK_MONOTONIC);
        if (m >= deadline || rl_interrupted)
            break;
        rc = next_event(b, (deadline - m) / NS_PER_MS + 1, &ev, &ts, err, errlen);
        if (rc == WD_ETIMEDOUT)
            break;
        if (rc != 0)
            return rc;
        if (worker_index(b, ev.worker) != i) {
            b->stray_events++;
            continue;
        }
        if (strcmp(ev.kind, "exit") == 0 && exit_ts == 0) {
            exit_ts = ts;
        } else if (strcmp(ev.kind, "state") == 0) {
            if (strcmp(ev.to, "STARTING") == 0 && starting_ts == 0) {
                starting_ts = ts;
            } else if (strcmp(ev.to, "RUNNING") == 0 && starting_ts != 0) {
                running_ts = ts;
                running_mono = clock_ns(CLOCK_MONOTONIC);
            } else if (strcmp(ev.to, "BACKOFF") == 0 || strcmp(ev.to, "FATAL") == 0 ||
                       strcmp(ev.to, "UNRESPONSIVE") == 0 || strcmp(ev.to, "STOPPED") == 0) {
                set_err(err, errlen,
                        "%s: after kill -9 the supervisor went %s -> %s (%s) instead of "
                        "restarting at once; was its uptime past min_uptime?",
                        w->name, ev.from, ev.to, ev.reason);
                return WD_ESTATE;
            }
        }
    }
    if (running_ts == 0) {
        char d[RL_ERR_MAX] = "no status";
        json_t *data = NULL, *sw;
        if (ctl_call(b, "status", w->name, &data, d, sizeof d) == 0 &&
            (sw = status_worker(data, w->name)) != NULL)
            describe_worker(sw, d, sizeof d);
        json_decref(data);
        set_err(err, errlen,
                "%s: no %s state event within %d ms of kill -9 (exit event %s%.3f ms, "
                "STARTING %s); status now: %s. Either the supervisor replaced the process "
                "without reporting its state changes, or the replacement sent no READY",
                w->name, starting_ts ? "RUNNING" : "STARTING or RUNNING", RL_SAMPLE_TIMEOUT_MS,
                exit_ts ? "at +" : "missing", exit_ts ? ns_to_ms(exit_ts - kill_real) : 0.0,
                starting_ts ? "seen" : "missing", d);
        return rl_interrupted ? WD_ECLOSED : WD_ETIMEDOUT;
    }
    if (exit_ts == 0) {
        set_err(err, errlen, "%s: restarted without an exit event", w->name);
        return WD_EPROTO;
    }
    /* The supervisor's stamps precede our receipt: a stamp later than that
     * means the realtime clock was stepped during the sample. */
    if (exit_ts < kill_real || starting_ts < exit_ts || running_ts < starting_ts ||
        running_ts - kill_real > running_mono - kill_mono + RL_CLOCK_SLACK_NS) {
        set_err(err, errlen, "%s: the realtime clock moved during a sample; rerun", w->name);
        return WD_ESTATE;
    }
    w->up_real_ns = running_ts;
    /* The replacement's pid, asked for only now so the request does not
     * disturb the timed part. */
    json_t *data = NULL, *sw;
    if ((rc = ctl_call(b, "status", w->name, &data, err, errlen)) != 0)
        return rc;
    pid_t old = w->pid;
    if ((sw = status_worker(data, w->name)) == NULL || !worker_running(sw, &w->pid) ||
        w->pid == old) {
        char d[RL_ERR_MAX] = "not in status";
        if (sw != NULL)
            describe_worker(sw, d, sizeof d);
        json_decref(data);
        set_err(err, errlen, "%s: RUNNING event seen but status says: %s (killed pid %d)", w->name,
                d, (int)old);
        return WD_ESTATE;
    }
    json_decref(data);
    if (record) {
        series_add(&b->s[S_EXIT], exit_ts - kill_real);
        series_add(&b->s[S_SPAWN], starting_ts - exit_ts);
        series_add(&b->s[S_EXEC_READY], running_ts - starting_ts);
        series_add(&b->s[S_EXEC], starting_ts - kill_real);
        series_add(&b->s[S_READY], running_ts - kill_real);
    }
    return 0;
}

/* ---- one floor sample ---- */

/* fork+exec of the worker by us, timed to exec and to READY; then SIGKILL
 * and reap, timed too. The environment is what the supervisor gives a
 * worker. */
static int floor_sample(rl_bench *b, bool record, char *err, size_t errlen) {
    char env_items[RL_ENV_MAX][RL_ENV_ITEM_MAX];
    char *envp[RL_ENV_MAX + 1];
    int n = 0, rc = WD_ESYS;
    int pfd[2] = {-1, -1}, devnull = -1;
    pid_t pid = -1;
    const char *kv[][2] = {
        {"PATH", "/usr/local/bin:/usr/bin:/bin"},
        {"WARDEN_NAME", "floor"},
        {"WARDEN_CONFIG", b->conf_path},
        {"WARDEN_RUN_DIR", b->run_dir},
        {"WARDEN_LOG_LEVEL", "warn"},
        {"WARDEN_HEARTBEAT_URL", b->floor_hb_url},
        {"WARDEN_EVENTS_URL", b->events_url},
        {"WARDEN_COMMAND_URL", b->floor_cmd_url},
        {"WARDEN_HEARTBEAT_INTERVAL_MS", "250"},
    };
    _Static_assert(RL_HB_INTERVAL_MS == 250, "keep WARDEN_HEARTBEAT_INTERVAL_MS in step");
    for (size_t k = 0; k < sizeof kv / sizeof kv[0] && n < RL_ENV_MAX; k++, n++) {
        if (fmt(env_items[n], sizeof env_items[n], "%s=%s", kv[k][0], kv[k][1]) != 0) {
            set_err(err, errlen, "floor: environment entry %s too long", kv[k][0]);
            return WD_ETOOBIG;
        }
        envp[n] = env_items[n];
    }
    envp[n] = NULL;
    char *argv[] = {b->worker_bin, NULL};
    pid_t parent = getpid();
    /* The same quiet time as before a kill (see kill_sample). */
    if ((rc = drain_events(b, RL_SETTLE_MS, &b->stray_events, err, errlen)) != 0)
        return rc;
    rc = WD_ESYS;
    if (pipe2(pfd, O_CLOEXEC) < 0 || (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
        set_err(err, errlen, "floor: pipe or /dev/null: %s", strerror(errno));
        goto fail;
    }

    uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
    pid = fork();
    if (pid < 0) {
        set_err(err, errlen, "floor: fork: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        /* Async-signal-safe only. pfd[1] closes on exec: that is our exec
         * stamp. The death signal keeps a stray worker from outliving us. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(127);
        if (dup2(devnull, STDIN_FILENO) < 0 || dup2(devnull, STDOUT_FILENO) < 0 ||
            dup2(devnull, STDERR_FILENO) < 0)
            _exit(127);
        execve(argv[0], argv, envp);
        int e = errno;
        ssize_t wr = write(pfd[1], &e, sizeof e);
        (void)wr;
        _exit(127);
    }
    close(pfd[1]);
    pfd[1] = -1;
    int child_errno;
    ssize_t r;
    do {
        r = read(pfd[0], &child_errno, sizeof child_errno);
    } while (r < 0 && errno == EINTR);
    uint64_t t_exec = clock_ns(CLOCK_MONOTONIC);
    if (r != 0) {
        set_err(err, errlen, "floor: exec %s: %s", argv[0],
                r == (ssize_t)sizeof child_errno ? strerror(child_errno) : "failed");
        goto fail;
    }

    uint64_t t_ready = 0, deadline = t0 + RL_SAMPLE_TIMEOUT_MS * NS_PER_MS;
    while (t_ready == 0) {
        uint64_t m = clock_ns(CLOCK_MONOTONIC);
        if (m >= deadline || rl_interrupted)
            break;
        void *msg;
        size_t len;
        rc = recv_msg(b->pull, (deadline - m) / NS_PER_MS + 1, &msg, &len);
        uint64_t got = clock_ns(CLOCK_MONOTONIC);
        if (rc == WD_ETIMEDOUT)
            break;
        if (rc != 0) {
            set_err(err, errlen, "floor: receive on %s failed", b->floor_hb_url);
            goto fail;
        }
        /* Heartbeats, and messages from an earlier floor worker that was
         * killed before we read them, are skipped. */
        proto_envelope env;
        proto_ready rd;
        char perr[RL_ERR_MAX];
        if (proto_envelope_unpack(msg, len, &env, perr, sizeof perr) == 0 &&
            env.type == PROTO_T_READY && proto_ready_unpack(&env, &rd, perr, sizeof perr) == 0 &&
            rd.pid == (uint32_t)pid)
            t_ready = got;
        nng_free(msg, len);
    }
    if (t_ready == 0) {
        set_err(err, errlen, "floor: no READY from pid %d within %d ms", (int)pid,
                RL_SAMPLE_TIMEOUT_MS);
        rc = WD_ETIMEDOUT;
        goto fail;
    }
    /* The kernel's share of a restart: a worker's death until its parent
     * can reap it (every one of its threads has to exit first). Killed once
     * settled, as the supervised victims are, not in the middle of its
     * start-up. */
    if ((rc = drain_events(b, RL_SETTLE_MS, &b->stray_events, err, errlen)) != 0)
        goto fail;
    uint64_t t_kill = clock_ns(CLOCK_MONOTONIC);
    kill(pid, SIGKILL);
    pid_t reaped;
    do {
        reaped = waitpid(pid, NULL, 0);
    } while (reaped < 0 && errno == EINTR);
    uint64_t t_reaped = clock_ns(CLOCK_MONOTONIC);
    pid = -1;
    if (record) {
        series_add(&b->s[S_FLOOR_EXEC], t_exec - t0);
        series_add(&b->s[S_FLOOR_EXEC_READY], t_ready - t_exec);
        series_add(&b->s[S_FLOOR_READY], t_ready - t0);
        series_add(&b->s[S_FLOOR_REAP], t_reaped - t_kill);
        series_add(&b->s[S_FLOOR_FULL], t_reaped - t_kill + t_ready - t0);
    }
    rc = 0;
fail:
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    for (int k = 0; k < 2; k++)
        if (pfd[k] >= 0)
            close(pfd[k]);
    if (devnull >= 0)
        close(devnull);
    return rc;
}

/* ---- idle ---- */

static int idle_phase(rl_bench *b, char *err, size_t errlen) {
    long hz = sysconf(_SC_CLK_TCK);
    uint64_t sup0, sup1, wk0 = 0, wk1 = 0, t;
    if (hz <= 0)
        hz = 100;
    if (proc_cpu_ticks(b->warden_pid, &sup0) != 0) {
        set_err(err, errlen, "cannot read /proc/%d/stat", (int)b->warden_pid);
        return WD_ESYS;
    }
    for (int i = 0; i < RL_WORKERS; i++) {
        if (proc_cpu_ticks(b->w[i].pid, &t) != 0) {
            set_err(err, errlen, "cannot read /proc/%d/stat (%s)", (int)b->w[i].pid, b->w[i].name);
            return WD_ESYS;
        }
        wk0 += t;
    }
    uint64_t start = clock_ns(CLOCK_MONOTONIC);
    uint64_t end = start + b->idle_s * NS_PER_S;
    b->rss_idle_max_kb = 0;
    for (;;) {
        uint64_t now = clock_ns(CLOCK_MONOTONIC), kb;
        if (proc_rss_kb(b->warden_pid, &kb) == 0 && kb > b->rss_idle_max_kb)
            b->rss_idle_max_kb = kb;
        if (now >= end)
            break;
        if (rl_interrupted)
            return WD_ECLOSED;
        uint64_t left = (end - now) / NS_PER_MS + 1;
        int rc = drain_events(b, left < RL_IDLE_TICK_MS ? left : RL_IDLE_TICK_MS, &b->idle_events,
                              err, errlen);
        if (rc != 0)
            return rc;
    }
    if (proc_cpu_ticks(b->warden_pid, &sup1) != 0 || proc_rss_kb(b->warden_pid, &b->rss_idle_kb)) {
        set_err(err, errlen, "cannot read /proc/%d (warden gone?)", (int)b->warden_pid);
        return WD_ESYS;
    }
    for (int i = 0; i < RL_WORKERS; i++) {
        if (proc_cpu_ticks(b->w[i].pid, &t) != 0) {
            set_err(err, errlen, "%s (pid %d) is gone after the idle period", b->w[i].name,
                    (int)b->w[i].pid);
            return WD_ESYS;
        }
        wk1 += t;
    }
    b->idle_cpu_s = (double)(sup1 - sup0) / (double)hz;
    b->idle_worker_cpu_s = (double)(wk1 - wk0) / (double)hz / RL_WORKERS;
    return 0;
}

/* ---- report ---- */

static int report(rl_bench *b) {
    rl_stats st[S_COUNT];
    json_t *j = json_object();
    for (int k = 0; k < S_COUNT; k++)
        if (series_stats(&b->s[k], &st[k]) != 0)
            goto nomem;
    double overhead = st[S_READY].median - st[S_FLOOR_READY].median;
    double overhead_full = st[S_READY].median - st[S_FLOOR_FULL].median;
    double cpu_pct = b->idle_s ? 100.0 * b->idle_cpu_s / (double)b->idle_s : NAN;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    printf("restart_latency: %zu kills of %d workers (heartbeat %dms, min_uptime %llums), "
           "%zu floor samples interleaved; %ld CPUs, load average %.2f at the start, %.2f at "
           "the end\n",
           b->s[S_READY].n, RL_WORKERS, RL_HB_INTERVAL_MS, (unsigned long long)b->min_uptime_ms,
           b->s[S_FLOOR_READY].n, cpus, b->load_start, b->load_end);
    printf("  %-38s %8s %8s %8s %8s\n", "milliseconds", "median", "p90", "p99", "max");
    for (int k = 0; k < S_COUNT; k++)
        printf("  %-38s %8.3f %8.3f %8.3f %8.3f\n", series_info[k].label, st[k].median, st[k].p90,
               st[k].p99, st[k].max);
    printf("  median overhead, restart-to-READY minus floor: %.3f ms (aim: within 2 ms: %s)\n",
           overhead, overhead <= 2.0 ? "met" : "not met");
    printf("  median overhead, restart-to-READY minus floor with kill+reap: %.3f ms\n",
           overhead_full);
    if (b->stray_events > 0)
        printf("  note: %llu unexpected events (not caused by a kill) arrived meanwhile\n",
               (unsigned long long)b->stray_events);
    if (b->idle_s > 0)
        printf("idle %llus, %d workers heartbeating: supervisor RSS %llu kB (max %llu, "
               "%llu before the kills), CPU %.2f s (%.3f%%); each worker %.2f s; %llu events\n",
               (unsigned long long)b->idle_s, RL_WORKERS, (unsigned long long)b->rss_idle_kb,
               (unsigned long long)b->rss_idle_max_kb, (unsigned long long)b->rss_before_kb,
               b->idle_cpu_s, cpu_pct, b->idle_worker_cpu_s, (unsigned long long)b->idle_events);

    /* Without an idle period its figures are null, not zero. */
    bool idle = b->idle_s > 0;
    if (j == NULL || json_object_set_new(j, "bench", json_string(RL_PROG)) != 0 ||
        json_object_set_new(j, "kills", json_integer((json_int_t)b->s[S_READY].n)) != 0 ||
        json_object_set_new(j, "workers", json_integer(RL_WORKERS)) != 0 ||
        json_object_set_new(j, "min_uptime_ms", json_integer((json_int_t)b->min_uptime_ms)) != 0 ||
        json_object_set_new(j, "heartbeat_interval_ms", json_integer(RL_HB_INTERVAL_MS)) != 0)
        goto nomem;
    for (int k = 0; k < S_COUNT; k++) {
        if (json_object_set_new(j, series_info[k].key, stats_json(&st[k])) != 0)
            goto nomem;
        if (k == S_FLOOR_FULL &&
            (json_object_set_new(j, "median_overhead_ms", json_ms(overhead)) != 0 ||
             json_object_set_new(j, "median_overhead_vs_reap_floor_ms", json_ms(overhead_full)) !=
                 0))
            goto nomem;
    }
    if (json_object_set_new(j, "idle_seconds", json_integer((json_int_t)b->idle_s)) != 0 ||
        json_object_set_new(j, "idle_rss_kb",
                            idle ? json_integer((json_int_t)b->rss_idle_kb) : json_null()) != 0 ||
        json_object_set_new(j, "idle_rss_max_kb",
                            idle ? json_integer((json_int_t)b->rss_idle_max_kb) : json_null()) !=
            0 ||
        json_object_set_new(j, "rss_before_kills_kb", json_integer((json_int_t)b->rss_before_kb)) !=
            0 ||
        json_object_set_new(j, "idle_cpu_seconds",
                            idle ? json_real(round(b->idle_cpu_s * 100.0) / 100.0) : json_null()) !=
            0 ||
        json_object_set_new(j, "idle_cpu_percent",
                            idle ? json_real(round(cpu_pct * 1000.0) / 1000.0) : json_null()) !=
            0 ||
        json_object_set_new(j, "idle_worker_cpu_seconds",
                            idle ? json_real(round(b->idle_worker_cpu_s * 100.0) / 100.0)
                                 : json_null()) != 0 ||
        json_object_set_new(j, "cpus", json_integer(cpus)) != 0 ||
        json_object_set_new(j, "loadavg_start",
                            isnan(b->load_start) ? json_null() : json_real(b->load_start)) != 0 ||
        json_object_set_new(j, "loadavg_end",
                            isnan(b->load_end) ? json_null() : json_real(b->load_end)) != 0)
        goto nomem;
    char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(j);
    if (line == NULL)
        return WD_ENOMEM;
    printf("%s\n", line);
    free(line);
    fflush(stdout);
    return 0;
nomem:
    json_decref(j);
    return WD_ENOMEM;
}

/* ---- main ---- */

static void usage(FILE *f) {
    fprintf(f,
            "usage: " RL_PROG " [--kills N] [--idle-seconds N] [--min-uptime-ms N]\n"
            "                       [--bin-dir DIR] [--keep]\n"
            "  --kills N          supervised kills (and floor samples), default %d\n"
            "  --idle-seconds N   idle period for RSS and CPU, default %d (0 skips it)\n"
            "  --min-uptime-ms N  the workers' min_uptime, default %d\n"
            "  --bin-dir DIR      where warden and warden-testworker are\n"
            "                     (default: ../bin beside this program)\n"
            "  --keep             keep the temp directory (config, warden's stderr)\n",
            RL_KILLS_DEFAULT, RL_IDLE_DEFAULT_S, RL_MIN_UPTIME_DEFAULT_MS);
}

static int default_bin_dir(rl_bench *b) {
    char self[RL_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return WD_ESYS;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return WD_ESYS;
    *slash = '\0';
    return fmt(b->bin_dir, sizeof b->bin_dir, "%s/../bin", self);
}

static int parse_args(rl_bench *b, int argc, char **argv) {
    b->kills = RL_KILLS_DEFAULT;
    b->idle_s = RL_IDLE_DEFAULT_S;
    b->min_uptime_ms = RL_MIN_UPTIME_DEFAULT_MS;
    bool have_bin = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--keep") == 0) {
            b->keep = true;
            continue;
        }
        if (strcmp(a, "--kills") != 0 && strcmp(a, "--idle-seconds") != 0 &&
            strcmp(a, "--min-uptime-ms") != 0 && strcmp(a, "--bin-dir") != 0) {
            fprintf(stderr, RL_PROG ": unknown option '%s'\n", a);
            return -1;
        }
        if (v == NULL) {
            fprintf(stderr, RL_PROG ": %s needs a value\n", a);
            return -1;
        }
        if (strcmp(a, "--kills") == 0) {
            rc = parse_u64(v, 1, RL_KILLS_MAX, &b->kills);
        } else if (strcmp(a, "--idle-seconds") == 0) {
            rc = parse_u64(v, 0, RL_IDLE_MAX_S, &b->idle_s);
        } else if (strcmp(a, "--min-uptime-ms") == 0) {
            rc = parse_u64(v, 0, RL_MIN_UPTIME_MAX_MS, &b->min_uptime_ms);
        } else {
            rc = fmt(b->bin_dir, sizeof b->bin_dir, "%s", v);
            have_bin = true;
        }
        if (rc != 0) {
            fprintf(stderr, RL_PROG ": %s: bad value '%s'\n", a, v);
            return -1;
        }
        i++;
    }
    if (!have_bin && default_bin_dir(b) != 0) {
        fprintf(stderr, RL_PROG ": cannot tell where the binaries are; pass --bin-dir\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    static rl_bench bench;
    rl_bench *b = &bench;
    char err[RL_ERR_MAX * 2] = "";
    int code = 1, rc;
    if (parse_args(b, argc, argv) != 0) {
        usage(stderr);
        return 2;
    }
    for (int i = 0; i < RL_WORKERS; i++)
        snprintf(b->w[i].name, sizeof b->w[i].name, "w%d", i + 1);
    struct sigaction sa = {.sa_handler = rl_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* A worker's death while we write to nothing must not kill us. */
    signal(SIGPIPE, SIG_IGN);

    for (int k = 0; k < S_COUNT; k++)
        if (series_init(&b->s[k], b->kills) != 0) {
            set_err(err, sizeof err, "out of memory");
            goto fail;
        }
    if ((rc = find_binaries(b, err, sizeof err)) != 0 ||
        (rc = make_paths(b, err, sizeof err)) != 0 ||
        (rc = write_config(b, err, sizeof err)) != 0 || (rc = open_pull(b, err, sizeof err)) != 0 ||
        (rc = start_warden(b, err, sizeof err)) != 0 ||
        (rc = wait_all_running(b, err, sizeof err)) != 0 ||
        (rc = open_sub(b, err, sizeof err)) != 0)
        goto fail;
    if (proc_rss_kb(b->warden_pid, &b->rss_before_kb) != 0)
        b->rss_before_kb = 0;
    fprintf(stderr, RL_PROG ": warden pid %d up with %d workers; %llu kills, %llu s idle\n",
            (int)b->warden_pid, RL_WORKERS, (unsigned long long)b->kills,
            (unsigned long long)b->idle_s);

    b->load_start = loadavg_1m();
    uint64_t total = RL_WARMUP_KILLS + b->kills;
    for (uint64_t k = 0; k < total; k++) {
        bool record = k >= RL_WARMUP_KILLS;
        if ((rc = kill_sample(b, (int)(k % RL_WORKERS), record, err, sizeof err)) != 0 ||
            (rc = floor_sample(b, record, err, sizeof err)) != 0)
            goto fail;
        if (rl_interrupted) {
            set_err(err, sizeof err, "interrupted");
            goto fail;
        }
    }
    if (b->idle_s > 0 && (rc = idle_phase(b, err, sizeof err)) != 0)
        goto fail;
    b->load_end = loadavg_1m();
    if (report(b) != 0) {
        set_err(err, sizeof err, "out of memory");
        goto fail;
    }
    code = 0;
fail:
    if (code != 0) {
        fprintf(stderr, RL_PROG ": %s\n",
                rl_interrupted ? "interrupted; no figures"
                : err[0]       ? err
                               : "failed");
        if (b->warden_pid > 0 || b->tmp[0])
            show_warden_log(b);
    }
    if (b->sub_open)
        nng_close(b->sub);
    if (b->pull_open)
        nng_close(b->pull);
    if (stop_warden(b) != 0 && code == 0) {
        show_warden_log(b);
        code = 1;
    }
    if (b->tmp[0] != '\0') {
        /* A failure keeps the directory for its warden.stderr; an interrupt
         * does not. */
        if (b->keep || (code != 0 && !rl_interrupted))
            fprintf(stderr, RL_PROG ": kept %s\n", b->tmp);
        else
            nftw(b->tmp, rm_entry, RL_NFTW_FDS, FTW_DEPTH | FTW_PHYS);
    }
    for (int k = 0; k < S_COUNT; k++)
        free(b->s[k].v);
    return code;
}
