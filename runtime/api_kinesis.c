/* api_kinesis.c — Kinesis operations (SPEC 1.4) over the broker: schemas, semantic checks,
 * broker calls and response encoding. */
#include "runtime/api_kinesis.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "runtime/api_errors.h"
#include "runtime/log.h"

#define TOKEN_TTL_MS 300000
#define SHARD_LIMIT 10000          /* the broker's default open-shard quota (broker.h) */
#define ON_DEMAND_STREAM_LIMIT 50  /* SPEC 1.4 CreateStream */
#define DESCRIBE_MAX_SHARDS 100    /* DescribeStream returns at most 100 per call */
#define LIST_SHARDS_MAX 1000       /* ListShards returns at most 1000 per call */
#define LIST_STREAMS_DEFAULT 100
#define LIST_TAGS_DEFAULT 50

/* ---- schemas (SPEC 1.3) --------------------------------------------------------------------- */

#define U VAL_UNSET
#define FIELD(nm, ty, nn, unl, minv, maxv, minl, maxl, pat, en, mem)                              \
    {.name = nm, .type = ty, .not_null = nn, .unless = unl, .min_value = minv, .max_value = maxv, \
     .min_len = minl, .max_len = maxl, .pattern = pat, .enum_values = en, .members = mem,         \
     .key_min_len = U, .key_max_len = U}
#define STR(nm, nn, minl, maxl, pat) \
    FIELD(nm, VAL_STRING, nn, NULL, U, U, minl, maxl, pat, NULL, NULL)
#define INT(nm, nn, minv, maxv) \
    FIELD(nm, VAL_INT, nn, NULL, minv, maxv, U, U, VAL_PAT_NONE, NULL, NULL)
#define ENUM(nm, nn, vals) FIELD(nm, VAL_STRING, nn, NULL, U, U, U, U, VAL_PAT_NONE, vals, NULL)
#define TS(nm, nn) FIELD(nm, VAL_TIMESTAMP, nn, NULL, U, U, U, U, VAL_PAT_NONE, NULL, NULL)
#define BOOL(nm) FIELD(nm, VAL_BOOL, false, NULL, U, U, U, U, VAL_PAT_NONE, NULL, NULL)
#define STRUCT(nm, nn, mem) FIELD(nm, VAL_STRUCT, nn, NULL, U, U, U, U, VAL_PAT_NONE, NULL, mem)
#define END {.name = NULL}

/* Stream identity: StreamName, or StreamARN alone (SPEC 1.3). */
#define STREAM_NAME_ID FIELD("StreamName", VAL_STRING, true, "StreamARN", U, U, 1, 128, \
                             VAL_PAT_NAME, NULL, NULL)
#define STREAM_NAME_OPT STR("StreamName", false, 1, 128, VAL_PAT_NAME)
#define STREAM_ARN STR("StreamARN", false, 1, 2048, VAL_PAT_ARN)
#define SHARD_ID(nm, nn) STR(nm, nn, 1, 128, VAL_PAT_NAME)

static const char *const mode_values[] = {"PROVISIONED", "ON_DEMAND", NULL};
static const char *const iter_values[] = {"AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER",
                                          "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", NULL};
static const char *const scaling_values[] = {"UNIFORM_SCALING", NULL};
static const char *const filter_values[] = {"AFTER_SHARD_ID", "AT_TRIM_HORIZON",
                                            "FROM_TRIM_HORIZON", "AT_LATEST", "AT_TIMESTAMP",
                                            "FROM_TIMESTAMP", NULL};

static const val_field mode_details[] = {ENUM("StreamMode", true, mode_values), END};
static const val_field tag_value = STR("member", false, 0, 256, VAL_PAT_NONE);
static const val_field tag_key = STR("member", false, 1, 128, VAL_PAT_NONE);
static const val_field record_members[] = {
    FIELD("Data", VAL_BLOB, true, NULL, U, U, U, 10485760, VAL_PAT_NONE, NULL, NULL),
    FIELD("ExplicitHashKey", VAL_STRING, false, NULL, U, U, U, U, VAL_PAT_HASHKEY, NULL, NULL),
    STR("PartitionKey", true, 1, 256, VAL_PAT_NONE),
    END,
};
static const val_field record_entry = STRUCT("member", true, record_members);
static const val_field shard_filter[] = {
    ENUM("Type", true, filter_values),
    SHARD_ID("ShardId", false),
    TS("Timestamp", false),
    END,
};

#define TAGS_MAP(nn, maxn)                                                                   \
    {.name = "Tags", .type = VAL_MAP, .not_null = nn, .min_value = U, .max_value = U,         \
     .min_len = 1, .max_len = maxn, .members = &tag_value, .key_min_len = 1, .key_max_len = 128}

static const val_field s_create[] = {
    INT("ShardCount", false, 1, 100000),
    STR("StreamName", true, 1, 128, VAL_PAT_NAME),
    STRUCT("StreamModeDetails", false, mode_details),
    TAGS_MAP(false, 200),
    INT("MaxRecordSizeInKiB", false, 1024, 10240),
    INT("WarmThroughputMiBps", false, 0, U),
    END,
};
static const val_field s_delete[] = {STREAM_NAME_ID, STREAM_ARN, BOOL("EnforceConsumerDeletion"),
                                     END};
static const val_field s_describe[] = {
    SHARD_ID("ExclusiveStartShardId", false), INT("Limit", false, 1, 10000), STREAM_NAME_ID,
    STREAM_ARN, END,
};
static const val_field s_summary[] = {STREAM_NAME_ID, STREAM_ARN, END};
static const val_field s_list_streams[] = {
    STR("ExclusiveStartStreamName", false, 1, 128, VAL_PAT_NAME),
    INT("Limit", false, 1, 10000),
    STR("NextToken", false, 1, 1048576, VAL_PAT_NONE),
    END,
};
static const val_field s_list_shards[] = {
    SHARD_ID("ExclusiveStartShardId", false),
    INT("MaxResults", false, 1, 10000),
    STR("NextToken", false, 1, 1048576, VAL_PAT_NONE),
    TS("StreamCreationTimestamp", false),
    STREAM_NAME_OPT,
    STREAM_ARN,
    STRUCT("ShardFilter", false, shard_filter),
    END,
};
static const val_field s_put_record[] = {
    STR("SequenceNumberForOrdering", false, U, U, VAL_PAT_SEQNO),
    STR("PartitionKey", true, 1, 256, VAL_PAT_NONE),
    STR("ExplicitHashKey", false, U, U, VAL_PAT_HASHKEY),
    FIELD("Data", VAL_BLOB, true, NULL, U, U, U, 10485760, VAL_PAT_NONE, NULL, NULL),
    STREAM_NAME_ID,
    STREAM_ARN,
    END,
};
static const val_field s_put_records[] = {
    FIELD("Records", VAL_LIST, true, NULL, U, U, 1, 500, VAL_PAT_NONE, NULL, &record_entry),
    STREAM_NAME_ID,
    STREAM_ARN,
    END,
};
static const val_field s_get_iterator[] = {
    ENUM("ShardIteratorType", true, iter_values),
    SHARD_ID("ShardId", true),
    STR("StartingSequenceNumber", false, U, U, VAL_PAT_SEQNO),
    TS("Timestamp", false),
    STREAM_NAME_ID,
    STREAM_ARN,
    END,
};
static const val_field s_get_records[] = {
    INT("Limit", false, 1, 10000),
    STR("ShardIterator", true, 1, 512, VAL_PAT_NONE),
    STREAM_ARN,
    END,
};
static const val_field s_split[] = {
    STR("NewStartingHashKey", true, U, U, VAL_PAT_HASHKEY),
    SHARD_ID("ShardToSplit", true),
    STREAM_NAME_ID,
    STREAM_ARN,
    END,
};
static const val_field s_merge[] = {
    SHARD_ID("AdjacentShardToMerge", true),
    SHARD_ID("ShardToMerge", true),
    STREAM_NAME_ID,
    STREAM_ARN,
    END,
};
static const val_field s_update_count[] = {
    ENUM("ScalingType", true, scaling_values),
    STREAM_NAME_ID,
    STREAM_ARN,
    INT("TargetShardCount", true, 1, 100000),
    END,
};
static const val_field s_retention[] = {
    INT("RetentionPeriodHours", true, 1, U),
    STREAM_NAME_ID,
    STREAM_ARN,
    END,
};
static const val_field s_add_tags[] = {TAGS_MAP(true, 200), STREAM_NAME_ID, STREAM_ARN, END};
static const val_field s_remove_tags[] = {
    FIELD("TagKeys", VAL_LIST, true, NULL, U, U, 1, 50, VAL_PAT_NONE, NULL, &tag_key),
    STREAM_NAME_ID,
    STREAM_ARN,
    END,
};
static const val_field s_list_tags[] = {
    STR("ExclusiveStartTagKey", false, 1, 128, VAL_PAT_NONE),
    INT("Limit", false, 1, 50),
    STREAM_NAME_ID,
    STREAM_ARN,
    END,
};
static const val_field s_none[] = {END};
static const val_field s_update_mode[] = {
    FIELD("StreamARN", VAL_STRING, true, NULL, U, U, 1, 2048, VAL_PAT_ARN, NULL, NULL),
    STRUCT("StreamModeDetails", true, mode_details),
    END,
};

