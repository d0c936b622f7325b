/* sl_common.h — status codes, error detail, asserts and the allocator hook shared by every module.
 *
 * This is the bottom of the dependency graph (DESIGN.md): broker/, sandbox/, functions/ and
 * runtime/ all include it; it includes nothing of ours.
 *
 * Conventions (STYLE.md 3): a status is an int, 0 ok, negative error. System failures are
 * -errno; project failures are the SL_E* constants below. Where a caller needs the exact text
 * an AWS client should see, the callee also fills an sl_err (code + message); the mapping from
 * SL_E* to the AWS error type and HTTP status lives only in runtime/api_errors.c.
 */
#ifndef SL_COMMON_H
#define SL_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum {
    SL_OK = 0,
    SL_EBASE = -10000,
    SL_EINVAL = -10001,      /* semantic argument error        -> InvalidArgumentException */
    SL_EVALIDATION = -10002, /* schema constraint violation    -> ValidationException */
    SL_ENOTFOUND = -10003,   /* stream / shard / object absent -> ResourceNotFoundException */
    SL_EEXISTS = -10004,     /* already exists                 -> ResourceInUseException (Kinesis) */
    SL_EINUSE = -10005,      /* wrong state for the operation  -> ResourceInUseException */
    SL_ELIMIT = -10006,      /* quota exceeded                 -> LimitExceededException */
    SL_ETHROTTLED = -10007,  /* throughput emulation           -> ProvisionedThroughputExceeded */
    SL_EEXPIRED = -10008,    /* shard iterator too old         -> ExpiredIteratorException */
    SL_ETOKEN_EXPIRED = -10009, /* NextToken too old           -> ExpiredNextTokenException */
    SL_ECORRUPT = -10010,    /* on-disk data failed a check    -> InternalFailure */
    SL_ENOMEM = -10011,      /* allocation failed              -> InternalFailure */
    SL_EIO = -10012,         /* I/O failure (see errno text)   -> InternalFailure */
    SL_ETOOBIG = -10013,     /* payload over a size limit      -> per caller */
    SL_ESERIAL = -10014,     /* undecodable input              -> SerializationException */
    SL_ECONFLICT = -10015,   /* conflicting concurrent change  -> ResourceConflictException */
    SL_ETIMEOUT = -10016,    /* deadline passed */
    SL_EINTERNAL = -10017,   /* invariant broken / unexpected  -> InternalFailure */
    SL_EPRECONDITION = -10018, /* stale revision / precondition -> PreconditionFailedException */
};

/* Error detail: a status code plus the message text an API client should see.
 * Callers provide storage; callees fill it only when they return an error. */
#define SL_ERR_MSG_MAX 1024
typedef struct sl_err {
    int code;
    char msg[SL_ERR_MSG_MAX];
} sl_err;

/* Fills err (if non-NULL) with code and a printf-style message; returns code, so callers can
 * write `return sl_err_set(err, SL_EINVAL, "Invalid ShardIterator.");`. */
int sl_err_set(sl_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int sl_err_vset(sl_err *err, int code, const char *fmt, va_list ap);

/* Short English name of a status code ("not found", "No such file or directory"). */
const char *sl_strerror(int code);

/* Invariant checks: abort with file/line. Never for input validation (STYLE.md 12). */
#define SL_ASSERT(cond)                                                                       \
    do {                                                                                      \
        if (!(cond)) sl_assert_fail(#cond, __FILE__, __LINE__);                               \
    } while (0)
void sl_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* Allocator hook used by every module (tests inject failures through it, STYLE.md 16).
 * sl_malloc/sl_calloc/sl_realloc return NULL on failure like their libc twins. */
void *sl_malloc(size_t n);
void *sl_calloc(size_t n, size_t size);
void *sl_realloc(void *p, size_t n);
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);
void sl_free(void *p);
/* Test hook: make the Nth allocation from now on fail (0 disables). Not thread-safe. */
void sl_alloc_fail_after(long n);

/* A random (version 4) UUID, lower-case text, from the OpenSSL CSPRNG (thread-safe). */
void sl_uuid4(char out[37]);

/* Wall clock in epoch milliseconds and a monotonic clock in nanoseconds. */
int64_t sl_now_ms(void);
uint64_t sl_mono_ns(void);

#endif
