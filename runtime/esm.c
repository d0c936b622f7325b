/* esm.c — event-source mappings: lifecycle of mappings (create/update/delete, states, durable
 * configuration), shard discovery with lineage, per-shard consumers fed by broker wake-ups,
 * and durable checkpoints. Batch assembly lives in esm_batch.c, result handling in esm_retry.c.
 *
 * Concurrency: everything runs on the loop thread except esm_watch_cb (broker appending
 * threads: it only appends to a mutex-guarded dirty list and calls uv_async_send) and the
 * uv_queue_work bodies (catalog writes), which touch nothing but their own work item.
 */
#include "runtime/esm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "runtime/dest.h"
#include "runtime/esm_int.h"
#include "runtime/log.h"

/* Read-ahead per shard: enough for every lane to cut a full batch and have the next one ready. */
#define READ_AHEAD_BATCHES 2
#define READ_AHEAD_BYTES (16u * 1024 * 1024)
#define READ_MAX_BYTES (8u * 1024 * 1024)

static void map_sync(esm_map *mp);
static void map_discover(esm_map *mp);
static void shard_stop(esm_shard *s);
static void shard_try_close(esm_shard *s);
static void ckpt_flush(esm_shard *s);
static void esm_watch_cb(void *ctx, const char *stream, const char *shard_id, bool closed);

/* ---- small helpers ------------------------------------------------------------------------- */

int64_t esm__now(const esm_mgr *m)
{
    return m->clock ? m->clock(m->clock_ctx) : sl_now_ms();
}

const char *esm_state_name(enum esm_state s)
{
    static const char *const names[] = {"Creating", "Enabling", "Enabled", "Disabling",
                                        "Disabled", "Updating", "Deleting"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "Unknown";
}

const char *esm_start_pos_name(enum esm_start_pos p)
{
    switch (p) {
    case ESM_START_TRIM_HORIZON: return "TRIM_HORIZON";
    case ESM_START_LATEST: return "LATEST";
    case ESM_START_AT_TIMESTAMP: return "AT_TIMESTAMP";
    }
    return "TRIM_HORIZON";
}

void esm_config_defaults(esm_config *c)
{
    memset(c, 0, sizeof *c);
    c->enabled = true;
    c->batch_size = 100;
    c->start_pos = ESM_START_TRIM_HORIZON;
    c->parallelization = 1;
    c->max_retry = -1;
    c->max_age_s = -1;
}

void esm_config_clear(esm_config *c)
{
    if (!c) return;
    sl_free(c->filter_json);
    sl_free(c->destination);
    c->filter_json = NULL;
    c->destination = NULL;
}

int esm_config_copy(esm_config *dst, const esm_config *src)
{
    char *f = src->filter_json ? sl_strdup(src->filter_json) : NULL;
    char *d = src->destination ? sl_strdup(src->destination) : NULL;
    if ((src->filter_json && !f) || (src->destination && !d)) {
        sl_free(f);
        sl_free(d);
        return SL_ENOMEM;
    }
    *dst = *src;
    dst->filter_json = f;
    dst->destination = d;
    return 0;
}

void esm_view_clear(esm_view *v)
{
    if (v) esm_config_clear(&v->cfg);
}

void esm_views_free(esm_view *v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) esm_view_clear(&v[i]);
    sl_free(v);
}

static void met_set_result(esm_metrics *mt, const char *result)
{
    snprintf(mt->last_result, sizeof mt->last_result, "%s", result);
}

void esm__set_result(esm_shard *s, const char *result)
{
    met_set_result(&s->met, result);
    met_set_result(&s->map->met, result);
    snprintf(s->map->last_result, sizeof s->map->last_result, "%s", result);
}

/* ---- configuration persistence (namespace "esm", one JSON document per mapping) ---------- */

static char *config_to_json(const esm_config *c, uint64_t order)
{
    cJSON *o = cJSON_CreateObject();
    char *out = NULL;
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddNumberToObject(o, "order", (double)order);
    cJSON_AddStringToObject(o, "uuid", c->uuid);
    cJSON_AddStringToObject(o, "functionArn", c->function_arn);
    cJSON_AddStringToObject(o, "roleArn", c->role_arn);
    cJSON_AddStringToObject(o, "streamArn", c->stream_arn);
    cJSON_AddStringToObject(o, "stream", c->stream);
    cJSON_AddBoolToObject(o, "enabled", c->enabled);
    cJSON_AddNumberToObject(o, "batchSize", c->batch_size);
    cJSON_AddNumberToObject(o, "maxWindow", c->max_window_s);
    cJSON_AddNumberToObject(o, "startPos", c->start_pos);
    cJSON_AddNumberToObject(o, "startTs", (double)c->start_ts_ms);
    cJSON_AddNumberToObject(o, "parallelization", c->parallelization);
    cJSON_AddBoolToObject(o, "bisect", c->bisect);
    cJSON_AddNumberToObject(o, "maxRetry", c->max_retry);
    cJSON_AddNumberToObject(o, "maxAge", c->max_age_s);
    cJSON_AddBoolToObject(o, "reportFailures", c->report_failures);
    cJSON_AddNumberToObject(o, "tumbling", c->tumbling_s);
    if (c->filter_json) cJSON_AddStringToObject(o, "filter", c->filter_json);
    if (c->destination) cJSON_AddStringToObject(o, "destination", c->destination);
    cJSON_AddNumberToObject(o, "lastModified", (double)c->last_modified_ms);
    out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

static void json_str(const cJSON *o, const char *k, char *dst, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsString(v)) snprintf(dst, n, "%s", v->valuestring);
}

