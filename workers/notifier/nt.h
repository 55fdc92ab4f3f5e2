/* warden-notifier: alerts from alerts.sock and supervisor events to Slack,
 * webhooks, email and the log, without losing one and without flooding.
 *
 * Flow of one alert:
 *   intake (nt_intake.c)  REP alerts.sock: unpack + validate (a bad alert
 *                         gets an error reply naming the field), dedup
 *                         (nt_dedup.c), route (nt_route.c), then store in
 *                         Redis (nt_store.c) and only then ack.
 *   delivery (nt_deliver.c) one queue per channel, each with its breaker,
 *                         throttle (rate limit, Retry-After), retry with full
 *                         jitter and retry budget; storms go out as one
 *                         digest per channel (nt_dedup.c's storm counter).
 *                         Bodies come from nt_render.c; HTTP through
 *                         common/http.h, SMTP through common/curl_uv.h.
 *   completion            a route is crossed off in Redis when delivered;
 *                         the alert is removed when no route is left, or
 *                         goes to the dead letter queue (permanent error, or
 *                         max_attempts) with its last error and attempt count.
 *   restart               pending alerts are loaded back from Redis.
 *
 * The pure parts (route, dedup/storm, render) take no loop and no clock of
 * their own, so the unit tests drive them with a fake clock. */
#ifndef WD_NT_H
#define WD_NT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "breaker.h"
#include "metrics.h"
#include "notifier_conf.h"
#include "proto_alert.h"
#include "retry.h"
#include "throttle.h"

#define NT_ERROR_MAX 255         /* last error kept per delivery / dead letter */
#define NT_DIGEST_TITLES_MAX 20  /* titles listed in a storm digest */
#define NT_HEADERS_MAX 16        /* extra HTTP headers per channel */
#define NT_HEADER_MAX 1024       /* one "Name: value" line */
#define NT_SECRET_MAX 1023       /* a secret read from env or file */
#define NT_BODY_MAX (256u * 1024u) /* a rendered message */

/* ---- routing (nt_route.c) ---- */
typedef struct {
    bool severity[PROTO_SEV_COUNT];
    uint32_t n_labels;
    char key[PROTO_ALERT_LABELS_MAX][PROTO_ALERT_LABEL_KEY_MAX + 1];
    char val[PROTO_ALERT_LABELS_MAX][PROTO_ALERT_LABEL_VAL_MAX + 1]; /* "*": any value */
} nt_route;

/* Parses a channel's "severities" and "labels" settings. 0 or WD_EINVAL /
 * WD_ETOOBIG with err saying which item is wrong. */
int nt_route_parse(nt_route *r, const char *severities, const char *labels, char *err,
                   size_t errlen);
/* True when a goes to a channel with route r. */
bool nt_route_match(const nt_route *r, const proto_alert *a);

/* ---- dedup and storms (nt_dedup.c) ---- */
typedef struct nt_dedup_entry nt_dedup_entry;
typedef struct {
    nt_dedup_entry **buckets;
    size_t n_buckets, n;
    uint64_t window_ns;
} nt_dedup;

typedef enum { NT_DEDUP_NEW = 0, NT_DEDUP_MERGED } nt_dedup_result;

int nt_dedup_init(nt_dedup *d, uint64_t window_ns, size_t n_buckets);
void nt_dedup_free(nt_dedup *d);
/* The dedup key of a (its dedup_key, or source + "/" + title). */
void nt_dedup_key(const proto_alert *a, char *out, size_t outlen);
/* Records alert a (dedup key key) at now. NEW: the first in its window
 * (deliver it). MERGED: a repeat within window_ns of the first; *first_id
 * is the first's id and *count the repeats so far, this one included.
 * window 0: always NEW. */
nt_dedup_result nt_dedup_note(nt_dedup *d, const char *key, const proto_alert *a,
                              uint32_t routes, uint64_t now_ns, const char **first_id,
                              uint32_t *count);
