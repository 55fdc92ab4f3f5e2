/* Capture of a child's stdout/stderr: a pipe read on the loop, split into
 * lines of at most line_max bytes (a longer line is cut, marked, and the rest
 * up to its newline discarded, so a 10 MB line costs line_max bytes), each
 * line stamped and written to the supervisor's stdout and kept in a bounded
 * ring per child for `wardenctl logs`. Memory per child is bounded by
 * ring_lines * line_max plus one line buffer per stream. */
#ifndef WD_LOGCAP_H
#define WD_LOGCAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define SUP_LOG_TRUNC_MARK " [line truncated]"

typedef struct {
    uint64_t seq;
    uint64_t real_ns;
    int pid;
    uint8_t stream; /* 1 stdout, 2 stderr */
    uint32_t len;
    char *text; /* owned, NUL terminated */
} sup_logline;

typedef struct {
    sup_logline *lines; /* owned array of cap entries */
    size_t cap, count, head; /* head: index of the oldest line */
    uint64_t next_seq;
    uint64_t bytes; /* text bytes held */
} sup_logring;

int sup_logring_init(sup_logring *r, size_t cap);
void sup_logring_free(sup_logring *r);
/* Keeps a copy of text; a truncated line gets SUP_LOG_TRUNC_MARK appended so
 * `wardenctl logs` shows the cut as warden's stdout does. */
void sup_logring_push(sup_logring *r, uint64_t real_ns, int pid, int stream, const char *text,
                      size_t len, bool truncated);
/* The i-th line from the oldest (0 <= i < count). */
const sup_logline *sup_logring_at(const sup_logring *r, size_t i);

/* Splits a byte stream into lines. */
typedef void (*sup_line_cb)(void *arg, const char *line, size_t len, bool truncated);

typedef struct {
    char *buf; /* owned, line_max bytes */
    size_t len, line_max;
    bool discarding; /* inside an over-long line, until its newline */
} sup_linesplit;

int sup_linesplit_init(sup_linesplit *ls, size_t line_max);
void sup_linesplit_free(sup_linesplit *ls);
void sup_linesplit_feed(sup_linesplit *ls, const char *data, size_t n, sup_line_cb cb,
                        void *arg);
/* Emits a last line without newline (at end of stream). */
void sup_linesplit_flush(sup_linesplit *ls, sup_line_cb cb, void *arg);

/* One captured stream of one process: a uv_pipe_t and its splitter. Lines
 * go to on_line; on_closed runs once the pipe handle is closed. */
typedef void (*sup_logcap_line_cb)(void *owner, int stream, int pid, const char *line,
                                   size_t len, bool truncated);
typedef void (*sup_logcap_closed_cb)(void *owner);

typedef struct sup_logcap {
    uv_pipe_t pipe;
    bool open;
    int stream; /* 1 stdout, 2 stderr */
    int pid;    /* the process that wrote it, kept past its exit */
    sup_linesplit split;
    sup_logcap_line_cb on_line;
    sup_logcap_closed_cb on_closed;
    void *owner;
} sup_logcap;

/* Starts reading fd (takes ownership of it, even on error). */
int sup_logcap_start(sup_logcap *lc, uv_loop_t *loop, int fd, int stream, int pid,
                     size_t line_max, sup_logcap_line_cb on_line, sup_logcap_closed_cb on_closed,
                     void *owner);
void sup_logcap_prepare_stdout(void);
/* Stops reading and closes the pipe (asynchronously); pending text is flushed. */
void sup_logcap_stop(sup_logcap *lc);

#endif
