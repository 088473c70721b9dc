//! Writing flash: compressed (FLASH_DEFL_*, stub), uncompressed (FLASH_*,
//! stub or ROM), header patching, skip-unchanged and MD5 verification.
//!
//! Skip-unchanged compares MD5 digests down to the 4 KiB sector, the unit the
//! flash erases: a region whose digest already matches is skipped whole;
//! otherwise each 64 KiB block's digest is compared, then each sector's within
//! the blocks that differ, and only the runs of differing sectors are written.
//! Every digest is a round trip, so when most blocks differ (a new firmware)
//! the differing blocks are written whole without asking per sector. The
//! comparison uses the data as it will be written, header patch included, so
//! flash that differs from the file only in the patched header bytes counts as
//! unchanged.
//!
//! With `--baud auto`, a DATA block the line corrupts (the stub refuses its checksum or
//! length, or its reply arrives garbled) steps the rate down one level, as a corrupt read
//! block does, and the write goes on from that block: a new FLASH_DEFL_BEGIN (or
//! FLASH_BEGIN) at the last sector boundary the flash surely holds, for the rest of the
//! region, then the usual MD5 check. With a fixed `--baud`, or at the ROM's 115200, the
//! write stops with [`Error::WriteCorrupted`], naming the address.
//!
//! Compressed writes go at the line's pace: zlib at the best level, blocks of
//! 0x4000 bytes (the most the stubs take), each sent as soon as the previous
//! one is acknowledged. The stubs acknowledge a block before writing it and
//! take the next one in while the flash is busy, so erase and program time
//! overlap the next block's transfer.

use std::io::Write as _;
use std::ops::Range;
use std::time::Duration;

use esp_protocol::flash_params::{FlashFreq, FlashMode, FlashParamOverrides, FlashSize};
use esp_protocol::image::{patch_flash_params, read_flash_params, FlashParamsPatch};
use esp_protocol::packet::{BeginParams, Command, DataBlock, Opcode, STUB_FLASH_BLOCK_SIZE};
use esp_protocol::rom_erase::{rom_erase_plan, SECTOR_SIZE};
use esp_protocol::status::ErrorCode;
use flate2::write::ZlibEncoder;
use flate2::Compression;

use crate::chip::{ChipKind, CHIP_DETECT_MAGIC_REG};
use crate::connection::{timeout_per_mb, Loader, DEFAULT_TIMEOUT, ERASE_SECONDS_PER_MB};
use crate::error::{Error, Result};
use crate::flasher::{Flasher, ROM_FLASH_BLOCK_SIZE};
use crate::ops::erase::md5_of;
use crate::progress::{Event, Operation, RetryReason, Warning};
use crate::transport::Transport;

use esp_protocol::spi_flash::status::{PROTECTING_BITS, PROTECTION_BITS};

/// Data to write at a flash offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Flash offset.
    pub address: u32,
    /// The bytes.
    pub data: Vec<u8>,
}

/// The flash size to put in an image header at offset 0 (esptool's `-fs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderSize {
    /// Leave the header's value.
    #[default]
    Keep,
    /// The size of the connected flash.
    Detect,
    /// This size.
    Set(FlashSize),
}

/// Flash parameters to put in an image header at offset 0; `None` keeps the image's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderParams {
    /// `-fm`.
    pub mode: Option<FlashMode>,
    /// `-ff`.
    pub freq: Option<FlashFreq>,
    /// `-fs`.
    pub size: HeaderSize,
}

/// How to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Send zlib-compressed data (stub only).
    pub compress: bool,
    /// Check each region by SPI_FLASH_MD5 afterwards (stub only).
    pub verify: bool,
    /// Write only the sectors whose MD5 differs (stub only).
    pub skip_unchanged: bool,
    /// Header parameters for an image at offset 0.
    pub header: HeaderParams,
}

impl Default for WriteOptions {
    /// esptool's defaults with a stub: compressed and verified.
    fn default() -> Self {
        WriteOptions {
            compress: true,
            verify: true,
            skip_unchanged: false,
            header: HeaderParams::default(),
        }
    }
}

impl WriteOptions {
    /// What the ROM loader alone can do: uncompressed, unverified.
    pub fn rom_only() -> Self {
        WriteOptions {
            compress: false,
            verify: false,
            ..WriteOptions::default()
        }
    }
}

