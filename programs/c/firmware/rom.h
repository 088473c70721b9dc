/* The ESP8266 mask ROM functions the firmware programs call (addresses in
 * ld/rom.ld). */
#ifndef ROM_H
#define ROM_H

#include <stdint.h>

int ets_printf(const char *format, ...);
/* Waits for room in UART0's TX FIFO, then queues the byte. */
int uart_tx_one_char(uint8_t byte);
void ets_delay_us(uint32_t microseconds);
/* Sets a UART's clock divider: the rate is the APB clock over it. */
void uart_div_modify(uint8_t uart_no, uint32_t divider);
/* Maps flash at 0x40200000 for code reads: (0, 0, 1) maps the first MiB, as SDK code does. */
void Cache_Read_Enable(uint8_t odd_even, uint8_t mb_count, uint8_t no_idea);

/* Zeroes .bss: nobody else does (the ROM loads only the image's segments). */
static inline void zero_bss(void) {
    extern uint32_t _bss_start[];
    extern uint32_t _bss_end[];
    for (uint32_t *word = _bss_start; word < _bss_end; word++) {
        *word = 0;
    }
}

#endif
