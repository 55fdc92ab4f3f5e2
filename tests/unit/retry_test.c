#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "retry.h"
#include "wd_error.h"

#define NOW_S 1445412480ULL /* Wed, 21 Oct 2015 07:28:00 GMT */
#define S 1000000000ULL
#define UNIT WD_RETRY_BUDGET_UNIT

typedef struct {
    const char *name;
    const char *value;
    uint64_t max_ms;
    int rc;
    uint64_t ms;
} parse_case;

static const parse_case parse_cases[] = {
    {"delta seconds", "120", 1000000, 0, 120000},
    {"delta zero", "0", 1000000, 0, 0},
    {"delta with spaces and tab", " \t5 ", 1000000, 0, 5000},
    {"delta clamped", "3600", 60000, 0, 60000},
    {"delta huge saturates then clamps", "99999999999999999999999", 5000, 0, 5000},
    {"delta leading zeros", "007", 100000, 0, 7000},
    {"date 10s ahead", "Wed, 21 Oct 2015 07:28:10 GMT", 1000000, 0, 10000},
    {"date next day", "Thu, 22 Oct 2015 07:28:00 GMT", UINT64_MAX, 0, 86400000},
    {"date clamped", "Thu, 22 Oct 2015 07:28:00 GMT", 30000, 0, 30000},
    {"date now is 0", "Wed, 21 Oct 2015 07:28:00 GMT", 1000000, 0, 0},
    {"date past is 0", "Tue, 20 Oct 2015 07:28:00 GMT", 1000000, 0, 0},
    {"date before epoch is 0", "Mon, 01 Jan 1900 00:00:00 GMT", 1000000, 0, 0},
    {"leap day 2016", "Mon, 29 Feb 2016 00:00:00 GMT", UINT64_MAX, 0,
     (1456704000ULL - NOW_S) * 1000},
    {"leap second", "Wed, 21 Oct 2015 07:28:60 GMT", 1000000, 0, 60000},
    {"date with spaces", "  Wed, 21 Oct 2015 07:28:01 GMT ", 1000000, 0, 1000},
    {"null", NULL, 1000, WD_EINVAL, 0},
    {"empty", "", 1000, WD_EINVAL, 0},
    {"blank", "   ", 1000, WD_EINVAL, 0},
    {"negative", "-5", 1000, WD_EINVAL, 0},
    {"plus sign", "+5", 1000, WD_EINVAL, 0},
    {"trailing junk", "5s", 1000, WD_EINVAL, 0},
    {"fraction", "1.5", 1000, WD_EINVAL, 0},
    {"inner space", "1 5", 1000, WD_EINVAL, 0},
    {"bad day name", "Wex, 21 Oct 2015 07:28:00 GMT", 1000, WD_EINVAL, 0},
    {"no comma", "Wed  21 Oct 2015 07:28:00 GMT", 1000, WD_EINVAL, 0},
    {"bad month", "Wed, 21 Okt 2015 07:28:00 GMT", 1000, WD_EINVAL, 0},
    {"not GMT", "Wed, 21 Oct 2015 07:28:00 UTC", 1000, WD_EINVAL, 0},
    {"one digit day", "Wed, 1 Oct 2015 07:28:00 GMT", 1000, WD_EINVAL, 0},
    {"day 0", "Wed, 00 Oct 2015 07:28:00 GMT", 1000, WD_EINVAL, 0},
    {"31 Nov", "Wed, 31 Nov 2015 07:28:00 GMT", 1000, WD_EINVAL, 0},
    {"29 Feb non-leap", "Sun, 29 Feb 2015 07:28:00 GMT", 1000, WD_EINVAL, 0},
    {"29 Feb 1900", "Thu, 29 Feb 1900 07:28:00 GMT", 1000, WD_EINVAL, 0},
    {"hour 24", "Wed, 21 Oct 2015 24:00:00 GMT", 1000, WD_EINVAL, 0},
    {"minute 60", "Wed, 21 Oct 2015 07:60:00 GMT", 1000, WD_EINVAL, 0},
    {"second 61", "Wed, 21 Oct 2015 07:28:61 GMT", 1000, WD_EINVAL, 0},
    {"bad separator", "Wed, 21 Oct 2015 07-28:00 GMT", 1000, WD_EINVAL, 0},
    {"letter in year", "Wed, 21 Oct 20x5 07:28:00 GMT", 1000, WD_EINVAL, 0},
    {"rfc850 form", "Wednesday, 21-Oct-15 07:28:00 GMT", 1000, WD_EINVAL, 0},
    {"asctime form", "Wed Oct 21 07:28:00 2015", 1000, WD_EINVAL, 0},
    {"truncated", "Wed, 21 Oct 2015 07:28:00 GM", 1000, WD_EINVAL, 0},
    {"date junk after", "Wed, 21 Oct 2015 07:28:00 GMTx", 1000, WD_EINVAL, 0},
};

