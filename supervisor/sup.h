/* The supervisor's state: one documented struct (sup) holding the child
 * table, the sockets and the counters, driven by one libuv loop. Each child
 * keeps its desired state (want_up) apart from its observed state (state);
 * fsm.c holds the one state x event table that moves between them. */
#ifndef WD_SUP_H
#define WD_SUP_H

#include "breaker.h"
#include "backoff.h"
#include "bus.h"
#include "config.h"
#include "logcap.h"
#include "proto.h"
#include "sections.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#define SUP_URL_MAX (WD_CONF_PATH_MAX + 128)
/* ipc:// paths live in sockaddr_un.sun_path (108 bytes incl. NUL). */
#define SUP_IPC_PATH_MAX 107
#define SUP_REASON_MAX 255
#define SUP_EVENTS_RING 512
#define SUP_EXIT_DESC_MAX 64

typedef enum {
    SUP_STOPPED = 0,
    SUP_STARTING,
    SUP_RUNNING,
    SUP_STOPPING,
    SUP_BACKOFF,
    SUP_UNRESPONSIVE,
    SUP_FATAL,
    SUP_STATE_COUNT
} sup_state;

typedef enum {
    SUP_EV_UP = 0,     /* desired state became up, or a dependency became ready */
    SUP_EV_DOWN,       /* desired state became down */
    SUP_EV_READY,      /* READY received (workers) or exec done (programs) */
    SUP_EV_EXIT,       /* the process exited (pidfd readable) */
    SUP_EV_DEADLINE,   /* the state's deadline timer fired */
    SUP_EV_HB_LOST,    /* no heartbeat within heartbeat_timeout */
    SUP_EV_RESTART,    /* operator asked for a restart */
    SUP_EV_COUNT
} sup_event;

const char *sup_state_name(sup_state s);
const char *sup_event_name(sup_event e);

typedef struct sup sup;
typedef struct sup_child sup_child;

/* One running process of a child. Heap-allocated per spawn so a restart
 * never reuses handles whose close is still pending; freed once its pidfd
 * poll and both output pipes are closed. */
typedef struct sup_proc {
    sup_child *child;
    pid_t pid;
    int pidfd;
    uv_poll_t exit_poll;
    sup_logcap out, err;
    int open_handles;
    bool exited;
} sup_proc;

struct sup_child {
    sup *owner;
    wd_program_conf *conf; /* owned; replaced on reload */
    bool want_up;          /* desired state */
    sup_state state;       /* observed state */
    char reason[SUP_REASON_MAX + 1]; /* why it is in this state, for people */
    bool removing;         /* reload dropped it: free once stopped */
    bool held_down;        /* an operator's stop: a reload leaves it stopped */
    bool restart_pending;  /* stop, then start again */
    bool stopping_unresponsive; /* the stop in progress counts as a failure */

    wd_program_conf *next_conf; /* reload: applied at the next start */
    sup_proc *proc; /* the live process, NULL when none */
    pid_t pid;      /* its pid, 0 when none */
    int n_procs;    /* proc structs not yet freed (live or draining output) */
    uv_timer_t deadline;  /* start_timeout, stop_timeout, backoff */
    uv_timer_t hb_watch;  /* heartbeat_timeout while running */
    uint64_t hb_due_ms;   /* when hb_watch should fire, in uv_now() time */
    bool hb_grace;        /* hb_watch fired late once: waiting for queued beats */
    uv_timer_t uptime;    /* min_uptime after READY: closes the crash breaker */
    uint64_t spawn_ns, exec_ns, ready_ns, last_hb_ns; /* monotonic */
    uint32_t restarts;
    uint32_t quick_failures; /* attempt count for backoff */
    int last_exit_code;      /* -1 when killed by a signal */
    int last_exit_signal;
    char last_exit[SUP_EXIT_DESC_MAX];
    uint64_t last_exit_real_ns;
    bool ready;
    brk_breaker crash;               /* crash-loop breaker */

    /* From the latest heartbeat. */
    uint64_t progress, loop_lag_us;
    proto_heartbeat *hb;     /* owned; NULL until the first heartbeat */
    uint64_t hb_count, hb_rejected;

    sup_logring ring;        /* last lines of both streams */

