/* test_dest.c — on-failure destinations (SPEC 3.7): validation, the invocation record field by
 * field, local SQS/SNS queue files, the S3 key layout, a real broker stream, and HTTP POSTs to a
 * local server (with retries after 500s). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "runtime/dest.h"

#define SEQ1 "49646437577108476416916876405825929425585429676275269634"
#define SEQ2 "49646437577175378652512468275256581209501448250264125490"
#define FN_ARN "arn:aws:lambda:us-east-1:123456789012:function:ingest"
#define STREAM_ARN "arn:aws:kinesis:us-east-1:123456789012:stream/telemetry"
#define UUID "6b5a2e3c-8d1f-4e55-9b0a-1c2d3e4f5a6b"

static const fn_event_source SRC = {STREAM_ARN, "us-east-1",
                                    "arn:aws:iam::123456789012:role/ingest-role"};
static fn_event_record RECS[2] = {
    {"shardId-000000000000", SEQ1, "sensor-7", 8, (const uint8_t *)"{\"t\":1}", 7,
     1714644901421LL},
    {"shardId-000000000000", SEQ2, "sensor-9", 8, (const uint8_t *)"\x01\x02", 2,
     1714644902007LL},
};

static dst_failure failure(void)
{
    dst_failure f = {
        .function_arn = FN_ARN,
        .condition = "RetryAttemptsExhausted",
        .approximate_invoke_count = 3,
        .has_response = true,
        .status_code = 200,
        .function_error = "Unhandled",
        .shard_id = "shardId-000000000000",
        .stream_arn = STREAM_ARN,
        .mapping_uuid = UUID,
        .recs = RECS,
        .nrecs = 2,
        .src = &SRC,
        .now_ms = 1714644930125LL, /* 2024-05-02T10:15:30.125Z */
    };
    return f;
}

