/* test_broker_shard_log.c — the shard log over several segments: reopen, roll, reads across
 * segments and their limits, time seeks, retention, recovery, append rollback, group commit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/segment.h"
#include "broker/shard_log.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static char *tmpdir_new(void)
{
    char *d = strdup("/tmp/sl_logtest_XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void tmpdir_free(char *d)
{
    assert_int_equal(brk_log_remove_dir(d), 0);
    assert_int_equal(access(d, F_OK), -1);
    free(d);
}

static const char *seg_path(const char *dir, uint64_t first, const char *ext)
{
    static char buf[512];
    assert_int_equal(brk_segment_path(buf, sizeof buf, dir, first, ext), 0);
    return buf;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

/* Sorted counters of the *.log files in dir. */
static size_t list_segments(const char *dir, uint64_t *out, size_t max)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l == 24 && strcmp(e->d_name + 20, ".log") == 0) {
            assert_true(n < max);
            out[n++] = strtoull(e->d_name, NULL, 10);
        }
    }
    closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
            uint64_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

static brk_log *log_open(const char *dir, size_t seg_bytes, enum brk_fsync fs)
{
    brk_log *l = NULL;
    sl_err e = {0};
    brk_log_opts o = {.segment_bytes = seg_bytes, .fsync = fs};
    int rc = brk_log_open(&l, dir, &o, &e);
    if (rc) fail_msg("brk_log_open: %s", e.msg);
    return l;
}

/* Record i: key "key-<i>", (i * 13) % 200 bytes derived from i, arrival 10 * i. */
typedef struct rec_buf {
    char pk[32];
    uint8_t data[200];
} rec_buf;

static brk_log_rec rec_make(uint64_t i, rec_buf *rb)
{
    sprintf(rb->pk, "key-%llu", (unsigned long long)i);
    size_t n = (size_t)((i * 13) % 200);
    for (size_t j = 0; j < n; j++) rb->data[j] = (uint8_t)(i ^ (j * 7));
    return (brk_log_rec){.arrival_ms = 10 * (int64_t)i, .pk = rb->pk, .pk_len = strlen(rb->pk),
                         .data = rb->data, .data_len = n};
}

/* Appends records first..first+n-1 in batches of `batch`. */
static void log_fill(brk_log *l, uint64_t first, uint64_t n, size_t batch)
{
    rec_buf *rb = malloc(batch * sizeof *rb);
    brk_log_rec *r = malloc(batch * sizeof *r);
    for (uint64_t i = first; i < first + n;) {
        size_t k = 0;
        for (; k < batch && i + k < first + n; k++) r[k] = rec_make(i + k, &rb[k]);
        uint64_t fs = 0, ticket = 0;
        assert_int_equal(brk_log_append(l, r, k, &fs, &ticket), 0);
        assert_int_equal(fs, i);
        assert_int_equal(ticket, i + k);
        i += k;
    }
    free(r);
    free(rb);
}

static void entry_check(const brk_log_batch *b, size_t k, uint64_t i)
{
    rec_buf rb;
    brk_log_rec r = rec_make(i, &rb);
    assert_int_equal(b->e[k].seq, i);
    assert_int_equal(b->e[k].arrival_ms, r.arrival_ms);
    assert_int_equal(b->e[k].pk_len, r.pk_len);
    assert_memory_equal(b->buf + b->e[k].pk_off, r.pk, r.pk_len);
    assert_int_equal(b->e[k].data_len, r.data_len);
    if (r.data_len) assert_memory_equal(b->buf + b->e[k].data_off, r.data, r.data_len);
}

