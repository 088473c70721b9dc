/* The interface shared by the semantics programs, the host driver and the
 * lx106 driver. Each program defines `void run(struct out *)`, which writes
 * deterministic text into the buffer; the host driver prints it, the lx106
 * driver leaves it in DRAM for the emulator test to read.
 *
 * Portability rules for the programs: fixed-width types only (long and
 * pointers differ between the host and the lx106), explicit signed/unsigned
 * char (plain char is unsigned on Xtensa), no undefined behaviour (shift
 * counts below the width, no signed overflow, no division by zero). */
#ifndef PROG_H
#define PROG_H

#include <stddef.h>
#include <stdint.h>

/* The output buffer: the emulator test finds it by the symbol
 * `program_output` and reads `len` bytes of `text`. */
#define OUT_CAPACITY 32768
struct out {
    uint32_t len;
    uint32_t overflowed;
    char text[OUT_CAPACITY];
};

void run(struct out *o);

void out_char(struct out *o, char c);
void out_str(struct out *o, const char *s);
/* Hex output needs only shifts and masks, so a broken divider cannot garble
 * every line; decimal output (out_u32_dec, out_u64_dec) divides on purpose. */
void out_hex32(struct out *o, uint32_t value);
void out_hex64(struct out *o, uint64_t value);
void out_u32_dec(struct out *o, uint32_t value);
void out_i32_dec(struct out *o, int32_t value);
void out_u64_dec(struct out *o, uint64_t value);
void out_i64_dec(struct out *o, int64_t value);
/* "label 0x12345678\n" */
void out_kv32(struct out *o, const char *label, uint32_t value);
/* "label 0x0123456789abcdef\n" */
void out_kv64(struct out *o, const char *label, uint64_t value);
/* "label 00 11 22 ...\n" */
void out_bytes(struct out *o, const char *label, const void *data, uint32_t len);

/* The C library functions the programs call: the host's libc, or the ESP8266
 * mask ROM's functions at their ROM addresses (ld/rom.ld). */
void *memcpy(void *dest, const void *src, size_t n);
void *memset(void *dest, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* Keeps GCC from turning a hand-written loop into a call to memset/memcpy. */
#if defined(__GNUC__) && !defined(__clang__)
#define HAND_LOOP __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define HAND_LOOP
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
