/* test_api_wire.c — runtime/wire.h (JSON and CBOR request decoding, strict base64, the response
 * writer in both formats) and runtime/api_errors.h (error table, request ids). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cbor.h>

#include "runtime/api_errors.h"
#include "runtime/daemon.h"
#include "runtime/http_server_int.h"
#include "runtime/wire.h"

static cJSON *decode_json_ok(const char *s)
{
    cJSON *t = NULL;
    sl_err err;
    assert_int_equal(wire_json_decode((const uint8_t *)s, strlen(s), &t, &err), 0);
    assert_non_null(t);
    return t;
}

static void test_json_decode_object(void **state)
{
    (void)state;
    cJSON *t = decode_json_ok(" {\"StreamName\":\"a\",\"Limit\":5} \n");
    assert_string_equal(cJSON_GetObjectItem(t, "StreamName")->valuestring, "a");
    assert_int_equal(cJSON_GetObjectItem(t, "Limit")->valueint, 5);
    cJSON_Delete(t);
}

static void test_json_decode_empty_is_empty_object(void **state)
{
    (void)state;
    cJSON *t = decode_json_ok("");
    assert_true(cJSON_IsObject(t));
    assert_null(t->child);
    cJSON_Delete(t);
    t = decode_json_ok("  \r\n");
    assert_true(cJSON_IsObject(t));
    cJSON_Delete(t);
}

static void test_json_decode_rejects_garbage(void **state)
{
    (void)state;
    const char *bad[] = {"{", "nope", "{\"a\":1} x", "[1,2]", "\"str\"", "{\"a\":}", "{}{}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *t = NULL;
        sl_err err;
        memset(&err, 0, sizeof err);
        assert_int_equal(wire_json_decode((const uint8_t *)bad[i], strlen(bad[i]), &t, &err),
                         SL_ESERIAL);
        assert_null(t);
        assert_int_equal(err.code, SL_ESERIAL);
        assert_true(strlen(err.msg) > 0);
    }
}

static void test_json_decode_rejects_embedded_nul(void **state)
{
    (void)state;
    const uint8_t body[] = {'{', '}', 0, 'x'};
    cJSON *t = NULL;
    sl_err err;
    assert_int_equal(wire_json_decode(body, sizeof body, &t, &err), SL_ESERIAL);
}

static void test_json_decode_refuses_value_floods(void **state)
{
    (void)state;
    size_t n = 2 * 1024 * 1024;
    char *b = malloc(n + 1);
    /* {"a":[0,0,0,...]} of 2 MiB: a million values */
    memcpy(b, "{\"a\":[", 6);
    size_t o = 6;
    while (o + 4 < n) {
        b[o++] = '0';
        b[o++] = ',';
    }
    b[o++] = '0';
    b[o++] = ']';
    b[o++] = '}';
    cJSON *t = NULL;
    sl_err err;
    assert_int_equal(wire_json_decode((const uint8_t *)b, o, &t, &err), SL_ESERIAL);
    assert_null(t);
    /* a large body with few values (one big string) is fine */
    memcpy(b, "{\"a\":\"", 6);
    memset(b + 6, 'x', n - 8);
    b[n - 2] = '"';
    b[n - 1] = '}';
    assert_int_equal(wire_json_decode((const uint8_t *)b, n, &t, &err), 0);
    assert_int_equal(strlen(cJSON_GetObjectItem(t, "a")->valuestring), n - 8);
    cJSON_Delete(t);
    free(b);
}

static void test_content_type_selects_format(void **state)
{
    (void)state;
    assert_int_equal(wire_fmt_from_content_type("application/x-amz-cbor-1.1"), WIRE_CBOR);
    assert_int_equal(wire_fmt_from_content_type("application/x-amz-json-1.1"), WIRE_JSON);
    assert_int_equal(wire_fmt_from_content_type(NULL), WIRE_JSON);
    assert_string_equal(wire_content_type(WIRE_CBOR), "application/x-amz-cbor-1.1");
    assert_string_equal(wire_content_type(WIRE_JSON), "application/x-amz-json-1.1");
}

