/* bus listeners: creation with the ipc file mode and stale-file handling,
 * and the watchdog that works around nng 1.5.2 losing a listener when a peer
 * disconnects during the SP handshake (see bus_int.h). */
#include "bus_int.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"
#include <errno.h>
#include <nng/transport/ipc/ipc.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>


/* Removes the socket file at path when nothing answers on it (left by a
 * process that died). A live listener is WD_EEXIST. A bare connect and close
 * would itself trigger the nng bug in a live nng listener, so the probe does
 * the SP handshake: our header is sent before we close, and the peer's
 * negotiation completes normally. Returns 0 when the path is free. */
static int lsn_remove_stale(const bus_lsn *z, const char *path, char *err, size_t errlen) {
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
        return 0; /* absent, or not a socket: nng reports what is wrong */
    int e = 0;
    int rc = bus_ipc_handshake(path, z->peer_proto, BUS_STALE_PROBE_MS, &e);
    if (rc == WD_ESYS) {
        bus_seterr(err, errlen, "%s: socket: %s", z->url, strerror(errno));
        return WD_ESYS;
    }
    if (rc == WD_EUNAVAIL && e != 0) { /* the connect failed: nobody listens */
        if (e == ECONNREFUSED && unlink(path) != 0 && errno != ENOENT) {
            bus_seterr(err, errlen, "%s: cannot remove stale socket: %s", z->url,
                       strerror(errno));
            return WD_ESYS;
        }
        return 0;
    }
    bus_seterr(err, errlen, "%s: already in use by a running process%s", z->url,
               rc == 0 ? "" : " (not answering)");
    return WD_EEXIST;
}

static int lsn_listen(bus_lsn *z, char *err, size_t errlen) {
    bool ipc = strncmp(z->url, BUS_IPC_PREFIX, strlen(BUS_IPC_PREFIX)) == 0;
    int rc, rv;
    if (ipc) {
        const char *path = z->url + strlen(BUS_IPC_PREFIX);
        if (path[0] == '\0' || strlen(path) > BUS_IPC_PATH_MAX) {
            bus_seterr(err, errlen, "%s: socket path empty or longer than %d bytes", z->url,
                       BUS_IPC_PATH_MAX);
            return WD_EINVAL;
        }
        if ((rc = lsn_remove_stale(z, path, err, errlen)) != 0)
            return rc;
    }
    if ((rv = nng_listener_create(&z->l, z->sock, z->url)) != 0) {
        bus_seterr(err, errlen, "%s: %s", z->url, nng_strerror(rv));
        return bus_map_nng(rv);
    }
    /* nng applies the mode between bind() and listen(), so no peer can
     * connect while the file still has the umask's permissions. */
    if (ipc && z->mode > 0 &&
        (rv = nng_listener_set_int(z->l, NNG_OPT_IPC_PERMISSIONS, z->mode)) != 0) {
        bus_seterr(err, errlen, "%s: set permissions %o: %s", z->url, (unsigned)z->mode,
                   nng_strerror(rv));
        nng_listener_close(z->l);
        return bus_map_nng(rv);
    }
    if ((rv = nng_listener_start(z->l, 0)) != 0) {
        bus_seterr(err, errlen, "%s: listen: %s", z->url, nng_strerror(rv));
        nng_listener_close(z->l);
        return bus_map_nng(rv);
    }
    z->have_l = true;
    return 0;
}

/* nng threads: count only. */
static void lsn_added_cb(nng_pipe p, nng_pipe_ev ev, void *arg) {
    bus_lsn *z = arg;
    (void)p;
    (void)ev;
    atomic_fetch_add(&z->added, 1);
}

/* nng threads, PUB listeners: our own probe is seen, then turned away. */
static void lsn_pre_cb(nng_pipe p, nng_pipe_ev ev, void *arg) {
    bus_lsn *z = arg;
    uint64_t pid;
    (void)ev;
    if (!atomic_load(&z->reject_self) ||
        nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &pid) != 0 || pid != (uint64_t)getpid())
        return;
    atomic_fetch_add(&z->added, 1);
    nng_pipe_close(p);
}

