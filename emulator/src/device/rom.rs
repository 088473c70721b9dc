//! The ESP8266 ROM's serial loader: opcodes 0x02–0x0A only.
//!
//! - SYNC is answered with 8 identical replies whose value is 0x20120707 (the
//!   value a real ROM sends; esptool only needs it non-zero). A malformed SYNC
//!   is ignored, as the ROM uses SYNC to find the baud rate.
//! - Any other opcode (GET_SECURITY_INFO 0x14 first of all, which esptool
//!   sends during chip detection) gets one frame whose opcode byte is 0 and
//!   whose status is `01 05`. esptool's `command()` turns a reply with another
//!   opcode and error 0x05 into `UnsupportedCommandError`, which
//!   `detect_chip` takes for "ESP8266/ESP32 ROM" and falls back to reading the
//!   magic register; its comment in `command()` describes these replies.
//! - FLASH_BEGIN attaches the flash and erases with the ROM's quirk
//!   ([`rom_erased_sectors`]); FLASH_DATA writes each block (padding included)
//!   at `offset + sequence × block_size` after checking checksum and sequence.
//! - FLASH_END leaves the loader: flag 0 reboots, anything else runs the user
//!   code. A MEM_END with an entry point starts the stub.
//!
//! Failures use the ROM's `[1, code]` status.

use esp_protocol::packet::{
    checksum, BeginParams, Command, DataBlock, DecodeError, Opcode, RequestFrame,
};
use esp_protocol::rom_erase::{rom_erased_sectors, SECTOR_SIZE};
use esp_protocol::status::{ErrorCode, Status};

use super::{CodeExecution, Device, MemUpload, Program, SUCCESS};
use crate::boot::ResetCause;

/// The value of the ROM's SYNC replies.
pub(crate) const ROM_SYNC_VALUE: u32 = 0x2012_0707;
/// Opcode byte of the ROM's reply to an opcode it does not know.
pub(crate) const UNSUPPORTED_REPLY_OPCODE: u8 = 0x00;
/// ROM error: the RAM upload's address is not RAM.
const INVALID_RAM_ADDRESS: ErrorCode = ErrorCode::Other(0x0F);

/// A FLASH_BEGIN .. FLASH_DATA sequence in progress.
#[derive(Debug, Clone, Copy)]
struct RomFlashWrite {
    offset: u32,
    block_size: u32,
    next_sequence: u32,
}

/// State of the ROM loader between commands.
#[derive(Debug, Clone, Default)]
pub(crate) struct RomLoader {
    flash_write: Option<RomFlashWrite>,
}

/// A ROM failure.
fn failure(code: ErrorCode) -> Status {
    Status::rom_failure(code)
}

