/* A one-shot raw DEFLATE (RFC 1951) compressor for the stub: one block of
 * memory (a flash sector or a few) in, one complete raw deflate stream out.
 *
 * No libc, no heap: all state lives in a caller-provided struct deflater
 * (about 14 KB; make it static). Matches reach back within the input only,
 * at most DEFLATE_WINDOW_SIZE - 1 bytes, so every block inflates on its own.
 * The output is written to the caller's buffer and never past its capacity:
 * a stream that would not fit is abandoned and deflate_block returns 0, and
 * the caller sends the input as it is. Blocks of the stream are coded with
 * Huffman codes built for their data, or with the fixed codes when that is
 * shorter. */
#ifndef DEFLATE_H
#define DEFLATE_H

#include <stdint.h>

/* The largest input deflate_block takes (positions are kept in 16 bits). */
#define DEFLATE_MAX_INPUT 0x8000u

#define DEFLATE_HASH_BITS 11u
#define DEFLATE_WINDOW_SIZE 4096u
/* Pending LZ77 tokens: a control byte per 8 tokens, a byte per literal and
 * three per match, so a 4 KiB input always fits in one deflate block. */
#define DEFLATE_TOKEN_BYTES 4612u

#define DEFLATE_LIT_CODES 286u
#define DEFLATE_DIST_CODES 30u
#define DEFLATE_CLEN_CODES 19u

struct deflate_output {
    uint8_t *out;
    uint32_t len;   /* bytes produced, also past cap (those are not stored) */
    uint32_t cap;
    uint32_t bits;  /* bits not yet stored, least significant first */
    uint32_t count; /* how many */
};

struct deflater {
    struct deflate_output output;
    /* Pending tokens. */
    uint32_t token_len;     /* bytes of tokens in use */
    uint32_t control_at;    /* where the current control byte is */
    uint32_t control_count; /* tokens under the current control byte */
    /* LZ77: the latest position + 1 with each hash, and the previous one with
     * the same hash for the positions in the window. */
    uint16_t head[1u << DEFLATE_HASH_BITS];
    uint16_t prev[DEFLATE_WINDOW_SIZE];
    uint8_t tokens[DEFLATE_TOKEN_BYTES];
    /* Symbol counts of the pending tokens, and the codes of the block. */
    uint16_t lit_freq[DEFLATE_LIT_CODES];
    uint16_t dist_freq[DEFLATE_DIST_CODES];
    uint16_t clen_freq[DEFLATE_CLEN_CODES];
    uint8_t lit_len[288];
    uint8_t dist_len[32];
    uint8_t clen_len[DEFLATE_CLEN_CODES];
    uint16_t lit_code[288];
    uint16_t dist_code[32];
    uint16_t clen_code[DEFLATE_CLEN_CODES];
    /* The code lengths run-length coded: symbol | extra bits << 5. */
    uint16_t runs[DEFLATE_LIT_CODES + DEFLATE_DIST_CODES];
    /* Building a code: sort keys, then weights and lengths; the symbols in order. */
    uint32_t work[DEFLATE_LIT_CODES];
    uint16_t symbols[DEFLATE_LIT_CODES];
};

/* Compresses input[0, length) into one raw deflate stream in output[0,
 * capacity). Returns the stream's length, or 0 when it would be longer than
 * capacity or length exceeds DEFLATE_MAX_INPUT; nothing at or past
 * output + capacity is written either way. */
uint32_t deflate_block(struct deflater *deflater, const uint8_t *input, uint32_t length,
                       uint8_t *output, uint32_t capacity);

#endif
