/* segment.c — segment files: record framing, CRC32C, append, torn-tail recovery, sparse index.
 *
 * All integers on disk are explicit-width little-endian. Formats (version 1):
 *
 * Segment file `<first>.log` = header, then frames back to back.
 *   header (24 bytes)
 *     0  u8[4]  magic "SLSG"
 *     4  u16    format version (1)
 *     6  u16    header length in bytes (24)
 *     8  u64    first counter (equals the file name)
 *     16 u32    reserved, 0
 *     20 u32    CRC32C of bytes 0..19
 *   frame (36 + key + data bytes)
 *     0  u8     magic 0xD5
 *     1  u8     frame version (1)
 *     2  u16    flags, 0 (no flag is defined; a reader rejects unknown bits)
 *     4  u32    total frame length (36 + key length + data length)
 *     8  u32    CRC32C of bytes 12..end of frame
 *     12 u64    sequence counter
 *     20 i64    arrival time, epoch ms
 *     28 u32    partition key length
 *     32 ...    partition key bytes
 *     32+k u32  data length
 *     36+k ...  data bytes
 *
 * Index file `<first>.idx` = header, then entries.
 *   header (72 bytes)
 *     0  u8[4]  magic "SLIX"
 *     4  u16    version (1)
 *     6  u16    header length (72)
 *     8  u64    first counter          16 u64 end counter (after the last valid record)
 *     24 u64    valid bytes            32 u64 log file size when written (staleness check)
 *     40 i64    first arrival ms       48 i64 last arrival ms
 *     56 u32    entry count            60 u32 flags (bit 0: bad frame at `valid bytes`)
 *     64 u32    reserved, 0            68 u32 CRC32C of bytes 0..67 and all entries
 *   entry (24 bytes): u64 counter, i64 arrival ms, u64 file offset of that record's frame
 *
 * Extending: a new per-record field is a frame flag bit plus bytes after the data, counted in
 * the total length; a new segment field goes after byte 24 (`header length` grows). Either
 * change bumps the segment header's version and the frame version together, so old and new
 * frames never share a file and a version-1 reader (which rejects unknown flags, lengths and
 * versions) never misreads one: an active segment of an unknown version fails to open
 * instead of being cut, a sealed one reads as corrupt. The index is a cache: a changed index
 * layout bumps its own version, and any doubt about an index means rebuilding it from the log.
 */
#include "broker/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/crc32c.h"
#include "broker/sl_common.h"

#define SEG_MAGIC "SLSG"
#define SEG_VERSION 1u
#define IDX_MAGIC "SLIX"
#define IDX_VERSION 1u
#define IDX_HEADER_SIZE 72u
#define IDX_ENTRY_SIZE 24u
#define IDX_FLAG_CORRUPT 1u
#define FRAME_MAGIC 0xD5u
#define FRAME_VERSION 1u
#define FRAME_CRC_FROM 12u /* the CRC covers everything after its own field */
#define SCAN_CHUNK (256u << 10)
#define READ_CHUNK_MIN (8u << 10)
#define READ_CHUNK_MAX (1u << 20)

typedef struct idx_entry {
    uint64_t seq;
    int64_t arrival;
    uint64_t off;
} idx_entry;

struct brk_segment {
    char *path;  /* .log */
    char *ipath; /* .idx */
    int fd;      /* -1 when not open */
    bool active; /* writable, the shard's last segment */
    bool corrupt;
    bool tail_dirty; /* a failed append could not be truncated away: fsize is unknown */
    uint64_t first_seq;
    uint64_t end_seq;
    uint64_t size;  /* header + valid frames */
    uint64_t fsize; /* file size (differs from size only for a corrupt sealed segment) */
    int64_t first_arrival;
    int64_t last_arrival;
    idx_entry *ix;
    size_t nix, capix;
    /* Where the last read stopped (frame offset, its counter): a consumer reading on from
     * there starts at that frame instead of the index entry before it. 0 = none. */
    uint64_t hint_off;
    uint64_t hint_seq;
};

/* ---- little-endian helpers -------------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* ---- framing ---------------------------------------------------------------------------- */

size_t brk_segment_frame_size(size_t pk_len, size_t data_len)
{
    return BRK_SEG_FRAME_OVERHEAD + pk_len + data_len;
}

size_t brk_segment_frame_encode(uint8_t *dst, uint64_t seq, int64_t arrival_ms, const void *pk,
                                size_t pk_len, const void *data, size_t data_len)
{
    size_t total = brk_segment_frame_size(pk_len, data_len);
    dst[0] = FRAME_MAGIC;
    dst[1] = FRAME_VERSION;
    put16(dst + 2, 0);
    put32(dst + 4, (uint32_t)total);
    put64(dst + 12, seq);
    put64(dst + 20, (uint64_t)arrival_ms);
    put32(dst + 28, (uint32_t)pk_len);
    if (pk_len) memcpy(dst + 32, pk, pk_len);
    put32(dst + 32 + pk_len, (uint32_t)data_len);
    if (data_len) memcpy(dst + 36 + pk_len, data, data_len);
    put32(dst + 8, brk_crc32c(0, dst + FRAME_CRC_FROM, total - FRAME_CRC_FROM));
    return total;
}

