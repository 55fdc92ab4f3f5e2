/* The paper broker's pure part: one order per client order id, request and
 * fault validation with clear errors, fill prices by side. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "pb.h"
#include "wd_error.h"

static void orders_are_unique_per_client_order_id(void **st) {
    (void)st;
    pb_orders t;
    pb_order *o, *o2;
    pb_order_req r = {.coid = "wd-pm-1", .symbol = "AAPL", .quantity = 5};
    pb_orders_init(&t, 3000);
    assert_int_equal(pb_orders_add(&t, &r, &o), 0);
    assert_int_equal(pb_orders_add(&t, &r, &o2), WD_EEXIST);
    assert_ptr_equal(pb_orders_find(&t, "wd-pm-1"), o);
    /* Many ids (rehashing), then drops: every remaining one still found. */
    for (int i = 2; i <= 2500; i++) {
        snprintf(r.coid, sizeof r.coid, "wd-pm-%d", i);
        assert_int_equal(pb_orders_add(&t, &r, &o), 0);
    }
    for (int i = 2; i <= 2500; i += 3) {
        char id[32];
        snprintf(id, sizeof id, "wd-pm-%d", i);
        pb_orders_drop(&t, id);
    }
    for (int i = 1; i <= 2500; i++) {
        char id[32];
        snprintf(id, sizeof id, "wd-pm-%d", i);
        if (i >= 2 && (i - 2) % 3 == 0)
            assert_null(pb_orders_find(&t, id));
        else
            assert_non_null(pb_orders_find(&t, id));
    }
    pb_orders_free(&t);
    pb_orders_init(&t, 1);
    assert_int_equal(pb_orders_add(&t, &r, &o), 0);
    snprintf(r.coid, sizeof r.coid, "other");
    assert_int_equal(pb_orders_add(&t, &r, &o), WD_ETOOBIG);
    pb_orders_free(&t);
}

static void order_requests_are_checked(void **st) {
    (void)st;
    pb_order_req r;
    char err[PB_ERR_MAX];
    const char *ok = "{\"client_order_id\":\"wd-pm-9\",\"symbol\":\"MSFT\",\"side\":\"buy\","
                     "\"quantity\":3,\"type\":\"market\"}";
    assert_int_equal(pb_order_req_parse(ok, strlen(ok), &r, err, sizeof err), 0);
    assert_true(r.buy);
    assert_float_equal(r.quantity, 3, 0);
    static const struct {
        const char *body, *needle;
    } bad[] = {
        {"not json", "JSON object"},
        {"{\"symbol\":\"A\",\"side\":\"buy\",\"quantity\":1}", "client_order_id"},
        {"{\"client_order_id\":\"a b\",\"symbol\":\"A\",\"side\":\"buy\",\"quantity\":1}",
         "client_order_id"},
        {"{\"client_order_id\":\"a\",\"symbol\":\"A\",\"side\":\"hold\",\"quantity\":1}", "side"},
        {"{\"client_order_id\":\"a\",\"symbol\":\"A\",\"side\":\"buy\",\"quantity\":-1}",
         "quantity"},
        {"{\"client_order_id\":\"a\",\"symbol\":\"A\",\"side\":\"buy\",\"quantity\":1,"
         "\"type\":\"limit\"}", "market"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pb_order_req_parse(bad[i].body, strlen(bad[i].body), &r, err, sizeof err),
                         WD_EINVAL);
        assert_non_null(strstr(err, bad[i].needle));
    }
}

static void faults_are_checked_and_merged(void **st) {
    (void)st;
    pb_faults f = {0};
    char err[PB_ERR_MAX];
    const char *a = "{\"error_rate\":0.5,\"latency_ms\":20}";
    assert_int_equal(pb_faults_parse(a, strlen(a), &f, err, sizeof err), 0);
    const char *b = "{\"rate_429\":1,\"retry_after_s\":2}";
    assert_int_equal(pb_faults_parse(b, strlen(b), &f, err, sizeof err), 0);
    assert_float_equal(f.error_rate, 0.5, 0); /* kept */
    assert_float_equal(f.rate_429, 1, 0);
    assert_int_equal(f.retry_after_s, 2);
    const char *c = "{\"error_rate\":1.5}";
    assert_int_equal(pb_faults_parse(c, strlen(c), &f, err, sizeof err), WD_EINVAL);
    assert_non_null(strstr(err, "error_rate"));
    assert_float_equal(f.error_rate, 0.5, 0); /* unchanged on error */
    const char *d = "{\"typo\":1}";
    assert_int_equal(pb_faults_parse(d, strlen(d), &f, err, sizeof err), WD_EINVAL);
    assert_non_null(strstr(err, "typo"));
}

static void fill_price_by_side(void **st) {
    (void)st;
    assert_float_equal(pb_fill_price(true, 99, 101), 101, 0);
    assert_float_equal(pb_fill_price(false, 99, 101), 99, 0);
    assert_float_equal(pb_fill_price(true, 99, 0), 99, 0);
    assert_float_equal(pb_fill_price(false, 0, 0), 0, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(orders_are_unique_per_client_order_id),
        cmocka_unit_test(order_requests_are_checked),
        cmocka_unit_test(faults_are_checked_and_merged),
        cmocka_unit_test(fill_price_by_side),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
