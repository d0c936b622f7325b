/* admin.c — /metrics, /sluice/logs/{function}, /sluice/dlq (runtime/admin.h).
 *
 * Metric names (Prometheus text format 0.0.4; counters end in _total):
 *   sluice_uptime_seconds, sluice_http_requests_total, sluice_streams, sluice_open_shards,
 *   sluice_records_appended_total, sluice_bytes_appended_total
 *   sluice_stream_info{stream,status,mode} 1
 *   sluice_stream_records_total{stream,shard}    records ever appended to the shard (the per-shard
 *                                                counter of its newest sequence number + 1)
 *   sluice_shard_open{stream,shard}              1 open, 0 closed (resharded)
 *   sluice_esm_mapping_info{uuid,function,stream,state} 1
 *   sluice_esm_<counter>_total{uuid,function[,shard]} and sluice_esm_iterator_age_ms: one series
 *       per mapping without a shard label (totals) and one per shard consumer
 *   sluice_esm_last_result_info{uuid,function[,shard],result} 1
 *   sluice_function_{invocations,errors,throttles,cold_starts}_total{function},
 *   sluice_function_{in_flight,warm_instances}{function},
 *   sluice_function_duration_ms{function,quantile="0.5"|"0.99"} over the last 1024 invocations
 */
#include "runtime/admin.h"

#include <cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "functions/invoke.h"
#include "runtime/api_errors.h"
#include "runtime/dest.h"
#include "runtime/esm.h"

#define LOG_CHUNK_MAX (1024u * 1024u)

/* ---- Prometheus text helpers ---------------------------------------------------------------- */

