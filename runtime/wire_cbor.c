/* wire_cbor.c — the CBOR side of wire.h: AWS's legacy "x-amz-cbor-1.1" (SPEC 1.1). Requests are
 * parsed with libcbor's cbor_load and converted into the same cJSON tree the JSON path yields;
 * responses are written with libcbor's streaming encoders into the writer's buffer. */
#include "runtime/wire.h"

#include <math.h>
#include <string.h>

#include <cbor.h>

#define CBOR_MAX_DEPTH 64

/* ---- blob nodes ----------------------------------------------------------------------------- */

cJSON *wire_blob_new(const uint8_t *p, size_t n)
{
    cJSON *node;
    char *bytes;

    if (n > (size_t)INT32_MAX) return NULL;
    node = cJSON_CreateNull();
    if (!node) return NULL;
    /* cJSON_Delete releases valuestring of a Raw node with cJSON_free, so allocate with
     * cJSON_malloc. */
    bytes = cJSON_malloc(n + 1);
    if (!bytes) {
        cJSON_Delete(node);
        return NULL;
    }
    if (n) memcpy(bytes, p, n);
    bytes[n] = '\0';
    node->type = cJSON_Raw;
    node->valuestring = bytes;
    node->valueint = (int)n;
    node->valuedouble = (double)n;
    return node;
}

bool wire_is_blob(const cJSON *node)
{
    return node && (node->type & 0xff) == cJSON_Raw;
}

void wire_blob_bytes(const cJSON *node, const uint8_t **p, size_t *n)
{
    *p = (const uint8_t *)node->valuestring;
    *n = node->valueint > 0 ? (size_t)node->valueint : 0;
}

/* ---- decoding -------------------------------------------------------------------------------- */

/* Concatenates a (possibly indefinite, chunked) byte or text string into a fresh buffer of
 * n + 1 bytes (NUL-terminated). */
static int flat_string(cbor_item_t *it, char **out, size_t *n)
{
    bool is_bytes = cbor_isa_bytestring(it);
    bool indef = is_bytes ? cbor_bytestring_is_indefinite(it) : cbor_string_is_indefinite(it);
    size_t total = 0, nchunks;
    cbor_item_t **chunks;
    char *buf;

    if (!indef) {
        total = is_bytes ? cbor_bytestring_length(it) : cbor_string_length(it);
        buf = cJSON_malloc(total + 1);
        if (!buf) return SL_ENOMEM;
        if (total)
            memcpy(buf, is_bytes ? cbor_bytestring_handle(it) : cbor_string_handle(it), total);
        buf[total] = '\0';
        *out = buf;
        *n = total;
        return 0;
    }
    nchunks = is_bytes ? cbor_bytestring_chunk_count(it) : cbor_string_chunk_count(it);
    chunks = is_bytes ? cbor_bytestring_chunks_handle(it) : cbor_string_chunks_handle(it);
    for (size_t i = 0; i < nchunks; i++)
        total += is_bytes ? cbor_bytestring_length(chunks[i]) : cbor_string_length(chunks[i]);
    buf = cJSON_malloc(total + 1);
    if (!buf) return SL_ENOMEM;
    total = 0;
    for (size_t i = 0; i < nchunks; i++) {
        size_t l = is_bytes ? cbor_bytestring_length(chunks[i]) : cbor_string_length(chunks[i]);
        if (l)
            memcpy(buf + total,
                   is_bytes ? cbor_bytestring_handle(chunks[i]) : cbor_string_handle(chunks[i]), l);
        total += l;
    }
    buf[total] = '\0';
    *out = buf;
    *n = total;
    return 0;
}

static double num_value(cbor_item_t *it, bool *ok)
{
    *ok = true;
    switch (cbor_typeof(it)) {
    case CBOR_TYPE_UINT: return (double)cbor_get_int(it);
    case CBOR_TYPE_NEGINT: return -1.0 - (double)cbor_get_int(it);
    case CBOR_TYPE_FLOAT_CTRL:
        if (cbor_float_ctrl_is_ctrl(it)) break;
        return cbor_float_get_float(it);
    default: break;
    }
    *ok = false;
    return 0;
}

