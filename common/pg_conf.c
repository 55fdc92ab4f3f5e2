/* The [postgres] config table: data only, applied with
 * wd_conf_apply_section(). The bounds match what wd_pg_open accepts, so a
 * loaded section opens (reconnect_max < reconnect_initial excepted, which
 * wd_pg_open reports). The DSN may hold a password: prefer a password file
 * (passfile=, ~/.pgpass) or PGPASSWORD in the environment over writing it
 * here. */
#include "pg.h"

#include <stddef.h>

#define PGF(n, t, m, lo, hi, d, h)                                                                 \
    {                                                                                              \
        .name = n, .type = t, .offset = offsetof(wd_pg_conf, m),                                   \
        .size = sizeof(((wd_pg_conf *)0)->m), .min = lo, .max = hi, .def = d, .help = h            \
    }
#define PGD(n, m, lo, hi, d, h)                                                                    \
    {                                                                                              \
        .name = n, .type = WD_CONF_DOUBLE, .offset = offsetof(wd_pg_conf, m),                      \
        .size = sizeof(double), .dmin = lo, .dmax = hi, .def = d, .help = h                        \
    }

#define PG_MS_PER_S 1000LL
#define PG_MS_PER_H (3600LL * PG_MS_PER_S)

const wd_conf_field wd_pg_conf_fields[] = {
    PGF("dsn", WD_CONF_STRING, dsn, 0, 0, NULL,
        "Required. libpq connection string or postgresql:// URI; may hold a password, "
        "which is never logged."),
    PGF("connect_timeout", WD_CONF_DURATION, connect_timeout_ms, 1, 10 * 60 * PG_MS_PER_S, "10s",
        "Longest time one connection attempt may take."),
    PGF("statement_timeout", WD_CONF_DURATION, statement_timeout_ms, 0, PG_MS_PER_H, "30s",
        "Server-side statement_timeout set at connect (0: none); the client drops a "
        "connection that stays silent 2s past it."),
    PGF("reconnect_initial", WD_CONF_DURATION, reconnect_initial_ms, 1, PG_MS_PER_H, "1s",
        "First delay before reconnecting after a failure."),
    PGF("reconnect_max", WD_CONF_DURATION, reconnect_max_ms, 1, PG_MS_PER_H, "120s",
        "Longest delay between reconnect attempts; at least reconnect_initial."),
    PGD("reconnect_multiplier", reconnect_multiplier, 1.0, 10.0, "1.6",
        "Growth of the reconnect delay after each failed attempt."),
    PGD("reconnect_jitter", reconnect_jitter, 0.0, 0.5, "0.2",
        "Random spread of each reconnect delay, as a fraction (0.2 = +-20 %)."),
};

const size_t wd_pg_conf_n_fields = sizeof wd_pg_conf_fields / sizeof wd_pg_conf_fields[0];

void wd_pg_conf_to_opts(const wd_pg_conf *c, wd_pg_opts *o) {
    o->conninfo = c->dsn;
    o->connect_timeout_ms = c->connect_timeout_ms;
    o->statement_timeout_ms = c->statement_timeout_ms;
    o->reconnect_initial_ms = c->reconnect_initial_ms;
    o->reconnect_max_ms = c->reconnect_max_ms;
    o->reconnect_multiplier = c->reconnect_multiplier;
    o->reconnect_jitter = c->reconnect_jitter;
}
