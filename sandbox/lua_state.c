/* lua_state.c — sandboxed Lua instances: state factory, environment, init, invoke.
 *
 * Layout of one instance's state (SANDBOX.md 1.2-1.9):
 *   registry[key_env]  P, the global table user code sees (_ENV of the chunk, _G). P holds the
 *                      user's globals; its locked metatable has __index = R and a __newindex
 *                      that refuses the protected module names.
 *   registry[key_lib]  R, the allow-listed library table built in C from the real libraries.
 *   registry[key_seed] the real math.randomseed (not reachable from the sandbox).
 * The real global table is emptied after R is built; io, debug and package are never opened.
 * Every access to the state happens inside lua_pcall of a C trampoline with a message handler,
 * so a memory error or a script error can never reach the panic handler.
 */
#include "sandbox/lua_state.h"

#include "broker/sl_common.h"
#include "sandbox/lua_alloc.h"
#include "sandbox/lua_budget.h"
#include "sandbox/lua_mods.h"
#include "sandbox/lua_pattern.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct sbx_lua {
    sbx_budget budget; /* first: found from the state through lua_getextraspace */
    lua_State *L;
    sbx_alloc alloc;
    sbx_log log;
    sbx_lua_host host;
    int has_host;
    sbx_lua_limits lim;
    char *handler;
    uint64_t invocations;
    uint64_t seed;     /* splitmix64 state for math.randomseed per invocation */
    int keep_log;      /* the init log is still waiting for the first invocation */
    /* filled by the message handler (C memory: readable whatever state Lua is in) */
    char err_type[64];
    char err_msg[1024];
    char err_trace[2048];
};

static const char key_env = 'e';
static const char key_lib = 'l';
static const char key_seed = 's';

static const char *const protected_names[] = {"json", "base64", "log", "kinesis", NULL};

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */

static sbx_lua *instance_of(lua_State *L)
{
    /* budget is the first member of sbx_lua */
    return (sbx_lua *)(void *)sbx_budget_of(L);
}

static _Thread_local int stack_state; /* 0 unknown, 1 big enough, -1 too small */

