/* api_errors.c — SL_E* -> AWS error table and the response helpers (request-id headers). */
#include "runtime/api_errors.h"

#include <cJSON.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
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

/* ---- the Lambda REST flavour ---------------------------------------------------------------- */

void api_lambda_json(http_exchange *x, int status, const char *json, size_t len)
{
    api_send(x, status, "application/json", (const uint8_t *)json, len, NULL, 0);
}

void api_lambda_error(http_exchange *x, int status, const char *type, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "Type", "User");
    cJSON_AddStringToObject(o, "message", msg);
    cJSON_AddStringToObject(o, "Message", msg);
    char *body = cJSON_PrintUnformatted(o);
    http_header h[] = {{"x-amzn-ErrorType", type}};
    api_send(x, status, "application/json", (const uint8_t *)body, body ? strlen(body) : 0, h, 1);
    cJSON_free(body);
    cJSON_Delete(o);
}

void api_lambda_sl_error(http_exchange *x, const sl_err *err)
{
    int status = 500;
    const char *type = "ServiceException";
    switch (err->code) {
    case SL_EVALIDATION: status = 400; type = "ValidationException"; break;
    case SL_EINVAL: status = 400; type = "InvalidParameterValueException"; break;
    case SL_ENOTFOUND: status = 404; type = "ResourceNotFoundException"; break;
    case SL_EEXISTS: status = 409; type = "ResourceConflictException"; break;
    case SL_ECONFLICT: status = 409; type = "ResourceConflictException"; break;
    case SL_EPRECONDITION: status = 412; type = "PreconditionFailedException"; break;
    case SL_EINUSE: status = 400; type = "ResourceInUseException"; break;
    case SL_ETOOBIG: status = 413; type = "RequestTooLargeException"; break;
    case SL_ESERIAL: status = 400; type = "InvalidRequestContentException"; break;
    default: break;
    }
    api_lambda_error(x, status, type, err->msg);
}

bool api_pct_decode(const char *seg, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = seg[i];
        if (c == '%') {
            if (i + 2 >= len || !isxdigit((unsigned char)seg[i + 1]) ||
                !isxdigit((unsigned char)seg[i + 2]))
                return false;
            char hex[3] = {seg[i + 1], seg[i + 2], 0};
            c = (char)strtol(hex, NULL, 16);
            i += 2;
        }
        if (c == '\0' || o + 1 >= outlen) return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}
