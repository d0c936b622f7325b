/* http_server.h — the daemon's HTTP front: HTTP/1.1 (libhttp-parser: keep-alive, pipelining) and
 * HTTP/2 cleartext with prior knowledge (libnghttp2), both on one listening socket; the protocol
 * is chosen per connection from the first bytes (the HTTP/2 connection preface).
 *
 * Every request becomes an http_exchange handed to one handler callback on the loop thread. The
 * handler answers with http_respond, at once or later (e.g. after a function invocation ran on a
 * worker thread) — but always on the loop thread and exactly once. Responses on one HTTP/1.1
 * connection go out in request order (pipelining). If the client went away meanwhile, the answer
 * is dropped silently; the exchange stays valid until http_respond is called.
 *
 * Limits: request bodies above opts.max_body get 413 with an empty body and the connection is
 * closed; a connection idle (or stuck mid-request) longer than opts.idle_timeout_ms is closed.
 */
#ifndef HTTP_SERVER_H
#define HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http_server http_server;
typedef struct http_exchange http_exchange;

typedef struct http_header {
    const char *name;   /* as received; compare case-insensitively */
    const char *value;
} http_header;

typedef struct http_request {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* raw path, percent-encoding kept, without the query */
    const char *query;        /* raw query without '?', "" when none */
    const http_header *headers;
    size_t nheaders;
    const uint8_t *body;      /* NUL-terminated for convenience; body_len excludes the NUL */
    size_t body_len;
    bool http2;
    uint64_t received_ns;     /* sl_mono_ns() when the request was complete */
} http_request;

typedef struct http_server_opts {
    const char *host;           /* "127.0.0.1" */
    int port;                   /* 0 = ephemeral; see http_server_port */
    size_t max_body;            /* default 7 MiB (kinesalite's cap; SPEC 1.1) */
    uint32_t idle_timeout_ms;   /* default 60000 */
    uint32_t max_connections;   /* default 4096; beyond it new connections are closed at once */
} http_server_opts;

typedef void (*http_handler_fn)(void *ctx, http_exchange *x);

/* Binds and listens. -errno on failure (e.g. -EADDRINUSE). */
int http_server_start(http_server **out, uv_loop_t *loop, const http_server_opts *opts,
                      http_handler_fn fn, void *ctx);
int http_server_port(const http_server *s);
/* Stops accepting, lets exchanges in flight be answered (their responses are still written),
 * closes idle connections, then calls done(ctx) once every connection is closed and frees the
 * server. */
void http_server_stop(http_server *s, void (*done)(void *ctx), void *ctx);

const http_request *http_exchange_request(const http_exchange *x);
/* First header of that name (case-insensitive), or NULL. */
const char *http_request_header(const http_request *r, const char *name);

/* Answers the exchange: copies headers and body; adds Content-Length (HTTP/1.1) and Date; the
 * exchange is freed by the server afterwards. Loop thread only; exactly once per exchange. */
void http_respond(http_exchange *x, int status, const http_header *headers, size_t nheaders,
                  const uint8_t *body, size_t body_len);

#endif
