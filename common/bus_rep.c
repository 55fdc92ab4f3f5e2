/* bus REP server: n nng contexts (BUS_REP_CONTEXTS unless bus_rep_opts
 * says otherwise), each cycling
 * recv -> (loop thread) user callback -> reply send -> recv.
 *
 * A plain non-blocking send on a REP socket can fail and lose the reply, so
 * every reply goes out through its context's aio. The aio callbacks run on
 * nng's threads. A completed receive is queued for the loop (uv_async),
 * which runs the user callback; the context then belongs to the loop until
 * bus_rep_reply hands it back to nng with the send.
 *
 * A completed send re-arms the receive right there on the nng thread
 * instead of going through the loop: that is a context nng owns going from
 * one nng operation to the next, no user state. Measured with the
 * notifier's benchmark, the round trip through the loop cost one more nng
 * call on the loop thread per request (its lock, often a wake-up of an nng
 * thread that then preempted the loop) and a loop wake-up. Both sides take
 * rep->mtx, and a dead server (closed) re-arms nothing. */
#include "bus_int.h"
#include "log.h"
#include "proto.h"
#include "wd_error.h"
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/transport/ipc/ipc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

typedef enum {
    REQ_IDLE, /* no operation (closed, or before start) */
    REQ_RECV, /* waiting for a request */
    REQ_USER, /* handed to the user, waiting for bus_rep_reply */
    REQ_SEND, /* reply being sent */
} rep_req_state;

struct bus_rep_request {
    bus_rep *rep;
    nng_ctx ctx;
    nng_aio *aio;
    nng_msg *msg; /* the request while REQ_USER; its body is what the user got */
    /* Written by the loop (RECV -> USER -> SEND) and by nng threads (SEND ->
     * RECV, SEND -> IDLE, under rep->mtx); atomic for the readers of the
     * other side. */
    _Atomic(rep_req_state) state;
    bus_rep_request *next_done; /* completion queue link (under rep->mtx) */
};

struct bus_rep {
    uv_loop_t *loop;
    uv_async_t async;
    uv_timer_t watchdog; /* drives bus_lsn_check */
    atomic_int refs;     /* at close: 2 handles + the socket close */
    bus_lsn lsn;
    pthread_mutex_t mtx; /* guards done_head/done_tail and dead */
    bus_rep_request *done_head, *done_tail;
    bool dead; /* closed: aio callbacks neither queue nor wake the loop */
    nng_socket sock;
    bus_rep_cb cb;
    void *arg;
    bool closing;
    bool no_peer; /* the user does not want uid/pid: not looked up */
    int n_aios; /* aios allocated so far (for a partial open) */
    int n_reqs; /* contexts */
    bus_rep_request reqs[]; /* n_reqs */
};

/* nng thread, a reply's send ended: the context receives again (the loop
 * has nothing to do with it). Under rep->mtx with the server alive. */
static void rep_sent(bus_rep_request *req) {
    int rv = nng_aio_result(req->aio);
    nng_msg *m;
    if (rv != 0) {
        /* On failure the message stays with the aio (and with us). */
        if ((m = nng_aio_get_msg(req->aio)) != NULL)
            nng_msg_free(m);
        nng_aio_set_msg(req->aio, NULL);
        if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
            req->state = REQ_IDLE;
            return;
        }
        wd_debug("bus rep: reply not sent: %s", nng_strerror(rv));
    }
    /* nng never runs the callback from inside nng_ctx_recv (it goes
     * through its task queue), so holding rep->mtx here cannot deadlock. */
    req->state = REQ_RECV;
    nng_ctx_recv(req->ctx, req->aio);
}

/* nng thread: a receive ended: queue and wake the loop, nothing more; a
 * send ended: receive again (rep_sent). The wake-up is under the mutex so
 * that it can never follow the async handle's uv_close. */
static void rep_aio_cb(void *arg) {
    bus_rep_request *req = arg;
    bus_rep *rep = req->rep;
    pthread_mutex_lock(&rep->mtx);
    if (!rep->dead && req->state == REQ_SEND) {
        rep_sent(req);
    } else if (!rep->dead) {
        req->next_done = NULL;
        if (rep->done_tail != NULL)
            rep->done_tail->next_done = req;
        else
            rep->done_head = req;
        rep->done_tail = req;
        uv_async_send(&rep->async);
    }
    pthread_mutex_unlock(&rep->mtx);
}

static bus_rep_request *rep_pop_done(bus_rep *rep) {
    pthread_mutex_lock(&rep->mtx);
    bus_rep_request *req = rep->done_head;
    if (req != NULL) {
        rep->done_head = req->next_done;
        if (rep->done_head == NULL)
            rep->done_tail = NULL;
        req->next_done = NULL;
    }
    pthread_mutex_unlock(&rep->mtx);
    return req;
}

