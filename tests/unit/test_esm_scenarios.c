/* test_esm_scenarios.c — event-source mapping scenarios: a real broker in a temp directory, a
 * real libuv loop and a scripted fake invoker. Each scenario asserts the exact sequence of
 * invocations (batch contents in order), the final checkpoint and the on-failure records.
 *
 * Rendering used in expectations:
 *   a call            "a,b,c"        (record names in batch order; name = data up to '#')
 *   window call       "a,b@2"        (@ incoming state's n)
 *   final invoke      "F@3" / "F!@3" (! = isWindowTerminatedEarly)
 *   calls             joined with '|'
 *   on-failure record "first-last/batchSize:condition:approximateInvokeCount", joined with '|'
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>
#include <openssl/evp.h>
#include <uv.h>

#include "broker/broker.h"
#include "runtime/dest.h"
#include "runtime/esm.h"
#include "runtime/log.h"

#define MAXREC 2048
#define MAXCALL 2048
#define CALLREC 64
#define DLQ "arn:aws:sqs:us-east-1:000000000000:dlq"

typedef struct call {
    char names[2048];            /* rendered */
    char *recs[CALLREC];         /* names, in order (pointers into names_store) */
    char pks[CALLREC][32];
    size_t n;
    size_t payload_len;
    bool window, final, early;
    int state_n;
    char seqs[CALLREC][BRK_SEQ_STRLEN];
    char names_store[CALLREC][32];
} call;

struct harness;
typedef void (*script_fn)(struct harness *h, const call *c, enum esm_invoke_status *st,
                          char **body, int *delay_ms);

struct scenario;

typedef struct harness {
    const struct scenario *sc;   /* table scenarios */
    uv_loop_t loop;
    uv_timer_t tick;
    char dir[256];
    brk_broker *b;
    esm_mgr *m;
    bool mgr_closed;
    /* broker clock: fixed_ms when set, else now + offset */
    int64_t fixed_ms;
    int64_t offset_ms;
    /* fake invoker */
    script_fn script;
    bool sync;
    call *calls;
    size_t ncalls;
    int inflight, max_inflight;
    int counter;                 /* free for scripts */
    const char *poison;
    int throttle_first;
    int delay_ms;
    char uuid[ESM_UUID_LEN];
    char uuid2[ESM_UUID_LEN];
    /* records put */
    char put_seq[MAXREC][BRK_SEQ_STRLEN];
    char put_name[MAXREC][32];
    char put_shard[MAXREC][BRK_SHARDID_STRLEN];
    size_t nput;
} harness;

static harness *H;

/* ---- plumbing ------------------------------------------------------------------------------ */

static int64_t broker_clock(void *ctx)
{
    harness *h = ctx;
    return h->fixed_ms ? h->fixed_ms : sl_now_ms() + h->offset_ms;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

static void open_broker(harness *h)
{
    brk_opts o;
    sl_err err;
    memset(&o, 0, sizeof o);
    o.data_dir = h->dir;
    o.fsync = BRK_FSYNC_NO;
    o.clock = broker_clock;
    o.clock_ctx = h;
    assert_int_equal(brk_open(&h->b, &o, &err), 0);
}

static void fake_invoke(void *ctx, const char *arn, char *payload, size_t len,
                        const fn_event_batch *batch, esm_invoke_done done, void *cb_ctx);

static esm_invoker fake_invoker;
static void (*g_invoke)(void *, const char *, char *, size_t, const fn_event_batch *,
                        esm_invoke_done, void *) = fake_invoke;

static void open_mgr(harness *h)
{
    esm_mgr_opts o;
    sl_err err;
    memset(&o, 0, sizeof o);
    o.loop = &h->loop;
    o.broker = h->b;
    o.data_dir = h->dir;
    fake_invoker.ctx = h;
    fake_invoker.resolve = NULL;
    fake_invoker.invoke = g_invoke;
    o.invoker = &fake_invoker;
    o.retry_base_ms = 1;
    o.retry_cap_ms = 4;
    assert_int_equal(esm_mgr_new(&h->m, &o), 0);
    assert_int_equal(esm_mgr_start(h->m, &err), 0);
    h->mgr_closed = false;
}

static void mgr_closed_cb(void *ctx)
{
    harness *h = ctx;
    h->mgr_closed = true;
}

static void run_ms(harness *h, int ms)
{
    uint64_t end = uv_now(&h->loop) + (uint64_t)ms;
    while (uv_now(&h->loop) < end) {
        uv_run(&h->loop, UV_RUN_ONCE);
        uv_update_time(&h->loop);
    }
}

/* Runs the loop until pred holds (generous timeout: only to avoid hanging). */
static bool run_until(harness *h, bool (*pred)(harness *), int timeout_ms)
{
    uint64_t end;
    uv_update_time(&h->loop);
    end = uv_now(&h->loop) + (uint64_t)timeout_ms;
    while (!pred(h)) {
        if (uv_now(&h->loop) > end) return false;
        uv_run(&h->loop, UV_RUN_ONCE);
        uv_update_time(&h->loop);
    }
    return true;
}

static bool is_mgr_closed(harness *h)
{
    return h->mgr_closed;
}

static void close_mgr(harness *h)
{
    esm_mgr_close(h->m, mgr_closed_cb, h);
    assert_true(run_until(h, is_mgr_closed, 20000));
    h->m = NULL;
}

static int setup(void **state)
{
    harness *h = calloc(1, sizeof *h);
    h->calls = calloc(MAXCALL, sizeof *h->calls);
    snprintf(h->dir, sizeof h->dir, "/tmp/sluice-esm-XXXXXX");
    assert_non_null(mkdtemp(h->dir));
    assert_int_equal(uv_loop_init(&h->loop), 0);
    uv_timer_init(&h->loop, &h->tick);
    uv_timer_start(&h->tick, tick_cb, 5, 5);
    open_broker(h);
    h->sc = *state;              /* the scenario for table tests (cmocka prestate) */
    H = h;
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    harness *h = *state;
    if (h->m) close_mgr(h);
    brk_close(h->b);
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);   /* every handle was closed */
    nftw(h->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(h->calls);
    free(h);
    H = NULL;
    return 0;
}

/* ---- streams and records ------------------------------------------------------------------- */

static void make_stream(harness *h, const char *name, uint32_t shards)
{
    brk_create_opts o;
    sl_err err;
    memset(&o, 0, sizeof o);
    o.name = name;
    o.shard_count = shards;
    assert_int_equal(brk_stream_create(h->b, &o, &err), 0);
}

/* Puts one record; data = name, or name + '#' padding up to `size` bytes. */
static void put_ex(harness *h, const char *stream, const char *name, const char *pk,
                   const char *ehk, size_t size)
{
    brk_put_entry e;
    brk_put_result r;
    sl_err err;
    size_t nl = strlen(name);
    uint8_t *data = malloc(size > nl ? size : nl);
    size_t len = size > nl ? size : nl;
    memcpy(data, name, nl);
    if (len > nl) memset(data + nl, '#', len - nl);
    memset(&e, 0, sizeof e);
    e.data = data;
    e.data_len = len;
    e.partition_key = pk ? pk : name;
    e.pk_len = strlen(e.partition_key);
    e.explicit_hash_key = ehk;
    int rc = brk_put_record(h->b, stream, &e, NULL, &r, &err);
    if (rc) fprintf(stderr, "put: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_true(h->nput < MAXREC);
    memcpy(h->put_seq[h->nput], r.seq, BRK_SEQ_STRLEN);
    snprintf(h->put_name[h->nput], 32, "%s", name);
    memcpy(h->put_shard[h->nput], r.shard_id, BRK_SHARDID_STRLEN);
    h->nput++;
    free(data);
}

static void put(harness *h, const char *name)
{
    put_ex(h, "s", name, NULL, "0", 0);
}

static void put_list(harness *h, const char *names)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", names);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
        put(h, t);
}

static const char *name_of_seq(harness *h, const char *seq)
{
    for (size_t i = 0; i < h->nput; i++)
        if (!strcmp(h->put_seq[i], seq)) return h->put_name[i];
    return "?";
}

static const char *seq_of(harness *h, const char *name)
{
    for (size_t i = 0; i < h->nput; i++)
        if (!strcmp(h->put_name[i], name)) return h->put_seq[i];
    return "";
}

/* ---- the fake invoker ---------------------------------------------------------------------- */

typedef struct pending {
    uv_timer_t t;
    harness *h;
    esm_invoke_done done;
    void *cb_ctx;
    enum esm_invoke_status st;
    char *body;
} pending;

static void pending_closed(uv_handle_t *hd)
{
    free(hd->data);
}

static void pending_fire(uv_timer_t *t)
{
    pending *p = t->data;
    esm_invoke_result r = {p->st, p->body ? p->body : "", p->body ? strlen(p->body) : 0,
                           p->st == ESM_INVOKE_FUNCTION_ERROR ? "Unhandled" : NULL};
    p->h->inflight--;
    p->done(p->cb_ctx, &r);
    free(p->body);
    t->data = p;
    uv_close((uv_handle_t *)t, pending_closed);
}

static void b64_decode(const char *in, char *out, size_t cap)
{
    size_t n = strlen(in);
    unsigned char *tmp = malloc(n + 4);
    int len = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)n);
    if (n >= 1 && in[n - 1] == '=') len--;
    if (n >= 2 && in[n - 2] == '=') len--;
    if (len < 0) len = 0;
    size_t k = 0;
    while (k < (size_t)len && k + 1 < cap && tmp[k] != '#') {
        out[k] = (char)tmp[k];
        k++;
    }
    out[k] = '\0';
    free(tmp);
}

