/* lua_mods.c — json, base64, log/print, kinesis, tostring and string.format for the sandbox.
 *
 * Written here rather than taken from lua-cjson & co. because every helper must use raw table
 * access only, enforce depth/size limits, check the invocation budget and count its memory in
 * the state's capped allocator (SANDBOX.md 1.7; cjson was Redis's RCE vector). Buffers that grow
 * live in Lua userdata, so an error (raised anywhere, e.g. by the memory cap) leaks nothing;
 * host memory (the kinesis response) is held by a box userdata whose __gc frees it.
 * base64 uses libcrypto's EVP_EncodeBlock/EVP_DecodeBlock after our strict validation.
 */
#include "sandbox/lua_mods.h"

#include "broker/sl_common.h"
#include "sandbox/lua_budget.h"

#include <lauxlib.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Registry keys: addresses of these statics (the registry is unreachable from the sandbox). */
static const char key_array_mt = 'a';
static const char key_object_mt = 'o';
static const char key_null = 'n';
static const char key_box_mt = 'b';
static const char key_ids = 'i';
static const char key_idnext = 'c';

#define BUDGET_EVERY 1024 /* values between budget checks in json */

/* ------------------------------------------------------------------------------------------ */
/* growable buffer held by a userdata at a fixed stack slot                                   */

typedef struct jbuf {
    char *p;
    size_t n;
    size_t cap;
    size_t limit; /* 0 = none */
    int idx;      /* stack slot of the userdata */
} jbuf;

static void jb_init(lua_State *L, jbuf *b, size_t cap, size_t limit)
{
    b->p = lua_newuserdatauv(L, cap, 0);
    b->n = 0;
    b->cap = cap;
    b->limit = limit;
    b->idx = lua_gettop(L);
}

static void jb_reserve(lua_State *L, jbuf *b, size_t more)
{
    size_t ncap;
    char *np;
    if (more <= b->cap - b->n) return;
    if (more > (SIZE_MAX / 2) - b->n) luaL_error(L, "not enough memory");
    if (b->limit != 0 && b->n + more > b->limit) luaL_error(L, "json.encode: result too large");
    ncap = b->cap * 2;
    while (ncap < b->n + more) ncap *= 2;
    np = lua_newuserdatauv(L, ncap, 0);
    memcpy(np, b->p, b->n);
    lua_replace(L, b->idx);
    b->p = np;
    b->cap = ncap;
}

