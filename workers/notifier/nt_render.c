/* Message bodies: Slack, generic webhook (JSON through jansson), email
 * (RFC 5322 text) and the log line. Pure functions of the alerts. */
#include "nt.h"
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const colors[PROTO_SEV_COUNT] = {"#439FE0", "warning", "danger"};

const char *nt_severity_color(proto_alert_severity s) {
    return (unsigned)s < PROTO_SEV_COUNT ? colors[s] : colors[0];
}

proto_alert_severity nt_msg_severity(const nt_msg *m) {
    proto_alert_severity s = PROTO_SEV_INFO;
    for (uint32_t i = 0; i < m->n; i++)
        if (m->alerts[i]->severity > s)
            s = m->alerts[i]->severity;
    return s;
}

static char *dump(json_t *j, size_t *len) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s && len)
        *len = strlen(s);
    return s;
}

static json_t *alert_json(const proto_alert *a, uint32_t count) {
    json_t *labels = json_object();
    for (uint32_t i = 0; i < a->n_labels; i++)
        json_object_set_new(labels, a->labels[i].key, json_string(a->labels[i].val));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:s, s:I}", "id", a->id, "source",
                     a->source, "severity", proto_alert_severity_name(a->severity), "title",
                     a->title, "text", a->text, "labels", labels, "time",
                     (json_int_t)(a->time_ns / WD_NS_PER_MS), "dedup_key", a->dedup_key, "count",
                     (json_int_t)count);
}

char *nt_render_webhook(const nt_msg *m, size_t *len) {
    if (!m || m->n == 0)
        return NULL;
    if (m->n == 1)
        return dump(alert_json(m->alerts[0], m->repeats ? m->repeats : 1), len);
    json_t *arr = json_array();
    for (uint32_t i = 0; i < m->n; i++)
        json_array_append_new(arr, alert_json(m->alerts[i], 1));
    return dump(json_pack("{s:b, s:I, s:s, s:o}", "digest", 1, "count", (json_int_t)m->n,
                          "severity", proto_alert_severity_name(nt_msg_severity(m)), "alerts",
                          arr),
                len);
}

/* Slack's mrkdwn treats &, < and > specially: escape them in free text. */
static void slack_escape(const char *in, char *out, size_t outlen) {
    size_t o = 0;
    for (; *in && o + 6 < outlen; in++) {
        const char *rep = *in == '&' ? "&amp;" : *in == '<' ? "&lt;" : *in == '>' ? "&gt;" : NULL;
        if (rep) {
            size_t n = strlen(rep);
            memcpy(out + o, rep, n);
            o += n;
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

char *nt_render_slack(const nt_msg *m, size_t *len) {
    if (!m || m->n == 0)
        return NULL;
    static char title[4 * PROTO_ALERT_TITLE_MAX + 64], text[4 * PROTO_ALERT_TEXT_MAX + 64];
    proto_alert_severity sev = nt_msg_severity(m);
    json_t *fields = json_array();
    if (m->n == 1) {
        const proto_alert *a = m->alerts[0];
        char head[sizeof title];
        slack_escape(a->title, title, sizeof title);
        if (m->repeats)
            snprintf(head, sizeof head, "[%s] %.1000s (repeated %u times)",
                     proto_alert_severity_name(a->severity), title, m->repeats);
        else
            snprintf(head, sizeof head, "[%s] %.1000s", proto_alert_severity_name(a->severity), title);
        slack_escape(a->text, text, sizeof text);
        for (uint32_t i = 0; i < a->n_labels; i++)
            json_array_append_new(fields, json_pack("{s:s, s:s, s:b}", "title", a->labels[i].key,
                                                    "value", a->labels[i].val, "short", 1));
        json_t *att = json_pack("{s:s, s:s, s:s, s:o, s:s, s:I}", "color", nt_severity_color(sev),
                                "title", head, "text", text, "fields", fields, "footer",
                                a->source, "ts", (json_int_t)(a->time_ns / WD_NS_PER_SEC));
        return dump(json_pack("{s:s, s:[o]}", "text", head, "attachments", att), len);
    }
    /* A digest: a count and the first titles. */
    size_t o = 0;
    text[0] = '\0';
    for (uint32_t i = 0; i < m->n && i < NT_DIGEST_TITLES_MAX; i++) {
        slack_escape(m->alerts[i]->title, title, sizeof title);
        int w = snprintf(text + o, sizeof text - o, "• [%s] %s\n",
                         proto_alert_severity_name(m->alerts[i]->severity), title);
        if (w < 0 || (size_t)w >= sizeof text - o)
            break;
        o += (size_t)w;
    }
    if (m->n > NT_DIGEST_TITLES_MAX)
        snprintf(text + o, sizeof text - o, "… and %u more", m->n - NT_DIGEST_TITLES_MAX);
    char head[128];
    snprintf(head, sizeof head, "Alert storm: %u alerts (highest severity %s)", m->n,
             proto_alert_severity_name(sev));
    json_decref(fields);
    json_t *att = json_pack("{s:s, s:s, s:s}", "color", nt_severity_color(sev), "title", head,
                            "text", text);
    return dump(json_pack("{s:s, s:[o]}", "text", head, "attachments", att), len);
}

/* Appends fmt to a growing buffer; false when it would pass NT_BODY_MAX. */
typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static bool sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > NT_BODY_MAX)
        return false;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return false;
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return true;
}

static bool sb_str(sbuf *b, const char *s) { return sb_put(b, s, strlen(s)); }

/* Text with bare LF turned into CRLF, as SMTP wants. */
static bool sb_text(sbuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\n') {
            if (!sb_put(b, "\r\n", 2))
                return false;
        } else if (*s != '\r' && !sb_put(b, s, 1)) {
            return false;
        }
    }
    return true;
}

