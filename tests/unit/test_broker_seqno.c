/* test_broker_seqno.c — 56-digit sequence numbers: layout, order, decode, sentinel, compare. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/seqno.h"

static void test_seqno_fixed_width_and_layout(void **state)
{
    (void)state;
    char s[BRK_SEQ_STRLEN];
    brk_seq_format(1700000000123LL, 5, 42, s);
    assert_int_equal(strlen(s), 56);
    assert_string_equal(s, "4" "1700000000123" "0000000005" "00000000000000000042" "000000000000");
    brk_seq_format(0, 0, 0, s);
    assert_int_equal(strlen(s), 56);
    assert_true(s[0] == '4');
    brk_seq_format(1700000000123LL, UINT32_MAX, UINT64_MAX - 1, s);
    assert_int_equal(strlen(s), 56);
}

static void test_seqno_parse_roundtrip_and_sentinel(void **state)
{
    (void)state;
    char s[BRK_SEQ_STRLEN];
    brk_seq_parts p;
    brk_seq_format(1700000000123LL, 77, 123456789, s);
    assert_int_equal(brk_seq_parse(s, &p), 0);
    assert_int_equal(p.stream_created_ms, 1700000000123LL);
    assert_int_equal(p.shard, 77);
    assert_int_equal(p.counter, 123456789);
    uint32_t idx = 0;
    assert_int_equal(brk_seq_shard_index(s, &idx), 0);
    assert_int_equal(idx, 77);

    brk_seq_format(1700000000123LL, 77, BRK_SEQ_END, s);
    assert_int_equal(strlen(s), 56);
    assert_string_equal(s + 24, "99999999999999999999999999999999");
    assert_int_equal(brk_seq_parse(s, &p), 0);
    assert_true(p.counter == BRK_SEQ_END);
    assert_int_equal(p.shard, 77);
}

static void test_seqno_rejects_foreign_strings(void **state)
{
    (void)state;
    brk_seq_parts p;
    char s[BRK_SEQ_STRLEN];
    brk_seq_format(1700000000123LL, 1, 5, s);
    assert_int_equal(brk_seq_parse("", &p), SL_EINVAL);
    assert_int_equal(brk_seq_parse(NULL, &p), SL_EINVAL);
    assert_int_equal(brk_seq_parse("12345", &p), SL_EINVAL);
    /* kinesalite-style number: right width, wrong version digit */
    assert_int_equal(brk_seq_parse("49646437577108476416916876405825929425585429676275269634", &p),
                     SL_EINVAL);
    char t[BRK_SEQ_STRLEN];
    memcpy(t, s, sizeof t);
    t[50] = '7'; /* reserved digits must be zero */
    assert_int_equal(brk_seq_parse(t, &p), SL_EINVAL);
    memcpy(t, s, sizeof t);
    t[10] = 'x';
    assert_int_equal(brk_seq_parse(t, &p), SL_EINVAL);
    memcpy(t, s, sizeof t);
    memcpy(t + 24, "99999999999999999999", 20); /* counter > 2^64-1 but not the sentinel */
    assert_int_equal(brk_seq_parse(t, &p), SL_EINVAL);
    memcpy(t, s, sizeof t);
    memcpy(t + 14, "9999999999", 10); /* shard index > 2^32-1 */
    assert_int_equal(brk_seq_parse(t, &p), SL_EINVAL);
}

static void test_seqno_order_counter_and_child_shards(void **state)
{
    (void)state;
    char a[BRK_SEQ_STRLEN];
    char b[BRK_SEQ_STRLEN];
    char end[BRK_SEQ_STRLEN];
    const int64_t t = 1700000000123LL;
    for (uint64_t c = 0; c < 2000; c += 7) {
        brk_seq_format(t, 3, c, a);
        brk_seq_format(t, 3, c + 1, b);
        assert_true(strcmp(a, b) < 0);
        assert_true(brk_seq_cmp(a, b) < 0);
        assert_true(brk_seq_cmp(b, a) > 0);
    }
    /* Any number of a child (higher index) exceeds the parent's end sentinel. */
    brk_seq_format(t, 3, BRK_SEQ_END, end);
    brk_seq_format(t, 4, 0, b);
    assert_true(brk_seq_cmp(end, b) < 0);
    brk_seq_format(t, 3, UINT64_MAX - 1, a);
    assert_true(brk_seq_cmp(a, end) < 0);
}

static void test_seqno_increment_matches_render(void **state)
{
    (void)state;
    char a[BRK_SEQ_STRLEN];
    char b[BRK_SEQ_STRLEN];
    const uint64_t starts[] = {0, 8, 99, 999999, 18446744073709551599ULL};
    for (size_t k = 0; k < sizeof starts / sizeof starts[0]; k++) {
        brk_seq_format(1700000000123LL, 9, starts[k], a);
        for (uint64_t c = starts[k] + 1; c < starts[k] + 12; c++) {
            brk_seq_increment(a);
            brk_seq_format(1700000000123LL, 9, c, b);
            assert_string_equal(a, b);
        }
    }
}

static void test_seqno_cmp_numeric(void **state)
{
    (void)state;
    assert_int_equal(brk_seq_cmp("10", "9"), 1);
    assert_int_equal(brk_seq_cmp("009", "9"), 0);
    assert_int_equal(brk_seq_cmp("0", "0"), 0);
    assert_int_equal(brk_seq_cmp("123", "124"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seqno_fixed_width_and_layout),
        cmocka_unit_test(test_seqno_parse_roundtrip_and_sentinel),
        cmocka_unit_test(test_seqno_rejects_foreign_strings),
        cmocka_unit_test(test_seqno_order_counter_and_child_shards),
        cmocka_unit_test(test_seqno_increment_matches_render),
        cmocka_unit_test(test_seqno_cmp_numeric),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
