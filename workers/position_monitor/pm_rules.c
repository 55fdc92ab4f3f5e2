/* Exit rules: validation of a row, the rules themselves and the band of
 * prices that cannot change a position (what the symbol index relies on). */
#include "pm.h"
#include "wd_error.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const reason_names[PM_EXIT_COUNT] = {
    "none",         "stop_loss",       "take_profit", "trailing_stop",
    "max_holding",  "underlying_stop", "kill_switch",
};

const char *pm_exit_reason_name(pm_exit_reason r) {
    return (unsigned)r < PM_EXIT_COUNT ? reason_names[r] : "unknown";
}

pm_exit_reason pm_exit_reason_parse(const char *s) {
    for (int i = 1; s != NULL && i < PM_EXIT_COUNT; i++)
        if (strcmp(s, reason_names[i]) == 0)
            return (pm_exit_reason)i;
    return PM_EXIT_NONE;
}

static bool symbol_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > PM_SYMBOL_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/' || c == ':'))
            return false;
    }
    return true;
}

/* Each check says what is wrong with the values, so an operator can fix the
 * row from the log line alone. */
int pm_row_validate(const pm_row *r, char *why, size_t whylen) {
    bool lng = r->side == PM_LONG;
    const char *side = lng ? "long" : "short";
    if (r->id <= 0)
        snprintf(why, whylen, "id %lld is not positive", (long long)r->id);
    else if (r->side != PM_LONG && r->side != PM_SHORT)
        snprintf(why, whylen, "side must be long or short");
    else if (r->account[0] == '\0')
        snprintf(why, whylen, "account is empty");
    else if (!symbol_ok(r->symbol))
        snprintf(why, whylen, "symbol is not 1..%d of A-Z a-z 0-9 . _ - / :", PM_SYMBOL_MAX);
    else if (!(r->quantity > 0) || !isfinite(r->quantity))
        snprintf(why, whylen, "quantity %g is not positive", r->quantity);
    else if (!(r->entry > 0) || !isfinite(r->entry))
        snprintf(why, whylen, "entry_price %g is not positive", r->entry);
    else if (r->stop_loss < 0 || !isfinite(r->stop_loss))
        snprintf(why, whylen, "stop_loss %g is negative", r->stop_loss);
    else if (r->stop_loss > 0 && (lng ? r->stop_loss >= r->entry : r->stop_loss <= r->entry))
        snprintf(why, whylen, "stop_loss %g %s entry_price %g for a %s", r->stop_loss,
                 lng ? "at or above" : "at or below", r->entry, side);
    else if (r->take_profit < 0 || !isfinite(r->take_profit))
        snprintf(why, whylen, "take_profit %g is negative", r->take_profit);
    else if (r->take_profit > 0 &&
             (lng ? r->take_profit <= r->entry : r->take_profit >= r->entry))
        snprintf(why, whylen, "take_profit %g %s entry_price %g for a %s", r->take_profit,
                 lng ? "at or below" : "at or above", r->entry, side);
    else if (r->trail_kind == PM_TRAIL_PERCENT && !(r->trail > 0 && r->trail < 100))
        snprintf(why, whylen, "trailing_stop %g is not a percentage in (0, 100)", r->trail);
    else if (r->trail_kind == PM_TRAIL_ABSOLUTE && (!(r->trail > 0) || !isfinite(r->trail)))
        snprintf(why, whylen, "trailing_stop %g is not a positive distance", r->trail);
    else if (r->trail_kind == PM_TRAIL_NONE && r->trail != 0)
        snprintf(why, whylen, "trailing_stop set without trailing_kind (percent|absolute)");
    else if (r->water < 0 || !isfinite(r->water))
        snprintf(why, whylen, "water_mark %g is negative", r->water);
    else if (r->underlying_stop < 0 || !isfinite(r->underlying_stop))
        snprintf(why, whylen, "underlying_stop %g is negative", r->underlying_stop);
    else if ((r->underlying_stop > 0) != (r->underlying[0] != '\0'))
        snprintf(why, whylen, "underlying and underlying_stop must be set together");
    else if (r->underlying[0] != '\0' && !symbol_ok(r->underlying))
        snprintf(why, whylen, "underlying is not a valid symbol");
    else
        return 0;
    return WD_EINVAL;
}

