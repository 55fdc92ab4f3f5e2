/* The built-in tables: [supervisor], [worker:NAME] and [program:NAME]. Each
 * row names a key, its type, bounds, default, help text and the struct field
 * it fills. They are data only, apart from the code that applies them
 * (config_apply.c), so a default or a bound is changed here and nowhere else;
 * wd_conf_print_defaults documents them from these same rows. */
#include "config_int.h"
#include <stddef.h>
#include <stdint.h>

static const char *const log_level_names[] = {"debug", "info", "warn", "error", NULL};
static const char *const restart_names[] = {"always", "on-failure", "never", NULL};

#define SF(n, t, m, lo, hi, d, h)                                                                  \
    {                                                                                              \
        .name = n, .type = t, .offset = offsetof(wd_supervisor_conf, m),                           \
        .size = sizeof(((wd_supervisor_conf *)0)->m), .min = lo, .max = hi, .def = d, .help = h    \
    }

const wd_conf_field wd_conf_supervisor_fields[] = {
    SF("run_dir", WD_CONF_STRING, run_dir, 0, 0, "/run/warden",
       "Directory of the control, heartbeat, event and worker sockets (relative: to warden's)."),
    {.name = "log_level",
     .type = WD_CONF_ENUM,
     .offset = offsetof(wd_supervisor_conf, log_level),
     .size = sizeof(int),
     .def = "info",
     .names = log_level_names,
     .help = "Lowest level of the supervisor's own log lines."},
    SF("log_line_max", WD_CONF_SIZE, log_line_max, 256, 1024 * 1024, "16K",
       "Longest line kept from a program's output; longer lines are cut and marked."),
    SF("log_ring_lines", WD_CONF_INT, log_ring_lines, 10, 100000, "1000",
       "Output lines kept per program for 'wardenctl logs' (a program may set its own)."),
    SF("shutdown_timeout", WD_CONF_DURATION, shutdown_timeout_ms, 100, MS_PER_H, "30s",
       "On SIGTERM, how long to wait for every program to stop before killing what is left."),
    SF("control_mode", WD_CONF_STRING, control_mode, 0, 0, "0600",
       "Octal permissions of the control socket."),
};

#define PF(n, t, m, lo, hi, d, h)                                                                  \
    {                                                                                              \
        .name = n, .type = t, .offset = offsetof(wd_program_conf, m),                              \
        .size = sizeof(((wd_program_conf *)0)->m), .min = lo, .max = hi, .def = d, .help = h       \
    }

