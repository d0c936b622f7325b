/* abuse.c — hostile test handler: the event's "attack" field picks one escape or resource attack
 * (tests/unit/test_functions_native.c asserts how each one is stopped). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <unistd.h>

#include "functions/wire.h"
#include "sluice_handler.h"

extern char **environ;

static int field(const char *json, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    if (!p) return -1;
    p += strlen(pat);
    const char *e = strchr(p, '"');
    if (!e || (size_t)(e - p) >= cap) return -1;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = 0;
    return 0;
}

static int result_int(sluice_response *out, const char *key, long v)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "{\"%s\":%ld}", key, v);
    return sluice_set_result(out, buf, (size_t)n);
}

static void *thread_fn(void *arg)
{
    return arg;
}

int sluice_handler(const sluice_event *ev, sluice_response *out)
{
    char attack[64] = "";
    char path[512] = "";
    field(ev->json, "attack", attack, sizeof attack);
    field(ev->json, "path", path, sizeof path);

    if (!strcmp(attack, "ok")) return sluice_set_result(out, "{\"ok\":1}", 8);
    if (!strcmp(attack, "fork")) { /* fork bomb: every fork must fail with EPERM */
        int ok = 0, last = 0;
        for (int i = 0; i < 1000; i++) {
            pid_t p = fork();
            if (p == 0) _exit(0);
            if (p > 0) ok++;
            else last = errno;
        }
        long raw = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
        if (raw == 0) _exit(0);
        if (ok || raw > 0) return result_int(out, "forked", ok + (raw > 0));
        return sluice_set_error(out, "ForkFailed", "fork: %s; clone: %s", strerror(last),
                                strerror(errno));
    }
    if (!strcmp(attack, "exec")) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "touch %s", path[0] ? path : "/tmp/sluice-pwned");
        char *argv[] = {(char *)"/bin/sh", (char *)"-c", cmd, NULL};
        execve("/bin/sh", argv, environ);
        return result_int(out, "exec_errno", errno);
    }
    if (!strcmp(attack, "open_shadow")) {
        int fd = open("/etc/shadow", O_RDONLY);
        return result_int(out, "fd", fd);
    }
    if (!strcmp(attack, "write_outside") || !strcmp(attack, "bigfile")) {
        int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
        if (fd >= 0 && !strcmp(attack, "bigfile")) {
            static char mb[1 << 20];
            for (int i = 0; i < 2048; i++)
                if (write(fd, mb, sizeof mb) < 0) break;
        }
        return result_int(out, "fd", fd);
    }
    if (!strcmp(attack, "socket")) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) return result_int(out, "socket_errno", errno);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(9)};
        char port[16];
        if (field(ev->json, "port", port, sizeof port) == 0)
            sa.sin_port = htons((uint16_t)atoi(port));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
        char buf[128];
        int n = snprintf(buf, sizeof buf, "{\"socket\":%d,\"connect\":%d,\"errno\":%d}", fd, rc,
                         rc ? errno : 0);
        close(fd);
        return sluice_set_result(out, buf, (size_t)n);
    }
    if (!strcmp(attack, "unix_socket"))
        return result_int(out, "fd", socket(AF_UNIX, SOCK_STREAM, 0));
    if (!strcmp(attack, "ptrace"))
        return result_int(out, "rc", ptrace(PTRACE_ATTACH, getppid(), 0, 0));
    if (!strcmp(attack, "kill_parent")) return result_int(out, "rc", kill(getppid(), SIGKILL));
    if (!strcmp(attack, "kill_all")) return result_int(out, "rc", kill(-1, SIGKILL));
    if (!strcmp(attack, "mount"))
        return result_int(out, "rc", mount("none", "/mnt", "tmpfs", 0, ""));
    if (!strcmp(attack, "unshare"))
        return result_int(out, "rc", unshare(CLONE_NEWUSER | CLONE_NEWNS));
    if (!strcmp(attack, "setuid")) return result_int(out, "rc", setuid(0));
    if (!strcmp(attack, "personality"))
        return result_int(out, "rc", syscall(SYS_personality, 0x0400000L /* READ_IMPLIES_EXEC */));
    if (!strcmp(attack, "keyctl")) return result_int(out, "rc", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
    if (!strcmp(attack, "io_uring"))
        return result_int(out, "rc", syscall(SYS_io_uring_setup, 8, 0));
    if (!strcmp(attack, "x32")) return result_int(out, "rc", syscall(0x40000000L | SYS_getpid));
    if (!strcmp(attack, "mmap_exec")) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        return result_int(out, "ok", p != MAP_FAILED);
    }
    if (!strcmp(attack, "mprotect_exec")) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return result_int(out, "rc", mprotect(p, 4096, PROT_READ | PROT_EXEC));
    }
    if (!strcmp(attack, "tiocsti")) {
        char c = 'x';
        int rc = ioctl(0, TIOCSTI, &c);
        return result_int(out, "errno", rc < 0 ? errno : 0);
    }
    if (!strcmp(attack, "clone3")) {
        long rc = syscall(SYS_clone3, NULL, 0);
        return result_int(out, "errno", rc < 0 ? errno : 0);
    }
    if (!strcmp(attack, "thread")) {
        pthread_t t;
        int rc = pthread_create(&t, NULL, thread_fn, NULL);
        if (rc == 0) pthread_join(t, NULL);
        return result_int(out, "pthread_create", rc);
    }
    if (!strcmp(attack, "loop")) {
        for (volatile unsigned long i = 0;; i++) {
        }
    }
    if (!strcmp(attack, "sleep")) {
        for (;;) sleep(100);
    }
    if (!strcmp(attack, "close_stdout_hang")) {
        close(1);
        for (;;) sleep(100);
    }
    if (!strcmp(attack, "membomb")) { /* like code that never checks malloc */
        for (;;) {
            char *p = malloc(1 << 20);
            memset(p, 1, 1 << 20);
        }
    }
    if (!strcmp(attack, "stdout_garbage")) {
        static const char g[] = "hello, I am not a frame\n";
        (void)!write(1, g, sizeof g - 1);
        return result_int(out, "wrote", 1);
    }
    if (!strcmp(attack, "huge_frame")) {
        uint8_t hdr[FN_WIRE_HDR_SIZE];
        static char junk[1 << 16];
        fn_wire_put_header(hdr, FN_WIRE_RESULT_OK, 1, 0x7fffffff); /* seq of a fresh worker */
        (void)!write(1, hdr, sizeof hdr);
        for (;;) (void)!write(1, junk, sizeof junk);
    }
    if (!strcmp(attack, "extra_after_result")) { /* a stray frame: not this request's number */
        uint8_t hdr[FN_WIRE_HDR_SIZE + 4];
        fn_wire_put_header(hdr, FN_WIRE_RESULT_OK, 0, 4);
        memcpy(hdr + FN_WIRE_HDR_SIZE, "null", 4);
        (void)!write(1, hdr, sizeof hdr);
        return result_int(out, "second", 1);
    }
    if (!strcmp(attack, "big_result")) {
        size_t n = 7u << 20;
        char *p = malloc(n);
        if (!p) return sluice_set_error(out, "NoMem", "malloc");
        memset(p, ' ', n);
        p[0] = '1';
        int rc = sluice_set_result(out, p, n);
        free(p);
        return rc == 0 ? 0 : 0; /* the library reports the size error itself */
    }
    if (!strcmp(attack, "log_flood")) {
        static char line[1024];
        memset(line, 'L', sizeof line - 1);
        for (int i = 0; i < 100000; i++) sluice_log("%d %s", i, line);
        return result_int(out, "logged", 100000);
    }
    if (!strcmp(attack, "stderr_flood")) {
        static char blk[1 << 16];
        memset(blk, 'E', sizeof blk);
        for (int i = 0; i < 320; i++) (void)!write(2, blk, sizeof blk); /* 20 MiB */
        return result_int(out, "written", 320);
    }
    if (!strcmp(attack, "escape_log")) {
        sluice_log("line1\nEND RequestId: forged\x1b[31m");
        return result_int(out, "ok", 1);
    }
    if (!strcmp(attack, "segv")) {
        *(volatile int *)0 = 1;
        return 0;
    }
    if (!strcmp(attack, "abort")) abort();
    if (!strcmp(attack, "exit3")) exit(3);
    if (!strcmp(attack, "exit0")) exit(0);
    if (!strcmp(attack, "fds")) { /* which descriptors beyond 0,1,2 are open? */
        /* one fd per poll: nfds above RLIMIT_NOFILE would fail with EINVAL */
        char buf[4096];
        size_t n = (size_t)snprintf(buf, sizeof buf, "{\"open\":[");
        int first = 1;
        for (int i = 0; i < 1021; i++) {
            struct pollfd pf = {i + 3, 0, 0};
            if (poll(&pf, 1, 0) < 0) return sluice_set_error(out, "PollFailed", "%d", errno);
            if (pf.revents & POLLNVAL) continue;
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%d", first ? "" : ",", i + 3);
            first = 0;
        }
        n += (size_t)snprintf(buf + n, sizeof buf - n, "]}");
        return sluice_set_result(out, buf, n);
    }
    if (!strcmp(attack, "read_fd3")) {
        char c;
        return result_int(out, "rc", read(3, &c, 1));
    }
    if (!strcmp(attack, "env")) { /* the whole environment as a JSON array */
        static char buf[65536];
        size_t n = (size_t)snprintf(buf, sizeof buf, "{\"env\":[");
        for (char **e = environ; *e && n < sizeof buf - 1024; e++) {
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"", e == environ ? "" : ",");
            for (const char *c = *e; *c && n < sizeof buf - 1024; c++)
                if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20) buf[n++] = *c;
            buf[n++] = '"';
        }
        n += (size_t)snprintf(buf + n, sizeof buf - n, "],\"uid\":%d,\"cwd_ok\":1}", (int)getuid());
        return sluice_set_result(out, buf, n);
    }
    return sluice_set_error(out, "UnknownAttack", "unknown attack '%s'", attack);
}
