/* warden-health: Kubernetes probes, Prometheus metrics, the breaker API and a
 * status page over nng's HTTP server. See docs/HEALTH.md.
 *
 * Two kinds of threads touch this worker:
 *   - the worker's libuv loop (the runtime's): asks the supervisor for its
 *     status at most once per snapshot_ttl, follows events.sock, reads
 *     /proc, and builds an immutable hl_view from each answer; it also runs
 *     the mutating API calls (restart, breaker reset) it is handed;
 *   - nng's HTTP threads: route a request and answer it from the current
 *     hl_view (taken under hl_shared.mu, reference-counted), never waiting
 *     on the supervisor. POSTs are queued to the loop and answered from
 *     there when the supervisor replies.
 * Everything both sides read is in hl_shared, behind its mutex. */
#ifndef WD_HL_H
#define WD_HL_H

#include "bus.h"
#include "health_conf.h"
#include "worker.h"
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HL_CHECKS_MAX 256        /* readiness checks in one view */
#define HL_CHECK_NAME_MAX 160    /* "breaker:WORKER/BREAKER" */
#define HL_CHECK_REASON_MAX 256
#define HL_EVENTS_KEEP 100       /* recent events kept for /healthz and the page */
#define HL_URI_MAX 2048          /* longer request targets get 414 */
#define HL_TOKEN_MAX 512         /* bearer token bytes */
#define HL_ADDR_MAX 64           /* "[v6]:port" */
#define HL_REASON_MAX 200        /* operator's reason text (audit) */
#define HL_HISTORY_WANT_NS (10ULL * 1000000000ULL) /* keep fetching histories this long after a read */
#define HL_LOOP_BEAT_MS 100      /* the loop's own liveness tick */

/* ---- routing (hl_route.c): pure, unit tested ---- */
typedef enum {
    HL_R_NOT_FOUND = 0,
    HL_R_BAD_METHOD,  /* path known, method not: 405 */
    HL_R_TOO_LONG,    /* request target over HL_URI_MAX: 414 */
    HL_R_BAD_REQUEST, /* malformed target (bad escape, NUL): 400 */
    HL_R_PAGE,        /* GET / */
    HL_R_LIVEZ,
    HL_R_READYZ,      /* /readyz and /readyz/NAME (check in params) */
    HL_R_HEALTHZ,
    HL_R_METRICS,
    HL_R_WORKERS,     /* GET /api/workers */
    HL_R_RESTART,     /* POST /api/workers/NAME/restart */
    HL_R_BREAKERS,    /* GET /api/circuit-breakers */
    HL_R_HISTORY,     /* GET /api/circuit-breakers/history */
    HL_R_RESET,       /* POST /api/circuit-breakers/WORKER/BREAKER/reset */
} hl_route_id;

typedef struct {
    hl_route_id id;
    const char *allow;            /* for HL_R_BAD_METHOD: the Allow header */
    bool head;                    /* HEAD: answer without a body */
    bool verbose;                 /* ?verbose */
    char check[HL_CHECK_NAME_MAX + 1];  /* /readyz/NAME */
    char exclude[8][HL_CHECK_NAME_MAX + 1]; /* ?exclude=NAME (repeatable) */
    int n_exclude;
    char worker[PROTO_NAME_MAX + 1];
    char breaker[PROTO_NAME_MAX + 1];
    char reason[HL_REASON_MAX + 1];
    bool has_reason;
    bool override;
    char error[128];              /* for HL_R_BAD_REQUEST */
} hl_route;

/* Parses method and request target (path and query) into r. Never fails:
 * unknown paths are HL_R_NOT_FOUND, bad input HL_R_BAD_REQUEST with error. */
void hl_route_parse(const char *method, const char *uri, hl_route *r);
/* Decodes %XX and (in queries) '+' from src[0..len) into dst (dstlen with the
 * NUL). 0, or WD_EINVAL (bad escape, NUL byte) / WD_ETOOBIG. */
int hl_url_decode(const char *src, size_t len, bool plus_is_space, char *dst, size_t dstlen);

/* ---- readiness and liveness checks (hl_checks.c): pure, unit tested ---- */
typedef struct {
    char name[HL_CHECK_NAME_MAX + 1];
    bool ok;
    char reason[HL_CHECK_REASON_MAX + 1]; /* why it failed ("" when ok) */
} hl_check;

/* Evaluates the readiness checks a supervisor status (docs/CONTROL.md) says:
 * startup, draining, worker:NAME per required worker, breaker:WORKER/NAME
 * per critical breaker. Returns how many were written to out (<= max). */
int hl_checks_eval(const json_t *status, uint64_t heartbeat_max_age_ms, hl_check *out, int max);
/* Does check name c match the filter f (the full name, or the part after
 * the "kind:" prefix, e.g. "db" for "worker:db")? */
bool hl_check_matches(const char *c, const char *f);
/* The probe text: "[+]name ok" / "[-]name failed: reason" lines (verbose) or
 * the failing lines only, then "ok" / "NAME check failed". checks are
 * filtered by r (exclude, one check). Returns the HTTP status (200, 503, or
 * 404 for an unknown /readyz/NAME) and a malloc'ed body. */
int hl_probe_text(const char *probe, const hl_check *checks, int n, const hl_route *r,
                  char **body, size_t *len);

/* ---- Prometheus text (hl_prom.c): pure, unit tested ---- */
/* Renders the status (as decorated by hl_view_build: rss_bytes/cpu_seconds
 * per worker) plus the health worker's own figures as text format 0.0.4.
 * Returns a malloc'ed NUL-terminated text, or NULL when out of memory. */
