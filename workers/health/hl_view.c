/* Views: everything the HTTP side serves, built once per supervisor status
 * on the loop thread and never changed afterwards, so any number of HTTP
 * threads can read one while the loop builds the next. */
#include "hl.h"
#include "clock.h"
#include "wd_error.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HL_STAT_MAX 1024 /* /proc/PID/stat is a few hundred bytes */
#define HL_STAT_UTIME_FIELD 14
#define HL_STAT_STIME_FIELD 15
#define HL_STAT_RSS_FIELD 24
#define HL_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(12))

int hl_proc_stat(int pid, double *rss_bytes, double *cpu_s) {
    char path[64], buf[HL_STAT_MAX];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return WD_ENOTFOUND;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return WD_EIO;
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: fields
     * are counted after its last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return WD_EPROTO;
    p++;
    unsigned long long utime = 0, stime = 0;
    long long rss = 0;
    for (int field = 3; field <= HL_STAT_RSS_FIELD; field++) {
        while (*p == ' ')
            p++;
        char *end;
        errno = 0;
        if (field == HL_STAT_UTIME_FIELD)
            utime = strtoull(p, &end, 10);
        else if (field == HL_STAT_STIME_FIELD)
            stime = strtoull(p, &end, 10);
        else if (field == HL_STAT_RSS_FIELD)
            rss = strtoll(p, &end, 10);
        else
            end = strchr(p, ' ');
        if (end == NULL || end == p || errno != 0)
            return WD_EPROTO;
        p = end;
    }
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    *cpu_s = (double)(utime + stime) / (double)(tck > 0 ? tck : 100);
    *rss_bytes = (double)rss * (double)(page > 0 ? page : 4096);
    return 0;
}

void hl_view_ref(hl_view *v) { atomic_fetch_add(&v->refs, 1); }

void hl_view_unref(hl_view *v) {
    if (v == NULL || atomic_fetch_sub(&v->refs, 1) != 1)
        return;
    free(v->metrics);
    free(v->healthz);
    free(v->workers);
    free(v->breakers);
    free(v->history);
    free(v);
}

static const char *str(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static double num(const json_t *o, const char *k, double def) {
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : def;
}

static json_t *brk_metric(const json_t *w, const char *metric, const char *brk, const char *extra) {
    char key[PROTO_METRIC_NAME_MAX + 1];
    int n = snprintf(key, sizeof key, "%s{breaker=\"%s\"%s}", metric, brk, extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof key)
        return json_null();
    json_t *v = json_object_get(json_object_get(w, "metrics"), key);
    if (!json_is_number(v))
        return json_null();
    /* Heartbeat samples are doubles; counts read better as integers. */
    double d = json_number_value(v);
    if (d >= 0 && d < 9e15 && d == (double)(json_int_t)d)
        return json_integer((json_int_t)d);
    return json_incref(v);
}

/* Every breaker of the supervisor (crash_loop per worker) and of the
 * workers (from heartbeats), with stats and time until half-open. */
static json_t *breakers_json(const json_t *workers) {
    json_t *arr = json_array();
    const json_t *w, *b;
    size_t i, j;
    json_array_foreach(workers, i, w) {
        const json_t *crash = json_object_get(w, "breaker");
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:s,s:s,s:b,s:O,s:O,s:O,s:O,s:O}", "worker", str(w, "name"),
                           "breaker", "crash_loop", "owner", "supervisor", "state",
                           str(crash, "state"), "critical", 0, "failures",
                           json_object_get(crash, "failures"), "opens_total",
                           json_object_get(crash, "opens"), "transitions_total",
                           json_object_get(crash, "transitions"), "retry_in_s",
                           json_object_get(crash, "retry_in_s"), "since_s",
                           json_object_get(crash, "since_s")));
        json_array_foreach(json_object_get(w, "breakers"), j, b) {
            const char *n = str(b, "name");
            json_t *crit = brk_metric(w, "wrk_breaker_critical", n, NULL);
            json_t *retry = brk_metric(w, "wrk_breaker_retry_in_seconds", n, NULL);
            json_t *e = json_pack(
                "{s:s,s:s,s:s,s:s,s:b,s:o,s:o,s:{s:o,s:o,s:o},s:o}", "worker", str(w, "name"),
                "breaker", n, "owner", "worker", "state", str(b, "state"), "critical",
                json_is_number(crit) && json_number_value(crit) == 1, "opens_total",
                brk_metric(w, "wrk_breaker_opens_total", n, NULL), "transitions_total",
                brk_metric(w, "wrk_breaker_transitions_total", n, NULL), "calls", "success",
                brk_metric(w, "wrk_breaker_calls_total", n, ",result=\"success\""), "failure",
                brk_metric(w, "wrk_breaker_calls_total", n, ",result=\"failure\""), "rejected",
                brk_metric(w, "wrk_breaker_calls_total", n, ",result=\"rejected\""), "retry_in_s",
                json_is_number(retry) && json_number_value(retry) > 0 ? json_incref(retry)
                                                                      : json_null());
            json_decref(crit);
            json_decref(retry);
            json_array_append_new(arr, e);
        }
    }
    return arr;
}

