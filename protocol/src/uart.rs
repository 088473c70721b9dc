//! The ESP8266's UARTs as software sees them: where their registers are, the interrupt bits,
//! and the fields of STATUS, CONF0 and CONF1 the ROM loader, flasher stubs and the virtual
//! chip use (Espressif's `uart_register.h`). The emulator models these registers; flashlab's
//! stub, written in C, gets them through the header `esp-stub` generates from this module.

/// UART0, the one the ROM loader and the stubs talk on.
pub const UART0_BASE: u32 = 0x6000_0000;
/// UART1 (transmit only on most modules).
pub const UART1_BASE: u32 = 0x6000_0F00;
/// The level-1 interrupt both UARTs raise (`ETS_UART_INUM`).
pub const UART_INTERRUPT: u32 = 5;
/// Bytes each FIFO holds.
pub const FIFO_LEN: usize = 128;

/// Register offsets inside a UART block.
pub mod reg {
    /// Reading pops a received byte; writing queues a byte to send.
    pub const FIFO: u32 = 0x00;
    /// Interrupt bits raised, enabled or not (see [`super::int`]).
    pub const INT_RAW: u32 = 0x04;
    /// Interrupt bits raised and enabled.
    pub const INT_ST: u32 = 0x08;
    /// Interrupt enables.
    pub const INT_ENA: u32 = 0x0C;
    /// Writing 1s clears those interrupt bits.
    pub const INT_CLR: u32 = 0x10;
    /// The clock divider: the rate is the UART clock over it (bits 19:0).
    pub const CLKDIV: u32 = 0x14;
    /// Baud-rate detection.
    pub const AUTOBAUD: u32 = 0x18;
    /// FIFO fill levels and line states (see [`super::status`]).
    pub const STATUS: u32 = 0x1C;
    /// Framing, loopback and FIFO resets.
    pub const CONF0: u32 = 0x20;
    /// Interrupt thresholds (see [`super::conf1`]).
    pub const CONF1: u32 = 0x24;
    /// The shortest low pulse seen (baud-rate detection).
    pub const LOWPULSE: u32 = 0x28;
    /// The shortest high pulse seen (baud-rate detection).
    pub const HIGHPULSE: u32 = 0x2C;
    /// The block's version date.
    pub const DATE: u32 = 0x78;
    /// The block's ID.
    pub const ID: u32 = 0x7C;
}

/// Interrupt bits of INT_RAW, INT_ST, INT_ENA and INT_CLR.
pub mod int {
    /// The RX FIFO holds `rxfifo_full_thrhd` bytes or more.
    pub const RXFIFO_FULL: u32 = 1 << 0;
    /// The TX FIFO holds fewer than `txfifo_empty_thrhd` bytes.
    pub const TXFIFO_EMPTY: u32 = 1 << 1;
    /// A byte arrived while the RX FIFO was full and was lost.
    pub const RXFIFO_OVF: u32 = 1 << 4;
    /// The line went idle with bytes in the RX FIFO.
    pub const RXFIFO_TOUT: u32 = 1 << 8;
    /// The interrupt bits the hardware has (bits 0..=8).
    pub const ALL: u32 = 0x1FF;
}

/// CLKDIV holds a 20-bit divider.
pub const CLKDIV_MASK: u32 = 0xF_FFFF;

/// STATUS fields.
pub mod status {
    /// Bytes in the RX FIFO: bits 7:0.
    pub const RX_COUNT_MASK: u32 = 0xFF;
    /// Bytes in the TX FIFO: bits 23:16.
    pub const TX_COUNT_SHIFT: u32 = 16;
    /// Bytes in the TX FIFO, after the shift: 8 bits.
    pub const TX_COUNT_MASK: u32 = 0xFF;
    /// The RXD line's level (it idles high).
    pub const RXD: u32 = 1 << 15;
}

/// CONF0 bits.
pub mod conf0 {
    /// Writing 1 empties the RX FIFO (until written 0 again).
    pub const RXFIFO_RST: u32 = 1 << 17;
    /// Writing 1 empties the TX FIFO (until written 0 again).
    pub const TXFIFO_RST: u32 = 1 << 18;
}

/// CONF1 fields.
pub mod conf1 {
    /// Each threshold is 7 bits wide.
    pub const THRESHOLD_MASK: u32 = 0x7F;
    /// RXFIFO_FULL's threshold: bits 6:0.
    pub const RXFIFO_FULL_THRESHOLD_SHIFT: u32 = 0;
    /// TXFIFO_EMPTY's threshold: bits 14:8.
    pub const TXFIFO_EMPTY_THRESHOLD_SHIFT: u32 = 8;
    /// RXFIFO_TOUT's threshold, in idle byte times: bits 30:24.
    pub const RX_TIMEOUT_THRESHOLD_SHIFT: u32 = 24;
    /// RXFIFO_TOUT is raised only with this bit set.
    pub const RX_TIMEOUT_ENABLE: u32 = 1 << 31;
}

/// The crystals ESP8266 modules carry, in MHz.
pub const CRYSTALS_MHZ: [u32; 2] = [26, 40];
/// The UART clock over the crystal's frequency: the ROM sets the PLL up as for a 40 MHz
/// crystal, so the APB clock, which the UARTs divide, is twice the crystal (52 MHz on the
/// usual 26 MHz one, hence the ROM's 74880-baud boot log).
pub const UART_CLOCK_PER_CRYSTAL: u32 = 2;

/// The crystal (MHz, one of [`CRYSTALS_MHZ`]) that UART0's CLKDIV `divider` implies while
/// the line runs at `baud`, or `None` when the estimate is more than 10 % from every one.
pub fn crystal_mhz(divider: u32, baud: u32) -> Option<u32> {
    let estimate_hz =
        f64::from(divider & CLKDIV_MASK) * f64::from(baud) / f64::from(UART_CLOCK_PER_CRYSTAL);
    CRYSTALS_MHZ.into_iter().find(|&mhz| {
        let hz = f64::from(mhz) * 1e6;
        (estimate_hz - hz).abs() <= hz / 10.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crystal_from_the_rom_divider_and_after_a_baud_change() {
        // The ROM at 115200 on a 26 MHz crystal: 52 MHz / 115200.
        assert_eq!(crystal_mhz(451, 115_200), Some(26));
        // A stub's divider at 921600 rounds down: 52 MHz / 921600 = 56.4.
        assert_eq!(crystal_mhz(56, 921_600), Some(26));
        assert_eq!(crystal_mhz(694, 115_200), Some(40));
        assert_eq!(crystal_mhz(0, 115_200), None);
        assert_eq!(crystal_mhz(300, 115_200), None);
    }
}