static int stack_ok(void)
{
    if (stack_state == 0) {
        pthread_attr_t a;
        size_t sz = 0;
        stack_state = 1; /* unknown size (getattr failed): assume the platform default */
        if (pthread_getattr_np(pthread_self(), &a) == 0) {
            if (pthread_attr_getstacksize(&a, &sz) == 0 && sz < SBX_LUA_MIN_STACK)
                stack_state = -1;
            pthread_attr_destroy(&a);
        }
    }
    return stack_state == 1;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void copy_str(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Appends a JSON string literal of s to a C buffer (used for documents built outside Lua). */
static size_t json_quote(char *o, size_t cap, const char *s)
{
    size_t n = 0;
    if (cap < 3) return 0;
    o[n++] = '"';
    for (; *s && n + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            o[n++] = '\\';
            o[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(o + n, cap - n, "\\u%04x", c);
        } else {
            o[n++] = (char)c;
        }
    }
    o[n++] = '"';
    o[n] = '\0';
    return n;
}

/* Builds {"errorType":t,"errorMessage":m,"stackTrace":[]} in host memory. */
static char *error_doc(const char *type, const char *msg, size_t *len)
{
    char buf[1400];
    size_t n = 0;
    char *out;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"errorType\":");
    n += json_quote(buf + n, sizeof buf - n - 200, type);
    n += (size_t)snprintf(buf + n, sizeof buf - n, ",\"errorMessage\":");
    n += json_quote(buf + n, sizeof buf - n - 40, msg);
    n += (size_t)snprintf(buf + n, sizeof buf - n, ",\"stackTrace\":[]}");
    out = sl_malloc(n + 1);
    if (out == NULL) return NULL;
    memcpy(out, buf, n + 1);
    *len = n;
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* wrapped base functions                                                                     */

/* pcall/xpcall continuation: a timeout kill is re-raised so scripts cannot swallow it. */
static int finish_pcall(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        if (sbx_budget_killed(L)) return lua_error(L);
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

static int l_pcall(lua_State *L)
{
    int status;
    luaL_checkany(L, 1);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
    return finish_pcall(L, status, 0);
}

/* Guard around a user's xpcall message handler. Lua leaves hooks disabled on a thread whose
 * hook raised (allowhook stays 0 until a pcall boundary restores it), and the message handler
 * runs before that boundary: after the kill, a looping handler would run with no budget at all.
 * So once the budget is killed the user's handler is skipped and the error passes through. */
static int xpcall_guard(lua_State *L)
{
    if (sbx_budget_killed(L)) {
        lua_settop(L, 1);
        return 1;
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int l_xpcall(lua_State *L)
{
    int status;
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, xpcall_guard, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* stack: f, msgh, true, f, args... */
    status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
    return finish_pcall(L, status, 2);
}

/* coroutine.wrap as in Lua 5.4.4 (resume; on error close the coroutine's to-be-closed
 * variables and re-raise with position info), except that after a timeout kill the coroutine is
 * NOT closed: its hook raised, so its hooks are disabled (see xpcall_guard) and __close handlers
 * would run without a budget. */
static int co_wrap_call(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int narg = lua_gettop(L);
    int nres;
    int st;
    if (!lua_checkstack(co, narg)) return luaL_error(L, "too many arguments to resume");
    lua_xmove(L, co, narg);
    st = lua_resume(co, L, narg, &nres);
    if (st == LUA_OK || st == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            return luaL_error(L, "too many results to resume");
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1); /* the error object */
    st = lua_status(co);
    if (st != LUA_OK && st != LUA_YIELD && !sbx_budget_killed(L)) {
        st = lua_resetthread(co); /* runs pending __close handlers (hooked) */
        lua_xmove(co, L, 1);      /* the error object after closing */
    }
    if (st != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int l_co_wrap(lua_State *L)
{
    lua_State *co;
    luaL_checktype(L, 1, LUA_TFUNCTION);
    co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, co_wrap_call, 1);
    return 1;
}

/* setmetatable that refuses __gc: no user code may run from finalizers (GC, lua_close). */
static int l_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: a metatable with __gc is not allowed");
        lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* __newindex of the global proxy: protected module names cannot be replaced. */
static int l_env_newindex(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *k = lua_tostring(L, 2);
        const char *const *p;
        for (p = protected_names; *p != NULL; p++)
            if (strcmp(k, *p) == 0)
                return luaL_error(L, "cannot assign to protected global '%s'", k);
    }
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 0;
}

static int l_remaining_ms(lua_State *L)
{
    sbx_budget *b = sbx_budget_of(L);
    uint64_t now = sl_mono_ns();
    lua_Integer ms = 0;
    if (b != NULL && b->deadline_ns > now) ms = (lua_Integer)((b->deadline_ns - now) / 1000000u);
    lua_pushinteger(L, ms);
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* environment                                                                                */

static void copy_fields(lua_State *L, int dst, int src, const char *const *only,
                        const char *const *except)
{
    dst = lua_absindex(L, dst);
    src = lua_absindex(L, src);
    if (only != NULL) {
        for (; *only != NULL; only++) {
            lua_getfield(L, src, *only);
            lua_setfield(L, dst, *only);
        }
        return;
    }
    lua_pushnil(L);
    while (lua_next(L, src)) {
        const char *const *e;
        int skip = 0;
        if (except != NULL && lua_type(L, -2) == LUA_TSTRING)
            for (e = except; *e != NULL; e++)
                if (strcmp(lua_tostring(L, -2), *e) == 0) skip = 1;
        if (skip) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, dst);
    }
}

/* Opens a standard library (registering it in the real global table) and pushes it. */
static void open_lib(lua_State *L, const char *name, lua_CFunction f)
{
    luaL_requiref(L, name, f, 1);
}

/* os.getenv: the function's configured environment only (upvalue 1: name -> value). */
static int l_getenv(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_settop(L, 1);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

static int setup_env(lua_State *L)
{
    sbx_lua *l = lua_touserdata(L, 1);
    static const char *const base_allow[] = {
        "assert", "error", "ipairs", "next", "pairs", "select", "tonumber", "type",
        "rawequal", "rawlen", "rawget", "rawset", "getmetatable", "_VERSION", NULL,
    };
    static const char *const os_allow[] = {"time", "difftime", "clock", "date", NULL};
    static const char *const math_except[] = {"randomseed", NULL};
    static const char *const co_except[] = {"close", NULL};
    int G, S, T, M, U, C, O, R, P;

    open_lib(L, LUA_GNAME, luaopen_base);
    G = lua_gettop(L);
    open_lib(L, LUA_STRLIBNAME, luaopen_string);
    S = lua_gettop(L);
    open_lib(L, LUA_TABLIBNAME, luaopen_table);
    T = lua_gettop(L);
    open_lib(L, LUA_MATHLIBNAME, luaopen_math);
    M = lua_gettop(L);
    open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);
    U = lua_gettop(L);
    open_lib(L, LUA_COLIBNAME, luaopen_coroutine);
    C = lua_gettop(L);
    open_lib(L, LUA_OSLIBNAME, luaopen_os);
    O = lua_gettop(L);

    /* The real string table is what method calls reach: patch it, not a copy. */
    lua_pushnil(L);
    lua_setfield(L, S, "dump");
    sbx_pattern_install(L, S);
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);

    lua_newtable(L);
    R = lua_gettop(L);
    lua_newtable(L);
    P = lua_gettop(L);

    copy_fields(L, R, G, base_allow, NULL);
    lua_pushcfunction(L, l_setmetatable);
    lua_setfield(L, R, "setmetatable");
    lua_pushcfunction(L, l_pcall);
    lua_setfield(L, R, "pcall");
    lua_pushcfunction(L, l_xpcall);
    lua_setfield(L, R, "xpcall");
    sbx_mods_open(L, R, S, &l->log, l->has_host ? &l->host : NULL);

    lua_newtable(L);
    copy_fields(L, -1, S, NULL, NULL);
    lua_setfield(L, R, "string");
    lua_newtable(L);
    copy_fields(L, -1, T, NULL, NULL);
    lua_setfield(L, R, "table");
    lua_newtable(L);
    copy_fields(L, -1, M, NULL, math_except);
    lua_setfield(L, R, "math");
    lua_newtable(L);
    copy_fields(L, -1, U, NULL, NULL);
    lua_setfield(L, R, "utf8");
    lua_newtable(L);
    copy_fields(L, -1, C, NULL, co_except);
    lua_pushcfunction(L, l_co_wrap);
    lua_setfield(L, -2, "wrap");
    lua_setfield(L, R, "coroutine");
    lua_newtable(L);
    copy_fields(L, -1, O, os_allow, NULL);
    lua_newtable(L);
    for (const char *const *e = l->lim.env; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || eq == *e) continue;
        lua_pushlstring(L, *e, (size_t)(eq - *e));
        lua_pushstring(L, eq + 1);
        lua_rawset(L, -3);
    }
    lua_pushcclosure(L, l_getenv, 1);
    lua_setfield(L, -2, "getenv");
    lua_setfield(L, R, "os");
    lua_pushvalue(L, P);
    lua_setfield(L, R, "_G");

    lua_getfield(L, M, "randomseed");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_seed);

    /* P's metatable: reads fall through to R, writes of protected names fail, locked. */
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, R);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_env_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, P);

    lua_pushvalue(L, P);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_env);
    lua_pushvalue(L, R);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_lib);

    /* Defence in depth: nothing reaches the real globals or os table, but empty them anyway. */
    lua_pushnil(L);
    while (lua_next(L, G)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, G);
    }
    {
        static const char *const os_bad[] = {"execute", "exit", "getenv", "remove", "rename",
                                             "tmpname", "setlocale", NULL};
        const char *const *p;
        for (p = os_bad; *p != NULL; p++) {
            lua_pushnil(L);
            lua_setfield(L, O, *p);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* message handler: {errorType, errorMessage, stackTrace}                                     */

static void add_trace_lines(lua_State *L, sbx_lua *l, int arr)
{
    size_t n;
    const char *t;
    const char *p;
    lua_Integer i = 0;
    size_t tl = 0;
    luaL_traceback(L, L, NULL, 1);
    t = lua_tolstring(L, -1, &n);
    l->err_trace[0] = '\0';
    p = t;
    while (p < t + n) {
        const char *e = memchr(p, '\n', (size_t)(t + n - p));
        const char *s = p;
        size_t len;
        if (e == NULL) e = t + n;
        p = e + 1;
        while (s < e && *s == '\t') s++;
        len = (size_t)(e - s);
        if (len == 0 || (len == 16 && memcmp(s, "stack traceback:", 16) == 0) ||
            (len == 9 && memcmp(s, "[C]: in ?", 9) == 0))
            continue;
        lua_pushlstring(L, s, len);
        lua_rawseti(L, arr, ++i);
        if (tl + len + 2 < sizeof l->err_trace) {
            memcpy(l->err_trace + tl, s, len);
            tl += len;
            l->err_trace[tl++] = '\n';
            l->err_trace[tl] = '\0';
        }
    }
    lua_pop(L, 1);
}

/* Adds the JSON string literal of s to b (pushes temporaries above the buffer). */
static void add_json_str(lua_State *L, luaL_Buffer *b, const char *s, size_t n)
{
    lua_pushlstring(L, s, n);
    sbx_json_encode_push(L, -1, 0);
    lua_remove(L, -2);
    luaL_addvalue(b);
}

static int msgh(lua_State *L)
{
    sbx_lua *l = instance_of(L);
    const char *type = "Error";
    const char *msg = NULL;
    size_t mlen = 0;
    int arr;
    lua_Integer n;
    luaL_Buffer b;

    if (sbx_budget_killed(L)) return 1; /* the caller reports the timeout itself */
    lua_settop(L, 1);
    if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER) {
        msg = lua_tolstring(L, 1, &mlen);
    } else if (lua_type(L, 1) == LUA_TTABLE) {
        lua_pushliteral(L, "errorType");
        if (lua_rawget(L, 1) == LUA_TSTRING) type = lua_tostring(L, -1);
        lua_pushliteral(L, "errorMessage");
        if (lua_rawget(L, 1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)
            msg = lua_tolstring(L, -1, &mlen);
        /* both stay on the stack (slots 2, 3) so the strings live */
    }
    if (msg == NULL) {
        /* never call __tostring here: it could loop or raise */
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        mlen = strlen(msg);
    }
    if (mlen > 4096) mlen = 4096;
    copy_str(l->err_type, sizeof l->err_type, type, strlen(type));
    copy_str(l->err_msg, sizeof l->err_msg, msg, mlen);

    lua_newtable(L);
    arr = lua_gettop(L);
    add_trace_lines(L, l, arr);
    n = (lua_Integer)lua_rawlen(L, arr);
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "{\"errorType\":");
    add_json_str(L, &b, l->err_type, strlen(l->err_type));
    luaL_addstring(&b, ",\"errorMessage\":");
    add_json_str(L, &b, msg, mlen);
    luaL_addstring(&b, ",\"stackTrace\":");
    if (n == 0) {
        luaL_addstring(&b, "[]");
    } else {
        lua_pushvalue(L, arr); /* keys 1..n: encodes as an array */
        sbx_json_encode_push(L, -1, 0);
        lua_remove(L, -2);
        luaL_addvalue(&b);
    }
    luaL_addstring(&b, "}");
    luaL_pushresult(&b);
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* invocation trampoline                                                                      */

typedef struct invoke_req {
    const char *event;
    size_t event_len;
    const sbx_kinesis_event *kinesis; /* when set, the event is built from it */
    const char *ctx;
    size_t ctx_len;
} invoke_req;

static void raise_typed(lua_State *L, const char *type, const char *msg)
{
    lua_createtable(L, 0, 2);
    lua_pushstring(L, type);
    lua_setfield(L, -2, "errorType");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "errorMessage");
    lua_error(L);
}

static int decode_tramp(lua_State *L)
{
    const char *s = lua_touserdata(L, 1);
    size_t n = (size_t)lua_tointeger(L, 2);
    sbx_json_decode_push(L, s, n);
    return 1;
}

static int encode_tramp(lua_State *L)
{
    sbx_json_encode_push(L, 1, SBX_LUA_MAX_RESULT + 1);
    return 1;
}

/* Decodes JSON given by the caller; failures become Runtime.InvalidEvent (timeouts and
 * memory errors pass through unchanged). */
static void push_caller_json(lua_State *L, const char *s, size_t n, const char *what)
{
    int st;
    lua_pushcfunction(L, decode_tramp);
    lua_pushlightuserdata(L, (void *)(uintptr_t)s);
    lua_pushinteger(L, (lua_Integer)n);
    st = lua_pcall(L, 2, 1, 0);
    if (st != LUA_OK) {
        if (st == LUA_ERRMEM || sbx_budget_killed(L)) lua_error(L);
        lua_pushfstring(L, "%s: %s", what, lua_tostring(L, -1));
        raise_typed(L, "Runtime.InvalidEvent", lua_tostring(L, -1));
    }
}

static int invoke_tramp(lua_State *L)
{
    sbx_lua *l = lua_touserdata(L, 1);
    const invoke_req *rq = lua_touserdata(L, 2);
    int st;
    size_t rlen;

    lua_settop(L, 0);
    /* fresh random stream per invocation (math.randomseed is not in the sandbox) */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_seed);
    lua_pushinteger(L, (lua_Integer)splitmix64(&l->seed));
    lua_pushinteger(L, (lua_Integer)splitmix64(&l->seed));
    lua_call(L, 2, 0);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_env);
    lua_getfield(L, 1, l->handler); /* P has __index = R; the handler is a user global */
    if (lua_type(L, -1) != LUA_TFUNCTION)
        raise_typed(L, "Runtime.HandlerNotFound", "handler is undefined or not a function");

    if (rq->kinesis != NULL) sbx_kinesis_push(L, rq->kinesis);
    else push_caller_json(L, rq->event, rq->event_len, "event");
    if (rq->ctx != NULL && rq->ctx_len > 0) {
        push_caller_json(L, rq->ctx, rq->ctx_len, "context");
        if (lua_type(L, -1) != LUA_TTABLE)
            raise_typed(L, "Runtime.InvalidEvent", "context: not a JSON object");
    } else {
        lua_newtable(L);
    }
    lua_pushcfunction(L, l_remaining_ms);
    lua_setfield(L, -2, "getRemainingTimeInMillis");

    lua_call(L, 2, 1); /* handler(event, context) */

    lua_pushcfunction(L, encode_tramp);
    lua_insert(L, -2);
    st = lua_pcall(L, 1, 1, 0);
    if (st != LUA_OK) {
        const char *m;
        if (st == LUA_ERRMEM || sbx_budget_killed(L)) lua_error(L);
        m = lua_tostring(L, -1);
        if (m != NULL && strstr(m, "result too large") != NULL) {
            lua_pushfstring(L,
                            "Response payload size exceeded maximum allowed payload size "
                            "(%d bytes).",
                            (int)SBX_LUA_MAX_RESULT);
            raise_typed(L, "Function.ResponseSizeTooLarge", lua_tostring(L, -1));
        }
        raise_typed(L, "Runtime.InvalidReturnValue", m != NULL ? m : "invalid return value");
    }
    lua_tolstring(L, -1, &rlen);
    if (rlen > SBX_LUA_MAX_RESULT) {
        lua_pushfstring(L,
                        "Response payload size exceeded maximum allowed payload size (%d "
                        "bytes).",
                        (int)SBX_LUA_MAX_RESULT);
        raise_typed(L, "Function.ResponseSizeTooLarge", lua_tostring(L, -1));
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* public API                                                                                 */

static int panic(lua_State *L)
{
    const char *m = lua_tostring(L, -1);
    fprintf(stderr, "sluice: unprotected Lua error (sandbox bug): %s\n", m ? m : "?");
    abort();
}

static void fill_err(sbx_lua_error *err, int code, const char *type, const char *msg,
                     const char *trace)
{
    if (err == NULL) return;
    err->code = code;
    copy_str(err->error_type, sizeof err->error_type, type, strlen(type));
    copy_str(err->error_message, sizeof err->error_message, msg, strlen(msg));
    copy_str(err->stack_trace, sizeof err->stack_trace, trace, strlen(trace));
}

static void apply_defaults(sbx_lua_limits *o, const sbx_lua_limits *lim)
{
    memset(o, 0, sizeof *o);
    if (lim != NULL) *o = *lim;
    if (o->memory_bytes == 0) o->memory_bytes = SBX_LUA_DEFAULT_MEMORY;
    if (o->timeout_ms == 0) o->timeout_ms = SBX_LUA_DEFAULT_TIMEOUT_MS;
    if (o->log_bytes == 0) o->log_bytes = SBX_LUA_DEFAULT_LOG_BYTES;
    if (o->init_timeout_ms == 0) o->init_timeout_ms = SBX_LUA_DEFAULT_INIT_TIMEOUT_MS;
}

static void set_chunkname(char *dst, size_t cap, const char *name)
{
    if (name == NULL || *name == '\0') name = "=handler";
    if (name[0] == '@' || name[0] == '=')
        snprintf(dst, cap, "%s", name);
    else
        snprintf(dst, cap, "@%s", name);
}

int sbx_lua_new(sbx_lua **out, const char *code, size_t len, const char *chunkname,
                const char *handler, const sbx_lua_limits *lim, const sbx_lua_host *host,
                sbx_lua_error *err)
{
    sbx_lua *l = NULL;
    lua_State *L;
    char name[256];
    int st;
    int rc;

    if (!stack_ok()) {
        fill_err(err, SL_EINVAL, "Runtime.SandboxError",
                 "Lua must run on a thread with at least 1 MiB of stack", "");
        return SL_EINVAL;
    }
    if (code == NULL || handler == NULL || handler[0] == '\0') {
        fill_err(err, SL_EINVAL, "Runtime.SandboxError", "missing code or handler name", "");
        return SL_EINVAL;
    }
    if (len > SBX_LUA_MAX_SOURCE) {
        fill_err(err, SL_ETOOBIG, "Runtime.SandboxError", "function code is too large", "");
        return SL_ETOOBIG;
    }
    l = sl_calloc(1, sizeof *l);
    if (l == NULL) goto nomem;
    apply_defaults(&l->lim, lim);
    l->handler = sl_strdup(handler);
    if (l->handler == NULL) goto nomem;
    if (host != NULL && host->call != NULL) {
        l->host = *host;
        l->has_host = 1;
    }
    if (getrandom(&l->seed, sizeof l->seed, 0) != (ssize_t)sizeof l->seed)
        l->seed = sl_mono_ns() ^ (uint64_t)(uintptr_t)l;
    sbx_log_init(&l->log, l->lim.log_bytes);
    sbx_alloc_init(&l->alloc, l->lim.memory_bytes);
    L = lua_newstate(sbx_alloc_fn, &l->alloc);
    if (L == NULL) goto nomem;
    l->L = L;
    lua_atpanic(L, panic);
    sbx_budget_attach(L, &l->budget); /* before any user code, so coroutines inherit it */
    sbx_budget_arm(L, &l->budget, sl_mono_ns() + (uint64_t)l->lim.init_timeout_ms * 1000000u, 0,
                   l->lim.init_timeout_ms, "Init");

    lua_pushcfunction(L, setup_env);
    lua_pushlightuserdata(L, l);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        lua_settop(L, 0);
        goto nomem; /* only allocation can fail while building the environment */
    }

    set_chunkname(name, sizeof name, chunkname);
    lua_pushcfunction(L, msgh);
    st = luaL_loadbufferx(L, code, len, name, "t");
    if (st != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        if (st == LUA_ERRMEM || l->alloc.hit)
            fill_err(err, SL_EINVAL, "Runtime.OutOfMemory", "not enough memory to compile", "");
        else
            fill_err(err, SL_EINVAL, "Runtime.UserCodeSyntaxError", m ? m : "syntax error", "");
        rc = SL_EINVAL;
        goto fail;
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_env);
    lua_setupvalue(L, -2, 1); /* the chunk's _ENV is the sandbox table P */
    st = lua_pcall(L, 0, 0, 1);
    if (st != LUA_OK || l->budget.killed) {
        if (l->budget.killed)
            fill_err(err, SL_EINVAL, "Sandbox.Timedout", l->budget.msg, "");
        else if (st == LUA_ERRMEM || (l->alloc.hit && st != LUA_OK))
            fill_err(err, SL_EINVAL, "Runtime.OutOfMemory", "memory limit exceeded during init",
                     "");
        else if (st == LUA_ERRRUN)
            fill_err(err, SL_EINVAL, l->err_type, l->err_msg, l->err_trace);
        else
            fill_err(err, SL_EINVAL, "Runtime.SandboxError", "error in error handling", "");
        rc = SL_EINVAL;
        goto fail;
    }
    lua_settop(L, 0);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &key_env);
    lua_pushstring(L, handler);
    if (lua_rawget(L, -2) != LUA_TFUNCTION) {
        char m[300];
        snprintf(m, sizeof m, "%s.%s is undefined or not a function", name + 1, handler);
        fill_err(err, SL_EINVAL, "Runtime.HandlerNotFound", m, "");
        rc = SL_EINVAL;
        goto fail;
    }
    lua_settop(L, 0);
    l->keep_log = 1;
    sbx_alloc_reset_peak(&l->alloc);
    *out = l;
    return 0;

