/* test_broker_segment.c — CRC32C, record framing, one segment file: append/read, torn-tail
 * recovery, sparse index load/rebuild, time seek. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/crc32c.h"
#include "broker/segment.h"
#include "broker/shard_log.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static char *tmpdir_new(void)
{
    char *d = strdup("/tmp/sl_segtest_XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void tmpdir_free(char *d)
{
    assert_int_equal(brk_log_remove_dir(d), 0);
    free(d);
}

static char *seg_path(const char *dir, uint64_t first, const char *ext)
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

static uint8_t *file_read(const char *path, size_t *n)
{
    *n = (size_t)file_size(path);
    uint8_t *b = malloc(*n + 1);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, b, *n, 0), (ssize_t)*n);
    close(fd);
    return b;
}

static void file_write(const char *path, const uint8_t *b, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    close(fd);
}

static void flip_byte(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    uint8_t c;
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

/* Record i: key "k<i>", data of (i * 7) % 300 bytes derived from i. */
static size_t rec_make(uint64_t i, char *pk, uint8_t *data)
{
    sprintf(pk, "k%llu", (unsigned long long)i);
    size_t n = (size_t)((i * 7) % 300);
    for (size_t j = 0; j < n; j++) data[j] = (uint8_t)(i * 31 + j);
    return n;
}

/* Appends records first..first+n-1 one per call (arrival = 1000 + i). */
static void seg_fill(brk_segment *s, uint64_t first, uint64_t n, brk_segment_wbuf *wb)
{
    int64_t floor = INT64_MIN;
    for (uint64_t i = first; i < first + n; i++) {
        char pk[32];
        uint8_t data[300];
        size_t dl = rec_make(i, pk, data);
        brk_log_rec r = {.arrival_ms = 1000 + (int64_t)i, .pk = pk, .pk_len = strlen(pk),
                         .data = data, .data_len = dl};
        assert_int_equal(brk_segment_append(s, &r, 1, &floor, wb), 0);
    }
}

/* Reads every record of s and checks it is exactly records first..first+n-1. */
static void seg_check(brk_segment *s, uint64_t first, uint64_t n)
{
    brk_log_batch b = {0};
    brk_segment_budget bg = {.recs_left = UINT32_MAX, .bytes_left = SIZE_MAX};
    assert_int_equal(brk_segment_read(s, 0, INT64_MIN, &bg, &b), 0);
    assert_int_equal(b.n, n);
    for (uint64_t k = 0; k < n; k++) {
        uint64_t i = first + k;
        char pk[32];
        uint8_t data[300];
        size_t dl = rec_make(i, pk, data);
        assert_int_equal(b.e[k].seq, i);
        assert_int_equal(b.e[k].arrival_ms, 1000 + (int64_t)i);
        assert_int_equal(b.e[k].pk_len, strlen(pk));
        assert_memory_equal(b.buf + b.e[k].pk_off, pk, strlen(pk));
        assert_int_equal(b.e[k].data_len, dl);
        if (dl) assert_memory_equal(b.buf + b.e[k].data_off, data, dl);
    }
    brk_log_batch_free(&b);
}

/* ---- CRC32C ------------------------------------------------------------------------------- */

