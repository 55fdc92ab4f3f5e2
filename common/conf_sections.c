/* See conf_sections.h. */
#include "conf_sections.h"

#include "agg_conf.h"
#include "breaker_conf.h"
#include "config.h"
#include "health_conf.h"
#include "notifier_conf.h"
#include "pg.h"
#include "pm_conf.h"
#include "redis.h"

int wd_conf_register_all(void) {
    int rc, first = 0;
    if ((rc = brk_conf_register()) != 0 && first == 0)
        first = rc;
    if ((rc = agg_conf_register()) != 0 && first == 0)
        first = rc;
    if ((rc = hl_conf_register()) != 0 && first == 0)
        first = rc;
    if ((rc = pm_conf_register()) != 0 && first == 0)
        first = rc;
    if ((rc = nt_conf_register()) != 0 && first == 0)
        first = rc;
    if ((rc = wd_conf_register_section("redis", wd_redis_conf_fields, wd_redis_conf_n_fields,
                                       sizeof(wd_redis_conf))) != 0 &&
        first == 0)
        first = rc;
    if ((rc = wd_conf_register_section("postgres", wd_pg_conf_fields, wd_pg_conf_n_fields,
                                       sizeof(wd_pg_conf))) != 0 &&
        first == 0)
        first = rc;
    return first;
}
