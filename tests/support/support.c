/* See support.h. */
#include "support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int wdt_free_tcp_port(void) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (fd < 0)
        return -1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void lateness_tick(uv_timer_t *t) {
    wdt_lateness *p = t->data;
    uint64_t now = uv_now(t->loop);
    /* uv_now is cached at the start of the loop iteration; refresh so a tick
     * that fires after a long callback is measured from the real time. */
    uv_update_time(t->loop);
    now = uv_now(t->loop);
    if (now > p->expected_ms && now - p->expected_ms > p->worst_late_ms)
        p->worst_late_ms = now - p->expected_ms;
    p->ticks++;
    p->expected_ms = now + p->period_ms;
}

void wdt_lateness_start(uv_loop_t *loop, wdt_lateness *p, uint64_t period_ms) {
    p->period_ms = period_ms;
    p->worst_late_ms = 0;
    p->ticks = 0;
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    uv_update_time(loop);
    p->expected_ms = uv_now(loop) + period_ms;
    uv_timer_start(&p->timer, lateness_tick, period_ms, period_ms);
}

void wdt_lateness_stop(wdt_lateness *p) {
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, NULL);
}

typedef struct {
    int (*pred)(void *);
    void *arg;
    int done, expired;
} run_until_state;

static void deadline_cb(uv_timer_t *t) {
    run_until_state *st = t->data;
    st->expired = 1;
    uv_stop(t->loop);
}

/* Checked before the loop blocks for I/O: a predicate made true by a timer
 * or idle callback stops the loop at once instead of waiting for the next
 * I/O event or the deadline. */
static void pred_check_cb(uv_prepare_t *p) {
    run_until_state *st = p->data;
    if (st->pred(st->arg)) {
        st->done = 1;
        uv_stop(p->loop);
    }
}

int wdt_run_until(uv_loop_t *loop, int (*pred)(void *), void *arg, uint64_t timeout_ms) {
    run_until_state st = {pred, arg, 0, 0};
    uv_timer_t deadline;
    uv_prepare_t check;
    if (pred(arg))
        return 1;
    uv_timer_init(loop, &deadline);
    uv_prepare_init(loop, &check);
    deadline.data = &st;
    check.data = &st;
    uv_timer_start(&deadline, deadline_cb, timeout_ms, 0);
    uv_prepare_start(&check, pred_check_cb);
    while (!st.expired && !(st.done = pred(arg)))
        uv_run(loop, UV_RUN_DEFAULT);
    uv_timer_stop(&deadline);
    uv_prepare_stop(&check);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_close((uv_handle_t *)&check, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* both handles live on this stack frame */
    return pred(arg);
}

uint64_t wdt_late_bound_ms(uint64_t base_ms) {
    const char *pre = getenv("LD_PRELOAD");
    return pre != NULL && strstr(pre, "vgpreload") != NULL ? 3 * base_ms : base_ms;
}

const char *wdt_source_dir(void) {
    const char *s = getenv("WARDEN_SOURCE_DIR");
    return s != NULL && *s != '\0' ? s : WDT_DEFAULT_SOURCE_DIR;
}
