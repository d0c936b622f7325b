/* http_server.c — see http_server.h.
 *
 * Shape. One uv_tcp_t listener; one http_conn per accepted socket, owning its uv_tcp_t. The first
 * bytes of a connection decide its protocol: the 24-byte HTTP/2 client preface selects an
 * nghttp2 server session, anything else goes to http-parser. Each request becomes an
 * http_exchange linked into its connection's list; for HTTP/1.1 that list is also the pipeline:
 * responses are written strictly from its head, so a handler may answer out of order.
 *
 * Lifetimes. The connection is freed in the close callback of its handle. An exchange the
 * handler still holds when its connection (or HTTP/2 stream) goes away becomes an orphan: it is
 * unlinked, forgets its connection, and http_respond merely frees it. So the handler never needs
 * to know whether the client is still there.
 *
 * Timers. A single sweep timer per server closes idle connections (no complete request within
 * idle_timeout_ms and nothing in flight) and lingering ones (after a final response we shut down
 * our side and read until EOF, so the client sees the 4xx before any RST); one timer is cheaper
 * than a timer per connection and precise enough for second-scale timeouts.
 *
 * Reentrancy. The handler runs inside the parser callbacks and may answer at once. Nothing here
 * frees a connection synchronously: closing is uv_close + close callback, and in fake mode
 * (http_server_int.h) write completions and closes are deferred to the end of the feed.
 */
#include "runtime/http_server.h"

#include <ctype.h>
#include <errno.h>
#include <http_parser.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "broker/sl_common.h"
#include "runtime/http_server_int.h"
#include "runtime/log.h"

#define DEF_MAX_BODY ((size_t)7 * 1024 * 1024)
#define DEF_IDLE_MS 60000u
#define DEF_MAX_CONNS 4096u
#define HDR_BYTES_MAX (64 * 1024)   /* request line + headers, HTTP/1.1 and HTTP/2 alike */
#define HDR_COUNT_MAX 128
#define PIPELINE_MAX 256            /* parsed but unanswered requests before reading pauses */
#define LINGER_MS 2000
#define RBUF_SIZE (64 * 1024)
#define XFREE_MAX 64                /* recycled exchanges kept per server */
#define XKEEP_BYTES (64 * 1024)     /* buffers above this are not kept on recycling */
#define FAKE_OUT_MAX (4u * 1024 * 1024)

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN 24

typedef struct http_conn http_conn;

enum x_state {
    X_PARSING = 0,  /* request not complete yet */
    X_HANDLER,      /* handed to the handler, not answered */
    X_READY,        /* answered; HTTP/1.1: waiting for its turn in the pipeline */
    X_WRITING,      /* HTTP/1.1: uv_write in flight; HTTP/2: submitted to nghttp2 */
};

typedef struct hdr_off {
    uint32_t name, name_len, value, value_len;
} hdr_off;

struct http_exchange {
    http_conn *conn;            /* NULL once orphaned */
    http_exchange *prev, *next; /* connection list (request order) */
    http_exchange *wnext;       /* fake mode: write completions pending */
    enum x_state state;
    bool counted;               /* counted in conn->busy */
    bool close_conn;            /* close the connection after this response */
    bool keep_alive;
    bool head;                  /* HEAD: no body bytes in the response */
    bool http10;                /* HTTP/1.0 request: keep-alive must be announced */
    int err_status;             /* parse failure to answer with (400, 413, 431) */
    size_t dropped;             /* HTTP/2: request bytes discarded after an error answer */
    bool sent;                  /* HTTP/2: the answer's final frame went out */
    bool rst;                   /* HTTP/2: RST_STREAM submitted */
    int32_t stream_id;          /* HTTP/2 */
    int hstate;                 /* which piece the parser is appending to */
    http_request req;
    /* string storage: url / method / header names and values, NUL-separated */
    char *s;
    size_t slen, scap;
    uint32_t url_off, url_len, meth_off, meth_len, auth_off, auth_len;
    hdr_off *ho;
    size_t nh, hcap;
    http_header *hv;
    size_t hvcap;
    uint8_t *body;
    size_t blen, bcap;
    /* response bytes (HTTP/1.1: head + body; HTTP/2: body only) */
    char *out;
    size_t olen, ocap, ooff;
    uv_write_t wreq;
};

enum { HS_NONE = 0, HS_URL, HS_FIELD, HS_VALUE };

struct http_conn {
    uv_tcp_t tcp;
    http_server *srv;
    http_conn *prev, *next;
    http_exchange *xhead, *xtail;
    http_exchange *cur;         /* HTTP/1.1 request being parsed */
    int proto;                  /* 0 unknown, 1 HTTP/1.1, 2 HTTP/2 */
    uint8_t pre[H2_PREFACE_LEN];
    size_t npre;
    http_parser parser;
    nghttp2_session *h2;
    char *wbuf;                 /* HTTP/2 bytes gathered for the next write */
    size_t wlen, wcap;
    uint32_t busy;              /* requests complete and not yet fully answered */
    uint32_t writes;            /* writes in flight */
    uint32_t in_feed;
    uint64_t last_ms;
    uint64_t linger_until;
    bool closing;               /* uv_close called (or fake closed) */
    bool dead_in;               /* ignore further input (after an error or a final request) */
    bool close_after;           /* close once busy reaches 0 */
    bool want_close;            /* close requested inside a feed; done when it returns */
    bool lingering;
    bool eof;                   /* the client closed its side */
    bool reading;
    bool h2_flush_pending;
    /* fake mode */
    bool fake;
    http_exchange *fdone_head, *fdone_tail;
    uint8_t *fout;
    size_t foutlen, foutcap, fouttotal;
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t sweep;
    http_server_opts opts;
    http_handler_fn fn;
    void *ctx;
    http_conn *conns;
    uint32_t nconns;
    int open_handles;
    bool stopping;
    void (*done)(void *ctx);
    void *done_ctx;
    nghttp2_session_callbacks *h2cb;
    http_exchange *xfree;
    size_t nxfree;
    time_t date_sec;
    char date[40];
    char rbuf[RBUF_SIZE];
};

struct http__fake {
    http_server *srv;
    http_conn *conn;
};

static http_parser_settings h1_settings;

static void conn_close(http_conn *c);
static void conn_closed(http_conn *c);
static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b);
static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void h1_flush(http_conn *c);
static void h2_flush(http_conn *c);

/* ------------------------------------------------------------------------------------------ */
/* small helpers */

static uint64_t srv_now(const http_server *s)
{
    return s->loop ? uv_now(s->loop) : sl_mono_ns() / 1000000u;
}

