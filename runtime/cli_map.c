/* cli_map.c — `sluice map create|list|get|update|enable|disable|delete` (the Lambda
 * event-source-mapping REST API, SPEC 5.4) and `sluice dlq read` (local on-failure queues). */
#include <stdlib.h>
#include <string.h>

#include "broker/sl_common.h"
#include "runtime/cli_int.h"

#define ESM_PATH "/2015-03-31/event-source-mappings"

/* ---- options -> request --------------------------------------------------------------------- */

static const struct {
    const char *opt, *field;
    long lo, hi;
} int_opts[] = {
    {"batch-size", "BatchSize", 1, 10000},
    {"window", "MaximumBatchingWindowInSeconds", 0, 300},
    {"parallelization", "ParallelizationFactor", 1, 10},
    {"max-retries", "MaximumRetryAttempts", -1, 10000},
    {"max-age", "MaximumRecordAgeInSeconds", -1, 604800},
    {"tumbling-window", "TumblingWindowInSeconds", 0, 900},
};
#define NINT (sizeof int_opts / sizeof int_opts[0])

/* Adds the tunables given on the command line to req. CLI_OK or CLI_USAGE (reported). */
static int map_options(const char *cmd, const cli_args *a, cJSON *req)
{
    const char **filters = NULL;
    int nf;
    for (size_t i = 0; i < NINT; i++) {
        long v;
        bool given;
        if (cli__opt_long(a, int_opts[i].opt, int_opts[i].lo, int_opts[i].hi, &v, &given))
            return CLI_USAGE;
        if (given) cJSON_AddNumberToObject(req, int_opts[i].field, (double)v);
    }
    if (cli__flag(a, "bisect") && cli__flag(a, "no-bisect"))
        return cli__usage_error(cmd, "--bisect and --no-bisect contradict each other");
    if (cli__flag(a, "bisect")) cJSON_AddTrueToObject(req, "BisectBatchOnFunctionError");
    if (cli__flag(a, "no-bisect")) cJSON_AddFalseToObject(req, "BisectBatchOnFunctionError");
    if (cli__flag(a, "report-failures") && cli__flag(a, "no-report-failures"))
        return cli__usage_error(cmd, "--report-failures and --no-report-failures contradict "
                                     "each other");
    if (cli__flag(a, "report-failures")) {
        cJSON *rt = cJSON_AddArrayToObject(req, "FunctionResponseTypes");
        cJSON_AddItemToArray(rt, cJSON_CreateString("ReportBatchItemFailures"));
    }
    if (cli__flag(a, "no-report-failures")) cJSON_AddArrayToObject(req, "FunctionResponseTypes");
    nf = cli__nvals(a, "filter", &filters);
    if (nf > 0 || cli__flag(a, "clear-filters")) {
        if (nf > 0 && cli__flag(a, "clear-filters"))
            return cli__usage_error(cmd, "--filter and --clear-filters contradict each other");
        cJSON *list = cJSON_AddArrayToObject(cJSON_AddObjectToObject(req, "FilterCriteria"),
                                             "Filters");
        for (int i = 0; i < nf; i++) {
            cJSON *check = cJSON_Parse(filters[i]);
            if (!cJSON_IsObject(check)) {
                cJSON_Delete(check);
                return cli__usage_error(cmd, "--filter must be a JSON object pattern, got '%s'",
                                        filters[i]);
            }
            cJSON_Delete(check);
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "Pattern", filters[i]);
            cJSON_AddItemToArray(list, f);
        }
    }
    const char *dest = cli__opt(a, "on-failure");
    if (dest) {
        cJSON *of = cJSON_AddObjectToObject(cJSON_AddObjectToObject(req, "DestinationConfig"),
                                            "OnFailure");
        cJSON_AddStringToObject(of, "Destination", strcmp(dest, "none") ? dest : "");
    }
    if (cli__flag(a, "disabled") && cli__flag(a, "enabled"))
        return cli__usage_error(cmd, "--enabled and --disabled contradict each other");
    if (cli__flag(a, "disabled")) cJSON_AddFalseToObject(req, "Enabled");
    if (cli__flag(a, "enabled")) cJSON_AddTrueToObject(req, "Enabled");
    return CLI_OK;
}