char *nt_render_email(const nt_msg *m, const char *from, const char *to, uint64_t now_real_ns,
                      size_t *len) {
    if (!m || m->n == 0 || !from || !to)
        return NULL;
    char line[1024], date[64];
    time_t t = (time_t)(now_real_ns / WD_NS_PER_SEC);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    proto_alert_severity sev = nt_msg_severity(m);
    const proto_alert *a = m->alerts[0];
    sbuf b = {0};
    bool ok = true;
    if (m->n == 1)
        snprintf(line, sizeof line, "Subject: [%s] %s%s\r\n", proto_alert_severity_name(sev),
                 a->title, m->repeats ? " (repeated)" : "");
    else
        snprintf(line, sizeof line, "Subject: [%s] alert storm: %u alerts\r\n",
                 proto_alert_severity_name(sev), m->n);
    /* Titles and addresses cannot hold CR or LF (the alert's title is a
     * name: no control characters), so no header can be injected. */
    ok = ok && sb_str(&b, line);
    snprintf(line, sizeof line, "From: %s\r\nTo: %s\r\nDate: %s\r\n", from, to, date);
    ok = ok && sb_str(&b, line);
    snprintf(line, sizeof line, "Message-ID: <%s.%llu@warden-notifier>\r\n", a->id,
             (unsigned long long)m->n);
    ok = ok && sb_str(&b, line);
    ok = ok && sb_str(&b, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                          "Content-Transfer-Encoding: 8bit\r\n\r\n");
    for (uint32_t i = 0; ok && i < m->n; i++) {
        const proto_alert *x = m->alerts[i];
        char when[WD_TIME_STR_MAX];
        wd_clock_format(x->time_ns, when, sizeof when);
        snprintf(line, sizeof line, "[%s] %s\r\nsource: %s\r\ntime: %s\r\nid: %s\r\n",
                 proto_alert_severity_name(x->severity), x->title, x->source, when, x->id);
        ok = sb_str(&b, line);
        if (ok && i == 0 && m->repeats) {
            snprintf(line, sizeof line, "repeated: %u times\r\n", m->repeats);
            ok = sb_str(&b, line);
        }
        for (uint32_t l = 0; ok && l < x->n_labels; l++) {
            snprintf(line, sizeof line, "%s: %s\r\n", x->labels[l].key, x->labels[l].val);
            ok = sb_str(&b, line);
        }
        if (ok && x->text[0])
            ok = sb_str(&b, "\r\n") && sb_text(&b, x->text) && sb_str(&b, "\r\n");
        ok = ok && sb_str(&b, "\r\n");
    }
    if (!ok) {
        free(b.p);
        return NULL;
    }
    if (len)
        *len = b.n;
    return b.p;
}

/* logfmt value: quoted, with " and \ escaped and control characters as \n. */
static bool sb_quoted(sbuf *b, const char *s) {
    bool ok = sb_put(b, "\"", 1);
    for (; ok && *s; s++) {
        if (*s == '"' || *s == '\\') {
            char e[2] = {'\\', *s};
            ok = sb_put(b, e, 2);
        } else if ((unsigned char)*s < 0x20) {
            ok = sb_put(b, *s == '\n' ? "\\n" : " ", *s == '\n' ? 2 : 1);
        } else {
            ok = sb_put(b, s, 1);
        }
    }
    return ok && sb_put(b, "\"", 1);
}

char *nt_render_log(const nt_msg *m, const char *channel, size_t *len) {
    if (!m || m->n == 0)
        return NULL;
    sbuf b = {0};
    char num[64];
    const proto_alert *a = m->alerts[0];
    bool ok = sb_str(&b, "alert channel=") && sb_quoted(&b, channel);
    if (m->n > 1) {
        snprintf(num, sizeof num, " digest=%u severity=%s first_id=", m->n,
                 proto_alert_severity_name(nt_msg_severity(m)));
        ok = ok && sb_str(&b, num) && sb_quoted(&b, a->id);
        /* The titles, as the chat digests list them: a count alone hid
         * which alerts a storm held (a crash loop among exits). */
        for (uint32_t i = 0; ok && i < m->n && i < NT_DIGEST_TITLES_MAX; i++) {
            snprintf(num, sizeof num, " title.%u=", i + 1);
            char sev_title[PROTO_ALERT_TITLE_MAX + 32];
            snprintf(sev_title, sizeof sev_title, "[%s] %s",
                     proto_alert_severity_name(m->alerts[i]->severity), m->alerts[i]->title);
            ok = sb_str(&b, num) && sb_quoted(&b, sev_title);
        }
        if (ok && m->n > NT_DIGEST_TITLES_MAX) {
            snprintf(num, sizeof num, " more=%u", m->n - NT_DIGEST_TITLES_MAX);
            ok = sb_str(&b, num);
        }
    } else {
        ok = ok && sb_str(&b, " id=") && sb_quoted(&b, a->id);
        snprintf(num, sizeof num, " severity=%s count=%u", proto_alert_severity_name(a->severity),
                 m->repeats ? m->repeats : 1);
        ok = ok && sb_str(&b, num) && sb_str(&b, " source=") && sb_quoted(&b, a->source) &&
             sb_str(&b, " title=") && sb_quoted(&b, a->title) && sb_str(&b, " text=") &&
             sb_quoted(&b, a->text);
        for (uint32_t i = 0; ok && i < a->n_labels; i++)
            ok = sb_str(&b, " label.") && sb_str(&b, a->labels[i].key) && sb_str(&b, "=") &&
                 sb_quoted(&b, a->labels[i].val);
    }
    if (!ok) {
        free(b.p);
        return NULL;
    }
    if (len)
        *len = b.n;
    return b.p;
}
