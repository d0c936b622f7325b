/* test_sandbox_lua_escape.c — escape and abuse attempts against the Lua sandbox.
 *
 * Each test asserts the documented failure (sandbox/lua_state.h) and then that the process and
 * the sandbox keep working: the same instance (unless it reported discard) or a fresh one still
 * serves a normal invocation. No timing thresholds: a timeout test only checks the outcome. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "broker/sl_common.h"
#include "sandbox/lua_state.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEM_CAP (16u * 1024u * 1024u)
#define TIMEOUT_MS 200u

static const sbx_lua_limits lim = {
    .memory_bytes = MEM_CAP, .timeout_ms = TIMEOUT_MS, .init_timeout_ms = 500};
/* memory bombs get a long deadline so that a loaded machine cannot turn them into timeouts */
static const sbx_lua_limits lim_mem = {
    .memory_bytes = MEM_CAP, .timeout_ms = 20000, .init_timeout_ms = 500};
static const sbx_lua_limits *cur_lim = &lim;

static sbx_lua *mk(const char *code)
{
    sbx_lua *l = NULL;
    sbx_lua_error err;
    int rc = sbx_lua_new(&l, code, strlen(code), "main.lua", "handler", cur_lim, NULL, &err);
    if (rc != 0) fail_msg("init failed (%d): %s: %s", rc, err.error_type, err.error_message);
    return l;
}

static void inv(sbx_lua *l, const char *event, sbx_lua_result *r)
{
    assert_int_equal(sbx_lua_invoke(l, event, strlen(event), NULL, 0, 0, r), 0);
}

/* Expects a function error of type `type` whose message contains `needle`; returns discard. */
static int expect_fail(sbx_lua *l, const char *event, const char *type, const char *needle)
{
    sbx_lua_result r;
    cJSON *doc;
    const char *msg;
    int discard;
    inv(l, event, &r);
    if (r.status != SBX_LUA_FUNCTION_ERROR) fail_msg("expected %s, got ok: %s", type, r.payload);
    doc = cJSON_Parse(r.payload);
    assert_non_null(doc);
    msg = cJSON_GetObjectItem(doc, "errorMessage")->valuestring;
    if (strcmp(r.error_type, type) != 0 || strstr(msg, needle) == NULL)
        fail_msg("expected %s containing '%s', got %s: %s", type, needle, r.error_type, msg);
    cJSON_Delete(doc);
    discard = r.discard;
    sbx_lua_result_clear(&r);
    return discard;
}

static void expect_ok(sbx_lua *l, const char *event, const char *want)
{
    sbx_lua_result r;
    inv(l, event, &r);
    if (r.status != SBX_LUA_OK) fail_msg("function error: %s", r.payload);
    assert_string_equal(r.payload, want);
    assert_false(r.discard);
    sbx_lua_result_clear(&r);
}

/* A handler that runs `attack` when ev.attack is true, else returns "alive". */
static sbx_lua *mk_attack(const char *attack)
{
    char code[4096];
    snprintf(code, sizeof code,
             "function handler(ev)\n"
             "  if not ev.attack then return 'alive' end\n"
             "  %s\n"
             "end\n",
             attack);
    return mk(code);
}

/* Runs the attack, expects the failure, then checks the instance (or, when the result said
 * discard, a fresh instance) still works. */
static void attack(const char *code, const char *type, const char *needle)
{
    sbx_lua *l = mk_attack(code);
    int discard = expect_fail(l, "{\"attack\":true}", type, needle);
    if (discard) {
        sbx_lua_free(l);
        l = mk_attack(code);
    }
    expect_ok(l, "{}", "\"alive\"");
    sbx_lua_free(l);
}

/* attack() with the memory-test limits */
static void attack_mem(const char *code, const char *type, const char *needle)
{
    cur_lim = &lim_mem;
    attack(code, type, needle);
    cur_lim = &lim;
}

