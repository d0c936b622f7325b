/* test_broker_reshard.c — SplitShard, MergeShards, UpdateShardCount: lineage, ranges, sequence
 * order across reshards and reopen, reading a drained parent, and every error message. */
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


#define S0 "shardId-000000000000"
#define S1 "shardId-000000000001"
#define S2 "shardId-000000000002"
#define S3 "shardId-000000000003"
#define MAXK "340282366920938463463374607431768211455"
#define HALF "170141183460469231731687303715884105728"

static brk_stream_info describe(fx *f, const char *name)
{
    sl_err e;
    brk_stream_info info;
    int rc = brk_stream_describe(f->b, name, &info, &e);
    assert_int_equal(rc, 0);
    return info;
}

static void test_reshard_split_lineage_and_reads(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    char it[BRK_ITER_MAX];
    brk_records r;
    mk(f, "s", 1);
    brk_put_result before = put(f, "s", "a", "parent-data");
    f->now += 10;
    assert_int_equal(brk_split_shard(f->b, "s", S0, HALF, &e), 0);
    brk_stream_info info = describe(f, "s");
    assert_int_equal(info.nshards, 3);
    assert_int_equal(info.open_shards, 2);
    assert_false(info.shards[0].open);
    assert_int_equal(strlen(info.shards[0].end_seq), 56);
    assert_string_equal(info.shards[1].shard_id, S1);
    assert_string_equal(info.shards[1].parent, S0);
    assert_string_equal(info.shards[1].adjacent_parent, "");
    assert_string_equal(info.shards[1].start_hash, "0");
    assert_string_equal(info.shards[1].end_hash, "170141183460469231731687303715884105727");
    assert_string_equal(info.shards[2].parent, S0);
    assert_string_equal(info.shards[2].start_hash, HALF);
    assert_string_equal(info.shards[2].end_hash, MAXK);
    /* children's numbers exceed all of the parent's, including its end */
    assert_true(brk_seq_cmp(info.shards[0].end_seq, info.shards[1].start_seq) < 0);
    char parent_end[BRK_SEQ_STRLEN];
    memcpy(parent_end, info.shards[0].end_seq, sizeof parent_end);
    brk_stream_info_free(&info);
    /* new writes go to the children */
    brk_put_result after = put(f, "s", "a", "child-data");
    assert_string_equal(after.shard_id, S1);
    assert_true(brk_seq_cmp(before.seq, after.seq) < 0);
    assert_true(brk_seq_cmp(parent_end, after.seq) < 0);
    /* the parent is still readable; once drained: no next iterator, ChildShards instead */
    iter(f, "s", S0, BRK_TRIM_HORIZON, NULL, it);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.recs[0].seq, before.seq);
    assert_true(r.next_iterator[0] != '\0');
    char next[BRK_ITER_MAX];
    memcpy(next, r.next_iterator, sizeof next);
    brk_records_free(&r);
    get(f, next, 10, &r);
    assert_int_equal(r.n, 0);
    assert_string_equal(r.next_iterator, "");
    assert_int_equal(r.nchildren, 2);
    assert_string_equal(r.children[0].shard_id, S1);
    assert_string_equal(r.children[1].shard_id, S2);
    assert_int_equal(r.children[0].nparents, 1);
    assert_string_equal(r.children[0].parents[0], S0);
    assert_string_equal(r.children[1].start_hash, HALF);
    brk_records_free(&r);
    /* AT_SEQUENCE_NUMBER on the end sentinel reads nothing and ends the shard */
    iter(f, "s", S0, BRK_AT_SEQUENCE_NUMBER, parent_end, it);
    get(f, it, 10, &r);
    assert_string_equal(r.next_iterator, "");
    brk_records_free(&r);
    /* AFTER_SEQUENCE_NUMBER on the end sentinel: SPEC's message */
    assert_err(brk_get_iterator(f->b, "s", S0, BRK_AFTER_SEQUENCE_NUMBER, parent_end, false, 0,
                                it, &e), e, SL_EINVAL,
               "Invalid SequenceNumber for ShardIteratorType AFTER_SEQUENCE_NUMBER, SequenceNumber "
               "has reached max possible value for the shard.");
    /* a closed shard still gives normal iterators */
    iter(f, "s", S0, BRK_LATEST, NULL, it);
    get(f, it, 10, &r);
    assert_string_equal(r.next_iterator, "");
    brk_records_free(&r);
    /* brk_read_shard reports the end */
    bool end = false;
    assert_int_equal(brk_read_shard(f->b, "s", S0, before.seq, false, 10, 0, &r, &end, &e), 0);
    assert_int_equal(r.n, 1);
    assert_true(end);
    brk_records_free(&r);
    fx_free(f);
}