/* ---- output --------------------------------------------------------------------------------- */

static const char *short_stream(const char *arn)
{
    const char *p = strstr(arn, ":stream/");
    return p ? p + strlen(":stream/") : arn;
}

static const char *short_function(const char *arn)
{
    const char *p = strstr(arn, ":function:");
    return p ? p + strlen(":function:") : arn;
}

static void print_mapping(const cJSON *m)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(m, "FilterCriteria"), *it;
    const char *dest = cli__jstr(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "DestinationConfig"),
                                         "OnFailure"),
        "Destination");
    bool report = false;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(m, "FunctionResponseTypes"))
    {
        if (cJSON_IsString(it) && !strcmp(it->valuestring, "ReportBatchItemFailures"))
            report = true;
    }
    printf("uuid              %s\nstate             %s%s%s\nlast result       %s\n"
           "stream            %s\nfunction          %s\nstarting position %s\n"
           "batch size        %d\nbatching window   %d s\nparallelization   %d\n"
           "bisect on error   %s\nmax retries       %d%s\nmax record age    %d%s\n"
           "report failures   %s\ntumbling window   %d s\non failure        %s\n",
           cli__jstr(m, "UUID"), cli__jstr(m, "State"),
           *cli__jstr(m, "StateTransitionReason") ? " — " : "",
           cli__jstr(m, "StateTransitionReason"), cli__jstr(m, "LastProcessingResult"),
           cli__jstr(m, "EventSourceArn"), cli__jstr(m, "FunctionArn"),
           cli__jstr(m, "StartingPosition"), (int)cli__jnum(m, "BatchSize", 0),
           (int)cli__jnum(m, "MaximumBatchingWindowInSeconds", 0),
           (int)cli__jnum(m, "ParallelizationFactor", 1),
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "BisectBatchOnFunctionError"))
               ? "yes"
               : "no",
           (int)cli__jnum(m, "MaximumRetryAttempts", -1),
           cli__jnum(m, "MaximumRetryAttempts", -1) < 0 ? " (until the record expires)" : "",
           (int)cli__jnum(m, "MaximumRecordAgeInSeconds", -1),
           cli__jnum(m, "MaximumRecordAgeInSeconds", -1) < 0 ? " (no limit)" : " s",
           report ? "yes" : "no", (int)cli__jnum(m, "TumblingWindowInSeconds", 0),
           *dest ? dest : "-");
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(f, "Filters"))
    {
        printf("filter            %s\n", cli__jstr(it, "Pattern"));
    }
}

static void print_result(cli_ctx *c, const cJSON *m, const char *verb)
{
    if (c->json) {
        cli__print_json(m);
        return;
    }
    printf("%s mapping %s (%s -> %s), state %s\n", verb, cli__jstr(m, "UUID"),
           short_stream(cli__jstr(m, "EventSourceArn")),
           short_function(cli__jstr(m, "FunctionArn")), cli__jstr(m, "State"));
}

/* ---- commands ------------------------------------------------------------------------------- */

