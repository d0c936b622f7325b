/* lua_alloc.c — capped, counting lua_Alloc with small-block free lists (SANDBOX.md 1.4). */
#include "sandbox/lua_alloc.h"

#include <stdlib.h>
#include <string.h>

void sbx_alloc_init(sbx_alloc *a, size_t limit)
{
    memset(a, 0, sizeof *a);
    a->limit = limit;
}

void sbx_alloc_reset_peak(sbx_alloc *a)
{
    a->peak = a->used;
    a->hit = 0;
}

void sbx_alloc_release(sbx_alloc *a)
{
    int c;
    for (c = 0; c < SBX_ALLOC_CLASSES; c++) {
        void *p = a->pool[c];
        while (p != NULL) {
            void *next;
            memcpy(&next, p, sizeof next);
            free(p);
            p = next;
        }
        a->pool[c] = NULL;
    }
    a->pooled = 0;
}

/* Class index of a small size (1..SBX_ALLOC_SMALL), blocks of class c hold (c + 1) * 16. */
static int size_class(size_t n) { return (int)((n - 1) / 16); }

static void *small_get(sbx_alloc *a, int c)
{
    void *p = a->pool[c];
    if (p != NULL) {
        memcpy(&a->pool[c], p, sizeof(void *));
        a->pooled -= (size_t)(c + 1) * 16;
        return p;
    }
    return malloc((size_t)(c + 1) * 16);
}

static void small_put(sbx_alloc *a, void *p, int c)
{
    size_t sz = (size_t)(c + 1) * 16;
    if (a->pooled + sz > SBX_ALLOC_POOL_BYTES) {
        free(p);
        return;
    }
    memcpy(p, &a->pool[c], sizeof(void *));
    a->pool[c] = p;
    a->pooled += sz;
}

/* Frees a block Lua believes has size osize. */
static void release(sbx_alloc *a, void *ptr, size_t osize)
{
    if (osize <= SBX_ALLOC_SMALL)
        small_put(a, ptr, size_class(osize));
    else
        free(ptr);
}

void *sbx_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize)
{
    sbx_alloc *a = ud;
    void *p;

    if (ptr == NULL) osize = 0; /* osize is a type tag for new objects */
    if (nsize == 0) {
        if (ptr != NULL) {
            release(a, ptr, osize);
            a->used -= osize;
        }
        return NULL;
    }
    /* Refuse growth past the cap; written so that it cannot overflow. Shrinks always pass. */
    if (nsize > osize && (a->used > a->limit || nsize - osize > a->limit - a->used)) {
        a->hit = 1;
        return NULL;
    }
    if (ptr != NULL && osize <= SBX_ALLOC_SMALL && nsize <= SBX_ALLOC_SMALL &&
        size_class(osize) == size_class(nsize)) {
        p = ptr; /* same class: the block already has room */
    } else if (ptr == NULL || osize <= SBX_ALLOC_SMALL || nsize <= SBX_ALLOC_SMALL) {
        /* moving between classes or between small and large: new block, copy, release */
        p = nsize <= SBX_ALLOC_SMALL ? small_get(a, size_class(nsize)) : malloc(nsize);
        if (p == NULL) {
            /* A shrink may not fail (lua_Alloc contract): keep the old, larger block and
             * account it at the size Lua now believes it has. Only possible for large->small. */
            if (ptr != NULL && nsize <= osize) {
                a->used = a->used - osize + nsize;
                return ptr;
            }
            return NULL;
        }
        if (ptr != NULL) {
            memcpy(p, ptr, osize < nsize ? osize : nsize);
            release(a, ptr, osize);
        }
    } else {
        p = realloc(ptr, nsize); /* large to large */
        if (p == NULL) {
            if (nsize <= osize) {
                a->used = a->used - osize + nsize;
                return ptr;
            }
            return NULL;
        }
    }
    a->used = a->used - osize + nsize;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}
