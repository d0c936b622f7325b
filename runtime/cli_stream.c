/* cli_stream.c — `sluice stream create|list|describe|delete|split|merge|scale`, `put`, `tail`:
 * the Kinesis JSON API over HTTP, as aws-cli would call it. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/sl_common.h"
#include "runtime/cli_int.h"

#define PUT_BATCH_RECORDS 500
#define PUT_BATCH_BYTES (5u * 1024 * 1024)
#define PUT_ATTEMPTS 6

/* ---- shared --------------------------------------------------------------------------------- */

static cJSON *name_req(const char *stream)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "StreamName", stream);
    return req;
}

/* "7" -> "shardId-000000000007"; anything else is passed through. */
static void shard_id_arg(const char *arg, char *out, size_t len)
{
    long n;
    if (cli__parse_long(arg, 0, 4294967295L, &n)) snprintf(out, len, "shardId-%012ld", n);
    else snprintf(out, len, "%s", arg);
}

static int describe_summary(cli_ctx *c, const char *stream, cJSON **summary, cli_err *err)
{
    cJSON *req = name_req(stream), *resp = NULL;
    int rc = cli__kinesis(c, "DescribeStreamSummary", req, &resp, err);
    cJSON_Delete(req);
    *summary = NULL;
    if (rc == 0) {
        *summary = cJSON_DetachItemFromObjectCaseSensitive(resp, "StreamDescriptionSummary");
        if (!*summary) *summary = cJSON_CreateObject();
    }
    cJSON_Delete(resp);
    return rc;
}

/* Every shard of the stream (ListShards, all pages) as one array. */
static int list_shards(cli_ctx *c, const char *stream, cJSON **shards, cli_err *err)
{
    cJSON *all = cJSON_CreateArray();
    char *token = NULL;
    int rc;
    for (;;) {
        cJSON *req = cJSON_CreateObject(), *resp = NULL;
        if (token) cJSON_AddStringToObject(req, "NextToken", token);
        else cJSON_AddStringToObject(req, "StreamName", stream);
        cJSON_AddNumberToObject(req, "MaxResults", 1000);
        rc = cli__kinesis(c, "ListShards", req, &resp, err);
        cJSON_Delete(req);
        sl_free(token);
        token = NULL;
        if (rc != 0) break;
        cJSON *arr = cJSON_GetObjectItemCaseSensitive(resp, "Shards"), *s;
        while (arr && (s = cJSON_DetachItemFromArray(arr, 0))) cJSON_AddItemToArray(all, s);
        const char *next = cli__jstr(resp, "NextToken");
        if (*next) token = sl_strdup(next);
        cJSON_Delete(resp);
        if (!token) break;
    }
    if (rc != 0) {
        cJSON_Delete(all);
        return rc;
    }
    *shards = all;
    return 0;
}

static bool shard_closed(const cJSON *shard)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(shard, "SequenceNumberRange");
    return *cli__jstr(r, "EndingSequenceNumber") != '\0';
}

/* Polls DescribeStreamSummary until ACTIVE (progress on a terminal); label e.g. "scaling". */
static int wait_active(cli_ctx *c, const char *stream, const char *label, cli_err *err)
{
    int64_t t0 = cli__now_ms();
    for (;;) {
        cJSON *sum = NULL;
        int rc = describe_summary(c, stream, &sum, err);
        if (rc != 0) return rc;
        const char *status = cli__jstr(sum, "StreamStatus");
        int open = (int)cli__jnum(sum, "OpenShardCount", 0);
        bool active = !strcmp(status, "ACTIVE");
        cli__progress(c, active, "%s %s: %s, %d open shard%s (%.1fs)", label, stream, status,
                      open, open == 1 ? "" : "s", (double)(cli__now_ms() - t0) / 1000.0);
        cJSON_Delete(sum);
        if (active) return 0;
        if (cli__stop) {
            memset(err, 0, sizeof *err);
            snprintf(err->msg, sizeof err->msg, "interrupted while %s is %s", stream, status);
            return 1;
        }
        cli__sleep_ms(100);
    }
}

/* ---- stream create/list/describe/delete ----------------------------------------------------- */

