//! The library's error type.

use std::path::PathBuf;

use esp_protocol::flash_params::size_name;
use esp_protocol::packet::Opcode;
use esp_protocol::status::ErrorCode;

use crate::progress::RetryReason;

/// Everything that can stop an operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The serial line failed.
    #[error("serial I/O failed: {0}")]
    Io(#[from] std::io::Error),

    /// No response to a command within its timeout.
    #[error("timed out after {timeout_ms} ms waiting for the response to {opcode}")]
    Timeout {
        /// The command.
        opcode: Opcode,
        /// How long we waited.
        timeout_ms: u128,
    },

    /// The chip never answered SYNC.
    #[error("failed to connect: no answer to SYNC after {attempts} attempts; is the chip in download mode (GPIO0 low at reset)?")]
    NoSync {
        /// Connection attempts made.
        attempts: u32,
        /// What the chip showed when it was reset.
        reset: crate::connection::ResetObserved,
    },

    /// The ROM loader or stub refused a command.
    #[error("{opcode} failed: {code}")]
    Device {
        /// The command.
        opcode: Opcode,
        /// The status code the device sent.
        code: ErrorCode,
    },

    /// A response that does not have the form its command expects.
    #[error("unexpected response to {opcode}: expected {expected}, got {got}")]
    UnexpectedResponse {
        /// The command.
        opcode: Opcode,
        /// What it should have held.
        expected: String,
        /// What it held.
        got: String,
    },
    /// A command too long for a packet (the library's own mistake: a block larger than the
    /// protocol carries).
    #[error("{opcode} cannot be sent: {source}")]
    Encode {
        /// The command.
        opcode: Opcode,
        /// Why it does not fit.
        source: esp_protocol::packet::EncodeError,
    },

    /// The SPI peripheral never finished a flash command.
    #[error("SPI flash command {command:#04x} did not complete")]
    SpiCommandStuck {
        /// The SPI flash command byte.
        command: u8,
    },

    /// The chip-detect register holds another chip's magic value.
    #[error(
        "not an ESP8266: magic register {:#010x} holds {got:#010x}, expected {expected:#010x}",
        esp_protocol::chip::CHIP_DETECT_MAGIC_REG
    )]
    UnsupportedChip {
        /// The ESP8266's value.
        expected: u32,
        /// The value read.
        got: u32,
    },

    /// The eFuses name an OUI this tool does not know, so there is no MAC.
    #[error(
        "unknown MAC OUI marker {marker:#04x} in eFuse word {:#010x}",
        esp_protocol::chip::EFUSE_REGS[1]
    )]
    UnknownOui {
        /// Bits 16..24 of the second MAC eFuse word.
        marker: u8,
    },

    /// The operation needs the flasher stub, which is not running.
    #[error("{operation} needs the flasher stub, which the ESP8266 ROM loader lacks: give one with --stub-file PATH or the ESP_FLASHER_STUB environment variable (esptool's stub JSON)")]
    StubRequired {
        /// What was asked.
        operation: &'static str,
    },

    /// A stub JSON file that could not be used.
    #[error("stub file {path}: {reason}")]
    BadStub {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The stub was uploaded but did not say "OHAI".
    #[error("the stub did not start: no OHAI greeting")]
    StubDidNotStart,

    /// A region that runs past the end of the flash.
    #[error("{size} bytes at {address:#x} end at {end:#x}, past the end of the {} ({flash_size}-byte) flash", size_name((*.flash_size).into()), end = *address as u64 + *size)]
    RegionPastEnd {
        /// Flash offset.
        address: u32,
        /// Bytes.
        size: u64,
        /// Bytes of the flash.
        flash_size: u32,
    },

    /// Two regions to write overlap.
    #[error("regions at {first:#x} and {second:#x} overlap")]
    OverlappingRegions {
        /// The first region's offset.
        first: u32,
        /// The second region's offset.
        second: u32,
    },

    /// An erase range not on 4 KiB sector boundaries.
    #[error(
        "erase region {address:#x}+{size:#x} is not aligned to the {sector_size:#x}-byte sector"
    )]
    Unaligned {
        /// Flash offset.
        address: u32,
        /// Bytes.
        size: u32,
        /// The sector size.
        sector_size: u32,
    },

    /// A write the loader cannot do at this address.
    #[error("the ROM loader cannot write at {address:#x}: its writes start on a {alignment}-byte boundary")]
    UnalignedWrite {
        /// Flash offset.
        address: u32,
        /// The boundary writes must start on.
        alignment: u32,
    },

    /// The ROM loader would erase bytes outside the data: it erases whole sectors (and, for
    /// some ranges, one more), and cannot read them first to write them back.
    #[error(
        "the ROM loader erases whole sectors: writing {size} bytes at {address:#x} would also erase {} ({} bytes outside the file)",
        .lost.iter().map(|range| format!("{:#x}..{:#x}", range.start, range.end)).collect::<Vec<_>>().join(" and "),
        .lost.iter().map(|range| range.end - range.start).sum::<u32>()
    )]
    RomWouldEraseOutside {
        /// Flash offset of the data.
        address: u32,
        /// Bytes of data.
        size: u32,
        /// The flash ranges outside the data that the ROM would erase.
        lost: Vec<std::ops::Range<u32>>,
    },

    /// Flash contents after a write differ from the data.
    #[error(
        "verification failed at {address:#x} ({size} bytes): flash MD5 {got}, data MD5 {expected}"
    )]
    VerifyFailed {
        /// Flash offset.
        address: u32,
        /// Bytes compared.
        size: usize,
        /// MD5 of the data, hex.
        expected: String,
        /// MD5 the device computed, hex.
        got: String,
    },

    /// Flash that did not take a write because its status register protects it.
    #[error("the flash is write-protected: status register {status:#06x} has {bits} set, so the chip ignored the write at {address:#x}")]
    WriteProtected {
        /// Flash offset of the write.
        address: u32,
        /// Status registers 1 and 2 (register 1 in the low byte).
        status: u32,
        /// The protection bits that are set, e.g. "BP0 BP1 BP2".
        bits: String,
    },

    /// Some sectors of a written region do not hold the data, the others do.
    #[error("{} of the {size} bytes written at {address:#x} did not take: {}", .sectors.len() * 4096, describe_sectors(.sectors))]
    SectorsNotWritten {
        /// Flash offset of the region.
        address: u32,
        /// Bytes in the region.
        size: usize,
        /// Addresses of the 4 KiB sectors whose contents differ from the data.
        sectors: Vec<u32>,
    },

    /// The flash's addresses wrap: less memory is present than its ID claims.
    #[error("the flash ID claims {} but the chip's addresses wrap every {}: only {} is really there, and reading or writing past {:#x} reaches 0x0 again", size_name((*.claimed).into()), size_name((*.real).into()), size_name((*.real).into()), .real)]
    FlashWraps {
        /// Bytes the JEDEC ID claims.
        claimed: u32,
        /// Bytes after which the addresses wrap.
        real: u32,
    },

    /// The line failed in the middle of a write.
    #[error("the write to {address:#x} stopped after {written} of {total} bytes, at about {reached:#x}: {source}")]
    WriteInterrupted {
        /// Flash offset of the region.
        address: u32,
        /// The address the flash is written up to, rounded down to a sector.
        reached: u32,
        /// Bytes of the region acknowledged by the chip.
        written: usize,
        /// Bytes of the region to write.
        total: usize,
        /// What stopped it.
        source: Box<Error>,
    },

    /// The line corrupted a data block of a write and no lower rate was left to try (or the
    /// rate was fixed with `--baud`).
    #[error("the write to {address:#x} failed at about {at:#x}: the serial line corrupted a data block at {baud} baud ({source})")]
    WriteCorrupted {
        /// Flash offset of the region.
        address: u32,
        /// About where the failed block's data goes on the flash.
        at: u32,
        /// The rate the line ran at.
        baud: u32,
        /// What the chip (or the line) answered.
        source: Box<Error>,
    },

    /// A sparse read: the chip's MD5 of a piece of flash differs from the bytes it sent for it.
    #[error(
        "the chip's MD5 of {size} bytes at {address:#x} differs from the bytes it sent for them"
    )]
    ReadDisagrees {
        /// Flash offset of the piece.
        address: u32,
        /// Its length.
        size: usize,
    },

    /// A read that kept failing after retries.
    #[error("reading flash failed at {address:#x} after {attempts} attempts ({reason}); {bytes_read} bytes were read before it")]
    ReadFailed {
        /// The block that failed.
        address: u32,
        /// Bytes read successfully before it.
        bytes_read: usize,
        /// Attempts made on the block.
        attempts: u32,
        /// The last failure.
        reason: RetryReason,
    },

    /// The line failed in the middle of a read (a pulled cable): no retry can help.
    #[error("reading flash stopped at {address:#x}, {bytes_read} bytes into the read: {source}")]
    ReadInterrupted {
        /// The block being read when the line failed.
        address: u32,
        /// Bytes read successfully before it.
        bytes_read: usize,
        /// What stopped it.
        source: Box<Error>,
    },

    /// The flash chip's size could not be told from its JEDEC ID.
    #[error("cannot tell the flash size from JEDEC ID {jedec_id:#08x}; give the size explicitly")]
    UnknownFlashSize {
        /// The ID read.
        jedec_id: u32,
    },

    /// Another esp-flasher run is writing the same output file.
    #[error("another esp-flasher is writing {} (it holds {})", .path.display(), .lock.display())]
    OutputBusy {
        /// The output file.
        path: PathBuf,
        /// The lock file it holds.
        lock: PathBuf,
    },

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// The image does not fit the connected chip in ways `--force` may override.
    #[error("{path} does not fit this chip: {}", .mismatches.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    RestoreMismatch {
        /// The image.
        path: PathBuf,
        /// What does not fit.
        mismatches: Vec<crate::backup::Mismatch>,
    },

    /// A backup record that could not be used.
    #[error("backup record {path}: {reason}")]
    BadRecord {
        /// The record file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// This error, stopping a read at block `address` after `bytes_read` bytes, as one that
    /// names the address reached ([`Error::ReadFailed`] already does).
    pub(crate) fn stopped_reading_at(self, address: u32, bytes_read: usize) -> Error {
        match self {
            Error::ReadFailed { .. } | Error::ReadInterrupted { .. } => self,
            source => Error::ReadInterrupted {
                address,
                bytes_read,
                source: Box::new(source),
            },
        }
    }
}

/// "the sector at 0x3000" or "the sectors at 0x3000, 0x5000, ...".
fn describe_sectors(sectors: &[u32]) -> String {
    const LISTED: usize = 8;
    let mut listed: Vec<String> = sectors
        .iter()
        .take(LISTED)
        .map(|sector| format!("{sector:#x}"))
        .collect();
    if sectors.len() > LISTED {
        listed.push("...".into());
    }
    match sectors.len() {
        1 => format!("the sector at {} kept other contents", listed[0]),
        _ => format!("the sectors at {} kept other contents", listed.join(", ")),
    }
}

impl From<esp_protocol::chip::UnknownOui> for Error {
    fn from(unknown: esp_protocol::chip::UnknownOui) -> Self {
        Error::UnknownOui {
            marker: unknown.marker,
        }
    }
}
