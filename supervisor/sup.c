/* The supervisor's lifecycle: sockets, signals, the child table, start-up in
 * dependency order, reload, and shutdown in reverse dependency order. */
#include "sup.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

void sup_logcap_prepare_stdout(void);

static wd_program_conf *conf_dup(const wd_program_conf *src) {
    wd_program_conf *c = malloc(sizeof *c);
    if (c)
        wd_program_conf_copy(c, src);
    return c;
}

static brk_config crash_breaker_config(const wd_program_conf *pc) {
    brk_config bc = {
        .failure_threshold = (uint32_t)pc->breaker_failures,
        .window_ns = pc->breaker_window_ms * WD_NS_PER_MS,
        .open_ns = pc->breaker_cooldown_ms * WD_NS_PER_MS,
        .open_max_ns = pc->breaker_cooldown_max_ms * WD_NS_PER_MS,
        .growth = 2.0,
        .jitter = 0.1,
        .half_open_max = 1,
    };
    return bc;
}

static void on_crash_transition(void *arg, brk_breaker *b, const brk_transition *t) {
    sup_child *c = arg;
    wd_warn("%s: crash-loop breaker %s -> %s: %s", c->conf->name, brk_state_name(t->from),
            brk_state_name(t->to), t->reason);
    sup_event_emit(c->owner, "breaker", c->conf->name, brk_state_name(t->from),
                   brk_state_name(t->to), t->reason);
}

static sup_child *child_new(sup *s, const wd_program_conf *pc) {
    sup_child *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->conf = conf_dup(pc);
    size_t ring = pc->log_ring_lines ? pc->log_ring_lines : s->conf->log_ring_lines;
    if (!c->conf || sup_logring_init(&c->ring, ring) != 0) {
        free(c->conf);
        free(c);
        return NULL;
    }
    c->owner = s;
    c->want_up = pc->autostart;
    c->state = SUP_STOPPED;
    snprintf(c->reason, sizeof c->reason, "%s", pc->autostart ? "" : "autostart=no");
    snprintf(c->cmd_url, sizeof c->cmd_url, "ipc://%s/worker-%s.sock", s->conf->run_dir, pc->name);
    brk_config bc = crash_breaker_config(pc);
    brk_init(&c->crash, "crash-loop", &bc, wd_rng_next(&s->rng));
    brk_set_callback(&c->crash, on_crash_transition, c);
    sup_fsm_init_timers(c, s->loop);
    c->timers_open = 3;
    return c;
}

sup_child *sup_child_find(sup *s, const char *name) {
    for (int i = 0; i < s->n_children; i++)
        if (strcmp(s->children[i]->conf->name, name) == 0)
            return s->children[i];
    return NULL;
}

static void child_release(sup_child *c) {
    sup_logring_free(&c->ring);
    free(c->hb);
    free(c->next_conf);
    free(c->conf);
    free(c);
}

static void child_timer_closed(uv_handle_t *h) {
    sup_child *c = h->data;
    if (--c->timers_open == 0)
        child_release(c);
}

static void child_close(sup_child *c) {
    uv_close((uv_handle_t *)&c->deadline, child_timer_closed);
    uv_close((uv_handle_t *)&c->hb_watch, child_timer_closed);
    uv_close((uv_handle_t *)&c->uptime, child_timer_closed);
    if (c->cmd) {
        bus_req_close(c->cmd);
        c->cmd = NULL;
    }
}

static void sup_child_remove_at(sup *s, int i) {
    sup_child *c = s->children[i];
    memmove(&s->children[i], &s->children[i + 1],
            (size_t)(s->n_children - i - 1) * sizeof s->children[0]);
    s->n_children--;
    child_close(c);
}

void sup_child_maybe_free(sup_child *c) {
    sup *s = c->owner;
    if (!c->removing || c->n_procs > 0 || c->proc)
        return;
    if (c->state != SUP_STOPPED && c->state != SUP_FATAL)
        return;
    for (int i = 0; i < s->n_children; i++)
        if (s->children[i] == c) {
            wd_info("%s: removed", c->conf->name);
            sup_child_remove_at(s, i);
            return;
        }
}



void sup_child_eval_deps(sup *s) {
    if (s->draining)
        return;
    for (int i = 0; i < s->n_children; i++) {
        sup_child *c = s->children[i];
        if (c->want_up && c->state == SUP_STOPPED)
            sup_fsm_dispatch(c, SUP_EV_UP);
    }
}

