/* Alerts to the notifier through common/alert_outbox.h (bounded, held
 * until acked): one per exit once its fill is recorded (info; warning for a
 * stop or the kill switch), one per breaker opening (warning). Alerts carry
 * no secret: ids, symbols, reasons and prices only. */
#include "pm_worker.h"
#include "alert_outbox.h"
#include "clock.h"
#include "log.h"
#include "wd_error.h"

#include <stdio.h>
#include <string.h>

#define PM_ALERT_CAPACITY 4096

int pm_alert_start(pm_worker *w) {
    alert_outbox_opts o = {0};
    alert_outbox *ob = NULL;
    char err[256];
    if (!w->conf.alerts)
        return 0;
    o.url = w->alerts_url;
    o.sender = wrk_name(w->ctx);
    o.capacity = PM_ALERT_CAPACITY;
    o.metrics = w->reg;
    int rc = alert_outbox_open(w->loop, &o, &ob, err, sizeof err);
    if (rc != 0) {
        /* Alerts are a side channel: monitoring goes on without them. */
        wd_warn("alerts: %s (no alerts will be sent)", err);
        return rc;
    }
    w->alerts = ob;
    return 0;
}

static void push(pm_worker *w, proto_alert *a) {
    char err[256];
    if (w->alerts == NULL)
        return;
    snprintf(a->source, sizeof a->source, "%s", wrk_name(w->ctx));
    a->time_ns = wd_clock_real_ns();
    if (alert_outbox_push(w->alerts, a, NULL, err, sizeof err) != 0)
        wd_warn("alert not queued: %s", err);
}

void pm_alert_exit(pm_worker *w, const pm_pos *p, const pm_fill *f) {
    static proto_alert a; /* large; the loop thread is the only user */
    char num[64];
    pm_exit_reason r = (pm_exit_reason)p->reason;
    const char *sym = w->book.syms[p->sym].name;
    memset(&a, 0, sizeof a);
    a.severity = r == PM_EXIT_STOP_LOSS || r == PM_EXIT_KILL_SWITCH ||
                         r == PM_EXIT_UNDERLYING_STOP
                     ? PROTO_SEV_WARNING
                     : PROTO_SEV_INFO;
    snprintf(a.title, sizeof a.title, "position %lld %s closed: %s", (long long)p->id, sym,
             pm_exit_reason_name(r));
    snprintf(a.text, sizeof a.text,
             "Position %lld (%s %g %s, account %s, entry %g) closed by %s at %g; broker order %s.",
             (long long)p->id, p->side == PM_LONG ? "long" : "short", p->quantity, sym,
             pm_book_account_name(&w->book, p->account), p->entry, pm_exit_reason_name(r),
             f->price, f->boid);
    snprintf(a.dedup_key, sizeof a.dedup_key, "exit-%lld", (long long)p->id);
    snprintf(num, sizeof num, "%lld", (long long)p->id);
    proto_alert_label_add(&a, "kind", "exit");
    proto_alert_label_add(&a, "position", num);
    proto_alert_label_add(&a, "symbol", sym);
    proto_alert_label_add(&a, "reason", pm_exit_reason_name(r));
    push(w, &a);
}

void pm_alert_breaker(pm_worker *w, const char *name, const char *reason) {
    static proto_alert a;
    memset(&a, 0, sizeof a);
    a.severity = PROTO_SEV_WARNING;
    snprintf(a.title, sizeof a.title, "circuit breaker %s opened", name);
    snprintf(a.text, sizeof a.text, "The position monitor's breaker %s opened: %s. Calls fail "
                                    "fast until it half-opens; exits stay queued.", name, reason);
    proto_alert_label_add(&a, "kind", "breaker");
    proto_alert_label_add(&a, "breaker", name);
    push(w, &a);
}

void pm_alert_stop(pm_worker *w) {
    if (w->alerts == NULL)
        return;
    alert_outbox_close(w->alerts, NULL, NULL);
    w->alerts = NULL;
}

void pm_alert_fini(pm_worker *w) { (void)w; }
