/* warden-paper-broker [--listen HOST:PORT] [--redis-url URL] [--key-prefix P]
 *                     [--error-rate F] [--latency-ms N] [--rate-429 F]
 *                     [--retry-after-s N] [--hang-rate F] [--seed N]
 *                     [--max-orders N]
 * Runs on the worker runtime (common/worker.h), so it may be supervised as
 * a [worker:NAME] (heartbeats, its Redis breaker in status, `wardenctl call
 * NAME breakers|breaker-reset|stats`) or, as before, as a [program:NAME] or
 * by hand (standalone: no heartbeats). SIGTERM or SIGINT stops it, exit 0;
 * bad flags exit 2. See docs/BROKER.md. */
#include "pb_server.h"
#include "worker.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "wd_error.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PB_LISTEN_DEFAULT "127.0.0.1:8089"

static void usage(void) {
    fprintf(stderr, "usage: warden-paper-broker [--listen HOST:PORT] [--redis-url URL] "
                    "[--key-prefix P] [--error-rate F] [--latency-ms N] [--rate-429 F] "
                    "[--retry-after-s N] [--hang-rate F] [--seed N] [--max-orders N]\n");
}

static int flag_rate(const char *name, const char *v, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno != 0 || *end != '\0' || end == v || !(d >= 0 && d <= 1)) {
        fprintf(stderr, "warden-paper-broker: %s must be a number in [0, 1], not '%.40s'\n",
                name, v);
        return WD_EINVAL;
    }
    *out = d;
    return 0;
}

static int flag_uint(const char *name, const char *v, uint64_t max, uint64_t *out) {
    int64_t n;
    if (wd_parse_int(v, &n) != 0 || n < 0 || (uint64_t)n > max) {
        fprintf(stderr, "warden-paper-broker: %s must be an integer in [0, %llu], not '%.40s'\n",
                name, (unsigned long long)max, v);
        return WD_EINVAL;
    }
    *out = (uint64_t)n;
    return 0;
}

/* The one broker of this process: large (the recent ring), so not on the
 * stack; the runtime's callbacks reach it through wrk_data. */
static pb_server pb;
static struct {
    char redis_url[WD_REDIS_URL_MAX + 1];
    uint64_t seed, max_orders;
} pb_opts;

static int pb_parse(int argc, char **argv) {
    pb_server *s = &pb;
    pb_opts.seed = wd_clock_mono_ns();
    pb_opts.max_orders = PB_ORDERS_DEFAULT;
    snprintf(s->listen, sizeof s->listen, "%s", PB_LISTEN_DEFAULT);
    snprintf(s->key_prefix, sizeof s->key_prefix, "md:");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (v == NULL || strncmp(a, "--", 2) != 0) {
            usage();
            return WD_EINVAL;
        }
        i++;
        if (strcmp(a, "--listen") == 0)
            rc = snprintf(s->listen, sizeof s->listen, "%s", v) >= (int)sizeof s->listen ? WD_EINVAL : 0;
        else if (strcmp(a, "--redis-url") == 0)
            rc = snprintf(pb_opts.redis_url, sizeof pb_opts.redis_url, "%s", v) >=
                         (int)sizeof pb_opts.redis_url ? WD_EINVAL : 0;
        else if (strcmp(a, "--key-prefix") == 0)
            rc = snprintf(s->key_prefix, sizeof s->key_prefix, "%s", v) >= (int)sizeof s->key_prefix
                     ? WD_EINVAL : 0;
        else if (strcmp(a, "--error-rate") == 0)
            rc = flag_rate(a, v, &s->faults.error_rate);
        else if (strcmp(a, "--rate-429") == 0)
            rc = flag_rate(a, v, &s->faults.rate_429);
        else if (strcmp(a, "--hang-rate") == 0)
            rc = flag_rate(a, v, &s->faults.hang_rate);
        else if (strcmp(a, "--latency-ms") == 0)
            rc = flag_uint(a, v, 600000, &s->faults.latency_ms);
        else if (strcmp(a, "--retry-after-s") == 0)
            rc = flag_uint(a, v, 3600, &s->faults.retry_after_s);
        else if (strcmp(a, "--seed") == 0)
            rc = flag_uint(a, v, UINT64_MAX >> 1, &pb_opts.seed);
        else if (strcmp(a, "--max-orders") == 0)
            rc = flag_uint(a, v, 100000000, &pb_opts.max_orders);
        else {
            fprintf(stderr, "warden-paper-broker: unknown flag '%.40s'\n", a);
            usage();
            return WD_EINVAL;
        }
        if (rc != 0) {
            if (rc == WD_EINVAL)
                fprintf(stderr, "warden-paper-broker: bad value for %s\n", a);
            return rc;
        }
    }
    return 0;
}

