//! `image_info FILE`: the header, segments and checksums of a firmware image.

use esp_protocol::image::{self, ImageVersion, Segment, StoredCheck};
use esp_protocol::memory_map::{DRAM, FLASH_CACHE, IRAM};
use esp_protocol::peripherals::dport;

use super::files::read_input;
use super::CmdError;
use crate::cli::ImageInfoArgs;
use crate::output::Output;

/// The ESP8266 address ranges esptool names segments by (its own, narrower than the chip's
/// map: IRAM without the 32 KiB the flash cache may use, IROM as the SDK's irom0 from flash
/// offset 0x1010 on, 896 KiB).
const MEMORY_MAP: [(u32, u32, &str); 4] = [
    (dport::BASE, dport::BASE + 0x10, "DPORT"),
    (DRAM.start, DRAM.end, "DRAM"),
    (IRAM.start, IRAM.start + 0x8000, "IRAM"),
    (
        FLASH_CACHE.start + 0x1010,
        FLASH_CACHE.start + 0xE_1010,
        "IROM",
    ),
];

/// Prints what the image header and segments say; a file that is not an image fails.
pub fn run(args: &ImageInfoArgs, out: &Output) -> Result<(), CmdError> {
    let data = read_input(&args.file)?;
    let parsed = image::parse(&data).map_err(|error| CmdError::Failed {
        message: format!("{} is not an ESP8266 image: {error}", args.file.display()),
        remedy: Some("image_info reads application images (first byte 0xE9 or 0xEA), not whole-flash dumps past offset 0.".into()),
    })?;
    let image = &parsed.image;
    out.line(format!("File size: {} bytes", data.len()));
    out.line("");
    out.line("ESP8266 Image Header");
    out.line("====================");
    let version = match image.version() {
        ImageVersion::V1 => 1,
        ImageVersion::V2 => 2,
    };
    out.line(format!("Image version: {version}"));
    if image.entry == 0 {
        out.line("Entry point not set");
    } else {
        out.line(format!("Entry point: {:#010x}", image.entry));
    }
    out.line(format!("Segments: {}", image.segments.len()));
    let params = image.flash_params;
    match params.size() {
        Ok(size) => out.line(format!("Flash size: {size}")),
        Err(_) => out.warn(format!(
            "Invalid flash size ({:#04x})",
            params.size_freq_byte & 0xF0
        )),
    }
    match params.freq() {
        Ok(freq) => out.line(format!("Flash freq: {freq}")),
        Err(_) => out.warn(format!(
            "Invalid flash frequency ({:#03x})",
            params.size_freq_byte & 0x0F
        )),
    }
    match params.mode() {
        Ok(mode) => out.line(format!("Flash mode: {}", mode.name().to_uppercase())),
        Err(_) => out.warn(format!("Invalid flash mode ({})", params.mode_byte)),
    }
    out.line("");
    out.line("Segments Information");
    out.line("====================");
    out.line(format!(
        "{:>7}  {:>7}  {:>10}  {:<12}",
        "Segment", "Length", "Load addr", "Memory types"
    ));
    out.line(format!(
        "{}  {}  {}  {}",
        "-".repeat(7),
        "-".repeat(7),
        "-".repeat(10),
        "-".repeat(12)
    ));
    let irom = image.v2_prefix.as_ref().map(|prefix| &prefix.irom);
    for (index, segment) in irom.into_iter().chain(&image.segments).enumerate() {
        out.line(format!(
            "{index:>7}  {:#07x}  {:#010x}  {}",
            segment.data.len(),
            segment.load_address,
            memory_types(segment)
        ));
    }
    out.line("");
    out.line("ESP8266 Image Footer");
    out.line("====================");
    out.line(format!(
        "Checksum: {:#04x} ({})",
        parsed.checksum.stored,
        validity(&parsed.checksum, |v| format!("{v:#04x}"))
    ));
    if let Some(crc) = &parsed.crc32 {
        out.line(format!(
            "CRC32: {:#010x} ({})",
            crc.stored,
            validity(crc, |v| format!("{v:#010x}"))
        ));
    }
    Ok(())
}

/// The named memory regions a segment's load address falls in.
fn memory_types(segment: &Segment) -> String {
    let names: Vec<&str> = MEMORY_MAP
        .iter()
        .filter(|(start, end, _)| (*start..*end).contains(&segment.load_address))
        .map(|(_, _, name)| *name)
        .collect();
    if names.is_empty() {
        "(flash-mapped)".to_string()
    } else {
        names.join(", ")
    }
}

/// "valid", or "invalid - calculated X".
fn validity<T: PartialEq + Copy>(check: &StoredCheck<T>, show: impl Fn(T) -> String) -> String {
    if check.stored == check.computed {
        "valid".to_string()
    } else {
        format!("invalid - calculated {}", show(check.computed))
    }
}
