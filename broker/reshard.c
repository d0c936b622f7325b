/* reshard.c — splits, merges and UNIFORM_SCALING (SPEC 1.4, 2.5).
 *
 * Parents are never changed in range: they are closed (closed_ms set; their EndingSequenceNumber
 * becomes the maximum of their sequence space) and new shards with the next free indices are
 * created, recording ParentShardId / AdjacentParentShardId. UpdateShardCount is built on the same
 * two operations (see brk__uniform_scale), so every shard has at most two parents and consumers
 * that drain parents before children keep per-key order across any reshape.
 */
#include "broker/reshard.h"

#include <string.h>

#include "broker/broker_int.h"

static int close_shard(brk_broker *b, brk_stream *st, brk_shard *sh, int64_t now_ms)
{
    brk_cat_shard c;
    (void)st;
    sh->closed_ms = now_ms > 0 ? now_ms : 1; /* 0 means open */
    brk__shard_to_cat(sh, &c);
    return brk_catalog_shard_put(b->cat, st->name, &c);
}

static int add_child(brk_broker *b, brk_stream *st, int64_t parent, int64_t adjacent,
                     brk_u128 start, brk_u128 end, int64_t now_ms, brk_shard **out)
{
    brk_cat_shard c;
    brk_shard *sh = NULL;
    memset(&c, 0, sizeof c);
    c.index = (uint32_t)st->nshards;
    c.parent = parent;
    c.adjacent = adjacent;
    brk_hashkey_format(start, c.start_hash);
    brk_hashkey_format(end, c.end_hash);
    c.created_ms = now_ms;
    int rc = brk__shard_new(b, st, &c, &sh);
    if (rc) return rc;
    rc = brk__stream_add_shard(st, sh);
    if (rc) {
        brk__shard_free(sh);
        return rc;
    }
    rc = brk_catalog_shard_put(b->cat, st->name, &c);
    if (!rc && out) *out = sh;
    return rc;
}

int brk__split(brk_broker *b, brk_stream *st, brk_shard *sh, brk_u128 key, int64_t now_ms)
{
    SL_ASSERT(sh->closed_ms == 0 && key > sh->start && key <= sh->end);
    int rc = close_shard(b, st, sh, now_ms);
    if (!rc) rc = add_child(b, st, sh->index, -1, sh->start, key - 1, now_ms, NULL);
    if (!rc) rc = add_child(b, st, sh->index, -1, key, sh->end, now_ms, NULL);
    if (!rc) rc = brk__stream_reindex(st);
    return rc;
}

int brk__merge(brk_broker *b, brk_stream *st, brk_shard *a, brk_shard *adj, int64_t now_ms,
               brk_shard **child)
{
    SL_ASSERT(a->closed_ms == 0 && adj->closed_ms == 0);
    brk_u128 start = a->start < adj->start ? a->start : adj->start;
    brk_u128 end = a->end > adj->end ? a->end : adj->end;
    int rc = close_shard(b, st, a, now_ms);
    if (!rc) rc = close_shard(b, st, adj, now_ms);
    if (!rc) rc = add_child(b, st, a->index, adj->index, start, end, now_ms, child);
    if (!rc) rc = brk__stream_reindex(st);
    return rc;
}

/* Open shard whose range contains k (open shards tile the key space). */
static brk_shard *open_containing(const brk_stream *st, brk_u128 k)
{
    size_t lo = 0;
    size_t hi = st->nopen;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        brk_shard *s = st->open[mid];
        if (k < s->start) hi = mid;
        else if (k > s->end) lo = mid + 1;
        else return s;
    }
    return NULL;
}

/* Target layout via real reshards: first split every open shard at each target boundary that
 * falls strictly inside it, so each boundary becomes a shard boundary; then, inside every target
 * range, merge its shards left to right until one remains. Intermediate shards are created and
 * closed in the same call (AWS: "may create short-lived intermediate shards"); they never receive
 * records and own no files. */
