/* seed-demo: inserts demo positions around the prices the monitor has seen,
 * with stops, targets and trailing stops a fraction of a percent away and
 * holding times of a minute or two, so that in the demo (synthetic prices)
 * they exit one after the other through every rule. */
#include "pm_worker.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"

#include <stdio.h>
#include <stdlib.h>

#define PM_SEED_BATCH WD_PG_BATCH_MAX
#define PM_SEED_NUM 32
#define PM_SEED_BAND 0.002         /* stop / target distance: 0.2 % */
#define PM_SEED_TRAIL_PCT "0.15"
#define PM_SEED_HOLD_MIN_S 30
#define PM_SEED_HOLD_SPREAD_S 120

static const char SQL_SEED[] =
    "INSERT INTO positions (account, symbol, side, quantity, entry_price, stop_loss, "
    "take_profit, trailing_kind, trailing_stop, max_holding) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, make_interval(secs => $10::float8))";

static void on_seeded(wd_pg *pg, const wd_pg_result *r, void *arg) {
    (void)pg;
    (void)arg;
    if (r->status != 0 && r->status != WD_ESTATE)
        wd_warn("seed-demo: insert failed: %s", r->message);
    else if (r->last && r->status == 0)
        wd_info("seed-demo: positions inserted");
}

int pm_db_seed_demo(pm_worker *w, int n, char *err, size_t errlen) {
    uint32_t priced[PM_SEED_BATCH];
    uint32_t np = 0;
    for (uint32_t i = 0; i < w->book.n_syms && np < PM_SEED_BATCH; i++)
        if (w->book.syms[i].price > 0)
            priced[np++] = i;
    if (np == 0) {
        snprintf(err, errlen, "seed-demo: no prices seen yet (is the aggregator running?)");
        return WD_EUNAVAIL;
    }
    if (n > PM_SEED_BATCH)
        n = PM_SEED_BATCH;
    char (*vals)[9][PM_SEED_NUM] = calloc((size_t)n, sizeof *vals);
    const char *(*params)[10] = calloc((size_t)n, sizeof *params);
    wd_pg_stmt *st = calloc((size_t)n, sizeof *st);
    int rc = WD_ENOMEM;
    if (vals == NULL || params == NULL || st == NULL)
        goto out;
    for (int k = 0; k < n; k++) {
        const pm_sym *s = &w->book.syms[priced[wd_rng_upto(&w->rng, np - 1)]];
        bool lng = wd_rng_upto(&w->rng, 1) == 0;
        double p = s->price;
        snprintf(vals[k][0], PM_SEED_NUM, "demo-%d", (int)wd_rng_upto(&w->rng, 2) + 1);
        snprintf(vals[k][1], PM_SEED_NUM, "%d", 10 * ((int)wd_rng_upto(&w->rng, 9) + 1));
        snprintf(vals[k][2], PM_SEED_NUM, "%.6f", p);
        snprintf(vals[k][3], PM_SEED_NUM, "%.6f", lng ? p * (1 - PM_SEED_BAND) : p * (1 + PM_SEED_BAND));
        snprintf(vals[k][4], PM_SEED_NUM, "%.6f", lng ? p * (1 + PM_SEED_BAND) : p * (1 - PM_SEED_BAND));
        snprintf(vals[k][5], PM_SEED_NUM, "%d",
                 PM_SEED_HOLD_MIN_S + (int)wd_rng_upto(&w->rng, PM_SEED_HOLD_SPREAD_S - 1));
        const char **q = params[k];
        q[0] = vals[k][0];
        q[1] = s->name;
        q[2] = lng ? "long" : "short";
        q[3] = vals[k][1];
        q[4] = vals[k][2];
        q[5] = vals[k][3];
        q[6] = vals[k][4];
        q[7] = k % 2 ? "percent" : NULL;
        q[8] = k % 2 ? PM_SEED_TRAIL_PCT : NULL;
        q[9] = vals[k][5];
        st[k] = (wd_pg_stmt){.sql = SQL_SEED, .nparams = 10, .params = params[k]};
    }
    w->db_queries++;
    rc = wd_pg_batch(w->pg, st, (size_t)n, on_seeded, w);
    if (rc != 0)
        snprintf(err, errlen, "seed-demo: %s", wd_strerror(rc));
out:
    free(vals);
    free(params);
    free(st);
    return rc;
}
