/* Redis client options: defaults, validation, the url, and the metric
 * families. See redis.h. */
#include "redis_int.h"
#include "text.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wd_error.h"

#define RDS_DEFAULT_PORT 6379
#define RDS_PORT_TEXT_MAX 5

static const double rds_duration_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                             1,      2.5,     5,      10};

void rds_set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void wd_redis_opts_default(wd_redis_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = RDS_DEFAULT_PORT;
    o->connect_timeout_ms = 2000;
    o->command_timeout_ms = 2000;
    o->ping_interval_ms = 5000;
    o->reconnect_initial_ms = 1000;
    o->reconnect_max_ms = 120000;
    o->reconnect_multiplier = 1.6;
    o->reconnect_jitter = 0.2;
    brk_config_defaults(&o->breaker);
    o->max_pending = WD_REDIS_PENDING_DEFAULT;
    o->name = "redis";
}

/* Copies n bytes of %-encoded text into dst (cap bytes with the NUL). */
static int pct_decode(char *dst, size_t cap, const char *s, size_t n) {
    int rc = wd_pct_decode(s, n, false, dst, cap);
    return rc == WD_ETOOBIG ? WD_ERANGE : rc;
}

static int parse_uint(const char *s, size_t n, long max, long *out) {
    long v = 0;
    if (n == 0)
        return WD_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return WD_EINVAL;
        v = v * 10 + (s[i] - '0');
        if (v > max)
            return WD_ERANGE;
    }
    *out = v;
    return 0;
}

/* redis://[[user]:password@]host[:port][/db]. Error texts describe the part
 * that is wrong without quoting the url, which may hold the password. */
static int parse_url(wd_redis *r, const char *url, char *err, size_t errlen) {
    static const char scheme[] = "redis://";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0) {
        rds_set_err(err, errlen, "redis url: must start with redis://");
        return WD_EINVAL;
    }
    const char *p = url + sizeof scheme - 1;
    const char *end = p + strlen(p);
    if (memchr(p, '?', (size_t)(end - p)) || memchr(p, '#', (size_t)(end - p))) {
        rds_set_err(err, errlen, "redis url: query and fragment are not supported");
        return WD_EINVAL;
    }
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = NULL;
    for (const char *q = p; q < (slash ? slash : end); q++)
        if (*q == '@')
            auth_end = q; /* the last '@': a password may hold an unencoded one */
    if (auth_end) {
        const char *colon = memchr(p, ':', (size_t)(auth_end - p));
        if (!colon) {
            rds_set_err(err, errlen, "redis url: credentials must be [user]:password@");
            return WD_EINVAL;
        }
        if (pct_decode(r->user, sizeof r->user, p, (size_t)(colon - p)) != 0) {
            rds_set_err(err, errlen, "redis url: bad or too long user name");
            return WD_EINVAL;
        }
        if (pct_decode(r->password, sizeof r->password, colon + 1,
                       (size_t)(auth_end - colon - 1)) != 0) {
            rds_set_err(err, errlen, "redis url: bad or too long password");
            return WD_EINVAL;
        }
        p = auth_end + 1;
    }
    const char *host_end = slash ? slash : end, *port_s = NULL;
    const char *h = p, *he;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(host_end - p));
        if (!rb) {
            rds_set_err(err, errlen, "redis url: unterminated [ in host");
            return WD_EINVAL;
        }
        h = p + 1;
        he = rb;
        if (rb + 1 < host_end) {
            if (rb[1] != ':') {
                rds_set_err(err, errlen, "redis url: junk after ]");
                return WD_EINVAL;
            }
            port_s = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(host_end - p));
        he = colon ? colon : host_end;
        if (colon)
            port_s = colon + 1;
    }
    if (he == h || (size_t)(he - h) > WD_REDIS_HOST_MAX) {
        rds_set_err(err, errlen, "redis url: missing or too long host");
        return WD_EINVAL;
    }
    memcpy(r->host, h, (size_t)(he - h));
    r->host[he - h] = '\0';
    if (port_s) {
        long port;
        if (parse_uint(port_s, (size_t)(host_end - port_s), 65535, &port) != 0 || port == 0) {
            rds_set_err(err, errlen, "redis url: port must be 1..65535");
            return WD_EINVAL;
        }
        r->port = (int)port;
    }
    if (slash && slash + 1 < end) {
        long db;
        if (parse_uint(slash + 1, (size_t)(end - slash - 1), WD_REDIS_DB_MAX, &db) != 0) {
            rds_set_err(err, errlen, "redis url: database must be a number 0..%d",
                        WD_REDIS_DB_MAX);
            return WD_EINVAL;
        }
        r->db = (int)db;
    }
    return 0;
}

