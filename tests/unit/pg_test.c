/* The PostgreSQL client against the suite's real server (WARDEN_PG_DSN; the
 * cases that need it are skipped with a message when it is unset): queries
 * with parameters, prepared statements, pipelined batches, LISTEN/NOTIFY,
 * SQLSTATE classification of real errors, metrics, and no password in any
 * error text, log line or metric. Faults (stopped server, black hole) are in
 * pg_fault_test.c, on a private cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "pg.h"
#include "support.h"
#include "wd_error.h"

#define WAIT_MS 15000
#define SLOTS 8

typedef struct {
    int calls;
    bool done;
    int status[SLOTS];
    wd_errclass cls[SLOTS];
    char sqlstate[SLOTS][6];
    char val[SLOTS][64];
    char msg[SLOTS][256];
    int ntuples[SLOTS];
    size_t index[SLOTS];
} cap;

static void cap_cb(wd_pg *pg, const wd_pg_result *r, void *arg) {
    (void)pg;
    cap *c = arg;
    int i = c->calls++;
    if (i < SLOTS) {
        c->status[i] = r->status;
        c->cls[i] = r->errclass;
        snprintf(c->sqlstate[i], sizeof c->sqlstate[i], "%s", r->sqlstate);
        snprintf(c->msg[i], sizeof c->msg[i], "%s", r->message);
        c->index[i] = r->index;
        c->ntuples[i] = r->res ? PQntuples(r->res) : -1;
        c->val[i][0] = '\0';
        if (r->res && PQntuples(r->res) > 0 && PQnfields(r->res) > 0)
            snprintf(c->val[i], sizeof c->val[i], "%s",
                     PQgetisnull(r->res, 0, 0) ? "(null)" : PQgetvalue(r->res, 0, 0));
    }
    if (r->last)
        c->done = true;
}

static int cap_done(void *arg) { return ((cap *)arg)->done; }

typedef struct {
    int n;
    char channel[64], payload[64];
    int be_pid;
} notes;

static void note_cb(wd_pg *pg, const char *channel, const char *payload, int be_pid, void *arg) {
    (void)pg;
    notes *n = arg;
    n->n++;
    snprintf(n->channel, sizeof n->channel, "%s", channel);
    snprintf(n->payload, sizeof n->payload, "%s", payload);
    n->be_pid = be_pid;
}
static int note_seen(void *arg) { return ((notes *)arg)->n > 0; }

static void closed_cb(void *arg) { *(int *)arg = 1; }
static int flag_set(void *arg) { return *(int *)arg; }

typedef struct {
    uv_loop_t loop;
    const char *dsn;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL || uv_loop_init(&f->loop) != 0)
        return -1;
    f->dsn = getenv("WARDEN_PG_DSN");
    if (f->dsn != NULL && f->dsn[0] == '\0')
        f->dsn = NULL;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    int rc = uv_loop_close(&f->loop);
    free(f);
    return rc == 0 ? 0 : -1;
}

static const char *need_pg(fixture *f) {
    if (f->dsn == NULL) {
        print_message("WARDEN_PG_DSN is not set: skipped (scripts/test starts PostgreSQL)\n");
        skip();
    }
    return f->dsn;
}

static wd_pg *open_pg(fixture *f, const char *dsn, const char *name, wd_metrics *m,
                      uint64_t statement_timeout_ms) {
    wd_pg_opts o;
    wd_pg_opts_default(&o);
    o.conninfo = dsn;
    o.name = name;
    o.metrics = m;
    o.statement_timeout_ms = statement_timeout_ms;
    o.seed = 7;
    wd_pg *pg = NULL;
    char err[256];
    int rc = wd_pg_open(&f->loop, &o, &pg, err, sizeof err);
    if (rc != 0)
        print_error("wd_pg_open: %s\n", err);
    assert_int_equal(rc, 0);
    return pg;
}

static void close_pg(fixture *f, wd_pg *pg) {
    int closed = 0;
    assert_int_equal(wd_pg_close(pg, closed_cb, &closed), 0);
    assert_true(wdt_run_until(&f->loop, flag_set, &closed, WAIT_MS));
}

/* Runs one statement and waits for its callback. */
static void run_sql(fixture *f, wd_pg *pg, cap *c, const char *sql, int n,
                    const char *const *params) {
    memset(c, 0, sizeof *c);
    assert_int_equal(wd_pg_query(pg, sql, n, params, cap_cb, c), 0);
    assert_true(wdt_run_until(&f->loop, cap_done, c, WAIT_MS));
}

