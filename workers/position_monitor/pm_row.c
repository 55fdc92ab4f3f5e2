/* A positions row from its text values (libpq's text format) to a pm_row,
 * with every number checked. The column order is PM_ROW_COLUMNS's. */
#include "pm.h"
#include "wd_error.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char PM_ROW_COLUMNS[] =
    "id, account, symbol, side, quantity, entry_price, stop_loss, take_profit, trailing_kind, "
    "trailing_stop, water_mark, (extract(epoch from max_holding) * 1000)::bigint, underlying, "
    "underlying_stop, (extract(epoch from opened_at) * 1000000)::bigint, status, exit_reason";

enum {
    C_ID, C_ACCOUNT, C_SYMBOL, C_SIDE, C_QTY, C_ENTRY, C_SL, C_TP, C_TKIND, C_TRAIL, C_WATER,
    C_MAXHOLD, C_UNDER, C_USTOP, C_OPENED, C_STATUS, C_REASON
};

/* NULL is 0 (the rule is off); anything else must be a whole number. */
static int num(const char *s, const char *col, double *out, char *why, size_t wl) {
    char *end;
    if (s == NULL || s[0] == '\0') {
        *out = 0;
        return 0;
    }
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v)) {
        snprintf(why, wl, "%s is not a finite number", col);
        return WD_EINVAL;
    }
    *out = v;
    return 0;
}

static int integer(const char *s, const char *col, int64_t *out, char *why, size_t wl) {
    char *end;
    if (s == NULL || s[0] == '\0') {
        *out = 0;
        return 0;
    }
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        snprintf(why, wl, "%s is not an integer", col);
        return WD_EINVAL;
    }
    *out = v;
    return 0;
}

static int text(const char *s, const char *col, char *dst, size_t cap, char *why, size_t wl) {
    size_t n = s != NULL ? strlen(s) : 0;
    if (n >= cap) {
        snprintf(why, wl, "%s is longer than %zu bytes", col, cap - 1);
        return WD_EINVAL;
    }
    memcpy(dst, s != NULL ? s : "", n + 1);
    return 0;
}

int pm_row_parse(const char *const *v, pm_row *r, char *why, size_t wl) {
    int64_t maxhold = 0, opened_us = 0;
    memset(r, 0, sizeof *r);
    if (integer(v[C_ID], "id", &r->id, why, wl) || text(v[C_ACCOUNT], "account", r->account,
                                                          sizeof r->account, why, wl) ||
        text(v[C_SYMBOL], "symbol", r->symbol, sizeof r->symbol, why, wl) ||
        text(v[C_UNDER], "underlying", r->underlying, sizeof r->underlying, why, wl) ||
        num(v[C_QTY], "quantity", &r->quantity, why, wl) ||
        num(v[C_ENTRY], "entry_price", &r->entry, why, wl) ||
        num(v[C_SL], "stop_loss", &r->stop_loss, why, wl) ||
        num(v[C_TP], "take_profit", &r->take_profit, why, wl) ||
        num(v[C_TRAIL], "trailing_stop", &r->trail, why, wl) ||
        num(v[C_WATER], "water_mark", &r->water, why, wl) ||
        num(v[C_USTOP], "underlying_stop", &r->underlying_stop, why, wl) ||
        integer(v[C_MAXHOLD], "max_holding", &maxhold, why, wl) ||
        integer(v[C_OPENED], "opened_at", &opened_us, why, wl))
        return WD_EINVAL;
    const char *side = v[C_SIDE] ? v[C_SIDE] : "";
    if (strcmp(side, "long") == 0 || strcmp(side, "buy") == 0) {
        r->side = PM_LONG;
    } else if (strcmp(side, "short") == 0 || strcmp(side, "sell") == 0) {
        r->side = PM_SHORT;
    } else {
        snprintf(why, wl, "side '%.16s' is not long or short", side);
        return WD_EINVAL;
    }
    const char *tk = v[C_TKIND] ? v[C_TKIND] : "";
    if (tk[0] == '\0')
        r->trail_kind = PM_TRAIL_NONE;
    else if (strcmp(tk, "percent") == 0)
        r->trail_kind = PM_TRAIL_PERCENT;
    else if (strcmp(tk, "absolute") == 0)
        r->trail_kind = PM_TRAIL_ABSOLUTE;
    else {
        snprintf(why, wl, "trailing_kind '%.16s' is not percent or absolute", tk);
        return WD_EINVAL;
    }
    if (maxhold < 0) {
        snprintf(why, wl, "max_holding is negative");
        return WD_EINVAL;
    }
    r->max_hold_ms = (uint64_t)maxhold;
    r->opened_at_ns = opened_us * 1000;
    const char *st = v[C_STATUS] ? v[C_STATUS] : "";
    if (strcmp(st, "closing") == 0) {
        r->closing = true;
        r->reason = pm_exit_reason_parse(v[C_REASON]);
    } else if (strcmp(st, "open") != 0) {
        snprintf(why, wl, "status '%.16s' is not open or closing", st);
        return WD_EINVAL;
    }
    return pm_row_validate(r, why, wl);
}