static void jb_add(lua_State *L, jbuf *b, const char *s, size_t n)
{
    jb_reserve(L, b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void jb_addc(lua_State *L, jbuf *b, char c)
{
    if (b->n == b->cap) jb_reserve(L, b, 1);
    b->p[b->n++] = c;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON encoding                                                                              */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp;
    size_t i;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return len;
}

static void enc_string(lua_State *L, jbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    jb_reserve(L, b, n + 2);
    jb_addc(L, b, '"');
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t run = i;
        /* copy a run of plain ASCII in one go */
        while (run < n && (unsigned char)s[run] >= 0x20 && (unsigned char)s[run] < 0x80 &&
               s[run] != '"' && s[run] != '\\')
            run++;
        if (run > i) {
            jb_add(L, b, s + i, run - i);
            i = run;
            continue;
        }
        if (c >= 0x80) {
            size_t k = utf8_seq((const unsigned char *)s + i, n - i);
            if (k > 0) {
                jb_add(L, b, s + i, k);
                i += k;
                continue;
            }
        }
        switch (c) {
        case '"': jb_add(L, b, "\\\"", 2); break;
        case '\\': jb_add(L, b, "\\\\", 2); break;
        case '\n': jb_add(L, b, "\\n", 2); break;
        case '\r': jb_add(L, b, "\\r", 2); break;
        case '\t': jb_add(L, b, "\\t", 2); break;
        case '\b': jb_add(L, b, "\\b", 2); break;
        case '\f': jb_add(L, b, "\\f", 2); break;
        default: {
            /* other control characters and bytes of invalid UTF-8: \u00XX */
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            jb_add(L, b, u, 6);
        }
        }
        i++;
    }
    jb_addc(L, b, '"');
}

static void enc_number(lua_State *L, jbuf *b, int idx)
{
    char tmp[64];
    int len;
    if (lua_isinteger(L, idx)) {
        len = snprintf(tmp, sizeof tmp, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
    } else {
        double d = (double)lua_tonumber(L, idx);
        int prec;
        if (!isfinite(d)) luaL_error(L, "json.encode: cannot encode NaN or infinity");
        len = 0;
        for (prec = 15; prec <= 17; prec++) { /* shortest text that reads back exactly */
            len = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
            if (strtod(tmp, NULL) == d) break;
        }
    }
    jb_add(L, b, tmp, (size_t)len);
}

typedef struct enc_ctx {
    jbuf b;
    unsigned count;
} enc_ctx;

static void enc_value(lua_State *L, enc_ctx *e, int idx, int depth);

static int marker_is(lua_State *L, int mt_idx, const char *key)
{
    int r;
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    r = lua_rawequal(L, mt_idx, -1);
    lua_pop(L, 1);
    return r;
}

enum { KIND_PLAIN, KIND_ARRAY, KIND_OBJECT };

static int table_kind(lua_State *L, int idx)
{
    int kind = KIND_PLAIN;
    if (lua_getmetatable(L, idx)) {
        int mt = lua_gettop(L);
        if (marker_is(L, mt, &key_array_mt))
            kind = KIND_ARRAY;
        else if (marker_is(L, mt, &key_object_mt))
            kind = KIND_OBJECT;
        lua_pop(L, 1);
    }
    return kind;
}

static void enc_array(lua_State *L, enc_ctx *e, int idx, lua_Unsigned n, int depth)
{
    lua_Unsigned i;
    jb_addc(L, &e->b, '[');
    for (i = 1; i <= n; i++) {
        if (i > 1) jb_addc(L, &e->b, ',');
        lua_rawgeti(L, idx, (lua_Integer)i);
        enc_value(L, e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    jb_addc(L, &e->b, ']');
}

static void enc_object(lua_State *L, enc_ctx *e, int idx, int depth)
{
    int first = 1;
    jb_addc(L, &e->b, '{');
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t kl;
        const char *k;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "json.encode: object keys must be strings (got a %s key)",
                       luaL_typename(L, -2));
        k = lua_tolstring(L, -2, &kl);
        if (!first) jb_addc(L, &e->b, ',');
        first = 0;
        enc_string(L, &e->b, k, kl);
        jb_addc(L, &e->b, ':');
        enc_value(L, e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    jb_addc(L, &e->b, '}');
}

static void enc_table(lua_State *L, enc_ctx *e, int idx, int depth)
{
    int kind = table_kind(L, idx);
    if (kind == KIND_ARRAY) {
        enc_array(L, e, idx, lua_rawlen(L, idx), depth);
    } else if (kind == KIND_OBJECT) {
        enc_object(L, e, idx, depth);
    } else {
        /* plain table: classify by its keys (raw traversal, no metamethods) */
        lua_Unsigned count = 0;
        lua_Unsigned max = 0;
        int strings = 0;
        int others = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            count++;
            if (lua_type(L, -1) == LUA_TSTRING) {
                strings = 1;
            } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
                lua_Unsigned k = (lua_Unsigned)lua_tointeger(L, -1);
                if (k > max) max = k;
            } else {
                others = 1;
            }
            if ((count & (BUDGET_EVERY - 1)) == 0) sbx_budget_check(L);
        }
        if (count == 0) {
            jb_add(L, &e->b, "{}", 2);
        } else if (!others && !strings && max == count) {
            enc_array(L, e, idx, count, depth);
        } else if (!others && strings && max == 0) {
            enc_object(L, e, idx, depth);
        } else {
            luaL_error(L, "json.encode: cannot encode a table with mixed or sparse keys");
        }
    }
}

static void enc_value(lua_State *L, enc_ctx *e, int idx, int depth)
{
    if (depth > SBX_JSON_MAX_DEPTH)
        luaL_error(L, "json.encode: nesting deeper than %d (or a cycle)", SBX_JSON_MAX_DEPTH);
    if ((++e->count & (BUDGET_EVERY - 1)) == 0) sbx_budget_check(L);
    luaL_checkstack(L, 4, "json.encode");
    switch (lua_type(L, idx)) {
    case LUA_TNIL: jb_add(L, &e->b, "null", 4); break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            jb_add(L, &e->b, "true", 4);
        else
            jb_add(L, &e->b, "false", 5);
        break;
    case LUA_TNUMBER: enc_number(L, &e->b, idx); break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        enc_string(L, &e->b, s, n);
        break;
    }
    case LUA_TTABLE: enc_table(L, e, idx, depth); break;
    case LUA_TUSERDATA: {
        int is_null;
        lua_rawgetp(L, LUA_REGISTRYINDEX, &key_null);
        is_null = lua_rawequal(L, idx, -1);
        lua_pop(L, 1);
        if (is_null) {
            jb_add(L, &e->b, "null", 4);
            break;
        }
    }
        /* fall through */
    default:
        luaL_error(L, "json.encode: cannot encode a %s value", luaL_typename(L, idx));
    }
}

void sbx_json_encode_push(lua_State *L, int idx, size_t max_bytes)
{
    enc_ctx e;
    idx = lua_absindex(L, idx);
    e.count = 0;
    jb_init(L, &e.b, 256, max_bytes);
    enc_value(L, &e, idx, 0);
    lua_pushlstring(L, e.b.p, e.b.n);
    lua_remove(L, e.b.idx);
}

/* ------------------------------------------------------------------------------------------ */
/* JSON decoding                                                                              */

#define DEC_HINT_DEPTH 8
#define DEC_CACHE 128     /* slots of the decoder's string cache (2^7: see push_str) */
#define DEC_CACHE_MAXLEN 96
#define DEC_STACK 8 /* stack slots reserved per container level: table, key, value, temporaries */

typedef struct dec_ctx {
    lua_State *L;
    const char *s;
    const char *p;
    const char *end;
    unsigned count;
    /* size of the last array/object seen at each depth: events are homogeneous (every record
     * has the same fields), so pre-sizing from it avoids the rehash-and-grow cascade */
    int arr_hint[DEC_HINT_DEPTH];
    int obj_hint[DEC_HINT_DEPTH];
    /* string cache: keys and many values repeat in every record; reusing the Lua string skips
     * Lua's per-byte hashing (short strings) or a malloc + copy (long ones). Entries point into
     * strings anchored in the table at stack slot cache_idx. */
    int cache_idx;
    struct {
        const char *p;
        size_t n;
        int hit; /* second chance: a string that was reused is not evicted by the next miss */
    } cache[DEC_CACHE];
} dec_ctx;

static void dec_fail(dec_ctx *d, const char *what)
{
    luaL_error(d->L, "json.decode: %s at position %d", what, (int)(d->p - d->s) + 1);
}

static void skip_ws(dec_ctx *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* First byte in [p, end) that is '"', '\\' or a control character (< 0x20), or end. Eight bytes
 * at a time with the classic "has zero byte" / "has byte less than n" word tricks. */
static const char *scan_special(const char *p, const char *end)
{
    const uint64_t ones = 0x0101010101010101ull;
    const uint64_t highs = 0x8080808080808080ull;
    while (end - p >= 8) {
        uint64_t v;
        uint64_t q;
        uint64_t b;
        memcpy(&v, p, 8);
        q = v ^ (ones * '"');
        b = v ^ (ones * '\\');
        if ((((q - ones) & ~q) | ((b - ones) & ~b) | ((v - ones * 0x20) & ~v)) & highs) break;
        p += 8;
    }
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) p++;
    return p;
}

static void push_str(dec_ctx *d, const char *s, size_t n)
{
    uint64_t a = 0;
    uint64_t b = 0;
    uint64_t h;
    unsigned slot;
    if (n > DEC_CACHE_MAXLEN) {
        lua_pushlstring(d->L, s, n);
        return;
    }
    if (n >= 8) {
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
    } else {
        memcpy(&a, s, n);
    }
    /* two independent multiplies; the top bits of a product depend on all bits of the input */
    h = (a + n) * 0x9E3779B97F4A7C15ull + b * 0xC4CEB9FE1A85EC53ull;
    slot = (unsigned)(h >> 57); /* DEC_CACHE == 128 */
    if (d->cache[slot].p != NULL && d->cache[slot].n == n && memcmp(d->cache[slot].p, s, n) == 0) {
        d->cache[slot].hit = 1;
        lua_rawgeti(d->L, d->cache_idx, (lua_Integer)slot + 1);
        return;
    }
    lua_pushlstring(d->L, s, n);
    if (d->cache[slot].hit) {
        d->cache[slot].hit = 0;
        return;
    }
    lua_pushvalue(d->L, -1);
    lua_rawseti(d->L, d->cache_idx, (lua_Integer)slot + 1); /* preallocated: cannot fail */
    d->cache[slot].p = lua_tostring(d->L, -1);
    d->cache[slot].n = n;
}

/* d->p is just past the opening quote; pushes the string. */
static void dec_string(dec_ctx *d)
{
    const char *q = d->p;
    luaL_Buffer b;
    /* fast path: the string ends at the first special byte and it is the closing quote */
    q = scan_special(d->p, d->end);
    if (q < d->end && *q == '"') {
        push_str(d, d->p, (size_t)(q - d->p));
        d->p = q + 1;
        return;
    }
    luaL_buffinit(d->L, &b);
    while (d->p < d->end) {
        char c = *d->p;
        if (c == '"') {
            d->p++;
            luaL_pushresult(&b);
            return;
        }
        if ((unsigned char)c < 0x20) dec_fail(d, "control character in string");
        if (c != '\\') {
            luaL_addchar(&b, c);
            d->p++;
            continue;
        }
        if (d->end - d->p < 2) break;
        c = d->p[1];
        d->p += 2;
        switch (c) {
        case '"': luaL_addchar(&b, '"'); break;
        case '\\': luaL_addchar(&b, '\\'); break;
        case '/': luaL_addchar(&b, '/'); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u': {
            unsigned cp;
            char o[4];
            if (d->end - d->p < 4 || hex4(d->p, &cp) != 0) dec_fail(d, "invalid \\u escape");
            d->p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (d->end - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u' &&
                    hex4(d->p + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    d->p += 6;
                } else {
                    cp = 0xFFFD; /* lone high surrogate */
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD; /* lone low surrogate */
            }
            luaL_addlstring(&b, o, utf8_put(o, cp));
            break;
        }
        default: d->p--; dec_fail(d, "invalid escape in string");
        }
    }
    dec_fail(d, "unterminated string");
}

static void dec_number(dec_ctx *d)
{
    const char *start = d->p;
    const char *q = d->p;
    int is_int = 1;
    char tmp[512];
    size_t len;
    double v;
    if (q < d->end && *q == '-') q++;
    if (q < d->end && *q == '0') {
        q++;
    } else if (q < d->end && *q >= '1' && *q <= '9') {
        while (q < d->end && *q >= '0' && *q <= '9') q++;
    } else {
        dec_fail(d, "invalid number");
    }
    if (q < d->end && *q == '.') {
        is_int = 0;
        q++;
        if (q >= d->end || *q < '0' || *q > '9') {
            d->p = q;
            dec_fail(d, "invalid number");
        }
        while (q < d->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < d->end && (*q == 'e' || *q == 'E')) {
        is_int = 0;
        q++;
        if (q < d->end && (*q == '+' || *q == '-')) q++;
        if (q >= d->end || *q < '0' || *q > '9') {
            d->p = q;
            dec_fail(d, "invalid number");
        }
        while (q < d->end && *q >= '0' && *q <= '9') q++;
    }
    len = (size_t)(q - start);
    d->p = q;
    if (is_int && len <= 17) { /* up to 16 digits plus sign: exact in int64 */
        lua_Integer acc = 0;
        const char *r = start + (*start == '-');
        while (r < q) acc = acc * 10 + (*r++ - '0');
        if (*start == '-') acc = -acc;
        if (acc <= ((lua_Integer)1 << 53) && acc >= -((lua_Integer)1 << 53)) {
            lua_pushinteger(d->L, acc);
            return;
        }
        lua_pushnumber(d->L, (lua_Number)acc);
        return;
    }
    if (!is_int && len <= 17) {
        /* Clinger's fast path: digits <= 15 and no exponent -> exact mantissa / 10^k with one
         * correctly rounded division, the same result strtod gives */
        static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8,
                                     1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
        const char *r = start + (*start == '-');
        int64_t mant = 0;
        int digits = 0;
        int frac = -1;
        int ok = 1;
        for (; r < q; r++) {
            if (*r == '.') {
                frac = 0;
                continue;
            }
            if (*r < '0' || *r > '9') {
                ok = 0; /* exponent: slow path */
                break;
            }
            mant = mant * 10 + (*r - '0');
            digits++;
            if (frac >= 0) frac++;
        }
        if (ok && digits <= 15 && frac >= 0) {
            v = (double)mant / p10[frac];
            if (*start == '-') v = -v;
            if (v == floor(v) && fabs(v) <= 9007199254740992.0)
                lua_pushinteger(d->L, (lua_Integer)v);
            else
                lua_pushnumber(d->L, v);
            return;
        }
    }
    if (len >= sizeof tmp) dec_fail(d, "number too long");
    memcpy(tmp, start, len);
    tmp[len] = '\0';
    v = strtod(tmp, NULL);
    if (isfinite(v) && v == floor(v) && fabs(v) <= 9007199254740992.0)
        lua_pushinteger(d->L, (lua_Integer)v);
    else
        lua_pushnumber(d->L, v);
}

/* The marker metatables are reachable (getmetatable of a decoded table) and therefore
 * writable by the script. Lua marks an object for finalization when its metatable has __gc at
 * lua_setmetatable time, and finalizers run with hooks disabled (no budget): so before C code
 * hands a marker to new tables, make sure nobody put a __gc into it. */
static void check_markers(lua_State *L)
{
    static const char *const keys[] = {&key_array_mt, &key_object_mt};
    size_t i;
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int t;
        lua_rawgetp(L, LUA_REGISTRYINDEX, keys[i]);
        lua_pushliteral(L, "__gc");
        t = lua_rawget(L, -2);
        lua_pop(L, 1);
        if (t != LUA_TNIL) {
            /* repair (so the instance stays usable), then fail the call */
            lua_pushliteral(L, "__gc");
            lua_pushnil(L);
            lua_rawset(L, -3);
            luaL_error(L, "json: a __gc field was added to a json marker metatable (removed)");
        }
        lua_pop(L, 1);
    }
}

static void set_marker(lua_State *L, const char *key)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    lua_setmetatable(L, -2);
}