/* ---- base64 ---- */

static void test_b64_accepts_canonical(void **state)
{
    (void)state;
    const char *ok[] = {"", "QQ==", "QUI=", "QUJD", "AAECAwQF", "+/+/"};
    size_t want[] = {0, 1, 2, 3, 6, 3};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t n = 99;
        sl_err err;
        assert_int_equal(wire_b64_check(ok[i], strlen(ok[i]), &n, &err), 0);
        assert_int_equal(n, want[i]);
    }
}

static void test_b64_rejects_bad_length(void **state)
{
    (void)state;
    size_t n;
    sl_err err;
    assert_int_equal(wire_b64_check("QUJ", 3, &n, &err), SL_ESERIAL);
    assert_string_equal(err.msg, "'QUJ' can not be converted to a Blob: Base64 encoded length is "
                                 "expected a multiple of 4 bytes but found: 3");
}

static void test_b64_rejects_bad_chars_and_padding(void **state)
{
    (void)state;
    const char *bad[] = {"QU-D", "Q===", "=QUI", "QQ=A", "QU\nD", "QUJD QUJD", "QU_D"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n;
        sl_err err;
        assert_int_equal(wire_b64_check(bad[i], strlen(bad[i]), &n, &err), SL_ESERIAL);
        assert_non_null(strstr(err.msg, "can not be converted to a Blob"));
    }
    size_t n;
    sl_err err;
    assert_int_equal(wire_b64_check("QU-D", 4, &n, &err), SL_ESERIAL);
    assert_string_equal(err.msg, "'QU-D' can not be converted to a Blob: Invalid Base64 "
                                 "character: '-'");
}

static void test_b64_rejects_non_canonical(void **state)
{
    (void)state;
    size_t n;
    sl_err err;
    /* "QR==" decodes to "A" too, but is not what an encoder produces. */
    assert_int_equal(wire_b64_check("QR==", 4, &n, &err), SL_ESERIAL);
    assert_string_equal(err.msg, "'QR==' can not be converted to a Blob: Invalid last non-pad "
                                 "Base64 character dectected");
    assert_int_equal(wire_b64_check("QUJ=", 4, &n, &err), SL_ESERIAL);
    assert_int_equal(wire_b64_check("QUI=", 4, &n, &err), 0);
}

static void test_b64_round_trips_all_bytes(void **state)
{
    (void)state;
    uint8_t in[256], out[256];
    char enc[400];
    for (int i = 0; i < 256; i++) in[i] = (uint8_t)i;
    for (size_t len = 0; len <= 256; len += (len < 8 ? 1 : 37)) {
        size_t e = wire_b64_encode(in, len, enc), n = 0;
        sl_err err;
        assert_int_equal(e, wire_b64_len(len));
        assert_int_equal(wire_b64_check(enc, e, &n, &err), 0);
        assert_int_equal(n, len);
        assert_int_equal(wire_b64_decode(enc, e, out), len);
        assert_memory_equal(in, out, len);
    }
    size_t e = wire_b64_encode(in, 256, enc);
    enc[e] = '\0';
    assert_int_equal(wire_b64_decode(enc, e, out), 256);
    assert_memory_equal(in, out, 256);
}

/* ---- writer ---- */

static char *take_str(wire_out *w)
{
    size_t n;
    assert_false(w->oom);
    uint8_t *b = wire_out_take(w, &n);
    char *s = malloc(n + 1);
    memcpy(s, b, n);
    s[n] = '\0';
    sl_free(b);
    return s;
}

