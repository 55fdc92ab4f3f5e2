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
 * entries and the old ones are discarded when they surface. A heap whose
 * stale entries outnumber live ones is swept incrementally, a bounded number
 * of entries per evaluation (pm_book_eval_dirty), so no single cycle pays for
 * a whole heap. Underlying stops sit in the underlying symbol's heaps; max
 * holding times in one deadline heap.
 *
 * Trailing stops. A trailing position's water mark is the best price since
 * it was opened, so a new high would move the band of every trailing long of
 * the symbol. Instead, positions that share a water mark share a water-mark
 * epoch (pm_epoch, per symbol and side, at most PM_EPOCHS_MAX): the epoch
 * keeps the running high (long) / low (short) of the prices evaluated since
 * it began, and a member's water mark is that running extreme, derived when
 * needed (pm_book_water). Its trailing level fires at a fixed distance from
 * the extreme: trail/100 of it (percent) or trail (absolute), so the epoch
 * indexes its members by that distance in two min-heaps and a new high costs
 * one comparison per epoch, whatever the number of positions. A price pops
 * only the members whose distance it reaches, and they are checked against
 * the exact rule (the heap keys are a superset filter with a tiny slack for
 * rounding). A position joins an epoch whose extreme equals its own water
 * mark (on load, or when a price moves its mark); with no such epoch and no
 * free slot it keeps a band of its own (the general scheme above). Epochs
 * whose extremes meet are merged. Water marks are persisted from the epochs
 * in batches (pm_book_water_take): a walk over the members of each epoch
 * whose extreme moved, not a touch of every position per quote.
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
#define PM_EPOCHS_MAX 4   /* water-mark epochs per symbol and side */
#define PM_EP_OWN 0xff    /* pm_pos.epoch of a position with a band of its own */

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
    uint8_t epoch;               /* water-mark epoch (slot), PM_EP_OWN: none */
    double quantity, entry, stop_loss, take_profit, trail, underlying_stop;
    /* The water mark: for a member of an epoch, as of its last derivation
     * (the epoch's extreme is the current one; use pm_book_water). */
    double water;
    double pwater;               /* the last water mark persisted (or loaded); -1: unknown */
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
    size_t sweep;  /* incremental compaction: next index to examine */
    bool queued;   /* in the book's sweep queue */
} pm_heap;

/* A water-mark epoch: members share the running extreme x (see above). The
 * heaps are min-heaps of the distance at which a member's trailing stop
 * fires: pct holds trail/100 (a fraction of x), abs the trail itself. */
typedef struct {
    /* what a quote touches first */
    double x;             /* running high (long) / low (short) since it began */
    uint32_t members;     /* live members; 0: the slot is free */
    uint32_t mods;        /* changes of the heaps (a persistence walk restarts) */
    pm_heap pct, abs;
    /* persistence */
    bool dirty;           /* x moved since its members' marks were taken */
    bool queued;          /* in the book's list of dirty epochs */
    bool walking;
    uint32_t walk_mods;
    double walk_x;
    size_t walk_pos;      /* persistence walk: next entry (pct, then abs) */
} pm_epoch;

/* An epoch by address: symbol, side, slot. */
typedef struct {
    uint32_t sym;
    uint8_t side, slot;
} pm_eref;

/* A heap by address: symbol and which (0 lo, 1 hi, 2.. the epochs' heaps). */
typedef struct {
    uint32_t sym;
    uint32_t which;
} pm_href;

/* A water mark to persist. */
typedef struct {
    int64_t id;
    double water;
} pm_water;

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
    pm_epoch *ep[2];       /* by side: PM_EPOCHS_MAX slots, NULL until used */
    uint8_t ep_live[2];    /* by side: bit k set while slot k has members */
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
    pm_eref *dirty_ep;     /* epochs whose extreme moved: marks to persist */
    size_t n_dirty_ep, cap_dirty_ep, ep_rot;
    pm_href *sweeps;       /* heaps being compacted incrementally */
    size_t n_sweeps, cap_sweeps;
    /* counts */
    uint32_t n_open, n_exiting, n_closing;
    uint64_t evaluated;    /* positions evaluated by prices (pops that were live) */
    uint64_t stale_pops;   /* heap entries discarded */
    uint64_t swept;        /* stale entries removed by incremental compaction */
    uint64_t full_compactions; /* whole-heap filters (a heap outgrew its sweep) */
    uint64_t epoch_joins, epoch_merges;
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
 * against its symbol's stored price, without the index (a book is evaluated
 * by one or the other: the scan takes positions out of their epochs). */
size_t pm_book_scan_all(pm_book *b, uint64_t now_mono_ns);
const char *pm_book_account_name(const pm_book *b, uint32_t account);
/* Puts an EXITING position back to OPEN (its exit was refused). */
void pm_book_reopen(pm_book *b, uint32_t pos);
/* Queues p's water mark for the next persistence batch (also after a failed
 * write: it is taken again whatever it was). */
void pm_book_note_water(pm_book *b, uint32_t pos);
/* p's current water mark: the best price since it was opened (its entry
 * price while none was better); 0 for a position without trailing stop
 * and no persisted mark. */
double pm_book_water(const pm_book *b, uint32_t pos);
/* True when water marks wait to be persisted. */
bool pm_book_water_pending(const pm_book *b);
/* Takes up to max water marks to persist (open positions whose mark moved
 * since it was last taken): the queued ones, then the members of epochs
 * whose extreme moved. Bounded work per call; call again while pending. */
size_t pm_book_water_take(pm_book *b, pm_water *out, size_t max);
/* Incremental compaction: examines up to budget heap entries of the heaps
 * queued for it. pm_book_eval_dirty calls it with PM_SWEEP_BUDGET. Returns
 * entries examined. */
size_t pm_book_sweep(pm_book *b, size_t budget);
#define PM_SWEEP_BUDGET 4096
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
