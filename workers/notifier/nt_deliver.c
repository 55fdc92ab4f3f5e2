/* Delivery: one queue per channel, with its breaker, throttle (rate limit
 * and Retry-After pauses), retries with full jitter, a retry budget and
 * storm digests. Nothing here blocks: HTTP goes through common/http.h, SMTP
 * through common/curl_uv.h, and waits are timers. */
#include "nt.h"
#include "backoff.h"
#include "clock.h"
#include "curl_uv.h"
#include "http.h"
#include "log.h"
#include "wd_error.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NT_THROTTLE_UNLIMITED 100000.0 /* "no rate limit": pauses still apply */
#define NT_WEBHOOK_CONCURRENCY 16
#define NT_LOG_CONCURRENCY 1024

/* nt_smtp.c */
int nt_smtp_send(nt_job *job, const char *msg, size_t len);
void nt_smtp_cancel(nt_job *job);

static const char *const fail_names[NT_FAIL_COUNT] = {
    "http_4xx", "http_5xx", "rate_limited", "timeout", "network",
    "breaker_open", "smtp_4xx", "smtp_5xx", "other"};

const char *nt_fail_reason_name(nt_fail_reason r) {
    return (unsigned)r < NT_FAIL_COUNT ? fail_names[r] : "other";
}

static void pump(nt_channel *ch);

/* ---- secrets from env or file ---- */

static int read_secret(const char *spec_env, const char *spec_file, char *out, size_t outlen,
                       const char *what, char *err, size_t errlen) {
    if (spec_env && spec_env[0]) {
        const char *v = getenv(spec_env);
        if (!v || !v[0]) {
            snprintf(err, errlen, "%s: environment variable %s is not set", what, spec_env);
            return WD_ECONFIG;
        }
        if (strlen(v) >= outlen) {
            snprintf(err, errlen, "%s: value of %s is too long", what, spec_env);
            return WD_ECONFIG;
        }
        memcpy(out, v, strlen(v) + 1);
        return 0;
    }
    if (spec_file && spec_file[0]) {
        FILE *f = fopen(spec_file, "r");
        if (!f) {
            snprintf(err, errlen, "%s: %s: %s", what, spec_file, strerror(errno));
            return WD_ECONFIG;
        }
        size_t n = fread(out, 1, outlen - 1, f);
        fclose(f);
        out[n] = '\0';
        out[strcspn(out, "\r\n")] = '\0'; /* the first line */
        if (!out[0]) {
            snprintf(err, errlen, "%s: %s is empty", what, spec_file);
            return WD_ECONFIG;
        }
        return 0;
    }
    return WD_ENOTFOUND;
}

static int parse_headers(nt_channel *ch, char *err, size_t errlen) {
    int n = 0;
    ch->headers[n++] = strdup("Content-Type: application/json");
    const char *p = ch->conf.headers;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[NT_HEADER_MAX];
        snprintf(item, sizeof item, "%.*s", (int)len, p);
        p = end ? end + 1 : NULL;
        char *b = item;
        while (*b == ' ')
            b++;
        if (!*b)
            continue;
        char *eq = strchr(b, '=');
        if (!eq || eq == b || n >= NT_HEADERS_MAX) {
            snprintf(err, errlen, "headers: expected Name=value (at most %d)", NT_HEADERS_MAX);
            return WD_ECONFIG;
        }
        *eq = '\0';
        const char *val = eq + 1;
        char secret[NT_SECRET_MAX + 1];
        if (strncmp(val, "env:", 4) == 0 || strncmp(val, "file:", 5) == 0) {
            bool env = val[0] == 'e';
            int rc = read_secret(env ? val + 4 : NULL, env ? NULL : val + 5, secret,
                                 sizeof secret, "headers", err, errlen);
            if (rc != 0)
                return rc;
            val = secret;
        }
        if (strpbrk(b, ": \r\n") || strpbrk(val, "\r\n")) {
            snprintf(err, errlen, "headers: header %d: bad name or value", n);
            return WD_ECONFIG;
        }
        char line[NT_HEADER_MAX + NT_SECRET_MAX + 4];
        snprintf(line, sizeof line, "%s: %s", b, val);
        if (!(ch->headers[n++] = strdup(line)))
            return WD_ENOMEM;
    }
    ch->headers[n] = NULL;
    return 0;
}

