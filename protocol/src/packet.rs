//! Command and response packets: the contents of one SLIP frame.
//!
//! A request is `00 op len:u16 checksum:u32 payload`, a response is
//! `01 op len:u16 value:u32 data status[2]` (all little endian; ESP8266
//! responses carry 2 status bytes). [`RequestFrame`] and [`ResponseFrame`] are
//! checked views of the header; [`Command`] and [`Response`] are the parsed
//! representations, decoded with a typed error for anything malformed.

use crate::status::Status;

/// Direction byte of a request (host to chip).
pub const DIRECTION_REQUEST: u8 = 0x00;
/// Direction byte of a response (chip to host).
pub const DIRECTION_RESPONSE: u8 = 0x01;
/// Bytes before the payload in either direction.
pub const HEADER_LEN: usize = 8;
/// Seed of the data checksum.
pub const CHECKSUM_SEED: u8 = 0xEF;
/// Payload of the SYNC request.
pub const SYNC_PAYLOAD: [u8; 36] = {
    let mut payload = [0x55; 36];
    payload[0] = 0x07;
    payload[1] = 0x07;
    payload[2] = 0x12;
    payload[3] = 0x20;
    payload
};
/// The frame a flasher stub sends once it runs.
pub const STUB_GREETING: &[u8; 4] = b"OHAI";
/// Bytes per MEM_DATA block a host sends (esptool's ESP_RAM_BLOCK): the ROM takes them, and
/// flashlab's first-stage loader is sized for them.
pub const RAM_BLOCK_SIZE: u32 = 0x1800;
/// The value flashlab's first-stage loader answers SYNC with ("LDR1"). A full stub answers 0;
/// the ROM a nonzero value too, so a host takes the first stage for a loader that still needs
/// the stub uploaded, as the ROM does, and never for a running stub.
pub const FIRST_STAGE_SYNC_VALUE: u32 = 0x3152_444C;
/// Header of a FLASH_DATA, FLASH_DEFL_DATA or MEM_DATA payload before the data.
pub const DATA_HEADER_LEN: usize = 16;
/// The ROM loader's UART rate after a reset (it auto-bauds; esptool starts here).
pub const ROM_BAUD: u32 = 115_200;
/// How esptool's ESP8266 stubs apply CHANGE_BAUDRATE: they scale the UART divider they find
/// by `old_baud / new_baud`. The legacy stub (`stub_flasher/1`) takes `old_baud` from the
/// request; esptool 5's esp-flasher-stub (`stub_flasher/2`) always assumes [`ROM_BAUD`], so a
/// second change made with the true old rate lands at the wrong rate (921600 then 460800 gives
/// 3.7 Mbaud). Read off both stubs' code; `stub_baud_change` is the request that suits both.
pub fn stub_scaled_divider(divider: u32, old_baud: u32, new_baud: u32) -> u32 {
    if new_baud == 0 {
        return divider;
    }
    (u64::from(divider) * u64::from(old_baud) / u64::from(new_baud)) as u32
}

/// The CHANGE_BAUDRATE request that moves a running stub's UART from `current` to `new`:
/// `(new × 115200 / current, 115200)`. Both stubs then scale their divider by `current / new`
/// ([`stub_scaled_divider`]); from 115200 it is exactly the request esptool sends.
pub fn stub_baud_change(current: u32, new: u32) -> Command {
    let current = if current == 0 { ROM_BAUD } else { current };
    let scaled = u64::from(new) * u64::from(ROM_BAUD) / u64::from(current);
    Command::ChangeBaudrate {
        new_baud: u32::try_from(scaled).unwrap_or(u32::MAX).max(1),
        old_baud: ROM_BAUD,
    }
}
/// How many replies a SYNC gets, from the ROM and from both stubs.
pub const SYNC_REPLIES: usize = 8;
/// Largest FLASH_DATA / FLASH_DEFL_DATA block the stubs take (esptool's FLASH_WRITE_SIZE for stubs).
pub const STUB_FLASH_BLOCK_SIZE: u32 = 0x4000;
/// Largest READ_FLASH frame the stubs send, and the frame size esptool asks for (the sector size).
pub const STUB_READ_PACKET_SIZE: u32 = 0x1000;

/// The XOR checksum of data blocks, seeded with 0xEF.
pub fn checksum(data: &[u8]) -> u8 {
    data.iter().fold(CHECKSUM_SEED, |acc, byte| acc ^ byte)
}

macro_rules! opcodes {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $text:literal;)*) => {
        /// Command opcodes of the ESP8266 ROM loader (0x02–0x0A) and of flasher stubs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Opcode { $($(#[$doc])* $name = $value,)* }

        impl Opcode {
            /// Every opcode.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$name,)*];

            /// The opcode for a byte, if it is one this crate knows.
            pub fn from_byte(byte: u8) -> Option<Opcode> {
                match byte { $($value => Some(Opcode::$name),)* _ => None }
            }

            /// The name esptool uses (`FLASH_DEFL_DATA`), also accepted by [`Opcode::from_name`].
            pub fn name(self) -> &'static str {
                match self { $(Opcode::$name => $text,)* }
            }
        }
    };
}

