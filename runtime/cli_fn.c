/* cli_fn.c — `sluice fn deploy|list|get|delete`, `invoke`, `logs`: the Lambda REST API and the
 * daemon's log endpoint. Directories are zipped with libzip in memory, keeping the Unix mode bits
 * (native handlers stay executable) and a fixed timestamp, so the same files always give the same
 * zip — and the same CodeSha256, which is how `up` tells whether code changed. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>

#include "broker/sl_common.h"
#include "runtime/cli_int.h"

#define ROLE_ARN "arn:aws:iam::000000000000:role/sluice"
#define ZIP_FIXED_MTIME 1577836800 /* 2020-01-01T00:00:00Z: zips depend on content only */

/* ---- zip ------------------------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds every regular file under dir/rel (sorted; names starting with '.' skipped: editor swap
 * files, .git). */
static int zip_tree(zip_t *z, const char *root, const char *rel, char *errbuf, size_t errlen)
{
    char path[4096];
    char **names = NULL;
    size_t n = 0, cap = 0;
    DIR *d;
    struct dirent *e;
    int rc = 0;

    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    d = opendir(path);
    if (!d) {
        snprintf(errbuf, errlen, "cannot open directory %.400s: %s", path, strerror(errno));
        return -1;
    }
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nv = sl_realloc(names, cap * sizeof *nv);
            if (!nv) {
                rc = -1;
                break;
            }
            names = nv;
        }
        names[n] = sl_strdup(e->d_name);
        if (!names[n]) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char relp[4096], full[8192];
        struct stat st;
        snprintf(relp, sizeof relp, "%s%s%s", rel, *rel ? "/" : "", names[i]);
        snprintf(full, sizeof full, "%s/%s", root, relp);
        if (stat(full, &st) != 0) continue; /* dangling symlink */
        if (S_ISDIR(st.st_mode)) {
            rc = zip_tree(z, root, relp, errbuf, errlen);
            continue;
        }
        if (!S_ISREG(st.st_mode)) continue;
        zip_source_t *src = zip_source_file(z, full, 0, -1);
        zip_int64_t idx = src ? zip_file_add(z, relp, src, ZIP_FL_ENC_UTF_8) : -1;
        if (idx < 0) {
            zip_source_free(src);
            snprintf(errbuf, errlen, "cannot add %.400s to the zip: %s", full, zip_strerror(z));
            rc = -1;
            break;
        }
        zip_file_set_external_attributes(z, (zip_uint64_t)idx, 0, ZIP_OPSYS_UNIX,
                                         ((zip_uint32_t)(S_IFREG | (st.st_mode & 07777))) << 16);
        zip_file_set_mtime(z, (zip_uint64_t)idx, ZIP_FIXED_MTIME, 0);
    }
    for (size_t i = 0; i < n; i++) sl_free(names[i]);
    sl_free(names);
    if (rc && !errbuf[0]) snprintf(errbuf, errlen, "out of memory");
    return rc;
}