/* Runs code that must succeed and return `want` (containment by design, not by error). */
static void harmless(const char *code, const char *want)
{
    sbx_lua *l = mk_attack(code);
    expect_ok(l, "{\"attack\":true}", want);
    expect_ok(l, "{}", "\"alive\"");
    sbx_lua_free(l);
}

/* ---- missing dangerous functions ---------------------------------------------------------- */

static void test_escape_os_execute(void **state)
{
    (void)state;
    attack("return os.execute('touch /tmp/sluice_pwned')", "Error",
           "attempt to call a nil value (field 'execute')");
}

static void test_escape_os_exit_and_getenv(void **state)
{
    (void)state;
    /* os.getenv exists but reads only the function's configured environment (none here): the
     * daemon's own environment never shows through */
    harmless("return { os.exit == nil, os.getenv('PATH') == nil, os.getenv('HOME') == nil,\n"
             "         os.remove == nil, os.tmpname == nil }",
             "[true,true,true,true,true]");
    attack("os.exit(1)", "Error", "attempt to call a nil value (field 'exit')");
}

static void test_escape_io_open(void **state)
{
    (void)state;
    attack("return io.open('/etc/passwd'):read('a')", "Error",
           "attempt to index a nil value (global 'io')");
}

static void test_escape_require(void **state)
{
    (void)state;
    attack("return require('os')", "Error", "attempt to call a nil value (global 'require')");
    harmless("return { package == nil, module == nil }", "[true,true]");
}

static void test_escape_load_loadstring_dofile(void **state)
{
    (void)state;
    attack("return load('return 1')()", "Error", "attempt to call a nil value (global 'load')");
    attack("return loadstring('return 1')()", "Error",
           "attempt to call a nil value (global 'loadstring')");
    attack("return dofile('/etc/passwd')", "Error",
           "attempt to call a nil value (global 'dofile')");
    attack("return loadfile('/etc/passwd')", "Error",
           "attempt to call a nil value (global 'loadfile')");
}

static void test_escape_string_dump_via_method(void **state)
{
    (void)state;
    attack("return (''):dump(function() end)", "Error", "attempt to call a nil value (method 'd"
           "ump')");
    harmless("return { string.dump == nil, ('x').dump == nil }", "[true,true]");
}

static void test_escape_binary_chunk_refused(void **state)
{
    static const char bin[] = "\x1bLua\x54\x00\x19\x93\r\n\x1a\n\x04\x08\x08";
    sbx_lua *l = NULL;
    sbx_lua_error err;
    (void)state;
    assert_int_equal(sbx_lua_new(&l, bin, sizeof bin - 1, "main.lua", "handler", &lim, NULL,
                                 &err),
                     SL_EINVAL);
    assert_null(l);
    assert_string_equal(err.error_type, "Runtime.UserCodeSyntaxError");
    assert_non_null(strstr(err.error_message, "attempt to load a binary chunk"));
}

static void test_escape_debug_sethook(void **state)
{
    (void)state;
    attack("debug.sethook()", "Error", "attempt to index a nil value (global 'debug')");
}

static void test_escape_collectgarbage(void **state)
{
    (void)state;
    attack("collectgarbage('stop')", "Error",
           "attempt to call a nil value (global 'collectgarbage')");
}

static void test_escape_math_randomseed_absent(void **state)
{
    (void)state;
    attack("math.randomseed(42)", "Error", "attempt to call a nil value (field 'randomseed')");
    harmless("local x = math.random(1, 10); return x >= 1 and x <= 10", "true");
}

static void test_escape_coroutine_close_absent(void **state)
{
    (void)state;
    attack("coroutine.close(coroutine.create(print))", "Error",
           "attempt to call a nil value (field 'close')");
}

/* ---- metatables ------------------------------------------------------------------------------ */

static void test_escape_string_metatable_poisoning(void **state)
{
    (void)state;
    harmless("return getmetatable('')", "false");
    attack("getmetatable('').__index.upper = nil", "Error", "attempt to index a boolean value");
    attack("setmetatable('', {})", "Error", "bad argument #1 to 'setmetatable'");
}

