//! What the ESP8266 ROM does when it boots from flash, as text and as a verdict.
//!
//! The ROM prints its boot log at 74880 baud: the banner with the reset cause
//! and the boot-mode strapping, then one `load` line per segment of the image
//! at 0x0 with the running checksum, then `csum` and a jump to the entry
//! point. Without a valid image it stops with `ets_main.c`. The image header's
//! flash mode must be one the module's wiring carries: a `qio` image on a
//! module wired for `dout` (every Sonoff with an ESP8285, many with a
//! separate chip) reads garbage once the ROM switches to the header's mode.
//!
//! The text follows logs captured from boards; the per-segment `room`/`tail`
//! bookkeeping of the ROM's loader is modelled only as far as `tail` (the
//! segment length modulo 16). Everything here is a pure function of the flash
//! contents.

use esp_protocol::boot_log::{BANNER_START, BOOT_MODE_FLASH, BOOT_MODE_UART_DOWNLOAD};
use esp_protocol::flash_params::{size_name, FlashMode, FlashSize};
use esp_protocol::image::{self, ImageError, IMAGE_V1_MAGIC, IMAGE_V2_MAGIC};
use esp_protocol::rom_erase::SECTOR_SIZE;

pub use esp_protocol::boot_log::{ResetCause, BOOT_LOG_BAUD};

/// The SDK's RF init data (esp_init_data_default) starts this far before the end of the
/// flash size in the image header: the first of the SDK's last 4 sectors.
pub const SDK_INIT_DATA_FROM_END: u32 = 4 * SECTOR_SIZE;
/// The first byte of valid RF init data.
pub const SDK_INIT_DATA_MAGIC: u8 = 0x05;

/// Which flash data lines the module connects, so which modes can work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashWiring {
    /// All four lines: every mode works.
    Qio,
    /// Two data lines: dio and dout work.
    Dio,
    /// Two data lines, addresses on one (ESP8285 and most Sonoff modules): only dout is safe.
    Dout,
}

impl FlashWiring {
    /// True when a header's flash mode can read this module's flash.
    pub fn carries(self, mode: FlashMode) -> bool {
        match self {
            FlashWiring::Qio => true,
            FlashWiring::Dio => matches!(mode, FlashMode::Dio | FlashMode::Dout),
            FlashWiring::Dout => mode == FlashMode::Dout,
        }
    }

    /// The wiring's name: `qio`, `dio` or `dout`.
    pub fn name(self) -> &'static str {
        match self {
            FlashWiring::Qio => "qio",
            FlashWiring::Dio => "dio",
            FlashWiring::Dout => "dout",
        }
    }
}

impl std::str::FromStr for FlashWiring {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "qio" => Ok(FlashWiring::Qio),
            "dio" => Ok(FlashWiring::Dio),
            "dout" => Ok(FlashWiring::Dout),
            _ => Err(format!(
                "unknown flash wiring \"{text}\": expected qio, dio or dout"
            )),
        }
    }
}

/// How a boot from flash ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootOutcome {
    /// The ROM jumped to the firmware's entry point.
    Started {
        /// Entry point.
        entry: u32,
    },
    /// No image at 0x0 (erased flash, or a first byte that is no image magic).
    NoImage {
        /// The byte found at 0x0.
        first_byte: u8,
    },
    /// The image is cut short or malformed.
    BadImage(String),
    /// The segments' checksum does not match the stored one.
    ChecksumMismatch {
        /// Checksum stored in the image.
        stored: u8,
        /// Checksum of what the ROM read.
        computed: u8,
    },
    /// The header asks for a flash mode the module's wiring does not carry.
    FlashModeUnsupported {
        /// Mode in the header.
        mode: FlashMode,
        /// The module's wiring.
        wiring: FlashWiring,
    },
    /// The ROM started the firmware, but the SDK found no RF init data where the header's
    /// flash size puts it, and stopped.
    SdkInitDataMissing {
        /// Where the SDK looked: 4 sectors before the end of the header's flash size.
        address: u32,
        /// The byte found there instead of 0x05.
        found: u8,
    },
}

