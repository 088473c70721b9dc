//! What a running flasher stub does, modelled (the uploaded code is not executed).
//!
//! esptool talks to both stubs the same way; the stubs differ in what they put on
//! the wire. Modelled differences, from the legacy stub's `stub_flasher.c`,
//! `stub_commands.c`, `stub_write_flash.c` (v1) and esp-flasher-stub's
//! `command_handler.c` (v2):
//!
//! | | v1 ([`StubFlavor::Legacy`]) | v2 ([`StubFlavor::EspFlasherStub`]) |
//! |---|---|---|
//! | unknown opcode | `FF 00` not implemented | `C3 00` invalid command |
//! | GET_SECURITY_INFO | `FF 00` | `FF 00` |
//! | ERASE_REGION misaligned | `32 00` / `33 00` (address / size) | `C0 00` |
//! | FLASH_END before all data | `C8 00` not enough data | `C0 00` bad data length |
//! | FLASH_END with flag 0 | reboots after the reply | stays (reboot is a TODO there) |
//! | RUN_USER_CODE | no reply, runs the firmware | no reply, stays |
//! | SPI_FLASH_MD5 outside the flash | `63 00` | `C4 00` |
//! | WRITE_REG length not a multiple of 16 | `C0 00` | `C8 00` |
//! | DATA block length field wrong | `C0 00` | `C9 00` |
//! | MEM_END before all data / without MEM_BEGIN | `C8 00` / OK | OK / `C6 00` |
//! | FLASH_BEGIN block size above 0x4000 | `C2 00` | accepted |
//!
//! Shared behaviour: SYNC gets 8 replies with value 0; FLASH_BEGIN and
//! FLASH_DEFL_BEGIN take 16 or 20 bytes and erase nothing yet; DATA blocks are
//! acknowledged after checking length and checksum, then written (erasing the
//! sectors they reach first, 64 KiB blocks where aligned), and an error found
//! while writing is reported on the next DATA or END; CHANGE_BAUDRATE switches
//! after its reply; READ_FLASH streams frames of the requested size, at most
//! `max_in_flight` frames ahead of the host's cumulative acknowledgements
//! (esptool acknowledges each frame, so either stub's own window of one frame
//! looks the same to it), then the raw 16-byte MD5.
//!
//! Deviations, to keep bad input from hanging the model: READ_FLASH with a
//! packet size of 0 or above 0x1000, or outside the flash, is refused with
//! `C0 00` / `C4 00` instead of stalling; an acknowledgement that is not 4 bytes
//! ends the stream with the digest of what was sent, as v1 does; at most 64 frames
//! (esptool's window) go ahead of the acknowledgements, whatever the request asks, so
//! a client that never reads cannot make the model queue the whole flash.

use std::collections::VecDeque;

use esp_protocol::packet::{
    checksum, decode_read_ack, stub_scaled_divider, BeginParams, Command, DataBlock, DecodeError,
    Opcode, RequestFrame, ROM_BAUD, STUB_FLASH_BLOCK_SIZE, STUB_READ_PACKET_SIZE,
};
use esp_protocol::rom_erase::SECTOR_SIZE;
use esp_protocol::status::{ErrorCode, Status};
use flate2::{Decompress, FlushDecompress};
use md5::{Digest, Md5};

use super::execution::nominal_baud;
use super::{Device, StubFlavor, SUCCESS};
use crate::boot::ResetCause;
use crate::flash::BLOCK_64K_SIZE;

/// The stubs inflate into a 32 KiB window.
const INFLATE_BUFFER_LEN: usize = 32 * 1024;
/// After the last byte, a compressed stream may still carry its 4-byte Adler-32.
const ADLER32_LEN: usize = 4;

/// A flash write in progress (FLASH_BEGIN or FLASH_DEFL_BEGIN until END).
#[derive(Debug)]
struct FlashWrite {
    next_address: u32,
    /// Uncompressed bytes still to write.
    remaining: u32,
    /// Sectors `erase_from..erase_end` (byte addresses) are still to be erased.
    erase_from: u64,
    erase_end: u64,
    /// The zlib stream of a compressed write.
    inflater: Option<Box<Decompress>>,
    /// An error found while writing, reported on the next DATA or END.
    deferred_error: Option<ErrorCode>,
}

/// A READ_FLASH stream in progress.
#[derive(Debug)]
struct ReadStream {
    next_address: u32,
    end: u32,
    packet_size: u32,
    max_in_flight: usize,
    /// Cumulative bytes on the wire at the end of each frame not yet acknowledged.
    unacked_frame_ends: VecDeque<u64>,
    wire_bytes_sent: u64,
    hasher: Md5,
}

