/* test_sandbox_lua.c — functional tests of the Lua sandbox (sandbox/lua_state.h): pattern
 * matcher against reference results of the real Lua 5.4, JSON mapping, base64, log, context,
 * warm-instance globals, error shapes, kinesis host calls, thread-stack checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "broker/sl_common.h"
#include "sandbox/lua_alloc.h"
#include "sandbox/lua_state.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---- helpers -------------------------------------------------------------------------- */

static sbx_lua *mk_full(const char *code, const sbx_lua_limits *lim, const sbx_lua_host *host)
{
    sbx_lua *l = NULL;
    sbx_lua_error err;
    int rc = sbx_lua_new(&l, code, strlen(code), "main.lua", "handler", lim, host, &err);
    if (rc != 0) fail_msg("init failed (%d): %s: %s", rc, err.error_type, err.error_message);
    return l;
}

static sbx_lua *mk(const char *code) { return mk_full(code, NULL, NULL); }

static void inv(sbx_lua *l, const char *event, sbx_lua_result *r)
{
    assert_int_equal(sbx_lua_invoke(l, event, strlen(event), NULL, 0, 0, r), 0);
}

/* Invokes and expects success with exactly this result JSON. */
static void expect_ok(sbx_lua *l, const char *event, const char *want)
{
    sbx_lua_result r;
    inv(l, event, &r);
    if (r.status != SBX_LUA_OK) fail_msg("function error: %s", r.payload);
    assert_string_equal(r.payload, want);
    sbx_lua_result_clear(&r);
}

/* Invokes and expects a function error of this type; returns the parsed error document. */
static cJSON *expect_err(sbx_lua *l, const char *event, const char *type)
{
    sbx_lua_result r;
    cJSON *doc;
    inv(l, event, &r);
    if (r.status != SBX_LUA_FUNCTION_ERROR) fail_msg("expected %s, got ok: %s", type, r.payload);
    assert_string_equal(r.error_type, type);
    doc = cJSON_Parse(r.payload);
    assert_non_null(doc);
    assert_string_equal(cJSON_GetObjectItem(doc, "errorType")->valuestring, type);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(doc, "errorMessage")));
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(doc, "stackTrace")));
    sbx_lua_result_clear(&r);
    return doc;
}

static const char *err_msg(cJSON *doc)
{
    return cJSON_GetObjectItem(doc, "errorMessage")->valuestring;
}

/* ---- pattern matcher vs. the real Lua 5.4.4 ------------------------------------------- */

/* Expected values: produced by running each expression through the serializer below with the
 * system lua5.4 (5.4.4) interpreter; error texts have their "chunk:line: " prefix removed. */
