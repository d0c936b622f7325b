/* wire.c — encoding and decoding of the framed handler protocol (format documented in wire.h).
 * libc only and allocation-free: the same object is linked into the daemon and into static
 * handlers built against libsluice_handler.a. */
#include "functions/wire.h"

#include <string.h>

void fn_wire_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

uint32_t fn_wire_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void fn_wire_put_u64(uint8_t *p, uint64_t v)
{
    fn_wire_put_u32(p, (uint32_t)v);
    fn_wire_put_u32(p + 4, (uint32_t)(v >> 32));
}

uint64_t fn_wire_get_u64(const uint8_t *p)
{
    return (uint64_t)fn_wire_get_u32(p) | (uint64_t)fn_wire_get_u32(p + 4) << 32;
}

uint32_t fn_wire_max_payload(uint8_t type)
{
    switch (type) {
    case FN_WIRE_INVOKE: return FN_WIRE_MAX_INVOKE;
    case FN_WIRE_HOST_CALL: return FN_WIRE_MAX_HOST_CALL;
    case FN_WIRE_HOST_REPLY: return FN_WIRE_MAX_HOST_REPLY;
    case FN_WIRE_LOG: return FN_WIRE_MAX_LOG;
    case FN_WIRE_RESULT_OK: return FN_WIRE_MAX_RESULT;
    case FN_WIRE_RESULT_ERROR: return FN_WIRE_MAX_ERROR;
    default: return 0;
    }
}

void fn_wire_put_header(uint8_t hdr[FN_WIRE_HDR_SIZE], uint8_t type, uint16_t seq, uint32_t len)
{
    hdr[0] = type;
    hdr[1] = FN_WIRE_VERSION;
    hdr[2] = (uint8_t)seq;
    hdr[3] = (uint8_t)(seq >> 8);
    fn_wire_put_u32(hdr + 4, len);
}

int fn_wire_parse_header(const uint8_t hdr[FN_WIRE_HDR_SIZE], uint8_t *type, uint16_t *seq,
                         uint32_t *len)
{
    uint32_t cap = fn_wire_max_payload(hdr[0]);
    if (cap == 0 || hdr[1] != FN_WIRE_VERSION) return FN_WIRE_EBADFRAME;
    *type = hdr[0];
    *seq = (uint16_t)(hdr[2] | hdr[3] << 8);
    *len = fn_wire_get_u32(hdr + 4);
    return *len > cap ? FN_WIRE_ETOOBIG : 0;
}

/* Reads a u32-prefixed string at *off; advances *off. */
static int get_str(const uint8_t *p, size_t n, size_t *off, const char **s, size_t *len)
{
    if (n - *off < 4) return FN_WIRE_ETRUNC;
    uint32_t l = fn_wire_get_u32(p + *off);
    *off += 4;
    if (n - *off < l) return FN_WIRE_ETRUNC;
    *s = (const char *)p + *off;
    *len = l;
    *off += l;
    return 0;
}

static size_t put_str(uint8_t *p, const void *s, size_t len)
{
    fn_wire_put_u32(p, (uint32_t)len);
    if (len) memcpy(p + 4, s, len);
    return 4 + len;
}

size_t fn_wire_invoke_size(const fn_wire_invoke *iv)
{
    return 8 + 4 + 4 * 4 + iv->request_id_len + iv->function_name_len +
           iv->function_version_len + iv->invoked_arn_len + iv->event_len;
}

