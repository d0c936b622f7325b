/* lua_state.h — sandboxed Lua 5.4 instances for one function each (SANDBOX.md, STYLE.md 14).
 *
 * An instance (sbx_lua) is one lua_State that belongs to exactly ONE function and is never
 * shared. sbx_lua_new() compiles the function's code (text only, never bytecode) and runs the
 * chunk's top level once (Lambda's init phase); globals then persist across invocations of the
 * same instance, like a warm Lambda execution environment, and are never visible to another
 * instance. The caller must destroy (sbx_lua_free) an instance whose invoke result says
 * `discard` (timeout, memory-limit hit or a sandbox-layer error).
 *
 * Threads: an instance is used by one thread at a time (not thread-safe); different instances
 * may run concurrently on different threads. Lua must run on a thread with at least
 * SBX_LUA_MIN_STACK bytes of stack (the system Lua 5.4.4 limits C recursion only by
 * LUAI_MAXCCALLS = 200 levels, which needs a normal-sized stack). sbx_lua_new/sbx_lua_invoke
 * check the calling thread's stack size (pthread_getattr_np, cached per thread) and refuse with
 * SL_EINVAL below that. The main thread and glibc's default pthreads have 8 MiB
 * (RLIMIT_STACK). libuv's threadpool: libuv >= 1.45 gives its threads an 8 MiB stack; Debian
 * 12's libuv 1.44.2 uses RLIMIT_STACK rounded to pages (measured here: 8192 KiB by default,
 * 2048 KiB with `ulimit -s unlimited`, 512 KiB with `ulimit -s 512`), so a daemon started under
 * a small `ulimit -s` gets small pool threads — the check above turns that into a clear error
 * instead of a crash. tests/unit/test_sandbox_lua.c runs an invocation on a libuv pool thread
 * and verifies the refusal on a 256 KiB thread.
 *
 * Environment of the handler (built in C from the real library tables, SANDBOX.md 1.2):
 *   base: assert error ipairs next pairs select tonumber type rawequal rawlen rawget rawset
 *         getmetatable _VERSION, setmetatable (refuses metatables with __gc), pcall/xpcall
 *         (re-raise the timeout so it cannot be swallowed), tostring (no heap addresses),
 *         print (writes to the function log like log.info), _G (= the sandbox environment)
 *   string (all but dump; find/match/gmatch/gsub are sluice's own interruptible matcher,
 *          format refuses %p), table, math (no randomseed; reseeded by the host before each
 *          invocation), utf8, coroutine (no close: it crashes 5.4.4, SANDBOX.md E1),
 *          os (time, difftime, clock, date, and getenv reading only the function's own
 *          environment given in sbx_lua_limits.env), json, base64, log, kinesis.
 *   Absent: load loadstring dofile loadfile require package module collectgarbage debug io warn,
 *   string.dump (also removed from the real table, method calls cannot reach it), os.exit etc.
 *   `require` of other files of the function's code is not provided: a function is one chunk
 *   (the file of its handler, e.g. main.lua for handler "main.handler").
 *   The string metatable is locked (getmetatable("") == false). The global table is a proxy:
 *   assigning json, base64, log or kinesis raises "cannot assign to protected global 'json'";
 *   other globals (including shadowing a standard name) work and persist in the instance.
 *   (rawset(_G, "json", x) bypasses the proxy on purpose; like any change a script makes to its
 *   library tables it only affects its own instance, never the sandbox's C side or others.)
 *
 * JSON <-> Lua mapping (events, context, results, json.encode/json.decode):
 *   object        -> table with the "object" marker metatable (also for {}), string keys
 *   array         -> table with the "array" marker metatable (so [] round-trips), 1..n
 *   string        -> string (\uXXXX escapes become UTF-8; lone surrogates become U+FFFD)
 *   number        -> integer when integral and |v| <= 2^53, else float
 *   true/false    -> boolean;   null -> json.null (a sentinel userdata)
 *   Encoding: nil and json.null -> null; booleans; integers as integers; finite floats in the
 *   shortest form that reads back exactly (NaN and +-inf are errors); strings escaped, invalid
 *   UTF-8 bytes written as \u00XX; a marked table follows its marker (array: elements 1..#t,
 *   raw; object: keys must be strings); a plain table is an array when its keys are exactly
 *   1..n, an object when all keys are strings, "{}" when empty, and an error when keys are mixed
 *   or sparse or of another type. json.array(t) / json.object(t) set the markers. Nesting deeper
 *   than 128 (and therefore any cycle) is an error. Functions, threads and userdata other than
 *   json.null cannot be encoded.
 *
 * Results and errors: the handler is called as handler(event, context). Its first return value
 * is encoded as the result JSON (nil -> "null"). Failures produce the Lambda error document
 * {"errorType":..., "errorMessage":..., "stackTrace":[...]} with errorType:
 *   "Error"                       error("text") or any non-table error value
 *   <errorType of the table>      error({errorType = "X", errorMessage = "..."})
 *   "Sandbox.Timedout"            deadline/instruction budget exceeded; message
 *                                 "Task timed out after N.NN seconds" (N = timeout_ms)
 *   "Runtime.OutOfMemory"         the memory cap was hit and the invocation failed
 *   "Runtime.InvalidReturnValue"  the return value cannot be encoded (function, userdata,
 *                                 cycle, NaN, mixed/sparse table, ...)
 *   "Function.ResponseSizeTooLarge" result JSON larger than SBX_LUA_MAX_RESULT
 *   "Runtime.HandlerNotFound"     (init) the handler global is not a function
 *   "Runtime.UserCodeSyntaxError" (init) the code does not compile (or is a binary chunk)
 *   "Runtime.InvalidEvent"        the event/context JSON given by the caller is malformed
 *   "Runtime.SandboxError"        internal: the error handler itself failed
 *
 * Context given to the handler (SPEC 4.4): a table with awsRequestId, functionName,
 * functionVersion, invokedFunctionArn, memoryLimitInMB, logGroupName, logStreamName, deadlineMs
 * (whatever the caller's context JSON holds) plus getRemainingTimeInMillis() (milliseconds until
 * the invocation deadline, >= 0; callable as a function or a method).
 */
