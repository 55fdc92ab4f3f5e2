/* bus PULL listener and SUB dialer: nng's receive notification fd
 * (NNG_OPT_RECVFD) is watched with uv_poll, and each readable event drains
 * the socket with non-blocking receives, all on the loop thread. */
#include "bus_int.h"
#include "log.h"
#include "wd_error.h"
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/transport/ipc/ipc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct bus_in {
    uv_poll_t poll;
    uv_timer_t watchdog; /* listeners only: drives bus_lsn_check */
    bool listening;
    int open_handles;  /* uv handles initialised */
    atomic_int refs;   /* at close: handles to be closed + the socket close */
    bus_lsn lsn;
    nng_socket sock;
    bus_msg_cb cb;
    void *arg;
    bool closing;
};

static void in_poll_cb(uv_poll_t *h, int status, int events) {
    bus_in *in = h->data;
    (void)events;
    if (status < 0) {
        wd_warn("bus in: poll: %s", uv_strerror(status));
        return;
    }
    for (int i = 0; i < BUS_IN_BATCH_MAX && !in->closing; i++) {
        nng_msg *m;
        int rv = nng_recvmsg(in->sock, &m, NNG_FLAG_NONBLOCK);
        if (rv != 0) {
            if (rv != NNG_EAGAIN && rv != NNG_ECLOSED)
                wd_debug("bus in: receive: %s", nng_strerror(rv));
            return;
        }
        in->cb(in->arg, nng_msg_body(m), nng_msg_len(m), bus_msg_peer(m, NNG_OPT_IPC_PEER_PID));
        nng_msg_free(m);
    }
}

static void in_watchdog_cb(uv_timer_t *t) {
    bus_in *in = t->data;
    bus_lsn_check(&in->lsn);
}

static int in_start(uv_loop_t *loop, bus_in *in, const char *url, char *err, size_t errlen) {
    int fd, rv;
    if ((rv = nng_socket_get_int(in->sock, NNG_OPT_RECVFD, &fd)) != 0) {
        bus_seterr(err, errlen, "%s: get %s: %s", url, NNG_OPT_RECVFD, nng_strerror(rv));
        return bus_map_nng(rv);
    }
    if ((rv = uv_poll_init(loop, &in->poll, fd)) != 0) {
        bus_seterr(err, errlen, "%s: uv_poll_init: %s", url, uv_strerror(rv));
        return WD_ESYS;
    }
    in->poll.data = in;
    /* Cannot fail for a handle just initialised on a valid fd. */
    uv_poll_start(&in->poll, UV_READABLE, in_poll_cb);
    in->open_handles = 1;
    if (in->listening) {
        uv_timer_init(loop, &in->watchdog);
        in->watchdog.data = in;
        uv_timer_start(&in->watchdog, in_watchdog_cb, BUS_LSN_TICK_MS, BUS_LSN_TICK_MS);
        uv_unref((uv_handle_t *)&in->watchdog); /* never keeps the loop alive alone */
        in->open_handles = 2;
    }
    return 0;
}

static int in_open(uv_loop_t *loop, bool sub, const char *url, int mode, bus_msg_cb cb,
                   void *arg, bus_in **out, char *err, size_t errlen) {
    int rc, rv;
    if (loop == NULL || url == NULL || cb == NULL || out == NULL) {
        bus_seterr(err, errlen, "bus: missing argument");
        return WD_EINVAL;
    }
    bus_in *in = calloc(1, sizeof *in);
    if (in == NULL) {
        bus_seterr(err, errlen, "%s: out of memory", url);
        return WD_ENOMEM;
    }
    in->cb = cb;
    in->arg = arg;
    rv = sub ? nng_sub0_open(&in->sock) : nng_pull0_open(&in->sock);
    if (rv != 0) {
        bus_seterr(err, errlen, "%s: open socket: %s", url, nng_strerror(rv));
        free(in);
        return bus_map_nng(rv);
    }
    if ((rc = bus_sock_setup(in->sock, url, err, errlen)) != 0)
        goto fail;
    if (sub) {
        if ((rv = nng_socket_set(in->sock, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0) {
            bus_seterr(err, errlen, "%s: subscribe: %s", url, nng_strerror(rv));
            rc = bus_map_nng(rv);
            goto fail;
        }
        rc = bus_dial_async(in->sock, url, err, errlen);
    } else {
        in->listening = true;
        rc = bus_lsn_open(&in->lsn, in->sock, url, mode, BUS_PROTO_PUSH, err,
                          errlen);
    }
    if (rc != 0 || (rc = in_start(loop, in, url, err, errlen)) != 0)
        goto fail;
    *out = in;
    return 0;
fail:
    nng_close(in->sock);
    free(in);
    return rc;
}

int bus_pull_listen(uv_loop_t *loop, const char *url, int mode, bus_msg_cb cb, void *arg,
                    bus_in **out, char *err, size_t errlen) {
    return in_open(loop, false, url, mode, cb, arg, out, err, errlen);
}

int bus_sub_dial(uv_loop_t *loop, const char *url, bus_msg_cb cb, void *arg, bus_in **out,
                 char *err, size_t errlen) {
    return in_open(loop, true, url, 0, cb, arg, out, err, errlen);
}

/* Loop thread (close callbacks) and closer thread (socket closed). */
static void in_release(void *arg) {
    bus_in *in = arg;
    if (atomic_fetch_sub(&in->refs, 1) == 1)
        free(in);
}

static void in_on_close(uv_handle_t *h) { in_release(h->data); }

void bus_in_close(bus_in *in) {
    if (in == NULL || in->closing)
        return;
    in->closing = true;
    atomic_init(&in->refs, in->open_handles + 1);
    /* uv_close removes the fd from the backend at once, so nng may close
     * its notification fd any time after. */
    uv_close((uv_handle_t *)&in->poll, in_on_close);
    if (in->listening) {
        uv_close((uv_handle_t *)&in->watchdog, in_on_close);
        bus_lsn_close(&in->lsn);
    }
    bus_close_later(in->sock, NULL, in_release, in);
}