static int stream_create(cli_ctx *c, const cli_args *a)
{
    const char *name = a->pos[0];
    bool on_demand = cli__flag(a, "on-demand"), has_shards = false, has_ret = false;
    long shards = on_demand ? 4 : 1, retention = 24;
    cli_err err;
    cJSON *req, *sum = NULL;
    int rc;

    if (cli__opt_long(a, "shards", 1, 100000, &shards, &has_shards) ||
        cli__opt_long(a, "retention", 24, 8760, &retention, &has_ret))
        return CLI_USAGE;
    req = name_req(name);
    if (!on_demand || has_shards) cJSON_AddNumberToObject(req, "ShardCount", (double)shards);
    if (on_demand)
        cJSON_AddStringToObject(cJSON_AddObjectToObject(req, "StreamModeDetails"), "StreamMode",
                                "ON_DEMAND");
    rc = cli__kinesis(c, "CreateStream", req, NULL, &err);
    cJSON_Delete(req);
    if (rc == 0) rc = wait_active(c, name, "creating", &err);
    if (rc == 0 && retention != 24) {
        req = name_req(name);
        cJSON_AddNumberToObject(req, "RetentionPeriodHours", (double)retention);
        rc = cli__kinesis(c, "IncreaseStreamRetentionPeriod", req, NULL, &err);
        cJSON_Delete(req);
        if (rc == 0) rc = wait_active(c, name, "updating", &err);
    }
    if (rc == 0) rc = describe_summary(c, name, &sum, &err);
    if (rc != 0) return cli__status(rc, &err);
    if (c->json) cli__print_json(sum);
    else
        printf("created stream %s: %d shard%s, %s, retention %dh\n", name,
               (int)cli__jnum(sum, "OpenShardCount", 0),
               cli__jnum(sum, "OpenShardCount", 0) == 1 ? "" : "s",
               cli__jstr(cJSON_GetObjectItemCaseSensitive(sum, "StreamModeDetails"),
                         "StreamMode"),
               (int)cli__jnum(sum, "RetentionPeriodHours", 24));
    cJSON_Delete(sum);
    return CLI_OK;
}

static int stream_list(cli_ctx *c, const cli_args *a)
{
    cJSON *names = cJSON_CreateArray(), *out = cJSON_CreateArray();
    char *start = NULL;
    cli_err err;
    int rc = 0;
    (void)a;
    for (;;) {
        cJSON *req = cJSON_CreateObject(), *resp = NULL, *it;
        cJSON_AddNumberToObject(req, "Limit", 1000);
        if (start) cJSON_AddStringToObject(req, "ExclusiveStartStreamName", start);
        rc = cli__kinesis(c, "ListStreams", req, &resp, &err);
        cJSON_Delete(req);
        sl_free(start);
        start = NULL;
        if (rc != 0) break;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(resp, "StreamNames"))
        {
            if (!cJSON_IsString(it)) continue;
            cJSON_AddItemToArray(names, cJSON_CreateString(it->valuestring));
            sl_free(start);
            start = sl_strdup(it->valuestring);
        }
        bool more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "HasMoreStreams"));
        cJSON_Delete(resp);
        if (!more || !start) break;
    }
    sl_free(start);
    const cJSON *it;
    cJSON_ArrayForEach(it, names)
    {
        cJSON *sum = NULL;
        if (rc != 0) break;
        rc = describe_summary(c, it->valuestring, &sum, &err);
        if (rc == 1 && !strcmp(err.type, "ResourceNotFoundException")) {
            rc = 0; /* deleted meanwhile */
            continue;
        }
        if (rc == 0) cJSON_AddItemToArray(out, sum);
    }
    if (rc == 0) {
        if (c->json) {
            cli__print_json(out);
        } else if (cJSON_GetArraySize(out) == 0) {
            printf("no streams (create one with: sluice stream create NAME)\n");
        } else {
            size_t n = (size_t)cJSON_GetArraySize(out), r = 1;
            const char **cells = sl_calloc((n + 1) * 5, sizeof *cells);
            char(*nums)[2][24] = sl_calloc(n + 1, sizeof *nums);
            if (cells && nums) {
                const char *hdr[] = {"NAME", "STATUS", "MODE", "SHARDS", "RETENTION"};
                memcpy(cells, hdr, sizeof hdr);
                cJSON_ArrayForEach(it, out)
                {
                    snprintf(nums[r][0], 24, "%d", (int)cli__jnum(it, "OpenShardCount", 0));
                    snprintf(nums[r][1], 24, "%dh", (int)cli__jnum(it, "RetentionPeriodHours", 0));
                    cells[r * 5 + 0] = cli__jstr(it, "StreamName");
                    cells[r * 5 + 1] = cli__jstr(it, "StreamStatus");
                    cells[r * 5 + 2] = cli__jstr(
                        cJSON_GetObjectItemCaseSensitive(it, "StreamModeDetails"), "StreamMode");
                    cells[r * 5 + 3] = nums[r][0];
                    cells[r * 5 + 4] = nums[r][1];
                    r++;
                }
                cli__table(cells, r, 5);
            }
            sl_free(cells);
            sl_free(nums);
        }
    }
    cJSON_Delete(names);
    cJSON_Delete(out);
    return cli__status(rc, &err);
}