static void history_add(json_t *arr, const char *worker, const char *brk, const char *owner,
                        const json_t *t, uint64_t now_real_ns) {
    char ts[WD_TIME_STR_MAX];
    double ago = json_is_number(json_object_get(t, "ago_ms")) ? num(t, "ago_ms", 0) / 1000.0
                                                              : num(t, "ago_s", 0);
    const json_t *at_ns = json_object_get(t, "at_real_ns");
    uint64_t at = now_real_ns - (uint64_t)(ago * 1e9);
    if (json_is_integer(at_ns)) {
        /* Stamped when the worker's reply arrived (hl_snapshot.c): the age
         * is recomputed from it, since the reply may be older than now. */
        at = (uint64_t)json_integer_value(at_ns);
        ago = now_real_ns > at ? (double)(now_real_ns - at) / 1e9 : 0;
    }
    wd_clock_format(at, ts, sizeof ts);
    json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:f,s:s,s:s,s:s,s:b}", "ts", ts,
                                         "worker", worker, "breaker", brk, "owner", owner,
                                         "ago_s", ago, "from", str(t, "from"), "to",
                                         str(t, "to"), "reason", str(t, "reason"), "reset",
                                         strstr(str(t, "reason"), "reset by operator") != NULL));
}

static int by_age(const void *a, const void *b) {
    double x = num(*(json_t *const *)a, "ago_s", 0), y = num(*(json_t *const *)b, "ago_s", 0);
    return x < y ? -1 : x > y;
}

/* Transitions and resets of every breaker, newest first. */
static json_t *history_json(const json_t *workers, const json_t *details) {
    json_t *arr = json_array();
    uint64_t now = wd_clock_real_ns();
    const json_t *w, *b, *t;
    size_t i, j, k;
    json_array_foreach(workers, i, w) {
        json_array_foreach(json_object_get(json_object_get(w, "breaker"), "history"), k, t)
            history_add(arr, str(w, "name"), "crash_loop", "supervisor", t, now);
    }
    const char *wname;
    json_t *list;
    json_object_foreach((json_t *)details, wname, list) {
        json_array_foreach(list, j, b) {
            json_array_foreach(json_object_get(b, "history"), k, t)
                history_add(arr, wname, str(b, "name"), "worker", t, now);
        }
    }
    /* Sort by age through a plain array of borrowed pointers. */
    size_t n = json_array_size(arr);
    json_t **v = n ? malloc(n * sizeof *v) : NULL;
    json_t *sorted = json_array();
    if (v != NULL) {
        for (i = 0; i < n; i++)
            v[i] = json_array_get(arr, i);
        qsort(v, n, sizeof *v, by_age);
        for (i = 0; i < n; i++)
            json_array_append(sorted, v[i]);
        free(v);
    }
    json_decref(arr);
    return json_pack("{s:o,s:b}", "history", sorted, "complete", details != NULL);
}

static json_t *events_json(const hl_event *ev, int n) {
    json_t *arr = json_array();
    for (int i = n - 1; i >= 0; i--) /* newest first */
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "ts", ev[i].ts, "kind",
                                             ev[i].kind, "worker", ev[i].worker, "from",
                                             ev[i].from, "to", ev[i].to, "reason", ev[i].reason));
    return arr;
}

/* The seed's health fields, kept for its dashboards: derived from the
 * snapshot (position figures come from position_monitor's metrics when it
 * runs, else null). */
