/* Every config section warden knows beyond [supervisor], [worker:*] and
 * [program:*]: one call registers them all, so `warden check-config`, the
 * supervisor and each worker validate the same file the same way. */
#ifndef WD_CONF_SECTIONS_H
#define WD_CONF_SECTIONS_H

/* Registers [breaker:*], [aggregator*], [health], [redis] and [postgres].
 * Idempotent; returns 0 or the first registration error. */
int wd_conf_register_all(void);

#endif
