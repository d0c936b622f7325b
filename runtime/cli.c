/* cli.c — command dispatch, option parsing, output helpers and the libcurl client shared by
 * every `sluice` client command (runtime/cli.h). The option parser is ours because each command's
 * cli_opt table also generates its --help (STYLE.md 10) — getopt_long has no such table. */
#include "runtime/cli.h"

#include "runtime/curl_dyn.h"
#include <openssl/evp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/sl_common.h"
#include "runtime/auth.h"
#include "runtime/cli_int.h"
#include "runtime/http_server.h"

#define DEFAULT_ENDPOINT "http://127.0.0.1:4566"
#define KINESIS_TARGET "Kinesis_20131202."

volatile sig_atomic_t cli__stop;

static const cli_opt common_opts[] = {
    {"endpoint", 0, "URL", "daemon address (env SLUICE_ENDPOINT, default " DEFAULT_ENDPOINT ")"},
    {"json", 0, NULL, "machine-readable JSON output"},
    {"help", 'h', NULL, "show this help"},
    {0},
};

static const cli_cmd *const groups[] = {
    cli__stream_cmds, cli__fn_cmds, cli__map_cmds, cli__up_cmds, cli__top_cmds,
};
#define CLI_NGROUPS (sizeof groups / sizeof groups[0])

/* ---- small utilities ------------------------------------------------------------------------ */

void cli__sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* EINTR (Ctrl-C) ends the sleep early, which is what callers want */
}

int64_t cli__now_ms(void)
{
    return sl_now_ms();
}

