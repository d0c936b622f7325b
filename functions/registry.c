/* registry.c — see registry.h. Metadata is one JSON document per function in the fn_store;
 * code lives in DATA/functions/<name>/<code-version>/, one immutable directory per version. */
#include "functions/registry.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#define MAX_UNZIPPED (250u * 1024 * 1024) /* Lambda's unzipped deployment package quota */
#define MAX_ENV_BYTES 4096                 /* Lambda: 4 KB of environment variables */

/* The public fn_code is the first member, so a fn_code* is a code_ref*. */
typedef struct code_ref {
    fn_code pub;
    int refs;
    bool retired;           /* replaced or deleted: remove the directory with the last ref */
    struct code_ref *next;  /* registry list of live versions */
} code_ref;

typedef struct entry {
    fn_config cfg;
    code_ref *code;         /* current version (holds one reference) */
    struct entry *next;
} entry;

struct fn_registry {
    pthread_mutex_t mu;
    char dir[512];          /* DATA/functions */
    char region[64];
    char account[16];
    fn_store store;
    entry *entries;
};

/* ---- configuration ------------------------------------------------------------------------ */

void fn_config_init(fn_config *c)
{
    memset(c, 0, sizeof *c);
    c->memory_mb = 128;
    c->timeout_s = 3;
    c->reserved_concurrency = -1;
    strcpy(c->profile, "stdio");
}

void fn_config_clear(fn_config *c)
{
    for (size_t i = 0; i < c->nenv; i++) {
        sl_free(c->env[i].key);
        sl_free(c->env[i].value);
    }
    sl_free(c->env);
    c->env = NULL;
    c->nenv = 0;
}

int fn_config_set_env(fn_config *c, const char *const *keys, const char *const *values, size_t n)
{
    fn_env_var *env = n ? sl_calloc(n, sizeof *env) : NULL;
    if (n && !env) return SL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        env[i].key = sl_strdup(keys[i]);
        env[i].value = sl_strdup(values[i]);
        if (!env[i].key || !env[i].value) {
            fn_config tmp = {.env = env, .nenv = i + 1};
            fn_config_clear(&tmp);
            return SL_ENOMEM;
        }
    }
    fn_config_clear(c);
    c->env = env;
    c->nenv = n;
    return 0;
}

int fn_config_copy(fn_config *dst, const fn_config *src)
{
    const char **k = NULL, **v = NULL;
    int rc = 0;
    fn_config tmp = *src;
    tmp.env = NULL;
    tmp.nenv = 0;
    if (src->nenv) {
        k = sl_calloc(src->nenv, sizeof *k);
        v = sl_calloc(src->nenv, sizeof *v);
        if (!k || !v) {
            rc = SL_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < src->nenv; i++) {
            k[i] = src->env[i].key;
            v[i] = src->env[i].value;
        }
        rc = fn_config_set_env(&tmp, k, v, src->nenv);
        if (rc) goto out;
    }
    *dst = tmp;
out:
    sl_free(k);
    sl_free(v);
    return rc;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > FN_NAME_MAX) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return false;
    return true;
}