static void test_escape_setmetatable_gc(void **state)
{
    (void)state;
    attack("setmetatable({}, {__gc = function() while true do end end})", "Error",
           "a metatable with __gc is not allowed");
}

static void test_escape_library_rawset_stays_in_instance(void **state)
{
    const char *code = "function handler(ev)\n"
                       "  if ev.poison then\n"
                       "    rawset(string, 'upper', nil); string.rep = nil; math.floor = nil\n"
                       "    table.insert = error\n"
                       "  end\n"
                       "  return { ('a'):upper(), string.upper ~= nil, math.floor ~= nil }\n"
                       "end\n";
    sbx_lua *a = mk(code);
    sbx_lua *b = mk(code);
    (void)state;
    expect_ok(a, "{\"poison\":true}", "[\"A\",false,false]");
    expect_ok(b, "{}", "[\"A\",true,true]");
    sbx_lua_free(a);
    sbx_lua_free(b);
}

static void test_escape_protected_globals(void **state)
{
    (void)state;
    attack("json = nil", "Error", "cannot assign to protected global 'json'");
    attack("_G.kinesis = {}", "Error", "cannot assign to protected global 'kinesis'");
    attack("_ENV.log = print", "Error", "cannot assign to protected global 'log'");
    attack("setmetatable(_G, {})", "Error", "cannot change a protected metatable");
    harmless("mine = 1; string = 'shadow'; return { mine, type(string), getmetatable(_G) }",
             "[1,\"string\",false]");
}

/* ---- CPU budget ------------------------------------------------------------------------------ */

static void test_escape_infinite_loop(void **state)
{
    sbx_lua *l = mk_attack("while true do end");
    sbx_lua_result r;
    (void)state;
    inv(l, "{\"attack\":true}", &r);
    assert_int_equal(r.status, SBX_LUA_FUNCTION_ERROR);
    assert_string_equal(r.error_type, "Sandbox.Timedout");
    assert_true(r.timed_out);
    assert_true(r.discard);
    assert_non_null(strstr(r.payload, "Task timed out after 0.20 seconds"));
    sbx_lua_result_clear(&r);
    /* even if a caller ignored discard, the budget is re-armed for the next invocation */
    expect_ok(l, "{}", "\"alive\"");
    sbx_lua_free(l);
}

static void test_escape_pcall_swallowed_loop(void **state)
{
    (void)state;
    attack("while true do pcall(function() while true do end end) end", "Sandbox.Timedout",
           "Task timed out");
    attack("while true do xpcall(function() while true do end end, function() return 1 end) end",
           "Sandbox.Timedout", "Task timed out");
    attack("local function h() while true do end end\n"
           "  while true do xpcall(error, h) end",
           "Sandbox.Timedout", "Task timed out");
}

static void test_escape_coroutine_loops(void **state)
{
    (void)state;
    attack("while true do coroutine.resume(coroutine.create(function() while true do end end)) "
           "end",
           "Sandbox.Timedout", "Task timed out");
    attack("coroutine.wrap(function() while true do end end)()", "Sandbox.Timedout",
           "Task timed out");
    attack("local function f() return f() end return f()", "Sandbox.Timedout", "Task timed out");
}

static void test_escape_close_handlers_after_kill(void **state)
{
    (void)state;
    /* after the hook raised, Lua keeps that thread's hooks off until a pcall boundary: neither a
     * message handler nor a __close handler may run unbudgeted then */
    attack("coroutine.wrap(function()\n"
           "    local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
           "    while true do end\n"
           "  end)()",
           "Sandbox.Timedout", "Task timed out");
    attack("local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
           "  while true do end",
           "Sandbox.Timedout", "Task timed out");
    attack("coroutine.wrap(function()\n"
           "    xpcall(function() while true do end end, function() while true do end end)\n"
           "  end)()",
           "Sandbox.Timedout", "Task timed out");
}

