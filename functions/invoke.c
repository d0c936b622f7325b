/* invoke.c — see invoke.h. One pool per function holds its idle warm instances (each tagged
 * with the code version it was loaded from); an invocation takes an idle instance of the current
 * version or cold-starts one, runs it through its engine, logs START/END/REPORT and gives the
 * instance back unless it must be discarded. */
#include "functions/invoke.h"

#include <inttypes.h>
#include <math.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "functions/engine.h"

#define LOG_TAIL_BYTES 4096
#define RING 1024

typedef struct instance {
    void *inst;
    const fn_engine *engine;
    uint64_t code_version;
    uint64_t uses;
    int64_t last_used_ms;
    char log_stream[80];          /* YYYY/MM/DD/[$LATEST]<32 hex> */
    struct instance *next;
} instance;

typedef struct pool {
    char name[FN_NAME_MAX + 1];
    instance *idle;
    uint32_t nidle;
    uint32_t in_flight;
    uint64_t invocations, errors, throttles, cold_starts;
    float durations[RING];        /* ms, ring buffer for p50/p99 */
    uint32_t ndur, dur_pos;
    struct pool *next;
} pool;

struct fn_runtime {
    pthread_mutex_t mu;           /* pools and their counters */
    fn_registry *reg;
    fn_logs *logs;
    fn_host host;
    fn_engine_ctx ectx;
    uint32_t idle_ms;
    uint32_t max_uses;
    pool *pools;
};

/* ---- outcomes ------------------------------------------------------------------------------- */

void fn_outcome_clear(fn_outcome *o)
{
    sl_free(o->payload);
    sl_free(o->log);
    memset(o, 0, sizeof *o);
}

void fn_outcome_error(fn_outcome *o, const char *type, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "errorMessage", msg);
    cJSON_AddStringToObject(doc, "errorType", type);
    cJSON_AddArrayToObject(doc, "stackTrace");
    char *s = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    sl_free(o->payload);
    o->payload = s ? sl_strdup(s) : NULL;
    o->len = o->payload ? strlen(o->payload) : 0;
    cJSON_free(s);
    o->function_error = true;
    snprintf(o->error_type, sizeof o->error_type, "%s", type);
}

void fn_result_clear(fn_result *r)
{
    sl_free(r->payload);
    sl_free(r->log_tail);
    memset(r, 0, sizeof *r);
}

/* ---- runtime -------------------------------------------------------------------------------- */

int fn_runtime_new(fn_runtime **out, const fn_runtime_opts *o, sl_err *err)
{
    fn_runtime *rt = sl_calloc(1, sizeof *rt);
    int rc;
    if (!rt) return sl_err_set(err, SL_ENOMEM, "out of memory");
    pthread_mutex_init(&rt->mu, NULL);
    rt->host = o->host;
    rt->idle_ms = o->idle_ms ? o->idle_ms : 300000;
    rt->max_uses = o->max_uses ? o->max_uses : 10000;
    snprintf(rt->ectx.launcher, sizeof rt->ectx.launcher, "%s", o->launcher ? o->launcher : "");
    snprintf(rt->ectx.region, sizeof rt->ectx.region, "%s", o->region);
    snprintf(rt->ectx.account, sizeof rt->ectx.account, "%s", o->account);
    if ((rc = fn_registry_open(&rt->reg, o->data_dir, o->region, o->account, o->store, err)) != 0)
        goto fail;
    if ((rc = fn_logs_open(&rt->logs, o->data_dir, 0, 0)) != 0) {
        sl_err_set(err, rc, "cannot open the function logs: %s", sl_strerror(rc));
        goto fail;
    }
    *out = rt;
    return 0;
fail:
    fn_registry_close(rt->reg);
    pthread_mutex_destroy(&rt->mu);
    sl_free(rt);
    return rc;
}

static void instance_free(fn_runtime *rt, instance *in)
{
    void *ectx = &rt->ectx;
    in->engine->unload(ectx, in->inst);
    sl_free(in);
}

void fn_runtime_free(fn_runtime *rt)
{
    if (!rt) return;
    while (rt->pools) {
        pool *p = rt->pools;
        rt->pools = p->next;
        while (p->idle) {
            instance *in = p->idle;
            p->idle = in->next;
            instance_free(rt, in);
        }
        sl_free(p);
    }
    fn_logs_close(rt->logs);
    fn_registry_close(rt->reg);
    pthread_mutex_destroy(&rt->mu);
    sl_free(rt);
}

fn_registry *fn_runtime_registry(fn_runtime *rt) { return rt->reg; }
fn_logs *fn_runtime_logs(fn_runtime *rt) { return rt->logs; }

/* Called with rt->mu held. */
static pool *pool_get(fn_runtime *rt, const char *name, bool create)
{
    for (pool *p = rt->pools; p; p = p->next)
        if (!strcmp(p->name, name)) return p;
    if (!create) return NULL;
    pool *p = sl_calloc(1, sizeof *p);
    if (!p) return NULL;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->next = rt->pools;
    rt->pools = p;
    return p;
}

