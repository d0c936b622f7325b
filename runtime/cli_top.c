/* cli_top.c — `sluice top`: a live view of the daemon from GET /metrics (runtime/admin.c), redrawn
 * every second with plain ANSI escapes (no curses): per stream and shard the ingest rate, per
 * mapping and shard IteratorAge, batch rate, errors, retries and discarded records, per function
 * invocations, errors, p50/p99 duration and cold starts. Rates are the difference of two scrapes.
 * The Prometheus text parser is ours: no Debian C library parses the exposition format. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/sl_common.h"
#include "runtime/cli_int.h"

#define MAX_LABELS 6

typedef struct sample {
    char name[64];
    char lk[MAX_LABELS][16];
    char lv[MAX_LABELS][160];
    int nl;
    double v;
} sample;

typedef struct scrape {
    sample *s;
    size_t n, cap;
    int64_t at_ms;
} scrape;

static void scrape_free(scrape *s)
{
    sl_free(s->s);
    memset(s, 0, sizeof *s);
}

static const char *label(const sample *s, const char *k)
{
    for (int i = 0; i < s->nl; i++)
        if (!strcmp(s->lk[i], k)) return s->lv[i];
    return NULL;
}

/* One exposition line: name{k="v",...} value. False for comments and malformed lines. */
static bool parse_line(const char *p, sample *out)
{
    size_t n = 0;
    memset(out, 0, sizeof *out);
    if (*p == '#' || !*p) return false;
    while (*p && *p != '{' && *p != ' ') {
        if (n + 1 < sizeof out->name) out->name[n++] = *p;
        p++;
    }
    if (*p == '{') {
        p++;
        while (*p && *p != '}') {
            char key[16] = "", val[160] = "";
            size_t kn = 0, vn = 0;
            while (*p && *p != '=') {
                if (kn + 1 < sizeof key) key[kn++] = *p;
                p++;
            }
            if (*p++ != '=' || *p++ != '"') return false;
            while (*p && *p != '"') {
                char ch = *p++;
                if (ch == '\\' && *p) {
                    ch = *p++;
                    if (ch == 'n') ch = '\n';
                }
                if (vn + 1 < sizeof val) val[vn++] = ch;
            }
            if (*p++ != '"') return false;
            if (out->nl < MAX_LABELS) {
                snprintf(out->lk[out->nl], sizeof out->lk[0], "%s", key);
                snprintf(out->lv[out->nl], sizeof out->lv[0], "%s", val);
                out->nl++;
            }
            if (*p == ',') p++;
        }
        if (*p++ != '}') return false;
    }
    char *end;
    out->v = strtod(p, &end);
    return end != p;
}

static int do_scrape(cli_ctx *c, scrape *out)
{
    cli_resp r;
    memset(out, 0, sizeof *out);
    if (cli__http(c, "GET", "/metrics", "kinesis", NULL, NULL, 0, 10, &r) != 0) return -1;
    if (r.status != 200) {
        fprintf(stderr, "sluice: GET /metrics answered HTTP %ld\n", r.status);
        cli__resp_clear(&r);
        return 1;
    }
    out->at_ms = cli__now_ms();
    for (char *line = r.body, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        sample s;
        if (!parse_line(line, &s)) continue;
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 256;
            sample *v = sl_realloc(out->s, cap * sizeof *v);
            if (!v) break;
            out->s = v;
            out->cap = cap;
        }
        out->s[out->n++] = s;
    }
    cli__resp_clear(&r);
    return 0;
}

/* Value of a series identified by name and up to three label values (NULL = must be absent). */
static const sample *find(const scrape *sc, const char *name, const char *k1, const char *v1,
                          const char *k2, const char *v2, const char *k3, const char *v3)
{
    for (size_t i = 0; sc && i < sc->n; i++) {
        const sample *s = &sc->s[i];
        if (strcmp(s->name, name)) continue;
        const char *a = k1 ? label(s, k1) : NULL, *b = k2 ? label(s, k2) : NULL;
        const char *d = k3 ? label(s, k3) : NULL;
        if (k1 && (v1 ? !a || strcmp(a, v1) : a != NULL)) continue;
        if (k2 && (v2 ? !b || strcmp(b, v2) : b != NULL)) continue;
        if (k3 && (v3 ? !d || strcmp(d, v3) : d != NULL)) continue;
        return s;
    }
    return NULL;
}

