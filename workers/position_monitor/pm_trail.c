/* Trailing stops by water-mark epoch (see pm.h): joining and leaving an
 * epoch, moving the epochs' extremes with a price (merging those that
 * meet), the thresholds a price reaches in an epoch's heaps, and the
 * persistence side: which water marks to write, taken in bounded batches. */
#include "pm.h"
#include "pm_index.h"
#include "wd_error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The heap keys are distances computed differently from the rule itself
 * (x * (1 - trail/100) against price); the slack makes the heap a superset
 * of what the rule fires, and the rule decides. 1e-12 of x is far above the
 * few ulps of rounding and far below any price tick. */
#define PM_TRAIL_SLACK 1e-12
/* Entries a persistence walk may visit per pm_book_water_take call, per
 * mark it may return. */
#define PM_WALK_PER_MARK 16

pm_epoch *pm_trail_epoch(pm_book *b, uint32_t sym, unsigned side, unsigned slot) {
    pm_epoch *ep = b->syms[sym].ep[side];
    return ep != NULL ? &ep[slot] : NULL;
}

static double own_water(const pm_pos *p) { return p->water > 0 ? p->water : p->entry; }

static double trail_key(const pm_pos *p) {
    return p->trail_kind == PM_TRAIL_PERCENT ? p->trail / 100 : p->trail;
}

static void queue_dirty(pm_book *b, uint32_t sym, unsigned side, unsigned slot) {
    pm_epoch *e = pm_trail_epoch(b, sym, side, slot);
    e->dirty = true;
    if (e->queued || pm_vec_grow((void **)&b->dirty_ep, &b->cap_dirty_ep, b->n_dirty_ep,
                                 sizeof *b->dirty_ep) != 0)
        return; /* queued again at the next move */
    e->queued = true;
    b->dirty_ep[b->n_dirty_ep++] = (pm_eref){.sym = sym, .side = (uint8_t)side, .slot = (uint8_t)slot};
}

/* Puts trailing position i into the epoch whose extreme equals its water
 * mark, or a free slot started at it. 1: joined; 0: no epoch for it (it
 * keeps a band of its own); WD_ENOMEM. */
int pm_trail_join(pm_book *b, uint32_t i) {
    pm_pos *p = &b->pos[i];
    pm_sym *s = &b->syms[p->sym];
    if (p->trail_kind == PM_TRAIL_NONE || p->state != PM_ST_OPEN)
        return 0;
    if (s->ep[p->side] == NULL && (s->ep[p->side] = calloc(PM_EPOCHS_MAX, sizeof(pm_epoch))) == NULL)
        return WD_ENOMEM;
    pm_epoch *ep = s->ep[p->side];
    double w = own_water(p);
    int slot = -1, free_slot = -1;
    for (int k = 0; k < PM_EPOCHS_MAX; k++) {
        if (ep[k].members > 0 && ep[k].x == w) {
            slot = k;
            break;
        }
        if (ep[k].members == 0 && free_slot < 0)
            free_slot = k;
    }
    if (slot < 0) {
        if (free_slot < 0)
            return 0;
        slot = free_slot;
        pm_epoch *e = &ep[slot];
        /* A free slot's entries are all stale (every member left it). */
        e->pct.n = e->abs.n = 0;
        e->pct.sweep = e->abs.sweep = 0;
        e->x = w;
        e->walking = false;
        e->dirty = false;
        e->mods++;
    }
    pm_epoch *e = &ep[slot];
    pm_heap *h = p->trail_kind == PM_TRAIL_PERCENT ? &e->pct : &e->abs;
    int rc = pm_heap_push(h, (pm_hent){.key = trail_key(p), .pos = i, .tag = (p->mver & PM_VER_MASK) << 1}, 1);
    if (rc != 0)
        return rc;
    p->water = w;
    p->epoch = (uint8_t)slot;
    e->members++;
    s->ep_live[p->side] |= (uint8_t)(1u << slot);
    e->mods++;
    b->epoch_joins++;
    pm_book_check_heap(b, p->sym, pm_trail_which(p->side, (unsigned)slot, p->trail_kind == PM_TRAIL_ABSOLUTE));
    return 1;
}

