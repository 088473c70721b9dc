/* Text output into a struct out, the same code on the host and the lx106. */
#include "prog.h"

static const char hex_digits[] = "0123456789abcdef";

void out_char(struct out *o, char c) {
    if (o->len < OUT_CAPACITY) {
        o->text[o->len++] = c;
    } else {
        o->overflowed = 1;
    }
}

void out_str(struct out *o, const char *s) {
    while (*s != '\0') {
        out_char(o, *s++);
    }
}

void out_hex32(struct out *o, uint32_t value) {
    out_str(o, "0x");
    for (int shift = 28; shift >= 0; shift -= 4) {
        out_char(o, hex_digits[(value >> shift) & 0xf]);
    }
}

void out_hex64(struct out *o, uint64_t value) {
    out_hex32(o, (uint32_t)(value >> 32));
    for (int shift = 28; shift >= 0; shift -= 4) {
        out_char(o, hex_digits[(uint32_t)(value >> shift) & 0xf]);
    }
}

void out_u32_dec(struct out *o, uint32_t value) {
    char digits[10];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (count > 0) {
        out_char(o, digits[--count]);
    }
}

void out_i32_dec(struct out *o, int32_t value) {
    if (value < 0) {
        out_char(o, '-');
        out_u32_dec(o, 0u - (uint32_t)value);
    } else {
        out_u32_dec(o, (uint32_t)value);
    }
}

void out_u64_dec(struct out *o, uint64_t value) {
    char digits[20];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (count > 0) {
        out_char(o, digits[--count]);
    }
}

void out_i64_dec(struct out *o, int64_t value) {
    if (value < 0) {
        out_char(o, '-');
        out_u64_dec(o, 0u - (uint64_t)value);
    } else {
        out_u64_dec(o, (uint64_t)value);
    }
}

void out_kv32(struct out *o, const char *label, uint32_t value) {
    out_str(o, label);
    out_char(o, ' ');
    out_hex32(o, value);
    out_char(o, '\n');
}

void out_kv64(struct out *o, const char *label, uint64_t value) {
    out_str(o, label);
    out_char(o, ' ');
    out_hex64(o, value);
    out_char(o, '\n');
}

void out_bytes(struct out *o, const char *label, const void *data, uint32_t len) {
    const uint8_t *bytes = data;
    out_str(o, label);
    for (uint32_t i = 0; i < len; i++) {
        out_char(o, ' ');
        out_char(o, hex_digits[bytes[i] >> 4]);
        out_char(o, hex_digits[bytes[i] & 0xf]);
    }
    out_char(o, '\n');
}
