/* Line splitting and the per-worker ring: bounded memory whatever the input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "logcap.h"

#define MAX_CAPTURED 16

static struct {
    int n;
    char text[MAX_CAPTURED][64];
    size_t len[MAX_CAPTURED];
    bool trunc[MAX_CAPTURED];
} got;

static void on_line(void *arg, const char *line, size_t len, bool truncated) {
    (void)arg;
    if (got.n == MAX_CAPTURED)
        return;
    size_t copy = len < 63 ? len : 63;
    memcpy(got.text[got.n], line, copy);
    got.text[got.n][copy] = '\0';
    got.len[got.n] = len;
    got.trunc[got.n] = truncated;
    got.n++;
}

static void splits_across_chunks(void **state) {
    (void)state;
    sup_linesplit ls;
    memset(&got, 0, sizeof got);
    assert_int_equal(sup_linesplit_init(&ls, 32), 0);
    sup_linesplit_feed(&ls, "hel", 3, on_line, NULL);
    sup_linesplit_feed(&ls, "lo\nwor", 6, on_line, NULL);
    sup_linesplit_feed(&ls, "ld\r\n\n", 5, on_line, NULL);
    sup_linesplit_feed(&ls, "tail", 4, on_line, NULL);
    assert_int_equal(got.n, 3);
    sup_linesplit_flush(&ls, on_line, NULL);
    assert_int_equal(got.n, 4);
    assert_string_equal(got.text[0], "hello");
    assert_string_equal(got.text[1], "world"); /* CR stripped */
    assert_string_equal(got.text[2], "");
    assert_string_equal(got.text[3], "tail");
    assert_false(got.trunc[0]);
    sup_linesplit_free(&ls);
}

static void long_line_is_cut_once(void **state) {
    (void)state;
    sup_linesplit ls;
    memset(&got, 0, sizeof got);
    assert_int_equal(sup_linesplit_init(&ls, 8), 0);
    /* 10 MB without a newline, fed in pieces, then a newline and a short line. */
    char *big = malloc(1 << 20);
    assert_non_null(big);
    memset(big, 'x', 1 << 20);
    for (int i = 0; i < 10; i++)
        sup_linesplit_feed(&ls, big, 1 << 20, on_line, NULL);
    sup_linesplit_feed(&ls, "x\nok\n", 5, on_line, NULL);
    free(big);
    assert_int_equal(got.n, 2);
    assert_int_equal(got.len[0], 8);
    assert_true(got.trunc[0]);
    assert_string_equal(got.text[1], "ok");
    assert_false(got.trunc[1]);
    sup_linesplit_free(&ls);
}

static void ring_keeps_newest_and_counts(void **state) {
    (void)state;
    sup_logring r;
    assert_int_equal(sup_logring_init(&r, 3), 0);
    const char *lines[] = {"a", "bb", "ccc", "dddd", "eeeee"};
    for (int i = 0; i < 5; i++)
        sup_logring_push(&r, (uint64_t)i, 42, 1, lines[i], strlen(lines[i]), false);
    assert_int_equal(r.count, 3);
    assert_string_equal(sup_logring_at(&r, 0)->text, "ccc");
    assert_int_equal(sup_logring_at(&r, 0)->seq, 3);
    assert_string_equal(sup_logring_at(&r, 2)->text, "eeeee");
    assert_int_equal(r.bytes, 3 + 4 + 5);
    assert_null(sup_logring_at(&r, 3));
    sup_logring_push(&r, 9, 42, 2, "cut", 3, true);
    assert_string_equal(sup_logring_at(&r, 2)->text, "cut" SUP_LOG_TRUNC_MARK);
    assert_int_equal(sup_logring_at(&r, 2)->len, 3 + sizeof SUP_LOG_TRUNC_MARK - 1);
    sup_logring_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(splits_across_chunks),
        cmocka_unit_test(long_line_is_cut_once),
        cmocka_unit_test(ring_keeps_newest_and_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
