/* Replay source: a CSV file of ticks read in chunks with uv_fs_read (on
 * libuv's thread pool, so the loop never waits on the disk) and delivered at
 * the original pace, a multiple of it, or as fast as possible (speed 0).
 *
 * Pacing: the first tick's source time is pinned to the monotonic time it
 * was read; tick i is due at t0_mono + (ts_i - ts_0) / speed. A tick that is
 * not due yet is held and a timer wakes the replay when it is. Bad lines are
 * counted by reason, logged with their line number (the first
 * AGG_BAD_LINES_LOGGED one by one, later ones only counted) and kept in a
 * small ring for the `stats` command; they never stop the replay. At the end
 * of the file the replay stops and says so; the worker stays up, and its
 * heartbeat progress stops growing. */
#include "agg_worker.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLAY_CHUNK (32u * 1024u) /* ~600 ticks: bounds how long a tick waits in its chunk */

struct agg_replay {
    agg_worker *w;
    char path[WD_CONF_PATH_MAX];
    double speed;
    uv_fs_t req;
    uv_timer_t pace;
    uv_file fd;
    bool fd_open, reading, closing, done, skipping;
    char *buf; /* REPLAY_CHUNK + AGG_CSV_LINE_MAX + 1: a carried partial line, then a chunk */
    size_t len, off;
    int64_t file_off;
    uint64_t line_no;
    agg_tick held;
    bool has_held;
    bool t0_set;
    uint64_t t0_src_ns, t0_mono_ns;
    uint64_t lines, ticks, bad;
    int pending; /* handles and requests not yet finished: freed at 0 */
};

static void replay_pump(agg_replay *r);

static void replay_maybe_free(agg_replay *r) {
    if (r->closing && r->pending == 0) {
        free(r->buf);
        free(r);
    }
}

static void bad_line(agg_replay *r, agg_drop_reason why) {
    agg_worker *w = r->w;
    r->bad++;
    agg_process_drop(w, AGG_SRC_REPLAY, why);
    w->bad_lines[w->n_bad_lines % AGG_BAD_LINES_KEPT] =
        (agg_bad_line){.line = r->line_no, .reason = why};
    w->n_bad_lines++;
    if (r->bad <= AGG_BAD_LINES_LOGGED)
        wd_warn("replay: %s:%llu: bad line (%s)%s", r->path, (unsigned long long)r->line_no,
                agg_drop_reason_name(why),
                r->bad == AGG_BAD_LINES_LOGGED ? "; further bad lines are only counted" : "");
}

static void on_pace(uv_timer_t *t) { replay_pump(t->data); }

/* Holds the tick and schedules the pump for when it is due. */
static bool hold_due(agg_replay *r, uint64_t now_mono) {
    agg_tick *t = &r->held;
    if (r->speed > 0) {
        if (!r->t0_set) {
            r->t0_set = true;
            r->t0_src_ns = t->ts_ns;
            r->t0_mono_ns = now_mono;
        }
        uint64_t due = r->t0_mono_ns;
        if (t->ts_ns > r->t0_src_ns)
            due += (uint64_t)((double)(t->ts_ns - r->t0_src_ns) / r->speed);
        if (due > now_mono) {
            uint64_t ms = (due - now_mono + WD_NS_PER_MS - 1) / WD_NS_PER_MS;
            uv_timer_start(&r->pace, on_pace, ms, 0);
            return true;
        }
    }
    return false;
}

static void on_read(uv_fs_t *req);

static void read_next(agg_replay *r) {
    if (r->reading || r->done || r->closing)
        return;
    uv_buf_t b = uv_buf_init(r->buf + r->len, REPLAY_CHUNK);
    r->reading = true;
    r->pending++;
    int rc = uv_fs_read(r->w->loop, &r->req, r->fd, &b, 1, r->file_off, on_read);
    if (rc != 0) {
        r->pending--;
        r->reading = false;
        wd_error("replay: %s: read: %s", r->path, uv_strerror(rc));
        r->done = true;
    }
}

static void close_fd(agg_replay *r) {
    if (!r->fd_open)
        return;
    /* Synchronous close of a regular file: it does not block. */
    uv_fs_t c;
    uv_fs_close(NULL, &c, r->fd, NULL);
    uv_fs_req_cleanup(&c);
    r->fd_open = false;
}

static void finish(agg_replay *r) {
    r->done = true;
    close_fd(r);
    wd_info("replay: %s: done: %llu lines, %llu ticks, %llu bad lines", r->path,
            (unsigned long long)r->lines, (unsigned long long)r->ticks,
            (unsigned long long)r->bad);
}

/* Parses and delivers complete lines from the buffer until a tick is not
 * due yet or the buffer runs out; then reads on. */