static void dec_value(dec_ctx *d, int depth);

static void dec_array(dec_ctx *d, int depth)
{
    lua_State *L = d->L;
    lua_Integer i = 0;
    int h = depth < DEC_HINT_DEPTH ? depth : DEC_HINT_DEPTH - 1;
    luaL_checkstack(L, DEC_STACK, "json.decode");
    lua_createtable(L, d->arr_hint[h], 0);
    set_marker(L, &key_array_mt);
    skip_ws(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        return;
    }
    for (;;) {
        dec_value(d, depth + 1);
        lua_rawseti(L, -2, ++i);
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (d->p < d->end && *d->p == ']') {
            d->p++;
            d->arr_hint[h] = i < 1024 ? (int)i : 1024;
            return;
        }
        dec_fail(d, "expected ',' or ']'");
    }
}

static void dec_object(dec_ctx *d, int depth)
{
    lua_State *L = d->L;
    int h = depth < DEC_HINT_DEPTH ? depth : DEC_HINT_DEPTH - 1;
    int members = 0;
    luaL_checkstack(L, DEC_STACK, "json.decode");
    lua_createtable(L, 0, d->obj_hint[h]);
    set_marker(L, &key_object_mt);
    skip_ws(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        return;
    }
    for (;;) {
        skip_ws(d);
        if (d->p >= d->end || *d->p != '"') dec_fail(d, "expected a string key");
        d->p++;
        dec_string(d);
        skip_ws(d);
        if (d->p >= d->end || *d->p != ':') dec_fail(d, "expected ':'");
        d->p++;
        dec_value(d, depth + 1);
        lua_rawset(L, -3);
        members++;
        skip_ws(d);
        if (d->p < d->end && *d->p == ',') {
            d->p++;
            continue;
        }
        if (d->p < d->end && *d->p == '}') {
            d->p++;
            d->obj_hint[h] = members < 64 ? members : 64;
            return;
        }
        dec_fail(d, "expected ',' or '}'");
    }
}

