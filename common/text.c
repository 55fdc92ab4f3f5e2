#include "text.h"
#include "wd_error.h"
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

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int wd_pct_decode(const char *src, size_t len, bool plus_is_space, char *dst, size_t dstlen) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len)
                return WD_EINVAL;
            int a = hexval(src[i + 1]), b = hexval(src[i + 2]);
            if (a < 0 || b < 0)
                return WD_EINVAL;
            c = (char)(a * 16 + b);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0')
            return WD_EINVAL;
        if (o + 1 >= dstlen)
            return WD_ETOOBIG;
        dst[o++] = c;
    }
    if (dstlen == 0)
        return WD_ETOOBIG;
    dst[o] = '\0';
    return 0;
}

