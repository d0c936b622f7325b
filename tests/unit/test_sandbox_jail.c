/* test_sandbox_jail.c — the launcher's confinement steps and the seccomp profiles, each checked
 * in a forked child of this test (never in the test process itself): fd hygiene, sessions,
 * privilege drop, parent-death/dumpable, rlimits (FSIZE, AS, NOFILE), the static-ELF check, the
 * allow-list's kills and errno answers, the one-shot execve rule and the launcher's refusals. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/jail.h"
#include "sandbox/seccomp_profile.h"

static char g_dir[PATH_MAX]; /* directory of this binary (handlers/ lives there) */

/* Runs fn in a child; returns its raw wait status. */
static int in_child(int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(fn(arg));
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

static void assert_exit(int st, int code)
{
    if (!WIFEXITED(st) || WEXITSTATUS(st) != code)
        fprintf(stderr, "child: exited=%d code=%d signaled=%d sig=%d (want exit %d)\n",
                WIFEXITED(st), WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st),
                WIFSIGNALED(st) ? WTERMSIG(st) : -1, code);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), code);
}

static void assert_signal(int st, int sig)
{
    if (!WIFSIGNALED(st) || WTERMSIG(st) != sig)
        fprintf(stderr, "child: exited=%d code=%d sig=%d (want signal %d)\n", WIFEXITED(st),
                WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : -1, sig);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), sig);
}

/* ---- profiles and limits ---- */

static void test_profile_parse_names(void **state)
{
    (void)state;
    sbx_profile p;
    sl_err err = {0, ""};
    assert_int_equal(sbx_profile_parse("stdio", &p, &err), 0);
    assert_int_equal(p, SBX_PROFILE_STDIO);
    assert_int_equal(sbx_profile_parse("threads", &p, &err), 0);
    assert_int_equal(p, SBX_PROFILE_THREADS);
    assert_int_equal(sbx_profile_parse("network-out", &p, &err), 0);
    assert_int_equal(p, SBX_PROFILE_NETWORK_OUT);
    assert_int_equal(sbx_profile_parse("network", &p, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "unknown sandbox profile 'network'"));
    assert_int_equal(sbx_profile_parse(NULL, &p, &err), SL_EINVAL);
    assert_string_equal(sbx_profile_name(SBX_PROFILE_NETWORK_OUT), "network-out");
}

static void test_limits_for_profiles(void **state)
{
    (void)state;
    sbx_limits l;
    sbx_limits_for(&l, 128, 4, SBX_PROFILE_STDIO);
    assert_int_equal(l.as_bytes, (128ull + SBX_AS_HEADROOM_MB) << 20);
    assert_int_equal(l.cpu_seconds, 4);
    assert_int_equal(l.nofile, 8);
    assert_int_equal(l.nproc, 0);
    assert_int_equal(l.fsize, 0);
    sbx_limits_for(&l, 256, 0, SBX_PROFILE_THREADS);
    assert_int_equal(l.as_bytes, (256ull + SBX_AS_HEADROOM_THREADS_MB) << 20);
    assert_int_equal(l.cpu_seconds, 1);
    assert_true(l.nproc > 0);
}

