/* test_http_server.c — runtime/http_server.c over real loopback sockets (a server loop on its own
 * thread, blocking client sockets in the test) and through the socket-less fake connection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <nghttp2/nghttp2.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "broker/sl_common.h"
#include "runtime/http_server.h"
#include "runtime/http_server_int.h"

/* ------------------------------------------------------------------------------------------ */
/* server fixture: loop on a thread */

typedef struct fixture {
    uv_loop_t loop;
    uv_async_t stop_async;
    uv_thread_t thr;
    uv_sem_t ready;
    http_server *srv;
    http_server_opts opts;
    int start_rc;
    int port;
    int loop_close_rc;
    atomic_int done_called;
    atomic_int requests;
    atomic_int held_released;
    http_exchange *held;
} fixture;

typedef struct delayed {
    uv_timer_t t;
    http_exchange *x;
    char body[256];
} delayed;

static void delayed_closed(uv_handle_t *h) { free(h->data); }

static void delayed_fire(uv_timer_t *t)
{
    delayed *d = t->data;
    http_header h = {"Content-Type", "text/plain"};
    http_respond(d->x, 200, &h, 1, (const uint8_t *)d->body, strlen(d->body));
    uv_close((uv_handle_t *)t, delayed_closed);
}

/* Routes by path:
 *   /echo           200, body = request body, X-Method / X-Query / X-Proto headers
 *   /delay/N        answered after N ms by a timer, body = path?query
 *   /hold           kept unanswered until /release
 *   /release        answers the held exchange (maybe orphaned), then itself
 *   /header/NAME    body = value of header NAME
 *   anything else   200 "ok"
 */
static void handler(void *ctx, http_exchange *x)
{
    fixture *f = ctx;
    const http_request *r = http_exchange_request(x);
    atomic_fetch_add(&f->requests, 1);
    if (!strcmp(r->path, "/echo")) {
        http_header hs[3] = {{"X-Method", r->method}, {"X-Query", r->query},
                             {"X-Proto", r->http2 ? "h2" : "h1"}};
        http_respond(x, 200, hs, 3, r->body, r->body_len);
    } else if (!strncmp(r->path, "/delay/", 7)) {
        delayed *d = calloc(1, sizeof *d);
        assert_non_null(d);
        d->x = x;
        snprintf(d->body, sizeof d->body, "%s?%s", r->path, r->query);
        uv_timer_init(&f->loop, &d->t);
        d->t.data = d;
        uv_timer_start(&d->t, delayed_fire, (uint64_t)atoi(r->path + 7), 0);
    } else if (!strcmp(r->path, "/hold")) {
        f->held = x;
    } else if (!strcmp(r->path, "/release")) {
        if (f->held) {
            http_respond(f->held, 200, NULL, 0, (const uint8_t *)"late", 4);
            f->held = NULL;
            atomic_fetch_add(&f->held_released, 1);
        }
        http_respond(x, 200, NULL, 0, (const uint8_t *)"released", 8);
    } else if (!strncmp(r->path, "/header/", 8)) {
        const char *v = http_request_header(r, r->path + 8);
        http_respond(x, v ? 200 : 404, NULL, 0, (const uint8_t *)(v ? v : ""), v ? strlen(v) : 0);
    } else {
        http_respond(x, 200, NULL, 0, (const uint8_t *)"ok", 2);
    }
}

static void stop_done(void *ctx)
{
    fixture *f = ctx;
    atomic_fetch_add(&f->done_called, 1);
}

static void on_stop_async(uv_async_t *a)
{
    fixture *f = a->data;
    http_server_stop(f->srv, stop_done, f);
    uv_close((uv_handle_t *)a, NULL);
}

static void server_thread(void *arg)
{
    fixture *f = arg;
    uv_loop_init(&f->loop);
    uv_async_init(&f->loop, &f->stop_async, on_stop_async);
    f->stop_async.data = f;
    f->start_rc = http_server_start(&f->srv, &f->loop, &f->opts, handler, f);
    f->port = f->start_rc == 0 ? http_server_port(f->srv) : -1;
    uv_sem_post(&f->ready);
    if (f->start_rc != 0) uv_close((uv_handle_t *)&f->stop_async, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->loop_close_rc = uv_loop_close(&f->loop);
}

static fixture *fx_start_conns(size_t max_body, uint32_t idle_ms, uint32_t max_conns)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->opts.host = "127.0.0.1";
    f->opts.port = 0;
    f->opts.max_body = max_body;
    f->opts.idle_timeout_ms = idle_ms;
    f->opts.max_connections = max_conns;
    uv_sem_init(&f->ready, 0);
    assert_int_equal(uv_thread_create(&f->thr, server_thread, f), 0);
    uv_sem_wait(&f->ready);
    assert_int_equal(f->start_rc, 0);
    assert_true(f->port > 0);
    return f;
}