opcodes! {
    /// Start a flash write; the ROM erases here.
    FlashBegin = 0x02, "FLASH_BEGIN";
    /// One block of a flash write.
    FlashData = 0x03, "FLASH_DATA";
    /// Finish a flash write.
    FlashEnd = 0x04, "FLASH_END";
    /// Start an upload to RAM.
    MemBegin = 0x05, "MEM_BEGIN";
    /// Finish an upload to RAM, optionally jumping to an entry point.
    MemEnd = 0x06, "MEM_END";
    /// One block of an upload to RAM.
    MemData = 0x07, "MEM_DATA";
    /// Synchronise the baud rate and the protocol.
    Sync = 0x08, "SYNC";
    /// Write registers or memory words.
    WriteReg = 0x09, "WRITE_REG";
    /// Read a register or memory word.
    ReadReg = 0x0A, "READ_REG";
    /// Tell the stub the flash geometry.
    SpiSetParams = 0x0B, "SPI_SET_PARAMS";
    /// Attach the SPI flash.
    SpiAttach = 0x0D, "SPI_ATTACH";
    /// Switch the UART to a new baud rate.
    ChangeBaudrate = 0x0F, "CHANGE_BAUDRATE";
    /// Start a compressed flash write.
    FlashDeflBegin = 0x10, "FLASH_DEFL_BEGIN";
    /// One block of a compressed flash write.
    FlashDeflData = 0x11, "FLASH_DEFL_DATA";
    /// Finish a compressed flash write.
    FlashDeflEnd = 0x12, "FLASH_DEFL_END";
    /// MD5 of a flash region.
    SpiFlashMd5 = 0x13, "SPI_FLASH_MD5";
    /// Erase the whole flash.
    EraseFlash = 0xD0, "ERASE_FLASH";
    /// Erase a sector-aligned region.
    EraseRegion = 0xD1, "ERASE_REGION";
    /// Stream a flash region to the host.
    ReadFlash = 0xD2, "READ_FLASH";
    /// Leave the loader and run the firmware.
    RunUserCode = 0xD3, "RUN_USER_CODE";
    /// flashlab's stub only: the MD5 of each piece of a flash region, in one reply
    /// (esptool's stubs answer "not implemented" or "invalid command").
    SpiFlashMd5Pieces = 0xE0, "SPI_FLASH_MD5_PIECES";
    /// flashlab's stub only: READ_FLASH with each block deflated on the chip when that makes
    /// it shorter (see [`Command::ReadFlashDeflate`]).
    ReadFlashDeflate = 0xE1, "READ_FLASH_DEFLATE";
    /// flashlab's stub only: the size at which the flash's addresses wrap, measured on the
    /// chip (see [`Command::FlashRealSize`]).
    FlashRealSize = 0xE2, "FLASH_REAL_SIZE";
}

/// The smallest flash an ESP8266 module carries: no chip wraps below it, so FLASH_REAL_SIZE
/// does not look further down.
pub const SMALLEST_FLASH: u32 = 256 * 1024;

/// The largest block READ_FLASH_DEFLATE sends in one frame (a flash sector).
pub const MAX_DEFLATE_READ_BLOCK: u32 = 0x1000;
/// The header of each READ_FLASH_DEFLATE block frame: the kind, then the block's MD5.
pub const DEFLATE_READ_HEADER_LEN: usize = 17;
/// READ_FLASH_DEFLATE block kind: the block's bytes as they are.
pub const DEFLATE_READ_RAW: u8 = 0;
/// READ_FLASH_DEFLATE block kind: a raw deflate stream (RFC 1951) of the block.
pub const DEFLATE_READ_DEFLATED: u8 = 1;

/// Most digests one SPI_FLASH_MD5_PIECES reply carries (4 KiB of data).
pub const MAX_MD5_PIECES: u32 = 256;

impl Opcode {
    /// The commands only flashlab's stub answers: to esptool's stubs they are as unknown as
    /// any other byte.
    pub const FLASHLAB_ONLY: [Opcode; 3] = [
        Opcode::SpiFlashMd5Pieces,
        Opcode::ReadFlashDeflate,
        Opcode::FlashRealSize,
    ];

    /// The opcode with esptool's name, e.g. `FLASH_DEFL_DATA` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Opcode> {
        Opcode::ALL
            .iter()
            .copied()
            .find(|op| op.name().eq_ignore_ascii_case(name))
    }

    /// True for the opcodes the ESP8266 ROM loader itself handles.
    pub fn is_rom_opcode(self) -> bool {
        (0x02..=0x0A).contains(&(self as u8))
    }
}

impl std::fmt::Display for Opcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The payload does not fit the header's 16-bit length field.
    #[error("a {len}-byte payload does not fit a packet (at most {max} bytes)", max = u16::MAX)]
    PayloadTooLong {
        /// The payload's length.
        len: usize,
    },
}

/// The header's length field for a payload of `len` bytes.
fn length_field(len: usize) -> Result<[u8; 2], EncodeError> {
    u16::try_from(len)
        .map(u16::to_le_bytes)
        .map_err(|_| EncodeError::PayloadTooLong { len })
}

