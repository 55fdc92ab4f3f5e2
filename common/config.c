/* Config loading: a libinih reader that keeps exact line numbers, raw entries
 * with their origin, typed tables applied to sections, environment overrides
 * and the supervisor's cross-checks. The value parsers are in config_parse.c.
 *
 * How libinih is used, and why. Debian's libinih 55 is built without line
 * numbers for the handler, with a 200-byte line buffer (a longer line is cut
 * and its tail parsed as more lines), section names cut at 49 bytes, and
 * indented lines taken as continuations of the previous value. So the reader
 * here reads each physical line itself, counts it, handles blank lines,
 * comments and [section] headers itself, and hands libinih only key = value
 * lines, left-trimmed (never a continuation), or an empty line in place of
 * anything else. libinih then splits key from value, strips inline "; "
 * comments and trims. A key = value line for which the handler is not called
 * is one libinih could not parse; the reader reports it when the next line is
 * read, so every bad line gets its own error, not only the first. */
#include "config.h"
#include "wd_error.h"
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define SECTION_NAME_SIZE (sizeof(((wd_conf_entry *)0)->section))
#define ENV_NAME_MAX 256   /* longest WARDEN_* variable name considered */
#define ENTRIES_INITIAL 16 /* an entry is ~8 KB; most files have few keys */
#define SECTION_NONE (-1)  /* before the first header */
#define SECTION_SKIP (-2)  /* after a bad header: its keys are dropped */
#define UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
#define SIZE_M (1024LL * 1024)

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
    int order[WD_CONF_ERRORS_MAX]; /* sort key of each message: see errs_sort */
} errsink;

typedef struct {
    char pattern[SECTION_NAME_SIZE];
    const wd_conf_field *table;
    size_t n_fields, target_size;
} conf_registration;

static conf_registration registry[WD_CONF_REGISTERED_MAX];
static int n_registry;

/* ---- errors ---- */