static fixture *fx_start(size_t max_body, uint32_t idle_ms)
{
    return fx_start_conns(max_body, idle_ms, 0);
}

/* Stops the server, joins the loop thread and checks the loop closed with no handle left. */
static void fx_stop(fixture *f)
{
    uv_async_send(&f->stop_async);
    uv_thread_join(&f->thr);
    assert_int_equal(atomic_load(&f->done_called), 1);
    assert_int_equal(f->loop_close_rc, 0);
    uv_sem_destroy(&f->ready);
    free(f);
}

/* ------------------------------------------------------------------------------------------ */
/* blocking client */

typedef struct client {
    int fd;
    char buf[1 << 16];
    size_t len;
} client;

typedef struct resp {
    int status;
    char headers[4096];
    char *body;
    size_t body_len;
} resp;

static int tcp_connect(int port)
{
    struct sockaddr_in a;
    struct timeval tv = {10, 0};   /* a hang guard, not a timing assertion */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    assert_true(fd >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static client *cl_open(int port)
{
    client *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = tcp_connect(port);
    return c;
}

static void cl_close(client *c)
{
    close(c->fd);
    free(c);
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;   /* the server may have closed (413); the reply says what happened */
        s += w;
        n -= (size_t)w;
    }
}

static void cl_send(client *c, const char *s) { send_all(c->fd, s, strlen(s)); }

/* Reads more bytes into the buffer: >0 read, 0 EOF, <0 error/timeout. */
static ssize_t cl_fill(client *c)
{
    ssize_t n;
    if (c->len == sizeof c->buf) return -1;
    do {
        n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) c->len += (size_t)n;
    return n;
}

/* Reads one response (Content-Length framed). 0 ok, -1 if the connection ended first. */
static int cl_read(client *c, resp *r)
{
    char *end;
    size_t hlen;
    size_t clen = 0;
    const char *p;
    memset(r, 0, sizeof *r);
    for (;;) {
        end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end) break;
        if (cl_fill(c) <= 0) return -1;
    }
    hlen = (size_t)(end - c->buf) + 4;
    assert_true(hlen < sizeof r->headers);
    memcpy(r->headers, c->buf, hlen);
    r->headers[hlen] = '\0';
    assert_int_equal(sscanf(r->headers, "HTTP/1.1 %d", &r->status), 1);
    p = strcasestr(r->headers, "\r\nContent-Length:");
    assert_non_null(p);
    clen = strtoul(p + 17, NULL, 10);
    while (c->len < hlen + clen) {
        if (cl_fill(c) <= 0) return -1;
    }
    r->body = calloc(1, clen + 1);
    memcpy(r->body, c->buf + hlen, clen);
    r->body_len = clen;
    memmove(c->buf, c->buf + hlen + clen, c->len - hlen - clen);
    c->len -= hlen + clen;
    return 0;
}

static void resp_free(resp *r) { free(r->body); }

/* True when the server closed the connection (EOF or reset). */
static bool cl_closed(client *c)
{
    ssize_t n;
    for (;;) {
        n = cl_fill(c);
        if (n == 0) return true;
        if (n < 0) return errno == ECONNRESET;
        c->len = 0;   /* discard */
    }
}

static void expect_response(client *c, int status, const char *body)
{
    resp r;
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, status);
    if (body) assert_string_equal(r.body, body);
    resp_free(&r);
}

/* ------------------------------------------------------------------------------------------ */
/* tests over sockets */

static void test_http_get_and_post(void **state)
{
    fixture *f = fx_start(0, 0);
    client *c = cl_open(f->port);
    resp r;
    (void)state;
    cl_send(c, "GET /echo?a=1&b=2 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "X-Method: GET\r\n"));
    assert_non_null(strstr(r.headers, "X-Query: a=1&b=2\r\n"));
    assert_non_null(strstr(r.headers, "X-Proto: h1\r\n"));
    assert_non_null(strstr(r.headers, "\r\nDate: "));
    assert_null(strcasestr(r.headers, "Connection: close"));
    assert_int_equal(r.body_len, 0);
    resp_free(&r);
    cl_send(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "X-Method: POST\r\n"));
    assert_string_equal(r.body, "hello world");
    resp_free(&r);
    cl_send(c, "GET /header/X-Amz-Target HTTP/1.1\r\nx-amz-target: Kinesis_20131202.PutRecord\r\n"
               "\r\n");
    expect_response(c, 200, "Kinesis_20131202.PutRecord");
    cl_close(c);
    fx_stop(f);
}

