/* Redis client: commands. Submission (format, breaker, queue or send),
 * replies, timeouts, and the breaker/metrics bookkeeping of each result.
 * See redis.h for the rules. */
#include "redis_int.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "wd_error.h"

/* Commands that would turn the command connection into a subscriber (or a
 * monitor) and break the one-reply-per-command order. */
static const char *const rds_forbidden[] = {"SUBSCRIBE",  "PSUBSCRIBE", "UNSUBSCRIBE",
                                            "PUNSUBSCRIBE", "MONITOR",  NULL};

/* ---- lists ---- */

void rds_list_push(wd_redis_list *l, wd_redis_req *q) {
    q->next = NULL;
    q->prev = l->tail;
    if (l->tail)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
    l->n++;
}

void rds_list_remove(wd_redis_list *l, wd_redis_req *q) {
    if (q->prev)
        q->prev->next = q->next;
    else
        l->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        l->tail = q->prev;
    q->next = q->prev = NULL;
    l->n--;
}

static wd_redis_req *list_pop(wd_redis_list *l) {
    wd_redis_req *q = l->head;
    if (q)
        rds_list_remove(l, q);
    return q;
}

/* ---- results ---- */

void rds_count_error(wd_redis *r, wd_errclass cls) {
    if (r->have_metrics && (int)cls >= 0 && (int)cls < 3)
        wd_counter_add(r->s_errors[cls], 1);
}

/* A command formatted by redisvFormatCommand (malloc) or, on the argv
 * path, by redisFormatSdsCommandArgv (an sds string). */
static void cmd_free(char *cmd, bool is_sds) {
    if (is_sds)
        redisFreeSdsCommand(cmd);
    else
        redisFreeCommand(cmd);
}

/* A finished request goes back to the client's spares (up to
 * WD_REDIS_REQ_CACHE), so a steady stream of commands allocates none. */
static void req_free(wd_redis_req *q) {
    wd_redis *r = q->r;
    if (q->cmd)
        cmd_free(q->cmd, q->cmd_sds);
    r->nreqs--;
    if (r->nspare < WD_REDIS_REQ_CACHE && !r->close_started) {
        q->next = r->spare;
        r->spare = q;
        r->nspare++;
        return;
    }
    free(q);
}

static wd_redis_req *req_new(wd_redis *r) {
    wd_redis_req *q = r->spare;
    if (!q)
        return calloc(1, sizeof *q);
    r->spare = q->next;
    r->nspare--;
    memset(q, 0, offsetof(wd_redis_req, error)); /* error[] is written before it is read */
    q->error[0] = '\0';
    return q;
}

void rds_free_spares(wd_redis *r) {
    while (r->spare) {
        wd_redis_req *q = r->spare;
        r->spare = q->next;
        free(q);
    }
    r->nspare = 0;
}

static wd_errclass class_of(int status) {
    switch (status) {
    case WD_EPERMANENT:
    case WD_ECLOSED:
        return WD_ERRCLASS_PERMANENT;
    case WD_ECRITICAL:
        return WD_ERRCLASS_CRITICAL;
    default:
        return WD_ERRCLASS_TRANSIENT;
    }
}

/* Records how q ended (breaker, stats, metrics) and runs its callback.
 * keep: hiredis still holds q (a timeout), so it is not freed here. */
static void finish(wd_redis_req *q, int status, const redisReply *reply, const char *text,
                   bool keep) {
    wd_redis *r = q->r;
    uint64_t now = wd_clock_mono_ns();
    uint64_t dur = now > q->start_ns ? now - q->start_ns : 0;
    wd_errclass cls = class_of(status);
    if (q->admitted) {
        if (status == WD_ECLOSED)
            brk_release(&r->brk, q->gen);
        else /* an error reply the server chose to send is no fault of the server */
            brk_record_call(&r->brk, q->gen, now, dur, status == 0 || status == WD_EPERMANENT,
                            status == 0 ? NULL : text);
    }
    if (status == 0) {
        r->stats.ok++;
    } else {
        r->stats.failed++;
        if (status != WD_EOPEN && status != WD_ECLOSED)
            rds_count_error(r, cls);
    }
    if (r->have_metrics && (reply || status == WD_ETIMEDOUT || status == WD_EIO))
        wd_hist_observe(r->s_duration, (double)dur / 1e9);
    wd_redis_result res = {.status = status,
                           .errclass = cls,
                           .reply = reply,
                           .error = text ? text : "",
                           .latency_ns = dur};
    q->cb(r, &res, q->arg);
    if (!keep)
        req_free(q);
}

