//! Erasing and hashing flash: ERASE_FLASH, ERASE_REGION and SPI_FLASH_MD5,
//! all stub commands (the ESP8266 ROM has none of them).

use esp_protocol::packet::{Command, Opcode, MAX_MD5_PIECES};
use esp_protocol::rom_erase::SECTOR_SIZE;
use esp_protocol::status::ErrorCode;
use md5::{Digest, Md5};

use crate::connection::{
    timeout_per_mb, CHIP_ERASE_TIMEOUT, ERASE_SECONDS_PER_MB, MD5_SECONDS_PER_MB,
};
use crate::error::{Error, Result};
use crate::flasher::Flasher;
use crate::progress::Event;
use crate::transport::Transport;

/// MD5 of `data`.
pub fn md5_of(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

impl<T: Transport> Flasher<T> {
    /// Refuses a region that does not fit in the flash.
    pub fn check_in_flash(&self, address: u32, size: u64) -> Result<()> {
        let flash_size = self.flash_size()?;
        if address as u64 + size > flash_size as u64 {
            return Err(Error::RegionPastEnd {
                address,
                size,
                flash_size,
            });
        }
        Ok(())
    }

    /// Erases the whole flash.
    pub fn erase_flash(&mut self) -> Result<()> {
        self.require_stub("erase_flash")?;
        self.connection
            .command(&Command::EraseFlash, CHIP_ERASE_TIMEOUT)?;
        let size = self.flash_info().size.unwrap_or(0);
        self.report(Event::Erased { address: 0, size });
        Ok(())
    }

    /// Erases `size` bytes at `address`, both multiples of the 4 KiB sector.
    pub fn erase_region(&mut self, address: u32, size: u32) -> Result<()> {
        if !address.is_multiple_of(SECTOR_SIZE) || !size.is_multiple_of(SECTOR_SIZE) {
            return Err(Error::Unaligned {
                address,
                size,
                sector_size: SECTOR_SIZE,
            });
        }
        self.require_stub("erase_region")?;
        self.check_in_flash(address, size as u64)?;
        let timeout = timeout_per_mb(ERASE_SECONDS_PER_MB, size);
        self.connection
            .command(&Command::EraseRegion { address, size }, timeout)?;
        self.report(Event::Erased { address, size });
        Ok(())
    }

    /// The device's MD5 of `size` bytes of flash at `address`.
    pub fn flash_md5(&mut self, address: u32, size: u32) -> Result<[u8; 16]> {
        self.require_stub("MD5 verification")?;
        let command = Command::SpiFlashMd5 { address, size };
        let response = self
            .connection
            .command(&command, timeout_per_mb(MD5_SECONDS_PER_MB, size))?;
        parse_md5_response(&response.data)
    }

    /// The MD5 of each `unit`-byte piece of `size` bytes at `address`, in one request per
    /// [`MAX_MD5_PIECES`] pieces (SPI_FLASH_MD5_PIECES, flashlab's stub); `None` when the
    /// stub does not have that command (esptool's), and the caller asks piece by piece.
    pub fn flash_md5_pieces(
        &mut self,
        address: u32,
        size: u32,
        unit: u32,
    ) -> Result<Option<Vec<[u8; 16]>>> {
        self.require_stub("MD5 verification")?;
        if self.md5_pieces == Some(false) || unit == 0 {
            return Ok(None);
        }
        let batch = unit.saturating_mul(MAX_MD5_PIECES);
        let mut digests = Vec::new();
        let mut done = 0;
        while done < size {
            let piece_size = batch.min(size - done);
            let command = Command::SpiFlashMd5Pieces {
                address: address + done,
                size: piece_size,
                unit,
            };
            let response = match self
                .connection
                .command(&command, timeout_per_mb(MD5_SECONDS_PER_MB, piece_size))
            {
                Ok(response) => response,
                Err(Error::Device {
                    code: ErrorCode::CommandNotImplemented | ErrorCode::InvalidCommand,
                    ..
                }) => {
                    self.md5_pieces = Some(false);
                    return Ok(None);
                }
                Err(other) => return Err(other),
            };
            let expected = piece_size.div_ceil(unit) as usize;
            if response.data.len() != 16 * expected {
                return Err(Error::UnexpectedResponse {
                    opcode: Opcode::SpiFlashMd5Pieces,
                    expected: format!("{expected} digests of 16 bytes"),
                    got: format!("{} bytes", response.data.len()),
                });
            }
            digests.extend(
                response
                    .data
                    .chunks_exact(16)
                    .map(|digest| <[u8; 16]>::try_from(digest).expect("16 bytes")),
            );
            done += piece_size;
        }
        self.md5_pieces = Some(true);
        Ok(Some(digests))
    }

    /// Checks that the flash at `address` holds `data`, by MD5.
    pub fn verify(&mut self, address: u32, data: &[u8]) -> Result<()> {
        let on_flash = self.flash_md5(address, data.len() as u32)?;
        let expected = md5_of(data);
        if on_flash != expected {
            return Err(Error::VerifyFailed {
                address,
                size: data.len(),
                expected: hex::encode(expected),
                got: hex::encode(on_flash),
            });
        }
        self.report(Event::Verified {
            address,
            size: data.len(),
        });
        Ok(())
    }
}

/// A stub sends the digest as 16 raw bytes; a ROM that has the command, as 32 hex digits.
fn parse_md5_response(data: &[u8]) -> Result<[u8; 16]> {
    let unexpected = || Error::UnexpectedResponse {
        opcode: Opcode::SpiFlashMd5,
        expected: "a 16-byte digest".into(),
        got: format!("{} bytes: {}", data.len(), hex::encode(data)),
    };
    match data.len() {
        16 => Ok(data.try_into().expect("16 bytes")),
        32 => {
            let mut digest = [0u8; 16];
            hex::decode_to_slice(data, &mut digest).map_err(|_| unexpected())?;
            Ok(digest)
        }
        _ => Err(unexpected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_replies_in_both_forms() {
        let digest = md5_of(b"abc");
        assert_eq!(parse_md5_response(&digest).unwrap(), digest);
        assert_eq!(
            parse_md5_response(hex::encode(digest).as_bytes()).unwrap(),
            digest
        );
        assert!(matches!(
            parse_md5_response(&[1, 2]),
            Err(Error::UnexpectedResponse { .. })
        ));
    }
}