/// State of the stub between commands.
#[derive(Debug)]
pub(super) struct Stub {
    flavor: StubFlavor,
    write: Option<FlashWrite>,
    read: Option<ReadStream>,
    frame_buffer: Vec<u8>,
}

impl Stub {
    /// A freshly started stub.
    pub(super) fn new(flavor: StubFlavor) -> Stub {
        Stub {
            flavor,
            write: None,
            read: None,
            frame_buffer: Vec::new(),
        }
    }

    /// True while READ_FLASH streams: incoming frames are acknowledgements, not commands.
    pub(super) fn reading(&self) -> bool {
        self.read.is_some()
    }
}

/// A stub failure, in the stub's layout whatever the code (the legacy stub's 0x32, 0x33 and
/// 0x63 too).
fn failure(code: ErrorCode) -> Status {
    Status::stub_failure(code)
}

fn status_of(outcome: Result<(), ErrorCode>) -> Status {
    outcome.map_or_else(failure, |()| SUCCESS)
}

impl Device {
    /// Acts on one request while a stub runs.
    pub(super) fn stub_command(&mut self, request: &RequestFrame<'_>) {
        let opcode = request.opcode;
        let flavor = self.stub.flavor;
        // flashlab's own commands are as unknown to esptool's stubs as any other.
        let known = Opcode::from_byte(opcode).filter(|op| !Opcode::FLASHLAB_ONLY.contains(op));
        let Some(known) = known else {
            self.reply(opcode, 0, &[], failure(unknown_opcode(flavor, opcode)));
            return;
        };
        let command = match Command::from_frame(request) {
            Ok(command) => command,
            // The stubs check SYNC's length only.
            Err(DecodeError::BadSyncPayload) => Command::Sync,
            Err(error) => {
                self.reply(
                    opcode,
                    0,
                    &[],
                    failure(decode_failure(flavor, known, &error)),
                );
                return;
            }
        };
        let outcome = match command {
            Command::Sync => {
                self.answer_sync(opcode, 0);
                return;
            }
            Command::ReadReg { address } => {
                self.answer_read_reg(opcode, address);
                return;
            }
            Command::WriteReg(writes) => {
                self.write_registers(&writes);
                Ok(())
            }
            Command::SpiSetParams(_) => Ok(()),
            Command::SpiAttach { .. } => {
                self.machine.set_flash_attached(true);
                Ok(())
            }
            Command::ChangeBaudrate { new_baud, old_baud } => {
                self.reply(opcode, 0, &[], SUCCESS);
                if new_baud != 0 {
                    let old_baud = match flavor {
                        StubFlavor::Legacy => old_baud,
                        StubFlavor::EspFlasherStub => ROM_BAUD,
                    };
                    let divider =
                        stub_scaled_divider(self.machine.uart_divider(), old_baud, new_baud);
                    self.machine.set_uart_divider(divider);
                    self.switch_baud_after_output(nominal_baud(self.machine.uart_baud()));
                }
                return;
            }
            Command::FlashBegin(params) => self.stub_flash_begin(params, false),
            Command::FlashDeflBegin(params) => self.stub_flash_begin(params, true),
            Command::FlashData(block) => {
                self.stub_flash_data(opcode, request.checksum, &block, false);
                return;
            }
            Command::FlashDeflData(block) => {
                self.stub_flash_data(opcode, request.checksum, &block, true);
                return;
            }
            Command::FlashEnd { reboot } | Command::FlashDeflEnd { reboot } => {
                self.stub_flash_end(opcode, reboot);
                return;
            }
            Command::SpiFlashMd5 { address, size } => {
                match self.flash_md5(address, size) {
                    Ok(digest) => self.reply(opcode, 0, &digest, SUCCESS),
                    Err(code) => self.reply(opcode, 0, &[], failure(code)),
                }
                return;
            }
            Command::EraseFlash => {
                let report = self.machine.flash_mut().erase_chip();
                self.spend(report.typical_duration);
                Ok(())
            }
            Command::EraseRegion { address, size } => self.erase_region(address, size),
            Command::ReadFlash {
                address,
                size,
                packet_size,
                max_in_flight,
            } => {
                self.start_read_flash(opcode, address, size, packet_size, max_in_flight);
                return;
            }
            Command::SpiFlashMd5Pieces { .. }
            | Command::ReadFlashDeflate { .. }
            | Command::FlashRealSize { .. } => Err(unknown_opcode(flavor, opcode)),
            Command::RunUserCode => {
                if flavor == StubFlavor::Legacy {
                    self.trace_line(|| {
                        "chip: stub returned to the ROM, which runs the user code".to_string()
                    });
                    let now = self.busy_until;
                    self.boot_from_flash(now, ResetCause::ExternalPin);
                }
                return;
            }
            Command::MemBegin(params) => self.mem_begin(params),
            Command::MemData(block) => self.mem_data(request.checksum, &block),
            Command::MemEnd { .. } => match (flavor, self.mem_upload.take()) {
                (StubFlavor::Legacy, Some(upload)) if upload.remaining > 0 => {
                    Err(ErrorCode::NotEnoughData)
                }
                (StubFlavor::EspFlasherStub, None) => Err(ErrorCode::NotInFlashMode),
                // Jumping to uploaded code is where the model stops: the stub keeps answering.
                _ => Ok(()),
            },
        };
        self.reply(opcode, 0, &[], status_of(outcome));
    }

