/* seccomp_profile.c — builds the native-handler allow-lists with libseccomp (SANDBOX.md 2.3/2.4).
 *
 * Rules are written as (action, syscall, conditions); a syscall with no matching rule hits the
 * default KILL_PROCESS. Where an argument decides between allow and an errno, the errno rule is
 * the exact complement of the allow rules so libseccomp never sees two overlapping rules.
 */
#include "sandbox/seccomp_profile.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sched.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <asm/prctl.h>
#endif

int sbx_profile_parse(const char *name, sbx_profile *out, sl_err *err)
{
    if (name && !strcmp(name, "stdio")) *out = SBX_PROFILE_STDIO;
    else if (name && !strcmp(name, "threads")) *out = SBX_PROFILE_THREADS;
    else if (name && !strcmp(name, "network-out")) *out = SBX_PROFILE_NETWORK_OUT;
    else
        return sl_err_set(err, SL_EINVAL,
                          "unknown sandbox profile '%s' (expected stdio, threads or network-out)",
                          name ? name : "(null)");
    return 0;
}

const char *sbx_profile_name(sbx_profile p)
{
    switch (p) {
    case SBX_PROFILE_STDIO: return "stdio";
    case SBX_PROFILE_THREADS: return "threads";
    case SBX_PROFILE_NETWORK_OUT: return "network-out";
    }
    return "?";
}

#define ALLOW SCMP_ACT_ALLOW
#define ERR(e) SCMP_ACT_ERRNO(e)
#define NR(name) SCMP_SYS(name)

/* Adds one rule; remembers the first failure (with the syscall name) and returns it. */
typedef struct rules {
    scmp_filter_ctx ctx;
    int rc;
    const char *what;
} rules;

static void add(rules *r, uint32_t action, int nr, const char *name, unsigned n,
                const struct scmp_arg_cmp *cmp)
{
    if (r->rc) return;
    int rc = seccomp_rule_add_array(r->ctx, action, nr, n, cmp);
    if (rc) {
        r->rc = rc;
        r->what = name;
    }
}

