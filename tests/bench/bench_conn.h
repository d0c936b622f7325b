/* bench_conn.h — the benchmarks' minimal HTTP/1.1 client (keep-alive, one request at a time)
 * for the daemon's Kinesis JSON API and GET endpoints, shared by bench_http_client.c and
 * esm_load.c. Header-only: each program includes it once. Hand-written rather than libcurl so
 * that the request path measured is the daemon's, not a client library's. */
#ifndef TESTS_BENCH_CONN_H
#define TESTS_BENCH_CONN_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BENCH_HELPER static __attribute__((unused))

typedef struct conn {
    int fd;
    char *buf;
    size_t cap;
} conn;

BENCH_HELPER double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

BENCH_HELPER int conn_open(conn *c, int port)
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

BENCH_HELPER void conn_close(conn *c)
{
    if (c->fd >= 0) close(c->fd);
    free(c->buf);
}

BENCH_HELPER int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One request; returns the HTTP status (or -1) and points *body at the NUL-terminated body.
 * op NULL: GET path; else POST / with the Kinesis target op and the JSON body. */
BENCH_HELPER int call(conn *c, const char *op, const char *path, const char *json, size_t len,
                char **body, size_t *blen)
{
    char head[1024];
    size_t have = 0, need = 0, hdr_end = 0;
    int n;
    if (op)
        n = snprintf(head, sizeof head,
                     "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/x-amz-json-1.1\r\n"
                     "X-Amz-Target: Kinesis_20131202.%s\r\nX-Amz-Date: 20250101T000000Z\r\n"
                     "Authorization: AWS4-HMAC-SHA256 Credential=bench/20250101/us-east-1/"
                     "kinesis/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, "
                     "Signature=00\r\nContent-Length: %zu\r\n\r\n",
                     op, len);
    else
        n = snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write_all(c->fd, head, (size_t)n) || (len && write_all(c->fd, json, len))) return -1;
    for (;;) {
        if (have + 1 >= c->cap) {
            char *nb = realloc(c->buf, c->cap * 2);
            if (!nb) return -1;
            c->buf = nb;
            c->cap *= 2;
        }
        ssize_t r = read(c->fd, c->buf + have, c->cap - have - 1);
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
                char *nb = realloc(c->buf, need + 1);
                if (!nb) return -1;
                c->buf = nb;
                c->cap = need + 1;
            }
        }
        if (have >= need) break;
    }
    c->buf[need] = '\0';
    *body = c->buf + hdr_end;
    *blen = need - hdr_end;
    return atoi(c->buf + 9);
}

BENCH_HELPER int kcall(conn *c, const char *op, const char *json, char **body, size_t *blen)
{
    return call(c, op, NULL, json, strlen(json), body, blen);
}

BENCH_HELPER int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