static void test_escape_pattern_backtracking(void **state)
{
    (void)state;
    /* exponential/polynomial backtracking: minutes for the stock 5.4.4 matcher */
    attack("return string.find(string.rep('a', 5000), '.-.-.-.-.-b')", "Sandbox.Timedout",
           "Task timed out");
    attack("return (string.rep('a', 3000)):match('a*a*a*a*a*a*x')", "Sandbox.Timedout",
           "Task timed out");
    attack("return select(2, string.rep('ab', 2000):gsub('.-.-.-c', ''))", "Sandbox.Timedout",
           "Task timed out");
    attack("for a in string.rep('a', 4000):gmatch('.-.-.-b') do end", "Sandbox.Timedout",
           "Task timed out");
}

static void test_escape_gsub_callback_loop(void **state)
{
    (void)state;
    attack("return ('abc'):gsub('.', function() while true do end end)", "Sandbox.Timedout",
           "Task timed out");
}

static void test_escape_tostring_metamethod_loop_in_error(void **state)
{
    (void)state;
    /* the message handler must not call __tostring */
    attack("error(setmetatable({}, {__tostring = function() while true do end end}))", "Error",
           "(error object is a table value)");
}

/* ---- memory ------------------------------------------------------------------------------- */

static void test_escape_string_rep_bomb(void **state)
{
    sbx_lua *l;
    sbx_lua_result r;
    (void)state;
    attack_mem("local s = string.rep('x', 1 << 30); return #s", "Runtime.OutOfMemory",
               "memory limit");
    attack_mem("local s = 'x'; while true do s = s .. s end", "Runtime.OutOfMemory",
               "memory limit");
    /* caught by pcall: the cap still holds and the script goes on; the instance is still
     * reported for discard because it hit the cap */
    l = mk_attack("return (pcall(string.rep, 'x', 1 << 30))");
    inv(l, "{\"attack\":true}", &r);
    assert_int_equal(r.status, SBX_LUA_OK);
    assert_string_equal(r.payload, "false");
    assert_true(r.discard);
    assert_true(r.peak_memory <= MEM_CAP);
    sbx_lua_result_clear(&r);
    sbx_lua_free(l);
}

static void test_escape_table_growth_bomb(void **state)
{
    (void)state;
    attack_mem("local t = {}; local i = 0; while true do i = i + 1; t[i] = {i} end",
               "Runtime.OutOfMemory", "memory limit");
    attack_mem("local t = {} for i = 1, 1e9 do t[#t + 1] = tostring(i) .. 'padding' end",
               "Runtime.OutOfMemory", "memory limit");
}

static void test_escape_deep_recursion(void **state)
{
    sbx_lua *l;
    sbx_lua_result r;
    (void)state;
    cur_lim = &lim_mem;
    l = mk_attack("local function f(n) return 1 + f(n + 1) end return f(1)");
    inv(l, "{\"attack\":true}", &r);
    assert_int_equal(r.status, SBX_LUA_FUNCTION_ERROR);
    /* either Lua's stack limit or the memory cap stops it, never the process */
    assert_true(strcmp(r.error_type, "Runtime.OutOfMemory") == 0 ||
                (strcmp(r.error_type, "Error") == 0 && strstr(r.payload, "stack overflow")));
    sbx_lua_result_clear(&r);
    sbx_lua_free(l);
    cur_lim = &lim;
    attack("local function f() pcall(f) end f() error('after')", "Error", "after");
    attack("local t = setmetatable({}, {__index = function(t, k) return t[k] end}) return t.x",
           "Error", "stack overflow");
}

static void test_escape_deep_json_nesting(void **state)
{
    (void)state;
    attack("return json.decode(string.rep('[', 100000))", "Error", "nesting too deep");
    attack("local t = {} for i = 1, 500 do t = {t} end return json.encode(t)", "Error",
           "nesting deeper than 128");
    attack("local t = {} for i = 1, 500 do t = {t} end return t", "Runtime.InvalidReturnValue",
           "nesting deeper than 128");
}