int64_t brk_segment_frame_decode(const uint8_t *p, size_t avail, brk_segment_frame *f)
{
    if (avail >= 1 && p[0] != FRAME_MAGIC) return SL_ECORRUPT;
    if (avail >= 2 && p[1] != FRAME_VERSION) return SL_ECORRUPT;
    if (avail < 8) return 0;
    if (get16(p + 2) != 0) return SL_ECORRUPT;
    uint32_t total = get32(p + 4);
    if (total < BRK_SEG_FRAME_OVERHEAD || total - BRK_SEG_FRAME_OVERHEAD > BRK_SEG_PAYLOAD_MAX)
        return SL_ECORRUPT;
    if (avail < total) return 0;
    uint32_t pk_len = get32(p + 28);
    if (pk_len > total - BRK_SEG_FRAME_OVERHEAD) return SL_ECORRUPT;
    uint32_t data_len = get32(p + 32 + pk_len);
    if ((uint64_t)pk_len + data_len + BRK_SEG_FRAME_OVERHEAD != total) return SL_ECORRUPT;
    if (brk_crc32c(0, p + FRAME_CRC_FROM, total - FRAME_CRC_FROM) != get32(p + 8))
        return SL_ECORRUPT;
    f->seq = get64(p + 12);
    f->arrival_ms = (int64_t)get64(p + 20);
    f->pk = p + 32;
    f->pk_len = pk_len;
    f->data = p + 36 + pk_len;
    f->data_len = data_len;
    f->frame_len = total;
    return total;
}

static void header_encode(uint8_t *h, uint64_t first_seq)
{
    memcpy(h, SEG_MAGIC, 4);
    put16(h + 4, SEG_VERSION);
    put16(h + 6, BRK_SEG_HEADER_SIZE);
    put64(h + 8, first_seq);
    put32(h + 16, 0);
    put32(h + 20, brk_crc32c(0, h, 20));
}

static bool header_valid(const uint8_t *h, uint64_t first_seq)
{
    return memcmp(h, SEG_MAGIC, 4) == 0 && get16(h + 4) == SEG_VERSION &&
           get16(h + 6) == BRK_SEG_HEADER_SIZE && get64(h + 8) == first_seq &&
           get32(h + 20) == brk_crc32c(0, h, 20);
}

/* ---- small file helpers ----------------------------------------------------------------- */

static int pread_full(int fd, void *buf, size_t n, uint64_t off, size_t *got)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (r == 0) break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

static int pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(fd, (const uint8_t *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (r == 0) return -EIO;
        done += (size_t)r;
    }
    return 0;
}

int brk_segment_path(char *buf, size_t n, const char *dir, uint64_t first_seq, const char *ext)
{
    int w = snprintf(buf, n, "%s/%020llu%s", dir, (unsigned long long)first_seq, ext);
    return (w < 0 || (size_t)w >= n) ? SL_EINVAL : 0;
}

static char *path_new(const char *dir, uint64_t first_seq, const char *ext)
{
    size_t n = strlen(dir) + 32;
    char *p = sl_malloc(n);
    if (p && brk_segment_path(p, n, dir, first_seq, ext) != 0) {
        sl_free(p);
        p = NULL;
    }
    return p;
}

static int seg_alloc(brk_segment **out, const char *dir, uint64_t first_seq)
{
    brk_segment *s = sl_calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->fd = -1;
    s->first_seq = first_seq;
    s->end_seq = first_seq;
    s->size = BRK_SEG_HEADER_SIZE;
    s->fsize = BRK_SEG_HEADER_SIZE;
    s->path = path_new(dir, first_seq, ".log");
    s->ipath = path_new(dir, first_seq, ".idx");
    if (!s->path || !s->ipath) {
        brk_segment_close(s);
        return SL_ENOMEM;
    }
    *out = s;
    return 0;
}

void brk_segment_close(brk_segment *s)
{
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    sl_free(s->path);
    sl_free(s->ipath);
    sl_free(s->ix);
    sl_free(s);
}

int brk_segment_remove(brk_segment *s)
{
    int rc = 0;
    /* Index first: a crash in between leaves a log without index, which is simply rebuilt. */
    if (unlink(s->ipath) != 0 && errno != ENOENT) rc = -errno;
    if (unlink(s->path) != 0 && errno != ENOENT && rc == 0) rc = -errno;
    brk_segment_close(s);
    return rc;
}

