/* throttle.h — token buckets for the optional per-shard throughput emulation (SPEC 2.6).
 *
 * A bucket holds up to `burst` tokens and refills at `rate` tokens per second of the broker's
 * clock. Not locked: the broker keeps each shard's buckets under that shard's lock.
 */
#ifndef BRK_THROTTLE_H
#define BRK_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct brk_bucket {
    double tokens;
    double rate;      /* tokens per second */
    double burst;     /* capacity */
    int64_t last_ms;
} brk_bucket;

/* Per-shard limits (SPEC 2.6). */
#define BRK_THR_WRITE_BYTES (1024.0 * 1024.0)
#define BRK_THR_WRITE_RECORDS 1000.0
#define BRK_THR_READ_BYTES (2.0 * 1024.0 * 1024.0)
#define BRK_THR_READ_CALLS 5.0
#define BRK_THR_ITER_CALLS 5.0

/* A full bucket. */
void brk_bucket_init(brk_bucket *b, double rate, double burst, int64_t now_ms);
/* Takes n tokens if that many are available (true), else takes nothing (false). A request larger
 * than the burst is allowed when the bucket is full, so one maximal record always fits. */
bool brk_bucket_take(brk_bucket *b, double n, int64_t now_ms);
/* True when at least one token is available (reads charge afterwards, see brk_bucket_charge). */
bool brk_bucket_ready(brk_bucket *b, int64_t now_ms);
/* Removes n tokens unconditionally; the bucket may go negative and then blocks until refilled
 * ("insufficient throughput: the next calls are throttled"). */
void brk_bucket_charge(brk_bucket *b, double n, int64_t now_ms);

#endif
