//! The ESP8266's SPI controllers: SPI0 (0x60000200), wired to the flash chip,
//! and SPI1 (HSPI, 0x60000100), wired to nothing here.
//!
//! Two kinds of command start when CMD is written, and their bit reads back
//! cleared at once (every operation completes instantly):
//!
//! - The built-in flash commands the ROM and the flasher stubs use: READ (bit 31),
//!   WREN (30), WRDI (29), RDID (28), RDSR (27), WRSR (26), PP (25), SE (24),
//!   BE (23) and CE (22). READ and PP take the flash address from ADDR bits 23:0
//!   and the byte count from ADDR bits 31:24 (at most 64), their data in W0..W15;
//!   RDID leaves the JEDEC ID in W0; RDSR puts status register 1 in RD_STATUS
//!   (0x10); WRSR writes RD_STATUS bits 15:0 as status registers 1 and 2. One
//!   command per write: the highest bit set.
//! - A "user" transaction, as esptool's `run_spiflash_command` drives it: USR
//!   (0x1C) says which phases run, USR1 (0x20) their bit lengths, USR2 (0x24)
//!   the command, ADDR the MSB-aligned address, W0..W15 data out and in; it runs
//!   when CMD bit 18 is written.
//!
//! Until the flash is attached (the ROM does it on FLASH_BEGIN or
//! `spi_flash_attach`, a stub when it starts) the pins are not routed to the
//! chip: nothing reaches it and MISO reads all ones, as on the real part.
//! Not modelled: dual/quad phases, dummy cycles (nothing is shifted for them),
//! DP, RES and HPM (ignored), and any device on SPI1.

use esp_protocol::spi_flash::controller::{
    ADDR, ADDR_ADDRESS_MASK, ADDR_LENGTH_SHIFT, CMD, CMD_BE, CMD_CE, CMD_PP, CMD_RDID, CMD_RDSR,
    CMD_READ, CMD_SE, CMD_USR, CMD_WRDI, CMD_WREN, CMD_WRSR, DATA_BUFFER_LEN, RD_STATUS, USR, USR1,
    USR1_ADDR_BITLEN_SHIFT, USR1_MISO_BITLEN_SHIFT, USR1_MOSI_BITLEN_SHIFT, USR2, USR_ADDR,
    USR_COMMAND, USR_MISO, USR_MOSI, W0,
};

use crate::flash::{opcode, SpiFlash};

/// Bytes of register space a controller decodes.
const BLOCK_LEN: u32 = 0x100;
const BLOCK_WORDS: usize = (BLOCK_LEN / 4) as usize;

/// One controller's registers.
#[derive(Debug, Clone)]
pub(super) struct SpiController {
    registers: [u32; BLOCK_WORDS],
}

impl Default for SpiController {
    fn default() -> Self {
        SpiController {
            registers: [0; BLOCK_WORDS],
        }
    }
}

impl SpiController {
    /// The register at `offset` (inside the block; aligned down).
    pub(super) fn read(&self, offset: u32) -> u32 {
        self.registers[(offset as usize / 4) % BLOCK_WORDS]
    }

    /// Stores a register; writing CMD runs the command it names on `flash`, which is
    /// `None` when no flash is attached (nothing answers; MISO reads all ones).
    pub(super) fn write(&mut self, offset: u32, value: u32, flash: Option<&mut SpiFlash>) {
        let index = (offset as usize / 4) % BLOCK_WORDS;
        if index == (CMD / 4) as usize {
            self.run_command(value, flash);
            // Every command bit self-clears when its operation is done, which is at once here.
            self.registers[0] = 0;
        } else {
            self.registers[index] = value;
        }
    }

