/* broker.c — the broker facade: every function of broker.h.
 *
 * Locking is described in broker_int.h. Choices where AWS is silent (SPEC "decisions"):
 *  - Status transitions are derived from timestamps (no timer threads): a stream is CREATING /
 *    UPDATING until `until_ms`, then reads as ACTIVE; a DELETING stream reads as gone after it.
 *    Control-plane calls and brk_maintain persist finished transitions and reap deleted streams.
 *  - PutRecord/PutRecords on a CREATING (or DELETING) stream fail with ResourceNotFound, like
 *    kinesalite; reads need only the stream to exist.
 *  - A closed shard's EndingSequenceNumber is the maximum of its sequence space (seqno.h).
 *  - GetRecords returns a null NextShardIterator (plus ChildShards) only when the iterator of a
 *    closed shard has nothing left to read, never in the same response as records.
 */
#include "broker/broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "broker/broker_int.h"

/* ---- small helpers ------------------------------------------------------------------------- */

int64_t brk__now(const brk_broker *b)
{
    return b->opts.clock ? b->opts.clock(b->opts.clock_ctx) : sl_now_ms();
}

int64_t brk__min_arrival(const brk_stream *st, int64_t now_ms)
{
    int64_t h = now_ms - (int64_t)st->retention_hours * 3600 * 1000;
    return h > st->trim_floor_ms ? h : st->trim_floor_ms;
}

const char *brk_region(const brk_broker *b) { return b->region; }
const char *brk_account(const brk_broker *b) { return b->account; }

const char *brk_status_name(enum brk_stream_status s)
{
    switch (s) {
    case BRK_CREATING: return "CREATING";
    case BRK_ACTIVE: return "ACTIVE";
    case BRK_UPDATING: return "UPDATING";
    case BRK_DELETING: return "DELETING";
    }
    return "UNKNOWN";
}

const char *brk_mode_name(enum brk_stream_mode m)
{
    return m == BRK_ON_DEMAND ? "ON_DEMAND" : "PROVISIONED";
}


static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -errno;
    return 0;
}

/* Counts UTF-8 code points (continuation bytes are not counted). */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static size_t open_pos(const brk_stream *st, brk_u128 k)
{
    size_t lo = 0;
    size_t hi = st->nopen;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const brk_shard *s = st->open[mid];
        if (k < s->start) hi = mid;
        else if (k > s->end) lo = mid + 1;
        else return mid;
    }
    SL_ASSERT(!"open shards must tile the hash key space");
    return 0;
}

/* ---- open / close / maintenance ------------------------------------------------------------ */

static void sync_all(brk_broker *b)
{
    rd_lock(b);
    for (size_t i = 0; i < b->nstreams; i++) {
        brk_stream *st = b->streams[i];
        for (size_t j = 0; j < st->nshards; j++) {
            brk_shard *sh = st->shards[j];
            pthread_mutex_lock(&sh->mu);
            brk_log *l = sh->log;
            pthread_mutex_unlock(&sh->mu);
            if (l) brk_log_sync(l);
        }
    }
    rw_unlock(b);
}

/* BRK_FSYNC_EVERYSEC: fsync every shard with pending writes about once a second. */
static void *flusher_main(void *arg)
{
    brk_broker *b = arg;
    pthread_mutex_lock(&b->fmu);
    while (!b->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&b->fcv, &b->fmu, &ts);
        if (b->stopping) break;
        pthread_mutex_unlock(&b->fmu);
        sync_all(b);
        pthread_mutex_lock(&b->fmu);
    }
    pthread_mutex_unlock(&b->fmu);
    return NULL;
}

/* Many shards each hold a segment fd: lift the soft descriptor limit to the hard one, as Redis
 * does for its clients (adjustOpenFilesLimit). */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = sl_malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

int brk_open(brk_broker **out, const brk_opts *opts, sl_err *err)
{
    brk_cat_stream *rows = NULL;
    size_t nrows = 0;
    pthread_rwlockattr_t ra;
    int rc;
    if (!opts || !opts->data_dir || !*opts->data_dir)
        return sl_err_set(err, SL_EINVAL, "brk_open: data_dir is required");
    brk_broker *b = sl_calloc(1, sizeof *b);
    if (!b) return sl_err_set(err, SL_ENOMEM, "out of memory");
    b->opts = *opts;
    b->data_dir = sl_strdup(opts->data_dir);
    b->region = sl_strdup(opts->region ? opts->region : "us-east-1");
    b->account = sl_strdup(opts->account ? opts->account : "000000000000");
    b->streams_dir = b->data_dir ? path_join(b->data_dir, "streams") : NULL;
    b->opts.data_dir = b->data_dir;
    b->opts.region = b->region;
    b->opts.account = b->account;
    if (!b->opts.shard_quota) b->opts.shard_quota = BRK_DEFAULT_QUOTA;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&b->rw, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&b->fmu, NULL);
    pthread_cond_init(&b->fcv, NULL);
    pthread_mutex_init(&b->wmu, NULL);
    pthread_cond_init(&b->wcv, NULL);
    if (!b->data_dir || !b->region || !b->account || !b->streams_dir) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    raise_fd_limit();
    rc = mkdir_p(b->streams_dir);
    if (rc) {
        rc = sl_err_set(err, rc, "cannot create %s: %s", b->streams_dir, sl_strerror(rc));
        goto fail;
    }
    char *cpath = path_join(b->data_dir, "catalog.db");
    if (!cpath) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    rc = brk_catalog_open(&b->cat, cpath, err);
    sl_free(cpath);
    if (rc) goto fail;
    rc = brk_catalog_secret(b->cat, "iterator", b->secret, sizeof b->secret);
    if (rc) {
        rc = sl_err_set(err, rc, "catalog: cannot read the iterator secret");
        goto fail;
    }
    rc = brk_catalog_streams(b->cat, &rows, &nrows);
    if (rc) {
        rc = sl_err_set(err, rc, "catalog: cannot list streams");
        goto fail;
    }
    b->streams = sl_calloc(nrows ? nrows : 1, sizeof *b->streams);
    b->cap = nrows ? nrows : 1;
    if (!b->streams) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nrows; i++) {
        brk_stream *st = NULL;
        rc = brk__stream_load(b, &rows[i], &st);
        if (rc) {
            rc = sl_err_set(err, rc, "catalog: stream %s: %s", rows[i].name, sl_strerror(rc));
            goto fail;
        }
        b->streams[b->nstreams++] = st;
    }
    sl_free(rows);
    rows = NULL;
    brk__settle(b, brk__now(b));
    /* Recover the tail of every open shard that has a log now, so a torn write is found at open
     * rather than at the first append. Closed shards are opened when first read. */
    for (size_t i = 0; i < b->nstreams; i++) {
        brk_stream *st = b->streams[i];
        for (size_t j = 0; j < st->nopen; j++) {
            brk_log *l;
            brk_shard *sh = st->open[j];
            rc = brk__shard_log(b, sh, false, &l);
            if (rc) {
                rc = sl_err_set(err, rc, "shard %s/%s: %s", st->name, sh->id, sl_strerror(rc));
                goto fail;
            }
        }
    }
    if (b->opts.fsync == BRK_FSYNC_EVERYSEC) {
        if (pthread_create(&b->flusher, NULL, flusher_main, b) != 0) {
            rc = sl_err_set(err, SL_EINTERNAL, "cannot start the fsync thread");
            goto fail;
        }
        b->flusher_on = true;
    }
    *out = b;
    return 0;
