/* The book: positions by index, the symbol index (two heaps of price levels
 * per symbol, plus the water-mark epochs of pm_trail.c), the max-holding
 * deadline heap and evaluation (heaps are compacted by pm_sweep.c). See
 * pm.h for why the heaps make the cost of a quote independent of the
 * book's size. */
#include "pm.h"
#include "pm_index.h"
#include "wd_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PM_POS_INIT 1024
#define PM_VEC_INIT 64
#define PM_REPUSH_MAX 64 /* positions re-placed per flush (see flush) */
#define LO (-1)             /* max-heap sign */
#define HI 1                /* min-heap sign */
#define VER_MASK PM_VER_MASK

int pm_vec_grow(void **v, size_t *cap, size_t n, size_t sz) {
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : PM_VEC_INIT;
    void *p = realloc(*v, c * sz);
    if (p == NULL)
        return WD_ENOMEM;
    *v = p;
    *cap = c;
    return 0;
}

int pm_book_init(pm_book *b, uint32_t max_positions, pm_fire_cb fire, void *arg) {
    memset(b, 0, sizeof *b);
    b->max_pos = max_positions;
    b->fire = fire;
    b->fire_arg = arg;
    pm_names_init(&b->symnames, PM_SYMBOLS_MAX);
    pm_names_init(&b->accounts, PM_ACCOUNTS_MAX);
    return 0;
}

void pm_book_free(pm_book *b) {
    for (uint32_t i = 0; i < b->n_syms; i++) {
        pm_heap_free(&b->syms[i].lo);
        pm_heap_free(&b->syms[i].hi);
        pm_trail_free(&b->syms[i]);
    }
    free(b->syms);
    free(b->pos);
    free(b->free_list);
    pm_idmap_free(&b->ids);
    pm_names_free(&b->symnames);
    pm_names_free(&b->accounts);
    free(b->time);
    free(b->dirty_water);
    free(b->dirty_syms);
    free(b->dirty_ep);
    free(b->sweeps);
    memset(b, 0, sizeof *b);
}

int64_t pm_book_symbol_find(const pm_book *b, const char *name) {
    return pm_names_find(&b->symnames, name);
}

int64_t pm_book_symbol(pm_book *b, const char *name) {
    int64_t i = pm_names_intern(&b->symnames, name);
    if (i < 0)
        return i;
    if ((uint32_t)i >= b->n_syms) {
        if (b->n_syms == b->cap_syms) {
            uint32_t cap = b->cap_syms ? b->cap_syms * 2 : PM_VEC_INIT;
            void *p = realloc(b->syms, (size_t)cap * sizeof *b->syms);
            if (p == NULL)
                return WD_ENOMEM;
            b->syms = p;
            b->cap_syms = cap;
        }
        pm_sym *s = &b->syms[b->n_syms++];
        memset(s, 0, sizeof *s);
        strcpy(s->name, name);
    }
    return i;
}

const char *pm_book_account_name(const pm_book *b, uint32_t account) {
    return account < b->accounts.n ? b->accounts.names[account] : "";
}

uint32_t pm_book_find(const pm_book *b, int64_t id) { return pm_idmap_get(&b->ids, id); }

void pm_book_set_state(pm_book *b, uint32_t i, pm_state st) {
    pm_pos *p = &b->pos[i];
    if (p->state == PM_ST_OPEN && st != PM_ST_OPEN)
        pm_trail_leave(b, i); /* its epoch entry is stale from now on */
    uint32_t *from = p->state == PM_ST_OPEN      ? &b->n_open
                     : p->state == PM_ST_EXITING ? &b->n_exiting
                     : p->state != PM_ST_FREE    ? &b->n_closing
                                                 : NULL;
    uint32_t *to = st == PM_ST_OPEN      ? &b->n_open
                   : st == PM_ST_EXITING ? &b->n_exiting
                   : st != PM_ST_FREE    ? &b->n_closing
                                         : NULL;
    if (from != NULL)
        (*from)--;
    if (to != NULL)
        (*to)++;
    p->state = (uint8_t)st;
}

/* ---- heap entries ---- */

bool pm_entry_live(const pm_book *b, const pm_hent *e) {
    if (e->pos >= b->n_pos)
        return false;
    const pm_pos *p = &b->pos[e->pos];
    uint32_t ver = (e->tag & 1) ? p->uver : p->mver;
    return p->state == PM_ST_OPEN && (e->tag >> 1) == (ver & VER_MASK);
}

/* ---- placing a position in the index ---- */

