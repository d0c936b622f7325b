/* shard_log.c — one shard's log: a list of segments, rolling, retention, reads across
 * segments, time seeks and group commit (contract in shard_log.h, file formats in segment.c).
 *
 * Durability bookkeeping (the only part that is internally locked, by mu):
 *   written  counter after the last record whose write(2) returned
 *   durable  counter up to which an fsync has completed
 *   sync_fd  the active segment's fd; pending = fds of rolled segments not yet fsynced
 * A thread that needs durability and finds no fsync in flight becomes the leader: it snapshots
 * `written`, the fds and the directory flag, fsyncs without the lock, publishes `durable` and
 * wakes everyone; waiters whose ticket the leader covered return, the others elect the next
 * leader. So N concurrent appenders under BRK_FSYNC_ALWAYS pay about two fsyncs, not N.
 * Pending fds are closed only by a leader (or at close), so an fd being fsynced is never
 * closed and reused underneath it. An fsync failure is sticky (the kernel may have dropped the
 * dirty pages, so retrying could report success for lost data): every later append, sync and
 * wait of this log returns the error.
 */
#include "broker/shard_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/segment.h"
#include "broker/sl_common.h"

#define DEFAULT_SEGMENT_BYTES ((size_t)64 << 20)
#define WBUF_KEEP_MAX ((size_t)8 << 20) /* larger write buffers are freed after use */
#define PENDING_SYNC_MAX 8              /* rolled-but-unsynced segments before an inline sync */

struct brk_log {
    char *dir;
    size_t seg_bytes;
    enum brk_fsync fsync;
    brk_segment **segs; /* oldest first; the last one is the active segment */
    size_t nseg, capseg;
    brk_segment *read_seg; /* the one sealed segment whose read fd is kept open */
    int64_t arrival_floor; /* appends never store an arrival below the newest one */
    brk_segment_wbuf wb;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sync_fd;
    int pending[PENDING_SYNC_MAX];
    size_t npending;
    bool dir_dirty;    /* a segment file was created since the last directory fsync */
    bool parent_dirty; /* the shard's first segment was created: its parent needs one too */
    bool syncing;   /* a leader is fsyncing */
    uint64_t written;
    uint64_t durable;
    atomic_int failed; /* sticky fsync error, 0 when none */
};

static brk_segment *active(const brk_log *l)
{
    return l->segs[l->nseg - 1];
}

static int mkdir_p(const char *dir)
{
    char *p = sl_strdup(dir);
    int rc = 0;
    if (!p) return SL_ENOMEM;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *s = c;
        if (c == '\0') break;
    }
    if (rc == 0) {
        struct stat st;
        if (stat(dir, &st) != 0) rc = -errno;
        else if (!S_ISDIR(st.st_mode)) rc = -ENOTDIR;
    }
    sl_free(p);
    return rc;
}

/* "<20 digits><ext>" -> counter; false for any other name. */
static bool parse_name(const char *name, const char *ext, uint64_t *seq)
{
    size_t el = strlen(ext);
    if (strlen(name) != 20 + el || strcmp(name + 20, ext) != 0) return false;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        unsigned d = (unsigned)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *seq = v;
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists segment counters (sorted) and removes leftovers: *.tmp files and indexes whose log
 * is gone. */
static int list_dir(const char *dir, uint64_t **out, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d) return -errno;
    uint64_t *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    char path[4096];
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t seq;
        size_t nl = strlen(e->d_name);
        if (parse_name(e->d_name, ".log", &seq)) {
            if (cnt == cap) {
                cap = cap ? cap * 2 : 16;
                uint64_t *nv = sl_realloc(v, cap * sizeof *nv);
                if (!nv) {
                    rc = SL_ENOMEM;
                    break;
                }
                v = nv;
            }
            v[cnt++] = seq;
        } else if (nl > 4 && strcmp(e->d_name + nl - 4, ".tmp") == 0) {
            if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path)
                unlink(path);
        } else if (parse_name(e->d_name, ".idx", &seq)) {
            struct stat st;
            if (brk_segment_path(path, sizeof path, dir, seq, ".log") == 0 &&
                stat(path, &st) != 0 && errno == ENOENT &&
                brk_segment_path(path, sizeof path, dir, seq, ".idx") == 0)
                unlink(path);
        }
    }
    closedir(d);
    if (rc) {
        sl_free(v);
        return rc;
    }
    if (cnt) qsort(v, cnt, sizeof *v, cmp_u64);
    *out = v;
    *n = cnt;
    return 0;
}

