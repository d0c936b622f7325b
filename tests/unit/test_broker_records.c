/* test_broker_records.c — puts and reads: routing, batches, every iterator type, expiry and
 * forgery, retention, MillisBehindLatest, ordering across reopen, watches, throttling, and every
 * bad input with its code and exact message. */
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

#include <pthread.h>

#include "tests/lib/broker_fx.h"


#define S0 "shardId-000000000000"
#define S1 "shardId-000000000001"
#define HALF "170141183460469231731687303715884105728"

static void test_records_put_get_roundtrip(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    char it[BRK_ITER_MAX];
    brk_records r;
    mk(f, "s", 1);
    brk_put_result a = put(f, "s", "pk1", "hello");
    brk_put_result b = put(f, "s", "pk2", "world");
    assert_string_equal(a.shard_id, S0);
    assert_int_equal(strlen(a.seq), 56);
    assert_true(brk_seq_cmp(a.seq, b.seq) < 0);
    iter(f, "s", S0, BRK_TRIM_HORIZON, NULL, it);
    assert_true(strlen(it) <= 512);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.recs[0].seq, a.seq);
    assert_int_equal(r.recs[0].data_len, 5);
    assert_memory_equal(r.recs[0].data, "hello", 5);
    assert_int_equal(r.recs[0].pk_len, 3);
    assert_memory_equal(r.recs[0].partition_key, "pk1", 3);
    assert_int_equal(r.recs[0].arrival_ms, f->now);
    assert_string_equal(r.recs[1].seq, b.seq);
    assert_int_equal(r.millis_behind, 0);
    assert_true(r.next_iterator[0] != '\0');
    assert_int_equal(r.nchildren, 0);
    /* the next iterator continues after the last record; empty reads keep minting one */
    char next[BRK_ITER_MAX];
    memcpy(next, r.next_iterator, sizeof next);
    brk_records_free(&r);
    get(f, next, 10, &r);
    assert_int_equal(r.n, 0);
    assert_true(r.next_iterator[0] != '\0');
    brk_records_free(&r);
    brk_put_result c = put(f, "s", "pk3", "again");
    get(f, next, 10, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.recs[0].seq, c.seq);
    brk_records_free(&r);
    /* binary data with NULs and an empty record */
    sl_err e;
    const uint8_t bin[4] = {0, 1, 0, 255};
    brk_put_entry pe[2] = {{.data = bin, .data_len = 4, .partition_key = "b", .pk_len = 1},
                           {.data = bin, .data_len = 0, .partition_key = "b", .pk_len = 1}};
    brk_put_result res[2];
    size_t failed = 9;
    assert_int_equal(brk_put_records(f->b, "s", pe, 2, res, &failed, &e), 0);
    assert_int_equal(failed, 0);
    iter(f, "s", S0, BRK_AT_SEQUENCE_NUMBER, res[0].seq, it);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.recs[0].data_len, 4);
    assert_memory_equal(r.recs[0].data, bin, 4);
    assert_int_equal(r.recs[1].data_len, 0);
    brk_records_free(&r);
    fx_free(f);
}

static void test_records_get_caps_at_10_mib(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    char it[BRK_ITER_MAX];
    brk_records r;
    sl_err e;
    size_t sz = 1000 * 1024;
    uint8_t *data = calloc(1, sz);
    brk_put_entry pe = {.data = data, .data_len = sz, .partition_key = "k", .pk_len = 1};
    brk_put_result res;
    mk(f, "big", 1);
    for (int i = 0; i < 12; i++)
        assert_int_equal(brk_put_record(f->b, "big", &pe, NULL, &res, &e), 0);
    iter(f, "big", S0, BRK_TRIM_HORIZON, NULL, it);
    get(f, it, 10000, &r);
    assert_int_equal(r.n, 10); /* 10 x (1000 KiB + 1) <= 10 MiB < 11 x ... */
    assert_true(r.millis_behind >= 0);
    char next[BRK_ITER_MAX];
    memcpy(next, r.next_iterator, sizeof next);
    brk_records_free(&r);
    get(f, next, 10000, &r);
    assert_int_equal(r.n, 2);
    brk_records_free(&r);
    free(data);
    fx_free(f);
}

