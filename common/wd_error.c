#include "wd_error.h"

const char *wd_strerror(int err) {
    switch (err) {
    case WD_OK:
        return "success";
#define WD_ERR_CASE(name, code, text)                                          \
    case WD_##name:                                                            \
        return text;
        WD_ERRNO_MAP(WD_ERR_CASE)
#undef WD_ERR_CASE
    default:
        return "unknown error";
    }
}
