//! READ_FLASH with resume.
//!
//! The stub streams a range as frames of [`STUB_READ_PACKET_SIZE`] bytes, up to
//! [`READ_WINDOW`] ahead of the host's cumulative 4-byte acknowledgements,
//! and ends with a 16-byte MD5 frame of the range. The range is asked for in
//! blocks of [`READ_BLOCK_SIZE`], each checked by its own MD5 frame: that
//! block is the unit of retry. A block that fails (timeout, short frame,
//! digest mismatch) is read again from its start after the line is drained
//! and re-synchronised. A corrupt block is read again at half the length
//! (down to one frame), and the blocks after it start at the length that got
//! through and double back up to [`READ_BLOCK_SIZE`]: on a noisy line (one
//! flipped bit in 100 KB) a 64 KiB block fails about every other time, a
//! 4 KiB one once in 25. After [`READ_ATTEMPTS`] failures, or when the line
//! itself fails (a pulled cable), the read stops with
//! the address reached. With `--baud auto` a block the line corrupted (short
//! frame, digest mismatch, garbled frames) first steps the line down one rate
//! ([`crate::ops::baud`]); attempts are counted per rate. A plain timeout (a
//! lost reply, nothing garbled) is no sign the rate is too high: that block is
//! read again at the same rate.

use std::path::Path;
use std::time::Duration;

use esp_protocol::packet::{encode_read_ack, Command, STUB_READ_PACKET_SIZE};

use crate::backup::write_file_atomically;
use crate::connection::DEFAULT_TIMEOUT;
use crate::error::{Error, Result};
use crate::flasher::Flasher;
use crate::ops::erase::md5_of;
use crate::progress::{Event, Operation, RetryReason};
use crate::transport::Transport;

/// Frames the stub may send ahead of the acknowledgements (esptool's 64).
pub const READ_WINDOW: u32 = 64;
/// Bytes per READ_FLASH command: the unit checked by MD5 and retried.
pub const READ_BLOCK_SIZE: u32 = 0x10000;
/// Attempts per block before giving up.
pub const READ_ATTEMPTS: u32 = 5;
/// SYNC tries when recovering from a failed block.
const RESYNC_TRIES: u32 = 5;

impl<T: Transport> Flasher<T> {
    /// Reads `size` bytes of flash at `address` (stub only), retrying failed blocks.
    pub fn read_flash(&mut self, address: u32, size: u32) -> Result<Vec<u8>> {
        self.require_stub("read_flash")?;
        self.check_in_flash(address, size as u64)?;
        let total = size as usize;
        self.report(Event::Started {
            operation: Operation::Read,
            address,
            total,
        });
        let mut data = Vec::with_capacity(total);
        let mut block_size = READ_BLOCK_SIZE;
        while data.len() < total {
            let block_address = address + data.len() as u32;
            let block_len = (size - data.len() as u32).min(block_size);
            let block = self
                .read_block_with_retries(block_address, block_len, data.len(), total)
                .map_err(|error| error.stopped_reading_at(block_address, data.len()))?;
            // A block that had to shrink to get through sets the length of the next; a clean one grows it.
            block_size = if (block.len() as u32) < block_len {
                block.len() as u32
            } else {
                block_size.saturating_mul(2).min(READ_BLOCK_SIZE)
            };
            data.extend_from_slice(&block);
        }
        self.report(Event::Finished {
            operation: Operation::Read,
        });
        Ok(data)
    }

    /// Reads flash into `path`, which appears only once the read is complete and checked.
    pub fn read_flash_to_file(&mut self, address: u32, size: u32, path: &Path) -> Result<()> {
        let data = self.read_flash(address, size)?;
        write_file_atomically(path, &data)
    }

