/* test_functions_registry.c — function registry (deploy, update, delete, persistence, atomic
 * code versions, zip safety) and invocation logs (format, rotation, reads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "functions/logs.h"
#include "functions/registry.h"

/* ---- an in-memory fn_store ---- */
#define MAXKV 32
typedef struct kv {
    char *k[MAXKV];
    char *v[MAXKV];
    int fail_puts;
} kv;

static int kv_put(void *ctx, const char *key, const char *json, size_t len)
{
    kv *s = ctx;
    if (s->fail_puts) return SL_EIO;
    for (int i = 0; i < MAXKV; i++)
        if (s->k[i] && !strcmp(s->k[i], key)) {
            free(s->v[i]);
            s->v[i] = strndup(json, len);
            return 0;
        }
    for (int i = 0; i < MAXKV; i++)
        if (!s->k[i]) {
            s->k[i] = strdup(key);
            s->v[i] = strndup(json, len);
            return 0;
        }
    return SL_ELIMIT;
}

static int kv_get(void *ctx, const char *key, char **json, size_t *len)
{
    kv *s = ctx;
    for (int i = 0; i < MAXKV; i++)
        if (s->k[i] && !strcmp(s->k[i], key)) {
            *json = sl_strdup(s->v[i]);
            *len = strlen(s->v[i]);
            return 0;
        }
    return SL_ENOTFOUND;
}

static int kv_del(void *ctx, const char *key)
{
    kv *s = ctx;
    for (int i = 0; i < MAXKV; i++)
        if (s->k[i] && !strcmp(s->k[i], key)) {
            free(s->k[i]);
            free(s->v[i]);
            s->k[i] = s->v[i] = NULL;
            return 0;
        }
    return SL_ENOTFOUND;
}

static int kv_keys(void *ctx, char ***keys, size_t *n)
{
    kv *s = ctx;
    char **v = sl_calloc(MAXKV, sizeof *v);
    size_t c = 0;
    for (int i = 0; i < MAXKV; i++)
        if (s->k[i]) v[c++] = sl_strdup(s->k[i]);
    *keys = v;
    *n = c;
    return 0;
}

static void kv_keys_free(char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++) sl_free(keys[i]);
    sl_free(keys);
}

static void kv_clear(kv *s)
{
    for (int i = 0; i < MAXKV; i++) {
        free(s->k[i]);
        free(s->v[i]);
    }
    memset(s, 0, sizeof *s);
}

typedef struct fixture {
    char dir[256];
    kv store;
    fn_store fs;
    fn_registry *reg;
} fixture;

