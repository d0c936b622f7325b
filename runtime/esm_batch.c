/* esm_batch.c — batch assembly and invocation for one lane of a shard consumer.
 *
 * A lane cuts a batch from the front of its queue when it is idle (SPEC decisions):
 *  - window 0: at once with what is there;
 *  - window W > 0: the window opens when the first record of the next batch is available and
 *    the previous invocation has finished; the batch goes when the window closes, BatchSize
 *    records are there or the 6 MB payload cap is reached, whichever comes first.
 * Once cut, a batch never grows: retries, bisect halves and partial-failure suffixes are ranges
 * of it. Tumbling windows (SPEC 3.8) add: a batch holds records of one window only, the state
 * returned by the handler is passed to the next invoke of that window, and the window's final
 * invoke (empty Records, isFinalInvokeForWindow) is driven by the clock.
 */
#include <stdio.h>
#include <string.h>

#include "runtime/esm_int.h"
#include "runtime/log.h"

static int64_t window_len_ms(const esm_lane *l)
{
    return (int64_t)l->shard->map->cfg.tumbling_s * 1000;
}

static void fill_window(const esm_lane *l, fn_event_window *w)
{
    memset(w, 0, sizeof *w);
    w->start_ms = l->win_start;
    w->end_ms = l->win_end;
    w->state_json = l->win_state;
    w->shard_id = l->shard->id;
    w->final_invoke = l->final_batch;
    w->terminated_early = l->final_batch && l->win_early;
}

static size_t batch_overhead(const esm_lane *l)
{
    const esm_map *mp = l->shard->map;
    fn_event_source src = {mp->cfg.stream_arn, mp->mgr->region, mp->cfg.role_arn};
    fn_event_window w;
    if (!mp->cfg.tumbling_s) return fn_event_overhead(&src, NULL);
    fill_window(l, &w);
    return fn_event_overhead(&src, &w);
}

/* Records at the queue front that may join the next batch (tumbling: same window only). */
static bool rec_fits_window(const esm_lane *l, const esm_rec *r)
{
    return !l->shard->map->cfg.tumbling_s || r->arrival_ms < l->win_end;
}

/* Would a batch cut now be full (BatchSize records or the payload cap)? */
static bool queue_full(const esm_lane *l)
{
    const esm_config *c = &l->shard->map->cfg;
    size_t bytes = batch_overhead(l), n = 0;
    for (const esm_rec *r = l->qhead; r && rec_fits_window(l, r); r = r->next_lane) {
        if (++n >= c->batch_size) return true;
        bytes += r->ev_size;
        if (bytes >= ESM_PAYLOAD_MAX) return true;
        if (!c->tumbling_s && n >= l->qlen) break;
    }
    return false;
}

static void window_timer_cb(uv_timer_t *t)
{
    esm_lane *l = t->data;
    l->timer_armed = false;
    l->window_elapsed = true;
    esm__lane_kick(l);
}

/* MaximumBatchingWindowInSeconds: may a batch be cut now? Arms the window when not. */
static bool batch_gate(esm_lane *l)
{
    const esm_config *c = &l->shard->map->cfg;
    if (c->max_window_s == 0) return true;
    if (l->window_elapsed || queue_full(l) || l->shard->at_end) {
        if (l->timer_armed) uv_timer_stop(&l->timer);
        l->timer_armed = false;
        l->window_elapsed = false;
        return true;
    }
    if (!l->timer_armed) {
        l->timer_armed = true;
        uv_timer_start(&l->timer, window_timer_cb, (uint64_t)c->max_window_s * 1000, 0);
    }
    return false;
}

void esm__lane_take_queue_front(esm_lane *l, esm_rec *r)
{
    SL_ASSERT(l->qhead == r);
    l->qhead = r->next_lane;
    if (!l->qhead) l->qtail = NULL;
    l->qlen--;
    l->qbytes -= r->ev_size;
    r->next_lane = NULL;
}

int esm__lane_push_range(esm_lane *l, size_t lo, size_t hi, int32_t attempts)
{
    if (l->nranges == l->cap_ranges) {
        size_t cap = l->cap_ranges ? l->cap_ranges * 2 : 8;
        esm_range *nr = sl_realloc(l->ranges, cap * sizeof *nr);
        if (!nr) return SL_ENOMEM;
        l->ranges = nr;
        l->cap_ranges = cap;
    }
    l->ranges[l->nranges++] = (esm_range){lo, hi, attempts};
    return 0;
}