/* A label value with \, " and newline escaped as the exposition format requires. */
static void put_label(FILE *f, const char *name, const char *value)
{
    fprintf(f, "%s=\"", name);
    for (const char *p = value ? value : ""; *p; p++) {
        if (*p == '\\') fputs("\\\\", f);
        else if (*p == '"') fputs("\\\"", f);
        else if (*p == '\n') fputs("\\n", f);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void help(FILE *f, const char *name, const char *type, const char *text)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* ---- streams -------------------------------------------------------------------------------- */

static const char *stream_status_name(enum brk_stream_status s)
{
    switch (s) {
    case BRK_CREATING: return "CREATING";
    case BRK_DELETING: return "DELETING";
    case BRK_ACTIVE: return "ACTIVE";
    case BRK_UPDATING: return "UPDATING";
    }
    return "UNKNOWN";
}

static void metrics_streams(rt_daemon *d, FILE *f)
{
    char **names = NULL;
    size_t n = 0;
    if (!d->broker || brk_stream_list(d->broker, &names, &n) != 0) return;
    brk_stream_info *infos = sl_calloc(n ? n : 1, sizeof *infos);
    bool *ok = sl_calloc(n ? n : 1, sizeof *ok);
    if (!infos || !ok) goto out;
    for (size_t i = 0; i < n; i++) {
        sl_err err;
        ok[i] = brk_stream_describe(d->broker, names[i], &infos[i], &err) == 0;
    }
    help(f, "sluice_stream_info", "gauge", "Streams with their status and capacity mode.");
    for (size_t i = 0; i < n; i++) {
        if (!ok[i]) continue;
        fputs("sluice_stream_info{", f);
        put_label(f, "stream", infos[i].name);
        fputc(',', f);
        put_label(f, "status", stream_status_name(infos[i].status));
        fputc(',', f);
        put_label(f, "mode", infos[i].mode == BRK_ON_DEMAND ? "ON_DEMAND" : "PROVISIONED");
        fputs("} 1\n", f);
    }
    help(f, "sluice_stream_records_total", "counter", "Records appended to a shard.");
    for (size_t i = 0; i < n; i++) {
        for (size_t s = 0; ok[i] && s < infos[i].nshards; s++) {
            const brk_shard_info *sh = &infos[i].shards[s];
            sl_err err;
            uint64_t total = 0;
            if (brk_shard_count(d->broker, infos[i].name, sh->shard_id, &total, &err) != 0)
                total = 0;
            fputs("sluice_stream_records_total{", f);
            put_label(f, "stream", infos[i].name);
            fputc(',', f);
            put_label(f, "shard", sh->shard_id);
            fprintf(f, "} %" PRIu64 "\n", total);
        }
    }
    help(f, "sluice_shard_open", "gauge", "1 while the shard is open, 0 once closed.");
    for (size_t i = 0; i < n; i++) {
        for (size_t s = 0; ok[i] && s < infos[i].nshards; s++) {
            fputs("sluice_shard_open{", f);
            put_label(f, "stream", infos[i].name);
            fputc(',', f);
            put_label(f, "shard", infos[i].shards[s].shard_id);
            fprintf(f, "} %d\n", infos[i].shards[s].open ? 1 : 0);
        }
    }
out:
    for (size_t i = 0; infos && ok && i < n; i++)
        if (ok[i]) brk_stream_info_free(&infos[i]);
    sl_free(infos);
    sl_free(ok);
    brk_names_free(names, n);
}

/* ---- event-source mappings ------------------------------------------------------------------ */

static const struct {
    const char *name;
    size_t off;
    const char *help;
} esm_counters[] = {
    {"sluice_esm_records_in_total", offsetof(esm_metrics, records_in), "Records read."},
    {"sluice_esm_records_filtered_total", offsetof(esm_metrics, records_filtered),
     "Records dropped by FilterCriteria."},
    {"sluice_esm_records_out_total", offsetof(esm_metrics, records_out),
     "Records acknowledged by successful invocations."},
    {"sluice_esm_invocations_total", offsetof(esm_metrics, invocations), "Batches sent."},
    {"sluice_esm_function_errors_total", offsetof(esm_metrics, function_errors),
     "Invocations that ended in a function error."},
    {"sluice_esm_throttles_total", offsetof(esm_metrics, throttles),
     "Throttled or service-error invocations."},
    {"sluice_esm_retries_total", offsetof(esm_metrics, retries), "Batch re-invocations."},
    {"sluice_esm_bisects_total", offsetof(esm_metrics, bisects), "Batch splits."},
    {"sluice_esm_records_discarded_total", offsetof(esm_metrics, records_discarded),
     "Records given up on (on-failure destination)."},
};
#define NCOUNTERS (sizeof esm_counters / sizeof esm_counters[0])

/* esm_mgr_foreach_metrics hands out values valid during the call only: copy them. */
typedef struct esm_row {
    char uuid[ESM_UUID_LEN];
    char function[FN_NAME_MAX + 1];
    char shard[BRK_SHARDID_STRLEN];
    bool total;
    esm_metrics mt;
} esm_row;

typedef struct esm_rows {
    esm_row *v;
    size_t n, cap;
    bool oom;
} esm_rows;

static void function_from_arn(const char *arn, char *out, size_t len)
{
    const char *p = strstr(arn ? arn : "", ":function:");
    const char *name = p ? p + strlen(":function:") : (arn ? arn : "");
    size_t n = strcspn(name, ":");
    if (n >= len) n = len - 1;
    memcpy(out, name, n);
    out[n] = '\0';
}

static void collect_row(void *ctx, const char *uuid, const char *function_arn,
                        const char *shard_id, const esm_metrics *mt)
{
    esm_rows *rows = ctx;
    if (rows->oom) return;
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 16;
        esm_row *v = sl_realloc(rows->v, cap * sizeof *v);
        if (!v) {
            rows->oom = true;
            return;
        }
        rows->v = v;
        rows->cap = cap;
    }
    esm_row *r = &rows->v[rows->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->uuid, sizeof r->uuid, "%s", uuid);
    function_from_arn(function_arn, r->function, sizeof r->function);
    r->total = shard_id == NULL;
    snprintf(r->shard, sizeof r->shard, "%s", shard_id ? shard_id : "");
    r->mt = *mt;
}

/* Mapping order, the mapping's totals first, then its shards in order: a stable exposition. */
static int row_cmp(const void *a, const void *b)
{
    const esm_row *x = a, *y = b;
    int c = strcmp(x->uuid, y->uuid);
    if (c) return c;
    if (x->total != y->total) return x->total ? -1 : 1;
    return strcmp(x->shard, y->shard);
}

static void row_labels(FILE *f, const esm_row *r)
{
    fputc('{', f);
    put_label(f, "uuid", r->uuid);
    fputc(',', f);
    put_label(f, "function", r->function);
    if (!r->total) {
        fputc(',', f);
        put_label(f, "shard", r->shard);
    }
}

static void metrics_esm(rt_daemon *d, FILE *f)
{
    esm_view *views = NULL;
    size_t nv = 0;
    esm_rows rows = {0};
    if (!d->esm) return;
    if (esm_mgr_list(d->esm, &views, &nv) == 0) {
        help(f, "sluice_esm_mapping_info", "gauge", "Event-source mappings and their state.");
        for (size_t i = 0; i < nv; i++) {
            char fn[FN_NAME_MAX + 1];
            function_from_arn(views[i].cfg.function_arn, fn, sizeof fn);
            fputs("sluice_esm_mapping_info{", f);
            put_label(f, "uuid", views[i].cfg.uuid);
            fputc(',', f);
            put_label(f, "function", fn);
            fputc(',', f);
            put_label(f, "stream", views[i].cfg.stream);
            fputc(',', f);
            put_label(f, "state", esm_state_name(views[i].state));
            fputs("} 1\n", f);
        }
        esm_views_free(views, nv);
    }
    esm_mgr_foreach_metrics(d->esm, collect_row, &rows);
    if (rows.n > 1) qsort(rows.v, rows.n, sizeof *rows.v, row_cmp);
    help(f, "sluice_esm_iterator_age_ms", "gauge",
         "Age of the last record of the latest batch when it was sent.");
    for (size_t i = 0; i < rows.n; i++) {
        fputs("sluice_esm_iterator_age_ms", f);
        row_labels(f, &rows.v[i]);
        fprintf(f, "} %" PRId64 "\n", rows.v[i].mt.iterator_age_ms);
    }
    for (size_t c = 0; c < NCOUNTERS; c++) {
        help(f, esm_counters[c].name, "counter", esm_counters[c].help);
        for (size_t i = 0; i < rows.n; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&rows.v[i].mt + esm_counters[c].off, sizeof v);
            fputs(esm_counters[c].name, f);
            row_labels(f, &rows.v[i]);
            fprintf(f, "} %" PRIu64 "\n", v);
        }
    }
    help(f, "sluice_esm_last_result_info", "gauge", "LastProcessingResult as a label.");
    for (size_t i = 0; i < rows.n; i++) {
        fputs("sluice_esm_last_result_info", f);
        row_labels(f, &rows.v[i]);
        fputc(',', f);
        put_label(f, "result", rows.v[i].mt.last_result);
        fputs("} 1\n", f);
    }
    sl_free(rows.v);
}