static int convert(cbor_item_t *it, int depth, cJSON **out, sl_err *err)
{
    cJSON *node = NULL;
    int rc = 0;

    if (depth > CBOR_MAX_DEPTH) return sl_err_set(err, SL_ESERIAL, "CBOR nesting too deep");
    switch (cbor_typeof(it)) {
    case CBOR_TYPE_UINT:
    case CBOR_TYPE_NEGINT: {
        bool ok;
        node = cJSON_CreateNumber(num_value(it, &ok));
        break;
    }
    case CBOR_TYPE_BYTESTRING: {
        char *b = NULL;
        size_t n = 0;
        rc = flat_string(it, &b, &n);
        if (rc) break;
        node = wire_blob_new((const uint8_t *)b, n);
        cJSON_free(b);
        break;
    }
    case CBOR_TYPE_STRING: {
        char *s = NULL;
        size_t n = 0;
        rc = flat_string(it, &s, &n);
        if (rc) break;
        if (memchr(s, '\0', n)) {
            cJSON_free(s);
            return sl_err_set(err, SL_ESERIAL, "CBOR text string contains a NUL character");
        }
        node = cJSON_CreateNull();
        if (!node) {
            cJSON_free(s);
            break;
        }
        node->type = cJSON_String;
        node->valuestring = s;
        break;
    }
    case CBOR_TYPE_ARRAY: {
        size_t n = cbor_array_size(it);
        cbor_item_t **items = cbor_array_handle(it);
        node = cJSON_CreateArray();
        if (!node) break;
        cJSON *last = NULL;
        for (size_t i = 0; i < n && !rc; i++) {
            cJSON *child = NULL;
            rc = convert(items[i], depth + 1, &child, err);
            if (rc) break;
            /* Append without cJSON_AddItemToArray's walk to the tail (quadratic). */
            if (!last) node->child = child;
            else {
                last->next = child;
                child->prev = last;
            }
            node->child->prev = child;
            last = child;
        }
        break;
    }
    case CBOR_TYPE_MAP: {
        size_t n = cbor_map_size(it);
        struct cbor_pair *pairs = cbor_map_handle(it);
        node = cJSON_CreateObject();
        if (!node) break;
        cJSON *last = NULL;
        for (size_t i = 0; i < n && !rc; i++) {
            char *key = NULL;
            size_t klen = 0;
            cJSON *child = NULL;
            if (!cbor_isa_string(pairs[i].key)) {
                rc = sl_err_set(err, SL_ESERIAL, "CBOR map keys must be text strings");
                break;
            }
            rc = flat_string(pairs[i].key, &key, &klen);
            if (rc) break;
            if (memchr(key, '\0', klen)) {
                cJSON_free(key);
                rc = sl_err_set(err, SL_ESERIAL, "CBOR map key contains a NUL character");
                break;
            }
            rc = convert(pairs[i].value, depth + 1, &child, err);
            if (rc) {
                cJSON_free(key);
                break;
            }
            child->string = key;
            if (!last) node->child = child;
            else {
                last->next = child;
                child->prev = last;
            }
            node->child->prev = child;
            last = child;
        }
        break;
    }
    case CBOR_TYPE_TAG: {
        cbor_item_t *inner = cbor_tag_item(it);
        if (cbor_tag_value(it) == 1) {
            /* AWS CBOR timestamps: tag 1 wrapping epoch *milliseconds* (SPEC 1.1); the tree
             * holds seconds like JSON. */
            bool ok;
            double ms = num_value(inner, &ok);
            cbor_decref(&inner);
            if (!ok || !isfinite(ms))
                return sl_err_set(err, SL_ESERIAL, "CBOR timestamp (tag 1) must be a number");
            node = cJSON_CreateNumber(ms / 1000.0);
            break;
        }
        rc = convert(inner, depth + 1, &node, err);
        cbor_decref(&inner);
        if (rc) return rc;
        break;
    }
    case CBOR_TYPE_FLOAT_CTRL:
        if (cbor_float_ctrl_is_ctrl(it)) {
            uint8_t c = cbor_ctrl_value(it);
            if (c == CBOR_CTRL_TRUE) node = cJSON_CreateTrue();
            else if (c == CBOR_CTRL_FALSE) node = cJSON_CreateFalse();
            else if (c == CBOR_CTRL_NULL || c == CBOR_CTRL_UNDEF) node = cJSON_CreateNull();
            else return sl_err_set(err, SL_ESERIAL, "Unsupported CBOR simple value %u", c);
        } else {
            double v = cbor_float_get_float(it);
            if (!isfinite(v)) return sl_err_set(err, SL_ESERIAL, "Non-finite CBOR number");
            node = cJSON_CreateNumber(v);
        }
        break;
    }
    if (rc) {
        cJSON_Delete(node);
        return rc;
    }
    if (!node) return sl_err_set(err, SL_ENOMEM, "out of memory");
    *out = node;
    return 0;
}

/* ---- pre-scan ------------------------------------------------------------------------------ *
 * libcbor 0.8's cbor_load allocates a definite array/map for the count its header announces
 * before reading any element, and keeps one heap item per element and per nesting level. A
 * 10-byte body can therefore ask for gigabytes. Before cbor_load, walk the heads with libcbor's
 * allocation-free streaming decoder and refuse counts the remaining bytes cannot hold, nesting
 * deeper than CBOR_MAX_DEPTH and more items than any Kinesis request has (SCAN_MAX_ITEMS). */