static char tmpdir[256];

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sluice-test-dest-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown_dir(void **state)
{
    (void)state;
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static bool is_uuid4(const char *s)
{
    if (strlen(s) != 36) return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return false;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

/* Asserts the members of obj are exactly names[] in that order. */
static void assert_members(const cJSON *obj, const char *const *names, size_t n)
{
    assert_true(cJSON_IsObject(obj));
    size_t i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, obj) {
        assert_true(i < n);
        assert_string_equal(c->string, names[i]);
        i++;
    }
    assert_int_equal(i, n);
}

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static double num_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

/* ---- validation ---- */

static void test_dst_validate_accepts_each_kind(void **state)
{
    (void)state;
    static const struct {
        const char *d;
        enum dst_kind k;
    } ok[] = {
        {"arn:aws:sqs:us-east-1:000000000000:failures", DST_SQS},
        {"arn:aws:sqs:eu-west-3:123456789012:orders.fifo", DST_SQS},
        {"arn:aws:sns:us-gov-west-1:123456789012:alerts_topic-1", DST_SNS},
        {"arn:aws:s3:::my-failure.bucket", DST_S3},
        {"arn:aws:kinesis:us-east-1:000000000000:stream/dlq.stream_1", DST_STREAM},
        {"arn:aws-cn:sqs:cn-north-1:123456789012:q", DST_SQS},
        {"http://127.0.0.1:8080/hook", DST_HTTP},
        {"https://example.com/a/b?x=1", DST_HTTP},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        enum dst_kind k = (enum dst_kind)99;
        sl_err err;
        assert_int_equal(dst_validate(ok[i].d, &k, &err), 0);
        assert_int_equal(k, ok[i].k);
    }
}

static void test_dst_validate_rejects_bad_destinations(void **state)
{
    (void)state;
    char longd[400];
    snprintf(longd, sizeof(longd), "arn:aws:sqs:us-east-1:000000000000:");
    memset(longd + strlen(longd), 'q', 360);
    longd[399] = '\0';
    const char *bad[] = {
        "",
        longd,
        "failures",
        "arn:aws:lambda:us-east-1:000000000000:function:f",
        "arn:aws:sqs:us-east-1:0000:failures",
        "arn:aws:sqs:useast:000000000000:failures",
        "arn:aws:sqs:us-east-1:000000000000:",
        "arn:aws:sqs:us-east-1:000000000000:../../etc",
        "arn:aws:sqs:us-east-1:000000000000:a/b",
        "arn:aws:sns:us-east-1:000000000000:has space",
        "arn:aws:s3:us-east-1::bucket",
        "arn:aws:s3:::Upper",
        "arn:aws:s3:::a..b",
        "arn:aws:s3:::ab",
        "arn:aws:kinesis:us-east-1:000000000000:dlq",
        "arn:aws:kinesis:us-east-1:000000000000:stream/",
        "arn:azure:sqs:us-east-1:000000000000:q",
        "ftp://example.com/x",
        "http://",
        "http://exa mple.com/",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum dst_kind k = (enum dst_kind)99;
        sl_err err = {0};
        assert_int_equal(dst_validate(bad[i], &k, &err), SL_EINVAL);
        assert_int_equal(err.code, SL_EINVAL);
        assert_true(strstr(err.msg, "destination") != NULL);
        assert_int_equal(k, 99); /* untouched */
    }
    sl_err err;
    assert_int_equal(dst_validate(NULL, NULL, &err), SL_EINVAL);
}

/* ---- the record ---- */

static void test_dst_record_shape_field_by_field(void **state)
{
    (void)state;
    dst_failure f = failure();
    char *json = NULL;
    size_t len = 0;
    assert_int_equal(dst_failure_json(&f, DST_SQS, &json, &len), 0);
    assert_int_equal(strlen(json), len);
    assert_null(strchr(json, '\n'));
    cJSON *root = cJSON_Parse(json);
    assert_non_null(root);
    static const char *const top[] = {"requestContext", "responseContext", "version",
                                      "timestamp", "KinesisBatchInfo"};
    assert_members(root, top, 5);

    const cJSON *rq = cJSON_GetObjectItem(root, "requestContext");
    static const char *const rqn[] = {"requestId", "functionArn", "condition",
                                      "approximateInvokeCount"};
    assert_members(rq, rqn, 4);
    assert_true(is_uuid4(str_of(rq, "requestId")));
    assert_string_equal(str_of(rq, "functionArn"), FN_ARN);
    assert_string_equal(str_of(rq, "condition"), "RetryAttemptsExhausted");
    assert_true(num_of(rq, "approximateInvokeCount") == 3);

    const cJSON *rs = cJSON_GetObjectItem(root, "responseContext");
    static const char *const rsn[] = {"statusCode", "executedVersion", "functionError"};
    assert_members(rs, rsn, 3);
    assert_true(num_of(rs, "statusCode") == 200);
    assert_string_equal(str_of(rs, "executedVersion"), "$LATEST");
    assert_string_equal(str_of(rs, "functionError"), "Unhandled");

    assert_string_equal(str_of(root, "version"), "1.0");
    assert_string_equal(str_of(root, "timestamp"), "2024-05-02T10:15:30.125Z");

    const cJSON *bi = cJSON_GetObjectItem(root, "KinesisBatchInfo");
    static const char *const bin[] = {"shardId", "startSequenceNumber", "endSequenceNumber",
                                      "approximateArrivalOfFirstRecord",
                                      "approximateArrivalOfLastRecord", "batchSize",
                                      "streamArn"};
    assert_members(bi, bin, 7);
    assert_string_equal(str_of(bi, "shardId"), "shardId-000000000000");
    assert_string_equal(str_of(bi, "startSequenceNumber"), SEQ1);
    assert_string_equal(str_of(bi, "endSequenceNumber"), SEQ2);
    assert_string_equal(str_of(bi, "approximateArrivalOfFirstRecord"),
                        "2024-05-02T10:15:01.421Z");
    assert_string_equal(str_of(bi, "approximateArrivalOfLastRecord"),
                        "2024-05-02T10:15:02.007Z");
    assert_true(num_of(bi, "batchSize") == 2);
    assert_string_equal(str_of(bi, "streamArn"), STREAM_ARN);
    /* integers are printed as integers */
    assert_non_null(strstr(json, "\"approximateInvokeCount\":3}"));
    assert_non_null(strstr(json, "\"batchSize\":2,"));
    cJSON_Delete(root);
    sl_free(json);
}

static void test_dst_record_optional_parts(void **state)
{
    (void)state;
    dst_failure f = failure();
    char *json = NULL;
    f.has_response = false; /* discarded before any invoke */
    f.condition = "RecordAgeExceeded";
    f.nrecs = 1;
    assert_int_equal(dst_failure_json(&f, DST_SQS, &json, NULL), 0);
    cJSON *root = cJSON_Parse(json);
    static const char *const top[] = {"requestContext", "version", "timestamp",
                                      "KinesisBatchInfo"};
    assert_members(root, top, 4);
    const cJSON *bi = cJSON_GetObjectItem(root, "KinesisBatchInfo");
    assert_string_equal(str_of(bi, "startSequenceNumber"), SEQ1);
    assert_string_equal(str_of(bi, "endSequenceNumber"), SEQ1);
    assert_true(num_of(bi, "batchSize") == 1);
    cJSON_Delete(root);
    sl_free(json);

    /* valid partial-batch response: no functionError; numeric qualifier = executed version */
    f = failure();
    f.function_error = NULL;
    f.function_arn = FN_ARN ":7";
    assert_int_equal(dst_failure_json(&f, DST_SNS, &json, NULL), 0);
    root = cJSON_Parse(json);
    const cJSON *rs = cJSON_GetObjectItem(root, "responseContext");
    static const char *const rsn[] = {"statusCode", "executedVersion"};
    assert_members(rs, rsn, 2);
    assert_string_equal(str_of(rs, "executedVersion"), "7");
    cJSON_Delete(root);
    sl_free(json);

    /* bad input */
    f = failure();
    f.nrecs = 0;
    assert_int_equal(dst_failure_json(&f, DST_SQS, &json, NULL), SL_EINVAL);
    assert_int_equal(dst_failure_json(NULL, DST_SQS, &json, NULL), SL_EINVAL);
}

static void test_dst_request_ids_are_unique(void **state)
{
    (void)state;
    dst_failure f = failure();
    char ids[20][37];
    for (int i = 0; i < 20; i++) {
        char *json = NULL;
        assert_int_equal(dst_failure_json(&f, DST_SQS, &json, NULL), 0);
        cJSON *root = cJSON_Parse(json);
        snprintf(ids[i], 37, "%s", str_of(cJSON_GetObjectItem(root, "requestContext"),
                                          "requestId"));
        assert_true(is_uuid4(ids[i]));
        for (int j = 0; j < i; j++) assert_string_not_equal(ids[i], ids[j]);
        cJSON_Delete(root);
        sl_free(json);
    }
}

static void test_dst_s3_and_sns_payloads(void **state)
{
    (void)state;
    dst_failure f = failure();
    char *json = NULL;
    char *event = NULL;
    size_t event_len = 0;
    assert_int_equal(fn_event_build(&SRC, RECS, 2, NULL, &event, &event_len), 0);
    assert_int_equal(dst_failure_json(&f, DST_S3, &json, NULL), 0);
    cJSON *root = cJSON_Parse(json);
    static const char *const top[] = {"requestContext", "responseContext", "version",
                                      "timestamp", "KinesisBatchInfo", "payload"};
    assert_members(root, top, 6);
    /* the payload is the exact event the function received */
    char *want = malloc(event_len + 16);
    snprintf(want, event_len + 16, "\"payload\":%s}", event);
    assert_non_null(strstr(json, want));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "payload"),
                                                             "Records")),
                     2);
    free(want);
    cJSON_Delete(root);
    sl_free(json);
    sl_free(event);

    /* SNS: small payload kept, payload past 256 KB dropped; SQS never has one */
    assert_int_equal(dst_failure_json(&f, DST_SNS, &json, NULL), 0);
    assert_non_null(strstr(json, "\"payload\":{\"Records\""));
    sl_free(json);
    assert_int_equal(dst_failure_json(&f, DST_SQS, &json, NULL), 0);
    assert_null(strstr(json, "payload"));
    sl_free(json);
    size_t big_n = 200 * 1024; /* 273 KB once base64-encoded */
    uint8_t *big = calloc(1, big_n);
    fn_event_record r = RECS[0];
    r.data = big;
    r.data_len = big_n;
    f.recs = &r;
    f.nrecs = 1;
    size_t len = 0;
    assert_int_equal(dst_failure_json(&f, DST_SNS, &json, &len), 0);
    assert_null(strstr(json, "payload"));
    assert_true(len < 256 * 1024);
    sl_free(json);
    assert_int_equal(dst_failure_json(&f, DST_S3, &json, &len), 0);
    assert_true(len > 256 * 1024); /* S3 keeps it */
    sl_free(json);
    free(big);
}

