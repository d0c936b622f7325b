/* test_api_validate.c — runtime/validate.h (AWS validation and serialization messages) through
 * the Kinesis schemas and broker-free checks of runtime/api_kinesis.h, plus the NextToken codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/api_kinesis.h"
#include "runtime/validate.h"
#include "runtime/wire.h"

/* Parses a JSON request for op; returns the status and leaves the message in err. */
static int parse(const char *op, const char *json, sl_err *err)
{
    cJSON *req = NULL;
    memset(err, 0, sizeof *err);
    int rc = api_kinesis_parse(op, WIRE_JSON, (const uint8_t *)json, strlen(json), &req, err);
    if (rc == 0) assert_non_null(req);
    else assert_null(req);
    cJSON_Delete(req);
    return rc;
}

static void expect(const char *op, const char *json, int code, const char *msg)
{
    sl_err err;
    int rc = parse(op, json, &err);
    if (rc != code || (msg && strcmp(err.msg, msg) != 0))
        fail_msg("%s %s: got %d '%s', want %d '%s'", op, json, rc, err.msg, code, msg ? msg : "");
}

static void test_validate_accepts_valid_requests(void **state)
{
    (void)state;
    expect("CreateStream", "{\"StreamName\":\"a-b_c.d\",\"ShardCount\":2}", 0, NULL);
    expect("PutRecord", "{\"StreamName\":\"s\",\"Data\":\"QUJD\",\"PartitionKey\":\"k\"}", 0, NULL);
    expect("PutRecords",
           "{\"StreamName\":\"s\",\"Records\":[{\"Data\":\"\",\"PartitionKey\":\"k\"}]}", 0, NULL);
    expect("DescribeLimits", "{}", 0, NULL);
    expect("ListStreams", "", 0, NULL);
    expect("GetShardIterator",
           "{\"StreamName\":\"s\",\"ShardId\":\"shardId-000000000000\","
           "\"ShardIteratorType\":\"TRIM_HORIZON\"}", 0, NULL);
}

