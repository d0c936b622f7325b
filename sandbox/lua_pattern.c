/* lua_pattern.c — our own implementation of Lua 5.4 patterns, interruptible by the budget.
 *
 * Why this file exists (the README says the same): sluice keeps the system Lua 5.4.4 (Debian's
 * liblua5.4) and, instead of building a newer Lua, (a) leaves coroutine.close out of the sandbox
 * and (b) replaces string.find/match/gmatch/gsub — in the real string table, so method calls are
 * covered — with this matcher. The stock matcher is a C function that backtracks without ever
 * returning to the VM, so a count hook never fires inside it (SANDBOX.md E2: 13 s for one find).
 * This one counts matching steps and calls sbx_budget_check() every 1024 of them, which raises the
 * invocation's timeout error once the deadline has passed. No library offers Lua patterns with an
 * interruption point, hence hand-written.
 *
 * Semantics follow the Lua 5.4 manual (section 6.4.1): single-character classes (. %a %c %d %g
 * %l %p %s %u %w %x, upper case = complement, %<non-alnum> = literal), sets [...] with ranges,
 * %-classes and ^ complement, the quantifiers * + - ?, anchors ^ and $, captures including
 * position captures (), back references %1-%9, %bxy and %f[set]. Error messages are Lua's.
 * Raising from inside the matcher is safe: it holds no C resources (gsub's buffer lives on the
 * Lua stack).
 */
#include "sandbox/lua_pattern.h"

#include "sandbox/lua_budget.h"

#include <ctype.h>
#include <lauxlib.h>
#include <string.h>

#define PAT_MAXCAPTURES 32  /* LUA_MAXCAPTURES */
#define PAT_MAXDEPTH 200    /* recursion limit -> "pattern too complex" (as Lua's MAXCCALLS) */
#define PAT_CHECK_MASK 1023 /* budget check every 1024 steps */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define ESC '%'

typedef struct pat_state {
    lua_State *L;
    const char *src_init; /* subject */
    const char *src_end;
    const char *p_end; /* end of pattern */
    int depth_left;
    int level; /* number of captures (finished or not) */
    unsigned steps;
    struct {
        const char *init;
        ptrdiff_t len;
    } cap[PAT_MAXCAPTURES];
} pat_state;

static const char *do_match(pat_state *m, const char *s, const char *p);

static void step(pat_state *m)
{
    if ((++m->steps & PAT_CHECK_MASK) == 0) sbx_budget_check(m->L);
}

static void prep(pat_state *m, lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
    m->L = L;
    m->src_init = s;
    m->src_end = s + ls;
    m->p_end = p + lp;
    m->steps = 0;
}

static void reset(pat_state *m)
{
    m->level = 0;
    m->depth_left = PAT_MAXDEPTH;
}

/* Lua 5.4's relative string position for init arguments (posrelatI). */
static size_t rel_pos(lua_Integer pos, size_t len)
{
    if (pos > 0) return (size_t)pos;
    if (pos == 0) return 1;
    if (pos < -(lua_Integer)len) return 1;
    return len + (size_t)pos + 1;
}

/* One past the end of the single-character class that starts at p. */
static const char *class_end(pat_state *m, const char *p)
{
    char c = *p++;
    if (c == ESC) {
        if (p == m->p_end) luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (*p == '^') p++;
        /* The first character after [ or [^ is part of the set even if it is ']'. Lua strings
         * are NUL-terminated, so reading *p at p_end is safe. */
        do {
            if (p == m->p_end) luaL_error(m->L, "malformed pattern (missing ']')");
            c = *p++;
            if (c == ESC && p < m->p_end) p++;
        } while (*p != ']');
        return p + 1;
    }
    return p;
}

/* Does character c belong to class %cl? */
static int class_match(int c, int cl)
{
    int r;
    switch (tolower(cl)) {
    case 'a': r = isalpha(c); break;
    case 'c': r = iscntrl(c); break;
    case 'd': r = isdigit(c); break;
    case 'g': r = isgraph(c); break;
    case 'l': r = islower(c); break;
    case 'p': r = ispunct(c); break;
    case 's': r = isspace(c); break;
    case 'u': r = isupper(c); break;
    case 'w': r = isalnum(c); break;
    case 'x': r = isxdigit(c); break;
    case 'z': r = (c == 0); break; /* deprecated in 5.2+, still accepted by 5.4 */
    default: return cl == c; /* %. %% %( ... stand for themselves */
    }
    r = r != 0;
    return isupper(cl) ? !r : r;
}

