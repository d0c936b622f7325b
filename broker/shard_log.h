/* shard_log.h — one shard's durable record log (internal to broker/).
 *
 * A shard directory holds append-only segment files `<first-seq>.log` (first-seq = the 20-digit
 * zero-padded counter of the segment's first record) and a sparse index `<first-seq>.idx` beside
 * each. Every record is framed with length, CRC32C, sequence counter, arrival time, partition key
 * and data (format and version documented in segment.c). Segments roll at a fixed size.
 * On open, the tail of the last segment is verified and a torn or corrupt record (and anything
 * after it) is truncated; indexes are rebuilt from the log when missing or stale.
 *
 * Sequence numbers here are the per-shard 64-bit counter: consecutive, starting at 0 for a new
 * shard, never reused (also after retention deleted every segment: the next counter survives in
 * the newest segment's file name). The broker renders them as 56-digit strings (seqno.h).
 *
 * Threads: a brk_log is NOT internally locked except where noted; the broker serialises appends,
 * reads and retention of one shard with its own lock. brk_log_wait_durable and brk_log_sync are
 * thread-safe and must be called WITHOUT the broker's shard lock, so that concurrent appenders
 * share one fsync (group commit for BRK_FSYNC_ALWAYS).
 *
 * Durability (DESIGN decision 1): an append returns after write(2) — it survives a killed
 * process. BRK_FSYNC_EVERYSEC: the broker's flusher calls brk_log_sync about once a second.
 * BRK_FSYNC_ALWAYS: the appender calls brk_log_wait_durable(ticket) after releasing its lock.
 *
 * Errors (implementation notes, shard_log.c): -errno for system failures; SL_ECORRUPT when a
 * read meets a bad frame or a gap left by one (never returned as data), or when open finds
 * segments that overlap or an active segment of an unknown format version; SL_ETOOBIG for a
 * record whose key+data exceed BRK_SEG_PAYLOAD_MAX (64 MiB); SL_EINVAL for NULL pointers with
 * non-zero lengths; SL_ENOMEM. An fsync failure is sticky: every later append, sync and wait
 * of that log returns it (the kernel may have dropped the dirty pages). Arrival times below
 * the newest stored one are stored clamped to it; max_records == 0 reads nothing.
 */
#ifndef BRK_SHARD_LOG_H
#define BRK_SHARD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"

typedef struct brk_log brk_log;

typedef struct brk_log_opts {
    size_t segment_bytes;     /* roll size; 0 = 64 MiB */
    enum brk_fsync fsync;
} brk_log_opts;

/* A record to append. arrival_ms values must be non-decreasing per shard (the broker clamps). */
typedef struct brk_log_rec {
    int64_t arrival_ms;
    const char *pk;
    size_t pk_len;
    const uint8_t *data;
    size_t data_len;
} brk_log_rec;

/* One record read back; offsets index into brk_log_batch.buf. */
typedef struct brk_log_entry {
    uint64_t seq;
    int64_t arrival_ms;
    size_t pk_off;
    uint32_t pk_len;
    size_t data_off;
    uint32_t data_len;
} brk_log_entry;

/* Reusable read buffer: brk_log_read appends into it (caller sets n=len=0 to reuse). */
typedef struct brk_log_batch {
    brk_log_entry *e;
    size_t n, cap;
    uint8_t *buf;
    size_t len, bufcap;
} brk_log_batch;

/* Opens or creates the shard directory `dir` (mkdir -p) and recovers it. */
int brk_log_open(brk_log **out, const char *dir, const brk_log_opts *o, sl_err *err);
/* Syncs (per policy) and closes. NULL is fine. */
void brk_log_close(brk_log *l);

/* Appends n records with consecutive counters; *first_seq gets the first one's counter and
 * *ticket a durability ticket for brk_log_wait_durable. Either all n are written or none
 * (a failed write is rolled back by truncation). */
int brk_log_append(brk_log *l, const brk_log_rec *recs, size_t n, uint64_t *first_seq,
                   uint64_t *ticket);
/* Blocks until everything up to `ticket` is fsynced (one fsync serves every waiter). */
int brk_log_wait_durable(brk_log *l, uint64_t ticket);
/* fsyncs whatever was written and not yet synced (cheap when nothing is pending). */
int brk_log_sync(brk_log *l);

/* Reads records with counter >= from_seq and arrival_ms >= min_arrival_ms (retention), at most
 * max_records and max_bytes of key+data (at least one record is returned if any exists, even
 * if it alone exceeds max_bytes). Appends to *out. */
int brk_log_read(brk_log *l, uint64_t from_seq, int64_t min_arrival_ms, uint32_t max_records,
                 size_t max_bytes, brk_log_batch *out);
void brk_log_batch_free(brk_log_batch *b);

/* Counter the next append will get (== number of records ever appended to this shard). */
uint64_t brk_log_next_seq(const brk_log *l);
/* Newest record: false when the log holds no record. */
bool brk_log_last(const brk_log *l, uint64_t *seq, int64_t *arrival_ms);
/* First counter whose record has arrival_ms >= ts_ms (brk_log_next_seq when none). */
uint64_t brk_log_seek_time(brk_log *l, int64_t ts_ms);
/* First retained counter with arrival_ms >= min_arrival_ms (brk_log_next_seq when none). */
uint64_t brk_log_first_seq(brk_log *l, int64_t min_arrival_ms);

/* Retention: deletes whole segments whose newest record arrived before cutoff_ms. The segment
 * being appended to is deleted only by rolling a new empty one first, so the counter survives. */
int brk_log_retain(brk_log *l, int64_t cutoff_ms);

/* Bytes on disk (all segments) and number of segments. */
uint64_t brk_log_disk_bytes(const brk_log *l);
size_t brk_log_segments(const brk_log *l);

/* Removes a closed log's directory and all its files (stream deletion). */
int brk_log_remove_dir(const char *dir);

#endif
