/* Helpers shared by the unit tests (the .c files in tests/support/, linked into every
 * tests/unit/NAME_test.c). They start real servers and watch the loop; none
 * of them fakes the thing under test. */
#ifndef WDT_SUPPORT_H
#define WDT_SUPPORT_H

#include <stdint.h>
#include <uv.h>

/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int wdt_free_tcp_port(void);

/* Loop-lateness probe: a repeating timer every period_ms that records how
 * late each tick fired against its schedule. A loop stuck in a blocking call
 * shows up as a large worst lateness. */
typedef struct {
    uv_timer_t timer;
    uint64_t period_ms;
    uint64_t expected_ms; /* when the next tick is due (uv_now scale) */
    uint64_t worst_late_ms;
    uint64_t ticks;
} wdt_lateness;

void wdt_lateness_start(uv_loop_t *loop, wdt_lateness *p, uint64_t period_ms);
/* Stops the timer and closes its handle; run the loop once after this
 * before the struct goes away. */
void wdt_lateness_stop(wdt_lateness *p);

/* The worst loop lateness a fault test allows: base_ms, or 3 x base_ms
 * when the test runs under valgrind (which slows every callback ~20x and
 * shares the machine's cores with other tests). The plain run is the one
 * that proves nothing blocks; the valgrind run is there for memory errors. */
uint64_t wdt_late_bound_ms(uint64_t base_ms);

/* Runs the loop until pred(arg) is true or timeout_ms passes; returns
 * whether pred became true. */
int wdt_run_until(uv_loop_t *loop, int (*pred)(void *), void *arg, uint64_t timeout_ms);

/* Directory of the test's source tree (WARDEN_SOURCE_DIR or the compiled-in
 * default) for finding scripts under tests/support/. */
const char *wdt_source_dir(void);

#endif
