/* test_broker_meta.c — the catalog key/value area: put/get/del/keys, namespaces, binary values,
 * persistence across reopen, bad arguments; concurrent writers. */
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


#include <pthread.h>

static void test_meta_put_get_del_keys(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(brk_meta_get(f->b, "fn", "missing", &v, &len), SL_ENOTFOUND);
    assert_int_equal(brk_meta_put(f->b, "fn", "b", "{\"x\":1}", 7), 0);
    assert_int_equal(brk_meta_put(f->b, "fn", "a", "first", 5), 0);
    assert_int_equal(brk_meta_put(f->b, "esm", "a", "other-ns", 8), 0);
    assert_int_equal(brk_meta_get(f->b, "fn", "b", &v, &len), 0);
    assert_int_equal(len, 7);
    assert_string_equal(v, "{\"x\":1}");
    sl_free(v);
    /* overwrite */
    assert_int_equal(brk_meta_put(f->b, "fn", "a", "second", 6), 0);
    assert_int_equal(brk_meta_get(f->b, "fn", "a", &v, &len), 0);
    assert_string_equal(v, "second");
    sl_free(v);
    char **keys;
    size_t n;
    assert_int_equal(brk_meta_keys(f->b, "fn", &keys, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(keys[0], "a");
    assert_string_equal(keys[1], "b");
    brk_names_free(keys, n);
    assert_int_equal(brk_meta_del(f->b, "fn", "a"), 0);
    assert_int_equal(brk_meta_del(f->b, "fn", "a"), 0); /* idempotent */
    assert_int_equal(brk_meta_get(f->b, "fn", "a", &v, &len), SL_ENOTFOUND);
    assert_int_equal(brk_meta_get(f->b, "esm", "a", &v, &len), 0);
    assert_string_equal(v, "other-ns");
    sl_free(v);
    assert_int_equal(brk_meta_keys(f->b, "empty", &keys, &n), 0);
    assert_int_equal(n, 0);
    brk_names_free(keys, n);
    fx_free(f);
}

static void test_meta_binary_and_empty_values(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    char *v = NULL;
    size_t len = 99;
    const char bin[5] = {'a', 0, 'b', 0, 'c'};
    assert_int_equal(brk_meta_put(f->b, "ns", "bin", bin, 5), 0);
    assert_int_equal(brk_meta_get(f->b, "ns", "bin", &v, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(v, bin, 5);
    assert_int_equal(v[5], '\0');
    sl_free(v);
    assert_int_equal(brk_meta_put(f->b, "ns", "empty", "", 0), 0);
    assert_int_equal(brk_meta_get(f->b, "ns", "empty", &v, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(v, "");
    sl_free(v);
    fx_free(f);
}

static void test_meta_survives_reopen(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    char *v = NULL;
    size_t len;
    assert_int_equal(brk_meta_put(f->b, "ckpt", "m1/shardId-000000000000", "4170", 4), 0);
    fx_reopen(f);
    assert_int_equal(brk_meta_get(f->b, "ckpt", "m1/shardId-000000000000", &v, &len), 0);
    assert_string_equal(v, "4170");
    sl_free(v);
    fx_free(f);
}

static void test_meta_bad_arguments(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    char *v;
    size_t len;
    char **keys;
    size_t n;
    assert_int_equal(brk_meta_put(f->b, "", "k", "v", 1), SL_EINVAL);
    assert_int_equal(brk_meta_put(f->b, "ns", NULL, "v", 1), SL_EINVAL);
    assert_int_equal(brk_meta_put(f->b, "ns", "k", NULL, 3), SL_EINVAL);
    assert_int_equal(brk_meta_get(f->b, NULL, "k", &v, &len), SL_EINVAL);
    assert_int_equal(brk_meta_del(f->b, "ns", ""), SL_EINVAL);
    assert_int_equal(brk_meta_keys(f->b, "", &keys, &n), SL_EINVAL);
    fx_free(f);
}

typedef struct writer_arg {
    brk_broker *b;
    int id;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *w = p;
    for (int i = 0; i < 50; i++) {
        char key[32];
        char val[32];
        snprintf(key, sizeof key, "w%d-%02d", w->id, i);
        snprintf(val, sizeof val, "%d", i);
        if (brk_meta_put(w->b, "conc", key, val, strlen(val)) != 0) return (void *)1;
    }
    return NULL;
}

static void test_meta_concurrent_writers(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    pthread_t t[4];
    writer_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i].b = f->b;
        a[i].id = i;
        pthread_create(&t[i], NULL, writer, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
    }
    char **keys;
    size_t n;
    assert_int_equal(brk_meta_keys(f->b, "conc", &keys, &n), 0);
    assert_int_equal(n, 200);
    brk_names_free(keys, n);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta_put_get_del_keys),
        cmocka_unit_test(test_meta_binary_and_empty_values),
        cmocka_unit_test(test_meta_survives_reopen),
        cmocka_unit_test(test_meta_bad_arguments),
        cmocka_unit_test(test_meta_concurrent_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
