/* PostgreSQL side of the monitor, all through common/pg.h (non-blocking,
 * breaker, reconnect re-running LISTEN):
 *  - at every (re)connect: the schema (when configured), then a reload of
 *    every open and closing row in keyset pages; what was closed meanwhile
 *    leaves the book, closing rows are reconciled with the broker. NOTIFYs
 *    missed while disconnected are covered by that reload.
 *  - NOTIFY positions_changed (payload: the id): that one row is read again.
 *  - the cycle's database part: the reload when due, then the writes of
 *    pm_write.c (mark closing, record fills; water marks in pm_db_persist).
 * A failed write keeps its positions queued and is tried again after
 * db_retry_interval; monitoring goes on meanwhile. */
#include "pm_worker.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PM_CHANNEL "positions_changed"
#define PM_SCHEMA_MAX (256u * 1024u)
#define PM_SCHEMA_STMTS_MAX 64

void pm_db_count_query(pm_worker *w) {
    w->db_queries++;
    w->cur.db_queries++;
}

void pm_db_retry_later(pm_worker *w, uint64_t *next) {
    *next = wd_clock_mono_ns() + w->conf.db_retry_interval_ms * WD_NS_PER_MS;
}

bool pm_db_failed(pm_worker *w, const wd_pg_result *r, const char *what) {
    if (r->status == 0)
        return false;
    if (r->status != WD_ECLOSED) {
        pm_count_error(w, PM_ERR_DB);
        wd_warn("database: %s failed: %s%s%s", what, wd_strerror(r->status),
                r->message[0] ? ": " : "", r->message);
    }
    return true;
}

/* ---- rows ---- */

static void reject(pm_worker *w, int64_t id, const char *why) {
    w->rejected_rows++;
    pm_reject *r = &w->rejects[w->n_rejects++ % PM_REJECTS_KEPT];
    r->id = id;
    snprintf(r->why, sizeof r->why, "%s", why);
    wd_warn("position %lld rejected: %s", (long long)id, why);
    pm_book_remove(&w->book, id);
}

/* One row from a SELECT of PM_ROW_COLUMNS: into the book, or rejected. */
static void take_row(pm_worker *w, const PGresult *res, int row) {
    const char *v[PM_ROW_NCOLS];
    char why[PM_WHY_MAX + 1];
    pm_row r;
    for (int c = 0; c < PM_ROW_NCOLS; c++)
        v[c] = PQgetisnull(res, row, c) ? NULL : PQgetvalue(res, row, c);
    int64_t id = v[0] ? strtoll(v[0], NULL, 10) : 0;
    if (v[15] != NULL && strcmp(v[15], "closed") == 0) {
        pm_book_remove(&w->book, id);
        return;
    }
    if (pm_row_parse(v, &r, why, sizeof why) != 0) {
        reject(w, id, why);
        return;
    }
    uint32_t i;
    int rc = pm_book_upsert(&w->book, &r, &i);
    if (rc != 0) {
        pm_count_error(w, PM_ERR_BOOK_FULL);
        reject(w, id, rc == WD_ETOOBIG ? "the book is full (max_positions)" : wd_strerror(rc));
        return;
    }
    w->book.pos[i].seen = true;
    if (w->book.pos[i].state == PM_ST_CLOSING)
        pm_exec_add(w, i);
}

/* ---- load / reload ---- */

static void load_page(pm_worker *w);

static void load_done(pm_worker *w) {
    pm_book *b = &w->book;
    uint32_t gone = 0, closing = 0;
    uint64_t now = wd_clock_mono_ns();
    for (uint32_t i = 0; i < b->n_pos; i++) {
        pm_pos *p = &b->pos[i];
        if (p->state == PM_ST_FREE)
            continue;
        if (!p->seen) {
            /* Closed or deleted while we were not listening. */
            pm_book_remove(b, p->id);
            gone++;
            continue;
        }
        if (p->state == PM_ST_CLOSING) {
            /* After a reconnect the outcome of a call in flight is unknown:
             * ask the broker before placing anything. */
            p->exec_get = 1;
            p->next_try_ns = now;
            pm_exec_add(w, i);
            closing++;
        }
    }
    w->loading = false;
    w->loaded = true;
    wd_info("positions loaded: %u rows, %u rejected, %u open, %u closing (reconciling), %u gone",
            w->load_rows, w->load_rejected, b->n_open, closing, gone);
}

static void on_page(wd_pg *pg, const wd_pg_result *r, void *arg) {
    pm_worker *w = arg;
    (void)pg;
    if (pm_db_failed(w, r, "loading positions")) {
        w->loading = false;
        if (r->status != WD_ECLOSED) {
            w->load_again = true;
            pm_db_retry_later(w, &w->closing_next_ns);
        }
        return;
    }
    int n = PQntuples(r->res);
    uint64_t rej = w->rejected_rows;
    for (int i = 0; i < n; i++) {
        take_row(w, r->res, i);
        w->load_after_id = strtoll(PQgetvalue(r->res, i, 0), NULL, 10);
    }
    w->load_rows += (uint32_t)n;
    w->load_rejected += (uint32_t)(w->rejected_rows - rej);
    if (n < w->conf.load_page_rows)
        load_done(w);
    else
        load_page(w);
}