static void parse_call(harness *h, const char *payload, size_t len, call *c)
{
    cJSON *o = cJSON_ParseWithLength(payload, len);
    const cJSON *recs, *r, *v;
    size_t off = 0;
    assert_non_null(o);
    (void)h;
    memset(c, 0, offsetof(call, seqs));
    c->payload_len = len;
    recs = cJSON_GetObjectItem(o, "Records");
    assert_true(cJSON_IsArray(recs));
    cJSON_ArrayForEach(r, recs) {
        const cJSON *k = cJSON_GetObjectItem(r, "kinesis");
        assert_true(c->n < CALLREC);
        b64_decode(cJSON_GetObjectItem(k, "data")->valuestring, c->names_store[c->n], 32);
        snprintf(c->seqs[c->n], BRK_SEQ_STRLEN, "%s",
                 cJSON_GetObjectItem(k, "sequenceNumber")->valuestring);
        snprintf(c->pks[c->n], 32, "%s", cJSON_GetObjectItem(k, "partitionKey")->valuestring);
        c->recs[c->n] = c->names_store[c->n];
        c->n++;
    }
    v = cJSON_GetObjectItem(o, "isFinalInvokeForWindow");
    if (v) {
        const cJSON *st = cJSON_GetObjectItem(o, "state");
        const cJSON *sn = st ? cJSON_GetObjectItem(st, "n") : NULL;
        c->window = true;
        c->final = cJSON_IsTrue(v);
        c->early = cJSON_IsTrue(cJSON_GetObjectItem(o, "isWindowTerminatedEarly"));
        c->state_n = cJSON_IsNumber(sn) ? sn->valueint : 0;
        assert_non_null(cJSON_GetObjectItem(o, "window"));
        assert_non_null(cJSON_GetObjectItem(o, "shardId"));
    }
    if (c->final) {
        off += (size_t)snprintf(c->names + off, sizeof c->names - off, "F%s@%d",
                                c->early ? "!" : "", c->state_n);
    } else {
        for (size_t i = 0; i < c->n; i++)
            off += (size_t)snprintf(c->names + off, sizeof c->names - off, "%s%s",
                                    i ? "," : "", c->recs[i]);
        if (c->window) snprintf(c->names + off, sizeof c->names - off, "@%d", c->state_n);
    }
    cJSON_Delete(o);
}

static void fake_invoke(void *ctx, const char *arn, char *payload, size_t len,
                        const fn_event_batch *batch, esm_invoke_done done, void *cb_ctx)
{
    harness *h = ctx;
    call *c;
    enum esm_invoke_status st = ESM_INVOKE_OK;
    char *body = NULL;
    int delay = h->delay_ms;
    (void)arn;
    assert_true(h->ncalls < MAXCALL);
    c = &h->calls[h->ncalls++];
    parse_call(h, payload, len, c);
    /* the records handed along (for the Lua engine's direct path) are exactly the payload's;
     * window events carry none */
    if (c->window) {
        assert_null(batch);
    } else {
        assert_non_null(batch);
        assert_int_equal(batch->n, c->n);
        for (size_t i = 0; i < c->n; i++) {
            assert_string_equal(batch->recs[i].seq, c->seqs[i]);
            assert_int_equal(batch->recs[i].pk_len, strlen(c->pks[i]));
            assert_memory_equal(batch->recs[i].partition_key, c->pks[i], batch->recs[i].pk_len);
        }
        assert_string_equal(batch->src->stream_arn,
                            "arn:aws:kinesis:us-east-1:000000000000:stream/s");
    }
    sl_free(payload);
    if (h->script) h->script(h, c, &st, &body, &delay);
    h->inflight++;
    if (h->inflight > h->max_inflight) h->max_inflight = h->inflight;
    if (h->sync) {
        esm_invoke_result r = {st, body ? body : "", body ? strlen(body) : 0,
                               st == ESM_INVOKE_FUNCTION_ERROR ? "Unhandled" : NULL};
        h->inflight--;
        done(cb_ctx, &r);
        free(body);
        return;
    }
    pending *p = calloc(1, sizeof *p);
    p->h = h;
    p->done = done;
    p->cb_ctx = cb_ctx;
    p->st = st;
    p->body = body;
    uv_timer_init(&h->loop, &p->t);
    p->t.data = p;
    uv_timer_start(&p->t, pending_fire, (uint64_t)delay, 0);
}

static bool has_poison(harness *h, const call *c, size_t *idx)
{
    for (size_t i = 0; i < c->n; i++)
        if (h->poison && !strcmp(c->recs[i], h->poison)) {
            if (idx) *idx = i;
            return true;
        }
    return false;
}

