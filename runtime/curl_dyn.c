/* curl_dyn.c — see curl_dyn.h. */
#include "runtime/curl_dyn.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

rt_curl_api rt_curl;

typedef CURLcode (*global_init_fn)(long);
typedef void (*global_cleanup_fn)(void);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool loaded;
static global_init_fn real_global_init;
static global_cleanup_fn real_global_cleanup;

/* dlsym returns void *; POSIX guarantees it converts to function pointers. */
#define SYM(field, name)                                                                        \
    do {                                                                                        \
        void *p_ = dlsym(h, name);                                                              \
        if (!p_) goto missing;                                                                  \
        *(void **)(&rt_curl.field) = p_;                                                        \
    } while (0)

static void load(void)
{
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "sluice: cannot load libcurl: %s\n", dlerror());
        return;
    }
    void *gi = dlsym(h, "curl_global_init"), *gc = dlsym(h, "curl_global_cleanup");
    if (!gi || !gc) goto missing;
    *(void **)(&real_global_init) = gi;
    *(void **)(&real_global_cleanup) = gc;
    SYM(easy_init, "curl_easy_init");
    SYM(easy_setopt, "curl_easy_setopt");
    SYM(easy_perform, "curl_easy_perform");
    SYM(easy_getinfo, "curl_easy_getinfo");
    SYM(easy_cleanup, "curl_easy_cleanup");
    SYM(easy_reset, "curl_easy_reset");
    SYM(easy_strerror, "curl_easy_strerror");
    SYM(easy_escape, "curl_easy_escape");
    SYM(free, "curl_free");
    SYM(slist_append, "curl_slist_append");
    SYM(slist_free_all, "curl_slist_free_all");
    SYM(url, "curl_url");
    SYM(url_cleanup, "curl_url_cleanup");
    SYM(url_get, "curl_url_get");
    SYM(url_set, "curl_url_set");
    loaded = true;
    return;
missing:
    fprintf(stderr, "sluice: libcurl.so.4 lacks a needed function: %s\n", dlerror());
    dlclose(h);
}

CURLcode rt_curl_global_init(long flags)
{
    pthread_once(&once, load);
    return loaded ? real_global_init(flags) : CURLE_FAILED_INIT;
}

void rt_curl_global_cleanup(void)
{
    if (loaded) real_global_cleanup();
}
