/* Config reading: a libinih reader that keeps exact line numbers, raw entries
 * with their origin, environment overrides, and the error sink every part of
 * the config module reports into. Tables are applied in config_apply.c, the
 * supervisor's cross-checks are in config_check.c, value parsers in
 * config_parse.c and the built-in tables in config_tables.c.
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
#include "config_int.h"
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

#define ENV_NAME_MAX 256   /* longest WARDEN_* variable name considered */
#define ENTRIES_INITIAL 16 /* an entry is ~8 KB; most files have few keys */
#define SECTION_NONE (-1)  /* before the first header */
#define SECTION_SKIP (-2)  /* after a bad header: its keys are dropped */

/* ---- errors ---- */

void conf_err(errsink *es, const char *file, int line, const char *fmt, ...) {
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
void conf_errs_sort(errsink *es) {
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

const conf_section *conf_section_find(const wd_conf *conf, const char *name) {
    for (int i = 0; i < conf->n_sections; i++)
        if (strcmp(conf->sections[i].name, name) == 0)
            return &conf->sections[i];
    return NULL;
}

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
    const conf_section *old = conf_section_find(conf, name);
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
    const wd_conf_field *table = conf_table_for(section, &n_fields);
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
        if (!conf_section_find(conf, section) && section_add(conf, section, 0, es) < 0)
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
    bool sup_in_file = conf_section_find(conf, "supervisor") != NULL;
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

int conf_read(const char *path, char *const *envp, wd_conf **out, errsink *es) {
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
    conf_errs_sort(&es);
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