static void test_records_md5_and_explicit_routing(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    mk(f, "r", 2);
    /* MD5("a") = 16955237001963240173058271559858726497 < 2^127: shard 0 */
    assert_string_equal(put(f, "r", "a", "x").shard_id, S0);
    /* MD5("") is above 2^127, but partition keys cannot be empty; "abc" is 1914...e38: shard 1 */
    assert_string_equal(put(f, "r", "abc", "x").shard_id, S1);
    assert_string_equal(put_hk(f, "r", "0", "x").shard_id, S0);
    assert_string_equal(put_hk(f, "r", "170141183460469231731687303715884105727", "x").shard_id,
                        S0);
    assert_string_equal(put_hk(f, "r", HALF, "x").shard_id, S1);
    assert_string_equal(put_hk(f, "r", "340282366920938463463374607431768211455", "x").shard_id,
                        S1);
    fx_free(f);
}

static void test_records_batch_results_and_order(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    mk(f, "b", 4);
    brk_put_entry pe[500];
    brk_put_result res[500];
    char keys[500][16];
    for (int i = 0; i < 500; i++) {
        snprintf(keys[i], sizeof keys[i], "key-%d", i);
        pe[i] = (brk_put_entry){.data = (const uint8_t *)keys[i], .data_len = strlen(keys[i]),
                                .partition_key = keys[i], .pk_len = strlen(keys[i])};
    }
    size_t failed = 99;
    assert_int_equal(brk_put_records(f->b, "b", pe, 500, res, &failed, &e), 0);
    assert_int_equal(failed, 0);
    /* per shard: request order == sequence order */
    for (int s = 0; s < 4; s++) {
        char sid[32];
        const char *prev = NULL;
        snprintf(sid, sizeof sid, "shardId-%012d", s);
        for (int i = 0; i < 500; i++) {
            if (strcmp(res[i].shard_id, sid) != 0) continue;
            assert_int_equal(res[i].code, 0);
            if (prev) assert_true(brk_seq_cmp(prev, res[i].seq) < 0);
            prev = res[i].seq;
        }
        assert_non_null(prev);
        /* read the shard back: same records in the same order */
        char it[BRK_ITER_MAX];
        brk_records r;
        iter(f, "b", sid, BRK_TRIM_HORIZON, NULL, it);
        get(f, it, 10000, &r);
        size_t k = 0;
        for (int i = 0; i < 500; i++) {
            if (strcmp(res[i].shard_id, sid) != 0) continue;
            assert_true(k < r.n);
            assert_string_equal(r.recs[k].seq, res[i].seq);
            assert_memory_equal(r.recs[k].data, keys[i], strlen(keys[i]));
            k++;
        }
        assert_int_equal(k, r.n);
        brk_records_free(&r);
    }
    brk_stats st;
    brk_get_stats(f->b, &st);
    assert_int_equal(st.records_appended, 500);
    fx_free(f);
}