/* Reads everything from `from` in chunks of `chunk` and checks it is exactly from..to-1. */
static void log_check(brk_log *l, uint64_t from, uint64_t to, uint32_t chunk)
{
    brk_log_batch b = {0};
    uint64_t next = from;
    for (;;) {
        b.n = b.len = 0;
        assert_int_equal(brk_log_read(l, next, INT64_MIN, chunk, SIZE_MAX, &b), 0);
        if (b.n == 0) break;
        for (size_t k = 0; k < b.n; k++) entry_check(&b, k, next + k);
        next += b.n;
    }
    assert_int_equal(next, to);
    brk_log_batch_free(&b);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_log_reopen_keeps_next_seq(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_log *l = log_open(dir, 0, BRK_FSYNC_EVERYSEC);
    assert_int_equal(brk_log_next_seq(l), 0);
    uint64_t seq;
    int64_t arr;
    assert_false(brk_log_last(l, &seq, &arr));
    assert_int_equal(brk_log_segments(l), 1);
    log_fill(l, 0, 1000, 37);
    assert_true(brk_log_last(l, &seq, &arr));
    assert_int_equal(seq, 999);
    assert_int_equal(arr, 9990);
    assert_int_equal(brk_log_sync(l), 0);
    brk_log_close(l);
    l = log_open(dir, 0, BRK_FSYNC_EVERYSEC);
    assert_int_equal(brk_log_next_seq(l), 1000);
    assert_true(brk_log_last(l, &seq, &arr));
    assert_int_equal(seq, 999);
    log_fill(l, 1000, 10, 3);
    log_check(l, 0, 1010, 100);
    /* An empty append hands out the current counter and writes nothing. */
    uint64_t fs = 0, t = 0;
    assert_int_equal(brk_log_append(l, NULL, 0, &fs, &t), 0);
    assert_int_equal(fs, 1010);
    brk_log_close(l);
    /* Reopen without the index written at close: whole-segment scan, same result. */
    assert_int_equal(unlink(seg_path(dir, 0, ".idx")), 0);
    l = log_open(dir, 0, BRK_FSYNC_EVERYSEC);
    assert_int_equal(brk_log_next_seq(l), 1010);
    log_check(l, 0, 1010, 1000);
    brk_log_close(l);
    brk_log_close(NULL);
    tmpdir_free(dir);
}

static void test_log_rolls_at_size(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_log *l = log_open(dir, 16 << 10, BRK_FSYNC_NO);
    log_fill(l, 0, 2000, 10);
    size_t n = brk_log_segments(l);
    assert_true(n > 5);
    uint64_t firsts[256];
    assert_int_equal(list_segments(dir, firsts, 256), n);
    assert_int_equal(firsts[0], 0);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t sz = file_size(seg_path(dir, firsts[i], ".log"));
        total += sz;
        /* Batches are never split, so a segment stops just below the roll size. */
        assert_true(sz <= 16 << 10);
        if (i + 1 < n) {
            assert_true(sz > (16 << 10) - 10 * (BRK_SEG_FRAME_OVERHEAD + 209));
            assert_int_equal(access(seg_path(dir, firsts[i], ".idx"), F_OK), 0);
        }
    }
    assert_int_equal(brk_log_disk_bytes(l), total);
    /* A batch bigger than a segment goes whole into one segment. */
    log_fill(l, 2000, 200, 200);
    log_check(l, 0, 2200, 333);
    brk_log_close(l);
    l = log_open(dir, 16 << 10, BRK_FSYNC_NO);
    assert_int_equal(brk_log_segments(l), n + 1);
    log_check(l, 0, 2200, 10000);
    brk_log_close(l);
    tmpdir_free(dir);
}

static void test_log_read_by_counter_across_segments(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_log *l = log_open(dir, 8 << 10, BRK_FSYNC_NO);
    log_fill(l, 0, 1500, 7);
    assert_true(brk_log_segments(l) > 10);
    brk_log_batch b = {0};
    /* Start in every possible place, read across segment boundaries. */
    for (uint64_t from = 0; from < 1500; from += 37) {
        b.n = b.len = 0;
        assert_int_equal(brk_log_read(l, from, INT64_MIN, 250, SIZE_MAX, &b), 0);
        uint64_t want = 1500 - from < 250 ? 1500 - from : 250;
        assert_int_equal(b.n, want);
        for (size_t k = 0; k < b.n; k++) entry_check(&b, k, from + k);
    }
    /* Past the end: nothing. */
    b.n = b.len = 0;
    assert_int_equal(brk_log_read(l, 1500, INT64_MIN, 10, SIZE_MAX, &b), 0);
    assert_int_equal(b.n, 0);
    assert_int_equal(brk_log_read(l, 99999, INT64_MIN, 10, SIZE_MAX, &b), 0);
    assert_int_equal(b.n, 0);
    /* Reads append to a batch the caller did not reset. */
    assert_int_equal(brk_log_read(l, 10, INT64_MIN, 2, SIZE_MAX, &b), 0);
    assert_int_equal(brk_log_read(l, 700, INT64_MIN, 2, SIZE_MAX, &b), 0);
    assert_int_equal(b.n, 4);
    entry_check(&b, 0, 10);
    entry_check(&b, 1, 11);
    entry_check(&b, 2, 700);
    entry_check(&b, 3, 701);
    brk_log_batch_free(&b);
    brk_log_close(l);
    tmpdir_free(dir);
}

