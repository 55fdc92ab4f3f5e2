/* bus REQ client, asynchronous: one nng context + aio per outstanding request
 * (send, then receive the reply), completions handed to the loop thread
 * through a uv_async_t, as in bus_rep.c. */
#include "bus_int.h"
#include "clock.h"
#include "log.h"
#include "proto.h"
#include "wd_error.h"
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

typedef enum { OP_SEND, OP_RECV } req_op_state;

typedef struct req_op req_op;
struct req_op {
    bus_req *r;
    nng_ctx ctx;
    nng_aio *aio;
    bus_reply_cb cb;
    void *arg;
    req_op_state state;
    uint64_t deadline_ms; /* monotonic; 0 = no timeout */
    req_op *prev, *next;  /* outstanding list (loop thread only) */
    req_op *next_done;    /* completion queue (under r->mtx) */
};

struct bus_req {
    uv_loop_t *loop;
    uv_async_t async;
    atomic_int refs;     /* at close: the handle + the socket close */
    pthread_mutex_t mtx; /* guards done_head/done_tail and dead */
    req_op *done_head, *done_tail;
    bool dead; /* closed: aio callbacks neither queue nor wake the loop */
    req_op *ops; /* outstanding requests */
    nng_socket sock;
    /* Connected pipes, kept by nng's pipe callbacks: a request that times
     * out while nothing is connected is reported as WD_EUNAVAIL. */
    atomic_int npipes;
    bool closing;
};

static void req_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg) {
    bus_req *r = arg;
    (void)p;
    if (ev == NNG_PIPE_EV_ADD_POST)
        atomic_fetch_add(&r->npipes, 1);
    else if (ev == NNG_PIPE_EV_REM_POST && atomic_fetch_sub(&r->npipes, 1) <= 0)
        atomic_store(&r->npipes, 0);
}

/* nng thread: queue and wake the loop, nothing more (under the mutex, so
 * that a wake-up never follows the async handle's uv_close). */
static void req_aio_cb(void *arg) {
    req_op *op = arg;
    bus_req *r = op->r;
    pthread_mutex_lock(&r->mtx);
    if (!r->dead) {
        op->next_done = NULL;
        if (r->done_tail != NULL)
            r->done_tail->next_done = op;
        else
            r->done_head = op;
        r->done_tail = op;
        uv_async_send(&r->async);
    }
    pthread_mutex_unlock(&r->mtx);
}

static req_op *req_pop_done(bus_req *r) {
    pthread_mutex_lock(&r->mtx);
    req_op *op = r->done_head;
    if (op != NULL) {
        r->done_head = op->next_done;
        if (r->done_head == NULL)
            r->done_tail = NULL;
        op->next_done = NULL;
    }
    pthread_mutex_unlock(&r->mtx);
    return op;
}

static void req_unlink(bus_req *r, req_op *op) {
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        r->ops = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    op->prev = op->next = NULL;
}

static void req_op_free(req_op *op) {
    if (op->aio != NULL)
        nng_aio_free(op->aio); /* waits for a running callback */
    nng_ctx_close(op->ctx);
    free(op);
}

/* Removes op, frees its nng objects, runs its callback once, frees it. The
 * nng objects go first: the callback may close r, whose socket then closes
 * on the closer thread, and nng 1.5.2 does not survive a context closed on
 * one thread while its socket closes on another. */
static void req_finish(bus_req *r, req_op *op, int status, const void *buf, size_t len) {
    bus_reply_cb cb = op->cb;
    void *arg = op->arg;
    req_unlink(r, op);
    req_op_free(op);
    cb(arg, status, buf, len);
}

static int req_status(bus_req *r, int rv) {
    if (rv == NNG_ETIMEDOUT && atomic_load(&r->npipes) == 0)
        return WD_EUNAVAIL;
    return bus_map_nng(rv);
}

static void req_complete(bus_req *r, req_op *op) {
    int rv = nng_aio_result(op->aio);
    nng_msg *m = nng_aio_get_msg(op->aio);
    nng_aio_set_msg(op->aio, NULL);
    if (op->state == OP_SEND) {
        if (rv == 0) {
            /* nng took the request; wait for the reply in what is left. */
            if (op->deadline_ms > 0) {
                uint64_t now = wd_clock_mono_ms();
                nng_aio_set_timeout(op->aio,
                                    bus_duration(now < op->deadline_ms ? op->deadline_ms - now : 1));
            }
            op->state = OP_RECV;
            nng_ctx_recv(op->ctx, op->aio);
            return;
        }
        if (m != NULL)
            nng_msg_free(m); /* a failed send leaves the message with us */
        req_finish(r, op, req_status(r, rv), NULL, 0);
        return;
    }
    if (rv != 0) {
        req_finish(r, op, req_status(r, rv), NULL, 0);
        return;
    }
    req_finish(r, op, 0, nng_msg_body(m), nng_msg_len(m));
    nng_msg_free(m);
}

static void req_async_cb(uv_async_t *h) {
    bus_req *r = h->data;
    req_op *op;
    while (!r->closing && (op = req_pop_done(r)) != NULL)
        req_complete(r, op);
}