/// Why bytes did not decode as a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the header needs.
    #[error("packet of {got} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort {
        /// Bytes present.
        got: usize,
    },
    /// The direction byte is not the one expected.
    #[error("direction byte 0x{got:02x}, expected 0x{expected:02x}")]
    WrongDirection {
        /// The direction expected.
        expected: u8,
        /// The byte found.
        got: u8,
    },
    /// The length field disagrees with the bytes present.
    #[error("length field says {declared} bytes but {actual} follow the header")]
    LengthMismatch {
        /// The length field.
        declared: usize,
        /// Bytes after the header.
        actual: usize,
    },
    /// The opcode is not one this crate knows.
    #[error("unknown opcode 0x{0:02x}")]
    UnknownOpcode(u8),
    /// The payload has the wrong size for the opcode.
    #[error("{opcode} payload of {got} bytes, expected {expected}")]
    BadPayloadLength {
        /// The command.
        opcode: Opcode,
        /// What the command takes.
        expected: &'static str,
        /// Bytes present.
        got: usize,
    },
    /// A data block's own size field disagrees with its data.
    #[error("{opcode} block says {declared} data bytes but carries {actual}")]
    DataLengthMismatch {
        /// The command.
        opcode: Opcode,
        /// The block's size field.
        declared: u32,
        /// Bytes of data present.
        actual: usize,
    },
    /// The SYNC payload is not the fixed pattern.
    #[error("SYNC payload is not 07 07 12 20 followed by 32 x 55")]
    BadSyncPayload,
    /// A response without room for its status bytes.
    #[error("response of {got} data bytes has no room for the 2 status bytes")]
    MissingStatus {
        /// Bytes present after the header.
        got: usize,
    },
}

/// Checked view of a request: header fields and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFrame<'a> {
    /// Opcode byte (possibly unknown).
    pub opcode: u8,
    /// The checksum field (meaningful for data blocks).
    pub checksum: u32,
    /// Bytes after the header.
    pub payload: &'a [u8],
}

impl<'a> RequestFrame<'a> {
    /// Checks direction and length of `frame` without interpreting the payload.
    pub fn parse(frame: &'a [u8]) -> Result<Self, DecodeError> {
        let payload = check_header(frame, DIRECTION_REQUEST)?;
        Ok(RequestFrame {
            opcode: frame[1],
            checksum: u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes")),
            payload,
        })
    }
}

/// Checked view of a response: header fields and data including status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseFrame<'a> {
    /// Opcode byte this responds to.
    pub opcode: u8,
    /// The value field (READ_REG's result).
    pub value: u32,
    /// Bytes after the header, status bytes included.
    pub body: &'a [u8],
}

impl<'a> ResponseFrame<'a> {
    /// Checks direction and length of `frame`.
    pub fn parse(frame: &'a [u8]) -> Result<Self, DecodeError> {
        let body = check_header(frame, DIRECTION_RESPONSE)?;
        Ok(ResponseFrame {
            opcode: frame[1],
            value: u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes")),
            body,
        })
    }
}

fn check_header(frame: &[u8], direction: u8) -> Result<&[u8], DecodeError> {
    if frame.len() < HEADER_LEN {
        return Err(DecodeError::TooShort { got: frame.len() });
    }
    if frame[0] != direction {
        return Err(DecodeError::WrongDirection {
            expected: direction,
            got: frame[0],
        });
    }
    let declared = u16::from_le_bytes([frame[2], frame[3]]) as usize;
    let payload = &frame[HEADER_LEN..];
    if declared != payload.len() {
        return Err(DecodeError::LengthMismatch {
            declared,
            actual: payload.len(),
        });
    }
    Ok(payload)
}

/// Parameters of FLASH_BEGIN, FLASH_DEFL_BEGIN and MEM_BEGIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeginParams {
    /// FLASH_BEGIN: bytes to erase; FLASH_DEFL_BEGIN: uncompressed size (the
    /// ROM: bytes to erase); MEM_BEGIN: bytes to upload.
    pub size: u32,
    /// Number of data blocks that follow.
    pub blocks: u32,
    /// Size of each block.
    pub block_size: u32,
    /// Flash offset or RAM address.
    pub offset: u32,
    /// The fifth word clients send to a stub's FLASH_BEGIN/FLASH_DEFL_BEGIN
    /// (encrypted write); `None` for the 16-byte form the ROM and MEM_BEGIN use.
    pub encrypted: Option<bool>,
}

/// A data block of FLASH_DATA, FLASH_DEFL_DATA or MEM_DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataBlock {
    /// Sequence number, from 0.
    pub sequence: u32,
    /// The block's data.
    pub data: Vec<u8>,
}

/// One write of WRITE_REG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterWrite {
    /// Address written.
    pub address: u32,
    /// Value written.
    pub value: u32,
    /// Bits of `value` that are written.
    pub mask: u32,
    /// Microseconds to wait after the write.
    pub delay_us: u32,
}

/// SPI_SET_PARAMS: the flash geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiParams {
    /// Flash ID (esptool sends 0).
    pub id: u32,
    /// Total size in bytes.
    pub total_size: u32,
    /// Erase block size.
    pub block_size: u32,
    /// Sector size.
    pub sector_size: u32,
    /// Page size.
    pub page_size: u32,
    /// Status register mask.
    pub status_mask: u32,
}