int bus_lsn_open(bus_lsn *z, nng_socket s, const char *url, int mode, uint16_t peer_proto,
                 char *err, size_t errlen) {
    int rv;
    memset(z, 0, sizeof *z);
    /* Only ipc:// is watched: a tcp:// listen address (a wildcard) may not
     * be dialable by the process itself. */
    z->watch = strncmp(url, BUS_IPC_PREFIX, strlen(BUS_IPC_PREFIX)) == 0;
    if (strlen(url) >= sizeof z->url) {
        bus_seterr(err, errlen, "url longer than %d bytes", BUS_URL_MAX - 1);
        return WD_EINVAL;
    }
    memcpy(z->url, url, strlen(url) + 1);
    z->sock = s;
    z->mode = mode;
    z->peer_proto = peer_proto;
    z->probe_fd = -1;
    atomic_init(&z->added, 0);
    atomic_init(&z->reject_self, false);
    if ((rv = nng_pipe_notify(s, NNG_PIPE_EV_ADD_POST, lsn_added_cb, z)) != 0 ||
        (peer_proto == BUS_PROTO_SUB &&
         (rv = nng_pipe_notify(s, NNG_PIPE_EV_ADD_PRE, lsn_pre_cb, z)) != 0)) {
        bus_seterr(err, errlen, "%s: pipe notify: %s", url, nng_strerror(rv));
        return bus_map_nng(rv);
    }
    z->next_probe_ms = wd_clock_mono_ms() + BUS_LSN_INTERVAL_MS;
    return lsn_listen(z, err, errlen);
}

static void lsn_probe_end(bus_lsn *z) {
    if (!z->probing)
        return;
    close(z->probe_fd);
    z->probe_fd = -1;
    z->probing = false;
    atomic_store(&z->reject_self, false);
    z->next_probe_ms = wd_clock_mono_ms() + BUS_LSN_INTERVAL_MS;
}

/* The probe is a plain unix socket that speaks the 8-byte SP handshake, not
 * an nng dialer: nng 1.5.2 loses a dialer and its pipe (memory and, with
 * them, descriptors) when the dialer's socket is closed while it connects
 * or redials, and a probe that PUB listeners turn away redials all the
 * time. Our header goes out with the connect, so the listener's negotiation
 * always completes, whenever we close. 0, or an errno when the connect
 * failed. */
static int lsn_probe_start(bus_lsn *z) {
    const char *path = z->url + strlen(BUS_IPC_PREFIX);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1); /* length checked by lsn_listen */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        wd_debug("bus: %s: listener probe: socket: %s", z->url, strerror(errno));
        z->next_probe_ms = wd_clock_mono_ms() + BUS_LSN_INTERVAL_MS;
        return 0;
    }
    z->added_before = atomic_load(&z->added);
    z->probe_start_ms = wd_clock_mono_ms();
    z->probe_up_ms = 0;
    z->probe_got = 0;
    /* Before the connect: the listener may take the pipe at once. */
    atomic_store(&z->reject_self, z->peer_proto == BUS_PROTO_SUB);
    const unsigned char hdr[SP_HEADER_LEN] = {
        0, 'S', 'P', 0, (unsigned char)(z->peer_proto >> 8), (unsigned char)(z->peer_proto & 0xff),
        0, 0};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, hdr, sizeof hdr, MSG_NOSIGNAL) != (ssize_t)sizeof hdr) {
        int e = errno;
        close(fd);
        atomic_store(&z->reject_self, false);
        z->next_probe_ms = wd_clock_mono_ms() + BUS_LSN_INTERVAL_MS;
        return e;
    }
    z->probe_fd = fd;
    z->probing = true;
    return 0;
}

/* Reads what has come of the listener's handshake; sets probe_up_ms once all
 * of it is in. false when the listener closed the probe first or answered
 * something that is not an SP header for our protocol. */
