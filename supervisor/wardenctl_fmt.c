/* wardenctl's human output: cells of the status table (numbers, durations,
 * heartbeat ages), the supervisor line and details under it, lists, and the
 * lines of `logs` and `events`. A value missing from a reply prints as "-"
 * rather than failing the command: an operator still sees the rest. */
#include "wardenctl.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WCTL_CELL_MAX 96

/* ---- output helpers ---- */

int wctl_print_json(json_t *v, size_t flags) {
    if (json_dumpf(v, stdout, flags) != 0)
        return WCTL_FAIL;
    fputc('\n', stdout);
    return WCTL_OK;
}

/* A string field, or "-" when absent, null or empty. */
const char *wctl_sval(const json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL && s[0] != '\0' ? s : "-";
}

void wctl_fmt_int(const json_t *v, char *buf, size_t len) {
    if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, len, "-");
}

/* 45s, 12m3s, 3h12m, 2d4h: two units are what an operator reads at a glance. */
void wctl_fmt_dur(const json_t *v, char *buf, size_t len) {
    double s = json_number_value(v);
    if (!json_is_number(v) || !(s >= 0.0) || s > 1e12) {
        snprintf(buf, len, "-");
        return;
    }
    unsigned long long t = (unsigned long long)s;
    if (t < 60)
        snprintf(buf, len, "%llus", t);
    else if (t < 3600)
        snprintf(buf, len, "%llum%llus", t / 60, t % 60);
    else if (t < 86400)
        snprintf(buf, len, "%lluh%llum", t / 3600, (t % 3600) / 60);
    else
        snprintf(buf, len, "%llud%lluh", t / 86400, (t % 86400) / 3600);
}

/* Heartbeat ages are usually below a second or two, where tenths matter. */
static void fmt_age(const json_t *v, char *buf, size_t len) {
    double s = json_number_value(v);
    if (json_is_number(v) && s >= 0.0 && s < 10.0)
        snprintf(buf, len, "%.1fs", s);
    else
        wctl_fmt_dur(v, buf, len);
}

void wctl_print_list(const char *label, const json_t *arr) {
    size_t i;
    json_t *v;
    printf("%s: ", label);
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        printf("%s%s", i > 0 ? ", " : "", s != NULL ? s : "?");
    }
    fputc('\n', stdout);
}

/* ---- status ---- */

enum { COL_NAME, COL_STATE, COL_PID, COL_UPTIME, COL_RESTARTS, COL_EXIT, COL_BREAKER,
       COL_HBAGE, COL_READY, COL_REASON, NCOLS };
static const char *const col_titles[NCOLS] = {"NAME", "STATE", "PID", "UPTIME", "RESTARTS",
                                              "LAST-EXIT", "BREAKER", "HB-AGE", "READY",
                                              "REASON"};
typedef char wctl_row[NCOLS][WCTL_CELL_MAX];

static void status_row(const json_t *w, wctl_row row) {
    const json_t *brk = json_object_get(w, "breaker");
    const json_t *ready = json_object_get(w, "ready");
    char retry[WCTL_SMALL_MAX];
    snprintf(row[COL_NAME], WCTL_CELL_MAX, "%s", wctl_sval(w, "name"));
    snprintf(row[COL_STATE], WCTL_CELL_MAX, "%s", wctl_sval(w, "state"));
    wctl_fmt_int(json_object_get(w, "pid"), row[COL_PID], WCTL_CELL_MAX);
    wctl_fmt_dur(json_object_get(w, "uptime_s"), row[COL_UPTIME], WCTL_CELL_MAX);
    wctl_fmt_int(json_object_get(w, "restarts"), row[COL_RESTARTS], WCTL_CELL_MAX);
    snprintf(row[COL_EXIT], WCTL_CELL_MAX, "%s", wctl_sval(w, "last_exit"));
    wctl_fmt_dur(json_object_get(brk, "retry_in_s"), retry, sizeof retry);
    if (strcmp(retry, "-") != 0)
        snprintf(row[COL_BREAKER], WCTL_CELL_MAX, "%s(%s)", wctl_sval(brk, "state"), retry);
    else
        snprintf(row[COL_BREAKER], WCTL_CELL_MAX, "%s", wctl_sval(brk, "state"));
    fmt_age(json_object_get(w, "heartbeat_age_s"), row[COL_HBAGE], WCTL_CELL_MAX);
    snprintf(row[COL_READY], WCTL_CELL_MAX, "%s",
             json_is_boolean(ready) ? (json_is_true(ready) ? "yes" : "no") : "-");
    snprintf(row[COL_REASON], WCTL_CELL_MAX, "%s", wctl_sval(w, "reason"));
}