static int literal(dec_ctx *d, const char *word, size_t n)
{
    if ((size_t)(d->end - d->p) >= n && memcmp(d->p, word, n) == 0) {
        d->p += n;
        return 1;
    }
    return 0;
}

static void dec_value(dec_ctx *d, int depth)
{
    if (depth > SBX_JSON_MAX_DEPTH) dec_fail(d, "nesting too deep");
    if ((++d->count & (BUDGET_EVERY - 1)) == 0) sbx_budget_check(d->L);
    skip_ws(d);
    if (d->p >= d->end) dec_fail(d, "unexpected end of input");
    switch (*d->p) {
    case '{': d->p++; dec_object(d, depth); return;
    case '[': d->p++; dec_array(d, depth); return;
    case '"': d->p++; dec_string(d); return;
    case 't':
        if (literal(d, "true", 4)) {
            lua_pushboolean(d->L, 1);
            return;
        }
        break;
    case 'f':
        if (literal(d, "false", 5)) {
            lua_pushboolean(d->L, 0);
            return;
        }
        break;
    case 'n':
        if (literal(d, "null", 4)) {
            lua_rawgetp(d->L, LUA_REGISTRYINDEX, &key_null);
            return;
        }
        break;
    default:
        if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9')) {
            dec_number(d);
            return;
        }
    }
    dec_fail(d, "unexpected character");
}

void sbx_json_decode_push(lua_State *L, const char *s, size_t n)
{
    dec_ctx d;
    d.L = L;
    d.s = s;
    d.p = s;
    d.end = s + n;
    d.count = 0;
    memset(d.arr_hint, 0, sizeof d.arr_hint);
    memset(d.obj_hint, 0, sizeof d.obj_hint);
    memset(d.cache, 0, sizeof d.cache);
    check_markers(L);
    luaL_checkstack(L, DEC_STACK, "json.decode");
    lua_createtable(L, DEC_CACHE, 0);
    d.cache_idx = lua_gettop(L);
    dec_value(&d, 0);
    skip_ws(&d);
    if (d.p != d.end) dec_fail(&d, "trailing characters after the value");
    lua_remove(L, d.cache_idx);
}

void sbx_json_push_null(lua_State *L) { lua_rawgetp(L, LUA_REGISTRYINDEX, &key_null); }

/* ------------------------------------------------------------------------------------------ */
/* The Kinesis event built directly (sbx_lua_invoke_kinesis)                                  */

static int utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    while (p < e) {
        unsigned c = *p;
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
        else return 0;
        if ((size_t)(e - p) < len) return 0;
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        p += len;
    }
    return 1;
}

static int cstr_ok(const char *s) { return s == NULL || utf8_valid(s, strlen(s)); }

int sbx_kinesis_utf8_ok(const sbx_kinesis_event *ev)
{
    if (!cstr_ok(ev->stream_arn) || !cstr_ok(ev->region) || !cstr_ok(ev->role_arn)) return 0;
    for (size_t i = 0; i < ev->n; i++) {
        const sbx_kinesis_record *r = &ev->recs[i];
        if (!utf8_valid(r->pk, r->pk_len) || !cstr_ok(r->seq) || !cstr_ok(r->shard_id)) return 0;
    }
    return 1;
}

