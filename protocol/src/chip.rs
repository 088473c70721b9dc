//! Which ESP8266 answers, and how its eFuses say so: the chip-detect register,
//! the four eFuse words and their layout (variant, embedded flash, MAC), in both
//! directions — [`encode_efuses`] builds the words a chip of a given variant and
//! MAC holds (the emulator), [`decode_efuses`] reads them back (the flasher).
//!
//! Facts from esptool's `targets/esp8266.py`: the ROM's magic value at
//! 0x40001000; the 128 eFuse bits at 0x3FF00050..0x3FF0005C, where bit 4 or
//! bit 80 set means ESP8285, bits 4/121/122/123 give its embedded flash size and
//! bit 5 the high-temperature grade; the MAC's OUI in the fourth word when that
//! word is non-zero, else chosen by a selector in the second word; the SDK's
//! chip ID.

use thiserror::Error;

/// Register read to tell chips apart.
pub const CHIP_DETECT_MAGIC_REG: u32 = 0x4000_1000;
/// Its value on an ESP8266 or ESP8285.
pub const ESP8266_MAGIC: u32 = 0xFFF0_C101;
/// The four eFuse words (esptool's ESP_OTP_MAC0..3), lowest first.
pub const EFUSE_REGS: [u32; 4] = [0x3FF0_0050, 0x3FF0_0054, 0x3FF0_0058, 0x3FF0_005C];

/// OUIs the second word's bits 23:16 select when the fourth word is zero.
const OUI_BY_SELECTOR: [[u8; 3]; 2] = [[0x18, 0xFE, 0x34], [0xAC, 0xD0, 0x74]];

/// eFuse bit numbers (bit n is bit n % 32 of word n / 32).
mod bit {
    /// ESP8285, with 1 or 2 MiB embedded flash.
    pub const ESP8285: u32 = 4;
    /// High-temperature grade.
    pub const HIGH_TEMPERATURE: u32 = 5;
    /// ESP8285, whatever the size bits say.
    pub const ESP8285_ALT: u32 = 80;
    /// Embedded flash size bits.
    pub const FLASH_121: u32 = 121;
    pub const FLASH_122: u32 = 122;
    pub const FLASH_123: u32 = 123;
}

/// The ESP8285's embedded flash, as its eFuses give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmbeddedFlash {
    /// 1 MiB ("08" in the part name).
    OneMiB,
    /// 2 MiB ("16").
    TwoMiB,
    /// 4 MiB.
    FourMiB,
}

impl EmbeddedFlash {
    /// The size in bytes.
    pub fn size(self) -> usize {
        match self {
            EmbeddedFlash::OneMiB => 1 << 20,
            EmbeddedFlash::TwoMiB => 2 << 20,
            EmbeddedFlash::FourMiB => 4 << 20,
        }
    }
}

/// The family member the eFuses describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChipVariant {
    /// ESP8266EX with external flash.
    Esp8266Ex,
    /// ESP8285 with embedded flash (`None`: the size bits name no size).
    Esp8285 {
        /// The embedded flash the size bits give.
        flash: Option<EmbeddedFlash>,
        /// The high-temperature grade ("H" instead of "N").
        high_temperature: bool,
    },
}

impl ChipVariant {
    /// esptool's description, e.g. "ESP8266EX" or "ESP8285H16".
    pub fn description(self) -> &'static str {
        match self {
            ChipVariant::Esp8266Ex => "ESP8266EX",
            ChipVariant::Esp8285 {
                flash,
                high_temperature,
            } => match (flash, high_temperature) {
                (Some(EmbeddedFlash::OneMiB), true) => "ESP8285H08",
                (Some(EmbeddedFlash::OneMiB), false) => "ESP8285N08",
                (Some(EmbeddedFlash::TwoMiB), true) => "ESP8285H16",
                (Some(EmbeddedFlash::TwoMiB), false) => "ESP8285N16",
                _ => "ESP8285",
            },
        }
    }
}

