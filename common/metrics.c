/* Metrics registry; see metrics.h for the contract. */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wd_error.h"

/* Longest "%.17g" output is 24 characters ("-2.2250738585072014e-308"). */
#define WD_METRIC_NUM_MAX 32
#define WD_METRICS_RENDER_INITIAL 4096

struct wd_series {
    wd_metric *metric;
    char values[WD_METRIC_LABELS_MAX][WD_METRIC_LABEL_VALUE_MAX + 1];
    double value; /* counter or gauge */
    double sum;   /* histogram */
    uint64_t count;
    uint64_t buckets[WD_METRIC_BUCKETS_MAX + 1]; /* per bucket, not cumulative */
};

struct wd_metric {
    wd_metrics *reg;
    wd_metric_kind kind;
    char name[WD_METRIC_NAME_MAX + 1];
    char help[WD_METRIC_HELP_MAX + 1];
    size_t n_labels;
    char labels[WD_METRIC_LABELS_MAX][WD_METRIC_LABEL_NAME_MAX + 1];
    size_t n_bounds;
    double bounds[WD_METRIC_BUCKETS_MAX];
    size_t n_series;
    wd_series *series[WD_METRIC_SERIES_MAX];
};

struct wd_metrics {
    size_t n;
    wd_metric *metrics[WD_METRICS_MAX];
    int err;
};

/* ---- validation ---- */

static int is_alpha_(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int valid_metric_name(const char *s) {
    if (!s || !(is_alpha_(s[0]) || s[0] == ':'))
        return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        if (!(is_alpha_(s[n]) || is_digit(s[n]) || s[n] == ':'))
            return 0;
        if (n >= WD_METRIC_NAME_MAX)
            return 0;
    }
    return 1;
}

static int valid_label_name(const char *s) {
    if (!s || !is_alpha_(s[0]))
        return 0;
    if (s[0] == '_' && s[1] == '_') /* reserved for Prometheus internals */
        return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        if (!(is_alpha_(s[n]) || is_digit(s[n])))
            return 0;
        if (n >= WD_METRIC_LABEL_NAME_MAX)
            return 0;
    }
    return 1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* Copies src (known to fit after validation) into a bounded buffer. */
static void copy_bounded(char *dst, size_t cap, const char *src) {
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- registry ---- */

wd_metrics *wd_metrics_new(void) { return calloc(1, sizeof(wd_metrics)); }

static void metric_free(wd_metric *m) {
    for (size_t i = 0; i < m->n_series; i++)
        free(m->series[i]);
    free(m);
}

void wd_metrics_free(wd_metrics *reg) {
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++)
        metric_free(reg->metrics[i]);
    free(reg);
}

int wd_metrics_error(const wd_metrics *reg) { return reg ? reg->err : WD_EINVAL; }

wd_metric_kind wd_metric_kind_of(const wd_metric *m) { return m->kind; }

static wd_series *series_new(wd_metric *m, const char *const *values) {
    if (m->n_series >= WD_METRIC_SERIES_MAX) {
        m->reg->err = WD_ETOOBIG;
        return NULL;
    }
    wd_series *s = calloc(1, sizeof(*s));
    if (!s) {
        m->reg->err = WD_ENOMEM;
        return NULL;
    }
    s->metric = m;
    for (size_t i = 0; i < m->n_labels; i++)
        copy_bounded(s->values[i], sizeof(s->values[i]), values[i]);
    m->series[m->n_series++] = s;
    return s;
}