/* ---- in-memory index -------------------------------------------------------------------- */

static int ix_push(brk_segment *s, uint64_t seq, int64_t arrival, uint64_t off)
{
    if (s->nix == s->capix) {
        size_t cap = s->capix ? s->capix * 2 : 16;
        idx_entry *n = sl_realloc(s->ix, cap * sizeof *n);
        if (!n) return SL_ENOMEM;
        s->ix = n;
        s->capix = cap;
    }
    s->ix[s->nix++] = (idx_entry){seq, arrival, off};
    return 0;
}

/* Notes a valid frame at off: extends the segment and adds an index entry every stride. */
static int note_frame(brk_segment *s, const brk_segment_frame *f, uint64_t off)
{
    if (s->nix == 0 || off - s->ix[s->nix - 1].off >= BRK_SEG_INDEX_STRIDE) {
        int rc = ix_push(s, f->seq, f->arrival_ms, off);
        if (rc) return rc;
    }
    if (s->end_seq == s->first_seq) s->first_arrival = f->arrival_ms;
    s->last_arrival = f->arrival_ms;
    s->end_seq = f->seq + 1;
    s->size = off + f->frame_len;
    return 0;
}

/* Index of the last entry with seq <= target (entries exist). */
static size_t ix_by_seq(const brk_segment *s, uint64_t target)
{
    size_t lo = 0, hi = s->nix; /* answer in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ix[mid].seq <= target) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* Index of the last entry with arrival < ts, or 0 (arrivals are non-decreasing). */
static size_t ix_by_time(const brk_segment *s, int64_t ts)
{
    size_t lo = 0, hi = s->nix;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ix[mid].arrival < ts) lo = mid;
        else hi = mid;
    }
    return lo;
}

/* ---- sequential scanner (recovery, index rebuild, time seek) ------------------------------ */

typedef struct scanner {
    int fd;
    uint8_t *buf;
    size_t cap;
    size_t pos, len; /* unparsed bytes are buf[pos, len) */
    uint64_t off;    /* file offset of buf[pos] */
    uint64_t limit;  /* scan stops here */
} scanner;

static int scan_init(scanner *sc, int fd, uint64_t off, uint64_t limit)
{
    *sc = (scanner){.fd = fd, .off = off, .limit = limit};
    sc->cap = SCAN_CHUNK;
    sc->buf = sl_malloc(sc->cap);
    return sc->buf ? 0 : SL_ENOMEM;
}

static void scan_free(scanner *sc)
{
    sl_free(sc->buf);
    sc->buf = NULL;
}

/* 1: a valid frame (its offset is *at); 0: clean end at limit; SL_ECORRUPT: bad or incomplete
 * frame at sc->off; -errno: read failure. */
static int scan_next(scanner *sc, brk_segment_frame *f, uint64_t *at)
{
    for (;;) {
        size_t have = sc->len - sc->pos;
        int64_t r = brk_segment_frame_decode(sc->buf + sc->pos, have, f);
        if (r < 0) return SL_ECORRUPT;
        if (r > 0) {
            *at = sc->off;
            sc->pos += (size_t)r;
            sc->off += (uint64_t)r;
            return 1;
        }
        uint64_t left = sc->limit - sc->off - have; /* file bytes not yet buffered */
        if (left == 0) return have ? SL_ECORRUPT : 0;
        size_t need = have < 8 ? 8 : get32(sc->buf + sc->pos + 4);
        if (need > sc->cap) {
            uint8_t *nb = sl_malloc(need);
            if (!nb) return SL_ENOMEM;
            memcpy(nb, sc->buf + sc->pos, have);
            sl_free(sc->buf);
            sc->buf = nb;
            sc->cap = need;
        } else {
            memmove(sc->buf, sc->buf + sc->pos, have);
        }
        sc->pos = 0;
        sc->len = have;
        size_t want = sc->cap - have;
        if (want > left) want = (size_t)left;
        size_t got = 0;
        int rc = pread_full(sc->fd, sc->buf + have, want, sc->off + have, &got);
        if (rc) return rc;
        if (got == 0) return SL_ECORRUPT; /* file shorter than expected */
        sc->len += got;
        if (got < want) sc->limit = sc->off + sc->len;
    }
}

/* Scans frames from (off, seq) to limit, noting each; stops at the first bad frame.
 * Returns 0 (clean end), SL_ECORRUPT with *bad_at set, or another error. */
