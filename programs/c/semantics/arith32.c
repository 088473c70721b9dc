/* 32-bit integer arithmetic: multiplication (MULL, MUL16), unsigned and
 * signed division and remainder through the ROM's __udivsi3, __divsi3,
 * __umodsi3 and libgcc's __modsi3, with negative operands, division by
 * constants, add/sub wrap-around and comparisons. */
#include "prog.h"

static volatile const uint32_t operands[] = {
    0u,      1u,          2u,          3u,          7u,          0x8000u,     12345678u,
    0x7fffffffu, 0x80000000u, 0x80000001u, 0xdeadbeefu, 0xfffffff9u, 0xfffffffeu, 0xffffffffu,
};

static volatile const int16_t halves[] = {0, 1, -1, 2, -2, 300, -300, 32767, -32768, 12345};

static void divide_pair(struct out *o, uint32_t a, uint32_t b) {
    int32_t sa = (int32_t)a;
    int32_t sb = (int32_t)b;
    out_hex32(o, a);
    out_char(o, ' ');
    out_hex32(o, b);
    out_str(o, " mul ");
    out_hex32(o, a * b);
    if (b != 0) {
        out_str(o, " udiv ");
        out_hex32(o, a / b);
        out_str(o, " umod ");
        out_hex32(o, a % b);
        /* INT32_MIN / -1 overflows: undefined in C, so left out. */
        if (!(sa == INT32_MIN && sb == -1)) {
            out_str(o, " sdiv ");
            out_i32_dec(o, sa / sb);
            out_str(o, " smod ");
            out_i32_dec(o, sa % sb);
        }
    }
    out_char(o, '\n');
}

static void by_constants(struct out *o, uint32_t a) {
    int32_t s = (int32_t)a;
    out_hex32(o, a);
    out_str(o, " /3 ");
    out_hex32(o, a / 3);
    out_str(o, " %7 ");
    out_hex32(o, a % 7);
    out_str(o, " /10 ");
    out_u32_dec(o, a / 10);
    out_str(o, " /1000 ");
    out_u32_dec(o, a / 1000);
    out_str(o, " s/16 ");
    out_i32_dec(o, s / 16);
    out_str(o, " s%16 ");
    out_i32_dec(o, s % 16);
    if (s != INT32_MIN) {
        out_str(o, " s/-5 ");
        out_i32_dec(o, s / -5);
        out_str(o, " s%-5 ");
        out_i32_dec(o, s % -5);
        out_str(o, " abs ");
        out_i32_dec(o, s < 0 ? -s : s);
    }
    out_char(o, '\n');
}

static void small_products(struct out *o) {
    for (uint32_t i = 0; i < ARRAY_LEN(halves); i++) {
        for (uint32_t j = 0; j < ARRAY_LEN(halves); j++) {
            int16_t x = halves[i];
            int16_t y = halves[j];
            int32_t signed_product = (int32_t)x * (int32_t)y;
            uint32_t unsigned_product = (uint32_t)(uint16_t)x * (uint32_t)(uint16_t)y;
            out_i32_dec(o, x);
            out_char(o, '*');
            out_i32_dec(o, y);
            out_char(o, '=');
            out_i32_dec(o, signed_product);
            out_char(o, ' ');
            out_hex32(o, unsigned_product);
            out_char(o, '\n');
        }
    }
}

static void wrap_and_compare(struct out *o) {
    uint32_t flags = 0;
    uint32_t sum = 0;
    for (uint32_t i = 0; i < ARRAY_LEN(operands); i++) {
        for (uint32_t j = 0; j < ARRAY_LEN(operands); j++) {
            uint32_t a = operands[i];
            uint32_t b = operands[j];
            int32_t sa = (int32_t)a;
            int32_t sb = (int32_t)b;
            uint32_t bits = (uint32_t)(a < b) | (uint32_t)(a <= b) << 1 |
                            (uint32_t)(sa < sb) << 2 | (uint32_t)(sa <= sb) << 3 |
                            (uint32_t)(a == b) << 4 | (uint32_t)(sa > sb) << 5 |
                            (uint32_t)(a >= b) << 6;
            flags = flags * 31 + bits;
            sum += (a + b) ^ (a - b) ^ (b - a);
        }
    }
    out_kv32(o, "compare-flags-hash", flags);
    out_kv32(o, "wrap-sum", sum);
}

/* A linear congruential walk: multiply-accumulate with wrap-around. */
static void lcg(struct out *o) {
    uint32_t state = operands[10];
    uint32_t mixed = 0;
    for (int i = 0; i < 1000; i++) {
        state = state * 1664525u + 1013904223u;
        mixed ^= state / (1 + (state >> 24)) + state % 97;
    }
    out_kv32(o, "lcg-state", state);
    out_kv32(o, "lcg-mixed", mixed);
}

void run(struct out *o) {
    for (uint32_t i = 0; i < ARRAY_LEN(operands); i++) {
        for (uint32_t j = 0; j < ARRAY_LEN(operands); j++) {
            divide_pair(o, operands[i], operands[j]);
        }
    }
    for (uint32_t i = 0; i < ARRAY_LEN(operands); i++) {
        by_constants(o, operands[i]);
    }
    small_products(o);
    wrap_and_compare(o);
    lcg(o);
}