int brk__uniform_scale(brk_broker *b, brk_stream *st, uint32_t target, int64_t now_ms)
{
    brk_u128 start;
    brk_u128 end;
    int rc = 0;
    for (uint32_t j = 1; j < target && !rc; j++) {
        brk_hashkey_range(target, j, &start, &end);
        brk_shard *sh = open_containing(st, start);
        SL_ASSERT(sh != NULL);
        if (sh->start != start) rc = brk__split(b, st, sh, start, now_ms);
    }
    for (uint32_t j = 0; j < target && !rc; j++) {
        brk_hashkey_range(target, j, &start, &end);
        for (;;) {
            brk_shard *first = open_containing(st, start);
            SL_ASSERT(first != NULL && first->start == start);
            if (first->end == end) break;
            SL_ASSERT(first->end < end);
            brk_shard *next = open_containing(st, first->end + 1);
            SL_ASSERT(next != NULL && next->end <= end);
            rc = brk__merge(b, st, first, next, now_ms, NULL);
            if (rc) break;
        }
    }
    return rc;
}

/* ---- public API (broker.h) ------------------------------------------------------------------ */

/* Common checks of SplitShard/MergeShards/UpdateShardCount: stream exists, PROVISIONED, ACTIVE. */
static int reshard_stream(brk_broker *b, const char *name, const char *op, int64_t now,
                          brk_stream **out, sl_err *err)
{
    brk_stream *st = brk__stream_find(b, name, now);
    if (!st) return brk__err_stream_not_found(b, err, name);
    if (st->mode == BRK_ON_DEMAND)
        return sl_err_set(err, SL_EVALIDATION, "%s is not supported for stream %s under account "
                          "%s because it is in ON_DEMAND capacity mode.", op, name,
                          brk_account(b));
    if (st->status != BRK_ACTIVE) return brk__err_not_active(b, err, name, st->status);
    *out = st;
    return 0;
}

static int find_shard(brk_broker *b, brk_stream *st, const char *id, brk_shard **out, sl_err *err)
{
    uint32_t idx;
    if (!brk__shard_parse_id(id, &idx) || idx >= st->nshards)
        return sl_err_set(err, SL_ENOTFOUND, "Could not find shard %s in stream %s under account "
                          "%s.", id ? id : "null", st->name, brk_account(b));
    *out = st->shards[idx];
    return 0;
}

static int err_already_resharded(brk_broker *b, sl_err *err, const brk_stream *st,
                                 const brk_shard *sh)
{
    return sl_err_set(err, SL_EINVAL, "Shard %s in stream %s under account %s has already been "
                      "merged or split, and thus is not eligible for merging or splitting.",
                      sh->id, st->name, brk_account(b));
}

/* After the reshape: stream UPDATING for transition_ms, stream row (next index) stored, commit.
 * On any failure the catalog is rolled back and the stream reloaded from it. */
static int finish(brk_broker *b, brk_stream *st, int rc, int64_t now, sl_err *err)
{
    if (!rc) {
        brk_cat_stream cs;
        if (b->opts.transition_ms > 0) {
            st->status = BRK_UPDATING;
            st->until_ms = now + b->opts.transition_ms;
        }
        brk__stream_to_cat(st, &cs);
        rc = brk_catalog_stream_put(b->cat, &cs);
    }
    if (!rc) rc = brk_catalog_commit(b->cat);
    else brk_catalog_rollback(b->cat);
    if (rc) {
        brk__stream_reload(b, st);
        return sl_err_set(err, rc, "catalog: cannot store the new shards of %s: %s", st->name,
                          sl_strerror(rc));
    }
    return 0;
}

/* Ids of shards closed by a call, for the watch callbacks run after the locks are released. */
typedef struct closed_list {
    char (*ids)[BRK_SHARDID_STRLEN];
    size_t n;
} closed_list;

/* Before a change: the shards open now. After it: keep those it closed. */
static void remember_open(const brk_stream *st, closed_list *cl)
{
    cl->n = 0;
    cl->ids = sl_malloc((st->nopen ? st->nopen : 1) * sizeof *cl->ids);
    if (!cl->ids) return;
    for (size_t i = 0; i < st->nopen; i++)
        memcpy(cl->ids[cl->n++], st->open[i]->id, BRK_SHARDID_STRLEN);
}

