/* blink: bare-metal firmware booted from flash by the ROM (no SDK). The
 * ROM loads the image's IRAM and DRAM segments and calls program_entry,
 * which maps flash with Cache_Read_Enable and jumps to blink_forever, whose
 * code runs from flash through the cache (.irom0.text). It prints a line
 * with the ROM's ets_printf, then toggles GPIO2 every half second and reports
 * each toggle by writing UART0's TX FIFO directly, feeding the hardware
 * watchdog as it waits. */
#include "chip.h"
#include "rom.h"

#define REG(address) (*(volatile uint32_t *)(address))

#define UART_TXFIFO_COUNT(status) \
    (((status) >> UART_STATUS_TX_COUNT_SHIFT) & UART_STATUS_TX_COUNT_MASK)

#define GPIO2_BIT (1u << 2)

#define HALF_PERIOD_MS 500u

#define IROM __attribute__((section(".irom0.text")))

IROM static void uart0_write(const char *text) {
    while (*text != '\0') {
        while (UART_TXFIFO_COUNT(REG(UART0_STATUS)) >= UART_FIFO_LEN - 2) {
        }
        REG(UART0_FIFO) = (uint8_t)*text++;
    }
}

IROM static void wait_ms(uint32_t milliseconds) {
    while (milliseconds-- > 0) {
        REG(WDT_FEED) = WDT_FEED_VALUE;
        ets_delay_us(1000);
    }
}

IROM static void blink_forever(void) {
    ets_printf("blink: bare-metal firmware, code in flash at 0x%x\n", (unsigned)(uintptr_t)&blink_forever);
    /* Function 0 of GPIO2's pin is GPIO. */
    REG(IO_MUX_GPIO2) &= ~IO_MUX_FUNCTION_BITS;
    REG(GPIO_ENABLE_W1TS) = GPIO2_BIT;
    for (;;) {
        REG(GPIO_OUT_W1TS) = GPIO2_BIT;
        uart0_write("GPIO2 high\n");
        wait_ms(HALF_PERIOD_MS);
        REG(GPIO_OUT_W1TC) = GPIO2_BIT;
        uart0_write("GPIO2 low\n");
        wait_ms(HALF_PERIOD_MS);
    }
}

void program_entry(void) {
    zero_bss();
    Cache_Read_Enable(0, 0, 1);
    blink_forever();
}
