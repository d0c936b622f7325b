/* functions_host.h — the runtime's side of the function interfaces (see functions_host.c). */
#ifndef RT_FUNCTIONS_HOST_H
#define RT_FUNCTIONS_HOST_H

#include "broker/broker.h"
#include "functions/invoke.h"
#include "runtime/daemon.h"
#include "runtime/esm.h"

/* Function metadata kept in the broker's catalog (namespace "function"). */
void rt_fn_store(brk_broker *b, fn_store *out);
/* The handlers' `kinesis` module (put_record, put_records) over the broker; thread-safe. */
void rt_fn_host(brk_broker *b, fn_host *out);
/* Event-source mappings invoke functions through d->functions on the libuv threadpool. */
void rt_esm_invoker(rt_daemon *d, esm_invoker *out);

#endif
