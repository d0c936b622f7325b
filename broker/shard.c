/* shard.c — one shard object: identity, hash range, lazily opened log, id parsing. */
#include "broker/shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker/broker_int.h"

void brk__shard_format_id(uint32_t index, char out[BRK_SHARDID_STRLEN])
{
    snprintf(out, BRK_SHARDID_STRLEN, "shardId-%012u", index);
}

bool brk__shard_parse_id(const char *s, uint32_t *index)
{
    /* kinesalite compatibility: "shardId-<digits>" or bare "<digits>", up to 2^31-1. */
    if (!s) return false;
    const char *d = s;
    if (strncmp(s, "shardId-", 8) == 0) d = s + 8;
    size_t n = strlen(d);
    if (n == 0 || n > 12 || strspn(d, "0123456789") != n) return false;
    unsigned long long v = strtoull(d, NULL, 10);
    if (v > 2147483647ULL) return false;
    *index = (uint32_t)v;
    return true;
}

int brk__shard_new(brk_broker *b, const brk_stream *st, const brk_cat_shard *c, brk_shard **out)
{
    brk_shard *sh = sl_calloc(1, sizeof *sh);
    if (!sh) return SL_ENOMEM;
    sh->index = c->index;
    sh->parent = c->parent;
    sh->adjacent = c->adjacent;
    if (brk_hashkey_parse(c->start_hash, &sh->start) != 0 ||
        brk_hashkey_parse(c->end_hash, &sh->end) != 0) {
        sl_free(sh);
        return SL_ECORRUPT;
    }
    sh->created_ms = c->created_ms;
    sh->closed_ms = c->closed_ms;
    brk__shard_format_id(c->index, sh->id);
    brk_seq_prefix(st->created_ms, c->index, sh->prefix);
    size_t n = strlen(st->dir) + 1 + sizeof sh->id;
    sh->dir = sl_malloc(n);
    if (!sh->dir) {
        sl_free(sh);
        return SL_ENOMEM;
    }
    snprintf(sh->dir, n, "%s/%s", st->dir, sh->id);
    pthread_mutex_init(&sh->mu, NULL);
    int64_t now = brk__now(b);
    brk_bucket_init(&sh->w_bytes, BRK_THR_WRITE_BYTES, BRK_THR_WRITE_BYTES, now);
    brk_bucket_init(&sh->w_recs, BRK_THR_WRITE_RECORDS, BRK_THR_WRITE_RECORDS, now);
    brk_bucket_init(&sh->r_bytes, BRK_THR_READ_BYTES, BRK_THR_READ_BYTES, now);
    brk_bucket_init(&sh->r_calls, BRK_THR_READ_CALLS, BRK_THR_READ_CALLS, now);
    brk_bucket_init(&sh->it_calls, BRK_THR_ITER_CALLS, BRK_THR_ITER_CALLS, now);
    *out = sh;
    return 0;
}

void brk__shard_free(brk_shard *sh)
{
    if (!sh) return;
    brk_log_close(sh->log);
    pthread_mutex_destroy(&sh->mu);
    sl_free(sh->dir);
    sl_free(sh);
}

void brk__shard_to_cat(const brk_shard *sh, brk_cat_shard *c)
{
    memset(c, 0, sizeof *c);
    c->index = sh->index;
    c->parent = sh->parent;
    c->adjacent = sh->adjacent;
    brk_hashkey_format(sh->start, c->start_hash);
    brk_hashkey_format(sh->end, c->end_hash);
    c->created_ms = sh->created_ms;
    c->closed_ms = sh->closed_ms;
}

int brk__shard_log(brk_broker *b, brk_shard *sh, bool create, brk_log **out)
{
    struct stat sb;
    sl_err e;
    if (sh->log) {
        *out = sh->log;
        return 0;
    }
    /* A shard that never received a record has no directory; reading it must not create one
     * (intermediate shards of UpdateShardCount stay file-less). */
    if (!create && stat(sh->dir, &sb) != 0) {
        *out = NULL;
        return errno == ENOENT ? 0 : -errno;
    }
    brk_log_opts lo = {.segment_bytes = b->opts.segment_bytes, .fsync = b->opts.fsync};
    int rc = brk_log_open(&sh->log, sh->dir, &lo, &e);
    if (rc) {
        sh->log = NULL;
        return rc;
    }
    uint64_t seq;
    int64_t arrival;
    if (brk_log_last(sh->log, &seq, &arrival) && arrival > sh->last_arrival)
        sh->last_arrival = arrival;
    *out = sh->log;
    return 0;
}
