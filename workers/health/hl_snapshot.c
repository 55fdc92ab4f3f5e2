/* The loop side: asks the supervisor for its status once per snapshot_ttl
 * (never more often, however many probes arrive), follows events.sock, and
 * publishes a new hl_view after each answer. Workers' breaker histories
 * (`call W breakers`) are fetched only while someone reads
 * /api/circuit-breakers/history, at most once per history_ttl. */
#include "hl.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    hl *h;
    hl_ctl_cb cb;
    void *arg;
} hl_call;

static void on_ctl_reply(void *arg, int status, const void *buf, size_t len) {
    hl_call *call = arg;
    hl *h = call->h;
    proto_envelope env;
    proto_ctl_reply rep;
    char err[PROTO_ERROR_MAX + 1] = "";
    json_t *data = NULL;
    if (status == 0 && (status = proto_envelope_unpack(buf, len, &env, err, sizeof err)) == 0 &&
        (env.type != PROTO_T_CTL_REPLY ||
         (status = proto_ctl_reply_unpack(&env, &rep, err, sizeof err)) != 0)) {
        if (status == 0) {
            status = WD_EPROTO;
            snprintf(err, sizeof err, "expected a control reply, got message type %d",
                     (int)env.type);
        }
    }
    if (status == 0) {
        status = rep.status;
        snprintf(err, sizeof err, "%s", rep.error);
        if (rep.data_len > 0) {
            json_error_t jerr;
            data = json_loadb(rep.data, rep.data_len, JSON_DECODE_ANY, &jerr);
        }
    } else if (err[0] == '\0') {
        snprintf(err, sizeof err, "%s", wd_strerror(status));
    }
    call->cb(h, call->arg, status, err, data);
    json_decref(data);
    free(call);
}

int hl_ctl_send(hl *h, const proto_ctl_request *req, uint64_t timeout_ms, hl_ctl_cb cb, void *arg) {
    msgpack_sbuffer sb;
    proto_header hdr = {.seq = 0, .ts_ns = wd_clock_real_ns()};
    static uint64_t seq;
    hdr.seq = ++seq;
    snprintf(hdr.sender, sizeof hdr.sender, "%s", wrk_name(h->ctx));
    if (h->ctl == NULL)
        return WD_ECLOSED;
    hl_call *call = calloc(1, sizeof *call);
    if (call == NULL)
        return WD_ENOMEM;
    *call = (hl_call){.h = h, .cb = cb, .arg = arg};
    msgpack_sbuffer_init(&sb);
    int rc = proto_ctl_request_pack(&sb, &hdr, req);
    if (rc == 0)
        rc = bus_req_send(h->ctl, sb.data, sb.size, timeout_ms, on_ctl_reply, call);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0)
        free(call);
    return rc;
}

/* ---- status snapshots ---- */

static void publish(hl *h) {
    hl_self_stats self = {.snapshots_total = h->snapshots_total,
                          .snapshot_errors_total = h->snapshot_errors_total,
                          .supervisor_up = true};
    pthread_mutex_lock(&h->sh.mu);
    self.http_requests_total = h->sh.http_requests;
    pthread_mutex_unlock(&h->sh.mu);
    hl_event ring[HL_EVENTS_KEEP];
    int n = 0;
    for (int i = 0; i < h->n_events; i++) /* oldest first */
        ring[n++] = h->events_ring[(h->events_next - h->n_events + i + HL_EVENTS_KEEP) %
                                   HL_EVENTS_KEEP];
    hl_view *v = hl_view_build(h->last_status, h->details, ring, n, &self,
                               h->conf.heartbeat_max_age_ms);
    if (v == NULL) {
        wd_warn("could not build a view (out of memory); serving the previous one");
        return;
    }
    pthread_mutex_lock(&h->sh.mu);
    hl_view *old = h->sh.view;
    h->sh.view = v;
    pthread_mutex_unlock(&h->sh.mu);
    hl_view_unref(old);
}

static void on_status(hl *h, void *arg, int status, const char *error, json_t *data) {
    (void)arg;
    h->status_inflight = false;
    if (h->stopping)
        return;
    if (status != 0 || !json_is_object(data)) {
        h->snapshot_errors_total++;
        pthread_mutex_lock(&h->sh.mu);
        snprintf(h->sh.sup_error, sizeof h->sh.sup_error, "status request failed: %s",
                 status != 0 ? error : "reply without data");
        pthread_mutex_unlock(&h->sh.mu);
        wd_debug("status request failed: %s", error);
        return;
    }
    h->snapshots_total++;
    json_decref(h->last_status);
    h->last_status = json_incref(data);
    pthread_mutex_lock(&h->sh.mu);
    h->sh.last_ok_ns = wd_clock_mono_ns();
    h->sh.sup_error[0] = '\0';
    pthread_mutex_unlock(&h->sh.mu);
    publish(h);
}

/* One worker's `breakers` reply. */
static void on_details(hl *h, void *arg, int status, const char *error, json_t *data) {
    char *name = arg;
    h->details_inflight--;
    if (!h->stopping && status == 0 && json_is_array(json_object_get(data, "breakers"))) {
        uint64_t now = wd_clock_real_ns();
        json_t *brks = json_object_get(data, "breakers"), *b, *t;
        size_t i, j;
        /* Ages are relative to this reply: stamp each transition now. */
        json_array_foreach(brks, i, b) {
            json_array_foreach(json_object_get(b, "history"), j, t) {
                const json_t *ms = json_object_get(t, "ago_ms");
                double ago = json_is_number(ms) ? json_number_value(ms) / 1000.0
                                                : json_number_value(json_object_get(t, "ago_s"));
                json_object_set_new(t, "at_real_ns", json_integer((json_int_t)(now - (uint64_t)(ago * 1e9))));
            }
        }
        if (h->details == NULL)
            h->details = json_object();
        json_object_set(h->details, name, brks);
    } else if (status != 0) {
        wd_debug("breakers of %s: %s", name, error);
    }
    free(name);
}