/* ---- no server needed ---- */

static void open_rejects_bad_input(void **state) {
    fixture *f = *state;
    wd_pg_opts o;
    wd_pg *pg = NULL;
    char err[256];
    wd_pg_opts_default(&o);
    assert_int_equal(wd_pg_open(&f->loop, &o, &pg, err, sizeof err), WD_EINVAL);
    assert_non_null(strstr(err, "conninfo"));
    /* A malformed conninfo: libpq's message would quote the fragment that
     * holds the password; ours must not. */
    o.conninfo = "host=127.0.0.1 password=sekret oops";
    assert_int_equal(wd_pg_open(&f->loop, &o, &pg, err, sizeof err), WD_EINVAL);
    assert_non_null(strstr(err, "invalid conninfo"));
    assert_null(strstr(err, "sekret"));
    o.conninfo = "host=127.0.0.1 nosuchoption=sekret";
    assert_int_equal(wd_pg_open(&f->loop, &o, &pg, err, sizeof err), WD_EINVAL);
    assert_null(strstr(err, "sekret"));
    o.conninfo = "host=127.0.0.1";
    o.reconnect_jitter = 0.9;
    assert_int_equal(wd_pg_open(&f->loop, &o, &pg, err, sizeof err), WD_EINVAL);
    assert_non_null(strstr(err, "reconnect_jitter"));
    o.reconnect_jitter = 0.2;
    o.reconnect_max_ms = 10;
    assert_int_equal(wd_pg_open(&f->loop, &o, &pg, err, sizeof err), WD_EINVAL);
    assert_null(pg);
}

static int write_file(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    fputs(text, fp);
    return fclose(fp);
}

static void conf_table(void **state) {
    (void)state;
    char path[] = "/tmp/pg_test_conf.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char *const envp[] = {NULL};
    wd_conf *conf = NULL;
    wd_conf_errors errs;
    wd_pg_conf pc;

    assert_int_equal(write_file(path, "[postgres]\n"
                                      "dsn = host=db port=5433 dbname=book password=sekret\n"
                                      "statement_timeout = 5s\n"
                                      "reconnect_initial = 250ms\n"
                                      "reconnect_multiplier = 2\n"),
                     0);
    assert_int_equal(wd_conf_read(path, envp, &conf, &errs), 0);
    memset(&errs, 0, sizeof errs);
    assert_int_equal(wd_conf_apply_section(conf, "postgres", wd_pg_conf_fields,
                                           wd_pg_conf_n_fields, &pc, &errs),
                     0);
    wd_conf_free(conf);
    assert_string_equal(pc.dsn, "host=db port=5433 dbname=book password=sekret");
    assert_int_equal(pc.statement_timeout_ms, 5000);
    assert_int_equal(pc.connect_timeout_ms, 10000);
    assert_int_equal(pc.reconnect_initial_ms, 250);
    assert_int_equal(pc.reconnect_max_ms, 120000);
    assert_true(pc.reconnect_multiplier == 2.0);
    assert_true(pc.reconnect_jitter == 0.2);
    wd_pg_opts o;
    wd_pg_opts_default(&o);
    wd_pg_conf_to_opts(&pc, &o);
    assert_ptr_equal(o.conninfo, pc.dsn);
    assert_int_equal(o.reconnect_initial_ms, 250);

    /* Out of bounds, and a missing dsn: each named. */
    assert_int_equal(write_file(path, "[postgres]\nreconnect_jitter = 0.9\n"), 0);
    assert_int_equal(wd_conf_read(path, envp, &conf, &errs), 0);
    memset(&errs, 0, sizeof errs);
    assert_int_equal(wd_conf_apply_section(conf, "postgres", wd_pg_conf_fields,
                                           wd_pg_conf_n_fields, &pc, &errs),
                     WD_ECONFIG);
    wd_conf_free(conf);
    bool jitter = false, dsn = false;
    for (int i = 0; i < errs.n; i++) {
        jitter |= strstr(errs.msg[i], "reconnect_jitter") != NULL;
        dsn |= strstr(errs.msg[i], "dsn") != NULL;
    }
    assert_true(jitter);
    assert_true(dsn);
    unlink(path);
}

