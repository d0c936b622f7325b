/* esm_filter.c — FilterCriteria of event-source mappings (SPEC 3.9).
 *
 * A pattern is an EventBridge-style JSON object matched against a per-record object
 *   {kinesisSchemaVersion, partitionKey, sequenceNumber, approximateArrivalTimestamp, data}
 * where data is the record's bytes parsed as JSON (the function still receives base64).
 *
 * JSON is read by the small parser below instead of cJSON because SPEC 3.9 compares numbers by
 * their text for equality (300 does not match 300.0) and cJSON keeps only the double; it also
 * keeps strings with embedded NULs intact and lets per-record parsing use a stack arena.
 *
 * Semantics (EventBridge / AWS event-ruler, in the subset Lambda documents plus suffix,
 * equals-ignore-case, wildcard and $or):
 *  - keys of a pattern object are ANDed; a key's list of conditions is ORed; nested objects
 *    descend into nested event objects; duplicate keys in a pattern: the last one wins;
 *  - conditions test leaf values; an event array offers each scalar element as a leaf (the key
 *    matches when any element matches); an object, an empty array or a missing key offers no
 *    leaf, and then only {"exists": false} matches;
 *  - literal strings, numbers (by text), null, true and false match equal leaves of the same
 *    type; numeric comparisons use the number's value and only match number leaves;
 *  - anything-but matches every leaf (any type) that its operand does not match;
 *  - equals-ignore-case (and its prefix/suffix forms) folds ASCII letters only.
 * Data/pattern compatibility: a pattern that mentions "data" (at its top level or in a
 * top-level $or branch) never matches a record whose data is not JSON; patterns without "data"
 * look at the metadata only. A "data" pattern must itself be an object.
 */
#include "runtime/esm_filter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#define MAX_FILTERS 5
#define MAX_PATTERN_CHARS 4096
#define PATTERN_DEPTH 64
#define DATA_DEPTH 512
#define ERR_PATTERN "Invalid filter pattern definition."

/* ---- arena: every parsed node lives here; freed at once ---------------------------------- */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t cap;
    size_t used;
    char *data;
} arena_chunk;

typedef struct arena {
    char *inl; /* optional caller buffer used first (stack, for per-record parsing) */
    size_t inl_cap;
    size_t inl_used;
    arena_chunk *head;
} arena;

static void *ar_alloc(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (a->inl && a->inl_cap - a->inl_used >= n) {
        void *p = a->inl + a->inl_used;
        a->inl_used += n;
        return p;
    }
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        arena_chunk *c = sl_malloc(sizeof(*c) + cap + 16);
        if (!c) return NULL;
        c->next = a->head;
        c->cap = cap;
        c->used = 0;
        /* align the data area to 16 */
        c->data = (char *)(((uintptr_t)(c + 1) + 15) & ~(uintptr_t)15);
        a->head = c;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

static void ar_free(arena *a)
{
    arena_chunk *c = a->head;
    while (c) {
        arena_chunk *next = c->next;
        sl_free(c);
        c = next;
    }
    a->head = NULL;
    a->inl_used = 0;
}

/* ---- JSON values ---------------------------------------------------------------------------- */

typedef enum { JV_NULL, JV_FALSE, JV_TRUE, JV_NUM, JV_STR, JV_ARR, JV_OBJ } jv_type;

typedef struct jv {
    jv_type t;
    const char *s;     /* JV_STR: decoded bytes; JV_NUM: the number's text */
    size_t n;
    double num;        /* JV_NUM */
    const char *key;   /* member name when inside an object */
    size_t klen;
    struct jv *first;  /* JV_ARR / JV_OBJ children, in order */
    struct jv *next;
    size_t count;
} jv;

enum { JP_OK = 0, JP_SYNTAX = 1, JP_NOMEM = 2 };

typedef struct jp {
    const char *p;
    const char *end;
    arena *a;
    int depth;
    int max_depth;
    int status;
} jp;

static size_t utf8_seq(const uint8_t *p, size_t rem)
{
    uint8_t c = p[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return rem >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (rem < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;
        if (c == 0xED && p[1] > 0x9F) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (rem < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) {
            return 0;
        }
        if (c == 0xF0 && p[1] < 0x90) return 0;
        if (c == 0xF4 && p[1] > 0x8F) return 0;
        return 4;
    }
    return 0;
}

static void jp_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
        j->p++;
    }
}