int cli__read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    size_t got = 0, cap;
    int rc = 0;

    if (fd < 0) return -errno;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        goto out;
    }
    cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536;
    buf = sl_malloc(cap);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        if (got + 1 >= cap) {
            char *nb = sl_realloc(buf, cap * 2);
            if (!nb) {
                rc = -ENOMEM;
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = -errno;
            goto out;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    buf = NULL;
out:
    sl_free(buf);
    close(fd);
    return rc;
}

const char *cli__jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

double cli__jnum(const cJSON *o, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* ---- options -------------------------------------------------------------------------------- */

static int opt_index(const cli_args *a, const char *name)
{
    for (size_t i = 0; i < a->nopts; i++)
        if (!strcmp(a->opts[i].name, name)) return (int)i;
    return -1;
}

const char *cli__opt(const cli_args *a, const char *name)
{
    int i = opt_index(a, name);
    return i >= 0 && a->count[i] && a->vals[i] ? a->vals[i][a->count[i] - 1] : NULL;
}

bool cli__flag(const cli_args *a, const char *name)
{
    int i = opt_index(a, name);
    return i >= 0 && a->count[i] > 0;
}

int cli__nvals(const cli_args *a, const char *name, const char ***vals)
{
    int i = opt_index(a, name);
    if (i < 0 || !a->vals[i]) {
        *vals = NULL;
        return 0;
    }
    *vals = a->vals[i];
    return a->count[i];
}

bool cli__parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    if (!s || !*s) return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

int cli__usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fputs("sluice: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see: sluice %s --help)\n", cmd);
    return CLI_USAGE;
}

int cli__opt_long(const cli_args *a, const char *name, long lo, long hi, long *out, bool *given)
{
    const char *v = cli__opt(a, name);
    if (given) *given = v != NULL;
    if (!v) return CLI_OK;
    if (!cli__parse_long(v, lo, hi, out)) {
        fprintf(stderr, "sluice: --%s must be an integer between %ld and %ld, got '%s'\n", name,
                lo, hi, v);
        return CLI_USAGE;
    }
    return CLI_OK;
}

static void args_free(cli_args *a)
{
    for (size_t i = 0; i < a->nopts; i++) sl_free((void *)a->vals[i]);
    sl_free((void *)a->opts);
}

static void cmd_label(const cli_cmd *cmd, char *buf, size_t len)
{
    if (cmd->group) snprintf(buf, len, "%s %s", cmd->group, cmd->name);
    else snprintf(buf, len, "%s", cmd->name);
}

static void print_opts(FILE *f, const cli_opt *opts)
{
    for (const cli_opt *o = opts; o && o->name; o++) {
        char left[96];
        if (o->short_name)
            snprintf(left, sizeof left, "  -%c, --%s%s%s", o->short_name, o->name,
                     o->arg ? " " : "", o->arg ? o->arg : "");
        else
            snprintf(left, sizeof left, "      --%s%s%s", o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        fprintf(f, "%-30s %s\n", left, o->help);
    }
}

static void cmd_help(const cli_cmd *cmd, FILE *f)
{
    char label[64];
    cmd_label(cmd, label, sizeof label);
    fprintf(f, "usage: sluice %s %s\n\n%s\n\noptions:\n", label, cmd->synopsis, cmd->summary);
    print_opts(f, cmd->opts);
    print_opts(f, common_opts);
}

/* Parses argv (argv[0] is the first argument after the command name) against the command's
 * options plus the common ones. CLI_OK, CLI_USAGE (reported), or -1 when --help was printed. */
static int parse_args(const cli_cmd *cmd, int argc, char **argv, cli_args *a)
{
    char label[64];
    size_t n = 0, ncmd = 0;
    cli_opt *all;

    cmd_label(cmd, label, sizeof label);
    memset(a, 0, sizeof *a);
    while (cmd->opts && cmd->opts[ncmd].name) ncmd++;
    n = ncmd + 3;
    SL_ASSERT(n <= CLI_MAX_OPTS);
    all = sl_calloc(n, sizeof *all);
    if (!all) return cli__usage_error(label, "out of memory");
    memcpy(all, cmd->opts, ncmd * sizeof *all);
    memcpy(all + ncmd, common_opts, 3 * sizeof *all);
    a->opts = all;
    a->nopts = n;

    bool opts_done = false;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        int idx = -1;
        const char *val = NULL;
        bool is_opt = !opts_done && s[0] == '-' && s[1] &&
                      (s[1] == '-' || (s[1] >= 'a' && s[1] <= 'z') ||
                       (s[1] >= 'A' && s[1] <= 'Z'));
        if (!opts_done && !strcmp(s, "--")) {
            opts_done = true;
            continue;
        }
        if (!is_opt) {
            if (a->npos >= CLI_MAX_POS) return cli__usage_error(label, "too many arguments");
            a->pos[a->npos++] = s;
            continue;
        }
        if (s[1] == '-') {
            const char *eq = strchr(s + 2, '=');
            size_t nl = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
            for (size_t k = 0; k < n; k++)
                if (strlen(all[k].name) == nl && !strncmp(all[k].name, s + 2, nl)) idx = (int)k;
            if (idx < 0) return cli__usage_error(label, "unknown option '%s'", s);
            if (eq) {
                if (!all[idx].arg)
                    return cli__usage_error(label, "option --%s takes no value", all[idx].name);
                val = eq + 1;
            }
        } else {
            for (size_t k = 0; k < n; k++)
                if (all[k].short_name == s[1] && !s[2]) idx = (int)k;
            if (idx < 0) return cli__usage_error(label, "unknown option '%s'", s);
        }
        if (all[idx].arg && !val) {
            if (i + 1 >= argc)
                return cli__usage_error(label, "option --%s needs a value (%s)", all[idx].name,
                                        all[idx].arg);
            val = argv[++i];
        }
        const char **vals = sl_realloc((void *)a->vals[idx], (size_t)(a->count[idx] + 1) *
                                                                  sizeof *vals);
        if (!vals) return cli__usage_error(label, "out of memory");
        vals[a->count[idx]] = val;
        a->vals[idx] = vals;
        a->count[idx]++;
    }
    if (cli__flag(a, "help")) {
        cmd_help(cmd, stdout);
        return -1;
    }
    if (a->npos < cmd->min_pos)
        return cli__usage_error(label, "missing argument: %s %s", label, cmd->synopsis);
    if (cmd->max_pos >= 0 && a->npos > cmd->max_pos)
        return cli__usage_error(label, "unexpected argument '%s'", a->pos[cmd->max_pos]);
    return CLI_OK;
}

/* ---- output --------------------------------------------------------------------------------- */

void cli__print_json(const cJSON *v)
{
    /* cJSON_Print indents with tabs and writes "key":<tab>value; re-indent with two spaces
     * (raw tabs never occur inside cJSON strings: they are escaped). */
    char *s = cJSON_Print(v);
    bool line_start = true;
    if (!s) return;
    for (const char *p = s; *p; p++) {
        if (*p == '\t') {
            fputs(line_start ? "  " : " ", stdout);
            continue;
        }
        line_start = *p == '\n';
        fputc(*p, stdout);
    }
    fputc('\n', stdout);
    cJSON_free(s);
}

void cli__table(const char *const *cells, size_t nrows, size_t ncols)
{
    size_t w[32] = {0};
    SL_ASSERT(ncols <= 32);
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++) {
            size_t l = strlen(cells[r * ncols + c] ? cells[r * ncols + c] : "");
            if (l > w[c]) w[c] = l;
        }
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *s = cells[r * ncols + c] ? cells[r * ncols + c] : "";
            if (c + 1 < ncols) printf("%-*s  ", (int)w[c], s);
            else printf("%s\n", s);
        }
    }
}

