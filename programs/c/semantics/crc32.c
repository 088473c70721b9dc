/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320): bit by bit, with a
 * 256-entry table built at run time, and with four tables (slicing by 4,
 * word loads); all three must agree with each other and with the host. */
#include "prog.h"

#define POLY 0xedb88320u

static volatile const char check_input[] = "123456789";
static volatile const uint32_t seed = 0x31415926u;
static uint32_t table[4][256];
static uint32_t data_words[257];

static uint32_t crc_bitwise(const uint8_t *data, uint32_t len) {
    uint32_t crc = 0xffffffffu;
    for (uint32_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc >> 1) ^ (POLY & (0u - (crc & 1)));
        }
    }
    return ~crc;
}

static void build_tables(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int bit = 0; bit < 8; bit++) {
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        }
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        for (int t = 1; t < 4; t++) {
            table[t][n] = (table[t - 1][n] >> 8) ^ table[0][table[t - 1][n] & 0xff];
        }
    }
}

static uint32_t crc_table(const uint8_t *data, uint32_t len) {
    uint32_t crc = 0xffffffffu;
    while (len-- > 0) {
        crc = (crc >> 8) ^ table[0][(crc ^ *data++) & 0xff];
    }
    return ~crc;
}

/* Little-endian words: the same byte order on the host and the lx106. */
static uint32_t crc_slice4(const uint32_t *words, uint32_t word_count) {
    uint32_t crc = 0xffffffffu;
    for (uint32_t i = 0; i < word_count; i++) {
        crc ^= words[i];
        crc = table[3][crc & 0xff] ^ table[2][(crc >> 8) & 0xff] ^ table[1][(crc >> 16) & 0xff] ^
              table[0][crc >> 24];
    }
    return ~crc;
}

void run(struct out *o) {
    uint8_t check[9];
    for (uint32_t i = 0; i < sizeof(check); i++) {
        check[i] = (uint8_t)check_input[i];
    }
    build_tables();
    out_kv32(o, "table[1]", table[0][1]);
    out_kv32(o, "table[255]", table[0][255]);
    out_kv32(o, "check-bitwise", crc_bitwise(check, sizeof(check)));
    out_kv32(o, "check-table", crc_table(check, sizeof(check)));

    uint32_t state = seed;
    for (uint32_t i = 0; i < ARRAY_LEN(data_words); i++) {
        state = state * 1103515245u + 12345u;
        data_words[i] = state ^ (state >> 16);
    }
    const uint8_t *bytes = (const uint8_t *)data_words;
    for (uint32_t len = 0; len <= 1024; len = len * 2 + 4) {
        out_str(o, "crc ");
        out_u32_dec(o, len);
        out_char(o, ' ');
        out_hex32(o, crc_bitwise(bytes, len));
        out_char(o, ' ');
        out_hex32(o, crc_table(bytes + 1, len));
        out_char(o, ' ');
        out_hex32(o, crc_slice4(data_words, len / 4));
        out_char(o, '\n');
    }
}
