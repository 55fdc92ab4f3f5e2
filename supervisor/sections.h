/* Fingerprints of the config sections warden does not read itself
 * ([aggregator], [notifier], [channel:slack], [breaker:redis]...). Workers
 * read those at start; a reload compares them to learn whose own settings
 * changed, so that "reload" restarts those workers too instead of saying
 * "no changes". */
#ifndef WD_SUP_SECTIONS_H
#define WD_SUP_SECTIONS_H

#include "config.h"
#include <stdbool.h>
#include <stdint.h>

#define SUP_SECTIONS_MAX 256

typedef struct {
    char name[WD_CONF_NAME_MAX + 32];
    uint64_t hash; /* FNV-1a of its key/value pairs, in file order */
} sup_section_fp;

typedef struct {
    sup_section_fp v[SUP_SECTIONS_MAX];
    int n;
} sup_sections;

/* Reads path's sections other than [supervisor], [worker:*], [program:*].
 * 0, or WD_EIO when the file cannot be read (out is then empty). */
int sup_sections_load(const char *path, sup_sections *out);

/* Whether section name differs between a and b (added, removed, changed). */
bool sup_section_changed(const sup_sections *a, const sup_sections *b, const char *name);

/* Whether a program named worker, started as argv0, reads section sec:
 * [NAME], or [BASE] where BASE is argv0's file name without "warden-" and
 * with '-' as '_' (warden-position-monitor reads [position_monitor]), or
 * one of those followed by ':' or '.' ([notifier:...]). */
bool sup_section_owned(const char *sec, const char *worker, const char *argv0);

#endif