/* ---- local queues and buckets ---- */

static void test_dst_sqs_and_sns_queue_files(void **state)
{
    (void)state;
    char data[512];
    snprintf(data, sizeof(data), "%s/not/yet/created", tmpdir);
    const char *sqs = "arn:aws:sqs:us-east-1:000000000000:failures";
    const char *sns = "arn:aws:sns:us-east-1:000000000000:alerts";
    dst_failure f = failure();
    sl_err err;
    for (int i = 0; i < 3; i++) {
        f.approximate_invoke_count = (uint32_t)(i + 1);
        assert_int_equal(dst_send(data, NULL, sqs, &f, &err), 0);
    }
    assert_int_equal(dst_send(data, NULL, sns, &f, &err), 0);

    char path[600];
    snprintf(path, sizeof(path), "%s/destinations/sqs/failures.jsonl", data);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/destinations/sns/alerts.jsonl", data);
    assert_int_equal(stat(path, &st), 0);

    char **lines = NULL;
    size_t n = 0;
    assert_int_equal(dst_queue_read(data, sqs, &lines, &n, &err), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        cJSON *root = cJSON_Parse(lines[i]);
        assert_non_null(root);
        const cJSON *rq = cJSON_GetObjectItem(root, "requestContext");
        assert_true(num_of(rq, "approximateInvokeCount") == (double)(i + 1));
        assert_null(cJSON_GetObjectItem(root, "payload"));
        cJSON_Delete(root);
    }
    dst_lines_free(lines, n);
    assert_int_equal(dst_queue_read(data, sns, &lines, &n, &err), 0);
    assert_int_equal(n, 1);
    cJSON *root = cJSON_Parse(lines[0]);
    assert_non_null(cJSON_GetObjectItem(root, "payload"));
    cJSON_Delete(root);
    dst_lines_free(lines, n);
}

