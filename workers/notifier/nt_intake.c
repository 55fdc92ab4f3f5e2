/* Intake: alerts on alerts.sock (REP; the ack goes out only once the alert
 * is stored), supervisor events on events.sock turned into alerts by the
 * [notifier] rules, and the notifier's own alerts (dedup summaries). */
#include "nt.h"
#include "bus.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NT_REP_MODE 0600
/* Requests held at once on alerts.sock. Each waits for its Redis store
 * before the ack, so with few of them the intake rate is bounded by
 * contexts / store round trip, not by CPU: 8 (bus_rep_open's) held
 * bench/notifier near 3.5k alerts/s. The more are held, the larger the
 * store batches (nt_store.c), but intake also competes with delivery on the
 * one loop: with 256, acked alerts waited about a second for delivery in
 * the same benchmark. 64 keeps both moving. */
#define NT_REP_CONTEXTS 64

typedef struct {
    nt_state *nt;
    bus_rep_request *req; /* NULL for an internal alert */
    proto_alert *a;
    char key[PROTO_ALERT_DEDUP_MAX + PROTO_ALERT_SOURCE_MAX + PROTO_ALERT_TITLE_MAX + 4];
    bool dedup_new;
    uint32_t routes;
} intake_op;

static void reply(nt_state *nt, bus_rep_request *req, const char *id, int status,
                  const char *error) {
    proto_alert_reply r;
    proto_header h;
    msgpack_sbuffer sb;
    if (!req)
        return;
    memset(&r, 0, sizeof r);
    memset(&h, 0, sizeof h);
    snprintf(r.id, sizeof r.id, "%s", id ? id : "");
    r.status = status;
    snprintf(r.error, sizeof r.error, "%s", error ? error : "");
    snprintf(h.sender, sizeof h.sender, "%s", nt->name);
    h.seq = ++nt->seq;
    h.ts_ns = wd_clock_real_ns();
    msgpack_sbuffer_init(&sb);
    if (proto_alert_reply_pack(&sb, &h, &r) != 0) {
        /* An id or error text that does not pack: answer without them. */
        r.id[0] = '\0';
        snprintf(r.error, sizeof r.error, "%s", wd_strerror(status));
        msgpack_sbuffer_clear(&sb);
        proto_alert_reply_pack(&sb, &h, &r);
    }
    bus_rep_reply(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void count(nt_state *nt, wd_metric *m, const char *label) {
    if (!m)
        return;
    const char *l[] = {label, NULL};
    wd_counter_add(wd_metric_series(m, label ? l : NULL), 1);
}

static void on_stored(nt_state *nt, int status, bool dup, void *arg) {
    intake_op *op = arg;
    if (nt->stopping) {
        /* Stored or not, the producer resends without an ack: harmless. */
        free(op->a);
        free(op);
        return;
    }
    if (status != 0) {
        if (op->dedup_new)
            nt_dedup_forget(&nt->dedup, op->key, op->a->id);
        reply(nt, op->req, op->a->id, WD_EUNAVAIL, "not stored: Redis unavailable; send again");
        if (!op->req)
            wd_warn("alert %s (own) could not be stored: %s; only logged: [%s] %s",
                    op->a->id, wd_strerror(status), proto_alert_severity_name(op->a->severity),
                    op->a->title);
        free(op->a);
        free(op);
        return;
    }
    if (!dup) {
        nt_alert *al = nt_alert_new(op->a, op->routes);
        if (al && nt_pending_add(nt, al) == 0) {
            al->stored_mono_ns = wd_clock_mono_ns();
            reply(nt, op->req, op->a->id, 0, NULL);
            nt_deliver_alert(nt, al);
        } else {
            /* Stored but no room in memory: it is delivered after a restart. */
            free(al);
            reply(nt, op->req, op->a->id, 0, NULL);
            wd_error("alert %s stored but not queued (out of memory)", op->a->id);
        }
    } else {
        reply(nt, op->req, op->a->id, 0, NULL);
    }
    free(op->a);
    free(op);
}

/* Takes a (heap). msg/len: its packed form, stored as is. */
static void accept_alert(nt_state *nt, bus_rep_request *req, proto_alert *a, const void *msg,
                         size_t len, uint32_t forced_routes) {
    count(nt, nt->m_received, proto_alert_severity_name(a->severity));
    if (!nt->loaded) {
        reply(nt, req, a->id, WD_EUNAVAIL, "starting: pending alerts are being loaded");
        free(a);
        return;
    }
    if (nt->n_pending >= (size_t)nt->conf.max_pending) {
        reply(nt, req, a->id, WD_EBUSY, "too many pending alerts; send again later");
        free(a);
        return;
    }
    intake_op *op = calloc(1, sizeof *op);
    if (!op) {
        reply(nt, req, a->id, WD_ENOMEM, "out of memory");
        free(a);
        return;
    }
    op->nt = nt;
    op->req = req;
    op->a = a;
    nt_dedup_key(a, op->key, sizeof op->key);
    const char *first;
    uint32_t n, routes = forced_routes ? forced_routes : nt_routes_for(nt, a);
    if (nt_pending_find(nt, a->id) == NULL &&
        nt_dedup_note(&nt->dedup, op->key, a, routes, wd_clock_mono_ns(), &first, &n) ==
            NT_DEDUP_MERGED) {
        /* A repeat: counted into the first alert's window, summed up when the
         * window ends (nt_worker.c). */
        wd_debug("alert %s merged into %s (%u repeats)", a->id, first, n);
        count(nt, nt->m_merged, NULL);
        reply(nt, req, a->id, 0, NULL);
        free(a);
        free(op);
        return;
    }
    op->dedup_new = true;
    op->routes = routes;
    if (routes == 0) {
        wd_warn("alert %s matches no channel: [%s] %s from %s", a->id,
                proto_alert_severity_name(a->severity), a->title, a->source);
        reply(nt, req, a->id, 0, NULL);
        free(a);
        free(op);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (!msg) {
        proto_header h = {.seq = ++nt->seq, .ts_ns = wd_clock_real_ns()};
        snprintf(h.sender, sizeof h.sender, "%s", nt->name);
        if (proto_alert_pack(&sb, &h, a) != 0) {
            wd_error("alert %s: does not pack", a->id);
            nt_dedup_forget(&nt->dedup, op->key, a->id);
            free(a);
            free(op);
            msgpack_sbuffer_destroy(&sb);
            return;
        }
        msg = sb.data, len = sb.size;
    }
    int rc = nt_store_put(nt, a->id, msg, len, routes, on_stored, op);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0)
        on_stored(nt, rc, false, op);
}

static void on_request(void *arg, bus_rep_request *req, const void *buf, size_t len,
                       uint64_t peer_uid, uint64_t peer_pid) {
    nt_state *nt = arg;
    char err[PROTO_ERROR_MAX + 1];
    (void)peer_uid, (void)peer_pid;
    proto_alert *a = malloc(sizeof *a);
    if (!a) {
        reply(nt, req, NULL, WD_ENOMEM, "out of memory");
        return;
    }
    int rc = proto_alert_unpack(buf, len, NULL, a, err, sizeof err);
    if (rc != 0) {
        /* The error names the field; it never echoes unchecked bytes. */
        count(nt, nt->m_rejected, NULL);
        wd_warn("alert refused: %s", err);
        reply(nt, req, a->id, rc, err);
        free(a);
        return;
    }
    accept_alert(nt, req, a, buf, len, 0);
}

void nt_intake_internal_routed(nt_state *nt, const proto_alert *a, uint32_t routes) {
    proto_alert *c = malloc(sizeof *c);
    if (!c)
        return;
    *c = *a;
    accept_alert(nt, NULL, c, NULL, 0, routes);
}

void nt_intake_internal(nt_state *nt, const proto_alert *a) { nt_intake_internal_routed(nt, a, 0); }

/* ---- supervisor events ---- */

static bool failed_mark(nt_state *nt, const char *worker, bool failed) {
    for (int i = 0; i < nt->n_failed_workers; i++) {
        if (strcmp(nt->failed_workers[i], worker) == 0) {
            if (!failed) {
                memmove(nt->failed_workers[i], nt->failed_workers[i + 1],
                        (size_t)(nt->n_failed_workers - i - 1) * sizeof nt->failed_workers[0]);
                nt->n_failed_workers--;
            }
            return true;
        }
    }
    if (failed && nt->n_failed_workers < (int)(sizeof nt->failed_workers / sizeof nt->failed_workers[0]))
        snprintf(nt->failed_workers[nt->n_failed_workers++], PROTO_NAME_MAX + 1, "%s", worker);
    return false;
}

bool nt_event_to_alert(nt_state *nt, const proto_event *ev, proto_alert *out) {
    int level = NT_RULE_OFF;
    const char *what = NULL;
    char title[PROTO_ALERT_TITLE_MAX + 1];
    if (strcmp(ev->kind, "breaker") == 0 && strcmp(ev->to, "open") == 0) {
        level = nt->conf.rule_breaker_open, what = "breaker_open";
        snprintf(title, sizeof title, "%s: crash-loop breaker opened", ev->worker);
    } else if (strcmp(ev->kind, "breaker") == 0 && strcmp(ev->to, "closed") == 0) {
        level = nt->conf.rule_breaker_closed, what = "breaker_closed";
        snprintf(title, sizeof title, "%s: crash-loop breaker closed", ev->worker);
    } else if (strcmp(ev->kind, "state") == 0 &&
               (strcmp(ev->to, "BACKOFF") == 0 || strcmp(ev->to, "FATAL") == 0)) {
        failed_mark(nt, ev->worker, true);
        level = nt->conf.rule_crash_loop, what = "crash_loop";
        snprintf(title, sizeof title, "%s: %s after a failure", ev->worker, ev->to);
    } else if (strcmp(ev->kind, "state") == 0 && strcmp(ev->to, "UNRESPONSIVE") == 0) {
        failed_mark(nt, ev->worker, true);
        level = nt->conf.rule_unresponsive, what = "unresponsive";
        snprintf(title, sizeof title, "%s: unresponsive (no heartbeat)", ev->worker);
    } else if (strcmp(ev->kind, "state") == 0 && strcmp(ev->to, "RUNNING") == 0 &&
               failed_mark(nt, ev->worker, false)) {
        level = nt->conf.rule_recovered, what = "recovered";
        snprintf(title, sizeof title, "%s: recovered (RUNNING again)", ev->worker);
    }
    if (level == NT_RULE_OFF || !what || !ev->worker[0])
        return false;
    memset(out, 0, sizeof *out);
    uint64_t now = wd_clock_real_ns();
    snprintf(out->id, sizeof out->id, "ev-%llx-%llu", (unsigned long long)now,
             (unsigned long long)++nt->seq);
    snprintf(out->source, sizeof out->source, "warden");
    out->severity = (proto_alert_severity)(level - NT_RULE_INFO);
    snprintf(out->title, sizeof out->title, "%s", title);
    snprintf(out->text, sizeof out->text, "%s -> %s: %s", ev->from, ev->to, ev->reason);
    out->time_ns = now;
    snprintf(out->dedup_key, sizeof out->dedup_key, "event:%.60s:%s", ev->worker, what);
    proto_alert_label_add(out, "worker", ev->worker);
    proto_alert_label_add(out, "event", what);
    return true;
}

static void on_event(void *arg, const void *buf, size_t len, uint64_t peer_pid) {
    nt_state *nt = arg;
    proto_envelope env;
    proto_event ev;
    proto_alert a;
    char err[256];
    (void)peer_pid;
    if (proto_envelope_unpack(buf, len, &env, err, sizeof err) != 0 ||
        env.type != PROTO_T_EVENT || proto_event_unpack(&env, &ev, err, sizeof err) != 0)
        return;
    if (strcmp(ev.worker, nt->name) == 0 && strcmp(ev.kind, "state") == 0)
        return; /* our own restarts are reported by whoever watches us */
    if (nt_event_to_alert(nt, &ev, &a))
        nt_intake_internal(nt, &a);
}

int nt_intake_start(nt_state *nt, char *err, size_t errlen) {
    /* Peers are not told apart (any local process may raise an alert; the
     * socket's mode decides who can): no uid/pid lookups. */
    const bus_rep_opts ro = {.contexts = NT_REP_CONTEXTS, .no_peer = true};
    int rc = bus_rep_open_opts(nt->loop, nt->listen_url, NT_REP_MODE, &ro, on_request, nt,
                               &nt->rep, err, errlen);
    if (rc != 0)
        return rc;
    if (nt->events_url[0] &&
        (rc = bus_sub_dial(nt->loop, nt->events_url, on_event, nt, &nt->events, err, errlen)) != 0)
        return rc;
    return 0;
}

void nt_intake_stop(nt_state *nt) {
    if (nt->rep)
        bus_rep_close(nt->rep);
    nt->rep = NULL;
    if (nt->events)
        bus_in_close(nt->events);
    nt->events = NULL;
}