static void test_records_bad_puts(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    brk_put_result r;
    mk(f, "v", 1);
    brk_put_entry pe = {.data = (const uint8_t *)"d", .data_len = 1, .partition_key = "",
                        .pk_len = 0};
    /* schema validation comes before the stream lookup (AWS order) */
    assert_err(brk_put_record(f->b, "nope", &pe, NULL, &r, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value '' at 'partitionKey' failed to satisfy "
               "constraint: Member must have length greater than or equal to 1");
    pe.partition_key = "pk";
    pe.pk_len = 2;
    assert_err(brk_put_record(f->b, "nope", &pe, NULL, &r, &e), e, SL_ENOTFOUND,
               "Stream nope under account 000000000000 not found.");
    pe.partition_key = "";
    pe.pk_len = 0;
    assert_err(brk_put_record(f->b, "v", &pe, NULL, &r, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value '' at 'partitionKey' failed to satisfy "
               "constraint: Member must have length greater than or equal to 1");
    /* 256 two-byte characters are fine (characters, not bytes); 257 are not */
    char pk[1024];
    for (int i = 0; i < 257; i++) memcpy(pk + 2 * i, "\xc3\xa9", 2);
    pe.partition_key = pk;
    pe.pk_len = 512;
    assert_int_equal(brk_put_record(f->b, "v", &pe, NULL, &r, &e), 0);
    pe.pk_len = 514;
    memset(&e, 0, sizeof e);
    assert_int_equal(brk_put_record(f->b, "v", &pe, NULL, &r, &e), SL_EVALIDATION);
    assert_non_null(strstr(e.msg, "at 'partitionKey' failed to satisfy constraint: Member must "
                                  "have length less than or equal to 256"));
    /* record size: data alone over 1 MiB, then data + key over 1 MiB */
    size_t big = 1024 * 1024 + 1;
    uint8_t *data = calloc(1, big);
    pe.partition_key = "k";
    pe.pk_len = 1;
    pe.data = data;
    pe.data_len = big;
    assert_err(brk_put_record(f->b, "v", &pe, NULL, &r, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim=1048577 "
               "cap=1048577]' at 'data' failed to satisfy constraint: Member must have length "
               "less than or equal to 1048576");
    pe.data_len = 1024 * 1024;
    assert_err(brk_put_record(f->b, "v", &pe, NULL, &r, &e), e, SL_EINVAL,
               "Record size (data plus partition key) of 1048577 bytes exceeds the maximum "
               "record size of 1048576 bytes.");
    pe.data_len = 1024 * 1024 - 1;
    assert_int_equal(brk_put_record(f->b, "v", &pe, NULL, &r, &e), 0);
    /* explicit hash keys */
    pe.data_len = 1;
    pe.explicit_hash_key = "340282366920938463463374607431768211456";
    assert_err(brk_put_record(f->b, "v", &pe, NULL, &r, &e), e, SL_EINVAL,
               "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. "
               "Specified value was 340282366920938463463374607431768211456");
    pe.explicit_hash_key = "-5";
    assert_err(brk_put_record(f->b, "v", &pe, NULL, &r, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value '-5' at 'explicitHashKey' failed to satisfy "
               "constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})");
    pe.explicit_hash_key = NULL;
    pe.data = NULL;
    assert_err(brk_put_record(f->b, "v", &pe, NULL, &r, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value null at 'data' failed to satisfy constraint: "
               "Member must not be null");
    pe.data = data;
    /* SequenceNumberForOrdering */
    assert_err(brk_put_record(f->b, "v", &pe, "12x", &r, &e), e, SL_EINVAL,
               "ExclusiveMinimumSequenceNumber 12x used in PutRecord on stream v under account "
               "000000000000 is invalid.");
    brk_put_result prev = put(f, "v", "k", "p");
    assert_int_equal(brk_put_record(f->b, "v", &pe, prev.seq, &r, &e), 0);
    assert_true(brk_seq_cmp(prev.seq, r.seq) < 0);
    /* batches */
    brk_put_entry batch[501];
    brk_put_result res[501];
    size_t failed;
    for (int i = 0; i < 501; i++)
        batch[i] = (brk_put_entry){.data = data, .data_len = 10, .partition_key = "k",
                                   .pk_len = 1};
    assert_err(brk_put_records(f->b, "v", batch, 0, res, &failed, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value '[]' at 'records' failed to satisfy "
               "constraint: Member must have length greater than or equal to 1");
    assert_err(brk_put_records(f->b, "v", batch, 501, res, &failed, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value '[...]' at 'records' failed to satisfy "
               "constraint: Member must have length less than or equal to 500");
    for (int i = 0; i < 6; i++) batch[i].data_len = 1024 * 1000;
    assert_err(brk_put_records(f->b, "v", batch, 6, res, &failed, &e), e, SL_EINVAL,
               "Records size exceeds 5 MB limit");
    batch[1].data_len = 10;
    batch[1].pk_len = 0;
    batch[1].partition_key = "";
    assert_err(brk_put_records(f->b, "v", batch, 3, res, &failed, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value '' at 'records.2.member.partitionKey' failed "
               "to satisfy constraint: Member must have length greater than or equal to 1");
    /* nothing of the failed calls was stored */
    brk_stats st;
    brk_get_stats(f->b, &st);
    assert_int_equal(st.records_appended, 4);
    free(data);
    fx_free(f);
}

static void test_records_iterator_types(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    char it[BRK_ITER_MAX];
    brk_records r;
    brk_put_result p[5];
    mk(f, "i", 1);
    for (int i = 0; i < 5; i++) {
        char d[16];
        snprintf(d, sizeof d, "r%d", i);
        p[i] = put(f, "i", "k", d);
        f->now += 1000;
    }
    iter(f, "i", S0, BRK_AT_SEQUENCE_NUMBER, p[2].seq, it);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.recs[0].seq, p[2].seq);
    brk_records_free(&r);
    iter(f, "i", S0, BRK_AFTER_SEQUENCE_NUMBER, p[2].seq, it);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.recs[0].seq, p[3].seq);
    brk_records_free(&r);
    iter(f, "i", S0, BRK_LATEST, NULL, it);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 0);
    brk_records_free(&r);
    brk_put_result late = put(f, "i", "k", "late");
    get(f, it, 10, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.recs[0].seq, late.seq);
    brk_records_free(&r);
    /* AT_TIMESTAMP: first record with arrival >= timestamp */
    assert_int_equal(brk_get_iterator(f->b, "i", S0, BRK_AT_TIMESTAMP, NULL, true,
                                      1700000000000LL + 1500, it, &e), 0);
    get(f, it, 1, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.recs[0].seq, p[2].seq);
    /* MillisBehindLatest: now minus the arrival of the last returned record, 0 at the tip */
    assert_int_equal(r.millis_behind, f->now - (1700000000000LL + 2000));
    brk_records_free(&r);
    assert_int_equal(brk_get_iterator(f->b, "i", S0, BRK_AT_TIMESTAMP, NULL, true, 0, it, &e), 0);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 6);
    assert_int_equal(r.millis_behind, 0);
    brk_records_free(&r);
    /* limit */
    iter(f, "i", S0, BRK_TRIM_HORIZON, NULL, it);
    get(f, it, 2, &r);
    assert_int_equal(r.n, 2);
    assert_true(r.millis_behind > 0);
    char next[BRK_ITER_MAX];
    memcpy(next, r.next_iterator, sizeof next);
    brk_records_free(&r);
    get(f, next, 10000, &r);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.recs[0].seq, p[2].seq);
    brk_records_free(&r);
    /* bare shard id forms */
    iter(f, "i", "0", BRK_TRIM_HORIZON, NULL, it);
    iter(f, "i", "shardId-0", BRK_TRIM_HORIZON, NULL, it);
    fx_free(f);
}

static void test_records_iterator_errors(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    char it[BRK_ITER_MAX];
    brk_records r;
    mk(f, "i", 2);
    mk(f, "other", 1);
    brk_put_result p0 = put_hk(f, "i", "0", "x");
    brk_put_result p1 = put_hk(f, "i", HALF, "x");
    brk_put_result po = put(f, "other", "k", "x");
    assert_err(brk_get_iterator(f->b, "i", S0, BRK_TRIM_HORIZON, p0.seq, false, 0, it, &e), e,
               SL_EINVAL, "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER "
               "and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no "
               "StartingSequenceNumber. Request specified TRIM_HORIZON and also a "
               "StartingSequenceNumber.");
    assert_err(brk_get_iterator(f->b, "i", S0, BRK_AFTER_SEQUENCE_NUMBER, NULL, false, 0, it, &e),
               e, SL_EINVAL, "Must either specify (1) AT_SEQUENCE_NUMBER or "
               "AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST "
               "and no StartingSequenceNumber. Request specified AFTER_SEQUENCE_NUMBER and no "
               "StartingSequenceNumber.");
    assert_err(brk_get_iterator(f->b, "i", S0, BRK_AT_TIMESTAMP, NULL, false, 0, it, &e), e,
               SL_EINVAL, "Must specify timestampInMillis parameter for iterator of type "
               "AT_TIMESTAMP. Current request has no timestamp parameter.");
    assert_err(brk_get_iterator(f->b, "i", S0, BRK_AT_TIMESTAMP, NULL, true, f->now + 5, it, &e),
               e, SL_EINVAL, "The timestampInMillis parameter cannot be greater than the "
               "currentTimestampInMillis. timestampInMillis: 1700000000005, "
               "currentTimestampInMillis: 1700000000000");
    assert_err(brk_get_iterator(f->b, "i", S0, BRK_AT_SEQUENCE_NUMBER, p1.seq, false, 0, it, &e),
               e, SL_EINVAL, "Invalid StartingSequenceNumber. It encodes shardId-000000000001, "
               "while it was used in a call to a shard with shardId-000000000000");
    assert_err(brk_get_iterator(f->b, "i", S0, BRK_AT_SEQUENCE_NUMBER, "123", false, 0, it, &e),
               e, SL_EINVAL, "StartingSequenceNumber 123 used in GetShardIterator on shard "
               "shardId-000000000000 in stream i under account 000000000000 is invalid.");
    char msg[512];
    snprintf(msg, sizeof msg, "StartingSequenceNumber %s used in GetShardIterator on shard "
             "shardId-000000000000 in stream i under account 000000000000 is invalid because it "
             "did not come from this stream.", po.seq);
    f->now += 1; /* "other" was created at the same ms: make a stream that differs */
    mk(f, "later", 1);
    brk_put_result pl = put(f, "later", "k", "x");
    snprintf(msg, sizeof msg, "StartingSequenceNumber %s used in GetShardIterator on shard "
             "shardId-000000000000 in stream i under account 000000000000 is invalid because it "
             "did not come from this stream.", pl.seq);
    assert_err(brk_get_iterator(f->b, "i", S0, BRK_AT_SEQUENCE_NUMBER, pl.seq, false, 0, it, &e),
               e, SL_EINVAL, msg);
    /* the end-of-shard number of an open shard does not exist */
    char endseq[BRK_SEQ_STRLEN];
    memcpy(endseq, p0.seq, sizeof endseq);
    memset(endseq + 24, '9', 32);
    snprintf(msg, sizeof msg, "StartingSequenceNumber %s used in GetShardIterator on shard "
             "shardId-000000000000 in stream i under account 000000000000 is invalid.", endseq);
    assert_err(brk_get_iterator(f->b, "i", S0, BRK_AT_SEQUENCE_NUMBER, endseq, false, 0, it, &e),
               e, SL_EINVAL, msg);
    assert_err(brk_get_iterator(f->b, "i", "shardId-000000000009", BRK_LATEST, NULL, false, 0, it,
                                &e), e, SL_ENOTFOUND,
               "Shard shardId-000000000009 in stream i under account 000000000000 does not exist");
    assert_err(brk_get_iterator(f->b, "i", "bogus", BRK_LATEST, NULL, false, 0, it, &e), e,
               SL_ENOTFOUND, "Could not find shard bogus in stream i under account "
               "000000000000.");
    assert_err(brk_get_iterator(f->b, "zz", S0, BRK_LATEST, NULL, false, 0, it, &e), e,
               SL_ENOTFOUND, "Shard shardId-000000000000 in stream zz under account "
               "000000000000 does not exist");
    /* GetRecords limit */
    iter(f, "i", S0, BRK_TRIM_HORIZON, NULL, it);
    assert_err(brk_get_records(f->b, it, 0, &r, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: "
               "Member must have value greater than or equal to 1");
    assert_err(brk_get_records(f->b, it, 10001, &r, &e), e, SL_EVALIDATION,
               "1 validation error detected: Value '10001' at 'limit' failed to satisfy "
               "constraint: Member must have value less than or equal to 10000");
    fx_free(f);
}

static void test_records_expired_and_forged_iterators(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    char it[BRK_ITER_MAX];
    brk_records r;
    mk(f, "x", 1);
    put(f, "x", "k", "v");
    f->now = 1421889722000LL; /* Thu Jan 22 01:22:02 UTC 2015 */
    iter(f, "x", S0, BRK_TRIM_HORIZON, NULL, it);
    f->now += 300000;
    get(f, it, 10, &r); /* still valid at exactly 300 s */
    brk_records_free(&r);
    f->now += 1000;
    assert_err(brk_get_records(f->b, it, 10, &r, &e), e, SL_EEXPIRED,
               "Iterator expired. The iterator was created at time Thu Jan 22 01:22:02 UTC 2015 "
               "while right now it is Thu Jan 22 01:27:03 UTC 2015 which is further in the future "
               "than the tolerated delay of 300000 milliseconds.");
    iter(f, "x", S0, BRK_TRIM_HORIZON, NULL, it);
    it[10] = it[10] == 'Q' ? 'R' : 'Q';
    assert_err(brk_get_records(f->b, it, 10, &r, &e), e, SL_EINVAL, "Invalid ShardIterator.");
    assert_err(brk_get_records(f->b, "garbage", 10, &r, &e), e, SL_EINVAL,
               "Invalid ShardIterator.");
    /* a token minted by another data directory (other secret) is forged too */
    fx *g = fx_new(0);
    mk(g, "x", 1);
    iter(g, "x", S0, BRK_TRIM_HORIZON, NULL, it);
    assert_err(brk_get_records(f->b, it, 10, &r, &e), e, SL_EINVAL, "Invalid ShardIterator.");
    fx_free(g);
    /* the secret survives a reopen: old tokens still work */
    iter(f, "x", S0, BRK_TRIM_HORIZON, NULL, it);
    fx_reopen(f);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 1);
    brk_records_free(&r);
    fx_free(f);
}

static void test_records_retention_on_read(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    char it[BRK_ITER_MAX];
    brk_records r;
    sl_err e;
    mk(f, "ret", 1);
    put(f, "ret", "k", "old");
    f->now += 23LL * 3600 * 1000;
    brk_put_result young = put(f, "ret", "k", "young");
    f->now += 2LL * 3600 * 1000; /* "old" is now 25 h old */
    iter(f, "ret", S0, BRK_TRIM_HORIZON, NULL, it);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.recs[0].seq, young.seq);
    brk_records_free(&r);
    /* AT_TIMESTAMP before the trim horizon reads from the trim horizon */
    assert_int_equal(brk_get_iterator(f->b, "ret", S0, BRK_AT_TIMESTAMP, NULL, true, 0, it, &e),
                     0);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 1);
    brk_records_free(&r);
    /* raising retention does not resurrect what already expired (SPEC 1.4) */
    assert_int_equal(brk_retention_increase(f->b, "ret", 48, &e), 0);
    iter(f, "ret", S0, BRK_TRIM_HORIZON, NULL, it);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 1);
    brk_records_free(&r);
    fx_reopen(f);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.recs[0].seq, young.seq);
    brk_records_free(&r);
    /* and records younger than the new window stay for 48 h */
    f->now += 20LL * 3600 * 1000; /* young: 22 h old */
    brk_maintain(f->b);
    iter(f, "ret", S0, BRK_TRIM_HORIZON, NULL, it);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 1);
    brk_records_free(&r);
    f->now += 27LL * 3600 * 1000; /* young: 49 h old */
    iter(f, "ret", S0, BRK_TRIM_HORIZON, NULL, it);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 0);
    brk_records_free(&r);
    fx_free(f);
}

