/* Raw DEFLATE compressor, written for this stub from RFC 1951.
 *
 * LZ77: every position's first three bytes are hashed into `head`, which
 * holds the latest position with that hash; `prev` links each position in
 * the window to the previous one with the same hash. The longest match
 * along a few links wins; with lazy evaluation a match is put off by one
 * byte when the next position has a longer one. Matches and literals are
 * kept as tokens (with their symbol counts) until the token buffer is full
 * or the input ends, and then written as one deflate block.
 *
 * Huffman: code lengths come from the symbol counts with Moffat and
 * Katajainen's in-place algorithm over the counts sorted in ascending
 * order, then are limited to 15 bits (7 for the code length code) by moving
 * the deepest codes up and splitting shorter ones, which keeps the code
 * complete. A block is written with these codes or the fixed ones, whichever
 * is shorter. Every code gets at least two symbols: some inflaters refuse
 * a code with a single one.
 *
 * Length and distance symbols are computed from the position of the top
 * bit (NSAU on the lx106), not looked up. Nothing here divides, so no
 * libgcc, and nothing calls the ROM. */
#include "deflate.h"

#define MIN_MATCH 3u
#define MAX_MATCH 258u
#define WINDOW_MASK (DEFLATE_WINDOW_SIZE - 1u)
#define HASH_SIZE (1u << DEFLATE_HASH_BITS)
#define END_OF_BLOCK 256u
#define FIRST_LENGTH_CODE 257u
#define MAX_CODE_BITS 15u
#define MAX_CLEN_BITS 7u
/* How many earlier positions with the same hash are tried. */
#define MAX_CHAIN 8u
/* A match this long is taken without looking further. */
#define NICE_MATCH 64u
/* A match this long is not put off for one at the next byte. */
#define LAZY_LIMIT 32u
/* A 3-byte match this far back costs more bits than three literals. */
#define FAR_MIN_MATCH 2048u
/* The most a token takes in the buffer: a control byte and a match. */
#define MAX_TOKEN_BYTES 4u

static const uint8_t clen_order[DEFLATE_CLEN_CODES] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                                      11, 4,  12, 3, 13, 2, 14, 1, 15};

static uint32_t top_bit(uint32_t value) {
    return 31u - (uint32_t)__builtin_clz(value);
}

/* The length symbol (0..28, add 257) of a match length - 3, and its extra bits. */
static uint32_t length_symbol(uint32_t length, uint32_t *extra_bits) {
    uint32_t top;
    if (length < 8u) {
        *extra_bits = 0;
        return length;
    }
    if (length == MAX_MATCH - MIN_MATCH) {
        *extra_bits = 0;
        return 28u;
    }
    top = top_bit(length);
    *extra_bits = top - 2u;
    return 4u * (top - 1u) + ((length >> (top - 2u)) & 3u);
}

/* The distance symbol (0..29) of a distance - 1, and its extra bits. */
static uint32_t distance_symbol(uint32_t distance, uint32_t *extra_bits) {
    uint32_t top;
    if (distance < 4u) {
        *extra_bits = 0;
        return distance;
    }
    top = top_bit(distance);
    *extra_bits = top - 1u;
    return 2u * top + ((distance >> (top - 1u)) & 1u);
}

/* ---- Output ---- */

/* The hot helpers are inlined whatever -Os thinks: a call costs as much as their work. */
#define HOT static inline __attribute__((always_inline))

/* Appends count <= 16 bits, storing whole 16-bit halves (fewer than 16 bits stay in
 * `bits`); bytes past the capacity are counted, not stored. */
HOT void put_bits(struct deflate_output *o, uint32_t value, uint32_t count) {
    o->bits |= value << o->count;
    o->count += count;
    if (o->count >= 16u) {
        uint32_t at = o->len;
        if (at + 2u <= o->cap) {
            o->out[at] = (uint8_t)o->bits;
            o->out[at + 1u] = (uint8_t)(o->bits >> 8);
        }
        o->len = at + 2u;
        o->bits >>= 16;
        o->count -= 16u;
    }
}

/* put_bits where speed does not matter. */
static void write_bits(struct deflater *d, uint32_t value, uint32_t count) {
    put_bits(&d->output, value, count);
}

/* ---- Huffman codes ---- */

/* Sorts keys in ascending order (Shell sort: short, and quick enough for 286 keys). */
static void sort_keys(uint32_t *keys, uint32_t count) {
    static const uint8_t gaps[] = {121, 40, 13, 4, 1};
    for (uint32_t g = 0; g < sizeof gaps; g++) {
        uint32_t gap = gaps[g];
        for (uint32_t i = gap; i < count; i++) {
            uint32_t key = keys[i];
            uint32_t j = i;
            while (j >= gap && keys[j - gap] > key) {
                keys[j] = keys[j - gap];
                j -= gap;
            }
            keys[j] = key;
        }
    }
}