/* Zips a directory into memory (sl_malloc'd). */
static int zip_dir(const char *dir, uint8_t **out, size_t *len, char *errbuf, size_t errlen)
{
    zip_error_t ze;
    zip_source_t *buf;
    zip_t *z;
    zip_stat_t st;
    uint8_t *data = NULL;
    int rc = -1;

    errbuf[0] = '\0';
    zip_error_init(&ze);
    buf = zip_source_buffer_create(NULL, 0, 0, &ze);
    if (!buf) {
        snprintf(errbuf, errlen, "libzip: %s", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return -1;
    }
    zip_source_keep(buf);
    z = zip_open_from_source(buf, ZIP_TRUNCATE, &ze);
    if (!z) {
        snprintf(errbuf, errlen, "libzip: %s", zip_error_strerror(&ze));
        goto out;
    }
    if (zip_tree(z, dir, "", errbuf, errlen) != 0) {
        zip_discard(z);
        goto out;
    }
    if (zip_get_num_entries(z, 0) == 0) {
        snprintf(errbuf, errlen, "%s has no files to deploy", dir);
        zip_discard(z);
        goto out;
    }
    if (zip_close(z) != 0) {
        snprintf(errbuf, errlen, "cannot write the zip: %s", zip_strerror(z));
        zip_discard(z);
        goto out;
    }
    if (zip_source_stat(buf, &st) != 0 || zip_source_open(buf) != 0) {
        snprintf(errbuf, errlen, "cannot read the zip back");
        goto out;
    }
    data = sl_malloc(st.size ? st.size : 1);
    if (data && zip_source_read(buf, data, st.size) == (zip_int64_t)st.size) {
        *out = data;
        *len = st.size;
        data = NULL;
        rc = 0;
    } else {
        snprintf(errbuf, errlen, "cannot read the zip back");
    }
    zip_source_close(buf);
out:
    sl_free(data);
    zip_source_free(buf);
    zip_error_fini(&ze);
    return rc;
}

/* Runs `sh -c cmd` in dir; its output goes to stderr so --json output stays clean. */
static int run_build(const char *dir, const char *cmd)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(127);
        dup2(STDERR_FILENO, STDOUT_FILENO);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* The deployment package of a spec: build, then zip the directory or read the .zip. */
static int package(const cli_fn_spec *s, uint8_t **zip, size_t *len, char sha[64])
{
    struct stat st;
    char errbuf[600];
    unsigned char md[SHA256_DIGEST_LENGTH];

    if (stat(s->code, &st) != 0) {
        fprintf(stderr, "sluice: function %s: cannot find code %s: %s\n", s->name, s->code,
                strerror(errno));
        return 1;
    }
    if (S_ISDIR(st.st_mode)) {
        if (s->build && *s->build && run_build(s->code, s->build) != 0) {
            fprintf(stderr, "sluice: function %s: build '%s' failed in %s\n", s->name, s->build,
                    s->code);
            return 1;
        }
        if (zip_dir(s->code, zip, len, errbuf, sizeof errbuf) != 0) {
            fprintf(stderr, "sluice: function %s: %s\n", s->name, errbuf);
            return 1;
        }
    } else {
        int rc = cli__read_file(s->code, (char **)zip, len);
        if (rc != 0) {
            fprintf(stderr, "sluice: function %s: cannot read %s: %s\n", s->name, s->code,
                    strerror(-rc));
            return 1;
        }
    }
    SHA256(*zip, *len, md);
    char *b64 = cli__b64enc(md, sizeof md, NULL);
    snprintf(sha, 64, "%s", b64 ? b64 : "");
    sl_free(b64);
    return 0;
}

/* ---- deploy --------------------------------------------------------------------------------- */

static long spec_memory(const cli_fn_spec *s)
{
    return s->memory > 0 ? s->memory : 128;
}

static long spec_timeout(const cli_fn_spec *s)
{
    return s->timeout > 0 ? s->timeout : 3;
}

static void add_config(cJSON *req, const cli_fn_spec *s)
{
    cJSON_AddStringToObject(req, "Runtime", s->runtime);
    cJSON_AddStringToObject(req, "Handler", s->handler);
    cJSON_AddNumberToObject(req, "MemorySize", (double)spec_memory(s));
    cJSON_AddNumberToObject(req, "Timeout", (double)spec_timeout(s));
    cJSON *vars = cJSON_AddObjectToObject(cJSON_AddObjectToObject(req, "Environment"),
                                          "Variables");
    for (size_t i = 0; i < s->nenv; i++)
        cJSON_AddStringToObject(vars, s->env_keys[i], s->env_vals[i]);
    if (s->profile) cJSON_AddStringToObject(req, "SandboxProfile", s->profile);
    if (s->description) cJSON_AddStringToObject(req, "Description", s->description);
}

/* What differs between the deployed configuration and the spec ("" when nothing). */
static void config_diff(const cJSON *cfg, const cli_fn_spec *s, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
#define DIFF(...) o += (size_t)snprintf(out + o, o < len ? len - o : 0, __VA_ARGS__)
    if (strcmp(cli__jstr(cfg, "Runtime"), s->runtime))
        DIFF("%sruntime %s -> %s", o ? ", " : "", cli__jstr(cfg, "Runtime"), s->runtime);
    if (strcmp(cli__jstr(cfg, "Handler"), s->handler))
        DIFF("%shandler %s -> %s", o ? ", " : "", cli__jstr(cfg, "Handler"), s->handler);
    if ((long)cli__jnum(cfg, "MemorySize", 0) != spec_memory(s))
        DIFF("%smemory %ld -> %ld MB", o ? ", " : "", (long)cli__jnum(cfg, "MemorySize", 0),
             spec_memory(s));
    if ((long)cli__jnum(cfg, "Timeout", 0) != spec_timeout(s))
        DIFF("%stimeout %ld -> %ld s", o ? ", " : "", (long)cli__jnum(cfg, "Timeout", 0),
             spec_timeout(s));
    if (s->description && strcmp(cli__jstr(cfg, "Description"), s->description))
        DIFF("%sdescription", o ? ", " : "");
    /* SandboxProfile is compared only when the daemon reports it */
    const cJSON *prof = cJSON_GetObjectItemCaseSensitive(cfg, "SandboxProfile");
    if (s->profile && cJSON_IsString(prof) && strcmp(prof->valuestring, s->profile))
        DIFF("%sprofile %s -> %s", o ? ", " : "", prof->valuestring, s->profile);
    const cJSON *vars = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cfg, "Environment"), "Variables");
    bool env_same = (size_t)cJSON_GetArraySize(vars) == s->nenv;
    for (size_t i = 0; env_same && i < s->nenv; i++)
        env_same = !strcmp(cli__jstr(vars, s->env_keys[i]), s->env_vals[i]) &&
                   cJSON_GetObjectItemCaseSensitive(vars, s->env_keys[i]);
    if (!env_same) DIFF("%senvironment", o ? ", " : "");
