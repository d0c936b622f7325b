/* bench_esm.c — event-source mapping figures (real broker in a temp dir, real loop):
 *   1. put-to-handler latency of single records, batching window 0 (targets p50 1 ms, p99 5 ms)
 *   2. records/s delivered from 4 shards, BatchSize 100, to an invoker that only counts
 *      (target >= 300,000/s)
 *   3. IteratorAge under a steady 50,000 records/s producer (target < 100 ms)
 * Prints figures; no thresholds enforced (STYLE: performance lives here, not in unit tests).
 * Options: bench_esm [latency_records] [throughput_records] [steady_seconds]
 */
#include <ftw.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <uv.h>

#include "broker/broker.h"
#include "runtime/esm.h"
#include "runtime/log.h"

typedef struct bench {
    uv_loop_t loop;
    brk_broker *b;
    esm_mgr *m;
    char dir[128];
    /* counting */
    atomic_uint_fast64_t records;
    uint64_t invocations;
    /* latency */
    uint64_t *lat_ns;
    size_t nlat, cap_lat;
    bool measure_latency;
    /* control */
    atomic_bool producer_done;
    uint64_t target;
    bool closed;
    uv_timer_t sample;
    uv_timer_t tick;             /* keeps uv_run(ONCE) from blocking once producers stop */
    int64_t age_max;
    double age_sum;
    uint64_t age_n;
    int64_t *ages;
    size_t nages;
} bench;

static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *w)
{
    (void)sb, (void)f, (void)w;
    return remove(p);
}

static size_t count_records(const char *p, size_t n)
{
    size_t c = 0;
    const char *end = p + n;
    static const char key[] = "\"eventID\"";
    while ((p = memmem(p, (size_t)(end - p), key, sizeof key - 1))) {
        c++;
        p += sizeof key - 1;
    }
    return c;
}

/* Latency: the data of each record starts with the put's monotonic time (16 hex digits). */
static void note_latency(bench *bn, const char *payload, size_t len, uint64_t now)
{
    const char *p = payload, *end = payload + len;
    static const char key[] = "\"data\":\"";
    while ((p = memmem(p, (size_t)(end - p), key, sizeof key - 1))) {
        unsigned char raw[32];
        char hex[17];
        p += sizeof key - 1;
        if (EVP_DecodeBlock(raw, (const unsigned char *)p, 24) < 16) continue;
        memcpy(hex, raw, 16);
        hex[16] = '\0';
        uint64_t t = strtoull(hex, NULL, 16);
        if (bn->nlat == bn->cap_lat) {
            bn->cap_lat = bn->cap_lat ? bn->cap_lat * 2 : 4096;
            bn->lat_ns = realloc(bn->lat_ns, bn->cap_lat * sizeof *bn->lat_ns);
        }
        bn->lat_ns[bn->nlat++] = now - t;
    }
}

static void counting_invoke(void *ctx, const char *arn, char *payload, size_t len,
                            const fn_event_batch *batch, esm_invoke_done done, void *cb_ctx)
{
    (void)batch;
    bench *bn = ctx;
    uint64_t now = sl_mono_ns();
    esm_invoke_result r = {ESM_INVOKE_OK, "null", 4, NULL};
    (void)arn;
    if (bn->measure_latency) note_latency(bn, payload, len, now);
    atomic_fetch_add(&bn->records, count_records(payload, len));
    bn->invocations++;
    sl_free(payload);
    done(cb_ctx, &r);
}

static esm_invoker invoker = {NULL, NULL, counting_invoke};

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

static void setup(bench *bn, uint32_t shards)
{
    brk_opts o;
    esm_mgr_opts mo;
    brk_create_opts co;
    sl_err err;
    memset(bn, 0, sizeof *bn);
    snprintf(bn->dir, sizeof bn->dir, "/tmp/sluice-bench-esm-XXXXXX");
    if (!mkdtemp(bn->dir)) abort();
    uv_loop_init(&bn->loop);
    uv_timer_init(&bn->loop, &bn->tick);
    uv_timer_start(&bn->tick, tick_cb, 10, 10);
    memset(&o, 0, sizeof o);
    o.data_dir = bn->dir;
    o.fsync = BRK_FSYNC_EVERYSEC;
    if (brk_open(&bn->b, &o, &err) != 0) {
        fprintf(stderr, "brk_open: %s\n", err.msg);
        exit(1);
    }
    memset(&co, 0, sizeof co);
    co.name = "bench";
    co.shard_count = shards;
    if (brk_stream_create(bn->b, &co, &err) != 0) {
        fprintf(stderr, "create: %s\n", err.msg);
        exit(1);
    }
    invoker.ctx = bn;
    memset(&mo, 0, sizeof mo);
    mo.loop = &bn->loop;
    mo.broker = bn->b;
    mo.data_dir = bn->dir;
    mo.invoker = &invoker;
    if (esm_mgr_new(&bn->m, &mo) != 0 || esm_mgr_start(bn->m, &err) != 0) exit(1);
}

