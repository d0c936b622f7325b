/* auth.c — see auth.h. SHA-256 and HMAC come from libcrypto; the SigV4 canonicalisation itself
 * is written here because no Debian library exposes a server-side SigV4 verifier (aws-c-auth is
 * not packaged for Debian 12). Error texts are AWS's (as emitted by AWS Coral services and
 * mirrored by kinesalite).
 */
#include "runtime/auth.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ALGO "AWS4-HMAC-SHA256"
#define SKEW_MS (15 * 60 * 1000LL)
#define PRESIGN_MAX_S 604800
#define UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

typedef struct auth_key {
    char *id;
    char *secret;
} auth_key;

struct rt_auth {
    auth_key *keys;
    size_t n, cap;
};

/* ------------------------------------------------------------------------------------------ */
/* a small string builder; an allocation failure sticks and is reported at the end */

typedef struct sb {
    char *p;
    size_t len, cap;
    bool oom;
} sb;

static void sb_put(sb *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        char *q;
        while (c < b->len + n + 1) c *= 2;
        q = sl_realloc(b->p, c);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sb *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_chr(sb *b, char c) { sb_put(b, &c, 1); }

static bool unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* RFC 3986 encoding as SigV4 wants it: unreserved kept, everything else %XX (upper case). */
static void sb_encode(sb *b, const char *s, size_t n, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            sb_chr(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_put(b, e, 3);
        }
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into out (room for n bytes); a malformed escape is kept literally. */
static size_t pct_decode(const char *s, size_t n, char *out)
{
    size_t i;
    size_t o = 0;
    for (i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

static void hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* building blocks */

void rt_sigv4_sha256_hex(const void *p, size_t n, char hex[65])
{
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256(p, n, d);
    hex_encode(d, sizeof d, hex);
}

static void hmac(const uint8_t *key, size_t klen, const char *msg, size_t mlen, uint8_t out[32])
{
    unsigned int olen = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, out, &olen);
}

void rt_sigv4_signing_key(const char *secret, const char *date, const char *region,
                          const char *service, uint8_t key[32])
{
    size_t sl = strlen(secret);
    char *k = sl_malloc(sl + 5);
    uint8_t a[32];
    uint8_t b[32];
    if (!k) {
        /* no memory: a key nobody can match (the caller's compare then fails cleanly) */
        memset(key, 0, 32);
        return;
    }
    memcpy(k, "AWS4", 4);
    memcpy(k + 4, secret, sl + 1);
    hmac((const uint8_t *)k, sl + 4, date, strlen(date), a);
    OPENSSL_cleanse(k, sl + 4);
    sl_free(k);
    hmac(a, 32, region, strlen(region), b);
    hmac(b, 32, service, strlen(service), a);
    hmac(a, 32, "aws4_request", 12, key);
    OPENSSL_cleanse(a, sizeof a);
    OPENSSL_cleanse(b, sizeof b);
}

void rt_sigv4_signature(const uint8_t key[32], const char *string_to_sign, char hex[65])
{
    uint8_t d[32];
    hmac(key, 32, string_to_sign, strlen(string_to_sign), d);
    hex_encode(d, 32, hex);
}

void rt_sigv4_string_to_sign(const char *amz_date, const char *scope, const char *canonical,
                             char *out, size_t cap)
{
    char h[65];
    rt_sigv4_sha256_hex(canonical, strlen(canonical), h);
    snprintf(out, cap, ALGO "\n%s\n%s\n%s", amz_date, scope, h);
}

/* Path normalisation as the SDKs do before signing: dot segments resolved and empty segments
 * (runs of '/') dropped; a trailing '/' is kept when something is left. */
static void sb_canonical_uri(sb *b, const char *path)
{
    size_t n = strlen(path);
    const char **seg;
    size_t *slen;
    size_t ns = 0;
    size_t i = 0;
    size_t k;
    bool trailing;

    if (n == 0) {
        sb_chr(b, '/');
        return;
    }
    seg = sl_malloc((n + 1) * sizeof *seg);
    slen = sl_malloc((n + 1) * sizeof *slen);
    if (!seg || !slen) {
        sl_free(seg);
        sl_free(slen);
        b->oom = true;
        return;
    }
    while (i < n) {
        size_t j = i;
        while (j < n && path[j] != '/') j++;
        if (j > i) {
            size_t l = j - i;
            if (l == 1 && path[i] == '.') {
                /* "." : nothing */
            } else if (l == 2 && path[i] == '.' && path[i + 1] == '.') {
                if (ns) ns--;
            } else {
                seg[ns] = path + i;
                slen[ns] = l;
                ns++;
            }
        }
        i = j + 1;
    }
    trailing = path[n - 1] == '/' && ns > 0;
    if (path[0] == '/') sb_chr(b, '/');
    for (k = 0; k < ns; k++) {
        if (k) sb_chr(b, '/');
        sb_encode(b, seg[k], slen[k], false);
    }
    if (trailing) sb_chr(b, '/');
    if (path[0] != '/' && ns == 0) sb_chr(b, '/');
    sl_free(seg);
    sl_free(slen);
}

typedef struct qpair {
    char *k;
    char *v;
} qpair;

static int qpair_cmp(const void *a, const void *b)
{
    const qpair *x = a;
    const qpair *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

/* Encodes the decoded form of s[0..n) into a fresh string; NULL on OOM. */
static char *reencode(const char *s, size_t n)
{
    char *tmp = sl_malloc(n + 1);
    sb b = {0};
    size_t dn;
    if (!tmp) return NULL;
    dn = pct_decode(s, n, tmp);
    sb_encode(&b, tmp, dn, false);
    sl_free(tmp);
    if (!b.p && !b.oom) sb_put(&b, "", 0);
    if (b.oom) {
        sl_free(b.p);
        return NULL;
    }
    return b.p;
}

static void sb_canonical_query(sb *b, const char *query, bool presigned)
{
    size_t n = strlen(query);
    size_t cap = 1;
    size_t np = 0;
    size_t i;
    qpair *ps;
    const char *p = query;

    for (i = 0; i < n; i++) cap += query[i] == '&';
    ps = sl_calloc(cap, sizeof *ps);
    if (!ps) {
        b->oom = true;
        return;
    }
    while (*p) {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        if (end > p) {
            char *k = reencode(p, (size_t)(kend - p));
            char *v = eq ? reencode(eq + 1, (size_t)(end - eq - 1)) : reencode("", 0);
            if (!k || !v) {
                sl_free(k);
                sl_free(v);
                b->oom = true;
                break;
            }
            if (presigned && !strcmp(k, "X-Amz-Signature")) {
                sl_free(k);
                sl_free(v);
            } else {
                ps[np].k = k;
                ps[np].v = v;
                np++;
            }
        }
        if (!amp) break;
        p = amp + 1;
    }
    qsort(ps, np, sizeof *ps, qpair_cmp);
    for (i = 0; i < np; i++) {
        if (i) sb_chr(b, '&');
        sb_str(b, ps[i].k);
        sb_chr(b, '=');
        sb_str(b, ps[i].v);
        sl_free(ps[i].k);
        sl_free(ps[i].v);
    }
    sl_free(ps);
}

/* Appends a header value trimmed, with inner runs of whitespace collapsed to one space. */
static void sb_trimmed(sb *b, const char *v)
{
    bool space = false;
    bool any = false;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
            space = any;
            continue;
        }
        if (space) sb_chr(b, ' ');
        space = false;
        any = true;
        sb_chr(b, *v);
    }
}

int rt_sigv4_canonical_request(const http_request *r, const char *signed_headers, bool presigned,
                               const char *payload_hash, char **out)
{
    sb b = {0};
    const char *p = signed_headers;
    char name[256];

    sb_str(&b, r->method);
    sb_chr(&b, '\n');
    sb_canonical_uri(&b, r->path ? r->path : "/");
    sb_chr(&b, '\n');
    sb_canonical_query(&b, r->query ? r->query : "", presigned);
    sb_chr(&b, '\n');
    while (*p) {
        const char *semi = strchr(p, ';');
        size_t l = semi ? (size_t)(semi - p) : strlen(p);
        size_t i;
        bool first = true;
        if (l > 0 && l < sizeof name) {
            for (i = 0; i < l; i++) name[i] = (char)tolower((unsigned char)p[i]);
            name[l] = '\0';
            sb_str(&b, name);
            sb_chr(&b, ':');
            for (i = 0; i < r->nheaders; i++) {
                if (strcasecmp(r->headers[i].name, name) != 0) continue;
                if (!first) sb_chr(&b, ',');
                sb_trimmed(&b, r->headers[i].value);
                first = false;
            }
            sb_chr(&b, '\n');
        }
        if (!semi) break;
        p = semi + 1;
    }
    sb_chr(&b, '\n');
    for (p = signed_headers; *p; p++) sb_chr(&b, (char)tolower((unsigned char)*p));
    sb_chr(&b, '\n');
    sb_str(&b, payload_hash);
    if (b.oom) {
        sl_free(b.p);
        return SL_ENOMEM;
    }
    *out = b.p;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* parsing what the request says */

typedef struct sig_parts {
    bool presigned;
    char algo[64];
    char credential[512];
    char signed_headers[1024];
    char signature[130];
    char amz_date[64];
    char expires[32];
    char content_sha[80];
    bool has_algo, has_cred, has_sh, has_sig, has_date, has_expires;
    /* credential scope */
    char akid[128];
    char date[16];
    char region[64];
    char service[64];
    char term[64];
    int64_t when_ms;
} sig_parts;

static void copy_n(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap) n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Finds a query parameter by (decoded) name; copies its decoded value. */
static bool query_param(const char *query, const char *name, char *out, size_t cap)
{
    const char *p = query ? query : "";
    size_t nl = strlen(name);
    while (*p) {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        size_t kl = (size_t)(kend - p);
        char kbuf[64];
        if (kl < sizeof kbuf) {
            size_t dl = pct_decode(p, kl, kbuf);
            if (dl == nl && !memcmp(kbuf, name, nl)) {
                if (out) {
                    size_t vl = eq ? (size_t)(end - eq - 1) : 0;
                    char *tmp = sl_malloc(vl + 1);
                    if (!tmp) {
                        out[0] = '\0';
                        return true;
                    }
                    vl = pct_decode(eq ? eq + 1 : "", vl, tmp);
                    copy_n(out, cap, tmp, vl);
                    sl_free(tmp);
                }
                return true;
            }
        }
        if (!amp) break;
        p = amp + 1;
    }
    return false;
}

/* Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=... */
static void parse_header(const char *h, sig_parts *s)
{
    const char *p = h;
    size_t l;
    while (*p == ' ') p++;
    l = strcspn(p, " ,");
    copy_n(s->algo, sizeof s->algo, p, l);
    s->has_algo = l > 0;
    p += l;
    while (*p) {
        const char *eq;
        size_t kl;
        size_t vl;
        p += strspn(p, " ,");
        if (!*p) break;
        l = strcspn(p, " ,");
        eq = memchr(p, '=', l);
        if (eq) {
            kl = (size_t)(eq - p);
            vl = l - kl - 1;
            if (kl == 10 && !strncmp(p, "Credential", kl) && vl) {
                copy_n(s->credential, sizeof s->credential, eq + 1, vl);
                s->has_cred = true;
            } else if (kl == 13 && !strncmp(p, "SignedHeaders", kl) && vl) {
                copy_n(s->signed_headers, sizeof s->signed_headers, eq + 1, vl);
                s->has_sh = true;
            } else if (kl == 9 && !strncmp(p, "Signature", kl) && vl) {
                copy_n(s->signature, sizeof s->signature, eq + 1, vl);
                s->has_sig = true;
            }
        }
        p += l;
    }
}

static bool parse_amz_date(const char *d, int64_t *ms)
{
    struct tm tm;
    int i;
    if (strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z') return false;
    for (i = 0; i < 15; i++) {
        if (i != 8 && !isdigit((unsigned char)d[i])) return false;
    }
    memset(&tm, 0, sizeof tm);
    tm.tm_year = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0') - 1900;
    tm.tm_mon = (d[4] - '0') * 10 + (d[5] - '0') - 1;
    tm.tm_mday = (d[6] - '0') * 10 + (d[7] - '0');
    tm.tm_hour = (d[9] - '0') * 10 + (d[10] - '0');
    tm.tm_min = (d[11] - '0') * 10 + (d[12] - '0');
    tm.tm_sec = (d[13] - '0') * 10 + (d[14] - '0');
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return false;
    *ms = (int64_t)timegm(&tm) * 1000;
    return true;
}

static void fmt_amz_date(int64_t ms, char out[17])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* Date: header (RFC 7231 IMF-fixdate) as an alternative to X-Amz-Date. */
static bool parse_http_date(const char *d, char amz[17])
{
    struct tm tm;
    const char *end;
    memset(&tm, 0, sizeof tm);
    end = strptime(d, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end) return false;
    fmt_amz_date((int64_t)timegm(&tm) * 1000, amz);
    return true;
}

static int fail(char *type, size_t tl, sl_err *err, const char *t, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(char *type, size_t tl, sl_err *err, const char *t, const char *fmt, ...)
{
    va_list ap;
    if (type && tl) snprintf(type, tl, "%s", t);
    va_start(ap, fmt);
    sl_err_vset(err, SL_EINVAL, fmt, ap);
    va_end(ap);
    return SL_EINVAL;
}

static int split_credential(sig_parts *s, char *type, size_t tl, sl_err *err)
{
    const char *parts[5];
    size_t lens[5];
    size_t np = 0;
    const char *p = s->credential;
    for (;;) {
        const char *sl = strchr(p, '/');
        if (np == 5) {
            np = 6;
            break;
        }
        parts[np] = p;
        lens[np] = sl ? (size_t)(sl - p) : strlen(p);
        np++;
        if (!sl) break;
        p = sl + 1;
    }
    if (np != 5)
        return fail(type, tl, err, "IncompleteSignatureException",
                    "Credential must have exactly 5 slash-delimited elements, e.g. "
                    "keyid/date/region/service/term, got '%s'", s->credential);
    copy_n(s->akid, sizeof s->akid, parts[0], lens[0]);
    copy_n(s->date, sizeof s->date, parts[1], lens[1]);
    copy_n(s->region, sizeof s->region, parts[2], lens[2]);
    copy_n(s->service, sizeof s->service, parts[3], lens[3]);
    copy_n(s->term, sizeof s->term, parts[4], lens[4]);
    if (strcmp(s->term, "aws4_request") != 0)
        return fail(type, tl, err, "IncompleteSignatureException",
                    "Credential should be scoped with a valid terminator: 'aws4_request', not "
                    "'%s'.", s->term);
    return 0;
}

/* Gathers and validates everything but the signature itself. */
static int parse_request(const http_request *r, sig_parts *s, char *type, size_t tl, sl_err *err)
{
    const char *auth = http_request_header(r, "Authorization");
    bool q = query_param(r->query, "X-Amz-Algorithm", NULL, 0);
    const char *hd;
    char msg[SL_ERR_MSG_MAX];
    size_t ml = 0;
    int rc;

    memset(s, 0, sizeof *s);
    if (auth && q)
        return fail(type, tl, err, "InvalidSignatureException",
                    "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as "
                    "HTTP header.");
    if (!auth && !q)
        return fail(type, tl, err, "MissingAuthenticationTokenException",
                    "Missing Authentication Token");
    msg[0] = '\0';
    if (auth) {
        parse_header(auth, s);
        if (!s->has_cred)
            ml += (size_t)snprintf(msg + ml, sizeof msg - ml,
                                   "Authorization header requires 'Credential' parameter. ");
        if (!s->has_sig && ml < sizeof msg)
            ml += (size_t)snprintf(msg + ml, sizeof msg - ml,
                                   "Authorization header requires 'Signature' parameter. ");
        if (!s->has_sh && ml < sizeof msg)
            ml += (size_t)snprintf(msg + ml, sizeof msg - ml,
                                   "Authorization header requires 'SignedHeaders' parameter. ");
        hd = http_request_header(r, "X-Amz-Date");
        if (hd) {
            copy_n(s->amz_date, sizeof s->amz_date, hd, strlen(hd));
            s->has_date = true;
        } else if ((hd = http_request_header(r, "Date")) != NULL) {
            char amz[17];
            if (parse_http_date(hd, amz)) copy_n(s->amz_date, sizeof s->amz_date, amz, 16);
            else copy_n(s->amz_date, sizeof s->amz_date, hd, strlen(hd));
            s->has_date = true;
        } else if (ml < sizeof msg) {
            ml += (size_t)snprintf(msg + ml, sizeof msg - ml,
                                   "Authorization header requires existence of either a "
                                   "'X-Amz-Date' or a 'Date' header. ");
        }
        if (ml) {
            if (ml < sizeof msg) snprintf(msg + ml, sizeof msg - ml, "Authorization=%s", auth);
            return fail(type, tl, err, "IncompleteSignatureException", "%s", msg);
        }
        if (strcmp(s->algo, ALGO) != 0)
            return fail(type, tl, err, "IncompleteSignatureException",
                        "Unsupported AWS 'algorithm': '%s'", s->algo);
        {
            /* x-amz-content-sha256 may announce an unsigned payload */
            const char *cs = http_request_header(r, "X-Amz-Content-Sha256");
            if (cs) copy_n(s->content_sha, sizeof s->content_sha, cs, strlen(cs));
        }
    } else {
        static const char *const need[] = {"X-Amz-Algorithm", "X-Amz-Credential",
                                           "X-Amz-Signature", "X-Amz-SignedHeaders",
                                           "X-Amz-Date"};
        size_t i;
        s->presigned = true;
        s->has_algo = query_param(r->query, "X-Amz-Algorithm", s->algo, sizeof s->algo);
        s->has_cred = query_param(r->query, "X-Amz-Credential", s->credential,
                                  sizeof s->credential);
        s->has_sig = query_param(r->query, "X-Amz-Signature", s->signature, sizeof s->signature);
        s->has_sh = query_param(r->query, "X-Amz-SignedHeaders", s->signed_headers,
                                sizeof s->signed_headers);
        s->has_date = query_param(r->query, "X-Amz-Date", s->amz_date, sizeof s->amz_date);
        s->has_expires = query_param(r->query, "X-Amz-Expires", s->expires, sizeof s->expires);
        query_param(r->query, "X-Amz-Content-Sha256", s->content_sha, sizeof s->content_sha);
        for (i = 0; i < sizeof need / sizeof need[0]; i++) {
            char tmp[8];
            bool have = query_param(r->query, need[i], tmp, sizeof tmp) && tmp[0];
            if (!have && ml < sizeof msg)
                ml += (size_t)snprintf(msg + ml, sizeof msg - ml,
                                       "AWS query-string parameters must include '%s'. ", need[i]);
        }
        if (ml) {
            if (ml < sizeof msg) snprintf(msg + ml, sizeof msg - ml,
                                          "Re-examine the query-string parameters.");
            return fail(type, tl, err, "IncompleteSignatureException", "%s", msg);
        }
        if (strcmp(s->algo, ALGO) != 0)
            return fail(type, tl, err, "IncompleteSignatureException",
                        "X-Amz-Algorithm only supports \"" ALGO "\"");
        if (s->has_expires) {
            char *end;
            long v = strtol(s->expires, &end, 10);
            if (!s->expires[0] || *end || v < 0)
                return fail(type, tl, err, "IncompleteSignatureException",
                            "X-Amz-Expires should be a number");
            if (v > PRESIGN_MAX_S)
                return fail(type, tl, err, "IncompleteSignatureException",
                            "X-Amz-Expires must be less than a week (in seconds); that is, the "
                            "given X-Amz-Expires must be less than %d seconds", PRESIGN_MAX_S);
        }
    }
    rc = split_credential(s, type, tl, err);
    if (rc) return rc;
    if (!parse_amz_date(s->amz_date, &s->when_ms))
        return fail(type, tl, err, "IncompleteSignatureException",
                    "Date must be in ISO-8601 'basic format'. Got '%s'. See "
                    "http://en.wikipedia.org/wiki/ISO_8601", s->amz_date);
    if (strncmp(s->date, s->amz_date, 8) != 0 || strlen(s->date) != 8)
        return fail(type, tl, err, "InvalidSignatureException",
                    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                    "date from HTTP: '%s' != '%.8s', from '%s'.", s->date, s->amz_date,
                    s->amz_date);
    {
        /* host must be signed */
        const char *p = s->signed_headers;
        bool host = false;
        while (*p) {
            size_t l = strcspn(p, ";");
            if ((l == 4 && !strncasecmp(p, "host", 4)) ||
                (l == 10 && !strncasecmp(p, ":authority", 10)))
                host = true;
            p += l;
            if (*p) p++;
        }
        if (!host)
            return fail(type, tl, err, "IncompleteSignatureException",
                        "'Host' or ':authority' must be a 'SignedHeader' in the AWS "
                        "Authorization.");
    }
    return 0;
}

int rt_auth_request_scope(const http_request *r, rt_auth_scope *out)
{
    sig_parts *s = sl_malloc(sizeof *s);
    sl_err err;
    int rc;
    if (!s) return SL_ENOMEM;
    rc = parse_request(r, s, NULL, 0, &err);
    if (rc == 0) {
        snprintf(out->access_key_id, sizeof out->access_key_id, "%s", s->akid);
        snprintf(out->date, sizeof out->date, "%.8s", s->date);
        snprintf(out->region, sizeof out->region, "%s", s->region);
        snprintf(out->service, sizeof out->service, "%s", s->service);
    }
    sl_free(s);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* verification */

static const auth_key *find_key(const rt_auth *a, const char *id)
{
    size_t i;
    for (i = 0; i < a->n; i++) {
        if (!strcmp(a->keys[i].id, id)) return &a->keys[i];
    }
    return NULL;
}

/* Computes the expected signature with this payload hash and compares in constant time. */
static int sig_matches(const sig_parts *s, const http_request *r, const auth_key *k,
                       const char *payload_hash, bool *match)
{
    char *creq = NULL;
    char scope[256];
    char sts[512];
    char want[65];
    uint8_t key[32];
    int rc;

    *match = false;
    rc = rt_sigv4_canonical_request(r, s->signed_headers, s->presigned, payload_hash, &creq);
    if (rc) return rc;
    snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", s->date, s->region, s->service);
    rt_sigv4_string_to_sign(s->amz_date, scope, creq, sts, sizeof sts);
    rt_sigv4_signing_key(k->secret, s->date, s->region, s->service, key);
    rt_sigv4_signature(key, sts, want);
    OPENSSL_cleanse(key, sizeof key);
    *match = strlen(s->signature) == 64 && CRYPTO_memcmp(want, s->signature, 64) == 0;
    sl_free(creq);
    return 0;
}

int rt_auth_check(const rt_auth *a, const http_request *r, int64_t now_ms, char *err_type,
                  size_t type_len, sl_err *err)
{
    sig_parts *s = sl_malloc(sizeof *s);
    const auth_key *k;
    char body_hash[65];
    bool match = false;
    int rc;

    if (!s) return fail(err_type, type_len, err, "InternalFailure", "out of memory");
    rc = parse_request(r, s, err_type, type_len, err);
    if (rc || !a) goto out;
    k = find_key(a, s->akid);
    if (!k) {
        rc = fail(err_type, type_len, err, "UnrecognizedClientException",
                  "The security token included in the request is invalid.");
        goto out;
    }
    if (s->presigned && s->has_expires) {
        if (s->when_ms - now_ms > SKEW_MS) {
            char now_s[17];
            char lim[17];
            fmt_amz_date(now_ms, now_s);
            fmt_amz_date(now_ms + SKEW_MS, lim);
            rc = fail(err_type, type_len, err, "InvalidSignatureException",
                      "Signature not yet current: %s is still later than %s (%s + 15 min.)",
                      s->amz_date, lim, now_s);
            goto out;
        }
        if (now_ms > s->when_ms + strtoll(s->expires, NULL, 10) * 1000) {
            rc = fail(err_type, type_len, err, "AccessDeniedException", "Request has expired");
            goto out;
        }
    } else if (now_ms - s->when_ms > SKEW_MS) {
        char now_s[17];
        char lim[17];
        fmt_amz_date(now_ms, now_s);
        fmt_amz_date(now_ms - SKEW_MS, lim);
        rc = fail(err_type, type_len, err, "InvalidSignatureException",
                  "Signature expired: %s is now earlier than %s (%s - 15 min.)", s->amz_date,
                  lim, now_s);
        goto out;
    } else if (s->when_ms - now_ms > SKEW_MS) {
        char now_s[17];
        char lim[17];
        fmt_amz_date(now_ms, now_s);
        fmt_amz_date(now_ms + SKEW_MS, lim);
        rc = fail(err_type, type_len, err, "InvalidSignatureException",
                  "Signature not yet current: %s is still later than %s (%s + 15 min.)",
                  s->amz_date, lim, now_s);
        goto out;
    }
    if (!strcmp(s->content_sha, UNSIGNED_PAYLOAD)) {
        rc = sig_matches(s, r, k, UNSIGNED_PAYLOAD, &match);
    } else {
        rt_sigv4_sha256_hex(r->body ? (const void *)r->body : "", r->body_len, body_hash);
        rc = sig_matches(s, r, k, body_hash, &match);
        /* presigned URLs made for S3-style signers sign no payload */
        if (rc == 0 && !match && s->presigned) rc = sig_matches(s, r, k, UNSIGNED_PAYLOAD, &match);
    }
    if (rc) {
        rc = fail(err_type, type_len, err, "InternalFailure", "out of memory");
        goto out;
    }
    if (!match)
        rc = fail(err_type, type_len, err, "InvalidSignatureException",
                  "The request signature we calculated does not match the signature you "
                  "provided. Check your AWS Secret Access Key and signing method. Consult the "
                  "service documentation for details.");
out:
    OPENSSL_cleanse(s, sizeof *s);
    sl_free(s);
    return rc;
}

int rt_sigv4_authorization(const http_request *r, const char *access_key_id, const char *secret,
                           const char *region, const char *service, const char *amz_date,
                           const char *signed_headers, char *out, size_t cap)
{
    char *creq = NULL;
    char hash[65];
    char scope[256];
    char sts[512];
    char sig[65];
    uint8_t key[32];
    int64_t ms;
    int n;
    int rc;

    if (!parse_amz_date(amz_date, &ms)) return SL_EINVAL;
    rt_sigv4_sha256_hex(r->body ? (const void *)r->body : "", r->body_len, hash);
    rc = rt_sigv4_canonical_request(r, signed_headers, false, hash, &creq);
    if (rc) return rc;
    snprintf(scope, sizeof scope, "%.8s/%s/%s/aws4_request", amz_date, region, service);
    rt_sigv4_string_to_sign(amz_date, scope, creq, sts, sizeof sts);
    sl_free(creq);
    {
        /* the key's date is the scope's first 8 characters */
        char d[9];
        memcpy(d, amz_date, 8);
        d[8] = '\0';
        rt_sigv4_signing_key(secret, d, region, service, key);
    }
    rt_sigv4_signature(key, sts, sig);
    OPENSSL_cleanse(key, sizeof key);
    n = snprintf(out, cap, ALGO " Credential=%s/%s, SignedHeaders=%s, Signature=%s", access_key_id,
                 scope, signed_headers, sig);
    if (n < 0 || (size_t)n >= cap) return SL_ETOOBIG;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* credential sets */

int rt_auth_new(rt_auth **out)
{
    rt_auth *a = sl_calloc(1, sizeof *a);
    if (!a) return SL_ENOMEM;
    *out = a;
    return 0;
}

int rt_auth_add(rt_auth *a, const char *access_key_id, const char *secret)
{
    auth_key *k;
    size_t i;
    char *id;
    char *sec;
    if (!access_key_id || !*access_key_id || !secret || !*secret) return SL_EINVAL;
    id = sl_strdup(access_key_id);
    sec = sl_strdup(secret);
    if (!id || !sec) goto oom;
    for (i = 0; i < a->n; i++) {
        if (!strcmp(a->keys[i].id, id)) {
            sl_free(id);
            OPENSSL_cleanse(a->keys[i].secret, strlen(a->keys[i].secret));
            sl_free(a->keys[i].secret);
            a->keys[i].secret = sec;
            return 0;
        }
    }
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 4;
        k = sl_realloc(a->keys, nc * sizeof *k);
        if (!k) goto oom;
        a->keys = k;
        a->cap = nc;
    }
    a->keys[a->n].id = id;
    a->keys[a->n].secret = sec;
    a->n++;
    return 0;
oom:
    sl_free(id);
    sl_free(sec);
    return SL_ENOMEM;
}

void rt_auth_free(rt_auth *a)
{
    size_t i;
    if (!a) return;
    for (i = 0; i < a->n; i++) {
        sl_free(a->keys[i].id);
        OPENSSL_cleanse(a->keys[i].secret, strlen(a->keys[i].secret));
        sl_free(a->keys[i].secret);
    }
    sl_free(a->keys);
    sl_free(a);
}

int rt_auth_load(rt_auth **out, const char *file, sl_err *err)
{
    FILE *f = fopen(file, "r");
    rt_auth *a = NULL;
    char line[4096];
    int lineno = 0;
    int rc;

    if (!f) {
        rc = -errno;
        sl_err_set(err, rc, "%s: %s", file, strerror(errno));
        return rc;
    }
    rc = rt_auth_new(&a);
    if (rc) {
        sl_err_set(err, rc, "out of memory");
        goto fail;
    }
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        char *id;
        char *sec;
        char *extra;
        size_t l = strlen(line);
        lineno++;
        if (l == sizeof line - 1 && line[l - 1] != '\n') {
            rc = sl_err_set(err, SL_EINVAL, "%s:%d: line too long", file, lineno);
            goto fail;
        }
        {
            char *hash = strchr(p, '#');
            if (hash) *hash = '\0';
        }
        id = strtok(p, " \t\r\n");
        if (!id) continue;
        sec = strtok(NULL, " \t\r\n");
        extra = strtok(NULL, " \t\r\n");
        if (!sec || extra) {
            rc = sl_err_set(err, SL_EINVAL,
                            "%s:%d: expected 'ACCESS_KEY_ID SECRET' (two fields)", file, lineno);
            goto fail;
        }
        rc = rt_auth_add(a, id, sec);
        OPENSSL_cleanse(line, sizeof line);
        if (rc) {
            sl_err_set(err, rc, "out of memory");
            goto fail;
        }
    }
    if (ferror(f)) {
        rc = sl_err_set(err, SL_EIO, "%s: read error", file);
        goto fail;
    }
    if (a->n == 0) {
        rc = sl_err_set(err, SL_EINVAL, "%s: no credentials (lines 'ACCESS_KEY_ID SECRET')",
                        file);
        goto fail;
    }
    fclose(f);
    *out = a;
    return 0;
fail:
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    rt_auth_free(a);
    return rc;
}