static void test_escape_json_cycle(void **state)
{
    (void)state;
    attack("local t = {}; t[1] = t; return json.encode(t)", "Error", "or a cycle");
    attack("local t = {}; t.me = t; return t", "Runtime.InvalidReturnValue", "or a cycle");
}

static void test_escape_result_metamethods_not_called(void **state)
{
    (void)state;
    harmless("return setmetatable({a = 1}, {__index = function() error('x') end,\n"
             "  __pairs = function() while true do end end,\n"
             "  __len = function() error('y') end})",
             "{\"a\":1}");
}

/* ---- coroutines ------------------------------------------------------------------------------ */

static void test_escape_yield_across_pcall(void **state)
{
    (void)state;
    harmless("local co = coroutine.wrap(function()\n"
             "    local ok, v = pcall(function() return coroutine.yield(1) + 1 end)\n"
             "    coroutine.yield(v)\n"
             "    return 'end'\n"
             "  end)\n"
             "  return { co(), co(41), co() }",
             "[1,42,\"end\"]");
    attack("local co = coroutine.wrap(function() pcall(coroutine.yield) end) co() co()\n"
           "  return coroutine.yield()",
           "Error", "attempt to yield from outside a coroutine");
}

static void test_escape_close_chain_contained(void **state)
{
    sbx_lua *l;
    sbx_lua_result r;
    (void)state;
    /* The 5.4.4 crash needs coroutine.close (absent); the same chain through coroutine.wrap's
     * error path (lua_resetthread) must not crash either. */
    l = mk_attack("local prev\n"
                  "  for i = 1, 20000 do\n"
                  "    local p = prev\n"
                  "    local f = coroutine.wrap(function()\n"
                  "      local x <close> = setmetatable({}, {__close = function()\n"
                  "        if p then pcall(p) end end})\n"
                  "      coroutine.yield()\n"
                  "      error('boom')\n"
                  "    end)\n"
                  "    f()\n"
                  "    prev = f\n"
                  "  end\n"
                  "  return (pcall(prev))");
    inv(l, "{\"attack\":true}", &r);
    /* outcome may be a result, a timeout or a memory error: the process must survive */
    assert_true(r.payload != NULL);
    sbx_lua_result_clear(&r);
    sbx_lua_free(l);
    attack_mem("local t = {} for i = 1, 1e6 do t[i] = coroutine.create(function() end) end",
               "Runtime.OutOfMemory", "memory limit");
}

/* ---- information leaks and output ------------------------------------------------------------ */

static void test_escape_addresses_hidden(void **state)
{
    (void)state;
    attack("return string.format('%p', {})", "Error", "invalid conversion '%p'");
    attack("return ('%5p'):format(print)", "Error", "invalid conversion '%p'");
    harmless("local a, b = tostring({}), tostring(print)\n"
             "  return { a:match('^table: 0x0000000%d$') ~= nil, b:match('^function: ') ~= nil,\n"
             "           tostring({}) ~= a, string.format('%d%%s', 5),\n"
             "           string.format('%s', {}):match('^table: 0x0000000%d$') ~= nil }",
             "[true,true,true,\"5%s\",true]");
}

static void test_escape_gc_via_json_marker(void **state)
{
    (void)state;
    /* finalizers run with hooks off: a __gc smuggled into a json marker metatable is refused */
    attack("getmetatable(json.decode('[]')).__gc = function() while true do end end\n"
           "  for i = 1, 100 do json.decode('[1]') end",
           "Error", "__gc field was added");
    attack("getmetatable(json.decode('{}')).__gc = function() while true do end end\n"
           "  return json.object({})",
           "Error", "__gc field was added");
}

