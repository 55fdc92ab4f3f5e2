/* The position monitor's evaluation core: positions, exit rules and the
 * symbol index. Pure code (no I/O, no clock of its own: every time is passed
 * in), so unit tests and bench/position_monitor drive it directly.
 *
 * Index. Each symbol keeps two heaps of price levels. For every open
 * position the rules define a band (lo, hi) of prices that change nothing
 * (pm_rules_band): a long exits at or below max(stop loss, trailing level),
 * exits at or above its take profit and moves its high-water mark above the
 * current mark; a short is the mirror image. A new price p pops only the
 * entries with lo >= p (max-heap) and hi <= p (min-heap), so the cost of a
 * quote follows the positions it can affect, not the size of the book. An
 * entry carries its position's version; a position whose band moved gets new
 * entries and the old ones are discarded when they surface (heaps are
 * compacted once stale entries outnumber live ones). Underlying stops sit in
 * the underlying symbol's heaps; max holding times in one deadline heap.
 *
 * Prices. One mark price per symbol: the mid, or the side that is present.
 * The caller decides what is fresh (pm_book_set_price is only called with a
 * usable price); the book never evaluates on a price it was not given.
 *
 * Ownership: pm_book_init allocates, pm_book_free releases; positions and
 * symbols are addressed by index and stay valid until removed. */
#ifndef WD_PM_H
#define WD_PM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PM_SYMBOL_MAX 31    /* as PROTO_MD_SYMBOL_MAX */
#define PM_ACCOUNT_MAX 63
#define PM_COID_MAX 63      /* client order id */
#define PM_BOID_MAX 63      /* broker order id */
#define PM_WHY_MAX 255      /* a rejection reason */
#define PM_SYMBOLS_MAX 65536
#define PM_ACCOUNTS_MAX 65536
#define PM_NONE UINT32_MAX
#define PM_COID_PREFIX "wd-pm-"

typedef enum { PM_LONG = 0, PM_SHORT = 1 } pm_side;
typedef enum { PM_TRAIL_NONE = 0, PM_TRAIL_PERCENT, PM_TRAIL_ABSOLUTE } pm_trail_kind;

typedef enum {
    PM_EXIT_NONE = 0,
    PM_EXIT_STOP_LOSS,
    PM_EXIT_TAKE_PROFIT,
    PM_EXIT_TRAILING_STOP,
    PM_EXIT_MAX_HOLDING,
    PM_EXIT_UNDERLYING_STOP,
    PM_EXIT_KILL_SWITCH,
    PM_EXIT_COUNT
} pm_exit_reason;

/* In memory: OPEN is watched; EXITING: a rule fired and "closing" is not yet
 * written; CLOSING: the row says closing, the broker order is under way;
 * FILLED: the broker filled it, the final write is pending. */
typedef enum { PM_ST_FREE = 0, PM_ST_OPEN, PM_ST_EXITING, PM_ST_CLOSING, PM_ST_FILLED } pm_state;

/* A positions row as loaded. Optional numbers are 0 when NULL. */
typedef struct {
    int64_t id;
    char account[PM_ACCOUNT_MAX + 1];
    char symbol[PM_SYMBOL_MAX + 1];
    char underlying[PM_SYMBOL_MAX + 1]; /* "" none */
    pm_side side;
    double quantity, entry;
    double stop_loss, take_profit; /* 0: none */
    pm_trail_kind trail_kind;
    double trail;           /* percent (0 < x < 100) or absolute distance */
    double water;           /* persisted high (long) / low (short) water mark; 0: none */
    double underlying_stop; /* 0: none */
    uint64_t max_hold_ms;   /* 0: none */
    int64_t opened_at_ns;   /* realtime */
    bool closing;           /* status 'closing' */
    pm_exit_reason reason;  /* of a closing row */
} pm_row;

