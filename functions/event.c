/* event.c — the Lambda Kinesis event (SPEC 4.1, 4.2) and handler responses (SPEC 3.6, 3.8).
 *
 * The event is written by hand into one exactly-sized buffer rather than through a cJSON tree:
 * the ESM builds one per batch (up to 10,000 records, 6 MB), and the sizes the ESM adds up while
 * filling a batch (fn_event_record_size + fn_event_overhead) must equal the built length. So
 * every piece below has a "length of" twin, and fn_event_build asserts that they agree.
 *
 * Layout: {"Records":[<sep>record<sep>record...]<window fields>}, where <sep> is a space before
 * the first record and a comma before the others. One separator byte per record makes the
 * accounting exact for every n, including the empty Records list of a window's final invoke.
 *
 * Escaping is by hand because it must be counted byte for byte (invalid UTF-8 becomes \ufffd,
 * control characters \u00XX); base64 is by hand for speed (see b64_put). Responses are small
 * and arbitrary, so they are parsed with cJSON.
 */
#include "functions/event.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "broker/sl_common.h"

/* ---- JSON string escaping ------------------------------------------------------------------ *
 * Quotes and backslashes get a backslash, control characters become \u00XX, valid UTF-8 is kept
 * as is. Bytes that are not valid UTF-8 become \ufffd, so the output is always valid JSON. */

#define REPLACEMENT "\\ufffd"
#define REPLACEMENT_LEN 6

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when the bytes are not valid UTF-8. */
static size_t utf8_seq(const uint8_t *p, size_t rem)
{
    uint8_t c = p[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        return rem >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (rem < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] > 0x9F) return 0; /* surrogates */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (rem < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) {
            return 0;
        }
        if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && p[1] > 0x8F) return 0; /* beyond U+10FFFF */
        return 4;
    }
    return 0;
}

/* Length of the leading run of bytes that are copied as they are (printable ASCII other than
 * '"' and '\\'). Eight bytes at a time with the usual SWAR tests: a byte < 0x20, >= 0x80, or
 * equal to '"' or '\\' stops the run. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
static inline uint64_t has_zero(uint64_t x)
{
    return (x - ONES) & ~x & HIGHS;
}
static size_t plain_run(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i + 8 <= n) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        uint64_t stop = (x & HIGHS) | ((x - ONES * 0x20) & ~x & HIGHS) |
                        has_zero(x ^ (ONES * '"')) | has_zero(x ^ (ONES * '\\'));
        if (stop) break;
        i += 8;
    }
    while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\') i++;
    return i;
}

static size_t esc_len(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t out = 0;
    size_t i = 0;
    while (i < n) {
        size_t run = plain_run(p + i, n - i);
        out += run;
        i += run;
        if (i >= n) break;
        uint8_t c = p[i];
        if (c < 0x20) {
            out += 6;
            i++;
        } else if (c < 0x80) {
            out += 2; /* '"' or '\\' */
            i++;
        } else {
            size_t k = utf8_seq(p + i, n - i);
            out += k ? k : REPLACEMENT_LEN;
            i += k ? k : 1;
        }
    }
    return out;
}

static char *esc_put(char *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        size_t run = plain_run(p + i, n - i);
        memcpy(o, p + i, run);
        o += run;
        i += run;
        if (i >= n) break;
        uint8_t c = p[i];
        if (c < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
            i++;
        } else if (c < 0x80) {
            *o++ = '\\';
            *o++ = (char)c;
            i++;
        } else {
            size_t k = utf8_seq(p + i, n - i);
            if (k == 0) {
                memcpy(o, REPLACEMENT, REPLACEMENT_LEN);
                o += REPLACEMENT_LEN;
                i++;
            } else {
                memcpy(o, p + i, k);
                o += k;
                i += k;
            }
        }
    }
    return o;
}

static inline const char *nz(const char *s)
{
    return s ? s : "";
}

#define LIT(o, s) (memcpy((o), (s), sizeof(s) - 1), (o) + sizeof(s) - 1)

/* ---- numbers and times --------------------------------------------------------------------- */

