/* test_broker_stream.c — streams: create/describe/delete, statuses, layouts, quotas, retention,
 * tags, ARNs, persistence across reopen; every error with its code and exact message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker.h"

#include "tests/lib/broker_fx.h"


static void test_stream_create_describe_layout(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    brk_stream_info info;
    mk(f, "s3", 3);
    assert_int_equal(brk_stream_describe(f->b, "s3", &info, &e), 0);
    assert_string_equal(info.name, "s3");
    assert_string_equal(info.arn, "arn:aws:kinesis:us-east-1:000000000000:stream/s3");
    assert_int_equal(info.status, BRK_ACTIVE);
    assert_int_equal(info.mode, BRK_PROVISIONED);
    assert_int_equal(info.retention_hours, 24);
    assert_int_equal(info.max_record_kib, 1024);
    assert_int_equal(info.created_ms, f->now);
    assert_int_equal(info.open_shards, 3);
    assert_int_equal(info.nshards, 3);
    assert_string_equal(info.shards[0].shard_id, "shardId-000000000000");
    assert_string_equal(info.shards[2].shard_id, "shardId-000000000002");
    assert_string_equal(info.shards[0].start_hash, "0");
    assert_string_equal(info.shards[0].end_hash, "113427455640312821154458202477256070484");
    assert_string_equal(info.shards[1].start_hash, "113427455640312821154458202477256070485");
    assert_string_equal(info.shards[1].end_hash, "226854911280625642308916404954512140969");
    assert_string_equal(info.shards[2].start_hash, "226854911280625642308916404954512140970");
    assert_string_equal(info.shards[2].end_hash, "340282366920938463463374607431768211455");
    for (size_t i = 0; i < 3; i++) {
        assert_true(info.shards[i].open);
        assert_string_equal(info.shards[i].parent, "");
        assert_string_equal(info.shards[i].end_seq, "");
        assert_int_equal(strlen(info.shards[i].start_seq), 56);
        uint32_t idx = 99;
        assert_int_equal(brk_seq_shard_index(info.shards[i].start_seq, &idx), 0);
        assert_int_equal(idx, i);
    }
    brk_stream_info_free(&info);
    assert_string_equal(brk_status_name(BRK_UPDATING), "UPDATING");
    assert_string_equal(brk_mode_name(BRK_ON_DEMAND), "ON_DEMAND");
    fx_free(f);
}

static void test_stream_on_demand_has_four_shards(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    brk_stream_info info;
    brk_create_opts c = {.name = "od", .mode = BRK_ON_DEMAND};
    assert_int_equal(brk_stream_create(f->b, &c, &e), 0);
    assert_int_equal(brk_stream_describe(f->b, "od", &info, &e), 0);
    assert_int_equal(info.mode, BRK_ON_DEMAND);
    assert_int_equal(info.nshards, 4);
    assert_string_equal(info.shards[0].end_hash, "85070591730234615865843651857942052863");
    brk_stream_info_free(&info);
    fx_free(f);
}

static void test_stream_create_errors(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    mk(f, "dup", 1);
    brk_create_opts c = {.name = "dup", .shard_count = 1};
    assert_err(brk_stream_create(f->b, &c, &e), e, SL_EEXISTS,
               "Stream dup under account 000000000000 already exists.");
    c.name = "a b";
    assert_err(brk_stream_create(f->b, &c, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value 'a b' at 'streamName' failed to satisfy "
               "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
    c.name = "";
    assert_err(brk_stream_create(f->b, &c, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value '' at 'streamName' failed to satisfy "
               "constraint: Member must have length greater than or equal to 1");
    char longname[200];
    memset(longname, 'n', 129);
    longname[129] = '\0';
    c.name = longname;
    memset(&e, 0, sizeof e);
    assert_int_equal(brk_stream_create(f->b, &c, &e), SL_EVALIDATION);
    assert_non_null(strstr(e.msg, "Member must have length less than or equal to 128"));
    c.name = "zero";
    c.shard_count = 0;
    assert_err(brk_stream_create(f->b, &c, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value '0' at 'shardCount' failed to satisfy "
               "constraint: Member must have value greater than or equal to 1");
    c.shard_count = 1;
    c.max_record_kib = 20000;
    assert_err(brk_stream_create(f->b, &c, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value '20000' at 'maxRecordSizeInKiB' failed to "
               "satisfy constraint: Member must have value less than or equal to 10240");
    c.max_record_kib = 0;
    char **names;
    size_t n;
    assert_int_equal(brk_stream_list(f->b, &names, &n), 0);
    assert_int_equal(n, 1); /* failed creates left nothing behind */
    brk_names_free(names, n);
    fx_free(f);
}

