#include "log.h"
#include "clock.h"
#include "wd_error.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The logger's whole state: set once at start, read on every record. */
static struct {
    char component[64];
    wd_log_level level;
} log_state = {"warden", WD_LOG_INFO};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void wd_log_init(const char *component, wd_log_level level) {
    snprintf(log_state.component, sizeof log_state.component, "%s", component);
    log_state.level = level;
}

void wd_log_set_level(wd_log_level level) { log_state.level = level; }

const char *wd_log_level_name(wd_log_level level) {
    return (unsigned)level < 4 ? level_names[level] : "info";
}

int wd_log_level_parse(const char *s, wd_log_level *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (wd_log_level)i;
            return 0;
        }
    }
    return WD_EINVAL;
}

void wd_log(wd_log_level level, const char *fmt, ...) {
    if (level < log_state.level)
        return;
    char ts[WD_TIME_STR_MAX];
    char msg[WD_LOG_LINE_MAX];
    char line[WD_LOG_LINE_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Quotes and newlines inside the message would break the one-line format. */
    for (char *p = msg; *p; p++)
        if (*p == '"' || *p == '\n' || *p == '\r')
            *p = *p == '"' ? '\'' : ' ';
    wd_clock_format(wd_clock_real_ns(), ts, sizeof ts);
    int n = snprintf(line, sizeof line, "ts=%s level=%s comp=%s msg=\"%s\"\n", ts,
                     wd_log_level_name(level), log_state.component, msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    /* One write per record so lines from concurrent writers never interleave. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