static void conf_err(errsink *es, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void conf_err(errsink *es, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    es->total++;
    if (!es->errs || es->errs->n >= WD_CONF_ERRORS_MAX)
        return;
    /* File-level messages first, then by line, then environment overrides. */
    es->order[es->errs->n] = line > 0                                   ? line
                             : !es->path || strcmp(file, es->path) == 0 ? 0
                                                                        : INT_MAX;
    char *slot = es->errs->msg[es->errs->n++];
    if (es->errs->n == WD_CONF_ERRORS_MAX) {
        snprintf(slot, WD_CONF_ERROR_LEN, "%s: too many errors, only the first %d are listed",
                 es->path ? es->path : file, WD_CONF_ERRORS_MAX - 1);
        return;
    }
    /* The message is cut at WD_CONF_ERROR_LEN; the location comes first so it
     * is never what gets cut. */
    int n = line > 0 ? snprintf(slot, WD_CONF_ERROR_LEN, "%s:%d: ", file, line)
                     : snprintf(slot, WD_CONF_ERROR_LEN, "%s: ", file);
    if (n < 0 || n >= WD_CONF_ERROR_LEN - 1)
        return;
    va_start(ap, fmt);
    vsnprintf(slot + n, WD_CONF_ERROR_LEN - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Errors are found section by section and check by check; people fix them
 * top to bottom, so they are listed in line order (a stable sort). */
static void errs_sort(errsink *es) {
    wd_conf_errors *e = es->errs;
    if (!e)
        return;
    int n = e->n == WD_CONF_ERRORS_MAX ? e->n - 1 : e->n; /* "too many" stays last */
    for (int i = 1; i < n; i++) {
        char msg[WD_CONF_ERROR_LEN];
        int key = es->order[i], j = i;
        memcpy(msg, e->msg[i], sizeof msg);
        for (; j > 0 && es->order[j - 1] > key; j--) {
            memcpy(e->msg[j], e->msg[j - 1], sizeof msg);
            es->order[j] = es->order[j - 1];
        }
        memcpy(e->msg[j], msg, sizeof msg);
        es->order[j] = key;
    }
}

#define SHOW_BUF WD_CONF_QUOTE_MAX

static const char *show(const char *s, char *buf, size_t buflen) {
    return wd_conf_quote(s, buf, buflen);
}

/* ---- tables ---- */

static bool pattern_match(const char *pattern, const char *name) {
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*')
        return strncmp(pattern, name, n - 1) == 0;
    return strcmp(pattern, name) == 0;
}

/* The table of a section, built in or registered; NULL when none is known. */
static const wd_conf_field *table_for(const char *section, size_t *n) {
    if (strcmp(section, "supervisor") == 0)
        return *n = wd_conf_supervisor_n_fields, wd_conf_supervisor_fields;
    if (strncmp(section, "worker:", 7) == 0)
        return *n = wd_conf_worker_n_fields, wd_conf_worker_fields;
    if (strncmp(section, "program:", 8) == 0)
        return *n = wd_conf_program_n_fields, wd_conf_program_fields;
    for (int i = 0; i < n_registry; i++)
        if (pattern_match(registry[i].pattern, section))
            return *n = registry[i].n_fields, registry[i].table;
    return NULL;
}

static size_t field_width(const wd_conf_field *f) {
    switch (f->type) {
    case WD_CONF_STRING:
        return f->size;
    case WD_CONF_BOOL:
        return sizeof(bool);
    case WD_CONF_ENUM:
    case WD_CONF_SIGNAL:
        return sizeof(int);
    case WD_CONF_DOUBLE:
        return sizeof(double);
    default:
        return sizeof(uint64_t);
    }
}

int wd_conf_register_section(const char *pattern, const wd_conf_field *table, size_t n_fields,
                             size_t target_size) {
    size_t n = 0;
    if (!pattern || !*pattern || strlen(pattern) >= SECTION_NAME_SIZE || !table || !n_fields)
        return WD_EINVAL;
    char *star = strchr(pattern, '*');
    if (star && star[1] != '\0')
        return WD_EINVAL; /* only a trailing '*' */
    /* wd_conf_load_supervisor applies the table to a scratch target of
     * target_size bytes: every field must fit in it. */
    for (size_t i = 0; i < n_fields; i++)
        if (!table[i].name || table[i].offset + field_width(&table[i]) > target_size)
            return WD_EINVAL;
    for (int i = 0; i < n_registry; i++)
        if (strcmp(registry[i].pattern, pattern) == 0)
            return registry[i].table == table ? 0 : WD_EEXIST;
    if (table_for(pattern, &n) != NULL)
        return WD_EEXIST; /* [supervisor], [worker:*], [program:*] are built in */
    if (n_registry == WD_CONF_REGISTERED_MAX)
        return WD_ETOOBIG;
    conf_registration *reg = &registry[n_registry++];
    memcpy(reg->pattern, pattern, strlen(pattern) + 1);
    reg->table = table;
    reg->n_fields = n_fields;
    reg->target_size = target_size;
    return 0;
}

static const conf_section *section_find(const wd_conf *conf, const char *name) {
    for (int i = 0; i < conf->n_sections; i++)
        if (strcmp(conf->sections[i].name, name) == 0)
            return &conf->sections[i];
    return NULL;
}

static void apply_section(wd_conf *conf, const char *section, const wd_conf_field *table,
                          size_t n_fields, void *target, errsink *es) {
    char why[WD_CONF_ERROR_LEN];
    const conf_section *sec = section_find(conf, section);
    int sec_line = sec ? sec->line : 0;
    for (size_t i = 0; i < n_fields; i++) {
        wd_conf_field_zero(&table[i], target);
        if (table[i].def && table[i].def[0] &&
            wd_conf_field_set(&table[i], table[i].def, target, why, sizeof why) != 0)
            conf_err(es, conf->path, sec_line, "[%s]: bad built-in default: %s", section, why);
    }
    for (size_t e = 0; e < conf->n_entries; e++) {
        wd_conf_entry *en = &conf->entries[e];
        if (strcmp(en->section, section) != 0)
            continue;
        const char *near = NULL;
        const wd_conf_field *f = wd_conf_field_find(table, n_fields, en->key, &near);
        if (!f) {
            char s[SHOW_BUF];
            char hint[WD_CONF_NAME_MAX + 32] = "";
            if (near)
                snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
            conf_err(es, en->file, en->line, "unknown key '%s' in [%s]%s",
                     show(en->key, s, sizeof s), section, hint);
            continue;
        }
        en->used = true;
        if (wd_conf_field_set(f, en->value, target, why, sizeof why) != 0)
            conf_err(es, en->file, en->line, "%s", why);
    }
    for (size_t i = 0; i < n_fields && !(sec && sec->damaged); i++) {
        if (table[i].def)
            continue;
        /* A misspelling already reported with this key as its suggestion
         * counts as present: one mistake, one message. */
        bool seen = false;
        for (size_t e = 0; e < conf->n_entries && !seen; e++) {
            const char *near = NULL;
            const wd_conf_entry *en = &conf->entries[e];
            seen =
                strcmp(en->section, section) == 0 &&
                (strcasecmp(en->key, table[i].name) == 0 ||
                 (!wd_conf_field_find(table, n_fields, en->key, &near) && near == table[i].name));
        }
        if (!seen)
            conf_err(es, conf->path, sec_line, "[%s]: missing required key '%s'", section,
                     table[i].name);
    }
}

int wd_conf_apply_section(wd_conf *conf, const char *section, const wd_conf_field *table,
                          size_t n_fields, void *target, wd_conf_errors *errs) {
    errsink es = {.errs = errs, .path = conf ? conf->path : NULL};
    if (!conf || !section || !table || !target)
        return WD_EINVAL;
    apply_section(conf, section, table, n_fields, target, &es);
    return es.total ? WD_ECONFIG : 0;
}

/* ---- reading ---- */

typedef struct {
    FILE *f;
    wd_conf *conf;
    errsink *es;
    int lineno;
    int section;      /* index in conf->sections, SECTION_NONE or SECTION_SKIP */
    bool pending;     /* the line handed to libinih is a key = value line */
    bool handled;     /* ... and the handler was called for it */
    bool parse_error; /* some line could not be parsed */
    const char *text; /* the current line, left-trimmed (in line[]) */
    char line[WD_CONF_LINE_MAX + 1];
} conf_reader;

static bool section_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= SECTION_NAME_SIZE)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_-.:", s[i]))
            return false;
    return true;
}

static int section_add(wd_conf *conf, const char *name, int line, errsink *es) {
    char s[SHOW_BUF];
    const conf_section *old = section_find(conf, name);
    if (!section_name_ok(name)) {
        conf_err(es, conf->path, line,
                 "bad section name '[%s]' (1..%zu characters of A-Z a-z 0-9 _ - . :)",
                 show(name, s, sizeof s), SECTION_NAME_SIZE - 1);
        return SECTION_SKIP;
    }
    if (old) {
        conf_err(es, conf->path, line, "duplicate section [%s] (first at line %d)", name,
                 old->line);
        return SECTION_SKIP;
    }
    if (conf->n_sections == WD_CONF_SECTIONS_MAX) {
        conf_err(es, conf->path, line, "too many sections (at most %d)", WD_CONF_SECTIONS_MAX);
        return SECTION_SKIP;
    }
    conf_section *sec = &conf->sections[conf->n_sections];
    memcpy(sec->name, name, strlen(name) + 1);
    sec->line = line;
    return conf->n_sections++;
}

static wd_conf_entry *entry_add(wd_conf *conf, errsink *es, const char *file, int line) {
    if (conf->n_entries == conf->cap_entries) {
        size_t cap = conf->cap_entries ? conf->cap_entries * 2 : ENTRIES_INITIAL;
        if (cap > WD_CONF_ENTRIES_MAX)
            cap = WD_CONF_ENTRIES_MAX;
        if (cap == conf->n_entries) {
            conf_err(es, file, line, "too many keys (at most %d)", WD_CONF_ENTRIES_MAX);
            return NULL;
        }
        wd_conf_entry *grown = realloc(conf->entries, cap * sizeof *grown);
        if (!grown) {
            conf->oom = true;
            return NULL;
        }
        conf->entries = grown;
        conf->cap_entries = cap;
    }
    wd_conf_entry *e = &conf->entries[conf->n_entries++];
    memset(e, 0, sizeof *e);
    snprintf(e->file, sizeof e->file, "%s", file);
    e->line = line;
    return e;
}

static void reader_damaged(conf_reader *r) {
    r->parse_error = true;
    if (r->section >= 0)
        r->conf->sections[r->section].damaged = true;
}

/* Called before each new line and at the end: a key = value line libinih
 * did not hand to the handler is one it could not parse. */
static void reader_finish_line(conf_reader *r) {
    char s[SHOW_BUF];
    if (r->pending && !r->handled) {
        reader_damaged(r);
        conf_err(r->es, r->conf->path, r->lineno,
                 "cannot parse '%s' (expected [section] or key = value)",
                 show(r->text, s, sizeof s));
    }
    r->pending = false;
    r->handled = false;
}

static void reader_header(conf_reader *r, char *p) {
    char s[SHOW_BUF];
    char *close = strchr(p, ']');
    if (!close) {
        conf_err(r->es, r->conf->path, r->lineno, "section header '%s' has no closing ']'",
                 show(p, s, sizeof s));
        r->section = SECTION_SKIP;
        return;
    }
    *close = '\0';
    char *rest = close + 1;
    while (isspace((unsigned char)*rest))
        rest++;
    if (*rest && *rest != ';' && *rest != '#')
        conf_err(r->es, r->conf->path, r->lineno, "unexpected text '%s' after [%s]",
                 show(rest, s, sizeof s), p + 1);
    r->section = section_add(r->conf, p + 1, r->lineno, r->es);
}

/* libinih's reader: one physical line per call (see the top of the file). */
static char *reader_next(char *str, int num, void *stream) {
    conf_reader *r = stream;
    size_t len = 0, total = 0;
    bool nul = false;
    int c;
    char s[SHOW_BUF];
    reader_finish_line(r);
    while ((c = getc(r->f)) != EOF && c != '\n') {
        nul |= c == '\0';
        if (len < WD_CONF_LINE_MAX)
            r->line[len++] = (char)c;
        total++;
    }
    if (c == EOF && total == 0)
        return NULL; /* end of file, or a read error (checked by the caller) */
    r->line[len] = '\0';
    r->lineno++;
    char *p = r->line;
    if (r->lineno == 1 && len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3; /* UTF-8 byte order mark */
    while (isspace((unsigned char)*p))
        p++;
    r->text = p;
    if (num < 2)
        return NULL;
    memcpy(str, "\n", 2);
    if (*p == ';' || *p == '#')
        return str; /* a comment, however long or odd */
    if (total > WD_CONF_LINE_MAX || nul) {
        if (total > WD_CONF_LINE_MAX)
            conf_err(r->es, r->conf->path, r->lineno, "line too long (%zu bytes, at most %d): '%s'",
                     total, WD_CONF_LINE_MAX, show(p, s, sizeof s));
        else
            conf_err(r->es, r->conf->path, r->lineno, "NUL byte in line: '%s'",
                     show(p, s, sizeof s));
        reader_damaged(r);
        if (*p == '[') /* keys after an unreadable header must not land in the previous section */
            r->section = SECTION_SKIP;
        return str;
    }
    if (*p == '\0')
        return str;
    if (*p == '[') {
        reader_header(r, p);
        return str;
    }
    len = strlen(p);
    /* libinih needs room for the line, '\n' and '\0'; its buffer is raised to
     * WD_CONF_LINE_MAX in wd_conf_read, but never pass a line it would cut. */
    if (len + 2 > (size_t)num) {
        conf_err(r->es, r->conf->path, r->lineno, "line too long (%zu bytes, at most %d): '%s'",
                 len, num - 3, show(p, s, sizeof s));
        reader_damaged(r);
        return str;
    }
    memcpy(str, p, len);
    memcpy(str + len, "\n", 2);
    r->pending = true;
    return str;
}

static int reader_on_value(void *user, const char *section, const char *name, const char *value) {
    conf_reader *r = user;
    wd_conf *conf = r->conf;
    char s[SHOW_BUF];
    (void)section; /* libinih's copy is cut at 49 bytes; the reader keeps its own */
    if (!r->pending || r->handled || !value)
        return 1; /* reported by reader_finish_line */
    r->handled = true;
    if (r->section == SECTION_SKIP)
        return 1;
    if (r->section == SECTION_NONE) {
        conf_err(r->es, conf->path, r->lineno,
                 "key '%s' outside of any section (add a [section] above it)",
                 show(name, s, sizeof s));
        return 1;
    }
    const char *sec = conf->sections[r->section].name;
    if (!*name) {
        conf_err(r->es, conf->path, r->lineno, "missing key name in '%s'",
                 show(r->text, s, sizeof s));
        return 1;
    }
    if (strlen(name) > WD_CONF_NAME_MAX) {
        conf_err(r->es, conf->path, r->lineno, "key '%s' too long (at most %d characters)",
                 show(name, s, sizeof s), WD_CONF_NAME_MAX);
        return 1;
    }
    if (strlen(value) > WD_CONF_VALUE_MAX) {
        conf_err(r->es, conf->path, r->lineno,
                 "value of '%s' too long (%zu characters, at most %d)", name, strlen(value),
                 WD_CONF_VALUE_MAX);
        return 1;
    }
    /* Entries of one section are contiguous in the file part of the list. */
    for (size_t i = conf->n_entries; i-- > 0 && strcmp(conf->entries[i].section, sec) == 0;) {
        if (strcasecmp(conf->entries[i].key, name) == 0) {
            conf_err(r->es, conf->path, r->lineno, "duplicate key '%s' in [%s] (first at line %d)",
                     name, sec, conf->entries[i].line);
            return 1;
        }
    }
    wd_conf_entry *e = entry_add(conf, r->es, conf->path, r->lineno);
    if (!e)
        return 1;
    memcpy(e->section, sec, strlen(sec) + 1);
    memcpy(e->key, name, strlen(name) + 1);
    memcpy(e->value, value, strlen(value) + 1);
    return 1;
}

/* "worker:agg" -> "WORKER_AGG", "heartbeat_timeout" -> "HEARTBEAT_TIMEOUT". */
static void env_mangle(const char *s, char *out, size_t outlen) {
    size_t i = 0;
    for (; s[i] && i + 1 < outlen; i++)
        out[i] = isalnum((unsigned char)s[i]) ? (char)toupper((unsigned char)s[i]) : '_';
    out[i] = '\0';
}

/* Matches one WARDEN_* variable against [section]'s table; adds an entry. */
static void env_match(wd_conf *conf, const char *section, const char *var, size_t name_len,
                      errsink *es) {
    char want[ENV_NAME_MAX + 1], sec_up[SECTION_NAME_SIZE], key_up[WD_CONF_NAME_MAX + 1];
    size_t n_fields = 0;
    const wd_conf_field *table = table_for(section, &n_fields);
    if (!table)
        return; /* keys unknown: a module registers its table before reading */
    env_mangle(section, sec_up, sizeof sec_up);
    for (size_t i = 0; i < n_fields; i++) {
        env_mangle(table[i].name, key_up, sizeof key_up);
        int w = snprintf(want, sizeof want, "WARDEN_%s_%s", sec_up, key_up);
        if (w < 0 || (size_t)w != name_len || memcmp(want, var, name_len) != 0)
            continue;
        const char *value = var + name_len + 1;
        while (isspace((unsigned char)*value))
            value++;
        size_t vlen = strlen(value);
        while (vlen > 0 && isspace((unsigned char)value[vlen - 1]))
            vlen--;
        if (vlen > WD_CONF_VALUE_MAX) {
            conf_err(es, want, 0, "value too long (%zu characters, at most %d)", vlen,
                     WD_CONF_VALUE_MAX);
            return;
        }
        if (!section_find(conf, section) && section_add(conf, section, 0, es) < 0)
            return;
        wd_conf_entry *e = entry_add(conf, es, want, 0);
        if (!e)
            return;
        memcpy(e->section, section, strlen(section) + 1);
        memcpy(e->key, table[i].name, strlen(table[i].name) + 1);
        memcpy(e->value, value, vlen);
        e->value[vlen] = '\0';
        return;
    }
}

extern char **environ;

static void read_env(wd_conf *conf, char *const *envp, errsink *es) {
    int n_file_sections = conf->n_sections;
    bool sup_in_file = section_find(conf, "supervisor") != NULL;
    for (char *const *v = envp ? envp : environ; v && *v; v++) {
        const char *eq = strchr(*v, '=');
        if (strncmp(*v, "WARDEN_", 7) != 0 || !eq || (size_t)(eq - *v) > ENV_NAME_MAX)
            continue;
        size_t name_len = (size_t)(eq - *v);
        /* [supervisor] always; other sections only when the file has them. */
        if (!sup_in_file)
            env_match(conf, "supervisor", *v, name_len, es);
        for (int i = 0; i < n_file_sections; i++)
            env_match(conf, conf->sections[i].name, *v, name_len, es);
    }
}

static int conf_read(const char *path, char *const *envp, wd_conf **out, errsink *es) {
    FILE *f = NULL;
    wd_conf *conf = NULL;
    conf_reader *r = NULL;
    int rc = WD_ECONFIG;
    *out = NULL;
    if (strlen(path) >= WD_CONF_PATH_MAX) {
        conf_err(es, "config", 0, "path too long (at most %d bytes)", WD_CONF_PATH_MAX - 1);
        goto fail;
    }
    f = fopen(path, "re");
    if (!f) {
        conf_err(es, path, 0, "cannot open: %s", strerror(errno));
        goto fail;
    }
    conf = calloc(1, sizeof *conf);
    r = calloc(1, sizeof *r);
    if (!conf || !r) {
        rc = WD_ENOMEM;
        goto fail;
    }
    memcpy(conf->path, path, strlen(path) + 1);
    r->f = f;
    r->conf = conf;
    r->es = es;
    r->section = SECTION_NONE;
    /* Debian's libinih takes its line buffer size from this variable (a
     * stack VLA). Raised, never lowered, so a concurrent parse elsewhere in the
     * process only ever sees a larger buffer. */
    if (ini_max_line < WD_CONF_LINE_MAX + 3)
        ini_max_line = WD_CONF_LINE_MAX + 3;
    int ini_rc = ini_parse_stream(reader_next, r, reader_on_value, r);
    reader_finish_line(r);
    if (ferror(f))
        conf_err(es, path, 0, "read error: %s", strerror(errno));
    else if (ini_rc > 0 && !r->parse_error)
        conf_err(es, path, ini_rc, "cannot parse line");
    if (ini_rc == -2 || conf->oom) {
        rc = WD_ENOMEM;
        goto fail;
    }
    read_env(conf, envp, es);
    if (conf->oom) {
        rc = WD_ENOMEM;
        goto fail;
    }
    *out = conf;
    conf = NULL;
    rc = es->total ? WD_ECONFIG : 0;
fail:
    free(r);
    if (f)
        fclose(f);
    wd_conf_free(conf);
    return rc;
}

int wd_conf_read(const char *path, char *const *envp, wd_conf **out, wd_conf_errors *errs) {
    errsink es = {.errs = errs, .path = path};
    if (errs)
        errs->n = 0;
    if (!path || !out)
        return WD_EINVAL;
    int rc = conf_read(path, envp, out, &es);
    errs_sort(&es);
    return rc;
}

void wd_conf_free(wd_conf *conf) {
    if (!conf)
        return;
    free(conf->entries);
    free(conf);
}

const char *wd_conf_path(const wd_conf *conf) { return conf ? conf->path : NULL; }
size_t wd_conf_n_entries(const wd_conf *conf) { return conf ? conf->n_entries : 0; }
wd_conf_entry *wd_conf_entry_at(wd_conf *conf, size_t i) {
    return conf && i < conf->n_entries ? &conf->entries[i] : NULL;
}

/* ---- the supervisor's view ---- */

typedef struct {
    const char *file;
    int line;
} conf_site;

static const wd_conf_entry *entry_find(const wd_conf *conf, const char *section, const char *key) {
    const wd_conf_entry *found = NULL; /* the last one wins, as when applied */
    for (size_t i = 0; i < conf->n_entries; i++)
        if (strcmp(conf->entries[i].section, section) == 0 &&
            strcasecmp(conf->entries[i].key, key) == 0)
            found = &conf->entries[i];
    return found;
}

/* Where to point an error about key: its entry, else the section header. */
static conf_site site_of(const wd_conf *conf, const char *section, const char *key) {
    const wd_conf_entry *e = key ? entry_find(conf, section, key) : NULL;
    const conf_section *sec = section_find(conf, section);
    if (e)
        return (conf_site){e->file, e->line};
    return (conf_site){conf->path, sec ? sec->line : 0};
}

/* For a relation between two keys: the first that is set, else the header. */
static conf_site site_of_either(const wd_conf *conf, const char *section, const char *k1,
                                const char *k2) {
    return site_of(conf, section, entry_find(conf, section, k1) ? k1 : k2);
}

/* Reports an error at key's entry (else the section header). */
static void key_err(errsink *es, const wd_conf *conf, const char *section, const char *key,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void key_err(errsink *es, const wd_conf *conf, const char *section, const char *key,
                    const char *fmt, ...) {
    char msg[WD_CONF_ERROR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    conf_site at = site_of(conf, section, key);
    conf_err(es, at.file, at.line, "%s", msg);
}

static void check_supervisor(wd_conf *conf, const wd_supervisor_conf *sup, errsink *es) {
    char s[SHOW_BUF];
    conf_site at = site_of(conf, "supervisor", "run_dir");
    size_t n = strlen(sup->run_dir);
    /* A relative run_dir (to warden's working directory) is allowed for
     * development; the demo config uses one. */
    if (sup->run_dir[0] == '\0')
        conf_err(es, at.file, at.line, "run_dir is empty");
    else if (n + strlen("/heartbeat.sock") > UNIX_PATH_MAX)
        conf_err(es, at.file, at.line,
                 "run_dir too long (%zu bytes): its socket paths must fit "
                 "the %zu bytes of a unix socket address",
                 n, (size_t)UNIX_PATH_MAX);
    at = site_of(conf, "supervisor", "control_mode");
    const char *m = sup->control_mode;
    size_t mlen = strlen(m);
    bool ok = (mlen == 3 || (mlen == 4 && m[0] == '0'));
    for (size_t i = 0; ok && i < mlen; i++)
        ok = m[i] >= '0' && m[i] <= '7';
    if (!ok)
        conf_err(es, at.file, at.line, "bad control_mode '%s' (octal permissions, e.g. 0600)",
                 show(m, s, sizeof s));
}

static bool account_ok(const char *s) {
    if (s[0] == '-')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
            return false;
    return true;
}

/* Applies a [worker:]/[program:] section to p and checks what the table
 * cannot: the derived lists and the relations between keys. */
static void program_fill(wd_conf *conf, const conf_section *sec, const wd_supervisor_conf *sup,
                         wd_program_conf *p, errsink *es) {
    char why[WD_CONF_ERROR_LEN], a[WD_CONF_DURATION_STR_MAX], b[WD_CONF_DURATION_STR_MAX];
    char s[SHOW_BUF];
    const char *sn = sec->name;
    bool worker = strncmp(sn, "worker:", 7) == 0;
    conf_site at;
    memset(p, 0, sizeof *p);
    if (worker)
        apply_section(conf, sn, wd_conf_worker_fields, wd_conf_worker_n_fields, p, es);
    else
        apply_section(conf, sn, wd_conf_program_fields, wd_conf_program_n_fields, p, es);
    snprintf(p->name, sizeof p->name, "%s", strchr(sn, ':') + 1);
    p->is_worker = worker;
    snprintf(p->file, sizeof p->file, "%s", conf->path);
    p->line = sec->line;
    if (entry_find(conf, sn, "command") && wd_program_parse_command(p, why, sizeof why) != 0)
        key_err(es, conf, sn, "command", "%s", why);
    if (wd_program_parse_environment(p, why, sizeof why) != 0)
        key_err(es, conf, sn, "environment", "%s", why);
    if (wd_program_parse_depends(p, why, sizeof why) != 0)
        key_err(es, conf, sn, "depends_on", "%s", why);
    if (p->log_ring_lines == 0)
        p->log_ring_lines = sup->log_ring_lines;
    if (p->heartbeat_timeout_ms <= p->heartbeat_interval_ms) {
        at = site_of_either(conf, sn, "heartbeat_timeout", "heartbeat_interval");
        wd_format_duration_ms(p->heartbeat_timeout_ms, a, sizeof a);
        wd_format_duration_ms(p->heartbeat_interval_ms, b, sizeof b);
        conf_err(es, at.file, at.line,
                 "[%s]: heartbeat_timeout (%s) must be more than "
                 "heartbeat_interval (%s)",
                 sn, a, b);
    }
    if (p->backoff_cap_ms < p->backoff_base_ms) {
        at = site_of_either(conf, sn, "backoff_cap", "backoff_base");
        wd_format_duration_ms(p->backoff_cap_ms, a, sizeof a);
        wd_format_duration_ms(p->backoff_base_ms, b, sizeof b);
        conf_err(es, at.file, at.line, "[%s]: backoff_cap (%s) must be at least backoff_base (%s)",
                 sn, a, b);
    }
    if (p->breaker_cooldown_max_ms < p->breaker_cooldown_ms) {
        at = site_of_either(conf, sn, "breaker_cooldown_max", "breaker_cooldown");
        wd_format_duration_ms(p->breaker_cooldown_max_ms, a, sizeof a);
        wd_format_duration_ms(p->breaker_cooldown_ms, b, sizeof b);
        conf_err(es, at.file, at.line,
                 "[%s]: breaker_cooldown_max (%s) must be at least "
                 "breaker_cooldown (%s)",
                 sn, a, b);
    }
    /* Below 1M of address space not even the dynamic loader starts. */
    if (p->limit_memory != 0 && p->limit_memory < (uint64_t)SIZE_M)
        key_err(es, conf, sn, "limit_memory",
                "limit_memory too small (0 = unlimited, else at least 1M)");
    if (p->directory[0] && p->directory[0] != '/')
        key_err(es, conf, sn, "directory", "directory '%s' must be an absolute path",
                show(p->directory, s, sizeof s));
    if (!account_ok(p->user))
        key_err(es, conf, sn, "user", "bad user '%s' (a user name or uid)",
                show(p->user, s, sizeof s));
    if (!account_ok(p->group))
        key_err(es, conf, sn, "group", "bad group '%s' (a group name or gid)",
                show(p->group, s, sizeof s));
    /* The worker's command socket is run_dir/worker-NAME.sock. */
    size_t sock = strlen(sup->run_dir) + strlen("/worker-") + strlen(p->name) + strlen(".sock");
    if (worker && sup->run_dir[0] && sock > UNIX_PATH_MAX)
        conf_err(es, conf->path, sec->line,
                 "[%s]: socket path %s/worker-%s.sock is %zu bytes, "
                 "more than a unix socket address holds (%zu); shorten run_dir or the name",
                 sn, sup->run_dir, p->name, sock, (size_t)UNIX_PATH_MAX);
}

static void load_program(wd_conf *conf, const conf_section *sec, wd_supervisor_conf *sup,
                         wd_program_conf *scratch, errsink *es) {
    const char *name = strchr(sec->name, ':') + 1;
    char s[SHOW_BUF];
    bool keep = true;
    if (!wd_conf_name_valid(name)) {
        conf_err(es, conf->path, sec->line,
                 "bad name '%s' in [%s] (1..%d characters of A-Z a-z 0-9 _ -)",
                 show(name, s, sizeof s), sec->name, WD_CONF_NAME_MAX);
        keep = false;
    }
    for (int i = 0; keep && i < sup->n_programs; i++) {
        const wd_program_conf *o = &sup->programs[i];
        if (strcmp(o->name, name) == 0) {
            conf_err(es, conf->path, sec->line,
                     "[%s]: name '%s' already used by [%s:%s] at line %d", sec->name, name,
                     o->is_worker ? "worker" : "program", o->name, o->line);
            keep = false;
        }
    }
    if (keep && sup->n_programs == WD_CONF_PROGRAMS_MAX) {
        conf_err(es, conf->path, sec->line, "[%s]: too many programs (at most %d)", sec->name,
                 WD_CONF_PROGRAMS_MAX);
        keep = false;
    }
    /* A section that is not kept is still checked, so all its errors show. */
    program_fill(conf, sec, sup, keep ? &sup->programs[sup->n_programs] : scratch, es);
    if (keep)
        sup->n_programs++;
}

typedef struct {
    wd_conf *conf;
    const wd_supervisor_conf *sup;
    errsink *es;
    int adj[WD_CONF_PROGRAMS_MAX][WD_CONF_DEPS_MAX];
    int n_adj[WD_CONF_PROGRAMS_MAX];
    int color[WD_CONF_PROGRAMS_MAX]; /* 0 unseen, 1 on the path, 2 done */
    int path[WD_CONF_PROGRAMS_MAX];
    int depth;
} dep_walk;

static void program_section(const wd_program_conf *p, char *buf, size_t len) {
    snprintf(buf, len, "%s:%s", p->is_worker ? "worker" : "program", p->name);
}

/* Depth-first search; an edge back onto the current path is a cycle, reported
 * at the depends_on of its first program. */
static void dep_visit(dep_walk *w, int u) {
    w->color[u] = 1;
    w->path[w->depth++] = u;
    for (int k = 0; k < w->n_adj[u]; k++) {
        int v = w->adj[u][k];
        if (w->color[v] == 0) {
            dep_visit(w, v);
        } else if (w->color[v] == 1) {
            char cycle[WD_CONF_ERROR_LEN] = "", sec[SECTION_NAME_SIZE];
            size_t o = 0;
            int from = w->depth - 1;
            while (w->path[from] != v)
                from--;
            for (int i = from; i <= w->depth && o < sizeof cycle; i++) {
                int node = i < w->depth ? w->path[i] : v;
                int n = snprintf(cycle + o, sizeof cycle - o, "%s%s", i > from ? " -> " : "",
                                 w->sup->programs[node].name);
                o += n > 0 ? (size_t)n : 0;
            }
            program_section(&w->sup->programs[v], sec, sizeof sec);
            conf_site at = site_of(w->conf, sec, "depends_on");
            conf_err(w->es, at.file, at.line, "depends_on: cycle %s", cycle);
        }
    }
    w->depth--;
    w->color[u] = 2;
}

static void check_depends(wd_conf *conf, const wd_supervisor_conf *sup, errsink *es) {
    char sec[SECTION_NAME_SIZE];
    dep_walk *w = calloc(1, sizeof *w);
    if (!w) {
        conf_err(es, conf->path, 0, "out of memory checking depends_on");
        return;
    }
    *w = (dep_walk){.conf = conf, .sup = sup, .es = es};
    for (int i = 0; i < sup->n_programs; i++) {
        const wd_program_conf *p = &sup->programs[i];
        for (int d = 0; d < p->n_deps; d++) {
            int j = 0;
            while (j < sup->n_programs && strcmp(sup->programs[j].name, p->depends_on[d]) != 0)
                j++;
            if (j < sup->n_programs) {
                w->adj[i][w->n_adj[i]++] = j;
                continue;
            }
            program_section(p, sec, sizeof sec);
            conf_site at = site_of(conf, sec, "depends_on");
            conf_err(es, at.file, at.line, "depends_on: unknown program '%s'", p->depends_on[d]);
        }
    }
    for (int i = 0; i < sup->n_programs; i++)
        if (w->color[i] == 0)
            dep_visit(w, i);
    free(w);
}

int wd_conf_load_supervisor(const char *path, char *const *envp, wd_supervisor_conf *out,
                            wd_conf_errors *errs) {
    wd_conf *conf = NULL;
    wd_program_conf *scratch = NULL;
    errsink es = {.errs = errs, .path = path};
    if (errs)
        errs->n = 0;
    if (!out || !path)
        return WD_EINVAL;
    memset(out, 0, sizeof *out);
    int rc = conf_read(path, envp, &conf, &es);
    if (!conf || rc == WD_ENOMEM)
        goto fail;
    scratch = malloc(sizeof *scratch);
    if (!scratch) {
        rc = WD_ENOMEM;
        goto fail;
    }
    apply_section(conf, "supervisor", wd_conf_supervisor_fields, wd_conf_supervisor_n_fields, out,
                  &es);
    check_supervisor(conf, out, &es);
    for (int i = 0; i < conf->n_sections; i++) {
        const conf_section *sec = &conf->sections[i];
        size_t n_fields = 0;
        const wd_conf_field *table = table_for(sec->name, &n_fields);
        if (strcmp(sec->name, "supervisor") == 0)
            continue;
        if (strncmp(sec->name, "worker:", 7) == 0 || strncmp(sec->name, "program:", 8) == 0) {
            load_program(conf, sec, out, scratch, &es);
            continue;
        }
        if (!table) {
            bool kind = !strcmp(sec->name, "worker") || !strcmp(sec->name, "program");
            conf_err(&es, conf->path, sec->line, "unknown section [%s]%s%s%s", sec->name,
                     kind ? " (did you mean [" : "", kind ? sec->name : "", kind ? ":NAME]?)" : "");
            continue;
        }
        /* A registered section: check it against its table, keep nothing. */
        size_t target_size = 0;
        for (int r = 0; r < n_registry; r++)
            if (registry[r].table == table)
                target_size = registry[r].target_size;
        void *target = calloc(1, target_size ? target_size : 1);
        if (!target) {
            rc = WD_ENOMEM;
            goto fail;
        }
        apply_section(conf, sec->name, table, n_fields, target, &es);
        free(target);
    }
    check_depends(conf, out, &es);
    rc = es.total ? WD_ECONFIG : 0;
fail:
    errs_sort(&es);
    free(scratch);
    wd_conf_free(conf);
    return rc;
}

/* ---- documentation ---- */

static void print_table(FILE *out, const char *section, const wd_conf_field *t, size_t n,
                        bool live) {
    const char *c = live ? "" : ";";
    size_t n_prefix = strlen(section);
    if (n_prefix > 0 && section[n_prefix - 1] == '*') /* "breaker:*" -> "[breaker:NAME]" */
        fprintf(out, "%s[%.*sNAME]\n", c, (int)(n_prefix - 1), section);
    else
        fprintf(out, "%s[%s]\n", c, section);
    for (size_t i = 0; i < n; i++) {
        const wd_conf_field *f = &t[i];
        char extra[WD_CONF_ERROR_LEN];
        wd_conf_field_describe(f, extra, sizeof extra);
        const char *def = f->def ? f->def : "";
        fprintf(out, "%s; %s%s%s\n%s%s =%s%s\n", c, f->help ? f->help : "", *extra ? " " : "",
                extra, c, f->name, *def ? " " : "", def);
    }
    fputc('\n', out);
}

void wd_conf_print_defaults(void *stream) {
    FILE *out = stream;
    print_table(out, "supervisor", wd_conf_supervisor_fields, wd_conf_supervisor_n_fields, true);
    fprintf(out,
            "; A warden worker: speaks READY and heartbeats. NAME: 1..%d characters of "
            "A-Z a-z 0-9 _ -.\n",
            WD_CONF_NAME_MAX);
    print_table(out, "worker:NAME", wd_conf_worker_fields, wd_conf_worker_n_fields, false);
    fprintf(out, "; Any other program: process liveness only. Same keys as [worker:NAME].\n");
    print_table(out, "program:NAME", wd_conf_program_fields, wd_conf_program_n_fields, false);
    for (int i = 0; i < n_registry; i++)
        print_table(out, registry[i].pattern, registry[i].table, registry[i].n_fields, false);
}