static void load_page(pm_worker *w) {
    char after[PM_NUM_MAX], lim[PM_NUM_MAX], sql[1024];
    snprintf(after, sizeof after, "%lld", (long long)w->load_after_id);
    snprintf(lim, sizeof lim, "%lld", (long long)w->conf.load_page_rows);
    snprintf(sql, sizeof sql,
             "SELECT %s FROM positions WHERE status IN ('open', 'closing') AND id > $1 "
             "ORDER BY id LIMIT $2",
             PM_ROW_COLUMNS);
    const char *params[] = {after, lim};
    pm_db_count_query(w);
    int rc = wd_pg_query(w->pg, sql, 2, params, on_page, w);
    if (rc != 0) {
        w->loading = false;
        w->load_again = true;
        pm_count_error(w, PM_ERR_DB);
    }
}

static void load_start(pm_worker *w) {
    for (uint32_t i = 0; i < w->book.n_pos; i++)
        w->book.pos[i].seen = false;
    w->loading = true;
    w->load_again = false;
    w->load_after_id = 0;
    w->load_rows = w->load_rejected = 0;
    load_page(w);
}

/* ---- schema ---- */

typedef struct {
    char *text;
    const char *stmts[PM_SCHEMA_STMTS_MAX];
    size_t n;
} pm_schema;

static pm_schema *schema_of(pm_worker *w) { return (pm_schema *)w->schema; }

/* Splits SQL on top-level ';' (not inside quotes, dollar quotes or
 * comments), in place. The file is ours (config/schema.sql), but a
 * statement list is what the pipeline batch of pg.h runs. */
static int schema_split(pm_schema *s) {
    char *p = s->text, *start = s->text;
    char dollar[64] = "";
    bool sq = false;
    s->n = 0;
    for (; *p; p++) {
        if (dollar[0] != '\0') {
            size_t dl = strlen(dollar);
            if (strncmp(p, dollar, dl) == 0) {
                p += dl - 1;
                dollar[0] = '\0';
            }
        } else if (sq) {
            if (*p == '\'')
                sq = false;
        } else if (p[0] == '-' && p[1] == '-') {
            while (p[1] && p[1] != '\n')
                p++;
        } else if (*p == '\'') {
            sq = true;
        } else if (*p == '$') {
            char *e = p + 1;
            while (*e == '_' || (*e >= 'a' && *e <= 'z') || (*e >= 'A' && *e <= 'Z'))
                e++;
            if (*e == '$' && (size_t)(e - p + 2) < sizeof dollar) {
                memcpy(dollar, p, (size_t)(e - p + 1));
                dollar[e - p + 1] = '\0';
                p = e;
            }
        } else if (*p == ';') {
            *p = '\0';
            char *t = start;
            while (*t == ' ' || *t == '\n' || *t == '\t' || *t == '\r')
                t++;
            bool only_comments = true;
            for (char *c = t; *c; c++) {
                if (c[0] == '-' && c[1] == '-') {
                    while (*c && *c != '\n')
                        c++;
                    if (!*c)
                        break;
                } else if (*c != ' ' && *c != '\n' && *c != '\t' && *c != '\r') {
                    only_comments = false;
                    break;
                }
            }
            if (!only_comments) {
                if (s->n == PM_SCHEMA_STMTS_MAX)
                    return WD_ETOOBIG;
                s->stmts[s->n++] = t;
            }
            start = p + 1;
        }
    }
    return 0;
}