/// A request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// FLASH_BEGIN.
    FlashBegin(BeginParams),
    /// FLASH_DATA.
    FlashData(DataBlock),
    /// FLASH_END.
    FlashEnd {
        /// The flag's meaning, sent inverted as esptool's `reboot` is (word 0 = reboot): true,
        /// the chip reboots after answering; false, it does not: the ROM leaves its loader
        /// for the user code without a reset, a stub stays.
        reboot: bool,
    },
    /// MEM_BEGIN.
    MemBegin(BeginParams),
    /// MEM_END.
    MemEnd {
        /// Jump to `entry` (esptool sends flag 0 to mean "execute").
        execute: bool,
        /// Entry point.
        entry: u32,
    },
    /// MEM_DATA.
    MemData(DataBlock),
    /// SYNC.
    Sync,
    /// WRITE_REG with one or more writes.
    WriteReg(Vec<RegisterWrite>),
    /// READ_REG.
    ReadReg {
        /// Address read.
        address: u32,
    },
    /// SPI_SET_PARAMS.
    SpiSetParams(SpiParams),
    /// SPI_ATTACH.
    SpiAttach {
        /// Pin configuration (0 = the default SPI pins).
        config: u32,
        /// The ROM's form carries 4 more zero bytes.
        rom_form: bool,
    },
    /// CHANGE_BAUDRATE.
    ChangeBaudrate {
        /// New rate.
        new_baud: u32,
        /// Rate in use (0 when talking to a ROM).
        old_baud: u32,
    },
    /// FLASH_DEFL_BEGIN.
    FlashDeflBegin(BeginParams),
    /// FLASH_DEFL_DATA.
    FlashDeflData(DataBlock),
    /// FLASH_DEFL_END.
    FlashDeflEnd {
        /// As [`Command::FlashEnd`]'s.
        reboot: bool,
    },
    /// SPI_FLASH_MD5_PIECES: the MD5 of each `unit`-byte piece of `size` bytes at `address`
    /// (the last piece may be shorter), at most [`MAX_MD5_PIECES`] of them; the reply's data
    /// is the 16-byte digests in order.
    SpiFlashMd5Pieces {
        /// Flash offset.
        address: u32,
        /// Bytes to hash.
        size: u32,
        /// Bytes per digest.
        unit: u32,
    },
    /// SPI_FLASH_MD5.
    SpiFlashMd5 {
        /// Flash offset.
        address: u32,
        /// Bytes to hash.
        size: u32,
    },
    /// ERASE_FLASH.
    EraseFlash,
    /// ERASE_REGION.
    EraseRegion {
        /// Flash offset (sector aligned).
        address: u32,
        /// Bytes (sector multiple).
        size: u32,
    },
    /// READ_FLASH.
    ReadFlash {
        /// Flash offset.
        address: u32,
        /// Bytes to read.
        size: u32,
        /// Data bytes per frame.
        packet_size: u32,
        /// Frames the device may send ahead of the host's acknowledgement.
        max_in_flight: u32,
    },
    /// READ_FLASH_DEFLATE (flashlab's stub): `size` bytes at `address` in blocks of
    /// `block_size` (at most [`MAX_DEFLATE_READ_BLOCK`]), after an empty success reply. Each
    /// block comes as one frame: [`DEFLATE_READ_RAW`] or [`DEFLATE_READ_DEFLATED`], the
    /// block's 16-byte MD5, then its bytes or a raw deflate stream of them (sent only when
    /// shorter). The host acknowledges as for READ_FLASH (the 4-byte count of block bytes
    /// received), the stub keeps at most `max_in_flight` blocks ahead, and a last frame holds
    /// the MD5 of the whole range.
    ReadFlashDeflate {
        /// Flash offset.
        address: u32,
        /// Bytes to read.
        size: u32,
        /// Bytes per block.
        block_size: u32,
        /// Blocks the device may send ahead of the host's acknowledgement.
        max_in_flight: u32,
    },
    /// FLASH_REAL_SIZE (flashlab's stub): the reply's value is the size at which the flash's
    /// addresses wrap (a fake or mislabelled chip answers to every address its ID claims but
    /// has less memory), or `claimed` when they do not wrap below it. For each window from
    /// `claimed / 2` down to [`SMALLEST_FLASH`] the stub compares the flash at `a` and
    /// `a + window`; when both halves hold the same bytes it programs a marker into an erased
    /// sector, looks for it one window on, and erases the sector again.
    FlashRealSize {
        /// The size the flash's JEDEC ID claims (a power of two).
        claimed: u32,
    },
    /// RUN_USER_CODE.
    RunUserCode,
}

