/* stream.c — stream objects: lookup, live status, catalog load/reload, reaping, messages. */
#include "broker/stream.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"

int brk__err_stream_not_found(const brk_broker *b, sl_err *err, const char *name)
{
    return sl_err_set(err, SL_ENOTFOUND, "Stream %s under account %s not found.", name,
                      brk_account(b));
}

int brk__err_shard_not_found(const brk_broker *b, sl_err *err, const char *name, const char *shard)
{
    return sl_err_set(err, SL_ENOTFOUND, "Shard %s in stream %s under account %s does not exist",
                      shard, name, brk_account(b));
}

int brk__err_not_active(const brk_broker *b, sl_err *err, const char *name, int status)
{
    return sl_err_set(err, SL_EINUSE, "Stream %s under account %s not ACTIVE, instead in state %s",
                      name, brk_account(b), brk_status_name((enum brk_stream_status)status));
}

int brk__check_stream_name(const char *name, sl_err *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%s' at "
                          "'streamName' failed to satisfy constraint: Member must have length "
                          "greater than or equal to 1", name ? name : "null");
    if (n > BRK_STREAM_NAME_MAX)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%s' at "
                          "'streamName' failed to satisfy constraint: Member must have length "
                          "less than or equal to 128", name);
    if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != n)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%s' at "
                          "'streamName' failed to satisfy constraint: Member must satisfy regular "
                          "expression pattern: [a-zA-Z0-9_.-]+", name);
    return 0;
}

int brk__stream_status(const brk_stream *st, int64_t now_ms)
{
    switch (st->status) {
    case BRK_CREATING:
    case BRK_UPDATING:
        return now_ms >= st->until_ms ? BRK_ACTIVE : st->status;
    case BRK_DELETING:
        return now_ms >= st->until_ms ? BRK_GONE : BRK_DELETING;
    default:
        return st->status;
    }
}

long brk__stream_slot(const brk_broker *b, const char *name, size_t *ins)
{
    size_t lo = 0;
    size_t hi = b->nstreams;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(b->streams[mid]->name, name);
        if (c == 0) return (long)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    if (ins) *ins = lo;
    return -1;
}

brk_stream *brk__stream_find(brk_broker *b, const char *name, int64_t now_ms)
{
    if (!name) return NULL;
    long i = brk__stream_slot(b, name, NULL);
    if (i < 0) return NULL;
    brk_stream *st = b->streams[i];
    return brk__stream_status(st, now_ms) == BRK_GONE ? NULL : st;
}

void brk__stream_to_cat(const brk_stream *st, brk_cat_stream *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", st->name);
    c->created_ms = st->created_ms;
    c->status = st->status;
    c->until_ms = st->until_ms;
    c->mode = st->mode;
    c->retention_hours = st->retention_hours;
    c->max_record_kib = st->max_record_kib;
    c->next_index = (uint32_t)st->nshards;
    c->trim_floor_ms = st->trim_floor_ms;
}

static int cmp_open(const void *a, const void *b)
{
    const brk_shard *x = *(brk_shard *const *)a;
    const brk_shard *y = *(brk_shard *const *)b;
    return x->start < y->start ? -1 : x->start > y->start;
}

int brk__stream_reindex(brk_stream *st)
{
    size_t n = 0;
    for (size_t i = 0; i < st->nshards; i++) n += st->shards[i]->closed_ms == 0;
    brk_shard **v = sl_malloc((n ? n : 1) * sizeof *v);
    if (!v) return SL_ENOMEM;
    n = 0;
    for (size_t i = 0; i < st->nshards; i++)
        if (st->shards[i]->closed_ms == 0) v[n++] = st->shards[i];
    qsort(v, n, sizeof *v, cmp_open);
    sl_free(st->open);
    st->open = v;
    st->nopen = n;
    return 0;
}

int brk__stream_add_shard(brk_stream *st, brk_shard *sh)
{
    SL_ASSERT(sh->index == st->nshards);
    if (st->nshards == st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 8;
        brk_shard **v = sl_realloc(st->shards, nc * sizeof *v);
        if (!v) return SL_ENOMEM;
        st->shards = v;
        st->cap = nc;
    }
    st->shards[st->nshards++] = sh;
    return 0;
}

