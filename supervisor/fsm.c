/* The supervisor's state machine: one table of state x event -> action, in
 * the manner of s6-supervise. The desired state (want_up) is set by
 * operators, start-up and shutdown; the observed state changes only here. A
 * NULL entry means the event does not apply in that state and is ignored. */
#include "sup.h"
#include "clock.h"
#include "log.h"
#include "text.h"
#include "wd_error.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define FSM_KILL_GRACE_MS 5000 /* after SIGKILL, how long until we complain again */

static const char *const state_names[SUP_STATE_COUNT] = {
    "STOPPED", "STARTING", "RUNNING", "STOPPING", "BACKOFF", "UNRESPONSIVE", "FATAL"};
static const char *const event_names[SUP_EV_COUNT] = {
    "up", "down", "ready", "exit", "deadline", "heartbeat-lost", "restart"};

const char *sup_state_name(sup_state s) {
    return (unsigned)s < SUP_STATE_COUNT ? state_names[s] : "?";
}
const char *sup_event_name(sup_event e) {
    return (unsigned)e < SUP_EV_COUNT ? event_names[e] : "?";
}

void sup_child_set_state(sup_child *c, sup_state to, const char *reason) {
    sup_state from = c->state;
    wd_utf8_copy(c->reason, sizeof c->reason, reason);
    if (from == to)
        return;
    c->state = to;
    wd_info("%s: %s -> %s%s%s", c->conf->name, sup_state_name(from), sup_state_name(to),
            reason && *reason ? ": " : "", reason ? reason : "");
    sup_event_emit(c->owner, "state", c->conf->name, sup_state_name(from), sup_state_name(to),
                   reason);
    if (to == SUP_STOPPED || to == SUP_FATAL) {
        sup *s = c->owner;
        sup_child_maybe_free(c); /* may free c */
        sup_shutdown_step(s);
    }
}

static void fsm_on_deadline(uv_timer_t *t) { sup_fsm_dispatch(t->data, SUP_EV_DEADLINE); }
/* A heartbeat timeout that fires this much later than due means warden
 * itself did not run (SIGSTOP, a frozen VM, starved of CPU): the workers'
 * heartbeats of that time are queued, unread, not missing. */
#define FSM_HB_LATE_MS 500

static void fsm_on_hb_lost(uv_timer_t *t);

static void fsm_hb_watch(sup_child *c, uint64_t ms) {
    c->hb_due_ms = uv_now(c->hb_watch.loop) + ms;
    uv_timer_start(&c->hb_watch, fsm_on_hb_lost, ms, 0);
}

static void fsm_on_hb_lost(uv_timer_t *t) {
    sup_child *c = t->data;
    uint64_t now = uv_now(t->loop);
    uint64_t late = now > c->hb_due_ms ? now - c->hb_due_ms : 0;
    if (late > FSM_HB_LATE_MS && !c->hb_grace) {
        /* Timers run before this iteration reads its sockets: give the
         * queued heartbeats two intervals to be read before judging. */
        uint64_t grace = 2 * c->conf->heartbeat_interval_ms;
        wd_warn("%s: heartbeat timeout noticed %llums late (warden itself was stopped or "
                "starved); waiting %llums for heartbeats already sent",
                c->conf->name, (unsigned long long)late, (unsigned long long)grace);
        c->hb_grace = true;
        fsm_hb_watch(c, grace);
        return;
    }
    c->hb_grace = false;
    sup_fsm_dispatch(c, SUP_EV_HB_LOST);
}

/* min_uptime after READY: the run counts as healthy; the crash breaker closes
 * and the backoff attempt counter starts over. */
static void fsm_on_uptime(uv_timer_t *t) {
    sup_child *c = t->data;
    c->quick_failures = 0;
    brk_record_success(&c->crash, c->crash.generation, wd_clock_mono_ns());
}

static void fsm_deadline(sup_child *c, uint64_t ms) {
    /* Timers count from the loop's cached time, taken when this iteration
     * began; after a busy iteration that is already in the past and a
     * backoff would end early. Refresh it so "restart in N ms" holds. */
    uv_update_time(c->deadline.loop);
    uv_timer_start(&c->deadline, fsm_on_deadline, ms, 0);
}

