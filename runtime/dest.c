/* dest.c — on-failure destinations of event-source mappings (SPEC 3.7 and sluice's decisions).
 *
 * The invocation record is built with cJSON (small, arbitrary strings); the S3/SNS payload is the
 * event of functions/event.c spliced in as raw JSON. Local queues are JSON-lines files written
 * with one O_APPEND write(2) per message and fsync'd, so concurrent senders never interleave and
 * an acknowledged message survives a power loss. S3 objects are written to a temporary name,
 * fsync'd, renamed, and the directory fsync'd (STYLE 9). HTTP destinations are POSTed with
 * libcurl and retried with capped exponential backoff and full jitter (STYLE 20).
 */
#include "runtime/dest.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include "runtime/curl_dyn.h"
#include <openssl/rand.h>

#include "runtime/log.h"

#define DEST_MAX_LEN 350
#define SNS_MAX_BYTES (256 * 1024)
#define HTTP_ATTEMPTS 5
#define HTTP_BASE_MS 100
#define HTTP_CAP_MS 2000
#define HTTP_CONNECT_MS 2000
#define HTTP_TIMEOUT_MS 10000

/* ---- validation ---------------------------------------------------------------------------- */

static bool all_chars(const char *s, size_t n, const char *extra)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  (c && strchr(extra, c));
        if (!ok) return false;
    }
    return true;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
    }
    return n > 0;
}

/* Region like us-east-1, us-gov-west-1, cn-north-1: [a-z]{2}(-[a-z]+)+-\d+ */
static bool region_ok(const char *s, size_t n)
{
    if (n < 6 || !all_chars(s, n, "-")) return false;
    const char *dash = memrchr(s, '-', n);
    if (!dash || !digits(dash + 1, n - (size_t)(dash - s) - 1)) return false;
    for (size_t i = 0; i < (size_t)(dash - s); i++) {
        if (s[i] != '-' && (s[i] < 'a' || s[i] > 'z')) return false;
    }
    return s[2] == '-' && s[0] >= 'a' && s[0] <= 'z' && s[1] >= 'a' && s[1] <= 'z';
}

/* Queue/topic names: letters, digits, '-' and '_' (max len), optionally ending in ".fifo". */
static bool queue_name_ok(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max) return false;
    if (n > 5 && memcmp(s + n - 5, ".fifo", 5) == 0) n -= 5;
    return n > 0 && all_chars(s, n, "-_");
}

static bool bucket_ok(const char *s, size_t n)
{
    if (n < 3 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) {
            return false;
        }
        if (c == '.' && i + 1 < n && s[i + 1] == '.') return false;
    }
    return s[0] != '.' && s[0] != '-' && s[n - 1] != '.' && s[n - 1] != '-';
}

typedef struct arn_parts {
    const char *service, *region, *account, *resource;
    size_t service_n, region_n, account_n, resource_n;
} arn_parts;

/* arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE (resource may hold more colons). */
static bool arn_split(const char *d, arn_parts *p)
{
    if (strncmp(d, "arn:", 4) != 0) return false;
    const char *part = d + 4;
    const char *c = strchr(part, ':');
    if (!c) return false;
    size_t pn = (size_t)(c - part);
    if (!(pn == 3 && memcmp(part, "aws", 3) == 0) &&
        !(pn > 4 && memcmp(part, "aws-", 4) == 0 && all_chars(part, pn, "-"))) {
        return false;
    }
    const char *fields[4];
    size_t lens[4];
    const char *s = c + 1;
    for (int i = 0; i < 3; i++) {
        c = strchr(s, ':');
        if (!c) return false;
        fields[i] = s;
        lens[i] = (size_t)(c - s);
        s = c + 1;
    }
    fields[3] = s;
    lens[3] = strlen(s);
    p->service = fields[0];
    p->service_n = lens[0];
    p->region = fields[1];
    p->region_n = lens[1];
    p->account = fields[2];
    p->account_n = lens[2];
    p->resource = fields[3];
    p->resource_n = lens[3];
    return true;
}