#ifndef SBX_LUA_STATE_H
#define SBX_LUA_STATE_H

#include <stddef.h>
#include <stdint.h>

#define SBX_LUA_MIN_STACK (1024u * 1024u)           /* required thread stack */
#define SBX_LUA_DEFAULT_MEMORY (64u * 1024u * 1024u)
#define SBX_LUA_DEFAULT_TIMEOUT_MS 3000u
#define SBX_LUA_DEFAULT_INIT_TIMEOUT_MS 10000u       /* Lambda's init phase limit */
#define SBX_LUA_DEFAULT_LOG_BYTES (64u * 1024u)
#define SBX_LUA_MAX_SOURCE (4u * 1024u * 1024u)
#define SBX_LUA_MAX_RESULT 6291556u                  /* Lambda's synchronous payload limit */

typedef struct sbx_lua sbx_lua;

/* What a handler may ask of the host (the runtime implements it). op is "put_record" or
 * "put_records"; req/resp are JSON text in the Kinesis API shapes (Data base64 in req). Return 0
 * and *resp (sl_malloc'd JSON, freed by the sandbox with sl_free), or non-zero and fill err_type
 * (e.g. "ResourceNotFoundException") and err_msg (NUL-terminated, truncated to the sizes given).
 * Called on the invoking thread while the Lua state is suspended inside the call; the deadline
 * is not enforced during the call (it is checked again as soon as it returns), so the host must
 * bound its own work. Lua side: kinesis.put_record{StreamName=, StreamARN=, PartitionKey=, Data=,
 * ExplicitHashKey=, SequenceNumberForOrdering=} -> {ShardId=, SequenceNumber=} and
 * kinesis.put_records{StreamName=, StreamARN=, Records={{Data=, PartitionKey=,
 * ExplicitHashKey=}, ...}} -> {FailedRecordCount=, Records={...}} (the response JSON decoded);
 * a host failure raises {errorType = err_type, errorMessage = err_msg}; with no host,
 * {errorType = "ServiceUnavailable"}. Data is raw bytes in Lua and base64 in req. */
typedef struct sbx_lua_host {
    void *ctx;
    int (*call)(void *ctx, const char *op, const char *req, size_t req_len, char **resp,
                size_t *resp_len, char *err_type, size_t type_len, char *err_msg,
                size_t msg_len);
} sbx_lua_host;

typedef struct sbx_lua_limits {
    size_t memory_bytes;       /* cap of the state's heap; 0 -> SBX_LUA_DEFAULT_MEMORY */
    uint32_t timeout_ms;       /* function timeout, used in the timeout message; 0 -> 3000 */
    size_t log_bytes;          /* log text kept per invocation; 0 -> SBX_LUA_DEFAULT_LOG_BYTES */
    uint32_t init_timeout_ms;  /* budget of the chunk's top level; 0 -> 10000 */
    uint64_t max_instructions; /* per invocation, ~1000-instruction granularity; 0 = no limit */
    const char *const *env;    /* the function's environment, NULL-terminated "K=V" list read
                                  by os.getenv (copied at creation; the host's own environment
                                  is never visible); NULL = empty */
} sbx_lua_limits;

/* Init failure detail (sbx_lua_new). Strings are NUL-terminated, possibly truncated. */
typedef struct sbx_lua_error {
    int code;                /* the SL_E* that sbx_lua_new returned */
    char error_type[64];     /* errorType as in the list above */
    char error_message[1024];
    char stack_trace[2048];  /* traceback lines separated by '\n' (may be empty) */
} sbx_lua_error;