static bool fsm_deps_ready(sup_child *c, char *why, size_t whylen) {
    for (int i = 0; i < c->conf->n_deps; i++) {
        sup_child *d = sup_child_find(c->owner, c->conf->depends_on[i]);
        if (!d || d->state != SUP_RUNNING || !d->ready) {
            snprintf(why, whylen, "waiting for dependency '%s'", c->conf->depends_on[i]);
            return false;
        }
    }
    return true;
}

static void fsm_signal_stop(sup_child *c, int sig) {
    sup_child_signal_group(c, sig);
    /* A stopped (SIGSTOP) process acts on SIGTERM only once continued. */
    if (sig != SIGKILL)
        sup_child_signal_group(c, SIGCONT);
}

static void act_backoff(sup_child *c, const char *what);

/* "18:16:25Z": when a wait of in_ms ends, as wall-clock time (UTC). A reason
 * keeps its text until the next transition, and "in 32.5s" would be stale a
 * second later; the breaker's own countdown is in status. */
static void fsm_wall_at(char *buf, size_t len, uint64_t in_ms) {
    time_t t = (time_t)((wd_clock_real_ns() / WD_NS_PER_MS + in_ms + 999) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%H:%M:%SZ", &tm);
}

/* Start a process if the desired state, dependencies and crash breaker allow. */
static void act_start(sup_child *c) {
    char why[SUP_REASON_MAX + 1];
    if (!c->want_up || c->owner->draining)
        return;
    if (!fsm_deps_ready(c, why, sizeof why)) {
        uv_timer_stop(&c->deadline);
        sup_child_set_state(c, SUP_STOPPED, why);
        return;
    }
    uint64_t now = wd_clock_mono_ns();
    if (brk_allow(&c->crash, now, NULL) != 0) {
        uint64_t in_ms = brk_retry_in(&c->crash, now) / WD_NS_PER_MS + 1;
        char at[16];
        fsm_wall_at(at, sizeof at, in_ms);
        snprintf(why, sizeof why, "crash-loop breaker open; half-open start at %s", at);
        fsm_deadline(c, in_ms);
        sup_child_set_state(c, SUP_BACKOFF, why);
        return;
    }
    char err[256];
    c->ready = false;
    c->stopping_unresponsive = false;
    if (sup_child_spawn(c, err, sizeof err) != 0) {
        wd_error("%s: cannot start: %s", c->conf->name, err);
        snprintf(c->last_exit, sizeof c->last_exit, "spawn failed");
        c->spawn_ns = wd_clock_mono_ns();
        act_backoff(c, err);
        return;
    }
    /* Also from RUNNING: a long run that ended restarts at once. */
    sup_child_set_state(c, SUP_STARTING, c->conf->is_worker ? "waiting for READY" : "");
    if (!c->conf->is_worker) {
        /* A plain program has no READY: it is running once exec succeeded. */
        sup_fsm_dispatch(c, SUP_EV_READY);
        return;
    }
    fsm_deadline(c, c->conf->start_timeout_ms);
}

static void act_ready(sup_child *c) {
    c->ready = true;
    c->ready_ns = wd_clock_mono_ns();
    c->last_hb_ns = c->ready_ns;
    uv_timer_stop(&c->deadline);
    c->hb_grace = false;
    if (c->conf->is_worker)
        fsm_hb_watch(c, c->conf->heartbeat_timeout_ms);
    uv_timer_start(&c->uptime, fsm_on_uptime, c->conf->min_uptime_ms, 0);
    sup_child_set_state(c, SUP_RUNNING, "");
    sup_child_eval_deps(c->owner);
}

/* Ask the process to stop: stop_signal to its group, then SIGKILL after
 * stop_timeout. */
static void act_stop(sup_child *c) {
    uv_timer_stop(&c->hb_watch);
    uv_timer_stop(&c->uptime);
    fsm_signal_stop(c, c->conf->stop_signal);
    fsm_deadline(c, c->conf->stop_timeout_ms);
    sup_child_set_state(c, SUP_STOPPING, c->restart_pending ? "restarting" : "stop requested");
}

static void act_restart(sup_child *c) {
    c->restart_pending = true;
    act_stop(c);
}

static void act_unresponsive(sup_child *c, const char *why) {
    uv_timer_stop(&c->hb_watch);
    uv_timer_stop(&c->uptime);
    c->stopping_unresponsive = true;
    fsm_signal_stop(c, c->conf->stop_signal);
    fsm_deadline(c, c->conf->stop_timeout_ms);
    sup_child_set_state(c, SUP_UNRESPONSIVE, why);
}

static void act_hb_lost(sup_child *c) {
    char why[SUP_REASON_MAX + 1];
    snprintf(why, sizeof why, "no heartbeat for %llums",
             (unsigned long long)c->conf->heartbeat_timeout_ms);
    act_unresponsive(c, why);
}

static void act_start_timeout(sup_child *c) {
    char why[SUP_REASON_MAX + 1];
    snprintf(why, sizeof why, "no READY within start_timeout %llums",
             (unsigned long long)c->conf->start_timeout_ms);
    act_unresponsive(c, why);
}

static void act_kill(sup_child *c) {
    wd_warn("%s: did not stop within %llums, sending SIGKILL", c->conf->name,
            (unsigned long long)c->conf->stop_timeout_ms);
    sup_child_signal(c, SIGKILL);
    fsm_deadline(c, FSM_KILL_GRACE_MS);
}

/* A failed or finished run that should be retried after a delay: the crash
 * breaker counts quick failures; full jitter spreads the retries. */
static void act_backoff(sup_child *c, const char *what) {
    uint64_t now = wd_clock_mono_ns();
    char why[SUP_REASON_MAX + 1];
    c->quick_failures++;
    brk_record_failure(&c->crash, c->crash.generation, now, what);
    if (c->crash.state == BRK_OPEN) {
        uint64_t in_ms = brk_retry_in(&c->crash, now) / WD_NS_PER_MS + 1;
        char at[16];
        fsm_wall_at(at, sizeof at, in_ms);
        snprintf(why, sizeof why, "crash-loop breaker open after %s; half-open start at %s", what,
                 at);
        fsm_deadline(c, in_ms);
    } else {
        uint64_t delay = wd_backoff_full_jitter(&c->owner->rng, c->conf->backoff_base_ms,
                                                c->conf->backoff_cap_ms, c->quick_failures - 1);
        snprintf(why, sizeof why, "%s; restart %u in %llums", what, c->quick_failures,
                 (unsigned long long)delay);
        fsm_deadline(c, delay);
    }
    sup_child_set_state(c, SUP_BACKOFF, why);
}

/* The process exited on its own (or after being found unresponsive). */
static void act_exited(sup_child *c) {
    bool failed = c->stopping_unresponsive || c->last_exit_code != 0;
    uint64_t now = wd_clock_mono_ns();
    uint64_t uptime_ms = (now - c->spawn_ns) / WD_NS_PER_MS;
    uv_timer_stop(&c->deadline);
    uv_timer_stop(&c->hb_watch);
    uv_timer_stop(&c->uptime);
    c->ready = false;
    if (!c->want_up || c->owner->draining || c->removing) {
        sup_child_set_state(c, SUP_STOPPED, c->last_exit);
        return;
    }
    bool again = c->conf->restart == WD_RESTART_ALWAYS ||
                 (c->conf->restart == WD_RESTART_ON_FAILURE && failed);
    if (!again) {
        c->want_up = false;
        sup_child_set_state(c, failed ? SUP_FATAL : SUP_STOPPED, c->last_exit);
        return;
    }
    c->restarts++;
    if (uptime_ms >= c->conf->min_uptime_ms && c->crash.state == BRK_CLOSED) {
        /* A long run that ended: restart at once, as a fresh start. */
        c->quick_failures = 0;
        act_start(c);
        return;
    }
    act_backoff(c, c->last_exit);
}

/* The process exited after we asked it to stop. */
static void act_stopped(sup_child *c) {
    uv_timer_stop(&c->deadline);
    c->ready = false;
    if (c->restart_pending && !c->owner->draining && !c->removing) {
        c->restart_pending = false;
        c->restarts++;
        c->want_up = true;
        act_start(c);
        return;
    }
    c->restart_pending = false;
    sup_child_set_state(c, SUP_STOPPED, c->last_exit);
}

static void act_cancel(sup_child *c) {
    uv_timer_stop(&c->deadline);
    sup_child_set_state(c, SUP_STOPPED, "stop requested");
}

static void act_start_now(sup_child *c) {
    /* An operator's start or restart overrides a pending backoff or FATAL. */
    uv_timer_stop(&c->deadline);
    c->want_up = true;
    c->quick_failures = 0;
    act_start(c);
}

static void act_note_restart(sup_child *c) { c->restart_pending = true; }

/* An operator's stop while a restart is under way: the restart is off, the
 * process still has its stop_timeout to exit. */
static void act_drop_restart(sup_child *c) {
    c->restart_pending = false;
    sup_child_set_state(c, SUP_STOPPING, "stop requested");
}

/* An operator's start while the process is still stopping: start it again
 * once it has exited, as a restart would. */
static void act_start_after_stop(sup_child *c) {
    if (c->want_up && !c->removing)
        act_note_restart(c);
}

typedef void (*fsm_action)(sup_child *c);

static const fsm_action fsm_table[SUP_STATE_COUNT][SUP_EV_COUNT] = {
    [SUP_STOPPED] = {[SUP_EV_UP] = act_start, [SUP_EV_RESTART] = act_start_now},
    [SUP_STARTING] = {[SUP_EV_DOWN] = act_stop,
                      [SUP_EV_READY] = act_ready,
                      [SUP_EV_EXIT] = act_exited,
                      [SUP_EV_DEADLINE] = act_start_timeout,
                      [SUP_EV_RESTART] = act_restart},
    [SUP_RUNNING] = {[SUP_EV_DOWN] = act_stop,
                     [SUP_EV_EXIT] = act_exited,
                     [SUP_EV_HB_LOST] = act_hb_lost,
                     [SUP_EV_RESTART] = act_restart},
    [SUP_STOPPING] = {[SUP_EV_UP] = act_start_after_stop,
                      [SUP_EV_DOWN] = act_drop_restart,
                      [SUP_EV_EXIT] = act_stopped,
                      [SUP_EV_DEADLINE] = act_kill,
                      [SUP_EV_RESTART] = act_note_restart},
    [SUP_BACKOFF] = {[SUP_EV_DOWN] = act_cancel,
                     [SUP_EV_DEADLINE] = act_start,
                     [SUP_EV_RESTART] = act_start_now},
    [SUP_UNRESPONSIVE] = {[SUP_EV_EXIT] = act_exited,
                          [SUP_EV_DEADLINE] = act_kill},
    [SUP_FATAL] = {[SUP_EV_UP] = act_start_now, [SUP_EV_RESTART] = act_start_now},
};

void sup_fsm_dispatch(sup_child *c, sup_event ev) {
    if ((unsigned)c->state >= SUP_STATE_COUNT || (unsigned)ev >= SUP_EV_COUNT)
        return;
    fsm_action a = fsm_table[c->state][ev];
    wd_debug("%s: %s in %s%s", c->conf->name, sup_event_name(ev), sup_state_name(c->state),
             a ? "" : " (ignored)");
    if (a)
        a(c);
}

void sup_fsm_heartbeat_seen(sup_child *c) {
    if (c->state == SUP_RUNNING) {
        c->hb_grace = false;
        fsm_hb_watch(c, c->conf->heartbeat_timeout_ms);
    }
}

void sup_fsm_init_timers(sup_child *c, uv_loop_t *loop) {
    uv_timer_init(loop, &c->deadline);
    uv_timer_init(loop, &c->hb_watch);
    uv_timer_init(loop, &c->uptime);
    c->deadline.data = c->hb_watch.data = c->uptime.data = c;
}