static jv *jp_fail(jp *j, int status)
{
    if (j->status == JP_OK) j->status = status;
    return NULL;
}

static jv *jv_new(jp *j, jv_type t)
{
    jv *v = ar_alloc(j->a, sizeof(*v));
    if (!v) return jp_fail(j, JP_NOMEM);
    memset(v, 0, sizeof(*v));
    v->t = t;
    return v;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
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

/* Parses a string at j->p (on the opening quote). Strings without escapes point into the
 * source; others are decoded into the arena (never longer than the source). */
static int jp_string(jp *j, const char **s, size_t *n)
{
    const char *p = j->p + 1;
    const char *start = p;
    bool escaped = false;
    while (p < j->end && *p != '"') {
        uint8_t c = (uint8_t)*p;
        if (c < 0x20) return JP_SYNTAX;
        if (c == '\\') {
            escaped = true;
            if (p + 1 >= j->end) return JP_SYNTAX;
            p += 2;
        } else if (c < 0x80) {
            p++;
        } else {
            size_t k = utf8_seq((const uint8_t *)p, (size_t)(j->end - p));
            if (k == 0) return JP_SYNTAX;
            p += k;
        }
    }
    if (p >= j->end) return JP_SYNTAX;
    const char *stop = p;
    j->p = p + 1;
    if (!escaped) {
        *s = start;
        *n = (size_t)(stop - start);
        return JP_OK;
    }
    char *o = ar_alloc(j->a, (size_t)(stop - start) + 1);
    if (!o) return JP_NOMEM;
    size_t w = 0;
    for (p = start; p < stop;) {
        if (*p != '\\') {
            o[w++] = *p++;
            continue;
        }
        char e = p[1];
        p += 2;
        switch (e) {
        case '"': o[w++] = '"'; break;
        case '\\': o[w++] = '\\'; break;
        case '/': o[w++] = '/'; break;
        case 'b': o[w++] = '\b'; break;
        case 'f': o[w++] = '\f'; break;
        case 'n': o[w++] = '\n'; break;
        case 'r': o[w++] = '\r'; break;
        case 't': o[w++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (stop - p < 4 || hex4(p, &cp) < 0) return JP_SYNTAX;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && stop - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo;
                if (hex4(p + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            /* a lone surrogate is kept as its 3-byte form (as Python's json does) */
            w += utf8_put(o + w, cp);
            break;
        }
        default:
            return JP_SYNTAX;
        }
    }
    o[w] = '\0';
    *s = o;
    *n = w;
    return JP_OK;
}

static jv *jp_number(jp *j)
{
    const char *p = j->p;
    const char *start = p;
    if (p < j->end && *p == '-') p++;
    if (p >= j->end) return jp_fail(j, JP_SYNTAX);
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < j->end && *p >= '0' && *p <= '9') p++;
    } else {
        return jp_fail(j, JP_SYNTAX);
    }
    if (p < j->end && *p == '.') {
        p++;
        if (p >= j->end || *p < '0' || *p > '9') return jp_fail(j, JP_SYNTAX);
        while (p < j->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < j->end && (*p == '+' || *p == '-')) p++;
        if (p >= j->end || *p < '0' || *p > '9') return jp_fail(j, JP_SYNTAX);
        while (p < j->end && *p >= '0' && *p <= '9') p++;
    }
    jv *v = jv_new(j, JV_NUM);
    if (!v) return NULL;
    v->s = start;
    v->n = (size_t)(p - start);
    char buf[64];
    char *tmp = v->n < sizeof(buf) ? buf : ar_alloc(j->a, v->n + 1);
    if (!tmp) return jp_fail(j, JP_NOMEM);
    memcpy(tmp, start, v->n);
    tmp[v->n] = '\0';
    v->num = strtod(tmp, NULL);
    j->p = p;
    return v;
}

static jv *jp_value(jp *j);

static jv *jp_container(jp *j, bool is_obj)
{
    if (++j->depth > j->max_depth) return jp_fail(j, JP_SYNTAX);
    jv *v = jv_new(j, is_obj ? JV_OBJ : JV_ARR);
    if (!v) return NULL;
    jv *last = NULL;
    char close = is_obj ? '}' : ']';
    j->p++;
    jp_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return v;
    }
    for (;;) {
        const char *key = NULL;
        size_t klen = 0;
        if (is_obj) {
            jp_ws(j);
            if (j->p >= j->end || *j->p != '"') return jp_fail(j, JP_SYNTAX);
            int rc = jp_string(j, &key, &klen);
            if (rc != JP_OK) return jp_fail(j, rc);
            jp_ws(j);
            if (j->p >= j->end || *j->p != ':') return jp_fail(j, JP_SYNTAX);
            j->p++;
        }
        jv *c = jp_value(j);
        if (!c) return NULL;
        c->key = key;
        c->klen = klen;
        if (last) last->next = c;
        else v->first = c;
        last = c;
        v->count++;
        jp_ws(j);
        if (j->p >= j->end) return jp_fail(j, JP_SYNTAX);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == close) {
            j->p++;
            break;
        }
        return jp_fail(j, JP_SYNTAX);
    }
    j->depth--;
    return v;
}