#define RULE0(r, act, sys) add(r, act, NR(sys), #sys, 0, NULL)
#define RULE(r, act, sys, ...)                                                                \
    do {                                                                                      \
        const struct scmp_arg_cmp c_[] = {__VA_ARGS__};                                       \
        add(r, act, NR(sys), #sys, (unsigned)(sizeof c_ / sizeof c_[0]), c_);                 \
    } while (0)

/* glibc's pthread_create clone flags (the only clone the threads profile allows). */
#define THREAD_CLONE_FLAGS                                                                    \
    (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |       \
     CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID)

#define U32 0xffffffffull

static void add_stdio(rules *r, const sbx_seccomp_opts *o)
{
    int any_fd = o->profile != SBX_PROFILE_STDIO; /* threads/network create fds of their own */

    /* event input and result/log output */
    if (any_fd) {
        RULE0(r, ALLOW, read);
        RULE0(r, ALLOW, readv);
        RULE0(r, ALLOW, write);
        RULE0(r, ALLOW, writev);
    } else {
        RULE(r, ALLOW, read, SCMP_A0(SCMP_CMP_EQ, 0));
        RULE(r, ALLOW, readv, SCMP_A0(SCMP_CMP_EQ, 0));
        RULE(r, ALLOW, write, SCMP_A0(SCMP_CMP_EQ, 1));
        RULE(r, ALLOW, write, SCMP_A0(SCMP_CMP_EQ, 2));
        RULE(r, ALLOW, writev, SCMP_A0(SCMP_CMP_EQ, 1));
        RULE(r, ALLOW, writev, SCMP_A0(SCMP_CMP_EQ, 2));
    }
    RULE0(r, ALLOW, close);
    RULE0(r, ALLOW, exit);
    RULE0(r, ALLOW, exit_group);
    RULE0(r, ALLOW, rt_sigreturn);
    RULE0(r, ALLOW, restart_syscall);

    /* memory: never executable, no shared or file-backed tricks */
    RULE0(r, ALLOW, brk);
    RULE0(r, ALLOW, munmap);
    RULE0(r, ALLOW, mremap);
    RULE(r, ALLOW, mmap, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0),
         SCMP_A3(SCMP_CMP_MASKED_EQ,
                 U32 & ~(uint64_t)(MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK |
                                   MAP_FIXED | MAP_FIXED_NOREPLACE),
                 0));
    RULE(r, ALLOW, mprotect, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    RULE(r, ALLOW, madvise, SCMP_A2(SCMP_CMP_EQ, MADV_DONTNEED));
    RULE(r, ALLOW, madvise, SCMP_A2(SCMP_CMP_EQ, MADV_FREE));
    RULE(r, ALLOW, madvise, SCMP_A2(SCMP_CMP_EQ, MADV_NORMAL));
    /* libseccomp allows one comparison per argument and rule, so the complement cannot be
     * expressed as an errno rule: other advice (MADV_HUGEPAGE, MADV_DONTFORK, ...) is killed. */

    /* libc start-up */
#if defined(__x86_64__)
    RULE(r, ALLOW, arch_prctl, SCMP_A0(SCMP_CMP_EQ, ARCH_SET_FS));
    RULE(r, ERR(EINVAL), arch_prctl, SCMP_A0(SCMP_CMP_NE, ARCH_SET_FS));
#endif
    RULE0(r, ALLOW, set_tid_address);
    RULE0(r, ALLOW, set_robust_list);
    RULE0(r, ALLOW, rseq);
    RULE(r, ALLOW, prlimit64, SCMP_A0(SCMP_CMP_EQ, 0), SCMP_A2(SCMP_CMP_EQ, 0));
    RULE0(r, ALLOW, getrlimit);
    RULE0(r, ALLOW, getrandom);

    /* time */
    RULE0(r, ALLOW, clock_gettime);
    RULE0(r, ALLOW, clock_getres);
    RULE0(r, ALLOW, gettimeofday);
    RULE0(r, ALLOW, time);
    RULE0(r, ALLOW, nanosleep);
    RULE0(r, ALLOW, clock_nanosleep);
    RULE0(r, ALLOW, sched_yield);

    /* futex without the priority-inheritance and requeue-PI commands */
    static const int futex_ops[] = {FUTEX_WAIT,     FUTEX_WAKE,        FUTEX_REQUEUE,
                                    FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP, FUTEX_WAIT_BITSET,
                                    FUTEX_WAKE_BITSET};
    const uint64_t futex_cmd = U32 & ~(uint64_t)(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    for (size_t i = 0; i < sizeof futex_ops / sizeof futex_ops[0]; i++)
        RULE(r, ALLOW, futex, SCMP_A1(SCMP_CMP_MASKED_EQ, futex_cmd, (uint64_t)futex_ops[i]));

    /* identities */
    RULE0(r, ALLOW, getpid);
    RULE0(r, ALLOW, gettid);
    RULE0(r, ALLOW, getppid);
    RULE0(r, ALLOW, getuid);
    RULE0(r, ALLOW, geteuid);
    RULE0(r, ALLOW, getgid);
    RULE0(r, ALLOW, getegid);

    /* signals: abort()/raise() towards our own thread group only */
    RULE(r, ALLOW, tgkill, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)o->self_pid));
    RULE0(r, ALLOW, rt_sigaction);
    RULE0(r, ALLOW, rt_sigprocmask);
    RULE0(r, ALLOW, sigaltstack);

    /* probes answered with an errno */
    RULE(r, ALLOW, fstat, SCMP_A0(SCMP_CMP_LE, 2));
    RULE0(r, ERR(EPERM), newfstatat);
    RULE0(r, ERR(ENOSYS), statx);
    RULE0(r, ERR(ESPIPE), lseek);
    RULE0(r, ERR(ENOTTY), ioctl);
    RULE0(r, ERR(ENOENT), readlink);
    RULE0(r, ERR(ENOENT), readlinkat);
    RULE0(r, ALLOW, poll);
    RULE0(r, ALLOW, ppoll);
    RULE0(r, ERR(ENOSYS), clone3);
    RULE0(r, ERR(EPERM), fork);
    RULE0(r, ERR(EPERM), vfork);

    /* The handler library tightens the filter further (execve always killed); adding filters
     * can only restrict, so allow exactly that form: no flags (no TSYNC, no listener). */
    RULE(r, ALLOW, seccomp, SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER),
         SCMP_A1(SCMP_CMP_EQ, 0));

    /* One-shot exec: the launcher's own buffer address, which the handler cannot know. */
    if (o->exec_path)
        RULE(r, ALLOW, execve, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)(uintptr_t)o->exec_path));
}

