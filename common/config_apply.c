/* Typed tables: one field parsed into its struct member (bounds checked, with
 * the message a person needs), a whole table applied to a section's raw
 * entries, the sections other modules register, and the documented defaults
 * printed from the same tables, so the docs cannot drift from the code. */
#include "config_int.h"
#include "wd_error.h"
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- one typed field ---- */

void wd_conf_field_zero(const wd_conf_field *f, void *target) {
    char *p = (char *)target + f->offset;
    switch (f->type) {
    case WD_CONF_STRING:
        memset(p, 0, f->size);
        break;
    case WD_CONF_INT:
    case WD_CONF_DURATION:
    case WD_CONF_SIZE:
        memset(p, 0, sizeof(uint64_t));
        break;
    case WD_CONF_BOOL:
        memset(p, 0, sizeof(bool));
        break;
    case WD_CONF_ENUM:
    case WD_CONF_SIGNAL:
        memset(p, 0, sizeof(int));
        break;
    case WD_CONF_DOUBLE: {
        double d = 0;
        memcpy(p, &d, sizeof d);
        break;
    }
    }
}

static void format_bound(const wd_conf_field *f, int64_t v, char *buf, size_t len) {
    uint64_t u = v < 0 ? 0 : (uint64_t)v;
    if (f->type == WD_CONF_DURATION)
        wd_format_duration_ms(u, buf, len);
    else if (f->type == WD_CONF_SIZE)
        wd_format_size(u, buf, len);
    else
        snprintf(buf, len, "%lld", (long long)v);
}

static int bounds_err(const wd_conf_field *f, const char *value, char *why, size_t whylen) {
    char lo[WD_CONF_DURATION_STR_MAX], hi[WD_CONF_DURATION_STR_MAX], s[WD_CONF_QUOTE_MAX];
    format_bound(f, f->min, lo, sizeof lo);
    format_bound(f, f->max, hi, sizeof hi);
    snprintf(why, whylen, "value '%s' for '%s' out of bounds (%s..%s)",
             wd_conf_quote(value, s, sizeof s), f->name, lo, hi);
    return WD_ERANGE;
}