impl Command {
    /// The command's opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            Command::FlashBegin(_) => Opcode::FlashBegin,
            Command::FlashData(_) => Opcode::FlashData,
            Command::FlashEnd { .. } => Opcode::FlashEnd,
            Command::MemBegin(_) => Opcode::MemBegin,
            Command::MemEnd { .. } => Opcode::MemEnd,
            Command::MemData(_) => Opcode::MemData,
            Command::Sync => Opcode::Sync,
            Command::WriteReg(_) => Opcode::WriteReg,
            Command::ReadReg { .. } => Opcode::ReadReg,
            Command::SpiSetParams(_) => Opcode::SpiSetParams,
            Command::SpiAttach { .. } => Opcode::SpiAttach,
            Command::ChangeBaudrate { .. } => Opcode::ChangeBaudrate,
            Command::FlashDeflBegin(_) => Opcode::FlashDeflBegin,
            Command::FlashDeflData(_) => Opcode::FlashDeflData,
            Command::FlashDeflEnd { .. } => Opcode::FlashDeflEnd,
            Command::SpiFlashMd5 { .. } => Opcode::SpiFlashMd5,
            Command::SpiFlashMd5Pieces { .. } => Opcode::SpiFlashMd5Pieces,
            Command::EraseFlash => Opcode::EraseFlash,
            Command::EraseRegion { .. } => Opcode::EraseRegion,
            Command::ReadFlash { .. } => Opcode::ReadFlash,
            Command::ReadFlashDeflate { .. } => Opcode::ReadFlashDeflate,
            Command::FlashRealSize { .. } => Opcode::FlashRealSize,
            Command::RunUserCode => Opcode::RunUserCode,
        }
    }

    /// Appends the request packet (not yet SLIP-framed) to `out`; a payload longer than the
    /// length field holds is an error, and `out` is left as it was.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[DIRECTION_REQUEST, self.opcode() as u8, 0, 0, 0, 0, 0, 0]);
        let mut checksum_field = 0u32;
        let words = |out: &mut Vec<u8>, words: &[u32]| {
            for word in words {
                out.extend_from_slice(&word.to_le_bytes());
            }
        };
        match self {
            Command::FlashBegin(p) | Command::MemBegin(p) | Command::FlashDeflBegin(p) => {
                words(out, &[p.size, p.blocks, p.block_size, p.offset]);
                if let Some(encrypted) = p.encrypted {
                    words(out, &[encrypted as u32]);
                }
            }
            Command::FlashData(block) | Command::FlashDeflData(block) | Command::MemData(block) => {
                words(out, &[block.data.len() as u32, block.sequence, 0, 0]);
                out.extend_from_slice(&block.data);
                checksum_field = checksum(&block.data) as u32;
            }
            Command::FlashEnd { reboot } | Command::FlashDeflEnd { reboot } => {
                words(out, &[u32::from(!*reboot)])
            }
            Command::MemEnd { execute, entry } => words(out, &[!*execute as u32, *entry]),
            Command::Sync => out.extend_from_slice(&SYNC_PAYLOAD),
            Command::WriteReg(writes) => {
                for w in writes {
                    words(out, &[w.address, w.value, w.mask, w.delay_us]);
                }
            }
            Command::ReadReg { address } => words(out, &[*address]),
            Command::SpiSetParams(p) => words(
                out,
                &[
                    p.id,
                    p.total_size,
                    p.block_size,
                    p.sector_size,
                    p.page_size,
                    p.status_mask,
                ],
            ),
            Command::SpiAttach { config, rom_form } => {
                words(out, &[*config]);
                if *rom_form {
                    words(out, &[0]);
                }
            }
            Command::ChangeBaudrate { new_baud, old_baud } => words(out, &[*new_baud, *old_baud]),
            Command::SpiFlashMd5 { address, size } => words(out, &[*address, *size, 0, 0]),
            Command::SpiFlashMd5Pieces {
                address,
                size,
                unit,
            } => words(out, &[*address, *size, *unit]),
            Command::EraseRegion { address, size } => words(out, &[*address, *size]),
            Command::ReadFlash {
                address,
                size,
                packet_size,
                max_in_flight,
            } => words(out, &[*address, *size, *packet_size, *max_in_flight]),
            Command::ReadFlashDeflate {
                address,
                size,
                block_size,
                max_in_flight,
            } => words(out, &[*address, *size, *block_size, *max_in_flight]),
            Command::FlashRealSize { claimed } => words(out, &[*claimed]),
            Command::EraseFlash | Command::RunUserCode => {}
        }
        let length = match length_field(out.len() - start - HEADER_LEN) {
            Ok(length) => length,
            Err(error) => {
                out.truncate(start);
                return Err(error);
            }
        };
        out[start + 2..start + 4].copy_from_slice(&length);
        out[start + 4..start + 8].copy_from_slice(&checksum_field.to_le_bytes());
        Ok(())
    }

    /// The request packet as a new vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Parses a whole request packet.
    pub fn decode(frame: &[u8]) -> Result<Command, DecodeError> {
        Command::from_frame(&RequestFrame::parse(frame)?)
    }

    /// Parses the payload of a checked request. The data-block checksum is not
    /// checked here: a device answers a bad one with a status code, so it
    /// compares [`RequestFrame::checksum`] with [`checksum`] itself.
    pub fn from_frame(frame: &RequestFrame<'_>) -> Result<Command, DecodeError> {
        let opcode =
            Opcode::from_byte(frame.opcode).ok_or(DecodeError::UnknownOpcode(frame.opcode))?;
        let payload = frame.payload;
        let exact = |expected_len: usize, expected: &'static str| {
            if payload.len() == expected_len {
                Ok(read_words(payload))
            } else {
                Err(DecodeError::BadPayloadLength {
                    opcode,
                    expected,
                    got: payload.len(),
                })
            }
        };
        let begin = |allow_encrypted_word: bool| {
            let words = match payload.len() {
                16 => read_words(payload),
                20 if allow_encrypted_word => read_words(payload),
                got => {
                    let expected = if allow_encrypted_word {
                        "16 or 20"
                    } else {
                        "16"
                    };
                    return Err(DecodeError::BadPayloadLength {
                        opcode,
                        expected,
                        got,
                    });
                }
            };
            Ok(BeginParams {
                size: words[0],
                blocks: words[1],
                block_size: words[2],
                offset: words[3],
                encrypted: words.get(4).map(|&word| word != 0),
            })
        };
        let data_block = || decode_data_block(opcode, payload);
        Ok(match opcode {
            Opcode::FlashBegin => Command::FlashBegin(begin(true)?),
            Opcode::MemBegin => Command::MemBegin(begin(false)?),
            Opcode::FlashDeflBegin => Command::FlashDeflBegin(begin(true)?),
            Opcode::FlashData => Command::FlashData(data_block()?),
            Opcode::FlashDeflData => Command::FlashDeflData(data_block()?),
            Opcode::MemData => Command::MemData(data_block()?),
            Opcode::FlashEnd => Command::FlashEnd {
                reboot: exact(4, "4")?[0] == 0,
            },
            Opcode::FlashDeflEnd => Command::FlashDeflEnd {
                reboot: exact(4, "4")?[0] == 0,
            },
            Opcode::MemEnd => {
                let w = exact(8, "8")?;
                Command::MemEnd {
                    execute: w[0] == 0,
                    entry: w[1],
                }
            }
            Opcode::Sync => {
                if payload.len() != SYNC_PAYLOAD.len() {
                    return Err(DecodeError::BadPayloadLength {
                        opcode,
                        expected: "36",
                        got: payload.len(),
                    });
                }
                if payload != SYNC_PAYLOAD {
                    return Err(DecodeError::BadSyncPayload);
                }
                Command::Sync
            }
            Opcode::WriteReg => {
                if payload.is_empty() || !payload.len().is_multiple_of(16) {
                    return Err(DecodeError::BadPayloadLength {
                        opcode,
                        expected: "a multiple of 16",
                        got: payload.len(),
                    });
                }
                let writes = read_words(payload)
                    .chunks_exact(4)
                    .map(|w| RegisterWrite {
                        address: w[0],
                        value: w[1],
                        mask: w[2],
                        delay_us: w[3],
                    })
                    .collect();
                Command::WriteReg(writes)
            }
            Opcode::ReadReg => Command::ReadReg {
                address: exact(4, "4")?[0],
            },
            Opcode::SpiSetParams => {
                let w = exact(24, "24")?;
                Command::SpiSetParams(SpiParams {
                    id: w[0],
                    total_size: w[1],
                    block_size: w[2],
                    sector_size: w[3],
                    page_size: w[4],
                    status_mask: w[5],
                })
            }
            Opcode::SpiAttach => match payload.len() {
                4 => Command::SpiAttach {
                    config: read_words(payload)[0],
                    rom_form: false,
                },
                8 if payload[4..] == [0; 4] => Command::SpiAttach {
                    config: read_words(payload)[0],
                    rom_form: true,
                },
                got => {
                    return Err(DecodeError::BadPayloadLength {
                        opcode,
                        expected: "4, or 8 ending in zeros",
                        got,
                    })
                }
            },
            Opcode::ChangeBaudrate => {
                let w = exact(8, "8")?;
                Command::ChangeBaudrate {
                    new_baud: w[0],
                    old_baud: w[1],
                }
            }
            Opcode::SpiFlashMd5 => {
                let w = exact(16, "16")?;
                Command::SpiFlashMd5 {
                    address: w[0],
                    size: w[1],
                }
            }
            Opcode::EraseFlash => {
                exact(0, "0")?;
                Command::EraseFlash
            }
            Opcode::EraseRegion => {
                let w = exact(8, "8")?;
                Command::EraseRegion {
                    address: w[0],
                    size: w[1],
                }
            }
            Opcode::ReadFlash => {
                let w = exact(16, "16")?;
                Command::ReadFlash {
                    address: w[0],
                    size: w[1],
                    packet_size: w[2],
                    max_in_flight: w[3],
                }
            }
            Opcode::RunUserCode => {
                exact(0, "0")?;
                Command::RunUserCode
            }
            Opcode::SpiFlashMd5Pieces => {
                let w = exact(12, "12")?;
                Command::SpiFlashMd5Pieces {
                    address: w[0],
                    size: w[1],
                    unit: w[2],
                }
            }
            Opcode::ReadFlashDeflate => {
                let w = exact(16, "16")?;
                Command::ReadFlashDeflate {
                    address: w[0],
                    size: w[1],
                    block_size: w[2],
                    max_in_flight: w[3],
                }
            }
            Opcode::FlashRealSize => {
                let w = exact(4, "4")?;
                Command::FlashRealSize { claimed: w[0] }
            }
        })
    }
}

