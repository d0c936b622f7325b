/* jail.h — process confinement steps of the trusted launcher (SANDBOX.md 2.2/2.5) and the
 * launcher's entry point.
 *
 * The daemon never runs these in its own process: they are called by the launcher (the `sluice`
 * binary in internal mode `__launch`), a fresh single-threaded process started with posix_spawn,
 * which confines itself step by step and finally execve()s the static handler.
 *
 * Launcher command line (argv[0] is the program; an argv[1] of "__launch" is skipped):
 *   __launch [options] -- <handler-executable>
 *     --dir PATH          working directory (the function's code directory; required)
 *     --memory-mb N       function memory size; RLIMIT_AS = N MiB + headroom (default 128)
 *     --cpu-seconds N     RLIMIT_CPU, soft = hard (default 3)
 *     --profile P         stdio | threads | network-out (default stdio)
 *     --uid N --gid N     unprivileged ids used when started as root (default 65534/65534)
 *     --env-fd N          read the handler's environment from fd N: NUL-separated KEY=VALUE
 *                         entries, at most 64 KiB (a memfd; keeps secrets off the command line)
 *     --status-fd N       report a failure before execve as "errorType\nmessage" on fd N; the fd
 *                         is close-on-exec, so end-of-file without data means the exec happened
 *     --parent-pid N      exit at once if the parent is not N after PR_SET_PDEATHSIG
 *     --version           print "sluice-launch 1" and exit 0 (probe)
 * Exit status 127 when anything fails before execve.
 */
#ifndef SBX_JAIL_H
#define SBX_JAIL_H

#include <stdint.h>
#include <sys/types.h>

#include "broker/sl_common.h"
#include "sandbox/seccomp_profile.h"

/* Headroom added to the memory size for RLIMIT_AS: static text, stack reservation, malloc
 * arenas' address space (threads profile reserves much more for per-thread stacks/arenas). */
#define SBX_AS_HEADROOM_MB 64u
#define SBX_AS_HEADROOM_THREADS_MB 512u

typedef struct sbx_limits {
    uint64_t as_bytes;      /* RLIMIT_AS; 0 = leave unlimited */
    uint64_t cpu_seconds;   /* RLIMIT_CPU */
    uint64_t nofile;        /* RLIMIT_NOFILE */
    uint64_t nproc;         /* RLIMIT_NPROC (per real uid, not enforced for root) */
    uint64_t fsize;         /* RLIMIT_FSIZE */
    uint64_t stack;         /* RLIMIT_STACK */
} sbx_limits;

/* Fills the limits for a function: memory MiB, CPU seconds, profile. RLIMIT_CORE, MEMLOCK,
 * MSGQUEUE and RTPRIO are always 0. */
void sbx_limits_for(sbx_limits *out, uint32_t memory_mb, uint64_t cpu_seconds, sbx_profile p);

/* Closes every descriptor >= 3 except keep_fd (-1 for none), which becomes close-on-exec. */
int sbx_jail_close_fds(int keep_fd, sl_err *err);

/* Starts a new session (no controlling terminal; process-group leader for kill(-pgid)). */
int sbx_jail_new_session(sl_err *err);

/* When running with euid 0: drops supplementary groups, then gid and uid (real, effective, saved)
 * and verifies that root cannot be regained. A no-op for an unprivileged caller. */
int sbx_jail_drop_privileges(uid_t uid, gid_t gid, sl_err *err);

/* PR_SET_PDEATHSIG(SIGKILL), PR_SET_DUMPABLE(0); fails if the parent is no longer
 * expected_parent (0 skips that check). Call after dropping privileges: credential changes
 * reset both attributes. */
int sbx_jail_lock_process(pid_t expected_parent, sl_err *err);

/* Applies every limit with soft = hard (and CORE/MEMLOCK/MSGQUEUE/RTPRIO = 0). Call after
 * dropping privileges (RLIMIT_NPROC = 0 before setuid would make the later execve fail). */
int sbx_jail_set_limits(const sbx_limits *l, sl_err *err);

/* Checks that path is a regular, executable, statically linked ELF file for this machine
 * (no PT_INTERP): a dynamic loader cannot start under the filter. SL_EINVAL with a message. */
int sbx_jail_check_executable(const char *path, sl_err *err);

/* Best effort: oom_score_adj = 1000 so the kernel picks handlers before the daemon. */
void sbx_jail_prefer_oom_kill(void);

/* The launcher (see the command line above). Never returns on success (execve). */
int sbx_launcher_main(int argc, char **argv);

#endif
