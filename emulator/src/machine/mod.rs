//! The ESP8266 as its CPU sees it, without I/O: memory, the flash cache and
//! the peripherals behind one address space. [`Machine`] implements
//! `xtensa_lx106::Bus` for the interpreter, and the same state serves the
//! serial loader's READ_REG, WRITE_REG and MEM_* ([`Machine::read_reg`],
//! [`Machine::write_reg`], [`Machine::write_ram`]), so esptool and running code
//! see one chip. Nothing here reads a clock: time is the CPU's cycle count,
//! handed in with [`Machine::advance`]; bytes on the UART line go in with
//! [`Machine::uart_receive`] and come out with [`Machine::uart_take_tx`].
//!
//! # Address map
//!
//! | range | what | access |
//! |---|---|---|
//! | 0x3FF00000..0x3FF00100 | DPORT: edge interrupt enable 0x04, CPU clock 0x14, eFuse words 0x50..0x5C (read-only) | registers |
//! | 0x3FF20C00 | WiFi MAC's microsecond counter (`system_get_time`), read-only | register |
//! | rest of 0x3FF00000..0x3FFE8000 | undecoded registers | bounded store |
//! | 0x3FFE8000..0x40000000 | DRAM, 96 KiB | 8, 16, 32 bit |
//! | 0x40000000..0x40010000 | mask ROM: its bytes are not available; 0x40001000 reads the chip-detect magic 0xFFF0C101, every other word 0 | 32-bit reads; anything else faults |
//! | 0x40100000..0x40110000 | IRAM, 64 KiB (the upper 32 KiB is cache RAM, usable while the cache is off; kept usable here either way) | 32 bit only |
//! | 0x40200000..0x40300000 | the first MiB of flash through the cache, once [`Machine::set_flash_cache`] enabled it | 32-bit reads and fetches only |
//! | 0x60000000 | UART0 (see `uart.rs`) | registers |
//! | 0x60000100 / 0x60000200 | SPI1 / SPI0, the flash controller (see `spi.rs`) | registers |
//! | 0x60000300 | GPIO (see `gpio.rs`) | registers |
//! | 0x60000600 | FRC1 and FRC2 timers (see `timers.rs`) | registers |
//! | 0x60000700 | RTC: reset cause at 0x14 (bits 3:0, as `rtc_get_reset_reason` reads it), store registers 0x30.. | registers |
//! | 0x60000800 | IO_MUX, stored | registers |
//! | 0x60000900 | watchdog (see `watchdog.rs`) | registers |
//! | 0x60000F00 | UART1: what is written to its FIFO goes to a log ([`Machine::take_uart1_output`]) | registers |
//! | 0x60001000..0x60001400 | RTC memory, 1 KiB | registers |
//! | rest of 0x60000000..0x60010000 | undecoded registers | bounded store |
//! | anything else | nothing: a bus fault, as on the chip | |
//!
//! Registers nothing models read 0 and keep what is written, like the chip's
//! unused registers, in a store bounded to [`MAX_UNKNOWN_REGISTERS`] distinct
//! addresses: each is traced on first use; once the store is full, writes to
//! new addresses are ignored (traced once) and new addresses read 0. Sub-word
//! accesses to registers act on the 32-bit register: a read returns its lanes,
//! a write merges into its current value (a byte written to a UART FIFO is
//! queued as is).
//!
//! # Time and interrupts
//!
//! [`Machine::advance`] takes the CPU's cycle count. The APB clock, which
//! drives the timers and the UART, runs at [`ROM_APB_CLOCK_HZ`] after reset
//! (the ROM's PLL setting on a 26 MHz crystal) until
//! [`Machine::set_apb_clock_hz`] changes it; the CPU runs at the APB clock, or
//! twice it when DPORT 0x14 bit 0 is set. Peripherals see time only when the
//! machine advances, so a caller that runs the CPU in slices should end a slice
//! at [`Machine::cycles_until_next_event`].
//!
//! [`xtensa_lx106::Bus::interrupt_lines`] reports UART0 and UART1 on line 5
//! (INT_ST != 0), FRC1 on line 9 and FRC2 on line 10. Lines 8..13 are
//! edge-triggered on the LX106: a timer in edge mode reports one expiry as a
//! line that is high for a single poll (FRC1 only while DPORT 0x04 bit 1
//! enables its edge interrupt); in level mode the line stays high until INT is
//! written.

mod gpio;
mod spi;
mod timers;
mod uart;
mod watchdog;

#[cfg(test)]
mod tests;

use esp_protocol::uart::{UART0_BASE, UART1_BASE};
use std::collections::HashMap;

use esp_protocol::memory_map::{IO, RTC_MEMORY, XLMI};
use esp_protocol::peripherals::{self, SPI1_BASE, WDEV_MICROSECONDS};
use esp_protocol::spi_flash::controller::SPI0_BASE;
use thiserror::Error;
use xtensa_lx106::{Bus, BusFault};

use crate::boot::ResetCause;
use crate::device::BootMode;
use crate::flash::SpiFlash;
use crate::rom_functions::RomHost;
use gpio::Gpio;
use spi::SpiController;
use timers::{Expiry, Frc1, Frc2};
use uart::Uart;
use watchdog::Watchdog;

pub use gpio::MAX_GPIO_EVENTS;
pub use uart::{int as uart_int, FIFO_LEN as UART_FIFO_LEN};
pub use watchdog::FEED_VALUE as WATCHDOG_FEED_VALUE;