static bool jp_lit(jp *j, const char *lit, size_t n)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0) return false;
    j->p += n;
    return true;
}

static jv *jp_value(jp *j)
{
    jp_ws(j);
    if (j->p >= j->end) return jp_fail(j, JP_SYNTAX);
    switch (*j->p) {
    case '{': return jp_container(j, true);
    case '[': return jp_container(j, false);
    case '"': {
        jv *v = jv_new(j, JV_STR);
        if (!v) return NULL;
        int rc = jp_string(j, &v->s, &v->n);
        return rc == JP_OK ? v : jp_fail(j, rc);
    }
    case 't': return jp_lit(j, "true", 4) ? jv_new(j, JV_TRUE) : jp_fail(j, JP_SYNTAX);
    case 'f': return jp_lit(j, "false", 5) ? jv_new(j, JV_FALSE) : jp_fail(j, JP_SYNTAX);
    case 'n': return jp_lit(j, "null", 4) ? jv_new(j, JV_NULL) : jp_fail(j, JP_SYNTAX);
    default: return jp_number(j);
    }
}

/* Parses one complete JSON text; *status is JP_OK, JP_SYNTAX or JP_NOMEM. */
static jv *json_parse(arena *a, const char *s, size_t n, int max_depth, int *status)
{
    jp j = {s, s + n, a, 0, max_depth, JP_OK};
    jv *v = jp_value(&j);
    if (v) {
        jp_ws(&j);
        if (j.p != j.end) {
            v = NULL;
            j.status = JP_SYNTAX;
        }
    }
    *status = v ? JP_OK : (j.status ? j.status : JP_SYNTAX);
    return v;
}

static bool key_is(const jv *v, const char *k)
{
    size_t n = strlen(k);
    return v->klen == n && memcmp(v->key, k, n) == 0;
}

/* Member of an object by name; the last one wins for duplicate names. */
static const jv *obj_get(const jv *o, const char *k, size_t klen)
{
    const jv *found = NULL;
    for (const jv *c = o->first; c; c = c->next) {
        if (c->klen == klen && memcmp(c->key, k, klen) == 0) found = c;
    }
    return found;
}

/* ---- pattern validation ------------------------------------------------------------------- */

static int perr(sl_err *err, const char *fmt, const jv *k)
{
    if (k) {
        int n = k->klen > 200 ? 200 : (int)k->klen;
        return sl_err_set(err, SL_EINVAL, "%s %s%.*s", ERR_PATTERN, fmt, n, k->key);
    }
    return sl_err_set(err, SL_EINVAL, "%s %s", ERR_PATTERN, fmt);
}

static bool is_str(const jv *v)
{
    return v && v->t == JV_STR;
}

static bool only_member(const jv *v)
{
    return v && v->t == JV_OBJ && v->count == 1;
}

/* {"equals-ignore-case": "x"} as the operand of prefix/suffix. */
static bool is_eic_operand(const jv *v)
{
    return only_member(v) && key_is(v->first, "equals-ignore-case") && is_str(v->first);
}

