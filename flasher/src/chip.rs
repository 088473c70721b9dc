//! Which chip answers: the magic register, the eFuses, the MAC.
//!
//! Facts from esptool's `targets/esp8266.py`: the ESP8266 ROM's magic value at
//! 0x40001000, the 128 eFuse bits at 0x3FF00050..0x3FF0005C (bit 4 or bit 80
//! set means ESP8285, bits 4/121/122/123 its embedded flash size, bit 5 the
//! high-temperature part), the MAC OUI markers and the SDK's chip ID.

use std::fmt;

use crate::error::{Error, Result};

/// Register read to tell chips apart.
pub const CHIP_DETECT_MAGIC_REG: u32 = 0x4000_1000;
/// Its value on an ESP8266 or ESP8285.
pub const ESP8266_MAGIC: u32 = 0xFFF0_C101;
/// The four eFuse words, lowest first.
pub const EFUSE_REGS: [u32; 4] = [0x3FF0_0050, 0x3FF0_0054, 0x3FF0_0058, 0x3FF0_005C];

/// The chip family member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChipKind {
    /// ESP8266EX with external flash.
    Esp8266Ex,
    /// ESP8285 with embedded flash (dout only).
    Esp8285,
}

/// What was learned about the connected chip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipInfo {
    /// ESP8266EX or ESP8285.
    pub kind: ChipKind,
    /// esptool's description, e.g. "ESP8285H16".
    pub description: String,
    /// The station MAC.
    pub mac: [u8; 6],
    /// The SDK's `system_get_chip_id()`.
    pub chip_id: u32,
    /// The eFuse words as read, lowest address first.
    pub efuses: [u32; 4],
}

impl ChipInfo {
    /// Decodes the eFuse words read from [`EFUSE_REGS`].
    pub fn from_efuses(efuses: [u32; 4]) -> Result<ChipInfo> {
        let bits = efuse_bits(efuses);
        let bit = |n: u32| bits & (1u128 << n) != 0;
        let is_8285 = bit(4) || bit(80);
        let (kind, description) = if is_8285 {
            let high_temp = bit(5);
            let name = match embedded_flash_megabytes(bits) {
                Some(1) if high_temp => "ESP8285H08",
                Some(1) => "ESP8285N08",
                Some(2) if high_temp => "ESP8285H16",
                Some(2) => "ESP8285N16",
                _ => "ESP8285",
            };
            (ChipKind::Esp8285, name.to_string())
        } else {
            (ChipKind::Esp8266Ex, "ESP8266EX".to_string())
        };
        Ok(ChipInfo {
            kind,
            description,
            mac: mac_from_efuses(efuses)?,
            chip_id: chip_id(efuses),
            efuses,
        })
    }

    /// The MAC as `aa:bb:cc:dd:ee:ff`.
    pub fn mac_string(&self) -> String {
        format_mac(&self.mac)
    }
}

impl fmt::Display for ChipInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (MAC {})", self.description, self.mac_string())
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn efuse_bits(efuses: [u32; 4]) -> u128 {
    efuses
        .iter()
        .rev()
        .fold(0u128, |acc, &word| (acc << 32) | word as u128)
}

/// The ESP8285's embedded flash in MiB, from eFuse bits 4, 121, 122 and 123.
fn embedded_flash_megabytes(bits: u128) -> Option<u32> {
    let bit = |n: u32| bits & (1u128 << n) != 0;
    match (bit(4), bit(121), bit(122), bit(123)) {
        (true, false, false, false) => Some(1),
        (true, false, true, false) => Some(2),
        (false, true, false, false) => Some(2),
        (false, true, true, false) => Some(4),
        _ => None,
    }
}

/// The station MAC: the OUI from the third word if set, else a marker in the second.
fn mac_from_efuses(efuses: [u32; 4]) -> Result<[u8; 6]> {
    let [mac0, mac1, _, mac3] = efuses;
    let oui = if mac3 != 0 {
        [(mac3 >> 16) as u8, (mac3 >> 8) as u8, mac3 as u8]
    } else {
        match (mac1 >> 16) as u8 {
            0 => [0x18, 0xFE, 0x34],
            1 => [0xAC, 0xD0, 0x74],
            marker => return Err(Error::UnknownOui { marker }),
        }
    };
    Ok([
        oui[0],
        oui[1],
        oui[2],
        (mac1 >> 8) as u8,
        mac1 as u8,
        (mac0 >> 24) as u8,
    ])
}

fn chip_id(efuses: [u32; 4]) -> u32 {
    (efuses[0] >> 24) | ((efuses[1] & 0x00FF_FFFF) << 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_esp8266_with_espressif_oui() {
        let info = ChipInfo::from_efuses([0x5A00_0000, 0x0000_1234, 0, 0]).unwrap();
        assert_eq!(info.kind, ChipKind::Esp8266Ex);
        assert_eq!(info.description, "ESP8266EX");
        assert_eq!(info.mac, [0x18, 0xFE, 0x34, 0x12, 0x34, 0x5A]);
        assert_eq!(info.chip_id, 0x0012_345A);
    }

    #[test]
    fn oui_from_the_third_word_wins() {
        let info = ChipInfo::from_efuses([0x0100_0000, 0x0001_0203, 0, 0x00A4_CF12]).unwrap();
        assert_eq!(info.mac_string(), "a4:cf:12:02:03:01");
    }

    #[test]
    fn esp8285_descriptions_from_flash_size_and_temperature_bits() {
        // Bit 4 alone: 1 MiB embedded, N (normal temperature).
        assert_eq!(
            ChipInfo::from_efuses([0x10, 0, 0, 0]).unwrap().description,
            "ESP8285N08"
        );
        // Bits 4 and 122 (word 3 bit 26): 2 MiB; bit 5: high temperature.
        assert_eq!(
            ChipInfo::from_efuses([0x30, 0, 0, 1 << 26])
                .unwrap()
                .description,
            "ESP8285H16"
        );
        // Bit 80 (word 2 bit 16) marks an ESP8285 whose size bits say nothing.
        let info = ChipInfo::from_efuses([0, 0, 1 << 16, 0]).unwrap();
        assert_eq!(
            (info.kind, info.description.as_str()),
            (ChipKind::Esp8285, "ESP8285")
        );
    }

    #[test]
    fn unknown_oui_marker_is_an_error() {
        assert!(matches!(
            ChipInfo::from_efuses([0, 0x0002_0000, 0, 0]),
            Err(Error::UnknownOui { marker: 2 })
        ));
    }
}
