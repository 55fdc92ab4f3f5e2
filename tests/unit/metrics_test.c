/* Metrics registry: registration, series, updates, and both exports. The
 * Prometheus text is parsed back by a small parser below, so the round trip
 * checks escaping and float spelling rather than comparing strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "wd_error.h"

/* ---- a small parser for the text format ---- */

#define P_SAMPLES_MAX 512
#define P_NAME_MAX 128
#define P_LABELS_MAX (WD_METRIC_LABELS_MAX + 1) /* + le */
#define P_VALUE_MAX 256
#define P_FAMILIES_MAX 64

typedef struct {
    char name[P_NAME_MAX];
    size_t n_labels;
    char key[P_LABELS_MAX][P_NAME_MAX];
    char val[P_LABELS_MAX][P_VALUE_MAX];
    double value;
} p_sample;

typedef struct {
    char name[P_NAME_MAX];
    char help[P_VALUE_MAX];
    char type[16];
    int n_help, n_type;
} p_family;

typedef struct {
    size_t n;
    p_sample s[P_SAMPLES_MAX];
    size_t n_fam;
    p_family fam[P_FAMILIES_MAX];
} p_result;

static int is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == ':';
}

/* Reads a name into dst (bounded); returns the advanced pointer or NULL. */
static const char *p_name(const char *p, const char *end, char *dst, size_t cap) {
    size_t n = 0;
    while (p < end && is_name_char(*p)) {
        if (n + 1 >= cap)
            return NULL;
        dst[n++] = *p++;
    }
    dst[n] = '\0';
    return n ? p : NULL;
}

/* Unescapes until the closing quote (quoted) or end of line (help). */
static const char *p_unescape(const char *p, const char *end, char *dst, size_t cap,
                              int quoted) {
    size_t n = 0;
    while (p < end && !(quoted && *p == '"')) {
        char c = *p++;
        if (c == '\\') {
            if (p >= end)
                return NULL;
            c = *p++;
            if (c == 'n')
                c = '\n';
            else if (c != '\\' && !(quoted && c == '"'))
                return NULL;
        } else if (c == '"' && quoted) {
            return NULL;
        }
        if (n + 1 >= cap)
            return NULL;
        dst[n++] = c;
    }
    dst[n] = '\0';
    if (quoted) {
        if (p >= end)
            return NULL;
        p++;
    }
    return p;
}

static int p_double(const char *p, const char *end, double *out) {
    size_t n = (size_t)(end - p);
    if (n == 4 && memcmp(p, "+Inf", 4) == 0) {
        *out = INFINITY;
        return 0;
    }
    if (n == 4 && memcmp(p, "-Inf", 4) == 0) {
        *out = -INFINITY;
        return 0;
    }
    if (n == 3 && memcmp(p, "NaN", 3) == 0) {
        *out = NAN;
        return 0;
    }
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++) /* only a plain decimal spelling */
        if (!strchr("0123456789+-.e", buf[i]))
            return -1;
    char *e = NULL;
    *out = strtod(buf, &e);
    return *e == '\0' ? 0 : -1;
}