static bool env_key_ok(const char *s)
{
    /* Lambda: [a-zA-Z]([a-zA-Z0-9_])+ */
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return false;
    for (const char *p = s + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return s[1] != '\0';
}

int fn_config_validate(const fn_config *c, sl_err *err)
{
    if (!name_ok(c->name))
        return sl_err_set(err, SL_EVALIDATION,
                          "1 validation error detected: Value '%s' at 'functionName' failed to "
                          "satisfy constraint: Member must satisfy regular expression pattern: "
                          "[a-zA-Z0-9-_]+ and have length between 1 and 64",
                          c->name);
    if (strcmp(c->runtime, "lua5.4") != 0 && strcmp(c->runtime, "native") != 0)
        return sl_err_set(err, SL_EINVAL,
                          "Value %s at 'runtime' failed to satisfy constraint: Member must "
                          "satisfy enum value set: [lua5.4, native]",
                          c->runtime[0] ? c->runtime : "null");
    if (!c->handler[0] || strpbrk(c->handler, " \t\r\n/"))
        return sl_err_set(err, SL_EVALIDATION,
                          "1 validation error detected: Value '%s' at 'handler' failed to "
                          "satisfy constraint: Member must satisfy regular expression pattern: "
                          "[^\\s/]+",
                          c->handler);
    if (!strcmp(c->runtime, "lua5.4")) {
        const char *dot = strrchr(c->handler, '.');
        if (!dot || dot == c->handler || !dot[1])
            return sl_err_set(err, SL_EINVAL,
                              "Handler '%s' is not valid for runtime lua5.4: expected "
                              "FILE.FUNCTION (e.g. main.handler)",
                              c->handler);
    }
    if (c->memory_mb < 128 || c->memory_mb > 10240)
        return sl_err_set(err, SL_EVALIDATION,
                          "1 validation error detected: Value '%u' at 'memorySize' failed to "
                          "satisfy constraint: Member must have value %s",
                          c->memory_mb,
                          c->memory_mb < 128 ? "greater than or equal to 128"
                                             : "less than or equal to 10240");
    if (c->timeout_s < 1 || c->timeout_s > 900)
        return sl_err_set(err, SL_EVALIDATION,
                          "1 validation error detected: Value '%u' at 'timeout' failed to "
                          "satisfy constraint: Member must have value %s",
                          c->timeout_s,
                          c->timeout_s < 1 ? "greater than or equal to 1"
                                           : "less than or equal to 900");
    if (strcmp(c->profile, "stdio") && strcmp(c->profile, "threads") &&
        strcmp(c->profile, "network-out"))
        return sl_err_set(err, SL_EINVAL,
                          "Unknown sandbox profile '%s': expected stdio, threads or network-out",
                          c->profile);
    size_t env_bytes = 0;
    for (size_t i = 0; i < c->nenv; i++) {
        if (!env_key_ok(c->env[i].key))
            return sl_err_set(err, SL_EVALIDATION,
                              "1 validation error detected: Value at 'environment.variables' "
                              "failed to satisfy constraint: Map keys must satisfy constraint: "
                              "[Member must satisfy regular expression pattern: "
                              "[a-zA-Z]([a-zA-Z0-9_])+]");
        env_bytes += strlen(c->env[i].key) + strlen(c->env[i].value);
    }
    if (env_bytes > MAX_ENV_BYTES)
        return sl_err_set(err, SL_EINVAL,
                          "Lambda was unable to configure your environment variables because the "
                          "environment variables you have provided exceeded the 4KB limit. "
                          "String measured: %zu",
                          env_bytes);
    return 0;
}

/* ---- JSON persistence ---------------------------------------------------------------------- */

static char *config_to_json(const fn_config *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *env = cJSON_AddObjectToObject(o, "env");
    char num[32];
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddStringToObject(o, "runtime", c->runtime);
    cJSON_AddStringToObject(o, "handler", c->handler);
    cJSON_AddStringToObject(o, "role", c->role);
    cJSON_AddStringToObject(o, "description", c->description);
    cJSON_AddNumberToObject(o, "memory_mb", c->memory_mb);
    cJSON_AddNumberToObject(o, "timeout_s", c->timeout_s);
    cJSON_AddNumberToObject(o, "reserved_concurrency", c->reserved_concurrency);
    cJSON_AddStringToObject(o, "profile", c->profile);
    for (size_t i = 0; i < c->nenv; i++) cJSON_AddStringToObject(env, c->env[i].key, c->env[i].value);
    cJSON_AddStringToObject(o, "code_sha256", c->code_sha256);
    snprintf(num, sizeof num, "%" PRIu64, c->code_size);
    cJSON_AddStringToObject(o, "code_size", num);
    snprintf(num, sizeof num, "%" PRId64, c->last_modified_ms);
    cJSON_AddStringToObject(o, "last_modified_ms", num);
    cJSON_AddStringToObject(o, "revision_id", c->revision_id);
    snprintf(num, sizeof num, "%" PRIu64, c->code_version);
    cJSON_AddStringToObject(o, "code_version", num);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void get_str(const cJSON *o, const char *k, char *dst, size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsString(v) && strlen(v->valuestring) < len) strcpy(dst, v->valuestring);
}

static int config_from_json(const char *json, size_t len, fn_config *c)
{
    cJSON *o = cJSON_ParseWithLength(json, len);
    const cJSON *v, *env;
    char num[32] = "";
    int rc = 0;

    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return SL_ECORRUPT;
    }
    fn_config_init(c);
    get_str(o, "name", c->name, sizeof c->name);
    get_str(o, "runtime", c->runtime, sizeof c->runtime);
    get_str(o, "handler", c->handler, sizeof c->handler);
    get_str(o, "role", c->role, sizeof c->role);
    get_str(o, "description", c->description, sizeof c->description);
    get_str(o, "profile", c->profile, sizeof c->profile);
    get_str(o, "code_sha256", c->code_sha256, sizeof c->code_sha256);
    get_str(o, "revision_id", c->revision_id, sizeof c->revision_id);
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "memory_mb")))
        c->memory_mb = (uint32_t)v->valuedouble;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "timeout_s")))
        c->timeout_s = (uint32_t)v->valuedouble;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "reserved_concurrency")))
        c->reserved_concurrency = (int32_t)v->valuedouble;
    get_str(o, "code_size", num, sizeof num);
    c->code_size = strtoull(num, NULL, 10);
    get_str(o, "last_modified_ms", num, sizeof num);
    c->last_modified_ms = strtoll(num, NULL, 10);
    get_str(o, "code_version", num, sizeof num);
    c->code_version = strtoull(num, NULL, 10);
    env = cJSON_GetObjectItemCaseSensitive(o, "env");
    size_t n = (size_t)cJSON_GetArraySize(env);
    if (n) {
        const char **k = sl_calloc(n, sizeof *k), **vals = sl_calloc(n, sizeof *vals);
        size_t i = 0;
        const cJSON *it;
        if (!k || !vals) rc = SL_ENOMEM;
        cJSON_ArrayForEach(it, env)
        {
            if (rc || !cJSON_IsString(it) || i >= n) continue;
            k[i] = it->string;
            vals[i++] = it->valuestring;
        }
        if (!rc) rc = fn_config_set_env(c, k, vals, i);
        sl_free(k);
        sl_free(vals);
    }
    cJSON_Delete(o);
    if (!rc && (!c->name[0] || !c->code_version)) rc = SL_ECORRUPT;
    if (rc) fn_config_clear(c);
    return rc;
}