pub use esp_protocol::memory_map::{DRAM, FLASH_CACHE, IRAM, ROM};
/// Address esptool reads to tell the chips apart.
pub const CHIP_DETECT_MAGIC_ADDR: u32 = esp_protocol::chip::CHIP_DETECT_MAGIC_REG;
/// The ESP8266's value at [`CHIP_DETECT_MAGIC_ADDR`].
pub const CHIP_DETECT_MAGIC: u32 = esp_protocol::chip::ESP8266_MAGIC;
pub use esp_protocol::boot_log::ROM_APB_CLOCK_HZ;
/// UART0's CONF1 as the ROM loader leaves it: RX timeout enabled after 2 byte times,
/// TX-empty threshold 0x60, RX-full threshold 1.
const ROM_LOADER_UART_CONF1: u32 = {
    use esp_protocol::uart::conf1::*;
    RX_TIMEOUT_ENABLE
        | 2 << RX_TIMEOUT_THRESHOLD_SHIFT
        | 0x60 << TXFIFO_EMPTY_THRESHOLD_SHIFT
        | 1 << RXFIFO_FULL_THRESHOLD_SHIFT
};
/// The top of DRAM, where the ROM's stack lives and the stubs keep theirs: a polling loop
/// that spills registers there without changing them does nothing.
const STACK_AREA: u32 = 0x3FFF_E000;
/// Distinct undecoded register addresses remembered.
pub const MAX_UNKNOWN_REGISTERS: usize = 4096;
/// Trace lines kept until taken.
pub const MAX_TRACE_LINES: usize = 4096;
/// Bytes of UART1 output kept until taken.
pub const MAX_UART1_OUTPUT: usize = 64 * 1024;

/// Interrupt numbers of the peripherals (bits of `interrupt_lines`).
pub mod interrupt {
    /// UART0 and UART1 (ETS_UART_INUM).
    pub const UART: u32 = esp_protocol::uart::UART_INTERRUPT;
    /// FRC1 (ETS_FRC_TIMER1_INUM), edge-triggered at the core.
    pub const FRC1: u32 = 9;
    /// FRC2 (ETS_FRC_TIMER2_INUM), edge-triggered at the core.
    pub const FRC2: u32 = 10;
}

// The register blocks, by esp-protocol's names for them.
const DPORT_BASE: u32 = peripherals::dport::BASE;
const DPORT_WORDS: usize = 64;
const DPORT_EDGE_INT_ENABLE: u32 = peripherals::dport::EDGE_INT_ENABLE;
/// The EDGE_INT_ENABLE bit of FRC1.
const EDGE_INT_FRC1: u32 = 1 << 1;
const DPORT_CPU_CLOCK: u32 = peripherals::dport::CPU_CLOCK;
/// DPORT offset of the first of the four eFuse words (esptool's ESP_OTP_MAC0).
const DPORT_EFUSE: u32 = esp_protocol::chip::EFUSE_REGS[0] - DPORT_BASE;
const GPIO_BASE: u32 = peripherals::gpio::BASE;
const TIMER_BASE: u32 = peripherals::timer::BASE;
const RTC_BASE: u32 = peripherals::rtc::BASE;
const IO_MUX_BASE: u32 = peripherals::io_mux::BASE;
const WATCHDOG_BASE: u32 = peripherals::watchdog::BASE;
const RTC_RESET_CAUSE: u32 = peripherals::rtc::RESET_CAUSE;
const REGISTER_BLOCK_WORDS: usize = 64;

/// What the chip is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineConfig {
    /// The eFuse words at 0x3FF00050..5C (see `device::registers::efuse_words`).
    pub efuses: [u32; 4],
    /// The strapping: GPIO0 low for the serial download mode.
    pub boot: BootMode,
}

/// A MEM_* upload that does not lie in one RAM region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{len} bytes at {address:#010x} do not lie in one RAM region")]
pub struct OutsideRam {
    /// First address of the upload.
    pub address: u32,
    /// Its length in bytes.
    pub len: usize,
}

/// Where the machine is in time.
#[derive(Debug, Clone, Default)]
struct Clock {
    /// The CPU cycle count of the last advance.
    cycles: u64,
    /// CPU cycles not yet making up a whole APB tick (at 160 MHz, two cycles per tick).
    cycle_carry: u64,
    /// APB ticks since reset.
    apb_ticks: u64,
    apb_hz: u32,
    /// The APB tick and the machine time (ps) when the APB clock last changed.
    rebased_tick: u64,
    rebased_ps: u64,
}

impl Clock {
    /// Machine time since reset, in picoseconds.
    fn time_ps(&self) -> u64 {
        let ticks = u128::from(self.apb_ticks - self.rebased_tick);
        let since = ticks * 1_000_000_000_000 / u128::from(self.apb_hz);
        self.rebased_ps
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }
}

/// Trace lines collected while tracing is on, bounded.
#[derive(Debug, Clone, Default)]
struct Trace {
    enabled: bool,
    lines: Vec<String>,
    dropped: usize,
}

impl Trace {
    fn push(&mut self, line: impl FnOnce() -> String) {
        if !self.enabled {
            return;
        }
        if self.lines.len() < MAX_TRACE_LINES {
            self.lines.push(line());
        } else {
            self.dropped += 1;
        }
    }
}