static p_family *p_family_get(p_result *r, const char *name) {
    for (size_t i = 0; i < r->n_fam; i++)
        if (strcmp(r->fam[i].name, name) == 0)
            return &r->fam[i];
    if (r->n_fam >= P_FAMILIES_MAX)
        return NULL;
    p_family *f = &r->fam[r->n_fam++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    return f;
}

static int p_comment(p_result *r, const char *p, const char *end) {
    int help;
    if ((size_t)(end - p) > 7 && memcmp(p, "# HELP ", 7) == 0)
        help = 1;
    else if ((size_t)(end - p) > 7 && memcmp(p, "# TYPE ", 7) == 0)
        help = 0;
    else
        return 0; /* other comments are allowed and ignored */
    char name[P_NAME_MAX];
    p = p_name(p + 7, end, name, sizeof(name));
    if (!p || p >= end || *p != ' ')
        return -1;
    p++;
    p_family *f = p_family_get(r, name);
    if (!f)
        return -1;
    if (help) {
        f->n_help++;
        return p_unescape(p, end, f->help, sizeof(f->help), 0) ? 0 : -1;
    }
    f->n_type++;
    size_t n = (size_t)(end - p);
    if (n >= sizeof(f->type))
        return -1;
    memcpy(f->type, p, n);
    f->type[n] = '\0';
    return 0;
}

static int p_sample_line(p_result *r, const char *p, const char *end) {
    if (r->n >= P_SAMPLES_MAX)
        return -1;
    p_sample *s = &r->s[r->n];
    memset(s, 0, sizeof(*s));
    p = p_name(p, end, s->name, sizeof(s->name));
    if (!p)
        return -1;
    if (p < end && *p == '{') {
        p++;
        while (p < end && *p != '}') {
            if (s->n_labels >= P_LABELS_MAX)
                return -1;
            p = p_name(p, end, s->key[s->n_labels], P_NAME_MAX);
            if (!p || p + 1 >= end || p[0] != '=' || p[1] != '"')
                return -1;
            p = p_unescape(p + 2, end, s->val[s->n_labels], P_VALUE_MAX, 1);
            if (!p)
                return -1;
            s->n_labels++;
            if (p < end && *p == ',')
                p++;
        }
        if (p >= end)
            return -1;
        p++;
    }
    if (p >= end || *p != ' ')
        return -1;
    if (p_double(p + 1, end, &s->value) != 0)
        return -1;
    r->n++;
    return 0;
}

/* Returns 0 when every line parses, -1 otherwise. */
static int p_parse(const char *text, size_t len, p_result *r) {
    memset(r, 0, sizeof(*r));
    const char *p = text, *end = text + len;
    if (len && end[-1] != '\n')
        return -1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return -1;
        int rc = *p == '#' ? p_comment(r, p, nl) : p_sample_line(r, p, nl);
        if (rc != 0)
            return -1;
        p = nl + 1;
    }
    return 0;
}

static const char *p_label(const p_sample *s, const char *key) {
    for (size_t i = 0; i < s->n_labels; i++)
        if (strcmp(s->key[i], key) == 0)
            return s->val[i];
    return NULL;
}

/* Finds the sample with this name and all given key/value label pairs. */
static const p_sample *p_find(const p_result *r, const char *name, const char *const *kv) {
    for (size_t i = 0; i < r->n; i++) {
        const p_sample *s = &r->s[i];
        if (strcmp(s->name, name) != 0)
            continue;
        size_t n = 0, ok = 1;
        for (; kv && kv[n]; n += 2) {
            const char *v = p_label(s, kv[n]);
            if (!v || strcmp(v, kv[n + 1]) != 0)
                ok = 0;
        }
        if (ok && s->n_labels == n / 2)
            return s;
    }
    return NULL;
}

static int same_double(double a, double b) {
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof(a)) == 0; /* bit-exact, so -0 != 0 */
}

static char *render(const wd_metrics *reg, size_t *len) {
    char *out = NULL;
    assert_int_equal(wd_metrics_render_prometheus(reg, &out, len), 0);
    assert_non_null(out);
    assert_int_equal(strlen(out), *len);
    return out;
}

/* ---- registration ---- */

typedef struct {
    const char *what;
    wd_metric_kind kind;
    const char *name;
    const char *help;
    const char *labels[WD_METRIC_LABELS_MAX + 2];
    double bounds[WD_METRIC_BUCKETS_MAX + 1];
    size_t n_bounds;
    int want;
} reg_case;

