/* wire_json.c — the JSON side of wire.h (cJSON for requests, a streaming writer for responses),
 * strict base64, and the format-independent part of the writer. */
#include "runtime/wire.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

enum wire_fmt wire_fmt_from_content_type(const char *ct)
{
    if (ct && strcasestr(ct, "cbor")) return WIRE_CBOR;
    return WIRE_JSON;
}

const char *wire_content_type(enum wire_fmt fmt)
{
    return fmt == WIRE_CBOR ? WIRE_CT_CBOR : WIRE_CT_JSON;
}

int wire_decode(enum wire_fmt fmt, const uint8_t *body, size_t len, cJSON **out, sl_err *err)
{
    return fmt == WIRE_CBOR ? wire_cbor_decode(body, len, out, err)
                            : wire_json_decode(body, len, out, err);
}

/* cJSON allocates one node (about 64 bytes plus the key) per value, so a 7 MiB body of "[0,0,..."
 * would cost ~250 MiB. No Kinesis request has more than a few thousand values (500 records x 3
 * members), so large bodies are first scanned for their value count outside strings; small
 * bodies cannot amplify much and skip the scan. */
#define JSON_SCAN_ABOVE (1u << 20)
#define JSON_MAX_VALUES 200000

static bool json_too_many_values(const uint8_t *p, size_t n)
{
    size_t values = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') in_str = true;
        else if (c == ',' || c == '[' || c == '{') {
            if (++values > JSON_MAX_VALUES) return true;
        }
    }
    return false;
}

int wire_json_decode(const uint8_t *body, size_t len, cJSON **out, sl_err *err)
{
    const char *end = NULL;
    cJSON *root;
    size_t i = 0;

    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i == len) {
        /* An empty body is an empty request (boto3 sends "{}" for parameterless calls; some
         * clients send nothing). */
        root = cJSON_CreateObject();
        if (!root) return sl_err_set(err, SL_ENOMEM, "out of memory");
        *out = root;
        return 0;
    }
    if (len > JSON_SCAN_ABOVE && json_too_many_values(body, len))
        return sl_err_set(err, SL_ESERIAL, "Request has too many JSON values");
    root = cJSON_ParseWithLengthOpts((const char *)body, len, &end, 0);
    if (!root) return sl_err_set(err, SL_ESERIAL, "Unable to parse request body as JSON");
    /* cJSON stops at the end of the first value: anything but whitespace after it is garbage. */
    for (; end && (size_t)(end - (const char *)body) < len; end++) {
        char c = *end;
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            cJSON_Delete(root);
            return sl_err_set(err, SL_ESERIAL, "Unexpected content after the JSON document");
        }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sl_err_set(err, SL_ESERIAL,
                          "Start of structure or map expected, found another JSON value");
    }
    *out = root;
    return 0;
}

int64_t wire_ts_ms(const cJSON *n)
{
    double v = n ? n->valuedouble * 1000.0 : 0.0;
    if (v != v) return 0; /* NaN */
    if (v > 9.2e18) return INT64_MAX;
    if (v < -9.2e18) return INT64_MIN;
    return (int64_t)(v < 0 ? v - 0.5 : v + 0.5);
}

/* ---- base64 --------------------------------------------------------------------------------- */

static const char b64_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63 for alphabet symbols, 64 for '=', 255 for anything else */
static const uint8_t b64_rev[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255, 255,  63,
     52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255,  64, 255, 255,
    255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
     15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255, 255,
    255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
     41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};

static bool b64_sym(unsigned char c)
{
    return b64_rev[c] < 64;
}

/* Quotes at most 200 characters of an offending value in a message. */
static int b64_fail(sl_err *err, const char *s, size_t n, const char *why)
{
    int shown = n > 200 ? 200 : (int)n;
    return sl_err_set(err, SL_ESERIAL, "'%.*s%s' can not be converted to a Blob: %s", shown, s,
                      n > 200 ? "..." : "", why);
}