nomem:
    fill_err(err, SL_ENOMEM, "Runtime.OutOfMemory", "not enough memory to create the sandbox",
             "");
    rc = SL_ENOMEM;
fail:
    sbx_lua_free(l);
    return rc;
}

static int set_payload(sbx_lua_result *res, const char *s, size_t n)
{
    res->payload = sl_malloc(n + 1);
    if (res->payload == NULL) return SL_ENOMEM;
    memcpy(res->payload, s, n);
    res->payload[n] = '\0';
    res->payload_len = n;
    return 0;
}

static int set_error(sbx_lua_result *res, const char *type, const char *msg)
{
    res->status = SBX_LUA_FUNCTION_ERROR;
    copy_str(res->error_type, sizeof res->error_type, type, strlen(type));
    res->payload = error_doc(type, msg, &res->payload_len);
    return res->payload == NULL ? SL_ENOMEM : 0;
}

static int run_invocation(sbx_lua *l, const invoke_req *req, uint64_t deadline_mono_ns,
                          sbx_lua_result *res);

int sbx_lua_invoke(sbx_lua *l, const char *event_json, size_t event_len,
                   const char *context_json, size_t context_len, uint64_t deadline_mono_ns,
                   sbx_lua_result *res)
{
    invoke_req rq = {event_json, event_len, NULL, context_json,
                     context_json != NULL ? context_len : 0};
    memset(res, 0, sizeof *res);
    if (event_json == NULL) {
        rq.event = "null";
        rq.event_len = 4;
    }
    return run_invocation(l, &rq, deadline_mono_ns, res);
}

