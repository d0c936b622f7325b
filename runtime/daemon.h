/* daemon.h — the running daemon: what `sluice serve` owns and hands to the API modules.
 * Loop-thread state: every field is read and written on the loop thread only, except `broker`,
 * whose functions are thread-safe. */
#ifndef RT_DAEMON_H
#define RT_DAEMON_H

#include <stdint.h>
#include <uv.h>

#include "broker/broker.h"
#include "runtime/config.h"
#include "runtime/http_server.h"

typedef struct rt_auth rt_auth;   /* runtime/auth.h; NULL when signatures are not verified */
typedef struct fn_runtime fn_runtime; /* functions/invoke.h */
typedef struct esm_mgr esm_mgr;       /* runtime/esm.h */

typedef struct rt_daemon {
    uv_loop_t *loop;
    const rt_config *cfg;
    brk_broker *broker;
    http_server *http;
    rt_auth *auth;
    fn_runtime *functions;        /* function registry, pools, invocations */
    esm_mgr *esm;                 /* event-source mappings */
    char launcher[1024];          /* absolute path of this binary (native handler launcher) */
    int64_t started_ms;
    uint64_t requests;            /* answered requests (health, metrics) */
} rt_daemon;

/* The one HTTP handler (runtime/router.c): dispatches by method, path and X-Amz-Target. */
void rt_route(void *daemon, http_exchange *x);

/* `sluice serve` (runtime/daemon.c): parses options, runs until SIGINT/SIGTERM. Exit status. */
int rt_serve_main(int argc, char **argv);

#endif
