/* api_lambda.c — Lambda functions API (SPEC 5.1-5.3): CreateFunction, GetFunction,
 * GetFunctionConfiguration, ListFunctions, UpdateFunctionCode, UpdateFunctionConfiguration,
 * DeleteFunction, Put/Get/DeleteFunctionConcurrency and Invoke (RequestResponse, Event, DryRun).
 *
 * Choices where AWS differs or is silent (README "Compatibility"):
 * - Functions become Active at once (the code is unpacked synchronously), so CreateFunction
 *   already answers State "Active"; waiters see Active immediately.
 * - Runtimes are "lua5.4" and "native"; Role is required like AWS but not checked.
 * - Event invocations are retried twice on a function error, 1 s and then 2 s later (AWS: about
 *   1 and 2 minutes) so that local development sees the retries.
 */
#include "runtime/api_lambda.h"

#include <cJSON.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "functions/invoke.h"
#include "runtime/api_errors.h"
#include "runtime/log.h"
#include "runtime/wire.h"

#define INVOKE_PAYLOAD_MAX 6291456u   /* 6 MB synchronous request and response */
#define EVENT_PAYLOAD_MAX 262144u     /* 256 KB asynchronous (classic) */
#define ZIP_MAX (50u * 1024 * 1024)   /* direct upload quota */

/* ---- responses ------------------------------------------------------------------------------ */

static void send_cjson(http_exchange *x, int status, cJSON *o)
{
    char *body = cJSON_PrintUnformatted(o);
    if (!body) {
        api_lambda_error(x, 500, "ServiceException", "out of memory");
        return;
    }
    api_lambda_json(x, status, body, strlen(body));
    cJSON_free(body);
}

/* ---- request helpers ------------------------------------------------------------------------ */

/* Value of query parameter `name` (percent-decoded) or false. */
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

static void iso_time(int64_t ms, char *buf, size_t len)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03d+0000", (int)(ms % 1000));
}

static cJSON *config_json(rt_daemon *d, const fn_config *c)
{
    char arn[512], ts[64];
    cJSON *o = cJSON_CreateObject();
    fn_registry_arn(fn_runtime_registry(d->functions), c->name, arn, sizeof arn);
    iso_time(c->last_modified_ms, ts, sizeof ts);
    cJSON_AddStringToObject(o, "FunctionName", c->name);
    cJSON_AddStringToObject(o, "FunctionArn", arn);
    cJSON_AddStringToObject(o, "Runtime", c->runtime);
    cJSON_AddStringToObject(o, "Role", c->role);
    cJSON_AddStringToObject(o, "Handler", c->handler);
    cJSON_AddNumberToObject(o, "CodeSize", (double)c->code_size);
    cJSON_AddStringToObject(o, "Description", c->description);
    cJSON_AddNumberToObject(o, "Timeout", c->timeout_s);
    cJSON_AddNumberToObject(o, "MemorySize", c->memory_mb);
    cJSON_AddStringToObject(o, "LastModified", ts);
    cJSON_AddStringToObject(o, "CodeSha256", c->code_sha256);
    cJSON_AddStringToObject(o, "Version", "$LATEST");
    /* sluice extension: the native handler's seccomp profile (SANDBOX.md decision 4) */
    if (!strcmp(c->runtime, "native")) cJSON_AddStringToObject(o, "SandboxProfile", c->profile);
    if (c->nenv) {
        cJSON *vars = cJSON_AddObjectToObject(cJSON_AddObjectToObject(o, "Environment"),
                                              "Variables");
        for (size_t i = 0; i < c->nenv; i++)
            cJSON_AddStringToObject(vars, c->env[i].key, c->env[i].value);
    }
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "TracingConfig"), "Mode", "PassThrough");
    cJSON_AddStringToObject(o, "RevisionId", c->revision_id);
    cJSON_AddStringToObject(o, "State", "Active");
    cJSON_AddStringToObject(o, "LastUpdateStatus", "Successful");
    cJSON_AddStringToObject(o, "PackageType", "Zip");
    cJSON *arch = cJSON_AddArrayToObject(o, "Architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("x86_64"));
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "EphemeralStorage"), "Size", 512);
    cJSON *lc = cJSON_AddObjectToObject(o, "LoggingConfig");
    char group[128];
    snprintf(group, sizeof group, "/aws/lambda/%s", c->name);
    cJSON_AddStringToObject(lc, "LogFormat", "Text");
    cJSON_AddStringToObject(lc, "LogGroup", group);
    return o;
}

