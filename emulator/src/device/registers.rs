//! The chip's address space as the serial loader sees it through READ_REG,
//! WRITE_REG and MEM_*: the chip-detect magic in ROM, the eFuse words that
//! carry the MAC and the chip variant, the UART clock divider, the SPI flash
//! controller, instruction and data RAM, and a sparse store for every other
//! register (unknown addresses read as 0).

use std::collections::HashMap;

use super::spi::{SpiController, SPI_BASE, SPI_BLOCK_LEN};
use super::Chip;
use crate::flash::SpiFlash;

/// Address esptool reads to tell the chips apart.
pub(crate) const CHIP_DETECT_MAGIC_ADDR: u32 = 0x4000_1000;
/// The ESP8266's value at [`CHIP_DETECT_MAGIC_ADDR`].
pub(crate) const CHIP_DETECT_MAGIC: u32 = 0xFFF0_C101;
/// First of the four eFuse words (esptool's ESP_OTP_MAC0).
pub(crate) const EFUSE_BASE: u32 = 0x3FF0_0050;
/// UART0's clock divider: the UART clock divided by the baud rate.
pub(crate) const UART_CLKDIV: u32 = 0x6000_0014;
/// The UART clock in download mode: twice the 26 MHz crystal (esptool divides by 2).
const UART_CLOCK_HZ: u64 = 52_000_000;

/// Data RAM (esptool's "DRAM" region).
const DRAM: std::ops::Range<u32> = 0x3FFE_8000..0x4000_0000;
/// Instruction RAM, including the 32 KiB the stubs load into while the cache is off.
const IRAM: std::ops::Range<u32> = 0x4010_0000..0x4011_0000;

/// OUIs the eFuse can select with MAC1 bits 23:16 instead of storing them in MAC3.
const OUI_BY_SELECTOR: [[u8; 3]; 2] = [[0x18, 0xFE, 0x34], [0xAC, 0xD0, 0x74]];

/// The eFuse words at 0x3FF00050, 54, 58 and 5C for a chip, its MAC and its embedded flash.
///
/// They are the inverse of esptool's `targets/esp8266.py`: `read_mac` takes the OUI from
/// MAC3 when that word is non-zero, else from a selector in MAC1; the last three bytes are
/// MAC1[15:8], MAC1[7:0], MAC0[31:24]. `get_chip_description` sees an ESP8285 when bit 4 or
/// bit 80 is set, reads the embedded flash size from bits 4, 121 and 122, and the
/// high-temperature grade from bit 5.
pub(crate) fn efuse_words(chip: Chip, mac: [u8; 6], flash_size: usize) -> [u32; 4] {
    const MIB: usize = 1 << 20;
    let mut mac0 = u32::from(mac[5]) << 24;
    let mut mac1 = u32::from(mac[3]) << 8 | u32::from(mac[4]);
    let mut word2 = 0;
    let mut mac3_flags = 0;
    if chip != Chip::Esp8266Ex {
        match flash_size {
            // r0_4 set, r3_25 clear: r3_26 picks 1 MiB ("08") or 2 MiB ("16").
            MIB => mac0 |= 1 << 4,
            s if s == 2 * MIB => {
                mac0 |= 1 << 4;
                mac3_flags |= 1 << 26;
            }
            // Any other size: bit 80 marks the ESP8285, r3_25 + r3_26 say 4 MiB.
            _ => {
                word2 |= 1 << 16;
                mac3_flags |= 1 << 25 | 1 << 26;
            }
        }
        if chip == Chip::Esp8285HighTemperature {
            mac0 |= 1 << 5;
        }
    }
    let oui = [mac[0], mac[1], mac[2]];
    let selector = OUI_BY_SELECTOR.iter().position(|&known| known == oui);
    let mac3 = match selector {
        Some(selector) if mac3_flags == 0 => {
            mac1 |= (selector as u32) << 16;
            0
        }
        _ => {
            let oui_word = u32::from(oui[0]) << 16 | u32::from(oui[1]) << 8 | u32::from(oui[2]);
            let word = oui_word | mac3_flags;
            // MAC3 must be non-zero for esptool to take the OUI from it; bit 24 means nothing else.
            if word == 0 {
                1 << 24
            } else {
                word
            }
        }
    };
    [mac0, mac1, word2, mac3]
}