static void replay_pump(agg_replay *r) {
    if (r->closing)
        return;
    uint64_t now = wd_clock_mono_ns();
    if (r->has_held) {
        if (hold_due(r, now))
            return;
        r->has_held = false;
        r->ticks++;
        agg_process_tick(r->w, AGG_SRC_REPLAY, &r->held, now, wd_clock_real_ns());
    }
    uint64_t real = wd_clock_real_ns();
    for (;;) {
        char *start = r->buf + r->off;
        size_t avail = r->len - r->off;
        char *nl = memchr(start, '\n', avail);
        size_t llen;
        if (nl == NULL) {
            if (!(r->done && avail > 0))
                break;
            llen = avail; /* the last line, without a newline */
        } else {
            llen = (size_t)(nl - start);
        }
        r->off += llen + (nl ? 1 : 0);
        if (r->skipping) {
            /* The rest of a too long line, already counted. */
            r->skipping = false;
            continue;
        }
        r->line_no++;
        r->lines++;
        agg_drop_reason why;
        int rc = agg_csv_parse(start, llen, &r->held, &why);
        if (rc == AGG_CSV_SKIP)
            continue;
        if (rc == 0 && agg_book_venue(&r->w->book, r->held.venue) < 0)
            rc = WD_EINVAL, why = AGG_DROP_UNKNOWN_VENUE; /* reported with its line too */
        if (rc != 0) {
            bad_line(r, why);
            continue;
        }
        if (hold_due(r, now)) {
            r->has_held = true;
            return;
        }
        r->ticks++;
        agg_process_tick(r->w, AGG_SRC_REPLAY, &r->held, now, real);
    }
    /* Keep the partial line; a line longer than the limit is counted now
     * and skipped up to its newline. */
    size_t rest = r->len - r->off;
    if (rest > AGG_CSV_LINE_MAX) {
        r->line_no++;
        r->lines++;
        bad_line(r, AGG_DROP_TOO_LONG);
        r->skipping = true;
        rest = 0;
        r->off = r->len;
    }
    memmove(r->buf, r->buf + r->off, rest);
    r->len = rest;
    r->off = 0;
    if (r->done) {
        if (r->fd_open)
            finish(r);
        return;
    }
    read_next(r);
}

static void on_read(uv_fs_t *req) {
    agg_replay *r = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    r->reading = false;
    r->pending--;
    if (r->closing) {
        close_fd(r);
        replay_maybe_free(r);
        return;
    }
    if (n < 0) {
        wd_error("replay: %s: read: %s", r->path, uv_strerror((int)n));
        r->done = true;
        return;
    }
    if (n == 0) {
        r->done = true;
    } else {
        r->len += (size_t)n;
        r->file_off += n;
    }
    replay_pump(r);
}

static void on_open(uv_fs_t *req) {
    agg_replay *r = req->data;
    ssize_t fd = req->result;
    uv_fs_req_cleanup(req);
    r->pending--;
    if (r->closing) {
        if (fd >= 0) {
            uv_fs_t c;
            uv_fs_close(NULL, &c, (uv_file)fd, NULL);
            uv_fs_req_cleanup(&c);
        }
        replay_maybe_free(r);
        return;
    }
    if (fd < 0) {
        /* Not fatal: the other sources go on, and the log says why. */
        wd_error("replay: %s: open: %s", r->path, uv_strerror((int)fd));
        r->done = true;
        return;
    }
    r->fd = (uv_file)fd;
    r->fd_open = true;
    wd_info("replay: %s at %s", r->path, r->speed > 0 ? "pace" : "full speed");
    read_next(r);
}

int agg_replay_start(agg_worker *w, const char *path, double speed, char *err, size_t errlen) {
    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "source replay needs replay_file");
        return WD_EINVAL;
    }
    agg_replay *r = calloc(1, sizeof *r);
    if (r == NULL || (r->buf = malloc(REPLAY_CHUNK + AGG_CSV_LINE_MAX + 1)) == NULL) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return WD_ENOMEM;
    }
    r->w = w;
    snprintf(r->path, sizeof r->path, "%s", path);
    r->speed = speed;
    r->req.data = r;
    uv_timer_init(w->loop, &r->pace);
    r->pace.data = r;
    r->pending = 1; /* the timer */
    r->pending++;
    int rc = uv_fs_open(w->loop, &r->req, r->path, O_RDONLY | O_CLOEXEC, 0, on_open);
    if (rc != 0) {
        r->pending--;
        snprintf(err, errlen, "replay_file %s: %s", path, uv_strerror(rc));
        agg_replay_stop(r);
        return WD_EIO;
    }
    w->replay = r;
    return 0;
}

static void on_pace_closed(uv_handle_t *h) {
    agg_replay *r = h->data;
    r->pending--;
    replay_maybe_free(r);
}

void agg_replay_stop(agg_replay *r) {
    if (r == NULL || r->closing)
        return;
    r->closing = true;
    /* A read in flight still uses the fd: on_read closes it then. */
    if (r->reading)
        uv_cancel((uv_req_t *)&r->req);
    else
        close_fd(r);
    uv_close((uv_handle_t *)&r->pace, on_pace_closed);
}

void agg_replay_stats(const agg_replay *r, uint64_t *lines, uint64_t *ticks, uint64_t *bad,
                      int *done) {
    *lines = r->lines;
    *ticks = r->ticks;
    *bad = r->bad;
    *done = r->done && !r->has_held && r->len == 0;
}