static const char *srv_date(http_server *s)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = now;
    }
    return s->date;
}

static int grow(void *pp, size_t *cap, size_t need, size_t elem)
{
    void **p = pp;
    size_t n = *cap ? *cap : 16;
    void *q;
    if (need <= *cap) return 0;
    while (n < need) n *= 2;
    q = sl_realloc(*p, n * elem);
    if (!q) return SL_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

static int sappend(http_exchange *x, const char *p, size_t n)
{
    if (grow(&x->s, &x->scap, x->slen + n + 1, 1)) return SL_ENOMEM;
    memcpy(x->s + x->slen, p, n);
    x->slen += n;
    return 0;
}

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

/* ------------------------------------------------------------------------------------------ */
/* exchanges */

static http_exchange *x_new(http_conn *c)
{
    http_server *s = c->srv;
    http_exchange *x = s->xfree;
    if (x) {
        s->xfree = x->next;
        s->nxfree--;
    } else {
        x = sl_calloc(1, sizeof *x);
        if (!x) return NULL;
    }
    x->conn = c;
    x->prev = x->next = x->wnext = NULL;
    x->state = X_PARSING;
    x->counted = x->close_conn = x->head = x->http10 = false;
    x->keep_alive = true;
    x->err_status = 0;
    x->dropped = 0;
    x->sent = x->rst = false;
    x->stream_id = 0;
    x->hstate = HS_NONE;
    memset(&x->req, 0, sizeof x->req);
    x->slen = x->nh = x->blen = x->olen = x->ooff = 0;
    x->url_off = x->url_len = x->meth_off = x->meth_len = x->auth_off = x->auth_len = 0;
    x->wreq.data = x;
    /* link at the tail: for HTTP/1.1 this is request order */
    x->prev = c->xtail;
    if (c->xtail) c->xtail->next = x;
    else c->xhead = x;
    c->xtail = x;
    return x;
}

static void x_destroy(http_exchange *x)
{
    sl_free(x->s);
    sl_free(x->ho);
    sl_free(x->hv);
    sl_free(x->body);
    sl_free(x->out);
    sl_free(x);
}

static void x_unlink(http_conn *c, http_exchange *x)
{
    if (x->prev) x->prev->next = x->next;
    else c->xhead = x->next;
    if (x->next) x->next->prev = x->prev;
    else c->xtail = x->prev;
    x->prev = x->next = NULL;
    if (c->cur == x) c->cur = NULL;
    if (x->counted) {
        x->counted = false;
        c->busy--;
    }
}

/* Unlinks and frees (or recycles) an exchange of a live connection. */
static void x_release(http_conn *c, http_exchange *x)
{
    http_server *s = c->srv;
    x_unlink(c, x);
    if (s->nxfree >= XFREE_MAX || x->scap > XKEEP_BYTES || x->bcap > XKEEP_BYTES ||
        x->ocap > XKEEP_BYTES) {
        x_destroy(x);
        return;
    }
    x->conn = NULL;
    x->next = s->xfree;
    s->xfree = x;
    s->nxfree++;
}

/* The connection goes away while the handler holds x: x lives on until http_respond. */
static void x_orphan(http_conn *c, http_exchange *x)
{
    x_unlink(c, x);
    x->conn = NULL;
}

static void conn_count(http_conn *c, http_exchange *x)
{
    if (!x->counted) {
        x->counted = true;
        c->busy++;
    }
}

/* Turns the collected offsets into the http_request view. */
static int x_finish_request(http_exchange *x, const char *method)
{
    http_request *r = &x->req;
    const char *url;
    size_t i;
    size_t qpos;
    size_t path_off;
    size_t query_off;
    size_t plen;
    size_t qlen;
    size_t poff;

    if (grow(&x->hv, &x->hvcap, x->nh ? x->nh : 1, sizeof *x->hv)) return SL_ENOMEM;
    /* path and query become two more NUL-terminated strings; reserve first so that copying
     * from the URL (inside the same buffer) never follows a realloc */
    if (grow(&x->s, &x->scap, x->slen + x->url_len + 4, 1)) return SL_ENOMEM;
    url = x->s + x->url_off;
    plen = x->url_len;
    for (i = 0; i < x->url_len; i++) {
        if (url[i] == '#') {
            plen = i;
            break;
        }
    }
    poff = 0;
    if (plen > 0 && url[0] != '/' && url[0] != '*') {
        /* absolute-form (http://host/path?q): keep only path and query */
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(url, plen, 0, &u) != 0) return SL_EINVAL;
        if (u.field_set & (1 << UF_PATH)) {
            poff = u.field_data[UF_PATH].off;
        } else {
            poff = plen;
        }
    }
    qpos = plen;
    for (i = poff; i < plen; i++) {
        if (url[i] == '?') {
            qpos = i;
            break;
        }
    }
    qlen = qpos < plen ? plen - qpos - 1 : 0;
    path_off = x->slen;
    if (qpos == poff) {
        x->s[x->slen++] = '/';   /* empty path (absolute-form without one) */
    } else {
        memcpy(x->s + x->slen, url + poff, qpos - poff);
        x->slen += qpos - poff;
    }
    x->s[x->slen++] = '\0';
    query_off = x->slen;
    memcpy(x->s + x->slen, url + qpos + (qpos < plen ? 1 : 0), qlen);
    x->slen += qlen;
    x->s[x->slen++] = '\0';
    for (i = 0; i < x->nh; i++) {
        x->hv[i].name = x->s + x->ho[i].name;
        x->hv[i].value = x->s + x->ho[i].value;
    }
    if (!x->body) {
        if (grow(&x->body, &x->bcap, 1, 1)) return SL_ENOMEM;
    }
    x->body[x->blen] = 0;
    r->method = method ? method : x->s + x->meth_off;
    r->path = x->s + path_off;
    r->query = x->s + query_off;
    r->headers = x->hv;
    r->nheaders = x->nh;
    r->body = x->body;
    r->body_len = x->blen;
    r->received_ns = sl_mono_ns();
    x->head = strcmp(r->method, "HEAD") == 0;
    return 0;
}

static int x_body_append(http_exchange *x, const char *p, size_t n)
{
    if (grow(&x->body, &x->bcap, x->blen + n + 1, 1)) return SL_ENOMEM;
    memcpy(x->body + x->blen, p, n);
    x->blen += n;
    return 0;
}