/// What happened to one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionReport {
    /// Flash offset.
    pub address: u32,
    /// Bytes in the region.
    pub size: usize,
    /// Bytes sent to the flash.
    pub written: usize,
    /// Bytes found unchanged and not written.
    pub skipped: usize,
    /// Bytes on the wire after compression, when compressed.
    pub compressed: Option<usize>,
    /// What the header patch did.
    pub header: FlashParamsPatch,
    /// Whether the region was checked by MD5.
    pub verified: bool,
}

/// What a write did, region by region.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteReport {
    /// One entry per region, by address.
    pub regions: Vec<RegionReport>,
}

impl<T: Transport> Flasher<T> {
    /// Writes `regions` as `options` say. Regions may not share a 4 KiB
    /// sector (each write erases whole sectors) nor run past the flash.
    pub fn write_flash(
        &mut self,
        regions: &[Region],
        options: &WriteOptions,
    ) -> Result<WriteReport> {
        if options.compress {
            self.require_stub("compressed writes")?;
        }
        if options.verify {
            self.require_stub("MD5 verification")?;
        }
        if options.skip_unchanged {
            self.require_stub("skipping unchanged sectors (by MD5)")?;
        }
        self.check_regions(regions)?;
        let overrides = self.header_overrides(&options.header)?;
        let mut sorted: Vec<&Region> = regions.iter().collect();
        sorted.sort_by_key(|region| region.address);
        let mut report = WriteReport::default();
        for region in sorted {
            report
                .regions
                .push(self.write_region(region, &overrides, options)?);
        }
        Ok(report)
    }

    /// Refuses `regions` unless all of them can be written: none shares a 4 KiB sector with
    /// another, none runs past the flash, and on the ROM loader each starts on a 4-byte word
    /// (the ROM writes nothing at an unaligned address). Sends nothing.
    pub fn check_regions(&self, regions: &[Region]) -> Result<()> {
        let mut sorted: Vec<&Region> = regions.iter().collect();
        sorted.sort_by_key(|region| region.address);
        check_sector_overlap(&sorted)?;
        for region in &sorted {
            self.check_in_flash(region.address, region.data.len() as u64)?;
            if self.loader() == Loader::Rom && !region.address.is_multiple_of(ROM_WRITE_ALIGNMENT) {
                return Err(Error::UnalignedWrite {
                    address: region.address,
                    alignment: ROM_WRITE_ALIGNMENT,
                });
            }
        }
        Ok(())
    }

    fn header_overrides(&self, header: &HeaderParams) -> Result<FlashParamOverrides> {
        let size = match header.size {
            HeaderSize::Keep => None,
            HeaderSize::Set(size) => Some(size),
            HeaderSize::Detect => {
                let bytes = self.flash_size()?;
                Some(FlashSize::from_bytes(bytes).ok_or(Error::UnknownFlashSize {
                    jedec_id: self.flash_info().jedec_id,
                })?)
            }
        };
        Ok(FlashParamOverrides {
            mode: header.mode,
            size,
            freq: header.freq,
        })
    }

    fn write_region(
        &mut self,
        region: &Region,
        overrides: &FlashParamOverrides,
        options: &WriteOptions,
    ) -> Result<RegionReport> {
        let mut data = region.data.clone();
        let header = patch_flash_params(&mut data, region.address, overrides);
        if header != FlashParamsPatch::NotApplicable {
            self.report(Event::HeaderPatched(header.clone()));
        }
        if let Some(mode) = self.mode_the_flash_cannot_boot(region.address, &data) {
            self.report(Event::Warning(Warning::NotDoutOnEsp8285 {
                mode: mode.name().to_string(),
            }));
        }
        let (address, data) = self.with_whole_sectors(region.address, data)?;
        let region = &Region { address, data };
        let data = &region.data;
        let runs = if options.skip_unchanged {
            self.runs_to_write(region.address, data)?
        } else {
            let whole_region = 0..data.len();
            vec![whole_region]
        };
        let written: usize = runs.iter().map(|run| run.len()).sum();
        if options.skip_unchanged {
            self.report(Event::Skipped {
                address: region.address,
                bytes: data.len() - written,
                total: data.len(),
            });
        }
        self.report(Event::Started {
            operation: Operation::Write,
            address: region.address,
            total: written,
        });
        let mut compressed = None;
        let mut done = 0;
        for run in runs {
            let address = region.address + run.start as u32;
            let bytes = &data[run];
            self.write_run(
                region.address,
                address,
                bytes,
                options,
                (done, written),
                &mut compressed,
            )?;
            done += bytes.len();
        }
        if self.loader() == Loader::Stub {
            // The stub acknowledges a block before writing it; a register read
            // is answered only once the last block is on the flash.
            self.read_reg(CHIP_DETECT_MAGIC_REG)?;
        }
        self.report(Event::Finished {
            operation: Operation::Write,
        });
        if options.verify {
            if let Err(error) = self.verify(region.address, data) {
                return Err(self.diagnose_verify_failure(region.address, data, error));
            }
        }
        Ok(RegionReport {
            address: region.address,
            size: data.len(),
            written,
            skipped: data.len() - written,
            compressed,
            header,
            verified: options.verify,
        })
    }