/* Turns weights sorted in ascending order (count >= 2) into the code lengths of a
 * minimum-redundancy code, in place: the longest first (Moffat and Katajainen 1995). */
static void minimum_redundancy(uint32_t *a, uint32_t count) {
    uint32_t root = 0, leaf = 2, next;
    int32_t node, slot;
    uint32_t available, used, depth;
    /* Each internal node in turn takes the two lightest of the leaves and earlier nodes;
     * a node's slot then holds its parent's index. */
    a[0] += a[1];
    for (next = 1; next < count - 1u; next++) {
        if (leaf >= count || a[root] < a[leaf]) {
            a[next] = a[root];
            a[root++] = next;
        } else {
            a[next] = a[leaf++];
        }
        if (leaf >= count || (root < next && a[root] < a[leaf])) {
            a[next] += a[root];
            a[root++] = next;
        } else {
            a[next] += a[leaf++];
        }
    }
    /* Internal nodes' depths, from the root down. */
    a[count - 2u] = 0;
    for (node = (int32_t)count - 3; node >= 0; node--) {
        a[node] = a[a[node]] + 1u;
    }
    /* Leaves' depths: at each depth, the slots not taken by internal nodes are leaves. */
    available = 1;
    used = 0;
    depth = 0;
    node = (int32_t)count - 2;
    slot = (int32_t)count - 1;
    while (available > 0) {
        while (node >= 0 && a[node] == depth) {
            used++;
            node--;
        }
        while (available > used) {
            a[slot--] = depth;
            available--;
        }
        available = 2u * used;
        depth++;
        used = 0;
    }
}

/* Code lengths of at most max_bits for the symbols' counts; unused symbols get 0. */
static void build_lengths(struct deflater *d, const uint16_t *freq, uint32_t symbols,
                          uint8_t *lengths, uint32_t max_bits) {
    uint32_t *work = d->work;
    uint32_t used = 0, kraft = 0, at = 0;
    uint32_t per_length[MAX_CODE_BITS + 1] = {0};
    for (uint32_t i = 0; i < symbols; i++) {
        lengths[i] = 0;
        if (freq[i] != 0) {
            work[used++] = (uint32_t)freq[i] << 9 | i;
        }
    }
    for (uint32_t i = 0; used < 2u; i++) {
        if (freq[i] == 0) {
            work[used++] = i;
        }
    }
    sort_keys(work, used);
    for (uint32_t i = 0; i < used; i++) {
        d->symbols[i] = (uint16_t)(work[i] & 0x1FFu);
        work[i] >>= 9;
    }
    minimum_redundancy(work, used);
    for (uint32_t i = 0; i < used; i++) {
        uint32_t length = work[i] < max_bits ? work[i] : max_bits;
        per_length[length]++;
        kraft += 1u << (max_bits - length);
    }
    /* Clamping oversubscribed the code: each step drops a deepest code and splits a
     * shorter one into two a bit longer, one unit of 2^-max_bits less each time. */
    while (kraft > 1u << max_bits) {
        per_length[max_bits]--;
        for (uint32_t length = max_bits - 1u; length > 0; length--) {
            if (per_length[length] != 0) {
                per_length[length]--;
                per_length[length + 1u] += 2u;
                break;
            }
        }
        kraft--;
    }
    /* The rarest symbols get the longest codes. */
    for (uint32_t length = max_bits; length > 0; length--) {
        for (uint32_t n = per_length[length]; n > 0; n--) {
            lengths[d->symbols[at++]] = (uint8_t)length;
        }
    }
}

/* Canonical codes for the lengths, bit-reversed as the stream sends them. */
static void build_codes(const uint8_t *lengths, uint32_t symbols, uint16_t *codes) {
    uint32_t per_length[MAX_CODE_BITS + 1] = {0};
    uint32_t next[MAX_CODE_BITS + 1];
    uint32_t code = 0;
    for (uint32_t i = 0; i < symbols; i++) {
        per_length[lengths[i]]++;
    }
    per_length[0] = 0;
    for (uint32_t bits = 1; bits <= MAX_CODE_BITS; bits++) {
        code = (code + per_length[bits - 1u]) << 1;
        next[bits] = code;
    }
    for (uint32_t i = 0; i < symbols; i++) {
        uint32_t length = lengths[i];
        uint32_t value, reversed = 0;
        if (length == 0) {
            continue;
        }
        value = next[length]++;
        for (uint32_t bit = 0; bit < length; bit++) {
            reversed = reversed << 1 | (value & 1u);
            value >>= 1;
        }
        codes[i] = (uint16_t)reversed;
    }
}

