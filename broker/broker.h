/* broker.h — the shard broker's public C API (Kinesis Data Streams semantics, SPEC.md 1-2).
 *
 * One brk holds a data directory: the SQLite catalog (streams, shards, lineage, tags, plus a
 * small key/value area for the runtime's metadata and checkpoints) and one directory of
 * append-only segment files per shard. No libuv, no HTTP.
 *
 * Threads: every brk_* function is thread-safe (the daemon calls puts from its loop and from
 * Lua worker threads). Callbacks registered with brk_watch run on the appending thread, after the
 * broker has released its locks; they must be short and thread-safe (uv_async_send).
 *
 * Errors: functions return 0 or a negative SL_E* / -errno code. When `err` is non-NULL it is
 * filled with the same code and the exact message text AWS sends for that case (SPEC 1.2-1.4,
 * 2), so the API layer only has to pick the error type from the code:
 *   SL_EVALIDATION  ValidationException        SL_EINVAL     InvalidArgumentException
 *   SL_ENOTFOUND    ResourceNotFoundException  SL_EINUSE/SL_EEXISTS ResourceInUseException
 *   SL_ELIMIT       LimitExceededException     SL_ETHROTTLED ProvisionedThroughputExceeded...
 *   SL_EEXPIRED     ExpiredIteratorException   SL_ETOKEN_EXPIRED ExpiredNextTokenException
 * Nothing stored changes when a call fails (per-record failures in brk_put_records excepted:
 * the records that succeeded are stored).
 *
 * Identifiers: streams are addressed by name; the API layer resolves StreamARN to a name with
 * brk_stream_name_from_arn. Shard ids are "shardId-%012u"; functions taking a shard id also
 * accept the bare forms "5" and "shardId-5" (kinesalite compatibility) and normalise them.
 * Sequence numbers cross this API as 56-digit decimal strings (SPEC decisions); inside, they are
 * a per-shard 64-bit counter.
 */
#ifndef BRK_BROKER_H
#define BRK_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/sl_common.h"

typedef struct brk_broker brk_broker;

enum brk_fsync { BRK_FSYNC_EVERYSEC = 0, BRK_FSYNC_ALWAYS, BRK_FSYNC_NO };

typedef struct brk_opts {
    const char *data_dir;         /* created if missing; holds catalog.db and streams/ */
    enum brk_fsync fsync;         /* durability policy (DESIGN decision 1) */
    const char *region;           /* "us-east-1" when NULL */
    const char *account;          /* "000000000000" when NULL */
    bool throttle;                /* per-shard token buckets (SPEC 2.6); off by default */
    int64_t transition_ms;        /* CREATING->ACTIVE, UPDATING->ACTIVE, DELETING->gone delay;
                                     0 = instantaneous; the daemon uses a short delay (500 ms) */
    size_t segment_bytes;         /* segment roll size; 0 = default (64 MiB) */
    uint32_t shard_quota;         /* open shards per account; 0 = default (10000) */
    /* Test hook: clock in epoch ms; NULL = sl_now_ms. Called with clock_ctx. */
    int64_t (*clock)(void *clock_ctx);
    void *clock_ctx;
} brk_opts;

/* Opens (creating if needed) a data directory; recovers every shard's tail (torn record
 * truncated). Starts the background fsync thread for BRK_FSYNC_EVERYSEC. */
int brk_open(brk_broker **out, const brk_opts *opts, sl_err *err);
/* Flushes and fsyncs everything, stops background threads, closes the catalog. NULL is fine. */
void brk_close(brk_broker *b);
/* Periodic housekeeping (retention: deletes whole expired segments; status transitions that
 * are due; DELETING streams removed). The daemon calls it about once a second; safe anytime. */
void brk_maintain(brk_broker *b);

const char *brk_region(const brk_broker *b);
const char *brk_account(const brk_broker *b);

/* ---- streams ------------------------------------------------------------------------------ */

