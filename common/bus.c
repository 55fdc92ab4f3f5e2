/* bus: helpers shared by every socket kind, the synchronous PUB/PUSH senders
 * and the blocking bus_call_sync. The loop-driven kinds live in bus_rep.c,
 * bus_in.c and bus_req.c. */
#include "bus_int.h"
#include "clock.h"
#include "log.h"
#include "proto.h"
#include "wd_error.h"
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/transport/ipc/ipc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bus_seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int bus_map_nng(int rv) {
    switch (rv) {
    case 0:
        return 0;
    case NNG_ENOMEM:
        return WD_ENOMEM;
    case NNG_ETIMEDOUT:
        return WD_ETIMEDOUT;
    case NNG_ECONNREFUSED:
    case NNG_ENOENT:
    case NNG_ECONNRESET:
    case NNG_ECONNSHUT:
    case NNG_EUNREACHABLE:
        return WD_EUNAVAIL;
    case NNG_EADDRINUSE:
        return WD_EEXIST;
    case NNG_EADDRINVAL:
    case NNG_EINVAL:
    case NNG_ENOTSUP:
        return WD_EINVAL;
    case NNG_EPERM:
        return WD_EPERM;
    case NNG_ECLOSED:
    case NNG_ECANCELED:
        return WD_ECLOSED;
    case NNG_EMSGSIZE:
        return WD_ETOOBIG;
    case NNG_EAGAIN:
        return WD_EBUSY;
    default:
        return WD_EIO;
    }
}

nng_duration bus_duration(uint64_t ms) {
    if (ms == 0)
        return NNG_DURATION_INFINITE;
    return ms > INT32_MAX ? INT32_MAX : (nng_duration)ms;
}

int bus_sock_setup(nng_socket s, const char *url, char *err, size_t errlen) {
    int rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, PROTO_MSG_MAX);
    if (rv != 0) {
        bus_seterr(err, errlen, "%s: set %s: %s", url, NNG_OPT_RECVMAXSZ, nng_strerror(rv));
        return bus_map_nng(rv);
    }
    return 0;
}

int bus_dial_async(nng_socket s, const char *url, char *err, size_t errlen) {
    nng_dialer d;
    int rv = nng_dialer_create(&d, s, url);
    if (rv != 0) {
        bus_seterr(err, errlen, "%s: %s", url, nng_strerror(rv));
        return bus_map_nng(rv);
    }
    nng_dialer_set_ms(d, NNG_OPT_RECONNMINT, BUS_RECONN_MIN_MS);
    nng_dialer_set_ms(d, NNG_OPT_RECONNMAXT, BUS_RECONN_MAX_MS);
    if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0) {
        bus_seterr(err, errlen, "%s: dial: %s", url, nng_strerror(rv));
        nng_dialer_close(d);
        return bus_map_nng(rv);
    }
    return 0;
}

uint64_t bus_msg_peer(nng_msg *m, const char *opt) {
    nng_pipe p = nng_msg_get_pipe(m);
    uint64_t v;
    if (nng_pipe_id(p) <= 0 || nng_pipe_get_uint64(p, opt, &v) != 0)
        return BUS_PEER_UNKNOWN;
    return v;
}

/* ---- the closer thread ---- */

typedef struct bus_close_job bus_close_job;
struct bus_close_job {
    nng_socket sock;
    bus_close_fn before, after;
    void *arg;
    bus_close_job *next;
};

static struct {
    pthread_once_t once;
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    bus_close_job *head, *tail;
    bool running; /* the thread exists */
    bool busy;    /* a job is being run */
} closer = {.once = PTHREAD_ONCE_INIT,
            .mtx = PTHREAD_MUTEX_INITIALIZER,
            .cv = PTHREAD_COND_INITIALIZER};

static void *closer_main(void *unused) {
    (void)unused;
    pthread_mutex_lock(&closer.mtx);
    for (;;) {
        while (closer.head == NULL)
            pthread_cond_wait(&closer.cv, &closer.mtx);
        bus_close_job *j = closer.head;
        closer.head = j->next;
        if (closer.head == NULL)
            closer.tail = NULL;
        closer.busy = true;
        pthread_mutex_unlock(&closer.mtx);
        if (j->before != NULL)
            j->before(j->arg);
        nng_close(j->sock);
        if (j->after != NULL)
            j->after(j->arg);
        free(j);
        pthread_mutex_lock(&closer.mtx);
        closer.busy = false;
    }
    return NULL;
}