fail:
    sl_free(rows);
    brk_close(b);
    return rc;
}

void brk_close(brk_broker *b)
{
    if (!b) return;
    if (b->flusher_on) {
        pthread_mutex_lock(&b->fmu);
        b->stopping = true;
        pthread_cond_broadcast(&b->fcv);
        pthread_mutex_unlock(&b->fmu);
        pthread_join(b->flusher, NULL);
    }
    for (size_t i = 0; i < b->nstreams; i++) {
        brk_stream *st = b->streams[i];
        for (size_t j = 0; j < st->nshards; j++)
            if (st->shards[j]->log) brk_log_sync(st->shards[j]->log);
        brk__stream_free(st);
    }
    sl_free(b->streams);
    brk_catalog_close(b->cat);
    struct brk_watch *w = b->watches;
    while (w) {
        struct brk_watch *next = w->next;
        sl_free(w);
        w = next;
    }
    pthread_rwlock_destroy(&b->rw);
    pthread_mutex_destroy(&b->fmu);
    pthread_cond_destroy(&b->fcv);
    pthread_mutex_destroy(&b->wmu);
    pthread_cond_destroy(&b->wcv);
    sl_free(b->streams_dir);
    sl_free(b->data_dir);
    sl_free(b->region);
    sl_free(b->account);
    sl_free(b);
}

void brk_maintain(brk_broker *b)
{
    int64_t now = brk__now(b);
    bool due = false;
    rd_lock(b);
    for (size_t i = 0; i < b->nstreams && !due; i++)
        due = brk__stream_status(b->streams[i], now) != b->streams[i]->status;
    rw_unlock(b);
    if (due) {
        wr_lock(b);
        brk__settle(b, now);
        rw_unlock(b);
    }
    /* Retention: whole expired segments go (shard_log keeps the counter). */
    rd_lock(b);
    for (size_t i = 0; i < b->nstreams; i++) {
        brk_stream *st = b->streams[i];
        int64_t cutoff = brk__min_arrival(st, now);
        for (size_t j = 0; j < st->nshards; j++) {
            brk_shard *sh = st->shards[j];
            brk_log *l = NULL;
            uint64_t last;
            int64_t arrival;
            pthread_mutex_lock(&sh->mu);
            if (sh->closed_ms && sh->closed_ms < cutoff) {
                /* An EXPIRED shard (closed, every record past retention): its files go. The
                 * shard stays in the catalog for lineage; reads of it find nothing. */
                if (brk__shard_log(b, sh, false, &l) == 0 && l &&
                    (!brk_log_last(l, &last, &arrival) || arrival < cutoff)) {
                    brk_log_close(l);
                    sh->log = NULL;
                    brk_log_remove_dir(sh->dir);
                }
            } else if (sh->log) {
                brk_log_retain(sh->log, cutoff);
            }
            pthread_mutex_unlock(&sh->mu);
        }
    }
    rw_unlock(b);
}

void brk_get_stats(brk_broker *b, brk_stats *out)
{
    int64_t now = brk__now(b);
    memset(out, 0, sizeof *out);
    rd_lock(b);
    for (size_t i = 0; i < b->nstreams; i++)
        if (brk__stream_status(b->streams[i], now) != BRK_GONE) out->streams++;
    out->open_shards = brk__open_shards(b, now);
    rw_unlock(b);
    out->records_appended = __atomic_load_n(&b->records_appended, __ATOMIC_RELAXED);
    out->bytes_appended = __atomic_load_n(&b->bytes_appended, __ATOMIC_RELAXED);
}

void brk_names_free(char **names, size_t n)
{
    if (!names) return;
    for (size_t i = 0; i < n; i++) sl_free(names[i]);
    sl_free(names);
}

void brk_tags_free(brk_tag *tags, size_t n)
{
    if (!tags) return;
    for (size_t i = 0; i < n; i++) {
        sl_free(tags[i].key);
        sl_free(tags[i].value);
    }
    sl_free(tags);
}

/* ---- appends ------------------------------------------------------------------------------- */

/* Field path prefix for validation messages; formatted only when an error is reported. */
static const char *at_of(long idx, char at[48])
{
    if (idx < 0) return "";
    snprintf(at, 48, "records.%ld.member.", idx + 1);
    return at;
}

/* Schema checks of one entry (ValidationException), done before the stream is looked up as AWS
 * does. idx is the record's index in PutRecords (-1 for PutRecord): messages name the field
 * "records.N.member.x" (N 1-based) or "x". */
static int check_schema(const brk_put_entry *e, long idx, sl_err *err)
{
    char at[48];
    brk_u128 hk;
    size_t pkc = e->partition_key ? utf8_chars(e->partition_key, e->pk_len) : 0;
    if (!e->data && e->data_len)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value null at "
                          "'%sdata' failed to satisfy constraint: Member must not be null",
                          at_of(idx, at));
    if (!e->partition_key || pkc < 1)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%s' at "
                          "'%spartitionKey' failed to satisfy constraint: Member must have length "
                          "greater than or equal to 1", e->partition_key ? "" : "null",
                          at_of(idx, at));
    if (pkc > 256)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%.*s' at "
                          "'%spartitionKey' failed to satisfy constraint: Member must have length "
                          "less than or equal to 256", (int)(e->pk_len > 600 ? 600 : e->pk_len),
                          e->partition_key, at_of(idx, at));
    if (e->explicit_hash_key && brk_hashkey_parse(e->explicit_hash_key, &hk) == SL_EVALIDATION)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%.64s' at "
                          "'%sexplicitHashKey' failed to satisfy constraint: Member must satisfy "
                          "regular expression pattern: 0|([1-9]\\d{0,38})", e->explicit_hash_key,
                          at_of(idx, at));
    return 0;
}

