/* Streaming zlib decoder, written for this stub from RFC 1950 and RFC 1951.
 *
 * Design: a state machine whose steps are atomic. A step first checks that
 * the bit buffer holds every bit it needs (a Huffman code plus its extra
 * bits, a header field, ...) and only then consumes them; when the input
 * runs dry mid-step, inflate_feed returns and the step is retried on the next
 * call with the bits it already had. The bit buffer is refilled to at least
 * 25 bits whenever input remains, and no step needs more than 25 bits (or 32
 * on a byte boundary), so running short always means the input is used up.
 *
 * Huffman codes are decoded one bit at a time with canonical code counts,
 * which needs no lookup tables beyond the symbol list. Length and distance
 * bases are computed, not tabulated. Nothing here divides, so no libgcc. */
#include "inflate.h"

/* The stub is built for size (every connection uploads it at 115200 baud), but
 * the decoder's inner loops set the write rate: they are worth the bytes. */
#pragma GCC optimize("O2")

#define WMASK (INFLATE_WINDOW_SIZE - 1u)

enum {
    S_HEADER,  /* zlib header */
    S_BLOCK,   /* block header */
    S_STORED,  /* stored block LEN and NLEN */
    S_COPY,    /* stored block bytes */
    S_DYNAMIC, /* HLIT, HDIST, HCLEN */
    S_CLEN,    /* code length code lengths */
    S_LENGTHS, /* literal/length and distance code lengths */
    S_SYMBOL,  /* literal/length symbol (with a length's extra bits) */
    S_DIST,    /* distance symbol */
    S_DEXTRA,  /* distance extra bits, then the copy */
    S_TRAILER, /* Adler-32 */
    S_DONE,
    S_ERROR
};

#define NEED (-2) /* internal: not enough bits yet */
#define BAD (-1)  /* internal: invalid code */

static const uint8_t clen_order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                       11, 4,  12, 3, 13, 2, 14, 1, 15};

static void fill(struct inflater *s) {
    while (s->bitcnt <= 24 && s->avail) {
        s->bitbuf |= (uint32_t)*s->in++ << s->bitcnt;
        s->bitcnt += 8;
        s->avail--;
    }
}

static int need(struct inflater *s, uint32_t n) {
    fill(s);
    return s->bitcnt >= n;
}

/* Takes n <= 16 bits; they must be in the buffer. */
static uint32_t bits(struct inflater *s, uint32_t n) {
    uint32_t v = s->bitbuf & ((1u << n) - 1u);
    s->bitbuf >>= n;
    s->bitcnt -= n;
    return v;
}

static uint32_t mod65521(uint32_t x) {
    /* 65536 = 15 (mod 65521) */
    x = (x & 0xffffu) + (x >> 16) * 15u;
    x = (x & 0xffffu) + (x >> 16) * 15u;
    return x >= 65521u ? x - 65521u : x;
}

static void flush(struct inflater *s) {
    uint32_t n = s->total - s->flushed;
    const uint8_t *start = s->window + (s->flushed & WMASK);
    const uint8_t *p = start;
    uint32_t a = s->adler & 0xffffu, b = s->adler >> 16;
    if (!n)
        return;
    s->flushed = s->total;
    while (n) {
        /* 5552 bytes keep b below 2^32 between reductions. */
        uint32_t k = n < 5552u ? n : 5552u;
        n -= k;
        while (k--) {
            a += *p++;
            b += a;
        }
        a = mod65521(a);
        b = mod65521(b);
    }
    s->adler = (b << 16) | a;
    s->output(s->context, start, (uint32_t)(p - start));
}

static void put(struct inflater *s, uint32_t byte) {
    s->window[s->total & WMASK] = (uint8_t)byte;
    if (!(++s->total & WMASK))
        flush(s);
}

/* Builds a canonical code from n code lengths. Like zlib, accepts only
 * complete codes, an empty code, or (unless it is the code length code) a
 * single code of one bit. Returns nonzero if the lengths are invalid. */
static int build(uint16_t *h, const uint8_t *lengths, uint32_t n, int clen) {
    uint16_t offset[16];
    uint32_t i, total = 0;
    int32_t left = 1;
    for (i = 0; i < 16; i++)
        h[i] = 0;
    for (i = 0; i < n; i++)
        h[lengths[i]]++;
    for (i = 1; i < 16; i++) {
        offset[i] = (uint16_t)total;
        total += h[i];
        left = (left << 1) - h[i];
        if (left < 0)
            return 1;
    }
    if (left && total && (clen || total != 1 || h[1] != 1))
        return 1;
    h[0] = (uint16_t)total;
    for (i = 0; i < n; i++)
        if (lengths[i])
            h[16 + offset[lengths[i]]++] = (uint16_t)i;
    return 0;
}