static void rep_start_recv(bus_rep_request *req) {
    req->state = REQ_RECV;
    nng_ctx_recv(req->ctx, req->aio);
}

static void rep_complete(bus_rep *rep, bus_rep_request *req) {
    int rv = nng_aio_result(req->aio);
    nng_msg *m;
    switch ((rep_req_state)atomic_load(&req->state)) {
    case REQ_RECV:
        if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
            req->state = REQ_IDLE;
            return;
        }
        if (rv != 0) {
            wd_debug("bus rep: receive failed: %s", nng_strerror(rv));
            rep_start_recv(req);
            return;
        }
        m = nng_aio_get_msg(req->aio);
        nng_aio_set_msg(req->aio, NULL);
        req->msg = m;
        req->state = REQ_USER;
        if (rep->no_peer)
            rep->cb(rep->arg, req, nng_msg_body(m), nng_msg_len(m), BUS_PEER_UNKNOWN,
                    BUS_PEER_UNKNOWN);
        else
            rep->cb(rep->arg, req, nng_msg_body(m), nng_msg_len(m),
                    bus_msg_peer(m, NNG_OPT_IPC_PEER_UID), bus_msg_peer(m, NNG_OPT_IPC_PEER_PID));
        return;
    case REQ_SEND: /* not reachable: rep_sent handles it on the nng thread */
    case REQ_IDLE:
    case REQ_USER:
        return; /* not reachable: only RECV and SEND have operations */
    }
}

static void rep_async_cb(uv_async_t *h) {
    bus_rep *rep = h->data;
    bus_rep_request *req;
    /* One at a time: a callback may close the server, after which nothing
     * queued may be touched. */
    while (!rep->closing && (req = rep_pop_done(rep)) != NULL)
        rep_complete(rep, req);
}

static void rep_watchdog_cb(uv_timer_t *t) {
    bus_rep *rep = t->data;
    bus_lsn_check(&rep->lsn);
}

static void rep_free_sync(bus_rep *rep) {
    for (int i = 0; i < rep->n_aios; i++)
        nng_aio_free(rep->reqs[i].aio);
    nng_close(rep->sock);
    pthread_mutex_destroy(&rep->mtx);
    free(rep);
}

int bus_rep_open(uv_loop_t *loop, const char *url, int mode, bus_rep_cb cb, void *arg,
                 bus_rep **out, char *err, size_t errlen) {
    return bus_rep_open_opts(loop, url, mode, NULL, cb, arg, out, err, errlen);
}

unsigned bus_rep_contexts(const bus_rep *rep) { return rep ? (unsigned)rep->n_reqs : 0; }

int bus_rep_open_opts(uv_loop_t *loop, const char *url, int mode, const bus_rep_opts *opts,
                      bus_rep_cb cb, void *arg, bus_rep **out, char *err, size_t errlen) {
    int rc, rv;
    if (loop == NULL || url == NULL || cb == NULL || out == NULL) {
        bus_seterr(err, errlen, "bus_rep_open: missing argument");
        return WD_EINVAL;
    }
    unsigned contexts = opts && opts->contexts ? opts->contexts : BUS_REP_CONTEXTS;
    if (contexts > BUS_REP_CONTEXTS_MAX) {
        bus_seterr(err, errlen, "%s: contexts must be at most %d, not %u", url,
                   BUS_REP_CONTEXTS_MAX, contexts);
        return WD_EINVAL;
    }
    bus_rep *rep = calloc(1, sizeof *rep + contexts * sizeof rep->reqs[0]);
    if (rep == NULL) {
        bus_seterr(err, errlen, "%s: out of memory", url);
        return WD_ENOMEM;
    }
    rep->loop = loop;
    rep->n_reqs = (int)contexts;
    rep->no_peer = opts && opts->no_peer;
    rep->cb = cb;
    rep->arg = arg;
    pthread_mutex_init(&rep->mtx, NULL);
    if ((rv = nng_rep0_open(&rep->sock)) != 0) {
        bus_seterr(err, errlen, "%s: open socket: %s", url, nng_strerror(rv));
        pthread_mutex_destroy(&rep->mtx);
        free(rep);
        return bus_map_nng(rv);
    }
    if ((rc = bus_sock_setup(rep->sock, url, err, errlen)) != 0)
        goto fail;
    for (int i = 0; i < rep->n_reqs; i++) {
        bus_rep_request *req = &rep->reqs[i];
        req->rep = rep;
        if ((rv = nng_ctx_open(&req->ctx, rep->sock)) != 0 ||
            (rv = nng_aio_alloc(&req->aio, rep_aio_cb, req)) != 0) {
            bus_seterr(err, errlen, "%s: context: %s", url, nng_strerror(rv));
            rc = bus_map_nng(rv);
            goto fail;
        }
        rep->n_aios++;
    }
    if ((rc = bus_lsn_open(&rep->lsn, rep->sock, url, mode, BUS_PROTO_REQ, err,
                           errlen)) != 0)
        goto fail;
    /* The handles come last: once they exist the object can only be freed
     * through their close callbacks. */
    if ((rv = uv_async_init(loop, &rep->async, rep_async_cb)) != 0) {
        bus_seterr(err, errlen, "%s: uv_async_init: %s", url, uv_strerror(rv));
        rc = WD_ESYS;
        goto fail;
    }
    rep->async.data = rep;
    uv_timer_init(loop, &rep->watchdog);
    rep->watchdog.data = rep;
    uv_timer_start(&rep->watchdog, rep_watchdog_cb, BUS_LSN_TICK_MS, BUS_LSN_TICK_MS);
    uv_unref((uv_handle_t *)&rep->watchdog); /* never keeps the loop alive alone */
    for (int i = 0; i < rep->n_reqs; i++)
        rep_start_recv(&rep->reqs[i]);
    *out = rep;
    return 0;
fail:
    rep_free_sync(rep);
    return rc;
}

