/* dest.h — on-failure destinations of event-source mappings (SPEC 3.7 and sluice's decisions):
 *   arn:aws:sqs:REGION:ACCOUNT:NAME   local queue  DATA/destinations/sqs/NAME.jsonl (one JSON/line)
 *   arn:aws:sns:REGION:ACCOUNT:NAME   local topic  DATA/destinations/sns/NAME.jsonl
 *   arn:aws:s3:::BUCKET               local bucket DATA/destinations/s3/BUCKET/<AWS key layout>
 *   arn:aws:kinesis:...:stream/NAME   a sluice stream (PutRecord, partition key = shard id)
 *   http://... or https://...         POST with libcurl, retried with backoff
 * Sending blocks (file appends, HTTP): call dst_send from a worker thread, never the loop. */
#ifndef DST_DEST_H
#define DST_DEST_H

#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "functions/event.h"

enum dst_kind { DST_SQS, DST_SNS, DST_S3, DST_STREAM, DST_HTTP };

/* Checks a DestinationConfig.OnFailure.Destination value; SL_EINVAL with the
 * InvalidParameterValueException message when unsupported or malformed. */
int dst_validate(const char *destination, enum dst_kind *kind, sl_err *err);

/* What went wrong with a discarded batch (the invocation record of SPEC 3.7). */
typedef struct dst_failure {
    const char *function_arn;
    const char *condition;          /* "RetryAttemptsExhausted" | "RecordAgeExceeded" */
    uint32_t approximate_invoke_count;
    bool has_response;              /* false when discarded before any invoke */
    int status_code;                /* responseContext.statusCode (200) */
    const char *function_error;     /* "Unhandled" or NULL (valid partial-batch response) */
    const char *shard_id;
    const char *stream_arn;
    const char *mapping_uuid;       /* S3 key layout */
    const fn_event_record *recs;    /* the discarded records, in order (S3 payload; first/last) */
    size_t nrecs;
    const fn_event_source *src;     /* for the S3 payload's event records */
    int64_t now_ms;                 /* "timestamp" */
} dst_failure;

/* Builds the invocation record JSON (S3 flavour adds "payload": {"Records": [...]}; SNS adds it
 * only while the message stays within 256 KB). *out is sl_malloc'd, NUL-terminated, one line. */
int dst_failure_json(const dst_failure *f, enum dst_kind kind, char **out, size_t *len);

/* Delivers one record to a destination. data_dir: the daemon's data directory; b: for stream
 * destinations. Returns 0 or a negative code (after the HTTP retries are used up). */
int dst_send(const char *data_dir, brk_broker *b, const char *destination,
             const dst_failure *f, sl_err *err);

/* Reads the messages of a local SQS/SNS queue file (for `sluice dlq read`): every line. */
int dst_queue_read(const char *data_dir, const char *destination, char ***lines, size_t *n,
                   sl_err *err);
/* Frees what dst_queue_read returned. NULL is fine. */
void dst_lines_free(char **lines, size_t n);

#endif