static void registration_errors(void **state) {
    (void)state;
    static char long_name[WD_METRIC_NAME_MAX + 2];
    memset(long_name, 'a', sizeof(long_name) - 1);
    memcpy(long_name + sizeof(long_name) - 1 - 6, "_total", 6);
    static char max_name[WD_METRIC_NAME_MAX + 1];
    memset(max_name, 'b', sizeof(max_name) - 1);
    memcpy(max_name + sizeof(max_name) - 1 - 6, "_total", 6);
    static char long_help[WD_METRIC_HELP_MAX + 2];
    memset(long_help, 'h', sizeof(long_help) - 1);

    const reg_case cases[] = {
        {"counter ok", WD_METRIC_COUNTER, "warden_ok_total", "h", {NULL}, {0}, 0, 0},
        {"colons ok", WD_METRIC_COUNTER, "a:b:c_total", "h", {NULL}, {0}, 0, 0},
        {"leading colon ok", WD_METRIC_GAUGE, ":g", "", {NULL}, {0}, 0, 0},
        {"name at max length", WD_METRIC_COUNTER, max_name, "h", {NULL}, {0}, 0, 0},
        {"counter without _total", WD_METRIC_COUNTER, "warden_requests", "h", {NULL}, {0}, 0,
         WD_EINVAL},
        {"counter named _total only", WD_METRIC_COUNTER, "_total", "h", {NULL}, {0}, 0, 0},
        {"empty name", WD_METRIC_GAUGE, "", "h", {NULL}, {0}, 0, WD_EINVAL},
        {"NULL name", WD_METRIC_GAUGE, NULL, "h", {NULL}, {0}, 0, WD_EINVAL},
        {"leading digit", WD_METRIC_GAUGE, "1abc", "h", {NULL}, {0}, 0, WD_EINVAL},
        {"dash in name", WD_METRIC_GAUGE, "a-b", "h", {NULL}, {0}, 0, WD_EINVAL},
        {"space in name", WD_METRIC_GAUGE, "a b", "h", {NULL}, {0}, 0, WD_EINVAL},
        {"name too long", WD_METRIC_COUNTER, long_name, "h", {NULL}, {0}, 0, WD_EINVAL},
        {"NULL help", WD_METRIC_GAUGE, "g_null_help", NULL, {NULL}, {0}, 0, WD_EINVAL},
        {"help too long", WD_METRIC_GAUGE, "g_long_help", long_help, {NULL}, {0}, 0,
         WD_ETOOBIG},
        {"duplicate name", WD_METRIC_GAUGE, "dup_total", "h", {NULL}, {0}, 0, WD_EEXIST},
        {"label leading digit", WD_METRIC_GAUGE, "g1", "h", {"1x", NULL}, {0}, 0, WD_EINVAL},
        {"label reserved __", WD_METRIC_GAUGE, "g2", "h", {"__x", NULL}, {0}, 0, WD_EINVAL},
        {"label with colon", WD_METRIC_GAUGE, "g3", "h", {"a:b", NULL}, {0}, 0, WD_EINVAL},
        {"empty label name", WD_METRIC_GAUGE, "g4", "h", {"", NULL}, {0}, 0, WD_EINVAL},
        {"duplicate label", WD_METRIC_GAUGE, "g5", "h", {"a", "b", "a", NULL}, {0}, 0,
         WD_EINVAL},
        {"max labels ok", WD_METRIC_GAUGE, "g6", "h",
         {"a", "b", "c", "d", "e", "f", "g", "h", NULL}, {0}, 0, 0},
        {"too many labels", WD_METRIC_GAUGE, "g7", "h",
         {"a", "b", "c", "d", "e", "f", "g", "h", "i", NULL}, {0}, 0, WD_ETOOBIG},
        {"le on gauge ok", WD_METRIC_GAUGE, "g8", "h", {"le", NULL}, {0}, 0, 0},
        {"le on histogram", WD_METRIC_HISTOGRAM, "h1", "h", {"le", NULL}, {1}, 1, WD_EINVAL},
        {"histogram ok", WD_METRIC_HISTOGRAM, "h2", "h", {"x", NULL}, {-1, 0, 1}, 3, 0},
        {"histogram no bounds ok", WD_METRIC_HISTOGRAM, "h3", "h", {NULL}, {0}, 0, 0},
        {"bounds unsorted", WD_METRIC_HISTOGRAM, "h4", "h", {NULL}, {2, 1}, 2, WD_EINVAL},
        {"bounds repeated", WD_METRIC_HISTOGRAM, "h5", "h", {NULL}, {1, 1}, 2, WD_EINVAL},
        {"bound NaN", WD_METRIC_HISTOGRAM, "h6", "h", {NULL}, {NAN}, 1, WD_EINVAL},
        {"bound +Inf", WD_METRIC_HISTOGRAM, "h7", "h", {NULL}, {1, INFINITY}, 2, WD_EINVAL},
        {"too many buckets", WD_METRIC_HISTOGRAM, "h8", "h", {NULL}, {0},
         WD_METRIC_BUCKETS_MAX + 1, WD_ETOOBIG},
    };

    wd_metrics *reg = wd_metrics_new();
    assert_non_null(reg);
    assert_non_null(wd_metric_counter(reg, "dup_total", "h", NULL));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reg_case c = cases[i];
        if (c.n_bounds == WD_METRIC_BUCKETS_MAX + 1)
            for (size_t k = 0; k < c.n_bounds; k++)
                c.bounds[k] = (double)k;
        wd_metric *m = NULL;
        switch (c.kind) {
        case WD_METRIC_COUNTER:
            m = wd_metric_counter(reg, c.name, c.help, c.labels);
            break;
        case WD_METRIC_GAUGE:
            m = wd_metric_gauge(reg, c.name, c.help, c.labels);
            break;
        case WD_METRIC_HISTOGRAM:
            m = wd_metric_histogram(reg, c.name, c.help, c.labels, c.bounds, c.n_bounds);
            break;
        }
        int got = wd_metrics_error(reg);
        if (got != c.want || (m != NULL) != (c.want == 0))
            fail_msg("case '%s': got %d (%s), want %d", c.what, got, m ? "metric" : "NULL",
                     c.want);
        if (m)
            assert_int_equal(wd_metric_kind_of(m), c.kind);
    }
    wd_metrics_free(reg);
    wd_metrics_free(NULL);
}