static bool parse_body(http_exchange *x, cJSON **out)
{
    const http_request *r = http_exchange_request(x);
    cJSON *o = r->body_len ? cJSON_ParseWithLength((const char *)r->body, r->body_len)
                           : cJSON_CreateObject();
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        api_lambda_error(x, 400, "InvalidRequestContentException",
                         "Could not parse request body into json: Unexpected character or end of "
                         "input in request body");
        return false;
    }
    *out = o;
    return true;
}

/* Type errors in a member: Lambda answers InvalidRequestContentException. */
static bool type_error(http_exchange *x, const char *member, const char *want)
{
    char msg[256];
    snprintf(msg, sizeof msg,
             "Could not parse request body into json: Could not parse payload into json: "
             "member '%s' must be %s",
             member, want);
    api_lambda_error(x, 400, "InvalidRequestContentException", msg);
    return false;
}

/* Applies configuration members of a Create/UpdateFunctionConfiguration body to c. */
static bool apply_config(http_exchange *x, const cJSON *body, fn_config *c, bool create)
{
    static const struct {
        const char *key;
        size_t off, len;
    } strs[] = {
        {"Runtime", offsetof(fn_config, runtime), sizeof(((fn_config *)0)->runtime)},
        {"Handler", offsetof(fn_config, handler), sizeof(((fn_config *)0)->handler)},
        {"Role", offsetof(fn_config, role), sizeof(((fn_config *)0)->role)},
        {"Description", offsetof(fn_config, description), sizeof(((fn_config *)0)->description)},
    };
    const cJSON *v;
    char msg[512];

    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        v = cJSON_GetObjectItemCaseSensitive(body, strs[i].key);
        if (!v || cJSON_IsNull(v)) continue;
        if (!cJSON_IsString(v)) return type_error(x, strs[i].key, "a string");
        if (strlen(v->valuestring) >= strs[i].len) {
            char lower[32];
            snprintf(lower, sizeof lower, "%s", strs[i].key);
            lower[0] = (char)tolower((unsigned char)lower[0]);
            snprintf(msg, sizeof msg,
                     "1 validation error detected: Value at '%s' failed to satisfy constraint: "
                     "Member must have length less than or equal to %zu",
                     lower, strs[i].len - 1);
            api_lambda_error(x, 400, "ValidationException", msg);
            return false;
        }
        strcpy((char *)c + strs[i].off, v->valuestring);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "Timeout")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble)
            return type_error(x, "Timeout", "an integer");
        c->timeout_s = v->valuedouble < 0 || v->valuedouble > 1e6 ? 0 : (uint32_t)v->valuedouble;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(body, "MemorySize")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble)
            return type_error(x, "MemorySize", "an integer");
        c->memory_mb = v->valuedouble < 0 || v->valuedouble > 1e6 ? 0 : (uint32_t)v->valuedouble;
    }
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(body, "Environment");
    if (env && !cJSON_IsNull(env)) {
        const cJSON *vars = cJSON_GetObjectItemCaseSensitive(env, "Variables");
        if (!cJSON_IsObject(env) || (vars && !cJSON_IsNull(vars) && !cJSON_IsObject(vars)))
            return type_error(x, "Environment", "an object with a Variables map");
        size_t n = (size_t)cJSON_GetArraySize(vars), i = 0;
        const char **k = sl_calloc(n + 1, sizeof *k), **val = sl_calloc(n + 1, sizeof *val);
        const cJSON *it;
        bool ok = k && val;
        cJSON_ArrayForEach(it, vars)
        {
            if (!ok) break;
            if (!cJSON_IsString(it)) {
                ok = false;
                sl_free(k);
                sl_free(val);
                return type_error(x, "Environment.Variables", "a map of strings");
            }
            k[i] = it->string;
            val[i++] = it->valuestring;
        }
        if (ok && fn_config_set_env(c, k, val, i) != 0) ok = false;
        sl_free(k);
        sl_free(val);
        if (!ok) {
            api_lambda_error(x, 500, "ServiceException", "out of memory");
            return false;
        }
    }
    /* sluice extension: the native handler's seccomp profile (SANDBOX.md decision 4) */
    const cJSON *sx = cJSON_GetObjectItemCaseSensitive(body, "SandboxProfile");
    if (sx && !cJSON_IsNull(sx)) {
        if (!cJSON_IsString(sx) || strlen(sx->valuestring) >= sizeof c->profile)
            return type_error(x, "SandboxProfile", "stdio, threads or network-out");
        strcpy(c->profile, sx->valuestring);
    }
    if (create) {
        static const char *required[] = {"FunctionName", "Role"};
        for (size_t i = 0; i < 2; i++)
            if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(body, required[i]))) {
                char lower[32];
                snprintf(lower, sizeof lower, "%s", required[i]);
                lower[0] = (char)tolower((unsigned char)lower[0]);
                snprintf(msg, sizeof msg,
                         "1 validation error detected: Value null at '%s' failed to satisfy "
                         "constraint: Member must not be null",
                         lower);
                api_lambda_error(x, 400, "ValidationException", msg);
                return false;
            }
    }
    return true;
}