/* q failed before any I/O: its callback runs from the idle handle, never
 * inside wd_redis_command. */
static void fail_early(wd_redis *r, wd_redis_req *q, int status, const char *fmt, const char *a) {
    if (q->cmd) {
        cmd_free(q->cmd, q->cmd_sds);
        q->cmd = NULL;
    }
    q->status = status;
    snprintf(q->error, sizeof q->error, fmt, a);
    rds_list_push(&r->done, q);
    rds_kick(r);
}

void rds_deliver_done(wd_redis *r, bool all) {
    uint32_t n = all ? UINT32_MAX : r->done.n;
    wd_redis_req *q;
    while (n-- > 0 && (q = list_pop(&r->done)) != NULL) {
        if (all) {
            q->status = WD_ECLOSED;
            snprintf(q->error, sizeof q->error, "client closed");
        }
        finish(q, q->status, NULL, q->error, false);
    }
}

void rds_fail_pending(wd_redis_conn *c, int status, const char *why) {
    char text[WD_REDIS_ERRTEXT_MAX + 1];
    wd_redis_req *q;
    /* why may be the connection's own buffer, which a callback can change. */
    snprintf(text, sizeof text, "%s", why);
    while ((q = list_pop(&c->pending)) != NULL)
        finish(q, status, NULL, text, false);
    rds_arm_timeout(c);
}

/* ---- timeouts: one timer per connection, at the earliest deadline ---- */

void rds_arm_timeout(wd_redis_conn *c) {
    uint64_t due = 0;
    if (c->pending.head)
        due = c->pending.head->deadline_ns;
    for (wd_redis_req *q = c->inflight.head; q; q = q->next) {
        if (q->finished)
            continue;
        if (!due || q->deadline_ns < due)
            due = q->deadline_ns;
        break; /* sent in submission order: the first has the earliest deadline */
    }
    if (!due) {
        uv_timer_stop(&c->timeout_timer);
        c->timeout_due_ns = 0;
        return;
    }
    uint64_t now = wd_clock_mono_ns();
    uint64_t ms = due > now ? (due - now + WD_NS_PER_MS - 1) / WD_NS_PER_MS : 0;
    uv_timer_start(&c->timeout_timer, rds_timeout_cb, ms, 0);
    c->timeout_due_ns = due;
}

void rds_timeout_cb(uv_timer_t *t) {
    wd_redis_conn *c = t->data;
    wd_redis *r = c->r;
    uint64_t now = wd_clock_mono_ns();
    char text[WD_REDIS_ERRTEXT_MAX + 1];
    wd_redis_req *q;
    snprintf(text, sizeof text, "no connection within %llu ms",
             (unsigned long long)r->command_timeout_ms);
    while (c->pending.head && c->pending.head->deadline_ns <= now) {
        q = list_pop(&c->pending);
        r->stats.timeouts++;
        finish(q, WD_ETIMEDOUT, NULL, text, false);
    }
    /* A late reply is still coming and hiredis cannot drop its callback:
     * fail the late commands now, and drop the connection below so the next
     * reply read is not taken for the answer to a later command. */
    snprintf(text, sizeof text, "no reply within %llu ms",
             (unsigned long long)r->command_timeout_ms);
    bool expired = false;
    for (q = c->inflight.head; q && q->deadline_ns <= now; q = q->next) {
        if (q->finished)
            continue;
        q->finished = true;
        expired = true;
        r->stats.timeouts++;
        finish(q, WD_ETIMEDOUT, NULL, text, true);
    }
    if (expired && c->ac) {
        snprintf(text, sizeof text, "connection dropped: a command timed out after %llu ms",
                 (unsigned long long)r->command_timeout_ms);
        rds_conn_drop(c, text);
    }
    rds_arm_timeout(c);
}

/* ---- sending ---- */

