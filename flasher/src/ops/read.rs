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
//!
//! With flashlab's stub two things make a read move fewer bytes than it returns, and both
//! are checked: a read of [`SPARSE_READ_MIN`] or more first asks for the MD5 of every
//! sector (SPI_FLASH_MD5_PIECES) and does not transfer those whose digest is that of erased
//! flash; every sector then has to match the chip's digest, and the whole range the chip's
//! MD5 of it ([`Error::ReadDisagrees`] names the first that does not). And blocks come with
//! READ_FLASH_DEFLATE: the chip sends each 4 KiB deflated when that is shorter, with its MD5,
//! which the inflated bytes must match; a block that fails is read again, and its last
//! attempt at a rate is a plain READ_FLASH. A stub without these commands (esptool's) gets
//! plain reads. Deflating saves a third of the bytes of firmware and costs the chip about
//! 710,000 cycles per 4 KiB block, all of the stub's work counted (8.9 ms at 80 MHz; the
//! session test `compressed_reads_cost_the_chip_less_than_a_plain_block_takes_on_the_line_up_to_the_limit`
//! measures it on the executed stub). The stub sends from a ring its TX interrupt drains, so it
//! deflates the next block while this one is on the line: a compressed read goes as fast as
//! the line as long as a block's deflating takes less time than a plain block's 40,960 bits,
//! up to about 4.6 Mbaud by that count (the ROM's MD5 and flash reads, not counted there, take
//! a real chip more). Reads are compressed up to [`DEFLATE_READ_MAX_BAUD`], the top of
//! `--baud auto`'s ladder, and plain above; after a compressed block that saved less than 5%
//! (incompressible data) the next [`PLAIN_BLOCKS_AFTER_NO_GAIN`] blocks are plain too.

use std::path::Path;
use std::time::Duration;

