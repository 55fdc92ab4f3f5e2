/* Configuration: one INI file (read with libinih) applied to typed tables,
 * Redis-style. Each table row names a key, its type, bounds, default and the
 * struct field it fills. Errors carry file:line and the offending text.
 *
 * Sections understood here:
 *   [supervisor]       wd_supervisor_conf
 *   [worker:NAME]      a warden worker (heartbeats; READY required)
 *   [program:NAME]     any program (process liveness only)
 * Other sections are kept as raw entries (wd_conf_entry) so a worker can
 * apply its own table to them with wd_conf_apply_section(); check-config knows
 * their tables through wd_conf_register_section().
 *
 * Environment overrides: WARDEN_<SECTION>_<KEY>, where SECTION is the section
 * name upper-cased with every non-alphanumeric character turned into '_'
 * (e.g. WARDEN_SUPERVISOR_LOG_LEVEL, WARDEN_WORKER_AGG_HEARTBEAT_TIMEOUT).
 * An override's errors name the variable instead of file:line.
 *
 * Only [supervisor] and sections the file has are overridden, and only by
 * variables naming a key of the section's table (built in, or registered
 * before wd_conf_read); other WARDEN_* variables are ignored.
 *
 * Value syntax: durations take units ns, us, ms, s, m, h ("250ms", "10s",
 * "5m"; a bare number is milliseconds; ns/us round up to whole ms), sizes take
 * K, M, G (powers of 1024, "64M" = "64MB" = "64MiB"; a bare number is bytes),
 * booleans are yes/no/true/false/on/off/1/0. Lines are at most
 * WD_CONF_LINE_MAX bytes; an indented line is an ordinary line (never a
 * continuation); inline comments start at " ;". config/warden.conf documents
 * every key. */
#ifndef WD_CONFIG_H
#define WD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WD_CONF_PATH_MAX 4096
#define WD_CONF_NAME_MAX 63
#define WD_CONF_VALUE_MAX 4095
#define WD_CONF_PROGRAMS_MAX 64
#define WD_CONF_DEPS_MAX 16
#define WD_CONF_ENV_MAX 32
#define WD_CONF_ARGV_MAX 64
#define WD_CONF_ENTRIES_MAX 4096
#define WD_CONF_ERRORS_MAX 64
#define WD_CONF_ERROR_LEN 512
#define WD_CONF_LINE_MAX 8192     /* longest physical line of a config file */
#define WD_CONF_SECTIONS_MAX 256  /* sections in one file */
#define WD_CONF_REGISTERED_MAX 32 /* wd_conf_register_section() patterns */
#define WD_CONF_DURATION_STR_MAX 32 /* wd_format_duration_ms / wd_format_size */

typedef enum {
    WD_CONF_STRING,   /* char[size]; bound: size of the field */
    WD_CONF_INT,      /* int64_t within [min, max] */
    WD_CONF_DURATION, /* uint64_t milliseconds within [min, max] */
    WD_CONF_SIZE,     /* uint64_t bytes within [min, max] */
    WD_CONF_BOOL,     /* bool */
    WD_CONF_ENUM,     /* int; value is the index in a NULL-terminated names list */
    WD_CONF_SIGNAL,   /* int signal number; "TERM", "SIGTERM", "15" */
    WD_CONF_DOUBLE,   /* double within [dmin, dmax] */
} wd_conf_type;

typedef struct {
    const char *name;
    wd_conf_type type;
    size_t offset; /* offsetof() the field in the target struct */
    size_t size;   /* for STRING: sizeof the char array */
    int64_t min, max;   /* INT/DURATION(ms)/SIZE bounds; both 0 = unbounded */
    double dmin, dmax;  /* DOUBLE bounds; both 0 = unbounded */
    /* Default, in config syntax. NULL: the key is required ("missing required
     * key" when absent). "": optional, the field is left zero/empty (not
     * bounds-checked). */
    const char *def;
    const char *const *names; /* for ENUM */
    const char *help;
} wd_conf_field;

/* One key=value as read, with where it came from. */
typedef struct {
    char section[WD_CONF_NAME_MAX + 9]; /* "worker:" + name */
    char key[WD_CONF_NAME_MAX + 1];
    char value[WD_CONF_VALUE_MAX + 1];
    char file[WD_CONF_PATH_MAX];
    int line; /* 0 for an environment override */
    bool used;
} wd_conf_entry;

typedef enum { WD_RESTART_ALWAYS = 0, WD_RESTART_ON_FAILURE, WD_RESTART_NEVER } wd_restart_policy;