static int map_create(cli_ctx *c, const cli_args *a)
{
    char arn[512];
    const char *pos = cli__opt(a, "starting-position");
    const char *ts = cli__opt(a, "timestamp");
    cJSON *req = cJSON_CreateObject(), *resp = NULL;
    cli_err err;
    int rc;

    if (cli__flag(a, "enabled")) {
        cJSON_Delete(req);
        return cli__usage_error("map create", "mappings start enabled; use --disabled to not");
    }
    rc = map_options("map create", a, req);
    if (rc != CLI_OK) {
        cJSON_Delete(req);
        return rc;
    }
    if (!pos) pos = "TRIM_HORIZON";
    if (strcmp(pos, "TRIM_HORIZON") && strcmp(pos, "LATEST") && strcmp(pos, "AT_TIMESTAMP")) {
        cJSON_Delete(req);
        return cli__usage_error("map create",
                                "--starting-position must be TRIM_HORIZON, LATEST or AT_TIMESTAMP");
    }
    cJSON_AddStringToObject(req, "StartingPosition", pos);
    if (ts) {
        char *end;
        double t = strtod(ts, &end);
        if (*end || !*ts || t < 0) {
            cJSON_Delete(req);
            return cli__usage_error("map create", "--timestamp wants epoch seconds, got '%s'", ts);
        }
        cJSON_AddNumberToObject(req, "StartingPositionTimestamp", t);
    }
    rc = cli__stream_arn(c, a->pos[0], arn, sizeof arn, &err);
    if (rc == 0) {
        cJSON_AddStringToObject(req, "EventSourceArn", arn);
        cJSON_AddStringToObject(req, "FunctionName", a->pos[1]);
        rc = cli__lambda(c, "POST", ESM_PATH "/", req, &resp, &err);
    }
    cJSON_Delete(req);
    if (rc == 0) print_result(c, resp, "created");
    cJSON_Delete(resp);
    return cli__status(rc, &err);
}

/* Every mapping matching the filters (NULL: any), all pages. */
static int list_mappings(cli_ctx *c, const char *function, const char *stream_arn, cJSON **out,
                         cli_err *err)
{
    cJSON *all = cJSON_CreateArray();
    char *marker = NULL;
    int rc;
    for (;;) {
        char path[2048];
        size_t o = (size_t)snprintf(path, sizeof path, ESM_PATH "/?MaxItems=100");
        char *e;
        cJSON *resp = NULL, *m;
        if (function && (e = cli__escape(c, function))) {
            o += (size_t)snprintf(path + o, sizeof path - o, "&FunctionName=%s", e);
            sl_free(e);
        }
        if (stream_arn && (e = cli__escape(c, stream_arn))) {
            o += (size_t)snprintf(path + o, sizeof path - o, "&EventSourceArn=%s", e);
            sl_free(e);
        }
        if (marker && (e = cli__escape(c, marker))) {
            snprintf(path + o, sizeof path - o, "&Marker=%s", e);
            sl_free(e);
        }
        sl_free(marker);
        marker = NULL;
        rc = cli__lambda(c, "GET", path, NULL, &resp, err);
        if (rc != 0) break;
        cJSON *arr = cJSON_GetObjectItemCaseSensitive(resp, "EventSourceMappings");
        while (arr && (m = cJSON_DetachItemFromArray(arr, 0))) cJSON_AddItemToArray(all, m);
        if (*cli__jstr(resp, "NextMarker")) marker = sl_strdup(cli__jstr(resp, "NextMarker"));
        cJSON_Delete(resp);
        if (!marker) break;
    }
    if (rc != 0) {
        cJSON_Delete(all);
        return rc;
    }
    *out = all;
    return 0;
}