static void deliver(http_conn *c, http_exchange *x)
{
    http_server *s = c->srv;
    x->state = X_HANDLER;
    conn_count(c, x);
    c->last_ms = srv_now(s);
    /* x may be answered and freed inside; do not touch it afterwards */
    s->fn(s->ctx, x);
}

/* ------------------------------------------------------------------------------------------ */
/* writing */

static void fake_out(http_conn *c, const void *p, size_t n)
{
    c->fouttotal += n;
    if (c->foutlen >= FAKE_OUT_MAX) return;
    if (n > FAKE_OUT_MAX - c->foutlen) n = FAKE_OUT_MAX - c->foutlen;
    if (grow(&c->fout, &c->foutcap, c->foutlen + n, 1)) return;
    memcpy(c->fout + c->foutlen, p, n);
    c->foutlen += n;
}

static void conn_request_close(http_conn *c)
{
    if (c->in_feed) c->want_close = true;
    else conn_close(c);
}

static void linger_close_cb(uv_shutdown_t *req, int status)
{
    http_conn *c = req->data;
    sl_free(req);
    if (status < 0 && !c->closing) conn_close(c);
}

/* Final response written: shut our side down and drain the client until EOF or the deadline, so
 * that the client reads the response before the socket goes away. */
static void conn_finish(http_conn *c)
{
    uv_shutdown_t *req;
    if (c->closing || c->lingering) return;
    if (c->fake || c->eof || c->srv->stopping) {
        conn_request_close(c);
        return;
    }
    c->lingering = true;
    c->dead_in = true;
    c->linger_until = srv_now(c->srv) + LINGER_MS;
    req = sl_malloc(sizeof *req);
    if (!req) {
        conn_close(c);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, linger_close_cb) < 0) {
        sl_free(req);
        conn_close(c);
        return;
    }
    if (!c->reading && !c->eof) {
        /* keep reading to see the client's EOF (reading may have been paused) */
        if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0) c->reading = true;
    }
}

static void conn_maybe_resume(http_conn *c);

static void h1_write_done(http_exchange *x, int status)
{
    http_conn *c = x->conn;
    bool final = x->close_conn;
    c->writes--;
    x_release(c, x);
    if (c->closing) return;
    if (status < 0) {
        conn_request_close(c);
        return;
    }
    c->last_ms = srv_now(c->srv);
    if (final) {
        conn_finish(c);
        return;
    }
    if (c->close_after && c->busy == 0) {
        conn_finish(c);
        return;
    }
    conn_maybe_resume(c);
}

static void h1_write_cb(uv_write_t *req, int status)
{
    h1_write_done(req->data, status);
}

static void h1_flush(http_conn *c)
{
    http_exchange *x;
    http_exchange *nx;
    for (x = c->xhead; x && !c->closing; x = nx) {
        nx = x->next;
        if (x->state == X_WRITING) continue;
        if (x->state != X_READY) break;
        x->state = X_WRITING;
        c->writes++;
        if (c->fake) {
            fake_out(c, x->out, x->olen);
            if (c->fdone_tail) c->fdone_tail->wnext = x;
            else c->fdone_head = x;
            c->fdone_tail = x;
        } else {
            uv_buf_t b = uv_buf_init(x->out, (unsigned)x->olen);
            int rc = uv_write(&x->wreq, (uv_stream_t *)&c->tcp, &b, 1, h1_write_cb);
            if (rc < 0) {
                c->writes--;
                x->state = X_READY;
                conn_request_close(c);
                return;
            }
        }
        if (x->close_conn) {
            c->dead_in = true;
            break;
        }
    }
}

static int out_reserve(http_exchange *x, size_t n)
{
    return grow(&x->out, &x->ocap, n, 1);
}

static void out_add(http_exchange *x, const char *p, size_t n)
{
    memcpy(x->out + x->olen, p, n);
    x->olen += n;
}

static bool skip_user_header(const char *name)
{
    return !strcasecmp(name, "content-length") || !strcasecmp(name, "date") ||
           !strcasecmp(name, "connection") || !strcasecmp(name, "transfer-encoding") ||
           !strcasecmp(name, "keep-alive");
}

static void h1_respond(http_exchange *x, int status, const http_header *hs, size_t nh,
                       const uint8_t *body, size_t blen)
{
    http_conn *c = x->conn;
    http_server *s = c->srv;
    char line[160];
    size_t need;
    size_t i;
    int n;
    /* this answer ends the connection (Connection: close, HTTP/1.0, errors) */
    bool final = !x->keep_alive || x->close_conn;
    /* the connection ends after the answers in flight (half-close, server stop): only the last
     * one says so, every one of them is still written */
    bool close = final || ((s->stopping || c->close_after) && x->next == NULL);
    bool http10 = x->http10;

    need = 256 + blen;
    for (i = 0; i < nh; i++) need += strlen(hs[i].name) + strlen(hs[i].value) + 4;
    x->olen = 0;
    if (out_reserve(x, need)) {
        /* cannot even build the answer: drop the connection rather than the order */
        x->state = X_READY;
        x->close_conn = true;
        x->olen = 0;
        h1_flush(c);
        return;
    }
    n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, reason(status));
    out_add(x, line, (size_t)n);
    for (i = 0; i < nh; i++) {
        if (!hs[i].name || !hs[i].value || skip_user_header(hs[i].name)) continue;
        out_add(x, hs[i].name, strlen(hs[i].name));
        out_add(x, ": ", 2);
        out_add(x, hs[i].value, strlen(hs[i].value));
        out_add(x, "\r\n", 2);
    }
    n = snprintf(line, sizeof line, "Content-Length: %zu\r\nDate: %s\r\n%s\r\n", blen,
                 srv_date(s),
                 close ? "Connection: close\r\n" : http10 ? "Connection: keep-alive\r\n" : "");
    out_add(x, line, (size_t)n);
    if (!x->head && blen) out_add(x, (const char *)body, blen);
    x->close_conn = final;
    x->state = X_READY;
    h1_flush(c);
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP/1.1 parsing (http-parser callbacks) */

static http_conn *pconn(http_parser *p) { return p->data; }

/* Queues an error answer (empty body) after whatever is in the pipeline, then closes. */
static void h1_fail(http_conn *c, int status)
{
    http_exchange *x = c->cur;
    c->dead_in = true;
    if (!x) {
        x = x_new(c);
        if (!x) {
            conn_request_close(c);
            return;
        }
    }
    c->cur = NULL;
    x->err_status = status;
    x->keep_alive = false;
    x->close_conn = true;
    x->head = false;
    x->state = X_HANDLER;
    conn_count(c, x);
    h1_respond(x, status, NULL, 0, NULL, 0);
}

