/* wardenctl's commands: each checks its arguments, builds its request, and
 * prints the reply as --json or as text (formatting in wardenctl_fmt.c).
 * logs and events share one loop, which with -f polls until ^C. */
#include "config.h"
#include "wardenctl.h"
#include "wd_error.h"
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#define WCTL_POLL_MS 250
#define WCTL_FOLLOW_BATCH 1000u /* n asked for on each -f poll */

static volatile sig_atomic_t g_stop;
static void on_stop(int sig) {
    (void)sig;
    g_stop = 1;
}

/* ---- status ---- */

int wctl_cmd_status(wctl *c) {
    proto_ctl_request req;
    json_t *data = NULL;
    int rc;
    const char *name = c->npos > 0 ? c->pos[0] : NULL;
    if (name != NULL && (rc = wctl_check_name(c, "NAME", name)) != 0)
        return rc;
    wctl_req_init(&req, "status", name);
    if ((rc = wctl_do(c, &req, &data)) != WCTL_OK)
        return rc;
    if (c->json) {
        rc = wctl_print_json(data, WCTL_JSON_FLAGS);
        goto fail;
    }
    const json_t *workers = json_object_get(data, "workers");
    if (!json_is_array(workers)) {
        rc = wctl_malformed(c, "no 'workers' array");
        goto fail;
    }
    if (name == NULL)
        wctl_status_supervisor(json_object_get(data, "supervisor"));
    size_t n = json_array_size(workers);
    if (n == 0) {
        printf("no workers configured\n");
        goto fail;
    }
    rc = wctl_status_table(workers);
    if (rc == WCTL_OK && name != NULL && n == 1)
        wctl_status_detail(json_array_get(workers, 0));
fail:
    json_decref(data);
    return rc;
}

/* ---- start / stop / restart / signal / reset / reload / call ---- */

int wctl_cmd_lifecycle(wctl *c) {
    proto_ctl_request req;
    json_t *data = NULL;
    int rc = wctl_check_name(c, "NAME", c->pos[0]);
    if (rc != 0)
        return rc;
    wctl_req_init(&req, c->cmd->name, c->pos[0]);
    if ((rc = wctl_do(c, &req, &data)) != WCTL_OK)
        return rc;
    const json_t *aff = json_object_get(data, "affected");
    if (c->json)
        rc = wctl_print_json(data, WCTL_JSON_FLAGS);
    else if (!json_is_array(aff))
        rc = wctl_malformed(c, "no 'affected' array");
    else if (json_array_size(aff) == 0)
        printf("%s: nothing to do\n", c->cmd->name);
    else if (strcmp(c->cmd->name, "stop") == 0)
        wctl_print_list("stopped", aff);
    else
        wctl_print_list(strcmp(c->cmd->name, "start") == 0 ? "started" : "restarted", aff);
    json_decref(data);
    return rc;
}

int wctl_cmd_signal(wctl *c) {
    proto_ctl_request req;
    json_t *data = NULL;
    int sig;
    int rc = wctl_check_name(c, "NAME", c->pos[0]);
    if (rc == 0 && (wctl_check_text(c->pos[1], WCTL_SMALL_MAX, false) != 0 ||
                    wd_parse_signal(c->pos[1], &sig) != 0))
        rc = wctl_usage_err(c, "unknown signal '%.40s' (a name such as TERM, HUP, USR1, KILL, "
                               "or a number 1..%d)", c->pos[1], SIGRTMAX);
    if (rc != 0)
        return rc;
    wctl_req_init(&req, "signal", c->pos[0]);
    wctl_req_arg(&req, "signal", c->pos[1]);
    if ((rc = wctl_do(c, &req, &data)) != WCTL_OK)
        return rc;
    char pid[WCTL_SMALL_MAX];
    wctl_fmt_int(json_object_get(data, "pid"), pid, sizeof pid);
    if (c->json)
        rc = wctl_print_json(data, WCTL_JSON_FLAGS);
    else
        printf("sent %s to %s (pid %s)\n", wctl_sval(data, "signal"), c->pos[0], pid);
    json_decref(data);
    return rc;
}

