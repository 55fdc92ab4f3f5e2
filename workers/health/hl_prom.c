/* /metrics: the supervisor's status rendered as Prometheus text format
 * 0.0.4. Every family has HELP and TYPE and its series together, counters
 * end in _total, base units (seconds, bytes), one series per state for
 * state gauges, so `promtool check metrics` passes. Workers' own heartbeat
 * samples are passed through as warden_<name>{worker="W",...}, histograms
 * put back together from their _count/_sum(/_bucket) samples; the
 * runtime's wrk_breaker_* samples become the warden_breaker_* families. */
#include "hl.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HL_PROM_NAME_MAX 200
#define HL_PROM_LABELS_MAX 512

static const char *const worker_states[] = {"STOPPED", "STARTING", "RUNNING", "STOPPING",
                                            "BACKOFF", "UNRESPONSIVE", "FATAL"};
static const char *const breaker_states[] = {"closed", "open", "half_open", "forced_open",
                                             "disabled"};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const char *str(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static void esc(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '"')
            fputs("\\\"", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void value(FILE *f, double v) {
    if (isnan(v))
        fputs(" NaN\n", f);
    else if (isinf(v))
        fputs(v > 0 ? " +Inf\n" : " -Inf\n", f);
    else {
        /* The shortest of %.15g / %.17g that reads back as v. */
        char buf[40];
        snprintf(buf, sizeof buf, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, sizeof buf, "%.17g", v);
        fprintf(f, " %s\n", buf);
    }
}

static void family(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_w(FILE *f, const char *name, const char *worker, double v) {
    fprintf(f, "%s{worker=\"", name);
    esc(f, worker);
    fputs("\"}", f);
    value(f, v);
}

/* A worker's heartbeat sample "metric{breaker=\"B\"...}" value, or NAN. */
static double hb_brk(const json_t *w, const char *metric, const char *brk, const char *extra) {
    char key[PROTO_METRIC_NAME_MAX + 1];
    int n = snprintf(key, sizeof key, "%s{breaker=\"%s\"%s}", metric, brk, extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof key)
        return NAN;
    const json_t *v = json_object_get(json_object_get(w, "metrics"), key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static bool has_pid(const json_t *w) { return json_is_integer(json_object_get(w, "pid")); }

/* ---- worker metrics pass-through ---- */

static bool name_char(char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Splits "base{labels}" and checks both against the text format: base a
 * metric name, labels `k="v",...` with label names [a-zA-Z_][a-zA-Z0-9_]*
 * (not "worker", which we add) and values escaped. */
static bool split_sample(const char *s, char *base, size_t blen, char *labels, size_t llen) {
    const char *brace = strchr(s, '{');
    size_t n = brace != NULL ? (size_t)(brace - s) : strlen(s);
    if (n == 0 || n >= blen)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char(s[i], i == 0))
            return false;
    memcpy(base, s, n);
    base[n] = '\0';
    labels[0] = '\0';
    if (brace == NULL)
        return true;
    const char *p = brace + 1;
    size_t total = strlen(p);
    if (total == 0 || p[total - 1] != '}' || total >= llen)
        return false;
    const char *end = p + total - 1;
    while (p < end) {
        const char *k = p;
        if (!name_char(*p, true) || *p == ':')
            return false;
        while (p < end && name_char(*p, false) && *p != ':')
            p++;
        if ((size_t)(p - k) == 6 && strncmp(k, "worker", 6) == 0)
            return false;
        if (p + 1 >= end || p[0] != '=' || p[1] != '"')
            return false;
        p += 2;
        while (p < end && *p != '"') {
            if (*p == '\\') {
                if (p + 1 >= end || (p[1] != '\\' && p[1] != '"' && p[1] != 'n'))
                    return false;
                p++;
            } else if (*p == '\n') {
                return false;
            }
            p++;
        }
        if (p >= end)
            return false;
        p++; /* closing quote */
        if (p < end) {
            if (*p != ',')
                return false;
            p++;
        }
    }
    memcpy(labels, brace + 1, total - 1);
    labels[total - 1] = '\0';
    return true;
}

/* Groups every worker's own samples by family name so each family is
 * written once: {family: [[worker, labels, value], ...]}. */
static json_t *collect_worker_metrics(const json_t *workers) {
    json_t *fams = json_object();
    const json_t *w;
    size_t i;
    json_array_foreach(workers, i, w) {
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get((json_t *)w, "metrics"), key, v) {
            char base[HL_PROM_NAME_MAX], labels[HL_PROM_LABELS_MAX], fam[HL_PROM_NAME_MAX + 8];
            if (!json_is_number(v) || strncmp(key, "wrk_breaker_", 12) == 0 ||
                !split_sample(key, base, sizeof base, labels, sizeof labels))
                continue;
            snprintf(fam, sizeof fam, "%s%s", strncmp(base, "warden_", 7) == 0 ? "" : "warden_",
                     base);
            json_t *list = json_object_get(fams, fam);
            if (list == NULL) {
                list = json_array();
                json_object_set_new(fams, fam, list);
            }
            json_array_append_new(list, json_pack("[s,s,f]", str(w, "name"), labels,
                                                  json_number_value(v)));
        }
    }
    return fams;
}

/* Finds label `name` in a label list split_sample() accepted: its raw
 * (still escaped) value into val, the other labels into rest. */
static bool take_label(const char *labels, const char *name, char *rest, size_t rlen, char *val,
                       size_t vlen) {
    size_t nlen = strlen(name), r = 0;
    bool found = false;
    const char *p = labels;
    while (*p) {
        const char *k = p, *eq = strchr(p, '=');
        const char *v = eq + 2, *q = v;
        while (*q != '"')
            q += *q == '\\' ? 2 : 1;
        const char *next = q[1] == ',' ? q + 2 : q + 1;
        size_t vn = (size_t)(q - v), kn = (size_t)(q + 1 - k);
        if ((size_t)(eq - k) == nlen && strncmp(k, name, nlen) == 0) {
            /* Too long for val: "" (no bound of ours is that long). */
            vn = vn < vlen ? vn : 0;
            memcpy(val, v, vn);
            val[vn] = '\0';
            found = true;
        } else if (r + (r > 0) + kn < rlen) { /* rest is never longer than labels */
            if (r > 0)
                rest[r++] = ',';
            memcpy(rest + r, k, kn);
            r += kn;
        }
        p = next;
    }
    rest[r] = '\0';
    return found;
}

/* A bucket bound as the text format writes it: a float or +Inf. */
static bool parse_le(const char *s, double *le) {
    char *end;
    *le = strtod(s, &end);
    return end != s && *end == '\0' && !isnan(*le) && *le != -INFINITY;
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Does any sample of the family carry label `name`? */
static bool any_label(const json_t *list, const char *name) {
    char rest[HL_PROM_LABELS_MAX], val[64];
    size_t i;
    const json_t *s;
    json_array_foreach(list, i, s) {
        if (take_label(json_string_value(json_array_get(s, 1)), name, rest, sizeof rest, val,
                       sizeof val))
            return true;
    }
    return false;
}

/* Heartbeats carry no types: a histogram arrives as its samples,
 * NAME_count and NAME_sum per series (wd_metrics_snapshot), plus
 * NAME_bucket{le} if a snapshot ever carries buckets. Passed through as
 * gauges, promtool rejects those suffixes, and they are not gauges. So
 * when NAME_count and NAME_sum both exist (and no plain NAME, which the
 * family would clash with), they are one family NAME: a histogram if every
 * NAME_bucket has a numeric le, else a summary without quantiles, which is
 * what the text format calls a count and a sum with no distribution (a
 * histogram must have at least the le="+Inf" bucket, and inventing only
 * that one would offer histogram_quantile() a distribution we do not
 * have). Returns the type for family `fam` ("histogram"/"summary") and its
 * stem, or NULL when fam is a family of its own. */
static const char *composite_kind(const json_t *fams, const char *fam, char *stem, size_t slen) {
    static const char *const suffixes[] = {"_bucket", "_count", "_sum"};
    size_t n = strlen(fam);
    for (size_t i = 0; i < N_OF(suffixes); i++) {
        size_t k = strlen(suffixes[i]);
        if (!has_suffix(fam, suffixes[i]) || n - k >= slen)
            continue;
        memcpy(stem, fam, n - k);
        stem[n - k] = '\0';
        char name[HL_PROM_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s_count", stem);
        if (json_object_get(fams, name) == NULL)
            return NULL;
        snprintf(name, sizeof name, "%s_sum", stem);
        if (json_object_get(fams, name) == NULL || json_object_get(fams, stem) != NULL)
            return NULL;
        snprintf(name, sizeof name, "%s_bucket", stem);
        const json_t *buckets = json_object_get(fams, name);
        bool hist = buckets != NULL;
        size_t j;
        const json_t *s;
        json_array_foreach(buckets, j, s) {
            char rest[HL_PROM_LABELS_MAX], val[64];
            double le;
            if (!take_label(json_string_value(json_array_get(s, 1)), "le", rest, sizeof rest, val,
                            sizeof val) ||
                !parse_le(val, &le))
                hist = false;
        }
        if (i == 0 && !hist)
            return NULL; /* NAME_bucket is left on its own, untyped */
        return hist ? "histogram" : "summary";
    }
    return NULL;
}

typedef struct {
    double le, v;
    const char *text; /* the le value as the worker wrote it */
} hl_bucket;

static int bucket_cmp(const void *a, const void *b) {
    double x = ((const hl_bucket *)a)->le, y = ((const hl_bucket *)b)->le;
    return x < y ? -1 : x > y;
}

static void composite_sample(FILE *f, const char *stem, const char *suffix, const json_t *ser,
                             const char *le, double v) {
    const char *labels = str(ser, "labels");
    fprintf(f, "%s%s{worker=\"", stem, suffix);
    esc(f, str(ser, "worker"));
    fprintf(f, "\"%s%s", labels[0] ? "," : "", labels);
    if (le != NULL)
        fprintf(f, ",le=\"%s\"", le);
    fputs("}", f);
    value(f, v);
}

/* One series of a histogram: buckets in increasing le ending with +Inf
 * (the count, when the worker's snapshot lacks it), then sum and count. */
static void render_series(FILE *f, const char *stem, bool hist, const json_t *ser) {
    const json_t *count = json_object_get(ser, "count"), *sum = json_object_get(ser, "sum");
    const json_t *bl = json_object_get(ser, "buckets");
    size_t n = json_array_size(bl), i;
    hl_bucket *b = hist && n > 0 ? calloc(n, sizeof *b) : NULL;
    if (b != NULL) {
        const json_t *e;
        json_array_foreach(bl, i, e) {
            b[i] = (hl_bucket){.le = json_real_value(json_array_get(e, 0)),
                               .v = json_real_value(json_array_get(e, 2)),
                               .text = json_string_value(json_array_get(e, 1))};
        }
        qsort(b, n, sizeof *b, bucket_cmp);
        for (i = 0; i < n; i++) {
            if (i > 0 && b[i].le == b[i - 1].le)
                continue; /* one bucket per bound */
            composite_sample(f, stem, "_bucket", ser, isinf(b[i].le) ? "+Inf" : b[i].text,
                             b[i].v);
        }
    }
    if (hist && (b == NULL || !isinf(b[n - 1].le)) && count != NULL)
        composite_sample(f, stem, "_bucket", ser, "+Inf", json_real_value(count));
    free(b);
    if (sum != NULL)
        composite_sample(f, stem, "_sum", ser, NULL, json_real_value(sum));
    if (count != NULL)
        composite_sample(f, stem, "_count", ser, NULL, json_real_value(count));
}

/* Writes histogram/summary `stem` from its NAME_bucket/_count/_sum families,
 * grouped per series (worker and labels but le), and marks them done. */
static void render_composite(FILE *f, const json_t *fams, const char *stem, const char *kind,
                             json_t *done) {
    static const char *const parts[] = {"_bucket", "_count", "_sum"};
    bool hist = strcmp(kind, "histogram") == 0;
    json_t *series = json_object();
    for (size_t p = hist ? 0 : 1; p < N_OF(parts); p++) {
        char name[HL_PROM_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s%s", stem, parts[p]);
        json_object_set_new(done, name, json_true());
        size_t i;
        const json_t *s;
        json_array_foreach(json_object_get(fams, name), i, s) {
            const char *worker = json_string_value(json_array_get(s, 0));
            const char *labels = json_string_value(json_array_get(s, 1));
            char rest[HL_PROM_LABELS_MAX], le[64];
            double lev = 0;
            if (p == 0) {
                take_label(labels, "le", rest, sizeof rest, le, sizeof le);
                parse_le(le, &lev);
            } else {
                snprintf(rest, sizeof rest, "%s", labels);
            }
            json_t *key = json_pack("[s,s]", worker, rest);
            char *k = json_dumps(key, JSON_COMPACT);
            json_decref(key);
            if (k == NULL)
                continue;
            json_t *ser = json_object_get(series, k);
            if (ser == NULL) {
                ser = json_pack("{s:s,s:s,s:[]}", "worker", worker, "labels", rest, "buckets");
                json_object_set_new(series, k, ser);
            }
            free(k);
            json_t *v = json_array_get(s, 2);
            if (p == 0)
                json_array_append_new(json_object_get(ser, "buckets"),
                                      json_pack("[f,s,O]", lev, le, v));
            else
                json_object_set(ser, parts[p] + 1, v);
        }
    }
    char help[HL_PROM_NAME_MAX + 96];
    snprintf(help, sizeof help, "Worker histogram %s from heartbeats%s, labelled by worker.",
             stem + 7, hist ? "" : " (count and sum only)");
    family(f, stem, kind, help);
    const char *k;
    json_t *ser;
    json_object_foreach(series, k, ser)
        render_series(f, stem, hist, ser);
    json_decref(series);
}

/* A family of plain samples: counter when named _total, untyped when the
 * name or an le/quantile label says histogram or summary but the family is
 * none (promtool rejects those on a gauge), else gauge. */
static void render_plain(FILE *f, const char *fam, const json_t *list) {
    const char *type = "gauge";
    if (has_suffix(fam, "_total"))
        type = "counter";
    else if (has_suffix(fam, "_bucket") || has_suffix(fam, "_count") ||
             has_suffix(fam, "_sum") || any_label(list, "le") || any_label(list, "quantile"))
        type = "untyped";
    char help[HL_PROM_NAME_MAX + 64];
    snprintf(help, sizeof help, "Worker metric %s from heartbeats, labelled by worker.", fam + 7);
    family(f, fam, type, help);
    size_t i;
    const json_t *s;
    json_array_foreach(list, i, s) {
        const char *labels = json_string_value(json_array_get(s, 1));
        fprintf(f, "%s{worker=\"", fam);
        esc(f, json_string_value(json_array_get(s, 0)));
        fprintf(f, "\"%s%s}", labels[0] ? "," : "", labels);
        value(f, json_real_value(json_array_get(s, 2)));
    }
}

static void render_worker_metrics(FILE *f, const json_t *workers) {
    json_t *fams = collect_worker_metrics(workers), *done = json_object();
    const char *fam;
    json_t *list;
    json_object_foreach(fams, fam, list) {
        if (json_object_get(done, fam) != NULL)
            continue;
        char stem[HL_PROM_NAME_MAX + 8];
        const char *kind = composite_kind(fams, fam, stem, sizeof stem);
        if (kind != NULL)
            render_composite(f, fams, stem, kind, done);
        else
            render_plain(f, fam, list);
    }
    json_decref(done);
    json_decref(fams);
}

/* ---- breakers ---- */

static void brk_labels(FILE *f, const char *name, const char *worker, const char *brk) {
    fprintf(f, "%s{worker=\"", name);
    esc(f, worker);
    fputs("\",breaker=\"", f);
    esc(f, brk);
    fputs("\"", f);
}

static void render_breakers(FILE *f, const json_t *workers) {
    const json_t *w, *b;
    size_t i, j;
    family(f, "warden_breaker_state", "gauge",
           "Circuit breaker state, one series per state (1 for the current one). crash_loop is "
           "the supervisor's restart breaker of the worker.");
    json_array_foreach(workers, i, w) {
        const char *crash = str(json_object_get(w, "breaker"), "state");
        for (size_t s = 0; s < N_OF(breaker_states); s++) {
            brk_labels(f, "warden_breaker_state", str(w, "name"), "crash_loop");
            fprintf(f, ",state=\"%s\"}", breaker_states[s]);
            value(f, strcmp(crash, breaker_states[s]) == 0);
        }
        json_array_foreach(json_object_get(w, "breakers"), j, b) {
            for (size_t s = 0; s < N_OF(breaker_states); s++) {
                brk_labels(f, "warden_breaker_state", str(w, "name"), str(b, "name"));
                fprintf(f, ",state=\"%s\"}", breaker_states[s]);
                value(f, strcmp(str(b, "state"), breaker_states[s]) == 0);
            }
        }
    }
    family(f, "warden_breaker_transitions_total", "counter",
           "State transitions of the circuit breaker since its process started.");
    json_array_foreach(workers, i, w) {
        const json_t *t = json_object_get(json_object_get(w, "breaker"), "transitions");
        if (json_is_integer(t)) {
            brk_labels(f, "warden_breaker_transitions_total", str(w, "name"), "crash_loop");
            fputs("}", f);
            value(f, (double)json_integer_value(t));
        }
        json_array_foreach(json_object_get(w, "breakers"), j, b) {
            double v = hb_brk(w, "wrk_breaker_transitions_total", str(b, "name"), NULL);
            if (isnan(v))
                continue;
            brk_labels(f, "warden_breaker_transitions_total", str(w, "name"), str(b, "name"));
            fputs("}", f);
            value(f, v);
        }
    }
    family(f, "warden_breaker_calls_total", "counter",
           "Calls through a worker's circuit breaker by result (success, failure, rejected).");
    static const char *const results[] = {"success", "failure", "rejected"};
    json_array_foreach(workers, i, w) {
        json_array_foreach(json_object_get(w, "breakers"), j, b) {
            for (size_t r = 0; r < N_OF(results); r++) {
                char extra[32];
                snprintf(extra, sizeof extra, ",result=\"%s\"", results[r]);
                double v = hb_brk(w, "wrk_breaker_calls_total", str(b, "name"), extra);
                if (isnan(v))
                    continue;
                brk_labels(f, "warden_breaker_calls_total", str(w, "name"), str(b, "name"));
                fprintf(f, "%s}", extra);
                value(f, v);
            }
        }
    }
}

/* ---- workers ---- */

static void render_workers(FILE *f, const json_t *workers) {
    const json_t *w;
    size_t i;
    family(f, "warden_worker_state", "gauge",
           "Observed state of each worker, one series per state (1 for the current one).");
    json_array_foreach(workers, i, w) {
        for (size_t s = 0; s < N_OF(worker_states); s++) {
            fputs("warden_worker_state{worker=\"", f);
            esc(f, str(w, "name"));
            fprintf(f, "\",state=\"%s\"}", worker_states[s]);
            value(f, strcmp(str(w, "state"), worker_states[s]) == 0);
        }
    }
    family(f, "warden_worker_up", "gauge", "1 when the worker is RUNNING and READY.");
    json_array_foreach(workers, i, w)
        sample_w(f, "warden_worker_up", str(w, "name"),
                 strcmp(str(w, "state"), "RUNNING") == 0 &&
                     json_is_true(json_object_get(w, "ready")));
    family(f, "warden_worker_restarts_total", "counter", "Restarts of the worker by warden.");
    json_array_foreach(workers, i, w)
        sample_w(f, "warden_worker_restarts_total", str(w, "name"),
                 (double)json_integer_value(json_object_get(w, "restarts")));
    family(f, "warden_worker_heartbeat_age_seconds", "gauge",
           "Seconds since the worker's last heartbeat (workers with a process only).");
    json_array_foreach(workers, i, w) {
        const json_t *age = json_object_get(w, "heartbeat_age_s");
        if (json_is_number(age))
            sample_w(f, "warden_worker_heartbeat_age_seconds", str(w, "name"),
                     json_number_value(age));
    }
    family(f, "warden_worker_resident_memory_bytes", "gauge",
           "Resident memory of the worker's process, from /proc.");
    json_array_foreach(workers, i, w) {
        const json_t *v = json_object_get(w, "rss_bytes");
        if (has_pid(w) && json_is_number(v))
            sample_w(f, "warden_worker_resident_memory_bytes", str(w, "name"),
                     json_number_value(v));
    }
    family(f, "warden_worker_cpu_seconds_total", "counter",
           "User and system CPU time of the worker's process, from /proc.");
    json_array_foreach(workers, i, w) {
        const json_t *v = json_object_get(w, "cpu_seconds");
        if (has_pid(w) && json_is_number(v))
            sample_w(f, "warden_worker_cpu_seconds_total", str(w, "name"), json_number_value(v));
    }
}

/* The two families that change between snapshots (whether the supervisor
 * answers, and how old the served snapshot is) are appended per request by
 * hl_prom_live(), so a stopped supervisor shows in /metrics at once. */
char *hl_prom_live(bool supervisor_up, double snapshot_age_s, size_t *len) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (f == NULL)
        return NULL;
    family(f, "warden_supervisor_up", "gauge",
           "1 when the supervisor answered its control socket within probe_deadline.");
    fprintf(f, "warden_supervisor_up %d\n", supervisor_up ? 1 : 0);
    family(f, "warden_health_snapshot_age_seconds", "gauge",
           "Age of the supervisor status the health worker serves.");
    fputs("warden_health_snapshot_age_seconds", f);
    value(f, snapshot_age_s);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    *len = size;
    return text;
}

char *hl_prom_render(const json_t *status, const hl_self_stats *self, size_t *len) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (f == NULL)
        return NULL;
    const json_t *sup = json_object_get(status, "supervisor");
    const json_t *workers = json_object_get(status, "workers");
    family(f, "warden_build_info", "gauge", "Always 1; the version of warden is a label.");
    fputs("warden_build_info{version=\"", f);
    esc(f, sup != NULL && str(sup, "version")[0] ? str(sup, "version") : WARDEN_VERSION);
    fputs("\"} 1\n", f);
    if (sup != NULL) {
        family(f, "warden_supervisor_uptime_seconds", "gauge", "Seconds since warden started.");
        fputs("warden_supervisor_uptime_seconds", f);
        value(f, json_number_value(json_object_get(sup, "uptime_s")));
        const json_t *reqs = json_object_get(sup, "ctl_requests");
        if (json_is_integer(reqs)) {
            family(f, "warden_supervisor_control_requests_total", "counter",
                   "Requests served on the supervisor's control socket.");
            fputs("warden_supervisor_control_requests_total", f);
            value(f, (double)json_integer_value(reqs));
        }
    }
    if (workers != NULL) {
        render_workers(f, workers);
        render_breakers(f, workers);
    }
    if (self != NULL) {
        family(f, "warden_health_snapshots_total", "counter",
               "Status snapshots the health worker received from the supervisor.");
        fprintf(f, "warden_health_snapshots_total %llu\n",
                (unsigned long long)self->snapshots_total);
        family(f, "warden_health_snapshot_errors_total", "counter",
               "Status requests to the supervisor that failed or timed out.");
        fprintf(f, "warden_health_snapshot_errors_total %llu\n",
                (unsigned long long)self->snapshot_errors_total);
        family(f, "warden_health_http_requests_total", "counter",
               "HTTP requests the health worker answered.");
        fprintf(f, "warden_health_http_requests_total %llu\n",
                (unsigned long long)self->http_requests_total);
    }
    if (workers != NULL)
        render_worker_metrics(f, workers);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    if (len != NULL)
        *len = size;
    return text;
}
