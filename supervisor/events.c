/* State changes, breaker transitions and operator actions: kept in a ring
 * for `wardenctl events`, published on events.sock, and operator actions
 * appended to run_dir/audit.log as JSON lines. */
#include "sup.h"
#include "clock.h"
#include "log.h"
#include "text.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sup_event_emit(sup *s, const char *kind, const char *worker, const char *from,
                    const char *to, const char *reason) {
    sup_event_rec *r = &s->events_ring[s->events_seq % SUP_EVENTS_RING];
    r->seq = ++s->events_seq;
    r->real_ns = wd_clock_real_ns();
    wd_utf8_copy(r->ev.kind, sizeof r->ev.kind, kind);
    wd_utf8_copy(r->ev.worker, sizeof r->ev.worker, worker);
    wd_utf8_copy(r->ev.from, sizeof r->ev.from, from);
    wd_utf8_copy(r->ev.to, sizeof r->ev.to, to);
    wd_utf8_copy(r->ev.reason, sizeof r->ev.reason, reason);
    if (!s->events)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    proto_header h = {.seq = ++s->seq, .ts_ns = r->real_ns};
    snprintf(h.sender, sizeof h.sender, "warden");
    if (proto_event_pack(&sb, &h, &r->ev) == 0)
        bus_out_send(s->events, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

void sup_audit(sup *s, const char *action, const char *worker, const char *reason,
               uint64_t peer_uid, uint64_t peer_pid) {
    char ts[WD_TIME_STR_MAX];
    wd_clock_format(wd_clock_real_ns(), ts, sizeof ts);
    json_t *rec = json_pack("{s:s,s:s,s:s,s:s}", "ts", ts, "action", action, "worker",
                            worker ? worker : "", "reason", reason ? reason : "");
    if (!rec)
        return;
    if (peer_uid != BUS_PEER_UNKNOWN)
        json_object_set_new(rec, "peer_uid", json_integer((json_int_t)peer_uid));
    if (peer_pid != BUS_PEER_UNKNOWN)
        json_object_set_new(rec, "peer_pid", json_integer((json_int_t)peer_pid));
    char *line = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (!line)
        return;
    /* Plain words in warden's own log (its logfmt would mangle the JSON's
     * quotes); the JSON record goes to audit.log. */
    wd_info("audit: %s %s by uid %lld pid %lld%s%s", action, worker && *worker ? worker : "-",
            peer_uid != BUS_PEER_UNKNOWN ? (long long)peer_uid : -1LL,
            peer_pid != BUS_PEER_UNKNOWN ? (long long)peer_pid : -1LL,
            reason && *reason ? ": " : "", reason && *reason ? reason : "");
    if (s->audit_fd >= 0) {
        size_t n = strlen(line);
        line[n] = '\n'; /* json_dumps' NUL becomes the record's newline */
        ssize_t w = write(s->audit_fd, line, n + 1);
        if (w < 0)
            wd_warn("audit log write failed");
        line[n] = '\0';
    }
    free(line);
    sup_event_emit(s, "audit", worker, action, "", reason);
}