static int numeric_op(const jv *v)
{
    if (!is_str(v)) return -1;
    static const char *const ops[] = {"=", "<", "<=", ">", ">="};
    for (int i = 0; i < 5; i++) {
        if (v->n == strlen(ops[i]) && memcmp(v->s, ops[i], v->n) == 0) return i;
    }
    return -1;
}
enum { OP_EQ, OP_LT, OP_LE, OP_GT, OP_GE };

static int check_numeric(const jv *arr, sl_err *err)
{
    if (!arr || arr->t != JV_ARR || (arr->count != 2 && arr->count != 4)) {
        return perr(err, "Value of numeric must be an array of 2 or 4 elements.", NULL);
    }
    const jv *o1 = arr->first;
    const jv *v1 = o1->next;
    int op1 = numeric_op(o1);
    if (op1 < 0) return perr(err, "Unrecognized numeric range operator.", NULL);
    if (v1->t != JV_NUM) return perr(err, "Value of numeric operator must be a number.", NULL);
    if (arr->count == 4) {
        const jv *o2 = v1->next;
        const jv *v2 = o2->next;
        int op2 = numeric_op(o2);
        if (op2 < 0) return perr(err, "Unrecognized numeric range operator.", NULL);
        if (v2->t != JV_NUM) return perr(err, "Value of numeric operator must be a number.", NULL);
        if ((op1 != OP_GT && op1 != OP_GE) || (op2 != OP_LT && op2 != OP_LE)) {
            return perr(err, "Bad numeric range: expected a lower bound (> or >=) followed by "
                             "an upper bound (< or <=).", NULL);
        }
        if (!(v1->num < v2->num)) {
            return perr(err, "Bad numeric range: bottom must be less than top.", NULL);
        }
    }
    return 0;
}

static int check_wildcard(const jv *v, sl_err *err)
{
    if (!is_str(v)) return perr(err, "Value of wildcard must be a string.", NULL);
    for (size_t i = 0; i + 1 < v->n; i++) {
        if (v->s[i] == '\\') {
            if (v->s[i + 1] != '*' && v->s[i + 1] != '\\') {
                return perr(err, "Invalid escape in wildcard pattern.", NULL);
            }
            i++;
        } else if (v->s[i] == '*' && v->s[i + 1] == '*') {
            return perr(err, "Consecutive wildcard characters are not allowed.", NULL);
        }
    }
    if (v->n > 0 && v->s[v->n - 1] == '\\' && (v->n < 2 || v->s[v->n - 2] != '\\')) {
        return perr(err, "Invalid escape in wildcard pattern.", NULL);
    }
    return 0;
}

static int check_anything_but(const jv *v, sl_err *err)
{
    if (v->t == JV_STR || v->t == JV_NUM) return 0;
    if (v->t == JV_ARR) {
        for (const jv *c = v->first; c; c = c->next) {
            if (c->t != JV_STR && c->t != JV_NUM) {
                return perr(err, "Inside anything-but list, only strings and numbers are "
                                 "allowed.", NULL);
            }
        }
        return 0;
    }
    if (only_member(v)) {
        const jv *m = v->first;
        if (key_is(m, "prefix") || key_is(m, "suffix")) {
            if (is_str(m) || is_eic_operand(m)) return 0;
            return perr(err, "Value of prefix/suffix must be a string.", NULL);
        }
        if (key_is(m, "equals-ignore-case")) {
            if (is_str(m)) return 0;
            if (m->t == JV_ARR) {
                for (const jv *c = m->first; c; c = c->next) {
                    if (!is_str(c)) {
                        return perr(err, "Value of equals-ignore-case must be a string.", NULL);
                    }
                }
                return 0;
            }
            return perr(err, "Value of equals-ignore-case must be a string.", NULL);
        }
        if (key_is(m, "wildcard")) return check_wildcard(m, err);
        return perr(err, "Unsupported anything-but pattern: ", m);
    }
    return perr(err, "Value of anything-but must be a string, a number, an array or an "
                     "object.", NULL);
}