/* The main band of a member of an epoch: its fixed levels only (stop loss,
 * take profit); the epoch watches the trailing level. */
static void fixed_band(const pm_pos *p, double *lo, double *hi) {
    *lo = -INFINITY;
    *hi = INFINITY;
    if (p->side == PM_LONG) {
        if (p->stop_loss > 0)
            *lo = p->stop_loss;
        if (p->take_profit > 0)
            *hi = p->take_profit;
    } else {
        if (p->stop_loss > 0)
            *hi = p->stop_loss;
        if (p->take_profit > 0)
            *lo = p->take_profit;
    }
}

static int push_main(pm_book *b, uint32_t i) {
    pm_pos *p = &b->pos[i];
    pm_sym *s = &b->syms[p->sym];
    double lo, hi;
    int rc = 0;
    if (p->epoch != PM_EP_OWN)
        fixed_band(p, &lo, &hi);
    else
        pm_rules_band(p, &lo, &hi);
    uint32_t tag = (p->mver & VER_MASK) << 1;
    if (lo > -INFINITY)
        rc = pm_heap_push(&s->lo, (pm_hent){.key = lo, .pos = i, .tag = tag}, LO);
    if (rc == 0 && hi < INFINITY)
        rc = pm_heap_push(&s->hi, (pm_hent){.key = hi, .pos = i, .tag = tag}, HI);
    pm_book_check_heap(b, p->sym, 0);
    pm_book_check_heap(b, p->sym, 1);
    return rc;
}

/* New main entries for i (its version was just bumped): in an epoch when
 * join allows and one fits, else a band of its own. */
static int place(pm_book *b, uint32_t i, bool join) {
    if (join && pm_trail_join(b, i) < 0)
        return WD_ENOMEM;
    return push_main(b, i);
}

static int push_underlying(pm_book *b, uint32_t i) {
    pm_pos *p = &b->pos[i];
    if (p->usym == PM_NONE)
        return 0;
    pm_sym *u = &b->syms[p->usym];
    pm_hent e = {.key = p->underlying_stop, .pos = i, .tag = ((p->uver & VER_MASK) << 1) | 1};
    int rc = p->side == PM_LONG ? pm_heap_push(&u->lo, e, LO) : pm_heap_push(&u->hi, e, HI);
    pm_book_check_heap(b, p->usym, p->side == PM_LONG ? 0 : 1);
    return rc;
}

static void time_sift_up(pm_tent *h, size_t i) {
    pm_tent e = h[i];
    while (i > 0 && h[(i - 1) / 2].deadline_ns > e.deadline_ns) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = e;
}

static void time_pop(pm_book *b) {
    pm_tent *h = b->time;
    pm_tent e = h[--b->n_time];
    size_t i = 0, n = b->n_time;
    if (n == 0)
        return;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h[c + 1].deadline_ns < h[c].deadline_ns)
            c++;
        if (h[c].deadline_ns >= e.deadline_ns)
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = e;
}

static int push_time(pm_book *b, uint32_t i) {
    uint64_t dl = pm_rules_deadline(&b->pos[i]);
    if (dl == 0)
        return 0;
    if (pm_vec_grow((void **)&b->time, &b->cap_time, b->n_time, sizeof *b->time) != 0)
        return WD_ENOMEM;
    b->time[b->n_time] = (pm_tent){.deadline_ns = dl, .id = b->pos[i].id, .pos = i};
    time_sift_up(b->time, b->n_time++);
    return 0;
}

static int push_all(pm_book *b, uint32_t i) {
    int rc = place(b, i, true);
    if (rc == 0)
        rc = push_underlying(b, i);
    if (rc == 0)
        rc = push_time(b, i);
    return rc;
}

/* ---- positions ---- */

static void fill_from_row(pm_pos *p, const pm_row *r) {
    p->id = r->id;
    p->side = (uint8_t)r->side;
    p->trail_kind = (uint8_t)r->trail_kind;
    p->quantity = r->quantity;
    p->entry = r->entry;
    p->stop_loss = r->stop_loss;
    p->take_profit = r->take_profit;
    p->trail = r->trail;
    p->underlying_stop = r->underlying_stop;
    p->max_hold_ms = r->max_hold_ms;
    p->opened_at_ns = r->opened_at_ns;
}

/* Keeps whichever water mark is further along: the row's may be older than
 * the one in memory that waits for the next persistence batch. */
static void merge_water(pm_pos *p, double w) {
    if (!(w > 0))
        return;
    if (!(p->water > 0) || (p->side == PM_LONG ? w > p->water : w < p->water))
        p->water = w;
}

