/* bench_native.c — native handler latency: warm invocation round trip (target median <= 50 us)
 * and cold start, spawn through the launcher to the first result (target median <= 5 ms).
 *
 * Uses $SLUICE_LAUNCHER, else $SLUICE_BIN if it answers `__launch --version`, else
 * <build>/sluice-launch; the handler is <build>/tests/handlers/echo.
 * Usage: bench_native [warm_iterations [cold_iterations]] */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "functions/native.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static int probe(const char *bin)
{
    char cmd[PATH_MAX + 64];
    char line[64] = "";
    snprintf(cmd, sizeof cmd, "'%.4000s' __launch --version 2>/dev/null", bin);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    if (!fgets(line, sizeof line, p)) line[0] = 0;
    return pclose(p) == 0 && !strncmp(line, "sluice-launch", 13) ? 0 : -1;
}

int main(int argc, char **argv)
{
    size_t warm_n = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000;
    size_t cold_n = argc > 2 ? strtoul(argv[2], NULL, 10) : 300;
    if (warm_n < 10) warm_n = 10;
    if (cold_n < 10) cold_n = 10;
    char self[PATH_MAX], dir[PATH_MAX], launcher[PATH_MAX + 32], exe[PATH_MAX + 32];
    snprintf(self, sizeof self, "%s", argv[0]);
    char *slash = strrchr(self, '/');
    if (slash) *slash = 0;
    if (!realpath(slash ? self : ".", dir)) {
        perror("realpath");
        return 1;
    }
    const char *l = getenv("SLUICE_LAUNCHER");
    const char *bin = getenv("SLUICE_BIN");
    if (l && *l) snprintf(launcher, sizeof launcher, "%.4000s", l);
    else if (bin && *bin && access(bin, X_OK) == 0 && probe(bin) == 0)
        snprintf(launcher, sizeof launcher, "%.4000s", bin);
    else snprintf(launcher, sizeof launcher, "%.4000s/../sluice-launch", dir);
    snprintf(exe, sizeof exe, "%.4000s/../tests/handlers/echo", dir);
    char code[] = "/tmp/sluice-bench-native-XXXXXX";
    if (!mkdtemp(code) || chmod(code, 0755)) {
        perror("mkdtemp");
        return 1;
    }
    printf("launcher: %s\nhandler:  %s\n", launcher, exe);

    const char *event =
        "{\"Records\":[{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\","
        "\"partitionKey\":\"sensor-7\","
        "\"sequenceNumber\":\"49646437577108476416916876405825929425585429676275269634\","
        "\"data\":\"eyJ0ZW1wIjoyMSwiY2l0eSI6Ik9zbG8ifQ==\",\"approximateArrivalTimestamp\":"
        "1714644901.421},\"eventSource\":\"aws:kinesis\",\"eventVersion\":\"1.0\",\"eventID\":"
        "\"shardId-000000000000:49646437577108476416916876405825929425585429676275269634\","
        "\"eventName\":\"aws:kinesis:record\",\"awsRegion\":\"us-east-1\",\"eventSourceARN\":"
        "\"arn:aws:kinesis:us-east-1:000000000000:stream/telemetry\"}]}";
    size_t ev_len = strlen(event);
    fn_native_invocation inv = {.request_id = "bench-0000-0000-0000-000000000000"};
    fn_native_spec sp = {.launcher = launcher, .executable = exe, .code_dir = code,
                         .function_name = "bench", .timeout_ms = 10000};
    sl_err err = {0, ""};
    int failures = 0;

    /* warm round trip */
    fn_native_worker *w = NULL;
    if (fn_native_spawn(&w, &sp, &err)) {
        fprintf(stderr, "spawn: %s\n", err.msg);
        return 1;
    }
    uint64_t *v = malloc((warm_n > cold_n ? warm_n : cold_n) * sizeof *v);
    if (!v) return 1;
    for (size_t i = 0; i < warm_n + 200; i++) {
        fn_native_result res;
        uint64_t t0 = sl_mono_ns();
        int rc = fn_native_invoke(w, (const uint8_t *)event, ev_len, &inv, &res);
        uint64_t dt = sl_mono_ns() - t0;
        if (rc || res.function_error) { /* retirement every 10000 is expected */
            if (!failures) fprintf(stderr, "warm #%zu: rc=%d %s\n", i, rc, res.payload);
            failures++;
        }
        if (i >= 200) v[i - 200] = dt / 1000;
        fn_native_result_clear(&res);
    }
    fn_native_stats st;
    fn_native_get_stats(w, &st);
    fn_native_free(w);
    uint64_t warm_med = pct(v, warm_n, 0.5), warm_p99 = pct(v, warm_n, 0.99);
    printf("native warm round trip: median %llu us, p99 %llu us, %zu invocations, %llu spawns "
           "(target median <= 50 us: %s)\n",
           (unsigned long long)warm_med, (unsigned long long)warm_p99, warm_n,
           (unsigned long long)st.spawns, warm_med <= 50 ? "met" : "MISSED");

    /* cold start: one process per invocation (spawn + confinement + exec + first result) */
    sp.cold = 1;
    if (fn_native_spawn(&w, &sp, &err)) {
        fprintf(stderr, "spawn: %s\n", err.msg);
        return 1;
    }
    uint64_t *init = malloc(cold_n * sizeof *init);
    if (!init) return 1;
    for (size_t i = 0; i < cold_n; i++) {
        fn_native_result res;
        uint64_t t0 = sl_mono_ns();
        int rc = fn_native_invoke(w, (const uint8_t *)event, ev_len, &inv, &res);
        v[i] = (sl_mono_ns() - t0) / 1000;
        init[i] = res.init_us;
        if (rc || res.function_error || !res.cold_start) {
            if (!failures) fprintf(stderr, "cold #%zu: rc=%d %s\n", i, rc, res.payload);
            failures++;
        }
        fn_native_result_clear(&res);
    }
    fn_native_free(w);
    uint64_t cold_med = pct(v, cold_n, 0.5), cold_p99 = pct(v, cold_n, 0.99);
    uint64_t init_med = pct(init, cold_n, 0.5);
    printf("native cold start (spawn to first result, incl. reaping the process): median %llu us, "
           "p99 %llu us, launcher-to-exec median %llu us, %zu starts (target median <= 5000 us: "
           "%s)\n",
           (unsigned long long)cold_med, (unsigned long long)cold_p99,
           (unsigned long long)init_med, cold_n, cold_med <= 5000 ? "met" : "MISSED");
    free(v);
    free(init);
    rmdir(code);
    printf("%d passed, %d failed\n", failures ? 0 : 2, failures ? 1 : 0);
    return failures ? 1 : 0;
}
