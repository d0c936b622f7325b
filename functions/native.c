/* native.c — spawns confined native handler processes through the launcher and runs
 * invocations over the framed protocol (native.h; SANDBOX.md 2.1, 2.6).
 *
 * Supervision per invocation: one poll() loop over the handler's stdout (frames), stderr (log
 * text), stdin (pending request bytes, written non-blocking so a handler that never reads cannot
 * block us) and a pidfd (exit), bounded by the deadline. On expiry the whole process group is
 * SIGKILLed (pidfd_send_signal: no PID-reuse race) and reaped with wait4 on its own pid, never
 * wait(-1). Every anomaly (crash, timeout, seccomp kill, oversize or garbage output, stray bytes
 * between invocations) discards the process; the next invocation starts a fresh one.
 */
#include "functions/native.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "functions/wire.h"
#include "sandbox/jail.h"

#define LAUNCH_STATUS_TIMEOUT_MS 10000
#define IO_CHUNK 65536
#define MAX_HOST_CALLS 10000 /* per invocation */

struct fn_native_worker {
    /* spec, deep-copied */
    char *launcher;
    char *executable;
    char *code_dir;
    char *function_name;
    char *function_version;
    char *region;
    char **env;
    size_t env_n;
    uint32_t memory_mb;
    uint32_t timeout_ms;
    sbx_profile profile;
    int cold;
    uint32_t max_invocations;
    uid_t uid;
    gid_t gid;

    /* current process */
    pid_t pid;
    int pidfd;
    int in_fd;
    int out_fd;
    int err_fd;
    int fresh;            /* spawned, not yet invoked: the next invocation is a cold start */
    uint64_t spawn_us;
    uint32_t proc_invocations;
    uint16_t seq;         /* number of the current invocation in this process (wire.h) */
    uint64_t cpu_limit_s; /* RLIMIT_CPU given to the current process */
    /* The process starts as a vfork of the daemon, so its ru_maxrss includes the daemon's peak
     * RSS at spawn time (exec keeps the old mm's high-water mark). Only a figure above this
     * baseline says anything about the handler; otherwise the last live VmHWM sample is used. */
    uint64_t baseline_kb;
    uint32_t last_hwm_mb;
    char log_stream[96];

    fn_native_stats stats;
};

#define SPIN_US 60 /* see the poll loop in fn_native_invoke */

/* ---- small helpers ---- */