/* ZipFile (base64) from a Code object or an UpdateFunctionCode body. */
static bool zip_from(http_exchange *x, const cJSON *holder, uint8_t **zip, size_t *len)
{
    const cJSON *z = cJSON_GetObjectItemCaseSensitive(holder, "ZipFile");
    sl_err err;
    size_t n;
    if (!cJSON_IsString(z)) {
        if (cJSON_GetObjectItemCaseSensitive(holder, "S3Bucket") ||
            cJSON_GetObjectItemCaseSensitive(holder, "ImageUri"))
            api_lambda_error(x, 400, "InvalidParameterValueException",
                             "sluice accepts function code only as ZipFile (S3 and container "
                             "images are not supported locally)");
        else
            api_lambda_error(x, 400, "InvalidParameterValueException",
                             "Please provide a source for function code.");
        return false;
    }
    size_t slen = strlen(z->valuestring);
    if (wire_b64_check(z->valuestring, slen, &n, &err) != 0) {
        api_lambda_error(x, 400, "InvalidRequestContentException",
                         "Could not parse request body into json: ZipFile is not valid base64");
        return false;
    }
    if (n > ZIP_MAX) {
        api_lambda_error(x, 413, "RequestEntityTooLargeException",
                         "Request must be smaller than 52428800 bytes for the CreateFunction "
                         "operation");
        return false;
    }
    *zip = sl_malloc(n + 1);
    if (!*zip) {
        api_lambda_error(x, 500, "ServiceException", "out of memory");
        return false;
    }
    *len = wire_b64_decode(z->valuestring, slen, *zip);
    return true;
}

/* ---- operations ----------------------------------------------------------------------------- */

