/* bench_lua.c — micro-benchmark of the Lua sandbox (sandbox/lua_state.h).
 *
 * Prints:
 *   - warm invocations per second on one thread of a trivial handler (counts the records,
 *     returns nil) receiving a 100-record Kinesis event (JSON decode of the event included),
 *     and with an empty event (the fixed cost of one invocation);
 *   - the same for a handler that also base64-decodes and json-decodes every record;
 *   - cold start (sbx_lua_new of a small chunk, top level included): median and p99 in us;
 *   - memory of an idle warm instance (after init, after 100 invocations, after sbx_lua_trim).
 * Targets (brief): >= 10,000 invocations/s, cold start <= 1 ms, idle instance <= 256 KiB.
 * Usage: bench_lua [seconds per warm run, default 2]
 */
#include "broker/sl_common.h"
#include "sandbox/lua_state.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORDS 100
#define COLD_RUNS 2000

static const char count_code[] = "local seen = 0\n"
                                 "function handler(event, context)\n"
                                 "  local n = 0\n"
                                 "  for _, r in ipairs(event.Records) do n = n + 1 end\n"
                                 "  seen = seen + n\n"
                                 "  return nil\n"
                                 "end\n";

static const char decode_code[] = "function handler(event, context)\n"
                                  "  local sum = 0\n"
                                  "  for _, r in ipairs(event.Records) do\n"
                                  "    local doc = json.decode(base64.decode(r.kinesis.data))\n"
                                  "    sum = sum + doc.temp\n"
                                  "  end\n"
                                  "  return { sum = sum }\n"
                                  "end\n";

static char *build_event(size_t *len)
{
    size_t cap = 1 << 20;
    char *ev = malloc(cap);
    size_t n = 0;
    int i;
    if (ev == NULL) return NULL;
    n += (size_t)snprintf(ev + n, cap - n, "{\"Records\":[");
    for (i = 0; i < RECORDS; i++) {
        char data[128];
        unsigned char b64[256];
        int dl = snprintf(data, sizeof data, "{\"temp\":%d,\"city\":\"Oslo\",\"seq\":%d}", i % 40,
                          i);
        EVP_EncodeBlock(b64, (const unsigned char *)data, dl);
        n += (size_t)snprintf(
            ev + n, cap - n,
            "%s{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\",\"partitionKey\":\"sensor-%d\","
            "\"sequenceNumber\":\"496464375771084764169168764058259294255854296762752%05d\","
            "\"data\":\"%s\",\"approximateArrivalTimestamp\":1714644901.421},"
            "\"eventSource\":\"aws:kinesis\",\"eventVersion\":\"1.0\","
            "\"eventID\":\"shardId-000000000000:496464375771084764169168764058259294255854296762752"
            "%05d\",\"eventName\":\"aws:kinesis:record\","
            "\"invokeIdentityArn\":\"arn:aws:iam::123456789012:role/ingest-role\","
            "\"awsRegion\":\"us-east-1\","
            "\"eventSourceARN\":\"arn:aws:kinesis:us-east-1:123456789012:stream/telemetry\"}",
            i ? "," : "", i % 8, i, (const char *)b64, i);
    }
    n += (size_t)snprintf(ev + n, cap - n, "]}");
    *len = n;
    return ev;
}

static const char ctx[] = "{\"awsRequestId\":\"8476a536-e9f4-11e8-9739-2dfe598c3fcd\","
                          "\"functionName\":\"bench\",\"functionVersion\":\"$LATEST\","
                          "\"invokedFunctionArn\":\"arn:aws:lambda:us-east-1:000000000000:function:"
                          "bench\",\"memoryLimitInMB\":128,\"logGroupName\":\"/aws/lambda/bench\","
                          "\"logStreamName\":\"2024/05/02/[$LATEST]0123456789abcdef\","
                          "\"deadlineMs\":1714644904421}";

