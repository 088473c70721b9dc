/* The lx106 driver: the ELF entry point. The caller sets a1 (stack) and a0
 * (return address); the program zeroes its .bss, runs, and returns the
 * output length in a2. The text stays in `program_output` for the caller. */
#include "prog.h"

struct out program_output;

extern uint32_t _bss_start[];
extern uint32_t _bss_end[];

uint32_t program_entry(void) {
    for (uint32_t *word = _bss_start; word < _bss_end; word++) {
        *word = 0;
    }
    run(&program_output);
    return program_output.len;
}
