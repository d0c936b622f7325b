/* log.c — see log.h. */
#include "runtime/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum rt_level min_level = RT_INFO;

void rt_log_set_level(enum rt_level lvl) { min_level = lvl; }

static void vlog(enum rt_level lvl, const char *subsys, int errnum, const char *fmt, va_list ap)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;

    if (lvl < min_level) return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %-5s %-7s ", ts.tv_nsec / 1000000,
                          names[lvl], subsys);
    if (n < sizeof line) {
        int w = vsnprintf(line + n, sizeof line - n, fmt, ap);
        if (w > 0) n += (size_t)w;
    }
    if (n >= sizeof line - 2) n = sizeof line - 2;
    if (errnum) {
        int w = snprintf(line + n, sizeof line - n, ": %s", strerror(errnum));
        if (w > 0) n += (size_t)w;
        if (n >= sizeof line - 2) n = sizeof line - 2;
    }
    line[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, n);
    (void)ignored;
}

void rt_log(enum rt_level lvl, const char *subsys, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, subsys, 0, fmt, ap);
    va_end(ap);
}

void rt_plog(enum rt_level lvl, const char *subsys, const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, subsys, e, fmt, ap);
    va_end(ap);
}
