/* test_functions_event.c — the Kinesis event JSON (SPEC 4.1/4.2), its size accounting, and the
 * parsing of handler responses (SPEC 3.6 batchItemFailures, 3.8 window state). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <openssl/evp.h>

#include "broker/sl_common.h"
#include "functions/event.h"
#include "sandbox/lua_state.h"

#define SEQ1 "49646437577108476416916876405825929425585429676275269634"
#define SEQ2 "49646437577175378652512468275256581209501448250264125490"
#define SEQ3 "49646437577175378652512468275256581209501448250264125491"
#define ARN "arn:aws:kinesis:us-east-1:123456789012:stream/telemetry"
#define ROLE "arn:aws:iam::123456789012:role/ingest-role"

static const fn_event_source SRC = {ARN, "us-east-1", ROLE};

static const uint8_t DATA1[] = "{\"temp\":21,\"city\":\"Oslo\"}";
static const uint8_t DATA2[] = {0x00, 0xff, 0x10, 0x80, 0x7f};
/* "Zürich" with a quote, a backslash, a newline and a 0x01 control character. */
static const char PK2[] = "Z\xc3\xbcrich-\"q\"\\\n\x01";

static void two_records(fn_event_record r[2])
{
    memset(r, 0, 2 * sizeof(*r));
    r[0].shard_id = "shardId-000000000000";
    r[0].seq = SEQ1;
    r[0].partition_key = "sensor-7";
    r[0].pk_len = 8;
    r[0].data = DATA1;
    r[0].data_len = sizeof(DATA1) - 1;
    r[0].arrival_ms = 1714644901421LL;
    r[1].shard_id = "shardId-000000000000";
    r[1].seq = SEQ2;
    r[1].partition_key = PK2;
    r[1].pk_len = sizeof(PK2) - 1;
    r[1].data = DATA2;
    r[1].data_len = sizeof(DATA2);
    r[1].arrival_ms = 1714644902007LL;
}

#define REC1                                                                                   \
    "{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\",\"partitionKey\":\"sensor-7\","            \
    "\"sequenceNumber\":\"" SEQ1 "\",\"data\":\"eyJ0ZW1wIjoyMSwiY2l0eSI6Ik9zbG8ifQ==\","        \
    "\"approximateArrivalTimestamp\":1714644901.421},\"eventSource\":\"aws:kinesis\","           \
    "\"eventVersion\":\"1.0\",\"eventID\":\"shardId-000000000000:" SEQ1 "\","                  \
    "\"eventName\":\"aws:kinesis:record\",\"invokeIdentityArn\":\"" ROLE "\","                  \
    "\"awsRegion\":\"us-east-1\",\"eventSourceARN\":\"" ARN "\"}"
#define REC2                                                                                   \
    "{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\","                                          \
    "\"partitionKey\":\"Z\xc3\xbcrich-\\\"q\\\"\\\\\\u000a\\u0001\","                          \
    "\"sequenceNumber\":\"" SEQ2 "\",\"data\":\"AP8QgH8=\","                                   \
    "\"approximateArrivalTimestamp\":1714644902.007},\"eventSource\":\"aws:kinesis\","           \
    "\"eventVersion\":\"1.0\",\"eventID\":\"shardId-000000000000:" SEQ2 "\","                  \
    "\"eventName\":\"aws:kinesis:record\",\"invokeIdentityArn\":\"" ROLE "\","                  \
    "\"awsRegion\":\"us-east-1\",\"eventSourceARN\":\"" ARN "\"}"

static void test_event_build_matches_literal(void **state)
{
    (void)state;
    fn_event_record r[2];
    two_records(r);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(fn_event_build(&SRC, r, 2, NULL, &out, &len), 0);
    const char *want = "{\"Records\":[ " REC1 "," REC2 "]}";
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    assert_int_equal(len, fn_event_overhead(&SRC, NULL) + fn_event_record_size(&SRC, &r[0]) +
                              fn_event_record_size(&SRC, &r[1]));

    /* A JSON parser reads back the partition key and data exactly. */
    cJSON *root = cJSON_Parse(out);
    assert_non_null(root);
    cJSON *recs = cJSON_GetObjectItem(root, "Records");
    assert_int_equal(cJSON_GetArraySize(recs), 2);
    cJSON *k2 = cJSON_GetObjectItem(cJSON_GetArrayItem(recs, 1), "kinesis");
    assert_string_equal(cJSON_GetObjectItem(k2, "partitionKey")->valuestring, PK2);
    cJSON *ts = cJSON_GetObjectItem(k2, "approximateArrivalTimestamp");
    assert_true(cJSON_IsNumber(ts));
    assert_true(ts->valuedouble > 1714644902.006 && ts->valuedouble < 1714644902.008);
    cJSON_Delete(root);
    sl_free(out);
}