static double json_num(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static bool json_bool(const cJSON *o, const char *k, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static int config_from_json(const char *text, esm_config *c, uint64_t *order)
{
    cJSON *o = cJSON_Parse(text);
    const cJSON *v;
    int rc = SL_ECORRUPT;

    esm_config_defaults(c);
    if (!cJSON_IsObject(o)) goto out;
    json_str(o, "uuid", c->uuid, sizeof c->uuid);
    json_str(o, "functionArn", c->function_arn, sizeof c->function_arn);
    json_str(o, "roleArn", c->role_arn, sizeof c->role_arn);
    json_str(o, "streamArn", c->stream_arn, sizeof c->stream_arn);
    json_str(o, "stream", c->stream, sizeof c->stream);
    if (!c->uuid[0] || !c->function_arn[0] || !c->stream[0]) goto out;
    *order = (uint64_t)json_num(o, "order", 0);
    c->enabled = json_bool(o, "enabled", true);
    c->batch_size = (uint32_t)json_num(o, "batchSize", 100);
    c->max_window_s = (uint32_t)json_num(o, "maxWindow", 0);
    c->start_pos = (enum esm_start_pos)json_num(o, "startPos", 0);
    c->start_ts_ms = (int64_t)json_num(o, "startTs", 0);
    c->parallelization = (uint32_t)json_num(o, "parallelization", 1);
    c->bisect = json_bool(o, "bisect", false);
    c->max_retry = (int32_t)json_num(o, "maxRetry", -1);
    c->max_age_s = (int32_t)json_num(o, "maxAge", -1);
    c->report_failures = json_bool(o, "reportFailures", false);
    c->tumbling_s = (uint32_t)json_num(o, "tumbling", 0);
    c->last_modified_ms = (int64_t)json_num(o, "lastModified", 0);
    if (c->batch_size < 1 || c->batch_size > 10000 || c->parallelization < 1 ||
        c->parallelization > 10)
        goto out;
    v = cJSON_GetObjectItemCaseSensitive(o, "filter");
    if (cJSON_IsString(v) && !(c->filter_json = sl_strdup(v->valuestring))) {
        rc = SL_ENOMEM;
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "destination");
    if (cJSON_IsString(v) && !(c->destination = sl_strdup(v->valuestring))) {
        rc = SL_ENOMEM;
        goto out;
    }
    rc = 0;
out:
    if (rc) esm_config_clear(c);
    cJSON_Delete(o);
    return rc;
}

static int config_store(esm_mgr *m, const esm_config *c, uint64_t order)
{
    char *js = config_to_json(c, order);
    int rc;
    if (!js) return SL_ENOMEM;
    /* Control-plane writes are rare and must be durable before the 202: done inline. */
    rc = brk_meta_put(m->broker, ESM_NS_CONFIG, c->uuid, js, strlen(js));
    cJSON_free(js);
    return rc;
}

/* ---- durable positions (namespace "esm-checkpoint", key "<uuid>/<shardId>") ------------ */

static esm_pos *pos_find(esm_map *mp, const char *shard_id)
{
    for (size_t i = 0; i < mp->npos; i++)
        if (!strcmp(mp->pos[i].shard_id, shard_id)) return &mp->pos[i];
    return NULL;
}

static int pos_set(esm_map *mp, const esm_pos *p)
{
    esm_pos *e = pos_find(mp, p->shard_id);
    if (!e) {
        if (mp->npos == mp->cap_pos) {
            size_t cap = mp->cap_pos ? mp->cap_pos * 2 : 8;
            esm_pos *np = sl_realloc(mp->pos, cap * sizeof *np);
            if (!np) return SL_ENOMEM;
            mp->pos = np;
            mp->cap_pos = cap;
        }
        e = &mp->pos[mp->npos++];
    }
    *e = *p;
    return 0;
}

static char *pos_to_json(const esm_pos *p)
{
    char *out = sl_malloc(192);
    if (out)
        snprintf(out, 192, "{\"seq\":\"%s\",\"after\":%s,\"done\":%s,\"stream\":%" PRId64 "}",
                 p->seq, p->after ? "true" : "false", p->done ? "true" : "false",
                 p->stream_ms);
    return out;
}

static int pos_from_json(const char *text, esm_pos *p)
{
    cJSON *o = cJSON_Parse(text);
    int rc = SL_ECORRUPT;
    if (cJSON_IsObject(o)) {
        json_str(o, "seq", p->seq, sizeof p->seq);
        p->after = json_bool(o, "after", true);
        p->done = json_bool(o, "done", false);
        p->stream_ms = (int64_t)json_num(o, "stream", 0);
        rc = 0;
    }
    cJSON_Delete(o);
    return rc;
}

static int pos_store_sync(esm_mgr *m, const char *uuid, const esm_pos *p)
{
    char key[ESM_UUID_LEN + BRK_SHARDID_STRLEN + 2];
    char *js = pos_to_json(p);
    int rc;
    if (!js) return SL_ENOMEM;
    snprintf(key, sizeof key, "%s/%s", uuid, p->shard_id);
    rc = brk_meta_put(m->broker, ESM_NS_CKPT, key, js, strlen(js));
    sl_free(js);
    return rc;
}

/* Loads every checkpoint of a mapping into mp->pos. */
static int pos_load(esm_map *mp)
{
    esm_mgr *m = mp->mgr;
    char **keys = NULL;
    size_t n = 0;
    size_t plen = strlen(mp->cfg.uuid);
    int rc = brk_meta_keys(m->broker, ESM_NS_CKPT, &keys, &n);
    if (rc) return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *val = NULL;
        size_t len = 0;
        esm_pos p;
        if (strncmp(keys[i], mp->cfg.uuid, plen) || keys[i][plen] != '/') continue;
        memset(&p, 0, sizeof p);
        snprintf(p.shard_id, sizeof p.shard_id, "%s", keys[i] + plen + 1);
        if (brk_meta_get(m->broker, ESM_NS_CKPT, keys[i], &val, &len) != 0) continue;
        if (pos_from_json(val, &p) == 0) rc = pos_set(mp, &p);
        else rt_log(RT_WARN, "esm", "mapping %s: unreadable checkpoint %s", mp->cfg.uuid, keys[i]);
        sl_free(val);
    }
    brk_names_free(keys, n);
    return rc;
}

static void pos_delete_all(esm_mgr *m, const char *uuid)
{
    char **keys = NULL;
    size_t n = 0;
    size_t plen = strlen(uuid);
    if (brk_meta_keys(m->broker, ESM_NS_CKPT, &keys, &n) != 0) return;
    for (size_t i = 0; i < n; i++)
        if (!strncmp(keys[i], uuid, plen) && keys[i][plen] == '/')
            brk_meta_del(m->broker, ESM_NS_CKPT, keys[i]);
    brk_names_free(keys, n);
}

/* ---- checkpoint writes (worker thread; coalesced: one write in flight per shard) -------- */

typedef struct ckpt_work {
    uv_work_t req;
    esm_shard *s;
    brk_broker *broker;
    esm_pos pos;
    char key[ESM_UUID_LEN + BRK_SHARDID_STRLEN + 2];
    char *value;
    int rc;
} ckpt_work;

static void ckpt_work_cb(uv_work_t *req)
{
    ckpt_work *w = req->data;
    w->rc = brk_meta_put(w->broker, ESM_NS_CKPT, w->key, w->value, strlen(w->value));
}

static void ckpt_retry_cb(uv_timer_t *t)
{
    esm_lane *l = t->data;
    ckpt_flush(l->shard);
}

static void ckpt_after_cb(uv_work_t *req, int status)
{
    ckpt_work *w = req->data;
    esm_shard *s = w->s;
    esm_map *mp = s->map;

    s->ckpt_writing = false;
    if (status == 0 && w->rc == 0) {
        if (pos_set(mp, &w->pos) != 0)
            rt_log(RT_ERR, "esm", "mapping %s: out of memory recording a checkpoint",
                   mp->cfg.uuid);
    } else {
        rt_log(RT_ERR, "esm", "mapping %s shard %s: checkpoint write failed: %s", mp->cfg.uuid,
               s->id, sl_strerror(status ? status : w->rc));
        s->ckpt_dirty = true;   /* try again with the next progress (or at stop) */
    }
    bool ok = status == 0 && w->rc == 0;
    if (w->pos.done && ok) {
        rt_log(RT_INFO, "esm", "mapping %s: shard %s drained", mp->cfg.uuid, s->id);
        shard_stop(s);
    }
    sl_free(w->value);
    sl_free(w);
    if (ok) {
        ckpt_flush(s);   /* progress made while this write was in flight */
    } else if (s->drained && !s->stopping) {
        /* No further progress will come to retry the done marker: retry in a second. Every
         * lane is idle once drained, so lane 0's timer is free. */
        uv_timer_start(&s->lanes[0].timer, ckpt_retry_cb, 1000, 0);
    }
    /* Otherwise a failed write is retried with the next progress (or at stop). */
    esm__shard_op_done(s);
}

static void ckpt_flush(esm_shard *s)
{
    esm_map *mp = s->map;
    ckpt_work *w;

    if (s->ckpt_writing || !s->ckpt_dirty) return;
    w = sl_calloc(1, sizeof *w);
    if (!w) return;
    w->s = s;
    w->broker = mp->mgr->broker;
    snprintf(w->pos.shard_id, sizeof w->pos.shard_id, "%s", s->id);
    memcpy(w->pos.seq, s->ckpt_seq, sizeof w->pos.seq);
    w->pos.after = s->ckpt_after;
    w->pos.done = s->drained;
    w->pos.stream_ms = s->stream_ms;
    snprintf(w->key, sizeof w->key, "%s/%s", mp->cfg.uuid, s->id);
    w->value = pos_to_json(&w->pos);
    if (!w->value) {
        sl_free(w);
        return;
    }
    w->req.data = w;
    if (uv_queue_work(mp->mgr->loop, &w->req, ckpt_work_cb, ckpt_after_cb) != 0) {
        sl_free(w->value);
        sl_free(w);
        return;
    }
    s->ckpt_dirty = false;
    s->ckpt_writing = true;
    s->pending_ops++;
}

/* ---- records, progress, fetching --------------------------------------------------------- */

void esm__shard_rec_done(esm_shard *s, esm_rec *r)
{
    (void)s;
    r->done = true;
}

/* Pops done records from the front of the shard list: the checkpoint passes them. */
static void shard_advance(esm_shard *s)
{
    bool moved = false;
    while (s->head && s->head->done) {
        esm_rec *r = s->head;
        s->head = r->next_shard;
        if (!s->head) s->tail = NULL;
        memcpy(s->ckpt_seq, r->seq, sizeof s->ckpt_seq);
        s->ckpt_after = true;
        s->outstanding--;
        s->out_bytes -= r->ev_size;
        sl_free(r);
        moved = true;
    }
    if (moved) {
        s->ckpt_dirty = true;
        ckpt_flush(s);
    }
}

bool esm__lane_idle(const esm_lane *l)
{
    return !l->busy && !l->inflight && !l->sending && l->qlen == 0 && !l->win_open;
}

void esm__shard_maybe_drained(esm_shard *s)
{
    if (s->drained || s->stopping || !s->at_end || s->outstanding) return;
    for (uint32_t i = 0; i < s->nlanes; i++)
        if (!esm__lane_idle(&s->lanes[i])) return;
    /* Closed, read to the end, every record handled: write the done marker; the shard stops
     * once it is durable and its children may start (SPEC 3.11). */
    s->drained = true;
    s->ckpt_dirty = true;
    ckpt_flush(s);
}

/* Stable lane choice for a partition key (FNV-1a): per-key order holds within a lane. */
static uint32_t lane_of(const char *pk, size_t n, uint32_t nlanes)
{
    uint32_t h = 2166136261u;
    if (nlanes <= 1) return 0;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)pk[i];
        h *= 16777619u;
    }
    return h % nlanes;
}

