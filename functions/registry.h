/* registry.h — the function model: name, runtime, handler, code, limits, environment, reserved
 * concurrency; deploy / update / delete / get / list; kept on disk so it survives restart.
 *
 * Code: every deploy or code update unpacks the zip into its own directory
 * DATA/functions/<name>/<code-version>/ (never modified afterwards), so an update is atomic:
 * invocations hold a reference to the fn_code they started with and finish on it; the directory
 * of a replaced version is removed when its last reference goes (or at the next start).
 *
 * Metadata persistence goes through an fn_store the runtime provides (the broker's catalog), so
 * functions/ does not depend on broker/ (DESIGN.md: dependencies point one way).
 *
 * Threads: all functions are thread-safe (one mutex); fn_code references may be used from any
 * thread.
 */
#ifndef FN_REGISTRY_H
#define FN_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/sl_common.h"

typedef struct fn_store {
    void *ctx;
    int (*put)(void *ctx, const char *key, const char *json, size_t len);
    int (*get)(void *ctx, const char *key, char **json, size_t *len); /* SL_ENOTFOUND */
    int (*del)(void *ctx, const char *key);
    int (*keys)(void *ctx, char ***keys, size_t *n);                  /* free: brk_names_free-like */
    void (*keys_free)(char **keys, size_t n);
} fn_store;

typedef struct fn_env_var {
    char *key;
    char *value;
} fn_env_var;

#define FN_NAME_MAX 64
typedef struct fn_config {
    char name[FN_NAME_MAX + 1];
    char runtime[16];            /* "lua5.4" | "native" */
    char handler[129];           /* "file.function" (Lua) | executable file name (native) */
    char role[257];
    char description[257];
    uint32_t memory_mb;          /* 128 .. 10240, default 128 */
    uint32_t timeout_s;          /* 1 .. 900, default 3 */
    int32_t reserved_concurrency; /* -1: unreserved */
    char profile[16];            /* native seccomp profile: stdio | threads | network-out */
    fn_env_var *env;
    size_t nenv;
    /* set by the registry */
    char code_sha256[48];        /* base64 SHA-256 of the zip, as Lambda reports it */
    uint64_t code_size;
    int64_t last_modified_ms;
    char revision_id[37];
    uint64_t code_version;
} fn_config;

/* Defaults (memory 128, timeout 3, no reserved concurrency, profile stdio). */
void fn_config_init(fn_config *c);
/* Frees env; the struct can be reused after fn_config_init. */
void fn_config_clear(fn_config *c);
int fn_config_copy(fn_config *dst, const fn_config *src);
/* Sets or replaces the environment from parallel arrays. */
int fn_config_set_env(fn_config *c, const char *const *keys, const char *const *values, size_t n);

/* Checks name, runtime, handler, memory, timeout, env; SL_EVALIDATION / SL_EINVAL with the
 * Lambda message. */
int fn_config_validate(const fn_config *c, sl_err *err);

/* A deployed code version, refcounted. */
typedef struct fn_code {
    fn_config cfg;               /* configuration at acquire time */
    char dir[1024];              /* unpacked code */
} fn_code;

typedef struct fn_registry fn_registry;

/* region/account are used in ARNs and messages. Loads every stored function. */
int fn_registry_open(fn_registry **out, const char *data_dir, const char *region,
                     const char *account, const fn_store *store, sl_err *err);
/* "arn:aws:lambda:REGION:ACCOUNT:function:NAME" */
void fn_registry_arn(const fn_registry *r, const char *name, char *buf, size_t len);
void fn_registry_close(fn_registry *r);

/* CreateFunction: validates, unpacks the zip (SL_EINVAL "Could not unzip uploaded file..." for a
 * bad archive; path traversal refused), persists. SL_EEXISTS when the name is taken. On success
 * *out (optional) receives the stored configuration. */
int fn_registry_create(fn_registry *r, const fn_config *cfg, const uint8_t *zip, size_t zip_len,
                       fn_config *out, sl_err *err);
int fn_registry_update_code(fn_registry *r, const char *name, const uint8_t *zip, size_t zip_len,
                            const char *revision_id, fn_config *out, sl_err *err);
/* Replaces the configuration fields (runtime, handler, role, description, memory, timeout, env,
 * profile); code fields are kept. revision_id (optional) must match (SL_EPRECONDITION). */
int fn_registry_update_config(fn_registry *r, const fn_config *cfg, const char *revision_id,
                              fn_config *out, sl_err *err);
int fn_registry_set_concurrency(fn_registry *r, const char *name, int32_t reserved, sl_err *err);
int fn_registry_delete(fn_registry *r, const char *name, sl_err *err);
/* Copy of the configuration (fn_config_clear it). SL_ENOTFOUND with Lambda's message. */
int fn_registry_get(fn_registry *r, const char *name, fn_config *out, sl_err *err);
/* Names in order; free with fn_names_free. */
int fn_registry_list(fn_registry *r, char ***names, size_t *n);
void fn_names_free(char **names, size_t n);

/* Current code of a function, referenced; release with fn_code_unref. */
int fn_registry_acquire(fn_registry *r, const char *name, fn_code **out, sl_err *err);
void fn_code_ref(fn_code *c);
void fn_code_unref(fn_code *c);

/* Accepts a function name, a full ARN (arn:aws:lambda:R:A:function:NAME[:qualifier]) or a
 * partial ARN (A:function:NAME); writes the bare name. SL_EVALIDATION when malformed. */
int fn_name_from_ref(const char *ref, char *name, size_t len, sl_err *err);

#endif
