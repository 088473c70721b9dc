//! Which chip answers, from the eFuses esp-protocol's `chip` module decodes (the
//! same layout the emulator encodes with).

use std::fmt;

use esp_protocol::chip::{decode_efuses, ChipVariant, UnknownOui};
pub use esp_protocol::chip::{CHIP_DETECT_MAGIC_REG, EFUSE_REGS, ESP8266_MAGIC};

/// The chip family member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChipKind {
    /// ESP8266EX with external flash.
    Esp8266Ex,
    /// ESP8285 with embedded flash (dout only).
    Esp8285,
}

impl ChipKind {
    /// What the chip has, as esptool lists it under "Features".
    pub fn features(self) -> &'static [&'static str] {
        match self {
            ChipKind::Esp8266Ex => &["WiFi"],
            ChipKind::Esp8285 => &["WiFi", "Embedded Flash"],
        }
    }
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
    /// Decodes the eFuse words read from [`EFUSE_REGS`] (the crate's `Error` converts the
    /// error; this module depends on no other, so that chip, error and progress form no cycle).
    pub fn from_efuses(efuses: [u32; 4]) -> Result<ChipInfo, UnknownOui> {
        let facts = decode_efuses(efuses)?;
        Ok(ChipInfo {
            kind: match facts.variant {
                ChipVariant::Esp8266Ex => ChipKind::Esp8266Ex,
                ChipVariant::Esp8285 { .. } => ChipKind::Esp8285,
            },
            description: facts.variant.description().to_string(),
            mac: facts.mac,
            chip_id: facts.chip_id,
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

/// `aa:bb:cc:dd:ee:ff` (by hand: the hex crate has no separator).
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The layout itself is tested in esp-protocol; these check what the flasher makes of it.
    #[test]
    fn efuses_become_kind_description_and_mac_string() {
        let info = ChipInfo::from_efuses([0x5A00_0000, 0x0000_1234, 0, 0]).unwrap();
        assert_eq!(info.to_string(), "ESP8266EX (MAC 18:fe:34:12:34:5a)");
        assert_eq!(
            (info.kind, info.chip_id),
            (ChipKind::Esp8266Ex, 0x0012_345A)
        );
        let info = ChipInfo::from_efuses([0x30, 0, 0, 1 << 26]).unwrap();
        assert_eq!(
            (info.kind, info.description.as_str()),
            (ChipKind::Esp8285, "ESP8285H16")
        );
    }

    #[test]
    fn unknown_oui_marker_is_an_error() {
        assert!(matches!(
            ChipInfo::from_efuses([0, 0x0002_0000, 0, 0]),
            Err(UnknownOui { marker: 2 })
        ));
    }
}