static bool svc_is(const arn_parts *p, const char *svc)
{
    return p->service_n == strlen(svc) && memcmp(p->service, svc, p->service_n) == 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_ready;
static void curl_init_once(void)
{
    curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static bool http_url_ok(const char *d)
{
    pthread_once(&curl_once, curl_init_once);
    if (!curl_ready) return false;
    bool ok = false;
    char *scheme = NULL;
    char *host = NULL;
    CURLU *u = curl_url();
    if (!u) return false;
    for (const char *p = d; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, d, 0) != CURLUE_OK) goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) goto out;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) goto out;
    ok = strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

static int invalid(sl_err *err, const char *d, const char *why)
{
    return sl_err_set(err, SL_EINVAL, "The provided destination %.*s is invalid: %s", 360,
                      d ? d : "(null)", why);
}

int dst_validate(const char *destination, enum dst_kind *kind, sl_err *err)
{
    const char *d = destination;
    arn_parts p;
    enum dst_kind k;
    if (!d || !d[0]) return invalid(err, "\"\"", "a destination ARN or URL is required.");
    if (strlen(d) > DEST_MAX_LEN) {
        return sl_err_set(err, SL_EINVAL, "The provided destination is invalid: it is longer "
                          "than %d characters.", DEST_MAX_LEN);
    }
    if (strncmp(d, "http://", 7) == 0 || strncmp(d, "https://", 8) == 0) {
        if (!http_url_ok(d)) return invalid(err, d, "not a valid http(s) URL.");
        k = DST_HTTP;
        goto ok;
    }
    if (!arn_split(d, &p)) {
        return invalid(err, d, "expected an SQS, SNS or S3 ARN, a Kinesis stream ARN or an "
                               "http(s) URL.");
    }
    if (svc_is(&p, "s3")) {
        if (p.region_n || p.account_n) {
            return invalid(err, d, "an S3 bucket ARN has no region or account (arn:aws:s3:::"
                                   "BUCKET).");
        }
        if (!bucket_ok(p.resource, p.resource_n)) return invalid(err, d, "bad bucket name.");
        k = DST_S3;
        goto ok;
    }
    if (!svc_is(&p, "sqs") && !svc_is(&p, "sns") && !svc_is(&p, "kinesis")) {
        return invalid(err, d, "unsupported service; expected sqs, sns, s3 or kinesis.");
    }
    if (!region_ok(p.region, p.region_n)) return invalid(err, d, "bad region.");
    if (p.account_n != 12 || !digits(p.account, p.account_n)) {
        return invalid(err, d, "the account id must be 12 digits.");
    }
    if (svc_is(&p, "sqs")) {
        if (!queue_name_ok(p.resource, p.resource_n, 80)) {
            return invalid(err, d, "bad queue name.");
        }
        k = DST_SQS;
    } else if (svc_is(&p, "sns")) {
        if (!queue_name_ok(p.resource, p.resource_n, 256)) {
            return invalid(err, d, "bad topic name.");
        }
        k = DST_SNS;
    } else {
        if (p.resource_n <= 7 || memcmp(p.resource, "stream/", 7) != 0 ||
            p.resource_n > 7 + 128 || !all_chars(p.resource + 7, p.resource_n - 7, "-_.")) {
            return invalid(err, d, "expected arn:aws:kinesis:REGION:ACCOUNT:stream/NAME.");
        }
        k = DST_STREAM;
    }
ok:
    if (kind) *kind = k;
    return 0;
}

/* ---- the invocation record ----------------------------------------------------------------- */