/* "1714644901.421": epoch seconds with a 3-digit ms fraction, never exponent form. */
static size_t ts_put(char *buf, int64_t ms)
{
    char tmp[32];
    size_t n = 0;
    uint64_t a = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    uint64_t sec = a / 1000;
    unsigned frac = (unsigned)(a % 1000);
    tmp[n++] = (char)('0' + frac % 10);
    tmp[n++] = (char)('0' + frac / 10 % 10);
    tmp[n++] = (char)('0' + frac / 100);
    tmp[n++] = '.';
    do {
        tmp[n++] = (char)('0' + sec % 10);
        sec /= 10;
    } while (sec);
    if (ms < 0) tmp[n++] = '-';
    for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    return n;
}

/* "2024-05-02T10:14:00Z" (whole seconds, UTC). Returns the length (20 for years 0..9999). */
static size_t iso_sec_put(char *buf, size_t cap, int64_t ms)
{
    int64_t sec = ms / 1000;
    if (ms % 1000 < 0) sec--;
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = 70;
        tm.tm_mday = 1;
    }
    int n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return n < 0 ? 0 : (size_t)n;
}

/* ---- one record ---------------------------------------------------------------------------- */

#define R1 "{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\",\"partitionKey\":\""
#define R2 "\",\"sequenceNumber\":\""
#define R3 "\",\"data\":\""
#define R4 "\",\"approximateArrivalTimestamp\":"
#define R5 "},\"eventSource\":\"aws:kinesis\",\"eventVersion\":\"1.0\",\"eventID\":\""
#define R6 "\",\"eventName\":\"aws:kinesis:record\",\"invokeIdentityArn\":\""
#define R7 "\",\"awsRegion\":\""
#define R8 "\",\"eventSourceARN\":\""
#define R9 "\"}"
#define RFIXED                                                                               \
    (sizeof(R1) + sizeof(R2) + sizeof(R3) + sizeof(R4) + sizeof(R5) + sizeof(R6) + sizeof(R7) + \
     sizeof(R8) + sizeof(R9) - 9 + 1 /* ':' of eventID */ + 1 /* separator */)

/* Escaped lengths of the per-source strings. */
typedef struct src_lens {
    size_t role, region, arn;
} src_lens;

static void src_lens_of(const fn_event_source *src, src_lens *l)
{
    const char *role = src ? nz(src->role_arn) : "";
    const char *region = src ? nz(src->region) : "";
    const char *arn = src ? nz(src->stream_arn) : "";
    l->role = esc_len(role, strlen(role));
    l->region = esc_len(region, strlen(region));
    l->arn = esc_len(arn, strlen(arn));
}

static size_t b64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

static size_t ts_len(int64_t ms)
{
    uint64_t sec = (ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms) / 1000;
    size_t n = 4 + (ms < 0); /* ".mmm" and the sign */
    do {
        n++;
        sec /= 10;
    } while (sec);
    return n;
}

/* Bytes of record r without the per-source strings (whose escaped lengths are in l). */
static size_t record_size(const src_lens *l, const fn_event_record *r, size_t shard_len)
{
    const char *seq = nz(r->seq);
    size_t seq_len = esc_len(seq, strlen(seq));
    size_t pk = r->partition_key ? esc_len(r->partition_key, r->pk_len) : 0;
    return RFIXED + pk + 2 * seq_len + b64_len(r->data ? r->data_len : 0) +
           ts_len(r->arrival_ms) + shard_len + l->role + l->region + l->arn;
}

/* Standard base64, by hand: OpenSSL's EVP_EncodeBlock costs about 1 ns per input byte, which
 * was most of the time spent building an event; a table of all 4096 sextet pairs writes two
 * output characters per lookup and is several times faster. */
static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static char b64_pairs[4096][2];
static pthread_once_t b64_once = PTHREAD_ONCE_INIT;

static void b64_init(void)
{
    for (int i = 0; i < 4096; i++) {
        b64_pairs[i][0] = B64[i >> 6];
        b64_pairs[i][1] = B64[i & 63];
    }
}