/* Decodes one symbol without consuming it; *used is set to its code length.
 * Returns the symbol, NEED or BAD. */
static int decode(struct inflater *s, const uint16_t *h, uint32_t *used) {
    uint32_t buf, code = 0, first = 0, index = 0, len;
    fill(s);
    buf = s->bitbuf;
    for (len = 1; len < 16; len++) {
        uint32_t n = h[len];
        if (len > s->bitcnt)
            return NEED;
        code |= buf & 1u;
        buf >>= 1;
        if (code - first < n) {
            *used = len;
            return h[16 + index + code - first];
        }
        index += n;
        if (index >= h[0])
            return BAD; /* no longer codes: the code is incomplete here */
        first = (first + n) << 1;
        code <<= 1;
    }
    return BAD;
}

static void end_block(struct inflater *s) {
    s->state = S_BLOCK;
    if (s->last) {
        bits(s, s->bitcnt & 7u);
        s->state = S_TRAILER;
    }
}

static int run(struct inflater *s) {
    uint32_t v, used, extra, i;
    int sym;
    for (;;) {
        switch (s->state) {
        case S_HEADER:
            if (!need(s, 16))
                return INFLATE_NEED_INPUT;
            v = bits(s, 16);
            /* CMF is the low byte, FLG the high one. CM = 8, window <= 32K,
             * no preset dictionary, CMF * 256 + FLG a multiple of 31. */
            if ((v & 0x0fu) != 8u || (v & 0x80u) || (v & 0x2000u))
                return BAD;
            v = ((v & 0xffu) << 8) | (v >> 8);
            while (v > 31u)
                v = (v & 31u) + (v >> 5); /* 32 = 1 (mod 31) */
            if (v != 31u)
                return BAD;
            s->state = S_BLOCK;
            break;
        case S_BLOCK:
            if (!need(s, 3))
                return INFLATE_NEED_INPUT;
            v = bits(s, 3);
            s->last = v & 1u;
            v >>= 1;
            if (v == 0) {
                bits(s, s->bitcnt & 7u);
                s->state = S_STORED;
            } else if (v == 1) {
                for (i = 0; i < 288 + 32; i++)
                    s->lengths[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : i < 288 ? 8 : 5;
                build(s->lit, s->lengths, 288, 0);
                build(s->dist, s->lengths + 288, 32, 0);
                s->state = S_SYMBOL;
            } else if (v == 2) {
                s->state = S_DYNAMIC;
            } else {
                return BAD;
            }
            break;
        case S_STORED:
            /* On a byte boundary, so the buffer fills to 32 bits. */
            if (!need(s, 32))
                return INFLATE_NEED_INPUT;
            v = bits(s, 16);
            if ((v ^ bits(s, 16)) != 0xffffu)
                return BAD;
            s->count = v;
            s->state = S_COPY;
            break;
        case S_COPY:
            while (s->count) {
                if (s->bitcnt) {
                    v = bits(s, 8);
                } else if (s->avail) {
                    v = *s->in++;
                    s->avail--;
                } else {
                    return INFLATE_NEED_INPUT;
                }
                put(s, v);
                s->count--;
            }
            end_block(s);
            break;
        case S_DYNAMIC:
            if (!need(s, 14))
                return INFLATE_NEED_INPUT;
            v = bits(s, 14);
            s->nlit = (v & 31u) + 257u;
            s->ndist = ((v >> 5) & 31u) + 1u;
            s->nclen = (v >> 10) + 4u;
            if (s->nlit > 286u || s->ndist > 30u)
                return BAD;
            for (i = 0; i < 19; i++)
                s->lengths[i] = 0;
            s->count = 0;
            s->state = S_CLEN;
            break;
        case S_CLEN:
            while (s->count < s->nclen) {
                if (!need(s, 3))
                    return INFLATE_NEED_INPUT;
                s->lengths[clen_order[s->count++]] = (uint8_t)bits(s, 3);
            }
            /* The code length code lives in the distance table for now. */
            if (build(s->dist, s->lengths, 19, 1))
                return BAD;
            s->count = 0;
            s->state = S_LENGTHS;
            break;
        case S_LENGTHS:
            while (s->count < s->nlit + s->ndist) {
                sym = decode(s, s->dist, &used);
                if (sym < 0)
                    return sym == NEED ? INFLATE_NEED_INPUT : BAD;
                if (sym < 16) {
                    bits(s, used);
                    s->lengths[s->count++] = (uint8_t)sym;
                    continue;
                }
                /* 16: copy the previous length 3-6 times; 17: 3-10 zeros;
                 * 18: 11-138 zeros. */
                extra = sym == 16 ? 2u : sym == 17 ? 3u : 7u;
                if (s->bitcnt < used + extra)
                    return INFLATE_NEED_INPUT;
                bits(s, used);
                i = bits(s, extra) + (sym == 18 ? 11u : 3u);
                v = 0;
                if (sym == 16) {
                    if (!s->count)
                        return BAD;
                    v = s->lengths[s->count - 1];
                }
                if (s->count + i > s->nlit + s->ndist)
                    return BAD;
                while (i--)
                    s->lengths[s->count++] = (uint8_t)v;
            }
            if (!s->lengths[256]) /* no end-of-block code */
                return BAD;
            if (build(s->lit, s->lengths, s->nlit, 0) ||
                build(s->dist, s->lengths + s->nlit, s->ndist, 0))
                return BAD;
            s->state = S_SYMBOL;
            break;
        case S_SYMBOL:
            sym = decode(s, s->lit, &used);
            if (sym < 0)
                return sym == NEED ? INFLATE_NEED_INPUT : BAD;
            if (sym < 256) {
                bits(s, used);
                put(s, (uint32_t)sym);
                break;
            }
            if (sym == 256) {
                bits(s, used);
                end_block(s);
                break;
            }
            sym -= 257;
            if (sym > 28)
                return BAD;
            /* Lengths 3..10 have no extra bits, then every 4 codes the
             * extra bits grow by one; code 28 is 258. */
            if (sym < 8) {
                extra = 0;
                v = 3u + (uint32_t)sym;
            } else if (sym == 28) {
                extra = 0;
                v = 258;
            } else {
                extra = ((uint32_t)sym >> 2) - 1u;
                v = ((4u + ((uint32_t)sym & 3u)) << extra) + 3u;
            }
            if (s->bitcnt < used + extra)
                return INFLATE_NEED_INPUT;
            bits(s, used);
            s->length = v + bits(s, extra);
            s->state = S_DIST;
            break;
        case S_DIST:
            sym = decode(s, s->dist, &used);
            if (sym < 0)
                return sym == NEED ? INFLATE_NEED_INPUT : BAD;
            if (sym > 29)
                return BAD;
            bits(s, used);
            /* Distances 1..4 have no extra bits, then every 2 codes the
             * extra bits grow by one. */
            if (sym < 4) {
                s->extra = 0;
                s->distance = 1u + (uint32_t)sym;
            } else {
                s->extra = ((uint32_t)sym >> 1) - 1u;
                s->distance = ((2u + ((uint32_t)sym & 1u)) << s->extra) + 1u;
            }
            s->state = S_DEXTRA;
            break;
        case S_DEXTRA:
            if (!need(s, s->extra))
                return INFLATE_NEED_INPUT;
            v = s->distance + bits(s, s->extra);
            if (v > s->total)
                return BAD;
            for (i = s->length; i; i--)
                put(s, s->window[(s->total - v) & WMASK]);
            s->state = S_SYMBOL;
            break;
        case S_TRAILER:
            /* On a byte boundary: the Adler-32, most significant byte first. */
            if (!need(s, 32))
                return INFLATE_NEED_INPUT;
            v = 0;
            for (i = 0; i < 4; i++)
                v = (v << 8) | bits(s, 8);
            flush(s);
            if (v != s->adler)
                return BAD;
            s->state = S_DONE;
            break;
        case S_DONE:
            return INFLATE_DONE;
        default:
            return INFLATE_ERROR;
        }
    }
}

void inflate_init(struct inflater *s) {
    s->bitbuf = 0;
    s->bitcnt = 0;
    s->state = S_HEADER;
    s->total = 0;
    s->flushed = 0;
    s->adler = 1;
}

int inflate_feed(struct inflater *s, const uint8_t *input, uint32_t length,
                 inflate_output_fn output, void *context) {
    int status;
    s->in = input;
    s->avail = length;
    s->output = output;
    s->context = context;
    status = run(s);
    if (status < INFLATE_NEED_INPUT) {
        status = INFLATE_ERROR;
        s->state = S_ERROR;
    }
    flush(s);
    s->in = 0;
    s->avail = 0;
    return status;
}

uint32_t inflate_total_out(const struct inflater *s) {
    return s->total;
}