/* Leaves the epoch with the water mark it had there. The caller makes its
 * entry stale (a state change or a new version). */
void pm_trail_leave(pm_book *b, uint32_t i) {
    pm_pos *p = &b->pos[i];
    if (p->epoch == PM_EP_OWN)
        return;
    pm_epoch *e = pm_trail_epoch(b, p->sym, p->side, p->epoch);
    p->water = e->x;
    if (--e->members == 0)
        b->syms[p->sym].ep_live[p->side] &= (uint8_t)~(1u << p->epoch);
    e->mods++;
    p->epoch = PM_EP_OWN;
}

double pm_book_water(const pm_book *b, uint32_t i) {
    const pm_pos *p = &b->pos[i];
    if (p->epoch != PM_EP_OWN)
        return b->syms[p->sym].ep[p->side][p->epoch].x;
    if (p->water > 0)
        return p->water;
    return p->trail_kind != PM_TRAIL_NONE ? p->entry : 0;
}

/* Moves the live entries of epoch from into epoch to (same extreme from now
 * on, so the same water mark for all their members). */
static void merge(pm_book *b, uint32_t sym, unsigned side, unsigned to, unsigned from) {
    pm_epoch *t = pm_trail_epoch(b, sym, side, to), *f = pm_trail_epoch(b, sym, side, from);
    for (int k = 0; k < 2; k++) {
        pm_heap *fh = k == 0 ? &f->pct : &f->abs, *th = k == 0 ? &t->pct : &t->abs;
        for (size_t j = 0; j < fh->n; j++) {
            const pm_hent *e = &fh->v[j];
            if (!pm_entry_live(b, e) || pm_heap_push(th, *e, 1) != 0)
                continue; /* out of memory: the position is re-placed when it next pops */
            b->pos[e->pos].epoch = (uint8_t)to;
            t->members++;
        }
        fh->n = 0;
        fh->sweep = 0;
    }
    f->members = 0;
    b->syms[sym].ep_live[side] &= (uint8_t)~(1u << from);
    f->mods++;
    t->mods++;
    b->epoch_merges++;
    queue_dirty(b, sym, side, to);
}

void pm_trail_advance(pm_book *b, uint32_t sym, double price) {
    for (unsigned side = 0; side < 2; side++) {
        pm_epoch *ep = b->syms[sym].ep[side];
        unsigned live = b->syms[sym].ep_live[side], nlive = 0;
        bool moved = false;
        for (unsigned k = 0; live >> k; k++) {
            pm_epoch *e = &ep[k];
            if (!((live >> k) & 1))
                continue;
            nlive++;
            if (!(side == PM_LONG ? price > e->x : price < e->x))
                continue;
            e->x = price;
            moved = true;
            queue_dirty(b, sym, side, k);
        }
        if (!moved || nlive < 2)
            continue;
        /* Extremes that meet stay equal: one epoch is enough. */
        for (unsigned k = 0; k < PM_EPOCHS_MAX; k++)
            for (unsigned j = k + 1; j < PM_EPOCHS_MAX && ep[k].members > 0; j++)
                if (ep[j].members > 0 && ep[j].x == ep[k].x) {
                    bool small = ep[j].members <= ep[k].members;
                    merge(b, sym, side, small ? k : j, small ? j : k);
                }
    }
}

/* The distance from the extreme that price reaches (plus the slack):
 * entries with a key up to it may fire. Negative when price is on the
 * far side of the extreme (nothing fires). */
double pm_trail_reach(const pm_epoch *e, unsigned side, bool absolute, double price) {
    double d = side == PM_LONG ? e->x - price : price - e->x;
    return absolute ? d + e->x * PM_TRAIL_SLACK : d / e->x + PM_TRAIL_SLACK;
}

unsigned pm_trail_which(unsigned side, unsigned slot, bool absolute) {
    return 2 + (side * PM_EPOCHS_MAX + slot) * 2 + (absolute ? 1 : 0);
}

/* ---- persistence ---- */