static bool lsn_probe_read(bus_lsn *z) {
    while (z->probe_got < SP_HEADER_LEN) {
        ssize_t n = recv(z->probe_fd, z->probe_hdr + z->probe_got, SP_HEADER_LEN - z->probe_got,
                         MSG_DONTWAIT);
        if (n > 0) {
            z->probe_got += (unsigned)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return true; /* not yet */
        return false;    /* closed or failed before the handshake */
    }
    if (z->probe_up_ms == 0) {
        const unsigned char *h = z->probe_hdr;
        uint16_t proto = (uint16_t)(h[4] << 8 | h[5]);
        if (h[0] != 0 || h[1] != 'S' || h[2] != 'P' || h[3] != 0 || proto != (z->peer_proto ^ 1))
            return false;
        z->probe_up_ms = wd_clock_mono_ms();
    }
    return true;
}

static void lsn_restart(bus_lsn *z, const char *why) {
    char err[BUS_URL_MAX + 128] = "";
    wd_warn("bus: %s: %s; restarting the listener", z->url, why);
    if (z->have_l)
        nng_listener_close(z->l); /* also closes its pipes: their peers redial */
    z->have_l = false;
    z->restarts++;
    int rc = lsn_listen(z, err, sizeof err);
    if (rc != 0)
        wd_error("bus: restarting listener failed: %s (%s)", err, wd_strerror(rc));
}

void bus_lsn_check(bus_lsn *z) {
    if (!z->watch)
        return;
    uint64_t now = wd_clock_mono_ms();
    if (!z->have_l) {
        if (now >= z->next_probe_ms) {
            lsn_restart(z, "no listener");
            z->next_probe_ms = now + BUS_LSN_INTERVAL_MS;
        }
        return;
    }
    if (!z->probing) {
        if (now < z->next_probe_ms)
            return;
        int e = lsn_probe_start(z);
        /* Refused or no file: nothing listens there any more. */
        if (e == ECONNREFUSED || e == ENOENT) {
            char why[128];
            snprintf(why, sizeof why, "own probe cannot connect (%s)", strerror(e));
            lsn_restart(z, why);
        } else if (e != 0) {
            wd_debug("bus: %s: listener probe: %s", z->url, strerror(e));
        }
        return;
    }
    if (!lsn_probe_read(z)) {
        /* The listener ended the handshake (a restart of its own, or not an
         * SP listener any more): no verdict; the next probe will tell. */
        wd_debug("bus: %s: listener probe closed before the handshake", z->url);
        lsn_probe_end(z);
        return;
    }
    uint64_t up = z->probe_up_ms;
    /* Healthy once the listener answered and a connection reached the
     * socket (ours, or another peer's meanwhile). */
    if (up != 0 && atomic_load(&z->added) != z->added_before) {
        lsn_probe_end(z);
        z->strikes = 0;
        return;
    }
    if (up == 0) {
        if (now - z->probe_start_ms < BUS_LSN_PROBE_MAX_MS)
            return;
        lsn_probe_end(z);
        z->strikes = 0;
        /* Others got through meanwhile: the next probe will tell. */
        if (atomic_load(&z->added) == z->added_before)
            lsn_restart(z, "own probe gets no handshake");
        return;
    }
    if (now < up + BUS_LSN_GRACE_MS)
        return;
    lsn_probe_end(z);
    if (++z->strikes < BUS_LSN_STRIKES) {
        wd_debug("bus: %s: probe not seen within %d ms (%u of %d); probing again", z->url,
                 BUS_LSN_GRACE_MS, z->strikes, BUS_LSN_STRIKES);
        z->next_probe_ms = now; /* confirm at once */
        /* The slow probe's pipe may still reach the listener: keep turning
         * our own pipes away until the next probe. */
        atomic_store(&z->reject_self, z->peer_proto == BUS_PROTO_SUB);
        return;
    }
    z->strikes = 0;
    lsn_restart(z, "connections no longer reach the socket (nng 1.5.2 listener bug)");
}

void bus_lsn_close(bus_lsn *z) {
    /* The listener closes with its socket, on the closer thread: closing it
     * here, concurrently with that, has hung nng_close in nng 1.5.2. */
    lsn_probe_end(z);
}
