/* cli_up.c — `sluice up [sluice.json] [--watch]`: apply a manifest of streams, functions and
 * mappings idempotently (create what is missing, update what differs, one line per action), and
 * with --watch redeploy a function's code within a second of a change in its directory
 * (inotify; re-applying the whole manifest when the manifest file itself changes).
 * The schema is in README.md "Manifest reference". */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "broker/sl_common.h"
#include "runtime/cli_int.h"

#define WATCH_DEBOUNCE_MS 100
#define MAX_WATCHES 4096

/* ---- manifest ------------------------------------------------------------------------------- */

typedef struct up_fn {
    cli_fn_spec spec;
    char code_path[PATH_MAX];
    bool is_dir;
} up_fn;

typedef struct manifest {
    cJSON *root;
    char dir[PATH_MAX];     /* paths in the manifest are relative to this */
    char file[PATH_MAX];
    up_fn *fns;
    size_t nfns;
} manifest;

static void manifest_free(manifest *m)
{
    for (size_t i = 0; i < m->nfns; i++) {
        sl_free((void *)m->fns[i].spec.env_keys);
        sl_free((void *)m->fns[i].spec.env_vals);
    }
    sl_free(m->fns);
    cJSON_Delete(m->root);
    memset(m, 0, sizeof *m);
}

/* Reports "sluice: FILE: where: what" and returns false. */
static bool bad(const manifest *m, const char *where, const char *what)
{
    fprintf(stderr, "sluice: %s: %s: %s\n", m->file, where, what);
    return false;
}

/* Checks that o is an object whose keys are all in allowed. */
static bool keys_ok(const manifest *m, const cJSON *o, const char *where,
                    const char *const *allowed)
{
    const cJSON *it;
    if (!cJSON_IsObject(o)) return bad(m, where, "must be an object");
    cJSON_ArrayForEach(it, o)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++) ok = ok || !strcmp(it->string, allowed[i]);
        if (!ok) {
            char msg[300];
            snprintf(msg, sizeof msg, "unknown key \"%.200s\"", it->string);
            return bad(m, where, msg);
        }
    }
    return true;
}

static bool get_str(const manifest *m, const cJSON *o, const char *where, const char *key,
                    bool required, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char msg[200];
    if (!v) {
        if (!required) return true;
        snprintf(msg, sizeof msg, "\"%s\" is required", key);
        return bad(m, where, msg);
    }
    if (!cJSON_IsString(v) || (required && !v->valuestring[0])) {
        snprintf(msg, sizeof msg, "\"%s\" must be a%s string", key, required ? " non-empty" : "");
        return bad(m, where, msg);
    }
    *out = v->valuestring;
    return true;
}

static bool get_int(const manifest *m, const cJSON *o, const char *where, const char *key,
                    long lo, long hi, long *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char msg[200];
    if (!v) return true;
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long)v->valuedouble ||
        v->valuedouble < (double)lo || v->valuedouble > (double)hi) {
        snprintf(msg, sizeof msg, "\"%s\" must be an integer between %ld and %ld", key, lo, hi);
        return bad(m, where, msg);
    }
    *out = (long)v->valuedouble;
    return true;
}

static bool get_bool(const manifest *m, const cJSON *o, const char *where, const char *key,
                     bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char msg[200];
    if (!v) return true;
    if (!cJSON_IsBool(v)) {
        snprintf(msg, sizeof msg, "\"%s\" must be true or false", key);
        return bad(m, where, msg);
    }
    *out = cJSON_IsTrue(v);
    return true;
}

static const cJSON *get_list(const manifest *m, const char *key, bool *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->root, key);
    if (v && !cJSON_IsArray(v)) {
        char msg[100];
        snprintf(msg, sizeof msg, "must be a list");
        *ok = bad(m, key, msg);
        return NULL;
    }
    return v;
}