static void on_timer(uv_timer_t *t) { pump(t->data); }

static int channel_open(nt_state *nt, nt_channel *ch, char *err, size_t errlen) {
    char why[256];
    int rc = nt_route_parse(&ch->route, ch->conf.severities, ch->conf.labels, why, sizeof why);
    if (rc != 0) {
        snprintf(err, errlen, "[channel:%s] %s", ch->name, why);
        return WD_ECONFIG;
    }
    nt_channel_type t = (nt_channel_type)ch->conf.type;
    if (t != NT_CH_LOG) {
        rc = read_secret(ch->conf.url_env, ch->conf.url_file, ch->url, sizeof ch->url, "url", why,
                         sizeof why);
        if (rc == WD_ECONFIG && ch->conf.url_env[0] && !getenv(ch->conf.url_env) &&
            !ch->conf.url[0] && !ch->conf.url_file[0]) {
            /* A channel whose URL is only given through an unset variable
             * (the demo's Slack channel) is off, not a config error. */
            wd_warn("channel %s: %s is not set: the channel is off", ch->name, ch->conf.url_env);
            ch->disabled = true;
            return 0;
        }
        if (rc == WD_ENOTFOUND)
            snprintf(ch->url, sizeof ch->url, "%s", ch->conf.url), rc = 0;
        if (rc == 0 && !ch->url[0])
            snprintf(why, sizeof why, "url: missing (url, url_env or url_file)"), rc = WD_ECONFIG;
        bool smtp = strncmp(ch->url, "smtp://", 7) == 0 || strncmp(ch->url, "smtps://", 8) == 0;
        if (rc == 0 && t == NT_CH_EMAIL && !smtp)
            snprintf(why, sizeof why, "url: email needs smtp:// or smtps://"), rc = WD_ECONFIG;
        if (rc == 0 && t == NT_CH_EMAIL && (!ch->conf.mail_from[0] || !ch->conf.mail_to[0]))
            snprintf(why, sizeof why, "email needs from and to"), rc = WD_ECONFIG;
        if (rc == 0 && t != NT_CH_EMAIL && wd_http_redact_url(ch->url, ch->redacted, sizeof ch->redacted) == WD_EINVAL)
            snprintf(why, sizeof why, "url: not a valid http(s) URL"), rc = WD_ECONFIG;
        if (rc == 0 && t == NT_CH_EMAIL)
            snprintf(ch->redacted, sizeof ch->redacted, "%.*s", (int)strcspn(ch->url, "@/?") + 2,
                     ch->url); /* scheme:// only; the host may follow user info */
        if (rc == 0 && t == NT_CH_EMAIL) {
            int prc = read_secret(ch->conf.password_env, ch->conf.password_file, ch->password,
                                  sizeof ch->password, "password", why, sizeof why);
            rc = prc == WD_ENOTFOUND ? 0 : prc;
        }
        if (rc == 0 && t != NT_CH_EMAIL)
            rc = parse_headers(ch, why, sizeof why);
        if (rc != 0) {
            snprintf(err, errlen, "[channel:%s] %s", ch->name, why);
            return rc;
        }
    } else {
        snprintf(ch->redacted, sizeof ch->redacted, "log");
    }
    ch->concurrency = ch->conf.concurrency > 0 ? (uint32_t)ch->conf.concurrency
                      : t == NT_CH_WEBHOOK    ? NT_WEBHOOK_CONCURRENCY
                      : t == NT_CH_LOG        ? NT_LOG_CONCURRENCY
                                              : 1;
    ch->max_attempts = ch->conf.max_attempts > 0 ? (uint32_t)ch->conf.max_attempts
                                                 : (uint32_t)nt->conf.max_attempts;
    uint64_t now = wd_clock_mono_ns();
    double rate = ch->conf.rate_per_s > 0 ? ch->conf.rate_per_s
                  : t == NT_CH_SLACK      ? 1.0
                                          : NT_THROTTLE_UNLIMITED;
    throttle_config tc = {.rate_max_per_s = rate,
                          .rate_min_per_s = rate < 0.1 ? rate : 0.1,
                          .increase_step_per_s = rate / 10,
                          .clean_interval_ns = 10 * WD_NS_PER_SEC,
                          .burst = (uint32_t)ch->conf.burst};
    if (throttle_init(&ch->thr, &tc, now) != 0) {
        snprintf(err, errlen, "[channel:%s] rate/burst out of range", ch->name);
        return WD_ECONFIG;
    }
    ch->thr_on = t != NT_CH_LOG;
    brk_config bc;
    brk_config_defaults(&bc);
    bc.failure_threshold = (uint32_t)ch->conf.breaker_failures;
    bc.open_ns = ch->conf.breaker_cooldown_ms * WD_NS_PER_MS;
    bc.open_max_ns = bc.open_ns * 20;
    snprintf(ch->brk_name, sizeof ch->brk_name, "channel-%.40s", ch->name);
    brk_init(&ch->brk, ch->brk_name, &bc, now ^ (uint64_t)ch->idx);
    wd_retry_budget_init(&ch->budget, nt->conf.retry_budget_ratio,
                         nt->conf.retry_budget_min_per_s, now);
    wd_rng_seed(&ch->rng, now + 7919u * (uint64_t)ch->idx);
    nt_storm_init(&ch->storm, (uint32_t)nt->conf.storm_threshold,
                  nt->conf.storm_window_ms * WD_NS_PER_MS);
    if (t == NT_CH_WEBHOOK || t == NT_CH_SLACK) {
        wd_http_opts ho;
        wd_http_opts_defaults(&ho);
        ho.name = ch->name;
        ho.timeout_ms = (uint32_t)ch->conf.timeout_ms;
        ho.connect_timeout_ms = ho.timeout_ms < 5000 ? ho.timeout_ms : 5000;
        /* The channel's own breaker (above) is the one that counts; the
         * client's per-endpoint breaker is kept from ever tripping. */
        ho.breaker.failure_threshold = UINT32_MAX;
        ho.breaker.window_calls = 0;
        if ((rc = wd_http_new(nt->loop, &ho, &ch->http, why, sizeof why)) != 0) {
            snprintf(err, errlen, "[channel:%s] http: %s", ch->name, why);
            return rc;
        }
    } else if (t == NT_CH_EMAIL) {
        if ((rc = wd_curl_uv_new(nt->loop, (wd_curl_uv **)&ch->curl)) != 0) {
            snprintf(err, errlen, "[channel:%s] curl: %s", ch->name, wd_strerror(rc));
            return rc;
        }
    }
    uv_timer_init(nt->loop, &ch->timer);
    ch->timer.data = ch;
    if (nt->ctx)
        wrk_breaker_register(nt->ctx, &ch->brk, false);
    return 0;
}