static void test_records_order_across_reopen_and_clock(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    char it[BRK_ITER_MAX];
    brk_records r;
    mk(f, "o", 1);
    brk_put_result a = put(f, "o", "k", "1");
    fx_reopen(f);
    f->now -= 5000; /* the clock steps back: arrival times stay non-decreasing */
    brk_put_result b = put(f, "o", "k", "2");
    assert_true(brk_seq_cmp(a.seq, b.seq) < 0);
    iter(f, "o", S0, BRK_TRIM_HORIZON, NULL, it);
    get(f, it, 10, &r);
    assert_int_equal(r.n, 2);
    assert_true(r.recs[1].arrival_ms >= r.recs[0].arrival_ms);
    brk_records_free(&r);
    fx_free(f);
}

static void test_records_read_shard_tip_and_time(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    brk_records r;
    bool end = true;
    char seq[BRK_SEQ_STRLEN];
    mk(f, "d", 1);
    assert_int_equal(brk_shard_tip(f->b, "d", S0, seq, &e), 0);
    assert_string_equal(seq, "");
    brk_put_result a = put(f, "d", "k", "1");
    f->now += 10;
    brk_put_result b = put(f, "d", "k", "2");
    assert_int_equal(brk_shard_tip(f->b, "d", S0, seq, &e), 0);
    assert_string_equal(seq, b.seq);
    assert_int_equal(brk_shard_seq_at_time(f->b, "d", S0, f->now - 5, seq, &e), 0);
    assert_string_equal(seq, b.seq);
    assert_int_equal(brk_shard_seq_at_time(f->b, "d", S0, f->now + 5, seq, &e), 0);
    assert_string_equal(seq, "");
    assert_int_equal(brk_read_shard(f->b, "d", S0, NULL, false, 10, 0, &r, &end, &e), 0);
    assert_int_equal(r.n, 2);
    assert_false(end);
    brk_records_free(&r);
    assert_int_equal(brk_read_shard(f->b, "d", S0, a.seq, true, 10, 0, &r, &end, &e), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.recs[0].seq, b.seq);
    brk_records_free(&r);
    assert_int_equal(brk_read_shard(f->b, "d", S0, a.seq, false, 1, 0, &r, &end, &e), 0);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.recs[0].seq, a.seq);
    brk_records_free(&r);
    assert_err(brk_read_shard(f->b, "d", S0, "99", false, 1, 0, &r, &end, &e), e, SL_EINVAL,
               "StartingSequenceNumber 99 used in GetShardIterator on shard shardId-000000000000 "
               "in stream d under account 000000000000 is invalid.");
    fx_free(f);
}

