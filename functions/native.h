/* native.h — daemon side of native handlers: spawn confined warm workers through the trusted
 * launcher and invoke them over the framed protocol (functions/wire.h; SANDBOX.md decision 3,
 * 2.6).
 *
 * A worker object is one concurrency slot of one function. It owns at most one handler process;
 * when the process dies (crash, timeout, seccomp kill, protocol violation, retirement) the next
 * invocation starts a new one (a cold start). The daemon never forks itself: the process is the
 * launcher (`<launcher> __launch ...`, started with posix_spawn) which confines itself and
 * execve()s the static handler.
 *
 * Threads: fn_native_invoke blocks for the whole invocation; call it from a worker thread, one
 * invocation at a time per worker. Different workers may be used from different threads at once.
 * The thread that spawned a worker's process should be long-lived: PR_SET_PDEATHSIG fires when
 * the spawning thread exits (SANDBOX.md 2.2 step 4). The calling thread's SIGPIPE is blocked for
 * the duration of each call, so the process-wide disposition does not matter.
 */
#ifndef FN_NATIVE_H
#define FN_NATIVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker/sl_common.h"

#define FN_NATIVE_DEFAULT_MEMORY_MB 128u
#define FN_NATIVE_DEFAULT_TIMEOUT_MS 3000u
#define FN_NATIVE_DEFAULT_MAX_INVOCATIONS 10000u
#define FN_NATIVE_LOG_CAP (64u * 1024) /* per invocation; the rest is dropped with a marker */

typedef struct fn_native_worker fn_native_worker;

typedef struct fn_native_spec {
    const char *launcher;         /* path of the sluice binary (or a test launcher); required */
    const char *executable;       /* static handler; absolute, or relative to code_dir */
    const char *code_dir;         /* the handler's working directory; required */
    const char *function_name;    /* required */
    const char *function_version; /* NULL: "$LATEST" */
    const char *region;           /* NULL: "us-east-1" (AWS_REGION) */
    uint32_t memory_mb;           /* 0: 128 */
    uint32_t timeout_ms;          /* 0: 3000 */
    const char *const *env;       /* the function's own variables, NULL-terminated "K=V" list;
                                     reserved Lambda names (SPEC 4.4) are set by sluice and win */
    const char *profile;          /* NULL/"stdio", "threads", "network-out" */
    int cold;                     /* 1: one process per invocation (--cold) */
    uint32_t max_invocations;     /* warm process retired after this many; 0: 10000 */
    uid_t uid;                    /* used when the daemon runs as root; 0: 65534 (nobody) */
    gid_t gid;                    /* 0: 65534 (nogroup) */
} fn_native_spec;

/* Host callback, same shape as the Lua sandbox's: op is "put_record" or "put_records", req and
 * *resp are JSON in the Kinesis API shapes. Return 0 and *resp (sl_malloc'd; freed here with
 * sl_free), or non-zero with err_type/err_msg filled (NUL-terminated, truncated to the sizes). */
typedef int (*fn_native_host_fn)(void *ctx, const char *op, const char *req, size_t req_len,
                                 char **resp, size_t *resp_len, char *err_type, size_t type_len,
                                 char *err_msg, size_t msg_len);

typedef struct fn_native_invocation {
    const char *request_id;       /* required */
    const char *invoked_arn;      /* NULL: "" */
    int64_t deadline_ms;          /* epoch ms; 0: now + timeout. The earlier of the two wins */
    fn_native_host_fn host_call;  /* NULL: host calls fail with Sluice.HostUnavailable */
    void *host_ctx;
} fn_native_invocation;

typedef struct fn_native_result {
    int function_error;           /* 0: payload is the result JSON; 1: the error document */
    char error_type[64];          /* when function_error */
    char error_message[1024];     /* when function_error */
    char *payload;                /* sl_malloc'd, NUL-terminated JSON */
    size_t payload_len;
    char *log;                    /* sl_malloc'd handler log (log lines + stderr), may be NULL */
    size_t log_len;
    int log_truncated;
    int cold_start;               /* this invocation ran in a freshly started process */
    int worker_dead;              /* the process is gone; the next invocation starts another */
    uint64_t init_us;             /* cold start: spawn until the handler was exec'd */
    uint64_t duration_us;         /* this invocation, excluding init */
    uint32_t max_memory_mb;       /* peak RSS of the process (Max Memory Used) */
    int exit_status;              /* when the process ended during the call: exit code, else -1 */
    int term_signal;              /* when it was killed by a signal: the signal, else -1 */
} fn_native_result;

/* Creates a worker for spec (copied) and, unless spec->cold, starts its process at once so the
 * first invocation finds it warm-up done (still counted as that invocation's cold start).
 * Errors: SL_EINVAL (bad spec, or the launcher refused the handler: message says why, e.g. not
 * static / not executable), -errno (the launcher could not be started), SL_ENOMEM. */
int fn_native_spawn(fn_native_worker **out, const fn_native_spec *spec, sl_err *err);

/* Runs one invocation (blocking). Returns 0 when the function ran, whatever its outcome (see res:
 * a crash, timeout, seccomp kill, oversize or garbage output is a function error with
 * errorType per SANDBOX.md 2.6). Returns SL_ETOOBIG for an event over 6 MiB, SL_EINVAL for a
 * missing request id, -errno / SL_ENOMEM when the launcher cannot be started at all (not a
 * function error); res is then cleared. res must be released with fn_native_result_clear. */
int fn_native_invoke(fn_native_worker *w, const uint8_t *event, size_t len,
                     const fn_native_invocation *inv, fn_native_result *res);

/* Releases what a result holds (payload, log) and zeroes it. */
void fn_native_result_clear(fn_native_result *res);

typedef struct fn_native_stats {
    uint64_t spawns;              /* processes started (cold starts) */
    uint64_t invocations;         /* invocations run on this worker */
    pid_t pid;                    /* current process, 0 if none */
} fn_native_stats;

void fn_native_get_stats(const fn_native_worker *w, fn_native_stats *out);

/* Kills the process (if any), reaps it and frees the worker. NULL is fine. */
void fn_native_free(fn_native_worker *w);

#endif