static void free_shards(brk_stream *st)
{
    for (size_t i = 0; i < st->nshards; i++) brk__shard_free(st->shards[i]);
    sl_free(st->shards);
    sl_free(st->open);
    st->shards = NULL;
    st->open = NULL;
    st->nshards = st->cap = st->nopen = 0;
}

void brk__stream_free(brk_stream *st)
{
    if (!st) return;
    free_shards(st);
    sl_free(st->dir);
    sl_free(st);
}

/* Loads the shard rows of st from the catalog into st (which has none). */
static int load_shards(brk_broker *b, brk_stream *st, uint32_t next_index)
{
    brk_cat_shard *rows = NULL;
    size_t n = 0;
    int rc = brk_catalog_shards(b->cat, st->name, &rows, &n);
    if (rc) return rc;
    for (size_t i = 0; i < n && !rc; i++) {
        brk_shard *sh = NULL;
        /* Indices are dense (never reused, every one stored); a gap means a damaged catalog. */
        if (rows[i].index != st->nshards) {
            rc = SL_ECORRUPT;
            break;
        }
        rc = brk__shard_new(b, st, &rows[i], &sh);
        if (!rc) rc = brk__stream_add_shard(st, sh);
        if (rc) brk__shard_free(sh);
    }
    sl_free(rows);
    if (!rc && st->nshards != next_index) rc = SL_ECORRUPT;
    if (!rc) rc = brk__stream_reindex(st);
    return rc;
}

int brk__stream_load(brk_broker *b, const brk_cat_stream *cs, brk_stream **out)
{
    brk_stream *st = sl_calloc(1, sizeof *st);
    if (!st) return SL_ENOMEM;
    snprintf(st->name, sizeof st->name, "%s", cs->name);
    st->created_ms = cs->created_ms;
    st->status = cs->status;
    st->until_ms = cs->until_ms;
    st->mode = cs->mode;
    st->retention_hours = cs->retention_hours;
    st->max_record_kib = cs->max_record_kib;
    st->trim_floor_ms = cs->trim_floor_ms;
    size_t n = strlen(b->streams_dir) + 2 + strlen(cs->name);
    st->dir = sl_malloc(n);
    int rc = st->dir ? 0 : SL_ENOMEM;
    if (!rc) {
        snprintf(st->dir, n, "%s/%s", b->streams_dir, cs->name);
        rc = load_shards(b, st, cs->next_index);
    }
    if (rc) {
        brk__stream_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

/* Builds the stream anew from the catalog and swaps it in only when that fully succeeded, so a
 * failure here leaves the previous in-memory state untouched. */
static int reload_once(brk_broker *b, brk_stream *st)
{
    brk_cat_stream *rows = NULL;
    brk_stream *fresh = NULL;
    size_t n = 0;
    int rc = brk_catalog_streams(b->cat, &rows, &n);
    if (rc) return rc;
    rc = SL_ENOTFOUND;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].name, st->name) == 0) {
            rc = brk__stream_load(b, &rows[i], &fresh);
            break;
        }
    }
    sl_free(rows);
    if (rc) return rc;
    /* Swap shard sets; the old shard objects (and their logs) go with `fresh`. */
    brk_stream old = *st;
    st->status = fresh->status;
    st->until_ms = fresh->until_ms;
    st->mode = fresh->mode;
    st->retention_hours = fresh->retention_hours;
    st->max_record_kib = fresh->max_record_kib;
    st->trim_floor_ms = fresh->trim_floor_ms;
    st->shards = fresh->shards;
    st->nshards = fresh->nshards;
    st->cap = fresh->cap;
    st->open = fresh->open;
    st->nopen = fresh->nopen;
    fresh->shards = old.shards;
    fresh->nshards = old.nshards;
    fresh->cap = old.cap;
    fresh->open = old.open;
    fresh->nopen = old.nopen;
    brk__stream_free(fresh);
    return 0;
}

int brk__stream_reload(brk_broker *b, brk_stream *st)
{
    /* Used after a failed reshard whose in-memory changes must be undone; a transient failure
     * (memory) is retried, since leaving half-applied shards would break routing. */
    int rc = 0;
    for (int attempt = 0; attempt < 5; attempt++) {
        rc = reload_once(b, st);
        if (rc == 0) return 0;
    }
    return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

int brk__rmtree(const char *path)
{
    int rc = nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0 && errno != ENOENT) return -errno;
    return 0;
}

