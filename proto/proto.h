/* warden wire protocol: every message is a msgpack envelope
 *   [version, type, sender, seq, ts_ns, body]
 * documented in proto/PROTOCOL.md. One pack and one unpack function per type.
 *
 * Unpack never trusts the peer: it checks every type, length and bound, and
 * returns WD_EPROTO (wrong shape/type), WD_ETOOBIG (over a bound) or WD_EINVAL
 * with a message in err naming the offending field. It never crashes.
 *
 * Ownership: unpacked fixed-size strings are copied into the structs (NUL
 * terminated). Fields typed (const char *, size_t) point INTO the caller's
 * input buffer and are valid only while that buffer lives; they are not NUL
 * terminated. Pack functions append to a caller-owned msgpack_sbuffer. */
#ifndef WD_PROTO_H
#define WD_PROTO_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1
#define PROTO_MSG_MAX (4u * 1024u * 1024u) /* NNG_OPT_RECVMAXSZ on every socket */
#define PROTO_NAME_MAX 63                   /* worker, sender, breaker names */
#define PROTO_CMD_MAX 31                    /* control command names */
#define PROTO_ARGS_MAX 16                   /* key=value pairs in a request */
#define PROTO_ARG_KEY_MAX 63
#define PROTO_ARG_VAL_MAX 1023
#define PROTO_ERROR_MAX 511                 /* error text in a reply */
#define PROTO_REASON_MAX 511                /* reason text in an event */
#define PROTO_STATE_MAX 31                  /* state names in an event */
#define PROTO_BREAKERS_MAX 32               /* breakers in one heartbeat */
#define PROTO_METRICS_MAX 256               /* metric samples in one heartbeat */
#define PROTO_METRIC_NAME_MAX 191           /* name incl. {labels} */
#define PROTO_VERSION_STR_MAX 31

typedef enum {
    PROTO_T_HEARTBEAT = 1,
    PROTO_T_READY = 2,
    PROTO_T_CTL_REQUEST = 3,
    PROTO_T_CTL_REPLY = 4,
    PROTO_T_EVENT = 5,
    /* 16.. reserved for market data, 32.. for alerts (later issues). */
} proto_type;

/* Breaker states as carried on the wire (strings "closed", "open", ...). */
typedef enum {
    PROTO_BRK_CLOSED = 0,
    PROTO_BRK_OPEN,
    PROTO_BRK_HALF_OPEN,
    PROTO_BRK_FORCED_OPEN,
    PROTO_BRK_DISABLED,
    PROTO_BRK_COUNT
} proto_breaker_state;
const char *proto_breaker_state_name(proto_breaker_state s);
/* Returns 0 and sets *out, or WD_EINVAL for an unknown name. */
int proto_breaker_state_parse(const char *name, size_t len, proto_breaker_state *out);

/* The envelope's header fields, as given to every pack function. */
typedef struct {
    char sender[PROTO_NAME_MAX + 1];
    uint64_t seq;
    uint64_t ts_ns; /* realtime, nanoseconds since the epoch */
} proto_header;

/* An unpacked envelope. body/body_len is the raw msgpack body, pointing into
 * the input buffer. */
typedef struct {
    uint32_t version;
    proto_type type;
    proto_header hdr;
    const char *body;
    size_t body_len;
} proto_envelope;

/* Validates the envelope (array of 6, version == PROTO_VERSION, known type,
 * sender a non-empty str within bound, seq and ts_ns unsigned ints, and no
 * trailing bytes) and fills env. The body is validated by the typed unpacks. */
int proto_envelope_unpack(const void *buf, size_t len, proto_envelope *env, char *err,
                          size_t errlen);

/* ---- heartbeat (worker -> supervisor, PUSH/PULL) ---- body is a map:
 * {"pid": uint, "progress": uint, "loop_lag_us": uint,
 *  "breakers": {name: state-string, ...}, "metrics": {name: number, ...}} */
typedef struct {
    char name[PROTO_NAME_MAX + 1];
    proto_breaker_state state;
} proto_breaker;

typedef struct {
    char name[PROTO_METRIC_NAME_MAX + 1];
    double value;
} proto_metric;

typedef struct {
    uint32_t pid;
    uint64_t progress;
    uint64_t loop_lag_us;
    uint32_t n_breakers;
    proto_breaker breakers[PROTO_BREAKERS_MAX];
    uint32_t n_metrics;
    proto_metric metrics[PROTO_METRICS_MAX];
} proto_heartbeat;

int proto_heartbeat_pack(msgpack_sbuffer *out, const proto_header *hdr,
                         const proto_heartbeat *hb);
int proto_heartbeat_unpack(const proto_envelope *env, proto_heartbeat *hb, char *err,
                           size_t errlen);

/* ---- ready (worker -> supervisor, on heartbeat.sock) ----
 * {"pid": uint, "version": str} */
typedef struct {
    uint32_t pid;
    char version[PROTO_VERSION_STR_MAX + 1];
} proto_ready;

int proto_ready_pack(msgpack_sbuffer *out, const proto_header *hdr, const proto_ready *r);
int proto_ready_unpack(const proto_envelope *env, proto_ready *r, char *err, size_t errlen);

/* ---- control request (wardenctl/health -> supervisor; supervisor -> worker) ----
 * {"cmd": str, "target": str (may be empty), "args": {str: str, ...}} */
typedef struct {
    char key[PROTO_ARG_KEY_MAX + 1];
    char val[PROTO_ARG_VAL_MAX + 1];
} proto_arg;

typedef struct {
    char cmd[PROTO_CMD_MAX + 1];
    char target[PROTO_NAME_MAX + 1];
    uint32_t n_args;
    proto_arg args[PROTO_ARGS_MAX];
} proto_ctl_request;

int proto_ctl_request_pack(msgpack_sbuffer *out, const proto_header *hdr,
                           const proto_ctl_request *req);
int proto_ctl_request_unpack(const proto_envelope *env, proto_ctl_request *req, char *err,
                             size_t errlen);
/* Returns the value of key, or NULL. */
const char *proto_ctl_request_arg(const proto_ctl_request *req, const char *key);

/* ---- control reply ----
 * {"status": int (0 or a negative wd_errno), "error": str, "data": str (JSON)}
 * data is JSON text (jansson on both sides) so replies can carry any structure. */
typedef struct {
    int32_t status;
    char error[PROTO_ERROR_MAX + 1];
    const char *data; /* into the input buffer; not NUL terminated */
    size_t data_len;
} proto_ctl_reply;

int proto_ctl_reply_pack(msgpack_sbuffer *out, const proto_header *hdr,
                         const proto_ctl_reply *rep);
int proto_ctl_reply_unpack(const proto_envelope *env, proto_ctl_reply *rep, char *err,
                           size_t errlen);

/* ---- event (supervisor -> subscribers, PUB/SUB) ----
 * {"kind": str, "worker": str, "from": str, "to": str, "reason": str}
 * kind is one of "state", "breaker", "exit", "audit", "config". */
typedef struct {
    char kind[PROTO_STATE_MAX + 1];
    char worker[PROTO_NAME_MAX + 1];
    char from[PROTO_STATE_MAX + 1];
    char to[PROTO_STATE_MAX + 1];
    char reason[PROTO_REASON_MAX + 1];
} proto_event;

int proto_event_pack(msgpack_sbuffer *out, const proto_header *hdr, const proto_event *ev);
int proto_event_unpack(const proto_envelope *env, proto_event *ev, char *err, size_t errlen);

#endif
