//! The eFuse words that carry the MAC and the chip variant, as the machine
//! (`crate::machine`) shows them at `esp_protocol::chip::EFUSE_REGS`; the layout
//! itself is esp-protocol's, which the flasher decodes with.

use esp_protocol::chip::{encode_efuses, ChipVariant, EmbeddedFlash};

use super::Chip;

/// The eFuse words for a chip, its MAC and its embedded flash: an ESP8285's 1 or 2 MiB are
/// told as such, any other size as 4 MiB.
pub(crate) fn efuse_words(chip: Chip, mac: [u8; 6], flash_size: usize) -> [u32; 4] {
    let flash = match flash_size {
        size if size == EmbeddedFlash::OneMiB.size() => EmbeddedFlash::OneMiB,
        size if size == EmbeddedFlash::TwoMiB.size() => EmbeddedFlash::TwoMiB,
        _ => EmbeddedFlash::FourMiB,
    };
    let variant = match chip {
        Chip::Esp8266Ex => ChipVariant::Esp8266Ex,
        Chip::Esp8285 | Chip::Esp8285HighTemperature => ChipVariant::Esp8285 {
            flash: Some(flash),
            high_temperature: chip == Chip::Esp8285HighTemperature,
        },
    };
    encode_efuses(variant, mac)
}
