/* logs.c — see logs.h. */
#include "functions/logs.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/sl_common.h"

/* Open log files, kept across invocations: opening, stat-ing and closing the file for every
 * invocation cost about 5% of a warm Lua invocation. */
#define OPEN_FILES 64
typedef struct open_log {
    char function[72];
    int fd;
    uint64_t size;
    uint64_t used;        /* LRU clock */
} open_log;

struct fn_logs {
    pthread_mutex_t mu;   /* serialises appends, rotation and the open-file table */
    char dir[512];        /* DATA/logs */
    size_t max_bytes;
    unsigned keep;
    open_log open[OPEN_FILES];
    uint64_t clock;
};

int fn_logs_open(fn_logs **out, const char *data_dir, size_t max_bytes, unsigned keep)
{
    fn_logs *l = sl_calloc(1, sizeof *l);
    if (!l) return SL_ENOMEM;
    snprintf(l->dir, sizeof l->dir, "%s/logs", data_dir);
    if (mkdir(l->dir, 0755) != 0 && errno != EEXIST) {
        int rc = -errno;
        sl_free(l);
        return rc;
    }
    pthread_mutex_init(&l->mu, NULL);
    for (int i = 0; i < OPEN_FILES; i++) l->open[i].fd = -1;
    l->max_bytes = max_bytes ? max_bytes : 8u << 20;
    l->keep = keep ? keep : 2;
    *out = l;
    return 0;
}

void fn_logs_close(fn_logs *l)
{
    if (!l) return;
    for (int i = 0; i < OPEN_FILES; i++)
        if (l->open[i].fd >= 0) close(l->open[i].fd);
    pthread_mutex_destroy(&l->mu);
    sl_free(l);
}

int fn_logs_format(const fn_log_report *r, const char *body, size_t body_len, char **out,
                   size_t *len)
{
    char head[128], tail[512];
    int hn, tn;
    bool nl = body_len > 0 && body[body_len - 1] != '\n';
    double billed = ceil(r->duration_ms);

    if (billed < 1) billed = 1;
    hn = snprintf(head, sizeof head, "START RequestId: %s Version: $LATEST\n", r->request_id);
    tn = snprintf(tail, sizeof tail,
                  "END RequestId: %s\nREPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: "
                  "%.0f ms\tMemory Size: %u MB\tMax Memory Used: %u MB\t",
                  r->request_id, r->request_id, r->duration_ms, billed, r->memory_mb,
                  r->max_memory_used_mb);
    if (r->init_duration_ms >= 0 && tn > 0 && (size_t)tn < sizeof tail)
        tn += snprintf(tail + tn, sizeof tail - (size_t)tn, "Init Duration: %.2f ms\t",
                       r->init_duration_ms);
    if (hn < 0 || tn < 0 || (size_t)tn >= sizeof tail - 1) return SL_EINTERNAL;
    tail[tn++] = '\n';
    size_t total = (size_t)hn + body_len + (nl ? 1 : 0) + (size_t)tn;
    char *p = sl_malloc(total + 1);
    if (!p) return SL_ENOMEM;
    memcpy(p, head, (size_t)hn);
    if (body_len) memcpy(p + hn, body, body_len);
    if (nl) p[hn + body_len] = '\n';
    memcpy(p + total - (size_t)tn, tail, (size_t)tn);
    p[total] = '\0';
    *out = p;
    *len = total;
    return 0;
}

static void path_of(const fn_logs *l, const char *function, const char *file, char *buf,
                    size_t len)
{
    snprintf(buf, len, "%s/%s/%s", l->dir, function, file);
}

