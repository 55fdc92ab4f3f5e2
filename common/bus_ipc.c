/* A raw SP handshake on an ipc socket path, with a deadline: a plain unix
 * socket sends our 8-byte SP header and waits for the listener's. It tells
 * apart "nothing listens here" (no file, connection refused) from "a
 * listener is there but does not answer" (its process is stopped or wedged),
 * which nng's blocking dial cannot: it waits out its own 10 s negotiation
 * timeout. Our header goes out with the connect, so the listener's
 * negotiation always completes, however early we close (a bare connect and
 * close can break an nng 1.5.2 listener, see bus_int.h). */
#include "bus_int.h"
#include "clock.h"
#include "wd_error.h"
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BUS_IPC_RETRY_MS 10 /* a full accept backlog: try the connect again */

static int ipc_connect(const char *path, uint64_t deadline_ms, int *fd_out, int *connect_errno) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (path[0] == '\0' || strlen(path) > BUS_IPC_PATH_MAX)
        return WD_EINVAL;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return WD_ESYS;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            *fd_out = fd;
            return 0;
        }
        int e = errno;
        close(fd);
        /* EAGAIN: the listener's backlog is full, nobody is accepting. */
        if (e != EAGAIN) {
            if (connect_errno != NULL)
                *connect_errno = e;
            return WD_EUNAVAIL;
        }
        if (wd_clock_mono_ms() + BUS_IPC_RETRY_MS > deadline_ms)
            return WD_ETIMEDOUT;
        struct timespec ts = {.tv_nsec = BUS_IPC_RETRY_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int bus_ipc_handshake(const char *path, uint16_t proto, uint64_t timeout_ms, int *connect_errno) {
    uint64_t deadline = wd_clock_mono_ms() + timeout_ms;
    int fd = -1;
    if (connect_errno != NULL)
        *connect_errno = 0;
    int rc = ipc_connect(path, deadline, &fd, connect_errno);
    if (rc != 0)
        return rc;
    const unsigned char hdr[SP_HEADER_LEN] = {
        0, 'S', 'P', 0, (unsigned char)(proto >> 8), (unsigned char)(proto & 0xff), 0, 0};
    unsigned char reply[SP_HEADER_LEN];
    size_t got = 0;
    rc = WD_ETIMEDOUT;
    if (send(fd, hdr, sizeof hdr, MSG_NOSIGNAL) != (ssize_t)sizeof hdr) {
        rc = WD_EUNAVAIL;
        goto out;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    while (got < sizeof reply) {
        uint64_t now = wd_clock_mono_ms();
        if (now >= deadline)
            goto out;
        int n = poll(&pfd, 1, (int)(deadline - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto out;
        ssize_t r = recv(fd, reply + got, sizeof reply - got, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0) {
            rc = WD_EUNAVAIL; /* closed on us before answering */
            goto out;
        }
        got += (size_t)r;
    }
    rc = (reply[0] == 0 && reply[1] == 'S' && reply[2] == 'P' && reply[3] == 0) ? 0 : WD_EPROTO;
out:
    close(fd);
    return rc;
}