/// The ESP8266's address space and peripherals, with the flash chip on SPI0.
#[derive(Debug)]
pub struct Machine {
    config: MachineConfig,
    flash: SpiFlash,
    flash_attached: bool,
    flash_cache: bool,
    dram: Box<[u32]>,
    iram: Box<[u32]>,
    dport: [u32; DPORT_WORDS],
    uart0: Uart,
    uart1: Uart,
    uart1_output: Vec<u8>,
    uart1_dropped: usize,
    spi0: SpiController,
    spi1: SpiController,
    gpio: Gpio,
    frc1: Frc1,
    frc2: Frc2,
    watchdog: Watchdog,
    watchdog_bite: bool,
    rtc: [u32; REGISTER_BLOCK_WORDS],
    rtc_memory: Box<[u32]>,
    io_mux: [u32; REGISTER_BLOCK_WORDS],
    reset_cause: ResetCause,
    unknown: HashMap<u32, u32>,
    unknown_full_traced: bool,
    clock: Clock,
    /// Interrupt lines held by level-triggered sources.
    level_lines: u32,
    /// Edge-triggered expiries not yet reported.
    edge_pulses: u32,
    /// Writes that changed memory or reached a register (see [`Machine::activity`]).
    changes: u64,
    trace: Trace,
}

/// The divider for `baud` from a clock of `clock_hz`, rounded to nearest.
fn divider_for(clock_hz: u32, baud: u32) -> u32 {
    let baud = baud.max(1);
    (clock_hz.saturating_add(baud / 2) / baud).max(1)
}

/// The byte offset of `len` bytes at `address` in a region of `words` words at `start`.
fn ram_offset(start: u32, words: usize, address: u32, len: usize) -> Option<usize> {
    let offset = address.checked_sub(start)? as usize;
    let end = offset.checked_add(len)?;
    (offset < words * 4 && end <= words * 4).then_some(offset)
}

/// The index of the word holding `address` in a region of words at `start`; past the
/// region's end for addresses below `start`.
#[inline]
fn word_index(address: u32, start: u32) -> usize {
    (address.wrapping_sub(start) / 4) as usize
}

/// Bits `lane` and up of `word`: the value of a sub-word access at `address`.
fn lane(word: u32, address: u32) -> u32 {
    word >> ((address & 3) * 8)
}

/// `word` with the `width`-byte value at `address` merged in.
fn merge_lane(word: u32, address: u32, value: u32, width: u32) -> u32 {
    let shift = (address & 3) * 8;
    let mask = (u32::MAX >> (32 - 8 * width)) << shift;
    (word & !mask) | ((value << shift) & mask)
}

impl Machine {
    /// A chip powered on with `flash` on its SPI bus (not yet attached).
    pub fn new(config: MachineConfig, flash: SpiFlash) -> Machine {
        let mut machine = Machine {
            config,
            flash,
            flash_attached: false,
            flash_cache: false,
            dram: vec![0; DRAM.len() / 4].into_boxed_slice(),
            iram: vec![0; IRAM.len() / 4].into_boxed_slice(),
            dport: [0; DPORT_WORDS],
            uart0: Uart::new(0),
            uart1: Uart::new(0),
            uart1_output: Vec::new(),
            uart1_dropped: 0,
            spi0: SpiController::default(),
            spi1: SpiController::default(),
            gpio: Gpio::new(config.boot == BootMode::Download),
            frc1: Frc1::default(),
            frc2: Frc2::default(),
            watchdog: Watchdog::default(),
            watchdog_bite: false,
            rtc: [0; REGISTER_BLOCK_WORDS],
            rtc_memory: vec![0; RTC_MEMORY.len() / 4].into_boxed_slice(),
            io_mux: [0; REGISTER_BLOCK_WORDS],
            reset_cause: ResetCause::PowerOn,
            unknown: HashMap::new(),
            unknown_full_traced: false,
            clock: Clock::default(),
            level_lines: 0,
            edge_pulses: 0,
            changes: 0,
            trace: Trace::default(),
        };
        machine.reset(ResetCause::PowerOn);
        machine
    }

    /// Sets the strapping the next [`Machine::reset`] latches (GPIO0 as the reset wiring or
    /// the jumper holds it when EN rises).
    pub fn set_strapping(&mut self, boot: BootMode) {
        self.config.boot = boot;
    }

    /// Resets the chip: RAM, registers and peripherals to their reset state, the flash
    /// detached and the cache off, the watchdog disabled, time back to cycle 0 (pass the
    /// CPU's cycle count since its own reset from now on). The RTC registers and RTC
    /// memory survive every cause but power-on; the flash chip and tracing are untouched.
    pub fn reset(&mut self, cause: ResetCause) {
        let download = self.config.boot == BootMode::Download;
        // The ROM autobauds at 115200 in download mode; booting from flash it sets up
        // 115200 for an 80 MHz clock it does not have (the 74880-baud boot log).
        let uart_divider = if download {
            divider_for(ROM_APB_CLOCK_HZ, esp_protocol::packet::ROM_BAUD)
        } else {
            divider_for(80_000_000, esp_protocol::packet::ROM_BAUD)
        };
        self.flash_attached = false;
        self.flash_cache = false;
        self.dram.fill(0);
        self.iram.fill(0);
        self.dport = [0; DPORT_WORDS];
        self.uart0 = Uart::new(uart_divider);
        if download {
            // The ROM's serial loader sets UART0 up to interrupt on every received byte and
            // on a short pause; esptool's legacy stub keeps that setup and only enables the
            // two interrupts. (The exact values are our assumption: any byte must interrupt.)
            self.uart0.write(uart::reg::CONF1, ROM_LOADER_UART_CONF1);
        }
        self.uart1 = Uart::new(uart_divider);
        self.uart1_output.clear();
        self.uart1_dropped = 0;
        self.spi0 = SpiController::default();
        self.spi1 = SpiController::default();
        self.gpio = Gpio::new(download);
        self.frc1 = Frc1::default();
        self.frc2 = Frc2::default();
        self.watchdog = Watchdog::default();
        self.watchdog_bite = false;
        if cause == ResetCause::PowerOn {
            self.rtc = [0; REGISTER_BLOCK_WORDS];
            self.rtc_memory.fill(0);
        }
        self.io_mux = [0; REGISTER_BLOCK_WORDS];
        self.reset_cause = cause;
        self.unknown.clear();
        self.unknown_full_traced = false;
        self.clock = Clock {
            apb_hz: ROM_APB_CLOCK_HZ,
            ..Clock::default()
        };
        self.edge_pulses = 0;
        self.refresh_interrupts();
    }