static void test_reshard_split_errors(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    mk(f, "s", 2);
    assert_err(brk_split_shard(f->b, "nope", S0, "5", &e), e, SL_ENOTFOUND,
               "Stream nope under account 000000000000 not found.");
    assert_err(brk_split_shard(f->b, "s", "shardId-000000000007", "5", &e), e, SL_ENOTFOUND,
               "Could not find shard shardId-000000000007 in stream s under account "
               "000000000000.");
    assert_err(brk_split_shard(f->b, "s", S0, "1", &e), e, SL_EINVAL,
               "NewStartingHashKey 1 used in SplitShard() on shard shardId-000000000000 in stream "
               "s under account 000000000000 is not both greater than one plus the shard's "
               "StartingHashKey 0 and less than the shard's EndingHashKey "
               "170141183460469231731687303715884105727.");
    assert_err(brk_split_shard(f->b, "s", S0, "170141183460469231731687303715884105727", &e), e,
               SL_EINVAL, "NewStartingHashKey 170141183460469231731687303715884105727 used in "
               "SplitShard() on shard shardId-000000000000 in stream s under account "
               "000000000000 is not both greater than one plus the shard's StartingHashKey 0 and "
               "less than the shard's EndingHashKey 170141183460469231731687303715884105727.");
    memset(&e, 0, sizeof e);
    assert_int_equal(brk_split_shard(f->b, "s", S1, "340282366920938463463374607431768211456",
                                     &e), SL_EINVAL);
    assert_err(brk_split_shard(f->b, "s", S0, "abc", &e), e, SL_EVALIDATION,
               "1 validation error detected: Value 'abc' at 'newStartingHashKey' failed to "
               "satisfy constraint: Member must satisfy regular expression pattern: "
               "0|([1-9]\\d{0,38})");
    assert_int_equal(brk_split_shard(f->b, "s", S0, "2", &e), 0);
    assert_err(brk_split_shard(f->b, "s", S0, "100", &e), e, SL_EINVAL,
               "Shard shardId-000000000000 in stream s under account 000000000000 has already been "
               "merged or split, and thus is not eligible for merging or splitting.");
    /* not ACTIVE */
    f->o.transition_ms = 1000;
    fx_reopen(f);
    assert_int_equal(brk_split_shard(f->b, "s", S1, "200000000000000000000000000000000000000",
                                     &e), 0);
    assert_err(brk_split_shard(f->b, "s", S3, "1000000", &e), e, SL_EINUSE,
               "Stream s under account 000000000000 not ACTIVE, instead in state UPDATING");
    f->now += 1000;
    assert_int_equal(brk_split_shard(f->b, "s", S3, "1000000", &e), 0);
    f->now += 1000;
    /* ON_DEMAND */
    brk_create_opts c = {.name = "od", .mode = BRK_ON_DEMAND};
    assert_int_equal(brk_stream_create(f->b, &c, &e), 0);
    f->now += 1000;
    assert_err(brk_split_shard(f->b, "od", S0, "1000", &e), e, SL_EVALIDATION,
               "SplitShard is not supported for stream od under account 000000000000 because it "
               "is in ON_DEMAND capacity mode.");
    /* shard quota: s has 5 open shards (2, 4, 5, 6, 7), od 4 */
    f->o.shard_quota = 11;
    fx_reopen(f);
    brk_stream_info info = describe(f, "s");
    assert_int_equal(info.open_shards, 5);
    brk_stream_info_free(&info);
    memset(&e, 0, sizeof e);
    assert_int_equal(brk_split_shard(f->b, "s", S2, HALF "0", &e), SL_EVALIDATION);
    assert_int_equal(brk_split_shard(f->b, "s", "shardId-000000000005",
                                     "300000000000000000000000000000000000000", &e), 0);
    f->now += 1000;
    assert_int_equal(brk_split_shard(f->b, "s", "shardId-000000000009",
                                     "330000000000000000000000000000000000000", &e), 0);
    f->now += 1000;
    assert_err(brk_split_shard(f->b, "s", "shardId-000000000008",
                               "250000000000000000000000000000000000000", &e), e, SL_ELIMIT,
               "This request would exceed the shard limit for the account 000000000000 in "
               "us-east-1. Current shard count for the account: 11. Limit: 11. Number of "
               "additional shards that would have resulted from this request: 1. Refer to the "
               "AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/"
               "aws_service_limits.html) for current limits and how to request higher limits.");
    fx_free(f);
}