void esm__fill_event_record(const esm_shard *s, const esm_rec *r, fn_event_record *out)
{
    out->shard_id = s->id;
    out->seq = r->seq;
    out->partition_key = r->pk;
    out->pk_len = r->pk_len;
    out->data = r->data;
    out->data_len = r->data_len;
    out->arrival_ms = r->arrival_ms;
}

static void lane_push(esm_lane *l, esm_rec *r)
{
    r->next_lane = NULL;
    if (l->qtail) l->qtail->next_lane = r;
    else l->qhead = r;
    l->qtail = r;
    l->qlen++;
    l->qbytes += r->ev_size;
}

static int shard_take(esm_shard *s, const brk_record *br)
{
    esm_map *mp = s->map;
    esm_rec *r = sl_malloc(sizeof *r + br->pk_len + 1 + br->data_len);
    fn_event_record er;
    fn_event_source src = {mp->cfg.stream_arn, mp->mgr->region, mp->cfg.role_arn};
    bool pass = true;

    if (!r) return SL_ENOMEM;
    memset(r, 0, sizeof *r);
    memcpy(r->seq, br->seq, sizeof r->seq);
    r->arrival_ms = br->arrival_ms;
    r->pk = r->buf;
    memcpy(r->pk, br->partition_key, br->pk_len);
    r->pk[br->pk_len] = '\0';
    r->pk_len = br->pk_len;
    r->data = (uint8_t *)r->buf + br->pk_len + 1;
    if (br->data_len) memcpy(r->data, br->data, br->data_len);
    r->data_len = br->data_len;
    esm__fill_event_record(s, r, &er);
    r->ev_size = fn_event_record_size(&src, &er);

    if (s->tail) s->tail->next_shard = r;
    else s->head = r;
    s->tail = r;
    s->outstanding++;
    s->out_bytes += r->ev_size;
    s->met.records_in++;
    mp->met.records_in++;

    /* FilterCriteria before batching (SPEC 3.9): a filtered record is done at once, so the
     * checkpoint passes it; it never reaches a lane or the on-failure destination. */
    if (mp->filter) pass = esm_filter_match(mp->filter, &er);
    if (!pass) {
        r->done = true;
        s->met.records_filtered++;
        mp->met.records_filtered++;
        return 0;
    }
    lane_push(&s->lanes[lane_of(r->pk, r->pk_len, s->nlanes)], r);
    return 0;
}

/* Records accepted into open tumbling windows wait for their final invoke; they must not stop
 * the reading of the rest of the window. */
static size_t shard_live(const esm_shard *s)
{
    size_t w = 0;
    for (uint32_t i = 0; i < s->nlanes; i++) w += s->lanes[i].wlen;
    return s->outstanding - w;
}

static size_t shard_read_cap(const esm_shard *s)
{
    const esm_config *c = &s->map->cfg;
    return (size_t)READ_AHEAD_BATCHES * c->parallelization * c->batch_size;
}

static bool shard_may_read(const esm_shard *s)
{
    size_t live = shard_live(s);
    if (s->stopping || s->at_end || s->drained) return false;
    if (live == 0) return true;
    return live < shard_read_cap(s) &&
           (s->map->cfg.tumbling_s || s->out_bytes < READ_AHEAD_BYTES);
}

