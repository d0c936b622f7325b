/* wire.h — the framed pipe protocol between the daemon and a native handler process.
 *
 * Shared by the daemon side (functions/native.c) and the handler library (functions/handler_lib.c,
 * linked statically into handlers), so this file and wire.c use libc only and never allocate.
 *
 * ## Transport
 * The handler reads frames on fd 0 and writes frames on fd 1. Anything it writes on fd 2 is log
 * text. One invocation is in flight at a time; a handler process loops over invocations (warm
 * worker) until fd 0 reaches end of file, then exits 0.
 *
 * ## Frame
 *   offset 0  u8   type          (one of FN_WIRE_* below)
 *   offset 1  u8   version       (FN_WIRE_VERSION = 1)
 *   offset 2  u16  seq           invocation sequence number (little-endian)
 *   offset 4  u32  length        (payload bytes that follow; little-endian)
 *   offset 8  payload
 * All integers are little-endian. A "str" inside a payload is a u32 length followed by that many
 * bytes (no NUL on the wire). A frame whose type is unknown, whose version is wrong, or whose
 * length exceeds the cap of its type (fn_wire_max_payload) is a protocol violation: the daemon
 * kills the handler and reports a function error.
 *
 * seq: the daemon numbers invocations (never 0) and sets the number in INVOKE and HOST_REPLY; the
 * handler copies the number of the current INVOKE into every frame it writes. A frame carrying
 * another number belongs to no current request: the daemon discards it (it is never taken as the
 * answer to a later request) and replaces the worker after the invocation.
 *
 * ## Frame types and payloads
 *   1 INVOKE       daemon -> handler
 *                  i64 deadline_ms (epoch milliseconds), u32 memory_mb,
 *                  str request_id, str function_name, str function_version, str invoked_arn,
 *                  then the event JSON (the rest of the payload)
 *   2 HOST_CALL    handler -> daemon, only between INVOKE and the result
 *                  str op ("put_record" | "put_records"), then request JSON
 *                  (Kinesis API shape: {"StreamName","PartitionKey","Data"(base64)} or
 *                  {"StreamName","Records":[{"PartitionKey","Data"}]})
 *   3 HOST_REPLY   daemon -> handler, exactly one per HOST_CALL
 *                  u8 status (0 ok, 1 error), then
 *                    ok:    response JSON (rest of payload)
 *                    error: str errorType, then errorMessage (rest of payload)
 *   4 LOG          handler -> daemon: one log line (no trailing newline needed)
 *   5 RESULT_OK    handler -> daemon: the function's result, JSON text (empty means null)
 *   6 RESULT_ERROR handler -> daemon: str errorType, then errorMessage (rest of payload)
 *
 * After RESULT_OK or RESULT_ERROR the handler must write nothing until the next INVOKE; bytes that
 * arrive in between are a protocol violation (they can never be attributed to a later invocation).
 *
 * ## Caps (payload bytes)
 *   INVOKE 6 MiB + 64 KiB, HOST_CALL 8 MiB, HOST_REPLY 1 MiB, LOG 8 KiB,
 *   RESULT_OK 6 MiB (6291456, Lambda's synchronous response limit), RESULT_ERROR 256 KiB.
 */
#ifndef FN_WIRE_H
#define FN_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define FN_WIRE_VERSION 1
#define FN_WIRE_HDR_SIZE 8

enum {
    FN_WIRE_INVOKE = 1,
    FN_WIRE_HOST_CALL = 2,
    FN_WIRE_HOST_REPLY = 3,
    FN_WIRE_LOG = 4,
    FN_WIRE_RESULT_OK = 5,
    FN_WIRE_RESULT_ERROR = 6,
};

#define FN_WIRE_MAX_RESULT 6291456u
#define FN_WIRE_MAX_INVOKE (FN_WIRE_MAX_RESULT + 65536u)
#define FN_WIRE_MAX_HOST_CALL (8u * 1024 * 1024)
#define FN_WIRE_MAX_HOST_REPLY (1024u * 1024)
#define FN_WIRE_MAX_LOG 8192u
#define FN_WIRE_MAX_ERROR (256u * 1024)

/* Status codes of this module (plain negative ints; wire.c links into libc-only handlers). */
#define FN_WIRE_EBADFRAME (-1) /* unknown type, bad version or reserved bytes */
#define FN_WIRE_ETOOBIG (-2)   /* length over the cap of the type / buffer too small */
#define FN_WIRE_ETRUNC (-3)    /* payload shorter than its fields say */

/* Largest payload allowed for a frame type; 0 for an unknown type. */
uint32_t fn_wire_max_payload(uint8_t type);

/* Writes the 8-byte header for a frame of `type` carrying `len` payload bytes. */
void fn_wire_put_header(uint8_t hdr[FN_WIRE_HDR_SIZE], uint8_t type, uint16_t seq, uint32_t len);

/* Validates a received header: returns 0 and fills type/len, FN_WIRE_EBADFRAME for garbage,
 * FN_WIRE_ETOOBIG when len exceeds the type's cap (type, seq and len are still filled). */
int fn_wire_parse_header(const uint8_t hdr[FN_WIRE_HDR_SIZE], uint8_t *type, uint16_t *seq,
                         uint32_t *len);

/* Views into a decoded INVOKE payload (not NUL-terminated; point into the payload). */
typedef struct fn_wire_invoke {
    int64_t deadline_ms;
    uint32_t memory_mb;
    const char *request_id;
    size_t request_id_len;
    const char *function_name;
    size_t function_name_len;
    const char *function_version;
    size_t function_version_len;
    const char *invoked_arn;
    size_t invoked_arn_len;
    const uint8_t *event;
    size_t event_len;
} fn_wire_invoke;

/* Payload size of an INVOKE with these fields (without the header). */
size_t fn_wire_invoke_size(const fn_wire_invoke *iv);
/* Encodes header + payload into buf (cap bytes); returns bytes written or FN_WIRE_ETOOBIG. */
long fn_wire_invoke_encode(const fn_wire_invoke *iv, uint16_t seq, uint8_t *buf, size_t cap);
/* Decodes an INVOKE payload; views point into p. */
int fn_wire_invoke_decode(const uint8_t *p, size_t n, fn_wire_invoke *out);

/* Generic "str prefix + rest" payloads (HOST_CALL: op + request; RESULT_ERROR: type + message;
 * HOST_REPLY error: status byte, then the same shape). */
size_t fn_wire_pair_size(size_t first_len, size_t rest_len);
long fn_wire_pair_encode(uint8_t type, uint16_t seq, const void *first, size_t first_len,
                         const void *rest, size_t rest_len, uint8_t *buf, size_t cap);
int fn_wire_pair_decode(const uint8_t *p, size_t n, const char **first, size_t *first_len,
                        const uint8_t **rest, size_t *rest_len);

/* HOST_REPLY: status 0 = ok (body = response JSON), 1 = error (body = errorType/message pair). */
size_t fn_wire_reply_size(int status, size_t a_len, size_t b_len);
long fn_wire_reply_encode(uint16_t seq, int status, const void *a, size_t a_len, const void *b,
                          size_t b_len, uint8_t *buf, size_t cap);

/* Little-endian helpers. */
void fn_wire_put_u32(uint8_t *p, uint32_t v);
uint32_t fn_wire_get_u32(const uint8_t *p);
void fn_wire_put_u64(uint8_t *p, uint64_t v);
uint64_t fn_wire_get_u64(const uint8_t *p);

#endif
