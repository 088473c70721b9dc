/* Host test driver for inflate.c (libc allowed here).
 *
 * Input (the file named by argv[1], or stdin): chunks, each a 4-byte
 * little-endian length and that many bytes; a length of 0xFFFFFFFF or the end
 * of the input ends the list. Every chunk goes to one inflate_feed call, in a
 * buffer of exactly its size (so a sanitizer build catches over-reads).
 *
 * Output: the decompressed bytes on stdout; one line on stderr,
 *   status=<last feed's status> total=<total_out> calls=<output calls> feeds=<n>
 * Exit status 0, or 2 with a message on stderr when an invariant breaks:
 * guard bytes around the inflater changed, an output call outside the window
 * or empty, total_out different from the bytes output, or DONE/ERROR not
 * staying final. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../inflate.h"

#define GUARD 64

struct guarded {
    uint8_t before[GUARD];
    struct inflater inflater;
    uint8_t after[GUARD];
};

static struct guarded *g;
static uint64_t emitted;
static uint64_t calls;

static void fail(const char *message) {
    fflush(stdout);
    fprintf(stderr, "invariant broken: %s\n", message);
    exit(2);
}

static void output(void *context, const uint8_t *data, uint32_t length) {
    const uint8_t *window = g->inflater.window;
    if (context != &calls)
        fail("wrong context");
    if (length == 0 || length > INFLATE_WINDOW_SIZE)
        fail("output length");
    if (data < window || data + length > window + INFLATE_WINDOW_SIZE)
        fail("output outside the window");
    if (fwrite(data, 1, length, stdout) != length)
        fail("stdout write");
    emitted += length;
    calls++;
}

static int read_exact(FILE *in, void *buffer, size_t length) {
    return fread(buffer, 1, length, in) == length;
}

int main(int argc, char **argv) {
    FILE *in = stdin;
    int status = INFLATE_NEED_INPUT, i;
    unsigned long feeds = 0;

    if (argc > 1 && !(in = fopen(argv[1], "rb"))) {
        perror(argv[1]);
        return 1;
    }
    g = malloc(sizeof *g);
    if (!g)
        return 1;
    memset(g, 0xA5, sizeof *g); /* init must not rely on zeroed memory */
    inflate_init(&g->inflater);

    for (;;) {
        uint8_t header[4];
        uint32_t length;
        uint8_t *chunk;
        int next;
        if (!read_exact(in, header, 4))
            break;
        length = (uint32_t)header[0] | (uint32_t)header[1] << 8 | (uint32_t)header[2] << 16 |
                 (uint32_t)header[3] << 24;
        if (length == 0xFFFFFFFFu)
            break;
        chunk = malloc(length ? length : 1);
        if (!chunk || !read_exact(in, chunk, length)) {
            fprintf(stderr, "short chunk\n");
            return 1;
        }
        next = inflate_feed(&g->inflater, length ? chunk : NULL, length, output, &calls);
        free(chunk);
        feeds++;
        if (next != INFLATE_NEED_INPUT && next != INFLATE_DONE && next != INFLATE_ERROR)
            fail("unknown status");
        if (status != INFLATE_NEED_INPUT && next != status)
            fail("DONE or ERROR did not stay");
        status = next;
        if (inflate_total_out(&g->inflater) != (uint32_t)emitted)
            fail("total_out differs from the bytes output");
        for (i = 0; i < GUARD; i++)
            if (g->before[i] != 0xA5 || g->after[i] != 0xA5)
                fail("write outside struct inflater");
    }
    fflush(stdout);
    fprintf(stderr, "status=%d total=%lu calls=%lu feeds=%lu\n", status,
            (unsigned long)inflate_total_out(&g->inflater), (unsigned long)calls, feeds);
    free(g);
    return 0;
}