static int stream_describe(cli_ctx *c, const cli_args *a)
{
    const char *name = a->pos[0];
    cJSON *sum = NULL, *shards = NULL;
    cli_err err;
    int rc = describe_summary(c, name, &sum, &err);
    if (rc == 0) rc = list_shards(c, name, &shards, &err);
    if (rc != 0) {
        cJSON_Delete(sum);
        return cli__status(rc, &err);
    }
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "StreamDescriptionSummary", sum);
        cJSON_AddItemToObject(o, "Shards", shards);
        cli__print_json(o);
        cJSON_Delete(o);
        return CLI_OK;
    }
    printf("stream     %s\narn        %s\nstatus     %s\nmode       %s\nretention  %dh\n"
           "shards     %d open, %zu listed\n\n",
           cli__jstr(sum, "StreamName"), cli__jstr(sum, "StreamARN"),
           cli__jstr(sum, "StreamStatus"),
           cli__jstr(cJSON_GetObjectItemCaseSensitive(sum, "StreamModeDetails"), "StreamMode"),
           (int)cli__jnum(sum, "RetentionPeriodHours", 0),
           (int)cli__jnum(sum, "OpenShardCount", 0), (size_t)cJSON_GetArraySize(shards));
    size_t n = (size_t)cJSON_GetArraySize(shards), r = 1;
    const char **cells = sl_calloc((n + 1) * 5, sizeof *cells);
    char(*par)[64] = sl_calloc(n + 1, sizeof *par);
    if (cells && par) {
        const char *hdr[] = {"SHARD", "STATE", "PARENTS", "STARTING HASH KEY", "ENDING HASH KEY"};
        const cJSON *s;
        memcpy(cells, hdr, sizeof hdr);
        cJSON_ArrayForEach(s, shards)
        {
            const cJSON *hr = cJSON_GetObjectItemCaseSensitive(s, "HashKeyRange");
            const char *p1 = cli__jstr(s, "ParentShardId");
            const char *p2 = cli__jstr(s, "AdjacentParentShardId");
            snprintf(par[r], 64, "%s%s%s", *p1 ? p1 : "-", *p2 ? "+" : "", p2);
            cells[r * 5 + 0] = cli__jstr(s, "ShardId");
            cells[r * 5 + 1] = shard_closed(s) ? "CLOSED" : "OPEN";
            cells[r * 5 + 2] = par[r];
            cells[r * 5 + 3] = cli__jstr(hr, "StartingHashKey");
            cells[r * 5 + 4] = cli__jstr(hr, "EndingHashKey");
            r++;
        }
        cli__table(cells, r, 5);
    }
    sl_free(cells);
    sl_free(par);
    cJSON_Delete(sum);
    cJSON_Delete(shards);
    return CLI_OK;
}

static int stream_delete(cli_ctx *c, const cli_args *a)
{
    cJSON *req = name_req(a->pos[0]);
    cli_err err;
    cJSON_AddTrueToObject(req, "EnforceConsumerDeletion");
    int rc = cli__kinesis(c, "DeleteStream", req, NULL, &err);
    cJSON_Delete(req);
    if (rc != 0) return cli__status(rc, &err);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "StreamName", a->pos[0]);
        cJSON_AddStringToObject(o, "Deleted", "true");
        cli__print_json(o);
        cJSON_Delete(o);
    } else {
        printf("deleted stream %s\n", a->pos[0]);
    }
    return CLI_OK;
}

/* ---- resharding ----------------------------------------------------------------------------- */

typedef unsigned __int128 u128; /* hash keys are 128-bit; GCC/Clang's type avoids a bignum */

static bool parse_u128(const char *s, u128 *out)
{
    u128 v = 0;
    if (!*s || strlen(s) > 39) return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        u128 nv = v * 10 + (u128)(*s - '0');
        if (nv / 10 != v) return false;
        v = nv;
    }
    *out = v;
    return true;
}

static void format_u128(u128 v, char *out, size_t len)
{
    char tmp[48];
    size_t i = sizeof tmp - 1;
    tmp[i] = '\0';
    do {
        tmp[--i] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    snprintf(out, len, "%s", tmp + i);
}

static void print_shards_after(cli_ctx *c, const char *stream, const char *what)
{
    cJSON *shards = NULL;
    cli_err err;
    if (list_shards(c, stream, &shards, &err) != 0) return;
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "StreamName", stream);
        cJSON_AddStringToObject(o, "Result", what);
        cJSON_AddItemToObject(o, "Shards", shards);
        cli__print_json(o);
        cJSON_Delete(o);
        return;
    }
    printf("%s\nopen shards:", what);
    const cJSON *s;
    cJSON_ArrayForEach(s, shards)
    {
        if (!shard_closed(s)) printf(" %s", cli__jstr(s, "ShardId"));
    }
    printf("\n");
    cJSON_Delete(shards);
}