    /// `data` at `address` extended to whole sectors with the bytes the flash holds around it,
    /// so that the erase before the write keeps them. The ROM cannot read the flash: with it
    /// `data` stays as it is.
    fn with_whole_sectors(&mut self, address: u32, data: Vec<u8>) -> Result<(u32, Vec<u8>)> {
        let start = address & !(SECTOR_SIZE - 1);
        let end = address as usize + data.len();
        let sector_end = end.next_multiple_of(SECTOR_SIZE as usize);
        if self.loader() == Loader::Rom || (start == address && sector_end == end) {
            return Ok((address, data));
        }
        let mut merged = match address - start {
            0 => Vec::new(),
            head => self.read_flash(start, head)?,
        };
        merged.extend_from_slice(&data);
        if end < sector_end {
            merged.extend(self.read_flash(end as u32, (sector_end - end) as u32)?);
        }
        Ok((start, merged))
    }

    /// Writes `bytes` at `address` (part of the region at `region_address`), reporting progress
    /// as `(bytes done before, total)`. With `--baud auto`, a data block the line corrupts
    /// steps the rate down and the write goes on from that block: a new stream (compressed
    /// anew) at the last sector boundary the flash surely holds, for the rest of the run.
    fn write_run(
        &mut self,
        region_address: u32,
        address: u32,
        bytes: &[u8],
        options: &WriteOptions,
        (done_before, total): (usize, usize),
        compressed_size: &mut Option<usize>,
    ) -> Result<()> {
        let mut start = 0;
        loop {
            let at = address + start as u32;
            let part = &bytes[start..];
            let mut acked = Acked::default();
            let line_errors = self.connection.line_errors();
            let progress = (done_before + start, total);
            let (result, compressed) = if options.compress {
                let compressed = zlib_best(&pad_to_word(part));
                let result =
                    self.write_compressed(at, part.len(), &compressed, progress, &mut acked);
                *compressed_size.get_or_insert(0) += compressed.len();
                (result, Some(compressed))
            } else {
                (
                    self.write_uncompressed(at, part, progress, &mut acked),
                    None,
                )
            };
            let Err(error) = result else {
                return Ok(());
            };
            let failed_at = at + acked.bytes as u32;
            // Bytes of `part` surely on the flash, even if the pulled cable also cut the chip's
            // power: the stubs acknowledge a block once its checksum is good and program it
            // after (flashlab's and esptool's), so the last acknowledged block may be missing,
            // and esptool's may also hold back up to their inflate window of a compressed stream.
            let programmed_blocks = acked.blocks.saturating_sub(1);
            let safe = match &compressed {
                Some(compressed) => {
                    let sent =
                        (programmed_blocks * STUB_FLASH_BLOCK_SIZE as usize).min(compressed.len());
                    inflated_len(&compressed[..sent])
                        .saturating_sub(STUB_INFLATE_WINDOW)
                        .min(part.len())
                }
                None => (programmed_blocks * STUB_FLASH_BLOCK_SIZE as usize).min(part.len()),
            };
            if self.loader() == Loader::Stub && self.line_corrupted(&error, line_errors) {
                let baud = self.connection.transport().baud();
                self.resync_after_failure()?;
                if !self.step_baud_down()? {
                    return Err(Error::WriteCorrupted {
                        address: region_address,
                        at: failed_at,
                        baud,
                        source: Box::new(error),
                    });
                }
                let sector_start = (at + safe as u32) & !(SECTOR_SIZE - 1);
                let resume = sector_start.max(at);
                self.report(Event::Warning(Warning::WriteBlockCorrupt {
                    address: failed_at,
                    resume,
                }));
                start = (resume - address) as usize;
                continue;
            }
            return Err(match error {
                source @ (Error::Timeout { .. } | Error::Io(_)) => {
                    let reached = (at + safe as u32) & !(SECTOR_SIZE - 1);
                    Error::WriteInterrupted {
                        address: region_address,
                        reached: reached.max(at),
                        written: done_before + start + acked.bytes,
                        total,
                        source: Box::new(source),
                    }
                }
                other => other,
            });
        }
    }