static void retry_after_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const parse_case *c = &parse_cases[i];
        uint64_t ms = 424242;
        int rc = wd_retry_after_parse(c->value, NOW_S, c->max_ms, &ms);
        if (rc != c->rc || (rc == 0 && ms != c->ms) || (rc != 0 && ms != 424242))
            fail_msg("case '%s': rc %d ms %llu, want rc %d ms %llu", c->name, rc,
                     (unsigned long long)ms, c->rc,
                     (unsigned long long)(c->rc == 0 ? c->ms : 424242));
    }
}

static void retry_after_null_out(void **state) {
    (void)state;
    assert_int_equal(wd_retry_after_parse("5", NOW_S, 1000, NULL), WD_EINVAL);
}

typedef struct {
    const char *name;
    long status;
    int curl;
    wd_errclass want;
} http_case;

static const http_case http_cases[] = {
    {"408 timeout", 408, 0, WD_ERRCLASS_TRANSIENT},
    {"429 rate limited", 429, 0, WD_ERRCLASS_TRANSIENT},
    {"500", 500, 0, WD_ERRCLASS_TRANSIENT},
    {"503", 503, 0, WD_ERRCLASS_TRANSIENT},
    {"599", 599, 0, WD_ERRCLASS_TRANSIENT},
    {"400", 400, 0, WD_ERRCLASS_PERMANENT},
    {"401", 401, 0, WD_ERRCLASS_PERMANENT},
    {"404", 404, 0, WD_ERRCLASS_PERMANENT},
    {"409", 409, 0, WD_ERRCLASS_PERMANENT},
    {"499", 499, 0, WD_ERRCLASS_PERMANENT},
    {"600 not 5xx", 600, 0, WD_ERRCLASS_PERMANENT},
    {"301", 301, 0, WD_ERRCLASS_PERMANENT},
    {"couldnt connect", 0, 7, WD_ERRCLASS_TRANSIENT},
    {"operation timedout", 0, 28, WD_ERRCLASS_TRANSIENT},
    {"recv error beats 404", 404, 56, WD_ERRCLASS_TRANSIENT},
    {"unsupported protocol", 0, 1, WD_ERRCLASS_PERMANENT},
    {"url malformat", 0, 3, WD_ERRCLASS_PERMANENT},
    {"not built in", 0, 4, WD_ERRCLASS_PERMANENT},
    {"failed init", 0, 2, WD_ERRCLASS_TRANSIENT},
};

static void classify_http_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof http_cases / sizeof http_cases[0]; i++) {
        const http_case *c = &http_cases[i];
        wd_errclass got = wd_classify_http(c->status, c->curl);
        if (got != c->want)
            fail_msg("case '%s': got %d want %d", c->name, (int)got, (int)c->want);
    }
}

typedef struct {
    const char *name;
    const char *text;
    wd_errclass want;
} text_case;

