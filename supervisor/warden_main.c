/* warden: the supervisor binary.
 *   warden [-c FILE]               run with a config (default /etc/warden/warden.conf)
 *   warden check-config FILE       validate a config; exit 2 on errors
 *   warden exec [LIMITS] -- PROG   apply the child set-up, then exec PROG
 *   warden --version | --help */
#include "bus.h"
#include "clock.h"
#include "conf_sections.h"
#include "config.h"
#include "log.h"
#include "spawn.h"
#include "sup.h"
#include "wd_error.h"
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WARDEN_DEFAULT_CONFIG "/etc/warden/warden.conf"
#define WARDEN_EXIT_DRAIN_MS 2000 /* bounded wait for background socket closes */
#define WARDEN_MMAP_THRESHOLD (128 * 1024) /* glibc's initial value, kept */
#define WARDEN_TRIM_THRESHOLD (256 * 1024)

static void usage(FILE *f) {
    fprintf(f, "usage: warden [-c FILE]            run the supervisor\n"
               "       warden check-config FILE    validate a config file\n"
               "       warden exec [--limit-memory SIZE] [--limit-nofile N] [--limit-core SIZE]\n"
               "                   [--user U] [--group G] [--directory DIR] [--umask OCTAL]\n"
               "                   [--setsid] [--no-new-privs] -- PROGRAM [ARGS...]\n"
               "       warden --version\n");
}

static void print_errors(const wd_conf_errors *errs) {
    for (int i = 0; i < errs->n; i++)
        fprintf(stderr, "%s\n", errs->msg[i]);
}

static int load(const char *path, wd_supervisor_conf *conf) {
    wd_conf_errors *errs = calloc(1, sizeof *errs);
    if (!errs)
        return 1;
    int rc = wd_conf_load_supervisor(path, NULL, conf, errs);
    if (rc != 0) {
        print_errors(errs);
        if (errs->n == 0)
            fprintf(stderr, "%s: %s\n", path, wd_strerror(rc));
    }
    free(errs);
    return rc == 0 ? 0 : 2;
}

static int cmd_check_config(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "warden: check-config takes exactly one FILE\n");
        return 2;
    }
    wd_supervisor_conf *conf = calloc(1, sizeof *conf);
    if (!conf)
        return 1;
    int rc = load(argv[2], conf);
    if (rc == 0)
        printf("%s: ok (%d program%s)\n", argv[2], conf->n_programs,
               conf->n_programs == 1 ? "" : "s");
    free(conf);
    return rc;
}

/* warden exec: the same set-up a supervised child gets, for any program. */
static int cmd_exec(int argc, char **argv) {
    spawn_opts o = {.umask_val = -1, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1};
    const char *user = NULL, *group = NULL;
    char err[256];
    int i = 2;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        int64_t n;
        if (opt[0] != '-') {
            fprintf(stderr, "warden exec: '%s' is not an option: put '--' before the program\n",
                    opt);
            return 2;
        }
        if (!strcmp(opt, "--setsid")) {
            o.new_session = true;
            takes = false;
        } else if (!strcmp(opt, "--no-new-privs")) {
            o.no_new_privs = true;
            takes = false;
        } else if (!val) {
            fprintf(stderr, "warden exec: %s needs a value\n", opt);
            return 2;
        } else if (!strcmp(opt, "--limit-memory")) {
            if (wd_parse_size(val, &o.limit_as) != 0)
                goto bad;
        } else if (!strcmp(opt, "--limit-core")) {
            if (wd_parse_size(val, &o.limit_core) != 0)
                goto bad;
            o.set_core = true;
        } else if (!strcmp(opt, "--limit-nofile")) {
            if (wd_parse_int(val, &n) != 0 || n <= 0)
                goto bad;
            o.limit_nofile = (uint64_t)n;
        } else if (!strcmp(opt, "--user")) {
            user = val;
        } else if (!strcmp(opt, "--group")) {
            group = val;
        } else if (!strcmp(opt, "--directory")) {
            o.directory = val;
        } else if (!strcmp(opt, "--umask")) {
            char *end;
            errno = 0;
            long m = strtol(val, &end, 8);
            if (errno || *end || m < 0 || m > 0777)
                goto bad;
            o.umask_val = (int)m;
        } else {
            fprintf(stderr, "warden exec: unknown option '%s'\n", opt);
            return 2;
        }
        if (takes)
            i++;
        continue;
    bad:
        fprintf(stderr, "warden exec: bad value '%s' for %s\n", val, opt);
        return 2;
    }
    if (i >= argc - 1) {
        fprintf(stderr, "warden exec: missing '-- PROGRAM' (options go before '--', the program "
                        "and its arguments after it)\n");
        return 2;
    }
    char **prog = &argv[i + 1];
    extern char **environ;
    if (spawn_resolve_user(user, group, &o, err, sizeof err) != 0) {
        fprintf(stderr, "warden exec: %s\n", err);
        return 2;
    }
    if (spawn_resolve_path(prog[0], environ, o.path, sizeof o.path) != 0) {
        fprintf(stderr, "warden exec: %s: not found\n", prog[0]);
        return 127;
    }
    uint64_t nofile = o.limit_nofile ? spawn_nofile_granted(o.limit_nofile) : 0;
    if (nofile < o.limit_nofile)
        fprintf(stderr, "warden exec: --limit-nofile %llu is more than may be granted; using %llu\n",
                (unsigned long long)o.limit_nofile, (unsigned long long)nofile);
    o.limit_nofile = nofile;
    const char *step = "";
    int rc = spawn_apply(&o, &step);
    if (rc != 0) {
        fprintf(stderr, "warden exec: %s: %s\n", step, strerror(-rc));
        return 1;
    }
    execve(o.path, prog, environ);
    fprintf(stderr, "warden exec: %s: %s\n", o.path, strerror(errno));
    return 127;
}