static int pb_init(wrk_ctx *ctx, int argc, char **argv) {
    int rc = pb_parse(argc, argv);
    if (rc != 0)
        return rc;
    wd_rng_seed(&pb.rng, pb_opts.seed);
    if ((rc = pb_orders_init(&pb.orders, pb_opts.max_orders ? pb_opts.max_orders : 1)) != 0) {
        fprintf(stderr, "warden-paper-broker: order table: %s\n", wd_strerror(rc));
        return rc;
    }
    pb.loop = wrk_loop(ctx);
    wrk_set_data(ctx, &pb);
    return 0;
}

static int pb_start(wrk_ctx *ctx) {
    pb_server *s = wrk_data(ctx);
    char err[512];
    int rc;
    if (pb_opts.redis_url[0] != '\0' &&
        (rc = pb_prices_open(s, ctx, pb_opts.redis_url, err, sizeof err)) != 0) {
        wd_error("--redis-url: %s", err);
        return rc;
    }
    if ((rc = pb_server_start(s, s->loop, err, sizeof err)) != 0) {
        wd_error("%s", err);
        pb_prices_close(s);
        return rc;
    }
    wd_info("listening on http://%s (prices: %s)", s->listen,
            pb_opts.redis_url[0] ? "redis" : "none: every order is refused");
    wrk_ready(ctx);
    return 0;
}

static void pb_stop(wrk_ctx *ctx) {
    pb_server *s = wrk_data(ctx);
    pb_server_stop(s);
    pb_prices_close(s);
}

static int pb_command(wrk_ctx *ctx, const proto_ctl_request *req, json_t **data, char *err,
                      size_t errlen) {
    if (strcmp(req->cmd, "stats") == 0) {
        *data = pb_server_stats(wrk_data(ctx));
        return *data != NULL ? 0 : WD_ENOMEM;
    }
    snprintf(err, errlen, "unknown command '%.64s' (stats, breakers, breaker-reset)", req->cmd);
    return WD_EINVAL;
}

static void pb_metrics(wrk_ctx *ctx, proto_heartbeat *hb) {
    const pb_server *s = wrk_data(ctx);
    const struct {
        const char *name;
        uint64_t v;
    } m[] = {{"warden_broker_orders_filled_total", s->filled},
             {"warden_broker_posts_total", s->posts},
             {"warden_broker_price_errors_total", s->price_errors},
             {"warden_broker_breaker_resets_total", s->breaker_resets}};
    for (size_t i = 0; i < sizeof m / sizeof m[0] && hb->n_metrics < PROTO_METRICS_MAX; i++) {
        proto_metric *pm = &hb->metrics[hb->n_metrics++];
        snprintf(pm->name, sizeof pm->name, "%s", m[i].name);
        pm->value = (double)m[i].v;
    }
}

static void pb_fini(wrk_ctx *ctx) {
    pb_server *s = wrk_data(ctx);
    if (s == NULL)
        return;
    wd_info("stopped: %llu orders, %llu posts (%llu repeated)", (unsigned long long)s->orders.n,
            (unsigned long long)s->posts, (unsigned long long)s->duplicate_posts);
    pb_orders_free(&s->orders);
}

static const wrk_ops pb_ops = {
    .name = "paper_broker", .init = pb_init, .start = pb_start, .stop = pb_stop,
    .command = pb_command, .metrics = pb_metrics, .fini = pb_fini,
};

int pb_main(int argc, char **argv) { return wrk_main(argc, argv, &pb_ops); }