static void create_mapping(bench *bn, uint32_t batch)
{
    esm_config c;
    esm_view v;
    sl_err err;
    esm_config_defaults(&c);
    snprintf(c.stream_arn, sizeof c.stream_arn,
             "arn:aws:kinesis:us-east-1:000000000000:stream/bench");
    c.batch_size = batch;
    if (esm_mgr_create(bn->m, &c, "bench", &v, &err) != 0) {
        fprintf(stderr, "mapping: %s\n", err.msg);
        exit(1);
    }
    esm_view_clear(&v);
}

static void closed_cb(void *ctx)
{
    ((bench *)ctx)->closed = true;
}

static void teardown(bench *bn)
{
    uv_close((uv_handle_t *)&bn->tick, NULL);
    esm_mgr_close(bn->m, closed_cb, bn);
    while (!bn->closed) uv_run(&bn->loop, UV_RUN_ONCE);
    uv_run(&bn->loop, UV_RUN_DEFAULT);
    uv_loop_close(&bn->loop);
    brk_close(bn->b);
    nftw(bn->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(bn->lat_ns);
    free(bn->ages);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

/* ---- 1. latency ---------------------------------------------------------------------------- */

typedef struct producer {
    bench *bn;
    size_t n;
    uint64_t interval_ns;
    uint32_t per_tick;
    double seconds;
} producer;

static void latency_producer(void *arg)
{
    producer *p = arg;
    sl_err err;
    for (size_t i = 0; i < p->n; i++) {
        char data[64];
        brk_put_entry e;
        brk_put_result r;
        int len = snprintf(data, sizeof data, "%016" PRIx64 "-payload-%zu", sl_mono_ns(), i);
        memset(&e, 0, sizeof e);
        e.data = (const uint8_t *)data;
        e.data_len = (size_t)len;
        e.partition_key = "k";
        e.pk_len = 1;
        if (brk_put_record(p->bn->b, "bench", &e, NULL, &r, &err) != 0)
            fprintf(stderr, "put: %s\n", err.msg);
        sleep_ns(p->interval_ns);
    }
    atomic_store(&p->bn->producer_done, true);
}

static void bench_latency(size_t n)
{
    bench bn;
    producer p;
    uv_thread_t th;
    setup(&bn, 1);
    bn.measure_latency = true;
    create_mapping(&bn, 100);
    for (int i = 0; i < 20; i++) uv_run(&bn.loop, UV_RUN_NOWAIT);
    p = (producer){&bn, n, 1000000, 1, 0};
    uv_thread_create(&th, latency_producer, &p);
    while (!atomic_load(&bn.producer_done) || atomic_load(&bn.records) < n)
        uv_run(&bn.loop, UV_RUN_ONCE);
    uv_thread_join(&th);
    qsort(bn.lat_ns, bn.nlat, sizeof *bn.lat_ns, cmp_u64);
    printf("esm latency (put -> handler, window 0, %zu single records, 1 ms apart): "
           "p50 %.3f ms  p99 %.3f ms  max %.3f ms   (targets p50 1 ms, p99 5 ms)\n",
           bn.nlat, bn.lat_ns[bn.nlat / 2] / 1e6, bn.lat_ns[bn.nlat * 99 / 100] / 1e6,
           bn.lat_ns[bn.nlat - 1] / 1e6);
    teardown(&bn);
}

/* ---- 2. throughput ------------------------------------------------------------------------- */

static void preload(bench *bn, size_t n)
{
    brk_put_entry e[500];
    brk_put_result r[500];
    char keys[500][16];
    uint8_t data[100];
    sl_err err;
    size_t failed;
    memset(data, 'x', sizeof data);
    for (size_t i = 0; i < n; i += 500) {
        size_t k = n - i < 500 ? n - i : 500;
        for (size_t j = 0; j < k; j++) {
            snprintf(keys[j], sizeof keys[j], "key-%zu", (i + j) % 1024);
            e[j] = (brk_put_entry){data, sizeof data, keys[j], strlen(keys[j]), NULL};
        }
        if (brk_put_records(bn->b, "bench", e, k, r, &failed, &err) != 0) {
            fprintf(stderr, "preload: %s\n", err.msg);
            exit(1);
        }
    }
}

static void bench_throughput(size_t n)
{
    bench bn;
    uint64_t t0, t1;
    setup(&bn, 4);
    preload(&bn, n);
    t0 = sl_mono_ns();
    create_mapping(&bn, 100);
    while (atomic_load(&bn.records) < n) uv_run(&bn.loop, UV_RUN_ONCE);
    t1 = sl_mono_ns();
    printf("esm throughput (4 shards, BatchSize 100, counting invoker, %zu records of 100 B): "
           "%.0f records/s, %" PRIu64 " invocations   (target >= 300000/s)\n",
           n, n / ((t1 - t0) / 1e9), bn.invocations);
    teardown(&bn);
}

/* ---- 3. iterator age under a steady producer ----------------------------------------------- */

static void steady_producer(void *arg)
{
    producer *p = arg;
    brk_put_entry e[500];
    brk_put_result r[500];
    char keys[500][16];
    uint8_t data[100];
    sl_err err;
    size_t failed;
    uint64_t start = sl_mono_ns(), sent = 0;
    uint64_t rate = 50000;
    memset(data, 'y', sizeof data);
    while (sl_mono_ns() - start < (uint64_t)(p->seconds * 1e9)) {
        /* 500 records every 10 ms = 50,000/s, paced against the clock */
        uint64_t due = (uint64_t)((sl_mono_ns() - start) / 1e9 * rate);
        while (sent + 500 <= due) {
            for (size_t j = 0; j < 500; j++) {
                snprintf(keys[j], sizeof keys[j], "key-%" PRIu64, (sent + j) % 1024);
                e[j] = (brk_put_entry){data, sizeof data, keys[j], strlen(keys[j]), NULL};
            }
            brk_put_records(p->bn->b, "bench", e, 500, r, &failed, &err);
            sent += 500;
        }
        sleep_ns(2000000);
    }
    p->n = sent;
    atomic_store(&p->bn->producer_done, true);
}

typedef struct age_acc {
    int64_t max;
} age_acc;

static void age_cb(void *ctx, const char *uuid, const char *fn, const char *shard,
                   const esm_metrics *mt)
{
    age_acc *a = ctx;
    (void)uuid, (void)fn;
    if (shard && mt->iterator_age_ms > a->max) a->max = mt->iterator_age_ms;
}

static void sample_cb(uv_timer_t *t)
{
    bench *bn = t->data;
    age_acc a = {0};
    esm_mgr_foreach_metrics(bn->m, age_cb, &a);
    bn->ages = realloc(bn->ages, (bn->nages + 1) * sizeof *bn->ages);
    bn->ages[bn->nages++] = a.max;
    if (a.max > bn->age_max) bn->age_max = a.max;
    bn->age_sum += (double)a.max;
    bn->age_n++;
}

static void bench_steady(double seconds)
{
    bench bn;
    producer p;
    uv_thread_t th;
    setup(&bn, 4);
    create_mapping(&bn, 100);
    for (int i = 0; i < 20; i++) uv_run(&bn.loop, UV_RUN_NOWAIT);
    uv_timer_init(&bn.loop, &bn.sample);
    bn.sample.data = &bn;
    uv_timer_start(&bn.sample, sample_cb, 100, 100);
    p = (producer){&bn, 0, 0, 0, seconds};
    uv_thread_create(&th, steady_producer, &p);
    while (!atomic_load(&bn.producer_done)) uv_run(&bn.loop, UV_RUN_ONCE);
    uv_thread_join(&th);
    while (atomic_load(&bn.records) < p.n) uv_run(&bn.loop, UV_RUN_ONCE);
    uv_timer_stop(&bn.sample);
    uv_close((uv_handle_t *)&bn.sample, NULL);
    qsort(bn.ages, bn.nages, sizeof *bn.ages, cmp_i64);
    printf("esm IteratorAge (4 shards, steady 50000 records/s for %.0f s, %zu records, sampled "
           "every 100 ms): mean %.1f ms  p99 %" PRId64 " ms  max %" PRId64 " ms   "
           "(target < 100 ms)\n",
           seconds, p.n, bn.age_n ? bn.age_sum / (double)bn.age_n : 0.0,
           bn.nages ? bn.ages[bn.nages * 99 / 100] : 0, bn.age_max);
    teardown(&bn);
}

int main(int argc, char **argv)
{
    size_t nlat = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
    size_t nthr = argc > 2 ? strtoul(argv[2], NULL, 10) : 400000;
    double secs = argc > 3 ? atof(argv[3]) : 10;
    rt_log_set_level(getenv("BENCH_LOG") ? RT_DEBUG : RT_WARN);
    bench_latency(nlat);
    bench_throughput(nthr);
    bench_steady(secs);
    return 0;
}