enum { SBX_LUA_OK = 0, SBX_LUA_FUNCTION_ERROR = 1 };

/* Invocation result. payload and log are sl_malloc'd and owned by the result:
 * release with sbx_lua_result_clear(). */
typedef struct sbx_lua_result {
    int status;              /* SBX_LUA_OK or SBX_LUA_FUNCTION_ERROR */
    char *payload;           /* result JSON, or the error document on function error */
    size_t payload_len;
    char error_type[64];     /* errorType when status is SBX_LUA_FUNCTION_ERROR, else "" */
    char *log;               /* function log text (may be NULL when empty); NUL-terminated */
    size_t log_len;
    int log_truncated;       /* output was dropped (a marker line ends the log) */
    int discard;             /* the caller must sbx_lua_free() this instance */
    int timed_out;
    int out_of_memory;
    size_t peak_memory;      /* highest heap use of the state during the invocation */
    size_t memory;           /* sbx_lua_memory() after the invocation */
} sbx_lua_result;

/* Creates an instance: new state with the capped allocator and the budget hook, the sandbox
 * environment above, compiles code (text mode; chunkname is shown in messages, "@" is added
 * unless it starts with '@' or '='), runs its top level under init_timeout_ms and checks that
 * the global `handler` is a function. lim and host may be NULL (defaults; no kinesis host);
 * host->ctx must outlive the instance. The top level's log output is kept and returned with the
 * first invocation's log. Returns 0 and *out, or SL_EINVAL (user code failed: err filled),
 * SL_ETOOBIG (code over SBX_LUA_MAX_SOURCE), SL_ENOMEM, SL_EINVAL (thread stack too small). */
int sbx_lua_new(sbx_lua **out, const char *code, size_t len, const char *chunkname,
                const char *handler, const sbx_lua_limits *lim, const sbx_lua_host *host,
                sbx_lua_error *err);

/* Runs one invocation: decodes event_json (and context_json, an object; may be NULL) into Lua
 * values, calls handler(event, context) under the budget (deadline_mono_ns is an sl_mono_ns()
 * deadline; 0 -> now + timeout_ms) and fills res. Returns 0 when res is filled (the function
 * may still have failed: res->status), or SL_ENOMEM / SL_EINVAL (host-side failure or thread
 * stack too small; res then only says discard when the instance is unusable). */
int sbx_lua_invoke(sbx_lua *l, const char *event_json, size_t event_len,
                   const char *context_json, size_t context_len, uint64_t deadline_mono_ns,
                   sbx_lua_result *res);

/* A Kinesis event given as records rather than JSON (the hot path of event-source mappings). */
typedef struct sbx_kinesis_record {
    const char *shard_id;
    const char *seq;
    const char *pk;
    size_t pk_len;
    const uint8_t *data;
    size_t data_len;
    int64_t arrival_ms;
} sbx_kinesis_record;

typedef struct sbx_kinesis_event {
    const char *stream_arn;
    const char *region;
    const char *role_arn;
    const sbx_kinesis_record *recs;
    size_t n;
} sbx_kinesis_event;

/* Like sbx_lua_invoke for the AWS Lambda Kinesis event of `ev` (SPEC 4.1): the handler receives
 * exactly the Lua value that decoding that event's JSON (functions/event.c) would give — same
 * tables, markers, strings and numbers — built directly, without writing and parsing the JSON
 * (which is most of an invocation's cost). Returns SL_ESERIAL, running nothing, when a string is
 * not valid UTF-8 (the JSON encoder replaces such bytes, so the caller must use the JSON path). */
int sbx_lua_invoke_kinesis(sbx_lua *l, const sbx_kinesis_event *ev, const char *context_json,
                           size_t context_len, uint64_t deadline_mono_ns, sbx_lua_result *res);

/* Releases payload and log of res and zeroes it. NULL is fine. */
void sbx_lua_result_clear(sbx_lua_result *res);

/* Host memory held by the instance's Lua heap: live and not yet collected objects plus the
 * allocator's recycled small blocks (at most SBX_ALLOC_POOL_BYTES, sandbox/lua_alloc.h). */
size_t sbx_lua_memory(const sbx_lua *l);

/* For an instance that goes idle: runs a full garbage collection (no user code can run: __gc
 * is refused) and returns the allocator's recycled blocks to the system. The instance stays
 * usable. Same threading rule as sbx_lua_invoke. */
void sbx_lua_trim(sbx_lua *l);

/* Number of invocations run on this instance. */
uint64_t sbx_lua_invocations(const sbx_lua *l);

/* Closes the state and frees the instance. NULL is fine. */
void sbx_lua_free(sbx_lua *l);

#endif