static int scan_frames(brk_segment *s, uint64_t off, uint64_t seq, uint64_t limit,
                       uint64_t *bad_at)
{
    scanner sc;
    int rc = scan_init(&sc, s->fd, off, limit);
    if (rc) return rc;
    for (;;) {
        brk_segment_frame f;
        uint64_t at;
        rc = scan_next(&sc, &f, &at);
        if (rc == 1 && f.seq != seq) rc = SL_ECORRUPT; /* counters must be consecutive */
        if (rc == SL_ECORRUPT) *bad_at = sc.off;
        if (rc != 1) break;
        rc = note_frame(s, &f, at);
        if (rc) break;
        seq++;
    }
    scan_free(&sc);
    return rc;
}

/* ---- index file --------------------------------------------------------------------------- */

int brk_segment_write_index(const brk_segment *s)
{
    if (s->tail_dirty) return SL_EIO; /* file size unknown: let the next open rebuild it */
    size_t n = IDX_HEADER_SIZE + s->nix * IDX_ENTRY_SIZE;
    uint8_t *b = sl_malloc(n);
    char *tmp = sl_malloc(strlen(s->ipath) + 5);
    int fd = -1;
    int rc = 0;
    if (!b || !tmp) {
        rc = SL_ENOMEM;
        goto out;
    }
    memcpy(b, IDX_MAGIC, 4);
    put16(b + 4, IDX_VERSION);
    put16(b + 6, IDX_HEADER_SIZE);
    put64(b + 8, s->first_seq);
    put64(b + 16, s->end_seq);
    put64(b + 24, s->size);
    put64(b + 32, s->fsize);
    put64(b + 40, (uint64_t)s->first_arrival);
    put64(b + 48, (uint64_t)s->last_arrival);
    put32(b + 56, (uint32_t)s->nix);
    put32(b + 60, s->corrupt ? IDX_FLAG_CORRUPT : 0);
    put32(b + 64, 0);
    for (size_t i = 0; i < s->nix; i++) {
        uint8_t *e = b + IDX_HEADER_SIZE + i * IDX_ENTRY_SIZE;
        put64(e, s->ix[i].seq);
        put64(e + 8, (uint64_t)s->ix[i].arrival);
        put64(e + 16, s->ix[i].off);
    }
    uint32_t crc = brk_crc32c(0, b, 68);
    crc = brk_crc32c(crc, b + IDX_HEADER_SIZE, n - IDX_HEADER_SIZE);
    put32(b + 68, crc);
    sprintf(tmp, "%s.tmp", s->ipath);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    rc = pwrite_full(fd, b, n, 0);
    if (close(fd) != 0 && rc == 0) rc = -errno;
    fd = -1;
    if (rc == 0 && rename(tmp, s->ipath) != 0) rc = -errno;
    if (rc) unlink(tmp);
out:
    sl_free(tmp);
    sl_free(b);
    return rc;
}

/* Loads the .idx into s when it is intact and describes this log file. max_fsize: the index
 * must have been written when the log had exactly fsize bytes (exact=true) or at most fsize.
 * Returns true when loaded. */
static bool index_load(brk_segment *s, uint64_t fsize, bool exact)
{
    bool ok = false;
    uint8_t *b = NULL;
    int fd = open(s->ipath, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)IDX_HEADER_SIZE ||
        st.st_size > (off_t)(IDX_HEADER_SIZE + (uint64_t)IDX_ENTRY_SIZE * (1u << 26)))
        goto out;
    size_t n = (size_t)st.st_size;
    b = sl_malloc(n);
    size_t got = 0;
    if (!b || pread_full(fd, b, n, 0, &got) != 0 || got != n) goto out;
    if (memcmp(b, IDX_MAGIC, 4) != 0 || get16(b + 4) != IDX_VERSION ||
        get16(b + 6) != IDX_HEADER_SIZE)
        goto out;
    uint32_t count = get32(b + 56);
    if ((uint64_t)count * IDX_ENTRY_SIZE + IDX_HEADER_SIZE != n) goto out;
    uint32_t crc = brk_crc32c(0, b, 68);
    crc = brk_crc32c(crc, b + IDX_HEADER_SIZE, n - IDX_HEADER_SIZE);
    if (crc != get32(b + 68) || get64(b + 8) != s->first_seq) goto out;
    uint64_t end = get64(b + 16), valid = get64(b + 24), wfsize = get64(b + 32);
    uint32_t flags = get32(b + 60);
    if (exact ? wfsize != fsize : wfsize > fsize) goto out;
    if (valid > wfsize || valid < BRK_SEG_HEADER_SIZE || end < s->first_seq) goto out;
    if ((flags & ~IDX_FLAG_CORRUPT) != 0) goto out;
    if (!exact && (flags & IDX_FLAG_CORRUPT)) goto out;
    if ((count == 0) != (end == s->first_seq)) goto out;
    /* Entries must be strictly increasing and inside the valid range. */
    s->nix = 0;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = b + IDX_HEADER_SIZE + (size_t)i * IDX_ENTRY_SIZE;
        idx_entry x = {get64(e), (int64_t)get64(e + 8), get64(e + 16)};
        if (x.seq < s->first_seq || x.seq >= end || x.off < BRK_SEG_HEADER_SIZE ||
            x.off >= valid)
            goto out;
        if (i == 0 && (x.seq != s->first_seq || x.off != BRK_SEG_HEADER_SIZE)) goto out;
        if (i > 0 && (x.seq <= s->ix[i - 1].seq || x.off <= s->ix[i - 1].off ||
                      x.arrival < s->ix[i - 1].arrival))
            goto out;
        if (ix_push(s, x.seq, x.arrival, x.off) != 0) goto out;
    }
    s->end_seq = end;
    s->size = valid;
    s->first_arrival = (int64_t)get64(b + 40);
    s->last_arrival = (int64_t)get64(b + 48);
    s->corrupt = (flags & IDX_FLAG_CORRUPT) != 0;
    ok = true;