int bus_rep_reply(bus_rep_request *req, const void *buf, size_t len) {
    nng_msg *m = NULL;
    int rc;
    if (req == NULL || (buf == NULL && len > 0))
        return WD_EINVAL;
    if (req->rep->closing)
        return WD_ECLOSED;
    if (req->state != REQ_USER)
        return WD_ESTATE;
    if (len > PROTO_MSG_MAX) {
        rc = WD_ETOOBIG;
        goto drop;
    }
    /* The reply is built before the request is freed: buf may point into it. */
    if (nng_msg_alloc(&m, 0) != 0 || (len > 0 && nng_msg_append(m, buf, len) != 0)) {
        rc = WD_ENOMEM;
        goto drop;
    }
    nng_msg_free(req->msg);
    req->msg = NULL;
    nng_aio_set_msg(req->aio, m);
    req->state = REQ_SEND;
    nng_ctx_send(req->ctx, req->aio);
    return 0;
drop:
    /* The request is consumed either way; the requester sees no reply. */
    if (m != NULL)
        nng_msg_free(m);
    nng_msg_free(req->msg);
    req->msg = NULL;
    rep_start_recv(req);
    return rc;
}

/* Loop thread (close callbacks) or closer thread (socket closed). */
static void rep_release(void *arg) {
    bus_rep *rep = arg;
    if (atomic_fetch_sub(&rep->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&rep->mtx);
    free(rep);
}

static void rep_on_close(uv_handle_t *h) { rep_release(h->data); }

/* Closer thread, before the socket closes: cancels every operation and
 * waits for its callback (which, the server being dead, does nothing).
 * Stopping first also keeps nng_close from meeting operations in flight. */
static void rep_stop_aios(void *arg) {
    bus_rep *rep = arg;
    for (int i = 0; i < rep->n_reqs; i++)
        nng_aio_stop(rep->reqs[i].aio);
}

/* Closer thread, after the socket closed. The loop no longer touches the
 * contexts, so their state is read here safely (handed over through the
 * closer's queue). */
static void rep_free_aios(void *arg) {
    bus_rep *rep = arg;
    for (int i = 0; i < rep->n_reqs; i++) {
        bus_rep_request *req = &rep->reqs[i];
        int rv = nng_aio_result(req->aio);
        nng_msg *m = nng_aio_get_msg(req->aio);
        /* A received request or an unsent reply is still ours; a sent reply
         * belongs to nng (which clears the aio's message anyway). */
        if (m != NULL &&
            ((req->state == REQ_RECV && rv == 0) || (req->state == REQ_SEND && rv != 0)))
            nng_msg_free(m);
        nng_aio_free(req->aio);
        req->aio = NULL;
    }
    rep_release(rep);
}

void bus_rep_close(bus_rep *rep) {
    if (rep == NULL || rep->closing)
        return;
    rep->closing = true;
    pthread_mutex_lock(&rep->mtx);
    rep->dead = true;
    rep->done_head = rep->done_tail = NULL;
    pthread_mutex_unlock(&rep->mtx);
    /* Requests the user still holds die with the server. */
    for (int i = 0; i < rep->n_reqs; i++) {
        bus_rep_request *req = &rep->reqs[i];
        if (req->state == REQ_USER) {
            nng_msg_free(req->msg);
            req->msg = NULL;
            req->state = REQ_IDLE;
        }
    }
    atomic_init(&rep->refs, 3);
    uv_close((uv_handle_t *)&rep->async, rep_on_close);
    uv_close((uv_handle_t *)&rep->watchdog, rep_on_close);
    bus_lsn_close(&rep->lsn);
    bus_close_later(rep->sock, rep_stop_aios, rep_free_aios, rep);
}