/* Stack slots of the strings every record repeats (pushed once per event). */
enum {
    K_KINESIS, K_SCHEMA, K_PK, K_SEQ, K_DATA, K_ARRIVAL, K_SOURCE, K_VERSION, K_ID, K_NAME,
    K_IDENTITY, K_REGION, K_SOURCE_ARN, V_ONE, V_AWS_KINESIS, V_RECORD_NAME, V_ROLE, V_REGION,
    V_ARN, K_COUNT
};

static void push_field(lua_State *L, int base, int key, int val)
{
    lua_pushvalue(L, base + key);
    lua_pushvalue(L, base + val);
    lua_rawset(L, -3);
}

/* Matches dec_number on fn_event_build's "%lld.%03d": integral values become integers. */
static void push_arrival(lua_State *L, int64_t ms)
{
    if (ms % 1000 == 0 && ms / 1000 <= ((int64_t)1 << 53) && ms / 1000 >= -((int64_t)1 << 53))
        lua_pushinteger(L, (lua_Integer)(ms / 1000));
    else
        lua_pushnumber(L, (double)ms / 1000.0);
}

void sbx_kinesis_push(lua_State *L, const sbx_kinesis_event *ev)
{
    static const char *const consts[K_COUNT] = {
        "kinesis", "kinesisSchemaVersion", "partitionKey", "sequenceNumber", "data",
        "approximateArrivalTimestamp", "eventSource", "eventVersion", "eventID", "eventName",
        "invokeIdentityArn", "awsRegion", "eventSourceARN", "1.0", "aws:kinesis",
        "aws:kinesis:record", NULL, NULL, NULL,
    };
    char id[256];
    luaL_Buffer b;

    check_markers(L);
    luaL_checkstack(L, K_COUNT + 16, "kinesis event");
    int base = lua_gettop(L) + 1;
    for (int i = 0; i < V_ROLE; i++) lua_pushstring(L, consts[i]);
    lua_pushstring(L, ev->role_arn ? ev->role_arn : "");
    lua_pushstring(L, ev->region ? ev->region : "");
    lua_pushstring(L, ev->stream_arn ? ev->stream_arn : "");

    lua_createtable(L, 0, 1); /* the event */
    set_marker(L, &key_object_mt);
    lua_pushliteral(L, "Records");
    lua_createtable(L, ev->n < INT32_MAX ? (int)ev->n : 0, 0);
    set_marker(L, &key_array_mt);
    for (size_t i = 0; i < ev->n; i++) {
        const sbx_kinesis_record *r = &ev->recs[i];
        if ((i & 63) == 63) sbx_budget_check(L);
        lua_createtable(L, 0, 9);
        set_marker(L, &key_object_mt);

        lua_pushvalue(L, base + K_KINESIS);
        lua_createtable(L, 0, 5);
        set_marker(L, &key_object_mt);
        push_field(L, base, K_SCHEMA, V_ONE);
        lua_pushvalue(L, base + K_PK);
        lua_pushlstring(L, r->pk ? r->pk : "", r->pk ? r->pk_len : 0);
        lua_rawset(L, -3);
        lua_pushvalue(L, base + K_SEQ);
        lua_pushstring(L, r->seq ? r->seq : "");
        lua_rawset(L, -3);
        lua_pushvalue(L, base + K_DATA);
        size_t enc = 4 * ((r->data_len + 2) / 3);
        char *out = luaL_buffinitsize(L, &b, enc + 1);
        if (r->data_len) EVP_EncodeBlock((unsigned char *)out, r->data, (int)r->data_len);
        luaL_pushresultsize(&b, enc);
        lua_rawset(L, -3);
        lua_pushvalue(L, base + K_ARRIVAL);
        push_arrival(L, r->arrival_ms);
        lua_rawset(L, -3);
        lua_rawset(L, -3); /* record.kinesis */

        push_field(L, base, K_SOURCE, V_AWS_KINESIS);
        push_field(L, base, K_VERSION, V_ONE);
        lua_pushvalue(L, base + K_ID);
        int n = snprintf(id, sizeof id, "%s:%s", r->shard_id ? r->shard_id : "",
                         r->seq ? r->seq : "");
        if (n >= 0 && (size_t)n < sizeof id) lua_pushlstring(L, id, (size_t)n);
        else lua_pushfstring(L, "%s:%s", r->shard_id ? r->shard_id : "", r->seq ? r->seq : "");
        lua_rawset(L, -3);
        push_field(L, base, K_NAME, V_RECORD_NAME);
        push_field(L, base, K_IDENTITY, V_ROLE);
        push_field(L, base, K_REGION, V_REGION);
        push_field(L, base, K_SOURCE_ARN, V_ARN);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_rawset(L, -3); /* event.Records */
    lua_replace(L, base); /* keep only the event */
    lua_settop(L, base);
}

static int l_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    sbx_json_encode_push(L, 1, 0);
    return 1;
}

static int l_json_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    sbx_json_decode_push(L, s, n);
    return 1;
}

static int mark(lua_State *L, const char *key)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_markers(L);
    set_marker(L, key);
    return 1;
}

static int l_json_array(lua_State *L) { return mark(L, &key_array_mt); }

static int l_json_object(lua_State *L) { return mark(L, &key_object_mt); }

