/* functions_host.c — what the runtime lends the function runtime (DESIGN.md: functions/ declares
 * the interface, runtime/ implements it, so user code never holds a pointer into the store):
 *   - fn_store over the broker catalog (namespace "function"),
 *   - fn_host: the handlers' `kinesis` module (put_record / put_records) over the broker,
 *   - esm_invoker: event-source mappings invoking functions on the libuv threadpool.
 */
#include "runtime/functions_host.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "functions/invoke.h"
#include "runtime/api_errors.h"
#include "runtime/log.h"
#include "runtime/wire.h"

/* ---- fn_store over brk_meta ----------------------------------------------------------------- */

#define FN_NS "function"

static int st_put(void *ctx, const char *key, const char *json, size_t len)
{
    return brk_meta_put(ctx, FN_NS, key, json, len);
}

static int st_get(void *ctx, const char *key, char **json, size_t *len)
{
    return brk_meta_get(ctx, FN_NS, key, json, len);
}

static int st_del(void *ctx, const char *key) { return brk_meta_del(ctx, FN_NS, key); }

static int st_keys(void *ctx, char ***keys, size_t *n) { return brk_meta_keys(ctx, FN_NS, keys, n); }

void rt_fn_store(brk_broker *b, fn_store *out)
{
    *out = (fn_store){b, st_put, st_get, st_del, st_keys, brk_names_free};
}

/* ---- the kinesis module of handlers --------------------------------------------------------- */

static int fail(char *type, size_t tlen, char *msg, size_t mlen, const char *t, const char *m)
{
    snprintf(type, tlen, "%s", t);
    snprintf(msg, mlen, "%s", m);
    return -1;
}

/* Stream name from StreamName and/or StreamARN (they must agree, SPEC 1.3). */
static int stream_of(brk_broker *b, const cJSON *req, char *name, size_t len, sl_err *err)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(req, "StreamName");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(req, "StreamARN");
    char from_arn[256];
    if (cJSON_IsString(a)) {
        int rc = brk_stream_name_from_arn(b, a->valuestring, from_arn, sizeof from_arn, err);
        if (rc) return rc;
        if (cJSON_IsString(n) && strcmp(n->valuestring, from_arn) != 0)
            return sl_err_set(err, SL_EINVAL, "StreamARN and StreamName refer to different streams");
        snprintf(name, len, "%s", from_arn);
        return 0;
    }
    if (!cJSON_IsString(n))
        return sl_err_set(err, SL_EVALIDATION,
                          "Either StreamName or StreamARN must be provided");
    snprintf(name, len, "%s", n->valuestring);
    return 0;
}

/* Decodes one {Data, PartitionKey, ExplicitHashKey} entry; data is sl_malloc'd. */
static int entry_of(const cJSON *rec, brk_put_entry *e, uint8_t **data, sl_err *err)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(rec, "Data");
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(rec, "PartitionKey");
    const cJSON *ehk = cJSON_GetObjectItemCaseSensitive(rec, "ExplicitHashKey");
    size_t n;
    if (!cJSON_IsString(d))
        return sl_err_set(err, SL_EVALIDATION,
                          "1 validation error detected: Value null at 'data' failed to satisfy "
                          "constraint: Member must not be null");
    if (!cJSON_IsString(pk))
        return sl_err_set(err, SL_EVALIDATION,
                          "1 validation error detected: Value null at 'partitionKey' failed to "
                          "satisfy constraint: Member must not be null");
    size_t slen = strlen(d->valuestring);
    int rc = wire_b64_check(d->valuestring, slen, &n, err);
    if (rc) return rc;
    *data = sl_malloc(n + 1);
    if (!*data) return sl_err_set(err, SL_ENOMEM, "out of memory");
    e->data = *data;
    e->data_len = wire_b64_decode(d->valuestring, slen, *data);
    e->partition_key = pk->valuestring;
    e->pk_len = strlen(pk->valuestring);
    e->explicit_hash_key = cJSON_IsString(ehk) ? ehk->valuestring : NULL;
    return 0;
}

