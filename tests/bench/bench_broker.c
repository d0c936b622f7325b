/* bench_broker.c — broker throughput and latency figures (DESIGN: performance lives in benches).
 *
 * In a temp data dir with fsync everysec:
 *   - append 100-byte records in batches of 500 to 1 shard and to 4 shards
 *     (records/s, MB/s, p50/p99 per-batch append latency)
 *   - append 1 KiB records (MB/s)
 *   - sequential read of everything (records/s)
 *   - build a 1 GiB shard, time the reopen, read it all and print RSS (VmRSS/VmHWM)
 * Usage: bench_broker [scale [everysec|always|no]]   (scale 1 = default sizes; 0.1 for a quick run;
 * the fsync policy defaults to everysec)
 * Prints one line per figure.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "broker/broker.h"

#define BATCH 500

static int rm_cb(const char *p, const struct stat *s, int fl, struct FTW *w)
{
    (void)s;
    (void)fl;
    (void)w;
    return remove(p);
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

/* User + system CPU seconds of this process (all threads): the machine is shared, so wall-clock
 * rates are noisy; rates per CPU-second show what the code itself costs. */
static double cpu_secs(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void die(const char *what, int rc, const sl_err *e)
{
    fprintf(stderr, "bench_broker: %s failed: %d %s\n", what, rc, e ? e->msg : "");
    exit(1);
}

static enum brk_fsync fsync_policy = BRK_FSYNC_EVERYSEC;

static brk_broker *open_broker(const char *dir)
{
    brk_opts o;
    sl_err e;
    brk_broker *b = NULL;
    memset(&o, 0, sizeof o);
    o.data_dir = dir;
    o.fsync = fsync_policy;
    int rc = brk_open(&b, &o, &e);
    if (rc) die("brk_open", rc, &e);
    return b;
}

static void create(brk_broker *b, const char *name, uint32_t shards)
{
    sl_err e;
    brk_create_opts c = {.name = name, .shard_count = shards};
    int rc = brk_stream_create(b, &c, &e);
    if (rc) die("create", rc, &e);
}

/* Appends `batches` batches of BATCH records of `size` bytes; prints rate and latency lines. */
static void append_run(brk_broker *b, const char *stream, const char *label, size_t size,
                       size_t batches, bool latency)
{
    static brk_put_entry pe[BATCH];
    static brk_put_result res[BATCH];
    static char keys[BATCH][16];
    uint8_t *data = malloc(size);
    uint64_t *lat = calloc(batches, sizeof *lat);
    sl_err e;
    memset(data, 'x', size);
    for (int i = 0; i < BATCH; i++) {
        snprintf(keys[i], sizeof keys[i], "pk-%d", i);
        pe[i] = (brk_put_entry){.data = data, .data_len = size, .partition_key = keys[i],
                                .pk_len = strlen(keys[i])};
    }
    uint64_t t0 = sl_mono_ns();
    double c0 = cpu_secs();
    for (size_t k = 0; k < batches; k++) {
        size_t failed = 0;
        uint64_t a = sl_mono_ns();
        int rc = brk_put_records(b, stream, pe, BATCH, res, &failed, &e);
        if (rc || failed) die("put_records", rc, &e);
        lat[k] = sl_mono_ns() - a;
    }
    double t = secs(sl_mono_ns() - t0);
    double c = cpu_secs() - c0;
    double recs = (double)batches * BATCH;
    printf("append %-28s %10.0f records/s  %8.1f MB/s  (%zu records of %zu B in %.2f s; "
           "%.0f records per CPU-second)\n", label, recs / t, recs * (double)size / t / 1e6,
           (size_t)recs, size, t, recs / c);
    if (latency) {
        qsort(lat, batches, sizeof *lat, cmp_u64);
        printf("append %-28s batch latency p50 %.1f us  p99 %.1f us\n", label,
               (double)lat[batches / 2] / 1e3, (double)lat[batches * 99 / 100] / 1e3);
    }
    free(lat);
    free(data);
}

/* Reads every shard of a stream from the trim horizon; returns records read. */
static size_t read_all(brk_broker *b, const char *stream, uint32_t shards, size_t *bytes)
{
    size_t total = 0;
    *bytes = 0;
    for (uint32_t s = 0; s < shards; s++) {
        char sid[32];
        char it[BRK_ITER_MAX];
        sl_err e;
        snprintf(sid, sizeof sid, "shardId-%012u", s);
        int rc = brk_get_iterator(b, stream, sid, BRK_TRIM_HORIZON, NULL, false, 0, it, &e);
        if (rc) die("get_iterator", rc, &e);
        for (;;) {
            brk_records r;
            rc = brk_get_records(b, it, 10000, &r, &e);
            if (rc) die("get_records", rc, &e);
            total += r.n;
            for (size_t i = 0; i < r.n; i++) *bytes += r.recs[i].data_len;
            size_t n = r.n;
            memcpy(it, r.next_iterator, sizeof it);
            brk_records_free(&r);
            if (n == 0) break;
        }
    }
    return total;
}

static void print_rss(const char *when)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    char rss[64] = "?";
    char hwm[64] = "?";
    if (!fp) return;
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "VmRSS:", 6) == 0) sscanf(line + 6, " %63[^\n]", rss);
        if (strncmp(line, "VmHWM:", 6) == 0) sscanf(line + 6, " %63[^\n]", hwm);
    }
    fclose(fp);
    printf("memory %-28s VmRSS %s  VmHWM %s\n", when, rss, hwm);
}

