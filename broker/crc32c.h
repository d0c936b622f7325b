/* crc32c.h — CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78).
 *
 * Used by the segment framing (segment.c) and the sparse index files. Hand-written because no
 * Debian library provides CRC32C (zlib and libcrypto only do the IEEE CRC-32).
 *
 * Threads: every function is thread-safe (the tables are built once under pthread_once).
 */
#ifndef BRK_CRC32C_H
#define BRK_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends a finished CRC-32C value `crc` (0 to start) with n bytes at p and returns the new
 * finished value, zlib style: brk_crc32c(brk_crc32c(0, a, na), b, nb) == crc of a||b.
 * Standard check value: brk_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t brk_crc32c(uint32_t crc, const void *p, size_t n);

/* Same as brk_crc32c but always uses the portable slicing-by-8 code (tests compare the two). */
uint32_t brk_crc32c_sw(uint32_t crc, const void *p, size_t n);

/* 1 when brk_crc32c uses the SSE4.2 crc32 instruction on this CPU, else 0. */
int brk_crc32c_hw(void);

#endif
