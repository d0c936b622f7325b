/* hashkey.h — 128-bit hash keys: decimal parse/format, MD5 routing, even range layouts.
 *
 * A Kinesis hash key is an unsigned 128-bit integer (SPEC 2.1/2.2) that crosses the API as a
 * decimal string of at most 39 digits. Inside the broker it is an `unsigned __int128` (a GCC/Clang
 * extension available on every 64-bit Debian target we build for).
 * All functions are pure and thread-safe.
 */
#ifndef BRK_HASHKEY_H
#define BRK_HASHKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef unsigned __int128 brk_u128;

#define BRK_U128_MAX (~(brk_u128)0)

/* Parses a decimal hash key. 0 on success; SL_EVALIDATION when the text does not match the model
 * pattern `0|([1-9]\d{0,38})`; SL_ETOOBIG when it matches but is greater than 2^128-1. */
int brk_hashkey_parse(const char *s, brk_u128 *out);
/* Same on a (pointer, length) pair. */
int brk_hashkey_parse_n(const char *s, size_t n, brk_u128 *out);

/* Writes the decimal form (no leading zeros) into buf (>= 40 bytes). Returns the length. */
size_t brk_hashkey_format(brk_u128 v, char *buf);

/* MD5 of the bytes, digest read as a big-endian 128-bit integer (SPEC 2.2). Thread-safe; keeps a
 * per-thread digest context so the hot path does not allocate. */
brk_u128 brk_hashkey_md5(const void *p, size_t n);

/* Range of shard i (0-based) when [0, 2^128-1] is cut into n shards (SPEC 2.1):
 * h = floor(2^128 / n); start = i*h; end = (i+1)*h - 1, the last shard ends at 2^128-1.
 * Requires n >= 1 and i < n. */
void brk_hashkey_range(uint32_t n, uint32_t i, brk_u128 *start, brk_u128 *end);

#endif