impl BootReport {
    /// The log with plain line ends, then `verdict: ...` and a `note: ...` line per note.
    pub fn text(&self) -> String {
        let mut text = self.log.replace("\r\n", "\n");
        text.push_str(&format!("verdict: {}\n", self.outcome));
        for note in &self.notes {
            text.push_str(&format!("note: {note}\n"));
        }
        text
    }
}

impl BootOutcome {
    /// True when the firmware started.
    pub fn started(&self) -> bool {
        matches!(self, BootOutcome::Started { .. })
    }
}

/// The boot log and verdict for one boot from flash, with notes for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReport {
    /// Exactly what the ROM prints at [`BOOT_LOG_BAUD`].
    pub log: String,
    /// How the boot ends.
    pub outcome: BootOutcome,
    /// Findings a person should know (header size against the chip, mode against the wiring).
    pub notes: Vec<String>,
}

/// The ROM's first line after a reset; `boot mode:(1,7)` is download mode, `(3,6)` flash.
pub fn banner(cause: ResetCause, download_mode: bool) -> String {
    let strapping = if download_mode {
        format!("({BOOT_MODE_UART_DOWNLOAD},7)")
    } else {
        format!("({BOOT_MODE_FLASH},6)")
    };
    format!(
        "\r\n {BANNER_START}{}, boot mode:{strapping}\r\n\r\n",
        cause as u8
    )
}

/// What the ROM prints when strapped for the serial download mode.
pub fn download_mode_log(cause: ResetCause) -> String {
    banner(cause, true) + "waiting for host\r\n"
}

/// Boots `flash` (the whole chip, or at least its start) as the ROM does.
pub fn boot_from_flash(
    flash: &[u8],
    chip_size: usize,
    cause: ResetCause,
    wiring: FlashWiring,
) -> BootReport {
    let mut log = banner(cause, false);
    let mut notes = Vec::new();
    let first_byte = flash.first().copied().unwrap_or(0xFF);
    if first_byte != IMAGE_V1_MAGIC && first_byte != IMAGE_V2_MAGIC {
        log.push_str("ets_main.c \r\n");
        notes.push(match first_byte {
            0xFF => "the flash at 0x0 is erased: there is no firmware to boot".to_string(),
            other => format!("byte 0x{other:02x} at 0x0 is no image magic (0xe9 or 0xea)"),
        });
        return BootReport {
            log,
            outcome: BootOutcome::NoImage { first_byte },
            notes,
        };
    }
    let parsed = match image::parse(flash) {
        Ok(parsed) => parsed,
        Err(error) => {
            log.push_str("ets_main.c \r\n");
            notes.push(format!("the image at 0x0 is malformed: {error}"));
            return BootReport {
                log,
                outcome: BootOutcome::BadImage(error.to_string()),
                notes,
            };
        }
    };
    let header = parsed.image.flash_params;
    note_header_size(header.size(), chip_size, &mut notes);
    let mode = header.mode().unwrap_or(FlashMode::Qio);
    if !wiring.carries(mode) {
        // The ROM reads the header in the slow mode, then switches to the
        // header's mode: everything after the header arrives as garbage.
        log.push_str("load 0x00000000, len 0, room 16 \r\ntail 0\r\nchksum 0xef\r\ncsum 0x00\r\ncsum err\r\nets_main.c \r\n");
        notes.push(format!(
            "the header says flash mode {} but this module is wired for {}: write it with -fm {}",
            mode.name(),
            wiring.name(),
            if wiring == FlashWiring::Dio {
                "dio"
            } else {
                "dout"
            }
        ));
        return BootReport {
            log,
            outcome: BootOutcome::FlashModeUnsupported { mode, wiring },
            notes,
        };
    }
    // The ROM boots the 0xE9 part; a v2 image's second-stage loader does the rest.
    let mut running = image::CHECKSUM_SEED;
    for segment in &parsed.image.segments {
        running = segment.data.iter().fold(running, |acc, byte| acc ^ byte);
        log.push_str(&format!(
            "load 0x{:08x}, len {}, room 16 \r\ntail {}\r\nchksum 0x{running:02x}\r\n",
            segment.load_address,
            segment.data.len(),
            segment.data.len() % 16
        ));
    }
    let stored = parsed.checksum.stored;
    log.push_str(&format!("csum 0x{stored:02x}\r\n"));
    if !parsed.checksum.is_valid() {
        log.push_str("csum err\r\nets_main.c \r\n");
        notes.push(format!(
            "the image checksum is 0x{stored:02x} but its segments sum to 0x{:02x}: the image is corrupt",
            parsed.checksum.computed
        ));
        return BootReport {
            log,
            outcome: BootOutcome::ChecksumMismatch {
                stored,
                computed: parsed.checksum.computed,
            },
            notes,
        };
    }
    let entry = parsed.image.entry;
    match header.size() {
        Ok(size) => check_sdk_init_data(flash, size, entry, log, notes),
        Err(_) => BootReport {
            log,
            outcome: BootOutcome::Started { entry },
            notes,
        },
    }
}