static void test_reshard_merge_either_order(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    char it[BRK_ITER_MAX];
    brk_records r;
    mk(f, "m", 4);
    brk_put_result p1 = put_hk(f, "m", "85070591730234615865843651857942052864", "x");
    assert_string_equal(p1.shard_id, S1);
    assert_err(brk_merge_shards(f->b, "m", S0, S2, &e), e, SL_EINVAL,
               "Shards shardId-000000000000 and shardId-000000000002 in stream m under account "
               "000000000000 are not an adjacent pair of shards eligible for merging");
    assert_err(brk_merge_shards(f->b, "m", S1, S1, &e), e, SL_EINVAL,
               "Shards shardId-000000000001 and shardId-000000000001 in stream m under account "
               "000000000000 are not an adjacent pair of shards eligible for merging");
    assert_err(brk_merge_shards(f->b, "m", S0, "shardId-000000000042", &e), e, SL_ENOTFOUND,
               "Could not find shard shardId-000000000042 in stream m under account "
               "000000000000.");
    /* reverse order: ShardToMerge is the upper neighbour */
    assert_int_equal(brk_merge_shards(f->b, "m", S1, S0, &e), 0);
    brk_stream_info info = describe(f, "m");
    assert_int_equal(info.nshards, 5);
    assert_int_equal(info.open_shards, 3);
    assert_string_equal(info.shards[4].shard_id, "shardId-000000000004");
    assert_string_equal(info.shards[4].parent, S1);
    assert_string_equal(info.shards[4].adjacent_parent, S0);
    assert_string_equal(info.shards[4].start_hash, "0");
    assert_string_equal(info.shards[4].end_hash, "170141183460469231731687303715884105727");
    brk_stream_info_free(&info);
    assert_err(brk_merge_shards(f->b, "m", S0, S2, &e), e, SL_EINVAL,
               "Shard shardId-000000000000 in stream m under account 000000000000 has already been "
               "merged or split, and thus is not eligible for merging or splitting.");
    /* both parents end with the merged child as ChildShards */
    iter(f, "m", S1, BRK_AFTER_SEQUENCE_NUMBER, p1.seq, it);
    get(f, it, 10, &r);
    assert_string_equal(r.next_iterator, "");
    assert_int_equal(r.nchildren, 1);
    assert_string_equal(r.children[0].shard_id, "shardId-000000000004");
    assert_int_equal(r.children[0].nparents, 2);
    assert_string_equal(r.children[0].parents[0], S1);
    assert_string_equal(r.children[0].parents[1], S0);
    brk_records_free(&r);
    /* forward order too */
    assert_int_equal(brk_merge_shards(f->b, "m", S2, S3, &e), 0);
    /* and merged children merge again */
    assert_int_equal(brk_merge_shards(f->b, "m", "shardId-000000000004", "shardId-000000000005",
                                      &e), 0);
    info = describe(f, "m");
    assert_int_equal(info.open_shards, 1);
    assert_string_equal(info.shards[6].start_hash, "0");
    assert_string_equal(info.shards[6].end_hash, MAXK);
    brk_stream_info_free(&info);
    brk_put_result p2 = put_hk(f, "m", "85070591730234615865843651857942052864", "y");
    assert_string_equal(p2.shard_id, "shardId-000000000006");
    assert_true(brk_seq_cmp(p1.seq, p2.seq) < 0);
    fx_free(f);
}

