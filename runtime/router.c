/* router.c — the daemon's one HTTP handler (rt_route, runtime/daemon.h): dispatch by method,
 * path and X-Amz-Target, in this order:
 *
 *   GET  /health                          -> daemon health (JSON, here)
 *   GET  /metrics, /sluice/...            -> runtime/admin.c (admin_handle)
 *   /2015-03-31/event-source-mappings...  -> runtime/api_esm.c
 *   /2015-03-31/functions..., /2017-10-31/..., /2019-09-30/...  -> runtime/api_lambda.c
 *                                            (signatures verified there only with --auth)
 *   POST <any other path> + X-Amz-Target: Kinesis_20131202.<Op>  -> runtime/api_kinesis.c
 *                                            (AWS and kinesalite ignore the path)
 *   POST with any other / no target       -> 400 UnknownOperationException
 *   other methods on /                    -> 403 XML AccessDeniedException (kinesalite, SPEC 1.1)
 *   anything else                         -> 404 JSON
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "runtime/admin.h"
#include "runtime/api_errors.h"
#include "runtime/api_esm.h"
#include "runtime/api_kinesis.h"
#include "runtime/api_lambda.h"
#include "runtime/auth.h"
#include "runtime/daemon.h"
#include "runtime/version.h"
#include "runtime/wire.h"

static void route_health(rt_daemon *d, http_exchange *x)
{
    brk_stats st;
    wire_out w;
    int64_t up = (sl_now_ms() - d->started_ms) / 1000;

    memset(&st, 0, sizeof st);
    if (d->broker) brk_get_stats(d->broker, &st);
    wire_out_init(&w, WIRE_JSON, 128);
    wire_map(&w, 4);
    wire_key(&w, "version");
    wire_str(&w, SLUICE_VERSION);
    wire_key(&w, "uptimeSeconds");
    wire_int(&w, up < 0 ? 0 : up);
    wire_key(&w, "streams");
    wire_int(&w, st.streams);
    wire_key(&w, "shards");
    wire_int(&w, st.open_shards);
    wire_end(&w);
    if (w.oom) {
        api_send(x, 500, NULL, NULL, 0, NULL, 0);
    } else {
        api_send(x, 200, "application/json", w.buf, w.len, NULL, 0);
    }
    wire_out_free(&w);
}

/* 404 with the JSON error shape. */
static void route_not_found(http_exchange *x, const http_request *r)
{
    char msg[300];
    uint8_t *body = NULL;
    size_t len = 0;

    snprintf(msg, sizeof msg, "No route for %s %.200s", r->method, r->path);
    if (wire_error_body(WIRE_JSON, "NotFoundException", msg, &body, &len) != 0) {
        api_send(x, 500, NULL, NULL, 0, NULL, 0);
        return;
    }
    api_send(x, 404, WIRE_CT_JSON, body, len, NULL, 0);
    sl_free(body);
}

/* Lambda REST APIs (functions, aliases, concurrency, event-source mappings). Requests must be
 * signed when the daemon verifies signatures (--auth); in parse-only mode they pass unsigned, so
 * plain curl works against a local daemon. Returns false when the path is not Lambda's. */
static bool route_lambda(rt_daemon *d, http_exchange *x, const http_request *r)
{
    bool esm = api_esm_match(r->path);
    bool lambda_path = esm || !strncmp(r->path, "/2015-03-31/", 12) ||
                       !strncmp(r->path, "/2017-10-31/", 12) ||
                       !strncmp(r->path, "/2019-09-30/", 12);
    if (!lambda_path) return false;
    if (d->auth) {
        char err_type[64] = "";
        sl_err err;
        memset(&err, 0, sizeof err);
        if (rt_auth_check(d->auth, r, sl_now_ms(), err_type, sizeof err_type, &err) != 0) {
            api_lambda_error(x, 403, err_type[0] ? err_type : "IncompleteSignatureException",
                             err.msg);
            return true;
        }
    }
    if (esm) {
        api_esm_handle(d, x);
        return true;
    }
    if (api_lambda_handle(d, x)) return true;
    route_not_found(x, r);
    return true;
}

static void route_access_denied(http_exchange *x)
{
    static const char xml[] =
        "<AccessDeniedException>\n"
        "  <Message>Unable to determine service/operation name to be authorized</Message>\n"
        "</AccessDeniedException>\n";
    api_send(x, 403, "application/xml", (const uint8_t *)xml, sizeof xml - 1, NULL, 0);
}

static void route_kinesis(rt_daemon *d, http_exchange *x, const http_request *r)
{
    enum wire_fmt fmt = wire_fmt_from_content_type(http_request_header(r, "Content-Type"));
    const char *target = http_request_header(r, "X-Amz-Target");
    size_t plen = strlen(API_KINESIS_TARGET_PREFIX);
    const char *op;
    char err_type[64] = "";
    sl_err err;

    if (!target || strncmp(target, API_KINESIS_TARGET_PREFIX, plen) != 0 ||
        !api_kinesis_known(target + plen)) {
        api_send_error(x, fmt, "UnknownOperationException", "");
        return;
    }
    op = target + plen;
    memset(&err, 0, sizeof err);
    if (rt_auth_check(d->auth, r, sl_now_ms(), err_type, sizeof err_type, &err) != 0) {
        /* Signature errors are 400s in the JSON/CBOR protocols (runtime/auth.h). */
        api_send_error_status(x, fmt, 400,
                              err_type[0] ? err_type : "IncompleteSignatureException", err.msg);
        return;
    }
    api_kinesis_handle(d, x, op, fmt);
}

void rt_route(void *daemon, http_exchange *x)
{
    rt_daemon *d = daemon;
    const http_request *r = http_exchange_request(x);
    bool is_post = !strcmp(r->method, "POST");

    d->requests++;
    if (!strcmp(r->path, "/health") && !strcmp(r->method, "GET")) {
        route_health(d, x);
        return;
    }
    if (admin_handle(d, x)) return;
    if (route_lambda(d, x, r)) return;
    if (is_post) {
        route_kinesis(d, x, r);
        return;
    }
    if (!strcmp(r->path, "/") || r->path[0] == '\0') {
        route_access_denied(x);
        return;
    }
    route_not_found(x, r);
}