/* ---- per-request context ------------------------------------------------------------------- */

typedef struct op_ctx {
    rt_daemon *d;
    http_exchange *x;
    enum wire_fmt fmt;
    cJSON *req;
    wire_out out;           /* response body; empty for operations without output */
    sl_err err;
    char stream[129];       /* resolved stream name (after stream_of) */
} op_ctx;

/* Returned by an operation that answers later (puts on the thread pool). */
#define OP_ASYNC 1

typedef int (*op_fn)(op_ctx *c);
/* Broker-free semantic checks that run right after validation (also from api_kinesis_parse). */
typedef int (*op_check_fn)(const cJSON *req, sl_err *err);

typedef struct op_def {
    const char *name;
    const val_field *schema;
    op_fn fn;
    op_check_fn check;
} op_def;

/* ---- small helpers --------------------------------------------------------------------------- */

static const cJSON *member(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

static const char *str_member(const cJSON *obj, const char *name)
{
    const cJSON *v = member(obj, name);
    return (v && cJSON_IsString(v)) ? v->valuestring : NULL;
}

static bool int_member(const cJSON *obj, const char *name, int64_t *out)
{
    const cJSON *v = member(obj, name);
    if (!v || !cJSON_IsNumber(v)) return false;
    double d = floor(v->valuedouble);
    if (d > 9e18) d = 9e18;
    if (d < -9e18) d = -9e18;
    *out = (int64_t)d;
    return true;
}

/* Resolves StreamName / StreamARN to a stream name (SPEC 1.3: both may be given; they must
 * name the same stream). */
static int stream_of(op_ctx *c)
{
    const char *name = str_member(c->req, "StreamName");
    const char *arn = str_member(c->req, "StreamARN");
    char from_arn[129];
    int rc;

    if (arn) {
        rc = brk_stream_name_from_arn(c->d->broker, arn, from_arn, sizeof from_arn, &c->err);
        if (rc) return rc;
        if (name && strcmp(name, from_arn) != 0)
            return sl_err_set(&c->err, SL_EINVAL,
                              "StreamARN %s and StreamName %s do not refer to the same stream.",
                              arn, name);
        snprintf(c->stream, sizeof c->stream, "%s", from_arn);
        return 0;
    }
    if (!name)
        return sl_err_set(&c->err, SL_EVALIDATION,
                          "1 validation error detected: Value null at 'streamName' failed to "
                          "satisfy constraint: Member must not be null");
    snprintf(c->stream, sizeof c->stream, "%s", name);
    return 0;
}

/* Numeric index of "shardId-000000000005", "shardId-5" or "5"; false for anything else. */
static bool shard_index(const char *id, uint64_t *out)
{
    const char *p = id;
    uint64_t v = 0;
    if (!strncmp(p, "shardId-", 8)) p += 8;
    if (!*p || strlen(p) > 18) return false;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return true;
}

/* Does shard id `a` sort strictly after `after`? Both ids normalised when numeric. */
static bool shard_after(const char *a, const char *after)
{
    uint64_t ia, ib;
    if (shard_index(a, &ia) && shard_index(after, &ib)) return ia > ib;
    return strcmp(a, after) > 0;
}

static void put_mode_details(wire_out *w, enum brk_stream_mode m)
{
    wire_map(w, 1);
    wire_key(w, "StreamMode");
    wire_str(w, brk_mode_name(m));
    wire_end(w);
}

static void put_enhanced_monitoring(wire_out *w)
{
    wire_arr(w, 1);
    wire_map(w, 1);
    wire_key(w, "ShardLevelMetrics");
    wire_arr(w, 0);
    wire_end(w);
    wire_end(w);
    wire_end(w);
}

static void put_shard(wire_out *w, const brk_shard_info *s)
{
    size_t n = 3 + (s->parent[0] != 0) + (s->adjacent_parent[0] != 0);
    wire_map(w, n);
    wire_key(w, "ShardId");
    wire_str(w, s->shard_id);
    if (s->parent[0]) {
        wire_key(w, "ParentShardId");
        wire_str(w, s->parent);
    }
    if (s->adjacent_parent[0]) {
        wire_key(w, "AdjacentParentShardId");
        wire_str(w, s->adjacent_parent);
    }
    wire_key(w, "HashKeyRange");
    wire_map(w, 2);
    wire_key(w, "StartingHashKey");
    wire_str(w, s->start_hash);
    wire_key(w, "EndingHashKey");
    wire_str(w, s->end_hash);
    wire_end(w);
    wire_key(w, "SequenceNumberRange");
    wire_map(w, s->end_seq[0] ? 2 : 1);
    wire_key(w, "StartingSequenceNumber");
    wire_str(w, s->start_seq);
    if (s->end_seq[0]) {
        wire_key(w, "EndingSequenceNumber");
        wire_str(w, s->end_seq);
    }
    wire_end(w);
    wire_end(w);
}

/* ---- NextToken: base64(payload '\n' issued_ms '\n' HMAC-SHA256[0..16]) ---------------------- */

#define TOKEN_MAC_LEN 16

static void token_mac(const uint8_t key[32], const uint8_t *msg, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, 32, msg, n, out, &len);
}

int api_token_encode(const uint8_t key[32], const char *payload, int64_t issued_ms, char **token)
{
    size_t plen = strlen(payload);
    size_t n = plen + 32 + TOKEN_MAC_LEN;
    uint8_t *raw = sl_malloc(n);
    uint8_t mac[32];
    char *tok;
    int hl;

    if (!raw) return SL_ENOMEM;
    hl = snprintf((char *)raw, n, "%s\n%lld\n", payload, (long long)issued_ms);
    token_mac(key, raw, (size_t)hl, mac);
    memcpy(raw + hl, mac, TOKEN_MAC_LEN);
    n = (size_t)hl + TOKEN_MAC_LEN;
    tok = sl_malloc(wire_b64_len(n) + 1);
    if (!tok) {
        sl_free(raw);
        return SL_ENOMEM;
    }
    tok[wire_b64_encode(raw, n, tok)] = '\0';
    sl_free(raw);
    *token = tok;
    return 0;
}

