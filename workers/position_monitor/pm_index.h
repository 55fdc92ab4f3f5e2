/* Containers of the book (pm_index.c): interned names, the id -> index map
 * and the binary heaps of price levels. Internal to the position monitor. */
#ifndef WD_PM_INDEX_H
#define WD_PM_INDEX_H

#include "pm.h"

int pm_names_init(pm_names *t, uint32_t max);
void pm_names_free(pm_names *t);
/* Index of name, or -1. */
int64_t pm_names_find(const pm_names *t, const char *name);
/* Index of name, added when new; WD_EINVAL (too long), WD_ETOOBIG, WD_ENOMEM. */
int64_t pm_names_intern(pm_names *t, const char *name);

void pm_idmap_free(pm_idmap *m);
uint32_t pm_idmap_get(const pm_idmap *m, int64_t id); /* PM_NONE when absent */
int pm_idmap_put(pm_idmap *m, int64_t id, uint32_t val);
void pm_idmap_del(pm_idmap *m, int64_t id);

/* sign 1: min-heap (the hi levels), -1: max-heap (the lo levels). */
int pm_heap_push(pm_heap *h, pm_hent e, int sign);
void pm_heap_pop(pm_heap *h, int sign);
/* Keeps the entries keep() accepts and restores the heap order. */
void pm_heap_filter(pm_heap *h, bool (*keep)(void *, const pm_hent *), void *arg, int sign);
/* Incremental compaction: examines up to budget entries from h->sweep on,
 * removing those keep() rejects (each O(log n), heap order kept); adds the
 * removed to *removed. Sets *done when the pass reached the end (h->sweep is
 * then back at 0). Returns the entries examined. */
size_t pm_heap_sweep(pm_heap *h, bool (*keep)(void *, const pm_hent *), void *arg, int sign,
                     size_t budget, size_t *removed, bool *done);
void pm_heap_free(pm_heap *h);

/* ---- shared by pm_book.c and pm_trail.c ---- */
#define PM_VER_MASK 0x7fffffffu
/* Grows *v (of *cap elements of size sz) to hold n + 1. */
int pm_vec_grow(void **v, size_t *cap, size_t n, size_t sz);
/* True when a heap entry still stands for its position's current rules. */
bool pm_entry_live(const pm_book *b, const pm_hent *e);
/* Queues heap `which` of sym (pm_href) for incremental compaction when its
 * stale entries outnumber the live ones. */
void pm_book_check_heap(pm_book *b, uint32_t sym, unsigned which);

/* pm_trail.c */
pm_epoch *pm_trail_epoch(pm_book *b, uint32_t sym, unsigned side, unsigned slot);
int pm_trail_join(pm_book *b, uint32_t pos);
void pm_trail_leave(pm_book *b, uint32_t pos);
/* A price for sym: every epoch's extreme follows it; epochs that meet merge. */
void pm_trail_advance(pm_book *b, uint32_t sym, double price);
double pm_trail_reach(const pm_epoch *e, unsigned side, bool absolute, double price);
/* The pm_href.which of an epoch's heap. */
unsigned pm_trail_which(unsigned side, unsigned slot, bool absolute);
void pm_trail_free(pm_sym *s);

#endif
