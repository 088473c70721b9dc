/* blink: bare-metal firmware booted from flash by the ROM (no SDK). The
 * ROM loads the image's IRAM and DRAM segments and calls program_entry,
 * which maps flash with Cache_Read_Enable and jumps to blink_forever, whose
 * code runs from flash through the cache (.irom0.text). It prints a line
 * with the ROM's ets_printf, then toggles GPIO2 every half second and reports
 * each toggle by writing UART0's TX FIFO directly, feeding the hardware
 * watchdog as it waits. */
#include "rom.h"

#define REG(address) (*(volatile uint32_t *)(address))

#define UART0_FIFO 0x60000000u
#define UART0_STATUS 0x6000001Cu
#define UART_TXFIFO_COUNT(status) (((status) >> 16) & 0xffu)
#define UART_FIFO_SIZE 128u

#define GPIO_OUT_W1TS 0x60000304u
#define GPIO_OUT_W1TC 0x60000308u
#define GPIO_ENABLE_W1TS 0x60000310u
#define GPIO2_BIT (1u << 2)

/* IO_MUX pin register of GPIO2; function 0 (bits 4, 5 and 8 clear) is GPIO. */
#define IO_MUX_GPIO2 0x60000838u
#define IO_MUX_FUNCTION_BITS 0x130u

#define WDT_FEED 0x60000914u
#define WDT_FEED_MAGIC 0x73u

#define HALF_PERIOD_MS 500u

#define IROM __attribute__((section(".irom0.text")))

IROM static void uart0_write(const char *text) {
    while (*text != '\0') {
        while (UART_TXFIFO_COUNT(REG(UART0_STATUS)) >= UART_FIFO_SIZE - 2) {
        }
        REG(UART0_FIFO) = (uint8_t)*text++;
    }
}

IROM static void wait_ms(uint32_t milliseconds) {
    while (milliseconds-- > 0) {
        REG(WDT_FEED) = WDT_FEED_MAGIC;
        ets_delay_us(1000);
    }
}

IROM static void blink_forever(void) {
    ets_printf("blink: bare-metal firmware, code in flash at 0x%x\n", (unsigned)(uintptr_t)&blink_forever);
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