static void test_http_keepalive_many_requests(void **state)
{
    fixture *f = fx_start(0, 0);
    client *c = cl_open(f->port);
    int i;
    (void)state;
    for (i = 0; i < 50; i++) {
        char req[128];
        char body[16];
        snprintf(body, sizeof body, "n%d", i);
        snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(body), body);
        cl_send(c, req);
        expect_response(c, 200, body);
    }
    assert_int_equal(atomic_load(&f->requests), 50);
    cl_close(c);
    fx_stop(f);
}

static void test_http_pipelined_async_out_of_order(void **state)
{
    fixture *f = fx_start(0, 0);
    client *c = cl_open(f->port);
    (void)state;
    /* the first is answered last (timer), the last at once: the wire order must not change */
    cl_send(c, "GET /delay/120?a HTTP/1.1\r\n\r\n"
               "GET /delay/40?b HTTP/1.1\r\n\r\n"
               "GET /delay/0?c HTTP/1.1\r\n\r\n"
               "POST /echo HTTP/1.1\r\nContent-Length: 1\r\n\r\nd"
               "GET /delay/80?e HTTP/1.1\r\n\r\n");
    expect_response(c, 200, "/delay/120?a");
    expect_response(c, 200, "/delay/40?b");
    expect_response(c, 200, "/delay/0?c");
    expect_response(c, 200, "d");
    expect_response(c, 200, "/delay/80?e");
    cl_close(c);
    fx_stop(f);
}

static void test_http_pipelined_in_tiny_pieces(void **state)
{
    fixture *f = fx_start(0, 0);
    client *c = cl_open(f->port);
    const char *req = "POST /echo?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                      "GET /delay/5?z HTTP/1.1\r\n\r\n";
    size_t i;
    (void)state;
    for (i = 0; req[i]; i++) {
        send_all(c->fd, req + i, 1);
        if (i % 7 == 0) usleep(200);
    }
    expect_response(c, 200, "abc");
    expect_response(c, 200, "/delay/5?z");
    cl_close(c);
    fx_stop(f);
}

static void test_http_chunked_body(void **state)
{
    fixture *f = fx_start(0, 0);
    client *c = cl_open(f->port);
    (void)state;
    cl_send(c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    expect_response(c, 200, "hello world");
    /* still usable after a chunked request */
    cl_send(c, "GET / HTTP/1.1\r\n\r\n");
    expect_response(c, 200, "ok");
    cl_close(c);
    fx_stop(f);
}

static void test_http_body_too_large_gets_413_and_close(void **state)
{
    fixture *f = fx_start(1024, 0);
    client *c = cl_open(f->port);
    char *big = malloc(2000);
    resp r;
    (void)state;
    memset(big, 'x', 2000);
    cl_send(c, "POST /echo HTTP/1.1\r\nContent-Length: 2000\r\n\r\n");
    send_all(c->fd, big, 2000);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 413);
    assert_int_equal(r.body_len, 0);
    assert_non_null(strstr(r.headers, "Connection: close"));
    resp_free(&r);
    assert_true(cl_closed(c));
    cl_close(c);
    /* chunked bodies are counted as they arrive */
    c = cl_open(f->port);
    cl_send(c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n");
    send_all(c->fd, big, 0x400);
    cl_send(c, "\r\n400\r\n");
    send_all(c->fd, big, 0x400);
    cl_send(c, "\r\n0\r\n\r\n");
    expect_response(c, 413, "");
    assert_true(cl_closed(c));
    cl_close(c);
    /* exactly the limit is fine */
    c = cl_open(f->port);
    cl_send(c, "POST /echo HTTP/1.1\r\nContent-Length: 1024\r\n\r\n");
    send_all(c->fd, big, 1024);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 1024);
    resp_free(&r);
    cl_close(c);
    free(big);
    fx_stop(f);
}

static void test_http_garbage_gets_400_and_close(void **state)
{
    fixture *f = fx_start(0, 0);
    client *c = cl_open(f->port);
    (void)state;
    cl_send(c, "\x01\x02 garbage\r\n\r\n");
    expect_response(c, 400, "");
    assert_true(cl_closed(c));
    cl_close(c);
    /* a bad request after a good one: the good one is answered first */
    c = cl_open(f->port);
    cl_send(c, "GET /delay/30?first HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nBad Header\r\n\r\n");
    expect_response(c, 200, "/delay/30?first");
    expect_response(c, 400, "");
    assert_true(cl_closed(c));
    cl_close(c);
    fx_stop(f);
}

