/* test_functions_native.c — native handlers end to end: launcher, seccomp, rlimits, warm workers,
 * protocol, host calls, and hostile handlers (tests/handlers/abuse.c). Every attack asserts the
 * documented failure (errorType, SANDBOX.md 2.6), that the next invocation works in a fresh
 * worker, and that nothing was written outside the function's area.
 *
 * The launcher is $SLUICE_LAUNCHER, else $SLUICE_BIN if it answers `__launch --version`, else
 * <build>/sluice-launch (the stand-alone launcher); handlers are in <build>/tests/handlers/. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "functions/native.h"
#include "functions/wire.h"

static char g_launcher[1024];
static char g_handlers[1024];
static char g_base[512];  /* 0755 temp dir: code dir + escape markers live here */
static char g_code[1024];
static int g_leaky_fd = -1;     /* opened without O_CLOEXEC: must not reach handlers */

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%.1000s/%.64s", g_handlers, name);
}

static fn_native_worker *spawn_opts(const char *handler, const char *profile, uint32_t timeout_ms,
                                    int cold, uint32_t max_inv, const char *const *env)
{
    char exe[PATH_MAX];
    path_of(exe, sizeof exe, handler);
    fn_native_spec sp = {
        .launcher = g_launcher,
        .executable = exe,
        .code_dir = g_code,
        .function_name = "native-test",
        .timeout_ms = timeout_ms,
        .env = env,
        .profile = profile,
        .cold = cold,
        .max_invocations = max_inv,
    };
    sl_err err = {0, ""};
    fn_native_worker *w = NULL;
    int rc = fn_native_spawn(&w, &sp, &err);
    if (rc) fprintf(stderr, "spawn failed: %d %s\n", rc, err.msg);
    assert_int_equal(rc, 0);
    return w;
}

static fn_native_worker *spawn_abuse(uint32_t timeout_ms)
{
    return spawn_opts("abuse", NULL, timeout_ms, 0, 0, NULL);
}

static void invoke(fn_native_worker *w, const char *event, fn_native_result *res)
{
    fn_native_invocation inv = {.request_id = "11111111-2222-3333-4444-555555555555",
                                .invoked_arn = "arn:aws:lambda:us-east-1:000000000000:function:x"};
    assert_int_equal(fn_native_invoke(w, (const uint8_t *)event, strlen(event), &inv, res), 0);
}

static void attack(fn_native_worker *w, const char *name, fn_native_result *res)
{
    char ev[2048];
    snprintf(ev, sizeof ev, "{\"attack\":\"%.64s\",\"path\":\"%.500s/escape-%.64s\"}", name,
             g_base, name);
    invoke(w, ev, res);
}

/* Nothing but the code dir itself may exist under the base dir, and the code dir stays empty. */
static void assert_nothing_written(void)
{
    int entries = 0;
    DIR *d = opendir(g_base);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (strcmp(e->d_name, "code")) fprintf(stderr, "unexpected file %s\n", e->d_name);
        assert_string_equal(e->d_name, "code");
    }
    closedir(d);
    d = opendir(g_code);
    assert_non_null(d);
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) entries++;
    closedir(d);
    assert_int_equal(entries, 0);
    assert_int_equal(access("/tmp/sluice-pwned", F_OK), -1);
}

/* The documented failure, then a healthy fresh worker. */
static void expect_failure_then_recovery(fn_native_worker *w, const char *name, const char *type,
                                         const char *msg_part)
{
    fn_native_result res;
    attack(w, name, &res);
    if (!res.function_error || strcmp(res.error_type, type))
        fprintf(stderr, "attack %s: got error=%d type=%s payload=%s\n", name, res.function_error,
                res.error_type, res.payload ? res.payload : "");
    assert_int_equal(res.function_error, 1);
    assert_string_equal(res.error_type, type);
    if (msg_part) assert_non_null(strstr(res.error_message, msg_part));
    assert_non_null(strstr(res.payload, "\"errorType\""));
    int dead = res.worker_dead;
    fn_native_result_clear(&res);

    fn_native_stats before;
    fn_native_get_stats(w, &before);
    attack(w, "ok", &res);
    assert_int_equal(res.function_error, 0);
    assert_string_equal(res.payload, "{\"ok\":1}");
    if (dead) assert_int_equal(res.cold_start, 1);
    fn_native_result_clear(&res);
    fn_native_stats after;
    fn_native_get_stats(w, &after);
    if (dead) assert_int_equal(after.spawns, before.spawns + 1);
    assert_nothing_written();
}

