/* api_errors.h — the one place SL_E* status codes become AWS error types and HTTP statuses
 * (STYLE.md 3), and the response helpers every API answer goes through: each response carries
 * `x-amzn-RequestId` (a UUID) and `x-amz-id-2` (random base64), like AWS (SPEC 1.1).
 *
 * Thread: loop thread (they call http_respond); api_error_type/api_error_status are pure. */
#ifndef RT_API_ERRORS_H
#define RT_API_ERRORS_H

#include <stddef.h>
#include <stdint.h>

#include "broker/sl_common.h"
#include "runtime/http_server.h"
#include "runtime/wire.h"

/* AWS error type for a status code (Kinesis flavour): SL_EINVAL InvalidArgumentException,
 * SL_EVALIDATION ValidationException, SL_ENOTFOUND ResourceNotFoundException, SL_EEXISTS and
 * SL_EINUSE ResourceInUseException, SL_ELIMIT LimitExceededException, SL_ETHROTTLED
 * ProvisionedThroughputExceededException, SL_EEXPIRED ExpiredIteratorException,
 * SL_ETOKEN_EXPIRED ExpiredNextTokenException, SL_ESERIAL SerializationException,
 * SL_ETOOBIG ValidationException, SL_ECONFLICT ResourceConflictException; anything else
 * (I/O, corruption, memory, -errno) InternalFailureException. */
const char *api_error_type(int code);
/* HTTP status AWS uses for an error type (400 unless listed: InternalFailureException 500,
 * AccessDeniedException 403, ...). */
int api_error_status(const char *type);

/* A fresh request id: lower-case UUID version 4 text (37 bytes with the NUL). */
void api_request_id(char out[37]);

/* Answers x with status and body (copied), Content-Type content_type (none when NULL or the
 * body is empty), plus the request-id headers and `extra` headers. */
void api_send(http_exchange *x, int status, const char *content_type, const uint8_t *body,
              size_t len, const http_header *extra, size_t nextra);
/* {"__type": type, "message": msg} in fmt with the status api_error_status(type). */
void api_send_error(http_exchange *x, enum wire_fmt fmt, const char *type, const char *msg);
/* The same with an explicit HTTP status (e.g. signature errors, always 400 in JSON protocols). */
void api_send_error_status(http_exchange *x, enum wire_fmt fmt, int status, const char *type,
                           const char *msg);
/* An error from a status code and its message (type and status from the table). */
void api_send_sl_error(http_exchange *x, enum wire_fmt fmt, const sl_err *err);

#endif