static void closer_start(void) {
    pthread_t t;
    pthread_attr_t attr;
    sigset_t all, old;
    /* Signals stay with the threads that handle them (libuv's). */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    closer.running = pthread_create(&t, &attr, closer_main, NULL) == 0;
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!closer.running)
        wd_warn("bus: no closer thread; sockets are closed inline");
}

void bus_close_later(nng_socket s, bus_close_fn before, bus_close_fn after, void *arg) {
    pthread_once(&closer.once, closer_start);
    bus_close_job *j = closer.running ? malloc(sizeof *j) : NULL;
    if (j == NULL) {
        if (before != NULL)
            before(arg);
        nng_close(s);
        if (after != NULL)
            after(arg);
        return;
    }
    *j = (bus_close_job){.sock = s, .before = before, .after = after, .arg = arg};
    pthread_mutex_lock(&closer.mtx);
    if (closer.tail != NULL)
        closer.tail->next = j;
    else
        closer.head = j;
    closer.tail = j;
    pthread_cond_signal(&closer.cv);
    pthread_mutex_unlock(&closer.mtx);
}

int bus_close_drain(uint64_t timeout_ms) {
    const struct timespec nap = {.tv_sec = 0, .tv_nsec = (long)BUS_DRAIN_POLL_MS * 1000000L};
    uint64_t deadline = wd_clock_mono_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&closer.mtx);
        bool idle = closer.head == NULL && !closer.busy;
        pthread_mutex_unlock(&closer.mtx);
        if (idle)
            return 0;
        if (wd_clock_mono_ms() >= deadline)
            return WD_ETIMEDOUT;
        nanosleep(&nap, NULL);
    }
}

/* ---- PUB listener and PUSH dialer ---- */

struct bus_out {
    nng_socket sock;
    uint64_t dropped;
    atomic_uint_fast64_t connects; /* pipes added (nng threads) */
    bool listening;
    bus_lsn lsn; /* PUB: its watchdog runs from bus_out_send (no loop here) */
};

static void out_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg) {
    bus_out *o = arg;
    (void)p;
    (void)ev;
    atomic_fetch_add(&o->connects, 1);
}

static int bus_out_open(bool pub, const char *url, int mode, bus_out **out, char *err,
                        size_t errlen) {
    int rc, rv;
    bus_out *o = calloc(1, sizeof *o);
    if (o == NULL) {
        bus_seterr(err, errlen, "%s: out of memory", url);
        return WD_ENOMEM;
    }
    rv = pub ? nng_pub0_open(&o->sock) : nng_push0_open(&o->sock);
    if (rv != 0) {
        bus_seterr(err, errlen, "%s: open socket: %s", url, nng_strerror(rv));
        free(o);
        return bus_map_nng(rv);
    }
    atomic_init(&o->connects, 0);
    if ((rc = bus_sock_setup(o->sock, url, err, errlen)) != 0)
        goto fail;
    /* A PUB listener counts through its watchdog's notifier instead (one
     * callback per event and socket). */
    if (!pub && (rv = nng_pipe_notify(o->sock, NNG_PIPE_EV_ADD_POST, out_pipe_cb, o)) != 0) {
        bus_seterr(err, errlen, "%s: pipe notify: %s", url, nng_strerror(rv));
        rc = bus_map_nng(rv);
        goto fail;
    }
    if ((rv = nng_socket_set_int(o->sock, NNG_OPT_SENDBUF, BUS_OUT_SENDBUF)) != 0) {
        bus_seterr(err, errlen, "%s: set %s: %s", url, NNG_OPT_SENDBUF, nng_strerror(rv));
        rc = bus_map_nng(rv);
        goto fail;
    }
    o->listening = pub;
    rc = pub ? bus_lsn_open(&o->lsn, o->sock, url, mode, BUS_PROTO_SUB, err, errlen)
             : bus_dial_async(o->sock, url, err, errlen);
    if (rc != 0)
        goto fail;
    *out = o;
    return 0;
fail:
    nng_close(o->sock);
    free(o);
    return rc;
}