static void add_threads(rules *r)
{
    RULE(r, ALLOW, clone, SCMP_A0(SCMP_CMP_MASKED_EQ, U32, THREAD_CLONE_FLAGS));
    RULE(r, ERR(EPERM), clone, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
    RULE0(r, ALLOW, sched_getaffinity);
    RULE0(r, ALLOW, membarrier);
    RULE0(r, ALLOW, epoll_create1);
    RULE0(r, ALLOW, epoll_ctl);
    RULE0(r, ALLOW, epoll_pwait);
    RULE0(r, ALLOW, epoll_wait);
    RULE0(r, ALLOW, eventfd2);
    RULE0(r, ALLOW, pipe2);
}

static void add_network(rules *r)
{
    static const int domains[] = {AF_INET, AF_INET6};
    const uint64_t type_mask = U32 & ~(uint64_t)(SOCK_NONBLOCK | SOCK_CLOEXEC);
    for (int i = 0; i < 2; i++) {
        RULE(r, ALLOW, socket, SCMP_A0(SCMP_CMP_EQ, domains[i]),
             SCMP_A1(SCMP_CMP_MASKED_EQ, type_mask, SOCK_STREAM), SCMP_A2(SCMP_CMP_EQ, 0));
        RULE(r, ALLOW, socket, SCMP_A0(SCMP_CMP_EQ, domains[i]),
             SCMP_A1(SCMP_CMP_MASKED_EQ, type_mask, SOCK_STREAM),
             SCMP_A2(SCMP_CMP_EQ, IPPROTO_TCP));
        RULE(r, ALLOW, socket, SCMP_A0(SCMP_CMP_EQ, domains[i]),
             SCMP_A1(SCMP_CMP_MASKED_EQ, type_mask, SOCK_DGRAM), SCMP_A2(SCMP_CMP_EQ, 0));
        RULE(r, ALLOW, socket, SCMP_A0(SCMP_CMP_EQ, domains[i]),
             SCMP_A1(SCMP_CMP_MASKED_EQ, type_mask, SOCK_DGRAM),
             SCMP_A2(SCMP_CMP_EQ, IPPROTO_UDP));
    }
    RULE0(r, ALLOW, connect);
    RULE0(r, ALLOW, sendto);
    RULE0(r, ALLOW, recvfrom);
    RULE0(r, ALLOW, sendmsg);
    RULE0(r, ALLOW, recvmsg);
    RULE(r, ALLOW, getsockopt, SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET));
    RULE(r, ALLOW, getsockopt, SCMP_A1(SCMP_CMP_EQ, IPPROTO_TCP));
    RULE(r, ALLOW, setsockopt, SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET));
    RULE(r, ALLOW, setsockopt, SCMP_A1(SCMP_CMP_EQ, IPPROTO_TCP));
    RULE0(r, ALLOW, getsockname);
    RULE0(r, ALLOW, getpeername);
    RULE0(r, ALLOW, shutdown);
    RULE(r, ALLOW, fcntl, SCMP_A1(SCMP_CMP_EQ, F_GETFL));
    RULE(r, ALLOW, fcntl, SCMP_A1(SCMP_CMP_EQ, F_SETFL));
    RULE(r, ALLOW, fcntl, SCMP_A1(SCMP_CMP_EQ, F_GETFD));
    RULE(r, ALLOW, fcntl, SCMP_A1(SCMP_CMP_EQ, F_SETFD));
}

