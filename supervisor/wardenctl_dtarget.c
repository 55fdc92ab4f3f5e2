/* wardenctl diagnose: where a dependency lives ("check redis at
 * 127.0.0.1:6379"), read from the supervisor's config file.
 *
 * The workers do not report their addresses, but the config they read does:
 * [aggregator] redis_url = redis://..., [position_monitor] pg_dsn = host=...
 * So diagnose reads the same file (the path is in `status`), with the same
 * WARDEN_<SECTION>_<KEY> environment overrides the supervisor applies: those
 * of warden's own environment (/proc/PID/environ, readable by the same user
 * or root, as the control socket requires), else wardenctl's; and
 * keeps only the host and port of the keys that name an address. A URL's
 * user, password, path and query and a DSN's other fields are never copied:
 * the result goes into a report that people paste into tickets. If the file
 * cannot be read (another user, another host) the target is just unknown. */
#include "wardenctl.h"
#include <ctype.h>
#include <ini.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DT_VALUE_MAX 1024
#define DT_HOST_MAX 256

typedef struct dt_entry {
    char section[PROTO_NAME_MAX + 16], key[64], value[DT_VALUE_MAX];
} dt_entry;

#define DT_ENV_MAX (1024 * 1024)
#define DT_SECTIONS_MAX 64

struct wctl_targets {
    dt_entry *v;
    size_t n, cap;
    char *env; /* warden's environ: NUL-separated; NULL = use our own */
    size_t env_len;
    char sections[DT_SECTIONS_MAX][PROTO_NAME_MAX + 16]; /* every section seen */
    size_t n_sections;
};

/* Keys that hold an address: redis_url, pg_dsn, broker_host, webhook_url... */
static bool addr_key(const char *key) {
    static const char *const suffixes[] = {"url", "dsn", "host", "addr", "address",
                                           "endpoint", "conninfo", NULL};
    size_t kl = strlen(key);
    for (int i = 0; suffixes[i] != NULL; i++) {
        size_t sl = strlen(suffixes[i]);
        if (kl >= sl && strcmp(key + kl - sl, suffixes[i]) == 0)
            return true;
    }
    return false;
}

static bool port_key(const char *key) {
    size_t kl = strlen(key);
    return kl >= 4 && strcmp(key + kl - 4, "port") == 0;
}

static bool add_entry(wctl_targets *t, const char *section, const char *name, const char *value) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        dt_entry *nv = realloc(t->v, cap * sizeof *nv);
        if (nv == NULL)
            return false;
        t->v = nv, t->cap = cap;
    }
    dt_entry *e = &t->v[t->n++];
    snprintf(e->section, sizeof e->section, "%s", section);
    snprintf(e->key, sizeof e->key, "%s", name);
    snprintf(e->value, sizeof e->value, "%s", value);
    return true;
}

static void note_section(wctl_targets *t, const char *section) {
    if (strlen(section) >= sizeof t->sections[0])
        return;
    for (size_t i = 0; i < t->n_sections; i++)
        if (strcmp(t->sections[i], section) == 0)
            return;
    if (t->n_sections < DT_SECTIONS_MAX)
        snprintf(t->sections[t->n_sections++], sizeof t->sections[0], "%s", section);
}

static int on_entry(void *user, const char *section, const char *name, const char *value) {
    wctl_targets *t = user;
    note_section(t, section);
    bool cmd = strncmp(section, "worker:", 7) == 0 && strcmp(name, "command") == 0;
    if (!cmd && !addr_key(name) && !port_key(name))
        return 1;
    if (strlen(section) >= sizeof t->v[0].section || strlen(name) >= sizeof t->v[0].key ||
        strlen(value) >= DT_VALUE_MAX)
        return 1; /* not ours to judge: warden check-config does that */
    add_entry(t, section, name, value);
    return 1;
}

/* The override variable of section/key, as common/config.c spells it. */
static void env_name(char *var, size_t len, const char *section, const char *key) {
    size_t n = (size_t)snprintf(var, len, "WARDEN_%s_%s", section, key);
    for (size_t i = 7; i < n && i < len; i++)
        var[i] = isalnum((unsigned char)var[i]) ? (char)toupper((unsigned char)var[i]) : '_';
}

static const char *env_get(const wctl_targets *t, const char *var) {
    if (t->env == NULL)
        return getenv(var);
    size_t vl = strlen(var);
    for (size_t off = 0; off < t->env_len; off += strlen(t->env + off) + 1)
        if (strncmp(t->env + off, var, vl) == 0 && t->env[off + vl] == '=')
            return t->env + off + vl + 1;
    return NULL;
}

/* warden's environment, NUL-terminated as a whole; false if unreadable. */
static bool env_load(wctl_targets *t, long pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/environ", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return false;
    char *buf = malloc(DT_ENV_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, DT_ENV_MAX, f) : 0;
    fclose(f);
    if (buf == NULL || n == 0) {
        free(buf);
        return false;
    }
    buf[n] = '\0';
    t->env = buf, t->env_len = n;
    return true;
}