/* A writable copy of a literal for esm_config's char * members (the test owns it). */
static char *mut(const char *s)
{
    static char ring[8][512];
    static int next;
    char *b = ring[next++ % 8];
    snprintf(b, 512, "%s", s);
    return b;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, f);
    if (vasprintf(&s, f, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

/* ---- scripts -------------------------------------------------------------------------------- */

static void s_ok(harness *h, const call *c, enum esm_invoke_status *st, char **body, int *d)
{
    (void)h, (void)c, (void)d;
    *st = ESM_INVOKE_OK;
    *body = strdup("null");
}

static void s_fail_poison(harness *h, const call *c, enum esm_invoke_status *st, char **body,
                          int *d)
{
    (void)d;
    if (h->throttle_first > 0) {
        h->throttle_first--;
        *st = ESM_INVOKE_THROTTLED;
        return;
    }
    if (has_poison(h, c, NULL)) {
        *st = ESM_INVOKE_FUNCTION_ERROR;
        *body = strdup("{\"errorMessage\":\"poison\",\"errorType\":\"Error\"}");
        return;
    }
    *st = ESM_INVOKE_OK;
    *body = strdup("{}");
}

/* ReportBatchItemFailures: reports the poison record; with counter > 0 only that many times. */
static void s_partial_poison(harness *h, const call *c, enum esm_invoke_status *st, char **body,
                             int *d)
{
    size_t i;
    (void)d;
    *st = ESM_INVOKE_OK;
    if (has_poison(h, c, &i) && (h->counter < 0 || h->counter-- > 0))
        *body = fmt("{\"batchItemFailures\":[{\"itemIdentifier\":\"%s\"}]}", c->seqs[i]);
    else *body = strdup("{\"batchItemFailures\":[]}");
}

static void s_partial_empty_then(harness *h, const call *c, enum esm_invoke_status *st,
                                 char **body, int *d, const char *first)
{
    (void)c, (void)d;
    *st = ESM_INVOKE_OK;
    *body = strdup(h->counter++ == 0 ? first : "{\"batchItemFailures\":null}");
}

static void s_null_list(harness *h, const call *c, enum esm_invoke_status *st, char **body,
                        int *d)
{
    (void)h, (void)c, (void)d;
    *st = ESM_INVOKE_OK;
    *body = strdup("{\"batchItemFailures\":null}");
}

static void s_partial_malformed(harness *h, const call *c, enum esm_invoke_status *st,
                                char **body, int *d)
{
    s_partial_empty_then(h, c, st, body, d, "{\"batchItemFailures\":[{\"itemIdentifier\":\"\"}]}");
}

static void s_partial_unknown(harness *h, const call *c, enum esm_invoke_status *st,
                              char **body, int *d)
{
    s_partial_empty_then(h, c, st, body, d,
                         "{\"batchItemFailures\":[{\"itemIdentifier\":\"12345\"}]}");
}

static void s_partial_badjson(harness *h, const call *c, enum esm_invoke_status *st,
                              char **body, int *d)
{
    s_partial_empty_then(h, c, st, body, d, "{\"batchItemFailures\":[");
}

static void s_partial_emptyobj(harness *h, const call *c, enum esm_invoke_status *st,
                               char **body, int *d)
{
    s_partial_empty_then(h, c, st, body, d, "{}");
}

/* Tumbling windows: state {"n": previous n + records}; "big" inflates the state past 1 MB. */
static void s_window(harness *h, const call *c, enum esm_invoke_status *st, char **body,
                     int *d)
{
    (void)d;
    *st = ESM_INVOKE_OK;
    if (c->final) {
        *body = strdup("{}");
        return;
    }
    if (has_poison(h, c, NULL)) {
        size_t big = 1100000;
        char *pad = malloc(big + 1);
        memset(pad, 'x', big);
        pad[big] = '\0';
        *body = fmt("{\"state\":{\"n\":%d,\"pad\":\"%s\"}}", c->state_n + (int)c->n, pad);
        free(pad);
        return;
    }
    *body = fmt("{\"state\":{\"n\":%d}}", c->state_n + (int)c->n);
}

/* Random small delays: concurrency across lanes. */
static void s_jitter(harness *h, const call *c, enum esm_invoke_status *st, char **body, int *d)
{
    (void)c;
    *st = ESM_INVOKE_OK;
    *body = strdup("null");
    *d = (h->counter++ * 7) % 5;
}

/* ---- checks ----------------------------------------------------------------------------- */

static char *render_calls(harness *h)
{
    size_t cap = 1 << 20, off = 0;
    char *s = malloc(cap);
    s[0] = '\0';
    for (size_t i = 0; i < h->ncalls; i++)
        off += (size_t)snprintf(s + off, cap - off, "%s%s", i ? "|" : "", h->calls[i].names);
    return s;
}

static char *render_dlq(harness *h)
{
    char **lines = NULL;
    size_t n = 0, off = 0, cap = 1 << 16;
    sl_err err;
    char *s = malloc(cap);
    s[0] = '\0';
    assert_int_equal(dst_queue_read(h->dir, DLQ, &lines, &n, &err), 0);
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_Parse(lines[i]);
        const cJSON *rc = cJSON_GetObjectItem(o, "requestContext");
        const cJSON *bi = cJSON_GetObjectItem(o, "KinesisBatchInfo");
        assert_non_null(rc);
        assert_non_null(bi);
        off += (size_t)snprintf(
            s + off, cap - off, "%s%s-%s/%d:%s:%d", i ? "|" : "",
            name_of_seq(h, cJSON_GetObjectItem(bi, "startSequenceNumber")->valuestring),
            name_of_seq(h, cJSON_GetObjectItem(bi, "endSequenceNumber")->valuestring),
            cJSON_GetObjectItem(bi, "batchSize")->valueint,
            cJSON_GetObjectItem(rc, "condition")->valuestring,
            cJSON_GetObjectItem(rc, "approximateInvokeCount")->valueint);
        cJSON_Delete(o);
        free(lines[i]);
    }
    free(lines);
    return s;
}

static void expect_str(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "%s:\n  got:  %s\n  want: %s\n", what, got, want);
        fail();
    }
}

static const char *wait_uuid;
static const char *wait_shard;
static const char *wait_seq;

static bool ckpt_reached(harness *h)
{
    char seq[BRK_SEQ_STRLEN];
    bool drained;
    if (esm_mgr_checkpoint(h->m, wait_uuid, wait_shard, seq, &drained) != 0) return false;
    return !strcmp(seq, wait_seq);
}

/* Waits until the mapping's durable checkpoint of a shard reaches a record. */
static void wait_ckpt(harness *h, const char *uuid, const char *shard, const char *seq)
{
    wait_uuid = uuid;
    wait_shard = shard;
    wait_seq = seq;
    if (!run_until(h, ckpt_reached, 30000)) {
        char got[BRK_SEQ_STRLEN] = "(none)";
        bool dr;
        esm_mgr_checkpoint(h->m, uuid, shard, got, &dr);
        char *calls = render_calls(h);
        fprintf(stderr, "checkpoint of %s stuck at %s (%s), want %s; calls %s\n", shard,
                name_of_seq(h, got), got, name_of_seq(h, seq), calls);
        free(calls);
        fail();
    }
}

/* ---- the table ------------------------------------------------------------------------------ */

typedef struct scenario {
    const char *name;
    const char *records;          /* space-separated names, all to shard 0 */
    void (*cfg)(esm_config *c);
    script_fn script;
    const char *poison;
    int counter;
    int throttle_first;
    bool sync;
    const char *calls;            /* expected */
    const char *dlq;              /* expected on-failure records ("" none) */
} scenario;

static void c_b2(esm_config *c) { c->batch_size = 2; }
static void c_b1(esm_config *c) { c->batch_size = 1; }
static void c_bisect_r1(esm_config *c) { c->bisect = true; c->max_retry = 1; }
static void c_r2(esm_config *c) { c->max_retry = 2; }
static void c_r0(esm_config *c) { c->max_retry = 0; }
static void c_report(esm_config *c) { c->report_failures = true; }
static void c_report_r0(esm_config *c) { c->report_failures = true; c->max_retry = 0; }
static void c_report_bisect_r1(esm_config *c)
{
    c->report_failures = true;
    c->bisect = true;
    c->max_retry = 1;
}
static void c_bisect_r0(esm_config *c) { c->bisect = true; c->max_retry = 0; }

