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

/* ---- the Lambda REST flavour (SPEC 5.1) ---------------------------------------------------- */

/* Status, header x-amzn-ErrorType and body {"Type":"User","message":...,"Message":...}. */
void api_lambda_error(http_exchange *x, int status, const char *type, const char *msg);
/* The same for a status code: SL_EVALIDATION ValidationException 400, SL_EINVAL
 * InvalidParameterValueException 400, SL_ENOTFOUND ResourceNotFoundException 404, SL_EEXISTS
 * and SL_ECONFLICT ResourceConflictException 409, SL_EPRECONDITION PreconditionFailedException
 * 412, SL_EINUSE ResourceInUseException 400, SL_ETOOBIG RequestTooLargeException 413,
 * SL_ESERIAL InvalidRequestContentException 400, others ServiceException 500. */
void api_lambda_sl_error(http_exchange *x, const sl_err *err);
/* A JSON body (Content-Type application/json) with the request-id headers. */
void api_lambda_json(http_exchange *x, int status, const char *json, size_t len);

/* Percent-decodes one path segment or query value ('+' stays '+') into out; false when
 * malformed, containing NUL or too long. */
bool api_pct_decode(const char *s, size_t len, char *out, size_t outlen);

#endif