int api_token_decode(const uint8_t key[32], const char *token, int64_t now_ms, char **payload,
                     sl_err *err)
{
    size_t tlen = strlen(token), n = 0;
    uint8_t *raw = NULL, mac[32];
    char *nl1, *nl2, *out;
    sl_err ignored;
    long long issued;
    int rc = SL_EINVAL;

    if (wire_b64_check(token, tlen, &n, &ignored) != 0 || n <= TOKEN_MAC_LEN + 3) goto bad;
    raw = sl_malloc(n + 1);
    if (!raw) return sl_err_set(err, SL_ENOMEM, "out of memory");
    wire_b64_decode(token, tlen, raw);
    token_mac(key, raw, n - TOKEN_MAC_LEN, mac);
    if (CRYPTO_memcmp(mac, raw + n - TOKEN_MAC_LEN, TOKEN_MAC_LEN) != 0) goto bad;
    raw[n - TOKEN_MAC_LEN] = '\0';
    nl1 = memchr(raw, '\n', n - TOKEN_MAC_LEN);
    if (!nl1) goto bad;
    nl2 = strchr(nl1 + 1, '\n');
    if (!nl2 || nl2[1] != '\0') goto bad;
    *nl2 = '\0';
    issued = strtoll(nl1 + 1, NULL, 10);
    if (now_ms - issued > TOKEN_TTL_MS) {
        rc = sl_err_set(err, SL_ETOKEN_EXPIRED,
                        "The NextToken has expired. NextTokens are valid for %d seconds.",
                        TOKEN_TTL_MS / 1000);
        goto out;
    }
    *nl1 = '\0';
    out = sl_strdup((const char *)raw);
    if (!out) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    *payload = out;
    rc = 0;
    goto out;
bad:
    rc = sl_err_set(err, SL_EINVAL, "Invalid NextToken.");
out:
    sl_free(raw);
    return rc;
}

/* The token key: 32 random bytes kept in the catalog's meta area, so tokens survive a restart
 * and cannot be forged without the data directory. Cached per broker (loop thread). */
static int token_key(brk_broker *b, uint8_t key[32])
{
    static brk_broker *cached_for;
    static uint8_t cached[32];
    char *val = NULL;
    size_t len = 0;
    int rc;

    if (cached_for == b) {
        memcpy(key, cached, 32);
        return 0;
    }
    rc = brk_meta_get(b, "api", "token_key", &val, &len);
    if (rc == 0 && len == 64) {
        for (int i = 0; i < 32; i++) {
            unsigned int byte;
            if (sscanf(val + 2 * i, "%2x", &byte) != 1) {
                rc = SL_ECORRUPT;
                break;
            }
            cached[i] = (uint8_t)byte;
        }
        sl_free(val);
        if (rc) return rc;
    } else {
        char hex[65];
        sl_free(val);
        if (rc != 0 && rc != SL_ENOTFOUND) return rc;
        if (RAND_bytes(cached, 32) != 1) return SL_EINTERNAL;
        for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", cached[i]);
        rc = brk_meta_put(b, "api", "token_key", hex, 64);
        if (rc) return rc;
    }
    cached_for = b;
    memcpy(key, cached, 32);
    return 0;
}

/* ---- tag character check (SPEC 1.4 AddTagsToStream) ---------------------------------------- */

static bool tag_text_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        if (ch >= 0x80) continue; /* Unicode letters (non-ASCII accepted as letters) */
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
            continue;
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v')
            continue;
        if (strchr("_./=+-%@", ch)) continue;
        return false;
    }
    return true;
}

#define TAG_CHARS_MSG                                                                         \
    "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white " \
    "space, _ . / = + - % @."

static int check_tags_map(const cJSON *tags, sl_err *err)
{
    const cJSON *t;
    if (!tags) return 0;
    cJSON_ArrayForEach(t, tags) {
        if (!tag_text_ok(t->string) || (cJSON_IsString(t) && !tag_text_ok(t->valuestring)))
            return sl_err_set(err, SL_EINVAL, "%s", TAG_CHARS_MSG);
    }
    return 0;
}

/* ---- semantic checks without the broker ---------------------------------------------------- */

static int check_create(const cJSON *req, sl_err *err)
{
    const cJSON *md = member(req, "StreamModeDetails");
    const char *mode = md ? str_member(md, "StreamMode") : NULL;
    bool on_demand = mode && !strcmp(mode, "ON_DEMAND");
    if (!on_demand && !member(req, "ShardCount"))
        return sl_err_set(err, SL_EVALIDATION,
                          "1 validation error detected: Value null at 'shardCount' failed to "
                          "satisfy constraint: Member must not be null");
    return check_tags_map(member(req, "Tags"), err);
}

static int check_add_tags(const cJSON *req, sl_err *err)
{
    return check_tags_map(member(req, "Tags"), err);
}

static int check_get_iterator(const cJSON *req, sl_err *err)
{
    const char *type = str_member(req, "ShardIteratorType");
    bool has_seq = member(req, "StartingSequenceNumber") != NULL;
    bool needs_seq = !strcmp(type, "AT_SEQUENCE_NUMBER") || !strcmp(type, "AFTER_SEQUENCE_NUMBER");

    if (needs_seq != has_seq)
        return sl_err_set(err, SL_EINVAL,
                          "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and "
                          "StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no "
                          "StartingSequenceNumber. Request specified %s and %s "
                          "StartingSequenceNumber.",
                          type, has_seq ? "also a" : "no");
    if (!strcmp(type, "AT_TIMESTAMP") && !member(req, "Timestamp"))
        return sl_err_set(err, SL_EINVAL,
                          "Must specify timestampInMillis parameter for iterator of type "
                          "AT_TIMESTAMP. Current request has no timestamp parameter.");
    return 0;
}

static int check_list_shards(const cJSON *req, sl_err *err)
{
    bool token = member(req, "NextToken") != NULL;
    const cJSON *filter = member(req, "ShardFilter");

    if (token) {
        if (member(req, "StreamName"))
            return sl_err_set(err, SL_EINVAL,
                              "NextToken and StreamName cannot be provided together.");
        if (member(req, "StreamARN"))
            return sl_err_set(err, SL_EINVAL,
                              "NextToken and StreamARN cannot be provided together.");
        if (filter)
            return sl_err_set(err, SL_EINVAL,
                              "NextToken and ShardFilter cannot be provided together.");
        if (member(req, "ExclusiveStartShardId"))
            return sl_err_set(err, SL_EINVAL,
                              "NextToken and ExclusiveStartShardId cannot be provided together.");
        if (member(req, "StreamCreationTimestamp"))
            return sl_err_set(err, SL_EINVAL,
                              "NextToken and StreamCreationTimestamp cannot be provided together.");
        return 0;
    }
    if (!member(req, "StreamName") && !member(req, "StreamARN"))
        return sl_err_set(err, SL_EINVAL, "Either NextToken or StreamName should be provided.");
    if (filter) {
        const char *type = str_member(filter, "Type");
        bool has_shard = member(filter, "ShardId") != NULL;
        bool has_ts = member(filter, "Timestamp") != NULL;
        bool is_ts = !strcmp(type, "AT_TIMESTAMP") || !strcmp(type, "FROM_TIMESTAMP");
        if (!strcmp(type, "AFTER_SHARD_ID") && !has_shard)
            return sl_err_set(err, SL_EINVAL,
                              "ShardId must be specified in the ShardFilter when the type is "
                              "AFTER_SHARD_ID.");
        if (strcmp(type, "AFTER_SHARD_ID") && has_shard)
            return sl_err_set(err, SL_EINVAL,
                              "ShardId can only be specified in the ShardFilter when the type is "
                              "AFTER_SHARD_ID.");
        if (is_ts && !has_ts)
            return sl_err_set(err, SL_EINVAL,
                              "Timestamp must be specified in the ShardFilter when the type is %s.",
                              type);
        if (!is_ts && has_ts)
            return sl_err_set(err, SL_EINVAL,
                              "Timestamp can only be specified in the ShardFilter when the type is "
                              "AT_TIMESTAMP or FROM_TIMESTAMP.");
    }
    return 0;
}