static void test_seccomp_export_all_profiles(void **state)
{
    (void)state;
    sbx_profile ps[] = {SBX_PROFILE_STDIO, SBX_PROFILE_THREADS, SBX_PROFILE_NETWORK_OUT};
    off_t sizes[3];
    for (int i = 0; i < 3; i++) {
        char path[] = "/tmp/sluice-bpf-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        unlink(path);
        sbx_seccomp_opts o = {ps[i], getpid(), NULL};
        sl_err err = {0, ""};
        assert_int_equal(sbx_seccomp_export(&o, fd, &err), 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_true(st.st_size > 0);
        assert_int_equal(st.st_size % (off_t)sizeof(struct sock_filter), 0);
        sizes[i] = st.st_size;
        close(fd);
    }
    assert_true(sizes[1] > sizes[0]); /* profiles are additive */
    assert_true(sizes[2] > sizes[0]);
}

/* ---- the filter, loaded in a child ---- */

typedef struct filt_case {
    sbx_profile profile;
    int what;
} filt_case;

enum { F_OPEN, F_SOCKET, F_ERRNO_PROBES, F_WRITE_FD3, F_EXEC_OTHER, F_PTRACE, F_SETRLIMIT,
       F_THREAD_CLONE_STDIO, F_UNIX_SOCKET_NET, F_INET_SOCKET_NET, F_ABORT, F_KILL_OTHER };

static int filt_child(void *arg)
{
    const filt_case *c = arg;
    sbx_seccomp_opts o = {c->profile, getpid(), NULL};
    sl_err err = {0, ""};
    if (sbx_seccomp_load(&o, &err)) return 100;
    switch (c->what) {
    case F_OPEN: return open("/etc/hostname", O_RDONLY) >= 0 ? 1 : 2;
    case F_SOCKET: return socket(AF_INET, SOCK_STREAM, 0) >= 0 ? 1 : 2;
    case F_ERRNO_PROBES: {
        int bad = 0;
        char ch = 'x';
        errno = 0;
        if (ioctl(0, TIOCSTI, &ch) != -1 || errno != ENOTTY) bad |= 1;
        if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS) bad |= 2;
        if (syscall(SYS_fork) != -1 || errno != EPERM) bad |= 4;
        if (lseek(1, 0, SEEK_SET) != -1 || errno != ESPIPE) bad |= 8;
        char buf[64];
        if (readlink("/proc/self/exe", buf, sizeof buf) != -1 || errno != ENOENT) bad |= 16;
        struct stat st;
        if (syscall(SYS_newfstatat, 1, "/etc/shadow", &st, 0) != -1 || errno != EPERM) bad |= 32;
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED || madvise(p, 4096, MADV_DONTNEED) != 0) bad |= 64;
        return bad;
    }
    case F_WRITE_FD3: return write(3, "x", 1) >= 0 ? 1 : 2;
    case F_EXEC_OTHER: {
        char *argv[] = {(char *)"/bin/true", NULL};
        execve("/bin/true", argv, NULL);
        return 3;
    }
    case F_PTRACE: return syscall(SYS_ptrace, 0, 0, 0, 0) >= 0 ? 1 : 2;
    case F_SETRLIMIT: {
        struct rlimit rl = {1, 1};
        return setrlimit(RLIMIT_CPU, &rl) == 0 ? 1 : 2;
    }
    case F_THREAD_CLONE_STDIO: {
        long flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                     CLONE_SYSVSEM;
        return syscall(SYS_clone, flags, 0L, 0L, 0L, 0L) == -1 && errno == EPERM ? 0 : 1;
    }
    case F_UNIX_SOCKET_NET: return socket(AF_UNIX, SOCK_STREAM, 0) >= 0 ? 1 : 2;
    case F_INET_SOCKET_NET: {
        int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        return fd >= 0 ? 0 : 1;
    }
    case F_ABORT: abort();
    case F_KILL_OTHER: return kill(getppid(), 0) == 0 ? 1 : 2;
    }
    return 99;
}

static int run_filter(sbx_profile p, int what)
{
    filt_case c = {p, what};
    return in_child(filt_child, &c);
}

static void test_seccomp_kills_forbidden_calls(void **state)
{
    (void)state;
    assert_signal(run_filter(SBX_PROFILE_STDIO, F_OPEN), SIGSYS);
    assert_signal(run_filter(SBX_PROFILE_STDIO, F_SOCKET), SIGSYS);
    assert_signal(run_filter(SBX_PROFILE_STDIO, F_WRITE_FD3), SIGSYS);
    assert_signal(run_filter(SBX_PROFILE_STDIO, F_EXEC_OTHER), SIGSYS);
    assert_signal(run_filter(SBX_PROFILE_STDIO, F_PTRACE), SIGSYS);
    assert_signal(run_filter(SBX_PROFILE_STDIO, F_SETRLIMIT), SIGSYS);
    assert_signal(run_filter(SBX_PROFILE_STDIO, F_KILL_OTHER), SIGSYS);
    assert_signal(run_filter(SBX_PROFILE_THREADS, F_OPEN), SIGSYS);
    assert_signal(run_filter(SBX_PROFILE_NETWORK_OUT, F_UNIX_SOCKET_NET), SIGSYS);
    assert_signal(run_filter(SBX_PROFILE_NETWORK_OUT, F_EXEC_OTHER), SIGSYS);
}

