/* catalog.h — the broker's SQLite catalog (DESIGN decision 2): streams, shards and their lineage,
 * tags, UpdateShardCount history, secrets and the generic meta key/value area of broker.h.
 *
 * One connection in WAL mode with synchronous=NORMAL (a committed transaction survives a process
 * crash; the last one may be lost on power failure). A schema_version table records the layout
 * (CATALOG_SCHEMA in catalog.c); a newer version than this code knows is refused.
 *
 * Threads: every function is thread-safe (one recursive mutex). brk_catalog_begin holds that mutex
 * until brk_catalog_commit/rollback, so a multi-statement change is atomic for other threads too.
 * Record data never goes here.
 */
#ifndef BRK_CATALOG_H
#define BRK_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"

typedef struct brk_catalog brk_catalog;

typedef struct brk_cat_stream {
    char name[129];
    int64_t created_ms;
    int status;                   /* enum brk_stream_status as stored */
    int64_t until_ms;             /* end of the CREATING/UPDATING/DELETING transition */
    int mode;                     /* enum brk_stream_mode */
    uint32_t retention_hours;
    uint32_t max_record_kib;
    uint32_t next_index;          /* next shard index to allocate */
    int64_t trim_floor_ms;        /* records older than this stay invisible (retention raised) */
} brk_cat_stream;

typedef struct brk_cat_shard {
    uint32_t index;
    int64_t parent;               /* -1 when none */
    int64_t adjacent;             /* -1 when none */
    char start_hash[BRK_HASHKEY_STRLEN];
    char end_hash[BRK_HASHKEY_STRLEN];
    int64_t created_ms;
    int64_t closed_ms;            /* 0 while open */
} brk_cat_shard;

/* Opens/creates the database file at path. SL_EIO / SL_ECORRUPT with a message on failure. */
int brk_catalog_open(brk_catalog **out, const char *path, sl_err *err);
void brk_catalog_close(brk_catalog *c);

int brk_catalog_begin(brk_catalog *c);
int brk_catalog_commit(brk_catalog *c);
void brk_catalog_rollback(brk_catalog *c);

/* Returns the named secret, creating it from the system RNG on first use. */
int brk_catalog_secret(brk_catalog *c, const char *name, uint8_t *buf, size_t len);

int brk_catalog_stream_put(brk_catalog *c, const brk_cat_stream *s);   /* insert or replace */
/* Deletes the stream and its shards, tags and scaling history. */
int brk_catalog_stream_del(brk_catalog *c, const char *name);
/* Every stream; free *out with sl_free. */
int brk_catalog_streams(brk_catalog *c, brk_cat_stream **out, size_t *n);

int brk_catalog_shard_put(brk_catalog *c, const char *stream, const brk_cat_shard *s);
/* Shards of a stream by index; free *out with sl_free. */
int brk_catalog_shards(brk_catalog *c, const char *stream, brk_cat_shard **out, size_t *n);

int brk_catalog_tag_put(brk_catalog *c, const char *stream, const char *key, const char *value);
int brk_catalog_tag_del(brk_catalog *c, const char *stream, const char *key);
/* Sorted by key; free with brk_tags_free. */
int brk_catalog_tags(brk_catalog *c, const char *stream, brk_tag **out, size_t *n);

int brk_catalog_scaling_add(brk_catalog *c, const char *stream, int64_t at_ms);
int brk_catalog_scaling_count(brk_catalog *c, const char *stream, int64_t since_ms,
                              uint32_t *count);

int brk_catalog_meta_put(brk_catalog *c, const char *ns, const char *key, const char *value,
                         size_t len);
int brk_catalog_meta_get(brk_catalog *c, const char *ns, const char *key, char **value,
                         size_t *len);
/* Deleting an absent key succeeds (idempotent). */
int brk_catalog_meta_del(brk_catalog *c, const char *ns, const char *key);
int brk_catalog_meta_keys(brk_catalog *c, const char *ns, char ***keys, size_t *n);

#endif
