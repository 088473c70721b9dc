/* The host driver: runs the program and prints its text on stdout. */
#include <stdio.h>

#include "prog.h"

static struct out program_output;

int main(void) {
    run(&program_output);
    fwrite(program_output.text, 1, program_output.len, stdout);
    if (program_output.overflowed) {
        fprintf(stderr, "output buffer overflowed (%d bytes)\n", OUT_CAPACITY);
        return 1;
    }
    return 0;
}
