/* test_broker_common.c — sl_common: error detail, strings, allocator hook, clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "broker/sl_common.h"

static void test_err_set_formats_message(void **state)
{
    (void)state;
    sl_err e;
    assert_int_equal(sl_err_set(&e, SL_ENOTFOUND, "Stream %s not found.", "foo"), SL_ENOTFOUND);
    assert_int_equal(e.code, SL_ENOTFOUND);
    assert_string_equal(e.msg, "Stream foo not found.");
    assert_int_equal(sl_err_set(NULL, SL_EINVAL, "x"), SL_EINVAL);
}

static void test_strerror_covers_codes_and_errno(void **state)
{
    (void)state;
    assert_string_equal(sl_strerror(SL_ENOTFOUND), "not found");
    assert_string_equal(sl_strerror(-ENOENT), strerror(ENOENT));
}

static void test_alloc_fail_injection(void **state)
{
    (void)state;
    sl_alloc_fail_after(2);
    void *a = sl_malloc(8);
    void *b = sl_malloc(8);
    void *c = sl_malloc(8);
    assert_non_null(a);
    assert_null(b);
    assert_non_null(c);
    sl_free(a);
    sl_free(c);
    sl_alloc_fail_after(0);
}

static void test_clocks_move_forward(void **state)
{
    (void)state;
    uint64_t a = sl_mono_ns();
    uint64_t b = sl_mono_ns();
    assert_true(b >= a);
    assert_true(sl_now_ms() > 1700000000000LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_set_formats_message),
        cmocka_unit_test(test_strerror_covers_codes_and_errno),
        cmocka_unit_test(test_alloc_fail_injection),
        cmocka_unit_test(test_clocks_move_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