typedef struct watch_count {
    int appended;
    int closed;
    char last_shard[32];
} watch_count;

static void on_watch(void *ctx, const char *stream, const char *shard_id, bool closed)
{
    watch_count *w = ctx;
    assert_string_equal(stream, "w");
    snprintf(w->last_shard, sizeof w->last_shard, "%s", shard_id);
    if (closed) w->closed++;
    else w->appended++;
}

static void test_records_watch_callbacks(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    watch_count wc = {0};
    brk_watch *w = NULL;
    mk(f, "w", 2);
    mk(f, "unwatched", 1);
    assert_int_equal(brk_watch_add(f->b, "w", on_watch, &wc, &w), 0);
    put(f, "w", "a", "1");
    assert_int_equal(wc.appended, 1);
    assert_string_equal(wc.last_shard, S0);
    put(f, "unwatched", "a", "1");
    assert_int_equal(wc.appended, 1);
    brk_put_entry pe[3] = {{.data = (const uint8_t *)"x", .data_len = 1, .partition_key = "a",
                            .pk_len = 1, .explicit_hash_key = "0"},
                           {.data = (const uint8_t *)"x", .data_len = 1, .partition_key = "a",
                            .pk_len = 1, .explicit_hash_key = HALF},
                           {.data = (const uint8_t *)"x", .data_len = 1, .partition_key = "a",
                            .pk_len = 1, .explicit_hash_key = "1"}};
    brk_put_result res[3];
    size_t failed;
    assert_int_equal(brk_put_records(f->b, "w", pe, 3, res, &failed, &e), 0);
    assert_int_equal(wc.appended, 3); /* once per touched shard */
    assert_int_equal(brk_split_shard(f->b, "w", S0, "1000", &e), 0);
    assert_int_equal(wc.closed, 1);
    assert_string_equal(wc.last_shard, S0);
    brk_watch_remove(f->b, w);
    put(f, "w", "a", "1");
    assert_int_equal(wc.appended, 3);
    brk_watch_remove(f->b, NULL);
    fx_free(f);
}