static void make_zip(const char *name, const char *content, uint8_t **out, size_t *len)
{
    char path[] = "/tmp/sluice-zip-XXXXXX";
    int fd = mkstemp(path);
    int zerr;
    close(fd);
    unlink(path);
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_EXCL, &zerr);
    assert_non_null(z);
    zip_source_t *s = zip_source_buffer(z, content, strlen(content), 0);
    assert_true(zip_file_add(z, name, s, ZIP_FL_ENC_UTF_8) >= 0);
    assert_int_equal(zip_close(z), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc(*len);
    assert_int_equal(fread(*out, 1, *len, f), *len);
    fclose(f);
    unlink(path);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    sl_err err;
    strcpy(f->dir, "/tmp/sluice-reg-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->fs = (fn_store){&f->store, kv_put, kv_get, kv_del, kv_keys, kv_keys_free};
    assert_int_equal(fn_registry_open(&f->reg, f->dir, "us-east-1", "000000000000", &f->fs, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[300];
    fn_registry_close(f->reg);
    kv_clear(&f->store);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void base_config(fn_config *c, const char *name)
{
    fn_config_init(c);
    strcpy(c->name, name);
    strcpy(c->runtime, "lua5.4");
    strcpy(c->handler, "main.handler");
    strcpy(c->role, "arn:aws:iam::000000000000:role/r");
}

static int file_has(const char *path, const char *content)
{
    char buf[256] = "";
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strcmp(buf, content) == 0;
}

static void test_registry_create_get_list_persist(void **state)
{
    fixture *f = *state;
    fn_config c, got;
    uint8_t *zip;
    size_t zlen;
    sl_err err;
    char path[1200];

    base_config(&c, "alpha");
    const char *k[] = {"MODE"}, *v[] = {"test"};
    assert_int_equal(fn_config_set_env(&c, k, v, 1), 0);
    make_zip("main.lua", "function handler() end", &zip, &zlen);
    assert_int_equal(fn_registry_create(f->reg, &c, zip, zlen, &got, &err), 0);
    assert_string_equal(got.name, "alpha");
    assert_int_equal(got.code_size, zlen);
    assert_int_equal(strlen(got.code_sha256), 44);
    assert_int_equal(strlen(got.revision_id), 36);
    fn_config_clear(&got);

    /* duplicate */
    assert_int_equal(fn_registry_create(f->reg, &c, zip, zlen, NULL, &err), SL_EEXISTS);
    assert_string_equal(err.msg, "Function already exist: alpha");

    fn_code *code;
    assert_int_equal(fn_registry_acquire(f->reg, "alpha", &code, &err), 0);
    snprintf(path, sizeof path, "%s/main.lua", code->dir);
    assert_true(file_has(path, "function handler() end"));
    fn_code_unref(code);

    /* reopen from the store: same config */
    fn_registry_close(f->reg);
    assert_int_equal(fn_registry_open(&f->reg, f->dir, "us-east-1", "000000000000", &f->fs, &err), 0);
    assert_int_equal(fn_registry_get(f->reg, "alpha", &got, &err), 0);
    assert_string_equal(got.handler, "main.handler");
    assert_int_equal(got.nenv, 1);
    assert_string_equal(got.env[0].key, "MODE");
    assert_string_equal(got.env[0].value, "test");
    assert_int_equal(got.memory_mb, 128);
    assert_int_equal(got.timeout_s, 3);
    fn_config_clear(&got);

    char **names;
    size_t n;
    assert_int_equal(fn_registry_list(f->reg, &names, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "alpha");
    fn_names_free(names, n);
    fn_config_clear(&c);
    free(zip);
}

static void test_registry_update_code_is_atomic_for_holders(void **state)
{
    fixture *f = *state;
    fn_config c;
    uint8_t *z1, *z2;
    size_t l1, l2;
    sl_err err;
    fn_code *old, *cur;
    char p1[1200], p2[1200];

    base_config(&c, "beta");
    make_zip("main.lua", "v1", &z1, &l1);
    make_zip("main.lua", "v2", &z2, &l2);
    assert_int_equal(fn_registry_create(f->reg, &c, z1, l1, NULL, &err), 0);
    assert_int_equal(fn_registry_acquire(f->reg, "beta", &old, &err), 0);
    assert_int_equal(fn_registry_update_code(f->reg, "beta", z2, l2, NULL, NULL, &err), 0);
    assert_int_equal(fn_registry_acquire(f->reg, "beta", &cur, &err), 0);
    snprintf(p1, sizeof p1, "%s/main.lua", old->dir);
    snprintf(p2, sizeof p2, "%s/main.lua", cur->dir);
    /* the holder of the old version still reads v1; new acquirers get v2 */
    assert_true(file_has(p1, "v1"));
    assert_true(file_has(p2, "v2"));
    assert_true(cur->cfg.code_version > old->cfg.code_version);
    fn_code_unref(old);
    /* the old directory goes with its last reference */
    assert_int_equal(access(p1, F_OK), -1);
    assert_true(file_has(p2, "v2"));
    fn_code_unref(cur);

    /* revision id mismatch */
    assert_int_equal(fn_registry_update_code(f->reg, "beta", z2, l2, "nope", NULL, &err),
                     SL_EPRECONDITION);
    free(z1);
    free(z2);
    fn_config_clear(&c);
}

static void test_registry_update_config_keeps_code(void **state)
{
    fixture *f = *state;
    fn_config c, got;
    uint8_t *z;
    size_t l;
    sl_err err;

    base_config(&c, "gamma");
    make_zip("main.lua", "x", &z, &l);
    assert_int_equal(fn_registry_create(f->reg, &c, z, l, &got, &err), 0);
    char sha[48];
    strcpy(sha, got.code_sha256);
    fn_config_clear(&got);
    c.memory_mb = 256;
    c.timeout_s = 10;
    assert_int_equal(fn_registry_update_config(f->reg, &c, NULL, &got, &err), 0);
    assert_int_equal(got.memory_mb, 256);
    assert_int_equal(got.timeout_s, 10);
    assert_string_equal(got.code_sha256, sha);
    fn_config_clear(&got);
    c.timeout_s = 0;
    assert_int_equal(fn_registry_update_config(f->reg, &c, NULL, NULL, &err), SL_EVALIDATION);
    assert_non_null(strstr(err.msg, "'timeout'"));
    free(z);
    fn_config_clear(&c);
}

static void test_registry_rejects_bad_input(void **state)
{
    fixture *f = *state;
    fn_config c;
    sl_err err;
    uint8_t garbage[] = "not a zip at all";

    base_config(&c, "bad name!");
    assert_int_equal(fn_registry_create(f->reg, &c, garbage, sizeof garbage, NULL, &err),
                     SL_EVALIDATION);
    base_config(&c, "delta");
    strcpy(c.runtime, "python3.12");
    assert_int_equal(fn_registry_create(f->reg, &c, garbage, sizeof garbage, NULL, &err),
                     SL_EINVAL);
    base_config(&c, "delta");
    strcpy(c.handler, "nodot");
    assert_int_equal(fn_registry_create(f->reg, &c, garbage, sizeof garbage, NULL, &err),
                     SL_EINVAL);
    base_config(&c, "delta");
    c.memory_mb = 64;
    assert_int_equal(fn_registry_create(f->reg, &c, garbage, sizeof garbage, NULL, &err),
                     SL_EVALIDATION);
    base_config(&c, "delta");
    assert_int_equal(fn_registry_create(f->reg, &c, garbage, sizeof garbage, NULL, &err),
                     SL_EINVAL);
    assert_non_null(strstr(err.msg, "Could not unzip uploaded file"));
    /* nothing was stored */
    fn_config got;
    assert_int_equal(fn_registry_get(f->reg, "delta", &got, &err), SL_ENOTFOUND);
    assert_string_equal(err.msg,
                        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:delta");

    /* path traversal in the archive */
    uint8_t *z;
    size_t l;
    make_zip("../escape.lua", "x", &z, &l);
    assert_int_equal(fn_registry_create(f->reg, &c, z, l, NULL, &err), SL_EINVAL);
    char esc[400];
    snprintf(esc, sizeof esc, "%s/functions/escape.lua", f->dir);
    assert_int_equal(access(esc, F_OK), -1);
    free(z);
}

static void test_registry_delete_removes_code(void **state)
{
    fixture *f = *state;
    fn_config c;
    uint8_t *z;
    size_t l;
    sl_err err;
    char dir[400];

    base_config(&c, "eps");
    make_zip("main.lua", "x", &z, &l);
    assert_int_equal(fn_registry_create(f->reg, &c, z, l, NULL, &err), 0);
    assert_int_equal(fn_registry_delete(f->reg, "eps", &err), 0);
    snprintf(dir, sizeof dir, "%s/functions/eps", f->dir);
    assert_int_equal(access(dir, F_OK), -1);
    assert_int_equal(fn_registry_delete(f->reg, "eps", &err), SL_ENOTFOUND);
    free(z);
}

static void test_name_from_ref_forms(void **state)
{
    (void)state;
    char n[80];
    sl_err err;
    assert_int_equal(fn_name_from_ref("fn-1", n, sizeof n, &err), 0);
    assert_string_equal(n, "fn-1");
    assert_int_equal(
        fn_name_from_ref("arn:aws:lambda:us-east-1:000000000000:function:fn-2", n, sizeof n, &err),
        0);
    assert_string_equal(n, "fn-2");
    assert_int_equal(fn_name_from_ref("arn:aws:lambda:us-east-1:000000000000:function:fn-3:$LATEST",
                                      n, sizeof n, &err),
                     0);
    assert_string_equal(n, "fn-3");
    assert_int_equal(fn_name_from_ref("000000000000:function:fn-4", n, sizeof n, &err), 0);
    assert_string_equal(n, "fn-4");
    assert_int_equal(fn_name_from_ref("bad name", n, sizeof n, &err), SL_EVALIDATION);
    assert_int_equal(fn_name_from_ref("arn:aws:s3:::bucket", n, sizeof n, &err), SL_EVALIDATION);
}

static void test_logs_format_and_rotation(void **state)
{
    fixture *f = *state;
    fn_logs *l;
    char *text, *out;
    size_t len, olen;
    uint64_t next;
    fn_log_report r = {"11111111-2222-3333-4444-555555555555", 12.345, 128, 7, 0.5};

    assert_int_equal(fn_logs_format(&r, "hello", 5, &text, &len), 0);
    assert_string_equal(text,
                        "START RequestId: 11111111-2222-3333-4444-555555555555 Version: $LATEST\n"
                        "hello\n"
                        "END RequestId: 11111111-2222-3333-4444-555555555555\n"
                        "REPORT RequestId: 11111111-2222-3333-4444-555555555555\tDuration: 12.35 "
                        "ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 7 MB\t"
                        "Init Duration: 0.50 ms\t\n");
    assert_int_equal(fn_logs_open(&l, f->dir, 1000, 2), 0);
    for (int i = 0; i < 20; i++) assert_int_equal(fn_logs_append(l, "fn", text, len), 0);
    assert_int_equal(fn_logs_read(l, "fn", 0, 0, &out, &olen, &next), 0);
    assert_true(olen <= 1000);
    assert_true(olen > 0);
    assert_int_equal(next, olen);
    assert_non_null(strstr(out, "START RequestId"));
    sl_free(out);
    /* bounded: current + 2 rotated files */
    char p[600];
    snprintf(p, sizeof p, "%s/logs/fn/3.log", f->dir);
    assert_int_equal(access(p, F_OK), -1);
    snprintf(p, sizeof p, "%s/logs/fn/2.log", f->dir);
    assert_int_equal(access(p, F_OK), 0);
    fn_logs_remove(l, "fn");
    assert_int_equal(access(p, F_OK), -1);
    fn_logs_close(l);
    sl_free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registry_create_get_list_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_update_code_is_atomic_for_holders, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_registry_update_config_keeps_code, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_rejects_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_delete_removes_code, setup, teardown),
        cmocka_unit_test(test_name_from_ref_forms),
        cmocka_unit_test_setup_teardown(test_logs_format_and_rotation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
