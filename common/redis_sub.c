/* Redis client: pub/sub on a connection of its own. The subscriptions live
 * in the client (not only in hiredis), so every new connection subscribes
 * to all of them again. See redis.h. */
#include "redis_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "wd_error.h"

static void on_sub(redisAsyncContext *ac, void *reply_, void *privdata);

static void send_sub(wd_redis_conn *c, const wd_redis_sub *s, bool unsubscribe) {
    const char *verb = unsubscribe ? (s->pattern ? "PUNSUBSCRIBE" : "UNSUBSCRIBE")
                                   : (s->pattern ? "PSUBSCRIBE" : "SUBSCRIBE");
    const char *argv[2] = {verb, s->name};
    size_t lens[2] = {strlen(verb), s->len};
    redisAsyncCommandArgv(c->ac, on_sub, c, 2, argv, lens);
}

void rds_sub_resubscribe(wd_redis_conn *c) {
    wd_redis *r = c->r;
    for (int i = 0; i < WD_REDIS_SUBS_MAX; i++)
        if (r->subs[i].used)
            send_sub(c, &r->subs[i], false);
}

/* hiredis 0.14 in subscribed mode does not pass a PING reply to any
 * callback; a SUBSCRIBE of a private channel is answered through the
 * subscribe machinery instead, which on_sub sees. */
void rds_sub_ping(wd_redis_conn *c) {
    const wd_redis *r = c->r;
    const char *argv[2] = {"SUBSCRIBE", r->health_channel};
    redisAsyncCommandArgv(c->ac, on_sub, c, 2, argv, NULL);
}

void rds_sub_on_lost(wd_redis *r) {
    for (int i = 0; i < WD_REDIS_SUBS_MAX; i++)
        r->subs[i].confirmed = false;
}

static wd_redis_sub *find(wd_redis *r, const char *name, size_t len, bool pattern) {
    for (int i = 0; i < WD_REDIS_SUBS_MAX; i++) {
        wd_redis_sub *s = &r->subs[i];
        if (s->used && s->pattern == pattern && s->len == len && memcmp(s->name, name, len) == 0)
            return s;
    }
    return NULL;
}

static bool is_str(const redisReply *e) {
    return e && (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS);
}

static void on_sub(redisAsyncContext *ac, void *reply_, void *privdata) {
    (void)ac;
    const redisReply *reply = reply_;
    wd_redis_conn *c = privdata;
    wd_redis *r = c->r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 || r->closing)
        return;
    const redisReply *kind = reply->element[0];
    if (!is_str(kind))
        return;
    wd_redis_msg m = {.kind = WD_REDIS_MSG_MESSAGE};
    wd_redis_sub *s = NULL;
    if (strcasecmp(kind->str, "message") == 0 && is_str(reply->element[1]) &&
        is_str(reply->element[2])) {
        s = find(r, reply->element[1]->str, reply->element[1]->len, false);
        m.channel = reply->element[1]->str;
        m.channel_len = reply->element[1]->len;
        m.data = reply->element[2]->str;
        m.len = reply->element[2]->len;
    } else if (strcasecmp(kind->str, "pmessage") == 0 && reply->elements >= 4 &&
               is_str(reply->element[1]) && is_str(reply->element[2]) &&
               is_str(reply->element[3])) {
        s = find(r, reply->element[1]->str, reply->element[1]->len, true);
        m.pattern = reply->element[1]->str;
        m.pattern_len = reply->element[1]->len;
        m.channel = reply->element[2]->str;
        m.channel_len = reply->element[2]->len;
        m.data = reply->element[3]->str;
        m.len = reply->element[3]->len;
    } else if ((strcasecmp(kind->str, "subscribe") == 0 ||
                strcasecmp(kind->str, "psubscribe") == 0) &&
               is_str(reply->element[1])) {
        bool pattern = kind->str[0] == 'p' || kind->str[0] == 'P';
        const redisReply *name = reply->element[1];
        if (!pattern && strcmp(name->str, r->health_channel) == 0) {
            rds_conn_pong(c);
            return;
        }
        s = find(r, name->str, name->len, pattern);
        if (!s)
            return;
        s->confirmed = true;
        m.kind = WD_REDIS_MSG_SUBSCRIBED;
        if (pattern) {
            m.pattern = name->str;
            m.pattern_len = name->len;
        } else {
            m.channel = name->str;
            m.channel_len = name->len;
        }
    }
    if (!s)
        return; /* unsubscribed meanwhile, or (un)subscribe bookkeeping */
    if (m.kind == WD_REDIS_MSG_MESSAGE) {
        r->stats.messages++;
        if (r->have_metrics)
            wd_counter_add(r->s_messages, 1);
    }
    s->cb(r, &m, s->arg);
}

static int sub_add(wd_redis *r, const char *name, bool pattern, wd_redis_msg_cb cb, void *arg) {
    if (!r || !name || !cb)
        return WD_EINVAL;
    if (r->closing)
        return WD_ECLOSED;
    size_t len = strnlen(name, WD_REDIS_CHANNEL_MAX + 1);
    if (len == 0 || len > WD_REDIS_CHANNEL_MAX || strcmp(name, r->health_channel) == 0)
        return WD_EINVAL;
    if (find(r, name, len, pattern))
        return WD_EEXIST;
    wd_redis_sub *s = NULL;
    for (int i = 0; i < WD_REDIS_SUBS_MAX && !s; i++)
        if (!r->subs[i].used)
            s = &r->subs[i];
    if (!s)
        return WD_ETOOBIG;
    memset(s, 0, sizeof *s);
    s->used = true;
    s->pattern = pattern;
    memcpy(s->name, name, len);
    s->len = len;
    s->cb = cb;
    s->arg = arg;
    wd_redis_conn *c = &r->sub;
    if (!c->started)
        rds_conn_start(c);
    else if (c->state == WD_REDIS_READY && c->ac)
        send_sub(c, s, false);
    return 0;
}

static int sub_remove(wd_redis *r, const char *name, bool pattern) {
    if (!r || !name)
        return WD_EINVAL;
    wd_redis_sub *s = find(r, name, strnlen(name, WD_REDIS_CHANNEL_MAX + 1), pattern);
    if (!s)
        return WD_ENOTFOUND;
    wd_redis_conn *c = &r->sub;
    if (c->state == WD_REDIS_READY && c->ac && !r->closing)
        send_sub(c, s, true);
    s->used = false;
    return 0;
}

int wd_redis_subscribe(wd_redis *r, const char *channel, wd_redis_msg_cb cb, void *arg) {
    return sub_add(r, channel, false, cb, arg);
}

int wd_redis_psubscribe(wd_redis *r, const char *pattern, wd_redis_msg_cb cb, void *arg) {
    return sub_add(r, pattern, true, cb, arg);
}

int wd_redis_unsubscribe(wd_redis *r, const char *channel) {
    return sub_remove(r, channel, false);
}

int wd_redis_punsubscribe(wd_redis *r, const char *pattern) {
    return sub_remove(r, pattern, true);
}