static void registry_bounded(void **state) {
    (void)state;
    wd_metrics *reg = wd_metrics_new();
    char name[32];
    for (int i = 0; i < WD_METRICS_MAX; i++) {
        snprintf(name, sizeof(name), "g_%d", i);
        assert_non_null(wd_metric_gauge(reg, name, "h", NULL));
    }
    assert_null(wd_metric_gauge(reg, "one_more", "h", NULL));
    assert_int_equal(wd_metrics_error(reg), WD_ETOOBIG);
    wd_metrics_free(reg);
}

/* ---- series ---- */

typedef struct {
    const char *what;
    const char *values[5];
    int want;
} series_case;

static void label_count_mismatch(void **state) {
    (void)state;
    static char long_value[WD_METRIC_LABEL_VALUE_MAX + 2];
    memset(long_value, 'v', sizeof(long_value) - 1);
    static char max_value[WD_METRIC_LABEL_VALUE_MAX + 1];
    memset(max_value, 'w', sizeof(max_value) - 1);
    const series_case cases[] = {
        {"exact", {"a", "b", NULL}, 0},
        {"empty values ok", {"", "", NULL}, 0},
        {"value at max length", {max_value, "b", NULL}, 0},
        {"too few", {"a", NULL}, WD_EINVAL},
        {"none", {NULL}, WD_EINVAL},
        {"too many", {"a", "b", "c", NULL}, WD_EINVAL},
        {"value too long", {long_value, "b", NULL}, WD_EINVAL},
    };
    wd_metrics *reg = wd_metrics_new();
    const char *const labels[] = {"x", "y", NULL};
    wd_metric *m = wd_metric_counter(reg, "c_total", "h", labels);
    assert_non_null(m);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wd_series *s = wd_metric_series(m, cases[i].values);
        int got = wd_metrics_error(reg);
        if (got != cases[i].want || (s != NULL) != (cases[i].want == 0))
            fail_msg("case '%s': got %d, want %d", cases[i].what, got, cases[i].want);
    }
    assert_null(wd_metric_series(m, NULL));
    assert_int_equal(wd_metrics_error(reg), WD_EINVAL);

    /* Same values, same series; an unlabelled metric takes NULL or {NULL}. */
    const char *const ab[] = {"a", "b", NULL};
    assert_ptr_equal(wd_metric_series(m, ab), wd_metric_series(m, ab));
    wd_metric *u = wd_metric_gauge(reg, "u", "h", NULL);
    const char *const none[] = {NULL};
    const char *const one[] = {"x", NULL};
    assert_non_null(wd_metric_series(u, NULL));
    assert_ptr_equal(wd_metric_series(u, NULL), wd_metric_series(u, none));
    assert_null(wd_metric_series(u, one));
    assert_int_equal(wd_metrics_error(reg), WD_EINVAL);
    wd_metrics_free(reg);
}