int wctl_cmd_reset(wctl *c) {
    proto_ctl_request req;
    json_t *data = NULL;
    int rc = wctl_check_name(c, "NAME", c->pos[0]);
    if (rc != 0)
        return rc;
    /* The reason is what the audit log keeps about a hand-closed breaker. */
    if (c->reason == NULL || c->reason[0] == '\0')
        return wctl_usage_err(c, "--reason TEXT is required (it goes to the audit log)");
    if (wctl_check_text(c->reason, PROTO_REASON_MAX, false) != 0)
        return wctl_usage_err(c, "--reason must be one line of at most %d bytes", PROTO_REASON_MAX);
    wctl_req_init(&req, "reset", c->pos[0]);
    wctl_req_arg(&req, "reason", c->reason);
    if ((rc = wctl_do(c, &req, &data)) != WCTL_OK)
        return rc;
    if (c->json)
        rc = wctl_print_json(data, WCTL_JSON_FLAGS);
    else
        printf("%s: crash-loop breaker %s\n", c->pos[0], wctl_sval(data, "breaker"));
    json_decref(data);
    return rc;
}

int wctl_cmd_reload(wctl *c) {
    static const char *const lists[] = {"added", "removed", "restarted", "updated",
                                         "unchanged", "not_applied"};
    static const char *const labels[] = {
        "added", "removed", "restarted", "updated (stopped by an operator; applies at its start)",
        "unchanged", "changed sections no program is named after (apply at a restart)"};
    proto_ctl_request req;
    json_t *data = NULL;
    bool changed = false;
    int rc;
    wctl_req_init(&req, "reload", NULL);
    if ((rc = wctl_do(c, &req, &data)) != WCTL_OK)
        return rc;
    if (c->json) {
        rc = wctl_print_json(data, WCTL_JSON_FLAGS);
        goto fail;
    }
    if (!json_is_object(data)) {
        rc = wctl_malformed(c, "data is not an object");
        goto fail;
    }
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        const json_t *arr = json_object_get(data, lists[i]);
        if (json_array_size(arr) == 0)
            continue;
        if (strcmp(lists[i], "unchanged") != 0)
            changed = true;
        wctl_print_list(labels[i], arr);
    }
    if (!changed)
        printf("no changes\n");
fail:
    json_decref(data);
    return rc;
}

int wctl_cmd_call(wctl *c) {
    proto_ctl_request req;
    wctl_reply r;
    int rc = wctl_check_name(c, "NAME", c->pos[0]);
    if (rc == 0 && wctl_check_text(c->pos[1], PROTO_ARG_VAL_MAX, false) != 0)
        rc = wctl_usage_err(c, "bad COMMAND '%.40s'", c->pos[1]);
    if (rc != 0)
        return rc;
    wctl_req_init(&req, "call", c->pos[0]);
    wctl_req_arg(&req, "command", c->pos[1]);
    for (int i = 2; i < c->npos; i++) {
        const char *a = c->pos[i], *eq = strchr(a, '=');
        char key[PROTO_ARG_KEY_MAX + 1];
        if (eq == NULL || eq == a)
            return wctl_usage_err(c, "argument '%s' is not key=value", a);
        if ((size_t)(eq - a) > PROTO_ARG_KEY_MAX)
            return wctl_usage_err(c, "key of argument '%.40s...' is longer than %d bytes", a,
                                  PROTO_ARG_KEY_MAX);
        snprintf(key, sizeof key, "%.*s", (int)(eq - a), a);
        if (wctl_check_text(key, PROTO_ARG_KEY_MAX, false) != 0 ||
            strchr(eq + 1, '\0') - (eq + 1) > PROTO_ARG_VAL_MAX)
            return wctl_usage_err(c, "argument '%.40s' has a bad key or a value over %d bytes", a,
                                  PROTO_ARG_VAL_MAX);
        if (proto_ctl_request_arg(&req, key) != NULL)
            return wctl_usage_err(c, "argument '%s' repeats key '%s'%s", a, key,
                                  strcmp(key, "command") == 0 ? " (reserved for COMMAND)" : "");
        wctl_req_arg(&req, key, eq + 1);
    }
    if ((rc = wctl_send(c, &req, &r, true)) != WCTL_OK)
        return rc;
    /* A worker may explain its refusal in data too: show it beside the error. */
    rc = WCTL_OK;
    if (r.status == 0 || !json_is_null(r.data))
        rc = wctl_print_json(r.data, WCTL_JSON_CALL);
    if (r.status != 0) {
        wctl_reply_error(c, &r);
        rc = WCTL_FAIL;
    }
    json_decref(r.data);
    return rc;
}