static int segs_reserve(brk_log *l, size_t n)
{
    if (n <= l->capseg) return 0;
    size_t cap = l->capseg ? l->capseg * 2 : 8;
    while (cap < n) cap *= 2;
    brk_segment **s = sl_realloc(l->segs, cap * sizeof *s);
    if (!s) return SL_ENOMEM;
    l->segs = s;
    l->capseg = cap;
    return 0;
}

static void log_free(brk_log *l)
{
    for (size_t i = 0; i < l->nseg; i++) brk_segment_close(l->segs[i]);
    for (size_t i = 0; i < l->npending; i++) close(l->pending[i]);
    sl_free(l->segs);
    sl_free(l->wb.p);
    sl_free(l->dir);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    sl_free(l);
}

int brk_log_open(brk_log **out, const char *dir, const brk_log_opts *o, sl_err *err)
{
    uint64_t *firsts = NULL;
    size_t nfirst = 0;
    brk_log *l = NULL;
    int rc = 0;
    if (!dir || !*dir || !o)
        return sl_err_set(err, SL_EINVAL, "shard log: missing directory or options");
    rc = mkdir_p(dir);
    if (rc) return sl_err_set(err, rc, "shard log %s: mkdir: %s", dir, sl_strerror(rc));
    rc = list_dir(dir, &firsts, &nfirst);
    if (rc) return sl_err_set(err, rc, "shard log %s: list: %s", dir, sl_strerror(rc));
    l = sl_calloc(1, sizeof *l);
    if (!l) {
        sl_free(firsts);
        return sl_err_set(err, SL_ENOMEM, "shard log %s: out of memory", dir);
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->sync_fd = -1;
    l->seg_bytes = o->segment_bytes ? o->segment_bytes : DEFAULT_SEGMENT_BYTES;
    l->fsync = o->fsync;
    l->arrival_floor = INT64_MIN;
    l->dir = sl_strdup(dir);
    if (!l->dir || segs_reserve(l, nfirst + 1) != 0) {
        rc = sl_err_set(err, SL_ENOMEM, "shard log %s: out of memory", dir);
        goto fail;
    }
    for (size_t i = 0; i < nfirst; i++) {
        bool last = i + 1 == nfirst;
        rc = brk_segment_open(&l->segs[l->nseg], dir, firsts[i], last, NULL);
        if (rc) {
            sl_err_set(err, rc, "shard log %s: open segment %020llu: %s", dir,
                       (unsigned long long)firsts[i], sl_strerror(rc));
            goto fail;
        }
        l->nseg++;
    }
    for (size_t i = 0; i + 1 < l->nseg; i++) {
        /* A sealed segment may end early (bad frame: reads report the gap as corrupt) but
         * never overlap its successor: that would mean two records with one counter. */
        if (brk_segment_end(l->segs[i]) > brk_segment_first(l->segs[i + 1])) {
            rc = sl_err_set(err, SL_ECORRUPT,
                            "shard log %s: segment %020llu overlaps the next segment", dir,
                            (unsigned long long)brk_segment_first(l->segs[i]));
            goto fail;
        }
    }
    if (l->nseg == 0) {
        rc = brk_segment_create(&l->segs[0], dir, 0);
        if (rc) {
            sl_err_set(err, rc, "shard log %s: create segment: %s", dir, sl_strerror(rc));
            goto fail;
        }
        l->nseg = 1;
        l->dir_dirty = true;
        l->parent_dirty = true;
    }
    for (size_t i = l->nseg; i-- > 0;) {
        if (!brk_segment_empty(l->segs[i])) {
            l->arrival_floor = brk_segment_last_arrival(l->segs[i]);
            break;
        }
    }
    rc = brk_segment_fd(active(l));
    if (rc < 0) {
        sl_err_set(err, rc, "shard log %s: %s", dir, sl_strerror(rc));
        goto fail;
    }
    l->sync_fd = rc;
    rc = 0;
    l->written = l->durable = brk_segment_end(active(l));
    sl_free(firsts);
    *out = l;
    return 0;
fail:
    sl_free(firsts);
    log_free(l);
    return rc;
}

/* ---- group commit ------------------------------------------------------------------------- */

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = fsync(fd) != 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* fsyncs the directory holding dir (so a new shard directory's name is durable). */
static int fsync_parent(const char *dir)
{
    char p[4096];
    size_t n = strlen(dir);
    if (n >= sizeof p) return -ENAMETOOLONG;
    memcpy(p, dir, n + 1);
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0'; /* "a/b/" */
    char *slash = strrchr(p, '/');
    if (!slash) return fsync_dir(".");
    if (slash == p) return fsync_dir("/");
    *slash = '\0';
    return fsync_dir(p);
}

/* Waits until durable >= ticket (and, with force, until nothing written or rolled is left
 * unsynced at the time of the call). Called without the broker's shard lock. */
static int wait_durable(brk_log *l, uint64_t ticket, bool force)
{
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    uint64_t gen_target = l->written;
    if (ticket > gen_target) ticket = gen_target; /* a ticket from the future: all we have */
    bool need_meta = force && (l->npending > 0 || l->dir_dirty || l->parent_dirty);
    for (;;) {
        rc = atomic_load(&l->failed);
        if (rc) break;
        if (l->durable >= ticket && !need_meta) break;
        if (l->syncing) {
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        /* Become the leader for everything written so far. */
        l->syncing = true;
        uint64_t target = l->written;
        int fds[PENDING_SYNC_MAX];
        size_t nfds = l->npending;
        memcpy(fds, l->pending, nfds * sizeof *fds);
        l->npending = 0;
        int fd = l->sync_fd;
        bool dir = l->dir_dirty;
        bool parent = l->parent_dirty;
        l->dir_dirty = l->parent_dirty = false;
        pthread_mutex_unlock(&l->mu);

        int err = 0;
        for (size_t i = 0; i < nfds; i++) {
            if (fdatasync(fds[i]) != 0 && !err) err = -errno;
            close(fds[i]);
        }
        if (fdatasync(fd) != 0 && !err) err = -errno;
        if (dir && !err) err = fsync_dir(l->dir);
        if (parent && !err) err = fsync_parent(l->dir);

        pthread_mutex_lock(&l->mu);
        l->syncing = false;
        if (err) atomic_store(&l->failed, err);
        else if (target > l->durable) l->durable = target;
        need_meta = false; /* this round covered what was pending at the call */
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int brk_log_wait_durable(brk_log *l, uint64_t ticket)
{
    return wait_durable(l, ticket, false);
}

int brk_log_sync(brk_log *l)
{
    pthread_mutex_lock(&l->mu);
    bool idle = l->written == l->durable && l->npending == 0 && !l->dir_dirty &&
                !l->parent_dirty;
    int failed = atomic_load(&l->failed);
    pthread_mutex_unlock(&l->mu);
    if (idle || failed) return failed;
    return wait_durable(l, UINT64_MAX, true);
}

void brk_log_close(brk_log *l)
{
    if (!l) return;
    if (l->fsync != BRK_FSYNC_NO) (void)brk_log_sync(l);
    pthread_mutex_lock(&l->mu);
    while (l->syncing) pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
    /* Lets the next open verify only the tail after the last index entry. Best effort: a
     * missing or stale index only makes that open scan the whole last segment. */
    (void)brk_segment_write_index(active(l));
    log_free(l);
}

/* ---- append and roll ---------------------------------------------------------------------- */

/* Seals the active segment and starts an empty one at the next counter. */
static int roll(brk_log *l)
{
    brk_segment *old = active(l);
    brk_segment *seg = NULL;
    int rc = segs_reserve(l, l->nseg + 1);
    if (rc) return rc;
    pthread_mutex_lock(&l->mu);
    size_t npend = l->npending;
    pthread_mutex_unlock(&l->mu);
    if (npend == PENDING_SYNC_MAX) {
        /* Without a flusher (or waiters) nobody syncs the rolled segments: do it here rather
         * than keep fds open without bound. Only roll adds to the list and rolls are
         * serialised, so afterwards there is room. */
        rc = brk_log_sync(l);
        if (rc) return rc;
    }
    rc = brk_segment_create(&seg, l->dir, brk_segment_end(old));
    if (rc) return rc;
    (void)brk_segment_write_index(old); /* best effort, rebuilt from the log when missing */
    int old_fd = brk_segment_take_fd(old);
    l->segs[l->nseg++] = seg;
    pthread_mutex_lock(&l->mu);
    SL_ASSERT(l->npending < PENDING_SYNC_MAX);
    l->sync_fd = brk_segment_fd(seg);
    if (l->fsync == BRK_FSYNC_NO && !l->syncing) {
        close(old_fd); /* no leader can hold it: leaders snapshot it under mu */
    } else {
        l->pending[l->npending++] = old_fd;
    }
    l->dir_dirty = true;
    pthread_mutex_unlock(&l->mu);
    return 0;
}

int brk_log_append(brk_log *l, const brk_log_rec *recs, size_t n, uint64_t *first_seq,
                   uint64_t *ticket)
{
    int rc = atomic_load(&l->failed);
    if (rc) return rc;
    brk_segment *s = active(l);
    uint64_t first = brk_segment_end(s);
    if (n == 0) {
        *first_seq = first;
        *ticket = first;
        return 0;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += brk_segment_frame_size(recs[i].pk_len, recs[i].data_len);
    if (!brk_segment_empty(s) && brk_segment_size(s) + total > l->seg_bytes) {
        rc = roll(l);
        if (rc) return rc;
        s = active(l);
    }
    rc = brk_segment_append(s, recs, n, &l->arrival_floor, &l->wb);
    if (l->wb.cap > WBUF_KEEP_MAX) {
        sl_free(l->wb.p);
        l->wb.p = NULL;
        l->wb.cap = 0;
    }
    if (rc) return rc;
    uint64_t end = brk_segment_end(s);
    pthread_mutex_lock(&l->mu);
    l->written = end;
    pthread_mutex_unlock(&l->mu);
    *first_seq = first;
    *ticket = end;
    return 0;
}

/* ---- reads -------------------------------------------------------------------------------- */

/* Keeps at most one sealed segment's fd open per log (plus the active one). */
static void use_segment(brk_log *l, brk_segment *s)
{
    if (s == active(l) || s == l->read_seg) return;
    if (l->read_seg) brk_segment_drop_fd(l->read_seg);
    l->read_seg = s;
}

/* Index of the segment holding counter seq (the first one when seq precedes them all). */
static size_t seg_for(const brk_log *l, uint64_t seq)
{
    size_t lo = 0, hi = l->nseg;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (brk_segment_first(l->segs[mid]) <= seq) lo = mid;
        else hi = mid;
    }
    return lo;
}

int brk_log_read(brk_log *l, uint64_t from_seq, int64_t min_arrival_ms, uint32_t max_records,
                 size_t max_bytes, brk_log_batch *out)
{
    size_t n0 = out->n, len0 = out->len;
    brk_segment_budget b = {.recs_left = max_records, .bytes_left = max_bytes};
    int rc = 0;
    if (max_records == 0) return 0;
    for (size_t i = seg_for(l, from_seq); i < l->nseg && !b.full; i++) {
        brk_segment *s = l->segs[i];
        uint64_t lo = from_seq > brk_segment_first(s) ? from_seq : brk_segment_first(s);
        if (lo < brk_segment_end(s)) {
            use_segment(l, s);
            rc = brk_segment_read(s, lo, min_arrival_ms, &b, out);
            if (rc || b.full) break;
        }
        if (i + 1 < l->nseg) {
            /* Counters [end, next first) should be here but are not: a sealed segment with a
             * bad frame. Harmless when everything after it is already past retention. */
            const brk_segment *nx = l->segs[i + 1];
            bool gap = brk_segment_end(s) < brk_segment_first(nx);
            bool expired = !brk_segment_empty(nx) &&
                           brk_segment_first_arrival(nx) < min_arrival_ms;
            if (gap && !expired) {
                if (b.taken == 0) rc = SL_ECORRUPT;
                break;
            }
        }
    }
    if (rc) {
        out->n = n0;
        out->len = len0;
    }
    return rc;
}

void brk_log_batch_free(brk_log_batch *b)
{
    if (!b) return;
    sl_free(b->e);
    sl_free(b->buf);
    *b = (brk_log_batch){0};
}

uint64_t brk_log_next_seq(const brk_log *l)
{
    return brk_segment_end(active(l));
}

bool brk_log_last(const brk_log *l, uint64_t *seq, int64_t *arrival_ms)
{
    for (size_t i = l->nseg; i-- > 0;) {
        const brk_segment *s = l->segs[i];
        if (brk_segment_empty(s)) continue;
        if (seq) *seq = brk_segment_end(s) - 1;
        if (arrival_ms) *arrival_ms = brk_segment_last_arrival(s);
        return true;
    }
    return false;
}

uint64_t brk_log_seek_time(brk_log *l, int64_t ts_ms)
{
    for (size_t i = 0; i < l->nseg; i++) {
        brk_segment *s = l->segs[i];
        if (brk_segment_empty(s) || brk_segment_last_arrival(s) < ts_ms) continue;
        int rc;
        use_segment(l, s);
        /* On a read error the segment gives a lower bound; reads then skip by arrival. */
        return brk_segment_seek_time(s, ts_ms, &rc);
    }
    return brk_log_next_seq(l);
}

uint64_t brk_log_first_seq(brk_log *l, int64_t min_arrival_ms)
{
    return brk_log_seek_time(l, min_arrival_ms);
}

/* ---- retention ---------------------------------------------------------------------------- */

int brk_log_retain(brk_log *l, int64_t cutoff_ms)
{
    brk_segment *act = active(l);
    int rc = 0;
    if (!brk_segment_empty(act) && brk_segment_last_arrival(act) < cutoff_ms) {
        /* Everything is expired: an empty segment named after the next counter keeps it. */
        rc = roll(l);
        if (rc) return rc;
    }
    size_t drop = 0;
    while (drop + 1 < l->nseg) {
        brk_segment *s = l->segs[drop];
        if (!brk_segment_empty(s) && brk_segment_last_arrival(s) >= cutoff_ms) break;
        if (l->read_seg == s) l->read_seg = NULL;
        int r = brk_segment_remove(s);
        if (r && !rc) rc = r;
        drop++;
    }
    if (drop) {
        memmove(l->segs, l->segs + drop, (l->nseg - drop) * sizeof *l->segs);
        l->nseg -= drop;
    }
    return rc;
}

uint64_t brk_log_disk_bytes(const brk_log *l)
{
    uint64_t n = 0;
    for (size_t i = 0; i < l->nseg; i++) n += brk_segment_file_size(l->segs[i]);
    return n;
}

size_t brk_log_segments(const brk_log *l)
{
    return l->nseg;
}

int brk_log_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -errno;
    int rc = 0;
    char path[4096];
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) {
            rc = -ENAMETOOLONG;
            continue;
        }
        if (unlink(path) != 0 && errno != ENOENT && !rc) rc = -errno;
    }
    closedir(d);
    if (rmdir(dir) != 0 && errno != ENOENT && !rc) rc = -errno;
    return rc;
}
