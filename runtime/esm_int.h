/* esm_int.h — internals shared by esm.c (mappings, shards, fetching, checkpoints), esm_batch.c
 * (batch assembly, invocation) and esm_retry.c (results, retry, bisect, discard). Not for use
 * outside these files.
 *
 * Object graph (all loop-thread owned):
 *   esm_mgr -> esm_map (one per mapping) -> esm_shard (one per consumed shard) -> esm_lane[F]
 * Records read from a shard become esm_rec objects linked twice: in the shard's list of
 * outstanding records (sequence order, drives the checkpoint) and in one lane's queue. A record
 * is freed when it is done and reaches the front of the shard list (the checkpoint passes it).
 */
#ifndef ESM_INT_H
#define ESM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "broker/broker.h"
#include "functions/event.h"
#include "runtime/esm.h"
#include "runtime/esm_filter.h"

#define ESM_NS_CONFIG "esm"
#define ESM_NS_CKPT "esm-checkpoint"

typedef struct esm_map esm_map;
typedef struct esm_shard esm_shard;
typedef struct esm_lane esm_lane;

typedef struct esm_rec {
    struct esm_rec *next_shard;  /* shard outstanding list (sequence order) */
    struct esm_rec *next_lane;   /* lane queue / window list */
    char seq[BRK_SEQ_STRLEN];
    int64_t arrival_ms;
    uint32_t invokes;            /* invocations that carried this record */
    bool done;
    size_t ev_size;              /* fn_event_record_size of this record */
    size_t pk_len;
    size_t data_len;
    char *pk;                    /* points into buf */
    uint8_t *data;               /* points into buf */
    char buf[];
} esm_rec;

/* A range [lo, hi) of the lane's current batch with its retry count (bisect stack entry). */
typedef struct esm_range {
    size_t lo, hi;
    int32_t attempts;
} esm_range;

struct esm_lane {
    esm_shard *shard;
    uint32_t idx;
    uv_timer_t timer;            /* batching window, retry backoff */
    uv_timer_t wtimer;           /* tumbling window end */

    esm_rec *qhead, *qtail;      /* records waiting for a batch */
    size_t qlen;
    size_t qbytes;               /* sum of ev_size over the queue */

    /* The batch in progress: fixed once cut (a retried batch never grows). */
    esm_rec **batch;
    size_t nbatch;
    esm_range *ranges;           /* stack; top = range being processed */
    size_t nranges, cap_ranges;
    bool busy;                   /* a batch is in progress */
    bool final_batch;            /* the batch is a tumbling window's final invoke */
    bool inflight;               /* invocation outstanding */
    fn_event_record *inflight_recs; /* the in-flight event's records (fn_event_batch), freed
                                       when its result arrives */
    fn_event_source inflight_src;   /* points at the copies below: an update of the mapping
                                       may rewrite its config while the call is out */
    char inflight_arn[ESM_ARN_LEN];
    char inflight_role[ESM_ARN_LEN];
    fn_event_batch inflight_batch;
    bool sending;                /* on-failure record being delivered */
    bool timer_armed;            /* batching window open */
    bool window_elapsed;         /* batching window closed: send what is there */
    bool backoff;                /* waiting before a retry */
    bool reinvoke;               /* the next invocation is a retry (metrics) */
    bool kicking, rekick;        /* re-entrancy guard of esm__lane_kick */
    uint32_t throttle_streak;    /* consecutive throttles/service errors (backoff exponent) */
    /* Last invocation result, for the on-failure record's responseContext. */
    bool last_has_response;
    bool last_function_error;

    /* Tumbling window (SPEC 3.8). Records accepted into the window stay not-done until the
     * final invoke succeeds, so a restart replays the window from its first record. */
    bool win_open;
    int64_t win_start, win_end;
    char *win_state;             /* running state JSON (NULL = {}) */
    esm_rec *whead, *wtail;      /* records accepted into the window */
    size_t wlen;
    bool win_early;              /* state grew past 1 MB: close now, terminated early */
    bool wtimer_armed;
};

struct esm_shard {
    esm_map *map;
    esm_shard *next;
    char id[BRK_SHARDID_STRLEN];
    esm_lane *lanes;
    uint32_t nlanes;

    esm_rec *head, *tail;        /* outstanding records, sequence order */
    size_t outstanding;
    size_t out_bytes;

    char read_seq[BRK_SEQ_STRLEN];   /* read position: "" = trim horizon */
    bool read_after;                 /* read strictly after read_seq */
    bool at_end;                     /* closed shard read to its end */
    bool fetching, refetch;          /* re-entrancy guard of esm__shard_fetch */