static uint32_t fixed_lit_length(uint32_t symbol) {
    return symbol < 144u ? 8u : symbol < 256u ? 9u : symbol < 280u ? 7u : 8u;
}

/* ---- Blocks ---- */

static uint32_t clen_extra_bits(uint32_t symbol) {
    return symbol == 16u ? 2u : symbol == 17u ? 3u : symbol == 18u ? 7u : 0u;
}

static void add_run(struct deflater *d, uint32_t *count, uint32_t symbol, uint32_t extra) {
    d->runs[(*count)++] = (uint16_t)(symbol | extra << 5);
    d->clen_freq[symbol]++;
}

/* Run-length codes the literal/length and distance code lengths as one sequence;
 * returns how many runs. */
static uint32_t code_length_runs(struct deflater *d, uint32_t lit_count, uint32_t dist_count) {
    uint32_t total = lit_count + dist_count;
    uint32_t count = 0, i = 0;
    for (uint32_t s = 0; s < DEFLATE_CLEN_CODES; s++) {
        d->clen_freq[s] = 0;
    }
    while (i < total) {
        uint32_t length = i < lit_count ? d->lit_len[i] : d->dist_len[i - lit_count];
        uint32_t run = 1;
        while (i + run < total &&
               (i + run < lit_count ? d->lit_len[i + run] : d->dist_len[i + run - lit_count]) ==
                   length) {
            run++;
        }
        i += run;
        if (length == 0) {
            while (run >= 11u) {
                uint32_t take = run < 138u ? run : 138u;
                add_run(d, &count, 18u, take - 11u);
                run -= take;
            }
            if (run >= 3u) {
                add_run(d, &count, 17u, run - 3u);
                run = 0;
            }
        } else {
            add_run(d, &count, length, 0);
            run--;
            while (run >= 3u) {
                uint32_t take = run < 6u ? run : 6u;
                add_run(d, &count, 16u, take - 3u);
                run -= take;
            }
        }
        for (; run > 0; run--) {
            add_run(d, &count, length, 0);
        }
    }
    return count;
}

/* Writes the pending tokens with the codes in lit_code/dist_code. */
static void write_tokens(struct deflater *d) {
    struct deflate_output o = d->output;
    const uint8_t *token = d->tokens;
    const uint8_t *end = d->tokens + d->token_len;
    while (token < end && o.len <= o.cap) {
        uint32_t control = *token++;
        for (uint32_t n = 0; n < 8u && token < end; n++, control >>= 1) {
            if (control & 1u) {
                uint32_t length = token[0];
                uint32_t distance = token[1] | (uint32_t)token[2] << 8;
                uint32_t extra;
                uint32_t symbol = FIRST_LENGTH_CODE + length_symbol(length, &extra);
                token += 3;
                put_bits(&o, d->lit_code[symbol], d->lit_len[symbol]);
                put_bits(&o, length & ((1u << extra) - 1u), extra);
                symbol = distance_symbol(distance, &extra);
                put_bits(&o, d->dist_code[symbol], d->dist_len[symbol]);
                put_bits(&o, distance & ((1u << extra) - 1u), extra);
            } else {
                uint32_t literal = *token++;
                put_bits(&o, d->lit_code[literal], d->lit_len[literal]);
            }
        }
    }
    d->output = o;
}

