/* URL handling for the HTTP client: the endpoint key, the redacted form shown
 * in logs and errors, and the check that a text repeats no secret part of a
 * URL. Parsing is libcurl's (CURLU), so what we redact is exactly what curl
 * will request. */
#include "http.h"
#include "wd_error.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

static void set_err(char *err, size_t errlen, const char *msg, const char *detail) {
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s%s%s", msg, detail ? ": " : "", detail ? detail : "");
}

/* One URL split into the parts we need; each string owned by curl. */
typedef struct {
    CURLU *u;
    char *scheme, *host, *port, *path, *user, *password, *query, *fragment;
    CURLUcode rc; /* of the parse */
} url_parts;

static char *part(CURLU *u, CURLUPart what, unsigned flags) {
    char *s = NULL;
    if (curl_url_get(u, what, &s, flags) != CURLUE_OK)
        return NULL;
    return s;
}

static void parts_free(url_parts *p) {
    curl_free(p->scheme);
    curl_free(p->host);
    curl_free(p->port);
    curl_free(p->path);
    curl_free(p->user);
    curl_free(p->password);
    curl_free(p->query);
    curl_free(p->fragment);
    if (p->u != NULL)
        curl_url_cleanup(p->u);
    memset(p, 0, sizeof *p);
}

/* Returns 0, WD_ENOMEM, or WD_EINVAL with p->rc saying why. default_port
 * fills in the scheme's port when the URL has none. */
static int parts_parse(const char *url, url_parts *p, bool default_port) {
    memset(p, 0, sizeof *p);
    if (url == NULL || *url == '\0') {
        p->rc = CURLUE_MALFORMED_INPUT;
        return WD_EINVAL;
    }
    p->u = curl_url();
    if (p->u == NULL)
        return WD_ENOMEM;
    p->rc = curl_url_set(p->u, CURLUPART_URL, url, 0);
    if (p->rc != CURLUE_OK) {
        parts_free(p);
        return WD_EINVAL;
    }
    p->scheme = part(p->u, CURLUPART_SCHEME, 0);
    p->host = part(p->u, CURLUPART_HOST, 0);
    p->port = part(p->u, CURLUPART_PORT, default_port ? CURLU_DEFAULT_PORT : 0);
    p->path = part(p->u, CURLUPART_PATH, 0);
    p->user = part(p->u, CURLUPART_USER, 0);
    p->password = part(p->u, CURLUPART_PASSWORD, 0);
    p->query = part(p->u, CURLUPART_QUERY, 0);
    p->fragment = part(p->u, CURLUPART_FRAGMENT, 0);
    if (p->scheme == NULL || p->host == NULL || *p->host == '\0') {
        p->rc = CURLUE_NO_HOST;
        parts_free(p);
        return WD_EINVAL;
    }
    return 0;
}

static bool is_http_scheme(const char *s) {
    return strcmp(s, "http") == 0 || strcmp(s, "https") == 0;
}

int wd_http_url_endpoint(const char *url, char *out, size_t outlen, char *err, size_t errlen) {
    url_parts p;
    int rc = parts_parse(url, &p, true);
    if (rc == WD_ENOMEM) {
        set_err(err, errlen, "out of memory", NULL);
        return rc;
    }
    if (rc != 0) {
        set_err(err, errlen, "invalid URL", curl_url_strerror(p.rc));
        return rc;
    }
    if (!is_http_scheme(p.scheme)) {
        /* The scheme is not secret and helps the operator find the typo. */
        char what[64];
        snprintf(what, sizeof what, "scheme '%.16s' is not http or https", p.scheme);
        set_err(err, errlen, "invalid URL", what);
        parts_free(&p);
        return WD_EINVAL;
    }
    for (char *c = p.host; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    int n = out != NULL && outlen > 0
                ? snprintf(out, outlen, "%s://%s:%s", p.scheme, p.host, p.port ? p.port : "")
                : -1;
    parts_free(&p);
    if (n < 0 || (size_t)n >= outlen) {
        set_err(err, errlen, "invalid URL", "host name too long");
        return WD_ETOOBIG;
    }
    return 0;
}

/* The first path segment of path ("/a/b" -> "a", length in *len) and
 * whether anything but a lone "/" follows it. */
static const char *first_segment(const char *path, size_t *len, bool *tail) {
    const char *s = path != NULL && *path == '/' ? path + 1 : (path ? path : "");
    const char *slash = strchr(s, '/');
    *len = slash ? (size_t)(slash - s) : strlen(s);
    *tail = slash != NULL && slash[1] != '\0';
    return s;
}

int wd_http_redact_url(const char *url, char *out, size_t outlen) {
    if (out == NULL && outlen > 0)
        return WD_EINVAL;
    url_parts p;
    int rc = parts_parse(url, &p, false);
    if (rc != 0) {
        if (outlen > 0)
            snprintf(out, outlen, "%s", "<invalid url>");
        return WD_EINVAL;
    }
    size_t seg_len;
    bool tail;
    const char *seg = first_segment(p.path, &seg_len, &tail);
    bool hide_seg = seg_len > WD_HTTP_REDACT_SEGMENT_MAX;
    int n = snprintf(out, outlen, "%s://%s%s%s%s%.*s%s", p.scheme, p.host, p.port ? ":" : "",
                     p.port ? p.port : "", seg_len > 0 ? "/" : "",
                     hide_seg ? 3 : (int)seg_len, hide_seg ? &WD_HTTP_REDACT_MARK[1] : seg,
                     tail && !hide_seg ? WD_HTTP_REDACT_MARK : "");
    parts_free(&p);
    if (n < 0 || (size_t)n >= outlen)
        return WD_ETOOBIG;
    return 0;
}

static bool contains(const char *text, const char *piece, size_t len) {
    if (piece == NULL || len == 0)
        return false;
    for (const char *t = text; (t = strchr(t, piece[0])) != NULL; t++)
        if (strncmp(t, piece, len) == 0)
            return true;
    return false;
}

static bool contains_str(const char *text, const char *piece) {
    return piece != NULL && contains(text, piece, strlen(piece));
}

bool wd_http_text_leaks(const char *text, const char *url) {
    if (text == NULL || url == NULL)
        return false;
    url_parts p;
    if (parts_parse(url, &p, false) != 0) {
        /* Nothing to compare with: only the whole input could be secret. */
        return *url != '\0' && strstr(text, url) != NULL;
    }
    size_t seg_len;
    bool tail;
    const char *seg = first_segment(p.path, &seg_len, &tail);
    bool leak = contains_str(text, p.user) || contains_str(text, p.password) ||
                contains_str(text, p.query) || contains_str(text, p.fragment) ||
                (seg_len > WD_HTTP_REDACT_SEGMENT_MAX && contains(text, seg, seg_len)) ||
                (tail && contains_str(text, seg + seg_len + 1));
    parts_free(&p);
    return leak;
}
