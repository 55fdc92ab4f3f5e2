/* libFuzzer target: the control socket's request parsing, as the supervisor
 * runs it before any command touches its state (supervisor/control.c):
 * sup_ctl_parse (envelope, ctl_request body, command lookup), then the
 * argument parsing the commands do on what it accepted: sup_ctl_arg_u64 for
 * `n` and `after` (logs, events) and wd_parse_signal for `signal`. Aborts
 * when a result breaks the contract: a code outside {command index, EPROTO,
 * EINVAL}, an empty or unterminated error, a command name that does not
 * round-trip, a number accepted that the text does not say. Links wdsup
 * (the "sup" in the name, see tests/CMakeLists.txt). */
#include "config.h"
#include "proto.h"
#include "sup.h"
#include "wd_error.h"
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* supervisor/control.c: the pure half of the control socket (sup.h). */

#define CTL_COMMANDS 12 /* ping .. call */
#define ERR_LEN (2 * PROTO_ERROR_MAX)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_sup_control: invariant broken: %s\n", what);
        abort();
    }
}

static void check_err(const char *err) {
    check(memchr(err, '\0', ERR_LEN) != NULL, "error terminated");
    check(err[0] != '\0', "error not empty");
}

static void check_u64(const proto_ctl_request *r, const char *key, uint64_t def) {
    char err[ERR_LEN];
    uint64_t v = 12345;
    memset(err, 0, sizeof err);
    int rc = sup_ctl_arg_u64(r, key, def, &v, err, sizeof err);
    const char *text = proto_ctl_request_arg(r, key);
    if (text == NULL) {
        check(rc == 0 && v == def, "absent argument gives the default");
        return;
    }
    if (rc != 0) {
        check(rc == WD_EINVAL, "bad number is WD_EINVAL");
        check_err(err);
        check(strstr(err, key) != NULL, "error names the argument");
        return;
    }
    /* Accepted: the value is what the text says (an optional sign, digits,
     * surrounding blanks), and never negative. */
    int64_t n;
    check(wd_parse_int(text, &n) == 0 && n >= 0 && (uint64_t)n == v, "number matches its text");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static proto_ctl_request r; /* ~17 KiB: off the stack */
    char err[ERR_LEN];
    memset(err, 0, sizeof err);
    int rc = sup_ctl_parse(data, size, &r, err, sizeof err);
    if (rc < 0) {
        check(rc == WD_EPROTO || rc == WD_EINVAL, "error code");
        check_err(err);
        if (rc == WD_EPROTO)
            check(strncmp(err, "bad request: ", 13) == 0, "bad request named");
        else
            check(strstr(err, r.cmd) != NULL, "unknown command named");
        return 0;
    }
    check(rc < CTL_COMMANDS, "command index");
    check(r.cmd[0] != '\0' && strlen(r.cmd) <= PROTO_CMD_MAX, "command name");
    check(strlen(r.target) <= PROTO_NAME_MAX, "target length");
    check(r.n_args <= PROTO_ARGS_MAX, "argument count");
    for (uint32_t i = 0; i < r.n_args; i++) {
        /* unpack refuses a repeated key, so each key finds its own value */
        check(proto_ctl_request_arg(&r, r.args[i].key) == r.args[i].val, "argument lookup");
    }
    check_u64(&r, "n", 100);
    check_u64(&r, "after", 0);
    const char *sig = proto_ctl_request_arg(&r, "signal");
    int signo = 0;
    if (sig != NULL && wd_parse_signal(sig, &signo) == 0)
        check(signo > 0 && signo < 65, "signal number");
    return 0;
}
