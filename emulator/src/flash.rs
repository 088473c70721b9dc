//! The SPI NOR flash chip of the virtual ESP8266, modelled on Winbond's W25Q family
//! (W25Q20 256 KiB .. W25Q128 16 MiB).
//!
//! Sans-I/O: the chip is a value in memory. Every operation takes effect at once; time exists
//! only as datasheet durations ([`FlashOperation::typical_duration`]) that a caller in realtime
//! mode may wait for, and, when [`FlashOptions::model_busy_time`] is set, as a busy period (the
//! BUSY/WIP bit) that lasts until the caller reports the time passed with
//! [`SpiFlash::advance_time`].
//!
//! Modelled: read (0x03) and fast read (0x0B); page program (0x02), which only clears bits and
//! wraps within its 256-byte page; 4 KiB, 32 KiB, 64 KiB and chip erase; the write enable
//! latch; the three status registers with non-volatile (0x06 first) and volatile (0x50 first)
//! writes; block protection by BP0-BP2, TB, SEC and CMP; JEDEC ID (0x9F); SFDP (0x5A);
//! software reset (0x66 then 0x99). Faults: stuck sectors, a fake chip whose memory is smaller
//! than its ID claims, and whole-chip write protection.
//!
//! Not modelled: dual/quad/QPI transfers, erase/program suspend, power-down, the legacy ID
//! commands (0x90, 0xAB, 0x4B), security registers (their lock bits are kept but guard nothing),
//! individual block locks (WPS=1), status register protection by SRP0/SRP1 and the /WP pin
//! (the status registers are always writable), and the HOLD pin. Such commands are ignored and
//! MISO reads 0xFF, as nothing drives the line.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use thiserror::Error;

pub use esp_protocol::spi_flash::PAGE_SIZE;
/// Bytes per erase sector, the smallest erasable unit.
pub const SECTOR_SIZE: usize = esp_protocol::rom_erase::SECTOR_SIZE as usize;
/// Bytes per 32 KiB erase block (0x52).
pub const BLOCK_32K_SIZE: usize = 32 * 1024;
/// Bytes per 64 KiB erase block (0xD8).
pub const BLOCK_64K_SIZE: usize = 64 * 1024;
/// Chip sizes the model accepts, in bytes.
pub const SUPPORTED_SIZES: [usize; 7] = [
    256 * 1024,
    512 * 1024,
    1024 * 1024,
    2 * 1024 * 1024,
    4 * 1024 * 1024,
    8 * 1024 * 1024,
    16 * 1024 * 1024,
];
/// The SFDP signature "SFDP" as a little-endian dword at SFDP address 0.
pub const SFDP_SIGNATURE: u32 = 0x5044_4653;

/// Value of an erased byte, and what MISO reads when the chip does not drive it.
const ERASED: u8 = 0xFF;
const SFDP_AREA_SIZE: usize = 256;
const BASIC_PARAMETER_TABLE_ADDRESS: usize = 0x80;
const WINBOND_SPI_NOR_ID: u32 = 0xEF_40_00;
/// Status bits a write can change: SR1 BP0-2, TB, SEC, SRP0; SR2 SRL, QE, LB1-3, CMP;
/// SR3 WPS, DRV0-1, HOLD/RST. BUSY, WEL and SUS are read-only.
const WRITABLE_STATUS_BITS: [u8; 3] = [0xFC, 0x7B, 0xE4];

pub use esp_protocol::spi_flash::{opcode, status as status_bits};

/// Why a flash chip could not be built or an operation was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FlashError {
    /// The contents are not one of [`SUPPORTED_SIZES`] long.
    #[error(
        "unsupported flash size {size:#x} bytes: must be a power of two from 256 KiB to 16 MiB"
    )]
    UnsupportedSize {
        /// Length of the contents given.
        size: usize,
    },
    /// The physical size is unsupported or larger than the size the chip claims.
    #[error("physical size {physical_size:#x} bytes must be a supported size no larger than the claimed {size:#x} bytes")]
    UnsupportedPhysicalSize {
        /// Physical size asked for.
        physical_size: usize,
        /// Size the chip claims.
        size: usize,
    },
    /// A stuck sector index lies outside the physical array.
    #[error("stuck sector {sector} is outside the chip's {sector_count} sectors")]
    SectorOutOfRange {
        /// Sector index given.
        sector: usize,
        /// Number of physical sectors.
        sector_count: usize,
    },
    /// The range runs past the end of the chip.
    #[error("{len:#x} bytes at {address:#x} run past the end of the {size:#x}-byte flash")]
    OutOfBounds {
        /// Start of the range.
        address: u32,
        /// Length of the range.
        len: usize,
        /// Size of the chip.
        size: usize,
    },
    /// An erase range does not start and end on 4 KiB sector boundaries.
    #[error("erase of {len:#x} bytes at {address:#x} is not aligned to 4 KiB sectors")]
    MisalignedErase {
        /// Start of the range.
        address: u32,
        /// Length of the range.
        len: usize,
    },
}

/// Construction options, including the faults the device can inject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlashOptions {
    /// JEDEC ID to report instead of the Winbond default for the size (0xEF4012 .. 0xEF4018).
    pub jedec_id: Option<u32>,
    /// Memory really present, if smaller than the contents: a fake chip whose addresses wrap.
    pub physical_size: Option<usize>,
    /// Physical 4 KiB sector indices that keep their contents when erased.
    pub stuck_sectors: BTreeSet<usize>,
    /// Start with non-volatile status bits that protect the whole array.
    pub write_protected: bool,
    /// Hold BUSY set after each program, erase or status write until the caller advances time.
    pub model_busy_time: bool,
}

/// A chip operation that keeps the real part busy for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlashOperation {
    /// Page program (0x02) of up to 256 bytes.
    PageProgram,
    /// 4 KiB sector erase (0x20).
    SectorErase,
    /// 32 KiB block erase (0x52).
    BlockErase32K,
    /// 64 KiB block erase (0xD8).
    BlockErase64K,
    /// Chip erase (0xC7, 0x60).
    ChipErase,
    /// Non-volatile status register write.
    WriteStatus,
}

impl FlashOperation {
    /// Datasheet typical busy time of the operation on a chip of `chip_size` bytes.
    ///
    /// Source: Winbond W25Q32JV datasheet (rev. F, 2017-05-11), "AC Electrical
    /// Characteristics": tPP 0.4 ms, tSE 45 ms, tBE1 120 ms, tBE2 150 ms, tW 10 ms typical,
    /// tCE 10 s typical for the 4 MiB part. Chip erase is scaled at 2.5 s per MiB, which also
    /// matches the W25Q64JV (20 s) and W25Q128JV (40 s) figures.
    pub fn typical_duration(self, chip_size: usize) -> Duration {
        const CHIP_ERASE_MICROS_PER_MIB: u64 = 2_500_000;
        match self {
            Self::PageProgram => Duration::from_micros(400),
            Self::SectorErase => Duration::from_millis(45),
            Self::BlockErase32K => Duration::from_millis(120),
            Self::BlockErase64K => Duration::from_millis(150),
            Self::ChipErase => {
                Duration::from_micros(CHIP_ERASE_MICROS_PER_MIB * chip_size as u64 / (1 << 20))
            }
            Self::WriteStatus => Duration::from_millis(10),
        }
    }
}

/// What a direct program or erase did. The real flasher stub never checks; tests may.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Part of the range was block-protected, so the chip silently skipped those pages or blocks.
    pub write_protected: bool,
    /// Datasheet typical time the real chip would have been busy for the parts it executed.
    pub typical_duration: Duration,
}

impl WriteReport {
    fn record(&mut self, executed: bool, duration: Duration) {
        if executed {
            self.typical_duration += duration;
        } else {
            self.write_protected = true;
        }
    }
}

/// An instruction that changes the meaning of the one right after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefix {
    EnableReset,
    VolatileStatusWrite,
}

/// A W25Q-style SPI NOR flash chip.
#[derive(Clone)]
pub struct SpiFlash {
    /// The physical cells; shorter than `size` on a fake chip.
    memory: Vec<u8>,
    /// The size the chip claims, which its logical addresses span.
    size: usize,
    jedec_id: u32,
    stuck_sectors: BTreeSet<usize>,
    dirty_sectors: Vec<bool>,
    /// The status registers in force, without BUSY and WEL.
    status: [u8; 3],
    /// The status registers as reloaded at reset.
    nonvolatile_status: [u8; 3],
    write_enabled: bool,
    pending_prefix: Option<Prefix>,
    model_busy_time: bool,
    busy_for: Duration,
}

