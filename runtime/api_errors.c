/* api_errors.c — SL_E* -> AWS error table and the response helpers (request-id headers). */
#include "runtime/api_errors.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "runtime/log.h"

static const struct {
    int code;
    const char *type;
} code_table[] = {
    {SL_EINVAL, "InvalidArgumentException"},
    {SL_EVALIDATION, "ValidationException"},
    {SL_ENOTFOUND, "ResourceNotFoundException"},
    {SL_EEXISTS, "ResourceInUseException"},
    {SL_EINUSE, "ResourceInUseException"},
    {SL_ELIMIT, "LimitExceededException"},
    {SL_ETHROTTLED, "ProvisionedThroughputExceededException"},
    {SL_EEXPIRED, "ExpiredIteratorException"},
    {SL_ETOKEN_EXPIRED, "ExpiredNextTokenException"},
    {SL_ESERIAL, "SerializationException"},
    {SL_ETOOBIG, "ValidationException"},
    {SL_ECONFLICT, "ResourceConflictException"},
};

static const struct {
    const char *type;
    int status;
} status_table[] = {
    {"InternalFailureException", 500},
    {"InternalFailure", 500},
    {"ServiceUnavailableException", 503},
    {"AccessDeniedException", 403},
    {"InvalidSignatureException", 403},
    {"SignatureDoesNotMatchException", 403},
    {"ResourceConflictException", 409},
    {"RequestEntityTooLargeException", 413},
};

const char *api_error_type(int code)
{
    for (size_t i = 0; i < sizeof code_table / sizeof code_table[0]; i++)
        if (code_table[i].code == code) return code_table[i].type;
    return "InternalFailureException";
}

int api_error_status(const char *type)
{
    for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
        if (!strcmp(status_table[i].type, type)) return status_table[i].status;
    return 400;
}

/* Request ids need uniqueness, not secrecy: a per-thread xorshift128+ seeded from the OS. */
static _Thread_local uint64_t rng[2];
static _Thread_local bool rng_seeded;

static uint64_t rng_next(void)
{
    if (!rng_seeded) {
        if (RAND_bytes((unsigned char *)rng, sizeof rng) != 1 || (rng[0] | rng[1]) == 0) {
            rng[0] = (uint64_t)sl_now_ms() ^ 0x9e3779b97f4a7c15ull;
            rng[1] = sl_mono_ns() | 1;
        }
        rng_seeded = true;
    }
    uint64_t s1 = rng[0];
    const uint64_t s0 = rng[1];
    rng[0] = s0;
    s1 ^= s1 << 23;
    rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return rng[1] + s0;
}

void api_request_id(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    uint64_t a = rng_next(), c = rng_next();
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
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

#define MAX_EXTRA 8

void api_send(http_exchange *x, int status, const char *content_type, const uint8_t *body,
              size_t len, const http_header *extra, size_t nextra)
{
    http_header h[3 + MAX_EXTRA];
    size_t n = 0;
    char rid[37];
    char id2[65];
    uint8_t rnd[48];

    api_request_id(rid);
    for (size_t i = 0; i < sizeof rnd; i += 8) {
        uint64_t v = rng_next();
        memcpy(rnd + i, &v, 8);
    }
    id2[wire_b64_encode(rnd, sizeof rnd, id2)] = '\0';
    h[n++] = (http_header){"x-amzn-RequestId", rid};
    h[n++] = (http_header){"x-amz-id-2", id2};
    if (content_type && len) h[n++] = (http_header){"Content-Type", content_type};
    for (size_t i = 0; i < nextra && i < MAX_EXTRA; i++) h[n++] = extra[i];
    http_respond(x, status, h, n, body, len);
}

void api_send_error(http_exchange *x, enum wire_fmt fmt, const char *type, const char *msg)
{
    api_send_error_status(x, fmt, api_error_status(type), type, msg);
}

void api_send_error_status(http_exchange *x, enum wire_fmt fmt, int status, const char *type,
                           const char *msg)
{
    uint8_t *body = NULL;
    size_t len = 0;

    if (wire_error_body(fmt, type, msg, &body, &len) != 0) {
        /* Out of memory: a bodiless 500 still tells the client to retry. */
        api_send(x, 500, NULL, NULL, 0, NULL, 0);
        return;
    }
    if (status >= 500) rt_log(RT_WARN, "api", "%s: %s", type, msg ? msg : "");
    api_send(x, status, wire_content_type(fmt), body, len, NULL, 0);
    sl_free(body);
}

void api_send_sl_error(http_exchange *x, enum wire_fmt fmt, const sl_err *err)
{
    const char *type = api_error_type(err->code);
    const char *msg = err->msg;
    /* Internal failures keep their detail in the log, not in front of the client. */
    if (!strcmp(type, "InternalFailureException")) {
        rt_log(RT_ERR, "api", "internal failure (%s): %s", sl_strerror(err->code), err->msg);
        msg = "Internal Service Failure";
    }
    api_send_error(x, fmt, type, msg);
}