    // ---- the flash ----

    /// The flash chip.
    pub fn flash(&self) -> &SpiFlash {
        &self.flash
    }

    /// The flash chip, to change it (contents, faults) or to run commands on it directly.
    pub fn flash_mut(&mut self) -> &mut SpiFlash {
        &mut self.flash
    }

    /// Routes (or unroutes) the SPI0 pins to the flash, as `spi_flash_attach` does.
    pub fn set_flash_attached(&mut self, attached: bool) {
        self.flash_attached = attached;
    }

    /// True once the flash is attached to SPI0.
    pub fn flash_attached(&self) -> bool {
        self.flash_attached
    }

    /// Maps the first MiB of flash at 0x40200000, or unmaps it (`Cache_Read_Enable` /
    /// `Cache_Read_Disable`).
    pub fn set_flash_cache(&mut self, enabled: bool) {
        self.flash_cache = enabled;
    }

    /// True while the flash is mapped at 0x40200000.
    pub fn flash_cache_enabled(&self) -> bool {
        self.flash_cache
    }

    // ---- the serial loader's view: READ_REG, WRITE_REG, MEM_* ----

    /// READ_REG: the 32-bit word holding `address` (aligned down); 0 where nothing answers.
    pub fn read_reg(&mut self, address: u32) -> u32 {
        let address = address & !3;
        let value = self.read32(address);
        value.unwrap_or_else(|_| {
            self.trace
                .push(|| format!("machine: READ_REG {address:#010x}: nothing there, reads 0"));
            0
        })
    }

    /// WRITE_REG: writes the bits of `value` selected by `mask` to the word holding
    /// `address`; where nothing answers (or the ROM) the write is ignored.
    pub fn write_reg(&mut self, address: u32, value: u32, mask: u32) {
        let address = address & !3;
        let current = if mask == u32::MAX {
            0
        } else {
            self.peek(address)
        };
        let merged = (current & !mask) | (value & mask);
        if self.write32(address, merged).is_err() {
            self.trace
                .push(|| format!("machine: WRITE_REG {address:#010x}: nothing there, ignored"));
        }
    }

    /// MEM_DATA: copies `data` to RAM at `address`; fails unless all of it lands in one
    /// RAM region (DRAM or IRAM).
    pub fn write_ram(&mut self, address: u32, data: &[u8]) -> Result<(), OutsideRam> {
        let outside = OutsideRam {
            address,
            len: data.len(),
        };
        let (words, offset) = if let Some(offset) =
            ram_offset(DRAM.start, self.dram.len(), address, data.len())
        {
            (&mut self.dram, offset)
        } else if let Some(offset) = ram_offset(IRAM.start, self.iram.len(), address, data.len()) {
            (&mut self.iram, offset)
        } else {
            return Err(outside);
        };
        // Regions start word-aligned, so a byte's offset has its address's lane.
        for (byte_offset, &byte) in (offset..).zip(data) {
            if let Some(word) = words.get_mut(byte_offset / 4) {
                *word = merge_lane(*word, byte_offset as u32, u32::from(byte), 1);
            }
        }
        Ok(())
    }

    /// True when `len` bytes at `address` lie in one RAM region (MEM_BEGIN's check).
    pub fn is_ram(&self, address: u32, len: usize) -> bool {
        ram_offset(DRAM.start, self.dram.len(), address, len).is_some()
            || ram_offset(IRAM.start, self.iram.len(), address, len).is_some()
    }

    // ---- UART0 as the line sees it ----

    /// Bytes arriving on UART0's RX line, taken while the RX FIFO has room; returns how
    /// many were taken (the caller keeps the rest on the wire).
    pub fn uart_receive(&mut self, bytes: &[u8]) -> usize {
        let taken = self.uart0.receive(bytes);
        self.refresh_interrupts();
        taken
    }

    /// Bytes arriving on UART0's RX wire: into the FIFO while it has room, the rest queued
    /// behind it (the caller bounds what it hands in) and moved in as the program reads.
    pub fn uart_receive_on_wire(&mut self, bytes: &[u8]) {
        self.uart0.receive_on_wire(bytes);
        self.refresh_interrupts();
    }

    /// Bytes on UART0's RX wire, FIFO not counted.
    pub fn uart_rx_wire_len(&self) -> usize {
        self.uart0.rx_wire_len()
    }

    /// Lets UART0's TX wire carry `room` more bytes as they are sent (see the device's
    /// output backlog); bytes beyond wait in the TX FIFO.
    pub fn set_uart_tx_wire_room(&mut self, room: usize) {
        self.uart0.set_tx_wire_room(room);
        self.refresh_interrupts();
    }

    /// Bytes arriving whether or not the RX FIFO has room, as on a line without flow
    /// control: those that do not fit are lost and raise RXFIFO_OVF. Returns how many
    /// were lost.
    pub fn uart_receive_lossy(&mut self, bytes: &[u8]) -> usize {
        let lost = self.uart0.receive_lossy(bytes);
        if lost > 0 {
            self.trace
                .push(|| format!("machine: UART0 RX FIFO overflow, {lost} bytes lost"));
        }
        self.refresh_interrupts();
        lost
    }

