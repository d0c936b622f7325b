/* admin.h — the daemon's own endpoints for the sluice CLI and for scrapers (not AWS APIs):
 *
 *   GET /metrics                         Prometheus text format 0.0.4: broker, per stream and
 *                                        shard, per mapping (and shard), per function
 *   GET /sluice/logs/{function}?offset=N text/plain chunk of the function's current log from
 *                                        byte N (at most 1 MiB; &max=BYTES lowers it); header
 *                                        X-Sluice-Next-Offset says where to continue (`sluice
 *                                        logs -f`); 404 ResourceNotFoundException (Lambda shape)
 *                                        for an unknown function
 *   GET /sluice/dlq?destination=ARN      JSON array of the messages of a local SQS/SNS on-failure
 *                                        queue (runtime/dest.h), oldest first; 400
 *                                        InvalidParameterValueException for a bad destination
 *
 * No signature is required on these paths (like /health). Loop thread only.
 */
#ifndef RT_ADMIN_H
#define RT_ADMIN_H

#include <stdbool.h>

#include "runtime/daemon.h"
#include "runtime/http_server.h"

/* Answers the exchange and returns true when the path is one of the above (wrong methods get
 * 405); returns false without answering for any other path. */
bool admin_handle(rt_daemon *d, http_exchange *x);

#endif