static void test_json_writer_nesting_and_types(void **state)
{
    (void)state;
    wire_out w;
    const uint8_t blob[] = {0, 1, 2, 255};
    wire_out_init(&w, WIRE_JSON, 8); /* tiny: forces growth */
    wire_map(&w, 6);
    wire_key(&w, "S");
    wire_str(&w, "a\"b\\c\n\x01");
    wire_key(&w, "N");
    wire_int(&w, -42);
    wire_key(&w, "B");
    wire_bool(&w, true);
    wire_key(&w, "L");
    wire_arr(&w, 3);
    wire_null(&w);
    wire_blob(&w, blob, sizeof blob);
    wire_map(&w, 0);
    wire_end(&w);
    wire_end(&w);
    wire_key(&w, "T");
    wire_ts(&w, 1700000123456LL);
    wire_key(&w, "E");
    wire_arr(&w, 0);
    wire_end(&w);
    wire_end(&w);
    char *s = take_str(&w);
    assert_string_equal(s, "{\"S\":\"a\\\"b\\\\c\\n\\u0001\",\"N\":-42,\"B\":true,"
                           "\"L\":[null,\"AAEC/w==\",{}],\"T\":1700000123.456,\"E\":[]}");
    cJSON *t = cJSON_Parse(s);
    assert_non_null(t);
    cJSON_Delete(t);
    free(s);
    wire_out_free(&w);
}

static void test_json_timestamps_never_use_exponent(void **state)
{
    (void)state;
    char b[32];
    wire_format_ts(1700000123456LL, b);
    assert_string_equal(b, "1700000123.456");
    wire_format_ts(1700000000000LL, b);
    assert_string_equal(b, "1700000000.000");
    wire_format_ts(5, b);
    assert_string_equal(b, "0.005");
    wire_format_ts(-1500, b);
    assert_string_equal(b, "-1.500");
    assert_null(strchr(b, 'e'));
}

static void test_ts_ms_rounds_seconds(void **state)
{
    (void)state;
    cJSON *n = cJSON_CreateNumber(1700000000.123);
    assert_int_equal(wire_ts_ms(n), 1700000000123LL);
    cJSON_Delete(n);
    n = cJSON_CreateNumber(1700000000);
    assert_int_equal(wire_ts_ms(n), 1700000000000LL);
    cJSON_Delete(n);
}

static void test_cbor_writer_output_decodes(void **state)
{
    (void)state;
    wire_out w;
    const uint8_t blob[] = {0, 0xff, 0x10};
    wire_out_init(&w, WIRE_CBOR, 4);
    wire_map(&w, 5);
    wire_key(&w, "Data");
    wire_blob(&w, blob, sizeof blob);
    wire_key(&w, "ApproximateArrivalTimestamp");
    wire_ts(&w, 1700000123456LL);
    wire_key(&w, "N");
    wire_int(&w, -3);
    wire_key(&w, "L");
    wire_arr(&w, 2);
    wire_bool(&w, false);
    wire_null(&w);
    wire_end(&w);
    wire_key(&w, "S");
    wire_str(&w, "hello");
    wire_end(&w);
    assert_false(w.oom);

    struct cbor_load_result res;
    cbor_item_t *it = cbor_load(w.buf, w.len, &res);
    assert_non_null(it);
    assert_int_equal(res.read, w.len);
    assert_true(cbor_isa_map(it));
    assert_int_equal(cbor_map_size(it), 5);
    struct cbor_pair *p = cbor_map_handle(it);
    assert_true(cbor_isa_bytestring(p[0].value));
    assert_int_equal(cbor_bytestring_length(p[0].value), 3);
    assert_memory_equal(cbor_bytestring_handle(p[0].value), blob, 3);
    assert_true(cbor_isa_tag(p[1].value));
    assert_int_equal(cbor_tag_value(p[1].value), 1);
    cbor_item_t *inner = cbor_tag_item(p[1].value);
    assert_true(cbor_isa_uint(inner));
    assert_int_equal(cbor_get_int(inner), 1700000123456ULL);
    cbor_decref(&inner);
    assert_true(cbor_isa_negint(p[2].value));
    assert_int_equal(cbor_get_int(p[2].value), 2);
    cbor_decref(&it);

    /* And our own decoder reads it back into the shared tree. */
    cJSON *t = NULL;
    sl_err err;
    assert_int_equal(wire_cbor_decode(w.buf, w.len, &t, &err), 0);
    cJSON *d = cJSON_GetObjectItem(t, "Data");
    assert_true(wire_is_blob(d));
    const uint8_t *bp;
    size_t bn;
    wire_blob_bytes(d, &bp, &bn);
    assert_int_equal(bn, 3);
    assert_memory_equal(bp, blob, 3);
    assert_int_equal(wire_ts_ms(cJSON_GetObjectItem(t, "ApproximateArrivalTimestamp")),
                     1700000123456LL);
    assert_int_equal((int)cJSON_GetObjectItem(t, "N")->valuedouble, -3);
    assert_string_equal(cJSON_GetObjectItem(t, "S")->valuestring, "hello");
    cJSON_Delete(t);
    wire_out_free(&w);
}