/* ---- ping / version ---- */

int wctl_cmd_ping(wctl *c) {
    proto_ctl_request req;
    json_t *data = NULL;
    char up[WCTL_SMALL_MAX], pid[WCTL_SMALL_MAX];
    wctl_reply r;
    wctl_req_init(&req, "ping", NULL);
    int rc = wctl_send(c, &req, &r, false);
    if (rc != WCTL_OK)
        return rc;
    data = r.data;
    if (c->json) {
        if (!json_is_object(data)) {
            json_decref(data);
            data = json_object();
        }
        json_object_set_new(data, "latency_ms", json_real(r.latency_ms));
        rc = wctl_print_json(data, WCTL_JSON_FLAGS);
    } else {
        wctl_fmt_dur(json_object_get(data, "uptime_s"), up, sizeof up);
        wctl_fmt_int(json_object_get(data, "pid"), pid, sizeof pid);
        printf("ok %.2f ms (warden %s, pid %s, up %s)\n", r.latency_ms, wctl_sval(data, "version"),
               pid, up);
    }
    json_decref(data);
    return rc;
}

int wctl_cmd_version(wctl *c) {
    proto_ctl_request req;
    char err[WCTL_ERR_MAX], why[WCTL_ERR_MAX + 64];
    wctl_reply r;
    const char *sup = NULL;
    wctl_req_init(&req, "version", NULL);
    /* wardenctl's own version is printed whatever happens; an unreachable
     * supervisor is still a failure (exit 1), said in one line. */
    int rc = wctl_call(c, &req, &r, err, sizeof err);
    if (rc == WD_EUNAVAIL)
        snprintf(why, sizeof why, "warden is not running (no answer on %s)", c->url);
    else if (rc == WD_ETIMEDOUT)
        snprintf(why, sizeof why, "warden is not answering (no reply on %s within %llu ms)", c->url,
                 (unsigned long long)c->timeout_ms);
    else if (rc != 0)
        snprintf(why, sizeof why, "version: %s", err);
    else if (r.status != 0)
        snprintf(why, sizeof why, "version: %s", r.error[0] ? r.error : wd_strerror(r.status));
    else if ((sup = json_string_value(json_object_get(r.data, "version"))) == NULL)
        snprintf(why, sizeof why, "version: malformed reply from warden: no version");
    if (c->json) {
        json_t *o = json_pack("{s:s, s:o}", "wardenctl", WARDEN_VERSION, "supervisor",
                              sup != NULL ? json_string(sup) : json_null());
        rc = o != NULL ? wctl_print_json(o, WCTL_JSON_FLAGS) : WCTL_FAIL;
        json_decref(o);
    } else {
        printf("wardenctl %s\n", WARDEN_VERSION);
        if (sup != NULL)
            printf("warden %s\n", sup);
        rc = WCTL_OK;
    }
    if (sup == NULL) {
        fprintf(stderr, "wardenctl: %s\n", why);
        if (rc == WCTL_OK)
            rc = WCTL_FAIL;
    }
    json_decref(r.data);
    return rc;
}