int nt_channels_open(nt_state *nt, char *err, size_t errlen) {
    for (int i = 0; i < nt->n_channels; i++) {
        nt_channel *ch = &nt->ch[i];
        ch->nt = nt;
        ch->idx = i;
        int rc = channel_open(nt, ch, err, errlen);
        if (rc != 0)
            return rc;
        if (ch->disabled)
            continue;
        wd_info("channel %s: type=%s url=%s severities=%s labels=%s", ch->name,
                nt_channel_type_name((nt_channel_type)ch->conf.type), ch->redacted,
                ch->conf.severities, ch->conf.labels[0] ? ch->conf.labels : "-");
    }
    return 0;
}

static void free_job(nt_job *j) {
    free(j->v);
    free(j);
}

static void free_list(nt_job *j) {
    while (j) {
        nt_job *n = j->next;
        free_job(j);
        j = n;
    }
}

void nt_channels_close(nt_state *nt) {
    for (int i = 0; i < nt->n_channels; i++) {
        nt_channel *ch = &nt->ch[i];
        if (ch->nt == NULL || ch->disabled)
            continue;
        if (ch->http)
            wd_http_close(ch->http, NULL, NULL); /* callbacks run with WD_ECLOSED */
        ch->http = NULL;
        if (ch->curl)
            wd_curl_uv_close((wd_curl_uv *)ch->curl, NULL, NULL);
        ch->curl = NULL;
        if (ch->timer.data && !uv_is_closing((uv_handle_t *)&ch->timer))
            uv_close((uv_handle_t *)&ch->timer, NULL);
        free_list(ch->ready_head);
        free_list(ch->waiting);
        if (ch->digest)
            free_job(ch->digest);
        ch->ready_head = ch->ready_tail = ch->waiting = ch->digest = NULL;
        if (nt->ctx)
            wrk_breaker_unregister(nt->ctx, &ch->brk);
        for (int h = 0; ch->headers[h]; h++)
            free(ch->headers[h]);
        ch->headers[0] = NULL;
        memset(ch->password, 0, sizeof ch->password);
    }
}