int main(int argc, char **argv) {
    /* Fixed malloc thresholds instead of glibc's dynamic ones: after a
     * large block (a status reply with every worker's metrics) is freed,
     * glibc raises both, and from then on such blocks come from the heap,
     * whose freed top is kept. The supervisor's RSS then stepped up by MBs
     * at the busiest moments of a run of restarts and never came back. */
    mallopt(M_MMAP_THRESHOLD, WARDEN_MMAP_THRESHOLD);
    mallopt(M_TRIM_THRESHOLD, WARDEN_TRIM_THRESHOLD);
    /* Before anything reads a config: check-config and the supervisor must
     * know every worker's own sections to validate them. */
    if (wd_conf_register_all() != 0) {
        fprintf(stderr, "warden: internal error: config section tables conflict\n");
        return 1;
    }
    const char *config = getenv("WARDEN_CONFIG") ? getenv("WARDEN_CONFIG") : WARDEN_DEFAULT_CONFIG;
    if (argc >= 2 && !strcmp(argv[1], "check-config"))
        return cmd_check_config(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "exec"))
        return cmd_exec(argc, argv);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "version")) {
            printf("warden %s\n", WARDEN_VERSION);
            return 0;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-c") && i + 1 < argc) {
            config = argv[++i];
        } else if (!strcmp(argv[i], "-c")) {
            fprintf(stderr, "warden: -c needs a FILE\n");
            usage(stderr);
            return 2;
        } else {
            fprintf(stderr, "warden: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    wd_supervisor_conf *conf = calloc(1, sizeof *conf);
    if (!conf)
        return 1;
    int rc = load(config, conf);
    if (rc != 0) {
        fprintf(stderr, "warden: refusing to start with errors in %s\n", config);
        free(conf);
        return rc;
    }
    wd_log_init("warden", (wd_log_level)conf->log_level);
    uv_loop_t loop;
    uv_loop_init(&loop);
    static sup s; /* large (event ring); lives for the whole run */
    char err[512];
    if (sup_init(&s, &loop, config, conf, err, sizeof err) != 0) {
        wd_error("cannot start: %s", err);
        return 1;
    }
    rc = sup_run(&s);
    /* conf is owned by s from sup_init on (replaced on reload). */
    free(s.conf);
    sup_free(&s);
    uv_loop_close(&loop);
    /* The sockets close on bus.c's closer thread. Exiting while one is half
     * closed left nng's listener and pipe objects unfreed (LeakSanitizer
     * aborted warden at exit in CI), so wait a bounded moment for the
     * closes, as the workers do; never hang the exit on nng. (No nng_fini:
     * it waits for every pipe to be reaped, and a pipe wedged by the nng
     * 1.5.2 listener bug would hang the exit.) */
    if (bus_close_drain(WARDEN_EXIT_DRAIN_MS) != 0)
        wd_warn("sockets still closing after %d ms; exiting anyway", WARDEN_EXIT_DRAIN_MS);
    return rc;
}