/* ---- benign behaviour ---- */

static void test_native_echo_decodes_records(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_opts("echo", NULL, 3000, 0, 0, NULL);
    fn_native_result res;
    invoke(w,
           "{\"Records\":[{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\",\"partitionKey\":"
           "\"sensor-\\u00e9\",\"sequenceNumber\":\"4964\",\"data\":\"aGVsbG8gd29ybGQ=\","
           "\"approximateArrivalTimestamp\":1714644901.421},\"eventSource\":\"aws:kinesis\","
           "\"eventID\":\"shardId-000000000000:4964\",\"nested\":{\"a\":[1,2,{\"b\":null}]}},"
           "{\"kinesis\":{\"partitionKey\":\"k2\",\"data\":\"\"}}]}",
           &res);
    assert_int_equal(res.function_error, 0);
    assert_non_null(strstr(res.payload, "\"records\":2"));
    assert_non_null(strstr(res.payload, "\"key\":\"sensor-\xc3\xa9\""));
    assert_non_null(strstr(res.payload, "\"data\":\"hello world\",\"len\":11"));
    assert_non_null(strstr(res.payload, "\"arrival\":1714644901.421"));
    assert_non_null(strstr(res.payload, "\"event_id\":\"shardId-000000000000:4964\""));
    assert_non_null(strstr(res.payload, "\"request_id\":\"11111111-2222-3333-4444-555555555555\""));
    assert_non_null(strstr(res.payload, "\"function\":\"native-test\""));
    assert_non_null(strstr(res.payload, "\"version\":\"$LATEST\",\"memory\":128"));
    assert_non_null(strstr(res.payload, "\"remaining_positive\":true"));
    assert_non_null(strstr(res.log, "echo: invocation 1 with 2 records"));
    assert_non_null(strstr(res.log, "printf goes to the log"));
    assert_true(res.max_memory_mb > 0);
    fn_native_result_clear(&res);

    invoke(w, "{\"Records\":[{\"kinesis\":{\"data\":\"!!!not base64\"}}]}", &res);
    assert_int_equal(res.function_error, 1);
    assert_string_equal(res.error_type, "Runtime.InvalidEvent");
    fn_native_result_clear(&res);

    invoke(w, "[1,2,3]", &res); /* not a Kinesis event: no records, still invoked */
    assert_int_equal(res.function_error, 0);
    assert_non_null(strstr(res.payload, "\"records\":0"));
    fn_native_result_clear(&res);
    fn_native_free(w);
}

/* A 5.6 MB event (4 MiB record) crosses the 64 KiB pipe in many non-blocking writes. */
static void test_native_large_event(void **state)
{
    (void)state;
    size_t raw = (size_t)4 << 20;
    size_t b64 = (raw + 2) / 3 * 4;
    const char *head = "{\"Records\":[{\"kinesis\":{\"partitionKey\":\"big\",\"data\":\"";
    const char *tail = "\"}}]}";
    size_t n = strlen(head) + b64 + strlen(tail);
    char *ev = malloc(n + 1);
    assert_non_null(ev);
    strcpy(ev, head);
    char *p = ev + strlen(head);
    for (size_t i = 0; i < raw / 3; i++, p += 4) memcpy(p, "QUJD", 4); /* "ABC" */
    memcpy(p, "QQ==", 4); /* raw % 3 == 1: one more "A" */
    strcpy(p + 4, tail);
    fn_native_worker *w = spawn_opts("echo", NULL, 10000, 0, 0, NULL);
    fn_native_result res;
    fn_native_invocation inv = {.request_id = "big"};
    assert_int_equal(fn_native_invoke(w, (const uint8_t *)ev, n, &inv, &res), 0);
    assert_int_equal(res.function_error, 0);
    assert_non_null(strstr(res.payload, "\"key\":\"big\""));
    assert_non_null(strstr(res.payload, "\"len\":4194304"));
    assert_true(res.max_memory_mb >= 4);
    fn_native_result_clear(&res);
    free(ev);
    fn_native_free(w);
}

