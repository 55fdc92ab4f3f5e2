/* Redis storage of alerts, pending routes and dead letters. Each change is
 * one Lua script, so a crash between two commands cannot leave an alert
 * half stored or a route half finished.
 *
 * Keys (PREFIX = key_prefix, default "warden:notifier:"):
 *   PREFIX seen:ID     "1" for id_ttl: a resend of a known id is acked, not stored again
 *   PREFIX alert:ID    hash {msg: packed alert, stored: ms}
 *   PREFIX routes:ID   set of channel names still to deliver
 *   PREFIX pending     zset ID -> stored ms (what a restart loads)
 *   PREFIX dead:ID     hash {msg, error, attempts, at}
 *   PREFIX deadch:ID   set of channels that gave up on ID
 *   PREFIX dlq         zset ID -> ms it went dead (oldest first; trimmed to dlq_max) */
#include "nt.h"
#include "clock.h"
#include "log.h"
#include "redis.h"
#include "wd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 256
#define ARGS_MAX (8 + NT_CONF_CHANNELS_MAX)

static const char PUT_LUA[] =
    "if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[4]) == false then return 0 end\n"
    "redis.call('HSET', KEYS[2], 'msg', ARGV[2], 'stored', ARGV[3])\n"
    "for i = 5, #ARGV do redis.call('SADD', KEYS[3], ARGV[i]) end\n"
    "redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])\n"
    "return 1\n";

static const char DONE_LUA[] =
    "redis.call('SREM', KEYS[1], ARGV[1])\n"
    "if redis.call('SCARD', KEYS[1]) == 0 then\n"
    "  redis.call('DEL', KEYS[2]); redis.call('ZREM', KEYS[3], ARGV[2])\n"
    "end\n"
    "return 0\n";

static const char DEAD_LUA[] =
    "local msg = redis.call('HGET', KEYS[2], 'msg')\n"
    "if not msg then return 0 end\n"
    "redis.call('HSET', KEYS[4], 'msg', msg, 'error', ARGV[4], 'attempts', ARGV[5], 'at', ARGV[3])\n"
    "redis.call('SADD', KEYS[5], ARGV[1])\n"
    "redis.call('ZADD', KEYS[6], 'NX', ARGV[3], ARGV[2])\n"
    "redis.call('SREM', KEYS[1], ARGV[1])\n"
    "if redis.call('SCARD', KEYS[1]) == 0 then\n"
    "  redis.call('DEL', KEYS[2]); redis.call('ZREM', KEYS[3], ARGV[2])\n"
    "end\n"
    "local over = redis.call('ZCARD', KEYS[6]) - tonumber(ARGV[6])\n"
    "if over > 0 then\n"
    "  for _, id in ipairs(redis.call('ZRANGE', KEYS[6], 0, over - 1)) do\n"
    "    redis.call('DEL', ARGV[7] .. 'dead:' .. id, ARGV[7] .. 'deadch:' .. id)\n"
    "  end\n"
    "  redis.call('ZREMRANGEBYRANK', KEYS[6], 0, over - 1)\n"
    "end\n"
    "return 1\n";

/* Returns {{id, msg, {channels}}, ...} for up to ARGV[2] pending alerts. */
static const char LOAD_LUA[] =
    "local out = {}\n"
    "for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do\n"
    "  local msg = redis.call('HGET', ARGV[1] .. 'alert:' .. id, 'msg')\n"
    "  if msg then\n"
    "    out[#out + 1] = {id, msg, redis.call('SMEMBERS', ARGV[1] .. 'routes:' .. id)}\n"
    "  else\n"
    "    redis.call('ZREM', KEYS[1], id)\n"
    "  end\n"
    "end\n"
    "return out\n";

char *nt_key(const nt_state *nt, const char *kind, const char *id, char *buf, size_t len) {
    snprintf(buf, len, "%s%s%s%s", nt->conf.key_prefix, kind, id ? ":" : "", id ? id : "");
    return buf;
}

static int eval(nt_state *nt, wd_redis_cb cb, void *arg, const char *script, int nkeys,
                const char *const *keys, int nargs, const char *const *args, const size_t *lens) {
    const char *argv[2 + ARGS_MAX * 2];
    size_t argl[2 + ARGS_MAX * 2];
    char nk[16];
    int argc = 0;
    if (!nt->redis)
        return WD_EUNAVAIL;
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[argc] = "EVAL", argl[argc++] = 4;
    argv[argc] = script, argl[argc++] = strlen(script);
    argv[argc] = nk, argl[argc++] = strlen(nk);
    for (int i = 0; i < nkeys; i++)
        argv[argc] = keys[i], argl[argc++] = strlen(keys[i]);
    for (int i = 0; i < nargs; i++)
        argv[argc] = args[i], argl[argc++] = lens && lens[i] != (size_t)-1 ? lens[i] : strlen(args[i]);
    return wd_redis_command_argv(nt->redis, cb, arg, argc, argv, argl);
}