typedef struct {
    char name[WD_CONF_NAME_MAX + 1];
    bool is_worker; /* [worker:] speaks heartbeats; [program:] does not */
    char command[WD_CONF_VALUE_MAX + 1];
    /* command split into words: double/single quotes and backslash escapes are
     * honoured, no other shell syntax. argv[argc] == NULL. Points into argbuf. */
    int argc;
    char *argv[WD_CONF_ARGV_MAX + 1];
    char argbuf[WD_CONF_VALUE_MAX + 1];
    int restart; /* wd_restart_policy */
    uint64_t min_uptime_ms, backoff_base_ms, backoff_cap_ms;
    uint64_t start_timeout_ms, stop_timeout_ms;
    int stop_signal;
    uint64_t heartbeat_interval_ms, heartbeat_timeout_ms;
    char depends_on_raw[WD_CONF_VALUE_MAX + 1]; /* comma/space separated */
    int n_deps;
    char depends_on[WD_CONF_DEPS_MAX][WD_CONF_NAME_MAX + 1];
    bool required;
    bool autostart;
    int64_t breaker_failures;
    uint64_t breaker_window_ms, breaker_cooldown_ms, breaker_cooldown_max_ms;
    char user[WD_CONF_NAME_MAX + 1];
    char group[WD_CONF_NAME_MAX + 1];
    char directory[WD_CONF_PATH_MAX];
    char environment_raw[WD_CONF_VALUE_MAX + 1]; /* KEY=VAL pairs, space separated */
    int n_env;
    char env[WD_CONF_ENV_MAX][WD_CONF_NAME_MAX + 256 + 2]; /* "KEY=VAL" */
    uint64_t limit_memory; /* bytes of address space; 0 = unlimited */
    uint64_t limit_nofile; /* 0 = inherit */
    uint64_t limit_core;   /* bytes; default 0 (no core files) */
    uint64_t log_ring_lines;
    char file[WD_CONF_PATH_MAX]; /* where the section was declared */
    int line;
} wd_program_conf;

/* Copies a program's settings. Use this, never struct assignment or memcpy:
 * argv points into the struct's own argbuf and must be re-pointed. */
void wd_program_conf_copy(wd_program_conf *dst, const wd_program_conf *src);
/* True when two programs have the same settings (for reload: restart only
 * what changed). Where a section was declared (file, line) is not compared. */
bool wd_program_conf_equal(const wd_program_conf *a, const wd_program_conf *b);

typedef struct {
    char run_dir[WD_CONF_PATH_MAX];
    int log_level; /* wd_log_level */
    uint64_t log_line_max;     /* bytes; longer worker lines are cut and marked */
    uint64_t log_ring_lines;   /* default ring size per worker */
    uint64_t shutdown_timeout_ms;
    char control_mode[8]; /* octal, e.g. "0600" */
    int n_programs;
    wd_program_conf programs[WD_CONF_PROGRAMS_MAX];
} wd_supervisor_conf;

/* Errors collected while loading, each "file:line: message" (or
 * "VARIABLE: message" for an environment override). */
typedef struct {
    int n;
    char msg[WD_CONF_ERRORS_MAX][WD_CONF_ERROR_LEN];
} wd_conf_errors;

typedef struct wd_conf wd_conf; /* raw entries of one file; owned by the caller */

/* Reads path (and the environment overrides from envp, NULL = environ) into
 * raw entries. Returns 0, or a negative error with errs filled; *out is set
 * either way when the file could be read and must be freed with wd_conf_free.
 * Checked here: syntax, line length, section names, duplicate sections and
 * keys. Unknown sections and keys are found when tables are applied. errs is
 * reset by wd_conf_read and wd_conf_load_supervisor and appended to by
 * wd_conf_apply_section; it may be NULL. */
int wd_conf_read(const char *path, char *const *envp, wd_conf **out, wd_conf_errors *errs);
void wd_conf_free(wd_conf *conf);
const char *wd_conf_path(const wd_conf *conf);
size_t wd_conf_n_entries(const wd_conf *conf);
wd_conf_entry *wd_conf_entry_at(wd_conf *conf, size_t i);

/* Applies a typed table to one section: defaults first, then the entries of
 * that section. Unknown keys in the section are errors. Returns 0 or WD_ECONFIG. */
int wd_conf_apply_section(wd_conf *conf, const char *section, const wd_conf_field *table,
                          size_t n_fields, void *target, wd_conf_errors *errs);

/* Sections owned by other modules (e.g. "aggregator", "breaker:*") register
 * their tables so check-config validates them too. A trailing '*' matches a
 * prefix. The table must outlive the process (a static const). Call at
 * start-up, before loading (not thread-safe). Returns 0 (also when the same
 * table is registered again), WD_EEXIST (pattern taken by another table or
 * built in), WD_ETOOBIG (WD_CONF_REGISTERED_MAX reached) or WD_EINVAL. */
int wd_conf_register_section(const char *pattern, const wd_conf_field *table, size_t n_fields,
                             size_t target_size);