static void test_log_tail_follow_interleaved(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_log *l = log_open(dir, 32 << 10, BRK_FSYNC_NO);
    brk_log_batch b = {0};
    uint64_t pos = 0, appended = 0;
    /* A consumer following the tail with small reads while batches keep arriving (and the
     * segment keeps rolling); a second reader jumping around between its reads. */
    for (int round = 0; round < 400; round++) {
        uint64_t k = 1 + (uint64_t)(round % 9);
        log_fill(l, appended, k, 4);
        appended += k;
        for (;;) {
            b.n = b.len = 0;
            assert_int_equal(brk_log_read(l, pos, INT64_MIN, 3, SIZE_MAX, &b), 0);
            if (b.n == 0) break;
            for (size_t i = 0; i < b.n; i++) entry_check(&b, i, pos + i);
            pos += b.n;
        }
        assert_int_equal(pos, appended);
        uint64_t jump = (uint64_t)(round * 7919) % appended;
        b.n = b.len = 0;
        assert_int_equal(brk_log_read(l, jump, INT64_MIN, 2, SIZE_MAX, &b), 0);
        entry_check(&b, 0, jump);
    }
    assert_true(brk_log_segments(l) > 2);
    brk_log_batch_free(&b);
    brk_log_close(l);
    tmpdir_free(dir);
}

static void test_log_read_limits(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_log *l = log_open(dir, 4 << 10, BRK_FSYNC_NO);
    log_fill(l, 0, 300, 5);
    brk_log_batch b = {0};
    /* Count limit. */
    assert_int_equal(brk_log_read(l, 0, INT64_MIN, 17, SIZE_MAX, &b), 0);
    assert_int_equal(b.n, 17);
    /* Byte limit counts key + data; stops before the record that would exceed it. */
    size_t sum = 0, k = 0;
    for (; k < 40; k++) {
        rec_buf rb;
        brk_log_rec r = rec_make(100 + k, &rb);
        if (sum + r.pk_len + r.data_len > 3000) break;
        sum += r.pk_len + r.data_len;
    }
    b.n = b.len = 0;
    assert_int_equal(brk_log_read(l, 100, INT64_MIN, 1000, 3000, &b), 0);
    assert_int_equal(b.n, k);
    /* At least one record even when it alone exceeds the byte limit. */
    b.n = b.len = 0;
    assert_int_equal(brk_log_read(l, 101, INT64_MIN, 1000, 1, &b), 0);
    assert_int_equal(b.n, 1);
    entry_check(&b, 0, 101);
    b.n = b.len = 0;
    assert_int_equal(brk_log_read(l, 101, INT64_MIN, 0, SIZE_MAX, &b), 0);
    assert_int_equal(b.n, 0);
    /* min_arrival skips older records and they do not count against the limits. */
    b.n = b.len = 0;
    assert_int_equal(brk_log_read(l, 0, 2005, 3, SIZE_MAX, &b), 0);
    assert_int_equal(b.n, 3);
    entry_check(&b, 0, 201);
    brk_log_batch_free(&b);
    brk_log_close(l);
    tmpdir_free(dir);
}

