/* The book's containers: interned names (symbols, accounts), the id map and
 * the price heaps. Open addressing with linear probing; tables double at
 * half full, so probes stay short. */
#include "pm_index.h"
#include "wd_error.h"

#include <stdlib.h>
#include <string.h>

#define PM_NAMES_INIT 64
#define PM_HEAP_INIT 8
#define PM_IDMAP_INIT 1024
#define PM_TOMB UINT32_MAX

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static uint64_t hash_id(int64_t id) {
    uint64_t x = (uint64_t)id;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

/* ---- names ---- */

int pm_names_init(pm_names *t, uint32_t max) {
    memset(t, 0, sizeof *t);
    t->max = max;
    return 0;
}

void pm_names_free(pm_names *t) {
    free(t->names);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

int64_t pm_names_find(const pm_names *t, const char *name) {
    if (t->nslots == 0)
        return -1;
    for (uint32_t i = (uint32_t)(hash_str(name) & (t->nslots - 1));; i = (i + 1) & (t->nslots - 1)) {
        uint32_t v = t->slots[i];
        if (v == 0)
            return -1;
        if (strcmp(t->names[v - 1], name) == 0)
            return v - 1;
    }
}

static int names_rehash(pm_names *t, uint32_t nslots) {
    uint32_t *s = calloc(nslots, sizeof *s);
    if (s == NULL)
        return WD_ENOMEM;
    for (uint32_t k = 0; k < t->n; k++) {
        uint32_t i = (uint32_t)(hash_str(t->names[k]) & (nslots - 1));
        while (s[i] != 0)
            i = (i + 1) & (nslots - 1);
        s[i] = k + 1;
    }
    free(t->slots);
    t->slots = s;
    t->nslots = nslots;
    return 0;
}

int64_t pm_names_intern(pm_names *t, const char *name) {
    int64_t found = pm_names_find(t, name);
    if (found >= 0)
        return found;
    if (strlen(name) > PM_ACCOUNT_MAX)
        return WD_EINVAL;
    if (t->n >= t->max)
        return WD_ETOOBIG;
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : PM_NAMES_INIT;
        void *p = realloc(t->names, (size_t)cap * sizeof *t->names);
        if (p == NULL)
            return WD_ENOMEM;
        t->names = p;
        t->cap = cap;
    }
    if ((t->n + 1) * 2 > t->nslots) {
        int rc = names_rehash(t, t->nslots ? t->nslots * 2 : PM_NAMES_INIT * 2);
        if (rc != 0)
            return rc;
    }
    strcpy(t->names[t->n], name);
    uint32_t i = (uint32_t)(hash_str(name) & (t->nslots - 1));
    while (t->slots[i] != 0)
        i = (i + 1) & (t->nslots - 1);
    t->slots[i] = ++t->n;
    return t->n - 1;
}

/* ---- id map ---- */

void pm_idmap_free(pm_idmap *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

uint32_t pm_idmap_get(const pm_idmap *m, int64_t id) {
    if (m->nslots == 0)
        return PM_NONE;
    for (uint32_t i = (uint32_t)(hash_id(id) & (m->nslots - 1));; i = (i + 1) & (m->nslots - 1)) {
        if (m->vals[i] == 0)
            return PM_NONE;
        if (m->vals[i] != PM_TOMB && m->keys[i] == id)
            return m->vals[i] - 1;
    }
}

static int idmap_rehash(pm_idmap *m, uint32_t nslots) {
    int64_t *k = malloc((size_t)nslots * sizeof *k);
    uint32_t *v = calloc(nslots, sizeof *v);
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return WD_ENOMEM;
    }
    for (uint32_t j = 0; j < m->nslots; j++) {
        if (m->vals[j] == 0 || m->vals[j] == PM_TOMB)
            continue;
        uint32_t i = (uint32_t)(hash_id(m->keys[j]) & (nslots - 1));
        while (v[i] != 0)
            i = (i + 1) & (nslots - 1);
        k[i] = m->keys[j];
        v[i] = m->vals[j];
    }
    free(m->keys);
    free(m->vals);
    m->keys = k;
    m->vals = v;
    m->nslots = nslots;
    m->used = m->live;
    return 0;
}

int pm_idmap_put(pm_idmap *m, int64_t id, uint32_t val) {
    if ((m->used + 1) * 2 > m->nslots) {
        uint32_t ns = m->nslots ? m->nslots : PM_IDMAP_INIT;
        while ((m->live + 1) * 4 > ns)
            ns *= 2;
        int rc = idmap_rehash(m, ns);
        if (rc != 0)
            return rc;
    }
    uint32_t i = (uint32_t)(hash_id(id) & (m->nslots - 1));
    while (m->vals[i] != 0 && m->vals[i] != PM_TOMB) {
        if (m->keys[i] == id) {
            m->vals[i] = val + 1;
            return 0;
        }
        i = (i + 1) & (m->nslots - 1);
    }
    if (m->vals[i] == 0)
        m->used++;
    m->keys[i] = id;
    m->vals[i] = val + 1;
    m->live++;
    return 0;
}

void pm_idmap_del(pm_idmap *m, int64_t id) {
    if (m->nslots == 0)
        return;
    for (uint32_t i = (uint32_t)(hash_id(id) & (m->nslots - 1));; i = (i + 1) & (m->nslots - 1)) {
        if (m->vals[i] == 0)
            return;
        if (m->vals[i] != PM_TOMB && m->keys[i] == id) {
            m->vals[i] = PM_TOMB;
            m->live--;
            return;
        }
    }
}

/* ---- heaps: sign 1 = min-heap on key, -1 = max-heap ---- */

static bool before(const pm_hent *a, const pm_hent *b, int sign) {
    return sign > 0 ? a->key < b->key : a->key > b->key;
}

static void sift_up(pm_heap *h, size_t i, int sign) {
    pm_hent e = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&e, &h->v[p], sign))
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = e;
}