#undef DIFF
}

static int set_concurrency(cli_ctx *c, const cli_fn_spec *s, const char *ename, cli_err *err)
{
    char path[256];
    snprintf(path, sizeof path, "/2017-10-31/functions/%s/concurrency", ename);
    if (s->reserved < 0) return cli__lambda(c, "DELETE", path, NULL, NULL, err);
    cJSON *req = cJSON_CreateObject();
    cJSON_AddNumberToObject(req, "ReservedConcurrentExecutions", (double)s->reserved);
    int rc = cli__lambda(c, "PUT", path, req, NULL, err);
    cJSON_Delete(req);
    return rc;
}

int cli__fn_apply(cli_ctx *c, const cli_fn_spec *s, bool code_only)
{
    uint8_t *zip = NULL;
    size_t zlen = 0;
    char sha[64], path[256], what[600];
    cJSON *cur = NULL, *req = NULL;
    char *b64 = NULL;
    char *ename = NULL;   /* the name as a path segment */
    cli_err err;
    int rc;

    memset(&err, 0, sizeof err);
    if (package(s, &zip, &zlen, sha) != 0) return 1;
    ename = cli__escape(c, s->name);
    b64 = cli__b64enc(zip, zlen, NULL);
    if (!b64 || !ename) {
        rc = 1;
        snprintf(err.msg, sizeof err.msg, "out of memory");
        goto out;
    }
    snprintf(path, sizeof path, "/2015-03-31/functions/%s", ename);
    rc = cli__lambda(c, "GET", path, NULL, &cur, &err);
    if (rc == 1 && err.status == 404) {
        req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "FunctionName", s->name);
        cJSON_AddStringToObject(req, "Role", ROLE_ARN);
        add_config(req, s);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(req, "Code"), "ZipFile", b64);
        rc = cli__lambda(c, "POST", "/2015-03-31/functions", req, NULL, &err);
        if (rc == 0) {
            snprintf(what, sizeof what, "created (%s, handler %s, %zu-byte zip)", s->runtime,
                     s->handler, zlen);
            cli__action(c, "function", s->name, what);
            if (s->reserved_set && s->reserved >= 0) {
                rc = set_concurrency(c, s, ename, &err);
                if (rc == 0) {
                    snprintf(what, sizeof what, "reserved concurrency %ld", s->reserved);
                    cli__action(c, "function", s->name, what);
                }
            }
        }
        goto out;
    }
    if (rc != 0) goto out;
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(cur, "Configuration");
    if (strcmp(cli__jstr(cfg, "CodeSha256"), sha)) {
        cJSON_Delete(req);
        req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "ZipFile", b64);
        snprintf(path, sizeof path, "/2015-03-31/functions/%s/code", ename);
        rc = cli__lambda(c, "PUT", path, req, NULL, &err);
        if (rc != 0) goto out;
        snprintf(what, sizeof what, "code updated (%zu-byte zip, sha256 %.12s...)", zlen, sha);
        cli__action(c, "function", s->name, what);
    }
    if (code_only) goto out;
    config_diff(cfg, s, what, sizeof what);
    if (what[0]) {
        char msg[700];
        cJSON_Delete(req);
        req = cJSON_CreateObject();
        add_config(req, s);
        snprintf(path, sizeof path, "/2015-03-31/functions/%s/configuration", ename);
        rc = cli__lambda(c, "PUT", path, req, NULL, &err);
        if (rc != 0) goto out;
        snprintf(msg, sizeof msg, "configuration updated (%s)", what);
        cli__action(c, "function", s->name, msg);
    }
    if (s->reserved_set) {
        const cJSON *conc = cJSON_GetObjectItemCaseSensitive(cur, "Concurrency");
        long now = (long)cli__jnum(conc, "ReservedConcurrentExecutions", -1);
        if (now != s->reserved) {
            rc = set_concurrency(c, s, ename, &err);
            if (rc != 0) goto out;
            if (s->reserved < 0) snprintf(what, sizeof what, "reserved concurrency removed");
            else snprintf(what, sizeof what, "reserved concurrency %ld", s->reserved);
            cli__action(c, "function", s->name, what);
        }
    }