static void test_native_warm_worker_reused(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_opts("echo", NULL, 3000, 0, 0, NULL);
    fn_native_stats st;
    fn_native_get_stats(w, &st);
    pid_t pid = st.pid;
    assert_true(pid > 0);
    for (int i = 1; i <= 3; i++) {
        fn_native_result res;
        char want[32];
        invoke(w, "{}", &res);
        snprintf(want, sizeof want, "\"count\":%d,", i);
        assert_non_null(strstr(res.payload, want));
        assert_int_equal(res.cold_start, i == 1);
        if (i == 1) assert_true(res.init_us > 0);
        assert_int_equal(res.worker_dead, 0);
        fn_native_result_clear(&res);
    }
    fn_native_get_stats(w, &st);
    assert_int_equal(st.spawns, 1);
    assert_int_equal(st.invocations, 3);
    assert_int_equal(st.pid, pid);
    fn_native_free(w);
}

static void test_native_cold_mode_and_retirement(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_opts("echo", NULL, 3000, 1, 0, NULL);
    for (int i = 0; i < 2; i++) {
        fn_native_result res;
        invoke(w, "{}", &res);
        assert_non_null(strstr(res.payload, "\"count\":1,"));
        assert_int_equal(res.cold_start, 1);
        assert_int_equal(res.worker_dead, 1);
        fn_native_result_clear(&res);
    }
    fn_native_free(w);

    w = spawn_opts("echo", NULL, 3000, 0, 2, NULL); /* retired after 2 invocations */
    const char *want[] = {"\"count\":1,", "\"count\":2,", "\"count\":1,"};
    for (int i = 0; i < 3; i++) {
        fn_native_result res;
        invoke(w, "{}", &res);
        assert_non_null(strstr(res.payload, want[i]));
        assert_int_equal(res.cold_start, i != 1);
        fn_native_result_clear(&res);
    }
    fn_native_stats st;
    fn_native_get_stats(w, &st);
    assert_int_equal(st.spawns, 2);
    fn_native_free(w);
}

static void test_native_results_and_handler_errors(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_opts("echo", NULL, 3000, 0, 0, NULL);
    fn_native_result res;
    invoke(w, "{\"raise\":1}", &res);
    assert_int_equal(res.function_error, 1);
    assert_string_equal(res.error_type, "CustomError");
    assert_string_equal(res.error_message, "raised 42");
    assert_string_equal(res.payload,
                        "{\"errorMessage\":\"raised 42\",\"errorType\":\"CustomError\"}");
    assert_int_equal(res.worker_dead, 0);
    fn_native_result_clear(&res);

    invoke(w, "{\"return_nothing\":1}", &res);
    assert_int_equal(res.function_error, 0);
    assert_string_equal(res.payload, "null");
    fn_native_result_clear(&res);

    invoke(w, "{\"bad_json\":1}", &res);
    assert_int_equal(res.function_error, 1);
    assert_string_equal(res.error_type, "Runtime.InvalidResult");
    assert_int_equal(res.worker_dead, 0);
    fn_native_result_clear(&res);

    invoke(w,
           "{\"fail_odd\":1,\"Records\":[{\"kinesis\":{\"sequenceNumber\":\"100\",\"data\":\"\"}},"
           "{\"kinesis\":{\"sequenceNumber\":\"101\",\"data\":\"\"}},"
           "{\"kinesis\":{\"sequenceNumber\":\"102\",\"data\":\"\"}}]}",
           &res);
    assert_int_equal(res.function_error, 0);
    assert_string_equal(res.payload, "{\"batchItemFailures\":[{\"itemIdentifier\":\"100\"},"
                                     "{\"itemIdentifier\":\"102\"}]}");
    fn_native_result_clear(&res);

    invoke(w, "{}", &res); /* still the same warm worker */
    assert_non_null(strstr(res.payload, "\"count\":5,"));
    fn_native_result_clear(&res);
    fn_native_free(w);
}