    /// Reads `len` bytes at `address`, or fewer (from `address`) if corruption made it shrink the block.
    fn read_block_with_retries(
        &mut self,
        address: u32,
        mut len: u32,
        done_before: usize,
        total: usize,
    ) -> Result<Vec<u8>> {
        let mut attempt = 1;
        let mut attempts_in_all = 1;
        let mut timeouts_in_a_row = 0;
        loop {
            let reason = match self.read_block(address, len, Some((done_before, total)))? {
                Ok(block) => return Ok(block),
                Err(reason) => reason,
            };
            self.recover_from_failed_read(len)?;
            let corrupt = reason.is_line_corruption();
            if corrupt {
                len = (len / 2).max(STUB_READ_PACKET_SIZE).min(len);
            }
            timeouts_in_a_row = match reason {
                RetryReason::Timeout => timeouts_in_a_row + 1,
                _ => 0,
            };
            // Corruption says the rate is too high; one lost reply does not, and is retried at the
            // same rate. A second in a row does: an adapter that drops host→chip bytes loses the
            // acknowledgements, and the stub then waits without a garbled byte on the line.
            let too_fast = corrupt || timeouts_in_a_row >= 2;
            if too_fast && self.step_baud_down()? {
                // A new rate starts a new count.
                attempt = 0;
                timeouts_in_a_row = 0;
            } else if attempt >= READ_ATTEMPTS {
                return Err(Error::ReadFailed {
                    address,
                    bytes_read: done_before,
                    attempts: attempts_in_all,
                    reason,
                });
            }
            attempt += 1;
            attempts_in_all += 1;
            self.report(Event::Retrying {
                address,
                attempt: attempts_in_all,
                reason,
            });
        }
    }

    /// One READ_FLASH of a block, reporting progress as `(bytes done before it, total)` if
    /// given. The outer error stops the read; the inner one is worth a retry.
    pub(crate) fn read_block(
        &mut self,
        address: u32,
        len: u32,
        progress: Option<(usize, usize)>,
    ) -> Result<std::result::Result<Vec<u8>, RetryReason>> {
        let command = Command::ReadFlash {
            address,
            size: len,
            packet_size: STUB_READ_PACKET_SIZE,
            max_in_flight: READ_WINDOW,
        };
        // A block that times out after garbled input was corrupted, not merely unanswered.
        let line_errors = self.connection.line_errors();
        let timed_out = |flasher: &Self| match flasher.connection.line_errors() > line_errors {
            true => RetryReason::Garbled,
            false => RetryReason::Timeout,
        };
        match self.connection.command(&command, DEFAULT_TIMEOUT) {
            Ok(_) => {}
            Err(Error::Timeout { .. }) => return Ok(Err(timed_out(self))),
            Err(other) => return Err(other),
        }
        let mut block = Vec::with_capacity(len as usize);
        while block.len() < len as usize {
            let Some(frame) = self.connection.read_frame(DEFAULT_TIMEOUT)? else {
                return Ok(Err(timed_out(self)));
            };
            let expected = (len as usize - block.len()).min(STUB_READ_PACKET_SIZE as usize);
            if frame.len() != expected {
                return Ok(Err(RetryReason::ShortFrame {
                    expected,
                    got: frame.len(),
                }));
            }
            block.extend_from_slice(&frame);
            self.connection
                .send_frame(&encode_read_ack(block.len() as u32))?;
            if let Some((done_before, total)) = progress {
                self.report(Event::Progress {
                    operation: Operation::Read,
                    done: done_before + block.len(),
                    total,
                });
            }
        }
        let Some(digest) = self.connection.read_frame(DEFAULT_TIMEOUT)? else {
            return Ok(Err(timed_out(self)));
        };
        if digest.len() != 16 {
            return Ok(Err(RetryReason::ShortFrame {
                expected: 16,
                got: digest.len(),
            }));
        }
        if digest != md5_of(&block) {
            return Ok(Err(RetryReason::DigestMismatch));
        }
        Ok(Ok(block))
    }

    /// Lets a stub that waits for acknowledgements finish the block, drops what
    /// is still on the line, and syncs again so the next command starts clean.
    pub(crate) fn recover_from_failed_read(&mut self, block_len: u32) -> Result<()> {
        self.connection.send_frame(&encode_read_ack(block_len))?;
        self.resync_after_failure()
    }

    /// Drops what is still on the line and syncs again, so the next command starts clean.
    pub(crate) fn resync_after_failure(&mut self) -> Result<()> {
        self.connection.drain(Duration::from_secs(3))?;
        for _ in 0..RESYNC_TRIES {
            match self.connection.sync() {
                Ok(_) => return Ok(()),
                Err(Error::Timeout { .. }) => continue,
                Err(other) => return Err(other),
            }
        }
        // Leave it to the next attempt to fail and be counted.
        Ok(())
    }
}