static bool check_streams(const manifest *m)
{
    static const char *const keys[] = {"name", "shards", "retentionHours", "mode", NULL};
    bool ok = true;
    const cJSON *list = get_list(m, "streams", &ok), *s;
    int i = 0;
    cJSON_ArrayForEach(s, list)
    {
        char where[64];
        const char *name = NULL, *mode = NULL;
        long n = 1, r = 24;
        snprintf(where, sizeof where, "streams[%d]", i++);
        if (!keys_ok(m, s, where, keys) || !get_str(m, s, where, "name", true, &name) ||
            !get_str(m, s, where, "mode", false, &mode) ||
            !get_int(m, s, where, "shards", 1, 100000, &n) ||
            !get_int(m, s, where, "retentionHours", 24, 8760, &r))
            return false;
        if (mode && strcmp(mode, "PROVISIONED") && strcmp(mode, "ON_DEMAND"))
            return bad(m, where, "\"mode\" must be PROVISIONED or ON_DEMAND");
    }
    return ok;
}

static bool load_functions(manifest *m)
{
    static const char *const keys[] = {"name",    "runtime", "handler", "code",
                                       "memory",  "timeout", "env",     "reservedConcurrency",
                                       "profile", "build",   "description", NULL};
    bool ok = true;
    const cJSON *list = get_list(m, "functions", &ok), *f;
    if (!ok) return false;
    size_t n = (size_t)cJSON_GetArraySize(list), i = 0;
    m->fns = sl_calloc(n ? n : 1, sizeof *m->fns);
    if (!m->fns) return bad(m, "functions", "out of memory");
    cJSON_ArrayForEach(f, list)
    {
        char where[64];
        up_fn *u = &m->fns[i];
        cli_fn_spec *s = &u->spec;
        const char *code = NULL;
        snprintf(where, sizeof where, "functions[%zu]", i);
        m->nfns = ++i;
        s->reserved = -1;
        s->reserved_set = true; /* absent means unreserved: the manifest is the whole truth */
        if (!keys_ok(m, f, where, keys) || !get_str(m, f, where, "name", true, &s->name) ||
            !get_str(m, f, where, "runtime", true, &s->runtime) ||
            !get_str(m, f, where, "handler", true, &s->handler) ||
            !get_str(m, f, where, "code", true, &code) ||
            !get_str(m, f, where, "profile", false, &s->profile) ||
            !get_str(m, f, where, "build", false, &s->build) ||
            !get_str(m, f, where, "description", false, &s->description) ||
            !get_int(m, f, where, "memory", 128, 10240, &s->memory) ||
            !get_int(m, f, where, "timeout", 1, 900, &s->timeout) ||
            !get_int(m, f, where, "reservedConcurrency", -1, 1000, &s->reserved))
            return false;
        if (strcmp(s->runtime, "lua5.4") && strcmp(s->runtime, "native"))
            return bad(m, where, "\"runtime\" must be lua5.4 or native");
        int pl = code[0] == '/'
                     ? snprintf(u->code_path, sizeof u->code_path, "%s", code)
                     : snprintf(u->code_path, sizeof u->code_path, "%s/%s", m->dir, code);
        if (pl < 0 || (size_t)pl >= sizeof u->code_path) return bad(m, where, "path too long");
        s->code = u->code_path;
        struct stat st;
        u->is_dir = stat(u->code_path, &st) == 0 && S_ISDIR(st.st_mode);
        const cJSON *env = cJSON_GetObjectItemCaseSensitive(f, "env"), *e;
        if (env && !cJSON_IsObject(env)) return bad(m, where, "\"env\" must be an object");
        size_t ne = (size_t)cJSON_GetArraySize(env);
        s->env_keys = sl_calloc(ne + 1, sizeof *s->env_keys);
        s->env_vals = sl_calloc(ne + 1, sizeof *s->env_vals);
        if (!s->env_keys || !s->env_vals) return bad(m, where, "out of memory");
        cJSON_ArrayForEach(e, env)
        {
            if (!cJSON_IsString(e)) return bad(m, where, "\"env\" values must be strings");
            s->env_keys[s->nenv] = e->string;
            s->env_vals[s->nenv++] = e->valuestring;
        }
        for (size_t k = 0; k + 1 < i; k++)
            if (!strcmp(m->fns[k].spec.name, s->name))
                return bad(m, where, "a function of that name is declared twice");
    }
    return true;
}