/* Does c belong to the set that starts with '[' at p and ends with ']' at ec? */
static int set_match(int c, const char *p, const char *ec)
{
    int yes = 1;
    if (p[1] == '^') {
        yes = 0;
        p++;
    }
    while (++p < ec) {
        if (*p == ESC) {
            p++;
            if (class_match(c, (unsigned char)*p)) return yes;
        } else if (p[1] == '-' && p + 2 < ec) {
            p += 2;
            if ((unsigned char)p[-2] <= c && c <= (unsigned char)*p) return yes;
        } else if ((unsigned char)*p == c) {
            return yes;
        }
    }
    return !yes;
}

/* Does the subject character at s match the class [p, ep)? */
static int single(const pat_state *m, const char *s, const char *p, const char *ep)
{
    int c;
    if (s >= m->src_end) return 0;
    c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case ESC: return class_match(c, (unsigned char)p[1]);
    case '[': return set_match(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *balance(pat_state *m, const char *s, const char *p)
{
    int open;
    int close;
    int depth = 1;
    if (p >= m->p_end - 1) luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->src_end || *s != *p) return NULL;
    open = *p;
    close = p[1];
    while (++s < m->src_end) {
        step(m);
        if (*s == close) {
            if (--depth == 0) return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

/* Greedy: take as many as possible, then give back one at a time. */
static const char *expand_max(pat_state *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t n = 0;
    while (single(m, s + n, p, ep)) {
        n++;
        step(m);
    }
    for (; n >= 0; n--) {
        const char *r = do_match(m, s + n, ep + 1);
        if (r != NULL) return r;
        step(m);
    }
    return NULL;
}

/* Lazy: try the rest first, take one more only when it fails. */
static const char *expand_min(pat_state *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = do_match(m, s, ep + 1);
        if (r != NULL) return r;
        if (!single(m, s, p, ep)) return NULL;
        s++;
        step(m);
    }
}

static const char *capture_open(pat_state *m, const char *s, const char *p, ptrdiff_t what)
{
    const char *r;
    if (m->level >= PAT_MAXCAPTURES) luaL_error(m->L, "too many captures");
    m->cap[m->level].init = s;
    m->cap[m->level].len = what;
    m->level++;
    r = do_match(m, s, p);
    if (r == NULL) m->level--;
    return r;
}

static const char *capture_close(pat_state *m, const char *s, const char *p)
{
    int l;
    const char *r;
    for (l = m->level - 1; l >= 0; l--)
        if (m->cap[l].len == CAP_UNFINISHED) break;
    if (l < 0) luaL_error(m->L, "invalid pattern capture");
    m->cap[l].len = s - m->cap[l].init;
    r = do_match(m, s, p);
    if (r == NULL) m->cap[l].len = CAP_UNFINISHED;
    return r;
}

static int capture_index(pat_state *m, int c)
{
    int l = c - '1';
    if (l < 0 || l >= m->level || m->cap[l].len == CAP_UNFINISHED)
        return luaL_error(m->L, "invalid capture index %%%d", l + 1);
    return l;
}

static const char *back_reference(pat_state *m, const char *s, int c)
{
    int l = capture_index(m, c);
    size_t len = (size_t)m->cap[l].len;
    if ((size_t)(m->src_end - s) >= len && memcmp(m->cap[l].init, s, len) == 0) return s + len;
    return NULL;
}

/* Matches pattern p against the subject at s; returns the end of the match or NULL. Recursion
 * happens only for captures and for the quantifiers that need backtracking; simple sequences
 * advance in the loop. */
static const char *do_match(pat_state *m, const char *s, const char *p)
{
    if (m->depth_left-- == 0) luaL_error(m->L, "pattern too complex");
    while (s != NULL && p != m->p_end) {
        const char *ep;
        step(m);
        if (*p == '(') {
            if (p[1] == ')')
                s = capture_open(m, s, p + 2, CAP_POSITION);
            else
                s = capture_open(m, s, p + 1, CAP_UNFINISHED);
            break;
        }
        if (*p == ')') {
            s = capture_close(m, s, p + 1);
            break;
        }
        if (*p == '$' && p + 1 == m->p_end) {
            if (s != m->src_end) s = NULL;
            break;
        }
        if (*p == ESC && p[1] == 'b') {
            s = balance(m, s, p + 2);
            if (s != NULL) p += 4;
            continue;
        }
        if (*p == ESC && p[1] == 'f') {
            int prev;
            p += 2;
            if (*p != '[') luaL_error(m->L, "missing '[' after '%%f' in pattern");
            ep = class_end(m, p);
            prev = (s == m->src_init) ? 0 : (unsigned char)s[-1];
            /* s may equal src_end: the subject's terminating NUL stands for "end". */
            if (!set_match(prev, p, ep - 1) && set_match((unsigned char)*s, p, ep - 1)) {
                p = ep;
                continue;
            }
            s = NULL;
            break;
        }
        if (*p == ESC && isdigit((unsigned char)p[1])) {
            s = back_reference(m, s, (unsigned char)p[1]);
            if (s != NULL) p += 2;
            continue;
        }
        /* A single-character class, possibly followed by a quantifier. */
        ep = class_end(m, p);
        if (!single(m, s, p, ep)) {
            if (*ep == '*' || *ep == '?' || *ep == '-') { /* zero repetitions are fine */
                p = ep + 1;
                continue;
            }
            s = NULL;
            break;
        }
        if (*ep == '?') {
            const char *r = do_match(m, s + 1, ep + 1);
            if (r != NULL) {
                s = r;
                break;
            }
            p = ep + 1;
            continue;
        }
        if (*ep == '+') {
            s = expand_max(m, s + 1, p, ep);
            break;
        }
        if (*ep == '*') {
            s = expand_max(m, s, p, ep);
            break;
        }
        if (*ep == '-') {
            s = expand_min(m, s, p, ep);
            break;
        }
        s++;
        p = ep;
    }
    m->depth_left++;
    return s;
}

/* Pushes capture i (or the whole match [s, e) when there are no captures and i == 0). Returns
 * the capture length, CAP_POSITION after pushing a position, and sets *cap. Pushes nothing for
 * string captures when push is 0. */
static ptrdiff_t get_capture(pat_state *m, int i, const char *s, const char *e, const char **cap)
{
    ptrdiff_t len;
    if (i >= m->level) {
        if (i != 0) luaL_error(m->L, "invalid capture index %%%d", i + 1);
        *cap = s;
        return e - s;
    }
    len = m->cap[i].len;
    *cap = m->cap[i].init;
    if (len == CAP_UNFINISHED) luaL_error(m->L, "unfinished capture");
    if (len == CAP_POSITION) lua_pushinteger(m->L, (m->cap[i].init - m->src_init) + 1);
    return len;
}

static void push_capture(pat_state *m, int i, const char *s, const char *e)
{
    const char *cap;
    ptrdiff_t len = get_capture(m, i, s, e, &cap);
    if (len != CAP_POSITION) lua_pushlstring(m->L, cap, (size_t)len);
}

/* Pushes all captures; with none, the whole match (if s != NULL). Returns the count. */
static int push_captures(pat_state *m, const char *s, const char *e)
{
    int i;
    int n = (m->level == 0 && s != NULL) ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (i = 0; i < n; i++) push_capture(m, i, s, e);
    return n;
}

static int has_specials(const char *p, size_t lp)
{
    size_t i;
    for (i = 0; i < lp; i++)
        if (p[i] != '\0' && strchr("^$*+?.([%-", p[i]) != NULL) return 1;
    return 0;
}

static int find_aux(lua_State *L, int find)
{
    size_t ls;
    size_t lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = rel_pos(luaL_optinteger(L, 3, 1), ls) - 1;

    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        /* plain search; memmem is linear */
        const char *hit = memmem(s + init, ls - init, p, lp);
        if (hit != NULL) {
            lua_pushinteger(L, (hit - s) + 1);
            lua_pushinteger(L, (lua_Integer)((size_t)(hit - s) + lp));
            return 2;
        }
    } else {
        pat_state m;
        const char *s1 = s + init;
        int anchor = (*p == '^');
        if (anchor) {
            p++;
            lp--;
        }
        prep(&m, L, s, ls, p, lp);
        do {
            const char *e;
            reset(&m);
            e = do_match(&m, s1, p);
            if (e != NULL) {
                if (find) {
                    lua_pushinteger(L, (s1 - s) + 1);
                    lua_pushinteger(L, e - s);
                    return push_captures(&m, NULL, NULL) + 2;
                }
                return push_captures(&m, s1, e);
            }
            step(&m);
        } while (s1++ < m.src_end && !anchor);
    }
    luaL_pushfail(L);
    return 1;
}

int sbx_pattern_find(lua_State *L) { return find_aux(L, 1); }

int sbx_pattern_match(lua_State *L) { return find_aux(L, 0); }

typedef struct gmatch_state {
    const char *src; /* next start position */
    const char *p;
    const char *lastmatch; /* end of the last match, so an empty match is not repeated there */
    pat_state m;
} gmatch_state;

static int gmatch_next(lua_State *L)
{
    gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
    const char *src;
    g->m.L = L; /* the iterator may run in another coroutine than the one that created it */
    for (src = g->src; src <= g->m.src_end; src++) {
        const char *e;
        reset(&g->m);
        e = do_match(&g->m, src, g->p);
        if (e != NULL && e != g->lastmatch) {
            g->src = g->lastmatch = e;
            return push_captures(&g->m, src, e);
        }
        step(&g->m);
    }
    g->src = g->m.src_end + 1; /* exhausted: stay exhausted */
    return 0;
}

int sbx_pattern_gmatch(lua_State *L)
{
    size_t ls;
    size_t lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = rel_pos(luaL_optinteger(L, 3, 1), ls) - 1;
    gmatch_state *g;

    lua_settop(L, 2); /* the closure keeps both strings alive */
    g = lua_newuserdatauv(L, sizeof *g, 0);
    if (init > ls) init = ls + 1; /* start after the end: no match */
    prep(&g->m, L, s, ls, p, lp);
    g->src = s + init;
    g->p = p;
    g->lastmatch = NULL;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* Appends the replacement string (argument 3) with %0-%9 and %% expanded. */
static void add_template(pat_state *m, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = m->L;
    size_t l;
    const char *t = lua_tolstring(L, 3, &l);
    const char *pct;
    while ((pct = memchr(t, ESC, l)) != NULL) {
        const char *d = pct + 1; /* the template is NUL-terminated, so *d is readable */
        luaL_addlstring(b, t, (size_t)(pct - t));
        if (*d == ESC) {
            luaL_addchar(b, ESC);
        } else if (*d == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit((unsigned char)*d)) {
            const char *cap;
            ptrdiff_t len = get_capture(m, *d - '1', s, e, &cap);
            if (len == CAP_POSITION)
                luaL_addvalue(b);
            else
                luaL_addlstring(b, cap, (size_t)len);
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", ESC);
        }
        l -= (size_t)(d + 1 - t);
        t = d + 1;
    }
    luaL_addlstring(b, t, l);
}

/* Appends the replacement for the match [s, e); returns 1 when it changed the text. */
static int add_replacement(pat_state *m, luaL_Buffer *b, const char *s, const char *e, int tr)
{
    lua_State *L = m->L;
    if (tr == LUA_TFUNCTION) {
        int n;
        lua_pushvalue(L, 3);
        n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else if (tr == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_template(m, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

int sbx_pattern_gsub(lua_State *L)
{
    size_t srcl;
    size_t lp;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *lastmatch = NULL;
    int tr = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    int anchor = (*p == '^');
    lua_Integer n = 0;
    int changed = 0;
    pat_state m;
    luaL_Buffer b;

    luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION ||
                            tr == LUA_TTABLE,
                     3, "string/function/table");
    luaL_buffinit(L, &b);
    if (anchor) {
        p++;
        lp--;
    }
    prep(&m, L, src, srcl, p, lp);
    while (n < max_n) {
        const char *e;
        reset(&m);
        step(&m);
        e = do_match(&m, src, p);
        if (e != NULL && e != lastmatch) {
            n++;
            changed = add_replacement(&m, &b, src, e, tr) | changed;
            src = lastmatch = e;
        } else if (src < m.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor) break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(m.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void sbx_pattern_install(lua_State *L, int idx)
{
    static const luaL_Reg fns[] = {
        {"find", sbx_pattern_find},
        {"match", sbx_pattern_match},
        {"gmatch", sbx_pattern_gmatch},
        {"gsub", sbx_pattern_gsub},
        {NULL, NULL},
    };
    const luaL_Reg *f;
    idx = lua_absindex(L, idx);
    for (f = fns; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, idx, f->name);
    }
}