void cli__progress(const cli_ctx *c, bool done, const char *fmt, ...)
{
    va_list ap;
    if (!c->err_tty || c->json) return;
    fputc('\r', stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(done ? "\033[K\n" : "\033[K", stderr);
    fflush(stderr);
}

void cli__action(cli_ctx *c, const char *kind, const char *name, const char *what)
{
    c->nactions++;
    if (c->json) {
        if (!c->actions) c->actions = cJSON_CreateArray();
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", kind);
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "action", what);
        cJSON_AddItemToArray(c->actions, o);
        return;
    }
    printf("%s %s: %s\n", kind, name, what);
    fflush(stdout);
}

/* ---- HTTP ----------------------------------------------------------------------------------- */

typedef struct body_buf {
    char *p;
    size_t len, cap;
    bool oom;
} body_buf;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    body_buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = sl_realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return 0;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

static void header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) || line[nl] != ':') return;
    const char *v = line + nl + 1;
    size_t vl = n - nl - 1;
    while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) vl--;
    if (vl >= cap) vl = cap - 1;
    memcpy(out, v, vl);
    out[vl] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    cli_resp *r = ud;
    size_t n = size * nmemb;
    header_value(data, n, "x-amzn-ErrorType", r->err_type, sizeof r->err_type);
    header_value(data, n, "X-Amz-Function-Error", r->fn_error, sizeof r->fn_error);
    header_value(data, n, "X-Amz-Log-Result", r->log_result, sizeof r->log_result);
    header_value(data, n, "X-Sluice-Next-Offset", r->next_offset, sizeof r->next_offset);
    return n;
}

void cli__resp_clear(cli_resp *r)
{
    sl_free(r->body);
    memset(r, 0, sizeof *r);
}

char *cli__escape(cli_ctx *c, const char *s)
{
    char *e = curl_easy_escape(c->curl, s, 0);
    char *out = e ? sl_strdup(e) : NULL;
    curl_free(e);
    return out;
}

/* Authorization value: SigV4 over host and x-amz-date when credentials are configured, else the
 * dummy header the daemon accepts without --auth. */
static int authorization(cli_ctx *c, const char *method, const char *path_query,
                         const char *service, const char *amz_date, const void *body,
                         size_t len, char *out, size_t cap)
{
    if (!c->sign) {
        snprintf(out, cap,
                 "AWS4-HMAC-SHA256 Credential=sluice/%.8s/%s/%s/aws4_request, "
                 "SignedHeaders=host, Signature=0",
                 amz_date, c->region, service);
        return 0;
    }
    char path[2048];
    const char *q = strchr(path_query, '?');
    size_t pl = q ? (size_t)(q - path_query) : strlen(path_query);
    if (pl >= sizeof path) return SL_ETOOBIG;
    memcpy(path, path_query, pl);
    path[pl] = '\0';
    http_header hs[] = {{"host", c->hostport}, {"x-amz-date", amz_date}};
    http_request r;
    memset(&r, 0, sizeof r);
    r.method = method;
    r.path = path;
    r.query = q ? q + 1 : "";
    r.headers = hs;
    r.nheaders = 2;
    r.body = body;
    r.body_len = len;
    return rt_sigv4_authorization(&r, c->akid, c->secret, c->region, service, amz_date,
                                  "host;x-amz-date", out, cap);
}

