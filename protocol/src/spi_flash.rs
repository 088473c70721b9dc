//! SPI NOR flash facts the flasher and the emulator share: the ESP8266's SPI flash
//! controller registers (through which a host runs a raw flash command with READ_REG and
//! WRITE_REG, as esptool's `run_spiflash_command` does, and which the emulator decodes), the
//! flash instruction opcodes, and the status register bits, among them those that
//! write-protect the array. Opcodes and bits are those of the Winbond W25Q family, which the
//! usual ESP8266 modules carry.

/// Bytes per page-program page: one page program never crosses a page boundary.
pub const PAGE_SIZE: usize = 256;

/// The SPI flash controller, SPI0: register offsets from [`SPI0_BASE`](controller::SPI0_BASE)
/// and their bits.
pub mod controller {
    /// SPI0, wired to the flash chip.
    pub const SPI0_BASE: u32 = 0x6000_0200;
    /// CMD: writing a command bit starts it; the bit reads back clear when it is done.
    pub const CMD: u32 = 0x00;
    /// ADDR: the address of a built-in READ/PP (bits 23:0, byte count in 31:24), or the
    /// MSB-aligned address phase of a user transaction.
    pub const ADDR: u32 = 0x04;
    /// ADDR of a built-in READ/PP: the flash address (24 bits) ...
    pub const ADDR_ADDRESS_MASK: u32 = 0xFF_FFFF;
    /// ... and above it the byte count.
    pub const ADDR_LENGTH_SHIFT: u32 = 24;
    /// RD_STATUS: status registers of RDSR/WRSR.
    pub const RD_STATUS: u32 = 0x10;
    /// USR: which phases a user transaction runs.
    pub const USR: u32 = 0x1C;
    /// USR1: the phases' bit lengths, minus one.
    pub const USR1: u32 = 0x20;
    /// USR2: the command phase: its value and bit length.
    pub const USR2: u32 = 0x24;
    /// W0: the first of the sixteen data words W0..W15.
    pub const W0: u32 = 0x40;
    /// W0..W15: the 64-byte data buffer shared by MOSI and MISO.
    pub const DATA_BUFFER_LEN: usize = 64;

    /// CMD: built-in read (READ).
    pub const CMD_READ: u32 = 1 << 31;
    /// CMD: write enable (WREN).
    pub const CMD_WREN: u32 = 1 << 30;
    /// CMD: write disable (WRDI).
    pub const CMD_WRDI: u32 = 1 << 29;
    /// CMD: read JEDEC ID (RDID).
    pub const CMD_RDID: u32 = 1 << 28;
    /// CMD: read status register 1 (RDSR).
    pub const CMD_RDSR: u32 = 1 << 27;
    /// CMD: write status registers 1 and 2 (WRSR).
    pub const CMD_WRSR: u32 = 1 << 26;
    /// CMD: page program (PP).
    pub const CMD_PP: u32 = 1 << 25;
    /// CMD: sector erase (SE).
    pub const CMD_SE: u32 = 1 << 24;
    /// CMD: 64 KiB block erase (BE).
    pub const CMD_BE: u32 = 1 << 23;
    /// CMD: chip erase (CE).
    pub const CMD_CE: u32 = 1 << 22;
    /// CMD: run the user transaction USR, USR1 and USR2 describe.
    pub const CMD_USR: u32 = 1 << 18;

    /// USR: a command phase.
    pub const USR_COMMAND: u32 = 1 << 31;
    /// USR: an address phase.
    pub const USR_ADDR: u32 = 1 << 30;
    /// USR: a data-in phase.
    pub const USR_MISO: u32 = 1 << 28;
    /// USR: a data-out phase.
    pub const USR_MOSI: u32 = 1 << 27;
    /// USR1: shift of the address phase's bit length minus one (6 bits).
    pub const USR1_ADDR_BITLEN_SHIFT: u32 = 26;
    /// USR1: shift of the data-out phase's bit length minus one (9 bits).
    pub const USR1_MOSI_BITLEN_SHIFT: u32 = 17;
    /// USR1: shift of the data-in phase's bit length minus one (9 bits).
    pub const USR1_MISO_BITLEN_SHIFT: u32 = 8;
    /// USR2: shift of the command phase's bit length minus one (its value is in bits 15:0).
    pub const USR2_COMMAND_BITLEN_SHIFT: u32 = 28;
}