/* ---- operations ---------------------------------------------------------------------------- */

static int op_create_stream(op_ctx *c)
{
    const cJSON *md = member(c->req, "StreamModeDetails");
    const char *mode = md ? str_member(md, "StreamMode") : NULL;
    const cJSON *tags = member(c->req, "Tags");
    brk_create_opts o = {0};
    brk_tag *tv = NULL;
    int64_t v;
    int rc;

    o.name = str_member(c->req, "StreamName");
    o.mode = (mode && !strcmp(mode, "ON_DEMAND")) ? BRK_ON_DEMAND : BRK_PROVISIONED;
    if (int_member(c->req, "ShardCount", &v)) o.shard_count = (uint32_t)v;
    if (int_member(c->req, "MaxRecordSizeInKiB", &v)) o.max_record_kib = (uint32_t)v;
    if (tags) {
        size_t n = (size_t)cJSON_GetArraySize(tags), i = 0;
        const cJSON *t;
        tv = sl_calloc(n ? n : 1, sizeof *tv);
        if (!tv) return sl_err_set(&c->err, SL_ENOMEM, "out of memory");
        cJSON_ArrayForEach(t, tags) {
            tv[i].key = t->string;
            tv[i].value = cJSON_IsString(t) ? t->valuestring : (char *)"";
            i++;
        }
        o.tags = tv;
        o.ntags = i;
    }
    rc = brk_stream_create(c->d->broker, &o, &c->err);
    sl_free(tv);
    return rc;
}

static int op_delete_stream(op_ctx *c)
{
    int rc = stream_of(c);
    if (rc) return rc;
    return brk_stream_delete(c->d->broker, c->stream, &c->err);
}

static int op_describe_stream(op_ctx *c)
{
    brk_stream_info info;
    const char *start = str_member(c->req, "ExclusiveStartShardId");
    int64_t limit = DESCRIBE_MAX_SHARDS;
    size_t first = 0, count = 0;
    int rc;

    if ((rc = stream_of(c))) return rc;
    if (int_member(c->req, "Limit", &limit) && limit > DESCRIBE_MAX_SHARDS)
        limit = DESCRIBE_MAX_SHARDS;
    rc = brk_stream_describe(c->d->broker, c->stream, &info, &c->err);
    if (rc) return rc;
    if (start)
        while (first < info.nshards && !shard_after(info.shards[first].shard_id, start)) first++;
    count = info.nshards - first;
    if (count > (size_t)limit) count = (size_t)limit;

    wire_reserve(&c->out, 512 + count * 400);
    wire_map(&c->out, 1);
    wire_key(&c->out, "StreamDescription");
    wire_map(&c->out, 10);
    wire_key(&c->out, "StreamName");
    wire_str(&c->out, info.name);
    wire_key(&c->out, "StreamARN");
    wire_str(&c->out, info.arn);
    wire_key(&c->out, "StreamStatus");
    wire_str(&c->out, brk_status_name(info.status));
    wire_key(&c->out, "StreamModeDetails");
    put_mode_details(&c->out, info.mode);
    wire_key(&c->out, "Shards");
    wire_arr(&c->out, count);
    for (size_t i = 0; i < count; i++) put_shard(&c->out, &info.shards[first + i]);
    wire_end(&c->out);
    wire_key(&c->out, "HasMoreShards");
    wire_bool(&c->out, first + count < info.nshards);
    wire_key(&c->out, "RetentionPeriodHours");
    wire_int(&c->out, info.retention_hours);
    wire_key(&c->out, "StreamCreationTimestamp");
    wire_ts(&c->out, info.created_ms);
    wire_key(&c->out, "EnhancedMonitoring");
    put_enhanced_monitoring(&c->out);
    wire_key(&c->out, "EncryptionType");
    wire_str(&c->out, "NONE");
    wire_end(&c->out);
    wire_end(&c->out);
    brk_stream_info_free(&info);
    return 0;
}

static int op_describe_summary(op_ctx *c)
{
    brk_stream_info info;
    int rc;

    if ((rc = stream_of(c))) return rc;
    rc = brk_stream_describe(c->d->broker, c->stream, &info, &c->err);
    if (rc) return rc;
    wire_map(&c->out, 1);
    wire_key(&c->out, "StreamDescriptionSummary");
    wire_map(&c->out, 11);
    wire_key(&c->out, "StreamName");
    wire_str(&c->out, info.name);
    wire_key(&c->out, "StreamARN");
    wire_str(&c->out, info.arn);
    wire_key(&c->out, "StreamStatus");
    wire_str(&c->out, brk_status_name(info.status));
    wire_key(&c->out, "StreamModeDetails");
    put_mode_details(&c->out, info.mode);
    wire_key(&c->out, "RetentionPeriodHours");
    wire_int(&c->out, info.retention_hours);
    wire_key(&c->out, "StreamCreationTimestamp");
    wire_ts(&c->out, info.created_ms);
    wire_key(&c->out, "EnhancedMonitoring");
    put_enhanced_monitoring(&c->out);
    wire_key(&c->out, "EncryptionType");
    wire_str(&c->out, "NONE");
    wire_key(&c->out, "OpenShardCount");
    wire_int(&c->out, info.open_shards);
    wire_key(&c->out, "ConsumerCount");
    wire_int(&c->out, 0);
    wire_key(&c->out, "MaxRecordSizeInKiB");
    wire_int(&c->out, info.max_record_kib ? info.max_record_kib : 1024);
    wire_end(&c->out);
    wire_end(&c->out);
    brk_stream_info_free(&info);
    return 0;
}

