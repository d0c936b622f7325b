/* lua_mods.h — the safe modules a sandboxed handler gets: json, base64, log (and print),
 * kinesis, plus the address-free tostring and the %p-free string.format.
 *
 * Everything here is our own C with raw table access only (no __index/__pairs/__len from C),
 * depth and size limits and budget checks (SANDBOX.md 1.7). The JSON <-> Lua mapping is
 * documented in sandbox/lua_state.h. Every function that takes a lua_State may raise a Lua error
 * and must run inside lua_pcall on the thread that owns the state.
 */
#ifndef SBX_LUA_MODS_H
#define SBX_LUA_MODS_H

#include "sandbox/lua_state.h"

#include <lua.h>
#include <stddef.h>

#define SBX_JSON_MAX_DEPTH 128      /* nesting limit of json.encode/json.decode */
#define SBX_LOG_LINE_MAX 4096       /* one log line is cut at this many bytes */

/* Per-instance function log: capped, control characters escaped, one truncation marker. */
typedef struct sbx_log {
    char *buf;      /* sl_malloc'd; NUL-terminated when non-NULL */
    size_t len;
    size_t cap;
    size_t limit;   /* bytes of log text kept per invocation (marker excluded) */
    size_t dropped; /* bytes dropped since the last reset */
} sbx_log;

void sbx_log_init(sbx_log *lg, size_t limit);
/* Forgets the text (keeps the allocation). */
void sbx_log_reset(sbx_log *lg);
void sbx_log_free(sbx_log *lg);
/* Appends "LEVEL\t<msg>\n" with control characters escaped and the line cut at
 * SBX_LOG_LINE_MAX; once over the limit appends a single truncation marker and drops the rest.
 * Never raises; returns 0 or SL_ENOMEM (the line is dropped then). */
int sbx_log_append(sbx_log *lg, const char *level, const char *msg, size_t len);

/* Registers the modules into the table at index idx (the sandbox's library table): json,
 * base64, log, kinesis, print, tostring. log/print write into lg; kinesis calls host (which may
 * be NULL: the functions then raise). Both pointers must outlive the state. Also replaces
 * string.format in the string table at index str_idx by the %p-refusing wrapper. */
void sbx_mods_open(lua_State *L, int idx, int str_idx, sbx_log *lg, const sbx_lua_host *host);

/* Decodes JSON text and pushes the Lua value (mapping in lua_state.h); raises
 * "json.decode: ..." on malformed input or when nesting exceeds SBX_JSON_MAX_DEPTH. */
void sbx_json_decode_push(lua_State *L, const char *s, size_t n);

/* Encodes the value at idx and pushes the JSON text as a string; raises "json.encode: ..." for
 * values JSON cannot represent (functions, userdata other than json.null, threads, NaN/inf,
 * mixed or sparse tables, non-string object keys, cycles / nesting over the limit) and when the
 * text would exceed max_bytes (0 = no limit beyond memory). */
void sbx_json_encode_push(lua_State *L, int idx, size_t max_bytes);

/* The sandbox's tostring: like Lua's, but tables/functions/threads/userdata without __tostring
 * print as "<type>: 0x<n>" with a per-state sequence number instead of a heap address. */
int sbx_tostring(lua_State *L);

/* Pushes the json.null sentinel. */
void sbx_json_push_null(lua_State *L);

/* Pushes the Lua value of the Kinesis event of ev (see sbx_lua_invoke_kinesis), identical to
 * sbx_json_decode_push of its JSON. Raises Lua errors (memory, budget). The caller checked that
 * every string is valid UTF-8 (sbx_kinesis_utf8_ok). */
struct sbx_kinesis_event;
void sbx_kinesis_push(lua_State *L, const struct sbx_kinesis_event *ev);
int sbx_kinesis_utf8_ok(const struct sbx_kinesis_event *ev);

#endif
