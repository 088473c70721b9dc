/* 8- and 16-bit loads and stores in DRAM: L8UI, L16UI, L16SI, S8I, S16I and
 * the sign extensions the compiler builds for signed bytes (no SEXT on the
 * lx106), at every offset, through pointers of each width. */
#include "prog.h"

static volatile const uint8_t pattern[] = {0x00, 0x7f, 0x80, 0xff, 0x01, 0xfe, 0x55, 0xaa,
                                           0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0};

static uint8_t bytes[32];
static int8_t signed_bytes[32];
static uint16_t halves[16];
static int16_t signed_halves[16];

void run(struct out *o) {
    for (uint32_t i = 0; i < sizeof(bytes); i++) {
        bytes[i] = pattern[i % sizeof(pattern)] ^ (uint8_t)(i >> 4);
        signed_bytes[i] = (int8_t)bytes[i];
    }
    for (uint32_t i = 0; i < ARRAY_LEN(halves); i++) {
        halves[i] = (uint16_t)(bytes[2 * i] << 8 | bytes[2 * i + 1]);
        signed_halves[i] = (int16_t)halves[i];
    }
    int32_t signed_sum = 0;
    uint32_t unsigned_sum = 0;
    for (uint32_t i = 0; i < sizeof(bytes); i++) {
        signed_sum += signed_bytes[i];
        unsigned_sum += bytes[i];
    }
    out_str(o, "byte-sums ");
    out_i32_dec(o, signed_sum);
    out_char(o, ' ');
    out_u32_dec(o, unsigned_sum);
    out_char(o, '\n');
    for (uint32_t i = 0; i < ARRAY_LEN(halves); i++) {
        out_str(o, "half ");
        out_u32_dec(o, halves[i]);
        out_char(o, ' ');
        out_i32_dec(o, signed_halves[i]);
        out_char(o, ' ');
        out_i32_dec(o, signed_bytes[i] * signed_halves[i]);
        out_char(o, ' ');
        out_i32_dec(o, (int32_t)(int8_t)halves[i]);
        out_char(o, '\n');
    }

    /* Narrow stores into a word and back, at each byte and half offset; the
     * union keeps the accesses within C's aliasing rules. */
    static union {
        uint32_t word;
        uint16_t halves[2];
        uint8_t bytes[4];
        int16_t signed_halves[2];
        int8_t signed_bytes[4];
    } cell;
    for (uint32_t offset = 0; offset < 4; offset++) {
        cell.word = 0x11223344u;
        cell.bytes[offset] = (uint8_t)(0xa0 + offset);
        out_kv32(o, "store8", cell.word);
        out_kv32(o, "load8", ((volatile uint8_t *)cell.bytes)[3 - offset]);
        out_kv32(o, "load8s", (uint32_t)((volatile int8_t *)cell.signed_bytes)[offset]);
    }
    for (uint32_t offset = 0; offset < 2; offset++) {
        cell.word = 0x11223344u;
        cell.halves[offset] = (uint16_t)(0x8001 + offset);
        out_kv32(o, "store16", cell.word);
        out_kv32(o, "load16s", (uint32_t)((volatile int16_t *)cell.signed_halves)[offset]);
        out_kv32(o, "load16", ((volatile uint16_t *)cell.halves)[1 - offset]);
    }

    /* Comparisons of signed and unsigned narrow values after promotion. */
    uint32_t below = 0;
    for (uint32_t i = 0; i + 1 < sizeof(bytes); i++) {
        below = below << 1 ^ (uint32_t)(signed_bytes[i] < signed_bytes[i + 1]) ^
                (uint32_t)(bytes[i] < bytes[i + 1]) << 3;
    }
    out_kv32(o, "below", below);
    out_bytes(o, "bytes", bytes, sizeof(bytes));
}