static const struct {
    const char *expr;
    const char *want;
} pattern_cases[] = {
    {"string.find(\"hello world\", \"o w\")",
     "number:5|number:7"},
    {"string.find(\"hello world\", \"l+\")",
     "number:3|number:4"},
    {"string.find(\"hello\", \"l\", 1, true)",
     "number:3|number:3"},
    {"string.find(\"a.b.c\", \".\", 1, true)",
     "number:2|number:2"},
    {"string.find(\"a.b.c\", \"%.\", 3)",
     "number:4|number:4"},
    {"string.find(\"hello\", \"xyz\")",
     "nil:nil"},
    {"string.find(\"hello\", \"\", 10)",
     "nil:nil"},
    {"string.find(\"hello\", \"\", 6)",
     "number:6|number:5"},
    {"string.find(\"hello\", \"l\", -2)",
     "number:4|number:4"},
    {"string.find(\"hello\", \"^h\")",
     "number:1|number:1"},
    {"string.find(\"hello\", \"^e\")",
     "nil:nil"},
    {"string.find(\"hello\", \"o$\")",
     "number:5|number:5"},
    {"string.find(\"a$b\", \"$b\")",
     "number:2|number:3"},
    {"string.find(\"key = value\", \"(%w+)%s*=%s*(%w+)\")",
     "number:1|number:11|string:key|string:value"},
    {"string.match(\"hello 123 world\", \"%d+\")",
     "string:123"},
    {"string.match(\"  trim  \", \"^%s*(.-)%s*$\")",
     "string:trim"},
    {"string.match(\"2024-05-02\", \"(%d+)-(%d+)-(%d+)\")",
     "string:2024|string:05|string:02"},
    {"string.match(\"hello\", \"()ll()\")",
     "number:3|number:5"},
    {"string.match(\"THE (quick) fox\", \"%((%a+)%)\")",
     "string:quick"},
    {"string.match(\"abc\", \"%u\")",
     "nil:nil"},
    {"string.match(\"abcDEF\", \"%U+\")",
     "string:abc"},
    {"string.match(\"x = [[a]] y\", \"%b[]\")",
     "string:[[a]]"},
    {"string.match(\"f(a(b)c)d\", \"%b()\")",
     "string:(a(b)c)"},
    {"string.match(\"THE (quick) fox\", \"%f[%a]%a+\", 5)",
     "string:quick"},
    {"string.match(\"hello world\", \"%f[%w]%w+$\")",
     "string:world"},
    {"string.match(\"abab\", \"(ab)%1\")",
     "string:ab"},
    {"string.match(\"abba\", \"(a)(b)%2%1\")",
     "string:a|string:b"},
    {"string.match(\"hello\", \".-l\")",
     "string:hel"},
    {"string.match(\"hello\", \".*l\")",
     "string:hell"},
    {"string.match(\"aaa\", \"a-b\")",
     "nil:nil"},
    {"string.match(\"aaab\", \"a-b\")",
     "string:aaab"},
    {"string.match(\"color colour\", \"colou?r\", 3)",
     "string:colour"},
    {"string.match(\"[x]\", \"[%[]\")",
     "string:["},
    {"string.match(\"a]b\", \"[]]\")",
     "string:]"},
    {"string.match(\"a-b\", \"[a%-]+\")",
     "string:a-"},
    {"string.match(\"0x1F\", \"0[xX](%x+)\")",
     "string:1F"},
    {"string.match(\"tab\\there\", \"%c\")",
     "string:\t"},
    {"string.match(\"a,b;c\", \"[^,;]+$\")",
     "string:c"},
    {"string.match(\"hello\", \"[a-f]+\")",
     "string:e"},
    {"string.match(\"\\0abc\", \"%z\") == nil",
     "boolean:false"},
    {"#string.match(\"x\\0y\", \"x%zy\")",
     "number:3"},
    {"string.match(\"hi!\", \"%p\")",
     "string:!"},
    {"string.match(\"hi there\", \"%g+\")",
     "string:hi"},
    {"string.match(\"abc\", \"((a)(b))\")",
     "string:ab|string:a|string:b"},
    {"string.match(\"abc\", \"\")",
     "string:"},
    {"string.match(\"abc\", \"()\", 4)",
     "number:4"},
    {"string.gsub(\"hello world\", \"o\", \"0\")",
     "string:hell0 w0rld|number:2"},
    {"string.gsub(\"hello world\", \"o\", \"0\", 1)",
     "string:hell0 world|number:1"},
    {"string.gsub(\"hello world\", \"(%w+)\", \"<%1>\")",
     "string:<hello> <world>|number:2"},
    {"string.gsub(\"hello world\", \"%w+\", \"%0 %0\")",
     "string:hello hello world world|number:2"},
    {"string.gsub(\"abc\", \"\", \"-\")",
     "string:-a-b-c-|number:4"},
    {"string.gsub(\"hello\", \"l*\", \"x\")",
     "string:xhxexox|number:4"},
    {"string.gsub(\"$name is $age\", \"%$(%w+)\", {name=\"bob\", age=42})",
     "string:bob is 42|number:2"},
    {"string.gsub(\"$name is $x\", \"%$(%w+)\", {name=\"bob\"})",
     "string:bob is $x|number:2"},
    {"string.gsub(\"a b c\", \"%w\", function(c) return c:upper() .. \"!\" end)",
     "string:A! B! C!|number:3"},
    {"string.gsub(\"a b c\", \"%w\", function(c) if c == \"b\" then return false end return \"X"
     "\" end)",
     "string:X b X|number:3"},
    {"string.gsub(\"abc\", \"()\", \"%1\")",
     "string:1a2b3c4|number:4"},
    {"string.gsub(\"abc\", \"^a\", \"A\")",
     "string:Abc|number:1"},
    {"string.gsub(\"aaa\", \"^a\", \"A\")",
     "string:Aaa|number:1"},
    {"string.gsub(\"hello\", \"l\", \"%%\")",
     "string:he%%o|number:2"},
    {"string.gsub(\"x\", \"x\", 5)",
     "string:5|number:1"},
    {"string.gsub(\"abc\", \"b\", \"%2\")",
     "E:invalid capture index %2"},
    {"string.gsub(\"abc\", \"b\", \"%z\")",
     "E:invalid use of '%' in replacement string"},
    {"string.gsub(\"abc\", \"b\", {b = {}})",
     "E:invalid replacement value (a table)"},
    {"string.gsub(\"abc\", \"b\")",
     "E:bad argument #3 to 'gsub' (string/function/table expected, got no value)"},
    {"string.find(\"abc\", \"[a\")",
     "E:malformed pattern (missing ']')"},
    {"string.find(\"abc\", \"%\")",
     "E:malformed pattern (ends with '%')"},
    {"string.find(\"abc\", \"%b\")",
     "E:malformed pattern (missing arguments to '%b')"},
    {"string.find(\"abc\", \"%fx\")",
     "E:missing '[' after '%f' in pattern"},
    {"string.find(\"abc\", \"(%1)\")",
     "E:invalid capture index %1"},
    {"string.find(\"abc\", \"a)\")",
     "nil:nil"},
    {"string.find(\"abc\", \"(a\")",
     "E:unfinished capture"},
    {"string.find(string.rep(\"a\", 40), string.rep(\"(a)\", 33))",
     "E:too many captures"},
    {"string.match(string.rep(\"x\", 300), string.rep(\"x?\", 250))",
     "E:pattern too complex"},
    {"(function() local t = {} for w in string.gmatch(\"one two  three\", \"%a+\") do t[#t+1] ="
     " w end return table.concat(t, \",\") end)()",
     "string:one,two,three"},
    {"(function() local t = {} for k, v in string.gmatch(\"a=1, b=2, c=3\", \"(%w+)=(%w+)\") do"
     " t[#t+1] = k .. v end return table.concat(t, \";\") end)()",
     "string:a1;b2;c3"},
    {"(function() local t = {} for w in string.gmatch(\"abc\", \"\") do t[#t+1] = \"[\" .. w .."
     " \"]\" end return table.concat(t) end)()",
     "string:[][][][]"},
    {"(function() local t = {} for w in string.gmatch(\"one two three\", \"%a+\", 5) do t[#t+1]"
     " = w end return table.concat(t, \",\") end)()",
     "string:two,three"},
    {"(function() local t = {} for p in string.gmatch(\"abc\", \"()\") do t[#t+1] = p end retur"
     "n table.concat(t, \",\") end)()",
     "string:1,2,3,4"},
    {"(function() local t = {} for w in string.gmatch(\"^a^b\", \"^%a\") do t[#t+1] = w end ret"
     "urn table.concat(t, \",\") end)()",
     "string:^a,^b"},
    {"(\"Hello\"):find(\"l\")",
     "number:3|number:3"},
    {"(\"key=val\"):match(\"(%w+)=(%w+)\")",
     "string:key|string:val"},
    {"(\"a,b,c\"):gsub(\",\", \";\")",
     "string:a;b;c|number:2"},
    {"(\"%d\"):rep(3)",
     "string:%d%d%d"},
};