static void create_function(rt_daemon *d, http_exchange *x)
{
    cJSON *body = NULL;
    fn_config c, out;
    uint8_t *zip = NULL;
    size_t zlen = 0;
    sl_err err;

    fn_config_init(&c);
    fn_config_init(&out);
    if (!parse_body(x, &body)) return;
    if (!apply_config(x, body, &c, true)) goto done;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "FunctionName");
    if (fn_name_from_ref(name->valuestring, c.name, sizeof c.name, &err) != 0) {
        api_lambda_sl_error(x, &err);
        goto done;
    }
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(body, "Code");
    if (!cJSON_IsObject(code)) {
        api_lambda_error(x, 400, "ValidationException",
                         "1 validation error detected: Value null at 'code' failed to satisfy "
                         "constraint: Member must not be null");
        goto done;
    }
    if (!zip_from(x, code, &zip, &zlen)) goto done;
    if (fn_registry_create(fn_runtime_registry(d->functions), &c, zip, zlen, &out, &err) != 0) {
        api_lambda_sl_error(x, &err);
        goto done;
    }
    rt_log(RT_INFO, "lambda", "function %s created (%s, %s)", out.name, out.runtime, out.handler);
    cJSON *resp = config_json(d, &out);
    send_cjson(x, 201, resp);
    cJSON_Delete(resp);
done:
    sl_free(zip);
    fn_config_clear(&c);
    fn_config_clear(&out);
    cJSON_Delete(body);
}

static void get_function(rt_daemon *d, http_exchange *x, const char *name, bool config_only)
{
    fn_config c;
    sl_err err;
    fn_config_init(&c);
    if (fn_registry_get(fn_runtime_registry(d->functions), name, &c, &err) != 0) {
        api_lambda_sl_error(x, &err);
        return;
    }
    cJSON *cfg = config_json(d, &c);
    if (config_only) {
        send_cjson(x, 200, cfg);
        cJSON_Delete(cfg);
    } else {
        cJSON *o = cJSON_CreateObject();
        char loc[1200];
        cJSON_AddItemToObject(o, "Configuration", cfg);
        cJSON *code = cJSON_AddObjectToObject(o, "Code");
        cJSON_AddStringToObject(code, "RepositoryType", "S3");
        snprintf(loc, sizeof loc, "file://%s/functions/%s/%" PRIu64, d->cfg->data_dir, c.name,
                 c.code_version);
        cJSON_AddStringToObject(code, "Location", loc);
        if (c.reserved_concurrency >= 0)
            cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "Concurrency"),
                                    "ReservedConcurrentExecutions", c.reserved_concurrency);
        send_cjson(x, 200, o);
        cJSON_Delete(o);
    }
    fn_config_clear(&c);
}

static void list_functions(rt_daemon *d, http_exchange *x)
{
    const http_request *r = http_exchange_request(x);
    char **names = NULL, marker[128] = "", maxs[16] = "";
    size_t n = 0, start = 0, max = 50;
    if (fn_registry_list(fn_runtime_registry(d->functions), &names, &n) != 0) {
        api_lambda_error(x, 500, "ServiceException", "cannot list functions");
        return;
    }
    if (query_param(r->query, "MaxItems", maxs, sizeof maxs)) {
        long v = strtol(maxs, NULL, 10);
        if (v < 1 || v > 10000) {
            fn_names_free(names, n);
            api_lambda_error(x, 400, "ValidationException",
                             "1 validation error detected: Value at 'maxItems' failed to satisfy "
                             "constraint: Member must have value between 1 and 10000");
            return;
        }
        max = (size_t)v;
    }
    if (query_param(r->query, "Marker", marker, sizeof marker) && marker[0]) {
        while (start < n && strcmp(names[start], marker) <= 0) start++;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "Functions");
    size_t i;
    for (i = start; i < n && i - start < max; i++) {
        fn_config c;
        fn_config_init(&c);
        if (fn_registry_get(fn_runtime_registry(d->functions), names[i], &c, NULL) == 0)
            cJSON_AddItemToArray(arr, config_json(d, &c));
        fn_config_clear(&c);
    }
    if (i < n) cJSON_AddStringToObject(o, "NextMarker", names[i - 1]);
    send_cjson(x, 200, o);
    cJSON_Delete(o);
    fn_names_free(names, n);
}