/* Undoes a NEW note of id (its alert could not be stored after all). */
void nt_dedup_forget(nt_dedup *d, const char *key, const char *id);
/* What a window that merged repeats sums up, for the summary alert. */
typedef struct {
    const char *key, *first_id, *source, *title;
    proto_alert_severity severity; /* the highest among the repeats */
    uint32_t repeats;
    uint32_t routes; /* the first alert's channels: the summary goes there too */
} nt_dedup_summary;
/* Forgets windows that ended before now; for each one that merged repeats,
 * cb(arg, summary) runs first. Returns the number of windows forgotten. */
size_t nt_dedup_expire(nt_dedup *d, uint64_t now_ns,
                       void (*cb)(void *arg, const nt_dedup_summary *s), void *arg);
/* Entries currently held. */
size_t nt_dedup_size(const nt_dedup *d);

/* A storm counter: fixed windows of window_ns; once more than threshold
 * alerts were counted in the current window, the rest of it is a storm. */
typedef struct {
    uint64_t window_ns, start_ns;
    uint32_t threshold, count;
} nt_storm;
void nt_storm_init(nt_storm *s, uint32_t threshold, uint64_t window_ns);
/* Counts one alert at now; true when it belongs to a storm (goes into the
 * digest). threshold 0: never. */
bool nt_storm_note(nt_storm *s, uint64_t now_ns);
/* When the current window ends (to flush the digest). */
uint64_t nt_storm_window_end(const nt_storm *s);

/* ---- rendering (nt_render.c) ---- */
/* One message to render: a single alert (n == 1) or a storm digest. */
typedef struct {
    const proto_alert *const *alerts;
    uint32_t n;
    uint32_t repeats; /* dedup summary: times the first alert repeated; 0: none */
} nt_msg;

const char *nt_severity_color(proto_alert_severity s); /* Slack attachment color */
/* The highest severity in m. */
proto_alert_severity nt_msg_severity(const nt_msg *m);
/* Slack incoming-webhook JSON (text + one attachment colored by severity). */
char *nt_render_slack(const nt_msg *m, size_t *len);
/* Generic webhook JSON: {"id", "source", "severity", "title", "text",
 * "labels", "time", "dedup_key", "count"} or, for a digest, {"digest": true,
 * "count", "severity", "alerts": [...]}. */
char *nt_render_webhook(const nt_msg *m, size_t *len);
/* An RFC 5322 message (CRLF lines) for SMTP. */
char *nt_render_email(const nt_msg *m, const char *from, const char *to, uint64_t now_real_ns,
                      size_t *len);
/* One logfmt line (no newline) for the log channel. */
char *nt_render_log(const nt_msg *m, const char *channel, size_t *len);

/* ---- the worker's state (nt_worker.c and the rest) ---- */
typedef struct nt_state nt_state;
typedef struct nt_alert nt_alert;
typedef struct nt_job nt_job;
typedef struct nt_channel nt_channel;
typedef struct nt_put_batch nt_put_batch;   /* nt_store.c */
typedef struct nt_done_batch nt_done_batch; /* nt_store.c */

/* A pending alert, in memory while some route is not delivered. */
struct nt_alert {
    char id[PROTO_ALERT_ID_MAX + 1];
    proto_alert *a;         /* decoded (owned) */
    uint32_t routes;        /* bit per channel: still to deliver */
    uint32_t repeats;       /* dedup summary: repeats of the alert it sums up */
    uint64_t stored_mono_ns; /* when acked (latency) */
    nt_alert *hnext;        /* id hash chain */
};

typedef enum { NT_FAIL_HTTP_4XX, NT_FAIL_HTTP_5XX, NT_FAIL_RATE_LIMITED, NT_FAIL_TIMEOUT,
               NT_FAIL_NETWORK, NT_FAIL_BREAKER, NT_FAIL_SMTP_4XX, NT_FAIL_SMTP_5XX,
               NT_FAIL_OTHER, NT_FAIL_COUNT } nt_fail_reason;
const char *nt_fail_reason_name(nt_fail_reason r);