void wctl_status_supervisor(const json_t *sup) {
    char up[WCTL_SMALL_MAX], pid[WCTL_SMALL_MAX];
    wctl_fmt_dur(json_object_get(sup, "uptime_s"), up, sizeof up);
    wctl_fmt_int(json_object_get(sup, "pid"), pid, sizeof pid);
    printf("warden %s  pid %s  up %s  config %s%s\n", wctl_sval(sup, "version"), pid, up,
           wctl_sval(sup, "config"),
           json_is_true(json_object_get(sup, "draining")) ? "  DRAINING" : "");
    static const char *const counters[] = {"hb_rejected", "ctl_errors", "log_lines_dropped"};
    bool any = false;
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        json_int_t n = json_integer_value(json_object_get(sup, counters[i]));
        if (n != 0)
            printf("%s%s %lld", any ? "  " : "", counters[i], (long long)n), any = true;
    }
    if (any)
        fputc('\n', stdout);
    fputc('\n', stdout);
}

int wctl_status_table(const json_t *workers) {
    size_t n = json_array_size(workers), width[NCOLS], i;
    wctl_row *rows = calloc(n, sizeof *rows);
    if (rows == NULL) {
        fprintf(stderr, "wardenctl: status: out of memory\n");
        return WCTL_FAIL;
    }
    for (size_t col = 0; col < NCOLS; col++)
        width[col] = strlen(col_titles[col]);
    for (i = 0; i < n; i++) {
        status_row(json_array_get(workers, i), rows[i]);
        for (size_t col = 0; col < NCOLS; col++)
            if (strlen(rows[i][col]) > width[col])
                width[col] = strlen(rows[i][col]);
    }
    /* The reason is free text: last and unpadded, so long ones do not widen the table. */
    for (size_t col = 0; col + 1 < NCOLS; col++)
        printf("%-*s  ", (int)width[col], col_titles[col]);
    printf("%s\n", col_titles[COL_REASON]);
    for (i = 0; i < n; i++) {
        for (size_t col = 0; col + 1 < NCOLS; col++)
            printf("%-*s  ", (int)width[col], rows[i][col]);
        printf("%s\n", rows[i][COL_REASON]);
    }
    free(rows);
    return WCTL_OK;
}

/* The lines under the table for `status NAME`: what does not fit a column. */
void wctl_status_detail(const json_t *w) {
    const json_t *brk = json_object_get(w, "breaker");
    const json_t *arr = json_object_get(w, "breakers"), *m = json_object_get(w, "metrics"), *v;
    char a[WCTL_SMALL_MAX], b[WCTL_SMALL_MAX], d[WCTL_SMALL_MAX];
    const char *key;
    size_t i;
    printf("\nkind %s  desired %s  required %s\n", wctl_sval(w, "kind"), wctl_sval(w, "desired"),
           json_is_true(json_object_get(w, "required")) ? "yes" : "no");
    printf("last exit %s at %s\n", wctl_sval(w, "last_exit"), wctl_sval(w, "last_exit_at"));
    wctl_fmt_int(json_object_get(w, "progress"), a, sizeof a);
    wctl_fmt_int(json_object_get(w, "loop_lag_us"), b, sizeof b);
    wctl_fmt_int(json_object_get(w, "hb_rejected"), d, sizeof d);
    printf("progress %s  loop lag %s us  heartbeats rejected %s\n", a, b, d);
    wctl_fmt_int(json_object_get(brk, "failures"), a, sizeof a);
    wctl_fmt_int(json_object_get(brk, "opens"), b, sizeof b);
    printf("crash-loop breaker %s  failures %s  opens %s\n", wctl_sval(brk, "state"), a, b);
    if (json_array_size(arr) > 0) {
        printf("breakers");
        json_array_foreach(arr, i, v) printf(" %s=%s", wctl_sval(v, "name"), wctl_sval(v, "state"));
        fputc('\n', stdout);
    }
    if (json_object_size(m) > 0) {
        printf("metrics");
        json_object_foreach((json_t *)m, key, v) printf(" %s=%.15g", key, json_number_value(v));
        fputc('\n', stdout);
    }
}

/* ---- logs / events ---- */

void wctl_print_item(const wctl *c, const json_t *it) {
    char pid[WCTL_SMALL_MAX];
    if (c->json && c->follow) {
        wctl_print_json((json_t *)it, WCTL_JSONL_FLAGS);
        return;
    }
    if (strcmp(c->cmd->name, "events") == 0) {
        /* FROM -> TO only for transitions (state, breaker); an audit event
         * carries its action in "from", an exit nothing but its reason. */
        const char *from = json_string_value(json_object_get(it, "from"));
        const char *to = json_string_value(json_object_get(it, "to"));
        const char *reason = json_string_value(json_object_get(it, "reason"));
        printf("%s %s %s", wctl_sval(it, "ts"), wctl_sval(it, "kind"), wctl_sval(it, "worker"));
        if (from != NULL && *from != '\0' && to != NULL && *to != '\0')
            printf(" %s -> %s", from, to);
        else if (from != NULL && *from != '\0')
            printf(" %s", from);
        if (reason != NULL && *reason != '\0')
            printf(" %s", reason);
        printf("\n");
        return;
    }
    const json_t *line = json_object_get(it, "line");
    wctl_fmt_int(json_object_get(it, "pid"), pid, sizeof pid);
    printf("%s %s %s ", wctl_sval(it, "ts"), wctl_sval(it, "stream"), pid);
    fwrite(json_string_value(line) ? json_string_value(line) : "", 1, json_string_length(line),
           stdout);
    fputc('\n', stdout);
}
