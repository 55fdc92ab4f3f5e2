/* Request routing: method and request target to an endpoint and its
 * parameters. Pure (no I/O, no state), so the HTTP threads can call it
 * concurrently and the unit tests can drive every branch. nng routes every
 * path to our one tree handler; the 404/405/400/414 answers are ours, as
 * JSON. */
#include "hl.h"
#include "text.h"
#include "config.h"
#include "wd_error.h"
#include <stdio.h>
#include <string.h>

#define HL_SEG_MAX 8 /* path segments looked at */

int hl_url_decode(const char *src, size_t len, bool plus_is_space, char *dst, size_t dstlen) {
    return wd_pct_decode(src, len, plus_is_space, dst, dstlen);
}

static void bad(hl_route *r, const char *msg) {
    r->id = HL_R_BAD_REQUEST;
    snprintf(r->error, sizeof r->error, "%s", msg);
}

/* One query parameter. Unknown keys are ignored, as HTTP servers do. */
static void query_param(hl_route *r, const char *k, size_t klen, const char *v, size_t vlen,
                        bool has_value) {
    char key[32], val[HL_REASON_MAX + 1];
    if (hl_url_decode(k, klen, true, key, sizeof key) != 0)
        return; /* an unknown (long) key */
    if (hl_url_decode(v, vlen, true, val, sizeof val) != 0) {
        if (strcmp(key, "reason") == 0 || strcmp(key, "exclude") == 0 ||
            strcmp(key, "override") == 0)
            bad(r, "bad query value (bad %-escape, NUL byte, or too long)");
        return;
    }
    if (strcmp(key, "verbose") == 0) {
        bool b = true;
        r->verbose = !has_value || val[0] == '\0' || (wd_parse_bool(val, &b) == 0 && b);
    } else if (strcmp(key, "exclude") == 0) {
        size_t n = strlen(val);
        /* Longer than any check name: it cannot match one, so it is ignored. */
        if (r->n_exclude < (int)(sizeof r->exclude / sizeof r->exclude[0]) &&
            n <= HL_CHECK_NAME_MAX) {
            memcpy(r->exclude[r->n_exclude], val, n + 1);
            r->n_exclude++;
        }
    } else if (strcmp(key, "reason") == 0) {
        snprintf(r->reason, sizeof r->reason, "%s", val);
        r->has_reason = val[0] != '\0';
    } else if (strcmp(key, "override") == 0) {
        if (!has_value || val[0] == '\0')
            r->override = true;
        else if (wd_parse_bool(val, &r->override) != 0)
            bad(r, "override must be true or false");
    }
}

static void parse_query(hl_route *r, const char *q) {
    while (*q != '\0' && r->id != HL_R_BAD_REQUEST) {
        const char *amp = strchr(q, '&');
        size_t n = amp != NULL ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        if (eq != NULL)
            query_param(r, q, (size_t)(eq - q), eq + 1, n - (size_t)(eq - q) - 1, true);
        else if (n > 0)
            query_param(r, q, n, "", 0, false);
        q += n;
        if (*q == '&')
            q++;
    }
}

/* Copies a decoded path segment; false when it does not fit or is empty. */
static bool seg_copy(char *dst, size_t dstlen, const char *seg) {
    size_t n = strlen(seg);
    if (n == 0 || n >= dstlen)
        return false;
    memcpy(dst, seg, n + 1);
    return true;
}

/* The route for a path split into segs; method checks follow. */
static void match(hl_route *r, char segs[][HL_CHECK_NAME_MAX + 1], int n, const char **want) {
    *want = "GET";
    r->allow = "GET, HEAD";
    if (n == 0) {
        r->id = HL_R_PAGE;
    } else if (n == 1 && strcmp(segs[0], "livez") == 0) {
        r->id = HL_R_LIVEZ;
    } else if (strcmp(segs[0], "readyz") == 0 && n <= 2) {
        r->id = HL_R_READYZ;
        if (n == 2)
            snprintf(r->check, sizeof r->check, "%s", segs[1]);
    } else if (n == 1 && strcmp(segs[0], "healthz") == 0) {
        r->id = HL_R_HEALTHZ;
    } else if (n == 1 && strcmp(segs[0], "metrics") == 0) {
        r->id = HL_R_METRICS;
    } else if (n >= 2 && strcmp(segs[0], "api") == 0 && strcmp(segs[1], "workers") == 0) {
        if (n == 2) {
            r->id = HL_R_WORKERS;
        } else if (n == 4 && strcmp(segs[3], "restart") == 0 &&
                   seg_copy(r->worker, sizeof r->worker, segs[2])) {
            r->id = HL_R_RESTART;
            *want = "POST";
            r->allow = "POST";
        }
    } else if (n >= 2 && strcmp(segs[0], "api") == 0 &&
               strcmp(segs[1], "circuit-breakers") == 0) {
        if (n == 2) {
            r->id = HL_R_BREAKERS;
        } else if (n == 3 && strcmp(segs[2], "history") == 0) {
            r->id = HL_R_HISTORY;
        } else if (n == 5 && strcmp(segs[4], "reset") == 0 &&
                   seg_copy(r->worker, sizeof r->worker, segs[2]) &&
                   seg_copy(r->breaker, sizeof r->breaker, segs[3])) {
            r->id = HL_R_RESET;
            *want = "POST";
            r->allow = "POST";
        }
    }
}

void hl_route_parse(const char *method, const char *uri, hl_route *r) {
    char segs[HL_SEG_MAX][HL_CHECK_NAME_MAX + 1];
    int n = 0;
    const char *want = "GET";
    memset(r, 0, sizeof *r);
    r->id = HL_R_NOT_FOUND;
    if (method == NULL || uri == NULL) {
        bad(r, "missing method or request target");
        return;
    }
    if (strlen(uri) > HL_URI_MAX) {
        r->id = HL_R_TOO_LONG;
        return;
    }
    if (uri[0] != '/') {
        bad(r, "the request target must be a path starting with '/'");
        return;
    }
    const char *q = strchr(uri, '?');
    size_t plen = q != NULL ? (size_t)(q - uri) : strlen(uri);
    /* Split the raw path on '/', then decode each segment: an escaped slash
     * (%2F) stays inside its segment. Empty segments ("//", a trailing '/')
     * are skipped. */
    for (size_t i = 1; i <= plen;) {
        size_t j = i;
        while (j < plen && uri[j] != '/')
            j++;
        if (j > i) {
            if (n == HL_SEG_MAX)
                return; /* deeper than any route: 404 */
            int rc = hl_url_decode(uri + i, j - i, false, segs[n], sizeof segs[n]);
            if (rc == WD_ETOOBIG)
                return; /* no route has such a long segment: 404 */
            if (rc != 0) {
                bad(r, "bad %-escape or NUL byte in the path");
                return;
            }
            n++;
        }
        i = j + 1;
    }
    match(r, segs, n, &want);
    if (r->id == HL_R_NOT_FOUND)
        return;
    if (q != NULL)
        parse_query(r, q + 1);
    if (r->id == HL_R_BAD_REQUEST)
        return;
    if (strcmp(method, want) == 0)
        return;
    if (strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0) {
        r->head = true;
        return;
    }
    r->id = HL_R_BAD_METHOD;
}