typedef struct {
    int64_t id;
    uint32_t sym, usym, account; /* usym PM_NONE: no underlying stop */
    uint32_t mver, uver;         /* versions of heap entries (see above) */
    uint8_t state;               /* pm_state */
    uint8_t side, trail_kind;
    uint8_t reason;              /* pm_exit_reason once fired */
    bool water_dirty;
    bool seen;                   /* reload bookkeeping */
    double quantity, entry, stop_loss, take_profit, trail, water, underlying_stop;
    uint64_t max_hold_ms;
    int64_t opened_at_ns;
    /* Execution (pm_exec.c): the broker call of a CLOSING position. */
    uint8_t exec_get;      /* ask the broker first (reconcile) */
    uint8_t exec_inflight; /* a call is running */
    uint8_t exec_listed;   /* in the worker's list of broker calls */
    uint8_t db_inflight;   /* in a closing write under way */
    uint16_t attempts;
    uint64_t next_try_ns;  /* monotonic */
    uint64_t backoff_ns;   /* last retry delay */
    double mark;           /* price that fired the exit (0 for time/kill) */
    uint64_t fired_ns;     /* monotonic time of the firing */
} pm_pos;

typedef struct {
    double key;
    uint32_t pos;
    uint32_t tag; /* version << 1 | 1 for an underlying entry */
} pm_hent;

typedef struct {
    pm_hent *v;
    size_t n, cap;
} pm_heap;

typedef struct {
    char name[PM_SYMBOL_MAX + 1];
    double price;          /* last usable mark price; 0 none */
    double bid, ask;
    uint64_t price_ns;     /* monotonic time that price was current */
    uint64_t fetch_ns;     /* last Redis fetch started; 0 none */
    bool fetch_inflight;
    bool dirty;            /* a new price waits for evaluation */
    uint32_t refs;         /* positions using it (symbol or underlying) */
    pm_heap lo, hi;        /* lo: max-heap; hi: min-heap */
} pm_sym;

typedef struct {
    uint64_t deadline_ns; /* realtime */
    int64_t id;
    uint32_t pos;
} pm_tent;

/* Names interned to indexes (symbols, accounts): open addressing. */
typedef struct {
    char (*names)[PM_ACCOUNT_MAX + 1];
    uint32_t n, cap, max;
    uint32_t *slots; /* index + 1; 0 empty */
    uint32_t nslots;
} pm_names;

/* Position id -> index: open addressing with tombstones. */
typedef struct {
    int64_t *keys;
    uint32_t *vals; /* index + 1; 0 empty; UINT32_MAX deleted */
    uint32_t nslots, used, live;
} pm_idmap;

typedef void (*pm_fire_cb)(void *arg, uint32_t pos, pm_exit_reason reason, double price);

typedef struct {
    pm_pos *pos;
    uint32_t n_pos, cap_pos, max_pos;
    uint32_t *free_list;
    uint32_t n_free;
    pm_idmap ids;
    pm_sym *syms;
    uint32_t n_syms, cap_syms;
    pm_names symnames, accounts;
    pm_tent *time;
    size_t n_time, cap_time;
    uint32_t *dirty_water; /* positions whose water mark awaits persisting */
    size_t n_dirty_water, cap_dirty_water;
    uint32_t *dirty_syms;  /* symbols with a price not yet evaluated */
    size_t n_dirty_syms, cap_dirty_syms;
    /* counts */
    uint32_t n_open, n_exiting, n_closing;
    uint64_t evaluated;    /* positions evaluated by prices (pops that were live) */
    uint64_t stale_pops;   /* heap entries discarded */
    pm_fire_cb fire;
    void *fire_arg;
} pm_book;

/* ---- rules (pm_rules.c) ---- */
const char *pm_exit_reason_name(pm_exit_reason r); /* "stop_loss", ... */
pm_exit_reason pm_exit_reason_parse(const char *s); /* PM_EXIT_NONE when unknown */
/* Validates a row: 0, or WD_EINVAL with why ("quantity -5 is not positive",
 * "stop_loss 105 at or above entry 100 for a long"...). */
int pm_row_validate(const pm_row *r, char *why, size_t whylen);
/* The client order id of a position: PM_COID_PREFIX + id. The same position
 * always gets the same id, so a retry or a restart can never place a second
 * order for it. Returns 0 or WD_ETOOBIG. */