/* current.log -> 1.log -> 2.log ... ; the oldest beyond `keep` is overwritten. */
static void rotate(fn_logs *l, const char *function)
{
    char from[700], to[700], name[32];
    for (unsigned i = l->keep; i > 1; i--) {
        snprintf(name, sizeof name, "%u.log", i - 1);
        path_of(l, function, name, from, sizeof from);
        snprintf(name, sizeof name, "%u.log", i);
        path_of(l, function, name, to, sizeof to);
        rename(from, to);
    }
    path_of(l, function, "current.log", from, sizeof from);
    path_of(l, function, "1.log", to, sizeof to);
    rename(from, to);
}

/* The open entry of a function (mu held): found, or the least recently used slot reopened on
 * the function's current.log. NULL when the file cannot be opened (errno set). */
static open_log *open_entry(fn_logs *l, const char *function)
{
    open_log *victim = &l->open[0];
    char path[700];
    struct stat st;
    for (int i = 0; i < OPEN_FILES; i++) {
        open_log *o = &l->open[i];
        if (o->fd >= 0 && !strcmp(o->function, function)) {
            o->used = ++l->clock;
            return o;
        }
        if (o->fd < 0 || o->used < victim->used) victim = o;
    }
    if (victim->fd >= 0) close(victim->fd);
    victim->fd = -1;
    snprintf(path, sizeof path, "%s/%s", l->dir, function);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return NULL;
    path_of(l, function, "current.log", path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return NULL;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return NULL;
    }
    snprintf(victim->function, sizeof victim->function, "%s", function);
    victim->fd = fd;
    victim->size = (uint64_t)st.st_size;
    victim->used = ++l->clock;
    return victim;
}

/* Forgets the open file of a function (mu held). */
static void drop_entry(fn_logs *l, const char *function)
{
    for (int i = 0; i < OPEN_FILES; i++)
        if (l->open[i].fd >= 0 && !strcmp(l->open[i].function, function)) {
            close(l->open[i].fd);
            l->open[i].fd = -1;
        }
}

int fn_logs_append(fn_logs *l, const char *function, const char *text, size_t len)
{
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    open_log *o = open_entry(l, function);
    if (o && o->size > 0 && o->size + len > l->max_bytes) {
        drop_entry(l, function);
        rotate(l, function);
        o = open_entry(l, function);
    }
    if (!o) rc = -errno;
    else {
        ssize_t w = write(o->fd, text, len);
        if (w < 0) rc = -errno;
        else if ((size_t)w != len) rc = SL_EIO;
        if (w > 0) o->size += (uint64_t)w;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int fn_logs_read(fn_logs *l, const char *function, uint64_t offset, size_t max, char **out,
                 size_t *len, uint64_t *next)
{
    char path[700];
    struct stat st;
    int fd;
    char *buf;
    ssize_t got;

    path_of(l, function, "current.log", path, sizeof path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) return -errno;
        if (!(*out = sl_strdup(""))) return SL_ENOMEM;
        *len = 0;
        *next = 0;
        return 0;
    }
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if (offset > (uint64_t)st.st_size) offset = 0; /* rotated meanwhile */
    size_t avail = (size_t)((uint64_t)st.st_size - offset);
    if (max && avail > max) avail = max;
    buf = sl_malloc(avail + 1);
    if (!buf) {
        close(fd);
        return SL_ENOMEM;
    }
    got = pread(fd, buf, avail, (off_t)offset);
    close(fd);
    if (got < 0) {
        sl_free(buf);
        return SL_EIO;
    }
    buf[got] = '\0';
    *out = buf;
    *len = (size_t)got;
    *next = offset + (uint64_t)got;
    return 0;
}

void fn_logs_remove(fn_logs *l, const char *function)
{
    char path[700], name[32];
    pthread_mutex_lock(&l->mu);
    drop_entry(l, function);
    pthread_mutex_unlock(&l->mu);
    path_of(l, function, "current.log", path, sizeof path);
    unlink(path);
    for (unsigned i = 1; i <= l->keep; i++) {
        snprintf(name, sizeof name, "%u.log", i);
        path_of(l, function, name, path, sizeof path);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/%s", l->dir, function);
    rmdir(path);
}