/* The [worker:] and [program:] tables differ only in the default of required. */
#define PROGRAM_ROWS(REQUIRED_DEFAULT)                                                             \
    PF("command", WD_CONF_STRING, command, 0, 0, NULL,                                             \
       "Required. Program and arguments, split into words like sh does (quotes, "                  \
       "backslashes), but not run by a shell."),                                                   \
        {.name = "restart",                                                                        \
         .type = WD_CONF_ENUM,                                                                     \
         .offset = offsetof(wd_program_conf, restart),                                             \
         .size = sizeof(int),                                                                      \
         .def = "always",                                                                          \
         .names = restart_names,                                                                   \
         .help = "When to restart after an exit (on-failure: nonzero status or a signal)."},       \
        PF("min_uptime", WD_CONF_DURATION, min_uptime_ms, 0, MS_PER_H, "10s",                      \
           "A run this long counts as good: restart at once, backoff and breaker reset."),         \
        PF("backoff_base", WD_CONF_DURATION, backoff_base_ms, 1, MS_PER_H, "100ms",                \
           "First delay after a quick failure; doubles each time, with full jitter."),             \
        PF("backoff_cap", WD_CONF_DURATION, backoff_cap_ms, 1, MS_PER_H, "30s",                    \
           "Longest restart delay; at least backoff_base."),                                       \
        PF("start_timeout", WD_CONF_DURATION, start_timeout_ms, 10, MS_PER_H, "10s",               \
           "Time to become ready (READY from a worker, exec for a program)."),                     \
        PF("stop_timeout", WD_CONF_DURATION, stop_timeout_ms, 10, MS_PER_H, "5s",                  \
           "Time between stop_signal and SIGKILL."),                                               \
        PF("stop_signal", WD_CONF_SIGNAL, stop_signal, 0, 0, "TERM",                               \
           "Signal that asks the process group to stop: a name (TERM, SIGINT) or a number."),      \
        PF("heartbeat_interval", WD_CONF_DURATION, heartbeat_interval_ms, 10, 10 * MS_PER_M, "1s", \
           "How often a worker sends a heartbeat (programs only if they speak the protocol)."),    \
        PF("heartbeat_timeout", WD_CONF_DURATION, heartbeat_timeout_ms, 20, MS_PER_H, "5s",        \
           "Silence after which it is UNRESPONSIVE and restarted; more than heartbeat_interval."), \
        PF("depends_on", WD_CONF_STRING, depends_on_raw, 0, 0, "",                                 \
           "Names (comma or space separated) that must be ready before it starts; "                \
           "they stop after it."),                                                                 \
        PF("required", WD_CONF_BOOL, required, 0, 0, REQUIRED_DEFAULT,                             \
           "Whether /readyz needs it ready (default yes for [worker:], no for [program:])."),      \
        PF("autostart", WD_CONF_BOOL, autostart, 0, 0, "yes",                                      \
           "Start with the supervisor; otherwise only on 'wardenctl start NAME'."),                \
        PF("breaker_failures", WD_CONF_INT, breaker_failures, 1, 1000, "5",                        \
           "Quick failures within breaker_window that open the crash-loop breaker."),              \
        PF("breaker_window", WD_CONF_DURATION, breaker_window_ms, MS_PER_S, 24 * MS_PER_H, "60s",  \
           "Window over which quick failures are counted."),                                       \
        PF("breaker_cooldown", WD_CONF_DURATION, breaker_cooldown_ms, 10, 24 * MS_PER_H, "30s",    \
           "Time the open breaker waits before one trial start."),                                 \
        PF("breaker_cooldown_max", WD_CONF_DURATION, breaker_cooldown_max_ms, 10, 24 * MS_PER_H,   \
           "10m",                                                                                  \
           "Cap of the cooldown, which doubles on each re-open; at least breaker_cooldown."),      \
        PF("user", WD_CONF_STRING, user, 0, 0, "",                                                 \
           "User (name or uid) to run as; empty: the supervisor's."),                              \
        PF("group", WD_CONF_STRING, group, 0, 0, "",                                               \
           "Group (name or gid) to run as; empty: the user's primary group."),                     \
        PF("directory", WD_CONF_STRING, directory, 0, 0, "",                                       \
           "Working directory, absolute; empty: the supervisor's."),                               \
        PF("environment", WD_CONF_STRING, environment_raw, 0, 0, "",                               \
           "Extra variables: KEY=VALUE pairs separated by spaces; a value may be double-quoted."), \
        PF("limit_memory", WD_CONF_SIZE, limit_memory, 0, TIB, "0",                                \
           "Address space limit (RLIMIT_AS); 0 = unlimited, else at least 1M."),                   \
        PF("limit_nofile", WD_CONF_INT, limit_nofile, 0, 1048576, "0",                             \
           "Open files limit (RLIMIT_NOFILE); 0 = the supervisor's."),                             \
        PF("limit_core", WD_CONF_SIZE, limit_core, 0, TIB, "0",                                    \
           "Core file size limit (RLIMIT_CORE); 0 = no core files."),                              \
        PF("log_ring_lines", WD_CONF_INT, log_ring_lines, 10, 100000, "",                          \
           "Output lines kept for 'wardenctl logs'; empty: [supervisor] log_ring_lines.")

const wd_conf_field wd_conf_worker_fields[] = {PROGRAM_ROWS("yes")};
const wd_conf_field wd_conf_program_fields[] = {PROGRAM_ROWS("no")};
#define N_FIELDS(t) (sizeof(t) / sizeof((t)[0]))
const size_t wd_conf_supervisor_n_fields = N_FIELDS(wd_conf_supervisor_fields);
const size_t wd_conf_worker_n_fields = N_FIELDS(wd_conf_worker_fields);
const size_t wd_conf_program_n_fields = N_FIELDS(wd_conf_program_fields);

/* INT fields write an int64_t; some targets are uint64_t with min >= 0, where
 * the representation is the same. */
_Static_assert(sizeof(int64_t) == sizeof(uint64_t), "INT fields on uint64_t targets");