static const scenario table[] = {
    {"in_order_batches", "a b c d e", c_b2, s_ok, NULL, 0, 0, false, "a,b|c,d|e", ""},
    {"batch_size_one", "a b c", c_b1, s_ok, NULL, 0, 0, false, "a|b|c", ""},
    {"one_batch_default_size", "a b c d e f g", NULL, s_ok, NULL, 0, 0, false,
     "a,b,c,d,e,f,g", ""},
    {"poison_with_bisect", "a b poison d", c_bisect_r1, s_fail_poison, "poison", 0, 0, false,
     "a,b,poison,d|a,b|poison,d|poison|poison|d", "poison-poison/1:RetryAttemptsExhausted:4"},
    {"poison_with_bisect_odd", "a b c poison e", c_bisect_r0, s_fail_poison, "poison", 0, 0,
     false, "a,b,c,poison,e|a,b,c|poison,e|poison|e",
     "poison-poison/1:RetryAttemptsExhausted:3"},
    {"poison_bisect_sync_invoker", "a b poison d", c_bisect_r1, s_fail_poison, "poison", 0, 0,
     true, "a,b,poison,d|a,b|poison,d|poison|poison|d",
     "poison-poison/1:RetryAttemptsExhausted:4"},
    {"retries_exhausted", "a poison c", c_r2, s_fail_poison, "poison", 0, 0, false,
     "a,poison,c|a,poison,c|a,poison,c", "a-c/3:RetryAttemptsExhausted:3"},
    {"max_retry_zero", "a poison c", c_r0, s_fail_poison, "poison", 0, 0, false, "a,poison,c",
     "a-c/3:RetryAttemptsExhausted:1"},
    {"partial_first", "a b c", c_report, s_partial_poison, "a", 1, 0, false, "a,b,c|a,b,c", ""},
    {"partial_middle", "a b c", c_report, s_partial_poison, "b", 1, 0, false, "a,b,c|b,c", ""},
    {"partial_last", "a b c", c_report, s_partial_poison, "c", 1, 0, false, "a,b,c|c", ""},
    {"partial_retried_twice", "a b c d", c_report, s_partial_poison, "c", 2, 0, false,
     "a,b,c,d|c,d|c,d", ""},
    {"partial_exhausted", "a b c", c_report_r0, s_partial_poison, "b", -1, 0, false, "a,b,c",
     "b-c/2:RetryAttemptsExhausted:1"},
    {"partial_with_bisect", "a b poison d e", c_report_bisect_r1, s_partial_poison, "poison",
     -1, 0, false, "a,b,poison,d,e|poison,d,e", "poison-e/3:RetryAttemptsExhausted:2"},
    {"partial_empty_object_is_success", "a b c", c_report, s_partial_emptyobj, NULL, 0, 0,
     false, "a,b,c", ""},
    {"partial_null_list_is_success", "a b c", c_report, s_null_list, NULL, 0, 0,
     false, "a,b,c", ""},
    {"partial_null_response_is_success", "a b c", c_report, s_ok, NULL, 0, 0, false, "a,b,c",
     ""},
    {"partial_empty_identifier_retries_all", "a b c", c_report, s_partial_malformed, NULL, 0,
     0, false, "a,b,c|a,b,c", ""},
    {"partial_unknown_identifier_retries_all", "a b c", c_report, s_partial_unknown, NULL, 0,
     0, false, "a,b,c|a,b,c", ""},
    {"partial_unparsable_retries_all", "a b c", c_report, s_partial_badjson, NULL, 0, 0, false,
     "a,b,c|a,b,c", ""},
    {"partial_ignored_without_report", "a b c", NULL, s_partial_poison, "b", -1, 0, false,
     "a,b,c", ""},
    {"throttling_consumes_no_retry", "a b", c_r0, s_fail_poison, NULL, 0, 3, false,
     "a,b|a,b|a,b|a,b", ""},
    {"throttled_then_poison", "poison", c_r0, s_fail_poison, "poison", 0, 2, false,
     "poison|poison|poison", "poison-poison/1:RetryAttemptsExhausted:1"},
};


static void run_scenario(harness *h, const scenario *sc)
{
    esm_config c;
    esm_view v;
    sl_err err;
    char *calls, *dlq;

    make_stream(h, "s", 1);
    put_list(h, sc->records);
    open_mgr(h);
    h->script = sc->script;
    h->poison = sc->poison;
    h->counter = sc->counter;
    h->throttle_first = sc->throttle_first;
    h->sync = sc->sync;
    esm_config_defaults(&c);
    snprintf(c.stream_arn, sizeof c.stream_arn, "arn:aws:kinesis:us-east-1:000000000000:stream/s");
    c.destination = strdup(DLQ);
    if (sc->cfg) sc->cfg(&c);
    assert_int_equal(esm_mgr_create(h->m, &c, "fn", &v, &err), 0);
    assert_int_equal(v.state, ESM_CREATING);
    snprintf(h->uuid, sizeof h->uuid, "%s", v.cfg.uuid);
    esm_view_clear(&v);
    free(c.destination);
    wait_ckpt(h, h->uuid, "shardId-000000000000", h->put_seq[h->nput - 1]);
    run_ms(h, 30);   /* nothing further may happen */
    calls = render_calls(h);
    dlq = render_dlq(h);
    expect_str(sc->name, calls, sc->calls);
    expect_str("on-failure records", dlq, sc->dlq);
    free(calls);
    free(dlq);
}

static void test_esm_scenario(void **state)
{
    harness *h = *state;
    run_scenario(h, h->sc);
}

/* ---- scenarios with their own flow -------------------------------------------------------- */

static esm_config base_cfg(const char *stream)
{
    esm_config c;
    esm_config_defaults(&c);
    snprintf(c.stream_arn, sizeof c.stream_arn, "arn:aws:kinesis:us-east-1:000000000000:stream/%s",
             stream);
    return c;
}

static void create(harness *h, esm_config *c, const char *fn, char *uuid_out)
{
    esm_view v;
    sl_err err;
    int rc = esm_mgr_create(h->m, c, fn, &v, &err);
    if (rc) fprintf(stderr, "create: %s\n", err.msg);
    assert_int_equal(rc, 0);
    snprintf(uuid_out, ESM_UUID_LEN, "%s", v.cfg.uuid);
    esm_view_clear(&v);
}

static const char *last_seq_of_shard(harness *h, const char *shard)
{
    const char *s = "";
    for (size_t i = 0; i < h->nput; i++)
        if (!strcmp(h->put_shard[i], shard)) s = h->put_seq[i];
    return s;
}