static int map_list(cli_ctx *c, const cli_args *a)
{
    const char *stream = cli__opt(a, "stream");
    char arn[512];
    cJSON *all = NULL;
    cli_err err;
    int rc = 0;
    if (stream) rc = cli__stream_arn(c, stream, arn, sizeof arn, &err);
    if (rc == 0) rc = list_mappings(c, cli__opt(a, "function"), stream ? arn : NULL, &all, &err);
    if (rc != 0) return cli__status(rc, &err);
    if (c->json) {
        cli__print_json(all);
    } else if (cJSON_GetArraySize(all) == 0) {
        printf("no mappings (create one with: sluice map create STREAM FUNCTION)\n");
    } else {
        size_t n = (size_t)cJSON_GetArraySize(all), r = 1;
        const char **cells = sl_calloc((n + 1) * 6, sizeof *cells);
        char(*nums)[16] = sl_calloc(n + 1, sizeof *nums);
        const cJSON *m;
        if (cells && nums) {
            const char *hdr[] = {"UUID", "STATE", "STREAM", "FUNCTION", "BATCH", "LAST RESULT"};
            memcpy(cells, hdr, sizeof hdr);
            cJSON_ArrayForEach(m, all)
            {
                snprintf(nums[r], 16, "%d", (int)cli__jnum(m, "BatchSize", 0));
                cells[r * 6 + 0] = cli__jstr(m, "UUID");
                cells[r * 6 + 1] = cli__jstr(m, "State");
                cells[r * 6 + 2] = short_stream(cli__jstr(m, "EventSourceArn"));
                cells[r * 6 + 3] = short_function(cli__jstr(m, "FunctionArn"));
                cells[r * 6 + 4] = nums[r];
                cells[r * 6 + 5] = cli__jstr(m, "LastProcessingResult");
                r++;
            }
            cli__table(cells, r, 6);
        }
        sl_free(cells);
        sl_free(nums);
    }
    cJSON_Delete(all);
    return CLI_OK;
}

static int uuid_path(cli_ctx *c, const char *uuid, char *path, size_t len)
{
    char *e = cli__escape(c, uuid);
    if (!e) return -1;
    snprintf(path, len, ESM_PATH "/%s", e);
    sl_free(e);
    return 0;
}

static int map_get(cli_ctx *c, const cli_args *a)
{
    char path[512];
    cJSON *resp = NULL;
    cli_err err;
    if (uuid_path(c, a->pos[0], path, sizeof path)) return CLI_FAIL;
    int rc = cli__lambda(c, "GET", path, NULL, &resp, &err);
    if (rc == 0) {
        if (c->json) cli__print_json(resp);
        else print_mapping(resp);
    }
    cJSON_Delete(resp);
    return cli__status(rc, &err);
}

/* PUT with the body; retried briefly while the mapping is in a transitional state. */
static int put_mapping(cli_ctx *c, const char *uuid, const cJSON *req, cJSON **resp,
                       cli_err *err)
{
    char path[512];
    int rc = -1;
    if (uuid_path(c, uuid, path, sizeof path)) return -1;
    for (int attempt = 0; attempt < 50; attempt++) {
        rc = cli__lambda(c, "PUT", path, req, resp, err);
        if (rc != 1 || (strcmp(err->type, "ResourceInUseException") &&
                        strcmp(err->type, "ResourceConflictException")))
            break;
        cli__sleep_ms(100);
    }
    return rc;
}

static int map_update(cli_ctx *c, const cli_args *a)
{
    cJSON *req = cJSON_CreateObject(), *resp = NULL;
    cli_err err;
    int rc = map_options("map update", a, req);
    const char *fn = cli__opt(a, "function");
    if (rc != CLI_OK) {
        cJSON_Delete(req);
        return rc;
    }
    if (fn) cJSON_AddStringToObject(req, "FunctionName", fn);
    if (!req->child) {
        cJSON_Delete(req);
        return cli__usage_error("map update", "nothing to change: give at least one option");
    }
    rc = put_mapping(c, a->pos[0], req, &resp, &err);
    cJSON_Delete(req);
    if (rc == 0) print_result(c, resp, "updated");
    cJSON_Delete(resp);
    return cli__status(rc, &err);
}

static int set_enabled(cli_ctx *c, const char *uuid, bool on)
{
    cJSON *req = cJSON_CreateObject(), *resp = NULL;
    cli_err err;
    cJSON_AddBoolToObject(req, "Enabled", on);
    int rc = put_mapping(c, uuid, req, &resp, &err);
    cJSON_Delete(req);
    if (rc == 0) print_result(c, resp, on ? "enabled" : "disabled");
    cJSON_Delete(resp);
    return cli__status(rc, &err);
}

static int map_enable(cli_ctx *c, const cli_args *a)
{
    return set_enabled(c, a->pos[0], true);
}