static int h1_on_begin(http_parser *p)
{
    http_conn *c = pconn(p);
    http_exchange *x = x_new(c);
    if (!x) return -1;
    c->cur = x;
    return 0;
}

static int h1_on_url(http_parser *p, const char *at, size_t n)
{
    http_conn *c = pconn(p);
    http_exchange *x = c->cur;
    if (!x) return -1;
    if (x->hstate != HS_URL) {
        x->hstate = HS_URL;
        x->url_off = (uint32_t)x->slen;
    }
    if (x->slen + n > HDR_BYTES_MAX) {
        x->err_status = 431;
        return -1;
    }
    if (sappend(x, at, n)) return -1;
    x->url_len += (uint32_t)n;
    return 0;
}

static int h1_on_field(http_parser *p, const char *at, size_t n)
{
    http_conn *c = pconn(p);
    http_exchange *x = c->cur;
    if (!x) return -1;
    if (x->slen + n > HDR_BYTES_MAX) {
        x->err_status = 431;
        return -1;
    }
    if (x->hstate != HS_FIELD) {
        if (x->hstate != HS_NONE) {
            if (sappend(x, "", 0)) return -1;
            x->s[x->slen++] = '\0';
        }
        if (x->nh >= HDR_COUNT_MAX) {
            x->err_status = 431;
            return -1;
        }
        if (grow(&x->ho, &x->hcap, x->nh + 1, sizeof *x->ho)) return -1;
        x->ho[x->nh].name = (uint32_t)x->slen;
        x->ho[x->nh].name_len = 0;
        x->ho[x->nh].value = 0;
        x->ho[x->nh].value_len = 0;
        x->nh++;
        x->hstate = HS_FIELD;
    }
    if (sappend(x, at, n)) return -1;
    x->ho[x->nh - 1].name_len += (uint32_t)n;
    return 0;
}

static int h1_on_value(http_parser *p, const char *at, size_t n)
{
    http_conn *c = pconn(p);
    http_exchange *x = c->cur;
    if (!x || x->nh == 0) return -1;
    if (x->slen + n > HDR_BYTES_MAX) {
        x->err_status = 431;
        return -1;
    }
    if (x->hstate != HS_VALUE) {
        if (sappend(x, "", 0)) return -1;
        x->s[x->slen++] = '\0';
        x->ho[x->nh - 1].value = (uint32_t)x->slen;
        x->hstate = HS_VALUE;
    }
    if (sappend(x, at, n)) return -1;
    x->ho[x->nh - 1].value_len += (uint32_t)n;
    return 0;
}

static int h1_on_headers_complete(http_parser *p)
{
    http_conn *c = pconn(p);
    http_exchange *x = c->cur;
    http_server *s = c->srv;
    size_t i;
    if (!x) return -1;
    if (sappend(x, "", 0)) return -1;
    x->s[x->slen++] = '\0';
    if (x->nh && x->hstate == HS_FIELD) {
        /* a header name without a value: http-parser reports this as an error anyway */
        x->ho[x->nh - 1].value = (uint32_t)x->slen - 1;
    }
    x->hstate = HS_NONE;
    if (p->method == HTTP_CONNECT) {
        x->err_status = 400;
        return -1;
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > s->opts.max_body) {
        x->err_status = 413;
        return -1;
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > 0) {
        /* reserve what was announced, up to 1 MiB (an announcement costs the client nothing) */
        size_t want = (size_t)p->content_length + 1;
        if (want > (1u << 20)) want = 1u << 20;
        if (grow(&x->body, &x->bcap, want, 1)) return -1;
    }
    /* Expect: 100-continue, answered only when nothing precedes it in the pipeline */
    for (i = 0; i < x->nh; i++) {
        const char *nm = x->s + x->ho[i].name;
        if (x->ho[i].name_len == 6 && !strncasecmp(nm, "expect", 6) &&
            x->ho[i].value_len == 12 && !strncasecmp(x->s + x->ho[i].value, "100-continue", 12) &&
            c->xhead == x && p->http_minor >= 1) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (c->fake) {
                fake_out(c, cont, sizeof cont - 1);
            } else {
                uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
                (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
            }
        }
    }
    return 0;
}

static int h1_on_body(http_parser *p, const char *at, size_t n)
{
    http_conn *c = pconn(p);
    http_exchange *x = c->cur;
    if (!x) return -1;
    if (x->blen + n > c->srv->opts.max_body) {
        x->err_status = 413;
        return -1;
    }
    return x_body_append(x, at, n) ? -1 : 0;
}

static int h1_on_complete(http_parser *p)
{
    http_conn *c = pconn(p);
    http_exchange *x = c->cur;
    if (!x) return -1;
    if (x_finish_request(x, http_method_str((enum http_method)p->method))) {
        x->err_status = 400;
        return -1;
    }
    x->keep_alive = http_should_keep_alive(p) != 0;
    x->http10 = p->http_major == 1 && p->http_minor == 0;
    c->cur = NULL;
    if (!x->keep_alive) {
        /* last request of this connection: parse nothing after it */
        c->dead_in = true;
        http_parser_pause(p, 1);
    }
    deliver(c, x);
    return 0;
}

static void h1_feed(http_conn *c, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len && !c->dead_in && !c->closing) {
        size_t n = http_parser_execute(&c->parser, &h1_settings, data + off, len - off);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) break;
        if (e != HPE_OK) {
            int st = 400;
            if (c->cur && c->cur->err_status) st = c->cur->err_status;
            else if (e == HPE_HEADER_OVERFLOW) st = 431;
            h1_fail(c, st);
            break;
        }
        off += n;
        if (c->parser.upgrade) {
            /* Upgrade (e.g. h2c) is ignored: RFC 9110 lets a server answer in HTTP/1.1. The
             * parser stops after such a request; carry on with the next one. */
            c->parser.upgrade = 0;
            continue;
        }
        if (n == 0) break;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP/2 (nghttp2 server session, cleartext with prior knowledge) */

static void h2_write_cb(uv_write_t *req, int status)
{
    http_conn *c = req->data;
    sl_free(req);
    c->writes--;
    if (c->closing) return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    h2_flush(c);
}