static int build(scmp_filter_ctx *out, const sbx_seccomp_opts *o, sl_err *err)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (!ctx) return sl_err_set(err, SL_ENOMEM, "seccomp_init failed");
    rules r = {ctx, 0, NULL};
    r.rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (r.rc) r.what = "attr BADARCH";
    if (!r.rc) {
        r.rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
        if (r.rc) r.what = "attr NNP";
    }
    add_stdio(&r, o);
    if (o->profile == SBX_PROFILE_THREADS) add_threads(&r);
    else RULE0(&r, ERR(EPERM), clone);
    if (o->profile == SBX_PROFILE_NETWORK_OUT) add_network(&r);
    if (r.rc) {
        int rc = r.rc;
        seccomp_release(ctx);
        return sl_err_set(err, rc, "seccomp rule %s: %s", r.what, strerror(-rc));
    }
    *out = ctx;
    return 0;
}

int sbx_seccomp_compile(const sbx_seccomp_opts *o, sbx_bpf *out, sl_err *err)
{
    char name[] = "sluice-bpf";
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) return sl_err_set(err, -errno, "memfd_create: %s", strerror(errno));
    int rc = sbx_seccomp_export(o, fd, err);
    struct stat st;
    void *buf = NULL;
    if (!rc && fstat(fd, &st) < 0) rc = sl_err_set(err, -errno, "fstat: %s", strerror(errno));
    if (!rc && (st.st_size <= 0 || st.st_size % (off_t)sizeof(struct sock_filter) ||
                st.st_size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS))
        rc = sl_err_set(err, SL_EINTERNAL, "exported filter has a bad size (%lld bytes)",
                        (long long)st.st_size);
    if (!rc && !(buf = malloc((size_t)st.st_size)))
        rc = sl_err_set(err, SL_ENOMEM, "out of memory for the filter");
    if (!rc && pread(fd, buf, (size_t)st.st_size, 0) != (ssize_t)st.st_size)
        rc = sl_err_set(err, SL_EIO, "cannot read back the exported filter");
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    out->insns = buf;
    out->n = (size_t)st.st_size / sizeof(struct sock_filter);
    return 0;
}

int sbx_seccomp_install(const sbx_bpf *prog, sl_err *err)
{
    struct sock_fprog fp = {(unsigned short)prog->n, prog->insns};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return sl_err_set(err, -errno, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) < 0)
        return sl_err_set(err, -errno, "seccomp(SET_MODE_FILTER): %s", strerror(errno));
    return 0;
}

void sbx_bpf_free(sbx_bpf *prog)
{
    if (!prog) return;
    free(prog->insns);
    prog->insns = NULL;
    prog->n = 0;
}

int sbx_seccomp_load(const sbx_seccomp_opts *o, sl_err *err)
{
    sbx_bpf prog;
    int rc = sbx_seccomp_compile(o, &prog, err);
    if (rc) return rc;
    rc = sbx_seccomp_install(&prog, err);
    sbx_bpf_free(&prog);
    return rc;
}

int sbx_seccomp_export(const sbx_seccomp_opts *o, int fd, sl_err *err)
{
    scmp_filter_ctx ctx = NULL;
    int rc = build(&ctx, o, err);
    if (rc) return rc;
    rc = seccomp_export_bpf(ctx, fd);
    seccomp_release(ctx);
    if (rc) return sl_err_set(err, rc, "seccomp_export_bpf: %s", strerror(-rc));
    return 0;
}