/* The on-failure record, field by field (SPEC 3.7). */
static void test_esm_destination_record_fields(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char **lines = NULL;
    size_t n = 0;
    sl_err err;
    cJSON *o;
    const cJSON *rq, *rs, *bi;

    make_stream(h, "s", 1);
    put_list(h, "a poison c");
    open_mgr(h);
    h->script = s_fail_poison;
    h->poison = "poison";
    c.max_retry = 1;
    c.destination = mut(DLQ);
    create(h, &c, "ingest", h->uuid);
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "c"));
    assert_int_equal(dst_queue_read(h->dir, DLQ, &lines, &n, &err), 0);
    assert_int_equal(n, 1);
    o = cJSON_Parse(lines[0]);
    assert_non_null(o);
    rq = cJSON_GetObjectItem(o, "requestContext");
    rs = cJSON_GetObjectItem(o, "responseContext");
    bi = cJSON_GetObjectItem(o, "KinesisBatchInfo");
    assert_non_null(rq);
    assert_non_null(rs);
    assert_non_null(bi);
    assert_int_equal(strlen(cJSON_GetObjectItem(rq, "requestId")->valuestring), 36);
    assert_string_equal(cJSON_GetObjectItem(rq, "functionArn")->valuestring,
                        "arn:aws:lambda:us-east-1:000000000000:function:ingest");
    assert_string_equal(cJSON_GetObjectItem(rq, "condition")->valuestring,
                        "RetryAttemptsExhausted");
    assert_int_equal(cJSON_GetObjectItem(rq, "approximateInvokeCount")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(rs, "statusCode")->valueint, 200);
    assert_string_equal(cJSON_GetObjectItem(rs, "executedVersion")->valuestring, "$LATEST");
    assert_string_equal(cJSON_GetObjectItem(rs, "functionError")->valuestring, "Unhandled");
    assert_string_equal(cJSON_GetObjectItem(o, "version")->valuestring, "1.0");
    assert_non_null(cJSON_GetObjectItem(o, "timestamp"));
    assert_string_equal(cJSON_GetObjectItem(bi, "shardId")->valuestring, "shardId-000000000000");
    assert_string_equal(cJSON_GetObjectItem(bi, "startSequenceNumber")->valuestring,
                        seq_of(h, "a"));
    assert_string_equal(cJSON_GetObjectItem(bi, "endSequenceNumber")->valuestring,
                        seq_of(h, "c"));
    assert_int_equal(cJSON_GetObjectItem(bi, "batchSize")->valueint, 3);
    assert_string_equal(cJSON_GetObjectItem(bi, "streamArn")->valuestring,
                        "arn:aws:kinesis:us-east-1:000000000000:stream/s");
    assert_non_null(cJSON_GetObjectItem(bi, "approximateArrivalOfFirstRecord"));
    assert_non_null(cJSON_GetObjectItem(bi, "approximateArrivalOfLastRecord"));
    cJSON_Delete(o);
    for (size_t i = 0; i < n; i++) free(lines[i]);
    free(lines);
}

/* Records older than MaximumRecordAgeInSeconds are dropped before any invoke. */
static void test_esm_record_age_expiry(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char *calls, *dlq;
    char **lines = NULL;
    size_t n = 0;
    sl_err err;

    make_stream(h, "s", 1);
    h->offset_ms = -120000;       /* a and b arrived two minutes ago */
    put_list(h, "a b");
    h->offset_ms = 0;
    put_list(h, "c d");
    open_mgr(h);
    h->script = s_ok;
    c.max_age_s = 60;
    c.destination = mut(DLQ);
    create(h, &c, "fn", h->uuid);
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "d"));
    calls = render_calls(h);
    dlq = render_dlq(h);
    expect_str("calls", calls, "c,d");
    expect_str("dlq", dlq, "a-b/2:RecordAgeExceeded:0");
    /* Discarded before any invoke: no responseContext. */
    assert_int_equal(dst_queue_read(h->dir, DLQ, &lines, &n, &err), 0);
    cJSON *o = cJSON_Parse(lines[0]);
    assert_null(cJSON_GetObjectItem(o, "responseContext"));
    cJSON_Delete(o);
    for (size_t i = 0; i < n; i++) free(lines[i]);
    free(lines);
    free(calls);
    free(dlq);
}

/* Age expiry while a poison batch is being retried forever (-1): it ends the retries. */
static void test_esm_record_age_ends_retries(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char *dlq;

    make_stream(h, "s", 1);
    h->offset_ms = -59500;        /* expires half a second after the first attempts */
    put_list(h, "poison");
    h->offset_ms = 0;
    put_list(h, "b");
    open_mgr(h);
    h->script = s_fail_poison;
    h->poison = "poison";
    c.max_age_s = 60;
    c.batch_size = 1;
    c.destination = mut(DLQ);
    create(h, &c, "fn", h->uuid);
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "b"));
    assert_true(h->ncalls >= 2);
    assert_string_equal(h->calls[h->ncalls - 1].names, "b");
    dlq = render_dlq(h);
    assert_non_null(strstr(dlq, "poison-poison/1:RecordAgeExceeded:"));
    free(dlq);
}

static void put_cb_a(uv_timer_t *t)
{
    harness *h = t->data;
    put(h, h->counter == 0 ? "b" : "c");
    h->counter++;
    if (h->counter == 2) uv_timer_stop(t);
}

static bool two_puts_done(harness *h)
{
    return h->counter == 2;
}

/* Batching window: a slow producer fills the batch before the window ends; a lone record then
 * waits for the window to close. */
static void test_esm_batching_window_slow_producer(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    uv_timer_t t;
    char *calls;

    make_stream(h, "s", 1);
    open_mgr(h);
    h->script = s_ok;
    c.batch_size = 3;
    c.max_window_s = 2;
    create(h, &c, "fn", h->uuid);
    run_ms(h, 20);
    put(h, "a");
    uv_timer_init(&h->loop, &t);
    t.data = h;
    h->counter = 0;
    uv_timer_start(&t, put_cb_a, 100, 100);
    assert_true(run_until(h, two_puts_done, 20000));
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "c"));
    uint64_t t0 = uv_now(&h->loop);
    put(h, "d");
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "d"));
    /* The window held d back (no threshold on speed, only that it waited at least ~W). */
    assert_true(uv_now(&h->loop) - t0 >= 1900);
    calls = render_calls(h);
    expect_str("calls", calls, "a,b,c|d");
    free(calls);
    uv_close((uv_handle_t *)&t, NULL);
}

/* The 6 MB payload cap cuts batches before BatchSize. */
static void test_esm_payload_cap(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char name[16];
    char *calls;

    make_stream(h, "s", 1);
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "r%d", i);
        put_ex(h, "s", name, name, "0", 900000);
    }
    open_mgr(h);
    h->script = s_ok;
    c.batch_size = 100;
    create(h, &c, "fn", h->uuid);
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "r9"));
    calls = render_calls(h);
    expect_str("calls", calls, "r0,r1,r2,r3,r4|r5,r6,r7,r8,r9");
    for (size_t i = 0; i < h->ncalls; i++) {
        assert_true(h->calls[i].payload_len <= ESM_PAYLOAD_MAX);
        /* one more record (~1.2 MB of base64) would not have fitted */
        assert_true(h->calls[i].payload_len + 1200000 > ESM_PAYLOAD_MAX);
    }
    free(calls);
}

/* ParallelizationFactor: lanes run concurrently, per-key order holds, each record once. */
static void test_esm_parallelization_per_key_order(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char name[32], key[16];
    int last[8];

    make_stream(h, "s", 1);
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k%d", i % 8);
        snprintf(name, sizeof name, "%s-%d", key, i / 8);
        put_ex(h, "s", name, key, "0", 0);
    }
    open_mgr(h);
    h->script = s_jitter;
    c.batch_size = 5;
    c.parallelization = 4;
    create(h, &c, "fn", h->uuid);
    wait_ckpt(h, h->uuid, "shardId-000000000000", h->put_seq[h->nput - 1]);
    for (int k = 0; k < 8; k++) last[k] = -1;
    size_t total = 0;
    for (size_t i = 0; i < h->ncalls; i++)
        for (size_t j = 0; j < h->calls[i].n; j++) {
            int k, idx;
            assert_int_equal(sscanf(h->calls[i].recs[j], "k%d-%d", &k, &idx), 2);
            assert_int_equal(idx, last[k] + 1);   /* per key: in order, none twice */
            last[k] = idx;
            total++;
        }
    assert_int_equal(total, 200);
    assert_true(h->max_inflight > 1);             /* lanes really ran concurrently */
    for (int k = 0; k < 8; k++) assert_int_equal(last[k], 24);
}

/* Restart: close manager and broker mid-batch, reopen, nothing skipped, order kept. */
static bool calls_at_least_3(harness *h)
{
    return h->ncalls >= 3;
}