/* Writes the pending tokens as one block, with its own codes or the fixed ones. */
static void write_block(struct deflater *d, uint32_t final) {
    uint32_t lit_count = DEFLATE_LIT_CODES, dist_count = DEFLATE_DIST_CODES;
    uint32_t clen_count = DEFLATE_CLEN_CODES;
    uint32_t runs, dynamic_bits, fixed_bits = 0;
    d->lit_freq[END_OF_BLOCK] = 1;
    build_lengths(d, d->lit_freq, DEFLATE_LIT_CODES, d->lit_len, MAX_CODE_BITS);
    build_lengths(d, d->dist_freq, DEFLATE_DIST_CODES, d->dist_len, MAX_CODE_BITS);
    while (d->lit_len[lit_count - 1u] == 0) {
        lit_count--;
    }
    while (d->dist_len[dist_count - 1u] == 0) {
        dist_count--;
    }
    runs = code_length_runs(d, lit_count, dist_count);
    build_lengths(d, d->clen_freq, DEFLATE_CLEN_CODES, d->clen_len, MAX_CLEN_BITS);
    while (clen_count > 4u && d->clen_len[clen_order[clen_count - 1u]] == 0) {
        clen_count--;
    }

    /* Both codings' sizes without the extra bits, which they share. */
    dynamic_bits = 14u + 3u * clen_count;
    for (uint32_t i = 0; i < DEFLATE_CLEN_CODES; i++) {
        dynamic_bits += d->clen_freq[i] * (d->clen_len[i] + clen_extra_bits(i));
    }
    for (uint32_t i = 0; i < DEFLATE_LIT_CODES; i++) {
        dynamic_bits += d->lit_freq[i] * d->lit_len[i];
        fixed_bits += d->lit_freq[i] * fixed_lit_length(i);
    }
    for (uint32_t i = 0; i < DEFLATE_DIST_CODES; i++) {
        dynamic_bits += d->dist_freq[i] * d->dist_len[i];
        fixed_bits += d->dist_freq[i] * 5u;
    }

    write_bits(d, final, 1);
    if (fixed_bits <= dynamic_bits) {
        write_bits(d, 1, 2);
        for (uint32_t i = 0; i < 288u; i++) {
            d->lit_len[i] = (uint8_t)fixed_lit_length(i);
        }
        for (uint32_t i = 0; i < 32u; i++) {
            d->dist_len[i] = 5;
        }
        build_codes(d->lit_len, 288, d->lit_code);
        build_codes(d->dist_len, 32, d->dist_code);
    } else {
        write_bits(d, 2, 2);
        write_bits(d, lit_count - FIRST_LENGTH_CODE, 5);
        write_bits(d, dist_count - 1u, 5);
        write_bits(d, clen_count - 4u, 4);
        for (uint32_t i = 0; i < clen_count; i++) {
            write_bits(d, d->clen_len[clen_order[i]], 3);
        }
        build_codes(d->clen_len, DEFLATE_CLEN_CODES, d->clen_code);
        for (uint32_t i = 0; i < runs; i++) {
            uint32_t symbol = d->runs[i] & 0x1Fu;
            write_bits(d, d->clen_code[symbol], d->clen_len[symbol]);
            write_bits(d, d->runs[i] >> 5, clen_extra_bits(symbol));
        }
        build_codes(d->lit_len, lit_count, d->lit_code);
        build_codes(d->dist_len, dist_count, d->dist_code);
    }
    write_tokens(d);
    write_bits(d, d->lit_code[END_OF_BLOCK], d->lit_len[END_OF_BLOCK]);

    d->token_len = 0;
    d->control_count = 0;
    for (uint32_t i = 0; i < DEFLATE_LIT_CODES; i++) {
        d->lit_freq[i] = 0;
    }
    for (uint32_t i = 0; i < DEFLATE_DIST_CODES; i++) {
        d->dist_freq[i] = 0;
    }
}

/* ---- Tokens ---- */

/* Starts a control byte every 8 tokens; returns the bit for the next token. */
HOT uint32_t next_token_bit(struct deflater *d) {
    uint32_t n = d->control_count;
    if (n == 0) {
        d->control_at = d->token_len++;
        d->tokens[d->control_at] = 0;
    }
    d->control_count = (n + 1u) & 7u;
    return 1u << n;
}

HOT void add_literal(struct deflater *d, uint32_t literal) {
    next_token_bit(d);
    d->tokens[d->token_len++] = (uint8_t)literal;
    d->lit_freq[literal]++;
}

static void add_match(struct deflater *d, uint32_t length, uint32_t distance) {
    uint32_t extra;
    /* The bit first: next_token_bit may start a new control byte. */
    uint32_t bit = next_token_bit(d);
    d->tokens[d->control_at] |= (uint8_t)bit;
    length -= MIN_MATCH;
    distance -= 1u;
    d->tokens[d->token_len] = (uint8_t)length;
    d->tokens[d->token_len + 1u] = (uint8_t)distance;
    d->tokens[d->token_len + 2u] = (uint8_t)(distance >> 8);
    d->token_len += 3u;
    d->lit_freq[FIRST_LENGTH_CODE + length_symbol(length, &extra)]++;
    d->dist_freq[distance_symbol(distance, &extra)]++;
}

/* ---- LZ77 ---- */

HOT uint32_t hash3(const uint8_t *bytes) {
    uint32_t word = bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16;
    return (word * 0x9E3779B1u) >> (32u - DEFLATE_HASH_BITS);
}

/* Enters position `at` (three bytes at least remain); returns the previous entry
 * with its hash, as position + 1 (0: none). */
