/* thermo — a native (C) sluice handler: temperature readings in, alerts out.
 *
 * Each record's data is "SENSOR,CELSIUS" (e.g. "boiler-1,87.5"). The handler logs every reading,
 * writes readings above the THRESHOLD environment variable (default 80) to the "alerts" stream
 * with the sensor as partition key, skips malformed records with a warning, and returns
 * {"readings":N,"alerts":M,"malformed":K}.
 *
 * The library (libsluice_handler.a) supplies main(): it speaks the framed pipe protocol with the
 * daemon, decodes the Kinesis event (data already base64-decoded) and calls sluice_handler once
 * per batch. The process stays warm between invocations, so `invocations` below keeps counting.
 * Built statically by the Makefile next to this file; runs under a seccomp allow-list.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice_handler.h"

static unsigned long invocations;   /* survives between invocations of this warm worker */

/* Parses "SENSOR,CELSIUS" into sensor (NUL-terminated, at most cap-1 bytes) and *celsius. */
static int parse_reading(const uint8_t *data, size_t len, char *sensor, size_t cap,
                         double *celsius)
{
    const char *s = (const char *)data;  /* the library NUL-terminates data */
    const char *comma = memchr(s, ',', len);
    char *end;

    if (comma == NULL || comma == s || (size_t)(comma - s) >= cap) return -1;
    memcpy(sensor, s, (size_t)(comma - s));
    sensor[comma - s] = '\0';
    errno = 0;
    *celsius = strtod(comma + 1, &end);
    if (errno != 0 || end == comma + 1 || end != s + len) return -1;
    return 0;
}

int sluice_handler(const sluice_event *ev, sluice_response *out)
{
    const char *env = getenv("THRESHOLD");
    double threshold = env != NULL ? strtod(env, NULL) : 80.0;
    size_t alerts = 0, malformed = 0;
    char result[128];

    invocations++;
    for (size_t i = 0; i < ev->record_count; i++) {
        const sluice_record *r = &ev->records[i];
        char sensor[64];
        double celsius;

        if (parse_reading(r->data, r->data_len, sensor, sizeof sensor, &celsius) != 0) {
            sluice_log("malformed reading at %s skipped", r->sequence_number);
            malformed++;
            continue;
        }
        sluice_log("reading %s %.1f C", sensor, celsius);
        if (celsius > threshold) {
            char alert[160];
            char seq[64];
            int n = snprintf(alert, sizeof alert,
                             "{\"sensor\":\"%s\",\"celsius\":%.1f,\"threshold\":%.1f}", sensor,
                             celsius, threshold);
            if (sluice_put_record("alerts", sensor, alert, (size_t)n, seq, sizeof seq) != 0)
                return sluice_set_error(out, "AlertNotWritten", "alert for %s: %s", sensor,
                                        sluice_last_error());
            sluice_log("ALERT %s %.1f C > %.1f C (alerts seq %s)", sensor, celsius, threshold,
                       seq);
            alerts++;
        }
    }
    sluice_log("batch of %zu reading(s), worker invocation %lu", ev->record_count, invocations);
    int n = snprintf(result, sizeof result, "{\"readings\":%zu,\"alerts\":%zu,\"malformed\":%zu}",
                     ev->record_count - malformed, alerts, malformed);
    return sluice_set_result(out, result, (size_t)n);
}
