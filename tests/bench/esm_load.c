/* esm_load.c — load generator and probe for tests/bench/bench_esm_daemon.sh (event-source
 * mappings against a real daemon). Not named bench_* on purpose: it needs arguments, and
 * run_bench.sh runs every $(BUILD)/bench/bench_* binary without any.
 *
 *   esm_load latency PORT IN OUT N
 *       N sequential single records put to stream IN (1 shard); a mapping (batching window 0)
 *       runs a Lua handler that copies each record's approximateArrivalTimestamp into a record
 *       of stream OUT. Per record two figures:
 *         server: arrival time of the OUT record - arrival time of the IN record (both stamped
 *                 by the broker on append, millisecond resolution): append -> batch cut ->
 *                 event JSON -> Lua handler -> put_record append. Truncation of both stamps to
 *                 whole ms makes each sample exact to +-1 ms; the mean is unbiased.
 *         client: from just before PutRecord(IN) is written to the socket until GetRecords on
 *                 OUT (polled back-to-back over a keep-alive connection) returns the copy:
 *                 microsecond clock, an upper bound (adds the PutRecord round trip, the
 *                 handler's own put_record and up to one GetRecords poll).
 *   esm_load load PORT STREAM RATE SECONDS CONNS UUID
 *       CONNS producer threads (one keep-alive connection each) send PutRecords of 500 x
 *       100-byte records with random partition keys to STREAM, paced to RATE records/s in all
 *       (0 = as fast as they can) for SECONDS; meanwhile the main thread samples GET /metrics
 *       every 100 ms: sluice_esm_records_out_total of mapping UUID (records acknowledged by
 *       the handler) and sluice_esm_iterator_age_ms of its shards. After the producers stop
 *       it waits (<= 30 s) until every record put was delivered. Prints the put rate, the
 *       delivery rate while producing (first second skipped as warm-up), the end-to-end rate
 *       (all records / first put to last delivery) and IteratorAge p50/p99/max over the
 *       samples taken while producing.
 *
 * A hand-rolled HTTP/1.1 client (as bench_http_client.c) so the figures carry the daemon's
 * cost, not a client library's; cJSON parses the few responses read. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <openssl/evp.h>

#include "tests/bench/bench_conn.h"

static void sleep_until(double t)
{
    double d = t - now_s();
    if (d <= 0) return;
    struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static double pct(const double *sorted, size_t n, double p)
{
    size_t i = (size_t)((double)n * p);
    if (i >= n) i = n - 1;
    return sorted[i];
}

/* ---- latency -------------------------------------------------------------------------------- */

static char *shard_iterator(conn *c, const char *stream, const char *type)
{
    char json[512], *body, *it = NULL;
    size_t blen;
    snprintf(json, sizeof json,
             "{\"StreamName\":\"%s\",\"ShardId\":\"shardId-000000000000\","
             "\"ShardIteratorType\":\"%s\"}", stream, type);
    if (kcall(c, "GetShardIterator", json, &body, &blen) != 200) {
        fprintf(stderr, "esm_load: GetShardIterator %s: %s\n", stream, body);
        return NULL;
    }
    cJSON *r = cJSON_Parse(body);
    cJSON *v = cJSON_GetObjectItem(r, "ShardIterator");
    if (cJSON_IsString(v)) it = strdup(v->valuestring);
    cJSON_Delete(r);
    return it;
}

