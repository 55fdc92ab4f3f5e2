/* Bounded string copies that keep UTF-8 valid: a cut never splits a
 * multi-byte character, so a truncated reason or name still packs (proto
 * refuses invalid UTF-8). */
#ifndef WD_TEXT_H
#define WD_TEXT_H
#include <stddef.h>

/* Copies src into dst (dstlen bytes incl. NUL), cutting at a character
 * boundary. Returns the bytes copied. NULL src copies "". */
size_t wd_utf8_copy(char *dst, size_t dstlen, const char *src);

#endif