void esm__shard_fetch(esm_shard *s)
{
    esm_map *mp = s->map;
    if (s->fetching) {
        s->refetch = true;
        return;
    }
    s->fetching = true;
    do {
        s->refetch = false;
        while (shard_may_read(s)) {
            const esm_config *c = &mp->cfg;
            size_t cap = shard_read_cap(s), live = shard_live(s);
            size_t want = cap > live ? cap - live : 1;
            brk_records recs;
            bool end = false;
            sl_err err;
            int rc;

            if (want > 10000) want = 10000;
            memset(&recs, 0, sizeof recs);
            rc = brk_read_shard(mp->mgr->broker, c->stream, s->id,
                                s->read_seq[0] ? s->read_seq : NULL, s->read_after,
                                (uint32_t)want, READ_MAX_BYTES, &recs, &end, &err);
            if (rc) {
                /* Stream read errors are not function errors: the next wake-up retries. The
                 * stream may have been deleted and created again (its shards keep their ids
                 * but this position is meaningless there): rediscover, which replaces the
                 * consumers of a former incarnation. */
                rt_log(RT_WARN, "esm", "mapping %s shard %s: read failed: %s", c->uuid, s->id,
                       err.msg);
                esm__set_result(s, "PROBLEM: Stream read failed");
                map_discover(mp);
                break;
            }
            for (size_t i = 0; i < recs.n && rc == 0; i++) {
                rc = shard_take(s, &recs.recs[i]);
                if (rc == 0) {
                    memcpy(s->read_seq, recs.recs[i].seq, sizeof s->read_seq);
                    s->read_after = true;
                }
            }
            if (rc == 0 && end) s->at_end = true;
            size_t got = recs.n;
            brk_records_free(&recs);
            if (rc) {
                rt_log(RT_ERR, "esm", "mapping %s shard %s: out of memory", c->uuid, s->id);
                break;
            }
            if (got == 0) break;
        }
        if (!s->stopping)
            for (uint32_t i = 0; i < s->nlanes; i++) esm__lane_kick(&s->lanes[i]);
        shard_advance(s);
        esm__shard_maybe_drained(s);
    } while (s->refetch && !s->stopping);
    s->fetching = false;
}

/* ---- shard consumers ---------------------------------------------------------------------- */