static void test_event_build_window_fields(void **state)
{
    (void)state;
    fn_event_record r[2];
    two_records(r);
    fn_event_window w = {
        .start_ms = 1714644840000LL,  /* 2024-05-02T10:14:00Z */
        .end_ms = 1714644960000LL,
        .state_json = "{\"sensor-7\":12,\"sensor-9\":4}",
        .shard_id = "shardId-000000000000",
        .final_invoke = false,
        .terminated_early = true,
    };
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(fn_event_build(&SRC, r, 1, &w, &out, &len), 0);
    const char *want = "{\"Records\":[ " REC1 "],"
                       "\"window\":{\"start\":\"2024-05-02T10:14:00Z\","
                       "\"end\":\"2024-05-02T10:16:00Z\"},"
                       "\"state\":{\"sensor-7\":12,\"sensor-9\":4},"
                       "\"shardId\":\"shardId-000000000000\","
                       "\"eventSourceARN\":\"" ARN "\","
                       "\"isFinalInvokeForWindow\":false,\"isWindowTerminatedEarly\":true}";
    assert_string_equal(out, want);
    assert_int_equal(len, fn_event_overhead(&SRC, &w) + fn_event_record_size(&SRC, &r[0]));
    sl_free(out);

    /* Final invoke: empty Records, default state {}, exact size with n = 0. */
    w.state_json = NULL;
    w.final_invoke = true;
    w.terminated_early = false;
    assert_int_equal(fn_event_build(&SRC, NULL, 0, &w, &out, &len), 0);
    assert_string_equal(out, "{\"Records\":[],"
                             "\"window\":{\"start\":\"2024-05-02T10:14:00Z\","
                             "\"end\":\"2024-05-02T10:16:00Z\"},\"state\":{},"
                             "\"shardId\":\"shardId-000000000000\","
                             "\"eventSourceARN\":\"" ARN "\","
                             "\"isFinalInvokeForWindow\":true,\"isWindowTerminatedEarly\":false}");
    assert_int_equal(len, fn_event_overhead(&SRC, &w));
    sl_free(out);
}

static void test_event_timestamps_are_plain_decimals(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *text;
    } cases[] = {
        {0, "0.000"},
        {5, "0.005"},
        {1000, "1.000"},
        {1714644901421LL, "1714644901.421"},
        {-1, "-0.001"},
        {-1500, "-1.500"},
        {253402300799999LL, "253402300799.999"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fn_event_record r = {"shardId-000000000001", SEQ1, "k", 1, NULL, 0, cases[i].ms};
        char *out = NULL;
        size_t len = 0;
        assert_int_equal(fn_event_build(&SRC, &r, 1, NULL, &out, &len), 0);
        char needle[64];
        snprintf(needle, sizeof(needle), "\"approximateArrivalTimestamp\":%s}", cases[i].text);
        assert_non_null(strstr(out, needle));
        assert_null(strchr(out, 'E'));
        assert_int_equal(len, fn_event_overhead(&SRC, NULL) + fn_event_record_size(&SRC, &r));
        assert_non_null(strstr(out, "\"data\":\"\""));
        sl_free(out);
    }
}

