/* The supervisor's view of a config: [supervisor] and every [worker:]/
 * [program:] section loaded into wd_supervisor_conf, registered sections
 * checked against their tables, and the checks no single table can make:
 * names, relations between keys, depends_on (unknown names and cycles) and
 * socket paths that must fit a unix socket address. Each error points at the
 * key it is about, else at the section header. */
#include "config_int.h"
#include "wd_error.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#define UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

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
    const conf_section *sec = conf_section_find(conf, section);
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

/* Reports two durations in the wrong order, "[sec]: k1 (v1) must be at least
 * k2 (v2)", at k1 if the file sets it, else at k2: the fix may be in either. */
static void order_err(errsink *es, const wd_conf *conf, const char *section, const char *k1,
                      uint64_t v1_ms, const char *relation, const char *k2, uint64_t v2_ms) {
    char a[WD_CONF_DURATION_STR_MAX], b[WD_CONF_DURATION_STR_MAX];
    conf_site at = site_of_either(conf, section, k1, k2);
    wd_format_duration_ms(v1_ms, a, sizeof a);
    wd_format_duration_ms(v2_ms, b, sizeof b);
    conf_err(es, at.file, at.line, "[%s]: %s (%s) must be %s %s (%s)", section, k1, a, relation, k2,
             b);
}

/* Applies a [worker:]/[program:] section to p and checks what the table
 * cannot: the derived lists and the relations between keys. */
static void program_fill(wd_conf *conf, const conf_section *sec, const wd_supervisor_conf *sup,
                         wd_program_conf *p, errsink *es) {
    char why[WD_CONF_ERROR_LEN];
    char s[SHOW_BUF];
    const char *sn = sec->name;
    bool worker = strncmp(sn, "worker:", 7) == 0;
    memset(p, 0, sizeof *p);
    if (worker)
        conf_apply_section(conf, sn, wd_conf_worker_fields, wd_conf_worker_n_fields, p, es);
    else
        conf_apply_section(conf, sn, wd_conf_program_fields, wd_conf_program_n_fields, p, es);
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
    if (p->heartbeat_timeout_ms <= p->heartbeat_interval_ms)
        order_err(es, conf, sn, "heartbeat_timeout", p->heartbeat_timeout_ms, "more than",
                  "heartbeat_interval", p->heartbeat_interval_ms);
    if (p->backoff_cap_ms < p->backoff_base_ms)
        order_err(es, conf, sn, "backoff_cap", p->backoff_cap_ms, "at least", "backoff_base",
                  p->backoff_base_ms);
    if (p->breaker_cooldown_max_ms < p->breaker_cooldown_ms)
        order_err(es, conf, sn, "breaker_cooldown_max", p->breaker_cooldown_max_ms, "at least",
                  "breaker_cooldown", p->breaker_cooldown_ms);
    /* Below 1M of address space not even the dynamic loader starts. */
    if (p->limit_memory != 0 && p->limit_memory < MIB)
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
    conf_apply_section(conf, "supervisor", wd_conf_supervisor_fields, wd_conf_supervisor_n_fields,
                       out, &es);
    check_supervisor(conf, out, &es);
    for (int i = 0; i < conf->n_sections; i++) {
        const conf_section *sec = &conf->sections[i];
        size_t n_fields = 0;
        const wd_conf_field *table = conf_table_for(sec->name, &n_fields);
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
        size_t target_size = conf_registered_size(table);
        void *target = calloc(1, target_size ? target_size : 1);
        if (!target) {
            rc = WD_ENOMEM;
            goto fail;
        }
        conf_apply_section(conf, sec->name, table, n_fields, target, &es);
        free(target);
    }
    check_depends(conf, out, &es);
    rc = es.total ? WD_ECONFIG : 0;
fail:
    conf_errs_sort(&es);
    free(scratch);
    wd_conf_free(conf);
    return rc;
}