int sbx_lua_invoke_kinesis(sbx_lua *l, const sbx_kinesis_event *ev, const char *context_json,
                           size_t context_len, uint64_t deadline_mono_ns, sbx_lua_result *res)
{
    invoke_req rq = {NULL, 0, ev, context_json, context_json != NULL ? context_len : 0};
    memset(res, 0, sizeof *res);
    if (ev == NULL || (ev->n && ev->recs == NULL)) return SL_EINVAL;
    if (!sbx_kinesis_utf8_ok(ev)) return SL_ESERIAL;
    return run_invocation(l, &rq, deadline_mono_ns, res);
}

static int run_invocation(sbx_lua *l, const invoke_req *req, uint64_t deadline_mono_ns,
                          sbx_lua_result *res)
{
    lua_State *L;
    invoke_req rq = *req;
    int st;
    int rc = 0;

    if (l == NULL || !stack_ok()) return SL_EINVAL;
    L = l->L;

    if (!l->keep_log) sbx_log_reset(&l->log);
    l->keep_log = 0;
    l->err_type[0] = l->err_msg[0] = l->err_trace[0] = '\0';
    l->invocations++;
    sbx_alloc_reset_peak(&l->alloc);
    if (deadline_mono_ns == 0)
        deadline_mono_ns = sl_mono_ns() + (uint64_t)l->lim.timeout_ms * 1000000u;
    sbx_budget_arm(L, &l->budget, deadline_mono_ns, l->lim.max_instructions, l->lim.timeout_ms,
                   "Task");

    lua_settop(L, 0);
    if (!lua_checkstack(L, 8)) {
        res->discard = 1;
        res->out_of_memory = 1;
        rc = set_error(res, "Runtime.OutOfMemory", "not enough memory to start the invocation");
        goto out;
    }
    lua_pushcfunction(L, msgh);
    lua_pushcfunction(L, invoke_tramp);
    lua_pushlightuserdata(L, l);
    lua_pushlightuserdata(L, &rq);
    st = lua_pcall(L, 2, 1, 1);

    if (l->budget.killed) {
        /* whatever the status: once the budget tripped, the invocation timed out */
        res->timed_out = 1;
        res->discard = 1;
        rc = set_error(res, "Sandbox.Timedout", l->budget.msg);
    } else if (st == LUA_OK) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        res->status = SBX_LUA_OK;
        rc = set_payload(res, s, n);
        if (l->alloc.hit) res->discard = 1;
    } else if (st == LUA_ERRMEM || l->alloc.hit) {
        char m[128];
        snprintf(m, sizeof m, "Lua memory limit of %zu bytes exceeded", l->lim.memory_bytes);
        res->out_of_memory = 1;
        res->discard = 1;
        rc = set_error(res, "Runtime.OutOfMemory", m);
    } else if (st == LUA_ERRRUN && lua_type(L, -1) == LUA_TSTRING && l->err_type[0] != '\0') {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        res->status = SBX_LUA_FUNCTION_ERROR;
        copy_str(res->error_type, sizeof res->error_type, l->err_type, strlen(l->err_type));
        rc = set_payload(res, s, n);
    } else {
        res->discard = 1;
        rc = set_error(res, "Runtime.SandboxError", "error in error handling");
    }
    lua_settop(L, 0);