out:
    if (rc == 1) {
        char label[200];
        snprintf(label, sizeof label, "function %s: %s", s->name, err.type);
        fprintf(stderr, "sluice: %s%s%s\n", err.type[0] ? label : "", err.type[0] ? ": " : "",
                err.msg);
    }
    cJSON_Delete(req);
    cJSON_Delete(cur);
    sl_free(ename);
    sl_free(b64);
    sl_free(zip);
    return rc;
}

static int fn_deploy(cli_ctx *c, const cli_args *a)
{
    cli_fn_spec s;
    const char **envs = NULL;
    int nenv = cli__nvals(a, "env", &envs), rc;
    bool given;

    memset(&s, 0, sizeof s);
    s.code = a->pos[0];
    s.name = cli__opt(a, "name");
    s.runtime = cli__opt(a, "runtime");
    s.handler = cli__opt(a, "handler");
    s.profile = cli__opt(a, "profile");
    s.build = cli__opt(a, "build");
    s.description = cli__opt(a, "description");
    if (!s.name || !s.runtime || !s.handler)
        return cli__usage_error("fn deploy", "--name, --runtime and --handler are required");
    if (strcmp(s.runtime, "lua5.4") && strcmp(s.runtime, "native"))
        return cli__usage_error("fn deploy", "--runtime must be lua5.4 or native, got '%s'",
                                s.runtime);
    if (cli__opt_long(a, "memory", 128, 10240, &s.memory, NULL) ||
        cli__opt_long(a, "timeout", 1, 900, &s.timeout, NULL) ||
        cli__opt_long(a, "reserved-concurrency", -1, 1000, &s.reserved, &given))
        return CLI_USAGE;
    s.reserved_set = given;
    s.env_keys = sl_calloc((size_t)nenv + 1, sizeof *s.env_keys);
    s.env_vals = sl_calloc((size_t)nenv + 1, sizeof *s.env_vals);
    char **owned = sl_calloc((size_t)nenv + 1, sizeof *owned);
    rc = s.env_keys && s.env_vals && owned ? CLI_OK : CLI_FAIL;
    for (int i = 0; i < nenv && rc == CLI_OK; i++) {
        const char *eq = strchr(envs[i], '=');
        if (!eq || eq == envs[i]) {
            rc = cli__usage_error("fn deploy", "--env wants KEY=VALUE, got '%s'", envs[i]);
            break;
        }
        owned[i] = sl_strndup(envs[i], (size_t)(eq - envs[i]));
        s.env_keys[s.nenv] = owned[i];
        s.env_vals[s.nenv++] = eq + 1;
    }
    if (rc == CLI_OK) {
        int r = cli__fn_apply(c, &s, false);
        if (r == 0 && c->nactions == 0) cli__action(c, "function", s.name, "up to date");
        if (r == 0 && c->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "FunctionName", s.name);
            cJSON_AddItemReferenceToObject(o, "Actions", c->actions);
            cli__print_json(o);
            cJSON_Delete(o);
        }
        rc = r == 0 ? CLI_OK : CLI_FAIL;
    }
    for (int i = 0; i < nenv; i++) sl_free(owned ? owned[i] : NULL);
    sl_free(owned);
    sl_free((void *)s.env_keys);
    sl_free((void *)s.env_vals);
    return rc;
}

