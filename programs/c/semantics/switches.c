/* Switch statements: dense ones that compile to jump tables (a table of
 * addresses in .rodata, L32I + JX), sparse ones that compile to compare
 * trees, fall-through, and a switch-driven state machine. */
#include "prog.h"

static volatile const uint32_t selector_count = 40;
static volatile const char program_text[] = "a1b22c333;d4444 e+5-6*7/8!9?";

static uint32_t dense(uint32_t k, uint32_t x) {
    switch (k) {
    case 0: return x + 1;
    case 1: return x * 3;
    case 2: return x ^ 0x5a5a5a5a;
    case 3: return x << 4;
    case 4: return x >> 3;
    case 5: return ~x;
    case 6: return x - 77;
    case 7: return x * x;
    case 8: return x | 0x100;
    case 9: return x & 0xff00ff;
    case 10: return x + k * 1000;
    case 11: return 0xdead;
    case 12: return x / 7;
    case 13: return x % 13;
    case 14: return (x >> 16) | (x << 16);
    case 15: return x + 0x12345;
    default: return 0xffffffff;
    }
}

static int32_t sparse(int32_t k) {
    switch (k) {
    case -1000: return 1;
    case -5: return 2;
    case 0: return 3;
    case 7: return 4;
    case 64: return 5;
    case 1000: return 6;
    case 4096: return 7;
    case 100000: return 8;
    default: return -1;
    }
}

static uint32_t fallthrough(uint32_t k) {
    uint32_t acc = 0;
    switch (k & 7) {
    case 0: acc += 1; /* fall through */
    case 1: acc += 10; /* fall through */
    case 2: acc += 100; break;
    case 3: acc += 1000; /* fall through */
    case 4: acc += 10000; break;
    case 5:
    case 6: acc += 100000; /* fall through */
    default: acc += 1000000;
    }
    return acc;
}

/* Character classes through a dense switch on a signed char. */
static uint32_t tokenize(struct out *o) {
    uint32_t digits = 0, letters = 0, ops = 0, other = 0, number = 0, checksum = 0;
    for (uint32_t i = 0; program_text[i] != '\0'; i++) {
        signed char c = (signed char)program_text[i];
        switch (c) {
        case '0': case '1': case '2': case '3': case '4':
        case '5': case '6': case '7': case '8': case '9':
            digits++;
            number = number * 10 + (uint32_t)(c - '0');
            break;
        case 'a': case 'b': case 'c': case 'd': case 'e':
            letters++;
            checksum += number;
            number = 0;
            break;
        case '+': case '-': case '*': case '/':
            ops++;
            checksum ^= (uint32_t)c << (ops & 15);
            break;
        default:
            other++;
            checksum = checksum * 33 + (uint32_t)(uint8_t)c;
            break;
        }
    }
    out_kv32(o, "digits", digits);
    out_kv32(o, "letters", letters);
    out_kv32(o, "ops", ops);
    out_kv32(o, "other", other);
    return checksum + number;
}

enum state { IDLE, COUNTING, SKIPPING, DONE };

static uint32_t state_machine(uint32_t input) {
    enum state s = IDLE;
    uint32_t count = 0;
    for (uint32_t bit = 0; bit < 32 && s != DONE; bit++) {
        uint32_t b = (input >> bit) & 1;
        switch (s) {
        case IDLE: s = b ? COUNTING : IDLE; break;
        case COUNTING:
            count += 1;
            s = b ? COUNTING : SKIPPING;
            break;
        case SKIPPING: s = b ? COUNTING : (count > 6 ? DONE : IDLE); break;
        case DONE: break;
        }
    }
    return count | (uint32_t)s << 16;
}

void run(struct out *o) {
    for (uint32_t k = 0; k < selector_count; k++) {
        out_str(o, "dense ");
        out_u32_dec(o, k);
        out_char(o, ' ');
        out_hex32(o, dense(k % 18, k * 0x01010101u));
        out_str(o, " fall ");
        out_u32_dec(o, fallthrough(k));
        out_char(o, '\n');
    }
    static const int32_t keys[] = {-1000, -999, -5, 0, 1, 7, 63, 64, 65, 1000, 4096, 99999, 100000};
    for (uint32_t i = 0; i < ARRAY_LEN(keys); i++) {
        volatile int32_t key = keys[i];
        out_str(o, "sparse ");
        out_i32_dec(o, key);
        out_char(o, ' ');
        out_i32_dec(o, sparse(key));
        out_char(o, '\n');
    }
    out_kv32(o, "tokens", tokenize(o));
    for (uint32_t i = 0; i < 8; i++) {
        out_kv32(o, "machine", state_machine(0x9e3779b9u * (i + selector_count)));
    }
}