/// The UART clock divider register for a baud rate on a 26 MHz crystal.
pub(crate) fn uart_clkdiv(baud: u32) -> u32 {
    let baud = u64::from(baud.max(1));
    ((UART_CLOCK_HZ + baud / 2) / baud) as u32 & 0xF_FFFF
}

/// Why a RAM access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutsideRam;

/// Everything READ_REG, WRITE_REG and MEM_DATA reach.
#[derive(Debug, Clone)]
pub(crate) struct AddressSpace {
    efuses: [u32; 4],
    dram: Vec<u8>,
    iram: Vec<u8>,
    other: HashMap<u32, u32>,
    pub(crate) spi: SpiController,
}

impl AddressSpace {
    /// A freshly reset chip with these eFuse words.
    pub(crate) fn new(efuses: [u32; 4]) -> AddressSpace {
        AddressSpace {
            efuses,
            dram: vec![0; DRAM.len()],
            iram: vec![0; IRAM.len()],
            other: HashMap::new(),
            spi: SpiController::default(),
        }
    }

    /// Reads the 32-bit word holding `address` (aligned down).
    pub(crate) fn read(&self, address: u32, uart_baud: u32) -> u32 {
        let address = address & !3;
        match address {
            CHIP_DETECT_MAGIC_ADDR => CHIP_DETECT_MAGIC,
            a if (EFUSE_BASE..EFUSE_BASE + 16).contains(&a) => {
                self.efuses[((a - EFUSE_BASE) / 4) as usize]
            }
            UART_CLKDIV => uart_clkdiv(uart_baud),
            a if (SPI_BASE..SPI_BASE + SPI_BLOCK_LEN).contains(&a) => self.spi.read(a - SPI_BASE),
            a => match self.ram(a, 4) {
                Some(bytes) => u32::from_le_bytes(bytes.try_into().expect("4 bytes")),
                None => self.other.get(&a).copied().unwrap_or(0),
            },
        }
    }

    /// Writes the bits of `value` selected by `mask`; an SPI command runs on `flash` if attached.
    ///
    /// ROM, eFuses and the clock divider (derived from the baud rate) ignore writes.
    pub(crate) fn write(
        &mut self,
        address: u32,
        value: u32,
        mask: u32,
        flash: &mut SpiFlash,
        attached: bool,
    ) {
        let address = address & !3;
        let merged = (self.read(address, 0) & !mask) | (value & mask);
        match address {
            CHIP_DETECT_MAGIC_ADDR | UART_CLKDIV => {}
            a if (EFUSE_BASE..EFUSE_BASE + 16).contains(&a) => {}
            a if (SPI_BASE..SPI_BASE + SPI_BLOCK_LEN).contains(&a) => {
                self.spi.write(a - SPI_BASE, merged, flash, attached);
            }
            a => match self.ram_mut(a, 4) {
                Some(bytes) => bytes.copy_from_slice(&merged.to_le_bytes()),
                None => {
                    self.other.insert(a, merged);
                }
            },
        }
    }

    /// Copies `data` to RAM at `address`; fails unless all of it lands in one RAM region.
    pub(crate) fn write_ram(&mut self, address: u32, data: &[u8]) -> Result<(), OutsideRam> {
        let target = self.ram_mut(address, data.len()).ok_or(OutsideRam)?;
        target.copy_from_slice(data);
        Ok(())
    }

    /// True when `len` bytes at `address` lie in one RAM region.
    pub(crate) fn is_ram(&self, address: u32, len: usize) -> bool {
        self.ram(address, len).is_some()
    }

    fn ram(&self, address: u32, len: usize) -> Option<&[u8]> {
        let (start, region) = [(DRAM.start, &self.dram), (IRAM.start, &self.iram)]
            .into_iter()
            .find(|(start, region)| {
                address >= *start && ((address - start) as usize) < region.len()
            })?;
        let offset = (address - start) as usize;
        region.get(offset..offset.checked_add(len)?)
    }

    fn ram_mut(&mut self, address: u32, len: usize) -> Option<&mut [u8]> {
        let (start, region) = [(DRAM.start, &mut self.dram), (IRAM.start, &mut self.iram)]
            .into_iter()
            .find(|(start, region)| {
                address >= *start && ((address - *start) as usize) < region.len()
            })?;
        let offset = (address - start) as usize;
        region.get_mut(offset..offset.checked_add(len)?)
    }
}
