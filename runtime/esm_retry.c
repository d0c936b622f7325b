/* esm_retry.c — what happens after an invocation of a lane's batch (SPEC 3.5-3.8, 3.13):
 *
 *   success                 -> the range's records are done (tumbling: join the window)
 *   partial failure at k    -> records before k are done; the suffix from k is retried as one
 *                              range and counts one attempt (SPEC decisions)
 *   function error          -> bisect (ceil(n/2), halves inherit the attempts, a split is not a
 *                              retry) or attempts+1 and retry; past MaximumRetryAttempts the
 *                              range is discarded (RetryAttemptsExhausted)
 *   throttled/service error -> retried with backoff; attempts unchanged
 *   record age              -> before every invocation, records older than
 *                              MaximumRecordAgeInSeconds (or the stream's retention) are
 *                              dropped from the front (RecordAgeExceeded)
 * Discarded records go to the on-failure destination (dest.h, a worker thread) before the
 * checkpoint passes them, so a crash never loses the failure record. The lane stays blocked
 * while it retries: later records of the lane wait (per-key order).
 */
#include <stdio.h>
#include <string.h>

#include "runtime/esm_int.h"
#include "runtime/dest.h"
#include "runtime/log.h"

/* ---- backoff ------------------------------------------------------------------------------ */

/* Full-jitter randomness does not need to be unpredictable: xorshift64*, loop thread only. */
static uint64_t jitter_state;

static uint64_t jitter_next(void)
{
    if (!jitter_state) jitter_state = sl_mono_ns() | 1;
    jitter_state ^= jitter_state >> 12;
    jitter_state ^= jitter_state << 25;
    jitter_state ^= jitter_state >> 27;
    return jitter_state * 2685821657736338717ull;
}

/* Capped exponential backoff with full jitter (Fluent Bit flb_scheduler): a uniform delay in
 * [0, min(cap, base * 2^(attempt-1))]. attempt counts from 1. */
uint64_t esm__backoff_ms(uint32_t base_ms, uint32_t cap_ms, uint32_t attempt)
{
    uint64_t ceiling = base_ms;
    for (uint32_t i = 1; i < attempt && ceiling < cap_ms; i++) ceiling *= 2;
    if (ceiling > cap_ms) ceiling = cap_ms;
    return jitter_next() % (ceiling + 1);
}

static void backoff_cb(uv_timer_t *t)
{
    esm_lane *l = t->data;
    l->backoff = false;
    esm__lane_kick(l);
}

/* The one retry site: logs attempt, delay and reason, then blocks the lane until the timer. */
void esm__lane_retry_later(esm_lane *l, uint32_t attempt, const char *reason)
{
    esm_shard *s = l->shard;
    esm_mgr *m = s->map->mgr;
    uint64_t delay = esm__backoff_ms(m->retry_base_ms, m->retry_cap_ms, attempt ? attempt : 1);

    rt_log(RT_INFO, "esm", "mapping %s shard %s lane %u: retry %u in %llu ms (%s)",
           s->map->cfg.uuid, s->id, l->idx, attempt, (unsigned long long)delay, reason);
    l->backoff = true;
    l->reinvoke = true;
    uv_timer_start(&l->timer, backoff_cb, delay, 0);
}

/* ---- discard + on-failure destination --------------------------------------------------- */

typedef struct dst_work {
    uv_work_t req;
    esm_lane *l;
    esm_rec **recs;              /* the discarded records, in order */
    size_t n;
    bool window;                 /* discarding a tumbling window (final invoke exhausted) */
    size_t hi;                   /* non-window: new lo of the top range */
    char condition[32];
    /* for the worker thread */
    char *data_dir;
    char *destination;
    brk_broker *broker;
    dst_failure f;
    fn_event_record *erecs;
    fn_event_source src;
    int rc;
    sl_err err;
} dst_work;

static void dst_work_cb(uv_work_t *req)
{
    dst_work *w = req->data;
    w->rc = dst_send(w->data_dir, w->broker, w->destination, &w->f, &w->err);
}