static void test_writer_detects_miscounted_containers(void **state)
{
    (void)state;
    for (int f = 0; f < 2; f++) {
        wire_out w;
        wire_out_init(&w, f ? WIRE_CBOR : WIRE_JSON, 64);
        wire_map(&w, 2);
        wire_key(&w, "a");
        wire_int(&w, 1);
        wire_end(&w);  /* one entry, two announced */
        assert_true(w.oom);
        wire_out_free(&w);
        wire_out_init(&w, f ? WIRE_CBOR : WIRE_JSON, 64);
        wire_arr(&w, 1);
        wire_str(&w, "x");
        wire_map(&w, 0);
        wire_end(&w);
        wire_end(&w);  /* two elements, one announced */
        assert_true(w.oom);
        wire_out_free(&w);
        wire_out_init(&w, f ? WIRE_CBOR : WIRE_JSON, 64);
        wire_end(&w);  /* nothing open */
        assert_true(w.oom);
        wire_out_free(&w);
    }
}

static void test_cbor_decode_indefinite_strings(void **state)
{
    (void)state;
    /* {_ "PartitionKey": (_ "ab" "c"), "Data": (_ h'01' h'0203')} as indefinite items */
    const uint8_t body[] = {0xbf, 0x6c, 'P', 'a', 'r', 't', 'i', 't', 'i', 'o', 'n', 'K', 'e', 'y',
                            0x7f, 0x62, 'a', 'b', 0x61, 'c', 0xff,
                            0x64, 'D', 'a', 't', 'a',
                            0x5f, 0x41, 0x01, 0x42, 0x02, 0x03, 0xff, 0xff};
    cJSON *t = NULL;
    sl_err err;
    assert_int_equal(wire_cbor_decode(body, sizeof body, &t, &err), 0);
    assert_string_equal(cJSON_GetObjectItem(t, "PartitionKey")->valuestring, "abc");
    const uint8_t *p;
    size_t n;
    wire_blob_bytes(cJSON_GetObjectItem(t, "Data"), &p, &n);
    assert_int_equal(n, 3);
    assert_int_equal(p[0], 1);
    assert_int_equal(p[2], 3);
    cJSON_Delete(t);
}