static void update_code(rt_daemon *d, http_exchange *x, const char *name)
{
    cJSON *body = NULL;
    uint8_t *zip = NULL;
    size_t zlen;
    fn_config out;
    sl_err err;
    fn_config_init(&out);
    if (!parse_body(x, &body)) return;
    if (zip_from(x, body, &zip, &zlen)) {
        const cJSON *rev = cJSON_GetObjectItemCaseSensitive(body, "RevisionId");
        if (fn_registry_update_code(fn_runtime_registry(d->functions), name, zip, zlen,
                                    cJSON_IsString(rev) ? rev->valuestring : NULL, &out,
                                    &err) != 0)
            api_lambda_sl_error(x, &err);
        else {
            fn_runtime_flush(d->functions, name);
            rt_log(RT_INFO, "lambda", "function %s code updated", name);
            cJSON *resp = config_json(d, &out);
            send_cjson(x, 200, resp);
            cJSON_Delete(resp);
        }
    }
    sl_free(zip);
    fn_config_clear(&out);
    cJSON_Delete(body);
}

static void update_config(rt_daemon *d, http_exchange *x, const char *name)
{
    cJSON *body = NULL;
    fn_config c, out;
    sl_err err;
    fn_config_init(&c);
    fn_config_init(&out);
    if (!parse_body(x, &body)) return;
    if (fn_registry_get(fn_runtime_registry(d->functions), name, &c, &err) != 0) {
        api_lambda_sl_error(x, &err);
        goto done;
    }
    if (!apply_config(x, body, &c, false)) goto done;
    const cJSON *rev = cJSON_GetObjectItemCaseSensitive(body, "RevisionId");
    if (fn_registry_update_config(fn_runtime_registry(d->functions), &c,
                                  cJSON_IsString(rev) ? rev->valuestring : NULL, &out,
                                  &err) != 0) {
        api_lambda_sl_error(x, &err);
        goto done;
    }
    fn_runtime_flush(d->functions, name);
    rt_log(RT_INFO, "lambda", "function %s configuration updated", name);
    cJSON *resp = config_json(d, &out);
    send_cjson(x, 200, resp);
    cJSON_Delete(resp);
done:
    fn_config_clear(&c);
    fn_config_clear(&out);
    cJSON_Delete(body);
}

static void delete_function(rt_daemon *d, http_exchange *x, const char *name)
{
    sl_err err;
    if (fn_registry_delete(fn_runtime_registry(d->functions), name, &err) != 0) {
        api_lambda_sl_error(x, &err);
        return;
    }
    fn_runtime_flush(d->functions, name);
    fn_logs_remove(fn_runtime_logs(d->functions), name);
    rt_log(RT_INFO, "lambda", "function %s deleted", name);
    api_send(x, 204, NULL, NULL, 0, NULL, 0);
}

static void concurrency(rt_daemon *d, http_exchange *x, const char *name, const char *method)
{
    sl_err err;
    fn_config c;
    fn_config_init(&c);
    if (!strcmp(method, "PUT")) {
        cJSON *body = NULL;
        if (!parse_body(x, &body)) return;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "ReservedConcurrentExecutions");
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1000 ||
            v->valuedouble != (double)(int)v->valuedouble) {
            cJSON_Delete(body);
            api_lambda_error(x, 400, "ValidationException",
                             "1 validation error detected: Value at 'reservedConcurrentExecutions'"
                             " failed to satisfy constraint: Member must have value between 0 "
                             "and 1000");
            return;
        }
        int32_t n = (int32_t)v->valuedouble;
        cJSON_Delete(body);
        if (fn_registry_set_concurrency(fn_runtime_registry(d->functions), name, n, &err) != 0) {
            api_lambda_sl_error(x, &err);
            return;
        }
        char out[64];
        int len = snprintf(out, sizeof out, "{\"ReservedConcurrentExecutions\":%d}", n);
        api_lambda_json(x, 200, out, (size_t)len);
    } else if (!strcmp(method, "DELETE")) {
        if (fn_registry_set_concurrency(fn_runtime_registry(d->functions), name, -1, &err) != 0)
            api_lambda_sl_error(x, &err);
        else api_send(x, 204, NULL, NULL, 0, NULL, 0);
    } else {
        if (fn_registry_get(fn_runtime_registry(d->functions), name, &c, &err) != 0) {
            api_lambda_sl_error(x, &err);
            return;
        }
        char out[64];
        int len = c.reserved_concurrency >= 0
                      ? snprintf(out, sizeof out, "{\"ReservedConcurrentExecutions\":%d}",
                                 c.reserved_concurrency)
                      : snprintf(out, sizeof out, "{}");
        fn_config_clear(&c);
        api_lambda_json(x, 200, out, (size_t)len);
    }
}