/* Records are done once the failure record is out (or there is no destination). */
static void discard_finish(dst_work *w)
{
    esm_lane *l = w->l;
    esm_shard *s = l->shard;

    for (size_t i = 0; i < w->n; i++) esm__shard_rec_done(s, w->recs[i]);
    ESM_MET_ADD(s, records_discarded, w->n);
    l->sending = false;
    if (w->window) {
        esm__lane_window_close(l);
        esm__lane_batch_finish(l);
    } else if (l->nranges) {
        esm_range *rg = &l->ranges[l->nranges - 1];
        rg->lo = w->hi;
        if (rg->lo >= rg->hi) l->nranges--;
        if (l->nranges == 0) esm__lane_batch_finish(l);
    }
    sl_free(w->recs);
    sl_free(w->erecs);
    sl_free(w);
    esm__shard_fetch(s);
}

static void dst_after_cb(uv_work_t *req, int status)
{
    dst_work *w = req->data;
    esm_shard *s = w->l->shard;
    if (status != 0 || w->rc != 0)
        rt_log(RT_ERR, "esm", "mapping %s shard %s: on-failure record to %s not delivered: %s",
               s->map->cfg.uuid, s->id, w->destination,
               status ? sl_strerror(status) : w->err.msg);
    discard_finish(w);
    esm__shard_op_done(s);
}

static void discard_start(esm_lane *l, esm_rec **recs, size_t n, bool window, size_t hi,
                          const char *condition, uint32_t extra_invokes)
{
    esm_shard *s = l->shard;
    esm_map *mp = s->map;
    esm_mgr *m = mp->mgr;
    dst_work *w = sl_calloc(1, sizeof *w);
    uint32_t invokes = 0;

    if (!w) {
        sl_free(recs);
        rt_log(RT_ERR, "esm", "shard %s: out of memory discarding records", s->id);
        esm__lane_retry_later(l, ++l->throttle_streak, "out of memory");
        return;
    }
    w->l = l;
    w->recs = recs;
    w->n = n;
    w->window = window;
    w->hi = hi;
    snprintf(w->condition, sizeof w->condition, "%s", condition);
    for (size_t i = 0; i < n; i++)
        if (recs[i]->invokes > invokes) invokes = recs[i]->invokes;
    invokes += extra_invokes;
    rt_log(RT_WARN, "esm", "mapping %s shard %s: discarding %zu record(s) %s..%s (%s, %u "
           "invocations)", mp->cfg.uuid, s->id, n, n ? recs[0]->seq : "-",
           n ? recs[n - 1]->seq : "-", condition, invokes);
    l->sending = true;
    if (!mp->cfg.destination || n == 0) {
        discard_finish(w);
        return;
    }
    w->erecs = sl_malloc(n * sizeof *w->erecs);
    if (!w->erecs) {
        discard_finish(w);
        return;
    }
    for (size_t i = 0; i < n; i++) esm__fill_event_record(s, recs[i], &w->erecs[i]);
    w->src = (fn_event_source){mp->cfg.stream_arn, m->region, mp->cfg.role_arn};
    w->data_dir = m->data_dir;
    w->destination = mp->cfg.destination;
    w->broker = m->broker;
    w->f.function_arn = mp->cfg.function_arn;
    w->f.condition = w->condition;
    w->f.approximate_invoke_count = invokes;
    w->f.has_response = invokes > 0 && l->last_has_response;
    w->f.status_code = 200;
    w->f.function_error = l->last_function_error ? "Unhandled" : NULL;
    w->f.shard_id = s->id;
    w->f.stream_arn = mp->cfg.stream_arn;
    w->f.mapping_uuid = mp->cfg.uuid;
    w->f.recs = w->erecs;
    w->f.nrecs = n;
    w->f.src = &w->src;
    w->f.now_ms = esm__now(m);
    w->req.data = w;
    if (uv_queue_work(m->loop, &w->req, dst_work_cb, dst_after_cb) != 0) {
        rt_log(RT_ERR, "esm", "shard %s: cannot queue the on-failure delivery", s->id);
        discard_finish(w);
        return;
    }
    s->pending_ops++;
}

/* Discards [lo, hi) of the top range (a prefix of it, or all of it). */
void esm__lane_discard(esm_lane *l, size_t lo, size_t hi, const char *condition)
{
    esm_rec **recs = sl_malloc((hi - lo ? hi - lo : 1) * sizeof *recs);
    if (!recs) {
        esm__lane_retry_later(l, ++l->throttle_streak, "out of memory");
        return;
    }
    memcpy(recs, l->batch + lo, (hi - lo) * sizeof *recs);
    discard_start(l, recs, hi - lo, false, hi, condition, 0);
}