int bus_req_dial(uv_loop_t *loop, const char *url, bus_req **out, char *err, size_t errlen) {
    int rc, rv;
    if (loop == NULL || url == NULL || out == NULL) {
        bus_seterr(err, errlen, "bus_req_dial: missing argument");
        return WD_EINVAL;
    }
    bus_req *r = calloc(1, sizeof *r);
    if (r == NULL) {
        bus_seterr(err, errlen, "%s: out of memory", url);
        return WD_ENOMEM;
    }
    r->loop = loop;
    atomic_init(&r->npipes, 0);
    pthread_mutex_init(&r->mtx, NULL);
    if ((rv = nng_req0_open(&r->sock)) != 0) {
        bus_seterr(err, errlen, "%s: open socket: %s", url, nng_strerror(rv));
        pthread_mutex_destroy(&r->mtx);
        free(r);
        return bus_map_nng(rv);
    }
    if ((rc = bus_sock_setup(r->sock, url, err, errlen)) != 0)
        goto fail;
    /* A resent command could run twice (commands are not idempotent); a
     * caller that wants a retry sends again after its timeout. */
    nng_socket_set_ms(r->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    if ((rv = nng_pipe_notify(r->sock, NNG_PIPE_EV_ADD_POST, req_pipe_cb, r)) != 0 ||
        (rv = nng_pipe_notify(r->sock, NNG_PIPE_EV_REM_POST, req_pipe_cb, r)) != 0) {
        bus_seterr(err, errlen, "%s: pipe notify: %s", url, nng_strerror(rv));
        rc = bus_map_nng(rv);
        goto fail;
    }
    if ((rc = bus_dial_async(r->sock, url, err, errlen)) != 0)
        goto fail;
    if ((rv = uv_async_init(loop, &r->async, req_async_cb)) != 0) {
        bus_seterr(err, errlen, "%s: uv_async_init: %s", url, uv_strerror(rv));
        rc = WD_ESYS;
        goto fail;
    }
    r->async.data = r;
    *out = r;
    return 0;
fail:
    nng_close(r->sock); /* waits for pipe callbacks, which touch r */
    pthread_mutex_destroy(&r->mtx);
    free(r);
    return rc;
}

int bus_req_send(bus_req *r, const void *buf, size_t len, uint64_t timeout_ms, bus_reply_cb cb,
                 void *arg) {
    nng_msg *m = NULL;
    int rv;
    if (r == NULL || cb == NULL || (buf == NULL && len > 0))
        return WD_EINVAL;
    if (r->closing)
        return WD_ECLOSED;
    if (len > PROTO_MSG_MAX)
        return WD_ETOOBIG;
    req_op *op = calloc(1, sizeof *op);
    if (op == NULL)
        return WD_ENOMEM;
    op->r = r;
    op->cb = cb;
    op->arg = arg;
    if ((rv = nng_ctx_open(&op->ctx, r->sock)) != 0) {
        free(op);
        return bus_map_nng(rv);
    }
    if ((rv = nng_aio_alloc(&op->aio, req_aio_cb, op)) != 0 || (rv = nng_msg_alloc(&m, 0)) != 0 ||
        (len > 0 && (rv = nng_msg_append(m, buf, len)) != 0)) {
        if (m != NULL)
            nng_msg_free(m);
        req_op_free(op);
        return bus_map_nng(rv);
    }
    op->deadline_ms = timeout_ms > 0 ? wd_clock_mono_ms() + timeout_ms : 0;
    nng_aio_set_timeout(op->aio, bus_duration(timeout_ms));
    nng_aio_set_msg(op->aio, m);
    op->state = OP_SEND;
    op->next = r->ops;
    if (r->ops != NULL)
        r->ops->prev = op;
    r->ops = op;
    nng_ctx_send(op->ctx, op->aio);
    return 0;
}

/* Loop thread (close callback) or closer thread (socket closed). */
static void req_release(void *arg) {
    bus_req *r = arg;
    if (atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&r->mtx);
    free(r);
}

static void req_on_close(uv_handle_t *h) { req_release(h->data); }

/* Closer thread, before the socket closes: cancel every operation and wait
 * for its callback (which does nothing now), so nng_close meets none. */
static void req_stop_aios(void *arg) {
    bus_req *r = arg;
    for (req_op *op = r->ops; op != NULL; op = op->next)
        nng_aio_stop(op->aio);
}

/* Closer thread, after the socket closed: the loop no longer touches the
 * operations (handed over through the closer's queue). */
static void req_free_ops(void *arg) {
    bus_req *r = arg;
    req_op *op;
    while ((op = r->ops) != NULL) {
        r->ops = op->next;
        int rv = nng_aio_result(op->aio);
        nng_msg *m = nng_aio_get_msg(op->aio);
        nng_aio_set_msg(op->aio, NULL);
        /* A sent request belongs to nng; an unsent one or a reply is ours. */
        if (m != NULL && !(op->state == OP_SEND && rv == 0))
            nng_msg_free(m);
        nng_aio_free(op->aio);
        free(op);
    }
    req_release(r);
}

void bus_req_close(bus_req *r) {
    if (r == NULL || r->closing)
        return;
    r->closing = true;
    pthread_mutex_lock(&r->mtx);
    r->dead = true;
    r->done_head = r->done_tail = NULL;
    pthread_mutex_unlock(&r->mtx);
    /* Every outstanding callback runs now, with WD_ECLOSED; the operations
     * themselves are cancelled and freed with the socket, in the background.
     * A callback may call bus_req_send (WD_ECLOSED) or bus_req_close (no-op). */
    for (req_op *op = r->ops; op != NULL; op = op->next) {
        bus_reply_cb cb = op->cb;
        op->cb = NULL;
        if (cb != NULL)
            cb(op->arg, WD_ECLOSED, NULL, 0);
    }
    atomic_init(&r->refs, 2);
    uv_close((uv_handle_t *)&r->async, req_on_close);
    bus_close_later(r->sock, req_stop_aios, req_free_ops, r);
}
