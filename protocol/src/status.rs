//! Status codes of the ESP8266 ROM loader and of flasher stubs, as one type.
//!
//! Every response ends with two status bytes. The ROM sends `[1, code]` on
//! failure; a stub sends `[code, 0]` (esptool's stubs use codes of 0xC0 and up,
//! the legacy stub also 0x32, 0x33 and 0x63). A first byte of 0 means success.
//! Clients read the pair as a big-endian number (esptool prints "result was
//! 0105" or "result was c100"). Which layout a failure has is part of the
//! [`Status`] ([`StatusLayout`]): it says who answered, not what the code's value is.

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

/// Which program's byte layout a failure's status bytes have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusLayout {
    /// The ROM loader's: `[1, code]`.
    Rom,
    /// A flasher stub's: `[code, 0]`.
    Stub,
}

/// The outcome a response's two status bytes carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The command succeeded.
    Success,
    /// The command failed.
    Failure {
        /// Why.
        code: ErrorCode,
        /// Who said so: the byte layout the status was, or is to be, sent in.
        layout: StatusLayout,
    },
}

impl Status {
    /// A failure as the ROM loader reports it.
    pub fn rom_failure(code: ErrorCode) -> Status {
        Status::Failure {
            code,
            layout: StatusLayout::Rom,
        }
    }

    /// A failure as a flasher stub reports it.
    pub fn stub_failure(code: ErrorCode) -> Status {
        Status::Failure {
            code,
            layout: StatusLayout::Stub,
        }
    }

    /// Reads the two status bytes.
    pub fn from_bytes(bytes: [u8; 2]) -> Status {
        match bytes {
            [0, _] => Status::Success,
            [1, code] => Status::rom_failure(ErrorCode::from_code(code)),
            [code, _] => Status::stub_failure(ErrorCode::from_code(code)),
        }
    }

    /// The two status bytes for this outcome, in its layout.
    pub fn to_bytes(self) -> [u8; 2] {
        match self {
            Status::Success => [0, 0],
            Status::Failure {
                code,
                layout: StatusLayout::Rom,
            } => [1, code.code()],
            Status::Failure {
                code,
                layout: StatusLayout::Stub,
            } => [code.code(), 0],
        }
    }

    /// The failure's code; `None` on success.
    pub fn error_code(self) -> Option<ErrorCode> {
        match self {
            Status::Success => None,
            Status::Failure { code, .. } => Some(code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rom_and_stub_failures_use_their_own_byte_layout() {
        let checksum = ErrorCode::BadDataChecksum;
        assert_eq!(
            Status::rom_failure(ErrorCode::InvalidMessage).to_bytes(),
            [0x01, 0x05]
        );
        assert_eq!(Status::stub_failure(checksum).to_bytes(), [0xC1, 0x00]);
        assert_eq!(Status::Success.to_bytes(), [0, 0]);
    }

    #[test]
    fn regression_legacy_stub_codes_below_0xc0_came_out_in_the_rom_layout() {
        // The legacy stub's 0x32, 0x33 and 0x63 are stub failures: [code, 0], not [1, code].
        for code in [0x32, 0x33, 0x63] {
            let status = Status::stub_failure(ErrorCode::Other(code));
            assert_eq!(status.to_bytes(), [code, 0]);
            assert_eq!(Status::from_bytes([code, 0]), status);
        }
    }

    #[test]
    fn every_named_code_round_trips_in_both_layouts() {
        for code in ErrorCode::ALL_NAMED {
            for status in [Status::rom_failure(code), Status::stub_failure(code)] {
                assert_eq!(Status::from_bytes(status.to_bytes()), status, "{code}");
            }
            assert_eq!(ErrorCode::from_code(code.code()), code);
        }
    }

    #[test]
    fn unknown_codes_are_kept() {
        assert_eq!(
            Status::from_bytes([1, 0x42]),
            Status::rom_failure(ErrorCode::Other(0x42))
        );
        assert_eq!(Status::from_bytes([0, 0x42]), Status::Success);
    }
}