fn read_words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().expect("4 bytes")))
        .collect()
}

fn decode_data_block(opcode: Opcode, payload: &[u8]) -> Result<DataBlock, DecodeError> {
    if payload.len() < DATA_HEADER_LEN {
        return Err(DecodeError::BadPayloadLength {
            opcode,
            expected: "at least 16",
            got: payload.len(),
        });
    }
    let header = read_words(&payload[..DATA_HEADER_LEN]);
    let data = &payload[DATA_HEADER_LEN..];
    if header[0] as usize != data.len() {
        return Err(DecodeError::DataLengthMismatch {
            opcode,
            declared: header[0],
            actual: data.len(),
        });
    }
    Ok(DataBlock {
        sequence: header[1],
        data: data.to_vec(),
    })
}

/// A response, parsed: the status bytes are split from the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Opcode byte this answers (kept raw: a device answers unknown opcodes too).
    pub opcode: u8,
    /// The value field.
    pub value: u32,
    /// Data before the status bytes (the stub's MD5, for instance).
    pub data: Vec<u8>,
    /// The outcome.
    pub status: Status,
}

impl Response {
    /// A successful response with a value and no data.
    pub fn ok(opcode: u8, value: u32) -> Response {
        Response {
            opcode,
            value,
            data: Vec::new(),
            status: Status::Success,
        }
    }

