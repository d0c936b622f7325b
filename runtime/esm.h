/* esm.h — event-source mappings: Kinesis shards -> functions (SPEC 3, 4.1-4.2).
 *
 * An esm_mgr owns every mapping of the daemon. Each enabled mapping runs one consumer per shard
 * of its stream on the libuv loop; a consumer is woken by the broker when records are appended
 * (no polling delay), cuts ordered batches (BatchSize, 6 MB payload cap, batching window,
 * FilterCriteria, tumbling windows), hands them to the function through an esm_invoker and acts
 * on the result: checkpoint, retry with capped exponential backoff, bisect, partial batch
 * failures, record-age expiry, on-failure destinations. ParallelizationFactor splits a shard into
 * lanes by a hash of the partition key. Checkpoints are durable (broker catalog, namespace
 * "esm-checkpoint", key "<uuid>/<shardId>"); mapping configurations live in namespace "esm".
 *
 * Threads: every function here is loop-thread only unless it says otherwise (STYLE.md 7).
 * Errors: 0 or a negative SL_E* code; `err` carries the message for the API client:
 *   SL_EVALIDATION  ValidationException (400)     SL_EINVAL    InvalidParameterValueException
 *   SL_ENOTFOUND    ResourceNotFoundException     SL_EEXISTS   ResourceConflictException (409)
 *   SL_EINUSE       ResourceInUseException (400)  SL_ENOMEM / SL_EIO  ServiceException (500)
 */
#ifndef ESM_H
#define ESM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "broker/broker.h"
#include "broker/sl_common.h"
#include "functions/event.h"

/* ---- the function runtime, as the ESM sees it ---------------------------------------------- */

enum esm_invoke_status {
    ESM_INVOKE_OK,              /* the handler returned; body is its response */
    ESM_INVOKE_FUNCTION_ERROR,  /* handler error, timeout, crash (X-Amz-Function-Error) */
    ESM_INVOKE_THROTTLED,       /* TooManyRequests / no concurrency: retried, no retry consumed */
    ESM_INVOKE_SERVICE_ERROR,   /* function missing/pending, runtime failure: same as throttled */
};

typedef struct esm_invoke_result {
    enum esm_invoke_status status;
    const char *body;            /* response (OK) or error object; borrowed for the callback */
    size_t len;
    const char *function_error;  /* "Unhandled" for FUNCTION_ERROR, else NULL */
} esm_invoke_result;

/* Result callback: loop thread, exactly once per invoke; may run before invoke() returns. */
typedef void (*esm_invoke_done)(void *cb_ctx, const esm_invoke_result *r);

typedef struct esm_invoker {
    void *ctx;
    /* Resolves a FunctionName (name / ARN / partial ARN, optional :qualifier) to its ARN and
     * execution role ARN. SL_ENOTFOUND (with a message in err) when there is no such function. */
    int (*resolve)(void *ctx, const char *function, char *arn, size_t arn_len, char *role,
                   size_t role_len, sl_err *err);
    /* Starts a RequestResponse invocation; takes ownership of payload (sl_free); calls done on
     * the loop thread exactly once. batch (may be NULL) describes the records payload was built
     * from; it stays valid until done runs. */
    void (*invoke)(void *ctx, const char *function_arn, char *payload, size_t len,
                   const fn_event_batch *batch, esm_invoke_done done, void *cb_ctx);
} esm_invoker;

/* ---- mapping configuration ----------------------------------------------------------------- */

enum esm_start_pos { ESM_START_TRIM_HORIZON, ESM_START_LATEST, ESM_START_AT_TIMESTAMP };

enum esm_state {
    ESM_CREATING,
    ESM_ENABLING,
    ESM_ENABLED,
    ESM_DISABLING,
    ESM_DISABLED,
    ESM_UPDATING,
    ESM_DELETING,
};
const char *esm_state_name(enum esm_state s);        /* "Creating", ... (SPEC 3.10) */
const char *esm_start_pos_name(enum esm_start_pos p); /* "TRIM_HORIZON", ... */

#define ESM_UUID_LEN 37
#define ESM_ARN_LEN 256
#define ESM_PAYLOAD_MAX 6291456u    /* synchronous invoke payload cap (SPEC 3.2) */
#define ESM_WINDOW_STATE_MAX 1048576u /* tumbling-window state per shard (SPEC 3.8) */

/* Every setting of a mapping, with AWS's defaults. Strings the struct points to are owned by it
 * (esm_config_clear frees them). */
typedef struct esm_config {
    char uuid[ESM_UUID_LEN];
    char function_arn[ESM_ARN_LEN];
    char role_arn[ESM_ARN_LEN];
    char stream_arn[ESM_ARN_LEN];        /* EventSourceArn as given */
    char stream[129];                    /* resolved stream name */
    bool enabled;                        /* true */
    uint32_t batch_size;                 /* 1..10000, 100 */
    uint32_t max_window_s;               /* MaximumBatchingWindowInSeconds 0..300, 0 */
    enum esm_start_pos start_pos;        /* required */
    int64_t start_ts_ms;                 /* AT_TIMESTAMP only */
    uint32_t parallelization;            /* 1..10, 1 */
    bool bisect;                         /* BisectBatchOnFunctionError, false */
    int32_t max_retry;                   /* -1 (forever) or 0..10000 */
    int32_t max_age_s;                   /* -1 (forever) or 60..604800 */
    bool report_failures;                /* FunctionResponseTypes has ReportBatchItemFailures */
    uint32_t tumbling_s;                 /* 0 (off) .. 900 */
    char *filter_json;                   /* FilterCriteria JSON text, NULL when unset */
    char *destination;                   /* DestinationConfig.OnFailure.Destination or NULL */
    int64_t last_modified_ms;
} esm_config;

