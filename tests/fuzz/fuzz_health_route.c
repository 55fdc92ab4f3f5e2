/* libFuzzer target: the health server's request parsing (workers/health/
 * hl_route.c), which every HTTP request goes through before any handler:
 * hl_route_parse(method, target) and hl_url_decode. The input is
 * "METHOD TARGET": up to the first blank the method, the rest (up to a NUL,
 * as the HTTP layer hands over C strings) the request target. Aborts when a
 * result breaks the contract in hl.h: an id out of range, a 414 for a short
 * target or none for a long one, a 400 without its error, a mutating route
 * for a method other than POST or without its names, a HEAD flag on another
 * method, an unterminated field; and when hl_url_decode disagrees with the
 * small reference decoder below. Links wdw_health (the "health" in the
 * name, see tests/CMakeLists.txt). */
#include "hl.h"
#include "wd_error.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_INPUT_MAX (4 * HL_URI_MAX) /* past 414 nothing new happens */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_health_route: invariant broken: %s\n", what);
        abort();
    }
}

static int hexv(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The reference: RFC 3986 percent-decoding, '+' as a blank in queries, NUL
 * refused, written the slow obvious way. Returns 0, WD_EINVAL or WD_ETOOBIG
 * with the same precedence as the real one (the first problem met wins). */
static int ref_decode(const char *s, size_t len, int plus, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (len - i < 3 || hexv(s[i + 1]) < 0 || hexv(s[i + 2]) < 0)
                return WD_EINVAL;
            c = hexv(s[i + 1]) * 16 + hexv(s[i + 2]);
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        if (c == 0)
            return WD_EINVAL;
        if (o + 1 >= cap)
            return WD_ETOOBIG;
        out[o++] = (char)c;
    }
    if (cap == 0)
        return WD_ETOOBIG;
    out[o] = '\0';
    return 0;
}

static void check_decode(const char *s, size_t len, int plus, size_t cap) {
    static char a[HL_URI_MAX * 4 + 1], b[HL_URI_MAX * 4 + 1];
    int ra = hl_url_decode(s, len, plus, a, cap);
    int rb = ref_decode(s, len, plus, b, cap);
    check(ra == rb, "hl_url_decode result matches the reference");
    if (ra == 0)
        check(strcmp(a, b) == 0, "hl_url_decode text matches the reference");
}

static int terminated(const char *s, size_t n) { return memchr(s, '\0', n) != NULL; }

static void check_route(const char *method, const char *uri) {
    static hl_route r;
    hl_route_parse(method, uri, &r);
    check(r.id >= HL_R_NOT_FOUND && r.id <= HL_R_RESET, "route id");
    check((r.id == HL_R_TOO_LONG) == (strlen(uri) > HL_URI_MAX), "414 iff too long");
    check(terminated(r.error, sizeof r.error), "error terminated");
    check(terminated(r.check, sizeof r.check), "check terminated");
    check(terminated(r.worker, sizeof r.worker), "worker terminated");
    check(terminated(r.breaker, sizeof r.breaker), "breaker terminated");
    check(terminated(r.reason, sizeof r.reason), "reason terminated");
    check(r.n_exclude >= 0 && r.n_exclude <= 8, "exclude count");
    for (int i = 0; i < r.n_exclude; i++)
        check(terminated(r.exclude[i], sizeof r.exclude[i]), "exclude terminated");
    if (r.id == HL_R_BAD_REQUEST)
        check(r.error[0] != '\0', "400 says why");
    if (r.id == HL_R_BAD_METHOD)
        check(r.allow != NULL && r.allow[0] != '\0', "405 has Allow");
    if (r.head)
        check(strcmp(method, "HEAD") == 0, "HEAD flag only for HEAD");
    if (r.id == HL_R_RESTART || r.id == HL_R_RESET) {
        /* The mutating endpoints: only ever reached by a POST with names. */
        check(strcmp(method, "POST") == 0, "mutation only by POST");
        check(r.worker[0] != '\0', "mutation names a worker");
        if (r.id == HL_R_RESET)
            check(r.breaker[0] != '\0', "reset names a breaker");
    }
    if (r.id != HL_R_NOT_FOUND && r.id != HL_R_TOO_LONG && r.id != HL_R_BAD_REQUEST &&
        r.id != HL_R_BAD_METHOD && strcmp(method, "POST") == 0)
        check(r.id == HL_R_RESTART || r.id == HL_R_RESET, "POST reaches only mutations");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > FUZZ_INPUT_MAX)
        return 0;
    char *buf = malloc(size + 1); /* exact size: ASan sees any over-read */
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *sp = memchr(buf, ' ', size);
    const char *method = "GET", *uri = buf;
    if (sp != NULL) {
        *sp = '\0';
        method = buf;
        uri = sp + 1;
    }
    check_route(method, uri);
    size_t ulen = strlen(uri);
    check_decode(uri, ulen, 0, HL_URI_MAX * 4 + 1);
    check_decode(uri, ulen, 1, HL_URI_MAX * 4 + 1);
    check_decode(uri, ulen, 1, (size % 97) + 1); /* a small destination: WD_ETOOBIG */
    check_decode(uri, ulen, 0, 0);
    free(buf);
    return 0;
}
