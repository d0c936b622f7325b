/* daemon.c — `sluice serve`: data directory lock, broker, HTTP front, housekeeping timer,
 * signals (STYLE.md 8: signals set flags, the loop acts) and the ordered shutdown:
 * stop accepting -> answer requests in flight -> close handles -> close the broker. */
#include "runtime/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "functions/invoke.h"
#include "runtime/auth.h"
#include "runtime/esm.h"
#include "runtime/functions_host.h"
#include "runtime/log.h"
#include "runtime/version.h"

typedef struct serve_state {
    rt_daemon d;
    rt_config cfg;
    uv_signal_t sigint, sigterm;
    uv_timer_t maintain;
    int lock_fd;
    int stopping;
    unsigned ticks;
} serve_state;

/* mkdir -p for the data directory. */
static int make_dirs(const char *path)
{
    char buf[1024];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -errno;
    return 0;
}

/* One daemon per data directory: an exclusive flock on DATA/sluice.lock, holding our pid. */
static int lock_data_dir(const char *dir, int *fd_out)
{
    char path[1100], pid[32] = "";
    int fd;

    snprintf(path, sizeof path, "%s/sluice.lock", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "sluice: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
        pid[r > 0 ? r : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        fprintf(stderr,
                "sluice: data directory %s is in use by another sluice (pid %s); stop it or use "
                "--data-dir\n",
                dir, pid[0] ? pid : "unknown");
        close(fd);
        return -1;
    }
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        fprintf(stderr, "sluice: cannot write %s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    *fd_out = fd;
    return 0;
}

static void on_maintain(uv_timer_t *t)
{
    serve_state *s = t->data;
    brk_maintain(s->d.broker);
    fn_runtime_reap(s->d.functions);
    /* Every 10 s hand memory freed after bursts (request bodies, read batches) back to the OS,
     * so an idle daemon's RSS does not stay at its high-water mark (glibc keeps freed heap). */
    if (++s->ticks % 10 == 0) malloc_trim(0);
}

/* Shutdown, last step: the mappings have stopped (in-flight batches answered and
 * checkpointed); close our own handles so that uv_run returns. */
static void on_esm_closed(void *ctx)
{
    serve_state *s = ctx;
    s->d.esm = NULL;
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->maintain, NULL);
}

/* Shutdown, first step: no more requests; then stop the mappings. */
static void on_http_stopped(void *ctx)
{
    serve_state *s = ctx;
    s->d.http = NULL;
    esm_mgr_close(s->d.esm, on_esm_closed, s);
}

static void on_signal(uv_signal_t *h, int signum)
{
    serve_state *s = h->data;
    if (s->stopping++) {
        rt_log(RT_WARN, "daemon", "second signal %d: exiting now", signum);
        _exit(1);
    }
    rt_log(RT_INFO, "daemon", "signal %d: shutting down", signum);
    uv_timer_stop(&s->maintain);
    http_server_stop(s->d.http, on_http_stopped, s);
}

int rt_serve_main(int argc, char **argv)
{
    serve_state s;
    sl_err err = {0, ""};
    int rc;
    uint64_t t0 = sl_mono_ns();

    memset(&s, 0, sizeof s);
    s.lock_fd = -1;
    rc = rt_config_parse(&s.cfg, argc, argv);
    if (rc == 1) return 0;
    if (rc) return rc;
    if (s.cfg.quiet) rt_log_set_level(RT_WARN);
    if (s.cfg.auth_file[0]) {
        if (rt_auth_load(&s.d.auth, s.cfg.auth_file, &err) != 0) {
            fprintf(stderr, "sluice: %s\n", err.msg);
            return 2;
        }
    }
    if (s.cfg.check_only) {
        printf("configuration ok\n");
        rt_auth_free(s.d.auth);
        return 0;
    }

    if ((rc = make_dirs(s.cfg.data_dir)) != 0) {
        fprintf(stderr, "sluice: cannot create data directory %s: %s\n", s.cfg.data_dir,
                strerror(-rc));
        rt_auth_free(s.d.auth);
        return 1;
    }
    if (lock_data_dir(s.cfg.data_dir, &s.lock_fd) != 0) {
        rt_auth_free(s.d.auth);
        return 1;
    }

    brk_opts bo = {
        .data_dir = s.cfg.data_dir,
        .fsync = s.cfg.fsync,
        .region = s.cfg.region,
        .account = s.cfg.account,
        .throttle = s.cfg.throttle,
        .transition_ms = s.cfg.transition_ms,
    };
    if (brk_open(&s.d.broker, &bo, &err) != 0) {
        fprintf(stderr, "sluice: cannot open data directory %s: %s\n", s.cfg.data_dir, err.msg);
        goto fail;
    }

    /* Lua invocations, native round trips, fsync=always puts and destinations run on the
     * libuv threadpool: give it room for concurrent functions (the user's setting wins). */
    setenv("UV_THREADPOOL_SIZE", "16", 0);
    s.d.loop = uv_default_loop();
    s.d.cfg = &s.cfg;
    s.d.started_ms = sl_now_ms();

    ssize_t n = readlink("/proc/self/exe", s.d.launcher, sizeof s.d.launcher - 1);
    if (n <= 0) {
        fprintf(stderr, "sluice: cannot find its own executable: %s\n", strerror(errno));
        goto fail;
    }
    s.d.launcher[n] = '\0';
    fn_store store;
    rt_fn_store(s.d.broker, &store);
    fn_runtime_opts fo = {
        .data_dir = s.cfg.data_dir,
        .region = s.cfg.region,
        .account = s.cfg.account,
        .launcher = s.d.launcher,
        .store = &store,
    };
    rt_fn_host(s.d.broker, &fo.host);
    if (fn_runtime_new(&s.d.functions, &fo, &err) != 0) {
        fprintf(stderr, "sluice: cannot open the function runtime: %s\n", err.msg);
        goto fail;
    }
    esm_invoker inv;
    rt_esm_invoker(&s.d, &inv);
    esm_mgr_opts eo = {
        .loop = s.d.loop,
        .broker = s.d.broker,
        .data_dir = s.cfg.data_dir,
        .region = s.cfg.region,
        .account = s.cfg.account,
        .invoker = &inv,
        .transition_ms = (uint32_t)s.cfg.transition_ms,
    };
    if (esm_mgr_new(&s.d.esm, &eo) != 0 || esm_mgr_start(s.d.esm, &err) != 0) {
        fprintf(stderr, "sluice: cannot start the event-source mappings: %s\n", err.msg);
        goto fail;
    }

    http_server_opts ho = {
        .host = s.cfg.listen_host,
        .port = s.cfg.listen_port,
        .max_body = s.cfg.max_body,
        .idle_timeout_ms = s.cfg.idle_timeout_ms,
    };
    rc = http_server_start(&s.d.http, s.d.loop, &ho, rt_route, &s.d);
    if (rc != 0) {
        fprintf(stderr, "sluice: cannot listen on %s:%d: %s\n", s.cfg.listen_host,
                s.cfg.listen_port, strerror(-rc));
        goto fail;
    }

    uv_signal_init(s.d.loop, &s.sigint);
    uv_signal_init(s.d.loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_timer_init(s.d.loop, &s.maintain);
    s.maintain.data = &s;
    uv_timer_start(&s.maintain, on_maintain, 1000, 1000);

    rt_log(RT_INFO, "daemon", "sluice %s listening on http://%s:%d (data %s, fsync %s) in %.1f ms",
           SLUICE_VERSION, s.cfg.listen_host, http_server_port(s.d.http), s.cfg.data_dir,
           s.cfg.fsync == BRK_FSYNC_ALWAYS ? "always"
           : s.cfg.fsync == BRK_FSYNC_NO   ? "no"
                                           : "everysec",
           (double)(sl_mono_ns() - t0) / 1e6);

    uv_run(s.d.loop, UV_RUN_DEFAULT);

    if (uv_loop_close(s.d.loop) != 0)
        rt_log(RT_WARN, "daemon", "event loop closed with handles still open");
    fn_runtime_free(s.d.functions);
    brk_close(s.d.broker);
    rt_auth_free(s.d.auth);
    close(s.lock_fd);
    rt_log(RT_INFO, "daemon", "stopped");
    return 0;

fail:
    if (s.d.http) http_server_stop(s.d.http, NULL, NULL);
    if (s.d.esm) esm_mgr_close(s.d.esm, NULL, NULL);
    if (s.d.loop) {
        uv_run(s.d.loop, UV_RUN_DEFAULT);
        uv_loop_close(s.d.loop);
    }
    fn_runtime_free(s.d.functions);
    brk_close(s.d.broker);
    rt_auth_free(s.d.auth);
    if (s.lock_fd >= 0) close(s.lock_fd);
    return 1;
}