static void iso_ms(char buf[80], int64_t ms)
{
    int64_t sec = ms / 1000;
    int frac = (int)(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) memset(&tm, 0, sizeof(tm));
    snprintf(buf, 80, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/* Version that ran: a numeric qualifier of the function ARN, else $LATEST (an alias would need
 * the registry to resolve; the ESM passes the resolved ARN when it knows it). */
static void executed_version(const char *arn, char *buf, size_t cap)
{
    snprintf(buf, cap, "$LATEST");
    if (!arn) return;
    int colons = 0;
    const char *last = NULL;
    for (const char *p = arn; *p; p++) {
        if (*p == ':') {
            colons++;
            last = p;
        }
    }
    if (colons == 7 && last[1] && strlen(last + 1) < cap && digits(last + 1, strlen(last + 1))) {
        snprintf(buf, cap, "%s", last + 1);
    }
}

static cJSON *record_tree(const dst_failure *f, const char *request_id)
{
    char ts[80], ver[64];
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON *rq = cJSON_AddObjectToObject(root, "requestContext");
    cJSON_AddStringToObject(rq, "requestId", request_id);
    cJSON_AddStringToObject(rq, "functionArn", f->function_arn ? f->function_arn : "");
    cJSON_AddStringToObject(rq, "condition", f->condition ? f->condition : "");
    cJSON_AddNumberToObject(rq, "approximateInvokeCount", (double)f->approximate_invoke_count);
    if (f->has_response) {
        cJSON *rs = cJSON_AddObjectToObject(root, "responseContext");
        executed_version(f->function_arn, ver, sizeof(ver));
        cJSON_AddNumberToObject(rs, "statusCode", f->status_code);
        cJSON_AddStringToObject(rs, "executedVersion", ver);
        if (f->function_error) cJSON_AddStringToObject(rs, "functionError", f->function_error);
    }
    cJSON_AddStringToObject(root, "version", "1.0");
    iso_ms(ts, f->now_ms);
    cJSON_AddStringToObject(root, "timestamp", ts);
    cJSON *bi = cJSON_AddObjectToObject(root, "KinesisBatchInfo");
    const fn_event_record *first = &f->recs[0];
    const fn_event_record *last = &f->recs[f->nrecs - 1];
    cJSON_AddStringToObject(bi, "shardId", f->shard_id ? f->shard_id : "");
    cJSON_AddStringToObject(bi, "startSequenceNumber", first->seq ? first->seq : "");
    cJSON_AddStringToObject(bi, "endSequenceNumber", last->seq ? last->seq : "");
    iso_ms(ts, first->arrival_ms);
    cJSON_AddStringToObject(bi, "approximateArrivalOfFirstRecord", ts);
    iso_ms(ts, last->arrival_ms);
    cJSON_AddStringToObject(bi, "approximateArrivalOfLastRecord", ts);
    cJSON_AddNumberToObject(bi, "batchSize", (double)f->nrecs);
    cJSON_AddStringToObject(bi, "streamArn", f->stream_arn ? f->stream_arn : "");
    return root;
}

int dst_failure_json(const dst_failure *f, enum dst_kind kind, char **out, size_t *len)
{
    int rc = 0;
    char rid[37];
    char *event = NULL;
    size_t event_len = 0;
    char *printed = NULL;
    cJSON *root = NULL;
    if (!f || !out || !f->recs || f->nrecs == 0) return SL_EINVAL;
    sl_uuid4(rid);
    root = record_tree(f, rid);
    if (!root) {
        rc = SL_ENOMEM;
        goto out;
    }
    if (kind == DST_S3 || kind == DST_SNS) {
        static const fn_event_source none = {NULL, NULL, NULL};
        rc = fn_event_build(f->src ? f->src : &none, f->recs, f->nrecs, NULL, &event,
                            &event_len);
        if (rc) goto out;
        bool add = true;
        if (kind == DST_SNS) {
            /* SNS messages are capped at 256 KB: drop the payload when it would not fit. */
            printed = cJSON_PrintUnformatted(root);
            if (!printed) {
                rc = SL_ENOMEM;
                goto out;
            }
            add = strlen(printed) + sizeof(",\"payload\":") - 1 + event_len <= SNS_MAX_BYTES;
            cJSON_free(printed);
            printed = NULL;
        }
        if (add && !cJSON_AddRawToObject(root, "payload", event)) {
            rc = SL_ENOMEM;
            goto out;
        }
    }
    printed = cJSON_PrintUnformatted(root);
    if (!printed) {
        rc = SL_ENOMEM;
        goto out;
    }
    size_t n = strlen(printed);
    char *copy = sl_malloc(n + 1);
    if (!copy) {
        rc = SL_ENOMEM;
        goto out;
    }
    memcpy(copy, printed, n + 1);
    *out = copy;
    if (len) *len = n;
out:
    if (printed) cJSON_free(printed);
    cJSON_Delete(root);
    sl_free(event);
    return rc;
}

/* ---- local files --------------------------------------------------------------------------- */

/* mkdir -p; existing directories are fine. */
static int mkdirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf)) return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char saved = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -errno;
            buf[i] = saved;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0) return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int io_fail(sl_err *err, int rc, const char *what, const char *path)
{
    return sl_err_set(err, rc, "%s %s: %s", what, path, sl_strerror(rc));
}