static int check_condition(const jv *c, sl_err *err)
{
    switch (c->t) {
    case JV_STR:
    case JV_NUM:
    case JV_NULL:
    case JV_TRUE:
    case JV_FALSE:
        return 0;
    case JV_ARR:
        return perr(err, "Match value must be a string, a number, null, a boolean or an "
                         "operator object, not an array.", NULL);
    case JV_OBJ:
        break;
    }
    if (c->count != 1) {
        return perr(err, "A match expression must be an object with exactly one operator.",
                    NULL);
    }
    const jv *m = c->first;
    if (key_is(m, "prefix") || key_is(m, "suffix")) {
        if (is_str(m) || is_eic_operand(m)) return 0;
        return perr(err, "Value of prefix/suffix must be a string.", NULL);
    }
    if (key_is(m, "equals-ignore-case")) {
        return is_str(m) ? 0 : perr(err, "Value of equals-ignore-case must be a string.", NULL);
    }
    if (key_is(m, "exists")) {
        if (m->t == JV_TRUE || m->t == JV_FALSE) return 0;
        return perr(err, "Value of exists must be true or false.", NULL);
    }
    if (key_is(m, "numeric")) return check_numeric(m, err);
    if (key_is(m, "anything-but")) return check_anything_but(m, err);
    if (key_is(m, "wildcard")) return check_wildcard(m, err);
    return perr(err, "Unrecognized match type ", m);
}

/* Removes earlier members whose name repeats later ("last wins"). */
static void dedupe(jv *o)
{
    jv *prev = NULL;
    jv *c = o->first;
    while (c) {
        jv *next = c->next;
        bool later = false;
        for (const jv *d = next; d; d = d->next) {
            if (d->klen == c->klen && memcmp(d->key, c->key, c->klen) == 0) {
                later = true;
                break;
            }
        }
        if (later) {
            if (prev) prev->next = next;
            else o->first = next;
            o->count--;
        } else {
            prev = c;
        }
        c = next;
    }
}

/* top: this object is the pattern root (or a $or branch of it), where "data" lives. */
static int check_object(jv *o, bool top, sl_err *err)
{
    if (o->t != JV_OBJ) return perr(err, "A filter pattern must be a JSON object.", NULL);
    dedupe(o);
    for (jv *m = o->first; m; m = m->next) {
        if (key_is(m, "$or")) {
            if (m->t != JV_ARR || m->count < 1) {
                return perr(err, "Value of $or must be a non-empty array of objects.", NULL);
            }
            for (jv *b = m->first; b; b = b->next) {
                if (b->t != JV_OBJ) {
                    return perr(err, "Value of $or must be a non-empty array of objects.", NULL);
                }
                int rc = check_object(b, top, err);
                if (rc) return rc;
            }
            continue;
        }
        if (top && key_is(m, "data") && m->t != JV_OBJ) {
            return perr(err, "The data pattern must be a JSON object (records' data is matched "
                             "as JSON).", NULL);
        }
        if (m->t == JV_OBJ) {
            int rc = check_object(m, false, err);
            if (rc) return rc;
        } else if (m->t == JV_ARR) {
            for (const jv *c = m->first; c; c = c->next) {
                int rc = check_condition(c, err);
                if (rc) return rc;
            }
        } else {
            return perr(err, "Match value must be an array or an object: ", m);
        }
    }
    return 0;
}

static bool mentions_data(const jv *o)
{
    for (const jv *m = o->first; m; m = m->next) {
        if (key_is(m, "data")) return true;
        if (key_is(m, "$or")) {
            for (const jv *b = m->first; b; b = b->next) {
                if (mentions_data(b)) return true;
            }
        }
    }
    return false;
}

/* ---- matching ------------------------------------------------------------------------------ */

static bool bytes_eq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && memcmp(a, b, an) == 0;
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool ci_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    }
    return true;
}

static bool str_prefix(const jv *leaf, const jv *op)
{
    if (leaf->t != JV_STR) return false;
    if (op->t == JV_STR) return leaf->n >= op->n && memcmp(leaf->s, op->s, op->n) == 0;
    const jv *x = op->first; /* {"equals-ignore-case": "..."} */
    return leaf->n >= x->n && ci_eq(leaf->s, x->s, x->n);
}