static void test_escape_huge_log_capped(void **state)
{
    sbx_lua *l = mk_attack("for i = 1, 100000 do print(string.rep('z', 1000)) end return 'x'");
    sbx_lua_result r;
    (void)state;
    inv(l, "{\"attack\":true}", &r);
    assert_true(r.log_truncated);
    assert_true(r.log_len <= SBX_LUA_DEFAULT_LOG_BYTES + 128);
    sbx_lua_result_clear(&r);
    expect_ok(l, "{}", "\"alive\"");
    sbx_lua_free(l);
}

static void test_escape_deeply_nested_source(void **state)
{
    char code[8192];
    size_t n = 0;
    int i;
    sbx_lua *l = NULL;
    sbx_lua_error err;
    (void)state;
    n += (size_t)snprintf(code, sizeof code, "x = ");
    for (i = 0; i < 1000; i++) code[n++] = '(';
    code[n++] = '1';
    for (i = 0; i < 1000; i++) code[n++] = ')';
    n += (size_t)snprintf(code + n, sizeof code - n, "\nfunction handler() end\n");
    assert_int_equal(sbx_lua_new(&l, code, n, "main.lua", "handler", &lim, NULL, &err),
                     SL_EINVAL);
    assert_string_equal(err.error_type, "Runtime.UserCodeSyntaxError");
}

static void test_escape_init_infinite_loop(void **state)
{
    const char *code = "while true do end\nfunction handler() end";
    sbx_lua *l = NULL;
    sbx_lua_error err;
    (void)state;
    assert_int_equal(sbx_lua_new(&l, code, strlen(code), "main.lua", "handler", &lim, NULL, &err),
                     SL_EINVAL);
    assert_string_equal(err.error_type, "Sandbox.Timedout");
    assert_string_equal(err.error_message, "Init timed out after 0.50 seconds");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_os_execute),
        cmocka_unit_test(test_escape_os_exit_and_getenv),
        cmocka_unit_test(test_escape_io_open),
        cmocka_unit_test(test_escape_require),
        cmocka_unit_test(test_escape_load_loadstring_dofile),
        cmocka_unit_test(test_escape_string_dump_via_method),
        cmocka_unit_test(test_escape_binary_chunk_refused),
        cmocka_unit_test(test_escape_debug_sethook),
        cmocka_unit_test(test_escape_collectgarbage),
        cmocka_unit_test(test_escape_math_randomseed_absent),
        cmocka_unit_test(test_escape_coroutine_close_absent),
        cmocka_unit_test(test_escape_string_metatable_poisoning),
        cmocka_unit_test(test_escape_setmetatable_gc),
        cmocka_unit_test(test_escape_library_rawset_stays_in_instance),
        cmocka_unit_test(test_escape_protected_globals),
        cmocka_unit_test(test_escape_infinite_loop),
        cmocka_unit_test(test_escape_pcall_swallowed_loop),
        cmocka_unit_test(test_escape_coroutine_loops),
        cmocka_unit_test(test_escape_close_handlers_after_kill),
        cmocka_unit_test(test_escape_pattern_backtracking),
        cmocka_unit_test(test_escape_gsub_callback_loop),
        cmocka_unit_test(test_escape_tostring_metamethod_loop_in_error),
        cmocka_unit_test(test_escape_string_rep_bomb),
        cmocka_unit_test(test_escape_table_growth_bomb),
        cmocka_unit_test(test_escape_deep_recursion),
        cmocka_unit_test(test_escape_deep_json_nesting),
        cmocka_unit_test(test_escape_json_cycle),
        cmocka_unit_test(test_escape_result_metamethods_not_called),
        cmocka_unit_test(test_escape_yield_across_pcall),
        cmocka_unit_test(test_escape_close_chain_contained),
        cmocka_unit_test(test_escape_addresses_hidden),
        cmocka_unit_test(test_escape_gc_via_json_marker),
        cmocka_unit_test(test_escape_huge_log_capped),
        cmocka_unit_test(test_escape_deeply_nested_source),
        cmocka_unit_test(test_escape_init_infinite_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