/* Local queue file of an SQS/SNS ARN: DATA/destinations/{sqs,sns}/NAME.jsonl */
static int queue_path(const char *data_dir, const char *destination, char *dir, size_t dcap,
                      char *file, size_t fcap, sl_err *err)
{
    enum dst_kind k;
    int rc = dst_validate(destination, &k, err);
    if (rc) return rc;
    if (k != DST_SQS && k != DST_SNS) {
        return sl_err_set(err, SL_EINVAL, "%s is not a local queue (SQS or SNS ARN).",
                          destination);
    }
    const char *name = strrchr(destination, ':') + 1;
    int a = snprintf(dir, dcap, "%s/destinations/%s", data_dir, k == DST_SQS ? "sqs" : "sns");
    int b = snprintf(file, fcap, "%s/%s.jsonl", dir, name);
    if (a < 0 || b < 0 || (size_t)a >= dcap || (size_t)b >= fcap) {
        return sl_err_set(err, SL_EINVAL, "data directory path too long");
    }
    return 0;
}

/* Appends line (which ends in '\n') with one write; fsyncs the file (and the directory when
 * the file is new). */
static int append_line(const char *dir, const char *file, const char *line, size_t n,
                       sl_err *err)
{
    int rc = mkdirs(dir);
    if (rc) return io_fail(err, rc, "cannot create", dir);
    bool created = true;
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST) {
        created = false;
        fd = open(file, O_WRONLY | O_APPEND | O_CLOEXEC);
    }
    if (fd < 0) return io_fail(err, -errno, "cannot open", file);
    rc = write_all(fd, line, n);
    if (rc == 0 && fsync(fd) != 0) rc = -errno;
    close(fd);
    if (rc == 0 && created) rc = fsync_dir(dir);
    if (rc) return io_fail(err, rc, "cannot write", file);
    return 0;
}

static bool path_component_ok(const char *s)
{
    return s && s[0] && s[0] != '.' && !strchr(s, '/') && strlen(s) < 256;
}

/* DATA/destinations/s3/BUCKET/aws/lambda/<ESM-UUID>/<shardId>/YYYY/MM/DD/
 *   YYYY-MM-DDTHH.MM.SS-<random UUID>, written to a temporary name and renamed. */