static int map_disable(cli_ctx *c, const cli_args *a)
{
    return set_enabled(c, a->pos[0], false);
}

static int map_delete(cli_ctx *c, const cli_args *a)
{
    char path[512];
    cJSON *resp = NULL;
    cli_err err;
    if (uuid_path(c, a->pos[0], path, sizeof path)) return CLI_FAIL;
    int rc = cli__lambda(c, "DELETE", path, NULL, &resp, &err);
    if (rc == 0) print_result(c, resp, "deleting");
    cJSON_Delete(resp);
    return cli__status(rc, &err);
}

/* ---- up: one declared mapping --------------------------------------------------------------- */

static bool reports_failures(const cJSON *m)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(m, "FunctionResponseTypes"))
    {
        if (cJSON_IsString(it) && !strcmp(it->valuestring, "ReportBatchItemFailures"))
            return true;
    }
    return false;
}

static bool same_filters(const cJSON *cur, const cJSON *want)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cur, "FilterCriteria"), "Filters");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(want, "FilterCriteria"), "Filters");
    if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b)) return false;
    for (const cJSON *x = a ? a->child : NULL, *y = b ? b->child : NULL; x && y;
         x = x->next, y = y->next) {
        const char *px = cli__jstr(x, "Pattern"), *py = cli__jstr(y, "Pattern");
        if (!strcmp(px, py)) continue;
        cJSON *jx = cJSON_Parse(px), *jy = cJSON_Parse(py);
        bool same = jx && jy && cJSON_Compare(jx, jy, true);
        cJSON_Delete(jx);
        cJSON_Delete(jy);
        if (!same) return false;
    }
    return true;
}

static const char *destination_of(const cJSON *m)
{
    return cli__jstr(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "DestinationConfig"),
                                         "OnFailure"),
        "Destination");
}

static bool state_enabled(const char *state)
{
    return !strcmp(state, "Enabled") || !strcmp(state, "Enabling") ||
           !strcmp(state, "Creating") || !strcmp(state, "Updating");
}

/* What differs ("" when nothing) between a deployed mapping and the wanted request. */
static void mapping_diff(const cJSON *cur, const cJSON *want, char *out, size_t len)
{
    static const char *const nums[] = {
        "BatchSize", "MaximumBatchingWindowInSeconds", "ParallelizationFactor",
        "MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "TumblingWindowInSeconds",
    };
    size_t o = 0;
    out[0] = '\0';
#define DIFF(...) o += (size_t)snprintf(out + o, o < len ? len - o : 0, __VA_ARGS__)
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        double a = cli__jnum(cur, nums[i], -2), b = cli__jnum(want, nums[i], -2);
        if (a != b) DIFF("%s%s %.0f -> %.0f", o ? ", " : "", nums[i], a, b);
    }
    bool ba = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cur, "BisectBatchOnFunctionError"));
    bool bb = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(want, "BisectBatchOnFunctionError"));
    if (ba != bb) DIFF("%sBisectBatchOnFunctionError %s", o ? ", " : "", bb ? "on" : "off");
    if (reports_failures(cur) != reports_failures(want))
        DIFF("%sReportBatchItemFailures %s", o ? ", " : "", reports_failures(want) ? "on" : "off");
    if (!same_filters(cur, want)) DIFF("%sFilterCriteria", o ? ", " : "");
    if (strcmp(destination_of(cur), destination_of(want)))
        DIFF("%sOnFailure %s", o ? ", " : "",
             *destination_of(want) ? destination_of(want) : "none");
    bool ea = state_enabled(cli__jstr(cur, "State"));
    bool eb = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(want, "Enabled"));
    if (ea != eb) DIFF("%s%s", o ? ", " : "", eb ? "enabled" : "disabled");
#undef DIFF
}