static void h2_flush(http_conn *c)
{
    if (c->closing || !c->h2) return;
    if (c->in_feed) {
        c->h2_flush_pending = true;
        return;
    }
    for (;;) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(c->h2, &d);
        if (n < 0) {
            conn_close(c);
            return;
        }
        if (n == 0) break;
        if (grow(&c->wbuf, &c->wcap, c->wlen + (size_t)n, 1)) {
            conn_close(c);
            return;
        }
        memcpy(c->wbuf + c->wlen, d, (size_t)n);
        c->wlen += (size_t)n;
    }
    if (c->wlen) {
        if (c->fake) {
            fake_out(c, c->wbuf, c->wlen);
            c->wlen = 0;
        } else {
            /* the write request and its bytes live in one allocation */
            uv_write_t *req = sl_malloc(sizeof *req + c->wlen);
            uv_buf_t b;
            if (!req) {
                conn_close(c);
                return;
            }
            memcpy(req + 1, c->wbuf, c->wlen);
            b = uv_buf_init((char *)(req + 1), (unsigned)c->wlen);
            req->data = c;
            c->wlen = 0;
            if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, h2_write_cb) < 0) {
                sl_free(req);
                conn_close(c);
                return;
            }
            c->writes++;
        }
    }
    if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
        c->writes == 0)
        conn_request_close(c);
    else if (c->close_after && c->busy == 0 && c->writes == 0)
        conn_request_close(c);
}

static ssize_t h2_read_body(nghttp2_session *sess, int32_t sid, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    http_exchange *x = src->ptr;
    size_t n = x->olen - x->ooff;
    (void)sess;
    (void)sid;
    (void)ud;
    if (n > len) n = len;
    memcpy(buf, x->out + x->ooff, n);
    x->ooff += n;
    if (x->ooff == x->olen) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void h2_respond(http_exchange *x, int status, const http_header *hs, size_t nh,
                       const uint8_t *body, size_t blen)
{
    http_conn *c = x->conn;
    http_server *s = c->srv;
    nghttp2_nv stack_nv[24];
    nghttp2_nv *nv = stack_nv;
    nghttp2_data_provider prd;
    char st[8];
    char cl[24];
    size_t n = 0;
    size_t i;
    size_t j;
    char *lower = NULL;
    size_t lower_len = 0;
    int rc;

    if (nh + 3 > sizeof stack_nv / sizeof stack_nv[0]) {
        nv = sl_malloc((nh + 3) * sizeof *nv);
        if (!nv) goto fail;
    }
    for (i = 0; i < nh; i++) {
        if (hs[i].name && hs[i].value && !skip_user_header(hs[i].name))
            lower_len += strlen(hs[i].name) + 1;
    }
    lower = sl_malloc(lower_len + 1);
    if (!lower) goto fail;
    snprintf(st, sizeof st, "%d", status);
    snprintf(cl, sizeof cl, "%zu", blen);
    nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)st, 7, strlen(st),
                           NGHTTP2_NV_FLAG_NONE};
    lower_len = 0;
    for (i = 0; i < nh; i++) {
        size_t ln;
        if (!hs[i].name || !hs[i].value || skip_user_header(hs[i].name)) continue;
        ln = strlen(hs[i].name);
        for (j = 0; j < ln; j++) lower[lower_len + j] = (char)tolower((unsigned char)hs[i].name[j]);
        nv[n++] = (nghttp2_nv){(uint8_t *)lower + lower_len, (uint8_t *)hs[i].value, ln,
                               strlen(hs[i].value), NGHTTP2_NV_FLAG_NONE};
        lower_len += ln + 1;
    }
    nv[n++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)cl, 14, strlen(cl),
                           NGHTTP2_NV_FLAG_NONE};
    {
        const char *d = srv_date(s);
        nv[n++] = (nghttp2_nv){(uint8_t *)"date", (uint8_t *)d, 4, strlen(d),
                               NGHTTP2_NV_FLAG_NONE};
    }
    x->olen = x->ooff = 0;
    if (blen && !x->head) {
        if (out_reserve(x, blen)) goto fail;
        out_add(x, (const char *)body, blen);
    }
    prd.source.ptr = x;
    prd.read_callback = h2_read_body;
    x->state = X_WRITING;
    /* nghttp2 copies the name/value pairs */
    rc = nghttp2_submit_response(c->h2, x->stream_id, nv, n, x->olen ? &prd : NULL);
    if (rc != 0) goto fail;
    if (nv != stack_nv) sl_free(nv);
    sl_free(lower);
    h2_flush(c);
    return;
fail:
    if (nv != stack_nv) sl_free(nv);
    sl_free(lower);
    nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, x->stream_id, NGHTTP2_INTERNAL_ERROR);
    x->state = X_WRITING;
    h2_flush(c);
}

static http_exchange *h2_x(nghttp2_session *sess, int32_t sid)
{
    return nghttp2_session_get_stream_user_data(sess, sid);
}

static int h2_on_begin_headers(nghttp2_session *sess, const nghttp2_frame *f, void *ud)
{
    http_conn *c = ud;
    http_exchange *x;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    x = x_new(c);
    if (!x) return NGHTTP2_ERR_CALLBACK_FAILURE;
    x->stream_id = f->hd.stream_id;
    nghttp2_session_set_stream_user_data(sess, f->hd.stream_id, x);
    return 0;
}

static int h2_add_header(http_exchange *x, const uint8_t *name, size_t nlen, const uint8_t *value,
                         size_t vlen)
{
    if (x->nh >= HDR_COUNT_MAX) return SL_ELIMIT;
    if (grow(&x->ho, &x->hcap, x->nh + 1, sizeof *x->ho)) return SL_ENOMEM;
    x->ho[x->nh].name = (uint32_t)x->slen;
    x->ho[x->nh].name_len = (uint32_t)nlen;
    if (sappend(x, (const char *)name, nlen)) return SL_ENOMEM;
    x->s[x->slen++] = '\0';
    x->ho[x->nh].value = (uint32_t)x->slen;
    x->ho[x->nh].value_len = (uint32_t)vlen;
    if (sappend(x, (const char *)value, vlen)) return SL_ENOMEM;
    x->s[x->slen++] = '\0';
    x->nh++;
    return 0;
}