static char *put_record(brk_broker *b, const cJSON *req, sl_err *err)
{
    char stream[256];
    brk_put_entry e;
    brk_put_result res;
    uint8_t *data = NULL;
    char *out = NULL;
    const cJSON *ord = cJSON_GetObjectItemCaseSensitive(req, "SequenceNumberForOrdering");

    if (stream_of(b, req, stream, sizeof stream, err) || entry_of(req, &e, &data, err)) goto done;
    if (brk_put_record(b, stream, &e, cJSON_IsString(ord) ? ord->valuestring : NULL, &res, err))
        goto done;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "ShardId", res.shard_id);
    cJSON_AddStringToObject(o, "SequenceNumber", res.seq);
    cJSON_AddStringToObject(o, "EncryptionType", "NONE");
    char *s = cJSON_PrintUnformatted(o);
    out = s ? sl_strdup(s) : NULL;
    cJSON_free(s);
    cJSON_Delete(o);
done:
    sl_free(data);
    return out;
}

static char *put_records(brk_broker *b, const cJSON *req, sl_err *err)
{
    char stream[256];
    const cJSON *recs = cJSON_GetObjectItemCaseSensitive(req, "Records");
    size_t n = (size_t)cJSON_GetArraySize(recs), i = 0, failed = 0;
    brk_put_entry *e = NULL;
    brk_put_result *res = NULL;
    uint8_t **data = NULL;
    char *out = NULL;
    const cJSON *it;

    if (stream_of(b, req, stream, sizeof stream, err)) return NULL;
    if (!cJSON_IsArray(recs) || n < 1 || n > 500) {
        sl_err_set(err, SL_EVALIDATION,
                   "1 validation error detected: Value at 'records' failed to satisfy "
                   "constraint: Member must have length less than or equal to 500 and greater "
                   "than or equal to 1");
        return NULL;
    }
    e = sl_calloc(n, sizeof *e);
    res = sl_calloc(n, sizeof *res);
    data = sl_calloc(n, sizeof *data);
    if (!e || !res || !data) {
        sl_err_set(err, SL_ENOMEM, "out of memory");
        goto done;
    }
    cJSON_ArrayForEach(it, recs)
    {
        if (entry_of(it, &e[i], &data[i], err)) goto done;
        i++;
    }
    if (brk_put_records(b, stream, e, n, res, &failed, err)) goto done;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "FailedRecordCount", (double)failed);
    cJSON *arr = cJSON_AddArrayToObject(o, "Records");
    for (i = 0; i < n; i++) {
        cJSON *r = cJSON_CreateObject();
        if (res[i].code == 0) {
            cJSON_AddStringToObject(r, "SequenceNumber", res[i].seq);
            cJSON_AddStringToObject(r, "ShardId", res[i].shard_id);
        } else {
            cJSON_AddStringToObject(r, "ErrorCode", res[i].error_code);
            cJSON_AddStringToObject(r, "ErrorMessage", res[i].error_message);
        }
        cJSON_AddItemToArray(arr, r);
    }
    cJSON_AddStringToObject(o, "EncryptionType", "NONE");
    char *s = cJSON_PrintUnformatted(o);
    out = s ? sl_strdup(s) : NULL;
    cJSON_free(s);
    cJSON_Delete(o);
done:
    if (data)
        for (size_t k = 0; k < n; k++) sl_free(data[k]);
    sl_free(data);
    sl_free(e);
    sl_free(res);
    return out;
}

static int host_call(void *ctx, const char *op, const char *req, size_t req_len, char **resp,
                     size_t *resp_len, char *err_type, size_t type_len, char *err_msg,
                     size_t msg_len)
{
    brk_broker *b = ctx;
    sl_err err = {0, ""};
    char *out = NULL;
    cJSON *r = cJSON_ParseWithLength(req, req_len);

    if (!cJSON_IsObject(r)) {
        cJSON_Delete(r);
        return fail(err_type, type_len, err_msg, msg_len, "SerializationException",
                    "the request is not a JSON object");
    }
    if (!strcmp(op, "put_record")) out = put_record(b, r, &err);
    else if (!strcmp(op, "put_records")) out = put_records(b, r, &err);
    else {
        cJSON_Delete(r);
        return fail(err_type, type_len, err_msg, msg_len, "UnknownOperationException",
                    "unknown kinesis operation");
    }
    cJSON_Delete(r);
    if (!out) {
        if (err.code == 0) sl_err_set(&err, SL_ENOMEM, "out of memory");
        return fail(err_type, type_len, err_msg, msg_len, api_error_type(err.code), err.msg);
    }
    *resp = out;
    *resp_len = strlen(out);
    return 0;
}