static char *b64_put(char *o, const uint8_t *d, size_t n)
{
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)d[i] << 16) | ((uint32_t)d[i + 1] << 8) | d[i + 2];
        memcpy(o, b64_pairs[v >> 12], 2);
        memcpy(o + 2, b64_pairs[v & 0xFFF], 2);
        o += 4;
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)d[i] << 16;
        memcpy(o, b64_pairs[v >> 12], 2);
        o[2] = '=';
        o[3] = '=';
        o += 4;
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)d[i] << 16) | ((uint32_t)d[i + 1] << 8);
        memcpy(o, b64_pairs[v >> 12], 2);
        o[2] = B64[(v >> 6) & 63];
        o[3] = '=';
        o += 4;
    }
    return o;
}

/* Per-build cache: the record tail that only depends on the source (escaped once), and the
 * escaped shard id of the previous record (a batch comes from one shard). */
typedef struct build_ctx {
    char *tail;          /* R6 role R7 region R8 arn R9 */
    size_t tail_len;
    const char *shard;   /* raw shard id the cache holds */
    char shard_esc[160];
    size_t shard_esc_len;
} build_ctx;

static size_t shard_len_cached(build_ctx *c, const char *shard)
{
    if (c->shard && (c->shard == shard || strcmp(c->shard, shard) == 0)) {
        return c->shard_esc_len;
    }
    size_t n = strlen(shard);
    size_t e = esc_len(shard, n);
    if (e <= sizeof(c->shard_esc)) {
        esc_put(c->shard_esc, shard, n);
        c->shard = shard;
        c->shard_esc_len = e;
    } else {
        c->shard = NULL;
    }
    return e;
}

static char *record_put(char *o, build_ctx *c, const fn_event_record *r)
{
    const char *seq = nz(r->seq);
    const char *shard = nz(r->shard_id);
    o = LIT(o, R1);
    if (r->partition_key) o = esc_put(o, r->partition_key, r->pk_len);
    o = LIT(o, R2);
    char *seq_at = o;
    o = esc_put(o, seq, strlen(seq));
    size_t seq_esc = (size_t)(o - seq_at);
    o = LIT(o, R3);
    if (r->data) o = b64_put(o, r->data, r->data_len);
    o = LIT(o, R4);
    o += ts_put(o, r->arrival_ms);
    o = LIT(o, R5);
    size_t sl = shard_len_cached(c, shard);
    if (c->shard) memcpy(o, c->shard_esc, sl);
    else esc_put(o, shard, strlen(shard));
    o += sl;
    *o++ = ':';
    memmove(o, seq_at, seq_esc);
    o += seq_esc;
    memcpy(o, c->tail, c->tail_len);
    return o + c->tail_len;
}

size_t fn_event_record_size(const fn_event_source *src, const fn_event_record *r)
{
    src_lens l;
    if (!r) return 0;
    src_lens_of(src, &l);
    const char *shard = nz(r->shard_id);
    return record_size(&l, r, esc_len(shard, strlen(shard)));
}

/* ---- the envelope -------------------------------------------------------------------------- */

#define E_HEAD "{\"Records\":["
#define E_TAIL "]"
#define E_END "}"
#define W1 ",\"window\":{\"start\":\""
#define W2 "\",\"end\":\""
#define W3 "\"},\"state\":"
#define W4 ",\"shardId\":\""
#define W5 "\",\"eventSourceARN\":\""
#define W6 "\",\"isFinalInvokeForWindow\":"
#define W7 ",\"isWindowTerminatedEarly\":"

/* The state goes in verbatim: it is the object fn_event_parse_window printed (valid JSON). */
static const char *window_state(const fn_event_window *w)
{
    return (w->state_json && w->state_json[0]) ? w->state_json : "{}";
}

static size_t window_size(const fn_event_source *src, const fn_event_window *w)
{
    char tmp[64];
    const char *shard = nz(w->shard_id);
    const char *arn = src ? nz(src->stream_arn) : "";
    return sizeof(W1) + sizeof(W2) + sizeof(W3) + sizeof(W4) + sizeof(W5) + sizeof(W6) +
           sizeof(W7) - 7 + iso_sec_put(tmp, sizeof(tmp), w->start_ms) +
           iso_sec_put(tmp, sizeof(tmp), w->end_ms) + strlen(window_state(w)) +
           esc_len(shard, strlen(shard)) + esc_len(arn, strlen(arn)) +
           (w->final_invoke ? 4 : 5) + (w->terminated_early ? 4 : 5);
}