static int s3_put(const char *data_dir, const char *destination, const dst_failure *f,
                  const char *body, size_t n, sl_err *err)
{
    if (!path_component_ok(f->mapping_uuid) || !path_component_ok(f->shard_id)) {
        return sl_err_set(err, SL_EINVAL, "bad mapping UUID or shard id for an S3 key");
    }
    const char *bucket = strrchr(destination, ':') + 1;
    int64_t sec = f->now_ms / 1000 - (f->now_ms % 1000 < 0 ? 1 : 0);
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) memset(&tm, 0, sizeof(tm));
    char uuid[37];
    sl_uuid4(uuid);
    char dir[4096], file[4400], tmp[4400];
    int a = snprintf(dir, sizeof(dir), "%s/destinations/s3/%s/aws/lambda/%s/%s/%04d/%02d/%02d",
                     data_dir, bucket, f->mapping_uuid, f->shard_id, tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday);
    if (a < 0 || (size_t)a >= sizeof(dir)) return sl_err_set(err, SL_EINVAL, "path too long");
    snprintf(file, sizeof(file), "%s/%04d-%02d-%02dT%02d.%02d.%02d-%s", dir, tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, uuid);
    snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", dir, uuid);
    int rc = mkdirs(dir);
    if (rc) return io_fail(err, rc, "cannot create", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return io_fail(err, -errno, "cannot create", tmp);
    rc = write_all(fd, body, n);
    if (rc == 0 && fsync(fd) != 0) rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, file) != 0) rc = -errno;
    if (rc == 0) rc = fsync_dir(dir);
    if (rc) {
        unlink(tmp);
        return io_fail(err, rc, "cannot write", file);
    }
    return 0;
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

static size_t discard_body(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    (void)ud;
    return size * nmemb;
}

/* One POST. Returns 0 with *status set when a response arrived, else a negative code with a
 * reason in why. */
static int http_post_once(const char *url, const char *body, size_t n, long *status,
                          char *why, size_t why_cap)
{
    int rc = 0;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(why, why_cap, "curl_easy_init failed");
        return SL_ENOMEM;
    }
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = hdrs ? curl_slist_append(hdrs, "Expect:") : NULL; /* no 100-continue round trip */
    if (!hdrs) {
        snprintf(why, why_cap, "out of memory");
        rc = SL_ENOMEM;
        goto out;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "sluice-destination/1");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)HTTP_CONNECT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)HTTP_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        snprintf(why, why_cap, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
        rc = SL_EIO;
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return rc;
}

/* Full jitter: a uniform delay in [0, min(cap, base * 2^attempt)] ms. */
static long backoff_ms(int attempt)
{
    long ceiling = HTTP_BASE_MS;
    for (int i = 0; i < attempt && ceiling < HTTP_CAP_MS; i++) ceiling *= 2;
    if (ceiling > HTTP_CAP_MS) ceiling = HTTP_CAP_MS;
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1) r = (uint32_t)sl_mono_ns();
    return (long)(r % (uint32_t)(ceiling + 1));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static bool retryable(long status)
{
    return status == 408 || status == 429 || status >= 500;
}