void rt_fn_host(brk_broker *b, fn_host *out)
{
    out->ctx = b;
    out->call = host_call;
}

/* ---- esm_invoker over fn_invoke --------------------------------------------------------------- */

typedef struct esm_job {
    uv_work_t work;
    rt_daemon *d;
    char name[FN_NAME_MAX + 1];
    char *payload;
    size_t len;
    const fn_event_batch *batch;   /* the records payload was built from (may be NULL) */
    esm_invoke_done done;
    void *cb_ctx;
    fn_result res;
} esm_job;

static int inv_resolve(void *ctx, const char *function, char *arn, size_t arn_len, char *role,
                       size_t role_len, sl_err *err)
{
    rt_daemon *d = ctx;
    char name[FN_NAME_MAX + 1];
    fn_config c;
    int rc = fn_name_from_ref(function, name, sizeof name, err);
    if (rc) return rc;
    fn_config_init(&c);
    if ((rc = fn_registry_get(fn_runtime_registry(d->functions), name, &c, err)) != 0) return rc;
    fn_registry_arn(fn_runtime_registry(d->functions), name, arn, arn_len);
    snprintf(role, role_len, "%s", c.role);
    fn_config_clear(&c);
    return 0;
}

static void esm_work(uv_work_t *w)
{
    esm_job *j = w->data;
    fn_request rq = {.function = j->name, .payload = (const uint8_t *)j->payload, .len = j->len,
                     .batch = j->batch};
    fn_invoke(j->d->functions, &rq, &j->res);
}

static void esm_after(uv_work_t *w, int status)
{
    esm_job *j = w->data;
    esm_invoke_result r = {ESM_INVOKE_SERVICE_ERROR, "", 0, NULL};
    if (status == 0) {
        switch (j->res.status) {
        case FN_DONE:
            r.status = j->res.function_error ? ESM_INVOKE_FUNCTION_ERROR : ESM_INVOKE_OK;
            r.body = j->res.payload;
            r.len = j->res.len;
            r.function_error = j->res.function_error ? "Unhandled" : NULL;
            break;
        case FN_THROTTLED: r.status = ESM_INVOKE_THROTTLED; break;
        default: r.status = ESM_INVOKE_SERVICE_ERROR; break;
        }
    }
    j->done(j->cb_ctx, &r);
    fn_result_clear(&j->res);
    sl_free(j->payload);
    sl_free(j);
}

static void inv_invoke(void *ctx, const char *function_arn, char *payload, size_t len,
                       const fn_event_batch *batch, esm_invoke_done done, void *cb_ctx)
{
    rt_daemon *d = ctx;
    esm_job *j = sl_calloc(1, sizeof *j);
    sl_err err;
    if (!j || fn_name_from_ref(function_arn, j->name, sizeof j->name, &err) != 0) {
        esm_invoke_result r = {ESM_INVOKE_SERVICE_ERROR, "", 0, NULL};
        sl_free(j);
        sl_free(payload);
        done(cb_ctx, &r);
        return;
    }
    j->d = d;
    j->payload = payload;
    j->len = len;
    j->batch = batch;
    j->done = done;
    j->cb_ctx = cb_ctx;
    j->work.data = j;
    if (uv_queue_work(d->loop, &j->work, esm_work, esm_after) != 0) {
        esm_invoke_result r = {ESM_INVOKE_SERVICE_ERROR, "", 0, NULL};
        sl_free(j->payload);
        sl_free(j);
        done(cb_ctx, &r);
    }
}

void rt_esm_invoker(rt_daemon *d, esm_invoker *out)
{
    out->ctx = d;
    out->resolve = inv_resolve;
    out->invoke = inv_invoke;
}