/* ---- queues ---- */

static nt_job *job_new(nt_channel *ch, nt_alert *al) {
    nt_job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->ch = ch;
    j->v = malloc(sizeof *j->v);
    if (!j->v) {
        free(j);
        return NULL;
    }
    j->v[0] = al;
    j->n = 1;
    return j;
}

static void push_ready(nt_channel *ch, nt_job *j) {
    j->next = NULL;
    if (ch->ready_tail)
        ch->ready_tail->next = j;
    else
        ch->ready_head = j;
    ch->ready_tail = j;
}

static void digest_add(nt_channel *ch, nt_alert *al) {
    nt_job *d = ch->digest;
    if (!d) {
        if (!(d = job_new(ch, al))) {
            wd_error("channel %s: out of memory for the storm digest", ch->name);
            return;
        }
        ch->digest = d;
        return;
    }
    nt_alert **v = realloc(d->v, (d->n + 1) * sizeof *v);
    if (!v) {
        wd_error("channel %s: out of memory for the storm digest", ch->name);
        return;
    }
    d->v = v;
    d->v[d->n++] = al;
}

void nt_deliver_alert(nt_state *nt, nt_alert *al) {
    uint64_t now = wd_clock_mono_ns();
    for (int i = 0; i < nt->n_channels; i++) {
        if (!(al->routes & (1u << i)) || nt->ch[i].disabled)
            continue; /* a disabled channel's route stays pending in Redis */
        nt_channel *ch = &nt->ch[i];
        ch->queued++;
        wd_retry_budget_on_request(&ch->budget, now);
        if (nt_storm_note(&ch->storm, now)) {
            digest_add(ch, al);
            continue;
        }
        nt_job *j = job_new(ch, al);
        if (!j) {
            wd_error("channel %s: out of memory: alert %s stays pending until a restart",
                     ch->name, al->id);
            continue;
        }
        push_ready(ch, j);
    }
    for (int i = 0; i < nt->n_channels; i++)
        if ((al->routes & (1u << i)) && !nt->ch[i].disabled)
            pump(&nt->ch[i]);
}

/* Flushes storm digests whose window is over. */
void nt_channels_tick(nt_state *nt, uint64_t now_ns) {
    for (int i = 0; i < nt->n_channels; i++) {
        nt_channel *ch = &nt->ch[i];
        if (ch->digest && now_ns >= nt_storm_window_end(&ch->storm)) {
            nt_job *d = ch->digest;
            ch->digest = NULL;
            wd_info("channel %s: storm: %u alerts go out as one digest", ch->name, d->n);
            if (nt->m_digests) {
                const char *l[] = {ch->name, NULL};
                wd_counter_add(wd_metric_series(nt->m_digests, l), 1);
            }
            push_ready(ch, d);
            pump(ch);
        }
    }
}

/* ---- completion ---- */

static void count_fail(nt_channel *ch, nt_fail_reason r) {
    ch->failed++;
    ch->failed_by[r]++;
    if (ch->nt->m_failed) {
        const char *l[] = {ch->name, nt_fail_reason_name(r), NULL};
        wd_counter_add(wd_metric_series(ch->nt->m_failed, l), 1);
    }
}

static void finish_ok(nt_channel *ch, nt_job *j, uint64_t now) {
    nt_state *nt = ch->nt;
    for (uint32_t i = 0; i < j->n; i++) {
        nt_alert *al = j->v[i];
        ch->delivered++;
        if (nt->m_latency && al->stored_mono_ns)
            wd_hist_observe(wd_metric_series(nt->m_latency, NULL),
                            (double)(now - al->stored_mono_ns) / 1e9);
        if (nt->m_delivered) {
            const char *l[] = {ch->name, NULL};
            wd_counter_add(wd_metric_series(nt->m_delivered, l), 1);
        }
        nt_store_route_done(nt, al, ch->idx);
        nt_route_finished(nt, al, ch->idx);
    }
    free_job(j);
}