typedef struct host_log {
    int calls;
    char last_op[32];
    char last_req[512];
    int fail;
} host_log;

static int fake_host(void *ctx, const char *op, const char *req, size_t req_len, char **resp,
                     size_t *resp_len, char *err_type, size_t type_len, char *err_msg,
                     size_t msg_len)
{
    host_log *h = ctx;
    h->calls++;
    snprintf(h->last_op, sizeof h->last_op, "%s", op);
    snprintf(h->last_req, sizeof h->last_req, "%.*s", (int)req_len, req);
    if (h->fail) {
        snprintf(err_type, type_len, "ResourceNotFoundException");
        snprintf(err_msg, msg_len, "Stream out not found");
        return 1;
    }
    const char *r = !strcmp(op, "put_record")
                        ? "{\"ShardId\":\"shardId-000000000000\",\"SequenceNumber\":\"4965\"}"
                        : "{\"FailedRecordCount\":1,\"Records\":[{},{}]}";
    *resp = sl_strdup(r);
    *resp_len = strlen(r);
    return 0;
}

static void test_native_host_calls(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_opts("echo", NULL, 3000, 0, 0, NULL);
    host_log h = {0, "", "", 0};
    fn_native_invocation inv = {.request_id = "r1", .host_call = fake_host, .host_ctx = &h};
    const char *ev = "{\"put_stream\":\"out\"}";
    fn_native_result res;
    assert_int_equal(fn_native_invoke(w, (const uint8_t *)ev, strlen(ev), &inv, &res), 0);
    assert_int_equal(res.function_error, 0);
    assert_string_equal(res.payload, "{\"seq\":\"4965\",\"failed\":1}");
    assert_int_equal(h.calls, 2);
    assert_string_equal(h.last_op, "put_records");
    assert_string_equal(h.last_req, "{\"StreamName\":\"out\",\"Records\":[{\"PartitionKey\":"
                                    "\"a\",\"Data\":\"eA==\"},{\"PartitionKey\":\"b\","
                                    "\"Data\":\"eXk=\"}]}");
    fn_native_result_clear(&res);

    h.fail = 1;
    assert_int_equal(fn_native_invoke(w, (const uint8_t *)ev, strlen(ev), &inv, &res), 0);
    assert_int_equal(res.function_error, 1);
    assert_string_equal(res.error_type, "PutFailed");
    assert_non_null(strstr(res.error_message, "ResourceNotFoundException: Stream out not found"));
    assert_int_equal(res.worker_dead, 0);
    fn_native_result_clear(&res);

    inv.host_call = NULL;
    assert_int_equal(fn_native_invoke(w, (const uint8_t *)ev, strlen(ev), &inv, &res), 0);
    assert_int_equal(res.function_error, 1);
    assert_non_null(strstr(res.error_message, "Sluice.HostUnavailable"));
    fn_native_result_clear(&res);
    fn_native_free(w);
}

static void test_native_spawn_refusals(void **state)
{
    (void)state;
    char exe[PATH_MAX];
    path_of(exe, sizeof exe, "echo");
    fn_native_spec sp = {.launcher = g_launcher, .executable = "/bin/true", .code_dir = g_code,
                         .function_name = "f"};
    sl_err err = {0, ""};
    fn_native_worker *w = NULL;
    assert_int_equal(fn_native_spawn(&w, &sp, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "dynamically linked"));
    sp.executable = "/nonexistent/handler";
    assert_int_equal(fn_native_spawn(&w, &sp, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "No such file"));
    sp.executable = exe;
    sp.profile = "root";
    assert_int_equal(fn_native_spawn(&w, &sp, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "unknown sandbox profile"));
    sp.profile = NULL;
    const char *bad_env[] = {"=x", NULL};
    sp.env = bad_env;
    assert_int_equal(fn_native_spawn(&w, &sp, &err), SL_EINVAL);
    sp.env = NULL;
    sp.code_dir = "/nonexistent-code-dir";
    assert_int_equal(fn_native_spawn(&w, &sp, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "chdir"));
    sp.code_dir = g_code;
    sp.launcher = "/nonexistent/sluice";
    assert_int_equal(fn_native_spawn(&w, &sp, &err), -ENOENT);
    assert_null(w);
}

