#include "retry.h"

#include "wd_error.h"
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define NS_PER_S 1000000000ULL
/* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define IMF_FIXDATE_LEN 29

static bool is_ows(char c) { return c == ' ' || c == '\t'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static uint64_t sat_mul(uint64_t a, uint64_t b) {
    if (a != 0 && b > UINT64_MAX / a)
        return UINT64_MAX;
    return a * b;
}

/* Reads exactly n digits; false if any is not a digit. */
static bool read_digits(const char *s, size_t n, int *out) {
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static int find_name(const char *s, const char *const *names, int count) {
    for (int i = 0; i < count; i++)
        if (memcmp(s, names[i], 3) == 0)
            return i;
    return -1;
}

static bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil); avoids timegm(), which is neither C11 nor POSIX. */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Strict IMF-fixdate; strptime() is avoided because %a/%b follow the locale. */
static bool parse_imf_fixdate(const char *s, size_t len, int64_t *out_s) {
    static const char *const days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int day, year, hour, min, sec;

    if (len != IMF_FIXDATE_LEN)
        return false;
    if (find_name(s, days, 7) < 0 || memcmp(s + 3, ", ", 2) != 0)
        return false;
    if (!read_digits(s + 5, 2, &day) || s[7] != ' ')
        return false;
    int mon = find_name(s + 8, months, 12);
    if (mon < 0 || s[11] != ' ')
        return false;
    if (!read_digits(s + 12, 4, &year) || s[16] != ' ')
        return false;
    if (!read_digits(s + 17, 2, &hour) || s[19] != ':' || !read_digits(s + 20, 2, &min) ||
        s[22] != ':' || !read_digits(s + 23, 2, &sec))
        return false;
    if (memcmp(s + 25, " GMT", 4) != 0)
        return false;
    int dim = mdays[mon] + (mon == 1 && is_leap(year));
    /* Second 60 is a leap second; it is read as the next second. */
    if (day < 1 || day > dim || hour > 23 || min > 59 || sec > 60)
        return false;
    *out_s = days_from_civil(year, mon + 1, day) * 86400 + hour * 3600 + min * 60 + sec;
    return true;
}

int wd_retry_after_parse(const char *value, uint64_t now_real_s, uint64_t max_ms,
                         uint64_t *out_ms) {
    if (value == NULL || out_ms == NULL)
        return WD_EINVAL;
    const char *s = value;
    while (is_ows(*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && is_ows(s[len - 1]))
        len--;
    if (len == 0)
        return WD_EINVAL;

    uint64_t ms;
    if (is_digit(s[0])) {
        uint64_t secs = 0;
        for (size_t i = 0; i < len; i++) {
            if (!is_digit(s[i]))
                return WD_EINVAL;
            /* An absurdly long delay saturates; the clamp below bounds it. */
            secs = sat_mul(secs, 10);
            uint64_t d = (uint64_t)(s[i] - '0');
            secs = secs > UINT64_MAX - d ? UINT64_MAX : secs + d;
        }
        ms = sat_mul(secs, 1000);
    } else {
        int64_t when;
        if (!parse_imf_fixdate(s, len, &when))
            return WD_EINVAL;
        if (when <= 0 || (uint64_t)when <= now_real_s)
            ms = 0;
        else
            ms = sat_mul((uint64_t)when - now_real_s, 1000);
    }
    *out_ms = ms < max_ms ? ms : max_ms;
    return 0;
}

wd_errclass wd_classify_http(long status, int curl_code_or_0) {
    if (curl_code_or_0 != 0) {
        switch (curl_code_or_0) {
        case 1: /* CURLE_UNSUPPORTED_PROTOCOL */
        case 3: /* CURLE_URL_MALFORMAT */
        case 4: /* CURLE_NOT_BUILT_IN */
            return WD_ERRCLASS_PERMANENT;
        default:
            return WD_ERRCLASS_TRANSIENT;
        }
    }
    if (status == 408 || status == 429 || (status >= 500 && status <= 599))
        return WD_ERRCLASS_TRANSIENT;
    return WD_ERRCLASS_PERMANENT;
}

wd_errclass wd_classify_sqlstate(const char *sqlstate) {
    if (sqlstate == NULL || strlen(sqlstate) != 5)
        return WD_ERRCLASS_PERMANENT;
    if (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0 ||
        strcmp(sqlstate, "57P01") == 0 || strcmp(sqlstate, "57P02") == 0 ||
        strcmp(sqlstate, "57P03") == 0 || memcmp(sqlstate, "08", 2) == 0)
        return WD_ERRCLASS_TRANSIENT;
    if (memcmp(sqlstate, "28", 2) == 0)
        return WD_ERRCLASS_CRITICAL;
    /* Classes 23 (integrity) and 42 (syntax/access) are permanent, like any
     * code not listed above. */
    return WD_ERRCLASS_PERMANENT;
}

wd_errclass wd_classify_redis_reply(const char *error_text) {
    static const char *const transient[] = {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN",
                                            "READONLY"};
    if (error_text == NULL)
        return WD_ERRCLASS_PERMANENT;
    size_t word = 0;
    while (error_text[word] != '\0' && error_text[word] != ' ')
        word++;
    for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++)
        if (strlen(transient[i]) == word && memcmp(error_text, transient[i], word) == 0)
            return WD_ERRCLASS_TRANSIENT;
    return WD_ERRCLASS_PERMANENT;
}