static void shard_free(esm_shard *s)
{
    esm_map *mp = s->map;
    esm_shard **pp;
    esm_rec *r = s->head;

    while (r) {
        esm_rec *n = r->next_shard;
        sl_free(r);
        r = n;
    }
    for (uint32_t i = 0; i < s->nlanes; i++) {
        sl_free(s->lanes[i].batch);
        sl_free(s->lanes[i].ranges);
        sl_free(s->lanes[i].inflight_recs);
        sl_free(s->lanes[i].win_state);
    }
    for (pp = &mp->shards; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    mp->nshards--;
    sl_free(s->lanes);
    sl_free(s);
    map_sync(mp);
}

static void shard_handle_closed(uv_handle_t *h)
{
    esm_lane *l = h->data;
    esm_shard *s = l->shard;
    if (--s->open_handles == 0) shard_free(s);
}

static void shard_try_close(esm_shard *s)
{
    if (!s->stopping || s->open_handles <= 0) return;
    if (s->pending_ops > 0) return;
    if (s->ckpt_dirty && !s->final_flush) {
        /* One last attempt only: a failing catalog must not keep the shard from closing. */
        s->final_flush = true;
        ckpt_flush(s);
        if (s->pending_ops > 0) return;
    }
    for (uint32_t i = 0; i < s->nlanes; i++) {
        esm_lane *l = &s->lanes[i];
        if (!uv_is_closing((uv_handle_t *)&l->timer))
            uv_close((uv_handle_t *)&l->timer, shard_handle_closed);
        if (!uv_is_closing((uv_handle_t *)&l->wtimer))
            uv_close((uv_handle_t *)&l->wtimer, shard_handle_closed);
    }
}

void esm__shard_op_done(esm_shard *s)
{
    SL_ASSERT(s->pending_ops > 0);
    s->pending_ops--;
    if (s->stopping) shard_try_close(s);
}

static void shard_stop(esm_shard *s)
{
    if (s->stopping) return;
    s->stopping = true;
    for (uint32_t i = 0; i < s->nlanes; i++) {
        uv_timer_stop(&s->lanes[i].timer);
        uv_timer_stop(&s->lanes[i].wtimer);
    }
    shard_try_close(s);
}

static int shard_start(esm_map *mp, const char *shard_id, const esm_pos *p)
{
    esm_mgr *m = mp->mgr;
    uint32_t nl = mp->cfg.parallelization;
    esm_shard *s = sl_calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->lanes = sl_calloc(nl, sizeof *s->lanes);
    if (!s->lanes) {
        sl_free(s);
        return SL_ENOMEM;
    }
    s->map = mp;
    s->nlanes = nl;
    s->stream_ms = mp->stream_ms;
    snprintf(s->id, sizeof s->id, "%s", shard_id);
    if (p) {
        memcpy(s->read_seq, p->seq, sizeof s->read_seq);
        s->read_after = p->after;
        memcpy(s->ckpt_seq, p->seq, sizeof s->ckpt_seq);
        s->ckpt_after = p->after;
    }
    met_set_result(&s->met, "No records processed");
    for (uint32_t i = 0; i < nl; i++) {
        esm_lane *l = &s->lanes[i];
        l->shard = s;
        l->idx = i;
        uv_timer_init(m->loop, &l->timer);
        uv_timer_init(m->loop, &l->wtimer);
        l->timer.data = l;
        l->wtimer.data = l;
        s->open_handles += 2;
    }
    s->next = mp->shards;
    mp->shards = s;
    mp->nshards++;
    rt_log(RT_DEBUG, "esm", "mapping %s: consuming %s from %s%s", mp->cfg.uuid, s->id,
           s->read_seq[0] ? (s->read_after ? "after " : "at ") : "trim horizon",
           s->read_seq);
    esm__shard_fetch(s);
    return 0;
}

static esm_shard *shard_find(esm_map *mp, const char *id)
{
    for (esm_shard *s = mp->shards; s; s = s->next)
        if (!strcmp(s->id, id)) return s;
    return NULL;
}

/* ---- mappings ----------------------------------------------------------------------------- */

/* A position of the stream incarnation created at stream_ms (positions of a stream deleted and
 * created again under the same name do not apply: its shards start at their trim horizon). */
static const esm_pos *pos_current(esm_map *mp, const char *shard_id, int64_t stream_ms)
{
    const esm_pos *p = pos_find(mp, shard_id);
    return p && (!p->stream_ms || p->stream_ms == stream_ms) ? p : NULL;
}

static bool map_wants_consumers(const esm_map *mp)
{
    return mp->cfg.enabled && !mp->deleting && !mp->mgr->closing && !mp->restart &&
           mp->state != ESM_CREATING && mp->state != ESM_UPDATING;
}

/* Starts consumers for every shard that is ready: not drained, not running, and every parent
 * that still exists drained (KCL-style lineage, SPEC 3.11). New shards start at trim horizon. */
static void map_discover(esm_map *mp)
{
    esm_mgr *m = mp->mgr;
    brk_stream_info info;
    sl_err err;

    if (!map_wants_consumers(mp)) return;
    memset(&info, 0, sizeof info);
    if (brk_stream_describe(m->broker, mp->cfg.stream, &info, &err) != 0) {
        rt_log(RT_WARN, "esm", "mapping %s: %s", mp->cfg.uuid, err.msg);
        snprintf(mp->last_result, sizeof mp->last_result, "PROBLEM: %.100s", err.msg);
        return;
    }
    if (!mp->watch && brk_watch_add(m->broker, mp->cfg.stream, esm_watch_cb, mp, &mp->watch))
        mp->watch = NULL;   /* the stream came back but cannot be watched: next discovery */
    mp->retention_ms = (int64_t)info.retention_hours * 3600 * 1000;
    if (mp->stream_ms != info.created_ms) {
        /* First description, or the stream was deleted and created again: consumers of the
         * former incarnation stop; the new shards start once they are gone (shard_free). */
        mp->stream_ms = info.created_ms;
        for (esm_shard *s = mp->shards; s; s = s->next)
            if (s->stream_ms != info.created_ms && !s->stopping) {
                rt_log(RT_WARN, "esm", "mapping %s: stream %s was created again; %s restarts "
                       "at its trim horizon", mp->cfg.uuid, mp->cfg.stream, s->id);
                shard_stop(s);
            }
    }
    for (size_t i = 0; i < info.nshards; i++) {
        const brk_shard_info *si = &info.shards[i];
        const esm_pos *p = pos_current(mp, si->shard_id, info.created_ms);
        const char *parents[2] = {si->parent, si->adjacent_parent};
        bool ready = true;

        if ((p && p->done) || shard_find(mp, si->shard_id)) continue;
        for (int k = 0; k < 2; k++) {
            const esm_pos *pp;
            bool listed = false;
            if (!parents[k][0]) continue;
            for (size_t j = 0; j < info.nshards; j++)
                if (!strcmp(info.shards[j].shard_id, parents[k])) listed = true;
            pp = pos_current(mp, parents[k], info.created_ms);
            if (listed && !(pp && pp->done)) ready = false;
        }
        if (!ready) continue;
        if (shard_start(mp, si->shard_id, p) != 0)
            rt_log(RT_ERR, "esm", "mapping %s: cannot start %s: out of memory", mp->cfg.uuid,
                   si->shard_id);
    }
    brk_stream_info_free(&info);
}

static void map_handle_closed(uv_handle_t *h)
{
    esm_map *mp = h->data;
    esm_mgr *m = mp->mgr;
    if (--mp->open_handles > 0) return;
    uv_mutex_destroy(&mp->dirty_mu);
    esm_config_clear(&mp->cfg);
    if (mp->pending_cfg) {
        esm_config_clear(mp->pending_cfg);
        sl_free(mp->pending_cfg);
    }
    esm_filter_free(mp->filter);
    sl_free(mp->pos);
    sl_free(mp->dirty);
    sl_free(mp);
    m->nalive--;
    if (m->closing && m->nalive == 0) {
        void (*done)(void *) = m->close_done;
        void *ctx = m->close_ctx;
        sl_free(m->data_dir);
        sl_free(m);
        if (done) done(ctx);
    }
}

/* Unlinks the mapping and closes its handles; freed in the last close callback. */
static void map_close(esm_map *mp)
{
    esm_mgr *m = mp->mgr;
    esm_map **pp;
    if (mp->closing) return;
    mp->closing = true;
    for (pp = &m->maps; *pp; pp = &(*pp)->next)
        if (*pp == mp) {
            *pp = mp->next;
            break;
        }
    if (mp->watch) brk_watch_remove(m->broker, mp->watch);
    mp->watch = NULL;
    uv_close((uv_handle_t *)&mp->wake, map_handle_closed);
    uv_close((uv_handle_t *)&mp->ttimer, map_handle_closed);
}

static int map_apply_pending(esm_map *mp)
{
    esm_filter *f = NULL;
    sl_err err;
    int rc = 0;
    if (!mp->pending_cfg) return 0;
    if (mp->pending_cfg->filter_json)
        rc = esm_filter_compile(&f, mp->pending_cfg->filter_json, &err);
    if (rc) {
        /* Checked at update time; only memory can fail here. Keep the old settings. */
        rt_log(RT_ERR, "esm", "mapping %s: filter: %s", mp->cfg.uuid, err.msg);
    } else {
        esm_filter_free(mp->filter);
        mp->filter = f;
        esm_config_clear(&mp->cfg);
        mp->cfg = *mp->pending_cfg;
    }
    if (rc) esm_config_clear(mp->pending_cfg);
    sl_free(mp->pending_cfg);
    mp->pending_cfg = NULL;
    return rc;
}

/* The mapping's reconciler: stops consumers that should not run, applies a pending update
 * once they are stopped, finishes deletion and shutdown, starts consumers that should. */
static void map_sync(esm_map *mp)
{
    esm_mgr *m = mp->mgr;
    bool stop_all = mp->restart || mp->deleting || m->closing || !mp->cfg.enabled;

    if (mp->closing) return;
    if (stop_all && mp->state != ESM_CREATING && mp->state != ESM_UPDATING) {
        if (mp->nshards) {
            for (esm_shard *s = mp->shards; s; s = s->next) shard_stop(s);
            return;   /* called again by shard_free */
        }
        if (mp->pending_ops) return;
        if (mp->deleting) {
            brk_meta_del(m->broker, ESM_NS_CONFIG, mp->cfg.uuid);
            pos_delete_all(m, mp->cfg.uuid);
            rt_log(RT_INFO, "esm", "mapping %s deleted", mp->cfg.uuid);
            map_close(mp);
            return;
        }
        if (m->closing) {
            map_close(mp);
            return;
        }
        if (mp->restart) {
            mp->restart = false;
            map_apply_pending(mp);
        }
    }
    if (mp->state == ESM_CREATING || mp->state == ESM_UPDATING) return;
    mp->state = mp->cfg.enabled ? ESM_ENABLED : ESM_DISABLED;
    if (mp->cfg.enabled) map_discover(mp);
}

static void map_ttimer_cb(uv_timer_t *t)
{
    esm_map *mp = t->data;
    if (mp->state == ESM_UPDATING) {
        bool was = mp->cfg.enabled;
        bool will = mp->pending_cfg ? mp->pending_cfg->enabled : was;
        mp->restart = true;
        mp->state = was == will ? (will ? ESM_ENABLED : ESM_DISABLED)
                                : (will ? ESM_ENABLING : ESM_DISABLING);
    } else if (mp->state == ESM_CREATING) {
        mp->state = mp->cfg.enabled ? ESM_ENABLING : ESM_DISABLED;
    }
    map_sync(mp);
}

/* Broker thread: remember which shard changed, wake the loop. */
static void esm_watch_cb(void *ctx, const char *stream, const char *shard_id, bool closed)
{
    esm_map *mp = ctx;
    (void)stream;
    uv_mutex_lock(&mp->dirty_mu);
    if (closed) mp->dirty_all = true;
    size_t i;
    for (i = 0; i < mp->ndirty; i++)
        if (!strcmp(mp->dirty[i], shard_id)) break;
    if (i == mp->ndirty) {
        if (mp->ndirty == mp->cap_dirty) {
            size_t cap = mp->cap_dirty ? mp->cap_dirty * 2 : 8;
            void *nd = sl_realloc(mp->dirty, cap * sizeof *mp->dirty);
            if (nd) {
                mp->dirty = nd;
                mp->cap_dirty = cap;
            }
        }
        if (mp->ndirty < mp->cap_dirty) snprintf(mp->dirty[mp->ndirty++], BRK_SHARDID_STRLEN,
                                                 "%s", shard_id);
        else mp->dirty_all = true;
    }
    uv_mutex_unlock(&mp->dirty_mu);
    uv_async_send(&mp->wake);
}

static void map_wake_cb(uv_async_t *a)
{
    esm_map *mp = a->data;
    char ids[16][BRK_SHARDID_STRLEN];
    size_t n = 0;
    bool all, unknown = false;

    if (mp->closing) return;
    uv_mutex_lock(&mp->dirty_mu);
    all = mp->dirty_all;
    if (mp->ndirty > 16) all = true;
    else {
        n = mp->ndirty;
        memcpy(ids, mp->dirty, n * sizeof ids[0]);
    }
    mp->ndirty = 0;
    mp->dirty_all = false;
    uv_mutex_unlock(&mp->dirty_mu);

    if (all) {
        for (esm_shard *s = mp->shards; s; s = s->next) esm__shard_fetch(s);
        map_discover(mp);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        esm_shard *s = shard_find(mp, ids[i]);
        if (s) esm__shard_fetch(s);
        else unknown = true;
    }
    if (unknown) map_discover(mp);
}

static int map_new(esm_mgr *m, const esm_config *cfg, esm_map **out, sl_err *err)
{
    esm_map *mp = sl_calloc(1, sizeof *mp);
    int rc;
    if (!mp) return sl_err_set(err, SL_ENOMEM, "out of memory");
    mp->mgr = m;
    rc = esm_config_copy(&mp->cfg, cfg);
    if (rc == 0 && cfg->filter_json) rc = esm_filter_compile(&mp->filter, cfg->filter_json, err);
    else sl_err_set(err, rc, "out of memory");
    if (rc) {
        esm_config_clear(&mp->cfg);
        sl_free(mp);
        return rc;
    }
    uv_mutex_init(&mp->dirty_mu);
    uv_async_init(m->loop, &mp->wake, map_wake_cb);
    uv_timer_init(m->loop, &mp->ttimer);
    mp->wake.data = mp;
    mp->ttimer.data = mp;
    mp->open_handles = 2;
    m->nalive++;
    snprintf(mp->state_reason, sizeof mp->state_reason, "User action");
    snprintf(mp->last_result, sizeof mp->last_result, "No records processed");
    met_set_result(&mp->met, "No records processed");
    /* Append to keep creation order. */
    esm_map **pp = &m->maps;
    while (*pp) pp = &(*pp)->next;
    *pp = mp;
    if (brk_watch_add(m->broker, cfg->stream, esm_watch_cb, mp, &mp->watch) != 0) {
        mp->watch = NULL;
        rt_log(RT_WARN, "esm", "mapping %s: stream %s not watchable (gone?)", cfg->uuid,
               cfg->stream);
    }
    *out = mp;
    return 0;
}

static esm_map *map_find(esm_mgr *m, const char *uuid)
{
    for (esm_map *mp = m->maps; mp; mp = mp->next)
        if (!strcmp(mp->cfg.uuid, uuid)) return mp;
    return NULL;
}

static int map_view(const esm_map *mp, esm_view *out)
{
    esm_view v;
    memset(&v, 0, sizeof v);
    if (esm_config_copy(&v.cfg, mp->pending_cfg ? mp->pending_cfg : &mp->cfg) != 0)
        return SL_ENOMEM;
    v.state = mp->state;
    memcpy(v.state_reason, mp->state_reason, sizeof v.state_reason);
    memcpy(v.last_result, mp->last_result, sizeof v.last_result);
    *out = v;
    return 0;
}

/* ---- manager ------------------------------------------------------------------------------ */

int esm_mgr_new(esm_mgr **out, const esm_mgr_opts *o)
{
    esm_mgr *m;
    if (!o || !o->loop || !o->broker) return SL_EINVAL;
    m = sl_calloc(1, sizeof *m);
    if (!m) return SL_ENOMEM;
    m->loop = o->loop;
    m->broker = o->broker;
    m->data_dir = sl_strdup(o->data_dir ? o->data_dir : ".");
    if (!m->data_dir) {
        sl_free(m);
        return SL_ENOMEM;
    }
    snprintf(m->region, sizeof m->region, "%s", o->region ? o->region : "us-east-1");
    snprintf(m->account, sizeof m->account, "%s", o->account ? o->account : "000000000000");
    if (o->invoker) {
        m->invoker = *o->invoker;
        m->has_invoker = true;
    }
    m->retry_base_ms = o->retry_base_ms ? o->retry_base_ms : 1000;
    m->retry_cap_ms = o->retry_cap_ms ? o->retry_cap_ms : 60000;
    if (m->retry_cap_ms < m->retry_base_ms) m->retry_cap_ms = m->retry_base_ms;
    m->transition_ms = o->transition_ms;
    m->clock = o->clock;
    m->clock_ctx = o->clock_ctx;
    *out = m;
    return 0;
}

typedef struct loaded {
    esm_config cfg;
    uint64_t order;
} loaded;

static int loaded_cmp(const void *a, const void *b)
{
    const loaded *x = a, *y = b;
    return x->order < y->order ? -1 : x->order > y->order;
}

int esm_mgr_start(esm_mgr *m, sl_err *err)
{
    char **keys = NULL;
    size_t n = 0;
    loaded *ls = NULL;
    size_t nl = 0;
    int rc = brk_meta_keys(m->broker, ESM_NS_CONFIG, &keys, &n);
    if (rc) return sl_err_set(err, rc, "cannot list mappings: %s", sl_strerror(rc));
    if (n && !(ls = sl_calloc(n, sizeof *ls))) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char *val = NULL;
        size_t len = 0;
        if (brk_meta_get(m->broker, ESM_NS_CONFIG, keys[i], &val, &len) != 0) continue;
        if (config_from_json(val, &ls[nl].cfg, &ls[nl].order) == 0) nl++;
        else rt_log(RT_WARN, "esm", "skipping unreadable mapping %s", keys[i]);
        sl_free(val);
    }
    if (nl > 1) qsort(ls, nl, sizeof *ls, loaded_cmp);
    for (size_t i = 0; i < nl; i++) {
        esm_map *mp = NULL;
        sl_err e2;
        if (ls[i].order >= m->next_order) m->next_order = ls[i].order + 1;
        if (map_new(m, &ls[i].cfg, &mp, &e2) != 0) {
            rt_log(RT_ERR, "esm", "cannot resume mapping %s: %s", ls[i].cfg.uuid, e2.msg);
            continue;
        }
        mp->created_order = ls[i].order;
        if (pos_load(mp) != 0)
            rt_log(RT_ERR, "esm", "mapping %s: cannot load checkpoints", mp->cfg.uuid);
        mp->state = mp->cfg.enabled ? ESM_ENABLED : ESM_DISABLED;
        rt_log(RT_INFO, "esm", "resuming mapping %s (%s -> %s, %s)", mp->cfg.uuid,
               mp->cfg.stream, mp->cfg.function_arn, esm_state_name(mp->state));
        map_sync(mp);
    }
    rc = 0;
out:
    for (size_t i = 0; i < nl; i++) esm_config_clear(&ls[i].cfg);
    sl_free(ls);
    brk_names_free(keys, n);
    return rc;
}

