/* bus: nng sockets driven from a libuv loop. Every callback below runs on the
 * loop thread; nng's own threads only hand work over (uv_async_t) and never
 * touch caller state. All sockets set NNG_OPT_RECVMAXSZ to PROTO_MSG_MAX.
 * For ipc:// listeners, `mode` (e.g. 0600) is applied to the socket file
 * (NNG_OPT_IPC_PERMISSIONS) and a stale socket file is replaced.
 *
 * Close is asynchronous as in libuv: *_close() stops callbacks at once and
 * frees the object once its handles' close callbacks have run. It may be
 * called from the object's own callbacks.
 *
 * Listener watchdog (ipc:// only): nng 1.5.2 can lose a listener for good when
 * a peer disconnects during the SP handshake (nng issue #1518). Every
 * listener dials itself twice a second and is re-created when its own
 * probe connects but never reaches the socket; peers then see their
 * connection drop and redial. Its timer is unref'd. */
#ifndef WD_BUS_H
#define WD_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define BUS_PEER_UNKNOWN UINT64_MAX
#define BUS_REP_CONTEXTS 8 /* concurrent requests a REP server holds (bus_rep_open) */
#define BUS_REP_CONTEXTS_MAX 1024 /* bus_rep_opts.contexts upper bound */

/* ---- REP server (control.sock, worker-NAME.sock), nng_ctx + nng_aio ---- */
typedef struct bus_rep bus_rep;
typedef struct bus_rep_request bus_rep_request; /* one pending request */

/* A request arrived. The callee must call bus_rep_reply(req, ...) exactly once,
 * now or later (the request stays valid until then, or until bus_rep_close).
 * buf stays valid until the reply. */
typedef void (*bus_rep_cb)(void *arg, bus_rep_request *req, const void *buf, size_t len,
                           uint64_t peer_uid, uint64_t peer_pid);

int bus_rep_open(uv_loop_t *loop, const char *url, int mode, bus_rep_cb cb, void *arg,
                 bus_rep **out, char *err, size_t errlen);
/* Options of bus_rep_open_opts; zeroed is bus_rep_open's behaviour. */
typedef struct {
    /* Requests held at once, 1..BUS_REP_CONTEXTS_MAX; 0: BUS_REP_CONTEXTS.
     * A server that answers later (after a store round trip) holds as many
     * as it wants in flight: requests beyond them wait in nng unread. */
    unsigned contexts;
    /* The callback gets BUS_PEER_UNKNOWN for uid and pid: two lookups
     * (getsockopt) fewer per request, for a server that never asks. */
    bool no_peer;
} bus_rep_opts;

/* bus_rep_open with options (opts may be NULL). WD_EINVAL (err says which)
 * for contexts out of range. */
int bus_rep_open_opts(uv_loop_t *loop, const char *url, int mode, const bus_rep_opts *opts,
                      bus_rep_cb cb, void *arg, bus_rep **out, char *err, size_t errlen);
/* Requests the server holds at once (its contexts). */
unsigned bus_rep_contexts(const bus_rep *rep);
/* Consumes the request even on error (WD_ETOOBIG over PROTO_MSG_MAX, WD_ENOMEM:
 * the requester then gets no reply); WD_ECLOSED after bus_rep_close. */
int bus_rep_reply(bus_rep_request *req, const void *buf, size_t len);
void bus_rep_close(bus_rep *rep);

/* ---- PULL listener (heartbeat.sock) and SUB dialer, via NNG_OPT_RECVFD + uv_poll ---- */
typedef struct bus_in bus_in;
typedef void (*bus_msg_cb)(void *arg, const void *buf, size_t len, uint64_t peer_pid);

int bus_pull_listen(uv_loop_t *loop, const char *url, int mode, bus_msg_cb cb, void *arg,
                    bus_in **out, char *err, size_t errlen);
/* Subscribes to everything published on url; redials on its own. */
int bus_sub_dial(uv_loop_t *loop, const char *url, bus_msg_cb cb, void *arg, bus_in **out,
                 char *err, size_t errlen);
void bus_in_close(bus_in *in);

/* ---- PUB listener and PUSH dialer: sends never block; a message that cannot
 * be queued is dropped and counted. ---- */
typedef struct bus_out bus_out;
int bus_pub_listen(const char *url, int mode, bus_out **out, char *err, size_t errlen);
int bus_push_dial(const char *url, bus_out **out, char *err, size_t errlen);
/* Returns 0, or WD_EBUSY when dropped (WD_ETOOBIG over PROTO_MSG_MAX; counted
 * too). A PUB listener's watchdog (see below) runs from here. */
int bus_out_send(bus_out *o, const void *buf, size_t len);
uint64_t bus_out_dropped(const bus_out *o);
/* Connections established so far (PUSH: completed dials; PUB: subscribers,
 * the listener watchdog's probes included).
 * A message sent just before a connection broke may be lost with it; a
 * sender that must get one message through (READY) sends it again when this
 * grows. */
uint64_t bus_out_connects(const bus_out *o);
void bus_out_close(bus_out *o); /* no loop handles */

/* ---- REQ client, asynchronous (supervisor -> worker-NAME.sock) ---- */
typedef struct bus_req bus_req;
/* status is 0 with the reply, or a negative wd_errno (WD_ETIMEDOUT, WD_EUNAVAIL). */
typedef void (*bus_reply_cb)(void *arg, int status, const void *buf, size_t len);

int bus_req_dial(uv_loop_t *loop, const char *url, bus_req **out, char *err, size_t errlen);
/* Sends one request; cb runs exactly once on the loop thread, unless this call
 * returns an error. Several requests may be outstanding. timeout_ms 0 = none.
 * A timeout while no connection was ever up is WD_EUNAVAIL; a connection
 * lost while waiting is WD_EUNAVAIL too (requests are never resent, since a
 * command may not be idempotent). */
int bus_req_send(bus_req *r, const void *buf, size_t len, uint64_t timeout_ms, bus_reply_cb cb,
                 void *arg);
/* Outstanding requests' callbacks run with WD_ECLOSED before it returns. */
void bus_req_close(bus_req *r);

/* Sockets are closed on a background thread, one after the other (nng_close
 * can hang for good in nng 1.5.2, see bus_int.h; the loop must not, and
 * after such a hang later closes never finish: WD_ETIMEDOUT below). A listener's address is free
 * once its socket is closed. This waits (up to timeout_ms) until every
 * socket given to *_close() so far is closed: before listening again on the
 * same address, before exit, before nng_fini(). 0 or WD_ETIMEDOUT. */
int bus_close_drain(uint64_t timeout_ms);

/* ---- blocking helpers for command-line tools (no loop) ---- */
/* One request/reply. On success *reply is malloc'ed (caller frees). Returns
 * WD_EUNAVAIL when nothing listens at url, WD_ETIMEDOUT on no answer. */
int bus_call_sync(const char *url, const void *req, size_t len, uint64_t timeout_ms,
                  void **reply, size_t *reply_len);

#endif