/* CPU time of this thread: the machine is shared, so wall-clock rates understate the cost */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int warm_run(const char *name, const char *code, const char *ev, size_t ev_len,
                    double seconds)
{
    sbx_lua *l = NULL;
    sbx_lua_error err;
    uint64_t t0;
    uint64_t c0;
    uint64_t end;
    uint64_t n = 0;
    size_t peak = 0;
    double el;
    double cpu;
    if (sbx_lua_new(&l, code, strlen(code), "main.lua", "handler", NULL, NULL, &err) != 0) {
        fprintf(stderr, "init failed: %s: %s\n", err.error_type, err.error_message);
        return 1;
    }
    t0 = sl_mono_ns();
    c0 = cpu_ns();
    end = t0 + (uint64_t)(seconds * 1e9);
    do {
        sbx_lua_result r;
        int i;
        for (i = 0; i < 100; i++) {
            if (sbx_lua_invoke(l, ev, ev_len, ctx, sizeof ctx - 1, 0, &r) != 0 ||
                r.status != SBX_LUA_OK) {
                fprintf(stderr, "invoke failed: %s\n", r.payload ? r.payload : "?");
                sbx_lua_result_clear(&r);
                sbx_lua_free(l);
                return 1;
            }
            if (r.peak_memory > peak) peak = r.peak_memory;
            sbx_lua_result_clear(&r);
            n++;
        }
    } while (sl_mono_ns() < end);
    el = (double)(sl_mono_ns() - t0) / 1e9;
    cpu = (double)(cpu_ns() - c0) / 1e9;
    printf("%-34s %8.0f inv/s wall (%.1f us), %8.0f inv/s per CPU-second (%.1f us CPU); "
           "%llu runs, peak heap %zu KiB\n",
           name, (double)n / el, el * 1e6 / (double)n, (double)n / cpu, cpu * 1e6 / (double)n,
           (unsigned long long)n, peak / 1024);
    sbx_lua_free(l);
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    size_t ev_len = 0;
    char *ev = build_event(&ev_len);
    static uint64_t cold[COLD_RUNS];
    sbx_lua *l = NULL;
    sbx_lua_error err;
    int i;
    int rc = 0;

    if (ev == NULL) return 1;
    if (seconds <= 0) seconds = 2.0;
    printf("bench_lua: event of %d records, %zu bytes of JSON\n", RECORDS, ev_len);

    rc |= warm_run("warm invoke (empty event {})", count_code, "{\"Records\":[]}", 14, seconds);
    rc |= warm_run("warm invoke (count records)", count_code, ev, ev_len, seconds);
    rc |= warm_run("warm invoke (b64+json per record)", decode_code, ev, ev_len, seconds);

    for (i = 0; i < COLD_RUNS; i++) {
        uint64_t t0 = sl_mono_ns();
        if (sbx_lua_new(&l, count_code, sizeof count_code - 1, "main.lua", "handler", NULL, NULL,
                        &err) != 0) {
            fprintf(stderr, "cold start failed: %s\n", err.error_message);
            free(ev);
            return 1;
        }
        cold[i] = sl_mono_ns() - t0;
        sbx_lua_free(l);
    }
    qsort(cold, COLD_RUNS, sizeof cold[0], cmp_u64);
    printf("%-34s median %.1f us, p99 %.1f us (%d runs)\n", "cold start (sbx_lua_new)",
           (double)cold[COLD_RUNS / 2] / 1e3, (double)cold[COLD_RUNS * 99 / 100] / 1e3,
           COLD_RUNS);

    if (sbx_lua_new(&l, count_code, sizeof count_code - 1, "main.lua", "handler", NULL, NULL,
                    &err) == 0) {
        size_t after_init = sbx_lua_memory(l);
        for (i = 0; i < 100; i++) {
            sbx_lua_result r;
            sbx_lua_invoke(l, ev, ev_len, ctx, sizeof ctx - 1, 0, &r);
            sbx_lua_result_clear(&r);
        }
        size_t after_runs = sbx_lua_memory(l);
        sbx_lua_trim(l);
        printf("%-34s %.1f KiB after init, %.1f KiB after 100 invocations, %.1f KiB after "
               "sbx_lua_trim\n",
               "idle warm instance memory", (double)after_init / 1024.0,
               (double)after_runs / 1024.0, (double)sbx_lua_memory(l) / 1024.0);
        sbx_lua_free(l);
    } else {
        rc = 1;
    }
    free(ev);
    return rc;
}
