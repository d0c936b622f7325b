/* log.h — daemon logging with a subsystem tag (STYLE.md 11): one line per event of note, to
 * stderr. Thread-safe (one write(2) per line). Invocation logs (START/END/REPORT) are not here:
 * they belong to functions/logs.c. */
#ifndef RT_LOG_H
#define RT_LOG_H

enum rt_level { RT_DEBUG = 0, RT_INFO, RT_WARN, RT_ERR };

void rt_log_set_level(enum rt_level lvl);
void rt_log(enum rt_level lvl, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like rt_log, appending ": strerror(errno)" (errno as it was on entry). */
#define RT_PLOG(lvl, subsys, ...) rt_plog(lvl, subsys, __VA_ARGS__)
void rt_plog(enum rt_level lvl, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