static void no_password_in_errors(void **state) {
    fixture *f = *state;
    /* Nothing listens on this port: every connect fails. */
    int port = wdt_free_tcp_port();
    char dsn[256], needle[64];
    snprintf(dsn, sizeof dsn,
             "host=127.0.0.1 port=%d user=warden password=sekret dbname=warden sslmode=disable",
             port);
    snprintf(needle, sizeof needle, "127.0.0.1:%d/warden", port);

    /* wd_log writes to fd 2: catch it in a file for the test's length. */
    char logpath[] = "/tmp/pg_test_log.XXXXXX";
    int logfd = mkstemp(logpath), saved = dup(STDERR_FILENO);
    assert_true(logfd >= 0 && saved >= 0);
    assert_true(dup2(logfd, STDERR_FILENO) >= 0);

    wd_metrics *m = wd_metrics_new();
    assert_non_null(m);
    wd_pg *pg = open_pg(f, dsn, "secretive", m, 1000);
    cap c = {0};
    int rc = wd_pg_query(pg, "SELECT 1", 0, NULL, cap_cb, &c);
    bool waited = rc == 0 && wdt_run_until(&f->loop, cap_done, &c, WAIT_MS);
    char label[128], last[WD_PG_ERR_MAX + 1];
    snprintf(label, sizeof label, "%s", wd_pg_label(pg));
    snprintf(last, sizeof last, "%s", wd_pg_last_error(pg));
    close_pg(f, pg);
    char *prom = NULL;
    size_t plen = 0;
    assert_int_equal(wd_metrics_render_prometheus(m, &prom, &plen), 0);
    wd_metrics_free(m);

    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char logbuf[16384] = "";
    ssize_t got = pread(logfd, logbuf, sizeof logbuf - 1, 0);
    close(logfd);
    unlink(logpath);
    logbuf[got > 0 ? got : 0] = '\0';

    assert_int_equal(rc, 0);
    assert_true(waited);
    assert_int_equal(c.status[0], WD_EUNAVAIL);
    assert_int_equal(c.cls[0], WD_ERRCLASS_TRANSIENT);
    assert_non_null(strstr(c.msg[0], "connect failed"));
    assert_null(strstr(c.msg[0], "sekret"));
    assert_string_equal(label, needle);
    assert_true(last[0] != '\0');
    assert_null(strstr(last, "sekret"));
    assert_non_null(strstr(logbuf, needle)); /* the log says where, */
    assert_null(strstr(logbuf, "sekret"));   /* never the password */
    assert_null(strstr(prom, "sekret"));
    assert_non_null(strstr(prom, "client=\"secretive\""));
    free(prom);
}

/* ---- against the suite's server ---- */

static void params_query(void **state) {
    fixture *f = *state;
    wd_pg *pg = open_pg(f, need_pg(f), "t", NULL, 5000);
    cap c;
    const char *const p[] = {"40", "2"};
    run_sql(f, pg, &c, "SELECT $1::int + $2::int", 2, p);
    assert_int_equal(c.status[0], 0);
    assert_string_equal(c.val[0], "42");
    /* Values are sent as parameters, never spliced into the SQL. */
    const char *const q[] = {"x'; DROP TABLE nothing; --", NULL};
    run_sql(f, pg, &c, "SELECT $1::text || '|' || coalesce($2::text, 'null')", 2, q);
    assert_int_equal(c.status[0], 0);
    assert_string_equal(c.val[0], "x'; DROP TABLE nothing; --|null");
    run_sql(f, pg, &c, "SELECT generate_series(1, 5)", 0, NULL);
    assert_int_equal(c.ntuples[0], 5);
    assert_int_equal(wd_pg_query(pg, NULL, 0, NULL, NULL, NULL), WD_EINVAL);
    assert_int_equal(wd_pg_query(pg, "SELECT $1", 1, NULL, NULL, NULL), WD_EINVAL);
    close_pg(f, pg);
}