/* Removes a stream whose deletion finished: files, catalog rows, memory. */
static void reap(brk_broker *b, size_t slot)
{
    brk_stream *st = b->streams[slot];
    for (size_t i = 0; i < st->nshards; i++) {
        brk_log_close(st->shards[i]->log);
        st->shards[i]->log = NULL;
    }
    brk__rmtree(st->dir);
    brk_catalog_stream_del(b->cat, st->name);
    memmove(&b->streams[slot], &b->streams[slot + 1],
            (b->nstreams - slot - 1) * sizeof b->streams[0]);
    b->nstreams--;
    brk__stream_free(st);
}

void brk__settle(brk_broker *b, int64_t now_ms)
{
    size_t i = 0;
    while (i < b->nstreams) {
        brk_stream *st = b->streams[i];
        int live = brk__stream_status(st, now_ms);
        if (live == BRK_GONE) {
            reap(b, i);
            continue;
        }
        if (live != st->status) {
            brk_cat_stream cs;
            int old = st->status;
            st->status = live;
            brk__stream_to_cat(st, &cs);
            if (brk_catalog_stream_put(b->cat, &cs) != 0) st->status = old;
        }
        i++;
    }
}

uint32_t brk__open_shards(brk_broker *b, int64_t now_ms)
{
    uint32_t n = 0;
    for (size_t i = 0; i < b->nstreams; i++)
        if (brk__stream_status(b->streams[i], now_ms) != BRK_GONE)
            n += (uint32_t)b->streams[i]->nopen;
    return n;
}

/* ---- the public stream control plane (broker.h) -------------------------------------------- */

static size_t utf8_count(const char *s)
{
    size_t c = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) c += (*p & 0xC0) != 0x80;
    return c;
}

static int insert_stream(brk_broker *b, brk_stream *st)
{
    size_t ins = 0;
    long at = brk__stream_slot(b, st->name, &ins);
    SL_ASSERT(at < 0);
    if (b->nstreams == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 8;
        brk_stream **v = sl_realloc(b->streams, nc * sizeof *v);
        if (!v) return SL_ENOMEM;
        b->streams = v;
        b->cap = nc;
    }
    memmove(&b->streams[ins + 1], &b->streams[ins], (b->nstreams - ins) * sizeof *b->streams);
    b->streams[ins] = st;
    b->nstreams++;
    return 0;
}

/* AWS tag rules (SPEC 1.4): key 1..128 and value 0..256 characters; Unicode letters, digits,
 * white space and _ . / = + - @ : allowed; '%' refused. Non-ASCII bytes count as letters. */
static int check_tags(const brk_broker *b, const char *stream, const brk_tag *tags, size_t n,
                      sl_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const char *k = tags[i].key ? tags[i].key : "";
        const char *v = tags[i].value ? tags[i].value : "";
        size_t kc = strlen(k);
        size_t vc = strlen(v);
        size_t kchars = utf8_count(k);
        size_t vchars = utf8_count(v);
        (void)kc;
        (void)vc;
        if (kchars < 1 || kchars > 128)
            return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%s' at "
                              "'tags' failed to satisfy constraint: Map keys must satisfy "
                              "constraint: [Member must have length %s]", k,
                              kchars < 1 ? "greater than or equal to 1"
                                         : "less than or equal to 128");
        if (vchars > 256)
            return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%s' at "
                              "'tags' failed to satisfy constraint: Map value must satisfy "
                              "constraint: [Member must have length less than or equal to 256]",
                              v);
        for (int side = 0; side < 2; side++) {
            const char *s = side ? v : k;
            for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '%')
                    return sl_err_set(err, SL_EINVAL, "Failed to add tags to stream %s under "
                                      "account %s because some tags contained illegal "
                                      "characters. The allowed characters are Unicode letters, "
                                      "white-spaces, '_',',','/','=','+','-','@',':'.", stream,
                                      brk_account(b));
                if (*p >= 0x80 || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= 'A' && *p <= 'Z') || strchr(" \t\n\r_./=+-@:", *p))
                    continue;
                return sl_err_set(err, SL_EINVAL, "Some tags contain invalid characters. Valid "
                                  "characters: Unicode letters, digits, white space, "
                                  "_ . / = + - %% @ :.");
            }
        }
    }
    return 0;
}