void esm_mgr_close(esm_mgr *m, void (*done)(void *), void *ctx)
{
    if (!m) {
        if (done) done(ctx);
        return;
    }
    m->closing = true;
    m->close_done = done;
    m->close_ctx = ctx;
    if (m->nalive == 0) {
        sl_free(m->data_dir);
        sl_free(m);
        if (done) done(ctx);
        return;
    }
    /* map_sync may free mappings (and, with the last one, the manager): walk a copy. */
    size_t n = 0;
    for (esm_map *mp = m->maps; mp; mp = mp->next) n++;
    esm_map **all = sl_calloc(n, sizeof *all);
    if (!all) {
        for (esm_map *mp = m->maps; mp; mp = mp->next) uv_timer_stop(&mp->ttimer);
        rt_log(RT_ERR, "esm", "out of memory while closing");
        return;
    }
    n = 0;
    for (esm_map *mp = m->maps; mp; mp = mp->next) all[n++] = mp;
    for (size_t i = 0; i < n; i++) {
        uv_timer_stop(&all[i]->ttimer);
        if (all[i]->state == ESM_CREATING || all[i]->state == ESM_UPDATING)
            all[i]->state = ESM_DISABLED;
        map_sync(all[i]);
    }
    sl_free(all);
}

/* ---- control plane ------------------------------------------------------------------------ */

