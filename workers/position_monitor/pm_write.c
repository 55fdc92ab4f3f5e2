/* The monitor's writes, each one statement (one transaction) over arrays,
 * batched per cycle (PM_WRITE_BATCH_MAX positions each):
 *  - mark closing: open -> closing with reason and client order id; a row
 *    that was not open is read again and followed;
 *  - record fills: closing -> closed with price and broker order id;
 *  - water marks: taken from the book (pm_book_water_take), every
 *    persist_interval while some are pending.
 * A failed write keeps its positions queued and is tried again after
 * db_retry_interval. */
#include "pm_worker.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_CLOSING[] =
    "UPDATE positions AS p SET status = 'closing', exit_reason = v.reason, "
    "client_order_id = v.coid, closing_at = now() "
    "FROM unnest($1::bigint[], $2::text[], $3::text[]) AS v(id, reason, coid) "
    "WHERE p.id = v.id AND p.status = 'open' RETURNING p.id";
static const char SQL_CLOSED[] =
    "UPDATE positions AS p SET status = 'closed', exit_price = v.price, "
    "broker_order_id = v.boid, closed_at = now() "
    "FROM unnest($1::bigint[], $2::numeric[], $3::text[]) AS v(id, price, boid) "
    "WHERE p.id = v.id AND p.status = 'closing' RETURNING p.id";
static const char SQL_WATER[] =
    "UPDATE positions AS p SET water_mark = v.w "
    "FROM unnest($1::bigint[], $2::numeric[]) AS v(id, w) "
    "WHERE p.id = v.id AND p.status = 'open'";


/* ---- a growable text buffer for array literals ---- */

typedef struct {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *t, size_t n) {
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->n + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, t, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *t) { sb_add(b, t, strlen(t)); }

/* An element of a text[] literal: double-quoted, \ and " escaped. */
static void sb_quoted(sbuf *b, const char *t) {
    sb_add(b, "\"", 1);
    for (; *t; t++) {
        if (*t == '"' || *t == '\\')
            sb_add(b, "\\", 1);
        sb_add(b, t, 1);
    }
    sb_add(b, "\"", 1);
}

static void sb_sep(sbuf *b, size_t i) { sb_add(b, i == 0 ? "{" : ",", 1); }

/* ---- writes ---- */

typedef struct {
    pm_worker *w;
    size_t n;
    int64_t *ids;
    uint32_t *pos;   /* closing: the positions */
    pm_fill *fills;  /* closed: the fills */
} write_ctx;

static void write_free(write_ctx *x) {
    free(x->ids);
    free(x->pos);
    free(x->fills);
    free(x);
}