#define SCAN_MAX_ITEMS 200000
#define OPEN_INDEF SIZE_MAX

typedef struct cbor_scan {
    size_t remaining_bytes;     /* input left after the current head */
    size_t items;
    int depth;
    size_t left[CBOR_MAX_DEPTH + 2]; /* items still expected per open container */
    bool bad;
    const char *why;
} cbor_scan;

static void scan_fail(cbor_scan *s, const char *why)
{
    if (!s->bad) {
        s->bad = true;
        s->why = why;
    }
}

/* One complete item ended at the current level: count it and close finished containers. */
static void scan_item_done(cbor_scan *s)
{
    while (s->depth > 0 && s->left[s->depth - 1] != OPEN_INDEF) {
        if (--s->left[s->depth - 1] > 0) return;
        s->depth--; /* that container is complete: it is one item of its parent */
    }
}

static void scan_count(cbor_scan *s)
{
    if (++s->items > SCAN_MAX_ITEMS) scan_fail(s, "CBOR request has too many items");
}

static void scan_open(cbor_scan *s, size_t nitems)
{
    scan_count(s);
    if (nitems == 0) {
        scan_item_done(s);
        return;
    }
    if (nitems != OPEN_INDEF && nitems > s->remaining_bytes) {
        scan_fail(s, "CBOR container is longer than the request body");
        return;
    }
    if (s->depth >= CBOR_MAX_DEPTH) {
        scan_fail(s, "CBOR nesting too deep");
        return;
    }
    s->left[s->depth++] = nitems;
}

static void scan_scalar(cbor_scan *s)
{
    scan_count(s);
    scan_item_done(s);
}

static void cb_u8(void *c, uint8_t v) { (void)v; scan_scalar(c); }
static void cb_u16(void *c, uint16_t v) { (void)v; scan_scalar(c); }
static void cb_u32(void *c, uint32_t v) { (void)v; scan_scalar(c); }
static void cb_u64(void *c, uint64_t v) { (void)v; scan_scalar(c); }
static void cb_str(void *c, cbor_data d, size_t n) { (void)d; (void)n; scan_scalar(c); }
static void cb_float(void *c, float v) { (void)v; scan_scalar(c); }
static void cb_double(void *c, double v) { (void)v; scan_scalar(c); }
static void cb_bool(void *c, bool v) { (void)v; scan_scalar(c); }
static void cb_simple(void *c) { scan_scalar(c); }
static void cb_indef(void *c) { scan_open(c, OPEN_INDEF); }
static void cb_array(void *c, size_t n) { scan_open(c, n); }
static void cb_map(void *c, size_t n)
{
    cbor_scan *s = c;
    if (n > SIZE_MAX / 2) scan_fail(s, "CBOR map is longer than the request body");
    else scan_open(s, n * 2);
}
static void cb_tag(void *c, uint64_t v) { (void)v; scan_count(c); } /* prefixes the next item */
static void cb_break(void *c)
{
    cbor_scan *s = c;
    if (s->depth == 0 || s->left[s->depth - 1] != OPEN_INDEF) {
        scan_fail(s, "Unexpected CBOR break");
        return;
    }
    s->depth--;
    scan_item_done(s);
}

static int cbor_prescan(const uint8_t *body, size_t len, sl_err *err)
{
    struct cbor_callbacks cb = cbor_empty_callbacks;
    cbor_scan s;
    size_t off = 0;

    memset(&s, 0, sizeof s);
    s.remaining_bytes = len;
    /* A request is one map (major type 5); anything else is refused before any allocation. */
    if (len == 0 || (body[0] >> 5) != 5)
        return sl_err_set(err, SL_ESERIAL, "Start of structure or map expected");
    cb.uint8 = cb_u8;
    cb.uint16 = cb_u16;
    cb.uint32 = cb_u32;
    cb.uint64 = cb_u64;
    cb.negint8 = cb_u8;
    cb.negint16 = cb_u16;
    cb.negint32 = cb_u32;
    cb.negint64 = cb_u64;
    cb.byte_string = cb_str;
    cb.string = cb_str;
    cb.byte_string_start = cb_indef;
    cb.string_start = cb_indef;
    cb.indef_array_start = cb_indef;
    cb.array_start = cb_array;
    cb.indef_map_start = cb_indef;
    cb.map_start = cb_map;
    cb.tag = cb_tag;
    cb.float2 = cb_float;
    cb.float4 = cb_float;
    cb.float8 = cb_double;
    cb.undefined = cb_simple;
    cb.null = cb_simple;
    cb.boolean = cb_bool;
    cb.indef_break = cb_break;
    while (off < len && !s.bad) {
        struct cbor_decoder_result r = cbor_stream_decode(body + off, len - off, &cb, &s);
        if (r.status != CBOR_DECODER_FINISHED || r.read == 0) break; /* cbor_load reports it */
        off += r.read;
        s.remaining_bytes = len - off;
        /* the callback ran before remaining_bytes was updated: re-check the count it saw */
        if (s.depth > 0 && s.left[s.depth - 1] != OPEN_INDEF &&
            s.left[s.depth - 1] > s.remaining_bytes)
            scan_fail(&s, "CBOR container is longer than the request body");
        if (s.depth == 0) break; /* the top-level item is complete */
    }
    if (s.bad) return sl_err_set(err, SL_ESERIAL, "%s", s.why);
    return 0;
}

