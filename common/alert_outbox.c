/* alert_outbox: a bounded FIFO of packed alerts, sent over bus_req to the
 * notifier and kept until acked. See alert_outbox.h. */
#include "alert_outbox.h"
#include "bus.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ob_entry ob_entry;
struct ob_entry {
    alert_outbox *ob;
    ob_entry *prev, *next; /* in ob's FIFO; both NULL once orphaned */
    bool inflight;
    bool orphan;           /* dropped while its request was out: freed by its callback */
    uint32_t sends;
    char id[PROTO_ALERT_ID_MAX + 1];
    size_t len;
    char buf[]; /* the packed alert */
};

struct alert_outbox {
    uv_loop_t *loop;
    bus_req *req;
    uv_timer_t timer; /* ends a pause (paused_until_ms) */
    alert_outbox_opts o;
    char url[ALERT_OUTBOX_URL_MAX + 1];
    char sender[PROTO_NAME_MAX + 1];
    ob_entry *head, *tail;
    uint32_t depth, inflight;
    uint64_t paused_until_ms; /* no new send before this (monotonic ms) */
    uint64_t seq, id_base;
    alert_outbox_stats st;
    bool closing;
    void (*close_cb)(void *);
    void *close_arg;
    wd_series *m_depth, *m_dropped, *m_acked, *m_rejected, *m_resent;
};

static void ob_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ob_seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int alert_outbox_url(const char *run_dir, char *out, size_t outlen) {
    if (!run_dir || !out || run_dir[0] == '\0')
        return WD_EINVAL;
    int n = snprintf(out, outlen, "ipc://%s/%s", run_dir, ALERT_OUTBOX_SOCK);
    return (n < 0 || (size_t)n >= outlen) ? WD_ETOOBIG : 0;
}

static void ob_gauge(alert_outbox *ob) {
    if (ob->m_depth)
        wd_gauge_set(ob->m_depth, ob->depth);
}

static void ob_count(wd_series *s) {
    if (s)
        wd_counter_add(s, 1);
}

static void ob_unlink(alert_outbox *ob, ob_entry *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        ob->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        ob->tail = e->prev;
    e->prev = e->next = NULL;
    ob->depth--;
    ob->st.depth = ob->depth;
    ob_gauge(ob);
}

static void ob_pump(alert_outbox *ob);
static void ob_timer_cb(uv_timer_t *t);

/* A failed send or a "not now" pauses the whole outbox, not one alert: the
 * notifier (or its store) is away for all of them, and one timer then
 * serves any depth. */
static void ob_pause(alert_outbox *ob) {
    uint64_t until = wd_clock_mono_ms() + ob->o.retry_ms;
    if (until > ob->paused_until_ms)
        ob->paused_until_ms = until;
}

static void ob_on_reply(void *arg, int status, const void *buf, size_t len) {
    ob_entry *e = arg;
    alert_outbox *ob = e->ob;
    proto_alert_reply rep;
    char err[PROTO_ERROR_MAX + 1];
    e->inflight = false;
    ob->inflight--;
    ob->st.inflight = ob->inflight;
    if (e->orphan || status == WD_ECLOSED) {
        bool orphan = e->orphan;
        if (!orphan)
            ob_unlink(ob, e);
        free(e);
        if (orphan)
            ob_pump(ob); /* its window slot is free again */
        return;
    }
    bool done = false;
    if (status == 0) {
        int rc = proto_alert_reply_unpack(buf, len, NULL, &rep, err, sizeof err);
        if (rc != 0) {
            wd_warn("alert outbox: bad reply for alert %s: %s", e->id, err);
        } else if (rep.status == 0) {
            ob->st.acked++;
            ob_count(ob->m_acked);
            done = true;
        } else if (proto_alert_status_permanent(rep.status)) {
            /* The alert itself is wrong: resending cannot help. */
            wd_warn("alert outbox: alert %s refused: %s", e->id, rep.error);
            ob->st.rejected++;
            ob_count(ob->m_rejected);
            done = true;
        } else {
            wd_debug("alert outbox: alert %s not stored yet: %s", e->id, rep.error);
        }
    } else {
        wd_debug("alert outbox: alert %s: %s", e->id, wd_strerror(status));
    }
    if (done) {
        ob_unlink(ob, e);
        if (ob->o.on_done)
            ob->o.on_done(ob->o.on_done_arg, e->id, rep.status);
        free(e);
    } else {
        ob_pause(ob);
    }
    ob_pump(ob);
}

