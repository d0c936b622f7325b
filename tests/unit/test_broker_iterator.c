/* test_broker_iterator.c — shard-iterator tokens: roundtrip, size, forgery, expiry message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "broker/iterator.h"

static const uint8_t key[BRK_ITER_SECRET_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

static void make(brk_iter_pos *p, const char *name)
{
    memset(p, 0, sizeof *p);
    snprintf(p->stream, sizeof p->stream, "%s", name);
    p->stream_created_ms = 1700000000123LL;
    p->shard = 7;
    p->position = 123456789012ULL;
    p->issued_ms = 1421889722000LL; /* Thu Jan 22 01:22:02 UTC 2015 */
}

static void test_iterator_roundtrip(void **state)
{
    (void)state;
    brk_iter_pos p;
    brk_iter_pos q;
    char tok[BRK_ITER_MAX];
    sl_err e;
    make(&p, "orders");
    assert_int_equal(brk_iter_encode(key, &p, tok), 0);
    assert_int_equal(brk_iter_decode(key, tok, p.issued_ms + 1000, &q, &e), 0);
    assert_string_equal(q.stream, "orders");
    assert_int_equal(q.stream_created_ms, p.stream_created_ms);
    assert_int_equal(q.shard, 7);
    assert_true(q.position == p.position);
    assert_int_equal(q.issued_ms, p.issued_ms);
    /* end-of-shard position survives too */
    p.position = UINT64_MAX;
    assert_int_equal(brk_iter_encode(key, &p, tok), 0);
    assert_int_equal(brk_iter_decode(key, tok, p.issued_ms, &q, &e), 0);
    assert_true(q.position == UINT64_MAX);
}

static void test_iterator_max_name_fits_512(void **state)
{
    (void)state;
    brk_iter_pos p;
    char name[129];
    char tok[BRK_ITER_MAX];
    memset(name, 'x', 128);
    name[128] = '\0';
    make(&p, name);
    assert_int_equal(brk_iter_encode(key, &p, tok), 0);
    assert_true(strlen(tok) <= 512);
}

static void test_iterator_forged_or_edited_is_invalid(void **state)
{
    (void)state;
    brk_iter_pos p;
    brk_iter_pos q;
    char tok[BRK_ITER_MAX];
    char bad[BRK_ITER_MAX];
    sl_err e;
    make(&p, "orders");
    assert_int_equal(brk_iter_encode(key, &p, tok), 0);
    /* every single-character edit is caught */
    for (size_t i = 0; i < strlen(tok); i++) {
        memcpy(bad, tok, sizeof bad);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        memset(&e, 0, sizeof e);
        int rc = brk_iter_decode(key, bad, p.issued_ms, &q, &e);
        assert_int_equal(rc, SL_EINVAL);
        assert_string_equal(e.msg, "Invalid ShardIterator.");
    }
    /* another secret */
    uint8_t other[BRK_ITER_SECRET_LEN] = {9};
    assert_int_equal(brk_iter_decode(other, tok, p.issued_ms, &q, &e), SL_EINVAL);
    assert_string_equal(e.msg, "Invalid ShardIterator.");
    /* garbage, truncation, empty, too long */
    const char *junk[] = {"", "abc", "!!!!", "AAAA", "AAAAAAAA====", NULL};
    for (int i = 0; junk[i]; i++) {
        assert_int_equal(brk_iter_decode(key, junk[i], p.issued_ms, &q, &e), SL_EINVAL);
        assert_string_equal(e.msg, "Invalid ShardIterator.");
    }
    tok[strlen(tok) - 4] = '\0';
    assert_int_equal(brk_iter_decode(key, tok, p.issued_ms, &q, &e), SL_EINVAL);
    assert_int_equal(brk_iter_decode(key, NULL, p.issued_ms, &q, &e), SL_EINVAL);
}

static void test_iterator_expired_message(void **state)
{
    (void)state;
    brk_iter_pos p;
    brk_iter_pos q;
    char tok[BRK_ITER_MAX];
    sl_err e;
    make(&p, "orders");
    assert_int_equal(brk_iter_encode(key, &p, tok), 0);
    /* exactly 300000 ms old is still fine; one more millisecond is not */
    assert_int_equal(brk_iter_decode(key, tok, p.issued_ms + 300000, &q, &e), 0);
    assert_int_equal(brk_iter_decode(key, tok, p.issued_ms + 301000, &q, &e), SL_EEXPIRED);
    assert_int_equal(e.code, SL_EEXPIRED);
    assert_string_equal(e.msg, "Iterator expired. The iterator was created at time Thu Jan 22 "
                               "01:22:02 UTC 2015 while right now it is Thu Jan 22 01:27:03 UTC "
                               "2015 which is further in the future than the tolerated delay of "
                               "300000 milliseconds.");
}

static void test_iterator_time_format(void **state)
{
    (void)state;
    char buf[64];
    brk_iter_format_time(1421889722000LL, buf, sizeof buf);
    assert_string_equal(buf, "Thu Jan 22 01:22:02 UTC 2015");
    brk_iter_format_time(1704067205000LL, buf, sizeof buf);
    assert_string_equal(buf, "Mon Jan 01 00:00:05 UTC 2024");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iterator_roundtrip),
        cmocka_unit_test(test_iterator_max_name_fits_512),
        cmocka_unit_test(test_iterator_forged_or_edited_is_invalid),
        cmocka_unit_test(test_iterator_expired_message),
        cmocka_unit_test(test_iterator_time_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