    /// The RX line has been idle for [`Machine::uart_rx_timeout_byte_times`] byte times:
    /// raises RXFIFO_TOUT if the timeout is enabled and bytes wait in the RX FIFO.
    pub fn uart_line_idle(&mut self) {
        self.uart0.line_idle();
        self.refresh_interrupts();
    }

    /// UART0's RX timeout threshold in byte times (CONF1 bits 30:24).
    pub fn uart_rx_timeout_byte_times(&self) -> u32 {
        self.uart0.rx_timeout_threshold()
    }

    /// Moves up to `max` bytes from UART0's TX FIFO onto the line (`out`); returns how many.
    pub fn uart_take_tx(&mut self, out: &mut Vec<u8>, max: usize) -> usize {
        let taken = self.uart0.take_tx(out, max);
        self.refresh_interrupts();
        taken
    }

    /// Bytes waiting in UART0's TX FIFO.
    pub fn uart_tx_queued(&self) -> usize {
        self.uart0.tx_len()
    }

    /// Bytes waiting in UART0's RX FIFO.
    pub fn uart_rx_queued(&self) -> usize {
        self.uart0.rx_len()
    }

    /// UART0's baud rate: the APB clock over CLKDIV.
    pub fn uart_baud(&self) -> u32 {
        self.clock.apb_hz / self.uart0.clkdiv().max(1)
    }

    /// Sets UART0's divider for `baud` at the current APB clock.
    pub fn set_uart_baud(&mut self, baud: u32) {
        self.uart0.set_clkdiv(divider_for(self.clock.apb_hz, baud));
    }

    /// UART0's clock divider (CLKDIV).
    pub fn uart_divider(&self) -> u32 {
        self.uart0.clkdiv()
    }

    /// Sets UART0's clock divider, as the ROM's `uart_div_modify` does.
    pub fn set_uart_divider(&mut self, divider: u32) {
        self.uart0.set_clkdiv(divider);
    }

    /// Queues a byte on UART0's TX FIFO (the ROM's `uart_tx_one_char`); false when full.
    pub fn uart_tx(&mut self, byte: u8) -> bool {
        let queued = self.uart0.push_tx(byte);
        self.refresh_interrupts();
        queued
    }

    /// Takes the oldest byte from UART0's RX FIFO (the ROM's `uart_rx_one_char`).
    pub fn uart_rx(&mut self) -> Option<u8> {
        let byte = self.uart0.pop_rx();
        self.refresh_interrupts();
        byte
    }