static const char pattern_tail[] =
    "}\n"
    "local function ser(ok, ...)\n"
    "  if not ok then return 'E:' .. (tostring((...)):gsub('^.-:%d+: ', '')) end\n"
    "  local n = select('#', ...)\n"
    "  local t = {}\n"
    "  for i = 1, n do local v = select(i, ...); t[#t + 1] = type(v) .. ':' .. tostring(v) end\n"
    "  return table.concat(t, '|')\n"
    "end\n"
    "function handler(ev) return ser(pcall(C[ev.i])) end\n";

static void test_pattern_matches_reference(void **state)
{
    size_t n = sizeof pattern_cases / sizeof pattern_cases[0];
    size_t cap = 64 * 1024;
    char *code = malloc(cap);
    size_t len = 0;
    size_t i;
    sbx_lua *l;
    (void)state;
    assert_true(n >= 60);
    len += (size_t)snprintf(code + len, cap - len, "local C = {\n");
    for (i = 0; i < n; i++)
        len += (size_t)snprintf(code + len, cap - len, "function() return %s end,\n",
                                pattern_cases[i].expr);
    assert_true(len + sizeof pattern_tail < cap);
    memcpy(code + len, pattern_tail, sizeof pattern_tail);
    l = mk(code);
    for (i = 0; i < n; i++) {
        char ev[32];
        sbx_lua_result r;
        cJSON *doc;
        snprintf(ev, sizeof ev, "{\"i\":%zu}", i + 1);
        inv(l, ev, &r);
        if (r.status != SBX_LUA_OK) fail_msg("case %zu: %s", i + 1, r.payload);
        doc = cJSON_Parse(r.payload);
        assert_non_null(doc);
        assert_true(cJSON_IsString(doc));
        if (strcmp(doc->valuestring, pattern_cases[i].want) != 0)
            fail_msg("case %zu: %s\n  got:  %s\n  want: %s", i + 1, pattern_cases[i].expr,
                     doc->valuestring, pattern_cases[i].want);
        cJSON_Delete(doc);
        sbx_lua_result_clear(&r);
    }
    sbx_lua_free(l);
    free(code);
}

/* ---- allocator ------------------------------------------------------------------------- */

static void test_alloc_caps_growth_never_shrinks(void **state)
{
    sbx_alloc a;
    char *p;
    char *q;
    char *big;
    (void)state;
    sbx_alloc_init(&a, 1000);
    p = sbx_alloc_fn(&a, NULL, 5 /* type tag */, 100);
    assert_non_null(p);
    memset(p, 'x', 100);
    assert_int_equal(a.used, 100);
    /* same 16-byte class: grows in place */
    q = sbx_alloc_fn(&a, p, 100, 110);
    assert_ptr_equal(q, p);
    /* small -> large keeps the content */
    big = sbx_alloc_fn(&a, q, 110, 600);
    assert_non_null(big);
    assert_int_equal(big[0], 'x');
    assert_int_equal(big[99], 'x');
    assert_int_equal(a.used, 600);
    /* over the cap: refused, flagged, nothing changes */
    assert_null(sbx_alloc_fn(&a, NULL, 0, 401));
    assert_true(a.hit);
    assert_null(sbx_alloc_fn(&a, big, 600, 1200));
    assert_int_equal(a.used, 600);
    /* shrinking is never refused, even when over the cap */
    a.limit = 10;
    q = sbx_alloc_fn(&a, big, 600, 50);
    assert_non_null(q);
    assert_int_equal(q[49], 'x');
    assert_int_equal(a.used, 50);
    assert_null(sbx_alloc_fn(&a, q, 50, 0));
    assert_int_equal(a.used, 0);
    assert_int_equal(a.peak, 600);
    /* the freed small block is recycled */
    assert_true(a.pooled > 0);
    a.limit = 1000;
    p = sbx_alloc_fn(&a, NULL, 0, 60);
    assert_ptr_equal(p, q);
    sbx_alloc_fn(&a, p, 60, 0);
    sbx_alloc_release(&a);
    assert_int_equal(a.pooled, 0);
}

static void test_trim_returns_memory_and_keeps_instance(void **state)
{
    sbx_lua *l = mk("keep = {}\n"
                    "function handler(ev)\n"
                    "  local t = {}\n"
                    "  for i = 1, 5000 do t[i] = {i, tostring(i)} end\n"
                    "  keep[#keep + 1] = ev.v\n"
                    "  return #keep\n"
                    "end\n");
    size_t before;
    (void)state;
    expect_ok(l, "{\"v\":1}", "1");
    before = sbx_lua_memory(l);
    sbx_lua_trim(l);
    assert_true(sbx_lua_memory(l) < before);
    expect_ok(l, "{\"v\":2}", "2");
    sbx_lua_free(l);
}

/* ---- JSON ------------------------------------------------------------------------------ */

