//! The eFuse words that carry the MAC and the chip variant, as the machine
//! (`crate::machine`) shows them at 0x3FF00050..5C.

use super::Chip;

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