    /// Appends what was written to UART1 since the last call (the SDK's `os_printf`
    /// may go there); at most [`MAX_UART1_OUTPUT`] bytes are kept in between.
    pub fn take_uart1_output(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.uart1_output);
        if self.uart1_dropped > 0 {
            let dropped = std::mem::take(&mut self.uart1_dropped);
            self.trace
                .push(|| format!("machine: {dropped} bytes of UART1 output dropped"));
        }
    }

    // ---- time ----

    /// Brings the peripherals to the CPU's cycle count `cycles_now` (since reset).
    ///
    /// A count lower than the last one (the CPU was reset alone) moves nothing but
    /// becomes the new reference.
    pub fn advance(&mut self, cycles_now: u64) {
        let delta = cycles_now.saturating_sub(self.clock.cycles);
        self.clock.cycles = cycles_now;
        if delta == 0 {
            return;
        }
        // The flash chip's own busy time (erase, program) runs on the CPU's clock too.
        if !self.flash.remaining_busy_time().is_zero() {
            let nanos = u128::from(delta) * 1_000_000_000 / u128::from(self.cpu_clock_hz().max(1));
            self.flash.advance_time(std::time::Duration::from_nanos(
                u64::try_from(nanos).unwrap_or(u64::MAX),
            ));
        }
        let per_tick = self.cycles_per_apb_tick();
        let pending = self.clock.cycle_carry.saturating_add(delta);
        let ticks = pending / per_tick;
        self.clock.cycle_carry = pending % per_tick;
        self.clock.apb_ticks += ticks;
        self.update_timers();
        if self.watchdog.deadline_ps().is_some() && self.watchdog.check(self.clock.time_ps()) {
            self.watchdog_bite = true;
            self.trace
                .push(|| "machine: the watchdog was not fed in time: wdt reset".to_string());
        }
        self.refresh_interrupts();
    }

    /// CPU cycles from the last advance until the next timer expiry or watchdog bite,
    /// if one is due; at least 1. A caller running the CPU in slices ends a slice there.
    pub fn cycles_until_next_event(&self) -> Option<u64> {
        let now = self.clock.apb_ticks;
        let watchdog = self.watchdog.deadline_ps().map(|deadline| {
            let picoseconds = u128::from(deadline.saturating_sub(self.clock.time_ps()));
            let ticks = (picoseconds * u128::from(self.clock.apb_hz)).div_ceil(1_000_000_000_000);
            u64::try_from(ticks).unwrap_or(u64::MAX)
        });
        let apb_ticks = [
            self.frc1.apb_ticks_to_expiry(now),
            self.frc2.apb_ticks_to_alarm(now),
            watchdog,
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(
            apb_ticks
                .saturating_mul(self.cycles_per_apb_tick())
                .saturating_sub(self.clock.cycle_carry)
                .max(1),
        )
    }

    /// The APB clock (timers, UART), in Hz.
    pub fn apb_clock_hz(&self) -> u32 {
        self.clock.apb_hz
    }

    /// Changes the APB clock, as firmware does when it sets the PLL up for its crystal
    /// (80 MHz); the UART divider stays, so the baud rate changes with it.
    pub fn set_apb_clock_hz(&mut self, hz: u32) {
        self.clock.rebased_ps = self.clock.time_ps();
        self.clock.rebased_tick = self.clock.apb_ticks;
        self.clock.apb_hz = hz.max(1);
    }

    /// The CPU clock: the APB clock, doubled while DPORT 0x14 bit 0 is set.
    pub fn cpu_clock_hz(&self) -> u64 {
        u64::from(self.clock.apb_hz) * self.cycles_per_apb_tick()
    }

    /// True once after the watchdog ran out: the caller resets the chip with
    /// [`ResetCause::Watchdog`].
    pub fn take_watchdog_bite(&mut self) -> bool {
        std::mem::take(&mut self.watchdog_bite)
    }

    /// Why the chip last reset, as RTC register 0x14 reports it.
    pub fn reset_cause(&self) -> ResetCause {
        self.reset_cause
    }

    /// A count that grows whenever the CPU does something beyond reading: a store to a
    /// register or IRAM, a store to DRAM below the stack area (even one that leaves the
    /// value as it was: an inflate loop may rewrite equal bytes for long), a store that
    /// changes the stack area, a byte taken from or given to UART0. A program that does
    /// none of these for a while is polling, spills to its stack included (the device
    /// then lets the core rest).
    pub fn activity(&self) -> u64 {
        self.changes + self.uart0.bytes_moved()
    }

    // ---- GPIO ----

    /// The GPIO output register's changes since the last call: (cycle count of the
    /// machine's last advance when written, new value), oldest first, at most
    /// [`MAX_GPIO_EVENTS`] (later ones are dropped, and traced).
    pub fn take_gpio_events(&mut self) -> Vec<(u64, u32)> {
        let (events, dropped) = self.gpio.take_events();
        if dropped > 0 {
            self.trace
                .push(|| format!("machine: {dropped} GPIO output changes dropped"));
        }
        events
    }

    /// The GPIO output register now.
    pub fn gpio_out(&self) -> u32 {
        self.gpio.out()
    }

    // ---- tracing ----

    /// Starts (or stops, discarding what was collected) collecting trace lines.
    pub fn set_trace(&mut self, enabled: bool) {
        self.trace = Trace {
            enabled,
            ..Trace::default()
        };
    }

    /// The trace lines since the last call, at most [`MAX_TRACE_LINES`] (then a line
    /// counting the dropped ones).
    pub fn take_trace(&mut self) -> Vec<String> {
        let mut lines = std::mem::take(&mut self.trace.lines);
        let dropped = std::mem::take(&mut self.trace.dropped);
        if dropped > 0 {
            lines.push(format!("machine: {dropped} trace lines dropped"));
        }
        lines
    }

    /// Adds a line to the trace (when tracing is on).
    pub fn trace(&mut self, line: String) {
        self.trace.push(|| line);
    }

    // ---- internals ----

    fn cycles_per_apb_tick(&self) -> u64 {
        if self.dport[(DPORT_CPU_CLOCK / 4) as usize] & 1 != 0 {
            2
        } else {
            1
        }
    }

    /// The word at `address` in the flash window, if the cache maps it.
    #[inline]
    fn flash_cache_word(&self, address: u32) -> Option<u32> {
        let offset = address.wrapping_sub(FLASH_CACHE.start);
        if !self.flash_cache || offset >= FLASH_CACHE.len() as u32 {
            return None;
        }
        let start = (offset & !3) as usize;
        if let Some(bytes) = self.flash.as_bytes().get(start..start + 4) {
            return Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
        }
        // Past the memory present (a small or fake chip): the chip's own address wrapping.
        let mut word = [0xFF; 4];
        let wrapped = start % self.flash.size().max(4);
        self.flash.read(wrapped as u32, &mut word).ok()?;
        Some(u32::from_le_bytes(word))
    }

    /// A 32-bit read outside DRAM and IRAM.
    fn read32_slow(&mut self, address: u32) -> Result<u32, BusFault> {
        if let Some(word) = self.flash_cache_word(address) {
            return Ok(word);
        }
        let aligned = address & !3;
        if ROM.contains(&aligned) {
            Ok(if aligned == CHIP_DETECT_MAGIC_ADDR {
                CHIP_DETECT_MAGIC
            } else {
                0
            })
        } else {
            self.read_register(address)
        }
    }

    /// A register read (the aligned word), or a fault outside the register ranges.
    fn read_register(&mut self, address: u32) -> Result<u32, BusFault> {
        let aligned = address & !3;
        if XLMI.contains(&aligned) {
            Ok(self.read_xlmi(aligned))
        } else if IO.contains(&aligned) {
            Ok(self.read_io(aligned))
        } else {
            Err(BusFault { address })
        }
    }

    /// A register write (the aligned word), or a fault outside the register ranges.
    fn write_register(&mut self, address: u32, value: u32) -> Result<(), BusFault> {
        let aligned = address & !3;
        if XLMI.contains(&aligned) {
            self.write_xlmi(aligned, value);
        } else if IO.contains(&aligned) {
            self.write_io(aligned, value);
        } else {
            return Err(BusFault { address });
        }
        Ok(())
    }

    /// A sub-word register write: merged into the register's current value.
    fn write_register_lanes(
        &mut self,
        address: u32,
        value: u32,
        width: u32,
    ) -> Result<(), BusFault> {
        let aligned = address & !3;
        if !XLMI.contains(&aligned) && !IO.contains(&aligned) {
            return Err(BusFault { address });
        }
        let current = self.peek(aligned);
        self.write_register(aligned, merge_lane(current, address, value, width))
    }

    /// The word at `address` as a write would merge with it: a read without side effects
    /// (the UART FIFOs read 0).
    fn peek(&mut self, address: u32) -> u32 {
        if address == UART0_BASE || address == UART1_BASE {
            0
        } else {
            self.read32(address).unwrap_or(0)
        }
    }

    fn read_xlmi(&mut self, address: u32) -> u32 {
        let offset = address.wrapping_sub(DPORT_BASE);
        match address {
            _ if (DPORT_EFUSE..DPORT_EFUSE + 16).contains(&offset) => {
                self.config.efuses[((offset - DPORT_EFUSE) / 4) as usize]
            }
            _ if (offset as usize) < DPORT_WORDS * 4 => self.dport[offset as usize / 4],
            WDEV_MICROSECONDS => (self.clock.time_ps() / 1_000_000) as u32,
            _ => self.unknown_read(address),
        }
    }

    fn write_xlmi(&mut self, address: u32, value: u32) {
        let offset = address.wrapping_sub(DPORT_BASE);
        match address {
            _ if (DPORT_EFUSE..DPORT_EFUSE + 16).contains(&offset) => {}
            _ if (offset as usize) < DPORT_WORDS * 4 => {
                if offset == DPORT_EDGE_INT_ENABLE || offset == DPORT_CPU_CLOCK {
                    // Time so far ran at the old settings.
                    self.update_timers();
                }
                self.dport[offset as usize / 4] = value;
            }
            WDEV_MICROSECONDS => {}
            _ => self.unknown_write(address, value),
        }
    }

    fn read_io(&mut self, address: u32) -> u32 {
        let offset = address & 0xFF;
        let index = offset as usize / 4;
        let value = match address & !0xFF {
            UART0_BASE => self.uart0.read(offset),
            SPI1_BASE => self.spi1.read(offset),
            SPI0_BASE => self.spi0.read(offset),
            GPIO_BASE => self.gpio.read(offset),
            TIMER_BASE => {
                self.update_timers();
                match offset {
                    0x00..0x10 => self.frc1.read(offset),
                    0x20..0x34 => self.frc2.read(offset),
                    _ => self.unknown_read(address),
                }
            }
            RTC_BASE if offset == RTC_RESET_CAUSE => self.reset_cause as u32,
            RTC_BASE => self.rtc[index],
            IO_MUX_BASE => self.io_mux[index],
            WATCHDOG_BASE => self.watchdog.read(offset, self.clock.time_ps()),
            UART1_BASE => self.uart1.read(offset),
            _ if RTC_MEMORY.contains(&address) => {
                self.rtc_memory[((address - RTC_MEMORY.start) / 4) as usize]
            }
            _ => self.unknown_read(address),
        };
        self.refresh_interrupts();
        value
    }

    fn write_io(&mut self, address: u32, value: u32) {
        let offset = address & 0xFF;
        let index = offset as usize / 4;
        match address & !0xFF {
            UART0_BASE => {
                if !self.uart0.write(offset, value) {
                    self.trace
                        .push(|| "machine: UART0 TX FIFO full, byte lost".to_string());
                }
            }
            SPI1_BASE => self.spi1.write(offset, value, None),
            SPI0_BASE => {
                let flash = if self.flash_attached {
                    Some(&mut self.flash)
                } else {
                    None
                };
                self.spi0.write(offset, value, flash);
            }
            GPIO_BASE => self.gpio.write(offset, value, self.clock.cycles),
            TIMER_BASE => {
                self.update_timers();
                let now = self.clock.apb_ticks;
                match offset {
                    0x00..0x10 => self.frc1.write(offset, value, now),
                    0x20..0x34 => self.frc2.write(offset, value, now),
                    _ => self.unknown_write(address, value),
                }
            }
            RTC_BASE if offset == RTC_RESET_CAUSE => {}
            RTC_BASE => self.rtc[index] = value,
            IO_MUX_BASE => self.io_mux[index] = value,
            WATCHDOG_BASE => self.watchdog.write(offset, value, self.clock.time_ps()),
            UART1_BASE => {
                self.uart1.write(offset, value);
                self.drain_uart1();
            }
            _ if RTC_MEMORY.contains(&address) => {
                self.rtc_memory[((address - RTC_MEMORY.start) / 4) as usize] = value;
            }
            _ => self.unknown_write(address, value),
        }
        self.refresh_interrupts();
    }

    /// UART1's TX line: everything queued goes to the output log at once.
    fn drain_uart1(&mut self) {
        let mut bytes = Vec::new();
        self.uart1.take_tx(&mut bytes, usize::MAX);
        let room = MAX_UART1_OUTPUT - self.uart1_output.len();
        let kept = bytes.len().min(room);
        self.uart1_output.extend_from_slice(&bytes[..kept]);
        self.uart1_dropped += bytes.len() - kept;
    }

    fn unknown_read(&mut self, address: u32) -> u32 {
        match self.unknown.get(&address) {
            Some(&value) => value,
            None => {
                self.remember_unknown(address, 0);
                0
            }
        }
    }

    fn unknown_write(&mut self, address: u32, value: u32) {
        match self.unknown.get_mut(&address) {
            Some(slot) => *slot = value,
            None => self.remember_unknown(address, value),
        }
    }

    /// Stores a first-seen undecoded register, while the store has room.
    fn remember_unknown(&mut self, address: u32, value: u32) {
        if self.unknown.len() < MAX_UNKNOWN_REGISTERS {
            self.unknown.insert(address, value);
            self.trace
                .push(|| format!("machine: unmodelled register {address:#010x} used"));
        } else if !self.unknown_full_traced {
            self.unknown_full_traced = true;
            self.trace.push(|| {
                format!(
                    "machine: {MAX_UNKNOWN_REGISTERS} unmodelled registers in use; \
                     from {address:#010x} on, new ones read 0 and ignore writes"
                )
            });
        }
    }

    /// Brings both timers to the current APB tick and records edge expiries.
    fn update_timers(&mut self) {
        let now = self.clock.apb_ticks;
        let frc1_edges_enabled =
            self.dport[(DPORT_EDGE_INT_ENABLE / 4) as usize] & EDGE_INT_FRC1 != 0;
        if let Expiry {
            fired: true,
            edge: true,
        } = self.frc1.update(now)
        {
            if frc1_edges_enabled {
                self.edge_pulses |= 1 << interrupt::FRC1;
            }
        }
        if let Expiry {
            fired: true,
            edge: true,
        } = self.frc2.update(now)
        {
            self.edge_pulses |= 1 << interrupt::FRC2;
        }
    }

    /// Recomputes the level-triggered interrupt lines.
    fn refresh_interrupts(&mut self) {
        let mut lines = 0;
        if self.uart0.int_status() != 0 || self.uart1.int_status() != 0 {
            lines |= 1 << interrupt::UART;
        }
        if self.frc1.level_pending() {
            lines |= 1 << interrupt::FRC1;
        }
        if self.frc2.level_pending() {
            lines |= 1 << interrupt::FRC2;
        }
        self.level_lines = lines;
    }
}