static const char *const mapping_keys[] = {
    "stream", "function", "startingPosition", "startingPositionTimestamp", "batchSize",
    "maximumBatchingWindowInSeconds", "parallelizationFactor", "bisectBatchOnFunctionError",
    "maximumRetryAttempts", "maximumRecordAgeInSeconds", "reportBatchItemFailures",
    "tumblingWindowInSeconds", "filters", "onFailure", "enabled", NULL,
};

/* The CreateEventSourceMapping body (without source and function) a manifest mapping declares,
 * every tunable present so that removing one from the manifest resets it. NULL if invalid. */
static cJSON *mapping_request(const manifest *m, const cJSON *o, const char *where)
{
    const char *pos = "TRIM_HORIZON", *dest = "";
    long batch = 100, window = 0, par = 1, retries = -1, age = -1, tumbling = 0;
    bool bisect = false, report = false, enabled = true;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "startingPositionTimestamp");
    const cJSON *filters = cJSON_GetObjectItemCaseSensitive(o, "filters"), *f;

    if (!get_str(m, o, where, "startingPosition", false, &pos) ||
        !get_str(m, o, where, "onFailure", false, &dest) ||
        !get_int(m, o, where, "batchSize", 1, 10000, &batch) ||
        !get_int(m, o, where, "maximumBatchingWindowInSeconds", 0, 300, &window) ||
        !get_int(m, o, where, "parallelizationFactor", 1, 10, &par) ||
        !get_int(m, o, where, "maximumRetryAttempts", -1, 10000, &retries) ||
        !get_int(m, o, where, "maximumRecordAgeInSeconds", -1, 604800, &age) ||
        !get_int(m, o, where, "tumblingWindowInSeconds", 0, 900, &tumbling) ||
        !get_bool(m, o, where, "bisectBatchOnFunctionError", &bisect) ||
        !get_bool(m, o, where, "reportBatchItemFailures", &report) ||
        !get_bool(m, o, where, "enabled", &enabled))
        return NULL;
    if (strcmp(pos, "TRIM_HORIZON") && strcmp(pos, "LATEST") && strcmp(pos, "AT_TIMESTAMP")) {
        bad(m, where, "\"startingPosition\" must be TRIM_HORIZON, LATEST or AT_TIMESTAMP");
        return NULL;
    }
    if (ts && !cJSON_IsNumber(ts)) {
        bad(m, where, "\"startingPositionTimestamp\" must be epoch seconds");
        return NULL;
    }
    if (filters && !cJSON_IsArray(filters)) {
        bad(m, where, "\"filters\" must be a list of patterns");
        return NULL;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "StartingPosition", pos);
    if (ts) cJSON_AddNumberToObject(req, "StartingPositionTimestamp", ts->valuedouble);
    cJSON_AddNumberToObject(req, "BatchSize", (double)batch);
    cJSON_AddNumberToObject(req, "MaximumBatchingWindowInSeconds", (double)window);
    cJSON_AddNumberToObject(req, "ParallelizationFactor", (double)par);
    cJSON_AddBoolToObject(req, "BisectBatchOnFunctionError", bisect);
    cJSON_AddNumberToObject(req, "MaximumRetryAttempts", (double)retries);
    cJSON_AddNumberToObject(req, "MaximumRecordAgeInSeconds", (double)age);
    cJSON_AddNumberToObject(req, "TumblingWindowInSeconds", (double)tumbling);
    cJSON *rt = cJSON_AddArrayToObject(req, "FunctionResponseTypes");
    if (report) cJSON_AddItemToArray(rt, cJSON_CreateString("ReportBatchItemFailures"));
    cJSON *list = cJSON_AddArrayToObject(cJSON_AddObjectToObject(req, "FilterCriteria"),
                                         "Filters");
    cJSON_ArrayForEach(f, filters)
    {
        /* a pattern may be written as JSON text (like the AWS API) or as a JSON object */
        char *text = cJSON_IsObject(f) ? cJSON_PrintUnformatted(f) : NULL;
        cJSON *chk = cJSON_IsString(f) ? cJSON_Parse(f->valuestring) : NULL;
        bool ok = text || cJSON_IsObject(chk);
        cJSON_Delete(chk);
        if (!ok) {
            cJSON_Delete(req);
            bad(m, where, "each filter must be a JSON object pattern (or its text)");
            return NULL;
        }
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "Pattern", text ? text : f->valuestring);
        cJSON_AddItemToArray(list, p);
        cJSON_free(text);
    }
    cJSON_AddStringToObject(
        cJSON_AddObjectToObject(cJSON_AddObjectToObject(req, "DestinationConfig"), "OnFailure"),
        "Destination", dest);
    cJSON_AddBoolToObject(req, "Enabled", enabled);
    return req;
}

