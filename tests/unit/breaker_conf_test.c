/* [breaker:NAME] config: defaults, file values, environment overrides and
 * the errors a person sees, read from real files in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "breaker_conf.h"
#include "wd_error.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MS 1000000ULL
#define S (1000 * MS)

static char tmp_dir[PATH_MAX];
static char path[PATH_MAX + 32];
static char *const no_env[] = {NULL};

static int setup(void **state) {
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/brkconf-XXXXXX");
    if (!mkdtemp(tmp_dir))
        return -1;
    snprintf(path, sizeof path, "%s/warden.conf", tmp_dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(path);
    return rmdir(tmp_dir);
}

/* Writes text to the test's config file and reads it with envp. */
static wd_conf *read_conf(const char *text, char *const *envp) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    wd_conf *conf = NULL;
    wd_conf_errors errs;
    int rc = wd_conf_read(path, envp, &conf, &errs);
    if (rc != 0)
        fail_msg("wd_conf_read: %s (%s)", wd_strerror(rc), errs.n ? errs.msg[0] : "");
    return conf;
}

/* Loads name from text; expects rc; returns the first error (or ""). */
static const char *load(const char *text, char *const *envp, const char *name, brk_config *out,
                        int want_rc) {
    static wd_conf_errors errs;
    errs.n = 0;
    wd_conf *conf = text ? read_conf(text, envp) : NULL;
    int rc = brk_conf_load(conf, name, envp, out, &errs);
    wd_conf_free(conf);
    if (rc != want_rc)
        fail_msg("brk_conf_load rc %d, want %d (%s)", rc, want_rc, errs.n ? errs.msg[0] : "");
    if (want_rc == 0)
        assert_int_equal(errs.n, 0);
    else
        assert_true(errs.n >= 1);
    return errs.n ? errs.msg[0] : "";
}

static void expect_msg(const char *got, const char *where, const char *text) {
    char want[WD_CONF_ERROR_LEN + PATH_MAX];
    snprintf(want, sizeof want, "%s: %s", where, text);
    assert_string_equal(got, want);
}

static void file_line(int line, char *buf, size_t len) { snprintf(buf, len, "%s:%d", path, line); }

static void defaults_match_the_seed(void **state) {
    (void)state;
    brk_config c, d;
    brk_config_defaults(&d);
    load(NULL, no_env, "redis", &c, 0);
    assert_int_equal(c.failure_threshold, 5);
    assert_int_equal(c.open_ns, 60 * S);
    assert_int_equal(c.half_open_max, 3);
    /* The table's defaults are brk_config_defaults', field by field. */
    assert_int_equal(c.failure_threshold, d.failure_threshold);
    assert_int_equal(c.window_ns, d.window_ns);
    assert_int_equal(c.open_ns, d.open_ns);
    assert_int_equal(c.open_max_ns, d.open_max_ns);
    assert_true(c.growth == d.growth);
    assert_true(c.jitter == d.jitter);
    assert_int_equal(c.half_open_max, d.half_open_max);
    assert_int_equal(c.window_calls, d.window_calls);
    assert_int_equal(c.min_calls, d.min_calls);
    assert_true(c.failure_rate_pct == d.failure_rate_pct);
    assert_int_equal(c.slow_call_ns, d.slow_call_ns);
    assert_true(c.slow_call_rate_pct == d.slow_call_rate_pct);
    assert_int_equal(c.half_open_max_ns, d.half_open_max_ns);
    assert_int_equal(c.critical, d.critical);
    /* A file without the section: the same defaults. */
    brk_config c2;
    load("[breaker:other]\nopen = 5s\n", no_env, "redis", &c2, 0);
    assert_int_equal(c2.open_ns, 60 * S);
}

static void section_values(void **state) {
    (void)state;
    brk_config c;
    load("[breaker:pg]\n"
         "failure_threshold = 0\n"
         "failure_rate = 50\n"
         "window_calls = 40\n"
         "min_calls = 8\n"
         "slow_call = 1500ms\n"
         "slow_call_rate = 80.5\n"
         "open = 10s\n"
         "open_max = 5m\n"
         "growth = 1.5\n"
         "jitter = 0.25\n"
         "half_open_calls = 2\n"
         "half_open_max = 30s\n"
         "critical = yes\n",
         no_env, "pg", &c, 0);
    assert_int_equal(c.failure_threshold, 0);
    assert_true(c.failure_rate_pct == 50.0);
    assert_int_equal(c.window_calls, 40);
    assert_int_equal(c.min_calls, 8);
    assert_int_equal(c.slow_call_ns, 1500 * MS);
    assert_true(c.slow_call_rate_pct == 80.5);
    assert_int_equal(c.open_ns, 10 * S);
    assert_int_equal(c.open_max_ns, 300 * S);
    assert_true(c.growth == 1.5);
    assert_true(c.jitter == 0.25);
    assert_int_equal(c.half_open_max, 2);
    assert_int_equal(c.half_open_max_ns, 30 * S);
    assert_true(c.critical);
    /* It makes a working breaker: 50 % of 8 calls opens it. */
    brk_breaker b;
    brk_init(&b, "pg", &c, 1);
    for (int i = 0; i < 8; i++) {
        uint64_t g;
        assert_int_equal(brk_allow(&b, 0, &g), 0);
        brk_record_call(&b, g, 0, MS, i % 2 == 0, "x");
    }
    assert_int_equal(b.state, BRK_OPEN);
}

