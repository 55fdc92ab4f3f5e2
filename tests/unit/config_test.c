/* Config module tests: a table of named config files (each its own cmocka
 * test) checked for the exact error messages or the values loaded, then
 * tables of value-parser cases and the smaller APIs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
/* cmocka.h needs the three above first. */
#include <cmocka.h>

#include "config.h"
#include "wd_error.h"
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEST_ERRORS_MAX 6 /* expected messages per case */
#define TEST_ENV_MAX 10
#define TEST_TEXT_MAX (1024 * 1024)

#define TEST_TMP_DIR_MAX 64 /* "/tmp/config_test.XXXXXX" */
static char tmp_dir[TEST_TMP_DIR_MAX];

/* ---- helpers ---- */

static void write_text(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

typedef struct {
    char path[PATH_MAX];
    wd_supervisor_conf *conf; /* heap: the struct is ~2 MB */
    wd_conf_errors *errs;
    int rc;
} loaded;

static loaded *load_bytes(const char *text, size_t len, const char *const *env) {
    static const char *const no_env[] = {NULL};
    loaded *l = calloc(1, sizeof *l);
    assert_non_null(l);
    l->conf = malloc(sizeof *l->conf);
    l->errs = malloc(sizeof *l->errs);
    assert_non_null(l->conf);
    assert_non_null(l->errs);
    snprintf(l->path, sizeof l->path, "%s/demo.conf", tmp_dir);
    write_text(l->path, text, len);
    l->rc = wd_conf_load_supervisor(l->path, (char *const *)(env ? env : no_env), l->conf, l->errs);
    return l;
}

static loaded *load(const char *text, const char *const *env) {
    return load_bytes(text, strlen(text), env);
}

static void loaded_free(loaded *l) {
    free(l->conf);
    free(l->errs);
    free(l);
}

static void dump_errors(const loaded *l) {
    for (int i = 0; i < l->errs->n; i++)
        print_message("    got: %s\n", l->errs->msg[i]);
}

/* Expected message forms: "12: text" is exactly "<path>:12: text"; "~text"
 * is any message containing text; anything else is the exact message. */
static bool error_matches(const loaded *l, const char *want, const char *got) {
    char full[WD_CONF_ERROR_LEN + PATH_MAX];
    if (want[0] == '~')
        return strstr(got, want + 1) != NULL;
    if (want[0] >= '0' && want[0] <= '9') {
        snprintf(full, sizeof full, "%s:%s", l->path, want);
        return strcmp(full, got) == 0;
    }
    if (strncmp(want, "FILE: ", 6) == 0) {
        snprintf(full, sizeof full, "%s: %s", l->path, want + 6);
        return strcmp(full, got) == 0;
    }
    return strcmp(want, got) == 0;
}

static void expect_error(const loaded *l, const char *want) {
    for (int i = 0; i < l->errs->n; i++)
        if (error_matches(l, want, l->errs->msg[i]))
            return;
    dump_errors(l);
    fail_msg("no error matching '%s'", want);
}

static const wd_program_conf *prog(const wd_supervisor_conf *c, const char *name) {
    for (int i = 0; i < c->n_programs; i++)
        if (strcmp(c->programs[i].name, name) == 0)
            return &c->programs[i];
    fail_msg("no program '%s'", name);
    return NULL;
}

/* ---- the table of config files ---- */

typedef struct {
    const char *name;
    const char *ini;
    int rc;
    int n_errors; /* -1: not checked */
    const char *errors[TEST_ERRORS_MAX];
    const char *env[TEST_ENV_MAX]; /* NULL-terminated */
    void (*check)(const wd_supervisor_conf *c);
} conf_case;

static void check_defaults(const wd_supervisor_conf *c) {
    assert_string_equal(c->run_dir, "/run/warden");
    assert_int_equal(c->log_level, 1 /* info */);
    assert_int_equal(c->log_line_max, 16384);
    assert_int_equal(c->log_ring_lines, 1000);
    assert_int_equal(c->shutdown_timeout_ms, 30000);
    assert_string_equal(c->control_mode, "0600");
    assert_int_equal(c->n_programs, 2);
    const wd_program_conf *p = prog(c, "p");
    assert_false(p->is_worker);
    assert_int_equal(p->argc, 1);
    assert_string_equal(p->argv[0], "/bin/true");
    assert_null(p->argv[1]);
    assert_int_equal(p->restart, WD_RESTART_ALWAYS);
    assert_int_equal(p->min_uptime_ms, 10000);
    assert_int_equal(p->backoff_base_ms, 100);
    assert_int_equal(p->backoff_cap_ms, 30000);
    assert_int_equal(p->start_timeout_ms, 10000);
    assert_int_equal(p->stop_timeout_ms, 5000);
    assert_int_equal(p->stop_signal, SIGTERM);
    assert_int_equal(p->heartbeat_interval_ms, 1000);
    assert_int_equal(p->heartbeat_timeout_ms, 5000);
    assert_int_equal(p->n_deps, 0);
    assert_false(p->required);
    assert_true(p->autostart);
    assert_int_equal(p->breaker_failures, 5);
    assert_int_equal(p->breaker_window_ms, 60000);
    assert_int_equal(p->breaker_cooldown_ms, 30000);
    assert_int_equal(p->breaker_cooldown_max_ms, 600000);
    assert_string_equal(p->user, "");
    assert_string_equal(p->group, "");
    assert_string_equal(p->directory, "");
    assert_int_equal(p->n_env, 0);
    assert_int_equal(p->limit_memory, 0);
    assert_int_equal(p->limit_nofile, 0);
    assert_int_equal(p->limit_core, 0);
    assert_int_equal(p->log_ring_lines, 1000);
    assert_int_equal(p->line, 1);
    const wd_program_conf *w = prog(c, "w");
    assert_true(w->is_worker);
    assert_true(w->required);
    assert_int_equal(w->line, 3);
}

static void check_all_keys(const wd_supervisor_conf *c) {
    assert_string_equal(c->run_dir, "/tmp/wd");
    assert_int_equal(c->log_level, 0);
    assert_int_equal(c->log_line_max, 1024 * 1024);
    assert_int_equal(c->log_ring_lines, 10);
    assert_int_equal(c->shutdown_timeout_ms, 2 * 60000);
    assert_string_equal(c->control_mode, "660");
    const wd_program_conf *p = prog(c, "agg");
    assert_int_equal(p->argc, 3);
    assert_string_equal(p->argv[2], "two words");
    assert_int_equal(p->restart, WD_RESTART_ON_FAILURE);
    assert_int_equal(p->min_uptime_ms, 1);
    assert_int_equal(p->backoff_base_ms, 250);
    assert_int_equal(p->backoff_cap_ms, 3600000);
    assert_int_equal(p->start_timeout_ms, 10);
    assert_int_equal(p->stop_timeout_ms, 15000);
    assert_int_equal(p->stop_signal, SIGINT);
    assert_int_equal(p->heartbeat_interval_ms, 10);
    assert_int_equal(p->heartbeat_timeout_ms, 20);
    assert_int_equal(p->n_deps, 2);
    assert_string_equal(p->depends_on[0], "db");
    assert_string_equal(p->depends_on[1], "cache");
    assert_false(p->required);
    assert_false(p->autostart);
    assert_int_equal(p->breaker_failures, 1000);
    assert_int_equal(p->breaker_window_ms, 1000);
    assert_int_equal(p->breaker_cooldown_ms, 10);
    assert_int_equal(p->breaker_cooldown_max_ms, 24 * 3600000ULL);
    assert_string_equal(p->user, "nobody");
    assert_string_equal(p->group, "1000");
    assert_string_equal(p->directory, "/var/lib/agg");
    assert_int_equal(p->n_env, 3);
    assert_string_equal(p->env[0], "A=1");
    assert_string_equal(p->env[1], "B=two words");
    assert_string_equal(p->env[2], "C=say \"hi\"");
    assert_int_equal(p->limit_memory, 64ULL * 1024 * 1024);
    assert_int_equal(p->limit_nofile, 4096);
    assert_int_equal(p->limit_core, 1024ULL * 1024 * 1024);
    assert_int_equal(p->log_ring_lines, 100000);
}

static void check_indented(const wd_supervisor_conf *c) {
    const wd_program_conf *p = prog(c, "a");
    assert_int_equal(p->argc, 2);
    assert_string_equal(p->argv[1], "x");
    assert_int_equal(p->restart, WD_RESTART_NEVER);
    assert_int_equal(p->stop_signal, SIGKILL);
}

static void check_bom_crlf(const wd_supervisor_conf *c) {
    const wd_program_conf *p = prog(c, "a");
    assert_int_equal(p->argc, 1);
    assert_string_equal(p->argv[0], "/bin/true");
    assert_int_equal(p->restart, WD_RESTART_NEVER);
}

static void check_env_override(const wd_supervisor_conf *c) {
    assert_string_equal(c->run_dir, "/tmp/other");
    const wd_program_conf *p = prog(c, "agg");
    assert_int_equal(p->heartbeat_timeout_ms, 9000);
    assert_int_equal(p->restart, WD_RESTART_ALWAYS); /* file said never */
    assert_int_equal(prog(c, "a-b")->stop_signal, SIGKILL);
}

static void check_ring_inherit(const wd_supervisor_conf *c) {
    assert_int_equal(prog(c, "a")->log_ring_lines, 500);
    assert_int_equal(prog(c, "b")->log_ring_lines, 20);
    assert_int_equal(prog(c, "c")->log_ring_lines, 500); /* empty value = default */
}

static void check_long_section(const wd_supervisor_conf *c) {
    /* libinih alone would cut the section name at 49 bytes. */
    assert_int_equal(c->n_programs, 1);
    assert_int_equal(strlen(c->programs[0].name), 63);
    assert_string_equal(c->programs[0].argv[0], "/bin/true");
}

static void check_deps(const wd_supervisor_conf *c) {
    const wd_program_conf *p = prog(c, "e");
    assert_int_equal(p->n_deps, 4);
    assert_string_equal(p->depends_on[0], "a");
    assert_string_equal(p->depends_on[3], "d");
}

static void check_sizes(const wd_supervisor_conf *c) {
    assert_int_equal(prog(c, "a")->limit_memory, 64ULL << 20);
    assert_int_equal(prog(c, "b")->limit_memory, 64ULL << 20);
    assert_int_equal(prog(c, "c")->limit_memory, 1ULL << 30);
    assert_int_equal(prog(c, "c")->limit_core, 1024);
}

static void check_inline_comment(const wd_supervisor_conf *c) {
    const wd_program_conf *p = prog(c, "a");
    assert_int_equal(p->argc, 2);
    assert_string_equal(p->argv[1], "a;b");
    assert_int_equal(p->stop_timeout_ms, 3000);
}

#define PROG_A "[program:a]\ncommand = /bin/true\n"

static const conf_case cases[] = {
    {"defaults", "[program:p]\ncommand = /bin/true\n[worker:w]\ncommand = /bin/true\n",
     .n_errors = 0, .check = check_defaults},
    {"every key set",
     "[supervisor]\nrun_dir = /tmp/wd\nlog_level = debug\nlog_line_max = 1M\nlog_ring_lines = 10\n"
     "shutdown_timeout = 2m\ncontrol_mode = 660\n"
     "[worker:agg]\ncommand = /bin/agg --x \"two words\"\nrestart = on-failure\nmin_uptime = 1\n"
     "backoff_base = 250ms\nbackoff_cap = 1h\nstart_timeout = 10000us\nstop_timeout = 15s\n"
     "stop_signal = SIGINT\nheartbeat_interval = 10ms\nheartbeat_timeout = 20ms\n"
     "depends_on = db, cache\nrequired = no\nautostart = off\nbreaker_failures = 1000\n"
     "breaker_window = 1s\nbreaker_cooldown = 10ms\nbreaker_cooldown_max = 24h\nuser = nobody\n"
     "group = 1000\ndirectory = /var/lib/agg\n"
     "environment = A=1 B=\"two words\" C=\"say \\\"hi\\\"\"\nlimit_memory = 64M\n"
     "limit_nofile = 4096\nlimit_core = 1G\nlog_ring_lines = 100000\n"
     "[program:db]\ncommand = /bin/db\n[program:cache]\ncommand = /bin/cache\n",
     .n_errors = 0, .check = check_all_keys},
    {"empty file", "", .n_errors = 0},
    {"comments only", "; one\n# two\n\n   ; three\n", .n_errors = 0},
    {"unknown key", "[worker:agg]\ncommand = /bin/agg\nheartbeat_timout = 3s\n", .rc = WD_ECONFIG,
     .n_errors = 1,
     .errors =
         {"3: unknown key 'heartbeat_timout' in [worker:agg] (did you mean 'heartbeat_timeout'?)"}},
    {"unknown key far from any", "[worker:agg]\ncommand = /bin/agg\nzzz = 1\n", .rc = WD_ECONFIG,
     .n_errors = 1, .errors = {"3: unknown key 'zzz' in [worker:agg]"}},
    {"bad duration", "[worker:agg]\ncommand = x\n\n\n\n\nstop_timeout = 10x\n", .rc = WD_ECONFIG,
     .n_errors = 1,
     .errors = {"7: bad duration '10x' for 'stop_timeout' (use ns, us, ms, s, m, h)"}},
    {"missing command", "\n\n[worker:agg]\nrestart = never\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"3: [worker:agg]: missing required key 'command'"}},
    {"empty section missing command", "[program:x]\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"1: [program:x]: missing required key 'command'"}},
    {"empty command", "[program:x]\ncommand =\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"2: command is empty"}},
    {"unknown dependency", PROG_A "depends_on = b db\n[program:b]\ncommand = x\n", .rc = WD_ECONFIG,
     .n_errors = 1, .errors = {"3: depends_on: unknown program 'db'"}},
    {"dependency cycle",
     "[worker:agg]\ncommand = x\ndepends_on = mon\n[worker:mon]\ncommand = y\ndepends_on = agg\n",
     .rc = WD_ECONFIG, .n_errors = 1, .errors = {"3: depends_on: cycle agg -> mon -> agg"}},
    {"longer cycle behind a tail",
     "[program:t]\ncommand = x\ndepends_on = a\n[program:a]\ncommand = x\ndepends_on = b\n"
     "[program:b]\ncommand = x\ndepends_on = c\n[program:c]\ncommand = x\ndepends_on = a\n",
     .rc = WD_ECONFIG, .n_errors = 1, .errors = {"6: depends_on: cycle a -> b -> c -> a"}},
    {"self dependency", PROG_A "depends_on = a\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"3: depends_on: cycle a -> a"}},
    {"diamond is no cycle",
     "[program:a]\ncommand = x\ndepends_on = b c\n[program:b]\ncommand = x\ndepends_on = d\n"
     "[program:c]\ncommand = x\ndepends_on = d\n[program:d]\ncommand = x\n",
     .n_errors = 0},
    {"depends_on separators",
     "[program:e]\ncommand = x\ndepends_on = a, b c,,d ,a\n[program:a]\ncommand = x\n"
     "[program:b]\ncommand = x\n[program:c]\ncommand = x\n[program:d]\ncommand = x\n",
     .n_errors = 0, .check = check_deps},
    {"depends_on bad name", PROG_A "depends_on = ok, b@d\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"3: depends_on: bad name 'b@d' (1..63 characters of A-Z a-z 0-9 _ -)"}},
    {"too many dependencies",
     PROG_A "depends_on = a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 a11 a12 a13 a14 a15 a16 a17\n",
     .rc = WD_ECONFIG, .n_errors = 1, .errors = {"3: depends_on: more than 16 names"}},
    {"duplicate section", "[worker:agg]\ncommand = x\n[worker:agg]\ncommand = y\nbogus = 1\n",
     .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"3: duplicate section [worker:agg] (first at line 1)"}},
    {"same name worker and program", "[worker:agg]\ncommand = x\n[program:agg]\ncommand = y\n",
     .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"3: [program:agg]: name 'agg' already used by [worker:agg] at line 1"}},
    {"duplicate key", PROG_A "restart = never\nrestart = always\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"4: duplicate key 'restart' in [program:a] (first at line 3)"}},
    {"unknown section", PROG_A "[nope]\nx = 1\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"3: unknown section [nope]"}},
    {"section kind without name", "[worker]\ncommand = x\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"1: unknown section [worker] (did you mean [worker:NAME]?)"}},
    {"registered section", "[breaker:redis]\nfailures = 3\nratio = 0.5\n", .n_errors = 0},
    {"registered section checked",
     "[breaker:redis]\nfailurez = 3\nratio = 2\n[breaker:pg]\nratio = 0.1\n", .rc = WD_ECONFIG,
     .n_errors = 3,
     .errors = {"2: unknown key 'failurez' in [breaker:redis] (did you mean 'failures'?)",
                "3: value '2' for 'ratio' out of bounds (0..1)",
                "4: [breaker:pg]: missing required key 'failures'"}},
    {"log_line_max below bounds", "[supervisor]\nlog_line_max = 10\n", .rc = WD_ECONFIG,
     .n_errors = 1, .errors = {"2: value '10' for 'log_line_max' out of bounds (256..1M)"}},
    {"log_line_max above bounds", "[supervisor]\nlog_line_max = 2M\n", .rc = WD_ECONFIG,
     .n_errors = 1, .errors = {"2: value '2M' for 'log_line_max' out of bounds (256..1M)"}},
    {"bounds of an int and a duration",
     PROG_A "breaker_failures = 0\nheartbeat_interval = 5ms\nlog_ring_lines = 9\n",
     .rc = WD_ECONFIG, .n_errors = -1,
     .errors = {"3: value '0' for 'breaker_failures' out of bounds (1..1000)",
                "4: value '5ms' for 'heartbeat_interval' out of bounds (10ms..10m)",
                "5: value '9' for 'log_ring_lines' out of bounds (10..100000)"}},
    {"duration overflow", PROG_A "stop_timeout = 99999999999999999999h\n", .rc = WD_ECONFIG,
     .n_errors = 1,
     .errors = {"3: value '99999999999999999999h' for 'stop_timeout' out of bounds (10ms..1h)"}},
    {"bad integer", PROG_A "limit_nofile = lots\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"3: bad integer 'lots' for 'limit_nofile'"}},
    {"bad size", PROG_A "limit_memory = 64X\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"3: bad size '64X' for 'limit_memory' (use K, M, G; a bare number is bytes)"}},
    {"bad boolean", PROG_A "autostart = maybe\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors =
         {"3: bad boolean 'maybe' for 'autostart' (use yes, no, true, false, on, off, 1, 0)"}},
    {"bad enum", PROG_A "restart = sometimes\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"3: bad value 'sometimes' for 'restart' (use always, on-failure, never)"}},
    {"bad signal", PROG_A "stop_signal = SIGFOO\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"3: bad signal 'SIGFOO' for 'stop_signal' (use a name like TERM or SIGTERM, or a "
                "number)"}},
    {"bad log level", "[supervisor]\nlog_level = loud\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"2: bad value 'loud' for 'log_level' (use debug, info, warn, error)"}},
    {"sizes",
     "[program:a]\ncommand = x\nlimit_memory = 64M\n[program:b]\ncommand = x\n"
     "limit_memory = 64MB\n[program:c]\ncommand = x\nlimit_memory = 1GiB\nlimit_core = 1k\n",
     .n_errors = 0, .check = check_sizes},
    {"limit_memory too small", PROG_A "limit_memory = 4K\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"3: limit_memory too small (0 = unlimited, else at least 1M)"}},
    {"heartbeat timeout not above interval",
     PROG_A "heartbeat_interval = 2s\nheartbeat_timeout = 2s\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors =
         {"4: [program:a]: heartbeat_timeout (2s) must be more than heartbeat_interval (2s)"}},
    {"heartbeat interval above default timeout", PROG_A "heartbeat_interval = 6s\n",
     .rc = WD_ECONFIG, .n_errors = 1,
     .errors =
         {"3: [program:a]: heartbeat_timeout (5s) must be more than heartbeat_interval (6s)"}},
    {"backoff cap below base", PROG_A "backoff_base = 1s\nbackoff_cap = 500ms\n", .rc = WD_ECONFIG,
     .n_errors = 1,
     .errors = {"4: [program:a]: backoff_cap (500ms) must be at least backoff_base (1s)"}},
    {"cooldown max below cooldown", PROG_A "breaker_cooldown = 20m\n", .rc = WD_ECONFIG,
     .n_errors = 1,
     .errors =
         {"3: [program:a]: breaker_cooldown_max (10m) must be at least breaker_cooldown (20m)"}},
    {"unparseable lines, all reported",
     PROG_A "garbage\nrestart never\n[program:b]\ncommand = y\nzz\n", .rc = WD_ECONFIG,
     .n_errors = 3,
     .errors = {"3: cannot parse 'garbage' (expected [section] or key = value)",
                "4: cannot parse 'restart never' (expected [section] or key = value)",
                "7: cannot parse 'zz' (expected [section] or key = value)"}},
    {"unreadable line spares missing-key noise", "[program:a]\nkommand /bin/true\n",
     .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"2: cannot parse 'kommand /bin/true' (expected [section] or key = value)"}},
    {"key outside any section", "command = x\n" PROG_A, .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"1: key 'command' outside of any section (add a [section] above it)"}},
    {"missing key name", PROG_A "= 5\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"3: missing key name in '= 5'"}},
    {"header without bracket, its keys skipped", PROG_A "[program:b\ncommand = y\nbogus = 1\n",
     .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"3: section header '[program:b' has no closing ']'"}},
    {"text after header", "[program:a] extra\ncommand = x\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"1: unexpected text 'extra' after [program:a]"}},
    {"comment after header", "[program:a]   ; the a\ncommand = x\n", .n_errors = 0},
    {"bad section name", "[bad name]\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"1: bad section name '[bad name]' (1..71 characters of A-Z a-z 0-9 _ - . :)"}},
    {"bad program name", "[worker:a.b]\ncommand = x\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"1: bad name 'a.b' in [worker:a.b] (1..63 characters of A-Z a-z 0-9 _ -)"}},
    {"empty program name", "[worker:]\ncommand = x\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"1: bad name '' in [worker:] (1..63 characters of A-Z a-z 0-9 _ -)"}},
    {"63-character name",
     "[program:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\ncommand = "
     "/bin/true\n",
     .n_errors = 0, .check = check_long_section},
    {"64-character name",
     "[worker:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\ncommand = x\n",
     .rc = WD_ECONFIG, .n_errors = 1, .errors = {"~bad name 'aaaa"}},
    {"indented keys are keys, not continuations",
     "[program:a]\n  command = /bin/echo x\n\trestart = never\n    stop_signal = 9\n",
     .n_errors = 0, .check = check_indented},
    {"inline comment", PROG_A "stop_timeout = 3s ; three seconds\n", .n_errors = 0},
    {"semicolon inside a word is kept",
     "[program:a]\ncommand = /bin/echo a;b\nstop_timeout = 3s ;x\n", .n_errors = 0,
     .check = check_inline_comment},
    {"byte order mark and CRLF",
     "\xEF\xBB\xBF[program:a]\r\ncommand = /bin/true\r\nrestart = never\r\n", .n_errors = 0,
     .check = check_bom_crlf},
    {"unterminated quote", "[program:a]\ncommand = /bin/sh -c \"echo\n", .rc = WD_ECONFIG,
     .n_errors = 1,
     .errors = {"2: command: unterminated quote or trailing backslash in '/bin/sh -c \"echo'"}},
    {"too many words",
     "[program:a]\ncommand = 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 "
     "27 "
     "28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 "
     "59 60 61 62 63 64 65\n",
     .rc = WD_ECONFIG, .n_errors = 1, .errors = {"2: command: more than 64 words"}},
    {"environment errors",
     "[program:a]\ncommand = x\nenvironment = A=1 1B=2\n[program:b]\ncommand = x\n"
     "environment = A=1 A=2\n[program:c]\ncommand = x\nenvironment = A=\"open\n",
     .rc = WD_ECONFIG, .n_errors = 3,
     .errors =
         {"3: environment: bad entry '1B=2' (expected KEY=VALUE, KEY of A-Z a-z 0-9 _, at most 63 "
          "characters)",
          "6: environment: 'A' set twice",
          "9: environment: unterminated quote or trailing backslash in 'A=\"open'"}},
    {"control_mode", "[supervisor]\ncontrol_mode = 0999\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"2: bad control_mode '0999' (octal permissions, e.g. 0600)"}},
    {"control_mode too long for its field", "[supervisor]\ncontrol_mode = 000600000\n",
     .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"2: value for 'control_mode' too long (9 characters, at most 7)"}},
    {"run_dir relative is allowed", "[supervisor]\nrun_dir = .run/warden\n", .n_errors = 0},
    {"run_dir empty", "[supervisor]\nrun_dir =\n", .rc = WD_ECONFIG, .n_errors = 1,
     .errors = {"2: run_dir is empty"}},
    {"run_dir too long for sockets",
     "[supervisor]\nrun_dir = "
     "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaa\n",
     .rc = WD_ECONFIG, .n_errors = 1,
     .errors =
         {"2: run_dir too long (103 bytes): its socket paths must fit the 107 bytes of a unix "
          "socket address"}},
    {"directory and accounts", PROG_A "directory = tmp\nuser = a b\ngroup = -x\n", .rc = WD_ECONFIG,
     .n_errors = 3,
     .errors = {"3: directory 'tmp' must be an absolute path",
                "4: bad user 'a b' (a user name or uid)",
                "5: bad group '-x' (a group name or gid)"}},
    {"worker socket path too long",
     "[supervisor]\nrun_dir = /tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
     "[worker:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb]\ncommand = x\n",
     .rc = WD_ECONFIG, .n_errors = 1, .errors = {"~socket path /tmp/aaa"}},
    {"log_ring_lines inherited",
     "[supervisor]\nlog_ring_lines = 500\n[program:a]\ncommand = x\n[program:b]\ncommand = x\n"
     "log_ring_lines = 20\n[program:c]\ncommand = x\nlog_ring_lines =\n",
     .n_errors = 0, .check = check_ring_inherit},
    {"environment overrides",
     "[supervisor]\nrun_dir = /tmp/wd\n[worker:agg]\ncommand = x\nrestart = never\n"
     "[program:a-b]\ncommand = y\n",
     .env = {"WARDEN_SUPERVISOR_RUN_DIR=/tmp/other", "WARDEN_WORKER_AGG_HEARTBEAT_TIMEOUT=9s",
             "WARDEN_WORKER_AGG_RESTART=always", "WARDEN_PROGRAM_A_B_STOP_SIGNAL=KILL", NULL},
     .n_errors = 0, .check = check_env_override},
    {"unrelated WARDEN_ variables ignored", PROG_A,
     .env = {"WARDEN_NAME=agg", "WARDEN_CONFIG=/etc/x", "WARDEN_SOCKET=/run/s",
             "WARDEN_RUN_DIR=rel", "WARDEN_WORKER_NOPE_COMMAND=x", "WARDEN_PROGRAM_A_NOPE=1",
             "WARDEN_SUPERVISOR=1", "PATH=/bin"},
     .n_errors = 0},
    {"environment override errors name the variable", "[worker:agg]\ncommand = x\n",
     .env = {"WARDEN_WORKER_AGG_STOP_TIMEOUT=10x", "WARDEN_SUPERVISOR_LOG_LINE_MAX=1", NULL},
     .rc = WD_ECONFIG, .n_errors = 2,
     .errors =
         {"WARDEN_WORKER_AGG_STOP_TIMEOUT: bad duration '10x' for 'stop_timeout' (use ns, us, ms, "
          "s, "
          "m, h)",
          "WARDEN_SUPERVISOR_LOG_LINE_MAX: value '1' for 'log_line_max' out of bounds (256..1M)"}},
};

static void run_case(void **state) {
    const conf_case *c = *state;
    loaded *l = load(c->ini, c->env[0] ? c->env : NULL);
    if (l->rc != c->rc || (c->n_errors >= 0 && l->errs->n != c->n_errors)) {
        dump_errors(l);
        fail_msg("rc %d (want %d), %d errors (want %d)", l->rc, c->rc, l->errs->n, c->n_errors);
    }
    for (int i = 0; i < TEST_ERRORS_MAX && c->errors[i]; i++)
        expect_error(l, c->errors[i]);
    if (c->rc == 0 && c->check)
        c->check(l->conf);
    loaded_free(l);
}

/* ---- cases that need generated input ---- */

static void test_error_order(void **state) {
    (void)state;
    static const char *const env[] = {"WARDEN_PROGRAM_A_AUTOSTART=perhaps", NULL};
    loaded *l = load("[program:a]\ncommand = x\nrestart = no\nbogus\n[nope]\n", env);
    assert_int_equal(l->errs->n, 4);
    assert_true(error_matches(l, "3: bad value 'no' for 'restart' (use always, on-failure, never)",
                              l->errs->msg[0]));
    assert_true(error_matches(l, "~:4: cannot parse", l->errs->msg[1]));
    assert_true(error_matches(l, "5: unknown section [nope]", l->errs->msg[2]));
    assert_true(error_matches(l, "~WARDEN_PROGRAM_A_AUTOSTART: bad boolean", l->errs->msg[3]));
    loaded_free(l);
}

static void test_long_command_line(void **state) {
    (void)state;
    /* Debian's libinih has a 200-byte line buffer by default: a 1000-byte
     * command must arrive whole, not cut. */
    char *text = malloc(TEST_TEXT_MAX);
    assert_non_null(text);
    int n = snprintf(text, TEST_TEXT_MAX, "[program:a]\ncommand = /bin/echo ");
    memset(text + n, 'x', 1000);
    n += 1000;
    n += snprintf(text + n, (size_t)(TEST_TEXT_MAX - n), " end\nrestart = never\n");
    loaded *l = load(text, NULL);
    if (l->rc != 0)
        dump_errors(l);
    assert_int_equal(l->rc, 0);
    const wd_program_conf *p = prog(l->conf, "a");
    assert_int_equal(p->argc, 3);
    assert_int_equal(strlen(p->argv[1]), 1000);
    assert_string_equal(p->argv[2], "end");
    assert_int_equal(p->restart, WD_RESTART_NEVER);
    loaded_free(l);
    free(text);
}

static void test_too_long_line(void **state) {
    (void)state;
    char *text = malloc(TEST_TEXT_MAX);
    assert_non_null(text);
    int n = snprintf(text, TEST_TEXT_MAX, "[program:a]\ncommand = /bin/echo ");
    memset(text + n, 'x', WD_CONF_LINE_MAX);
    n += WD_CONF_LINE_MAX;
    n += snprintf(text + n, (size_t)(TEST_TEXT_MAX - n), "\nrestart = bogus\n;");
    memset(text + n, 'c', 2 * WD_CONF_LINE_MAX); /* a long comment is only a comment */
    n += 2 * WD_CONF_LINE_MAX;
    snprintf(text + n, (size_t)(TEST_TEXT_MAX - n), "\n");
    loaded *l = load(text, NULL);
    assert_int_equal(l->rc, WD_ECONFIG);
    /* The long line is named and rejected; the next line still has its own
     * number; the section does not also claim command is missing. */
    assert_int_equal(l->errs->n, 2);
    expect_error(l, "~:2: line too long (8212 bytes, at most 8192): 'command = /bin/echo xxx");
    expect_error(l, "3: bad value 'bogus' for 'restart' (use always, on-failure, never)");
    loaded_free(l);
    free(text);
}

static void test_value_too_long(void **state) {
    (void)state;
    char *text = malloc(TEST_TEXT_MAX);
    assert_non_null(text);
    int n = snprintf(text, TEST_TEXT_MAX, "[program:a]\ncommand = x\ndirectory = /");
    memset(text + n, 'd', 5000);
    n += 5000;
    snprintf(text + n, (size_t)(TEST_TEXT_MAX - n), "\n");
    loaded *l = load(text, NULL);
    assert_int_equal(l->errs->n, 1);
    expect_error(l, "3: value of 'directory' too long (5001 characters, at most 4095)");
    loaded_free(l);
    free(text);
}

static void test_nul_byte(void **state) {
    (void)state;
    static const char text[] = "[program:a]\ncommand = /bin/true\nrestart = ne\0ver\n";
    loaded *l = load_bytes(text, sizeof text - 1, NULL);
    assert_int_equal(l->rc, WD_ECONFIG);
    assert_int_equal(l->errs->n, 1);
    expect_error(l, "3: NUL byte in line: 'restart = ne'");
    loaded_free(l);
}

static void test_error_cap(void **state) {
    (void)state;
    char *text = malloc(TEST_TEXT_MAX);
    assert_non_null(text);
    int n = snprintf(text, TEST_TEXT_MAX, "[program:a]\ncommand = x\n");
    for (int i = 0; i < 100; i++)
        n += snprintf(text + n, (size_t)(TEST_TEXT_MAX - n), "bad%d = 1\n", i);
    loaded *l = load(text, NULL);
    assert_int_equal(l->rc, WD_ECONFIG);
    assert_int_equal(l->errs->n, WD_CONF_ERRORS_MAX);
    expect_error(l, "3: unknown key 'bad0' in [program:a]");
    expect_error(l, "FILE: too many errors, only the first 63 are listed");
    assert_true(error_matches(l, "FILE: too many errors, only the first 63 are listed",
                              l->errs->msg[WD_CONF_ERRORS_MAX - 1]));
    loaded_free(l);
    free(text);
}

static void test_too_many_programs(void **state) {
    (void)state;
    char *text = malloc(TEST_TEXT_MAX);
    assert_non_null(text);
    int n = 0;
    for (int i = 0; i <= WD_CONF_PROGRAMS_MAX; i++)
        n += snprintf(text + n, (size_t)(TEST_TEXT_MAX - n), "[program:p%d]\ncommand = x\n", i);
    loaded *l = load(text, NULL);
    assert_int_equal(l->rc, WD_ECONFIG);
    assert_int_equal(l->errs->n, 1);
    expect_error(l, "129: [program:p64]: too many programs (at most 64)");
    assert_int_equal(l->conf->n_programs, WD_CONF_PROGRAMS_MAX);
    loaded_free(l);
    free(text);
}

static void test_missing_file(void **state) {
    (void)state;
    wd_supervisor_conf *c = malloc(sizeof *c);
    wd_conf_errors *e = malloc(sizeof *e);
    char *const env[] = {NULL};
    assert_int_equal(wd_conf_load_supervisor("/nonexistent/warden.conf", env, c, e), WD_ECONFIG);
    assert_int_equal(e->n, 1);
    assert_string_equal(e->msg[0],
                        "/nonexistent/warden.conf: cannot open: No such file or directory");
    free(c);
    free(e);
}

/* ---- raw entries, apply_section, registration ---- */

typedef struct {
    char name[16];
    int64_t count;
    uint64_t wait_ms, bytes;
    bool on;
    int mode, sig;
    double ratio;
} custom_conf;

static const char *const mode_names[] = {"fast", "safe", NULL};
static const wd_conf_field custom_table[] = {
    {.name = "name",
     .type = WD_CONF_STRING,
     .offset = offsetof(custom_conf, name),
     .size = sizeof(((custom_conf *)0)->name),
     .def = NULL,
     .help = "required"},
    {.name = "count",
     .type = WD_CONF_INT,
     .offset = offsetof(custom_conf, count),
     .min = -5,
     .max = 5,
     .def = "-2"},
    {.name = "wait",
     .type = WD_CONF_DURATION,
     .offset = offsetof(custom_conf, wait_ms),
     .def = "1m"},
    {.name = "bytes", .type = WD_CONF_SIZE, .offset = offsetof(custom_conf, bytes), .def = "2K"},
    {.name = "on", .type = WD_CONF_BOOL, .offset = offsetof(custom_conf, on), .def = "true"},
    {.name = "mode",
     .type = WD_CONF_ENUM,
     .offset = offsetof(custom_conf, mode),
     .names = mode_names,
     .def = "safe"},
    {.name = "sig", .type = WD_CONF_SIGNAL, .offset = offsetof(custom_conf, sig), .def = "HUP"},
    {.name = "ratio",
     .type = WD_CONF_DOUBLE,
     .offset = offsetof(custom_conf, ratio),
     .dmin = 0,
     .dmax = 1,
     .def = "0.25"},
};

static const wd_conf_field breaker_table[] = {
    {.name = "failures",
     .type = WD_CONF_INT,
     .offset = offsetof(custom_conf, count),
     .min = 1,
     .max = 100,
     .def = NULL},
    {.name = "ratio",
     .type = WD_CONF_DOUBLE,
     .offset = offsetof(custom_conf, ratio),
     .dmin = 0,
     .dmax = 1,
     .def = "0.5"},
};

static void test_apply_section(void **state) {
    (void)state;
    char path[PATH_MAX];
    wd_conf *conf = NULL;
    wd_conf_errors *e = malloc(sizeof *e);
    custom_conf cc;
    char *const env[] = {"WARDEN_CUSTOM_COUNT=4", "WARDEN_CUSTOM_NAME=from-env", NULL};
    snprintf(path, sizeof path, "%s/custom.conf", tmp_dir);
    static const char text[] = "[custom]\nname = n\nmode = FAST\nratio = 0.75\n[other]\nname = 1\n";
    write_text(path, text, sizeof text - 1);
    assert_int_equal(wd_conf_register_section("custom", custom_table, 8, sizeof cc), 0);
    assert_int_equal(wd_conf_read(path, env, &conf, e), 0);
    assert_string_equal(wd_conf_path(conf), path);
    /* Three from the file's [custom] and one from [other], then the overrides. */
    assert_int_equal(wd_conf_n_entries(conf), 6);
    wd_conf_entry *en = wd_conf_entry_at(conf, 4);
    assert_string_equal(en->key, "count");
    assert_string_equal(en->file, "WARDEN_CUSTOM_COUNT");
    assert_int_equal(en->line, 0);
    assert_int_equal(wd_conf_entry_at(conf, 1)->line, 3);
    assert_null(wd_conf_entry_at(conf, 6));
    memset(&cc, 0xA5, sizeof cc);
    assert_int_equal(wd_conf_apply_section(conf, "custom", custom_table, 8, &cc, e), 0);
    assert_string_equal(cc.name, "from-env");
    assert_int_equal(cc.count, 4);
    assert_int_equal(cc.wait_ms, 60000);
    assert_int_equal(cc.bytes, 2048);
    assert_true(cc.on);
    assert_int_equal(cc.mode, 0);
    assert_int_equal(cc.sig, SIGHUP);
    assert_true(cc.ratio == 0.75);
    assert_true(wd_conf_entry_at(conf, 0)->used);
    /* A section the file lacks: defaults, and the required key is missing. */
    assert_int_equal(wd_conf_apply_section(conf, "absent", custom_table, 8, &cc, e), WD_ECONFIG);
    assert_int_equal(e->n, 1);
    char want[WD_CONF_ERROR_LEN + PATH_MAX];
    snprintf(want, sizeof want, "%s: [absent]: missing required key 'name'", path);
    assert_string_equal(e->msg[0], want);
    wd_conf_free(conf);
    free(e);
}

static void test_register_section(void **state) {
    (void)state;
    assert_int_equal(wd_conf_register_section("breaker:*", breaker_table, 2, sizeof(custom_conf)),
                     0);
    assert_int_equal(wd_conf_register_section("breaker:*", breaker_table, 2, sizeof(custom_conf)),
                     0);
    assert_int_equal(wd_conf_register_section("breaker:*", custom_table, 8, sizeof(custom_conf)),
                     WD_EEXIST);
    assert_int_equal(wd_conf_register_section("worker:*", custom_table, 8, sizeof(custom_conf)),
                     WD_EEXIST);
    assert_int_equal(wd_conf_register_section("supervisor", custom_table, 8, sizeof(custom_conf)),
                     WD_EEXIST);
    assert_int_equal(wd_conf_register_section("a*b", custom_table, 8, sizeof(custom_conf)),
                     WD_EINVAL);
    assert_int_equal(wd_conf_register_section("", custom_table, 8, sizeof(custom_conf)), WD_EINVAL);
    assert_int_equal(wd_conf_register_section("x", NULL, 8, sizeof(custom_conf)), WD_EINVAL);
    /* The fields must fit the target size the section is checked with. */
    assert_int_equal(wd_conf_register_section("small", custom_table, 8, 8), WD_EINVAL);
}

/* ---- value parsers ---- */

typedef struct {
    const char *in;
    int rc;
    uint64_t want;
} u64_case;

static void test_parse_duration(void **state) {
    (void)state;
    static const u64_case t[] = {
        {"250ms", 0, 250},
        {"10s", 0, 10000},
        {"5m", 0, 300000},
        {"2h", 0, 7200000},
        {"7", 0, 7},
        {"0", 0, 0},
        {"0ns", 0, 0},
        {"1ns", 0, 1},
        {"1500us", 0, 2},
        {"1000us", 0, 1},
        {"007s", 0, 7000},
        {"", WD_EINVAL, 0},
        {"10x", WD_EINVAL, 0},
        {"-5", WD_EINVAL, 0},
        {"+5", WD_EINVAL, 0},
        {" 5", WD_EINVAL, 0},
        {"5 s", WD_EINVAL, 0},
        {"1.5s", WD_EINVAL, 0},
        {"s", WD_EINVAL, 0},
        {"0x10", WD_EINVAL, 0},
        {"5S", WD_EINVAL, 0},
        {"5sec", WD_EINVAL, 0},
        {"99999999999999999999", WD_ERANGE, 0},
        {"9999999999999999h", WD_ERANGE, 0},
        {"18446744073709551615", 0, UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint64_t v = 12345;
        int rc = wd_parse_duration_ms(t[i].in, &v);
        if (rc != t[i].rc || (rc == 0 && v != t[i].want))
            fail_msg("duration '%s': rc %d value %llu", t[i].in, rc, (unsigned long long)v);
    }
}

static void test_parse_size(void **state) {
    (void)state;
    static const u64_case t[] = {
        {"64M", 0, 64ULL << 20},
        {"16K", 0, 16384},
        {"1G", 0, 1ULL << 30},
        {"300", 0, 300},
        {"0", 0, 0},
        {"64MB", 0, 64ULL << 20},
        {"64mib", 0, 64ULL << 20},
        {"2k", 0, 2048},
        {"64X", WD_EINVAL, 0},
        {"1.5M", WD_EINVAL, 0},
        {"M", WD_EINVAL, 0},
        {"-1", WD_EINVAL, 0},
        {"64MBB", WD_EINVAL, 0},
        {"64 M", WD_EINVAL, 0},
        {"", WD_EINVAL, 0},
        {"99999999999G", WD_ERANGE, 0},
        {"99999999999999999999", WD_ERANGE, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint64_t v = 12345;
        int rc = wd_parse_size(t[i].in, &v);
        if (rc != t[i].rc || (rc == 0 && v != t[i].want))
            fail_msg("size '%s': rc %d value %llu", t[i].in, rc, (unsigned long long)v);
    }
}

static void test_parse_bool_int(void **state) {
    (void)state;
    static const char *const yes[] = {"yes", "YES", "true", "On", "1"};
    static const char *const no[] = {"no", "False", "off", "0"};
    static const char *const bad[] = {"", "y", "2", "yess", " yes"};
    bool b;
    for (size_t i = 0; i < 5; i++)
        assert_true(wd_parse_bool(yes[i], &b) == 0 && b);
    for (size_t i = 0; i < 4; i++)
        assert_true(wd_parse_bool(no[i], &b) == 0 && !b);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(wd_parse_bool(bad[i], &b), WD_EINVAL);
    int64_t v;
    assert_int_equal(wd_parse_int("42", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(wd_parse_int("-42", &v), 0);
    assert_int_equal(v, -42);
    assert_int_equal(wd_parse_int("9223372036854775807", &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(wd_parse_int("-9223372036854775808", &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(wd_parse_int("9223372036854775808", &v), WD_ERANGE);
    assert_int_equal(wd_parse_int("-9223372036854775809", &v), WD_ERANGE);
    assert_int_equal(wd_parse_int("12a", &v), WD_EINVAL);
    assert_int_equal(wd_parse_int("+1", &v), WD_EINVAL);
    assert_int_equal(wd_parse_int("-", &v), WD_EINVAL);
    assert_int_equal(wd_parse_int("", &v), WD_EINVAL);
}

static void test_parse_signal(void **state) {
    (void)state;
    static const struct {
        const char *in;
        int sig;
    } ok[] = {{"TERM", SIGTERM}, {"SIGTERM", SIGTERM}, {"15", SIGTERM},   {"sigint", SIGINT},
              {"KILL", SIGKILL}, {"HUP", SIGHUP},      {"USR1", SIGUSR1}, {"QUIT", SIGQUIT},
              {"9", SIGKILL},    {"WINCH", SIGWINCH}};
    static const char *const bad[] = {"", "SIG", "FOO", "0", "-1", "999", "15x", "SIG TERM"};
    int sig;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (wd_parse_signal(ok[i].in, &sig) != 0 || sig != ok[i].sig)
            fail_msg("signal '%s'", ok[i].in);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (wd_parse_signal(bad[i], &sig) == 0)
            fail_msg("signal '%s' accepted", bad[i]);
    assert_string_equal(wd_signal_name(SIGTERM), "TERM");
    assert_string_equal(wd_signal_name(SIGKILL), "KILL");
    assert_string_equal(wd_signal_name(0), "?");
    assert_string_equal(wd_signal_name(12345), "?");
}

static void test_split_command(void **state) {
    (void)state;
    static const struct {
        const char *in;
        int rc;
        int argc;
        const char *words[5];
    } t[] = {
        {"a b  c", 0, 3, {"a", "b", "c"}},
        {"  \t ", 0, 0, {NULL}},
        {"\"a b\" c", 0, 2, {"a b", "c"}},
        {"'a \"b\"' c", 0, 2, {"a \"b\"", "c"}},
        {"a\\ b", 0, 1, {"a b"}},
        {"\"a\\\"b\"", 0, 1, {"a\"b"}},
        {"\"a\\nb\"", 0, 1, {"a\\nb"}},
        {"'a\\b'", 0, 1, {"a\\b"}},
        {"'' x", 0, 2, {"", "x"}},
        {"a''b\"\"c", 0, 1, {"abc"}},
        {"pre\"mid dle\"post", 0, 1, {"premid dlepost"}},
        {"\"abc", WD_EINVAL, 0, {NULL}},
        {"'abc", WD_EINVAL, 0, {NULL}},
        {"abc\\", WD_EINVAL, 0, {NULL}},
        {"1 2 3 4 5", WD_ERANGE, 0, {NULL}},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char buf[64];
        char *argv[5];
        int argc = -1;
        int rc = wd_split_command(t[i].in, buf, sizeof buf, argv, 4, &argc);
        if (rc != t[i].rc || argc != t[i].argc)
            fail_msg("split '%s': rc %d argc %d", t[i].in, rc, argc);
        assert_null(argv[argc]);
        for (int w = 0; w < argc; w++)
            assert_string_equal(argv[w], t[i].words[w]);
    }
    /* The buffer bound is honoured. */
    char small[4];
    char *argv[5];
    int argc;
    assert_int_equal(wd_split_command("abcd", small, sizeof small, argv, 4, &argc), WD_ERANGE);
    assert_int_equal(wd_split_command("abc", small, sizeof small, argv, 4, &argc), 0);
}

static void test_format(void **state) {
    (void)state;
    static const struct {
        uint64_t v;
        const char *dur, *size;
    } t[] = {{0, "0", "0"},
             {1, "1ms", "1"},
             {1000, "1s", "1000"},
             {1024, "1024ms", "1K"},
             {90000, "90s", "90000"},
             {3600000, "1h", "3600000"},
             {1ULL << 20, "1048576ms", "1M"}};
    char buf[WD_CONF_DURATION_STR_MAX];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint64_t back;
        assert_int_equal(wd_format_duration_ms(t[i].v, buf, sizeof buf), 0);
        assert_string_equal(buf, t[i].dur);
        assert_int_equal(wd_parse_duration_ms(buf, &back), 0);
        assert_true(back == t[i].v);
        assert_int_equal(wd_format_size(t[i].v, buf, sizeof buf), 0);
        assert_string_equal(buf, t[i].size);
        assert_int_equal(wd_parse_size(buf, &back), 0);
        assert_true(back == t[i].v);
    }
    assert_int_equal(wd_format_duration_ms(UINT64_MAX, buf, 4), WD_ERANGE);
}

/* ---- program copy and compare ---- */

static void test_copy_equal(void **state) {
    (void)state;
    loaded *l = load("[program:a]\ncommand = /bin/sh -c 'echo hi'\nenvironment = X=1\n"
                     "depends_on = b\n[program:b]\ncommand = /bin/b\n",
                     NULL);
    assert_int_equal(l->rc, 0);
    wd_program_conf *copy = malloc(sizeof *copy);
    wd_program_conf *again = malloc(sizeof *again);
    wd_program_conf_copy(copy, prog(l->conf, "a"));
    wd_program_conf_copy(again, prog(l->conf, "a"));
    memset(&l->conf->programs[0], 0xA5, sizeof l->conf->programs[0]); /* the source goes away */
    assert_int_equal(copy->argc, 3);
    for (int i = 0; i < copy->argc; i++)
        assert_true(copy->argv[i] >= copy->argbuf &&
                    copy->argv[i] < copy->argbuf + sizeof copy->argbuf);
    assert_string_equal(copy->argv[2], "echo hi");
    assert_null(copy->argv[3]);
    assert_true(wd_program_conf_equal(copy, again));
    again->line = 99; /* where it was declared does not count */
    assert_true(wd_program_conf_equal(copy, again));
    again->stop_timeout_ms++;
    assert_false(wd_program_conf_equal(copy, again));
    again->stop_timeout_ms--;
    snprintf(again->env[0], sizeof again->env[0], "X=2");
    assert_false(wd_program_conf_equal(copy, again));
    free(copy);
    free(again);
    loaded_free(l);
}

/* ---- documentation ---- */

static char *print_defaults_text(void) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    wd_conf_print_defaults(f);
    assert_int_equal(fclose(f), 0);
    return text;
}

static void test_print_defaults_loads(void **state) {
    (void)state;
    char *text = print_defaults_text();
    assert_non_null(strstr(text, "\nlog_line_max = 16K\n"));
    assert_non_null(strstr(text, "\n;heartbeat_timeout = 5s\n"));
    assert_non_null(strstr(text, "(always | on-failure | never)"));
    /* The printed file is itself a valid config with the defaults. */
    loaded *l = load(text, NULL);
    if (l->rc != 0)
        dump_errors(l);
    assert_int_equal(l->rc, 0);
    assert_int_equal(l->conf->n_programs, 0);
    assert_int_equal(l->conf->log_line_max, 16384);
    loaded_free(l);
    /* Uncommenting the templates gives a valid config too, once named and
     * given a command. (Registered sections follow them; not needed here.) */
    char *end = strstr(strstr(text, ";[program:NAME]"), "\n\n");
    assert_non_null(end);
    end[1] = '\0';
    for (char *p = text; (p = strstr(p, "\n;")) != NULL; p++)
        if (p[2] != ';' && p[2] != ' ')
            memmove(p + 1, p + 2, strlen(p + 2) + 1);
    char *w = strstr(text, "[worker:NAME]");
    char *pr = strstr(text, "[program:NAME]");
    assert_non_null(w);
    assert_non_null(pr);
    memcpy(w + 8, "wwww", 4);
    memcpy(pr + 9, "pppp", 4);
    size_t n = strlen(text);
    char *full = malloc(n + 64);
    memcpy(full, text, n + 1);
    for (char *c = full; (c = strstr(c, "\ncommand =\n")) != NULL;) {
        memmove(c + 18, c + 11, strlen(c + 11) + 1);
        memcpy(c, "\ncommand = /bin/x\n", 18);
        c += 18;
    }
    l = load(full, NULL);
    if (l->rc != 0)
        dump_errors(l);
    assert_int_equal(l->rc, 0);
    assert_int_equal(l->conf->n_programs, 2);
    assert_true(prog(l->conf, "wwww")->required);
    assert_false(prog(l->conf, "pppp")->required);
    loaded_free(l);
    free(full);
    free(text);
}

static void test_reference_config(void **state) {
    (void)state;
    /* config/warden.conf documents every key: it must contain what
     * wd_conf_print_defaults prints, so the two cannot drift apart. */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strrchr(path, '/');
    if (!slash)
        skip();
    snprintf(slash, sizeof path - (size_t)(slash - path), "/../../config/warden.conf");
    FILE *f = fopen(path, "r");
    if (!f)
        skip();
    char *ref = calloc(1, TEST_TEXT_MAX);
    size_t n = fread(ref, 1, TEST_TEXT_MAX - 1, f);
    fclose(f);
    ref[n] = '\0';
    char *text = print_defaults_text();
    /* Only the built-in tables: this test binary registers sections of its own. */
    char *end = strstr(strstr(text, ";[program:NAME]"), "\n\n");
    assert_non_null(end);
    end[2] = '\0';
    if (!strstr(ref, text))
        fail_msg("config/warden.conf does not contain the output of wd_conf_print_defaults");
    wd_supervisor_conf *c = malloc(sizeof *c);
    wd_conf_errors *e = malloc(sizeof *e);
    char *const env[] = {NULL};
    assert_int_equal(wd_conf_load_supervisor(path, env, c, e), 0);
    free(c);
    free(e);
    free(text);
    free(ref);
}

/* ---- main ---- */

static int setup(void **state) {
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/config_test.XXXXXX");
    if (!mkdtemp(tmp_dir))
        return -1;
    /* Registered before any load, as a module would at start-up. */
    return wd_conf_register_section("breaker:*", breaker_table, 2, sizeof(custom_conf));
}

static int teardown(void **state) {
    (void)state;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/demo.conf", tmp_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/custom.conf", tmp_dir);
    unlink(path);
    rmdir(tmp_dir);
    return 0;
}

int main(void) {
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_error_order),       cmocka_unit_test(test_long_command_line),
        cmocka_unit_test(test_too_long_line),     cmocka_unit_test(test_value_too_long),
        cmocka_unit_test(test_nul_byte),          cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_too_many_programs), cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_apply_section),     cmocka_unit_test(test_register_section),
        cmocka_unit_test(test_parse_duration),    cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_bool_int),    cmocka_unit_test(test_parse_signal),
        cmocka_unit_test(test_split_command),     cmocka_unit_test(test_format),
        cmocka_unit_test(test_copy_equal),        cmocka_unit_test(test_print_defaults_loads),
        cmocka_unit_test(test_reference_config),
    };
    enum { N_CASES = sizeof cases / sizeof cases[0], N_FIXED = sizeof fixed / sizeof fixed[0] };
    static struct CMUnitTest tests[N_CASES + N_FIXED];
    for (size_t i = 0; i < N_CASES; i++)
        tests[i] = (struct CMUnitTest){
            .name = cases[i].name, .test_func = run_case, .initial_state = (void *)&cases[i]};
    memcpy(tests + N_CASES, fixed, sizeof fixed);
    return _cmocka_run_group_tests("config", tests, N_CASES + N_FIXED, setup, teardown);
}