    /// True when `error`, ending a write stream begun when the connection had seen
    /// `line_errors_before` garbled inputs, says the line corrupted a block: the stub refused
    /// its checksum or length, its reply carried a status no stub sends, or it timed out after
    /// garbled input.
    fn line_corrupted(&self, error: &Error, line_errors_before: u64) -> bool {
        match error {
            Error::Device {
                opcode:
                    Opcode::FlashData
                    | Opcode::FlashDeflData
                    | Opcode::FlashBegin
                    | Opcode::FlashDeflBegin,
                code: ErrorCode::BadDataChecksum | ErrorCode::BadDataLength | ErrorCode::TooMuchData,
            } => true,
            // A status no stub sends: the reply itself was garbled.
            Error::Device {
                opcode: Opcode::FlashData | Opcode::FlashDeflData,
                code: ErrorCode::Other(_),
            } => true,
            Error::Timeout { .. } => self.connection.line_errors() > line_errors_before,
            _ => false,
        }
    }

    /// The flash mode of an image at 0x0 that the chip's flash wiring cannot carry: on an
    /// ESP8285 every mode but dout (its embedded flash is wired for dout).
    fn mode_the_flash_cannot_boot(&self, address: u32, data: &[u8]) -> Option<FlashMode> {
        if address != 0 || self.chip().kind != ChipKind::Esp8285 {
            return None;
        }
        read_flash_params(data)
            .and_then(|params| params.mode().ok())
            .filter(|&mode| mode != FlashMode::Dout)
    }

    /// Explains a failed verification: the status register's protection bits, else the
    /// sectors that did not take the data when only some did; otherwise `error` as it is.
    fn diagnose_verify_failure(&mut self, address: u32, data: &[u8], error: Error) -> Error {
        let Ok(status) = self.read_flash_status(2) else {
            return error;
        };
        if status & PROTECTING_BITS != 0 {
            let bits: Vec<&str> = PROTECTION_BITS
                .iter()
                .filter(|(mask, _)| status & mask != 0)
                .map(|(_, name)| *name)
                .collect();
            return Error::WriteProtected {
                address,
                status,
                bits: bits.join(" "),
            };
        }
        let Ok(runs) = self.changed_runs(address, data) else {
            return error;
        };
        let differing: usize = runs.iter().map(|run| run.len()).sum();
        if runs.is_empty() || differing == data.len() {
            return error;
        }
        let sectors = runs
            .iter()
            .flat_map(|run| {
                let start = (address + run.start as u32) & !(SECTOR_SIZE - 1);
                (start..address + run.end as u32).step_by(SECTOR_SIZE as usize)
            })
            .collect();
        Error::SectorsNotWritten {
            address,
            size: data.len(),
            sectors,
        }
    }

    /// The ranges of `data` (sector runs) that differ from the flash at `address`.
    fn changed_runs(&mut self, address: u32, data: &[u8]) -> Result<Vec<Range<usize>>> {
        self.compare_with_flash(address, data, false)
    }

    /// What to write of `data`: the differing sectors, or the differing 64 KiB blocks
    /// whole when most blocks differ (sector digests would cost more round trips than
    /// they save).
    fn runs_to_write(&mut self, address: u32, data: &[u8]) -> Result<Vec<Range<usize>>> {
        self.compare_with_flash(address, data, true)
    }

    fn compare_with_flash(
        &mut self,
        address: u32,
        data: &[u8],
        blocks_when_mostly_new: bool,
    ) -> Result<Vec<Range<usize>>> {
        if data.is_empty() || self.flash_md5(address, data.len() as u32)? == md5_of(data) {
            return Ok(Vec::new());
        }
        let whole = 0..data.len();
        let block_count = pieces(address, whole.clone(), COMPARE_BLOCK_SIZE).count();
        if block_count <= 1 {
            return self.differing(address, data, whole, SECTOR_SIZE as usize);
        }
        let blocks = self.differing(address, data, whole, COMPARE_BLOCK_SIZE)?;
        let differing_blocks: usize = blocks
            .iter()
            .map(|run| pieces(address, run.clone(), COMPARE_BLOCK_SIZE).count())
            .sum();
        if blocks_when_mostly_new && differing_blocks * 2 > block_count {
            return Ok(blocks);
        }
        let mut runs = Vec::new();
        for block in blocks {
            for run in self.differing(address, data, block, SECTOR_SIZE as usize)? {
                push_run(&mut runs, run);
            }
        }
        Ok(runs)
    }

