/* Redis client: hiredis 0.14 async on its libuv adapter, with the project's
 * resilience pieces in front of it.
 *
 *  - Connect: a non-numeric host is resolved with uv_getaddrinfo (never a
 *    blocking lookup on the loop); hiredis then connects without blocking.
 *    A connection counts as up only after a handshake is answered: AUTH
 *    (when a password is set), SELECT (when db != 0) and PING. The whole of
 *    it is bounded by connect_timeout_ms, so a peer that accepts and never
 *    answers is a connect timeout, not a stuck client.
 *  - Reconnect: after a failed attempt or a lost connection, the next
 *    attempt waits min(reconnect_max, reconnect_initial * multiplier^n)
 *    with +-reconnect_jitter; n goes back to 0 once a connection is up.
 *  - Health: every ping_interval_ms a PING; no answer within
 *    command_timeout_ms drops the connection (and reconnects).
 *  - Commands: any number in flight on one connection (pipelining), each
 *    with command_timeout_ms from submission. Commands submitted while the
 *    connection is being made wait for it (within their timeout); while the
 *    client is waiting to reconnect they fail at once with WD_EUNAVAIL.
 *    Nothing is written inside wd_redis_command: the commands queued in
 *    one loop iteration leave together in one write, at the end of the
 *    read whose callbacks queued them, or else from the client's idle
 *    handle (on the loop's next idle phase, which comes before it waits
 *    for I/O again): a caller that pipelines pays one system call per
 *    batch, not per command.
 *  - Timeouts: hiredis 0.14 cannot cancel one async command, and a reply
 *    that is late is still coming: the only way to stay in step with the
 *    server is to drop the connection. So a command that times out gets
 *    WD_ETIMEDOUT, the connection is dropped and reconnected, and every
 *    other command in flight on it gets WD_EIO ("connection dropped: a
 *    command timed out"), transient. Blocking commands (BLPOP, XREAD BLOCK)
 *    must therefore block for less than command_timeout_ms.
 *  - Breaker (common/breaker.h): every command asks it first. While it is
 *    open the callback gets WD_EOPEN without any I/O (delivered on the next
 *    loop iteration, never inside wd_redis_command). IO errors, timeouts,
 *    "not connected" and transient error replies (LOADING, BUSY, TRYAGAIN,
 *    MASTERDOWN, READONLY) are breaker failures. A command error reply such
 *    as WRONGTYPE is a permanent error for that call only: the server
 *    answered, so for the breaker it is a success.
 *  - Pub/sub on a second connection of its own, opened on the first
 *    subscription; subscriptions are kept and sent again after every
 *    reconnect (messages published while it was down are lost, as pub/sub
 *    is). Its health check is a SUBSCRIBE of a private channel, whose
 *    confirmation comes back through the subscribe machinery (hiredis 0.14
 *    does not hand a PING reply in subscribed mode to its callback).
 *  - Metrics (when a registry is given), label client=name:
 *      warden_redis_commands_total{client,command}   counter
 *      warden_redis_errors_total{client,class}       counter (transient, permanent, critical)
 *      warden_redis_rejected_total{client}           counter (breaker open)
 *      warden_redis_reconnects_total{client}         counter (attempts after the first)
 *      warden_redis_command_duration_seconds{client} histogram (completed commands)
 *      warden_redis_connection_state{client,state}   gauge, 1 for the current state
 *      warden_redis_messages_total{client}           counter (pub/sub messages delivered)
 *  - Secrets: the password (given alone or inside the URL) is kept only to
 *    send AUTH; it never appears in a log line, an error text, a metric or
 *    the stats.
 *
 * Threading: one loop; every function is called on the loop's thread. */
#ifndef WD_REDIS_H
#define WD_REDIS_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "breaker.h"
#include "config.h"
#include "metrics.h"
#include "retry.h"

#define WD_REDIS_HOST_MAX 255
#define WD_REDIS_USER_MAX 127
#define WD_REDIS_PASSWORD_MAX 255
#define WD_REDIS_URL_MAX 1023
#define WD_REDIS_NAME_MAX 63      /* client label; also the breaker's name */
#define WD_REDIS_ERRTEXT_MAX 191  /* error text handed to a callback */
#define WD_REDIS_CHANNEL_MAX 255  /* one pub/sub channel or pattern */
#define WD_REDIS_SUBS_MAX 64      /* channels + patterns of one client */
#define WD_REDIS_PENDING_DEFAULT 10000 /* commands queued or in flight */
#define WD_REDIS_PENDING_MAX 1000000
#define WD_REDIS_DB_MAX 1000000

typedef struct wd_redis wd_redis;