static int copy_str(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap)
        return WD_ERANGE;
    memcpy(dst, src, n + 1);
    return 0;
}

int rds_opts_apply(wd_redis *r, const wd_redis_opts *o, char *err, size_t errlen) {
    const char *name = o->name && *o->name ? o->name : "redis";
    if (copy_str(r->name, sizeof r->name, name) != 0) {
        rds_set_err(err, errlen, "redis: name longer than %d bytes", WD_REDIS_NAME_MAX);
        return WD_ERANGE;
    }
    r->port = o->port;
    r->db = o->db;
    if (o->url && *o->url) {
        if (strlen(o->url) > WD_REDIS_URL_MAX) {
            rds_set_err(err, errlen, "redis url: longer than %d bytes", WD_REDIS_URL_MAX);
            return WD_ERANGE;
        }
        r->port = RDS_DEFAULT_PORT;
        r->db = 0;
        int rc = parse_url(r, o->url, err, errlen);
        if (rc != 0)
            return rc;
    } else if (copy_str(r->host, sizeof r->host, o->host && *o->host ? o->host : "127.0.0.1")) {
        rds_set_err(err, errlen, "redis: host longer than %d bytes", WD_REDIS_HOST_MAX);
        return WD_ERANGE;
    }
    if (o->user && *o->user && copy_str(r->user, sizeof r->user, o->user) != 0) {
        rds_set_err(err, errlen, "redis: user longer than %d bytes", WD_REDIS_USER_MAX);
        return WD_ERANGE;
    }
    if (o->password && *o->password &&
        copy_str(r->password, sizeof r->password, o->password) != 0) {
        rds_set_err(err, errlen, "redis: password longer than %d bytes", WD_REDIS_PASSWORD_MAX);
        return WD_ERANGE;
    }
    if (r->user[0] && !r->password[0]) {
        rds_set_err(err, errlen, "redis: a user needs a password");
        return WD_EINVAL;
    }
    if (r->port < 1 || r->port > 65535) {
        rds_set_err(err, errlen, "redis: port %d is not in 1..65535", r->port);
        return WD_ERANGE;
    }
    if (r->db < 0 || r->db > WD_REDIS_DB_MAX) {
        rds_set_err(err, errlen, "redis: db %d is not in 0..%d", r->db, WD_REDIS_DB_MAX);
        return WD_ERANGE;
    }
    if (o->connect_timeout_ms == 0 || o->command_timeout_ms == 0 ||
        o->reconnect_initial_ms == 0 || o->reconnect_max_ms < o->reconnect_initial_ms) {
        rds_set_err(err, errlen, "redis: timeouts and reconnect_initial must be > 0 and "
                                 "reconnect_max >= reconnect_initial");
        return WD_ERANGE;
    }
    if (!(o->reconnect_multiplier >= 1.0 && o->reconnect_multiplier <= 100.0) ||
        !(o->reconnect_jitter >= 0.0 && o->reconnect_jitter <= 0.5)) {
        rds_set_err(err, errlen, "redis: reconnect_multiplier must be 1..100 and "
                                 "reconnect_jitter 0..0.5");
        return WD_ERANGE;
    }
    if (o->max_pending == 0 || o->max_pending > WD_REDIS_PENDING_MAX) {
        rds_set_err(err, errlen, "redis: max_pending must be 1..%d", WD_REDIS_PENDING_MAX);
        return WD_ERANGE;
    }
    const brk_config *b = &o->breaker;
    if (b->failure_threshold < 1 || b->open_ns == 0 || b->open_max_ns < b->open_ns ||
        !(b->growth >= 1.0) || !(b->jitter >= 0.0 && b->jitter <= 0.5) || b->half_open_max < 1) {
        rds_set_err(err, errlen, "redis: bad breaker settings (start from brk_config_defaults)");
        return WD_EINVAL;
    }
    r->connect_timeout_ms = o->connect_timeout_ms;
    r->command_timeout_ms = o->command_timeout_ms;
    r->ping_interval_ms = o->ping_interval_ms;
    r->reconnect_initial_ms = o->reconnect_initial_ms;
    r->reconnect_max_ms = o->reconnect_max_ms;
    r->reconnect_multiplier = o->reconnect_multiplier;
    r->reconnect_jitter = o->reconnect_jitter;
    r->max_pending = o->max_pending;
    return 0;
}

