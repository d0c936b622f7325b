/* event.h — the AWS Lambda Kinesis event for a batch (SPEC 4.1, 4.2) and the parsing of what a
 * handler returns for it (SPEC 3.6 batchItemFailures, 3.8 tumbling-window state).
 * Pure functions: no I/O, thread-safe. */
#ifndef FN_EVENT_H
#define FN_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fn_event_record {
    const char *shard_id;         /* "shardId-000000000000" */
    const char *seq;              /* 56-digit sequence number */
    const char *partition_key;
    size_t pk_len;
    const uint8_t *data;          /* raw bytes; the event carries them base64-encoded */
    size_t data_len;
    int64_t arrival_ms;
} fn_event_record;

typedef struct fn_event_source {
    const char *stream_arn;       /* eventSourceARN */
    const char *region;           /* awsRegion */
    const char *role_arn;         /* invokeIdentityArn (the function's role) */
} fn_event_source;

/* The records an event was built from, handed along with its JSON so that an engine can build
 * its own representation without parsing (the Lua sandbox does). Only for events without
 * window fields. Borrowed: valid until the invocation completes. */
typedef struct fn_event_batch {
    const fn_event_source *src;
    const fn_event_record *recs;
    size_t n;
} fn_event_batch;

/* Tumbling-window additions (SPEC 4.2); NULL when windows are off. */
typedef struct fn_event_window {
    int64_t start_ms, end_ms;     /* rendered "2024-05-02T10:14:00Z" */
    const char *state_json;       /* running state object; NULL = {} */
    const char *shard_id;
    bool final_invoke;            /* isFinalInvokeForWindow */
    bool terminated_early;        /* isWindowTerminatedEarly */
} fn_event_window;

/* Bytes record r adds to the event JSON (for the 6 MB payload cap); exact, including the comma
 * separator, so that sum over records + fn_event_overhead(...) == length of fn_event_build. */
size_t fn_event_record_size(const fn_event_source *src, const fn_event_record *r);
size_t fn_event_overhead(const fn_event_source *src, const fn_event_window *w);

/* Builds {"Records":[...]} (plus window fields) into *out (sl_malloc'd, NUL-terminated). */
int fn_event_build(const fn_event_source *src, const fn_event_record *recs, size_t n,
                   const fn_event_window *w, char **out, size_t *len);

/* Outcome of a handler's response under ReportBatchItemFailures (SPEC 3.6). */
enum fn_batch_outcome {
    FN_BATCH_SUCCESS = 0,         /* empty/null list, {} or null response */
    FN_BATCH_PARTIAL,             /* *first_failed = index of the lowest reported record */
    FN_BATCH_FAILURE,             /* malformed: empty/null id, wrong key, id not in batch, bad JSON */
};
/* seqs: the batch's sequence numbers in order. */
enum fn_batch_outcome fn_event_parse_failures(const char *resp, size_t len,
                                              const char *const *seqs, size_t n,
                                              size_t *first_failed);

/* Tumbling windows (SPEC 3.8): the response must be an object with a "state" member. On success
 * *state_json is a sl_malloc'd copy of it and the batchItemFailures part is parsed as above.
 * Returns FN_BATCH_FAILURE when "state" is missing or the response is not an object. */
enum fn_batch_outcome fn_event_parse_window(const char *resp, size_t len,
                                            const char *const *seqs, size_t n,
                                            size_t *first_failed, char **state_json);

#endif
