/* wardenctl diagnose: the text report, rendered from the JSON report that
 * wardenctl_diagnose.c built (so --json and the text never disagree).
 * Sections: a verdict line, workers, breakers, connectivity, recent
 * restarts, then the findings and numbered recommendations, worst first. */
#include "wardenctl.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DR_COLS_MAX 10
#define DR_CELL_MAX 96

typedef struct {
    int ncols;
    const char *titles[DR_COLS_MAX];
    size_t nrows;
    char (*cells)[DR_COLS_MAX][DR_CELL_MAX];
} dr_table;

static int table_init(dr_table *t, size_t nrows, int ncols, const char *const *titles) {
    t->ncols = ncols, t->nrows = nrows;
    for (int i = 0; i < ncols; i++)
        t->titles[i] = titles[i];
    t->cells = calloc(nrows ? nrows : 1, sizeof *t->cells);
    return t->cells != NULL ? 0 : -1;
}

/* Columns padded to their widest cell; the last one, free text, is not. */
static void table_print(dr_table *t) {
    size_t width[DR_COLS_MAX];
    for (int c = 0; c < t->ncols; c++) {
        width[c] = strlen(t->titles[c]);
        for (size_t r = 0; r < t->nrows; r++)
            if (strlen(t->cells[r][c]) > width[c])
                width[c] = strlen(t->cells[r][c]);
    }
    for (int c = 0; c + 1 < t->ncols; c++)
        printf("  %-*s", (int)width[c], t->titles[c]);
    printf("  %s\n", t->titles[t->ncols - 1]);
    for (size_t r = 0; r < t->nrows; r++) {
        for (int c = 0; c + 1 < t->ncols; c++)
            printf("  %-*s", (int)width[c], t->cells[r][c]);
        printf("  %s\n", t->cells[r][t->ncols - 1]);
    }
    free(t->cells);
}

static void cell(char *dst, const char *s) { snprintf(dst, DR_CELL_MAX, "%s", s); }

static void cell_bool(char *dst, const json_t *v) {
    cell(dst, json_is_boolean(v) ? (json_is_true(v) ? "yes" : "no") : "-");
}

static void cell_age(char *dst, const json_t *v) {
    double s = json_number_value(v);
    if (json_is_number(v) && s >= 0.0 && s < 10.0)
        snprintf(dst, DR_CELL_MAX, "%.1fs", s);
    else
        wctl_fmt_dur(v, dst, DR_CELL_MAX);
}

static int print_workers(const json_t *ws) {
    static const char *const t[] = {"NAME", "STATE", "REQUIRED", "READY", "PID", "UPTIME",
                                    "RESTARTS", "HB-AGE", "LAST-EXIT", "HEALTH"};
    dr_table tab;
    size_t i;
    json_t *w;
    if (table_init(&tab, json_array_size(ws), 10, t) != 0)
        return WCTL_FAIL;
    json_array_foreach(ws, i, w) {
        char(*row)[DR_CELL_MAX] = tab.cells[i];
        cell(row[0], wctl_sval(w, "name"));
        cell(row[1], wctl_sval(w, "state"));
        cell_bool(row[2], json_object_get(w, "required"));
        cell_bool(row[3], json_object_get(w, "ready"));
        wctl_fmt_int(json_object_get(w, "pid"), row[4], DR_CELL_MAX);
        wctl_fmt_dur(json_object_get(w, "uptime_s"), row[5], DR_CELL_MAX);
        wctl_fmt_int(json_object_get(w, "restarts"), row[6], DR_CELL_MAX);
        cell_age(row[7], json_object_get(w, "heartbeat_age_s"));
        cell(row[8], wctl_sval(w, "last_exit"));
        cell(row[9], wctl_sval(w, "health"));
    }
    printf("\nworkers\n");
    table_print(&tab);
    return WCTL_OK;
}

static int print_breakers(const json_t *bs) {
    static const char *const t[] = {"WORKER", "BREAKER", "OWNER", "STATE", "CRITICAL",
                                    "FOR", "NEXT-TRY", "OPENS", "LAST-OPEN-REASON"};
    dr_table tab;
    size_t i;
    json_t *b;
    if (table_init(&tab, json_array_size(bs), 9, t) != 0)
        return WCTL_FAIL;
    json_array_foreach(bs, i, b) {
        char(*row)[DR_CELL_MAX] = tab.cells[i];
        cell(row[0], wctl_sval(b, "worker"));
        cell(row[1], wctl_sval(b, "breaker"));
        cell(row[2], wctl_sval(b, "owner"));
        cell(row[3], wctl_sval(b, "state"));
        cell_bool(row[4], json_object_get(b, "critical"));
        wctl_fmt_dur(json_object_get(b, "opened_ago_s"), row[5], DR_CELL_MAX);
        wctl_fmt_dur(json_object_get(b, "retry_in_s"), row[6], DR_CELL_MAX);
        wctl_fmt_int(json_object_get(b, "opens"), row[7], DR_CELL_MAX);
        cell(row[8], wctl_sval(b, "last_reason"));
    }
    printf("\nbreakers\n");
    table_print(&tab);
    return WCTL_OK;
}