    fn run_command(&mut self, command: u32, flash: Option<&mut SpiFlash>) {
        let highest = match command.checked_ilog2() {
            Some(bit) => 1 << bit,
            None => return,
        };
        let address = self.read(ADDR) & ADDR_ADDRESS_MASK;
        let length = ((self.read(ADDR) >> ADDR_LENGTH_SHIFT) as usize).min(DATA_BUFFER_LEN);
        let mut wire = Wire(flash);
        match highest {
            CMD_READ => {
                let mut data = [0; DATA_BUFFER_LEN];
                wire.transfer(opcode::READ_DATA, Some(address), &[], &mut data[..length]);
                self.store_miso(&data[..length]);
            }
            CMD_WREN => wire.transfer(opcode::WRITE_ENABLE, None, &[], &mut []),
            CMD_WRDI => wire.transfer(opcode::WRITE_DISABLE, None, &[], &mut []),
            CMD_RDID => {
                let mut id = [0; 3];
                wire.transfer(opcode::READ_JEDEC_ID, None, &[], &mut id);
                self.store_miso(&id);
            }
            CMD_RDSR => {
                let mut status = [0];
                wire.transfer(opcode::READ_STATUS_1, None, &[], &mut status);
                self.registers[(RD_STATUS / 4) as usize] = u32::from(status[0]);
            }
            CMD_WRSR => {
                let status = self.read(RD_STATUS).to_le_bytes();
                wire.transfer(opcode::WRITE_STATUS_1, None, &status[..2], &mut []);
            }
            CMD_PP => {
                let data = self.data_buffer();
                wire.transfer(
                    opcode::PAGE_PROGRAM,
                    Some(address),
                    &data[..length],
                    &mut [],
                );
            }
            CMD_SE => wire.transfer(opcode::SECTOR_ERASE, Some(address), &[], &mut []),
            CMD_BE => wire.transfer(opcode::BLOCK_ERASE_64K, Some(address), &[], &mut []),
            CMD_CE => wire.transfer(opcode::CHIP_ERASE, None, &[], &mut []),
            CMD_USR => self.run_user_transaction(&mut wire),
            // DP, RES, HPM and the undefined bits.
            _ => {}
        }
    }

    fn run_user_transaction(&mut self, wire: &mut Wire<'_>) {
        let usr = self.read(USR);
        let usr1 = self.read(USR1);
        if usr & USR_COMMAND == 0 {
            return;
        }
        let command = self.read(USR2) as u8;
        let address = (usr & USR_ADDR != 0).then(|| {
            let bits = ((usr1 >> USR1_ADDR_BITLEN_SHIFT) + 1).min(32);
            self.read(ADDR) >> (32 - bits)
        });
        let mosi_len = phase_bytes(usr & USR_MOSI != 0, usr1 >> USR1_MOSI_BITLEN_SHIFT);
        let miso_len = phase_bytes(usr & USR_MISO != 0, usr1 >> USR1_MISO_BITLEN_SHIFT);
        let buffer = self.data_buffer();
        let mut miso = [0; DATA_BUFFER_LEN];
        wire.transfer(command, address, &buffer[..mosi_len], &mut miso[..miso_len]);
        self.store_miso(&miso[..miso_len]);
    }

    /// W0..W15 as bytes.
    fn data_buffer(&self) -> [u8; DATA_BUFFER_LEN] {
        let mut buffer = [0; DATA_BUFFER_LEN];
        let words = &self.registers[(W0 / 4) as usize..];
        for (chunk, word) in buffer.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        buffer
    }

    /// Puts the bytes shifted in at the start of W0..W15; the rest keeps its contents.
    fn store_miso(&mut self, miso: &[u8]) {
        let mut buffer = self.data_buffer();
        buffer[..miso.len()].copy_from_slice(miso);
        let words = &mut self.registers[(W0 / 4) as usize..];
        for (word, chunk) in words.iter_mut().zip(buffer.chunks_exact(4)) {
            *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
    }
}

/// The controller's pins: the attached flash chip, or nothing.
struct Wire<'a>(Option<&'a mut SpiFlash>);

impl Wire<'_> {
    fn transfer(&mut self, command: u8, address: Option<u32>, mosi: &[u8], miso: &mut [u8]) {
        match self.0.as_deref_mut() {
            Some(flash) => flash.spi_transaction(command, address, mosi, miso),
            None => miso.fill(0xFF),
        }
    }
}

/// Bytes a data phase moves: its 9-bit "length minus one" field rounded up to bytes.
fn phase_bytes(enabled: bool, length_field: u32) -> usize {
    if !enabled {
        return 0;
    }
    let bits = (length_field & 0x1FF) as usize + 1;
    bits.div_ceil(8).min(DATA_BUFFER_LEN)
}
