/* A streaming zlib (RFC 1950) / DEFLATE (RFC 1951) decoder for the stub.
 *
 * No libc, no heap: all state, including the 32 KiB history window, lives in
 * a caller-provided struct inflater (about 34 KB; make it static). Input may
 * be fed in pieces of any size, split anywhere: whatever bits a piece ends
 * with are kept in the struct and decoding resumes where it stopped.
 *
 * Output goes to a callback as pointers into the window; a pointer is valid
 * only during the call. The callback is called when the window wraps (at
 * most 32768 bytes per call) and once more before inflate_feed returns, if
 * anything was produced since; it must not call back into the inflater. */
#ifndef INFLATE_H
#define INFLATE_H

#include <stdint.h>

enum inflate_status { INFLATE_NEED_INPUT = 0, INFLATE_DONE = 1, INFLATE_ERROR = -1 };

typedef void (*inflate_output_fn)(void *context, const uint8_t *data, uint32_t length);

#define INFLATE_WINDOW_SIZE 32768u

struct inflater {
    /* The current inflate_feed call. */
    const uint8_t *in;
    uint32_t avail;
    inflate_output_fn output;
    void *context;
    /* Bits taken from the input but not yet decoded, least significant first. */
    uint32_t bitbuf;
    uint32_t bitcnt;
    uint32_t state;
    uint32_t last;     /* the current block is the final one */
    uint32_t total;    /* bytes produced */
    uint32_t flushed;  /* bytes passed to the output callback */
    uint32_t adler;    /* Adler-32 of the flushed bytes */
    uint32_t count;    /* stored bytes left, or code lengths read so far */
    uint32_t length;   /* length of the pending match */
    uint32_t distance; /* base of the pending match distance */
    uint32_t extra;    /* extra bits of the pending match distance */
    uint32_t nlit, ndist, nclen;
    /* Canonical Huffman codes: [0] number of symbols with a code, [1..15]
     * number of codes of each length, then the symbols in code order. */
    uint16_t lit[16 + 288];
    uint16_t dist[16 + 32];
    uint8_t lengths[288 + 32];
    uint8_t window[INFLATE_WINDOW_SIZE];
};

/* Prepares for a new zlib stream: 2-byte header, deflate data, Adler-32. */
void inflate_init(struct inflater *inflater);

/* Consumes all of `input` (or stops at the stream's end or an error), passing
 * the decompressed bytes to `output` in order. Returns INFLATE_NEED_INPUT
 * when all input is consumed and the stream is unfinished, INFLATE_DONE once
 * the final block and a matching Adler-32 were read (later bytes are
 * ignored), INFLATE_ERROR on malformed input. DONE and ERROR are final. */
int inflate_feed(struct inflater *inflater, const uint8_t *input, uint32_t length,
                 inflate_output_fn output, void *context);

/* Bytes produced so far. */
uint32_t inflate_total_out(const struct inflater *inflater);

#endif