static bool check_mappings(const manifest *m)
{
    bool ok = true;
    const cJSON *list = get_list(m, "mappings", &ok), *o;
    int i = 0;
    cJSON_ArrayForEach(o, list)
    {
        char where[64];
        const char *s = NULL, *f = NULL;
        snprintf(where, sizeof where, "mappings[%d]", i++);
        if (!keys_ok(m, o, where, mapping_keys) || !get_str(m, o, where, "stream", true, &s) ||
            !get_str(m, o, where, "function", true, &f))
            return false;
        cJSON *req = mapping_request(m, o, where);
        if (!req) return false;
        cJSON_Delete(req);
    }
    return ok;
}

static int manifest_load(manifest *m, const char *file)
{
    static const char *const top[] = {"streams", "functions", "mappings", "$schema", NULL};
    char *text = NULL, tmp[PATH_MAX];
    size_t len;
    memset(m, 0, sizeof *m);
    snprintf(m->file, sizeof m->file, "%s", file);
    int rc = cli__read_file(file, &text, &len);
    if (rc != 0) {
        fprintf(stderr, "sluice: cannot read manifest %s: %s%s\n", file, strerror(-rc),
                rc == -ENOENT ? " (write a sluice.json, see README \"Manifest reference\")"
                              : "");
        return CLI_FAIL;
    }
    m->root = cJSON_ParseWithLength(text, len);
    if (!m->root) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        for (const char *p = text; at && p < at && p < text + len; p++) line += *p == '\n';
        fprintf(stderr, "sluice: %s: not valid JSON (near line %d)\n", file, line);
        sl_free(text);
        return CLI_FAIL;
    }
    sl_free(text);
    snprintf(tmp, sizeof tmp, "%s", file);
    if (!realpath(dirname(tmp), m->dir)) snprintf(m->dir, sizeof m->dir, ".");
    if (!keys_ok(m, m->root, "top level", top) || !check_streams(m) || !load_functions(m) ||
        !check_mappings(m)) {
        manifest_free(m);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* ---- applying ------------------------------------------------------------------------------- */

static cJSON *name_req(const char *stream)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "StreamName", stream);
    return req;
}

/* Polls until the stream is ACTIVE again (after create, scale, retention or mode changes). */
static int wait_active(cli_ctx *c, const char *stream, cJSON **summary, cli_err *err)
{
    for (int i = 0;; i++) {
        cJSON *req = name_req(stream), *resp = NULL;
        int rc = cli__kinesis(c, "DescribeStreamSummary", req, &resp, err);
        cJSON_Delete(req);
        if (rc != 0) return rc;
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(resp, "StreamDescriptionSummary");
        const char *st = cli__jstr(s, "StreamStatus");
        if (!strcmp(st, "ACTIVE")) {
            if (summary)
                *summary = cJSON_DetachItemFromObjectCaseSensitive(resp,
                                                                   "StreamDescriptionSummary");
            cJSON_Delete(resp);
            return 0;
        }
        cli__progress(c, false, "stream %s: %s", stream, st);
        cJSON_Delete(resp);
        if (cli__stop) {
            memset(err, 0, sizeof *err);
            snprintf(err->msg, sizeof err->msg, "interrupted");
            return 1;
        }
        cli__sleep_ms(i < 20 ? 50 : 200);
    }
}

