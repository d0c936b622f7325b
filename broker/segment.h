/* segment.h — one append-only segment file of a shard log, its record framing and its sparse
 * index (internal to broker/; used by shard_log.c).
 *
 * A segment is `<dir>/<20-digit first counter>.log` plus `<dir>/<same>.idx`. The file formats
 * (segment header, record frame, index file) are documented at the top of segment.c.
 *
 * The in-memory index holds one entry (counter, arrival ms, file offset) for the first record
 * and then for the first record at or after every BRK_SEG_INDEX_STRIDE bytes, so it stays small
 * (about 24 bytes per 64 KiB of log) and a lookup scans at most one stride of the file.
 *
 * Threads: a brk_segment is not locked; shard_log.c serialises every call on one segment (the
 * broker's shard lock). The fd returned by brk_segment_take_fd may be fsynced from any thread.
 * Errors: -errno for system failures, SL_ECORRUPT for bad bytes, SL_ENOMEM, SL_ETOOBIG.
 */
#ifndef BRK_SEGMENT_H
#define BRK_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/shard_log.h"

#define BRK_SEG_HEADER_SIZE 24u          /* segment file header (format version 1) */
#define BRK_SEG_FRAME_OVERHEAD 36u       /* framing bytes per record besides key and data */
#define BRK_SEG_PAYLOAD_MAX (64u << 20)  /* key + data of one record; more is SL_ETOOBIG */
#define BRK_SEG_INDEX_STRIDE (64u << 10) /* sparse index spacing in bytes */

typedef struct brk_segment brk_segment;

/* One decoded frame; pk and data point into the buffer that was decoded (borrowed). */
typedef struct brk_segment_frame {
    uint64_t seq;
    int64_t arrival_ms;
    const uint8_t *pk;
    uint32_t pk_len;
    const uint8_t *data;
    uint32_t data_len;
    uint32_t frame_len;
} brk_segment_frame;

/* Bytes a record with these key/data lengths takes on disk. */
size_t brk_segment_frame_size(size_t pk_len, size_t data_len);
/* Encodes one frame at dst (brk_segment_frame_size bytes must fit); returns its size. */
size_t brk_segment_frame_encode(uint8_t *dst, uint64_t seq, int64_t arrival_ms, const void *pk,
                                size_t pk_len, const void *data, size_t data_len);
/* Decodes the frame at p (avail bytes readable). Returns its length (> 0), 0 when more bytes
 * are needed to judge it, SL_ECORRUPT when the bytes cannot be a valid frame (bad magic,
 * version, length or CRC). */
int64_t brk_segment_frame_decode(const uint8_t *p, size_t avail, brk_segment_frame *f);

/* Writes "<dir>/<%020 first_seq><ext>" into buf; returns SL_EINVAL when it does not fit. */
int brk_segment_path(char *buf, size_t n, const char *dir, uint64_t first_seq, const char *ext);

/* Creates a new empty segment (header only) for counter first_seq; fails with -EEXIST when
 * the file exists. The segment is writable (the active one). */
int brk_segment_create(brk_segment **out, const char *dir, uint64_t first_seq);

/* Opens an existing segment.
 * active=false (sealed): trusts the file; loads the .idx when it is valid for this exact file,
 *   else rebuilds it by scanning (and rewrites the .idx). A bad frame found by that scan makes
 *   the segment end there (brk_segment_corrupt) — the file is left untouched.
 * active=true (the last segment): verifies the tail — scans from the last entry of a valid
 *   .idx (or from the start) and truncates a torn or corrupt trailing record and everything
 *   after it; a torn header is rewritten. *truncated (may be NULL) gets the bytes cut off. */
int brk_segment_open(brk_segment **out, const char *dir, uint64_t first_seq, bool active,
                     uint64_t *truncated);
/* Closes the file descriptor and frees memory (files stay). NULL is fine. */
void brk_segment_close(brk_segment *s);
/* Unlinks the .idx and .log files, then closes. */
int brk_segment_remove(brk_segment *s);

/* Reusable frame-building buffer owned by the caller (free p with sl_free). */
typedef struct brk_segment_wbuf {
    uint8_t *p;
    size_t cap;
} brk_segment_wbuf;

/* Appends n records with counters brk_segment_end(s)... in one pwrite(2). Arrival times are
 * clamped to be >= *arrival_floor, which is updated to the last stored arrival. A failed or
 * short write is undone with ftruncate so the segment is unchanged on error.
 * SL_ETOOBIG when one record's key+data exceeds BRK_SEG_PAYLOAD_MAX, SL_EINVAL for NULL
 * pointers with non-zero lengths. */
int brk_segment_append(brk_segment *s, const brk_log_rec *recs, size_t n, int64_t *arrival_floor,
                       brk_segment_wbuf *wb);

/* Read budget shared across the segments of one brk_log_read. */
typedef struct brk_segment_budget {
    uint32_t recs_left;
    size_t bytes_left;
    size_t taken; /* records taken so far in this read */
    bool full;    /* set when a limit stopped the read */
} brk_segment_budget;

/* Appends to out the records of s with counter >= from_seq and arrival >= min_arrival_ms,
 * within the budget (the first record of a read is taken even over bytes_left). Reads with
 * pread into out->buf and compacts in place; every frame is CRC-checked. On error, out may
 * hold partial additions (the caller restores n/len). SL_ECORRUPT for a bad frame. */
int brk_segment_read(brk_segment *s, uint64_t from_seq, int64_t min_arrival_ms,
                     brk_segment_budget *b, brk_log_batch *out);

/* First counter in s whose arrival >= ts_ms (brk_segment_end when none). On a read error it
 * returns a conservative lower bound (an index entry's counter) and sets *rc. */
uint64_t brk_segment_seek_time(brk_segment *s, int64_t ts_ms, int *rc);

/* Writes the .idx file (write .tmp, rename). The index is self-validating and rebuildable,
 * so it is not fsynced. */
int brk_segment_write_index(const brk_segment *s);

/* The fd for reads (opened read-only on demand for a sealed segment); -errno on failure. */
int brk_segment_fd(brk_segment *s);
/* Closes the fd if open (reads reopen it). */
void brk_segment_drop_fd(brk_segment *s);
/* Gives the open fd away (caller closes it; -1 when none) and marks the segment sealed. */
int brk_segment_take_fd(brk_segment *s);

uint64_t brk_segment_first(const brk_segment *s);   /* counter in the file name */
uint64_t brk_segment_end(const brk_segment *s);     /* counter after the last valid record */
bool brk_segment_empty(const brk_segment *s);       /* no valid record */
int64_t brk_segment_first_arrival(const brk_segment *s);
int64_t brk_segment_last_arrival(const brk_segment *s);
uint64_t brk_segment_size(const brk_segment *s);      /* bytes of header + valid records */
uint64_t brk_segment_file_size(const brk_segment *s); /* bytes of the file */
bool brk_segment_corrupt(const brk_segment *s);     /* sealed segment with a bad frame */
size_t brk_segment_index_entries(const brk_segment *s);

#endif
