/* broker_crash_appender.c — crash-test helper for the shard log
 * (tests/crash/10_kill_appender.sh).
 *
 *   broker_crash_appender append DIR ACKFILE SEED   append until killed
 *   broker_crash_appender verify DIR ACKFILE        reopen (recovery) and check everything
 *
 * append: opens the shard log in DIR (fsync policy picked from SEED, small segments so rolls
 * and retention happen), then loops: a batch of random size whose records are derived from
 * their counter alone, brk_log_append, and once it returned, the acknowledged counter (the
 * next counter) is stored in ACKFILE with one 8-byte pwrite — a SIGKILL leaves either the old
 * or the new value. Every so often it applies retention to records older than KEEP counters
 * (arrival ms == counter), so the log stays small however long the test runs.
 *
 * verify: reopens the log and checks that every acknowledged record that retention was allowed
 * to keep is there, in order, counters consecutive, bytes intact (records past the ack are
 * allowed: they were written but the ack was lost), and that no read reports corruption.
 * Exit status 0 when all holds; the reason otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/shard_log.h"

#define KEEP 20000u          /* retention keeps at least the newest KEEP counters */
#define SEGMENT_BYTES (512u << 10)
#define MAX_BATCH 64u
#define MAX_DATA (24u << 10)

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The record with counter seq: key "pk-<seq>", arrival seq, data from a PRNG seeded by seq.
 * Mostly under 600 bytes; in one run of 64 counters out of 16 records are 8-24 KiB, so some
 * batches are megabyte writes that a SIGKILL can cut short (the kernel stops a write between
 * pages when a fatal signal is pending) and frames cross read chunks. Returns data length. */
static size_t record_for(uint64_t seq, char *pk, size_t *pk_len, uint8_t *data)
{
    uint64_t s = seq * 0x2545F4914F6CDD1Dull + 17;
    size_t n = (size_t)(splitmix(&s) % 600);
    if ((seq >> 6) % 16 == 0) n = 8192 + (size_t)(splitmix(&s) % (16u << 10));
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = splitmix(&s);
        size_t k = n - i < 8 ? n - i : 8;
        memcpy(data + i, &v, k);
    }
    *pk_len = (size_t)snprintf(pk, 32, "pk-%" PRIu64, seq);
    return n;
}