typedef struct self_remove {
    brk_broker *b;
    brk_watch *w;
    int calls;
} self_remove;

static void on_self_remove(void *ctx, const char *stream, const char *shard_id, bool closed)
{
    self_remove *sr = ctx;
    (void)stream;
    (void)shard_id;
    (void)closed;
    sr->calls++;
    brk_watch_remove(sr->b, sr->w); /* must not deadlock */
}

static void test_records_watch_remove_from_callback(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    self_remove sr = {.b = f->b};
    mk(f, "w", 1);
    assert_int_equal(brk_watch_add(f->b, "w", on_self_remove, &sr, &sr.w), 0);
    put(f, "w", "a", "1");
    put(f, "w", "a", "2");
    assert_int_equal(sr.calls, 1);
    fx_free(f);
}

typedef struct writer_arg {
    fx *f;
    int id;
    int failures;
} writer_arg;

static void *writer_main(void *p)
{
    writer_arg *w = p;
    brk_put_entry pe[100];
    brk_put_result res[100];
    char keys[100][48];
    for (int k = 0; k < 30; k++) {
        for (int i = 0; i < 100; i++) {
            snprintf(keys[i], sizeof keys[i], "w%d-%d-%d", w->id, k, i);
            pe[i] = (brk_put_entry){.data = (const uint8_t *)keys[i], .data_len = strlen(keys[i]),
                                    .partition_key = keys[i], .pk_len = strlen(keys[i])};
        }
        size_t failed = 0;
        sl_err e;
        if (brk_put_records(w->f->b, "c", pe, 100, res, &failed, &e) != 0 || failed) w->failures++;
    }
    return NULL;
}