static void test_cbor_decode_rejects_bad_input(void **state)
{
    (void)state;
    const uint8_t not_map[] = {0x83, 1, 2, 3};
    const uint8_t int_key[] = {0xa1, 0x01, 0x02};
    const uint8_t trailing[] = {0xa0, 0x00};
    const uint8_t truncated[] = {0xa1, 0x64, 'D', 'a'};
    const uint8_t bad_ts[] = {0xa1, 0x61, 'T', 0xc1, 0x61, 'x'};
    /* a map announcing 3 billion entries in 5 bytes, and an array of 2^32 inside a map */
    const uint8_t huge_map[] = {0xba, 0xba, 0xba, 0xba, 0xba};
    const uint8_t huge_arr[] = {0xa1, 0x61, 'x', 0x9a, 0xff, 0xff, 0xff, 0xff, 0x00};
    const uint8_t tagged_top[] = {0xd9, 0xd9, 0xf7, 0xa0};
    const struct {
        const uint8_t *b;
        size_t n;
    } cases[] = {{not_map, sizeof not_map}, {int_key, sizeof int_key},
                 {trailing, sizeof trailing}, {truncated, sizeof truncated},
                 {bad_ts, sizeof bad_ts}, {huge_map, sizeof huge_map},
                 {huge_arr, sizeof huge_arr}, {tagged_top, sizeof tagged_top}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *t = NULL;
        sl_err err;
        assert_int_equal(wire_cbor_decode(cases[i].b, cases[i].n, &t, &err), SL_ESERIAL);
        assert_null(t);
    }
    /* 100 nested arrays inside the map exceed the depth cap */
    uint8_t deep[110];
    size_t o = 0;
    deep[o++] = 0xa1;
    deep[o++] = 0x61;
    deep[o++] = 'x';
    for (int i = 0; i < 100; i++) deep[o++] = 0x81;
    deep[o++] = 0x00;
    cJSON *t = NULL;
    sl_err err;
    assert_int_equal(wire_cbor_decode(deep, o, &t, &err), SL_ESERIAL);
}

static void test_error_bodies_in_both_formats(void **state)
{
    (void)state;
    uint8_t *b;
    size_t n;
    assert_int_equal(wire_error_body(WIRE_JSON, "ResourceNotFoundException", "Stream x not found.",
                                     &b, &n), 0);
    assert_int_equal(n, strlen("{\"__type\":\"ResourceNotFoundException\",\"message\":\"Stream x "
                               "not found.\"}"));
    assert_memory_equal(b, "{\"__type\":\"ResourceNotFoundException\",\"message\":\"Stream x not "
                           "found.\"}", n);
    sl_free(b);
    assert_int_equal(wire_error_body(WIRE_CBOR, "SerializationException", "bad", &b, &n), 0);
    cJSON *t = NULL;
    sl_err err;
    assert_int_equal(wire_cbor_decode(b, n, &t, &err), 0);
    assert_string_equal(cJSON_GetObjectItem(t, "__type")->valuestring, "SerializationException");
    assert_string_equal(cJSON_GetObjectItem(t, "message")->valuestring, "bad");
    cJSON_Delete(t);
    sl_free(b);
}

static void test_error_table_maps_codes(void **state)
{
    (void)state;
    assert_string_equal(api_error_type(SL_EINVAL), "InvalidArgumentException");
    assert_string_equal(api_error_type(SL_EVALIDATION), "ValidationException");
    assert_string_equal(api_error_type(SL_ENOTFOUND), "ResourceNotFoundException");
    assert_string_equal(api_error_type(SL_EEXISTS), "ResourceInUseException");
    assert_string_equal(api_error_type(SL_EINUSE), "ResourceInUseException");
    assert_string_equal(api_error_type(SL_ELIMIT), "LimitExceededException");
    assert_string_equal(api_error_type(SL_ETHROTTLED), "ProvisionedThroughputExceededException");
    assert_string_equal(api_error_type(SL_EEXPIRED), "ExpiredIteratorException");
    assert_string_equal(api_error_type(SL_ETOKEN_EXPIRED), "ExpiredNextTokenException");
    assert_string_equal(api_error_type(SL_ESERIAL), "SerializationException");
    assert_string_equal(api_error_type(SL_EIO), "InternalFailureException");
    assert_string_equal(api_error_type(-2), "InternalFailureException");
    assert_int_equal(api_error_status("InternalFailureException"), 500);
    assert_int_equal(api_error_status("ValidationException"), 400);
    assert_int_equal(api_error_status("AccessDeniedException"), 403);
}