static void test_esm_restart_mid_batch(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char name[16];
    int next = 0;

    make_stream(h, "s", 1);
    for (int i = 0; i < 30; i++) {
        snprintf(name, sizeof name, "r%02d", i);
        put(h, name);
    }
    open_mgr(h);
    h->script = s_ok;
    h->delay_ms = 20;              /* the third batch is in flight when we stop */
    c.batch_size = 4;
    create(h, &c, "fn", h->uuid);
    assert_true(run_until(h, calls_at_least_3, 20000));
    close_mgr(h);
    brk_close(h->b);
    h->b = NULL;
    size_t before = h->ncalls;
    open_broker(h);
    open_mgr(h);
    h->delay_ms = 0;
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "r29"));
    assert_true(h->ncalls > before);
    /* Every record seen, first sightings in order; replays only at-least-once repeats. */
    for (size_t i = 0; i < h->ncalls; i++)
        for (size_t j = 0; j < h->calls[i].n; j++) {
            int idx = atoi(h->calls[i].recs[j] + 1);
            assert_true(idx <= next);
            if (idx == next) next++;
        }
    assert_int_equal(next, 30);
    /* After the restart the mapping resumed after its checkpoint: the first batch after the
     * restart starts at or before the first record not yet acknowledged. */
    int first_after = atoi(h->calls[before].recs[0] + 1);
    assert_true(first_after <= 12);
}

/* Resharding: a split while consuming; children start after the parent is drained. */
static void check_key_order(harness *h, int nkeys, int per_key)
{
    int last[16];
    for (int k = 0; k < nkeys; k++) last[k] = -1;
    for (size_t i = 0; i < h->ncalls; i++)
        for (size_t j = 0; j < h->calls[i].n; j++) {
            int k, idx;
            assert_int_equal(sscanf(h->calls[i].recs[j], "k%d-%d", &k, &idx), 2);
            if (idx != last[k] + 1) {
                fprintf(stderr, "key k%d: got %d after %d\n", k, idx, last[k]);
                fail();
            }
            last[k] = idx;
        }
    for (int k = 0; k < nkeys; k++) assert_int_equal(last[k], per_key - 1);
}

static bool calls_at_least_2(harness *h)
{
    return h->ncalls >= 2;
}

static bool all_children_done(harness *h);
static const char *child_ids[3];
static size_t nchild;

static bool all_children_done(harness *h)
{
    for (size_t i = 0; i < nchild; i++) {
        char seq[BRK_SEQ_STRLEN];
        const char *want = last_seq_of_shard(h, child_ids[i]);
        if (!want[0]) continue;
        if (esm_mgr_checkpoint(h->m, h->uuid, child_ids[i], seq, NULL) != 0) return false;
        if (strcmp(seq, want)) return false;
    }
    return true;
}

static void put_keys(harness *h, int nkeys, int from, int to)
{
    char name[32], key[16];
    for (int i = from; i < to; i++)
        for (int k = 0; k < nkeys; k++) {
            snprintf(key, sizeof key, "k%d", k);
            snprintf(name, sizeof name, "k%d-%d", k, i);
            put_ex(h, "s", name, key, NULL, 0);
        }
}

static void test_esm_split_keeps_key_order(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    sl_err err;
    bool drained = false;
    char seq[BRK_SEQ_STRLEN];

    make_stream(h, "s", 1);
    put_keys(h, 6, 0, 10);
    open_mgr(h);
    h->script = s_ok;
    h->delay_ms = 5;
    c.batch_size = 4;
    create(h, &c, "fn", h->uuid);
    assert_true(run_until(h, calls_at_least_2, 20000));
    assert_int_equal(brk_split_shard(h->b, "s", "shardId-000000000000",
                                     "170141183460469231731687303715884105728", &err), 0);
    put_keys(h, 6, 10, 20);
    child_ids[0] = "shardId-000000000001";
    child_ids[1] = "shardId-000000000002";
    nchild = 2;
    assert_true(run_until(h, all_children_done, 30000));
    check_key_order(h, 6, 20);
    assert_int_equal(esm_mgr_checkpoint(h->m, h->uuid, "shardId-000000000000", seq, &drained),
                     0);
    assert_true(drained);
    /* Every parent record was delivered before any child record. */
    size_t last_parent = 0, first_child = SIZE_MAX;
    for (size_t i = 0; i < h->ncalls; i++)
        for (size_t j = 0; j < h->calls[i].n; j++) {
            int k, idx;
            sscanf(h->calls[i].recs[j], "k%d-%d", &k, &idx);
            if (idx < 10) last_parent = i;
            else if (first_child == SIZE_MAX) first_child = i;
        }
    assert_true(last_parent < first_child);
}

static void test_esm_merge_keeps_key_order(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    sl_err err;

    make_stream(h, "s", 2);
    put_keys(h, 8, 0, 8);
    open_mgr(h);
    h->script = s_ok;
    h->delay_ms = 5;
    c.batch_size = 3;
    create(h, &c, "fn", h->uuid);
    assert_true(run_until(h, calls_at_least_2, 20000));
    assert_int_equal(brk_merge_shards(h->b, "s", "shardId-000000000000", "shardId-000000000001",
                                      &err), 0);
    put_keys(h, 8, 8, 16);
    child_ids[0] = "shardId-000000000002";
    nchild = 1;
    assert_true(run_until(h, all_children_done, 30000));
    check_key_order(h, 8, 16);
}

/* Tumbling windows: state passing across invokes, final invokes, in arrival windows. */
static void test_esm_tumbling_aggregation(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char *calls;
    int64_t t0 = (sl_now_ms() / 60000) * 60000 - 600000;   /* two old windows */

    make_stream(h, "s", 1);
    h->fixed_ms = t0 + 1000;
    put_list(h, "a b c");
    h->fixed_ms = t0 + 61000;
    put_list(h, "d e");
    h->fixed_ms = 0;
    open_mgr(h);
    h->script = s_window;
    c.batch_size = 2;
    c.tumbling_s = 60;
    create(h, &c, "fn", h->uuid);
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "e"));
    calls = render_calls(h);
    expect_str("calls", calls, "a,b@0|c@2|F@3|d,e@0|F@2");
    free(calls);
}

/* The final invoke comes from the clock when no later record arrives. */
static void test_esm_tumbling_final_by_clock(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char *calls;

    make_stream(h, "s", 1);
    open_mgr(h);
    h->script = s_window;
    c.tumbling_s = 1;
    create(h, &c, "fn", h->uuid);
    run_ms(h, 10);
    h->fixed_ms = sl_now_ms();    /* both records in one window */
    put_list(h, "a b");
    h->fixed_ms = 0;
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "b"));
    calls = render_calls(h);
    expect_str("calls", calls, "a,b@0|F@2");
    free(calls);
}

/* State above 1 MB ends the window early; the rest of the period opens a new window. */
static void test_esm_tumbling_early_termination(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char *calls;
    int64_t t0 = (sl_now_ms() / 60000) * 60000 - 600000;

    make_stream(h, "s", 1);
    h->fixed_ms = t0 + 1000;
    put_list(h, "big b");
    h->fixed_ms = 0;
    open_mgr(h);
    h->script = s_window;
    h->poison = "big";
    c.batch_size = 1;
    c.tumbling_s = 60;
    create(h, &c, "fn", h->uuid);
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "b"));
    calls = render_calls(h);
    expect_str("calls", calls, "big@0|F!@1|b@0|F@1");
    free(calls);
}

/* FilterCriteria on JSON data: non-matching and non-JSON records are skipped, yet the
 * checkpoint passes them. */