/* ---- list / get / delete -------------------------------------------------------------------- */

static int fn_list(cli_ctx *c, const cli_args *a)
{
    cJSON *all = cJSON_CreateArray();
    char *marker = NULL;
    cli_err err;
    int rc;
    (void)a;
    for (;;) {
        char path[512];
        cJSON *resp = NULL, *f;
        char *m = marker ? cli__escape(c, marker) : NULL;
        snprintf(path, sizeof path, "/2015-03-31/functions/?MaxItems=50%s%s", m ? "&Marker=" : "",
                 m ? m : "");
        sl_free(m);
        sl_free(marker);
        marker = NULL;
        rc = cli__lambda(c, "GET", path, NULL, &resp, &err);
        if (rc != 0) break;
        cJSON *arr = cJSON_GetObjectItemCaseSensitive(resp, "Functions");
        while (arr && (f = cJSON_DetachItemFromArray(arr, 0))) cJSON_AddItemToArray(all, f);
        if (*cli__jstr(resp, "NextMarker")) marker = sl_strdup(cli__jstr(resp, "NextMarker"));
        cJSON_Delete(resp);
        if (!marker) break;
    }
    if (rc == 0) {
        if (c->json) {
            cli__print_json(all);
        } else if (cJSON_GetArraySize(all) == 0) {
            printf("no functions (deploy one with: sluice fn deploy DIR --name N --runtime "
                   "lua5.4 --handler main.handler)\n");
        } else {
            size_t n = (size_t)cJSON_GetArraySize(all), r = 1;
            const char **cells = sl_calloc((n + 1) * 7, sizeof *cells);
            char(*nums)[3][24] = sl_calloc(n + 1, sizeof *nums);
            const cJSON *f;
            if (cells && nums) {
                const char *hdr[] = {"NAME", "RUNTIME", "HANDLER", "MEMORY", "TIMEOUT",
                                     "CODE SIZE", "LAST MODIFIED"};
                memcpy(cells, hdr, sizeof hdr);
                cJSON_ArrayForEach(f, all)
                {
                    snprintf(nums[r][0], 24, "%d MB", (int)cli__jnum(f, "MemorySize", 0));
                    snprintf(nums[r][1], 24, "%d s", (int)cli__jnum(f, "Timeout", 0));
                    snprintf(nums[r][2], 24, "%.0f", cli__jnum(f, "CodeSize", 0));
                    cells[r * 7 + 0] = cli__jstr(f, "FunctionName");
                    cells[r * 7 + 1] = cli__jstr(f, "Runtime");
                    cells[r * 7 + 2] = cli__jstr(f, "Handler");
                    cells[r * 7 + 3] = nums[r][0];
                    cells[r * 7 + 4] = nums[r][1];
                    cells[r * 7 + 5] = nums[r][2];
                    cells[r * 7 + 6] = cli__jstr(f, "LastModified");
                    r++;
                }
                cli__table(cells, r, 7);
            }
            sl_free(cells);
            sl_free(nums);
        }
    }
    sl_free(marker);
    cJSON_Delete(all);
    return cli__status(rc, &err);
}