static wd_metric *metric_register(wd_metrics *reg, wd_metric_kind kind, const char *name,
                                  const char *help, const char *const *label_names,
                                  const double *bounds, size_t n_bounds) {
    if (!reg)
        return NULL;
    int err = WD_EINVAL;
    wd_metric *m = NULL;
    if (!valid_metric_name(name) || !help)
        goto fail;
    if (kind == WD_METRIC_COUNTER && !ends_with(name, "_total"))
        goto fail;
    if (strnlen(help, WD_METRIC_HELP_MAX + 1) > WD_METRIC_HELP_MAX) {
        err = WD_ETOOBIG;
        goto fail;
    }
    size_t n_labels = 0;
    if (label_names) {
        for (; label_names[n_labels]; n_labels++) {
            if (n_labels >= WD_METRIC_LABELS_MAX) {
                err = WD_ETOOBIG;
                goto fail;
            }
            const char *l = label_names[n_labels];
            if (!valid_label_name(l))
                goto fail;
            if (kind == WD_METRIC_HISTOGRAM && strcmp(l, "le") == 0)
                goto fail;
            for (size_t j = 0; j < n_labels; j++)
                if (strcmp(label_names[j], l) == 0)
                    goto fail;
        }
    }
    if (kind == WD_METRIC_HISTOGRAM) {
        if (n_bounds > WD_METRIC_BUCKETS_MAX) {
            err = WD_ETOOBIG;
            goto fail;
        }
        if (n_bounds > 0 && !bounds)
            goto fail;
        for (size_t i = 0; i < n_bounds; i++) {
            if (!isfinite(bounds[i]))
                goto fail;
            if (i > 0 && !(bounds[i] > bounds[i - 1]))
                goto fail;
        }
    }
    for (size_t i = 0; i < reg->n; i++) {
        if (strcmp(reg->metrics[i]->name, name) == 0) {
            err = WD_EEXIST;
            goto fail;
        }
    }
    if (reg->n >= WD_METRICS_MAX) {
        err = WD_ETOOBIG;
        goto fail;
    }
    m = calloc(1, sizeof(*m));
    if (!m) {
        err = WD_ENOMEM;
        goto fail;
    }
    m->reg = reg;
    m->kind = kind;
    copy_bounded(m->name, sizeof(m->name), name);
    copy_bounded(m->help, sizeof(m->help), help);
    m->n_labels = n_labels;
    for (size_t i = 0; i < n_labels; i++)
        copy_bounded(m->labels[i], sizeof(m->labels[i]), label_names[i]);
    m->n_bounds = kind == WD_METRIC_HISTOGRAM ? n_bounds : 0;
    for (size_t i = 0; i < m->n_bounds; i++)
        m->bounds[i] = bounds[i];
    /* An unlabelled metric exports 0 from the start, as Prometheus expects. */
    if (n_labels == 0 && !series_new(m, NULL)) {
        err = reg->err;
        goto fail;
    }
    reg->metrics[reg->n++] = m;
    reg->err = 0;
    return m;
fail:
    if (m)
        metric_free(m);
    reg->err = err;
    return NULL;
}

wd_metric *wd_metric_counter(wd_metrics *reg, const char *name, const char *help,
                             const char *const *label_names) {
    return metric_register(reg, WD_METRIC_COUNTER, name, help, label_names, NULL, 0);
}

wd_metric *wd_metric_gauge(wd_metrics *reg, const char *name, const char *help,
                           const char *const *label_names) {
    return metric_register(reg, WD_METRIC_GAUGE, name, help, label_names, NULL, 0);
}

wd_metric *wd_metric_histogram(wd_metrics *reg, const char *name, const char *help,
                               const char *const *label_names, const double *bounds,
                               size_t n_bounds) {
    return metric_register(reg, WD_METRIC_HISTOGRAM, name, help, label_names, bounds,
                           n_bounds);
}

wd_series *wd_metric_series(wd_metric *m, const char *const *label_values) {
    if (!m)
        return NULL;
    size_t n = 0;
    if (label_values) {
        /* Stop one past the declared count: an extra value is a mismatch. */
        while (n <= m->n_labels && label_values[n]) {
            if (strnlen(label_values[n], WD_METRIC_LABEL_VALUE_MAX + 1) >
                WD_METRIC_LABEL_VALUE_MAX) {
                m->reg->err = WD_EINVAL;
                return NULL;
            }
            n++;
        }
    }
    if (n != m->n_labels) {
        m->reg->err = WD_EINVAL;
        return NULL;
    }
    for (size_t i = 0; i < m->n_series; i++) {
        wd_series *s = m->series[i];
        size_t j = 0;
        while (j < n && strcmp(s->values[j], label_values[j]) == 0)
            j++;
        if (j == n) {
            m->reg->err = 0;
            return s;
        }
    }
    wd_series *s = series_new(m, label_values);
    if (s)
        m->reg->err = 0;
    return s;
}