static void test_dst_queue_read_edge_cases(void **state)
{
    (void)state;
    sl_err err;
    char **lines = (char **)0x1;
    size_t n = 99;
    /* nothing written yet: empty, not an error */
    assert_int_equal(dst_queue_read(tmpdir, "arn:aws:sqs:us-east-1:000000000000:none", &lines,
                                    &n, &err),
                     0);
    assert_null(lines);
    assert_int_equal(n, 0);
    /* a torn last line (no newline) is not a message */
    char dir[600], path[700];
    snprintf(dir, sizeof(dir), "%s/destinations/sqs", tmpdir);
    mkdir(tmpdir, 0755);
    snprintf(path, sizeof(path), "%s/destinations", tmpdir);
    mkdir(path, 0755);
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/torn.jsonl", dir);
    FILE *fp = fopen(path, "w");
    fputs("{\"a\":1}\n\n{\"b\":2}\n{\"c\":", fp);
    fclose(fp);
    assert_int_equal(dst_queue_read(tmpdir, "arn:aws:sqs:us-east-1:000000000000:torn", &lines,
                                    &n, &err),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(lines[0], "{\"a\":1}");
    assert_string_equal(lines[1], "{\"b\":2}");
    dst_lines_free(lines, n);
    /* only queues can be read */
    assert_int_equal(dst_queue_read(tmpdir, "arn:aws:s3:::bucket-x", &lines, &n, &err),
                     SL_EINVAL);
    assert_int_equal(dst_queue_read(tmpdir, "nonsense", &lines, &n, &err), SL_EINVAL);
    dst_lines_free(NULL, 0);
}

static void test_dst_s3_object_key_layout(void **state)
{
    (void)state;
    dst_failure f = failure();
    sl_err err;
    assert_int_equal(dst_send(tmpdir, NULL, "arn:aws:s3:::failure-bucket", &f, &err), 0);
    assert_int_equal(dst_send(tmpdir, NULL, "arn:aws:s3:::failure-bucket", &f, &err), 0);
    char dir[700];
    snprintf(dir, sizeof(dir),
             "%s/destinations/s3/failure-bucket/aws/lambda/" UUID
             "/shardId-000000000000/2024/05/02",
             tmpdir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int objects = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') {
            assert_true(strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0);
            continue; /* no temporary file left behind */
        }
        objects++;
        const char *prefix = "2024-05-02T10.15.30-";
        assert_int_equal(strncmp(e->d_name, prefix, strlen(prefix)), 0);
        assert_true(is_uuid4(e->d_name + strlen(prefix)));
        char path[1200];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *fp = fopen(path, "r");
        char buf[8192];
        size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        cJSON *root = cJSON_Parse(buf);
        assert_non_null(root);
        assert_non_null(cJSON_GetObjectItem(root, "payload"));
        assert_string_equal(str_of(cJSON_GetObjectItem(root, "KinesisBatchInfo"), "shardId"),
                            "shardId-000000000000");
        cJSON_Delete(root);
    }
    closedir(d);
    assert_int_equal(objects, 2); /* random suffix: no overwrite */

    /* hostile path pieces are refused */
    f.mapping_uuid = "../../x";
    assert_int_equal(dst_send(tmpdir, NULL, "arn:aws:s3:::failure-bucket", &f, &err),
                     SL_EINVAL);
    f = failure();
    assert_int_equal(dst_send(NULL, NULL, "arn:aws:s3:::failure-bucket", &f, &err), SL_EINVAL);
}