static void test_reshard_lineage_persists(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    mk(f, "p", 2);
    brk_put_result a = put(f, "p", "a", "1");
    assert_int_equal(brk_split_shard(f->b, "p", S0, "1000", &e), 0);
    assert_int_equal(brk_merge_shards(f->b, "p", S3, S1, &e), 0);
    fx_reopen(f);
    brk_stream_info info = describe(f, "p");
    assert_int_equal(info.nshards, 5);
    assert_int_equal(info.open_shards, 2);
    assert_string_equal(info.shards[2].parent, S0);
    assert_string_equal(info.shards[3].parent, S0);
    assert_string_equal(info.shards[4].parent, S3);
    assert_string_equal(info.shards[4].adjacent_parent, S1);
    assert_false(info.shards[1].open);
    brk_stream_info_free(&info);
    brk_put_result b = put(f, "p", "a", "2");
    assert_true(brk_seq_cmp(a.seq, b.seq) < 0);
    /* indices are never reused */
    assert_int_equal(brk_split_shard(f->b, "p", S2, "10", &e), 0);
    info = describe(f, "p");
    assert_string_equal(info.shards[6].shard_id, "shardId-000000000006");
    brk_stream_info_free(&info);
    fx_free(f);
}

/* Open shards of a stream must be exactly SPEC 2.1's layout for n, each with <= 2 parents. */
static void check_uniform(fx *f, const char *name, uint32_t n)
{
    brk_stream_info info = describe(f, name);
    assert_int_equal(info.open_shards, n);
    /* open shards sorted by start hash: collect and sort by numeric start */
    brk_shard_info *open[64];
    size_t k = 0;
    for (size_t i = 0; i < info.nshards; i++)
        if (info.shards[i].open) open[k++] = &info.shards[i];
    for (size_t i = 0; i < k; i++)
        for (size_t j = i + 1; j < k; j++)
            if (brk_seq_cmp(open[j]->start_hash, open[i]->start_hash) < 0) {
                brk_shard_info *t = open[i];
                open[i] = open[j];
                open[j] = t;
            }
    /* expected table from a fresh stream */
    char ref[16];
    snprintf(ref, sizeof ref, "ref%u", n);
    mk(f, ref, n);
    brk_stream_info want = describe(f, ref);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(open[i]->start_hash, want.shards[i].start_hash);
        assert_string_equal(open[i]->end_hash, want.shards[i].end_hash);
    }
    brk_stream_info_free(&want);
    sl_err e;
    assert_int_equal(brk_stream_delete(f->b, ref, &e), 0);
    brk_stream_info_free(&info);
}

static void test_reshard_update_shard_count(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    uint32_t cur = 0;
    mk(f, "u", 1);
    brk_put_result a = put(f, "u", "a", "before");
    assert_int_equal(brk_update_shard_count(f->b, "u", 2, &cur, &e), 0);
    assert_int_equal(cur, 1);
    check_uniform(f, "u", 2);
    assert_int_equal(brk_update_shard_count(f->b, "u", 4, &cur, &e), 0);
    assert_int_equal(cur, 2);
    check_uniform(f, "u", 4);
    assert_int_equal(brk_update_shard_count(f->b, "u", 3, &cur, &e), 0);
    check_uniform(f, "u", 3);
    assert_int_equal(brk_update_shard_count(f->b, "u", 5, &cur, &e), 0);
    check_uniform(f, "u", 5);
    assert_int_equal(brk_update_shard_count(f->b, "u", 3, &cur, &e), 0);
    check_uniform(f, "u", 3);
    /* every shard has at most two parents and the old data is still there */
    brk_put_result b = put(f, "u", "a", "after");
    assert_true(brk_seq_cmp(a.seq, b.seq) < 0);
    char it[BRK_ITER_MAX];
    brk_records r;
    iter(f, "u", S0, BRK_TRIM_HORIZON, NULL, it);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 1);
    assert_memory_equal(r.recs[0].data, "before", 6);
    brk_records_free(&r);
    /* limits */
    assert_err(brk_update_shard_count(f->b, "u", 7, &cur, &e), e, SL_ELIMIT,
               "UpdateShardCount cannot scale up over double your current open shard count. "
               "Current open shard count: 3, Target shard count: 7");
    assert_err(brk_update_shard_count(f->b, "u", 1, &cur, &e), e, SL_ELIMIT,
               "UpdateShardCount cannot scale down below half your current open shard count. "
               "Current open shard count: 3, Target shard count: 1");
    assert_err(brk_update_shard_count(f->b, "u", 0, &cur, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value '0' at 'targetShardCount' failed to satisfy "
               "constraint: Member must have value greater than or equal to 1");
    assert_err(brk_update_shard_count(f->b, "u", 20000, &cur, &e), e, SL_ELIMIT,
               "Target shard count or number of open shards cannot be greater than 10000. Current "
               "open shard count: 3, Target shard count: 20000");
    /* 10 scalings per rolling 24 h (5 done above) */
    for (int i = 0; i < 5; i++)
        assert_int_equal(brk_update_shard_count(f->b, "u", i % 2 ? 3 : 4, &cur, &e), 0);
    assert_err(brk_update_shard_count(f->b, "u", 4, &cur, &e), e, SL_ELIMIT,
               "Exceeded the number of allowed UpdateShardCount operations (10) in a rolling 24 "
               "hour period for stream u under account 000000000000.");
    fx_reopen(f);
    memset(&e, 0, sizeof e);
    assert_int_equal(brk_update_shard_count(f->b, "u", 4, &cur, &e), SL_ELIMIT);
    f->now += 24LL * 3600 * 1000 + 1;
    assert_int_equal(brk_update_shard_count(f->b, "u", 4, &cur, &e), 0);
    /* ON_DEMAND */
    brk_create_opts c = {.name = "od", .mode = BRK_ON_DEMAND};
    assert_int_equal(brk_stream_create(f->b, &c, &e), 0);
    assert_err(brk_update_shard_count(f->b, "od", 5, &cur, &e), e, SL_EVALIDATION,
               "UpdateShardCount is not supported for stream od under account 000000000000 "
               "because it is in ON_DEMAND capacity mode.");
    assert_err(brk_merge_shards(f->b, "od", S0, S1, &e), e, SL_EVALIDATION,
               "MergeShards is not supported for stream od under account 000000000000 because it "
               "is in ON_DEMAND capacity mode.");
    fx_free(f);
}