/* ---- logs / events, with -f ---- */

/* Blocks SIGINT/SIGTERM before nng starts its threads, so they inherit the
 * mask and the signal always reaches the main thread, which only lets it in
 * while it sleeps (pselect): a ^C ends the wait at once. */
static int follow_signals(sigset_t *sleep_mask) {
    struct sigaction sa;
    sigset_t set;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigprocmask(SIG_BLOCK, &set, sleep_mask) != 0)
        return WD_ESYS;
    sigdelset(sleep_mask, SIGINT);
    sigdelset(sleep_mask, SIGTERM);
    return 0;
}

int wctl_cmd_stream(wctl *c) {
    const bool logs = strcmp(c->cmd->name, "logs") == 0;
    const char *items_key = logs ? "lines" : "events";
    proto_ctl_request req;
    json_t *data = NULL;
    sigset_t sleep_mask;
    uint64_t after = 0, last_seq = 0;
    bool have_after = false, have_seq = false;
    int rc;
    if (logs && (rc = wctl_check_name(c, "NAME", c->pos[0])) != 0)
        return rc;
    if (c->follow && follow_signals(&sleep_mask) != 0) {
        fprintf(stderr, "wardenctl: %s: cannot set up signals: %s\n", c->cmd->name,
                strerror(errno));
        return WCTL_FAIL;
    }
    for (;;) {
        wctl_req_init(&req, c->cmd->name, logs ? c->pos[0] : NULL);
        if (have_after) {
            wctl_req_arg_u64(&req, "after", after);
            wctl_req_arg_u64(&req, "n", WCTL_FOLLOW_BATCH);
        } else if (c->lines > 0) {
            wctl_req_arg_u64(&req, "n", c->lines);
        }
        if ((rc = wctl_do(c, &req, &data)) != WCTL_OK)
            return rc;
        const json_t *items = json_object_get(data, items_key);
        const json_t *next = json_object_get(data, "next");
        if (!json_is_array(items) || (c->follow && !json_is_integer(next))) {
            json_decref(data);
            return wctl_malformed(c, logs ? "no 'lines' array or no 'next'"
                                          : "no 'events' array or no 'next'");
        }
        if (c->json && !c->follow) {
            rc = wctl_print_json(data, WCTL_JSON_FLAGS);
            json_decref(data);
            return rc;
        }
        size_t i, n = json_array_size(items);
        json_t *it;
        json_array_foreach(items, i, it) {
            /* Skip what was printed already, whichever way the supervisor
             * counts `after` (inclusive or not). */
            json_t *seq = json_object_get(it, "seq");
            if (json_is_integer(seq)) {
                uint64_t s = (uint64_t)json_integer_value(seq);
                if (have_seq && s <= last_seq)
                    continue;
                last_seq = s, have_seq = true;
            }
            wctl_print_item(c, it);
        }
        if (logs && have_after && json_integer_value(json_object_get(data, "dropped")) > 0)
            fprintf(stderr, "wardenctl: logs: %lld lines lost (log ring buffer wrapped)\n",
                    (long long)json_integer_value(json_object_get(data, "dropped")));
        uint64_t nx = (uint64_t)json_integer_value(next);
        /* A smaller `next` means a new supervisor: follow its numbering. */
        if (have_after && nx < after)
            have_seq = false;
        after = nx, have_after = true;
        json_decref(data);
        data = NULL;
        if (fflush(stdout) != 0 || !c->follow)
            return WCTL_OK; /* a write error is reported by main */
        if (n >= WCTL_FOLLOW_BATCH)
            continue; /* more may be waiting */
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)WCTL_POLL_MS * 1000000L};
        pselect(0, NULL, NULL, NULL, &ts, &sleep_mask);
        if (g_stop)
            return WCTL_OK;
    }
}