/* Sends queued alerts, oldest first, while the window has room. */
static void ob_pump(alert_outbox *ob) {
    if (ob->closing)
        return;
    uint64_t now = wd_clock_mono_ms();
    if (now < ob->paused_until_ms) {
        uv_timer_start(&ob->timer, ob_timer_cb, ob->paused_until_ms - now, 0);
        return;
    }
    for (ob_entry *e = ob->head; e && ob->inflight < ob->o.inflight_max; e = e->next) {
        if (e->inflight)
            continue;
        int rc = bus_req_send(ob->req, e->buf, e->len, ob->o.ack_timeout_ms, ob_on_reply, e);
        if (rc != 0) {
            wd_debug("alert outbox: send: %s", wd_strerror(rc));
            ob_pause(ob);
            uv_timer_start(&ob->timer, ob_timer_cb, ob->o.retry_ms, 0);
            return;
        }
        if (e->sends++ > 0) {
            ob->st.resent++;
            ob_count(ob->m_resent);
        }
        e->inflight = true;
        ob->inflight++;
        ob->st.inflight = ob->inflight;
    }
}

static void ob_timer_cb(uv_timer_t *t) { ob_pump(t->data); }

static int ob_metrics(alert_outbox *ob, wd_metrics *reg) {
    static const char *const lbl[] = {"outbox", NULL};
    const char *val[] = {ob->sender, NULL};
    wd_metric *m;
    if (!(m = wd_metric_gauge(reg, "warden_alert_outbox_depth", "Alerts held, not yet acked",
                              lbl)) ||
        !(ob->m_depth = wd_metric_series(m, val)))
        return wd_metrics_error(reg);
    if (!(m = wd_metric_counter(reg, "warden_alert_outbox_dropped_total",
                                "Alerts dropped because the outbox was full", lbl)) ||
        !(ob->m_dropped = wd_metric_series(m, val)))
        return wd_metrics_error(reg);
    if (!(m = wd_metric_counter(reg, "warden_alert_outbox_acked_total",
                                "Alerts the notifier acked", lbl)) ||
        !(ob->m_acked = wd_metric_series(m, val)))
        return wd_metrics_error(reg);
    if (!(m = wd_metric_counter(reg, "warden_alert_outbox_rejected_total",
                                "Alerts the notifier refused as malformed", lbl)) ||
        !(ob->m_rejected = wd_metric_series(m, val)))
        return wd_metrics_error(reg);
    if (!(m = wd_metric_counter(reg, "warden_alert_outbox_resent_total",
                                "Alert sends after the first", lbl)) ||
        !(ob->m_resent = wd_metric_series(m, val)))
        return wd_metrics_error(reg);
    return 0;
}

int alert_outbox_open(uv_loop_t *loop, const alert_outbox_opts *opts, alert_outbox **out,
                      char *err, size_t errlen) {
    int rc;
    if (!loop || !opts || !out || !opts->url || !opts->sender) {
        ob_seterr(err, errlen, "alert outbox: missing argument");
        return WD_EINVAL;
    }
    size_t sl = strlen(opts->sender);
    if (sl == 0 || sl > PROTO_NAME_MAX || !proto_alert_id_ok(opts->sender, sl)) {
        ob_seterr(err, errlen, "alert outbox: sender must be 1..%d of A-Z a-z 0-9 . _ - :",
                  PROTO_NAME_MAX);
        return WD_EINVAL;
    }
    if (strlen(opts->url) > ALERT_OUTBOX_URL_MAX) {
        ob_seterr(err, errlen, "alert outbox: url longer than %d bytes", ALERT_OUTBOX_URL_MAX);
        return WD_EINVAL;
    }
    if (opts->capacity > ALERT_OUTBOX_CAPACITY_MAX || opts->inflight_max > ALERT_OUTBOX_INFLIGHT_MAX) {
        ob_seterr(err, errlen, "alert outbox: capacity (max %u) or inflight_max (max %u) too large",
                  ALERT_OUTBOX_CAPACITY_MAX, ALERT_OUTBOX_INFLIGHT_MAX);
        return WD_EINVAL;
    }
    alert_outbox *ob = calloc(1, sizeof *ob);
    if (!ob)
        return WD_ENOMEM;
    ob->loop = loop;
    ob->o = *opts;
    memcpy(ob->url, opts->url, strlen(opts->url) + 1);
    memcpy(ob->sender, opts->sender, sl + 1);
    ob->o.url = ob->url;
    ob->o.sender = ob->sender;
    if (!ob->o.capacity)
        ob->o.capacity = ALERT_OUTBOX_CAPACITY_DEFAULT;
    if (!ob->o.inflight_max)
        ob->o.inflight_max = ALERT_OUTBOX_INFLIGHT_DEFAULT;
    if (!ob->o.ack_timeout_ms)
        ob->o.ack_timeout_ms = ALERT_OUTBOX_ACK_TIMEOUT_DEFAULT_MS;
    if (!ob->o.retry_ms)
        ob->o.retry_ms = ALERT_OUTBOX_RETRY_DEFAULT_MS;
    /* Ids must not repeat across restarts of the producer: the notifier
     * stores by id, and an old id would be taken for a resend. */
    ob->id_base = wd_clock_real_ns() ^ ((uint64_t)getpid() << 40);
    if (opts->metrics && (rc = ob_metrics(ob, opts->metrics)) != 0) {
        ob_seterr(err, errlen, "alert outbox: metrics: %s", wd_strerror(rc));
        free(ob);
        return rc;
    }
    if ((rc = bus_req_dial(loop, ob->url, &ob->req, err, errlen)) != 0) {
        free(ob);
        return rc;
    }
    uv_timer_init(loop, &ob->timer);
    ob->timer.data = ob;
    *out = ob;
    return 0;
}

