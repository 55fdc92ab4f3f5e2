/* Dedup windows per key, and the per-channel storm counter. Pure: time is
 * passed in, so the tests use a fake clock. */
#include "nt.h"
#include "wd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nt_dedup_entry {
    nt_dedup_entry *next;
    uint64_t start_ns;
    uint32_t repeats;
    proto_alert_severity severity;
    uint32_t routes;
    char first_id[PROTO_ALERT_ID_MAX + 1];
    char source[PROTO_ALERT_SOURCE_MAX + 1];
    char title[PROTO_ALERT_TITLE_MAX + 1];
    char key[]; /* NUL-terminated */
};

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int nt_dedup_init(nt_dedup *d, uint64_t window_ns, size_t n_buckets) {
    memset(d, 0, sizeof *d);
    if (n_buckets == 0)
        return WD_EINVAL;
    d->buckets = calloc(n_buckets, sizeof *d->buckets);
    if (!d->buckets)
        return WD_ENOMEM;
    d->n_buckets = n_buckets;
    d->window_ns = window_ns;
    return 0;
}

void nt_dedup_free(nt_dedup *d) {
    for (size_t i = 0; d->buckets && i < d->n_buckets; i++) {
        nt_dedup_entry *e = d->buckets[i];
        while (e) {
            nt_dedup_entry *n = e->next;
            free(e);
            e = n;
        }
    }
    free(d->buckets);
    memset(d, 0, sizeof *d);
}

void nt_dedup_key(const proto_alert *a, char *out, size_t outlen) {
    if (a->dedup_key[0])
        snprintf(out, outlen, "%s", a->dedup_key);
    else
        snprintf(out, outlen, "%s/%s", a->source, a->title);
}

static void entry_start(nt_dedup_entry *e, const proto_alert *a, uint32_t routes,
                        uint64_t now_ns) {
    e->start_ns = now_ns;
    e->routes = routes;
    e->repeats = 0;
    e->severity = a->severity;
    snprintf(e->first_id, sizeof e->first_id, "%s", a->id);
    snprintf(e->source, sizeof e->source, "%s", a->source);
    snprintf(e->title, sizeof e->title, "%s", a->title);
}

nt_dedup_result nt_dedup_note(nt_dedup *d, const char *key, const proto_alert *a,
                              uint32_t routes, uint64_t now_ns, const char **first_id,
                              uint32_t *count) {
    const char *id = a->id;
    *first_id = id;
    *count = 0;
    if (d->window_ns == 0 || !d->buckets)
        return NT_DEDUP_NEW;
    nt_dedup_entry **slot = &d->buckets[hash(key) % d->n_buckets];
    for (nt_dedup_entry *e = *slot; e; e = e->next) {
        if (strcmp(e->key, key) != 0)
            continue;
        if (now_ns - e->start_ns < d->window_ns) {
            e->repeats++;
            if (a->severity > e->severity)
                e->severity = a->severity;
            *first_id = e->first_id;
            *count = e->repeats;
            return NT_DEDUP_MERGED;
        }
        /* The window is over (not yet expired by the tick): a new one. Its
         * repeats are lost to the summary only if the tick never ran. */
        entry_start(e, a, routes, now_ns);
        return NT_DEDUP_NEW;
    }
    size_t kl = strlen(key);
    nt_dedup_entry *e = calloc(1, sizeof *e + kl + 1);
    if (!e)
        return NT_DEDUP_NEW; /* no memory: deliver rather than lose */
    memcpy(e->key, key, kl + 1);
    entry_start(e, a, routes, now_ns);
    e->next = *slot;
    *slot = e;
    d->n++;
    return NT_DEDUP_NEW;
}

void nt_dedup_forget(nt_dedup *d, const char *key, const char *id) {
    if (!d->buckets)
        return;
    nt_dedup_entry **pp = &d->buckets[hash(key) % d->n_buckets];
    for (; *pp; pp = &(*pp)->next) {
        nt_dedup_entry *e = *pp;
        if (strcmp(e->key, key) == 0) {
            if (strcmp(e->first_id, id) == 0 && e->repeats == 0) {
                *pp = e->next;
                free(e);
                d->n--;
            }
            return;
        }
    }
}

size_t nt_dedup_expire(nt_dedup *d, uint64_t now_ns,
                       void (*cb)(void *arg, const nt_dedup_summary *s), void *arg) {
    size_t gone = 0;
    for (size_t i = 0; d->buckets && i < d->n_buckets; i++) {
        nt_dedup_entry **pp = &d->buckets[i];
        while (*pp) {
            nt_dedup_entry *e = *pp;
            if (now_ns - e->start_ns < d->window_ns) {
                pp = &e->next;
                continue;
            }
            if (e->repeats > 0 && cb) {
                nt_dedup_summary sum = {e->key, e->first_id, e->source, e->title, e->severity,
                                        e->repeats, e->routes};
                cb(arg, &sum);
            }
            *pp = e->next;
            free(e);
            d->n--;
            gone++;
        }
    }
    return gone;
}

size_t nt_dedup_size(const nt_dedup *d) { return d->n; }

void nt_storm_init(nt_storm *s, uint32_t threshold, uint64_t window_ns) {
    memset(s, 0, sizeof *s);
    s->threshold = threshold;
    s->window_ns = window_ns ? window_ns : 1;
}

bool nt_storm_note(nt_storm *s, uint64_t now_ns) {
    if (s->threshold == 0)
        return false;
    if (s->count == 0 || now_ns - s->start_ns >= s->window_ns) {
        s->start_ns = now_ns;
        s->count = 0;
    }
    s->count++;
    return s->count > s->threshold;
}

uint64_t nt_storm_window_end(const nt_storm *s) { return s->start_ns + s->window_ns; }
