/* broker_fx.h — the broker unit tests' fixture: a temporary data directory with a fake clock,
 * open/reopen, and short helpers that assert success (create, put, iterator, get), plus
 * assert_err for an error's code and exact message. Header-only: each test program includes it
 * once, after <cmocka.h> and broker/broker.h. */
#ifndef TESTS_BROKER_FX_H
#define TESTS_BROKER_FX_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker/broker.h"

#define HELPER static __attribute__((unused))

/* ---- test fixture: a temp data dir, a fake clock, open/reopen ---- */
typedef struct fx {
    char dir[256];
    int64_t now;
    brk_opts o;
    brk_broker *b;
} fx;

HELPER int64_t fake_clock(void *ctx) { return ((fx *)ctx)->now; }

HELPER void fx_open(fx *f)
{
    sl_err e;
    memset(&e, 0, sizeof e);
    int rc = brk_open(&f->b, &f->o, &e);
    if (rc) fprintf(stderr, "brk_open: %d %s\n", rc, e.msg);
    assert_int_equal(rc, 0);
}

HELPER fx *fx_new(int64_t transition_ms)
{
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/brk_test_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->now = 1700000000000LL;
    f->o.data_dir = f->dir;
    f->o.fsync = BRK_FSYNC_NO;
    f->o.transition_ms = transition_ms;
    f->o.clock = fake_clock;
    f->o.clock_ctx = f;
    fx_open(f);
    return f;
}

HELPER void fx_reopen(fx *f)
{
    brk_close(f->b);
    f->b = NULL;
    fx_open(f);
}

HELPER int rm_cb(const char *p, const struct stat *s, int fl, struct FTW *w)
{
    (void)s;
    (void)fl;
    (void)w;
    return remove(p);
}

HELPER void fx_free(fx *f)
{
    brk_close(f->b);
    nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
}

HELPER void mk(fx *f, const char *name, uint32_t shards)
{
    sl_err e;
    brk_create_opts c = {.name = name, .shard_count = shards};
    int rc = brk_stream_create(f->b, &c, &e);
    if (rc) fprintf(stderr, "create: %s\n", e.msg);
    assert_int_equal(rc, 0);
}

HELPER brk_put_result put(fx *f, const char *stream, const char *pk, const char *data)
{
    sl_err e;
    brk_put_result r;
    brk_put_entry pe = {.data = (const uint8_t *)data, .data_len = strlen(data),
                        .partition_key = pk, .pk_len = strlen(pk)};
    memset(&r, 0, sizeof r);
    int rc = brk_put_record(f->b, stream, &pe, NULL, &r, &e);
    if (rc) fprintf(stderr, "put: %s\n", e.msg);
    assert_int_equal(rc, 0);
    return r;
}

HELPER brk_put_result put_hk(fx *f, const char *stream, const char *hk, const char *data)
{
    sl_err e;
    brk_put_result r;
    brk_put_entry pe = {.data = (const uint8_t *)data, .data_len = strlen(data),
                        .partition_key = "k", .pk_len = 1, .explicit_hash_key = hk};
    memset(&r, 0, sizeof r);
    int rc = brk_put_record(f->b, stream, &pe, NULL, &r, &e);
    if (rc) fprintf(stderr, "put: %s\n", e.msg);
    assert_int_equal(rc, 0);
    return r;
}

HELPER void iter(fx *f, const char *stream, const char *shard, enum brk_iter_type t,
                 const char *seq, char out[BRK_ITER_MAX])
{
    sl_err e;
    int rc = brk_get_iterator(f->b, stream, shard, t, seq, false, 0, out, &e);
    if (rc) fprintf(stderr, "iterator: %s\n", e.msg);
    assert_int_equal(rc, 0);
}

HELPER void get(fx *f, const char *it, uint32_t limit, brk_records *r)
{
    sl_err e;
    int rc = brk_get_records(f->b, it, limit, r, &e);
    if (rc) fprintf(stderr, "get: %s\n", e.msg);
    assert_int_equal(rc, 0);
}

/* Asserts rc, err.code and the exact message. */
#define assert_err(rc_expr, e, want, text)                                                    \
    do {                                                                                      \
        memset(&(e), 0, sizeof(e));                                                           \
        int rc__ = (rc_expr);                                                                 \
        assert_int_equal(rc__, (want));                                                       \
        assert_int_equal((e).code, (want));                                                   \
        assert_string_equal((e).msg, (text));                                                 \
    } while (0)

/* brk_tag holds non-const strings. */
#define TAG(k, v) {(char *)(k), (char *)(v)}

#endif