impl fmt::Debug for SpiFlash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SpiFlash")
            .field("size", &self.size)
            .field("physical_size", &self.memory.len())
            .field("jedec_id", &format_args!("{:#08x}", self.jedec_id))
            .field("status_registers", &self.status_registers())
            .field("stuck_sectors", &self.stuck_sectors)
            .finish_non_exhaustive()
    }
}

impl SpiFlash {
    /// A chip holding `contents`, whose length is the size the chip claims.
    pub fn new(mut contents: Vec<u8>, options: FlashOptions) -> Result<Self, FlashError> {
        let size = contents.len();
        if !SUPPORTED_SIZES.contains(&size) {
            return Err(FlashError::UnsupportedSize { size });
        }
        let physical_size = options.physical_size.unwrap_or(size);
        if !SUPPORTED_SIZES.contains(&physical_size) || physical_size > size {
            return Err(FlashError::UnsupportedPhysicalSize {
                physical_size,
                size,
            });
        }
        let sector_count = physical_size / SECTOR_SIZE;
        if let Some(&sector) = options.stuck_sectors.range(sector_count..).next() {
            return Err(FlashError::SectorOutOfRange {
                sector,
                sector_count,
            });
        }
        contents.truncate(physical_size);
        let mut flash = Self {
            memory: contents,
            size,
            jedec_id: options
                .jedec_id
                .unwrap_or(WINBOND_SPI_NOR_ID | size.trailing_zeros()),
            stuck_sectors: options.stuck_sectors,
            dirty_sectors: vec![false; sector_count],
            status: [0; 3],
            nonvolatile_status: [0; 3],
            write_enabled: false,
            pending_prefix: None,
            model_busy_time: options.model_busy_time,
            busy_for: Duration::ZERO,
        };
        flash.set_write_protected(options.write_protected);
        Ok(flash)
    }

    /// A fully erased chip of `size` bytes with default options.
    pub fn blank(size: usize) -> Result<Self, FlashError> {
        Self::new(vec![ERASED; size], FlashOptions::default())
    }

    /// The size the chip claims, in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The size of the memory really present, in bytes.
    pub fn physical_size(&self) -> usize {
        self.memory.len()
    }

    /// The 24-bit JEDEC ID: manufacturer, memory type, capacity.
    pub fn jedec_id(&self) -> u32 {
        self.jedec_id
    }

    /// The physical contents (as long as [`Self::physical_size`]).
    pub fn as_bytes(&self) -> &[u8] {
        &self.memory
    }

