/* Redis storage of alerts, pending routes and dead letters. Each change is
 * one Lua script, so a crash between two commands cannot leave an alert
 * half stored or a route half finished.
 *
 * Stores and route completions are batched: those queued during one loop
 * iteration go out as one script each (up to NT_STORE_BATCH_MAX /
 * NT_DONE_BATCH_MAX), flushed by a uv_prepare right before the loop polls
 * again, so no alert waits for a later event. Measured with bench/notifier,
 * one EVAL per alert and per delivered route cost Redis about 25 us of CPU
 * per alert and the notifier a reply to parse, a breaker call and a metric
 * per command; a batch pays those once. A batch script is atomic as a whole,
 * so each alert is still stored (or crossed off) all at once or not at all;
 * an alert is still acked only after the reply of the script that stored it.
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

/* KEYS[1] pending; ARGV: prefix, id_ttl ms, now ms, then per alert: id,
 * msg, n, n channel names. Returns per alert 1 (stored) or 0 (id seen). */
static const char PUT_LUA[] =
    "local p, ttl, now, out, i = ARGV[1], ARGV[2], ARGV[3], {}, 4\n"
    "while i <= #ARGV do\n"
    "  local id, n = ARGV[i], tonumber(ARGV[i + 2])\n"
    "  if redis.call('SET', p .. 'seen:' .. id, '1', 'NX', 'PX', ttl) == false then\n"
    "    out[#out + 1] = 0\n"
    "  else\n"
    "    redis.call('HSET', p .. 'alert:' .. id, 'msg', ARGV[i + 1], 'stored', now)\n"
    "    for c = i + 3, i + 2 + n do redis.call('SADD', p .. 'routes:' .. id, ARGV[c]) end\n"
    "    redis.call('ZADD', KEYS[1], now, id)\n"
    "    out[#out + 1] = 1\n"
    "  end\n"
    "  i = i + 3 + n\n"
    "end\n"
    "return out\n";

/* KEYS[1] pending; ARGV: prefix, then pairs channel, id. */
static const char DONE_LUA[] =
    "local p = ARGV[1]\n"
    "for i = 2, #ARGV, 2 do\n"
    "  local r = p .. 'routes:' .. ARGV[i + 1]\n"
    "  redis.call('SREM', r, ARGV[i])\n"
    "  if redis.call('SCARD', r) == 0 then\n"
    "    redis.call('DEL', p .. 'alert:' .. ARGV[i + 1]); redis.call('ZREM', KEYS[1], ARGV[i + 1])\n"
    "  end\n"
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

/* ---- batches ---- */

static void on_logged(wd_redis *r, const wd_redis_result *res, void *arg) {
    (void)r;
    if (res->status != 0)
        wd_warn("store: %s: %s (the alert stays pending and is delivered again after a restart)",
                (const char *)arg, res->error);
}

static void on_done_written(wd_redis *r, const wd_redis_result *res, void *arg) {
    nt_state *nt = arg;
    on_logged(r, res, (void *)"route done");
    nt->store_writes--;
    nt_redis_close_when_idle(nt);
}

typedef void (*put_cb)(nt_state *, int status, bool dup, void *arg);

#define PUT_FIXED_ARGS 7 /* EVAL script 1 pending prefix ttl now */
#define PUT_ARGS_MAX (PUT_FIXED_ARGS + NT_STORE_BATCH_MAX * (3 + NT_CONF_CHANNELS_MAX))

struct nt_put_batch {
    nt_state *nt;
    uint32_t n;
    struct {
        put_cb cb;
        void *arg;
        char id[PROTO_ALERT_ID_MAX + 1];
        char n_routes[8];
        char *msg; /* copy */
        size_t len;
        uint32_t routes;
    } it[NT_STORE_BATCH_MAX];
};

struct nt_done_batch {
    uint32_t n;
    int ch[NT_DONE_BATCH_MAX];
    char id[NT_DONE_BATCH_MAX][PROTO_ALERT_ID_MAX + 1];
};

static void put_batch_free(nt_put_batch *b) {
    for (uint32_t i = 0; i < b->n; i++)
        free(b->it[i].msg);
    free(b);
}