typedef enum {
    WD_REDIS_CONNECTING = 0, /* resolving, connecting or in the handshake */
    WD_REDIS_READY,          /* handshake answered: commands are sent */
    WD_REDIS_BACKOFF,        /* waiting to reconnect; commands fail fast */
    WD_REDIS_CLOSED,         /* wd_redis_close() was called */
} wd_redis_state;
#define WD_REDIS_STATES 4

/* The metric families, registered once per registry (see
 * wd_redis_metrics_register) and shared by the clients that use it. */
typedef struct {
    wd_metric *commands, *errors, *rejected, *reconnects, *duration, *state, *messages;
} wd_redis_metrics;

typedef struct {
    /* Where: either url, "redis://[[user]:password@]host[:port][/db]"
     * (user and password may be %-encoded; host may be [v6]), or host/port.
     * The url wins when set; a password given here wins over one in the
     * url (so a config can keep it out of the url). */
    const char *url;
    const char *host; /* default 127.0.0.1 */
    int port;         /* default 6379 */
    const char *user; /* Redis 6 ACL user; NULL: AUTH password only */
    const char *password;
    int db;
    uint64_t connect_timeout_ms; /* resolve + connect + handshake; default 2000 */
    uint64_t command_timeout_ms; /* every command and PING; default 2000 */
    uint64_t ping_interval_ms;   /* 0 turns the health check off; default 5000 */
    uint64_t reconnect_initial_ms; /* default 1000 */
    uint64_t reconnect_max_ms;     /* default 120000 */
    double reconnect_multiplier;   /* >= 1; default 1.6 */
    double reconnect_jitter;       /* 0..0.5 (+- fraction); default 0.2 */
    brk_config breaker;            /* default brk_config_defaults() */
    size_t max_pending; /* commands queued + in flight; beyond: WD_EBUSY */
    /* Metrics: metric_set when given (registered beforehand with
     * wd_redis_metrics_register, for several clients on one registry), else
     * metrics (the families are registered by wd_redis_open), else none. */
    wd_metrics *metrics;
    const wd_redis_metrics *metric_set;
    const char *name; /* label client=..., default "redis" */
} wd_redis_opts;

/* The defaults above. */
void wd_redis_opts_default(wd_redis_opts *o);

/* Registers the families in reg. 0, or the registry's error (WD_EEXIST
 * when they are registered already). */
int wd_redis_metrics_register(wd_metrics *reg, wd_redis_metrics *out);

/* What a command came to. The reply (hiredis' tree: str/len, integer,
 * element[]/elements, nested to any depth) and the error text are valid
 * only during the callback.
 *
 *   status 0             reply holds the answer (never an error reply)
 *   WD_EPERMANENT        the server answered with an error reply (reply and
 *                        error hold it); errclass permanent
 *   WD_ETRANSIENT        an error reply classed transient (LOADING, BUSY...)
 *   WD_ECRITICAL         an error reply classed critical (NOAUTH, WRONGPASS)
 *   WD_ETIMEDOUT         no reply within command_timeout_ms (transient)
 *   WD_EIO               the connection failed or was dropped (transient)
 *   WD_EUNAVAIL          no connection to send on (transient)
 *   WD_EOPEN             the breaker is open; nothing was sent (transient)
 *   WD_ECLOSED           wd_redis_close() was called first (permanent) */
typedef struct {
    int status;
    wd_errclass errclass;    /* meaningful when status != 0 */
    const redisReply *reply; /* NULL unless the server answered */
    const char *error;       /* "" on success; never holds a secret */
    uint64_t latency_ns;     /* submission to completion */
} wd_redis_result;

typedef void (*wd_redis_cb)(wd_redis *r, const wd_redis_result *res, void *arg);
typedef void (*wd_redis_close_cb)(wd_redis *r, void *arg);

/* Creates a client and starts connecting. Returns 0 and *out (owned by the
 * caller until wd_redis_close), or WD_EINVAL / WD_ERANGE / WD_ECONFIG with
 * err filled (a bad url, bound or metric set; never quoting a password), or
 * WD_ENOMEM. opts is copied; its strings need not outlive the call. */
int wd_redis_open(uv_loop_t *loop, const wd_redis_opts *opts, wd_redis **out, char *err,
                  size_t errlen);

/* Sends a command built from a hiredis format ("SET %s %b", key, val, len).
 * Returns 0 and cb runs exactly once later; or, and then cb never runs:
 * WD_EINVAL (bad format, NULL cb, or a (P)SUBSCRIBE/(P)UNSUBSCRIBE/MONITOR,
 * which belong to wd_redis_subscribe), WD_ECLOSED (closing), WD_EBUSY
 * (max_pending reached), WD_ENOMEM. */
