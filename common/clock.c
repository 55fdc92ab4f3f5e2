#include "clock.h"
#include <stdio.h>
#include <time.h>

static uint64_t clock_read(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * WD_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t wd_clock_mono_ns(void) { return clock_read(CLOCK_MONOTONIC); }
uint64_t wd_clock_real_ns(void) { return clock_read(CLOCK_REALTIME); }

void wd_clock_format(uint64_t real_ns, char *buf, unsigned long buflen) {
    time_t secs = (time_t)(real_ns / WD_NS_PER_SEC);
    unsigned ms = (unsigned)((real_ns % WD_NS_PER_SEC) / WD_NS_PER_MS);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, buflen, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}