static int resolve_names(pm_book *b, const pm_row *r, uint32_t *sym, uint32_t *usym,
                         uint32_t *acct) {
    int64_t s = pm_book_symbol(b, r->symbol), u = -1, a;
    if (s < 0)
        return (int)s;
    if (r->underlying[0] != '\0' && (u = pm_book_symbol(b, r->underlying)) < 0)
        return (int)u;
    if ((a = pm_names_intern(&b->accounts, r->account)) < 0)
        return (int)a;
    *sym = (uint32_t)s;
    *usym = u < 0 ? PM_NONE : (uint32_t)u;
    *acct = (uint32_t)a;
    return 0;
}

static int alloc_slot(pm_book *b, uint32_t *out) {
    if (b->n_free > 0) {
        *out = b->free_list[--b->n_free];
        return 0;
    }
    if (b->n_pos >= b->max_pos)
        return WD_ETOOBIG;
    if (b->n_pos == b->cap_pos) {
        uint32_t cap = b->cap_pos ? b->cap_pos * 2 : PM_POS_INIT;
        if (cap > b->max_pos)
            cap = b->max_pos;
        void *p = realloc(b->pos, (size_t)cap * sizeof *b->pos);
        void *f = realloc(b->free_list, (size_t)cap * sizeof *b->free_list);
        if (p != NULL)
            b->pos = p;
        if (f != NULL)
            b->free_list = f;
        if (p == NULL || f == NULL)
            return WD_ENOMEM;
        b->cap_pos = cap;
    }
    *out = b->n_pos;
    memset(&b->pos[b->n_pos], 0, sizeof b->pos[0]);
    b->n_pos++;
    return 0;
}

int pm_book_upsert(pm_book *b, const pm_row *r, uint32_t *out) {
    uint32_t sym = 0, usym = PM_NONE, acct = 0, i = pm_book_find(b, r->id);
    int rc = resolve_names(b, r, &sym, &usym, &acct);
    if (rc != 0)
        return rc;
    if (i == PM_NONE) {
        if ((rc = alloc_slot(b, &i)) != 0)
            return rc;
        pm_pos *p = &b->pos[i];
        uint32_t mver = p->mver, uver = p->uver; /* versions survive slot reuse */
        memset(p, 0, sizeof *p);
        p->mver = mver + 1;
        p->uver = uver + 1;
        p->epoch = PM_EP_OWN;
        fill_from_row(p, r);
        p->sym = sym;
        p->usym = usym;
        p->account = acct;
        merge_water(p, r->water);
        p->pwater = r->water > 0 ? r->water : (p->trail_kind != PM_TRAIL_NONE ? p->entry : 0);
        if ((rc = pm_idmap_put(&b->ids, r->id, i)) != 0) {
            b->free_list[b->n_free++] = i;
            return rc;
        }
        b->syms[sym].refs++;
        if (usym != PM_NONE)
            b->syms[usym].refs++;
        if (r->closing) {
            p->reason = (uint8_t)r->reason;
            p->exec_get = 1; /* the order may exist already: ask before placing it */
            pm_book_set_state(b, i, PM_ST_CLOSING);
        } else {
            pm_book_set_state(b, i, PM_ST_OPEN);
            rc = push_all(b, i);
        }
        *out = i;
        return rc;
    }
    pm_pos *p = &b->pos[i];
    *out = i;
    if (p->state != PM_ST_OPEN)
        return 0; /* being exited: the monitor's own state is further along */
    if (r->closing) {
        /* Marked closing by someone else (an operator, another monitor): take
         * over the order, asking the broker first. */
        p->reason = (uint8_t)r->reason;
        p->exec_get = 1;
        pm_book_set_state(b, i, PM_ST_CLOSING);
        return 0;
    }
    pm_trail_leave(b, i); /* its rules may have changed: placed again below */
    b->syms[p->sym].refs--;
    if (p->usym != PM_NONE)
        b->syms[p->usym].refs--;
    fill_from_row(p, r);
    p->sym = sym;
    p->usym = usym;
    p->account = acct;
    merge_water(p, r->water);
    b->syms[sym].refs++;
    if (usym != PM_NONE)
        b->syms[usym].refs++;
    p->mver++;
    p->uver++;
    return push_all(b, i);
}