static int print_conn(const json_t *cs) {
    static const char *const t[] = {"WORKER", "DEPENDENCY", "CLIENT", "STATE", "OK",
                                    "TARGET", "SOURCE"};
    dr_table tab;
    size_t i;
    json_t *x;
    if (json_array_size(cs) == 0) {
        printf("\nconnectivity\n  no breakers or connection gauges reported by the workers\n");
        return WCTL_OK;
    }
    if (table_init(&tab, json_array_size(cs), 7, t) != 0)
        return WCTL_FAIL;
    json_array_foreach(cs, i, x) {
        char(*row)[DR_CELL_MAX] = tab.cells[i];
        cell(row[0], wctl_sval(x, "worker"));
        cell(row[1], wctl_sval(x, "dependency"));
        cell(row[2], wctl_sval(x, "client"));
        cell(row[3], wctl_sval(x, "state"));
        cell_bool(row[4], json_object_get(x, "ok"));
        cell(row[5], wctl_sval(x, "target"));
        cell(row[6], wctl_sval(x, "source"));
    }
    printf("\nconnectivity\n");
    table_print(&tab);
    return WCTL_OK;
}

static void print_restarts(const json_t *rs) {
    size_t i;
    json_t *e;
    char ago[WCTL_SMALL_MAX];
    printf("\nrecent restarts\n");
    if (json_array_size(rs) == 0)
        printf("  none in warden's event log\n");
    json_array_foreach(rs, i, e) {
        wctl_fmt_dur(json_object_get(e, "ago_s"), ago, sizeof ago);
        printf("  %s (%s ago)  %s  %s\n", wctl_sval(e, "ts"), ago, wctl_sval(e, "worker"),
               wctl_sval(e, "what"));
    }
}

int wctl_diag_print(const json_t *rep) {
    const json_t *sup = json_object_get(rep, "supervisor");
    const char *verdict = wctl_sval(rep, "verdict");
    char up[WCTL_SMALL_MAX], pid[WCTL_SMALL_MAX], upper[16];
    size_t i, n = 0;
    json_t *f;
    for (i = 0; verdict[i] && i + 1 < sizeof upper; i++)
        upper[i] = (char)(verdict[i] >= 'a' && verdict[i] <= 'z' ? verdict[i] - 32 : verdict[i]);
    upper[i] = '\0';
    if (json_is_true(json_object_get(sup, "reachable"))) {
        wctl_fmt_dur(json_object_get(sup, "uptime_s"), up, sizeof up);
        wctl_fmt_int(json_object_get(sup, "pid"), pid, sizeof pid);
        printf("warden diagnose: %s  (warden %s, pid %s, up %s, at %s)\n", upper,
               wctl_sval(sup, "version"), pid, up, wctl_sval(rep, "generated_at"));
        if (print_workers(json_object_get(rep, "workers")) != WCTL_OK ||
            print_breakers(json_object_get(rep, "breakers")) != WCTL_OK ||
            print_conn(json_object_get(rep, "connectivity")) != WCTL_OK) {
            fprintf(stderr, "wardenctl: diagnose: out of memory\n");
            return WCTL_FAIL;
        }
        print_restarts(json_object_get(rep, "restarts"));
    } else {
        printf("warden diagnose: %s  (%s)\n", upper, wctl_sval(sup, "error"));
    }
    printf("\nfindings\n");
    json_array_foreach(json_object_get(rep, "findings"), i, f)
        printf("  [%s] %s\n", wctl_sval(f, "severity"), wctl_sval(f, "message"));
    if (json_array_size(json_object_get(rep, "findings")) == 0)
        printf("  none: every worker runs, every breaker is closed, every client connected\n");
    printf("\nrecommendations\n");
    json_array_foreach(json_object_get(rep, "recommendations"), i, f)
        printf("  %zu. %s\n", ++n, json_string_value(f));
    if (n == 0)
        printf("  nothing to do\n");
    return WCTL_OK;
}