static void prepared_statements(void **state) {
    fixture *f = *state;
    wd_pg *pg = open_pg(f, need_pg(f), "t", NULL, 5000);
    cap c = {0};
    assert_int_equal(wd_pg_prepare(pg, "add1", "SELECT $1::int + 1", 1, cap_cb, &c), 0);
    assert_true(wdt_run_until(&f->loop, cap_done, &c, WAIT_MS));
    assert_int_equal(c.status[0], 0);
    assert_int_equal(wd_pg_prepare(pg, "add1", "SELECT 1", 0, NULL, NULL), WD_EEXIST);
    for (int i = 0; i < 3; i++) {
        char in[16], want[16];
        snprintf(in, sizeof in, "%d", i * 10);
        snprintf(want, sizeof want, "%d", i * 10 + 1);
        const char *const p[] = {in};
        memset(&c, 0, sizeof c);
        assert_int_equal(wd_pg_exec_prepared(pg, "add1", 1, p, cap_cb, &c), 0);
        assert_true(wdt_run_until(&f->loop, cap_done, &c, WAIT_MS));
        assert_int_equal(c.status[0], 0);
        assert_string_equal(c.val[0], want);
    }
    /* Bad SQL fails the prepare and is not remembered: the name stays free. */
    memset(&c, 0, sizeof c);
    assert_int_equal(wd_pg_prepare(pg, "bad", "SELEC 1", 0, cap_cb, &c), 0);
    assert_true(wdt_run_until(&f->loop, cap_done, &c, WAIT_MS));
    assert_int_equal(c.status[0], WD_EPERMANENT);
    assert_string_equal(c.sqlstate[0], "42601");
    memset(&c, 0, sizeof c);
    assert_int_equal(wd_pg_prepare(pg, "bad", "SELECT 2", 0, cap_cb, &c), 0);
    assert_true(wdt_run_until(&f->loop, cap_done, &c, WAIT_MS));
    assert_int_equal(c.status[0], 0);
    close_pg(f, pg);
}

static void pipelined_batch(void **state) {
    fixture *f = *state;
    wd_pg *pg = open_pg(f, need_pg(f), "t", NULL, 5000);
    cap c = {0};
    const char *const one[] = {"alpha"}, *const two[] = {"beta"};
    wd_pg_stmt ok[] = {
        {.sql = "CREATE TEMP TABLE batch_t (v text PRIMARY KEY)"},
        {.sql = "INSERT INTO batch_t VALUES ($1)", .nparams = 1, .params = one},
        {.sql = "INSERT INTO batch_t VALUES ($1)", .nparams = 1, .params = two},
        {.sql = "SELECT count(*) FROM batch_t"},
    };
    assert_int_equal(wd_pg_batch(pg, ok, 4, cap_cb, &c), 0);
    assert_true(wdt_run_until(&f->loop, cap_done, &c, WAIT_MS));
    assert_int_equal(c.calls, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(c.status[i], 0);
        assert_int_equal(c.index[i], i);
    }
    assert_string_equal(c.val[3], "2");
    /* A failing statement: the batch is one transaction, the ones after it
     * are skipped and the ones before it rolled back. */
    const char *const three[] = {"gamma"};
    wd_pg_stmt bad[] = {
        {.sql = "INSERT INTO batch_t VALUES ($1)", .nparams = 1, .params = three},
        {.sql = "INSERT INTO batch_t VALUES ($1)", .nparams = 1, .params = one},
        {.sql = "SELECT 1"},
    };
    memset(&c, 0, sizeof c);
    assert_int_equal(wd_pg_batch(pg, bad, 3, cap_cb, &c), 0);
    assert_true(wdt_run_until(&f->loop, cap_done, &c, WAIT_MS));
    assert_int_equal(c.calls, 3);
    assert_int_equal(c.status[0], 0);
    assert_int_equal(c.status[1], WD_EPERMANENT);
    assert_string_equal(c.sqlstate[1], "23505");
    assert_int_equal(c.status[2], WD_ESTATE);
    run_sql(f, pg, &c, "SELECT count(*) FROM batch_t", 0, NULL);
    assert_string_equal(c.val[0], "2");
    assert_int_equal(wd_pg_batch(pg, ok, 0, cap_cb, &c), WD_EINVAL);
    close_pg(f, pg);
}

