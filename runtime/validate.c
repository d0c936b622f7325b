/* validate.c — schema checks with AWS's SerializationException / ValidationException texts.
 * Patterns use POSIX regular expressions (regex.h); AWS prints them in Java syntax, so each has
 * a display form and an equivalent POSIX ERE form. */
#include "runtime/validate.h"

#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "runtime/wire.h"

#define MAX_ERRORS 10
#define MAX_VALUE_SHOWN 256

static const struct {
    const char *display;
    const char *posix;
} patterns[] = {
    [VAL_PAT_NONE] = {"", "^.*$"},
    [VAL_PAT_NAME] = {"[a-zA-Z0-9_.-]+", "^[a-zA-Z0-9_.-]+$"},
    [VAL_PAT_HASHKEY] = {"0|([1-9]\\d{0,38})", "^(0|[1-9][0-9]{0,38})$"},
    [VAL_PAT_SEQNO] = {"0|([1-9]\\d{0,128})", "^(0|[1-9][0-9]{0,128})$"},
    [VAL_PAT_ARN] = {"arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+",
                     "^arn:aws.*:kinesis:.*:[0-9]{12}:stream/[^[:space:]]+$"},
};
#define NPAT (sizeof patterns / sizeof patterns[0])

static regex_t compiled[NPAT];
static bool compiled_ok[NPAT];
static pthread_once_t compile_once = PTHREAD_ONCE_INIT;

static void compile_patterns(void)
{
    for (size_t i = 1; i < NPAT; i++)
        compiled_ok[i] = regcomp(&compiled[i], patterns[i].posix, REG_EXTENDED | REG_NOSUB) == 0;
}

bool val_match(enum val_pattern p, const char *s)
{
    if (p == VAL_PAT_NONE) return true;
    if ((size_t)p >= NPAT) return false;
    /* Fast paths for the hot, simple classes (the regex stays the reference). */
    if (p == VAL_PAT_NAME) {
        if (!*s) return false;
        for (const char *c = s; *c; c++) {
            char x = *c;
            if (!((x >= 'a' && x <= 'z') || (x >= 'A' && x <= 'Z') || (x >= '0' && x <= '9') ||
                  x == '_' || x == '.' || x == '-'))
                return false;
        }
        return true;
    }
    pthread_once(&compile_once, compile_patterns);
    SL_ASSERT(compiled_ok[p]);
    return regexec(&compiled[p], s, 0, NULL, 0) == 0;
}

const char *val_pattern_text(enum val_pattern p)
{
    return (size_t)p < NPAT ? patterns[p].display : "";
}

size_t val_utf16_len(const char *s, size_t n)
{
    size_t units = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xc0) == 0x80) continue;   /* continuation byte */
        units += c >= 0xf0 ? 2 : 1;         /* 4-byte sequences are surrogate pairs in Java */
    }
    return units;
}

/* ---- pass 1: types -------------------------------------------------------------------------- */

static const char *java_name(enum val_type t)
{
    switch (t) {
    case VAL_INT: return "Integer";
    case VAL_LONG: return "Long";
    case VAL_BOOL: return "Boolean";
    case VAL_STRING: return "String";
    default: return "Object";
    }
}

static int type_error(sl_err *err, const char *msg)
{
    return sl_err_set(err, SL_ESERIAL, "%s", msg);
}

static int check_type(const cJSON *v, const val_field *f, sl_err *err);

static int check_types(const cJSON *obj, const val_field *fields, sl_err *err)
{
    for (const val_field *f = fields; f->name; f++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, f->name);
        if (!v || cJSON_IsNull(v)) continue;
        int rc = check_type(v, f, err);
        if (rc) return rc;
    }
    return 0;
}