static void test_http_headers_too_large_gets_431(void **state)
{
    fixture *f = fx_start(0, 0);
    client *c = cl_open(f->port);
    size_t n = 70 * 1024;
    char *big = malloc(n + 64);
    (void)state;
    strcpy(big, "GET / HTTP/1.1\r\nX-Big: ");
    memset(big + strlen(big), 'a', n);
    big[n] = '\0';
    strcat(big, "\r\n\r\n");
    cl_send(c, big);
    expect_response(c, 431, "");
    assert_true(cl_closed(c));
    cl_close(c);
    free(big);
    fx_stop(f);
}

static void test_http_connection_close_and_http10(void **state)
{
    fixture *f = fx_start(0, 0);
    client *c = cl_open(f->port);
    resp r;
    (void)state;
    cl_send(c, "GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "Connection: close"));
    resp_free(&r);
    assert_true(cl_closed(c));
    cl_close(c);
    c = cl_open(f->port);
    cl_send(c, "GET / HTTP/1.0\r\n\r\n");
    expect_response(c, 200, "ok");
    assert_true(cl_closed(c));
    cl_close(c);
    c = cl_open(f->port);
    cl_send(c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_non_null(strstr(r.headers, "Connection: keep-alive"));
    resp_free(&r);
    cl_send(c, "GET / HTTP/1.0\r\n\r\n");
    expect_response(c, 200, "ok");
    assert_true(cl_closed(c));
    cl_close(c);
    assert_int_equal(atomic_load(&f->requests), 4);
    fx_stop(f);
}

static void test_http_idle_and_slow_connections_are_closed(void **state)
{
    fixture *f = fx_start(0, 200);
    client *idle = cl_open(f->port);
    client *slow = cl_open(f->port);
    client *used = cl_open(f->port);
    (void)state;
    cl_send(slow, "GET / HTTP/1.1\r\nHost: a\r\n");   /* never finished */
    cl_send(used, "GET / HTTP/1.1\r\n\r\n");
    expect_response(used, 200, "ok");
    assert_true(cl_closed(idle));
    assert_true(cl_closed(slow));
    assert_true(cl_closed(used));
    cl_close(idle);
    cl_close(slow);
    cl_close(used);
    fx_stop(f);
}

static void test_http_many_connections(void **state)
{
    enum { N = 600 };
    fixture *f = fx_start(0, 0);
    client **cs = calloc(N, sizeof *cs);
    struct rlimit rl;
    int i;
    (void)state;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 4 * N && rl.rlim_max >= 4 * N) {
        rl.rlim_cur = 4 * N;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (i = 0; i < N; i++) cs[i] = cl_open(f->port);
    for (i = 0; i < N; i++) {
        char req[64];
        snprintf(req, sizeof req, "GET /delay/1?c%d HTTP/1.1\r\n\r\n", i);
        cl_send(cs[i], req);
    }
    for (i = N - 1; i >= 0; i--) {
        char body[64];
        snprintf(body, sizeof body, "/delay/1?c%d", i);
        expect_response(cs[i], 200, body);
    }
    for (i = 0; i < N; i++) cl_close(cs[i]);
    free(cs);
    fx_stop(f);
}

static void test_http_respond_after_client_disconnected(void **state)
{
    fixture *f = fx_start(0, 0);
    client *c = cl_open(f->port);
    client *d;
    struct linger lg = {1, 0};
    (void)state;
    cl_send(c, "GET /hold HTTP/1.1\r\n\r\n");
    while (atomic_load(&f->requests) < 1) usleep(1000);
    /* reset the connection: the held exchange becomes an orphan */
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    cl_close(c);
    usleep(50 * 1000);
    d = cl_open(f->port);
    cl_send(d, "GET /release HTTP/1.1\r\n\r\n");
    expect_response(d, 200, "released");
    assert_int_equal(atomic_load(&f->held_released), 1);
    /* and a half-closed client still gets its answer */
    cl_send(d, "GET /delay/20?half HTTP/1.1\r\n\r\nGET /delay/0?half2 HTTP/1.1\r\n\r\n");
    shutdown(d->fd, SHUT_WR);
    expect_response(d, 200, "/delay/20?half");
    expect_response(d, 200, "/delay/0?half2");
    assert_true(cl_closed(d));
    cl_close(d);
    fx_stop(f);
}

static void test_http_stop_finishes_inflight(void **state)
{
    fixture *f = fx_start(0, 0);
    client *c = cl_open(f->port);
    client *idle = cl_open(f->port);
    resp r;
    (void)state;
    cl_send(c, "GET /delay/150?inflight HTTP/1.1\r\n\r\nGET /delay/10?second HTTP/1.1\r\n\r\n");
    while (atomic_load(&f->requests) < 2) usleep(1000);
    uv_async_send(&f->stop_async);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "/delay/150?inflight");
    assert_null(strstr(r.headers, "Connection: close"));
    resp_free(&r);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "/delay/10?second");
    assert_non_null(strstr(r.headers, "Connection: close"));
    resp_free(&r);
    assert_true(cl_closed(c));
    assert_true(cl_closed(idle));
    uv_thread_join(&f->thr);
    assert_int_equal(atomic_load(&f->done_called), 1);
    assert_int_equal(f->loop_close_rc, 0);
    cl_close(c);
    cl_close(idle);
    uv_sem_destroy(&f->ready);
    free(f);
}