/// The SDK's first step: it reads its RF init data 4 sectors before the end of the header's
/// flash size and stops, printing `rf_cal[0] !=0x05,is 0xFF`, when the byte there is not 0x05.
fn check_sdk_init_data(
    flash: &[u8],
    header_size: FlashSize,
    entry: u32,
    mut log: String,
    mut notes: Vec<String>,
) -> BootReport {
    let address = header_size.bytes() - SDK_INIT_DATA_FROM_END;
    // Past the end of a smaller chip the address wraps, as the SPI flash does.
    let found = if flash.is_empty() {
        0xFF
    } else {
        flash[address as usize % flash.len()]
    };
    if found == SDK_INIT_DATA_MAGIC {
        return BootReport {
            log,
            outcome: BootOutcome::Started { entry },
            notes,
        };
    }
    log.push_str(&format!("rf_cal[0] !=0x05,is 0x{found:02X}\r\n"));
    notes.push(format!(
        "the SDK found no RF init data at 0x{address:06x} (4 sectors before the end of the header's {}): \
         the firmware stops; write it with -fs matching where its settings are, or write esp_init_data_default.bin there",
        header_size.name()
    ));
    BootReport {
        log,
        outcome: BootOutcome::SdkInitDataMissing { address, found },
        notes,
    }
}

fn note_header_size(
    header_size: Result<FlashSize, esp_protocol::flash_params::FlashParamError>,
    chip_size: usize,
    notes: &mut Vec<String>,
) {
    match header_size {
        Ok(size) if size.bytes() as usize != chip_size => notes.push(format!(
            "the header says {} but the chip has {}: the SDK keeps its settings in the last sectors of the size \
             in the header, so the firmware may not find them; write with -fs matching the firmware's build \
             (-fs {} for a backup taken from a {} chip)",
            size.name(),
            size_name(chip_size as u64),
            size.name(),
            size.name()
        )),
        Ok(_) => {}
        Err(error) => notes.push(format!("the header's flash size is invalid: {error}")),
    }
}

impl std::fmt::Display for BootOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BootOutcome::Started { entry } => write!(f, "firmware started at entry 0x{entry:08x}"),
            BootOutcome::NoImage { first_byte } => {
                write!(f, "no image at 0x0 (first byte 0x{first_byte:02x})")
            }
            BootOutcome::BadImage(reason) => write!(f, "malformed image: {reason}"),
            BootOutcome::ChecksumMismatch { stored, computed } => {
                write!(
                    f,
                    "checksum error: stored 0x{stored:02x}, computed 0x{computed:02x}"
                )
            }
            BootOutcome::FlashModeUnsupported { mode, wiring } => {
                write!(
                    f,
                    "flash mode {} is not carried by {} wiring",
                    mode.name(),
                    wiring.name()
                )
            }
            BootOutcome::SdkInitDataMissing { address, found } => {
                write!(
                    f,
                    "the SDK stopped: RF init data at 0x{address:06x} is 0x{found:02x}, not 0x05"
                )
            }
        }
    }
}

