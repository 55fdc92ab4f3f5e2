/* `wardenctl call notifier dlq ACTION [id=ID]`: the dead letter queue.
 *   dlq list [limit=N]     oldest first: id, channels, error, attempts, at
 *   dlq show id=ID         one dead letter with its alert
 *   dlq replay id=ID       back to pending for the channels that gave up
 *   dlq replay-all         every dead letter (up to DLQ_REPLAY_MAX per call)
 *   dlq purge id=ID        deleted for good
 * The action may also be written dlq-ACTION or given as action=ACTION, and
 * the id as a third word ("dlq show ID"). Replies are deferred: they wait
 * for Redis. */
#include "nt.h"
#include "clock.h"
#include "log.h"
#include "redis.h"
#include "wd_error.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLQ_LIST_DEFAULT 100
#define DLQ_LIST_MAX 1000
#define DLQ_REPLAY_MAX 10000

int nt_store_eval(nt_state *nt, wd_redis_cb cb, void *arg, const char *script, int nkeys,
                  const char *const *keys, int nargs, const char *const *args);

/* {{id, at, error, attempts, {channels}, msg}, ...} */
static const char LIST_LUA[] =
    "local out = {}\n"
    "local ids = ARGV[2] ~= '' and {ARGV[2]} or redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)\n"
    "for _, id in ipairs(ids) do\n"
    "  local h = redis.call('HMGET', ARGV[1] .. 'dead:' .. id, 'at', 'error', 'attempts', 'msg')\n"
    "  if h[1] then\n"
    "    out[#out + 1] = {id, h[1], h[2] or '', h[3] or '0', redis.call('SMEMBERS', ARGV[1] .. 'deadch:' .. id), h[4] or ''}\n"
    "  end\n"
    "end\n"
    "return out\n";

/* Moves dead letters back to pending; returns {{id, msg, {channels}}, ...}. */
static const char REPLAY_LUA[] =
    "local out = {}\n"
    "local ids = ARGV[2] ~= '' and {ARGV[2]} or redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)\n"
    "for _, id in ipairs(ids) do\n"
    "  local dk, ck = ARGV[1] .. 'dead:' .. id, ARGV[1] .. 'deadch:' .. id\n"
    "  local msg = redis.call('HGET', dk, 'msg')\n"
    "  if msg then\n"
    "    local chs = redis.call('SMEMBERS', ck)\n"
    "    redis.call('HSET', ARGV[1] .. 'alert:' .. id, 'msg', msg, 'stored', ARGV[3])\n"
    "    for _, c in ipairs(chs) do redis.call('SADD', ARGV[1] .. 'routes:' .. id, c) end\n"
    "    redis.call('ZADD', ARGV[1] .. 'pending', ARGV[3], id)\n"
    "    redis.call('DEL', dk, ck)\n"
    "    redis.call('ZREM', KEYS[1], id)\n"
    "    out[#out + 1] = {id, msg, chs}\n"
    "  end\n"
    "end\n"
    "return out\n";

static const char PURGE_LUA[] =
    "local n = redis.call('DEL', ARGV[1] .. 'dead:' .. ARGV[2], ARGV[1] .. 'deadch:' .. ARGV[2])\n"
    "redis.call('ZREM', KEYS[1], ARGV[2])\n"
    "return n\n";

typedef enum { A_LIST, A_SHOW, A_REPLAY, A_REPLAY_ALL, A_PURGE } dlq_action;

typedef struct {
    nt_state *nt;
    wrk_pending *p;
    dlq_action act;
    char id[PROTO_ALERT_ID_MAX + 1];
} cmd_op;

static json_t *str_json(const redisReply *r) {
    return r && r->type == REDIS_REPLY_STRING ? json_stringn(r->str, r->len) : json_string("");
}

static json_t *alert_json(const redisReply *msg) {
    proto_alert a;
    char err[256];
    if (!msg || msg->type != REDIS_REPLY_STRING ||
        proto_alert_unpack(msg->str, msg->len, NULL, &a, err, sizeof err) != 0)
        return json_null();
    json_t *labels = json_object();
    for (uint32_t i = 0; i < a.n_labels; i++)
        json_object_set_new(labels, a.labels[i].key, json_string(a.labels[i].val));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:s}", "id", a.id, "source", a.source,
                     "severity", proto_alert_severity_name(a.severity), "title", a.title, "text",
                     a.text, "labels", labels, "time_ms", (json_int_t)(a.time_ns / WD_NS_PER_MS),
                     "dedup_key", a.dedup_key);
}

