/* stream.h — stream objects: lookup, status transitions, catalog load, common messages
 * (internal to broker/; structures in broker_int.h). Callers hold brk_broker.rw as each function
 * says. */
#ifndef BRK_STREAM_H
#define BRK_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/catalog.h"

typedef struct brk_shard brk_shard;
typedef struct brk_stream brk_stream;

/* Live status at now (CREATING/UPDATING that ended read as ACTIVE; a DELETING stream whose
 * transition ended reads as BRK_GONE). */
int brk__stream_status(const brk_stream *st, int64_t now_ms);
/* Found and not gone, else NULL. Needs rw held (either mode). */
brk_stream *brk__stream_find(brk_broker *b, const char *name, int64_t now_ms);
/* Index in b->streams of an existing entry (gone included), or -1; *ins gets the insert slot. */
long brk__stream_slot(const brk_broker *b, const char *name, size_t *ins);
/* Builds a stream object and its shards from catalog rows. */
int brk__stream_load(brk_broker *b, const brk_cat_stream *cs, brk_stream **out);
void brk__stream_free(brk_stream *st);
void brk__stream_to_cat(const brk_stream *st, brk_cat_stream *c);
/* Rebuilds st->open from the shards (sorted by start hash). */
int brk__stream_reindex(brk_stream *st);
/* Appends a shard object (index must be st->nshards). */
int brk__stream_add_shard(brk_stream *st, brk_shard *sh);
/* rw exclusive: persists finished transitions and removes deleted streams whose time is up. */
void brk__settle(brk_broker *b, int64_t now_ms);
/* Open shards across all live streams. */
uint32_t brk__open_shards(brk_broker *b, int64_t now_ms);
/* rw exclusive: replaces a stream's in-memory state with the catalog's (after a failed change). */
int brk__stream_reload(brk_broker *b, brk_stream *st);
/* Removes a directory tree (no error when absent). */
int brk__rmtree(const char *path);

/* Common messages. */
int brk__err_stream_not_found(const brk_broker *b, sl_err *err, const char *name);
int brk__err_shard_not_found(const brk_broker *b, sl_err *err, const char *name, const char *shard);
int brk__err_not_active(const brk_broker *b, sl_err *err, const char *name, int status);
/* 1 validation error for a stream name; 0 when valid. */
int brk__check_stream_name(const char *name, sl_err *err);

#endif