impl From<ImageError> for BootOutcome {
    fn from(error: ImageError) -> Self {
        BootOutcome::BadImage(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample_firmware::firmware_image;

    const MB: usize = 0x10_0000;

    /// `image` at 0x0 and the SDK's init data where the image's 1MB header puts it.
    fn flash_with(image: &[u8], size: usize) -> Vec<u8> {
        let mut flash = vec![0xFF; size];
        flash[..image.len()].copy_from_slice(image);
        flash[MB - SDK_INIT_DATA_FROM_END as usize] = SDK_INIT_DATA_MAGIC;
        flash
    }

    #[test]
    fn good_image_boots_and_logs_each_segment() {
        let flash = flash_with(&firmware_image(0x8000, 1), MB);
        let report = boot_from_flash(&flash, MB, ResetCause::PowerOn, FlashWiring::Dout);
        assert_eq!(report.outcome, BootOutcome::Started { entry: 0x4010_0004 });
        assert!(report
            .log
            .starts_with("\r\n ets Jan  8 2013,rst cause:1, boot mode:(3,6)\r\n"));
        assert_eq!(report.log.matches("load 0x").count(), 2);
        assert!(report
            .log
            .contains("load 0x40100000, len 8192, room 16 \r\ntail 0\r\n"));
        assert!(report.notes.is_empty(), "{:?}", report.notes);
    }

    #[test]
    fn erased_flash_stops_in_ets_main() {
        let report = boot_from_flash(
            &vec![0xFF; MB],
            MB,
            ResetCause::ExternalPin,
            FlashWiring::Qio,
        );
        assert_eq!(report.outcome, BootOutcome::NoImage { first_byte: 0xFF });
        assert!(report.log.ends_with("ets_main.c \r\n"));
    }

    #[test]
    fn corrupt_segment_fails_the_checksum() {
        let mut flash = flash_with(&firmware_image(0x8000, 1), MB);
        flash[0x100] ^= 0x01;
        let report = boot_from_flash(&flash, MB, ResetCause::PowerOn, FlashWiring::Dout);
        assert!(matches!(
            report.outcome,
            BootOutcome::ChecksumMismatch { .. }
        ));
        assert!(report.log.contains("csum err"));
    }

    #[test]
    fn regression_qio_image_on_dout_module_does_not_boot() {
        let mut flash = flash_with(&firmware_image(0x8000, 1), MB);
        flash[2] = FlashMode::Qio.header_byte();
        let report = boot_from_flash(&flash, MB, ResetCause::PowerOn, FlashWiring::Dout);
        assert_eq!(
            report.outcome,
            BootOutcome::FlashModeUnsupported {
                mode: FlashMode::Qio,
                wiring: FlashWiring::Dout
            }
        );
        assert!(report.notes[0].contains("-fm dout"));
        // The same image boots on a module wired for qio.
        assert!(
            boot_from_flash(&flash, MB, ResetCause::PowerOn, FlashWiring::Qio)
                .outcome
                .started()
        );
    }

    #[test]
    fn regression_1mb_backup_on_4mb_chip_is_explained() {
        let flash = flash_with(&firmware_image(0x8000, 1), 4 * MB);
        let report = boot_from_flash(&flash, 4 * MB, ResetCause::PowerOn, FlashWiring::Dout);
        assert!(report.outcome.started());
        assert!(
            report.notes[0].contains("header says 1MB but the chip has 4MB"),
            "{:?}",
            report.notes
        );
    }

    #[test]
    fn regression_1mb_backup_restored_with_fs_4mb_stops_at_rf_cal() {
        let mut flash = flash_with(&firmware_image(0x8000, 1), 4 * MB);
        flash[3] = (flash[3] & 0x0F) | FlashSize::Size4M.header_bits();
        let report = boot_from_flash(&flash, 4 * MB, ResetCause::PowerOn, FlashWiring::Dout);
        assert_eq!(
            report.outcome,
            BootOutcome::SdkInitDataMissing {
                address: 0x3F_C000,
                found: 0xFF
            }
        );
        assert!(
            report.log.ends_with("rf_cal[0] !=0x05,is 0xFF\r\n"),
            "{}",
            report.log
        );
        assert!(
            report.notes.iter().any(|note| note.contains("0x3fc000")),
            "{:?}",
            report.notes
        );
    }

    #[test]
    fn download_mode_waits_for_host() {
        assert_eq!(
            download_mode_log(ResetCause::ExternalPin),
            "\r\n ets Jan  8 2013,rst cause:2, boot mode:(1,7)\r\n\r\nwaiting for host\r\n"
        );
    }
}
