/* fuzz_segment.c — libFuzzer target for the storage engine's recovery: the input becomes the
 * only segment file of a shard directory, which is then opened (tail verification and torn-tail
 * truncation), read back completely and reopened. Whatever the bytes, nothing may crash, and
 * what the log returns must be consistent: consecutive counters from the segment's first one,
 * arrival times never decreasing, key and data inside the read buffer; a second open must find
 * the same records (recovery is idempotent).
 *
 *   make fuzz && build/fuzz/fuzz_segment -max_total_time=60 tests/fuzz/corpus/fuzz_segment */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/shard_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int rm_cb(const char *p, const struct stat *s, int fl, struct FTW *w)
{
    (void)s;
    (void)fl;
    (void)w;
    return remove(p);
}

/* Reads the whole log; returns the number of records (or -1 on a read error, which is allowed:
 * a bad frame in a sealed segment is reported, never returned as data). */
static long read_all(brk_log *l, uint64_t *last_seq)
{
    brk_log_batch b = {0};
    uint64_t next = brk_log_first_seq(l, INT64_MIN);
    long total = 0;
    int64_t prev_arrival = INT64_MIN;
    for (;;) {
        b.n = b.len = 0;
        int rc = brk_log_read(l, next, INT64_MIN, 1000, 1 << 20, &b);
        if (rc) {
            total = -1;
            break;
        }
        if (b.n == 0) break;
        for (size_t i = 0; i < b.n; i++) {
            const brk_log_entry *e = &b.e[i];
            if (e->seq != next + i) __builtin_trap();
            if (e->arrival_ms < prev_arrival) __builtin_trap();
            if (e->pk_off + e->pk_len > b.len || e->data_off + e->data_len > b.len)
                __builtin_trap();
            prev_arrival = e->arrival_ms;
        }
        next += b.n;
        total += (long)b.n;
    }
    *last_seq = next;
    brk_log_batch_free(&b);
    return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[] = "/tmp/sluice-fuzz-seg-XXXXXX", path[128];
    brk_log_opts o = {.segment_bytes = 1 << 20, .fsync = BRK_FSYNC_NO};
    brk_log *l = NULL;
    sl_err err;
    if (!mkdtemp(dir)) return 0;
    snprintf(path, sizeof path, "%s/00000000000000000000.log", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        if (write(fd, data, size) != (ssize_t)size) size = 0;
        close(fd);
        if (brk_log_open(&l, dir, &o, &err) == 0) {
            uint64_t end1 = 0, end2 = 0;
            long n1 = read_all(l, &end1);
            brk_log_close(l);
            l = NULL;
            if (brk_log_open(&l, dir, &o, &err) != 0) __builtin_trap(); /* recovered once: opens */
            long n2 = read_all(l, &end2);
            if (n1 >= 0 && (n1 != n2 || end1 != end2)) __builtin_trap();
            brk_log_close(l);
        }
    }
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}