/* Size limits of the stream and the hash-key range; computes the routing hash key. */
static int check_entry(const brk_put_entry *e, uint32_t max_bytes, long idx, brk_u128 *hk,
                       sl_err *err)
{
    char at[48];
    if (e->data_len > max_bytes)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value "
                          "'java.nio.HeapByteBuffer[pos=0 lim=%zu cap=%zu]' at '%sdata' failed to "
                          "satisfy constraint: Member must have length less than or equal to %u",
                          e->data_len, e->data_len, at_of(idx, at), max_bytes);
    if (e->explicit_hash_key && brk_hashkey_parse(e->explicit_hash_key, hk) != 0)
        return sl_err_set(err, SL_EINVAL, "Invalid ExplicitHashKey. ExplicitHashKey must be in the "
                          "range: [0, 2^128-1]. Specified value was %s", e->explicit_hash_key);
    if (e->data_len + e->pk_len > max_bytes)
        return sl_err_set(err, SL_EINVAL, "Record size (data plus partition key) of %zu bytes "
                          "exceeds the maximum record size of %u bytes.", e->data_len + e->pk_len,
                          max_bytes);
    if (!e->explicit_hash_key) *hk = brk_hashkey_md5(e->partition_key, e->pk_len);
    return 0;
}

static void throttled_result(const brk_broker *b, const brk_stream *st, const brk_shard *sh,
                             brk_put_result *r)
{
    r->code = SL_ETHROTTLED;
    snprintf(r->error_code, sizeof r->error_code, "ProvisionedThroughputExceededException");
    snprintf(r->error_message, sizeof r->error_message,
             "Rate exceeded for shard %s in stream %s under account %s.", sh->id, st->name,
             b->account);
}

static void internal_result(brk_put_result *r, int code)
{
    r->code = code ? code : SL_EINTERNAL;
    snprintf(r->error_code, sizeof r->error_code, "InternalFailure");
    snprintf(r->error_message, sizeof r->error_message, "Internal Service Failure");
}

/* Per-call scratch for grouping a batch by shard: one allocation, no per-record malloc. */
typedef struct put_group {
    brk_shard *sh;
    brk_log *log;
    uint64_t ticket;
    uint32_t first;   /* offset in order[] */
    uint32_t count;
    bool appended;
} put_group;

/* Appends validated entries (hash keys in hk[]) to their shards: one brk_log_append per shard,
 * request order kept within a shard. Called with rw shared; waits for durability (ALWAYS) after
 * the shard locks are released. Touched shard ids go to touched[] for the watch callbacks. */
static int append_batch(brk_broker *b, brk_stream *st, const brk_put_entry *e, const brk_u128 *hk,
                        size_t n, brk_put_result *res, size_t *failed,
                        char (*touched)[BRK_SHARDID_STRLEN], size_t *ntouched)
{
    size_t ng = 0;
    size_t nfail = 0;
    size_t bytes = 0;
    size_t recs_ok = 0;
    /* layout: route[n] | order[n] | groups[n] | recs[n] */
    size_t need = n * (2 * sizeof(uint32_t) + sizeof(put_group) + sizeof(brk_log_rec));
    _Alignas(max_align_t) uint8_t stackbuf[2048];
    uint8_t *mem = need <= sizeof stackbuf ? stackbuf : sl_malloc(need);
    if (!mem) return SL_ENOMEM;
    put_group *groups = (put_group *)mem;
    brk_log_rec *recs = (brk_log_rec *)(mem + n * sizeof(put_group));
    uint32_t *route = (uint32_t *)(mem + n * (sizeof(put_group) + sizeof(brk_log_rec)));
    uint32_t *order = route + n;

    /* Route, then group: route[i] is the group number; groups appear in first-seen order. */
    for (size_t i = 0; i < n; i++) {
        brk_shard *sh = st->open[open_pos(st, hk[i])];
        size_t g = 0;
        /* Few distinct shards per batch is the common case; look back at the previous record's
         * group first, then scan. */
        if (i > 0 && groups[route[i - 1]].sh == sh) {
            g = route[i - 1];
        } else {
            for (g = 0; g < ng && groups[g].sh != sh; g++) {
            }
            if (g == ng) {
                memset(&groups[ng], 0, sizeof groups[ng]);
                groups[ng++].sh = sh;
            }
        }
        route[i] = (uint32_t)g;
        groups[g].count++;
    }
    uint32_t off = 0;
    for (size_t g = 0; g < ng; g++) {
        groups[g].first = off;
        off += groups[g].count;
        groups[g].count = 0;
    }
    for (size_t i = 0; i < n; i++) {
        put_group *gr = &groups[route[i]];
        order[gr->first + gr->count++] = (uint32_t)i;
    }

    int64_t now = brk__now(b);
    for (size_t g = 0; g < ng; g++) {
        put_group *gr = &groups[g];
        brk_shard *sh = gr->sh;
        uint32_t *idx = order + gr->first;
        size_t m = 0;
        pthread_mutex_lock(&sh->mu);
        int64_t arrival = now > sh->last_arrival ? now : sh->last_arrival;
        for (uint32_t k = 0; k < gr->count; k++) {
            const brk_put_entry *pe = &e[idx[k]];
            double sz = (double)(pe->data_len + pe->pk_len);
            if (b->opts.throttle) {
                /* Both limits must allow the record; take from neither when one refuses. */
                if (!brk_bucket_take(&sh->w_recs, 1.0, now)) {
                    throttled_result(b, st, sh, &res[idx[k]]);
                    continue;
                }
                if (!brk_bucket_take(&sh->w_bytes, sz, now)) {
                    brk_bucket_charge(&sh->w_recs, -1.0, now);
                    throttled_result(b, st, sh, &res[idx[k]]);
                    continue;
                }
            }
            recs[m].arrival_ms = arrival;
            recs[m].pk = pe->partition_key;
            recs[m].pk_len = pe->pk_len;
            recs[m].data = pe->data;
            recs[m].data_len = pe->data_len;
            idx[m] = idx[k]; /* compact: idx[0..m) are the records being appended */
            m++;
        }
        uint64_t first = 0;
        int rc = 0;
        if (m > 0) {
            rc = brk__shard_log(b, sh, true, &gr->log);
            if (!rc) rc = brk_log_append(gr->log, recs, m, &first, &gr->ticket);
            if (!rc) sh->last_arrival = arrival;
        }
        pthread_mutex_unlock(&sh->mu);
        for (size_t k = 0; k < m; k++) {
            brk_put_result *r = &res[idx[k]];
            if (rc) {
                internal_result(r, rc);
                continue;
            }
            r->code = 0;
            memcpy(r->shard_id, sh->id, sizeof r->shard_id);
            if (k == 0) {
                brk_seq_render(sh->prefix, first, r->seq);
            } else {
                memcpy(r->seq, res[idx[k - 1]].seq, BRK_SEQ_STRLEN);
                brk_seq_increment(r->seq);
            }
            bytes += e[idx[k]].data_len + e[idx[k]].pk_len;
        }
        if (!rc && m > 0) {
            gr->appended = true;
            gr->count = (uint32_t)m;
            recs_ok += m;
        } else {
            gr->count = (uint32_t)m; /* m failed records, counted below */
        }
    }
    /* Group commit (BRK_FSYNC_ALWAYS): wait outside the shard locks so concurrent appenders
     * share one fsync. A failed fsync fails the records it covered. */
    for (size_t g = 0; g < ng; g++) {
        put_group *gr = &groups[g];
        if (!gr->appended || b->opts.fsync != BRK_FSYNC_ALWAYS) continue;
        int rc = brk_log_wait_durable(gr->log, gr->ticket);
        if (rc) {
            for (uint32_t k = 0; k < gr->count; k++)
                internal_result(&res[order[gr->first + k]], rc);
            recs_ok -= gr->count;
            gr->appended = false;
        }
    }
    for (size_t i = 0; i < n; i++) nfail += res[i].code != 0;
    *ntouched = 0;
    for (size_t g = 0; g < ng && touched; g++)
        if (groups[g].appended) memcpy(touched[(*ntouched)++], groups[g].sh->id,
                                       BRK_SHARDID_STRLEN);
    __atomic_add_fetch(&b->records_appended, (uint64_t)recs_ok, __ATOMIC_RELAXED);
    __atomic_add_fetch(&b->bytes_appended, (uint64_t)bytes, __ATOMIC_RELAXED);
    *failed = nfail;
    if (mem != stackbuf) sl_free(mem);
    return 0;
}