/* ---- stream destination ---- */

static void test_dst_stream_destination_puts_a_record(void **state)
{
    (void)state;
    char data[600];
    snprintf(data, sizeof(data), "%s/broker", tmpdir);
    brk_opts o = {0};
    o.data_dir = data;
    o.fsync = BRK_FSYNC_NO;
    brk_broker *b = NULL;
    sl_err err;
    assert_int_equal(brk_open(&b, &o, &err), 0);
    brk_create_opts co = {0};
    co.name = "dlq";
    co.shard_count = 1;
    assert_int_equal(brk_stream_create(b, &co, &err), 0);
    char arn[256];
    assert_int_equal(brk_stream_arn(b, "dlq", arn, sizeof(arn)), 0);

    dst_failure f = failure();
    assert_int_equal(dst_send(data, b, arn, &f, &err), 0);

    brk_records recs;
    bool end = false;
    memset(&recs, 0, sizeof(recs));
    assert_int_equal(brk_read_shard(b, "dlq", "shardId-000000000000", NULL, false, 10,
                                    1 << 20, &recs, &end, &err),
                     0);
    assert_int_equal(recs.n, 1);
    assert_int_equal(recs.recs[0].pk_len, strlen("shardId-000000000000"));
    assert_memory_equal(recs.recs[0].partition_key, "shardId-000000000000", recs.recs[0].pk_len);
    cJSON *root = cJSON_ParseWithLength((const char *)recs.recs[0].data, recs.recs[0].data_len);
    assert_non_null(root);
    assert_string_equal(str_of(cJSON_GetObjectItem(root, "KinesisBatchInfo"),
                               "startSequenceNumber"),
                        SEQ1);
    cJSON_Delete(root);
    brk_records_free(&recs);

    /* no such stream; no broker */
    char missing[256];
    snprintf(missing, sizeof(missing), "%.*sstream/absent", (int)(strstr(arn, "stream/") - arn),
             arn);
    assert_int_equal(dst_send(data, b, missing, &f, &err), SL_ENOTFOUND);
    assert_int_equal(dst_send(data, NULL, arn, &f, &err), SL_EINVAL);
    brk_close(b);
}

/* ---- HTTP ---- */

typedef struct http_srv {
    int fd;
    int port;
    int statuses[8];  /* status to answer to the i-th request */
    int nstatus;
    int served;
    char content_type[128];
    char body[16384];
    pthread_t th;
} http_srv;