out:
    if (!ok) s->nix = 0;
    sl_free(b);
    close(fd);
    return ok;
}

/* ---- open / create ------------------------------------------------------------------------ */

int brk_segment_create(brk_segment **out, const char *dir, uint64_t first_seq)
{
    brk_segment *s = NULL;
    int rc = seg_alloc(&s, dir, first_seq);
    if (rc) return rc;
    s->fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        rc = -errno;
        goto fail;
    }
    uint8_t h[BRK_SEG_HEADER_SIZE];
    header_encode(h, first_seq);
    rc = pwrite_full(s->fd, h, sizeof h, 0);
    if (rc) {
        unlink(s->path);
        goto fail;
    }
    unlink(s->ipath); /* a leftover index of an older incarnation would be stale anyway */
    s->active = true;
    *out = s;
    return 0;
fail:
    brk_segment_close(s);
    return rc;
}

/* Verifies the tail of the shard's last segment and cuts a torn/corrupt end. */
static int recover_active(brk_segment *s, uint64_t fsize, uint64_t *truncated)
{
    uint8_t h[BRK_SEG_HEADER_SIZE];
    size_t got = 0;
    int rc = 0;
    if (fsize >= BRK_SEG_HEADER_SIZE) rc = pread_full(s->fd, h, sizeof h, 0, &got);
    if (rc) return rc;
    if (got == sizeof h && memcmp(h, SEG_MAGIC, 4) == 0 && !header_valid(h, s->first_seq) &&
        (get16(h + 4) != SEG_VERSION || get32(h + 20) == brk_crc32c(0, h, 20))) {
        /* An intact header of another format version, or of another counter (a renamed
         * file): not ours to cut. */
        return SL_ECORRUPT;
    }
    if (got != sizeof h || !header_valid(h, s->first_seq)) {
        /* Torn creation (killed between creating the file and writing its header) or
         * garbage: the name says which counter the segment starts at, so an empty segment
         * with a fresh header is the safe state. */
        header_encode(h, s->first_seq);
        if (ftruncate(s->fd, 0) != 0) return -errno;
        rc = pwrite_full(s->fd, h, sizeof h, 0);
        if (rc) return rc;
        *truncated = fsize;
        s->size = s->fsize = BRK_SEG_HEADER_SIZE;
        return 0;
    }
    /* Start from the last entry of an index written at a clean close (bytes before it were
     * complete then, a crash cannot tear them); otherwise scan the whole segment. */
    uint64_t start_off = BRK_SEG_HEADER_SIZE;
    uint64_t start_seq = s->first_seq;
    if (index_load(s, fsize, false) && s->nix > 0) {
        idx_entry last = s->ix[s->nix - 1];
        start_off = last.off;
        start_seq = last.seq;
        /* Re-derived by the scan below from that entry on. */
        s->end_seq = last.seq;
        s->size = last.off;
        s->nix--;
    } else {
        s->nix = 0;
        s->end_seq = s->first_seq;
        s->size = BRK_SEG_HEADER_SIZE;
    }
    /* The file is about to change (appends, maybe a cut below that entry): the index only
     * served this open, the next clean close writes a fresh one. */
    if (unlink(s->ipath) != 0 && errno != ENOENT) return -errno;
    uint64_t bad_at = 0;
    rc = scan_frames(s, start_off, start_seq, fsize, &bad_at);
    if (rc == SL_ECORRUPT && start_off != BRK_SEG_HEADER_SIZE && bad_at == start_off) {
        /* The bad frame is right at the index entry: the arrival of the record before it
         * is only known by scanning from the start, so do that. */
        s->nix = 0;
        s->end_seq = s->first_seq;
        s->size = BRK_SEG_HEADER_SIZE;
        rc = scan_frames(s, BRK_SEG_HEADER_SIZE, s->first_seq, fsize, &bad_at);
    }
    if (rc == SL_ECORRUPT) {
        if (ftruncate(s->fd, (off_t)bad_at) != 0) return -errno;
        *truncated = fsize - bad_at;
        rc = 0;
    }
    if (rc) return rc;
    s->fsize = s->size;
    return 0;
}