static void on_list(wd_redis *r, const wd_redis_result *res, void *arg) {
    cmd_op *op = arg;
    (void)r;
    if (res->status != 0 || !res->reply || res->reply->type != REDIS_REPLY_ARRAY) {
        wrk_command_finish(op->p, res->status ? res->status : WD_EIO, NULL,
                           res->status ? res->error : "unexpected reply");
        free(op);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < res->reply->elements; i++) {
        const redisReply *e = res->reply->element[i];
        json_t *chs = json_array();
        const redisReply *cs = wd_redis_reply_at(e, 4);
        for (size_t c = 0; cs && cs->type == REDIS_REPLY_ARRAY && c < cs->elements; c++)
            json_array_append_new(chs, str_json(cs->element[c]));
        const redisReply *at = wd_redis_reply_at(e, 1), *att = wd_redis_reply_at(e, 3);
        json_t *it = json_pack("{s:o, s:o, s:o, s:I, s:I}", "id", str_json(wd_redis_reply_at(e, 0)),
                               "channels", chs, "error", str_json(wd_redis_reply_at(e, 2)),
                               "attempts",
                               (json_int_t)(att && att->type == REDIS_REPLY_STRING ? strtoll(att->str, NULL, 10) : 0),
                               "at_ms",
                               (json_int_t)(at && at->type == REDIS_REPLY_STRING ? strtoll(at->str, NULL, 10) : 0));
        if (op->act == A_SHOW)
            json_object_set_new(it, "alert", alert_json(wd_redis_reply_at(e, 5)));
        json_array_append_new(items, it);
    }
    if (op->act == A_SHOW) {
        if (json_array_size(items) == 0) {
            json_decref(items);
            wrk_command_finish(op->p, WD_ENOTFOUND, NULL, "no such dead letter");
        } else {
            json_t *one = json_incref(json_array_get(items, 0));
            json_decref(items);
            wrk_command_finish(op->p, 0, one, NULL);
        }
    } else {
        wrk_command_finish(op->p, 0,
                           json_pack("{s:I, s:o}", "count", (json_int_t)json_array_size(items),
                                     "dead_letters", items),
                           NULL);
    }
    free(op);
}

static void on_replay(wd_redis *r, const wd_redis_result *res, void *arg) {
    cmd_op *op = arg;
    nt_state *nt = op->nt;
    (void)r;
    if (res->status != 0 || !res->reply || res->reply->type != REDIS_REPLY_ARRAY) {
        wrk_command_finish(op->p, res->status ? res->status : WD_EIO, NULL,
                           res->status ? res->error : "unexpected reply");
        free(op);
        return;
    }
    if (op->act == A_REPLAY && res->reply->elements == 0) {
        wrk_command_finish(op->p, WD_ENOTFOUND, NULL, "no such dead letter");
        free(op);
        return;
    }
    json_t *ids = json_array();
    for (size_t i = 0; i < res->reply->elements; i++) {
        const redisReply *e = res->reply->element[i];
        const redisReply *msg = wd_redis_reply_at(e, 1), *chs = wd_redis_reply_at(e, 2);
        proto_alert a;
        char err[256];
        if (!msg || msg->type != REDIS_REPLY_STRING || !chs ||
            proto_alert_unpack(msg->str, msg->len, NULL, &a, err, sizeof err) != 0)
            continue;
        uint32_t routes = 0;
        for (size_t c = 0; c < chs->elements; c++)
            for (int k = 0; k < nt->n_channels; k++)
                if (chs->element[c]->type == REDIS_REPLY_STRING &&
                    strlen(nt->ch[k].name) == chs->element[c]->len &&
                    memcmp(nt->ch[k].name, chs->element[c]->str, chs->element[c]->len) == 0)
                    routes |= 1u << k;
        json_array_append_new(ids, json_string(a.id));
        nt_alert *al = nt_pending_find(nt, a.id);
        if (al) { /* still pending for another route: add these */
            uint32_t add = routes & ~al->routes;
            al->routes |= add;
            uint32_t keep = al->routes;
            al->routes = add;
            nt_deliver_alert(nt, al);
            al->routes = keep;
            continue;
        }
        al = nt_alert_new(&a, routes);
        if (al && nt_pending_add(nt, al) == 0)
            nt_deliver_alert(nt, al);
        else
            free(al);
    }
    wd_info("dlq: %zu dead letters replayed", json_array_size(ids));
    wrk_command_finish(op->p, 0,
                       json_pack("{s:I, s:o}", "replayed", (json_int_t)json_array_size(ids), "ids",
                                 ids),
                       NULL);
    free(op);
}