static int stream_split(cli_ctx *c, const cli_args *a)
{
    const char *stream = a->pos[0];
    char shard[128], key[64];
    const char *at = cli__opt(a, "at");
    cli_err err;
    int rc = 0;
    u128 v;

    shard_id_arg(a->pos[1], shard, sizeof shard);
    if (at) {
        if (!parse_u128(at, &v)) return cli__usage_error("stream split",
                                                         "--at must be a decimal hash key");
        snprintf(key, sizeof key, "%s", at);
    } else {
        cJSON *shards = NULL;
        const cJSON *s, *found = NULL;
        rc = list_shards(c, stream, &shards, &err);
        if (rc != 0) return cli__status(rc, &err);
        cJSON_ArrayForEach(s, shards)
        {
            if (!strcmp(cli__jstr(s, "ShardId"), shard)) found = s;
        }
        u128 lo, hi;
        const cJSON *hr = cJSON_GetObjectItemCaseSensitive(found, "HashKeyRange");
        if (!found || !parse_u128(cli__jstr(hr, "StartingHashKey"), &lo) ||
            !parse_u128(cli__jstr(hr, "EndingHashKey"), &hi)) {
            cJSON_Delete(shards);
            fprintf(stderr, "sluice: ResourceNotFoundException: Could not find shard %s in "
                            "stream %s.\n", shard, stream);
            return CLI_FAIL;
        }
        cJSON_Delete(shards);
        /* the middle: the first key of the upper half (lo + (hi-lo)/2 + 1 never overflows) */
        format_u128(lo + (hi - lo) / 2 + 1, key, sizeof key);
    }
    cJSON *req = name_req(stream);
    cJSON_AddStringToObject(req, "ShardToSplit", shard);
    cJSON_AddStringToObject(req, "NewStartingHashKey", key);
    rc = cli__kinesis(c, "SplitShard", req, NULL, &err);
    cJSON_Delete(req);
    if (rc == 0) rc = wait_active(c, stream, "splitting", &err);
    if (rc != 0) return cli__status(rc, &err);
    char what[256];
    snprintf(what, sizeof what, "split %s at hash key %s", shard, key);
    print_shards_after(c, stream, what);
    return CLI_OK;
}

static int stream_merge(cli_ctx *c, const cli_args *a)
{
    const char *stream = a->pos[0];
    char s1[128], s2[128], what[300];
    cli_err err;
    shard_id_arg(a->pos[1], s1, sizeof s1);
    shard_id_arg(a->pos[2], s2, sizeof s2);
    cJSON *req = name_req(stream);
    cJSON_AddStringToObject(req, "ShardToMerge", s1);
    cJSON_AddStringToObject(req, "AdjacentShardToMerge", s2);
    int rc = cli__kinesis(c, "MergeShards", req, NULL, &err);
    cJSON_Delete(req);
    if (rc == 0) rc = wait_active(c, stream, "merging", &err);
    if (rc != 0) return cli__status(rc, &err);
    snprintf(what, sizeof what, "merged %s and %s", s1, s2);
    print_shards_after(c, stream, what);
    return CLI_OK;
}

static int stream_scale(cli_ctx *c, const cli_args *a)
{
    const char *stream = a->pos[0];
    long target;
    cli_err err;
    cJSON *resp = NULL;
    char what[200];
    if (!cli__parse_long(a->pos[1], 1, 100000, &target))
        return cli__usage_error("stream scale", "N must be a shard count (1..100000), got '%s'",
                                a->pos[1]);
    cJSON *req = name_req(stream);
    cJSON_AddNumberToObject(req, "TargetShardCount", (double)target);
    cJSON_AddStringToObject(req, "ScalingType", "UNIFORM_SCALING");
    int rc = cli__kinesis(c, "UpdateShardCount", req, &resp, &err);
    cJSON_Delete(req);
    if (rc == 0) rc = wait_active(c, stream, "scaling", &err);
    if (rc != 0) {
        cJSON_Delete(resp);
        return cli__status(rc, &err);
    }
    snprintf(what, sizeof what, "scaled %s from %d to %d open shards", stream,
             (int)cli__jnum(resp, "CurrentShardCount", 0),
             (int)cli__jnum(resp, "TargetShardCount", (double)target));
    cJSON_Delete(resp);
    print_shards_after(c, stream, what);
    return CLI_OK;
}

