/* wire.h — Kinesis request decoding and response encoding for the two wire formats of SPEC 1.1:
 * application/x-amz-json-1.1 (cJSON) and application/x-amz-cbor-1.1 (libcbor).
 *
 * Requests: either format is decoded into one cJSON tree with the JSON member names. The only
 * node kinds that do not exist in plain JSON come from CBOR:
 *   - a byte string becomes a "blob node": type cJSON_Raw, valuestring holds the raw bytes
 *     (plus a NUL), valueint/valuedouble the byte count; read it with wire_blob_bytes();
 *   - tag 1 (epoch milliseconds, AWS's CBOR timestamp) becomes a number in epoch *seconds*, the
 *     JSON unit, so every timestamp in a tree is seconds (wire_ts_ms converts back).
 * JSON blobs stay base64 strings; wire_b64_check/wire_b64_decode apply SPEC 1.1's strict rules.
 *
 * Responses are written straight into one growing buffer (no tree) by a small streaming writer
 * that knows the per-field types JSON and CBOR disagree on: blob (base64 text vs byte string)
 * and timestamp (decimal seconds with a millisecond fraction vs tag 1 + integer milliseconds).
 * Containers are opened with their entry count (CBOR definite lengths); JSON ignores the count.
 *
 * Thread-safety: every function works only on its arguments; safe from any thread.
 */
#ifndef RT_WIRE_H
#define RT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "broker/sl_common.h"

enum wire_fmt { WIRE_JSON = 0, WIRE_CBOR = 1 };

#define WIRE_CT_JSON "application/x-amz-json-1.1"
#define WIRE_CT_CBOR "application/x-amz-cbor-1.1"

/* Format named by a Content-Type header value (NULL or anything that is not CBOR: JSON). */
enum wire_fmt wire_fmt_from_content_type(const char *content_type);
/* The content type a response in `fmt` carries. */
const char *wire_content_type(enum wire_fmt fmt);

/* Decodes a request body into *out (free with cJSON_Delete). The top level must be an object
 * (map); an empty body decodes to an empty object. SL_ESERIAL with a message on anything
 * undecodable (bad syntax, trailing bytes, non-string map keys, nesting deeper than 64). */
int wire_decode(enum wire_fmt fmt, const uint8_t *body, size_t len, cJSON **out, sl_err *err);
int wire_json_decode(const uint8_t *body, size_t len, cJSON **out, sl_err *err);
int wire_cbor_decode(const uint8_t *body, size_t len, cJSON **out, sl_err *err);

/* Blob nodes (CBOR byte strings). */
cJSON *wire_blob_new(const uint8_t *p, size_t n);  /* NULL on allocation failure */
bool wire_is_blob(const cJSON *node);
/* Borrowed view of a blob node's bytes (valid while the tree lives). */
void wire_blob_bytes(const cJSON *node, const uint8_t **p, size_t *n);

/* Timestamps in a decoded tree are epoch seconds; this rounds to milliseconds. */
int64_t wire_ts_ms(const cJSON *number);

/* ---- base64 (SPEC 1.1) -------------------------------------------------------------------- *
 * Hand-written because the rules are stricter than libcrypto's EVP_DecodeBlock (which skips
 * whitespace and ignores non-zero trailing bits): length % 4 == 0, alphabet A-Za-z0-9+/ with
 * '=' only as final padding, and the unused bits of the last symbol zero (canonical form). */

/* 0 and the decoded length, or SL_ESERIAL with kinesalite's message about the offending value
 * ("'<v>' can not be converted to a Blob: ..."). */
int wire_b64_check(const char *s, size_t n, size_t *decoded_len, sl_err *err);
/* Decodes a string that passed wire_b64_check into out (room for its decoded length);
 * returns the number of bytes written. */
size_t wire_b64_decode(const char *s, size_t n, uint8_t *out);
/* Encoded length of n bytes, and the encoder (writes no NUL; returns bytes written). */
size_t wire_b64_len(size_t n);
size_t wire_b64_encode(const uint8_t *p, size_t n, char *out);

/* ---- response writer --------------------------------------------------------------------- */

#define WIRE_MAX_DEPTH 16

typedef struct wire_out {
    enum wire_fmt fmt;
    uint8_t *buf;            /* owned; sl_malloc'd */
    size_t len;
    size_t cap;
    bool oom;                /* an allocation failed, or a container's entry count did not
                                match what was written: the output is unusable */
    int depth;
    char closer[WIRE_MAX_DEPTH];    /* '}' or ']' for each open container */
    bool first[WIRE_MAX_DEPTH];     /* JSON: no comma needed before the next member/element */
    size_t declared[WIRE_MAX_DEPTH]; /* entries announced by wire_map/wire_arr */
    size_t written[WIRE_MAX_DEPTH];  /* entries written so far (keys for maps) */
    bool after_key;          /* JSON: the next value follows a key (no comma) */
} wire_out;

/* hint: expected size in bytes (a first allocation of that size). */
void wire_out_init(wire_out *w, enum wire_fmt fmt, size_t hint);
void wire_out_free(wire_out *w);
/* Hands the buffer to the caller (free with sl_free); the writer is empty afterwards. */
uint8_t *wire_out_take(wire_out *w, size_t *len);

void wire_map(wire_out *w, size_t nentries);
void wire_arr(wire_out *w, size_t nitems);
/* Closes the innermost map or array. In both formats a count that differs from the one given
 * to wire_map/wire_arr marks the writer failed (oom), so a miscounted CBOR header can never
 * reach a client. */
void wire_end(wire_out *w);
void wire_key(wire_out *w, const char *key);
void wire_str(wire_out *w, const char *s);
void wire_strn(wire_out *w, const char *s, size_t n);
void wire_blob(wire_out *w, const uint8_t *p, size_t n);
void wire_ts(wire_out *w, int64_t epoch_ms);
void wire_int(wire_out *w, int64_t v);
void wire_bool(wire_out *w, bool v);
void wire_null(wire_out *w);
/* Reserve room for n more bytes (a batch writer calls it once up front). */
void wire_reserve(wire_out *w, size_t n);

/* Formats epoch milliseconds as JSON seconds "1700000123.456" (never exponent form) into buf
 * (at least 32 bytes); returns the length. */
size_t wire_format_ts(int64_t epoch_ms, char *buf);

/* One complete error body {"__type": type, "message": msg} in fmt. Returns 0 or SL_ENOMEM. */
int wire_error_body(enum wire_fmt fmt, const char *type, const char *msg, uint8_t **body,
                    size_t *len);

/* ---- internal to runtime/wire_*.c -------------------------------------------------------- */
bool wire__grow(wire_out *w, size_t n);                 /* room for n more bytes */
/* CBOR emitters behind the writer (libcbor's streaming encoders) */
void wire__cbor_map(wire_out *w, size_t n);
void wire__cbor_arr(wire_out *w, size_t n);
void wire__cbor_text(wire_out *w, const char *s, size_t n);
void wire__cbor_bytes(wire_out *w, const uint8_t *p, size_t n);
void wire__cbor_ts(wire_out *w, int64_t epoch_ms);
void wire__cbor_int(wire_out *w, int64_t v);
void wire__cbor_bool(wire_out *w, bool v);
void wire__cbor_null(wire_out *w);

#endif
