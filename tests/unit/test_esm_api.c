/* test_esm_api.c — the Lambda REST API for event-source mappings (SPEC 5.4) over a real HTTP
 * server: the libuv loop (server, mappings) runs in a background thread, the test thread talks
 * to it with libcurl and checks status codes, error shapes and bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cJSON.h>
#include <curl/curl.h>
#include <uv.h>

#include "broker/broker.h"
#include "runtime/api_esm.h"
#include "runtime/daemon.h"
#include "runtime/esm.h"
#include "runtime/http_server.h"
#include "runtime/log.h"

typedef struct env {
    uv_loop_t loop;
    uv_async_t stop;
    uv_thread_t th;
    rt_daemon d;
    rt_config cfg;
    char dir[128];
    int port;
    bool closed;
} env;

typedef struct resp {
    long status;
    char error_type[128];
    char *body;
    size_t len;
    cJSON *json;
} resp;

static void route(void *ctx, http_exchange *x)
{
    api_esm_handle(ctx, x);
}

static void ignore_invoke(void *ctx, const char *arn, char *payload, size_t len,
                          const fn_event_batch *batch, esm_invoke_done done, void *cb_ctx)
{
    (void)batch;
    esm_invoke_result r = {ESM_INVOKE_OK, "null", 4, NULL};
    (void)ctx, (void)arn, (void)len;
    sl_free(payload);
    done(cb_ctx, &r);
}

static void esm_closed(void *ctx)
{
    ((env *)ctx)->closed = true;
}

static void server_stopped(void *ctx)
{
    env *e = ctx;
    esm_mgr_close(e->d.esm, esm_closed, e);
}

static void stop_cb(uv_async_t *a)
{
    env *e = a->data;
    uv_close((uv_handle_t *)&e->stop, NULL);
    http_server_stop(e->d.http, server_stopped, e);
}

static void loop_main(void *arg)
{
    env *e = arg;
    uv_run(&e->loop, UV_RUN_DEFAULT);
}

static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *w)
{
    (void)sb, (void)f, (void)w;
    return remove(p);
}

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    brk_opts bo;
    brk_create_opts co;
    esm_mgr_opts mo;
    http_server_opts ho;
    static esm_invoker inv = {NULL, NULL, ignore_invoke};
    sl_err err;

    snprintf(e->dir, sizeof e->dir, "/tmp/sluice-esm-api-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    uv_loop_init(&e->loop);
    snprintf(e->cfg.region, sizeof e->cfg.region, "us-east-1");
    snprintf(e->cfg.account, sizeof e->cfg.account, "000000000000");
    e->d.loop = &e->loop;
    e->d.cfg = &e->cfg;
    memset(&bo, 0, sizeof bo);
    bo.data_dir = e->dir;
    bo.fsync = BRK_FSYNC_NO;
    assert_int_equal(brk_open(&e->d.broker, &bo, &err), 0);
    memset(&co, 0, sizeof co);
    co.name = "orders";
    co.shard_count = 2;
    assert_int_equal(brk_stream_create(e->d.broker, &co, &err), 0);
    memset(&mo, 0, sizeof mo);
    mo.loop = &e->loop;
    mo.broker = e->d.broker;
    mo.data_dir = e->dir;
    mo.invoker = &inv;
    assert_int_equal(esm_mgr_new(&e->d.esm, &mo), 0);
    assert_int_equal(esm_mgr_start(e->d.esm, &err), 0);
    memset(&ho, 0, sizeof ho);
    ho.host = "127.0.0.1";
    ho.port = 0;
    assert_int_equal(http_server_start(&e->d.http, &e->loop, &ho, route, &e->d), 0);
    e->port = http_server_port(e->d.http);
    uv_async_init(&e->loop, &e->stop, stop_cb);
    e->stop.data = e;
    assert_int_equal(uv_thread_create(&e->th, loop_main, e), 0);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    uv_async_send(&e->stop);
    uv_thread_join(&e->th);
    assert_true(e->closed);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    brk_close(e->d.broker);
    nftw(e->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(e);
    return 0;
}

/* ---- client --------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    r->body = realloc(r->body, r->len + sz * n + 1);
    memcpy(r->body + r->len, p, sz * n);
    r->len += sz * n;
    r->body[r->len] = '\0';
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t len = sz * n;
    static const char key[] = "x-amzn-errortype:";
    if (len > sizeof key && !strncasecmp(p, key, sizeof key - 1)) {
        size_t off = sizeof key - 1;
        while (off < len && p[off] == ' ') off++;
        size_t k = 0;
        while (off < len && p[off] != '\r' && p[off] != '\n' && k + 1 < sizeof r->error_type)
            r->error_type[k++] = p[off++];
        r->error_type[k] = '\0';
    }
    return len;
}

static void req(env *e, const char *method, const char *path, const char *body, resp *r)
{
    CURL *c = curl_easy_init();
    char url[512];
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    memset(r, 0, sizeof *r);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", e->port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    r->json = r->body ? cJSON_Parse(r->body) : NULL;
}

static void resp_free(resp *r)
{
    cJSON_Delete(r->json);
    free(r->body);
}

static const char *jstr(const resp *r, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(r->json, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const resp *r, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(r->json, k);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void expect_error(const resp *r, long status, const char *type, const char *needle)
{
    if (r->status != status || strcmp(r->error_type, type)) {
        fprintf(stderr, "got %ld %s %s\n", r->status, r->error_type, r->body ? r->body : "");
        fail();
    }
    assert_string_equal(jstr(r, "Type"), "User");
    if (needle && !strstr(jstr(r, "message"), needle)) {
        fprintf(stderr, "message '%s' lacks '%s'\n", jstr(r, "message"), needle);
        fail();
    }
}

#define ARN "arn:aws:kinesis:us-east-1:000000000000:stream/orders"
#define COLL "/2015-03-31/event-source-mappings"

static void create_ok(env *e, const char *fn, char uuid[ESM_UUID_LEN])
{
    resp r;
    char body[512];
    snprintf(body, sizeof body,
             "{\"FunctionName\":\"%s\",\"EventSourceArn\":\"" ARN "\","
             "\"StartingPosition\":\"TRIM_HORIZON\"}", fn);
    req(e, "POST", COLL "/", body, &r);
    assert_int_equal(r.status, 202);
    snprintf(uuid, ESM_UUID_LEN, "%s", jstr(&r, "UUID"));
    resp_free(&r);
}

static bool wait_state(env *e, const char *uuid, const char *state)
{
    char path[128];
    snprintf(path, sizeof path, COLL "/%s", uuid);
    for (int i = 0; i < 2000; i++) {
        resp r;
        req(e, "GET", path, NULL, &r);
        bool ok = r.status == 200 && !strcmp(jstr(&r, "State"), state);
        resp_free(&r);
        if (ok) return true;
        usleep(5000);
    }
    return false;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_esm_api_create_get_shape(void **state)
{
    env *e = *state;
    resp r;
    char path[128];

    req(e, "POST", COLL,
        "{\"FunctionName\":\"ingest\",\"EventSourceArn\":\"" ARN "\","
        "\"StartingPosition\":\"LATEST\",\"BatchSize\":50,\"BisectBatchOnFunctionError\":true,"
        "\"MaximumRetryAttempts\":3,\"FunctionResponseTypes\":[\"ReportBatchItemFailures\"],"
        "\"DestinationConfig\":{\"OnFailure\":{\"Destination\":"
        "\"arn:aws:sqs:us-east-1:000000000000:dlq\"}}}", &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(jstr(&r, "State"), "Creating");
    assert_int_equal(strlen(jstr(&r, "UUID")), 36);
    assert_string_equal(jstr(&r, "StartingPosition"), "LATEST");
    assert_string_equal(jstr(&r, "EventSourceArn"), ARN);
    assert_string_equal(jstr(&r, "FunctionArn"),
                        "arn:aws:lambda:us-east-1:000000000000:function:ingest");
    assert_int_equal((int)jnum(&r, "BatchSize"), 50);
    assert_int_equal((int)jnum(&r, "MaximumBatchingWindowInSeconds"), 0);
    assert_int_equal((int)jnum(&r, "ParallelizationFactor"), 1);
    assert_int_equal((int)jnum(&r, "MaximumRetryAttempts"), 3);
    assert_int_equal((int)jnum(&r, "MaximumRecordAgeInSeconds"), -1);
    assert_int_equal((int)jnum(&r, "TumblingWindowInSeconds"), 0);
    assert_true(jnum(&r, "LastModified") > 1.6e9);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "BisectBatchOnFunctionError")));
    assert_string_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "FunctionResponseTypes"), 0)->valuestring,
        "ReportBatchItemFailures");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
                            r.json, "DestinationConfig"), "OnFailure"), "Destination")
                            ->valuestring,
                        "arn:aws:sqs:us-east-1:000000000000:dlq");
    assert_string_equal(jstr(&r, "LastProcessingResult"), "No records processed");
    assert_string_equal(jstr(&r, "StateTransitionReason"), "User action");
    char want_arn[128];
    snprintf(want_arn, sizeof want_arn,
             "arn:aws:lambda:us-east-1:000000000000:event-source-mapping:%s", jstr(&r, "UUID"));
    assert_string_equal(jstr(&r, "EventSourceMappingArn"), want_arn);
    snprintf(path, sizeof path, COLL "/%s", jstr(&r, "UUID"));
    assert_true(wait_state(e, jstr(&r, "UUID"), "Enabled"));
    resp_free(&r);
    req(e, "GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal((int)jnum(&r, "BatchSize"), 50);
    resp_free(&r);
}

static void test_esm_api_defaults_and_empty_destination(void **state)
{
    env *e = *state;
    char uuid[ESM_UUID_LEN];
    resp r;
    char path[128];
    create_ok(e, "fn1", uuid);
    snprintf(path, sizeof path, COLL "/%s", uuid);
    req(e, "GET", path, NULL, &r);
    assert_int_equal((int)jnum(&r, "BatchSize"), 100);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "DestinationConfig")), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "FunctionResponseTypes")),
                     0);
    assert_null(cJSON_GetObjectItem(r.json, "FilterCriteria"));
    resp_free(&r);
}

static void test_esm_api_duplicate_conflict(void **state)
{
    env *e = *state;
    char uuid[ESM_UUID_LEN];
    resp r;
    create_ok(e, "dup", uuid);
    req(e, "POST", COLL "/",
        "{\"FunctionName\":\"dup\",\"EventSourceArn\":\"" ARN "\","
        "\"StartingPosition\":\"TRIM_HORIZON\"}", &r);
    expect_error(&r, 409, "ResourceConflictException", uuid);
    resp_free(&r);
}

static void test_esm_api_validation_errors(void **state)
{
    env *e = *state;
    resp r;
    req(e, "POST", COLL,
        "{\"FunctionName\":\"f\",\"EventSourceArn\":\"" ARN "\","
        "\"StartingPosition\":\"TRIM_HORIZON\",\"BatchSize\":0}", &r);
    expect_error(&r, 400, "ValidationException",
                 "Value '0' at 'batchSize' failed to satisfy constraint: Member must have value "
                 "greater than or equal to 1");
    resp_free(&r);
    req(e, "POST", COLL,
        "{\"FunctionName\":\"f\",\"EventSourceArn\":\"" ARN "\","
        "\"StartingPosition\":\"TRIM_HORIZON\",\"ParallelizationFactor\":11}", &r);
    expect_error(&r, 400, "ValidationException", "parallelizationFactor");
    resp_free(&r);
    req(e, "POST", COLL, "{\"FunctionName\":\"f\",\"EventSourceArn\":\"" ARN "\"}", &r);
    expect_error(&r, 400, "InvalidParameterValueException", "startingPosition");
    resp_free(&r);
    req(e, "POST", COLL,
        "{\"FunctionName\":\"f\",\"EventSourceArn\":\"" ARN "\","
        "\"StartingPosition\":\"AT_TIMESTAMP\"}", &r);
    expect_error(&r, 400, "InvalidParameterValueException", "StartingPositionTimestamp");
    resp_free(&r);
    req(e, "POST", COLL,
        "{\"FunctionName\":\"f\",\"EventSourceArn\":\"" ARN "\","
        "\"StartingPosition\":\"LATEST\",\"StartingPositionTimestamp\":1700000000}", &r);
    expect_error(&r, 400, "InvalidParameterValueException", "StartingPositionTimestamp");
    resp_free(&r);
    req(e, "POST", COLL,
        "{\"FunctionName\":\"f\",\"EventSourceArn\":\"" ARN "\","
        "\"StartingPosition\":\"LATEST\",\"MaximumRecordAgeInSeconds\":30}", &r);
    expect_error(&r, 400, "InvalidParameterValueException", "MaximumRecordAgeInSeconds");
    resp_free(&r);
    req(e, "POST", COLL,
        "{\"FunctionName\":\"f\",\"EventSourceArn\":\"" ARN "\","
        "\"StartingPosition\":\"LATEST\",\"DestinationConfig\":{\"OnSuccess\":{\"Destination\":"
        "\"arn:aws:sqs:us-east-1:000000000000:q\"}}}", &r);
    expect_error(&r, 400, "InvalidParameterValueException", "DestinationConfig");
    resp_free(&r);
    req(e, "POST", COLL,
        "{\"FunctionName\":\"f\",\"EventSourceArn\":\"" ARN "\","
        "\"StartingPosition\":\"LATEST\",\"FilterCriteria\":{\"Filters\":[{\"Pattern\":"
        "\"{oops\"}]}}", &r);
    expect_error(&r, 400, "InvalidParameterValueException", NULL);
    resp_free(&r);
    req(e, "POST", COLL, "{\"FunctionName\":", &r);
    expect_error(&r, 400, "InvalidRequestContentException", "Could not parse request body");
    resp_free(&r);
    req(e, "POST", COLL,
        "{\"FunctionName\":\"f\",\"EventSourceArn\":\"arn:aws:kinesis:us-east-1:000000000000:"
        "stream/missing\",\"StartingPosition\":\"LATEST\"}", &r);
    expect_error(&r, 404, "ResourceNotFoundException", "missing");
    resp_free(&r);
}

static void test_esm_api_list_filters_and_pages(void **state)
{
    env *e = *state;
    char a[ESM_UUID_LEN], b[ESM_UUID_LEN], c[ESM_UUID_LEN];
    resp r;
    create_ok(e, "fa", a);
    create_ok(e, "fb", b);
    create_ok(e, "fc", c);
    req(e, "GET", COLL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "EventSourceMappings")), 3);
    assert_null(cJSON_GetObjectItem(r.json, "NextMarker"));
    resp_free(&r);
    req(e, "GET", COLL "/?FunctionName=fb", NULL, &r);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "EventSourceMappings")), 1);
    resp_free(&r);
    req(e, "GET", COLL "/?EventSourceArn=arn%3Aaws%3Akinesis%3Aus-east-1%3A000000000000%3A"
                       "stream%2Forders&MaxItems=2", NULL, &r);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "EventSourceMappings")), 2);
    char marker[64];
    snprintf(marker, sizeof marker, "%s", jstr(&r, "NextMarker"));
    assert_string_equal(marker, b);
    resp_free(&r);
    char path[256];
    snprintf(path, sizeof path, COLL "/?MaxItems=2&Marker=%s", marker);
    req(e, "GET", path, NULL, &r);
    cJSON *arr = cJSON_GetObjectItem(r.json, "EventSourceMappings");
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "UUID")->valuestring, c);
    resp_free(&r);
    req(e, "GET", COLL "/?MaxItems=0", NULL, &r);
    expect_error(&r, 400, "ValidationException", "maxItems");
    resp_free(&r);
}

static void test_esm_api_update_disable_delete(void **state)
{
    env *e = *state;
    char uuid[ESM_UUID_LEN], path[128];
    resp r;
    create_ok(e, "upd", uuid);
    snprintf(path, sizeof path, COLL "/%s", uuid);
    assert_true(wait_state(e, uuid, "Enabled"));
    req(e, "PUT", path, "{\"BatchSize\":5,\"Enabled\":false,\"MaximumRetryAttempts\":0}", &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(jstr(&r, "State"), "Updating");
    resp_free(&r);
    assert_true(wait_state(e, uuid, "Disabled"));
    req(e, "GET", path, NULL, &r);
    assert_int_equal((int)jnum(&r, "BatchSize"), 5);
    assert_int_equal((int)jnum(&r, "MaximumRetryAttempts"), 0);
    assert_string_equal(jstr(&r, "StartingPosition"), "TRIM_HORIZON");   /* kept */
    resp_free(&r);
    req(e, "PUT", path, "{\"BatchSize\":20000}", &r);
    expect_error(&r, 400, "ValidationException", "batchSize");
    resp_free(&r);
    req(e, "PUT", path, "{\"Enabled\":true}", &r);
    assert_int_equal(r.status, 202);
    resp_free(&r);
    assert_true(wait_state(e, uuid, "Enabled"));
    req(e, "DELETE", path, NULL, &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(jstr(&r, "State"), "Deleting");
    resp_free(&r);
    for (int i = 0; i < 2000; i++) {
        req(e, "GET", path, NULL, &r);
        long st = r.status;
        if (st == 404) break;
        resp_free(&r);
        usleep(5000);
    }
    expect_error(&r, 404, "ResourceNotFoundException", NULL);
    resp_free(&r);
    req(e, "PUT", path, "{\"BatchSize\":5}", &r);
    expect_error(&r, 404, "ResourceNotFoundException", NULL);
    resp_free(&r);
    req(e, "DELETE", COLL "/00000000-0000-4000-8000-000000000000", NULL, &r);
    expect_error(&r, 404, "ResourceNotFoundException", NULL);
    resp_free(&r);
}

int main(void)
{
    rt_log_set_level(RT_ERR);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_esm_api_create_get_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_api_defaults_and_empty_destination, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_esm_api_duplicate_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_api_validation_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_api_list_filters_and_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_api_update_disable_delete, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