static char *window_put(char *o, const fn_event_source *src, const fn_event_window *w)
{
    const char *shard = nz(w->shard_id);
    const char *arn = nz(src->stream_arn);
    const char *state = window_state(w);
    size_t state_n = strlen(state);
    o = LIT(o, W1);
    o += iso_sec_put(o, 64, w->start_ms);
    o = LIT(o, W2);
    o += iso_sec_put(o, 64, w->end_ms);
    o = LIT(o, W3);
    memcpy(o, state, state_n);
    o += state_n;
    o = LIT(o, W4);
    o = esc_put(o, shard, strlen(shard));
    o = LIT(o, W5);
    o = esc_put(o, arn, strlen(arn));
    o = LIT(o, W6);
    o = w->final_invoke ? LIT(o, "true") : LIT(o, "false");
    o = LIT(o, W7);
    o = w->terminated_early ? LIT(o, "true") : LIT(o, "false");
    return o;
}

size_t fn_event_overhead(const fn_event_source *src, const fn_event_window *w)
{
    size_t n = sizeof(E_HEAD) - 1 + sizeof(E_TAIL) - 1 + sizeof(E_END) - 1;
    if (w) n += window_size(src, w);
    return n;
}

int fn_event_build(const fn_event_source *src, const fn_event_record *recs, size_t n,
                   const fn_event_window *w, char **out, size_t *len)
{
    src_lens l;
    build_ctx c;
    char *buf = NULL;
    if (!src || !out || (n > 0 && !recs)) return SL_EINVAL;
    pthread_once(&b64_once, b64_init);
    memset(&c, 0, sizeof(c));
    src_lens_of(src, &l);
    c.tail_len = sizeof(R6) + sizeof(R7) + sizeof(R8) + sizeof(R9) - 4 + l.role + l.region +
                 l.arn;
    c.tail = sl_malloc(c.tail_len + 1);
    if (!c.tail) return SL_ENOMEM;
    char *t = c.tail;
    t = LIT(t, R6);
    t = esc_put(t, nz(src->role_arn), strlen(nz(src->role_arn)));
    t = LIT(t, R7);
    t = esc_put(t, nz(src->region), strlen(nz(src->region)));
    t = LIT(t, R8);
    t = esc_put(t, nz(src->stream_arn), strlen(nz(src->stream_arn)));
    t = LIT(t, R9);
    SL_ASSERT((size_t)(t - c.tail) == c.tail_len);

    size_t total = fn_event_overhead(src, w);
    for (size_t i = 0; i < n; i++) {
        total += record_size(&l, &recs[i], shard_len_cached(&c, nz(recs[i].shard_id)));
    }
    /* + 64: iso_sec_put may format into up to 64 bytes at the window position (snprintf bound);
     * the bytes actually written are counted exactly. */
    buf = sl_malloc(total + 64 + 1);
    if (!buf) {
        sl_free(c.tail);
        return SL_ENOMEM;
    }
    char *o = buf;
    o = LIT(o, E_HEAD);
    for (size_t i = 0; i < n; i++) {
        *o++ = i == 0 ? ' ' : ',';
        o = record_put(o, &c, &recs[i]);
    }
    o = LIT(o, E_TAIL);
    if (w) o = window_put(o, src, w);
    o = LIT(o, E_END);
    *o = '\0';
    SL_ASSERT((size_t)(o - buf) == total);
    sl_free(c.tail);
    *out = buf;
    if (len) *len = total;
    return 0;
}

/* ---- responses ----------------------------------------------------------------------------- */

static bool all_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') return false;
    }
    return true;
}

/* Parses a whole JSON text (trailing garbage is an error). *blank is set for an empty/blank
 * body, which a handler that returns nothing produces (treated as null). */
