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
void pm_heap_free(pm_heap *h);

#endif