static int schema_load(pm_worker *w, char *err, size_t errlen) {
    FILE *f = fopen(w->conf.schema_file, "rb");
    pm_schema *s = calloc(1, sizeof *s);
    if (s == NULL || (s->text = malloc(PM_SCHEMA_MAX + 1)) == NULL) {
        if (f)
            fclose(f);
        if (s)
            free(s);
        return WD_ENOMEM;
    }
    if (f == NULL) {
        snprintf(err, errlen, "schema_file %s: %s", w->conf.schema_file, strerror(errno));
        free(s->text);
        free(s);
        return WD_ECONFIG;
    }
    size_t n = fread(s->text, 1, PM_SCHEMA_MAX, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    s->text[n] = '\0';
    int rc = more ? WD_ETOOBIG : schema_split(s);
    if (rc != 0 || s->n == 0) {
        snprintf(err, errlen, "schema_file %s: %s", w->conf.schema_file,
                 rc ? "too large" : "no statement");
        free(s->text);
        free(s);
        return WD_ECONFIG;
    }
    w->schema = s;
    return 0;
}

static void on_schema(wd_pg *pg, const wd_pg_result *r, void *arg) {
    pm_worker *w = arg;
    (void)pg;
    if (r->status != 0 && !w->schema_failed) {
        w->schema_failed = true;
        pm_db_failed(w, r, "applying schema_file");
    }
    if (!r->last)
        return;
    if (w->schema_failed) {
        w->loading = false;
        if (r->status != WD_ECLOSED) {
            w->load_again = true;
            pm_db_retry_later(w, &w->closing_next_ns);
        }
        return;
    }
    load_start(w);
}

/* The schema first (its trigger must exist before the load, or an insert
 * between the two would go unnoticed), then the load. */
static void connect_begin(pm_worker *w) {
    pm_schema *s = schema_of(w);
    if (s == NULL) {
        load_start(w);
        return;
    }
    wd_pg_stmt st[PM_SCHEMA_STMTS_MAX];
    for (size_t i = 0; i < s->n; i++)
        st[i] = (wd_pg_stmt){.sql = s->stmts[i]};
    w->loading = true;
    w->schema_failed = false;
    pm_db_count_query(w);
    if (wd_pg_batch(w->pg, st, s->n, on_schema, w) != 0) {
        w->loading = false;
        w->load_again = true;
    }
}

/* ---- NOTIFY ---- */

static void on_one(wd_pg *pg, const wd_pg_result *r, void *arg) {
    pm_worker *w = arg;
    (void)pg;
    if (pm_db_failed(w, r, "reading a changed position")) {
        if (r->status != WD_ECLOSED)
            w->load_again = true; /* a full reload covers it */
        return;
    }
    int n = PQntuples(r->res);
    for (int i = 0; i < n; i++)
        take_row(w, r->res, i);
}

void pm_db_read_one(pm_worker *w, int64_t id) {
    char sql[1024], ids[PM_NUM_MAX];
    snprintf(sql, sizeof sql, "SELECT %s FROM positions WHERE id = $1", PM_ROW_COLUMNS);
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *params[] = {ids};
    pm_db_count_query(w);
    if (wd_pg_query(w->pg, sql, 1, params, on_one, w) != 0)
        w->load_again = true;
}

static void on_notify(wd_pg *pg, const char *channel, const char *payload, int be_pid,
                      void *arg) {
    pm_worker *w = arg;
    char *end;
    (void)pg;
    (void)channel;
    (void)be_pid;
    errno = 0;
    long long id = strtoll(payload, &end, 10);
    if (errno != 0 || *end != '\0' || id <= 0)
        return;
    uint32_t i = pm_book_find(&w->book, id);
    /* Our own closing write notifies too: a position being exited is ours. */
    if (i != PM_NONE && w->book.pos[i].state != PM_ST_OPEN)
        return;
    pm_db_read_one(w, id);
}

/* ---- the cycle's database part ---- */

void pm_db_cycle(pm_worker *w, uint64_t now) {
    if (w->pg == NULL)
        return;
    bool ready = wd_pg_get_state(w->pg) == WD_PG_READY;
    uint64_t c = wd_pg_connects(w->pg);
    if (ready && c != w->pg_connects_seen && !w->loading) {
        if (w->pg_connects_seen != 0)
            wd_info("database: reconnected; reloading positions");
        w->pg_connects_seen = c;
        connect_begin(w);
    } else if (ready && w->load_again && !w->loading && now >= w->closing_next_ns) {
        connect_begin(w);
    }
    if (!ready || !w->loaded)
        return;
    pm_write_cycle(w, now);
}

int pm_db_start(pm_worker *w, char *err, size_t errlen) {
    wd_pg_opts o;
    int rc;
    if (w->conf.schema_file[0] != '\0' && (rc = schema_load(w, err, errlen)) != 0)
        return rc;
    wd_pg_opts_default(&o);
    o.conninfo = w->conf.dsn;
    o.name = "positions";
    o.metrics = w->reg;
    o.connect_timeout_ms = 3000;
    o.statement_timeout_ms = 30000;
    o.reconnect_max_ms = 5000;
    o.breaker.open_ns = 2 * WD_NS_PER_SEC;
    o.breaker.open_max_ns = 30 * WD_NS_PER_SEC;
    if ((rc = wd_pg_open(w->loop, &o, &w->pg, err, errlen)) != 0)
        return rc;
    if ((rc = wd_pg_listen(w->pg, PM_CHANNEL, on_notify, w)) != 0) {
        snprintf(err, errlen, "LISTEN %s: %s", PM_CHANNEL, wd_strerror(rc));
        return rc;
    }
    if (wrk_breaker_register(w->ctx, wd_pg_breaker(w->pg), false) == 0)
        w->pg_brk_registered = true;
    wd_info("database: %s", wd_pg_label(w->pg));
    return 0;
}

static void on_pg_closed(void *arg) { (void)arg; }

void pm_db_stop(pm_worker *w) {
    if (w->pg == NULL)
        return;
    if (w->pg_brk_registered)
        wrk_breaker_unregister(w->ctx, wd_pg_breaker(w->pg));
    wd_pg_close(w->pg, on_pg_closed, NULL);
    w->pg = NULL;
}

void pm_db_fini(pm_worker *w) {
    pm_schema *s = schema_of(w);
    if (s != NULL) {
        free(s->text);
        free(s);
        w->schema = NULL;
    }
}