/* Loads or rebuilds the index of a sealed segment; a bad frame ends the segment there. */
static int load_sealed(brk_segment *s, uint64_t fsize)
{
    if (index_load(s, fsize, true)) return 0;
    s->nix = 0;
    s->end_seq = s->first_seq;
    s->size = BRK_SEG_HEADER_SIZE;
    s->fsize = fsize;
    uint8_t h[BRK_SEG_HEADER_SIZE];
    size_t got = 0;
    int rc = 0;
    if (fsize >= BRK_SEG_HEADER_SIZE) rc = pread_full(s->fd, h, sizeof h, 0, &got);
    if (rc) return rc;
    if (got != sizeof h || !header_valid(h, s->first_seq)) {
        s->corrupt = true;
        s->size = fsize < BRK_SEG_HEADER_SIZE ? fsize : BRK_SEG_HEADER_SIZE;
        return 0;
    }
    uint64_t bad_at = 0;
    rc = scan_frames(s, BRK_SEG_HEADER_SIZE, s->first_seq, fsize, &bad_at);
    if (rc == SL_ECORRUPT) {
        s->corrupt = true;
        rc = 0;
    }
    if (rc) return rc;
    /* Best effort: the next open is faster with it, and a failure costs only that. */
    (void)brk_segment_write_index(s);
    return 0;
}

int brk_segment_open(brk_segment **out, const char *dir, uint64_t first_seq, bool active,
                     uint64_t *truncated)
{
    brk_segment *s = NULL;
    uint64_t cut = 0;
    int rc = seg_alloc(&s, dir, first_seq);
    if (rc) return rc;
    s->active = active;
    s->fd = open(s->path, (active ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (s->fd < 0) {
        rc = -errno;
        goto fail;
    }
    struct stat st;
    if (fstat(s->fd, &st) != 0) {
        rc = -errno;
        goto fail;
    }
    s->fsize = (uint64_t)st.st_size;
    rc = active ? recover_active(s, s->fsize, &cut) : load_sealed(s, s->fsize);
    if (rc) goto fail;
    if (!active) brk_segment_drop_fd(s); /* reads reopen on demand: few fds per shard */
    if (truncated) *truncated = cut;
    *out = s;
    return 0;
fail:
    brk_segment_close(s);
    return rc;
}

/* ---- append ------------------------------------------------------------------------------- */

int brk_segment_append(brk_segment *s, const brk_log_rec *recs, size_t n, int64_t *arrival_floor,
                       brk_segment_wbuf *wb)
{
    SL_ASSERT(s->active && s->fd >= 0);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const brk_log_rec *r = &recs[i];
        if ((r->pk_len && !r->pk) || (r->data_len && !r->data)) return SL_EINVAL;
        if (r->pk_len > BRK_SEG_PAYLOAD_MAX || r->data_len > BRK_SEG_PAYLOAD_MAX - r->pk_len)
            return SL_ETOOBIG;
        total += brk_segment_frame_size(r->pk_len, r->data_len);
    }
    if (n == 0) return 0;
    if (total > wb->cap) {
        size_t cap = wb->cap ? wb->cap : 64u << 10;
        while (cap < total) cap *= 2;
        uint8_t *p = sl_malloc(cap);
        if (!p) return SL_ENOMEM;
        sl_free(wb->p);
        wb->p = p;
        wb->cap = cap;
    }
    /* Reserve the index entries this batch adds, so nothing can fail after the write. */
    uint64_t last_ix = s->nix ? s->ix[s->nix - 1].off : 0;
    size_t add = 0;
    uint64_t at = s->size;
    for (size_t i = 0; i < n; i++) {
        if ((s->nix == 0 && add == 0) || at - last_ix >= BRK_SEG_INDEX_STRIDE) {
            add++;
            last_ix = at;
        }
        at += brk_segment_frame_size(recs[i].pk_len, recs[i].data_len);
    }
    if (s->nix + add > s->capix) {
        size_t cap = s->capix ? s->capix : 16;
        while (cap < s->nix + add) cap *= 2;
        idx_entry *nx = sl_realloc(s->ix, cap * sizeof *nx);
        if (!nx) return SL_ENOMEM;
        s->ix = nx;
        s->capix = cap;
    }
    if (s->tail_dirty) {
        /* An earlier failed write could not be cut off; retry before writing after it. */
        if (ftruncate(s->fd, (off_t)s->size) != 0) return -errno;
        s->tail_dirty = false;
        s->fsize = s->size;
    }
    int64_t floor = *arrival_floor;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const brk_log_rec *r = &recs[i];
        if (r->arrival_ms > floor) floor = r->arrival_ms;
        off += brk_segment_frame_encode(wb->p + off, s->end_seq + i, floor, r->pk, r->pk_len,
                                        r->data, r->data_len);
    }
    /* One write for the whole batch; anything partial is cut off again so no half batch
     * stays behind (a crash in between is handled by recovery's torn-tail truncation). */
    int rc = pwrite_full(s->fd, wb->p, total, s->size);
    if (rc) {
        if (ftruncate(s->fd, (off_t)s->size) != 0) s->tail_dirty = true;
        return rc;
    }
    /* Index entries and counters: walk the frames just written (no decode needed). */
    off = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = wb->p + off;
        brk_segment_frame f = {.seq = s->end_seq, .arrival_ms = (int64_t)get64(p + 20),
                               .frame_len = get32(p + 4)};
        rc = note_frame(s, &f, s->size);
        SL_ASSERT(rc == 0); /* capacity reserved above */
        off += f.frame_len;
    }
    s->fsize = s->size;
    *arrival_floor = floor;
    return 0;
}