static void on_reply(redisAsyncContext *ac, void *reply_, void *privdata) {
    wd_redis_req *q = privdata;
    wd_redis *r = q->r;
    wd_redis_conn *c = &r->cmd;
    const redisReply *reply = reply_;
    rds_list_remove(&c->inflight, q);
    if (q->finished) {
        req_free(q);
        return;
    }
    if (!reply) {
        /* The context is being freed: by conn_drop (its reason is in
         * last_error), or by hiredis after an I/O error (ac->errstr). */
        char why[WD_REDIS_ERRTEXT_MAX + 1];
        if (r->closing) {
            snprintf(why, sizeof why, "client closed");
            rds_conn_lost(c, why);
            finish(q, WD_ECLOSED, NULL, why, false);
            return;
        }
        if (c->dropping)
            snprintf(why, sizeof why, "%s", c->last_error);
        else
            snprintf(why, sizeof why, "connection lost: %s",
                     ac->errstr && ac->errstr[0] ? ac->errstr : "closed");
        rds_conn_lost(c, why);
        finish(q, WD_EIO, NULL, why, false);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        wd_errclass cls = wd_classify_redis_reply(reply->str);
        int st = cls == WD_ERRCLASS_TRANSIENT  ? WD_ETRANSIENT
                 : cls == WD_ERRCLASS_CRITICAL ? WD_ECRITICAL
                                               : WD_EPERMANENT;
        finish(q, st, reply, reply->str ? reply->str : "error", false);
        return;
    }
    finish(q, 0, reply, "", false);
}

static void send_req(wd_redis_conn *c, wd_redis_req *q) {
    wd_redis *r = c->r;
    if (!c->ac ||
        redisAsyncFormattedCommand(c->ac, on_reply, q, q->cmd, q->cmdlen) != REDIS_OK) {
        fail_early(r, q, WD_EUNAVAIL, "not connected: %s", "the connection is closing");
        return;
    }
    cmd_free(q->cmd, q->cmd_sds);
    q->cmd = NULL;
    rds_list_push(&c->inflight, q);
    r->stats.sent++;
    if (!uv_is_active((uv_handle_t *)&c->timeout_timer))
        rds_arm_timeout(c);
}

void rds_send_pending(wd_redis_conn *c) {
    wd_redis_req *q;
    while (c->state == WD_REDIS_READY && (q = list_pop(&c->pending)) != NULL)
        send_req(c, q);
}

/* The command's name from its RESP form ("*N\r\n$L\r\nNAME\r\n..."),
 * upper-cased; "other" when it is not a plain word that fits. */
static void cmd_name(const char *cmd, size_t len, char *out) {
    const char *end = cmd + len, *p = memchr(cmd, '\n', len);
    size_t n = 0;
    memcpy(out, "other", sizeof "other");
    if (!p || ++p >= end || *p++ != '$')
        return;
    while (p < end && *p >= '0' && *p <= '9' && n <= WD_REDIS_CMDNAME_MAX)
        n = n * 10 + (size_t)(*p++ - '0');
    if (n == 0 || n > WD_REDIS_CMDNAME_MAX || end - p < 2 || (size_t)(end - p - 2) < n)
        return;
    p += 2;
    for (size_t i = 0; i < n; i++)
        if (!isalpha((unsigned char)p[i]) && p[i] != '_' && p[i] != '-')
            return;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)toupper((unsigned char)p[i]);
    out[n] = '\0';
}

static wd_series *cmd_series(wd_redis *r, const char *name) {
    for (uint32_t i = 0; i < WD_REDIS_CMDCACHE; i++)
        if (r->cmdcache[i].s && strcmp(r->cmdcache[i].name, name) == 0)
            return r->cmdcache[i].s;
    const char *v[] = {r->name, name, NULL};
    wd_series *s = wd_metric_series(r->m.commands, v);
    if (!s) { /* the metric's series bound is reached */
        v[1] = "other";
        s = wd_metric_series(r->m.commands, v);
        if (!s)
            return NULL;
    }
    uint32_t slot = r->cmdcache_next++ % WD_REDIS_CMDCACHE;
    snprintf(r->cmdcache[slot].name, sizeof r->cmdcache[slot].name, "%s", name);
    r->cmdcache[slot].s = s;
    return s;
}

