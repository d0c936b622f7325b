/* engine_lua.c — the Lua engine: a function's handler "file.function" is the chunk
 * <code>/file.lua run in a sandboxed state (sandbox/lua_state.h) with the function's memory
 * size as the heap cap and its timeout as the budget. */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "functions/engine.h"
#include "sandbox/lua_state.h"

/* fn_event_record is handed to the sandbox as sbx_kinesis_record: same layout. */
_Static_assert(sizeof(fn_event_record) == sizeof(sbx_kinesis_record), "record layout");
_Static_assert(offsetof(fn_event_record, partition_key) == offsetof(sbx_kinesis_record, pk),
               "record layout");
_Static_assert(offsetof(fn_event_record, data) == offsetof(sbx_kinesis_record, data),
               "record layout");
_Static_assert(offsetof(fn_event_record, arrival_ms) == offsetof(sbx_kinesis_record, arrival_ms),
               "record layout");

typedef struct lua_inst {
    sbx_lua *L;
    sbx_lua_host host;
} lua_inst;

static int read_file(const char *path, char **out, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -errno;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > SBX_LUA_MAX_SOURCE) {
        close(fd);
        return SL_ETOOBIG;
    }
    char *buf = sl_malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return SL_ENOMEM;
    }
    ssize_t got = read(fd, buf, (size_t)st.st_size);
    close(fd);
    if (got != st.st_size) {
        sl_free(buf);
        return SL_EIO;
    }
    buf[got] = '\0';
    *out = buf;
    *len = (size_t)got;
    return 0;
}

static void env_free(char **env)
{
    for (size_t i = 0; env && env[i]; i++) sl_free(env[i]);
    sl_free(env);
}

/* The handler's environment (SPEC 4.4): the function's variables, then the reserved Lambda
 * ones, which win (os.getenv reads the last value set). NULL on allocation failure. */
static char **lambda_env(const fn_engine_ctx *ec, const fn_code *code)
{
    const fn_config *c = &code->cfg;
    char mem[16];
    snprintf(mem, sizeof mem, "%u", c->memory_mb);
    const char *reserved[][2] = {
        {"_HANDLER", c->handler},
        {"AWS_LAMBDA_FUNCTION_NAME", c->name},
        {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE", mem},
        {"AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"},
        {"AWS_REGION", ec->region},
        {"AWS_DEFAULT_REGION", ec->region},
        {"LAMBDA_TASK_ROOT", code->dir},
        {"LANG", "en_US.UTF-8"},
        {"TZ", ":UTC"},
    };
    size_t nres = sizeof reserved / sizeof reserved[0], k = 0;
    char **env = sl_calloc(c->nenv + nres + 1, sizeof *env);
    if (!env) return NULL;
    for (size_t i = 0; i < c->nenv + nres; i++) {
        const char *key = i < c->nenv ? c->env[i].key : reserved[i - c->nenv][0];
        const char *val = i < c->nenv ? c->env[i].value : reserved[i - c->nenv][1];
        size_t n = strlen(key) + strlen(val) + 2;
        if (!(env[k] = sl_malloc(n))) {
            env_free(env);
            return NULL;
        }
        snprintf(env[k++], n, "%s=%s", key, val);
    }
    return env;
}

static int lua_load(void *ectx, const fn_code *code, const fn_host *host, void **out,
                    fn_outcome *init)
{
    const fn_config *c = &code->cfg;
    char file[256], path[1400], *src = NULL;
    const char *dot = strrchr(c->handler, '.');
    size_t len = 0;
    sbx_lua_error err = {0};

    if (!dot || (size_t)(dot - c->handler) >= sizeof file - 5) {
        fn_outcome_error(init, "Runtime.HandlerNotFound", "Bad handler %s: expected FILE.FUNCTION",
                         c->handler);
        return SL_EINVAL;
    }
    memcpy(file, c->handler, (size_t)(dot - c->handler));
    strcpy(file + (dot - c->handler), ".lua");
    snprintf(path, sizeof path, "%s/%s", code->dir, file);
    int rc = read_file(path, &src, &len);
    if (rc) {
        fn_outcome_error(init, "Runtime.ImportModuleError",
                         "Unable to import module '%.*s': %s", (int)(dot - c->handler), c->handler,
                         rc == -ENOENT ? "no such file in the function's code" : sl_strerror(rc));
        return SL_EINVAL;
    }
    lua_inst *li = sl_calloc(1, sizeof *li);
    if (!li) {
        sl_free(src);
        fn_outcome_error(init, "Runtime.OutOfMemory", "cannot allocate a Lua instance");
        return SL_ENOMEM;
    }
    li->host.ctx = host->ctx;
    li->host.call = host->call;
    char **env = lambda_env(ectx, code);
    sbx_lua_limits lim = {
        .memory_bytes = (size_t)c->memory_mb << 20,
        .timeout_ms = c->timeout_s * 1000u,
        .env = (const char *const *)env,
    };
    rc = env ? sbx_lua_new(&li->L, src, len, file, dot + 1, &lim, host->call ? &li->host : NULL,
                           &err)
             : SL_ENOMEM;
    env_free(env);
    sl_free(src);
    if (rc == SL_ENOMEM && !err.error_type[0]) snprintf(err.error_type, sizeof err.error_type,
                                                        "Runtime.OutOfMemory");
    if (rc) {
        fn_outcome_error(init, err.error_type[0] ? err.error_type : "Runtime.Unknown", "%s",
                         err.error_message);
        sl_free(li);
        return rc;
    }
    *out = li;
    return 0;
}

static int lua_invoke(void *ectx, void *inst, const fn_invocation *inv, fn_outcome *out)
{
    lua_inst *li = inst;
    sbx_lua_result res;
    (void)ectx;

    memset(&res, 0, sizeof res);
    int rc = SL_ESERIAL;
    if (inv->batch) {
        /* the records themselves: the sandbox builds the event's Lua value without the JSON
         * round trip (same value; tests/unit/test_functions_event.c checks) */
        const fn_event_source *src = inv->batch->src;
        sbx_kinesis_event ev = {src->stream_arn, src->region, src->role_arn,
                                (const sbx_kinesis_record *)inv->batch->recs, inv->batch->n};
        rc = sbx_lua_invoke_kinesis(li->L, &ev, inv->context_json, inv->context_len,
                                    inv->deadline_ns, &res);
    }
    if (rc == SL_ESERIAL) /* no batch, or a string the JSON encoder would have replaced */
        rc = sbx_lua_invoke(li->L, (const char *)inv->event, inv->event_len, inv->context_json,
                            inv->context_len, inv->deadline_ns, &res);
    if (rc) {
        fn_outcome_error(out, "Runtime.SandboxError", "the sandbox could not run the handler: %s",
                         sl_strerror(rc));
        out->discard = true;
        sbx_lua_result_clear(&res);
        return 0;
    }
    out->function_error = res.status == SBX_LUA_FUNCTION_ERROR;
    snprintf(out->error_type, sizeof out->error_type, "%s", res.error_type);
    out->payload = res.payload;
    out->len = res.payload_len;
    out->log = res.log;
    out->log_len = res.log ? res.log_len : 0;
    out->discard = res.discard != 0;
    out->max_memory = res.peak_memory;
    res.payload = NULL;
    res.log = NULL;
    sbx_lua_result_clear(&res);
    return 0;
}

static void lua_unload(void *ectx, void *inst)
{
    lua_inst *li = inst;
    (void)ectx;
    if (!li) return;
    sbx_lua_free(li->L);
    sl_free(li);
}

const fn_engine fn_engine_lua = {"lua5.4", lua_load, lua_invoke, lua_unload};
