/* seqno.h — sequence numbers: the 56-digit decimal form of (stream, shard, counter).
 *
 * Layout (decimal digits, most significant first; total exactly 56):
 *
 *   [0]      '4'    layout version; also keeps the first digit non-zero so the width is fixed
 *   [1..13]  13     stream creation time, epoch milliseconds (zero-padded)
 *   [14..23] 10     shard index (zero-padded; uint32)
 *   [24..43] 20     per-shard record counter from shard_log (zero-padded; uint64)
 *   [44..55] 12     reserved, "000000000000"
 *
 * Properties this gives (SPEC decisions, 2.4):
 *  - fixed width, so numeric order == string order;
 *  - strictly increasing per shard as the counter is (the counter survives restarts: shard_log);
 *  - every child shard's numbers exceed all of its parents': a child's index is allocated after
 *    its parents' (indices grow monotonically per stream) and the index precedes the counter;
 *  - decodable to the shard index, and checkable against the stream by its creation time;
 *  - the maximum of a shard's space (counter and reserved digits all 9s) is the closed shard's
 *    EndingSequenceNumber; it decodes to counter BRK_SEQ_END and is never a record's number.
 * Thread-safe, pure.
 */
#ifndef BRK_SEQNO_H
#define BRK_SEQNO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"

#define BRK_SEQ_DIGITS 56
#define BRK_SEQ_END UINT64_MAX     /* counter value of the end-of-shard sentinel */
#define BRK_SEQ_PREFIX_LEN 24      /* version + stream time + shard index */

typedef struct brk_seq_parts {
    int64_t stream_created_ms;
    uint32_t shard;
    uint64_t counter;              /* BRK_SEQ_END for the sentinel */
} brk_seq_parts;

/* Writes the first BRK_SEQ_PREFIX_LEN digits (constant for one shard) into prefix (no NUL). */
void brk_seq_prefix(int64_t stream_created_ms, uint32_t shard, char prefix[BRK_SEQ_PREFIX_LEN]);
/* Renders a full number from a prefix and a counter (BRK_SEQ_END gives the sentinel). */
void brk_seq_render(const char prefix[BRK_SEQ_PREFIX_LEN], uint64_t counter,
                    char out[BRK_SEQ_STRLEN]);
/* In place: the number of the next counter of the same shard (s must not be the sentinel and
 * its counter must be below 2^64-2). Cheaper than rendering consecutive numbers one by one. */
void brk_seq_increment(char s[BRK_SEQ_STRLEN]);
/* Convenience: prefix + render. */
void brk_seq_format(int64_t stream_created_ms, uint32_t shard, uint64_t counter,
                    char out[BRK_SEQ_STRLEN]);
/* Decodes a number produced above. SL_EINVAL for anything else (wrong width, non-digits, wrong
 * version digit, counter over 2^64-1 that is not the sentinel, non-zero reserved digits). */
int brk_seq_parse(const char *s, brk_seq_parts *out);

#endif
