//! GPIO0..15 (the registers are esp-protocol's `peripherals::gpio`): OUT (set
//! and clear through OUT_W1TS and OUT_W1TC), ENABLE (ENABLE_W1TS, ENABLE_W1TC),
//! IN, STATUS (STATUS_W1TS, STATUS_W1TC); the other registers (pin
//! configuration, sigma-delta, RTC calibration) are stored and read back.
//!
//! IN reads an output-enabled pin's own level and the boot strapping
//! otherwise: GPIO0 low in download mode and high when booting from flash,
//! GPIO2 high, GPIO15 low, every other pin high (idle UART lines, pull-ups).
//! Bits 18:16 hold the strapping as the ROM latched it (GPIO15, GPIO0, GPIO2),
//! the first number of the ROM's "boot mode:(x,y)".
//!
//! Every change of OUT is recorded with the cycle count at which the machine
//! last advanced, at most [`MAX_GPIO_EVENTS`] until taken; later changes are
//! dropped. No pin ever changes as an input, so GPIO interrupts never fire.

use esp_protocol::peripherals::gpio::reg;

/// GPIO output changes kept until taken; later ones are dropped.
pub const MAX_GPIO_EVENTS: usize = 4096;

/// OUT, ENABLE and STATUS cover GPIO0..15.
const PIN_MASK: u32 = 0xFFFF;
const BLOCK_WORDS: usize = 64;

/// The GPIO block.
#[derive(Debug, Clone)]
pub(super) struct Gpio {
    registers: [u32; BLOCK_WORDS],
    /// What the pins read when not driven, strapping bits included.
    undriven_input: u32,
    events: Vec<(u64, u32)>,
    events_dropped: u64,
}

impl Gpio {
    /// The block after reset, strapped for download mode or not.
    pub(super) fn new(download_mode: bool) -> Gpio {
        let gpio0: u32 = if download_mode { 0 } else { 1 };
        let gpio2 = 1;
        let gpio15 = 0;
        let levels = (PIN_MASK & !(1 << 15) & !1) | gpio0;
        let strapping = gpio15 << 2 | gpio0 << 1 | gpio2;
        Gpio {
            registers: [0; BLOCK_WORDS],
            undriven_input: levels | strapping << 16,
            events: Vec::new(),
            events_dropped: 0,
        }
    }

    fn register(&self, offset: u32) -> u32 {
        self.registers[(offset as usize / 4) % BLOCK_WORDS]
    }

    fn set(&mut self, offset: u32, value: u32) {
        self.registers[(offset as usize / 4) % BLOCK_WORDS] = value;
    }

    /// Reads a register; the write-one-to-set/clear registers read 0.
    pub(super) fn read(&self, offset: u32) -> u32 {
        match offset {
            reg::OUT_W1TS
            | reg::OUT_W1TC
            | reg::ENABLE_W1TS
            | reg::ENABLE_W1TC
            | reg::STATUS_W1TS
            | reg::STATUS_W1TC => 0,
            reg::IN => {
                let enabled = self.register(reg::ENABLE);
                (self.register(reg::OUT) & enabled) | (self.undriven_input & !enabled)
            }
            _ => self.register(offset),
        }
    }

    /// Writes a register at cycle `cycle`, recording a change of OUT.
    pub(super) fn write(&mut self, offset: u32, value: u32, cycle: u64) {
        let out = self.register(reg::OUT);
        let enable = self.register(reg::ENABLE);
        let status = self.register(reg::STATUS);
        match offset {
            reg::OUT => self.set_out(value & PIN_MASK, cycle),
            reg::OUT_W1TS => self.set_out(out | (value & PIN_MASK), cycle),
            reg::OUT_W1TC => self.set_out(out & !value, cycle),
            reg::ENABLE => self.set(reg::ENABLE, value & PIN_MASK),
            reg::ENABLE_W1TS => self.set(reg::ENABLE, enable | (value & PIN_MASK)),
            reg::ENABLE_W1TC => self.set(reg::ENABLE, enable & !value),
            reg::IN => {}
            reg::STATUS => self.set(reg::STATUS, value & PIN_MASK),
            reg::STATUS_W1TS => self.set(reg::STATUS, status | (value & PIN_MASK)),
            reg::STATUS_W1TC => self.set(reg::STATUS, status & !value),
            _ => self.set(offset, value),
        }
    }

    fn set_out(&mut self, out: u32, cycle: u64) {
        if out == self.register(reg::OUT) {
            return;
        }
        self.set(reg::OUT, out);
        if self.events.len() < MAX_GPIO_EVENTS {
            self.events.push((cycle, out));
        } else {
            self.events_dropped += 1;
        }
    }

    /// The output register.
    pub(super) fn out(&self) -> u32 {
        self.register(reg::OUT)
    }

    /// The recorded OUT changes, oldest first, and how many were dropped since the last take.
    pub(super) fn take_events(&mut self) -> (Vec<(u64, u32)>, u64) {
        (
            std::mem::take(&mut self.events),
            std::mem::take(&mut self.events_dropped),
        )
    }
}
