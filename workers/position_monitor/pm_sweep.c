/* Incremental compaction of the book's heaps. An entry goes stale when its
 * position's band moves, it exits or it is removed; stale entries are
 * dropped when they surface, and a heap whose entries exceed twice its live
 * positions (plus PM_COMPACT_SLACK) is queued for a sweep: a bounded number
 * of entries examined per call (pm_book_eval_dirty spends PM_SWEEP_BUDGET a
 * cycle), each stale one removed in O(log n) with the heap order kept. So
 * no cycle pays for a whole heap; only a heap growing PM_COMPACT_FORCE times
 * past its limit faster than the sweep can follow is filtered at once. */
#include "pm.h"
#include "pm_index.h"

#define PM_COMPACT_SLACK 32 /* stale heap entries tolerated beyond 2x live */
#define PM_COMPACT_FORCE 8
#define LO (-1)
#define HI 1

static bool keep_live(void *arg, const pm_hent *e) { return pm_entry_live(arg, e); }

static pm_heap *heap_at(pm_book *b, uint32_t sym, unsigned which, int *sign, size_t *live) {
    pm_sym *s = &b->syms[sym];
    if (which < 2) {
        *sign = which == 0 ? LO : HI;
        *live = s->refs;
        return which == 0 ? &s->lo : &s->hi;
    }
    unsigned w = which - 2, side = w / (2 * PM_EPOCHS_MAX), slot = (w / 2) % PM_EPOCHS_MAX;
    pm_epoch *e = pm_trail_epoch(b, sym, side, slot);
    *sign = HI;
    *live = e->members;
    return (w & 1) ? &e->abs : &e->pct;
}

void pm_book_check_heap(pm_book *b, uint32_t sym, unsigned which) {
    int sign;
    size_t live;
    pm_heap *h = heap_at(b, sym, which, &sign, &live);
    size_t limit = 2 * live + PM_COMPACT_SLACK;
    if (h->n <= limit)
        return;
    if (h->n > PM_COMPACT_FORCE * limit) {
        /* Stale entries arrive faster than the sweep removes them. */
        pm_heap_filter(h, keep_live, b, sign);
        b->full_compactions++;
        return;
    }
    if (h->queued ||
        pm_vec_grow((void **)&b->sweeps, &b->cap_sweeps, b->n_sweeps, sizeof *b->sweeps) != 0)
        return;
    h->queued = true;
    b->sweeps[b->n_sweeps++] = (pm_href){.sym = sym, .which = which};
}

size_t pm_book_sweep(pm_book *b, size_t budget) {
    size_t used = 0;
    while (used < budget && b->n_sweeps > 0) {
        pm_href r = b->sweeps[b->n_sweeps - 1];
        int sign;
        size_t live, removed = 0;
        bool done;
        pm_heap *h = heap_at(b, r.sym, r.which, &sign, &live);
        used += pm_heap_sweep(h, keep_live, b, sign, budget - used, &removed, &done) + 1;
        b->swept += removed;
        if (done) {
            h->queued = false;
            b->n_sweeps--;
        }
    }
    return used;
}