static int l_null_tostring(lua_State *L)
{
    lua_pushliteral(L, "null");
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* base64 (strict)                                                                            */

#define B64_CHUNK (3u * 1024u * 1024u) /* input bytes per EVP call (multiple of 3) */

static int l_b64_encode(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    size_t out_len;
    luaL_Buffer b;
    char *o;
    size_t done = 0;
    if (n > (SIZE_MAX / 4) * 3 - 3) return luaL_error(L, "base64.encode: input too large");
    out_len = (n + 2) / 3 * 4;
    o = luaL_buffinitsize(L, &b, out_len + 1); /* EVP writes a terminating NUL */
    while (done < n) {
        size_t take = n - done < B64_CHUNK ? n - done : B64_CHUNK;
        int w = EVP_EncodeBlock((unsigned char *)o, s + done, (int)take);
        o += w;
        done += take;
        sbx_budget_check(L);
    }
    luaL_pushresultsize(&b, out_len);
    return 1;
}

static int b64_char_ok(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

static int l_b64_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    size_t pad = 0;
    size_t i;
    size_t out_len;
    size_t done = 0;
    luaL_Buffer b;
    char *o;
    if (n % 4 != 0) return luaL_error(L, "base64.decode: invalid base64 input (length)");
    if (n > 0 && s[n - 1] == '=') pad++;
    if (n > 1 && s[n - 2] == '=') pad++;
    for (i = 0; i < n - pad; i++)
        if (!b64_char_ok((unsigned char)s[i]))
            return luaL_error(L, "base64.decode: invalid base64 input (character %d)", (int)i + 1);
    out_len = n / 4 * 3 - pad;
    o = luaL_buffinitsize(L, &b, n / 4 * 3 + 1);
    while (done < n) {
        size_t take = n - done < (B64_CHUNK / 3) * 4 ? n - done : (B64_CHUNK / 3) * 4;
        int w = EVP_DecodeBlock((unsigned char *)o, (const unsigned char *)s + done, (int)take);
        if (w < 0) return luaL_error(L, "base64.decode: invalid base64 input");
        o += w;
        done += take;
        sbx_budget_check(L);
    }
    luaL_pushresultsize(&b, out_len);
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* tostring without addresses, string.format without %p                                      */

/* Pushes a per-state sequence number for the object at idx (weak-keyed registry table). */
static lua_Integer object_id(lua_State *L, int idx)
{
    lua_Integer id;
    idx = lua_absindex(L, idx);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_ids);
    lua_pushvalue(L, idx);
    if (lua_rawget(L, -2) == LUA_TNUMBER) {
        id = lua_tointeger(L, -1);
        lua_pop(L, 2);
        return id;
    }
    lua_pop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_idnext);
    id = lua_tointeger(L, -1) + 1;
    lua_pop(L, 1);
    lua_pushinteger(L, id);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_idnext);
    lua_pushvalue(L, idx);
    lua_pushinteger(L, id);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    return id;
}

/* Like luaL_tolstring, but without heap addresses; pushes the result. */
static const char *to_text(lua_State *L, int idx, size_t *len)
{
    idx = lua_absindex(L, idx);
    if (luaL_callmeta(L, idx, "__tostring")) {
        if (!lua_isstring(L, -1)) luaL_error(L, "'__tostring' must return a string");
        return lua_tolstring(L, -1, len);
    }
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx));
        else
            lua_pushfstring(L, "%f", (LUAI_UACNUMBER)lua_tonumber(L, idx));
        break;
    case LUA_TSTRING: lua_pushvalue(L, idx); break;
    case LUA_TBOOLEAN: lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false"); break;
    case LUA_TNIL: lua_pushliteral(L, "nil"); break;
    default: {
        int tt = luaL_getmetafield(L, idx, "__name");
        const char *kind = (tt == LUA_TSTRING) ? lua_tostring(L, -1) : luaL_typename(L, idx);
        char idtext[32];
        snprintf(idtext, sizeof idtext, "0x%08llx", (unsigned long long)object_id(L, idx));
        lua_pushfstring(L, "%s: %s", kind, idtext);
        if (tt != LUA_TNIL) lua_remove(L, -2);
        break;
    }
    }
    return lua_tolstring(L, -1, len);
}

int sbx_tostring(lua_State *L)
{
    luaL_checkany(L, 1);
    to_text(L, 1, NULL);
    return 1;
}

/* string.format wrapper: refuses %p and renders tables/functions/threads/userdata given to %s
 * with sbx_tostring (both would print heap addresses), then calls the original. */
static int l_format(lua_State *L)
{
    size_t n;
    const char *f = luaL_checklstring(L, 1, &n);
    const char *end = f + n;
    int top = lua_gettop(L);
    int i;
    for (i = 2; i <= top; i++) {
        int t = lua_type(L, i);
        if (t == LUA_TTABLE || t == LUA_TFUNCTION || t == LUA_TTHREAD || t == LUA_TUSERDATA ||
            t == LUA_TLIGHTUSERDATA) {
            to_text(L, i, NULL);
            lua_replace(L, i);
        }
    }
    while (f < end) {
        if (*f++ != '%') continue;
        if (f < end && *f == '%') {
            f++;
            continue;
        }
        while (f < end && strchr("-+ #0123456789.", *f) != NULL) f++;
        if (f < end && *f == 'p')
            return luaL_error(L, "invalid conversion '%%p' to 'format' (not available in the "
                                 "sandbox)");
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* ------------------------------------------------------------------------------------------ */
/* log / print                                                                                */

void sbx_log_init(sbx_log *lg, size_t limit)
{
    lg->buf = NULL;
    lg->len = 0;
    lg->cap = 0;
    lg->limit = limit;
    lg->dropped = 0;
}

void sbx_log_reset(sbx_log *lg)
{
    lg->len = 0;
    lg->dropped = 0;
    if (lg->buf != NULL) lg->buf[0] = '\0';
}

void sbx_log_free(sbx_log *lg)
{
    sl_free(lg->buf);
    lg->buf = NULL;
    lg->len = lg->cap = 0;
}

static const char log_marker[] = "[sluice] log output truncated: further lines dropped\n";

static int log_put(sbx_log *lg, const char *s, size_t n)
{
    if (lg->len + n + 1 > lg->cap) {
        size_t ncap = lg->cap ? lg->cap : 1024;
        char *nb;
        while (ncap < lg->len + n + 1) ncap *= 2;
        nb = sl_realloc(lg->buf, ncap);
        if (nb == NULL) return SL_ENOMEM;
        lg->buf = nb;
        lg->cap = ncap;
    }
    memcpy(lg->buf + lg->len, s, n);
    lg->len += n;
    lg->buf[lg->len] = '\0';
    return 0;
}

int sbx_log_append(sbx_log *lg, const char *level, const char *msg, size_t len)
{
    char line[SBX_LOG_LINE_MAX + 64];
    size_t o = 0;
    size_t i;
    int cut = 0;
    static const char hex[] = "0123456789abcdef";

    o = (size_t)snprintf(line, sizeof line, "%s\t", level);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (o + 5 > SBX_LOG_LINE_MAX) {
            cut = 1;
            break;
        }
        /* escape control characters: a script must not forge lines or send terminal codes */
        if (c == '\n') {
            line[o++] = '\\';
            line[o++] = 'n';
        } else if (c == '\r') {
            line[o++] = '\\';
            line[o++] = 'r';
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
            line[o++] = '\\';
            line[o++] = 'x';
            line[o++] = hex[c >> 4];
            line[o++] = hex[c & 15];
        } else {
            line[o++] = (char)c;
        }
    }
    if (cut) {
        memcpy(line + o, " [truncated]", 12);
        o += 12;
    }
    line[o++] = '\n';
    if (lg->dropped > 0 || lg->len + o > lg->limit) {
        int rc = 0;
        if (lg->dropped == 0) rc = log_put(lg, log_marker, sizeof log_marker - 1);
        lg->dropped += o;
        return rc;
    }
    return log_put(lg, line, o);
}

static int log_level(lua_State *L, const char *level)
{
    sbx_log *lg = lua_touserdata(L, lua_upvalueindex(1));
    int n = lua_gettop(L);
    int i;
    luaL_Buffer b;
    size_t len;
    const char *msg;
    luaL_buffinit(L, &b);
    for (i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, '\t');
        to_text(L, i, NULL); /* pushes the text above the buffer: add it with luaL_addvalue */
        luaL_addvalue(&b);
        sbx_budget_check(L);
    }
    luaL_pushresult(&b);
    msg = lua_tolstring(L, -1, &len);
    if (sbx_log_append(lg, level, msg, len) != 0) return luaL_error(L, "not enough memory");
    return 0;
}