static void test_stream_shard_quota(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    f->o.shard_quota = 10;
    fx_reopen(f);
    mk(f, "q1", 3);
    brk_create_opts c = {.name = "q2", .shard_count = 8};
    assert_err(brk_stream_create(f->b, &c, &e), e, SL_ELIMIT,
               "This request would exceed the shard limit for the account 000000000000 in "
               "us-east-1. Current shard count for the account: 3. Limit: 10. Number of "
               "additional shards that would have resulted from this request: 8. Refer to the "
               "AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/"
               "aws_service_limits.html) for current limits and how to request higher limits.");
    c.shard_count = 7;
    assert_int_equal(brk_stream_create(f->b, &c, &e), 0);
    fx_free(f);
}

static void test_stream_1024_shards_route_everywhere(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    brk_stream_info info;
    mk(f, "big", 1024);
    assert_int_equal(brk_stream_describe(f->b, "big", &info, &e), 0);
    assert_int_equal(info.nshards, 1024);
    assert_string_equal(info.shards[1023].shard_id, "shardId-000000001023");
    assert_string_equal(info.shards[1023].end_hash, "340282366920938463463374607431768211455");
    /* the first and last key of some shards route to that shard */
    for (size_t i = 0; i < 1024; i += 97) {
        brk_put_result r = put_hk(f, "big", info.shards[i].start_hash, "x");
        assert_string_equal(r.shard_id, info.shards[i].shard_id);
        r = put_hk(f, "big", info.shards[i].end_hash, "x");
        assert_string_equal(r.shard_id, info.shards[i].shard_id);
    }
    brk_stream_info_free(&info);
    fx_free(f);
}

static void test_stream_status_transitions(void **state)
{
    (void)state;
    fx *f = fx_new(500);
    sl_err e;
    brk_stream_info info;
    mk(f, "t", 1);
    assert_int_equal(brk_stream_describe(f->b, "t", &info, &e), 0);
    assert_int_equal(info.status, BRK_CREATING);
    brk_stream_info_free(&info);
    /* kinesalite: PutRecord on a CREATING stream is ResourceNotFound */
    brk_put_entry pe = {.data = (const uint8_t *)"x", .data_len = 1, .partition_key = "k",
                        .pk_len = 1};
    brk_put_result r;
    assert_err(brk_put_record(f->b, "t", &pe, NULL, &r, &e), e, SL_ENOTFOUND,
               "Stream t under account 000000000000 not found.");
    f->now += 500;
    assert_int_equal(brk_stream_describe(f->b, "t", &info, &e), 0);
    assert_int_equal(info.status, BRK_ACTIVE);
    brk_stream_info_free(&info);
    put(f, "t", "k", "x");
    /* a reshard makes it UPDATING; writes continue */
    assert_int_equal(brk_split_shard(f->b, "t", "shardId-000000000000",
                                     "170141183460469231731687303715884105728", &e), 0);
    assert_int_equal(brk_stream_describe(f->b, "t", &info, &e), 0);
    assert_int_equal(info.status, BRK_UPDATING);
    brk_stream_info_free(&info);
    put(f, "t", "k", "x");
    /* the transition persists across a reopen */
    fx_reopen(f);
    assert_int_equal(brk_stream_describe(f->b, "t", &info, &e), 0);
    assert_int_equal(info.status, BRK_UPDATING);
    brk_stream_info_free(&info);
    f->now += 500;
    brk_maintain(f->b);
    assert_int_equal(brk_stream_describe(f->b, "t", &info, &e), 0);
    assert_int_equal(info.status, BRK_ACTIVE);
    brk_stream_info_free(&info);
    /* delete: DELETING first, then gone */
    assert_int_equal(brk_stream_delete(f->b, "t", &e), 0);
    assert_int_equal(brk_stream_describe(f->b, "t", &info, &e), 0);
    assert_int_equal(info.status, BRK_DELETING);
    brk_stream_info_free(&info);
    assert_err(brk_put_record(f->b, "t", &pe, NULL, &r, &e), e, SL_ENOTFOUND,
               "Stream t under account 000000000000 not found.");
    f->now += 500;
    assert_err(brk_stream_describe(f->b, "t", &info, &e), e, SL_ENOTFOUND,
               "Stream t under account 000000000000 not found.");
    brk_maintain(f->b);
    char path[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s/streams/t", f->dir);
    assert_int_not_equal(stat(path, &sb), 0);
    fx_free(f);
}

static void test_stream_delete_and_recreate(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    brk_stream_info info;
    char it[BRK_ITER_MAX];
    brk_records r;
    mk(f, "d", 1);
    put(f, "d", "k", "old");
    iter(f, "d", "shardId-000000000000", BRK_TRIM_HORIZON, NULL, it);
    assert_int_equal(brk_stream_delete(f->b, "d", &e), 0);
    assert_err(brk_stream_delete(f->b, "d", &e), e, SL_ENOTFOUND,
               "Stream d under account 000000000000 not found.");
    assert_err(brk_stream_describe(f->b, "d", &info, &e), e, SL_ENOTFOUND,
               "Stream d under account 000000000000 not found.");
    f->now += 1;
    mk(f, "d", 1);
    /* the new stream is empty and the old iterator does not read it */
    assert_err(brk_get_records(f->b, it, 10, &r, &e), e, SL_ENOTFOUND,
               "Shard shardId-000000000000 in stream d under account 000000000000 does not "
               "exist");
    iter(f, "d", "shardId-000000000000", BRK_TRIM_HORIZON, NULL, it);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 0);
    brk_records_free(&r);
    fx_free(f);
}

