/* http_server_int.h — internals of runtime/http_server.c shared with its tests and fuzz target.
 *
 * A "fake" connection runs the exact per-connection code of the server (protocol detection,
 * http-parser glue, nghttp2 session, limits, response ordering) without a socket or a loop:
 * bytes go in through http__fake_feed, everything the server would have written is collected
 * and can be read back with http__fake_output. Writes complete at the end of each feed call, in
 * order, as the loop would complete them. Not thread-safe; one fake per thread.
 */
#ifndef HTTP_SERVER_INT_H
#define HTTP_SERVER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/http_server.h"

typedef struct http__fake http__fake;

/* New fake connection with a server of these options (host/port ignored). SL_ENOMEM on failure. */
int http__fake_new(http__fake **out, const http_server_opts *opts, http_handler_fn fn, void *ctx);
/* Feeds bytes as if read from the socket. Returns 1 while the connection is open, 0 once the
 * server closed (or decided to close) it. */
int http__fake_feed(http__fake *f, const uint8_t *data, size_t len);
/* Simulates the client closing its side (EOF). */
void http__fake_eof(http__fake *f);
/* Everything written so far (capped at 4 MiB; the rest is counted, not kept). Borrowed. */
const uint8_t *http__fake_output(const http__fake *f, size_t *len);
/* Closes the connection (exchanges still held by the handler become orphans that
 * http_respond frees) and frees the fake. NULL is fine. */
void http__fake_free(http__fake *f);

/* Convenience for fuzzing: feeds data in chunks of `chunk` bytes (0 = all at once) through a
 * fresh fake connection, then frees it. */
void http__parse_buffer(const uint8_t *data, size_t len, size_t chunk, http_handler_fn fn,
                        void *ctx);

#endif
