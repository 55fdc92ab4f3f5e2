/* Faults of the PostgreSQL client, each against a real server: a private
 * cluster (tests/support/pg_server.h; initdb once for this binary) that the
 * tests stop, restart and freeze, and a TCP listener that never answers.
 * Under every fault a 10 ms lateness probe runs on the client's loop and
 * its worst lateness must stay small: nothing in the client blocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "pg.h"
#include "pg_server.h"
#include "support.h"
#include "wd_error.h"

#define WAIT_MS 20000
#define LATE_MAX_MS 200 /* generous: valgrind and a shared machine */

static wdt_pg_server server;
static char dsn[256];

typedef struct {
    int calls;
    bool done;
    int status;
    wd_errclass cls;
    char sqlstate[6];
    char val[64];
    char msg[256];
} cap;

static void cap_cb(wd_pg *pg, const wd_pg_result *r, void *arg) {
    (void)pg;
    cap *c = arg;
    c->calls++;
    c->status = r->status;
    c->cls = r->errclass;
    snprintf(c->sqlstate, sizeof c->sqlstate, "%s", r->sqlstate);
    snprintf(c->msg, sizeof c->msg, "%s", r->message);
    c->val[0] = '\0';
    if (r->res && PQntuples(r->res) > 0 && PQnfields(r->res) > 0)
        snprintf(c->val, sizeof c->val, "%s", PQgetvalue(r->res, 0, 0));
    if (r->last)
        c->done = true;
}
static int cap_done(void *arg) { return ((cap *)arg)->done; }

typedef struct {
    int n;
    char payload[64];
} notes;
static void note_cb(wd_pg *pg, const char *channel, const char *payload, int be_pid, void *arg) {
    (void)pg, (void)channel, (void)be_pid;
    notes *n = arg;
    n->n++;
    snprintf(n->payload, sizeof n->payload, "%s", payload);
}
static int note_seen(void *arg) { return ((notes *)arg)->n > 0; }

static void closed_cb(void *arg) { *(int *)arg = 1; }
static int flag_set(void *arg) { return *(int *)arg; }

typedef struct {
    wd_pg *pg;
    uint64_t connects;
} ready_arg;
static int is_ready(void *arg) {
    ready_arg *a = arg;
    return wd_pg_get_state(a->pg) == WD_PG_READY && wd_pg_connects(a->pg) >= a->connects;
}

typedef struct {
    uv_loop_t loop;
    wdt_lateness probe;
} fixture;

static int group_setup(void **state) {
    (void)state;
    if (wdt_pg_init(&server) != 0 || wdt_pg_start(&server, NULL) != 0)
        return -1;
    wdt_pg_dsn(&server, dsn, sizeof dsn);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    wdt_pg_cleanup(&server);
    return 0;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL || uv_loop_init(&f->loop) != 0)
        return -1;
    /* A test that failed half-way may have left the server stopped. */
    if (!server.running && wdt_pg_start(&server, NULL) != 0)
        return -1;
    wdt_lateness_start(&f->loop, &f->probe, 10);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    wdt_lateness_stop(&f->probe);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    int rc = uv_loop_close(&f->loop);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void fast_opts(wd_pg_opts *o, const char *conninfo) {
    wd_pg_opts_default(o);
    o->conninfo = conninfo;
    o->connect_timeout_ms = 2000;
    o->statement_timeout_ms = 10000;
    o->reconnect_initial_ms = 100;
    o->reconnect_max_ms = 400;
    o->breaker.failure_threshold = 3;
    o->breaker.open_ns = 300 * WD_NS_PER_MS;
    o->breaker.jitter = 0;
    o->breaker.half_open_max = 1;
    o->seed = 11;
}

static wd_pg *open_ready(fixture *f, const wd_pg_opts *o) {
    wd_pg *pg = NULL;
    char err[256];
    assert_int_equal(wd_pg_open(&f->loop, o, &pg, err, sizeof err), 0);
    ready_arg ra = {pg, 1};
    assert_true(wdt_run_until(&f->loop, is_ready, &ra, WAIT_MS));
    return pg;
}

static void close_pg(fixture *f, wd_pg *pg) {
    int closed = 0;
    assert_int_equal(wd_pg_close(pg, closed_cb, &closed), 0);
    assert_true(wdt_run_until(&f->loop, flag_set, &closed, WAIT_MS));
}

static void run_sql(fixture *f, wd_pg *pg, cap *c, const char *sql) {
    memset(c, 0, sizeof *c);
    assert_int_equal(wd_pg_query(pg, sql, 0, NULL, cap_cb, c), 0);
    assert_true(wdt_run_until(&f->loop, cap_done, c, WAIT_MS));
}

