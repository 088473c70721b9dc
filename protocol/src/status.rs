//! Status codes of the ESP8266 ROM loader and of flasher stubs, as one type.
//!
//! Every response ends with two status bytes. The ROM sends `[1, code]` on
//! failure; a stub sends `[code, 0]` with a code of 0xC0 or above. A first byte
//! of 0 means success. Clients read the pair as a big-endian number (esptool
//! prints "result was 0105" or "result was c100"), so the encoding below keeps
//! each family in its own byte.

/// Why a ROM loader or stub refused or failed a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// ROM 0x05: the message's format or parameters are invalid.
    InvalidMessage,
    /// ROM 0x06: the message was understood but acting on it failed.
    FailedToAct,
    /// ROM 0x07: the data checksum did not match.
    InvalidChecksum,
    /// ROM 0x08: writing flash failed.
    FlashWriteError,
    /// ROM 0x09: reading flash failed.
    FlashReadError,
    /// ROM 0x0A: flash read length error.
    FlashReadLengthError,
    /// ROM 0x0B: deflate failed.
    DeflateError,
    /// Stub 0xC0: a data length field disagrees with the data.
    BadDataLength,
    /// Stub 0xC1: the data checksum did not match.
    BadDataChecksum,
    /// Stub 0xC2: the block size is not acceptable.
    BadBlockSize,
    /// Stub 0xC3: the stub does not know the command.
    InvalidCommand,
    /// Stub 0xC4: an SPI flash operation failed.
    FailedSpiOp,
    /// Stub 0xC5: unlocking the flash's status register failed.
    FailedSpiUnlock,
    /// Stub 0xC6: a FLASH_DATA arrived without a FLASH_BEGIN.
    NotInFlashMode,
    /// Stub 0xC7: the compressed data did not inflate.
    InflateError,
    /// Stub 0xC8: FLASH_END came before all announced data.
    NotEnoughData,
    /// Stub 0xC9: more data arrived than FLASH_BEGIN announced.
    TooMuchData,
    /// Stub 0xFF: the command exists but is not implemented.
    CommandNotImplemented,
    /// Any other code, kept as received.
    Other(u8),
}

impl ErrorCode {
    /// Every named code, for tests and tables.
    pub const ALL_NAMED: [ErrorCode; 18] = [
        ErrorCode::InvalidMessage,
        ErrorCode::FailedToAct,
        ErrorCode::InvalidChecksum,
        ErrorCode::FlashWriteError,
        ErrorCode::FlashReadError,
        ErrorCode::FlashReadLengthError,
        ErrorCode::DeflateError,
        ErrorCode::BadDataLength,
        ErrorCode::BadDataChecksum,
        ErrorCode::BadBlockSize,
        ErrorCode::InvalidCommand,
        ErrorCode::FailedSpiOp,
        ErrorCode::FailedSpiUnlock,
        ErrorCode::NotInFlashMode,
        ErrorCode::InflateError,
        ErrorCode::NotEnoughData,
        ErrorCode::TooMuchData,
        ErrorCode::CommandNotImplemented,
    ];

    /// The code byte.
    pub fn code(self) -> u8 {
        match self {
            ErrorCode::InvalidMessage => 0x05,
            ErrorCode::FailedToAct => 0x06,
            ErrorCode::InvalidChecksum => 0x07,
            ErrorCode::FlashWriteError => 0x08,
            ErrorCode::FlashReadError => 0x09,
            ErrorCode::FlashReadLengthError => 0x0A,
            ErrorCode::DeflateError => 0x0B,
            ErrorCode::BadDataLength => 0xC0,
            ErrorCode::BadDataChecksum => 0xC1,
            ErrorCode::BadBlockSize => 0xC2,
            ErrorCode::InvalidCommand => 0xC3,
            ErrorCode::FailedSpiOp => 0xC4,
            ErrorCode::FailedSpiUnlock => 0xC5,
            ErrorCode::NotInFlashMode => 0xC6,
            ErrorCode::InflateError => 0xC7,
            ErrorCode::NotEnoughData => 0xC8,
            ErrorCode::TooMuchData => 0xC9,
            ErrorCode::CommandNotImplemented => 0xFF,
            ErrorCode::Other(code) => code,
        }
    }

