/* Memory block operations: the ROM's memcpy, memset and memcmp and hand
 * loops (bytewise, word-wise, backwards), at every alignment of source and
 * destination and at odd lengths, checked by a digest of the whole buffer. */
#include "prog.h"

#define BUFFER_LEN 96

static volatile const uint32_t seed = 0x2545f491u;
/* Word-typed storage, so copy_words' 32-bit accesses respect C's aliasing rules. */
static uint32_t source_words[(BUFFER_LEN + 8) / 4];
static uint32_t dest_words[(BUFFER_LEN + 8) / 4];
#define source ((uint8_t *)source_words)
#define dest ((uint8_t *)dest_words)

static uint32_t digest(const uint8_t *data, uint32_t len) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < len; i++) {
        h = (h ^ data[i]) * 16777619u;
    }
    return h;
}

static void fill_source(uint32_t state) {
    for (uint32_t i = 0; i < sizeof(source_words); i++) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        source[i] = (uint8_t)(state >> 11);
    }
}

HAND_LOOP static void copy_bytes(uint8_t *d, const uint8_t *s, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        d[i] = s[i];
    }
}

HAND_LOOP static void copy_backwards(uint8_t *d, const uint8_t *s, uint32_t n) {
    while (n > 0) {
        n--;
        d[n] = s[n];
    }
}

HAND_LOOP static void set_bytes(uint8_t *d, uint8_t value, uint32_t n) {
    while (n-- > 0) {
        *d++ = value;
    }
}

/* Whole words when both pointers are 4-aligned, bytes around them. */
HAND_LOOP static void copy_words(uint8_t *d, const uint8_t *s, uint32_t n) {
    while (n > 0 && ((uintptr_t)d & 3) != 0) {
        *d++ = *s++;
        n--;
    }
    if (((uintptr_t)s & 3) == 0) {
        uint32_t *dw = (uint32_t *)(void *)d;
        const uint32_t *sw = (const uint32_t *)(const void *)s;
        for (; n >= 4; n -= 4) {
            *dw++ = *sw++;
        }
        d = (uint8_t *)dw;
        s = (const uint8_t *)sw;
    }
    while (n-- > 0) {
        *d++ = *s++;
    }
}

typedef void (*copy_fn)(uint8_t *, const uint8_t *, uint32_t);

static void rom_copy(uint8_t *d, const uint8_t *s, uint32_t n) { memcpy(d, s, n); }

static const copy_fn copies[] = {rom_copy, copy_bytes, copy_backwards, copy_words};
static const char *const copy_names[] = {"memcpy", "bytes", "backwards", "words"};

void run(struct out *o) {
    static const uint32_t lengths[] = {0, 1, 3, 4, 5, 15, 16, 33, 64, 90};
    fill_source(seed);
    for (uint32_t c = 0; c < ARRAY_LEN(copies); c++) {
        uint32_t h = 0;
        for (uint32_t so = 0; so < 4; so++) {
            for (uint32_t d_off = 0; d_off < 4; d_off++) {
                for (uint32_t l = 0; l < ARRAY_LEN(lengths); l++) {
                    memset(dest, 0xa5, sizeof(dest_words));
                    copies[c](dest + d_off, source + so, lengths[l]);
                    h = h * 0x01000193u ^ digest(dest, sizeof(dest_words));
                }
            }
        }
        out_kv32(o, copy_names[c], h);
    }

    uint32_t h = 0;
    for (uint32_t offset = 0; offset < 4; offset++) {
        for (uint32_t l = 0; l < ARRAY_LEN(lengths); l++) {
            memcpy(dest, source, sizeof(dest_words));
            memset(dest + offset, (int)(0x100 + offset * 37 + l), lengths[l]);
            uint32_t rom = digest(dest, sizeof(dest_words));
            memcpy(dest, source, sizeof(dest_words));
            set_bytes(dest + offset, (uint8_t)(offset * 37 + l), lengths[l]);
            uint32_t hand = digest(dest, sizeof(dest_words));
            h = h * 31 + rom;
            out_str(o, "memset ");
            out_u32_dec(o, offset);
            out_char(o, ' ');
            out_u32_dec(o, lengths[l]);
            out_str(o, rom == hand ? " same " : " differ ");
            out_hex32(o, rom);
            out_char(o, '\n');
        }
    }
    out_kv32(o, "memset-all", h);

    memcpy(dest, source, sizeof(dest_words));
    dest[40] ^= 0x80;
    for (uint32_t l = 0; l < 48; l += 7) {
        int sign_here = memcmp(source, dest, l);
        int sign_beyond = memcmp(source + 41, dest + 41, l);
        int against_shifted = memcmp(source + 1, source, l + 1);
        out_str(o, "memcmp ");
        out_u32_dec(o, l);
        out_char(o, ' ');
        out_i32_dec(o, (sign_here > 0) - (sign_here < 0));
        out_char(o, ' ');
        out_i32_dec(o, (sign_beyond > 0) - (sign_beyond < 0));
        out_char(o, ' ');
        out_i32_dec(o, (against_shifted > 0) - (against_shifted < 0));
        out_char(o, '\n');
    }
    out_bytes(o, "tail", dest + BUFFER_LEN - 16, 24);
}