static void test_records_concurrent_puts_and_reshards(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    mk(f, "c", 4);
    pthread_t t[3];
    writer_arg wa[3];
    for (int i = 0; i < 3; i++) {
        wa[i] = (writer_arg){.f = f, .id = i};
        pthread_create(&t[i], NULL, writer_main, &wa[i]);
    }
    uint32_t cur;
    assert_int_equal(brk_update_shard_count(f->b, "c", 8, &cur, &e), 0);
    assert_int_equal(brk_update_shard_count(f->b, "c", 5, &cur, &e), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(wa[i].failures, 0);
    }
    /* every record is somewhere, each shard strictly ordered */
    brk_stream_info info;
    assert_int_equal(brk_stream_describe(f->b, "c", &info, &e), 0);
    size_t total = 0;
    for (size_t s = 0; s < info.nshards; s++) {
        char it[BRK_ITER_MAX];
        brk_records r;
        iter(f, "c", info.shards[s].shard_id, BRK_TRIM_HORIZON, NULL, it);
        get(f, it, 10000, &r);
        for (size_t i = 1; i < r.n; i++) assert_true(brk_seq_cmp(r.recs[i - 1].seq,
                                                                 r.recs[i].seq) < 0);
        total += r.n;
        brk_records_free(&r);
    }
    brk_stream_info_free(&info);
    assert_int_equal(total, 3 * 30 * 100);
    fx_free(f);
}