    int timers_open;         /* timers not yet closed while freeing */
    bus_req *cmd;            /* REQ to worker-NAME.sock, dialed on first use */
    char cmd_url[SUP_URL_MAX];
};

typedef struct {
    uint64_t seq;
    uint64_t real_ns;
    proto_event ev;
} sup_event_rec;

struct sup {
    uv_loop_t *loop;
    char config_path[WD_CONF_PATH_MAX];
    wd_supervisor_conf *conf; /* owned */
    sup_sections *sections;   /* owned: workers' own sections, for reload */
    int n_children;
    sup_child *children[WD_CONF_PROGRAMS_MAX];

    bus_rep *control;
    bus_in *heartbeats;
    bus_out *events;
    char hb_url[SUP_URL_MAX], events_url[SUP_URL_MAX], control_url[SUP_URL_MAX];

    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t shutdown_timer;
    bool draining;
    bool in_step, step_again; /* shutdown_step re-entry guard */
    int exit_code;

    uint64_t start_ns, start_real_ns;
    uint64_t seq;  /* envelope seq for everything the supervisor sends */
    wd_rng rng;

    sup_event_rec events_ring[SUP_EVENTS_RING];
    uint64_t events_seq;

    int audit_fd;
    int pidfile_fd;

    /* Counters shown in status. */
    uint64_t hb_rejected, ctl_errors, ctl_requests, log_lines_dropped;
};

/* Lifecycle (sup.c). */
int sup_init(sup *s, uv_loop_t *loop, const char *config_path, wd_supervisor_conf *conf,
             char *err, size_t errlen);
int sup_run(sup *s);
void sup_shutdown(sup *s, const char *reason);
/* Stops what may stop now during shutdown (dependents before dependencies). */
void sup_shutdown_step(sup *s);
void sup_free(sup *s);
sup_child *sup_child_find(sup *s, const char *name);
int sup_reload(sup *s, char *err, size_t errlen, json_t **report);
void sup_child_eval_deps(sup *s); /* start children whose dependencies are ready */

/* The state machine (fsm.c). */
void sup_fsm_dispatch(sup_child *c, sup_event ev);
void sup_child_set_state(sup_child *c, sup_state to, const char *reason);
/* A valid heartbeat arrived: re-arm the heartbeat_timeout watchdog. */
void sup_fsm_heartbeat_seen(sup_child *c);

/* Processes (proc.c). */
int sup_child_spawn(sup_child *c, char *err, size_t errlen);
/* Signals the child through its pidfd; SIGKILL also its process group. */
int sup_child_signal(sup_child *c, int sig);
/* The same, then to the rest of its process group: the stop path, so that
 * what a wrapper script started gets stop_signal too, not only SIGKILL. */
int sup_child_signal_group(sup_child *c, int sig);
void sup_fsm_init_timers(sup_child *c, uv_loop_t *loop);
/* Frees a child whose removal is pending once nothing refers to it. */
void sup_child_maybe_free(sup_child *c);

/* Heartbeat intake (heartbeat.c). */
void sup_heartbeat_on_msg(void *arg, const void *buf, size_t len, uint64_t peer_pid);

/* Control socket (control.c). */
void sup_control_on_request(void *arg, bus_rep_request *req, const void *buf, size_t len,
                            uint64_t peer_uid, uint64_t peer_pid);

/* Events and audit (events.c). */
void sup_event_emit(sup *s, const char *kind, const char *worker, const char *from,
                    const char *to, const char *reason);
void sup_audit(sup *s, const char *action, const char *worker, const char *reason,
               uint64_t peer_uid, uint64_t peer_pid);

/* The control request parser, pure so it can be fuzzed (tests/fuzz/
 * fuzz_sup_control.c): decodes buf into r and returns the command's index
 * (0..11), or WD_EPROTO / WD_EINVAL with the reason in err. */
int sup_ctl_parse(const void *buf, size_t len, proto_ctl_request *r, char *err, size_t errlen);
/* Argument key of r as an unsigned number (def when absent), or WD_EINVAL
 * with the offending text in err. */
int sup_ctl_arg_u64(const proto_ctl_request *r, const char *key, uint64_t def, uint64_t *out,
                    char *err, size_t errlen);

#endif
