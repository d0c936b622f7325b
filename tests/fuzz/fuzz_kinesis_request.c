/* fuzz_kinesis_request.c — libFuzzer target for the Kinesis request path that runs before the
 * broker: wire decoding (JSON via cJSON, CBOR via libcbor), schema validation with AWS messages,
 * the operations' broker-free checks, strict base64, NextToken decoding and the error-body
 * writer. Input: byte 0 picks the format (bit 7) and the operation (low bits); the rest is the
 * request body. Nothing here may crash, leak or read out of bounds on any input.
 *
 *   make fuzz && build/fuzz/fuzz_kinesis_request -max_total_time=60 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "runtime/api_kinesis.h"
#include "runtime/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ops[] = {
    "AddTagsToStream", "CreateStream", "DecreaseStreamRetentionPeriod", "DeleteStream",
    "DescribeLimits", "DescribeStream", "DescribeStreamSummary", "GetRecords",
    "GetShardIterator", "IncreaseStreamRetentionPeriod", "ListShards", "ListStreams",
    "ListTagsForStream", "MergeShards", "PutRecord", "PutRecords", "RemoveTagsFromStream",
    "SplitShard", "UpdateShardCount", "UpdateStreamMode",
};
#define NOPS (sizeof ops / sizeof ops[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *req = NULL;
    sl_err err;
    enum wire_fmt fmt;
    const char *op;
    uint8_t *body = NULL;
    size_t blen = 0;

    if (size < 1) return 0;
    fmt = (data[0] & 0x80) ? WIRE_CBOR : WIRE_JSON;
    op = ops[(data[0] & 0x7f) % NOPS];
    data++;
    size--;

    memset(&err, 0, sizeof err);
    if (api_kinesis_parse(op, fmt, data, size, &req, &err) == 0) {
        /* a valid request: walk it the way the operations do */
        const cJSON *recs = cJSON_GetObjectItemCaseSensitive(req, "Records");
        const cJSON *r;
        if (cJSON_IsArray(recs)) {
            cJSON_ArrayForEach(r, recs) {
                const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "Data");
                if (cJSON_IsString(d)) {
                    size_t n = 0, l = strlen(d->valuestring);
                    sl_err e2;
                    if (wire_b64_check(d->valuestring, l, &n, &e2) == 0) {
                        uint8_t *out = sl_malloc(n + 1);
                        if (out) {
                            size_t got = wire_b64_decode(d->valuestring, l, out);
                            if (got != n) __builtin_trap();
                            sl_free(out);
                        }
                    }
                }
            }
        }
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(req, "NextToken");
        if (cJSON_IsString(tok)) {
            uint8_t key[32] = {1};
            char *payload = NULL;
            if (api_token_decode(key, tok->valuestring, 0, &payload, &err) == 0) sl_free(payload);
        }
        cJSON_Delete(req);
    } else {
        if (req) __builtin_trap(); /* out-params are written only on success */
        /* the error answer for whatever message came out */
        if (wire_error_body(fmt, "SerializationException", err.msg, &body, &blen) == 0) {
            cJSON *back = NULL;
            sl_err e3;
            /* our own error bodies must decode again */
            if (wire_decode(fmt, body, blen, &back, &e3) != 0) __builtin_trap();
            cJSON_Delete(back);
            sl_free(body);
        }
    }
    return 0;
}
