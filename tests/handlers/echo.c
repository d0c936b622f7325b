/* echo.c — benign test handler: reports what it received, keeps a warm-worker counter, logs,
 * and exercises host calls and partial batch failures on request
 * (tests/unit/test_functions_native.c). */
#include <stdio.h>
#include <string.h>

#include "sluice_handler.h"

static unsigned long invocations; /* survives between invocations of one warm worker */

/* Copies the string value of "key":"..." from flat test events (no escapes needed there). */
static int field(const char *json, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    if (!p) return -1;
    p += strlen(pat);
    const char *e = strchr(p, '"');
    if (!e || (size_t)(e - p) >= cap) return -1;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = 0;
    return 0;
}

/* JSON string body of arbitrary bytes (quotes, backslashes and control bytes escaped). */
static void escape(char *dst, size_t cap, const uint8_t *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 7 < cap; i++) {
        if (p[i] == '"' || p[i] == '\\') {
            dst[k++] = '\\';
            dst[k++] = (char)p[i];
        } else if (p[i] < 0x20) {
            k += (size_t)snprintf(dst + k, cap - k, "\\u%04x", p[i]);
        } else {
            dst[k++] = (char)p[i];
        }
    }
    dst[k] = 0;
}

int sluice_handler(const sluice_event *ev, sluice_response *out)
{
    char buf[8192];
    char stream[128];
    invocations++;
    sluice_log("echo: invocation %lu with %zu records", invocations, ev->record_count);
    printf("printf goes to the log\n");

    if (field(ev->json, "put_stream", stream, sizeof stream) == 0) {
        char seq[128];
        if (sluice_put_record(stream, "pk-1", "hello", 5, seq, sizeof seq) != 0)
            return sluice_set_error(out, "PutFailed", "%s", sluice_last_error());
        sluice_put_entry e[2] = {{"a", "x", 1}, {"b", "yy", 2}};
        int failed = sluice_put_records(stream, e, 2);
        if (failed < 0) return sluice_set_error(out, "PutFailed", "%s", sluice_last_error());
        snprintf(buf, sizeof buf, "{\"seq\":\"%s\",\"failed\":%d}", seq, failed);
        return sluice_set_result(out, buf, strlen(buf));
    }
    if (strstr(ev->json, "\"fail_odd\"")) {
        for (size_t i = 0; i < ev->record_count; i += 2)
            sluice_add_batch_item_failure(out, ev->records[i].sequence_number);
        return 0;
    }
    if (strstr(ev->json, "\"raise\"")) return sluice_set_error(out, "CustomError", "raised %d", 42);
    if (strstr(ev->json, "\"return_nothing\"")) return 0;
    if (strstr(ev->json, "\"bad_json\"")) return sluice_set_result(out, "{not json", 9);

    size_t n = (size_t)snprintf(buf, sizeof buf,
                                "{\"count\":%lu,\"records\":%zu,\"request_id\":\"%s\","
                                "\"function\":\"%s\",\"version\":\"%s\",\"memory\":%u,"
                                "\"remaining_positive\":%s",
                                invocations, ev->record_count, ev->request_id,
                                ev->function_name, ev->function_version, ev->memory_limit_mb,
                                sluice_remaining_ms(ev) > 0 ? "true" : "false");
    if (ev->record_count > 0) {
        const sluice_record *r = &ev->records[0];
        char data[2048];
        escape(data, sizeof data, r->data, r->data_len);
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              ",\"key\":\"%s\",\"seq\":\"%s\",\"data\":\"%s\",\"len\":%zu,"
                              "\"arrival\":%.3f,\"event_id\":\"%s\"",
                              r->partition_key, r->sequence_number, data, r->data_len,
                              r->approximate_arrival, r->event_id);
    }
    n += (size_t)snprintf(buf + n, sizeof buf - n, "}");
    return sluice_set_result(out, buf, n);
}