static void fetch_details(hl *h, uint64_t now) {
    const json_t *w;
    size_t i;
    h->details_ns = now;
    json_array_foreach(json_object_get(h->last_status, "workers"), i, w) {
        const char *name = json_string_value(json_object_get(w, "name"));
        if (name == NULL || json_array_size(json_object_get(w, "breakers")) == 0 ||
            !json_is_integer(json_object_get(w, "pid")))
            continue;
        proto_ctl_request req;
        memset(&req, 0, sizeof req);
        snprintf(req.cmd, sizeof req.cmd, "call");
        snprintf(req.target, sizeof req.target, "%s", name);
        snprintf(req.args[0].key, sizeof req.args[0].key, "command");
        snprintf(req.args[0].val, sizeof req.args[0].val, "breakers");
        req.n_args = 1;
        char *arg = strdup(name);
        if (arg == NULL)
            return;
        if (hl_ctl_send(h, &req, h->conf.probe_deadline_ms, on_details, arg) == 0)
            h->details_inflight++;
        else
            free(arg);
    }
}

static void on_snap_timer(uv_timer_t *t) {
    hl *h = t->data;
    uint64_t now = wd_clock_mono_ns();
    if (!h->status_inflight) {
        proto_ctl_request req;
        memset(&req, 0, sizeof req);
        snprintf(req.cmd, sizeof req.cmd, "status");
        if (hl_ctl_send(h, &req, h->conf.probe_deadline_ms, on_status, NULL) == 0) {
            h->status_inflight = true;
            h->status_sent_ns = now;
        }
    }
    pthread_mutex_lock(&h->sh.mu);
    uint64_t wanted = h->sh.history_wanted_ns;
    pthread_mutex_unlock(&h->sh.mu);
    if (wanted != 0 && now - wanted < HL_HISTORY_WANT_NS && h->details_inflight == 0 &&
        now - h->details_ns >= h->conf.history_ttl_ms * WD_NS_PER_MS)
        fetch_details(h, now);
}

static void on_beat(uv_timer_t *t) {
    hl *h = t->data;
    pthread_mutex_lock(&h->sh.mu);
    h->sh.loop_beat_ns = wd_clock_mono_ns();
    pthread_mutex_unlock(&h->sh.mu);
}

/* ---- events ---- */

static void on_event(void *arg, const void *buf, size_t len, uint64_t peer_pid) {
    hl *h = arg;
    proto_envelope env;
    proto_event ev;
    char err[PROTO_ERROR_MAX + 1];
    (void)peer_pid;
    if (proto_envelope_unpack(buf, len, &env, err, sizeof err) != 0 ||
        env.type != PROTO_T_EVENT || proto_event_unpack(&env, &ev, err, sizeof err) != 0)
        return;
    hl_event *e = &h->events_ring[h->events_next];
    h->events_next = (h->events_next + 1) % HL_EVENTS_KEEP;
    if (h->n_events < HL_EVENTS_KEEP)
        h->n_events++;
    wd_clock_format(env.hdr.ts_ns, e->ts, sizeof e->ts);
    snprintf(e->kind, sizeof e->kind, "%s", ev.kind);
    snprintf(e->worker, sizeof e->worker, "%s", ev.worker);
    snprintf(e->from, sizeof e->from, "%s", ev.from);
    snprintf(e->to, sizeof e->to, "%s", ev.to);
    snprintf(e->reason, sizeof e->reason, "%s", ev.reason);
}

int hl_snapshot_start(hl *h) {
    char err[256] = "";
    uv_loop_t *loop = wrk_loop(h->ctx);
    int rc = bus_req_dial(loop, h->control_url, &h->ctl, err, sizeof err);
    if (rc != 0) {
        wd_error("control socket %s: %s", h->control_url, err);
        return rc;
    }
    if (bus_sub_dial(loop, h->events_url, on_event, h, &h->events, err, sizeof err) != 0)
        wd_warn("events socket %s: %s; running without events", h->events_url, err);
    uv_timer_init(loop, &h->snap_timer);
    uv_timer_init(loop, &h->beat_timer);
    uv_async_init(loop, &h->ops_async, hl_api_on_async);
    h->snap_timer.data = h->beat_timer.data = h->ops_async.data = h;
    h->handles_on = true;
    on_beat(&h->beat_timer);
    uv_timer_start(&h->snap_timer, on_snap_timer, 0, h->conf.snapshot_ttl_ms);
    uv_timer_start(&h->beat_timer, on_beat, HL_LOOP_BEAT_MS, HL_LOOP_BEAT_MS);
    return 0;
}

void hl_snapshot_stop(hl *h) {
    h->stopping = true;
    pthread_mutex_lock(&h->sh.mu);
    h->sh.closing = true;
    pthread_mutex_unlock(&h->sh.mu);
    hl_api_drain(h);
    if (h->ctl != NULL) {
        bus_req *r = h->ctl;
        h->ctl = NULL;
        bus_req_close(r); /* pending calls' callbacks run now, with WD_ECLOSED */
    }
    if (h->events != NULL) {
        bus_in_close(h->events);
        h->events = NULL;
    }
    if (h->handles_on) {
        uv_close((uv_handle_t *)&h->snap_timer, NULL);
        uv_close((uv_handle_t *)&h->beat_timer, NULL);
        uv_close((uv_handle_t *)&h->ops_async, NULL);
        h->handles_on = false;
    }
}
