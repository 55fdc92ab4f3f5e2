/* LISTEN/NOTIFY for the PostgreSQL client: the remembered channels (issued
 * again after every reconnect by the setup in pg_query.c) and the delivery
 * of notifications that PQconsumeInput has buffered. */
#include "pg_int.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "wd_error.h"

/* Channel names are plain identifiers, so they can be quoted without an
 * escaping function that needs a live connection. */
static bool channel_valid(const char *c) {
    size_t n = 0;
    if (c == NULL)
        return false;
    for (; c[n] != '\0'; n++) {
        char ch = c[n];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_'))
            return false;
    }
    return n >= 1 && n <= WD_PG_CHANNEL_MAX;
}

int pg_listen_sql(const char *verb, const char *channel, char *buf, size_t buflen) {
    int n = snprintf(buf, buflen, "%s \"%s\"", verb, channel);
    return n < 0 || (size_t)n >= buflen ? WD_ERANGE : 0;
}

static pg_listen *find(wd_pg *pg, const char *channel) {
    for (size_t i = 0; i < pg->n_listens; i++)
        if (strcmp(pg->listens[i].channel, channel) == 0)
            return &pg->listens[i];
    return NULL;
}

int wd_pg_listen(wd_pg *pg, const char *channel, wd_pg_notify_cb notify_cb, void *arg) {
    char sql[WD_PG_CHANNEL_MAX + 16];
    if (pg == NULL || notify_cb == NULL || !channel_valid(channel))
        return WD_EINVAL;
    if (pg->state == WD_PG_CLOSED)
        return WD_ECLOSED;
    if (find(pg, channel) != NULL)
        return WD_EEXIST;
    if (pg->n_listens == WD_PG_LISTENS_MAX)
        return WD_ETOOBIG;
    pg_listen_sql("LISTEN", channel, sql, sizeof sql);
    int rc = pg_queue_internal(pg, sql);
    if (rc != 0)
        return rc;
    pg_listen *l = &pg->listens[pg->n_listens++];
    snprintf(l->channel, sizeof l->channel, "%s", channel);
    l->cb = notify_cb;
    l->arg = arg;
    return 0;
}

int wd_pg_unlisten(wd_pg *pg, const char *channel) {
    char sql[WD_PG_CHANNEL_MAX + 16];
    if (pg == NULL || !channel_valid(channel))
        return WD_EINVAL;
    if (pg->state == WD_PG_CLOSED)
        return WD_ECLOSED;
    pg_listen *l = find(pg, channel);
    if (l == NULL)
        return WD_ENOTFOUND;
    pg_listen_sql("UNLISTEN", channel, sql, sizeof sql);
    int rc = pg_queue_internal(pg, sql);
    if (rc != 0)
        return rc;
    *l = pg->listens[--pg->n_listens];
    return 0;
}

void pg_notify_deliver(wd_pg *pg) {
    uint64_t epoch = pg->conn_epoch;
    PGnotify *n;
    while (pg->conn_epoch == epoch && pg->conn != NULL && (n = PQnotifies(pg->conn)) != NULL) {
        /* Copied out first: the callback may unlisten, which moves entries. */
        pg_listen *l = find(pg, n->relname);
        if (l != NULL) {
            wd_pg_notify_cb cb = l->cb;
            void *arg = l->arg;
            cb(pg, n->relname, n->extra != NULL ? n->extra : "", n->be_pid, arg);
        } else {
            wd_debug("pg %s: notification on unknown channel dropped", pg->name);
        }
        PQfreemem(n);
    }
}