static void test_json_roundtrips_null_arrays_objects(void **state)
{
    sbx_lua *l = mk("function handler(ev) return json.encode(json.decode(ev.s)) end\n");
    (void)state;
    expect_ok(l, "{\"s\":\"[]\"}", "\"[]\"");
    expect_ok(l, "{\"s\":\"{}\"}", "\"{}\"");
    expect_ok(l, "{\"s\":\"null\"}", "\"null\"");
    expect_ok(l, "{\"s\":\"[1,null,[],{},\\\"x\\\"]\"}", "\"[1,null,[],{},\\\"x\\\"]\"");
    expect_ok(l, "{\"s\":\"{\\\"a\\\":[[]]}\"}", "\"{\\\"a\\\":[[]]}\"");
    expect_ok(l, "{\"s\":\"[true,false,-0.5,1e2,12345678901234567890]\"}",
              "\"[true,false,-0.5,100,1.2345678901234567e+19]\"");
    expect_ok(l, "{\"s\":\"\\\"\\\\u00e9\\\\ud83d\\\\ude00\\\\n\\\"\"}",
              "\"\\\"\xc3\xa9\xf0\x9f\x98\x80\\\\n\\\"\"");
    sbx_lua_free(l);
}

static void test_json_event_values_and_numbers(void **state)
{
    sbx_lua *l = mk("function handler(ev)\n"
                    "  return { math.type(ev.i), math.type(ev.f), math.type(ev.big),\n"
                    "           math.type(ev.whole), ev.n == json.null, tostring(json.null),\n"
                    "           #ev.arr, getmetatable(ev.arr) ~= getmetatable(ev.obj) }\n"
                    "end\n");
    (void)state;
    expect_ok(l,
              "{\"i\":42,\"f\":0.1,\"big\":9007199254740993,\"whole\":2.0,\"n\":null,"
              "\"arr\":[1,2,3],\"obj\":{}}",
              "[\"integer\",\"float\",\"float\",\"integer\",true,\"null\",3,true]");
    sbx_lua_free(l);
}

static void test_json_encode_rules(void **state)
{
    sbx_lua *l = mk("local cases = {\n"
                    "  function() return json.encode({}) end,\n"
                    "  function() return json.encode(json.array({})) end,\n"
                    "  function() return json.encode({1, 2, 3}) end,\n"
                    "  function() return json.encode({1, 2, nil, 4}) end,\n"
                    "  function() return json.encode({1, x = 2}) end,\n"
                    "  function() return json.encode({[1.5] = 1}) end,\n"
                    "  function() return json.encode(0/0) end,\n"
                    "  function() return json.encode(math.huge) end,\n"
                    "  function() return json.encode('a\\1\\255\"\\\\') end,\n"
                    "  function() return json.encode(0.1) end,\n"
                    "  function() return json.encode(3) end,\n"
                    "  function() return json.encode(print) end,\n"
                    "  function() return json.encode(json.object({})) end,\n"
                    "  function() return json.encode({k = {1}}) end,\n"
                    "  function() local t = json.object({}); t[1] = 2; return json.encode(t) end,\n"
                    "  function() return json.decode('[1,]') end,\n"
                    "  function() return json.decode('{\"a\" 1}') end,\n"
                    "  function() return json.decode('[1] x') end,\n"
                    "  function() return json.decode('01') end,\n"
                    "}\n"
                    "function handler(ev)\n"
                    "  local ok, v = pcall(cases[ev.i])\n"
                    "  if ok then return v end\n"
                    "  return 'E:' .. v:gsub('^.-:%d+: ', '')\n"
                    "end\n");
    static const char *const want[] = {
        "\"{}\"",
        "\"[]\"",
        "\"[1,2,3]\"",
        "\"E:json.encode: cannot encode a table with mixed or sparse keys\"",
        "\"E:json.encode: cannot encode a table with mixed or sparse keys\"",
        "\"E:json.encode: cannot encode a table with mixed or sparse keys\"",
        "\"E:json.encode: cannot encode NaN or infinity\"",
        "\"E:json.encode: cannot encode NaN or infinity\"",
        "\"\\\"a\\\\u0001\\\\u00ff\\\\\\\"\\\\\\\\\\\"\"",
        "\"0.1\"",
        "\"3\"",
        "\"E:json.encode: cannot encode a function value\"",
        "\"{}\"",
        "\"{\\\"k\\\":[1]}\"",
        "\"E:json.encode: object keys must be strings (got a number key)\"",
        "\"E:json.decode: unexpected character at position 4\"",
        "\"E:json.decode: expected ':' at position 6\"",
        "\"E:json.decode: trailing characters after the value at position 5\"",
        "\"E:json.decode: trailing characters after the value at position 2\"",
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof want / sizeof want[0]; i++) {
        char ev[32];
        snprintf(ev, sizeof ev, "{\"i\":%zu}", i + 1);
        expect_ok(l, ev, want[i]);
    }
    sbx_lua_free(l);
}

/* ---- base64 ---------------------------------------------------------------------------- */

static void test_base64_encode_decode_strict(void **state)
{
    sbx_lua *l = mk("function handler(ev)\n"
                    "  local r = {}\n"
                    "  for _, s in ipairs({'', 'a', 'ab', 'abc', 'hello\\0world'}) do\n"
                    "    local e = base64.encode(s)\n"
                    "    r[#r + 1] = e\n"
                    "    assert(base64.decode(e) == s)\n"
                    "  end\n"
                    "  for _, bad in ipairs({'YQ=', 'Y===', 'YQ==YQ==', 'Y Q=', '****'}) do\n"
                    "    r[#r + 1] = pcall(base64.decode, bad)\n"
                    "  end\n"
                    "  r[#r + 1] = base64.decode(ev.data)\n"
                    "  return r\n"
                    "end\n");
    (void)state;
    expect_ok(l, "{\"data\":\"eyJ0ZW1wIjoyMX0=\"}",
              "[\"\",\"YQ==\",\"YWI=\",\"YWJj\",\"aGVsbG8Ad29ybGQ=\",false,false,false,false,"
              "false,\"{\\\"temp\\\":21}\"]");
    sbx_lua_free(l);
}

