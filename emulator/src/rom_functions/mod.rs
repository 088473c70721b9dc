//! The ESP8266 mask ROM's functions, done in Rust. The ROM's bytes are Espressif's and are not
//! shipped: the CPU traps whenever its PC enters 0x4000_0000..0x4001_0000
//! ([`xtensa_lx106::Stop::Trap`]), and the machine hands the trap to [`call`], which does what
//! the ROM code at that address does and leaves the core where the ROM would leave it.
//!
//! The shape is sans I/O, like the rest of the emulator's core: [`RomHost`] is what the ROM
//! needs from the chip around the CPU (memory through [`xtensa_lx106::Bus`], UART0, the SPI
//! flash chip, the flash cache), [`RomState`] is the ROM's own data (the interrupt and exception
//! handler tables, the CPU frequency, the installed `putc`, interrupt frames in progress), and
//! [`call`] returns a [`RomOutcome`]: the function returned (results in a2/a3 by the CALL0 ABI,
//! PC = a0), it must be retried later because it waits for the UART or, in `ets_run`, for an
//! interrupt ([`RomOutcome::Blocked`]: let time pass as for [`xtensa_lx106::Stop::Waiting`],
//! then run the core again), the chip restarts ([`RomOutcome::Reset`]), or it stops
//! ([`RomOutcome::Halted`]: a crash, or a ROM address the virtual chip does not implement, which
//! is never guessed at). At every reset the machine makes a fresh [`RomState`] and stores the
//! `flashchip` descriptor ([`FlashChipParams::for_flash`], [`FlashChipParams::store`]) where the
//! ROM's boot code keeps it, since the SPI functions take their bounds from there.
//!
//! The ROM's addresses come from esp-protocol's table of ROM functions; [`rom_functions`] pairs
//! each with the Rust routine that does its work, if the virtual chip has one. The
//! exception vectors are handled when VECBASE is still the ROM's: a level-1 interrupt runs the
//! attached handlers (guest code, called with the ROM's 0x50-byte exception frame on the stack
//! and returning to `_xtos_return_from_exc`), an exception with a handler registered through
//! `_xtos_set_exception_handler` runs it the same way, and any other exception prints what
//! boards print (`Fatal exception (N): ` and the `epc1=…` line) and halts the virtual chip.
//! Time spent inside the ROM is charged to the core with [`xtensa_lx106::Cpu::add_cycles`] only
//! where it is long and known: `ets_delay_us` and waits for a busy flash chip.

mod exceptions;
mod flash;
mod guest;
mod libgcc;
mod md5;
mod printf;
mod strings;
mod system;
mod table;
#[cfg(test)]
mod test_host;
mod uart;

pub use esp_protocol::rom_functions::{address_of, LOADER_RETURN};
pub use table::{rom_functions, RomFunction};

use xtensa_lx106::{Bus, Cpu};

use crate::boot::ResetCause;
use crate::flash::SpiFlash;
use exceptions::ExceptionFrame;
use guest::Fault;
use printf::PendingOutput;

/// The ROM's data area in DRAM holds the `flashchip` descriptor (SpiFlashChip) here.
pub const FLASHCHIP_ADDRESS: u32 = 0x3fff_c714;
/// The CPU frequency the ROM reports until `ets_update_cpu_frequency` changes it, in MHz.
pub const DEFAULT_CPU_MHZ: u32 = 80;

/// What the ROM functions need from the chip around the CPU (implemented by the emulator's
/// machine, and by small test doubles). Memory goes through the [`Bus`]: a [`xtensa_lx106::BusFault`]
/// inside a ROM function is a crash ([`RomOutcome::Halted`]).
pub trait RomHost: Bus {
    /// Queues a byte on UART0's TX FIFO; false when the FIFO is full (the ROM's
    /// `uart_tx_one_char` then waits: [`call`] returns [`RomOutcome::Blocked`]).
    fn uart_tx(&mut self, byte: u8) -> bool;
    /// Takes a byte from UART0's RX FIFO.
    fn uart_rx(&mut self) -> Option<u8>;
    /// Sets UART0's clock divider (`uart_div_modify`).
    fn set_uart_divider(&mut self, divider: u32);
    /// The SPI flash chip.
    fn flash(&mut self) -> &mut SpiFlash;
    /// Routes the SPI0 pins to the flash chip (`spi_flash_attach`): until then the SPI
    /// registers reach no chip and MISO reads all ones.
    fn attach_flash(&mut self);
    /// Maps flash into 0x4020_0000 (`Cache_Read_Enable`) or unmaps it (`Cache_Read_Disable`).
    fn set_flash_cache(&mut self, enabled: bool);
    /// One line for --trace.
    fn trace(&mut self, line: String);
}