static int check_type(const cJSON *v, const val_field *f, sl_err *err)
{
    char msg[128];
    bool is_list = cJSON_IsArray(v), is_map = cJSON_IsObject(v);

    switch (f->type) {
    case VAL_BOOL:
        if (cJSON_IsBool(v)) return 0;
        if (cJSON_IsNumber(v))
            return type_error(err, "class java.math.BigDecimal can not be converted to an Boolean");
        if (cJSON_IsString(v)) {
            char up[64];
            size_t i = 0;
            for (; v->valuestring[i] && i < sizeof up - 1; i++) {
                char c = v->valuestring[i];
                up[i] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
            }
            up[i] = '\0';
            return sl_err_set(err, SL_ESERIAL, "'%s' can not be converted to an Boolean", up);
        }
        break;
    case VAL_INT:
    case VAL_LONG:
    case VAL_TIMESTAMP:
        if (cJSON_IsNumber(v)) {
            if (!isfinite(v->valuedouble))
                return type_error(err, "Non-finite number found where not expected");
            return 0;
        }
        if (f->type == VAL_TIMESTAMP) {
            if (cJSON_IsBool(v) || cJSON_IsString(v) || wire_is_blob(v))
                return type_error(err, "class java.lang.String can not be converted to "
                                       "milliseconds since epoch");
            break;
        }
        if (cJSON_IsBool(v)) {
            snprintf(msg, sizeof msg, "class java.lang.Boolean can not be converted to an %s",
                     java_name(f->type));
            return type_error(err, msg);
        }
        if (cJSON_IsString(v) || wire_is_blob(v)) {
            snprintf(msg, sizeof msg, "class java.lang.String can not be converted to an %s",
                     java_name(f->type));
            return type_error(err, msg);
        }
        break;
    case VAL_STRING:
        if (cJSON_IsString(v)) return 0;
        if (cJSON_IsBool(v))
            return type_error(err, "class java.lang.Boolean can not be converted to an String");
        if (cJSON_IsNumber(v))
            return type_error(err, "class java.math.BigDecimal can not be converted to an String");
        if (wire_is_blob(v))
            return type_error(err, "class [B can not be converted to an String");
        break;
    case VAL_BLOB:
        if (wire_is_blob(v)) return 0;
        if (cJSON_IsString(v)) {
            size_t n;
            return wire_b64_check(v->valuestring, strlen(v->valuestring), &n, err);
        }
        if (cJSON_IsBool(v))
            return type_error(err, "class java.lang.Boolean can not be converted to a Blob");
        if (cJSON_IsNumber(v))
            return type_error(err, "class java.math.BigDecimal can not be converted to a Blob");
        break;
    case VAL_LIST:
        if (is_list) {
            const cJSON *e;
            cJSON_ArrayForEach(e, v) {
                if (cJSON_IsNull(e)) continue;
                int rc = check_type(e, f->members, err);
                if (rc) return rc;
            }
            return 0;
        }
        if (is_map) return type_error(err, "Start of structure or map found where not expected.");
        return type_error(err, "Expected list or null");
    case VAL_MAP:
        if (is_map) {
            const cJSON *e;
            cJSON_ArrayForEach(e, v) {
                if (cJSON_IsNull(e)) continue;
                int rc = check_type(e, f->members, err);
                if (rc) return rc;
            }
            return 0;
        }
        if (is_list) return type_error(err, "Start of list found where not expected");
        return type_error(err, "Expected map or null");
    case VAL_STRUCT:
        if (is_map) return check_types(v, f->members, err);
        if (is_list) return type_error(err, "Start of list found where not expected");
        return type_error(err, "Expected null");
    }
    if (is_list) return type_error(err, "Start of list found where not expected");
    if (is_map) return type_error(err, "Start of structure or map found where not expected.");
    return type_error(err, "Unexpected value type");
}

/* ---- pass 2: constraints -------------------------------------------------------------------- */

typedef struct errlist {
    int n;
    char buf[4096];
    size_t len;
} errlist;