/* A WARDEN_<SECTION>_<KEY> address that the file does not have at all
 * (scripts/run and Kubernetes manifests set them this way) is a target too. */
static void env_only_entries(wctl_targets *t) {
    for (size_t s = 0; s < t->n_sections; s++) {
        char prefix[sizeof t->sections[0] + 16];
        env_name(prefix, sizeof prefix, t->sections[s], "");
        size_t pl = strlen(prefix);
        for (size_t off = 0; t->env != NULL && off < t->env_len; off += strlen(t->env + off) + 1) {
            const char *kv = t->env + off, *eq = strchr(kv, '=');
            char key[64];
            size_t kl = eq != NULL ? (size_t)(eq - kv) : 0;
            if (kl <= pl || kl - pl >= sizeof key || strncmp(kv, prefix, pl) != 0)
                continue;
            for (size_t i = 0; i < kl - pl; i++)
                key[i] = (char)tolower((unsigned char)kv[pl + i]);
            key[kl - pl] = '\0';
            if (!addr_key(key) && !port_key(key))
                continue;
            bool have = false;
            for (size_t i = 0; i < t->n && !have; i++)
                have = strcmp(t->v[i].section, t->sections[s]) == 0 && strcmp(t->v[i].key, key) == 0;
            if (!have)
                add_entry(t, t->sections[s], key, "");
        }
    }
}

wctl_targets *wctl_targets_load(const char *config_path, long warden_pid) {
    wctl_targets *t = calloc(1, sizeof *t);
    if (t == NULL || config_path == NULL || config_path[0] == '\0')
        return t;
    if (ini_parse(config_path, on_entry, t) < 0) {
        t->n = 0; /* unreadable: every target unknown */
        return t;
    }
    if (warden_pid > 0 && env_load(t, warden_pid))
        env_only_entries(t);
    return t;
}

void wctl_targets_free(wctl_targets *t) {
    if (t != NULL) {
        free(t->v);
        free(t->env);
    }
    free(t);
}

/* WARDEN_<SECTION>_<KEY> wins over the file. */
static const char *effective(const wctl_targets *t, const dt_entry *e) {
    char var[sizeof e->section + sizeof e->key + 16];
    env_name(var, sizeof var, e->section, e->key);
    const char *env = env_get(t, var);
    return env != NULL && env[0] != '\0' ? env : e->value;
}

static unsigned default_port(const char *scheme, size_t len) {
    static const struct {
        const char *scheme;
        unsigned port;
    } known[] = {{"redis", 6379}, {"rediss", 6379}, {"postgres", 5432}, {"postgresql", 5432},
                 {"http", 80},    {"https", 443},   {"smtp", 25},       {"smtps", 465},
                 {"tcp", 0},      {"amqp", 5672}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].scheme) == len && strncmp(scheme, known[i].scheme, len) == 0)
            return known[i].port;
    return 0;
}

static bool host_ok(const char *s, size_t n) {
    if (n == 0 || n >= DT_HOST_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(".-_:[]%/", s[i]))
            return false;
    return true;
}

/* scheme://[user[:password]@]host[:port][/path][?query] -> host:port */
static bool from_url(const char *v, char *out, size_t len) {
    const char *sep = strstr(v, "://");
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            at = p; /* the last '@': a password may hold one, %-encoded or not */
    if (at != NULL)
        alen -= (size_t)(at + 1 - auth), auth = at + 1;
    const char *close = auth[0] == '[' ? memchr(auth, ']', alen) : NULL;
    const char *colon = memchr(close ? close : auth, ':', alen - (size_t)((close ? close : auth) - auth));
    size_t hlen = colon ? (size_t)(colon - auth) : alen;
    if (!host_ok(auth, hlen))
        return false;
    if (colon != NULL) {
        size_t plen = alen - hlen - 1;
        if (plen == 0 || plen > 5 || strspn(colon + 1, "0123456789") < plen)
            return false;
        snprintf(out, len, "%.*s:%.*s", (int)hlen, auth, (int)plen, colon + 1);
    } else {
        unsigned port = default_port(v, (size_t)(sep - v));
        if (port != 0)
            snprintf(out, len, "%.*s:%u", (int)hlen, auth, port);
        else
            snprintf(out, len, "%.*s", (int)hlen, auth);
    }
    return true;
}

