/* The order table and the parsing of request bodies. */
#include "pb.h"
#include "wd_error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PB_SLOTS_INIT 1024
#define PB_LATENCY_MAX_MS 600000
#define PB_RETRY_AFTER_MAX_S 3600

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

int pb_orders_init(pb_orders *t, size_t max) {
    memset(t, 0, sizeof *t);
    t->max = max;
    return 0;
}

void pb_orders_free(pb_orders *t) {
    for (size_t i = 0; i < t->nslots; i++)
        free(t->slots[i]);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

pb_order *pb_orders_find(const pb_orders *t, const char *coid) {
    if (t->nslots == 0)
        return NULL;
    for (size_t i = hash_str(coid) & (t->nslots - 1);; i = (i + 1) & (t->nslots - 1)) {
        if (t->slots[i] == NULL)
            return NULL;
        if (strcmp(t->slots[i]->coid, coid) == 0)
            return t->slots[i];
    }
}

static void place(pb_order **slots, size_t nslots, pb_order *o) {
    size_t i = hash_str(o->coid) & (nslots - 1);
    while (slots[i] != NULL)
        i = (i + 1) & (nslots - 1);
    slots[i] = o;
}

int pb_orders_add(pb_orders *t, const pb_order_req *req, pb_order **out) {
    if (pb_orders_find(t, req->coid) != NULL)
        return WD_EEXIST;
    if (t->n >= t->max)
        return WD_ETOOBIG;
    if ((t->n + 1) * 2 > t->nslots) {
        size_t ns = t->nslots ? t->nslots * 2 : PB_SLOTS_INIT;
        pb_order **s = calloc(ns, sizeof *s);
        if (s == NULL)
            return WD_ENOMEM;
        for (size_t i = 0; i < t->nslots; i++)
            if (t->slots[i] != NULL)
                place(s, ns, t->slots[i]);
        free(t->slots);
        t->slots = s;
        t->nslots = ns;
    }
    pb_order *o = calloc(1, sizeof *o);
    if (o == NULL)
        return WD_ENOMEM;
    memcpy(o->coid, req->coid, sizeof o->coid);
    memcpy(o->symbol, req->symbol, sizeof o->symbol);
    memcpy(o->account, req->account, sizeof o->account);
    o->buy = req->buy;
    o->quantity = req->quantity;
    place(t->slots, t->nslots, o);
    t->n++;
    *out = o;
    return 0;
}

/* Removal in open addressing: the entries after it in its run are placed
 * again, so no lookup stops early at the hole. */
void pb_orders_drop(pb_orders *t, const char *coid) {
    if (t->nslots == 0)
        return;
    size_t i = hash_str(coid) & (t->nslots - 1);
    while (t->slots[i] != NULL && strcmp(t->slots[i]->coid, coid) != 0)
        i = (i + 1) & (t->nslots - 1);
    if (t->slots[i] == NULL)
        return;
    free(t->slots[i]);
    t->slots[i] = NULL;
    t->n--;
    for (size_t j = (i + 1) & (t->nslots - 1); t->slots[j] != NULL; j = (j + 1) & (t->nslots - 1)) {
        pb_order *o = t->slots[j];
        t->slots[j] = NULL;
        place(t->slots, t->nslots, o);
    }
}

bool pb_coid_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > PB_COID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

static bool symbol_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > PB_SYMBOL_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/' || c == ':'))
            return false;
    }
    return true;
}

int pb_order_req_parse(const char *body, size_t len, pb_order_req *out, char *err,
                       size_t errlen) {
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    const char *coid = NULL, *sym = NULL, *side = NULL, *type = "market", *acct = "";
    json_t *qty = NULL;
    int rc = WD_EINVAL;
    memset(out, 0, sizeof *out);
    if (j == NULL || !json_is_object(j)) {
        snprintf(err, errlen, "body is not a JSON object");
        goto out;
    }
    if (json_unpack_ex(j, &je, 0, "{s:s, s:s, s:s, s:o, s?s, s?s}", "client_order_id", &coid,
                       "symbol", &sym, "side", &side, "quantity", &qty, "type", &type,
                       "account", &acct) != 0) {
        snprintf(err, errlen, "%.150s (client_order_id, symbol, side, quantity required)",
                 je.text);
        goto out;
    }
    if (!pb_coid_ok(coid)) {
        snprintf(err, errlen, "client_order_id must be 1..%d of A-Z a-z 0-9 - _ . :",
                 PB_COID_MAX);
    } else if (!symbol_ok(sym)) {
        snprintf(err, errlen, "symbol must be 1..%d of A-Z a-z 0-9 . _ - / :", PB_SYMBOL_MAX);
    } else if (strcmp(side, "buy") != 0 && strcmp(side, "sell") != 0) {
        snprintf(err, errlen, "side must be buy or sell");
    } else if (!json_is_number(qty) || !(json_number_value(qty) > 0) ||
               !isfinite(json_number_value(qty))) {
        snprintf(err, errlen, "quantity must be a positive number");
    } else if (strcmp(type, "market") != 0) {
        snprintf(err, errlen, "type must be market (the only order type)");
    } else if (strlen(acct) > PB_ACCOUNT_MAX) {
        snprintf(err, errlen, "account is longer than %d bytes", PB_ACCOUNT_MAX);
    } else {
        snprintf(out->coid, sizeof out->coid, "%s", coid);
        snprintf(out->symbol, sizeof out->symbol, "%s", sym);
        snprintf(out->account, sizeof out->account, "%s", acct);
        out->buy = strcmp(side, "buy") == 0;
        out->quantity = json_number_value(qty);
        rc = 0;
    }
out:
    json_decref(j);
    return rc;
}