/* ---- files --------------------------------------------------------------------------------- */

static int mkdir_p(const char *path, mode_t mode)
{
    char buf[1100];
    size_t n = strlen(path);
    if (n >= sizeof buf) return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST) return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST) return -errno;
    return 0;
}

static int remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -errno;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        if (!d) return -errno;
        while ((de = readdir(d)) != NULL) {
            char child[1100];
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            snprintf(child, sizeof child, "%s/%s", path, de->d_name);
            remove_tree(child);
        }
        closedir(d);
        return rmdir(path) == 0 ? 0 : -errno;
    }
    return unlink(path) == 0 ? 0 : -errno;
}

/* A zip member name is safe when relative, without "..", and not empty. */
static bool member_name_ok(const char *n)
{
    if (!n[0] || n[0] == '/' || strstr(n, "\\")) return false;
    const char *p = n;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return false;
        if (!slash) break;
        p = slash + 1;
    }
    return true;
}

static int unzip_to(const uint8_t *zipbuf, size_t len, const char *dir, sl_err *err)
{
    static const char bad[] =
        "Could not unzip uploaded file. Please check your file, then try to upload again.";
    zip_error_t ze;
    zip_source_t *src;
    zip_t *za = NULL;
    uint64_t total = 0;
    int rc = 0;

    zip_error_init(&ze);
    src = zip_source_buffer_create(zipbuf, len, 0, &ze);
    if (!src) {
        zip_error_fini(&ze);
        return sl_err_set(err, SL_ENOMEM, "out of memory");
    }
    za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!za) {
        zip_source_free(src);
        zip_error_fini(&ze);
        return sl_err_set(err, SL_EINVAL, "%s", bad);
    }
    zip_int64_t n = zip_get_num_entries(za, 0);
    for (zip_int64_t i = 0; i < n && !rc; i++) {
        zip_stat_t st;
        zip_uint8_t opsys;
        zip_uint32_t attr;
        char path[1200];
        if (zip_stat_index(za, (zip_uint64_t)i, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME)) {
            rc = sl_err_set(err, SL_EINVAL, "%s", bad);
            break;
        }
        if (!member_name_ok(st.name)) {
            rc = sl_err_set(err, SL_EINVAL, "%s (unsafe path '%s')", bad, st.name);
            break;
        }
        mode_t mode = 0644;
        if (zip_file_get_external_attributes(za, (zip_uint64_t)i, 0, &opsys, &attr) == 0 &&
            opsys == ZIP_OPSYS_UNIX) {
            mode_t m = (attr >> 16) & 0177777;
            if (S_ISLNK(m)) {
                rc = sl_err_set(err, SL_EINVAL, "%s (symbolic link '%s')", bad, st.name);
                break;
            }
            if (m & 0111) mode = 0755;
        }
        snprintf(path, sizeof path, "%s/%s", dir, st.name);
        size_t plen = strlen(path);
        if (path[plen - 1] == '/') {
            path[plen - 1] = '\0';
            if (mkdir_p(path, 0755) != 0) rc = sl_err_set(err, SL_EIO, "cannot create %s", path);
            continue;
        }
        char *slash = strrchr(path, '/');
        *slash = '\0';
        if (mkdir_p(path, 0755) != 0) {
            rc = sl_err_set(err, SL_EIO, "cannot create %s", path);
            break;
        }
        *slash = '/';
        total += st.size;
        if (total > MAX_UNZIPPED) {
            rc = sl_err_set(err, SL_EINVAL,
                            "Unzipped size must be smaller than %u bytes", MAX_UNZIPPED);
            break;
        }
        zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t)i, 0);
        int fd = zf ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode) : -1;
        if (fd < 0) {
            if (zf) zip_fclose(zf);
            rc = sl_err_set(err, zf ? SL_EIO : SL_EINVAL, "%s", bad);
            break;
        }
        char buf[65536];
        zip_int64_t got;
        uint64_t written = 0;
        while ((got = zip_fread(zf, buf, sizeof buf)) > 0) {
            written += (uint64_t)got;
            if (written > MAX_UNZIPPED || write(fd, buf, (size_t)got) != got) {
                rc = sl_err_set(err, SL_EIO, "cannot write %s", path);
                break;
            }
        }
        if (got < 0 && !rc) rc = sl_err_set(err, SL_EINVAL, "%s", bad);
        close(fd);
        zip_fclose(zf);
    }
    zip_discard(za); /* also frees src */
    zip_error_fini(&ze);
    return rc;
}

