/* hello: a RAM program for `esptool load_ram` (code in IRAM, data in DRAM,
 * no flash). It greets through the ROM's ets_printf, counts, says one line
 * byte by byte through uart_tx_one_char, then prints a tick line about once
 * a second forever. It runs on the ROM loader's stack. */
#include "rom.h"

#define GREETING_COUNT 3

static uint32_t ticks;

static void say(const char *text) {
    while (*text != '\0') {
        uart_tx_one_char((uint8_t)*text++);
    }
}

void program_entry(void) {
    zero_bss();
    for (uint32_t i = 1; i <= GREETING_COUNT; i++) {
        ets_printf("Hello from the virtual ESP8266\n");
        ets_printf("count %d of %d\n", (int)i, GREETING_COUNT);
    }
    say("uart_tx_one_char says hi\n");
    for (;;) {
        ets_delay_us(1000000);
        ticks++;
        ets_printf("tick %u\n", (unsigned)ticks);
    }
}