static void sup_on_signal(uv_signal_t *h, int signum) {
    sup *s = h->data;
    if (signum == SIGHUP) {
        char err[512];
        json_t *report = NULL;
        if (sup_reload(s, err, sizeof err, &report) != 0)
            wd_error("reload refused: %s", err);
        json_decref(report);
        return;
    }
    if (s->draining) {
        wd_warn("second %s: stopping now", strsignal(signum));
        for (int i = 0; i < s->n_children; i++)
            sup_child_signal(s->children[i], SIGKILL);
        return;
    }
    sup_shutdown(s, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int sup_open_run_dir(sup *s, char *err, size_t errlen) {
    const char *dir = s->conf->run_dir;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "run_dir %s: %s", dir, strerror(errno));
        return WD_ESYS;
    }
    char path[WD_CONF_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/warden.pid", dir);
    s->pidfile_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->pidfile_fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return WD_ESYS;
    }
    /* One supervisor per run_dir: a second one would steal the sockets. */
    if (flock(s->pidfile_fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "another warden is running with run_dir %s", dir);
        return WD_EBUSY;
    }
    char pidbuf[32];
    int n = snprintf(pidbuf, sizeof pidbuf, "%d\n", (int)getpid());
    if (ftruncate(s->pidfile_fd, 0) < 0 || write(s->pidfile_fd, pidbuf, (size_t)n) != n)
        wd_warn("cannot write %s", path);
    snprintf(path, sizeof path, "%s/audit.log", dir);
    s->audit_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (s->audit_fd < 0)
        wd_warn("cannot open %s: %s; audit records go to the log only", path, strerror(errno));
    return 0;
}