static int err_tag_limit(const brk_broker *b, sl_err *err, const char *name)
{
    return sl_err_set(err, SL_EINVAL, "Failed to add tags to stream %s under account %s because a "
                      "given stream cannot have more than 50 tags associated with it.", name,
                      brk_account(b));
}

int brk_stream_create(brk_broker *b, const brk_create_opts *o, sl_err *err)
{
    brk_stream *st = NULL;
    int rc = brk__check_stream_name(o ? o->name : NULL, err);
    if (rc) return rc;
    uint32_t count = o->shard_count;
    if (o->mode != BRK_PROVISIONED && o->mode != BRK_ON_DEMAND)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%d' at "
                          "'streamModeDetails.streamMode' failed to satisfy constraint: Member "
                          "must satisfy enum value set: [PROVISIONED, ON_DEMAND]", (int)o->mode);
    if (o->mode == BRK_ON_DEMAND && count == 0) count = BRK_ON_DEMAND_SHARDS;
    if (count < 1)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%u' at "
                          "'shardCount' failed to satisfy constraint: Member must have value "
                          "greater than or equal to 1", count);
    uint32_t kib = o->max_record_kib ? o->max_record_kib : 1024;
    if (kib < 1024 || kib > 10240)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%u' at "
                          "'maxRecordSizeInKiB' failed to satisfy constraint: Member must have "
                          "value %s", kib, kib < 1024 ? "greater than or equal to 1024"
                                                      : "less than or equal to 10240");
    rc = check_tags(b, o->name, o->tags, o->ntags, err);
    if (rc) return rc;
    if (o->ntags > 50) return err_tag_limit(b, err, o->name);

    wr_lock(b);
    int64_t now = brk__now(b);
    brk__settle(b, now);
    if (brk__stream_slot(b, o->name, NULL) >= 0) {
        rc = sl_err_set(err, SL_EEXISTS, "Stream %s under account %s already exists.", o->name,
                        brk_account(b));
        goto out;
    }
    uint32_t open = brk__open_shards(b, now);
    if ((uint64_t)open + count > b->opts.shard_quota) {
        rc = sl_err_set(err, SL_ELIMIT, "This request would exceed the shard limit for the account "
                        "%s in %s. Current shard count for the account: %u. Limit: %u. Number of "
                        "additional shards that would have resulted from this request: %u. Refer "
                        "to the AWS Service Limits page (http://docs.aws.amazon.com/general/"
                        "latest/gr/aws_service_limits.html) for current limits and how to request "
                        "higher limits.", brk_account(b), brk_region(b), open,
                        b->opts.shard_quota, count);
        goto out;
    }
    brk_cat_stream cs;
    memset(&cs, 0, sizeof cs);
    snprintf(cs.name, sizeof cs.name, "%s", o->name);
    cs.created_ms = now;
    cs.status = b->opts.transition_ms > 0 ? BRK_CREATING : BRK_ACTIVE;
    cs.until_ms = now + (b->opts.transition_ms > 0 ? b->opts.transition_ms : 0);
    cs.mode = o->mode;
    cs.retention_hours = BRK_DEFAULT_RETENTION;
    cs.max_record_kib = kib;
    cs.next_index = 0;
    st = sl_calloc(1, sizeof *st);
    size_t dn = strlen(b->streams_dir) + 2 + strlen(o->name);
    if (st) st->dir = sl_malloc(dn);
    if (!st || !st->dir) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(st->dir, dn, "%s/%s", b->streams_dir, o->name);
    snprintf(st->name, sizeof st->name, "%s", o->name);
    st->created_ms = cs.created_ms;
    st->status = cs.status;
    st->until_ms = cs.until_ms;
    st->mode = cs.mode;
    st->retention_hours = cs.retention_hours;
    st->max_record_kib = cs.max_record_kib;
    /* Leftovers of an earlier stream of this name (crash during deletion) must not leak in. */
    brk__rmtree(st->dir);
    for (uint32_t i = 0; i < count && !rc; i++) {
        brk_cat_shard c;
        brk_shard *sh = NULL;
        brk_u128 s;
        brk_u128 e;
        memset(&c, 0, sizeof c);
        brk_hashkey_range(count, i, &s, &e);
        c.index = i;
        c.parent = c.adjacent = -1;
        brk_hashkey_format(s, c.start_hash);
        brk_hashkey_format(e, c.end_hash);
        c.created_ms = now;
        rc = brk__shard_new(b, st, &c, &sh);
        if (!rc) rc = brk__stream_add_shard(st, sh);
        if (rc) brk__shard_free(sh);
    }
    if (!rc) rc = brk__stream_reindex(st);
    if (rc) {
        rc = sl_err_set(err, rc, "out of memory");
        goto out;
    }
    cs.next_index = count;
    rc = brk_catalog_begin(b->cat);
    if (!rc) {
        rc = brk_catalog_stream_put(b->cat, &cs);
        for (size_t i = 0; i < st->nshards && !rc; i++) {
            brk_cat_shard c;
            brk__shard_to_cat(st->shards[i], &c);
            rc = brk_catalog_shard_put(b->cat, st->name, &c);
        }
        for (size_t i = 0; i < o->ntags && !rc; i++)
            rc = brk_catalog_tag_put(b->cat, st->name, o->tags[i].key, o->tags[i].value);
        if (rc) brk_catalog_rollback(b->cat);
        else rc = brk_catalog_commit(b->cat);
    }
    if (!rc) rc = insert_stream(b, st);
    if (rc) {
        rc = sl_err_set(err, rc, "catalog: cannot store stream %s: %s", o->name, sl_strerror(rc));
        goto out;
    }
    st = NULL;