static void test_log_time_seek(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_log *l = log_open(dir, 8 << 10, BRK_FSYNC_NO);
    assert_int_equal(brk_log_seek_time(l, 0), 0);
    log_fill(l, 0, 1000, 9); /* arrival = 10 * counter */
    assert_int_equal(brk_log_seek_time(l, INT64_MIN), 0);
    assert_int_equal(brk_log_seek_time(l, 0), 0);
    assert_int_equal(brk_log_seek_time(l, 1), 1);
    assert_int_equal(brk_log_seek_time(l, 5000), 500);
    assert_int_equal(brk_log_seek_time(l, 5001), 501);
    for (int64_t ts = 0; ts <= 9990; ts += 123)
        assert_int_equal(brk_log_seek_time(l, ts), (uint64_t)((ts + 9) / 10));
    assert_int_equal(brk_log_seek_time(l, 9990), 999);
    assert_int_equal(brk_log_seek_time(l, 9991), 1000);
    assert_int_equal(brk_log_first_seq(l, INT64_MIN), 0);
    assert_int_equal(brk_log_first_seq(l, 2345), 235);
    brk_log_close(l);
    tmpdir_free(dir);
}

static void test_log_retention_deletes_whole_segments(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_log *l = log_open(dir, 8 << 10, BRK_FSYNC_NO);
    log_fill(l, 0, 1000, 10);
    size_t n = brk_log_segments(l);
    uint64_t firsts[256];
    assert_int_equal(list_segments(dir, firsts, 256), n);
    assert_true(n > 4);
    /* Cutoff inside segment 2: segments 0 and 1 go, segment 2 stays whole. */
    int64_t cutoff = 10 * (int64_t)firsts[2] + 15;
    assert_int_equal(brk_log_retain(l, cutoff), 0);
    assert_int_equal(brk_log_segments(l), n - 2);
    uint64_t now[256];
    assert_int_equal(list_segments(dir, now, 256), n - 2);
    assert_int_equal(now[0], firsts[2]);
    assert_int_equal(access(seg_path(dir, firsts[0], ".idx"), F_OK), -1);
    /* Deleted counters read from the first retained one; min_arrival hides the rest. */
    brk_log_batch b = {0};
    assert_int_equal(brk_log_read(l, 0, INT64_MIN, 1, SIZE_MAX, &b), 0);
    entry_check(&b, 0, firsts[2]);
    b.n = b.len = 0;
    assert_int_equal(brk_log_read(l, 0, cutoff, 1, SIZE_MAX, &b), 0);
    entry_check(&b, 0, firsts[2] + 2);
    assert_int_equal(brk_log_first_seq(l, INT64_MIN), firsts[2]);
    assert_int_equal(brk_log_first_seq(l, cutoff), firsts[2] + 2);
    brk_log_batch_free(&b);
    /* Nothing older than the first retained record: nothing more goes. */
    assert_int_equal(brk_log_retain(l, cutoff), 0);
    assert_int_equal(brk_log_segments(l), n - 2);
    brk_log_close(l);
    tmpdir_free(dir);
}

static void test_log_counter_survives_deleting_all_segments(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_log *l = log_open(dir, 8 << 10, BRK_FSYNC_EVERYSEC);
    log_fill(l, 0, 500, 10);
    assert_int_equal(brk_log_retain(l, INT64_MAX), 0);
    assert_int_equal(brk_log_segments(l), 1);
    assert_int_equal(brk_log_next_seq(l), 500);
    uint64_t seq;
    assert_false(brk_log_last(l, &seq, NULL));
    uint64_t firsts[8];
    assert_int_equal(list_segments(dir, firsts, 8), 1);
    assert_int_equal(firsts[0], 500);
    brk_log_batch b = {0};
    assert_int_equal(brk_log_read(l, 0, INT64_MIN, 10, SIZE_MAX, &b), 0);
    assert_int_equal(b.n, 0);
    assert_int_equal(brk_log_first_seq(l, INT64_MIN), 500);
    /* Retention with an empty active segment does not roll again. */
    assert_int_equal(brk_log_retain(l, INT64_MAX), 0);
    assert_int_equal(list_segments(dir, firsts, 8), 1);
    brk_log_close(l);
    l = log_open(dir, 8 << 10, BRK_FSYNC_EVERYSEC);
    assert_int_equal(brk_log_next_seq(l), 500);
    log_fill(l, 500, 20, 4);
    log_check(l, 500, 520, 7);
    brk_log_close(l);
    tmpdir_free(dir);
}