int alert_outbox_push(alert_outbox *ob, const proto_alert *a, char *id_out, char *err,
                      size_t errlen) {
    proto_alert c;
    proto_header h;
    msgpack_sbuffer sb;
    int rc;
    if (!ob || !a) {
        ob_seterr(err, errlen, "alert outbox: missing argument");
        return WD_EINVAL;
    }
    if (ob->closing)
        return WD_ECLOSED;
    c = *a;
    ob->seq++;
    if (c.id[0] == '\0')
        snprintf(c.id, sizeof c.id, "%.*s-%llx-%llu", 30, ob->sender,
                 (unsigned long long)ob->id_base, (unsigned long long)ob->seq);
    if (c.time_ns == 0)
        c.time_ns = wd_clock_real_ns();
    if ((rc = proto_alert_check(&c, err, errlen)) != 0)
        return rc;
    memset(&h, 0, sizeof h);
    memcpy(h.sender, ob->sender, strlen(ob->sender) + 1);
    h.seq = ob->seq;
    h.ts_ns = wd_clock_real_ns();
    msgpack_sbuffer_init(&sb);
    if ((rc = proto_alert_pack(&sb, &h, &c)) != 0) {
        ob_seterr(err, errlen, "alert outbox: pack: %s", wd_strerror(rc));
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    ob_entry *e = malloc(sizeof *e + sb.size);
    if (!e) {
        msgpack_sbuffer_destroy(&sb);
        return WD_ENOMEM;
    }
    memset(e, 0, sizeof *e);
    e->ob = ob;
    e->len = sb.size;
    memcpy(e->buf, sb.data, sb.size);
    memcpy(e->id, c.id, strlen(c.id) + 1);
    msgpack_sbuffer_destroy(&sb);
    if (ob->depth >= ob->o.capacity) {
        ob_entry *old = ob->head;
        ob_unlink(ob, old);
        ob->st.dropped++;
        ob_count(ob->m_dropped);
        wd_warn("alert outbox: full (%u alerts): dropped the oldest, %s", ob->o.capacity, old->id);
        if (old->inflight)
            old->orphan = true;
        else
            free(old);
    }
    e->prev = ob->tail;
    if (ob->tail)
        ob->tail->next = e;
    else
        ob->head = e;
    ob->tail = e;
    ob->depth++;
    ob->st.depth = ob->depth;
    ob->st.pushed++;
    ob_gauge(ob);
    if (id_out)
        memcpy(id_out, c.id, strlen(c.id) + 1);
    ob_pump(ob);
    return 0;
}

void alert_outbox_get_stats(const alert_outbox *ob, alert_outbox_stats *out) {
    if (ob && out)
        *out = ob->st;
}

static void ob_on_close(uv_handle_t *h) {
    alert_outbox *ob = h->data;
    void (*cb)(void *) = ob->close_cb;
    void *arg = ob->close_arg;
    while (ob->head) {
        ob_entry *e = ob->head;
        ob_unlink(ob, e);
        free(e);
    }
    if (cb)
        cb(arg);
    free(ob);
}

void alert_outbox_close(alert_outbox *ob, void (*close_cb)(void *arg), void *arg) {
    if (!ob || ob->closing)
        return;
    ob->closing = true;
    ob->close_cb = close_cb;
    ob->close_arg = arg;
    /* Outstanding requests' callbacks run now with WD_ECLOSED (or, for
     * orphans, free themselves), so no entry is referenced by the bus after. */
    bus_req_close(ob->req);
    ob->req = NULL;
    uv_timer_stop(&ob->timer);
    uv_close((uv_handle_t *)&ob->timer, ob_on_close);
}