impl Bus for Machine {
    #[inline]
    fn read8(&mut self, address: u32) -> Result<u8, BusFault> {
        let word = match self.dram.get(word_index(address, DRAM.start)) {
            Some(&word) => word,
            None => self.read_register(address)?,
        };
        Ok(lane(word, address) as u8)
    }

    #[inline]
    fn read16(&mut self, address: u32) -> Result<u16, BusFault> {
        let word = match self.dram.get(word_index(address, DRAM.start)) {
            Some(&word) => word,
            None => self.read_register(address)?,
        };
        Ok(lane(word, address) as u16)
    }

    #[inline]
    fn read32(&mut self, address: u32) -> Result<u32, BusFault> {
        if let Some(&word) = self.dram.get(word_index(address, DRAM.start)) {
            return Ok(word);
        }
        if let Some(&word) = self.iram.get(word_index(address, IRAM.start)) {
            return Ok(word);
        }
        self.read32_slow(address)
    }

    #[inline]
    fn write8(&mut self, address: u32, value: u8) -> Result<(), BusFault> {
        match self.dram.get_mut(word_index(address, DRAM.start)) {
            Some(word) => {
                let merged = merge_lane(*word, address, u32::from(value), 1);
                self.changes += u64::from(merged != *word || address < STACK_AREA);
                *word = merged;
                Ok(())
            }
            None => {
                self.changes += 1;
                self.write_register_lanes(address, u32::from(value), 1)
            }
        }
    }

