/* api_esm.h — the Lambda REST API for event-source mappings (SPEC 5.4) over runtime/esm.h:
 *   POST   /2015-03-31/event-source-mappings[/]          CreateEventSourceMapping  202
 *   GET    /2015-03-31/event-source-mappings[/]?...      ListEventSourceMappings   200
 *   GET    /2015-03-31/event-source-mappings/{UUID}      GetEventSourceMapping     200
 *   PUT    /2015-03-31/event-source-mappings/{UUID}      UpdateEventSourceMapping  202
 *   DELETE /2015-03-31/event-source-mappings/{UUID}      DeleteEventSourceMapping  202
 * Errors use Lambda's shape (SPEC 5.1). Loop thread only. */
#ifndef API_ESM_H
#define API_ESM_H

#include <stdbool.h>

#include "runtime/daemon.h"
#include "runtime/http_server.h"

/* True when the path belongs to this API (the caller then calls api_esm_handle). */
bool api_esm_match(const char *path);
/* Answers every request whose path api_esm_match accepts (others: 404 ResourceNotFound). */
void api_esm_handle(rt_daemon *d, http_exchange *x);

#endif
