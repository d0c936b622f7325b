/* shard.h — one shard object of a stream (internal to broker/; structure in broker_int.h).
 * Ids, hash range, lazily opened log. Callers hold brk_broker.rw; brk__shard_log needs shard.mu
 * too. */
#ifndef BRK_SHARD_H
#define BRK_SHARD_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/catalog.h"
#include "broker/shard_log.h"

typedef struct brk_shard brk_shard;
typedef struct brk_stream brk_stream;

/* Allocates a shard object from its catalog row (no files touched). */
int brk__shard_new(brk_broker *b, const brk_stream *st, const brk_cat_shard *c, brk_shard **out);
void brk__shard_free(brk_shard *sh);
void brk__shard_to_cat(const brk_shard *sh, brk_cat_shard *c);
/* With sh->mu held: the shard's log, opened on first use. create=false returns NULL (and 0) when
 * the shard never had a directory, i.e. it holds no record. */
int brk__shard_log(brk_broker *b, brk_shard *sh, bool create, brk_log **out);
/* Parses "shardId-000000000005", "shardId-5" or "5" (kinesalite); false when none of them. */
bool brk__shard_parse_id(const char *s, uint32_t *index);
void brk__shard_format_id(uint32_t index, char out[BRK_SHARDID_STRLEN]);

#endif