int pm_client_order_id(int64_t id, char *buf, size_t len);
/* The trailing level (0 when the position has no trailing stop). */
double pm_rules_trail_level(const pm_pos *p);
/* Moves the water mark with price; true when it moved. */
bool pm_rules_water(pm_pos *p, double price);
/* The exit a price fires, in order stop loss, trailing stop, take profit. */
pm_exit_reason pm_rules_price_exit(const pm_pos *p, double price);
/* True when the underlying's price fires the underlying stop. */
bool pm_rules_underlying_hit(const pm_pos *p, double uprice);
/* The realtime deadline of the max holding time, 0 when none. */
uint64_t pm_rules_deadline(const pm_pos *p);
/* Prices strictly inside (lo, hi) change nothing for p (-inf/+inf when
 * unbounded). */
void pm_rules_band(const pm_pos *p, double *lo, double *hi);
/* The mark price of a quote: mid when both sides, else the side present,
 * else 0 (no usable price). */
double pm_mark_price(double bid, double ask);

/* ---- book (pm_book.c) ---- */
int pm_book_init(pm_book *b, uint32_t max_positions, pm_fire_cb fire, void *arg);
void pm_book_free(pm_book *b);
/* Interns a symbol: its index, or -1 (WD_ETOOBIG / WD_EINVAL). */
int64_t pm_book_symbol(pm_book *b, const char *name);
/* Looks a symbol up without adding it: index or -1. */
int64_t pm_book_symbol_find(const pm_book *b, const char *name);
/* Adds or updates a validated row. A new position starts OPEN, or CLOSING
 * (exec_get set: reconcile) when the row says closing. An update of a known
 * OPEN position changes its rules; one the monitor is exiting keeps its
 * state. *out gets the index. 0, WD_ETOOBIG (book full), WD_ENOMEM. */
int pm_book_upsert(pm_book *b, const pm_row *r, uint32_t *out);
/* Removes a position (any state). 0 or WD_ENOTFOUND. */
int pm_book_remove(pm_book *b, int64_t id);
/* Index of a position id, or PM_NONE. */
uint32_t pm_book_find(const pm_book *b, int64_t id);
/* Stores a usable price for a symbol and marks it for evaluation. */
void pm_book_set_price(pm_book *b, uint32_t sym, double price, uint64_t now_mono_ns);
/* Evaluates what the pending prices can change: fires exits (state
 * EXITING, fire callback) and moves water marks. Returns positions evaluated. */
size_t pm_book_eval_dirty(pm_book *b, uint64_t now_mono_ns);
/* Evaluates one symbol at its stored price. */
size_t pm_book_eval_symbol(pm_book *b, uint32_t sym, uint64_t now_mono_ns);
/* Fires the max holding times due at now_real_ns. Returns exits fired. */
size_t pm_book_eval_time(pm_book *b, uint64_t now_real_ns, uint64_t now_mono_ns);
/* Kill switch: fires every OPEN position of account (NULL: all). */
size_t pm_book_kill(pm_book *b, const char *account, uint64_t now_mono_ns);
/* Reference for the benchmark and the tests: evaluates every OPEN position
 * against its symbol's stored price, without the index. */
size_t pm_book_scan_all(pm_book *b, uint64_t now_mono_ns);
const char *pm_book_account_name(const pm_book *b, uint32_t account);
/* Puts an EXITING position back to OPEN (its exit was refused). */
void pm_book_reopen(pm_book *b, uint32_t pos);
/* Queues p's water mark for the next persistence batch. */
void pm_book_note_water(pm_book *b, uint32_t pos);
/* Sets the state, keeping the counts right. */
void pm_book_set_state(pm_book *b, uint32_t pos, pm_state st);

/* ---- rows (pm_row.c) ---- */
/* Number of columns of PM_ROW_COLUMNS and the SELECT list itself. */
#define PM_ROW_NCOLS 17
extern const char PM_ROW_COLUMNS[];
/* Parses one row's text values (NULL entries are SQL NULL) into r and
 * validates it. 0, or WD_EINVAL with why. */
int pm_row_parse(const char *const *vals, pm_row *r, char *why, size_t whylen);

#endif
