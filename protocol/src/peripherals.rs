//! The ESP8266's peripheral registers besides the UARTs ([`crate::uart`]), the SPI flash
//! controller ([`crate::spi_flash`]) and the eFuses ([`crate::chip`]): DPORT, GPIO, the timers,
//! RTC, IO_MUX and the hardware watchdog (Espressif's `eagle_soc.h`, `gpio_register.h`). The
//! emulator models them; flashlab's C test firmware gets them through the header
//! `lx106-programs` generates from this module.

/// DPORT, the first block on the XLMI port.
pub mod dport {
    /// The block's address.
    pub const BASE: u32 = 0x3FF0_0000;
    /// Edge interrupt enables; bit 1 lets FRC1's edge interrupt through.
    pub const EDGE_INT_ENABLE: u32 = 0x04;
    /// Bit 0 doubles the CPU clock (160 MHz at an 80 MHz APB).
    pub const CPU_CLOCK: u32 = 0x14;
}

/// The WiFi MAC's free-running microsecond counter (the SDK's `system_get_time`).
pub const WDEV_MICROSECONDS: u32 = 0x3FF2_0C00;

/// SPI1 (HSPI); SPI0, wired to the flash, is [`crate::spi_flash::controller`].
pub const SPI1_BASE: u32 = 0x6000_0100;

/// GPIO0..15.
pub mod gpio {
    /// The block's address.
    pub const BASE: u32 = 0x6000_0300;
    /// Register offsets inside the block.
    pub mod reg {
        /// The output levels, one bit per GPIO.
        pub const OUT: u32 = 0x00;
        /// Writing 1s sets those bits of OUT.
        pub const OUT_W1TS: u32 = 0x04;
        /// Writing 1s clears those bits of OUT.
        pub const OUT_W1TC: u32 = 0x08;
        /// Output enables, one bit per GPIO.
        pub const ENABLE: u32 = 0x0C;
        /// Writing 1s sets those bits of ENABLE.
        pub const ENABLE_W1TS: u32 = 0x10;
        /// Writing 1s clears those bits of ENABLE.
        pub const ENABLE_W1TC: u32 = 0x14;
        /// The input levels, one bit per GPIO.
        pub const IN: u32 = 0x18;
        /// Interrupt status, one bit per GPIO.
        pub const STATUS: u32 = 0x1C;
        /// Writing 1s sets those bits of STATUS.
        pub const STATUS_W1TS: u32 = 0x20;
        /// Writing 1s clears those bits of STATUS (acknowledges the interrupts).
        pub const STATUS_W1TC: u32 = 0x24;
    }
}

/// The FRC1 and FRC2 timers.
pub mod timer {
    /// The block's address.
    pub const BASE: u32 = 0x6000_0600;
}

/// The RTC block.
pub mod rtc {
    /// The block's address.
    pub const BASE: u32 = 0x6000_0700;
    /// The hardware reset cause, in bits 3:0.
    pub const RESET_CAUSE: u32 = 0x14;
}

/// The pin multiplexer.
pub mod io_mux {
    /// The block's address.
    pub const BASE: u32 = 0x6000_0800;
    /// GPIO2's pin register.
    pub const GPIO2: u32 = 0x38;
    /// A pin register's function bits (4, 5 and 8); all clear is function 0, GPIO for GPIO2.
    pub const FUNCTION_BITS: u32 = 0x130;
}

/// The hardware watchdog.
pub mod watchdog {
    /// The block's address.
    pub const BASE: u32 = 0x6000_0900;
    /// Register offsets inside the block.
    pub mod reg {
        /// Bit 0 enables it.
        pub const CTRL: u32 = 0x00;
        /// 2^n units of 0.8 ms, n in bits 3:0.
        pub const STAGE0_TIMEOUT: u32 = 0x04;
        /// Stage 1's timeout, as STAGE0_TIMEOUT's.
        pub const STAGE1_TIMEOUT: u32 = 0x08;
        /// The stage the count is in.
        pub const STAGE: u32 = 0x10;
        /// Writing [`super::FEED_VALUE`] restarts the count.
        pub const FEED: u32 = 0x14;
    }
    /// The value that feeds the watchdog when written to FEED.
    pub const FEED_VALUE: u32 = 0x73;
}