/* Cuts the next batch from the queue front: up to BatchSize records within the 6 MB cap (a
 * single oversized record still goes alone: the function runtime reports it). */
static int cut_batch(esm_lane *l)
{
    const esm_config *c = &l->shard->map->cfg;
    size_t bytes = batch_overhead(l), n = 0;
    esm_rec **b;

    for (const esm_rec *r = l->qhead; r && rec_fits_window(l, r) && n < c->batch_size;
         r = r->next_lane) {
        if (n > 0 && bytes + r->ev_size > ESM_PAYLOAD_MAX) break;
        bytes += r->ev_size;
        n++;
    }
    SL_ASSERT(n > 0);
    b = sl_malloc(n * sizeof *b);
    if (!b) return SL_ENOMEM;
    l->nranges = 0;
    if (esm__lane_push_range(l, 0, n, 0) != 0) {
        sl_free(b);
        return SL_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        b[i] = l->qhead;
        esm__lane_take_queue_front(l, l->qhead);
    }
    l->batch = b;
    l->nbatch = n;
    l->busy = true;
    l->final_batch = false;
    return 0;
}

void esm__lane_batch_finish(esm_lane *l)
{
    sl_free(l->batch);
    l->batch = NULL;
    l->nbatch = 0;
    l->nranges = 0;
    l->busy = false;
    l->final_batch = false;
}

static void wtimer_cb(uv_timer_t *t)
{
    esm_lane *l = t->data;
    l->wtimer_armed = false;
    /* Pull what was appended before the window ended, then let the lane close it. */
    esm__shard_fetch(l->shard);
    esm__lane_kick(l);
}

void esm__lane_window_close(esm_lane *l)
{
    sl_free(l->win_state);
    l->win_state = NULL;
    l->whead = l->wtail = NULL;
    l->wlen = 0;
    l->win_open = false;
    l->win_early = false;
    if (l->wtimer_armed) uv_timer_stop(&l->wtimer);
    l->wtimer_armed = false;
}

static void window_open(esm_lane *l)
{
    esm_mgr *m = l->shard->map->mgr;
    int64_t w = window_len_ms(l);
    int64_t a = l->qhead->arrival_ms;
    int64_t now = esm__now(m);
    /* Epoch-aligned boundaries by arrival time (SPEC decisions). */
    l->win_start = (a >= 0 ? a / w : (a - w + 1) / w) * w;
    l->win_end = l->win_start + w;
    l->win_open = true;
    l->win_early = false;
    sl_free(l->win_state);
    l->win_state = NULL;
    l->wtimer_armed = true;
    uv_timer_start(&l->wtimer, wtimer_cb, (uint64_t)(l->win_end > now ? l->win_end - now : 0),
                   0);
}

/* Tumbling-window step: invoke the window's records, then its final invoke once the window
 * is over (clock, a record of a later window, early termination or the shard's end). */
static void window_step(esm_lane *l)
{
    esm_shard *s = l->shard;
    int64_t now;

    if (!l->win_open) {
        if (!l->qhead) return;
        window_open(l);
    }
    if (!l->win_early && l->qhead && l->qhead->arrival_ms < l->win_end) {
        if (!batch_gate(l)) return;
        if (cut_batch(l) != 0) {
            rt_log(RT_ERR, "esm", "shard %s: out of memory cutting a batch", s->id);
            return;
        }
        esm__lane_invoke(l);
        return;
    }
    now = esm__now(s->map->mgr);
    if (!(l->win_early || now >= l->win_end || l->qhead || (s->at_end && !l->qhead))) {
        /* The window timer comes back at the end. It may have fired a little early by the
         * wall clock (the loop's timers run on the monotonic clock): re-arm it then. */
        if (!l->wtimer_armed) {
            l->wtimer_armed = true;
            uv_timer_start(&l->wtimer, wtimer_cb, (uint64_t)(l->win_end - now), 0);
        }
        return;
    }
    if (s->at_end && !l->qhead && now < l->win_end) l->win_early = true;
    if (l->wlen == 0 && !l->win_state) {
        /* Everything of the window was discarded: nothing to report. */
        esm__lane_window_close(l);
        esm__lane_kick(l);
        return;
    }
    l->nranges = 0;
    if (esm__lane_push_range(l, 0, 0, 0) != 0) return;
    l->batch = NULL;
    l->nbatch = 0;
    l->busy = true;
    l->final_batch = true;
    esm__lane_invoke(l);
}