/* ---- put ------------------------------------------------------------------------------------ */

typedef struct put_state {
    cli_ctx *c;
    const char *stream;
    const char *key;           /* fixed partition key or NULL */
    cJSON *batch;              /* Records array being filled */
    size_t batch_bytes;
    uint64_t total, failed, seq;
    cJSON *results;            /* per-record ShardId/SequenceNumber while small */
    int64_t t0;
    int64_t last_progress;
    bool progress;
    cli_err err;
    int rc;
} put_state;

static void put_add_result(put_state *p, const cJSON *r)
{
    if (!p->results) return;
    if (cJSON_GetArraySize(p->results) >= 1000) {
        cJSON_Delete(p->results);
        p->results = NULL;
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (*cli__jstr(r, "ErrorCode")) {
        cJSON_AddStringToObject(o, "ErrorCode", cli__jstr(r, "ErrorCode"));
        cJSON_AddStringToObject(o, "ErrorMessage", cli__jstr(r, "ErrorMessage"));
    } else {
        cJSON_AddStringToObject(o, "ShardId", cli__jstr(r, "ShardId"));
        cJSON_AddStringToObject(o, "SequenceNumber", cli__jstr(r, "SequenceNumber"));
    }
    cJSON_AddItemToArray(p->results, o);
}

/* Sends the batch; records the daemon refused for throttling are resent with backoff. */
static int put_flush(put_state *p)
{
    cJSON *records = p->batch;
    if (cJSON_GetArraySize(records) == 0 || p->rc) return p->rc;
    p->batch = cJSON_CreateArray();
    p->batch_bytes = 0;
    for (int attempt = 0; records && cJSON_GetArraySize(records) > 0; attempt++) {
        cJSON *req = name_req(p->stream), *resp = NULL, *retry = cJSON_CreateArray();
        cJSON_AddItemReferenceToObject(req, "Records", records);
        int rc = cli__kinesis(p->c, "PutRecords", req, &resp, &p->err);
        cJSON_Delete(req); /* a reference: records stay */
        if (rc != 0) {
            cJSON_Delete(retry);
            p->rc = rc;
            break;
        }
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(resp, "Records");
        const cJSON *r = res ? res->child : NULL, *rec = records->child;
        for (; r && rec; r = r->next, rec = rec->next) {
            const char *code = cli__jstr(r, "ErrorCode");
            if (*code && attempt + 1 < PUT_ATTEMPTS &&
                !strcmp(code, "ProvisionedThroughputExceededException")) {
                cJSON_AddItemToArray(retry, cJSON_Duplicate(rec, true));
                continue;
            }
            if (*code) p->failed++;
            put_add_result(p, r);
        }
        cJSON_Delete(resp);
        cJSON_Delete(records);
        records = retry;
        if (cJSON_GetArraySize(records) > 0) cli__sleep_ms(100L << attempt);
    }
    cJSON_Delete(records);
    if (p->progress && cli__now_ms() - p->last_progress >= 100) { /* at most 10 redraws/s */
        double s = (double)(cli__now_ms() - p->t0) / 1000.0;
        p->last_progress = cli__now_ms();
        cli__progress(p->c, false, "put %" PRIu64 " records to %s (%.0f/s)", p->total, p->stream,
                      s > 0 ? (double)p->total / s : 0.0);
    }
    return p->rc;
}

static int put_one(put_state *p, const char *data, size_t len)
{
    char key[64];
    char *b64 = cli__b64enc(data, len, NULL);
    if (!b64) return p->rc = -1;
    if (p->batch_bytes + len + 256 > PUT_BATCH_BYTES && put_flush(p)) {
        sl_free(b64);
        return p->rc;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "Data", b64);
    sl_free(b64);
    if (!p->key) /* no --key: spread records over the shards like a random key would */
        snprintf(key, sizeof key, "%" PRIx64 "-%" PRIu64, (uint64_t)p->t0, p->seq);
    p->seq++;
    cJSON_AddStringToObject(r, "PartitionKey", p->key ? p->key : key);
    cJSON_AddItemToArray(p->batch, r);
    p->batch_bytes += len + 64;
    p->total++;
    if (cJSON_GetArraySize(p->batch) >= PUT_BATCH_RECORDS) return put_flush(p);
    return p->rc;
}

static int put_lines(put_state *p, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (!cli__stop && (n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (n == 0) continue; /* blank lines are not records */
        if (put_one(p, line, (size_t)n)) break;
    }
    free(line);
    return p->rc;
}

static int cmd_put(cli_ctx *c, const cli_args *a)
{
    put_state p;
    const char *file = cli__opt(a, "file");
    FILE *f = NULL;

    memset(&p, 0, sizeof p);
    p.c = c;
    p.stream = a->pos[0];
    p.key = cli__opt(a, "key");
    p.batch = cJSON_CreateArray();
    p.results = cJSON_CreateArray();
    p.t0 = cli__now_ms();
    if (p.key && (!*p.key || strlen(p.key) > 256)) {
        cJSON_Delete(p.batch);
        cJSON_Delete(p.results);
        return cli__usage_error("put", "--key must be 1 to 256 characters");
    }
    if (a->npos > 1 && file) {
        cJSON_Delete(p.batch);
        cJSON_Delete(p.results);
        return cli__usage_error("put", "give records as arguments or --file, not both");
    }
    if (a->npos > 1) {
        for (int i = 1; i < a->npos && !p.rc; i++) put_one(&p, a->pos[i], strlen(a->pos[i]));
    } else {
        if (file && strcmp(file, "-")) {
            f = fopen(file, "r");
            if (!f) {
                fprintf(stderr, "sluice: cannot open %s: %s\n", file, strerror(errno));
                cJSON_Delete(p.batch);
                cJSON_Delete(p.results);
                return CLI_FAIL;
            }
        }
        p.progress = c->err_tty;
        if (!f && isatty(STDIN_FILENO))
            fprintf(stderr, "reading records from standard input, one per line (Ctrl-D ends)\n");
        put_lines(&p, f ? f : stdin);
        if (f) fclose(f);
    }
    put_flush(&p);
    if (p.progress) cli__progress(c, false, "%s", ""); /* clear it: the summary follows */
    int rc = p.rc;
    if (rc == 0) {
        if (c->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "RecordCount", (double)p.total);
            cJSON_AddNumberToObject(o, "FailedRecordCount", (double)p.failed);
            if (p.results) cJSON_AddItemReferenceToObject(o, "Records", p.results);
            cli__print_json(o);
            cJSON_Delete(o);
        } else if (p.total == 1 && p.results && p.failed == 0) {
            const cJSON *r = cJSON_GetArrayItem(p.results, 0);
            printf("put 1 record to %s: %s %s\n", p.stream, cli__jstr(r, "ShardId"),
                   cli__jstr(r, "SequenceNumber"));
        } else {
            printf("put %" PRIu64 " record%s to %s", p.total - p.failed,
                   p.total - p.failed == 1 ? "" : "s", p.stream);
            if (p.failed) printf(", %" PRIu64 " failed", p.failed);
            printf("\n");
        }
    }
    cJSON_Delete(p.batch);
    cJSON_Delete(p.results);
    if (rc != 0) return cli__status(rc, &p.err);
    if (p.failed) {
        fprintf(stderr, "sluice: %" PRIu64 " of %" PRIu64 " records were not accepted\n",
                p.failed, p.total);
        return CLI_FAIL;
    }
    return cli__stop && p.total == 0 ? CLI_FAIL : CLI_OK;
}

/* ---- tail ----------------------------------------------------------------------------------- */

enum tshard_state { T_NEW, T_READING, T_DONE };

typedef struct tshard {
    char id[64], parent[64], adjacent[64];
    char *iter;
    char last_seq[64];
    enum tshard_state st;
} tshard;

typedef struct tail_state {
    cli_ctx *c;
    const char *stream;
    bool latest;
    tshard *v;
    size_t n;
    long count, printed;
} tail_state;

static tshard *tail_find(tail_state *t, const char *id)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].id, id)) return &t->v[i];
    return NULL;
}

