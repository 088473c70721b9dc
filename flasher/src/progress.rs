//! Progress and diagnostics as events.
//!
//! The library never prints: everything a user might want to see goes to a
//! [`ProgressSink`] as an [`Event`], and the binary decides how to show it
//! (a progress bar, a log line, nothing). Closures taking `&Event` are sinks.

use std::sync::{Arc, Mutex};

use esp_protocol::image::FlashParamsPatch;

use crate::chip::ChipInfo;

/// What a flash operation is doing, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Writing a region.
    Write,
    /// Reading a region.
    Read,
    /// Uploading the stub to RAM.
    StubUpload,
}

/// Why a read block was retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryReason {
    /// Nothing arrived within the timeout.
    Timeout,
    /// A data frame shorter than the packet size before the end of the block.
    ShortFrame {
        /// Bytes the frame should have held.
        expected: usize,
        /// Bytes it held.
        got: usize,
    },
    /// The MD5 of the data received differs from the digest the device sent.
    DigestMismatch,
    /// The block did not complete, and what did arrive was garbled (malformed frames, bytes
    /// outside any frame): the line corrupted it rather than the reply being lost.
    Garbled,
    /// A frame that is neither data nor a digest (the device's own words).
    Other(String),
}

impl RetryReason {
    /// True when the line corrupted the data (a short frame, a digest mismatch, garbled
    /// frames): a sign the baud rate is too high. A plain timeout (a lost reply) is not.
    pub fn is_line_corruption(&self) -> bool {
        matches!(
            self,
            RetryReason::ShortFrame { .. } | RetryReason::DigestMismatch | RetryReason::Garbled
        )
    }
}

impl std::fmt::Display for RetryReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetryReason::Timeout => f.write_str("timeout"),
            RetryReason::ShortFrame { expected, got } => {
                write!(f, "short frame ({got} of {expected} bytes)")
            }
            RetryReason::DigestMismatch => f.write_str("MD5 digest mismatch"),
            RetryReason::Garbled => f.write_str("garbled frames"),
            RetryReason::Other(text) => f.write_str(text),
        }
    }
}

/// Something the library did or saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A reset or SYNC attempt began (1-based).
    Connecting {
        /// Attempt number.
        attempt: u32,
    },
    /// Bytes outside any frame (a boot log, line noise), as esptool's "Invalid head of packet".
    Garbage {
        /// The bytes, as received.
        bytes: Vec<u8>,
    },
    /// The loader answered and the chip was identified.
    Connected(ChipInfo),
    /// The flasher stub answered with "OHAI".
    StubRunning,
    /// The UART runs at a new baud rate.
    BaudChanged {
        /// The new rate.
        baud: u32,
    },
    /// The flash chip's JEDEC ID and the size it implies.
    FlashDetected {
        /// The 24-bit JEDEC ID.
        jedec_id: u32,
        /// The size in bytes, if the ID says.
        size: Option<u32>,
    },
    /// An operation on a region starts.
    Started {
        /// What is being done.
        operation: Operation,
        /// Flash offset or RAM address.
        address: u32,
        /// Bytes to handle.
        total: usize,
    },
    /// Progress within the current operation.
    Progress {
        /// What is being done.
        operation: Operation,
        /// Bytes done so far.
        done: usize,
        /// Bytes in all.
        total: usize,
    },
    /// An operation on a region finished.
    Finished {
        /// What was done.
        operation: Operation,
    },
    /// A block failed and is being read, sent or uploaded again.
    Retrying {
        /// What the block belongs to.
        operation: Operation,
        /// Flash offset of the block (RAM address for the stub's upload).
        address: u32,
        /// Attempt about to start (2 for the first retry).
        attempt: u32,
        /// What went wrong.
        reason: RetryReason,
    },
    /// Bytes found already equal on the flash and not written.
    Skipped {
        /// Flash offset of the region.
        address: u32,
        /// Bytes skipped.
        bytes: usize,
        /// Bytes in the region.
        total: usize,
    },
    /// The image header at offset 0 was examined for flash parameters.
    HeaderPatched(FlashParamsPatch),
    /// A region was erased.
    Erased {
        /// Flash offset.
        address: u32,
        /// Bytes erased.
        size: u32,
    },
    /// A region's MD5 on the flash matches the data.
    Verified {
        /// Flash offset.
        address: u32,
        /// Bytes verified.
        size: usize,
    },
    /// Something the user should know that does not stop the work.
    Warning(Warning),
}