    int64_t stream_ms;               /* created_ms of the stream incarnation being read */
    char ckpt_seq[BRK_SEQ_STRLEN];   /* in-memory checkpoint (everything <= it handled) */
    bool ckpt_after;                 /* false only for an AT_TIMESTAMP start not yet passed */
    bool ckpt_dirty;                 /* differs from what was last handed to the writer */
    bool ckpt_writing;
    bool drained;                    /* at_end and nothing outstanding: done marker written */
    bool final_flush;                /* the stop-time checkpoint write was attempted */

    bool stopping;
    int pending_ops;                 /* invocations, deliveries and writes in flight */
    int open_handles;
    esm_metrics met;
};

/* Per-shard durable position known to the mapping (loaded from the catalog, updated when a
 * checkpoint write completes). */
typedef struct esm_pos {
    char shard_id[BRK_SHARDID_STRLEN];
    char seq[BRK_SEQ_STRLEN];
    bool after;
    bool done;
    int64_t stream_ms;   /* created_ms of the stream incarnation it belongs to (0 = unknown) */
} esm_pos;

struct esm_map {
    esm_mgr *mgr;
    esm_map *next;
    esm_config cfg;
    esm_config *pending_cfg;     /* update waiting for the consumers to stop */
    esm_filter *filter;
    uint64_t created_order;

    enum esm_state state;
    enum esm_state target;       /* state after the transition */
    char state_reason[64];
    char last_result[128];

    uv_async_t wake;             /* broker appends (from any thread) */
    uv_timer_t ttimer;           /* state transitions */
    int open_handles;
    bool closing;                /* handles being closed; freed in the last close_cb */
    bool deleting;
    bool restart;                /* stop consumers, then start again (update) */

    brk_watch *watch;
    uv_mutex_t dirty_mu;         /* guards the dirty list (written by the broker's threads) */
    char (*dirty)[BRK_SHARDID_STRLEN];
    size_t ndirty, cap_dirty;
    bool dirty_all;              /* a shard closed or appeared: rediscover */

    esm_shard *shards;
    size_t nshards;
    esm_pos *pos;
    size_t npos, cap_pos;
    int64_t retention_ms;        /* the stream's retention (records older are gone) */
    int64_t stream_ms;           /* the stream's created_ms when last described (0 = not yet) */
    int pending_ops;             /* map-level work in flight */
    esm_metrics met;             /* totals */
};

struct esm_mgr {
    uv_loop_t *loop;
    brk_broker *broker;
    char *data_dir;
    char region[64];
    char account[16];
    esm_invoker invoker;
    bool has_invoker;
    uint32_t retry_base_ms, retry_cap_ms, transition_ms;
    int64_t (*clock)(void *);
    void *clock_ctx;
    esm_map *maps;               /* creation order */
    size_t nalive;               /* mappings not yet freed (incl. closing ones) */
    uint64_t next_order;
    bool closing;
    void (*close_done)(void *);
    void *close_ctx;
};

/* Counts into a shard's metrics and its mapping's totals. */
#define ESM_MET_ADD(s, field, v)                                                              \
    do {                                                                                      \
        (s)->met.field += (v);                                                                \
        (s)->map->met.field += (v);                                                           \
    } while (0)

/* esm.c */
int64_t esm__now(const esm_mgr *m);
void esm__shard_fetch(esm_shard *s);
void esm__shard_rec_done(esm_shard *s, esm_rec *r);
void esm__shard_maybe_drained(esm_shard *s);
void esm__shard_op_done(esm_shard *s);
void esm__set_result(esm_shard *s, const char *result);

/* esm_batch.c */
void esm__lane_kick(esm_lane *l);
void esm__lane_invoke(esm_lane *l);
void esm__lane_batch_finish(esm_lane *l);
void esm__lane_window_close(esm_lane *l);
bool esm__lane_idle(const esm_lane *l);
int esm__lane_push_range(esm_lane *l, size_t lo, size_t hi, int32_t attempts);
void esm__lane_take_queue_front(esm_lane *l, esm_rec *r);
void esm__fill_event_record(const esm_shard *s, const esm_rec *r, fn_event_record *out);

/* esm_retry.c */
uint64_t esm__backoff_ms(uint32_t base_ms, uint32_t cap_ms, uint32_t attempt);
void esm__lane_retry_later(esm_lane *l, uint32_t attempt, const char *reason);
void esm__lane_on_result(void *cb_ctx, const esm_invoke_result *r);
bool esm__lane_expire(esm_lane *l);
void esm__lane_discard(esm_lane *l, size_t lo, size_t hi, const char *condition);

#endif