int cli__http(cli_ctx *c, const char *method, const char *path_query, const char *service,
              const char *const *headers, const void *body, size_t len, long timeout_s,
              cli_resp *out)
{
    CURL *h = c->curl;
    struct curl_slist *hl = NULL;
    body_buf b = {0};
    char url[4096], amz_date[32], auth[1024], line[1200];
    time_t now = time(NULL);
    struct tm tm;
    CURLcode cc;
    int rc = -1;

    memset(out, 0, sizeof *out);
    snprintf(url, sizeof url, "%s%s", c->endpoint, path_query);
    gmtime_r(&now, &tm);
    strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
    if (authorization(c, method, path_query, service, amz_date, body ? body : "", len, auth,
                      sizeof auth) != 0) {
        fprintf(stderr, "sluice: cannot sign the request\n");
        return -1;
    }
    snprintf(line, sizeof line, "Authorization: %s", auth);
    hl = curl_slist_append(hl, line);
    snprintf(line, sizeof line, "X-Amz-Date: %s", amz_date);
    hl = curl_slist_append(hl, line);
    hl = curl_slist_append(hl, "Expect:");
    for (size_t i = 0; headers && headers[i]; i++) hl = curl_slist_append(hl, headers[i]);

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "sluice-cli");
    if (!strcmp(method, "GET")) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (!strcmp(method, "POST") || body) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
        if (strcmp(method, "POST")) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    cc = curl_easy_perform(h);
    curl_slist_free_all(hl);
    if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) {
        if (!c->unreachable_reported)
            fprintf(stderr, "sluice: cannot reach the daemon at %s \xe2\x80\x94 start it with: "
                            "sluice serve\n", c->endpoint);
        c->unreachable_reported = true;
        goto out;
    }
    if (cc != CURLE_OK) {
        if (!(cc == CURLE_ABORTED_BY_CALLBACK || (cli__stop && cc == CURLE_RECV_ERROR)))
            fprintf(stderr, "sluice: %s %s: %s\n", method, url, curl_easy_strerror(cc));
        goto out;
    }
    if (b.oom) {
        fprintf(stderr, "sluice: out of memory\n");
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    out->body = b.p ? b.p : sl_strdup("");
    out->len = b.len;
    b.p = NULL;
    rc = out->body ? 0 : -1;
out:
    sl_free(b.p);
    return rc;
}

void cli__report(const cli_err *err)
{
    if (err->type[0]) fprintf(stderr, "sluice: %s: %s\n", err->type, err->msg);
    else fprintf(stderr, "sluice: %s\n", err->msg);
}

int cli__status(int rc, const cli_err *err)
{
    if (rc == 0) return CLI_OK;
    if (rc > 0) cli__report(err);
    return CLI_FAIL;
}

/* Fills err from an error response of either protocol: Kinesis {"__type","message"}, Lambda
 * x-amzn-ErrorType + {"message"|"Message"}. */
static void error_from(const cli_resp *r, cli_err *err)
{
    cJSON *o = r->len ? cJSON_ParseWithLength(r->body, r->len) : NULL;
    const char *type = r->err_type[0] ? r->err_type : cli__jstr(o, "__type");
    const char *msg = cli__jstr(o, "message");
    if (!*msg) msg = cli__jstr(o, "Message");
    const char *hash = strchr(type, '#'); /* "com.amazonaws...#Type" */
    memset(err, 0, sizeof *err);
    err->status = r->status;
    snprintf(err->type, sizeof err->type, "%s", hash ? hash + 1 : type);
    char *colon = strchr(err->type, ':'); /* x-amzn-ErrorType may carry ":http://..." */
    if (colon) *colon = '\0';
    if (*msg) snprintf(err->msg, sizeof err->msg, "%s", msg);
    else if (!o && r->len) snprintf(err->msg, sizeof err->msg, "HTTP %ld: %.200s", r->status,
                                    r->body);
    else snprintf(err->msg, sizeof err->msg, "HTTP %ld", r->status);
    if (!err->type[0] && r->status == 404) snprintf(err->type, sizeof err->type, "NotFound");
    cJSON_Delete(o);
}