static int op_list_streams(op_ctx *c)
{
    char **names = NULL;
    size_t n = 0, first = 0, count;
    int64_t limit = LIST_STREAMS_DEFAULT;
    const char *token = str_member(c->req, "NextToken");
    const char *start = str_member(c->req, "ExclusiveStartStreamName");
    char *after = NULL, *next = NULL;
    uint8_t key[32];
    brk_stream_info *infos = NULL;
    size_t live = 0;
    bool more;
    int rc;

    int_member(c->req, "Limit", &limit);
    if (token) {
        char *payload = NULL;
        if ((rc = token_key(c->d->broker, key)))
            return sl_err_set(&c->err, rc, "token key unavailable");
        rc = api_token_decode(key, token, sl_now_ms(), &payload, &c->err);
        if (rc) return rc;
        if (strncmp(payload, "streams|", 8) != 0) {
            sl_free(payload);
            return sl_err_set(&c->err, SL_EINVAL, "Invalid NextToken.");
        }
        after = sl_strdup(payload + 8);
        sl_free(payload);
        if (!after) return sl_err_set(&c->err, SL_ENOMEM, "out of memory");
    } else if (start) {
        after = sl_strdup(start);
        if (!after) return sl_err_set(&c->err, SL_ENOMEM, "out of memory");
    }
    rc = brk_stream_list(c->d->broker, &names, &n);
    if (rc) {
        sl_free(after);
        return sl_err_set(&c->err, rc, "cannot list streams: %s", sl_strerror(rc));
    }
    if (after)
        while (first < n && strcmp(names[first], after) <= 0) first++;
    count = n - first;
    if (count > (size_t)limit) count = (size_t)limit;
    more = first + count < n;

    /* Summaries: a stream deleted between the list and its describe is skipped. */
    infos = sl_calloc(count ? count : 1, sizeof *infos);
    if (!infos) {
        rc = sl_err_set(&c->err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        sl_err e;
        if (brk_stream_describe(c->d->broker, names[first + i], &infos[live], &e) == 0) live++;
    }
    if (more && live) {
        char payload[160];
        snprintf(payload, sizeof payload, "streams|%s", infos[live - 1].name);
        if ((rc = token_key(c->d->broker, key))) {
            rc = sl_err_set(&c->err, rc, "token key unavailable");
            goto out;
        }
        if ((rc = api_token_encode(key, payload, sl_now_ms(), &next))) {
            rc = sl_err_set(&c->err, rc, "out of memory");
            goto out;
        }
    }
    wire_reserve(&c->out, 256 + live * 300);
    wire_map(&c->out, next ? 4 : 3);
    wire_key(&c->out, "StreamNames");
    wire_arr(&c->out, live);
    for (size_t i = 0; i < live; i++) wire_str(&c->out, infos[i].name);
    wire_end(&c->out);
    wire_key(&c->out, "HasMoreStreams");
    wire_bool(&c->out, more);
    if (next) {
        wire_key(&c->out, "NextToken");
        wire_str(&c->out, next);
    }
    wire_key(&c->out, "StreamSummaries");
    wire_arr(&c->out, live);
    for (size_t i = 0; i < live; i++) {
        wire_map(&c->out, 5);
        wire_key(&c->out, "StreamName");
        wire_str(&c->out, infos[i].name);
        wire_key(&c->out, "StreamARN");
        wire_str(&c->out, infos[i].arn);
        wire_key(&c->out, "StreamStatus");
        wire_str(&c->out, brk_status_name(infos[i].status));
        wire_key(&c->out, "StreamModeDetails");
        put_mode_details(&c->out, infos[i].mode);
        wire_key(&c->out, "StreamCreationTimestamp");
        wire_ts(&c->out, infos[i].created_ms);
        wire_end(&c->out);
    }
    wire_end(&c->out);
    wire_end(&c->out);
    rc = 0;
out:
    if (infos)
        for (size_t i = 0; i < live; i++) brk_stream_info_free(&infos[i]);
    sl_free(infos);
    sl_free(next);
    sl_free(after);
    brk_names_free(names, n);
    return rc;
}

/* ListShards filter state; also what a NextToken carries. */
typedef struct shard_filter_spec {
    char type[24];          /* "" = none (every shard) */
    char shard_id[129];     /* AFTER_SHARD_ID */
    int64_t ts_ms;          /* AT_TIMESTAMP / FROM_TIMESTAMP */
    char after[129];        /* ExclusiveStartShardId or the last shard of the previous page */
} shard_filter_spec;

static bool shard_in_list(const brk_stream_info *info, const char *id)
{
    for (size_t i = 0; i < info->nshards; i++)
        if (!strcmp(info->shards[i].shard_id, id)) return true;
    return false;
}

static bool shard_selected(const brk_stream_info *info, const brk_shard_info *s,
                           const shard_filter_spec *f)
{
    if (f->after[0] && !shard_after(s->shard_id, f->after)) return false;
    if (!f->type[0] || !strcmp(f->type, "FROM_TRIM_HORIZON")) return true;
    if (!strcmp(f->type, "AFTER_SHARD_ID")) return shard_after(s->shard_id, f->shard_id);
    if (!strcmp(f->type, "AT_LATEST")) return s->open;
    if (!strcmp(f->type, "AT_TRIM_HORIZON"))
        /* open at the trim horizon: no parent left (its parents expired or it is original) */
        return !(s->parent[0] && shard_in_list(info, s->parent)) &&
               !(s->adjacent_parent[0] && shard_in_list(info, s->adjacent_parent));
    if (!strcmp(f->type, "FROM_TIMESTAMP")) return s->open || s->closed_ms > f->ts_ms;
    if (!strcmp(f->type, "AT_TIMESTAMP")) {
        bool root = !(s->parent[0] && shard_in_list(info, s->parent));
        bool started = s->created_ms <= f->ts_ms || (root && f->ts_ms < s->created_ms &&
                                                     s->created_ms <= info->created_ms + 1000);
        return started && (s->open || s->closed_ms > f->ts_ms);
    }
    return true;
}

static int op_list_shards(op_ctx *c)
{
    const char *token = str_member(c->req, "NextToken");
    shard_filter_spec f;
    brk_stream_info info;
    int64_t max = LIST_SHARDS_MAX;
    uint8_t key[32];
    char *next = NULL;
    size_t *sel = NULL, nsel = 0, count;
    int rc;

    memset(&f, 0, sizeof f);
    if (int_member(c->req, "MaxResults", &max) && max > LIST_SHARDS_MAX) max = LIST_SHARDS_MAX;
    if (token) {
        char *payload = NULL;
        long long ts = 0;
        if ((rc = token_key(c->d->broker, key)))
            return sl_err_set(&c->err, rc, "token key unavailable");
        rc = api_token_decode(key, token, sl_now_ms(), &payload, &c->err);
        if (rc) return rc;
        /* shards|stream|after|type|shard|ts */
        char *fields[6] = {0};
        char *p = payload;
        int nf = 0;
        while (nf < 6) {
            fields[nf++] = p;
            p = strchr(p, '|');
            if (!p) break;
            *p++ = '\0';
        }
        if (nf != 6 || strcmp(fields[0], "shards") != 0) {
            sl_free(payload);
            return sl_err_set(&c->err, SL_EINVAL, "Invalid NextToken.");
        }
        snprintf(c->stream, sizeof c->stream, "%s", fields[1]);
        snprintf(f.after, sizeof f.after, "%s", fields[2]);
        snprintf(f.type, sizeof f.type, "%s", fields[3]);
        snprintf(f.shard_id, sizeof f.shard_id, "%s", fields[4]);
        ts = strtoll(fields[5], NULL, 10);
        f.ts_ms = ts;
        sl_free(payload);
    } else {
        const cJSON *filter = member(c->req, "ShardFilter");
        const char *start = str_member(c->req, "ExclusiveStartShardId");
        if ((rc = stream_of(c))) return rc;
        if (start) snprintf(f.after, sizeof f.after, "%s", start);
        if (filter) {
            const char *sid = str_member(filter, "ShardId");
            const cJSON *ts = member(filter, "Timestamp");
            snprintf(f.type, sizeof f.type, "%s", str_member(filter, "Type"));
            if (sid) snprintf(f.shard_id, sizeof f.shard_id, "%s", sid);
            if (ts) f.ts_ms = wire_ts_ms(ts);
        }
    }
    rc = brk_stream_describe(c->d->broker, c->stream, &info, &c->err);
    if (rc) return rc;
    sel = sl_calloc(info.nshards ? info.nshards : 1, sizeof *sel);
    if (!sel) {
        brk_stream_info_free(&info);
        return sl_err_set(&c->err, SL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < info.nshards; i++)
        if (shard_selected(&info, &info.shards[i], &f)) sel[nsel++] = i;
    count = nsel > (size_t)max ? (size_t)max : nsel;
    if (count < nsel) {
        char payload[512];
        snprintf(payload, sizeof payload, "shards|%s|%s|%s|%s|%lld", c->stream,
                 info.shards[sel[count - 1]].shard_id, f.type, f.shard_id, (long long)f.ts_ms);
        if ((rc = token_key(c->d->broker, key)) == 0)
            rc = api_token_encode(key, payload, sl_now_ms(), &next);
        if (rc) {
            sl_free(sel);
            brk_stream_info_free(&info);
            return sl_err_set(&c->err, rc, "cannot issue NextToken: %s", sl_strerror(rc));
        }
    }
    wire_reserve(&c->out, 128 + count * 400);
    wire_map(&c->out, next ? 2 : 1);
    wire_key(&c->out, "Shards");
    wire_arr(&c->out, count);
    for (size_t i = 0; i < count; i++) put_shard(&c->out, &info.shards[sel[i]]);
    wire_end(&c->out);
    if (next) {
        wire_key(&c->out, "NextToken");
        wire_str(&c->out, next);
    }
    wire_end(&c->out);
    sl_free(next);
    sl_free(sel);
    brk_stream_info_free(&info);
    return 0;
}

/* ---- puts (maybe on the thread pool) -------------------------------------------------------- */

typedef struct put_job {
    uv_work_t work;
    op_ctx c;                   /* owns req and out */
    bool batch;
    brk_put_entry *entries;
    size_t n;
    uint8_t *data;              /* every record's decoded Data, back to back */
    brk_put_result *res;
    size_t failed;
    const char *seq_for_ordering;
    int rc;
} put_job;

static void put_job_free(put_job *j)
{
    if (!j) return;
    cJSON_Delete(j->c.req);
    wire_out_free(&j->c.out);
    sl_free(j->entries);
    sl_free(j->data);
    sl_free(j->res);
    sl_free(j);
}

/* Fills one entry from a validated record object; Data is decoded into *cursor. */
static void fill_entry(const cJSON *rec, brk_put_entry *e, uint8_t **cursor)
{
    const cJSON *data = member(rec, "Data");
    const char *pk = str_member(rec, "PartitionKey");

    if (wire_is_blob(data)) {
        const uint8_t *p;
        size_t n;
        wire_blob_bytes(data, &p, &n);
        e->data = p;
        e->data_len = n;
    } else {
        size_t n = wire_b64_decode(data->valuestring, strlen(data->valuestring), *cursor);
        e->data = *cursor;
        e->data_len = n;
        *cursor += n;
    }
    e->partition_key = pk;
    e->pk_len = strlen(pk);
    e->explicit_hash_key = str_member(rec, "ExplicitHashKey");
}

/* Decoded size of a validated JSON Data member (0 for CBOR blobs, which need no buffer). */
static size_t json_data_len(const cJSON *rec)
{
    const cJSON *data = member(rec, "Data");
    if (!data || wire_is_blob(data)) return 0;
    size_t l = strlen(data->valuestring), n = l / 4 * 3;
    if (l && data->valuestring[l - 1] == '=') n--;
    if (l > 1 && data->valuestring[l - 2] == '=') n--;
    return n;
}

static void put_exec(put_job *j)
{
    brk_broker *b = j->c.d->broker;
    if (j->batch)
        j->rc = brk_put_records(b, j->c.stream, j->entries, j->n, j->res, &j->failed, &j->c.err);
    else
        j->rc = brk_put_record(b, j->c.stream, j->entries, j->seq_for_ordering, j->res, &j->c.err);
}

static void respond(op_ctx *c, int rc);

static void put_finish(put_job *j)
{
    op_ctx *c = &j->c;
    if (j->rc) {
        respond(c, j->rc);
        put_job_free(j);
        return;
    }
    if (!j->batch) {
        wire_map(&c->out, 2);
        wire_key(&c->out, "ShardId");
        wire_str(&c->out, j->res[0].shard_id);
        wire_key(&c->out, "SequenceNumber");
        wire_str(&c->out, j->res[0].seq);
        wire_end(&c->out);
    } else {
        wire_reserve(&c->out, 64 + j->n * 110);
        wire_map(&c->out, 2);
        wire_key(&c->out, "FailedRecordCount");
        wire_int(&c->out, (int64_t)j->failed);
        wire_key(&c->out, "Records");
        wire_arr(&c->out, j->n);
        for (size_t i = 0; i < j->n; i++) {
            const brk_put_result *r = &j->res[i];
            wire_map(&c->out, 2);
            if (r->code == 0) {
                wire_key(&c->out, "SequenceNumber");
                wire_str(&c->out, r->seq);
                wire_key(&c->out, "ShardId");
                wire_str(&c->out, r->shard_id);
            } else {
                wire_key(&c->out, "ErrorCode");
                wire_str(&c->out, r->error_code[0] ? r->error_code : "InternalFailure");
                wire_key(&c->out, "ErrorMessage");
                wire_str(&c->out, r->error_message[0] ? r->error_message
                                                      : "Internal Service Failure");
            }
            wire_end(&c->out);
        }
        wire_end(&c->out);
        wire_end(&c->out);
    }
    respond(c, 0);
    put_job_free(j);
}

static void put_work_cb(uv_work_t *w)
{
    put_exec(w->data);
}

static void put_after_cb(uv_work_t *w, int status)
{
    put_job *j = w->data;
    if (status != 0 && j->rc == 0) j->rc = sl_err_set(&j->c.err, SL_EINTERNAL, "put cancelled");
    put_finish(j);
}

/* Takes over c (request tree, output) into a job; decodes every Data into one buffer. */
static int op_put(op_ctx *c, bool batch)
{
    put_job *j;
    const cJSON *recs = batch ? member(c->req, "Records") : c->req;
    size_t n = batch ? (size_t)cJSON_GetArraySize(recs) : 1, total = 0, i = 0;
    uint8_t *cursor;
    const cJSON *r;
    int rc;

    if ((rc = stream_of(c))) return rc;
    j = sl_calloc(1, sizeof *j);
    if (!j) return sl_err_set(&c->err, SL_ENOMEM, "out of memory");
    j->batch = batch;
    j->n = n;
    j->entries = sl_calloc(n, sizeof *j->entries);
    j->res = sl_malloc(n * sizeof *j->res);
    if (batch) cJSON_ArrayForEach(r, recs) total += json_data_len(r);
    else total = json_data_len(c->req);
    j->data = sl_malloc(total ? total : 1);
    if (!j->entries || !j->res || !j->data) {
        put_job_free(j);
        return sl_err_set(&c->err, SL_ENOMEM, "out of memory");
    }
    memset(j->res, 0, n * sizeof *j->res);
    cursor = j->data;
    if (batch) {
        cJSON_ArrayForEach(r, recs) fill_entry(r, &j->entries[i++], &cursor);
    } else {
        fill_entry(c->req, &j->entries[0], &cursor);
        j->seq_for_ordering = str_member(c->req, "SequenceNumberForOrdering");
    }
    /* The job owns the request from here on. */
    j->c = *c;
    c->req = NULL;
    memset(&c->out, 0, sizeof c->out);
    j->work.data = j;
    if (c->d->cfg && c->d->cfg->fsync == BRK_FSYNC_ALWAYS && c->d->loop) {
        /* Group commit waits for an fsync: keep it off the loop (DESIGN decision 4). */
        rc = uv_queue_work(c->d->loop, &j->work, put_work_cb, put_after_cb);
        if (rc == 0) return OP_ASYNC;
    }
    put_exec(j);
    put_finish(j);
    return OP_ASYNC;
}

static int op_put_record(op_ctx *c)
{
    return op_put(c, false);
}

static int op_put_records(op_ctx *c)
{
    return op_put(c, true);
}

static int op_get_shard_iterator(op_ctx *c)
{
    static const struct {
        const char *name;
        enum brk_iter_type t;
    } types[] = {
        {"AT_SEQUENCE_NUMBER", BRK_AT_SEQUENCE_NUMBER},
        {"AFTER_SEQUENCE_NUMBER", BRK_AFTER_SEQUENCE_NUMBER},
        {"TRIM_HORIZON", BRK_TRIM_HORIZON},
        {"LATEST", BRK_LATEST},
        {"AT_TIMESTAMP", BRK_AT_TIMESTAMP},
    };
    const char *tname = str_member(c->req, "ShardIteratorType");
    const cJSON *ts = member(c->req, "Timestamp");
    enum brk_iter_type t = BRK_LATEST;
    char it[BRK_ITER_MAX];
    int64_t ts_ms = ts ? wire_ts_ms(ts) : 0;
    int rc;

    if ((rc = stream_of(c))) return rc;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(types[i].name, tname)) t = types[i].t;
    if (t == BRK_AT_TIMESTAMP) {
        int64_t now = sl_now_ms();
        if (ts_ms > now)
            return sl_err_set(&c->err, SL_EINVAL,
                              "The timestampInMillis parameter cannot be greater than the "
                              "currentTimestampInMillis. timestampInMillis: %lld, "
                              "currentTimestampInMillis: %lld",
                              (long long)ts_ms, (long long)now);
    }
    rc = brk_get_iterator(c->d->broker, c->stream, str_member(c->req, "ShardId"), t,
                          str_member(c->req, "StartingSequenceNumber"), ts != NULL, ts_ms, it,
                          &c->err);
    if (rc) return rc;
    wire_map(&c->out, 1);
    wire_key(&c->out, "ShardIterator");
    wire_str(&c->out, it);
    wire_end(&c->out);
    return 0;
}

static int op_get_records(op_ctx *c)
{
    brk_records recs;
    int64_t limit = 10000;
    size_t bytes = 0;
    bool at_end;
    int rc;

    int_member(c->req, "Limit", &limit);
    if (str_member(c->req, "StreamARN")) {
        char name[129];
        rc = brk_stream_name_from_arn(c->d->broker, str_member(c->req, "StreamARN"), name,
                                      sizeof name, &c->err);
        if (rc) return rc;
    }
    memset(&recs, 0, sizeof recs);
    rc = brk_get_records(c->d->broker, str_member(c->req, "ShardIterator"), (uint32_t)limit, &recs,
                         &c->err);
    if (rc) return rc;
    at_end = recs.next_iterator[0] == '\0';
    for (size_t i = 0; i < recs.n; i++)
        bytes += wire_b64_len(recs.recs[i].data_len) + recs.recs[i].pk_len * 6 + 200;
    wire_reserve(&c->out, 1024 + bytes);
    /* Records, MillisBehindLatest, and NextShardIterator or (at shard end) ChildShards */
    wire_map(&c->out, 3);
    wire_key(&c->out, "Records");
    wire_arr(&c->out, recs.n);
    for (size_t i = 0; i < recs.n; i++) {
        const brk_record *r = &recs.recs[i];
        wire_map(&c->out, 4);
        wire_key(&c->out, "SequenceNumber");
        wire_str(&c->out, r->seq);
        wire_key(&c->out, "ApproximateArrivalTimestamp");
        wire_ts(&c->out, r->arrival_ms);
        wire_key(&c->out, "Data");
        wire_blob(&c->out, r->data, r->data_len);
        wire_key(&c->out, "PartitionKey");
        wire_strn(&c->out, r->partition_key, r->pk_len);
        wire_end(&c->out);
    }
    wire_end(&c->out);
    if (!at_end) {
        wire_key(&c->out, "NextShardIterator");
        wire_str(&c->out, recs.next_iterator);
    }
    wire_key(&c->out, "MillisBehindLatest");
    wire_int(&c->out, recs.millis_behind);
    if (at_end) {
        /* Shard end: NextShardIterator absent (null) and the children listed (SPEC 2.9). */
        wire_key(&c->out, "ChildShards");
        wire_arr(&c->out, recs.nchildren);
        for (size_t i = 0; i < recs.nchildren && i < 2; i++) {
            const brk_child_shard *ch = &recs.children[i];
            wire_map(&c->out, 3);
            wire_key(&c->out, "ShardId");
            wire_str(&c->out, ch->shard_id);
            wire_key(&c->out, "ParentShards");
            wire_arr(&c->out, ch->nparents);
            for (size_t k = 0; k < ch->nparents && k < 2; k++) wire_str(&c->out, ch->parents[k]);
            wire_end(&c->out);
            wire_key(&c->out, "HashKeyRange");
            wire_map(&c->out, 2);
            wire_key(&c->out, "StartingHashKey");
            wire_str(&c->out, ch->start_hash);
            wire_key(&c->out, "EndingHashKey");
            wire_str(&c->out, ch->end_hash);
            wire_end(&c->out);
            wire_end(&c->out);
        }
        wire_end(&c->out);
    }
    wire_end(&c->out);
    brk_records_free(&recs);
    return 0;
}

static int op_split_shard(op_ctx *c)
{
    int rc = stream_of(c);
    if (rc) return rc;
    return brk_split_shard(c->d->broker, c->stream, str_member(c->req, "ShardToSplit"),
                           str_member(c->req, "NewStartingHashKey"), &c->err);
}

static int op_merge_shards(op_ctx *c)
{
    int rc = stream_of(c);
    if (rc) return rc;
    return brk_merge_shards(c->d->broker, c->stream, str_member(c->req, "ShardToMerge"),
                            str_member(c->req, "AdjacentShardToMerge"), &c->err);
}

static int op_update_shard_count(op_ctx *c)
{
    int64_t target = 0;
    uint32_t current = 0;
    char arn[256];
    int rc = stream_of(c);

    if (rc) return rc;
    int_member(c->req, "TargetShardCount", &target);
    rc = brk_update_shard_count(c->d->broker, c->stream, (uint32_t)target, &current, &c->err);
    if (rc) return rc;
    if (brk_stream_arn(c->d->broker, c->stream, arn, sizeof arn) != 0) arn[0] = '\0';
    wire_map(&c->out, 4);
    wire_key(&c->out, "StreamName");
    wire_str(&c->out, c->stream);
    wire_key(&c->out, "CurrentShardCount");
    wire_int(&c->out, current);
    wire_key(&c->out, "TargetShardCount");
    wire_int(&c->out, target);
    wire_key(&c->out, "StreamARN");
    wire_str(&c->out, arn);
    wire_end(&c->out);
    return 0;
}

static int retention(op_ctx *c, bool increase)
{
    int64_t hours = 0;
    int rc = stream_of(c);
    if (rc) return rc;
    int_member(c->req, "RetentionPeriodHours", &hours);
    if (hours > UINT32_MAX) hours = UINT32_MAX;
    if (increase) return brk_retention_increase(c->d->broker, c->stream, (uint32_t)hours, &c->err);
    return brk_retention_decrease(c->d->broker, c->stream, (uint32_t)hours, &c->err);
}

static int op_increase_retention(op_ctx *c)
{
    return retention(c, true);
}

static int op_decrease_retention(op_ctx *c)
{
    return retention(c, false);
}

static int op_add_tags(op_ctx *c)
{
    const cJSON *tags = member(c->req, "Tags"), *t;
    size_t n = (size_t)cJSON_GetArraySize(tags), i = 0;
    brk_tag *tv;
    int rc = stream_of(c);

    if (rc) return rc;
    tv = sl_calloc(n ? n : 1, sizeof *tv);
    if (!tv) return sl_err_set(&c->err, SL_ENOMEM, "out of memory");
    cJSON_ArrayForEach(t, tags) {
        tv[i].key = t->string;
        tv[i].value = cJSON_IsString(t) ? t->valuestring : (char *)"";
        i++;
    }
    rc = brk_tags_add(c->d->broker, c->stream, tv, i, &c->err);
    sl_free(tv);
    return rc;
}

static int op_remove_tags(op_ctx *c)
{
    const cJSON *keys = member(c->req, "TagKeys"), *k;
    size_t n = (size_t)cJSON_GetArraySize(keys), i = 0;
    char **kv;
    int rc = stream_of(c);

    if (rc) return rc;
    kv = sl_calloc(n ? n : 1, sizeof *kv);
    if (!kv) return sl_err_set(&c->err, SL_ENOMEM, "out of memory");
    cJSON_ArrayForEach(k, keys) {
        if (cJSON_IsString(k)) kv[i++] = k->valuestring;
    }
    rc = brk_tags_remove(c->d->broker, c->stream, kv, i, &c->err);
    sl_free(kv);
    return rc;
}

static int op_list_tags(op_ctx *c)
{
    brk_tag *tags = NULL;
    size_t n = 0, first = 0, count;
    int64_t limit = LIST_TAGS_DEFAULT;
    const char *start = str_member(c->req, "ExclusiveStartTagKey");
    int rc = stream_of(c);

    if (rc) return rc;
    int_member(c->req, "Limit", &limit);
    rc = brk_tags_list(c->d->broker, c->stream, &tags, &n, &c->err);
    if (rc) return rc;
    if (start)
        while (first < n && strcmp(tags[first].key, start) <= 0) first++;
    count = n - first;
    if (count > (size_t)limit) count = (size_t)limit;
    wire_map(&c->out, 2);
    wire_key(&c->out, "Tags");
    wire_arr(&c->out, count);
    for (size_t i = 0; i < count; i++) {
        wire_map(&c->out, 2);
        wire_key(&c->out, "Key");
        wire_str(&c->out, tags[first + i].key);
        wire_key(&c->out, "Value");
        wire_str(&c->out, tags[first + i].value ? tags[first + i].value : "");
        wire_end(&c->out);
    }
    wire_end(&c->out);
    wire_key(&c->out, "HasMoreTags");
    wire_bool(&c->out, first + count < n);
    wire_end(&c->out);
    brk_tags_free(tags, n);
    return 0;
}

static int op_describe_limits(op_ctx *c)
{
    brk_stats st;
    char **names = NULL;
    size_t n = 0;
    uint32_t on_demand = 0;
    int rc;

    brk_get_stats(c->d->broker, &st);
    rc = brk_stream_list(c->d->broker, &names, &n);
    if (rc) return sl_err_set(&c->err, rc, "cannot list streams: %s", sl_strerror(rc));
    for (size_t i = 0; i < n; i++) {
        brk_stream_info info;
        sl_err e;
        if (brk_stream_describe(c->d->broker, names[i], &info, &e) != 0) continue;
        if (info.mode == BRK_ON_DEMAND) on_demand++;
        brk_stream_info_free(&info);
    }
    brk_names_free(names, n);
    wire_map(&c->out, 4);
    wire_key(&c->out, "ShardLimit");
    wire_int(&c->out, SHARD_LIMIT);
    wire_key(&c->out, "OpenShardCount");
    wire_int(&c->out, st.open_shards);
    wire_key(&c->out, "OnDemandStreamCount");
    wire_int(&c->out, on_demand);
    wire_key(&c->out, "OnDemandStreamCountLimit");
    wire_int(&c->out, ON_DEMAND_STREAM_LIMIT);
    wire_end(&c->out);
    return 0;
}

static int op_update_stream_mode(op_ctx *c)
{
    const cJSON *md = member(c->req, "StreamModeDetails");
    const char *mode = str_member(md, "StreamMode");
    int rc = stream_of(c);
    if (rc) return rc;
    return brk_stream_set_mode(c->d->broker, c->stream,
                               !strcmp(mode, "ON_DEMAND") ? BRK_ON_DEMAND : BRK_PROVISIONED,
                               &c->err);
}

static const op_def ops[] = {
    {"AddTagsToStream", s_add_tags, op_add_tags, check_add_tags},
    {"CreateStream", s_create, op_create_stream, check_create},
    {"DecreaseStreamRetentionPeriod", s_retention, op_decrease_retention, NULL},
    {"DeleteStream", s_delete, op_delete_stream, NULL},
    {"DescribeLimits", s_none, op_describe_limits, NULL},
    {"DescribeStream", s_describe, op_describe_stream, NULL},
    {"DescribeStreamSummary", s_summary, op_describe_summary, NULL},
    {"GetRecords", s_get_records, op_get_records, NULL},
    {"GetShardIterator", s_get_iterator, op_get_shard_iterator, check_get_iterator},
    {"IncreaseStreamRetentionPeriod", s_retention, op_increase_retention, NULL},
    {"ListShards", s_list_shards, op_list_shards, check_list_shards},
    {"ListStreams", s_list_streams, op_list_streams, NULL},
    {"ListTagsForStream", s_list_tags, op_list_tags, NULL},
    {"MergeShards", s_merge, op_merge_shards, NULL},
    {"PutRecord", s_put_record, op_put_record, NULL},
    {"PutRecords", s_put_records, op_put_records, NULL},
    {"RemoveTagsFromStream", s_remove_tags, op_remove_tags, NULL},
    {"SplitShard", s_split, op_split_shard, NULL},
    {"UpdateShardCount", s_update_count, op_update_shard_count, NULL},
    {"UpdateStreamMode", s_update_mode, op_update_stream_mode, NULL},
};

static const op_def *find_op(const char *name)
{
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(ops[i].name, name)) return &ops[i];
    return NULL;
}