static const text_case sql_cases[] = {
    {"serialization failure", "40001", WD_ERRCLASS_TRANSIENT},
    {"deadlock", "40P01", WD_ERRCLASS_TRANSIENT},
    {"other class 40", "40002", WD_ERRCLASS_PERMANENT},
    {"connection exception", "08000", WD_ERRCLASS_TRANSIENT},
    {"connection failure", "08006", WD_ERRCLASS_TRANSIENT},
    {"admin shutdown", "57P01", WD_ERRCLASS_TRANSIENT},
    {"crash shutdown", "57P02", WD_ERRCLASS_TRANSIENT},
    {"cannot connect now", "57P03", WD_ERRCLASS_TRANSIENT},
    {"57P04 not listed", "57P04", WD_ERRCLASS_PERMANENT},
    {"query canceled 57014", "57014", WD_ERRCLASS_PERMANENT},
    {"unique violation", "23505", WD_ERRCLASS_PERMANENT},
    {"syntax error", "42601", WD_ERRCLASS_PERMANENT},
    {"undefined table", "42P01", WD_ERRCLASS_PERMANENT},
    {"invalid password", "28P01", WD_ERRCLASS_CRITICAL},
    {"invalid authorization", "28000", WD_ERRCLASS_CRITICAL},
    {"unknown", "XX000", WD_ERRCLASS_PERMANENT},
    {"null", NULL, WD_ERRCLASS_PERMANENT},
    {"short", "0800", WD_ERRCLASS_PERMANENT},
    {"long", "400011", WD_ERRCLASS_PERMANENT},
    {"empty", "", WD_ERRCLASS_PERMANENT},
};

static const text_case redis_cases[] = {
    {"loading", "LOADING Redis is loading the dataset in memory", WD_ERRCLASS_TRANSIENT},
    {"busy", "BUSY Redis is busy running a script", WD_ERRCLASS_TRANSIENT},
    {"tryagain", "TRYAGAIN Multiple keys request during rehashing", WD_ERRCLASS_TRANSIENT},
    {"masterdown", "MASTERDOWN Link with MASTER is down", WD_ERRCLASS_TRANSIENT},
    {"readonly", "READONLY You can't write against a read only replica.", WD_ERRCLASS_TRANSIENT},
    {"bare word", "BUSY", WD_ERRCLASS_TRANSIENT},
    {"busygroup", "BUSYGROUP Consumer Group name already exists", WD_ERRCLASS_PERMANENT},
    {"busykey", "BUSYKEY Target key name already exists.", WD_ERRCLASS_PERMANENT},
    {"lowercase", "loading dataset", WD_ERRCLASS_PERMANENT},
    {"wrongtype", "WRONGTYPE Operation against a key", WD_ERRCLASS_PERMANENT},
    {"generic err", "ERR unknown command", WD_ERRCLASS_PERMANENT},
    {"noauth", "NOAUTH Authentication required.", WD_ERRCLASS_PERMANENT},
    {"prefix only", "LOAD", WD_ERRCLASS_PERMANENT},
    {"empty", "", WD_ERRCLASS_PERMANENT},
    {"null", NULL, WD_ERRCLASS_PERMANENT},
};

static void run_text_cases(const text_case *cases, size_t n, wd_errclass (*fn)(const char *)) {
    for (size_t i = 0; i < n; i++) {
        wd_errclass got = fn(cases[i].text);
        if (got != cases[i].want)
            fail_msg("case '%s': got %d want %d", cases[i].name, (int)got, (int)cases[i].want);
    }
}

static void classify_sqlstate_table(void **state) {
    (void)state;
    run_text_cases(sql_cases, sizeof sql_cases / sizeof sql_cases[0], wd_classify_sqlstate);
}

static void classify_redis_table(void **state) {
    (void)state;
    run_text_cases(redis_cases, sizeof redis_cases / sizeof redis_cases[0],
                   wd_classify_redis_reply);
    assert_int_equal(wd_classify_redis_io(), WD_ERRCLASS_TRANSIENT);
}

static void decorrelated_range_and_spread(void **state) {
    (void)state;
    wd_rng r;
    wd_rng_seed(&r, 42);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t d = wd_backoff_decorrelated(&r, 100, 100000, 1000);
        assert_true(d >= 100 && d <= 3000);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(lo < 150);
    assert_true(hi > 2950);
}