static void test_log_index_rebuilt_when_deleted(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_log *l = log_open(dir, 64 << 10, BRK_FSYNC_NO);
    log_fill(l, 0, 3000, 50);
    size_t n = brk_log_segments(l);
    assert_true(n >= 3);
    brk_log_close(l);
    uint64_t firsts[64];
    assert_int_equal(list_segments(dir, firsts, 64), n);
    for (size_t i = 0; i < n; i++) assert_int_equal(unlink(seg_path(dir, firsts[i], ".idx")), 0);
    l = log_open(dir, 64 << 10, BRK_FSYNC_NO);
    for (size_t i = 0; i + 1 < n; i++)
        assert_int_equal(access(seg_path(dir, firsts[i], ".idx"), F_OK), 0);
    assert_int_equal(brk_log_next_seq(l), 3000);
    brk_log_batch b = {0};
    for (uint64_t from = 0; from < 3000; from += 211) {
        b.n = b.len = 0;
        assert_int_equal(brk_log_read(l, from, INT64_MIN, 3, SIZE_MAX, &b), 0);
        assert_int_equal(b.n, 3);
        entry_check(&b, 0, from);
    }
    assert_int_equal(brk_log_seek_time(l, 12345), 1235);
    brk_log_batch_free(&b);
    brk_log_close(l);
    tmpdir_free(dir);
}

static void test_log_torn_tail_every_offset(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_log *l = log_open(dir, 4 << 10, BRK_FSYNC_NO);
    log_fill(l, 0, 60, 6);
    uint64_t firsts[64];
    size_t n = list_segments(dir, firsts, 64);
    assert_true(n >= 2);
    uint64_t last_first = firsts[n - 1];
    char path[512];
    strcpy(path, seg_path(dir, last_first, ".log"));
    uint64_t before = file_size(path);
    rec_buf rb;
    brk_log_rec r = rec_make(60, &rb);
    uint64_t fs, t;
    assert_int_equal(brk_log_append(l, &r, 1, &fs, &t), 0);
    assert_int_equal(fs, 60);
    uint64_t full = file_size(path);
    brk_log_close(l);
    assert_int_equal(unlink(seg_path(dir, last_first, ".idx")), 0);
    for (uint64_t cut = before; cut < full; cut++) {
        assert_int_equal(truncate(path, (off_t)cut), 0);
        l = log_open(dir, 4 << 10, BRK_FSYNC_NO);
        assert_int_equal(brk_log_next_seq(l), 60);
        assert_int_equal(file_size(path), before);
        log_check(l, 0, 60, 1000);
        /* Put the record back for the next cut. */
        assert_int_equal(brk_log_append(l, &r, 1, &fs, &t), 0);
        assert_int_equal(fs, 60);
        assert_int_equal(file_size(path), full);
        brk_log_close(l);
        assert_int_equal(unlink(seg_path(dir, last_first, ".idx")), 0);
    }
    tmpdir_free(dir);
}

static void test_log_corrupt_tail_byte_truncated(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_log *l = log_open(dir, 0, BRK_FSYNC_NO);
    log_fill(l, 0, 100, 10);
    log_fill(l, 100, 100, 10);
    brk_log_close(l);
    /* An index from a clean close covers everything: the open scans from its last entry, so
     * a flipped byte in that range is caught at open. Flip a byte of record 150. */
    brk_log_batch b = {0};
    l = log_open(dir, 0, BRK_FSYNC_NO);
    brk_log_close(l);
    uint64_t off = BRK_SEG_HEADER_SIZE;
    for (uint64_t i = 0; i < 150; i++) {
        rec_buf rb;
        brk_log_rec r = rec_make(i, &rb);
        off += brk_segment_frame_size(r.pk_len, r.data_len);
    }
    const char *path = seg_path(dir, 0, ".log");
    int fd = open(path, O_RDWR);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, (off_t)off + 30), 1);
    c ^= 1;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off + 30), 1);
    close(fd);
    l = log_open(dir, 0, BRK_FSYNC_NO);
    assert_int_equal(brk_log_next_seq(l), 150);
    assert_int_equal(file_size(seg_path(dir, 0, ".log")), off);
    log_check(l, 0, 150, 64);
    log_fill(l, 150, 5, 5);
    log_check(l, 0, 155, 64);
    brk_log_batch_free(&b);
    brk_log_close(l);
    tmpdir_free(dir);
}