static void sha256_b64(const uint8_t *p, size_t n, char out[48])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

/* ---- registry ------------------------------------------------------------------------------ */

static entry *find(fn_registry *r, const char *name)
{
    for (entry *e = r->entries; e; e = e->next)
        if (!strcmp(e->cfg.name, name)) return e;
    return NULL;
}

static int not_found(fn_registry *r, const char *name, sl_err *err)
{
    char arn[512];
    fn_registry_arn(r, name, arn, sizeof arn);
    return sl_err_set(err, SL_ENOTFOUND, "Function not found: %s", arn);
}

void fn_registry_arn(const fn_registry *r, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "arn:aws:lambda:%s:%s:function:%s", r->region, r->account, name);
}

static code_ref *code_new(fn_registry *r, const fn_config *cfg)
{
    code_ref *c = sl_calloc(1, sizeof *c);
    if (!c) return NULL;
    if (fn_config_copy(&c->pub.cfg, cfg) != 0) {
        sl_free(c);
        return NULL;
    }
    snprintf(c->pub.dir, sizeof c->pub.dir, "%s/%s/%" PRIu64, r->dir, cfg->name,
             cfg->code_version);
    c->refs = 1;
    return c;
}

/* Called with r->mu held or during open/close. */
static void code_release(code_ref *c)
{
    if (--c->refs > 0) return;
    if (c->retired) remove_tree(c->pub.dir);
    fn_config_clear(&c->pub.cfg);
    sl_free(c);
}

/* Serialised by the registry mutex; code refs can be dropped from any thread, so the refcount
 * shares that mutex through a process-wide lock (refs are rare compared with invocations). */
static pthread_mutex_t ref_mu = PTHREAD_MUTEX_INITIALIZER;

void fn_code_ref(fn_code *c)
{
    pthread_mutex_lock(&ref_mu);
    ((code_ref *)c)->refs++;
    pthread_mutex_unlock(&ref_mu);
}

void fn_code_unref(fn_code *c)
{
    if (!c) return;
    pthread_mutex_lock(&ref_mu);
    code_release((code_ref *)c);
    pthread_mutex_unlock(&ref_mu);
}

static void retire(code_ref *c)
{
    pthread_mutex_lock(&ref_mu);
    c->retired = true;
    code_release(c);
    pthread_mutex_unlock(&ref_mu);
}

static int persist(fn_registry *r, const fn_config *c)
{
    char *json = config_to_json(c);
    int rc;
    if (!json) return SL_ENOMEM;
    rc = r->store.put(r->store.ctx, c->name, json, strlen(json));
    cJSON_free(json);
    return rc;
}