static uint64_t mono_us(void)
{
    return sl_mono_ns() / 1000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

/* Moves fd above the stdio/launcher slots (0..4) so the spawn's dup2s cannot clobber it. */
static int fd_high(int fd)
{
    if (fd < 0 || fd > 4) return fd;
    int n = fcntl(fd, F_DUPFD_CLOEXEC, 5);
    int saved = errno;
    close(fd);
    errno = saved;
    return n;
}

static const char *signal_text(int sig)
{
    switch (sig) {
    case SIGSEGV: return "segmentation fault";
    case SIGABRT: return "aborted";
    case SIGBUS: return "bus error";
    case SIGILL: return "illegal instruction";
    case SIGFPE: return "floating point exception";
    case SIGSYS: return "bad system call";
    case SIGKILL: return "killed";
    case SIGXFSZ: return "file size limit exceeded";
    case SIGXCPU: return "CPU time limit exceeded";
    case SIGTERM: return "terminated";
    case SIGPIPE: return "broken pipe";
    case SIGTRAP: return "trace/breakpoint trap";
    default: return NULL;
    }
}

/* ---- log capture (capped, control characters escaped) ---- */

typedef struct logbuf {
    char *p;
    size_t n;
    size_t cap;
    int truncated;
} logbuf;

/* Appends without the cap (the runtime's own lines always make it into the log). */
static void log_append(logbuf *lb, const char *s, size_t n)
{
    if (lb->n + n + 1 > lb->cap) {
        size_t cap = lb->cap ? lb->cap : 1024;
        while (cap < lb->n + n + 1) cap *= 2;
        char *q = sl_realloc(lb->p, cap);
        if (!q) return; /* the log is best effort; the invocation result is not affected */
        lb->p = q;
        lb->cap = cap;
    }
    memcpy(lb->p + lb->n, s, n);
    lb->n += n;
    lb->p[lb->n] = 0;
}

/* Appends handler output up to FN_NATIVE_LOG_CAP, then one marker and nothing more. */
static void log_raw(logbuf *lb, const char *s, size_t n)
{
    static const char mark[] = "\n[sluice: log truncated: more than 64 KiB in one invocation]\n";
    if (lb->truncated) return;
    if (lb->n + n > FN_NATIVE_LOG_CAP) {
        log_append(lb, s, FN_NATIVE_LOG_CAP - lb->n);
        log_append(lb, mark, sizeof mark - 1);
        lb->truncated = 1;
        return;
    }
    log_append(lb, s, n);
}

/* Appends handler text; keep_newlines for raw stderr, escaped for one-line LOG frames so a
 * handler cannot forge runtime lines (START/END/REPORT) or send terminal sequences. */
static void log_text(logbuf *lb, const uint8_t *s, size_t n, int keep_newlines)
{
    size_t run = 0;
    for (size_t i = 0; i < n && !lb->truncated; i++) {
        uint8_t c = s[i];
        int ok = c >= 0x20 ? c != 0x7f : (c == '\t' || (c == '\n' && keep_newlines));
        if (ok) {
            run++;
            continue;
        }
        log_raw(lb, (const char *)s + i - run, run);
        run = 0;
        char esc[8];
        int k = c == '\n' ? snprintf(esc, sizeof esc, "\\n")
                          : snprintf(esc, sizeof esc, "\\x%02x", c);
        log_raw(lb, esc, (size_t)k);
    }
    if (run && !lb->truncated) log_raw(lb, (const char *)s + n - run, run);
}

/* ---- spec copy ---- */

static const char *const RESERVED_ENV[] = {
    "_HANDLER", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", NULL};

static int reserved_env(const char *kv)
{
    size_t klen = strcspn(kv, "=");
    for (const char *const *r = RESERVED_ENV; *r; r++)
        if (strlen(*r) == klen && !strncmp(*r, kv, klen)) return 1;
    return 0;
}

static void worker_free_spec(fn_native_worker *w)
{
    sl_free(w->launcher);
    sl_free(w->executable);
    sl_free(w->code_dir);
    sl_free(w->function_name);
    sl_free(w->function_version);
    sl_free(w->region);
    for (size_t i = 0; i < w->env_n; i++) sl_free(w->env[i]);
    sl_free(w->env);
}

static int copy_spec(fn_native_worker *w, const fn_native_spec *s, sl_err *err)
{
    if (!s || !s->launcher || !*s->launcher || !s->executable || !*s->executable ||
        !s->code_dir || !*s->code_dir || !s->function_name || !*s->function_name)
        return sl_err_set(err, SL_EINVAL,
                          "native spec needs launcher, executable, code_dir and function_name");
    int rc = sbx_profile_parse(s->profile ? s->profile : "stdio", &w->profile, err);
    if (rc) return rc;
    size_t env_bytes = 0;
    size_t n = 0;
    for (const char *const *e = s->env; e && *e; e++, n++) {
        const char *eq = strchr(*e, '=');
        if (!eq || eq == *e)
            return sl_err_set(err, SL_EINVAL, "environment entry '%.64s' is not KEY=VALUE", *e);
        env_bytes += strlen(*e) + 1;
    }
    if (env_bytes > 32 * 1024)
        return sl_err_set(err, SL_EINVAL, "function environment larger than 32 KiB");
    w->memory_mb = s->memory_mb ? s->memory_mb : FN_NATIVE_DEFAULT_MEMORY_MB;
    w->timeout_ms = s->timeout_ms ? s->timeout_ms : FN_NATIVE_DEFAULT_TIMEOUT_MS;
    w->cold = s->cold != 0;
    w->max_invocations =
        s->max_invocations ? s->max_invocations : FN_NATIVE_DEFAULT_MAX_INVOCATIONS;
    w->uid = s->uid ? s->uid : 65534;
    w->gid = s->gid ? s->gid : 65534;
    w->launcher = sl_strdup(s->launcher);
    w->executable = sl_strdup(s->executable);
    w->code_dir = sl_strdup(s->code_dir);
    w->function_name = sl_strdup(s->function_name);
    w->function_version = sl_strdup(s->function_version ? s->function_version : "$LATEST");
    w->region = sl_strdup(s->region ? s->region : "us-east-1");
    w->env = sl_calloc(n + 1, sizeof *w->env);
    if (!w->launcher || !w->executable || !w->code_dir || !w->function_name ||
        !w->function_version || !w->region || !w->env)
        return sl_err_set(err, SL_ENOMEM, "out of memory copying the native spec");
    for (size_t i = 0; i < n; i++) {
        if (!(w->env[i] = sl_strdup(s->env[i])))
            return sl_err_set(err, SL_ENOMEM, "out of memory copying the environment");
        w->env_n = i + 1;
    }
    return 0;
}

/* ---- spawning ---- */

/* Writes the handler environment (SPEC 4.4 variables that apply + the function's own) into a
 * sealed memfd the launcher reads as --env-fd. */
static int make_env_fd(fn_native_worker *w, sl_err *err)
{
    int fd = memfd_create("sluice-env", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return sl_err_set(err, -errno, "memfd_create: %s", strerror(errno));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        close(fd);
        return sl_err_set(err, SL_ENOMEM, "open_memstream failed");
    }
    const char *base = strrchr(w->executable, '/');
    base = base ? base + 1 : w->executable;
    fprintf(f, "_HANDLER=%s%cAWS_REGION=%s%cAWS_DEFAULT_REGION=%s%c", base, 0, w->region, 0,
            w->region, 0);
    fprintf(f, "AWS_LAMBDA_FUNCTION_NAME=%s%cAWS_LAMBDA_FUNCTION_MEMORY_SIZE=%u%c",
            w->function_name, 0, w->memory_mb, 0);
    fprintf(f, "AWS_LAMBDA_FUNCTION_VERSION=%s%cAWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/%s%c",
            w->function_version, 0, w->function_name, 0);
    fprintf(f, "AWS_LAMBDA_LOG_STREAM_NAME=%s%cLAMBDA_TASK_ROOT=%s%c", w->log_stream, 0,
            w->code_dir, 0);
    fprintf(f, "LANG=en_US.UTF-8%cTZ=:UTC%c", 0, 0);
    for (size_t i = 0; i < w->env_n; i++)
        if (!reserved_env(w->env[i])) fprintf(f, "%s%c", w->env[i], 0);
    int ferr = ferror(f);
    fclose(f);
    int rc = 0;
    if (ferr || !buf) {
        rc = sl_err_set(err, SL_ENOMEM, "cannot build the handler environment");
    } else {
        size_t off = 0;
        while (off < len) {
            ssize_t n = write(fd, buf + off, len - off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                rc = sl_err_set(err, -errno, "write env memfd: %s", strerror(errno));
                break;
            }
            off += (size_t)n;
        }
        if (!rc && lseek(fd, 0, SEEK_SET) < 0)
            rc = sl_err_set(err, -errno, "lseek env memfd: %s", strerror(errno));
        if (!rc)
            (void)fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    }
    free(buf);
    if (rc) {
        close(fd);
        return rc;
    }
    return fd;
}

static void new_log_stream(fn_native_worker *w)
{
    unsigned char rnd[16];
    char hex[33];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        uint64_t t = sl_mono_ns();
        for (size_t i = 0; i < sizeof rnd; i++)
            rnd[i] = (unsigned char)(t >> (i % 8 * 8)) ^ (unsigned char)i;
    }
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(w->log_stream, sizeof w->log_stream, "%04d/%02d/%02d/[%s]%s", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, w->function_version, hex);
}

static void reap(fn_native_worker *w, int *status, struct rusage *ru)
{
    int st = 0;
    struct rusage r;
    memset(&r, 0, sizeof r);
    while (wait4(w->pid, &st, 0, &r) < 0 && errno == EINTR) {
    }
    if (status) *status = st;
    if (ru) *ru = r;
    w->pid = 0;
    close_fd(&w->pidfd);
    close_fd(&w->in_fd);
    close_fd(&w->out_fd);
    close_fd(&w->err_fd);
}

/* SIGKILLs the process and its group (the launcher made it a session leader), then reaps it. */
static void kill_and_reap(fn_native_worker *w, int *status, struct rusage *ru)
{
    if (w->pid <= 0) return;
    if (w->pidfd >= 0) (void)syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
    else kill(w->pid, SIGKILL);
    kill(-w->pid, SIGKILL);
    reap(w, status, ru);
}

/* Starts the launcher. On a launcher refusal fills type (errorType) and returns SL_EINVAL. */
static int spawn_process(fn_native_worker *w, char *type, size_t type_len, sl_err *err)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, ep[2] = {-1, -1}, st[2] = {-1, -1};
    int envfd = -1;
    int rc = 0;
    pid_t pid = 0;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int fa_ok = 0, attr_ok = 0;
    uint64_t t0 = mono_us();
    char status_buf[SL_ERR_MSG_MAX + 128];
    size_t status_len = 0;

    snprintf(type, type_len, "Sandbox.SetupFailed");
    new_log_stream(w);
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(ep, O_CLOEXEC) ||
        pipe2(st, O_CLOEXEC)) {
        rc = sl_err_set(err, -errno, "pipe2: %s", strerror(errno));
        goto fail;
    }
    if ((envfd = make_env_fd(w, err)) < 0) {
        rc = envfd;
        envfd = -1;
        goto fail;
    }
    int *all[] = {&in[0], &in[1], &out[0], &out[1], &ep[0], &ep[1], &st[0], &st[1], &envfd};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if ((*all[i] = fd_high(*all[i])) < 0) {
            rc = sl_err_set(err, -errno, "fcntl(F_DUPFD): %s", strerror(errno));
            goto fail;
        }
    }

    char mem[16], cpu[24], uid[16], gid[16], ppid[16];
    /* RLIMIT_CPU is a backstop over the whole life of a warm process: the wall clock below is
     * the real per-invocation limit; retirement after max_invocations bounds the total. */
    uint64_t per = (w->timeout_ms + 999) / 1000 + 1;
    uint64_t cpu_s = w->cold ? per : per * (uint64_t)w->max_invocations;
    if (w->profile == SBX_PROFILE_THREADS) cpu_s *= 4;
    snprintf(mem, sizeof mem, "%u", w->memory_mb);
    snprintf(cpu, sizeof cpu, "%llu", (unsigned long long)cpu_s);
    w->cpu_limit_s = cpu_s;
    snprintf(uid, sizeof uid, "%u", (unsigned)w->uid);
    snprintf(gid, sizeof gid, "%u", (unsigned)w->gid);
    snprintf(ppid, sizeof ppid, "%d", (int)getpid());
    char *argv[] = {w->launcher, (char *)"__launch", (char *)"--dir", w->code_dir,
                    (char *)"--memory-mb", mem, (char *)"--cpu-seconds", cpu,
                    (char *)"--profile", (char *)sbx_profile_name(w->profile),
                    (char *)"--uid", uid, (char *)"--gid", gid, (char *)"--env-fd", (char *)"4",
                    (char *)"--status-fd", (char *)"3", (char *)"--parent-pid", ppid,
                    (char *)"--", w->executable, NULL};
    char *envp[] = {NULL}; /* the launcher needs nothing; never leak the daemon's environment */

    if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
        rc = sl_err_set(err, -rc, "posix_spawn_file_actions_init failed");
        goto fail;
    }
    fa_ok = 1;
    if ((rc = posix_spawnattr_init(&attr)) != 0) {
        rc = sl_err_set(err, -rc, "posix_spawnattr_init failed");
        goto fail;
    }
    attr_ok = 1;
    sigset_t none, all_sigs;
    sigemptyset(&none);
    sigfillset(&all_sigs);
    /* Ignored signals and the mask survive exec: reset both so the handler starts clean. */
    if (posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) ||
        posix_spawnattr_setsigmask(&attr, &none) ||
        posix_spawnattr_setsigdefault(&attr, &all_sigs) ||
        posix_spawn_file_actions_adddup2(&fa, in[0], 0) ||
        posix_spawn_file_actions_adddup2(&fa, out[1], 1) ||
        posix_spawn_file_actions_adddup2(&fa, ep[1], 2) ||
        posix_spawn_file_actions_adddup2(&fa, st[1], 3) ||
        posix_spawn_file_actions_adddup2(&fa, envfd, 4)) {
        rc = sl_err_set(err, SL_ENOMEM, "posix_spawn setup failed");
        goto fail;
    }
    struct rusage self;
    w->baseline_kb = getrusage(RUSAGE_SELF, &self) == 0 ? (uint64_t)self.ru_maxrss + 4096 : 0;
    w->last_hwm_mb = 0;
    rc = posix_spawn(&pid, w->launcher, &fa, &attr, argv, envp);
    if (rc != 0) {
        rc = sl_err_set(err, -rc, "cannot start launcher %s: %s", w->launcher, strerror(rc));
        pid = 0;
        goto fail;
    }
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&ep[1]);
    close_fd(&st[1]);
    close_fd(&envfd);
    w->pid = pid;
    w->in_fd = in[1];
    w->out_fd = out[0];
    w->err_fd = ep[0];
    in[1] = out[0] = ep[0] = -1;
    w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (w->pidfd < 0) {
        rc = sl_err_set(err, -errno, "pidfd_open: %s", strerror(errno));
        goto fail;
    }

    /* Wait for the exec (status fd closes with no data) or the launcher's refusal. */
    for (;;) {
        struct pollfd pf = {st[0], POLLIN, 0};
        int pr = poll(&pf, 1, LAUNCH_STATUS_TIMEOUT_MS);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) {
            rc = sl_err_set(err, SL_ETIMEOUT, "launcher did not start the handler in time");
            goto fail;
        }
        ssize_t n = read(st[0], status_buf + status_len, sizeof status_buf - 1 - status_len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || status_len + (size_t)n >= sizeof status_buf - 1) {
            if (n > 0) status_len += (size_t)n;
            break;
        }
        status_len += (size_t)n;
    }
    close_fd(&st[0]);
    if (status_len) {
        status_buf[status_len] = 0;
        char *nl = strchr(status_buf, '\n');
        if (nl) {
            size_t tl = (size_t)(nl - status_buf) < type_len - 1 ? (size_t)(nl - status_buf)
                                                                 : type_len - 1;
            memcpy(type, status_buf, tl);
            type[tl] = 0;
        }
        rc = sl_err_set(err, SL_EINVAL, "%s", nl ? nl + 1 : status_buf);
        goto fail;
    }
    if (fcntl(w->in_fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(w->out_fd, F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(w->err_fd, F_SETFL, O_NONBLOCK) < 0) {
        rc = sl_err_set(err, -errno, "fcntl(O_NONBLOCK): %s", strerror(errno));
        goto fail;
    }
    w->fresh = 1;
    w->proc_invocations = 0;
    w->seq = 0;
    w->spawn_us = mono_us() - t0;
    w->stats.spawns++;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return 0;

fail:
    if (w->pid > 0) kill_and_reap(w, NULL, NULL);
    for (int *p = &in[0]; p <= &in[1]; p++) close_fd(p);
    for (int *p = &out[0]; p <= &out[1]; p++) close_fd(p);
    for (int *p = &ep[0]; p <= &ep[1]; p++) close_fd(p);
    for (int *p = &st[0]; p <= &st[1]; p++) close_fd(p);
    close_fd(&envfd);
    if (fa_ok) posix_spawn_file_actions_destroy(&fa);
    if (attr_ok) posix_spawnattr_destroy(&attr);
    return rc;
}

int fn_native_spawn(fn_native_worker **out, const fn_native_spec *spec, sl_err *err)
{
    fn_native_worker *w = sl_calloc(1, sizeof *w);
    if (!w) return sl_err_set(err, SL_ENOMEM, "out of memory");
    w->pidfd = w->in_fd = w->out_fd = w->err_fd = -1;
    int rc = copy_spec(w, spec, err);
    if (!rc && !w->cold) {
        char type[64];
        rc = spawn_process(w, type, sizeof type, err);
    }
    if (rc) {
        fn_native_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void fn_native_free(fn_native_worker *w)
{
    if (!w) return;
    kill_and_reap(w, NULL, NULL);
    worker_free_spec(w);
    sl_free(w);
}

void fn_native_get_stats(const fn_native_worker *w, fn_native_stats *out)
{
    *out = w->stats;
    out->pid = w->pid;
}

void fn_native_result_clear(fn_native_result *res)
{
    if (!res) return;
    sl_free(res->payload);
    sl_free(res->log);
    memset(res, 0, sizeof *res);
    res->exit_status = res->term_signal = -1;
}

/* ---- one invocation ---- */

typedef struct inv_state {
    fn_native_worker *w;
    const fn_native_invocation *inv;
    fn_native_result *res;
    logbuf log;
    /* pending bytes for the handler's stdin */
    uint8_t *wbuf;
    size_t wlen;
    size_t woff;
    int write_broken;
    /* frame being read */
    uint8_t hdr[FN_WIRE_HDR_SIZE];
    size_t hdr_got;
    uint8_t rtype;
    int rstale;           /* frame of another invocation: read and dropped */
    uint8_t *rbuf;
    size_t rlen;
    size_t rgot;
    int in_payload;
    /* outcome */
    int done;             /* RESULT_* received */
    int stray;            /* bytes after the result: keep the result, replace the worker */
    int violation;        /* protocol violation: kill */
    char vtype[64];
    char vmsg[512];
    int host_calls;
    uint8_t *result;      /* RESULT_* payload (owned) */
    size_t result_len;
    uint8_t result_type;
} inv_state;

static void violate(inv_state *s, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void violate(inv_state *s, const char *type, const char *fmt, ...)
{
    if (s->violation) return;
    s->violation = 1;
    snprintf(s->vtype, sizeof s->vtype, "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->vmsg, sizeof s->vmsg, fmt, ap);
    va_end(ap);
}

static int queue_write(inv_state *s, const uint8_t *p, size_t n)
{
    if (s->woff == s->wlen) s->woff = s->wlen = 0;
    uint8_t *q = sl_realloc(s->wbuf, s->wlen + n);
    if (!q) return SL_ENOMEM;
    s->wbuf = q;
    memcpy(s->wbuf + s->wlen, p, n);
    s->wlen += n;
    return 0;
}

static void host_call(inv_state *s, const uint8_t *p, size_t n)
{
    const char *op;
    size_t op_len;
    const uint8_t *req;
    size_t req_len;
    char op_z[64];
    char etype[128] = "";
    char emsg[1024] = "";
    char *resp = NULL;
    size_t resp_len = 0;
    int st;
    if (fn_wire_pair_decode(p, n, &op, &op_len, &req, &req_len) || op_len >= sizeof op_z) {
        violate(s, "Runtime.InvalidResult", "protocol violation: malformed host call frame");
        return;
    }
    if (++s->host_calls > MAX_HOST_CALLS) {
        violate(s, "Runtime.InvalidResult", "more than %d host calls in one invocation",
                MAX_HOST_CALLS);
        return;
    }
    memcpy(op_z, op, op_len);
    op_z[op_len] = 0;
    if (!s->inv->host_call) {
        snprintf(etype, sizeof etype, "Sluice.HostUnavailable");
        snprintf(emsg, sizeof emsg, "no host functions are available to this invocation");
        st = 1;
    } else {
        /* The request is handed over NUL-terminated: copy it once. */
        char *rq = sl_malloc(req_len + 1);
        if (!rq) {
            snprintf(etype, sizeof etype, "Sluice.OutOfMemory");
            snprintf(emsg, sizeof emsg, "out of memory");
            st = 1;
        } else {
            memcpy(rq, req, req_len);
            rq[req_len] = 0;
            st = s->inv->host_call(s->inv->host_ctx, op_z, rq, req_len, &resp, &resp_len, etype,
                                   sizeof etype, emsg, sizeof emsg) != 0;
            sl_free(rq);
        }
        etype[sizeof etype - 1] = 0;
        emsg[sizeof emsg - 1] = 0;
        if (!st && !resp) resp_len = 0;
        if (!st && resp_len + 1 > FN_WIRE_MAX_HOST_REPLY) {
            snprintf(etype, sizeof etype, "Sluice.ReplyTooLarge");
            snprintf(emsg, sizeof emsg, "host reply larger than %u bytes", FN_WIRE_MAX_HOST_REPLY);
            st = 1;
        }
    }
    size_t tl = strlen(etype);
    size_t ml = strlen(emsg);
    size_t need = FN_WIRE_HDR_SIZE + (st ? fn_wire_reply_size(1, tl, ml)
                                         : fn_wire_reply_size(0, resp_len, 0));
    uint8_t *frame = sl_malloc(need);
    long k = -1;
    if (frame)
        k = st ? fn_wire_reply_encode(s->w->seq, 1, etype, tl, emsg, ml, frame, need)
               : fn_wire_reply_encode(s->w->seq, 0, resp, resp_len, NULL, 0, frame, need);
    if (k < 0 || queue_write(s, frame, (size_t)k))
        violate(s, "Sluice.OutOfMemory", "out of memory answering a host call");
    sl_free(frame);
    sl_free(resp);
}

static void handle_frame(inv_state *s)
{
    uint8_t *p = s->rbuf;
    size_t n = s->rlen;
    switch (s->rtype) {
    case FN_WIRE_LOG:
        log_text(&s->log, p, n, 0);
        log_raw(&s->log, "\n", 1);
        break;
    case FN_WIRE_HOST_CALL: host_call(s, p, n); break;
    case FN_WIRE_RESULT_OK:
    case FN_WIRE_RESULT_ERROR:
        s->done = 1;
        s->result = s->rbuf;
        s->result_len = n;
        s->result_type = s->rtype;
        s->rbuf = NULL;
        return;
    default:
        violate(s, "Runtime.InvalidResult",
                "protocol violation: handler sent a frame of type %u", (unsigned)s->rtype);
        break;
    }
    sl_free(s->rbuf);
    s->rbuf = NULL;
}

/* Feeds stdout bytes to the frame parser. */
static void feed(inv_state *s, const uint8_t *p, size_t n)
{
    while (n > 0 && !s->violation) {
        if (s->done) { /* never attributed to a later request: the worker is replaced */
            s->stray = 1;
            return;
        }
        if (!s->in_payload) {
            size_t k = FN_WIRE_HDR_SIZE - s->hdr_got;
            if (k > n) k = n;
            memcpy(s->hdr + s->hdr_got, p, k);
            s->hdr_got += k;
            p += k;
            n -= k;
            if (s->hdr_got < FN_WIRE_HDR_SIZE) return;
            uint32_t len = 0;
            uint8_t type = 0;
            uint16_t seq = 0;
            int rc = fn_wire_parse_header(s->hdr, &type, &seq, &len);
            if (rc == FN_WIRE_ETOOBIG && type == FN_WIRE_RESULT_OK) {
                violate(s, "Function.ResponseSizeTooLarge",
                        "Response payload size (%u bytes) exceeded maximum allowed payload size "
                        "(%u bytes).", len, FN_WIRE_MAX_RESULT);
                return;
            }
            if (rc == FN_WIRE_ETOOBIG) {
                violate(s, "Runtime.InvalidResult",
                        "protocol violation: frame of type %u with %u bytes exceeds its cap",
                        (unsigned)type, len);
                return;
            }
            if (rc) {
                violate(s, "Runtime.InvalidResult",
                        "protocol violation: handler wrote bytes that are not a sluice frame "
                        "(first byte 0x%02x); write output with sluice_log, not to stdout",
                        s->hdr[0]);
                return;
            }
            s->rtype = type;
            s->rstale = seq != s->w->seq;
            if (s->rstale) s->stray = 1; /* dropped below; the worker is replaced afterwards */
            s->rlen = len;
            s->rgot = 0;
            s->rbuf = sl_malloc(len + 1);
            if (!s->rbuf) {
                violate(s, "Sluice.OutOfMemory", "out of memory reading a %u-byte frame", len);
                return;
            }
            s->in_payload = 1;
        }
        size_t k = s->rlen - s->rgot;
        if (k > n) k = n;
        memcpy(s->rbuf + s->rgot, p, k);
        s->rgot += k;
        p += k;
        n -= k;
        if (s->rgot == s->rlen) {
            s->rbuf[s->rlen] = 0;
            s->in_payload = 0;
            s->hdr_got = 0;
            if (s->rstale) {
                sl_free(s->rbuf);
                s->rbuf = NULL;
            } else {
                handle_frame(s);
            }
        }
    }
}

/* Reads a peak-RSS figure (VmHWM) of a live process, in MiB rounded up. */
static uint32_t live_max_mb(pid_t pid)
{
    char path[64];
    char buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    const char *h = strstr(buf, "VmHWM:");
    if (!h) return 0;
    unsigned long kb = strtoul(h + 6, NULL, 10);
    return (uint32_t)((kb + 1023) / 1024);
}

static int set_error(fn_native_result *res, const char *type, const char *msg)
{
    res->function_error = 1;
    snprintf(res->error_type, sizeof res->error_type, "%s", type);
    snprintf(res->error_message, sizeof res->error_message, "%s", msg);
    cJSON *doc = cJSON_CreateObject();
    char *txt = NULL;
    if (doc && cJSON_AddStringToObject(doc, "errorMessage", msg) &&
        cJSON_AddStringToObject(doc, "errorType", type))
        txt = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    if (!txt) return SL_ENOMEM;
    sl_free(res->payload);
    res->payload_len = strlen(txt);
    res->payload = sl_strndup(txt, res->payload_len);
    cJSON_free(txt);
    return res->payload ? 0 : SL_ENOMEM;
}

/* Error raised by the runtime for this request: "RequestId: <id> Error: <what>", also logged
 * (like Lambda's own lines) so a sandbox violation is visible in the function's log. */
static int runtime_error(inv_state *s, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int runtime_error(inv_state *s, const char *type, const char *fmt, ...)
{
    char what[768];
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "RequestId: %s Error: %s", s->inv->request_id, what);
    log_append(&s->log, msg, strlen(msg));
    log_append(&s->log, "\n", 1);
    log_append(&s->log, type, strlen(type));
    log_append(&s->log, "\n", 1);
    return set_error(s->res, type, msg);
}

/* Peak memory of the handler process in MiB (see baseline_kb). */
static uint32_t handler_peak_mb(const fn_native_worker *w, const struct rusage *ru)
{
    if ((uint64_t)ru->ru_maxrss > w->baseline_kb)
        return (uint32_t)(((uint64_t)ru->ru_maxrss + 1023) / 1024);
    return w->last_hwm_mb;
}

/* Classifies a process that ended without a result (SANDBOX.md 2.6). */
static int classify_exit(inv_state *s, int status, const struct rusage *ru)
{
    fn_native_worker *w = s->w;
    uint64_t cpu_us = (uint64_t)ru->ru_utime.tv_sec * 1000000 + (uint64_t)ru->ru_utime.tv_usec +
                      (uint64_t)ru->ru_stime.tv_sec * 1000000 + (uint64_t)ru->ru_stime.tv_usec;
    uint64_t maxrss_mb = handler_peak_mb(w, ru);
    int near_limit = maxrss_mb * 10 >= (uint64_t)w->memory_mb * 9;
    if (WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        s->res->exit_status = code;
        if (code == 0)
            return runtime_error(s, "Runtime.InvalidResult",
                                 "Runtime exited without providing a result (exit status 0)");
        return runtime_error(s, "Runtime.ExitError", "Runtime exited with error: exit status %d",
                             code);
    }
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    s->res->term_signal = sig;
    const char *text = signal_text(sig);
    char num[32];
    if (!text) {
        snprintf(num, sizeof num, "signal %d", sig);
        text = num;
    }
    if (sig == SIGSYS)
        return runtime_error(s, "Runtime.SeccompViolation",
                             "Runtime exited with error: signal: %s (sandbox violation: a "
                             "system call outside the '%s' profile was attempted)",
                             text, sbx_profile_name(w->profile));
    /* RLIMIT_CPU is soft = hard, so the kernel sends SIGKILL (SIGXCPU only if soft < hard) */
    if (sig == SIGXCPU || (sig == SIGKILL && cpu_us + 100000 >= w->cpu_limit_s * 1000000))
        return runtime_error(s, "Sandbox.Timedout",
                             "Task timed out after %.2f seconds (CPU time limit: %s)",
                             w->timeout_ms / 1000.0, text);
    if (near_limit && (sig == SIGSEGV || sig == SIGBUS || sig == SIGKILL || sig == SIGABRT))
        return runtime_error(s, "Runtime.OutOfMemory",
                             "Runtime exited with error: signal: %s (memory limit of %u MB "
                             "reached, max memory used %llu MB)",
                             text, w->memory_mb, (unsigned long long)maxrss_mb);
    return runtime_error(s, "Runtime.ExitError", "Runtime exited with error: signal: %s", text);
}

static int finish_result(inv_state *s)
{
    fn_native_result *res = s->res;
    if (s->result_type == FN_WIRE_RESULT_ERROR) {
        const char *t;
        size_t tl;
        const uint8_t *m;
        size_t ml;
        char type[64];
        if (fn_wire_pair_decode(s->result, s->result_len, &t, &tl, &m, &ml))
            return runtime_error(s, "Runtime.InvalidResult",
                                 "protocol violation: malformed error frame");
        snprintf(type, sizeof type, "%.*s", (int)(tl < 63 ? tl : 63), tl ? t : "HandlerError");
        char *msg = sl_strndup((const char *)m, ml);
        if (!msg) return SL_ENOMEM;
        int rc = set_error(res, type, msg);
        sl_free(msg);
        return rc;
    }
    const char *json = (const char *)s->result;
    size_t len = s->result_len;
    while (len && (json[0] == ' ' || json[0] == '\n' || json[0] == '\t' || json[0] == '\r')) {
        json++;
        len--;
    }
    if (len == 0) {
        json = "null";
        len = 4;
    }
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    int valid = doc != NULL;
    if (valid) {
        while (end < json + len && (*end == ' ' || *end == '\n' || *end == '\t' || *end == '\r'))
            end++;
        valid = end == json + len;
    }
    cJSON_Delete(doc);
    if (!valid)
        return runtime_error(s, "Runtime.InvalidResult",
                             "handler returned a result that is not valid JSON");
    res->function_error = 0;
    res->payload = sl_strndup(json, len);
    res->payload_len = len;
    return res->payload ? 0 : SL_ENOMEM;
}

/* Throws away anything a worker wrote between invocations; returns 0 if the worker is still
 * usable, -1 if it must be replaced (stray protocol bytes, or it has exited). */
static int check_idle_worker(fn_native_worker *w)
{
    uint8_t junk[4096];
    for (int i = 0;; i++) {
        if (i == 256) return -1; /* still writing 1 MiB later: a thread keeps flooding */
        ssize_t n = read(w->err_fd, junk, sizeof junk);
        if (n > 0) continue;
        if (n == 0) return -1;
        if (errno == EINTR) continue;
        break;
    }
    ssize_t n = read(w->out_fd, junk, 1);
    if (n >= 0) return -1; /* stray bytes (never attributed to this request) or EOF */
    if (errno != EAGAIN) return -1;
    struct pollfd pf = {w->pidfd, POLLIN, 0};
    if (poll(&pf, 1, 0) != 0) return -1;
    return 0;
}

int fn_native_invoke(fn_native_worker *w, const uint8_t *event, size_t len,
                     const fn_native_invocation *inv, fn_native_result *res)
{
    inv_state s;
    memset(&s, 0, sizeof s);
    memset(res, 0, sizeof *res);
    res->exit_status = res->term_signal = -1;
    if (!inv || !inv->request_id || (!event && len)) return SL_EINVAL;
    if (len > FN_WIRE_MAX_RESULT) return SL_ETOOBIG;
    s.w = w;
    s.inv = inv;
    s.res = res;

    sigset_t pipe_set, old_mask;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);

    int rc = 0;
    int status = 0;
    struct rusage ru;
    int dead = 0;
    int timed_out = 0;
    int out_eof = 0, err_eof = 0, exited = 0;
    uint8_t *chunk = NULL;
    memset(&ru, 0, sizeof ru);

    if (w->pid > 0 && check_idle_worker(w) != 0) kill_and_reap(w, NULL, NULL);
    if (w->pid <= 0) {
        sl_err err;
        char type[64];
        rc = spawn_process(w, type, sizeof type, &err);
        if (rc == SL_EINVAL) { /* the launcher refused: a function error (e.g. bad handler) */
            res->worker_dead = 1;
            res->cold_start = 1;
            rc = runtime_error(&s, type, "%s", err.msg);
            goto out;
        }
        if (rc) goto out;
    }
    if (w->fresh) {
        res->cold_start = 1;
        res->init_us = w->spawn_us;
        w->fresh = 0;
    }

    uint64_t t0 = mono_us();
    int64_t now_ms = sl_now_ms();
    int64_t budget_ms = w->timeout_ms;
    if (inv->deadline_ms > 0 && inv->deadline_ms - now_ms < budget_ms)
        budget_ms = inv->deadline_ms - now_ms;
    if (budget_ms < 0) budget_ms = 0;
    uint64_t deadline_us = t0 + (uint64_t)budget_ms * 1000;

    fn_wire_invoke iv = {
        .deadline_ms = now_ms + budget_ms,
        .memory_mb = w->memory_mb,
        .request_id = inv->request_id,
        .request_id_len = strlen(inv->request_id),
        .function_name = w->function_name,
        .function_name_len = strlen(w->function_name),
        .function_version = w->function_version,
        .function_version_len = strlen(w->function_version),
        .invoked_arn = inv->invoked_arn ? inv->invoked_arn : "",
        .invoked_arn_len = inv->invoked_arn ? strlen(inv->invoked_arn) : 0,
        .event = event,
        .event_len = len,
    };
    size_t flen = FN_WIRE_HDR_SIZE + fn_wire_invoke_size(&iv);
    s.wbuf = sl_malloc(flen);
    chunk = sl_malloc(IO_CHUNK);
    if (!s.wbuf || !chunk) {
        rc = SL_ENOMEM;
        goto out;
    }
    if (++w->seq == 0) w->seq = 1;
    long fl = fn_wire_invoke_encode(&iv, w->seq, s.wbuf, flen);
    if (fl < 0) {
        rc = SL_ETOOBIG;
        goto out;
    }
    s.wlen = (size_t)fl;

    while (!s.done && !s.violation) {
        uint64_t now = mono_us();
        if (now >= deadline_us) {
            timed_out = 1;
            break;
        }
        if (out_eof && err_eof && exited) break;
        struct pollfd pf[4];
        int idx_out = -1, idx_err = -1, idx_in = -1, idx_pid = -1, np = 0;
        if (!out_eof) pf[idx_out = np++] = (struct pollfd){w->out_fd, POLLIN, 0};
        if (!err_eof) pf[idx_err = np++] = (struct pollfd){w->err_fd, POLLIN, 0};
        if (s.woff < s.wlen && !s.write_broken)
            pf[idx_in = np++] = (struct pollfd){w->in_fd, POLLOUT, 0};
        if (!exited) pf[idx_pid = np++] = (struct pollfd){w->pidfd, POLLIN, 0};
        uint64_t left_ms = (deadline_us - now + 999) / 1000;
        /* The first SPIN_US of an invocation: poll without sleeping. A warm handler usually
         * answers within that window, and not sleeping spares the wake-up of an idle vCPU
         * (tens of microseconds on a VM; see handler_lib.c). */
        int timeout = now - t0 < SPIN_US ? 0 : left_ms > 60000 ? 60000 : (int)left_ms;
        int pr = poll(pf, (nfds_t)np, timeout);
        if (pr < 0) {
            if (errno == EINTR) continue;
            rc = sl_err_set(NULL, -errno, "poll");
            break;
        }
        if (idx_in >= 0 && pf[idx_in].revents) {
            ssize_t n = write(w->in_fd, s.wbuf + s.woff, s.wlen - s.woff);
            if (n > 0) s.woff += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR) s.write_broken = 1;
        }
        if (idx_err >= 0 && pf[idx_err].revents) {
            ssize_t n = read(w->err_fd, chunk, IO_CHUNK);
            if (n > 0) log_text(&s.log, chunk, (size_t)n, 1);
            else if (n == 0 || (errno != EAGAIN && errno != EINTR)) err_eof = 1;
        }
        if (idx_out >= 0 && pf[idx_out].revents) {
            ssize_t n = read(w->out_fd, chunk, IO_CHUNK);
            if (n > 0) feed(&s, chunk, (size_t)n);
            else if (n == 0 || (errno != EAGAIN && errno != EINTR)) out_eof = 1;
        }
        if (idx_pid >= 0 && pf[idx_pid].revents) exited = 1;
    }
    if (s.write_broken) {
        /* EPIPE raised a SIGPIPE for this thread while it was blocked: consume it. */
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) > 0) {
        }
    }
    if (rc) goto out;

    /* stderr the handler wrote before its result may still sit in the pipe */
    if (!err_eof && w->err_fd >= 0) {
        for (int i = 0; i < 16; i++) { /* bounded: a thread may still be writing */
            ssize_t n = read(w->err_fd, chunk, IO_CHUNK);
            if (n > 0) {
                log_text(&s.log, chunk, (size_t)n, 1);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            break;
        }
    }
    res->duration_us = mono_us() - t0;

    if (timed_out) {
        kill_and_reap(w, &status, &ru);
        dead = 1;
        res->term_signal = SIGKILL;
        rc = runtime_error(&s, "Sandbox.Timedout", "Task timed out after %.2f seconds",
                           w->timeout_ms / 1000.0);
    } else if (s.violation) {
        kill_and_reap(w, &status, &ru);
        dead = 1;
        if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL) {
            rc = classify_exit(&s, status, &ru); /* it died on its own first (e.g. SIGSYS) */
        } else {
            res->term_signal = SIGKILL;
            rc = runtime_error(&s, s.vtype, "%s", s.vmsg);
        }
    } else if (s.done) {
        rc = finish_result(&s);
        if (exited || out_eof || s.stray) {
            kill_and_reap(w, &status, &ru);
            dead = 1;
        }
    } else {
        reap(w, &status, &ru); /* out/err EOF and the pidfd said it exited */
        dead = 1;
        rc = classify_exit(&s, status, &ru);
    }

    if (dead) {
        res->max_memory_mb = handler_peak_mb(w, &ru);
    } else {
        res->max_memory_mb = w->last_hwm_mb = live_max_mb(w->pid);
        w->proc_invocations++;
        if (w->cold || w->proc_invocations >= w->max_invocations) {
            kill_and_reap(w, NULL, NULL); /* retired (or --cold): the next call starts fresh */
            dead = 1;
        }
    }
    res->worker_dead = dead;
    w->stats.invocations++;

out:
    if (rc == 0) {
        res->log = s.log.p;
        res->log_len = s.log.n;
        res->log_truncated = s.log.truncated;
        s.log.p = NULL;
    } else {
        sl_free(res->payload);
        memset(res, 0, sizeof *res);
        res->exit_status = res->term_signal = -1;
        if (w->pid > 0 && !s.done) kill_and_reap(w, NULL, NULL);
    }
    sl_free(s.log.p);
    sl_free(s.wbuf);
    sl_free(s.rbuf);
    sl_free(s.result);
    sl_free(chunk);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    return rc;
}