static bool str_suffix(const jv *leaf, const jv *op)
{
    if (leaf->t != JV_STR) return false;
    if (op->t == JV_STR) {
        return leaf->n >= op->n && memcmp(leaf->s + leaf->n - op->n, op->s, op->n) == 0;
    }
    const jv *x = op->first;
    return leaf->n >= x->n && ci_eq(leaf->s + leaf->n - x->n, x->s, x->n);
}

static bool str_eic(const jv *leaf, const jv *op)
{
    return leaf->t == JV_STR && leaf->n == op->n && ci_eq(leaf->s, op->s, op->n);
}

/* Glob with '*' (any run of bytes); "\*" and "\\" are literal. Classic single-backtrack walk. */
static bool wildcard_match(const char *s, size_t sn, const char *p, size_t pn)
{
    size_t si = 0, pi = 0;
    size_t star_p = (size_t)-1, star_s = 0;
    while (si < sn) {
        if (pi < pn && p[pi] == '*') {
            star_p = pi++;
            star_s = si;
            continue;
        }
        if (pi < pn) {
            char want = p[pi];
            size_t adv = 1;
            if (want == '\\' && pi + 1 < pn) {
                want = p[pi + 1];
                adv = 2;
            }
            if (want == s[si]) {
                pi += adv;
                si++;
                continue;
            }
        }
        if (star_p == (size_t)-1) return false;
        pi = star_p + 1;
        si = ++star_s;
    }
    while (pi < pn && p[pi] == '*') pi++;
    return pi == pn;
}

static bool literal_eq(const jv *leaf, const jv *lit)
{
    if (leaf->t != lit->t) return false;
    if (lit->t == JV_STR || lit->t == JV_NUM) return bytes_eq(leaf->s, leaf->n, lit->s, lit->n);
    return true; /* null, true, false */
}

static bool numeric_cmp(double x, int op, double v)
{
    switch (op) {
    case OP_EQ: return x == v;
    case OP_LT: return x < v;
    case OP_LE: return x <= v;
    case OP_GT: return x > v;
    default: return x >= v;
    }
}

static bool numeric_match(const jv *leaf, const jv *arr)
{
    if (leaf->t != JV_NUM || !isfinite(leaf->num)) return false;
    for (const jv *o = arr->first; o; o = o->next->next) {
        if (!numeric_cmp(leaf->num, numeric_op(o), o->next->num)) return false;
    }
    return true;
}

static bool anything_but_match(const jv *leaf, const jv *v)
{
    if (v->t == JV_STR || v->t == JV_NUM) return !literal_eq(leaf, v);
    if (v->t == JV_ARR) {
        for (const jv *c = v->first; c; c = c->next) {
            if (literal_eq(leaf, c)) return false;
        }
        return true;
    }
    const jv *m = v->first;
    if (key_is(m, "prefix")) return !str_prefix(leaf, m);
    if (key_is(m, "suffix")) return !str_suffix(leaf, m);
    if (key_is(m, "wildcard")) {
        return !(leaf->t == JV_STR && wildcard_match(leaf->s, leaf->n, m->s, m->n));
    }
    /* equals-ignore-case: a string or a list of strings */
    if (m->t == JV_STR) return !str_eic(leaf, m);
    for (const jv *c = m->first; c; c = c->next) {
        if (str_eic(leaf, c)) return false;
    }
    return true;
}

static bool cond_match(const jv *c, const jv *leaf)
{
    if (c->t != JV_OBJ) return literal_eq(leaf, c);
    const jv *m = c->first;
    switch (m->key[0]) {
    case 'p': return str_prefix(leaf, m);
    case 's': return str_suffix(leaf, m);
    case 'e':
        if (key_is(m, "exists")) return m->t == JV_TRUE;
        return str_eic(leaf, m);
    case 'n': return numeric_match(leaf, m);
    case 'a': return anything_but_match(leaf, m);
    case 'w': return leaf->t == JV_STR && wildcard_match(leaf->s, leaf->n, m->s, m->n);
    default: break;
    }
    return false;
}

static bool is_scalar(const jv *v)
{
    return v->t != JV_ARR && v->t != JV_OBJ;
}

