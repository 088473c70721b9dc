//! `c/firmware/chip.h`, the register addresses and bits the test firmware uses, rendered from
//! esp-protocol, where each is defined once. `cargo run -p esp-stub --example rebuild` writes it;
//! a test fails while the committed header is not what esp-protocol gives.

use std::fmt::Write as _;
use std::path::PathBuf;

use esp_protocol::boot_log::ROM_APB_CLOCK_HZ;
use esp_protocol::peripherals::{gpio, io_mux, watchdog};
use esp_protocol::uart::{self, status as uart_status};

/// Where the generated header lives, relative to this crate.
pub const CHIP_H_PATH: &str = "c/firmware/chip.h";

/// The header's text.
pub fn chip_header() -> String {
    let mut out = String::from(
        "/* Generated from esp-protocol by `cargo run -p esp-stub --example rebuild`: do not\n \
         * edit. The ESP8266 registers the test firmware uses, each defined once, in Rust\n \
         * (programs/src/chip_h.rs renders them). */\n\
         #ifndef FIRMWARE_CHIP_H\n#define FIRMWARE_CHIP_H\n",
    );
    let mut section = |title: &str, defines: &[(&str, u32)]| {
        let _ = write!(out, "\n/* {title} */\n");
        for (name, value) in defines {
            let _ = writeln!(out, "#define {name} 0x{value:02X}u");
        }
    };
    section(
        "UART0",
        &[
            ("UART0_FIFO", uart::UART0_BASE + uart::reg::FIFO),
            ("UART0_STATUS", uart::UART0_BASE + uart::reg::STATUS),
            ("UART_STATUS_TX_COUNT_SHIFT", uart_status::TX_COUNT_SHIFT),
            ("UART_STATUS_TX_COUNT_MASK", uart_status::TX_COUNT_MASK),
            ("UART_FIFO_LEN", uart::FIFO_LEN as u32),
        ],
    );
    section(
        "GPIO",
        &[
            ("GPIO_OUT_W1TS", gpio::BASE + gpio::reg::OUT_W1TS),
            ("GPIO_OUT_W1TC", gpio::BASE + gpio::reg::OUT_W1TC),
            ("GPIO_ENABLE_W1TS", gpio::BASE + gpio::reg::ENABLE_W1TS),
        ],
    );
    section(
        "IO_MUX",
        &[
            ("IO_MUX_GPIO2", io_mux::BASE + io_mux::GPIO2),
            ("IO_MUX_FUNCTION_BITS", io_mux::FUNCTION_BITS),
        ],
    );
    section(
        "Hardware watchdog",
        &[
            ("WDT_FEED", watchdog::BASE + watchdog::reg::FEED),
            ("WDT_FEED_VALUE", watchdog::FEED_VALUE),
        ],
    );
    section("Clocks", &[("ROM_APB_CLOCK_HZ", ROM_APB_CLOCK_HZ)]);
    out.push_str("\n#endif\n");
    out
}

/// Where the committed header is.
pub fn chip_h_path() -> PathBuf {
    super::crate_dir().join(CHIP_H_PATH)
}