int wire_b64_check(const char *s, size_t n, size_t *decoded_len, sl_err *err)
{
    char why[96];
    size_t pad = 0, i = 0, body = n >= 2 ? n - 2 : 0;
    unsigned char c = 0;

    if (n % 4) {
        snprintf(why, sizeof why,
                 "Base64 encoded length is expected a multiple of 4 bytes but found: %zu", n);
        return b64_fail(err, s, n, why);
    }
    /* Hot loop: everything but the last two characters must be an alphabet symbol. */
    for (; i < body; i++) {
        c = (unsigned char)s[i];
        if (b64_rev[c] >= 64) goto bad_char;
    }
    /* The last two may be padding: "xx", "x=" or "==" (never "=x"). */
    for (; i < n; i++) {
        c = (unsigned char)s[i];
        if (b64_sym(c)) {
            if (pad) goto bad_char;
        } else if (c == '=') {
            pad++;
        } else {
            goto bad_char;
        }
    }
    /* Canonical form: the bits a padded group does not use must be zero. */
    if (pad == 1 && (b64_rev[(unsigned char)s[n - 2]] & 0x03)) goto bad_last;
    if (pad == 2 && (b64_rev[(unsigned char)s[n - 3]] & 0x0f)) goto bad_last;
    *decoded_len = n / 4 * 3 - pad;
    return 0;
bad_char:
    snprintf(why, sizeof why, "Invalid Base64 character: '%c'", c >= 0x20 && c < 0x7f ? c : '?');
    return b64_fail(err, s, n, why);
bad_last:
    return b64_fail(err, s, n, "Invalid last non-pad Base64 character dectected");
}

size_t wire_b64_decode(const char *s, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        uint32_t a = b64_rev[(unsigned char)s[i]], b = b64_rev[(unsigned char)s[i + 1]];
        uint32_t c = b64_rev[(unsigned char)s[i + 2]], d = b64_rev[(unsigned char)s[i + 3]];
        if (d == 64) {
            out[o++] = (uint8_t)(a << 2 | b >> 4);
            if (c != 64) out[o++] = (uint8_t)((b & 0x0f) << 4 | c >> 2);
            break;
        }
        uint32_t v = a << 18 | b << 12 | c << 6 | d;
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    return o;
}

size_t wire_b64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