/* A tumbling window whose final invoke used up its retries: its records are discarded. */
static void discard_window(esm_lane *l, uint32_t final_invokes)
{
    esm_rec **recs = sl_malloc((l->wlen ? l->wlen : 1) * sizeof *recs);
    size_t n = 0;
    if (!recs) {
        esm__lane_retry_later(l, ++l->throttle_streak, "out of memory");
        return;
    }
    for (esm_rec *r = l->whead; r; r = r->next_lane) recs[n++] = r;
    discard_start(l, recs, n, true, 0, "RetryAttemptsExhausted", final_invokes);
}

bool esm__lane_expire(esm_lane *l)
{
    esm_shard *s = l->shard;
    esm_map *mp = s->map;
    esm_range *rg = &l->ranges[l->nranges - 1];
    int64_t limit = -1;
    int64_t now = esm__now(mp->mgr);
    size_t k = rg->lo;

    if (mp->cfg.max_age_s >= 0) limit = (int64_t)mp->cfg.max_age_s * 1000;
    if (mp->retention_ms > 0 && (limit < 0 || mp->retention_ms < limit))
        limit = mp->retention_ms;
    if (limit < 0) return false;
    while (k < rg->hi && now - l->batch[k]->arrival_ms > limit) k++;
    if (k == rg->lo) return false;
    esm__lane_discard(l, rg->lo, k, "RecordAgeExceeded");
    return true;
}

/* ---- results ------------------------------------------------------------------------------ */

/* Records [lo, lo+n) of the top range were handled by the function. */
static void accept_records(esm_lane *l, size_t lo, size_t n)
{
    esm_shard *s = l->shard;
    for (size_t i = lo; i < lo + n; i++) {
        esm_rec *r = l->batch[i];
        if (s->map->cfg.tumbling_s) {
            /* Part of the window now: done only when its final invoke succeeds. */
            r->next_lane = NULL;
            if (l->wtail) l->wtail->next_lane = r;
            else l->whead = r;
            l->wtail = r;
            l->wlen++;
        } else {
            esm__shard_rec_done(s, r);
        }
    }
    ESM_MET_ADD(s, records_out, n);
}

static void adopt_state(esm_lane *l, char *state)
{
    if (!state) return;
    sl_free(l->win_state);
    l->win_state = state;
    if (strlen(state) > ESM_WINDOW_STATE_MAX) l->win_early = true;
}

static void function_error(esm_lane *l, const char *reason)
{
    esm_shard *s = l->shard;
    const esm_config *c = &s->map->cfg;
    esm_range *rg = &l->ranges[l->nranges - 1];
    size_t n = rg->hi - rg->lo;

    ESM_MET_ADD(s, function_errors, 1);
    esm__set_result(s, "PROBLEM: Function call failed");
    if (s->stopping) return;
    if (c->bisect && n > 1 && !l->final_batch) {
        /* Split at ceil(n/2); both halves keep the attempts; the split is not a retry. */
        size_t lo = rg->lo, hi = rg->hi, mid = lo + (n + 1) / 2;
        int32_t att = rg->attempts;
        l->nranges--;
        if (esm__lane_push_range(l, mid, hi, att) != 0 ||
            esm__lane_push_range(l, lo, mid, att) != 0) {
            /* Memory: restore the unsplit range and treat it as a service error. */
            l->nranges = 0;
            esm__lane_push_range(l, lo, hi, att);
            esm__lane_retry_later(l, ++l->throttle_streak, "out of memory");
            return;
        }
        ESM_MET_ADD(s, bisects, 1);
        rt_log(RT_INFO, "esm", "mapping %s shard %s lane %u: bisecting %zu records (%s)",
               c->uuid, s->id, l->idx, n, reason);
        return;
    }
    rg->attempts++;
    if (c->max_retry >= 0 && rg->attempts > c->max_retry) {
        if (l->final_batch) discard_window(l, (uint32_t)rg->attempts);
        else esm__lane_discard(l, rg->lo, rg->hi, "RetryAttemptsExhausted");
        return;
    }
    esm__lane_retry_later(l, (uint32_t)rg->attempts, reason);
}