static void *srv_main(void *arg)
{
    http_srv *s = arg;
    for (int i = 0; i < s->nstatus; i++) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 15000) <= 0) break;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) break;
        char req[32768];
        size_t got = 0;
        size_t need = 0;
        char *hdr_end = NULL;
        for (;;) {
            ssize_t r = recv(c, req + got, sizeof(req) - 1 - got, 0);
            if (r <= 0) break;
            got += (size_t)r;
            req[got] = '\0';
            if (!hdr_end && (hdr_end = strstr(req, "\r\n\r\n"))) {
                const char *cl = strcasestr(req, "\r\nContent-Length:");
                need = (size_t)(hdr_end - req) + 4 + (cl ? strtoul(cl + 17, NULL, 10) : 0);
            }
            if (hdr_end && got >= need) break;
        }
        if (hdr_end) {
            const char *ct = strcasestr(req, "\r\nContent-Type:");
            if (ct) sscanf(ct + 15, " %127[^\r]", s->content_type);
            snprintf(s->body, sizeof(s->body), "%s", hdr_end + 4);
        }
        char resp[128];
        int n = snprintf(resp, sizeof(resp),
                         "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                         s->statuses[i]);
        send(c, resp, (size_t)n, 0);
        close(c);
        s->served++;
    }
    return NULL;
}

static void srv_start(http_srv *s, const int *statuses, int n)
{
    memset(s, 0, sizeof(*s));
    memcpy(s->statuses, statuses, (size_t)n * sizeof(int));
    s->nstatus = n;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 16), 0);
    socklen_t al = sizeof(a);
    getsockname(s->fd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_stop(http_srv *s)
{
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->th, NULL);
    close(s->fd);
}

static void test_dst_http_post_delivers(void **state)
{
    (void)state;
    http_srv s;
    const int st[] = {200};
    srv_start(&s, st, 1);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/failures", s.port);
    dst_failure f = failure();
    sl_err err;
    assert_int_equal(dst_send(NULL, NULL, url, &f, &err), 0);
    srv_stop(&s);
    assert_int_equal(s.served, 1);
    assert_string_equal(s.content_type, "application/json");
    cJSON *root = cJSON_Parse(s.body);
    assert_non_null(root);
    assert_string_equal(str_of(cJSON_GetObjectItem(root, "KinesisBatchInfo"), "streamArn"),
                        STREAM_ARN);
    assert_null(cJSON_GetObjectItem(root, "payload"));
    cJSON_Delete(root);
}

static void test_dst_http_retries_after_500(void **state)
{
    (void)state;
    http_srv s;
    const int st[] = {500, 503, 204};
    srv_start(&s, st, 3);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s.port);
    dst_failure f = failure();
    sl_err err;
    assert_int_equal(dst_send(NULL, NULL, url, &f, &err), 0);
    srv_stop(&s);
    assert_int_equal(s.served, 3);
    assert_non_null(strstr(s.body, "RetryAttemptsExhausted"));
}

static void test_dst_http_gives_up(void **state)
{
    (void)state;
    http_srv s;
    const int all500[] = {500, 500, 500, 500, 500, 500};
    srv_start(&s, all500, 6);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s.port);
    dst_failure f = failure();
    sl_err err = {0};
    assert_int_equal(dst_send(NULL, NULL, url, &f, &err), SL_EIO);
    assert_non_null(strstr(err.msg, "500"));
    srv_stop(&s);
    assert_int_equal(s.served, 5); /* 5 attempts, then give up */

    /* a 400 is not retried */
    const int once400[] = {400, 200};
    srv_start(&s, once400, 2);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s.port);
    assert_int_equal(dst_send(NULL, NULL, url, &f, &err), SL_EIO);
    assert_non_null(strstr(err.msg, "400"));
    srv_stop(&s);
    assert_int_equal(s.served, 1);

    /* nothing listening: transport errors are retried, then reported */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t al = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
    close(fd); /* the port is now closed */
    assert_int_equal(dst_send(NULL, NULL, url, &f, &err), SL_EIO);
    assert_non_null(strstr(err.msg, "POST"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dst_validate_accepts_each_kind),
        cmocka_unit_test(test_dst_validate_rejects_bad_destinations),
        cmocka_unit_test(test_dst_record_shape_field_by_field),
        cmocka_unit_test(test_dst_record_optional_parts),
        cmocka_unit_test(test_dst_request_ids_are_unique),
        cmocka_unit_test(test_dst_s3_and_sns_payloads),
        cmocka_unit_test_setup_teardown(test_dst_sqs_and_sns_queue_files, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_dst_queue_read_edge_cases, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_dst_s3_object_key_layout, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_dst_stream_destination_puts_a_record, setup_dir,
                                        teardown_dir),
        cmocka_unit_test(test_dst_http_post_delivers),
        cmocka_unit_test(test_dst_http_retries_after_500),
        cmocka_unit_test(test_dst_http_gives_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