static void finish_dead(nt_channel *ch, nt_job *j) {
    nt_state *nt = ch->nt;
    for (uint32_t i = 0; i < j->n; i++) {
        nt_alert *al = j->v[i];
        ch->dlq++;
        wd_warn("channel %s: alert %s to the dead letter queue after %u attempts: %s", ch->name,
                al->id, j->attempts, j->error);
        if (nt->m_dlq) {
            const char *l[] = {ch->name, NULL};
            wd_counter_add(wd_metric_series(nt->m_dlq, l), 1);
        }
        nt_store_dead(nt, al, ch->idx, j->attempts, j->error);
        nt_route_finished(nt, al, ch->idx);
    }
    free_job(j);
}

/* How one attempt ended. */
typedef struct {
    bool ok;
    bool dep_failed; /* counts against the breaker (the dependency misbehaved) */
    wd_errclass cls;
    nt_fail_reason reason;
    uint64_t retry_after_ms;
    const char *error;
} nt_outcome;

/* Records how j ended, without starting anything new. */
static void complete(nt_job *j, const nt_outcome *o) {
    nt_channel *ch = j->ch;
    uint64_t now = wd_clock_mono_ns();
    ch->inflight--;
    brk_record_call(&ch->brk, j->gen, now, now - j->started_ns, !o->dep_failed,
                    o->ok ? NULL : nt_fail_reason_name(o->reason));
    if (o->ok) {
        throttle_on_success(&ch->thr, now);
        finish_ok(ch, j, now);
        return;
    }
    snprintf(j->error, sizeof j->error, "%s", o->error ? o->error : nt_fail_reason_name(o->reason));
    count_fail(ch, o->reason);
    if (o->reason == NT_FAIL_RATE_LIMITED || o->retry_after_ms)
        throttle_on_error(&ch->thr, now, true, o->retry_after_ms);
    if (o->cls != WD_ERRCLASS_TRANSIENT || j->attempts >= ch->max_attempts) {
        finish_dead(ch, j);
        return;
    }
    uint64_t delay = wd_backoff_full_jitter(&ch->rng, ch->nt->conf.retry_base_ms * WD_NS_PER_MS,
                                            ch->nt->conf.retry_cap_ms * WD_NS_PER_MS,
                                            j->attempts - 1);
    if (o->retry_after_ms * WD_NS_PER_MS > delay)
        delay = o->retry_after_ms * WD_NS_PER_MS;
    if (wd_retry_budget_try_spend(&ch->budget, now) != 0) {
        /* Budget spent: the outage is not made worse by retrying harder.
         * The alert waits for the cap instead of going dead. */
        delay = ch->nt->conf.retry_cap_ms * WD_NS_PER_MS;
        wd_debug("channel %s: retry budget spent; alert %s waits %llu ms", ch->name,
                 j->v[0]->id, (unsigned long long)(delay / WD_NS_PER_MS));
    } else {
        ch->retries++;
        if (ch->nt->m_retries) {
            const char *l[] = {ch->name, NULL};
            wd_counter_add(wd_metric_series(ch->nt->m_retries, l), 1);
        }
    }
    j->due_ns = now + delay;
    j->next = ch->waiting;
    ch->waiting = j;
}

static void job_done(nt_job *j, const nt_outcome *o) {
    nt_channel *ch = j->ch;
    complete(j, o);
    if (ch->nt->stopping) {
        if (nt_channels_inflight(ch->nt) == 0)
            nt_stop_drained(ch->nt);
        return;
    }
    pump(ch);
}

uint32_t nt_channels_inflight(const nt_state *nt) {
    uint32_t n = 0;
    for (int i = 0; i < nt->n_channels; i++)
        if (nt->ch[i].nt != NULL && !nt->ch[i].disabled)
            n += nt->ch[i].inflight;
    return n;
}

/* ---- senders ---- */