int sup_init(sup *s, uv_loop_t *loop, const char *config_path, wd_supervisor_conf *conf,
             char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->conf = conf;
    s->audit_fd = s->pidfile_fd = -1;
    s->start_ns = wd_clock_mono_ns();
    s->start_real_ns = wd_clock_real_ns();
    wd_rng_seed(&s->rng, s->start_real_ns ^ (uint64_t)getpid());
    if (!realpath(config_path, s->config_path))
        snprintf(s->config_path, sizeof s->config_path, "%s", config_path);
    if ((s->sections = calloc(1, sizeof *s->sections)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return WD_ENOMEM;
    }
    sup_sections_load(s->config_path, s->sections);
    /* The longest socket path is worker-NAME.sock with a 63-byte NAME. */
    size_t longest = strlen(conf->run_dir) + sizeof "/worker-.sock" - 1 + WD_CONF_NAME_MAX;
    if (longest > SUP_IPC_PATH_MAX) {
        snprintf(err, errlen, "run_dir '%s' is too long for ipc sockets (at most %d bytes)",
                 conf->run_dir, (int)(SUP_IPC_PATH_MAX - (sizeof "/worker-.sock" - 1) - WD_CONF_NAME_MAX));
        return WD_ECONFIG;
    }
    int rc = sup_open_run_dir(s, err, errlen);
    if (rc != 0)
        return rc;
    const char *dir = conf->run_dir;
    snprintf(s->control_url, sizeof s->control_url, "ipc://%s/control.sock", dir);
    snprintf(s->hb_url, sizeof s->hb_url, "ipc://%s/heartbeat.sock", dir);
    snprintf(s->events_url, sizeof s->events_url, "ipc://%s/events.sock", dir);
    int mode = (int)strtol(conf->control_mode, NULL, 8);
    if ((rc = bus_pull_listen(loop, s->hb_url, 0600, sup_heartbeat_on_msg, s, &s->heartbeats,
                              err, errlen)) != 0)
        return rc;
    if ((rc = bus_pub_listen(s->events_url, 0600, &s->events, err, errlen)) != 0)
        return rc;
    if ((rc = bus_rep_open(loop, s->control_url, mode, sup_control_on_request, s, &s->control,
                           err, errlen)) != 0)
        return rc;
    uv_signal_init(loop, &s->sig_term);
    uv_signal_init(loop, &s->sig_int);
    uv_signal_init(loop, &s->sig_hup);
    s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
    uv_signal_start(&s->sig_term, sup_on_signal, SIGTERM);
    uv_signal_start(&s->sig_int, sup_on_signal, SIGINT);
    uv_signal_start(&s->sig_hup, sup_on_signal, SIGHUP);
    uv_timer_init(loop, &s->shutdown_timer);
    s->shutdown_timer.data = s;
    /* A dead reader of our stdout must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    sup_logcap_prepare_stdout();
    for (int i = 0; i < conf->n_programs; i++) {
        sup_child *c = child_new(s, &conf->programs[i]);
        if (!c) {
            snprintf(err, errlen, "out of memory");
            return WD_ENOMEM;
        }
        s->children[s->n_children++] = c;
    }
    wd_info("warden %s started: pid %d, %d programs, control %s", WARDEN_VERSION, (int)getpid(),
            s->n_children, s->control_url);
    sup_event_emit(s, "config", "", "", "", "started");
    sup_child_eval_deps(s);
    return 0;
}

static bool child_is_down(const sup_child *c) {
    return (c->state == SUP_STOPPED || c->state == SUP_FATAL) && !c->proc;
}

/* Someone not yet down that depends on c. */
static bool child_has_live_dependent(sup *s, const sup_child *c) {
    for (int i = 0; i < s->n_children; i++) {
        const sup_child *d = s->children[i];
        if (d == c || child_is_down(d))
            continue;
        for (int k = 0; k < d->conf->n_deps; k++)
            if (strcmp(d->conf->depends_on[k], c->conf->name) == 0)
                return true;
    }
    return false;
}

static void sup_shutdown_pass(sup *s);

static void sup_finish(sup *s) {
    wd_info("all programs stopped; exiting");
    uv_timer_stop(&s->shutdown_timer);
    uv_close((uv_handle_t *)&s->shutdown_timer, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_hup, NULL);
    bus_rep_close(s->control);
    bus_in_close(s->heartbeats);
    s->control = NULL;
    s->heartbeats = NULL;
    while (s->n_children > 0)
        sup_child_remove_at(s, s->n_children - 1);
}

void sup_shutdown_step(sup *s) {
    if (!s->draining)
        return;
    /* Stopping one child can finish another's stop synchronously and call
     * back here; the outer call then goes round again instead. */
    if (s->in_step) {
        s->step_again = true;
        return;
    }
    s->in_step = true;
    do {
        s->step_again = false;
        sup_shutdown_pass(s);
    } while (s->step_again && s->control);
    s->in_step = false;
}

static void sup_shutdown_pass(sup *s) {
    bool all_down = true;
    for (int i = 0; i < s->n_children; i++) {
        sup_child *c = s->children[i];
        if (child_is_down(c) && c->n_procs == 0)
            continue;
        all_down = false;
        if (c->state == SUP_STOPPING || c->state == SUP_UNRESPONSIVE || child_is_down(c))
            continue;
        if (!child_has_live_dependent(s, c))
            sup_fsm_dispatch(c, SUP_EV_DOWN);
    }
    if (all_down && s->control)
        sup_finish(s);
}

static void sup_on_shutdown_timeout(uv_timer_t *t) {
    sup *s = t->data;
    wd_error("shutdown did not finish within %llums: killing what is left",
             (unsigned long long)s->conf->shutdown_timeout_ms);
    for (int i = 0; i < s->n_children; i++)
        sup_child_signal(s->children[i], SIGKILL);
    s->exit_code = 1;
    _exit(1);
}

void sup_shutdown(sup *s, const char *reason) {
    if (s->draining)
        return;
    wd_info("shutting down (%s)", reason);
    sup_event_emit(s, "config", "", "", "", "shutting down");
    s->draining = true;
    for (int i = 0; i < s->n_children; i++)
        s->children[i]->want_up = false;
    uv_timer_start(&s->shutdown_timer, sup_on_shutdown_timeout, s->conf->shutdown_timeout_ms, 0);
    sup_shutdown_step(s);
}

int sup_run(sup *s) {
    uv_run(s->loop, UV_RUN_DEFAULT);
    return s->exit_code;
}

void sup_free(sup *s) {
    free(s->sections);
    s->sections = NULL;
    if (s->events)
        bus_out_close(s->events);
    s->events = NULL;
    if (s->audit_fd >= 0)
        close(s->audit_fd);
    if (s->pidfile_fd >= 0)
        close(s->pidfile_fd);
}

static void json_add_name(json_t *arr, const char *name) { json_array_append_new(arr, json_string(name)); }

/* Does a section c reads itself differ between the running config and the
 * new file? */
static bool own_sections_changed(const sup *s, const sup_sections *next, const sup_child *c) {
    const sup_sections *cur = s->sections;
    const sup_sections *both[2] = {cur, next};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < both[k]->n; i++) {
            const char *sec = both[k]->v[i].name;
            if (sup_section_owned(sec, c->conf->name, c->conf->argv[0]) &&
                sup_section_changed(cur, next, sec))
                return true;
        }
    return false;
}

/* Changed sections no program is named after ([channel:slack],
 * [breaker:redis]): warden cannot tell who reads them. */
static json_t *unowned_changes(const sup *s, const sup_sections *next,
                               const wd_supervisor_conf *conf) {
    json_t *out = json_array();
    const sup_sections *both[2] = {s->sections, next};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < both[k]->n; i++) {
            const char *sec = both[k]->v[i].name;
            bool owned = false, seen = false;
            if (!sup_section_changed(s->sections, next, sec))
                continue;
            for (int p = 0; p < conf->n_programs && !owned; p++)
                owned = sup_section_owned(sec, conf->programs[p].name, conf->programs[p].argv[0]);
            for (size_t j = 0; j < json_array_size(out) && !seen; j++)
                seen = strcmp(json_string_value(json_array_get(out, j)), sec) == 0;
            if (!owned && !seen)
                json_array_append_new(out, json_string(sec));
        }
    return out;
}

