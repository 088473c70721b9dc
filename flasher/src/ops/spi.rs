//! Raw SPI flash commands through the ESP8266's SPI peripheral registers, as
//! esptool's `run_spiflash_command` does: works on the ROM loader too, since
//! it only needs READ_REG and WRITE_REG.

use esp_protocol::spi_flash::controller::{
    CMD, CMD_USR, DATA_BUFFER_LEN, SPI0_BASE, USR, USR1, USR1_MISO_BITLEN_SHIFT,
    USR1_MOSI_BITLEN_SHIFT, USR2, USR2_COMMAND_BITLEN_SHIFT, USR_COMMAND, USR_MISO, USR_MOSI, W0,
};
use esp_protocol::spi_flash::opcode::{
    READ_JEDEC_ID, READ_STATUS, VOLATILE_STATUS_WRITE_ENABLE, WRITE_DISABLE, WRITE_ENABLE,
    WRITE_STATUS,
};

use crate::error::{Error, Result};
use crate::flasher::Flasher;
use crate::transport::Transport;

/// esptool polls the busy bit this many times before giving up.
const BUSY_POLLS: usize = 10;

/// The RDID word as read from W0 (first byte lowest) to the usual 0xMMTTCC form.
pub fn jedec_from_w0(w0: u32) -> u32 {
    ((w0 & 0xFF) << 16) | (w0 & 0xFF00) | ((w0 >> 16) & 0xFF)
}

impl<T: Transport> Flasher<T> {
    /// Runs one SPI flash command: sends `command` and `data` (at most 64
    /// bytes), then clocks in `read_bits` (at most 32) and returns them.
    pub fn spi_flash_command(&mut self, command: u8, data: &[u8], read_bits: u32) -> Result<u32> {
        assert!(
            read_bits <= 32 && data.len() <= DATA_BUFFER_LEN,
            "SPI command beyond the peripheral's 64-byte buffer"
        );
        let data_bits = data.len() as u32 * 8;
        let old_usr = self.read_reg(SPI0_BASE + USR)?;
        let old_usr2 = self.read_reg(SPI0_BASE + USR2)?;
        let mut flags = USR_COMMAND;
        if read_bits > 0 {
            flags |= USR_MISO;
        }
        if data_bits > 0 {
            flags |= USR_MOSI;
        }
        let lengths = (read_bits.saturating_sub(1) << USR1_MISO_BITLEN_SHIFT)
            | (data_bits.saturating_sub(1) << USR1_MOSI_BITLEN_SHIFT);
        self.write_reg(SPI0_BASE + USR1, lengths, u32::MAX)?;
        self.write_reg(SPI0_BASE + USR, flags, u32::MAX)?;
        self.write_reg(
            SPI0_BASE + USR2,
            (7 << USR2_COMMAND_BITLEN_SHIFT) | command as u32,
            u32::MAX,
        )?;
        if data.is_empty() {
            self.write_reg(SPI0_BASE + W0, 0, u32::MAX)?;
        } else {
            for (index, chunk) in data.chunks(4).enumerate() {
                let mut word = [0u8; 4];
                word[..chunk.len()].copy_from_slice(chunk);
                self.write_reg(
                    SPI0_BASE + W0 + 4 * index as u32,
                    u32::from_le_bytes(word),
                    u32::MAX,
                )?;
            }
        }
        self.write_reg(SPI0_BASE + CMD, CMD_USR, u32::MAX)?;
        let mut done = false;
        for _ in 0..BUSY_POLLS {
            if self.read_reg(SPI0_BASE + CMD)? & CMD_USR == 0 {
                done = true;
                break;
            }
        }
        if !done {
            return Err(Error::SpiCommandStuck { command });
        }
        let result = self.read_reg(SPI0_BASE + W0)?;
        self.write_reg(SPI0_BASE + USR, old_usr, u32::MAX)?;
        self.write_reg(SPI0_BASE + USR2, old_usr2, u32::MAX)?;
        Ok(match read_bits {
            32 => result,
            bits => result & ((1u32 << bits) - 1),
        })
    }

    /// The flash's JEDEC ID (RDID), as 0xMMTTCC: manufacturer, type, capacity.
    pub fn read_jedec_id(&mut self) -> Result<u32> {
        Ok(jedec_from_w0(self.spi_flash_command(
            READ_JEDEC_ID,
            &[],
            24,
        )?))
    }

    /// Status registers 1..=`count` (at most 3), register 1 in the low byte.
    pub fn read_flash_status(&mut self, count: usize) -> Result<u32> {
        let mut status = 0;
        for (index, &command) in READ_STATUS.iter().take(count).enumerate() {
            status |= self.spi_flash_command(command, &[], 8)? << (8 * index);
        }
        Ok(status)
    }

    /// Writes status registers 1..=`count` (at most 3) as esptool does: a
    /// 16-bit WRSR for two registers, then each register on its own.
    /// `non_volatile` uses WREN instead of the volatile write enable.
    pub fn write_flash_status(
        &mut self,
        value: u32,
        count: usize,
        non_volatile: bool,
    ) -> Result<()> {
        let enable = if non_volatile {
            WRITE_ENABLE
        } else {
            VOLATILE_STATUS_WRITE_ENABLE
        };
        if count == 2 {
            self.spi_flash_command(enable, &[], 0)?;
            self.spi_flash_command(WRITE_STATUS[0], &(value as u16).to_le_bytes(), 0)?;
        }
        for (index, &command) in WRITE_STATUS.iter().take(count).enumerate() {
            self.spi_flash_command(enable, &[], 0)?;
            self.spi_flash_command(command, &[(value >> (8 * index)) as u8], 0)?;
        }
        self.spi_flash_command(WRITE_DISABLE, &[], 0)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdid_bytes_become_manufacturer_first() {
        // A Winbond W25Q32 sends EF 40 16; W0 holds them lowest byte first.
        assert_eq!(jedec_from_w0(0x0016_40EF), 0x00EF_4016);
    }
}