static void on_http(void *arg, const wd_http_resp *r) {
    nt_job *j = arg;
    nt_channel *ch = j->ch;
    nt_outcome o = {.cls = WD_ERRCLASS_TRANSIENT};
    char msg[NT_ERROR_MAX + 1];
    if (r->err == WD_ECLOSED) { /* shutting down: stays pending in Redis */
        free_job(j);
        return;
    }
    bool slack = ch->conf.type == NT_CH_SLACK;
    if (r->err == 0 && (!slack || (r->status == 200 && r->body_len >= 2 &&
                                   strncmp(r->body, "ok", 2) == 0))) {
        o.ok = true;
    } else if (r->err == 0) {
        snprintf(msg, sizeof msg, "HTTP %ld: not the 'ok' Slack answers", r->status);
        o.cls = WD_ERRCLASS_PERMANENT, o.reason = NT_FAIL_HTTP_4XX, o.error = msg;
    } else if (r->status > 0) {
        snprintf(msg, sizeof msg, "HTTP %ld", r->status);
        o.error = msg;
        o.cls = r->errclass;
        o.reason = r->status == 429 ? NT_FAIL_RATE_LIMITED
                   : r->status >= 500 ? NT_FAIL_HTTP_5XX
                                      : NT_FAIL_HTTP_4XX;
        /* 400/403/404/410 and the rest of 4xx but 408/429: permanent. */
        o.dep_failed = o.cls == WD_ERRCLASS_TRANSIENT;
        if (r->has_retry_after)
            o.retry_after_ms = r->retry_after_ms;
    } else {
        snprintf(msg, sizeof msg, "%.200s", r->error); /* redacted by the client */
        o.error = msg;
        o.cls = WD_ERRCLASS_TRANSIENT;
        o.reason = r->err == WD_ETIMEDOUT ? NT_FAIL_TIMEOUT : NT_FAIL_NETWORK;
        o.dep_failed = true;
    }
    job_done(j, &o);
}

static int send_http(nt_job *j) {
    nt_channel *ch = j->ch;
    nt_msg m;
    const proto_alert *as[1];
    const proto_alert **v = j->n == 1 ? as : malloc(j->n * sizeof *v);
    if (!v)
        return WD_ENOMEM;
    for (uint32_t i = 0; i < j->n; i++)
        v[i] = j->v[i]->a;
    m = (nt_msg){v, j->n, j->n == 1 ? j->v[0]->repeats : 0};
    size_t len = 0;
    char *body = ch->conf.type == NT_CH_SLACK ? nt_render_slack(&m, &len)
                                              : nt_render_webhook(&m, &len);
    if (v != as)
        free(v);
    if (!body)
        return WD_ENOMEM;
    /* The alert id lets a receiver drop the duplicate an at-least-once
     * delivery can make (a crash between sending and recording). */
    const char *hdrs[NT_HEADERS_MAX + 4];
    char idh[PROTO_ALERT_ID_MAX + 32];
    int n = 0;
    for (; ch->headers[n] && n < NT_HEADERS_MAX + 1; n++)
        hdrs[n] = ch->headers[n];
    snprintf(idh, sizeof idh, "X-Warden-Alert-Id: %s", j->v[0]->id);
    hdrs[n++] = idh;
    hdrs[n] = NULL;
    wd_http_req req = {.method = "POST", .url = ch->url, .headers = hdrs, .body = body,
                       .body_len = len};
    char err[WD_HTTP_ERROR_MAX];
    int rc = wd_http_request(ch->http, &req, on_http, j, err, sizeof err);
    free(body);
    return rc;
}

static int send_log(nt_job *j) {
    const proto_alert *as[1];
    const proto_alert **v = j->n == 1 ? as : malloc(j->n * sizeof *v);
    if (!v)
        return WD_ENOMEM;
    for (uint32_t i = 0; i < j->n; i++)
        v[i] = j->v[i]->a;
    nt_msg m = {v, j->n, j->n == 1 ? j->v[0]->repeats : 0};
    size_t len;
    char *line = nt_render_log(&m, j->ch->name, &len);
    if (v != as)
        free(v);
    if (!line)
        return WD_ENOMEM;
    wd_info("%s", line);
    free(line);
    return 0;
}