/* Every callback of b with status (its alerts were not stored), then b is freed. */
static void put_batch_fail(nt_state *nt, nt_put_batch *b, int status) {
    for (uint32_t i = 0; i < b->n; i++)
        b->it[i].cb(nt, status, false, b->it[i].arg);
    put_batch_free(b);
}

static void on_put(wd_redis *r, const wd_redis_result *res, void *arg) {
    nt_put_batch *b = arg;
    const redisReply *rep = res->reply;
    (void)r;
    if (res->status != 0) {
        wd_debug("store: %u alerts: %s", b->n, res->error);
        put_batch_fail(b->nt, b, res->status);
        return;
    }
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != b->n) {
        /* Not what the script returns: whether they were stored is unknown,
         * so none is acked; resends are recognised by id. */
        wd_warn("store: unexpected reply to a batch of %u alerts", b->n);
        put_batch_fail(b->nt, b, WD_EIO);
        return;
    }
    for (uint32_t i = 0; i < b->n; i++) {
        const redisReply *e = rep->element[i];
        bool dup = e->type == REDIS_REPLY_INTEGER && e->integer == 0;
        b->it[i].cb(b->nt, 0, dup, b->it[i].arg);
    }
    put_batch_free(b);
}

static void put_flush(nt_state *nt) {
    nt_put_batch *b = nt->put_batch;
    if (!b)
        return;
    nt->put_batch = NULL;
    if (b->n == 0) {
        free(b);
        return;
    }
    /* One loop thread: the argument vectors can be static (too big for the
     * stack); wd_redis_command_argv copies what they point at. */
    static const char *argv[PUT_ARGS_MAX];
    static size_t argl[PUT_ARGS_MAX];
    char pending[KEY_MAX], now[24], ttl[24];
    int argc = 0;
    if (!nt->redis) {
        put_batch_fail(nt, b, WD_EUNAVAIL);
        return;
    }
    snprintf(now, sizeof now, "%llu", (unsigned long long)(wd_clock_real_ns() / WD_NS_PER_MS));
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)nt->conf.id_ttl_ms);
    argv[argc] = "EVAL", argl[argc++] = 4;
    argv[argc] = PUT_LUA, argl[argc++] = sizeof PUT_LUA - 1;
    argv[argc] = "1", argl[argc++] = 1;
    argv[argc] = nt_key(nt, "pending", NULL, pending, sizeof pending), argl[argc++] = strlen(pending);
    argv[argc] = nt->conf.key_prefix, argl[argc++] = strlen(nt->conf.key_prefix);
    argv[argc] = ttl, argl[argc++] = strlen(ttl);
    argv[argc] = now, argl[argc++] = strlen(now);
    for (uint32_t i = 0; i < b->n; i++) {
        argv[argc] = b->it[i].id, argl[argc++] = strlen(b->it[i].id);
        argv[argc] = b->it[i].msg, argl[argc++] = b->it[i].len;
        argv[argc] = b->it[i].n_routes, argl[argc++] = strlen(b->it[i].n_routes);
        for (int c = 0; c < nt->n_channels; c++)
            if (b->it[i].routes & (1u << c))
                argv[argc] = nt->ch[c].name, argl[argc++] = strlen(nt->ch[c].name);
    }
    int rc = wd_redis_command_argv(nt->redis, on_put, b, argc, argv, argl);
    if (rc != 0)
        put_batch_fail(nt, b, rc);
}