    /// Indices of the physical 4 KiB sectors written since the last [`Self::clear_dirty`].
    pub fn dirty_sectors(&self) -> impl Iterator<Item = usize> + '_ {
        self.dirty_sectors
            .iter()
            .enumerate()
            .filter_map(|(sector, &dirty)| dirty.then_some(sector))
    }

    /// Forgets which sectors were written, e.g. after persisting them.
    pub fn clear_dirty(&mut self) {
        self.dirty_sectors.fill(false);
    }

    /// Status registers 1-3 as the chip would report them, BUSY and WEL included.
    pub fn status_registers(&self) -> [u8; 3] {
        let mut registers = self.status;
        if !self.busy_for.is_zero() {
            registers[0] |= status_bits::BUSY;
        }
        if self.write_enabled {
            registers[0] |= status_bits::WEL;
        }
        registers
    }

    /// The logical address range the block-protect bits currently protect (`0..0` if none).
    pub fn protected_range(&self) -> Range<u32> {
        let range = decode_protected_range(self.status[0], self.status[1], self.size);
        range.start as u32..range.end as u32
    }

    /// Sets (BP2-BP0 = 111, CMP = 0) or clears (BP and CMP = 0) whole-chip protection, non-volatile.
    pub fn set_write_protected(&mut self, protected: bool) {
        for status in [&mut self.status, &mut self.nonvolatile_status] {
            status[0] &= !status_bits::BLOCK_PROTECT;
            if protected {
                status[0] |= status_bits::BLOCK_PROTECT;
            }
            status[1] &= !status_bits::CMP;
        }
    }

    /// Makes a physical sector refuse (or accept again) to be erased.
    pub fn set_sector_stuck(&mut self, sector: usize, stuck: bool) -> Result<(), FlashError> {
        let sector_count = self.dirty_sectors.len();
        if sector >= sector_count {
            return Err(FlashError::SectorOutOfRange {
                sector,
                sector_count,
            });
        }
        if stuck {
            self.stuck_sectors.insert(sector);
        } else {
            self.stuck_sectors.remove(&sector);
        }
        Ok(())
    }

    /// How long the chip stays busy unless time advances (always zero without busy modelling).
    pub fn remaining_busy_time(&self) -> Duration {
        self.busy_for
    }

    /// Starts or stops holding BUSY after each operation ([`FlashOptions::model_busy_time`]).
    pub fn set_model_busy_time(&mut self, enabled: bool) {
        self.model_busy_time = enabled;
        if !enabled {
            self.busy_for = Duration::ZERO;
        }
    }

    /// Tells the chip that `elapsed` time passed, ending a busy period once it has run out.
    pub fn advance_time(&mut self, elapsed: Duration) {
        self.busy_for = self.busy_for.saturating_sub(elapsed);
    }

    /// Power-on or software reset: clears WEL, any armed prefix and busy state, and reloads the
    /// status registers from their non-volatile values.
    pub fn reset(&mut self) {
        self.write_enabled = false;
        self.pending_prefix = None;
        self.busy_for = Duration::ZERO;
        self.status = self.nonvolatile_status;
    }

    /// Executes one instruction as the chip sees it between /CS falling and rising.
    ///
    /// `address` is the 24-bit address phase of instructions that have one; without it they
    /// are ignored. Dummy cycles are the caller's business: they appear in neither `mosi` nor
    /// `miso`. `miso` is filled with what the chip shifts out after the address (0xFF where
    /// it drives nothing). While busy, only status register reads are accepted.
    pub fn spi_transaction(
        &mut self,
        command: u8,
        address: Option<u32>,
        mosi: &[u8],
        miso: &mut [u8],
    ) {
        miso.fill(ERASED);
        let prefix = self.pending_prefix.take();
        let is_status_read = matches!(
            command,
            opcode::READ_STATUS_1 | opcode::READ_STATUS_2 | opcode::READ_STATUS_3
        );
        if !self.busy_for.is_zero() && !is_status_read {
            return;
        }
        let volatile_write = prefix == Some(Prefix::VolatileStatusWrite);
        match (command, address) {
            (opcode::READ_STATUS_1, _) => miso.fill(self.status_registers()[0]),
            (opcode::READ_STATUS_2, _) => miso.fill(self.status[1]),
            (opcode::READ_STATUS_3, _) => miso.fill(self.status[2]),
            (opcode::WRITE_ENABLE, _) => self.write_enabled = true,
            (opcode::WRITE_DISABLE, _) => self.write_enabled = false,
            (opcode::VOLATILE_STATUS_WRITE_ENABLE, _) => {
                self.pending_prefix = Some(Prefix::VolatileStatusWrite);
            }
            (opcode::WRITE_STATUS_1, _) => self.write_status(0, mosi, volatile_write),
            (opcode::WRITE_STATUS_2, _) => self.write_status(1, mosi, volatile_write),
            (opcode::WRITE_STATUS_3, _) => self.write_status(2, mosi, volatile_write),
            (opcode::READ_DATA | opcode::FAST_READ, Some(address)) => {
                self.read_wrapping(self.logical(address), miso);
            }
            (opcode::READ_SFDP, Some(address)) => read_sfdp(self.size, address, miso),
            (opcode::READ_JEDEC_ID, _) => {
                let id_bytes = &self.jedec_id.to_be_bytes()[1..];
                let shown = miso.len().min(id_bytes.len());
                miso[..shown].copy_from_slice(&id_bytes[..shown]);
            }
            (opcode::PAGE_PROGRAM, Some(address)) if !mosi.is_empty() => {
                let start = self.logical(address);
                self.execute_write(FlashOperation::PageProgram, |chip| {
                    chip.page_program(start, mosi)
                });
            }
            (opcode::SECTOR_ERASE, Some(address)) => {
                self.spi_erase(FlashOperation::SectorErase, address, SECTOR_SIZE);
            }
            (opcode::BLOCK_ERASE_32K, Some(address)) => {
                self.spi_erase(FlashOperation::BlockErase32K, address, BLOCK_32K_SIZE);
            }
            (opcode::BLOCK_ERASE_64K, Some(address)) => {
                self.spi_erase(FlashOperation::BlockErase64K, address, BLOCK_64K_SIZE);
            }
            (opcode::CHIP_ERASE | opcode::CHIP_ERASE_ALT, _) => {
                self.execute_write(FlashOperation::ChipErase, Self::erase_whole_chip);
            }
            (opcode::ENABLE_RESET, _) => self.pending_prefix = Some(Prefix::EnableReset),
            (opcode::RESET, _) if prefix == Some(Prefix::EnableReset) => self.reset(),
            _ => {}
        }
    }

    /// Reads `buf.len()` bytes at `address`.
    pub fn read(&self, address: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        let start = self.check_bounds(address, buf.len())?;
        self.read_wrapping(start, buf);
        Ok(())
    }

    /// Programs `data` at `address` page by page, as the stub does: bits only go from 1 to 0.
    ///
    /// Needs no write enable (the stub sends it itself); block protection still applies.
    pub fn program(&mut self, address: u32, data: &[u8]) -> Result<WriteReport, FlashError> {
        let mut position = self.check_bounds(address, data.len())?;
        let mut report = WriteReport::default();
        let page_program_time = FlashOperation::PageProgram.typical_duration(self.size);
        let mut remaining = data;
        while !remaining.is_empty() {
            let chunk_len = remaining.len().min(PAGE_SIZE - position % PAGE_SIZE);
            let (chunk, rest) = remaining.split_at(chunk_len);
            report.record(self.page_program(position, chunk), page_program_time);
            position += chunk_len;
            remaining = rest;
        }
        Ok(report)
    }

    /// Erases the 4 KiB sector starting at `address`.
    pub fn erase_sector(&mut self, address: u32) -> Result<WriteReport, FlashError> {
        self.erase_range(address, SECTOR_SIZE)
    }

    /// Erases a sector-aligned range with 64 KiB block erases where they fit, sectors elsewhere.
    pub fn erase_range(&mut self, address: u32, len: usize) -> Result<WriteReport, FlashError> {
        const SECTOR_OFFSET_BITS: usize = SECTOR_SIZE - 1;
        if (address as usize | len) & SECTOR_OFFSET_BITS != 0 {
            return Err(FlashError::MisalignedErase { address, len });
        }
        let mut position = self.check_bounds(address, len)?;
        let end = position + len;
        let mut report = WriteReport::default();
        while position < end {
            let (operation, unit) =
                if position % BLOCK_64K_SIZE == 0 && end - position >= BLOCK_64K_SIZE {
                    (FlashOperation::BlockErase64K, BLOCK_64K_SIZE)
                } else {
                    (FlashOperation::SectorErase, SECTOR_SIZE)
                };
            let executed = self.erase_block(position, unit);
            report.record(executed, operation.typical_duration(self.size));
            position += unit;
        }
        Ok(report)
    }

    /// Erases the whole chip, which the chip refuses if any block is protected.
    pub fn erase_chip(&mut self) -> WriteReport {
        let mut report = WriteReport::default();
        let executed = self.erase_whole_chip();
        report.record(
            executed,
            FlashOperation::ChipErase.typical_duration(self.size),
        );
        report
    }

    fn check_bounds(&self, address: u32, len: usize) -> Result<usize, FlashError> {
        let start = address as usize;
        match start.checked_add(len) {
            Some(end) if end <= self.size => Ok(start),
            _ => Err(FlashError::OutOfBounds {
                address,
                len,
                size: self.size,
            }),
        }
    }

    /// The chip decodes only as many address bits as its claimed size needs.
    fn logical(&self, bus_address: u32) -> usize {
        bus_address as usize % self.size
    }

    fn physical(&self, logical: usize) -> usize {
        logical % self.memory.len()
    }

    fn is_protected(&self, range: Range<usize>) -> bool {
        let protected = decode_protected_range(self.status[0], self.status[1], self.size);
        protected.start < range.end && range.start < protected.end
    }

    fn mark_dirty(&mut self, physical_start: usize) {
        self.dirty_sectors[physical_start / SECTOR_SIZE] = true;
    }

    /// Copies from `logical_start` onwards, wrapping at the end of the array as a long read does.
    fn read_wrapping(&self, logical_start: usize, buf: &mut [u8]) {
        let mut physical = self.physical(logical_start);
        let mut filled = 0;
        while filled < buf.len() {
            let chunk_len = (buf.len() - filled).min(self.memory.len() - physical);
            buf[filled..filled + chunk_len]
                .copy_from_slice(&self.memory[physical..physical + chunk_len]);
            filled += chunk_len;
            physical = 0;
        }
    }

    /// Sends a program, erase or non-volatile status write through the write enable latch.
    fn execute_write(
        &mut self,
        operation: FlashOperation,
        execute: impl FnOnce(&mut Self) -> bool,
    ) {
        if !self.write_enabled {
            return;
        }
        self.write_enabled = false;
        if execute(self) && self.model_busy_time {
            self.busy_for = operation.typical_duration(self.size);
        }
    }

    fn spi_erase(&mut self, operation: FlashOperation, bus_address: u32, unit: usize) {
        let start = self.logical(bus_address);
        self.execute_write(operation, |chip| chip.erase_block(start, unit));
    }

    /// One page program instruction; false if the page is protected.
    fn page_program(&mut self, logical_start: usize, data: &[u8]) -> bool {
        let page_start = logical_start - logical_start % PAGE_SIZE;
        if self.is_protected(page_start..page_start + PAGE_SIZE) {
            return false;
        }
        // Data past 256 bytes wraps in the page buffer and overwrites earlier bytes, so only
        // the last 256 bytes count; they start this far into the page.
        let kept = &data[data.len().saturating_sub(PAGE_SIZE)..];
        let first_offset = (logical_start + data.len() - kept.len()) % PAGE_SIZE;
        let (to_page_end, from_page_start) =
            kept.split_at(kept.len().min(PAGE_SIZE - first_offset));
        let physical_page = self.physical(page_start);
        let page = &mut self.memory[physical_page..physical_page + PAGE_SIZE];
        clear_bits(&mut page[first_offset..], to_page_end);
        clear_bits(page, from_page_start);
        self.mark_dirty(physical_page);
        true
    }

    /// One erase of the `unit`-sized block holding `logical_address`; false if any of it is protected.
    fn erase_block(&mut self, logical_address: usize, unit: usize) -> bool {
        let start = logical_address - logical_address % unit;
        if self.is_protected(start..start + unit) {
            return false;
        }
        let physical_start = self.physical(start);
        self.erase_physical(physical_start..physical_start + unit);
        true
    }

    fn erase_whole_chip(&mut self) -> bool {
        if !self.protected_range().is_empty() {
            return false;
        }
        self.erase_physical(0..self.memory.len());
        true
    }

    fn erase_physical(&mut self, range: Range<usize>) {
        for sector_start in range.step_by(SECTOR_SIZE) {
            if !self.stuck_sectors.contains(&(sector_start / SECTOR_SIZE)) {
                self.memory[sector_start..sector_start + SECTOR_SIZE].fill(ERASED);
                self.mark_dirty(sector_start);
            }
        }
    }

    /// Writes status registers from `first_register` on; write status 1 may also set register 2.
    fn write_status(&mut self, first_register: usize, values: &[u8], volatile: bool) {
        let register_count = if first_register == 0 { 2 } else { 1 };
        let values = &values[..values.len().min(register_count)];
        if values.is_empty() {
            return;
        }
        let registers = first_register..first_register + values.len();
        if volatile {
            merge_status(&mut self.status[registers], first_register, values);
        } else {
            self.execute_write(FlashOperation::WriteStatus, |chip| {
                merge_status(&mut chip.status[registers.clone()], first_register, values);
                merge_status(
                    &mut chip.nonvolatile_status[registers],
                    first_register,
                    values,
                );
                true
            });
        }
    }
}

