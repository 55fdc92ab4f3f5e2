#include "text.h"
#include <string.h>

size_t wd_utf8_copy(char *dst, size_t dstlen, const char *src) {
    if (dstlen == 0)
        return 0;
    if (!src)
        src = "";
    size_t n = strnlen(src, dstlen - 1);
    if (src[n] != '\0') {
        /* Cut inside the string: step back over continuation bytes (10xxxxxx)
         * and the lead byte of a character that would not fit whole. */
        size_t k = n;
        while (k > 0 && ((unsigned char)src[k] & 0xC0) == 0x80)
            k--;
        n = k;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}
