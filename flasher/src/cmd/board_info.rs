//! `board-info`: everything esp-flasher can tell about the connected board in one run — chip,
//! features, crystal, MAC, flash ID and manufacturer, the size the ID claims and the size
//! really there (the wrap test that finds fake or relabelled flash chips).

use std::rc::Rc;

use esp_flasher::ops::size_probe::real_size;
use esp_flasher::{Flasher, Loader, Transport, Warning};
use esp_protocol::flash_params::size_name;
use esp_protocol::uart::{crystal_mhz, reg, UART0_BASE};
use serde::Serialize;

use super::flash_id::FlashIdResult;
use super::session::with_chip;
use super::CmdError;
use crate::cli::ConnectArgs;
use crate::output::Output;

/// `board-info`'s JSON result.
#[derive(Debug, Serialize)]
pub struct BoardInfoResult {
    /// esptool's description of the chip ("ESP8266EX", "ESP8285H16").
    pub chip: String,
    /// What it has ("WiFi", "Embedded Flash").
    pub features: &'static [&'static str],
    /// The crystal in MHz (26 or 40) from UART0's clock divider; null when the divider fits
    /// neither.
    pub crystal_mhz: Option<u32>,
    /// The station MAC, "aa:bb:cc:dd:ee:ff".
    pub mac: String,
    /// The SDK's chip ID.
    pub chip_id: u32,
    /// The flash chip.
    pub flash: BoardFlash,
}

/// The flash part of [`BoardInfoResult`]: `flash_id`'s facts and the wrap test.
#[derive(Debug, Serialize)]
pub struct BoardFlash {
    /// What `flash_id` says.
    #[serde(flatten)]
    pub id: FlashIdResult,
    /// Bytes really there; null when not measured (no stub, or no detected size).
    pub real_size: Option<u32>,
    /// True when the addresses wrap below the detected size (a fake or relabelled chip);
    /// null when not measured.
    pub wraps: Option<bool>,
}

/// Reads every fact and prints them; a fake flash size is reported, not a failure.
pub fn run(connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    with_chip("board-info", connect, out, |flasher, out| {
        let info = board_info(flasher)?;
        for line in describe(&info) {
            out.line(line);
        }
        if info.flash.wraps == Some(true) {
            if let Some(real) = info.flash.real_size {
                out.warn(format!(
                    "this flash is not the size its ID claims: write images with -fs {} and \
                     read no further than {real:#x}",
                    size_name(real.into())
                ));
            }
        }
        out.result(&info);
        Ok(())
    })
}

/// Asks the chip; the wrap test needs a stub (without one it is reported as not measured).
fn board_info<T: Transport>(flasher: &mut Flasher<T>) -> Result<BoardInfoResult, CmdError> {
    let chip = flasher.chip().clone();
    let divider = flasher.read_reg(UART0_BASE + reg::CLKDIV)?;
    let crystal = crystal_mhz(divider, flasher.transport().baud());
    let id = FlashIdResult::new(flasher.flash_info());
    let (real_size, wraps) = match (id.detected_size, flasher.loader()) {
        (Some(claimed), Loader::Stub) => {
            let wraps_at = real_size(flasher, claimed)?;
            (Some(wraps_at.unwrap_or(claimed)), Some(wraps_at.is_some()))
        }
        (Some(_), Loader::Rom) => {
            flasher.report(esp_flasher::Event::Warning(Warning::RealSizeUnchecked));
            (None, None)
        }
        (None, _) => (None, None),
    };
    Ok(BoardInfoResult {
        chip: chip.description.clone(),
        features: chip.kind.features(),
        crystal_mhz: crystal,
        mac: chip.mac_string(),
        chip_id: chip.chip_id,
        flash: BoardFlash {
            id,
            real_size,
            wraps,
        },
    })
}

/// The human lines.
fn describe(info: &BoardInfoResult) -> Vec<String> {
    let flash = &info.flash;
    let row = |label: &str, value: String| format!("{label:<20}{value}");
    let real = match (flash.real_size, flash.wraps) {
        (Some(real), Some(true)) => format!(
            "{}: the addresses wrap every {} although the ID claims {} (a fake or relabelled chip)",
            size_name(real.into()),
            size_name(real.into()),
            flash.id.detected_size_name()
        ),
        (Some(real), _) => format!(
            "{}: every address is distinct (wrap test passed)",
            size_name(real.into())
        ),
        (None, _) if flash.id.detected_size.is_none() => {
            "not measured: the ID names no size".into()
        }
        (None, _) => "not measured: the wrap test needs a stub (drop --no-stub)".into(),
    };
    vec![
        row("Chip:", info.chip.clone()),
        row("Features:", info.features.join(", ")),
        row(
            "Crystal:",
            info.crystal_mhz.map_or(
                "unknown (UART divider fits no 26 or 40 MHz crystal)".into(),
                |mhz| format!("{mhz} MHz"),
            ),
        ),
        row("MAC:", info.mac.clone()),
        row("Chip ID:", format!("{:#010x}", info.chip_id)),
        row(
            "Flash ID:",
            format!(
                "{:06x} (manufacturer {}, device {:04x})",
                flash.id.jedec_id,
                flash.id.manufacturer_text(),
                flash.id.device
            ),
        ),
        row(
            "Flash size:",
            format!("{} (from the flash ID)", flash.id.detected_size_name()),
        ),
        row("Real flash size:", real),
    ]
}
