//! Deterministic firmware-like flash contents: what the built-in virtual
//! device holds when no flash file is given, and what benchmarks write.
//!
//! Real ESP8266 firmware compresses to about half its size with zlib (the
//! seed tutorial: 1048576 bytes to 499096). Zeros or random bytes would make
//! compressed writes look far better or worse than they are, so this module
//! builds a valid version-1 image header followed by "code" drawn from a
//! skewed vocabulary of 24-bit instruction words with random literals and
//! string tables mixed in, which zlib squeezes to a similar ratio.

use esp_protocol::flash_params::{FlashFreq, FlashMode, FlashParams, FlashSize};
use esp_protocol::image::{Image, Segment};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::boot::{SDK_INIT_DATA_FROM_END, SDK_INIT_DATA_MAGIC};
use crate::flash::SECTOR_SIZE;

const WORDS: &[&str] = &[
    "wifi", "mqtt", "relay", "button", "power", "status", "config", "topic", "sonoff", "connect",
    "timeout", "update", "http", "server", "client", "error", "state", "toggle", "switch",
    "sensor", "%s/%s", "=%d\n",
];

/// A firmware image of exactly `len` bytes: a valid ESP8266 v1 image (IRAM
/// code and DRAM data segments, checksum) followed by irom0 code, as a
/// linked Arduino or SDK firmware lays out its first megabyte.
pub fn firmware_image(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let header = Image {
        flash_params: FlashParams::new(FlashMode::Dout, FlashSize::Size1M, FlashFreq::Freq40M),
        entry: 0x4010_0004,
        segments: vec![
            Segment {
                load_address: 0x4010_0000,
                data: code_like(&mut rng, 0x6000.min(len / 4)),
            },
            Segment {
                load_address: 0x3FFE_8000,
                data: code_like(&mut rng, 0x800.min(len / 16)),
            },
        ],
        v2_prefix: None,
    };
    let mut image = header.build().expect("two small segments always build");
    if image.len() < len {
        let rest = len - image.len();
        image.extend(code_like(&mut rng, rest));
    }
    image.truncate(len);
    image
}

/// A whole flash as a Sonoff leaves the factory: firmware at 0x0 filling
/// about half the flash (at most 1 MiB) with the flash size in its header,
/// erased space, and SDK settings in the last sectors, the first of them the
/// RF init data (which starts with 0x05).
pub fn sonoff_like_flash(flash_size: usize, seed: u64) -> Vec<u8> {
    let mut flash = vec![0xFF; flash_size];
    let firmware_len = (flash_size / 2).min(0x10_0000) - 0x1_0000;
    flash[..firmware_len].copy_from_slice(&firmware_image(firmware_len, seed));
    if let Some(size) = FlashSize::from_bytes(flash_size as u32) {
        flash[3] = (flash[3] & 0x0F) | size.header_bits();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5E77_1265);
    let settings_start = flash_size - SDK_INIT_DATA_FROM_END as usize;
    for sector in flash[settings_start..].chunks_mut(SECTOR_SIZE) {
        let used = 0x200 + (rng.next_u32() as usize % 0x400);
        sector[..used].copy_from_slice(&code_like(&mut rng, used));
    }
    flash[settings_start] = SDK_INIT_DATA_MAGIC;
    flash
}

/// Bytes with the statistics of compiled code: mostly common instruction
/// words, repeated idioms (prologues, call sequences), some literals, and
/// now and then a string.
fn code_like(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    // A vocabulary of instruction words; low indices are far more frequent.
    let vocabulary: Vec<[u8; 3]> = (0..1024)
        .map(|_| {
            let word = rng.next_u32().to_le_bytes();
            [word[0], word[1], word[2]]
        })
        .collect();
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        let roll = rng.next_u32() % 100;
        if roll < 8 && out.len() > 256 {
            let run = 6 + rng.next_u32() as usize % 18;
            let start = out.len() - 256 + rng.next_u32() as usize % (256 - run);
            out.extend_from_within(start..start + run);
        } else if roll < 90 {
            let skew = (rng.next_u32() % 1024) as usize;
            let index = skew * skew / 1024 * (rng.next_u32() % 1024) as usize / 1024;
            out.extend_from_slice(&vocabulary[index]);
        } else if roll < 98 {
            out.extend_from_slice(&rng.next_u32().to_le_bytes());
        } else {
            let word = WORDS[rng.next_u32() as usize % WORDS.len()];
            out.extend_from_slice(word.as_bytes());
            out.push(0);
        }
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflated_len(data: &[u8]) -> usize {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap().len()
    }

    #[test]
    fn image_starts_with_a_valid_header_and_has_the_length_asked() {
        let image = firmware_image(0x10_0000, 1);
        assert_eq!(image.len(), 0x10_0000);
        let parsed = esp_protocol::image::parse(&image).unwrap();
        parsed.verify().unwrap();
        assert_eq!(parsed.image.flash_params.mode().unwrap(), FlashMode::Dout);
    }

    #[test]
    fn compresses_like_real_firmware() {
        let image = firmware_image(0x4_0000, 7);
        let ratio = deflated_len(&image) as f64 / image.len() as f64;
        assert!(
            (0.40..0.70).contains(&ratio),
            "compression ratio {ratio:.2} is not firmware-like"
        );
    }

    #[test]
    fn same_seed_same_bytes() {
        assert_eq!(firmware_image(5000, 3), firmware_image(5000, 3));
        assert_ne!(firmware_image(5000, 3), firmware_image(5000, 4));
    }

    #[test]
    fn sonoff_flash_has_firmware_free_space_and_settings() {
        let flash = sonoff_like_flash(0x10_0000, 1);
        assert_eq!(flash.len(), 0x10_0000);
        assert_eq!(flash[0], 0xE9);
        assert!(flash[0x8_0000..0x8_1000].iter().all(|&b| b == 0xFF));
        assert!(flash[0xFC000..].iter().any(|&b| b != 0xFF));
        assert_eq!(flash[0xFC000], SDK_INIT_DATA_MAGIC);
        let header_size = esp_protocol::image::read_flash_params(&flash)
            .unwrap()
            .size()
            .unwrap();
        assert_eq!(header_size, FlashSize::Size1M);
    }
}