/* Looks the stream up for writing: it must exist and be ACTIVE or UPDATING. */
static brk_stream *writable_stream(brk_broker *b, const char *name, sl_err *err, int *rc)
{
    int64_t now = brk__now(b);
    brk_stream *st = brk__stream_find(b, name, now);
    int live = st ? brk__stream_status(st, now) : BRK_GONE;
    if (!st || (live != BRK_ACTIVE && live != BRK_UPDATING)) {
        *rc = brk__err_stream_not_found(b, err, name);
        return NULL;
    }
    return st;
}

static void notify_touched(brk_broker *b, const char *stream, char (*ids)[BRK_SHARDID_STRLEN],
                           size_t n)
{
    for (size_t i = 0; i < n; i++) brk__notify(b, stream, ids[i], false);
}

int brk_put_record(brk_broker *b, const char *stream, const brk_put_entry *e,
                   const char *seq_for_ordering, brk_put_result *res, sl_err *err)
{
    brk_u128 hk = 0;
    size_t failed = 0;
    char touched[1][BRK_SHARDID_STRLEN];
    size_t ntouched = 0;
    brk_put_result r;
    int rc = brk__check_stream_name(stream, err);
    if (rc) return rc;
    if (!e) return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value null at "
                              "'data' failed to satisfy constraint: Member must not be null");
    rc = check_schema(e, -1, err);
    if (rc) return rc;
    rd_lock(b);
    brk_stream *st = writable_stream(b, stream, err, &rc);
    if (!st) goto out;
    rc = check_entry(e, st->max_record_kib * 1024u, -1, &hk, err);
    if (rc) goto out;
    if (seq_for_ordering) {
        /* The new record gets a greater number anyway (per-shard counter; children above
         * parents); the value only has to be a sequence number. */
        brk_seq_parts sp;
        if (brk_seq_parse(seq_for_ordering, &sp) != 0) {
            rc = sl_err_set(err, SL_EINVAL, "ExclusiveMinimumSequenceNumber %.200s used in "
                            "PutRecord on stream %s under account %s is invalid.",
                            seq_for_ordering, stream, b->account);
            goto out;
        }
    }
    memset(&r, 0, sizeof r);
    rc = append_batch(b, st, e, &hk, 1, &r, &failed, touched, &ntouched);
    if (rc) {
        rc = sl_err_set(err, rc, "Internal Service Failure");
        goto out;
    }
    if (r.code == SL_ETHROTTLED) {
        rc = sl_err_set(err, SL_ETHROTTLED, "%s", r.error_message);
    } else if (r.code) {
        rc = sl_err_set(err, r.code, "Internal Service Failure");
    } else if (res) {
        *res = r;
    }
out:
    rw_unlock(b);
    notify_touched(b, stream, touched, ntouched);
    return rc;
}

