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

#endif