void pm_book_note_water(pm_book *b, uint32_t i) {
    pm_pos *p = &b->pos[i];
    p->pwater = -1; /* taken whatever it is */
    if (p->water_dirty)
        return;
    if (pm_vec_grow((void **)&b->dirty_water, &b->cap_dirty_water, b->n_dirty_water,
                    sizeof *b->dirty_water) != 0)
        return; /* persisted with a later move, or at the next reload */
    p->water_dirty = true;
    b->dirty_water[b->n_dirty_water++] = i;
}

bool pm_book_water_pending(const pm_book *b) { return b->n_dirty_water > 0 || b->n_dirty_ep > 0; }

static void take_one(pm_book *b, uint32_t i, pm_water *out, size_t *n) {
    pm_pos *p = &b->pos[i];
    double w = pm_book_water(b, i);
    if (p->epoch != PM_EP_OWN)
        p->water = w;
    if (w == p->pwater || !(w > 0))
        return;
    p->pwater = w;
    out[(*n)++] = (pm_water){.id = p->id, .water = w};
}

/* One step of the walk over an epoch's members: true when it is clean (every
 * member's mark taken at the current extreme, with no change meanwhile). */
static bool walk(pm_book *b, pm_epoch *e, pm_water *out, size_t *n, size_t max, size_t *visits,
                 size_t visit_max) {
    if (!e->walking) {
        e->walking = true;
        e->walk_pos = 0;
        e->walk_x = e->x;
        e->walk_mods = e->mods;
    }
    while (e->members > 0 && e->walk_pos < e->pct.n + e->abs.n) {
        if (*n == max || *visits >= visit_max)
            return false;
        size_t j = e->walk_pos++;
        const pm_hent *h = j < e->pct.n ? &e->pct.v[j] : &e->abs.v[j - e->pct.n];
        (*visits)++;
        if (pm_entry_live(b, h))
            take_one(b, h->pos, out, n);
    }
    e->walking = false;
    if (e->members > 0 && (e->x != e->walk_x || e->mods != e->walk_mods))
        return false; /* moved or reshuffled during the walk: walk again */
    e->dirty = false;
    return true;
}

size_t pm_book_water_take(pm_book *b, pm_water *out, size_t max) {
    size_t n = 0, k = 0, visits = 0, visit_max = max * PM_WALK_PER_MARK;
    for (; k < b->n_dirty_water && n < max; k++) {
        uint32_t i = b->dirty_water[k];
        pm_pos *p = &b->pos[i];
        if (!p->water_dirty)
            continue;
        p->water_dirty = false;
        if (p->state == PM_ST_OPEN)
            take_one(b, i, out, &n);
    }
    if (k > 0) /* dirty_water is NULL until the first mark: no memmove on it */
        memmove(b->dirty_water, b->dirty_water + k,
                (b->n_dirty_water - k) * sizeof *b->dirty_water);
    b->n_dirty_water -= k;
    while (n < max && visits < visit_max && b->n_dirty_ep > 0) {
        size_t last = b->n_dirty_ep - 1;
        pm_eref r = b->dirty_ep[last];
        pm_epoch *e = pm_trail_epoch(b, r.sym, r.side, r.slot);
        if (walk(b, e, out, &n, max, &visits, visit_max)) {
            e->queued = false;
            b->n_dirty_ep--;
        } else if (!e->walking) {
            /* To walk again: let the others go first. */
            size_t j = b->ep_rot++ % b->n_dirty_ep;
            b->dirty_ep[last] = b->dirty_ep[j];
            b->dirty_ep[j] = r;
            if (j == last)
                break;
        }
    }
    return n;
}

void pm_trail_free(pm_sym *s) {
    for (int side = 0; side < 2; side++) {
        if (s->ep[side] == NULL)
            continue;
        for (int k = 0; k < PM_EPOCHS_MAX; k++) {
            pm_heap_free(&s->ep[side][k].pct);
            pm_heap_free(&s->ep[side][k].abs);
        }
        free(s->ep[side]);
        s->ep[side] = NULL;
    }
}
