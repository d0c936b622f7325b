/* crc32c.c — CRC-32C with the SSE4.2 crc32 instruction, slicing-by-8 fallback.
 *
 * Written by hand: no Debian library provides CRC32C (zlib/libcrypto only have IEEE CRC-32).
 * The hardware path is chosen at run time (__builtin_cpu_supports), so one binary runs on any
 * x86-64 and on other architectures the table code is used.
 */
#include "broker/crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u /* reflected Castagnoli polynomial */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_build(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][i] = c;
    }
    /* table[k][i]: CRC of byte i followed by k zero bytes — lets 8 bytes be folded at once. */
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = table[0][i];
        for (int k = 1; k < 8; k++) {
            c = table[0][c & 0xff] ^ (c >> 8);
            table[k][i] = c;
        }
    }
}

static uint64_t load_le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

/* Works on the raw (inverted) register value. */
static uint32_t sw_update(uint32_t c, const uint8_t *p, size_t n)
{
    pthread_once(&table_once, table_build);
    while (n && ((uintptr_t)p & 7)) {
        c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
        n--;
    }
    while (n >= 8) {
        uint64_t w = load_le64(p) ^ c;
        c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
            table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^
            table[2][(w >> 40) & 0xff] ^ table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

uint32_t brk_crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    return ~sw_update(~crc, p, n);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_HW_PATH 1

__attribute__((target("sse4.2"))) static uint32_t hw_update(uint32_t c, const uint8_t *p,
                                                             size_t n)
{
    while (n && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi(c, *p++);
        n--;
    }
    uint64_t c64 = c;
    /* Unrolled by 4: the instruction has 3-cycle latency, the loop overhead matters little. */
    while (n >= 32) {
        uint64_t w0, w1, w2, w3;
        memcpy(&w0, p, 8);
        memcpy(&w1, p + 8, 8);
        memcpy(&w2, p + 16, 8);
        memcpy(&w3, p + 24, 8);
        c64 = __builtin_ia32_crc32di(c64, w0);
        c64 = __builtin_ia32_crc32di(c64, w1);
        c64 = __builtin_ia32_crc32di(c64, w2);
        c64 = __builtin_ia32_crc32di(c64, w3);
        p += 32;
        n -= 32;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c64 = __builtin_ia32_crc32di(c64, w);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--) c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}

int brk_crc32c_hw(void)
{
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}
#else
int brk_crc32c_hw(void)
{
    return 0;
}
#endif

uint32_t brk_crc32c(uint32_t crc, const void *p, size_t n)
{
#ifdef HAVE_HW_PATH
    if (__builtin_cpu_supports("sse4.2")) return ~hw_update(~crc, p, n);
#endif
    return ~sw_update(~crc, p, n);
}
