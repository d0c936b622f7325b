/* fuzz_http.c — libFuzzer target for the HTTP front: raw bytes go through the server's own
 * per-connection code (protocol detection, http-parser glue, nghttp2 session, limits, pipeline
 * ordering, orphaned exchanges) via the socket-less fake connection of runtime/http_server_int.h,
 * and every request that comes out is run through the SigV4 parser and verifier.
 *
 * Input layout: byte 0 = mode bits, byte 1 = chunk size (0 = everything at once), rest = the
 * bytes a client sends.
 *   mode & 1   prepend the HTTP/2 client preface (so the fuzzer reaches nghttp2 quickly)
 *   mode & 2   the handler keeps every other exchange and answers it later (out of order)
 *   mode & 4   answer kept exchanges between chunks rather than after the connection closed
 *   mode & 8   end with a client EOF (half-close) before closing
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "broker/sl_common.h"
#include "runtime/auth.h"
#include "runtime/http_server.h"
#include "runtime/http_server_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HELD_MAX 64

static http_exchange *held[HELD_MAX];
static size_t nheld;
static unsigned counter;
static uint8_t cur_mode;
static rt_auth *auth;

static void answer(http_exchange *x, unsigned n)
{
    const http_request *r = http_exchange_request(x);
    http_header hs[2] = {{"Content-Type", "application/x-amz-json-1.1"},
                         {"X-Amzn-RequestId", "00000000-0000-0000-0000-000000000000"}};
    int status = n % 3 == 0 ? 200 : n % 3 == 1 ? 400 : 500;
    http_respond(x, status, hs, n % 2 ? 2 : 0, r->body, r->body_len);
}

static void handler(void *ctx, http_exchange *x)
{
    const http_request *r = http_exchange_request(x);
    char type[64];
    sl_err err;
    (void)ctx;
    /* everything the server hands out must be well-formed */
    if (!r->method || !r->path || !r->query || !r->body || r->body[r->body_len] != 0)
        __builtin_trap();
    (void)http_request_header(r, "Authorization");
    (void)rt_auth_check(NULL, r, 1440938160000LL, type, sizeof type, &err);
    (void)rt_auth_check(auth, r, 1440938160000LL, type, sizeof type, &err);
    counter++;
    if ((cur_mode & 2) && (counter & 1) && nheld < HELD_MAX) {
        held[nheld++] = x;
        return;
    }
    answer(x, counter);
}

static void answer_held(void)
{
    size_t i;
    /* newest first: the opposite of request order */
    for (i = nheld; i > 0; i--) answer(held[i - 1], (unsigned)i);
    nheld = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    http__fake *f;
    http_server_opts opts;
    size_t chunk;
    size_t off = 0;
    bool open = true;

    if (size < 2) return 0;
    if (!auth) {
        if (rt_auth_new(&auth) || rt_auth_add(auth, "AKIDEXAMPLE",
                                              "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"))
            return 0;
    }
    cur_mode = data[0];
    chunk = data[1];
    data += 2;
    size -= 2;
    if (chunk == 0) chunk = size ? size : 1;
    memset(&opts, 0, sizeof opts);
    opts.max_body = 4096;   /* small, so that 413 paths are reachable */
    nheld = 0;
    counter = 0;
    if (http__fake_new(&f, &opts, handler, NULL)) return 0;
    if (cur_mode & 1) open = http__fake_feed(f, (const uint8_t *)preface, 24);
    while (open && off < size) {
        size_t n = size - off < chunk ? size - off : chunk;
        open = http__fake_feed(f, data + off, n);
        off += n;
        if (cur_mode & 4) answer_held();
    }
    if (open && (cur_mode & 8)) http__fake_eof(f);
    if (cur_mode & 4) answer_held();
    http__fake_free(f);
    answer_held();   /* orphans: the connection is gone */
    return 0;
}