static int get_iterator(tail_state *t, tshard *s, const char *type, cli_err *err)
{
    cJSON *req = name_req(t->stream), *resp = NULL;
    cJSON_AddStringToObject(req, "ShardId", s->id);
    cJSON_AddStringToObject(req, "ShardIteratorType", type);
    if (!strcmp(type, "AFTER_SEQUENCE_NUMBER"))
        cJSON_AddStringToObject(req, "StartingSequenceNumber", s->last_seq);
    int rc = cli__kinesis(t->c, "GetShardIterator", req, &resp, err);
    cJSON_Delete(req);
    if (rc == 0) {
        sl_free(s->iter);
        s->iter = sl_strdup(cli__jstr(resp, "ShardIterator"));
        s->st = T_READING;
    }
    cJSON_Delete(resp);
    return rc;
}

/* Adds shards not seen yet and starts those whose parents are done (children after a reshard
 * are read from their first record, so per-key order holds across the split or merge). */
static int tail_refresh(tail_state *t, bool first, cli_err *err)
{
    cJSON *shards = NULL;
    const cJSON *s;
    int rc = list_shards(t->c, t->stream, &shards, err);
    if (rc != 0) return rc;
    cJSON_ArrayForEach(s, shards)
    {
        const char *id = cli__jstr(s, "ShardId");
        if (tail_find(t, id)) continue;
        tshard *nv = sl_realloc(t->v, (t->n + 1) * sizeof *nv);
        if (!nv) break;
        t->v = nv;
        tshard *ts = &t->v[t->n++];
        memset(ts, 0, sizeof *ts);
        snprintf(ts->id, sizeof ts->id, "%s", id);
        snprintf(ts->parent, sizeof ts->parent, "%s", cli__jstr(s, "ParentShardId"));
        snprintf(ts->adjacent, sizeof ts->adjacent, "%s", cli__jstr(s, "AdjacentParentShardId"));
        if (first && t->latest && shard_closed(s)) ts->st = T_DONE; /* history: not wanted */
    }
    cJSON_Delete(shards);
    for (size_t i = 0; i < t->n && rc == 0; i++) {
        tshard *ts = &t->v[i];
        if (ts->st != T_NEW) continue;
        tshard *p1 = ts->parent[0] ? tail_find(t, ts->parent) : NULL;
        tshard *p2 = ts->adjacent[0] ? tail_find(t, ts->adjacent) : NULL;
        if ((p1 && p1->st != T_DONE) || (p2 && p2->st != T_DONE)) continue;
        rc = get_iterator(t, ts, first && t->latest ? "LATEST" : "TRIM_HORIZON", err);
    }
    return rc;
}