int brk_put_records(brk_broker *b, const char *stream, const brk_put_entry *e, size_t n,
                    brk_put_result *res, size_t *failed, sl_err *err)
{
    brk_u128 hk_stack[64];
    brk_u128 *hk = hk_stack;
    char (*touched)[BRK_SHARDID_STRLEN] = NULL;
    size_t ntouched = 0;
    size_t nfailed = 0;
    int rc = brk__check_stream_name(stream, err);
    if (rc) return rc;
    if (n >= 1 && e && !res) return sl_err_set(err, SL_EINVAL, "brk_put_records: no result array");
    if (n < 1 || !e)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '[]' at "
                          "'records' failed to satisfy constraint: Member must have length "
                          "greater than or equal to 1");
    if (n > BRK_PUTS_MAX_RECORDS)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '[...]' at "
                          "'records' failed to satisfy constraint: Member must have length less "
                          "than or equal to %d", BRK_PUTS_MAX_RECORDS);
    for (size_t i = 0; i < n; i++) {
        rc = check_schema(&e[i], (long)i, err);
        if (rc) return rc;
    }
    if (n > sizeof hk_stack / sizeof hk_stack[0]) {
        hk = sl_malloc(n * sizeof *hk);
        if (!hk) return sl_err_set(err, SL_ENOMEM, "Internal Service Failure");
    }
    rd_lock(b);
    brk_stream *st = writable_stream(b, stream, err, &rc);
    if (!st) goto out;
    size_t total = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = check_entry(&e[i], st->max_record_kib * 1024u, (long)i, &hk[i], err);
        total += e[i].data_len + e[i].pk_len;
    }
    if (rc) goto out;
    if (total > BRK_PUTS_MAX_BYTES) {
        rc = sl_err_set(err, SL_EINVAL, "Records size exceeds 5 MB limit");
        goto out;
    }
    if (__atomic_load_n(&b->nwatches, __ATOMIC_ACQUIRE) > 0)
        touched = sl_malloc(n * sizeof *touched);
    memset(res, 0, n * sizeof *res);
    rc = append_batch(b, st, e, hk, n, res, &nfailed, touched, &ntouched);
    if (rc) {
        rc = sl_err_set(err, rc, "Internal Service Failure");
        goto out;
    }
    if (failed) *failed = nfailed;
out:
    rw_unlock(b);
    if (touched) notify_touched(b, stream, touched, ntouched);
    sl_free(touched);
    if (hk != hk_stack) sl_free(hk);
    return rc;
}

/* ---- reads --------------------------------------------------------------------------------- */

static const char *iter_type_name(enum brk_iter_type t)
{
    switch (t) {
    case BRK_AT_SEQUENCE_NUMBER: return "AT_SEQUENCE_NUMBER";
    case BRK_AFTER_SEQUENCE_NUMBER: return "AFTER_SEQUENCE_NUMBER";
    case BRK_TRIM_HORIZON: return "TRIM_HORIZON";
    case BRK_LATEST: return "LATEST";
    case BRK_AT_TIMESTAMP: return "AT_TIMESTAMP";
    }
    return "UNKNOWN";
}

/* Resolves stream + shard id for a read (rw shared held). Unknown stream or shard:
 * ResourceNotFound with the shard message (kinesalite's GetShardIterator wording). */
static int read_target(brk_broker *b, const char *stream, const char *shard_id, int64_t now,
                       brk_stream **stp, brk_shard **shp, sl_err *err)
{
    uint32_t idx;
    if (!brk__shard_parse_id(shard_id, &idx))
        return sl_err_set(err, SL_ENOTFOUND, "Could not find shard %s in stream %s under account "
                          "%s.", shard_id ? shard_id : "null", stream, b->account);
    char id[BRK_SHARDID_STRLEN];
    brk__shard_format_id(idx, id);
    brk_stream *st = brk__stream_find(b, stream, now);
    if (!st || idx >= st->nshards) return brk__err_shard_not_found(b, err, stream, id);
    *stp = st;
    *shp = st->shards[idx];
    return 0;
}

/* Parses a sequence number given for shard sh of st (GetShardIterator wording). */
static int check_seq(brk_broker *b, const brk_stream *st, const brk_shard *sh, const char *seq,
                     const char *op, brk_seq_parts *sp, sl_err *err)
{
    if (brk_seq_parse(seq, sp) != 0)
        return sl_err_set(err, SL_EINVAL, "StartingSequenceNumber %.200s used in %s on shard %s in "
                          "stream %s under account %s is invalid.", seq, op, sh->id, st->name,
                          b->account);
    if (sp->shard != sh->index) {
        char other[BRK_SHARDID_STRLEN];
        brk__shard_format_id(sp->shard, other);
        return sl_err_set(err, SL_EINVAL, "Invalid StartingSequenceNumber. It encodes %s, while it "
                          "was used in a call to a shard with %s", other, sh->id);
    }
    if (sp->stream_created_ms != st->created_ms)
        return sl_err_set(err, SL_EINVAL, "StartingSequenceNumber %s used in %s on shard %s in "
                          "stream %s under account %s is invalid because it did not come from "
                          "this stream.", seq, op, sh->id, st->name, b->account);
    return 0;
}

static int throttled_err(brk_broker *b, const brk_stream *st, const brk_shard *sh, sl_err *err)
{
    return sl_err_set(err, SL_ETHROTTLED, "Rate exceeded for shard %s in stream %s under account "
                      "%s.", sh->id, st->name, b->account);
}