/// Warnings, each with the facts a message needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The port has no DTR/RTS lines (a pty), so no reset could be done; sent once.
    ModemLinesUnsupported,
    /// A backup's size differs from the connected chip's flash size.
    FlashSizeMismatch {
        /// Bytes in the backup.
        image_size: u32,
        /// Bytes of the flash found.
        flash_size: u32,
        /// The `-fs` value that keeps the SDK's settings where the firmware expects them.
        suggested_size_name: String,
    },
    /// The image's flash mode will not boot on an ESP8285 (its flash is dout only).
    NotDoutOnEsp8285 {
        /// The mode in the image header.
        mode: String,
    },
    /// Data arrived corrupt at this baud rate (`--baud auto`): the line goes down to the next rate.
    BaudTooFast {
        /// The rate that failed.
        baud: u32,
        /// The rate tried next.
        next: u32,
    },
    /// The line corrupted a data block of a write (`--baud auto`): after going down one rate
    /// the write starts a new stream at `resume` for the rest of the region.
    WriteBlockCorrupt {
        /// About where the failed block's data goes on the flash.
        address: u32,
        /// Where the write starts again (a sector boundary at or before the failed block).
        resume: u32,
    },
    /// The first-stage loader could not bring the stub over at `baud` (its upload, the rate
    /// change or the stub's upload at that rate failed): the stub is uploaded at 115200.
    FirstStageFailed {
        /// The rate the first stage was to switch to.
        baud: u32,
        /// What failed, as one line.
        reason: String,
    },
    /// Without a stub the flash's real size cannot be measured, so a fake chip whose
    /// addresses wrap would go unnoticed.
    RealSizeUnchecked,
    /// A backup read from the built-in virtual chip is being written to a board.
    VirtualBackup {
        /// The `emu:` port it was read from.
        emu: String,
    },
    /// A mismatch between the image and the chip that `--force` let through.
    Forced(crate::backup::Mismatch),
    /// The backup was taken from another chip.
    DifferentChip {
        /// MAC recorded in the backup.
        recorded_mac: String,
        /// MAC of the connected chip.
        connected_mac: String,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::FirstStageFailed { baud, reason } => write!(
                f,
                "the stub could not be sent at {baud} baud through the first-stage loader ({reason}); \
                 sending it at 115200 baud"
            ),
            Warning::ModemLinesUnsupported => f.write_str(
                "the port has no DTR/RTS lines, so the chip was not reset; it must already be in the loader",
            ),
            Warning::FlashSizeMismatch { image_size, flash_size, suggested_size_name } => write!(
                f,
                "the image is {image_size} bytes but the flash holds {flash_size}; the SDK keeps its settings \
                 in the last sectors of the flash size in the header, so write with -fs {suggested_size_name} \
                 to keep them where the firmware looks"
            ),
            Warning::NotDoutOnEsp8285 { mode } => write!(
                f,
                "the image header says flash mode {mode}, but an ESP8285's embedded flash needs dout: use -fm dout"
            ),
            Warning::BaudTooFast { baud, next } => write!(
                f,
                "the serial adapter does not carry {baud} baud cleanly; going down to {next} baud"
            ),
            Warning::WriteBlockCorrupt { address, resume } => write!(
                f,
                "the line corrupted the block written at about {address:#010x}; writing again from {resume:#010x}"
            ),
            Warning::RealSizeUnchecked => f.write_str(
                "the ROM loader cannot check that the flash is as large as its ID claims (a stub can); \
                 on a fake chip a write past its real size overwrites the start",
            ),
            Warning::VirtualBackup { emu } => write!(
                f,
                "this backup was read from the built-in virtual ESP8266 ({emu}), not from a board: \
                 it holds sample contents, not a firmware of yours"
            ),
            Warning::Forced(mismatch) => write!(f, "{mismatch} (written anyway: --force)"),
            Warning::DifferentChip { recorded_mac, connected_mac } => write!(
                f,
                "the backup was taken from the chip with MAC {recorded_mac}, this one is {connected_mac}"
            ),
        }
    }
}

/// Receives the library's events.
pub trait ProgressSink {
    /// Called for every event, in order.
    fn event(&mut self, event: &Event);
}

impl<F: FnMut(&Event)> ProgressSink for F {
    fn event(&mut self, event: &Event) {
        self(event)
    }
}

/// A sink that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl ProgressSink for Silent {
    fn event(&mut self, _event: &Event) {}
}

/// A sink that keeps every event; clones share the same list.
#[derive(Debug, Default, Clone)]
pub struct EventLog {
    events: Arc<Mutex<Vec<Event>>>,
}

impl EventLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("event log poisoned").clone()
    }
}

impl ProgressSink for EventLog {
    fn event(&mut self, event: &Event) {
        self.events
            .lock()
            .expect("event log poisoned")
            .push(event.clone());
    }
}