static void test_log_corrupt_sealed_segment_reported(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_log *l = log_open(dir, 4 << 10, BRK_FSYNC_NO);
    log_fill(l, 0, 200, 4);
    brk_log_close(l);
    uint64_t firsts[128];
    size_t n = list_segments(dir, firsts, 128);
    assert_true(n >= 4);
    /* Flip a byte in the middle of sealed segment 1. */
    const char *p1 = seg_path(dir, firsts[1], ".log");
    uint64_t mid = file_size(p1) / 2;
    int fd = open(p1, O_RDWR);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, (off_t)mid), 1);
    c ^= 0x80;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)mid), 1);
    close(fd);
    /* With its index intact: opens, and reading over the flip is SL_ECORRUPT, never data. */
    l = log_open(dir, 4 << 10, BRK_FSYNC_NO);
    assert_int_equal(brk_log_next_seq(l), 200);
    brk_log_batch b = {0};
    assert_int_equal(brk_log_read(l, firsts[1], INT64_MIN, 1000, SIZE_MAX, &b), SL_ECORRUPT);
    assert_int_equal(b.n, 0);
    assert_int_equal(b.len, 0);
    /* Other segments are still readable. */
    assert_int_equal(brk_log_read(l, firsts[2], INT64_MIN, 5, SIZE_MAX, &b), 0);
    entry_check(&b, 0, firsts[2]);
    brk_log_close(l);
    /* Without its index: the rebuild stops at the flip; records before it read fine, the
     * gap up to the next segment is SL_ECORRUPT; appends continue normally. */
    assert_int_equal(unlink(seg_path(dir, firsts[1], ".idx")), 0);
    l = log_open(dir, 4 << 10, BRK_FSYNC_NO);
    assert_int_equal(brk_log_next_seq(l), 200);
    b.n = b.len = 0;
    assert_int_equal(brk_log_read(l, firsts[1], INT64_MIN, 1000, SIZE_MAX, &b), 0);
    assert_true(b.n > 0);
    uint64_t good_end = firsts[1] + b.n;
    assert_true(good_end < firsts[2]);
    for (size_t k = 0; k < b.n; k++) entry_check(&b, k, firsts[1] + k);
    b.n = b.len = 0;
    assert_int_equal(brk_log_read(l, good_end, INT64_MIN, 1000, SIZE_MAX, &b), SL_ECORRUPT);
    assert_int_equal(b.n, 0);
    /* ...unless retention already hides everything up to the next segment. */
    assert_int_equal(brk_log_read(l, good_end, 10 * (int64_t)firsts[2] + 5, 3, SIZE_MAX, &b),
                     0);
    entry_check(&b, 0, firsts[2] + 1);
    log_fill(l, 200, 3, 3);
    brk_log_batch_free(&b);
    brk_log_close(l);
    tmpdir_free(dir);
}

static void test_log_append_rollback(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_log *l = log_open(dir, 0, BRK_FSYNC_NO);
    log_fill(l, 0, 20, 5);
    const char *path = seg_path(dir, 0, ".log");
    uint64_t size = file_size(path);
    /* RLIMIT_FSIZE makes the write of the next batch stop part way (short write, then
     * EFBIG): the half batch must be cut off again and nothing acknowledged. */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = size + 100;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    rec_buf rb[10];
    brk_log_rec r[10];
    for (int i = 0; i < 10; i++) r[i] = rec_make(20 + (uint64_t)i, &rb[i]);
    uint64_t fs = 77, t = 77;
    assert_int_equal(brk_log_append(l, r, 10, &fs, &t), -EFBIG);
    assert_int_equal(fs, 77); /* out-params untouched on failure */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(file_size(path), size);
    assert_int_equal(brk_log_next_seq(l), 20);
    log_check(l, 0, 20, 100);
    /* The log goes on with consecutive counters. */
    assert_int_equal(brk_log_append(l, r, 10, &fs, &t), 0);
    assert_int_equal(fs, 20);
    log_check(l, 0, 30, 100);
    brk_log_close(l);
    l = log_open(dir, 0, BRK_FSYNC_NO);
    log_check(l, 0, 30, 7);
    brk_log_close(l);
    signal(SIGXFSZ, SIG_DFL);
    tmpdir_free(dir);
}

