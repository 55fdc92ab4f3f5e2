/* Tick validation, drop reasons, and the name and interval lists of the
 * config. */
#include "agg.h"
#include "config.h"
#include "wd_error.h"

#include <stdio.h>
#include <string.h>

static const char *const drop_names[AGG_DROP_COUNT] = {
    [AGG_DROP_MALFORMED] = "malformed",
    [AGG_DROP_TOO_LONG] = "too_long",
    [AGG_DROP_BAD_TIMESTAMP] = "bad_timestamp",
    [AGG_DROP_BAD_NUMBER] = "bad_number",
    [AGG_DROP_BAD_NAME] = "bad_name",
    [AGG_DROP_UNKNOWN_VENUE] = "unknown_venue",
    [AGG_DROP_NEGATIVE_PRICE] = "negative_price",
    [AGG_DROP_NEGATIVE_SIZE] = "negative_size",
    [AGG_DROP_CROSSED_VENUE] = "crossed_venue",
    [AGG_DROP_UNKNOWN_SYMBOL] = "unknown_symbol",
};

const char *agg_drop_reason_name(agg_drop_reason r) {
    return (unsigned)r < AGG_DROP_COUNT ? drop_names[r] : "unknown";
}

int agg_tick_check(const agg_tick *t, agg_drop_reason *why) {
    if (t->bid < 0 || t->ask < 0 || (t->has_last && t->last < 0)) {
        *why = AGG_DROP_NEGATIVE_PRICE;
        return WD_EINVAL;
    }
    if (t->bid_size < 0 || t->ask_size < 0 || (t->has_last && t->last_size < 0)) {
        *why = AGG_DROP_NEGATIVE_SIZE;
        return WD_EINVAL;
    }
    /* A side with price 0 is empty; only two live sides can cross. */
    if (t->bid > 0 && t->ask > 0 && t->bid > t->ask) {
        *why = AGG_DROP_CROSSED_VENUE;
        return WD_EINVAL;
    }
    return 0;
}

static bool is_sep(char c) { return c == ',' || c == ' ' || c == '\t' || c == '\n'; }

int agg_parse_names(const char *list, size_t max, agg_symname *out, size_t cap, size_t *n,
                    char *err, size_t errlen) {
    *n = 0;
    const char *p = list;
    while (*p) {
        while (*p && is_sep(*p))
            p++;
        const char *s = p;
        while (*p && !is_sep(*p))
            p++;
        size_t len = (size_t)(p - s);
        if (len == 0)
            continue;
        if (!proto_md_name_ok(s, len, max)) {
            snprintf(err, errlen, "'%.*s' is not a valid name (1..%zu of A-Z a-z 0-9 . _ - / :)",
                     (int)(len > 40 ? 40 : len), s, max);
            return WD_EINVAL;
        }
        bool dup = false;
        for (size_t i = 0; i < *n && !dup; i++)
            dup = strlen(out[i]) == len && memcmp(out[i], s, len) == 0;
        if (dup)
            continue;
        if (*n == cap) {
            snprintf(err, errlen, "more than %zu names", cap);
            return WD_ETOOBIG;
        }
        memcpy(out[*n], s, len);
        out[*n][len] = '\0';
        (*n)++;
    }
    return 0;
}

int agg_parse_intervals(const char *list, uint64_t *out_ms, size_t cap, size_t *n, char *err,
                        size_t errlen) {
    char word[WD_CONF_DURATION_STR_MAX];
    *n = 0;
    const char *p = list;
    while (*p) {
        while (*p && is_sep(*p))
            p++;
        const char *s = p;
        while (*p && !is_sep(*p))
            p++;
        size_t len = (size_t)(p - s);
        if (len == 0)
            continue;
        uint64_t ms = 0;
        if (len >= sizeof word) {
            snprintf(err, errlen, "bar interval '%.20s...' is too long", s);
            return WD_EINVAL;
        }
        memcpy(word, s, len);
        word[len] = '\0';
        if (wd_parse_duration_ms(word, &ms) != 0 || ms == 0) {
            snprintf(err, errlen, "bar interval '%s' is not a duration > 0 (e.g. 1s, 1m)", word);
            return WD_EINVAL;
        }
        if (*n == cap) {
            snprintf(err, errlen, "more than %zu bar intervals", cap);
            return WD_ETOOBIG;
        }
        out_ms[(*n)++] = ms;
    }
    return 0;
}