int brk_get_iterator(brk_broker *b, const char *stream, const char *shard_id,
                     enum brk_iter_type type, const char *seq, bool has_timestamp,
                     int64_t timestamp_ms, char iterator[BRK_ITER_MAX], sl_err *err)
{
    brk_stream *st = NULL;
    brk_shard *sh = NULL;
    brk_seq_parts sp;
    brk_log *l = NULL;
    int rc = brk__check_stream_name(stream, err);
    if (rc) return rc;
    if (type < BRK_AT_SEQUENCE_NUMBER || type > BRK_AT_TIMESTAMP)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%d' at "
                          "'shardIteratorType' failed to satisfy constraint: Member must satisfy "
                          "enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, "
                          "AT_TIMESTAMP, TRIM_HORIZON, LATEST]", (int)type);
    bool wants_seq = type == BRK_AT_SEQUENCE_NUMBER || type == BRK_AFTER_SEQUENCE_NUMBER;
    if (seq && *seq == '\0') seq = NULL;
    if (!wants_seq && seq)
        return sl_err_set(err, SL_EINVAL, "Must either specify (1) AT_SEQUENCE_NUMBER or "
                          "AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or "
                          "LATEST and no StartingSequenceNumber. Request specified %s and also a "
                          "StartingSequenceNumber.", iter_type_name(type));
    if (wants_seq && !seq)
        return sl_err_set(err, SL_EINVAL, "Must either specify (1) AT_SEQUENCE_NUMBER or "
                          "AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or "
                          "LATEST and no StartingSequenceNumber. Request specified %s and no "
                          "StartingSequenceNumber.", iter_type_name(type));
    if (type == BRK_AT_TIMESTAMP && !has_timestamp)
        return sl_err_set(err, SL_EINVAL, "Must specify timestampInMillis parameter for iterator "
                          "of type AT_TIMESTAMP. Current request has no timestamp parameter.");
    rd_lock(b);
    int64_t now = brk__now(b);
    rc = read_target(b, stream, shard_id, now, &st, &sh, err);
    if (rc) goto out;
    if (wants_seq) {
        rc = check_seq(b, st, sh, seq, "GetShardIterator", &sp, err);
        if (rc) goto out;
        if (type == BRK_AFTER_SEQUENCE_NUMBER && sp.counter == BRK_SEQ_END) {
            rc = sl_err_set(err, SL_EINVAL, "Invalid SequenceNumber for ShardIteratorType "
                            "AFTER_SEQUENCE_NUMBER, SequenceNumber has reached max possible value "
                            "for the shard.");
            goto out;
        }
        if (sp.counter == BRK_SEQ_END && sh->closed_ms == 0) {
            /* Only a closed shard has an EndingSequenceNumber. */
            rc = sl_err_set(err, SL_EINVAL, "StartingSequenceNumber %s used in GetShardIterator on "
                            "shard %s in stream %s under account %s is invalid.", seq, sh->id,
                            st->name, b->account);
            goto out;
        }
    }
    if (type == BRK_AT_TIMESTAMP && timestamp_ms > now) {
        rc = sl_err_set(err, SL_EINVAL, "The timestampInMillis parameter cannot be greater than "
                        "the currentTimestampInMillis. timestampInMillis: %lld, "
                        "currentTimestampInMillis: %lld", (long long)timestamp_ms, (long long)now);
        goto out;
    }
    brk_iter_pos p;
    memset(&p, 0, sizeof p);
    pthread_mutex_lock(&sh->mu);
    if (b->opts.throttle && !brk_bucket_take(&sh->it_calls, 1.0, now)) {
        pthread_mutex_unlock(&sh->mu);
        rc = throttled_err(b, st, sh, err);
        goto out;
    }
    rc = brk__shard_log(b, sh, false, &l);
    if (!rc) {
        int64_t horizon = brk__min_arrival(st, now);
        switch (type) {
        case BRK_TRIM_HORIZON: p.position = l ? brk_log_first_seq(l, horizon) : 0; break;
        case BRK_LATEST: p.position = l ? brk_log_next_seq(l) : 0; break;
        case BRK_AT_TIMESTAMP:
            /* Older than the trim horizon means the trim horizon (SPEC 1.4). */
            p.position = l ? brk_log_seek_time(l, timestamp_ms > horizon ? timestamp_ms
                                                                          : horizon) : 0;
            break;
        case BRK_AT_SEQUENCE_NUMBER: p.position = sp.counter; break;
        case BRK_AFTER_SEQUENCE_NUMBER: p.position = sp.counter + 1; break;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    if (rc) {
        rc = sl_err_set(err, rc, "Internal Service Failure");
        goto out;
    }
    snprintf(p.stream, sizeof p.stream, "%s", st->name);
    p.stream_created_ms = st->created_ms;
    p.shard = sh->index;
    p.issued_ms = now;
    rc = brk_iter_encode(b->secret, &p, iterator);
    if (rc) rc = sl_err_set(err, rc, "Internal Service Failure");
out:
    rw_unlock(b);
    return rc;
}

/* Children of a closed shard (split: two, merge: one), for ChildShards. */
static size_t child_shards(const brk_stream *st, const brk_shard *sh, brk_child_shard *out)
{
    size_t n = 0;
    for (size_t i = sh->index + 1; i < st->nshards && n < 2; i++) {
        const brk_shard *c = st->shards[i];
        if (c->parent != (int64_t)sh->index && c->adjacent != (int64_t)sh->index) continue;
        brk_child_shard *cs = &out[n++];
        memset(cs, 0, sizeof *cs);
        memcpy(cs->shard_id, c->id, sizeof cs->shard_id);
        if (c->parent >= 0) brk__shard_format_id((uint32_t)c->parent, cs->parents[cs->nparents++]);
        if (c->adjacent >= 0)
            brk__shard_format_id((uint32_t)c->adjacent, cs->parents[cs->nparents++]);
        brk_hashkey_format(c->start, cs->start_hash);
        brk_hashkey_format(c->end, cs->end_hash);
    }
    return n;
}

/* Reads from counter `pos` of sh into out (rw shared held). Takes ownership of the log batch's
 * buffer so the records are not copied. *end: closed shard with nothing left after this batch;
 * *drained: closed shard and nothing at all was readable from pos. */
static int read_into(brk_broker *b, brk_stream *st, brk_shard *sh, uint64_t pos, uint32_t limit,
                     size_t max_bytes, int64_t now, bool throttle, brk_records *out, bool *end,
                     bool *drained, uint64_t *next_pos, sl_err *err)
{
    brk_log_batch batch = {0};
    brk_log *l = NULL;
    uint64_t next = 0;
    int rc = 0;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&sh->mu);
    if (throttle) {
        /* 5 calls/s; bytes are charged after the read, so a large response blocks the next
         * calls until the 2 MiB/s budget is positive again (SPEC 2.6). */
        bool calls_ok = brk_bucket_ready(&sh->r_calls, now);
        bool bytes_ok = brk_bucket_ready(&sh->r_bytes, now);
        if (!calls_ok || !bytes_ok) {
            pthread_mutex_unlock(&sh->mu);
            return throttled_err(b, st, sh, err);
        }
        brk_bucket_charge(&sh->r_calls, 1.0, now);
    }
    rc = brk__shard_log(b, sh, false, &l);
    if (!rc && l) {
        next = brk_log_next_seq(l);
        if (pos < next)
            rc = brk_log_read(l, pos, brk__min_arrival(st, now), limit, max_bytes, &batch);
    }
    if (!rc && throttle) brk_bucket_charge(&sh->r_bytes, (double)batch.len, now);
    bool closed = sh->closed_ms != 0;
    pthread_mutex_unlock(&sh->mu);
    if (rc) {
        brk_log_batch_free(&batch);
        return sl_err_set(err, rc, "Internal Service Failure");
    }
    out->recs = sl_malloc((batch.n ? batch.n : 1) * sizeof *out->recs);
    if (!out->recs) {
        brk_log_batch_free(&batch);
        return sl_err_set(err, SL_ENOMEM, "Internal Service Failure");
    }
    out->buf = batch.buf;
    batch.buf = NULL;
    out->n = batch.n;
    for (size_t i = 0; i < batch.n; i++) {
        const brk_log_entry *le = &batch.e[i];
        brk_record *r = &out->recs[i];
        if (i > 0 && le->seq == batch.e[i - 1].seq + 1) {
            memcpy(r->seq, out->recs[i - 1].seq, BRK_SEQ_STRLEN);
            brk_seq_increment(r->seq);
        } else {
            brk_seq_render(sh->prefix, le->seq, r->seq);
        }
        r->arrival_ms = le->arrival_ms;
        r->partition_key = (const char *)out->buf + le->pk_off;
        r->pk_len = le->pk_len;
        r->data = out->buf + le->data_off;
        r->data_len = le->data_len;
    }
    uint64_t after = batch.n ? batch.e[batch.n - 1].seq + 1 : pos;
    /* MillisBehindLatest (SPEC decisions): 0 when this response reaches the tip. */
    out->millis_behind = 0;
    if (batch.n && after < next) {
        int64_t behind = now - batch.e[batch.n - 1].arrival_ms;
        out->millis_behind = behind > 0 ? behind : 0;
    }
    brk_log_batch_free(&batch);
    *next_pos = after;
    *drained = closed && out->n == 0;
    *end = closed && (out->n == 0 || after >= next);
    return 0;
}

