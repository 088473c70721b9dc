/* Bit tricks: __builtin_clz (NSAU), leading redundant sign bits (NSA),
 * ctz, popcount and parity (libgcc), byte swaps, bit reversal, ABS, min/max
 * and branch-free selects, with hand-written references for each. */
#include "prog.h"

static volatile const uint32_t values[] = {
    1u, 2u, 3u, 0x80u, 0xffu, 0x100u, 0x12345678u, 0x7fffffffu, 0x80000000u, 0xdeadbeefu,
    0xfffffff0u, 0xffffffffu,
};

static uint32_t clz_reference(uint32_t x) {
    uint32_t n = 0;
    for (uint32_t bit = 0x80000000u; bit != 0 && (x & bit) == 0; bit >>= 1) {
        n++;
    }
    return n;
}

static uint32_t popcount_reference(uint32_t x) {
    uint32_t n = 0;
    while (x != 0) {
        x &= x - 1;
        n++;
    }
    return n;
}

static uint32_t reverse_bits(uint32_t x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
    return (x >> 16) | (x << 16);
}

static uint32_t bswap_reference(uint32_t x) {
    return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}

void run(struct out *o) {
    for (uint32_t i = 0; i < ARRAY_LEN(values); i++) {
        uint32_t x = values[i];
        int32_t s = (int32_t)x;
        out_hex32(o, x);
        out_str(o, " clz ");
        out_u32_dec(o, (uint32_t)__builtin_clz(x));
        out_char(o, '/');
        out_u32_dec(o, clz_reference(x));
        out_str(o, " clrsb ");
        out_u32_dec(o, (uint32_t)__builtin_clrsb(s));
        out_str(o, " ctz ");
        out_u32_dec(o, (uint32_t)__builtin_ctz(x));
        out_str(o, " ffs ");
        out_u32_dec(o, (uint32_t)__builtin_ffs(s));
        out_str(o, " pop ");
        out_u32_dec(o, (uint32_t)__builtin_popcount(x));
        out_char(o, '/');
        out_u32_dec(o, popcount_reference(x));
        out_str(o, " parity ");
        out_u32_dec(o, (uint32_t)__builtin_parity(x));
        out_str(o, " bswap ");
        out_hex32(o, __builtin_bswap32(x));
        out_char(o, '/');
        out_hex32(o, bswap_reference(x));
        out_str(o, " rev ");
        out_hex32(o, reverse_bits(x));
        out_char(o, '\n');

        uint64_t wide = (uint64_t)x << 32 | (x ^ 0x0f0f0f0fu);
        out_str(o, "  64: clz ");
        out_u32_dec(o, (uint32_t)__builtin_clzll(wide));
        out_str(o, " ctz ");
        out_u32_dec(o, (uint32_t)__builtin_ctzll(wide));
        out_str(o, " pop ");
        out_u32_dec(o, (uint32_t)__builtin_popcountll(wide));
        out_str(o, " bswap ");
        out_hex64(o, __builtin_bswap64(wide));
        out_char(o, '\n');

        uint32_t y = values[(i + 5) % ARRAY_LEN(values)];
        int32_t t = (int32_t)y;
        uint32_t lowest = x & (0u - x);
        uint32_t umin = x < y ? x : y;
        int32_t smax = s > t ? s : t;
        int32_t abs_value = s == INT32_MIN ? s : (s < 0 ? -s : s);
        uint32_t select = (x & 1) ? x ^ y : x + y;
        out_str(o, "  lowest ");
        out_hex32(o, lowest);
        out_str(o, " umin ");
        out_hex32(o, umin);
        out_str(o, " smax ");
        out_i32_dec(o, smax);
        out_str(o, " abs ");
        out_i32_dec(o, abs_value);
        out_str(o, " select ");
        out_hex32(o, select);
        out_str(o, " pow2 ");
        out_u32_dec(o, (x & (x - 1)) == 0);
        out_char(o, '\n');
    }
}