enum brk_stream_status { BRK_CREATING, BRK_ACTIVE, BRK_UPDATING, BRK_DELETING };
enum brk_stream_mode { BRK_PROVISIONED, BRK_ON_DEMAND };

const char *brk_status_name(enum brk_stream_status s); /* "CREATING", ... */
const char *brk_mode_name(enum brk_stream_mode m);     /* "PROVISIONED", "ON_DEMAND" */

typedef struct brk_tag {
    char *key;
    char *value;
} brk_tag;

typedef struct brk_create_opts {
    const char *name;
    uint32_t shard_count;         /* 0 with ON_DEMAND = 4 shards; required (>=1) for PROVISIONED */
    enum brk_stream_mode mode;
    uint32_t max_record_kib;      /* 0 = 1024; else 1024..10240 */
    const brk_tag *tags;          /* may be NULL */
    size_t ntags;
} brk_create_opts;

int brk_stream_create(brk_broker *b, const brk_create_opts *o, sl_err *err);
/* Marks the stream DELETING (visible as such for transition_ms) and then removes it with its
 * shards' files. Appends and reads fail with SL_ENOTFOUND once it is gone. */
int brk_stream_delete(brk_broker *b, const char *name, sl_err *err);

/* "arn:aws:kinesis:<region>:<account>:stream/<name>" */
int brk_stream_arn(const brk_broker *b, const char *name, char *buf, size_t len);
/* Resolves an ARN to a stream name (checks shape, region and account). SL_EVALIDATION for a
 * malformed ARN, SL_ENOTFOUND for another account/region. */
int brk_stream_name_from_arn(const brk_broker *b, const char *arn, char *name, size_t len, sl_err *err);

/* Hash keys cross the API as decimal strings of up to 39 digits. */
#define BRK_HASHKEY_STRLEN 40
/* Sequence numbers: exactly 56 decimal digits plus NUL. */
#define BRK_SEQ_STRLEN 57
#define BRK_SHARDID_STRLEN 24

typedef struct brk_shard_info {
    char shard_id[BRK_SHARDID_STRLEN];
    char parent[BRK_SHARDID_STRLEN];          /* "" when none */
    char adjacent_parent[BRK_SHARDID_STRLEN]; /* "" when none */
    char start_hash[BRK_HASHKEY_STRLEN];
    char end_hash[BRK_HASHKEY_STRLEN];
    char start_seq[BRK_SEQ_STRLEN];
    char end_seq[BRK_SEQ_STRLEN];             /* "" while open */
    bool open;
    int64_t created_ms;
    int64_t closed_ms;                        /* 0 while open */
} brk_shard_info;

typedef struct brk_stream_info {
    char name[129];
    char arn[256];
    enum brk_stream_status status;
    enum brk_stream_mode mode;
    uint32_t retention_hours;
    uint32_t max_record_kib;
    int64_t created_ms;
    uint32_t open_shards;
    brk_shard_info *shards;   /* every non-expired shard (open and closed), by shard index */
    size_t nshards;
} brk_stream_info;

/* Fills a snapshot; free with brk_stream_info_free. SL_ENOTFOUND with AWS's message
 * ("Stream foo under account 000000000000 not found."). */
int brk_stream_describe(brk_broker *b, const char *name, brk_stream_info *out, sl_err *err);
void brk_stream_info_free(brk_stream_info *info);

/* All stream names in lexicographic order; free with brk_names_free. */
int brk_stream_list(brk_broker *b, char ***names, size_t *n);
void brk_names_free(char **names, size_t n);

/* Retention: SPEC 1.4 rules and messages (24..8760; increase may not shorten, decrease may
 * not lengthen). */
int brk_retention_increase(brk_broker *b, const char *name, uint32_t hours, sl_err *err);
int brk_retention_decrease(brk_broker *b, const char *name, uint32_t hours, sl_err *err);

