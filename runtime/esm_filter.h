/* esm_filter.h — FilterCriteria of event-source mappings (SPEC 3.9): EventBridge-style patterns
 * matched against each record's metadata and (base64-decoded, JSON-parsed) data, before batching.
 * A record passes when it matches ANY filter; a mapping without filters passes everything. */
#ifndef ESM_FILTER_H
#define ESM_FILTER_H

#include <stdbool.h>

#include "broker/sl_common.h"
#include "functions/event.h"

typedef struct esm_filter esm_filter;

/* Compiles the FilterCriteria JSON ({"Filters":[{"Pattern":"<json text>"},...]}). Errors are
 * SL_EINVAL with the message for InvalidParameterValueException (bad JSON, > 5 filters,
 * unknown operator, non-JSON data pattern ...). NULL/empty criteria compile to "match all". */
int esm_filter_compile(esm_filter **out, const char *criteria_json, sl_err *err);
bool esm_filter_match(const esm_filter *f, const fn_event_record *r);
void esm_filter_free(esm_filter *f);

#endif