int pm_book_remove(pm_book *b, int64_t id) {
    uint32_t i = pm_book_find(b, id);
    if (i == PM_NONE)
        return WD_ENOTFOUND;
    pm_pos *p = &b->pos[i];
    b->syms[p->sym].refs--;
    if (p->usym != PM_NONE)
        b->syms[p->usym].refs--;
    pm_book_set_state(b, i, PM_ST_FREE);
    p->mver++;
    p->uver++;
    p->water_dirty = false;
    p->id = 0;
    pm_idmap_del(&b->ids, id);
    b->free_list[b->n_free++] = i;
    return 0;
}

void pm_book_reopen(pm_book *b, uint32_t i) {
    pm_pos *p = &b->pos[i];
    if (p->state != PM_ST_EXITING)
        return;
    pm_book_set_state(b, i, PM_ST_OPEN);
    p->reason = PM_EXIT_NONE;
    p->mver++;
    p->uver++;
    push_all(b, i);
}

/* ---- evaluation ---- */

static void fire(pm_book *b, uint32_t i, pm_exit_reason why, double price, uint64_t now) {
    pm_pos *p = &b->pos[i];
    pm_book_set_state(b, i, PM_ST_EXITING);
    p->reason = (uint8_t)why;
    p->mark = price;
    p->fired_ns = now;
    if (b->fire != NULL)
        b->fire(b->fire_arg, i, why, price);
}

/* Positions popped at a price whose entries must be placed again once the
 * heaps are drained. */
typedef struct {
    uint32_t pos[PM_REPUSH_MAX];
    bool join[PM_REPUSH_MAX];
    size_t n;
} repush;

/* Places what r holds. Flushing in the middle of a drain is safe: every
 * entry made here lies beyond the price that is being drained (a long's new
 * band is below and above it; a new epoch member sits at distance 0 with a
 * positive trail), so it cannot pop again for the same price. */
static void flush(pm_book *b, repush *r) {
    for (size_t k = 0; k < r->n; k++)
        place(b, r->pos[k], r->join[k]);
    r->n = 0;
}

static void later(pm_book *b, repush *r, uint32_t i, bool join) {
    if (r->n == PM_REPUSH_MAX)
        flush(b, r);
    r->pos[r->n] = i;
    r->join[r->n++] = join;
}

/* One popped main entry: the position's rules at price. Queues it for new
 * entries when its band moved. */
static void handle(pm_book *b, const pm_hent *e, double price, uint64_t now, repush *r) {
    pm_pos *p = &b->pos[e->pos];
    b->evaluated++;
    if (e->tag & 1) {
        if (pm_rules_underlying_hit(p, price))
            fire(b, e->pos, PM_EXIT_UNDERLYING_STOP, price, now);
        return;
    }
    if (p->epoch != PM_EP_OWN)
        p->water = pm_book_water(b, e->pos);
    bool moved = pm_rules_water(p, price);
    pm_exit_reason why = pm_rules_price_exit(p, price);
    if (why != PM_EXIT_NONE) {
        fire(b, e->pos, why, price, now);
        return;
    }
    if (moved)
        pm_book_note_water(b, e->pos);
    /* A member's fixed levels always fire; should one not, it takes a band
     * of its own rather than loop. */
    bool join = moved && p->epoch == PM_EP_OWN;
    pm_trail_leave(b, e->pos);
    p->mver++;
    later(b, r, e->pos, join);
}

/* One popped entry of an epoch: the heap key only says it may fire. */
static void handle_trail(pm_book *b, const pm_hent *e, double price, uint64_t now, repush *r) {
    pm_pos *p = &b->pos[e->pos];
    b->evaluated++;
    p->water = pm_book_water(b, e->pos);
    pm_exit_reason why = pm_rules_price_exit(p, price);
    if (why != PM_EXIT_NONE) {
        fire(b, e->pos, why, price, now);
        return;
    }
    /* Within the slack, not beyond the level: a band of its own (joining
     * again would pop it again at this price). */
    pm_trail_leave(b, e->pos);
    p->mver++;
    later(b, r, e->pos, false);
}

/* Pops the entries of h up to lim (sign -1: keys >= lim; 1: keys <= lim). */
static void drain(pm_book *b, pm_heap *h, int sign, double lim, bool trail, double price,
                  uint64_t now, repush *r) {
    while (h->n > 0 && (sign == LO ? h->v[0].key >= lim : h->v[0].key <= lim)) {
        pm_hent e = h->v[0];
        pm_heap_pop(h, sign);
        if (!pm_entry_live(b, &e)) {
            b->stale_pops++;
            continue;
        }
        if (trail)
            handle_trail(b, &e, price, now, r);
        else
            handle(b, &e, price, now, r);
    }
}