/* conds: the pattern's array for a key; fv: the event's value for it (NULL = missing). */
static bool leaf_match(const jv *conds, const jv *fv)
{
    bool any_leaf = false;
    if (fv && fv->t == JV_ARR) {
        for (const jv *e = fv->first; e; e = e->next) {
            if (!is_scalar(e)) continue;
            any_leaf = true;
            for (const jv *c = conds->first; c; c = c->next) {
                if (cond_match(c, e)) return true;
            }
        }
    } else if (fv && is_scalar(fv)) {
        any_leaf = true;
        for (const jv *c = conds->first; c; c = c->next) {
            if (cond_match(c, fv)) return true;
        }
    }
    if (any_leaf) return false;
    for (const jv *c = conds->first; c; c = c->next) {
        if (c->t == JV_OBJ && key_is(c->first, "exists") && c->first->t == JV_FALSE) return true;
    }
    return false;
}

static bool object_match(const jv *pat, const jv *ev)
{
    for (const jv *m = pat->first; m; m = m->next) {
        bool ok = false;
        if (key_is(m, "$or")) {
            for (const jv *b = m->first; b && !ok; b = b->next) ok = object_match(b, ev);
        } else {
            const jv *fv = (ev && ev->t == JV_OBJ) ? obj_get(ev, m->key, m->klen) : NULL;
            if (m->t == JV_OBJ) {
                if (fv && fv->t == JV_ARR && fv->first) {
                    for (const jv *e = fv->first; e && !ok; e = e->next) ok = object_match(m, e);
                } else {
                    ok = object_match(m, fv);
                }
            } else {
                ok = leaf_match(m, fv);
            }
        }
        if (!ok) return false;
    }
    return true;
}

/* ---- compiled filters ---------------------------------------------------------------------- */

typedef struct esm_pattern {
    char *text;     /* the pattern's source; strings of the tree may point into it */
    arena a;
    jv *root;
    bool uses_data;
} esm_pattern;

struct esm_filter {
    size_t n;       /* 0 = match everything */
    bool any_data;  /* some pattern needs the data parsed */
    esm_pattern pats[MAX_FILTERS];
};

void esm_filter_free(esm_filter *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) {
        ar_free(&f->pats[i].a);
        sl_free(f->pats[i].text);
    }
    sl_free(f);
}

static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (((uint8_t)s[i] & 0xC0) != 0x80) c++;
    }
    return c;
}

static int compile_pattern(esm_pattern *p, size_t idx, const char *text, sl_err *err)
{
    size_t n = strlen(text);
    if (utf8_chars(text, n) > MAX_PATTERN_CHARS) {
        return sl_err_set(err, SL_EINVAL, "%s Filter %zu: the pattern is longer than %d "
                          "characters.", ERR_PATTERN, idx + 1, MAX_PATTERN_CHARS);
    }
    memset(p, 0, sizeof(*p));
    p->text = sl_strndup(text, n);
    if (!p->text) return sl_err_set(err, SL_ENOMEM, "out of memory");
    int status;
    p->root = json_parse(&p->a, p->text, n, PATTERN_DEPTH, &status);
    if (!p->root) {
        if (status == JP_NOMEM) return sl_err_set(err, SL_ENOMEM, "out of memory");
        return sl_err_set(err, SL_EINVAL, "%s Filter %zu: the pattern is not valid JSON.",
                          ERR_PATTERN, idx + 1);
    }
    int rc = check_object(p->root, true, err);
    if (rc) return rc;
    p->uses_data = mentions_data(p->root);
    return 0;
}