/* ---- log --------------------------------------------------------------------------------- */

static void test_log_levels_print_and_escaping(void **state)
{
    sbx_lua *l = mk("print('init line')\n"
                    "function handler(ev)\n"
                    "  log.info('a', 1, nil, true, 2.5)\n"
                    "  log.warn('w')\n"
                    "  log.error('e')\n"
                    "  log.debug('d')\n"
                    "  print('multi\\nline\\27[31m')\n"
                    "end\n");
    sbx_lua_result r;
    (void)state;
    inv(l, "{}", &r);
    assert_int_equal(r.status, SBX_LUA_OK);
    assert_string_equal(r.payload, "null");
    assert_string_equal(r.log, "INFO\tinit line\n"
                               "INFO\ta\t1\tnil\ttrue\t2.5\n"
                               "WARN\tw\n"
                               "ERROR\te\n"
                               "DEBUG\td\n"
                               "INFO\tmulti\\nline\\x1b[31m\n");
    assert_false(r.log_truncated);
    sbx_lua_result_clear(&r);
    /* the init output is reported once; later invocations start empty */
    inv(l, "{}", &r);
    assert_non_null(strstr(r.log, "INFO\ta"));
    assert_null(strstr(r.log, "init line"));
    sbx_lua_result_clear(&r);
    sbx_lua_free(l);
}

static void test_log_is_capped_with_marker(void **state)
{
    sbx_lua_limits lim = {.log_bytes = 1000};
    sbx_lua *l = mk_full("function handler(ev)\n"
                         "  for i = 1, 1000 do log.info(string.rep('x', 100)) end\n"
                         "  log.info(string.rep('y', 100000))\n"
                         "  return 'done'\n"
                         "end\n",
                         &lim, NULL);
    sbx_lua_result r;
    (void)state;
    inv(l, "{}", &r);
    assert_int_equal(r.status, SBX_LUA_OK);
    assert_true(r.log_truncated);
    assert_true(r.log_len <= 1000 + 100);
    assert_non_null(strstr(r.log, "log output truncated"));
    assert_null(strstr(strstr(r.log, "log output truncated"), "INFO"));
    sbx_lua_result_clear(&r);
    sbx_lua_free(l);
}

/* ---- context ------------------------------------------------------------------------------ */

static void test_context_fields_and_remaining_time(void **state)
{
    sbx_lua_limits lim = {.timeout_ms = 5000};
    sbx_lua *l = mk_full("function handler(ev, ctx)\n"
                         "  local rem = ctx.getRemainingTimeInMillis()\n"
                         "  local rem2 = ctx:getRemainingTimeInMillis()\n"
                         "  return { ctx.functionName, ctx.awsRequestId, ctx.memoryLimitInMB,\n"
                         "           rem > 0 and rem <= 5000, rem2 <= rem, ctx.functionVersion }\n"
                         "end\n",
                         &lim, NULL);
    const char *ctx = "{\"awsRequestId\":\"r-1\",\"functionName\":\"fn\",\"functionVersion\":"
                      "\"$LATEST\",\"invokedFunctionArn\":\"arn:aws:lambda:us-east-1:0:function"
                      ":fn\","
                      "\"memoryLimitInMB\":128,\"logGroupName\":\"/aws/lambda/fn\","
                      "\"logStreamName\":\"s\",\"deadlineMs\":1}";
    sbx_lua_result r;
    (void)state;
    assert_int_equal(sbx_lua_invoke(l, "{}", 2, ctx, strlen(ctx), 0, &r), 0);
    assert_int_equal(r.status, SBX_LUA_OK);
    assert_string_equal(r.payload, "[\"fn\",\"r-1\",128,true,true,\"$LATEST\"]");
    sbx_lua_result_clear(&r);
    sbx_lua_free(l);
}

/* ---- warm instances ------------------------------------------------------------------------ */

static void test_globals_persist_within_instance_only(void **state)
{
    const char *code = "count = count or 0\n"
                       "local cache = {}\n"
                       "function handler(ev)\n"
                       "  count = count + 1\n"
                       "  cache[#cache + 1] = ev.v\n"
                       "  return { count, #cache }\n"
                       "end\n";
    sbx_lua *a = mk(code);
    sbx_lua *b = mk(code);
    (void)state;
    expect_ok(a, "{\"v\":1}", "[1,1]");
    expect_ok(a, "{\"v\":2}", "[2,2]");
    expect_ok(a, "{\"v\":3}", "[3,3]");
    expect_ok(b, "{\"v\":1}", "[1,1]");
    expect_ok(a, "{\"v\":4}", "[4,4]");
    assert_int_equal(sbx_lua_invocations(a), 4);
    assert_true(sbx_lua_memory(a) > 0);
    sbx_lua_free(a);
    sbx_lua_free(b);
}

