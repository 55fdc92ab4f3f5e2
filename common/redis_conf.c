/* The config table of a [redis]-style section, for workers to apply with
 * wd_conf_apply_section() (and register with wd_conf_register_section() so
 * check-config knows it). The password may be given as its own key so the
 * url (which may be logged by a careless caller) need not carry it; the
 * environment override WARDEN_<SECTION>_PASSWORD keeps it out of files. */
#include "redis.h"

#include <stddef.h>

#define RC_MS_PER_S 1000
#define RC_MS_PER_M (60 * RC_MS_PER_S)
#define RC_MS_PER_H (60 * RC_MS_PER_M)

#define RF(n, t, m, lo, hi, d, h)                                                                  \
    {                                                                                              \
        .name = n, .type = t, .offset = offsetof(wd_redis_conf, m),                                \
        .size = sizeof(((wd_redis_conf *)0)->m), .min = lo, .max = hi, .def = d, .help = h         \
    }
#define RD(n, m, lo, hi, d, h)                                                                     \
    {                                                                                              \
        .name = n, .type = WD_CONF_DOUBLE, .offset = offsetof(wd_redis_conf, m),                   \
        .size = sizeof(double), .dmin = lo, .dmax = hi, .def = d, .help = h                        \
    }

const wd_conf_field wd_redis_conf_fields[] = {
    RF("url", WD_CONF_STRING, url, 0, 0, "redis://127.0.0.1:6379",
       "Redis server: redis://[[user]:password@]host[:port][/db]."),
    RF("password", WD_CONF_STRING, password, 0, 0, "",
       "AUTH password (wins over one in the url); never logged."),
    RF("connect_timeout", WD_CONF_DURATION, connect_timeout_ms, 10, 10 * RC_MS_PER_M, "2s",
       "Bound on resolving, connecting and the handshake (AUTH, SELECT, PING)."),
    RF("command_timeout", WD_CONF_DURATION, command_timeout_ms, 10, 10 * RC_MS_PER_M, "2s",
       "Bound on every command and health PING; a late reply drops the connection."),
    RF("ping_interval", WD_CONF_DURATION, ping_interval_ms, 0, RC_MS_PER_H, "5s",
       "Health check PING interval on an idle or busy connection; 0 turns it off."),
    RF("reconnect_initial", WD_CONF_DURATION, reconnect_initial_ms, 1, 10 * RC_MS_PER_M, "1s",
       "Delay before the first reconnect attempt."),
    RF("reconnect_max", WD_CONF_DURATION, reconnect_max_ms, 1, RC_MS_PER_H, "2m",
       "Cap of the growing reconnect delay."),
    RD("reconnect_multiplier", reconnect_multiplier, 1.0, 10.0, "1.6",
       "Growth of the reconnect delay per failed attempt."),
    RD("reconnect_jitter", reconnect_jitter, 0.0, 0.5, "0.2",
       "Random spread of each reconnect delay, as a +- fraction."),
};
const size_t wd_redis_conf_n_fields = sizeof wd_redis_conf_fields / sizeof wd_redis_conf_fields[0];

void wd_redis_conf_to_opts(const wd_redis_conf *c, wd_redis_opts *o) {
    o->url = c->url;
    o->password = c->password[0] ? c->password : o->password;
    o->connect_timeout_ms = c->connect_timeout_ms;
    o->command_timeout_ms = c->command_timeout_ms;
    o->ping_interval_ms = c->ping_interval_ms;
    o->reconnect_initial_ms = c->reconnect_initial_ms;
    o->reconnect_max_ms = c->reconnect_max_ms;
    o->reconnect_multiplier = c->reconnect_multiplier;
    o->reconnect_jitter = c->reconnect_jitter;
}