static int h2_on_header(nghttp2_session *sess, const nghttp2_frame *f, const uint8_t *name,
                        size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    http_conn *c = ud;
    http_exchange *x;
    (void)flags;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    x = h2_x(sess, f->hd.stream_id);
    if (!x || x->err_status) return 0;
    if (x->slen + nlen + vlen + 2 > HDR_BYTES_MAX) {
        x->err_status = 431;
        return 0;
    }
    if (nlen > 0 && name[0] == ':') {
        uint32_t off = (uint32_t)x->slen;
        if (sappend(x, (const char *)value, vlen)) return NGHTTP2_ERR_CALLBACK_FAILURE;
        x->s[x->slen++] = '\0';
        if (nlen == 7 && !memcmp(name, ":method", 7)) {
            x->meth_off = off;
            x->meth_len = (uint32_t)vlen;
        } else if (nlen == 5 && !memcmp(name, ":path", 5)) {
            x->url_off = off;
            x->url_len = (uint32_t)vlen;
        } else if (nlen == 10 && !memcmp(name, ":authority", 10)) {
            x->auth_off = off;
            x->auth_len = (uint32_t)vlen;
        }
        return 0;
    }
    if (nlen == 14 && !memcmp(name, "content-length", 14)) {
        char tmp[24];
        size_t k = vlen < sizeof tmp - 1 ? vlen : sizeof tmp - 1;
        memcpy(tmp, value, k);
        tmp[k] = '\0';
        if (strtoull(tmp, NULL, 10) > c->srv->opts.max_body) x->err_status = 413;
    }
    {
        int rc = h2_add_header(x, name, nlen, value, vlen);
        if (rc == SL_ELIMIT) x->err_status = 431;
        else if (rc) return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static void h2_reject(http_conn *c, http_exchange *x)
{
    x->state = X_HANDLER;
    conn_count(c, x);
    h2_respond(x, x->err_status, NULL, 0, NULL, 0);
}

static void h2_complete(http_conn *c, http_exchange *x)
{
    size_t i;
    bool has_host = false;
    if (x->meth_len == 0 || x->url_len == 0) {
        x->err_status = 400;
        h2_reject(c, x);
        return;
    }
    for (i = 0; i < x->nh; i++) {
        if (x->ho[i].name_len == 4 && !memcmp(x->s + x->ho[i].name, "host", 4)) has_host = true;
    }
    if (!has_host && x->auth_len) {
        /* SigV4 and routing read Host: give HTTP/2 requests one from :authority */
        size_t aoff = x->auth_off;
        size_t alen = x->auth_len;
        char *tmp = sl_strndup(x->s + aoff, alen);
        int rc;
        if (!tmp) {
            x->err_status = 500;
            h2_reject(c, x);
            return;
        }
        rc = h2_add_header(x, (const uint8_t *)"host", 4, (const uint8_t *)tmp, alen);
        sl_free(tmp);
        if (rc) {
            x->err_status = rc == SL_ELIMIT ? 431 : 500;
            h2_reject(c, x);
            return;
        }
    }
    if (x_finish_request(x, NULL)) {
        x->err_status = 400;
        h2_reject(c, x);
        return;
    }
    x->req.http2 = true;
    deliver(c, x);
}

static int h2_on_frame_recv(nghttp2_session *sess, const nghttp2_frame *f, void *ud)
{
    http_conn *c = ud;
    http_exchange *x;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
    x = h2_x(sess, f->hd.stream_id);
    if (!x || x->state != X_PARSING) return 0;
    if (x->err_status) {
        h2_reject(c, x);
        return 0;
    }
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) h2_complete(c, x);
    return 0;
}

static int h2_on_data(nghttp2_session *sess, uint8_t flags, int32_t sid, const uint8_t *data,
                      size_t len, void *ud)
{
    http_conn *c = ud;
    http_exchange *x = h2_x(sess, sid);
    (void)flags;
    if (!x) return 0;
    if (x->err_status) {
        /* Answered already (413...). The client may go on sending; curl treats an early
         * RST_STREAM as a failure even after a complete answer, so the rest is read and
         * dropped, and only a client that sends another max_body is told to stop. */
        x->dropped += len;
        if (x->sent && !x->rst && x->dropped > c->srv->opts.max_body) {
            x->rst = true;
            nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, sid, NGHTTP2_NO_ERROR);
        }
        return 0;
    }
    if (x->state != X_PARSING) return 0;
    if (x->blen + len > c->srv->opts.max_body) {
        x->err_status = 413;
        h2_reject(c, x);
        return 0;
    }
    if (x_body_append(x, (const char *)data, len)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

/* Notes when an answer is complete on the wire (nghttp2 would put an RST_STREAM submitted
 * earlier in front of the answer's HEADERS). */
static int h2_on_frame_send(nghttp2_session *sess, const nghttp2_frame *f, void *ud)
{
    http_exchange *x;
    (void)ud;
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    x = h2_x(sess, f->hd.stream_id);
    if (x) x->sent = true;
    return 0;
}

static int h2_on_stream_close(nghttp2_session *sess, int32_t sid, uint32_t code, void *ud)
{
    http_conn *c = ud;
    http_exchange *x = h2_x(sess, sid);
    (void)code;
    if (!x) return 0;
    nghttp2_session_set_stream_user_data(sess, sid, NULL);
    if (x->state == X_HANDLER) x_orphan(c, x);
    else x_release(c, x);
    c->last_ms = srv_now(c->srv);
    return 0;
}

static int h2_start(http_conn *c)
{
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 128},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HDR_BYTES_MAX},
    };
    if (nghttp2_session_server_new(&c->h2, c->srv->h2cb, c) != 0) return SL_ENOMEM;
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0)
        return SL_ENOMEM;
    /* a roomy connection window: PutRecords bodies are large and latency matters */
    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    return 0;
}

static void h2_feed(http_conn *c, const uint8_t *data, size_t len)
{
    ssize_t n = nghttp2_session_mem_recv(c->h2, data, len);
    if (n < 0) {
        /* protocol error: nghttp2 has queued a GOAWAY; send it, then close */
        c->dead_in = true;
        c->close_after = true;
        c->h2_flush_pending = true;
        if (c->busy == 0) c->want_close = true;
    }
    c->h2_flush_pending = true;
}

/* ------------------------------------------------------------------------------------------ */
/* connections */

static void conn_feed(http_conn *c, const uint8_t *data, size_t len)
{
    if (c->closing || c->dead_in) return;
    c->in_feed++;
    if (c->proto == 0) {
        /* protocol detection: gather bytes while they match the HTTP/2 preface */
        size_t take = H2_PREFACE_LEN - c->npre;
        if (take > len) take = len;
        memcpy(c->pre + c->npre, data, take);
        if (memcmp(c->pre + c->npre, h2_preface + c->npre, take) != 0) {
            size_t had = c->npre + take;
            c->proto = 1;
            http_parser_init(&c->parser, HTTP_REQUEST);
            c->parser.data = c;
            h1_feed(c, (const char *)c->pre, had);
            if (len > take) h1_feed(c, (const char *)data + take, len - take);
        } else {
            c->npre += take;
            if (c->npre == H2_PREFACE_LEN) {
                c->proto = 2;
                if (h2_start(c)) {
                    c->want_close = true;
                } else {
                    h2_feed(c, c->pre, H2_PREFACE_LEN);
                    if (len > take && !c->dead_in) h2_feed(c, data + take, len - take);
                }
            }
        }
    } else if (c->proto == 1) {
        h1_feed(c, (const char *)data, len);
    } else {
        h2_feed(c, data, len);
    }
    c->in_feed--;
    if (c->in_feed == 0 && !c->closing) {
        if (c->h2_flush_pending) {
            c->h2_flush_pending = false;
            h2_flush(c);
        }
        if (c->want_close && !c->closing) conn_close(c);
    }
}