/* ---- functions ------------------------------------------------------------------------------ */

static void metrics_functions(rt_daemon *d, FILE *f)
{
    char **names = NULL;
    size_t n = 0;
    fn_stats *st;
    if (!d->functions || fn_registry_list(fn_runtime_registry(d->functions), &names, &n) != 0)
        return;
    st = sl_calloc(n ? n : 1, sizeof *st);
    if (!st) goto out;
    for (size_t i = 0; i < n; i++) fn_runtime_stats(d->functions, names[i], &st[i]);
#define FN_SERIES(metric, type, text, fmt, expr)                                             \
    do {                                                                                      \
        help(f, metric, type, text);                                                          \
        for (size_t i = 0; i < n; i++) {                                                      \
            fputs(metric "{", f);                                                             \
            put_label(f, "function", names[i]);                                               \
            fprintf(f, "} " fmt "\n", expr);                                                  \
        }                                                                                     \
    } while (0)
    FN_SERIES("sluice_function_invocations_total", "counter", "Invocations.", "%" PRIu64,
              st[i].invocations);
    FN_SERIES("sluice_function_errors_total", "counter", "Function errors.", "%" PRIu64,
              st[i].errors);
    FN_SERIES("sluice_function_throttles_total", "counter", "Throttled invocations.",
              "%" PRIu64, st[i].throttles);
    FN_SERIES("sluice_function_cold_starts_total", "counter", "New instances started.",
              "%" PRIu64, st[i].cold_starts);
    FN_SERIES("sluice_function_in_flight", "gauge", "Invocations running now.", "%" PRIu32,
              st[i].in_flight);
    FN_SERIES("sluice_function_warm_instances", "gauge", "Idle warm instances.", "%" PRIu32,
              st[i].warm_instances);
#undef FN_SERIES
    help(f, "sluice_function_duration_ms", "summary",
         "Invocation duration over the last 1024 invocations.");
    for (size_t i = 0; i < n; i++) {
        static const char *const q[] = {"0.5", "0.99"};
        for (size_t k = 0; k < 2; k++) {
            fputs("sluice_function_duration_ms{", f);
            put_label(f, "function", names[i]);
            fputc(',', f);
            put_label(f, "quantile", q[k]);
            fprintf(f, "} %.3f\n", k == 0 ? st[i].p50_ms : st[i].p99_ms);
        }
    }
out:
    sl_free(st);
    fn_names_free(names, n);
}

