/* broker_int.h — the broker's internal objects and brk__ helpers shared by broker.c, stream.c,
 * shard.c and reshard.c (STYLE 1). Nothing outside broker/ includes this.
 *
 * Locking (outermost first):
 *   brk_broker.rw      rwlock. Data-plane calls (puts, reads, iterators, describe) hold it shared;
 *               control-plane changes (create, delete, reshard, retention, tags, settling status
 *               transitions, reaping deleted streams) hold it exclusive. Streams and shard objects
 *               are therefore never freed or re-linked under a reader. Writer-preferring, so a
 *               stream of puts cannot starve a reshard.
 *   shard.mu    one shard's log: append, read, retention, lazy open, throttle buckets,
 *               last_arrival.
 *   catalog     its own recursive mutex (catalog.h), taken last.
 *   brk_broker.wmu     the watch list; never held while a callback runs.
 * brk_log_wait_durable and brk_log_sync run with brk_broker.rw shared but without shard.mu.
 */
#ifndef BRK_BROKER_INT_H
#define BRK_BROKER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/catalog.h"
#include "broker/hashkey.h"
#include "broker/iterator.h"
#include "broker/seqno.h"
#include "broker/shard_log.h"
#include "broker/throttle.h"
#include "broker/shard.h"
#include "broker/stream.h"
#include "broker/reshard.h"

#define BRK_STREAM_NAME_MAX 128
#define BRK_GONE (-1)                       /* derived status of a deleted stream */
#define BRK_GET_MAX_BYTES (10u << 20)       /* GetRecords response cap */
#define BRK_PUTS_MAX_RECORDS 500
#define BRK_PUTS_MAX_BYTES (5u << 20)
#define BRK_DEFAULT_RETENTION 24
#define BRK_DEFAULT_QUOTA 10000
#define BRK_ON_DEMAND_SHARDS 4
#define BRK_MAX_SCALINGS_PER_DAY 10

typedef struct brk_shard {
    uint32_t index;
    int64_t parent;                  /* -1 when none */
    int64_t adjacent;                /* -1 when none */
    brk_u128 start;
    brk_u128 end;
    int64_t created_ms;
    int64_t closed_ms;               /* 0 while open */
    char id[BRK_SHARDID_STRLEN];
    char prefix[BRK_SEQ_PREFIX_LEN]; /* first digits of every sequence number of this shard */
    char *dir;
    pthread_mutex_t mu;
    brk_log *log;                    /* opened lazily (shard.c); NULL = no directory yet */
    int64_t last_arrival;            /* arrival times are clamped non-decreasing */
    brk_bucket w_bytes, w_recs, r_bytes, r_calls, it_calls;
} brk_shard;

typedef struct brk_stream {
    char name[BRK_STREAM_NAME_MAX + 1];
    int64_t created_ms;
    int status;                      /* stored status; see brk__stream_status for the live one */
    int64_t until_ms;                /* when the stored transition ends */
    int mode;
    uint32_t retention_hours;
    uint32_t max_record_kib;
    int64_t trim_floor_ms;           /* raising retention does not resurrect expired records */
    char *dir;
    brk_shard **shards;              /* by index; nshards == next shard index */
    size_t nshards;
    size_t cap;
    brk_shard **open;                /* open shards sorted by start hash key */
    size_t nopen;
} brk_stream;

struct brk_watch {
    struct brk_watch *next;
    char stream[BRK_STREAM_NAME_MAX + 1];
    brk_watch_fn fn;
    void *ctx;
    int busy;                        /* callbacks running now */
    bool removed;
    bool orphan;                     /* removed from its own callback: last runner frees it */
};

struct brk_broker {
    char *data_dir;
    char *streams_dir;
    char *region;
    char *account;
    brk_opts opts;
    pthread_rwlock_t rw;
    brk_catalog *cat;
    uint8_t secret[BRK_ITER_SECRET_LEN];
    brk_stream **streams;            /* sorted by name */
    size_t nstreams;
    size_t cap;
    /* everysec flusher */
    pthread_t flusher;
    bool flusher_on;
    bool stopping;
    pthread_mutex_t fmu;
    pthread_cond_t fcv;
    /* watches */
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
    struct brk_watch *watches;
    int nwatches;                    /* read without wmu on the hot path (atomic builtins) */
    /* counters (atomic builtins) */
    uint64_t records_appended;
    uint64_t bytes_appended;
};

static inline void rd_lock(brk_broker *b) { pthread_rwlock_rdlock(&b->rw); }
static inline void wr_lock(brk_broker *b) { pthread_rwlock_wrlock(&b->rw); }
static inline void rw_unlock(brk_broker *b) { pthread_rwlock_unlock(&b->rw); }

/* ---- broker.c ---- */
int64_t brk__now(const brk_broker *b);
/* Oldest arrival time still retained for a stream at now_ms. */
int64_t brk__min_arrival(const brk_stream *st, int64_t now_ms);

/* ---- broker.c: notifications ---- */
void brk__notify(brk_broker *b, const char *stream, const char *shard_id, bool closed);

#endif