bool api_kinesis_known(const char *op)
{
    return find_op(op) != NULL;
}

const val_field *api_kinesis_schema(const char *op)
{
    const op_def *d = find_op(op);
    return d ? d->schema : NULL;
}

static int parse_with(const op_def *def, enum wire_fmt fmt, const uint8_t *body, size_t len,
                      cJSON **req, sl_err *err)
{
    cJSON *tree = NULL;
    int rc = wire_decode(fmt, body, len, &tree, err);
    if (rc) return rc;
    rc = val_check(tree, def->schema, err);
    if (rc == 0 && def->check) rc = def->check(tree, err);
    if (rc) {
        cJSON_Delete(tree);
        return rc;
    }
    *req = tree;
    return 0;
}

int api_kinesis_parse(const char *op, enum wire_fmt fmt, const uint8_t *body, size_t len,
                      cJSON **req, sl_err *err)
{
    const op_def *def = find_op(op);
    if (!def)
        return sl_err_set(err, SL_EINVAL, "Unknown operation %s", op);
    return parse_with(def, fmt, body, len, req, err);
}

/* Sends the outcome of an operation and releases the context's request and output. */
static void respond(op_ctx *c, int rc)
{
    if (rc) {
        if (c->err.code != rc) sl_err_set(&c->err, rc, "%s", sl_strerror(rc));
        api_send_sl_error(c->x, c->fmt, &c->err);
    } else if (c->out.oom) {
        sl_err e;
        sl_err_set(&e, SL_ENOMEM, "out of memory encoding the response");
        api_send_sl_error(c->x, c->fmt, &e);
    } else {
        api_send(c->x, 200, wire_content_type(c->fmt), c->out.buf, c->out.len, NULL, 0);
    }
}

void api_kinesis_handle(rt_daemon *d, http_exchange *x, const char *op, enum wire_fmt fmt)
{
    const http_request *r = http_exchange_request(x);
    const op_def *def = find_op(op);
    op_ctx c;
    int rc;

    memset(&c, 0, sizeof c);
    c.d = d;
    c.x = x;
    c.fmt = fmt;
    if (!def) {
        api_send_error(x, fmt, "UnknownOperationException", "");
        return;
    }
    rc = parse_with(def, fmt, r->body, r->body_len, &c.req, &c.err);
    if (rc == 0) {
        wire_out_init(&c.out, fmt, 512);
        rc = def->fn(&c);
        if (rc == OP_ASYNC) return;  /* the job answers and frees */
    }
    respond(&c, rc);
    cJSON_Delete(c.req);
    wire_out_free(&c.out);
}