static void test_esm_filter_json_data(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char *calls;

    make_stream(h, "s", 1);
    put_list(h, "{\"kind\":\"keep\",\"i\":1} {\"kind\":\"drop\",\"i\":2} plain "
                "{\"kind\":\"keep\",\"i\":3} {\"kind\":\"drop\"}");
    open_mgr(h);
    h->script = s_ok;
    c.filter_json = mut("{\"Filters\":[{\"Pattern\":"
                        "\"{\\\"data\\\":{\\\"kind\\\":[\\\"keep\\\"]}}\"}]}");
    create(h, &c, "fn", h->uuid);
    wait_ckpt(h, h->uuid, "shardId-000000000000", h->put_seq[h->nput - 1]);
    calls = render_calls(h);
    expect_str("calls", calls, "{\"kind\":\"keep\",\"i\":1},{\"kind\":\"keep\",\"i\":3}");
    free(calls);
}

/* FilterCriteria on metadata only: non-JSON data still filtered by partition key. */
static void test_esm_filter_metadata_non_json(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char *calls;

    make_stream(h, "s", 1);
    put_ex(h, "s", "one", "us-east", "0", 0);
    put_ex(h, "s", "two", "eu-west", "0", 0);
    put_ex(h, "s", "three", "us-west", "0", 0);
    open_mgr(h);
    h->script = s_ok;
    c.filter_json = mut("{\"Filters\":[{\"Pattern\":\"{\\\"partitionKey\\\":[{\\\"prefix\\\":"
                    "\\\"us-\\\"}]}\"}]}");
    create(h, &c, "fn", h->uuid);
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "three"));
    calls = render_calls(h);
    expect_str("calls", calls, "one,three");
    free(calls);
}

static bool is_state(harness *h, enum esm_state want)
{
    esm_view v;
    sl_err err;
    bool ok = esm_mgr_get(h->m, h->uuid, &v, &err) == 0 && v.state == want;
    esm_view_clear(&v);
    return ok;
}
static bool is_enabled(harness *h) { return is_state(h, ESM_ENABLED); }
static bool is_disabled(harness *h) { return is_state(h, ESM_DISABLED); }

static void set_enabled(harness *h, bool on)
{
    esm_view v, out;
    sl_err err;
    assert_int_equal(esm_mgr_get(h->m, h->uuid, &v, &err), 0);
    v.cfg.enabled = on;
    assert_int_equal(esm_mgr_update(h->m, h->uuid, &v.cfg, NULL, &out, &err), 0);
    assert_int_equal(out.state, ESM_UPDATING);
    esm_view_clear(&out);
    esm_view_clear(&v);
}

/* Enabled=false pauses; enabling resumes after the checkpoint. */
static void test_esm_disable_enable_resumes(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char *calls;

    make_stream(h, "s", 1);
    put_list(h, "a b c");
    open_mgr(h);
    h->script = s_ok;
    create(h, &c, "fn", h->uuid);
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "c"));
    set_enabled(h, false);
    assert_true(run_until(h, is_disabled, 10000));
    put_list(h, "d e f");
    run_ms(h, 200);
    assert_int_equal(h->ncalls, 1);     /* paused */
    set_enabled(h, true);
    assert_true(run_until(h, is_enabled, 10000));
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "f"));
    calls = render_calls(h);
    expect_str("calls", calls, "a,b,c|d,e,f");
    free(calls);
}

/* Two mappings on one stream progress independently: one blocked on a poison record. */
static void s_fail_for_fn_a(harness *h, const call *c, enum esm_invoke_status *st, char **body,
                            int *d);
static char arn_seen[MAXCALL][64];

static void fake_invoke_arn(void *ctx, const char *arn, char *payload, size_t len,
                            const fn_event_batch *batch, esm_invoke_done done, void *cb_ctx)
{
    harness *h = ctx;
    snprintf(arn_seen[h->ncalls], 64, "%s", strrchr(arn, ':') + 1);
    h->poison = !strcmp(arn_seen[h->ncalls], "fa") ? "b" : NULL;
    fake_invoke(ctx, arn, payload, len, batch, done, cb_ctx);
}

static void s_fail_for_fn_a(harness *h, const call *c, enum esm_invoke_status *st, char **body,
                            int *d)
{
    s_fail_poison(h, c, st, body, d);
}

static void test_esm_two_mappings_independent(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char seq[BRK_SEQ_STRLEN];
    bool dr;
    sl_err err;
    esm_view v;

    make_stream(h, "s", 1);
    put_list(h, "a b c");
    g_invoke = fake_invoke_arn;
    open_mgr(h);
    g_invoke = fake_invoke;
    h->script = s_fail_for_fn_a;
    c.batch_size = 1;
    create(h, &c, "fa", h->uuid);
    create(h, &c, "fb", h->uuid2);
    /* Duplicate function + stream: 409 citing the existing UUID. */
    assert_int_equal(esm_mgr_create(h->m, &c, "fa", &v, &err), SL_EEXISTS);
    assert_non_null(strstr(err.msg, h->uuid));
    wait_ckpt(h, h->uuid2, "shardId-000000000000", seq_of(h, "c"));
    run_ms(h, 50);
    assert_int_equal(esm_mgr_checkpoint(h->m, h->uuid, "shardId-000000000000", seq, &dr), 0);
    if (strcmp(seq, seq_of(h, "a")))
        for (size_t i = 0; i < h->ncalls; i++)
            fprintf(stderr, "call %zu %s %s\n", i, arn_seen[i], h->calls[i].names);
    assert_string_equal(seq, seq_of(h, "a"));   /* fa is stuck retrying b */
    size_t fb_calls = 0, fa_b = 0;
    for (size_t i = 0; i < h->ncalls; i++) {
        if (!strcmp(arn_seen[i], "fb")) fb_calls++;
        if (!strcmp(arn_seen[i], "fa") && !strcmp(h->calls[i].names, "b")) fa_b++;
    }
    assert_int_equal(fb_calls, 3);
    assert_true(fa_b >= 2);
    /* Deleting fa: Deleting, then gone; fb unaffected. */
    assert_int_equal(esm_mgr_delete(h->m, h->uuid, &v, &err), 0);
    assert_int_equal(v.state, ESM_DELETING);
    esm_view_clear(&v);
    run_ms(h, 50);
    assert_int_equal(esm_mgr_get(h->m, h->uuid, &v, &err), SL_ENOTFOUND);
    assert_int_equal(esm_mgr_get(h->m, h->uuid2, &v, &err), 0);
    esm_view_clear(&v);
}

/* StartingPosition LATEST: only records put after the mapping was created. */
static void test_esm_latest(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char *calls;

    make_stream(h, "s", 1);
    put_list(h, "a b");
    open_mgr(h);
    h->script = s_ok;
    c.start_pos = ESM_START_LATEST;
    create(h, &c, "fn", h->uuid);
    put_list(h, "c d");
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "d"));
    calls = render_calls(h);
    assert_true(!strcmp(calls, "c,d") || !strcmp(calls, "c|d"));
    free(calls);
}

/* StartingPosition AT_TIMESTAMP: records arriving at or after the timestamp. */
static void test_esm_at_timestamp(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    char *calls;
    int64_t now = sl_now_ms();

    make_stream(h, "s", 1);
    h->fixed_ms = now - 60000;
    put_list(h, "a b");
    h->fixed_ms = now - 10000;
    put_list(h, "c d");
    h->fixed_ms = 0;
    open_mgr(h);
    h->script = s_ok;
    c.start_pos = ESM_START_AT_TIMESTAMP;
    c.start_ts_ms = now - 30000;
    create(h, &c, "fn", h->uuid);
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "d"));
    calls = render_calls(h);
    expect_str("calls", calls, "c,d");
    free(calls);
}