/* ---- updates ---- */

int wd_counter_add(wd_series *s, double v) {
    if (!s || s->metric->kind != WD_METRIC_COUNTER)
        return WD_EINVAL;
    if (!isfinite(v) || v < 0)
        return WD_ERANGE;
    s->value += v;
    return 0;
}

int wd_gauge_set(wd_series *s, double v) {
    if (!s || s->metric->kind != WD_METRIC_GAUGE)
        return WD_EINVAL;
    s->value = v;
    return 0;
}

int wd_gauge_add(wd_series *s, double v) {
    if (!s || s->metric->kind != WD_METRIC_GAUGE)
        return WD_EINVAL;
    s->value += v;
    return 0;
}

int wd_hist_observe(wd_series *s, double v) {
    if (!s || s->metric->kind != WD_METRIC_HISTOGRAM)
        return WD_EINVAL;
    if (isnan(v))
        return WD_ERANGE;
    const wd_metric *m = s->metric;
    size_t i = 0;
    while (i < m->n_bounds && !(v <= m->bounds[i]))
        i++;
    s->buckets[i]++; /* i == n_bounds is the +Inf bucket */
    s->count++;
    s->sum += v;
    return 0;
}

double wd_series_value(const wd_series *s) { return s ? s->value : 0; }

/* ---- output buffer: fixed (snapshot) or growing up to a bound (text) ---- */

typedef struct {
    char *p;
    size_t len, cap, max; /* max == cap: fixed, never grows */
    int err;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->err)
        return;
    if (n >= b->max || b->len + n + 1 > b->max) {
        b->err = WD_ETOOBIG;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : WD_METRICS_RENDER_INITIAL;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > b->max)
            cap = b->max;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->err = WD_ENOMEM;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

/* Escapes backslash and newline, and the double quote too for label values. */
static void sb_escaped(sbuf *b, const char *s, int quote) {
    for (; *s; s++) {
        if (*s == '\\')
            sb_putn(b, "\\\\", 2);
        else if (*s == '\n')
            sb_putn(b, "\\n", 2);
        else if (quote && *s == '"')
            sb_putn(b, "\\\"", 2);
        else
            sb_putn(b, s, 1);
    }
}

/* Spells a double the way Prometheus parses it back, exactly. */
static const char *fmt_double(double v, char buf[WD_METRIC_NUM_MAX]) {
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    snprintf(buf, WD_METRIC_NUM_MAX, "%.17g", v);
    return buf;
}

/* NAME SUFFIX {labels[,le="x"]} -- le may be NULL. */
static void sb_series_name(sbuf *b, const wd_series *s, const char *suffix, const char *le) {
    const wd_metric *m = s->metric;
    sb_puts(b, m->name);
    sb_puts(b, suffix);
    if (m->n_labels == 0 && !le)
        return;
    sb_putn(b, "{", 1);
    for (size_t i = 0; i < m->n_labels; i++) {
        if (i)
            sb_putn(b, ",", 1);
        sb_puts(b, m->labels[i]);
        sb_putn(b, "=\"", 2);
        sb_escaped(b, s->values[i], 1);
        sb_putn(b, "\"", 1);
    }
    if (le) {
        if (m->n_labels)
            sb_putn(b, ",", 1);
        sb_puts(b, "le=\"");
        sb_puts(b, le);
        sb_putn(b, "\"", 1);
    }
    sb_putn(b, "}", 1);
}

/* ---- heartbeat snapshot ---- */