static int fn_get(cli_ctx *c, const cli_args *a)
{
    char path[256];
    cJSON *resp = NULL;
    cli_err err;
    char *name = cli__escape(c, a->pos[0]);
    snprintf(path, sizeof path, "/2015-03-31/functions/%s", name ? name : "");
    sl_free(name);
    int rc = cli__lambda(c, "GET", path, NULL, &resp, &err);
    if (rc != 0) return cli__status(rc, &err);
    if (c->json) {
        cli__print_json(resp);
    } else {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(resp, "Configuration");
        const cJSON *conc = cJSON_GetObjectItemCaseSensitive(resp, "Concurrency");
        printf("function       %s\narn            %s\nruntime        %s\nhandler        %s\n"
               "memory         %d MB\ntimeout        %d s\ncode           %.0f bytes, sha256 %s\n"
               "last modified  %s\nstate          %s\n",
               cli__jstr(f, "FunctionName"), cli__jstr(f, "FunctionArn"), cli__jstr(f, "Runtime"),
               cli__jstr(f, "Handler"), (int)cli__jnum(f, "MemorySize", 0),
               (int)cli__jnum(f, "Timeout", 0), cli__jnum(f, "CodeSize", 0),
               cli__jstr(f, "CodeSha256"), cli__jstr(f, "LastModified"), cli__jstr(f, "State"));
        if (conc)
            printf("reserved       %d concurrent executions\n",
                   (int)cli__jnum(conc, "ReservedConcurrentExecutions", 0));
        const cJSON *vars = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(f, "Environment"), "Variables");
        const cJSON *v;
        cJSON_ArrayForEach(v, vars)
        {
            printf("env            %s=%s\n", v->string, cJSON_IsString(v) ? v->valuestring : "");
        }
    }
    cJSON_Delete(resp);
    return CLI_OK;
}

static int fn_delete(cli_ctx *c, const cli_args *a)
{
    char path[256];
    cli_err err;
    char *name = cli__escape(c, a->pos[0]);
    snprintf(path, sizeof path, "/2015-03-31/functions/%s", name ? name : "");
    sl_free(name);
    int rc = cli__lambda(c, "DELETE", path, NULL, NULL, &err);
    if (rc != 0) return cli__status(rc, &err);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "FunctionName", a->pos[0]);
        cJSON_AddBoolToObject(o, "Deleted", true);
        cli__print_json(o);
        cJSON_Delete(o);
    } else {
        printf("deleted function %s\n", a->pos[0]);
    }
    return CLI_OK;
}

/* ---- invoke --------------------------------------------------------------------------------- */