/* Removes version directories of `name` other than `keep` (left over from a crash). */
static void sweep_versions(fn_registry *r, const char *name, uint64_t keep)
{
    char path[1100];
    DIR *d;
    struct dirent *de;
    snprintf(path, sizeof path, "%s/%s", r->dir, name);
    if (!(d = opendir(path))) return;
    while ((de = readdir(d)) != NULL) {
        char child[1400];
        if (de->d_name[0] == '.') continue;
        if (strtoull(de->d_name, NULL, 10) == keep) continue;
        snprintf(child, sizeof child, "%s/%s", path, de->d_name);
        remove_tree(child);
    }
    closedir(d);
}

int fn_registry_open(fn_registry **out, const char *data_dir, const char *region,
                     const char *account, const fn_store *store, sl_err *err)
{
    fn_registry *r = sl_calloc(1, sizeof *r);
    char **keys = NULL;
    size_t nkeys = 0;
    int rc;

    if (!r) return sl_err_set(err, SL_ENOMEM, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    r->store = *store;
    snprintf(r->dir, sizeof r->dir, "%s/functions", data_dir);
    snprintf(r->region, sizeof r->region, "%s", region);
    snprintf(r->account, sizeof r->account, "%s", account);
    if ((rc = mkdir_p(r->dir, 0755)) != 0) {
        sl_err_set(err, rc, "cannot create %s: %s", r->dir, sl_strerror(rc));
        goto fail;
    }
    if ((rc = store->keys(store->ctx, &keys, &nkeys)) != 0) {
        sl_err_set(err, rc, "cannot list functions: %s", sl_strerror(rc));
        goto fail;
    }
    for (size_t i = 0; i < nkeys; i++) {
        char *json = NULL;
        size_t len = 0;
        entry *e;
        if (store->get(store->ctx, keys[i], &json, &len) != 0) continue;
        e = sl_calloc(1, sizeof *e);
        if (!e || config_from_json(json, len, &e->cfg) != 0) {
            sl_free(e);
            sl_free(json);
            continue; /* a corrupt entry is skipped, never fatal */
        }
        sl_free(json);
        e->code = code_new(r, &e->cfg);
        if (!e->code) {
            fn_config_clear(&e->cfg);
            sl_free(e);
            continue;
        }
        sweep_versions(r, e->cfg.name, e->cfg.code_version);
        e->next = r->entries;
        r->entries = e;
    }
    store->keys_free(keys, nkeys);
    *out = r;
    return 0;
fail:
    pthread_mutex_destroy(&r->mu);
    sl_free(r);
    return rc;
}

void fn_registry_close(fn_registry *r)
{
    if (!r) return;
    while (r->entries) {
        entry *e = r->entries;
        r->entries = e->next;
        fn_code_unref(&e->code->pub);
        fn_config_clear(&e->cfg);
        sl_free(e);
    }
    pthread_mutex_destroy(&r->mu);
    sl_free(r);
}

/* Unpacks zip into a fresh version directory and fills the code fields of cfg. */
static int install_code(fn_registry *r, fn_config *cfg, const uint8_t *zip, size_t zip_len,
                        uint64_t prev_version, sl_err *err)
{
    char dir[1200];
    int rc;
    uint64_t version = (uint64_t)sl_now_ms();
    if (version <= prev_version) version = prev_version + 1;
    snprintf(dir, sizeof dir, "%s/%s/%" PRIu64, r->dir, cfg->name, version);
    remove_tree(dir);
    if ((rc = mkdir_p(dir, 0755)) != 0)
        return sl_err_set(err, rc, "cannot create %.200s: %s", dir, sl_strerror(rc));
    if ((rc = unzip_to(zip, zip_len, dir, err)) != 0) {
        remove_tree(dir);
        return rc;
    }
    cfg->code_version = version;
    cfg->code_size = zip_len;
    sha256_b64(zip, zip_len, cfg->code_sha256);
    return 0;
}

int fn_registry_create(fn_registry *r, const fn_config *in, const uint8_t *zip, size_t zip_len,
                       fn_config *out, sl_err *err)
{
    entry *e = NULL;
    int rc;

    if ((rc = fn_config_validate(in, err)) != 0) return rc;
    pthread_mutex_lock(&r->mu);
    if (find(r, in->name)) {
        rc = sl_err_set(err, SL_EEXISTS, "Function already exist: %s", in->name);
        goto out;
    }
    e = sl_calloc(1, sizeof *e);
    if (!e || fn_config_copy(&e->cfg, in) != 0) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = install_code(r, &e->cfg, zip, zip_len, 0, err)) != 0) goto out;
    e->cfg.last_modified_ms = sl_now_ms();
    sl_uuid4(e->cfg.revision_id);
    if (!(e->code = code_new(r, &e->cfg))) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = persist(r, &e->cfg)) != 0) {
        e->code->retired = true;
        code_release(e->code);
        sl_err_set(err, rc, "cannot store function %s: %s", in->name, sl_strerror(rc));
        goto out;
    }
    e->next = r->entries;
    r->entries = e;
    if (out) rc = fn_config_copy(out, &e->cfg);
    e = NULL;
