/* alert_outbox: the producer side of alerts.sock. A worker that raises
 * alerts (the position monitor's exits, ...) pushes them here and goes on;
 * the outbox sends each one as a REQ to the notifier (proto_alert.h) and
 * keeps it until the notifier's ack says it is stored. An alert the notifier
 * refuses as malformed is dropped (and counted); one it cannot store yet
 * (Redis down), one whose ack does not come within ack_timeout_ms, and
 * every alert while the notifier is down, are sent again after retry_ms, in
 * order, until acked. So nothing is lost while the notifier or its store is
 * away, within the outbox's bound: when capacity alerts are held, a new push
 * drops the oldest one (counted in dropped), because the newest state is the
 * one a person needs.
 *
 * Delivery is at least once: an ack lost on the way back makes the alert go
 * again with the same id, and the notifier stores by id, so a resend is
 * harmless.
 *
 * Metrics (when opts.metrics is set; one outbox per registry), label
 * outbox = opts.sender:
 *   warden_alert_outbox_depth{outbox}          gauge: alerts held (unacked)
 *   warden_alert_outbox_dropped_total{outbox}  counter: dropped, outbox full
 *   warden_alert_outbox_acked_total{outbox}    counter
 *   warden_alert_outbox_rejected_total{outbox} counter: refused as malformed
 *   warden_alert_outbox_resent_total{outbox}   counter: sends after the first
 *
 * One loop; every function is called on its thread. */
#ifndef WD_ALERT_OUTBOX_H
#define WD_ALERT_OUTBOX_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "metrics.h"
#include "proto_alert.h"

#define ALERT_OUTBOX_CAPACITY_DEFAULT 1024u
#define ALERT_OUTBOX_CAPACITY_MAX 1000000u
#define ALERT_OUTBOX_INFLIGHT_DEFAULT 16u
#define ALERT_OUTBOX_INFLIGHT_MAX 256u
#define ALERT_OUTBOX_ACK_TIMEOUT_DEFAULT_MS 5000u
#define ALERT_OUTBOX_RETRY_DEFAULT_MS 1000u
#define ALERT_OUTBOX_URL_MAX 1023
#define ALERT_OUTBOX_SOCK "alerts.sock" /* under the run dir */

typedef struct alert_outbox alert_outbox;

typedef struct {
    const char *url;         /* the notifier's alerts.sock, "ipc:///run/dir/alerts.sock" */
    const char *sender;      /* envelope sender and id prefix: the producer's name */
    uint32_t capacity;       /* alerts held at most; 0: default */
    uint32_t inflight_max;   /* requests awaiting an ack at once; 0: default */
    uint64_t ack_timeout_ms; /* 0: default */
    uint64_t retry_ms;       /* pause after a failed send or a "not now"; 0: default */
    wd_metrics *metrics;     /* borrowed, may be NULL; outlives the outbox */
    /* Optional: runs once per alert that leaves the outbox with an answer,
     * status 0 (acked) or the refusal (permanent). Not for drops or close. */
    void (*on_done)(void *arg, const char *id, int status);
    void *on_done_arg;
} alert_outbox_opts;

typedef struct {
    uint32_t depth;    /* held: queued + awaiting an ack */
    uint32_t inflight; /* awaiting an ack */
    uint64_t pushed, acked, dropped, rejected, resent;
} alert_outbox_stats;

/* Writes "ipc://RUN_DIR/alerts.sock" into out. 0 or WD_ETOOBIG / WD_EINVAL. */
int alert_outbox_url(const char *run_dir, char *out, size_t outlen);

/* Dials url (nng redials on its own) and returns the outbox in *out, owned
 * by the caller until alert_outbox_close(). WD_EINVAL (bad option, err says
 * which), WD_EEXIST (metrics registered twice), WD_ENOMEM, or the bus's
 * error. */
int alert_outbox_open(uv_loop_t *loop, const alert_outbox_opts *opts, alert_outbox **out,
                      char *err, size_t errlen);

/* Copies a, fills an empty id ("SENDER-<hex time>-<seq>") and a zero time
 * (now), validates it (proto_alert_check: WD_EINVAL / WD_ETOOBIG with err
 * naming the field) and queues it. When id_out is not NULL (at least
 * PROTO_ALERT_ID_MAX + 1 bytes) the alert's id is written there. A full
 * outbox drops its oldest alert to make room. WD_ECLOSED after close. */
int alert_outbox_push(alert_outbox *ob, const proto_alert *a, char *id_out, char *err,
                      size_t errlen);

void alert_outbox_get_stats(const alert_outbox *ob, alert_outbox_stats *out);

/* Stops sending; what is still held is dropped (not counted in dropped).
 * close_cb (may be NULL) runs from the loop once the handles are closed,
 * and ob is freed right after it returns. */
void alert_outbox_close(alert_outbox *ob, void (*close_cb)(void *arg), void *arg);

#endif