out:
    rw_unlock(b);
    brk__stream_free(st);
    return rc;
}

int brk_stream_delete(brk_broker *b, const char *name, sl_err *err)
{
    char (*ids)[BRK_SHARDID_STRLEN] = NULL;
    size_t nids = 0;
    int rc = brk__check_stream_name(name, err);
    if (rc) return rc;
    wr_lock(b);
    int64_t now = brk__now(b);
    brk__settle(b, now);
    brk_stream *st = brk__stream_find(b, name, now);
    if (!st) {
        rc = brk__err_stream_not_found(b, err, name);
        goto out;
    }
    /* Consumers learn that the open shards end (watch callbacks, after the locks). */
    ids = sl_malloc((st->nopen ? st->nopen : 1) * sizeof *ids);
    if (ids) {
        for (size_t i = 0; i < st->nopen; i++) memcpy(ids[i], st->open[i]->id, sizeof ids[i]);
        nids = st->nopen;
    }
    if (st->status != BRK_DELETING) {
        brk_cat_stream cs;
        int old = st->status;
        int64_t old_until = st->until_ms;
        st->status = BRK_DELETING;
        st->until_ms = now + (b->opts.transition_ms > 0 ? b->opts.transition_ms : 0);
        brk__stream_to_cat(st, &cs);
        rc = brk_catalog_stream_put(b->cat, &cs);
        if (rc) {
            st->status = old;
            st->until_ms = old_until;
            rc = sl_err_set(err, rc, "catalog: cannot delete stream %s", name);
            goto out;
        }
    }
    brk__settle(b, now); /* reaps at once when there is no transition delay */
out:
    rw_unlock(b);
    for (size_t i = 0; i < nids && rc == 0; i++) brk__notify(b, name, ids[i], true);
    sl_free(ids);
    return rc;
}

int brk_stream_arn(const brk_broker *b, const char *name, char *buf, size_t len)
{
    int n = snprintf(buf, len, "arn:aws:kinesis:%s:%s:stream/%s", b->region, b->account,
                     name ? name : "");
    return n < 0 || (size_t)n >= len ? SL_ETOOBIG : 0;
}