static void test_event_sizes_add_up_on_random_batches(void **state)
{
    (void)state;
    srand(12345);
    enum { NREC = 60 };
    static char pks[NREC][300];
    static uint8_t datas[NREC][700];
    fn_event_record r[NREC];
    const fn_event_source odd_src = {"arn:\"odd\"\\stream\x02", NULL, "r\xc3\xa9le\xff"};
    char long_shard[64];
    memset(long_shard, '\x01', sizeof(long_shard) - 1); /* 63 * 6 escaped bytes */
    long_shard[sizeof(long_shard) - 1] = '\0';
    for (int iter = 0; iter < 300; iter++) {
        size_t n = (size_t)(rand() % NREC);
        for (size_t i = 0; i < n; i++) {
            size_t pk_len = (size_t)(rand() % 256) + 1;
            for (size_t j = 0; j < pk_len; j++) {
                /* mostly printable, sometimes control, quote, UTF-8 or invalid bytes */
                int k = rand() % 10;
                pks[i][j] = k < 6 ? (char)(' ' + rand() % 95)
                          : k == 6 ? (char)(rand() % 32)
                          : k == 7 ? '"'
                                   : (char)(0x80 + rand() % 128);
            }
            size_t dl = (size_t)(rand() % 700);
            for (size_t j = 0; j < dl; j++) datas[i][j] = (uint8_t)rand();
            /* one shard per batch normally; mixed ids and an id too long to cache also work */
            r[i].shard_id = (rand() % 3 == 0)   ? "shardId-000000000007"
                            : (rand() % 2 == 0) ? "shardId-00000000000\n"
                                                : long_shard;
            r[i].seq = (rand() % 2) ? SEQ1 : "1";
            r[i].partition_key = pks[i];
            r[i].pk_len = pk_len;
            r[i].data = dl ? datas[i] : NULL;
            r[i].data_len = dl;
            r[i].arrival_ms = (int64_t)rand() * 1000 + rand() % 1000;
        }
        const fn_event_source *src = (iter % 3 == 0) ? &odd_src : &SRC;
        fn_event_window w = {(int64_t)rand() * 1000, (int64_t)rand() * 1000 + 60000,
                             (iter % 2) ? "{\"a\":[1,2]}" : "", "shardId-\"x\"", iter % 5 == 0,
                             iter % 7 == 0};
        const fn_event_window *wp = (iter % 4 == 0) ? &w : NULL;
        size_t want = fn_event_overhead(src, wp);
        for (size_t i = 0; i < n; i++) want += fn_event_record_size(src, &r[i]);
        char *out = NULL;
        size_t len = 0;
        assert_int_equal(fn_event_build(src, r, n, wp, &out, &len), 0);
        assert_int_equal(len, want);
        assert_int_equal(strlen(out), len);
        cJSON *root = cJSON_ParseWithLength(out, len);
        assert_non_null(root); /* always valid JSON, whatever the bytes */
        cJSON *list = cJSON_GetObjectItem(root, "Records");
        assert_int_equal(cJSON_GetArraySize(list), (int)n);
        /* data round-trips through base64 (checked with OpenSSL's decoder) */
        for (size_t i = 0; i < n; i++) {
            cJSON *k = cJSON_GetObjectItem(cJSON_GetArrayItem(list, (int)i), "kinesis");
            const char *b64 = cJSON_GetObjectItem(k, "data")->valuestring;
            size_t bl = strlen(b64);
            assert_int_equal(bl, (r[i].data_len + 2) / 3 * 4);
            uint8_t dec[720];
            int dl = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)bl);
            assert_int_equal(dl, (int)bl / 4 * 3);
            if (r[i].data_len) assert_memory_equal(dec, r[i].data, r[i].data_len);
        }
        cJSON_Delete(root);
        sl_free(out);
    }
}

static void test_event_build_rejects_bad_arguments(void **state)
{
    (void)state;
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(fn_event_build(NULL, NULL, 0, NULL, &out, &len), SL_EINVAL);
    assert_int_equal(fn_event_build(&SRC, NULL, 3, NULL, &out, &len), SL_EINVAL);
    assert_null(out);
    fn_event_record r[2];
    two_records(r);
    sl_alloc_fail_after(1);
    assert_int_equal(fn_event_build(&SRC, r, 2, NULL, &out, &len), SL_ENOMEM);
    sl_alloc_fail_after(0);
    assert_null(out);
}

/* ---- batchItemFailures ---- */

static const char *const SEQS[] = {SEQ1, SEQ2, SEQ3};

static enum fn_batch_outcome pf(const char *resp, size_t *first)
{
    return fn_event_parse_failures(resp, resp ? strlen(resp) : 0, SEQS, 3, first);
}