/// How a ROM call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RomOutcome {
    /// The function is done and the core is set to go on (usually at the caller's a0).
    Returned,
    /// The function waits for something outside the core (UART FIFO space, a received byte, an
    /// interrupt in `ets_run`): run the core again later without touching it; it traps at the
    /// same PC and the call is retried. Nothing the guest can see has changed, except that
    /// `ets_run` has lowered PS.INTLEVEL to 0 as its WAITI does, so pending interrupts are taken.
    Blocked,
    /// The chip restarts through the ROM's boot code.
    Reset(ResetKind),
    /// The chip goes silent: a crash inside the ROM, a fatal exception, or a ROM function the
    /// virtual chip does not implement.
    Halted {
        /// What happened, for the trace and the user.
        reason: String,
    },
}

/// Why the ROM's boot code runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetKind {
    /// `software_reset()`: a system reset requested by software (the machine decides the reset
    /// cause it then reports).
    Software,
    /// A jump to `_ResetVector`, `_ResetHandler` or `main`: the boot code runs again without a
    /// reset of the peripherals; the reset cause stays what it was.
    RomEntry,
    /// Code uploaded through the UART loader returned to it (at [`LOADER_RETURN`], the
    /// address the esptool stubs put in a0 before jumping to their main): the loader goes on to
    /// run the firmware in flash, as the model in `device::stub` does for RUN_USER_CODE.
    ReturnToLoader,
}

/// The ROM's own state: what its data area in DRAM holds on a real chip, kept in Rust.
#[derive(Debug, Clone)]
pub struct RomState {
    reset_cause: ResetCause,
    cpu_mhz: u32,
    /// Handler and argument per interrupt (ets_isr_attach / _xtos_set_interrupt_handler_arg).
    interrupt_handlers: [(u32, u32); exceptions::INTERRUPT_COUNT],
    /// C handler per EXCCAUSE (_xtos_set_exception_handler).
    exception_handlers: [u32; exceptions::EXCEPTION_CAUSES],
    /// Exception frames whose guest handlers are running, innermost last.
    frames: Vec<ExceptionFrame>,
    /// Output of `ets_printf` still to go through the installed putc, innermost last.
    pending_output: Vec<PendingOutput>,
    /// The character function `ets_printf` and `ets_putc` write through (0: UART0).
    putc1: u32,
    user_start: u32,
    watchdog: system::WatchdogState,
}

impl RomState {
    /// The ROM's state after its boot code ran, for a chip that reset for `reset_cause`.
    pub fn new(reset_cause: ResetCause) -> Self {
        Self {
            reset_cause,
            cpu_mhz: DEFAULT_CPU_MHZ,
            interrupt_handlers: exceptions::default_interrupt_handlers(),
            exception_handlers: exceptions::default_exception_handlers(),
            frames: Vec::new(),
            pending_output: Vec::new(),
            putc1: 0,
            user_start: 0,
            watchdog: system::WatchdogState::default(),
        }
    }

    /// The CPU frequency the ROM believes in (MHz), as `ets_get_cpu_frequency` returns it.
    pub fn cpu_mhz(&self) -> u32 {
        self.cpu_mhz
    }

    /// The user entry point `ets_set_user_start` stored (0 if none).
    pub fn user_start(&self) -> u32 {
        self.user_start
    }

    /// The mode the watchdog was put in through the ROM (`ets_wdt_*`), if any.
    pub fn watchdog_mode(&self) -> Option<u32> {
        self.watchdog.mode
    }
}

/// The `flashchip` descriptor (the SDK's `SpiFlashChip`): six u32 in this order at
/// [`FLASHCHIP_ADDRESS`], set by `SPIParamCfg`, read by the SPI functions for their bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashChipParams {
    /// JEDEC ID bytes as read, little-endian: manufacturer | type << 8 | capacity << 16.
    pub device_id: u32,
    /// Bytes.
    pub chip_size: u32,
    /// Erase block size in bytes (64 KiB).
    pub block_size: u32,
    /// Erase sector size in bytes (4 KiB).
    pub sector_size: u32,
    /// Program page size in bytes (256).
    pub page_size: u32,
    /// Status register bits the ROM writes in `SPIUnlock`/`SPI_write_status`.
    pub status_mask: u32,
}