size_t pm_book_eval_symbol(pm_book *b, uint32_t sym, uint64_t now) {
    pm_sym *s = &b->syms[sym];
    double price = s->price;
    uint64_t before = b->evaluated;
    repush r;
    if (!(price > 0))
        return 0;
    r.n = 0;
    /* The epochs' extremes first: a member's water mark includes this price
     * (as pm_rules_water would move it) before its trailing level is checked. */
    pm_trail_advance(b, sym, price);
    drain(b, &s->lo, LO, price, false, price, now, &r);
    drain(b, &s->hi, HI, price, false, price, now, &r);
    for (unsigned side = 0; side < 2; side++) {
        for (unsigned k = 0; s->ep_live[side] >> k; k++) {
            pm_epoch *e = &s->ep[side][k];
            if (!((s->ep_live[side] >> k) & 1))
                continue;
            size_t n0 = e->pct.n + e->abs.n;
            drain(b, &e->pct, HI, pm_trail_reach(e, side, false, price), true, price, now, &r);
            drain(b, &e->abs, HI, pm_trail_reach(e, side, true, price), true, price, now, &r);
            if (e->pct.n + e->abs.n != n0)
                e->mods++;
        }
    }
    flush(b, &r);
    return (size_t)(b->evaluated - before);
}

void pm_book_set_price(pm_book *b, uint32_t sym, double price, uint64_t now) {
    pm_sym *s = &b->syms[sym];
    s->price = price;
    s->price_ns = now;
    if (s->dirty || pm_vec_grow((void **)&b->dirty_syms, &b->cap_dirty_syms, b->n_dirty_syms,
                             sizeof *b->dirty_syms) != 0)
        return;
    s->dirty = true;
    b->dirty_syms[b->n_dirty_syms++] = sym;
}

size_t pm_book_eval_dirty(pm_book *b, uint64_t now) {
    size_t n = 0;
    for (size_t k = 0; k < b->n_dirty_syms; k++) {
        uint32_t sym = b->dirty_syms[k];
        b->syms[sym].dirty = false;
        n += pm_book_eval_symbol(b, sym, now);
    }
    b->n_dirty_syms = 0;
    if (b->n_sweeps > 0)
        pm_book_sweep(b, PM_SWEEP_BUDGET);
    return n;
}

size_t pm_book_eval_time(pm_book *b, uint64_t now_real, uint64_t now) {
    size_t fired = 0;
    while (b->n_time > 0 && b->time[0].deadline_ns <= now_real) {
        pm_tent e = b->time[0];
        time_pop(b);
        if (e.pos >= b->n_pos)
            continue;
        pm_pos *p = &b->pos[e.pos];
        if (p->id != e.id || p->state != PM_ST_OPEN || pm_rules_deadline(p) != e.deadline_ns)
            continue;
        fire(b, e.pos, PM_EXIT_MAX_HOLDING, 0, now);
        fired++;
    }
    return fired;
}

size_t pm_book_kill(pm_book *b, const char *account, uint64_t now) {
    int64_t a = account != NULL ? pm_names_find(&b->accounts, account) : -1;
    size_t fired = 0;
    if (account != NULL && a < 0)
        return 0;
    for (uint32_t i = 0; i < b->n_pos; i++) {
        pm_pos *p = &b->pos[i];
        if (p->state == PM_ST_OPEN && (a < 0 || p->account == (uint32_t)a)) {
            fire(b, i, PM_EXIT_KILL_SWITCH, 0, now);
            fired++;
        }
    }
    return fired;
}

size_t pm_book_scan_all(pm_book *b, uint64_t now) {
    size_t n = 0;
    for (uint32_t i = 0; i < b->n_pos; i++) {
        pm_pos *p = &b->pos[i];
        if (p->state != PM_ST_OPEN)
            continue;
        double price = b->syms[p->sym].price;
        n++;
        if (p->epoch != PM_EP_OWN) {
            /* A book is scanned or indexed, not both: out of its epoch, the
             * position's own mark is what the scan moves. */
            pm_trail_leave(b, i);
            p->mver++;
        }
        if (price > 0) {
            bool moved = pm_rules_water(p, price);
            pm_exit_reason why = pm_rules_price_exit(p, price);
            if (why != PM_EXIT_NONE) {
                fire(b, i, why, price, now);
                continue;
            }
            if (moved)
                pm_book_note_water(b, i);
        }
        if (p->usym != PM_NONE && pm_rules_underlying_hit(p, b->syms[p->usym].price))
            fire(b, i, PM_EXIT_UNDERLYING_STOP, b->syms[p->usym].price, now);
    }
    return n;
}
