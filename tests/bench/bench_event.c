/* bench_event.c — cost of the per-batch JSON work of an event-source mapping: building the
 * Kinesis event for 100 records (functions/event.c), parsing a batchItemFailures response, and
 * matching FilterCriteria (runtime/esm_filter.c). Prints figures (thread CPU time); no
 * thresholds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/sl_common.h"
#include "functions/event.h"
#include "runtime/esm_filter.h"

#define NREC 100
#define ROUNDS 20000

/* CPU time of this thread: the figures stay meaningful on a machine shared with other jobs. */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static double secs_since(uint64_t t0)
{
    return (double)(cpu_ns() - t0) / 1e9;
}

int main(void)
{
    static char seqs[NREC][57];
    static char pks[NREC][16];
    static char datas[NREC][128];
    fn_event_record r[NREC];
    const char *seqp[NREC];
    fn_event_source src = {"arn:aws:kinesis:us-east-1:000000000000:stream/telemetry",
                           "us-east-1", "arn:aws:iam::000000000000:role/ingest-role"};
    for (int i = 0; i < NREC; i++) {
        snprintf(seqs[i], sizeof(seqs[i]), "4964643757710847641691687640582592942558542967%010d",
                 i);
        snprintf(pks[i], sizeof(pks[i]), "sensor-%d", i % 17);
        int n = snprintf(datas[i], sizeof(datas[i]),
                         "{\"temp\":%d,\"city\":\"Oslo\",\"device\":\"dev-%04d\",\"ok\":true,"
                         "\"reading\":%d.%02d,\"tags\":[\"a\",\"b\"]}",
                         i % 40, i, i * 7, i % 100);
        r[i] = (fn_event_record){"shardId-000000000000", seqs[i], pks[i], strlen(pks[i]),
                                 (const uint8_t *)datas[i], (size_t)n, 1714644901421LL + i};
        seqp[i] = seqs[i];
    }

    size_t total = 0;
    uint64_t t0 = cpu_ns();
    for (int k = 0; k < ROUNDS; k++) {
        char *out = NULL;
        size_t len = 0;
        if (fn_event_build(&src, r, NREC, NULL, &out, &len) != 0) return 1;
        total += len;
        sl_free(out);
    }
    double s = secs_since(t0);
    printf("event build (100 records, %zu bytes): %.2f us/event, %.0f events/s\n",
           total / ROUNDS, s * 1e6 / ROUNDS, ROUNDS / s);

    t0 = cpu_ns();
    size_t sizes = 0;
    for (int k = 0; k < ROUNDS; k++) {
        sizes += fn_event_overhead(&src, NULL);
        for (int i = 0; i < NREC; i++) sizes += fn_event_record_size(&src, &r[i]);
    }
    s = secs_since(t0);
    printf("size accounting (100 records): %.2f us/batch (%zu bytes)\n", s * 1e6 / ROUNDS,
           sizes / ROUNDS);

    char resp[256];
    int rn = snprintf(resp, sizeof(resp),
                      "{\"batchItemFailures\":[{\"itemIdentifier\":\"%s\"},"
                      "{\"itemIdentifier\":\"%s\"}]}", seqs[80], seqs[42]);
    t0 = cpu_ns();
    size_t first = 0;
    for (int k = 0; k < ROUNDS; k++) {
        if (fn_event_parse_failures(resp, (size_t)rn, seqp, NREC, &first) != FN_BATCH_PARTIAL) {
            return 1;
        }
    }
    s = secs_since(t0);
    printf("batchItemFailures parse (2 ids, 100-record batch): %.2f us\n", s * 1e6 / ROUNDS);

    esm_filter *f = NULL;
    sl_err err;
    const char *crit = "{\"Filters\":[{\"Pattern\":\"{\\\"partitionKey\\\":[{\\\"prefix\\\":"
                       "\\\"sensor-1\\\"}]}\"},{\"Pattern\":\"{\\\"data\\\":{\\\"temp\\\":"
                       "[{\\\"numeric\\\":[\\\">\\\",20,\\\"<=\\\",30]}],\\\"city\\\":"
                       "[\\\"Oslo\\\"]}}\"}]}";
    if (esm_filter_compile(&f, crit, &err) != 0) {
        fprintf(stderr, "filter: %s\n", err.msg);
        return 1;
    }
    size_t pass = 0;
    t0 = cpu_ns();
    for (int k = 0; k < ROUNDS; k++) {
        for (int i = 0; i < NREC; i++) pass += esm_filter_match(f, &r[i]);
    }
    s = secs_since(t0);
    printf("filter match (metadata + data pattern): %.3f us/record, %.0f records/s, "
           "%.0f%% pass\n",
           s * 1e6 / ((double)ROUNDS * NREC), (double)ROUNDS * NREC / s,
           100.0 * (double)pass / ((double)ROUNDS * NREC));
    esm_filter_free(f);
    return 0;
}