static void series_bounded(void **state) {
    (void)state;
    wd_metrics *reg = wd_metrics_new();
    const char *const labels[] = {"k", NULL};
    wd_metric *m = wd_metric_gauge(reg, "g", "h", labels);
    char v[16];
    wd_series *first = NULL;
    for (int i = 0; i < WD_METRIC_SERIES_MAX; i++) {
        snprintf(v, sizeof(v), "v%d", i);
        const char *const vals[] = {v, NULL};
        wd_series *s = wd_metric_series(m, vals);
        assert_non_null(s);
        if (i == 0)
            first = s;
    }
    const char *const extra[] = {"extra", NULL};
    assert_null(wd_metric_series(m, extra));
    assert_int_equal(wd_metrics_error(reg), WD_ETOOBIG);
    /* Existing series stay reachable after the bound is hit. */
    const char *const v0[] = {"v0", NULL};
    assert_ptr_equal(wd_metric_series(m, v0), first);
    assert_int_equal(wd_metrics_error(reg), 0);
    wd_metrics_free(reg);
}

/* ---- updates ---- */

typedef struct {
    const char *what;
    double add;
    int want;
    double total_after;
} add_case;

static void counter_monotonic(void **state) {
    (void)state;
    const add_case cases[] = {
        {"one", 1, 0, 1},
        {"zero", 0, 0, 1},
        {"fraction", 0.5, 0, 1.5},
        {"negative", -1, WD_ERANGE, 1.5},
        {"tiny negative", -1e-300, WD_ERANGE, 1.5},
        {"NaN", NAN, WD_ERANGE, 1.5},
        {"+Inf", INFINITY, WD_ERANGE, 1.5},
        {"-Inf", -INFINITY, WD_ERANGE, 1.5},
        {"large", 1e15, 0, 1e15 + 1.5},
    };
    wd_metrics *reg = wd_metrics_new();
    wd_series *s = wd_metric_series(wd_metric_counter(reg, "c_total", "h", NULL), NULL);
    assert_non_null(s);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = wd_counter_add(s, cases[i].add);
        if (got != cases[i].want || wd_series_value(s) != cases[i].total_after)
            fail_msg("case '%s': rc %d value %g", cases[i].what, got, wd_series_value(s));
    }
    /* Wrong kind and NULL are rejected. */
    assert_int_equal(wd_gauge_set(s, 1), WD_EINVAL);
    assert_int_equal(wd_gauge_add(s, 1), WD_EINVAL);
    assert_int_equal(wd_hist_observe(s, 1), WD_EINVAL);
    assert_int_equal(wd_counter_add(NULL, 1), WD_EINVAL);

    wd_series *g = wd_metric_series(wd_metric_gauge(reg, "g", "h", NULL), NULL);
    assert_int_equal(wd_gauge_set(g, 5), 0);
    assert_int_equal(wd_gauge_add(g, -7.5), 0);
    assert_true(wd_series_value(g) == -2.5);
    assert_int_equal(wd_counter_add(g, 1), WD_EINVAL);
    wd_metrics_free(reg);
}

typedef struct {
    const char *what;
    double v;
    int want;
    int bucket; /* index of the first bucket counting it; 3 is +Inf */
} obs_case;