static void listen_notify(void **state) {
    fixture *f = *state;
    wd_pg *pg = open_pg(f, need_pg(f), "listener", NULL, 5000);
    wd_pg *other = open_pg(f, need_pg(f), "sender", NULL, 5000);
    notes n = {0};
    cap c;
    assert_int_equal(wd_pg_listen(pg, "wd_Test_chan", note_cb, &n), 0);
    assert_int_equal(wd_pg_listen(pg, "wd_Test_chan", note_cb, &n), WD_EEXIST);
    assert_int_equal(wd_pg_listen(pg, "bad-name", note_cb, &n), WD_EINVAL);
    assert_int_equal(wd_pg_listen(pg, "x\"; DROP", note_cb, &n), WD_EINVAL);
    run_sql(f, pg, &c, "SELECT 1", 0, NULL); /* after it, the LISTEN is in place */
    assert_int_equal(c.status[0], 0);
    const char *const p[] = {"wd_Test_chan", "payload 1"};
    run_sql(f, other, &c, "SELECT pg_notify($1, $2)", 2, p);
    assert_int_equal(c.status[0], 0);
    assert_true(wdt_run_until(&f->loop, note_seen, &n, WAIT_MS));
    assert_int_equal(n.n, 1);
    assert_string_equal(n.channel, "wd_Test_chan");
    assert_string_equal(n.payload, "payload 1");
    assert_int_equal(n.be_pid, wd_pg_backend_pid(other));
    assert_int_not_equal(n.be_pid, wd_pg_backend_pid(pg));
    /* After UNLISTEN, nothing more arrives. */
    assert_int_equal(wd_pg_unlisten(pg, "wd_Test_chan"), 0);
    run_sql(f, pg, &c, "SELECT 1", 0, NULL);
    run_sql(f, other, &c, "SELECT pg_notify($1, $2)", 2, p);
    run_sql(f, pg, &c, "SELECT pg_sleep(0.05)", 0, NULL);
    assert_int_equal(n.n, 1);
    close_pg(f, other);
    close_pg(f, pg);
}

static void sqlstate_classification(void **state) {
    fixture *f = *state;
    wd_pg_opts o;
    wd_pg_opts_default(&o);
    o.conninfo = need_pg(f);
    o.statement_timeout_ms = 200;
    o.breaker.failure_threshold = 3;
    wd_pg *pg = NULL;
    assert_int_equal(wd_pg_open(&f->loop, &o, &pg, NULL, 0), 0);
    cap c;
    run_sql(f, pg, &c, "CREATE TEMP TABLE u (k int PRIMARY KEY)", 0, NULL);
    assert_int_equal(c.status[0], 0);
    /* Many permanent errors: the server is healthy, the breaker stays closed. */
    for (int i = 0; i < 5; i++) {
        run_sql(f, pg, &c, "INSERT INTO u VALUES (1)", 0, NULL);
        assert_int_equal(c.status[0], i == 0 ? 0 : WD_EPERMANENT);
    }
    assert_string_equal(c.sqlstate[0], "23505");
    assert_int_equal(c.cls[0], WD_ERRCLASS_PERMANENT);
    assert_true(strlen(c.msg[0]) > 0);
    run_sql(f, pg, &c, "SELEC 1", 0, NULL);
    assert_string_equal(c.sqlstate[0], "42601");
    assert_int_equal(c.cls[0], WD_ERRCLASS_PERMANENT);
    run_sql(f, pg, &c, "SELECT * FROM no_such_table_here", 0, NULL);
    assert_string_equal(c.sqlstate[0], "42P01");
    assert_int_equal(c.status[0], WD_EPERMANENT);
    assert_int_equal(wd_pg_breaker(pg)->state, BRK_CLOSED);
    /* statement_timeout set at connect: 57014, a timeout for the breaker. */
    run_sql(f, pg, &c, "SELECT pg_sleep(5)", 0, NULL);
    assert_int_equal(c.status[0], WD_ETIMEDOUT);
    assert_string_equal(c.sqlstate[0], "57014");
    assert_int_equal(c.cls[0], wd_classify_sqlstate("57014"));
    assert_int_equal(wd_pg_breaker(pg)->failures, 1);
    /* The connection is still good. */
    run_sql(f, pg, &c, "SELECT 7", 0, NULL);
    assert_int_equal(c.status[0], 0);
    assert_string_equal(c.val[0], "7");
    assert_int_equal(wd_pg_connects(pg), 1);
    close_pg(f, pg);
}

