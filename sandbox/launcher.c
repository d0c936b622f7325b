/* launcher.c — `sluice __launch`: the trusted launcher that confines itself and execve()s a
 * static native handler (SANDBOX.md decision 3, 2.1/2.2). Command line documented in jail.h.
 *
 * Order matters and each step says why:
 *   read env fd   before closing descriptors (it is one of them)
 *   close fds     the handler sees only 0, 1, 2 (plus the close-on-exec status fd until exec)
 *   setsid        no controlling terminal; process-group leader so kill(-pgid) reaches it all
 *   oom_score_adj while still allowed to write /proc/self
 *   drop root     setgroups/setresgid/setresuid, verified
 *   pdeathsig, dumpable 0   after the uid change, which resets both
 *   chdir, check  as the unprivileged uid: the handler must be readable and executable by it
 *   compile BPF   libseccomp builds the program while allocation is still possible
 *   rlimits       after the uid change (RLIMIT_NPROC 0 before setuid would fail the execve)
 *   seccomp       last: no_new_privs + the allow-list, with execve allowed only for the exact
 *                 pointer passed to the execve below.
 *
 * Why a one-shot pointer rule and not "execve denied": the filter must be installed before the
 * handler's first instruction (so it cannot be in place after the exec only) and it survives the
 * exec. The allowed pathname pointer is an address inside this launcher's randomized address
 * space that the new program cannot learn; any other execve is killed. On top, the handler
 * library's main() installs a second filter that kills every execve (it cannot be removed), so a
 * handler built against the library loses even the theoretical guess once main() runs.
 */
#include "sandbox/jail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENV_MAX_BYTES (64 * 1024)
#define ENV_MAX_ENTRIES 512

typedef struct launch_opts {
    const char *dir;
    const char *exe;
    uint32_t memory_mb;
    uint64_t cpu_seconds;
    sbx_profile profile;
    uid_t uid;
    gid_t gid;
    int env_fd;
    int status_fd;
    pid_t parent;
} launch_opts;

/* Reports a failure before execve: to the status fd when given, else to stderr. */
static int fail(const launch_opts *o, const char *type, const char *msg)
{
    char buf[SL_ERR_MSG_MAX + 128];
    int fd = o && o->status_fd >= 0 ? o->status_fd : 2;
    int n = snprintf(buf, sizeof buf, fd == 2 ? "sluice-launch: %s: %s\n" : "%s\n%s", type, msg);
    if (n > 0) (void)!write(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    return 127;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *e;
    errno = 0;
    if (!s || *s < '0' || *s > '9') return -1;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || *e || v > max) return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, launch_opts *o, sl_err *err)
{
    int i = 1;
    if (i < argc && !strcmp(argv[i], "__launch")) i++;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n = 0;
        if (!strcmp(a, "--")) {
            if (i + 2 != argc) return sl_err_set(err, SL_EINVAL, "expected one path after --");
            o->exe = argv[i + 1];
            return 0;
        }
        if (!strcmp(a, "--dir") && v) {
            o->dir = v;
        } else if (!strcmp(a, "--profile") && v) {
            int rc = sbx_profile_parse(v, &o->profile, err);
            if (rc) return rc;
        } else if (!strcmp(a, "--memory-mb") && v && !parse_u64(v, 1u << 20, &n) && n > 0) {
            o->memory_mb = (uint32_t)n;
        } else if (!strcmp(a, "--cpu-seconds") && v && !parse_u64(v, 1u << 30, &n) && n > 0) {
            o->cpu_seconds = n;
        } else if (!strcmp(a, "--uid") && v && !parse_u64(v, 0xfffffffeu, &n)) {
            o->uid = (uid_t)n;
        } else if (!strcmp(a, "--gid") && v && !parse_u64(v, 0xfffffffeu, &n)) {
            o->gid = (gid_t)n;
        } else if (!strcmp(a, "--env-fd") && v && !parse_u64(v, 1u << 20, &n)) {
            o->env_fd = (int)n;
        } else if (!strcmp(a, "--status-fd") && v && !parse_u64(v, 1u << 20, &n)) {
            o->status_fd = (int)n;
        } else if (!strcmp(a, "--parent-pid") && v && !parse_u64(v, 1u << 30, &n)) {
            o->parent = (pid_t)n;
        } else {
            return sl_err_set(err, SL_EINVAL, "bad launcher argument '%s'", a);
        }
        i++;
    }
    return sl_err_set(err, SL_EINVAL, "missing -- <handler>");
}