    /// Takes one frame from the host while READ_FLASH streams.
    pub(super) fn read_flash_ack(&mut self, frame: &[u8]) {
        let Some(read) = self.stub.read.as_mut() else {
            return;
        };
        let Some(acked) = decode_read_ack(frame) else {
            self.trace_line(|| {
                format!(
                    "host → chip: {}-byte frame is no READ_FLASH ack, stream ends",
                    frame.len()
                )
            });
            self.finish_read_flash();
            return;
        };
        let acked = u64::from(acked);
        if acked > read.wire_bytes_sent {
            // The legacy stub's loop ends when the host claims more than was sent.
            self.finish_read_flash();
            return;
        }
        while read
            .unacked_frame_ends
            .front()
            .is_some_and(|&end| end <= acked)
        {
            read.unacked_frame_ends.pop_front();
        }
        self.trace_line(|| format!("host → chip: READ_FLASH ack {acked}"));
        self.fill_read_window();
    }

    fn stub_flash_begin(&mut self, params: BeginParams, compressed: bool) -> Result<(), ErrorCode> {
        if self.stub.flavor == StubFlavor::Legacy && params.block_size > STUB_FLASH_BLOCK_SIZE {
            return Err(ErrorCode::BadBlockSize);
        }
        let start = u64::from(params.offset);
        let end = start + u64::from(params.size);
        if end > self.machine.flash().size() as u64 {
            return Err(ErrorCode::FailedSpiOp);
        }
        let sector = u64::from(SECTOR_SIZE);
        self.stub.write = Some(FlashWrite {
            next_address: params.offset,
            remaining: params.size,
            erase_from: start / sector * sector,
            erase_end: end.div_ceil(sector) * sector,
            inflater: compressed.then(|| Box::new(Decompress::new(true))),
            deferred_error: None,
        });
        Ok(())
    }

    /// FLASH_DATA / FLASH_DEFL_DATA: reply first, then write (the stubs double-buffer).
    fn stub_flash_data(
        &mut self,
        opcode: u8,
        checksum_field: u32,
        block: &DataBlock,
        compressed: bool,
    ) {
        let checked = match self.stub.write.as_mut() {
            None => Err(ErrorCode::NotInFlashMode),
            Some(_) if checksum_field != u32::from(checksum(&block.data)) => {
                Err(ErrorCode::BadDataChecksum)
            }
            Some(write) if compressed && write.inflater.is_none() => Err(ErrorCode::NotInFlashMode),
            Some(write) => write.deferred_error.take().map_or(Ok(()), Err),
        };
        self.reply(opcode, 0, &[], status_of(checked));
        if checked.is_err() {
            return;
        }
        let written = if compressed {
            self.inflate_and_write(&block.data)
        } else {
            self.write_flash(&block.data)
        };
        if let (Err(code), Some(write)) = (written, self.stub.write.as_mut()) {
            write.deferred_error = Some(code);
        }
    }

    fn stub_flash_end(&mut self, opcode: u8, reboot: bool) {
        let flavor = self.stub.flavor;
        let outcome = match self.stub.write.as_mut() {
            None => Err(ErrorCode::NotInFlashMode),
            Some(write) if write.remaining > 0 => Err(match flavor {
                StubFlavor::Legacy => ErrorCode::NotEnoughData,
                StubFlavor::EspFlasherStub => ErrorCode::BadDataLength,
            }),
            Some(write) => {
                let deferred = write.deferred_error.take();
                self.stub.write = None;
                deferred.map_or(Ok(()), Err)
            }
        };
        self.reply(opcode, 0, &[], status_of(outcome));
        if outcome.is_ok() && reboot && flavor == StubFlavor::Legacy {
            let now = self.busy_until;
            self.restart(now, ResetCause::ExternalPin);
        }
    }