/* ---- reads -------------------------------------------------------------------------------- */

int brk_segment_fd(brk_segment *s)
{
    if (s->fd < 0) {
        s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
        if (s->fd < 0) return -errno;
    }
    return s->fd;
}

void brk_segment_drop_fd(brk_segment *s)
{
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
}

int brk_segment_take_fd(brk_segment *s)
{
    int fd = s->fd;
    s->fd = -1;
    s->active = false;
    return fd;
}

static int batch_reserve_bytes(brk_log_batch *out, size_t need)
{
    if (need <= out->bufcap) return 0;
    size_t cap = out->bufcap ? out->bufcap : 64u << 10;
    while (cap < need) cap *= 2;
    uint8_t *p = sl_realloc(out->buf, cap);
    if (!p) return SL_ENOMEM;
    out->buf = p;
    out->bufcap = cap;
    return 0;
}

static int batch_reserve_entry(brk_log_batch *out)
{
    if (out->n < out->cap) return 0;
    size_t cap = out->cap ? out->cap * 2 : 64;
    brk_log_entry *e = sl_realloc(out->e, cap * sizeof *e);
    if (!e) return SL_ENOMEM;
    out->e = e;
    out->cap = cap;
    return 0;
}

/* How much to read per pread: about what the budget can still take (estimated from the
 * segment's average frame size, plus the frames to skip before from_seq), within bounds. */
static size_t read_chunk(const brk_segment *s, const brk_segment_budget *b, uint64_t skip)
{
    uint64_t nrec = s->end_seq - s->first_seq;
    uint64_t avg = nrec ? (s->size - BRK_SEG_HEADER_SIZE) / nrec + 1 : 256;
    uint64_t want = ((uint64_t)b->recs_left + skip) * avg;
    uint64_t cap = (uint64_t)b->bytes_left + ((uint64_t)b->recs_left + skip) * avg;
    if (b->bytes_left >= READ_CHUNK_MAX) cap = READ_CHUNK_MAX; /* also avoids overflow */
    if (want > cap) want = cap;
    want += want / 8 + 4096;
    if (want < READ_CHUNK_MIN) want = READ_CHUNK_MIN;
    if (want > READ_CHUNK_MAX) want = READ_CHUNK_MAX;
    return (size_t)want;
}