static void test_crc32c_standard_vector(void **state)
{
    (void)state;
    assert_int_equal(brk_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(brk_crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(brk_crc32c(0, "", 0), 0);
    /* 32 bytes of zeros: RFC 3720 B.4 test pattern. */
    uint8_t z[32] = {0};
    assert_int_equal(brk_crc32c(0, z, 32), 0x8A9136AAu);
    uint8_t ff[32];
    memset(ff, 0xff, sizeof ff);
    assert_int_equal(brk_crc32c(0, ff, 32), 0x62A8AB43u);
}

static void test_crc32c_hw_matches_sw_any_alignment(void **state)
{
    (void)state;
    uint8_t buf[1100];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t off = 0; off < 9; off++) {
        for (size_t n = 0; n < 1000; n += 37) {
            uint32_t a = brk_crc32c(0, buf + off, n);
            assert_int_equal(a, brk_crc32c_sw(0, buf + off, n));
            /* Extending in two pieces equals one pass. */
            size_t h = n / 3;
            assert_int_equal(brk_crc32c(brk_crc32c(0, buf + off, h), buf + off + h, n - h), a);
        }
    }
}

/* ---- framing ------------------------------------------------------------------------------ */

static void test_frame_round_trip(void **state)
{
    (void)state;
    uint8_t buf[256];
    const char *pk = "partition-key";
    const uint8_t data[5] = {0, 1, 2, 0xff, 0};
    size_t n = brk_segment_frame_encode(buf, 0x0102030405060708ull, -42, pk, strlen(pk), data,
                                        sizeof data);
    assert_int_equal(n, brk_segment_frame_size(strlen(pk), sizeof data));
    assert_int_equal(n, BRK_SEG_FRAME_OVERHEAD + strlen(pk) + sizeof data);
    /* Explicit little-endian fields. */
    assert_int_equal(buf[0], 0xD5);
    assert_int_equal(buf[1], 1);
    assert_int_equal(buf[4], n);
    assert_int_equal(buf[12], 0x08);
    assert_int_equal(buf[19], 0x01);
    brk_segment_frame f;
    assert_int_equal(brk_segment_frame_decode(buf, n, &f), (int64_t)n);
    assert_int_equal(f.seq, 0x0102030405060708ull);
    assert_int_equal(f.arrival_ms, -42);
    assert_int_equal(f.pk_len, strlen(pk));
    assert_memory_equal(f.pk, pk, strlen(pk));
    assert_int_equal(f.data_len, sizeof data);
    assert_memory_equal(f.data, data, sizeof data);
    /* Every strict prefix is "need more bytes", never a frame. */
    for (size_t k = 0; k < n; k++) assert_int_equal(brk_segment_frame_decode(buf, k, &f), 0);
    /* Every flipped byte is detected. */
    for (size_t k = 0; k < n; k++) {
        buf[k] ^= 0x10;
        assert_true(brk_segment_frame_decode(buf, n, &f) <= 0);
        buf[k] ^= 0x10;
    }
    /* Empty key and data are fine. */
    n = brk_segment_frame_encode(buf, 7, 1, NULL, 0, NULL, 0);
    assert_int_equal(n, BRK_SEG_FRAME_OVERHEAD);
    assert_int_equal(brk_segment_frame_decode(buf, n, &f), (int64_t)n);
    assert_int_equal(f.pk_len, 0);
    assert_int_equal(f.data_len, 0);
}

static void test_frame_rejects_bad_lengths(void **state)
{
    (void)state;
    uint8_t buf[128];
    brk_segment_frame f;
    size_t n = brk_segment_frame_encode(buf, 1, 1, "ab", 2, "cd", 2);
    buf[4] = 10; /* total length below the fixed overhead */
    assert_int_equal(brk_segment_frame_decode(buf, n, &f), SL_ECORRUPT);
    n = brk_segment_frame_encode(buf, 1, 1, "ab", 2, "cd", 2);
    buf[7] = 0x7f; /* absurd length */
    assert_int_equal(brk_segment_frame_decode(buf, n, &f), SL_ECORRUPT);
    n = brk_segment_frame_encode(buf, 1, 1, "ab", 2, "cd", 2);
    buf[0] = 0;
    assert_int_equal(brk_segment_frame_decode(buf, 1, &f), SL_ECORRUPT);
    n = brk_segment_frame_encode(buf, 1, 1, "ab", 2, "cd", 2);
    buf[28] = 3; /* key length inconsistent with total (CRC would catch it too) */
    assert_int_equal(brk_segment_frame_decode(buf, n, &f), SL_ECORRUPT);
}

/* ---- segment files ------------------------------------------------------------------------ */

static void test_segment_append_read_round_trip(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_segment *s = NULL;
    brk_segment_wbuf wb = {0};
    assert_int_equal(brk_segment_create(&s, dir, 100), 0);
    assert_true(brk_segment_empty(s));
    assert_int_equal(brk_segment_size(s), BRK_SEG_HEADER_SIZE);
    seg_fill(s, 100, 2000, &wb);
    assert_int_equal(brk_segment_first(s), 100);
    assert_int_equal(brk_segment_end(s), 2100);
    assert_int_equal(brk_segment_first_arrival(s), 1100);
    assert_int_equal(brk_segment_last_arrival(s), 1000 + 2099);
    assert_int_equal(brk_segment_size(s), file_size(seg_path(dir, 100, ".log")));
    assert_true(brk_segment_index_entries(s) > 2); /* ~350 KiB of records */
    seg_check(s, 100, 2000);
    /* Read from the middle with a record limit. */
    brk_log_batch b = {0};
    brk_segment_budget bg = {.recs_left = 3, .bytes_left = SIZE_MAX};
    assert_int_equal(brk_segment_read(s, 1500, INT64_MIN, &bg, &b), 0);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.e[0].seq, 1500);
    assert_true(bg.full);
    brk_log_batch_free(&b);
    /* Duplicate create fails. */
    brk_segment *dup = NULL;
    assert_int_equal(brk_segment_create(&dup, dir, 100), -EEXIST);
    /* Reopen as the active segment (nothing torn) and as sealed: same content. */
    assert_int_equal(brk_segment_write_index(s), 0);
    brk_segment_close(s);
    uint64_t cut = 99;
    assert_int_equal(brk_segment_open(&s, dir, 100, true, &cut), 0);
    assert_int_equal(cut, 0);
    assert_int_equal(brk_segment_end(s), 2100);
    seg_check(s, 100, 2000);
    brk_segment_close(s);
    assert_int_equal(brk_segment_open(&s, dir, 100, false, NULL), 0);
    assert_false(brk_segment_corrupt(s));
    seg_check(s, 100, 2000);
    brk_segment_close(s);
    sl_free(wb.p);
    tmpdir_free(dir);
}