static int latency(int port, const char *in, const char *out, int n)
{
    conn c;
    const int warm = 50;
    double *cl = malloc(sizeof *cl * (size_t)n), *sv = malloc(sizeof *sv * (size_t)n);
    double csum = 0, ssum = 0;
    char *it;
    int rc = 1;

    if (!cl || !sv || conn_open(&c, port) != 0) {
        fprintf(stderr, "esm_load: cannot connect to port %d\n", port);
        return 1;
    }
    if (!(it = shard_iterator(&c, out, "LATEST"))) goto out;
    for (int i = -warm; i < n; i++) {
        char json[1024], *body;
        size_t blen;
        double got_in = -1, got_out = -1, t1 = 0;
        snprintf(json, sizeof json,
                 "{\"StreamName\":\"%s\",\"Data\":\"bGF0ZW5jeQ==\",\"PartitionKey\":\"k%d\"}",
                 in, i);
        double t0 = now_s();
        if (kcall(&c, "PutRecord", json, &body, &blen) != 200) {
            fprintf(stderr, "esm_load: PutRecord: %s\n", body);
            goto out;
        }
        while (got_out < 0) {
            if (now_s() - t0 > 10) {
                fprintf(stderr, "esm_load: record %d never reached the handler\n", i);
                goto out;
            }
            snprintf(json, sizeof json, "{\"ShardIterator\":\"%s\"}", it);
            if (kcall(&c, "GetRecords", json, &body, &blen) != 200) {
                fprintf(stderr, "esm_load: GetRecords: %s\n", body);
                goto out;
            }
            t1 = now_s();
            cJSON *r = cJSON_ParseWithLength(body, blen);
            cJSON *recs = cJSON_GetObjectItem(r, "Records");
            cJSON *next = cJSON_GetObjectItem(r, "NextShardIterator");
            if (cJSON_GetArraySize(recs) > 0) {
                cJSON *rec = cJSON_GetArrayItem(recs, 0);
                cJSON *data = cJSON_GetObjectItem(rec, "Data");
                unsigned char raw[128];
                int dl = EVP_DecodeBlock(raw, (const unsigned char *)data->valuestring,
                                         (int)strlen(data->valuestring));
                if (dl > 0 && dl < (int)sizeof raw) {
                    raw[dl] = '\0';
                    got_in = strtod((char *)raw, NULL);
                }
                got_out = cJSON_GetObjectItem(rec, "ApproximateArrivalTimestamp")->valuedouble;
                if (cJSON_GetArraySize(recs) != 1) {
                    fprintf(stderr, "esm_load: %d output records for one input\n",
                            cJSON_GetArraySize(recs));
                    cJSON_Delete(r);
                    goto out;
                }
            }
            free(it);
            it = cJSON_IsString(next) ? strdup(next->valuestring) : NULL;
            cJSON_Delete(r);
            if (!it) goto out;
        }
        if (i >= 0) {
            cl[i] = (t1 - t0) * 1000.0;
            sv[i] = (got_out - got_in) * 1000.0;
            if (sv[i] < 0) sv[i] = 0;   /* float rounding of equal stamps */
            csum += cl[i];
            ssum += sv[i];
        }
    }
    qsort(cl, (size_t)n, sizeof *cl, cmp_double);
    qsort(sv, (size_t)n, sizeof *sv, cmp_double);
    printf("put-to-handler latency (server stamps, +-1 ms each): p50 %.0f ms, p99 %.0f ms, "
           "mean %.3f ms (%d single records, batching window 0)\n",
           pct(sv, (size_t)n, 0.5), pct(sv, (size_t)n, 0.99), ssum / n, n);
    printf("put-to-handler latency (client clock, upper bound): p50 %.3f ms, p99 %.3f ms, "
           "mean %.3f ms\n",
           pct(cl, (size_t)n, 0.5), pct(cl, (size_t)n, 0.99), csum / n);
    rc = 0;
out:
    free(it);
    free(cl);
    free(sv);
    conn_close(&c);
    return rc;
}

/* ---- load ------------------------------------------------------------------------------------ */

#define RECS_PER_CALL 500
#define BODIES 8

typedef struct producer {
    pthread_t th;
    int port;
    const char *stream;
    double rate;             /* records/s for this producer, 0 = unpaced */
    double t_end;
    char *bodies[BODIES];
    size_t lens[BODIES];
    long sent;               /* records acknowledged (FailedRecordCount subtracted) */
    long failed;
    int err;
} producer;