int cli__map_apply(cli_ctx *c, const char *stream, const char *function, const cJSON *want)
{
    char arn[512], label[400], what[900];
    cJSON *found = NULL, *req = NULL, *resp = NULL;
    cli_err err;
    int rc;

    memset(&err, 0, sizeof err);
    snprintf(label, sizeof label, "%s -> %s", stream, function);
    rc = cli__stream_arn(c, stream, arn, sizeof arn, &err);
    if (rc == 0) rc = list_mappings(c, function, arn, &found, &err);
    if (rc != 0) goto out;
    if (cJSON_GetArraySize(found) == 0) {
        req = cJSON_Duplicate(want, true);
        cJSON_AddStringToObject(req, "EventSourceArn", arn);
        cJSON_AddStringToObject(req, "FunctionName", function);
        rc = cli__lambda(c, "POST", ESM_PATH "/", req, &resp, &err);
        if (rc == 0) {
            snprintf(what, sizeof what, "created (%s)", cli__jstr(resp, "UUID"));
            cli__action(c, "mapping", label, what);
        }
        goto out;
    }
    const cJSON *cur = cJSON_GetArrayItem(found, 0);
    if (strcmp(cli__jstr(cur, "StartingPosition"), cli__jstr(want, "StartingPosition")))
        fprintf(stderr, "sluice: mapping %s: startingPosition %s cannot change (deployed: %s); "
                        "delete the mapping to start over\n",
                label, cli__jstr(want, "StartingPosition"), cli__jstr(cur, "StartingPosition"));
    mapping_diff(cur, want, what, sizeof what);
    if (!what[0]) goto out;
    req = cJSON_Duplicate(want, true);
    cJSON_DeleteItemFromObjectCaseSensitive(req, "StartingPosition");
    cJSON_DeleteItemFromObjectCaseSensitive(req, "StartingPositionTimestamp");
    rc = put_mapping(c, cli__jstr(cur, "UUID"), req, &resp, &err);
    if (rc == 0) {
        char msg[1000];
        snprintf(msg, sizeof msg, "updated (%s)", what);
        cli__action(c, "mapping", label, msg);
    }
out:
    if (rc == 1) fprintf(stderr, "sluice: mapping %s: %s%s%s\n", label, err.type,
                         err.type[0] ? ": " : "", err.msg);
    cJSON_Delete(found);
    cJSON_Delete(req);
    cJSON_Delete(resp);
    return rc;
}

/* ---- dlq ------------------------------------------------------------------------------------ */

static int dlq_read(cli_ctx *c, const cli_args *a)
{
    char path[2048];
    cJSON *resp = NULL;
    cli_err err;
    char *e = cli__escape(c, a->pos[0]);
    if (!e) return CLI_FAIL;
    snprintf(path, sizeof path, "/sluice/dlq?destination=%s", e);
    sl_free(e);
    int rc = cli__lambda(c, "GET", path, NULL, &resp, &err);
    if (rc != 0) return cli__status(rc, &err);
    if (c->json) {
        cli__print_json(resp);
    } else {
        /* one message per line, exactly as queued (jq/grep friendly); a readable summary of each
         * goes to stderr so that stdout stays pure JSON lines */
        int n = cJSON_GetArraySize(resp);
        const cJSON *m;
        fprintf(stderr, "%d message%s in %s\n", n, n == 1 ? "" : "s", a->pos[0]);
        cJSON_ArrayForEach(m, resp)
        {
            const cJSON *kb = cJSON_GetObjectItemCaseSensitive(m, "KinesisBatchInfo");
            const cJSON *rq = cJSON_GetObjectItemCaseSensitive(m, "requestContext");
            char *s = cJSON_PrintUnformatted(m);
            printf("%s\n", s ? s : "");
            cJSON_free(s);
            if (kb)
                fprintf(stderr, "  %s %s: %s, %d record%s from %s, %d invocation%s\n",
                        cli__jstr(m, "timestamp"), cli__jstr(kb, "shardId"),
                        cli__jstr(rq, "condition"), (int)cli__jnum(kb, "batchSize", 0),
                        cli__jnum(kb, "batchSize", 0) == 1 ? "" : "s",
                        cli__jstr(kb, "startSequenceNumber"),
                        (int)cli__jnum(rq, "approximateInvokeCount", 0),
                        cli__jnum(rq, "approximateInvokeCount", 0) == 1 ? "" : "s");
        }
    }
    cJSON_Delete(resp);
    return CLI_OK;
}