static int rate(json_t *j, const char *k, double *v, char *err, size_t errlen) {
    json_t *x = json_object_get(j, k);
    if (x == NULL)
        return 0;
    double d = json_number_value(x);
    if (!json_is_number(x) || !(d >= 0 && d <= 1)) {
        snprintf(err, errlen, "%s must be a number in [0, 1]", k);
        return WD_EINVAL;
    }
    *v = d;
    return 0;
}

static int whole(json_t *j, const char *k, uint64_t max, uint64_t *v, char *err, size_t errlen) {
    json_t *x = json_object_get(j, k);
    if (x == NULL)
        return 0;
    if (!json_is_integer(x) || json_integer_value(x) < 0 ||
        (uint64_t)json_integer_value(x) > max) {
        snprintf(err, errlen, "%s must be an integer in [0, %llu]", k, (unsigned long long)max);
        return WD_EINVAL;
    }
    *v = (uint64_t)json_integer_value(x);
    return 0;
}

int pb_faults_parse(const char *body, size_t len, pb_faults *f, char *err, size_t errlen) {
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    pb_faults n = *f;
    int rc = WD_EINVAL;
    if (j == NULL || !json_is_object(j)) {
        snprintf(err, errlen, "body is not a JSON object");
    } else {
        const char *k;
        json_t *v;
        rc = 0;
        json_object_foreach(j, k, v) {
            if (strcmp(k, "error_rate") && strcmp(k, "rate_429") && strcmp(k, "hang_rate") &&
                strcmp(k, "latency_ms") && strcmp(k, "retry_after_s")) {
                snprintf(err, errlen, "unknown field '%.40s' (error_rate, rate_429, hang_rate, "
                                      "latency_ms, retry_after_s)", k);
                rc = WD_EINVAL;
                break;
            }
        }
        if (rc == 0)
            rc = rate(j, "error_rate", &n.error_rate, err, errlen);
        if (rc == 0)
            rc = rate(j, "rate_429", &n.rate_429, err, errlen);
        if (rc == 0)
            rc = rate(j, "hang_rate", &n.hang_rate, err, errlen);
        if (rc == 0)
            rc = whole(j, "latency_ms", PB_LATENCY_MAX_MS, &n.latency_ms, err, errlen);
        if (rc == 0)
            rc = whole(j, "retry_after_s", PB_RETRY_AFTER_MAX_S, &n.retry_after_s, err, errlen);
        if (rc == 0)
            *f = n;
    }
    json_decref(j);
    return rc;
}

json_t *pb_faults_json(const pb_faults *f) {
    return json_pack("{s:f, s:f, s:f, s:I, s:I}", "error_rate", f->error_rate, "rate_429",
                     f->rate_429, "hang_rate", f->hang_rate, "latency_ms",
                     (json_int_t)f->latency_ms, "retry_after_s", (json_int_t)f->retry_after_s);
}

double pb_fill_price(bool buy, double bid, double ask) {
    double side = buy ? ask : bid;
    if (side > 0)
        return side;
    if (bid > 0 && ask > 0)
        return (bid + ask) / 2;
    return bid > 0 ? bid : (ask > 0 ? ask : 0);
}

json_t *pb_order_json(const pb_order *o) {
    return json_pack("{s:s, s:s, s:s, s:s, s:f, s:s, s:f, s:s, s:I, s:I}", "client_order_id",
                     o->coid, "broker_order_id", o->boid, "symbol", o->symbol, "side",
                     o->buy ? "buy" : "sell", "quantity", o->quantity, "status",
                     o->status == PB_FILLED ? "filled" : "pending", "fill_price", o->fill_price,
                     "account", o->account, "posts", (json_int_t)o->posts, "filled_at_ns",
                     (json_int_t)o->filled_at_ns);
}