static void on_purge(wd_redis *r, const wd_redis_result *res, void *arg) {
    cmd_op *op = arg;
    (void)r;
    if (res->status != 0)
        wrk_command_finish(op->p, res->status, NULL, res->error);
    else if (!res->reply || res->reply->type != REDIS_REPLY_INTEGER || res->reply->integer == 0)
        wrk_command_finish(op->p, WD_ENOTFOUND, NULL, "no such dead letter");
    else
        wrk_command_finish(op->p, 0, json_pack("{s:s}", "purged", op->id), NULL);
    free(op);
}

static int parse_action(const char *cmd, const proto_ctl_request *req, dlq_action *act,
                        char *id, size_t idlen) {
    char word[2][32] = {"", ""};
    const char *p = cmd + 3; /* past "dlq" */
    if (*p == '-' || *p == ' ')
        p++;
    size_t n = strcspn(p, " ");
    snprintf(word[0], sizeof word[0], "%.*s", (int)(n < 31 ? n : 31), p);
    p += n;
    while (*p == ' ')
        p++;
    snprintf(word[1], sizeof word[1], "%s", p);
    const char *a = proto_ctl_request_arg(req, "action");
    const char *w = word[0][0] ? word[0] : a ? a : "list";
    if (strcmp(w, "list") == 0)
        *act = A_LIST;
    else if (strcmp(w, "show") == 0)
        *act = A_SHOW;
    else if (strcmp(w, "replay") == 0)
        *act = A_REPLAY;
    else if (strcmp(w, "replay-all") == 0 || strcmp(w, "replay_all") == 0)
        *act = A_REPLAY_ALL;
    else if (strcmp(w, "purge") == 0)
        *act = A_PURGE;
    else
        return WD_EINVAL;
    const char *v = proto_ctl_request_arg(req, "id");
    snprintf(id, idlen, "%s", v ? v : word[1]);
    return 0;
}

int nt_command(nt_state *nt, const proto_ctl_request *req, json_t **data, char *err,
               size_t errlen) {
    (void)data;
    if (strncmp(req->cmd, "dlq", 3) != 0 || (req->cmd[3] && req->cmd[3] != ' ' && req->cmd[3] != '-')) {
        snprintf(err, errlen, "unknown command '%s' (dlq list|show|replay|replay-all|purge)",
                 req->cmd);
        return WD_ENOTFOUND;
    }
    cmd_op *op = calloc(1, sizeof *op);
    if (!op)
        return WD_ENOMEM;
    op->nt = nt;
    if (parse_action(req->cmd, req, &op->act, op->id, sizeof op->id) != 0) {
        free(op);
        snprintf(err, errlen, "dlq: action must be list, show, replay, replay-all or purge");
        return WD_EINVAL;
    }
    bool need_id = op->act == A_SHOW || op->act == A_REPLAY || op->act == A_PURGE;
    if (need_id && !proto_alert_id_ok(op->id, strlen(op->id))) {
        free(op);
        snprintf(err, errlen, "dlq: id=ID required (an alert id)");
        return WD_EINVAL;
    }
    if (!need_id)
        op->id[0] = '\0';
    long limit = DLQ_LIST_DEFAULT;
    const char *l = proto_ctl_request_arg(req, "limit");
    if (l) {
        char *end;
        limit = strtol(l, &end, 10);
        if (*end || limit < 1 || limit > DLQ_LIST_MAX) {
            free(op);
            snprintf(err, errlen, "dlq: limit must be 1..%d", DLQ_LIST_MAX);
            return WD_EINVAL;
        }
    }
    char key[256], num[24], now[24];
    const char *keys[1] = {nt_key(nt, "dlq", NULL, key, sizeof key)};
    int rc;
    op->p = wrk_command_defer(nt->ctx);
    if (!op->p) {
        free(op);
        return WD_ESTATE;
    }
    if (op->act == A_LIST || op->act == A_SHOW) {
        snprintf(num, sizeof num, "%ld", limit);
        const char *args[3] = {nt->conf.key_prefix, op->id, num};
        rc = nt_store_eval(nt, on_list, op, LIST_LUA, 1, keys, 3, args);
    } else if (op->act == A_PURGE) {
        const char *args[2] = {nt->conf.key_prefix, op->id};
        rc = nt_store_eval(nt, on_purge, op, PURGE_LUA, 1, keys, 2, args);
    } else {
        snprintf(now, sizeof now, "%llu", (unsigned long long)(wd_clock_real_ns() / WD_NS_PER_MS));
        snprintf(num, sizeof num, "%d", DLQ_REPLAY_MAX);
        const char *args[4] = {nt->conf.key_prefix, op->id, now, num};
        rc = nt_store_eval(nt, on_replay, op, REPLAY_LUA, 1, keys, 4, args);
    }
    if (rc != 0) {
        wrk_command_finish(op->p, rc, NULL, "Redis unavailable");
        free(op);
    }
    return 0;
}