    /// A failed response with this status.
    pub fn failure(opcode: u8, status: Status) -> Response {
        Response {
            opcode,
            value: 0,
            data: Vec::new(),
            status,
        }
    }

    /// Appends the response packet (not yet SLIP-framed) to `out`; data longer than the
    /// length field holds is an error, and nothing is appended.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let length = length_field(self.data.len() + 2)?;
        out.extend_from_slice(&[DIRECTION_RESPONSE, self.opcode]);
        out.extend_from_slice(&length);
        out.extend_from_slice(&self.value.to_le_bytes());
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.status.to_bytes());
        Ok(())
    }

    /// The response packet as a new vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Parses a whole response packet; the last two bytes are the status.
    pub fn decode(frame: &[u8]) -> Result<Response, DecodeError> {
        let view = ResponseFrame::parse(frame)?;
        let Some(split) = view.body.len().checked_sub(2) else {
            return Err(DecodeError::MissingStatus {
                got: view.body.len(),
            });
        };
        Ok(Response {
            opcode: view.opcode,
            value: view.value,
            data: view.body[..split].to_vec(),
            status: Status::from_bytes([view.body[split], view.body[split + 1]]),
        })
    }
}

/// The host's acknowledgement during READ_FLASH: the total bytes received so far.
pub fn encode_read_ack(total_received: u32) -> [u8; 4] {
    total_received.to_le_bytes()
}