size_t wire_b64_encode(const uint8_t *p, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64_alpha[v >> 18];
        out[o++] = b64_alpha[(v >> 12) & 63];
        out[o++] = b64_alpha[(v >> 6) & 63];
        out[o++] = b64_alpha[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64_alpha[v >> 18];
        out[o++] = b64_alpha[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64_alpha[v >> 18];
        out[o++] = b64_alpha[(v >> 12) & 63];
        out[o++] = b64_alpha[(v >> 6) & 63];
        out[o++] = '=';
    }
    return o;
}

/* ---- writer ------------------------------------------------------------------------------- */

void wire_out_init(wire_out *w, enum wire_fmt fmt, size_t hint)
{
    memset(w, 0, sizeof *w);
    w->fmt = fmt;
    if (hint < 64) hint = 64;
    w->buf = sl_malloc(hint);
    if (w->buf) w->cap = hint;
    else w->oom = true;
}

void wire_out_free(wire_out *w)
{
    if (!w) return;
    sl_free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

uint8_t *wire_out_take(wire_out *w, size_t *len)
{
    uint8_t *b = w->buf;
    *len = w->len;
    w->buf = NULL;
    w->len = w->cap = 0;
    return b;
}

bool wire__grow(wire_out *w, size_t n)
{
    if (w->oom) return false;
    if (w->cap - w->len >= n) return true;
    size_t ncap = w->cap ? w->cap * 2 : 256;
    while (ncap - w->len < n) ncap *= 2;
    uint8_t *nb = sl_realloc(w->buf, ncap);
    if (!nb) {
        w->oom = true;
        return false;
    }
    w->buf = nb;
    w->cap = ncap;
    return true;
}

void wire_reserve(wire_out *w, size_t n)
{
    wire__grow(w, n);
}

static void put(wire_out *w, const void *p, size_t n)
{
    if (!wire__grow(w, n)) return;
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void putc1(wire_out *w, char c)
{
    if (!wire__grow(w, 1)) return;
    w->buf[w->len++] = (uint8_t)c;
}

/* Counts a value in its container (array elements; a map's entries are counted by keys). */
static void count_value(wire_out *w)
{
    if (w->depth > 0 && w->closer[w->depth - 1] == ']') w->written[w->depth - 1]++;
}

/* JSON: a comma before a value unless it follows a key or opens its container. */
static void sep(wire_out *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->depth > 0) {
        if (!w->first[w->depth - 1]) putc1(w, ',');
        w->first[w->depth - 1] = false;
    }
}

static void open_container(wire_out *w, char open, char close, size_t n)
{
    count_value(w);
    if (w->fmt == WIRE_JSON) sep(w);
    if (w->depth >= WIRE_MAX_DEPTH) {
        w->oom = true;
        return;
    }
    if (w->fmt == WIRE_JSON) putc1(w, open);
    else if (close == '}') wire__cbor_map(w, n);
    else wire__cbor_arr(w, n);
    w->closer[w->depth] = close;
    w->first[w->depth] = true;
    w->declared[w->depth] = n;
    w->written[w->depth] = 0;
    w->depth++;
}

void wire_map(wire_out *w, size_t n)
{
    open_container(w, '{', '}', n);
}

void wire_arr(wire_out *w, size_t n)
{
    open_container(w, '[', ']', n);
}

void wire_end(wire_out *w)
{
    if (w->depth == 0) {
        w->oom = true;
        return;
    }
    w->depth--;
    if (w->written[w->depth] != w->declared[w->depth]) w->oom = true;
    if (w->fmt == WIRE_JSON) putc1(w, w->closer[w->depth]);
}

static void json_string(wire_out *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;

    /* Worst case every byte becomes \u00XX. */
    if (!wire__grow(w, n + 2)) return;
    w->buf[w->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        put(w, s + i - run, run);
        run = 0;
        switch (c) {
        case '"': put(w, "\\\"", 2); break;
        case '\\': put(w, "\\\\", 2); break;
        case '\n': put(w, "\\n", 2); break;
        case '\r': put(w, "\\r", 2); break;
        case '\t': put(w, "\\t", 2); break;
        default: {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(w, e, 6);
        }
        }
    }
    put(w, s + n - run, run);
    putc1(w, '"');
}

void wire_key(wire_out *w, const char *key)
{
    size_t n = strlen(key);
    if (w->depth > 0) w->written[w->depth - 1]++;
    if (w->fmt == WIRE_CBOR) {
        wire__cbor_text(w, key, n);
        return;
    }
    if (w->depth > 0) {
        if (!w->first[w->depth - 1]) putc1(w, ',');
        w->first[w->depth - 1] = false;
    }
    json_string(w, key, n);
    putc1(w, ':');
    w->after_key = true;
}

void wire_strn(wire_out *w, const char *s, size_t n)
{
    count_value(w);
    if (w->fmt == WIRE_CBOR) {
        wire__cbor_text(w, s, n);
        return;
    }
    sep(w);
    json_string(w, s, n);
}

void wire_str(wire_out *w, const char *s)
{
    wire_strn(w, s, strlen(s));
}

void wire_blob(wire_out *w, const uint8_t *p, size_t n)
{
    count_value(w);
    if (w->fmt == WIRE_CBOR) {
        wire__cbor_bytes(w, p, n);
        return;
    }
    sep(w);
    if (!wire__grow(w, wire_b64_len(n) + 2)) return;
    w->buf[w->len++] = '"';
    w->len += wire_b64_encode(p, n, (char *)w->buf + w->len);
    w->buf[w->len++] = '"';
}

size_t wire_format_ts(int64_t ms, char *buf)
{
    /* Plain decimal seconds with a millisecond fraction: Java SDK v2 rejects exponent form
     * (SPEC 8.9), which is what %g or cJSON would print for 1.7e9. */
    int64_t secs = ms / 1000;
    int64_t frac = ms % 1000;
    const char *sign = "";
    if (ms < 0) {
        sign = "-";
        secs = -(ms / 1000);
        frac = -(ms % 1000);
    }
    return (size_t)snprintf(buf, 32, "%s%lld.%03d", sign, (long long)secs, (int)frac);
}

void wire_ts(wire_out *w, int64_t ms)
{
    char b[32];
    count_value(w);
    if (w->fmt == WIRE_CBOR) {
        wire__cbor_ts(w, ms);
        return;
    }
    sep(w);
    put(w, b, wire_format_ts(ms, b));
}

void wire_int(wire_out *w, int64_t v)
{
    char b[24];
    count_value(w);
    if (w->fmt == WIRE_CBOR) {
        wire__cbor_int(w, v);
        return;
    }
    sep(w);
    put(w, b, (size_t)snprintf(b, sizeof b, "%lld", (long long)v));
}

void wire_bool(wire_out *w, bool v)
{
    count_value(w);
    if (w->fmt == WIRE_CBOR) {
        wire__cbor_bool(w, v);
        return;
    }
    sep(w);
    if (v) put(w, "true", 4);
    else put(w, "false", 5);
}

void wire_null(wire_out *w)
{
    count_value(w);
    if (w->fmt == WIRE_CBOR) {
        wire__cbor_null(w);
        return;
    }
    sep(w);
    put(w, "null", 4);
}

int wire_error_body(enum wire_fmt fmt, const char *type, const char *msg, uint8_t **body,
                    size_t *len)
{
    wire_out w;
    size_t mlen = msg ? strlen(msg) : 0;
    wire_out_init(&w, fmt, strlen(type) + mlen + 64);
    wire_map(&w, 2);
    wire_key(&w, "__type");
    wire_str(&w, type);
    wire_key(&w, "message");
    wire_strn(&w, msg ? msg : "", mlen);
    wire_end(&w);
    if (w.oom) {
        wire_out_free(&w);
        return SL_ENOMEM;
    }
    *body = wire_out_take(&w, len);
    return 0;
}
