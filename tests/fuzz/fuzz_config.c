/* libFuzzer target: the input is a config file. It is written to a memfd and
 * loaded with wd_conf_load_supervisor (an empty environment, so the fuzzer's
 * own WARDEN_* variables cannot matter), then the result's invariants are
 * checked: every message is "FILE:..." and terminated, every loaded program
 * has a valid name, a NULL-terminated argv inside its own argbuf, and bounded
 * lists. A violation aborts, which libFuzzer reports as a crash. */
#include "config.h"
#include "wd_error.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_INPUT_MAX (256u * 1024u) /* larger inputs only slow the search */
#define FUZZ_PATH_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    int64_t failures;
    double ratio;
} fuzz_breaker;

static const wd_conf_field fuzz_breaker_table[] = {
    {.name = "failures",
     .type = WD_CONF_INT,
     .offset = offsetof(fuzz_breaker, failures),
     .min = 1,
     .max = 100,
     .def = NULL},
    {.name = "ratio",
     .type = WD_CONF_DOUBLE,
     .offset = offsetof(fuzz_breaker, ratio),
     .dmin = 0,
     .dmax = 1,
     .def = "0.5"},
};

static void check(bool ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_config: invariant broken: %s\n", what);
        abort();
    }
}

static void check_result(int rc, const char *path, const wd_supervisor_conf *c,
                         const wd_conf_errors *e) {
    check(rc == 0 || rc == WD_ECONFIG, "return code");
    check(e->n >= 0 && e->n <= WD_CONF_ERRORS_MAX, "error count");
    check((rc == 0) == (e->n == 0), "errors iff failure");
    for (int i = 0; i < e->n; i++) {
        check(memchr(e->msg[i], '\0', WD_CONF_ERROR_LEN) != NULL, "message terminated");
        check(strncmp(e->msg[i], path, strlen(path)) == 0, "message starts with the file");
    }
    if (rc != 0)
        return;
    check(c->n_programs >= 0 && c->n_programs <= WD_CONF_PROGRAMS_MAX, "program count");
    for (int i = 0; i < c->n_programs; i++) {
        const wd_program_conf *p = &c->programs[i];
        check(wd_conf_name_valid(p->name), "program name");
        check(p->argc >= 1 && p->argc <= WD_CONF_ARGV_MAX && p->argv[p->argc] == NULL, "argv");
        for (int a = 0; a < p->argc; a++)
            check(p->argv[a] >= p->argbuf && p->argv[a] < p->argbuf + sizeof p->argbuf,
                  "argv inside argbuf");
        check(p->n_deps >= 0 && p->n_deps <= WD_CONF_DEPS_MAX, "deps");
        check(p->n_env >= 0 && p->n_env <= WD_CONF_ENV_MAX, "env");
        check(p->heartbeat_timeout_ms > p->heartbeat_interval_ms, "heartbeat order");
        check(p->log_ring_lines >= 10, "ring inherited");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static wd_supervisor_conf *conf; /* ~2 MB: allocated once, kept */
    static wd_conf_errors *errs;
    static char *const no_env[] = {NULL};
    char path[FUZZ_PATH_MAX];
    if (size > FUZZ_INPUT_MAX)
        return 0;
    if (!conf) {
        conf = malloc(sizeof *conf);
        errs = malloc(sizeof *errs);
        if (!conf || !errs)
            abort();
        wd_conf_register_section("breaker:*", fuzz_breaker_table, 2, sizeof(fuzz_breaker));
    }
    int fd = memfd_create("fuzz_config", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int rc = wd_conf_load_supervisor(path, no_env, conf, errs);
    check_result(rc, path, conf, errs);
    close(fd);
    return 0;
}
