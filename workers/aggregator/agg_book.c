/* The book: per symbol, each venue's latest quote, and the consolidated
 * best bid and ask over the venues that are present (ticked within
 * stale_after). Symbols are found by name through an open-addressing table
 * (FNV-1a), since every tick looks one up. */
#include "agg.h"
#include "wd_error.h"

#include <stdlib.h>
#include <string.h>

#define BOOK_INITIAL_CAP 64

static uint32_t name_hash(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

int agg_book_init(agg_book *b, const agg_symname *venues, size_t n_venues,
                  uint64_t stale_after_ns) {
    memset(b, 0, sizeof *b);
    if (n_venues == 0 || n_venues > AGG_VENUES_MAX)
        return WD_EINVAL;
    memcpy(b->venues, venues, n_venues * sizeof *venues);
    b->n_venues = n_venues;
    b->stale_after_ns = stale_after_ns;
    return 0;
}

void agg_book_free(agg_book *b) {
    free(b->syms);
    free(b->slots);
    b->syms = NULL;
    b->slots = NULL;
    b->n_syms = b->cap = b->n_slots = 0;
}

int agg_book_venue(const agg_book *b, const char *name) {
    for (size_t i = 0; i < b->n_venues; i++)
        if (strcmp(b->venues[i], name) == 0)
            return (int)i;
    return -1;
}

static size_t find_slot(const agg_book *b, const char *name, size_t len) {
    size_t mask = b->n_slots - 1;
    size_t i = name_hash(name, len) & mask;
    while (b->slots[i] != 0) {
        const agg_symbol *s = &b->syms[b->slots[i] - 1];
        if (strncmp(s->name, name, len) == 0 && s->name[len] == '\0')
            return i;
        i = (i + 1) & mask;
    }
    return i;
}

static int grow(agg_book *b) {
    size_t cap = b->cap ? b->cap * 2 : BOOK_INITIAL_CAP;
    if (cap > AGG_SYMBOLS_MAX)
        cap = AGG_SYMBOLS_MAX;
    agg_symbol *syms = realloc(b->syms, cap * sizeof *syms);
    if (syms == NULL)
        return WD_ENOMEM;
    b->syms = syms;
    size_t n_slots = 1;
    while (n_slots <= 2 * cap)
        n_slots <<= 1;
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (slots == NULL)
        return WD_ENOMEM;
    free(b->slots);
    b->slots = slots;
    b->n_slots = n_slots;
    b->cap = cap;
    for (size_t i = 0; i < b->n_syms; i++) {
        size_t at = find_slot(b, b->syms[i].name, strlen(b->syms[i].name));
        b->slots[at] = (uint32_t)i + 1;
    }
    return 0;
}

int agg_book_symbol(agg_book *b, const char *name, size_t len, bool create) {
    if (b->n_slots > 0) {
        size_t at = find_slot(b, name, len);
        if (b->slots[at] != 0)
            return (int)b->slots[at] - 1;
    }
    if (!create || len == 0 || len > PROTO_MD_SYMBOL_MAX)
        return -1;
    if (b->n_syms == b->cap) {
        if (b->cap == AGG_SYMBOLS_MAX || grow(b) != 0)
            return -1;
    }
    agg_symbol *s = &b->syms[b->n_syms];
    memset(s, 0, sizeof *s);
    memcpy(s->name, name, len);
    size_t at = find_slot(b, name, len);
    b->slots[at] = (uint32_t)b->n_syms + 1;
    return (int)b->n_syms++;
}

int agg_book_set_active(agg_book *b, const agg_symname *names, size_t n) {
    for (size_t i = 0; i < b->n_syms; i++)
        b->syms[i].active = false;
    for (size_t i = 0; i < n; i++) {
        int id = agg_book_symbol(b, names[i], strlen(names[i]), true);
        if (id < 0)
            return b->n_syms == AGG_SYMBOLS_MAX ? WD_ETOOBIG : WD_ENOMEM;
        b->syms[id].active = true;
    }
    return 0;
}

void agg_book_consolidate(const agg_book *b, const agg_symbol *s, proto_md_quote *q) {
    int bi = -1, ai = -1;
    uint32_t n = 0;
    uint64_t ts = 0, recv = 0;
    memset(q, 0, sizeof *q);
    memcpy(q->symbol, s->name, sizeof q->symbol);
    for (size_t v = 0; v < b->n_venues; v++) {
        const agg_venue_quote *vq = &s->v[v];
        if (!vq->present)
            continue;
        n++;
        if (vq->ts_ns > ts)
            ts = vq->ts_ns;
        if (vq->recv_ns > recv)
            recv = vq->recv_ns;
        /* Ties go to the larger size, then to the earlier venue in the list. */
        if (vq->bid > 0 && (bi < 0 || vq->bid > s->v[bi].bid ||
                            (vq->bid == s->v[bi].bid && vq->bid_size > s->v[bi].bid_size)))
            bi = (int)v;
        if (vq->ask > 0 && (ai < 0 || vq->ask < s->v[ai].ask ||
                            (vq->ask == s->v[ai].ask && vq->ask_size > s->v[ai].ask_size)))
            ai = (int)v;
    }
    q->n_venues = n;
    q->ts_ns = ts;
    q->recv_ns = recv;
    if (bi >= 0) {
        q->bid = s->v[bi].bid;
        q->bid_size = s->v[bi].bid_size;
        memcpy(q->bid_venue, b->venues[bi], sizeof q->bid_venue);
    } else {
        q->flags |= PROTO_MD_NO_BID;
    }
    if (ai >= 0) {
        q->ask = s->v[ai].ask;
        q->ask_size = s->v[ai].ask_size;
        memcpy(q->ask_venue, b->venues[ai], sizeof q->ask_venue);
    } else {
        q->flags |= PROTO_MD_NO_ASK;
    }
    if (bi >= 0 && ai >= 0) {
        q->mid = (q->bid + q->ask) / 2;
        q->spread = q->ask - q->bid;
        /* Flagged, not hidden: a crossed or locked book across venues is
         * real information (an arbitrage, a stale venue not yet timed out). */
        if (q->bid > q->ask)
            q->flags |= PROTO_MD_CROSSED;
        else if (q->bid == q->ask)
            q->flags |= PROTO_MD_LOCKED;
    }
}

/* True when the parts a subscriber acts on differ (timestamps alone do not
 * make a new quote). */
static bool quote_changed(const proto_md_quote *a, const proto_md_quote *b) {
    return a->bid != b->bid || a->bid_size != b->bid_size || a->ask != b->ask ||
           a->ask_size != b->ask_size || a->flags != b->flags || a->n_venues != b->n_venues ||
           strcmp(a->bid_venue, b->bid_venue) != 0 || strcmp(a->ask_venue, b->ask_venue) != 0;
}

static int publish_if_changed(const agg_book *b, agg_symbol *s, proto_md_quote *out) {
    proto_md_quote q;
    agg_book_consolidate(b, s, &q);
    if (s->has_quote && !quote_changed(&q, &s->quote))
        return 0;
    s->quote = q;
    s->has_quote = true;
    *out = q;
    return 1;
}

int agg_book_update(agg_book *b, int sym, int venue, const agg_tick *t, uint64_t now_mono_ns,
                    uint64_t recv_ns, proto_md_quote *out) {
    agg_symbol *s = &b->syms[sym];
    agg_venue_quote *vq = &s->v[venue];
    vq->bid = t->bid;
    vq->bid_size = t->bid > 0 ? t->bid_size : 0;
    vq->ask = t->ask;
    vq->ask_size = t->ask > 0 ? t->ask_size : 0;
    vq->ts_ns = t->ts_ns;
    vq->recv_ns = recv_ns;
    vq->mono_ns = now_mono_ns;
    vq->present = true;
    b->venue_last_mono[venue] = now_mono_ns;
    return publish_if_changed(b, s, out);
}

int agg_book_expire(agg_book *b, int sym, uint64_t now_mono_ns, proto_md_quote *out) {
    agg_symbol *s = &b->syms[sym];
    bool dropped = false;
    for (size_t v = 0; v < b->n_venues; v++) {
        agg_venue_quote *vq = &s->v[v];
        if (vq->present && now_mono_ns - vq->mono_ns >= b->stale_after_ns) {
            vq->present = false;
            dropped = true;
        }
    }
    return dropped ? publish_if_changed(b, s, out) : 0;
}