static void serve_metrics(rt_daemon *d, http_exchange *x)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    brk_stats bs;
    int64_t up = (sl_now_ms() - d->started_ms) / 1000;

    if (!f) {
        api_send(x, 500, NULL, NULL, 0, NULL, 0);
        return;
    }
    memset(&bs, 0, sizeof bs);
    if (d->broker) brk_get_stats(d->broker, &bs);
    help(f, "sluice_uptime_seconds", "gauge", "Seconds since the daemon started.");
    fprintf(f, "sluice_uptime_seconds %" PRId64 "\n", up < 0 ? 0 : up);
    help(f, "sluice_http_requests_total", "counter", "HTTP requests answered.");
    fprintf(f, "sluice_http_requests_total %" PRIu64 "\n", d->requests);
    help(f, "sluice_streams", "gauge", "Streams.");
    fprintf(f, "sluice_streams %" PRIu32 "\n", bs.streams);
    help(f, "sluice_open_shards", "gauge", "Open shards over all streams.");
    fprintf(f, "sluice_open_shards %" PRIu32 "\n", bs.open_shards);
    help(f, "sluice_records_appended_total", "counter", "Records appended since start.");
    fprintf(f, "sluice_records_appended_total %" PRIu64 "\n", bs.records_appended);
    help(f, "sluice_bytes_appended_total", "counter", "Bytes appended since start.");
    fprintf(f, "sluice_bytes_appended_total %" PRIu64 "\n", bs.bytes_appended);
    metrics_streams(d, f);
    metrics_esm(d, f);
    metrics_functions(d, f);
    if (fclose(f) != 0 || !text) {
        free(text);
        api_send(x, 500, NULL, NULL, 0, NULL, 0);
        return;
    }
    api_send(x, 200, "text/plain; version=0.0.4; charset=utf-8", (const uint8_t *)text, len,
             NULL, 0);
    free(text);
}

/* ---- logs and dead-letter queues ------------------------------------------------------------ */

/* Percent-decoded value of a query parameter ('+' is a space, as in forms); false if absent or
 * malformed. */