static void decorrelated_edges(void **state) {
    (void)state;
    wd_rng r;
    wd_rng_seed(&r, 7);
    /* First call: prev 0 (or prev*3 <= base) collapses to base. */
    assert_int_equal(wd_backoff_decorrelated(&r, 100, 1000, 0), 100);
    assert_int_equal(wd_backoff_decorrelated(&r, 100, 1000, 33), 100);
    /* Capped. */
    for (int i = 0; i < 1000; i++)
        assert_true(wd_backoff_decorrelated(&r, 100, 500, 100000) <= 500);
    /* base above cap gives cap. */
    assert_int_equal(wd_backoff_decorrelated(&r, 2000, 1000, 0), 1000);
    /* prev * 3 overflow saturates rather than wrapping to a small range. */
    uint64_t big = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t d = wd_backoff_decorrelated(&r, 100, UINT64_MAX, UINT64_MAX / 2);
        assert_true(d >= 100);
        big = d > big ? d : big;
    }
    assert_true(big > UINT64_MAX / 4);
    /* Chaining grows from base on average. */
    uint64_t prev = 100;
    for (int i = 0; i < 20; i++)
        prev = wd_backoff_decorrelated(&r, 100, 60000, prev);
    assert_true(prev >= 100 && prev <= 60000);
}

static void budget_init_rejects(void **state) {
    (void)state;
    wd_retry_budget b;
    memset(&b, 0xAB, sizeof b);
    assert_int_equal(wd_retry_budget_init(&b, -0.1, 1, 0), WD_EINVAL);
    assert_int_equal(wd_retry_budget_init(&b, 0.1, -1, 0), WD_EINVAL);
    assert_int_equal(wd_retry_budget_init(&b, 1001, 1, 0), WD_EINVAL);
    assert_int_equal(wd_retry_budget_init(&b, 0.1, 1001, 0), WD_EINVAL);
    assert_int_equal(wd_retry_budget_init(&b, NAN, 1, 0), WD_EINVAL);
    assert_int_equal(wd_retry_budget_init(&b, 0.1, NAN, 0), WD_EINVAL);
    assert_int_equal(wd_retry_budget_init(NULL, 0.1, 1, 0), WD_EINVAL);
    assert_int_equal(b.ratio_u, 0xABABABABABABABABULL); /* untouched */
    assert_int_equal(wd_retry_budget_init(&b, 1000, 1000, 0), 0);
}

static void budget_ratio_deposits_exactly(void **state) {
    (void)state;
    wd_retry_budget b;
    uint64_t t = 5 * S;
    assert_int_equal(wd_retry_budget_init(&b, 0.1, 0, t), 0);
    /* Starts with one token (the floor of the cap). */
    assert_int_equal(wd_retry_budget_balance(&b), UNIT);
    assert_int_equal(wd_retry_budget_try_spend(&b, t), 0);
    assert_int_equal(wd_retry_budget_try_spend(&b, t), WD_EBUSY);
    /* Nine requests give 0.9 token: still no retry; the tenth gives exactly 1. */
    for (int i = 0; i < 9; i++)
        wd_retry_budget_on_request(&b, t);
    assert_int_equal(wd_retry_budget_try_spend(&b, t), WD_EBUSY);
    wd_retry_budget_on_request(&b, t);
    assert_int_equal(wd_retry_budget_balance(&b), UNIT);
    assert_int_equal(wd_retry_budget_try_spend(&b, t), 0);
    assert_int_equal(wd_retry_budget_try_spend(&b, t), WD_EBUSY);
    /* No floor: time alone adds nothing. */
    assert_int_equal(wd_retry_budget_try_spend(&b, t + 60 * S), WD_EBUSY);
    assert_int_equal(b.requests, 10);
    assert_int_equal(b.retries, 2);
    assert_int_equal(b.denied, 4);
}