/* ---- put ---- */

typedef struct {
    nt_state *nt;
    void (*cb)(nt_state *, int, bool, void *);
    void *arg;
} put_op;

static void on_put(wd_redis *r, const wd_redis_result *res, void *arg) {
    put_op *op = arg;
    (void)r;
    bool dup = res->status == 0 && res->reply && res->reply->type == REDIS_REPLY_INTEGER &&
               res->reply->integer == 0;
    if (res->status != 0)
        wd_debug("store: %s", res->error);
    op->cb(op->nt, res->status, dup, op->arg);
    free(op);
}

int nt_store_put(nt_state *nt, const char *id, const void *msg, size_t len, uint32_t routes,
                 void (*cb)(nt_state *, int status, bool dup, void *arg), void *arg) {
    char k[4][KEY_MAX], now[24], ttl[24];
    const char *keys[4] = {nt_key(nt, "seen", id, k[0], KEY_MAX),
                           nt_key(nt, "alert", id, k[1], KEY_MAX),
                           nt_key(nt, "routes", id, k[2], KEY_MAX),
                           nt_key(nt, "pending", NULL, k[3], KEY_MAX)};
    const char *args[4 + NT_CONF_CHANNELS_MAX];
    size_t lens[4 + NT_CONF_CHANNELS_MAX];
    int n = 0;
    snprintf(now, sizeof now, "%llu", (unsigned long long)(wd_clock_real_ns() / WD_NS_PER_MS));
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)nt->conf.id_ttl_ms);
    args[n] = id, lens[n++] = (size_t)-1;
    args[n] = msg, lens[n++] = len;
    args[n] = now, lens[n++] = (size_t)-1;
    args[n] = ttl, lens[n++] = (size_t)-1;
    for (int c = 0; c < nt->n_channels; c++)
        if (routes & (1u << c))
            args[n] = nt->ch[c].name, lens[n++] = (size_t)-1;
    put_op *op = malloc(sizeof *op);
    if (!op)
        return WD_ENOMEM;
    *op = (put_op){nt, cb, arg};
    int rc = eval(nt, on_put, op, PUT_LUA, 4, keys, n, args, lens);
    if (rc != 0)
        free(op);
    return rc;
}

/* ---- route done / dead ---- */

static void on_logged(wd_redis *r, const wd_redis_result *res, void *arg) {
    (void)r;
    if (res->status != 0)
        wd_warn("store: %s: %s (the alert stays pending and is delivered again after a restart)",
                (const char *)arg, res->error);
}

int nt_store_route_done(nt_state *nt, const nt_alert *al, int ch_idx) {
    char k[3][KEY_MAX];
    const char *keys[3] = {nt_key(nt, "routes", al->id, k[0], KEY_MAX),
                           nt_key(nt, "alert", al->id, k[1], KEY_MAX),
                           nt_key(nt, "pending", NULL, k[2], KEY_MAX)};
    const char *args[2] = {nt->ch[ch_idx].name, al->id};
    return eval(nt, on_logged, (void *)"route done", DONE_LUA, 3, keys, 2, args, NULL);
}

int nt_store_dead(nt_state *nt, const nt_alert *al, int ch_idx, uint32_t attempts,
                  const char *error) {
    char k[6][KEY_MAX], now[24], att[16], max[24];
    const char *keys[6] = {nt_key(nt, "routes", al->id, k[0], KEY_MAX),
                           nt_key(nt, "alert", al->id, k[1], KEY_MAX),
                           nt_key(nt, "pending", NULL, k[2], KEY_MAX),
                           nt_key(nt, "dead", al->id, k[3], KEY_MAX),
                           nt_key(nt, "deadch", al->id, k[4], KEY_MAX),
                           nt_key(nt, "dlq", NULL, k[5], KEY_MAX)};
    snprintf(now, sizeof now, "%llu", (unsigned long long)(wd_clock_real_ns() / WD_NS_PER_MS));
    snprintf(att, sizeof att, "%u", attempts);
    snprintf(max, sizeof max, "%llu", (unsigned long long)nt->conf.dlq_max);
    const char *args[7] = {nt->ch[ch_idx].name, al->id, now, error, att, max,
                           nt->conf.key_prefix};
    return eval(nt, on_logged, (void *)"dead letter", DEAD_LUA, 6, keys, 7, args, NULL);
}

/* ---- load (start-up) ---- */

static void load_again(uv_timer_t *t);