/* ---- table ---------------------------------------------------------------------------------- */

#define TUNABLE_OPTS                                                                           \
    {"batch-size", 0, "N", "records per batch, 1..10000 (default 100)"},                       \
    {"window", 0, "SECONDS", "MaximumBatchingWindowInSeconds, 0..300"},                        \
    {"parallelization", 0, "N", "concurrent batches per shard, 1..10"},                        \
    {"bisect", 0, NULL, "split a failing batch in two and retry the halves"},                  \
    {"no-bisect", 0, NULL, "do not bisect"},                                                   \
    {"max-retries", 0, "N", "MaximumRetryAttempts, -1 (until expiry) ..10000"},               \
    {"max-age", 0, "SECONDS", "MaximumRecordAgeInSeconds, -1 or 60..604800"},                  \
    {"report-failures", 0, NULL, "ReportBatchItemFailures (partial batch responses)"},         \
    {"no-report-failures", 0, NULL, "whole-batch results only"},                               \
    {"tumbling-window", 0, "SECONDS", "TumblingWindowInSeconds, 0..900"},                      \
    {"filter", 0, "PATTERN", "FilterCriteria pattern (JSON; repeatable)"},                     \
    {"on-failure", 0, "ARN", "on-failure destination (sqs/sns/s3/stream ARN, URL; none clears)"}, \
    {"disabled", 0, NULL, "mapping is disabled"}

static const cli_opt create_opts[] = {
    TUNABLE_OPTS,
    {"starting-position", 0, "POS", "TRIM_HORIZON (default), LATEST or AT_TIMESTAMP"},
    {"timestamp", 0, "EPOCH", "StartingPositionTimestamp for AT_TIMESTAMP (seconds)"},
    {"enabled", 0, NULL, "(default)"},
    {0},
};
static const cli_opt update_opts[] = {
    TUNABLE_OPTS,
    {"enabled", 0, NULL, "mapping is enabled"},
    {"clear-filters", 0, NULL, "remove every filter"},
    {"function", 0, "FUNCTION", "switch to another function"},
    {0},
};
static const cli_opt list_opts[] = {
    {"function", 0, "FUNCTION", "only mappings of this function"},
    {"stream", 0, "STREAM", "only mappings of this stream (name or ARN)"},
    {0},
};
static const cli_opt map_no_opts[] = {{0}};

const cli_cmd cli__map_cmds[] = {
    {"map", "create", "STREAM FUNCTION [options]",
     "Connect a stream to a function (an event-source mapping).", create_opts, 2, 2,
     map_create},
    {"map", "list", "[--function F] [--stream S]", "List event-source mappings.", list_opts, 0, 0,
     map_list},
    {"map", "get", "UUID", "Show a mapping.", map_no_opts, 1, 1, map_get},
    {"map", "update", "UUID [options]", "Change a mapping's settings.", update_opts, 1, 1,
     map_update},
    {"map", "enable", "UUID", "Enable a mapping.", map_no_opts, 1, 1, map_enable},
    {"map", "disable", "UUID", "Disable a mapping (its checkpoints are kept).", map_no_opts, 1, 1,
     map_disable},
    {"map", "delete", "UUID", "Delete a mapping.", map_no_opts, 1, 1, map_delete},
    {"dlq", "read", "DESTINATION-ARN",
     "Print the messages of a local on-failure queue (arn:aws:sqs:... or arn:aws:sns:...).",
     map_no_opts, 1, 1, dlq_read},
    {0},
};