    /// The runs of `within` (offsets into `data`, at flash `address`) whose `unit`-aligned
    /// pieces have another MD5 on the flash.
    fn differing(
        &mut self,
        address: u32,
        data: &[u8],
        within: Range<usize>,
        unit: usize,
    ) -> Result<Vec<Range<usize>>> {
        let pieces: Vec<Range<usize>> = pieces(address, within, unit).collect();
        // Only the first and the last piece can be partial: the whole ones between go in
        // one request when the stub has SPI_FLASH_MD5_PIECES.
        let whole = pieces
            .iter()
            .position(|piece| piece.len() == unit)
            .map(|first| {
                let last = pieces
                    .iter()
                    .rposition(|piece| piece.len() == unit)
                    .unwrap_or(first);
                first..last + 1
            });
        let mut batched = None;
        if let Some(whole) = whole.clone().filter(|whole| whole.len() > 1) {
            let start = pieces[whole.start].start;
            let end = pieces[whole.end - 1].end;
            batched =
                self.flash_md5_pieces(address + start as u32, (end - start) as u32, unit as u32)?;
        }
        let mut runs = Vec::new();
        for (index, piece) in pieces.into_iter().enumerate() {
            let on_flash = match (&batched, &whole) {
                (Some(digests), Some(whole)) if whole.contains(&index) => {
                    digests[index - whole.start]
                }
                _ => self.flash_md5(address + piece.start as u32, piece.len() as u32)?,
            };
            if on_flash != md5_of(&data[piece.clone()]) {
                push_run(&mut runs, piece);
            }
        }
        Ok(runs)
    }

    /// FLASH_DEFL_*: `compressed` (`size` bytes zlib-compressed) in 0x4000-byte blocks.
    /// `acked` counts the blocks the chip has taken and about how many bytes they carried.
    fn write_compressed(
        &mut self,
        address: u32,
        size: usize,
        compressed: &[u8],
        (done_before, total): (usize, usize),
        acked: &mut Acked,
    ) -> Result<()> {
        let blocks = compressed.len().div_ceil(STUB_FLASH_BLOCK_SIZE as usize);
        let begin = BeginParams {
            size: size as u32,
            blocks: blocks as u32,
            block_size: STUB_FLASH_BLOCK_SIZE,
            offset: address,
            encrypted: None,
        };
        self.connection
            .command(&Command::FlashDeflBegin(begin), DEFAULT_TIMEOUT)?;
        // Each block may inflate to much more than its size; allow erase time for its share.
        let block_timeout = timeout_per_mb(ERASE_SECONDS_PER_MB, (size / blocks.max(1)) as u32);
        for (sequence, chunk) in compressed
            .chunks(STUB_FLASH_BLOCK_SIZE as usize)
            .enumerate()
        {
            let block = DataBlock {
                sequence: sequence as u32,
                data: chunk.to_vec(),
            };
            let block_address = address + (size * sequence / blocks) as u32;
            self.send_block(&Command::FlashDeflData(block), block_timeout, block_address)?;
            let share = size * (sequence + 1) / blocks;
            *acked = Acked {
                bytes: share,
                blocks: sequence + 1,
            };
            self.report(Event::Progress {
                operation: Operation::Write,
                done: done_before + share,
                total,
            });
        }
        Ok(())
    }