static void append(errlist *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(errlist *e, const char *fmt, ...)
{
    va_list ap;
    if (e->len >= sizeof e->buf - 1) return;
    va_start(ap, fmt);
    int w = vsnprintf(e->buf + e->len, sizeof e->buf - e->len, fmt, ap);
    va_end(ap);
    if (w > 0) e->len += (size_t)w;
    if (e->len >= sizeof e->buf) e->len = sizeof e->buf - 1;
}

/* Renders a value the way Coral quotes it in messages into out (bounded). */
static void value_str(const cJSON *v, enum val_type t, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    if (!v || cJSON_IsNull(v)) {
        snprintf(out, cap, "null");
        return;
    }
    switch (t) {
    case VAL_BLOB: {
        size_t n = 0;
        if (wire_is_blob(v)) {
            const uint8_t *p;
            wire_blob_bytes(v, &p, &n);
        } else if (cJSON_IsString(v)) {
            size_t l = strlen(v->valuestring);
            n = l / 4 * 3;
            if (l && v->valuestring[l - 1] == '=') n--;
            if (l > 1 && v->valuestring[l - 2] == '=') n--;
        }
        snprintf(out, cap, "java.nio.HeapByteBuffer[pos=0 lim=%zu cap=%zu]", n, n);
        return;
    }
    case VAL_INT:
    case VAL_LONG:
        snprintf(out, cap, "%.0f", floor(v->valuedouble));
        return;
    case VAL_TIMESTAMP:
        snprintf(out, cap, "%.3f", v->valuedouble);
        return;
    case VAL_BOOL:
        snprintf(out, cap, "%s", cJSON_IsTrue(v) ? "true" : "false");
        return;
    case VAL_STRING:
        if (cJSON_IsString(v)) {
            size_t l = strlen(v->valuestring);
            snprintf(out, cap, "%.*s%s", (int)(l > MAX_VALUE_SHOWN ? MAX_VALUE_SHOWN : l),
                     v->valuestring, l > MAX_VALUE_SHOWN ? "..." : "");
        }
        return;
    case VAL_LIST:
    case VAL_MAP: {
        const cJSON *e;
        bool first = true;
        o += (size_t)snprintf(out + o, cap - o, t == VAL_LIST ? "[" : "{");
        cJSON_ArrayForEach(e, v) {
            if (o + 8 >= cap) break;
            if (!first) o += (size_t)snprintf(out + o, cap - o, ", ");
            first = false;
            if (t == VAL_MAP && e->string)
                o += (size_t)snprintf(out + o, cap - o, "%.64s=", e->string);
            if (o >= cap) break;
            if (cJSON_IsString(e)) o += (size_t)snprintf(out + o, cap - o, "%.64s", e->valuestring);
            else if (cJSON_IsNumber(e))
                o += (size_t)snprintf(out + o, cap - o, "%g", e->valuedouble);
            else o += (size_t)snprintf(out + o, cap - o, "{...}");
            if (o >= cap) break;
        }
        if (o < cap - 1) snprintf(out + o, cap - o, t == VAL_LIST ? "]" : "}");
        return;
    }
    case VAL_STRUCT:
        snprintf(out, cap, "{...}");
        return;
    }
}

/* A member path, built on the stack as the walk descends and rendered only when a violation
 * is reported (no formatting on the valid path, which PutRecords walks 500 times). */
typedef struct path_seg {
    const struct path_seg *parent;
    const char *name;   /* member name, printed lower-first */
    int index;          /* list position (1-based) when name and key are NULL */
    const char *key;    /* map key, printed as is */
} path_seg;

static size_t path_render(const path_seg *p, char *out, size_t cap)
{
    size_t o = 0;
    int w;
    if (!p || cap == 0) return 0;
    if (p->parent) {
        o = path_render(p->parent, out, cap);
        if (o + 1 < cap) out[o++] = '.';
    }
    if (o >= cap) return cap - 1;
    if (p->name) {
        w = snprintf(out + o, cap - o, "%c%s",
                     (p->name[0] >= 'A' && p->name[0] <= 'Z') ? p->name[0] + 32 : p->name[0],
                     p->name[0] ? p->name + 1 : "");
    } else if (p->key) {
        w = snprintf(out + o, cap - o, "%.200s", p->key);
    } else {
        w = snprintf(out + o, cap - o, "%d", p->index);
    }
    o += w > 0 ? (size_t)w : 0;
    return o < cap ? o : cap - 1;
}

static void violation(errlist *e, const cJSON *v, const val_field *f, const path_seg *p,
                      const char *constraint)
{
    char shown[MAX_VALUE_SHOWN + 64];
    char path[512];
    if (e->n >= MAX_ERRORS) return;
    value_str(v, f->type, shown, sizeof shown);
    path[0] = '\0';
    path_render(p, path, sizeof path);
    append(e, "%sValue %s%s%s at '%s' failed to satisfy constraint: %s", e->n ? "; " : "",
           (v && !cJSON_IsNull(v)) ? "'" : "", shown, (v && !cJSON_IsNull(v)) ? "'" : "", path,
           constraint);
    e->n++;
}

/* Length of a present value under the schema's notion (UTF-16 units, bytes, entries). */
static int64_t value_len(const cJSON *v, enum val_type t)
{
    if (t == VAL_STRING && cJSON_IsString(v))
        return (int64_t)val_utf16_len(v->valuestring, strlen(v->valuestring));
    if (t == VAL_BLOB) {
        if (wire_is_blob(v)) {
            const uint8_t *p;
            size_t n;
            wire_blob_bytes(v, &p, &n);
            return (int64_t)n;
        }
        if (cJSON_IsString(v)) {
            size_t l = strlen(v->valuestring), n = l / 4 * 3;
            if (l && v->valuestring[l - 1] == '=') n--;
            if (l > 1 && v->valuestring[l - 2] == '=') n--;
            return (int64_t)n;
        }
    }
    if (t == VAL_LIST || t == VAL_MAP) return cJSON_GetArraySize(v);
    return 0;
}

static void check_members(errlist *e, const cJSON *obj, const val_field *fields,
                          const path_seg *parent);

static void check_field(errlist *e, const cJSON *v, const val_field *f, const cJSON *siblings,
                        const path_seg *path)
{
    char c[256];
    if (v && cJSON_IsNull(v)) v = NULL;
    if (!v) {
        bool waived = f->unless && siblings &&
                      cJSON_GetObjectItemCaseSensitive(siblings, f->unless) &&
                      !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(siblings, f->unless));
        if (f->not_null && !waived) violation(e, NULL, f, path, "Member must not be null");
        return;
    }
    if (f->type == VAL_INT || f->type == VAL_LONG) {
        double d = floor(v->valuedouble);
        if (f->min_value != VAL_UNSET && d < (double)f->min_value) {
            snprintf(c, sizeof c, "Member must have value greater than or equal to %lld",
                     (long long)f->min_value);
            violation(e, v, f, path, c);
        }
        if (f->max_value != VAL_UNSET && d > (double)f->max_value) {
            snprintf(c, sizeof c, "Member must have value less than or equal to %lld",
                     (long long)f->max_value);
            violation(e, v, f, path, c);
        }
    }
    if (f->pattern != VAL_PAT_NONE && f->type == VAL_STRING &&
        !val_match(f->pattern, v->valuestring)) {
        snprintf(c, sizeof c, "Member must satisfy regular expression pattern: %s",
                 val_pattern_text(f->pattern));
        violation(e, v, f, path, c);
    }
    if (f->min_len != VAL_UNSET || f->max_len != VAL_UNSET) {
        int64_t len = value_len(v, f->type);
        if (f->min_len != VAL_UNSET && len < f->min_len) {
            snprintf(c, sizeof c, "Member must have length greater than or equal to %lld",
                     (long long)f->min_len);
            violation(e, v, f, path, c);
        }
        if (f->max_len != VAL_UNSET && len > f->max_len) {
            snprintf(c, sizeof c, "Member must have length less than or equal to %lld",
                     (long long)f->max_len);
            violation(e, v, f, path, c);
        }
    }
    if (f->enum_values && f->type == VAL_STRING) {
        bool found = false;
        size_t o = 0;
        for (const char *const *ev = f->enum_values; *ev; ev++)
            if (!strcmp(*ev, v->valuestring)) found = true;
        if (!found) {
            o += (size_t)snprintf(c, sizeof c, "Member must satisfy enum value set: [");
            for (const char *const *ev = f->enum_values; *ev && o < sizeof c; ev++)
                o += (size_t)snprintf(c + o, sizeof c - o, "%s%s", ev == f->enum_values ? "" : ", ",
                                      *ev);
            if (o < sizeof c) snprintf(c + o, sizeof c - o, "]");
            violation(e, v, f, path, c);
        }
    }
    if (f->type == VAL_MAP && (f->key_min_len != VAL_UNSET || f->key_max_len != VAL_UNSET)) {
        const cJSON *m;
        bool ok = true;
        cJSON_ArrayForEach(m, v) {
            int64_t kl = (int64_t)val_utf16_len(m->string, strlen(m->string));
            if ((f->key_min_len != VAL_UNSET && kl < f->key_min_len) ||
                (f->key_max_len != VAL_UNSET && kl > f->key_max_len))
                ok = false;
        }
        if (!ok) {
            snprintf(c, sizeof c,
                     "Map keys must satisfy constraint: [Member must have length less than or "
                     "equal to %lld, Member must have length greater than or equal to %lld]",
                     (long long)f->key_max_len, (long long)f->key_min_len);
            violation(e, v, f, path, c);
        }
    }
    if (f->type == VAL_STRUCT && f->members) {
        check_members(e, v, f->members, path);
    } else if (f->type == VAL_LIST && f->members) {
        const cJSON *m;
        int i = 0;
        cJSON_ArrayForEach(m, v) {
            i++;
            if (e->n >= MAX_ERRORS) return;
            path_seg at = {path, NULL, i, NULL};
            path_seg member_seg = {&at, "member", 0, NULL};
            check_field(e, m, f->members, NULL, &member_seg);
        }
    } else if (f->type == VAL_MAP && f->members) {
        const cJSON *m;
        cJSON_ArrayForEach(m, v) {
            if (e->n >= MAX_ERRORS) return;
            path_seg at = {path, NULL, 0, m->string};
            path_seg member_seg = {&at, "member", 0, NULL};
            check_field(e, m, f->members, NULL, &member_seg);
        }
    }
}

static void check_members(errlist *e, const cJSON *obj, const val_field *fields,
                          const path_seg *parent)
{
    for (const val_field *f = fields; f->name; f++) {
        if (e->n >= MAX_ERRORS) return;
        path_seg seg = {parent, f->name, 0, NULL};
        check_field(e, cJSON_GetObjectItemCaseSensitive(obj, f->name), f, obj, &seg);
    }
}

int val_check(const cJSON *req, const val_field *fields, sl_err *err)
{
    errlist *e;
    int rc;

    rc = check_types(req, fields, err);
    if (rc) return rc;
    e = sl_calloc(1, sizeof *e);
    if (!e) return sl_err_set(err, SL_ENOMEM, "out of memory");
    check_members(e, req, fields, NULL);
    if (e->n) {
        rc = sl_err_set(err, SL_EVALIDATION, "%d validation error%s detected: %s", e->n,
                        e->n > 1 ? "s" : "", e->buf);
    }
    sl_free(e);
    return rc;
}
