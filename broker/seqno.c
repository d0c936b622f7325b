/* seqno.c — 56-digit sequence numbers (layout documented in seqno.h). */
#include "broker/seqno.h"

#include <string.h>

#include "broker/sl_common.h"

/* Writes v as exactly `width` zero-padded digits (v must fit). */
static void put_digits(char *dst, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        dst[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void brk_seq_prefix(int64_t stream_created_ms, uint32_t shard, char prefix[BRK_SEQ_PREFIX_LEN])
{
    uint64_t t = stream_created_ms < 0 ? 0 : (uint64_t)stream_created_ms;
    if (t > 9999999999999ULL) t = 9999999999999ULL; /* year 2286 */
    prefix[0] = '4';
    put_digits(prefix + 1, t, 13);
    put_digits(prefix + 14, shard, 10);
}

void brk_seq_render(const char prefix[BRK_SEQ_PREFIX_LEN], uint64_t counter,
                    char out[BRK_SEQ_STRLEN])
{
    memcpy(out, prefix, BRK_SEQ_PREFIX_LEN);
    if (counter == BRK_SEQ_END) {
        memset(out + BRK_SEQ_PREFIX_LEN, '9', BRK_SEQ_DIGITS - BRK_SEQ_PREFIX_LEN);
    } else {
        put_digits(out + BRK_SEQ_PREFIX_LEN, counter, 20);
        memset(out + 44, '0', 12);
    }
    out[BRK_SEQ_DIGITS] = '\0';
}

void brk_seq_increment(char s[BRK_SEQ_STRLEN])
{
    for (int i = 43; i >= BRK_SEQ_PREFIX_LEN; i--) {
        if (s[i] != '9') {
            s[i]++;
            return;
        }
        s[i] = '0';
    }
    SL_ASSERT(!"sequence counter overflow");
}

void brk_seq_format(int64_t stream_created_ms, uint32_t shard, uint64_t counter,
                    char out[BRK_SEQ_STRLEN])
{
    char prefix[BRK_SEQ_PREFIX_LEN];
    brk_seq_prefix(stream_created_ms, shard, prefix);
    brk_seq_render(prefix, counter, out);
}

/* Parses exactly n digits into *v; false on overflow of uint64. */
static bool get_digits(const char *s, int n, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10) return false;
        x = x * 10 + d;
    }
    *v = x;
    return true;
}

int brk_seq_parse(const char *s, brk_seq_parts *out)
{
    uint64_t t = 0;
    uint64_t shard = 0;
    uint64_t counter = 0;
    if (!s || strlen(s) != BRK_SEQ_DIGITS || strspn(s, "0123456789") != BRK_SEQ_DIGITS)
        return SL_EINVAL;
    if (s[0] != '4') return SL_EINVAL;
    get_digits(s + 1, 13, &t);
    get_digits(s + 14, 10, &shard);
    if (shard > UINT32_MAX) return SL_EINVAL;
    if (strspn(s + BRK_SEQ_PREFIX_LEN, "9") == BRK_SEQ_DIGITS - BRK_SEQ_PREFIX_LEN) {
        counter = BRK_SEQ_END;
    } else {
        if (strspn(s + 44, "0") != 12) return SL_EINVAL;
        if (!get_digits(s + BRK_SEQ_PREFIX_LEN, 20, &counter) || counter == BRK_SEQ_END)
            return SL_EINVAL;
    }
    out->stream_created_ms = (int64_t)t;
    out->shard = (uint32_t)shard;
    out->counter = counter;
    return 0;
}
