/* Private to the config module (common/config*.c), not part of its API: the
 * raw-entry store, the error sink and the helpers the files share. Kept out
 * of config.h so other modules cannot come to depend on the internals.
 *
 *   config.c        reading a file with libinih, raw entries, env overrides,
 *                   the error sink
 *   config_apply.c  typed fields, registered sections, applying a table
 *   config_check.c  the supervisor's view and its cross-checks
 *   config_parse.c  value parsers and a program's derived lists
 *   config_tables.c the built-in tables */
#ifndef WD_CONFIG_INT_H
#define WD_CONFIG_INT_H

#include "config.h"
#include <stdbool.h>
#include <stddef.h>

#define SECTION_NAME_SIZE (sizeof(((wd_conf_entry *)0)->section))

/* Units of the value syntax, shared by the parsers and the tables' bounds. */
#define MS_PER_S 1000ULL
#define MS_PER_M (60ULL * MS_PER_S)
#define MS_PER_H (60ULL * MS_PER_M)
#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)

typedef struct {
    char name[SECTION_NAME_SIZE];
    int line;     /* 0: not in the file (an environment override made it) */
    bool damaged; /* a line in it was unreadable: "missing key" would mislead */
} conf_section;

struct wd_conf {
    char path[WD_CONF_PATH_MAX];
    wd_conf_entry *entries; /* owned; grows up to WD_CONF_ENTRIES_MAX */
    size_t n_entries, cap_entries;
    int n_sections;
    conf_section sections[WD_CONF_SECTIONS_MAX];
    bool oom;
};

/* Where errors go, and how many there were (also past WD_CONF_ERRORS_MAX). */
typedef struct {
    wd_conf_errors *errs;
    int total;
    const char *path;              /* the config file */
    int order[WD_CONF_ERRORS_MAX]; /* sort key of each message: see conf_errs_sort */
} errsink;

/* ---- config.c ---- */

/* Records "file:line: message" (line 0: "file: message"). */
void conf_err(errsink *es, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sorts the recorded messages by line, environment overrides last. */
void conf_errs_sort(errsink *es);
const conf_section *conf_section_find(const wd_conf *conf, const char *name);
/* wd_conf_read without resetting or sorting es: the supervisor's loader goes
 * on adding to the same sink. */
int conf_read(const char *path, char *const *envp, wd_conf **out, errsink *es);

/* ---- config_apply.c ---- */

/* The table of a section, built in or registered; NULL when none is known. */
const wd_conf_field *conf_table_for(const char *section, size_t *n);
/* The target_size a table was registered with; 0 when it is not registered. */
size_t conf_registered_size(const wd_conf_field *table);
/* wd_conf_apply_section into an existing sink. */
void conf_apply_section(wd_conf *conf, const char *section, const wd_conf_field *table,
                        size_t n_fields, void *target, errsink *es);

/* Text quoted in an error message: wd_conf_quote with a buffer of SHOW_BUF. */
#define SHOW_BUF WD_CONF_QUOTE_MAX

static inline const char *show(const char *s, char *buf, size_t buflen) {
    return wd_conf_quote(s, buf, buflen);
}

#endif
