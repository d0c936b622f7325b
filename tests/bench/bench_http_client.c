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

typedef struct conn {
    int fd;
    char *buf;      /* response bytes */
    size_t cap;
} conn;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int conn_open(conn *c, int port)
{
    struct sockaddr_in a;
    int one = 1;
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) return -1;
    c->cap = 1 << 20;
    c->buf = malloc(c->cap);
    return c->buf ? 0 : -1;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* POSTs one Kinesis call; returns the HTTP status and points *body at the response body. */
static int call(conn *c, const char *op, const char *json, char **body, size_t *blen)
{
    char head[1024];
    size_t len = strlen(json), have = 0, need = 0, hdr_end = 0;
    int n = snprintf(head, sizeof head,
                     "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/x-amz-json-1.1\r\n"
                     "X-Amz-Target: Kinesis_20131202.%s\r\nX-Amz-Date: 20250101T000000Z\r\n"
                     "Authorization: AWS4-HMAC-SHA256 Credential=bench/20250101/us-east-1/"
                     "kinesis/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, "
                     "Signature=00\r\nContent-Length: %zu\r\n\r\n",
                     op, len);
    if (write_all(c->fd, head, (size_t)n) || write_all(c->fd, json, len)) return -1;
    for (;;) {
        if (have == c->cap) {
            c->cap *= 2;
            c->buf = realloc(c->buf, c->cap);
            if (!c->buf) return -1;
        }
        ssize_t r = read(c->fd, c->buf + have, c->cap - have);
        if (r <= 0) return -1;
        have += (size_t)r;
        if (!hdr_end) {
            char *e = memmem(c->buf, have, "\r\n\r\n", 4);
            if (!e) continue;
            hdr_end = (size_t)(e - c->buf) + 4;
            char *cl = memmem(c->buf, hdr_end, "Content-Length:", 15);
            if (!cl) cl = memmem(c->buf, hdr_end, "content-length:", 15);
            need = hdr_end + (cl ? strtoul(cl + 15, NULL, 10) : 0);
            if (need + 1 > c->cap) {
                c->cap = need + 1;
                c->buf = realloc(c->buf, c->cap);
                if (!c->buf) return -1;
            }
        }
        if (have >= need) break;
    }
    c->buf[need] = '\0';
    *body = c->buf + hdr_end;
    *blen = need - hdr_end;
    return atoi(c->buf + 9);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

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
        int st = call(&c, "PutRecord", json, &body, &blen);
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
        if (call(&c, "GetShardIterator", json, &body, &blen) != 200) {
            fprintf(stderr, "drain: GetShardIterator failed: %.*s\n", (int)blen, body);
            return 1;
        }
        cJSON *r = cJSON_Parse(body);
        it = strdup(cJSON_GetObjectItem(r, "ShardIterator")->valuestring);
        cJSON_Delete(r);
        for (;;) {
            snprintf(json, sizeof json, "{\"ShardIterator\":\"%s\",\"Limit\":10000}", it);
            if (call(&c, "GetRecords", json, &body, &blen) != 200) {
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