/// Flash instruction opcodes.
pub mod opcode {
    /// Write status register 1 (and 2 when a second data byte follows).
    pub const WRITE_STATUS_1: u8 = 0x01;
    /// Page program: clear bits within one 256-byte page.
    pub const PAGE_PROGRAM: u8 = 0x02;
    /// Read data.
    pub const READ_DATA: u8 = 0x03;
    /// Clear the write enable latch.
    pub const WRITE_DISABLE: u8 = 0x04;
    /// Read status register 1.
    pub const READ_STATUS_1: u8 = 0x05;
    /// Set the write enable latch.
    pub const WRITE_ENABLE: u8 = 0x06;
    /// Fast read (address, then one dummy byte).
    pub const FAST_READ: u8 = 0x0B;
    /// Write status register 3.
    pub const WRITE_STATUS_3: u8 = 0x11;
    /// Read status register 3.
    pub const READ_STATUS_3: u8 = 0x15;
    /// Erase the 4 KiB sector holding the address.
    pub const SECTOR_ERASE: u8 = 0x20;
    /// Write status register 2.
    pub const WRITE_STATUS_2: u8 = 0x31;
    /// Read status register 2.
    pub const READ_STATUS_2: u8 = 0x35;
    /// Make the next status write volatile, without needing the write enable latch.
    pub const VOLATILE_STATUS_WRITE_ENABLE: u8 = 0x50;
    /// Erase the 32 KiB block holding the address.
    pub const BLOCK_ERASE_32K: u8 = 0x52;
    /// Read the SFDP area (address, then one dummy byte).
    pub const READ_SFDP: u8 = 0x5A;
    /// Chip erase, alternative opcode.
    pub const CHIP_ERASE_ALT: u8 = 0x60;
    /// Arm a software reset.
    pub const ENABLE_RESET: u8 = 0x66;
    /// Software reset, if the previous instruction was [`ENABLE_RESET`].
    pub const RESET: u8 = 0x99;
    /// Read the 3-byte JEDEC ID.
    pub const READ_JEDEC_ID: u8 = 0x9F;
    /// Chip erase.
    pub const CHIP_ERASE: u8 = 0xC7;
    /// Erase the 64 KiB block holding the address.
    pub const BLOCK_ERASE_64K: u8 = 0xD8;
    /// Read status registers 1, 2 and 3, in order.
    pub const READ_STATUS: [u8; 3] = [READ_STATUS_1, READ_STATUS_2, READ_STATUS_3];
    /// Write status registers 1, 2 and 3, in order.
    pub const WRITE_STATUS: [u8; 3] = [WRITE_STATUS_1, WRITE_STATUS_2, WRITE_STATUS_3];
}

/// Status register bits, by register.
pub mod status {
    /// SR1: an erase, program or status write is in progress (BUSY/WIP).
    pub const BUSY: u8 = 0x01;
    /// SR1: write enable latch.
    pub const WEL: u8 = 0x02;
    /// SR1: block protect bit 0.
    pub const BP0: u8 = 0x04;
    /// SR1: block protect bit 1.
    pub const BP1: u8 = 0x08;
    /// SR1: block protect bit 2.
    pub const BP2: u8 = 0x10;
    /// SR1: protect from the bottom of the array instead of the top.
    pub const TB: u8 = 0x20;
    /// SR1: the BP bits count 4 KiB sectors instead of blocks.
    pub const SEC: u8 = 0x40;
    /// SR2: security register lock bits LB1-LB3, one-time programmable.
    pub const LOCK_BITS: u8 = 0x38;
    /// SR2: complement protect: protect everything the other bits would leave unprotected.
    pub const CMP: u8 = 0x40;
    /// SR1: the three block-protect bits (BP0..BP2), what the ROM's `SPILock` sets.
    pub const BLOCK_PROTECT: u8 = BP0 | BP1 | BP2;

    /// The bits that choose what a W25Q-style flash protects from writes, with their
    /// datasheet names, as bits of the status word read as register 1 in the low byte and
    /// register 2 in the next.
    pub const PROTECTION_BITS: [(u32, &str); 6] = [
        (BP0 as u32, "BP0"),
        (BP1 as u32, "BP1"),
        (BP2 as u32, "BP2"),
        (TB as u32, "TB"),
        (SEC as u32, "SEC"),
        ((CMP as u32) << 8, "CMP"),
    ];
    /// Any of these set in that status word protects part of the flash (BP0..BP2, or CMP with
    /// them clear: all of it).
    pub const PROTECTING_BITS: u32 = BLOCK_PROTECT as u32 | (CMP as u32) << 8;
}

#[cfg(test)]
mod tests {
    use super::status::*;

    #[test]
    fn protecting_bits_are_the_block_protect_bits_and_cmp() {
        let named: u32 = PROTECTION_BITS.iter().map(|(mask, _)| mask).sum();
        assert_eq!(named, 0x407C);
        assert_eq!(PROTECTING_BITS, 0x401C);
    }
}