static cJSON *parse_all(const char *resp, size_t len, bool *blank)
{
    *blank = false;
    if (!resp || all_blank(resp, len)) {
        *blank = true;
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(resp, len, &end, false);
    if (!root) return NULL;
    size_t used = (size_t)(end - resp);
    if (used > len || !all_blank(end, len - used)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Index of seq in the batch, or -1. Batches are in sequence order (equal-width decimal strings),
 * so a binary search works when they are strictly increasing; otherwise scan. */
static long seq_index(const char *id, const char *const *seqs, size_t n, bool sorted)
{
    if (sorted) {
        size_t lo = 0, hi = n;
        size_t idlen = strlen(id);
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            size_t ml = strlen(seqs[mid]);
            int c = ml != idlen ? (ml < idlen ? -1 : 1) : strcmp(seqs[mid], id);
            if (c == 0) return (long)mid;
            if (c < 0) lo = mid + 1;
            else hi = mid;
        }
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (seqs[i] && strcmp(seqs[i], id) == 0) return (long)i;
    }
    return -1;
}

/* Numeric order of decimal strings: shorter is smaller, then lexicographic. */
static bool seqs_sorted(const char *const *seqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!seqs[i]) return false;
        if (i > 0) {
            size_t a = strlen(seqs[i - 1]), b = strlen(seqs[i]);
            if (a > b || (a == b && strcmp(seqs[i - 1], seqs[i]) >= 0)) return false;
        }
    }
    return true;
}

/* SPEC 3.6 on a parsed response (NULL = null). */
static enum fn_batch_outcome failures_of(const cJSON *root, const char *const *seqs, size_t n,
                                         size_t *first_failed)
{
    /* null, and any non-object value, carries no batchItemFailures: success. */
    if (!root || !cJSON_IsObject(root)) return FN_BATCH_SUCCESS;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "batchItemFailures");
    if (!list || cJSON_IsNull(list)) return FN_BATCH_SUCCESS;
    if (!cJSON_IsArray(list)) return FN_BATCH_FAILURE;
    if (!cJSON_GetArraySize(list)) return FN_BATCH_SUCCESS;
    bool sorted = seqs && seqs_sorted(seqs, n);
    long lowest = -1;
    const cJSON *item;
    cJSON_ArrayForEach(item, list) {
        if (!cJSON_IsObject(item)) return FN_BATCH_FAILURE;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "itemIdentifier");
        if (!cJSON_IsString(id) || !id->valuestring || !id->valuestring[0]) {
            return FN_BATCH_FAILURE; /* missing (wrong key), null, non-string or empty */
        }
        long idx = seqs ? seq_index(id->valuestring, seqs, n, sorted) : -1;
        if (idx < 0) return FN_BATCH_FAILURE; /* not a record of this batch */
        if (lowest < 0 || idx < lowest) lowest = idx;
    }
    if (first_failed) *first_failed = (size_t)lowest;
    return FN_BATCH_PARTIAL;
}

enum fn_batch_outcome fn_event_parse_failures(const char *resp, size_t len,
                                              const char *const *seqs, size_t n,
                                              size_t *first_failed)
{
    bool blank;
    cJSON *root = parse_all(resp, len, &blank);
    if (!root) return blank ? FN_BATCH_SUCCESS : FN_BATCH_FAILURE;
    enum fn_batch_outcome o = failures_of(root, seqs, n, first_failed);
    cJSON_Delete(root);
    return o;
}

enum fn_batch_outcome fn_event_parse_window(const char *resp, size_t len,
                                            const char *const *seqs, size_t n,
                                            size_t *first_failed, char **state_json)
{
    bool blank;
    size_t first = 0;
    enum fn_batch_outcome o = FN_BATCH_FAILURE;
    char *printed = NULL;
    cJSON *root = parse_all(resp, len, &blank);
    if (!root || !cJSON_IsObject(root)) goto out;
    /* The state is an object (the event carries "state": {...}); null counts as missing. */
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(root, "state");
    if (!cJSON_IsObject(state)) goto out;
    o = failures_of(root, seqs, n, &first);
    if (o == FN_BATCH_FAILURE) goto out;
    printed = cJSON_PrintUnformatted(state);
    char *copy = printed ? sl_strdup(printed) : NULL;
    if (!copy) {
        o = FN_BATCH_FAILURE;
        goto out;
    }
    if (state_json) *state_json = copy;
    else sl_free(copy);
    if (o == FN_BATCH_PARTIAL && first_failed) *first_failed = first;
out:
    if (printed) cJSON_free(printed);
    cJSON_Delete(root);
    return o;
}
