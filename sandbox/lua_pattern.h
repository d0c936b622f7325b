/* lua_pattern.h — Lua 5.4 patterns (string.find/match/gmatch/gsub) with budget checks.
 *
 * sluice links the system Lua 5.4.4 and replaces its pattern functions with this matcher, which
 * calls sbx_budget_check() every 1024 matching steps, so catastrophic backtracking is cut off by
 * the invocation deadline (the stock matcher cannot be interrupted: SANDBOX.md 1.5, E2).
 */
#ifndef SBX_LUA_PATTERN_H
#define SBX_LUA_PATTERN_H

#include <lua.h>

/* Replaces find, match, gmatch and gsub in the table at index idx (the real string table, so
 * method calls like ("x"):match(p) use them too). Raises on memory errors; call under pcall. */
void sbx_pattern_install(lua_State *L, int idx);

/* The four functions, exposed for tests and for the state factory. */
int sbx_pattern_find(lua_State *L);
int sbx_pattern_match(lua_State *L);
int sbx_pattern_gmatch(lua_State *L);
int sbx_pattern_gsub(lua_State *L);

#endif