typedef struct {
    bool supervisor_up;
    uint64_t snapshots_total, snapshot_errors_total, http_requests_total;
    double snapshot_age_s;
} hl_self_stats;
char *hl_prom_render(const json_t *status, const hl_self_stats *self, size_t *len);
/* warden_supervisor_up and warden_health_snapshot_age_seconds, rendered per
 * request (they change while the served snapshot does not). */
char *hl_prom_live(bool supervisor_up, double snapshot_age_s, size_t *len);

/* ---- views (hl_view.c) ---- */
/* One immutable snapshot of what the HTTP side serves. */
typedef struct hl_view {
    atomic_int refs;
    int n_checks;
    hl_check checks[HL_CHECKS_MAX];    /* readiness, from the status */
    char *metrics;                     /* Prometheus text */
    size_t metrics_len;
    char *healthz, *workers, *breakers, *history; /* JSON texts */
    size_t healthz_len, workers_len, breakers_len, history_len;
} hl_view;

typedef struct {
    char ts[32];
    char kind[32], worker[PROTO_NAME_MAX + 1], from[32], to[32];
    char reason[PROTO_REASON_MAX + 1];
} hl_event;

/* Builds a view. status is decorated in place (rss/cpu per worker).
 * details: {worker: [breaker JSON from the worker's `breakers` command]}
 * (may be NULL). events: the ring, oldest first. NULL when out of memory. */
hl_view *hl_view_build(json_t *status, const json_t *details, const hl_event *events, int n_events,
                       const hl_self_stats *self, uint64_t heartbeat_max_age_ms);
void hl_view_ref(hl_view *v);
void hl_view_unref(hl_view *v);
/* /proc/PID/stat: resident bytes and CPU seconds (user + system). 0 or WD_E*. */
int hl_proc_stat(int pid, double *rss_bytes, double *cpu_s);

/* ---- the worker's state ---- */
typedef struct hl_op hl_op; /* a queued POST (hl_api.c) */

typedef struct {
    pthread_mutex_t mu;
    hl_view *view;              /* current view, NULL before the first status */
    uint64_t last_ok_ns;        /* monotonic time of the last supervisor answer */
    uint64_t loop_beat_ns;      /* the loop's last tick */
    char sup_error[HL_CHECK_REASON_MAX + 1]; /* why the last status request failed */
    uint64_t history_wanted_ns; /* last read of the history endpoint */
    hl_op *ops_head, *ops_tail; /* POSTs waiting for the loop */
    bool closing;               /* no new POSTs */
    uint64_t http_requests;
} hl_shared;

typedef struct hl hl;
struct hl {
    wrk_ctx *ctx;
    hl_conf conf;
    char token[HL_TOKEN_MAX + 1]; /* bearer token; "" = none. Never logged. */
    size_t token_len;
    char run_dir[WD_CONF_PATH_MAX];
    char control_url[WD_CONF_PATH_MAX + 32], events_url[WD_CONF_PATH_MAX + 32];
    char audit_path[WD_CONF_PATH_MAX + 32];
    hl_shared sh;

    /* loop side */
    bus_req *ctl;               /* REQ to control.sock */
    bus_in *events;             /* SUB on events.sock */
    uv_timer_t snap_timer, beat_timer;
    uv_async_t ops_async;
    bool handles_on, stopping;
    bool status_inflight;
    uint64_t status_sent_ns;
    json_t *last_status;        /* the latest status reply (owned) */
    json_t *details;            /* {worker: [breakers]}, from `call W breakers` */
    uint64_t details_ns;
    int details_inflight;
    hl_event events_ring[HL_EVENTS_KEEP];
    int n_events, events_next;
    uint64_t snapshots_total, snapshot_errors_total;

    /* HTTP side (hl_http.c) */
    void *server;               /* nng_http_server * */
    void *handler;              /* nng_http_handler * until added */
};

/* hl_snapshot.c: the loop side. */
int hl_snapshot_start(hl *h);
void hl_snapshot_stop(hl *h);
/* Sends one control request; cb gets the reply's status, error and data. */
typedef void (*hl_ctl_cb)(hl *h, void *arg, int status, const char *error, json_t *data);
int hl_ctl_send(hl *h, const proto_ctl_request *req, uint64_t timeout_ms, hl_ctl_cb cb, void *arg);

/* hl_http.c: the server. */
int hl_http_start(hl *h, char *err, size_t errlen);
void hl_http_stop(hl *h);
/* Completes an HTTP request (any thread): aio is the handler's nng_aio. */
void hl_http_reply(void *aio, int code, const char *ctype, const char *body, size_t len,
                   const char *extra_header, const char *extra_value);
void hl_http_reply_json(void *aio, int code, json_t *body); /* steals body */
void hl_http_reply_error(void *aio, int code, const char *msg);

/* hl_api.c: POST endpoints, run on the loop. */
/* Queues a POST from an HTTP thread; the loop answers it. */
void hl_api_submit(hl *h, void *aio, const hl_route *r, const char *client);
void hl_api_on_async(uv_async_t *a);
/* Answers every queued POST with 503 (stopping). */
void hl_api_drain(hl *h);
/* Maps a WD_E* reply status to an HTTP status. */
int hl_api_http_status(int wd_status);
/* Constant-time comparison of a request's Authorization header with the token. */
bool hl_api_authorized(const hl *h, const char *authorization);

/* hl_page.c: the status page. */
extern const char hl_page_html[];
extern const size_t hl_page_html_len;

#endif