int brk_stream_name_from_arn(const brk_broker *b, const char *arn, char *name, size_t len,
                             sl_err *err)
{
    /* Model pattern: arn:aws.*:kinesis:.*:\d{12}:stream/\S+ */
    const char *a = arn ? arn : "";
    const char *p;
    const char *region;
    const char *acct;
    const char *nm;
    size_t rlen;
    if (strncmp(a, "arn:aws", 7) != 0) goto bad;
    p = strstr(a + 7, ":kinesis:");
    if (!p) goto bad;
    region = p + 9;
    p = strchr(region, ':');
    if (!p) goto bad;
    rlen = (size_t)(p - region);
    acct = p + 1;
    if (strspn(acct, "0123456789") != 12 || strncmp(acct + 12, ":stream/", 8) != 0) goto bad;
    nm = acct + 20;
    if (!*nm || strpbrk(nm, " \t\r\n\f\v")) goto bad;
    if (brk__check_stream_name(nm, err) != 0) return SL_EVALIDATION;
    if (rlen != strlen(b->region) || strncmp(region, b->region, rlen) != 0 ||
        strncmp(acct, b->account, 12) != 0 || strlen(b->account) != 12)
        return sl_err_set(err, SL_ENOTFOUND, "Stream %s under account %.12s not found.", nm, acct);
    if (strlen(nm) >= len) return sl_err_set(err, SL_ETOOBIG, "stream name too long");
    memcpy(name, nm, strlen(nm) + 1);
    return 0;
bad:
    return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%s' at "
                      "'streamARN' failed to satisfy constraint: Member must satisfy regular "
                      "expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+", a);
}

static void fill_shard_info(const brk_stream *st, const brk_shard *sh, brk_shard_info *si)
{
    memset(si, 0, sizeof *si);
    memcpy(si->shard_id, sh->id, sizeof si->shard_id);
    if (sh->parent >= 0) brk__shard_format_id((uint32_t)sh->parent, si->parent);
    if (sh->adjacent >= 0) brk__shard_format_id((uint32_t)sh->adjacent, si->adjacent_parent);
    brk_hashkey_format(sh->start, si->start_hash);
    brk_hashkey_format(sh->end, si->end_hash);
    brk_seq_render(sh->prefix, 0, si->start_seq);
    if (sh->closed_ms) brk_seq_render(sh->prefix, BRK_SEQ_END, si->end_seq);
    si->open = sh->closed_ms == 0;
    si->created_ms = sh->created_ms;
    si->closed_ms = sh->closed_ms;
    (void)st;
}

int brk_stream_describe(brk_broker *b, const char *name, brk_stream_info *out, sl_err *err)
{
    int rc = 0;
    rd_lock(b);
    int64_t now = brk__now(b);
    brk_stream *st = brk__stream_find(b, name, now);
    if (!st) {
        rc = brk__err_stream_not_found(b, err, name ? name : "null");
        goto out;
    }
    brk_stream_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.name, sizeof info.name, "%s", st->name);
    brk_stream_arn(b, st->name, info.arn, sizeof info.arn);
    info.status = (enum brk_stream_status)brk__stream_status(st, now);
    info.mode = (enum brk_stream_mode)st->mode;
    info.retention_hours = st->retention_hours;
    info.max_record_kib = st->max_record_kib;
    info.created_ms = st->created_ms;
    info.open_shards = (uint32_t)st->nopen;
    info.shards = sl_calloc(st->nshards ? st->nshards : 1, sizeof *info.shards);
    if (!info.shards) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    /* A closed shard is EXPIRED (not listed) once every record it could hold is past retention:
     * its last record arrived no later than its close. */
    int64_t horizon = brk__min_arrival(st, now);
    for (size_t i = 0; i < st->nshards; i++) {
        const brk_shard *sh = st->shards[i];
        if (sh->closed_ms && sh->closed_ms < horizon) continue;
        fill_shard_info(st, sh, &info.shards[info.nshards++]);
    }
    *out = info;
out:
    rw_unlock(b);
    return rc;
}

void brk_stream_info_free(brk_stream_info *info)
{
    if (!info) return;
    sl_free(info->shards);
    info->shards = NULL;
    info->nshards = 0;
}

