/* Shifts by variable amounts (SSL/SSR/SSA8 + SLL/SRL/SRA/SRC), by constants
 * (SLLI/SRLI/SRAI/EXTUI), rotates, 64-bit shifts (inline funnel shifts or
 * libgcc's __ashldi3/__lshrdi3/__ashrdi3), and shifts of 8- and 16-bit
 * values after promotion. */
#include "prog.h"

static volatile const uint32_t values32[] = {0x80000001u, 0x12345678u, 0xfedcba98u, 0x7fffffffu};
static volatile const uint64_t values64[] = {0x8000000000000001u, 0x0123456789abcdefu,
                                             0xfedcba9876543210u};
static volatile const uint32_t amount_limit = 32;

static uint32_t rotl32(uint32_t x, uint32_t n) { return (x << (n & 31)) | (x >> ((32 - n) & 31)); }

static uint32_t rotr32(uint32_t x, uint32_t n) { return (x >> (n & 31)) | (x << ((32 - n) & 31)); }

static void shifts32(struct out *o, uint32_t x) {
    for (uint32_t n = 0; n < amount_limit; n++) {
        out_str(o, "s32 ");
        out_hex32(o, x);
        out_char(o, ' ');
        out_u32_dec(o, n);
        out_char(o, ' ');
        out_hex32(o, x << n);
        out_char(o, ' ');
        out_hex32(o, x >> n);
        out_char(o, ' ');
        out_hex32(o, (uint32_t)((int32_t)x >> n));
        out_char(o, ' ');
        out_hex32(o, rotl32(x, n) ^ rotr32(x, n + 3));
        out_char(o, '\n');
    }
}

static void shifts64(struct out *o, uint64_t x) {
    for (uint32_t n = 0; n < 2 * amount_limit; n++) {
        out_str(o, "s64 ");
        out_u32_dec(o, n);
        out_char(o, ' ');
        out_hex64(o, x << n);
        out_char(o, ' ');
        out_hex64(o, x >> n);
        out_char(o, ' ');
        out_hex64(o, (uint64_t)((int64_t)x >> n));
        out_char(o, '\n');
    }
}

static void constant_shifts(struct out *o, uint32_t x) {
    int32_t s = (int32_t)x;
    out_str(o, "const ");
    out_hex32(o, x << 1);
    out_char(o, ' ');
    out_hex32(o, x << 17);
    out_char(o, ' ');
    out_hex32(o, x >> 5);
    out_char(o, ' ');
    out_hex32(o, x >> 31);
    out_char(o, ' ');
    out_hex32(o, (uint32_t)(s >> 3));
    out_char(o, ' ');
    out_hex32(o, (uint32_t)(s >> 31));
    out_char(o, ' ');
    out_hex32(o, (x >> 7) & 0x1fff);
    out_char(o, ' ');
    out_hex32(o, (x >> 20) & 0xf);
    out_char(o, '\n');
}

static void narrow_shifts(struct out *o) {
    volatile int8_t small_signed = -100;
    volatile uint8_t small_unsigned = 0xc5;
    volatile int16_t half_signed = -12345;
    volatile uint16_t half_unsigned = 0xbeef;
    for (uint32_t n = 0; n < 16; n += 3) {
        int8_t sb = (int8_t)(small_signed >> (n & 7));
        uint8_t ub = (uint8_t)(small_unsigned << (n & 7));
        int16_t sh = (int16_t)(half_signed >> n);
        uint16_t uh = (uint16_t)(half_unsigned << n | half_unsigned >> (16 - n));
        out_str(o, "narrow ");
        out_i32_dec(o, sb);
        out_char(o, ' ');
        out_u32_dec(o, ub);
        out_char(o, ' ');
        out_i32_dec(o, sh);
        out_char(o, ' ');
        out_u32_dec(o, uh);
        out_char(o, '\n');
    }
}

void run(struct out *o) {
    for (uint32_t i = 0; i < ARRAY_LEN(values32); i++) {
        shifts32(o, values32[i]);
        constant_shifts(o, values32[i]);
    }
    for (uint32_t i = 0; i < ARRAY_LEN(values64); i++) {
        shifts64(o, values64[i]);
    }
    narrow_shifts(o);
}