/* Group commit: appenders serialise appends with their own lock (as the broker does) and
 * wait for durability outside it; a flusher thread calls brk_log_sync meanwhile. */
typedef struct gc_ctx {
    brk_log *l;
    pthread_mutex_t *mu;
    int id;
    int rounds;
    uint64_t *firsts; /* per round: first counter */
    size_t per;
    int failures;
    atomic_int *stop;
} gc_ctx;

static void *gc_appender(void *arg)
{
    gc_ctx *c = arg;
    for (int i = 0; i < c->rounds; i++) {
        rec_buf rb[8];
        brk_log_rec r[8];
        uint64_t fs, t;
        pthread_mutex_lock(c->mu);
        uint64_t next = brk_log_next_seq(c->l);
        for (size_t k = 0; k < c->per; k++) r[k] = rec_make(next + k, &rb[k]);
        int rc = brk_log_append(c->l, r, c->per, &fs, &t);
        pthread_mutex_unlock(c->mu);
        if (rc || fs != next || t != next + c->per) c->failures++;
        if (brk_log_wait_durable(c->l, t) != 0) c->failures++;
        c->firsts[i] = fs;
    }
    return NULL;
}

static void *gc_flusher(void *arg)
{
    gc_ctx *c = arg;
    while (!atomic_load(c->stop)) {
        if (brk_log_sync(c->l) != 0) c->failures++;
        usleep(500);
    }
    return NULL;
}

static void test_log_group_commit_threads(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    /* Small segments so that rolls (pending fds) happen while others wait. */
    brk_log *l = log_open(dir, 16 << 10, BRK_FSYNC_ALWAYS);
    enum { NT = 4, ROUNDS = 60, PER = 5 };
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_t th[NT + 1];
    gc_ctx c[NT + 1];
    uint64_t firsts[NT][ROUNDS];
    atomic_int stop = 0;
    for (int i = 0; i <= NT; i++) {
        c[i] = (gc_ctx){.l = l, .mu = &mu, .id = i, .rounds = ROUNDS,
                        .firsts = i < NT ? firsts[i] : NULL, .per = PER, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, i < NT ? gc_appender : gc_flusher, &c[i]),
                         0);
    }
    for (int i = 0; i < NT; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    atomic_store(&stop, 1);
    assert_int_equal(pthread_join(th[NT], NULL), 0);
    for (int i = 0; i <= NT; i++) assert_int_equal(c[i].failures, 0);
    /* Every batch got its own consecutive range; together they cover 0..N-1 exactly. */
    uint64_t total = (uint64_t)NT * ROUNDS * PER;
    assert_int_equal(brk_log_next_seq(l), total);
    uint8_t *seen = calloc(total / PER, 1);
    for (int i = 0; i < NT; i++)
        for (int k = 0; k < ROUNDS; k++) {
            assert_int_equal(firsts[i][k] % PER, 0);
            assert_int_equal(seen[firsts[i][k] / PER], 0);
            seen[firsts[i][k] / PER] = 1;
        }
    free(seen);
    assert_true(brk_log_segments(l) > 3);
    log_check(l, 0, total, 97);
    /* Nothing pending: sync and waits on old tickets return at once. */
    assert_int_equal(brk_log_sync(l), 0);
    assert_int_equal(brk_log_wait_durable(l, 1), 0);
    assert_int_equal(brk_log_wait_durable(l, total), 0);
    brk_log_close(l);
    l = log_open(dir, 16 << 10, BRK_FSYNC_ALWAYS);
    log_check(l, 0, total, 500);
    brk_log_close(l);
    tmpdir_free(dir);
}