/* One delivery of n alerts (1, or a digest) to one channel. */
struct nt_job {
    nt_channel *ch;
    nt_alert **v;
    uint32_t n;
    uint32_t attempts;
    uint64_t due_ns;       /* monotonic: not before */
    uint64_t gen;          /* breaker generation of the running attempt */
    uint64_t started_ns;
    char error[NT_ERROR_MAX + 1];
    nt_job *next;
    /* email transfer */
    void *smtp;
};

struct nt_channel {
    nt_state *nt;
    int idx;
    char name[WD_CONF_NAME_MAX + 1];
    char brk_name[BRK_NAME_MAX + 1];
    nt_channel_conf conf;
    nt_route route;
    char url[NT_CONF_URL_MAX + 1]; /* secret: never logged */
    char redacted[512];
    char password[NT_SECRET_MAX + 1]; /* secret */
    char *headers[NT_HEADERS_MAX + 3]; /* NULL-terminated "Name: value" (owned) */
    uint32_t concurrency, max_attempts, inflight;
    bool disabled; /* url_env named an unset variable and no other url: routes skip it */
    struct wd_http *http;
    struct wd_curl_uv *curl;
    brk_breaker brk;
    throttle thr;
    bool thr_on;
    wd_retry_budget budget;
    wd_rng rng;
    nt_storm storm;
    nt_job *digest; /* collecting during a storm */
    nt_job *ready_head, *ready_tail, *waiting; /* due now (FIFO) / later */
    uv_timer_t timer;
    uint64_t delivered, failed, retries, dlq, queued;
    uint64_t failed_by[NT_FAIL_COUNT];
};

/* The one state struct of the worker. Owned by nt_worker.c, freed in fini. */
struct nt_state {
    struct wrk_ctx *ctx;
    uv_loop_t *loop;
    char name[WD_CONF_NAME_MAX + 1];
    char config_path[WD_CONF_PATH_MAX];
    nt_conf conf;
    int n_channels;
    nt_channel ch[NT_CONF_CHANNELS_MAX];
    char listen_url[NT_CONF_URL_MAX + 1];
    char events_url[NT_CONF_URL_MAX + 1];
    struct bus_rep *rep;
    struct bus_in *events;
    struct wd_redis *redis;
    bool redis_ready_once, loaded, stopping;
    nt_dedup dedup;
    uv_timer_t tick;       /* every second: dedup expiry, DLQ gauge */
    uv_timer_t load_timer; /* retries the start-up load while Redis is away */
    /* On stop, deliveries already sent are let finish (and recorded) before
     * the channels close, so a graceful stop or restart does not send them
     * twice; bounded by NT_STOP_DRAIN_MAX_MS and half the stop timeout. */
    uv_timer_t drain_timer;
    bool stopped; /* nt_stop_finish ran */
    /* Route-done scripts sent and not answered: on stop the Redis client is
     * closed only after them (a close fails what it has not written). */
    uint32_t store_writes;
    /* Stores and route completions queued during one loop iteration go to
     * Redis as one script each, flushed right before the loop polls again
     * (nt_store.c). */
    uv_prepare_t store_flush;
    nt_put_batch *put_batch;
    nt_done_batch *done_batch;
    /* pending alerts by id */
    nt_alert **idx;
    size_t idx_buckets, n_pending;
    uint64_t seq;
    /* workers whose last state was a failure, for "recovered" */
    char failed_workers[32][PROTO_NAME_MAX + 1];
    int n_failed_workers;
    uint64_t dlq_depth, dlq_oldest_ms; /* from the last DLQ poll */
    /* metrics */
    wd_metrics *reg;
    wd_metric *m_received, *m_rejected, *m_delivered, *m_failed, *m_retries, *m_dlq,
        *m_dlq_depth, *m_dlq_age, *m_latency, *m_pending, *m_brk_state, *m_rate, *m_paused,
        *m_merged, *m_digests;
};

