/* Worker runtime, registered breakers: publishes each breaker's state and
 * counters in the heartbeat (so the supervisor's status, and the health
 * worker's /metrics and /readyz, see them without calling the worker), and
 * answers the built-in commands `breakers` (full JSON with history, for
 * /api/circuit-breakers/history) and `breaker-reset` (the safe manual
 * reset behind POST /api/circuit-breakers/WORKER/BREAKER/reset). */
#include "breaker_conf.h"
#include "breaker_json.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "wd_error.h"
#include "worker_int.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WRK_BRK_SAMPLE_NAME_MAX PROTO_METRIC_NAME_MAX

/* Whether the operator configured breaker NAME: a [breaker:NAME] section in
 * the worker's config file or a WARDEN_BREAKER_<NAME>_* variable. */
static bool brk_configured(wd_conf *conf, const char *name) {
    char section[WD_CONF_NAME_MAX + 16], prefix[WD_CONF_NAME_MAX + 24];
    size_t n;
    snprintf(section, sizeof section, "breaker:%s", name);
    for (size_t i = 0; conf != NULL && i < wd_conf_n_entries(conf); i++)
        if (strcmp(wd_conf_entry_at(conf, i)->section, section) == 0)
            return true;
    n = (size_t)snprintf(prefix, sizeof prefix, "WARDEN_BREAKER_");
    for (const char *p = name; *p && n + 2 < sizeof prefix; p++)
        prefix[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    prefix[n++] = '_';
    prefix[n] = '\0';
    for (char **v = environ; v && *v; v++)
        if (strncmp(*v, prefix, n) == 0)
            return true;
    return false;
}

/* The operator's settings beat the worker's built-in ones: when breaker NAME
 * is configured, its whole config comes from brk_conf_load (seed defaults,
 * the section, then WARDEN_BREAKER_* variables). A bad value is logged and
 * the built-in config kept (check-config reports it before a start). */
static void brk_apply_operator_config(wrk_ctx *c, brk_breaker *b) {
    wd_conf *conf = NULL;
    wd_conf_errors *errs;
    brk_config cfg;
    if (!wd_conf_name_valid(b->name) || (errs = calloc(1, sizeof *errs)) == NULL)
        return;
    const char *path = wrk_config_path(c);
    if (path != NULL && wd_conf_read(path, environ, &conf, errs) != 0) {
        wd_conf_free(conf);
        conf = NULL;
    }
    if (brk_configured(conf, b->name)) {
        memset(errs, 0, sizeof *errs);
        if (brk_conf_load(conf, b->name, environ, &cfg, errs) == 0) {
            b->cfg = cfg;
            wd_log(WD_LOG_INFO, "breaker %s: settings from [breaker:%s] / WARDEN_BREAKER_*",
                   b->name, b->name);
        } else {
            wd_log(WD_LOG_WARN, "breaker %s: keeping built-in settings: %s", b->name,
                   errs->n > 0 ? errs->msg[0] : "bad configuration");
        }
    }
    wd_conf_free(conf);
    free(errs);
}

int wrk_breaker_register(wrk_ctx *c, brk_breaker *b, bool critical) {
    if (c == NULL || b == NULL || b->name[0] == '\0' || strlen(b->name) > PROTO_NAME_MAX)
        return WD_EINVAL;
    for (uint32_t i = 0; i < c->n_regs; i++)
        if (c->regs[i].b == b || strcmp(c->regs[i].b->name, b->name) == 0)
            return WD_EEXIST;
    if (c->n_regs >= PROTO_BREAKERS_MAX)
        return WD_ETOOBIG;
    brk_apply_operator_config(c, b);
    c->regs[c->n_regs++] = (wrk_brk_reg){.b = b, .critical = critical || b->cfg.critical};
    return 0;
}

void wrk_breaker_unregister(wrk_ctx *c, brk_breaker *b) {
    if (c == NULL)
        return;
    for (uint32_t i = 0; i < c->n_regs; i++) {
        if (c->regs[i].b == b) {
            memmove(&c->regs[i], &c->regs[i + 1], (c->n_regs - i - 1) * sizeof c->regs[0]);
            c->n_regs--;
            return;
        }
    }
}

static wrk_brk_reg *brk_find(wrk_ctx *c, const char *name) {
    for (uint32_t i = 0; i < c->n_regs; i++)
        if (strcmp(c->regs[i].b->name, name) == 0)
            return &c->regs[i];
    return NULL;
}

/* brk_state and proto_breaker_state list the states in the same order. */
_Static_assert((int)BRK_DISABLED == (int)PROTO_BRK_DISABLED, "breaker state orders differ");

static void hb_sample(proto_heartbeat *hb, const char *metric, const char *breaker,
                      const char *extra, double v) {
    if (hb->n_metrics >= PROTO_METRICS_MAX)
        return;
    proto_metric *m = &hb->metrics[hb->n_metrics];
    int n = snprintf(m->name, sizeof m->name, "%s{breaker=\"%s\"%s}", metric, breaker,
                     extra != NULL ? extra : "");
    if (n < 0 || (size_t)n >= sizeof m->name)
        return; /* a name that does not fit is dropped, never cut */
    m->value = v;
    hb->n_metrics++;
}

/* Breaker names are [A-Za-z0-9_.-] by convention; a quote or backslash
 * would break the sample's label syntax, so such a breaker gets no samples. */
static bool label_safe(const char *s) {
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
            return false;
    return true;
}

void wrk_brk_heartbeat(wrk_ctx *c, proto_heartbeat *hb) {
    uint64_t now = wd_clock_mono_ns();
    for (uint32_t i = 0; i < c->n_regs; i++) {
        const brk_breaker *b = c->regs[i].b;
        uint32_t j = 0;
        while (j < hb->n_breakers && strcmp(hb->breakers[j].name, b->name) != 0)
            j++;
        if (j == hb->n_breakers) {
            if (hb->n_breakers >= PROTO_BREAKERS_MAX)
                continue;
            hb->n_breakers++;
            snprintf(hb->breakers[j].name, sizeof hb->breakers[j].name, "%s", b->name);
        }
        hb->breakers[j].state = (proto_breaker_state)b->state;
        if (!label_safe(b->name))
            continue;
        hb_sample(hb, "wrk_breaker_critical", b->name, NULL,
                  c->regs[i].critical || b->cfg.critical ? 1 : 0);
        hb_sample(hb, "wrk_breaker_transitions_total", b->name, NULL, (double)b->history_len);
        hb_sample(hb, "wrk_breaker_opens_total", b->name, NULL, (double)b->total_opens);
        hb_sample(hb, "wrk_breaker_calls_total", b->name, ",result=\"success\"",
                  (double)b->total_successes);
        hb_sample(hb, "wrk_breaker_calls_total", b->name, ",result=\"failure\"",
                  (double)b->total_failures);
        hb_sample(hb, "wrk_breaker_calls_total", b->name, ",result=\"rejected\"",
                  (double)b->total_rejected);
        hb_sample(hb, "wrk_breaker_retry_in_seconds", b->name, NULL,
                  (double)brk_retry_in(b, now) / (double)WD_NS_PER_SEC);
    }
}

/* Nanoseconds since the breaker last went OPEN or FORCED_OPEN, and that
 * transition's reason; false when its history holds none. */
static bool brk_opened_at(const brk_breaker *b, uint64_t *at_ns, const char **reason) {
    for (uint32_t i = 0; i < BRK_HISTORY; i++) {
        const brk_transition *t = brk_history_at(b, i);
        if (t == NULL)
            return false;
        if (t->to == BRK_OPEN || t->to == BRK_FORCED_OPEN) {
            *at_ns = t->at_ns;
            *reason = t->reason;
            return true;
        }
    }
    return false;
}

static double ns_to_s(uint64_t ns) { return (double)ns / (double)WD_NS_PER_SEC; }

/* brk_to_json's view (common/breaker_json.h), plus what the health worker
 * reads: critical as registered, totals, seconds until half-open and since
 * the breaker opened. */
static json_t *brk_json(const wrk_brk_reg *r, uint64_t now) {
    const brk_breaker *b = r->b;
    uint64_t retry = brk_retry_in(b, now), at;
    const char *why;
    json_t *j = brk_to_json(b, now, true);
    if (j == NULL)
        return NULL;
    json_object_set_new(j, "critical", json_boolean(r->critical || b->cfg.critical));
    json_object_set_new(j, "transitions_total", json_integer((json_int_t)b->history_len));
    json_object_set_new(j, "retry_in_s", retry > 0 ? json_real(ns_to_s(retry)) : json_null());
    if (brk_opened_at(b, &at, &why) && b->state != BRK_CLOSED)
        json_object_set_new(j, "opened_ago_s", json_real(ns_to_s(now > at ? now - at : 0)));
    return j;
}

static int brk_cmd_list(wrk_ctx *c, json_t **data) {
    uint64_t now = wd_clock_mono_ns();
    json_t *arr = json_array();
    for (uint32_t i = 0; i < c->n_regs; i++)
        json_array_append_new(arr, brk_json(&c->regs[i], now));
    *data = json_pack("{s:o}", "breakers", arr);
    return *data != NULL ? 0 : WD_ENOMEM;
}

static int brk_cmd_reset(wrk_ctx *c, const proto_ctl_request *req, json_t **data, char *err,
                         size_t errlen) {
    const char *name = proto_ctl_request_arg(req, "name");
    const char *reason = proto_ctl_request_arg(req, "reason");
    const char *ov = proto_ctl_request_arg(req, "override");
    const char *min_open = proto_ctl_request_arg(req, "min_open_ms");
    bool override = false;
    int64_t min_open_ms = WRK_BRK_MIN_OPEN_MS;
    if (name == NULL || name[0] == '\0') {
        snprintf(err, errlen, "breaker-reset: missing name=BREAKER");
        return WD_EINVAL;
    }
    if (reason == NULL || reason[0] == '\0') {
        snprintf(err, errlen, "breaker-reset: a reason is required (it goes to the audit log)");
        return WD_EINVAL;
    }
    if (ov != NULL && wd_parse_bool(ov, &override) != 0) {
        snprintf(err, errlen, "breaker-reset: override must be true or false, not '%.64s'", ov);
        return WD_EINVAL;
    }
    if (min_open != NULL && (wd_parse_int(min_open, &min_open_ms) != 0 || min_open_ms < 0)) {
        snprintf(err, errlen, "breaker-reset: min_open_ms must be a whole number >= 0, not '%.64s'",
                 min_open);
        return WD_EINVAL;
    }
    wrk_brk_reg *r = brk_find(c, name);
    if (r == NULL) {
        snprintf(err, errlen, "no breaker named '%.64s'", name);
        return WD_ENOTFOUND;
    }
    brk_breaker *b = r->b;
    uint64_t now = wd_clock_mono_ns(), at = now;
    const char *why = "";
    if (b->state == BRK_CLOSED || b->state == BRK_DISABLED) {
        snprintf(err, errlen, "breaker '%s' is %s, not open: nothing to reset", b->name,
                 brk_state_name(b->state));
        return WD_ESTATE;
    }
    brk_opened_at(b, &at, &why);
    uint64_t age_ns = now > at ? now - at : 0;
    if (!override && age_ns < (uint64_t)min_open_ms * WD_NS_PER_MS) {
        snprintf(err, errlen,
                 "breaker '%s' opened %.1f s ago (after: %.200s), less than %.1f s: the failure "
                 "is recent; pass override=true to reset anyway",
                 b->name, ns_to_s(age_ns), why, (double)min_open_ms / 1000.0);
        return WD_ESTATE;
    }
    const char *from = brk_state_name(b->state);
    char text[BRK_REASON_MAX + 1];
    snprintf(text, sizeof text, "reset by operator%s: %s", override ? " (override)" : "", reason);
    wd_info("audit: breaker '%s' reset from %s%s: %s", b->name, from,
            override ? " (override)" : "", reason);
    brk_reset(b, now, text);
    *data = json_pack("{s:s,s:s,s:s,s:b}", "name", b->name, "from", from, "to",
                      brk_state_name(b->state), "override", override);
    return 0;
}

int wrk_brk_command(wrk_ctx *c, const proto_ctl_request *req, json_t **data, int *rc, char *err,
                    size_t errlen) {
    if (strcmp(req->cmd, "breakers") == 0)
        *rc = brk_cmd_list(c, data);
    else if (strcmp(req->cmd, "breaker-reset") == 0)
        *rc = brk_cmd_reset(c, req, data, err, errlen);
    else
        return 1;
    return 0;
}