int main(int argc, char **argv)
{
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    if (scale <= 0) scale = 1.0;
    const char *pol = argc > 2 ? argv[2] : "everysec";
    if (strcmp(pol, "always") == 0) fsync_policy = BRK_FSYNC_ALWAYS;
    else if (strcmp(pol, "no") == 0) fsync_policy = BRK_FSYNC_NO;
    else pol = "everysec";
    char dir[] = "/tmp/bench_broker_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("bench_broker: data dir %s, fsync %s, scale %.2f\n", dir, pol, scale);
    brk_broker *b = open_broker(dir);
    create(b, "one", 1);
    create(b, "four", 4);
    create(b, "kib", 1);
    size_t nb = (size_t)(4000 * scale) + 1; /* 2,000,000 records at scale 1 */
    append_run(b, "one", "100 B x500 -> 1 shard", 100, nb, true);
    append_run(b, "four", "100 B x500 -> 4 shards", 100, nb, true);
    append_run(b, "kib", "1 KiB x500 -> 1 shard", 1024, (size_t)(1000 * scale) + 1, true);

    size_t bytes;
    uint64_t t0 = sl_mono_ns();
    double c0 = cpu_secs();
    size_t n = read_all(b, "one", 1, &bytes) + read_all(b, "four", 4, &bytes);
    double t = secs(sl_mono_ns() - t0);
    printf("read   %-28s %10.0f records/s  (%zu records in %.2f s; %.0f records per "
           "CPU-second)\n", "sequential 100 B", (double)n / t, n, t,
           (double)n / (cpu_secs() - c0));
    t0 = sl_mono_ns();
    n = read_all(b, "kib", 1, &bytes);
    t = secs(sl_mono_ns() - t0);
    printf("read   %-28s %10.0f records/s  %8.1f MB/s\n", "sequential 1 KiB", (double)n / t,
           (double)bytes / t / 1e6);

    /* A 1 GiB shard: 1 KiB records; then reopen and read it all. */
    create(b, "gib", 1);
    size_t gib_batches = (size_t)(2048 * scale) + 1; /* 2048 x 500 x 1 KiB = 1 GiB */
    append_run(b, "gib", "1 KiB x500 -> 1 GiB shard", 1024, gib_batches, false);
    brk_close(b);
    t0 = sl_mono_ns();
    b = open_broker(dir);
    t = secs(sl_mono_ns() - t0);
    printf("reopen %-28s %10.1f ms\n", "data dir incl. 1 GiB shard", t * 1e3);
    print_rss("after reopen");
    t0 = sl_mono_ns();
    n = read_all(b, "gib", 1, &bytes);
    t = secs(sl_mono_ns() - t0);
    printf("read   %-28s %10.0f records/s  %8.1f MB/s  (%.2f GiB)\n", "1 GiB shard", (double)n / t,
           (double)bytes / t / 1e6, (double)bytes / (1 << 30));
    print_rss("after reading 1 GiB");
    brk_close(b);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