static void sift_down(pm_heap *h, size_t i, int sign) {
    pm_hent e = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c], sign))
            c++;
        if (!before(&h->v[c], &e, sign))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    h->v[i] = e;
}

int pm_heap_push(pm_heap *h, pm_hent e, int sign) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : PM_HEAP_INIT;
        void *p = realloc(h->v, cap * sizeof *h->v);
        if (p == NULL)
            return WD_ENOMEM;
        h->v = p;
        h->cap = cap;
    }
    h->v[h->n++] = e;
    sift_up(h, h->n - 1, sign);
    return 0;
}

void pm_heap_pop(pm_heap *h, int sign) {
    if (h->n == 0)
        return;
    h->v[0] = h->v[--h->n];
    if (h->n > 0)
        sift_down(h, 0, sign);
}

void pm_heap_filter(pm_heap *h, bool (*keep)(void *, const pm_hent *), void *arg, int sign) {
    size_t j = 0;
    for (size_t i = 0; i < h->n; i++)
        if (keep(arg, &h->v[i]))
            h->v[j++] = h->v[i];
    h->n = j;
    h->sweep = 0;
    for (size_t i = h->n / 2; i-- > 0;)
        sift_down(h, i, sign);
    if (h->cap > PM_HEAP_INIT && h->n < h->cap / 4) {
        void *p = realloc(h->v, (h->cap / 2) * sizeof *h->v);
        if (p != NULL) {
            h->v = p;
            h->cap /= 2;
        }
    }
}

/* Removing entry i: the last entry takes its place and moves up or down;
 * index i is then examined again (it holds an entry not yet seen, or, after
 * a move up, a parent already kept). An entry that moved up past the cursor
 * waits for the next pass. */
size_t pm_heap_sweep(pm_heap *h, bool (*keep)(void *, const pm_hent *), void *arg, int sign,
                     size_t budget, size_t *removed, bool *done) {
    size_t seen = 0, i = h->sweep;
    *done = false;
    while (seen < budget && i < h->n) {
        seen++;
        if (keep(arg, &h->v[i])) {
            i++;
            continue;
        }
        (*removed)++;
        h->n--;
        if (i == h->n)
            break;
        h->v[i] = h->v[h->n];
        sift_up(h, i, sign);
        sift_down(h, i, sign);
    }
    if (i >= h->n) {
        h->sweep = 0;
        *done = true;
    } else {
        h->sweep = i;
    }
    return seen;
}

void pm_heap_free(pm_heap *h) {
    free(h->v);
    memset(h, 0, sizeof *h);
}