static double rate(const sample *now, const sample *before, double secs)
{
    if (!now || !before || secs <= 0 || now->v < before->v) return 0;
    return (now->v - before->v) / secs;
}

#define SHARD3(s) "stream", label(s, "stream"), "shard", label(s, "shard"), NULL, NULL
#define ESM3(s) "uuid", label(s, "uuid"), "shard", label(s, "shard"), NULL, NULL

/* ---- JSON ----------------------------------------------------------------------------------- */

static cJSON *to_json(const scrape *now, const scrape *prev)
{
    double secs = prev ? (double)(now->at_ms - prev->at_ms) / 1000.0 : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON *streams = cJSON_AddArrayToObject(o, "shards");
    cJSON *maps = cJSON_AddArrayToObject(o, "mappings");
    cJSON *fns = cJSON_AddArrayToObject(o, "functions");
    for (size_t i = 0; i < now->n; i++) {
        const sample *s = &now->s[i];
        if (!strcmp(s->name, "sluice_stream_records_total")) {
            cJSON *e = cJSON_CreateObject();
            const sample *op = find(now, "sluice_shard_open", SHARD3(s));
            cJSON_AddStringToObject(e, "stream", label(s, "stream"));
            cJSON_AddStringToObject(e, "shard", label(s, "shard"));
            cJSON_AddBoolToObject(e, "open", op && op->v > 0);
            cJSON_AddNumberToObject(e, "records", s->v);
            cJSON_AddNumberToObject(e, "recordsPerSecond",
                                    rate(s, find(prev, s->name, SHARD3(s)), secs));
            cJSON_AddItemToArray(streams, e);
        } else if (!strcmp(s->name, "sluice_esm_iterator_age_ms")) {
            static const char *const ctr[] = {"invocations", "records_in", "records_out",
                                              "records_filtered", "function_errors", "throttles",
                                              "retries", "bisects", "records_discarded"};
            cJSON *e = cJSON_CreateObject();
            const sample *info = find(now, "sluice_esm_mapping_info", "uuid", label(s, "uuid"),
                                      NULL, NULL, NULL, NULL);
            const sample *lr = find(now, "sluice_esm_last_result_info", ESM3(s));
            cJSON_AddStringToObject(e, "uuid", label(s, "uuid"));
            cJSON_AddStringToObject(e, "stream", info ? label(info, "stream") : "");
            cJSON_AddStringToObject(e, "function", label(s, "function"));
            cJSON_AddStringToObject(e, "state", info ? label(info, "state") : "");
            if (label(s, "shard")) cJSON_AddStringToObject(e, "shard", label(s, "shard"));
            cJSON_AddNumberToObject(e, "iteratorAgeMs", s->v);
            for (size_t k = 0; k < sizeof ctr / sizeof ctr[0]; k++) {
                char name[64];
                snprintf(name, sizeof name, "sluice_esm_%s_total", ctr[k]);
                const sample *v = find(now, name, ESM3(s));
                cJSON_AddNumberToObject(e, ctr[k], v ? v->v : 0);
                if (!strcmp(ctr[k], "invocations"))
                    cJSON_AddNumberToObject(e, "batchesPerSecond",
                                            rate(v, find(prev, name, ESM3(s)), secs));
            }
            cJSON_AddStringToObject(e, "lastResult", lr ? label(lr, "result") : "");
            cJSON_AddItemToArray(maps, e);
        } else if (!strcmp(s->name, "sluice_function_invocations_total")) {
            const char *fn = label(s, "function");
#define FNV(n) find(now, n, "function", fn, NULL, NULL, NULL, NULL)
            const sample *err = FNV("sluice_function_errors_total");
            const sample *thr = FNV("sluice_function_throttles_total");
            const sample *cold = FNV("sluice_function_cold_starts_total");
            const sample *inf = FNV("sluice_function_in_flight");
            const sample *warm = FNV("sluice_function_warm_instances");
            const sample *p50 = find(now, "sluice_function_duration_ms", "function", fn,
                                     "quantile", "0.5", NULL, NULL);
            const sample *p99 = find(now, "sluice_function_duration_ms", "function", fn,
                                     "quantile", "0.99", NULL, NULL);
#undef FNV
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "function", fn);
            cJSON_AddNumberToObject(e, "invocations", s->v);
            cJSON_AddNumberToObject(
                e, "invocationsPerSecond",
                rate(s, find(prev, s->name, "function", fn, NULL, NULL, NULL, NULL), secs));
            cJSON_AddNumberToObject(e, "errors", err ? err->v : 0);
            cJSON_AddNumberToObject(e, "throttles", thr ? thr->v : 0);
            cJSON_AddNumberToObject(e, "coldStarts", cold ? cold->v : 0);
            cJSON_AddNumberToObject(e, "inFlight", inf ? inf->v : 0);
            cJSON_AddNumberToObject(e, "warmInstances", warm ? warm->v : 0);
            cJSON_AddNumberToObject(e, "p50Ms", p50 ? p50->v : 0);
            cJSON_AddNumberToObject(e, "p99Ms", p99 ? p99->v : 0);
            cJSON_AddItemToArray(fns, e);
        }
    }
    const sample *up = find(now, "sluice_uptime_seconds", NULL, NULL, NULL, NULL, NULL, NULL);
    cJSON_AddNumberToObject(o, "uptimeSeconds", up ? up->v : 0);
    return o;
}

