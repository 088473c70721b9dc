//! The ESP8266's SPI flash controller (SPI0 at 0x60000200), as far as
//! esptool's `run_spiflash_command` drives it: a "user" transaction is
//! described in USR (which phases), USR1 (bit lengths), USR2 (the command),
//! ADDR (the address, MSB-aligned) and W0..W15 (data out and in), and runs
//! when the USR bit of the CMD register is written; the bit reads back
//! cleared at once. Until the flash is attached (the ROM does it on
//! FLASH_BEGIN, a stub when it starts) the pins are not routed to the chip and
//! MISO reads all ones, as on the real part.
//!
//! Not modelled: the controller's built-in commands (the other CMD bits read
//! back as done and do nothing), and dual/quad phases.

use crate::flash::SpiFlash;

/// Base address of the SPI0 register block.
pub(crate) const SPI_BASE: u32 = 0x6000_0200;
/// Bytes of register space the block decodes.
pub(crate) const SPI_BLOCK_LEN: u32 = 0x100;

const CMD: u32 = 0x00;
const ADDR: u32 = 0x04;
const USR: u32 = 0x1C;
const USR1: u32 = 0x20;
const USR2: u32 = 0x24;
const W0: u32 = 0x40;
/// W0..W15: the 64-byte data buffer shared by MOSI and MISO.
const DATA_BUFFER_LEN: usize = 64;

/// CMD bit that starts a user-defined transaction.
const CMD_USR: u32 = 1 << 18;
/// USR phase bits.
const USR_COMMAND: u32 = 1 << 31;
const USR_ADDR: u32 = 1 << 30;
const USR_MISO: u32 = 1 << 28;
const USR_MOSI: u32 = 1 << 27;

/// The controller's registers.
#[derive(Debug, Clone)]
pub(crate) struct SpiController {
    registers: [u32; (SPI_BLOCK_LEN / 4) as usize],
}

impl Default for SpiController {
    fn default() -> Self {
        SpiController {
            registers: [0; (SPI_BLOCK_LEN / 4) as usize],
        }
    }
}

impl SpiController {
    /// The register at `offset` (word aligned, inside the block).
    pub(crate) fn read(&self, offset: u32) -> u32 {
        self.registers[(offset / 4) as usize]
    }

    /// Stores a register; writing CMD with the USR bit runs the transaction on `flash`.
    pub(crate) fn write(&mut self, offset: u32, value: u32, flash: &mut SpiFlash, attached: bool) {
        if offset == CMD {
            if value & CMD_USR != 0 {
                self.run_user_transaction(flash, attached);
            }
            // Every command bit self-clears when its operation is done, which is at once here.
            self.registers[0] = 0;
        } else {
            self.registers[(offset / 4) as usize] = value;
        }
    }

    fn run_user_transaction(&mut self, flash: &mut SpiFlash, attached: bool) {
        let usr = self.read(USR);
        let usr1 = self.read(USR1);
        if usr & USR_COMMAND == 0 {
            return;
        }
        let command = self.read(USR2) as u8;
        let address = (usr & USR_ADDR != 0).then(|| {
            let bits = ((usr1 >> 26) + 1).min(32);
            self.read(ADDR) >> (32 - bits)
        });
        let mosi_len = phase_bytes(usr & USR_MOSI != 0, usr1 >> 17);
        let miso_len = phase_bytes(usr & USR_MISO != 0, usr1 >> 8);
        let buffer = self.data_buffer();
        let mut miso = [0xFF; DATA_BUFFER_LEN];
        if attached {
            flash.spi_transaction(command, address, &buffer[..mosi_len], &mut miso[..miso_len]);
        }
        // Only the bytes shifted in change; the rest of W0..W15 keeps its contents.
        let mut updated = buffer;
        updated[..miso_len].copy_from_slice(&miso[..miso_len]);
        for (index, word) in updated.chunks_exact(4).enumerate() {
            self.registers[(W0 / 4) as usize + index] =
                u32::from_le_bytes(word.try_into().expect("4 bytes"));
        }
    }

    fn data_buffer(&self) -> [u8; DATA_BUFFER_LEN] {
        let mut buffer = [0; DATA_BUFFER_LEN];
        for (index, chunk) in buffer.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&self.registers[(W0 / 4) as usize + index].to_le_bytes());
        }
        buffer
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
