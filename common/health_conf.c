/* The [health] section's typed table; see health_conf.h. */
#include "health_conf.h"
#include "wd_error.h"
#include <stddef.h>
#include <string.h>

#define HL_MS_PER_S 1000
#define HL_MS_PER_H (3600 * HL_MS_PER_S)
#define HL_F(key_, type_, field_, lo_, hi_, def_, help_)                                           \
    {.name = key_, .type = type_, .offset = offsetof(hl_conf, field_),                            \
     .size = sizeof(((hl_conf *)0)->field_), .min = lo_, .max = hi_, .def = def_, .help = help_}

const wd_conf_field hl_conf_fields[] = {
    HL_F("listen", WD_CONF_STRING, listen, 0, 0, "127.0.0.1:8080",
         "HTTP address HOST:PORT of /livez, /readyz, /metrics, the API and the status page "
         "(0.0.0.0:8080 in Kubernetes)."),
    HL_F("snapshot_ttl", WD_CONF_DURATION, snapshot_ttl_ms, 10, 10 * HL_MS_PER_S, "100ms",
         "How long a supervisor status snapshot is served before it is asked again: a probe "
         "storm costs the supervisor at most one request per TTL."),
    HL_F("probe_deadline", WD_CONF_DURATION, probe_deadline_ms, 100, 60 * HL_MS_PER_S, "1s",
         "/livez fails once the supervisor has not answered its control socket for this long "
         "(at least a few snapshot_ttl)."),
    HL_F("heartbeat_max_age", WD_CONF_DURATION, heartbeat_max_age_ms, 100, HL_MS_PER_H, "5s",
         "/readyz fails for a required worker whose last heartbeat is older."),
    HL_F("api_token_file", WD_CONF_STRING, api_token_file, 0, 0, "",
         "File holding the bearer token that POST endpoints require (Authorization: Bearer "
         "TOKEN); empty: no token (keep listen on loopback then)."),
    HL_F("reset_min_open", WD_CONF_DURATION, reset_min_open_ms, 0, 24 * HL_MS_PER_H, "30s",
         "A breaker reset is refused (409) while the failure that opened it is younger than "
         "this, unless override=true."),
    HL_F("history_ttl", WD_CONF_DURATION, history_ttl_ms, 100, HL_MS_PER_H, "1s",
         "Workers' breaker histories are fetched at most this often, and only while "
         "/api/circuit-breakers/history is being read."),
    HL_F("max_body", WD_CONF_SIZE, max_body, 0, 1024 * 1024, "16K",
         "Largest request body accepted; larger ones get 413."),
};
const size_t hl_conf_n_fields = sizeof hl_conf_fields / sizeof hl_conf_fields[0];

int hl_conf_register(void) {
    return wd_conf_register_section(HL_CONF_SECTION, hl_conf_fields, hl_conf_n_fields,
                                    sizeof(hl_conf));
}

int hl_conf_load(const char *path, char *const *envp, hl_conf *out, wd_conf_errors *errs) {
    wd_conf *conf = NULL;
    int rc = hl_conf_register();
    memset(out, 0, sizeof *out);
    if (rc != 0)
        return rc;
    if (path == NULL) {
        /* No config file: the table's defaults. */
        for (size_t i = 0; i < hl_conf_n_fields; i++) {
            char why[WD_CONF_ERROR_LEN];
            const wd_conf_field *f = &hl_conf_fields[i];
            if (f->def != NULL && f->def[0] != '\0' && wd_conf_field_set(f, f->def, out, why, sizeof why) != 0)
                return WD_ECONFIG;
        }
        return 0;
    }
    rc = wd_conf_read(path, envp, &conf, errs);
    if (rc == 0)
        rc = wd_conf_apply_section(conf, HL_CONF_SECTION, hl_conf_fields, hl_conf_n_fields, out,
                                   errs);
    wd_conf_free(conf);
    return rc;
}