static void test_log_open_rejects_bad_input(void **state)
{
    (void)state;
    brk_log *l = NULL;
    sl_err e = {0};
    brk_log_opts o = {0};
    assert_int_equal(brk_log_open(&l, "", &o, &e), SL_EINVAL);
    assert_int_equal(e.code, SL_EINVAL);
    assert_int_equal(brk_log_open(&l, "/proc/version/x", &o, &e), -ENOTDIR);
    assert_null(l);
    /* A segment renamed below its predecessor's end would mean two records with one
     * counter: refused with SL_ECORRUPT, not guessed at. */
    char *dir = tmpdir_new();
    l = log_open(dir, 4 << 10, BRK_FSYNC_NO);
    log_fill(l, 0, 100, 10);
    brk_log_close(l);
    uint64_t firsts[64];
    size_t n = list_segments(dir, firsts, 64);
    assert_true(n >= 3);
    char a[512], b2[512];
    strcpy(a, seg_path(dir, firsts[1], ".log"));
    strcpy(b2, seg_path(dir, firsts[1] - 1, ".log"));
    assert_int_equal(rename(a, b2), 0);
    assert_int_equal(brk_log_open(&l, dir, &o, &e), SL_ECORRUPT);
    assert_non_null(strstr(e.msg, "overlaps"));
    /* Renamed above it instead: its header disagrees with its name, so it holds no record,
     * and the counters it should hold read as SL_ECORRUPT. */
    strcpy(a, seg_path(dir, firsts[1] + 1, ".log"));
    assert_int_equal(rename(b2, a), 0);
    l = log_open(dir, 4 << 10, BRK_FSYNC_NO);
    brk_log_batch b = {0};
    assert_int_equal(brk_log_read(l, firsts[1], INT64_MIN, 10, SIZE_MAX, &b), SL_ECORRUPT);
    assert_int_equal(brk_log_read(l, firsts[2], INT64_MIN, 1, SIZE_MAX, &b), 0);
    entry_check(&b, 0, firsts[2]);
    brk_log_batch_free(&b);
    brk_log_close(l);
    tmpdir_free(dir);
}

static void test_log_alloc_failures_are_errors(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_log *l = log_open(dir, 4 << 10, BRK_FSYNC_EVERYSEC);
    log_fill(l, 0, 300, 10);
    brk_log_close(l);
    assert_int_equal(unlink(seg_path(dir, 0, ".idx")), 0);
    /* Fail each allocation of an open + read in turn: an error or success, never a crash or
     * a wrong answer. */
    int failed = 0;
    for (long k = 1; k < 200; k++) {
        sl_err e;
        brk_log_opts o = {.segment_bytes = 4 << 10, .fsync = BRK_FSYNC_EVERYSEC};
        l = NULL;
        sl_alloc_fail_after(k);
        int rc = brk_log_open(&l, dir, &o, &e);
        brk_log_batch b = {0};
        int rr = rc == 0 ? brk_log_read(l, 0, INT64_MIN, 1000, SIZE_MAX, &b) : 0;
        sl_alloc_fail_after(0);
        if (rc) {
            assert_int_equal(rc, SL_ENOMEM);
            assert_null(l);
            failed++;
            continue;
        }
        if (rr) assert_int_equal(rr, SL_ENOMEM);
        else assert_int_equal(b.n, 300);
        brk_log_batch_free(&b);
        assert_int_equal(brk_log_next_seq(l), 300);
        brk_log_close(l);
    }
    assert_true(failed > 0);
    l = log_open(dir, 4 << 10, BRK_FSYNC_EVERYSEC);
    log_check(l, 0, 300, 1000);
    brk_log_close(l);
    tmpdir_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_reopen_keeps_next_seq),
        cmocka_unit_test(test_log_rolls_at_size),
        cmocka_unit_test(test_log_read_by_counter_across_segments),
        cmocka_unit_test(test_log_tail_follow_interleaved),
        cmocka_unit_test(test_log_read_limits),
        cmocka_unit_test(test_log_time_seek),
        cmocka_unit_test(test_log_retention_deletes_whole_segments),
        cmocka_unit_test(test_log_counter_survives_deleting_all_segments),
        cmocka_unit_test(test_log_index_rebuilt_when_deleted),
        cmocka_unit_test(test_log_torn_tail_every_offset),
        cmocka_unit_test(test_log_corrupt_tail_byte_truncated),
        cmocka_unit_test(test_log_corrupt_sealed_segment_reported),
        cmocka_unit_test(test_log_append_rollback),
        cmocka_unit_test(test_log_group_commit_threads),
        cmocka_unit_test(test_log_open_rejects_bad_input),
        cmocka_unit_test(test_log_alloc_failures_are_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
