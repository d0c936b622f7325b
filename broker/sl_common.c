/* sl_common.c — error strings, error detail, allocator hook, clocks. */
#include "broker/sl_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

int sl_err_vset(sl_err *err, int code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

int sl_err_set(sl_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_err_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

const char *sl_strerror(int code)
{
    switch (code) {
    case SL_OK: return "ok";
    case SL_EINVAL: return "invalid argument";
    case SL_EVALIDATION: return "validation error";
    case SL_ENOTFOUND: return "not found";
    case SL_EEXISTS: return "already exists";
    case SL_EINUSE: return "resource in use";
    case SL_ELIMIT: return "limit exceeded";
    case SL_ETHROTTLED: return "throughput exceeded";
    case SL_EEXPIRED: return "iterator expired";
    case SL_ETOKEN_EXPIRED: return "next token expired";
    case SL_ECORRUPT: return "corrupt data";
    case SL_ENOMEM: return "out of memory";
    case SL_EIO: return "i/o error";
    case SL_ETOOBIG: return "too large";
    case SL_ESERIAL: return "undecodable input";
    case SL_ECONFLICT: return "conflict";
    case SL_ETIMEOUT: return "timed out";
    case SL_EINTERNAL: return "internal error";
    case SL_EPRECONDITION: return "precondition failed";
    default:
        if (code < 0 && code > SL_EBASE) return strerror(-code);
        return "unknown error";
    }
}

void sl_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "sluice: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

static long fail_after; /* 0: never fail */

void sl_alloc_fail_after(long n) { fail_after = n; }

static int should_fail(void)
{
    if (fail_after <= 0) return 0;
    return --fail_after == 0;
}

void *sl_malloc(size_t n) { return should_fail() ? NULL : malloc(n ? n : 1); }
void *sl_calloc(size_t n, size_t size) { return should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1); }
void *sl_realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n ? n : 1); }
void sl_free(void *p) { free(p); }

char *sl_strdup(const char *s)
{
    return s ? sl_strndup(s, strlen(s)) : NULL;
}

char *sl_strndup(const char *s, size_t n)
{
    char *d = sl_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

int64_t sl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t sl_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sl_uuid4(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    if (RAND_bytes(b, sizeof b) != 1) {
        /* the CSPRNG failing is not expected; uniqueness still holds with clock bits */
        uint64_t x = sl_mono_ns() ^ ((uint64_t)sl_now_ms() << 20), y = (uint64_t)(uintptr_t)out;
        memcpy(b, &x, 8);
        memcpy(b + 8, &y, 8);
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}
