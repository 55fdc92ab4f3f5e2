/* Email: one SMTP transfer per job through libcurl's smtp:// support, on
 * the loop via common/curl_uv.h (never a blocking call). */
#include "nt.h"
#include "curl_uv.h"
#include "log.h"
#include "wd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nt_smtp_done(nt_job *j, bool ok, long code, const char *error);

typedef struct {
    wd_curl_xfer xfer;
    nt_job *job;
    struct curl_slist *rcpt;
    char *msg;
    size_t len, off;
    char errbuf[CURL_ERROR_SIZE];
} smtp_op;

static size_t read_cb(char *buf, size_t size, size_t nitems, void *arg) {
    smtp_op *op = arg;
    size_t n = size * nitems, left = op->len - op->off;
    if (n > left)
        n = left;
    memcpy(buf, op->msg + op->off, n);
    op->off += n;
    return n;
}

static void op_free(smtp_op *op) {
    if (op->xfer.easy)
        curl_easy_cleanup(op->xfer.easy);
    curl_slist_free_all(op->rcpt);
    free(op->msg);
    free(op);
}

static void on_done(wd_curl_xfer *x, CURLcode res) {
    smtp_op *op = x->data;
    nt_job *j = op->job;
    long code = 0;
    char err[NT_ERROR_MAX + 1];
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    if (res == CURLE_OK) {
        op_free(op);
        nt_smtp_done(j, true, code, NULL);
        return;
    }
    /* libcurl's text names the failing step; it never holds the password,
     * and the URL holds none (the password comes from env or file). */
    snprintf(err, sizeof err, "SMTP %ld: %s", code, curl_easy_strerror(res));
    if (res == CURLE_LOGIN_DENIED && code == 0)
        code = 535;
    op_free(op);
    nt_smtp_done(j, false, code, err);
}

int nt_smtp_send(nt_job *j, const char *msg, size_t len) {
    nt_channel *ch = j->ch;
    smtp_op *op = calloc(1, sizeof *op);
    if (!op) {
        free((void *)msg);
        return WD_ENOMEM;
    }
    op->job = j;
    op->msg = (char *)msg;
    op->len = len;
    CURL *e = curl_easy_init();
    if (!e) {
        op_free(op);
        return WD_ENOMEM;
    }
    op->xfer.easy = e;
    op->xfer.done = on_done;
    op->xfer.data = op;
    char from[300];
    snprintf(from, sizeof from, "<%s>", ch->conf.mail_from);
    const char *p = ch->conf.mail_to;
    while (*p) {
        size_t n = strcspn(p, ",");
        char one[300];
        const char *b = p;
        while (n && *b == ' ')
            b++, n--;
        while (n && b[n - 1] == ' ')
            n--;
        if (n) {
            snprintf(one, sizeof one, "<%.*s>", (int)n, b);
            op->rcpt = curl_slist_append(op->rcpt, one);
        }
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    curl_easy_setopt(e, CURLOPT_URL, ch->url);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, op->rcpt);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(e, CURLOPT_READDATA, op);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ch->conf.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(ch->conf.timeout_ms < 5000 ? ch->conf.timeout_ms : 5000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, op->errbuf);
    if (ch->conf.starttls)
        curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (ch->conf.username[0]) {
        curl_easy_setopt(e, CURLOPT_USERNAME, ch->conf.username);
        curl_easy_setopt(e, CURLOPT_PASSWORD, ch->password);
    }
    int rc = wd_curl_uv_add((wd_curl_uv *)ch->curl, &op->xfer);
    if (rc != 0)
        op_free(op);
    return rc;
}