static void env_beats_file(void **state) {
    (void)state;
    brk_config c;
    char *const env[] = {"WARDEN_BREAKER_REDIS_FAILURE_THRESHOLD=3",
                         "WARDEN_BREAKER_REDIS_OPEN= 2s ", "WARDEN_BREAKER_OTHER_OPEN=9s",
                         "WARDEN_BREAKER_REDIS_CRITICAL=on", NULL};
    const char *text = "[breaker:redis]\nfailure_threshold = 7\nopen = 30s\nhalf_open_calls = 4\n";
    load(text, env, "redis", &c, 0);
    assert_int_equal(c.failure_threshold, 3);
    assert_int_equal(c.open_ns, 2 * S);
    assert_int_equal(c.half_open_max, 4); /* from the file: no override */
    assert_true(c.critical);
    /* The same when the table was registered before reading, so that
     * wd_conf_read itself turned the variables into entries. */
    assert_int_equal(brk_conf_register(), 0);
    assert_int_equal(brk_conf_register(), 0);
    load(text, env, "redis", &c, 0);
    assert_int_equal(c.failure_threshold, 3);
    assert_int_equal(c.open_ns, 2 * S);
    assert_int_equal(c.half_open_max, 4);
    /* A breaker the file does not mention gets its overrides too. */
    load(text, env, "other", &c, 0);
    assert_int_equal(c.open_ns, 9 * S);
    assert_int_equal(c.failure_threshold, 5);
    load(NULL, env, "other", &c, 0);
    assert_int_equal(c.open_ns, 9 * S);
    /* A name with '-' maps to '_'. */
    char *const env2[] = {"WARDEN_BREAKER_BROKER_API_HALF_OPEN_CALLS=7", NULL};
    load(NULL, env2, "broker-api", &c, 0);
    assert_int_equal(c.half_open_max, 7);
}

static void bad_values_name_file_line_and_text(void **state) {
    (void)state;
    brk_config c, keep;
    char at[PATH_MAX + 64];
    memset(&keep, 0x5a, sizeof keep);
    c = keep;
    const char *m = load("[breaker:redis]\n\nfailure_threshold = lots\n", no_env, "redis", &c,
                         WD_ECONFIG);
    file_line(3, at, sizeof at);
    expect_msg(m, at, "bad integer 'lots' for 'failure_threshold'");
    assert_memory_equal(&c, &keep, sizeof c); /* out untouched on error */
    m = load("[breaker:redis]\nopen = 10x\n", no_env, "redis", &c, WD_ECONFIG);
    file_line(2, at, sizeof at);
    expect_msg(m, at, "bad duration '10x' for 'open' (use ns, us, ms, s, m, h)");
    m = load("[breaker:redis]\ncritical = maybe\n", no_env, "redis", &c, WD_ECONFIG);
    file_line(2, at, sizeof at);
    expect_msg(m, at,
               "bad boolean 'maybe' for 'critical' (use yes, no, true, false, on, off, 1, 0)");
    m = load("[breaker:redis]\nfailure_rate = half\n", no_env, "redis", &c, WD_ECONFIG);
    file_line(2, at, sizeof at);
    expect_msg(m, at, "bad number 'half' for 'failure_rate'");
    m = load("[breaker:redis]\nfailure_treshold = 3\n", no_env, "redis", &c, WD_ECONFIG);
    file_line(2, at, sizeof at);
    expect_msg(m, at,
               "unknown key 'failure_treshold' in [breaker:redis] (did you mean "
               "'failure_threshold'?)");
    /* An override's error names the variable. */
    char *const env[] = {"WARDEN_BREAKER_REDIS_SLOW_CALL=fast", NULL};
    m = load(NULL, env, "redis", &c, WD_ECONFIG);
    expect_msg(m, "WARDEN_BREAKER_REDIS_SLOW_CALL",
               "bad duration 'fast' for 'slow_call' (use ns, us, ms, s, m, h)");
    m = load("[breaker:redis]\nopen = 1s\n", env, "redis", &c, WD_ECONFIG);
    expect_msg(m, "WARDEN_BREAKER_REDIS_SLOW_CALL",
               "bad duration 'fast' for 'slow_call' (use ns, us, ms, s, m, h)");
    /* A bad name. */
    m = load(NULL, no_env, "no spaces", &c, WD_EINVAL);
    assert_non_null(strstr(m, "bad name 'no spaces'"));
}