int wd_redis_command(wd_redis *r, wd_redis_cb cb, void *arg, const char *fmt, ...);
int wd_redis_vcommand(wd_redis *r, wd_redis_cb cb, void *arg, const char *fmt, va_list ap);
/* Binary safe: argv[i] holds argvlen[i] bytes (argvlen NULL: strlen). */
int wd_redis_command_argv(wd_redis *r, wd_redis_cb cb, void *arg, int argc, const char *const *argv,
                          const size_t *argvlen);

/* Pub/sub. */
typedef enum { WD_REDIS_MSG_MESSAGE = 0, WD_REDIS_MSG_SUBSCRIBED } wd_redis_msg_kind;
typedef struct {
    wd_redis_msg_kind kind; /* SUBSCRIBED: the server confirmed (again, after a reconnect) */
    const char *channel;    /* the channel the message came on */
    size_t channel_len;
    const char *pattern;    /* for a pattern subscription, else NULL */
    size_t pattern_len;
    const char *data; /* the payload (binary); NULL for SUBSCRIBED */
    size_t len;
} wd_redis_msg;
typedef void (*wd_redis_msg_cb)(wd_redis *r, const wd_redis_msg *msg, void *arg);

/* Subscribes to a channel (or, psubscribe, a glob pattern) of 1 to
 * WD_REDIS_CHANNEL_MAX bytes. 0, or WD_EINVAL, WD_EEXIST (already),
 * WD_ETOOBIG (WD_REDIS_SUBS_MAX reached), WD_ECLOSED, WD_ENOMEM. */
int wd_redis_subscribe(wd_redis *r, const char *channel, wd_redis_msg_cb cb, void *arg);
int wd_redis_psubscribe(wd_redis *r, const char *pattern, wd_redis_msg_cb cb, void *arg);
/* 0 or WD_ENOTFOUND. No message is delivered for it after this returns. */
int wd_redis_unsubscribe(wd_redis *r, const char *channel);
int wd_redis_punsubscribe(wd_redis *r, const char *pattern);

/* Stops the client: every callback still due runs with WD_ECLOSED (before
 * close_cb), the connections are dropped and the handles closed; close_cb
 * (may be NULL) runs once all is released, and r is freed right after it
 * returns. May be called from any callback of the client. 0, or WD_ESTATE
 * when already closing. */
int wd_redis_close(wd_redis *r, wd_redis_close_cb close_cb, void *arg);

wd_redis_state wd_redis_get_state(const wd_redis *r);
const char *wd_redis_state_name(wd_redis_state s); /* "connecting", "ready"... */
/* The state of the pub/sub connection (CLOSED when none was opened). */
wd_redis_state wd_redis_sub_state(const wd_redis *r);
/* The client's breaker, for stats, history and manual reset/force-open. */
brk_breaker *wd_redis_breaker(wd_redis *r);

typedef struct {
    uint64_t submitted; /* accepted by wd_redis_command* */
    uint64_t sent;      /* written to a connection */
    uint64_t ok;        /* status 0 */
    uint64_t failed;    /* any other status (rejected included) */
    uint64_t rejected;  /* WD_EOPEN */
    uint64_t timeouts;  /* WD_ETIMEDOUT */
    uint64_t reconnects;
    uint64_t connects;  /* handshakes completed */
    uint64_t messages;  /* pub/sub messages delivered */
    uint32_t inflight, queued;
    wd_redis_state state;
} wd_redis_stats;
void wd_redis_get_stats(const wd_redis *r, wd_redis_stats *out);

/* The i-th element of an array reply, or NULL (not an array, or out of
 * range): a bounds-checked walk of nested replies (XREAD, XRANGE...). */
const redisReply *wd_redis_reply_at(const redisReply *reply, size_t i);

/* ---- configuration ([redis]-style sections) ---- */

/* A section's settings as read by wd_conf_apply_section with
 * wd_redis_conf_fields. */
typedef struct {
    char url[WD_REDIS_URL_MAX + 1];
    char password[WD_REDIS_PASSWORD_MAX + 1];
    uint64_t connect_timeout_ms, command_timeout_ms, ping_interval_ms;
    uint64_t reconnect_initial_ms, reconnect_max_ms;
    double reconnect_multiplier, reconnect_jitter;
} wd_redis_conf;

/* Keys: url, password, connect_timeout, command_timeout, ping_interval,
 * reconnect_initial, reconnect_max, reconnect_multiplier, reconnect_jitter. */
extern const wd_conf_field wd_redis_conf_fields[];
extern const size_t wd_redis_conf_n_fields;

/* Fills the connection fields of o from c (o keeps pointers into c, which
 * must outlive wd_redis_open); other fields are left as they are. */
void wd_redis_conf_to_opts(const wd_redis_conf *c, wd_redis_opts *o);

#endif
