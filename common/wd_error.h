/* Project-wide error codes. Every function that can fail returns 0 or one of
 * these negative values; wd_strerror() names it. Parsers and connectors also
 * fill a caller's (char *err, size_t errlen) with the offending detail. */
#ifndef WD_ERROR_H
#define WD_ERROR_H

#define WD_ERRNO_MAP(X)                                                        \
    X(EINVAL, -1, "invalid argument")                                          \
    X(ENOMEM, -2, "out of memory")                                             \
    X(ERANGE, -3, "value out of range")                                        \
    X(EPROTO, -4, "malformed message")                                         \
    X(ETOOBIG, -5, "too large")                                                \
    X(ENOTFOUND, -6, "not found")                                              \
    X(EEXIST, -7, "already exists")                                            \
    X(ETIMEDOUT, -8, "timed out")                                              \
    X(EIO, -9, "i/o error")                                                    \
    X(EPERM, -10, "permission denied")                                         \
    X(EBUSY, -11, "busy")                                                      \
    X(ESTATE, -12, "not allowed in this state")                                \
    X(ECLOSED, -13, "closed")                                                  \
    X(EOPEN, -14, "circuit breaker open")                                      \
    X(ESYS, -15, "system call failed")                                         \
    X(EUNAVAIL, -16, "unavailable")                                            \
    X(ECONFIG, -17, "configuration error")                                     \
    X(ETRANSIENT, -18, "transient failure")                                    \
    X(EPERMANENT, -19, "permanent failure")                                    \
    X(ECRITICAL, -20, "critical failure")

typedef enum {
    WD_OK = 0,
#define WD_ERR_ENUM(name, code, text) WD_##name = (code),
    WD_ERRNO_MAP(WD_ERR_ENUM)
#undef WD_ERR_ENUM
} wd_errno;

/* Returns a static string for an error code; unknown codes get a generic text. */
const char *wd_strerror(int err);

#endif