/* ---- Invoke --------------------------------------------------------------------------------- */

typedef struct invoke_job {
    uv_work_t work;
    uv_timer_t timer;        /* Event retries */
    rt_daemon *d;
    http_exchange *x;        /* NULL for Event invocations (already answered) */
    char name[FN_NAME_MAX + 1];
    uint8_t *payload;
    size_t len;
    bool tail;
    int attempt;             /* Event: 0, 1, 2 */
    fn_result res;
} invoke_job;

static void job_free(invoke_job *j)
{
    fn_result_clear(&j->res);
    sl_free(j->payload);
    sl_free(j);
}

static void invoke_work(uv_work_t *w)
{
    invoke_job *j = w->data;
    fn_request rq = {.function = j->name, .payload = j->payload, .len = j->len,
                     .want_log_tail = j->tail};
    fn_invoke(j->d->functions, &rq, &j->res);
}

static void invoke_sync_done(uv_work_t *w, int status)
{
    invoke_job *j = w->data;
    fn_result *r = &j->res;
    (void)status;
    if (r->status == FN_THROTTLED) {
        http_header h[] = {{"x-amzn-ErrorType", "TooManyRequestsException"},
                           {"Retry-After", "1"}};
        char body[700];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "Type", "User");
        cJSON_AddStringToObject(o, "message", r->message);
        cJSON_AddStringToObject(o, "Reason", "ReservedFunctionConcurrentInvocationLimitExceeded");
        cJSON_PrintPreallocated(o, body, sizeof body, 0);
        cJSON_Delete(o);
        api_send(j->x, 429, "application/json", (const uint8_t *)body, strlen(body), h, 2);
    } else if (r->status == FN_NOT_FOUND) {
        api_lambda_error(j->x, 404, "ResourceNotFoundException", r->message);
    } else if (r->status == FN_SERVICE_ERROR) {
        api_lambda_error(j->x, 500, "ServiceException", r->message);
    } else if (r->len > INVOKE_PAYLOAD_MAX) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "Response payload size (%zu bytes) exceeded maximum allowed payload size "
                 "(6291456 bytes).",
                 r->len);
        http_header h[] = {{"X-Amz-Function-Error", "Unhandled"},
                           {"X-Amz-Executed-Version", "$LATEST"}};
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "errorMessage", msg);
        cJSON_AddStringToObject(o, "errorType", "Function.ResponseSizeTooLarge");
        char *body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        api_send(j->x, 200, "application/json", (const uint8_t *)body, strlen(body), h, 2);
        cJSON_free(body);
    } else {
        http_header h[4];
        size_t nh = 0;
        char *b64 = NULL;
        h[nh++] = (http_header){"X-Amz-Executed-Version", "$LATEST"};
        if (r->function_error) h[nh++] = (http_header){"X-Amz-Function-Error", "Unhandled"};
        if (j->tail && r->log_tail) {
            b64 = sl_malloc(wire_b64_len(r->log_tail_len) + 1);
            if (b64) {
                b64[wire_b64_encode((const uint8_t *)r->log_tail, r->log_tail_len, b64)] = '\0';
                h[nh++] = (http_header){"X-Amz-Log-Result", b64};
            }
        }
        api_send(j->x, 200, "application/json", (const uint8_t *)r->payload, r->len, h, nh);
        sl_free(b64);
    }
    job_free(j);
}

static void event_retry(uv_timer_t *t);

static void event_timer_closed(uv_handle_t *h)
{
    job_free(h->data);
}