static void hist_bucket_placement(void **state) {
    (void)state;
    const double bounds[] = {0.1, 1, 10};
    static const char *const les[] = {"0.10000000000000001", "1", "10", "+Inf"};
    const obs_case cases[] = {
        {"below first", 0.05, 0, 0},
        {"on first bound (le inclusive)", 0.1, 0, 0},
        {"just above first", 0x1.999999999999bp-4 /* nextafter(0.1, 1) */, 0, 1},
        {"on middle bound", 1, 0, 1},
        {"on last bound", 10, 0, 2},
        {"just above last", 10.000000000000002, 0, 3},
        {"negative", -5, 0, 0},
        {"-Inf", -INFINITY, 0, 0},
        {"+Inf", INFINITY, 0, 3},
        {"NaN rejected", NAN, WD_ERANGE, -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wd_metrics *reg = wd_metrics_new();
        wd_metric *m = wd_metric_histogram(reg, "lat_seconds", "h", NULL, bounds, 3);
        wd_series *s = wd_metric_series(m, NULL);
        int got = wd_hist_observe(s, cases[i].v);
        if (got != cases[i].want)
            fail_msg("case '%s': rc %d", cases[i].what, got);
        size_t len;
        char *text = render(reg, &len);
        p_result *r = malloc(sizeof(*r));
        assert_non_null(r);
        assert_int_equal(p_parse(text, len, r), 0);
        for (int b = 0; b < 4; b++) {
            const char *const kv[] = {"le", les[b], NULL};
            const p_sample *ps = p_find(r, "lat_seconds_bucket", kv);
            assert_non_null(ps);
            double want = cases[i].bucket >= 0 && b >= cases[i].bucket ? 1 : 0;
            if (ps->value != want)
                fail_msg("case '%s': bucket le=%s is %g, want %g", cases[i].what, les[b],
                         ps->value, want);
        }
        const p_sample *cnt = p_find(r, "lat_seconds_count", NULL);
        assert_non_null(cnt);
        assert_true(cnt->value == (cases[i].want == 0 ? 1 : 0));
        const p_sample *sum = p_find(r, "lat_seconds_sum", NULL);
        assert_non_null(sum);
        assert_true(same_double(sum->value, cases[i].want == 0 ? cases[i].v : 0));
        free(r);
        free(text);
        wd_metrics_free(reg);
    }
}

/* ---- Prometheus round trip ---- */

static void prometheus_round_trip(void **state) {
    (void)state;
    wd_metrics *reg = wd_metrics_new();
    const char *const req_labels[] = {"method", "path", NULL};
    wd_metric *req = wd_metric_counter(reg, "warden_http_requests_total",
                                       "Requests \\ served\nper path", req_labels);
    static const char *const vals[][2] = {
        {"GET", "/plain"},
        {"POST", "back\\slash"},
        {"PUT", "quo\"te"},
        {"DEL", "new\nline"},
        {"X", "all \\\" \n \\n mixed, {}=,"},
        {"", "caf\xc3\xa9"},
    };
    const size_t n_vals = sizeof(vals) / sizeof(vals[0]);
    for (size_t i = 0; i < n_vals; i++) {
        const char *const lv[] = {vals[i][0], vals[i][1], NULL};
        assert_int_equal(wd_counter_add(wd_metric_series(req, lv), (double)i + 0.1), 0);
    }

    const char *const g_labels[] = {"case", NULL};
    wd_metric *g = wd_metric_gauge(reg, "warden_value", "gauge values", g_labels);
    static const struct {
        const char *label;
        double v;
    } gv[] = {{"zero", 0},           {"negzero", -0.0},      {"tenth", 0.1},
              {"third", 1.0 / 3},    {"huge", 1e300},        {"max", 1.7976931348623157e308},
              {"denorm", 5e-324},    {"neg", -123456.789},   {"int", 9007199254740993.0},
              {"pinf", INFINITY},    {"ninf", -INFINITY},    {"nan", NAN}};
    const size_t n_gv = sizeof(gv) / sizeof(gv[0]);
    for (size_t i = 0; i < n_gv; i++) {
        const char *const lv[] = {gv[i].label, NULL};
        assert_int_equal(wd_gauge_set(wd_metric_series(g, lv), gv[i].v), 0);
    }

    const char *const h_labels[] = {"op", NULL};
    const double bounds[] = {0.005, 0.1, 2.5};
    wd_metric *h = wd_metric_histogram(reg, "warden_op_seconds", "op time", h_labels, bounds, 3);
    const char *const hl[] = {"read \"x\"", NULL};
    wd_series *hs = wd_metric_series(h, hl);
    const double obs[] = {0.001, 0.005, 0.05, 0.1, 1, 3, 100};
    double sum = 0;
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
        assert_int_equal(wd_hist_observe(hs, obs[i]), 0);
        sum += obs[i];
    }
    /* Labelled and never used: not rendered at all. */
    const char *const unused_labels[] = {"k", NULL};
    assert_non_null(wd_metric_gauge(reg, "warden_unused", "h", unused_labels));

    size_t len;
    char *text = render(reg, &len);
    p_result *r = malloc(sizeof(*r));
    assert_non_null(r);
    if (p_parse(text, len, r) != 0)
        fail_msg("unparseable output:\n%s", text);

    /* HELP and TYPE exactly once per family, HELP unescaped back. */
    assert_int_equal(r->n_fam, 3);
    static const struct {
        const char *name, *type, *help;
    } fams[] = {{"warden_http_requests_total", "counter", "Requests \\ served\nper path"},
                {"warden_value", "gauge", "gauge values"},
                {"warden_op_seconds", "histogram", "op time"}};
    for (size_t i = 0; i < 3; i++) {
        const p_family *f = &r->fam[i];
        assert_string_equal(f->name, fams[i].name);
        assert_string_equal(f->type, fams[i].type);
        assert_string_equal(f->help, fams[i].help);
        assert_int_equal(f->n_help, 1);
        assert_int_equal(f->n_type, 1);
    }
    /* Every sample, accounted for exactly. */
    assert_int_equal(r->n, n_vals + n_gv + 4 + 2);
    for (size_t i = 0; i < n_vals; i++) {
        const char *const kv[] = {"method", vals[i][0], "path", vals[i][1], NULL};
        const p_sample *s = p_find(r, "warden_http_requests_total", kv);
        if (!s)
            fail_msg("missing series %zu (path '%s')", i, vals[i][1]);
        assert_true(same_double(s->value, (double)i + 0.1));
    }
    for (size_t i = 0; i < n_gv; i++) {
        const char *const kv[] = {"case", gv[i].label, NULL};
        const p_sample *s = p_find(r, "warden_value", kv);
        assert_non_null(s);
        if (!same_double(s->value, gv[i].v))
            fail_msg("gauge %s: got %.17g want %.17g", gv[i].label, s->value, gv[i].v);
    }
    static const char *const les[] = {"0.0050000000000000001", "0.10000000000000001", "2.5",
                                      "+Inf"};
    const double cum[] = {2, 4, 5, 7};
    double prev_le = -INFINITY;
    for (size_t b = 0; b < 4; b++) {
        const char *const kv[] = {"op", "read \"x\"", "le", les[b], NULL};
        const p_sample *s = p_find(r, "warden_op_seconds_bucket", kv);
        assert_non_null(s);
        assert_true(s->value == cum[b]);
        /* le parses back to the exact bound. */
        double le;
        assert_int_equal(p_double(les[b], les[b] + strlen(les[b]), &le), 0);
        assert_true(same_double(le, b < 3 ? bounds[b] : INFINITY));
        assert_true(le > prev_le);
        prev_le = le;
    }
    const char *const kv[] = {"op", "read \"x\"", NULL};
    const p_sample *s = p_find(r, "warden_op_seconds_sum", kv);
    assert_non_null(s);
    assert_true(same_double(s->value, sum));
    s = p_find(r, "warden_op_seconds_count", kv);
    assert_non_null(s);
    assert_true(s->value == 7);
    /* The +Inf bucket is the last bucket line and equals _count. */
    assert_non_null(strstr(text, "le=\"+Inf\"} 7\nwarden_op_seconds_sum{"));
    assert_null(strstr(text, "warden_unused"));

    free(r);
    free(text);
    wd_metrics_free(reg);
}

