/* Host test driver for deflate.c (libc allowed here).
 *
 * Input (stdin): cases, each a 4-byte little-endian input length, a 4-byte
 * output capacity and the input bytes; the end of the input ends the list.
 * Each case is compressed by one deflate_block call on a deflater that still
 * holds the previous case's state (the first one's is filled with 0xA5), so
 * nothing may depend on fresh memory. The input and the output buffer are
 * separate allocations of exactly their size (a sanitizer build catches any
 * access outside them), and the output buffer is followed by guard bytes in
 * a plain build too.
 *
 * Output (stdout): per case, the 4-byte little-endian result of deflate_block
 * and that many bytes of stream. Exit status 0, or 2 with a message on stderr
 * when an invariant breaks: a write outside the deflater or past the output
 * buffer, a result larger than the capacity. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../deflate.h"

#define GUARD 64

struct guarded {
    uint8_t before[GUARD];
    struct deflater deflater;
    uint8_t after[GUARD];
};

static void fail(const char *message) {
    fflush(stdout);
    fprintf(stderr, "invariant broken: %s\n", message);
    exit(2);
}

static int read_exact(void *buffer, size_t length) {
    return fread(buffer, 1, length, stdin) == length;
}

static uint32_t le32(const uint8_t *bytes) {
    return (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 |
           (uint32_t)bytes[3] << 24;
}

int main(void) {
    struct guarded *g = malloc(sizeof *g);
    uint8_t header[8];
    if (!g)
        return 1;
    memset(g, 0xA5, sizeof *g);
    while (read_exact(header, sizeof header)) {
        uint32_t length = le32(header), capacity = le32(header + 4), result, i;
        uint8_t *input = malloc(length ? length : 1);
        /* The guard lives in the same allocation in a plain build; with the sanitizer the
         * capacity is the whole allocation, so any write past it is caught at once. */
#if defined(__SANITIZE_ADDRESS__)
        uint8_t *output = malloc(capacity ? capacity : 1);
        const uint32_t guard = 0;
#else
        uint8_t *output = malloc(capacity + GUARD);
        const uint32_t guard = GUARD;
#endif
        uint8_t word[4];
        if (!input || !output || !read_exact(input, length)) {
            fprintf(stderr, "short case\n");
            return 1;
        }
        memset(output + capacity, 0x5A, guard);
        result = deflate_block(&g->deflater, input, length, output, capacity);
        if (result > capacity)
            fail("a result larger than the capacity");
        for (i = 0; i < guard; i++)
            if (output[capacity + i] != 0x5A)
                fail("a write past the output buffer");
        for (i = 0; i < GUARD; i++)
            if (g->before[i] != 0xA5 || g->after[i] != 0xA5)
                fail("a write outside struct deflater");
        for (i = 0; i < 4; i++)
            word[i] = (uint8_t)(result >> (8 * i));
        if (fwrite(word, 1, 4, stdout) != 4 || fwrite(output, 1, result, stdout) != result)
            fail("stdout write");
        free(input);
        free(output);
    }
    fflush(stdout);
    free(g);
    return 0;
}