static void test_native_invoke_argument_errors(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_opts("echo", NULL, 3000, 0, 0, NULL);
    fn_native_result res;
    fn_native_invocation inv = {.request_id = NULL};
    assert_int_equal(fn_native_invoke(w, (const uint8_t *)"{}", 2, &inv, &res), SL_EINVAL);
    inv.request_id = "r";
    size_t big = FN_WIRE_MAX_RESULT + 1;
    char *ev = malloc(big);
    assert_non_null(ev);
    memset(ev, ' ', big);
    assert_int_equal(fn_native_invoke(w, (const uint8_t *)ev, big, &inv, &res), SL_ETOOBIG);
    free(ev);
    /* a deadline already in the past times out at once */
    inv.deadline_ms = sl_now_ms() - 1000;
    assert_int_equal(fn_native_invoke(w, (const uint8_t *)"{}", 2, &inv, &res), 0);
    assert_string_equal(res.error_type, "Sandbox.Timedout");
    fn_native_result_clear(&res);
    fn_native_free(w);
}

static void test_native_missing_executable_after_crash(void **state)
{
    (void)state;
    char src[PATH_MAX], dst[PATH_MAX];
    path_of(src, sizeof src, "abuse");
    snprintf(dst, sizeof dst, "%.500s/abuse-copy", g_base);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, dst);
    assert_int_equal(system(cmd), 0);
    fn_native_spec sp = {.launcher = g_launcher, .executable = dst, .code_dir = g_code,
                         .function_name = "f"};
    sl_err err = {0, ""};
    fn_native_worker *w = NULL;
    assert_int_equal(fn_native_spawn(&w, &sp, &err), 0);
    fn_native_result res;
    invoke(w, "{\"attack\":\"segv\"}", &res);
    assert_string_equal(res.error_type, "Runtime.ExitError");
    fn_native_result_clear(&res);
    assert_int_equal(unlink(dst), 0);
    invoke(w, "{\"attack\":\"ok\"}", &res);
    assert_int_equal(res.function_error, 1);
    assert_string_equal(res.error_type, "Runtime.InvalidEntrypoint");
    assert_int_equal(res.worker_dead, 1);
    fn_native_result_clear(&res);
    fn_native_free(w);
}

/* ---- abuse: each attack, its documented failure, then recovery ---- */

static void test_native_abuse_fork_bomb(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_abuse(3000);
    expect_failure_then_recovery(w, "fork", "ForkFailed", "Operation not permitted");
    fn_native_free(w);
}

static void test_native_abuse_execve(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_abuse(3000);
    expect_failure_then_recovery(w, "exec", "Runtime.SeccompViolation", "bad system call");
    fn_native_free(w);
}

static void test_native_abuse_files(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_abuse(3000);
    expect_failure_then_recovery(w, "open_shadow", "Runtime.SeccompViolation", NULL);
    expect_failure_then_recovery(w, "write_outside", "Runtime.SeccompViolation", NULL);
    expect_failure_then_recovery(w, "bigfile", "Runtime.SeccompViolation", NULL);
    expect_failure_then_recovery(w, "read_fd3", "Runtime.SeccompViolation", NULL);
    fn_native_free(w);
}

static void test_native_abuse_network_without_profile(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_abuse(3000);
    expect_failure_then_recovery(w, "socket", "Runtime.SeccompViolation", "'stdio' profile");
    expect_failure_then_recovery(w, "unix_socket", "Runtime.SeccompViolation", NULL);
    fn_native_free(w);
}