static bool valid_utf8(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t b = p[i];
        size_t k = b < 0x80 ? 0 : (b & 0xE0) == 0xC0 ? 1 : (b & 0xF0) == 0xE0 ? 2
                                : (b & 0xF8) == 0xF0 ? 3 : 9;
        if (b == 0 || k == 9 || i + k >= n + (k ? 0 : 1)) return false;
        for (size_t j = 1; j <= k; j++)
            if ((p[i + j] & 0xC0) != 0x80) return false;
        i += k + 1;
    }
    return true;
}

static void tail_print(tail_state *t, const tshard *s, const cJSON *rec)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (cli__b64dec(cli__jstr(rec, "Data"), &data, &len) != 0) return;
    if (t->c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "ShardId", s->id);
        cJSON_AddStringToObject(o, "SequenceNumber", cli__jstr(rec, "SequenceNumber"));
        cJSON_AddStringToObject(o, "PartitionKey", cli__jstr(rec, "PartitionKey"));
        cJSON_AddNumberToObject(o, "ApproximateArrivalTimestamp",
                                cli__jnum(rec, "ApproximateArrivalTimestamp", 0));
        if (valid_utf8(data, len)) cJSON_AddStringToObject(o, "Data", (const char *)data);
        else cJSON_AddStringToObject(o, "DataBase64", cli__jstr(rec, "Data"));
        char *line = cJSON_PrintUnformatted(o);
        if (line) puts(line);
        cJSON_free(line);
        cJSON_Delete(o);
    } else {
        fwrite(data, 1, len, stdout);
        if (!len || data[len - 1] != '\n') fputc('\n', stdout);
    }
    sl_free(data);
    t->printed++;
}