static int send_email(nt_job *j) {
    const proto_alert *as[1];
    const proto_alert **v = j->n == 1 ? as : malloc(j->n * sizeof *v);
    if (!v)
        return WD_ENOMEM;
    for (uint32_t i = 0; i < j->n; i++)
        v[i] = j->v[i]->a;
    nt_msg m = {v, j->n, j->n == 1 ? j->v[0]->repeats : 0};
    size_t len;
    char *msg = nt_render_email(&m, j->ch->conf.mail_from, j->ch->conf.mail_to,
                                wd_clock_real_ns(), &len);
    if (v != as)
        free(v);
    if (!msg)
        return WD_ENOMEM;
    return nt_smtp_send(j, msg, len); /* takes msg */
}

/* Starts as many jobs as the breaker, the throttle and the window allow. */
static void pump(nt_channel *ch) {
    nt_state *nt = ch->nt;
    if (nt->stopping || !ch->timer.data)
        return;
    uint64_t now = wd_clock_mono_ns(), next = UINT64_MAX;
    for (nt_job **pp = &ch->waiting; *pp;) {
        nt_job *j = *pp;
        if (j->due_ns <= now) {
            *pp = j->next;
            push_ready(ch, j);
        } else {
            if (j->due_ns < next)
                next = j->due_ns;
            pp = &j->next;
        }
    }
    while (ch->ready_head && ch->inflight < ch->concurrency) {
        uint64_t gen, wait = 0;
        if (brk_allow(&ch->brk, now, &gen) != 0) {
            wait = brk_retry_in(&ch->brk, now);
            wait = wait ? wait : 100 * WD_NS_PER_MS; /* half-open and full: soon */
            if (now + wait < next)
                next = now + wait;
            break;
        }
        if (ch->thr_on && throttle_acquire(&ch->thr, now, &wait) != 0) {
            brk_release(&ch->brk, gen);
            if (now + wait < next)
                next = now + wait;
            break;
        }
        nt_job *j = ch->ready_head;
        ch->ready_head = j->next;
        if (!ch->ready_head)
            ch->ready_tail = NULL;
        j->next = NULL;
        j->attempts++;
        j->gen = gen;
        j->started_ns = now;
        ch->inflight++;
        int rc;
        switch ((nt_channel_type)ch->conf.type) {
        case NT_CH_LOG:
            rc = send_log(j);
            if (rc == 0) {
                nt_outcome o = {.ok = true};
                complete(j, &o);
                continue;
            }
            break;
        case NT_CH_EMAIL: rc = send_email(j); break;
        default: rc = send_http(j); break;
        }
        if (rc != 0) {
            nt_outcome o = {.cls = rc == WD_EINVAL ? WD_ERRCLASS_PERMANENT : WD_ERRCLASS_TRANSIENT,
                            .reason = rc == WD_EOPEN ? NT_FAIL_BREAKER : NT_FAIL_OTHER,
                            .error = wd_strerror(rc)};
            complete(j, &o);
        }
    }
    for (nt_job *j = ch->waiting; j; j = j->next)
        if (j->due_ns < next)
            next = j->due_ns;
    if (next != UINT64_MAX) {
        now = wd_clock_mono_ns();
        next = next > now ? next : now;
        uint64_t ms = (next - now + WD_NS_PER_MS - 1) / WD_NS_PER_MS;
        uv_timer_start(&ch->timer, on_timer, ms ? ms : 1, 0);
    }
}

/* Called by nt_smtp.c when a transfer ends. */
void nt_smtp_done(nt_job *j, bool ok, long code, const char *error);
void nt_smtp_done(nt_job *j, bool ok, long code, const char *error) {
    nt_outcome o = {.ok = ok, .cls = WD_ERRCLASS_TRANSIENT, .error = error};
    if (!ok) {
        if (code >= 500 && code < 600)
            o.cls = WD_ERRCLASS_PERMANENT, o.reason = NT_FAIL_SMTP_5XX;
        else if (code >= 400 && code < 500)
            o.reason = NT_FAIL_SMTP_4XX, o.dep_failed = true;
        else
            o.reason = NT_FAIL_NETWORK, o.dep_failed = true;
    }
    job_done(j, &o);
}
