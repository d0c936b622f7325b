/* test_broker_hashkey.c — 128-bit hash keys: parse/format, MD5 routing, SPEC 2.1 layouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "broker/hashkey.h"
#include "broker/sl_common.h"

#define MAXS "340282366920938463463374607431768211455"

static void check_range(uint32_t n, uint32_t i, const char *s, const char *e)
{
    brk_u128 a;
    brk_u128 b;
    char sa[40];
    char sb[40];
    brk_hashkey_range(n, i, &a, &b);
    brk_hashkey_format(a, sa);
    brk_hashkey_format(b, sb);
    assert_string_equal(sa, s);
    assert_string_equal(sb, e);
}

static void test_hashkey_spec_table_2_3_4(void **state)
{
    (void)state;
    check_range(2, 0, "0", "170141183460469231731687303715884105727");
    check_range(2, 1, "170141183460469231731687303715884105728", MAXS);
    check_range(3, 0, "0", "113427455640312821154458202477256070484");
    check_range(3, 1, "113427455640312821154458202477256070485",
                "226854911280625642308916404954512140969");
    check_range(3, 2, "226854911280625642308916404954512140970", MAXS);
    check_range(4, 0, "0", "85070591730234615865843651857942052863");
    check_range(4, 1, "85070591730234615865843651857942052864",
                "170141183460469231731687303715884105727");
    check_range(4, 2, "170141183460469231731687303715884105728",
                "255211775190703847597530955573826158591");
    check_range(4, 3, "255211775190703847597530955573826158592", MAXS);
    check_range(1, 0, "0", MAXS);
    check_range(1000, 1, "340282366920938463463374607431768211",
                "680564733841876926926749214863536421");
}

static void test_hashkey_ranges_tile_space_1_to_1024(void **state)
{
    (void)state;
    for (uint32_t n = 1; n <= 1024; n++) {
        brk_u128 prev_end = 0;
        brk_u128 h = 0;
        for (uint32_t i = 0; i < n; i++) {
            brk_u128 s;
            brk_u128 e;
            brk_hashkey_range(n, i, &s, &e);
            if (i == 0) {
                assert_true(s == 0);
                h = e + 1; /* width of a regular shard (0 when n == 1: 2^128 wraps) */
            } else {
                assert_true(s == prev_end + 1);
                assert_true(s == (brk_u128)i * h);
            }
            if (i < n - 1) assert_true(e - s + 1 == h);
            assert_true(e >= s);
            prev_end = e;
        }
        assert_true(prev_end == BRK_U128_MAX);
        if (n > 1) {
            /* h == floor(2^128 / n): 2^128 - h*n (mod 2^128) is the remainder, < n. */
            brk_u128 rem = (brk_u128)0 - h * n;
            assert_true(rem < n);
        }
    }
}

static void test_hashkey_parse_format_roundtrip(void **state)
{
    (void)state;
    brk_u128 v;
    char buf[40];
    assert_int_equal(brk_hashkey_parse("0", &v), 0);
    assert_true(v == 0);
    assert_int_equal(brk_hashkey_parse(MAXS, &v), 0);
    assert_true(v == BRK_U128_MAX);
    brk_hashkey_format(v, buf);
    assert_string_equal(buf, MAXS);
    assert_int_equal(brk_hashkey_parse("12345678901234567890123456789", &v), 0);
    brk_hashkey_format(v, buf);
    assert_string_equal(buf, "12345678901234567890123456789");
    /* 2^128 and the largest 39-digit number are in the pattern but out of range. */
    assert_int_equal(brk_hashkey_parse("340282366920938463463374607431768211456", &v), SL_ETOOBIG);
    assert_int_equal(brk_hashkey_parse("999999999999999999999999999999999999999", &v), SL_ETOOBIG);
    /* Pattern violations. */
    assert_int_equal(brk_hashkey_parse("", &v), SL_EVALIDATION);
    assert_int_equal(brk_hashkey_parse(NULL, &v), SL_EVALIDATION);
    assert_int_equal(brk_hashkey_parse("01", &v), SL_EVALIDATION);
    assert_int_equal(brk_hashkey_parse("-1", &v), SL_EVALIDATION);
    assert_int_equal(brk_hashkey_parse("12a", &v), SL_EVALIDATION);
    assert_int_equal(brk_hashkey_parse("1000000000000000000000000000000000000000", &v),
                     SL_EVALIDATION);
}

static void check_md5(const char *key, const char *want)
{
    char buf[40];
    brk_hashkey_format(brk_hashkey_md5(key, strlen(key)), buf);
    assert_string_equal(buf, want);
}

static void test_hashkey_md5_vectors(void **state)
{
    (void)state;
    check_md5("a", "16955237001963240173058271559858726497");
    check_md5("", "281949768489412648962353822266799178366");
    check_md5("abc", "191415658344158766168031473277922803570");
    check_md5("partitionKey-1", "159499196025307651934328298402289840726");
    check_md5("h\xc3\xa9llo", "252973414135665226741597071662034525008");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hashkey_spec_table_2_3_4),
        cmocka_unit_test(test_hashkey_ranges_tile_space_1_to_1024),
        cmocka_unit_test(test_hashkey_parse_format_roundtrip),
        cmocka_unit_test(test_hashkey_md5_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