static void test_request_ids_are_uuid_v4(void **state)
{
    (void)state;
    char a[37], b[37];
    api_request_id(a);
    api_request_id(b);
    assert_int_equal(strlen(a), 36);
    assert_string_not_equal(a, b);
    assert_int_equal(a[8], '-');
    assert_int_equal(a[13], '-');
    assert_int_equal(a[14], '4');
    assert_int_equal(a[18], '-');
    assert_non_null(strchr("89ab", a[19]));
    assert_int_equal(a[23], '-');
}


/* ---- the router and the Kinesis API end to end through the real HTTP parser -------------- *
 * A fake connection (runtime/http_server_int.h) runs the server's per-connection code without a
 * socket; the daemon has a real broker in a temporary directory and no loop (puts run inline). */

typedef struct router_fixture {
    char dir[64];
    rt_config cfg;
    rt_daemon d;
    http__fake *f;
    size_t seen;   /* output bytes already looked at */
} router_fixture;

static int router_setup(void **state)
{
    router_fixture *fx = calloc(1, sizeof *fx);
    brk_opts bo;
    http_server_opts ho;
    sl_err err;

    snprintf(fx->dir, sizeof fx->dir, "/tmp/sluice-test-api-XXXXXX");
    if (!mkdtemp(fx->dir)) return -1;
    memset(&bo, 0, sizeof bo);
    bo.data_dir = fx->dir;
    bo.fsync = BRK_FSYNC_NO;
    if (brk_open(&fx->d.broker, &bo, &err) != 0) return -1;
    fx->cfg.fsync = BRK_FSYNC_ALWAYS; /* no loop: the put path must still answer inline */
    fx->d.cfg = &fx->cfg;
    fx->d.started_ms = sl_now_ms();
    memset(&ho, 0, sizeof ho);
    ho.max_body = 7 * 1024 * 1024;
    ho.idle_timeout_ms = 60000;
    if (http__fake_new(&fx->f, &ho, rt_route, &fx->d) != 0) return -1;
    *state = fx;
    return 0;
}

static int router_teardown(void **state)
{
    router_fixture *fx = *state;
    char cmd[128];
    http__fake_free(fx->f);
    brk_close(fx->d.broker);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0) return -1;
    free(fx);
    return 0;
}

/* Sends one request and returns the new output (a malloc'd NUL-terminated copy). */
static char *exchange(router_fixture *fx, const char *method, const char *target,
                      const char *content_type, bool auth, const void *body, size_t blen)
{
    char head[1024];
    size_t o = 0, len = 0;
    o += (size_t)snprintf(head + o, sizeof head - o, "%s / HTTP/1.1\r\nHost: x\r\n", method);
    if (target)
        o += (size_t)snprintf(head + o, sizeof head - o, "X-Amz-Target: Kinesis_20131202.%s\r\n",
                              target);
    if (content_type)
        o += (size_t)snprintf(head + o, sizeof head - o, "Content-Type: %s\r\n", content_type);
    if (auth)
        o += (size_t)snprintf(head + o, sizeof head - o,
                              "X-Amz-Date: 20250101T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 "
                              "Credential=AKID/20250101/us-east-1/kinesis/aws4_request, "
                              "SignedHeaders=host;x-amz-date, Signature=00\r\n");
    o += (size_t)snprintf(head + o, sizeof head - o, "Content-Length: %zu\r\n\r\n", blen);
    assert_int_equal(http__fake_feed(fx->f, (const uint8_t *)head, o), 1);
    if (blen) http__fake_feed(fx->f, body, blen);
    const uint8_t *all = http__fake_output(fx->f, &len);
    assert_true(len > fx->seen);
    char *out = malloc(len - fx->seen + 1);
    memcpy(out, all + fx->seen, len - fx->seen);
    out[len - fx->seen] = '\0';
    fx->seen = len;
    return out;
}

