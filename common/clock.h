/* Time sources. Deadlines and durations always use the monotonic clock; the
 * realtime clock is only for timestamps shown to people or sent on the wire. */
#ifndef WD_CLOCK_H
#define WD_CLOCK_H
#include <stdint.h>

#define WD_NS_PER_MS 1000000ULL
#define WD_NS_PER_SEC 1000000000ULL

uint64_t wd_clock_mono_ns(void);
uint64_t wd_clock_real_ns(void);
static inline uint64_t wd_clock_mono_ms(void) { return wd_clock_mono_ns() / WD_NS_PER_MS; }

/* Formats a realtime ns timestamp as RFC 3339 UTC with milliseconds into buf
 * (WD_TIME_STR_MAX bytes suffice). */
#define WD_TIME_STR_MAX 32
void wd_clock_format(uint64_t real_ns, char *buf, unsigned long buflen);

#endif