static void conn_pause(http_conn *c)
{
    if (c->reading && !c->fake && !c->lingering) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void conn_maybe_resume(http_conn *c)
{
    if (!c->reading && !c->fake && !c->closing && !c->dead_in && c->busy < PIPELINE_MAX / 2) {
        if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0) c->reading = true;
    }
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    http_conn *c = h->data;
    (void)hint;
    /* one buffer per server: every read is parsed (and copied where kept) before returning */
    b->base = c->srv->rbuf;
    b->len = RBUF_SIZE;
}

static void conn_eof(http_conn *c)
{
    c->eof = true;
    if (c->lingering || c->busy == 0 || c->proto == 2) {
        conn_close(c);
        return;
    }
    /* half-close: answer what was asked, then close */
    c->dead_in = true;
    c->close_after = true;
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    http_conn *c = st->data;
    (void)b;
    if (c->closing) return;
    if (n < 0) {
        if (n == UV_EOF) {
            conn_pause(c);
            conn_eof(c);
        } else {
            conn_close(c);
        }
        return;
    }
    if (n == 0 || c->lingering) return;
    conn_feed(c, (const uint8_t *)c->srv->rbuf, (size_t)n);
    if (!c->closing && c->busy >= PIPELINE_MAX) conn_pause(c);
}

static void conn_free(http_conn *c)
{
    http_exchange *x;
    while ((x = c->xhead) != NULL) {
        x_unlink(c, x);
        x_destroy(x);
    }
    if (c->h2) nghttp2_session_del(c->h2);
    sl_free(c->wbuf);
    sl_free(c->fout);
    sl_free(c);
}

static void maybe_done(http_server *s);

static void conn_closed(http_conn *c)
{
    http_server *s = c->srv;
    if (c->prev) c->prev->next = c->next;
    else if (s->conns == c) s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    conn_free(c);
    maybe_done(s);
}

static void conn_close_cb(uv_handle_t *h)
{
    conn_closed(h->data);
}

/* Starts closing: exchanges the handler still holds become orphans; those in a write stay
 * until the write callback (libuv cancels them before the close callback). */
static void conn_close(http_conn *c)
{
    http_exchange *x;
    http_exchange *nx;
    if (c->closing) return;
    c->closing = true;
    c->dead_in = true;
    c->cur = NULL;
    if (c->h2) {
        /* nghttp2 must not hand us exchanges from here on */
        for (x = c->xhead; x; x = x->next) {
            if (x->stream_id) nghttp2_session_set_stream_user_data(c->h2, x->stream_id, NULL);
        }
    }
    for (x = c->xhead; x; x = nx) {
        nx = x->next;
        if (x->state == X_HANDLER) x_orphan(c, x);
    }
    if (!c->fake) uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}

static void on_connection(uv_stream_t *l, int status)
{
    http_server *s = l->data;
    http_conn *c;
    if (status < 0) {
        rt_log(RT_WARN, "http", "accept: %s", uv_strerror(status));
        return;
    }
    c = sl_calloc(1, sizeof *c);
    if (!c) return;
    c->srv = s;
    if (uv_tcp_init(s->loop, &c->tcp) < 0) {
        sl_free(c);
        return;
    }
    c->tcp.data = c;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    c->last_ms = srv_now(s);
    if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0 || s->stopping ||
        s->nconns > s->opts.max_connections) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) < 0) {
        conn_close(c);
        return;
    }
    c->reading = true;
}

/* ------------------------------------------------------------------------------------------ */
/* server */

static void sweep_cb(uv_timer_t *t)
{
    http_server *s = t->data;
    uint64_t now = srv_now(s);
    http_conn *c;
    http_conn *nc;
    for (c = s->conns; c; c = nc) {
        nc = c->next;
        if (c->closing) continue;
        if (c->lingering) {
            if (now >= c->linger_until) conn_close(c);
        } else if (c->busy == 0 && c->writes == 0 && now - c->last_ms >= s->opts.idle_timeout_ms) {
            conn_close(c);
        }
    }
}

static void handle_closed(uv_handle_t *h)
{
    http_server *s = h->data;
    s->open_handles--;
    maybe_done(s);
}

static void srv_free(http_server *s)
{
    http_exchange *x;
    while ((x = s->xfree) != NULL) {
        s->xfree = x->next;
        x_destroy(x);
    }
    if (s->h2cb) nghttp2_session_callbacks_del(s->h2cb);
    sl_free(s);
}

static void maybe_done(http_server *s)
{
    void (*done)(void *);
    void *ctx;
    if (!s->stopping || s->open_handles > 0 || s->nconns > 0 || !s->loop) return;
    done = s->done;
    ctx = s->done_ctx;
    srv_free(s);
    if (done) done(ctx);
}

static void init_settings(void)
{
    h1_settings.on_message_begin = h1_on_begin;
    h1_settings.on_url = h1_on_url;
    h1_settings.on_header_field = h1_on_field;
    h1_settings.on_header_value = h1_on_value;
    h1_settings.on_headers_complete = h1_on_headers_complete;
    h1_settings.on_body = h1_on_body;
    h1_settings.on_message_complete = h1_on_complete;
}

static int srv_new(http_server **out, uv_loop_t *loop, const http_server_opts *opts,
                   http_handler_fn fn, void *ctx)
{
    http_server *s = sl_calloc(1, sizeof *s);
    nghttp2_session_callbacks *cb;
    if (!s) return SL_ENOMEM;
    s->loop = loop;
    if (opts) s->opts = *opts;
    if (!s->opts.max_body) s->opts.max_body = DEF_MAX_BODY;
    if (!s->opts.idle_timeout_ms) s->opts.idle_timeout_ms = DEF_IDLE_MS;
    if (!s->opts.max_connections) s->opts.max_connections = DEF_MAX_CONNS;
    if (!s->opts.host) s->opts.host = "127.0.0.1";
    s->fn = fn;
    s->ctx = ctx;
    if (nghttp2_session_callbacks_new(&cb) != 0) {
        sl_free(s);
        return SL_ENOMEM;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, h2_on_frame_send);
    s->h2cb = cb;
    if (!h1_settings.on_message_begin) init_settings();
    *out = s;
    return 0;
}