HOT uint32_t insert(struct deflater *d, const uint8_t *input, uint32_t at) {
    uint32_t h = hash3(input + at);
    uint32_t candidate = d->head[h];
    d->prev[at & WINDOW_MASK] = (uint16_t)candidate;
    d->head[h] = (uint16_t)(at + 1u);
    return candidate;
}

/* The longest match for position `at` (at most `limit` bytes) along the chain from
 * `candidate` that beats `shorter`; returns its length (0: none) and sets *distance. */
static uint32_t longest_match(const struct deflater *d, const uint8_t *input, uint32_t at,
                              uint32_t limit, uint32_t candidate, uint32_t shorter,
                              uint32_t *distance) {
    const uint8_t *here = input + at;
    uint32_t best = shorter < MIN_MATCH - 1u ? MIN_MATCH - 1u : shorter;
    uint32_t found = 0;
    if (limit > MAX_MATCH) {
        limit = MAX_MATCH;
    }
    if (best >= limit) {
        return 0;
    }
    for (uint32_t chain = MAX_CHAIN; candidate != 0 && chain > 0; chain--) {
        uint32_t from = candidate - 1u;
        const uint8_t *there = input + from;
        /* Links of positions that left the window were overwritten by newer ones. */
        if (at - from >= DEFLATE_WINDOW_SIZE) {
            break;
        }
        if (there[best] == here[best] && there[0] == here[0] && there[1] == here[1]) {
            uint32_t length = 2;
            while (length < limit && there[length] == here[length]) {
                length++;
            }
            if (length > best && (length > MIN_MATCH || at - from <= FAR_MIN_MATCH)) {
                best = length;
                found = length;
                *distance = at - from;
                if (length >= NICE_MATCH || length == limit) {
                    break;
                }
            }
        }
        candidate = d->prev[from & WINDOW_MASK];
    }
    return found;
}

uint32_t deflate_block(struct deflater *d, const uint8_t *input, uint32_t length,
                       uint8_t *output, uint32_t capacity) {
    uint32_t at = 0;
    /* A match found at the previous position, not yet taken (0: none). */
    uint32_t pending_length = 0, pending_distance = 0;
    /* Whether the previous position is still to be written. */
    uint32_t pending = 0;
    if (length > DEFLATE_MAX_INPUT) {
        return 0;
    }
    d->output.out = output;
    d->output.len = 0;
    d->output.cap = capacity;
    d->output.bits = 0;
    d->output.count = 0;
    d->token_len = 0;
    d->control_count = 0;
    for (uint32_t i = 0; i < HASH_SIZE; i++) {
        d->head[i] = 0;
    }
    for (uint32_t i = 0; i < DEFLATE_LIT_CODES; i++) {
        d->lit_freq[i] = 0;
    }
    for (uint32_t i = 0; i < DEFLATE_DIST_CODES; i++) {
        d->dist_freq[i] = 0;
    }

    while (at < length) {
        uint32_t match = 0, distance = 0;
        if (length - at >= MIN_MATCH) {
            uint32_t candidate = insert(d, input, at);
            if (pending_length < LAZY_LIMIT) {
                match = longest_match(d, input, at, length - at, candidate, pending_length,
                                      &distance);
            }
        }
        if (pending_length != 0 && match == 0) {
            /* The previous position's match stands: take it, enter the positions it covers. */
            uint32_t end = at - 1u + pending_length;
            uint32_t last_hashed = length - MIN_MATCH;
            add_match(d, pending_length, pending_distance);
            for (at++; at < end && at <= last_hashed; at++) {
                insert(d, input, at);
            }
            at = end;
            pending = 0;
            pending_length = 0;
        } else {
            if (pending) {
                add_literal(d, input[at - 1u]);
            }
            pending = 1;
            pending_length = match;
            pending_distance = distance;
            at++;
        }
        if (d->token_len + MAX_TOKEN_BYTES > DEFLATE_TOKEN_BYTES) {
            write_block(d, 0);
            if (d->output.len > d->output.cap) {
                return 0;
            }
        }
    }
    if (pending) {
        add_literal(d, input[at - 1u]);
    }
    write_block(d, 1);
    /* The last bits, padded to a byte. */
    for (uint32_t left = d->output.count; left > 0; left = left > 8u ? left - 8u : 0) {
        if (d->output.len < d->output.cap) {
            d->output.out[d->output.len] = (uint8_t)d->output.bits;
        }
        d->output.len++;
        d->output.bits >>= 8;
    }
    return d->output.len <= d->output.cap ? d->output.len : 0;
}