out:
    res->peak_memory = l->alloc.peak;
    res->memory = sbx_lua_memory(l);
    res->log_truncated = l->log.dropped > 0;
    if (l->log.len > 0) {
        /* hand the buffer over; the next append allocates a new one */
        res->log = l->log.buf;
        res->log_len = l->log.len;
        l->log.buf = NULL;
        l->log.cap = 0;
        l->log.len = 0;
    }
    l->log.dropped = 0;
    if (rc != 0) res->discard = 1;
    return rc;
}

void sbx_lua_result_clear(sbx_lua_result *res)
{
    if (res == NULL) return;
    sl_free(res->payload);
    sl_free(res->log);
    memset(res, 0, sizeof *res);
}

size_t sbx_lua_memory(const sbx_lua *l)
{
    return l != NULL ? l->alloc.used + l->alloc.pooled : 0;
}

static int gc_tramp(lua_State *L)
{
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}

void sbx_lua_trim(sbx_lua *l)
{
    if (l == NULL || l->L == NULL) return;
    /* a full collection only frees memory, but run it protected all the same */
    lua_pushcfunction(l->L, gc_tramp);
    lua_pcall(l->L, 0, 0, 0);
    lua_settop(l->L, 0);
    sbx_alloc_release(&l->alloc);
}

uint64_t sbx_lua_invocations(const sbx_lua *l) { return l != NULL ? l->invocations : 0; }

void sbx_lua_free(sbx_lua *l)
{
    if (l == NULL) return;
    if (l->L != NULL) lua_close(l->L); /* no user finalizers exist: __gc is refused */
    sbx_alloc_release(&l->alloc);
    sbx_log_free(&l->log);
    sl_free(l->handler);
    sl_free(l);
}
