/* iterator.c — shard-iterator tokens: base64(fields | HMAC-SHA256). Layout in iterator.h. */
#include "broker/iterator.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <time.h>

#include "broker/sl_common.h"

#define ITER_VERSION 1
#define FIXED_LEN (1 + 8 + 4 + 8 + 8 + 1)
#define MAC_LEN 32
#define RAW_MAX (FIXED_LEN + 128 + MAC_LEN)

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void mac(const uint8_t secret[BRK_ITER_SECRET_LEN], const uint8_t *p, size_t n,
                uint8_t out[MAC_LEN])
{
    unsigned int len = 0;
    uint8_t *r = HMAC(EVP_sha256(), secret, BRK_ITER_SECRET_LEN, p, n, out, &len);
    SL_ASSERT(r != NULL && len == MAC_LEN);
}

int brk_iter_encode(const uint8_t secret[BRK_ITER_SECRET_LEN], const brk_iter_pos *p,
                    char out[BRK_ITER_MAX])
{
    uint8_t raw[RAW_MAX];
    size_t nl = strlen(p->stream);
    if (nl == 0 || nl > 128) return SL_EINVAL;
    raw[0] = ITER_VERSION;
    put_le(raw + 1, (uint64_t)p->stream_created_ms, 8);
    put_le(raw + 9, p->shard, 4);
    put_le(raw + 13, p->position, 8);
    put_le(raw + 21, (uint64_t)p->issued_ms, 8);
    raw[29] = (uint8_t)nl;
    memcpy(raw + FIXED_LEN, p->stream, nl);
    mac(secret, raw, FIXED_LEN + nl, raw + FIXED_LEN + nl);
    int n = EVP_EncodeBlock((unsigned char *)out, raw, (int)(FIXED_LEN + nl + MAC_LEN));
    SL_ASSERT(n > 0 && n < BRK_ITER_MAX);
    return 0;
}

void brk_iter_format_time(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%a %b %d %H:%M:%S UTC %Y", &tm);
}

static int invalid(sl_err *err) { return sl_err_set(err, SL_EINVAL, "Invalid ShardIterator."); }

int brk_iter_decode(const uint8_t secret[BRK_ITER_SECRET_LEN], const char *token, int64_t now_ms,
                    brk_iter_pos *out, sl_err *err)
{
    uint8_t raw[RAW_MAX + 3];
    uint8_t want[MAC_LEN];
    if (!token) return invalid(err);
    size_t tl = strlen(token);
    /* Reject before decoding: wrong length, characters outside the alphabet, misplaced '='. */
    if (tl == 0 || tl % 4 != 0 || tl > 4 * ((RAW_MAX + 2) / 3)) return invalid(err);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t alpha = strspn(token, b64);
    size_t pad = tl - alpha;
    if (pad > 2 || strspn(token + alpha, "=") != pad) return invalid(err);
    int n = EVP_DecodeBlock(raw, (const unsigned char *)token, (int)tl);
    if (n < 0) return invalid(err);
    size_t rl = (size_t)n - pad;
    if (rl < FIXED_LEN + 1 + MAC_LEN || raw[0] != ITER_VERSION) return invalid(err);
    size_t nl = raw[29];
    if (nl == 0 || nl > 128 || rl != FIXED_LEN + nl + MAC_LEN) return invalid(err);
    mac(secret, raw, FIXED_LEN + nl, want);
    if (CRYPTO_memcmp(want, raw + FIXED_LEN + nl, MAC_LEN) != 0) return invalid(err);
    if (memchr(raw + FIXED_LEN, '\0', nl)) return invalid(err);

    int64_t issued = (int64_t)get_le(raw + 21, 8);
    if (now_ms - issued > BRK_ITER_TTL_MS) {
        char t1[64];
        char t2[64];
        brk_iter_format_time(issued, t1, sizeof t1);
        brk_iter_format_time(now_ms, t2, sizeof t2);
        return sl_err_set(err, SL_EEXPIRED,
                          "Iterator expired. The iterator was created at time %s while right now "
                          "it is %s which is further in the future than the tolerated delay of "
                          "%d milliseconds.", t1, t2, BRK_ITER_TTL_MS);
    }
    out->stream_created_ms = (int64_t)get_le(raw + 1, 8);
    out->shard = (uint32_t)get_le(raw + 9, 4);
    out->position = get_le(raw + 13, 8);
    out->issued_ms = issued;
    memcpy(out->stream, raw + FIXED_LEN, nl);
    out->stream[nl] = '\0';
    return 0;
}
