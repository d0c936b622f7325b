/* seccomp_profile.h — the libseccomp allow-lists native handlers run under (SANDBOX.md 2.3/2.4).
 *
 * Default action KILL_PROCESS; any non-native architecture or x32 number is killed; a few probes
 * that well-behaved libc code makes are answered with an errno (clone3 -> ENOSYS, ioctl -> ENOTTY,
 * fork/vfork/non-thread clone -> EPERM, newfstatat -> EPERM, statx -> ENOSYS, lseek -> ESPIPE,
 * readlink -> ENOENT). madvise is allowed for DONTNEED/FREE/NORMAL only.
 *
 * Profiles are additive: stdio (default) < threads; stdio < network-out.
 */
#ifndef SBX_SECCOMP_PROFILE_H
#define SBX_SECCOMP_PROFILE_H

#include <stdint.h>
#include <sys/types.h>

#include "broker/sl_common.h"

typedef enum sbx_profile {
    SBX_PROFILE_STDIO = 0,
    SBX_PROFILE_THREADS = 1,
    SBX_PROFILE_NETWORK_OUT = 2,
} sbx_profile;

/* "stdio" | "threads" | "network-out" -> profile. SL_EINVAL (with message) for anything else. */
int sbx_profile_parse(const char *name, sbx_profile *out, sl_err *err);
const char *sbx_profile_name(sbx_profile p);

typedef struct sbx_seccomp_opts {
    sbx_profile profile;
    pid_t self_pid;            /* tgkill is allowed only towards this thread group */
    const char *exec_path;     /* if non-NULL: execve allowed only with exactly this pointer */
} sbx_seccomp_opts;

/* A compiled BPF program (malloc'd instructions; sbx_bpf_free). */
typedef struct sbx_bpf {
    void *insns;               /* struct sock_filter[n] */
    size_t n;
} sbx_bpf;

/* Builds the filter with libseccomp and exports its BPF program. */
int sbx_seccomp_compile(const sbx_seccomp_opts *o, sbx_bpf *out, sl_err *err);

/* Sets no_new_privs and loads a compiled program into the calling thread. Allocates nothing, so
 * it can run after RLIMIT_AS is in place (and under sanitizers, whose shadow mappings would make
 * any later allocation fail). Must be called single-threaded, the last step before execve. */
int sbx_seccomp_install(const sbx_bpf *prog, sl_err *err);
void sbx_bpf_free(sbx_bpf *prog);

/* compile + install. Returns 0, or -errno / SL_E* with err filled. */
int sbx_seccomp_load(const sbx_seccomp_opts *o, sl_err *err);

/* Builds the filter and writes its BPF program to fd (for inspection and tests); does not load. */
int sbx_seccomp_export(const sbx_seccomp_opts *o, int fd, sl_err *err);

#endif
