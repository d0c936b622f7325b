/* jail.c — the confinement steps the launcher applies to itself before execve (SANDBOX.md 2.2).
 * Every step reports failure with a message; the launcher turns any failure into a refusal to
 * run the handler, never into a partially confined handler. */
#include "sandbox/jail.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

void sbx_limits_for(sbx_limits *out, uint32_t memory_mb, uint64_t cpu_seconds, sbx_profile p)
{
    uint64_t headroom = p == SBX_PROFILE_THREADS ? SBX_AS_HEADROOM_THREADS_MB : SBX_AS_HEADROOM_MB;
    out->as_bytes = ((uint64_t)memory_mb + headroom) << 20;
    out->cpu_seconds = cpu_seconds ? cpu_seconds : 1;
    out->nofile = p == SBX_PROFILE_STDIO ? 8 : 64;
    /* stdio/network-out never create tasks (clone is denied); threads count against NPROC. */
    out->nproc = p == SBX_PROFILE_THREADS ? 512 : 0;
    out->fsize = 0;
    out->stack = 8u << 20;
}

int sbx_jail_close_fds(int keep_fd, sl_err *err)
{
    int rc = 0;
    if (keep_fd >= 3) {
        if (keep_fd > 3) rc = close_range(3, (unsigned)keep_fd - 1, 0);
        if (!rc) rc = close_range((unsigned)keep_fd + 1, ~0U, 0);
        if (!rc && fcntl(keep_fd, F_SETFD, FD_CLOEXEC) < 0) rc = -1;
    } else {
        rc = close_range(3, ~0U, 0);
    }
    if (rc) return sl_err_set(err, -errno, "close_range: %s", strerror(errno));
    return 0;
}

int sbx_jail_new_session(sl_err *err)
{
    if (setsid() < 0) return sl_err_set(err, -errno, "setsid: %s", strerror(errno));
    return 0;
}

int sbx_jail_drop_privileges(uid_t uid, gid_t gid, sl_err *err)
{
    if (geteuid() != 0) return 0;
    if (uid == 0 || gid == 0)
        return sl_err_set(err, SL_EINVAL, "refusing to run a handler as uid/gid 0");
    if (setgroups(0, NULL) < 0) return sl_err_set(err, -errno, "setgroups: %s", strerror(errno));
    if (setresgid(gid, gid, gid) < 0)
        return sl_err_set(err, -errno, "setresgid(%u): %s", (unsigned)gid, strerror(errno));
    if (setresuid(uid, uid, uid) < 0)
        return sl_err_set(err, -errno, "setresuid(%u): %s", (unsigned)uid, strerror(errno));
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != uid || eu != uid ||
        su != uid || rg != gid || eg != gid || sg != gid)
        return sl_err_set(err, SL_EINTERNAL, "privilege drop did not take effect");
    if (setuid(0) == 0 || seteuid(0) == 0)
        return sl_err_set(err, SL_EINTERNAL, "root could be regained after the privilege drop");
    return 0;
}

int sbx_jail_lock_process(pid_t expected_parent, sl_err *err)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        return sl_err_set(err, -errno, "PR_SET_PDEATHSIG: %s", strerror(errno));
    /* The parent may have died before the call above: then nobody would ever signal us. */
    if (expected_parent > 0 && getppid() != expected_parent)
        return sl_err_set(err, SL_EINVAL, "parent %d exited during launch", (int)expected_parent);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        return sl_err_set(err, -errno, "PR_SET_DUMPABLE: %s", strerror(errno));
    return 0;
}

static int set_one(int res, const char *name, uint64_t v, sl_err *err)
{
    struct rlimit rl = {(rlim_t)v, (rlim_t)v};
    if (setrlimit(res, &rl) < 0)
        return sl_err_set(err, -errno, "setrlimit(%s=%llu): %s", name, (unsigned long long)v,
                          strerror(errno));
    return 0;
}

int sbx_jail_set_limits(const sbx_limits *l, sl_err *err)
{
    int rc = 0;
    if (l->as_bytes && (rc = set_one(RLIMIT_AS, "AS", l->as_bytes, err))) return rc;
    if ((rc = set_one(RLIMIT_CPU, "CPU", l->cpu_seconds, err)) ||
        (rc = set_one(RLIMIT_NOFILE, "NOFILE", l->nofile, err)) ||
        (rc = set_one(RLIMIT_NPROC, "NPROC", l->nproc, err)) ||
        (rc = set_one(RLIMIT_FSIZE, "FSIZE", l->fsize, err)) ||
        (rc = set_one(RLIMIT_STACK, "STACK", l->stack, err)) ||
        (rc = set_one(RLIMIT_CORE, "CORE", 0, err)) ||
        (rc = set_one(RLIMIT_MEMLOCK, "MEMLOCK", 0, err)) ||
        (rc = set_one(RLIMIT_MSGQUEUE, "MSGQUEUE", 0, err)) ||
        (rc = set_one(RLIMIT_RTPRIO, "RTPRIO", 0, err)))
        return rc;
    return 0;
}

#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#else
#define HOST_MACHINE EM_NONE
#endif

int sbx_jail_check_executable(const char *path, sl_err *err)
{
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return sl_err_set(err, SL_EINVAL, "handler %s: %s", path, strerror(errno));
    struct stat st;
    Elf64_Ehdr eh;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = sl_err_set(err, SL_EINVAL, "handler %s: not a regular file", path);
        goto out;
    }
    if (access(path, X_OK) < 0) {
        rc = sl_err_set(err, SL_EINVAL, "handler %s: not executable: %s", path, strerror(errno));
        goto out;
    }
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != HOST_MACHINE ||
        (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)) {
        rc = sl_err_set(err, SL_EINVAL, "handler %s: not an executable ELF file for this machine",
                        path);
        goto out;
    }
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 128) {
        rc = sl_err_set(err, SL_EINVAL, "handler %s: malformed program headers", path);
        goto out;
    }
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) !=
            (ssize_t)sizeof ph) {
            rc = sl_err_set(err, SL_EINVAL, "handler %s: truncated program headers", path);
            goto out;
        }
        if (ph.p_type == PT_INTERP) {
            rc = sl_err_set(err, SL_EINVAL,
                            "handler %s is dynamically linked; build it with -static", path);
            goto out;
        }
    }
out:
    close(fd);
    return rc;
}

void sbx_jail_prefer_oom_kill(void)
{
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    (void)!write(fd, "1000", 4);
    close(fd);
}