static void keep_closed(const brk_stream *st, closed_list *cl)
{
    size_t k = 0;
    for (size_t i = 0; i < cl->n; i++) {
        uint32_t idx;
        if (brk__shard_parse_id(cl->ids[i], &idx) && idx < st->nshards &&
            st->shards[idx]->closed_ms != 0)
            memmove(cl->ids[k++], cl->ids[i], BRK_SHARDID_STRLEN);
    }
    cl->n = k;
}

static void notify_closed(brk_broker *b, const char *name, closed_list *cl)
{
    for (size_t i = 0; i < cl->n; i++) brk__notify(b, name, cl->ids[i], true);
    sl_free(cl->ids);
    cl->ids = NULL;
    cl->n = 0;
}

int brk_split_shard(brk_broker *b, const char *name, const char *shard_id,
                    const char *new_starting_hash_key, sl_err *err)
{
    brk_stream *st = NULL;
    brk_shard *sh = NULL;
    brk_u128 key = 0;
    closed_list cl = {NULL, 0};
    int rc = brk__check_stream_name(name, err);
    if (rc) return rc;
    int prc = brk_hashkey_parse(new_starting_hash_key, &key);
    if (prc == SL_EVALIDATION)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%s' at "
                          "'newStartingHashKey' failed to satisfy constraint: Member must satisfy "
                          "regular expression pattern: 0|([1-9]\\d{0,38})",
                          new_starting_hash_key ? new_starting_hash_key : "null");
    wr_lock(b);
    int64_t now = brk__now(b);
    if (now <= 0) now = 1;
    brk__settle(b, now);
    rc = reshard_stream(b, name, "SplitShard", now, &st, err);
    if (!rc) rc = find_shard(b, st, shard_id, &sh, err);
    if (rc) goto out;
    if (sh->closed_ms) {
        rc = err_already_resharded(b, err, st, sh);
        goto out;
    }
    if (prc != 0 || key <= sh->start + 1 || key >= sh->end) {
        char s[BRK_HASHKEY_STRLEN];
        char e[BRK_HASHKEY_STRLEN];
        brk_hashkey_format(sh->start, s);
        brk_hashkey_format(sh->end, e);
        rc = sl_err_set(err, SL_EINVAL, "NewStartingHashKey %s used in SplitShard() on shard %s in "
                        "stream %s under account %s is not both greater than one plus the "
                        "shard's StartingHashKey %s and less than the shard's EndingHashKey %s.",
                        new_starting_hash_key, sh->id, name, brk_account(b), s, e);
        goto out;
    }
    uint32_t open = brk__open_shards(b, now);
    if ((uint64_t)open + 1 > b->opts.shard_quota) {
        rc = sl_err_set(err, SL_ELIMIT, "This request would exceed the shard limit for the account "
                        "%s in %s. Current shard count for the account: %u. Limit: %u. Number of "
                        "additional shards that would have resulted from this request: 1. Refer "
                        "to the AWS Service Limits page (http://docs.aws.amazon.com/general/"
                        "latest/gr/aws_service_limits.html) for current limits and how to request "
                        "higher limits.", brk_account(b), brk_region(b), open,
                        b->opts.shard_quota);
        goto out;
    }
    remember_open(st, &cl);
    rc = brk_catalog_begin(b->cat);
    if (rc) {
        rc = sl_err_set(err, rc, "catalog: cannot begin a transaction");
        goto out;
    }
    rc = finish(b, st, brk__split(b, st, sh, key, now), now, err);
    if (!rc) keep_closed(st, &cl);
out:
    rw_unlock(b);
    if (rc) cl.n = 0;
    notify_closed(b, name, &cl);
    return rc;
}