static uint64_t ack_read(const char *path)
{
    uint8_t b[8] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t r = pread(fd, b, 8, 0);
    close(fd);
    if (r != 8) return 0;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static int run_append(const char *dir, const char *ackpath, uint64_t seed)
{
    enum brk_fsync pol = (enum brk_fsync)(seed % 3);
    brk_log_opts o = {.segment_bytes = SEGMENT_BYTES, .fsync = pol};
    brk_log *l = NULL;
    sl_err e;
    if (brk_log_open(&l, dir, &o, &e) != 0) {
        fprintf(stderr, "append: open: %s\n", e.msg);
        return 1;
    }
    int afd = open(ackpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (afd < 0) {
        perror("append: ack file");
        return 1;
    }
    static char pks[MAX_BATCH][32];
    static uint8_t datas[MAX_BATCH][MAX_DATA];
    brk_log_rec recs[MAX_BATCH];
    uint64_t rng = seed | 1;
    for (uint64_t round = 0;; round++) {
        uint64_t next = brk_log_next_seq(l);
        size_t n = 1 + (size_t)(splitmix(&rng) % MAX_BATCH);
        for (size_t i = 0; i < n; i++) {
            size_t pl;
            size_t dl = record_for(next + i, pks[i], &pl, datas[i]);
            recs[i] = (brk_log_rec){.arrival_ms = (int64_t)(next + i), .pk = pks[i],
                                    .pk_len = pl, .data = datas[i], .data_len = dl};
        }
        uint64_t first = 0, ticket = 0;
        int rc = brk_log_append(l, recs, n, &first, &ticket);
        if (rc == 0 && pol == BRK_FSYNC_ALWAYS) rc = brk_log_wait_durable(l, ticket);
        if (rc != 0 || first != next) {
            fprintf(stderr, "append: rc=%d first=%" PRIu64 " expected %" PRIu64 "\n", rc, first,
                    next);
            return 1;
        }
        /* Acknowledged: the append returned. */
        uint8_t b[8];
        uint64_t ack = first + n;
        for (int i = 0; i < 8; i++) b[i] = (uint8_t)(ack >> (8 * i));
        if (pwrite(afd, b, 8, 0) != 8) {
            perror("append: ack write");
            return 1;
        }
        if (pol == BRK_FSYNC_EVERYSEC && round % 50 == 0 && brk_log_sync(l) != 0) return 1;
        if (round % 64 == 0 && ack > KEEP) {
            rc = brk_log_retain(l, (int64_t)(ack - KEEP));
            if (rc != 0) {
                fprintf(stderr, "append: retain rc=%d\n", rc);
                return 1;
            }
        }
    }
}

/* Size of the newest segment file (the one recovery may cut), -1 when there is none. */
static long long last_segment_size(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    char best[64] = "";
    struct dirent *x;
    while ((x = readdir(d)) != NULL)
        if (strlen(x->d_name) == 24 && strcmp(x->d_name + 20, ".log") == 0 &&
            strcmp(x->d_name, best) > 0)
            memcpy(best, x->d_name, 25); /* 24 characters and the NUL */
    closedir(d);
    char path[4096];
    struct stat st;
    if (!best[0] || snprintf(path, sizeof path, "%s/%s", dir, best) >= (int)sizeof path ||
        stat(path, &st) != 0)
        return -1;
    return (long long)st.st_size;
}

static int run_verify(const char *dir, const char *ackpath)
{
    uint64_t acked = ack_read(ackpath);
    brk_log_opts o = {.segment_bytes = SEGMENT_BYTES, .fsync = BRK_FSYNC_NO};
    brk_log *l = NULL;
    sl_err e;
    int bad = 0;
    long long before = last_segment_size(dir);
    if (brk_log_open(&l, dir, &o, &e) != 0) {
        printf("verify: open failed: %s\n", e.msg);
        return 1;
    }
    long long after = last_segment_size(dir);
    long long cut = before > after ? before - after : 0; /* torn tail truncated at open */
    uint64_t next = brk_log_next_seq(l);
    uint64_t first = brk_log_first_seq(l, INT64_MIN);
    if (next < acked) {
        printf("verify: next counter %" PRIu64 " < acknowledged %" PRIu64 "\n", next, acked);
        bad = 1;
    }
    /* Retention cut at most below (an earlier ack) - KEEP. */
    if (first != 0 && first + KEEP > acked) {
        printf("verify: first retained %" PRIu64 " but acknowledged %" PRIu64 "\n", first,
               acked);
        bad = 1;
    }
    brk_log_batch b = {0};
    static char pk[32];
    static uint8_t data[MAX_DATA];
    uint64_t seq = first, count = 0;
    while (!bad && seq < next) {
        b.n = b.len = 0;
        int rc = brk_log_read(l, seq, INT64_MIN, 1000, 4u << 20, &b);
        if (rc != 0 || b.n == 0) {
            printf("verify: read at %" PRIu64 ": rc=%d (%s), %zu records\n", seq, rc,
                   sl_strerror(rc), b.n);
            bad = 1;
            break;
        }
        for (size_t k = 0; k < b.n && !bad; k++, seq++) {
            const brk_log_entry *x = &b.e[k];
            size_t pl;
            size_t dl = record_for(seq, pk, &pl, data);
            if (x->seq != seq || x->arrival_ms != (int64_t)seq || x->pk_len != pl ||
                memcmp(b.buf + x->pk_off, pk, pl) != 0 || x->data_len != dl ||
                memcmp(b.buf + x->data_off, data, dl) != 0) {
                printf("verify: record %" PRIu64 " differs (got counter %" PRIu64 ")\n", seq,
                       x->seq);
                bad = 1;
            }
            count++;
        }
    }
    if (!bad) {
        uint64_t last_seq = 0;
        bool has = brk_log_last(l, &last_seq, NULL);
        if (next > first && (!has || last_seq != next - 1)) {
            printf("verify: last record %" PRIu64 " but next counter %" PRIu64 "\n", last_seq,
                   next);
            bad = 1;
        }
    }
    if (!bad)
        printf("verify: ok, %" PRIu64 " records [%" PRIu64 ", %" PRIu64 "), acknowledged %" PRIu64
               ", %zu segments, torn tail cut %lld bytes\n",
               count, first, next, acked, brk_log_segments(l), cut);
    brk_log_batch_free(&b);
    brk_log_close(l);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "append") == 0)
        return run_append(argv[2], argv[3], strtoull(argv[4], NULL, 10));
    if (argc == 4 && strcmp(argv[1], "verify") == 0) return run_verify(argv[2], argv[3]);
    fprintf(stderr, "usage: %s append DIR ACKFILE SEED | verify DIR ACKFILE\n", argv[0]);
    return 2;
}