/* Detaches idle instances matching `drop` from p (mu held) and returns them as a list, to be
 * freed outside the lock (unloading a native worker waits for the process). */
static instance *detach(pool *p, bool (*drop)(const instance *, const void *), const void *arg)
{
    instance *out = NULL, **pp = &p->idle;
    while (*pp) {
        instance *in = *pp;
        if (drop(in, arg)) {
            *pp = in->next;
            in->next = out;
            out = in;
            p->nidle--;
        } else {
            pp = &in->next;
        }
    }
    return out;
}

static void free_list(fn_runtime *rt, instance *in)
{
    while (in) {
        instance *next = in->next;
        instance_free(rt, in);
        in = next;
    }
}

static bool drop_all(const instance *in, const void *arg)
{
    (void)in;
    (void)arg;
    return true;
}

static bool drop_idle(const instance *in, const void *arg)
{
    return in->last_used_ms < *(const int64_t *)arg;
}

void fn_runtime_flush(fn_runtime *rt, const char *function)
{
    instance *victims = NULL;
    pthread_mutex_lock(&rt->mu);
    pool *p = pool_get(rt, function, false);
    if (p) victims = detach(p, drop_all, NULL);
    pthread_mutex_unlock(&rt->mu);
    free_list(rt, victims);
}

void fn_runtime_reap(fn_runtime *rt)
{
    instance *victims = NULL;
    int64_t cutoff = sl_now_ms() - (int64_t)rt->idle_ms;
    pthread_mutex_lock(&rt->mu);
    for (pool *p = rt->pools; p; p = p->next) {
        instance *v = detach(p, drop_idle, &cutoff);
        while (v) {
            instance *next = v->next;
            v->next = victims;
            victims = v;
            v = next;
        }
    }
    pthread_mutex_unlock(&rt->mu);
    free_list(rt, victims);
}

/* ---- invocation ----------------------------------------------------------------------------- */