static int resolve_stream(esm_mgr *m, esm_config *c, sl_err *err)
{
    char arn[ESM_ARN_LEN];
    char *cut;
    brk_stream_info info;
    int rc;

    snprintf(arn, sizeof arn, "%s", c->stream_arn);
    /* A consumer ARN (enhanced fan-out) reads the same shards: map it to its stream. */
    cut = strstr(arn, "/consumer/");
    if (cut) *cut = '\0';
    if (strncmp(arn, "arn:", 4) != 0 || !strstr(arn, ":kinesis:"))
        return sl_err_set(err, SL_EINVAL,
                          "Unsupported event source type. EventSourceArn %s is not a Kinesis "
                          "stream ARN.", c->stream_arn);
    rc = brk_stream_name_from_arn(m->broker, arn, c->stream, sizeof c->stream, err);
    if (rc == SL_EVALIDATION) rc = sl_err_set(err, SL_EINVAL, "%s", err->msg);
    if (rc) return rc;
    memset(&info, 0, sizeof info);
    rc = brk_stream_describe(m->broker, c->stream, &info, err);
    if (rc == 0) brk_stream_info_free(&info);
    return rc;
}

static int resolve_function(esm_mgr *m, const char *function, esm_config *c, sl_err *err)
{
    if (!function || !*function)
        return sl_err_set(err, SL_EINVAL, "FunctionName is required.");
    if (m->has_invoker && m->invoker.resolve)
        return m->invoker.resolve(m->invoker.ctx, function, c->function_arn,
                                  sizeof c->function_arn, c->role_arn, sizeof c->role_arn, err);
    /* No function runtime attached: keep the name as an ARN; invocations report a service
     * error until a runtime is there. */
    if (!strncmp(function, "arn:", 4)) snprintf(c->function_arn, sizeof c->function_arn, "%s",
                                                 function);
    else snprintf(c->function_arn, sizeof c->function_arn, "arn:aws:lambda:%s:%s:function:%s",
                  m->region, m->account, function);
    snprintf(c->role_arn, sizeof c->role_arn, "arn:aws:iam::%s:role/sluice-default", m->account);
    return 0;
}

static int check_semantics(esm_mgr *m, const esm_config *c, sl_err *err)
{
    esm_filter *f = NULL;
    int rc;
    if (c->destination) {
        enum dst_kind kind;
        rc = dst_validate(c->destination, &kind, err);
        if (rc) return rc == SL_ENOMEM ? rc : sl_err_set(err, SL_EINVAL, "%s", err->msg);
    }
    rc = esm_filter_compile(&f, c->filter_json, err);
    esm_filter_free(f);
    if (rc) return rc == SL_ENOMEM ? rc : sl_err_set(err, SL_EINVAL, "%s", err->msg);
    (void)m;
    return 0;
}

/* LATEST / AT_TIMESTAMP: the position is fixed at create time (deterministic, SPEC 3.3 and
 * the LATEST note in SPEC 8.12); TRIM_HORIZON needs no entry. */
static int snapshot_positions(esm_mgr *m, esm_map *mp, sl_err *err)
{
    brk_stream_info info;
    int rc;
    if (mp->cfg.start_pos == ESM_START_TRIM_HORIZON) return 0;
    memset(&info, 0, sizeof info);
    rc = brk_stream_describe(m->broker, mp->cfg.stream, &info, err);
    if (rc) return rc;
    for (size_t i = 0; i < info.nshards && rc == 0; i++) {
        esm_pos p;
        memset(&p, 0, sizeof p);
        snprintf(p.shard_id, sizeof p.shard_id, "%s", info.shards[i].shard_id);
        p.after = true;
        p.stream_ms = info.created_ms;
        if (mp->cfg.start_pos == ESM_START_AT_TIMESTAMP) {
            rc = brk_shard_seq_at_time(m->broker, mp->cfg.stream, p.shard_id,
                                       mp->cfg.start_ts_ms, p.seq, err);
            if (rc == 0 && p.seq[0]) p.after = false;
        }
        if (rc == 0 && (mp->cfg.start_pos == ESM_START_LATEST || !p.seq[0]))
            rc = brk_shard_tip(m->broker, mp->cfg.stream, p.shard_id, p.seq, err);
        if (rc == 0 && p.seq[0]) {
            rc = pos_store_sync(m, mp->cfg.uuid, &p);
            if (rc == 0) rc = pos_set(mp, &p);
            if (rc) sl_err_set(err, rc, "cannot store the starting position");
        }
    }
    brk_stream_info_free(&info);
    return rc;
}

int esm_mgr_create(esm_mgr *m, const esm_config *cfg, const char *function, esm_view *out,
                   sl_err *err)
{
    esm_config c;
    esm_map *mp = NULL;
    int rc;

    if (m->closing) return sl_err_set(err, SL_EINUSE, "The service is shutting down.");
    rc = esm_config_copy(&c, cfg);
    if (rc) return sl_err_set(err, rc, "out of memory");
    rc = resolve_stream(m, &c, err);
    if (rc) goto out;
    rc = resolve_function(m, function, &c, err);
    if (rc) goto out;
    for (esm_map *o = m->maps; o; o = o->next) {
        if (o->deleting || strcmp(o->cfg.stream, c.stream) || strcmp(o->cfg.function_arn,
                                                                    c.function_arn))
            continue;
        rc = sl_err_set(err, SL_EEXISTS,
                        "The event source arn (\" %s \") and function (\" %s \") provided "
                        "mapping already exists. Please update or delete the existing mapping "
                        "with UUID %s", c.stream_arn, function, o->cfg.uuid);
        goto out;
    }
    rc = check_semantics(m, &c, err);
    if (rc) goto out;
    if (c.start_pos == ESM_START_AT_TIMESTAMP && c.start_ts_ms > esm__now(m)) {
        rc = sl_err_set(err, SL_EINVAL,
                        "StartingPositionTimestamp cannot be in the future.");
        goto out;
    }
    sl_uuid4(c.uuid);
    c.last_modified_ms = sl_now_ms();
    rc = map_new(m, &c, &mp, err);
    if (rc) goto out;
    mp->created_order = m->next_order++;
    mp->state = ESM_CREATING;
    rc = snapshot_positions(m, mp, err);
    if (rc == 0) {
        rc = config_store(m, &mp->cfg, mp->created_order);
        if (rc) sl_err_set(err, rc, "cannot store the mapping: %s", sl_strerror(rc));
    }
    if (rc) {
        pos_delete_all(m, mp->cfg.uuid);
        map_close(mp);
        goto out;
    }
    if (out && map_view(mp, out) != 0) memset(out, 0, sizeof *out);
    rt_log(RT_INFO, "esm", "mapping %s created: %s -> %s (%s)", mp->cfg.uuid, mp->cfg.stream,
           mp->cfg.function_arn, esm_start_pos_name(mp->cfg.start_pos));
    uv_timer_start(&mp->ttimer, map_ttimer_cb, m->transition_ms, 0);
out:
    esm_config_clear(&c);
    return rc;
}