    /// Sends one DATA block, and sends it again when no reply came (a byte lost or garbled on
    /// the line, either way) or the stub refused its checksum (a bit flipped on the way):
    /// [`BLOCK_ATTEMPTS`] in all (esptool makes 3). flashlab's stub answers a block it already
    /// took with that block's status and does not write it twice. What still fails is left to
    /// the caller, which steps the rate down where it can.
    fn send_block(&mut self, command: &Command, timeout: Duration, address: u32) -> Result<()> {
        let mut attempt = 1;
        loop {
            let line_errors = self.connection.line_errors();
            let error = match self.connection.command(command, timeout) {
                Ok(_) => return Ok(()),
                Err(error) => error,
            };
            let reason = match error {
                Error::Timeout { .. } if self.connection.line_errors() == line_errors => {
                    RetryReason::Timeout
                }
                // With --baud auto a garbled line means a lower rate instead (the caller).
                Error::Timeout { .. } if !self.auto_baud => RetryReason::Garbled,
                Error::Device {
                    code: ErrorCode::BadDataChecksum,
                    ..
                } => RetryReason::Garbled,
                _ => return Err(error),
            };
            if attempt == BLOCK_ATTEMPTS {
                return Err(error);
            }
            attempt += 1;
            self.report(Event::Retrying {
                address,
                attempt,
                reason,
            });
        }
    }

    /// FLASH_*: the stub takes 0x4000-byte blocks; the ROM 0x400-byte blocks
    /// after a FLASH_BEGIN whose size works around its erase quirk. `acked` counts the
    /// blocks of `bytes` the chip has taken and their bytes.
    fn write_uncompressed(
        &mut self,
        address: u32,
        bytes: &[u8],
        (done_before, total): (usize, usize),
        acked: &mut Acked,
    ) -> Result<()> {
        let (block_size, erase_size) = match self.loader() {
            Loader::Stub => (STUB_FLASH_BLOCK_SIZE, bytes.len() as u32),
            Loader::Rom => {
                let plan = rom_erase_plan(address, bytes.len() as u32);
                if plan.extra_sectors > 0 {
                    let extra_sector_address = (plan.erased_sectors.end - 1) * SECTOR_SIZE;
                    self.report(Event::Warning(Warning::RomEraseOvershoot {
                        extra_sector_address,
                    }));
                }
                (ROM_FLASH_BLOCK_SIZE, plan.size_to_send)
            }
        };
        let blocks = bytes.len().div_ceil(block_size as usize);
        let begin = BeginParams {
            size: erase_size,
            blocks: blocks as u32,
            block_size,
            offset: address,
            encrypted: None,
        };
        let begin_timeout = match self.loader() {
            Loader::Stub => DEFAULT_TIMEOUT,
            Loader::Rom => timeout_per_mb(ERASE_SECONDS_PER_MB, erase_size),
        };
        self.connection
            .command(&Command::FlashBegin(begin), begin_timeout)?;
        for (sequence, chunk) in bytes.chunks(block_size as usize).enumerate() {
            let mut data = chunk.to_vec();
            data.resize(block_size as usize, 0xFF);
            let block = DataBlock {
                sequence: sequence as u32,
                data,
            };
            let command = Command::FlashData(block);
            let timeout = timeout_per_mb(ERASE_SECONDS_PER_MB, block_size);
            match self.loader() {
                Loader::Stub => {
                    let block_address = address + sequence as u32 * block_size;
                    self.send_block(&command, timeout, block_address)?;
                }
                // Whether the ROM loader recognises a block sent again is not known: no resend.
                Loader::Rom => drop(self.connection.command(&command, timeout)?),
            }
            let done = (sequence * block_size as usize + chunk.len()).min(bytes.len());
            *acked = Acked {
                bytes: done,
                blocks: sequence + 1,
            };
            self.report(Event::Progress {
                operation: Operation::Write,
                done: done_before + done,
                total,
            });
        }
        Ok(())
    }
}

/// The ROM loader writes whole words: a write must start on one.
const ROM_WRITE_ALIGNMENT: u32 = 4;
/// Bytes per digest at the first level of the skip-unchanged comparison.
const COMPARE_BLOCK_SIZE: usize = 0x10000;
/// Times one DATA block is sent before a write stops for want of a reply. esptool makes 3
/// attempts; a 16 KiB block on a line losing one byte in 100,000 is damaged 15% of the time,
/// so 3 in a row (0.4%) would stop about one 1MB write in four, 5 (0.01%) one in a hundred.
const BLOCK_ATTEMPTS: u32 = 5;
/// Inflated bytes a stub may hold back before writing them: its 32 KiB inflate window.
const STUB_INFLATE_WINDOW: usize = 0x8000;

/// What the chip has taken of a write stream.
#[derive(Debug, Default, Clone, Copy)]
struct Acked {
    /// Data bytes (for a compressed stream, about as many as its blocks inflate to).
    bytes: usize,
    /// DATA blocks acknowledged.
    blocks: usize,
}