/// Stores written status values, keeping read-only bits and lock bits already set (OTP).
fn merge_status(registers: &mut [u8], first_register: usize, values: &[u8]) {
    for (offset, (register, &value)) in registers.iter_mut().zip(values).enumerate() {
        let writable = WRITABLE_STATUS_BITS[first_register + offset];
        let one_time_set = if first_register + offset == 1 {
            *register & status_bits::LOCK_BITS
        } else {
            0
        };
        *register = (value & writable) | (*register & !writable) | one_time_set;
    }
}

/// NOR programming: each cell keeps only the bits set in both old and new data.
fn clear_bits(cells: &mut [u8], data: &[u8]) {
    for (cell, &byte) in cells.iter_mut().zip(data) {
        *cell &= byte;
    }
}

/// The range the W25Q block-protect bits protect in a `size`-byte array.
///
/// BP2-BP0 = n (1..=6) protects 2^(n-1) units at the top (TB = 0) or bottom (TB = 1): units are
/// 4 KiB sectors up to 32 KiB when SEC = 1, else 64 KiB blocks or 1/64 of the array, whichever
/// is larger (this reproduces the W25Q16 .. W25Q128 tables). BP = 0 protects nothing, BP = 7
/// everything; CMP = 1 protects the complement instead.
fn decode_protected_range(sr1: u8, sr2: u8, size: usize) -> Range<usize> {
    let block_protect = (sr1 >> status_bits::BP0.trailing_zeros()) & 0b111;
    let protected_len = match block_protect {
        0 => 0,
        0b111 => size,
        n => {
            let units = 1usize << (n - 1);
            if sr1 & status_bits::SEC != 0 {
                SECTOR_SIZE * units.min(8)
            } else {
                (BLOCK_64K_SIZE.max(size / 64) * units).min(size)
            }
        }
    };
    let from_bottom = sr1 & status_bits::TB != 0;
    let complement = sr2 & status_bits::CMP != 0;
    let range = match (from_bottom, complement) {
        (false, false) => size - protected_len..size,
        (true, false) => 0..protected_len,
        (false, true) => 0..size - protected_len,
        (true, true) => protected_len..size,
    };
    if range.is_empty() {
        0..0
    } else {
        range
    }
}

/// Shifts out the SFDP area from `address`; beyond the 256-byte area it reads 0xFF.
fn read_sfdp(size: usize, address: u32, miso: &mut [u8]) {
    let area = sfdp_area(size);
    let start = (address as usize).min(SFDP_AREA_SIZE);
    let shown = miso.len().min(SFDP_AREA_SIZE - start);
    miso[..shown].copy_from_slice(&area[start..start + shown]);
}

