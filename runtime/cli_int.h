/* cli_int.h — helpers shared by the cli_*.c files only (STYLE.md 1: cli__ prefix).
 *
 * Every command is one cli_cmd row: its options are a cli_opt table that drives parsing and the
 * generated --help (STYLE.md 10). Requests go through one libcurl handle per process (keep-alive
 * for tail/top/put loops). Not thread-safe; the CLI is single-threaded.
 */
#ifndef RT_CLI_INT_H
#define RT_CLI_INT_H

#include <cJSON.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* exit statuses */
#define CLI_OK 0
#define CLI_FAIL 1
#define CLI_USAGE 2

#define CLI_MAX_OPTS 40
#define CLI_MAX_POS 64

typedef struct cli_opt {
    const char *name;      /* long name without "--" */
    char short_name;       /* 0: none */
    const char *arg;       /* metavariable ("N", "URL") or NULL for a flag */
    const char *help;
} cli_opt;

/* Parsed command line: per option of the table, how often it was given and every value. */
typedef struct cli_args {
    const cli_opt *opts;
    size_t nopts;
    int count[CLI_MAX_OPTS];
    const char **vals[CLI_MAX_OPTS];   /* sl_malloc'd arrays of borrowed argv strings */
    const char *pos[CLI_MAX_POS];
    int npos;
} cli_args;

typedef struct cli_ctx {
    char endpoint[512];     /* without a trailing slash */
    char hostport[300];     /* Host header value, for signing */
    bool json;
    bool tty;               /* stdout is a terminal */
    bool err_tty;           /* stderr is a terminal (progress lines) */
    bool sign;              /* SigV4 with real credentials */
    char akid[128];
    char secret[256];
    char region[64];
    void *curl;             /* CURL * */
    bool unreachable_reported;
    cJSON *actions;         /* `up --json` / `fn deploy --json`: collected actions */
    int nactions;
} cli_ctx;

typedef struct cli_err {
    long status;            /* HTTP status, 0 when the request did not complete */
    char type[128];         /* AWS error type ("ResourceNotFoundException") */
    char msg[1024];
} cli_err;

typedef struct cli_resp {
    long status;
    char *body;             /* NUL-terminated; free with cli__resp_clear */
    size_t len;
    char err_type[128];     /* x-amzn-ErrorType */
    char fn_error[64];      /* X-Amz-Function-Error */
    char log_result[8192];  /* X-Amz-Log-Result (base64) */
    char next_offset[32];   /* X-Sluice-Next-Offset */
} cli_resp;

/* Set by SIGINT/SIGTERM while a following command runs (tail, logs -f, top, up --watch). */
extern volatile sig_atomic_t cli__stop;

/* ---- options ---------------------------------------------------------------------------- */
const char *cli__opt(const cli_args *a, const char *name);   /* last value or NULL */
bool cli__flag(const cli_args *a, const char *name);
int cli__nvals(const cli_args *a, const char *name, const char ***vals);
/* Parses an integer option within [lo, hi]; *out untouched when absent. Returns CLI_OK,
 * or CLI_USAGE after printing what is wrong. */
int cli__opt_long(const cli_args *a, const char *name, long lo, long hi, long *out, bool *given);
/* Integer from text within [lo, hi]; false when malformed or out of range. */
bool cli__parse_long(const char *s, long lo, long hi, long *out);
int cli__usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- HTTP ------------------------------------------------------------------------------- */
/* One request to ENDPOINT + path_query. service ("kinesis"/"lambda") is the SigV4 scope; headers
 * are "Name: value" strings (NULL-terminated list or NULL). Returns 0 when an HTTP answer came
 * back (any status), -1 after printing why not (the unreachable hint once). timeout_s 0 = none. */
int cli__http(cli_ctx *c, const char *method, const char *path_query, const char *service,
              const char *const *headers, const void *body, size_t len, long timeout_s,
              cli_resp *out);
void cli__resp_clear(cli_resp *r);

/* Kinesis JSON call (POST /, X-Amz-Target Kinesis_20131202.op). req may be NULL ({}).
 * 0: *resp parsed (caller cJSON_Deletes; may be NULL when not wanted); 1: the API answered an
 * error (err filled); -1: transport failure (already reported). */