/// What the eFuse words say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EfuseFacts {
    /// The family member.
    pub variant: ChipVariant,
    /// The station MAC.
    pub mac: [u8; 6],
    /// The SDK's `system_get_chip_id()`.
    pub chip_id: u32,
}

/// eFuse words whose OUI selector names no OUI this module knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the eFuse MAC's OUI selector {marker} names no known OUI")]
pub struct UnknownOui {
    /// The selector (second word, bits 23:16).
    pub marker: u8,
}

/// Reads the eFuse words (as read from [`EFUSE_REGS`], lowest first).
pub fn decode_efuses(words: [u32; 4]) -> Result<EfuseFacts, UnknownOui> {
    let bits = words
        .iter()
        .rev()
        .fold(0u128, |acc, &word| (acc << 32) | u128::from(word));
    let set = |n: u32| bits & (1u128 << n) != 0;
    let variant = if set(bit::ESP8285) || set(bit::ESP8285_ALT) {
        let flash = match (
            set(bit::ESP8285),
            set(bit::FLASH_121),
            set(bit::FLASH_122),
            set(bit::FLASH_123),
        ) {
            (true, false, false, false) => Some(EmbeddedFlash::OneMiB),
            (true, false, true, false) | (false, true, false, false) => Some(EmbeddedFlash::TwoMiB),
            (false, true, true, false) => Some(EmbeddedFlash::FourMiB),
            _ => None,
        };
        ChipVariant::Esp8285 {
            flash,
            high_temperature: set(bit::HIGH_TEMPERATURE),
        }
    } else {
        ChipVariant::Esp8266Ex
    };
    let [mac0, mac1, _, mac3] = words;
    let oui = if mac3 != 0 {
        [(mac3 >> 16) as u8, (mac3 >> 8) as u8, mac3 as u8]
    } else {
        let marker = (mac1 >> 16) as u8;
        *OUI_BY_SELECTOR
            .get(usize::from(marker))
            .ok_or(UnknownOui { marker })?
    };
    Ok(EfuseFacts {
        variant,
        mac: [
            oui[0],
            oui[1],
            oui[2],
            (mac1 >> 8) as u8,
            mac1 as u8,
            (mac0 >> 24) as u8,
        ],
        chip_id: (mac0 >> 24) | ((mac1 & 0x00FF_FFFF) << 8),
    })
}