static int l_log_info(lua_State *L) { return log_level(L, "INFO"); }
static int l_log_warn(lua_State *L) { return log_level(L, "WARN"); }
static int l_log_error(lua_State *L) { return log_level(L, "ERROR"); }
static int l_log_debug(lua_State *L) { return log_level(L, "DEBUG"); }

/* ------------------------------------------------------------------------------------------ */
/* kinesis (through the host callback)                                                        */

typedef struct box {
    void *p;
} box;

static int box_gc(lua_State *L)
{
    box *bx = lua_touserdata(L, 1);
    if (bx != NULL) {
        sl_free(bx->p);
        bx->p = NULL;
    }
    return 0;
}

static box *box_new(lua_State *L)
{
    box *bx = lua_newuserdatauv(L, sizeof *bx, 0);
    bx->p = NULL;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_box_mt);
    lua_setmetatable(L, -2);
    return bx;
}

/* Reads field name of the table at idx (raw) as a string; required fields raise when absent. */
static const char *str_field(lua_State *L, int idx, const char *op, const char *name,
                             int required, size_t *len)
{
    int t;
    lua_pushstring(L, name);
    t = lua_rawget(L, idx);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        if (required) luaL_error(L, "kinesis.%s: field '%s' is required", op, name);
        return NULL;
    }
    if (t != LUA_TSTRING) luaL_error(L, "kinesis.%s: field '%s' must be a string", op, name);
    /* the table keeps the string alive; pop our copy */
    {
        const char *s = lua_tolstring(L, -1, len);
        lua_pop(L, 1);
        return s;
    }
}

static void add_json_field(lua_State *L, jbuf *b, int *first, const char *name, const char *v,
                           size_t n)
{
    if (v == NULL) return;
    if (!*first) jb_addc(L, b, ',');
    *first = 0;
    enc_string(L, b, name, strlen(name));
    jb_addc(L, b, ':');
    enc_string(L, b, v, n);
}

static void add_b64_field(lua_State *L, jbuf *b, int *first, const char *name, const char *v,
                          size_t n)
{
    size_t out;
    if (!*first) jb_addc(L, b, ',');
    *first = 0;
    enc_string(L, b, name, strlen(name));
    jb_add(L, b, ":\"", 2);
    if (n > (SIZE_MAX / 4) * 3 - 3) luaL_error(L, "kinesis: Data too large");
    out = (n + 2) / 3 * 4;
    jb_reserve(L, b, out + 2);
    {
        size_t done = 0;
        while (done < n) {
            size_t take = n - done < B64_CHUNK ? n - done : B64_CHUNK;
            int w = EVP_EncodeBlock((unsigned char *)b->p + b->n, (const unsigned char *)v + done,
                                    (int)take);
            b->n += (size_t)w;
            done += take;
        }
    }
    jb_addc(L, b, '"');
}

/* Adds the record fields of the table at idx (Data, PartitionKey, ExplicitHashKey). */
static void add_record_fields(lua_State *L, jbuf *b, int *first, int idx, const char *op)
{
    size_t n;
    const char *v;
    v = str_field(L, idx, op, "Data", 1, &n);
    add_b64_field(L, b, first, "Data", v, n);
    v = str_field(L, idx, op, "PartitionKey", 1, &n);
    add_json_field(L, b, first, "PartitionKey", v, n);
    v = str_field(L, idx, op, "ExplicitHashKey", 0, &n);
    add_json_field(L, b, first, "ExplicitHashKey", v, n);
}

static void add_stream_fields(lua_State *L, jbuf *b, int *first, int idx, const char *op)
{
    size_t n;
    const char *v = str_field(L, idx, op, "StreamName", 0, &n);
    add_json_field(L, b, first, "StreamName", v, n);
    v = str_field(L, idx, op, "StreamARN", 0, &n);
    add_json_field(L, b, first, "StreamARN", v, n);
}

static void raise_table(lua_State *L, const char *type, const char *msg)
{
    lua_createtable(L, 0, 2);
    lua_pushstring(L, type);
    lua_setfield(L, -2, "errorType");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "errorMessage");
    lua_error(L);
}

