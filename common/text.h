/* Bounded string copies that keep UTF-8 valid: a cut never splits a
 * multi-byte character, so a truncated reason or name still packs (proto
 * refuses invalid UTF-8). */
#ifndef WD_TEXT_H
#define WD_TEXT_H
#include <stdbool.h>
#include <stddef.h>

/* Copies src into dst (dstlen bytes incl. NUL), cutting at a character
 * boundary. Returns the bytes copied. NULL src copies "". */
size_t wd_utf8_copy(char *dst, size_t dstlen, const char *src);

/* Decodes len bytes of %-encoded text (and '+' as a space when
 * plus_is_space, as in a query string) into dst with a NUL. Returns 0,
 * WD_EINVAL for a bad escape or an encoded NUL, WD_ETOOBIG when dst is
 * too small. */
int wd_pct_decode(const char *src, size_t len, bool plus_is_space, char *dst, size_t dstlen);

#endif