static void test_native_network_out_profile(void **state)
{
    (void)state;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(ls >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(ls, 4), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
    fn_native_worker *w = spawn_opts("abuse", "network-out", 3000, 0, 0, NULL);
    char ev[128];
    snprintf(ev, sizeof ev, "{\"attack\":\"socket\",\"port\":\"%u\"}", ntohs(sa.sin_port));
    fn_native_result res;
    invoke(w, ev, &res);
    assert_int_equal(res.function_error, 0);
    assert_non_null(strstr(res.payload, "\"connect\":0"));
    fn_native_result_clear(&res);
    expect_failure_then_recovery(w, "unix_socket", "Runtime.SeccompViolation",
                                 "'network-out' profile");
    expect_failure_then_recovery(w, "exec", "Runtime.SeccompViolation", NULL);
    fn_native_free(w);
    close(ls);
}

static void test_native_abuse_ptrace_and_kill(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_abuse(3000);
    expect_failure_then_recovery(w, "ptrace", "Runtime.SeccompViolation", NULL);
    expect_failure_then_recovery(w, "kill_parent", "Runtime.SeccompViolation", NULL);
    expect_failure_then_recovery(w, "kill_all", "Runtime.SeccompViolation", NULL);
    fn_native_free(w);
}

static void test_native_abuse_privileged_calls(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_abuse(3000);
    const char *calls[] = {"mount", "unshare", "setuid", "personality", "keyctl",
                           "io_uring", "x32", "mmap_exec", "mprotect_exec"};
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
        expect_failure_then_recovery(w, calls[i], "Runtime.SeccompViolation", NULL);
    fn_native_free(w);
}

static void test_native_abuse_timeouts(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_abuse(300);
    expect_failure_then_recovery(w, "loop", "Sandbox.Timedout",
                                 "Task timed out after 0.30 seconds");
    expect_failure_then_recovery(w, "sleep", "Sandbox.Timedout", NULL);
    expect_failure_then_recovery(w, "close_stdout_hang", "Sandbox.Timedout", NULL);
    fn_native_free(w);
}

static void test_native_abuse_memory_bomb(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_abuse(10000);
    expect_failure_then_recovery(w, "membomb", "Runtime.OutOfMemory", "memory limit of 128 MB");
    fn_native_free(w);
}

static void test_native_abuse_output_floods(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_abuse(10000);
    expect_failure_then_recovery(w, "huge_frame", "Function.ResponseSizeTooLarge", "6291456");
    expect_failure_then_recovery(w, "big_result", "Function.ResponseSizeTooLarge", NULL);
    expect_failure_then_recovery(w, "stdout_garbage", "Runtime.InvalidResult",
                                 "not a sluice frame");

    fn_native_result res;
    attack(w, "log_flood", &res);
    assert_int_equal(res.function_error, 0); /* capped by the handler library itself */
    assert_true(res.log_len <= FN_NATIVE_LOG_CAP + 128);
    assert_non_null(strstr(res.log, "0 LLLL"));
    assert_non_null(strstr(res.log, "log truncated"));
    assert_null(strstr(res.log, "99999 L"));
    fn_native_result_clear(&res);

    attack(w, "stderr_flood", &res);
    assert_int_equal(res.function_error, 0);
    assert_string_equal(res.payload, "{\"written\":320}");
    assert_int_equal(res.log_truncated, 1);
    assert_true(res.log_len <= FN_NATIVE_LOG_CAP + 128);
    fn_native_result_clear(&res);

    attack(w, "escape_log", &res); /* one log call stays one line; no terminal escapes */
    assert_non_null(strstr(res.log, "line1\\nEND RequestId: forged\\x1b[31m"));
    assert_null(strchr(res.log, 0x1b));
    fn_native_result_clear(&res);
    fn_native_free(w);
}

static void test_native_abuse_frame_after_result(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_abuse(3000);
    fn_native_result res;
    attack(w, "extra_after_result", &res);
    assert_int_equal(res.function_error, 0);
    assert_string_equal(res.payload, "{\"second\":1}"); /* the stray frame was dropped */
    assert_int_equal(res.worker_dead, 1);                /* and the worker replaced */
    fn_native_result_clear(&res);
    attack(w, "ok", &res); /* the stray frame is never taken as this request's answer */
    assert_string_equal(res.payload, "{\"ok\":1}");
    assert_int_equal(res.cold_start, 1);
    fn_native_result_clear(&res);
    fn_native_free(w);
}

static void test_native_abuse_crashes(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_abuse(3000);
    expect_failure_then_recovery(w, "segv", "Runtime.ExitError", "signal: segmentation fault");
    expect_failure_then_recovery(w, "abort", "Runtime.ExitError", "signal: aborted");
    expect_failure_then_recovery(w, "exit3", "Runtime.ExitError", "exit status 3");
    expect_failure_then_recovery(w, "exit0", "Runtime.InvalidResult", "without providing");
    fn_native_free(w);
}

static void test_native_no_inherited_fds(void **state)
{
    (void)state;
    assert_true(g_leaky_fd >= 3);
    assert_int_equal(fcntl(g_leaky_fd, F_GETFD) & FD_CLOEXEC, 0);
    fn_native_worker *w = spawn_abuse(3000);
    fn_native_result res;
    attack(w, "fds", &res);
    assert_int_equal(res.function_error, 0);
    assert_string_equal(res.payload, "{\"open\":[]}");
    fn_native_result_clear(&res);
    fn_native_free(w);
}

static void test_native_environment_cleared(void **state)
{
    (void)state;
    const char *env[] = {"MY_SETTING=42", "AWS_REGION=eu-evil-1", NULL};
    fn_native_worker *w = spawn_opts("abuse", NULL, 3000, 0, 0, env);
    fn_native_result res;
    attack(w, "env", &res);
    assert_int_equal(res.function_error, 0);
    assert_null(strstr(res.payload, "SLUICE_TEST_SECRET"));
    assert_null(strstr(res.payload, "hunter2"));
    assert_null(strstr(res.payload, "PATH="));
    assert_null(strstr(res.payload, "eu-evil-1"));
    assert_non_null(strstr(res.payload, "\"MY_SETTING=42\""));
    assert_non_null(strstr(res.payload, "\"AWS_REGION=us-east-1\""));
    assert_non_null(strstr(res.payload, "\"AWS_LAMBDA_FUNCTION_NAME=native-test\""));
    assert_non_null(strstr(res.payload, "\"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128\""));
    assert_non_null(strstr(res.payload, "\"LAMBDA_TASK_ROOT="));
    assert_non_null(strstr(res.payload, "\"AWS_LAMBDA_LOG_STREAM_NAME="));
    if (geteuid() == 0) assert_non_null(strstr(res.payload, "\"uid\":65534"));
    fn_native_result_clear(&res);
    fn_native_free(w);
}

static void test_native_errno_probes_and_threads(void **state)
{
    (void)state;
    fn_native_worker *w = spawn_abuse(3000);
    fn_native_result res;
    attack(w, "tiocsti", &res);
    assert_string_equal(res.payload, "{\"errno\":25}"); /* ENOTTY */
    fn_native_result_clear(&res);
    attack(w, "clone3", &res);
    assert_string_equal(res.payload, "{\"errno\":38}"); /* ENOSYS */
    fn_native_result_clear(&res);
    attack(w, "thread", &res);
    assert_string_equal(res.payload, "{\"pthread_create\":1}"); /* EPERM: no threads in stdio */
    fn_native_result_clear(&res);
    fn_native_free(w);

    w = spawn_opts("abuse", "threads", 3000, 0, 0, NULL);
    attack(w, "thread", &res);
    assert_string_equal(res.payload, "{\"pthread_create\":0}");
    fn_native_result_clear(&res);
    expect_failure_then_recovery(w, "fork", "ForkFailed", NULL);
    expect_failure_then_recovery(w, "socket", "Runtime.SeccompViolation", "'threads' profile");
    fn_native_free(w);
}

typedef struct thread_run {
    int ok;
} thread_run;

static void *worker_thread(void *arg)
{
    thread_run *t = arg;
    fn_native_worker *w = spawn_opts("echo", NULL, 5000, 0, 0, NULL);
    for (int i = 1; i <= 50; i++) {
        fn_native_result res;
        char want[32];
        invoke(w, "{}", &res);
        snprintf(want, sizeof want, "\"count\":%d,", i);
        if (!res.function_error && strstr(res.payload, want)) t->ok++;
        fn_native_result_clear(&res);
    }
    fn_native_free(w);
    return NULL;
}

/* Workers spawned and used concurrently from several threads never see each other's pipes (a
 * leaked stdin write end would keep another worker from ever reading end of file). */
static void test_native_concurrent_workers(void **state)
{
    (void)state;
    pthread_t th[4];
    thread_run runs[4] = {{0}, {0}, {0}, {0}};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker_thread, &runs[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(runs[i].ok, 50);
    }
}

/* ---- setup ---- */

static int probe_launcher(const char *bin)
{
    char cmd[PATH_MAX + 64];
    char line[64] = "";
    snprintf(cmd, sizeof cmd, "'%s' __launch --version 2>/dev/null", bin);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    if (!fgets(line, sizeof line, p)) line[0] = 0;
    int st = pclose(p);
    return st == 0 && !strncmp(line, "sluice-launch", 13) ? 0 : -1;
}

static int setup_all(const char *argv0)
{
    char self[PATH_MAX];
    snprintf(self, sizeof self, "%s", argv0);
    char *slash = strrchr(self, '/');
    const char *dir = slash ? (*slash = 0, self) : ".";
    char absdir[PATH_MAX];
    if (!realpath(dir, absdir)) return -1;
    snprintf(g_handlers, sizeof g_handlers, "%.1000s/handlers", absdir);
    const char *l = getenv("SLUICE_LAUNCHER");
    const char *bin = getenv("SLUICE_BIN");
    if (l && *l) snprintf(g_launcher, sizeof g_launcher, "%.1000s", l);
    else if (bin && *bin && access(bin, X_OK) == 0 && probe_launcher(bin) == 0)
        snprintf(g_launcher, sizeof g_launcher, "%.1000s", bin);
    else snprintf(g_launcher, sizeof g_launcher, "%.1000s/../sluice-launch", absdir);
    fprintf(stderr, "launcher: %s\nhandlers: %s\n", g_launcher, g_handlers);

    snprintf(g_base, sizeof g_base, "/tmp/sluice-native-XXXXXX");
    if (!mkdtemp(g_base) || chmod(g_base, 0755)) return -1;
    snprintf(g_code, sizeof g_code, "%.500s/code", g_base);
    if (mkdir(g_code, 0755) || chmod(g_code, 0755)) return -1;
    setenv("SLUICE_TEST_SECRET", "hunter2", 1);
    g_leaky_fd = open("/etc/hostname", O_RDONLY); /* deliberately without O_CLOEXEC */
    if (g_leaky_fd < 0) g_leaky_fd = open("/dev/null", O_RDONLY);
    return g_leaky_fd >= 0 ? 0 : -1;
}

static void teardown_all(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_base);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", g_base);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (setup_all(argv[0])) {
        fprintf(stderr, "setup failed: %s\n", strerror(errno));
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_native_echo_decodes_records),
        cmocka_unit_test(test_native_large_event),
        cmocka_unit_test(test_native_warm_worker_reused),
        cmocka_unit_test(test_native_cold_mode_and_retirement),
        cmocka_unit_test(test_native_results_and_handler_errors),
        cmocka_unit_test(test_native_host_calls),
        cmocka_unit_test(test_native_spawn_refusals),
        cmocka_unit_test(test_native_invoke_argument_errors),
        cmocka_unit_test(test_native_missing_executable_after_crash),
        cmocka_unit_test(test_native_abuse_fork_bomb),
        cmocka_unit_test(test_native_abuse_execve),
        cmocka_unit_test(test_native_abuse_files),
        cmocka_unit_test(test_native_abuse_network_without_profile),
        cmocka_unit_test(test_native_network_out_profile),
        cmocka_unit_test(test_native_abuse_ptrace_and_kill),
        cmocka_unit_test(test_native_abuse_privileged_calls),
        cmocka_unit_test(test_native_abuse_timeouts),
        cmocka_unit_test(test_native_abuse_memory_bomb),
        cmocka_unit_test(test_native_abuse_output_floods),
        cmocka_unit_test(test_native_abuse_frame_after_result),
        cmocka_unit_test(test_native_abuse_crashes),
        cmocka_unit_test(test_native_no_inherited_fds),
        cmocka_unit_test(test_native_environment_cleared),
        cmocka_unit_test(test_native_errno_probes_and_threads),
        cmocka_unit_test(test_native_concurrent_workers),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    teardown_all();
    return failed;
}
