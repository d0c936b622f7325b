/* lua_budget.h — per-invocation CPU/time budget for sandboxed Lua (SANDBOX.md 1.5).
 *
 * A count hook runs every SBX_BUDGET_COUNT VM instructions and checks a monotonic deadline and
 * an optional instruction budget. The first trip marks the budget killed and re-arms the hook of
 * the running thread at count 1 ("sticky"), so a pcall loop cannot swallow it; C code that runs
 * long (the pattern matcher, json, base64) calls sbx_budget_check() itself.
 *
 * The budget is found through lua_getextraspace() of the main thread, which new coroutines copy
 * at creation, so sbx_budget_attach() must run before any user code. All functions here are for
 * the thread that runs the state.
 */
#ifndef SBX_LUA_BUDGET_H
#define SBX_LUA_BUDGET_H

#include <lua.h>
#include <stdint.h>

#define SBX_BUDGET_COUNT 1000

typedef struct sbx_budget {
    uint64_t deadline_ns;      /* sl_mono_ns() deadline; 0 = none */
    uint64_t max_ticks;        /* hook calls allowed (each ~SBX_BUDGET_COUNT instr.); 0 = none */
    uint64_t ticks;            /* hook calls so far in this window */
    int killed;                /* sticky: set at the first trip, cleared by sbx_budget_arm() */
    char msg[96];              /* the timeout error text raised in the state */
} sbx_budget;

/* Stores b in the extra space of L (the main thread) and installs the count hook. */
void sbx_budget_attach(lua_State *L, sbx_budget *b);

/* Starts a new budget window: clears killed, sets deadline/instruction budget and the timeout
 * message ("Task timed out after %.2f seconds" of timeout_ms), and re-arms L's hook at the normal
 * count (undoing a sticky escalation). */
void sbx_budget_arm(lua_State *L, sbx_budget *b, uint64_t deadline_ns, uint64_t max_instructions,
                    uint32_t timeout_ms, const char *what);

/* For long-running C functions: raises the timeout error in L when the budget is expired or
 * already killed (and escalates the hook); returns normally otherwise. */
void sbx_budget_check(lua_State *L);

/* The budget attached to L (any thread of the state), or NULL. */
sbx_budget *sbx_budget_of(lua_State *L);

/* Non-zero when the budget attached to L has been killed. */
int sbx_budget_killed(lua_State *L);

#endif
