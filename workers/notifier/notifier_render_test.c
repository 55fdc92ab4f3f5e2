/* Message rendering: Slack (color by severity), the generic webhook JSON,
 * storm digests, the email message and the log line. Every JSON body is
 * parsed back with jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nt.h"

static proto_alert mk(const char *id, proto_alert_severity sev, const char *title,
                      const char *text) {
    proto_alert a;
    memset(&a, 0, sizeof a);
    strcpy(a.id, id);
    strcpy(a.source, "position_monitor");
    a.severity = sev;
    strcpy(a.title, title);
    strcpy(a.text, text);
    a.time_ns = 1700000000123456789ull;
    strcpy(a.dedup_key, "exit:AAPL");
    proto_alert_label_add(&a, "symbol", "AAPL");
    return a;
}

static json_t *parse(char *s, const size_t *lenp) {
    size_t len = *lenp;
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    assert_non_null(j);
    free(s);
    return j;
}

static void slack_color_by_severity(void **state) {
    (void)state;
    static const char *want[] = {"#439FE0", "warning", "danger"};
    for (int s = 0; s < PROTO_SEV_COUNT; s++) {
        proto_alert a = mk("a1", (proto_alert_severity)s, "exit <AAPL> & co", "stop loss hit");
        const proto_alert *v[] = {&a};
        nt_msg m = {v, 1, 0};
        size_t len;
        json_t *j = parse(nt_render_slack(&m, &len), &len);
        json_t *att = json_array_get(json_object_get(j, "attachments"), 0);
        assert_string_equal(json_string_value(json_object_get(att, "color")), want[s]);
        /* mrkdwn's specials are escaped; the severity leads the title. */
        const char *title = json_string_value(json_object_get(att, "title"));
        assert_non_null(strstr(title, "exit &lt;AAPL&gt; &amp; co"));
        assert_non_null(strstr(title, proto_alert_severity_name((proto_alert_severity)s)));
        assert_string_equal(json_string_value(json_object_get(att, "text")), "stop loss hit");
        json_t *f = json_array_get(json_object_get(att, "fields"), 0);
        assert_string_equal(json_string_value(json_object_get(f, "title")), "symbol");
        assert_string_equal(json_string_value(json_object_get(f, "value")), "AAPL");
        assert_int_equal(json_integer_value(json_object_get(att, "ts")), 1700000000);
        json_decref(j);
    }
}

static void slack_digest_and_repeats(void **state) {
    (void)state;
    proto_alert a = mk("a1", PROTO_SEV_INFO, "one", ""), b = mk("a2", PROTO_SEV_CRITICAL, "two", "");
    const proto_alert *v[] = {&a, &b};
    nt_msg m = {v, 2, 0};
    size_t len;
    json_t *j = parse(nt_render_slack(&m, &len), &len);
    assert_non_null(strstr(json_string_value(json_object_get(j, "text")), "2 alerts"));
    json_t *att = json_array_get(json_object_get(j, "attachments"), 0);
    assert_string_equal(json_string_value(json_object_get(att, "color")), "danger");
    assert_non_null(strstr(json_string_value(json_object_get(att, "text")), "two"));
    json_decref(j);
    nt_msg r = {v, 1, 7};
    j = parse(nt_render_slack(&r, &len), &len);
    assert_non_null(strstr(json_string_value(json_object_get(j, "text")), "repeated 7 times"));
    json_decref(j);
}

