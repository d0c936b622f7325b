/* handler_lib.c — libsluice_handler.a: main() and the framed protocol for native handlers.
 *
 * Linked statically into untrusted handler executables, so it depends on libc only; the JSON it
 * needs (walking Records[] of the event, two host-call replies) is parsed by hand below because
 * cJSON is not available to `cc -static handler.c -lsluice_handler` builds (no static libcjson).
 *
 * Flow: install a second seccomp filter that forbids execve (defence in depth behind the
 * launcher's one-shot exec rule), point stdout at stderr (fd 1 is the protocol channel), then
 * loop: read an INVOKE frame on fd 0, decode the event, call sluice_handler, write the result.
 * End of file on fd 0 ends the worker with status 0. Any protocol surprise ends it with status 2.
 */
#include "functions/sluice_handler.h"
#include "functions/wire.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define LOG_LINE_MAX 4096
#define LOG_INVOKE_MAX (64 * 1024)
#define JSON_DEPTH_MAX 64

struct sluice_response {
    char *result;
    size_t result_len;
    int has_result;
    int result_too_big;
    int oom;
    char err_type[128];
    char *err_msg;
    int has_error;
    char **failures;
    size_t nfail;
    size_t capfail;
};

/* ---- per-invocation state ---- */

typedef struct arena_blk {
    struct arena_blk *next;
    max_align_t align[];
} arena_blk;

static arena_blk *g_arena;
static uint16_t g_seq; /* sequence number of the invocation being served (wire.h) */
static int g_in_invoke;
static size_t g_log_bytes;
static int g_log_truncated;
static char g_last_error[512];

static void *arena_alloc(size_t n)
{
    if (n > SIZE_MAX - sizeof(arena_blk)) return NULL;
    arena_blk *b = malloc(sizeof(arena_blk) + n);
    if (!b) return NULL;
    b->next = g_arena;
    g_arena = b;
    return b->align;
}

static void arena_reset(void)
{
    while (g_arena) {
        arena_blk *n = g_arena->next;
        free(g_arena);
        g_arena = n;
    }
}

/* ---- raw I/O on the protocol fds ---- */

static int write_full(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Returns 1 on success, 0 on clean EOF before any byte, -1 on error/short read. */
static int read_full(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) return got == 0 ? 0 : -1;
        got += (size_t)r;
    }
    return 1;
}

static void die(const char *msg)
{
    static const char pfx[] = "sluice handler library: ";
    (void)!write(2, pfx, sizeof pfx - 1);
    (void)!write(2, msg, strlen(msg));
    (void)!write(2, "\n", 1);
    _exit(2);
}

static int send_frame2(uint8_t type, const void *a, size_t alen, const void *b, size_t blen)
{
    uint8_t hdr[FN_WIRE_HDR_SIZE];
    fn_wire_put_header(hdr, type, g_seq, (uint32_t)(alen + blen));
    if (write_full(1, hdr, sizeof hdr) || (alen && write_full(1, a, alen)) ||
        (blen && write_full(1, b, blen)))
        return -1;
    return 0;
}

static int send_pair(uint8_t type, const char *first, size_t first_len, const char *rest,
                     size_t rest_len)
{
    uint8_t pre[FN_WIRE_HDR_SIZE + 4];
    size_t n = fn_wire_pair_size(first_len, rest_len);
    fn_wire_put_header(pre, type, g_seq, (uint32_t)n);
    fn_wire_put_u32(pre + FN_WIRE_HDR_SIZE, (uint32_t)first_len);
    if (write_full(1, pre, sizeof pre) || (first_len && write_full(1, first, first_len)) ||
        (rest_len && write_full(1, rest, rest_len)))
        return -1;
    return 0;
}

/* ---- exec guard: a second, tighter seccomp filter (execve/execveat always kill) ---- */

#if defined(__x86_64__)
#define GUARD_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define GUARD_ARCH AUDIT_ARCH_AARCH64
#endif

static void install_exec_guard(void)
{
#ifdef GUARD_ARCH
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, GUARD_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 3, 0), /* x32 numbers */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_execve, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_execveat, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    struct sock_fprog prog = {.len = (unsigned short)(sizeof f / sizeof f[0]), .filter = f};
    /* Inside the launcher no_new_privs is already set; run by hand (debugging) without it the
     * call fails with EACCES and the handler simply runs unconfined, as any program would. */
    (void)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
#endif
}