/* ---- screen --------------------------------------------------------------------------------- */

static const char *num(char *buf, size_t len, double v)
{
    if (v >= 1e9) snprintf(buf, len, "%.1fG", v / 1e9);
    else if (v >= 1e6) snprintf(buf, len, "%.1fM", v / 1e6);
    else if (v >= 1e4) snprintf(buf, len, "%.1fk", v / 1e3);
    else if (v == (double)(int64_t)v) snprintf(buf, len, "%" PRId64, (int64_t)v);
    else snprintf(buf, len, "%.1f", v);
    return buf;
}

static void render(cli_ctx *c, const cJSON *j, bool ansi, FILE *f)
{
    const char *bold = ansi ? "\033[1m" : "", *dim = ansi ? "\033[2m" : "";
    const char *red = ansi ? "\033[31m" : "", *off = ansi ? "\033[0m" : "";
    const char *eol = ansi ? "\033[K\n" : "\n";
    char a[32], b[32], d[32], e[32], g[32], h[32];
    const cJSON *it;
    time_t now = time(NULL);
    struct tm tm;
    char ts[16];
    long up = (long)cli__jnum(j, "uptimeSeconds", 0);

    localtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%H:%M:%S", &tm);
    fprintf(f, "%ssluice top%s  %s  up %ldh%02ldm%02lds  %s%s%s%s", bold, off, c->endpoint,
            up / 3600, up / 60 % 60, up % 60, ts, dim, ansi ? "  (Ctrl-C quits)" : "", off);
    fputs(eol, f);
    fputs(eol, f);
    fprintf(f, "%s%-24s %-22s %-6s %10s %9s%s", bold, "STREAM", "SHARD", "STATE", "RECORDS",
            "REC/S", off);
    fputs(eol, f);
    int n = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "shards"))
    {
        bool open = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "open"));
        fprintf(f, "%s%-24.24s %-22.22s %-6s %10s %9s%s", open ? "" : dim,
                cli__jstr(it, "stream"), cli__jstr(it, "shard"), open ? "open" : "closed",
                num(a, sizeof a, cli__jnum(it, "records", 0)),
                num(b, sizeof b, cli__jnum(it, "recordsPerSecond", 0)), open ? "" : off);
        fputs(eol, f);
        n++;
    }
    if (!n) {
        fprintf(f, "%s(no streams)%s", dim, off);
        fputs(eol, f);
    }
    fputs(eol, f);
    fprintf(f, "%s%-26s %-22s %9s %8s %8s %7s %7s %9s  %s%s", bold, "MAPPING", "STATE / SHARD",
            "AGE ms", "BATCH/S", "RECORDS", "ERRORS", "RETRIES", "DISCARDED", "LAST RESULT", off);
    fputs(eol, f);
    n = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "mappings"))
    {
        char who[80];
        bool total = !cJSON_GetObjectItemCaseSensitive(it, "shard");
        double errs = cli__jnum(it, "function_errors", 0);
        if (total) snprintf(who, sizeof who, "%s -> %s", cli__jstr(it, "stream"),
                            cli__jstr(it, "function"));
        else snprintf(who, sizeof who, "  %.8s", cli__jstr(it, "uuid"));
        fprintf(f, "%s%-26.26s %-22.22s %9s %8s %8s %s%7s%s %7s %9s  %s%s",
                total ? bold : "", who,
                total ? cli__jstr(it, "state") : cli__jstr(it, "shard"),
                num(a, sizeof a, cli__jnum(it, "iteratorAgeMs", 0)),
                num(b, sizeof b, cli__jnum(it, "batchesPerSecond", 0)),
                num(d, sizeof d, cli__jnum(it, "records_in", 0)), errs > 0 ? red : "",
                num(e, sizeof e, errs), errs > 0 ? off : "",
                num(g, sizeof g, cli__jnum(it, "retries", 0)),
                num(h, sizeof h, cli__jnum(it, "records_discarded", 0)),
                cli__jstr(it, "lastResult"), total ? off : "");
        fputs(eol, f);
        n++;
    }
    if (!n) {
        fprintf(f, "%s(no mappings)%s", dim, off);
        fputs(eol, f);
    }
    fputs(eol, f);
    fprintf(f, "%s%-24s %11s %7s %7s %9s %6s %9s %5s %8s %8s%s", bold, "FUNCTION", "INVOCATIONS",
            "INV/S", "ERRORS", "THROTTLES", "COLD", "IN-FLIGHT", "WARM", "P50 ms", "P99 ms", off);
    fputs(eol, f);
    n = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "functions"))
    {
        char p50[32], p99[32];
        double errs = cli__jnum(it, "errors", 0);
        snprintf(p50, sizeof p50, "%.2f", cli__jnum(it, "p50Ms", 0));
        snprintf(p99, sizeof p99, "%.2f", cli__jnum(it, "p99Ms", 0));
        fprintf(f, "%-24.24s %11s %7s %s%7s%s %9s %6s %9s %5s %8s %8s",
                cli__jstr(it, "function"), num(a, sizeof a, cli__jnum(it, "invocations", 0)),
                num(b, sizeof b, cli__jnum(it, "invocationsPerSecond", 0)), errs > 0 ? red : "",
                num(d, sizeof d, errs), errs > 0 ? off : "",
                num(e, sizeof e, cli__jnum(it, "throttles", 0)),
                num(g, sizeof g, cli__jnum(it, "coldStarts", 0)),
                num(h, sizeof h, cli__jnum(it, "inFlight", 0)),
                num(a, sizeof a, cli__jnum(it, "warmInstances", 0)), p50, p99);
        fputs(eol, f);
        n++;
    }
    if (!n) {
        fprintf(f, "%s(no functions)%s", dim, off);
        fputs(eol, f);
    }
}