static void test_validate_stream_name_pattern(void **state)
{
    (void)state;
    expect("DescribeStream", "{\"StreamName\":\"a b\"}", SL_EVALIDATION,
           "1 validation error detected: Value 'a b' at 'streamName' failed to satisfy "
           "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
}

static void test_validate_empty_name_reports_two_errors(void **state)
{
    (void)state;
    expect("DeleteStream", "{\"StreamName\":\"\"}", SL_EVALIDATION,
           "2 validation errors detected: Value '' at 'streamName' failed to satisfy constraint: "
           "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value '' at "
           "'streamName' failed to satisfy constraint: Member must have length greater than or "
           "equal to 1");
}

static void test_validate_missing_required_member(void **state)
{
    (void)state;
    expect("DescribeStreamSummary", "{}", SL_EVALIDATION,
           "1 validation error detected: Value null at 'streamName' failed to satisfy constraint: "
           "Member must not be null");
    expect("PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"k\"}", SL_EVALIDATION,
           "1 validation error detected: Value null at 'data' failed to satisfy constraint: "
           "Member must not be null");
    /* null counts as absent */
    expect("PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"k\",\"Data\":null}",
           SL_EVALIDATION,
           "1 validation error detected: Value null at 'data' failed to satisfy constraint: "
           "Member must not be null");
}

static void test_validate_stream_arn_alone_is_enough(void **state)
{
    (void)state;
    expect("DescribeStreamSummary",
           "{\"StreamARN\":\"arn:aws:kinesis:us-east-1:000000000000:stream/s\"}", 0, NULL);
    expect("DescribeStreamSummary", "{\"StreamARN\":\"arn:aws:kinesis:us-east-1:12:stream/s\"}",
           SL_EVALIDATION,
           "1 validation error detected: Value 'arn:aws:kinesis:us-east-1:12:stream/s' at "
           "'streamARN' failed to satisfy constraint: Member must satisfy regular expression "
           "pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+");
}

static void test_validate_ranges_and_enums(void **state)
{
    (void)state;
    expect("CreateStream", "{\"StreamName\":\"s\",\"ShardCount\":0}", SL_EVALIDATION,
           "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: "
           "Member must have value greater than or equal to 1");
    expect("GetShardIterator",
           "{\"StreamName\":\"s\",\"ShardId\":\"0\",\"ShardIteratorType\":\"OLDEST\"}",
           SL_EVALIDATION,
           "1 validation error detected: Value 'OLDEST' at 'shardIteratorType' failed to satisfy "
           "constraint: Member must satisfy enum value set: [AT_SEQUENCE_NUMBER, "
           "AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]");
    expect("GetRecords", "{\"ShardIterator\":\"x\",\"Limit\":10001}", SL_EVALIDATION,
           "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: "
           "Member must have value less than or equal to 10000");
}

static void test_validate_nested_member_paths(void **state)
{
    (void)state;
    expect("PutRecords",
           "{\"StreamName\":\"s\",\"Records\":[{\"Data\":\"QQ==\",\"PartitionKey\":\"k\"},"
           "{\"Data\":\"QQ==\",\"PartitionKey\":\"\"}]}",
           SL_EVALIDATION,
           "1 validation error detected: Value '' at 'records.2.member.partitionKey' failed to "
           "satisfy constraint: Member must have length greater than or equal to 1");
    expect("PutRecords", "{\"StreamName\":\"s\",\"Records\":[]}", SL_EVALIDATION,
           "1 validation error detected: Value '[]' at 'records' failed to satisfy constraint: "
           "Member must have length greater than or equal to 1");
    expect("CreateStream",
           "{\"StreamName\":\"s\",\"StreamModeDetails\":{\"StreamMode\":\"FAST\"}}",
           SL_EVALIDATION,
           "1 validation error detected: Value 'FAST' at 'streamModeDetails.streamMode' failed "
           "to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]");
}

static void test_validate_caps_at_ten_errors(void **state)
{
    (void)state;
    char json[8192];
    size_t o = (size_t)snprintf(json, sizeof json, "{\"StreamName\":\"s\",\"Records\":[");
    for (int i = 0; i < 12; i++)
        o += (size_t)snprintf(json + o, sizeof json - o, "%s{\"Data\":\"QQ==\"}", i ? "," : "");
    snprintf(json + o, sizeof json - o, "]}");
    sl_err err;
    assert_int_equal(parse("PutRecords", json, &err), SL_EVALIDATION);
    assert_non_null(strstr(err.msg, "10 validation errors detected: "));
    assert_non_null(strstr(err.msg, "'records.10.member.partitionKey'"));
    assert_null(strstr(err.msg, "'records.11.member.partitionKey'"));
}

static void test_validate_partition_key_counts_characters(void **state)
{
    (void)state;
    char json[4096], pk[1200];
    size_t o = 0;
    /* 256 two-byte characters: 512 bytes but 256 characters -> valid */
    for (int i = 0; i < 256; i++) {
        pk[o++] = (char)0xc3;
        pk[o++] = (char)0xa9;
    }
    pk[o] = '\0';
    snprintf(json, sizeof json, "{\"StreamName\":\"s\",\"Data\":\"\",\"PartitionKey\":\"%s\"}", pk);
    expect("PutRecord", json, 0, NULL);
    snprintf(json, sizeof json, "{\"StreamName\":\"s\",\"Data\":\"\",\"PartitionKey\":\"%se\"}",
             pk);
    sl_err err;
    assert_int_equal(parse("PutRecord", json, &err), SL_EVALIDATION);
    assert_non_null(strstr(err.msg, "Member must have length less than or equal to 256"));
    assert_int_equal(val_utf16_len("\xf0\x9f\x98\x80", 4), 2);
    assert_int_equal(val_utf16_len("abc", 3), 3);
}

static void test_validate_wrong_types_are_serialization_errors(void **state)
{
    (void)state;
    expect("DescribeStream", "{\"StreamName\":\"s\",\"Limit\":\"5\"}", SL_ESERIAL,
           "class java.lang.String can not be converted to an Integer");
    expect("DescribeStream", "{\"StreamName\":5}", SL_ESERIAL,
           "class java.math.BigDecimal can not be converted to an String");
    expect("DescribeStream", "{\"StreamName\":true}", SL_ESERIAL,
           "class java.lang.Boolean can not be converted to an String");
    expect("DescribeStream", "{\"StreamName\":[\"a\"]}", SL_ESERIAL,
           "Start of list found where not expected");
    expect("DescribeStream", "{\"StreamName\":{}}", SL_ESERIAL,
           "Start of structure or map found where not expected.");
    expect("PutRecords", "{\"StreamName\":\"s\",\"Records\":{}}", SL_ESERIAL,
           "Start of structure or map found where not expected.");
    expect("PutRecords", "{\"StreamName\":\"s\",\"Records\":5}", SL_ESERIAL,
           "Expected list or null");
    expect("DeleteStream", "{\"StreamName\":\"s\",\"EnforceConsumerDeletion\":\"yes\"}",
           SL_ESERIAL, "'YES' can not be converted to an Boolean");
    expect("CreateStream", "{\"StreamName\":\"s\",\"Tags\":[]}", SL_ESERIAL,
           "Start of list found where not expected");
    expect("PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"k\",\"Data\":12}", SL_ESERIAL,
           "class java.math.BigDecimal can not be converted to a Blob");
}

static void test_validate_bad_base64_is_serialization_error(void **state)
{
    (void)state;
    expect("PutRecord", "{\"StreamName\":\"s\",\"PartitionKey\":\"k\",\"Data\":\"abc\"}",
           SL_ESERIAL,
           "'abc' can not be converted to a Blob: Base64 encoded length is expected a multiple "
           "of 4 bytes but found: 3");
    expect("PutRecords",
           "{\"StreamName\":\"s\",\"Records\":[{\"PartitionKey\":\"k\",\"Data\":\"ab*d\"}]}",
           SL_ESERIAL, "'ab*d' can not be converted to a Blob: Invalid Base64 character: '*'");
}

static void test_validate_types_checked_before_constraints(void **state)
{
    (void)state;
    /* an invalid name and a wrongly typed Limit: the type error wins */
    expect("DescribeStream", "{\"StreamName\":\"a b\",\"Limit\":false}", SL_ESERIAL,
           "class java.lang.Boolean can not be converted to an Integer");
}

static void test_validate_cbor_blob_lengths(void **state)
{
    (void)state;
    /* {"StreamName":"s","PartitionKey":"k","Data":h'000102'} */
    const uint8_t body[] = {0xa3, 0x6a, 'S', 't', 'r', 'e', 'a', 'm', 'N', 'a', 'm', 'e', 0x61, 's',
                            0x6c, 'P', 'a', 'r', 't', 'i', 't', 'i', 'o', 'n', 'K', 'e', 'y', 0x61,
                            'k', 0x64, 'D', 'a', 't', 'a', 0x43, 0, 1, 2};
    cJSON *req = NULL;
    sl_err err;
    assert_int_equal(api_kinesis_parse("PutRecord", WIRE_CBOR, body, sizeof body, &req, &err), 0);
    assert_true(wire_is_blob(cJSON_GetObjectItem(req, "Data")));
    cJSON_Delete(req);
    /* the same with Data as a number -> serialization error */
    uint8_t bad[sizeof body];
    memcpy(bad, body, sizeof body);
    bad[sizeof body - 4] = 0x05;
    assert_int_equal(api_kinesis_parse("PutRecord", WIRE_CBOR, bad, sizeof body - 3, &req, &err),
                     SL_ESERIAL);
}

static void test_validate_map_keys_and_values(void **state)
{
    (void)state;
    char json[1024], key[200];
    memset(key, 'k', 129);
    key[129] = '\0';
    snprintf(json, sizeof json, "{\"StreamName\":\"s\",\"Tags\":{\"%s\":\"v\"}}", key);
    sl_err err;
    assert_int_equal(parse("AddTagsToStream", json, &err), SL_EVALIDATION);
    assert_non_null(strstr(err.msg, "Map keys must satisfy constraint: [Member must have length "
                                    "less than or equal to 128, Member must have length greater "
                                    "than or equal to 1]"));
    expect("AddTagsToStream", "{\"StreamName\":\"s\",\"Tags\":{}}", SL_EVALIDATION,
           "1 validation error detected: Value '{}' at 'tags' failed to satisfy constraint: "
           "Member must have length greater than or equal to 1");
    expect("AddTagsToStream", "{\"StreamName\":\"s\",\"Tags\":{\"a\":\"b#c\"}}", SL_EINVAL,
           "Some tags contain invalid characters. Valid characters: Unicode letters, digits, "
           "white space, _ . / = + - % @.");
    expect("AddTagsToStream", "{\"StreamName\":\"s\",\"Tags\":{\"a b\":\"x/y=z+1-2@3%\"}}", 0,
           NULL);
}

static void test_semantic_list_shards_rules(void **state)
{
    (void)state;
    expect("ListShards", "{}", SL_EINVAL, "Either NextToken or StreamName should be provided.");
    expect("ListShards", "{\"StreamName\":\"s\",\"NextToken\":\"abc\"}", SL_EINVAL,
           "NextToken and StreamName cannot be provided together.");
    expect("ListShards",
           "{\"StreamARN\":\"arn:aws:kinesis:us-east-1:000000000000:stream/s\","
           "\"NextToken\":\"abc\"}",
           SL_EINVAL, "NextToken and StreamARN cannot be provided together.");
    expect("ListShards", "{\"NextToken\":\"abc\",\"ShardFilter\":{\"Type\":\"AT_LATEST\"}}",
           SL_EINVAL, "NextToken and ShardFilter cannot be provided together.");
    expect("ListShards", "{\"StreamName\":\"s\",\"ShardFilter\":{\"Type\":\"AFTER_SHARD_ID\"}}",
           SL_EINVAL,
           "ShardId must be specified in the ShardFilter when the type is AFTER_SHARD_ID.");
    expect("ListShards", "{\"StreamName\":\"s\",\"ShardFilter\":{\"Type\":\"AT_TIMESTAMP\"}}",
           SL_EINVAL,
           "Timestamp must be specified in the ShardFilter when the type is AT_TIMESTAMP.");
    expect("ListShards", "{\"StreamName\":\"s\",\"ShardFilter\":{}}", SL_EVALIDATION,
           "1 validation error detected: Value null at 'shardFilter.type' failed to satisfy "
           "constraint: Member must not be null");
    expect("ListShards", "{\"StreamName\":\"s\",\"MaxResults\":0}", SL_EVALIDATION,
           "1 validation error detected: Value '0' at 'maxResults' failed to satisfy constraint: "
           "Member must have value greater than or equal to 1");
}

static void test_semantic_get_shard_iterator_rules(void **state)
{
    (void)state;
    expect("GetShardIterator",
           "{\"StreamName\":\"s\",\"ShardId\":\"0\",\"ShardIteratorType\":\"LATEST\","
           "\"StartingSequenceNumber\":\"1\"}",
           SL_EINVAL,
           "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and "
           "StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. "
           "Request specified LATEST and also a StartingSequenceNumber.");
    expect("GetShardIterator",
           "{\"StreamName\":\"s\",\"ShardId\":\"0\",\"ShardIteratorType\":\"AT_SEQUENCE_NUMBER\"}",
           SL_EINVAL,
           "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and "
           "StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. "
           "Request specified AT_SEQUENCE_NUMBER and no StartingSequenceNumber.");
    expect("GetShardIterator",
           "{\"StreamName\":\"s\",\"ShardId\":\"0\",\"ShardIteratorType\":\"AT_TIMESTAMP\"}",
           SL_EINVAL,
           "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current "
           "request has no timestamp parameter.");
    expect("GetShardIterator",
           "{\"StreamName\":\"s\",\"ShardId\":\"0\","
           "\"ShardIteratorType\":\"AFTER_SEQUENCE_NUMBER\","
           "\"StartingSequenceNumber\":\"01\"}",
           SL_EVALIDATION,
           "1 validation error detected: Value '01' at 'startingSequenceNumber' failed to "
           "satisfy constraint: Member must satisfy regular expression pattern: "
           "0|([1-9]\\d{0,128})");
}

static void test_semantic_create_stream_needs_shard_count(void **state)
{
    (void)state;
    expect("CreateStream", "{\"StreamName\":\"s\"}", SL_EVALIDATION,
           "1 validation error detected: Value null at 'shardCount' failed to satisfy "
           "constraint: Member must not be null");
    expect("CreateStream",
           "{\"StreamName\":\"s\",\"StreamModeDetails\":{\"StreamMode\":\"ON_DEMAND\"}}", 0,
           NULL);
}

static void test_patterns(void **state)
{
    (void)state;
    assert_true(val_match(VAL_PAT_HASHKEY, "0"));
    assert_true(val_match(VAL_PAT_HASHKEY, "340282366920938463463374607431768211455"));
    assert_false(val_match(VAL_PAT_HASHKEY, "3402823669209384634633746074317682114550"));
    assert_false(val_match(VAL_PAT_HASHKEY, "01"));
    assert_false(val_match(VAL_PAT_HASHKEY, "-1"));
    assert_false(val_match(VAL_PAT_HASHKEY, ""));
    assert_true(val_match(VAL_PAT_NAME, "a.B-c_9"));
    assert_false(val_match(VAL_PAT_NAME, "a/b"));
    assert_true(val_match(VAL_PAT_ARN, "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/x"));
    assert_false(val_match(VAL_PAT_ARN, "arn:aws:kinesis:us-east-1:123456789012:stream/a b"));
    assert_false(val_match(VAL_PAT_ARN, "arn:aws:sqs:us-east-1:123456789012:stream/x"));
}

static void test_token_round_trip_and_tamper(void **state)
{
    (void)state;
    uint8_t key[32], other[32];
    char *tok = NULL, *payload = NULL;
    sl_err err;
    memset(key, 7, sizeof key);
    memset(other, 8, sizeof other);
    assert_int_equal(api_token_encode(key, "shards|s|shardId-000000000001|||0", 1000000, &tok), 0);
    assert_int_equal(api_token_decode(key, tok, 1000000 + 299999, &payload, &err), 0);
    assert_string_equal(payload, "shards|s|shardId-000000000001|||0");
    sl_free(payload);
    /* expired after 300 s */
    assert_int_equal(api_token_decode(key, tok, 1000000 + 300001, &payload, &err),
                     SL_ETOKEN_EXPIRED);
    /* another key, a flipped character, garbage */
    assert_int_equal(api_token_decode(other, tok, 1000000, &payload, &err), SL_EINVAL);
    assert_string_equal(err.msg, "Invalid NextToken.");
    tok[5] = tok[5] == 'A' ? 'B' : 'A';
    assert_int_equal(api_token_decode(key, tok, 1000000, &payload, &err), SL_EINVAL);
    assert_int_equal(api_token_decode(key, "not a token", 1000000, &payload, &err), SL_EINVAL);
    assert_int_equal(api_token_decode(key, "", 1000000, &payload, &err), SL_EINVAL);
    sl_free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_accepts_valid_requests),
        cmocka_unit_test(test_validate_stream_name_pattern),
        cmocka_unit_test(test_validate_empty_name_reports_two_errors),
        cmocka_unit_test(test_validate_missing_required_member),
        cmocka_unit_test(test_validate_stream_arn_alone_is_enough),
        cmocka_unit_test(test_validate_ranges_and_enums),
        cmocka_unit_test(test_validate_nested_member_paths),
        cmocka_unit_test(test_validate_caps_at_ten_errors),
        cmocka_unit_test(test_validate_partition_key_counts_characters),
        cmocka_unit_test(test_validate_wrong_types_are_serialization_errors),
        cmocka_unit_test(test_validate_bad_base64_is_serialization_error),
        cmocka_unit_test(test_validate_types_checked_before_constraints),
        cmocka_unit_test(test_validate_cbor_blob_lengths),
        cmocka_unit_test(test_validate_map_keys_and_values),
        cmocka_unit_test(test_semantic_list_shards_rules),
        cmocka_unit_test(test_semantic_get_shard_iterator_rules),
        cmocka_unit_test(test_semantic_create_stream_needs_shard_count),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_token_round_trip_and_tamper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