static int cmd_invoke(cli_ctx *c, const cli_args *a)
{
    const char *payload = cli__opt(a, "payload");
    char *owned = NULL, path[256];
    size_t plen;
    cli_resp r;
    bool tail = cli__flag(a, "tail"), async = cli__flag(a, "async");
    int rc;

    if (!payload) payload = "{}";
    if (payload[0] == '@') {
        rc = cli__read_file(payload + 1, &owned, &plen);
        if (rc != 0) {
            fprintf(stderr, "sluice: cannot read %s: %s\n", payload + 1, strerror(-rc));
            return CLI_FAIL;
        }
        payload = owned;
    } else {
        plen = strlen(payload);
    }
    cJSON *check = cJSON_ParseWithLength(payload, plen);
    if (!check) {
        sl_free(owned);
        return cli__usage_error("invoke", "--payload is not valid JSON");
    }
    cJSON_Delete(check);
    char *name = cli__escape(c, a->pos[0]);
    snprintf(path, sizeof path, "/2015-03-31/functions/%s/invocations", name ? name : "");
    sl_free(name);
    const char *hdrs[] = {"Content-Type: application/json",
                          async ? "X-Amz-Invocation-Type: Event"
                                : "X-Amz-Invocation-Type: RequestResponse",
                          tail ? "X-Amz-Log-Type: Tail" : "X-Amz-Log-Type: None", NULL};
    rc = cli__http(c, "POST", path, "lambda", hdrs, payload, plen, 0, &r);
    sl_free(owned);
    if (rc != 0) return CLI_FAIL;
    if (r.status < 200 || r.status > 299) {
        cJSON *o = cJSON_ParseWithLength(r.body, r.len);
        cli_err err;
        memset(&err, 0, sizeof err);
        snprintf(err.type, sizeof err.type, "%s", r.err_type);
        char *colon = strchr(err.type, ':');
        if (colon) *colon = '\0';
        const char *m = cli__jstr(o, "message");
        snprintf(err.msg, sizeof err.msg, "%s", *m ? m : cli__jstr(o, "Message"));
        if (!err.msg[0]) snprintf(err.msg, sizeof err.msg, "HTTP %ld", r.status);
        cJSON_Delete(o);
        cli__resp_clear(&r);
        cli__report(&err);
        return CLI_FAIL;
    }
    uint8_t *log = NULL;
    size_t loglen = 0;
    if (r.log_result[0]) cli__b64dec(r.log_result, &log, &loglen);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "StatusCode", (double)r.status);
        if (r.fn_error[0]) cJSON_AddStringToObject(o, "FunctionError", r.fn_error);
        cJSON_AddStringToObject(o, "ExecutedVersion", "$LATEST");
        cJSON *p = r.len ? cJSON_ParseWithLength(r.body, r.len) : NULL;
        if (p) cJSON_AddItemToObject(o, "Payload", p);
        else if (r.len) cJSON_AddStringToObject(o, "Payload", r.body);
        if (log) cJSON_AddStringToObject(o, "LogResult", (const char *)log);
        cli__print_json(o);
        cJSON_Delete(o);
    } else {
        if (log) {
            fwrite(log, 1, loglen, stderr);
            if (loglen && log[loglen - 1] != '\n') fputc('\n', stderr);
        }
        if (async) printf("queued (HTTP %ld)\n", r.status);
        else if (r.len) printf("%s\n", r.body);
    }
    sl_free(log);
    bool failed = r.fn_error[0] != '\0';
    if (failed && !c->json) fprintf(stderr, "sluice: function error (%s)\n", r.fn_error);
    cli__resp_clear(&r);
    return failed ? CLI_FAIL : CLI_OK;
}

/* ---- logs ----------------------------------------------------------------------------------- */

