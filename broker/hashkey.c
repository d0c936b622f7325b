/* hashkey.c — 128-bit hash-key arithmetic and MD5 routing (SPEC 2.1, 2.2).
 *
 * Decimal conversion of 128-bit integers is written by hand: neither libc nor libcrypto prints or
 * parses unsigned __int128 (BIGNUM could, but would allocate on every put). MD5 itself comes from
 * libcrypto's EVP interface.
 */
#include "broker/hashkey.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

#include "broker/sl_common.h"

int brk_hashkey_parse_n(const char *s, size_t n, brk_u128 *out)
{
    if (!s || n == 0 || n > 39) return SL_EVALIDATION;
    if (s[0] == '0' && n > 1) return SL_EVALIDATION;
    brk_u128 v = 0;
    bool over = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return SL_EVALIDATION;
        unsigned d = (unsigned)(s[i] - '0');
        /* v*10 + d > MAX  <=>  v > (MAX - d) / 10 */
        if (v > (BRK_U128_MAX - d) / 10) over = true;
        v = v * 10 + d;
    }
    if (over) return SL_ETOOBIG;
    *out = v;
    return 0;
}

int brk_hashkey_parse(const char *s, brk_u128 *out)
{
    if (!s) return SL_EVALIDATION;
    return brk_hashkey_parse_n(s, strlen(s), out);
}

size_t brk_hashkey_format(brk_u128 v, char *buf)
{
    char tmp[40];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + (unsigned)(v % 10));
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

/* One digest context per thread: EVP_MD_CTX_new + fetch per record would dominate the put path. */
static pthread_key_t md5_key;
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;
static EVP_MD *md5_md;

static void md5_ctx_free(void *p) { EVP_MD_CTX_free(p); }

static void md5_init_once(void)
{
    pthread_key_create(&md5_key, md5_ctx_free);
    md5_md = EVP_MD_fetch(NULL, "MD5", NULL);
}

brk_u128 brk_hashkey_md5(const void *p, size_t n)
{
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    pthread_once(&md5_once, md5_init_once);
    EVP_MD_CTX *ctx = pthread_getspecific(md5_key);
    if (!ctx) {
        ctx = EVP_MD_CTX_new();
        SL_ASSERT(ctx != NULL);
        pthread_setspecific(md5_key, ctx);
    }
    SL_ASSERT(md5_md != NULL);
    int ok = EVP_DigestInit_ex(ctx, md5_md, NULL) && EVP_DigestUpdate(ctx, p, n) &&
             EVP_DigestFinal_ex(ctx, dig, &dlen);
    SL_ASSERT(ok && dlen == 16);
    brk_u128 v = 0;
    for (int i = 0; i < 16; i++) v = (v << 8) | dig[i];
    return v;
}

void brk_hashkey_range(uint32_t n, uint32_t i, brk_u128 *start, brk_u128 *end)
{
    SL_ASSERT(n >= 1 && i < n);
    /* floor(2^128 / n) without 2^128: (2^128-1)/n, plus one when n divides 2^128 exactly
     * (then (2^128-1) % n == n-1). n == 1 is only the single full-range shard. */
    brk_u128 h;
    if (n == 1) {
        *start = 0;
        *end = BRK_U128_MAX;
        return;
    }
    h = BRK_U128_MAX / n;
    if (BRK_U128_MAX % n == (brk_u128)(n - 1)) h += 1;
    *start = (brk_u128)i * h;
    *end = (i == n - 1) ? BRK_U128_MAX : (brk_u128)(i + 1) * h - 1;
}