/// The SFDP area in the JESD216 (revision 1.0) layout a W25Q uses, minus its dual/quad reads.
fn sfdp_area(size: usize) -> [u8; SFDP_AREA_SIZE] {
    let mut area = [ERASED; SFDP_AREA_SIZE];
    area[0..4].copy_from_slice(&SFDP_SIGNATURE.to_le_bytes());
    // Minor revision 0, major 1, one parameter header (the count is zero-based), unused byte.
    area[4..8].copy_from_slice(&[0x00, 0x01, 0x00, 0xFF]);
    // Parameter header 0: ID LSB 0x00 (JEDEC basic table), revision 1.0, 9 dwords, 24-bit
    // pointer to the table, ID MSB 0xFF.
    let [_, pointer_high, pointer_middle, pointer_low] =
        (BASIC_PARAMETER_TABLE_ADDRESS as u32).to_be_bytes();
    area[8..16].copy_from_slice(&[
        0x00,
        0x00,
        0x01,
        0x09,
        pointer_low,
        pointer_middle,
        pointer_high,
        0xFF,
    ]);
    let density_in_bits_minus_one = (size * 8 - 1) as u32;
    let basic_flash_parameters: [u32; 9] = [
        // Uniform 4 KiB erase with 0x20, write granularity >= 64 bytes, status bits written
        // non-volatile, 3-byte addresses only, no 1-1-2/1-2-2/1-4-4/1-1-4 fast reads.
        0xFF80_20E5,
        density_in_bits_minus_one,
        // 1-4-4/1-1-4 and 1-2-2/1-1-2 fast read instructions: not supported.
        0x0000_0000,
        0x0000_0000,
        // No 2-2-2 or 4-4-4 fast read; their instruction dwords stay empty.
        0xFFFF_FFEE,
        0x0000_FFFF,
        0x0000_FFFF,
        // Erase types 1 and 2: 2^12 bytes with 0x20, 2^15 bytes with 0x52.
        0x520F_200C,
        // Erase type 3: 2^16 bytes with 0xD8; type 4 absent.
        0x0000_D810,
    ];
    let table = &mut area[BASIC_PARAMETER_TABLE_ADDRESS..];
    for (dword, bytes) in basic_flash_parameters.iter().zip(table.chunks_exact_mut(4)) {
        bytes.copy_from_slice(&dword.to_le_bytes());
    }
    area
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: usize = 1024 * 1024;

    fn blank(size: usize) -> SpiFlash {
        SpiFlash::blank(size).unwrap()
    }

    fn filled(size: usize, value: u8) -> SpiFlash {
        SpiFlash::new(vec![value; size], FlashOptions::default()).unwrap()
    }

    fn send(flash: &mut SpiFlash, command: u8) {
        flash.spi_transaction(command, None, &[], &mut []);
    }

    fn send_write(flash: &mut SpiFlash, command: u8, address: Option<u32>, mosi: &[u8]) {
        send(flash, opcode::WRITE_ENABLE);
        flash.spi_transaction(command, address, mosi, &mut []);
    }

    fn spi_read(flash: &mut SpiFlash, command: u8, address: Option<u32>, len: usize) -> Vec<u8> {
        let mut miso = vec![0; len];
        flash.spi_transaction(command, address, &[], &mut miso);
        miso
    }

    fn read_status(flash: &mut SpiFlash, command: u8) -> u8 {
        spi_read(flash, command, None, 1)[0]
    }

    fn byte_at(flash: &SpiFlash, address: usize) -> u8 {
        let mut byte = [0];
        flash.read(address as u32, &mut byte).unwrap();
        byte[0]
    }

    fn set_protection(flash: &mut SpiFlash, sr1: u8, sr2: u8) {
        send_write(flash, opcode::WRITE_STATUS_1, None, &[sr1, sr2]);
        assert_eq!(flash.status_registers()[..2], [sr1, sr2]);
    }

    #[test]
    fn programming_without_erase_ands_bits() {
        let mut flash = blank(MIB);
        flash.program(0x1234, &[0b1100_1100, 0x0F]).unwrap();
        flash.program(0x1234, &[0b1010_1010, 0xF0]).unwrap();
        let mut read_back = [0; 2];
        flash.read(0x1234, &mut read_back).unwrap();
        assert_eq!(read_back, [0b1000_1000, 0x00]);
    }

    #[test]
    fn direct_program_crosses_pages_without_wrapping() {
        let mut flash = blank(MIB);
        let data: Vec<u8> = (0..600).map(|i| i as u8).collect();
        let report = flash.program(0x10F0, &data).unwrap();
        assert_eq!(&flash.as_bytes()[0x10F0..0x10F0 + 600], &data[..]);
        assert_eq!(flash.as_bytes()[0x1000], ERASED);
        assert!(!report.write_protected);
        let pages_touched = 4;
        assert_eq!(
            report.typical_duration,
            FlashOperation::PageProgram.typical_duration(MIB) * pages_touched
        );
    }

    #[test]
    fn page_program_wraps_within_its_page() {
        let mut flash = blank(MIB);
        send_write(&mut flash, opcode::PAGE_PROGRAM, Some(0x2FE), &[1, 2, 3, 4]);
        assert_eq!(&flash.as_bytes()[0x2FE..0x300], &[1, 2]);
        assert_eq!(&flash.as_bytes()[0x200..0x202], &[3, 4]);
        assert_eq!(flash.as_bytes()[0x300], ERASED);
    }

    #[test]
    fn page_program_keeps_only_the_last_256_bytes() {
        let mut flash = blank(MIB);
        let mut data = vec![0x00; 10];
        data.extend([0x5A; PAGE_SIZE]);
        send_write(&mut flash, opcode::PAGE_PROGRAM, Some(0x400), &data);
        assert!(flash.as_bytes()[0x400..0x500].iter().all(|&b| b == 0x5A));
    }

    #[test]
    fn sector_erase_clears_only_its_sector() {
        let mut flash = filled(MIB, 0x00);
        send_write(&mut flash, opcode::SECTOR_ERASE, Some(0x5123), &[]);
        assert!(flash.as_bytes()[0x5000..0x6000]
            .iter()
            .all(|&b| b == ERASED));
        assert_eq!(flash.as_bytes()[0x4FFF], 0x00);
        assert_eq!(flash.as_bytes()[0x6000], 0x00);
    }

    #[test]
    fn block_erases_clear_only_their_block() {
        for (command, unit) in [
            (opcode::BLOCK_ERASE_32K, BLOCK_32K_SIZE),
            (opcode::BLOCK_ERASE_64K, BLOCK_64K_SIZE),
        ] {
            let mut flash = filled(MIB, 0x00);
            let start = 3 * unit;
            send_write(&mut flash, command, Some((start + 0x777) as u32), &[]);
            assert!(flash.as_bytes()[start..start + unit]
                .iter()
                .all(|&b| b == ERASED));
            assert_eq!(flash.as_bytes()[start - 1], 0x00);
            assert_eq!(flash.as_bytes()[start + unit], 0x00);
        }
    }

    #[test]
    fn chip_erase_clears_everything_with_either_opcode() {
        for command in [opcode::CHIP_ERASE, opcode::CHIP_ERASE_ALT] {
            let mut flash = filled(MIB, 0x12);
            send_write(&mut flash, command, None, &[]);
            assert!(flash.as_bytes().iter().all(|&b| b == ERASED));
        }
        let mut flash = filled(MIB, 0x12);
        let report = flash.erase_chip();
        assert!(flash.as_bytes().iter().all(|&b| b == ERASED));
        assert_eq!(report.typical_duration, Duration::from_millis(2500));
    }

    #[test]
    fn erase_range_uses_blocks_where_aligned() {
        let mut flash = filled(MIB, 0x00);
        let report = flash.erase_range(0xF000, 0x12000).unwrap();
        assert!(flash.as_bytes()[0xF000..0x21000]
            .iter()
            .all(|&b| b == ERASED));
        assert_eq!(flash.as_bytes()[0xEFFF], 0x00);
        assert_eq!(flash.as_bytes()[0x21000], 0x00);
        let sector = FlashOperation::SectorErase.typical_duration(MIB);
        let block = FlashOperation::BlockErase64K.typical_duration(MIB);
        assert_eq!(report.typical_duration, sector + block + sector);
    }

    #[test]
    fn misaligned_erase_is_rejected() {
        let mut flash = blank(MIB);
        assert_eq!(
            flash.erase_range(0x800, SECTOR_SIZE),
            Err(FlashError::MisalignedErase {
                address: 0x800,
                len: SECTOR_SIZE
            })
        );
        assert_eq!(
            flash.erase_range(0x1000, 0x100),
            Err(FlashError::MisalignedErase {
                address: 0x1000,
                len: 0x100
            })
        );
        assert!(matches!(
            flash.erase_sector(0x10),
            Err(FlashError::MisalignedErase { .. })
        ));
    }

    #[test]
    fn out_of_bounds_access_is_rejected() {
        let mut flash = blank(MIB);
        let out_of_bounds = |address, len| FlashError::OutOfBounds {
            address,
            len,
            size: MIB,
        };
        assert_eq!(
            flash.read(0xFFFFF, &mut [0; 2]),
            Err(out_of_bounds(0xFFFFF, 2))
        );
        assert_eq!(
            flash.program(0x100000, &[0]),
            Err(out_of_bounds(0x100000, 1))
        );
        assert_eq!(
            flash.erase_sector(0x100000),
            Err(out_of_bounds(0x100000, SECTOR_SIZE))
        );
        assert_eq!(
            flash.erase_range(0xFF000, 2 * SECTOR_SIZE),
            Err(out_of_bounds(0xFF000, 2 * SECTOR_SIZE))
        );
        assert_eq!(
            flash.read(u32::MAX, &mut []),
            Err(out_of_bounds(u32::MAX, 0))
        );
        assert!(flash.read(0xFFFFF, &mut [0; 1]).is_ok());
    }

    #[test]
    fn write_enable_latch_is_required_and_cleared() {
        let mut flash = filled(MIB, 0x00);
        flash.spi_transaction(opcode::SECTOR_ERASE, Some(0), &[], &mut []);
        flash.spi_transaction(opcode::CHIP_ERASE, None, &[], &mut []);
        flash.spi_transaction(opcode::WRITE_STATUS_1, None, &[status_bits::BP0], &mut []);
        assert!(flash.as_bytes().iter().all(|&b| b == 0x00));
        assert_eq!(flash.status_registers(), [0; 3]);

        send(&mut flash, opcode::WRITE_ENABLE);
        assert_eq!(
            read_status(&mut flash, opcode::READ_STATUS_1),
            status_bits::WEL
        );
        send(&mut flash, opcode::WRITE_DISABLE);
        assert_eq!(read_status(&mut flash, opcode::READ_STATUS_1), 0);
        flash.spi_transaction(opcode::SECTOR_ERASE, Some(0), &[], &mut []);
        assert_eq!(flash.as_bytes()[0], 0x00);

        send_write(&mut flash, opcode::SECTOR_ERASE, Some(0), &[]);
        assert_eq!(flash.as_bytes()[0], ERASED);
        assert_eq!(read_status(&mut flash, opcode::READ_STATUS_1), 0);
        flash.spi_transaction(opcode::PAGE_PROGRAM, Some(0), &[0], &mut []);
        assert_eq!(flash.as_bytes()[0], ERASED);
    }

    #[test]
    fn page_program_without_data_keeps_the_latch() {
        let mut flash = blank(MIB);
        send_write(&mut flash, opcode::PAGE_PROGRAM, Some(0), &[]);
        assert_eq!(flash.status_registers()[0], status_bits::WEL);
    }

    /// Probes sector boundaries around `expected` with program and erase over SPI.
    fn assert_protects_exactly(size: usize, sr1: u8, sr2: u8, expected: Range<usize>) {
        let mut blank_flash = blank(size);
        let mut zeroed_flash = filled(size, 0x00);
        set_protection(&mut blank_flash, sr1, sr2);
        set_protection(&mut zeroed_flash, sr1, sr2);
        assert_eq!(
            blank_flash.protected_range(),
            expected.start as u32..expected.end as u32,
            "SR1 {sr1:#04x} SR2 {sr2:#04x}"
        );
        let probes = [
            Some(0),
            expected.start.checked_sub(SECTOR_SIZE),
            Some(expected.start),
            expected.end.checked_sub(SECTOR_SIZE),
            Some(expected.end),
            Some(size - SECTOR_SIZE),
        ];
        for sector_start in probes.into_iter().flatten().filter(|&a| a < size) {
            let inside = expected.contains(&sector_start);
            let address = sector_start + 0x10;
            send_write(
                &mut blank_flash,
                opcode::PAGE_PROGRAM,
                Some(address as u32),
                &[0x00],
            );
            let programmed = byte_at(&blank_flash, address) == 0x00;
            send_write(
                &mut zeroed_flash,
                opcode::SECTOR_ERASE,
                Some(address as u32),
                &[],
            );
            let erased = byte_at(&zeroed_flash, address) == ERASED;
            assert_eq!(
                (programmed, erased),
                (!inside, !inside),
                "SR1 {sr1:#04x} SR2 {sr2:#04x} at {address:#x}"
            );
        }
    }

    #[test]
    fn no_protection_bits_protect_nothing() {
        assert_protects_exactly(4 * MIB, 0, 0, 0..0);
        assert_protects_exactly(4 * MIB, status_bits::TB | status_bits::SEC, 0, 0..0);
    }

    #[test]
    fn block_protect_covers_upper_fractions() {
        use status_bits::{BP0, BP1, BP2};
        let size = 4 * MIB;
        assert_protects_exactly(size, BP0, 0, size - size / 64..size);
        assert_protects_exactly(size, BP1, 0, size - size / 32..size);
        assert_protects_exactly(size, BP1 | BP0, 0, size - size / 16..size);
        assert_protects_exactly(size, BP2, 0, size - size / 8..size);
        assert_protects_exactly(size, BP2 | BP0, 0, size - size / 4..size);
        assert_protects_exactly(size, BP2 | BP1, 0, size / 2..size);
    }

    #[test]
    fn block_protect_unit_is_at_least_64k_and_at_least_a_64th() {
        let upper_block = |size: usize| size - BLOCK_64K_SIZE..size;
        assert_protects_exactly(MIB, status_bits::BP0, 0, upper_block(MIB));
        assert_protects_exactly(2 * MIB, status_bits::BP0, 0, upper_block(2 * MIB));
        let size = 16 * MIB;
        assert_protects_exactly(size, status_bits::BP0, 0, size - size / 64..size);
        assert_protects_exactly(MIB, status_bits::BP2 | status_bits::BP0, 0, 0..MIB);
    }

    #[test]
    fn top_bottom_bit_protects_from_the_bottom() {
        let flags = status_bits::TB | status_bits::BP1 | status_bits::BP0;
        assert_protects_exactly(4 * MIB, flags, 0, 0..256 * 1024);
    }

    #[test]
    fn sector_bit_protects_4k_units_up_to_32k() {
        use status_bits::{BP0, BP1, BP2, SEC, TB};
        let size = 4 * MIB;
        assert_protects_exactly(size, SEC | BP0, 0, size - SECTOR_SIZE..size);
        assert_protects_exactly(size, SEC | BP1, 0, size - 2 * SECTOR_SIZE..size);
        assert_protects_exactly(size, SEC | BP2, 0, size - BLOCK_32K_SIZE..size);
        assert_protects_exactly(size, SEC | BP2 | BP0, 0, size - BLOCK_32K_SIZE..size);
        assert_protects_exactly(size, SEC | TB | BP1 | BP0, 0, 0..4 * SECTOR_SIZE);
    }

    #[test]
    fn all_block_protect_bits_protect_everything() {
        use status_bits::{BP0, BP1, BP2, SEC, TB};
        let all = BP2 | BP1 | BP0;
        assert_protects_exactly(4 * MIB, all, 0, 0..4 * MIB);
        assert_protects_exactly(4 * MIB, all | TB | SEC, 0, 0..4 * MIB);
    }

    #[test]
    fn complement_bit_inverts_the_protected_range() {
        use status_bits::{BP0, BP1, BP2, CMP, TB};
        let size = 4 * MIB;
        assert_protects_exactly(size, BP0, CMP, 0..size - size / 64);
        assert_protects_exactly(size, TB | BP0, CMP, size / 64..size);
        assert_protects_exactly(size, 0, CMP, 0..size);
        assert_protects_exactly(size, BP2 | BP1 | BP0, CMP, 0..0);
    }

    #[test]
    fn chip_erase_is_refused_while_anything_is_protected() {
        let mut flash = filled(MIB, 0x00);
        set_protection(&mut flash, status_bits::SEC | status_bits::BP0, 0);
        send_write(&mut flash, opcode::CHIP_ERASE, None, &[]);
        assert!(flash.as_bytes().iter().all(|&b| b == 0x00));
        assert!(flash.erase_chip().write_protected);
        assert!(flash.as_bytes().iter().all(|&b| b == 0x00));
    }

    #[test]
    fn block_erase_overlapping_protection_is_refused() {
        let mut flash = filled(MIB, 0x00);
        set_protection(&mut flash, status_bits::SEC | status_bits::BP0, 0);
        send_write(&mut flash, opcode::BLOCK_ERASE_64K, Some(0xF0000), &[]);
        assert!(flash.as_bytes()[0xF0000..].iter().all(|&b| b == 0x00));
    }

    #[test]
    fn direct_writes_report_protection() {
        let mut flash = filled(MIB, 0x00);
        set_protection(&mut flash, status_bits::BP0, 0);
        let report = flash.erase_range(0xE0000, 0x20000).unwrap();
        assert!(report.write_protected);
        assert!(flash.as_bytes()[0xE0000..0xF0000]
            .iter()
            .all(|&b| b == ERASED));
        assert!(flash.as_bytes()[0xF0000..].iter().all(|&b| b == 0x00));
        assert_eq!(
            report.typical_duration,
            FlashOperation::BlockErase64K.typical_duration(MIB)
        );
        assert!(!flash.erase_sector(0xEF000).unwrap().write_protected);
        assert!(flash.program(0xEFFFF, &[0, 0]).unwrap().write_protected);
        assert_eq!(flash.as_bytes()[0xEFFFF], 0x00);
    }

    #[test]
    fn write_protected_option_protects_everything_until_cleared() {
        let options = FlashOptions {
            write_protected: true,
            ..FlashOptions::default()
        };
        let mut flash = SpiFlash::new(vec![ERASED; MIB], options).unwrap();
        assert_eq!(flash.protected_range(), 0..MIB as u32);
        assert!(flash.program(0, &[0]).unwrap().write_protected);
        assert_eq!(flash.as_bytes()[0], ERASED);
        flash.reset();
        assert_eq!(flash.protected_range(), 0..MIB as u32);
        flash.set_write_protected(false);
        assert!(flash.protected_range().is_empty());
        assert!(!flash.program(0, &[0]).unwrap().write_protected);
        assert_eq!(flash.as_bytes()[0], 0x00);
    }

    #[test]
    fn stuck_sector_keeps_its_contents_on_erase() {
        let options = FlashOptions {
            stuck_sectors: BTreeSet::from([2]),
            ..FlashOptions::default()
        };
        let mut flash = SpiFlash::new(vec![0x00; MIB], options).unwrap();
        flash.erase_range(0, BLOCK_64K_SIZE).unwrap();
        assert!(flash.as_bytes()[0x2000..0x3000].iter().all(|&b| b == 0x00));
        assert!(flash.as_bytes()[..0x2000].iter().all(|&b| b == ERASED));
        assert!(flash.as_bytes()[0x3000..0x10000]
            .iter()
            .all(|&b| b == ERASED));
        send_write(&mut flash, opcode::SECTOR_ERASE, Some(0x2000), &[]);
        flash.erase_chip();
        assert!(flash.as_bytes()[0x2000..0x3000].iter().all(|&b| b == 0x00));
        assert!(!flash.dirty_sectors().any(|sector| sector == 2));

        flash.set_sector_stuck(2, false).unwrap();
        flash.erase_sector(0x2000).unwrap();
        assert!(flash.as_bytes()[0x2000..0x3000]
            .iter()
            .all(|&b| b == ERASED));
        assert_eq!(
            flash.set_sector_stuck(256, true),
            Err(FlashError::SectorOutOfRange {
                sector: 256,
                sector_count: 256
            })
        );
    }

    #[test]
    fn fake_chip_wraps_at_its_physical_size() {
        let options = FlashOptions {
            physical_size: Some(MIB),
            ..FlashOptions::default()
        };
        let mut flash = SpiFlash::new(vec![ERASED; 4 * MIB], options).unwrap();
        assert_eq!((flash.size(), flash.physical_size()), (4 * MIB, MIB));
        assert_eq!(flash.jedec_id(), 0xEF4016);
        flash.program(0x100005, &[0xAB]).unwrap();
        assert_eq!(byte_at(&flash, 0x5), 0xAB);
        assert_eq!(byte_at(&flash, 0x300005), 0xAB);
        send_write(&mut flash, opcode::SECTOR_ERASE, Some(0x200000), &[]);
        assert_eq!(byte_at(&flash, 0x100005), ERASED);
        assert_eq!(flash.as_bytes().len(), MIB);
    }

    #[test]
    fn long_reads_wrap_at_the_end_of_the_array() {
        let mut flash = blank(MIB);
        flash.program(0xFFFFE, &[1, 2]).unwrap();
        flash.program(0, &[3, 4]).unwrap();
        for command in [opcode::READ_DATA, opcode::FAST_READ] {
            let data = spi_read(&mut flash, command, Some(0xFFFFE), 4);
            assert_eq!(data, [1, 2, 3, 4]);
        }
        assert_eq!(
            spi_read(&mut flash, opcode::READ_DATA, Some(0x1000000), 1),
            [3]
        );
        assert_eq!(
            spi_read(&mut flash, opcode::READ_DATA, None, 2),
            [ERASED; 2]
        );
    }

    #[test]
    fn sfdp_header_and_density_are_valid() {
        for size in [MIB, 4 * MIB, 16 * MIB] {
            let mut flash = blank(size);
            let header = spi_read(&mut flash, opcode::READ_SFDP, Some(0), 16);
            assert_eq!(&header[0..4], b"SFDP");
            assert_eq!(
                u32::from_le_bytes(header[0..4].try_into().unwrap()),
                SFDP_SIGNATURE
            );
            assert_eq!(header[5], 0x01, "major revision");
            assert_eq!(header[6], 0x00, "one parameter header");
            let (id_lsb, table_dwords, id_msb) = (header[8], header[11], header[15]);
            assert_eq!((id_lsb, id_msb), (0x00, 0xFF));
            assert_eq!(table_dwords, 9);
            let pointer = u32::from_le_bytes([header[12], header[13], header[14], 0]);
            let table = spi_read(&mut flash, opcode::READ_SFDP, Some(pointer), 4 * 9);
            let dword = |index: usize| {
                u32::from_le_bytes(table[4 * index..4 * index + 4].try_into().unwrap())
            };
            assert_eq!(dword(1), (size * 8 - 1) as u32);
            assert_eq!(dword(0) & 0b11, 0b01, "4 KiB erase");
            assert_eq!((dword(0) >> 8) & 0xFF, u32::from(opcode::SECTOR_ERASE));
            assert_eq!(dword(8) & 0xFFFF, 0xD810);
        }
        let mut flash = blank(MIB);
        assert_eq!(
            spi_read(&mut flash, opcode::READ_SFDP, Some(0xFE), 4),
            [ERASED; 4]
        );
    }

    #[test]
    fn rdid_returns_three_id_bytes() {
        let mut flash = blank(MIB);
        let id = spi_read(&mut flash, opcode::READ_JEDEC_ID, None, 4);
        assert_eq!(id, [0xEF, 0x40, 0x14, ERASED]);
        let options = FlashOptions {
            jedec_id: Some(0xC84016),
            ..FlashOptions::default()
        };
        let mut flash = SpiFlash::new(vec![ERASED; 4 * MIB], options).unwrap();
        assert_eq!(
            spi_read(&mut flash, opcode::READ_JEDEC_ID, None, 3),
            [0xC8, 0x40, 0x16]
        );
    }

    #[test]
    fn default_ids_follow_the_winbond_capacity_codes() {
        let ids: Vec<u32> = SUPPORTED_SIZES
            .iter()
            .map(|&size| blank(size).jedec_id())
            .collect();
        assert_eq!(
            ids,
            [0xEF4012, 0xEF4013, 0xEF4014, 0xEF4015, 0xEF4016, 0xEF4017, 0xEF4018]
        );
    }

    #[test]
    fn status_registers_round_trip_with_write_enable() {
        let mut flash = blank(4 * MIB);
        send_write(&mut flash, opcode::WRITE_STATUS_1, None, &[0xFC, 0x42]);
        assert_eq!(read_status(&mut flash, opcode::READ_STATUS_1), 0xFC);
        assert_eq!(read_status(&mut flash, opcode::READ_STATUS_2), 0x42);
        send_write(&mut flash, opcode::WRITE_STATUS_1, None, &[0x00]);
        assert_eq!(read_status(&mut flash, opcode::READ_STATUS_1), 0x00);
        assert_eq!(
            read_status(&mut flash, opcode::READ_STATUS_2),
            0x42,
            "SR2 untouched"
        );
        send_write(&mut flash, opcode::WRITE_STATUS_2, None, &[0x02]);
        assert_eq!(read_status(&mut flash, opcode::READ_STATUS_2), 0x02);
        send_write(&mut flash, opcode::WRITE_STATUS_3, None, &[0xFF]);
        assert_eq!(
            read_status(&mut flash, opcode::READ_STATUS_3),
            0xE4,
            "writable bits only"
        );
        assert_eq!(
            spi_read(&mut flash, opcode::READ_STATUS_3, None, 3),
            [0xE4; 3],
            "status reads repeat"
        );
    }

    #[test]
    fn status_bits_are_read_only_or_one_time_where_the_chip_says_so() {
        let mut flash = blank(MIB);
        send_write(&mut flash, opcode::WRITE_STATUS_1, None, &[0xFF, 0xFF]);
        assert_eq!(flash.status_registers()[..2], [0xFC, 0x7B]);
        send_write(&mut flash, opcode::WRITE_STATUS_2, None, &[0x00]);
        assert_eq!(flash.status_registers()[1], status_bits::LOCK_BITS);
    }

    #[test]
    fn non_volatile_status_survives_reset() {
        let mut flash = blank(MIB);
        send_write(
            &mut flash,
            opcode::WRITE_STATUS_1,
            None,
            &[status_bits::BP0],
        );
        send(&mut flash, opcode::WRITE_ENABLE);
        send(&mut flash, opcode::ENABLE_RESET);
        send(&mut flash, opcode::RESET);
        assert_eq!(flash.status_registers()[0], status_bits::BP0, "WEL cleared");
    }

    #[test]
    fn volatile_status_write_needs_no_latch_and_is_lost_on_reset() {
        let mut flash = blank(MIB);
        send(&mut flash, opcode::VOLATILE_STATUS_WRITE_ENABLE);
        flash.spi_transaction(opcode::WRITE_STATUS_1, None, &[status_bits::BP1], &mut []);
        assert_eq!(flash.status_registers()[0], status_bits::BP1);
        assert!(flash.program(0xFFFFF, &[0]).unwrap().write_protected);
        send(&mut flash, opcode::ENABLE_RESET);
        send(&mut flash, opcode::RESET);
        assert_eq!(flash.status_registers()[0], 0);
    }

    #[test]
    fn prefixes_apply_only_to_the_next_instruction() {
        let mut flash = blank(MIB);
        send(&mut flash, opcode::VOLATILE_STATUS_WRITE_ENABLE);
        send(&mut flash, opcode::READ_STATUS_1);
        flash.spi_transaction(opcode::WRITE_STATUS_1, None, &[status_bits::BP1], &mut []);
        assert_eq!(flash.status_registers()[0], 0);

        send(&mut flash, opcode::WRITE_ENABLE);
        send(&mut flash, opcode::RESET);
        send(&mut flash, opcode::ENABLE_RESET);
        send(&mut flash, opcode::READ_STATUS_1);
        send(&mut flash, opcode::RESET);
        assert_eq!(
            flash.status_registers()[0],
            status_bits::WEL,
            "no reset happened"
        );
    }

    #[test]
    fn bad_sizes_are_rejected() {
        for size in [0, 4096, 100_000, 128 * 1024, 3 * MIB, 32 * MIB] {
            assert_eq!(
                SpiFlash::blank(size).unwrap_err(),
                FlashError::UnsupportedSize { size }
            );
        }
        for physical_size in [2 * MIB, 3 * 1024, 0] {
            let options = FlashOptions {
                physical_size: Some(physical_size),
                ..FlashOptions::default()
            };
            assert_eq!(
                SpiFlash::new(vec![ERASED; MIB], options).unwrap_err(),
                FlashError::UnsupportedPhysicalSize {
                    physical_size,
                    size: MIB
                }
            );
        }
        let options = FlashOptions {
            physical_size: Some(256 * 1024),
            stuck_sectors: BTreeSet::from([64]),
            ..FlashOptions::default()
        };
        assert_eq!(
            SpiFlash::new(vec![ERASED; MIB], options).unwrap_err(),
            FlashError::SectorOutOfRange {
                sector: 64,
                sector_count: 64
            }
        );
    }

    #[test]
    fn busy_model_holds_busy_and_ignores_commands_until_time_passes() {
        let options = FlashOptions {
            model_busy_time: true,
            ..FlashOptions::default()
        };
        let mut flash = SpiFlash::new(vec![0x00; MIB], options).unwrap();
        send_write(&mut flash, opcode::SECTOR_ERASE, Some(0), &[]);
        assert_eq!(flash.remaining_busy_time(), Duration::from_millis(45));
        assert_eq!(
            read_status(&mut flash, opcode::READ_STATUS_1),
            status_bits::BUSY
        );
        assert_eq!(
            spi_read(&mut flash, opcode::READ_JEDEC_ID, None, 1),
            [ERASED]
        );
        send(&mut flash, opcode::WRITE_ENABLE);
        assert_eq!(
            read_status(&mut flash, opcode::READ_STATUS_1),
            status_bits::BUSY
        );

        flash.advance_time(Duration::from_millis(44));
        assert_eq!(
            read_status(&mut flash, opcode::READ_STATUS_1),
            status_bits::BUSY
        );
        flash.advance_time(Duration::from_millis(1));
        assert_eq!(read_status(&mut flash, opcode::READ_STATUS_1), 0);
        assert_eq!(spi_read(&mut flash, opcode::READ_JEDEC_ID, None, 1), [0xEF]);
    }

    #[test]
    fn without_busy_model_the_chip_is_never_busy() {
        let mut flash = blank(MIB);
        send_write(&mut flash, opcode::CHIP_ERASE, None, &[]);
        assert_eq!(flash.remaining_busy_time(), Duration::ZERO);
        assert_eq!(read_status(&mut flash, opcode::READ_STATUS_1), 0);
    }

    #[test]
    fn typical_durations_follow_the_w25q32jv_datasheet() {
        let size = 4 * MIB;
        let millis =
            |operation: FlashOperation| operation.typical_duration(size).as_secs_f64() * 1e3;
        assert_eq!(millis(FlashOperation::PageProgram), 0.4);
        assert_eq!(millis(FlashOperation::SectorErase), 45.0);
        assert_eq!(millis(FlashOperation::BlockErase32K), 120.0);
        assert_eq!(millis(FlashOperation::BlockErase64K), 150.0);
        assert_eq!(millis(FlashOperation::WriteStatus), 10.0);
        assert_eq!(millis(FlashOperation::ChipErase), 10_000.0);
    }

    #[test]
    fn dirty_sectors_track_writes_until_cleared() {
        let mut flash = blank(MIB);
        assert_eq!(flash.dirty_sectors().count(), 0);
        flash.program(0x1FFF, &[0, 0]).unwrap();
        send_write(&mut flash, opcode::SECTOR_ERASE, Some(0x5000), &[]);
        assert_eq!(flash.dirty_sectors().collect::<Vec<_>>(), [1, 2, 5]);
        flash.clear_dirty();
        assert_eq!(flash.dirty_sectors().count(), 0);
        flash.set_write_protected(true);
        flash.program(0, &[0]).unwrap();
        assert_eq!(
            flash.dirty_sectors().count(),
            0,
            "protected writes change nothing"
        );
    }

    const PROPERTY_SIZE: usize = 256 * 1024;

    /// An operation on a PROPERTY_SIZE chip, through the direct API or over SPI.
    #[derive(Debug, Clone)]
    enum Operation {
        Program {
            address: usize,
            data: Vec<u8>,
        },
        SpiPageProgram {
            address: usize,
            data: Vec<u8>,
        },
        EraseRange {
            first_sector: usize,
            sector_count: usize,
        },
        SpiBlockErase32K {
            block: usize,
        },
        EraseChip,
    }

    impl Operation {
        fn addressed_range(&self) -> Range<usize> {
            match self {
                Self::Program { address, data } => *address..address + data.len(),
                Self::SpiPageProgram { address, .. } => {
                    let page = address - address % PAGE_SIZE;
                    page..page + PAGE_SIZE
                }
                Self::EraseRange {
                    first_sector,
                    sector_count,
                } => first_sector * SECTOR_SIZE..(first_sector + sector_count) * SECTOR_SIZE,
                Self::SpiBlockErase32K { block } => {
                    block * BLOCK_32K_SIZE..(block + 1) * BLOCK_32K_SIZE
                }
                Self::EraseChip => 0..PROPERTY_SIZE,
            }
        }

        fn apply_to(&self, flash: &mut SpiFlash) {
            match self {
                Self::Program { address, data } => {
                    flash.program(*address as u32, data).unwrap();
                }
                Self::SpiPageProgram { address, data } => {
                    send_write(flash, opcode::PAGE_PROGRAM, Some(*address as u32), data);
                }
                Self::EraseRange { .. } => {
                    let range = self.addressed_range();
                    flash.erase_range(range.start as u32, range.len()).unwrap();
                }
                Self::SpiBlockErase32K { block } => {
                    let address = (block * BLOCK_32K_SIZE) as u32;
                    send_write(flash, opcode::BLOCK_ERASE_32K, Some(address), &[]);
                }
                Self::EraseChip => {
                    flash.erase_chip();
                }
            }
        }

        /// The obvious model: a Vec that ANDs programmed bytes and fills erased ranges.
        fn apply_to_reference(&self, memory: &mut [u8]) {
            let range = self.addressed_range();
            match self {
                Self::Program { data, .. } => clear_bits(&mut memory[range], data),
                Self::SpiPageProgram { address, data } => {
                    let mut page_buffer = [ERASED; PAGE_SIZE];
                    for (index, &byte) in data.iter().enumerate() {
                        page_buffer[(address + index) % PAGE_SIZE] = byte;
                    }
                    clear_bits(&mut memory[range], &page_buffer);
                }
                _ => memory[range].fill(ERASED),
            }
        }
    }

    fn operation() -> impl Strategy<Value = Operation> {
        let sector_count = PROPERTY_SIZE / SECTOR_SIZE;
        prop_oneof![
            4 => (0..PROPERTY_SIZE, prop::collection::vec(any::<u8>(), 0..700)).prop_map(
                |(address, data)| Operation::Program {
                    address: address.min(PROPERTY_SIZE - data.len()),
                    data,
                }
            ),
            4 => (0..PROPERTY_SIZE, prop::collection::vec(any::<u8>(), 0..600))
                .prop_map(|(address, data)| Operation::SpiPageProgram { address, data }),
            3 => (0..sector_count, 0..=sector_count).prop_map(move |(first_sector, count)| {
                Operation::EraseRange {
                    first_sector,
                    sector_count: count.min(sector_count - first_sector),
                }
            }),
            1 => (0..PROPERTY_SIZE / BLOCK_32K_SIZE)
                .prop_map(|block| Operation::SpiBlockErase32K { block }),
            1 => Just(Operation::EraseChip),
        ]
    }

    proptest! {
        #[test]
        fn chip_matches_reference_model(
            initial in prop::collection::vec(any::<u8>(), PROPERTY_SIZE..=PROPERTY_SIZE),
            operations in prop::collection::vec(operation(), 1..24),
        ) {
            let mut flash = SpiFlash::new(initial.clone(), FlashOptions::default()).unwrap();
            let mut reference = initial;
            for operation in &operations {
                operation.apply_to(&mut flash);
                operation.apply_to_reference(&mut reference);
                prop_assert!(flash.as_bytes() == &reference[..], "after {:?}", operation);
            }
        }

        #[test]
        fn operations_never_touch_bytes_outside_their_range(
            fill in any::<u8>(),
            sr1 in any::<u8>(),
            sr2 in any::<u8>(),
            stuck_sectors in prop::collection::btree_set(0..PROPERTY_SIZE / SECTOR_SIZE, 0..8),
            operations in prop::collection::vec(operation(), 1..24),
        ) {
            let options = FlashOptions { stuck_sectors, ..FlashOptions::default() };
            let mut flash = SpiFlash::new(vec![fill; PROPERTY_SIZE], options).unwrap();
            send_write(&mut flash, opcode::WRITE_STATUS_1, None, &[sr1, sr2]);
            for operation in &operations {
                let before = flash.as_bytes().to_vec();
                operation.apply_to(&mut flash);
                let range = operation.addressed_range();
                prop_assert!(flash.as_bytes()[..range.start] == before[..range.start]);
                prop_assert!(flash.as_bytes()[range.end..] == before[range.end..]);
            }
        }
    }
}