/* AWS defaults for everything (uuid empty, start position TRIM_HORIZON). */
void esm_config_defaults(esm_config *c);
/* Deep copy; SL_ENOMEM. dst must not hold owned strings (cleared or fresh). */
int esm_config_copy(esm_config *dst, const esm_config *src);
void esm_config_clear(esm_config *c);

/* What Get/List/Create/Update/Delete report about a mapping. */
typedef struct esm_view {
    esm_config cfg;
    enum esm_state state;
    char state_reason[64];       /* StateTransitionReason */
    char last_result[128];       /* LastProcessingResult */
} esm_view;
void esm_view_clear(esm_view *v);
void esm_views_free(esm_view *v, size_t n);

/* ---- the manager --------------------------------------------------------------------------- */

typedef struct esm_mgr esm_mgr;

typedef struct esm_mgr_opts {
    uv_loop_t *loop;
    brk_broker *broker;
    const char *data_dir;          /* for on-failure destinations (dest.h) */
    const char *region;            /* "us-east-1" when NULL */
    const char *account;           /* "000000000000" when NULL */
    const esm_invoker *invoker;    /* copied; NULL: every FunctionName resolves to a plain ARN
                                      and invocations fail as service errors (no runtime) */
    uint32_t retry_base_ms;        /* backoff base, default 1000 */
    uint32_t retry_cap_ms;         /* backoff cap, default 60000 */
    uint32_t transition_ms;        /* Creating/Updating/Deleting -> next state delay, default 0 */
    /* Clock in epoch ms for record age and tumbling windows; NULL = sl_now_ms. */
    int64_t (*clock)(void *clock_ctx);
    void *clock_ctx;
} esm_mgr_opts;

int esm_mgr_new(esm_mgr **out, const esm_mgr_opts *opts);
/* Loads the persisted mappings and starts the enabled ones from their checkpoints. A mapping
 * whose stream is gone is kept (it resumes if the stream comes back) and logged. */
int esm_mgr_start(esm_mgr *m, sl_err *err);
/* Stops every consumer (in-flight invocations are awaited and their results applied, pending
 * checkpoints written), closes every handle, frees the manager and then calls done(ctx) on the
 * loop thread. The loop must keep running until then, and the invoker must still answer (close
 * the manager before the function runtime). NULL m calls done at once. */
void esm_mgr_close(esm_mgr *m, void (*done)(void *ctx), void *ctx);

/* Control plane (SPEC 5.4). `function` is the FunctionName as given; it is resolved through the
 * invoker. Create: the config's ranges were checked by the caller; checked here: stream and
 * function exist (SL_ENOTFOUND), duplicate function+stream (SL_EEXISTS citing the UUID),
 * FilterCriteria and destination (SL_EINVAL), AT_TIMESTAMP in the future (SL_EINVAL). On
 * success `out` holds the new mapping (State Creating). */
int esm_mgr_create(esm_mgr *m, const esm_config *cfg, const char *function, esm_view *out,
                   sl_err *err);
int esm_mgr_get(esm_mgr *m, const char *uuid, esm_view *out, sl_err *err);
/* Every mapping in creation order; free with esm_views_free. */
int esm_mgr_list(esm_mgr *m, esm_view **out, size_t *n);
/* Replaces the tunables of a mapping with cfg's (uuid, stream and start position are kept);
 * function != NULL changes the function. SL_EINUSE while Creating/Updating/Deleting. */
int esm_mgr_update(esm_mgr *m, const char *uuid, const esm_config *cfg, const char *function,
                   esm_view *out, sl_err *err);
/* Starts deleting (State Deleting); the mapping and its checkpoints are gone once its consumers
 * stopped. SL_EINUSE when already deleting. */
int esm_mgr_delete(esm_mgr *m, const char *uuid, esm_view *out, sl_err *err);

/* ---- metrics ------------------------------------------------------------------------------- */

typedef struct esm_metrics {
    int64_t iterator_age_ms;     /* age of the last record of the latest batch when it was sent */
    uint64_t records_in;         /* records read from the shard */
    uint64_t records_filtered;   /* records dropped by FilterCriteria */
    uint64_t records_out;        /* records acknowledged by successful invocations */
    uint64_t invocations;
    uint64_t function_errors;
    uint64_t throttles;          /* throttled and service-error invocations */
    uint64_t retries;            /* re-invocations after a failure or throttle (a bisect half's
                                    first invocation is not a retry) */
    uint64_t bisects;
    uint64_t records_discarded;  /* sent (or meant) to the on-failure destination */
    char last_result[64];        /* "OK", "PROBLEM: Function call failed", ... */
} esm_metrics;

/* Calls fn once per mapping (shard_id NULL: totals since the manager started) and once per
 * active shard consumer. The pointers are valid during the call only. */
typedef void (*esm_metrics_fn)(void *ctx, const char *uuid, const char *function_arn,
                               const char *shard_id, const esm_metrics *mt);
void esm_mgr_foreach_metrics(esm_mgr *m, esm_metrics_fn fn, void *ctx);

/* Tests/admin: the durable checkpoint of a shard ("" = nothing processed yet) and whether the
 * shard has been drained completely (closed and every record handled). SL_ENOTFOUND when the
 * mapping has no entry for the shard. */
int esm_mgr_checkpoint(esm_mgr *m, const char *uuid, const char *shard_id,
                       char seq[BRK_SEQ_STRLEN], bool *drained);

#endif