/* Tags: add overwrites same keys; > 50 per stream is SL_EINVAL; list is sorted by key. */
int brk_tags_add(brk_broker *b, const char *name, const brk_tag *tags, size_t n, sl_err *err);
int brk_tags_remove(brk_broker *b, const char *name, char *const *keys, size_t n, sl_err *err);
int brk_tags_list(brk_broker *b, const char *name, brk_tag **tags, size_t *n, sl_err *err);
void brk_tags_free(brk_tag *tags, size_t n);

int brk_stream_set_mode(brk_broker *b, const char *name, enum brk_stream_mode mode, sl_err *err);

/* ---- resharding (SPEC 1.4, 2.5) ------------------------------------------------------------ */

int brk_split_shard(brk_broker *b, const char *name, const char *shard_id,
                    const char *new_starting_hash_key, sl_err *err);
int brk_merge_shards(brk_broker *b, const char *name, const char *shard_id, const char *adjacent_id,
                     sl_err *err);
/* UNIFORM_SCALING to `target` open shards (built on splits and merges; the final open shards
 * cover equal ranges as in SPEC 2.1). Out: the open count before. */
int brk_update_shard_count(brk_broker *b, const char *name, uint32_t target, uint32_t *current,
                           sl_err *err);

/* ---- appends ------------------------------------------------------------------------------- */

typedef struct brk_put_entry {
    const uint8_t *data;
    size_t data_len;
    const char *partition_key;     /* UTF-8, 1..256 characters */
    size_t pk_len;                 /* bytes */
    const char *explicit_hash_key; /* decimal string or NULL */
} brk_put_entry;

typedef struct brk_put_result {
    int code;                              /* 0, or the per-record SL_E* */
    char shard_id[BRK_SHARDID_STRLEN];
    char seq[BRK_SEQ_STRLEN];
    char error_code[48];                   /* AWS per-record ErrorCode when code != 0 */
    char error_message[256];
} brk_put_result;

/* One record (PutRecord). seq_for_ordering may be NULL. Whole-call errors only. */
int brk_put_record(brk_broker *b, const char *stream, const brk_put_entry *e,
                   const char *seq_for_ordering, brk_put_result *res, sl_err *err);
/* A batch (PutRecords, 1..500 records, 5 MiB): validation errors fail the whole call; per-record
 * failures (throttling) are reported in res[i] and counted in *failed. res has n entries. */
int brk_put_records(brk_broker *b, const char *stream, const brk_put_entry *e, size_t n,
                    brk_put_result *res, size_t *failed, sl_err *err);

/* ---- reads --------------------------------------------------------------------------------- */

enum brk_iter_type {
    BRK_AT_SEQUENCE_NUMBER,
    BRK_AFTER_SEQUENCE_NUMBER,
    BRK_TRIM_HORIZON,
    BRK_LATEST,
    BRK_AT_TIMESTAMP,
};

/* The opaque token is at most 512 characters (BRK_ITER_MAX incl. NUL). seq is required for
 * AT_/AFTER_SEQUENCE_NUMBER and must be NULL otherwise; timestamp_ms is used only with
 * AT_TIMESTAMP (has_timestamp says whether one was given). */
#define BRK_ITER_MAX 513
int brk_get_iterator(brk_broker *b, const char *stream, const char *shard_id, enum brk_iter_type type,
                     const char *seq, bool has_timestamp, int64_t timestamp_ms,
                     char iterator[BRK_ITER_MAX], sl_err *err);

typedef struct brk_record {
    char seq[BRK_SEQ_STRLEN];
    int64_t arrival_ms;
    const char *partition_key;  /* points into brk_records.buf */
    size_t pk_len;
    const uint8_t *data;        /* points into brk_records.buf */
    size_t data_len;
} brk_record;

typedef struct brk_child_shard {
    char shard_id[BRK_SHARDID_STRLEN];
    char parents[2][BRK_SHARDID_STRLEN];
    size_t nparents;
    char start_hash[BRK_HASHKEY_STRLEN];
    char end_hash[BRK_HASHKEY_STRLEN];
} brk_child_shard;