int esm_filter_compile(esm_filter **out, const char *criteria_json, sl_err *err)
{
    int rc = 0;
    cJSON *root = NULL;
    esm_filter *f = sl_calloc(1, sizeof(*f));
    if (!f) return sl_err_set(err, SL_ENOMEM, "out of memory");
    if (!criteria_json || !criteria_json[0]) goto done;
    root = cJSON_Parse(criteria_json);
    if (!root || !cJSON_IsObject(root)) {
        rc = sl_err_set(err, SL_EINVAL, "Invalid FilterCriteria: expected a JSON object "
                        "{\"Filters\":[{\"Pattern\":\"...\"}]}.");
        goto done;
    }
    const cJSON *filters = cJSON_GetObjectItemCaseSensitive(root, "Filters");
    if (!filters || cJSON_IsNull(filters)) goto done;
    if (!cJSON_IsArray(filters)) {
        rc = sl_err_set(err, SL_EINVAL, "Invalid FilterCriteria: Filters must be a list.");
        goto done;
    }
    int count = cJSON_GetArraySize(filters);
    if (count > MAX_FILTERS) {
        rc = sl_err_set(err, SL_EINVAL, "Invalid FilterCriteria: %d filters given, the maximum "
                        "is %d.", count, MAX_FILTERS);
        goto done;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, filters) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(it, "Pattern");
        if (!cJSON_IsObject(it) || !cJSON_IsString(pat) || !pat->valuestring) {
            rc = sl_err_set(err, SL_EINVAL, "%s Filter %zu: Pattern must be a string.",
                            ERR_PATTERN, f->n + 1);
            goto done;
        }
        rc = compile_pattern(&f->pats[f->n], f->n, pat->valuestring, err);
        f->n++; /* counted even on failure, so esm_filter_free releases it */
        if (rc) goto done;
        if (f->pats[f->n - 1].uses_data) f->any_data = true;
    }
done:
    cJSON_Delete(root);
    if (rc) {
        esm_filter_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* "1714644901.421", as in the event (functions/event.c). */
static size_t ts_text(char *buf, size_t cap, int64_t ms)
{
    uint64_t a = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    int n = snprintf(buf, cap, "%s%llu.%03u", ms < 0 ? "-" : "", (unsigned long long)(a / 1000),
                     (unsigned)(a % 1000));
    return n < 0 ? 0 : (size_t)n;
}

static void set_member(jv *m, const char *key, jv_type t, const char *s, size_t n, jv **last,
                       jv *root)
{
    memset(m, 0, sizeof(*m));
    m->t = t;
    m->key = key;
    m->klen = strlen(key);
    m->s = s;
    m->n = n;
    if (*last) (*last)->next = m;
    else root->first = m;
    *last = m;
    root->count++;
}

bool esm_filter_match(const esm_filter *f, const fn_event_record *r)
{
    if (!f || f->n == 0) return true;
    if (!r) return false;
    char inl[8192] __attribute__((aligned(16)));
    arena a = {inl, sizeof(inl), 0, NULL};
    bool result = false;
    jv root, m_ver, m_pk, m_seq, m_ts;
    jv *data = NULL;
    bool data_ok = false;
    char ts[40];
    memset(&root, 0, sizeof(root));
    root.t = JV_OBJ;
    jv *last = NULL;
    const char *seq = r->seq ? r->seq : "";
    set_member(&m_ver, "kinesisSchemaVersion", JV_STR, "1.0", 3, &last, &root);
    set_member(&m_pk, "partitionKey", JV_STR, r->partition_key ? r->partition_key : "",
               r->partition_key ? r->pk_len : 0, &last, &root);
    set_member(&m_seq, "sequenceNumber", JV_STR, seq, strlen(seq), &last, &root);
    set_member(&m_ts, "approximateArrivalTimestamp", JV_NUM, ts,
               ts_text(ts, sizeof(ts), r->arrival_ms), &last, &root);
    m_ts.num = (double)r->arrival_ms / 1000.0;
    if (f->any_data && r->data && r->data_len > 0) {
        int status;
        data = json_parse(&a, (const char *)r->data, r->data_len, DATA_DEPTH, &status);
        if (data) {
            data_ok = true;
            data->key = "data";
            data->klen = 4;
            last->next = data;
            root.count++;
        } else if (status == JP_NOMEM) {
            /* cannot tell: deliver the record rather than lose it silently */
            result = true;
            goto out;
        }
    }
    for (size_t i = 0; i < f->n && !result; i++) {
        const esm_pattern *p = &f->pats[i];
        if (p->uses_data && !data_ok) continue; /* non-JSON data + data pattern: dropped */
        result = object_match(p->root, &root);
    }
out:
    ar_free(&a);
    return result;
}