static char *json_call(router_fixture *fx, const char *op, const char *json)
{
    return exchange(fx, "POST", op, WIRE_CT_JSON, true, json, strlen(json));
}

static void test_router_health_and_headers(void **state)
{
    router_fixture *fx = *state;
    char *r = exchange(fx, "GET", NULL, NULL, false, NULL, 0);
    assert_non_null(strstr(r, "HTTP/1.1 403"));
    assert_non_null(strstr(r, "<AccessDeniedException>"));
    assert_non_null(strstr(r, "x-amzn-RequestId: "));
    assert_non_null(strstr(r, "x-amz-id-2: "));
    free(r);
    const char get_health[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    http__fake_feed(fx->f, (const uint8_t *)get_health, sizeof get_health - 1);
    size_t len;
    const uint8_t *all = http__fake_output(fx->f, &len);
    char *h = strndup((const char *)all + fx->seen, len - fx->seen);
    fx->seen = len;
    assert_non_null(strstr(h, "HTTP/1.1 200"));
    assert_non_null(strstr(h, "\"version\":\"0.1.0\""));
    assert_non_null(strstr(h, "\"uptimeSeconds\":"));
    assert_non_null(strstr(h, "x-amzn-RequestId: "));
    free(h);
}

static void test_router_kinesis_errors(void **state)
{
    router_fixture *fx = *state;
    char *r = exchange(fx, "POST", "ListStreams", WIRE_CT_JSON, false, "{}", 2);
    assert_non_null(strstr(r, "HTTP/1.1 400"));
    assert_non_null(strstr(r, "\"__type\":\"MissingAuthenticationTokenException\""));
    assert_non_null(strstr(r, "Missing Authentication Token"));
    free(r);
    r = json_call(fx, "NoSuchThing", "{}");
    assert_non_null(strstr(r, "\"__type\":\"UnknownOperationException\""));
    free(r);
    r = exchange(fx, "POST", NULL, WIRE_CT_JSON, true, "{}", 2);
    assert_non_null(strstr(r, "\"__type\":\"UnknownOperationException\""));
    free(r);
    r = json_call(fx, "DescribeStream", "{\"StreamName\":");
    assert_non_null(strstr(r, "\"__type\":\"SerializationException\""));
    free(r);
    r = json_call(fx, "DescribeStream", "{\"StreamName\":\"ghost\"}");
    assert_non_null(strstr(r, "HTTP/1.1 400"));
    assert_non_null(strstr(r, "\"__type\":\"ResourceNotFoundException\""));
    assert_non_null(strstr(r, "Stream ghost under account 000000000000 not found."));
    assert_non_null(strstr(r, "Content-Type: application/x-amz-json-1.1"));
    free(r);
}

static void test_router_put_get_round_trip(void **state)
{
    router_fixture *fx = *state;
    char *r = json_call(fx, "CreateStream", "{\"StreamName\":\"rt\",\"ShardCount\":1}");
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    free(r);
    r = json_call(fx, "PutRecord",
                  "{\"StreamName\":\"rt\",\"Data\":\"AAEC/w==\",\"PartitionKey\":\"k\"}");
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "\"ShardId\":\"shardId-000000000000\""));
    free(r);
    r = json_call(fx, "PutRecords",
                  "{\"StreamName\":\"rt\",\"Records\":[{\"Data\":\"QQ==\",\"PartitionKey\":\"a\"},"
                  "{\"Data\":\"\",\"PartitionKey\":\"b\"}]}");
    assert_non_null(strstr(r, "\"FailedRecordCount\":0"));
    free(r);
    r = json_call(fx, "GetShardIterator",
                  "{\"StreamName\":\"rt\",\"ShardId\":\"0\",\"ShardIteratorType\":\"TRIM_HORIZON\"}");
    char *it = strstr(r, "\"ShardIterator\":\"");
    assert_non_null(it);
    it += strlen("\"ShardIterator\":\"");
    *strchr(it, '"') = '\0';
    char req[1024];
    snprintf(req, sizeof req, "{\"ShardIterator\":\"%s\"}", it);
    free(r);
    r = json_call(fx, "GetRecords", req);
    assert_non_null(strstr(r, "\"Data\":\"AAEC/w==\""));
    assert_non_null(strstr(r, "\"Data\":\"QQ==\""));
    assert_non_null(strstr(r, "\"Data\":\"\""));
    assert_non_null(strstr(r, "\"MillisBehindLatest\":0"));
    assert_non_null(strstr(r, "\"NextShardIterator\":\""));
    free(r);
}