static int snap_one(proto_heartbeat *hb, const wd_series *s, const char *suffix, double v) {
    if (hb->n_metrics >= PROTO_METRICS_MAX)
        return 1;
    proto_metric *pm = &hb->metrics[hb->n_metrics];
    sbuf b = {.p = pm->name, .cap = sizeof(pm->name), .max = sizeof(pm->name)};
    pm->name[0] = '\0';
    sb_series_name(&b, s, suffix, NULL);
    if (b.err) {
        pm->name[0] = '\0';
        return 1;
    }
    pm->value = v;
    hb->n_metrics++;
    return 0;
}

int wd_metrics_snapshot(const wd_metrics *reg, proto_heartbeat *hb) {
    if (!reg || !hb)
        return WD_EINVAL;
    int dropped = 0;
    for (size_t i = 0; i < reg->n; i++) {
        const wd_metric *m = reg->metrics[i];
        for (size_t j = 0; j < m->n_series; j++) {
            const wd_series *s = m->series[j];
            if (m->kind == WD_METRIC_HISTOGRAM) {
                dropped += snap_one(hb, s, "_count", (double)s->count);
                dropped += snap_one(hb, s, "_sum", s->sum);
            } else {
                dropped += snap_one(hb, s, "", s->value);
            }
        }
    }
    return dropped;
}

/* ---- Prometheus text format 0.0.4 ---- */

static const char *kind_name(wd_metric_kind k) {
    switch (k) {
    case WD_METRIC_COUNTER:
        return "counter";
    case WD_METRIC_GAUGE:
        return "gauge";
    case WD_METRIC_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

static void render_sample(sbuf *b, const wd_series *s, const char *suffix, const char *le,
                          const char *value) {
    sb_series_name(b, s, suffix, le);
    sb_putn(b, " ", 1);
    sb_puts(b, value);
    sb_putn(b, "\n", 1);
}

static void render_metric(sbuf *b, const wd_metric *m) {
    char num[WD_METRIC_NUM_MAX], le[WD_METRIC_NUM_MAX];
    sb_puts(b, "# HELP ");
    sb_puts(b, m->name);
    sb_putn(b, " ", 1);
    sb_escaped(b, m->help, 0);
    sb_puts(b, "\n# TYPE ");
    sb_puts(b, m->name);
    sb_putn(b, " ", 1);
    sb_puts(b, kind_name(m->kind));
    sb_putn(b, "\n", 1);
    for (size_t j = 0; j < m->n_series; j++) {
        const wd_series *s = m->series[j];
        if (m->kind != WD_METRIC_HISTOGRAM) {
            render_sample(b, s, "", NULL, fmt_double(s->value, num));
            continue;
        }
        uint64_t cum = 0;
        for (size_t k = 0; k <= m->n_bounds; k++) {
            cum += s->buckets[k];
            const char *les = k < m->n_bounds ? fmt_double(m->bounds[k], le) : "+Inf";
            snprintf(num, sizeof(num), "%" PRIu64, cum);
            render_sample(b, s, "_bucket", les, num);
        }
        render_sample(b, s, "_sum", NULL, fmt_double(s->sum, num));
        snprintf(num, sizeof(num), "%" PRIu64, s->count);
        render_sample(b, s, "_count", NULL, num);
    }
}

int wd_metrics_render_prometheus(const wd_metrics *reg, char **out, size_t *len) {
    if (!out)
        return WD_EINVAL;
    *out = NULL;
    if (!reg || !len)
        return WD_EINVAL;
    sbuf b = {.max = WD_METRICS_RENDER_MAX};
    sb_putn(&b, "", 0); /* an empty registry still yields "" */
    for (size_t i = 0; i < reg->n && !b.err; i++) {
        const wd_metric *m = reg->metrics[i];
        if (m->n_series == 0) /* labelled, nothing observed yet */
            continue;
        render_metric(&b, m);
    }
    if (b.err) {
        free(b.p);
        return b.err;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