int wire_cbor_decode(const uint8_t *body, size_t len, cJSON **out, sl_err *err)
{
    struct cbor_load_result res;
    cbor_item_t *item;
    cJSON *root = NULL;
    int rc;

    if (len == 0) {
        root = cJSON_CreateObject();
        if (!root) return sl_err_set(err, SL_ENOMEM, "out of memory");
        *out = root;
        return 0;
    }
    if ((rc = cbor_prescan(body, len, err)) != 0) return rc;
    item = cbor_load(body, len, &res);
    if (!item || res.error.code != CBOR_ERR_NONE) {
        if (item) cbor_decref(&item);
        if (res.error.code == CBOR_ERR_MEMERROR) return sl_err_set(err, SL_ENOMEM, "out of memory");
        return sl_err_set(err, SL_ESERIAL, "Unable to parse request body as CBOR (at byte %zu)",
                          res.error.position);
    }
    if (res.read != len) {
        cbor_decref(&item);
        return sl_err_set(err, SL_ESERIAL, "Unexpected content after the CBOR document");
    }
    if (!cbor_isa_map(item)) {
        cbor_decref(&item);
        return sl_err_set(err, SL_ESERIAL, "Start of structure or map expected");
    }
    rc = convert(item, 0, &root, err);
    cbor_decref(&item);
    if (rc) return rc;
    *out = root;
    return 0;
}

/* ---- encoding -------------------------------------------------------------------------------- */

/* Heads are at most 9 bytes. */
#define HEAD_MAX 9

void wire__cbor_map(wire_out *w, size_t n)
{
    if (!wire__grow(w, HEAD_MAX)) return;
    w->len += cbor_encode_map_start(n, w->buf + w->len, HEAD_MAX);
}

void wire__cbor_arr(wire_out *w, size_t n)
{
    if (!wire__grow(w, HEAD_MAX)) return;
    w->len += cbor_encode_array_start(n, w->buf + w->len, HEAD_MAX);
}

void wire__cbor_text(wire_out *w, const char *s, size_t n)
{
    if (!wire__grow(w, HEAD_MAX + n)) return;
    w->len += cbor_encode_string_start(n, w->buf + w->len, HEAD_MAX);
    if (n) memcpy(w->buf + w->len, s, n);
    w->len += n;
}

void wire__cbor_bytes(wire_out *w, const uint8_t *p, size_t n)
{
    if (!wire__grow(w, HEAD_MAX + n)) return;
    w->len += cbor_encode_bytestring_start(n, w->buf + w->len, HEAD_MAX);
    if (n) memcpy(w->buf + w->len, p, n);
    w->len += n;
}

void wire__cbor_int(wire_out *w, int64_t v)
{
    if (!wire__grow(w, HEAD_MAX)) return;
    if (v >= 0) w->len += cbor_encode_uint((uint64_t)v, w->buf + w->len, HEAD_MAX);
    else w->len += cbor_encode_negint((uint64_t)(-(v + 1)), w->buf + w->len, HEAD_MAX);
}

void wire__cbor_ts(wire_out *w, int64_t epoch_ms)
{
    /* Tag 1 + integer milliseconds: what AWS's CBOR (and the Java SDKs) use (SPEC 1.1). */
    if (!wire__grow(w, 2 * HEAD_MAX)) return;
    w->len += cbor_encode_tag(1, w->buf + w->len, HEAD_MAX);
    wire__cbor_int(w, epoch_ms);
}

void wire__cbor_bool(wire_out *w, bool v)
{
    if (!wire__grow(w, 1)) return;
    w->len += cbor_encode_bool(v, w->buf + w->len, 1);
}

void wire__cbor_null(wire_out *w)
{
    if (!wire__grow(w, 1)) return;
    w->len += cbor_encode_null(w->buf + w->len, 1);
}