static int cmd_tail(cli_ctx *c, const cli_args *a)
{
    tail_state t;
    const char *from = cli__opt(a, "from");
    long timeout = 0;
    cli_err err;
    int rc;

    memset(&t, 0, sizeof t);
    t.c = c;
    t.stream = a->pos[0];
    if (from && strcasecmp(from, "trim") && strcasecmp(from, "latest") &&
        strcasecmp(from, "trim_horizon"))
        return cli__usage_error("tail", "--from must be trim or latest, got '%s'", from);
    t.latest = from && !strcasecmp(from, "latest");
    if (cli__opt_long(a, "count", 1, 1000000000L, &t.count, NULL) ||
        cli__opt_long(a, "timeout", 1, 86400L * 365, &timeout, NULL))
        return CLI_USAGE;
    int64_t deadline = timeout ? cli__now_ms() + timeout * 1000 : 0;
    int64_t next_refresh = cli__now_ms() + 2000;

    rc = tail_refresh(&t, true, &err);
    while (rc == 0 && !cli__stop) {
        bool got = false, closed = false;
        for (size_t i = 0; i < t.n && rc == 0 && !cli__stop; i++) {
            tshard *s = &t.v[i];
            if (s->st != T_READING) continue;
            cJSON *req = cJSON_CreateObject(), *resp = NULL;
            cJSON_AddStringToObject(req, "ShardIterator", s->iter);
            if (t.count) cJSON_AddNumberToObject(req, "Limit", 10000);
            rc = cli__kinesis(c, "GetRecords", req, &resp, &err);
            cJSON_Delete(req);
            if (rc == 1 && !strcmp(err.type, "ProvisionedThroughputExceededException")) {
                rc = 0;
                continue;
            }
            if (rc == 1 && !strcmp(err.type, "ExpiredIteratorException")) {
                rc = get_iterator(&t, s, s->last_seq[0] ? "AFTER_SEQUENCE_NUMBER"
                                                         : "TRIM_HORIZON", &err);
                continue;
            }
            if (rc != 0) break;
            const cJSON *rec;
            cJSON_ArrayForEach(rec, cJSON_GetObjectItemCaseSensitive(resp, "Records"))
            {
                if (t.count && t.printed >= t.count) break;
                tail_print(&t, s, rec);
                snprintf(s->last_seq, sizeof s->last_seq, "%s",
                         cli__jstr(rec, "SequenceNumber"));
                got = true;
            }
            const char *next = cli__jstr(resp, "NextShardIterator");
            if (*next) {
                sl_free(s->iter);
                s->iter = sl_strdup(next);
            } else {
                s->st = T_DONE; /* closed and read to its end: children may start */
                closed = true;
            }
            cJSON_Delete(resp);
            if (t.count && t.printed >= t.count) break;
        }
        fflush(stdout);
        if (rc != 0 || (t.count && t.printed >= t.count)) break;
        if (deadline && cli__now_ms() >= deadline) break;
        if (closed || cli__now_ms() >= next_refresh) {
            rc = tail_refresh(&t, false, &err);
            next_refresh = cli__now_ms() + 2000;
            if (closed) continue;
        }
        if (!got) cli__sleep_ms(200); /* GetRecords allows 5 calls per shard per second */
    }
    for (size_t i = 0; i < t.n; i++) sl_free(t.v[i].iter);
    sl_free(t.v);
    if (rc != 0) return cli__status(rc, &err);
    return CLI_OK;
}

/* ---- table ---------------------------------------------------------------------------------- */

static const cli_opt create_opts[] = {
    {"shards", 0, "N", "number of shards (default 1; 4 with --on-demand)"},
    {"on-demand", 0, NULL, "ON_DEMAND capacity mode"},
    {"retention", 0, "HOURS", "retention period, 24..8760 (default 24)"},
    {0},
};
static const cli_opt split_opts[] = {
    {"at", 0, "HASHKEY", "new starting hash key (default: the middle of the shard's range)"},
    {0},
};
static const cli_opt put_opts[] = {
    {"key", 'k', "KEY", "partition key for every record (default: a distinct key per record)"},
    {"file", 'f', "FILE", "read records from FILE, one per line ('-' = stdin)"},
    {0},
};
static const cli_opt tail_opts[] = {
    {"from", 0, "trim|latest", "start at the oldest record (trim, default) or only new ones"},
    {"count", 'n', "N", "stop after N records"},
    {"timeout", 't', "SECONDS", "stop after this many seconds"},
    {0},
};
static const cli_opt no_opts[] = {{0}};

const cli_cmd cli__stream_cmds[] = {
    {"stream", "create", "NAME [--shards N] [--on-demand] [--retention HOURS]",
     "Create a stream and wait until it is ACTIVE.", create_opts, 1, 1, stream_create},
    {"stream", "list", "", "List streams with status, mode, open shards and retention.", no_opts,
     0, 0, stream_list},
    {"stream", "describe", "NAME", "Show a stream and every shard (open and closed).", no_opts, 1,
     1, stream_describe},
    {"stream", "delete", "NAME", "Delete a stream and its records.", no_opts, 1, 1,
     stream_delete},
    {"stream", "split", "NAME SHARD [--at HASHKEY]",
     "Split a shard in two (SHARD may be a shard id or its number).", split_opts, 2, 2,
     stream_split},
    {"stream", "merge", "NAME SHARD ADJACENT", "Merge two adjacent shards.", no_opts, 3, 3,
     stream_merge},
    {"stream", "scale", "NAME N",
     "Change the number of open shards (UpdateShardCount) and wait until ACTIVE.", no_opts, 2, 2,
     stream_scale},
    {NULL, "put", "STREAM [DATA...] [--key K] [--file F]",
     "Put records: each DATA argument, or each line of --file or of standard input, in batches "
     "of 500.",
     put_opts, 1, -1, cmd_put},
    {NULL, "tail", "STREAM [--from trim|latest] [--count N] [--timeout S]",
     "Print the decoded records of every shard as they arrive, following resharding; Ctrl-C "
     "stops.",
     tail_opts, 1, 1, cmd_tail},
    {0},
};