static void test_seccomp_errno_answers(void **state)
{
    (void)state;
    assert_exit(run_filter(SBX_PROFILE_STDIO, F_ERRNO_PROBES), 0);
    assert_exit(run_filter(SBX_PROFILE_STDIO, F_THREAD_CLONE_STDIO), 0);
    assert_exit(run_filter(SBX_PROFILE_NETWORK_OUT, F_INET_SOCKET_NET), 0);
    assert_signal(run_filter(SBX_PROFILE_STDIO, F_ABORT), SIGABRT); /* tgkill(self) allowed */
}

typedef struct exec_case {
    const char *path;
    int same_pointer;
} exec_case;

static int exec_child(void *arg)
{
    const exec_case *c = arg;
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", c->path);
    sbx_seccomp_opts o = {SBX_PROFILE_STDIO, getpid(), c->path};
    sl_err err = {0, ""};
    if (sbx_seccomp_load(&o, &err)) return 100;
    const char *p = c->same_pointer ? c->path : copy; /* same string, another address */
    char *argv[] = {(char *)p, NULL};
    char *envp[] = {NULL};
    execve(p, argv, envp);
    return 3;
}

static void test_seccomp_one_shot_exec_pointer(void **state)
{
    (void)state;
    char echo[PATH_MAX];
    snprintf(echo, sizeof echo, "%.1000s/handlers/echo", g_dir);
    exec_case c = {echo, 1};
    /* the static handler starts under the filter, sees EOF on stdin and exits 0 */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[0], 0);
        close(fds[1]);
        _exit(exec_child(&c));
    }
    close(fds[0]);
    close(fds[1]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_exit(st, 0);
    c.same_pointer = 0;
    assert_signal(in_child(exec_child, &c), SIGSYS);
}

/* ---- jail steps ---- */

static int close_fds_child(void *arg)
{
    (void)arg;
    int a = open("/dev/null", O_RDONLY);
    int b = open("/dev/null", O_RDONLY);
    int c = open("/dev/null", O_RDONLY);
    if (a < 3 || b < 3 || c < 3) return 10;
    sl_err err = {0, ""};
    if (sbx_jail_close_fds(b, &err)) return 11;
    if (fcntl(a, F_GETFD) != -1 || errno != EBADF) return 12;
    if (fcntl(c, F_GETFD) != -1 || errno != EBADF) return 13;
    int fl = fcntl(b, F_GETFD);
    if (fl < 0 || !(fl & FD_CLOEXEC)) return 14;
    if (sbx_jail_close_fds(-1, &err)) return 15;
    if (fcntl(b, F_GETFD) != -1) return 16;
    if (fcntl(0, F_GETFD) < 0 || fcntl(2, F_GETFD) < 0) return 17;
    return 0;
}

static void test_jail_close_fds(void **state)
{
    (void)state;
    assert_exit(in_child(close_fds_child, NULL), 0);
}

static int session_child(void *arg)
{
    (void)arg;
    sl_err err = {0, ""};
    if (sbx_jail_new_session(&err)) return 10;
    if (getsid(0) != getpid() || getpgrp() != getpid()) return 11;
    if (sbx_jail_lock_process(getppid(), &err)) return 12;
    int sig = 0;
    if (prctl(PR_GET_PDEATHSIG, &sig) || sig != SIGKILL) return 13;
    if (prctl(PR_GET_DUMPABLE) != 0) return 14;
    if (sbx_jail_lock_process(getppid() + 100000, &err) == 0) return 15;
    if (!strstr(err.msg, "exited during launch")) return 16;
    return 0;
}

static void test_jail_session_and_lock(void **state)
{
    (void)state;
    assert_exit(in_child(session_child, NULL), 0);
}