/* nt_store.c: Redis keys and commands. Every callback runs once. */
typedef void (*nt_store_cb)(nt_state *nt, int status, const char *err, void *arg);
#define NT_STORE_BATCH_MAX 128 /* alerts per store script */
#define NT_DONE_BATCH_MAX 256  /* route completions per script */
/* Starts the batch flush (a uv_prepare on nt->loop). 0 or WD_ENOMEM. */
int nt_store_start(nt_state *nt);
/* Sends what is queued (route completions), fails what cannot be sent any
 * more (stores: WD_ECLOSED through their callbacks) and closes the handle.
 * Before the Redis client closes. */
void nt_store_stop(nt_state *nt);
/* Stores the packed alert (copied) with its routes (bit set) and id, unless
 * its id was seen within id_ttl: then cb gets status 0 and dup true. The
 * store is queued and goes out with the others of this loop iteration, in
 * one script (each alert's keys are still written together or not at all);
 * cb runs once per alert, never from inside this call. 0, or an error and
 * cb never runs. */
int nt_store_put(nt_state *nt, const char *id, const void *msg, size_t len, uint32_t routes,
                 void (*cb)(nt_state *, int status, bool dup, void *arg), void *arg);
/* Crosses al's route ch_idx off in Redis (and removes the alert when no
 * route is left); batched like nt_store_put. A failure is logged: the alert
 * stays pending and is delivered again after a restart. */
int nt_store_route_done(nt_state *nt, const nt_alert *al, int ch_idx);
int nt_store_dead(nt_state *nt, const nt_alert *al, int ch_idx, uint32_t attempts,
                  const char *error);
int nt_store_load(nt_state *nt);
void nt_store_poll_dlq(nt_state *nt);
char *nt_key(const nt_state *nt, const char *kind, const char *id, char *buf, size_t len);

/* nt_deliver.c */
int nt_channels_open(nt_state *nt, char *err, size_t errlen);
void nt_channels_close(nt_state *nt);
/* Queues al for every channel in al->routes. */
void nt_deliver_alert(nt_state *nt, nt_alert *al);
void nt_channels_tick(nt_state *nt, uint64_t now_ns);
/* Deliveries sent and not yet answered, over every channel. */
uint32_t nt_channels_inflight(const nt_state *nt);
/* nt_worker.c: the last delivery in flight during a stop has ended. */
void nt_stop_drained(nt_state *nt);
/* nt_worker.c: once stopped, closes the Redis client when no route-done
 * script is left unanswered. */
void nt_redis_close_when_idle(nt_state *nt);
#define NT_STOP_DRAIN_MAX_MS 3000

/* nt_worker.c: the pending index */
nt_alert *nt_pending_find(nt_state *nt, const char *id);
int nt_pending_add(nt_state *nt, nt_alert *al);
void nt_pending_remove(nt_state *nt, nt_alert *al); /* and frees it */
/* A route of al finished (delivered or dead): drop the bit, free when none left. */
void nt_route_finished(nt_state *nt, nt_alert *al, int ch_idx);
nt_alert *nt_alert_new(const proto_alert *a, uint32_t routes);
uint32_t nt_routes_for(const nt_state *nt, const proto_alert *a);

/* nt_intake.c */
int nt_intake_start(nt_state *nt, char *err, size_t errlen);
void nt_intake_stop(nt_state *nt);
/* Turns a supervisor event into an alert; false when no rule applies. */
bool nt_event_to_alert(nt_state *nt, const proto_event *ev, proto_alert *out);
/* Accepts an alert from the notifier itself (events, dedup summaries):
 * routed, stored, delivered like one from a producer. */
void nt_intake_internal(nt_state *nt, const proto_alert *a);
/* The same, to the given channels instead of by the routing rules. */
void nt_intake_internal_routed(nt_state *nt, const proto_alert *a, uint32_t routes);

/* nt_cmd.c */
int nt_command(nt_state *nt, const proto_ctl_request *req, json_t **data, char *err,
               size_t errlen);

#endif