static int apply_stream(cli_ctx *c, const cJSON *s)
{
    const char *name = cli__jstr(s, "name");
    const char *mode = *cli__jstr(s, "mode") ? cli__jstr(s, "mode") : "PROVISIONED";
    bool has_shards = cJSON_GetObjectItemCaseSensitive(s, "shards") != NULL;
    bool on_demand = !strcmp(mode, "ON_DEMAND");
    long shards = (long)cli__jnum(s, "shards", on_demand ? 4 : 1);
    long retention = (long)cli__jnum(s, "retentionHours", 24);
    cJSON *req, *sum = NULL;
    cli_err err;
    char what[200];
    int rc;

    memset(&err, 0, sizeof err);
    rc = wait_active(c, name, &sum, &err);
    if (rc == 1 && !strcmp(err.type, "ResourceNotFoundException")) {
        req = name_req(name);
        if (!on_demand || has_shards) cJSON_AddNumberToObject(req, "ShardCount", (double)shards);
        if (on_demand)
            cJSON_AddStringToObject(cJSON_AddObjectToObject(req, "StreamModeDetails"),
                                    "StreamMode", "ON_DEMAND");
        rc = cli__kinesis(c, "CreateStream", req, NULL, &err);
        cJSON_Delete(req);
        if (rc == 0) rc = wait_active(c, name, &sum, &err);
        if (rc != 0) goto out;
        snprintf(what, sizeof what, "created (%d shard%s, %s)",
                 (int)cli__jnum(sum, "OpenShardCount", 0),
                 cli__jnum(sum, "OpenShardCount", 0) == 1 ? "" : "s", mode);
        cli__action(c, "stream", name, what);
    }
    if (rc != 0) goto out;
    const char *cur_mode =
        cli__jstr(cJSON_GetObjectItemCaseSensitive(sum, "StreamModeDetails"), "StreamMode");
    if (*cur_mode && strcmp(cur_mode, mode)) {
        req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "StreamARN", cli__jstr(sum, "StreamARN"));
        cJSON_AddStringToObject(cJSON_AddObjectToObject(req, "StreamModeDetails"), "StreamMode",
                                mode);
        rc = cli__kinesis(c, "UpdateStreamMode", req, NULL, &err);
        cJSON_Delete(req);
        cJSON_Delete(sum);
        sum = NULL;
        if (rc == 0) rc = wait_active(c, name, &sum, &err);
        if (rc != 0) goto out;
        snprintf(what, sizeof what, "mode %s -> %s", cur_mode, mode);
        cli__action(c, "stream", name, what);
    }
    long open = (long)cli__jnum(sum, "OpenShardCount", 0);
    if ((!on_demand || has_shards) && open != shards) {
        req = name_req(name);
        cJSON_AddNumberToObject(req, "TargetShardCount", (double)shards);
        cJSON_AddStringToObject(req, "ScalingType", "UNIFORM_SCALING");
        rc = cli__kinesis(c, "UpdateShardCount", req, NULL, &err);
        cJSON_Delete(req);
        cJSON_Delete(sum);
        sum = NULL;
        if (rc == 0) rc = wait_active(c, name, &sum, &err);
        if (rc != 0) goto out;
        snprintf(what, sizeof what, "scaled %ld -> %ld shards", open, shards);
        cli__action(c, "stream", name, what);
    }
    long ret = (long)cli__jnum(sum, "RetentionPeriodHours", 24);
    if (ret != retention) {
        req = name_req(name);
        cJSON_AddNumberToObject(req, "RetentionPeriodHours", (double)retention);
        rc = cli__kinesis(c, retention > ret ? "IncreaseStreamRetentionPeriod"
                                             : "DecreaseStreamRetentionPeriod",
                          req, NULL, &err);
        cJSON_Delete(req);
        if (rc == 0) rc = wait_active(c, name, NULL, &err);
        if (rc != 0) goto out;
        snprintf(what, sizeof what, "retention %ldh -> %ldh", ret, retention);
        cli__action(c, "stream", name, what);
    }