typedef struct brk_records {
    brk_record *recs;
    size_t n;
    char next_iterator[BRK_ITER_MAX];  /* "" when the closed shard is drained (null in JSON) */
    int64_t millis_behind;
    brk_child_shard children[2];       /* only when next_iterator is "" */
    size_t nchildren;
    uint8_t *buf;                      /* owns keys and data */
} brk_records;

/* GetRecords: up to `limit` records (1..10000) and 10 MiB from the iterator's position. Never
 * blocks. Free the result with brk_records_free. SL_EINVAL "Invalid ShardIterator." for a
 * forged/garbled token, SL_EEXPIRED with AWS's text for an old one. */
int brk_get_records(brk_broker *b, const char *iterator, uint32_t limit, brk_records *out, sl_err *err);
void brk_records_free(brk_records *r);

/* ---- direct shard reads for in-process consumers (event-source mappings) ------------------- *
 * Same data as GetRecords without tokens: read from a position given as a sequence number
 * (after=true: strictly after it; seq NULL/"" = trim horizon). Records older than retention
 * are skipped. `*end` is set when the shard is closed and the read reached its end. */
int brk_read_shard(brk_broker *b, const char *stream, const char *shard_id, const char *seq, bool after,
                   uint32_t limit, size_t max_bytes, brk_records *out, bool *end, sl_err *err);
/* Sequence number of the newest record of a shard ("" when empty) and of the first record at or
 * after timestamp_ms ("" when none yet). */
int brk_shard_tip(brk_broker *b, const char *stream, const char *shard_id, char seq[BRK_SEQ_STRLEN],
                  sl_err *err);
int brk_shard_seq_at_time(brk_broker *b, const char *stream, const char *shard_id, int64_t ts_ms,
                          char seq[BRK_SEQ_STRLEN], sl_err *err);

/* Records ever appended to a shard (its next sequence counter: counters are consecutive from
 * 0), retained or not. For metrics. */
int brk_shard_count(brk_broker *b, const char *stream, const char *shard_id, uint64_t *count,
                    sl_err *err);

/* Sequence number helpers: compare (<0, 0, >0; numeric), shard index it encodes. */
int brk_seq_cmp(const char *a, const char *b);
int brk_seq_shard_index(const char *seq, uint32_t *index);

/* ---- notification --------------------------------------------------------------------------- */

/* Called after records were appended to a shard of `stream` (and when a shard closes, with
 * closed=true). Runs on the appending thread with no broker lock held. */
typedef void (*brk_watch_fn)(void *ctx, const char *stream, const char *shard_id, bool closed);
typedef struct brk_watch brk_watch;
/* Watches every shard of a stream (shards created later included). */
int brk_watch_add(brk_broker *b, const char *stream, brk_watch_fn fn, void *ctx, brk_watch **out);
/* After it returns the callback is not running and will not run again. NULL is fine. Called from
 * the watch's own callback it returns at once (that callback finishes, none runs again). */
void brk_watch_remove(brk_broker *b, brk_watch *w);

/* ---- catalog key/value area for other modules (functions, mappings, checkpoints) ----------- *
 * Small values (JSON text) keyed by (ns, key) in the same SQLite catalog; durable when the call
 * returns (WAL, synchronous=NORMAL). */
int brk_meta_put(brk_broker *b, const char *ns, const char *key, const char *value, size_t len);
/* *value is a NUL-terminated copy (free with sl_free); SL_ENOTFOUND when absent. */
int brk_meta_get(brk_broker *b, const char *ns, const char *key, char **value, size_t *len);
/* Deleting an absent key is not an error (returns 0). */
int brk_meta_del(brk_broker *b, const char *ns, const char *key);
/* Every key of a namespace in key order; free with brk_names_free. */
int brk_meta_keys(brk_broker *b, const char *ns, char ***keys, size_t *n);

/* Broker-wide counters (for /health and benchmarks). */
typedef struct brk_stats {
    uint32_t streams;
    uint32_t open_shards;
    uint64_t records_appended;
    uint64_t bytes_appended;
} brk_stats;
void brk_get_stats(brk_broker *b, brk_stats *out);

#endif