int http_server_start(http_server **out, uv_loop_t *loop, const http_server_opts *opts,
                      http_handler_fn fn, void *ctx)
{
    http_server *s = NULL;
    struct sockaddr_storage addr;
    uint64_t period;
    int rc;

    rc = srv_new(&s, loop, opts, fn, ctx);
    if (rc) return rc;
    if (strchr(s->opts.host, ':'))
        rc = uv_ip6_addr(s->opts.host, s->opts.port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(s->opts.host, s->opts.port, (struct sockaddr_in *)&addr);
    if (rc < 0) goto fail_free;
    rc = uv_tcp_init(loop, &s->listener);
    if (rc < 0) goto fail_free;
    s->listener.data = s;
    s->open_handles++;
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    if (rc < 0) goto fail_close;
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    s->open_handles++;
    period = s->opts.idle_timeout_ms / 4;
    if (period < 10) period = 10;
    if (period > 1000) period = 1000;
    uv_timer_start(&s->sweep, sweep_cb, period, period);
    *out = s;
    return 0;

fail_close:
    /* the handle must be closed through the loop; the server is freed once it is */
    s->stopping = true;
    uv_close((uv_handle_t *)&s->listener, handle_closed);
    return rc;
fail_free:
    srv_free(s);
    return rc;
}

int http_server_port(const http_server *s)
{
    struct sockaddr_storage a;
    int len = sizeof a;
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&a, &len) < 0) return -1;
    if (a.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
    return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

void http_server_stop(http_server *s, void (*done)(void *ctx), void *ctx)
{
    http_conn *c;
    http_conn *nc;
    if (!s || s->stopping) return;
    s->stopping = true;
    s->done = done;
    s->done_ctx = ctx;
    uv_close((uv_handle_t *)&s->listener, handle_closed);
    uv_timer_stop(&s->sweep);
    uv_close((uv_handle_t *)&s->sweep, handle_closed);
    for (c = s->conns; c; c = nc) {
        nc = c->next;
        if (c->closing) continue;
        if (c->busy == 0 && c->writes == 0) {
            conn_close(c);
        } else {
            /* answer what is in flight, accept nothing new */
            c->close_after = true;
            c->dead_in = true;
            if (c->h2) {
                nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
                                      nghttp2_session_get_last_proc_stream_id(c->h2),
                                      NGHTTP2_NO_ERROR, NULL, 0);
                h2_flush(c);
            }
        }
    }
}

const http_request *http_exchange_request(const http_exchange *x) { return &x->req; }

const char *http_request_header(const http_request *r, const char *name)
{
    size_t i;
    for (i = 0; i < r->nheaders; i++) {
        if (!strcasecmp(r->headers[i].name, name)) return r->headers[i].value;
    }
    return NULL;
}

void http_respond(http_exchange *x, int status, const http_header *headers, size_t nheaders,
                  const uint8_t *body, size_t body_len)
{
    http_conn *c;
    SL_ASSERT(x != NULL);
    SL_ASSERT(x->state == X_HANDLER);
    c = x->conn;
    if (!c) {
        /* orphan: the client went away */
        x_destroy(x);
        return;
    }
    if (c->proto == 2) h2_respond(x, status, headers, nheaders, body, body_len);
    else h1_respond(x, status, headers, nheaders, body, body_len);
}

/* ------------------------------------------------------------------------------------------ */
/* fake connections (tests, fuzzing) */

static void fake_pump(http_conn *c)
{
    /* complete the writes the loop would have completed */
    while (c->fdone_head) {
        http_exchange *x = c->fdone_head;
        c->fdone_head = x->wnext;
        if (!c->fdone_head) c->fdone_tail = NULL;
        x->wnext = NULL;
        c->in_feed++;
        h1_write_done(x, c->closing ? UV_ECANCELED : 0);
        c->in_feed--;
    }
    if (c->h2_flush_pending && !c->closing) {
        c->h2_flush_pending = false;
        h2_flush(c);
    }
    if (c->want_close && !c->closing) conn_close(c);
}

int http__fake_new(http__fake **out, const http_server_opts *opts, http_handler_fn fn, void *ctx)
{
    http__fake *f = sl_calloc(1, sizeof *f);
    int rc;
    if (!f) return SL_ENOMEM;
    rc = srv_new(&f->srv, NULL, opts, fn, ctx);
    if (rc) {
        sl_free(f);
        return rc;
    }
    f->conn = sl_calloc(1, sizeof *f->conn);
    if (!f->conn) {
        srv_free(f->srv);
        sl_free(f);
        return SL_ENOMEM;
    }
    f->conn->srv = f->srv;
    f->conn->fake = true;
    f->conn->last_ms = srv_now(f->srv);
    f->srv->conns = f->conn;
    f->srv->nconns = 1;
    *out = f;
    return 0;
}

int http__fake_feed(http__fake *f, const uint8_t *data, size_t len)
{
    http_conn *c = f->conn;
    if (!c->closing && !c->lingering) conn_feed(c, data, len);
    fake_pump(c);
    return !c->closing && !c->want_close;
}

void http__fake_eof(http__fake *f)
{
    http_conn *c = f->conn;
    if (c->closing) return;
    conn_eof(c);
    fake_pump(c);
}

const uint8_t *http__fake_output(const http__fake *f, size_t *len)
{
    *len = f->conn->foutlen;
    return f->conn->fout;
}

void http__fake_free(http__fake *f)
{
    http_conn *c;
    if (!f) return;
    c = f->conn;
    fake_pump(c);
    conn_close(c);
    fake_pump(c);   /* cancels writes still pending */
    f->srv->conns = NULL;
    f->srv->nconns = 0;
    conn_free(c);
    srv_free(f->srv);
    sl_free(f);
}

void http__parse_buffer(const uint8_t *data, size_t len, size_t chunk, http_handler_fn fn,
                        void *ctx)
{
    http__fake *f;
    size_t off = 0;
    if (http__fake_new(&f, NULL, fn, ctx)) return;
    if (chunk == 0) chunk = len ? len : 1;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        if (!http__fake_feed(f, data + off, n)) break;
        off += n;
    }
    http__fake_free(f);
}
