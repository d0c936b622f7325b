/* logs.h — per-function invocation logs (SPEC 5.3): every invocation appends
 *   START RequestId: <id> Version: $LATEST
 *   <the handler's lines>
 *   END RequestId: <id>
 *   REPORT RequestId: <id>\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t
 *          Max Memory Used: 12 MB[\tInit Duration: 0.45 ms]
 * to DATA/logs/<function>/current.log. Files rotate at a size cap (current.log -> 1.log -> ...
 * up to `keep` old files), so a function's logs stay bounded. Thread-safe. */
#ifndef FN_LOGS_H
#define FN_LOGS_H

#include <stddef.h>
#include <stdint.h>

typedef struct fn_logs fn_logs;

typedef struct fn_log_report {
    const char *request_id;
    double duration_ms;
    uint32_t memory_mb;
    uint32_t max_memory_used_mb;
    double init_duration_ms;      /* < 0: warm start, no Init Duration field */
} fn_log_report;

/* max_bytes: rotation size (0 = 8 MiB); keep: rotated files kept (0 = 2). */
int fn_logs_open(fn_logs **out, const char *data_dir, size_t max_bytes, unsigned keep);
void fn_logs_close(fn_logs *l);

/* Builds the invocation's whole block (START, body, END, REPORT), sl_malloc'd. body may be
 * empty; a missing final newline is added. */
int fn_logs_format(const fn_log_report *r, const char *body, size_t body_len, char **out,
                   size_t *len);
/* Appends a block to the function's log (one write(2)), rotating first when over the cap. */
int fn_logs_append(fn_logs *l, const char *function, const char *text, size_t len);
/* Reads the function's current log from byte `offset` (for `sluice logs -f`): *out sl_malloc'd,
 * *next the offset to continue from. If the file rotated since (offset > size), reads from 0. */
int fn_logs_read(fn_logs *l, const char *function, uint64_t offset, size_t max, char **out,
                 size_t *len, uint64_t *next);
/* Removes a deleted function's logs. */
void fn_logs_remove(fn_logs *l, const char *function);

#endif
