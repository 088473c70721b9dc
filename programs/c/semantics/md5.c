/* MD5 (RFC 1321) written out in C: 32-bit adds, rotates, boolean functions,
 * little-endian message schedule, length padding with a 64-bit bit count.
 * Digests of the RFC's test strings and of generated data, streamed in
 * pieces of varying size. */
#include "prog.h"

struct md5 {
    uint32_t state[4];
    uint64_t length;
    uint8_t block[64];
    uint32_t used;
};

static const uint32_t sines[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

static const uint8_t rotations[4][4] = {{7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};

static uint32_t rotl(uint32_t x, uint32_t n) { return (x << n) | (x >> (32 - n)); }

static void md5_init(struct md5 *m) {
    m->state[0] = 0x67452301;
    m->state[1] = 0xefcdab89;
    m->state[2] = 0x98badcfe;
    m->state[3] = 0x10325476;
    m->length = 0;
    m->used = 0;
}

static void md5_block(struct md5 *m, const uint8_t *block) {
    uint32_t words[16];
    for (int i = 0; i < 16; i++) {
        words[i] = (uint32_t)block[4 * i] | (uint32_t)block[4 * i + 1] << 8 |
                   (uint32_t)block[4 * i + 2] << 16 | (uint32_t)block[4 * i + 3] << 24;
    }
    uint32_t a = m->state[0], b = m->state[1], c = m->state[2], d = m->state[3];
    for (uint32_t i = 0; i < 64; i++) {
        uint32_t f, g;
        switch (i / 16) {
        case 0:
            f = (b & c) | (~b & d);
            g = i;
            break;
        case 1:
            f = (d & b) | (~d & c);
            g = (5 * i + 1) % 16;
            break;
        case 2:
            f = b ^ c ^ d;
            g = (3 * i + 5) % 16;
            break;
        default:
            f = c ^ (b | ~d);
            g = (7 * i) % 16;
            break;
        }
        uint32_t rotated = rotl(a + f + sines[i] + words[g], rotations[i / 16][i % 4]);
        a = d;
        d = c;
        c = b;
        b = b + rotated;
    }
    m->state[0] += a;
    m->state[1] += b;
    m->state[2] += c;
    m->state[3] += d;
}

static void md5_update(struct md5 *m, const uint8_t *data, uint32_t len) {
    m->length += len;
    while (len > 0) {
        uint32_t take = 64 - m->used;
        if (take > len) {
            take = len;
        }
        memcpy(m->block + m->used, data, take);
        m->used += take;
        data += take;
        len -= take;
        if (m->used == 64) {
            md5_block(m, m->block);
            m->used = 0;
        }
    }
}

static void md5_final(struct md5 *m, uint8_t digest[16]) {
    uint64_t bits = m->length * 8;
    static const uint8_t padding[64] = {0x80};
    uint32_t pad = m->used < 56 ? 56 - m->used : 120 - m->used;
    md5_update(m, padding, pad);
    uint8_t length_bytes[8];
    for (int i = 0; i < 8; i++) {
        length_bytes[i] = (uint8_t)(bits >> (8 * i));
    }
    md5_update(m, length_bytes, 8);
    for (int i = 0; i < 16; i++) {
        digest[i] = (uint8_t)(m->state[i / 4] >> (8 * (i % 4)));
    }
}

static volatile const char *const test_strings[] = {
    "",
    "a",
    "abc",
    "message digest",
    "abcdefghijklmnopqrstuvwxyz",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
};

static uint8_t generated[1000];

void run(struct out *o) {
    uint8_t digest[16];
    struct md5 m;
    for (uint32_t s = 0; s < ARRAY_LEN(test_strings); s++) {
        uint8_t text[100];
        uint32_t len = 0;
        while (test_strings[s][len] != '\0') {
            text[len] = (uint8_t)test_strings[s][len];
            len++;
        }
        md5_init(&m);
        md5_update(&m, text, len);
        md5_final(&m, digest);
        out_bytes(o, "md5", digest, sizeof(digest));
    }

    uint32_t state = (uint32_t)test_strings[2][0];
    for (uint32_t i = 0; i < sizeof(generated); i++) {
        state = state * 69069u + 1u;
        generated[i] = (uint8_t)(state >> 24);
    }
    for (uint32_t piece = 1; piece <= 129; piece += 32) {
        md5_init(&m);
        for (uint32_t at = 0; at < sizeof(generated); at += piece) {
            uint32_t n = sizeof(generated) - at < piece ? sizeof(generated) - at : piece;
            md5_update(&m, generated + at, n);
        }
        md5_final(&m, digest);
        out_str(o, "pieces ");
        out_u32_dec(o, piece);
        out_bytes(o, "", digest, sizeof(digest));
    }
}