    /// Writes decompressed or plain data at the write position, erasing what it reaches first.
    fn write_flash(&mut self, data: &[u8]) -> Result<(), ErrorCode> {
        let Some(write) = self.stub.write.as_mut() else {
            return Err(ErrorCode::NotInFlashMode);
        };
        // The last block is padded: only the announced size is written.
        let data = &data[..data.len().min(write.remaining as usize)];
        if data.is_empty() {
            return Ok(());
        }
        let sector = u64::from(SECTOR_SIZE);
        let write_end = u64::from(write.next_address) + data.len() as u64;
        let erase_to = (write_end.div_ceil(sector) * sector).min(write.erase_end);
        let mut busy = std::time::Duration::ZERO;
        while write.erase_from < erase_to {
            let block = BLOCK_64K_SIZE as u64;
            let unit =
                if write.erase_from % block == 0 && write.erase_end - write.erase_from >= block {
                    block
                } else {
                    sector
                };
            let report = self
                .machine
                .flash_mut()
                .erase_range(write.erase_from as u32, unit as usize)
                .map_err(|_| ErrorCode::FailedSpiOp)?;
            busy += report.typical_duration;
            write.erase_from += unit;
        }
        let report = self
            .machine
            .flash_mut()
            .program(write.next_address, data)
            .map_err(|_| ErrorCode::FailedSpiOp)?;
        busy += report.typical_duration;
        write.next_address += data.len() as u32;
        write.remaining -= data.len() as u32;
        self.spend(busy);
        Ok(())
    }

    /// Feeds one block of the zlib stream to the inflater and writes what comes out.
    fn inflate_and_write(&mut self, mut input: &[u8]) -> Result<(), ErrorCode> {
        let Some(write) = self.stub.write.as_mut() else {
            return Err(ErrorCode::NotInFlashMode);
        };
        if write.remaining == 0 && input.len() > ADLER32_LEN {
            return Err(ErrorCode::TooMuchData);
        }
        let Some(mut inflater) = write.inflater.take() else {
            return Err(ErrorCode::NotInFlashMode);
        };
        let mut output = vec![0; INFLATE_BUFFER_LEN];
        let outcome = loop {
            let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
            let status = inflater.decompress(input, &mut output, FlushDecompress::None);
            let consumed = (inflater.total_in() - in_before) as usize;
            let produced = (inflater.total_out() - out_before) as usize;
            input = &input[consumed..];
            let Ok(status) = status else {
                break Err(ErrorCode::InflateError);
            };
            if let Err(code) = self.write_flash(&output[..produced]) {
                break Err(code);
            }
            if status == flate2::Status::StreamEnd {
                let remaining = self.stub.write.as_ref().map_or(0, |write| write.remaining);
                break if remaining > 0 {
                    Err(ErrorCode::NotEnoughData)
                } else {
                    Ok(())
                };
            }
            if consumed == 0 && produced == 0 {
                break Ok(());
            }
        };
        if let Some(write) = self.stub.write.as_mut() {
            write.inflater = Some(inflater);
        }
        outcome
    }

    fn flash_md5(&mut self, address: u32, size: u32) -> Result<Vec<u8>, ErrorCode> {
        // Checked before allocating: the size comes straight from the host.
        if u64::from(address) + u64::from(size) > self.machine.flash().size() as u64 {
            return Err(match self.stub.flavor {
                StubFlavor::Legacy => ErrorCode::Other(0x63),
                StubFlavor::EspFlasherStub => ErrorCode::FailedSpiOp,
            });
        }
        let mut data = vec![0; size as usize];
        self.machine
            .flash()
            .read(address, &mut data)
            .expect("range checked above");
        Ok(self.reported_digest(Md5::digest(&data).into()).to_vec())
    }

    fn erase_region(&mut self, address: u32, size: u32) -> Result<(), ErrorCode> {
        let misaligned = |legacy_code: u8| match self.stub.flavor {
            StubFlavor::Legacy => ErrorCode::Other(legacy_code),
            StubFlavor::EspFlasherStub => ErrorCode::BadDataLength,
        };
        if !address.is_multiple_of(SECTOR_SIZE) {
            return Err(misaligned(0x32));
        }
        if !size.is_multiple_of(SECTOR_SIZE) {
            return Err(misaligned(0x33));
        }
        let report = self
            .machine
            .flash_mut()
            .erase_range(address, size as usize)
            .map_err(|_| ErrorCode::FailedSpiOp)?;
        self.spend(report.typical_duration);
        Ok(())
    }

