/* Structured logging, one line per record in logfmt to stderr:
 *   ts=2026-11-23T09:20:00.123Z level=info comp=aggregator msg="..."
 * The supervisor captures workers' stderr and stamps it again with name and pid,
 * so a worker's own lines stay short. Values that may hold secrets must never
 * be passed here unredacted. */
#ifndef WD_LOG_H
#define WD_LOG_H

typedef enum { WD_LOG_DEBUG = 0, WD_LOG_INFO, WD_LOG_WARN, WD_LOG_ERROR } wd_log_level;

#define WD_LOG_LINE_MAX 2048

void wd_log_init(const char *component, wd_log_level level);
void wd_log_set_level(wd_log_level level);
/* Parses "debug|info|warn|error"; returns 0 or WD_EINVAL. */
int wd_log_level_parse(const char *s, wd_log_level *out);
const char *wd_log_level_name(wd_log_level level);
void wd_log(wd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define wd_debug(...) wd_log(WD_LOG_DEBUG, __VA_ARGS__)
#define wd_info(...) wd_log(WD_LOG_INFO, __VA_ARGS__)
#define wd_warn(...) wd_log(WD_LOG_WARN, __VA_ARGS__)
#define wd_error(...) wd_log(WD_LOG_ERROR, __VA_ARGS__)

#endif