static void test_router_cbor_answers_in_cbor(void **state)
{
    router_fixture *fx = *state;
    /* {"StreamName":"ghost"} */
    const uint8_t body[] = {0xa1, 0x6a, 'S', 't', 'r', 'e', 'a', 'm', 'N', 'a', 'm', 'e',
                            0x65, 'g', 'h', 'o', 's', 't'};
    char *r = exchange(fx, "POST", "DescribeStreamSummary", WIRE_CT_CBOR, true, body,
                       sizeof body);
    assert_non_null(strstr(r, "HTTP/1.1 400"));
    assert_non_null(strstr(r, "Content-Type: application/x-amz-cbor-1.1"));
    char *b = strstr(r, "\r\n\r\n");
    assert_non_null(b);
    b += 4;
    cJSON *t = NULL;
    sl_err err;
    assert_int_equal(wire_cbor_decode((const uint8_t *)b, strlen(b), &t, &err), 0);
    assert_string_equal(cJSON_GetObjectItem(t, "__type")->valuestring,
                        "ResourceNotFoundException");
    cJSON_Delete(t);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_decode_object),
        cmocka_unit_test(test_json_decode_empty_is_empty_object),
        cmocka_unit_test(test_json_decode_rejects_garbage),
        cmocka_unit_test(test_json_decode_rejects_embedded_nul),
        cmocka_unit_test(test_json_decode_refuses_value_floods),
        cmocka_unit_test(test_content_type_selects_format),
        cmocka_unit_test(test_b64_accepts_canonical),
        cmocka_unit_test(test_b64_rejects_bad_length),
        cmocka_unit_test(test_b64_rejects_bad_chars_and_padding),
        cmocka_unit_test(test_b64_rejects_non_canonical),
        cmocka_unit_test(test_b64_round_trips_all_bytes),
        cmocka_unit_test(test_json_writer_nesting_and_types),
        cmocka_unit_test(test_json_timestamps_never_use_exponent),
        cmocka_unit_test(test_ts_ms_rounds_seconds),
        cmocka_unit_test(test_cbor_writer_output_decodes),
        cmocka_unit_test(test_writer_detects_miscounted_containers),
        cmocka_unit_test(test_cbor_decode_indefinite_strings),
        cmocka_unit_test(test_cbor_decode_rejects_bad_input),
        cmocka_unit_test(test_error_bodies_in_both_formats),
        cmocka_unit_test(test_error_table_maps_codes),
        cmocka_unit_test(test_request_ids_are_uuid_v4),
    };
    const struct CMUnitTest router_tests[] = {
        cmocka_unit_test_setup_teardown(test_router_health_and_headers, router_setup,
                                        router_teardown),
        cmocka_unit_test_setup_teardown(test_router_kinesis_errors, router_setup,
                                        router_teardown),
        cmocka_unit_test_setup_teardown(test_router_put_get_round_trip, router_setup,
                                        router_teardown),
        cmocka_unit_test_setup_teardown(test_router_cbor_answers_in_cbor, router_setup,
                                        router_teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    failed += cmocka_run_group_tests(router_tests, NULL, NULL);
    return failed;
}