static void test_records_throttle_emulation(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    f->o.throttle = true;
    fx_reopen(f);
    mk(f, "t", 1);
    brk_put_entry pe[500];
    brk_put_result res[500];
    for (int i = 0; i < 500; i++)
        pe[i] = (brk_put_entry){.data = (const uint8_t *)"x", .data_len = 1,
                                .partition_key = "k", .pk_len = 1};
    size_t failed = 0;
    assert_int_equal(brk_put_records(f->b, "t", pe, 500, res, &failed, &e), 0);
    assert_int_equal(failed, 0);
    assert_int_equal(brk_put_records(f->b, "t", pe, 500, res, &failed, &e), 0);
    assert_int_equal(failed, 0);
    /* the 1001st record within the same second is refused, per record */
    assert_int_equal(brk_put_records(f->b, "t", pe, 2, res, &failed, &e), 0);
    assert_int_equal(failed, 2);
    assert_int_equal(res[0].code, SL_ETHROTTLED);
    assert_string_equal(res[0].error_code, "ProvisionedThroughputExceededException");
    assert_string_equal(res[0].error_message, "Rate exceeded for shard shardId-000000000000 in "
                                              "stream t under account 000000000000.");
    brk_put_result r;
    assert_err(brk_put_record(f->b, "t", &pe[0], NULL, &r, &e), e, SL_ETHROTTLED,
               "Rate exceeded for shard shardId-000000000000 in stream t under account "
               "000000000000.");
    f->now += 1000;
    assert_int_equal(brk_put_records(f->b, "t", pe, 2, res, &failed, &e), 0);
    assert_int_equal(failed, 0);
    /* reads: 5 GetRecords calls per second */
    char it[BRK_ITER_MAX];
    brk_records rr;
    iter(f, "t", S0, BRK_LATEST, NULL, it);
    for (int i = 0; i < 5; i++) {
        get(f, it, 1, &rr);
        brk_records_free(&rr);
    }
    assert_err(brk_get_records(f->b, it, 1, &rr, &e), e, SL_ETHROTTLED,
               "Rate exceeded for shard shardId-000000000000 in stream t under account "
               "000000000000.");
    f->now += 1000;
    get(f, it, 1, &rr);
    brk_records_free(&rr);
    fx_free(f);
}

static void test_records_fsync_always(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    f->o.fsync = BRK_FSYNC_ALWAYS;
    fx_reopen(f);
    mk(f, "a", 2);
    for (int i = 0; i < 20; i++) put(f, "a", i % 2 ? "x" : "y", "data");
    f->o.fsync = BRK_FSYNC_EVERYSEC;
    fx_reopen(f);
    brk_stats st;
    put(f, "a", "x", "d");
    brk_get_stats(f->b, &st);
    assert_int_equal(st.records_appended, 1);
    fx_free(f);
}

/* brk_shard_count: records ever appended, retained or not, per shard. */
static void test_records_shard_count(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    sl_err e;
    uint64_t n = 99;
    mk(f, "cnt", 1);
    assert_int_equal(brk_shard_count(f->b, "cnt", "shardId-000000000000", &n, &e), 0);
    assert_int_equal(n, 0);
    put(f, "cnt", "a", "1");
    put(f, "cnt", "b", "2");
    put(f, "cnt", "c", "3");
    assert_int_equal(brk_shard_count(f->b, "cnt", "shardId-000000000000", &n, &e), 0);
    assert_int_equal(n, 3);
    fx_reopen(f);
    assert_int_equal(brk_shard_count(f->b, "cnt", "0", &n, &e), 0);
    assert_int_equal(n, 3);
    assert_int_equal(brk_shard_count(f->b, "cnt", "shardId-000000000007", &n, &e), SL_ENOTFOUND);
    assert_int_equal(brk_shard_count(f->b, "nope", "shardId-000000000000", &n, &e), SL_ENOTFOUND);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_put_get_roundtrip),
        cmocka_unit_test(test_records_get_caps_at_10_mib),
        cmocka_unit_test(test_records_md5_and_explicit_routing),
        cmocka_unit_test(test_records_batch_results_and_order),
        cmocka_unit_test(test_records_bad_puts),
        cmocka_unit_test(test_records_iterator_types),
        cmocka_unit_test(test_records_iterator_errors),
        cmocka_unit_test(test_records_expired_and_forged_iterators),
        cmocka_unit_test(test_records_retention_on_read),
        cmocka_unit_test(test_records_order_across_reopen_and_clock),
        cmocka_unit_test(test_records_read_shard_tip_and_time),
        cmocka_unit_test(test_records_watch_callbacks),
        cmocka_unit_test(test_records_watch_remove_from_callback),
        cmocka_unit_test(test_records_concurrent_puts_and_reshards),
        cmocka_unit_test(test_records_throttle_emulation),
        cmocka_unit_test(test_records_fsync_always),
        cmocka_unit_test(test_records_shard_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