static void done_flush(nt_state *nt) {
    nt_done_batch *b = nt->done_batch;
    if (!b)
        return;
    nt->done_batch = NULL;
    static const char *argv[5 + 2 * NT_DONE_BATCH_MAX];
    static size_t argl[5 + 2 * NT_DONE_BATCH_MAX];
    char pending[KEY_MAX];
    int argc = 0, rc = WD_EUNAVAIL;
    argv[argc] = "EVAL", argl[argc++] = 4;
    argv[argc] = DONE_LUA, argl[argc++] = sizeof DONE_LUA - 1;
    argv[argc] = "1", argl[argc++] = 1;
    argv[argc] = nt_key(nt, "pending", NULL, pending, sizeof pending), argl[argc++] = strlen(pending);
    argv[argc] = nt->conf.key_prefix, argl[argc++] = strlen(nt->conf.key_prefix);
    for (uint32_t i = 0; i < b->n; i++) {
        argv[argc] = nt->ch[b->ch[i]].name, argl[argc++] = strlen(nt->ch[b->ch[i]].name);
        argv[argc] = b->id[i], argl[argc++] = strlen(b->id[i]);
    }
    if (b->n > 0 && nt->redis &&
        (rc = wd_redis_command_argv(nt->redis, on_done_written, nt, argc, argv, argl)) == 0)
        nt->store_writes++;
    if (rc != 0 && b->n > 0)
        wd_warn("store: route done for %u alerts: %s (they stay pending and are delivered "
                "again after a restart)", b->n, wd_strerror(rc));
    free(b);
}

static void on_flush(uv_prepare_t *h) {
    nt_state *nt = h->data;
    put_flush(nt);
    done_flush(nt);
}

int nt_store_start(nt_state *nt) {
    if (uv_prepare_init(nt->loop, &nt->store_flush) != 0)
        return WD_ESYS;
    nt->store_flush.data = nt;
    uv_prepare_start(&nt->store_flush, on_flush);
    /* Runs every iteration while the loop runs, but never keeps it alive. */
    uv_unref((uv_handle_t *)&nt->store_flush);
    return 0;
}

static bool store_open(const nt_state *nt) {
    return nt->redis && nt->store_flush.data && !uv_is_closing((const uv_handle_t *)&nt->store_flush);
}

void nt_store_stop(nt_state *nt) {
    /* Route completions still go out (the client sends what it was given
     * before it closes); stores are not acked any more: their producers
     * send them again. */
    done_flush(nt);
    if (nt->put_batch) {
        nt_put_batch *b = nt->put_batch;
        nt->put_batch = NULL;
        put_batch_fail(nt, b, WD_ECLOSED);
    }
    if (nt->store_flush.data && !uv_is_closing((uv_handle_t *)&nt->store_flush))
        uv_close((uv_handle_t *)&nt->store_flush, NULL);
}

int nt_store_put(nt_state *nt, const char *id, const void *msg, size_t len, uint32_t routes,
                 void (*cb)(nt_state *, int status, bool dup, void *arg), void *arg) {
    if (!store_open(nt))
        return WD_EUNAVAIL;
    size_t idl = strlen(id);
    if (idl > PROTO_ALERT_ID_MAX)
        return WD_EINVAL;
    if (!nt->put_batch && !(nt->put_batch = calloc(1, sizeof *nt->put_batch)))
        return WD_ENOMEM;
    nt_put_batch *b = nt->put_batch;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return WD_ENOMEM;
    memcpy(copy, msg, len);
    int nr = 0;
    for (int c = 0; c < nt->n_channels; c++)
        nr += (routes >> c) & 1u;
    b->nt = nt;
    b->it[b->n].cb = cb;
    b->it[b->n].arg = arg;
    memcpy(b->it[b->n].id, id, idl + 1);
    snprintf(b->it[b->n].n_routes, sizeof b->it[b->n].n_routes, "%d", nr);
    b->it[b->n].msg = copy;
    b->it[b->n].len = len;
    b->it[b->n].routes = routes;
    if (++b->n == NT_STORE_BATCH_MAX)
        put_flush(nt); /* full: it goes now, the next alert starts another */
    return 0;
}

int nt_store_route_done(nt_state *nt, const nt_alert *al, int ch_idx) {
    if (!store_open(nt))
        return WD_EUNAVAIL;
    if (!nt->done_batch && !(nt->done_batch = calloc(1, sizeof *nt->done_batch)))
        return WD_ENOMEM;
    nt_done_batch *b = nt->done_batch;
    b->ch[b->n] = ch_idx;
    memcpy(b->id[b->n], al->id, strlen(al->id) + 1);
    if (++b->n == NT_DONE_BATCH_MAX)
        done_flush(nt);
    return 0;
}

/* ---- dead letters ---- */

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