static int drop_child(void *arg)
{
    (void)arg;
    sl_err err = {0, ""};
    if (sbx_jail_drop_privileges(0, 0, &err) == 0 && geteuid() == 0) return 10;
    if (sbx_jail_drop_privileges(65534, 65534, &err)) return 11;
    if (geteuid() == 0) return 0; /* unreachable when the drop worked */
    if (getuid() != 65534 || getgid() != 65534) return 12;
    if (setuid(0) == 0) return 13;
    gid_t groups[4];
    if (getgroups(4, groups) != 0) return 14;
    return 0;
}

static void test_jail_drop_privileges(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        sl_err err = {0, ""};
        assert_int_equal(sbx_jail_drop_privileges(65534, 65534, &err), 0); /* no-op */
        return;
    }
    assert_exit(in_child(drop_child, NULL), 0);
}

static int fsize_child(void *arg)
{
    const char *path = arg;
    sbx_limits l;
    sbx_limits_for(&l, 64, 2, SBX_PROFILE_STDIO);
    l.nofile = 16;
    sl_err err = {0, ""};
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return 10;
    if (sbx_jail_set_limits(&l, &err)) return 11;
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) || rl.rlim_cur != 0 || rl.rlim_max != 0) return 12;
    if (getrlimit(RLIMIT_CORE, &rl) || rl.rlim_max != 0) return 13;
    if (getrlimit(RLIMIT_CPU, &rl) || rl.rlim_cur != 2 || rl.rlim_max != 2) return 14;
    (void)!write(fd, "x", 1); /* the first byte beyond the 0-byte limit raises SIGXFSZ */
    return 15;
}

static void test_jail_rlimit_fsize_stops_file_growth(void **state)
{
    (void)state;
    char path[] = "/tmp/sluice-fsize-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_signal(in_child(fsize_child, path), SIGXFSZ);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
    unlink(path);
}

static int as_child(void *arg)
{
    (void)arg;
    sbx_limits l;
    sbx_limits_for(&l, 32, 2, SBX_PROFILE_STDIO);
    l.nofile = 16;
    sl_err err = {0, ""};
    if (sbx_jail_set_limits(&l, &err)) return 10;
    /* mmap, not malloc: a sanitizer's allocator aborts instead of returning NULL */
    void *p = mmap(NULL, (size_t)200 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p != MAP_FAILED || errno != ENOMEM) return 11;
#if !defined(__SANITIZE_ADDRESS__)
    /* (an ASan process has terabytes of shadow reserved: every new mapping is over the limit) */
    p = mmap(NULL, (size_t)8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 13;
#endif
    int fds = 0;
    for (int i = 0; i < 64; i++)
        if (open("/dev/null", O_RDONLY) >= 0) fds++;
    return fds <= 16 ? 0 : 12;
}

static void test_jail_rlimit_as_and_nofile(void **state)
{
    (void)state;
    assert_exit(in_child(as_child, NULL), 0);
}

static void test_jail_check_executable(void **state)
{
    (void)state;
    char echo[PATH_MAX];
    snprintf(echo, sizeof echo, "%.1000s/handlers/echo", g_dir);
    sl_err err = {0, ""};
    assert_int_equal(sbx_jail_check_executable(echo, &err), 0);
    assert_int_equal(sbx_jail_check_executable("/bin/true", &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "dynamically linked"));
    assert_int_equal(sbx_jail_check_executable("/nonexistent", &err), SL_EINVAL);
    assert_int_equal(sbx_jail_check_executable("/tmp", &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "not a regular file"));
    char path[] = "/tmp/sluice-notelf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "#!/bin/sh\necho hi\n", 18), 18);
    close(fd);
    assert_int_equal(sbx_jail_check_executable(path, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "not executable"));
    chmod(path, 0755);
    assert_int_equal(sbx_jail_check_executable(path, &err), SL_EINVAL);
    assert_non_null(strstr(err.msg, "not an executable ELF"));
    unlink(path);
}

/* ---- the launcher itself ---- */

typedef struct launch_case {
    char *argv[24];
    int argc;
} launch_case;

static int launch_child(void *arg)
{
    launch_case *c = arg;
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
    return sbx_launcher_main(c->argc, c->argv);
}

static int run_launcher_status(launch_case *c, char *status, size_t cap)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    c->argv[c->argc] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        if (p[1] != 3) {
            dup2(p[1], 3);
            close(p[1]);
        }
        _exit(launch_child(c));
    }
    close(p[1]);
    ssize_t n = read(p[0], status, cap - 1);
    status[n > 0 ? n : 0] = 0;
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