int wd_redis_metrics_register(wd_metrics *reg, wd_redis_metrics *m) {
    static const char *const l_client[] = {"client", NULL};
    static const char *const l_command[] = {"client", "command", NULL};
    static const char *const l_class[] = {"client", "class", NULL};
    static const char *const l_state[] = {"client", "state", NULL};
    if (!reg || !m)
        return WD_EINVAL;
    memset(m, 0, sizeof *m);
    if (!(m->commands = wd_metric_counter(reg, "warden_redis_commands_total",
                                          "Redis commands submitted, by command name.",
                                          l_command)) ||
        !(m->errors = wd_metric_counter(reg, "warden_redis_errors_total",
                                        "Redis commands that failed, by error class.", l_class)) ||
        !(m->rejected = wd_metric_counter(reg, "warden_redis_rejected_total",
                                          "Redis commands refused while the breaker was open.",
                                          l_client)) ||
        !(m->reconnects = wd_metric_counter(reg, "warden_redis_reconnects_total",
                                            "Redis connection attempts after the first.",
                                            l_client)) ||
        !(m->duration = wd_metric_histogram(
              reg, "warden_redis_command_duration_seconds",
              "Time from submission to completion of Redis commands.", l_client,
              rds_duration_bounds, sizeof rds_duration_bounds / sizeof rds_duration_bounds[0])) ||
        !(m->state = wd_metric_gauge(reg, "warden_redis_connection_state",
                                     "1 for the current state of the Redis connection.",
                                     l_state)) ||
        !(m->messages = wd_metric_counter(reg, "warden_redis_messages_total",
                                          "Redis pub/sub messages delivered.", l_client)))
        return wd_metrics_error(reg);
    return 0;
}

static const char *const rds_class_names[3] = {"transient", "permanent", "critical"};

int rds_metrics_init(wd_redis *r, const wd_redis_opts *o, char *err, size_t errlen) {
    if (o->metric_set) {
        r->m = *o->metric_set;
    } else if (o->metrics) {
        int rc = wd_redis_metrics_register(o->metrics, &r->m);
        if (rc != 0) {
            rds_set_err(err, errlen,
                        "redis: cannot register metrics (%s)%s", wd_strerror(rc),
                        rc == WD_EEXIST ? ": for several clients on one registry, register "
                                          "once with wd_redis_metrics_register and pass "
                                          "metric_set"
                                        : "");
            return WD_ECONFIG;
        }
    } else {
        return 0;
    }
    if (!r->m.commands || !r->m.errors || !r->m.rejected || !r->m.reconnects ||
        !r->m.duration || !r->m.state || !r->m.messages) {
        rds_set_err(err, errlen, "redis: incomplete metric_set");
        return WD_EINVAL;
    }
    const char *client[] = {r->name, NULL};
    for (int i = 0; i < 3; i++) {
        const char *v[] = {r->name, rds_class_names[i], NULL};
        r->s_errors[i] = wd_metric_series(r->m.errors, v);
    }
    for (int i = 0; i < WD_REDIS_STATES; i++) {
        const char *v[] = {r->name, wd_redis_state_name((wd_redis_state)i), NULL};
        r->s_state[i] = wd_metric_series(r->m.state, v);
    }
    r->s_rejected = wd_metric_series(r->m.rejected, client);
    r->s_reconnects = wd_metric_series(r->m.reconnects, client);
    r->s_duration = wd_metric_series(r->m.duration, client);
    r->s_messages = wd_metric_series(r->m.messages, client);
    r->have_metrics = true;
    return 0;
}

void rds_metric_state(wd_redis *r, wd_redis_state s) {
    if (!r->have_metrics)
        return;
    for (int i = 0; i < WD_REDIS_STATES; i++)
        wd_gauge_set(r->s_state[i], i == (int)s ? 1 : 0);
}

const char *wd_redis_state_name(wd_redis_state s) {
    switch (s) {
    case WD_REDIS_CONNECTING: return "connecting";
    case WD_REDIS_READY: return "ready";
    case WD_REDIS_BACKOFF: return "backoff";
    case WD_REDIS_CLOSED: return "closed";
    }
    return "unknown";
}

const redisReply *wd_redis_reply_at(const redisReply *reply, size_t i) {
    if (!reply || reply->type != REDIS_REPLY_ARRAY || i >= reply->elements)
        return NULL;
    return reply->element[i];
}
