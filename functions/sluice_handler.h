/* sluice_handler.h — the C ABI for native sluice handlers.
 *
 * A handler is one C function. Build it as a static executable against the handler library:
 *
 *     #include "sluice_handler.h"
 *     int sluice_handler(const sluice_event *ev, sluice_response *out) {
 *         for (size_t i = 0; i < ev->record_count; i++)
 *             sluice_log("key=%s bytes=%zu", ev->records[i].partition_key,
 *                        ev->records[i].data_len);
 *         return sluice_set_result(out, "{\"ok\":true}", 11);
 *     }
 *
 *     cc -O2 -static -Ipath/to/include handler.c -Lpath/to/lib -lsluice_handler -o handler
 *
 * The library supplies main(): it reads framed invocations on stdin (protocol in
 * functions/wire.h — any language that speaks it can be a handler), decodes the Kinesis records,
 * calls sluice_handler once per invocation and writes the result. The process is a warm worker:
 * globals and static variables survive between invocations of the same worker (like a Lambda
 * execution environment), never across functions or workers.
 *
 * The handler runs under a strict seccomp allow-list (SANDBOX.md 2.3): it can compute, allocate
 * memory, read the clock, log and call the host functions below. Opening files, sockets (unless
 * the function uses the network-out profile), spawning processes and most other system calls kill
 * the worker; the invocation then fails with errorType "Runtime.SeccompViolation". It must be
 * linked statically (a dynamic loader cannot start under the filter).
 *
 * printf/puts to stdout are redirected to the function log (stdout is the protocol channel).
 * Every function here is for the handler's thread only; none is async-signal-safe.
 */
#ifndef SLUICE_HANDLER_H
#define SLUICE_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_ABI_VERSION 1

/* One Kinesis record of the batch, decoded by the library from the event JSON. All pointers are
 * borrowed: valid until sluice_handler returns. Strings are NUL-terminated ("" when absent). */
typedef struct sluice_record {
    const char *partition_key;
    const char *sequence_number;
    const char *event_id;          /* "<shardId>:<sequenceNumber>" */
    const char *event_source_arn;
    const uint8_t *data;           /* base64-decoded record data (NUL-terminated for convenience) */
    size_t data_len;
    double approximate_arrival;    /* epoch seconds with millisecond fraction */
} sluice_record;

/* One invocation. Borrowed; valid until sluice_handler returns. */
typedef struct sluice_event {
    const char *json;              /* the raw event JSON (NUL-terminated) */
    size_t json_len;
    const sluice_record *records;  /* Records[] of a Kinesis event; NULL/0 for other events */
    size_t record_count;
    const char *request_id;
    const char *function_name;
    const char *function_version;
    const char *invoked_function_arn;
    uint32_t memory_limit_mb;
    int64_t deadline_ms;           /* epoch milliseconds */
} sluice_event;

/* Where the handler writes its outcome (opaque; owned by the library). */
typedef struct sluice_response sluice_response;

/* The function every handler defines. Return 0 for success (the result set with
 * sluice_set_result, or JSON null if none was set) and non-zero for failure (the error set with
 * sluice_set_error, or errorType "HandlerError" if none was set). */
int sluice_handler(const sluice_event *ev, sluice_response *out);

/* Sets the JSON result (copied). Returns 0, or -1 when json is NULL or larger than 6 MiB (the
 * invocation then fails with "Function.ResponseSizeTooLarge") or memory is short. The library
 * does not validate the JSON; the daemon does ("Runtime.InvalidResult"). */
int sluice_set_result(sluice_response *out, const char *json, size_t len);

/* Sets an error outcome: errorType (e.g. "ValidationError") and a printf-style errorMessage.
 * Returns -1 so handlers can write `return sluice_set_error(out, "X", "bad %d", n);`. */
int sluice_set_error(sluice_response *out, const char *error_type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds one partial batch failure (ReportBatchItemFailures). When any were added and no explicit
 * result was set, the result becomes {"batchItemFailures":[{"itemIdentifier":"<seq>"},...]}.
 * Returns 0 or -1 (out of memory / invalid argument). */
int sluice_add_batch_item_failure(sluice_response *out, const char *sequence_number);

/* Writes one line to the function's log (START/END/REPORT framing is added by sluice). Lines are
 * capped at 4 KiB and an invocation's log at 64 KiB; the excess is dropped with one marker. */
void sluice_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Milliseconds left before the invocation's deadline (may be negative). */
int64_t sluice_remaining_ms(const sluice_event *ev);

/* Host calls: ask the runtime to put records into a local stream on the handler's behalf.
 * sluice_put_record: on success returns 0 and copies the new record's sequence number into
 * seq_out (if non-NULL, cap bytes). sluice_put_records: returns the number of failed entries
 * (>= 0). Both return -1 on failure; sluice_last_error() then describes it. Valid only while
 * sluice_handler runs. */
typedef struct sluice_put_entry {
    const char *partition_key;
    const void *data;
    size_t data_len;
} sluice_put_entry;

int sluice_put_record(const char *stream, const char *partition_key, const void *data,
                      size_t data_len, char *seq_out, size_t cap);
int sluice_put_records(const char *stream, const sluice_put_entry *entries, size_t n);

/* Generic host call: op and request JSON as in functions/wire.h. On success returns 0 and a
 * malloc'd NUL-terminated response in *resp (free with free()); on failure -1. */
int sluice_host_call(const char *op, const char *req, size_t req_len, char **resp,
                     size_t *resp_len);

/* "errorType: errorMessage" of the last failed sluice_* call of this invocation. Borrowed. */
const char *sluice_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