/* Reads NUL-separated KEY=VALUE entries from fd into a malloc'd envp. */
static int read_env(int fd, char ***out, sl_err *err)
{
    char *buf = malloc(ENV_MAX_BYTES + 1);
    char **envp = calloc(ENV_MAX_ENTRIES + 1, sizeof *envp);
    size_t len = 0;
    int rc = 0;
    if (!buf || !envp) {
        rc = sl_err_set(err, SL_ENOMEM, "out of memory reading the environment");
        goto fail;
    }
    if (fd >= 0) {
        for (;;) {
            ssize_t r = read(fd, buf + len, ENV_MAX_BYTES + 1 - len);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                rc = sl_err_set(err, -errno, "read env fd: %s", strerror(errno));
                goto fail;
            }
            if (r == 0) break;
            len += (size_t)r;
            if (len > ENV_MAX_BYTES) {
                rc = sl_err_set(err, SL_ETOOBIG, "environment larger than %d bytes",
                                ENV_MAX_BYTES);
                goto fail;
            }
        }
        close(fd);
    }
    buf[len] = 0;
    size_t n = 0;
    for (size_t off = 0; off < len;) {
        char *e = buf + off;
        size_t l = strlen(e);
        char *eq = strchr(e, '=');
        if (l && (!eq || eq == e)) {
            rc = sl_err_set(err, SL_EINVAL, "malformed environment entry");
            goto fail;
        }
        if (l) {
            if (n == ENV_MAX_ENTRIES) {
                rc = sl_err_set(err, SL_ETOOBIG, "more than %d environment entries",
                                ENV_MAX_ENTRIES);
                goto fail;
            }
            envp[n++] = e;
        }
        off += l + 1;
    }
    *out = envp; /* buf stays alive: the entries point into it until execve */
    return 0;
fail:
    free(buf);
    free(envp);
    return rc;
}

int sbx_launcher_main(int argc, char **argv)
{
    launch_opts o = {NULL, NULL, 128, 3, SBX_PROFILE_STDIO, 65534, 65534, -1, -1, 0};
    sl_err err = {0, ""};
    char **envp = NULL;
    if (argc >= 2 && argc <= 3 && !strcmp(argv[argc - 1], "--version")) {
        printf("sluice-launch 1\n");
        return 0;
    }
    if (parse_args(argc, argv, &o, &err)) return fail(&o, "Sandbox.SetupFailed", err.msg);
    if (!o.dir) return fail(&o, "Sandbox.SetupFailed", "missing --dir");
    if (read_env(o.env_fd, &envp, &err)) return fail(&o, "Sandbox.SetupFailed", err.msg);
    if (sbx_jail_close_fds(o.status_fd, &err) || sbx_jail_new_session(&err))
        return fail(&o, "Sandbox.SetupFailed", err.msg);
    sbx_jail_prefer_oom_kill();
    sbx_limits lim;
    sbx_limits_for(&lim, o.memory_mb, o.cpu_seconds, o.profile);
    /* Open the code directory while still privileged: the data directory above it may be
     * closed to the unprivileged uid (e.g. mode 0700), and the handler needs only its own
     * directory. After the drop, fchdir into it; relative paths then resolve from there. */
    int dirfd = open(o.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        sl_err_set(&err, -errno, "chdir %s: %s", o.dir, strerror(errno));
        return fail(&o, "Runtime.InvalidEntrypoint", err.msg);
    }
    if (sbx_jail_drop_privileges(o.uid, o.gid, &err) || sbx_jail_lock_process(o.parent, &err))
        return fail(&o, "Sandbox.SetupFailed", err.msg);
    if (fchdir(dirfd) < 0) {
        sl_err_set(&err, -errno, "chdir %s: %s", o.dir, strerror(errno));
        return fail(&o, "Runtime.InvalidEntrypoint", err.msg);
    }
    close(dirfd);
    if (sbx_jail_check_executable(o.exe, &err))
        return fail(&o, "Runtime.InvalidEntrypoint", err.msg);

    /* Compile the filter while allocation is still possible, then limits, then load: nothing
     * below allocates (RLIMIT_AS would refuse it, and under sanitizers it always would). */
    char *hargv[2] = {(char *)o.exe, NULL};
    sbx_seccomp_opts so = {o.profile, getpid(), o.exe};
    sbx_bpf prog;
    if (sbx_seccomp_compile(&so, &prog, &err)) return fail(&o, "Sandbox.SetupFailed", err.msg);
    if (sbx_jail_set_limits(&lim, &err) || sbx_seccomp_install(&prog, &err))
        return fail(&o, "Sandbox.SetupFailed", err.msg);
    execve(o.exe, hargv, envp);
    /* Only write(2) and exit remain possible under the filter. */
    static const char msg[] = "sluice-launch: execve of the handler failed\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(127);
}