static void test_stream_list_sorted(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    char **names;
    size_t n;
    mk(f, "b", 1);
    mk(f, "a", 1);
    mk(f, "c.x", 1);
    mk(f, "B", 1);
    assert_int_equal(brk_stream_list(f->b, &names, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(names[0], "B");
    assert_string_equal(names[1], "a");
    assert_string_equal(names[2], "b");
    assert_string_equal(names[3], "c.x");
    brk_names_free(names, n);
    brk_stats st;
    brk_get_stats(f->b, &st);
    assert_int_equal(st.streams, 4);
    assert_int_equal(st.open_shards, 4);
    fx_free(f);
}

static void test_stream_retention_rules(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    brk_stream_info info;
    mk(f, "r", 1);
    assert_err(brk_retention_increase(f->b, "r", 23, &e), e, SL_EINVAL,
               "Minimum allowed retention period is 24 hours. Requested retention period (23 "
               "hours) is too short.");
    assert_err(brk_retention_increase(f->b, "r", 8761, &e), e, SL_EINVAL,
               "Maximum allowed retention period is 8760 hours. Requested retention period (8761 "
               "hours) is too long.");
    assert_int_equal(brk_retention_increase(f->b, "r", 48, &e), 0);
    assert_err(brk_retention_increase(f->b, "r", 30, &e), e, SL_EINVAL,
               "Requested retention period (30 hours) for stream r can not be shorter than "
               "existing retention period (48 hours). Use DecreaseRetentionPeriod API.");
    assert_err(brk_retention_decrease(f->b, "r", 100, &e), e, SL_EINVAL,
               "Requested retention period (100 hours) for stream r can not be longer than "
               "existing retention period (48 hours). Use IncreaseRetentionPeriod API.");
    assert_err(brk_retention_decrease(f->b, "r", 10, &e), e, SL_EINVAL,
               "Minimum allowed retention period is 24 hours. Requested retention period (10 "
               "hours) is too short.");
    assert_err(brk_retention_increase(f->b, "nope", 48, &e), e, SL_ENOTFOUND,
               "Stream nope under account 000000000000 not found.");
    assert_int_equal(brk_retention_decrease(f->b, "r", 36, &e), 0);
    fx_reopen(f);
    assert_int_equal(brk_stream_describe(f->b, "r", &info, &e), 0);
    assert_int_equal(info.retention_hours, 36);
    brk_stream_info_free(&info);
    fx_free(f);
}

static void test_stream_tags(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    brk_tag *tags;
    size_t n;
    brk_tag t0[] = {TAG("team", "core"), TAG("env", "dev")};
    brk_create_opts c = {.name = "tg", .shard_count = 1, .tags = t0, .ntags = 2};
    assert_int_equal(brk_stream_create(f->b, &c, &e), 0);
    brk_tag t1[] = {TAG("env", "prod"), TAG("a", "")};
    assert_int_equal(brk_tags_add(f->b, "tg", t1, 2, &e), 0);
    assert_int_equal(brk_tags_list(f->b, "tg", &tags, &n, &e), 0);
    assert_int_equal(n, 3);
    assert_string_equal(tags[0].key, "a");
    assert_string_equal(tags[1].key, "env");
    assert_string_equal(tags[1].value, "prod");
    assert_string_equal(tags[2].key, "team");
    brk_tags_free(tags, n);
    char *rm[] = {(char *)"a", (char *)"missing"};
    assert_int_equal(brk_tags_remove(f->b, "tg", rm, 2, &e), 0);
    fx_reopen(f);
    assert_int_equal(brk_tags_list(f->b, "tg", &tags, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(tags[0].key, "env");
    brk_tags_free(tags, n);
    /* > 50 tags */
    brk_tag many[49];
    char keys[49][16];
    for (int i = 0; i < 49; i++) {
        snprintf(keys[i], sizeof keys[i], "k%02d", i);
        many[i].key = keys[i];
        many[i].value = (char *)"v";
    }
    assert_err(brk_tags_add(f->b, "tg", many, 49, &e), e, SL_EINVAL,
               "Failed to add tags to stream tg under account 000000000000 because a given "
               "stream cannot have more than 50 tags associated with it.");
    assert_int_equal(brk_tags_add(f->b, "tg", many, 48, &e), 0);
    brk_tag bad[] = {TAG("x%", "y")};
    assert_err(brk_tags_add(f->b, "tg", bad, 1, &e), e, SL_EINVAL,
               "Failed to add tags to stream tg under account 000000000000 because some tags "
               "contained illegal characters. The allowed characters are Unicode letters, "
               "white-spaces, '_',',','/','=','+','-','@',':'.");
    brk_tag bad2[] = {TAG("x", "a*b")};
    assert_err(brk_tags_add(f->b, "tg", bad2, 1, &e), e, SL_EINVAL,
               "Some tags contain invalid characters. Valid characters: Unicode letters, digits, "
               "white space, _ . / = + - % @ :.");
    brk_tag uni[] = {TAG("caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac")};
    assert_int_equal(brk_tags_remove(f->b, "tg", (char *[]){(char *)"k00"}, 1, &e), 0);
    assert_int_equal(brk_tags_add(f->b, "tg", uni, 1, &e), 0);
    assert_err(brk_tags_list(f->b, "none", &tags, &n, &e), e, SL_ENOTFOUND,
               "Stream none under account 000000000000 not found.");
    fx_free(f);
}

static void test_stream_arn(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    char name[129];
    char arn[256];
    assert_int_equal(brk_stream_arn(f->b, "s", arn, sizeof arn), 0);
    assert_string_equal(arn, "arn:aws:kinesis:us-east-1:000000000000:stream/s");
    assert_int_equal(brk_stream_name_from_arn(f->b, arn, name, sizeof name, &e), 0);
    assert_string_equal(name, "s");
    assert_err(brk_stream_name_from_arn(f->b, "arn:aws:kinesis:eu-west-1:000000000000:stream/s",
                                        name, sizeof name, &e),
               e, SL_ENOTFOUND, "Stream s under account 000000000000 not found.");
    assert_err(brk_stream_name_from_arn(f->b, "arn:aws:kinesis:us-east-1:111111111111:stream/s",
                                        name, sizeof name, &e),
               e, SL_ENOTFOUND, "Stream s under account 111111111111 not found.");
    assert_err(brk_stream_name_from_arn(f->b, "not-an-arn", name, sizeof name, &e), e,
               SL_EVALIDATION,
               "1 validation error detected: Value 'not-an-arn' at 'streamARN' failed to "
               "satisfy constraint: Member must satisfy regular expression pattern: "
               "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+");
    memset(&e, 0, sizeof e);
    assert_int_equal(brk_stream_name_from_arn(f->b, "arn:aws:kinesis:us-east-1:12:stream/s",
                                              name, sizeof name, &e), SL_EVALIDATION);
    fx_free(f);
}

static void test_stream_set_mode(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    brk_stream_info info;
    mk(f, "m", 2);
    assert_int_equal(brk_stream_set_mode(f->b, "m", BRK_ON_DEMAND, &e), 0);
    assert_int_equal(brk_stream_describe(f->b, "m", &info, &e), 0);
    assert_int_equal(info.mode, BRK_ON_DEMAND);
    brk_stream_info_free(&info);
    assert_err(brk_stream_set_mode(f->b, "zz", BRK_ON_DEMAND, &e), e, SL_ENOTFOUND,
               "Stream zz under account 000000000000 not found.");
    fx_free(f);
}

static void test_stream_survives_reopen(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    brk_stream_info info;
    mk(f, "p", 2);
    brk_put_result r1 = put(f, "p", "a", "one");
    fx_reopen(f);
    assert_int_equal(brk_stream_describe(f->b, "p", &info, &e), 0);
    assert_int_equal(info.nshards, 2);
    assert_int_equal(info.created_ms, 1700000000000LL);
    brk_stream_info_free(&info);
    brk_put_result r2 = put(f, "p", "a", "two");
    assert_string_equal(r1.shard_id, r2.shard_id);
    assert_true(brk_seq_cmp(r1.seq, r2.seq) < 0);
    fx_free(f);
}

/* Every allocation of a create/put/read/split sequence fails once in turn: calls fail cleanly
 * (no crash, no leak under ASan) and the broker stays usable. */
static void test_stream_allocation_failures(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    for (long k = 1; k < 400; k++) {
        sl_err e;
        char name[32];
        char it[BRK_ITER_MAX];
        brk_records r;
        brk_put_result res;
        brk_stream_info info;
        snprintf(name, sizeof name, "af%ld", k);
        brk_put_entry pe = {.data = (const uint8_t *)"d", .data_len = 1, .partition_key = "k",
                            .pk_len = 1};
        brk_create_opts c = {.name = name, .shard_count = 2};
        sl_alloc_fail_after(k);
        if (brk_stream_create(f->b, &c, &e) == 0) {
            brk_put_record(f->b, name, &pe, NULL, &res, &e);
            if (brk_get_iterator(f->b, name, "shardId-000000000000", BRK_TRIM_HORIZON, NULL,
                                 false, 0, it, &e) == 0 &&
                brk_get_records(f->b, it, 10, &r, &e) == 0)
                brk_records_free(&r);
            brk_split_shard(f->b, name, "shardId-000000000000", "1000", &e);
            if (brk_stream_describe(f->b, name, &info, &e) == 0) brk_stream_info_free(&info);
        }
        sl_alloc_fail_after(0);
        /* still consistent: a fresh stream works end to end */
        snprintf(name, sizeof name, "ok%ld", k);
        mk(f, name, 1);
        put(f, name, "k", "v");
        assert_int_equal(brk_stream_delete(f->b, name, &e), 0);
    }
    /* reshards under allocation failure: whatever happened, the open shards still tile the key
     * space (puts anywhere succeed) and the stream is not left UPDATING forever */
    mk(f, "rs", 4);
    for (long k = 1; k < 300; k++) {
        sl_err e;
        uint32_t cur;
        sl_alloc_fail_after(k);
        if (k % 2) brk_update_shard_count(f->b, "rs", k % 4 ? 5 : 4, &cur, &e);
        else brk_merge_shards(f->b, "rs", "shardId-000000000000", "shardId-000000000001", &e);
        sl_alloc_fail_after(0);
        put_hk(f, "rs", "0", "x");
        put_hk(f, "rs", "170141183460469231731687303715884105728", "x");
        put_hk(f, "rs", "340282366920938463463374607431768211455", "x");
        f->now += 25LL * 3600 * 1000; /* a new rolling day for UpdateShardCount */
    }
    fx_reopen(f);
    put_hk(f, "rs", "0", "x");
    put_hk(f, "rs", "340282366920938463463374607431768211455", "x");
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_create_describe_layout),
        cmocka_unit_test(test_stream_on_demand_has_four_shards),
        cmocka_unit_test(test_stream_create_errors),
        cmocka_unit_test(test_stream_shard_quota),
        cmocka_unit_test(test_stream_1024_shards_route_everywhere),
        cmocka_unit_test(test_stream_status_transitions),
        cmocka_unit_test(test_stream_delete_and_recreate),
        cmocka_unit_test(test_stream_list_sorted),
        cmocka_unit_test(test_stream_retention_rules),
        cmocka_unit_test(test_stream_tags),
        cmocka_unit_test(test_stream_arn),
        cmocka_unit_test(test_stream_set_mode),
        cmocka_unit_test(test_stream_survives_reopen),
        cmocka_unit_test(test_stream_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
