/* reshard.h — SplitShard, MergeShards and UpdateShardCount on an in-memory stream plus its
 * catalog rows (internal to broker/). Callers hold brk_broker.rw exclusive and a catalog
 * transaction; on error they roll back and reload the stream (brk__stream_reload). */
#ifndef BRK_RESHARD_H
#define BRK_RESHARD_H

#include <stdint.h>

#include "broker/broker.h"
#include "broker/hashkey.h"

typedef struct brk_shard brk_shard;
typedef struct brk_stream brk_stream;

/* Closes sh and adds children [start, key-1] and [key, end] (key must lie in (start, end]). */
int brk__split(brk_broker *b, brk_stream *st, brk_shard *sh, brk_u128 key, int64_t now_ms);
/* Closes a and adj (adjacent, open) and adds their union as one child (parent a, adjacent
 * parent adj). *child receives the new shard. */
int brk__merge(brk_broker *b, brk_stream *st, brk_shard *a, brk_shard *adj, int64_t now_ms,
               brk_shard **child);
/* Reshapes the open shards into `target` equal ranges (SPEC 2.1 layout) with real splits and
 * merges. */
int brk__uniform_scale(brk_broker *b, brk_stream *st, uint32_t target, int64_t now_ms);

#endif