    #[inline]
    fn write16(&mut self, address: u32, value: u16) -> Result<(), BusFault> {
        match self.dram.get_mut(word_index(address, DRAM.start)) {
            Some(word) => {
                let merged = merge_lane(*word, address, u32::from(value), 2);
                self.changes += u64::from(merged != *word || address < STACK_AREA);
                *word = merged;
                Ok(())
            }
            None => {
                self.changes += 1;
                self.write_register_lanes(address, u32::from(value), 2)
            }
        }
    }

    #[inline]
    fn write32(&mut self, address: u32, value: u32) -> Result<(), BusFault> {
        if let Some(word) = self.dram.get_mut(word_index(address, DRAM.start)) {
            self.changes += u64::from(*word != value || address < STACK_AREA);
            *word = value;
            return Ok(());
        }
        if let Some(word) = self.iram.get_mut(word_index(address, IRAM.start)) {
            self.changes += 1;
            *word = value;
            return Ok(());
        }
        self.changes += 1;
        self.write_register(address, value)
    }

    #[inline]
    fn fetch32(&mut self, address: u32) -> Result<u32, BusFault> {
        if let Some(&word) = self.iram.get(word_index(address, IRAM.start)) {
            return Ok(word);
        }
        self.flash_cache_word(address).ok_or(BusFault { address })
    }

    #[inline]
    fn interrupt_lines(&mut self) -> u32 {
        let lines = self.level_lines | self.edge_pulses;
        self.edge_pulses = 0;
        lines
    }
}

/// What the ROM's functions (run as Rust) need from the chip: the inherent methods of the
/// same names.
impl RomHost for Machine {
    fn uart_tx(&mut self, byte: u8) -> bool {
        Machine::uart_tx(self, byte)
    }

    fn uart_rx(&mut self) -> Option<u8> {
        Machine::uart_rx(self)
    }

    fn set_uart_divider(&mut self, divider: u32) {
        Machine::set_uart_divider(self, divider);
    }

    fn flash(&mut self) -> &mut SpiFlash {
        &mut self.flash
    }

    fn attach_flash(&mut self) {
        self.set_flash_attached(true);
    }

    fn set_flash_cache(&mut self, enabled: bool) {
        Machine::set_flash_cache(self, enabled);
    }

    fn trace(&mut self, line: String) {
        Machine::trace(self, line);
    }
}