/// The eFuse words of a chip of `variant` with station MAC `mac`: what
/// [`decode_efuses`] reads back as the same variant and MAC.
pub fn encode_efuses(variant: ChipVariant, mac: [u8; 6]) -> [u32; 4] {
    let mut bits = 0u128;
    if let ChipVariant::Esp8285 {
        flash,
        high_temperature,
    } = variant
    {
        let size_bits: &[u32] = match flash {
            Some(EmbeddedFlash::OneMiB) => &[bit::ESP8285],
            Some(EmbeddedFlash::TwoMiB) => &[bit::ESP8285, bit::FLASH_122],
            Some(EmbeddedFlash::FourMiB) => &[bit::ESP8285_ALT, bit::FLASH_121, bit::FLASH_122],
            None => &[bit::ESP8285_ALT],
        };
        for &n in size_bits {
            bits |= 1 << n;
        }
        if high_temperature {
            bits |= 1 << bit::HIGH_TEMPERATURE;
        }
    }
    let word = |index: u32| (bits >> (32 * index)) as u32;
    let mac0 = word(0) | u32::from(mac[5]) << 24;
    let mut mac1 = word(1) | u32::from(mac[3]) << 8 | u32::from(mac[4]);
    let oui = [mac[0], mac[1], mac[2]];
    let selector = OUI_BY_SELECTOR.iter().position(|&known| known == oui);
    let mac3 = match selector {
        Some(selector) if word(3) == 0 => {
            mac1 |= (selector as u32) << 16;
            0
        }
        _ => {
            let oui_word = u32::from(oui[0]) << 16 | u32::from(oui[1]) << 8 | u32::from(oui[2]);
            // The fourth word must be non-zero for the OUI to be read from it; bit 24 means
            // nothing else.
            match oui_word | word(3) {
                0 => 1 << 24,
                nonzero => nonzero,
            }
        }
    };
    [mac0, mac1, word(2), mac3]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_esp8266_with_espressif_oui() {
        let facts = decode_efuses([0x5A00_0000, 0x0000_1234, 0, 0]).unwrap();
        assert_eq!(facts.variant, ChipVariant::Esp8266Ex);
        assert_eq!(facts.variant.description(), "ESP8266EX");
        assert_eq!(facts.mac, [0x18, 0xFE, 0x34, 0x12, 0x34, 0x5A]);
        assert_eq!(facts.chip_id, 0x0012_345A);
    }

    #[test]
    fn oui_from_the_fourth_word_wins() {
        let facts = decode_efuses([0x0100_0000, 0x0001_0203, 0, 0x00A4_CF12]).unwrap();
        assert_eq!(facts.mac, [0xA4, 0xCF, 0x12, 0x02, 0x03, 0x01]);
    }

    #[test]
    fn esp8285_descriptions_from_flash_size_and_temperature_bits() {
        let describe = |words| decode_efuses(words).unwrap().variant.description();
        // Bit 4 alone: 1 MiB embedded, N (normal temperature).
        assert_eq!(describe([0x10, 0, 0, 0]), "ESP8285N08");
        // Bits 4 and 122 (word 3 bit 26): 2 MiB; bit 5: high temperature.
        assert_eq!(describe([0x30, 0, 0, 1 << 26]), "ESP8285H16");
        // Bit 80 (word 2 bit 16) marks an ESP8285 whose size bits say nothing.
        assert_eq!(describe([0, 0, 1 << 16, 0]), "ESP8285");
    }

    #[test]
    fn unknown_oui_marker_is_an_error() {
        assert_eq!(
            decode_efuses([0, 0x0002_0000, 0, 0]),
            Err(UnknownOui { marker: 2 })
        );
    }

    #[test]
    fn known_oui_on_a_plain_esp8266_uses_the_selector() {
        let words = encode_efuses(ChipVariant::Esp8266Ex, [0xAC, 0xD0, 0x74, 1, 2, 3]);
        assert_eq!(words, [0x0300_0000, 0x0001_0102, 0, 0]);
    }

    fn variants() -> impl Strategy<Value = ChipVariant> {
        let flash = prop_oneof![
            Just(None),
            Just(Some(EmbeddedFlash::OneMiB)),
            Just(Some(EmbeddedFlash::TwoMiB)),
            Just(Some(EmbeddedFlash::FourMiB)),
        ];
        prop_oneof![
            Just(ChipVariant::Esp8266Ex),
            (flash, any::<bool>()).prop_map(|(flash, high_temperature)| ChipVariant::Esp8285 {
                flash,
                high_temperature
            }),
        ]
    }

    fn macs() -> impl Strategy<Value = [u8; 6]> {
        // Half the time one of the OUIs a selector can name, so both paths are taken.
        let oui = prop_oneof![
            Just([0x18, 0xFE, 0x34]),
            Just([0xAC, 0xD0, 0x74]),
            any::<[u8; 3]>(),
        ];
        (oui, any::<[u8; 3]>())
            .prop_map(|(oui, nic)| [oui[0], oui[1], oui[2], nic[0], nic[1], nic[2]])
    }

    proptest! {
        #[test]
        fn decoding_the_encoded_efuses_gives_back_the_variant_and_mac(
            variant in variants(),
            mac in macs(),
        ) {
            let facts = decode_efuses(encode_efuses(variant, mac)).unwrap();
            prop_assert_eq!(facts.variant, variant);
            prop_assert_eq!(facts.mac, mac);
        }
    }
}