out:
    if (rc == 1) fprintf(stderr, "sluice: stream %s: %s%s%s\n", name, err.type,
                         err.type[0] ? ": " : "", err.msg);
    cJSON_Delete(sum);
    return rc;
}

/* Applies everything; stops at the first failure. 0, 1 (reported) or -1 (transport). */
static int apply_all(cli_ctx *c, const manifest *m)
{
    const cJSON *o;
    int rc = 0;
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(m->root, "streams"))
    {
        if ((rc = apply_stream(c, o)) != 0) return rc;
    }
    for (size_t i = 0; i < m->nfns; i++)
        if ((rc = cli__fn_apply(c, &m->fns[i].spec, false)) != 0) return rc;
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(m->root, "mappings"))
    {
        cJSON *req = mapping_request(m, o, "mappings");
        if (!req) return 1;
        rc = cli__map_apply(c, cli__jstr(o, "stream"), cli__jstr(o, "function"), req);
        cJSON_Delete(req);
        if (rc != 0) return rc;
    }
    return 0;
}

static void summary(cli_ctx *c, int before, int rc)
{
    int n = c->nactions - before;
    if (c->json) return;
    if (rc != 0) return;
    if (n == 0) printf("no changes\n");
    else printf("%d change%s applied\n", n, n == 1 ? "" : "s");
    fflush(stdout);
}

/* ---- watch ---------------------------------------------------------------------------------- */

typedef struct watch_set {
    int fd;
    int wd[MAX_WATCHES];
    int fn[MAX_WATCHES];      /* function index, -1 for the manifest's directory */
    size_t n;
    int manifest_wd;
} watch_set;

static void watch_tree(watch_set *w, const char *dir, int fn)
{
    const uint32_t mask = IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                          IN_ATTRIB | IN_DELETE_SELF;
    if (w->n >= MAX_WATCHES) return;
    int wd = inotify_add_watch(w->fd, dir, mask);
    if (wd < 0) return;
    w->wd[w->n] = wd;
    w->fn[w->n++] = fn;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char sub[PATH_MAX];
        struct stat st;
        if (e->d_name[0] == '.') continue;
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) watch_tree(w, sub, fn);
    }
    if (d) closedir(d);
}

static void watch_setup(watch_set *w, const manifest *m)
{
    for (size_t i = 0; i < w->n; i++) inotify_rm_watch(w->fd, w->wd[i]);
    w->n = 0;
    for (size_t i = 0; i < m->nfns; i++)
        if (m->fns[i].is_dir) watch_tree(w, m->fns[i].code_path, (int)i);
    w->manifest_wd = inotify_add_watch(w->fd, m->dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MASK_ADD);
}

