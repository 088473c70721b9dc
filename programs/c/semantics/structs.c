/* Structures: assignment of large structs (inline copies or memcpy calls),
 * structs passed and returned by value, arrays of structs, nested structs,
 * unions, bit-fields (signed and unsigned) and packed layouts with
 * unaligned members (byte-wise access on the lx106). */
#include "prog.h"

struct point {
    int32_t x;
    int32_t y;
};

struct record {
    uint8_t tag;
    int16_t delta;
    uint32_t id;
    struct point corners[4];
    char name[13];
    uint64_t stamp;
};

struct flags {
    uint32_t low : 3;
    int32_t signed_mid : 5;
    uint32_t wide : 20;
    uint32_t top : 4;
};

struct __attribute__((packed)) packed_header {
    uint8_t kind;
    uint32_t length;
    uint16_t port;
    int32_t offset;
};

union word_view {
    uint32_t word;
    uint16_t halves[2];
    uint8_t bytes[4];
};

static volatile const int32_t base = -17;

static struct point add_points(struct point a, struct point b) {
    struct point r = {a.x + b.x, a.y - b.y};
    return r;
}

static struct record make_record(uint32_t id, int32_t offset) {
    struct record r;
    memset(&r, 0, sizeof(r));
    r.tag = (uint8_t)(0xf0 | id);
    r.delta = (int16_t)(offset * 3);
    r.id = id * 0x01010101u;
    for (int i = 0; i < 4; i++) {
        r.corners[i].x = offset + i;
        r.corners[i].y = offset * i;
    }
    for (int i = 0; i < 12; i++) {
        r.name[i] = (char)('a' + (id + (uint32_t)i) % 26);
    }
    r.name[12] = '\0';
    r.stamp = (uint64_t)id << 40 | (uint32_t)offset;
    return r;
}

static uint32_t record_digest(const struct record *r) {
    uint32_t h = r->tag;
    h = h * 31 + (uint32_t)(int32_t)r->delta;
    h = h * 31 + r->id;
    for (int i = 0; i < 4; i++) {
        h = h * 31 + (uint32_t)r->corners[i].x;
        h = h * 31 + (uint32_t)r->corners[i].y;
    }
    for (int i = 0; r->name[i] != '\0'; i++) {
        h = h * 31 + (uint8_t)r->name[i];
    }
    return h ^ (uint32_t)r->stamp ^ (uint32_t)(r->stamp >> 32);
}

static struct record records[5];

void run(struct out *o) {
    for (uint32_t i = 0; i < ARRAY_LEN(records); i++) {
        records[i] = make_record(i + 1, base + (int32_t)i);
    }
    struct record copy = records[2];
    records[2] = records[4];
    records[4] = copy;
    struct record local[3];
    for (uint32_t i = 0; i < 3; i++) {
        local[i] = records[i + 1];
        local[i].corners[1] = add_points(local[i].corners[0], local[i].corners[3]);
    }
    for (uint32_t i = 0; i < ARRAY_LEN(records); i++) {
        out_kv32(o, "record", record_digest(&records[i]));
    }
    for (uint32_t i = 0; i < 3; i++) {
        out_kv32(o, "local", record_digest(&local[i]));
        out_str(o, "name ");
        out_str(o, local[i].name);
        out_char(o, '\n');
    }

    struct flags f = {0, 0, 0, 0};
    for (int32_t i = 0; i < 12; i++) {
        f.low = (uint32_t)(f.low + 3);
        f.signed_mid = (int32_t)(base + i * 5) % 16;
        f.wide = (uint32_t)(f.wide * 7 + 0x12345) & 0xfffff;
        f.top = (uint32_t)i;
        out_str(o, "bits ");
        out_u32_dec(o, f.low);
        out_char(o, ' ');
        out_i32_dec(o, f.signed_mid);
        out_char(o, ' ');
        out_hex32(o, f.wide);
        out_char(o, ' ');
        out_u32_dec(o, f.top);
        out_char(o, '\n');
    }

    static struct packed_header headers[3];
    for (uint32_t i = 0; i < 3; i++) {
        headers[i].kind = (uint8_t)(i + 1);
        headers[i].length = 0x11223344u * (i + 1);
        headers[i].port = (uint16_t)(8080 + i);
        headers[i].offset = base * (int32_t)(i + 1);
    }
    out_kv32(o, "packed-size", (uint32_t)sizeof(struct packed_header));
    out_bytes(o, "packed", headers, sizeof(headers));
    uint32_t total = 0;
    for (uint32_t i = 0; i < 3; i++) {
        total += headers[i].length + headers[i].port + (uint32_t)headers[i].offset;
    }
    out_kv32(o, "packed-total", total);

    union word_view view;
    view.word = (uint32_t)base * 0x01000193u;
    out_kv32(o, "union-word", view.word);
    out_kv32(o, "union-half0", view.halves[0]);
    out_kv32(o, "union-byte3", view.bytes[3]);
    view.bytes[1] = 0x5a;
    view.halves[1] ^= 0xffff;
    out_kv32(o, "union-after", view.word);
}