/* Loads everything the supervisor needs and validates it: unknown sections and
 * keys, bad values, missing command, unknown or cyclic depends_on, duplicate
 * names, heartbeat_timeout <= heartbeat_interval. Returns 0 or WD_ECONFIG
 * (or WD_ENOMEM), with every error in errs, sorted by line (environment
 * overrides last). out is zeroed first; after an error its contents are
 * partial and must not be used. A section registered by another module is
 * checked against its table; any other unknown section is an error. */
int wd_conf_load_supervisor(const char *path, char *const *envp, wd_supervisor_conf *out,
                            wd_conf_errors *errs);

/* Parsers used by the table, exposed for tests and for other modules. Each
 * returns 0 or WD_EINVAL/WD_ERANGE. */
int wd_parse_duration_ms(const char *s, uint64_t *out_ms);
int wd_parse_size(const char *s, uint64_t *out_bytes);
int wd_parse_bool(const char *s, bool *out);
int wd_parse_int(const char *s, int64_t *out);
int wd_parse_signal(const char *s, int *out);
const char *wd_signal_name(int sig); /* "TERM"; "?" when unknown */
/* Splits a command line into argv (quotes and backslashes honoured, as in
 * sh: '...' is literal, "..." honours \\ \" \$ \` escapes, a backslash outside
 * quotes escapes any character). argv needs argv_max + 1 slots; argv[*argc]
 * is NULL; words are stored in buf. Returns 0, WD_EINVAL (unterminated quote
 * or trailing backslash) or WD_ERANGE (more than argv_max words, or buf too
 * small; buflen >= strlen(cmd) + 1 always suffices). */
int wd_split_command(const char *cmd, char *buf, size_t buflen, char **argv, int argv_max,
                     int *argc);

/* Formats a duration with the largest exact unit ("30s", "10m", "250ms") and
 * a size likewise ("16K", "1M", "300"), so that the parsers read it back.
 * buflen >= WD_CONF_DURATION_STR_MAX always suffices. 0 or WD_ERANGE. */
int wd_format_duration_ms(uint64_t ms, char *buf, size_t buflen);
int wd_format_size(uint64_t bytes, char *buf, size_t buflen);

/* One typed field, for modules that handle values themselves. field_set
 * parses value into target (bounds checked); on error it returns WD_EINVAL or
 * WD_ERANGE and fills why with the message, e.g. "bad duration '10x' for
 * 'stop_timeout' (use ns, us, ms, s, m, h)". field_zero clears the field.
 * field_find looks a key up (case-insensitive) and, when there is none, sets
 * *suggest (may be NULL) to a close key name or NULL. */
int wd_conf_field_set(const wd_conf_field *f, const char *value, void *target, char *why,
                      size_t whylen);
void wd_conf_field_zero(const wd_conf_field *f, void *target);
const wd_conf_field *wd_conf_field_find(const wd_conf_field *table, size_t n_fields,
                                        const char *key, const char **suggest);

/* Describes a field's accepted values for help text: "(10ms..1h)",
 * "(always | on-failure | never)", or "" when unbounded. */
void wd_conf_field_describe(const wd_conf_field *f, char *buf, size_t buflen);

/* The built-in tables ([supervisor], [worker:NAME], [program:NAME]). */
extern const wd_conf_field wd_conf_supervisor_fields[];
extern const size_t wd_conf_supervisor_n_fields;
extern const wd_conf_field wd_conf_worker_fields[];
extern const size_t wd_conf_worker_n_fields;
extern const wd_conf_field wd_conf_program_fields[];
extern const size_t wd_conf_program_n_fields;

/* Copies s into buf for quoting in an error message: cut to
 * WD_CONF_QUOTE_TEXT_MAX characters with "...", control characters as '?'.
 * Returns buf; buf needs WD_CONF_QUOTE_MAX bytes. */
#define WD_CONF_QUOTE_TEXT_MAX 80
#define WD_CONF_QUOTE_MAX (WD_CONF_QUOTE_TEXT_MAX + 4)
const char *wd_conf_quote(const char *s, char *buf, size_t buflen);

/* Checks a [worker:]/[program:] NAME: 1..WD_CONF_NAME_MAX of A-Z a-z 0-9 _ -. */
bool wd_conf_name_valid(const char *name);

/* The derived fields of a program, each from its raw field: argv from
 * command, env from environment_raw, depends_on from depends_on_raw (names
 * separated by commas and/or blanks; repeats dropped). 0, or WD_EINVAL /
 * WD_ERANGE with err filled ("environment: ...", no file:line). */
int wd_program_parse_command(wd_program_conf *p, char *err, size_t errlen);
int wd_program_parse_environment(wd_program_conf *p, char *err, size_t errlen);
int wd_program_parse_depends(wd_program_conf *p, char *err, size_t errlen);

/* Prints the documented defaults of every table (for config/warden.conf docs):
 * stream is a FILE *. [supervisor] is printed live; the [worker:NAME] and
 * [program:NAME] templates and registered sections are commented out, so the
 * output is itself a valid config. */
void wd_conf_print_defaults(void *stream);

#endif