static void test_failures_success_shapes(void **state)
{
    (void)state;
    size_t first = 99;
    assert_int_equal(pf(NULL, &first), FN_BATCH_SUCCESS);
    assert_int_equal(pf("", &first), FN_BATCH_SUCCESS);
    assert_int_equal(pf("  \n", &first), FN_BATCH_SUCCESS);
    assert_int_equal(pf("null", &first), FN_BATCH_SUCCESS);
    assert_int_equal(pf("{}", &first), FN_BATCH_SUCCESS);
    assert_int_equal(pf("{\"batchItemFailures\":null}", &first), FN_BATCH_SUCCESS);
    assert_int_equal(pf("{\"batchItemFailures\":[]}", &first), FN_BATCH_SUCCESS);
    assert_int_equal(pf(" {\"statusCode\":200} ", &first), FN_BATCH_SUCCESS);
    assert_int_equal(pf("\"done\"", &first), FN_BATCH_SUCCESS);
    assert_int_equal(first, 99); /* untouched unless partial */
}

static void test_failures_partial_reports_lowest(void **state)
{
    (void)state;
    size_t first = 99;
    assert_int_equal(pf("{\"batchItemFailures\":[{\"itemIdentifier\":\"" SEQ2 "\"}]}", &first),
                     FN_BATCH_PARTIAL);
    assert_int_equal(first, 1);
    assert_int_equal(pf("{\"batchItemFailures\":[{\"itemIdentifier\":\"" SEQ3 "\"},"
                        "{\"itemIdentifier\":\"" SEQ1 "\"},{\"itemIdentifier\":\"" SEQ3 "\"}]}",
                        &first),
                     FN_BATCH_PARTIAL);
    assert_int_equal(first, 0);
    /* Unordered batch (not strictly increasing): still found by a scan. */
    const char *const rev[] = {SEQ3, SEQ2, SEQ1};
    const char *resp = "{\"batchItemFailures\":[{\"itemIdentifier\":\"" SEQ1 "\"},"
                       "{\"itemIdentifier\":\"" SEQ2 "\",\"extra\":1}]}";
    assert_int_equal(fn_event_parse_failures(resp, strlen(resp), rev, 3, &first),
                     FN_BATCH_PARTIAL);
    assert_int_equal(first, 1);
}

static void test_failures_malformed_is_full_failure(void **state)
{
    (void)state;
    size_t first = 99;
    static const char *const bad[] = {
        "{\"batchItemFailures\":[{\"itemIdentifier\":\"\"}]}",
        "{\"batchItemFailures\":[{\"itemIdentifier\":null}]}",
        "{\"batchItemFailures\":[{\"itemId\":\"" SEQ1 "\"}]}",
        "{\"batchItemFailures\":[{\"ItemIdentifier\":\"" SEQ1 "\"}]}",
        "{\"batchItemFailures\":[{}]}",
        "{\"batchItemFailures\":[{\"itemIdentifier\":\"" SEQ1 "\"},{\"itemIdentifier\":\"\"}]}",
        "{\"batchItemFailures\":[{\"itemIdentifier\":\"123\"}]}",
        "{\"batchItemFailures\":[{\"itemIdentifier\":12345}]}",
        "{\"batchItemFailures\":[\"" SEQ1 "\"]}",
        "{\"batchItemFailures\":{\"itemIdentifier\":\"" SEQ1 "\"}}",
        "{\"batchItemFailures\":\"" SEQ1 "\"}",
        "{\"batchItemFailures\":[",
        "not json",
        "{} trailing",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pf(bad[i], &first), FN_BATCH_FAILURE);
    }
    assert_int_equal(first, 99);
    /* An identifier of another batch is not in this one. */
    assert_int_equal(fn_event_parse_failures("{\"batchItemFailures\":[{\"itemIdentifier\":\"" SEQ3
                                             "\"}]}",
                                             strlen("{\"batchItemFailures\":[{\"itemIdentifier\""
                                                    ":\"" SEQ3 "\"}]}"),
                                             SEQS, 2, &first),
                     FN_BATCH_FAILURE);
}

static void test_failures_respects_length(void **state)
{
    (void)state;
    size_t first = 99;
    const char *resp = "{\"batchItemFailures\":[]}GARBAGE";
    assert_int_equal(fn_event_parse_failures(resp, 24, SEQS, 3, &first), FN_BATCH_SUCCESS);
    assert_int_equal(fn_event_parse_failures(resp, strlen(resp), SEQS, 3, &first),
                     FN_BATCH_FAILURE);
}