static void test_segment_truncates_torn_tail(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_segment *s = NULL;
    brk_segment_wbuf wb = {0};
    assert_int_equal(brk_segment_create(&s, dir, 0), 0);
    seg_fill(s, 0, 40, &wb);
    uint64_t before_last = brk_segment_size(s);
    seg_fill(s, 40, 1, &wb);
    uint64_t full = brk_segment_size(s);
    brk_segment_close(s);
    char path[512];
    strcpy(path, seg_path(dir, 0, ".log"));
    size_t n;
    uint8_t *orig = file_read(path, &n);
    assert_int_equal(n, full);
    /* Cut the file at every byte offset inside the last record. */
    for (uint64_t cut = before_last; cut < full; cut++) {
        file_write(path, orig, (size_t)cut);
        uint64_t truncated = 0;
        assert_int_equal(brk_segment_open(&s, dir, 0, true, &truncated), 0);
        assert_int_equal(truncated, cut - before_last);
        assert_int_equal(brk_segment_end(s), 40);
        assert_int_equal(brk_segment_last_arrival(s), 1039);
        assert_int_equal(file_size(path), before_last);
        seg_check(s, 0, 40);
        /* Appending after recovery continues the counters. */
        seg_fill(s, 40, 1, &wb);
        seg_check(s, 0, 41);
        brk_segment_close(s);
    }
    free(orig);
    sl_free(wb.p);
    tmpdir_free(dir);
}

static void test_segment_detects_corrupt_tail_byte(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_segment *s = NULL;
    brk_segment_wbuf wb = {0};
    assert_int_equal(brk_segment_create(&s, dir, 0), 0);
    seg_fill(s, 0, 30, &wb);
    uint64_t off30 = brk_segment_size(s);
    seg_fill(s, 30, 10, &wb);
    brk_segment_close(s);
    char path[512];
    strcpy(path, seg_path(dir, 0, ".log"));
    /* A flipped byte in the data of record 30: it and everything after it go. */
    flip_byte(path, off30 + BRK_SEG_FRAME_OVERHEAD + 3);
    uint64_t truncated = 0;
    assert_int_equal(brk_segment_open(&s, dir, 0, true, &truncated), 0);
    assert_true(truncated > 0);
    assert_int_equal(brk_segment_end(s), 30);
    assert_int_equal(file_size(path), off30);
    seg_check(s, 0, 30);
    brk_segment_close(s);
    /* A flipped byte in the CRC field of record 29's frame header. */
    uint64_t off29 = off30 - brk_segment_frame_size(3, (29 * 7) % 300);
    flip_byte(path, off29 + 9);
    assert_int_equal(brk_segment_open(&s, dir, 0, true, &truncated), 0);
    assert_int_equal(brk_segment_end(s), 29);
    brk_segment_close(s);
    sl_free(wb.p);
    tmpdir_free(dir);
}

static void test_segment_torn_header_rewritten(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    char path[512];
    strcpy(path, seg_path(dir, 77, ".log"));
    const uint8_t partial[10] = {'S', 'L', 'S', 'G', 1, 0};
    file_write(path, partial, sizeof partial); /* crash while rolling */
    brk_segment *s = NULL;
    brk_segment_wbuf wb = {0};
    assert_int_equal(brk_segment_open(&s, dir, 77, true, NULL), 0);
    assert_true(brk_segment_empty(s));
    assert_int_equal(brk_segment_end(s), 77);
    assert_int_equal(file_size(path), BRK_SEG_HEADER_SIZE);
    seg_fill(s, 77, 3, &wb);
    brk_segment_close(s);
    assert_int_equal(brk_segment_open(&s, dir, 77, true, NULL), 0);
    seg_check(s, 77, 3);
    brk_segment_close(s);
    /* A sealed segment with a bad header holds no record and is marked corrupt. */
    flip_byte(path, 2);
    assert_int_equal(brk_segment_open(&s, dir, 77, false, NULL), 0);
    assert_true(brk_segment_corrupt(s));
    assert_true(brk_segment_empty(s));
    brk_segment_close(s);
    sl_free(wb.p);
    tmpdir_free(dir);
}

