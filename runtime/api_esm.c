/* api_esm.c — Create/Get/List/Update/DeleteEventSourceMapping (SPEC 5.4, 3.1, 3.10).
 *
 * Schema checks (types, ranges, enums) go through runtime/validate.c so the messages are AWS's
 * "N validation error(s) detected: ..." text; the cross-field rules of SPEC 5.4 are
 * InvalidParameterValueException; existence, conflicts and states are decided by esm.c. */
#include "runtime/api_esm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "runtime/api_errors.h"
#include "runtime/esm.h"
#include "runtime/validate.h"

#define PREFIX "/2015-03-31/event-source-mappings"


/* ---- schema (botocore lambda model, Kinesis-relevant members) ------------------------------ */

#define NOB VAL_UNSET
static const char *const start_positions[] = {"TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", NULL};
static const char *const response_types[] = {"ReportBatchItemFailures", NULL};

static const val_field dest_members[] = {
    {"Destination", VAL_STRING, false, NULL, NOB, NOB, 0, 350, VAL_PAT_NONE, NULL, NULL, NOB, NOB},
    {NULL, 0, false, NULL, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
};
static const val_field destcfg_members[] = {
    {"OnSuccess", VAL_STRUCT, false, NULL, NOB, NOB, NOB, NOB, VAL_PAT_NONE, NULL, dest_members,
     NOB, NOB},
    {"OnFailure", VAL_STRUCT, false, NULL, NOB, NOB, NOB, NOB, VAL_PAT_NONE, NULL, dest_members,
     NOB, NOB},
    {NULL, 0, false, NULL, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
};
static const val_field filter_members[] = {
    {"Pattern", VAL_STRING, false, NULL, NOB, NOB, 0, 4096, VAL_PAT_NONE, NULL, NULL, NOB, NOB},
    {NULL, 0, false, NULL, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
};
static const val_field filter_elem[] = {
    {"member", VAL_STRUCT, false, NULL, NOB, NOB, NOB, NOB, VAL_PAT_NONE, NULL, filter_members,
     NOB, NOB},
    {NULL, 0, false, NULL, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
};
static const val_field criteria_members[] = {
    {"Filters", VAL_LIST, false, NULL, NOB, NOB, NOB, NOB, VAL_PAT_NONE, NULL, filter_elem, NOB,
     NOB},
    {NULL, 0, false, NULL, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
};
static const val_field rtype_elem[] = {
    {"member", VAL_STRING, false, NULL, NOB, NOB, NOB, NOB, VAL_PAT_NONE, response_types, NULL,
     NOB, NOB},
    {NULL, 0, false, NULL, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
};

#define COMMON_FIELDS                                                                         \
    {"Enabled", VAL_BOOL, false, NULL, NOB, NOB, NOB, NOB, VAL_PAT_NONE, NULL, NULL, NOB, NOB},  \
    {"BatchSize", VAL_INT, false, NULL, 1, 10000, NOB, NOB, VAL_PAT_NONE, NULL, NULL, NOB, NOB}, \
    {"FilterCriteria", VAL_STRUCT, false, NULL, NOB, NOB, NOB, NOB, VAL_PAT_NONE, NULL,          \
     criteria_members, NOB, NOB},                                                             \
    {"MaximumBatchingWindowInSeconds", VAL_INT, false, NULL, 0, 300, NOB, NOB, VAL_PAT_NONE,   \
     NULL, NULL, NOB, NOB},                                                                   \
    {"ParallelizationFactor", VAL_INT, false, NULL, 1, 10, NOB, NOB, VAL_PAT_NONE, NULL, NULL, \
     NOB, NOB},                                                                               \
    {"DestinationConfig", VAL_STRUCT, false, NULL, NOB, NOB, NOB, NOB, VAL_PAT_NONE, NULL,       \
     destcfg_members, NOB, NOB},                                                              \
    {"MaximumRecordAgeInSeconds", VAL_INT, false, NULL, -1, 604800, NOB, NOB, VAL_PAT_NONE,    \
     NULL, NULL, NOB, NOB},                                                                   \
    {"BisectBatchOnFunctionError", VAL_BOOL, false, NULL, NOB, NOB, NOB, NOB, VAL_PAT_NONE,    \
     NULL, NULL, NOB, NOB},                                                                   \
    {"MaximumRetryAttempts", VAL_INT, false, NULL, -1, 10000, NOB, NOB, VAL_PAT_NONE, NULL,     \
     NULL, NOB, NOB},                                                                         \
    {"TumblingWindowInSeconds", VAL_INT, false, NULL, 0, 900, NOB, NOB, VAL_PAT_NONE, NULL,    \
     NULL, NOB, NOB},                                                                         \
    {"FunctionResponseTypes", VAL_LIST, false, NULL, NOB, NOB, 0, 1, VAL_PAT_NONE, NULL,        \
     rtype_elem, NOB, NOB}

static const val_field create_schema[] = {
    {"EventSourceArn", VAL_STRING, false, NULL, NOB, NOB, 12, 1024, VAL_PAT_NONE, NULL, NULL,
     NOB, NOB},
    {"FunctionName", VAL_STRING, true, NULL, NOB, NOB, 1, 140, VAL_PAT_NONE, NULL, NULL, NOB,
     NOB},
    COMMON_FIELDS,
    {"StartingPosition", VAL_STRING, false, NULL, NOB, NOB, NOB, NOB, VAL_PAT_NONE,
     start_positions, NULL, NOB, NOB},
    {"StartingPositionTimestamp", VAL_TIMESTAMP, false, NULL, NOB, NOB, NOB, NOB, VAL_PAT_NONE,
     NULL, NULL, NOB, NOB},
    {NULL, 0, false, NULL, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
};

static const val_field update_schema[] = {
    {"FunctionName", VAL_STRING, false, NULL, NOB, NOB, 1, 140, VAL_PAT_NONE, NULL, NULL, NOB,
     NOB},
    COMMON_FIELDS,
    {NULL, 0, false, NULL, 0, 0, 0, 0, 0, NULL, NULL, 0, 0},
};

/* ---- request -> config ---------------------------------------------------------------------- */

static const cJSON *member(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int set_string(char **dst, const char *s)
{
    char *d = s ? sl_strdup(s) : NULL;
    if (s && !d) return SL_ENOMEM;
    sl_free(*dst);
    *dst = d;
    return 0;
}

/* Applies the tunables present in req to c (Create and Update share them). */
static int apply_common(const cJSON *req, esm_config *c, sl_err *err)
{
    const cJSON *v;
    if ((v = member(req, "Enabled"))) c->enabled = cJSON_IsTrue(v);
    if ((v = member(req, "BatchSize"))) c->batch_size = (uint32_t)v->valuedouble;
    if ((v = member(req, "MaximumBatchingWindowInSeconds")))
        c->max_window_s = (uint32_t)v->valuedouble;
    if ((v = member(req, "ParallelizationFactor"))) c->parallelization = (uint32_t)v->valuedouble;
    if ((v = member(req, "BisectBatchOnFunctionError"))) c->bisect = cJSON_IsTrue(v);
    if ((v = member(req, "MaximumRetryAttempts"))) c->max_retry = (int32_t)v->valuedouble;
    if ((v = member(req, "MaximumRecordAgeInSeconds"))) {
        c->max_age_s = (int32_t)v->valuedouble;
        if (c->max_age_s >= 0 && c->max_age_s < 60)
            return sl_err_set(err, SL_EINVAL,
                              "MaximumRecordAgeInSeconds must be -1 or between 60 and 604800. "
                              "Value %d is not supported.", c->max_age_s);
    }
    if ((v = member(req, "TumblingWindowInSeconds"))) c->tumbling_s = (uint32_t)v->valuedouble;
    if ((v = member(req, "FunctionResponseTypes"))) {
        const cJSON *e;
        c->report_failures = false;
        cJSON_ArrayForEach(e, v) if (cJSON_IsString(e) &&
                                     !strcmp(e->valuestring, "ReportBatchItemFailures"))
            c->report_failures = true;
    }
    if ((v = member(req, "DestinationConfig"))) {
        const cJSON *on_s = member(v, "OnSuccess"), *on_f = member(v, "OnFailure");
        const cJSON *d;
        if (on_s && (d = member(on_s, "Destination")) && d->valuestring[0])
            return sl_err_set(err, SL_EINVAL,
                              "Unsupported DestinationConfig parameter for given event source "
                              "mapping type.");
        d = on_f ? member(on_f, "Destination") : NULL;
        if (set_string(&c->destination, d && d->valuestring[0] ? d->valuestring : NULL))
            return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    if ((v = member(req, "FilterCriteria"))) {
        const cJSON *filters = member(v, "Filters");
        char *text = NULL;
        if (filters && cJSON_GetArraySize(filters) > 0) {
            text = cJSON_PrintUnformatted(v);
            if (!text) return sl_err_set(err, SL_ENOMEM, "out of memory");
        }
        int rc = set_string(&c->filter_json, text);
        cJSON_free(text);
        if (rc) return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    return 0;
}

static int parse_create(const cJSON *req, esm_config *c, const char **function, sl_err *err)
{
    const cJSON *pos, *ts, *arn;
    int rc = val_check(req, create_schema, err);
    if (rc) return rc;
    esm_config_defaults(c);
    arn = member(req, "EventSourceArn");
    if (!arn)
        return sl_err_set(err, SL_EINVAL,
                          "Unrecognized event source, must be kinesis, dynamodb stream or sqs.");
    snprintf(c->stream_arn, sizeof c->stream_arn, "%s", arn->valuestring);
    *function = member(req, "FunctionName")->valuestring;
    pos = member(req, "StartingPosition");
    ts = member(req, "StartingPositionTimestamp");
    if (!pos)
        return sl_err_set(err, SL_EINVAL,
                          "1 validation error detected: Value null at 'startingPosition' failed "
                          "to satisfy constraint: Member must not be null for a Kinesis event "
                          "source");
    if (!strcmp(pos->valuestring, "LATEST")) c->start_pos = ESM_START_LATEST;
    else if (!strcmp(pos->valuestring, "AT_TIMESTAMP")) c->start_pos = ESM_START_AT_TIMESTAMP;
    else c->start_pos = ESM_START_TRIM_HORIZON;
    if (c->start_pos == ESM_START_AT_TIMESTAMP && !ts)
        return sl_err_set(err, SL_EINVAL,
                          "StartingPositionTimestamp must be provided when StartingPosition is "
                          "AT_TIMESTAMP.");
    if (c->start_pos != ESM_START_AT_TIMESTAMP && ts)
        return sl_err_set(err, SL_EINVAL,
                          "StartingPositionTimestamp can only be provided when StartingPosition "
                          "is AT_TIMESTAMP.");
    if (ts) c->start_ts_ms = (int64_t)(ts->valuedouble * 1000.0 + 0.5);
    return apply_common(req, c, err);
}

/* ---- config -> response ------------------------------------------------------------------- */

static void add_seconds(cJSON *o, const char *name, int64_t ms)
{
    /* Epoch seconds with a millisecond fraction, plain decimal (SPEC 1.1 / 5.1). */
    char buf[40];
    snprintf(buf, sizeof buf, "%" PRId64 ".%03d", ms / 1000, (int)(ms % 1000));
    cJSON_AddRawToObject(o, name, buf);
}

static cJSON *view_json(const esm_view *v, const char *region, const char *account)
{
    const esm_config *c = &v->cfg;
    cJSON *o = cJSON_CreateObject();
    cJSON *dc, *rt;
    char arn[ESM_ARN_LEN + 64];
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "UUID", c->uuid);
    cJSON_AddStringToObject(o, "StartingPosition", esm_start_pos_name(c->start_pos));
    if (c->start_pos == ESM_START_AT_TIMESTAMP)
        add_seconds(o, "StartingPositionTimestamp", c->start_ts_ms);
    cJSON_AddNumberToObject(o, "BatchSize", c->batch_size);
    cJSON_AddNumberToObject(o, "MaximumBatchingWindowInSeconds", c->max_window_s);
    cJSON_AddNumberToObject(o, "ParallelizationFactor", c->parallelization);
    cJSON_AddStringToObject(o, "EventSourceArn", c->stream_arn);
    if (c->filter_json) {
        cJSON *fc = cJSON_Parse(c->filter_json);
        if (fc) cJSON_AddItemToObject(o, "FilterCriteria", fc);
    }
    cJSON_AddStringToObject(o, "FunctionArn", c->function_arn);
    add_seconds(o, "LastModified", c->last_modified_ms);
    cJSON_AddStringToObject(o, "LastProcessingResult", v->last_result);
    cJSON_AddStringToObject(o, "State", esm_state_name(v->state));
    cJSON_AddStringToObject(o, "StateTransitionReason", v->state_reason);
    dc = cJSON_AddObjectToObject(o, "DestinationConfig");
    if (dc && c->destination) {
        cJSON *f = cJSON_AddObjectToObject(dc, "OnFailure");
        if (f) cJSON_AddStringToObject(f, "Destination", c->destination);
    }
    cJSON_AddNumberToObject(o, "MaximumRecordAgeInSeconds", c->max_age_s);
    cJSON_AddBoolToObject(o, "BisectBatchOnFunctionError", c->bisect);
    cJSON_AddNumberToObject(o, "MaximumRetryAttempts", c->max_retry);
    cJSON_AddNumberToObject(o, "TumblingWindowInSeconds", c->tumbling_s);
    rt = cJSON_AddArrayToObject(o, "FunctionResponseTypes");
    if (rt && c->report_failures)
        cJSON_AddItemToArray(rt, cJSON_CreateString("ReportBatchItemFailures"));
    snprintf(arn, sizeof arn, "arn:aws:lambda:%s:%s:event-source-mapping:%s", region, account,
             c->uuid);
    cJSON_AddStringToObject(o, "EventSourceMappingArn", arn);
    return o;
}

static void send_json(http_exchange *x, int status, cJSON *o)
{
    char *body = o ? cJSON_PrintUnformatted(o) : NULL;
    if (!body) {
        api_lambda_error(x, 500, "ServiceException", "out of memory");
    } else {
        api_lambda_json(x, status, body, strlen(body));
    }
    cJSON_free(body);
    cJSON_Delete(o);
}

static void send_view(rt_daemon *d, http_exchange *x, int status, const esm_view *v)
{
    send_json(x, status, view_json(v, d->cfg->region, d->cfg->account));
}

/* ---- handlers ----------------------------------------------------------------------------- */

static int decode_body(const http_request *r, cJSON **out, sl_err *err)
{
    cJSON *o;
    const char *end = NULL;
    if (r->body_len == 0) {
        *out = cJSON_CreateObject();
        return *out ? 0 : sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    o = cJSON_ParseWithLengthOpts((const char *)r->body, r->body_len, &end, false);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return sl_err_set(err, SL_ESERIAL,
                          "Could not parse request body into json: Unexpected character at "
                          "offset %zu", end ? (size_t)(end - (const char *)r->body) : 0);
    }
    *out = o;
    return 0;
}

static void do_create(rt_daemon *d, http_exchange *x, const http_request *r)
{
    cJSON *req = NULL;
    esm_config c;
    esm_view v;
    const char *function = NULL;
    sl_err err;
    int rc;

    esm_config_defaults(&c);
    memset(&v, 0, sizeof v);
    rc = decode_body(r, &req, &err);
    if (rc == 0) rc = parse_create(req, &c, &function, &err);
    if (rc == 0) rc = esm_mgr_create(d->esm, &c, function, &v, &err);
    if (rc) api_lambda_sl_error(x, &err);
    else send_view(d, x, 202, &v);
    esm_view_clear(&v);
    esm_config_clear(&c);
    cJSON_Delete(req);
}

static void do_update(rt_daemon *d, http_exchange *x, const http_request *r, const char *uuid)
{
    cJSON *req = NULL;
    esm_view cur, v;
    const cJSON *fn;
    sl_err err;
    int rc;

    memset(&cur, 0, sizeof cur);
    memset(&v, 0, sizeof v);
    rc = decode_body(r, &req, &err);
    if (rc == 0) rc = val_check(req, update_schema, &err);
    if (rc == 0) rc = esm_mgr_get(d->esm, uuid, &cur, &err);
    if (rc == 0) rc = apply_common(req, &cur.cfg, &err);
    fn = req ? member(req, "FunctionName") : NULL;
    if (rc == 0)
        rc = esm_mgr_update(d->esm, uuid, &cur.cfg, fn ? fn->valuestring : NULL, &v, &err);
    if (rc) api_lambda_sl_error(x, &err);
    else send_view(d, x, 202, &v);
    esm_view_clear(&v);
    esm_view_clear(&cur);
    cJSON_Delete(req);
}

static bool query_param(const char *query, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t seglen = amp ? (size_t)(amp - p) : strlen(p);
        if (seglen > nlen && !strncmp(p, name, nlen) && p[nlen] == '=')
            return api_pct_decode(p + nlen + 1, seglen - nlen - 1, out, outlen);
        p = amp ? amp + 1 : NULL;
    }
    return false;
}

/* FunctionName filter: a name, a (partial) ARN or the full ARN of the mapping's function. */
static bool function_matches(const char *arn, const char *want)
{
    const char *tail;
    size_t n;
    if (!strcmp(arn, want)) return true;
    tail = strstr(arn, ":function:");
    if (!tail) return false;
    tail += 10;
    n = strlen(want);
    if (!strncmp(tail, want, n) && (tail[n] == '\0' || tail[n] == ':')) return true;
    /* Partial ARN "123456789012:function:name" or "function:name". */
    n = strlen(arn) - strlen(want);
    return strlen(arn) > strlen(want) && !strcmp(arn + n, want) && arn[n - 1] == ':';
}

static void do_list(rt_daemon *d, http_exchange *x, const http_request *r)
{
    char src[1100] = "", fn[300] = "", marker[64] = "", maxs[32] = "";
    esm_view *vs = NULL;
    size_t n = 0;
    long max_items = 100;
    bool has_src = query_param(r->query, "EventSourceArn", src, sizeof src);
    bool has_fn = query_param(r->query, "FunctionName", fn, sizeof fn);
    bool has_marker = query_param(r->query, "Marker", marker, sizeof marker);
    cJSON *o, *arr;
    size_t start = 0, emitted = 0;
    const char *last = NULL;
    bool more = false;

    if (query_param(r->query, "MaxItems", maxs, sizeof maxs)) {
        char *end = NULL;
        max_items = strtol(maxs, &end, 10);
        if (!end || *end || max_items < 1 || max_items > 10000) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "1 validation error detected: Value '%.32s' at 'maxItems' failed to satisfy "
                     "constraint: Member must have value %s", maxs,
                     max_items < 1 ? "greater than or equal to 1"
                                   : "less than or equal to 10000");
            api_lambda_error(x, 400, "ValidationException", msg);
            return;
        }
    }
    if (esm_mgr_list(d->esm, &vs, &n) != 0) {
        api_lambda_error(x, 500, "ServiceException", "out of memory");
        return;
    }
    if (has_marker && marker[0]) {
        bool found = false;
        for (size_t i = 0; i < n; i++)
            if (!strcmp(vs[i].cfg.uuid, marker)) {
                start = i + 1;
                found = true;
            }
        if (!found) {
            esm_views_free(vs, n);
            api_lambda_error(x, 400, "InvalidParameterValueException", "Invalid Marker.");
            return;
        }
    }
    o = cJSON_CreateObject();
    arr = o ? cJSON_AddArrayToObject(o, "EventSourceMappings") : NULL;
    for (size_t i = start; arr && i < n; i++) {
        if (has_src && strcmp(vs[i].cfg.stream_arn, src)) continue;
        if (has_fn && !function_matches(vs[i].cfg.function_arn, fn)) continue;
        if (emitted == (size_t)max_items) {
            more = true;
            break;
        }
        cJSON_AddItemToArray(arr, view_json(&vs[i], d->cfg->region, d->cfg->account));
        last = vs[i].cfg.uuid;
        emitted++;
    }
    if (o && more && last) cJSON_AddStringToObject(o, "NextMarker", last);
    send_json(x, 200, o);
    esm_views_free(vs, n);
}

bool api_esm_match(const char *path)
{
    size_t n = strlen(PREFIX);
    return !strncmp(path, PREFIX, n) && (path[n] == '\0' || path[n] == '/');
}

void api_esm_handle(rt_daemon *d, http_exchange *x)
{
    const http_request *r = http_exchange_request(x);
    const char *rest = r->path + strlen(PREFIX);
    char uuid[128];
    esm_view v;
    sl_err err;
    int rc;

    if (!d->esm) {
        api_lambda_error(x, 500, "ServiceException", "event-source mappings are not available");
        return;
    }
    if (!api_esm_match(r->path)) {
        api_lambda_error(x, 404, "ResourceNotFoundException", "No such resource.");
        return;
    }
    if (*rest == '/') rest++;
    if (*rest == '\0') {
        if (!strcmp(r->method, "POST")) do_create(d, x, r);
        else if (!strcmp(r->method, "GET")) do_list(d, x, r);
        else api_lambda_error(x, 405, "MethodNotAllowedException", "Method not allowed");
        return;
    }
    size_t rlen = strlen(rest);
    if (rlen && rest[rlen - 1] == '/') rlen--;   /* ".../{UUID}/" like ".../{UUID}" */
    if (memchr(rest, '/', rlen) || !api_pct_decode(rest, rlen, uuid, sizeof uuid)) {
        api_lambda_error(x, 404, "ResourceNotFoundException",
                         "The resource you requested does not exist.");
        return;
    }
    memset(&v, 0, sizeof v);
    if (!strcmp(r->method, "GET")) {
        rc = esm_mgr_get(d->esm, uuid, &v, &err);
        if (rc == 0) send_view(d, x, 200, &v);
    } else if (!strcmp(r->method, "PUT")) {
        do_update(d, x, r, uuid);
        return;
    } else if (!strcmp(r->method, "DELETE")) {
        rc = esm_mgr_delete(d->esm, uuid, &v, &err);
        if (rc == 0) send_view(d, x, 202, &v);
    } else {
        api_lambda_error(x, 405, "MethodNotAllowedException", "Method not allowed");
        return;
    }
    if (rc) api_lambda_sl_error(x, &err);
    esm_view_clear(&v);
}
