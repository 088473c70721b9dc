//! `xtensa-lx106` is flashlab's CPU: an interpreter for the Xtensa LX106 core of
//! the ESP8266, with no I/O of its own. Memory and peripherals sit behind the
//! [`Bus`] trait; the caller runs the core in budgets of cycles with
//! [`Cpu::run`] and learns why it stopped ([`Stop`]). Time is the cycle count
//! (CCOUNT): the caller turns cycles into time at the clock the firmware chose.
//! `esp-emulator` builds the ESP8266 around it: its memory map, its peripherals,
//! and the mask ROM's functions, which run as Rust when the PC enters the ROM
//! (see [`Cpu::set_trap_range`]).
//!
//! The core configuration is the ESP8266's (Debian's `xtensa-config.h` for the
//! lx106): the core ISA with the CALL0 ABI, the 16-bit density instructions,
//! ABS, ADDX/SUBX, L32R, MUL16, MUL32 (MULL only), NSA/NSAU, the debug option,
//! exceptions, interrupts and one timer (CCOMPARE0); and, from the lx106 core's own
//! configuration facts, which the lx106 binutils decode too: LITBASE (L32R from absolute
//! literals when enabled), the region-protection TLB instructions and RER/WER. Anything else
//! raises the illegal-instruction exception, as the chip does.
//!
//! Module map: [`decode`](decode()) turns instruction bytes into an [`Instruction`]
//! (printed in GNU objdump syntax by `display`); `cpu` holds the architectural state, the run
//! loop, exceptions and interrupts; `exec` gives each instruction its meaning; `code_cache`
//! keeps decoded straight-line blocks by address (the core's own stores and
//! [`Cpu::invalidate_code`] forget them); [`sr`] and [`cause`] number the special registers and
//! exception causes.
//!
//! Timing model: every instruction costs one cycle (CCOUNT advances by one), taken branches,
//! loads, stores and multiplies included; an instruction that faults costs its cycle too.
//! Exception and interrupt entry are free. [`Cpu::add_cycles`] charges time spent outside the
//! core (trapped ROM functions, skipped idle time).
//!
//! Interrupt lines ([`Bus::interrupt_lines`]) are polled between straight-line blocks of at
//! most eight instructions and after any instruction that changes what decides delivery (PS,
//! INTENABLE, INTSET, CCOMPARE0...): an interrupt is taken at most eight instructions after its
//! line rises. The CCOMPARE0 match is exact to the cycle.

mod code_cache;
mod cpu;
mod decode;
mod display;
mod exec;

pub mod cause;
pub mod sr;
#[cfg(test)]
mod test_support;

pub use cpu::Cpu;
pub use decode::{decode, DecodeError, Instruction, Op};
pub use display::InstructionDisplay;

/// A memory or peripheral access that the bus refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bus fault at {address:#010x}")]
pub struct BusFault {
    pub address: u32,
}

/// Memory and peripherals as the core sees them. Alignment is checked by the core before calling
/// (an unaligned L16/L32/S16/S32 raises the alignment exception); a BusFault becomes the
/// LoadStoreError exception (cause 3) for loads/stores and InstructionFetchError (cause 2) for fetches.
pub trait Bus {
    fn read8(&mut self, address: u32) -> Result<u8, BusFault>;
    fn read16(&mut self, address: u32) -> Result<u16, BusFault>;
    fn read32(&mut self, address: u32) -> Result<u32, BusFault>;
    fn write8(&mut self, address: u32, value: u8) -> Result<(), BusFault>;
    fn write16(&mut self, address: u32, value: u16) -> Result<(), BusFault>;
    fn write32(&mut self, address: u32, value: u32) -> Result<(), BusFault>;
    /// Instruction fetch of the little-endian word at a 4-aligned address. The core decodes
    /// straight-line code ahead of the PC (at most eight instructions, stopping at the trap
    /// range); a fault on such a fetch only ends the run of decoded code, and becomes an
    /// InstructionFetchError if the PC gets there.
    fn fetch32(&mut self, address: u32) -> Result<u32, BusFault> {
        self.read32(address)
    }
    /// External interrupt lines asserted now (bit n = interrupt n), polled between instructions.
    /// Lines 0..=5 are level-triggered (the INTERRUPT bit follows the line); lines 8..=13 are
    /// edge-triggered as the LX106 is configured (a rising line latches its INTERRUPT bit until
    /// software clears it through INTCLEAR); line 14 is the NMI, taken on its rising edge.
    fn interrupt_lines(&mut self) -> u32 {
        0
    }
}

/// Why [`Cpu::run`] or [`Cpu::step`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The cycle budget ran out.
    Budget,
    /// The PC entered the trap range (see set_trap_range) — e.g. a call into the ROM, or an exception
    /// vector in ROM. Nothing at `pc` was executed; the caller does the work and sets the PC
    /// (for a CALL0-ABI function: results in a2 (a3), then set_pc(ar(0))).
    Trap { pc: u32 },
    /// WAITI with no enabled interrupt pending at or above the new level: nothing happens until an
    /// interrupt line rises or CCOMPARE0 matches; the caller may skip time (add_cycles) and run again.
    Waiting,
}