static void test_instruction_budget_is_deterministic(void **state)
{
    sbx_lua_limits lim = {.timeout_ms = 60000, .max_instructions = 200000};
    sbx_lua *l = mk_full("function handler(ev)\n"
                         "  local x = 0\n"
                         "  for i = 1, ev.n do x = x + i end\n"
                         "  return x\n"
                         "end\n",
                         &lim, NULL);
    sbx_lua_result r;
    (void)state;
    expect_ok(l, "{\"n\":1000}", "500500");
    inv(l, "{\"n\":100000000}", &r);
    assert_int_equal(r.status, SBX_LUA_FUNCTION_ERROR);
    assert_string_equal(r.error_type, "Sandbox.Timedout");
    assert_true(r.timed_out);
    assert_true(r.discard);
    assert_non_null(strstr(r.payload, "Task timed out after 60.00 seconds"));
    sbx_lua_result_clear(&r);
    /* the budget is per invocation: re-armed for the next one */
    expect_ok(l, "{\"n\":1000}", "500500");
    sbx_lua_free(l);
}

/* ---- errors ------------------------------------------------------------------------------- */

static void test_error_shapes(void **state)
{
    sbx_lua *l = mk("local function inner(kind)\n"
                    "  if kind == 's' then error('boom') end\n"
                    "  if kind == 't' then error({errorType = 'MyError', errorMessage = 'bad'})"
                    " end\n"
                    "  if kind == 'n' then error(nil) end\n"
                    "  if kind == 'f' then return function() end end\n"
                    "  if kind == 'c' then local t = {}; t.self = t; return t end\n"
                    "  if kind == 'u' then return 1 + nil end\n"
                    "  return 'fine'\n"
                    "end\n"
                    "function handler(ev) return inner(ev.k) end\n");
    cJSON *doc;
    (void)state;
    doc = expect_err(l, "{\"k\":\"s\"}", "Error");
    assert_string_equal(err_msg(doc), "main.lua:2: boom");
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "stackTrace")) > 0);
    {
        char *trace = cJSON_PrintUnformatted(cJSON_GetObjectItem(doc, "stackTrace"));
        assert_non_null(strstr(trace, "main.lua:2"));
        free(trace);
    }
    cJSON_Delete(doc);
    doc = expect_err(l, "{\"k\":\"t\"}", "MyError");
    assert_string_equal(err_msg(doc), "bad");
    cJSON_Delete(doc);
    doc = expect_err(l, "{\"k\":\"n\"}", "Error");
    assert_string_equal(err_msg(doc), "(error object is a nil value)");
    cJSON_Delete(doc);
    doc = expect_err(l, "{\"k\":\"f\"}", "Runtime.InvalidReturnValue");
    assert_non_null(strstr(err_msg(doc), "cannot encode a function"));
    cJSON_Delete(doc);
    doc = expect_err(l, "{\"k\":\"c\"}", "Runtime.InvalidReturnValue");
    assert_non_null(strstr(err_msg(doc), "cycle"));
    cJSON_Delete(doc);
    doc = expect_err(l, "{\"k\":\"u\"}", "Error");
    assert_non_null(strstr(err_msg(doc), "attempt to perform arithmetic on a nil value"));
    cJSON_Delete(doc);
    doc = expect_err(l, "{\"k\":", "Runtime.InvalidEvent");
    cJSON_Delete(doc);
    expect_ok(l, "{\"k\":\"x\"}", "\"fine\"");
    sbx_lua_free(l);
}

static void test_init_errors(void **state)
{
    sbx_lua *l = NULL;
    sbx_lua_error err;
    const char *syntax = "function handler( return end";
    const char *nohandler = "x = 1";
    const char *toperr = "local t = nil\nprint('before')\nt.x = 1\nfunction handler() end";
    (void)state;
    assert_int_equal(sbx_lua_new(&l, syntax, strlen(syntax), "main.lua", "handler", NULL, NULL,
                                 &err),
                     SL_EINVAL);
    assert_null(l);
    assert_string_equal(err.error_type, "Runtime.UserCodeSyntaxError");
    assert_non_null(strstr(err.error_message, "main.lua:1:"));
    assert_int_equal(sbx_lua_new(&l, nohandler, strlen(nohandler), "main.lua", "handler", NULL,
                                 NULL, &err),
                     SL_EINVAL);
    assert_string_equal(err.error_type, "Runtime.HandlerNotFound");
    assert_string_equal(err.error_message, "main.lua.handler is undefined or not a function");
    assert_int_equal(sbx_lua_new(&l, toperr, strlen(toperr), "main.lua", "handler", NULL, NULL,
                                 &err),
                     SL_EINVAL);
    assert_string_equal(err.error_type, "Error");
    assert_non_null(strstr(err.error_message, "main.lua:3: attempt to index a nil value"));
    assert_non_null(strstr(err.stack_trace, "main.lua:3"));
    /* a handler named differently */
    assert_int_equal(sbx_lua_new(&l, "function go() return 7 end", 26, "m.lua", "go", NULL, NULL,
                                 &err),
                     0);
    expect_ok(l, "{}", "7");
    sbx_lua_free(l);
}

/* ---- kinesis through a fake host ---------------------------------------------------------- */

typedef struct fake_host {
    int calls;
    char op[32];
    char req[4096];
    int fail;
} fake_host;

