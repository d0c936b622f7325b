/* invoke.h — running functions: warm-instance pools per function and code version, cold-start
 * accounting, reserved concurrency, START/END/REPORT logs, and the classification of every
 * outcome as a result or a Lambda-style function error (SPEC 4.4, 5.3; SANDBOX.md 2.6).
 *
 * The engines (Lua in-process, native in confined worker processes) sit behind fn_engine
 * (engine.h); callers never see which one ran.
 *
 * Threads: fn_invoke blocks for the length of the invocation, so the daemon calls it from a
 * worker thread (uv_queue_work), never from the loop. Everything here is thread-safe.
 */
#ifndef FN_INVOKE_H
#define FN_INVOKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/sl_common.h"
#include "functions/event.h"
#include "functions/logs.h"
#include "functions/registry.h"

/* What a handler may ask of the host (the `kinesis` module). The runtime implements it over the
 * broker; functions/ never holds a pointer into the store (DESIGN.md). op is "put_record" or
 * "put_records"; req/resp are JSON in the Kinesis API shapes (Data base64). Returns 0 with
 * *resp (sl_malloc'd), or non-zero with the AWS error type and message filled in. Called on the
 * invoking thread; must be thread-safe. */
typedef struct fn_host {
    void *ctx;
    int (*call)(void *ctx, const char *op, const char *req, size_t req_len, char **resp,
                size_t *resp_len, char *err_type, size_t type_len, char *err_msg,
                size_t msg_len);
} fn_host;

typedef struct fn_runtime fn_runtime;

typedef struct fn_runtime_opts {
    const char *data_dir;
    const char *region;
    const char *account;
    const char *launcher;         /* path of the sluice binary, run as `sluice __launch ...` */
    const fn_store *store;        /* function metadata persistence */
    fn_host host;
    uint32_t idle_ms;             /* a warm instance idle this long is reaped (0 = 5 min) */
    uint32_t max_uses;            /* an instance is retired after this many invocations
                                     (0 = 10000; SANDBOX.md decision 1) */
} fn_runtime_opts;

int fn_runtime_new(fn_runtime **out, const fn_runtime_opts *o, sl_err *err);
/* Frees idle instances; invocations must have finished. NULL is fine. */
void fn_runtime_free(fn_runtime *rt);
fn_registry *fn_runtime_registry(fn_runtime *rt);
fn_logs *fn_runtime_logs(fn_runtime *rt);
/* Frees warm instances idle for longer than idle_ms and pools of retired code versions. */
void fn_runtime_reap(fn_runtime *rt);
/* Drops every warm instance of a function (after update or delete). */
void fn_runtime_flush(fn_runtime *rt, const char *function);

enum fn_status {
    FN_DONE = 0,        /* the function ran: result or function error (see function_error) */
    FN_THROTTLED,       /* reserved concurrency exhausted: TooManyRequestsException */
    FN_NOT_FOUND,       /* no such function: ResourceNotFoundException */
    FN_SERVICE_ERROR,   /* the runtime could not run it (not a function error): ServiceException */
};

typedef struct fn_request {
    const char *function;         /* bare name */
    const uint8_t *payload;       /* event JSON */
    size_t len;
    bool want_log_tail;           /* LogType: Tail */
    const char *request_id;       /* NULL: a fresh UUID */
    const fn_event_batch *batch;  /* optional: the Kinesis records payload was built from */
} fn_request;

typedef struct fn_result {
    enum fn_status status;
    bool function_error;          /* payload is {"errorMessage","errorType","stackTrace"} */
    char *payload;                /* sl_malloc'd JSON ("null" when the handler returned nothing) */
    size_t len;
    char *log_tail;               /* last 4 KB of this invocation's log when requested */
    size_t log_tail_len;
    char request_id[37];
    char message[512];            /* why, for the non-FN_DONE statuses */
    double duration_ms;
    bool cold;                    /* a new instance was started for this invocation */
} fn_result;

/* Runs one synchronous invocation on the calling thread. Always fills *res (fn_result_clear). */
void fn_invoke(fn_runtime *rt, const fn_request *rq, fn_result *res);
void fn_result_clear(fn_result *r);

/* Counters per function (for /metrics and `sluice top`). */
typedef struct fn_stats {
    uint64_t invocations;
    uint64_t errors;
    uint64_t throttles;
    uint64_t cold_starts;
    uint32_t in_flight;
    uint32_t warm_instances;
    double p50_ms, p99_ms;        /* over the last 1024 invocations */
} fn_stats;
int fn_runtime_stats(fn_runtime *rt, const char *function, fn_stats *out);

#endif
