/* engine_native.c — the native engine: an instance is one warm worker (functions/native.h), a
 * confined process started through the trusted launcher (`sluice __launch`) that serves many
 * invocations of one function; a crash or timeout costs the process, never the daemon, and the
 * worker starts a new process on its next invocation. */
#include <stdio.h>
#include <string.h>

#include "functions/engine.h"
#include "functions/native.h"

typedef struct native_inst {
    fn_native_worker *w;
    fn_host host;
} native_inst;

static int native_load(void *ectx, const fn_code *code, const fn_host *host, void **out,
                       fn_outcome *init)
{
    const fn_engine_ctx *ec = ectx;
    const fn_config *c = &code->cfg;
    const char **env = sl_calloc(c->nenv + 1, sizeof *env);
    char **owned = sl_calloc(c->nenv + 1, sizeof *owned);
    native_inst *ni = sl_calloc(1, sizeof *ni);
    sl_err err;
    int rc = SL_ENOMEM;

    if (!env || !owned || !ni) {
        fn_outcome_error(init, "Runtime.OutOfMemory", "cannot allocate a native worker");
        goto out;
    }
    for (size_t i = 0; i < c->nenv; i++) {
        size_t n = strlen(c->env[i].key) + strlen(c->env[i].value) + 2;
        if (!(owned[i] = sl_malloc(n))) {
            fn_outcome_error(init, "Runtime.OutOfMemory", "cannot allocate a native worker");
            goto out;
        }
        snprintf(owned[i], n, "%s=%s", c->env[i].key, c->env[i].value);
        env[i] = owned[i];
    }
    fn_native_spec spec = {
        .launcher = ec->launcher,
        .executable = c->handler,
        .code_dir = code->dir,
        .function_name = c->name,
        .region = ec->region,
        .memory_mb = c->memory_mb,
        .timeout_ms = c->timeout_s * 1000u,
        .env = env,
        .profile = c->profile,
    };
    rc = fn_native_spawn(&ni->w, &spec, &err);
    if (rc) {
        fn_outcome_error(init, "Runtime.InvalidEntrypoint", "%s", err.msg);
        goto out;
    }
    ni->host = *host;
    *out = ni;
    ni = NULL;
out:
    for (size_t i = 0; owned && i < c->nenv; i++) sl_free(owned[i]);
    sl_free(owned);
    sl_free(env);
    sl_free(ni);
    return rc;
}

static int native_invoke(void *ectx, void *inst, const fn_invocation *inv, fn_outcome *out)
{
    native_inst *ni = inst;
    fn_native_result res;
    char arn[256];
    (void)ectx;

    memset(&res, 0, sizeof res);
    /* the invoked ARN is in the context JSON too; the worker wants it separately */
    const char *a = strstr(inv->context_json, "\"invokedFunctionArn\":\"");
    arn[0] = '\0';
    if (a) {
        a += strlen("\"invokedFunctionArn\":\"");
        size_t n = strcspn(a, "\"");
        if (n < sizeof arn) {
            memcpy(arn, a, n);
            arn[n] = '\0';
        }
    }
    fn_native_invocation ni_inv = {
        .request_id = inv->request_id,
        .invoked_arn = arn,
        .deadline_ms = inv->deadline_ms,
        .host_call = ni->host.call,
        .host_ctx = ni->host.ctx,
    };
    int rc = fn_native_invoke(ni->w, inv->event, inv->event_len, &ni_inv, &res);
    if (rc) {
        fn_outcome_error(out, "Runtime.SandboxError", "the native worker could not run: %s",
                         sl_strerror(rc));
        out->discard = true;
        return 0;
    }
    out->function_error = res.function_error != 0;
    snprintf(out->error_type, sizeof out->error_type, "%s", res.error_type);
    out->payload = res.payload;
    out->len = res.payload_len;
    out->log = res.log;
    out->log_len = res.log ? res.log_len : 0;
    out->max_memory = (size_t)res.max_memory_mb << 20;
    res.payload = NULL;
    res.log = NULL;
    fn_native_result_clear(&res);
    return 0;
}

static void native_unload(void *ectx, void *inst)
{
    native_inst *ni = inst;
    (void)ectx;
    if (!ni) return;
    fn_native_free(ni->w);
    sl_free(ni);
}

const fn_engine fn_engine_native = {"native", native_load, native_invoke, native_unload};
