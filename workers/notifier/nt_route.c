/* Routing: which channels an alert goes to, by severity and labels. */
#include "nt.h"
#include "wd_error.h"

#include <stdio.h>
#include <string.h>

/* Splits s at commas into trimmed items; calls fn for each non-empty one. */
static int each_item(const char *s, int (*fn)(void *arg, const char *item, size_t len), void *arg) {
    const char *p = s;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *b = p, *e = p + n;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > b) {
            int rc = fn(arg, b, (size_t)(e - b));
            if (rc != 0)
                return rc;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

typedef struct {
    nt_route *r;
    char *err;
    size_t errlen;
} parse_ctx;

static int sev_item(void *arg, const char *item, size_t len) {
    parse_ctx *c = arg;
    proto_alert_severity s;
    if (proto_alert_severity_parse(item, len, &s) != 0) {
        snprintf(c->err, c->errlen, "severities: unknown severity '%.*s' (info, warning, critical)",
                 (int)(len > 32 ? 32 : len), item);
        return WD_EINVAL;
    }
    c->r->severity[s] = true;
    return 0;
}

static int label_item(void *arg, const char *item, size_t len) {
    parse_ctx *c = arg;
    const char *eq = memchr(item, '=', len);
    if (!eq || eq == item) {
        snprintf(c->err, c->errlen, "labels: expected key=value, got '%.*s'",
                 (int)(len > 64 ? 64 : len), item);
        return WD_EINVAL;
    }
    size_t kl = (size_t)(eq - item), vl = len - kl - 1;
    if (c->r->n_labels >= PROTO_ALERT_LABELS_MAX || kl > PROTO_ALERT_LABEL_KEY_MAX ||
        vl > PROTO_ALERT_LABEL_VAL_MAX) {
        snprintf(c->err, c->errlen, "labels: more than %d pairs or one too long",
                 PROTO_ALERT_LABELS_MAX);
        return WD_ETOOBIG;
    }
    uint32_t i = c->r->n_labels++;
    memcpy(c->r->key[i], item, kl);
    c->r->key[i][kl] = '\0';
    memcpy(c->r->val[i], eq + 1, vl);
    c->r->val[i][vl] = '\0';
    return 0;
}

int nt_route_parse(nt_route *r, const char *severities, const char *labels, char *err,
                   size_t errlen) {
    char dummy[8];
    parse_ctx c = {r, err ? err : dummy, err ? errlen : sizeof dummy};
    memset(r, 0, sizeof *r);
    int rc = each_item(severities ? severities : "", sev_item, &c);
    if (rc == 0)
        rc = each_item(labels ? labels : "", label_item, &c);
    if (rc == 0 && !r->severity[0] && !r->severity[1] && !r->severity[2]) {
        snprintf(c.err, c.errlen, "severities: empty: the channel would get nothing");
        rc = WD_EINVAL;
    }
    return rc;
}

bool nt_route_match(const nt_route *r, const proto_alert *a) {
    if ((unsigned)a->severity >= PROTO_SEV_COUNT || !r->severity[a->severity])
        return false;
    for (uint32_t i = 0; i < r->n_labels; i++) {
        const char *v = proto_alert_label_get(a, r->key[i]);
        if (!v || (strcmp(r->val[i], "*") != 0 && strcmp(r->val[i], v) != 0))
            return false;
    }
    return true;
}