static void invoke_event_done(uv_work_t *w, int status)
{
    invoke_job *j = w->data;
    (void)status;
    bool failed = j->res.status != FN_DONE || j->res.function_error;
    if (failed && j->attempt < 2) {
        rt_log(RT_WARN, "lambda", "async invoke of %s failed (attempt %d): retry in %d s",
               j->name, j->attempt + 1, j->attempt + 1);
        fn_result_clear(&j->res);
        if (j->attempt++ == 0) {
            uv_timer_init(j->d->loop, &j->timer); /* closed when the job ends */
            j->timer.data = j;
        }
        uv_timer_start(&j->timer, event_retry, (uint64_t)j->attempt * 1000, 0);
        return;
    }
    if (failed)
        rt_log(RT_WARN, "lambda", "async invoke of %s failed after %d attempts: %s", j->name,
               j->attempt + 1, j->res.status == FN_DONE ? "function error" : j->res.message);
    if (j->attempt > 0) {
        uv_close((uv_handle_t *)&j->timer, event_timer_closed);
        return;
    }
    job_free(j);
}

static void event_retry(uv_timer_t *t)
{
    invoke_job *j = t->data;
    j->work.data = j;
    if (uv_queue_work(j->d->loop, &j->work, invoke_work, invoke_event_done) != 0)
        uv_close((uv_handle_t *)&j->timer, event_timer_closed);
}

static void invoke(rt_daemon *d, http_exchange *x, const char *name)
{
    const http_request *r = http_exchange_request(x);
    const char *type = http_request_header(r, "X-Amz-Invocation-Type");
    const char *logtype = http_request_header(r, "X-Amz-Log-Type");
    fn_config c;
    sl_err err;

    if (!type || !*type) type = "RequestResponse";
    if (strcmp(type, "RequestResponse") && strcmp(type, "Event") && strcmp(type, "DryRun")) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "1 validation error detected: Value '%.64s' at 'invocationType' failed to "
                 "satisfy constraint: Member must satisfy enum value set: [Event, "
                 "RequestResponse, DryRun]",
                 type);
        api_lambda_error(x, 400, "ValidationException", msg);
        return;
    }
    if (logtype && strcmp(logtype, "None") && strcmp(logtype, "Tail")) {
        api_lambda_error(x, 400, "ValidationException",
                         "1 validation error detected: Value at 'logType' failed to satisfy "
                         "constraint: Member must satisfy enum value set: [None, Tail]");
        return;
    }
    bool event = !strcmp(type, "Event");
    size_t cap = event ? EVENT_PAYLOAD_MAX : INVOKE_PAYLOAD_MAX;
    if (r->body_len > cap) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "Request must be smaller than %zu bytes for the InvokeFunction operation", cap);
        api_lambda_error(x, 413, "RequestTooLargeException", msg);
        return;
    }
    if (r->body_len) {
        cJSON *probe = cJSON_ParseWithLength((const char *)r->body, r->body_len);
        if (!probe) {
            api_lambda_error(x, 400, "InvalidRequestContentException",
                             "Could not parse request body into json: Could not parse payload "
                             "into json: Unexpected character: was expecting a JSON value");
            return;
        }
        cJSON_Delete(probe);
    }
    fn_config_init(&c);
    if (fn_registry_get(fn_runtime_registry(d->functions), name, &c, &err) != 0) {
        api_lambda_sl_error(x, &err);
        return;
    }
    int32_t reserved = c.reserved_concurrency;
    fn_config_clear(&c);
    if (!strcmp(type, "DryRun")) {
        api_send(x, 204, NULL, NULL, 0, NULL, 0);
        return;
    }
    if (event && reserved == 0) {
        api_lambda_error(x, 429, "TooManyRequestsException", "Rate Exceeded.");
        return;
    }

    invoke_job *j = sl_calloc(1, sizeof *j);
    if (!j || !(j->payload = sl_malloc(r->body_len ? r->body_len + 1 : 3))) {
        sl_free(j);
        api_lambda_error(x, 500, "ServiceException", "out of memory");
        return;
    }
    if (r->body_len) memcpy(j->payload, r->body, r->body_len);
    else memcpy(j->payload, "{}", 2);
    j->len = r->body_len ? r->body_len : 2;
    j->d = d;
    j->tail = logtype && !strcmp(logtype, "Tail");
    snprintf(j->name, sizeof j->name, "%s", name);
    j->work.data = j;
    if (event) {
        api_send(x, 202, NULL, NULL, 0, NULL, 0);
        j->tail = false;
        if (uv_queue_work(d->loop, &j->work, invoke_work, invoke_event_done) != 0) job_free(j);
        return;
    }
    j->x = x;
    if (uv_queue_work(d->loop, &j->work, invoke_work, invoke_sync_done) != 0) {
        job_free(j);
        api_lambda_error(x, 500, "ServiceException", "cannot queue the invocation");
    }
}