/* UpdateEventSourceMapping changes behaviour (SPEC 8.11): BatchSize 1 -> 10. */
static void test_esm_update_changes_batching(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    esm_view v, out;
    sl_err err;
    char *calls;

    make_stream(h, "s", 1);
    put_list(h, "a b");
    open_mgr(h);
    h->script = s_ok;
    c.batch_size = 1;
    create(h, &c, "fn", h->uuid);
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "b"));
    assert_int_equal(esm_mgr_get(h->m, h->uuid, &v, &err), 0);
    v.cfg.batch_size = 10;
    assert_int_equal(esm_mgr_update(h->m, h->uuid, &v.cfg, NULL, &out, &err), 0);
    /* A second update while Updating is refused. */
    assert_int_equal(esm_mgr_update(h->m, h->uuid, &v.cfg, NULL, &out, &err), SL_EINUSE);
    esm_view_clear(&out);
    esm_view_clear(&v);
    assert_true(run_until(h, is_enabled, 10000));
    put_list(h, "c d e");
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "e"));
    calls = render_calls(h);
    expect_str("calls", calls, "a|b|c,d,e");
    free(calls);
}

static bool calls_at_least_1(harness *h)
{
    return h->ncalls >= 1;
}

/* A tumbling window closes when its shard ends (split): final invoke, flagged early. */
static void test_esm_tumbling_window_closes_at_shard_end(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    sl_err err;
    char seq[BRK_SEQ_STRLEN];
    bool drained = false;
    char *calls;

    make_stream(h, "s", 1);
    h->fixed_ms = sl_now_ms();
    put_list(h, "a b");
    h->fixed_ms = 0;
    open_mgr(h);
    h->script = s_window;
    c.tumbling_s = 900;
    create(h, &c, "fn", h->uuid);
    assert_true(run_until(h, calls_at_least_1, 20000));
    run_ms(h, 20);
    assert_int_equal(brk_split_shard(h->b, "s", "shardId-000000000000",
                                     "170141183460469231731687303715884105728", &err), 0);
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "b"));
    calls = render_calls(h);
    expect_str("calls", calls, "a,b@0|F!@2");
    free(calls);
    for (int i = 0; i < 200 && !drained; i++) {
        run_ms(h, 10);
        esm_mgr_checkpoint(h->m, h->uuid, "shardId-000000000000", seq, &drained);
    }
    assert_true(drained);
}

/* Metrics are kept per mapping and shard. */
typedef struct met_acc {
    int mappings, shards;
    uint64_t invocations, errors, bisects, discarded, out, retries, in;
    char last[64];
} met_acc;

static void met_cb(void *ctx, const char *uuid, const char *fn, const char *shard,
                   const esm_metrics *mt)
{
    met_acc *a = ctx;
    (void)uuid, (void)fn;
    if (!shard) {
        a->mappings++;
        a->invocations = mt->invocations;
        a->errors = mt->function_errors;
        a->bisects = mt->bisects;
        a->discarded = mt->records_discarded;
        a->out = mt->records_out;
        a->retries = mt->retries;
        a->in = mt->records_in;
        snprintf(a->last, sizeof a->last, "%s", mt->last_result);
    } else {
        a->shards++;
    }
}

static void test_esm_metrics(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    met_acc a;
    memset(&a, 0, sizeof a);

    make_stream(h, "s", 1);
    put_list(h, "a b poison d");
    open_mgr(h);
    h->script = s_fail_poison;
    h->poison = "poison";
    c.bisect = true;
    c.max_retry = 1;
    create(h, &c, "fn", h->uuid);
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "d"));
    esm_mgr_foreach_metrics(h->m, met_cb, &a);
    assert_int_equal(a.mappings, 1);
    assert_int_equal(a.shards, 1);
    assert_int_equal(a.invocations, 6);
    assert_int_equal(a.errors, 4);
    assert_int_equal(a.bisects, 2);
    assert_int_equal(a.discarded, 1);
    assert_int_equal(a.out, 3);
    assert_int_equal(a.retries, 1);
    assert_int_equal(a.in, 4);
    assert_string_equal(a.last, "OK");
}

/* Validation done by the manager: unknown stream, bad filter, bad destination. */
static void test_esm_create_errors(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("nope");
    esm_view v;
    sl_err err;

    make_stream(h, "s", 1);
    open_mgr(h);
    assert_int_equal(esm_mgr_create(h->m, &c, "fn", &v, &err), SL_ENOTFOUND);
    c = base_cfg("s");
    c.filter_json = mut("{\"Filters\":[{\"Pattern\":\"not json\"}]}");
    assert_int_equal(esm_mgr_create(h->m, &c, "fn", &v, &err), SL_EINVAL);
    c.filter_json = NULL;
    c.destination = mut("ftp://nowhere");
    assert_int_equal(esm_mgr_create(h->m, &c, "fn", &v, &err), SL_EINVAL);
    c.destination = NULL;
    c.start_pos = ESM_START_AT_TIMESTAMP;
    c.start_ts_ms = sl_now_ms() + 3600000;
    assert_int_equal(esm_mgr_create(h->m, &c, "fn", &v, &err), SL_EINVAL);
    assert_int_equal(esm_mgr_get(h->m, "00000000-0000-4000-8000-000000000000", &v, &err),
                     SL_ENOTFOUND);
}

/* Mappings survive a restart with their settings and state. */
static void test_esm_config_persisted(void **state)
{
    harness *h = *state;
    esm_config c = base_cfg("s");
    esm_view v;
    sl_err err;

    make_stream(h, "s", 1);
    open_mgr(h);
    h->script = s_ok;
    c.batch_size = 7;
    c.bisect = true;
    c.max_retry = 3;
    c.parallelization = 2;
    c.destination = mut(DLQ);
    create(h, &c, "fn", h->uuid);
    close_mgr(h);
    open_mgr(h);
    assert_int_equal(esm_mgr_get(h->m, h->uuid, &v, &err), 0);
    assert_int_equal(v.cfg.batch_size, 7);
    assert_true(v.cfg.bisect);
    assert_int_equal(v.cfg.max_retry, 3);
    assert_int_equal(v.cfg.parallelization, 2);
    assert_string_equal(v.cfg.destination, DLQ);
    assert_int_equal(v.state, ESM_ENABLED);
    esm_view_clear(&v);
    put_list(h, "a b");
    wait_ckpt(h, h->uuid, "shardId-000000000000", seq_of(h, "b"));
}

#define NTABLE (sizeof table / sizeof table[0])

int main(void)
{
    rt_log_set_level(getenv("ESM_TEST_LOG") ? RT_DEBUG : RT_ERR);
    const struct CMUnitTest fixed[] = {
        cmocka_unit_test_setup_teardown(test_esm_destination_record_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_record_age_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_record_age_ends_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_batching_window_slow_producer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_payload_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_parallelization_per_key_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_esm_restart_mid_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_split_keeps_key_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_merge_keeps_key_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_tumbling_aggregation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_tumbling_final_by_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_tumbling_early_termination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_filter_json_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_filter_metadata_non_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_disable_enable_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_two_mappings_independent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_latest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_at_timestamp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_update_changes_batching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_tumbling_window_closes_at_shard_end, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_esm_create_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_esm_config_persisted, setup, teardown),
    };
    /* Table scenarios become one cmocka test each (named test_esm_<scenario>). */
    static struct CMUnitTest tests[NTABLE + sizeof fixed / sizeof fixed[0]];
    static char names[NTABLE][96];
    size_t n = 0;
    for (size_t i = 0; i < NTABLE; i++) {
        snprintf(names[i], sizeof names[i], "test_esm_%s", table[i].name);
        tests[n++] = (struct CMUnitTest){names[i], test_esm_scenario, setup, teardown,
                                         (void *)&table[i]};
    }
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) tests[n++] = fixed[i];
    return _cmocka_run_group_tests("esm_scenarios", tests, n, NULL, NULL);
}
