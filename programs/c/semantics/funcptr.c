/* Indirect calls (CALLX0): tables of function pointers, callbacks with
 * context, function pointers stored in structs and returned from functions. */
#include "prog.h"

typedef uint32_t (*unary_fn)(uint32_t);
typedef uint32_t (*binary_fn)(uint32_t, uint32_t);

static uint32_t add(uint32_t a, uint32_t b) { return a + b; }
static uint32_t sub(uint32_t a, uint32_t b) { return a - b; }
static uint32_t mul(uint32_t a, uint32_t b) { return a * b; }
static uint32_t divide(uint32_t a, uint32_t b) { return b == 0 ? 0 : a / b; }
static uint32_t xor_fn(uint32_t a, uint32_t b) { return a ^ b; }
static uint32_t max_fn(uint32_t a, uint32_t b) { return a > b ? a : b; }

static binary_fn const operations[] = {add, sub, mul, divide, xor_fn, max_fn};
static const char *const operation_names[] = {"add", "sub", "mul", "div", "xor", "max"};

static uint32_t twice(uint32_t x) { return x * 2; }
static uint32_t square(uint32_t x) { return x * x; }
static uint32_t negate(uint32_t x) { return 0u - x; }

static volatile const uint32_t inputs[] = {7, 1000, 0xffff0000u, 3};
static volatile uint32_t which;

static uint32_t fold(const uint32_t *values, uint32_t count, binary_fn op, uint32_t init) {
    uint32_t acc = init;
    for (uint32_t i = 0; i < count; i++) {
        acc = op(acc, values[i]);
    }
    return acc;
}

static uint32_t apply_n(unary_fn f, uint32_t x, uint32_t n) {
    while (n-- > 0) {
        x = f(x);
    }
    return x;
}

struct visitor {
    void (*visit)(struct visitor *self, uint32_t value);
    uint32_t sum;
    uint32_t count;
};

static void visit_sum(struct visitor *self, uint32_t value) {
    self->sum += value;
    self->count++;
}

static void visit_weighted(struct visitor *self, uint32_t value) {
    self->count++;
    self->sum += value * self->count;
}

static unary_fn choose(uint32_t k) {
    switch (k % 3) {
    case 0: return twice;
    case 1: return square;
    default: return negate;
    }
}

void run(struct out *o) {
    uint32_t values[ARRAY_LEN(inputs)];
    for (uint32_t i = 0; i < ARRAY_LEN(inputs); i++) {
        values[i] = inputs[i];
    }
    for (uint32_t op = 0; op < ARRAY_LEN(operations); op++) {
        out_str(o, operation_names[op]);
        for (uint32_t i = 0; i < ARRAY_LEN(values); i++) {
            out_char(o, ' ');
            out_hex32(o, operations[op](values[i], values[(i + 1) % ARRAY_LEN(values)]));
        }
        out_str(o, " fold ");
        out_hex32(o, fold(values, ARRAY_LEN(values), operations[op], 1));
        out_char(o, '\n');
    }
    for (uint32_t k = 0; k < 6; k++) {
        which = k;
        out_kv32(o, "apply", apply_n(choose(which), values[0] + k, 3 + k));
    }
    struct visitor visitors[2] = {{visit_sum, 0, 0}, {visit_weighted, 0, 0}};
    for (uint32_t v = 0; v < 2; v++) {
        for (uint32_t i = 0; i < 20; i++) {
            visitors[v].visit(&visitors[v], i * values[0]);
        }
        out_kv32(o, "visitor-sum", visitors[v].sum);
        out_kv32(o, "visitor-count", visitors[v].count);
    }
}