static void metrics_values(void **state) {
    fixture *f = *state;
    wd_metrics *m = wd_metrics_new();
    assert_non_null(m);
    wd_pg *pg = open_pg(f, need_pg(f), "mx", m, 5000);
    cap c;
    run_sql(f, pg, &c, "SELECT 1", 0, NULL);
    run_sql(f, pg, &c, "SELECT 2", 0, NULL);
    run_sql(f, pg, &c, "SELEC 3", 0, NULL);
    wd_pg_stmt b[] = {{.sql = "SELECT 1"}, {.sql = "SELECT 2"}};
    memset(&c, 0, sizeof c);
    assert_int_equal(wd_pg_batch(pg, b, 2, cap_cb, &c), 0);
    assert_true(wdt_run_until(&f->loop, cap_done, &c, WAIT_MS));
    char *prom = NULL;
    size_t len = 0;
    assert_int_equal(wd_metrics_render_prometheus(m, &prom, &len), 0);
    assert_non_null(strstr(prom, "warden_pg_queries_total{client=\"mx\"} 5\n"));
    assert_non_null(strstr(prom, "warden_pg_errors_total{client=\"mx\",class=\"permanent\"} 1\n"));
    assert_non_null(strstr(prom, "warden_pg_errors_total{client=\"mx\",class=\"transient\"} 0\n"));
    assert_non_null(strstr(prom, "warden_pg_query_duration_seconds_count{client=\"mx\"} 4\n"));
    assert_non_null(strstr(prom, "warden_pg_connection_state{client=\"mx\",state=\"ready\"} 1\n"));
    assert_non_null(
        strstr(prom, "warden_pg_connection_state{client=\"mx\",state=\"backoff\"} 0\n"));
    assert_non_null(strstr(prom, "warden_pg_reconnects_total{client=\"mx\"} 0\n"));
    free(prom);
    /* The same names again in the same registry: a clear refusal. */
    wd_pg_opts o;
    wd_pg_opts_default(&o);
    o.conninfo = need_pg(f);
    o.metrics = m;
    wd_pg *dup = NULL;
    char err[256];
    assert_int_equal(wd_pg_open(&f->loop, &o, &dup, err, sizeof err), WD_EEXIST);
    assert_non_null(strstr(err, "metrics"));
    close_pg(f, pg);
    wd_metrics_free(m);
}

static void close_fails_pending(void **state) {
    fixture *f = *state;
    wd_pg *pg = open_pg(f, need_pg(f), "t", NULL, 5000);
    cap a = {0}, b = {0};
    assert_int_equal(wd_pg_query(pg, "SELECT pg_sleep(2)", 0, NULL, cap_cb, &a), 0);
    assert_int_equal(wd_pg_query(pg, "SELECT 1", 0, NULL, cap_cb, &b), 0);
    assert_int_equal(wd_pg_pending(pg), 2);
    int closed = 0;
    assert_int_equal(wd_pg_close(pg, closed_cb, &closed), 0);
    /* Callbacks ran inside close, before the handles are gone. */
    assert_int_equal(a.status[0], WD_ECLOSED);
    assert_int_equal(b.status[0], WD_ECLOSED);
    assert_int_equal(closed, 0);
    assert_true(wdt_run_until(&f->loop, flag_set, &closed, WAIT_MS));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(open_rejects_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(conf_table, setup, teardown),
        cmocka_unit_test_setup_teardown(no_password_in_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(params_query, setup, teardown),
        cmocka_unit_test_setup_teardown(prepared_statements, setup, teardown),
        cmocka_unit_test_setup_teardown(pipelined_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(listen_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(sqlstate_classification, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_values, setup, teardown),
        cmocka_unit_test_setup_teardown(close_fails_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