/* ---- routing -------------------------------------------------------------------------------- */

bool api_lambda_handle(rt_daemon *d, http_exchange *x)
{
    const http_request *r = http_exchange_request(x);
    const char *p = r->path, *rest;
    char name_raw[512], name[FN_NAME_MAX + 1];
    sl_err err;
    bool conc = false;

    if (!strncmp(p, "/2015-03-31/functions", 21)) rest = p + 21;
    else if (!strncmp(p, "/2017-10-31/functions/", 22) || !strncmp(p, "/2019-09-30/functions/", 22)) {
        rest = p + 21;
        conc = true;
    } else return false;

    if (!d->functions) {
        api_lambda_error(x, 500, "ServiceException", "the function runtime is not available");
        return true;
    }
    if (!conc && (!*rest || !strcmp(rest, "/"))) {
        if (!strcmp(r->method, "POST")) create_function(d, x);
        else if (!strcmp(r->method, "GET")) list_functions(d, x);
        else api_lambda_error(x, 405, "MethodNotAllowedException", "Method not allowed");
        return true;
    }
    if (*rest != '/') return false;
    rest++;
    size_t seglen = strcspn(rest, "/");
    const char *sub = rest + seglen;
    if (!api_pct_decode(rest, seglen, name_raw, sizeof name_raw) ||
        fn_name_from_ref(name_raw, name, sizeof name, &err) != 0) {
        if (!seglen || !api_pct_decode(rest, seglen, name_raw, sizeof name_raw))
            snprintf(name_raw, sizeof name_raw, "%.*s", (int)(seglen > 200 ? 200 : seglen), rest);
        fn_name_from_ref(name_raw, name, sizeof name, &err);
        api_lambda_sl_error(x, &err);
        return true;
    }
    if (conc) {
        if (strcmp(sub, "/concurrency") != 0) return false;
        concurrency(d, x, name, r->method);
        return true;
    }
    if (!*sub || !strcmp(sub, "/")) {
        if (!strcmp(r->method, "GET")) get_function(d, x, name, false);
        else if (!strcmp(r->method, "DELETE")) delete_function(d, x, name);
        else api_lambda_error(x, 405, "MethodNotAllowedException", "Method not allowed");
    } else if (!strcmp(sub, "/configuration") || !strcmp(sub, "/configuration/")) {
        if (!strcmp(r->method, "GET")) get_function(d, x, name, true);
        else if (!strcmp(r->method, "PUT")) update_config(d, x, name);
        else api_lambda_error(x, 405, "MethodNotAllowedException", "Method not allowed");
    } else if (!strcmp(sub, "/code") || !strcmp(sub, "/code/")) {
        if (!strcmp(r->method, "PUT")) update_code(d, x, name);
        else api_lambda_error(x, 405, "MethodNotAllowedException", "Method not allowed");
    } else if (!strcmp(sub, "/invocations") || !strcmp(sub, "/invocations/")) {
        if (!strcmp(r->method, "POST")) invoke(d, x, name);
        else api_lambda_error(x, 405, "MethodNotAllowedException", "Method not allowed");
    } else {
        return false;
    }
    return true;
}
