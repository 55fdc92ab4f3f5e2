/* The replay source's CSV line parser. Strict and bounded: every field is
 * checked, numbers are parsed with strtod on a NUL-terminated copy of the
 * field (never past it), and a bad line gets one reason. */
#include "agg.h"
#include "wd_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CSV_NUM_MAX 63 /* longest numeric field */
#define NS_DIGITS 9

typedef struct {
    const char *p;
    size_t len;
} field;

int agg_parse_ts(const char *s, size_t len, uint64_t *ns) {
    uint64_t whole = 0, frac = 0;
    size_t i = 0, fd = 0;
    bool dot = false;
    if (len == 0)
        return WD_EINVAL;
    for (; i < len; i++) {
        char c = s[i];
        if (c == '.' && !dot) {
            dot = true;
            continue;
        }
        if (c < '0' || c > '9')
            return WD_EINVAL;
        if (!dot) {
            if (whole > (UINT64_MAX - 9) / 10)
                return WD_EINVAL;
            whole = whole * 10 + (uint64_t)(c - '0');
        } else {
            if (++fd > NS_DIGITS)
                return WD_EINVAL;
            frac = frac * 10 + (uint64_t)(c - '0');
        }
    }
    if (!dot) {
        *ns = whole;
        return 0;
    }
    if (fd == 0 && i == 1)
        return WD_EINVAL; /* "." alone */
    for (; fd < NS_DIGITS; fd++)
        frac *= 10;
    if (whole > (UINT64_MAX - frac) / 1000000000ULL)
        return WD_EINVAL;
    *ns = whole * 1000000000ULL + frac;
    return 0;
}

static int parse_num(const field *f, double *out) {
    char buf[CSV_NUM_MAX + 1];
    char *end;
    if (f->len == 0 || f->len > CSV_NUM_MAX)
        return WD_EINVAL;
    memcpy(buf, f->p, f->len);
    buf[f->len] = '\0';
    /* strtod would take "nan", "inf" and hex floats; prices are plain decimals. */
    for (size_t i = 0; i < f->len; i++) {
        char c = buf[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' ||
              c == 'E'))
            return WD_EINVAL;
    }
    *out = strtod(buf, &end);
    if (end != buf + f->len || !isfinite(*out))
        return WD_EINVAL;
    return 0;
}

int agg_csv_parse(const char *line, size_t len, agg_tick *t, agg_drop_reason *why) {
    field f[AGG_CSV_FIELDS_MAX + 1];
    size_t nf = 0, start = 0;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0 || line[0] == '#')
        return AGG_CSV_SKIP;
    if (len > AGG_CSV_LINE_MAX) {
        *why = AGG_DROP_TOO_LONG;
        return WD_EINVAL;
    }
    if (len >= 3 && memcmp(line, "ts,", 3) == 0)
        return AGG_CSV_SKIP; /* the header */
    for (size_t i = 0; i <= len; i++) {
        if (i == len || line[i] == ',') {
            if (nf == AGG_CSV_FIELDS_MAX) {
                *why = AGG_DROP_MALFORMED;
                return WD_EINVAL;
            }
            f[nf].p = line + start;
            f[nf].len = i - start;
            nf++;
            start = i + 1;
        }
    }
    if (nf < AGG_CSV_FIELDS_MIN || nf == AGG_CSV_FIELDS_MIN + 1) {
        *why = AGG_DROP_MALFORMED;
        return WD_EINVAL;
    }
    for (size_t i = 0; i < nf; i++) {
        if (f[i].len == 0) {
            *why = AGG_DROP_MALFORMED;
            return WD_EINVAL;
        }
    }
    memset(t, 0, sizeof *t);
    if (agg_parse_ts(f[0].p, f[0].len, &t->ts_ns) != 0) {
        *why = AGG_DROP_BAD_TIMESTAMP;
        return WD_EINVAL;
    }
    if (!proto_md_name_ok(f[1].p, f[1].len, PROTO_MD_VENUE_MAX) ||
        !proto_md_name_ok(f[2].p, f[2].len, PROTO_MD_SYMBOL_MAX)) {
        *why = AGG_DROP_BAD_NAME;
        return WD_EINVAL;
    }
    memcpy(t->venue, f[1].p, f[1].len);
    memcpy(t->symbol, f[2].p, f[2].len);
    if (parse_num(&f[3], &t->bid) || parse_num(&f[4], &t->bid_size) ||
        parse_num(&f[5], &t->ask) || parse_num(&f[6], &t->ask_size) ||
        (nf == AGG_CSV_FIELDS_MAX &&
         (parse_num(&f[7], &t->last) || parse_num(&f[8], &t->last_size)))) {
        *why = AGG_DROP_BAD_NUMBER;
        return WD_EINVAL;
    }
    t->has_last = nf == AGG_CSV_FIELDS_MAX;
    return agg_tick_check(t, why);
}