static void test_reshard_update_lineage_two_parents_max(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    uint32_t cur;
    mk(f, "l", 7);
    assert_int_equal(brk_update_shard_count(f->b, "l", 4, &cur, &e), 0);
    check_uniform(f, "l", 4);
    brk_stream_info info = describe(f, "l");
    for (size_t i = 0; i < info.nshards; i++) {
        brk_shard_info *s = &info.shards[i];
        if (i >= 7) assert_true(s->parent[0] != '\0');
        /* a child's index is above its parents' (so its sequence numbers are too) */
        uint32_t pi;
        if (s->parent[0]) {
            pi = (uint32_t)atoi(s->parent + 8);
            assert_true(pi < i);
        }
        if (s->adjacent_parent[0]) {
            pi = (uint32_t)atoi(s->adjacent_parent + 8);
            assert_true(pi < i);
        }
    }
    brk_stream_info_free(&info);
    fx_free(f);
}

static void test_reshard_expired_parent_files_removed(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    char path[512];
    struct stat sb;
    mk(f, "x", 1);
    put(f, "x", "a", "old");
    assert_int_equal(brk_split_shard(f->b, "x", S0, HALF, &e), 0);
    snprintf(path, sizeof path, "%s/streams/x/%s", f->dir, S0);
    brk_maintain(f->b);
    assert_int_equal(stat(path, &sb), 0); /* closed but not expired: kept */
    brk_stream_info info = describe(f, "x");
    assert_int_equal(info.nshards, 3);
    brk_stream_info_free(&info);
    f->now += 25LL * 3600 * 1000;
    fx_reopen(f);
    brk_maintain(f->b);
    assert_int_not_equal(stat(path, &sb), 0);
    info = describe(f, "x"); /* the EXPIRED parent is no longer listed */
    assert_int_equal(info.nshards, 2);
    assert_string_equal(info.shards[0].shard_id, S1);
    assert_string_equal(info.shards[0].parent, S0);
    brk_stream_info_free(&info);
    char it[BRK_ITER_MAX];
    brk_records r;
    iter(f, "x", S0, BRK_TRIM_HORIZON, NULL, it);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 0);
    assert_string_equal(r.next_iterator, "");
    brk_records_free(&r);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reshard_split_lineage_and_reads),
        cmocka_unit_test(test_reshard_split_errors),
        cmocka_unit_test(test_reshard_merge_either_order),
        cmocka_unit_test(test_reshard_lineage_persists),
        cmocka_unit_test(test_reshard_update_shard_count),
        cmocka_unit_test(test_reshard_update_lineage_two_parents_max),
        cmocka_unit_test(test_reshard_expired_parent_files_removed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