    /// The code for a code byte.
    pub fn from_code(code: u8) -> ErrorCode {
        Self::ALL_NAMED
            .into_iter()
            .find(|named| named.code() == code)
            .unwrap_or(ErrorCode::Other(code))
    }

    /// True for the stub's family of codes (sent as `[code, 0]`).
    pub fn is_stub_code(self) -> bool {
        self.code() >= 0xC0
    }

    /// What the code means, in a few words.
    pub fn meaning(self) -> &'static str {
        match self {
            ErrorCode::InvalidMessage => "the format of the received message is invalid",
            ErrorCode::FailedToAct => "the message was understood but acting on it failed",
            ErrorCode::InvalidChecksum => "checksum error",
            ErrorCode::FlashWriteError => "flash write error",
            ErrorCode::FlashReadError => "flash read error",
            ErrorCode::FlashReadLengthError => "flash read length error",
            ErrorCode::DeflateError => "deflate error",
            ErrorCode::BadDataLength => "bad data length",
            ErrorCode::BadDataChecksum => "bad data checksum",
            ErrorCode::BadBlockSize => "bad block size",
            ErrorCode::InvalidCommand => "invalid command",
            ErrorCode::FailedSpiOp => "SPI flash operation failed",
            ErrorCode::FailedSpiUnlock => "failed to unlock the flash status register",
            ErrorCode::NotInFlashMode => "not in flash mode (no FLASH_BEGIN)",
            ErrorCode::InflateError => "compressed data did not inflate",
            ErrorCode::NotEnoughData => "not enough data",
            ErrorCode::TooMuchData => "too much data",
            ErrorCode::CommandNotImplemented => "command not implemented",
            ErrorCode::Other(_) => "unknown error code",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (0x{:02x})", self.meaning(), self.code())
    }
}

/// The outcome a response's two status bytes carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The command succeeded.
    Success,
    /// The command failed for this reason.
    Failure(ErrorCode),
}

impl Status {
    /// Reads the two status bytes.
    pub fn from_bytes(bytes: [u8; 2]) -> Status {
        match bytes {
            [0, _] => Status::Success,
            [1, code] => Status::Failure(ErrorCode::from_code(code)),
            [code, _] => Status::Failure(ErrorCode::from_code(code)),
        }
    }

    /// The two status bytes for this outcome, in the family's own layout.
    pub fn to_bytes(self) -> [u8; 2] {
        match self {
            Status::Success => [0, 0],
            Status::Failure(code) if code.is_stub_code() => [code.code(), 0],
            Status::Failure(code) => [1, code.code()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rom_and_stub_codes_use_their_own_byte_layout() {
        assert_eq!(
            Status::Failure(ErrorCode::InvalidMessage).to_bytes(),
            [0x01, 0x05]
        );
        assert_eq!(
            Status::Failure(ErrorCode::BadDataChecksum).to_bytes(),
            [0xC1, 0x00]
        );
        assert_eq!(Status::Success.to_bytes(), [0, 0]);
    }

    #[test]
    fn every_named_code_round_trips() {
        for code in ErrorCode::ALL_NAMED {
            let status = Status::Failure(code);
            assert_eq!(Status::from_bytes(status.to_bytes()), status, "{code}");
            assert_eq!(ErrorCode::from_code(code.code()), code);
        }
    }

    #[test]
    fn unknown_codes_are_kept() {
        assert_eq!(
            Status::from_bytes([1, 0x42]),
            Status::Failure(ErrorCode::Other(0x42))
        );
        assert_eq!(Status::from_bytes([0, 0x42]), Status::Success);
    }
}
