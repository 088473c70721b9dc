/* Generated from esp-protocol by `cargo run -p esp-stub --example rebuild`: do not
 * edit. The ESP8266 registers the test firmware uses, each defined once, in Rust
 * (programs/src/chip_h.rs renders them). */
#ifndef FIRMWARE_CHIP_H
#define FIRMWARE_CHIP_H

/* UART0 */
#define UART0_FIFO 0x60000000u
#define UART0_STATUS 0x6000001Cu
#define UART_STATUS_TX_COUNT_SHIFT 0x10u
#define UART_STATUS_TX_COUNT_MASK 0xFFu
#define UART_FIFO_LEN 0x80u

/* GPIO */
#define GPIO_OUT_W1TS 0x60000304u
#define GPIO_OUT_W1TC 0x60000308u
#define GPIO_ENABLE_W1TS 0x60000310u

/* IO_MUX */
#define IO_MUX_GPIO2 0x60000838u
#define IO_MUX_FUNCTION_BITS 0x130u

/* Hardware watchdog */
#define WDT_FEED 0x60000914u
#define WDT_FEED_VALUE 0x73u

/* Clocks */
#define ROM_APB_CLOCK_HZ 0x3197500u

#endif