int cli__kinesis(cli_ctx *c, const char *op, const cJSON *req, cJSON **resp, cli_err *err);
/* Lambda REST call; same returns. An empty 2xx body gives *resp NULL. */
int cli__lambda(cli_ctx *c, const char *method, const char *path, const cJSON *req,
                cJSON **resp, cli_err *err);
/* Prints "sluice: Type: message" to stderr. */
void cli__report(const cli_err *err);
/* Maps a cli__kinesis/cli__lambda result to an exit status, reporting API errors. */
int cli__status(int rc, const cli_err *err);
/* Percent-encodes one path segment or query value (sl_malloc'd). */
char *cli__escape(cli_ctx *c, const char *s);

/* ---- output ----------------------------------------------------------------------------- */
void cli__print_json(const cJSON *v);           /* pretty JSON + newline on stdout */
/* Aligned table: rows of ncols strings; the first row is the header. */
void cli__table(const char *const *cells, size_t nrows, size_t ncols);
/* "\r<text>\033[K" on stderr when stderr is a terminal; done=true ends the line. */
void cli__progress(const cli_ctx *c, bool done, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* One action of `up`/`fn deploy`: "KIND NAME: WHAT" (human) or collected for --json. */
void cli__action(cli_ctx *c, const char *kind, const char *name, const char *what);
const char *cli__jstr(const cJSON *o, const char *key);   /* string member or "" */
double cli__jnum(const cJSON *o, const char *key, double dflt);
void cli__sleep_ms(long ms);
int64_t cli__now_ms(void);
/* Reads a whole file (sl_malloc'd, NUL-terminated). -errno on failure. */
int cli__read_file(const char *path, char **out, size_t *len);
/* The stream's ARN (DescribeStreamSummary); an ARN argument is returned as is. */
int cli__stream_arn(cli_ctx *c, const char *stream, char *arn, size_t len, cli_err *err);

/* base64 via libcrypto: encode (sl_malloc'd, NUL-terminated), decode (SL_EINVAL if malformed;
 * *out sl_malloc'd with a NUL after the data). */
char *cli__b64enc(const void *p, size_t n, size_t *outlen);
int cli__b64dec(const char *s, uint8_t **out, size_t *outlen);

/* ---- shared between fn deploy and up ----------------------------------------------------- */
typedef struct cli_fn_spec {
    const char *name;
    const char *runtime;
    const char *handler;
    const char *code;          /* directory or .zip file */
    const char *build;         /* shell command run in the code directory first, or NULL */
    const char *profile;       /* SandboxProfile or NULL (daemon default) */
    const char *description;
    long memory;               /* MB, 128 when unset */
    long timeout;              /* s, 3 when unset */
    const char **env_keys;
    const char **env_vals;
    size_t nenv;
    bool reserved_set;
    long reserved;             /* ReservedConcurrentExecutions, -1 = unreserved */
} cli_fn_spec;

/* Creates the function or brings code (by CodeSha256) and configuration up to date, reporting
 * each change with cli__action. code_only: leave the configuration alone (watch mode).
 * 0 ok, 1 API or build error (reported), -1 transport. */
int cli__fn_apply(cli_ctx *c, const cli_fn_spec *s, bool code_only);

/* Creates the mapping stream -> function (identified by that pair) or updates what differs from
 * `want` (a CreateEventSourceMapping body without EventSourceArn/FunctionName, every tunable
 * present). Reports actions; 0 ok, 1 API error (reported), -1 transport. */
int cli__map_apply(cli_ctx *c, const char *stream, const char *function, const cJSON *want);

/* ---- commands ---------------------------------------------------------------------------- */
typedef struct cli_cmd {
    const char *group;          /* "stream", or NULL for top-level commands */
    const char *name;
    const char *synopsis;       /* arguments after the command name */
    const char *summary;
    const cli_opt *opts;        /* {0}-terminated; common options are added */
    int min_pos, max_pos;       /* positional arguments (-1: unlimited) */
    int (*run)(cli_ctx *c, const cli_args *a);
} cli_cmd;

extern const cli_cmd cli__stream_cmds[];
extern const cli_cmd cli__fn_cmds[];
extern const cli_cmd cli__map_cmds[];
extern const cli_cmd cli__up_cmds[];
extern const cli_cmd cli__top_cmds[];

#endif
