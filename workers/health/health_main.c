/* warden-health: the worker's ops (init, start, stop, fini). See hl.h for
 * the threads and docs/HEALTH.md for the endpoints. */
#include "hl.h"
#include "log.h"
#include "wd_error.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define HL_DEFAULT_RUN_DIR "/run/warden"

/* Reads the bearer token (first line, surrounding blanks dropped). */
static int read_token(hl *h) {
    char buf[HL_TOKEN_MAX + 2];
    int fd = open(h->conf.api_token_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        wd_error("api_token_file %s: %s", h->conf.api_token_file, strerror(errno));
        return WD_ECONFIG;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        wd_error("api_token_file %s: %s", h->conf.api_token_file, strerror(errno));
        return WD_ECONFIG;
    }
    buf[n] = '\0';
    char *p = buf;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t len = strcspn(p, "\r\n");
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    if (len == 0 || len > HL_TOKEN_MAX) {
        wd_error("api_token_file %s: the token must be 1..%d bytes on the first line",
                 h->conf.api_token_file, HL_TOKEN_MAX);
        return WD_ECONFIG;
    }
    memcpy(h->token, p, len);
    h->token[len] = '\0';
    h->token_len = len;
    return 0;
}

/* nng has no connection limit: many idle clients cost descriptors, so take
 * all the process may have. */
static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            wd_warn("cannot raise the open files limit: %s", strerror(errno));
    }
}

static int hl_init(wrk_ctx *ctx, int argc, char **argv) {
    wd_conf_errors errs = {0};
    if (argc > 1) {
        fprintf(stderr, "warden-health takes no arguments; settings are in the [health] section\n");
        return WD_EINVAL;
    }
    (void)argv;
    hl *h = calloc(1, sizeof *h);
    if (h == NULL)
        return WD_ENOMEM;
    h->ctx = ctx;
    if (hl_conf_load(wrk_config_path(ctx), NULL, &h->conf, &errs) != 0) {
        for (int i = 0; i < errs.n; i++)
            wd_error("%s", errs.msg[i]);
        if (errs.n == 0)
            wd_error("cannot load the [health] section");
        free(h);
        return WD_ECONFIG;
    }
    if (h->conf.probe_deadline_ms < 2 * h->conf.snapshot_ttl_ms)
        wd_warn("probe_deadline (%llu ms) is under two snapshot_ttl (%llu ms): /livez may flap",
                (unsigned long long)h->conf.probe_deadline_ms,
                (unsigned long long)h->conf.snapshot_ttl_ms);
    if (h->conf.api_token_file[0] != '\0' && read_token(h) != 0) {
        free(h);
        return WD_ECONFIG;
    }
    const char *rd = getenv("WARDEN_RUN_DIR");
    snprintf(h->run_dir, sizeof h->run_dir, "%s", rd != NULL && rd[0] ? rd : HL_DEFAULT_RUN_DIR);
    const char *cu = getenv("WARDEN_CONTROL_URL"), *eu = getenv("WARDEN_EVENTS_URL");
    if (cu != NULL && cu[0])
        snprintf(h->control_url, sizeof h->control_url, "%s", cu);
    else
        snprintf(h->control_url, sizeof h->control_url, "ipc://%s/control.sock", h->run_dir);
    if (eu != NULL && eu[0])
        snprintf(h->events_url, sizeof h->events_url, "%s", eu);
    else
        snprintf(h->events_url, sizeof h->events_url, "ipc://%s/events.sock", h->run_dir);
    snprintf(h->audit_path, sizeof h->audit_path, "%s/audit.log", h->run_dir);
    pthread_mutex_init(&h->sh.mu, NULL);
    raise_nofile();
    wrk_set_data(ctx, h);
    return 0;
}

static int hl_start(wrk_ctx *ctx) {
    hl *h = wrk_data(ctx);
    char err[256] = "";
    int rc = hl_snapshot_start(h);
    if (rc != 0)
        return rc;
    if ((rc = hl_http_start(h, err, sizeof err)) != 0) {
        wd_error("%s", err);
        return rc;
    }
    wd_info("serving http://%s (snapshot_ttl %llu ms, probe_deadline %llu ms, token %s)",
            h->conf.listen, (unsigned long long)h->conf.snapshot_ttl_ms,
            (unsigned long long)h->conf.probe_deadline_ms, h->token_len ? "required" : "off");
    wrk_ready(ctx);
    return 0;
}

static void hl_stop(wrk_ctx *ctx) {
    hl *h = wrk_data(ctx);
    /* Pending POSTs are answered (503) before the server goes, so its stop
     * never waits on one of them. */
    hl_snapshot_stop(h);
    hl_http_stop(h);
}

static void hl_fini(wrk_ctx *ctx) {
    hl *h = wrk_data(ctx);
    if (h == NULL)
        return;
    if (!h->stopping)
        hl_snapshot_stop(h);
    hl_http_stop(h);
    hl_view_unref(h->sh.view);
    json_decref(h->last_status);
    json_decref(h->details);
    pthread_mutex_destroy(&h->sh.mu);
    free(h);
}

static const wrk_ops health_ops = {
    .name = "health",
    .init = hl_init,
    .start = hl_start,
    .stop = hl_stop,
    .fini = hl_fini,
};

int main(int argc, char **argv) { return wrk_main(argc, argv, &health_ops); }