int brk_get_records(brk_broker *b, const char *iterator, uint32_t limit, brk_records *out,
                    sl_err *err)
{
    brk_iter_pos p;
    brk_stream *st = NULL;
    brk_shard *sh = NULL;
    bool end = false;
    bool drained = false;
    uint64_t next_pos = 0;
    int rc;
    if (limit < 1 || limit > 10000)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%u' at 'limit' "
                          "failed to satisfy constraint: Member must have value %s", limit,
                          limit < 1 ? "greater than or equal to 1"
                                    : "less than or equal to 10000");
    int64_t now = brk__now(b);
    rc = brk_iter_decode(b->secret, iterator, now, &p, err);
    if (rc) return rc;
    rd_lock(b);
    now = brk__now(b);
    char id[BRK_SHARDID_STRLEN];
    brk__shard_format_id(p.shard, id);
    st = brk__stream_find(b, p.stream, now);
    /* A token of an older stream with the same name does not read the new one. */
    if (!st || st->created_ms != p.stream_created_ms || p.shard >= st->nshards) {
        rc = brk__err_shard_not_found(b, err, p.stream, id);
        goto out;
    }
    sh = st->shards[p.shard];
    rc = read_into(b, st, sh, p.position, limit, BRK_GET_MAX_BYTES, now, b->opts.throttle, out,
                   &end, &drained, &next_pos, err);
    if (rc) goto out;
    if (drained) {
        /* Closed and fully read: no NextShardIterator; ChildShards instead (SPEC 2.9). */
        out->next_iterator[0] = '\0';
        out->nchildren = child_shards(st, sh, out->children);
    } else {
        p.position = next_pos;
        p.issued_ms = now;
        rc = brk_iter_encode(b->secret, &p, out->next_iterator);
        if (rc) {
            brk_records_free(out);
            rc = sl_err_set(err, rc, "Internal Service Failure");
        }
    }
out:
    rw_unlock(b);
    return rc;
}

void brk_records_free(brk_records *r)
{
    if (!r) return;
    sl_free(r->recs);
    sl_free(r->buf);
    r->recs = NULL;
    r->buf = NULL;
    r->n = 0;
}

int brk_read_shard(brk_broker *b, const char *stream, const char *shard_id, const char *seq,
                   bool after, uint32_t limit, size_t max_bytes, brk_records *out, bool *end,
                   sl_err *err)
{
    brk_stream *st = NULL;
    brk_shard *sh = NULL;
    brk_seq_parts sp;
    bool drained = false;
    bool e = false;
    uint64_t pos = 0;
    int rc = brk__check_stream_name(stream, err);
    if (rc) return rc;
    if (limit < 1 || limit > 10000)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%u' at 'limit' "
                          "failed to satisfy constraint: Member must have value %s", limit,
                          limit < 1 ? "greater than or equal to 1"
                                    : "less than or equal to 10000");
    if (max_bytes == 0 || max_bytes > BRK_GET_MAX_BYTES) max_bytes = BRK_GET_MAX_BYTES;
    rd_lock(b);
    int64_t now = brk__now(b);
    rc = read_target(b, stream, shard_id, now, &st, &sh, err);
    if (rc) goto out;
    if (seq && *seq) {
        rc = check_seq(b, st, sh, seq, "GetShardIterator", &sp, err);
        if (rc) goto out;
        pos = sp.counter;
        if (after) pos = pos == BRK_SEQ_END ? BRK_SEQ_END : pos + 1;
    }
    rc = read_into(b, st, sh, pos, limit, max_bytes, now, false, out, &e, &drained, &pos, err);
    if (rc) goto out;
    if (e && out->n == 0) out->nchildren = child_shards(st, sh, out->children);
    if (end) *end = e;
out:
    rw_unlock(b);
    return rc;
}

/* Shared by brk_shard_tip and brk_shard_seq_at_time. */
static int shard_query(brk_broker *b, const char *stream, const char *shard_id, bool tip,
                       int64_t ts, char seq[BRK_SEQ_STRLEN], sl_err *err)
{
    brk_stream *st = NULL;
    brk_shard *sh = NULL;
    brk_log *l = NULL;
    int rc = brk__check_stream_name(stream, err);
    if (rc) return rc;
    rd_lock(b);
    int64_t now = brk__now(b);
    rc = read_target(b, stream, shard_id, now, &st, &sh, err);
    if (rc) goto out;
    seq[0] = '\0';
    pthread_mutex_lock(&sh->mu);
    rc = brk__shard_log(b, sh, false, &l);
    if (!rc && l) {
        uint64_t s;
        int64_t horizon = brk__min_arrival(st, now);
        if (tip) {
            int64_t arrival;
            if (brk_log_last(l, &s, &arrival) && arrival >= horizon)
                brk_seq_render(sh->prefix, s, seq);
        } else {
            s = brk_log_seek_time(l, ts > horizon ? ts : horizon);
            if (s < brk_log_next_seq(l)) brk_seq_render(sh->prefix, s, seq);
        }
    }
    pthread_mutex_unlock(&sh->mu);
    if (rc) rc = sl_err_set(err, rc, "Internal Service Failure");
out:
    rw_unlock(b);
    return rc;
}

