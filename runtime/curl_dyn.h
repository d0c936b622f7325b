/* curl_dyn.h — libcurl, loaded on first use (dlopen) instead of linked.
 * Why: libcurl brings ~28 shared libraries (TLS, Kerberos, LDAP, IDN, compression...). The one
 * sluice binary also runs as the daemon and as the native-handler launcher (`sluice __launch`,
 * once per native cold start); neither uses libcurl, yet with it linked every start paid for
 * loading all of them (measured here: 4.5 ms vs 2.1 ms to start a program with the same
 * libraries minus libcurl). Only the CLI and HTTP destinations load it.
 *
 * Include this instead of <curl/curl.h>; the curl_* calls below keep their names and go through
 * a table filled by rt_curl_global_init, which must run before any other curl call. */
#ifndef RT_CURL_DYN_H
#define RT_CURL_DYN_H

#ifndef CURL_DISABLE_TYPECHECK
#define CURL_DISABLE_TYPECHECK /* the type-checking macros would clash with the names below */
#endif
#include <curl/curl.h>
#include <stdbool.h>

typedef struct rt_curl_api {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    char *(*easy_escape)(CURL *, const char *, int);
    void (*free)(void *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    CURLU *(*url)(void);
    void (*url_cleanup)(CURLU *);
    CURLUcode (*url_get)(CURLU *, CURLUPart, char **, unsigned int);
    CURLUcode (*url_set)(CURLU *, CURLUPart, const char *, unsigned int);
} rt_curl_api;

extern rt_curl_api rt_curl;

/* Loads libcurl once (thread-safe) and calls its curl_global_init. CURLE_FAILED_INIT (with a
 * one-line message on stderr) when libcurl.so.4 cannot be loaded. */
CURLcode rt_curl_global_init(long flags);
/* curl_global_cleanup when the library was loaded; otherwise nothing. */
void rt_curl_global_cleanup(void);

/* curl.h defines these two as argument-count-checking macros; the table replaces them */
#undef curl_easy_setopt
#undef curl_easy_getinfo

#define curl_global_init rt_curl_global_init
#define curl_global_cleanup rt_curl_global_cleanup
#define curl_easy_init rt_curl.easy_init
#define curl_easy_setopt rt_curl.easy_setopt
#define curl_easy_perform rt_curl.easy_perform
#define curl_easy_getinfo rt_curl.easy_getinfo
#define curl_easy_cleanup rt_curl.easy_cleanup
#define curl_easy_reset rt_curl.easy_reset
#define curl_easy_strerror rt_curl.easy_strerror
#define curl_easy_escape rt_curl.easy_escape
#define curl_free rt_curl.free
#define curl_slist_append rt_curl.slist_append
#define curl_slist_free_all rt_curl.slist_free_all
#define curl_url rt_curl.url
#define curl_url_cleanup rt_curl.url_cleanup
#define curl_url_get rt_curl.url_get
#define curl_url_set rt_curl.url_set

#endif