/* ---- minimal JSON (event Records[] and two reply shapes) ---- */

typedef struct jcur {
    const char *p;
    const char *end;
} jcur;

static void jws(jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static int read_hex4(const char *p, const char *end, unsigned *out)
{
    unsigned v = 0;
    if (end - p < 4) return -1;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)p[i]);
        if (h < 0) return -1;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

/* Parses a string at the cursor. With out != NULL the decoded bytes go to a new arena block
 * (NUL-terminated); with out == NULL the string is only skipped. */
static int jstring(jcur *c, char **out, size_t *out_len)
{
    if (c->p >= c->end || *c->p != '"') return -1;
    const char *s = ++c->p;
    size_t raw = 0;
    while (c->p < c->end && *c->p != '"') {
        if ((unsigned char)*c->p < 0x20) return -1;
        if (*c->p == '\\') c->p++;
        c->p++;
    }
    if (c->p >= c->end) return -1;
    raw = (size_t)(c->p - s);
    c->p++;
    if (!out) return 0;
    char *d = arena_alloc(raw + 1);
    if (!d) return -2;
    size_t n = 0;
    for (const char *q = s; q < s + raw;) {
        if (*q != '\\') {
            d[n++] = *q++;
            continue;
        }
        q++;
        switch (*q) {
        case '"': d[n++] = '"'; q++; break;
        case '\\': d[n++] = '\\'; q++; break;
        case '/': d[n++] = '/'; q++; break;
        case 'b': d[n++] = '\b'; q++; break;
        case 'f': d[n++] = '\f'; q++; break;
        case 'n': d[n++] = '\n'; q++; break;
        case 'r': d[n++] = '\r'; q++; break;
        case 't': d[n++] = '\t'; q++; break;
        case 'u': {
            unsigned cp;
            if (read_hex4(q + 1, s + raw, &cp)) return -1;
            q += 5;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (s + raw - q < 6 || q[0] != '\\' || q[1] != 'u' ||
                    read_hex4(q + 2, s + raw, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                q += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return -1;
            }
            /* UTF-8 never expands beyond the 6 escaped input bytes it replaces. */
            if (cp < 0x80) {
                d[n++] = (char)cp;
            } else if (cp < 0x800) {
                d[n++] = (char)(0xC0 | cp >> 6);
                d[n++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                d[n++] = (char)(0xE0 | cp >> 12);
                d[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
                d[n++] = (char)(0x80 | (cp & 0x3F));
            } else {
                d[n++] = (char)(0xF0 | cp >> 18);
                d[n++] = (char)(0x80 | (cp >> 12 & 0x3F));
                d[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
                d[n++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: return -1;
        }
    }
    d[n] = 0;
    *out = d;
    if (out_len) *out_len = n;
    return 0;
}

static int jnumber(jcur *c, double *out)
{
    char buf[64];
    const char *s = c->p;
    while (c->p < c->end && strchr("+-0123456789.eE", *c->p)) c->p++;
    size_t n = (size_t)(c->p - s);
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *e;
    double v = strtod(buf, &e);
    if (*e) return -1;
    if (out) *out = v;
    return 0;
}

static int jskip(jcur *c, int depth);

/* Iterates an object: calls fn(key, cursor-at-value) which must consume the value. */
typedef int (*jmember_fn)(void *ud, const char *key, jcur *c, int depth);

static int jobject(jcur *c, int depth, jmember_fn fn, void *ud)
{
    if (depth > JSON_DEPTH_MAX || c->p >= c->end || *c->p != '{') return -1;
    c->p++;
    jws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 0;
    }
    for (;;) {
        char *key;
        jws(c);
        int rc = jstring(c, &key, NULL);
        if (rc) return rc;
        jws(c);
        if (c->p >= c->end || *c->p != ':') return -1;
        c->p++;
        jws(c);
        rc = fn ? fn(ud, key, c, depth + 1) : jskip(c, depth + 1);
        if (rc) return rc;
        jws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == '}') {
            c->p++;
            return 0;
        }
        return -1;
    }
}

static int jskip(jcur *c, int depth)
{
    if (depth > JSON_DEPTH_MAX || c->p >= c->end) return -1;
    switch (*c->p) {
    case '"': return jstring(c, NULL, NULL);
    case '{': return jobject(c, depth, NULL, NULL);
    case '[':
        c->p++;
        jws(c);
        if (c->p < c->end && *c->p == ']') {
            c->p++;
            return 0;
        }
        for (;;) {
            jws(c);
            int rc = jskip(c, depth + 1);
            if (rc) return rc;
            jws(c);
            if (c->p < c->end && *c->p == ',') {
                c->p++;
                continue;
            }
            if (c->p < c->end && *c->p == ']') {
                c->p++;
                return 0;
            }
            return -1;
        }
    case 't':
        if (c->end - c->p >= 4 && !memcmp(c->p, "true", 4)) return c->p += 4, 0;
        return -1;
    case 'f':
        if (c->end - c->p >= 5 && !memcmp(c->p, "false", 5)) return c->p += 5, 0;
        return -1;
    case 'n':
        if (c->end - c->p >= 4 && !memcmp(c->p, "null", 4)) return c->p += 4, 0;
        return -1;
    default: return jnumber(c, NULL);
    }
}

/* ---- base64 (standard alphabet, strict padding) ---- */

static int b64val(int ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

static int b64_decode(const char *s, size_t n, uint8_t **out, size_t *out_len)
{
    if (n % 4) return -1;
    uint8_t *d = arena_alloc(n / 4 * 3 + 1);
    if (!d) return -2;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
            } else {
                if (pad) return -1;
                v[j] = b64val((unsigned char)s[i + j]);
                if (v[j] < 0) return -1;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        d[k++] = (uint8_t)(w >> 16);
        if (pad < 2) d[k++] = (uint8_t)(w >> 8);
        if (pad < 1) d[k++] = (uint8_t)w;
    }
    d[k] = 0;
    *out = d;
    *out_len = k;
    return 0;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---- growable output buffer (malloc; for host-call requests and generated results) ---- */

typedef struct obuf {
    char *p;
    size_t n;
    size_t cap;
    int oom;
} obuf;

static void ob_add(obuf *b, const void *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void ob_str(obuf *b, const char *s)
{
    ob_add(b, s, strlen(s));
}

static void ob_json_string(obuf *b, const char *s)
{
    ob_add(b, "\"", 1);
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        char esc[8];
        if (*q == '"' || *q == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*q;
            ob_add(b, esc, 2);
        } else if (*q < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *q);
            ob_add(b, esc, 6);
        } else {
            ob_add(b, q, 1);
        }
    }
    ob_add(b, "\"", 1);
}

static void ob_base64(obuf *b, const uint8_t *p, size_t n)
{
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16;
        if (i + 1 < n) w |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) w |= p[i + 2];
        q[0] = B64[w >> 18 & 63];
        q[1] = B64[w >> 12 & 63];
        q[2] = i + 1 < n ? B64[w >> 6 & 63] : '=';
        q[3] = i + 2 < n ? B64[w & 63] : '=';
        ob_add(b, q, 4);
    }
}

/* ---- event decoding ---- */

typedef struct evparse {
    sluice_record *recs;
    size_t n;
    size_t cap;
    sluice_record *cur;
    const char *err;
} evparse;

static int kinesis_member(void *ud, const char *key, jcur *c, int depth)
{
    evparse *ep = ud;
    sluice_record *r = ep->cur;
    if (!strcmp(key, "partitionKey") && *c->p == '"')
        return jstring(c, (char **)&r->partition_key, NULL);
    if (!strcmp(key, "sequenceNumber") && *c->p == '"')
        return jstring(c, (char **)&r->sequence_number, NULL);
    if (!strcmp(key, "approximateArrivalTimestamp") && *c->p != '"' && *c->p != '{' &&
        *c->p != '[')
        return jnumber(c, &r->approximate_arrival);
    if (!strcmp(key, "data") && *c->p == '"') {
        char *s;
        size_t n;
        int rc = jstring(c, &s, &n);
        if (rc) return rc;
        rc = b64_decode(s, n, (uint8_t **)&r->data, &r->data_len);
        if (rc == -1) ep->err = "kinesis.data is not valid base64";
        return rc;
    }
    return jskip(c, depth);
}

static int record_member(void *ud, const char *key, jcur *c, int depth)
{
    evparse *ep = ud;
    if (!strcmp(key, "kinesis") && *c->p == '{') return jobject(c, depth, kinesis_member, ud);
    if (!strcmp(key, "eventID") && *c->p == '"')
        return jstring(c, (char **)&ep->cur->event_id, NULL);
    if (!strcmp(key, "eventSourceARN") && *c->p == '"')
        return jstring(c, (char **)&ep->cur->event_source_arn, NULL);
    return jskip(c, depth);
}

static int top_member(void *ud, const char *key, jcur *c, int depth)
{
    evparse *ep = ud;
    if (strcmp(key, "Records") || *c->p != '[') return jskip(c, depth);
    c->p++;
    jws(c);
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        return 0;
    }
    for (;;) {
        jws(c);
        if (c->p >= c->end || *c->p != '{') {
            int rc = jskip(c, depth + 1); /* a non-object entry is not a Kinesis record */
            if (rc) return rc;
        } else {
            if (ep->n == ep->cap) {
                size_t cap = ep->cap ? ep->cap * 2 : 16;
                sluice_record *nr = arena_alloc(cap * sizeof *nr);
                if (!nr) return -2;
                if (ep->n) memcpy(nr, ep->recs, ep->n * sizeof *nr);
                ep->recs = nr;
                ep->cap = cap;
            }
            sluice_record *r = &ep->recs[ep->n];
            r->partition_key = r->sequence_number = r->event_id = r->event_source_arn = "";
            r->data = (const uint8_t *)"";
            r->data_len = 0;
            r->approximate_arrival = 0;
            ep->cur = r;
            int rc = jobject(c, depth + 1, record_member, ep);
            if (rc) return rc;
            ep->n++;
        }
        jws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == ']') {
            c->p++;
            return 0;
        }
        return -1;
    }
}

/* Returns 0 (records decoded, possibly none), -2 out of memory, -3 bad record data (msg in
 * *err). A body that is not a JSON object is not an error: it simply has no records. */
static int decode_records(const char *json, size_t len, sluice_event *ev, const char **err)
{
    evparse ep = {0};
    jcur c = {json, json + len};
    jws(&c);
    if (c.p >= c.end || *c.p != '{') return 0;
    int rc = jobject(&c, 0, top_member, &ep);
    if (rc == -2) return -2;
    if (ep.err) {
        *err = ep.err;
        return -3;
    }
    if (rc == 0) {
        ev->records = ep.recs;
        ev->record_count = ep.n;
    }
    return 0;
}

/* ---- response API ---- */

int sluice_set_result(sluice_response *out, const char *json, size_t len)
{
    if (!out || !json) return -1;
    if (len > FN_WIRE_MAX_RESULT) {
        out->result_too_big = 1;
        return -1;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        out->oom = 1;
        return -1;
    }
    memcpy(copy, json, len);
    copy[len] = 0;
    free(out->result);
    out->result = copy;
    out->result_len = len;
    out->has_result = 1;
    out->result_too_big = 0;
    return 0;
}

int sluice_set_error(sluice_response *out, const char *error_type, const char *fmt, ...)
{
    if (!out) return -1;
    snprintf(out->err_type, sizeof out->err_type, "%s",
             error_type && *error_type ? error_type : "HandlerError");
    va_list ap;
    va_start(ap, fmt);
    char tmp[1];
    int n = vsnprintf(tmp, 0, fmt ? fmt : "", ap);
    va_end(ap);
    free(out->err_msg);
    out->err_msg = NULL;
    if (n >= 0) {
        size_t cap = (size_t)n + 1 > 65536 ? 65536 : (size_t)n + 1;
        out->err_msg = malloc(cap);
        if (out->err_msg) {
            va_start(ap, fmt);
            vsnprintf(out->err_msg, cap, fmt ? fmt : "", ap);
            va_end(ap);
        }
    }
    out->has_error = 1;
    return -1;
}

int sluice_add_batch_item_failure(sluice_response *out, const char *sequence_number)
{
    if (!out || !sequence_number) return -1;
    if (out->nfail == out->capfail) {
        size_t cap = out->capfail ? out->capfail * 2 : 8;
        char **f = realloc(out->failures, cap * sizeof *f);
        if (!f) return -1;
        out->failures = f;
        out->capfail = cap;
    }
    size_t n = strlen(sequence_number);
    char *s = malloc(n + 1);
    if (!s) return -1;
    memcpy(s, sequence_number, n + 1);
    out->failures[out->nfail++] = s;
    return 0;
}

static void response_clear(sluice_response *r)
{
    free(r->result);
    free(r->err_msg);
    for (size_t i = 0; i < r->nfail; i++) free(r->failures[i]);
    free(r->failures);
    memset(r, 0, sizeof *r);
}

/* ---- logging ---- */

void sluice_log(const char *fmt, ...)
{
    char line[LOG_LINE_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt ? fmt : "", ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n < LOG_LINE_MAX ? (size_t)n : LOG_LINE_MAX;
    if (!g_in_invoke) { /* outside an invocation the protocol channel must stay silent */
        line[len] = '\n';
        (void)!write(2, line, len + 1);
        return;
    }
    if (g_log_truncated) return;
    if (g_log_bytes + len > LOG_INVOKE_MAX) {
        static const char mark[] = "[sluice: log truncated at 64 KiB for this invocation]";
        g_log_truncated = 1;
        send_frame2(FN_WIRE_LOG, mark, sizeof mark - 1, NULL, 0);
        return;
    }
    g_log_bytes += len;
    if (send_frame2(FN_WIRE_LOG, line, len, NULL, 0)) die("cannot write log frame");
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sluice_remaining_ms(const sluice_event *ev)
{
    return ev ? ev->deadline_ms - now_ms() : 0;
}

const char *sluice_last_error(void)
{
    return g_last_error;
}

/* ---- host calls ---- */

static uint8_t *g_buf; /* frame payload buffer, reused across frames */
static size_t g_buf_cap;

static uint8_t *buf_reserve(size_t n)
{
    if (n + 1 > g_buf_cap) {
        size_t cap = n + 1 < 65536 ? 65536 : n + 1;
        uint8_t *p = realloc(g_buf, cap);
        if (!p) return NULL;
        g_buf = p;
        g_buf_cap = cap;
    }
    return g_buf;
}

int sluice_host_call(const char *op, const char *req, size_t req_len, char **resp,
                     size_t *resp_len)
{
    if (!g_in_invoke || !op || (!req && req_len)) {
        snprintf(g_last_error, sizeof g_last_error,
                 "Sluice.InvalidCall: host calls are valid only inside sluice_handler");
        return -1;
    }
    if (fn_wire_pair_size(strlen(op), req_len) > FN_WIRE_MAX_HOST_CALL) {
        snprintf(g_last_error, sizeof g_last_error,
                 "Sluice.RequestTooLarge: host call request exceeds %u bytes",
                 FN_WIRE_MAX_HOST_CALL);
        return -1;
    }
    if (send_pair(FN_WIRE_HOST_CALL, op, strlen(op), req, req_len)) die("cannot write host call");
    uint8_t hdr[FN_WIRE_HDR_SIZE];
    uint8_t type;
    uint16_t seq;
    uint32_t len;
    if (read_full(0, hdr, sizeof hdr) != 1) die("protocol: end of input inside a host call");
    if (fn_wire_parse_header(hdr, &type, &seq, &len) || type != FN_WIRE_HOST_REPLY || len < 1 ||
        seq != g_seq)
        die("protocol: expected a host reply frame");
    uint8_t *p = buf_reserve(len);
    if (!p) die("out of memory reading host reply");
    if (read_full(0, p, len) != 1) die("protocol: short host reply");
    if (p[0] == 0) {
        char *r = malloc(len);
        if (!r) {
            snprintf(g_last_error, sizeof g_last_error, "Runtime.OutOfMemory: host reply");
            return -1;
        }
        memcpy(r, p + 1, len - 1);
        r[len - 1] = 0;
        if (resp) *resp = r;
        else free(r);
        if (resp_len) *resp_len = len - 1;
        return 0;
    }
    const char *t;
    size_t tl;
    const uint8_t *m;
    size_t ml;
    if (fn_wire_pair_decode(p + 1, len - 1, &t, &tl, &m, &ml)) die("protocol: bad host error");
    snprintf(g_last_error, sizeof g_last_error, "%.*s: %.*s", (int)(tl > 100 ? 100 : tl), t,
             (int)(ml > 380 ? 380 : ml), (const char *)m);
    return -1;
}

/* Finds a top-level member of a JSON object reply; returns a cursor at its value. */
typedef struct findkey {
    const char *key;
    jcur at;
    int found;
} findkey;

static int find_member(void *ud, const char *key, jcur *c, int depth)
{
    findkey *fk = ud;
    if (!fk->found && !strcmp(key, fk->key)) {
        fk->found = 1;
        fk->at = *c;
    }
    return jskip(c, depth);
}

static int reply_member(const char *json, size_t len, const char *key, jcur *at)
{
    findkey fk = {key, {0, 0}, 0};
    jcur c = {json, json + len};
    jws(&c);
    if (jobject(&c, 0, find_member, &fk) || !fk.found) return -1;
    *at = fk.at;
    return 0;
}

/* Sends a request built in b (freed here) as host call op; -1 with g_last_error set when b ran
 * out of memory or the call failed. */
static int send_request(const char *op, obuf *b, char **resp, size_t *rlen)
{
    if (b->oom) {
        free(b->p);
        snprintf(g_last_error, sizeof g_last_error, "Runtime.OutOfMemory: %s request", op);
        return -1;
    }
    int rc = sluice_host_call(op, b->p, b->n, resp, rlen);
    free(b->p);
    return rc ? -1 : 0;
}

int sluice_put_record(const char *stream, const char *partition_key, const void *data,
                      size_t data_len, char *seq_out, size_t cap)
{
    if (!stream || !partition_key || (!data && data_len)) {
        snprintf(g_last_error, sizeof g_last_error, "Sluice.InvalidCall: NULL argument");
        return -1;
    }
    obuf b = {0};
    ob_str(&b, "{\"StreamName\":");
    ob_json_string(&b, stream);
    ob_str(&b, ",\"PartitionKey\":");
    ob_json_string(&b, partition_key);
    ob_str(&b, ",\"Data\":\"");
    ob_base64(&b, data, data_len);
    ob_str(&b, "\"}");
    char *resp = NULL;
    size_t rlen = 0;
    int rc = send_request("put_record", &b, &resp, &rlen);
    if (rc) return -1;
    jcur at;
    char *seq = NULL;
    if (reply_member(resp, rlen, "SequenceNumber", &at) == 0 && jstring(&at, &seq, NULL) == 0) {
        if (seq_out && cap) snprintf(seq_out, cap, "%s", seq);
    } else {
        snprintf(g_last_error, sizeof g_last_error, "Sluice.BadReply: no SequenceNumber");
        rc = -1;
    }
    free(resp);
    return rc;
}

int sluice_put_records(const char *stream, const sluice_put_entry *entries, size_t n)
{
    if (!stream || (!entries && n)) {
        snprintf(g_last_error, sizeof g_last_error, "Sluice.InvalidCall: NULL argument");
        return -1;
    }
    obuf b = {0};
    ob_str(&b, "{\"StreamName\":");
    ob_json_string(&b, stream);
    ob_str(&b, ",\"Records\":[");
    for (size_t i = 0; i < n; i++) {
        if (!entries[i].partition_key || (!entries[i].data && entries[i].data_len)) {
            free(b.p);
            snprintf(g_last_error, sizeof g_last_error, "Sluice.InvalidCall: entry %zu", i);
            return -1;
        }
        ob_str(&b, i ? ",{\"PartitionKey\":" : "{\"PartitionKey\":");
        ob_json_string(&b, entries[i].partition_key);
        ob_str(&b, ",\"Data\":\"");
        ob_base64(&b, entries[i].data, entries[i].data_len);
        ob_str(&b, "\"}");
    }
    ob_str(&b, "]}");
    char *resp = NULL;
    size_t rlen = 0;
    int rc = send_request("put_records", &b, &resp, &rlen);
    if (rc) return -1;
    jcur at;
    double failed = 0;
    if (reply_member(resp, rlen, "FailedRecordCount", &at) || jnumber(&at, &failed) ||
        failed < 0) {
        snprintf(g_last_error, sizeof g_last_error, "Sluice.BadReply: no FailedRecordCount");
        rc = -1;
    } else {
        rc = (int)failed;
    }
    free(resp);
    return rc;
}

/* ---- main loop ---- */

static char *dup_view(const char *s, size_t n)
{
    char *d = arena_alloc(n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static void send_error(const char *type, const char *msg)
{
    if (send_pair(FN_WIRE_RESULT_ERROR, type, strlen(type), msg, strlen(msg)))
        die("cannot write result");
}

static void finish(int rc, sluice_response *r)
{
    if (rc != 0) {
        const char *t = r->has_error ? r->err_type : "HandlerError";
        char dflt[64];
        const char *m = r->has_error && r->err_msg ? r->err_msg : NULL;
        if (!m) {
            snprintf(dflt, sizeof dflt, "handler returned %d", rc);
            m = dflt;
        }
        send_error(t, m);
        return;
    }
    if (r->result_too_big) {
        send_error("Function.ResponseSizeTooLarge",
                   "Response payload size exceeded maximum allowed payload size (6291456 bytes).");
        return;
    }
    if (r->oom) {
        send_error("Runtime.OutOfMemory", "out of memory while storing the result");
        return;
    }
    if (r->has_result) {
        if (send_frame2(FN_WIRE_RESULT_OK, r->result, r->result_len, NULL, 0))
            die("cannot write result");
        return;
    }
    if (r->nfail) {
        obuf b = {0};
        ob_str(&b, "{\"batchItemFailures\":[");
        for (size_t i = 0; i < r->nfail; i++) {
            ob_str(&b, i ? ",{\"itemIdentifier\":" : "{\"itemIdentifier\":");
            ob_json_string(&b, r->failures[i]);
            ob_str(&b, "}");
        }
        ob_str(&b, "]}");
        if (b.oom || b.n > FN_WIRE_MAX_RESULT) {
            free(b.p);
            send_error("Runtime.OutOfMemory", "cannot build batchItemFailures");
            return;
        }
        if (send_frame2(FN_WIRE_RESULT_OK, b.p, b.n, NULL, 0)) die("cannot write result");
        free(b.p);
        return;
    }
    if (send_frame2(FN_WIRE_RESULT_OK, "null", 4, NULL, 0)) die("cannot write result");
}

static void serve_one(const uint8_t *payload, size_t len)
{
    fn_wire_invoke iv;
    sluice_event ev;
    sluice_response resp;
    memset(&ev, 0, sizeof ev);
    memset(&resp, 0, sizeof resp);
    if (fn_wire_invoke_decode(payload, len, &iv)) die("protocol: malformed invoke frame");
    g_in_invoke = 1;
    g_log_bytes = 0;
    g_log_truncated = 0;
    g_last_error[0] = 0;
    ev.json = dup_view((const char *)iv.event, iv.event_len);
    ev.json_len = iv.event_len;
    ev.request_id = dup_view(iv.request_id, iv.request_id_len);
    ev.function_name = dup_view(iv.function_name, iv.function_name_len);
    ev.function_version = dup_view(iv.function_version, iv.function_version_len);
    ev.invoked_function_arn = dup_view(iv.invoked_arn, iv.invoked_arn_len);
    ev.memory_limit_mb = iv.memory_mb;
    ev.deadline_ms = iv.deadline_ms;
    const char *why = NULL;
    int rc = -2;
    if (ev.json && ev.request_id && ev.function_name && ev.function_version &&
        ev.invoked_function_arn)
        rc = decode_records(ev.json, ev.json_len, &ev, &why);
    if (rc == -2) {
        send_error("Runtime.OutOfMemory", "out of memory while decoding the event");
    } else if (rc == -3) {
        send_error("Runtime.InvalidEvent", why);
    } else {
        finish(sluice_handler(&ev, &resp), &resp);
    }
    g_in_invoke = 0;
    response_clear(&resp);
    arena_reset();
}

/* Waits up to SPIN_US for input on fd 0 without sleeping. On a virtual machine a process
 * blocked in read() whose CPU went idle is woken only after the host schedules that vCPU again
 * (tens of microseconds); back-to-back invocations arrive within this window, so the worker stays
 * on its CPU. Costs at most SPIN_US of CPU per invocation. */
#define SPIN_US 60
static void spin_for_input(void)
{
    struct timespec t0, t;
    struct pollfd pf = {0, POLLIN, 0};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (poll(&pf, 1, 0) != 0) return;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 >= SPIN_US)
            return;
    }
}

int main(void)
{
    install_exec_guard();
    fflush(stdout);
    stdout = stderr; /* glibc documents stdout as an assignable variable */
    for (;;) {
        uint8_t hdr[FN_WIRE_HDR_SIZE];
        uint8_t type;
        uint16_t seq;
        uint32_t len;
        spin_for_input();
        int r = read_full(0, hdr, sizeof hdr);
        if (r == 0) return 0;
        if (r < 0) die("protocol: short frame header");
        if (fn_wire_parse_header(hdr, &type, &seq, &len) || type != FN_WIRE_INVOKE)
            die("protocol: expected an invoke frame");
        g_seq = seq;
        uint8_t *p = buf_reserve(len);
        if (!p) die("out of memory reading the invoke frame");
        if (read_full(0, p, len) != 1) die("protocol: short invoke frame");
        /* The event views point into g_buf, which a host call may reuse: serve_one copies the
         * event into the arena before anything else runs. */
        serve_one(p, len);
    }
}