int brk_stream_list(brk_broker *b, char ***names, size_t *n)
{
    int rc = 0;
    rd_lock(b);
    int64_t now = brk__now(b);
    char **v = sl_calloc(b->nstreams ? b->nstreams : 1, sizeof *v);
    size_t cnt = 0;
    if (!v) rc = SL_ENOMEM;
    for (size_t i = 0; i < b->nstreams && !rc; i++) {
        if (brk__stream_status(b->streams[i], now) == BRK_GONE) continue;
        v[cnt] = sl_strdup(b->streams[i]->name);
        if (!v[cnt]) rc = SL_ENOMEM;
        else cnt++;
    }
    rw_unlock(b);
    if (rc) {
        brk_names_free(v, cnt);
        return rc;
    }
    *names = v;
    *n = cnt;
    return 0;
}

static int set_retention(brk_broker *b, const char *name, uint32_t hours, bool increase,
                         sl_err *err)
{
    int rc = brk__check_stream_name(name, err);
    if (rc) return rc;
    wr_lock(b);
    int64_t now = brk__now(b);
    brk__settle(b, now);
    brk_stream *st = brk__stream_find(b, name, now);
    if (!st) {
        rc = brk__err_stream_not_found(b, err, name);
    } else if (hours < 24) {
        rc = sl_err_set(err, SL_EINVAL, "Minimum allowed retention period is 24 hours. Requested "
                        "retention period (%u hours) is too short.", hours);
    } else if (hours > 8760) {
        rc = sl_err_set(err, SL_EINVAL, "Maximum allowed retention period is 8760 hours. "
                        "Requested retention period (%u hours) is too long.", hours);
    } else if (increase && hours < st->retention_hours) {
        rc = sl_err_set(err, SL_EINVAL, "Requested retention period (%u hours) for stream %s can "
                        "not be shorter than existing retention period (%u hours). Use "
                        "DecreaseRetentionPeriod API.", hours, name, st->retention_hours);
    } else if (!increase && hours > st->retention_hours) {
        rc = sl_err_set(err, SL_EINVAL, "Requested retention period (%u hours) for stream %s can "
                        "not be longer than existing retention period (%u hours). Use "
                        "IncreaseRetentionPeriod API.", hours, name, st->retention_hours);
    } else {
        brk_cat_stream cs;
        uint32_t old = st->retention_hours;
        int64_t old_floor = st->trim_floor_ms;
        /* What is expired now stays expired when the window grows (SPEC 1.4). */
        int64_t horizon = brk__min_arrival(st, now);
        if (increase && horizon > st->trim_floor_ms) st->trim_floor_ms = horizon;
        st->retention_hours = hours;
        brk__stream_to_cat(st, &cs);
        rc = brk_catalog_stream_put(b->cat, &cs);
        if (rc) {
            st->trim_floor_ms = old_floor;
            st->retention_hours = old;
            rc = sl_err_set(err, rc, "catalog: cannot store retention");
        }
    }
    rw_unlock(b);
    return rc;
}

int brk_retention_increase(brk_broker *b, const char *name, uint32_t hours, sl_err *err)
{
    return set_retention(b, name, hours, true, err);
}

int brk_retention_decrease(brk_broker *b, const char *name, uint32_t hours, sl_err *err)
{
    return set_retention(b, name, hours, false, err);
}

int brk_tags_add(brk_broker *b, const char *name, const brk_tag *tags, size_t n, sl_err *err)
{
    brk_tag *have = NULL;
    size_t nhave = 0;
    int rc = brk__check_stream_name(name, err);
    if (rc) return rc;
    if (n < 1)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '{}' at 'tags' "
                          "failed to satisfy constraint: Member must have length greater than or "
                          "equal to 1");
    wr_lock(b);
    int64_t now = brk__now(b);
    brk_stream *st = brk__stream_find(b, name, now);
    if (!st) {
        rc = brk__err_stream_not_found(b, err, name);
        goto out;
    }
    rc = check_tags(b, name, tags, n, err);
    if (rc) goto out;
    rc = brk_catalog_tags(b->cat, name, &have, &nhave);
    if (rc) {
        rc = sl_err_set(err, rc, "catalog: cannot read tags");
        goto out;
    }
    /* Distinct keys after the change: existing ones plus new ones not yet present (a key given
     * twice in one call counts once). */
    size_t total = nhave;
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < nhave && !seen; j++) seen = strcmp(have[j].key, tags[i].key) == 0;
        for (size_t j = 0; j < i && !seen; j++) seen = strcmp(tags[j].key, tags[i].key) == 0;
        total += !seen;
    }
    if (total > 50) {
        rc = err_tag_limit(b, err, name);
        goto out;
    }
    rc = brk_catalog_begin(b->cat);
    for (size_t i = 0; i < n && !rc; i++)
        rc = brk_catalog_tag_put(b->cat, name, tags[i].key, tags[i].value);
    if (rc) {
        brk_catalog_rollback(b->cat);
    } else {
        rc = brk_catalog_commit(b->cat);
    }
    if (rc) rc = sl_err_set(err, rc, "catalog: cannot store tags");