static void budget_floor_refills_over_time(void **state) {
    (void)state;
    wd_retry_budget b;
    assert_int_equal(wd_retry_budget_init(&b, 0, 1, 0), 0);
    /* Full at start: 10 s worth of the 1/s floor. */
    assert_int_equal(wd_retry_budget_balance(&b), 10 * UNIT);
    for (int i = 0; i < 10; i++)
        assert_int_equal(wd_retry_budget_try_spend(&b, 0), 0);
    assert_int_equal(wd_retry_budget_try_spend(&b, 0), WD_EBUSY);
    assert_int_equal(wd_retry_budget_try_spend(&b, S - 1), WD_EBUSY);
    assert_int_equal(wd_retry_budget_try_spend(&b, S), 0);
    /* Many tiny steps add up: the sub-unit remainder is carried. */
    uint64_t t = S;
    for (int i = 0; i < 1000; i++) {
        t += 1000; /* 1 us: 1 unit each at 1/s */
        assert_int_equal(wd_retry_budget_try_spend(&b, t), WD_EBUSY);
    }
    assert_int_equal(wd_retry_budget_balance(&b), 1000);
    for (int i = 0; i < 3000; i++) {
        t += 333; /* 0.333 unit each */
        (void)wd_retry_budget_try_spend(&b, t);
    }
    assert_int_equal(wd_retry_budget_balance(&b), 1000 + 999);
    /* Clock going backwards adds nothing. */
    uint64_t before = wd_retry_budget_balance(&b);
    assert_int_equal(wd_retry_budget_try_spend(&b, t - S / 2), WD_EBUSY);
    assert_int_equal(wd_retry_budget_balance(&b), before);
    /* After a long idle the balance is capped at 10 tokens. */
    t += 3600 * S;
    for (int i = 0; i < 10; i++)
        assert_int_equal(wd_retry_budget_try_spend(&b, t), 0);
    assert_int_equal(wd_retry_budget_try_spend(&b, t), WD_EBUSY);
}

static void budget_cap_follows_recent_traffic(void **state) {
    (void)state;
    wd_retry_budget b;
    assert_int_equal(wd_retry_budget_init(&b, 0.1, 0, 0), 0);
    /* 1000 requests in a window: balance may grow to 100 tokens. */
    for (int i = 0; i < 1000; i++)
        wd_retry_budget_on_request(&b, (uint64_t)i * 1000000);
    assert_int_equal(wd_retry_budget_balance(&b), 100 * UNIT);
    /* Next window, no traffic yet: the previous window still backs the cap. */
    assert_int_equal(wd_retry_budget_try_spend(&b, 15 * S), 0);
    assert_int_equal(wd_retry_budget_balance(&b), 99 * UNIT);
    /* Two windows later with no traffic, the saved tokens are trimmed to the
     * floor of one token: a long healthy period cannot bank retries. */
    assert_int_equal(wd_retry_budget_try_spend(&b, 30 * S), 0);
    assert_int_equal(wd_retry_budget_try_spend(&b, 30 * S), WD_EBUSY);
}

static void budget_zero_means_never(void **state) {
    (void)state;
    wd_retry_budget b;
    assert_int_equal(wd_retry_budget_init(&b, 0, 0, 0), 0);
    assert_int_equal(wd_retry_budget_balance(&b), 0);
    wd_retry_budget_on_request(&b, 0);
    assert_int_equal(wd_retry_budget_try_spend(&b, 100 * S), WD_EBUSY);
}

static void budget_outage_bounds_amplification(void **state) {
    (void)state;
    /* 100 req/s for 60 s, all failing, each wanting 3 retries: the budget
     * keeps retries near 10% of requests plus the floor. */
    wd_retry_budget b;
    assert_int_equal(wd_retry_budget_init(&b, 0.1, 1, 0), 0);
    uint64_t allowed = 0;
    for (uint64_t ms = 0; ms < 60000; ms += 10) {
        wd_retry_budget_on_request(&b, ms * 1000000);
        for (int k = 0; k < 3; k++)
            allowed += wd_retry_budget_try_spend(&b, ms * 1000000) == 0;
    }
    /* 6000 requests: 600 from the ratio + 60 from the floor + 10 initial. */
    assert_true(allowed >= 660 && allowed <= 671);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(retry_after_table),
        cmocka_unit_test(retry_after_null_out),
        cmocka_unit_test(classify_http_table),
        cmocka_unit_test(classify_sqlstate_table),
        cmocka_unit_test(classify_redis_table),
        cmocka_unit_test(decorrelated_range_and_spread),
        cmocka_unit_test(decorrelated_edges),
        cmocka_unit_test(budget_init_rejects),
        cmocka_unit_test(budget_ratio_deposits_exactly),
        cmocka_unit_test(budget_floor_refills_over_time),
        cmocka_unit_test(budget_cap_follows_recent_traffic),
        cmocka_unit_test(budget_zero_means_never),
        cmocka_unit_test(budget_outage_bounds_amplification),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