static int finish_json(cli_resp *r, cJSON **resp, cli_err *err)
{
    int rc;
    if (r->status < 200 || r->status > 299) {
        error_from(r, err);
        rc = 1;
    } else if (!resp) {
        rc = 0;
    } else if (r->len == 0) {
        *resp = NULL;
        rc = 0;
    } else {
        *resp = cJSON_ParseWithLength(r->body, r->len);
        rc = 0;
        if (!*resp) {
            memset(err, 0, sizeof *err);
            err->status = r->status;
            snprintf(err->msg, sizeof err->msg, "the daemon sent a body that is not JSON");
            rc = 1;
        }
    }
    cli__resp_clear(r);
    return rc;
}

int cli__kinesis(cli_ctx *c, const char *op, const cJSON *req, cJSON **resp, cli_err *err)
{
    char target[128];
    char *body = req ? cJSON_PrintUnformatted(req) : NULL;
    const char *hdrs[] = {target, "Content-Type: application/x-amz-json-1.1", NULL};
    cli_resp r;
    int rc;

    if (resp) *resp = NULL;
    snprintf(target, sizeof target, "X-Amz-Target: " KINESIS_TARGET "%s", op);
    rc = cli__http(c, "POST", "/", "kinesis", hdrs, body ? body : "{}", body ? strlen(body) : 2,
                   60, &r);
    cJSON_free(body);
    if (rc != 0) return -1;
    return finish_json(&r, resp, err);
}

int cli__lambda(cli_ctx *c, const char *method, const char *path, const cJSON *req,
                cJSON **resp, cli_err *err)
{
    char *body = req ? cJSON_PrintUnformatted(req) : NULL;
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    cli_resp r;
    int rc;

    if (resp) *resp = NULL;
    rc = cli__http(c, method, path, "lambda", hdrs, body, body ? strlen(body) : 0, 120, &r);
    cJSON_free(body);
    if (rc != 0) return -1;
    return finish_json(&r, resp, err);
}

int cli__stream_arn(cli_ctx *c, const char *stream, char *arn, size_t len, cli_err *err)
{
    cJSON *req, *resp = NULL;
    int rc;
    if (!strncmp(stream, "arn:", 4)) {
        snprintf(arn, len, "%s", stream);
        return 0;
    }
    req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "StreamName", stream);
    rc = cli__kinesis(c, "DescribeStreamSummary", req, &resp, err);
    cJSON_Delete(req);
    if (rc == 0) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(resp, "StreamDescriptionSummary");
        snprintf(arn, len, "%s", cli__jstr(d, "StreamARN"));
    }
    cJSON_Delete(resp);
    return rc;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

static int setup(cli_ctx *c, const cli_args *a)
{
    const char *ep = cli__opt(a, "endpoint");
    const char *akid = getenv("SLUICE_ACCESS_KEY_ID");
    const char *secret = getenv("SLUICE_SECRET_ACCESS_KEY");
    const char *region = getenv("SLUICE_REGION");

    if (!ep) ep = getenv("SLUICE_ENDPOINT");
    if (!ep || !*ep) ep = DEFAULT_ENDPOINT;
    if (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8)) {
        fprintf(stderr, "sluice: --endpoint must be an http:// or https:// URL, got '%s'\n", ep);
        return CLI_USAGE;
    }
    snprintf(c->endpoint, sizeof c->endpoint, "%s", ep);
    size_t n = strlen(c->endpoint);
    while (n > 8 && c->endpoint[n - 1] == '/') c->endpoint[--n] = '\0';
    const char *hp = strstr(c->endpoint, "://") + 3;
    snprintf(c->hostport, sizeof c->hostport, "%.*s", (int)strcspn(hp, "/"), hp);
    c->json = cli__flag(a, "json");
    c->tty = isatty(STDOUT_FILENO);
    c->err_tty = isatty(STDERR_FILENO);
    snprintf(c->region, sizeof c->region, "%s", region && *region ? region : "us-east-1");
    if (akid && *akid && secret && *secret) {
        c->sign = true;
        snprintf(c->akid, sizeof c->akid, "%s", akid);
        snprintf(c->secret, sizeof c->secret, "%s", secret);
    }
    c->curl = curl_easy_init();
    if (!c->curl) {
        fprintf(stderr, "sluice: cannot initialise libcurl\n");
        return CLI_FAIL;
    }
    return CLI_OK;
}

static void on_signal(int sig)
{
    (void)sig;
    cli__stop = 1;
}

