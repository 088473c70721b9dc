/* crash: bare-metal firmware booted from flash by the ROM (no SDK) that does what
 * an SDK or Arduino firmware does at start as far as a serial monitor can see:
 * it sets UART0 to 115200 baud, says hello a few times, then dies on a load
 * through a NULL pointer, so the ROM's exception handler prints its dump
 * (`Fatal exception (N):` and `epc1=0x...`) at that rate. Its ELF, built
 * with -g, lets the monitor's --elf name crash_now and its line. */
#include "chip.h"
#include "rom.h"

#define REG(address) (*(volatile uint32_t *)(address))

/* The ROM leaves the APB clock at ROM_APB_CLOCK_HZ (chip.h): its divider for
 * 115200 at 80 MHz gives the boot log's 74880. An SDK raises the clock to
 * 80 MHz; without one, 115200 needs a divider of this clock. */
#define FIRMWARE_BAUD 115200u
#define GREETINGS 3u

#define IROM __attribute__((section(".irom0.text")))

IROM static void wait_ms(uint32_t milliseconds) {
    while (milliseconds-- > 0) {
        REG(WDT_FEED) = WDT_FEED_VALUE;
        ets_delay_us(1000);
    }
}

/* Reads through a NULL pointer plus an offset, as a use of a missing object does. */
IROM __attribute__((noinline)) static uint32_t crash_now(volatile uint32_t *object) {
    return object[1];
}

IROM static void run(void) {
    /* The ROM's last boot-log bytes leave the FIFO before the rate changes, and an
     * SDK takes a while to start; so does this firmware. */
    wait_ms(50);
    uart_div_modify(0, ROM_APB_CLOCK_HZ / FIRMWARE_BAUD);
    for (uint32_t count = 1; count <= GREETINGS; count++) {
        ets_printf("crash: hello %u at 115200 baud\n", (unsigned)count);
        wait_ms(20);
    }
    ets_printf("crash: reading through a NULL pointer\n");
    ets_printf("crash: read 0x%x\n", (unsigned)crash_now((volatile uint32_t *)0));
}

void program_entry(void) {
    zero_bss();
    Cache_Read_Enable(0, 0, 1);
    run();
}