static void webhook_fields(void **state) {
    (void)state;
    proto_alert a = mk("a1", PROTO_SEV_WARNING, "exit AAPL", "line1\nline2 \"quoted\"");
    const proto_alert *v[] = {&a};
    nt_msg m = {v, 1, 0};
    size_t len;
    json_t *j = parse(nt_render_webhook(&m, &len), &len);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "a1");
    assert_string_equal(json_string_value(json_object_get(j, "severity")), "warning");
    assert_string_equal(json_string_value(json_object_get(j, "source")), "position_monitor");
    assert_string_equal(json_string_value(json_object_get(j, "text")), "line1\nline2 \"quoted\"");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "labels"), "symbol")),
                        "AAPL");
    assert_int_equal(json_integer_value(json_object_get(j, "time")), 1700000000123LL);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "dedup_key")), "exit:AAPL");
    json_decref(j);
    proto_alert b = mk("a2", PROTO_SEV_CRITICAL, "x", "");
    const proto_alert *w[] = {&a, &b};
    nt_msg d = {w, 2, 0};
    j = parse(nt_render_webhook(&d, &len), &len);
    assert_true(json_is_true(json_object_get(j, "digest")));
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 2);
    assert_string_equal(json_string_value(json_object_get(j, "severity")), "critical");
    assert_int_equal(json_array_size(json_object_get(j, "alerts")), 2);
    json_decref(j);
}

static void email_message(void **state) {
    (void)state;
    proto_alert a = mk("a1", PROTO_SEV_CRITICAL, "position AAPL exited", "stop loss\nat 101.5");
    const proto_alert *v[] = {&a};
    nt_msg m = {v, 1, 0};
    size_t len;
    char *s = nt_render_email(&m, "warden@example.org", "ops@example.org",
                              1700000000000000000ull, &len);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    assert_non_null(strstr(s, "Subject: [critical] position AAPL exited\r\n"));
    assert_non_null(strstr(s, "From: warden@example.org\r\n"));
    assert_non_null(strstr(s, "To: ops@example.org\r\n"));
    assert_non_null(strstr(s, "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
    assert_non_null(strstr(s, "Content-Type: text/plain; charset=utf-8\r\n"));
    assert_non_null(strstr(s, "Content-Transfer-Encoding: 8bit\r\n\r\n"));
    assert_non_null(strstr(s, "stop loss\r\nat 101.5\r\n"));
    assert_non_null(strstr(s, "symbol: AAPL\r\n"));
    /* Every line ends in CRLF: no bare LF anywhere. */
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\n')
            assert_true(i > 0 && s[i - 1] == '\r');
    free(s);
    proto_alert b = mk("a2", PROTO_SEV_INFO, "two", "");
    const proto_alert *w[] = {&a, &b};
    nt_msg d = {w, 2, 0};
    s = nt_render_email(&d, "f@x", "t@x", 1, &len);
    assert_non_null(strstr(s, "Subject: [critical] alert storm: 2 alerts\r\n"));
    assert_non_null(strstr(s, "[info] two\r\n"));
    free(s);
}

static void log_line(void **state) {
    (void)state;
    proto_alert a = mk("a1", PROTO_SEV_WARNING, "say \"hi\"", "x\ny");
    const proto_alert *v[] = {&a};
    nt_msg m = {v, 1, 3};
    size_t len;
    char *s = nt_render_log(&m, "log", &len);
    assert_non_null(s);
    assert_null(strchr(s, '\n'));
    assert_non_null(strstr(s, "id=\"a1\" severity=warning count=3"));
    assert_non_null(strstr(s, "title=\"say \\\"hi\\\"\""));
    assert_non_null(strstr(s, "text=\"x\\ny\""));
    assert_non_null(strstr(s, "label.symbol=\"AAPL\""));
    free(s);
    /* A digest names what it holds. */
    proto_alert b = mk("a2", PROTO_SEV_CRITICAL, "feed crash loop", "");
    const proto_alert *w[] = {&a, &b};
    nt_msg d = {w, 2, 0};
    s = nt_render_log(&d, "log", &len);
    assert_non_null(s);
    assert_null(strchr(s, '\n'));
    assert_non_null(strstr(s, "digest=2 severity=critical first_id=\"a1\""));
    assert_non_null(strstr(s, "title.1=\"[warning] say \\\"hi\\\"\""));
    assert_non_null(strstr(s, "title.2=\"[critical] feed crash loop\""));
    assert_null(strstr(s, "more="));
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(slack_color_by_severity), cmocka_unit_test(slack_digest_and_repeats),
        cmocka_unit_test(webhook_fields),          cmocka_unit_test(email_message),
        cmocka_unit_test(log_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