static void group_help(const char *group, FILE *f)
{
    fprintf(f, "usage: sluice %s <command> [options]\n\ncommands:\n", group);
    for (size_t g = 0; g < CLI_NGROUPS; g++)
        for (const cli_cmd *cmd = groups[g]; cmd->name; cmd++)
            if (cmd->group && !strcmp(cmd->group, group))
                fprintf(f, "  %-10s %s\n", cmd->name, cmd->summary);
    fprintf(f, "\nsluice %s <command> --help shows a command's options.\n", group);
}

static bool is_group(const char *name)
{
    for (size_t g = 0; g < CLI_NGROUPS; g++)
        for (const cli_cmd *cmd = groups[g]; cmd->name; cmd++)
            if (cmd->group && !strcmp(cmd->group, name)) return true;
    return false;
}

static const cli_cmd *find_cmd(const char *group, const char *name)
{
    for (size_t g = 0; g < CLI_NGROUPS; g++)
        for (const cli_cmd *cmd = groups[g]; cmd->name; cmd++) {
            if (!strcmp(cmd->name, name) &&
                ((!group && !cmd->group) || (group && cmd->group && !strcmp(cmd->group, group))))
                return cmd;
        }
    return NULL;
}

int cli_main(int argc, char **argv)
{
    const cli_cmd *cmd;
    cli_args a;
    cli_ctx c;
    int rest = 1, rc;

    if (argc < 1) return CLI_USAGE;
    if (is_group(argv[0])) {
        if (argc < 2 || argv[1][0] == '-') {
            bool h = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
            if (!h) fprintf(stderr, "sluice: '%s' needs a command\n", argv[0]);
            group_help(argv[0], h ? stdout : stderr);
            return h ? CLI_OK : CLI_USAGE;
        }
        cmd = find_cmd(argv[0], argv[1]);
        if (!cmd) {
            fprintf(stderr, "sluice: unknown command '%s %s'\n", argv[0], argv[1]);
            group_help(argv[0], stderr);
            return CLI_USAGE;
        }
        rest = 2;
    } else {
        cmd = find_cmd(NULL, argv[0]);
        if (!cmd) {
            fprintf(stderr, "sluice: unknown command '%s' (see: sluice --help)\n", argv[0]);
            return CLI_USAGE;
        }
    }
    rc = parse_args(cmd, argc - rest, argv + rest, &a);
    if (rc != CLI_OK) {
        args_free(&a);
        return rc < 0 ? CLI_OK : rc;
    }
    memset(&c, 0, sizeof c);
    rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? setup(&c, &a) : CLI_FAIL;
    if (rc == CLI_OK) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal; /* no SA_RESTART: sleeps and reads end at Ctrl-C */
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        rc = cmd->run(&c, &a);
    }
    fflush(stdout);
    cJSON_Delete(c.actions);
    if (c.curl) curl_easy_cleanup(c.curl);
    curl_global_cleanup();
    args_free(&a);
    return rc;
}

void cli_print_commands(FILE *f)
{
    for (size_t g = 0; g < CLI_NGROUPS; g++)
        for (const cli_cmd *cmd = groups[g]; cmd->name; cmd++) {
            char label[64];
            cmd_label(cmd, label, sizeof label);
            fprintf(f, "  %-14s %s\n", label, cmd->summary);
        }
}

/* ---- base64 (libcrypto) --------------------------------------------------------------------- */

char *cli__b64enc(const void *p, size_t n, size_t *outlen)
{
    char *out = sl_malloc(4 * ((n + 2) / 3) + 1);
    if (!out) return NULL;
    int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    out[len] = '\0';
    if (outlen) *outlen = (size_t)len;
    return out;
}

int cli__b64dec(const char *s, uint8_t **out, size_t *outlen)
{
    size_t n = strlen(s);
    uint8_t *buf;
    int len;
    if (n % 4) return SL_EINVAL;
    buf = sl_malloc(n / 4 * 3 + 1);
    if (!buf) return SL_ENOMEM;
    len = n ? EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n) : 0;
    if (len < 0) {
        sl_free(buf);
        return SL_EINVAL;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes */
    if (n && s[n - 1] == '=') len--;
    if (n > 1 && s[n - 2] == '=') len--;
    buf[len] = '\0';
    *out = buf;
    *outlen = (size_t)len;
    return 0;
}