/* Calls the host with the request text at the top of the stack; pushes the decoded response. */
static int host_call(lua_State *L, const char *op)
{
    const sbx_lua_host *host = lua_touserdata(L, lua_upvalueindex(1));
    size_t req_len;
    const char *req = lua_tolstring(L, -1, &req_len);
    box *bx;
    char *resp = NULL;
    size_t resp_len = 0;
    char etype[128];
    char emsg[1024];
    int rc;

    if (host == NULL || host->call == NULL)
        raise_table(L, "ServiceUnavailable", "kinesis is not available in this runtime");
    bx = box_new(L); /* allocated before the call: nothing can fail while resp is unowned */
    etype[0] = '\0';
    emsg[0] = '\0';
    rc = host->call(host->ctx, op, req, req_len, &resp, &resp_len, etype, sizeof etype, emsg,
                    sizeof emsg);
    bx->p = resp;
    if (rc != 0) {
        etype[sizeof etype - 1] = '\0';
        emsg[sizeof emsg - 1] = '\0';
        raise_table(L, etype[0] ? etype : "ServiceException", emsg);
    }
    if (resp == NULL) raise_table(L, "ServiceException", "empty response from the host");
    sbx_budget_check(L);
    sbx_json_decode_push(L, resp, resp_len);
    sl_free(bx->p);
    bx->p = NULL;
    return 1;
}

static int l_put_record(lua_State *L)
{
    jbuf b;
    int first = 1;
    size_t n;
    const char *v;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    jb_init(L, &b, 256, 0);
    jb_addc(L, &b, '{');
    add_stream_fields(L, &b, &first, 1, "put_record");
    add_record_fields(L, &b, &first, 1, "put_record");
    v = str_field(L, 1, "put_record", "SequenceNumberForOrdering", 0, &n);
    add_json_field(L, &b, &first, "SequenceNumberForOrdering", v, n);
    jb_addc(L, &b, '}');
    lua_pushlstring(L, b.p, b.n);
    return host_call(L, "put_record");
}

static int l_put_records(lua_State *L)
{
    jbuf b;
    int first = 1;
    lua_Unsigned i;
    lua_Unsigned count;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    jb_init(L, &b, 1024, 0);
    jb_addc(L, &b, '{');
    add_stream_fields(L, &b, &first, 1, "put_records");
    lua_pushliteral(L, "Records");
    if (lua_rawget(L, 1) != LUA_TTABLE)
        return luaL_error(L, "kinesis.put_records: field 'Records' must be a table");
    count = lua_rawlen(L, -1);
    if (!first) jb_addc(L, &b, ',');
    jb_add(L, &b, "\"Records\":[", 11);
    for (i = 1; i <= count; i++) {
        int rfirst = 1;
        if (lua_rawgeti(L, 3, (lua_Integer)i) != LUA_TTABLE)
            return luaL_error(L, "kinesis.put_records: Records[%d] must be a table", (int)i);
        if (i > 1) jb_addc(L, &b, ',');
        jb_addc(L, &b, '{');
        add_record_fields(L, &b, &rfirst, 4, "put_records");
        jb_addc(L, &b, '}');
        lua_pop(L, 1);
        sbx_budget_check(L);
    }
    jb_add(L, &b, "]}", 2);
    lua_pushlstring(L, b.p, b.n);
    return host_call(L, "put_records");
}

/* ------------------------------------------------------------------------------------------ */

static void new_lib(lua_State *L, const luaL_Reg *fns, void *up)
{
    int n = 0;
    const luaL_Reg *f;
    for (f = fns; f->name != NULL; f++) n++;
    lua_createtable(L, 0, n);
    for (f = fns; f->name != NULL; f++) {
        if (up != NULL) {
            lua_pushlightuserdata(L, up);
            lua_pushcclosure(L, f->func, 1);
        } else {
            lua_pushcfunction(L, f->func);
        }
        lua_setfield(L, -2, f->name);
    }
}

void sbx_mods_open(lua_State *L, int idx, int str_idx, sbx_log *lg, const sbx_lua_host *host)
{
    static const luaL_Reg json_fns[] = {
        {"encode", l_json_encode}, {"decode", l_json_decode}, {"array", l_json_array},
        {"object", l_json_object}, {NULL, NULL},
    };
    static const luaL_Reg b64_fns[] = {
        {"encode", l_b64_encode}, {"decode", l_b64_decode}, {NULL, NULL},
    };
    static const luaL_Reg log_fns[] = {
        {"info", l_log_info}, {"warn", l_log_warn}, {"error", l_log_error},
        {"debug", l_log_debug}, {NULL, NULL},
    };
    static const luaL_Reg kinesis_fns[] = {
        {"put_record", l_put_record}, {"put_records", l_put_records}, {NULL, NULL},
    };

    idx = lua_absindex(L, idx);
    str_idx = lua_absindex(L, str_idx);

    /* registry: JSON markers, the null sentinel, the host-memory box, the tostring ids */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__name");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_array_mt);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "object");
    lua_setfield(L, -2, "__name");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_object_mt);

    lua_newuserdatauv(L, 0, 0);
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, l_null_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "json.null");
    lua_setfield(L, -2, "__name");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_null);

    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_box_mt);

    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_ids);
    lua_pushinteger(L, 0);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_idnext);

    new_lib(L, json_fns, NULL);
    sbx_json_push_null(L);
    lua_setfield(L, -2, "null");
    lua_setfield(L, idx, "json");

    new_lib(L, b64_fns, NULL);
    lua_setfield(L, idx, "base64");

    new_lib(L, log_fns, lg);
    lua_getfield(L, -1, "info");
    lua_setfield(L, idx, "print"); /* print == log.info */
    lua_setfield(L, idx, "log");

    new_lib(L, kinesis_fns, (void *)(uintptr_t)host);
    lua_setfield(L, idx, "kinesis");

    lua_pushcfunction(L, sbx_tostring);
    lua_setfield(L, idx, "tostring");

    lua_getfield(L, str_idx, "format");
    lua_pushcclosure(L, l_format, 1);
    lua_setfield(L, str_idx, "format");
}