void esm__lane_on_result(void *cb_ctx, const esm_invoke_result *r)
{
    esm_lane *l = cb_ctx;
    esm_shard *s = l->shard;
    const esm_config *c = &s->map->cfg;
    esm_range *rg = &l->ranges[l->nranges - 1];
    size_t n = rg->hi - rg->lo;
    enum fn_batch_outcome out = FN_BATCH_SUCCESS;
    size_t first_failed = 0;
    char *state = NULL;

    l->inflight = false;
    sl_free(l->inflight_recs);
    l->inflight_recs = NULL;
    if (r->status == ESM_INVOKE_THROTTLED || r->status == ESM_INVOKE_SERVICE_ERROR) {
        /* Before the function ran: no retry consumed, no bisect (SPEC 3.5.2, 3.13). */
        ESM_MET_ADD(s, throttles, 1);
        /* Not an invocation of the function: approximateInvokeCount does not count it. */
        for (size_t i = rg->lo; i < rg->hi; i++)
            if (l->batch[i]->invokes) l->batch[i]->invokes--;
        s->met.invocations--;
        s->map->met.invocations--;
        esm__set_result(s, r->status == ESM_INVOKE_THROTTLED ? "PROBLEM: Function call throttled"
                                                             : "PROBLEM: Lambda internal error");
        if (!s->stopping)
            esm__lane_retry_later(l, ++l->throttle_streak,
                                  r->status == ESM_INVOKE_THROTTLED ? "throttled"
                                                                    : "service error");
        goto out;
    }
    l->throttle_streak = 0;
    l->last_has_response = true;
    if (r->status == ESM_INVOKE_FUNCTION_ERROR) {
        l->last_function_error = true;
        function_error(l, "function error");
        goto out;
    }
    l->last_function_error = false;

    if (l->final_batch) {
        out = FN_BATCH_SUCCESS;
    } else if (c->tumbling_s) {
        const char **seqs = sl_malloc((n ? n : 1) * sizeof *seqs);
        if (!seqs) {
            esm__lane_retry_later(l, ++l->throttle_streak, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < n; i++) seqs[i] = l->batch[rg->lo + i]->seq;
        out = fn_event_parse_window(r->body, r->len, seqs, n, &first_failed, &state);
        if (!c->report_failures && out == FN_BATCH_PARTIAL) out = FN_BATCH_SUCCESS;
        sl_free(seqs);
    } else if (c->report_failures) {
        const char **seqs = sl_malloc((n ? n : 1) * sizeof *seqs);
        if (!seqs) {
            esm__lane_retry_later(l, ++l->throttle_streak, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < n; i++) seqs[i] = l->batch[rg->lo + i]->seq;
        out = fn_event_parse_failures(r->body, r->len, seqs, n, &first_failed);
        sl_free(seqs);
    }

    switch (out) {
    case FN_BATCH_SUCCESS:
        esm__set_result(s, "OK");
        if (l->final_batch) {
            /* The window is complete: its records pass the checkpoint, the state goes. */
            for (esm_rec *w = l->whead; w; w = w->next_lane) esm__shard_rec_done(s, w);
            esm__lane_window_close(l);
            esm__lane_batch_finish(l);
            break;
        }
        accept_records(l, rg->lo, n);
        adopt_state(l, state);
        state = NULL;
        l->nranges--;
        if (l->nranges == 0) esm__lane_batch_finish(l);
        break;
    case FN_BATCH_PARTIAL:
        /* Lowest reported record: the prefix is committed, the suffix retried as one range. */
        esm__set_result(s, "OK");
        accept_records(l, rg->lo, first_failed);
        adopt_state(l, state);
        state = NULL;
        rg->lo += first_failed;
        rg->attempts++;
        if (s->stopping) break;
        if (c->max_retry >= 0 && rg->attempts > c->max_retry)
            esm__lane_discard(l, rg->lo, rg->hi, "RetryAttemptsExhausted");
        else esm__lane_retry_later(l, (uint32_t)rg->attempts, "partial batch failure");
        break;
    case FN_BATCH_FAILURE:
        /* Malformed partial response / missing window state: the whole batch failed. */
        function_error(l, c->tumbling_s ? "response without state" : "invalid batch response");
        break;
    }
out:
    sl_free(state);
    /* Progress: checkpoint, read more, next batch (or finish stopping). */
    esm__shard_fetch(s);
    esm__shard_op_done(s);
}
