/* warden-paper-broker [--listen HOST:PORT] [--redis-url URL] [--key-prefix P]
 *                     [--error-rate F] [--latency-ms N] [--rate-429 F]
 *                     [--retry-after-s N] [--hang-rate F] [--seed N]
 *                     [--max-orders N]
 * A plain program (supervised as [program:NAME]): SIGTERM or SIGINT stops
 * it, exit 0; bad flags exit 2. See docs/BROKER.md. */
#include "pb_server.h"
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

static uv_signal_t sigterm_h, sigint_h;

static void on_signal(uv_signal_t *h, int sig) {
    pb_server *s = h->data;
    wd_info("signal %d: stopping", sig);
    uv_close((uv_handle_t *)&sigterm_h, NULL);
    uv_close((uv_handle_t *)&sigint_h, NULL);
    pb_server_stop(s);
    if (s->redis != NULL) {
        wd_redis_close(s->redis, NULL, NULL);
        s->redis = NULL;
    }
}

int pb_main(int argc, char **argv) {
    static pb_server s; /* large (the recent ring): not on the stack */
    const char *redis_url = "";
    uint64_t seed = wd_clock_mono_ns(), max_orders = PB_ORDERS_DEFAULT;
    char err[512];
    snprintf(s.listen, sizeof s.listen, "%s", PB_LISTEN_DEFAULT);
    snprintf(s.key_prefix, sizeof s.key_prefix, "md:");
    wd_log_init("paper_broker", WD_LOG_INFO);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (v == NULL || strncmp(a, "--", 2) != 0) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(a, "--listen") == 0)
            rc = snprintf(s.listen, sizeof s.listen, "%s", v) >= (int)sizeof s.listen ? WD_EINVAL : 0;
        else if (strcmp(a, "--redis-url") == 0)
            redis_url = v;
        else if (strcmp(a, "--key-prefix") == 0)
            rc = snprintf(s.key_prefix, sizeof s.key_prefix, "%s", v) >= (int)sizeof s.key_prefix
                     ? WD_EINVAL : 0;
        else if (strcmp(a, "--error-rate") == 0)
            rc = flag_rate(a, v, &s.faults.error_rate);
        else if (strcmp(a, "--rate-429") == 0)
            rc = flag_rate(a, v, &s.faults.rate_429);
        else if (strcmp(a, "--hang-rate") == 0)
            rc = flag_rate(a, v, &s.faults.hang_rate);
        else if (strcmp(a, "--latency-ms") == 0)
            rc = flag_uint(a, v, 600000, &s.faults.latency_ms);
        else if (strcmp(a, "--retry-after-s") == 0)
            rc = flag_uint(a, v, 3600, &s.faults.retry_after_s);
        else if (strcmp(a, "--seed") == 0)
            rc = flag_uint(a, v, UINT64_MAX >> 1, &seed);
        else if (strcmp(a, "--max-orders") == 0)
            rc = flag_uint(a, v, 100000000, &max_orders);
        else {
            fprintf(stderr, "warden-paper-broker: unknown flag '%.40s'\n", a);
            usage();
            return 2;
        }
        if (rc != 0) {
            if (rc == WD_EINVAL)
                fprintf(stderr, "warden-paper-broker: bad value for %s\n", a);
            return 2;
        }
    }
    wd_rng_seed(&s.rng, seed);
    pb_orders_init(&s.orders, max_orders ? max_orders : 1);
    uv_loop_t *loop = uv_default_loop();
    if (redis_url[0] != '\0') {
        wd_redis_opts o;
        wd_redis_opts_default(&o);
        o.url = redis_url;
        o.name = "broker_prices";
        o.connect_timeout_ms = 1000;
        o.command_timeout_ms = 1000;
        o.reconnect_max_ms = 5000;
        if (wd_redis_open(loop, &o, &s.redis, err, sizeof err) != 0) {
            fprintf(stderr, "warden-paper-broker: --redis-url: %s\n", err);
            return 2;
        }
    }
    if (pb_server_start(&s, loop, err, sizeof err) != 0) {
        wd_error("%s", err);
        return 1;
    }
    uv_signal_init(loop, &sigterm_h);
    uv_signal_init(loop, &sigint_h);
    sigterm_h.data = sigint_h.data = &s;
    uv_signal_start(&sigterm_h, on_signal, SIGTERM);
    uv_signal_start(&sigint_h, on_signal, SIGINT);
    wd_info("listening on http://%s (prices: %s)", s.listen,
            redis_url[0] ? "redis" : "none: every order is refused");
    uv_run(loop, UV_RUN_DEFAULT);
    wd_info("stopped: %llu orders, %llu posts (%llu repeated)", (unsigned long long)s.orders.n,
            (unsigned long long)s.posts, (unsigned long long)s.duplicate_posts);
    pb_orders_free(&s.orders);
    uv_loop_close(loop);
    return 0;
}
