/* bench_http_client.c — a minimal keep-alive HTTP/1.1 client for the Kinesis JSON API, used by
 * tests/bench/bench_http.sh to measure what wrk cannot:
 *   bench_http_client latency PORT STREAM N   sequential single-PutRecord round trips:
 *                                             p50/p99/mean in ms
 *   bench_http_client drain PORT STREAM SHARDS GetRecords (Limit 10000) over every shard from
 *                                             TRIM_HORIZON to the tip: records/s
 * Written by hand (not libcurl) so the figures hold the daemon's cost, not a client library's. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "tests/bench/bench_conn.h"

static int latency(int port, const char *stream, int n)
{
    conn c;
    char json[512];
    double *t = malloc(sizeof *t * (size_t)n), sum = 0;
    if (!t || conn_open(&c, port) != 0) {
        fprintf(stderr, "latency: cannot connect to port %d\n", port);
        return 1;
    }
    for (int i = -200; i < n; i++) { /* 200 warm-up calls */
        char *body;
        size_t blen;
        snprintf(json, sizeof json,
                 "{\"StreamName\":\"%s\",\"Data\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
                 "\"PartitionKey\":\"key-%d\"}", stream, i);
        double t0 = now_s();
        int st = kcall(&c, "PutRecord", json, &body, &blen);
        double dt = (now_s() - t0) * 1000.0;
        if (st != 200) {
            fprintf(stderr, "latency: PutRecord answered %d: %.*s\n", st, (int)blen, body);
            return 1;
        }
        if (i >= 0) {
            t[i] = dt;
            sum += dt;
        }
    }
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    printf("put_record round trip: p50 %.3f ms, p99 %.3f ms, mean %.3f ms (%d sequential "
           "requests, one keep-alive connection)\n",
           t[n / 2], t[(size_t)((double)n * 0.99)], sum / n, n);
    free(t);
    free(c.buf);
    close(c.fd);
    return 0;
}

static int drain(int port, const char *stream, int shards)
{
    conn c;
    char json[1024];
    long total = 0, calls = 0;
    double t0;
    if (conn_open(&c, port) != 0) {
        fprintf(stderr, "drain: cannot connect to port %d\n", port);
        return 1;
    }
    t0 = now_s();
    for (int s = 0; s < shards; s++) {
        char *body, *it;
        size_t blen;
        snprintf(json, sizeof json,
                 "{\"StreamName\":\"%s\",\"ShardId\":\"shardId-%012d\","
                 "\"ShardIteratorType\":\"TRIM_HORIZON\"}", stream, s);
        if (kcall(&c, "GetShardIterator", json, &body, &blen) != 200) {
            fprintf(stderr, "drain: GetShardIterator failed: %.*s\n", (int)blen, body);
            return 1;
        }
        cJSON *r = cJSON_Parse(body);
        it = strdup(cJSON_GetObjectItem(r, "ShardIterator")->valuestring);
        cJSON_Delete(r);
        for (;;) {
            snprintf(json, sizeof json, "{\"ShardIterator\":\"%s\",\"Limit\":10000}", it);
            if (kcall(&c, "GetRecords", json, &body, &blen) != 200) {
                fprintf(stderr, "drain: GetRecords failed: %.*s\n", (int)blen, body);
                return 1;
            }
            calls++;
            r = cJSON_ParseWithLength(body, blen);
            int n = cJSON_GetArraySize(cJSON_GetObjectItem(r, "Records"));
            cJSON *next = cJSON_GetObjectItem(r, "NextShardIterator");
            double behind = cJSON_GetObjectItem(r, "MillisBehindLatest")->valuedouble;
            total += n;
            free(it);
            it = (next && cJSON_IsString(next)) ? strdup(next->valuestring) : NULL;
            cJSON_Delete(r);
            if (!it || (n == 0 && behind == 0)) break;
        }
        free(it);
    }
    double dt = now_s() - t0;
    printf("get_records drain: %ld records over %d shards in %.2f s = %.0f records/s "
           "(%ld GetRecords calls, client parses every response)\n",
           total, shards, dt, (double)total / dt, calls);
    free(c.buf);
    close(c.fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "latency"))
        return latency(atoi(argv[2]), argv[3], atoi(argv[4]));
    if (argc == 5 && !strcmp(argv[1], "drain"))
        return drain(atoi(argv[2]), argv[3], atoi(argv[4]));
    fprintf(stderr, "usage: %s latency PORT STREAM N | drain PORT STREAM SHARDS\n", argv[0]);
    return 2;
}
