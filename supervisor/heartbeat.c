/* Heartbeat intake: READY and heartbeats pushed by workers on
 * heartbeat.sock. A message is accepted only from the process the supervisor
 * started under that name (peer pid checked when the transport reports it),
 * so one worker cannot keep another alive; everything else is counted and
 * dropped. */
#include "sup.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"
#include <stdlib.h>
#include <string.h>

#define HB_REJECT_LOG_EVERY 100 /* log the first and then every Nth rejection */

static void hb_reject(sup *s, sup_child *c, const char *why, const char *detail) {
    s->hb_rejected++;
    if (c)
        c->hb_rejected++;
    if (s->hb_rejected % HB_REJECT_LOG_EVERY == 1)
        wd_warn("heartbeat rejected (%llu so far): %s%s%s", (unsigned long long)s->hb_rejected,
                why, detail ? ": " : "", detail ? detail : "");
}

static void hb_on_heartbeat(sup_child *c, const proto_envelope *env) {
    proto_heartbeat *hb = c->hb ? c->hb : malloc(sizeof *hb);
    char err[256];
    if (!hb)
        return;
    c->hb = hb;
    if (proto_heartbeat_unpack(env, hb, err, sizeof err) != 0) {
        hb_reject(c->owner, c, "malformed heartbeat", err);
        memset(hb, 0, sizeof *hb);
        return;
    }
    c->hb_count++;
    c->last_hb_ns = wd_clock_mono_ns();
    c->progress = hb->progress;
    c->loop_lag_us = hb->loop_lag_us;
    sup_fsm_heartbeat_seen(c);
}

void sup_heartbeat_on_msg(void *arg, const void *buf, size_t len, uint64_t peer_pid) {
    sup *s = arg;
    proto_envelope env;
    char err[256];
    if (proto_envelope_unpack(buf, len, &env, err, sizeof err) != 0) {
        hb_reject(s, NULL, "malformed message", err);
        return;
    }
    sup_child *c = sup_child_find(s, env.hdr.sender);
    if (!c) {
        hb_reject(s, NULL, "unknown sender", env.hdr.sender);
        return;
    }
    if (!c->conf->is_worker || !c->proc) {
        hb_reject(s, c, "sender has no live worker process", env.hdr.sender);
        return;
    }
    if (peer_pid != BUS_PEER_UNKNOWN && peer_pid != (uint64_t)c->pid) {
        hb_reject(s, c, "pid does not match the worker's", env.hdr.sender);
        return;
    }
    if (env.type == PROTO_T_HEARTBEAT) {
        hb_on_heartbeat(c, &env);
        return;
    }
    if (env.type != PROTO_T_READY) {
        hb_reject(s, c, "unexpected message type on heartbeat socket", env.hdr.sender);
        return;
    }
    proto_ready r;
    if (proto_ready_unpack(&env, &r, err, sizeof err) != 0) {
        hb_reject(s, c, "malformed READY", err);
        return;
    }
    if (peer_pid == BUS_PEER_UNKNOWN && r.pid != (uint32_t)c->pid) {
        hb_reject(s, c, "READY pid does not match the worker's", env.hdr.sender);
        return;
    }
    sup_fsm_dispatch(c, SUP_EV_READY);
}
