/* lua_budget.c — count hook with sticky escalation and a deadline check for C code. */
#include "sandbox/lua_budget.h"

#include "broker/sl_common.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

sbx_budget *sbx_budget_of(lua_State *L)
{
    sbx_budget *b;
    memcpy(&b, lua_getextraspace(L), sizeof b);
    return b;
}

int sbx_budget_killed(lua_State *L)
{
    sbx_budget *b = sbx_budget_of(L);
    return b != NULL && b->killed;
}

static int expired(sbx_budget *b)
{
    if (b->killed) return 1;
    if (b->max_ticks != 0 && b->ticks > b->max_ticks) return 1;
    return b->deadline_ns != 0 && sl_mono_ns() >= b->deadline_ns;
}

static void budget_hook(lua_State *L, lua_Debug *ar);

/* Marks the budget killed, escalates L's hook to every instruction and raises. */
static void kill_now(lua_State *L, sbx_budget *b)
{
    b->killed = 1;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "%s", b->msg);
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    sbx_budget *b = sbx_budget_of(L);
    (void)ar;
    if (b == NULL) return;
    b->ticks++;
    if (expired(b)) kill_now(L, b);
}

void sbx_budget_attach(lua_State *L, sbx_budget *b)
{
    memcpy(lua_getextraspace(L), &b, sizeof b);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, SBX_BUDGET_COUNT);
}

void sbx_budget_arm(lua_State *L, sbx_budget *b, uint64_t deadline_ns, uint64_t max_instructions,
                    uint32_t timeout_ms, const char *what)
{
    b->deadline_ns = deadline_ns;
    b->max_ticks = max_instructions ? (max_instructions + SBX_BUDGET_COUNT - 1) / SBX_BUDGET_COUNT
                                    : 0;
    b->ticks = 0;
    b->killed = 0;
    snprintf(b->msg, sizeof b->msg, "%s timed out after %.2f seconds", what,
             (double)timeout_ms / 1000.0);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, SBX_BUDGET_COUNT);
}

void sbx_budget_check(lua_State *L)
{
    sbx_budget *b = sbx_budget_of(L);
    if (b != NULL && expired(b)) kill_now(L, b);
}