/* ---- window responses ---- */

static enum fn_batch_outcome pw(const char *resp, size_t *first, char **st)
{
    return fn_event_parse_window(resp, strlen(resp), SEQS, 3, first, st);
}

static void test_window_state_required(void **state)
{
    (void)state;
    size_t first = 99;
    char *st = NULL;
    static const char *const bad[] = {
        "", "null", "{}", "{\"state\":null}", "{\"state\":5}", "{\"state\":\"x\"}",
        "{\"batchItemFailures\":[]}", "[{\"state\":{}}]", "{\"state\":{}", "garbage",
        "{\"State\":{}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pw(bad[i], &first, &st), FN_BATCH_FAILURE);
        assert_null(st);
    }
}

static void test_window_state_is_copied(void **state)
{
    (void)state;
    size_t first = 99;
    char *st = NULL;
    assert_int_equal(pw("{ \"state\" : { \"a\" : 1, \"b\" : [ \"x\" ] } }", &first, &st),
                     FN_BATCH_SUCCESS);
    assert_string_equal(st, "{\"a\":1,\"b\":[\"x\"]}");
    sl_free(st);
    st = NULL;
    assert_int_equal(pw("{\"state\":{},\"batchItemFailures\":null}", &first, &st),
                     FN_BATCH_SUCCESS);
    assert_string_equal(st, "{}");
    sl_free(st);
    st = NULL;
    assert_int_equal(pw("{\"state\":{\"n\":2},\"batchItemFailures\":[{\"itemIdentifier\":\"" SEQ3
                        "\"}]}",
                        &first, &st),
                     FN_BATCH_PARTIAL);
    assert_int_equal(first, 2);
    assert_string_equal(st, "{\"n\":2}");
    sl_free(st);
    st = NULL;
    first = 99;
    assert_int_equal(pw("{\"state\":{\"n\":2},\"batchItemFailures\":[{\"itemIdentifier\":\"\"}]}",
                        &first, &st),
                     FN_BATCH_FAILURE);
    assert_null(st);
    assert_int_equal(first, 99);
}

/* The Lua sandbox's direct Kinesis event (sbx_lua_invoke_kinesis) must be exactly the value that
 * decoding fn_event_build's JSON gives: same members and values, same number types (integer
 * for whole-second arrival times), same json markers. Random batches, both paths, one handler. */
static const char probe_code[] =
    "local function kinds(ev)\n"
    "  local t = {}\n"
    "  local obj, arr = getmetatable(json.decode('{}')), getmetatable(json.decode('[]'))\n"
    "  t[#t + 1] = getmetatable(ev) == obj and getmetatable(ev.Records) == arr\n"
    "  for _, r in ipairs(ev.Records) do\n"
    "    t[#t + 1] = math.type(r.kinesis.approximateArrivalTimestamp)\n"
    "    t[#t + 1] = getmetatable(r) == obj and getmetatable(r.kinesis) == obj\n"
    "  end\n"
    "  return t\n"
    "end\n"
    "function handler(event) return { event = event, kinds = kinds(event) } end\n";

static char *run_probe(sbx_lua *l, const fn_event_source *src, const fn_event_record *recs,
                       size_t n, bool direct)
{
    sbx_lua_result res;
    char *out;
    if (direct) {
        sbx_kinesis_event ev = {src->stream_arn, src->region, src->role_arn,
                                (const sbx_kinesis_record *)recs, n};
        assert_int_equal(sbx_lua_invoke_kinesis(l, &ev, NULL, 0, 0, &res), 0);
    } else {
        char *json;
        size_t len;
        assert_int_equal(fn_event_build(src, recs, n, NULL, &json, &len), 0);
        assert_int_equal(sbx_lua_invoke(l, json, len, NULL, 0, 0, &res), 0);
        sl_free(json);
    }
    if (res.status != SBX_LUA_OK) fprintf(stderr, "probe failed: %s\n", res.payload);
    assert_int_equal(res.status, SBX_LUA_OK);
    out = res.payload;
    res.payload = NULL;
    sbx_lua_result_clear(&res);
    return out;
}

