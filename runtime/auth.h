/* auth.h — AWS Signature Version 4 (SPEC.md section 7): parsing the Authorization header or the
 * presigned query form, and, when credentials are configured, verifying the signature.
 *
 * Policy (SPEC 1.1, 7):
 *   - neither an Authorization header nor an X-Amz-Algorithm query parameter
 *       -> MissingAuthenticationTokenException "Missing Authentication Token"
 *   - both -> InvalidSignatureException
 *   - malformed (missing Credential/SignedHeaders/Signature, bad scope, bad date)
 *       -> IncompleteSignatureException with AWS's text
 *   - without credentials (a == NULL) nothing more is checked: the request proceeds
 *   - with credentials: unknown key -> UnrecognizedClientException; stale X-Amz-Date (more than
 *     15 minutes off) -> InvalidSignatureException "Signature expired: ..."; presigned URL past
 *     X-Amz-Expires -> AccessDeniedException "Request has expired"; wrong signature ->
 *     InvalidSignatureException "The request signature we calculated does not match ...".
 * Every one of these is an HTTP 400 for the JSON/CBOR protocols (kinesalite, AWS Coral).
 *
 * Thread-safety: an rt_auth is immutable after rt_auth_load; rt_auth_check and the building
 * blocks below are thread-safe.
 */
#ifndef RT_AUTH_H
#define RT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/sl_common.h"
#include "runtime/http_server.h"

typedef struct rt_auth rt_auth;

/* Loads credentials from a file of lines `ACCESS_KEY_ID SECRET` ('#' starts a comment, blank
 * lines ignored). SL_EINVAL with "FILE:LINE: ..." in err for a malformed line or a file without
 * any key; -errno when the file cannot be read. */
int rt_auth_load(rt_auth **out, const char *file, sl_err *err);
/* An empty credential set (for tests and embedding); add keys with rt_auth_add. */
int rt_auth_new(rt_auth **out);
/* Adds (or replaces) one key. SL_EINVAL for an empty id/secret, SL_ENOMEM. */
int rt_auth_add(rt_auth *a, const char *access_key_id, const char *secret);
void rt_auth_free(rt_auth *a);   /* NULL is fine */

/* 0 when the request may proceed. Otherwise SL_EINVAL, err_type gets the AWS error type name
 * (e.g. "InvalidSignatureException") and err->msg the message. a == NULL: parse only. */
int rt_auth_check(const rt_auth *a, const http_request *r, int64_t now_ms, char *err_type,
                  size_t type_len, sl_err *err);

/* What the request says about itself (from the Credential scope), for account/region
 * resolution; works with or without verification. SL_EINVAL if there is no parsable scope. */
typedef struct rt_auth_scope {
    char access_key_id[128];
    char date[9];        /* YYYYMMDD */
    char region[64];
    char service[64];
} rt_auth_scope;
int rt_auth_request_scope(const http_request *r, rt_auth_scope *out);

/* ---- building blocks (exported for tests and for signing outgoing requests) ---- */

#define RT_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Lower-case hex SHA-256 of p[0..n). */
void rt_sigv4_sha256_hex(const void *p, size_t n, char hex[65]);

/* Canonical request for r: method, canonical URI (path normalized: dot segments removed and
 * slashes collapsed, then each byte outside A-Za-z0-9-_.~/ percent-encoded, as non-S3 services
 * do), canonical query (decoded, re-encoded, sorted; X-Amz-Signature left out when presigned),
 * the headers named in signed_headers (';'-separated, lower-case), signed_headers, payload_hash.
 * *out is sl_malloc'd (caller frees). SL_ENOMEM. */
int rt_sigv4_canonical_request(const http_request *r, const char *signed_headers, bool presigned,
                               const char *payload_hash, char **out);

/* "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256(canonical)>" into out (cap >= 256).
 * scope is "<date>/<region>/<service>/aws4_request". */
void rt_sigv4_string_to_sign(const char *amz_date, const char *scope, const char *canonical,
                             char *out, size_t cap);

/* kSigning = HMAC chain over "AWS4"+secret, date, region, service, "aws4_request". */
void rt_sigv4_signing_key(const char *secret, const char *date, const char *region,
                          const char *service, uint8_t key[32]);

/* hex(HMAC-SHA256(key, string_to_sign)). */
void rt_sigv4_signature(const uint8_t key[32], const char *string_to_sign, char hex[65]);

/* Signs r as a client would and writes the Authorization header value into out:
 * "AWS4-HMAC-SHA256 Credential=AKID/<date>/<region>/<service>/aws4_request,
 * SignedHeaders=<signed_headers>, Signature=<hex>". The payload hash is SHA-256 of the body.
 * SL_EINVAL for a bad amz_date, SL_ETOOBIG if out is too small, SL_ENOMEM. */
int rt_sigv4_authorization(const http_request *r, const char *access_key_id, const char *secret,
                           const char *region, const char *service, const char *amz_date,
                           const char *signed_headers, char *out, size_t cap);

#endif
