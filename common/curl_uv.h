/* libcurl's multi interface driven by a libuv loop: the standard integration
 * (CURLMOPT_SOCKETFUNCTION + CURLMOPT_TIMERFUNCTION, curl_multi_socket_action)
 * with one uv_poll_t per socket curl asks to watch and one uv_timer_t for
 * curl's timeouts. Nothing here blocks the loop: connects, TLS, uploads and
 * downloads all advance from poll and timer callbacks.
 *
 * It knows nothing of HTTP: the HTTP client (http.h) and a later SMTP sender
 * both configure their own easy handles and hand them in here.
 *
 * One multi handle per wd_curl_uv, and the multi handle keeps libcurl's
 * connection cache, so sequential transfers to the same host reuse one
 * keep-alive connection.
 *
 * Global init: libcurl must be initialised once per process before any
 * thread other than the loop's starts. wd_curl_global_init() does that once
 * (pthread_once); the worker runtime's main should call it first thing, and
 * wd_curl_uv_new() calls it too so that tests and tools need not. It is never
 * cleaned up: curl_global_cleanup at exit buys nothing and races with other
 * threads' TLS teardown.
 *
 * Not thread-safe: one wd_curl_uv belongs to one loop. */
#ifndef WD_CURL_UV_H
#define WD_CURL_UV_H

#include <curl/curl.h>
#include <uv.h>

typedef struct wd_curl_uv wd_curl_uv;
typedef struct wd_curl_xfer wd_curl_xfer;

/* Called once when a transfer added with wd_curl_uv_add() ends, with
 * curl's result. The easy handle has already been removed from the multi
 * handle, so the callback may clean it up, reuse it, add new transfers or
 * close the wd_curl_uv. */
typedef void (*wd_curl_done_cb)(wd_curl_xfer *x, CURLcode result);

/* One transfer, embedded in its owner's request struct (no allocation
 * here). The owner sets easy and done before wd_curl_uv_add(); CURLOPT_PRIVATE
 * of the easy handle belongs to this module. */
struct wd_curl_xfer {
    CURL *easy;
    wd_curl_done_cb done;
    void *data; /* the owner's */
};

/* Returns 0 or WD_ENOMEM/WD_EIO (libcurl could not be initialised). */
int wd_curl_global_init(void);

/* Creates a multi handle bound to loop. *out is owned by the caller and
 * released only by wd_curl_uv_close(). Returns 0, WD_EINVAL, WD_ENOMEM or
 * WD_EIO. */
int wd_curl_uv_new(uv_loop_t *loop, wd_curl_uv **out);

/* The multi handle, for options such as CURLMOPT_MAXCONNECTS. Do not set
 * the socket or timer callbacks, and do not add or remove handles directly. */
CURLM *wd_curl_uv_multi(wd_curl_uv *m);

/* Starts x->easy. Returns 0 (x->done will run exactly once, unless the
 * transfer is removed first), WD_EINVAL, WD_ECLOSED after close, or WD_EIO
 * when curl refuses the handle (then x->done never runs). */
int wd_curl_uv_add(wd_curl_uv *m, wd_curl_xfer *x);

/* Stops a running transfer without calling x->done (a cancellation). The
 * easy handle stays the caller's. Returns 0 or WD_EINVAL. */
int wd_curl_uv_remove(wd_curl_uv *m, wd_curl_xfer *x);

/* Number of transfers added and not yet done or removed. */
unsigned wd_curl_uv_active(const wd_curl_uv *m);

/* Closes the multi handle (and its cached connections) and every libuv
 * handle. Transfers still running are dropped without their callbacks:
 * owners cancel their own first. close_cb (may be NULL) runs from the loop
 * once every handle is closed; m is freed right after it returns. Safe to
 * call from a done callback. */
void wd_curl_uv_close(wd_curl_uv *m, void (*close_cb)(void *arg), void *arg);

#endif
