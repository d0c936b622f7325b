/* lua_alloc.h — capped, counting lua_Alloc for sandboxed Lua states (SANDBOX.md 1.4).
 *
 * One sbx_alloc per lua_State, embedded in the owner (the caller provides storage). Growth past
 * the limit is refused (Lua then runs an emergency collection and raises "not enough memory");
 * frees and shrinks are never refused, as the lua_Alloc contract requires.
 *
 * Small blocks (<= SBX_ALLOC_SMALL bytes) are rounded up to 16-byte classes and recycled
 * through per-instance free lists: a warm instance allocates and frees the same few thousand
 * small objects (tables, strings of an event) on every invocation, and skipping the general
 * malloc for them is worth ~15% of an invocation. The lists hold at most SBX_ALLOC_POOL_BYTES;
 * those bytes are host memory outside `used` (the cap is about what the script holds).
 * Not thread-safe: a state and its allocator are used by one thread at a time.
 */
#ifndef SBX_LUA_ALLOC_H
#define SBX_LUA_ALLOC_H

#include <stddef.h>

#define SBX_ALLOC_SMALL 256
#define SBX_ALLOC_CLASSES (SBX_ALLOC_SMALL / 16)
#define SBX_ALLOC_POOL_BYTES (128u * 1024u)

typedef struct sbx_alloc {
    size_t used;  /* bytes currently held by the state (as Lua sees them) */
    size_t limit; /* cap on `used` */
    size_t peak;  /* highest `used` since the last sbx_alloc_reset_peak() */
    int hit;      /* set when a growth request was refused; cleared by the owner */
    size_t pooled;                   /* bytes on the free lists */
    void *pool[SBX_ALLOC_CLASSES];   /* free lists by class (next pointer in the block) */
} sbx_alloc;

/* Initialises a with a cap of limit bytes. */
void sbx_alloc_init(sbx_alloc *a, size_t limit);

/* The lua_Alloc function; ud must point to an sbx_alloc. */
void *sbx_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize);

/* Starts a new peak window (peak = used) and clears the hit flag. */
void sbx_alloc_reset_peak(sbx_alloc *a);

/* Frees the blocks kept on the free lists; call after lua_close(). */
void sbx_alloc_release(sbx_alloc *a);

#endif