int sup_reload(sup *s, char *err, size_t errlen, json_t **report) {
    wd_supervisor_conf *next = calloc(1, sizeof *next);
    wd_conf_errors *errs = calloc(1, sizeof *errs);
    sup_sections *next_sections = calloc(1, sizeof *next_sections);
    int rc = WD_ENOMEM;
    *report = NULL;
    if (!next || !errs || !next_sections)
        goto fail;
    if ((rc = wd_conf_load_supervisor(s->config_path, NULL, next, errs)) != 0) {
        size_t off = 0;
        err[0] = '\0';
        for (int i = 0; i < errs->n && off < errlen; i++)
            off += (size_t)snprintf(err + off, errlen - off, "%s%s", i ? "; " : "", errs->msg[i]);
        goto fail;
    }
    sup_sections_load(s->config_path, next_sections);
    if (strcmp(next->run_dir, s->conf->run_dir) != 0)
        wd_warn("reload: run_dir change needs a restart of warden; keeping %s", s->conf->run_dir);
    snprintf(next->run_dir, sizeof next->run_dir, "%s", s->conf->run_dir);
    wd_log_set_level((wd_log_level)next->log_level);
    json_t *added = json_array(), *removed = json_array(), *restarted = json_array(),
           *updated = json_array(), *unchanged = json_array();
    json_t *not_applied = unowned_changes(s, next_sections, next);
    for (size_t i = 0; i < json_array_size(not_applied); i++)
        wd_warn("reload: section [%s] changed, but no program is named after it; it applies "
                "when the workers that read it restart (wardenctl restart NAME)",
                json_string_value(json_array_get(not_applied, i)));
    /* Backwards: a removal may free a child and shift those after it. */
    for (int i = s->n_children - 1; i >= 0; i--) {
        sup_child *c = s->children[i];
        bool found = false;
        for (int k = 0; k < next->n_programs; k++)
            found |= strcmp(next->programs[k].name, c->conf->name) == 0;
        if (!found && !c->removing) {
            c->removing = true;
            c->want_up = false;
            json_add_name(removed, c->conf->name);
            sup_fsm_dispatch(c, SUP_EV_DOWN);
        }
    }
    for (int k = 0; k < next->n_programs; k++) {
        const wd_program_conf *pc = &next->programs[k];
        sup_child *c = sup_child_find(s, pc->name);
        if (c && c->removing)
            continue; /* a same-named program is still stopping: next reload */
        if (!c) {
            if (s->n_children == WD_CONF_PROGRAMS_MAX || !(c = child_new(s, pc)))
                continue;
            s->children[s->n_children++] = c;
            json_add_name(added, pc->name);
            continue;
        }
        if (wd_program_conf_equal(c->conf, pc) && !own_sections_changed(s, next_sections, c)) {
            json_add_name(unchanged, pc->name);
            continue;
        }
        free(c->next_conf);
        c->next_conf = conf_dup(pc);
        brk_config bc = crash_breaker_config(pc);
        c->crash.cfg = bc;
        /* New settings are a reason to try a FATAL program again, but what
         * an operator stopped stays stopped until they start it. */
        c->want_up = !c->held_down && (pc->autostart || c->want_up);
        json_add_name(c->want_up ? restarted : updated, pc->name);
        if (c->state == SUP_STOPPED || c->state == SUP_FATAL || c->state == SUP_BACKOFF) {
            free(c->conf);
            c->conf = c->next_conf;
            c->next_conf = NULL;
            if (c->state == SUP_BACKOFF)
                sup_fsm_dispatch(c, SUP_EV_RESTART);
        } else if (c->want_up) {
            sup_fsm_dispatch(c, SUP_EV_RESTART);
        } /* else still stopping after an operator's stop: next_conf waits */
    }
    for (int i = s->n_children - 1; i >= 0; i--)
        sup_child_maybe_free(s->children[i]);
    /* The programs now live in the children; keep the supervisor's own
     * settings of the new file. */
    next->n_programs = 0;
    free(s->conf);
    s->conf = next;
    next = NULL;
    free(s->sections);
    s->sections = next_sections;
    next_sections = NULL;
    /* updated: new settings taken by a program that stays stopped.
     * not_applied: changed sections warden cannot attribute to a program. */
    *report = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "added", added, "removed", removed,
                        "restarted", restarted, "updated", updated, "unchanged", unchanged,
                        "not_applied", not_applied);
    char summary[256];
    snprintf(summary, sizeof summary, "reloaded: %zu added, %zu removed, %zu restarted",
             json_array_size(added), json_array_size(removed), json_array_size(restarted));
    wd_info("%s", summary);
    sup_event_emit(s, "config", "", "", "", summary);
    sup_child_eval_deps(s);
    rc = 0;
fail:
    free(next_sections);
    free(next);
    free(errs);
    return rc;
}
