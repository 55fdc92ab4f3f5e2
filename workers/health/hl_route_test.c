/* Request routing and parsing of the health worker (hl_route.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hl.h"
#include "wd_error.h"

static hl_route r;

static void get_routes(void **state) {
    (void)state;
    static const struct {
        const char *uri;
        hl_route_id id;
    } t[] = {{"/", HL_R_PAGE},
             {"/livez", HL_R_LIVEZ},
             {"/livez?verbose", HL_R_LIVEZ},
             {"/readyz", HL_R_READYZ},
             {"/readyz/", HL_R_READYZ},
             {"/healthz", HL_R_HEALTHZ},
             {"/metrics", HL_R_METRICS},
             {"/api/workers", HL_R_WORKERS},
             {"/api/circuit-breakers", HL_R_BREAKERS},
             {"/api/circuit-breakers/history", HL_R_HISTORY},
             {"//livez", HL_R_LIVEZ},
             {"/nope", HL_R_NOT_FOUND},
             {"/livez/x", HL_R_NOT_FOUND},
             {"/api", HL_R_NOT_FOUND},
             {"/api/workers/a", HL_R_NOT_FOUND},
             {"/readyz/a/b", HL_R_NOT_FOUND},
             {"/a/b/c/d/e/f/g/h/i/j", HL_R_NOT_FOUND}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        hl_route_parse("GET", t[i].uri, &r);
        if (r.id != t[i].id)
            fail_msg("%s: route %d, want %d", t[i].uri, (int)r.id, (int)t[i].id);
        assert_false(r.head);
    }
}

static void readyz_params(void **state) {
    (void)state;
    hl_route_parse("GET", "/readyz/worker%3Adb?verbose=1&exclude=agg&exclude=breaker:pm:redis", &r);
    assert_int_equal(r.id, HL_R_READYZ);
    assert_string_equal(r.check, "worker:db");
    assert_true(r.verbose);
    assert_int_equal(r.n_exclude, 2);
    assert_string_equal(r.exclude[0], "agg");
    assert_string_equal(r.exclude[1], "breaker:pm:redis");
    hl_route_parse("GET", "/readyz?verbose=false", &r);
    assert_false(r.verbose);
    hl_route_parse("GET", "/readyz?verbose=", &r);
    assert_true(r.verbose);
    hl_route_parse("GET", "/readyz?unknown=1&x", &r);
    assert_int_equal(r.id, HL_R_READYZ);
    assert_false(r.verbose);
}

static void post_routes(void **state) {
    (void)state;
    hl_route_parse("POST", "/api/workers/agg/restart", &r);
    assert_int_equal(r.id, HL_R_RESTART);
    assert_string_equal(r.worker, "agg");
    hl_route_parse("POST",
                   "/api/circuit-breakers/pm/redis/reset?reason=redis+back%2C+checked&override=true",
                   &r);
    assert_int_equal(r.id, HL_R_RESET);
    assert_string_equal(r.worker, "pm");
    assert_string_equal(r.breaker, "redis");
    assert_string_equal(r.reason, "redis back, checked");
    assert_true(r.has_reason);
    assert_true(r.override);
    hl_route_parse("POST", "/api/circuit-breakers/pm/redis/reset?override", &r);
    assert_true(r.override);
    assert_false(r.has_reason);
    hl_route_parse("POST", "/api/circuit-breakers/pm/redis/reset?override=maybe", &r);
    assert_int_equal(r.id, HL_R_BAD_REQUEST);
    assert_non_null(strstr(r.error, "override"));
}

static void methods(void **state) {
    (void)state;
    hl_route_parse("POST", "/livez", &r);
    assert_int_equal(r.id, HL_R_BAD_METHOD);
    assert_string_equal(r.allow, "GET, HEAD");
    hl_route_parse("GET", "/api/workers/agg/restart", &r);
    assert_int_equal(r.id, HL_R_BAD_METHOD);
    assert_string_equal(r.allow, "POST");
    hl_route_parse("HEAD", "/metrics", &r);
    assert_int_equal(r.id, HL_R_METRICS);
    assert_true(r.head);
    hl_route_parse("DELETE", "/api/circuit-breakers/a/b/reset", &r);
    assert_int_equal(r.id, HL_R_BAD_METHOD);
    /* An unknown path stays 404 whatever the method. */
    hl_route_parse("PUT", "/nope", &r);
    assert_int_equal(r.id, HL_R_NOT_FOUND);
}

static void bad_input(void **state) {
    (void)state;
    char big[HL_URI_MAX + 16];
    memset(big, 'a', sizeof big - 1);
    big[0] = '/';
    big[sizeof big - 1] = '\0';
    hl_route_parse("GET", big, &r);
    assert_int_equal(r.id, HL_R_TOO_LONG);
    hl_route_parse("GET", "/livez%zz", &r);
    assert_int_equal(r.id, HL_R_BAD_REQUEST);
    hl_route_parse("GET", "/live%00z", &r);
    assert_int_equal(r.id, HL_R_BAD_REQUEST);
    hl_route_parse("GET", "/livez%4", &r);
    assert_int_equal(r.id, HL_R_BAD_REQUEST);
    hl_route_parse("GET", "livez", &r);
    assert_int_equal(r.id, HL_R_BAD_REQUEST);
    hl_route_parse("GET", "http://host/livez", &r);
    assert_int_equal(r.id, HL_R_BAD_REQUEST);
    hl_route_parse(NULL, "/livez", &r);
    assert_int_equal(r.id, HL_R_BAD_REQUEST);
    hl_route_parse("POST", "/api/circuit-breakers/a/b/reset?reason=%zz", &r);
    assert_int_equal(r.id, HL_R_BAD_REQUEST);
    /* A worker name longer than any worker's is no route. */
    char longname[300] = "/api/workers/";
    memset(longname + strlen(longname), 'w', 200);
    strcat(longname, "/restart");
    hl_route_parse("POST", longname, &r);
    assert_int_equal(r.id, HL_R_NOT_FOUND);
}

static void url_decode(void **state) {
    (void)state;
    char out[8];
    assert_int_equal(hl_url_decode("a%41+b", 6, true, out, sizeof out), 0);
    assert_string_equal(out, "aA b");
    assert_int_equal(hl_url_decode("a+b", 3, false, out, sizeof out), 0);
    assert_string_equal(out, "a+b");
    assert_int_equal(hl_url_decode("12345678", 8, false, out, sizeof out), WD_ETOOBIG);
    assert_int_equal(hl_url_decode("%4", 2, false, out, sizeof out), WD_EINVAL);
    assert_int_equal(hl_url_decode("%g0", 3, false, out, sizeof out), WD_EINVAL);
    assert_int_equal(hl_url_decode("%00", 3, false, out, sizeof out), WD_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_routes), cmocka_unit_test(readyz_params),
        cmocka_unit_test(post_routes), cmocka_unit_test(methods),
        cmocka_unit_test(bad_input), cmocka_unit_test(url_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