int brk_merge_shards(brk_broker *b, const char *name, const char *shard_id, const char *adjacent_id,
                     sl_err *err)
{
    brk_stream *st = NULL;
    brk_shard *a = NULL;
    brk_shard *adj = NULL;
    closed_list cl = {NULL, 0};
    int rc = brk__check_stream_name(name, err);
    if (rc) return rc;
    wr_lock(b);
    int64_t now = brk__now(b);
    if (now <= 0) now = 1;
    brk__settle(b, now);
    rc = reshard_stream(b, name, "MergeShards", now, &st, err);
    if (!rc) rc = find_shard(b, st, shard_id, &a, err);
    if (!rc) rc = find_shard(b, st, adjacent_id, &adj, err);
    if (rc) goto out;
    if (a->closed_ms || adj->closed_ms) {
        rc = err_already_resharded(b, err, st, a->closed_ms ? a : adj);
        goto out;
    }
    /* Adjacent in either order (kinesalite accepts only ShardToMerge first). */
    if (a == adj || !((a->end != BRK_U128_MAX && a->end + 1 == adj->start) ||
                      (adj->end != BRK_U128_MAX && adj->end + 1 == a->start))) {
        rc = sl_err_set(err, SL_EINVAL, "Shards %s and %s in stream %s under account %s are not an "
                        "adjacent pair of shards eligible for merging", a->id, adj->id, name,
                        brk_account(b));
        goto out;
    }
    remember_open(st, &cl);
    rc = brk_catalog_begin(b->cat);
    if (rc) {
        rc = sl_err_set(err, rc, "catalog: cannot begin a transaction");
        goto out;
    }
    rc = finish(b, st, brk__merge(b, st, a, adj, now, NULL), now, err);
    if (!rc) keep_closed(st, &cl);
out:
    rw_unlock(b);
    if (rc) cl.n = 0;
    notify_closed(b, name, &cl);
    return rc;
}

int brk_update_shard_count(brk_broker *b, const char *name, uint32_t target, uint32_t *current,
                           sl_err *err)
{
    brk_stream *st = NULL;
    closed_list cl = {NULL, 0};
    int rc = brk__check_stream_name(name, err);
    if (rc) return rc;
    if (target < 1)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%u' at "
                          "'targetShardCount' failed to satisfy constraint: Member must have "
                          "value greater than or equal to 1", target);
    wr_lock(b);
    int64_t now = brk__now(b);
    if (now <= 0) now = 1;
    brk__settle(b, now);
    rc = reshard_stream(b, name, "UpdateShardCount", now, &st, err);
    if (rc) goto out;
    uint32_t open = (uint32_t)st->nopen;
    uint32_t others = brk__open_shards(b, now) - open;
    uint32_t limit = b->opts.shard_quota;
    if (target > 10000 || (uint64_t)others + target > limit) {
        rc = sl_err_set(err, SL_ELIMIT, "Target shard count or number of open shards cannot be "
                        "greater than %u. Current open shard count: %u, Target shard count: %u",
                        limit < 10000 ? limit : 10000, open, target);
        goto out;
    }
    if ((uint64_t)target > 2ULL * open) {
        rc = sl_err_set(err, SL_ELIMIT, "UpdateShardCount cannot scale up over double your current "
                        "open shard count. Current open shard count: %u, Target shard count: %u",
                        open, target);
        goto out;
    }
    if (2ULL * target < open) {
        rc = sl_err_set(err, SL_ELIMIT, "UpdateShardCount cannot scale down below half your "
                        "current open shard count. Current open shard count: %u, Target shard "
                        "count: %u", open, target);
        goto out;
    }
    uint32_t recent = 0;
    rc = brk_catalog_scaling_count(b->cat, name, now - 24LL * 3600 * 1000, &recent);
    if (rc) {
        rc = sl_err_set(err, rc, "catalog: cannot read the scaling history");
        goto out;
    }
    if (recent >= BRK_MAX_SCALINGS_PER_DAY) {
        rc = sl_err_set(err, SL_ELIMIT, "Exceeded the number of allowed UpdateShardCount "
                        "operations (%d) in a rolling 24 hour period for stream %s under "
                        "account %s.", BRK_MAX_SCALINGS_PER_DAY, name, brk_account(b));
        goto out;
    }
    remember_open(st, &cl);
    rc = brk_catalog_begin(b->cat);
    if (rc) {
        rc = sl_err_set(err, rc, "catalog: cannot begin a transaction");
        goto out;
    }
    rc = brk__uniform_scale(b, st, target, now);
    if (!rc) rc = brk_catalog_scaling_add(b->cat, name, now);
    rc = finish(b, st, rc, now, err);
    if (!rc) {
        keep_closed(st, &cl);
        if (current) *current = open;
    }
out:
    rw_unlock(b);
    if (rc) cl.n = 0;
    notify_closed(b, name, &cl);
    return rc;
}