/// How many bytes the start of a zlib stream inflates to.
fn inflated_len(compressed: &[u8]) -> usize {
    let mut inflater = flate2::Decompress::new(true);
    let mut output = vec![0; 0x10000];
    let mut input = compressed;
    loop {
        let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
        let status = inflater.decompress(input, &mut output, flate2::FlushDecompress::None);
        input = &input[(inflater.total_in() - in_before) as usize..];
        let progressed = inflater.total_in() != in_before || inflater.total_out() != out_before;
        if !matches!(status, Ok(flate2::Status::Ok)) || !progressed {
            return inflater.total_out() as usize;
        }
    }
}

/// `within` (offsets of data at flash `address`) cut at flash addresses that are multiples of `unit`.
fn pieces(address: u32, within: Range<usize>, unit: usize) -> impl Iterator<Item = Range<usize>> {
    let base = address as usize;
    let mut start = within.start;
    std::iter::from_fn(move || {
        if start >= within.end {
            return None;
        }
        let unit_end = ((base + start) / unit + 1) * unit - base;
        let piece = start..unit_end.min(within.end);
        start = piece.end;
        Some(piece)
    })
}

/// Appends `run`, merging it with the last run when they touch.
fn push_run(runs: &mut Vec<Range<usize>>, run: Range<usize>) {
    match runs.last_mut() {
        Some(last) if last.end == run.start => last.end = run.end,
        _ => runs.push(run),
    }
}

/// True when `len` bytes at `first` and a region starting at `second` (not below `first`)
/// reach a common flash sector: writing one would erase the other's bytes there.
pub fn share_a_sector(first: u32, len: usize, second: u32) -> bool {
    let first_end = u64::from(first) + len as u64;
    let first_sector_end = first_end.div_ceil(u64::from(SECTOR_SIZE)) * u64::from(SECTOR_SIZE);
    u64::from(second & !(SECTOR_SIZE - 1)) < first_sector_end
}

/// Refuses regions whose sector spans meet, as esptool does.
fn check_sector_overlap(sorted: &[&Region]) -> Result<()> {
    for pair in sorted.windows(2) {
        let (first, second) = (pair[0], pair[1]);
        if share_a_sector(first.address, first.data.len(), second.address) {
            return Err(Error::OverlappingRegions {
                first: first.address,
                second: second.address,
            });
        }
    }
    Ok(())
}

/// esptool pads what it compresses to a 4-byte multiple with 0xFF.
fn pad_to_word(bytes: &[u8]) -> Vec<u8> {
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().div_ceil(4) * 4, 0xFF);
    padded
}

fn zlib_best(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
    encoder
        .write_all(bytes)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(address: u32, len: usize) -> Region {
        Region {
            address,
            data: vec![0; len],
        }
    }

    #[test]
    fn regions_sharing_a_sector_are_refused() {
        let (a, b) = (region(0, 0x1001), region(0x1800, 4));
        assert!(matches!(
            check_sector_overlap(&[&a, &b]),
            Err(Error::OverlappingRegions {
                first: 0,
                second: 0x1800
            })
        ));
        let (a, b) = (region(0, 0x1000), region(0x1000, 4));
        assert!(check_sector_overlap(&[&a, &b]).is_ok());
    }

    #[test]
    fn pieces_follow_flash_alignment() {
        let cut: Vec<_> = pieces(0x3800, 0..0x2000, 0x1000).collect();
        assert_eq!(cut, [0..0x800, 0x800..0x1800, 0x1800..0x2000]);
        let blocks: Vec<_> = pieces(0x0, 0x100..0x20000, 0x10000).collect();
        assert_eq!(blocks, [0x100..0x10000, 0x10000..0x20000]);
        let mut runs = Vec::new();
        push_run(&mut runs, 0x0..0x1000);
        push_run(&mut runs, 0x1000..0x2000);
        push_run(&mut runs, 0x3000..0x4000);
        assert_eq!(runs, [0..0x2000, 0x3000..0x4000]);
    }

    #[test]
    fn compression_pads_to_words_and_round_trips() {
        let compressed = zlib_best(&pad_to_word(&[1, 2, 3, 4, 5]));
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::ZlibDecoder::new(&compressed[..]),
            &mut inflated,
        )
        .unwrap();
        assert_eq!(inflated, vec![1, 2, 3, 4, 5, 0xFF, 0xFF, 0xFF]);
    }
}