static int cmp_id(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The ids a RETURNING p.id gave back, sorted (NULL when none or out of
 * memory: then every lookup says no and the rows are read again). */
static int64_t *returned_ids(const PGresult *res, size_t *n) {
    int rows = res ? PQntuples(res) : 0;
    int64_t *v = rows > 0 ? malloc((size_t)rows * sizeof *v) : NULL;
    *n = v ? (size_t)rows : 0;
    for (size_t i = 0; i < *n; i++)
        v[i] = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
    if (v)
        qsort(v, *n, sizeof *v, cmp_id);
    return v;
}

static bool returned(const int64_t *ids, size_t n, int64_t id) {
    return ids != NULL && bsearch(&id, ids, n, sizeof *ids, cmp_id) != NULL;
}

static void on_closing(wd_pg *pg, const wd_pg_result *r, void *arg) {
    write_ctx *x = arg;
    pm_worker *w = x->w;
    (void)pg;
    w->closing_inflight = false;
    bool failed = pm_db_failed(w, r, "marking positions closing"), added = false;
    size_t nret = 0;
    int64_t *ret = failed ? NULL : returned_ids(r->res, &nret);
    for (size_t k = 0; k < x->n; k++) {
        uint32_t i = x->pos[k];
        pm_pos *p = &w->book.pos[i];
        if (p->id != x->ids[k] || p->state != PM_ST_EXITING)
            continue;
        p->db_inflight = 0;
        if (failed) {
            if (r->status != WD_ECLOSED && !pm_exiting_push(w, i))
                pm_book_reopen(&w->book, i);
            continue;
        }
        if (returned(ret, nret, p->id)) {
            pm_book_set_state(&w->book, i, PM_ST_CLOSING);
            p->exec_get = 0;
            p->next_try_ns = 0;
            pm_exec_add(w, i);
            added = true;
        } else {
            /* The row was not open: maybe already closing from an attempt
             * whose answer was lost. Read it again and follow the row. */
            int64_t id = p->id;
            pm_book_remove(&w->book, id);
            pm_db_read_one(w, id);
        }
    }
    free(ret);
    if (failed)
        pm_db_retry_later(w, &w->closing_next_ns);
    write_free(x);
    /* The orders go out now, not at the next cycle: a stop's exit is on the
     * clock (bench/position_monitor_e2e). The throttle still paces them. */
    if (added && !w->stopping)
        pm_exec_cycle(w, wd_clock_mono_ns());
}

static void write_closing(pm_worker *w) {
    size_t n = w->n_exiting < PM_WRITE_BATCH_MAX ? w->n_exiting : PM_WRITE_BATCH_MAX;
    write_ctx *x = calloc(1, sizeof *x);
    sbuf ids = {0}, reasons = {0}, coids = {0};
    if (x == NULL || !(x->ids = malloc(n * sizeof *x->ids)) ||
        !(x->pos = malloc(n * sizeof *x->pos)))
        goto fail;
    x->w = w;
    for (size_t k = 0; k < n; k++) {
        uint32_t i = w->exiting[k];
        pm_pos *p = &w->book.pos[i];
        if (p->state != PM_ST_EXITING || p->db_inflight)
            continue;
        char num[PM_NUM_MAX], coid[PM_COID_MAX + 1];
        snprintf(num, sizeof num, "%lld", (long long)p->id);
        pm_client_order_id(p->id, coid, sizeof coid);
        sb_sep(&ids, x->n);
        sb_str(&ids, num);
        sb_sep(&reasons, x->n);
        sb_quoted(&reasons, pm_exit_reason_name((pm_exit_reason)p->reason));
        sb_sep(&coids, x->n);
        sb_quoted(&coids, coid);
        x->ids[x->n] = p->id;
        x->pos[x->n++] = i;
    }
    memmove(w->exiting, w->exiting + n, (w->n_exiting - n) * sizeof *w->exiting);
    w->n_exiting -= n;
    if (x->n == 0) {
        write_free(x);
        return;
    }
    sb_str(&ids, "}");
    sb_str(&reasons, "}");
    sb_str(&coids, "}");
    if (ids.oom || reasons.oom || coids.oom)
        goto requeue;
    const char *params[] = {ids.s, reasons.s, coids.s};
    pm_db_count_query(w);
    if (wd_pg_query(w->pg, SQL_CLOSING, 3, params, on_closing, x) != 0) {
        pm_count_error(w, PM_ERR_DB);
        goto requeue;
    }
    for (size_t k = 0; k < x->n; k++)
        w->book.pos[x->pos[k]].db_inflight = 1;
    w->closing_inflight = true;
    free(ids.s);
    free(reasons.s);
    free(coids.s);
    return;
requeue:
    for (size_t k = 0; k < x->n; k++)
        w->exiting[w->n_exiting++] = x->pos[k];
    pm_db_retry_later(w, &w->closing_next_ns);
fail:
    free(ids.s);
    free(reasons.s);
    free(coids.s);
    if (x != NULL)
        write_free(x);
}

static void on_closed(wd_pg *pg, const wd_pg_result *r, void *arg) {
    write_ctx *x = arg;
    pm_worker *w = x->w;
    (void)pg;
    w->closed_inflight = false;
    if (pm_db_failed(w, r, "recording fills")) {
        if (r->status != WD_ECLOSED) {
            /* Keep them: the next attempt writes the same fills. */
            for (size_t k = 0; k < x->n; k++)
                pm_exec_refill(w, &x->fills[k]);
            pm_db_retry_later(w, &w->closed_next_ns);
        }
        write_free(x);
        return;
    }
    size_t nret = 0;
    int64_t *ret = returned_ids(r->res, &nret);
    for (size_t k = 0; k < x->n; k++) {
        const pm_fill *f = &x->fills[k];
        uint32_t i = pm_book_find(&w->book, f->id);
        if (!returned(ret, nret, f->id))
            w->duplicate_fills++; /* closed already (by an earlier attempt) */
        else if (i != PM_NONE) {
            wd_info("closed: position %lld at %g (%s, order %s)", (long long)f->id, f->price,
                    pm_exit_reason_name((pm_exit_reason)w->book.pos[i].reason), f->boid);
            pm_alert_exit(w, &w->book.pos[i], f);
        }
        pm_book_remove(&w->book, f->id);
    }
    free(ret);
    write_free(x);
}

static void write_closed(pm_worker *w) {
    size_t n = w->n_fills < PM_WRITE_BATCH_MAX ? w->n_fills : PM_WRITE_BATCH_MAX;
    write_ctx *x = calloc(1, sizeof *x);
    sbuf ids = {0}, prices = {0}, boids = {0};
    if (x == NULL || !(x->fills = malloc(n * sizeof *x->fills)))
        goto fail;
    x->w = w;
    x->n = n;
    memcpy(x->fills, w->fills, n * sizeof *x->fills);
    for (size_t k = 0; k < n; k++) {
        char num[PM_NUM_MAX];
        snprintf(num, sizeof num, "%lld", (long long)x->fills[k].id);
        sb_sep(&ids, k);
        sb_str(&ids, num);
        snprintf(num, sizeof num, "%.17g", x->fills[k].price);
        sb_sep(&prices, k);
        sb_str(&prices, num);
        sb_sep(&boids, k);
        sb_quoted(&boids, x->fills[k].boid);
    }
    sb_str(&ids, "}");
    sb_str(&prices, "}");
    sb_str(&boids, "}");
    if (ids.oom || prices.oom || boids.oom)
        goto fail;
    const char *params[] = {ids.s, prices.s, boids.s};
    pm_db_count_query(w);
    if (wd_pg_query(w->pg, SQL_CLOSED, 3, params, on_closed, x) != 0) {
        pm_count_error(w, PM_ERR_DB);
        goto fail;
    }
    memmove(w->fills, w->fills + n, (w->n_fills - n) * sizeof *w->fills);
    w->n_fills -= n;
    w->closed_inflight = true;
    free(ids.s);
    free(prices.s);
    free(boids.s);
    return;
fail:
    pm_db_retry_later(w, &w->closed_next_ns);
    free(ids.s);
    free(prices.s);
    free(boids.s);
    if (x != NULL)
        write_free(x);
}

typedef struct {
    pm_worker *w;
    size_t n;
    pm_water *marks;
} water_ctx;

/* A failed write: the marks are queued again (taken again as they are then). */
static void water_requeue(pm_worker *w, const water_ctx *x) {
    for (size_t k = 0; k < x->n; k++) {
        uint32_t i = pm_book_find(&w->book, x->marks[k].id);
        if (i != PM_NONE && w->book.pos[i].state == PM_ST_OPEN)
            pm_book_note_water(&w->book, i);
    }
}

static void on_water(wd_pg *pg, const wd_pg_result *r, void *arg) {
    water_ctx *x = arg;
    pm_worker *w = x->w;
    (void)pg;
    w->water_inflight = false;
    if (pm_db_failed(w, r, "persisting water marks") && r->status != WD_ECLOSED)
        water_requeue(w, x);
    free(x->marks);
    free(x);
}

void pm_db_persist(pm_worker *w, uint64_t now) {
    pm_book *b = &w->book;
    if (w->pg == NULL || w->water_inflight || !pm_book_water_pending(b) ||
        now < w->persist_next_ns)
        return;
    if (wd_pg_get_state(w->pg) != WD_PG_READY)
        return; /* kept in memory; written once the database is back */
    w->persist_next_ns = now + w->conf.persist_interval_ms * WD_NS_PER_MS;
    water_ctx *x = calloc(1, sizeof *x);
    sbuf ids = {0}, ws = {0};
    if (x == NULL || !(x->marks = malloc(PM_WRITE_BATCH_MAX * sizeof *x->marks))) {
        free(x);
        return;
    }
    x->w = w;
    x->n = pm_book_water_take(b, x->marks, PM_WRITE_BATCH_MAX);
    for (size_t k = 0; k < x->n; k++) {
        char num[PM_NUM_MAX];
        snprintf(num, sizeof num, "%lld", (long long)x->marks[k].id);
        sb_sep(&ids, k);
        sb_str(&ids, num);
        snprintf(num, sizeof num, "%.17g", x->marks[k].water);
        sb_sep(&ws, k);
        sb_str(&ws, num);
    }
    sb_str(&ids, "}");
    sb_str(&ws, "}");
    const char *params[] = {ids.s, ws.s};
    if (x->n > 0 && !ids.oom && !ws.oom) {
        pm_db_count_query(w);
        if (wd_pg_query(w->pg, SQL_WATER, 2, params, on_water, x) == 0) {
            w->water_inflight = true;
            x = NULL;
        }
    }
    if (x != NULL) {
        water_requeue(w, x);
        free(x->marks);
        free(x);
    }
    free(ids.s);
    free(ws.s);
}

void pm_write_cycle(pm_worker *w, uint64_t now) {
    if (!w->closing_inflight && w->n_exiting > 0 && now >= w->closing_next_ns)
        write_closing(w);
    if (!w->closed_inflight && w->n_fills > 0 && now >= w->closed_next_ns)
        write_closed(w);
}