    fn start_read_flash(
        &mut self,
        opcode: u8,
        address: u32,
        size: u32,
        packet_size: u32,
        max_in_flight: u32,
    ) {
        let in_flash = u64::from(address) + u64::from(size) <= self.machine.flash().size() as u64;
        let refusal = if packet_size == 0 || packet_size > STUB_READ_PACKET_SIZE {
            Some(ErrorCode::BadDataLength)
        } else if !in_flash {
            Some(ErrorCode::FailedSpiOp)
        } else {
            None
        };
        if let Some(code) = refusal {
            self.reply(opcode, 0, &[], failure(code));
            return;
        }
        self.reply(opcode, 0, &[], SUCCESS);
        self.stub.read = Some(ReadStream {
            next_address: address,
            end: address + size,
            packet_size,
            // esptool asks for 64; a larger window would only queue more of the flash at once.
            max_in_flight: max_in_flight.clamp(1, MAX_READ_IN_FLIGHT) as usize,
            unacked_frame_ends: VecDeque::new(),
            wire_bytes_sent: 0,
            hasher: Md5::new(),
        });
        self.fill_read_window();
    }

    /// Sends data frames while the window allows, and the digest once all are acknowledged.
    fn fill_read_window(&mut self) {
        let mut buffer = std::mem::take(&mut self.stub.frame_buffer);
        while let Some(read) = self.stub.read.as_mut() {
            if read.next_address == read.end {
                if read.unacked_frame_ends.is_empty() {
                    self.finish_read_flash();
                }
                break;
            }
            if read.unacked_frame_ends.len() >= read.max_in_flight {
                break;
            }
            let len = read.packet_size.min(read.end - read.next_address) as usize;
            buffer.resize(len, 0);
            self.machine
                .flash()
                .read(read.next_address, &mut buffer)
                .expect("READ_FLASH range checked at its start");
            read.hasher.update(&buffer);
            read.next_address += len as u32;
            self.read_frames_sent += 1;
            let wire_len = match self.config.faults.short_read {
                Some(fault) if fault.frame == self.read_frames_sent => {
                    len.saturating_sub(fault.drop)
                }
                _ => len,
            };
            read.wire_bytes_sent += wire_len as u64;
            read.unacked_frame_ends.push_back(read.wire_bytes_sent);
            self.trace_line(|| format!("chip → host: READ_FLASH data frame of {wire_len} bytes"));
            self.send_frame(&buffer[..wire_len]);
        }
        self.stub.frame_buffer = buffer;
    }

    /// Ends READ_FLASH with the MD5 of the data read.
    fn finish_read_flash(&mut self) {
        let Some(read) = self.stub.read.take() else {
            return;
        };
        let digest = self.reported_digest(read.hasher.finalize().into());
        self.trace_line(|| "chip → host: READ_FLASH digest".to_string());
        self.send_frame(&digest);
    }

    /// The digest as sent: corrupted when the bad-MD5 fault is on.
    fn reported_digest(&self, digest: [u8; 16]) -> [u8; 16] {
        if self.config.faults.bad_md5 {
            digest.map(|byte| !byte)
        } else {
            digest
        }
    }
}

/// Most READ_FLASH frames the model sends ahead of the host's acknowledgements.
const MAX_READ_IN_FLIGHT: u32 = 64;

/// GET_SECURITY_INFO, which no ESP8266 loader implements.
const GET_SECURITY_INFO: u8 = 0x14;

/// What each stub answers to an opcode it does not know.
fn unknown_opcode(flavor: StubFlavor, opcode: u8) -> ErrorCode {
    match (opcode, flavor) {
        (GET_SECURITY_INFO, _) | (_, StubFlavor::Legacy) => ErrorCode::CommandNotImplemented,
        (_, StubFlavor::EspFlasherStub) => ErrorCode::InvalidCommand,
    }
}

/// The status a stub sends for a request whose payload does not parse.
fn decode_failure(flavor: StubFlavor, opcode: Opcode, error: &DecodeError) -> ErrorCode {
    match (flavor, opcode, error) {
        (StubFlavor::EspFlasherStub, Opcode::WriteReg, _) => ErrorCode::NotEnoughData,
        (StubFlavor::EspFlasherStub, _, DecodeError::DataLengthMismatch { .. }) => {
            ErrorCode::TooMuchData
        }
        _ => ErrorCode::BadDataLength,
    }
}