static esm_map *map_lookup(esm_mgr *m, const char *uuid, sl_err *err)
{
    esm_map *mp = map_find(m, uuid);
    if (!mp)
        sl_err_set(err, SL_ENOTFOUND,
                   "The resource you requested does not exist. (Service: Lambda, Status Code: "
                   "404, Request ID: %s)", uuid);
    return mp;
}

int esm_mgr_get(esm_mgr *m, const char *uuid, esm_view *out, sl_err *err)
{
    esm_map *mp = map_lookup(m, uuid, err);
    if (!mp) return SL_ENOTFOUND;
    if (map_view(mp, out) != 0) return sl_err_set(err, SL_ENOMEM, "out of memory");
    return 0;
}

int esm_mgr_list(esm_mgr *m, esm_view **out, size_t *n)
{
    size_t cnt = 0, i = 0;
    esm_view *v;
    for (esm_map *mp = m->maps; mp; mp = mp->next) cnt++;
    v = sl_calloc(cnt ? cnt : 1, sizeof *v);
    if (!v) return SL_ENOMEM;
    for (esm_map *mp = m->maps; mp; mp = mp->next) {
        if (map_view(mp, &v[i]) != 0) {
            esm_views_free(v, i);
            return SL_ENOMEM;
        }
        i++;
    }
    *out = v;
    *n = cnt;
    return 0;
}

int esm_mgr_update(esm_mgr *m, const char *uuid, const esm_config *cfg, const char *function,
                   esm_view *out, sl_err *err)
{
    esm_map *mp = map_lookup(m, uuid, err);
    esm_config c;
    const esm_config *cur;
    int rc;

    if (!mp) return SL_ENOTFOUND;
    if (mp->deleting || mp->state == ESM_CREATING || mp->state == ESM_UPDATING)
        return sl_err_set(err, SL_EINUSE,
                          "Cannot update the event source mapping %s because it is in use "
                          "(State %s).", uuid, esm_state_name(mp->state));
    cur = &mp->cfg;
    rc = esm_config_copy(&c, cfg);
    if (rc) return sl_err_set(err, rc, "out of memory");
    /* Not updatable: identity, source and start position. */
    memcpy(c.uuid, cur->uuid, sizeof c.uuid);
    memcpy(c.stream_arn, cur->stream_arn, sizeof c.stream_arn);
    memcpy(c.stream, cur->stream, sizeof c.stream);
    c.start_pos = cur->start_pos;
    c.start_ts_ms = cur->start_ts_ms;
    memcpy(c.function_arn, cur->function_arn, sizeof c.function_arn);
    memcpy(c.role_arn, cur->role_arn, sizeof c.role_arn);
    if (function) {
        rc = resolve_function(m, function, &c, err);
        if (rc) goto out;
        for (esm_map *o = m->maps; o; o = o->next) {
            if (o == mp || o->deleting || strcmp(o->cfg.stream, c.stream) ||
                strcmp(o->cfg.function_arn, c.function_arn))
                continue;
            rc = sl_err_set(err, SL_EEXISTS,
                            "The event source arn (\" %s \") and function (\" %s \") provided "
                            "mapping already exists. Please update or delete the existing "
                            "mapping with UUID %s", c.stream_arn, function, o->cfg.uuid);
            goto out;
        }
    }
    rc = check_semantics(m, &c, err);
    if (rc) goto out;
    c.last_modified_ms = sl_now_ms();
    rc = config_store(m, &c, mp->created_order);
    if (rc) {
        sl_err_set(err, rc, "cannot store the mapping: %s", sl_strerror(rc));
        goto out;
    }
    if (mp->pending_cfg) {
        /* An update not applied yet (consumers still stopping) is superseded by this one. */
        esm_config_clear(mp->pending_cfg);
    } else {
        mp->pending_cfg = sl_malloc(sizeof *mp->pending_cfg);
        if (!mp->pending_cfg) {
            rc = sl_err_set(err, SL_ENOMEM, "out of memory");
            goto out;
        }
    }
    *mp->pending_cfg = c;
    memset(&c, 0, sizeof c);   /* ownership moved */
    mp->state = ESM_UPDATING;
    snprintf(mp->state_reason, sizeof mp->state_reason, "User action");
    if (out && map_view(mp, out) != 0) memset(out, 0, sizeof *out);
    uv_timer_start(&mp->ttimer, map_ttimer_cb, m->transition_ms, 0);
out:
    esm_config_clear(&c);
    return rc;
}

int esm_mgr_delete(esm_mgr *m, const char *uuid, esm_view *out, sl_err *err)
{
    esm_map *mp = map_lookup(m, uuid, err);
    if (!mp) return SL_ENOTFOUND;
    if (mp->deleting)
        return sl_err_set(err, SL_EINUSE,
                          "Cannot delete the event source mapping %s because it is in use "
                          "(State Deleting).", uuid);
    uv_timer_stop(&mp->ttimer);
    if (mp->state == ESM_CREATING || mp->state == ESM_UPDATING) {
        /* A pending update is dropped with the mapping. */
        if (mp->pending_cfg) {
            esm_config_clear(mp->pending_cfg);
            sl_free(mp->pending_cfg);
            mp->pending_cfg = NULL;
        }
    }
    mp->state = ESM_DELETING;
    mp->deleting = true;
    snprintf(mp->state_reason, sizeof mp->state_reason, "User action");
    if (out && map_view(mp, out) != 0) memset(out, 0, sizeof *out);
    uv_timer_start(&mp->ttimer, map_ttimer_cb, m->transition_ms, 0);
    return 0;
}

/* ---- metrics and introspection ------------------------------------------------------------ */

void esm_mgr_foreach_metrics(esm_mgr *m, esm_metrics_fn fn, void *ctx)
{
    for (esm_map *mp = m->maps; mp; mp = mp->next) {
        fn(ctx, mp->cfg.uuid, mp->cfg.function_arn, NULL, &mp->met);
        for (esm_shard *s = mp->shards; s; s = s->next)
            fn(ctx, mp->cfg.uuid, mp->cfg.function_arn, s->id, &s->met);
    }
}

int esm_mgr_checkpoint(esm_mgr *m, const char *uuid, const char *shard_id,
                       char seq[BRK_SEQ_STRLEN], bool *drained)
{
    esm_map *mp = map_find(m, uuid);
    const esm_pos *p;
    if (!mp) return SL_ENOTFOUND;
    p = pos_find(mp, shard_id);
    if (!p) return SL_ENOTFOUND;
    memcpy(seq, p->seq, BRK_SEQ_STRLEN);
    if (drained) *drained = p->done;
    return 0;
}
