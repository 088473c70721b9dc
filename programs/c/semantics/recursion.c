/* Recursion: deep call chains with the CALL0 ABI's stack frames and saved
 * registers: Ackermann, Fibonacci, mutual recursion, Towers of Hanoi,
 * recursive GCD and a recursive descent expression evaluator. */
#include "prog.h"

static volatile const uint32_t fib_limit = 22;
static volatile const char expression[] = "(3+4*(2-7))*12-(81/(1+2))%5+2*(((1)))";

static uint32_t ackermann(uint32_t m, uint32_t n) {
    if (m == 0) {
        return n + 1;
    }
    if (n == 0) {
        return ackermann(m - 1, 1);
    }
    return ackermann(m - 1, ackermann(m, n - 1));
}

static uint32_t fib(uint32_t n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static uint32_t is_odd(uint32_t n);
static uint32_t is_even(uint32_t n) { return n == 0 ? 1 : is_odd(n - 1); }
static uint32_t is_odd(uint32_t n) { return n == 0 ? 0 : is_even(n - 1); }

static uint32_t hanoi(uint32_t disks, uint32_t from, uint32_t to, uint32_t via, uint32_t *trace) {
    if (disks == 0) {
        return 0;
    }
    uint32_t moves = hanoi(disks - 1, from, via, to, trace);
    *trace = (*trace * 7 + from * 3 + to) & 0xffffff;
    moves += 1;
    return moves + hanoi(disks - 1, via, to, from, trace);
}

static uint32_t gcd(uint32_t a, uint32_t b) { return b == 0 ? a : gcd(b, a % b); }

struct parser {
    const volatile char *at;
};

static int32_t parse_sum(struct parser *p);

static int32_t parse_atom(struct parser *p) {
    if (*p->at == '(') {
        p->at++;
        int32_t value = parse_sum(p);
        p->at++; /* ')' */
        return value;
    }
    int32_t value = 0;
    while (*p->at >= '0' && *p->at <= '9') {
        value = value * 10 + (*p->at - '0');
        p->at++;
    }
    return value;
}

static int32_t parse_product(struct parser *p) {
    int32_t value = parse_atom(p);
    for (;;) {
        char op = *p->at;
        if (op != '*' && op != '/' && op != '%') {
            return value;
        }
        p->at++;
        int32_t rhs = parse_atom(p);
        if (op == '*') {
            value *= rhs;
        } else if (op == '/') {
            value /= rhs;
        } else {
            value %= rhs;
        }
    }
}

static int32_t parse_sum(struct parser *p) {
    int32_t value = parse_product(p);
    for (;;) {
        char op = *p->at;
        if (op != '+' && op != '-') {
            return value;
        }
        p->at++;
        int32_t rhs = parse_product(p);
        value = op == '+' ? value + rhs : value - rhs;
    }
}

void run(struct out *o) {
    for (uint32_t m = 0; m <= 2; m++) {
        for (uint32_t n = 0; n <= 4; n++) {
            out_str(o, "ack ");
            out_u32_dec(o, m);
            out_char(o, ' ');
            out_u32_dec(o, n);
            out_char(o, ' ');
            out_u32_dec(o, ackermann(m, n));
            out_char(o, '\n');
        }
    }
    out_kv32(o, "ack 3 3", ackermann(3, 3));
    for (uint32_t n = 0; n <= fib_limit; n += 2) {
        out_str(o, "fib ");
        out_u32_dec(o, n);
        out_char(o, ' ');
        out_u32_dec(o, fib(n));
        out_char(o, '\n');
    }
    out_kv32(o, "even 301", is_even(301 + fib_limit % 2));
    out_kv32(o, "odd 1001", is_odd(1001 + fib_limit % 2));
    uint32_t trace = 0;
    out_kv32(o, "hanoi", hanoi(10, 1, 3, 2, &trace));
    out_kv32(o, "hanoi-trace", trace);
    out_kv32(o, "gcd", gcd(1071u * fib_limit, 462u * fib_limit));
    out_kv32(o, "gcd-fib", gcd(fib(fib_limit), fib(fib_limit - 1)));
    struct parser p = {expression};
    out_str(o, "expression ");
    out_i32_dec(o, parse_sum(&p));
    out_char(o, '\n');
}