int pm_client_order_id(int64_t id, char *buf, size_t len) {
    int n = snprintf(buf, len, PM_COID_PREFIX "%lld", (long long)id);
    return n < 0 || (size_t)n >= len ? WD_ETOOBIG : 0;
}

double pm_rules_trail_level(const pm_pos *p) {
    if (p->trail_kind == PM_TRAIL_NONE)
        return 0;
    double w = p->water > 0 ? p->water : p->entry;
    if (p->side == PM_LONG)
        return p->trail_kind == PM_TRAIL_PERCENT ? w * (1 - p->trail / 100) : w - p->trail;
    return p->trail_kind == PM_TRAIL_PERCENT ? w * (1 + p->trail / 100) : w + p->trail;
}

bool pm_rules_water(pm_pos *p, double price) {
    if (p->trail_kind == PM_TRAIL_NONE || !(price > 0))
        return false;
    double w = p->water > 0 ? p->water : p->entry;
    if (p->side == PM_LONG ? price > w : price < w) {
        p->water = price;
        return true;
    }
    return false;
}

pm_exit_reason pm_rules_price_exit(const pm_pos *p, double price) {
    if (!(price > 0))
        return PM_EXIT_NONE;
    double tl = pm_rules_trail_level(p);
    if (p->side == PM_LONG) {
        if (p->stop_loss > 0 && price <= p->stop_loss)
            return PM_EXIT_STOP_LOSS;
        if (tl > 0 && price <= tl)
            return PM_EXIT_TRAILING_STOP;
        if (p->take_profit > 0 && price >= p->take_profit)
            return PM_EXIT_TAKE_PROFIT;
    } else {
        if (p->stop_loss > 0 && price >= p->stop_loss)
            return PM_EXIT_STOP_LOSS;
        if (tl > 0 && price >= tl)
            return PM_EXIT_TRAILING_STOP;
        if (p->take_profit > 0 && price <= p->take_profit)
            return PM_EXIT_TAKE_PROFIT;
    }
    return PM_EXIT_NONE;
}

/* A long is hedged against its underlying falling through the stop, a
 * short against it rising through. */
bool pm_rules_underlying_hit(const pm_pos *p, double uprice) {
    if (p->usym == PM_NONE || !(p->underlying_stop > 0) || !(uprice > 0))
        return false;
    return p->side == PM_LONG ? uprice <= p->underlying_stop : uprice >= p->underlying_stop;
}

uint64_t pm_rules_deadline(const pm_pos *p) {
    if (p->max_hold_ms == 0 || p->opened_at_ns < 0)
        return 0;
    return (uint64_t)p->opened_at_ns + p->max_hold_ms * 1000000ULL;
}

/* The band is closed at the exit levels (a price equal to a stop fires) and
 * open at the water mark (only a price beyond it moves the mark), hence
 * nextafter: a price equal to the mark must not pop the entry again. */
void pm_rules_band(const pm_pos *p, double *lo, double *hi) {
    double tl = pm_rules_trail_level(p);
    double w = p->water > 0 ? p->water : p->entry;
    *lo = -INFINITY;
    *hi = INFINITY;
    if (p->side == PM_LONG) {
        if (p->stop_loss > 0)
            *lo = p->stop_loss;
        if (tl > 0 && tl > *lo)
            *lo = tl;
        if (p->take_profit > 0)
            *hi = p->take_profit;
        if (p->trail_kind != PM_TRAIL_NONE) {
            double up = nextafter(w, INFINITY);
            if (up < *hi)
                *hi = up;
        }
    } else {
        if (p->stop_loss > 0)
            *hi = p->stop_loss;
        if (tl > 0 && tl < *hi)
            *hi = tl;
        if (p->take_profit > 0)
            *lo = p->take_profit;
        if (p->trail_kind != PM_TRAIL_NONE) {
            double down = nextafter(w, -INFINITY);
            if (down > *lo)
                *lo = down;
        }
    }
}

double pm_mark_price(double bid, double ask) {
    if (bid > 0 && ask > 0)
        return (bid + ask) / 2;
    if (bid > 0)
        return bid;
    if (ask > 0)
        return ask;
    return 0;
}
