/* See sections.h. */
#include "sections.h"
#include "wd_error.h"
#include <ini.h>
#include <stdio.h>
#include <string.h>

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t fnv(uint64_t h, const char *s) {
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * FNV_PRIME;
    return (h ^ 0xff) * FNV_PRIME; /* a separator, so "ab","c" != "a","bc" */
}

static bool warden_own(const char *sec) {
    return strcmp(sec, "supervisor") == 0 || strncmp(sec, "worker:", 7) == 0 ||
           strncmp(sec, "program:", 8) == 0;
}

static sup_section_fp *find(const sup_sections *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->v[i].name, name) == 0)
            return (sup_section_fp *)&s->v[i];
    return NULL;
}

static int on_entry(void *user, const char *section, const char *key, const char *value) {
    sup_sections *s = user;
    if (warden_own(section) || strlen(section) >= sizeof s->v[0].name)
        return 1;
    sup_section_fp *fp = find(s, section);
    if (fp == NULL) {
        if (s->n == SUP_SECTIONS_MAX)
            return 1; /* more than we track: those are never seen as changed */
        fp = &s->v[s->n++];
        snprintf(fp->name, sizeof fp->name, "%s", section);
        fp->hash = FNV_OFFSET;
    }
    fp->hash = fnv(fnv(fp->hash, key), value);
    return 1;
}

int sup_sections_load(const char *path, sup_sections *out) {
    out->n = 0;
    if (ini_parse(path, on_entry, out) < 0) {
        out->n = 0;
        return WD_EIO;
    }
    return 0;
}

bool sup_section_changed(const sup_sections *a, const sup_sections *b, const char *name) {
    const sup_section_fp *x = find(a, name), *y = find(b, name);
    if (x == NULL || y == NULL)
        return x != y;
    return x->hash != y->hash;
}

/* sec is want, or want followed by ':' or '.'. */
static bool names(const char *sec, const char *want, size_t wl) {
    return wl > 0 && strncmp(sec, want, wl) == 0 &&
           (sec[wl] == '\0' || sec[wl] == ':' || sec[wl] == '.');
}

bool sup_section_owned(const char *sec, const char *worker, const char *argv0) {
    if (names(sec, worker, strlen(worker)))
        return true;
    if (argv0 == NULL)
        return false;
    const char *base = strrchr(argv0, '/');
    base = base != NULL ? base + 1 : argv0;
    if (strncmp(base, "warden-", 7) == 0)
        base += 7;
    char buf[WD_CONF_NAME_MAX + 32];
    size_t n = 0;
    for (; base[n] != '\0' && n + 1 < sizeof buf; n++)
        buf[n] = base[n] == '-' ? '_' : base[n];
    buf[n] = '\0';
    return names(sec, buf, n);
}