static void list_names(const char *const *names, char *buf, size_t len) {
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; names && names[i] && o < len; i++) {
        int w = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

/* Parses value for field f into target. On error, why gets the message. */
int wd_conf_field_set(const wd_conf_field *f, const char *value, void *target, char *why,
                      size_t whylen) {
    char s[WD_CONF_QUOTE_MAX], names[WD_CONF_ERROR_LEN / 2];
    char *p = (char *)target + f->offset;
    bool bounded = f->min != 0 || f->max != 0;
    const char *v = wd_conf_quote(value, s, sizeof s);
    int rc = 0;
    /* An empty value on a key whose default is empty means "the default". */
    if (value[0] == '\0' && f->def && f->def[0] == '\0') {
        wd_conf_field_zero(f, target);
        return 0;
    }
    switch (f->type) {
    case WD_CONF_STRING: {
        size_t n = strlen(value);
        if (n >= f->size) {
            snprintf(why, whylen, "value for '%s' too long (%zu characters, at most %zu)", f->name,
                     n, f->size - 1);
            return WD_ERANGE;
        }
        /* The whole field, so equal settings are equal bytes (memcmp). */
        memset(p, 0, f->size);
        memcpy(p, value, n);
        return 0;
    }
    case WD_CONF_INT: {
        int64_t i;
        if ((rc = wd_parse_int(value, &i)) == WD_EINVAL) {
            snprintf(why, whylen, "bad integer '%s' for '%s'", v, f->name);
            return rc;
        }
        if (rc != 0 || (bounded && (i < f->min || i > f->max)))
            return bounds_err(f, value, why, whylen);
        memcpy(p, &i, sizeof i);
        return 0;
    }
    case WD_CONF_DURATION:
    case WD_CONF_SIZE: {
        uint64_t u;
        bool dur = f->type == WD_CONF_DURATION;
        rc = dur ? wd_parse_duration_ms(value, &u) : wd_parse_size(value, &u);
        if (rc == WD_EINVAL) {
            snprintf(why, whylen,
                     dur ? "bad duration '%s' for '%s' (use ns, us, ms, s, m, h)"
                         : "bad size '%s' for '%s' (use K, M, G; a bare number is bytes)",
                     v, f->name);
            return rc;
        }
        if (rc != 0 || (bounded && (u < (uint64_t)(f->min < 0 ? 0 : f->min) ||
                                    u > (uint64_t)(f->max < 0 ? 0 : f->max))))
            return bounds_err(f, value, why, whylen);
        memcpy(p, &u, sizeof u);
        return 0;
    }
    case WD_CONF_BOOL: {
        bool b;
        if (wd_parse_bool(value, &b) != 0) {
            snprintf(why, whylen,
                     "bad boolean '%s' for '%s' (use yes, no, true, false, on, off, 1, 0)", v,
                     f->name);
            return WD_EINVAL;
        }
        memcpy(p, &b, sizeof b);
        return 0;
    }
    case WD_CONF_ENUM:
        for (int i = 0; f->names && f->names[i]; i++) {
            if (strcasecmp(value, f->names[i]) == 0) {
                memcpy(p, &i, sizeof i);
                return 0;
            }
        }
        list_names(f->names, names, sizeof names);
        snprintf(why, whylen, "bad value '%s' for '%s' (use %s)", v, f->name, names);
        return WD_EINVAL;
    case WD_CONF_SIGNAL: {
        int sig;
        if (wd_parse_signal(value, &sig) != 0) {
            snprintf(why, whylen,
                     "bad signal '%s' for '%s' (use a name like TERM or SIGTERM, or a number)", v,
                     f->name);
            return WD_EINVAL;
        }
        memcpy(p, &sig, sizeof sig);
        return 0;
    }
    case WD_CONF_DOUBLE: {
        char *end = NULL;
        errno = 0;
        double d = strtod(value, &end);
        if (end == value || *end != '\0' || errno == ERANGE || d != d) {
            snprintf(why, whylen, "bad number '%s' for '%s'", v, f->name);
            return WD_EINVAL;
        }
        if ((f->dmin != 0 || f->dmax != 0) && (d < f->dmin || d > f->dmax)) {
            snprintf(why, whylen, "value '%s' for '%s' out of bounds (%g..%g)", v, f->name, f->dmin,
                     f->dmax);
            return WD_ERANGE;
        }
        memcpy(p, &d, sizeof d);
        return 0;
    }
    }
    snprintf(why, whylen, "key '%s' has an unknown type", f->name);
    return WD_EINVAL;
}

/* Levenshtein distance, for "did you mean". Keys are short; longer strings
 * are simply "far". */
static int edit_distance(const char *a, const char *b) {
    enum { MAXK = WD_CONF_NAME_MAX + 1 };
    int row[MAXK + 1];
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAXK || lb > MAXK)
        return MAXK;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best =
                diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const wd_conf_field *wd_conf_field_find(const wd_conf_field *table, size_t n_fields,
                                        const char *key, const char **suggest) {
    int near_d = 3; /* suggest only close misspellings */
    if (suggest)
        *suggest = NULL;
    for (size_t i = 0; i < n_fields; i++) {
        int d = edit_distance(key, table[i].name);
        if (d == 0)
            return &table[i];
        if (d < near_d && suggest)
            near_d = d, *suggest = table[i].name;
    }
    return NULL;
}

void wd_conf_field_describe(const wd_conf_field *f, char *buf, size_t buflen) {
    char lo[WD_CONF_DURATION_STR_MAX], hi[WD_CONF_DURATION_STR_MAX];
    size_t o = 0;
    if (buflen == 0)
        return;
    buf[0] = '\0';
    if (f->type == WD_CONF_ENUM) {
        for (int k = 0; f->names && f->names[k] && o < buflen; k++) {
            int w = snprintf(buf + o, buflen - o, "%s%s", k ? " | " : "(", f->names[k]);
            o += w > 0 ? (size_t)w : 0;
        }
        if (o > 0 && o + 2 <= buflen)
            memcpy(buf + o, ")", 2);
    } else if ((f->type == WD_CONF_INT || f->type == WD_CONF_DURATION || f->type == WD_CONF_SIZE) &&
               (f->min || f->max)) {
        format_bound(f, f->min, lo, sizeof lo);
        format_bound(f, f->max, hi, sizeof hi);
        snprintf(buf, buflen, "(%s..%s)", lo, hi);
    } else if (f->type == WD_CONF_DOUBLE && (f->dmin != 0 || f->dmax != 0)) {
        snprintf(buf, buflen, "(%g..%g)", f->dmin, f->dmax);
    }
}

/* ---- registered sections ---- */

typedef struct {
    char pattern[SECTION_NAME_SIZE];
    const wd_conf_field *table;
    size_t n_fields, target_size;
} conf_registration;

static conf_registration registry[WD_CONF_REGISTERED_MAX];
static int n_registry;

static bool pattern_match(const char *pattern, const char *name) {
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*')
        return strncmp(pattern, name, n - 1) == 0;
    return strcmp(pattern, name) == 0;
}

const wd_conf_field *conf_table_for(const char *section, size_t *n) {
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

size_t conf_registered_size(const wd_conf_field *table) {
    size_t target_size = 0;
    for (int r = 0; r < n_registry; r++)
        if (registry[r].table == table)
            target_size = registry[r].target_size;
    return target_size;
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
    if (conf_table_for(pattern, &n) != NULL)
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

/* ---- applying a table ---- */

void conf_apply_section(wd_conf *conf, const char *section, const wd_conf_field *table,
                        size_t n_fields, void *target, errsink *es) {
    char why[WD_CONF_ERROR_LEN];
    const conf_section *sec = conf_section_find(conf, section);
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
    conf_apply_section(conf, section, table, n_fields, target, &es);
    return es.total ? WD_ECONFIG : 0;
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
