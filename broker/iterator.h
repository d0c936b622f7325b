/* iterator.h — opaque, self-contained, tamper-evident shard-iterator tokens (SPEC 2.7).
 *
 * A token carries the stream name and creation time, the shard index, the position (the shard_log
 * counter of the next record to read) and the issue time, authenticated with HMAC-SHA256 under a
 * per-data-directory secret. Encoding: base64 of
 *   u8 version(=1) | i64 stream_created_ms | u32 shard | u64 position | i64 issued_ms |
 *   u8 name_len | name | 32-byte HMAC over everything before it       (integers little-endian)
 * which is at most 256 characters for a 128-character stream name. GetRecords stays stateless.
 * Thread-safe, pure.
 */
#ifndef BRK_ITERATOR_H
#define BRK_ITERATOR_H

#include <stdint.h>

#include "broker/broker.h"

#define BRK_ITER_SECRET_LEN 32
#define BRK_ITER_TTL_MS 300000

typedef struct brk_iter_pos {
    char stream[129];
    int64_t stream_created_ms;
    uint32_t shard;
    uint64_t position;
    int64_t issued_ms;
} brk_iter_pos;

/* Mints a token into out (NUL-terminated, < BRK_ITER_MAX). SL_EINVAL for a name over 128 bytes. */
int brk_iter_encode(const uint8_t secret[BRK_ITER_SECRET_LEN], const brk_iter_pos *p,
                    char out[BRK_ITER_MAX]);
/* Checks and decodes a token. SL_EINVAL "Invalid ShardIterator." when it is malformed or its MAC
 * does not verify; SL_EEXPIRED with AWS's message when now_ms is more than 300000 ms after the
 * issue time. */
int brk_iter_decode(const uint8_t secret[BRK_ITER_SECRET_LEN], const char *token, int64_t now_ms,
                    brk_iter_pos *out, sl_err *err);
/* Java Date.toString() form in UTC ("Thu Jan 22 01:22:02 UTC 2015"), as in AWS's messages. */
void brk_iter_format_time(int64_t ms, char *buf, size_t len);

#endif