/// Parses a READ_FLASH acknowledgement frame.
pub fn decode_read_ack(frame: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(frame.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ErrorCode;

    #[test]
    fn stub_baud_change_from_the_rom_rate_is_esptools_request() {
        assert_eq!(
            stub_baud_change(ROM_BAUD, 921_600),
            Command::ChangeBaudrate {
                new_baud: 921_600,
                old_baud: ROM_BAUD
            }
        );
    }

    #[test]
    fn stub_baud_change_scales_both_stubs_dividers_by_the_ratio() {
        // 52 MHz / 921600, truncated as the stubs do: 56.
        let divider = 56;
        let Command::ChangeBaudrate { new_baud, old_baud } = stub_baud_change(921_600, 460_800)
        else {
            unreachable!("a CHANGE_BAUDRATE");
        };
        // The legacy stub uses old_baud; esp-flasher-stub assumes the ROM's rate.
        assert_eq!(stub_scaled_divider(divider, old_baud, new_baud), 112);
        assert_eq!(stub_scaled_divider(divider, ROM_BAUD, new_baud), 112);
        assert_eq!(stub_scaled_divider(divider, ROM_BAUD, 0), divider);
    }

    #[test]
    fn sync_request_bytes() {
        let bytes = Command::Sync.to_bytes().unwrap();
        assert_eq!(&bytes[..8], &[0x00, 0x08, 36, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[8..12], &[0x07, 0x07, 0x12, 0x20]);
        assert!(bytes[12..].iter().all(|&b| b == 0x55));
        assert_eq!(bytes.len(), 8 + 36);
    }

    #[test]
    fn rom_reply_to_chip_detect_read_reg() {
        // The ESP8266 ROM answers READ_REG 0x40001000 with the magic value and two status bytes.
        let request = Command::ReadReg {
            address: 0x4000_1000,
        }
        .to_bytes()
        .unwrap();
        assert_eq!(
            request,
            vec![0x00, 0x0A, 0x04, 0x00, 0, 0, 0, 0, 0x00, 0x10, 0x00, 0x40]
        );
        let reply = Response::ok(0x0A, 0xFFF0_C101).to_bytes().unwrap();
        assert_eq!(
            reply,
            vec![0x01, 0x0A, 0x02, 0x00, 0x01, 0xC1, 0xF0, 0xFF, 0x00, 0x00]
        );
        assert_eq!(Response::decode(&reply).unwrap().value, 0xFFF0_C101);
    }

    #[test]
    fn flash_data_carries_checksum_and_length() {
        let block = DataBlock {
            sequence: 3,
            data: vec![0x01, 0x02, 0xFF],
        };
        let bytes = Command::FlashData(block.clone()).to_bytes().unwrap();
        assert_eq!(
            &bytes[..8],
            &[0x00, 0x03, 19, 0, 0xEF ^ 0x01 ^ 0x02 ^ 0xFF, 0, 0, 0]
        );
        assert_eq!(
            &bytes[8..24],
            &[3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&bytes[24..], &[0x01, 0x02, 0xFF]);
        assert_eq!(Command::decode(&bytes), Ok(Command::FlashData(block)));
    }

    #[test]
    fn begin_and_read_flash_layouts() {
        let params = BeginParams {
            size: 0x1000,
            blocks: 4,
            block_size: 0x400,
            offset: 0x2000,
            encrypted: None,
        };
        let begin = Command::FlashBegin(params);
        assert_eq!(
            begin.to_bytes().unwrap(),
            vec![
                0, 0x02, 16, 0, 0, 0, 0, 0, 0x00, 0x10, 0, 0, 4, 0, 0, 0, 0x00, 0x04, 0, 0, 0x00,
                0x20, 0, 0
            ]
        );
        // What esptool sends a stub: the same with an "encrypted" word of 0.
        let stub_begin = Command::FlashDeflBegin(BeginParams {
            encrypted: Some(false),
            ..params
        });
        assert_eq!(stub_begin.to_bytes().unwrap()[2], 20);
        assert_eq!(
            Command::decode(&stub_begin.to_bytes().unwrap()),
            Ok(stub_begin)
        );
        let mem_begin_with_fifth_word = [&[0u8, 0x05, 20, 0, 0, 0, 0, 0][..], &[0; 20]].concat();
        assert!(matches!(
            Command::decode(&mem_begin_with_fifth_word),
            Err(DecodeError::BadPayloadLength {
                opcode: Opcode::MemBegin,
                got: 20,
                ..
            })
        ));
        let read = Command::ReadFlash {
            address: 0,
            size: 0x100000,
            packet_size: 0x1000,
            max_in_flight: 64,
        };
        assert_eq!(&read.to_bytes().unwrap()[..2], &[0x00, 0xD2]);
        assert_eq!(
            &read.to_bytes().unwrap()[8..],
            &[0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0x10, 0, 0, 64, 0, 0, 0]
        );
    }

    #[test]
    fn mem_end_flag_zero_means_execute() {
        let bytes = Command::MemEnd {
            execute: true,
            entry: 0x4010_E004,
        }
        .to_bytes()
        .unwrap();
        assert_eq!(&bytes[8..], &[0, 0, 0, 0, 0x04, 0xE0, 0x10, 0x40]);
    }

    #[test]
    fn spi_attach_accepts_both_forms() {
        let stub_form = Command::SpiAttach {
            config: 0,
            rom_form: false,
        }
        .to_bytes()
        .unwrap();
        assert_eq!(stub_form.len(), 12);
        let rom_form = Command::SpiAttach {
            config: 0,
            rom_form: true,
        }
        .to_bytes()
        .unwrap();
        assert_eq!(rom_form.len(), 16);
        assert_eq!(
            Command::decode(&rom_form),
            Ok(Command::SpiAttach {
                config: 0,
                rom_form: true
            })
        );
    }

    #[test]
    fn malformed_requests_get_typed_errors() {
        assert_eq!(
            Command::decode(&[0x00, 0x08]),
            Err(DecodeError::TooShort { got: 2 })
        );
        let mut sync = Command::Sync.to_bytes().unwrap();
        sync[0] = 0x01;
        assert_eq!(
            Command::decode(&sync),
            Err(DecodeError::WrongDirection {
                expected: 0,
                got: 1
            })
        );
        let mut trailing = Command::ReadReg { address: 4 }.to_bytes().unwrap();
        trailing.push(0);
        assert_eq!(
            Command::decode(&trailing),
            Err(DecodeError::LengthMismatch {
                declared: 4,
                actual: 5
            })
        );
        let unknown = [0x00, 0x14, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            Command::decode(&unknown),
            Err(DecodeError::UnknownOpcode(0x14))
        );
        let mut short_block = Command::FlashData(DataBlock {
            sequence: 0,
            data: vec![1, 2],
        })
        .to_bytes()
        .unwrap();
        short_block[8] = 3;
        assert!(matches!(
            Command::decode(&short_block),
            Err(DecodeError::DataLengthMismatch { declared: 3, .. })
        ));
    }

    #[test]
    fn stub_md5_reply_splits_status() {
        let digest: Vec<u8> = (0..16).collect();
        let reply = Response {
            opcode: 0x13,
            value: 0,
            data: digest.clone(),
            status: Status::Success,
        };
        let bytes = reply.to_bytes().unwrap();
        assert_eq!(&bytes[2..4], &[18, 0]);
        assert_eq!(Response::decode(&bytes).unwrap().data, digest);
        let failed = Response::failure(0x11, Status::stub_failure(ErrorCode::BadDataChecksum))
            .to_bytes()
            .unwrap();
        assert_eq!(&failed[8..], &[0xC1, 0x00]);
    }

    #[test]
    fn opcode_names_match_esptool() {
        assert_eq!(
            Opcode::from_name("flash_defl_data"),
            Some(Opcode::FlashDeflData)
        );
        assert_eq!(Opcode::ReadFlash.name(), "READ_FLASH");
        assert!(Opcode::ReadReg.is_rom_opcode() && !Opcode::SpiAttach.is_rom_opcode());
    }

    #[test]
    fn regression_oversized_payload_was_sent_with_a_truncated_length() {
        let block = DataBlock {
            sequence: 0,
            data: vec![0xAA; 0x1_0000],
        };
        let mut out = vec![0xC0];
        assert_eq!(
            Command::FlashData(block).encode(&mut out),
            Err(EncodeError::PayloadTooLong { len: 0x1_0010 })
        );
        assert_eq!(out, [0xC0], "nothing of the refused packet is left behind");
        let reply = Response {
            data: vec![0; usize::from(u16::MAX) - 1],
            ..Response::ok(0x13, 0)
        };
        assert_eq!(
            reply.to_bytes(),
            Err(EncodeError::PayloadTooLong { len: 0x1_0000 })
        );
    }
}