static json_t *seed_json(const json_t *sup, const json_t *workers, const json_t *breakers,
                         const hl_event *ev, int n_ev, const hl_self_stats *self) {
    const char *worst = "closed";
    json_t *last_cycle = json_null(), *positions = json_null(), *errors = json_array();
    const json_t *b, *w;
    size_t i;
    json_array_foreach(breakers, i, b) {
        const char *s = str(b, "state");
        if (strcmp(s, "open") == 0 || strcmp(s, "forced_open") == 0)
            worst = "open";
        else if (strcmp(s, "half_open") == 0 && strcmp(worst, "closed") == 0)
            worst = "half_open";
    }
    json_array_foreach(workers, i, w) {
        const json_t *m = json_object_get(w, "metrics");
        const json_t *v = json_object_get(m, "pm_cycle_seconds_sum");
        if (json_is_number(v)) {
            json_decref(last_cycle);
            last_cycle = json_incref((json_t *)v);
        }
        v = json_object_get(m, "pm_positions_open");
        if (json_is_number(v)) {
            json_decref(positions);
            positions = json_incref((json_t *)v);
        }
    }
    for (int k = n_ev - 1; k >= 0 && json_array_size(errors) < 10; k--)
        if (strcmp(ev[k].kind, "exit") == 0 ||
            (strcmp(ev[k].kind, "breaker") == 0 && strcmp(ev[k].to, "open") == 0))
            json_array_append_new(errors, json_pack("{s:s,s:s,s:s}", "ts", ev[k].ts, "worker",
                                                    ev[k].worker, "error", ev[k].reason));
    return json_pack("{s:b,s:b,s:o,s:o,s:s,s:o,s:f}", "running", self && self->supervisor_up,
                     "thread_alive", 1, "last_cycle_time", last_cycle, "active_positions",
                     positions, "circuit_breaker_state", worst, "recent_errors", errors,
                     "uptime_seconds", num(sup, "uptime_s", 0));
}

static char *dump(json_t *j, size_t *len) {
    char *s = j != NULL ? json_dumps(j, HL_JSON_FLAGS) : NULL;
    *len = s != NULL ? strlen(s) : 0;
    return s;
}

hl_view *hl_view_build(json_t *status, const json_t *details, const hl_event *events, int n_events,
                       const hl_self_stats *self, uint64_t heartbeat_max_age_ms) {
    hl_view *v = calloc(1, sizeof *v);
    if (v == NULL)
        return NULL;
    atomic_init(&v->refs, 1);
    json_t *workers = json_object_get(status, "workers");
    const json_t *sup = json_object_get(status, "supervisor");
    json_t *w;
    size_t i;
    json_array_foreach(workers, i, w) {
        double rss, cpu;
        const json_t *pid = json_object_get(w, "pid");
        if (json_is_integer(pid) && hl_proc_stat((int)json_integer_value(pid), &rss, &cpu) == 0) {
            json_object_set_new(w, "rss_bytes", json_real(rss));
            json_object_set_new(w, "cpu_seconds", json_real(cpu));
        }
    }
    v->n_checks = hl_checks_eval(status, heartbeat_max_age_ms, v->checks, HL_CHECKS_MAX);
    v->metrics = hl_prom_render(status, self, &v->metrics_len);
    json_t *brks = breakers_json(workers);
    json_t *wj = json_pack("{s:O}", "workers", workers);
    json_t *bj = json_pack("{s:O}", "breakers", brks);
    json_t *hj = history_json(workers, details);
    json_t *checks = json_array();
    for (int k = 0; k < v->n_checks; k++)
        json_array_append_new(checks, json_pack("{s:s,s:b,s:s}", "name", v->checks[k].name, "ok",
                                                v->checks[k].ok, "reason", v->checks[k].reason));
    json_t *hz = json_pack("{s:O,s:O,s:O,s:o,s:o,s:o}", "supervisor", sup, "workers", workers,
                           "breakers", brks, "readiness", checks, "events",
                           events_json(events, n_events), "seed",
                           seed_json(sup, workers, brks, events, n_events, self));
    v->workers = dump(wj, &v->workers_len);
    v->breakers = dump(bj, &v->breakers_len);
    v->history = dump(hj, &v->history_len);
    v->healthz = dump(hz, &v->healthz_len);
    json_decref(wj);
    json_decref(bj);
    json_decref(hj);
    json_decref(hz);
    json_decref(brks);
    if (v->metrics == NULL || v->workers == NULL || v->breakers == NULL || v->history == NULL ||
        v->healthz == NULL) {
        hl_view_unref(v);
        return NULL;
    }
    return v;
}