/* A libpq conninfo "host=h port=p dbname=... password=...": host and port only. */
static bool from_dsn(const char *v, char *out, size_t len) {
    char host[DT_HOST_MAX] = "", port[8] = "5432";
    const char *p = v;
    while (*p) {
        p += strspn(p, " \t");
        size_t klen = strcspn(p, "= \t");
        const char *eq = p + klen;
        if (*eq != '=')
            break;
        const char *val = eq + 1;
        bool quoted = *val == '\'';
        size_t vlen = quoted ? strcspn(val + 1, "'") : strcspn(val, " \t");
        const char *vs = quoted ? val + 1 : val;
        if ((klen == 4 && strncmp(p, "host", 4) == 0) || (klen == 8 && strncmp(p, "hostaddr", 8) == 0)) {
            if (!host_ok(vs, vlen))
                return false;
            snprintf(host, sizeof host, "%.*s", (int)vlen, vs);
        } else if (klen == 4 && strncmp(p, "port", 4) == 0) {
            if (vlen == 0 || vlen > 5 || strspn(vs, "0123456789") < vlen)
                return false;
            snprintf(port, sizeof port, "%.*s", (int)vlen, vs);
        }
        p = vs + vlen + (quoted && vs[vlen] == '\'' ? 1 : 0);
    }
    if (host[0] == '\0')
        return false;
    if (host[0] == '/')
        snprintf(out, len, "%s (unix socket, port %s)", host, port);
    else
        snprintf(out, len, "%s:%s", host, port);
    return true;
}

static bool to_target(const char *v, char *out, size_t len) {
    if (strstr(v, "://") != NULL)
        return from_url(v, out, len);
    if (strchr(v, '=') != NULL)
        return from_dsn(v, out, len);
    return host_ok(v, strlen(v)) && snprintf(out, len, "%s", v) > 0;
}

/* The [SECTION] names a worker's settings may be under: its own name and
 * its program's ("warden-aggregator" reads [aggregator]). */
static void worker_sections(const wctl_targets *t, const char *worker, char out[2][PROTO_NAME_MAX + 16]) {
    char want[PROTO_NAME_MAX + 16];
    snprintf(out[0], sizeof out[0], "%s", worker);
    out[1][0] = '\0';
    snprintf(want, sizeof want, "worker:%s", worker);
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].section, want) != 0 || strcmp(t->v[i].key, "command") != 0)
            continue;
        const char *cmd = effective(t, &t->v[i]);
        size_t wl = strcspn(cmd, " \t");
        const char *base = cmd;
        for (const char *p = cmd; p < cmd + wl; p++)
            if (*p == '/')
                base = p + 1;
        wl -= (size_t)(base - cmd);
        if (wl > 7 && strncmp(base, "warden-", 7) == 0)
            base += 7, wl -= 7;
        if (wl > 0 && wl < sizeof out[1])
            snprintf(out[1], sizeof out[1], "%.*s", (int)wl, base);
    }
}

/* Does key name dependency dep ("redis_url" for redis, "pg_dsn" for
 * postgresql)? A few spellings of the same service are one dependency. */
static bool key_names(const char *key, const char *dep) {
    static const char *const aliases[][4] = {{"postgresql", "pg", "postgres", "database"},
                                             {"pg", "postgres", "database", NULL},
                                             {"broker", "api", NULL, NULL}};
    if (strstr(key, dep) != NULL)
        return true;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (strcmp(aliases[i][0], dep) != 0)
            continue;
        for (int j = 1; j < 4 && aliases[i][j] != NULL; j++)
            if (strstr(key, aliases[i][j]) != NULL)
                return true;
    }
    return false;
}

int wctl_target_find(const wctl_targets *t, const char *worker, const char *dep, char *out,
                     size_t len) {
    char secs[2][PROTO_NAME_MAX + 16];
    if (t == NULL || t->n == 0)
        return -1;
    worker_sections(t, worker, secs);
    /* The worker's own sections first, then a section named after the
     * dependency itself ([redis] host = ...). */
    const char *order[3] = {secs[0], secs[1], dep};
    for (int s = 0; s < 3; s++) {
        if (order[s][0] == '\0')
            continue;
        for (size_t i = 0; i < t->n; i++) {
            const dt_entry *e = &t->v[i];
            if (strcmp(e->section, order[s]) != 0 || !addr_key(e->key) ||
                (s < 2 && !key_names(e->key, dep)))
                continue;
            const char *v = effective(t, e);
            if (v[0] == '\0' || !to_target(v, out, len))
                continue;
            /* redis_host beside redis_port: join them. */
            size_t kl = strlen(e->key), pl = strcspn(e->key, "_");
            if (strstr(v, "://") == NULL && strchr(v, '=') == NULL && strchr(v, ':') == NULL &&
                pl < kl) {
                for (size_t j = 0; j < t->n; j++)
                    if (strcmp(t->v[j].section, e->section) == 0 && port_key(t->v[j].key) &&
                        strncmp(t->v[j].key, e->key, pl + 1) == 0 &&
                        strspn(effective(t, &t->v[j]), "0123456789") == strlen(effective(t, &t->v[j])))
                        snprintf(out + strlen(out), len - strlen(out), ":%s",
                                 effective(t, &t->v[j]));
            }
            return 0;
        }
    }
    return -1;
}