impl Device {
    /// Acts on one request while the ROM loader runs.
    pub(super) fn rom_command(&mut self, request: &RequestFrame<'_>) {
        let opcode = request.opcode;
        if !Opcode::from_byte(opcode).is_some_and(Opcode::is_rom_opcode) {
            self.reply(
                UNSUPPORTED_REPLY_OPCODE,
                0,
                &[],
                failure(ErrorCode::InvalidMessage),
            );
            return;
        }
        let command = match Command::from_frame(request) {
            Ok(command) => command,
            Err(DecodeError::BadSyncPayload) => return,
            Err(DecodeError::BadPayloadLength {
                opcode: Opcode::Sync,
                ..
            }) => return,
            Err(_) => {
                self.reply(opcode, 0, &[], failure(ErrorCode::InvalidMessage));
                return;
            }
        };
        let outcome = match command {
            Command::Sync => {
                self.answer_sync(opcode, ROM_SYNC_VALUE);
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
            Command::MemBegin(params) => self.rom_mem_begin(params),
            Command::MemData(block) => self.mem_data(request.checksum, &block),
            Command::MemEnd { execute, entry } => {
                let upload_complete = self
                    .mem_upload
                    .take()
                    .is_none_or(|upload| upload.remaining == 0);
                if !upload_complete {
                    Err(ErrorCode::FailedToAct)
                } else if execute {
                    self.reply(opcode, 0, &[], SUCCESS);
                    match self.config.execution {
                        CodeExecution::Run => {
                            self.mem_upload = None;
                            let now = self.busy_until;
                            self.start_execution(entry, now, true);
                        }
                        CodeExecution::StubModel => self.start_stub(entry),
                    }
                    return;
                } else {
                    Ok(())
                }
            }
            Command::FlashBegin(params) => self.rom_flash_begin(params),
            Command::FlashData(block) => self.rom_flash_data(request.checksum, &block),
            Command::FlashEnd { reboot } => {
                self.reply(opcode, 0, &[], SUCCESS);
                self.rom.flash_write = None;
                if !reboot {
                    self.trace_line(|| "chip: ROM runs the user code".to_string());
                    let now = self.busy_until;
                    self.boot_from_flash(now, ResetCause::ExternalPin);
                } else {
                    let now = self.busy_until;
                    self.restart(now, ResetCause::ExternalPin);
                }
                return;
            }
            // Every other opcode is no ROM opcode, turned away above.
            _ => Err(ErrorCode::InvalidMessage),
        };
        let status = match outcome {
            Ok(()) => SUCCESS,
            Err(code) => failure(code),
        };
        self.reply(opcode, 0, &[], status);
    }

    /// WRITE_REG: each write in turn, with its delay, on the register model.
    pub(super) fn write_registers(&mut self, writes: &[esp_protocol::packet::RegisterWrite]) {
        for write in writes {
            self.spend(std::time::Duration::from_micros(u64::from(write.delay_us)));
            self.machine
                .write_reg(write.address, write.value, write.mask);
        }
    }

    /// MEM_DATA for the ROM and both stubs: checksum, sequence, then the copy to RAM.
    pub(super) fn mem_data(
        &mut self,
        checksum_field: u32,
        block: &DataBlock,
    ) -> Result<(), ErrorCode> {
        let stub = matches!(self.program, Program::Stub(_));
        let Some(upload) = self.mem_upload.as_mut() else {
            return Err(if stub {
                ErrorCode::NotInFlashMode
            } else {
                ErrorCode::FailedToAct
            });
        };
        if checksum_field != u32::from(checksum(&block.data)) {
            return Err(if stub {
                ErrorCode::BadDataChecksum
            } else {
                ErrorCode::InvalidChecksum
            });
        }
        if block.data.len() > upload.remaining as usize {
            return Err(if stub {
                ErrorCode::TooMuchData
            } else {
                ErrorCode::InvalidMessage
            });
        }
        if !stub && block.sequence != upload.next_sequence {
            return Err(ErrorCode::InvalidMessage);
        }
        let address = upload.next_address;
        upload.next_address = address.wrapping_add(block.data.len() as u32);
        upload.remaining -= block.data.len() as u32;
        upload.next_sequence = upload.next_sequence.wrapping_add(1);
        self.machine
            .write_ram(address, &block.data)
            .map_err(|_| INVALID_RAM_ADDRESS)
    }

    /// MEM_BEGIN for the ROM and both stubs: the whole upload must fit in one RAM region.
    pub(super) fn mem_begin(&mut self, params: BeginParams) -> Result<(), ErrorCode> {
        if !self.machine.is_ram(params.offset, params.size as usize) {
            self.mem_upload = None;
            return Err(INVALID_RAM_ADDRESS);
        }
        self.mem_upload = Some(MemUpload {
            next_address: params.offset,
            remaining: params.size,
            next_sequence: 0,
        });
        Ok(())
    }

    fn rom_mem_begin(&mut self, params: BeginParams) -> Result<(), ErrorCode> {
        if params.encrypted.is_some() {
            return Err(ErrorCode::InvalidMessage);
        }
        self.mem_begin(params)
    }

    fn rom_flash_begin(&mut self, params: BeginParams) -> Result<(), ErrorCode> {
        if params.encrypted.is_some() {
            return Err(ErrorCode::InvalidMessage);
        }
        self.machine.set_flash_attached(true);
        let chip_sectors = (self.machine.flash().size() / SECTOR_SIZE as usize) as u32;
        let sectors = rom_erased_sectors(params.offset, params.size);
        let sectors = sectors.start.min(chip_sectors)..sectors.end.min(chip_sectors);
        if !sectors.is_empty() {
            let report = self
                .machine
                .flash_mut()
                .erase_range(
                    sectors.start * SECTOR_SIZE,
                    (sectors.len() as u32 * SECTOR_SIZE) as usize,
                )
                .map_err(|_| ErrorCode::FlashWriteError)?;
            self.spend(report.typical_duration);
        }
        self.trace_line(|| format!("chip: ROM erased sectors {sectors:?}"));
        self.rom.flash_write = Some(RomFlashWrite {
            offset: params.offset,
            block_size: params.block_size,
            next_sequence: 0,
        });
        Ok(())
    }

    fn rom_flash_data(&mut self, checksum_field: u32, block: &DataBlock) -> Result<(), ErrorCode> {
        let write = self
            .rom
            .flash_write
            .as_mut()
            .ok_or(ErrorCode::FailedToAct)?;
        if checksum_field != u32::from(checksum(&block.data)) {
            return Err(ErrorCode::InvalidChecksum);
        }
        if block.sequence != write.next_sequence || block.data.len() > write.block_size as usize {
            return Err(ErrorCode::InvalidMessage);
        }
        let address =
            u64::from(write.offset) + u64::from(block.sequence) * u64::from(write.block_size);
        let address = u32::try_from(address).map_err(|_| ErrorCode::FlashWriteError)?;
        let report = self
            .machine
            .flash_mut()
            .program(address, &block.data)
            .map_err(|_| ErrorCode::FlashWriteError)?;
        write.next_sequence = write.next_sequence.wrapping_add(1);
        self.spend(report.typical_duration);
        Ok(())
    }
}