static void on_load(wd_redis *r, const wd_redis_result *res, void *arg) {
    nt_state *nt = arg;
    (void)r;
    if (nt->stopping)
        return;
    if (res->status != 0 || !res->reply || res->reply->type != REDIS_REPLY_ARRAY) {
        wd_warn("store: loading pending alerts: %s; again in 1 s",
                res->status ? res->error : "unexpected reply");
        uv_timer_start(&nt->load_timer, load_again, 1000, 0);
        return;
    }
    size_t loaded = 0, bad = 0;
    for (size_t i = 0; i < res->reply->elements; i++) {
        const redisReply *e = res->reply->element[i];
        const redisReply *id = wd_redis_reply_at(e, 0), *msg = wd_redis_reply_at(e, 1),
                         *chs = wd_redis_reply_at(e, 2);
        if (!id || !msg || !chs || msg->type != REDIS_REPLY_STRING || chs->type != REDIS_REPLY_ARRAY) {
            bad++;
            continue;
        }
        char idbuf[PROTO_ALERT_ID_MAX + 1];
        snprintf(idbuf, sizeof idbuf, "%.*s", (int)id->len, id->str);
        if (nt_pending_find(nt, idbuf))
            continue;
        proto_alert *a = malloc(sizeof *a);
        char err[256];
        if (!a || proto_alert_unpack(msg->str, msg->len, NULL, a, err, sizeof err) != 0) {
            free(a);
            bad++;
            continue;
        }
        uint32_t routes = 0;
        for (size_t c = 0; c < chs->elements; c++) {
            const redisReply *cn = chs->element[c];
            int found = -1;
            for (int k = 0; k < nt->n_channels && found < 0; k++)
                if (cn->type == REDIS_REPLY_STRING && strlen(nt->ch[k].name) == cn->len &&
                    memcmp(nt->ch[k].name, cn->str, cn->len) == 0)
                    found = k;
            if (found >= 0)
                routes |= 1u << found;
            else
                wd_warn("store: alert %s is pending for channel '%.*s', which is no longer "
                        "configured: that route is kept in Redis but not delivered",
                        a->id, (int)(cn->len > 64 ? 64 : cn->len), cn->str);
        }
        nt_alert *al = nt_alert_new(a, routes);
        free(a);
        if (!al || nt_pending_add(nt, al) != 0) {
            free(al);
            bad++;
            continue;
        }
        loaded++;
        nt_deliver_alert(nt, al);
    }
    nt->loaded = true;
    wd_info("store: %zu pending alerts loaded from Redis%s", loaded, bad ? " (some unreadable)" : "");
}

static void load_again(uv_timer_t *t) { nt_store_load(t->data); }

int nt_store_load(nt_state *nt) {
    char k[KEY_MAX], max[24];
    const char *keys[1] = {nt_key(nt, "pending", NULL, k, sizeof k)};
    snprintf(max, sizeof max, "%lld", (long long)nt->conf.max_pending);
    const char *args[2] = {nt->conf.key_prefix, max};
    int rc = eval(nt, on_load, nt, LOAD_LUA, 1, keys, 2, args, NULL);
    if (rc != 0)
        uv_timer_start(&nt->load_timer, load_again, 1000, 0);
    return rc;
}

/* ---- DLQ depth and age, for the metrics ---- */

static void on_dlq_poll(wd_redis *r, const wd_redis_result *res, void *arg) {
    nt_state *nt = arg;
    (void)r;
    if (res->status != 0 || !res->reply || res->reply->type != REDIS_REPLY_ARRAY)
        return;
    const redisReply *n = wd_redis_reply_at(res->reply, 0), *oldest = wd_redis_reply_at(res->reply, 1);
    if (n && n->type == REDIS_REPLY_INTEGER)
        nt->dlq_depth = (uint64_t)n->integer;
    nt->dlq_oldest_ms = 0;
    if (oldest && oldest->type == REDIS_REPLY_STRING)
        nt->dlq_oldest_ms = strtoull(oldest->str, NULL, 10);
}

void nt_store_poll_dlq(nt_state *nt) {
    static const char LUA[] =
        "local o = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
        "return {redis.call('ZCARD', KEYS[1]), o[2] or false}\n";
    char k[KEY_MAX];
    const char *keys[1] = {nt_key(nt, "dlq", NULL, k, sizeof k)};
    eval(nt, on_dlq_poll, nt, LUA, 1, keys, 0, NULL, NULL);
}

/* Used by nt_cmd.c. */
int nt_store_eval(nt_state *nt, wd_redis_cb cb, void *arg, const char *script, int nkeys,
                  const char *const *keys, int nargs, const char *const *args);
int nt_store_eval(nt_state *nt, wd_redis_cb cb, void *arg, const char *script, int nkeys,
                  const char *const *keys, int nargs, const char *const *args) {
    return eval(nt, cb, arg, script, nkeys, keys, nargs, args, NULL);
}