int bus_pub_listen(const char *url, int mode, bus_out **out, char *err, size_t errlen) {
    return bus_out_open(true, url, mode, out, err, errlen);
}

int bus_push_dial(const char *url, bus_out **out, char *err, size_t errlen) {
    return bus_out_open(false, url, 0, out, err, errlen);
}

int bus_out_send(bus_out *o, const void *buf, size_t len) {
    if (o->listening)
        bus_lsn_check(&o->lsn);
    if (len > PROTO_MSG_MAX) {
        o->dropped++;
        return WD_ETOOBIG;
    }
    /* Without NNG_FLAG_ALLOC nng copies buf; it never writes to it. */
    int rv = nng_send(o->sock, (void *)buf, len, NNG_FLAG_NONBLOCK);
    if (rv != 0) {
        o->dropped++;
        return WD_EBUSY;
    }
    return 0;
}

uint64_t bus_out_dropped(const bus_out *o) { return o ? o->dropped : 0; }

uint64_t bus_out_connects(const bus_out *o) {
    /* Only read here; atomic_load wants a non-const pointer. */
    if (o == NULL)
        return 0;
    if (o->listening)
        return atomic_load((atomic_uint *)&o->lsn.added);
    return atomic_load((atomic_uint_fast64_t *)&o->connects);
}

void bus_out_close(bus_out *o) {
    if (o == NULL)
        return;
    if (o->listening)
        bus_lsn_close(&o->lsn);
    /* o (which the pipe callbacks count into) lives until the socket is
     * closed. */
    bus_close_later(o->sock, NULL, free, o);
}

/* ---- blocking request/reply ---- */

int bus_call_sync(const char *url, const void *req, size_t len, uint64_t timeout_ms,
                  void **reply, size_t *reply_len) {
    nng_socket s;
    nng_msg *m = NULL;
    int rc = 0, rv;
    if (url == NULL || (req == NULL && len > 0) || reply == NULL || reply_len == NULL)
        return WD_EINVAL;
    *reply = NULL;
    *reply_len = 0;
    if (len > PROTO_MSG_MAX)
        return WD_ETOOBIG;
    if ((rv = nng_req0_open(&s)) != 0)
        return bus_map_nng(rv);
    uint64_t deadline = wd_clock_mono_ms() + timeout_ms;
    if ((rc = bus_sock_setup(s, url, NULL, 0)) != 0)
        goto fail;
    /* A resent command could run twice; the caller decides whether to retry. */
    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, bus_duration(timeout_ms));
    /* Our own handshake first, within the deadline: a stopped or wedged
     * warden still accepts connections, and nng's blocking dial would then
     * wait out its 10 s negotiation timeout whatever timeout_ms says. */
    if (strncmp(url, BUS_IPC_PREFIX, strlen(BUS_IPC_PREFIX)) == 0 &&
        (rc = bus_ipc_handshake(url + strlen(BUS_IPC_PREFIX), BUS_PROTO_REQ,
                                timeout_ms > 0 ? timeout_ms : BUS_STALE_PROBE_MS, NULL)) != 0) {
        if (rc == WD_EPROTO)
            rc = WD_EUNAVAIL;
        goto fail;
    }
    /* A synchronous dial reports a missing or dead socket at once. */
    if ((rv = nng_dial(s, url, NULL, 0)) != 0) {
        rc = (rv == NNG_ECONNREFUSED || rv == NNG_ENOENT) ? WD_EUNAVAIL : bus_map_nng(rv);
        goto fail;
    }
    if ((rv = nng_send(s, (void *)req, len, 0)) != 0) {
        rc = bus_map_nng(rv);
        goto fail;
    }
    if (timeout_ms > 0) {
        uint64_t now = wd_clock_mono_ms();
        nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, bus_duration(now < deadline ? deadline - now : 1));
    }
    if ((rv = nng_recvmsg(s, &m, 0)) != 0) {
        rc = bus_map_nng(rv);
        goto fail;
    }
    size_t n = nng_msg_len(m);
    void *copy = malloc(n > 0 ? n : 1);
    if (copy == NULL) {
        rc = WD_ENOMEM;
        goto fail;
    }
    memcpy(copy, nng_msg_body(m), n);
    *reply = copy;
    *reply_len = n;
fail:
    if (m != NULL)
        nng_msg_free(m);
    nng_close(s);
    return rc;
}