static void lane_step(esm_lane *l)
{
    esm_shard *s = l->shard;
    if (s->stopping || l->inflight || l->sending || l->backoff) return;
    if (l->busy) {
        esm__lane_invoke(l);
        return;
    }
    if (s->map->cfg.tumbling_s) {
        window_step(l);
        return;
    }
    if (!l->qhead || !batch_gate(l)) return;
    if (cut_batch(l) != 0) {
        rt_log(RT_ERR, "esm", "shard %s: out of memory cutting a batch", s->id);
        return;
    }
    esm__lane_invoke(l);
}

/* Re-entrancy guard: an invoker may answer before invoke() returns; the result handler kicks
 * the lane again, which then loops here instead of recursing. */
void esm__lane_kick(esm_lane *l)
{
    if (l->kicking) {
        l->rekick = true;
        return;
    }
    l->kicking = true;
    do {
        l->rekick = false;
        lane_step(l);
    } while (l->rekick);
    l->kicking = false;
    esm__shard_maybe_drained(l->shard);
}

/* Invokes the range on top of the lane's stack (or the window's final invoke). */
void esm__lane_invoke(esm_lane *l)
{
    esm_shard *s = l->shard;
    esm_map *mp = s->map;
    esm_mgr *m = mp->mgr;
    esm_range *rg;
    fn_event_source src = {mp->cfg.stream_arn, m->region, mp->cfg.role_arn};
    fn_event_window w;
    fn_event_record *recs = NULL;
    char *payload = NULL;
    size_t len = 0, n;
    int rc;

    if (l->nranges == 0) {
        if (!l->final_batch) esm__lane_batch_finish(l);
        esm__lane_kick(l);
        return;
    }
    /* Drop records past MaximumRecordAgeInSeconds from the front first (SPEC 3.5). */
    if (!l->final_batch && esm__lane_expire(l)) return;
    rg = &l->ranges[l->nranges - 1];
    n = rg->hi - rg->lo;
    if (n) {
        recs = sl_malloc(n * sizeof *recs);
        if (!recs) goto oom;
        for (size_t i = 0; i < n; i++) esm__fill_event_record(s, l->batch[rg->lo + i], &recs[i]);
    }
    if (mp->cfg.tumbling_s) fill_window(l, &w);
    rc = fn_event_build(&src, recs, n, mp->cfg.tumbling_s ? &w : NULL, &payload, &len);
    if (rc) {
        sl_free(recs);
        goto oom;
    }
    /* The records travel with the JSON (windowless events): the Lua engine builds its event
     * from them directly. They point into l->batch, which stays put while the call is out. */
    sl_free(l->inflight_recs);
    l->inflight_recs = mp->cfg.tumbling_s ? NULL : recs;
    if (mp->cfg.tumbling_s) sl_free(recs);
    snprintf(l->inflight_arn, sizeof l->inflight_arn, "%s", src.stream_arn);
    snprintf(l->inflight_role, sizeof l->inflight_role, "%s", src.role_arn);
    l->inflight_src = (fn_event_source){l->inflight_arn, m->region, l->inflight_role};
    l->inflight_batch = (fn_event_batch){&l->inflight_src, l->inflight_recs, n};

    for (size_t i = 0; i < n; i++) l->batch[rg->lo + i]->invokes++;
    ESM_MET_ADD(s, invocations, 1);
    if (l->reinvoke) ESM_MET_ADD(s, retries, 1);
    l->reinvoke = false;
    if (n) {
        int64_t age = esm__now(m) - l->batch[rg->hi - 1]->arrival_ms;
        s->met.iterator_age_ms = age > 0 ? age : 0;
        mp->met.iterator_age_ms = s->met.iterator_age_ms;
    }
    l->inflight = true;
    s->pending_ops++;
    if (!m->has_invoker || !m->invoker.invoke) {
        static const char msg[] = "{\"errorMessage\":\"no function runtime is attached\"}";
        esm_invoke_result r = {ESM_INVOKE_SERVICE_ERROR, msg, sizeof msg - 1, NULL};
        sl_free(payload);
        esm__lane_on_result(l, &r);
        return;
    }
    m->invoker.invoke(m->invoker.ctx, mp->cfg.function_arn, payload, len,
                      mp->cfg.tumbling_s ? NULL : &l->inflight_batch,
                      esm__lane_on_result, l);
    return;
oom:
    /* Nothing was sent: try again after a backoff as for a service error. */
    rt_log(RT_ERR, "esm", "mapping %s shard %s: out of memory building the event",
           mp->cfg.uuid, s->id);
    esm__lane_retry_later(l, ++l->throttle_streak, "out of memory");
}
