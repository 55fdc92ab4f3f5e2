/* Internal to the bus_*.c files: helpers shared by the socket kinds. */
#ifndef WD_BUS_INT_H
#define WD_BUS_INT_H

#include "bus.h"
#include <nng/nng.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define BUS_IPC_PREFIX "ipc://"
#define BUS_IPC_PATH_MAX 107 /* sun_path is 108 bytes including the NUL */
#define BUS_RECONN_MIN_MS 100
#define BUS_RECONN_MAX_MS 1000
/* Messages a PUSH/PUB socket queues while no peer is connected, so a READY
 * sent before the supervisor's socket is reachable still arrives. */
#define BUS_OUT_SENDBUF 128
/* Messages drained per readable event, so one busy socket cannot starve the
 * loop; the notification fd stays readable while more are queued. */
#define BUS_IN_BATCH_MAX 256
#define BUS_URL_MAX 1024
#define BUS_DRAIN_POLL_MS 2 /* bus_close_drain's polling period */

#define SP_HEADER_LEN 8

/* Connects to the ipc socket at path and does the SP handshake as protocol
 * proto, waiting at most timeout_ms for the listener's header (bus_ipc.c).
 * 0: a listener answered. WD_EUNAVAIL: nothing listens (no file, refused;
 * *connect_errno, if given, says which) or it closed on us. WD_ETIMEDOUT:
 * something accepts connections but does not answer. WD_EPROTO: not SP. */
int bus_ipc_handshake(const char *path, uint16_t proto, uint64_t timeout_ms, int *connect_errno);

/* SP protocol numbers, sent in the handshake of the stale-socket check. */
#define BUS_PROTO_PUB 0x20
#define BUS_PROTO_SUB 0x21
#define BUS_PROTO_REQ 0x30
#define BUS_PROTO_REP 0x31
#define BUS_PROTO_PUSH 0x50
#define BUS_PROTO_PULL 0x51

/* Listener watchdog. nng 1.5.2 (nng issue #1518, fixed later upstream): a
 * peer that disconnects during the SP handshake (a process killed right
 * after connecting, a raw connect()) can leave an ipc listener accepting
 * connections that never reach the socket, for good. Each listener therefore
 * connects to itself now and then (a raw unix socket that does the SP
 * handshake, bus_lsn.c); when the listener answers the handshake but no
 * connection shows up on the listening socket, or never answers, the
 * listener is closed and created again. */
/* A lost heartbeat listener must come back within about a heartbeat timeout:
 * worst case interval + BUS_LSN_STRIKES x (grace + tick), 1.3 s.
 * A restart closes every pipe of the listener (subscribers miss what is
 * published until they have redialled), so one slow probe is not enough: on a
 * starved machine the listener side of a healthy handshake has been seen to
 * lag the dialer side by more than the grace. The listener bug is permanent,
 * so a second probe, started at once, confirms it. */
#define BUS_LSN_TICK_MS 100     /* how often owners call bus_lsn_check */
#define BUS_LSN_INTERVAL_MS 500 /* between probes */
#define BUS_LSN_GRACE_MS 300    /* probe connected, listener silent: a strike */
#define BUS_LSN_STRIKES 2       /* consecutive silent probes before a restart */
#define BUS_LSN_PROBE_MAX_MS 5000
#define BUS_STALE_PROBE_MS 500   /* handshake wait when probing a socket file */


/* On the bus's closer thread: before(arg), nng_close(s), after(arg) (either
 * hook may be NULL). The closer is one lazily started thread; without it,
 * inline.
 *
 * nng 1.5.2 close hang (the reason for the closer thread). Closing a PULL
 * socket while a connected PUSH peer keeps sending can strand the closing
 * pipe's receive aio: it stays "busy" with nothing left to complete it, and
 * nng's single reaper thread then waits for it for good
 * (reaper -> pipe_destroy -> pull0_pipe_stop -> nni_aio_stop ->
 * nni_task_wait, every nng task thread idle, no warden code on any nng
 * thread). From then on no socket with pipes can finish closing in that
 * process. Reproduced with nng alone (a PUSH dialer flooding while another
 * thread closes the PULL listener: stuck within a few hundred rounds under
 * CPU load). Same family as nng issues #1543/#1813 (aio prepared but never
 * completed; fixed by nng PR #1824, nng 1.8). The loop thread therefore never
 * calls nng_close itself, and bus_close_drain bounds every wait for it. */
typedef void (*bus_close_fn)(void *arg);
void bus_close_later(nng_socket s, bus_close_fn before, bus_close_fn after, void *arg);

typedef struct {
    nng_socket sock;   /* the listening socket (owned by the caller) */
    nng_listener l;
    bool have_l;
    bool watch; /* ipc:// only */
    char url[BUS_URL_MAX];
    int mode;
    uint16_t peer_proto;  /* what a peer announces in the handshake */
    atomic_uint added;     /* pipes added on sock (nng threads) */
    /* PUB listener only: while a probe is in flight, a pipe from this very
     * process is counted and closed before it joins the socket (ADD_PRE),
     * so the PUB socket never counts the probe as a subscriber nor queues
     * messages for it. */
    atomic_bool reject_self;
    bool probing;
    int probe_fd;                  /* the probe: a raw unix socket (bus_lsn.c) */
    unsigned char probe_hdr[8];    /* the listener's SP header, as it comes */
    unsigned probe_got;            /* bytes of it so far */
    uint64_t probe_up_ms;          /* when all of it was in; 0 = not yet */
    unsigned added_before;
    uint64_t probe_start_ms, next_probe_ms;
    unsigned strikes; /* consecutive probes that connected but were not seen */
    uint64_t restarts;
} bus_lsn;

/* Starts listening on url (ipc: file mode applied before any peer can
 * connect; a stale socket file nobody answers on is removed, a live one is
 * WD_EEXIST). z must stay valid until nng_close(s) has returned. */
int bus_lsn_open(bus_lsn *z, nng_socket s, const char *url, int mode, uint16_t peer_proto,
                 char *err, size_t errlen);
/* Runs the watchdog; non-blocking, call every BUS_LSN_TICK_MS or so. */
void bus_lsn_check(bus_lsn *z);
/* Ends a probe in flight; the listener closes with the owner's socket. */
void bus_lsn_close(bus_lsn *z);


void bus_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps an nng error to a wd_errno. */
int bus_map_nng(int rv);
/* Options every socket gets (NNG_OPT_RECVMAXSZ). */
int bus_sock_setup(nng_socket s, const char *url, char *err, size_t errlen);
/* Dials in the background: the call succeeds even if nothing listens yet,
 * and nng redials on its own with a bounded backoff. */
int bus_dial_async(nng_socket s, const char *url, char *err, size_t errlen);
/* The peer's uid or pid (NNG_OPT_IPC_PEER_UID / _PID) of the pipe a message
 * came on, or BUS_PEER_UNKNOWN. */
uint64_t bus_msg_peer(nng_msg *m, const char *opt);
/* Clamps a millisecond timeout to nng_duration; 0 means none. */
nng_duration bus_duration(uint64_t ms);

#endif