static int fake_call(void *ctx, const char *op, const char *req, size_t req_len, char **resp,
                     size_t *resp_len, char *err_type, size_t type_len, char *err_msg,
                     size_t msg_len)
{
    fake_host *h = ctx;
    const char *r;
    h->calls++;
    snprintf(h->op, sizeof h->op, "%s", op);
    snprintf(h->req, sizeof h->req, "%.*s", (int)req_len, req);
    if (h->fail) {
        snprintf(err_type, type_len, "ResourceNotFoundException");
        snprintf(err_msg, msg_len, "Stream missing under account 000000000000 not found.");
        return -1;
    }
    if (strcmp(op, "put_record") == 0)
        r = "{\"ShardId\":\"shardId-000000000000\",\"SequenceNumber\":\"4960\"}";
    else
        r = "{\"FailedRecordCount\":0,\"Records\":[{\"ShardId\":\"shardId-000000000001\","
            "\"SequenceNumber\":\"1\"},{\"ShardId\":\"shardId-000000000001\","
            "\"SequenceNumber\":\"2\"}]}";
    *resp = sl_strdup(r);
    *resp_len = strlen(r);
    return 0;
}

static void test_kinesis_put_record_and_records(void **state)
{
    fake_host fh = {0};
    sbx_lua_host host = {.ctx = &fh, .call = fake_call};
    sbx_lua *l = mk_full(
        "function handler(ev)\n"
        "  if ev.op == 'one' then\n"
        "    local r = kinesis.put_record{StreamName = 'out', PartitionKey = 'pk',\n"
        "                                 Data = 'hello', ExplicitHashKey = '7'}\n"
        "    return { r.ShardId, r.SequenceNumber }\n"
        "  elseif ev.op == 'many' then\n"
        "    local r = kinesis.put_records{StreamName = 'out', Records = {\n"
        "      { PartitionKey = 'a', Data = 'x' }, { PartitionKey = 'b', Data = '\\0\\255' } } }\n"
        "    return { r.FailedRecordCount, #r.Records, r.Records[2].SequenceNumber }\n"
        "  elseif ev.op == 'caught' then\n"
        "    local ok, e = pcall(kinesis.put_record, {StreamName = 'nope', PartitionKey = 'p',\n"
        "                                            Data = 'd'})\n"
        "    return { ok, e.errorType, e.errorMessage }\n"
        "  elseif ev.op == 'badarg' then\n"
        "    return kinesis.put_record{StreamName = 'out', Data = 'd'}\n"
        "  else\n"
        "    kinesis.put_record{StreamName = 'nope', PartitionKey = 'p', Data = 'd'}\n"
        "  end\n"
        "end\n",
        NULL, &host);
    cJSON *doc;
    (void)state;
    expect_ok(l, "{\"op\":\"one\"}", "[\"shardId-000000000000\",\"4960\"]");
    assert_string_equal(fh.op, "put_record");
    assert_string_equal(fh.req, "{\"StreamName\":\"out\",\"Data\":\"aGVsbG8=\","
                                "\"PartitionKey\":\"pk\",\"ExplicitHashKey\":\"7\"}");
    expect_ok(l, "{\"op\":\"many\"}", "[0,2,\"2\"]");
    assert_string_equal(fh.op, "put_records");
    assert_string_equal(fh.req, "{\"StreamName\":\"out\",\"Records\":[{\"Data\":\"eA==\","
                                "\"PartitionKey\":\"a\"},{\"Data\":\"AP8=\","
                                "\"PartitionKey\":\"b\"}]}");
    fh.fail = 1;
    expect_ok(l, "{\"op\":\"caught\"}",
              "[false,\"ResourceNotFoundException\","
              "\"Stream missing under account 000000000000 not found.\"]");
    doc = expect_err(l, "{\"op\":\"raise\"}", "ResourceNotFoundException");
    cJSON_Delete(doc);
    fh.fail = 0;
    doc = expect_err(l, "{\"op\":\"badarg\"}", "Error");
    assert_non_null(strstr(err_msg(doc), "field 'PartitionKey' is required"));
    cJSON_Delete(doc);
    assert_int_equal(fh.calls, 4);
    sbx_lua_free(l);
}

static void test_kinesis_without_host_raises(void **state)
{
    sbx_lua *l = mk("function handler()\n"
                    "  return kinesis.put_record{StreamName = 's', PartitionKey = 'p', Data = '"
                    "d'}\n"
                    "end\n");
    cJSON *doc;
    (void)state;
    doc = expect_err(l, "{}", "ServiceUnavailable");
    cJSON_Delete(doc);
    sbx_lua_free(l);
}

/* ---- environment audit ---------------------------------------------------------------------- */

/* os.getenv sees the function's configured variables only, never the host's environment. */
static void test_getenv_reads_only_the_function_environment(void **state)
{
    static const char *const env[] = {"MODE=test", "EMPTY=", "=bad", "noequals", NULL};
    sbx_lua_limits lim = {.env = env};
    sbx_lua *l = NULL;
    sbx_lua_error err;
    sbx_lua_result res;
    static const char code[] =
        "function handler()\n"
        "  return {os.getenv('MODE'), os.getenv('EMPTY'), os.getenv('PATH') == nil,\n"
        "          os.getenv('HOME') == nil, os.getenv('noequals') == nil}\n"
        "end\n";
    (void)state;
    setenv("SLUICE_TEST_SECRET", "leak", 1);
    assert_int_equal(sbx_lua_new(&l, code, sizeof code - 1, "main.lua", "handler", &lim, NULL,
                                 &err), 0);
    memset(&res, 0, sizeof res);
    assert_int_equal(sbx_lua_invoke(l, "{}", 2, NULL, 0, 0, &res), 0);
    assert_int_equal(res.status, SBX_LUA_OK);
    assert_string_equal(res.payload, "[\"test\",\"\",true,true,true]");
    sbx_lua_result_clear(&res);
    sbx_lua_free(l);
}