int brk_segment_read(brk_segment *s, uint64_t from_seq, int64_t min_arrival_ms,
                     brk_segment_budget *b, brk_log_batch *out)
{
    if (from_seq < s->first_seq) from_seq = s->first_seq;
    if (from_seq >= s->end_seq || b->recs_left == 0 || s->nix == 0) return 0;
    if (s->last_arrival < min_arrival_ms) return 0; /* the whole segment is past retention */
    /* Start at the later of the entry before from_seq and the entry before min_arrival:
     * every record before the latter arrived too early. */
    size_t i = ix_by_seq(s, from_seq);
    size_t j = ix_by_time(s, min_arrival_ms);
    if (j > i) i = j;
    uint64_t off = s->ix[i].off; /* file offset of the first unparsed byte */
    uint64_t seq = s->ix[i].seq;
    if (s->hint_off && s->hint_seq > seq && s->hint_seq <= from_seq && s->hint_seq < s->end_seq) {
        off = s->hint_off;
        seq = s->hint_seq;
    }
    int fd = brk_segment_fd(s);
    if (fd < 0) return fd;
    /* In-place layout of out->buf: [.. len) finished records, [w ..) compacted payloads of
     * this call, [r, r+have) raw bytes read from the file and not yet parsed. The payload of
     * a frame is always 36 bytes shorter than the frame, so w never overtakes r. */
    size_t w = out->len;
    size_t r = w;
    size_t have = 0;
    int rc = 0;
    while (seq < s->end_seq) {
        brk_segment_frame f;
        int64_t fl = brk_segment_frame_decode(out->buf ? out->buf + r : NULL, have, &f);
        if (fl < 0) {
            rc = SL_ECORRUPT;
            break;
        }
        if (fl == 0) {
            uint64_t left = s->size - off - have;
            if (left == 0) {
                rc = SL_ECORRUPT; /* a partial frame inside the valid range */
                break;
            }
            size_t need = have < 8 ? 8 : get32(out->buf + r + 4);
            size_t want = read_chunk(s, b, seq < from_seq ? from_seq - seq : 0);
            if (want < need - have) want = need - have;
            if (want > left) want = (size_t)left;
            if (have && r != w) memmove(out->buf + w, out->buf + r, have);
            r = w;
            rc = batch_reserve_bytes(out, r + have + want);
            if (rc) break;
            size_t got = 0;
            rc = pread_full(fd, out->buf + r + have, want, off + have, &got);
            if (rc) break;
            if (got < want) {
                rc = SL_ECORRUPT; /* the file is shorter than its valid size */
                break;
            }
            have += got;
            continue;
        }
        if (f.seq != seq) {
            rc = SL_ECORRUPT;
            break;
        }
        if (f.seq >= from_seq && f.arrival_ms >= min_arrival_ms) {
            size_t pl = (size_t)f.pk_len + f.data_len;
            if (b->taken > 0 && pl > b->bytes_left) {
                b->full = true;
                break;
            }
            rc = batch_reserve_entry(out);
            if (rc) break;
            brk_log_entry *e = &out->e[out->n++];
            e->seq = f.seq;
            e->arrival_ms = f.arrival_ms;
            e->pk_off = w;
            e->pk_len = f.pk_len;
            memmove(out->buf + w, f.pk, f.pk_len);
            w += f.pk_len;
            e->data_off = w;
            e->data_len = f.data_len;
            memmove(out->buf + w, f.data, f.data_len);
            w += f.data_len;
            b->bytes_left = pl > b->bytes_left ? 0 : b->bytes_left - pl;
            b->taken++;
            if (--b->recs_left == 0) b->full = true;
        }
        r += (size_t)fl;
        have -= (size_t)fl;
        off += (uint64_t)fl;
        seq++;
        if (b->full) break;
    }
    out->len = w;
    if (rc == 0) {
        s->hint_off = off;
        s->hint_seq = seq;
    }
    return rc;
}

uint64_t brk_segment_seek_time(brk_segment *s, int64_t ts_ms, int *rc)
{
    *rc = 0;
    if (s->end_seq == s->first_seq || s->nix == 0 || s->last_arrival < ts_ms) return s->end_seq;
    if (s->first_arrival >= ts_ms) return s->first_seq;
    size_t i = ix_by_time(s, ts_ms);
    uint64_t lower = s->ix[i].seq;
    int fd = brk_segment_fd(s);
    if (fd < 0) {
        *rc = fd;
        return lower;
    }
    scanner sc;
    int r = scan_init(&sc, fd, s->ix[i].off, s->size);
    if (r) {
        *rc = r;
        return lower;
    }
    uint64_t found = s->end_seq;
    for (;;) {
        brk_segment_frame f;
        uint64_t at;
        r = scan_next(&sc, &f, &at);
        if (r != 1) {
            /* 0 cannot happen before a match (last_arrival >= ts): treat as corrupt too. */
            *rc = r < 0 ? r : SL_ECORRUPT;
            found = lower;
            break;
        }
        if (f.arrival_ms >= ts_ms) {
            found = f.seq;
            break;
        }
    }
    scan_free(&sc);
    return found;
}

/* ---- accessors ---------------------------------------------------------------------------- */

uint64_t brk_segment_first(const brk_segment *s) { return s->first_seq; }
uint64_t brk_segment_end(const brk_segment *s) { return s->end_seq; }
bool brk_segment_empty(const brk_segment *s) { return s->end_seq == s->first_seq; }
int64_t brk_segment_first_arrival(const brk_segment *s) { return s->first_arrival; }
int64_t brk_segment_last_arrival(const brk_segment *s) { return s->last_arrival; }
uint64_t brk_segment_size(const brk_segment *s) { return s->size; }
uint64_t brk_segment_file_size(const brk_segment *s) { return s->fsize; }
bool brk_segment_corrupt(const brk_segment *s) { return s->corrupt; }
size_t brk_segment_index_entries(const brk_segment *s) { return s->nix; }
