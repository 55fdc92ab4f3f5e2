/* See curl_uv.h. The shape follows libcurl's own multi-uv.c example; the
 * differences are about lifetime: every uv handle is freed only in its close
 * callback, and closing waits for all of them before freeing the struct. */
#include "curl_uv.h"
#include "wd_error.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

/* One socket curl asked us to watch. Lives from the first CURL_POLL_* for
 * the socket until the close callback after CURL_POLL_REMOVE (or close). */
typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    wd_curl_uv *m;
    struct sock_ctx *prev, *next; /* m->socks, so close finds leftovers */
} sock_ctx;

/* The whole state of one multi handle on one loop. */
struct wd_curl_uv {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    sock_ctx *socks;         /* sockets being watched */
    unsigned active;         /* transfers added and not yet ended */
    unsigned dispatching;    /* depth of done-callback dispatch */
    bool closing;
    bool multi_gone;         /* curl_multi_cleanup done */
    unsigned open_handles;   /* uv handles not yet through their close cb */
    void (*close_cb)(void *arg);
    void *close_arg;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init_once(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

int wd_curl_global_init(void) {
    pthread_once(&global_once, global_init_once);
    if (global_rc == CURLE_OUT_OF_MEMORY)
        return WD_ENOMEM;
    return global_rc == CURLE_OK ? 0 : WD_EIO;
}

static void maybe_free(wd_curl_uv *m) {
    if (!m->closing || m->open_handles > 0 || !m->multi_gone)
        return;
    void (*cb)(void *) = m->close_cb;
    void *arg = m->close_arg;
    free(m);
    if (cb != NULL)
        cb(arg);
}

static void handle_closed(uv_handle_t *h) {
    wd_curl_uv *m = h->data;
    m->open_handles--;
    maybe_free(m);
}

static void sock_closed(uv_handle_t *h) {
    sock_ctx *c = h->data;
    wd_curl_uv *m = c->m;
    free(c);
    m->open_handles--;
    maybe_free(m);
}

static void sock_release(wd_curl_uv *m, sock_ctx *c) {
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        m->socks = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    /* uv_close stops the poll (and drops the fd from epoll) at once, so curl
     * may reuse the same fd number for a new socket right away. */
    uv_close((uv_handle_t *)&c->poll, sock_closed);
}

/* Reports finished transfers. A done callback may add transfers or close
 * m, so the loop re-checks closing and the message is copied before the
 * handle is removed (which invalidates it). */
static void check_done(wd_curl_uv *m) {
    CURLMsg *msg;
    int left;
    m->dispatching++;
    while (!m->closing && (msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        wd_curl_xfer *x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(m->multi, easy);
        m->active--;
        if (x != NULL && x->done != NULL)
            x->done(x, rc);
    }
    m->dispatching--;
}

static void finish_close(wd_curl_uv *m);

static void after_action(wd_curl_uv *m) {
    check_done(m);
    if (m->closing && m->dispatching == 0 && !m->multi_gone)
        finish_close(m);
}

static void on_poll(uv_poll_t *p, int status, int events) {
    sock_ctx *c = p->data;
    wd_curl_uv *m = c->m;
    int flags = 0, running;
    if (m->closing)
        return;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(m->multi, c->fd, flags, &running);
    after_action(m);
}

static void on_timer(uv_timer_t *t) {
    wd_curl_uv *m = t->data;
    int running;
    if (m->closing)
        return;
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    after_action(m);
}

/* CURLMOPT_TIMERFUNCTION: curl says when it next wants to be called; -1
 * means never. A zero timeout still goes through the timer: curl forbids
 * calling socket_action from inside its own callback. */
static int timer_fn(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    wd_curl_uv *m = userp;
    if (m->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&m->timer);
    else
        uv_timer_start(&m->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching one socket. */
static int socket_fn(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
    (void)easy;
    wd_curl_uv *m = userp;
    sock_ctx *c = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (c != NULL) {
            curl_multi_assign(m->multi, s, NULL);
            sock_release(m, c);
        }
        return 0;
    }
    if (m->closing)
        return 0;
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c == NULL)
            return -1; /* curl fails the transfer with an error */
        c->fd = s;
        c->m = m;
        if (uv_poll_init_socket(m->loop, &c->poll, s) != 0) {
            free(c);
            return -1;
        }
        c->poll.data = c;
        m->open_handles++;
        c->next = m->socks;
        if (m->socks != NULL)
            m->socks->prev = c;
        m->socks = c;
        curl_multi_assign(m->multi, s, c);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&c->poll, events, on_poll);
    return 0;
}

int wd_curl_uv_new(uv_loop_t *loop, wd_curl_uv **out) {
    if (loop == NULL || out == NULL)
        return WD_EINVAL;
    int rc = wd_curl_global_init();
    if (rc != 0)
        return rc;
    wd_curl_uv *m = calloc(1, sizeof *m);
    if (m == NULL)
        return WD_ENOMEM;
    m->loop = loop;
    m->multi = curl_multi_init();
    if (m->multi == NULL) {
        free(m);
        return WD_ENOMEM;
    }
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    /* libcurl's default cache holds 4x the transfers running at the moment,
     * so a keep-alive endpoint whose queue runs low loses its connections
     * and reconnects; keep enough for every endpoint a worker talks to. */
    curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, 128L);
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    m->open_handles = 1;
    *out = m;
    return 0;
}

CURLM *wd_curl_uv_multi(wd_curl_uv *m) { return m != NULL ? m->multi : NULL; }

unsigned wd_curl_uv_active(const wd_curl_uv *m) { return m != NULL ? m->active : 0; }

int wd_curl_uv_add(wd_curl_uv *m, wd_curl_xfer *x) {
    if (m == NULL || x == NULL || x->easy == NULL || x->done == NULL)
        return WD_EINVAL;
    if (m->closing)
        return WD_ECLOSED;
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (char *)x);
    if (curl_multi_add_handle(m->multi, x->easy) != CURLM_OK)
        return WD_EIO;
    m->active++;
    return 0;
}

int wd_curl_uv_remove(wd_curl_uv *m, wd_curl_xfer *x) {
    if (m == NULL || x == NULL || x->easy == NULL || m->multi_gone)
        return WD_EINVAL;
    if (curl_multi_remove_handle(m->multi, x->easy) != CURLM_OK)
        return WD_EINVAL;
    m->active--;
    return 0;
}

static void finish_close(wd_curl_uv *m) {
    /* Cleanup closes the cached connections; curl reports their sockets
     * through socket_fn (CURL_POLL_REMOVE), which closes their polls. */
    curl_multi_cleanup(m->multi);
    m->multi = NULL;
    m->multi_gone = true;
    while (m->socks != NULL)
        sock_release(m, m->socks);
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, handle_closed);
}

void wd_curl_uv_close(wd_curl_uv *m, void (*close_cb)(void *arg), void *arg) {
    if (m == NULL || m->closing)
        return;
    m->closing = true;
    m->close_cb = close_cb;
    m->close_arg = arg;
    if (m->dispatching == 0)
        finish_close(m);
}