static void test_segment_foreign_header_refused(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_segment *s = NULL;
    brk_segment_wbuf wb = {0};
    assert_int_equal(brk_segment_create(&s, dir, 5), 0);
    seg_fill(s, 5, 4, &wb);
    brk_segment_close(s);
    char a[512], b[512];
    strcpy(a, seg_path(dir, 5, ".log"));
    strcpy(b, seg_path(dir, 6, ".log"));
    uint64_t size = file_size(a);
    /* Intact header naming another counter (renamed file): refused, not cut. */
    assert_int_equal(rename(a, b), 0);
    s = NULL;
    assert_int_equal(brk_segment_open(&s, dir, 6, true, NULL), SL_ECORRUPT);
    assert_null(s);
    assert_int_equal(file_size(b), size);
    assert_int_equal(rename(b, a), 0);
    /* A header of an unknown (future) version: refused as well. */
    flip_byte(a, 4);
    assert_int_equal(brk_segment_open(&s, dir, 5, true, NULL), SL_ECORRUPT);
    assert_int_equal(file_size(a), size);
    flip_byte(a, 4);
    assert_int_equal(brk_segment_open(&s, dir, 5, true, NULL), 0);
    seg_check(s, 5, 4);
    brk_segment_close(s);
    sl_free(wb.p);
    tmpdir_free(dir);
}

static void test_segment_rebuilds_missing_or_stale_index(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_segment *s = NULL;
    brk_segment_wbuf wb = {0};
    assert_int_equal(brk_segment_create(&s, dir, 5), 0);
    seg_fill(s, 5, 3000, &wb);
    size_t entries = brk_segment_index_entries(s);
    assert_true(entries > 5);
    assert_int_equal(brk_segment_write_index(s), 0);
    brk_segment_close(s);
    char ipath[512];
    strcpy(ipath, seg_path(dir, 5, ".idx"));
    /* Missing: rebuilt from the log, identical entries, file written back. */
    assert_int_equal(unlink(ipath), 0);
    assert_int_equal(brk_segment_open(&s, dir, 5, false, NULL), 0);
    assert_int_equal(brk_segment_index_entries(s), entries);
    assert_int_equal(brk_segment_end(s), 3005);
    assert_int_equal(access(ipath, F_OK), 0);
    seg_check(s, 5, 3000);
    brk_segment_close(s);
    /* Damaged index file: its CRC fails, it is rebuilt. */
    flip_byte(ipath, 80);
    assert_int_equal(brk_segment_open(&s, dir, 5, false, NULL), 0);
    assert_int_equal(brk_segment_index_entries(s), entries);
    seg_check(s, 5, 3000);
    brk_segment_close(s);
    /* Stale index (log shorter than when it was written, cut mid-frame): rebuilt, and the
     * sealed segment ends at its last whole record, flagged corrupt, file untouched. */
    char lpath[512];
    strcpy(lpath, seg_path(dir, 5, ".log"));
    uint64_t sz = file_size(lpath);
    assert_int_equal(truncate(lpath, (off_t)(sz - 5)), 0);
    assert_int_equal(brk_segment_open(&s, dir, 5, false, NULL), 0);
    assert_true(brk_segment_corrupt(s));
    assert_int_equal(brk_segment_end(s), 3004);
    assert_int_equal(file_size(lpath), sz - 5);
    seg_check(s, 5, 2999);
    brk_segment_close(s);
    sl_free(wb.p);
    tmpdir_free(dir);
}

static void test_segment_read_reports_corrupt_frame(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_segment *s = NULL;
    brk_segment_wbuf wb = {0};
    assert_int_equal(brk_segment_create(&s, dir, 0), 0);
    seg_fill(s, 0, 10, &wb);
    uint64_t off10 = brk_segment_size(s);
    seg_fill(s, 10, 10, &wb);
    assert_int_equal(brk_segment_write_index(s), 0);
    brk_segment_close(s);
    /* Sealed + valid index: the flip is not seen at open, only when the bytes are read. */
    flip_byte(seg_path(dir, 0, ".log"), off10 + 20);
    assert_int_equal(brk_segment_open(&s, dir, 0, false, NULL), 0);
    brk_log_batch b = {0};
    brk_segment_budget bg = {.recs_left = 100, .bytes_left = SIZE_MAX};
    assert_int_equal(brk_segment_read(s, 0, INT64_MIN, &bg, &b), SL_ECORRUPT);
    b.n = b.len = 0;
    bg = (brk_segment_budget){.recs_left = 5, .bytes_left = SIZE_MAX};
    assert_int_equal(brk_segment_read(s, 0, INT64_MIN, &bg, &b), 0); /* before the flip */
    assert_int_equal(b.n, 5);
    brk_log_batch_free(&b);
    brk_segment_close(s);
    sl_free(wb.p);
    tmpdir_free(dir);
}

