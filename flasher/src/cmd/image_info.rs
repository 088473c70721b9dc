//! `image_info FILE`: the header, segments and checksums of a firmware image.

use esp_protocol::image::{self, ImageVersion, Segment, StoredCheck};
use esp_protocol::memory_map::{DRAM, FLASH_CACHE, IRAM};
use esp_protocol::peripherals::dport;
use serde::Serialize;

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

/// `image_info`'s JSON result.
#[derive(Debug, Serialize)]
pub struct ImageInfoResult {
    /// Bytes in the file.
    pub file_size: usize,
    /// 1 (0xE9 header) or 2 (0xEA, the SDK's irom0 image).
    pub image_version: u8,
    /// The entry point; null when not set (0).
    pub entry: Option<u32>,
    /// The header's flash mode ("dout"); null when its byte names none.
    pub flash_mode: Option<&'static str>,
    /// The header's flash size ("1MB"); null when its bits name none.
    pub flash_size: Option<&'static str>,
    /// The header's flash frequency ("40m"); null when its bits name none.
    pub flash_freq: Option<&'static str>,
    /// The segments, a v2 image's irom0 first.
    pub segments: Vec<SegmentInfo>,
    /// The XOR checksum of the segments.
    pub checksum: CheckInfo,
    /// A v2 image's CRC-32; null for v1.
    pub crc32: Option<CheckInfo>,
}

/// One segment.
#[derive(Debug, Serialize)]
pub struct SegmentInfo {
    /// Bytes of data.
    pub length: usize,
    /// Where the ROM loads it.
    pub load_address: u32,
    /// The memory regions the load address falls in ("IRAM", "DRAM"); empty: flash-mapped.
    pub memory_types: Vec<&'static str>,
}

/// A stored check value and the one computed from the data.
#[derive(Debug, Serialize)]
pub struct CheckInfo {
    /// The value in the file.
    pub stored: u32,
    /// The value the data gives.
    pub computed: u32,
    /// True when they are equal.
    pub valid: bool,
}

impl CheckInfo {
    fn new<T: Copy + PartialEq + Into<u32>>(check: &StoredCheck<T>) -> CheckInfo {
        CheckInfo {
            stored: check.stored.into(),
            computed: check.computed.into(),
            valid: check.stored == check.computed,
        }
    }
}

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
    let segments: Vec<SegmentInfo> = irom
        .into_iter()
        .chain(&image.segments)
        .map(|segment| SegmentInfo {
            length: segment.data.len(),
            load_address: segment.load_address,
            memory_types: memory_types(segment),
        })
        .collect();
    for (index, segment) in segments.iter().enumerate() {
        let types = match segment.memory_types.is_empty() {
            true => "(flash-mapped)".to_string(),
            false => segment.memory_types.join(", "),
        };
        out.line(format!(
            "{index:>7}  {:#07x}  {:#010x}  {types}",
            segment.length, segment.load_address
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
    out.result(&ImageInfoResult {
        file_size: data.len(),
        image_version: version,
        entry: (image.entry != 0).then_some(image.entry),
        flash_mode: params.mode().ok().map(|mode| mode.name()),
        flash_size: params.size().ok().map(|size| size.name()),
        flash_freq: params.freq().ok().map(|freq| freq.name()),
        segments,
        checksum: CheckInfo::new(&parsed.checksum),
        crc32: parsed.crc32.as_ref().map(CheckInfo::new),
    });
    Ok(())
}

/// The named memory regions a segment's load address falls in (none: flash-mapped).
fn memory_types(segment: &Segment) -> Vec<&'static str> {
    MEMORY_MAP
        .iter()
        .filter(|(start, end, _)| (*start..*end).contains(&segment.load_address))
        .map(|(_, _, name)| *name)
        .collect()
}

/// "valid", or "invalid - calculated X".
fn validity<T: PartialEq + Copy>(check: &StoredCheck<T>, show: impl Fn(T) -> String) -> String {
    if check.stored == check.computed {
        "valid".to_string()
    } else {
        format!("invalid - calculated {}", show(check.computed))
    }
}