static void out_of_bounds(void **state) {
    (void)state;
    brk_config c;
    char at[PATH_MAX + 64];
    const char *m = load("[breaker:r]\nwindow_calls = 1000\n", no_env, "r", &c, WD_ECONFIG);
    file_line(2, at, sizeof at);
    expect_msg(m, at, "value '1000' for 'window_calls' out of bounds (1..256)");
    m = load("[breaker:r]\nfailure_rate = 150\n", no_env, "r", &c, WD_ECONFIG);
    expect_msg(m, at, "value '150' for 'failure_rate' out of bounds (0..100)");
    m = load("[breaker:r]\njitter = 0.9\n", no_env, "r", &c, WD_ECONFIG);
    expect_msg(m, at, "value '0.9' for 'jitter' out of bounds (0..0.5)");
    m = load("[breaker:r]\ngrowth = 0.5\n", no_env, "r", &c, WD_ECONFIG);
    expect_msg(m, at, "value '0.5' for 'growth' out of bounds (1..100)");
    m = load("[breaker:r]\nhalf_open_calls = 0\n", no_env, "r", &c, WD_ECONFIG);
    expect_msg(m, at, "value '0' for 'half_open_calls' out of bounds (1..1000)");
    m = load("[breaker:r]\nopen = 2d\n", no_env, "r", &c, WD_ECONFIG);
    expect_msg(m, at, "bad duration '2d' for 'open' (use ns, us, ms, s, m, h)");
    m = load("[breaker:r]\nopen = 25h\n", no_env, "r", &c, WD_ECONFIG);
    expect_msg(m, at, "value '25h' for 'open' out of bounds (1ms..24h)");
    char *const env[] = {"WARDEN_BREAKER_R_MIN_CALLS=-1", NULL};
    m = load(NULL, env, "r", &c, WD_ECONFIG);
    expect_msg(m, "WARDEN_BREAKER_R_MIN_CALLS",
               "value '-1' for 'min_calls' out of bounds (1..256)");
}

static void keys_that_disagree(void **state) {
    (void)state;
    brk_config c;
    char at[PATH_MAX + 64];
    const char *m =
        load("[breaker:r]\nwindow_calls = 20\nmin_calls = 30\n", no_env, "r", &c, WD_ECONFIG);
    file_line(3, at, sizeof at);
    expect_msg(m, at, "[breaker:r]: min_calls 30 is more than window_calls 20");
    m = load("[breaker:r]\nwindow_calls = 5\n", no_env, "r", &c, WD_ECONFIG);
    file_line(2, at, sizeof at); /* min_calls is the default 10: blame window_calls */
    expect_msg(m, at, "[breaker:r]: min_calls 10 is more than window_calls 5");
    m = load("[breaker:r]\nopen = 5m\nopen_max = 1m\n", no_env, "r", &c, WD_ECONFIG);
    file_line(3, at, sizeof at);
    expect_msg(m, at, "[breaker:r]: open_max 60000ms is less than open 300000ms");
    m = load("[breaker:r]\nslow_call_rate = 50\n", no_env, "r", &c, WD_ECONFIG);
    file_line(2, at, sizeof at);
    expect_msg(m, at, "[breaker:r]: slow_call_rate 50 needs slow_call (a duration above 0)");
    char *const env[] = {"WARDEN_BREAKER_R_FAILURE_THRESHOLD=0", NULL};
    m = load(NULL, env, "r", &c, WD_ECONFIG);
    expect_msg(m, "WARDEN_BREAKER_R_FAILURE_THRESHOLD",
               "[breaker:r]: failure_threshold 0 leaves no trip on (set failure_rate or "
               "slow_call_rate too)");
}

static void check_config_validates_breaker_sections(void **state) {
    (void)state;
    assert_int_equal(brk_conf_register(), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[program:a]\ncommand = /bin/true\n[breaker:redis]\nopen = soon\n", f);
    assert_int_equal(fclose(f), 0);
    wd_supervisor_conf *sup = malloc(sizeof *sup);
    wd_conf_errors *errs = malloc(sizeof *errs);
    assert_non_null(sup);
    assert_non_null(errs);
    assert_int_equal(wd_conf_load_supervisor(path, no_env, sup, errs), WD_ECONFIG);
    assert_int_equal(errs->n, 1);
    char at[PATH_MAX + 64];
    file_line(4, at, sizeof at);
    expect_msg(errs->msg[0], at, "bad duration 'soon' for 'open' (use ns, us, ms, s, m, h)");
    free(sup);
    free(errs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_match_the_seed),
        cmocka_unit_test(section_values),
        cmocka_unit_test(env_beats_file),
        cmocka_unit_test(bad_values_name_file_line_and_text),
        cmocka_unit_test(out_of_bounds),
        cmocka_unit_test(keys_that_disagree),
        cmocka_unit_test(check_config_validates_breaker_sections),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