long fn_wire_invoke_encode(const fn_wire_invoke *iv, uint16_t seq, uint8_t *buf, size_t cap)
{
    size_t n = fn_wire_invoke_size(iv);
    if (n > FN_WIRE_MAX_INVOKE || n + FN_WIRE_HDR_SIZE > cap) return FN_WIRE_ETOOBIG;
    fn_wire_put_header(buf, FN_WIRE_INVOKE, seq, (uint32_t)n);
    uint8_t *p = buf + FN_WIRE_HDR_SIZE;
    fn_wire_put_u64(p, (uint64_t)iv->deadline_ms);
    fn_wire_put_u32(p + 8, iv->memory_mb);
    p += 12;
    p += put_str(p, iv->request_id, iv->request_id_len);
    p += put_str(p, iv->function_name, iv->function_name_len);
    p += put_str(p, iv->function_version, iv->function_version_len);
    p += put_str(p, iv->invoked_arn, iv->invoked_arn_len);
    if (iv->event_len) memcpy(p, iv->event, iv->event_len);
    return (long)(n + FN_WIRE_HDR_SIZE);
}

int fn_wire_invoke_decode(const uint8_t *p, size_t n, fn_wire_invoke *out)
{
    fn_wire_invoke iv;
    size_t off = 12;
    int rc;
    if (n < 12) return FN_WIRE_ETRUNC;
    iv.deadline_ms = (int64_t)fn_wire_get_u64(p);
    iv.memory_mb = fn_wire_get_u32(p + 8);
    if ((rc = get_str(p, n, &off, &iv.request_id, &iv.request_id_len)) != 0 ||
        (rc = get_str(p, n, &off, &iv.function_name, &iv.function_name_len)) != 0 ||
        (rc = get_str(p, n, &off, &iv.function_version, &iv.function_version_len)) != 0 ||
        (rc = get_str(p, n, &off, &iv.invoked_arn, &iv.invoked_arn_len)) != 0)
        return rc;
    iv.event = p + off;
    iv.event_len = n - off;
    *out = iv;
    return 0;
}

size_t fn_wire_pair_size(size_t first_len, size_t rest_len)
{
    return 4 + first_len + rest_len;
}

long fn_wire_pair_encode(uint8_t type, uint16_t seq, const void *first, size_t first_len,
                         const void *rest, size_t rest_len, uint8_t *buf, size_t cap)
{
    size_t n = fn_wire_pair_size(first_len, rest_len);
    if (first_len > UINT32_MAX || n > fn_wire_max_payload(type) || n + FN_WIRE_HDR_SIZE > cap)
        return FN_WIRE_ETOOBIG;
    fn_wire_put_header(buf, type, seq, (uint32_t)n);
    size_t off = FN_WIRE_HDR_SIZE + put_str(buf + FN_WIRE_HDR_SIZE, first, first_len);
    if (rest_len) memcpy(buf + off, rest, rest_len);
    return (long)(n + FN_WIRE_HDR_SIZE);
}

int fn_wire_pair_decode(const uint8_t *p, size_t n, const char **first, size_t *first_len,
                        const uint8_t **rest, size_t *rest_len)
{
    size_t off = 0;
    int rc = get_str(p, n, &off, first, first_len);
    if (rc) return rc;
    *rest = p + off;
    *rest_len = n - off;
    return 0;
}

size_t fn_wire_reply_size(int status, size_t a_len, size_t b_len)
{
    return status == 0 ? 1 + a_len : 1 + fn_wire_pair_size(a_len, b_len);
}

long fn_wire_reply_encode(uint16_t seq, int status, const void *a, size_t a_len, const void *b,
                          size_t b_len, uint8_t *buf, size_t cap)
{
    size_t n = fn_wire_reply_size(status, a_len, b_len);
    if (n > FN_WIRE_MAX_HOST_REPLY || n + FN_WIRE_HDR_SIZE > cap) return FN_WIRE_ETOOBIG;
    fn_wire_put_header(buf, FN_WIRE_HOST_REPLY, seq, (uint32_t)n);
    uint8_t *p = buf + FN_WIRE_HDR_SIZE;
    *p++ = status == 0 ? 0 : 1;
    if (status == 0) {
        if (a_len) memcpy(p, a, a_len);
    } else {
        p += put_str(p, a, a_len);
        if (b_len) memcpy(p, b, b_len);
    }
    return (long)(n + FN_WIRE_HDR_SIZE);
}
