/* Process metrics: counters, gauges and histograms with a fixed label set.
 *
 * One registry per process. A metric declares its label names when it is
 * registered; each distinct tuple of label values is a series, created on
 * first use and bounded per metric (WD_METRIC_SERIES_MAX) so a runaway label
 * (a symbol, a URL) cannot grow memory without limit. The registry exports
 * two ways: a bounded snapshot into a heartbeat for the supervisor, and the
 * Prometheus text format 0.0.4 for the health worker's /metrics.
 *
 * Not thread-safe: a registry belongs to one event loop, like the rest of the
 * worker runtime. The registry owns every metric and series it hands out;
 * they stay valid until wd_metrics_free(). */
#ifndef WD_METRICS_H
#define WD_METRICS_H

#include <stddef.h>

#include "proto.h"

#define WD_METRICS_MAX 256             /* metrics in one registry */
#define WD_METRIC_NAME_MAX 127         /* metric name, without labels */
#define WD_METRIC_HELP_MAX 255         /* help text */
#define WD_METRIC_LABELS_MAX 8         /* label names per metric */
#define WD_METRIC_LABEL_NAME_MAX 63    /* one label name */
#define WD_METRIC_LABEL_VALUE_MAX 127  /* one label value */
#define WD_METRIC_SERIES_MAX 64        /* label-value tuples per metric */
#define WD_METRIC_BUCKETS_MAX 32       /* histogram bounds, +Inf excluded */
#define WD_METRICS_RENDER_MAX (4u << 20) /* bytes of Prometheus text */

typedef struct wd_metrics wd_metrics;
typedef struct wd_metric wd_metric;
typedef struct wd_series wd_series;

typedef enum { WD_METRIC_COUNTER, WD_METRIC_GAUGE, WD_METRIC_HISTOGRAM } wd_metric_kind;

/* Returns a new empty registry, or NULL when out of memory. The caller owns
 * it and frees it with wd_metrics_free() (NULL is accepted). */
wd_metrics *wd_metrics_new(void);
void wd_metrics_free(wd_metrics *reg);

/* Registration. name matches [a-zA-Z_:][a-zA-Z0-9_:]* (counters must end in
 * "_total"); help is required (may be empty); label_names is a
 * NULL-terminated array of names matching [a-zA-Z_][a-zA-Z0-9_]* that do not
 * start with "__" and are distinct, or NULL for no labels. Histograms take
 * n_bounds strictly increasing finite upper bounds (le is inclusive); the
 * +Inf bucket is implicit, and "le" is not a valid label name for them.
 *
 * Each returns the metric (owned by the registry) or NULL, in which case
 * wd_metrics_error(reg) says why: WD_EINVAL (bad name, label or bounds),
 * WD_EEXIST (name taken), WD_ETOOBIG (too many metrics/labels/buckets),
 * WD_ENOMEM. A metric without labels has its one series from the start. */
wd_metric *wd_metric_counter(wd_metrics *reg, const char *name, const char *help,
                             const char *const *label_names);
wd_metric *wd_metric_gauge(wd_metrics *reg, const char *name, const char *help,
                           const char *const *label_names);
wd_metric *wd_metric_histogram(wd_metrics *reg, const char *name, const char *help,
                               const char *const *label_names, const double *bounds,
                               size_t n_bounds);

/* The error of the last failed wd_metric_* / wd_metric_series call, 0 if the
 * last such call succeeded. */
int wd_metrics_error(const wd_metrics *reg);

wd_metric_kind wd_metric_kind_of(const wd_metric *m);

/* Returns the series for label_values, a NULL-terminated array with exactly
 * as many values as the metric has label names (NULL or an empty array for
 * a metric without labels), creating it on first use. Returns NULL and sets
 * wd_metrics_error(): WD_EINVAL on a count mismatch or a value longer than
 * WD_METRIC_LABEL_VALUE_MAX, WD_ETOOBIG once WD_METRIC_SERIES_MAX series
 * exist, WD_ENOMEM. The series is owned by the metric. */
wd_series *wd_metric_series(wd_metric *m, const char *const *label_values);

/* Counters only go up: v must be finite and >= 0, else WD_ERANGE and the
 * counter is unchanged. WD_EINVAL when s is NULL or not of the right kind. */
int wd_counter_add(wd_series *s, double v);
int wd_gauge_set(wd_series *s, double v);
int wd_gauge_add(wd_series *s, double v);
/* v lands in the first bucket whose bound is >= v (+Inf otherwise); NaN is
 * rejected with WD_ERANGE. */
int wd_hist_observe(wd_series *s, double v);

/* Current value of a counter or gauge series (0 for a histogram). */
double wd_series_value(const wd_series *s);

/* Appends one proto_metric per counter/gauge series and two (NAME_count,
 * NAME_sum) per histogram series to hb->metrics, starting at hb->n_metrics,
 * up to PROTO_METRICS_MAX. A sample name is NAME{label="value",...} with
 * values escaped as in the text format; a sample whose name does not fit in
 * PROTO_METRIC_NAME_MAX is dropped. Returns the number of samples dropped
 * (>= 0), or WD_EINVAL for NULL arguments. */
int wd_metrics_snapshot(const wd_metrics *reg, proto_heartbeat *hb);

/* Renders the registry as Prometheus text format 0.0.4 into a new
 * NUL-terminated buffer: *out is owned by the caller (free()), *len excludes
 * the NUL. Metrics with labels and no series yet are left out. Returns 0,
 * WD_EINVAL, WD_ENOMEM, or WD_ETOOBIG past WD_METRICS_RENDER_MAX bytes; on
 * error *out is NULL. */
int wd_metrics_render_prometheus(const wd_metrics *reg, char **out, size_t *len);

#endif