static bool query_get(const char *query, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t seg = amp ? (size_t)(amp - p) : strlen(p);
        if (seg >= nlen + 1 && !strncmp(p, name, nlen) && p[nlen] == '=') {
            size_t o = 0;
            for (size_t i = nlen + 1; i < seg; i++) {
                char c = p[i];
                if (c == '+') c = ' ';
                if (c == '%') {
                    char hex[3] = {0};
                    char *end;
                    if (i + 2 >= seg) return false;
                    hex[0] = p[i + 1];
                    hex[1] = p[i + 2];
                    c = (char)strtol(hex, &end, 16);
                    if (end != hex + 2) return false;
                    i += 2;
                }
                if (c == '\0' || o + 1 >= outlen) return false;
                out[o++] = c;
            }
            out[o] = '\0';
            return true;
        }
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

static void serve_logs(rt_daemon *d, http_exchange *x, const char *name_enc)
{
    const http_request *r = http_exchange_request(x);
    char name[FN_NAME_MAX + 1], num[32];
    uint64_t offset = 0, next = 0;
    size_t max = LOG_CHUNK_MAX, len = 0;
    char *text = NULL;
    fn_config c;
    sl_err err;

    if (!d->functions) {
        api_lambda_error(x, 500, "ServiceException", "the function runtime is not running");
        return;
    }
    if (!api_pct_decode(name_enc, strlen(name_enc), name, sizeof name) || !name[0]) {
        api_lambda_error(x, 400, "InvalidParameterValueException", "malformed function name");
        return;
    }
    if (query_get(r->query, "offset", num, sizeof num)) {
        char *end;
        unsigned long long v = strtoull(num, &end, 10);
        if (!num[0] || *end || num[0] == '-') {
            api_lambda_error(x, 400, "InvalidParameterValueException",
                             "offset must be a non-negative integer");
            return;
        }
        offset = v;
    }
    if (query_get(r->query, "max", num, sizeof num)) {
        char *end;
        unsigned long v = strtoul(num, &end, 10);
        if (!num[0] || *end || num[0] == '-' || v == 0) {
            api_lambda_error(x, 400, "InvalidParameterValueException",
                             "max must be a positive integer");
            return;
        }
        if (v < max) max = v;
    }
    fn_config_init(&c);
    if (fn_registry_get(fn_runtime_registry(d->functions), name, &c, &err) != 0) {
        api_lambda_sl_error(x, &err);
        return;
    }
    fn_config_clear(&c);
    if (fn_logs_read(fn_runtime_logs(d->functions), name, offset, max, &text, &len, &next) != 0) {
        api_lambda_error(x, 500, "ServiceException", "cannot read the function's log");
        return;
    }
    snprintf(num, sizeof num, "%" PRIu64, next);
    http_header h[] = {{"X-Sluice-Next-Offset", num}};
    api_send(x, 200, "text/plain; charset=utf-8", (const uint8_t *)text, len, h, 1);
    sl_free(text);
}

static void serve_dlq(rt_daemon *d, http_exchange *x)
{
    const http_request *r = http_exchange_request(x);
    char dest[1024];
    char **lines = NULL;
    size_t n = 0;
    sl_err err;
    cJSON *arr;
    char *body;

    if (!query_get(r->query, "destination", dest, sizeof dest) || !dest[0]) {
        api_lambda_error(x, 400, "InvalidParameterValueException",
                         "the destination query parameter (an SQS or SNS ARN) is required");
        return;
    }
    memset(&err, 0, sizeof err);
    if (dst_queue_read(d->cfg->data_dir, dest, &lines, &n, &err) != 0) {
        if (err.code == SL_EINVAL || err.code == SL_EVALIDATION) api_lambda_sl_error(x, &err);
        else api_lambda_error(x, 500, "ServiceException", err.msg[0] ? err.msg : "read failed");
        return;
    }
    arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) {
        /* each line is one JSON document; a damaged line is passed on as a string */
        cJSON *m = cJSON_Parse(lines[i]);
        cJSON_AddItemToArray(arr, m ? m : cJSON_CreateString(lines[i]));
    }
    dst_lines_free(lines, n);
    body = arr ? cJSON_PrintUnformatted(arr) : NULL;
    cJSON_Delete(arr);
    if (!body) {
        api_lambda_error(x, 500, "ServiceException", "out of memory");
        return;
    }
    api_lambda_json(x, 200, body, strlen(body));
    cJSON_free(body);
}

static void method_not_allowed(http_exchange *x)
{
    http_header h[] = {{"Allow", "GET, HEAD"}};
    api_send(x, 405, NULL, NULL, 0, h, 1);
}

bool admin_handle(rt_daemon *d, http_exchange *x)
{
    const http_request *r = http_exchange_request(x);
    bool get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
    static const char logs[] = "/sluice/logs/";

    if (!strcmp(r->path, "/metrics")) {
        if (get) serve_metrics(d, x);
        else method_not_allowed(x);
        return true;
    }
    if (!strncmp(r->path, logs, sizeof logs - 1) && r->path[sizeof logs - 1] &&
        !strchr(r->path + sizeof logs - 1, '/')) {
        if (get) serve_logs(d, x, r->path + sizeof logs - 1);
        else method_not_allowed(x);
        return true;
    }
    if (!strcmp(r->path, "/sluice/dlq")) {
        if (get) serve_dlq(d, x);
        else method_not_allowed(x);
        return true;
    }
    return false;
}