static int watch_loop(cli_ctx *c, manifest *m, const char *file)
{
    watch_set *w = sl_calloc(1, sizeof *w);
    bool *dirty = NULL, manifest_dirty = false;
    int64_t last_event = 0;
    char base[PATH_MAX], tmp[PATH_MAX];
    int rc = CLI_OK;

    if (!w) return CLI_FAIL;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        fprintf(stderr, "sluice: inotify: %s\n", strerror(errno));
        sl_free(w);
        return CLI_FAIL;
    }
    snprintf(tmp, sizeof tmp, "%s", file);
    snprintf(base, sizeof base, "%s", basename(tmp));
    watch_setup(w, m);
    dirty = sl_calloc(m->nfns + 1, sizeof *dirty);
    fprintf(stderr, "watching %zu function director%s and %s (Ctrl-C to stop)\n", m->nfns,
            m->nfns == 1 ? "y" : "ies", base);
    while (!cli__stop && dirty) {
        struct pollfd p = {w->fd, POLLIN, 0};
        int pr = poll(&p, 1, 50);
        if (pr < 0 && errno != EINTR) break;
        if (pr > 0) {
            char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
            ssize_t len;
            while ((len = read(w->fd, buf, sizeof buf)) > 0) {
                for (char *p2 = buf; p2 < buf + len;) {
                    const struct inotify_event *ev = (const struct inotify_event *)p2;
                    p2 += sizeof *ev + ev->len;
                    if (ev->len && ev->name[0] == '.') continue; /* editor swap files */
                    if (ev->wd == w->manifest_wd) {
                        if (ev->len && !strcmp(ev->name, base)) {
                            manifest_dirty = true;
                            last_event = cli__now_ms();
                        }
                        /* the manifest's directory may also be a function's code directory */
                    }
                    for (size_t i = 0; i < w->n; i++) {
                        if (w->wd[i] != ev->wd) continue;
                        dirty[w->fn[i]] = true;
                        last_event = cli__now_ms();
                        if ((ev->mask & IN_CREATE) && (ev->mask & IN_ISDIR)) {
                            watch_setup(w, m); /* a new subdirectory: watch it too */
                            break;
                        }
                    }
                }
            }
        }
        if (!last_event || cli__now_ms() - last_event < WATCH_DEBOUNCE_MS) continue;
        last_event = 0;
        if (manifest_dirty) {
            manifest nm;
            manifest_dirty = false;
            memset(dirty, 0, (m->nfns + 1) * sizeof *dirty);
            if (manifest_load(&nm, file) != CLI_OK) continue; /* keep the old one; reported */
            manifest_free(m);
            *m = nm;
            bool *nd = sl_calloc(m->nfns + 1, sizeof *nd);
            sl_free(dirty);
            dirty = nd;
            watch_setup(w, m);
            int before = c->nactions;
            int r = apply_all(c, m);
            if (r < 0) {
                rc = CLI_FAIL;
                break;
            }
            summary(c, before, r);
            continue;
        }
        for (size_t i = 0; i < m->nfns; i++) {
            if (!dirty[i]) continue;
            dirty[i] = false;
            int r = cli__fn_apply(c, &m->fns[i].spec, true);
            if (r < 0) {
                rc = CLI_FAIL;
                break;
            }
        }
        if (rc != CLI_OK) break;
    }
    close(w->fd);
    sl_free(w);
    sl_free(dirty);
    return rc;
}

/* ---- command -------------------------------------------------------------------------------- */

static int cmd_up(cli_ctx *c, const cli_args *a)
{
    const char *file = a->npos ? a->pos[0] : "sluice.json";
    bool watch = cli__flag(a, "watch");
    manifest m;
    int rc;

    if (watch && c->json)
        return cli__usage_error("up", "--watch prints human output; drop --json");
    if (manifest_load(&m, file) != CLI_OK) return CLI_FAIL;
    int r = apply_all(c, &m);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", r == 0);
        cJSON_AddNumberToObject(o, "changes", c->nactions);
        if (c->actions) cJSON_AddItemReferenceToObject(o, "actions", c->actions);
        else cJSON_AddArrayToObject(o, "actions");
        cli__print_json(o);
        cJSON_Delete(o);
    }
    summary(c, 0, r);
    rc = r == 0 ? CLI_OK : CLI_FAIL;
    if (watch && r >= 0) rc = watch_loop(c, &m, file);
    manifest_free(&m);
    return rc;
}

static const cli_opt up_opts[] = {
    {"watch", 'w', NULL, "keep running; redeploy a function when a file in its code changes"},
    {0},
};

const cli_cmd cli__up_cmds[] = {
    {NULL, "up", "[sluice.json] [--watch]",
     "Create or update the streams, functions and mappings a manifest declares (idempotent).",
     up_opts, 0, 1, cmd_up},
    {0},
};
