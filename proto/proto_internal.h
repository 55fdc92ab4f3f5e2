/* Helpers shared by the proto_*.c files; not part of the public interface.
 *
 * Every decode runs in two passes. proto_wire_scan() first walks the raw bytes
 * with fixed bounds (nesting, object count, claimed lengths against the bytes
 * actually present) and only then is msgpack_unpack_next() allowed near the
 * input: msgpack-c allocates a container's element array from the length in
 * its header before reading any element, so a 5-byte input that claims 2^32
 * elements would otherwise make it ask for ~100 GiB. */
#ifndef WD_PROTO_INTERNAL_H
#define WD_PROTO_INTERNAL_H

#include "proto.h"

#include <stdbool.h>

/* Containers nested inside one body (the body's own map is level 1). The
 * envelope array adds one more level on top. */
#define PROTO_DEPTH_MAX 8
/* msgpack objects (containers, keys and scalars) in one body. msgpack-c
 * allocates one 24-byte msgpack_object per object, so this also bounds the
 * memory one decode can take (~200 KiB). */
#define PROTO_OBJECTS_MAX 8192

/* Writes "fmt" into err (if any) and returns code. */
int proto_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Checks that buf[0..len) starts with one complete msgpack object that nests
 * at most max_depth containers and holds at most max_objects objects, and sets
 * *end to the offset just past it. On error returns WD_EPROTO or WD_ETOOBIG
 * and sets *why to a static description. */
int proto_wire_scan(const uint8_t *buf, size_t len, unsigned max_depth, size_t max_objects,
                    size_t *end, const char **why);

/* String classes a field may belong to. */
typedef enum {
    PROTO_STR_NAME, /* identifiers: valid UTF-8, no control characters */
    PROTO_STR_TEXT, /* free text: valid UTF-8, no NUL (tab/newline allowed) */
} proto_str_class;

/* Returns true if s[0..len) is acceptable for the class. */
bool proto_str_ok(const char *s, size_t len, proto_str_class cls);

/* A decoded body: the unpacked object tree plus the body's map. */
typedef struct {
    msgpack_unpacked u;
    const msgpack_object_map *map;
    const char *what; /* message name for error texts, e.g. "heartbeat" */
} proto_body;

/* Checks env (type must be want), pre-scans and unpacks its body, and checks
 * that the body is a map with string keys. On success the caller must call
 * proto_body_close(). On error nothing needs releasing. */
int proto_body_open(proto_body *b, const proto_envelope *env, proto_type want,
                    const char *what, char *err, size_t errlen);
void proto_body_close(proto_body *b);

/* Looks key up in names[0..n): sets *idx to its index, or to n for a key this
 * version does not know (ignored, so peers can add fields). Fails on a key
 * seen before; *seen is the bit set of keys met so far. */
int proto_body_field(const proto_body *b, const msgpack_object *key, const char *const *names,
                     unsigned n, unsigned *seen, unsigned *idx, char *err, size_t errlen);
/* Fails naming the first name whose bit is in required but not in seen. */
int proto_body_require(const proto_body *b, const char *const *names, unsigned n,
                       unsigned required, unsigned seen, char *err, size_t errlen);

/* Returns true if key (a str object) equals the NUL-terminated name. */
bool proto_key_is(const msgpack_object *key, const char *name);

/* Typed field readers. Each names the message and field in err. */
int proto_get_uint(const msgpack_object *o, uint64_t max, uint64_t *out, const char *what,
                   const char *field, char *err, size_t errlen);
/* Copies a str object into dst (max bytes plus NUL); rejects an empty string
 * unless allow_empty. */
int proto_get_str(const msgpack_object *o, char *dst, size_t max, proto_str_class cls,
                  bool allow_empty, const char *what, const char *field, char *err,
                  size_t errlen);

/* Pack side. A pack function validates everything before it writes, and on
 * any error leaves out->size as it found it. */
int proto_check_fixed(const char *s, size_t max, proto_str_class cls, bool allow_empty,
                      size_t *len);
int proto_pack_header(msgpack_packer *pk, const proto_header *hdr, proto_type type);
int proto_pack_cstr(msgpack_packer *pk, const char *s);
int proto_pack_bytes(msgpack_packer *pk, const char *s, size_t len);
/* Checks the size of what was appended since start, or rolls it back. */
int proto_pack_finish(msgpack_sbuffer *out, size_t start, int rc);

#endif