static void test_segment_seek_time(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_segment *s = NULL;
    brk_segment_wbuf wb = {0};
    assert_int_equal(brk_segment_create(&s, dir, 0), 0);
    seg_fill(s, 0, 5000, &wb); /* arrival = 1000 + counter */
    int rc = 0;
    assert_int_equal(brk_segment_seek_time(s, 0, &rc), 0);
    assert_int_equal(brk_segment_seek_time(s, 1000, &rc), 0);
    assert_int_equal(brk_segment_seek_time(s, 1001, &rc), 1);
    assert_int_equal(brk_segment_seek_time(s, 4321, &rc), 3321);
    assert_int_equal(brk_segment_seek_time(s, 5999, &rc), 4999);
    assert_int_equal(brk_segment_seek_time(s, 6000, &rc), 5000);
    assert_int_equal(rc, 0);
    /* min_arrival on reads skips by arrival using the index. */
    brk_log_batch b = {0};
    brk_segment_budget bg = {.recs_left = 2, .bytes_left = SIZE_MAX};
    assert_int_equal(brk_segment_read(s, 10, 4500, &bg, &b), 0);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.e[0].seq, 3500);
    brk_log_batch_free(&b);
    brk_segment_close(s);
    sl_free(wb.p);
    tmpdir_free(dir);
}

static void test_segment_append_clamps_and_validates(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    brk_segment *s = NULL;
    brk_segment_wbuf wb = {0};
    assert_int_equal(brk_segment_create(&s, dir, 0), 0);
    int64_t floor = 500;
    brk_log_rec r[3] = {
        {.arrival_ms = 400, .pk = "a", .pk_len = 1},
        {.arrival_ms = 600, .pk = "b", .pk_len = 1},
        {.arrival_ms = 550, .pk = "c", .pk_len = 1},
    };
    assert_int_equal(brk_segment_append(s, r, 3, &floor, &wb), 0);
    assert_int_equal(floor, 600);
    brk_log_batch b = {0};
    brk_segment_budget bg = {.recs_left = 10, .bytes_left = SIZE_MAX};
    assert_int_equal(brk_segment_read(s, 0, INT64_MIN, &bg, &b), 0);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.e[0].arrival_ms, 500);
    assert_int_equal(b.e[1].arrival_ms, 600);
    assert_int_equal(b.e[2].arrival_ms, 600);
    brk_log_batch_free(&b);
    brk_log_rec bad = {.arrival_ms = 1, .pk = NULL, .pk_len = 3};
    assert_int_equal(brk_segment_append(s, &bad, 1, &floor, &wb), SL_EINVAL);
    brk_log_rec big = {.arrival_ms = 1, .pk = "x", .pk_len = 1, .data = (const uint8_t *)"",
                       .data_len = BRK_SEG_PAYLOAD_MAX};
    assert_int_equal(brk_segment_append(s, &big, 1, &floor, &wb), SL_ETOOBIG);
    assert_int_equal(brk_segment_end(s), 3);
    brk_segment_close(s);
    sl_free(wb.p);
    tmpdir_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_standard_vector),
        cmocka_unit_test(test_crc32c_hw_matches_sw_any_alignment),
        cmocka_unit_test(test_frame_round_trip),
        cmocka_unit_test(test_frame_rejects_bad_lengths),
        cmocka_unit_test(test_segment_append_read_round_trip),
        cmocka_unit_test(test_segment_truncates_torn_tail),
        cmocka_unit_test(test_segment_detects_corrupt_tail_byte),
        cmocka_unit_test(test_segment_torn_header_rewritten),
        cmocka_unit_test(test_segment_foreign_header_refused),
        cmocka_unit_test(test_segment_rebuilds_missing_or_stale_index),
        cmocka_unit_test(test_segment_read_reports_corrupt_frame),
        cmocka_unit_test(test_segment_seek_time),
        cmocka_unit_test(test_segment_append_clamps_and_validates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