use esp_protocol::packet::{
    encode_read_ack, Command, DEFLATE_READ_DEFLATED, DEFLATE_READ_HEADER_LEN, DEFLATE_READ_RAW,
    MAX_DEFLATE_READ_BLOCK, STUB_READ_PACKET_SIZE,
};
use esp_protocol::rom_erase::SECTOR_SIZE; // the unit of a sparse read
use esp_protocol::status::ErrorCode;

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
/// The fastest rate at which blocks are read compressed: the top of `--baud auto`'s ladder,
/// below the some 4.6 Mbaud up to which the chip deflates a block faster than a plain one
/// crosses the line (see the module's notes).
pub const DEFLATE_READ_MAX_BAUD: u32 = 3_000_000;
/// Blocks read plain after a compressed one that saved less than 5%.
pub const PLAIN_BLOCKS_AFTER_NO_GAIN: u32 = 8;
/// Reads of at least this many bytes skip erased sectors (when the stub can tell them).
pub const SPARSE_READ_MIN: u32 = 0x10000;
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
        let data = match self.read_sparse(address, size)? {
            Some(data) => data,
            None => {
                let mut data = Vec::with_capacity(total);
                self.read_range(address, size, 0, total, &mut data)?;
                data
            }
        };
        self.report(Event::Finished {
            operation: Operation::Read,
        });
        Ok(data)
    }

    /// Appends `size` bytes at `address` to `data`, block by block; `done_before` and `total`
    /// place them in the whole read for progress and errors.
    fn read_range(
        &mut self,
        address: u32,
        size: u32,
        done_before: usize,
        total: usize,
        data: &mut Vec<u8>,
    ) -> Result<()> {
        let mut read = 0;
        let mut block_size = READ_BLOCK_SIZE;
        while read < size {
            let block_address = address + read;
            let block_len = (size - read).min(block_size);
            let done = done_before + read as usize;
            let block = self
                .read_block_with_retries(block_address, block_len, done, total)
                .map_err(|error| error.stopped_reading_at(block_address, done))?;
            // A block that had to shrink to get through sets the length of the next; a clean one grows it.
            block_size = if (block.len() as u32) < block_len {
                block.len() as u32
            } else {
                block_size.saturating_mul(2).min(READ_BLOCK_SIZE)
            };
            data.extend_from_slice(&block);
            read += block.len() as u32;
        }
        Ok(())
    }

    /// Reads the sectors that are not erased and fills the others with 0xFF, then checks every
    /// sector and the whole range against the chip's digests. `None` when the read is short or
    /// the stub cannot give the sectors' digests.
    fn read_sparse(&mut self, address: u32, size: u32) -> Result<Option<Vec<u8>>> {
        if size < SPARSE_READ_MIN {
            return Ok(None);
        }
        let digests = match self.flash_md5_pieces(address, size, SECTOR_SIZE) {
            Ok(Some(digests)) => digests,
            Ok(None) => return Ok(None),
            Err(error @ Error::Io(_)) => return Err(error),
            // A reply the line lost or garbled: the whole range is read instead.
            Err(_) => {
                self.resync_after_failure()?;
                return Ok(None);
            }
        };
        let total = size as usize;
        let sector =
            |i: usize| i * SECTOR_SIZE as usize..((i + 1) * SECTOR_SIZE as usize).min(total);
        let erased_sector = md5_of(&[0xFF; SECTOR_SIZE as usize]);
        let erased: Vec<bool> = (0..digests.len())
            .map(|i| {
                let range = sector(i);
                digests[i]
                    == if range.len() == SECTOR_SIZE as usize {
                        erased_sector
                    } else {
                        md5_of(&vec![0xFF; range.len()])
                    }
            })
            .collect();
        let mut data = vec![0xFF; total];
        let mut i = 0;
        while i < erased.len() {
            let start = i;
            let skip = erased[i];
            while i < erased.len() && erased[i] == skip {
                i += 1;
            }
            let run = sector(start).start..sector(i - 1).end;
            if !skip {
                let mut bytes = Vec::with_capacity(run.len());
                let run_address = address + run.start as u32;
                self.read_range(run_address, run.len() as u32, run.start, total, &mut bytes)?;
                data[run.clone()].copy_from_slice(&bytes);
            }
            self.report(Event::Progress {
                operation: Operation::Read,
                done: run.end,
                total,
            });
        }
        for (i, digest) in digests.iter().enumerate() {
            let range = sector(i);
            if md5_of(&data[range.clone()]) != *digest {
                let sector_address = address + range.start as u32;
                self.settle_disagreement(sector_address, &mut data[range], total)?;
            }
        }
        // A digest is not checksummed on the line: one that disagrees is asked for again.
        let whole = md5_of(&data);
        if self.chip_md5(address, size)? != whole && self.chip_md5(address, size)? != whole {
            return Err(Error::ReadDisagrees {
                address,
                size: total,
            });
        }
        Ok(Some(data))
    }

    /// The chip's MD5 of a range, asked for again after a reply the line lost or garbled.
    fn chip_md5(&mut self, address: u32, size: u32) -> Result<[u8; 16]> {
        let mut tries = 1;
        loop {
            match self.flash_md5(address, size) {
                Err(error @ Error::Io(_)) => return Err(error),
                Err(_) if tries < READ_ATTEMPTS => self.resync_after_failure()?,
                result => return result,
            }
            tries += 1;
        }
    }

    /// A sector whose bytes disagree with its digest in the SPI_FLASH_MD5_PIECES reply: the
    /// line may have changed that digest (replies carry no checksum), so the chip is asked for
    /// the sector's MD5 again, and the sector is read again if that disagrees too.
    fn settle_disagreement(&mut self, address: u32, bytes: &mut [u8], total: usize) -> Result<()> {
        let digest = self.chip_md5(address, bytes.len() as u32)?;
        if md5_of(bytes) == digest {
            return Ok(());
        }
        let mut again = Vec::with_capacity(bytes.len());
        self.read_range(address, bytes.len() as u32, 0, total, &mut again)?;
        if md5_of(&again) != digest {
            return Err(Error::ReadDisagrees {
                address,
                size: bytes.len(),
            });
        }
        bytes.copy_from_slice(&again);
        Ok(())
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
        let compressed = self.compressed_read_pays();
        loop {
            // The last attempt at a rate is a plain read: whatever goes wrong with compressed
            // blocks, plain ones are what esptool's stubs send.
            let progress = Some((done_before, total));
            let result =
                if compressed && attempt < READ_ATTEMPTS && self.deflate_reads != Some(false) {
                    self.read_block_deflated(address, len, progress)?
                } else {
                    self.read_block(address, len, progress)?
                };
            let reason = match result {
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
                operation: Operation::Read,
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
        let line_errors = self.connection.line_errors();
        match self.connection.command(&command, DEFAULT_TIMEOUT) {
            Ok(_) => {}
            Err(Error::Timeout { .. }) => return Ok(Err(self.silence_reason(line_errors))),
            Err(other) => return Err(other),
        }
        let mut block = Vec::with_capacity(len as usize);
        while block.len() < len as usize {
            let Some(frame) = self.connection.read_frame(DEFAULT_TIMEOUT)? else {
                return Ok(Err(self.silence_reason(line_errors)));
            };
            let expected = (len as usize - block.len()).min(STUB_READ_PACKET_SIZE as usize);
            if frame.len() != expected {
                return Ok(Err(RetryReason::ShortFrame {
                    expected,
                    got: frame.len(),
                }));
            }
            block.extend_from_slice(&frame);
            self.acknowledge_read(block.len(), progress)?;
        }
        if let Err(reason) = self.read_block_digest(&block, line_errors)? {
            return Ok(Err(reason));
        }
        Ok(Ok(block))
    }

    /// Why a read block got no frame: after garbled input (more line errors than the
    /// `line_errors_before` counted when it began) it was corrupted, not merely unanswered.
    fn silence_reason(&self, line_errors_before: u64) -> RetryReason {
        match self.connection.line_errors() > line_errors_before {
            true => RetryReason::Garbled,
            false => RetryReason::Timeout,
        }
    }

    /// Acknowledges the `received` bytes of the block being read, as the stubs' flow control
    /// wants, and reports the progress.
    fn acknowledge_read(
        &mut self,
        received: usize,
        progress: Option<(usize, usize)>,
    ) -> Result<()> {
        self.connection
            .send_frame(&encode_read_ack(received as u32))?;
        if let Some((done_before, total)) = progress {
            self.report(Event::Progress {
                operation: Operation::Read,
                done: done_before + received,
                total,
            });
        }
        Ok(())
    }

    /// Reads the MD5 the stub sends after a block's data and checks `block` against it.
    fn read_block_digest(
        &mut self,
        block: &[u8],
        line_errors_before: u64,
    ) -> Result<std::result::Result<(), RetryReason>> {
        let Some(digest) = self.connection.read_frame(DEFAULT_TIMEOUT)? else {
            return Ok(Err(self.silence_reason(line_errors_before)));
        };
        if digest.len() != 16 {
            return Ok(Err(RetryReason::ShortFrame {
                expected: 16,
                got: digest.len(),
            }));
        }
        if digest != md5_of(block) {
            return Ok(Err(RetryReason::DigestMismatch));
        }
        Ok(Ok(()))
    }

    /// Whether the next block is read with READ_FLASH_DEFLATE (counting down the plain blocks
    /// after one that saved little).
    fn compressed_read_pays(&mut self) -> bool {
        if self.deflate_reads == Some(false)
            || self.connection.transport().baud() > DEFLATE_READ_MAX_BAUD
        {
            return false;
        }
        if self.plain_blocks_ahead > 0 {
            self.plain_blocks_ahead -= 1;
            return false;
        }
        true
    }

    /// One READ_FLASH_DEFLATE of a block, as [`Flasher::read_block`]; a stub without the
    /// command (it answers "not implemented") gets a plain READ_FLASH, now and from then on.
    fn read_block_deflated(
        &mut self,
        address: u32,
        len: u32,
        progress: Option<(usize, usize)>,
    ) -> Result<std::result::Result<Vec<u8>, RetryReason>> {
        let command = Command::ReadFlashDeflate {
            address,
            size: len,
            block_size: MAX_DEFLATE_READ_BLOCK,
            max_in_flight: READ_WINDOW,
        };
        let line_errors = self.connection.line_errors();
        match self.connection.command(&command, DEFAULT_TIMEOUT) {
            Ok(_) => self.deflate_reads = Some(true),
            Err(Error::Device {
                code: ErrorCode::CommandNotImplemented | ErrorCode::InvalidCommand,
                ..
            }) => {
                self.deflate_reads = Some(false);
                return self.read_block(address, len, progress);
            }
            Err(Error::Timeout { .. }) => return Ok(Err(self.silence_reason(line_errors))),
            Err(other) => return Err(other),
        }
        let mut block = Vec::with_capacity(len as usize);
        let mut carried = 0;
        while block.len() < len as usize {
            let Some(frame) = self.connection.read_frame(DEFAULT_TIMEOUT)? else {
                return Ok(Err(self.silence_reason(line_errors)));
            };
            carried += frame.len().saturating_sub(DEFLATE_READ_HEADER_LEN);
            let expected = (len as usize - block.len()).min(MAX_DEFLATE_READ_BLOCK as usize);
            match unpack_deflate_read_block(&frame, expected) {
                Ok(bytes) => block.extend_from_slice(&bytes),
                Err(reason) => return Ok(Err(reason)),
            }
            self.acknowledge_read(block.len(), progress)?;
        }
        if let Err(reason) = self.read_block_digest(&block, line_errors)? {
            return Ok(Err(reason));
        }
        if carried * 20 > block.len() * 19 {
            self.plain_blocks_ahead = PLAIN_BLOCKS_AFTER_NO_GAIN;
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

/// The `expected` bytes one READ_FLASH_DEFLATE block frame carries, raw or inflated, checked
/// against the MD5 in its header. Inflating stops at one byte more than expected, so a
/// corrupted stream cannot make much of itself.
fn unpack_deflate_read_block(
    frame: &[u8],
    expected: usize,
) -> std::result::Result<Vec<u8>, RetryReason> {
    if frame.len() < DEFLATE_READ_HEADER_LEN {
        return Err(RetryReason::ShortFrame {
            expected: DEFLATE_READ_HEADER_LEN,
            got: frame.len(),
        });
    }
    let (header, payload) = frame.split_at(DEFLATE_READ_HEADER_LEN);
    let bytes = match header[0] {
        DEFLATE_READ_RAW => payload.to_vec(),
        DEFLATE_READ_DEFLATED => {
            let mut inflater = flate2::Decompress::new(false);
            let mut bytes = Vec::with_capacity(expected + 1);
            let status =
                inflater.decompress_vec(payload, &mut bytes, flate2::FlushDecompress::Finish);
            match status {
                Ok(flate2::Status::StreamEnd) if inflater.total_in() == payload.len() as u64 => {}
                // A stream cut short inflates to fewer bytes, as a short raw frame has.
                Ok(flate2::Status::Ok | flate2::Status::BufError) if bytes.len() < expected => {
                    return Err(RetryReason::ShortFrame {
                        expected,
                        got: bytes.len(),
                    });
                }
                _ => return Err(RetryReason::DigestMismatch),
            }
            bytes
        }
        _ => return Err(RetryReason::Garbled),
    };
    if bytes.len() != expected {
        return Err(RetryReason::ShortFrame {
            expected,
            got: bytes.len(),
        });
    }
    if md5_of(&bytes) != header[1..] {
        return Err(RetryReason::DigestMismatch);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflated(data: &[u8]) -> Vec<u8> {
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn frame(kind: u8, digest_of: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![kind];
        frame.extend_from_slice(&md5_of(digest_of));
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn raw_and_deflated_blocks_unpack_to_their_bytes() {
        let block: Vec<u8> = (0..4096u32).map(|i| (i * 7 / 13) as u8).collect();
        let raw = frame(DEFLATE_READ_RAW, &block, &block);
        assert_eq!(unpack_deflate_read_block(&raw, 4096).unwrap(), block);
        let packed = frame(DEFLATE_READ_DEFLATED, &block, &deflated(&block));
        assert_eq!(unpack_deflate_read_block(&packed, 4096).unwrap(), block);
    }

    #[test]
    fn a_cut_stream_is_a_short_frame_and_a_changed_one_a_digest_mismatch() {
        let block: Vec<u8> = (0..4096u32)
            .map(|i| (i % 251) as u8 ^ (i >> 9) as u8)
            .collect();
        let stream = deflated(&block);
        let cut = frame(DEFLATE_READ_DEFLATED, &block, &stream[..stream.len() / 2]);
        assert!(matches!(
            unpack_deflate_read_block(&cut, 4096),
            Err(RetryReason::ShortFrame { expected: 4096, .. })
        ));
        for at in [0, stream.len() / 3, stream.len() - 1] {
            let mut changed = stream.clone();
            changed[at] ^= 0x10;
            let result =
                unpack_deflate_read_block(&frame(DEFLATE_READ_DEFLATED, &block, &changed), 4096);
            assert!(result.is_err(), "a flipped bit at {at} went through");
        }
    }

    /// A stream that would inflate to far more than the block stops one byte past it.
    #[test]
    fn a_stream_longer_than_its_block_is_refused() {
        let big = vec![0u8; 1 << 20];
        let packed = frame(DEFLATE_READ_DEFLATED, &big[..4096], &deflated(&big));
        assert_eq!(
            unpack_deflate_read_block(&packed, 4096),
            Err(RetryReason::DigestMismatch)
        );
    }

    #[test]
    fn a_header_cut_short_or_an_unknown_kind_is_refused() {
        assert!(matches!(
            unpack_deflate_read_block(&[DEFLATE_READ_RAW; 10], 0),
            Err(RetryReason::ShortFrame {
                expected: 17,
                got: 10
            })
        ));
        assert_eq!(
            unpack_deflate_read_block(&frame(7, b"", b""), 0),
            Err(RetryReason::Garbled)
        );
    }
}