static void new_log_stream(char out[80])
{
    unsigned char b[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    RAND_bytes(b, sizeof b);
    size_t n = strftime(out, 80, "%Y/%m/%d/[$LATEST]", &tm);
    for (int i = 0; i < 16; i++) snprintf(out + n + 2 * i, 3, "%02x", b[i]);
}

static const fn_engine *engine_for(const fn_config *c)
{
    return !strcmp(c->runtime, "native") ? &fn_engine_native : &fn_engine_lua;
}

static void record(pool *p, double ms, bool error, bool cold)
{
    p->invocations++;
    if (error) p->errors++;
    if (cold) p->cold_starts++;
    p->durations[p->dur_pos] = (float)ms;
    p->dur_pos = (p->dur_pos + 1) % RING;
    if (p->ndur < RING) p->ndur++;
}

/* Writes the invocation's log block and keeps its tail for LogType: Tail. */
static void write_log(fn_runtime *rt, const fn_request *rq, const fn_config *c, fn_result *res,
                      const fn_outcome *o, double init_ms)
{
    char *block = NULL;
    size_t len = 0;
    fn_log_report rep = {
        .request_id = res->request_id,
        .duration_ms = res->duration_ms,
        .memory_mb = c->memory_mb,
        .max_memory_used_mb = (uint32_t)((o->max_memory + (1u << 20) - 1) >> 20),
        .init_duration_ms = init_ms,
    };
    if (rep.max_memory_used_mb == 0) rep.max_memory_used_mb = 1;
    if (fn_logs_format(&rep, o->log ? o->log : "", o->log ? o->log_len : 0, &block, &len) != 0)
        return;
    fn_logs_append(rt->logs, c->name, block, len);
    if (rq->want_log_tail) {
        size_t keep = len > LOG_TAIL_BYTES ? LOG_TAIL_BYTES : len;
        res->log_tail = sl_malloc(keep + 1);
        if (res->log_tail) {
            memcpy(res->log_tail, block + len - keep, keep);
            res->log_tail[keep] = '\0';
            res->log_tail_len = keep;
        }
    }
    sl_free(block);
}

void fn_invoke(fn_runtime *rt, const fn_request *rq, fn_result *res)
{
    fn_code *code = NULL;
    instance *in = NULL, *stale = NULL;
    fn_outcome out;
    sl_err err;
    pool *p;
    double init_ms = -1;
    uint64_t t0 = sl_mono_ns();

    memset(res, 0, sizeof *res);
    memset(&out, 0, sizeof out);
    if (rq->request_id) snprintf(res->request_id, sizeof res->request_id, "%s", rq->request_id);
    else sl_uuid4(res->request_id);

    if (fn_registry_acquire(rt->reg, rq->function, &code, &err) != 0) {
        res->status = err.code == SL_ENOTFOUND ? FN_NOT_FOUND : FN_SERVICE_ERROR;
        snprintf(res->message, sizeof res->message, "%.500s", err.msg);
        return;
    }
    const fn_config *c = &code->cfg;
    const fn_engine *eng = engine_for(c);
    void *ectx = &rt->ectx;

    pthread_mutex_lock(&rt->mu);
    p = pool_get(rt, c->name, true);
    if (!p) {
        pthread_mutex_unlock(&rt->mu);
        res->status = FN_SERVICE_ERROR;
        snprintf(res->message, sizeof res->message, "out of memory");
        fn_code_unref(code);
        return;
    }
    if (c->reserved_concurrency >= 0 && p->in_flight >= (uint32_t)c->reserved_concurrency) {
        p->throttles++;
        pthread_mutex_unlock(&rt->mu);
        res->status = FN_THROTTLED;
        snprintf(res->message, sizeof res->message, "Rate Exceeded.");
        fn_code_unref(code);
        return;
    }
    p->in_flight++;
    /* an idle instance of the current code version, dropping those of older versions */
    while (p->idle) {
        instance *cand = p->idle;
        p->idle = cand->next;
        p->nidle--;
        if (cand->code_version == c->code_version && cand->engine == eng) {
            in = cand;
            break;
        }
        cand->next = stale;
        stale = cand;
    }
    pthread_mutex_unlock(&rt->mu);
    free_list(rt, stale);

    if (!in) {
        uint64_t ti = sl_mono_ns();
        in = sl_calloc(1, sizeof *in);
        if (!in) {
            fn_outcome_error(&out, "Runtime.OutOfMemory", "cannot allocate an instance");
        } else {
            in->engine = eng;
            in->code_version = c->code_version;
            new_log_stream(in->log_stream);
            if (eng->load(ectx, code, &rt->host, &in->inst, &out) != 0) {
                sl_free(in);
                in = NULL;
                if (!out.function_error)
                    fn_outcome_error(&out, "Runtime.Unknown", "the function could not start");
            }
        }
        init_ms = (double)(sl_mono_ns() - ti) / 1e6;
        res->cold = true;
    }

    if (in) {
        char arn[512], group[128], ctx[2048];
        int64_t now_ms = sl_now_ms();
        uint64_t timeout_ns = (uint64_t)c->timeout_s * 1000000000ull;
        fn_registry_arn(rt->reg, c->name, arn, sizeof arn);
        snprintf(group, sizeof group, "/aws/lambda/%s", c->name);
        fn_invocation inv = {
            .request_id = res->request_id,
            .event = rq->payload,
            .event_len = rq->len,
            .deadline_ns = sl_mono_ns() + timeout_ns,
            .deadline_ms = now_ms + (int64_t)c->timeout_s * 1000,
            .batch = rq->batch,
        };
        int n = snprintf(ctx, sizeof ctx,
                         "{\"awsRequestId\":\"%s\",\"functionName\":\"%s\",\"functionVersion\":"
                         "\"$LATEST\",\"invokedFunctionArn\":\"%s\",\"memoryLimitInMB\":\"%u\","
                         "\"logGroupName\":\"%s\",\"logStreamName\":\"%s\",\"deadlineMs\":%" PRId64
                         "}",
                         res->request_id, c->name, arn, c->memory_mb, group, in->log_stream,
                         inv.deadline_ms);
        inv.context_json = ctx;
        inv.context_len = (size_t)n;
        eng->invoke(ectx, in->inst, &inv, &out);
        in->uses++;
        in->last_used_ms = sl_now_ms();
    }

    res->duration_ms = (double)(sl_mono_ns() - t0) / 1e6 - (init_ms > 0 ? init_ms : 0);
    if (res->duration_ms < 0) res->duration_ms = 0;
    res->status = FN_DONE;
    res->function_error = out.function_error;
    write_log(rt, rq, c, res, &out, init_ms);
    res->payload = out.payload;
    res->len = out.len;
    out.payload = NULL;
    if (!res->payload) {
        res->payload = sl_strdup("null");
        res->len = 4;
    }

    bool keep = in && !out.discard && in->uses < rt->max_uses;
    pthread_mutex_lock(&rt->mu);
    p->in_flight--;
    record(p, res->duration_ms, res->function_error, res->cold);
    if (keep) {
        in->next = p->idle;
        p->idle = in;
        p->nidle++;
    }
    pthread_mutex_unlock(&rt->mu);
    if (in && !keep) instance_free(rt, in);
    fn_outcome_clear(&out);
    fn_code_unref(code);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

int fn_runtime_stats(fn_runtime *rt, const char *function, fn_stats *out)
{
    float sorted[RING];
    uint32_t n;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&rt->mu);
    pool *p = pool_get(rt, function, false);
    if (!p) {
        pthread_mutex_unlock(&rt->mu);
        return 0;
    }
    out->invocations = p->invocations;
    out->errors = p->errors;
    out->throttles = p->throttles;
    out->cold_starts = p->cold_starts;
    out->in_flight = p->in_flight;
    out->warm_instances = p->nidle;
    n = p->ndur;
    memcpy(sorted, p->durations, n * sizeof *sorted);
    pthread_mutex_unlock(&rt->mu);
    if (n) {
        qsort(sorted, n, sizeof *sorted, cmp_float);
        out->p50_ms = sorted[(n - 1) / 2];
        out->p99_ms = sorted[(size_t)ceil(0.99 * n) - 1];
    }
    return 0;
}