static void test_http_expect_100_continue(void **state)
{
    fixture *f = fx_start(0, 0);
    client *c = cl_open(f->port);
    char *end;
    (void)state;
    cl_send(c, "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL) assert_true(cl_fill(c) > 0);
    assert_true(c->len >= 25);
    assert_memory_equal(c->buf, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    memmove(c->buf, c->buf + 25, c->len - 25);
    c->len -= 25;
    cl_send(c, "hello");
    expect_response(c, 200, "hello");
    cl_close(c);
    fx_stop(f);
}

static void test_http_deep_pipeline_pauses_and_resumes(void **state)
{
    enum { N = 700 };
    fixture *f = fx_start(0, 0);
    client *c = cl_open(f->port);
    char *all = malloc((size_t)N * 64);
    size_t len = 0;
    int i;
    (void)state;
    /* more requests than the server keeps in flight per connection: reading pauses, resumes */
    for (i = 0; i < N; i++)
        len += (size_t)sprintf(all + len, "GET /delay/%d?p%d HTTP/1.1\r\n\r\n", i % 3, i);
    send_all(c->fd, all, len);
    for (i = 0; i < N; i++) {
        char body[64];
        snprintf(body, sizeof body, "/delay/%d?p%d", i % 3, i);
        expect_response(c, 200, body);
    }
    free(all);
    cl_close(c);
    fx_stop(f);
}

static void test_http_max_connections(void **state)
{
    fixture *f = fx_start_conns(0, 0, 2);
    client *a = cl_open(f->port);
    client *b = cl_open(f->port);
    client *c;
    (void)state;
    cl_send(a, "GET / HTTP/1.1\r\n\r\n");
    expect_response(a, 200, "ok");
    cl_send(b, "GET / HTTP/1.1\r\n\r\n");
    expect_response(b, 200, "ok");
    c = cl_open(f->port);   /* the third is accepted and closed at once */
    assert_true(cl_closed(c));
    cl_close(c);
    cl_close(b);
    usleep(50 * 1000);
    c = cl_open(f->port);   /* room again */
    cl_send(c, "GET / HTTP/1.1\r\n\r\n");
    expect_response(c, 200, "ok");
    cl_close(c);
    cl_close(a);
    fx_stop(f);
}

static void test_http_port_in_use(void **state)
{
    fixture *f = fx_start(0, 0);
    uv_loop_t loop;
    http_server *s = NULL;
    http_server_opts o;
    (void)state;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    o.port = f->port;
    uv_loop_init(&loop);
    assert_int_equal(http_server_start(&s, &loop, &o, handler, f), -EADDRINUSE);
    assert_null(s);
    o.host = "not-an-address";
    assert_int_equal(http_server_start(&s, &loop, &o, handler, f), -EINVAL);
    uv_run(&loop, UV_RUN_DEFAULT);   /* lets the failed listener close */
    assert_int_equal(uv_loop_close(&loop), 0);
    fx_stop(f);
}

/* Runs curl (installed with the test tools) with HTTP/2 prior knowledge; returns its stdout. */
static char *run_curl(const char *args)
{
    char cmd[1024];
    FILE *p;
    char *out = calloc(1, 1 << 20);
    size_t n = 0;
    snprintf(cmd, sizeof cmd, "curl -sS --max-time 20 --http2-prior-knowledge %s 2>&1", args);
    p = popen(cmd, "r");
    assert_non_null(p);
    while (n < (1 << 20) - 1) {
        size_t k = fread(out + n, 1, (1 << 20) - 1 - n, p);
        if (k == 0) break;
        n += k;
    }
    pclose(p);
    return out;
}

static void test_http2_prior_knowledge(void **state)
{
    fixture *f = fx_start(4 << 20, 0);
    char args[512];
    char *out;
    char path[] = "/tmp/sluice_h2_XXXXXX";
    int fd;
    char *big;
    size_t bigsz = 3 << 20;   /* well above the default 64 KiB stream window */
    (void)state;
    snprintf(args, sizeof args,
             "-X POST -d 'hello h2' -w ' %%{http_code} %%{http_version}' "
             "-H 'X-Amz-Target: k.Put' http://127.0.0.1:%d/echo?x=1", f->port);
    out = run_curl(args);
    assert_string_equal(out, "hello h2 200 2");
    free(out);
    /* several streams on one connection (nghttp client), one answered by a timer, and Host
     * taken from :authority. (curl 7.88 cannot reuse a prior-knowledge connection: curl#10634) */
    {
        char cmd[512];
        char want[128];
        char got[256] = "";
        FILE *p;
        size_t n;
        snprintf(cmd, sizeof cmd,
                 "nghttp -t 20 http://127.0.0.1:%d/delay/60?one http://127.0.0.1:%d/header/host "
                 "2>&1", f->port, f->port);
        p = popen(cmd, "r");
        assert_non_null(p);
        n = fread(got, 1, sizeof got - 1, p);
        got[n] = '\0';
        pclose(p);
        snprintf(want, sizeof want, "127.0.0.1:%d", f->port);
        assert_non_null(strstr(got, "/delay/60?one"));
        assert_non_null(strstr(got, want));
    }
    /* a large body crosses many flow-control windows */
    fd = mkstemp(path);
    assert_true(fd >= 0);
    big = malloc(bigsz);
    memset(big, 'q', bigsz);
    big[bigsz - 1] = 'Z';
    assert_int_equal(write(fd, big, bigsz), (ssize_t)bigsz);
    close(fd);
    snprintf(args, sizeof args, "--data-binary @%s -o %s.out -w '%%{http_code} %%{size_download}' "
             "http://127.0.0.1:%d/echo", path, path, f->port);
    out = run_curl(args);
    {
        char want[64];
        snprintf(want, sizeof want, "200 %zu", bigsz);
        assert_string_equal(out, want);
    }
    free(out);
    {
        char outpath[64];
        FILE *fp;
        char *got = malloc(bigsz);
        snprintf(outpath, sizeof outpath, "%s.out", path);
        fp = fopen(outpath, "rb");
        assert_non_null(fp);
        assert_int_equal(fread(got, 1, bigsz, fp), bigsz);
        fclose(fp);
        assert_memory_equal(got, big, bigsz);
        free(got);
        unlink(outpath);
    }
    unlink(path);
    free(big);
    fx_stop(f);
}

static void test_http2_body_too_large_gets_413(void **state)
{
    fixture *f = fx_start(1024, 0);
    char args[256];
    char *out;
    (void)state;
    {
    char path[] = "/tmp/sluice_h2big_XXXXXX";
    int fd = mkstemp(path);
    char buf[5000];
    assert_true(fd >= 0);
    memset(buf, 'z', sizeof buf);
    assert_int_equal(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
    close(fd);
    snprintf(args, sizeof args, "-o /dev/null -w '%%{http_code}' --data-binary @%s "
             "http://127.0.0.1:%d/echo", path, f->port);
    out = run_curl(args);
    assert_string_equal(out, "413");
    free(out);
    unlink(path);
    }
    /* the server is still fine */
    snprintf(args, sizeof args, "-w ' %%{http_code}' http://127.0.0.1:%d/", f->port);
    out = run_curl(args);
    assert_string_equal(out, "ok 200");
    free(out);
    fx_stop(f);
}

/* ------------------------------------------------------------------------------------------ */
/* socket-less connection (same parsing code as the fuzz target) */

static http_exchange *fake_held[16];
static int fake_nheld;

static void fake_handler(void *ctx, http_exchange *x)
{
    const http_request *r = http_exchange_request(x);
    (void)ctx;
    if (!strcmp(r->path, "/later") && fake_nheld < 16) {
        fake_held[fake_nheld++] = x;
        return;
    }
    http_respond(x, 200, NULL, 0, r->body, r->body_len);
}

static void test_http_fake_byte_by_byte(void **state)
{
    http__fake *f;
    const char *req = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyzGET /later HTTP/1.1\r\n\r\n"
                      "POST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nqq";
    size_t i;
    size_t n;
    const uint8_t *out;
    (void)state;
    fake_nheld = 0;
    assert_int_equal(http__fake_new(&f, NULL, fake_handler, NULL), 0);
    for (i = 0; req[i]; i++) assert_int_equal(http__fake_feed(f, (const uint8_t *)req + i, 1), 1);
    out = http__fake_output(f, &n);
    /* the first answer is out, the third waits behind the held second */
    assert_non_null(memmem(out, n, "\r\n\r\nxyz", 7));
    assert_null(memmem(out, n, "\r\n\r\nqq", 6));
    assert_int_equal(fake_nheld, 1);
    http_respond(fake_held[0], 200, NULL, 0, (const uint8_t *)"L", 1);
    assert_int_equal(http__fake_feed(f, NULL, 0), 1);
    out = http__fake_output(f, &n);
    {
        const uint8_t *a = memmem(out, n, "\r\n\r\nxyz", 7);
        const uint8_t *b = memmem(out, n, "\r\n\r\nL", 5);
        const uint8_t *c = memmem(out, n, "\r\n\r\nqq", 6);
        assert_true(a && b && c && a < b && b < c);
    }
    http__fake_free(f);
}

static void test_http_fake_orphans_are_freed(void **state)
{
    http__fake *f;
    const char *req = "GET /later HTTP/1.1\r\n\r\nGET /later HTTP/1.1\r\n\r\n";
    (void)state;
    fake_nheld = 0;
    assert_int_equal(http__fake_new(&f, NULL, fake_handler, NULL), 0);
    assert_int_equal(http__fake_feed(f, (const uint8_t *)req, strlen(req)), 1);
    assert_int_equal(fake_nheld, 2);
    http__fake_free(f);
    /* the connection is gone: answering just frees (ASan/valgrind would flag misuse) */
    http_respond(fake_held[0], 200, NULL, 0, NULL, 0);
    http_respond(fake_held[1], 500, NULL, 0, NULL, 0);
}

static void test_http_fake_h2_preface_then_garbage_closes(void **state)
{
    http__fake *f;
    const char *pre = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    size_t n;
    const uint8_t *out;
    (void)state;
    assert_int_equal(http__fake_new(&f, NULL, fake_handler, NULL), 0);
    assert_int_equal(http__fake_feed(f, (const uint8_t *)pre, 10), 1);
    assert_int_equal(http__fake_feed(f, (const uint8_t *)pre + 10, 14), 1);
    out = http__fake_output(f, &n);
    /* our SETTINGS frame: type 4 at offset 3 */
    assert_true(n >= 9);
    assert_int_equal(out[3], 4);
    /* not a valid frame sequence: GOAWAY, then closed */
    assert_int_equal(http__fake_feed(f, (const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xff\xff"
                                                        "junkjunk", 17), 0);
    http__fake_free(f);
}

/* An HTTP/2 exchange driven by libnghttp2's own client session through the fake connection. */
typedef struct h2client {
    char status[8];
    char body[256];
    size_t body_len;
    int closed;
    const char *upload;
    size_t upload_len;
    size_t upload_off;
} h2client;

static int h2c_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nl,
                         const uint8_t *v, size_t vl, uint8_t flags, void *ud)
{
    h2client *c = ud;
    (void)s;
    (void)f;
    (void)flags;
    if (nl == 7 && !memcmp(n, ":status", 7) && vl < sizeof c->status) {
        memcpy(c->status, v, vl);
        c->status[vl] = '\0';
    }
    return 0;
}

static int h2c_on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *d,
                       size_t len, void *ud)
{
    h2client *c = ud;
    (void)s;
    (void)flags;
    (void)sid;
    if (c->body_len + len < sizeof c->body) {
        memcpy(c->body + c->body_len, d, len);
        c->body_len += len;
    }
    return 0;
}

static int h2c_on_close(nghttp2_session *s, int32_t sid, uint32_t code, void *ud)
{
    h2client *c = ud;
    (void)s;
    (void)sid;
    (void)code;
    c->closed++;
    return 0;
}

static ssize_t h2c_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                        uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    h2client *c = ud;
    size_t n = c->upload_len - c->upload_off;
    (void)s;
    (void)sid;
    (void)src;
    if (n > len) n = len;
    memcpy(buf, c->upload + c->upload_off, n);
    c->upload_off += n;
    if (c->upload_off == c->upload_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Moves bytes both ways until neither side has anything left to say. */
static void h2c_pump(nghttp2_session *cs, http__fake *f, size_t *seen)
{
    int round;
    for (round = 0; round < 50; round++) {
        const uint8_t *d;
        ssize_t n;
        size_t olen;
        const uint8_t *out;
        bool moved = false;
        while ((n = nghttp2_session_mem_send(cs, &d)) > 0) {
            http__fake_feed(f, d, (size_t)n);
            moved = true;
        }
        out = http__fake_output(f, &olen);
        if (olen > *seen) {
            assert_int_equal(nghttp2_session_mem_recv(cs, out + *seen, olen - *seen),
                             (ssize_t)(olen - *seen));
            *seen = olen;
            moved = true;
        }
        if (!moved) break;
    }
}

static void test_http_fake_h2_client_session(void **state)
{
    nghttp2_session_callbacks *cb;
    nghttp2_session *cs;
    http__fake *f;
    h2client hc;
    size_t seen = 0;
    nghttp2_data_provider prd;
    const nghttp2_nv nva[] = {
        {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":path", (uint8_t *)"/echo?x=1", 5, 9, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":authority", (uint8_t *)"localhost", 10, 9, NGHTTP2_NV_FLAG_NONE},
    };
    const nghttp2_nv later[] = {
        {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":path", (uint8_t *)"/later", 5, 6, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":authority", (uint8_t *)"localhost", 10, 9, NGHTTP2_NV_FLAG_NONE},
    };
    (void)state;
    memset(&hc, 0, sizeof hc);
    hc.upload = "hello over h2";
    hc.upload_len = strlen(hc.upload);
    fake_nheld = 0;
    assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_on_header_callback(cb, h2c_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2c_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2c_on_close);
    assert_int_equal(nghttp2_session_client_new(&cs, cb, &hc), 0);
    nghttp2_session_callbacks_del(cb);
    assert_int_equal(http__fake_new(&f, NULL, fake_handler, NULL), 0);
    assert_int_equal(nghttp2_submit_settings(cs, NGHTTP2_FLAG_NONE, NULL, 0), 0);
    prd.source.ptr = NULL;
    prd.read_callback = h2c_read;
    assert_true(nghttp2_submit_request(cs, NULL, nva, 4, &prd, NULL) > 0);
    h2c_pump(cs, f, &seen);
    assert_string_equal(hc.status, "200");
    assert_int_equal(hc.body_len, strlen("hello over h2"));
    assert_memory_equal(hc.body, "hello over h2", hc.body_len);
    assert_int_equal(hc.closed, 1);
    /* a stream the handler answers later, while the connection lives */
    assert_true(nghttp2_submit_request(cs, NULL, later, 4, NULL, NULL) > 0);
    h2c_pump(cs, f, &seen);
    assert_int_equal(fake_nheld, 1);
    assert_int_equal(hc.closed, 1);
    hc.status[0] = '\0';
    hc.body_len = 0;
    http_respond(fake_held[0], 202, NULL, 0, (const uint8_t *)"later", 5);
    h2c_pump(cs, f, &seen);
    assert_string_equal(hc.status, "202");
    assert_memory_equal(hc.body, "later", 5);
    assert_int_equal(hc.closed, 2);
    /* and one still held when the connection goes away */
    fake_nheld = 0;
    assert_true(nghttp2_submit_request(cs, NULL, later, 4, NULL, NULL) > 0);
    h2c_pump(cs, f, &seen);
    assert_int_equal(fake_nheld, 1);
    http__fake_free(f);
    http_respond(fake_held[0], 200, NULL, 0, NULL, 0);
    nghttp2_session_del(cs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_get_and_post),
        cmocka_unit_test(test_http_keepalive_many_requests),
        cmocka_unit_test(test_http_pipelined_async_out_of_order),
        cmocka_unit_test(test_http_pipelined_in_tiny_pieces),
        cmocka_unit_test(test_http_chunked_body),
        cmocka_unit_test(test_http_body_too_large_gets_413_and_close),
        cmocka_unit_test(test_http_garbage_gets_400_and_close),
        cmocka_unit_test(test_http_headers_too_large_gets_431),
        cmocka_unit_test(test_http_connection_close_and_http10),
        cmocka_unit_test(test_http_idle_and_slow_connections_are_closed),
        cmocka_unit_test(test_http_many_connections),
        cmocka_unit_test(test_http_respond_after_client_disconnected),
        cmocka_unit_test(test_http_stop_finishes_inflight),
        cmocka_unit_test(test_http_expect_100_continue),
        cmocka_unit_test(test_http_deep_pipeline_pauses_and_resumes),
        cmocka_unit_test(test_http_max_connections),
        cmocka_unit_test(test_http_port_in_use),
        cmocka_unit_test(test_http2_prior_knowledge),
        cmocka_unit_test(test_http2_body_too_large_gets_413),
        cmocka_unit_test(test_http_fake_byte_by_byte),
        cmocka_unit_test(test_http_fake_orphans_are_freed),
        cmocka_unit_test(test_http_fake_h2_preface_then_garbage_closes),
        cmocka_unit_test(test_http_fake_h2_client_session),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
