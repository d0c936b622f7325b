/* engine.h — runtimes are engines behind one vtable (STYLE.md 13, after Redis functions.h):
 * the Lua engine runs sandboxed states in-process (engine_lua.c), the native engine confined
 * worker processes (engine_native.c). invoke.c never knows which one it is talking to.
 * An instance belongs to one function and one code version and is used by one thread at a
 * time. Internal to functions/. */
#ifndef FN_ENGINE_H
#define FN_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "functions/invoke.h"
#include "functions/registry.h"

/* One invocation as an engine sees it. */
typedef struct fn_invocation {
    const char *request_id;
    const uint8_t *event;
    size_t event_len;
    const char *context_json;     /* SPEC 4.4 context fields, JSON object */
    size_t context_len;
    uint64_t deadline_ns;         /* sl_mono_ns() deadline */
    int64_t deadline_ms;          /* same deadline in epoch ms (handed to the handler) */
    const fn_event_batch *batch;  /* optional: the records `event` was built from */
} fn_invocation;

/* What came back. payload/log are sl_malloc'd (fn_outcome_clear). */
typedef struct fn_outcome {
    bool function_error;          /* payload is the {errorMessage, errorType, stackTrace} doc */
    char error_type[64];
    char *payload;
    size_t len;
    char *log;                    /* the handler's log lines, formatted */
    size_t log_len;
    bool discard;                 /* the instance must not be reused */
    size_t max_memory;            /* peak bytes used by the instance in this invocation */
} fn_outcome;

void fn_outcome_clear(fn_outcome *o);
/* Fills o with a function error of the given type and message (payload = error document). */
void fn_outcome_error(fn_outcome *o, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct fn_engine {
    const char *name;                                   /* "lua5.4", "native" */
    /* Cold start: creates an instance for code; on a user-code failure returns non-zero and
     * fills init (function error document, log). */
    int (*load)(void *ectx, const fn_code *code, const fn_host *host, void **inst,
                fn_outcome *init);
    int (*invoke)(void *ectx, void *inst, const fn_invocation *inv, fn_outcome *out);
    void (*unload)(void *ectx, void *inst);
} fn_engine;

extern const fn_engine fn_engine_lua;
extern const fn_engine fn_engine_native;

/* What engines need from the runtime: the native launcher path, region and account. */
typedef struct fn_engine_ctx {
    char launcher[1024];
    char region[64];
    char account[16];
} fn_engine_ctx;

#endif