static void test_environment_is_exactly_the_allow_list(void **state)
{
    sbx_lua *l = mk(
        "local function keys(t)\n"
        "  local r = {}\n"
        "  for k in pairs(t) do r[#r + 1] = k end\n"
        "  table.sort(r)\n"
        "  return table.concat(r, ',')\n"
        "end\n"
        "local base = {'assert','error','ipairs','next','pairs','select','tonumber','tostring',\n"
        "  'type','rawequal','rawlen','rawget','rawset','getmetatable','setmetatable','pcall',\n"
        "  'xpcall','print','_VERSION','_G','string','table','math','utf8','coroutine','os',\n"
        "  'json','base64','log','kinesis'}\n"
        "local absent = {'load','loadstring','dofile','loadfile','require','package','module',\n"
        "  'collectgarbage','debug','io','warn','unpack','setfenv','getfenv','newproxy'}\n"
        "function handler()\n"
        "  for _, k in ipairs(base) do assert(_G[k] ~= nil, k) end\n"
        "  for _, k in ipairs(absent) do assert(_G[k] == nil, k) end\n"
        "  assert(_G == _ENV)\n"
        "  return { keys(_G), keys(os), keys(coroutine), keys(string), keys(math),\n"
        "           keys(json), keys(log), keys(kinesis), keys(base64) }\n"
        "end\n");
    (void)state;
    expect_ok(l, "{}",
              "[\"handler\",\"clock,date,difftime,getenv,time\","
              "\"create,isyieldable,resume,running,status,wrap,yield\","
              "\"byte,char,find,format,gmatch,gsub,len,lower,match,pack,packsize,rep,reverse,"
              "sub,unpack,upper\","
              /* Debian builds 5.4 with LUA_COMPAT_MATHLIB: cosh, pow, ... are present (harmless) */
              "\"abs,acos,asin,atan,atan2,ceil,cos,cosh,deg,exp,floor,fmod,frexp,huge,ldexp,log,"
              "log10,max,maxinteger,min,mininteger,modf,pi,pow,rad,random,sin,sinh,sqrt,tan,tanh,"
              "tointeger,type,ult\","
              "\"array,decode,encode,null,object\",\"debug,error,info,warn\","
              "\"put_record,put_records\",\"decode,encode\"]");
    sbx_lua_free(l);
}

/* ---- threads and stacks ---------------------------------------------------------------------- */

typedef struct thread_job {
    int rc;
    size_t stack;
    char payload[64];
} thread_job;

static void run_small_invocation(thread_job *j)
{
    sbx_lua *l = NULL;
    sbx_lua_error err;
    const char *code = "function handler(ev) return ev.x * 2 end";
    pthread_attr_t a;
    j->stack = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstacksize(&a, &j->stack);
        pthread_attr_destroy(&a);
    }
    j->rc = sbx_lua_new(&l, code, strlen(code), "main.lua", "handler", NULL, NULL, &err);
    if (j->rc == 0) {
        sbx_lua_result r;
        j->rc = sbx_lua_invoke(l, "{\"x\":21}", 8, NULL, 0, 0, &r);
        snprintf(j->payload, sizeof j->payload, "%s", r.payload ? r.payload : "");
        sbx_lua_result_clear(&r);
        sbx_lua_free(l);
    }
}

static void work_cb(uv_work_t *req) { run_small_invocation(req->data); }

static void after_cb(uv_work_t *req, int status)
{
    (void)req;
    (void)status;
}

static void test_runs_on_libuv_pool_thread(void **state)
{
    uv_loop_t loop;
    uv_work_t w;
    thread_job j = {.rc = -1};
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    w.data = &j;
    assert_int_equal(uv_queue_work(&loop, &w, work_cb, after_cb), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    /* libuv 1.44 pool threads get RLIMIT_STACK (8 MiB by default); >= 1.45 fixes 8 MiB */
    assert_true(j.stack >= SBX_LUA_MIN_STACK);
    assert_int_equal(j.rc, 0);
    assert_string_equal(j.payload, "42");
}

static void *thread_main(void *arg)
{
    run_small_invocation(arg);
    return NULL;
}

static void test_refuses_small_stack_thread(void **state)
{
    pthread_t t;
    pthread_attr_t a;
    thread_job j = {.rc = 1};
    (void)state;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    assert_int_equal(pthread_create(&t, &a, thread_main, &j), 0);
    pthread_join(t, NULL);
    pthread_attr_destroy(&a);
    assert_int_equal(j.rc, SL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_matches_reference),
        cmocka_unit_test(test_alloc_caps_growth_never_shrinks),
        cmocka_unit_test(test_trim_returns_memory_and_keeps_instance),
        cmocka_unit_test(test_json_roundtrips_null_arrays_objects),
        cmocka_unit_test(test_json_event_values_and_numbers),
        cmocka_unit_test(test_json_encode_rules),
        cmocka_unit_test(test_base64_encode_decode_strict),
        cmocka_unit_test(test_log_levels_print_and_escaping),
        cmocka_unit_test(test_log_is_capped_with_marker),
        cmocka_unit_test(test_context_fields_and_remaining_time),
        cmocka_unit_test(test_globals_persist_within_instance_only),
        cmocka_unit_test(test_instruction_budget_is_deterministic),
        cmocka_unit_test(test_error_shapes),
        cmocka_unit_test(test_init_errors),
        cmocka_unit_test(test_kinesis_put_record_and_records),
        cmocka_unit_test(test_kinesis_without_host_raises),
        cmocka_unit_test(test_environment_is_exactly_the_allow_list),
        cmocka_unit_test(test_getenv_reads_only_the_function_environment),
        cmocka_unit_test(test_runs_on_libuv_pool_thread),
        cmocka_unit_test(test_refuses_small_stack_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
