/* bench_functions.c — the whole invocation path as event-source mappings use it: build the
 * Lambda Kinesis event for 100 records (functions/event.h), then fn_invoke (registry, warm pool,
 * the Lua sandbox, START/END/REPORT log write). One thread.
 *
 * Prints invocations/s (wall and per CPU-second) of a trivial Lua handler — invoked as mappings
 * do (JSON plus the records, from which the Lua engine builds the event directly) and with the
 * JSON alone (the Invoke API path) —, the cold start of a
 * Lua instance through fn_invoke, and the daemon memory per idle warm Lua instance (RSS growth
 * over 200 warm instances of 200 functions, divided by 200).
 * Target (issue 4): >= 10,000 invocations/s on one core, event construction included;
 * Lua cold start <= 1 ms; <= 256 KiB per idle warm instance.
 * Usage: bench_functions [seconds, default 3]
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>

#include "broker/broker.h"
#include "functions/event.h"
#include "functions/invoke.h"

#define RECORDS 100
#define FUNCTIONS 200

static brk_broker *g_broker;

static int st_put(void *c, const char *k, const char *j, size_t n)
{
    return brk_meta_put(c, "function", k, j, n);
}
static int st_get(void *c, const char *k, char **j, size_t *n)
{
    return brk_meta_get(c, "function", k, j, n);
}
static int st_del(void *c, const char *k) { return brk_meta_del(c, "function", k); }
static int st_keys(void *c, char ***k, size_t *n) { return brk_meta_keys(c, "function", k, n); }

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kib(void)
{
    char line[256];
    long v = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = strtol(line + 6, NULL, 10);
    fclose(f);
    return v;
}

static uint8_t *zip_of(const char *name, const char *code, size_t *len)
{
    char path[] = "/tmp/sluice-bench-zip-XXXXXX";
    int fd = mkstemp(path), zerr;
    close(fd);
    unlink(path);
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_EXCL, &zerr);
    zip_file_add(z, name, zip_source_buffer(z, code, strlen(code), 0), 0);
    zip_close(z);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len);
    if (fread(b, 1, *len, f) != *len) exit(1);
    fclose(f);
    unlink(path);
    return b;
}

static int rm_cb(const char *p, const struct stat *s, int fl, struct FTW *w)
{
    (void)s;
    (void)fl;
    (void)w;
    return remove(p);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    char dir[] = "/tmp/sluice-bench-fn-XXXXXX";
    sl_err err;
    if (!mkdtemp(dir)) return 1;
    brk_opts bo = {.data_dir = dir, .fsync = BRK_FSYNC_NO};
    if (brk_open(&g_broker, &bo, &err)) {
        fprintf(stderr, "broker: %s\n", err.msg);
        return 1;
    }
    fn_store store = {g_broker, st_put, st_get, st_del, st_keys, brk_names_free};
    fn_runtime_opts ro = {.data_dir = dir, .region = "us-east-1", .account = "000000000000",
                          .store = &store};
    fn_runtime *rt;
    if (fn_runtime_new(&rt, &ro, &err)) {
        fprintf(stderr, "runtime: %s\n", err.msg);
        return 1;
    }
    static const char code[] = "function handler(event, context)\n"
                               "  local n = 0\n"
                               "  for _, r in ipairs(event.Records) do n = n + 1 end\n"
                               "  return nil\n"
                               "end\n";
    size_t zlen;
    uint8_t *zip = zip_of("main.lua", code, &zlen);
    fn_config c;
    fn_config_init(&c);
    strcpy(c.runtime, "lua5.4");
    strcpy(c.handler, "main.handler");
    strcpy(c.role, "arn:aws:iam::000000000000:role/bench");
    strcpy(c.name, "trivial");
    if (fn_registry_create(fn_runtime_registry(rt), &c, zip, zlen, NULL, &err)) {
        fprintf(stderr, "create: %s\n", err.msg);
        return 1;
    }

    /* 100 records of ~40 bytes, as a mapping would read them from a shard */
    static char seqs[RECORDS][BRK_SEQ_STRLEN], keys[RECORDS][16], data[RECORDS][64];
    fn_event_record recs[RECORDS];
    for (int i = 0; i < RECORDS; i++) {
        snprintf(seqs[i], sizeof seqs[i], "4%055d", i);
        snprintf(keys[i], sizeof keys[i], "sensor-%d", i % 16);
        snprintf(data[i], sizeof data[i], "{\"temp\":%d,\"city\":\"Oslo\",\"seq\":%d}", i % 40, i);
        recs[i] = (fn_event_record){"shardId-000000000000", seqs[i], keys[i], strlen(keys[i]),
                                    (const uint8_t *)data[i], strlen(data[i]),
                                    1714644901421LL + i};
    }
    fn_event_source src = {"arn:aws:kinesis:us-east-1:000000000000:stream/bench", "us-east-1",
                           "arn:aws:iam::000000000000:role/bench"};

    /* warm loops: as mappings invoke (the event's JSON plus its records, which the Lua engine
     * turns into the handler's event directly), and with the JSON alone (Invoke API path) */
    fn_event_batch batch = {&src, recs, RECORDS};
    uint64_t errors = 0;
    for (int mode = 0; mode < 2; mode++) {
        uint64_t n = 0;
        double t0 = (double)sl_mono_ns() / 1e9, c0 = cpu_s(), now;
        do {
            char *ev;
            size_t evlen;
            fn_result res;
            if (fn_event_build(&src, recs, RECORDS, NULL, &ev, &evlen)) return 1;
            fn_request rq = {.function = "trivial", .payload = (const uint8_t *)ev, .len = evlen,
                             .batch = mode == 0 ? &batch : NULL};
            fn_invoke(rt, &rq, &res);
            if (res.status != FN_DONE || res.function_error) errors++;
            fn_result_clear(&res);
            sl_free(ev);
            n++;
            now = (double)sl_mono_ns() / 1e9;
        } while (now - t0 < secs);
        double cpu = cpu_s() - c0;
        printf("lua invoke, 100-record event built per call, %s: %.0f inv/s wall, %.0f inv/s "
               "per CPU-second (%.1f us CPU each)\n",
               mode == 0 ? "as mappings invoke (records)" : "JSON only (Invoke API)",
               (double)n / (now - t0), (double)n / cpu, cpu / (double)n * 1e6);
    }
    if (errors) printf("%llu invocation errors\n", (unsigned long long)errors);

    /* cold starts: a fresh function each time (first invocation = cold) */
    double cold[FUNCTIONS];
    long rss0 = rss_kib();
    for (int i = 0; i < FUNCTIONS; i++) {
        snprintf(c.name, sizeof c.name, "f%d", i);
        if (fn_registry_create(fn_runtime_registry(rt), &c, zip, zlen, NULL, &err)) return 1;
        fn_result res;
        fn_request rq = {.function = c.name, .payload = (const uint8_t *)"{\"Records\":[]}",
                         .len = 14};
        uint64_t a = sl_mono_ns();
        fn_invoke(rt, &rq, &res);
        cold[i] = (double)(sl_mono_ns() - a) / 1e3;
        if (res.status != FN_DONE || res.function_error || !res.cold) errors++;
        fn_result_clear(&res);
    }
    long rss1 = rss_kib();
    qsort(cold, FUNCTIONS, sizeof cold[0], cmp_d);
    printf("lua cold start through fn_invoke (load + first invoke + log): median %.0f us, p99 "
           "%.0f us\n",
           cold[FUNCTIONS / 2], cold[FUNCTIONS * 99 / 100]);
    printf("daemon memory per idle warm Lua instance: %.0f KiB (RSS %ld -> %ld KiB over %d "
           "functions, registry entries included)\n",
           (double)(rss1 - rss0) / FUNCTIONS, rss0, rss1, FUNCTIONS);

    fn_runtime_free(rt);
    brk_close(g_broker);
    free(zip);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return errors ? 1 : 0;
}