out:
    if (e) {
        fn_config_clear(&e->cfg);
        sl_free(e);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Installs a new current configuration (and code version, when it changed) for entry e. */
static int replace(fn_registry *r, entry *e, fn_config *next, sl_err *err)
{
    code_ref *code = NULL;
    int rc;

    next->last_modified_ms = sl_now_ms();
    sl_uuid4(next->revision_id);
    if (!(code = code_new(r, next))) return sl_err_set(err, SL_ENOMEM, "out of memory");
    if ((rc = persist(r, next)) != 0) {
        pthread_mutex_lock(&ref_mu);
        code_release(code);
        pthread_mutex_unlock(&ref_mu);
        return sl_err_set(err, rc, "cannot store function %s: %s", next->name, sl_strerror(rc));
    }
    if (code->pub.cfg.code_version != e->cfg.code_version) retire(e->code);
    else fn_code_unref(&e->code->pub);
    e->code = code;
    fn_config_clear(&e->cfg);
    e->cfg = *next;
    return 0;
}

int fn_registry_update_code(fn_registry *r, const char *name, const uint8_t *zip, size_t zip_len,
                            const char *revision_id, fn_config *out, sl_err *err)
{
    fn_config next;
    entry *e;
    int rc;

    fn_config_init(&next);
    pthread_mutex_lock(&r->mu);
    if (!(e = find(r, name))) {
        rc = not_found(r, name, err);
        goto out;
    }
    if (revision_id && revision_id[0] && strcmp(revision_id, e->cfg.revision_id) != 0) {
        rc = sl_err_set(err, SL_EPRECONDITION,
                        "The Revision Id provided does not match the latest Revision Id. Call "
                        "the GetFunction/GetAlias API to retrieve the latest Revision Id");
        goto out;
    }
    if ((rc = fn_config_copy(&next, &e->cfg)) != 0) goto out;
    if ((rc = install_code(r, &next, zip, zip_len, e->cfg.code_version, err)) != 0) goto out;
    if ((rc = replace(r, e, &next, err)) != 0) {
        char dir[1200];
        snprintf(dir, sizeof dir, "%s/%s/%" PRIu64, r->dir, name, next.code_version);
        remove_tree(dir);
        goto out;
    }
    fn_config_init(&next); /* ownership moved into e */
    if (out) rc = fn_config_copy(out, &e->cfg);
out:
    fn_config_clear(&next);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int fn_registry_update_config(fn_registry *r, const fn_config *cfg, const char *revision_id,
                              fn_config *out, sl_err *err)
{
    fn_config next;
    entry *e;
    int rc;

    fn_config_init(&next);
    if ((rc = fn_config_validate(cfg, err)) != 0) return rc;
    pthread_mutex_lock(&r->mu);
    if (!(e = find(r, cfg->name))) {
        rc = not_found(r, cfg->name, err);
        goto out;
    }
    if (revision_id && revision_id[0] && strcmp(revision_id, e->cfg.revision_id) != 0) {
        rc = sl_err_set(err, SL_EPRECONDITION,
                        "The Revision Id provided does not match the latest Revision Id. Call "
                        "the GetFunction/GetAlias API to retrieve the latest Revision Id");
        goto out;
    }
    if ((rc = fn_config_copy(&next, cfg)) != 0) goto out;
    /* code fields and concurrency are not part of UpdateFunctionConfiguration */
    memcpy(next.code_sha256, e->cfg.code_sha256, sizeof next.code_sha256);
    next.code_size = e->cfg.code_size;
    next.code_version = e->cfg.code_version;
    next.reserved_concurrency = e->cfg.reserved_concurrency;
    if ((rc = replace(r, e, &next, err)) != 0) goto out;
    fn_config_init(&next);
    if (out) rc = fn_config_copy(out, &e->cfg);
out:
    fn_config_clear(&next);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int fn_registry_set_concurrency(fn_registry *r, const char *name, int32_t reserved, sl_err *err)
{
    entry *e;
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    if (!(e = find(r, name))) rc = not_found(r, name, err);
    else {
        int32_t old = e->cfg.reserved_concurrency;
        e->cfg.reserved_concurrency = reserved;
        if ((rc = persist(r, &e->cfg)) != 0) {
            e->cfg.reserved_concurrency = old;
            sl_err_set(err, rc, "cannot store function %s", name);
        } else {
            pthread_mutex_lock(&ref_mu);
            e->code->pub.cfg.reserved_concurrency = reserved;
            pthread_mutex_unlock(&ref_mu);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int fn_registry_delete(fn_registry *r, const char *name, sl_err *err)
{
    entry **pp, *e = NULL;
    int rc;
    pthread_mutex_lock(&r->mu);
    for (pp = &r->entries; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->cfg.name, name)) {
            e = *pp;
            break;
        }
    if (!e) {
        rc = not_found(r, name, err);
        goto out;
    }
    if ((rc = r->store.del(r->store.ctx, name)) != 0) {
        sl_err_set(err, rc, "cannot delete function %s", name);
        goto out;
    }
    *pp = e->next;
    retire(e->code);
    fn_config_clear(&e->cfg);
    sl_free(e);
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/%s", r->dir, name);
    rmdir(dir); /* succeeds once the last version directory is gone */
out:
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int fn_registry_get(fn_registry *r, const char *name, fn_config *out, sl_err *err)
{
    entry *e;
    int rc;
    pthread_mutex_lock(&r->mu);
    e = find(r, name);
    rc = e ? fn_config_copy(out, &e->cfg) : not_found(r, name, err);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fn_registry_list(fn_registry *r, char ***names, size_t *n)
{
    size_t count = 0, i = 0;
    char **v;
    pthread_mutex_lock(&r->mu);
    for (entry *e = r->entries; e; e = e->next) count++;
    v = sl_calloc(count + 1, sizeof *v);
    if (!v) {
        pthread_mutex_unlock(&r->mu);
        return SL_ENOMEM;
    }
    for (entry *e = r->entries; e; e = e->next) {
        if (!(v[i] = sl_strdup(e->cfg.name))) {
            pthread_mutex_unlock(&r->mu);
            fn_names_free(v, i);
            return SL_ENOMEM;
        }
        i++;
    }
    pthread_mutex_unlock(&r->mu);
    qsort(v, count, sizeof *v, cmp_str);
    *names = v;
    *n = count;
    return 0;
}

void fn_names_free(char **names, size_t n)
{
    if (!names) return;
    for (size_t i = 0; i < n; i++) sl_free(names[i]);
    sl_free(names);
}

int fn_registry_acquire(fn_registry *r, const char *name, fn_code **out, sl_err *err)
{
    entry *e;
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    if (!(e = find(r, name))) rc = not_found(r, name, err);
    else {
        fn_code_ref(&e->code->pub);
        *out = &e->code->pub;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int fn_name_from_ref(const char *ref, char *name, size_t len, sl_err *err)
{
    const char *p = ref, *colon;
    char buf[FN_NAME_MAX + 1];
    size_t n;

    if (!strncmp(p, "arn:", 4)) {
        /* arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER] */
        for (int i = 0; i < 6 && p; i++) p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL;
        if (!p || strncmp(ref, "arn:aws", 7) != 0 || !strstr(ref, ":lambda:") ||
            !strstr(ref, ":function:"))
            goto bad;
    } else if ((colon = strstr(p, ":function:")) != NULL) {
        p = colon + strlen(":function:");
    }
    n = strcspn(p, ":");
    if (n == 0 || n > FN_NAME_MAX) goto bad;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (!name_ok(buf) || n >= len) goto bad;
    memcpy(name, buf, n + 1);
    return 0;
bad:
    return sl_err_set(err, SL_EVALIDATION,
                      "1 validation error detected: Value '%s' at 'functionName' failed to "
                      "satisfy constraint: Member must satisfy regular expression pattern: "
                      "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?"
                      "(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
                      ref);
}