int brk_shard_tip(brk_broker *b, const char *stream, const char *shard_id,
                  char seq[BRK_SEQ_STRLEN], sl_err *err)
{
    return shard_query(b, stream, shard_id, true, 0, seq, err);
}

int brk_shard_count(brk_broker *b, const char *stream, const char *shard_id, uint64_t *count,
                    sl_err *err)
{
    brk_stream *st = NULL;
    brk_shard *sh = NULL;
    brk_log *l = NULL;
    int rc = brk__check_stream_name(stream, err);
    if (rc) return rc;
    rd_lock(b);
    rc = read_target(b, stream, shard_id, brk__now(b), &st, &sh, err);
    if (rc) goto out;
    pthread_mutex_lock(&sh->mu);
    rc = brk__shard_log(b, sh, false, &l);
    *count = !rc && l ? brk_log_next_seq(l) : 0;
    pthread_mutex_unlock(&sh->mu);
    if (rc) rc = sl_err_set(err, rc, "Internal Service Failure");
out:
    rw_unlock(b);
    return rc;
}

int brk_shard_seq_at_time(brk_broker *b, const char *stream, const char *shard_id, int64_t ts_ms,
                          char seq[BRK_SEQ_STRLEN], sl_err *err)
{
    return shard_query(b, stream, shard_id, false, ts_ms, seq, err);
}

int brk_seq_cmp(const char *a, const char *b)
{
    /* Numeric comparison of decimal strings of any length (leading zeros ignored). */
    a = a ? a : "";
    b = b ? b : "";
    while (*a == '0' && a[1]) a++;
    while (*b == '0' && b[1]) b++;
    size_t la = strlen(a);
    size_t lb = strlen(b);
    if (la != lb) return la < lb ? -1 : 1;
    int c = strcmp(a, b);
    return (c > 0) - (c < 0);
}

int brk_seq_shard_index(const char *seq, uint32_t *index)
{
    brk_seq_parts sp;
    int rc = brk_seq_parse(seq, &sp);
    if (rc) return rc;
    *index = sp.shard;
    return 0;
}

/* ---- notification --------------------------------------------------------------------------- */

/* The watch whose callback this thread is running (brk_watch_remove from inside it). */
static _Thread_local struct brk_watch *running_watch;

static void unlink_watch(brk_broker *b, struct brk_watch *w)
{
    for (struct brk_watch **pp = &b->watches; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            return;
        }
    }
}

void brk__notify(brk_broker *b, const char *stream, const char *shard_id, bool closed)
{
    struct brk_watch *next;
    if (__atomic_load_n(&b->nwatches, __ATOMIC_ACQUIRE) == 0) return;
    pthread_mutex_lock(&b->wmu);
    for (struct brk_watch *w = b->watches; w; w = next) {
        if (w->removed || strcmp(w->stream, stream) != 0) {
            next = w->next;
            continue;
        }
        /* busy > 0 keeps w linked (brk_watch_remove waits for 0), so w->next is valid once
         * wmu is taken again. */
        w->busy++;
        pthread_mutex_unlock(&b->wmu);
        struct brk_watch *outer = running_watch;
        running_watch = w;
        w->fn(w->ctx, stream, shard_id, closed);
        running_watch = outer;
        pthread_mutex_lock(&b->wmu);
        next = w->next;
        if (--w->busy == 0 && w->removed) {
            if (w->orphan) {
                unlink_watch(b, w);
                sl_free(w);
            } else {
                pthread_cond_broadcast(&b->wcv);
            }
        }
    }
    pthread_mutex_unlock(&b->wmu);
}

int brk_watch_add(brk_broker *b, const char *stream, brk_watch_fn fn, void *ctx, brk_watch **out)
{
    if (!fn || !out || brk__check_stream_name(stream, NULL) != 0) return SL_EINVAL;
    struct brk_watch *w = sl_calloc(1, sizeof *w);
    if (!w) return SL_ENOMEM;
    snprintf(w->stream, sizeof w->stream, "%s", stream);
    w->fn = fn;
    w->ctx = ctx;
    pthread_mutex_lock(&b->wmu);
    w->next = b->watches;
    b->watches = w;
    __atomic_add_fetch(&b->nwatches, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&b->wmu);
    *out = w;
    return 0;
}

void brk_watch_remove(brk_broker *b, brk_watch *w)
{
    if (!w) return;
    pthread_mutex_lock(&b->wmu);
    w->removed = true;
    __atomic_sub_fetch(&b->nwatches, 1, __ATOMIC_RELEASE);
    if (running_watch == w) {
        /* Called from its own callback: waiting would deadlock. It will not run again; the last
         * running callback frees it (brk__notify). */
        w->orphan = true;
        pthread_mutex_unlock(&b->wmu);
        return;
    }
    while (w->busy > 0) pthread_cond_wait(&b->wcv, &b->wmu);
    unlink_watch(b, w);
    pthread_mutex_unlock(&b->wmu);
    sl_free(w);
}

/* ---- catalog key/value area ------------------------------------------------------------------ */

static bool meta_args_ok(const char *ns, const char *key)
{
    return ns && key && *ns && *key;
}

int brk_meta_put(brk_broker *b, const char *ns, const char *key, const char *value, size_t len)
{
    if (!meta_args_ok(ns, key) || (!value && len)) return SL_EINVAL;
    return brk_catalog_meta_put(b->cat, ns, key, value, len);
}

int brk_meta_get(brk_broker *b, const char *ns, const char *key, char **value, size_t *len)
{
    if (!meta_args_ok(ns, key) || !value) return SL_EINVAL;
    return brk_catalog_meta_get(b->cat, ns, key, value, len);
}

int brk_meta_del(brk_broker *b, const char *ns, const char *key)
{
    if (!meta_args_ok(ns, key)) return SL_EINVAL;
    return brk_catalog_meta_del(b->cat, ns, key);
}

int brk_meta_keys(brk_broker *b, const char *ns, char ***keys, size_t *n)
{
    if (!ns || !*ns || !keys || !n) return SL_EINVAL;
    return brk_catalog_meta_keys(b->cat, ns, keys, n);
}