static int cmd_logs(cli_ctx *c, const cli_args *a)
{
    bool follow = cli__flag(a, "follow");
    long offset = 0;
    char *name;
    int rc = CLI_OK;
    if (cli__opt_long(a, "offset", 0, 0x7fffffffL, &offset, NULL)) return CLI_USAGE;
    name = cli__escape(c, a->pos[0]);
    if (!name) return CLI_FAIL;
    while (!cli__stop) {
        char path[256];
        cli_resp r;
        snprintf(path, sizeof path, "/sluice/logs/%s?offset=%ld", name, offset);
        if (cli__http(c, "GET", path, "lambda", NULL, NULL, 0, 30, &r) != 0) {
            rc = cli__stop ? CLI_OK : CLI_FAIL;
            break;
        }
        if (r.status != 200) {
            cli_err err;
            cJSON *o = cJSON_ParseWithLength(r.body, r.len);
            memset(&err, 0, sizeof err);
            snprintf(err.type, sizeof err.type, "%s", r.err_type);
            snprintf(err.msg, sizeof err.msg, "%s", cli__jstr(o, "message"));
            if (!err.msg[0]) snprintf(err.msg, sizeof err.msg, "HTTP %ld from %s", r.status, path);
            cJSON_Delete(o);
            cli__resp_clear(&r);
            cli__report(&err);
            rc = CLI_FAIL;
            break;
        }
        long next = offset;
        cli__parse_long(r.next_offset, 0, 0x7fffffffffffL, &next);
        if (r.len) {
            if (c->json) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "FunctionName", a->pos[0]);
                cJSON_AddNumberToObject(o, "Offset", (double)offset);
                cJSON_AddNumberToObject(o, "NextOffset", (double)next);
                cJSON_AddStringToObject(o, "Text", r.body);
                char *line = cJSON_PrintUnformatted(o);
                if (line) puts(line);
                cJSON_free(line);
                cJSON_Delete(o);
            } else {
                fwrite(r.body, 1, r.len, stdout);
            }
            fflush(stdout);
        }
        bool more = r.len > 0;
        cli__resp_clear(&r);
        offset = next;
        if (!more) {
            if (!follow) break;
            cli__sleep_ms(250);
        }
    }
    sl_free(name);
    return rc;
}

/* ---- table ---------------------------------------------------------------------------------- */

static const cli_opt deploy_opts[] = {
    {"name", 0, "NAME", "function name (required)"},
    {"runtime", 0, "RUNTIME", "lua5.4 or native (required)"},
    {"handler", 0, "HANDLER", "file.function (Lua) or executable name (native) (required)"},
    {"memory", 0, "MB", "memory size, 128..10240 (default 128)"},
    {"timeout", 0, "SECONDS", "timeout, 1..900 (default 3)"},
    {"env", 'e', "KEY=VALUE", "environment variable (repeatable)"},
    {"profile", 0, "PROFILE", "native sandbox profile: stdio, threads or network-out"},
    {"reserved-concurrency", 0, "N", "reserved concurrency (-1 removes it)"},
    {"build", 0, "COMMAND", "run COMMAND (sh -c) in DIR before zipping, e.g. make"},
    {"description", 0, "TEXT", "description"},
    {0},
};
static const cli_opt invoke_opts[] = {
    {"payload", 'p', "JSON|@FILE", "event to send (default {})"},
    {"tail", 0, NULL, "print the invocation's log (last 4 KB) to stderr"},
    {"async", 0, NULL, "Event invocation: queue it and return at once"},
    {0},
};
static const cli_opt logs_opts[] = {
    {"follow", 'f', NULL, "keep printing new log lines until Ctrl-C"},
    {"offset", 0, "BYTES", "start at this byte of the current log file (default 0)"},
    {0},
};
static const cli_opt fn_no_opts[] = {{0}};

const cli_cmd cli__fn_cmds[] = {
    {"fn", "deploy", "DIR|ZIP --name N --runtime lua5.4|native --handler H [options]",
     "Create a function or update its code (if the zip changed) and configuration.",
     deploy_opts, 1, 1, fn_deploy},
    {"fn", "list", "", "List functions.", fn_no_opts, 0, 0, fn_list},
    {"fn", "get", "NAME", "Show a function's configuration.", fn_no_opts, 1, 1, fn_get},
    {"fn", "delete", "NAME", "Delete a function.", fn_no_opts, 1, 1, fn_delete},
    {NULL, "invoke", "NAME [--payload JSON|@FILE] [--tail]",
     "Invoke a function and print its result; exit status 1 on a function error.", invoke_opts,
     1, 1, cmd_invoke},
    {NULL, "logs", "NAME [-f]", "Print a function's invocation logs (START/END/REPORT).",
     logs_opts, 1, 1, cmd_logs},
    {0},
};
