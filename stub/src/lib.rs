//! `esp-stub` is flashlab's own flasher stub for the ESP8266: a small C program (`c/`) that
//! the ROM loader places in RAM and starts, which then speaks esptool's stub protocol over
//! UART0. This crate holds its source, the image built from it ([`IMAGE_JSON`], committed, so
//! building esp-flasher needs no Xtensa toolchain) and [`image_json`], which turns a linked
//! build into that image. `cargo run -p esp-stub --example rebuild` rebuilds it with Debian's
//! `gcc-xtensa-lx106`; the test `committed_image` checks that the source still builds to it.
//!
//! The same source built with `STUB_FIRST_STAGE` is the first-stage loader
//! ([`FIRST_STAGE_JSON`]): SYNC, READ_REG, CHANGE_BAUDRATE and the MEM commands, small enough
//! that the ROM's 115200 baud carries it in a tenth of the time, after which the host switches
//! the rate and sends the full stub through it. [`IMAGE_JSON`] stays the single-stage stub any
//! host (esptool's `--stub-file`) can upload through the ROM.

use base64::Engine as _;

pub mod facts;

/// The stub image in esptool's JSON stub format (`entry`, `text`/`text_start`,
/// `data`/`data_start`, `bss_start`; the bytes in base64), as `--stub-file` takes it.
pub const IMAGE_JSON: &str = include_str!("../esp8266.json");

/// Where the committed image lives, relative to this crate.
pub const IMAGE_PATH: &str = "esp8266.json";

/// The first-stage loader's image, in the same format.
pub const FIRST_STAGE_JSON: &str = include_str!("../esp8266-first-stage.json");

/// Where the committed first-stage image lives, relative to this crate.
pub const FIRST_STAGE_PATH: &str = "esp8266-first-stage.json";

/// IRAM, where the stub's code goes.
const IRAM: std::ops::Range<u32> = 0x4010_0000..0x4011_0000;
/// DRAM, where its constants and data go.
const DRAM: std::ops::Range<u32> = 0x3FFE_8000..0x4000_0000;

/// The image JSON for a linked stub: its loadable segments (address, bytes), entry point and
/// the start of its `.bss`. There must be one segment in IRAM (the code) and at most one in
/// DRAM (the data); the output is the same for the same input, byte for byte.
pub fn image_json(segments: &[(u32, &[u8])], entry: u32, bss_start: u32) -> Result<String, String> {
    let mut text = None;
    let mut data = None;
    for &(address, bytes) in segments {
        let slot = if IRAM.contains(&address) {
            &mut text
        } else if DRAM.contains(&address) {
            &mut data
        } else {
            return Err(format!(
                "a segment at {address:#010x} is neither in IRAM nor in DRAM"
            ));
        };
        if slot.replace((address, bytes)).is_some() {
            return Err(format!(
                "a second segment in the same memory at {address:#010x}"
            ));
        }
    }
    let (text_start, text) = text.ok_or("no code segment in IRAM")?;
    let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut json = format!(
        "{{\n    \"entry\": {entry},\n    \"text\": \"{}\",\n    \"text_start\": {text_start},\n",
        base64(text)
    );
    if let Some((data_start, data)) = data {
        json.push_str(&format!(
            "    \"data\": \"{}\",\n    \"data_start\": {data_start},\n",
            base64(data)
        ));
    }
    json.push_str(&format!("    \"bss_start\": {bss_start}\n}}\n"));
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_json_names_each_segment_by_its_memory() {
        let json = image_json(
            &[(0x4010_C000, b"code"), (0x3FFE_8000, b"data")],
            0x4010_C010,
            0x3FFE_8004,
        )
        .unwrap();
        assert!(json.contains("\"text\": \"Y29kZQ==\""));
        assert!(json.contains("\"text_start\": 1074839552"));
        assert!(json.contains("\"data\": \"ZGF0YQ==\""));
        assert!(json.contains("\"entry\": 1074839568"));
    }

    #[test]
    fn image_json_refuses_a_segment_outside_ram() {
        let error = image_json(&[(0x4020_0000, b"flash")], 0, 0).unwrap_err();
        assert!(error.contains("0x40200000"), "{error}");
    }
}