static atomic_long total_put;

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static int build_bodies(producer *p, uint64_t seed)
{
    for (int b = 0; b < BODIES; b++) {
        size_t cap = 64 + (size_t)RECS_PER_CALL * 220, len = 0;
        char *s = malloc(cap);
        if (!s) return -1;
        len += (size_t)snprintf(s, cap, "{\"StreamName\":\"%s\",\"Records\":[", p->stream);
        for (int i = 0; i < RECS_PER_CALL; i++) {
            unsigned char raw[100], b64[140];
            char key[17];
            for (size_t j = 0; j < sizeof raw; j++) raw[j] = (unsigned char)rng_next(&seed);
            EVP_EncodeBlock(b64, raw, (int)sizeof raw);
            for (int j = 0; j < 16; j++)
                key[j] = "abcdefghijklmnopqrstuvwxyz0123456789"[rng_next(&seed) % 36];
            key[16] = '\0';
            len += (size_t)snprintf(s + len, cap - len,
                                    "%s{\"Data\":\"%s\",\"PartitionKey\":\"%s\"}",
                                    i ? "," : "", (char *)b64, key);
        }
        len += (size_t)snprintf(s + len, cap - len, "]}");
        p->bodies[b] = s;
        p->lens[b] = len;
    }
    return 0;
}

static void *produce(void *arg)
{
    producer *p = arg;
    conn c;
    double t0 = now_s();
    long calls = 0;
    if (conn_open(&c, p->port) != 0) {
        p->err = 1;
        return NULL;
    }
    while (now_s() < p->t_end) {
        char *body;
        size_t blen;
        if (p->rate > 0) sleep_until(t0 + (double)calls * RECS_PER_CALL / p->rate);
        int st = call(&c, "PutRecords", NULL, p->bodies[calls % BODIES],
                      p->lens[calls % BODIES], &body, &blen);
        calls++;
        if (st != 200) {
            fprintf(stderr, "esm_load: PutRecords answered %d: %.200s\n", st, body);
            p->err = 1;
            break;
        }
        char *f = strstr(body, "\"FailedRecordCount\":");
        long failed = f ? strtol(f + 20, NULL, 10) : 0;
        p->failed += failed;
        p->sent += RECS_PER_CALL - failed;
        atomic_fetch_add(&total_put, RECS_PER_CALL - failed);
    }
    conn_close(&c);
    return NULL;
}

/* Reads records_out (mapping total) and the largest shard iterator age of mapping uuid. */
static int sample_metrics(conn *c, const char *uuid, double *out, double *age)
{
    char *body, *p;
    size_t blen;
    char want[128];
    if (call(c, NULL, "/metrics", NULL, 0, &body, &blen) != 200) return -1;
    snprintf(want, sizeof want, "{uuid=\"%s\"", uuid);
    *out = -1;
    *age = -1;
    for (p = body; p && *p;) {
        char *line = p, *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        p = eol ? eol + 1 : NULL;
        if (!memmem(line, ll, want, strlen(want))) continue;
        char *sp = memrchr(line, ' ', ll);
        if (!sp) continue;
        double v = strtod(sp + 1, NULL);
        int has_shard = memmem(line, ll, "shard=\"", 7) != NULL;
        if (!strncmp(line, "sluice_esm_records_out_total{", 29) && !has_shard) *out = v;
        if (!strncmp(line, "sluice_esm_iterator_age_ms{", 27) && has_shard && v > *age)
            *age = v;
    }
    return *out < 0 ? -1 : 0;
}