static int cmd_top(cli_ctx *c, const cli_args *a)
{
    bool once = cli__flag(a, "once");
    long interval = 1;
    scrape prev, now;
    int rc;

    if (cli__opt_long(a, "interval", 1, 3600, &interval, NULL)) return CLI_USAGE;
    rc = do_scrape(c, &prev);
    if (rc != 0) return CLI_FAIL;
    bool ansi = c->tty && !once && !c->json;
    if (ansi) fputs("\033[?25l\033[H\033[2J", stdout); /* hide the cursor, clear */
    for (;;) {
        for (long waited = 0; waited < interval * 1000 && !cli__stop; waited += 100)
            cli__sleep_ms(100);
        if (cli__stop) break;
        rc = do_scrape(c, &now);
        if (rc != 0) break;
        cJSON *j = to_json(&now, &prev);
        scrape_free(&prev);
        prev = now;
        if (c->json) {
            if (once) {
                cli__print_json(j);
            } else {
                char *line = cJSON_PrintUnformatted(j);
                if (line) puts(line);
                cJSON_free(line);
            }
        } else {
            char *frame = NULL;
            size_t len = 0;
            FILE *f = open_memstream(&frame, &len);
            if (f) {
                render(c, j, ansi, f);
                fclose(f);
                /* one write per frame, drawn over the previous one: no flicker */
                if (ansi) fputs("\033[H", stdout);
                fwrite(frame, 1, len, stdout);
                if (ansi) fputs("\033[J", stdout);
                free(frame);
            }
        }
        fflush(stdout);
        cJSON_Delete(j);
        if (once) break;
    }
    scrape_free(&prev);
    if (ansi) fputs("\033[?25h", stdout);
    fflush(stdout);
    return rc == 0 ? CLI_OK : CLI_FAIL;
}

static const cli_opt top_opts[] = {
    {"once", 0, NULL, "print one view (rates over one interval) and exit"},
    {"interval", 'i', "SECONDS", "refresh interval (default 1)"},
    {0},
};

const cli_cmd cli__top_cmds[] = {
    {NULL, "top", "[--once] [--interval S]",
     "Live view of streams, mappings and functions (from GET /metrics); Ctrl-C quits.",
     top_opts, 0, 0, cmd_top},
    {0},
};