static void test_launcher_refusals(void **state)
{
    (void)state;
    char echo[PATH_MAX];
    snprintf(echo, sizeof echo, "%.1000s/handlers/echo", g_dir);
    char status[2048];
    launch_case c = {{(char *)"sluice", (char *)"__launch", (char *)"--status-fd", (char *)"3",
                      (char *)"--bogus", (char *)"1", (char *)"--", echo}, 8};
    assert_exit(run_launcher_status(&c, status, sizeof status), 127);
    assert_non_null(strstr(status, "Sandbox.SetupFailed\nbad launcher argument '--bogus'"));

    launch_case d = {{(char *)"sluice", (char *)"__launch", (char *)"--status-fd", (char *)"3",
                      (char *)"--dir", (char *)"/tmp", (char *)"--", (char *)"/bin/true"}, 8};
    assert_exit(run_launcher_status(&d, status, sizeof status), 127);
    assert_non_null(strstr(status, "Runtime.InvalidEntrypoint\n"));
    assert_non_null(strstr(status, "dynamically linked"));

    launch_case e = {{(char *)"sluice", (char *)"__launch", (char *)"--status-fd", (char *)"3",
                      (char *)"--dir", (char *)"/tmp", (char *)"--profile", (char *)"god",
                      (char *)"--", echo}, 10};
    assert_exit(run_launcher_status(&e, status, sizeof status), 127);
    assert_non_null(strstr(status, "unknown sandbox profile 'god'"));

    launch_case f = {{(char *)"sluice", (char *)"__launch", (char *)"--status-fd", (char *)"3",
                      (char *)"--dir", (char *)"/tmp", (char *)"--memory-mb", (char *)"0",
                      (char *)"--", echo}, 10};
    assert_exit(run_launcher_status(&f, status, sizeof status), 127);
    assert_non_null(strstr(status, "bad launcher argument '--memory-mb'"));

    /* success: the status pipe closes without data and the handler runs (EOF on stdin: exit 0) */
    launch_case g = {{(char *)"sluice", (char *)"__launch", (char *)"--status-fd", (char *)"3",
                      (char *)"--dir", (char *)"/tmp", (char *)"--", echo}, 8};
    assert_exit(run_launcher_status(&g, status, sizeof status), 0);
    assert_string_equal(status, "");
}

static void test_launcher_version_probe(void **state)
{
    (void)state;
    char *argv[] = {(char *)"sluice", (char *)"__launch", (char *)"--version", NULL};
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        _exit(sbx_launcher_main(3, argv));
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_exit(st, 0);
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    char *slash = strrchr(self, '/');
    if (slash) *slash = 0;
    if (!realpath(slash ? self : ".", g_dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profile_parse_names),
        cmocka_unit_test(test_limits_for_profiles),
        cmocka_unit_test(test_seccomp_export_all_profiles),
        cmocka_unit_test(test_seccomp_kills_forbidden_calls),
        cmocka_unit_test(test_seccomp_errno_answers),
        cmocka_unit_test(test_seccomp_one_shot_exec_pointer),
        cmocka_unit_test(test_jail_close_fds),
        cmocka_unit_test(test_jail_session_and_lock),
        cmocka_unit_test(test_jail_drop_privileges),
        cmocka_unit_test(test_jail_rlimit_fsize_stops_file_growth),
        cmocka_unit_test(test_jail_rlimit_as_and_nofile),
        cmocka_unit_test(test_jail_check_executable),
        cmocka_unit_test(test_launcher_refusals),
        cmocka_unit_test(test_launcher_version_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