static int http_send(const char *url, const char *body, size_t n, sl_err *err)
{
    pthread_once(&curl_once, curl_init_once);
    if (!curl_ready) return sl_err_set(err, SL_EIO, "POST %s: libcurl is not available", url);
    char why[CURL_ERROR_SIZE + 64] = "";
    long status = 0;
    for (int attempt = 0; attempt < HTTP_ATTEMPTS; attempt++) {
        status = 0;
        int rc = http_post_once(url, body, n, &status, why, sizeof(why));
        if (rc == 0 && status >= 200 && status < 300) return 0;
        if (rc == 0) snprintf(why, sizeof(why), "HTTP status %ld", status);
        if (rc == 0 && !retryable(status)) break;
        if (attempt + 1 < HTTP_ATTEMPTS) {
            long delay = backoff_ms(attempt);
            rt_log(RT_WARN, "dest", "POST %s: attempt %d/%d failed (%s); retry in %ld ms", url,
                   attempt + 1, HTTP_ATTEMPTS, why, delay);
            sleep_ms(delay);
        }
    }
    rt_log(RT_ERR, "dest", "POST %s: giving up (%s)", url, why);
    return sl_err_set(err, SL_EIO, "POST %s failed: %s", url, why);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

int dst_send(const char *data_dir, brk_broker *b, const char *destination, const dst_failure *f,
             sl_err *err)
{
    enum dst_kind kind;
    char *json = NULL;
    size_t n = 0;
    int rc = dst_validate(destination, &kind, err);
    if (rc) return rc;
    if (!f) return sl_err_set(err, SL_EINVAL, "no failure record to send");
    if ((kind == DST_SQS || kind == DST_SNS || kind == DST_S3) && (!data_dir || !data_dir[0])) {
        return sl_err_set(err, SL_EINVAL, "no data directory for local destinations");
    }
    if (kind == DST_STREAM && !b) return sl_err_set(err, SL_EINVAL, "no broker for %s",
                                                    destination);
    rc = dst_failure_json(f, kind, &json, &n);
    if (rc) return sl_err_set(err, rc, "cannot build the invocation record: %s",
                              sl_strerror(rc));
    switch (kind) {
    case DST_SQS:
    case DST_SNS: {
        char dir[4096], file[4400];
        rc = queue_path(data_dir, destination, dir, sizeof(dir), file, sizeof(file), err);
        if (rc) break;
        json[n] = '\n'; /* the buffer holds n + 1 bytes: the NUL becomes the line end */
        rc = append_line(dir, file, json, n + 1, err);
        break;
    }
    case DST_S3:
        rc = s3_put(data_dir, destination, f, json, n, err);
        break;
    case DST_STREAM: {
        char name[256];
        brk_put_result res;
        rc = brk_stream_name_from_arn(b, destination, name, sizeof(name), err);
        if (rc) break;
        const char *pk = f->shard_id && f->shard_id[0] ? f->shard_id : "sluice";
        brk_put_entry e = {(const uint8_t *)json, n, pk, strlen(pk), NULL};
        rc = brk_put_record(b, name, &e, NULL, &res, err);
        break;
    }
    case DST_HTTP:
        rc = http_send(destination, json, n, err);
        break;
    }
    sl_free(json);
    return rc;
}

int dst_queue_read(const char *data_dir, const char *destination, char ***lines, size_t *n,
                   sl_err *err)
{
    char dir[4096], file[4400];
    char *buf = NULL;
    char **out = NULL;
    size_t count = 0;
    int rc = 0;
    int fd = -1;
    if (!data_dir || !lines || !n) return sl_err_set(err, SL_EINVAL, "bad arguments");
    rc = queue_path(data_dir, destination, dir, sizeof(dir), file, sizeof(file), err);
    if (rc) return rc;
    fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) return io_fail(err, -errno, "cannot open", file);
        *lines = NULL; /* a queue nobody wrote to yet is empty */
        *n = 0;
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = io_fail(err, -errno, "cannot stat", file);
        goto out;
    }
    size_t size = (size_t)st.st_size;
    buf = sl_malloc(size + 1);
    if (!buf) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = io_fail(err, -errno, "cannot read", file);
            goto out;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    size_t cap = 0;
    /* Only complete lines: a last line without '\n' is a torn write (every message is written
     * with its newline in one write). */
    for (size_t start = 0, i = 0; i < got; i++) {
        if (buf[i] != '\n') continue;
        if (i > start) {
            if (count == cap) {
                cap = cap ? cap * 2 : 16;
                char **grown = sl_realloc(out, cap * sizeof(*out));
                if (!grown) {
                    rc = sl_err_set(err, SL_ENOMEM, "out of memory");
                    goto out;
                }
                out = grown;
            }
            out[count] = sl_strndup(buf + start, i - start);
            if (!out[count]) {
                rc = sl_err_set(err, SL_ENOMEM, "out of memory");
                goto out;
            }
            count++;
        }
        start = i + 1;
    }
out:
    if (fd >= 0) close(fd);
    sl_free(buf);
    if (rc) {
        dst_lines_free(out, count);
        return rc;
    }
    *lines = out;
    *n = count;
    return 0;
}

void dst_lines_free(char **lines, size_t n)
{
    if (!lines) return;
    for (size_t i = 0; i < n; i++) sl_free(lines[i]);
    sl_free(lines);
}
