/* api_kinesis.h — the Kinesis Data Streams API (SPEC 1) over the broker: every operation of
 * SPEC 1.4 in JSON (application/x-amz-json-1.1) and CBOR (application/x-amz-cbor-1.1).
 *
 * A request goes: wire decode (runtime/wire.h) -> schema validation (runtime/validate.h) ->
 * semantic checks -> one broker call -> response written in the request's format. A failed call
 * changes nothing stored (the broker guarantees it per call; the API makes at most one mutating
 * broker call per request, after every check that can fail).
 *
 * Threads: loop thread. With --fsync always, PutRecord/PutRecords run the broker append on the
 * libuv thread pool (uv_queue_work) so a group-commit fsync never blocks the loop; the answer
 * is sent from the after-work callback on the loop.
 */
#ifndef RT_API_KINESIS_H
#define RT_API_KINESIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "runtime/daemon.h"
#include "runtime/validate.h"
#include "runtime/wire.h"

#define API_KINESIS_TARGET_PREFIX "Kinesis_20131202."

/* Is `op` (the part of X-Amz-Target after "Kinesis_20131202.") an operation we serve? */
bool api_kinesis_known(const char *op);

/* Serves one request whose target named `op` (answers x exactly once, maybe later for puts).
 * The caller has already checked the signature (runtime/auth.h). */
void api_kinesis_handle(rt_daemon *d, http_exchange *x, const char *op, enum wire_fmt fmt);

/* The decode + validation path alone (no broker): for tests and the fuzz target. 0 with the
 * decoded request in *req (cJSON_Delete it), or SL_ESERIAL / SL_EVALIDATION / SL_EINVAL with
 * AWS's message. Also runs the broker-free semantic checks of the operation. */
int api_kinesis_parse(const char *op, enum wire_fmt fmt, const uint8_t *body, size_t len,
                      cJSON **req, sl_err *err);

/* The schema of an operation (NULL when unknown). */
const val_field *api_kinesis_schema(const char *op);

/* NextToken codec for ListShards/ListStreams (exposed for tests): self-contained and
 * tamper-evident (HMAC-SHA256 with `key`), valid 300 s after issue.
 * The payload is an opaque text without '\n'. */
int api_token_encode(const uint8_t key[32], const char *payload, int64_t issued_ms, char **token);
/* SL_EINVAL "Invalid NextToken." for anything forged or garbled, SL_ETOKEN_EXPIRED once it is
 * older than 300 s at now_ms. *payload is sl_malloc'd. */
int api_token_decode(const uint8_t key[32], const char *token, int64_t now_ms, char **payload,
                     sl_err *err);

#endif
