/* api_lambda.h — the Lambda control plane and Invoke (REST-JSON, SPEC 5.1-5.3) over the function
 * runtime (functions/invoke.h). Loop thread only. */
#ifndef API_LAMBDA_H
#define API_LAMBDA_H

#include <stdbool.h>

#include "broker/sl_common.h"
#include "runtime/daemon.h"
#include "runtime/http_server.h"

/* Handles /2015-03-31/functions..., /2017-10-31/functions/{name}/concurrency and
 * /2019-09-30/functions/{name}/concurrency. Returns false (without answering) for other paths. */
bool api_lambda_handle(rt_daemon *d, http_exchange *x);

/* Lambda's error shape (SPEC 5.1): status, header x-amzn-ErrorType, body
 * {"Type":"User","message":...,"Message":...}. */
void api_lambda_error(http_exchange *x, int status, const char *type, const char *msg);
/* The same for a status code: SL_EVALIDATION ValidationException 400, SL_EINVAL
 * InvalidParameterValueException 400, SL_ENOTFOUND ResourceNotFoundException 404, SL_EEXISTS
 * ResourceConflictException 409, SL_ECONFLICT PreconditionFailedException 412, SL_EINUSE
 * ResourceInUseException 400, SL_ETOOBIG RequestTooLargeException 413, SL_ESERIAL
 * InvalidRequestContentException 400, others ServiceException 500. */
void api_lambda_sl_error(http_exchange *x, const sl_err *err);
/* Sends a JSON body (Content-Type application/json) with the request-id headers. */
void api_lambda_json(http_exchange *x, int status, const char *json, size_t len);

/* Percent-decodes one path segment into out; false when malformed or too long. */
bool api_path_segment_decode(const char *seg, size_t len, char *out, size_t outlen);

#endif
