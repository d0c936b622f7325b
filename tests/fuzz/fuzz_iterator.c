/* fuzz_iterator.c — libFuzzer target for shard-iterator tokens: the input is handed to
 * GetRecords (brk_get_records) of a real broker holding one stream with records. A token is
 * self-contained and authenticated (HMAC), so whatever the bytes, the call must either succeed
 * (a genuine token: the seeds) or fail with "Invalid ShardIterator." / an expired-iterator
 * error, never crash or return records of a forged position.
 *
 *   make fuzz && build/fuzz/fuzz_iterator -max_total_time=60 tests/fuzz/corpus/fuzz_iterator */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker/broker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static brk_broker *g_b;
static char g_dir[] = "/tmp/sluice-fuzz-iter-XXXXXX";

static int rm_cb(const char *p, const struct stat *s, int fl, struct FTW *w)
{
    (void)s;
    (void)fl;
    (void)w;
    return remove(p);
}

static void teardown(void)
{
    brk_close(g_b);
    nftw(g_dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

/* One broker per process (removed at exit): a stream "s" with 3 records. Every process has a
 * fresh MAC secret, so inputs are forged tokens: the target explores the decoding and MAC
 * checks, which must refuse them all without crashing. */
static void setup(void)
{
    sl_err err;
    brk_put_result r;
    if (!mkdtemp(g_dir)) abort();
    brk_opts o = {.data_dir = g_dir, .fsync = BRK_FSYNC_NO};
    if (brk_open(&g_b, &o, &err)) abort();
    atexit(teardown);
    brk_create_opts c = {.name = "s", .shard_count = 2};
    if (brk_stream_create(g_b, &c, &err)) abort();
    for (int i = 0; i < 3; i++) {
        brk_put_entry e = {(const uint8_t *)"data", 4, "key", 3, NULL};
        if (brk_put_record(g_b, "s", &e, NULL, &r, &err)) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char token[BRK_ITER_MAX + 64];
    brk_records recs;
    sl_err err;
    if (!g_b) setup();
    if (size >= sizeof token) size = sizeof token - 1;
    memcpy(token, data, size);
    token[size] = '\0';
    memset(&recs, 0, sizeof recs);
    int rc = brk_get_records(g_b, token, 1 + (size % 10000), &recs, &err);
    if (rc == 0) {
        /* only a genuine token gets here: records and a fresh iterator */
        if (recs.n > 3 || (recs.next_iterator[0] == '\0' && recs.nchildren == 0))
            __builtin_trap();
        brk_records_free(&recs);
    } else if (rc != SL_EINVAL && rc != SL_EEXPIRED && rc != SL_ENOTFOUND) {
        __builtin_trap();
    }
    return 0;
}
