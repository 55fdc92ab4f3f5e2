/* Alerts on alerts.sock (producers -> notifier, REQ/REP), documented in
 * proto/PROTOCOL.md ("Alerts"): the alert (type 32) and its reply (type 33).
 *
 * Both are whole envelopes [1, type, sender, seq, ts_ns, body] with a map
 * body, like the control plane. proto_envelope_unpack does not know types 32
 * and 33 (an older peer rejects them as unknown types, as PROTOCOL.md
 * "Versioning" says), so the two unpacks below take the raw message and check
 * the envelope themselves.
 *
 * Unpack validates every field (see proto.h for the error codes) and names
 * the offending field in err, e.g. "alert: field 'severity': unknown severity".
 * The notifier sends that text back in the reply, so a producer learns which
 * field it got wrong. Fields decoded before the failing one stay filled in
 * (the notifier echoes the id of a bad alert when it could read it). */
#ifndef WD_PROTO_ALERT_H
#define WD_PROTO_ALERT_H

#include "proto.h"

#include <stdbool.h>

#define PROTO_T_ALERT 32
#define PROTO_T_ALERT_REPLY 33

#define PROTO_ALERT_ID_MAX 63         /* A-Z a-z 0-9 . _ - : only (Redis keys, wardenctl args) */
#define PROTO_ALERT_SOURCE_MAX 63     /* who raised it: a worker or program name */
#define PROTO_ALERT_TITLE_MAX 255     /* one line */
#define PROTO_ALERT_TEXT_MAX 4095     /* free text, newlines allowed */
#define PROTO_ALERT_LABELS_MAX 16     /* label pairs */
#define PROTO_ALERT_LABEL_KEY_MAX 63  /* a label name */
#define PROTO_ALERT_LABEL_VAL_MAX 255 /* a label value */
#define PROTO_ALERT_DEDUP_MAX 127     /* dedup key; "" = source + title */

typedef enum {
    PROTO_SEV_INFO = 0,
    PROTO_SEV_WARNING,
    PROTO_SEV_CRITICAL,
    PROTO_SEV_COUNT
} proto_alert_severity;

/* "info", "warning", "critical" ("unknown" out of range). */
const char *proto_alert_severity_name(proto_alert_severity s);
/* 0 and *out, or WD_EINVAL for anything else (case-sensitive). */
int proto_alert_severity_parse(const char *s, size_t len, proto_alert_severity *out);
/* True if s[0..len) is a valid alert id (1..PROTO_ALERT_ID_MAX of A-Z a-z 0-9 . _ - :). */
bool proto_alert_id_ok(const char *s, size_t len);

typedef struct {
    char key[PROTO_ALERT_LABEL_KEY_MAX + 1];
    char val[PROTO_ALERT_LABEL_VAL_MAX + 1];
} proto_alert_label;

/* About 10 KiB: fine on a stack, better in the heap in bulk. */
typedef struct {
    char id[PROTO_ALERT_ID_MAX + 1];
    char source[PROTO_ALERT_SOURCE_MAX + 1];
    proto_alert_severity severity;
    char title[PROTO_ALERT_TITLE_MAX + 1];
    char text[PROTO_ALERT_TEXT_MAX + 1];
    uint32_t n_labels;
    proto_alert_label labels[PROTO_ALERT_LABELS_MAX];
    uint64_t time_ns; /* realtime when the condition was seen, ns since the epoch; > 0 */
    char dedup_key[PROTO_ALERT_DEDUP_MAX + 1];
} proto_alert;

/* Returns the value of label key, or NULL. */
const char *proto_alert_label_get(const proto_alert *a, const char *key);
/* Adds a label (copying both); WD_EEXIST, WD_ETOOBIG (full or too long), WD_EINVAL. */
int proto_alert_label_add(proto_alert *a, const char *key, const char *val);

/* Checks a by the unpack rules: 0 or WD_EINVAL / WD_ETOOBIG with err naming
 * the field. err may be NULL. */
int proto_alert_check(const proto_alert *a, char *err, size_t errlen);

/* Appends one whole message to out (validated first; out untouched on error). */
int proto_alert_pack(msgpack_sbuffer *out, const proto_header *hdr, const proto_alert *a);
/* Decodes one whole message (nothing may follow it) into *hdr (may be NULL)
 * and *a. Returns 0, or WD_EPROTO / WD_ETOOBIG / WD_EINVAL / WD_ENOMEM with
 * err naming the field. */
int proto_alert_unpack(const void *buf, size_t len, proto_header *hdr, proto_alert *a,
                       char *err, size_t errlen);

/* ---- reply (notifier -> producer) ----
 * {"id": str, "status": int, "error": str}
 * status 0 is the ack: the alert is stored and will be delivered. A
 * negative status is a refusal: WD_EINVAL / WD_EPROTO / WD_ETOOBIG mean the
 * alert is bad (do not resend it), anything else (WD_EUNAVAIL when the store
 * is down, WD_EBUSY) means "not now": keep it and resend later. */
typedef struct {
    char id[PROTO_ALERT_ID_MAX + 1]; /* may be "" when the alert's id was unreadable */
    int32_t status;
    char error[PROTO_ERROR_MAX + 1];
} proto_alert_reply;

/* True for the reply statuses that say the alert itself is bad. */
bool proto_alert_status_permanent(int32_t status);

int proto_alert_reply_pack(msgpack_sbuffer *out, const proto_header *hdr,
                           const proto_alert_reply *r);
int proto_alert_reply_unpack(const void *buf, size_t len, proto_header *hdr,
                             proto_alert_reply *r, char *err, size_t errlen);

#endif