static void render_edges(void **state) {
    (void)state;
    wd_metrics *reg = wd_metrics_new();
    size_t len = 99;
    char *text = render(reg, &len);
    assert_int_equal(len, 0);
    free(text);
    char *out = (char *)1;
    assert_int_equal(wd_metrics_render_prometheus(NULL, &out, &len), WD_EINVAL);
    assert_null(out);
    assert_int_equal(wd_metrics_render_prometheus(reg, NULL, &len), WD_EINVAL);
    /* Unlabelled metrics render their zero from registration. */
    assert_non_null(wd_metric_counter(reg, "fresh_total", "", NULL));
    text = render(reg, &len);
    assert_string_equal(text, "# HELP fresh_total \n# TYPE fresh_total counter\n"
                              "fresh_total 0\n");
    free(text);
    wd_metrics_free(reg);
}

/* ---- heartbeat snapshot ---- */

static void snapshot_bounded(void **state) {
    (void)state;
    wd_metrics *reg = wd_metrics_new();
    proto_heartbeat *hb = calloc(1, sizeof(*hb));
    assert_non_null(hb);

    /* Small registry: every sample in order, histograms as _count and _sum. */
    const char *const labels[] = {"k", NULL};
    wd_metric *c = wd_metric_counter(reg, "a_total", "h", labels);
    const char *const q[] = {"q\"\\\n", NULL};
    assert_int_equal(wd_counter_add(wd_metric_series(c, q), 3), 0);
    const double bounds[] = {1};
    wd_metric *h = wd_metric_histogram(reg, "b_seconds", "h", NULL, bounds, 1);
    assert_int_equal(wd_hist_observe(wd_metric_series(h, NULL), 0.5), 0);
    assert_int_equal(wd_hist_observe(wd_metric_series(h, NULL), 2), 0);
    assert_int_equal(wd_metrics_snapshot(reg, hb), 0);
    assert_int_equal(hb->n_metrics, 3);
    assert_string_equal(hb->metrics[0].name, "a_total{k=\"q\\\"\\\\\\n\"}");
    assert_true(hb->metrics[0].value == 3);
    assert_string_equal(hb->metrics[1].name, "b_seconds_count");
    assert_true(hb->metrics[1].value == 2);
    assert_string_equal(hb->metrics[2].name, "b_seconds_sum");
    assert_true(hb->metrics[2].value == 2.5);

    /* Appends after what is there; a name too long for the proto is dropped
     * alone. */
    char big[WD_METRIC_LABEL_VALUE_MAX + 1];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    /* 64 + len("{k=\"\"}") + 127 > PROTO_METRIC_NAME_MAX */
    wd_metric *g = wd_metric_gauge(
        reg, "a_gauge_name_of_sixty_four_characters_so_the_series_cannot_fit__", "h", labels);
    const char *const bigv[] = {big, NULL};
    assert_non_null(wd_metric_series(g, bigv));
    memset(hb, 0, sizeof(*hb));
    hb->n_metrics = 1;
    assert_int_equal(wd_metrics_snapshot(reg, hb), 1);
    assert_int_equal(hb->n_metrics, 4);
    assert_string_equal(hb->metrics[1].name, "a_total{k=\"q\\\"\\\\\\n\"}");

    /* More samples than PROTO_METRICS_MAX: the excess is counted, not written. */
    wd_metrics_free(reg);
    reg = wd_metrics_new();
    char name[32], v[16];
    size_t total = 0;
    for (int i = 0; total < PROTO_METRICS_MAX + 70; i++) {
        snprintf(name, sizeof(name), "g_%d", i);
        wd_metric *m = wd_metric_gauge(reg, name, "h", labels);
        for (int j = 0; j < WD_METRIC_SERIES_MAX; j++, total++) {
            snprintf(v, sizeof(v), "%d", j);
            const char *const lv[] = {v, NULL};
            assert_int_equal(wd_gauge_set(wd_metric_series(m, lv), j), 0);
        }
    }
    memset(hb, 0, sizeof(*hb));
    assert_int_equal(wd_metrics_snapshot(reg, hb), (int)(total - PROTO_METRICS_MAX));
    assert_int_equal(hb->n_metrics, PROTO_METRICS_MAX);
    assert_string_equal(hb->metrics[PROTO_METRICS_MAX - 1].name, "g_3{k=\"63\"}");
    for (size_t i = 0; i < PROTO_METRICS_MAX; i++)
        assert_true(strlen(hb->metrics[i].name) <= PROTO_METRIC_NAME_MAX);
    /* Already full: everything is dropped. */
    assert_int_equal(wd_metrics_snapshot(reg, hb), (int)total);
    assert_int_equal(hb->n_metrics, PROTO_METRICS_MAX);
    assert_int_equal(wd_metrics_snapshot(NULL, hb), WD_EINVAL);
    assert_int_equal(wd_metrics_snapshot(reg, NULL), WD_EINVAL);
    free(hb);
    wd_metrics_free(reg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registration_errors),
        cmocka_unit_test(registry_bounded),
        cmocka_unit_test(label_count_mismatch),
        cmocka_unit_test(series_bounded),
        cmocka_unit_test(counter_monotonic),
        cmocka_unit_test(hist_bucket_placement),
        cmocka_unit_test(prometheus_round_trip),
        cmocka_unit_test(render_edges),
        cmocka_unit_test(snapshot_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