out:
    rw_unlock(b);
    brk_tags_free(have, nhave);
    return rc;
}

int brk_tags_remove(brk_broker *b, const char *name, char *const *keys, size_t n, sl_err *err)
{
    int rc = brk__check_stream_name(name, err);
    if (rc) return rc;
    if (n < 1 || n > 50)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '[...]' at "
                          "'tagKeys' failed to satisfy constraint: Member must have length %s",
                          n < 1 ? "greater than or equal to 1" : "less than or equal to 50");
    for (size_t i = 0; i < n; i++) {
        size_t kl = keys[i] ? strlen(keys[i]) : 0;
        if (kl < 1 || kl > 128 * 4 || utf8_count(keys[i]) > 128)
            return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%s' at "
                              "'tagKeys' failed to satisfy constraint: Member must satisfy "
                              "constraint: [Member must have length %s]", keys[i] ? keys[i] : "",
                              kl < 1 ? "greater than or equal to 1" : "less than or equal to 128");
    }
    wr_lock(b);
    int64_t now = brk__now(b);
    brk_stream *st = brk__stream_find(b, name, now);
    if (!st) {
        rc = brk__err_stream_not_found(b, err, name);
    } else {
        rc = brk_catalog_begin(b->cat);
        for (size_t i = 0; i < n && !rc; i++) rc = brk_catalog_tag_del(b->cat, name, keys[i]);
        if (rc) brk_catalog_rollback(b->cat);
        else rc = brk_catalog_commit(b->cat);
        if (rc) rc = sl_err_set(err, rc, "catalog: cannot remove tags");
    }
    rw_unlock(b);
    return rc;
}

int brk_tags_list(brk_broker *b, const char *name, brk_tag **tags, size_t *n, sl_err *err)
{
    int rc = 0;
    rd_lock(b);
    int64_t now = brk__now(b);
    if (!brk__stream_find(b, name, now)) {
        rc = brk__err_stream_not_found(b, err, name ? name : "null");
    } else {
        rc = brk_catalog_tags(b->cat, name, tags, n);
        if (rc) rc = sl_err_set(err, rc, "catalog: cannot read tags");
    }
    rw_unlock(b);
    return rc;
}

int brk_stream_set_mode(brk_broker *b, const char *name, enum brk_stream_mode mode, sl_err *err)
{
    int rc = brk__check_stream_name(name, err);
    if (rc) return rc;
    if (mode != BRK_PROVISIONED && mode != BRK_ON_DEMAND)
        return sl_err_set(err, SL_EVALIDATION, "1 validation error detected: Value '%d' at "
                          "'streamModeDetails.streamMode' failed to satisfy constraint: Member "
                          "must satisfy enum value set: [PROVISIONED, ON_DEMAND]", (int)mode);
    wr_lock(b);
    int64_t now = brk__now(b);
    brk__settle(b, now);
    brk_stream *st = brk__stream_find(b, name, now);
    if (!st) {
        rc = brk__err_stream_not_found(b, err, name);
    } else if (st->status != BRK_ACTIVE) {
        rc = brk__err_not_active(b, err, name, st->status);
    } else {
        brk_cat_stream cs;
        int old_mode = st->mode;
        st->mode = mode;
        if (b->opts.transition_ms > 0) {
            st->status = BRK_UPDATING;
            st->until_ms = now + b->opts.transition_ms;
        }
        brk__stream_to_cat(st, &cs);
        rc = brk_catalog_stream_put(b->cat, &cs);
        if (rc) {
            st->mode = old_mode;
            st->status = BRK_ACTIVE;
            rc = sl_err_set(err, rc, "catalog: cannot store the stream mode");
        }
    }
    rw_unlock(b);
    return rc;
}
