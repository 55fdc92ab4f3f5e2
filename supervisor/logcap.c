#include "logcap.h"
#include "wd_error.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOGCAP_READ_CHUNK 65536

int sup_logring_init(sup_logring *r, size_t cap) {
    memset(r, 0, sizeof *r);
    r->lines = calloc(cap ? cap : 1, sizeof *r->lines);
    if (!r->lines)
        return WD_ENOMEM;
    r->cap = cap ? cap : 1;
    r->next_seq = 1;
    return 0;
}

void sup_logring_free(sup_logring *r) {
    for (size_t i = 0; r->lines && i < r->cap; i++)
        free(r->lines[i].text);
    free(r->lines);
    memset(r, 0, sizeof *r);
}

void sup_logring_push(sup_logring *r, uint64_t real_ns, int pid, int stream, const char *text,
                      size_t len, bool truncated) {
    size_t idx;
    if (r->count == r->cap) {
        idx = r->head; /* overwrite the oldest */
        r->head = (r->head + 1) % r->cap;
        r->bytes -= r->lines[idx].len;
        free(r->lines[idx].text);
        r->lines[idx].text = NULL;
    } else {
        idx = (r->head + r->count) % r->cap;
        r->count++;
    }
    sup_logline *l = &r->lines[idx];
    size_t mark = truncated ? sizeof SUP_LOG_TRUNC_MARK - 1 : 0;
    l->text = malloc(len + mark + 1);
    if (l->text) {
        memcpy(l->text, text, len);
        memcpy(l->text + len, SUP_LOG_TRUNC_MARK, mark);
        l->text[len + mark] = '\0';
    }
    l->len = l->text ? (uint32_t)(len + mark) : 0;
    l->seq = r->next_seq++;
    l->real_ns = real_ns;
    l->pid = pid;
    l->stream = (uint8_t)stream;
    r->bytes += l->len;
}

const sup_logline *sup_logring_at(const sup_logring *r, size_t i) {
    if (i >= r->count)
        return NULL;
    return &r->lines[(r->head + i) % r->cap];
}

int sup_linesplit_init(sup_linesplit *ls, size_t line_max) {
    memset(ls, 0, sizeof *ls);
    ls->buf = malloc(line_max ? line_max : 1);
    if (!ls->buf)
        return WD_ENOMEM;
    ls->line_max = line_max ? line_max : 1;
    return 0;
}

void sup_linesplit_free(sup_linesplit *ls) {
    free(ls->buf);
    ls->buf = NULL;
}

void sup_linesplit_feed(sup_linesplit *ls, const char *data, size_t n, sup_line_cb cb,
                        void *arg) {
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        if (ls->discarding) {
            /* The head of this line was already emitted as truncated. */
            if (nl)
                ls->discarding = false;
        } else {
            size_t room = ls->line_max - ls->len;
            size_t copy = take < room ? take : room;
            memcpy(ls->buf + ls->len, data, copy);
            ls->len += copy;
            if (take > copy || (ls->len == ls->line_max && !nl)) {
                cb(arg, ls->buf, ls->len, true);
                ls->len = 0;
                ls->discarding = !nl;
            } else if (nl) {
                size_t l = ls->len;
                if (l && ls->buf[l - 1] == '\r')
                    l--;
                cb(arg, ls->buf, l, false);
                ls->len = 0;
            }
        }
        if (!nl)
            break;
        n -= take + 1;
        data = nl + 1;
    }
}

void sup_linesplit_flush(sup_linesplit *ls, sup_line_cb cb, void *arg) {
    if (ls->len)
        cb(arg, ls->buf, ls->len, false);
    ls->len = 0;
    ls->discarding = false;
}

static void logcap_on_line(void *arg, const char *line, size_t len, bool truncated) {
    sup_logcap *lc = arg;
    lc->on_line(lc->owner, lc->stream, lc->pid, line, len, truncated);
}

static void logcap_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    static char chunk[LOGCAP_READ_CHUNK]; /* one loop thread: one buffer suffices */
    (void)h;
    (void)suggested;
    buf->base = chunk;
    buf->len = sizeof chunk;
}

static void logcap_on_close(uv_handle_t *h) {
    sup_logcap *lc = h->data;
    sup_linesplit_free(&lc->split);
    lc->on_closed(lc->owner);
}

static void logcap_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    sup_logcap *lc = st->data;
    if (nread > 0) {
        sup_linesplit_feed(&lc->split, buf->base, (size_t)nread, logcap_on_line, lc);
        return;
    }
    if (nread < 0) /* EOF or error: the child closed its end */
        sup_logcap_stop(lc);
}

int sup_logcap_start(sup_logcap *lc, uv_loop_t *loop, int fd, int stream, int pid,
                     size_t line_max, sup_logcap_line_cb on_line, sup_logcap_closed_cb on_closed,
                     void *owner) {
    memset(lc, 0, sizeof *lc);
    lc->stream = stream;
    lc->pid = pid;
    lc->on_line = on_line;
    lc->on_closed = on_closed;
    lc->owner = owner;
    if (sup_linesplit_init(&lc->split, line_max) != 0) {
        close(fd);
        return WD_ENOMEM;
    }
    uv_pipe_init(loop, &lc->pipe, 0);
    lc->pipe.data = lc;
    int rc = uv_pipe_open(&lc->pipe, fd);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&lc->pipe, logcap_alloc, logcap_on_read);
    lc->open = true;
    if (rc != 0) {
        sup_logcap_stop(lc);
        return WD_ESYS;
    }
    return 0;
}

void sup_logcap_stop(sup_logcap *lc) {
    if (!lc->open)
        return;
    lc->open = false;
    sup_linesplit_flush(&lc->split, logcap_on_line, lc);
    uv_read_stop((uv_stream_t *)&lc->pipe);
    uv_close((uv_handle_t *)&lc->pipe, logcap_on_close);
}

/* Called once at start: stdout becomes non-blocking when it is a pipe or
 * socket, so a stalled reader costs dropped lines (counted), never a stalled
 * loop. A terminal or file is left as it is. */
void sup_logcap_prepare_stdout(void) {
    struct stat st;
    if (fstat(STDOUT_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        int fl = fcntl(STDOUT_FILENO, F_GETFL);
        if (fl >= 0)
            fcntl(STDOUT_FILENO, F_SETFL, fl | O_NONBLOCK);
    }
}