impl FlashChipParams {
    /// The descriptor of `flash` as the ROM's boot code leaves it before a program changes it.
    pub fn for_flash(flash: &SpiFlash) -> Self {
        let [_, manufacturer, memory_type, capacity] = flash.jedec_id().to_be_bytes();
        Self {
            device_id: u32::from_le_bytes([manufacturer, memory_type, capacity, 0]),
            chip_size: u32::try_from(flash.size()).unwrap_or(u32::MAX),
            block_size: crate::flash::BLOCK_64K_SIZE as u32,
            sector_size: crate::flash::SECTOR_SIZE as u32,
            page_size: crate::flash::PAGE_SIZE as u32,
            status_mask: 0xFFFF,
        }
    }

    /// Stores the descriptor at [`FLASHCHIP_ADDRESS`] (what the ROM's boot code does).
    pub fn store<B: Bus>(&self, bus: &mut B) -> Result<(), xtensa_lx106::BusFault> {
        let words = [
            self.device_id,
            self.chip_size,
            self.block_size,
            self.sector_size,
            self.page_size,
            self.status_mask,
        ];
        for (index, word) in (0u32..).zip(words) {
            bus.write32(FLASHCHIP_ADDRESS + 4 * index, word)?;
        }
        Ok(())
    }

    /// Reads the descriptor from [`FLASHCHIP_ADDRESS`].
    pub fn load<B: Bus>(bus: &mut B) -> Result<Self, xtensa_lx106::BusFault> {
        let mut words = [0u32; 6];
        for (index, word) in (0u32..).zip(words.iter_mut()) {
            *word = bus.read32(FLASHCHIP_ADDRESS + 4 * index)?;
        }
        let [device_id, chip_size, block_size, sector_size, page_size, status_mask] = words;
        Ok(Self {
            device_id,
            chip_size,
            block_size,
            sector_size,
            page_size,
            status_mask,
        })
    }
}

/// Runs the ROM code at `cpu.pc()` (the PC of a [`xtensa_lx106::Stop::Trap`] in the ROM range).
pub fn call<H: RomHost>(cpu: &mut Cpu, host: &mut H, state: &mut RomState) -> RomOutcome {
    let pc = cpu.pc();
    let entry = table::lookup(pc);
    let result = match entry.and_then(|function| function.routine) {
        Some(routine) => routine.run(&mut Call { cpu, host, state }),
        None => Ok(RomOutcome::Halted {
            reason: format!(
                "call to ROM {pc:#010x}{}, which the virtual chip does not implement",
                entry.map_or(String::new(), |function| format!(" ({})", function.name))
            ),
        }),
    };
    let outcome = result.unwrap_or_else(|fault| RomOutcome::Halted {
        reason: format!(
            "{} at {pc:#010x}: {fault}: the chip takes an exception inside the ROM",
            entry.map_or("ROM code", |function| function.name)
        ),
    });
    match &outcome {
        RomOutcome::Halted { reason } => host.trace(format!("rom: {reason}")),
        RomOutcome::Reset(kind) => host.trace(format!("rom: restart ({kind:?})")),
        RomOutcome::Returned | RomOutcome::Blocked => {}
    }
    outcome
}

/// One ROM call in progress: the core, the chip around it and the ROM's state.
struct Call<'a, H> {
    cpu: &'a mut Cpu,
    host: &'a mut H,
    state: &'a mut RomState,
}

impl<H: RomHost> Call<'_, H> {
    /// Argument `index` (0-based) of a CALL0-ABI function: a2..a7.
    fn arg(&self, index: usize) -> u32 {
        self.cpu.ar(2 + index)
    }

    /// Returns from a function without a result.
    fn return_void(&mut self) -> Result<RomOutcome, Fault> {
        self.cpu.set_pc(self.cpu.ar(0));
        Ok(RomOutcome::Returned)
    }

    /// Returns `value` in a2.
    fn return_u32(&mut self, value: u32) -> Result<RomOutcome, Fault> {
        self.cpu.set_ar(2, value);
        self.return_void()
    }

    /// Returns a 64-bit `value` in a2 (low word) and a3 (high word).
    fn return_u64(&mut self, value: u64) -> Result<RomOutcome, Fault> {
        self.cpu.set_ar(2, value as u32);
        self.cpu.set_ar(3, (value >> 32) as u32);
        self.return_void()
    }
}