wd_errclass wd_classify_redis_io(void) { return WD_ERRCLASS_TRANSIENT; }

uint64_t wd_backoff_decorrelated(wd_rng *r, uint64_t base, uint64_t cap, uint64_t prev) {
    uint64_t hi = sat_mul(prev, 3);
    uint64_t d = hi <= base ? base : base + wd_rng_upto(r, hi - base);
    return d < cap ? d : cap;
}

static bool ratio_ok(double v) { return v >= 0.0 && v <= WD_RETRY_BUDGET_MAX_RATIO; }

static uint64_t budget_cap(const wd_retry_budget *b) {
    uint64_t seen = b->win_cur > b->win_prev ? b->win_cur : b->win_prev;
    uint64_t cap = b->min_u * WD_RETRY_BUDGET_WINDOW_S + sat_mul(b->ratio_u, seen);
    if (cap < b->min_u * WD_RETRY_BUDGET_WINDOW_S) /* the addition wrapped */
        cap = UINT64_MAX;
    if (cap < WD_RETRY_BUDGET_UNIT && (b->ratio_u > 0 || b->min_u > 0))
        cap = WD_RETRY_BUDGET_UNIT;
    return cap;
}

/* Moves the request-count windows forward and adds the floor refill. */
static void budget_advance(wd_retry_budget *b, uint64_t now_ns) {
    const uint64_t win_ns = WD_RETRY_BUDGET_WINDOW_S * NS_PER_S;
    if (now_ns >= b->win_start + win_ns) {
        uint64_t k = (now_ns - b->win_start) / win_ns;
        b->win_prev = k == 1 ? b->win_cur : 0;
        b->win_cur = 0;
        b->win_start += k * win_ns;
    }
    if (now_ns > b->last_ns) {
        /* Past one window the balance is full of floor deposits anyway; the
         * bound keeps min_u * elapsed within 64 bits. */
        uint64_t elapsed = now_ns - b->last_ns;
        if (elapsed > win_ns)
            elapsed = win_ns;
        uint64_t num = b->min_u * elapsed + b->frac;
        b->balance_u += num / NS_PER_S;
        b->frac = num % NS_PER_S;
        b->last_ns = now_ns;
    }
    uint64_t cap = budget_cap(b);
    if (b->balance_u > cap)
        b->balance_u = cap;
}

int wd_retry_budget_init(wd_retry_budget *b, double ratio, double min_per_s, uint64_t now_ns) {
    if (b == NULL || !ratio_ok(ratio) || !(min_per_s >= 0.0 && min_per_s <= WD_RETRY_BUDGET_MAX_PER_S))
        return WD_EINVAL;
    memset(b, 0, sizeof *b);
    b->ratio_u = (uint64_t)llround(ratio * (double)WD_RETRY_BUDGET_UNIT);
    b->min_u = (uint64_t)llround(min_per_s * (double)WD_RETRY_BUDGET_UNIT);
    b->last_ns = now_ns;
    b->win_start = now_ns;
    b->balance_u = budget_cap(b);
    return 0;
}

void wd_retry_budget_on_request(wd_retry_budget *b, uint64_t now_ns) {
    budget_advance(b, now_ns);
    b->requests++;
    b->win_cur++;
    uint64_t cap = budget_cap(b);
    b->balance_u = cap - b->balance_u < b->ratio_u ? cap : b->balance_u + b->ratio_u;
}

int wd_retry_budget_try_spend(wd_retry_budget *b, uint64_t now_ns) {
    budget_advance(b, now_ns);
    if (b->balance_u < WD_RETRY_BUDGET_UNIT) {
        b->denied++;
        return WD_EBUSY;
    }
    b->balance_u -= WD_RETRY_BUDGET_UNIT;
    b->retries++;
    return 0;
}

uint64_t wd_retry_budget_balance(const wd_retry_budget *b) { return b->balance_u; }