/* Takes cmd (formatted by hiredis) in every case. */
static int submit(wd_redis *r, wd_redis_cb cb, void *arg, char *cmd, size_t len, bool is_sds) {
    char name[WD_REDIS_CMDNAME_MAX + 1];
    cmd_name(cmd, len, name);
    for (int i = 0; rds_forbidden[i]; i++) {
        if (strcmp(name, rds_forbidden[i]) == 0) {
            cmd_free(cmd, is_sds);
            return WD_EINVAL;
        }
    }
    if (r->nreqs >= r->max_pending) {
        cmd_free(cmd, is_sds);
        return WD_EBUSY;
    }
    wd_redis_req *q = req_new(r);
    if (!q) {
        cmd_free(cmd, is_sds);
        return WD_ENOMEM;
    }
    uint64_t now = wd_clock_mono_ns();
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    q->cmd = cmd;
    q->cmd_sds = is_sds;
    q->cmdlen = len;
    q->start_ns = now;
    q->deadline_ns = now + r->command_timeout_ms * WD_NS_PER_MS;
    r->nreqs++;
    r->stats.submitted++;
    if (r->have_metrics)
        wd_counter_add(cmd_series(r, name), 1);
    if (brk_allow(&r->brk, now, &q->gen) != 0) {
        char in[32];
        snprintf(in, sizeof in, "%llu",
                 (unsigned long long)(brk_retry_in(&r->brk, now) / WD_NS_PER_MS));
        r->stats.rejected++;
        if (r->have_metrics)
            wd_counter_add(r->s_rejected, 1);
        fail_early(r, q, WD_EOPEN, "circuit breaker open (retry in %s ms)", in);
        return 0;
    }
    q->admitted = true;
    wd_redis_conn *c = &r->cmd;
    switch (c->state) {
    case WD_REDIS_READY:
        send_req(c, q);
        break;
    case WD_REDIS_CONNECTING:
        rds_list_push(&c->pending, q);
        if (!uv_is_active((uv_handle_t *)&c->timeout_timer))
            rds_arm_timeout(c);
        break;
    default:
        fail_early(r, q, WD_EUNAVAIL, "not connected: %.170s", c->last_error);
        break;
    }
    return 0;
}

int wd_redis_vcommand(wd_redis *r, wd_redis_cb cb, void *arg, const char *fmt, va_list ap) {
    if (!r || !cb || !fmt)
        return WD_EINVAL;
    if (r->closing)
        return WD_ECLOSED;
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    if (len == -2)
        return WD_ENOMEM;
    if (len <= 0 || !cmd) {
        free(cmd);
        return WD_EINVAL;
    }
    return submit(r, cb, arg, cmd, (size_t)len, false);
}

int wd_redis_command(wd_redis *r, wd_redis_cb cb, void *arg, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = wd_redis_vcommand(r, cb, arg, fmt, ap);
    va_end(ap);
    return rc;
}

int wd_redis_command_argv(wd_redis *r, wd_redis_cb cb, void *arg, int argc, const char *const *argv,
                          const size_t *argvlen) {
    if (!r || !cb || argc <= 0 || !argv)
        return WD_EINVAL;
    for (int i = 0; i < argc; i++)
        if (!argv[i])
            return WD_EINVAL;
    if (r->closing)
        return WD_ECLOSED;
    /* The sds variant writes the lengths with hiredis' own formatter, not
     * sprintf, which was most of the cost of submitting a short command.
     * hiredis 0.14 passes it each length as "%u" (32 bits), so an argument
     * of 4 GiB or more takes the sprintf path, which is right at any size. */
    bool small = true;
    for (int i = 0; i < argc && small; i++)
        small = (argvlen ? argvlen[i] : strlen(argv[i])) <= UINT32_MAX;
    char *cmd = NULL;
    int len = small ? redisFormatSdsCommandArgv((sds *)&cmd, argc, (const char **)argv, argvlen)
                    : redisFormatCommandArgv(&cmd, argc, (const char **)argv, argvlen);
    if (len < 0 || !cmd)
        return WD_ENOMEM;
    return submit(r, cb, arg, cmd, (size_t)len, small);
}