static void assert_loop_turned(fixture *f) {
    print_message("worst loop lateness %llu ms over %llu ticks\n",
                  (unsigned long long)f->probe.worst_late_ms, (unsigned long long)f->probe.ticks);
    assert_true(f->probe.ticks > 0);
    assert_true(f->probe.worst_late_ms < wdt_late_bound_ms(LATE_MAX_MS));
}

/* (a) PostgreSQL stopped and restarted with pg_ctl. */
static void server_restart(void **state) {
    fixture *f = *state;
    wd_metrics *m = wd_metrics_new();
    wd_pg_opts o;
    fast_opts(&o, dsn);
    o.metrics = m;
    wd_pg *pg = open_ready(f, &o);
    cap c = {0};
    notes n = {0};
    assert_int_equal(wd_pg_prepare(pg, "inc", "SELECT $1::int + 1", 1, cap_cb, &c), 0);
    assert_true(wdt_run_until(&f->loop, cap_done, &c, WAIT_MS));
    assert_int_equal(c.status, 0);
    assert_int_equal(wd_pg_listen(pg, "after_restart", note_cb, &n), 0);
    run_sql(f, pg, &c, "SELECT 1");
    assert_int_equal(c.status, 0);

    /* A query in flight when the server goes down fails, transient. */
    cap inflight = {0};
    assert_int_equal(wd_pg_query(pg, "SELECT pg_sleep(30)", 0, NULL, cap_cb, &inflight), 0);
    assert_int_equal(wdt_pg_stop(&server, &f->loop, "fast"), 0);
    assert_true(wdt_run_until(&f->loop, cap_done, &inflight, WAIT_MS));
    assert_int_not_equal(inflight.status, 0);
    assert_int_equal(inflight.cls, WD_ERRCLASS_TRANSIENT);

    /* Calls while it is down fail (transient) until the breaker opens. */
    brk_breaker *b = wd_pg_breaker(pg);
    int calls = 0;
    while (b->state == BRK_CLOSED && calls < 10) {
        memset(&c, 0, sizeof c);
        int rc = wd_pg_query(pg, "SELECT 1", 0, NULL, cap_cb, &c);
        calls++;
        if (rc == 0) {
            assert_true(wdt_run_until(&f->loop, cap_done, &c, WAIT_MS));
            rc = c.status;
        }
        assert_true(rc == WD_EUNAVAIL || rc == WD_EIO);
    }
    assert_int_equal(b->state, BRK_OPEN);
    assert_true(calls <= 3); /* the in-flight failure counted too */

    /* While open: WD_EOPEN at once, nothing queued, nothing counted. */
    uint64_t rejected = b->total_rejected;
    memset(&c, 0, sizeof c);
    assert_int_equal(wd_pg_query(pg, "SELECT 1", 0, NULL, cap_cb, &c), WD_EOPEN);
    const char *const p41[] = {"41"};
    assert_int_equal(wd_pg_exec_prepared(pg, "inc", 1, p41, cap_cb, &c), WD_EOPEN);
    assert_int_equal(wd_pg_pending(pg), 0);
    assert_int_equal(b->total_rejected, rejected + 2);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(c.calls, 0);

    /* Back up: the client reconnects by itself. */
    assert_int_equal(wdt_pg_start(&server, &f->loop), 0);
    ready_arg ra = {pg, 2};
    assert_true(wdt_run_until(&f->loop, is_ready, &ra, WAIT_MS));
    /* Once the cooldown is over, a trial call closes the breaker; the
     * prepared statement was re-established by the reconnect. */
    while (brk_retry_in(b, wd_clock_mono_ns()) > 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    memset(&c, 0, sizeof c);
    assert_int_equal(wd_pg_exec_prepared(pg, "inc", 1, p41, cap_cb, &c), 0);
    assert_true(wdt_run_until(&f->loop, cap_done, &c, WAIT_MS));
    assert_int_equal(c.status, 0);
    assert_string_equal(c.val, "42");
    assert_int_equal(b->state, BRK_CLOSED);
    assert_int_equal(brk_history_at(b, 1)->to, BRK_HALF_OPEN);
    assert_int_equal(brk_history_at(b, 0)->to, BRK_CLOSED);

    /* The LISTEN was re-issued: a NOTIFY from another connection arrives. */
    wd_pg_opts o2;
    fast_opts(&o2, dsn);
    o2.name = "sender";
    wd_pg *sender = open_ready(f, &o2);
    run_sql(f, sender, &c, "SELECT pg_notify('after_restart', 'back')");
    assert_int_equal(c.status, 0);
    assert_true(wdt_run_until(&f->loop, note_seen, &n, WAIT_MS));
    assert_string_equal(n.payload, "back");
    close_pg(f, sender);

    char *prom = NULL;
    size_t len;
    assert_int_equal(wd_metrics_render_prometheus(m, &prom, &len), 0);
    assert_non_null(strstr(prom, "warden_pg_reconnects_total{client=\"pg\"} 1\n"));
    assert_null(strstr(prom, "warden_pg_errors_total{client=\"pg\",class=\"transient\"} 0\n"));
    free(prom);
    close_pg(f, pg);
    wd_metrics_free(m);
    assert_loop_turned(f);
}

/* (b) A listener that accepts and never answers: the connect timeout. */
static void black_hole_connect(void **state) {
    fixture *f = *state;
    int port = wdt_free_tcp_port();
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    /* The kernel completes the handshake; nobody ever reads or writes. */
    assert_int_equal(listen(lfd, 16), 0);
    char hole[128];
    snprintf(hole, sizeof hole, "host=127.0.0.1 port=%d user=warden dbname=warden", port);
    wd_pg_opts o;
    fast_opts(&o, hole);
    o.connect_timeout_ms = 300;
    o.reconnect_initial_ms = 5000; /* one attempt within the test */
    o.reconnect_max_ms = 5000;
    wd_pg *pg = NULL;
    assert_int_equal(wd_pg_open(&f->loop, &o, &pg, NULL, 0), 0);
    cap c = {0};
    uint64_t t0 = wd_clock_mono_ns();
    assert_int_equal(wd_pg_query(pg, "SELECT 1", 0, NULL, cap_cb, &c), 0);
    assert_true(wdt_run_until(&f->loop, cap_done, &c, WAIT_MS));
    uint64_t ms = (wd_clock_mono_ns() - t0) / WD_NS_PER_MS;
    assert_int_equal(c.status, WD_EUNAVAIL);
    assert_non_null(strstr(c.msg, "connect timed out"));
    assert_non_null(strstr(wd_pg_last_error(pg), "connect timed out"));
    assert_true(ms >= 250 && ms < 5000);
    assert_int_equal(wd_pg_get_state(pg), WD_PG_BACKOFF);
    close_pg(f, pg);
    close(lfd);
    assert_loop_turned(f);
}

/* (b) A statement that runs past statement_timeout: 57014, and the
 * connection stays usable. */
static void statement_timeout(void **state) {
    fixture *f = *state;
    wd_pg_opts o;
    fast_opts(&o, dsn);
    o.statement_timeout_ms = 300;
    wd_pg *pg = open_ready(f, &o);
    cap c;
    run_sql(f, pg, &c, "SELECT pg_sleep(3)");
    assert_int_equal(c.status, WD_ETIMEDOUT);
    assert_string_equal(c.sqlstate, "57014");
    assert_int_equal(c.cls, wd_classify_sqlstate("57014"));
    run_sql(f, pg, &c, "SELECT 5");
    assert_int_equal(c.status, 0);
    assert_string_equal(c.val, "5");
    assert_int_equal(wd_pg_connects(pg), 1);
    close_pg(f, pg);
    assert_loop_turned(f);
}

/* A server process that stops answering (SIGSTOP): the client deadline
 * drops the connection, fails the request and reconnects. */
static void frozen_backend(void **state) {
    fixture *f = *state;
    wd_pg_opts o;
    fast_opts(&o, dsn);
    o.statement_timeout_ms = 300;
    o.deadline_grace_ms = 300;
    wd_pg *pg = open_ready(f, &o);
    cap c;
    run_sql(f, pg, &c, "SELECT 1");
    int pid = wd_pg_backend_pid(pg);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    uint64_t t0 = wd_clock_mono_ns();
    memset(&c, 0, sizeof c);
    assert_int_equal(wd_pg_query(pg, "SELECT 2", 0, NULL, cap_cb, &c), 0);
    bool done = wdt_run_until(&f->loop, cap_done, &c, WAIT_MS);
    uint64_t ms = (wd_clock_mono_ns() - t0) / WD_NS_PER_MS;
    kill(pid, SIGCONT);
    assert_true(done);
    assert_int_equal(c.status, WD_ETIMEDOUT);
    assert_int_equal(c.cls, WD_ERRCLASS_TRANSIENT);
    assert_string_equal(c.sqlstate, "");
    assert_non_null(strstr(c.msg, "connection dropped"));
    assert_true(ms >= 550);
    ready_arg ra = {pg, 2};
    assert_true(wdt_run_until(&f->loop, is_ready, &ra, WAIT_MS));
    run_sql(f, pg, &c, "SELECT 3");
    assert_int_equal(c.status, 0);
    assert_int_not_equal(wd_pg_backend_pid(pg), pid);
    close_pg(f, pg);
    assert_loop_turned(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(server_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(black_hole_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(statement_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(frozen_backend, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