static int load(int port, const char *stream, double rate, double secs, int nconn,
                const char *uuid)
{
    producer *ps = calloc((size_t)nconn, sizeof *ps);
    size_t cap = 4096, nages = 0;
    double *ages = malloc(cap * sizeof *ages);
    double out0 = 0, out_warm = -1, t_warm = 0, out_end = 0, t_end_out = 0, o, a;
    double t_last_out = 0, last_out = -1;
    conn mc;
    int rc = 1;

    if (!ps || !ages || conn_open(&mc, port) != 0) {
        fprintf(stderr, "esm_load: cannot connect to port %d\n", port);
        return 1;
    }
    if (sample_metrics(&mc, uuid, &out0, &a) != 0) {
        fprintf(stderr, "esm_load: mapping %s not in /metrics\n", uuid);
        return 1;
    }
    for (int i = 0; i < nconn; i++) {
        ps[i].port = port;
        ps[i].stream = stream;
        ps[i].rate = rate / nconn;
        if (build_bodies(&ps[i], 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)) != 0) return 1;
    }
    double t0 = now_s();
    for (int i = 0; i < nconn; i++) {
        ps[i].t_end = t0 + secs;
        pthread_create(&ps[i].th, NULL, produce, &ps[i]);
    }
    /* sample while producing */
    for (double t = t0 + 0.1; now_s() < t0 + secs; t += 0.1) {
        sleep_until(t);
        if (sample_metrics(&mc, uuid, &o, &a) != 0) break;
        double now = now_s();
        if (now - t0 >= 1.0) {
            if (out_warm < 0) {
                out_warm = o;
                t_warm = now;
            } else if (a >= 0) {
                if (nages == cap) {
                    double *na = realloc(ages, 2 * cap * sizeof *ages);
                    if (!na) break;
                    ages = na;
                    cap *= 2;
                }
                ages[nages++] = a;
            }
        }
        out_end = o;
        t_end_out = now;
    }
    for (int i = 0; i < nconn; i++) pthread_join(ps[i].th, NULL);
    double t_prod = now_s() - t0;
    long put = atomic_load(&total_put), failed = 0;
    for (int i = 0; i < nconn; i++) {
        failed += ps[i].failed;
        if (ps[i].err) fprintf(stderr, "esm_load: producer %d failed\n", i);
    }
    /* drain: every record put must come out */
    double deadline = now_s() + 30;
    for (;;) {
        if (sample_metrics(&mc, uuid, &o, &a) != 0) break;
        if (o != last_out) {
            last_out = o;
            t_last_out = now_s();
        }
        if (o - out0 >= (double)put || now_s() > deadline) break;
        sleep_until(now_s() + 0.01);
    }
    printf("producers: %ld records put in %.2f s = %.0f records/s (%d connections, %s, "
           "%ld throttled/failed entries)\n",
           put, t_prod, (double)put / t_prod, nconn, rate > 0 ? "paced" : "unpaced", failed);
    if (out_warm >= 0 && t_end_out > t_warm)
        printf("delivered while producing: %.0f records/s (records_out over %.1f s after a "
               "1 s warm-up)\n", (out_end - out_warm) / (t_end_out - t_warm),
               t_end_out - t_warm);
    if (last_out - out0 >= (double)put) {
        printf("delivered end to end: %.0f records put -> handled in %.2f s = %.0f records/s\n",
               (double)put, t_last_out - t0, (double)put / (t_last_out - t0));
        rc = 0;
    } else {
        printf("NOT drained: %.0f of %ld records delivered 30 s after the producers stopped\n",
               last_out - out0, put);
    }
    if (nages) {
        qsort(ages, nages, sizeof *ages, cmp_double);
        printf("iterator age while producing: p50 %.0f ms, p99 %.0f ms, max %.0f ms (%zu samples "
               "of the largest shard IteratorAge, every 100 ms)\n",
               pct(ages, nages, 0.5), pct(ages, nages, 0.99), ages[nages - 1], nages);
    }
    for (int i = 0; i < nconn; i++)
        for (int b = 0; b < BODIES; b++) free(ps[i].bodies[b]);
    free(ps);
    free(ages);
    conn_close(&mc);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 6 && !strcmp(argv[1], "latency"))
        return latency(atoi(argv[2]), argv[3], argv[4], atoi(argv[5]));
    if (argc == 8 && !strcmp(argv[1], "load"))
        return load(atoi(argv[2]), argv[3], strtod(argv[4], NULL), strtod(argv[5], NULL),
                    atoi(argv[6]), argv[7]);
    fprintf(stderr, "usage: esm_load latency PORT IN OUT N\n"
                    "       esm_load load PORT STREAM RATE SECONDS CONNS UUID\n");
    return 2;
}