static void test_direct_lua_event_matches_json_path(void **state)
{
    (void)state;
    /* the sandbox casts fn_event_record to sbx_kinesis_record: same layout */
    assert_int_equal(sizeof(fn_event_record), sizeof(sbx_kinesis_record));
    assert_int_equal(offsetof(fn_event_record, data_len), offsetof(sbx_kinesis_record, data_len));
    assert_int_equal(offsetof(fn_event_record, arrival_ms),
                     offsetof(sbx_kinesis_record, arrival_ms));
    sbx_lua *l;
    sbx_lua_error err;
    assert_int_equal(sbx_lua_new(&l, probe_code, sizeof probe_code - 1, "probe.lua", "handler",
                                 NULL, NULL, &err),
                     0);
    fn_event_source src = {"arn:aws:kinesis:us-east-1:000000000000:stream/s", "us-east-1",
                           "arn:aws:iam::000000000000:role/r"};
    srand(7);
    for (int round = 0; round < 50; round++) {
        enum { N = 20 };
        static char seqs[N][57], keys[N][40];
        static uint8_t data[N][64];
        fn_event_record recs[N];
        size_t n = (size_t)(rand() % N);
        for (size_t i = 0; i < n; i++) {
            snprintf(seqs[i], sizeof seqs[i], "4%055zu", (size_t)rand());
            switch (rand() % 4) {
            case 0: snprintf(keys[i], sizeof keys[i], "k-%d", rand()); break;
            case 1: snprintf(keys[i], sizeof keys[i], "\xc3\xbc\"\\\n\x01 %d", rand() % 9); break;
            case 2: snprintf(keys[i], sizeof keys[i], "\xe2\x82\xac/%d", rand() % 9); break;
            default: snprintf(keys[i], sizeof keys[i], "%d", rand()); break;
            }
            size_t dl = (size_t)(rand() % 64);
            for (size_t k = 0; k < dl; k++) data[i][k] = (uint8_t)rand();
            int64_t ms = 1714644901000LL + (rand() % 4 == 0 ? 0 : rand() % 1000) +
                         1000LL * (rand() % 100);
            recs[i] = (fn_event_record){"shardId-000000000003", seqs[i], keys[i],
                                        strlen(keys[i]), data[i], dl, ms};
        }
        char *a = run_probe(l, &src, recs, n, true);
        char *b = run_probe(l, &src, recs, n, false);
        cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b);
        assert_non_null(ja);
        assert_non_null(jb);
        if (!cJSON_Compare(ja, jb, 1)) fprintf(stderr, "direct: %s\njson:   %s\n", a, b);
        assert_true(cJSON_Compare(ja, jb, 1));
        /* number types and markers, literally */
        char *ka = cJSON_PrintUnformatted(cJSON_GetObjectItem(ja, "kinds"));
        char *kb = cJSON_PrintUnformatted(cJSON_GetObjectItem(jb, "kinds"));
        assert_string_equal(ka, kb);
        assert_non_null(strstr(ka, "true"));
        cJSON_free(ka);
        cJSON_free(kb);
        cJSON_Delete(ja);
        cJSON_Delete(jb);
        sl_free(a);
        sl_free(b);
    }
    /* a partition key that is not valid UTF-8 cannot take the direct path */
    fn_event_record bad = {"shardId-000000000000", "40", "\xff\xfe", 2, NULL, 0, 1};
    sbx_kinesis_event ev = {src.stream_arn, src.region, src.role_arn,
                            (const sbx_kinesis_record *)&bad, 1};
    sbx_lua_result res;
    assert_int_equal(sbx_lua_invoke_kinesis(l, &ev, NULL, 0, 0, &res), SL_ESERIAL);
    sbx_lua_result_clear(&res);
    sbx_lua_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_build_matches_literal),
        cmocka_unit_test(test_event_build_window_fields),
        cmocka_unit_test(test_event_timestamps_are_plain_decimals),
        cmocka_unit_test(test_event_sizes_add_up_on_random_batches),
        cmocka_unit_test(test_event_build_rejects_bad_arguments),
        cmocka_unit_test(test_failures_success_shapes),
        cmocka_unit_test(test_failures_partial_reports_lowest),
        cmocka_unit_test(test_failures_malformed_is_full_failure),
        cmocka_unit_test(test_failures_respects_length),
        cmocka_unit_test(test_window_state_required),
        cmocka_unit_test(test_window_state_is_copied),
        cmocka_unit_test(test_direct_lua_event_matches_json_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
