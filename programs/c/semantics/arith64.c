/* 64-bit integer arithmetic: add/sub with carries across the halves,
 * multiplication (ROM __muldi3), unsigned and signed division and remainder
 * (ROM __udivdi3, __divdi3, __umoddi3; libgcc __moddi3) with negative
 * operands, widening 32x32 products, comparisons and conversions. */
#include "prog.h"

static volatile const uint64_t operands[] = {
    0u,
    1u,
    10u,
    0xffffffffu,
    0x100000000u,
    0x123456789abcdefu,
    0x7fffffffffffffffu,
    0x8000000000000000u,
    0xfedcba9876543210u,
    0xfffffffffffffff9u,
    0xffffffffffffffffu,
};

static volatile const uint32_t words[] = {0u, 1u, 0xffffu, 0x12345678u, 0x80000000u, 0xffffffffu};

static void pair(struct out *o, uint64_t a, uint64_t b) {
    int64_t sa = (int64_t)a;
    int64_t sb = (int64_t)b;
    out_hex64(o, a);
    out_char(o, ' ');
    out_hex64(o, b);
    out_str(o, " mul ");
    out_hex64(o, a * b);
    if (b != 0) {
        out_str(o, " udiv ");
        out_hex64(o, a / b);
        out_str(o, " umod ");
        out_hex64(o, a % b);
        if (!(sa == INT64_MIN && sb == -1)) {
            out_str(o, " sdiv ");
            out_i64_dec(o, sa / sb);
            out_str(o, " smod ");
            out_i64_dec(o, sa % sb);
        }
    }
    out_str(o, " cmp ");
    out_hex32(o, (uint32_t)(a < b) | (uint32_t)(sa < sb) << 4 | (uint32_t)(a == b) << 8 |
                     (uint32_t)(sa >= sb) << 12 | (uint32_t)(a > b) << 16);
    out_char(o, '\n');
}

/* Carries and borrows between the halves, folded into one value per operand. */
static void add_sub(struct out *o) {
    for (uint32_t i = 0; i < ARRAY_LEN(operands); i++) {
        uint64_t folded = 0;
        for (uint32_t j = 0; j < ARRAY_LEN(operands); j++) {
            uint64_t a = operands[i];
            uint64_t b = operands[j];
            folded = (folded << 7 | folded >> 57) ^ (a + b) ^ ((a - b) << 1) ^ (0u - a);
        }
        out_kv64(o, "add-sub", folded);
    }
}

static void widening(struct out *o) {
    for (uint32_t i = 0; i < ARRAY_LEN(words); i++) {
        for (uint32_t j = 0; j < ARRAY_LEN(words); j++) {
            uint32_t a = words[i];
            uint32_t b = words[j];
            uint64_t product = (uint64_t)a * b;
            int64_t signed_product = (int64_t)(int32_t)a * (int32_t)b;
            uint32_t high = (uint32_t)(product >> 32);
            out_hex32(o, a);
            out_char(o, ' ');
            out_hex32(o, b);
            out_str(o, " umul ");
            out_hex64(o, product);
            out_str(o, " smul ");
            out_i64_dec(o, signed_product);
            out_str(o, " high ");
            out_hex32(o, high);
            out_char(o, '\n');
        }
    }
}

static void conversions(struct out *o) {
    for (uint32_t i = 0; i < ARRAY_LEN(words); i++) {
        uint32_t w = words[i];
        int64_t sign_extended = (int32_t)w;
        uint64_t zero_extended = w;
        out_kv64(o, "sext", (uint64_t)sign_extended);
        out_kv64(o, "zext", zero_extended);
        out_kv64(o, "neg", 0u - zero_extended);
        out_kv32(o, "trunc", (uint32_t)(zero_extended * 0x100000001u >> 16));
    }
}

/* 20! overflows nothing in 64 bits; the decimal output divides by 10 as it goes. */
static void factorials(struct out *o) {
    uint64_t f = 1;
    for (uint32_t n = 1; n <= 20 + (words[0] & 1); n++) {
        f *= n;
        out_str(o, "fact ");
        out_u32_dec(o, n);
        out_char(o, ' ');
        out_u64_dec(o, f);
        out_char(o, '\n');
    }
}

static void splitmix(struct out *o) {
    uint64_t state = operands[6];
    uint64_t acc = 0;
    for (int i = 0; i < 200; i++) {
        uint64_t z = (state += 0x9e3779b97f4a7c15u);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        z ^= z >> 31;
        acc += z / (1 + (z >> 40)) + z % 1000003u;
    }
    out_kv64(o, "splitmix-state", state);
    out_kv64(o, "splitmix-acc", acc);
}

void run(struct out *o) {
    for (uint32_t i = 0; i < ARRAY_LEN(operands); i++) {
        for (uint32_t j = 0; j < ARRAY_LEN(operands); j++) {
            pair(o, operands[i], operands[j]);
        }
    }
    add_sub(o);
    widening(o);
    conversions(o);
    factorials(o);
    splitmix(o);
}
