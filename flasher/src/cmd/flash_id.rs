//! `flash_id`: the SPI flash chip's JEDEC ID and size.

use std::rc::Rc;

use esp_flasher::FlashInfo;
use esp_protocol::flash_params::{manufacturer_name, FlashSize};
use serde::Serialize;

use super::session::with_chip;
use super::CmdError;
use crate::cli::ConnectArgs;
use crate::output::Output;

/// `flash_id`'s JSON result (also `board-info`'s `flash`).
#[derive(Debug, Serialize)]
pub struct FlashIdResult {
    /// The JEDEC ID: manufacturer, memory type, capacity (0xEF4016 as 15679510).
    pub jedec_id: u32,
    /// The manufacturer byte (0xEF).
    pub manufacturer: u8,
    /// The manufacturer's name, when known ("Winbond").
    pub manufacturer_name: Option<&'static str>,
    /// The device word (0x4016).
    pub device: u16,
    /// The size the ID names, in bytes; null when the capacity byte names no flash size.
    pub detected_size: Option<u32>,
}

impl FlashIdResult {
    /// The facts of the flash found.
    pub fn new(flash: FlashInfo) -> FlashIdResult {
        let manufacturer = (flash.jedec_id >> 16) as u8;
        FlashIdResult {
            jedec_id: flash.jedec_id,
            manufacturer,
            manufacturer_name: manufacturer_name(manufacturer),
            device: (flash.jedec_id & 0xFFFF) as u16,
            detected_size: flash.size,
        }
    }

    /// "ef (Winbond)", or "ef" for a manufacturer not known by name.
    pub fn manufacturer_text(&self) -> String {
        match self.manufacturer_name {
            Some(name) => format!("{:02x} ({name})", self.manufacturer),
            None => format!("{:02x}", self.manufacturer),
        }
    }

    /// The detected size's name ("4MB"), or "Unknown".
    pub fn detected_size_name(&self) -> &'static str {
        self.detected_size
            .and_then(FlashSize::from_bytes)
            .map_or("Unknown", FlashSize::name)
    }
}

/// Prints "Manufacturer: ef", "Device: 4016" and "Detected flash size: 4MB".
pub fn run(connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    with_chip("flash_id", connect, out, |flasher, out| {
        let facts = FlashIdResult::new(flasher.flash_info());
        out.line(format!("Manufacturer: {}", facts.manufacturer_text()));
        out.line(format!("Device: {:04x}", facts.device));
        out.line(format!(
            "Detected flash size: {}",
            facts.detected_size_name()
        ));
        out.result(&facts);
        Ok(())
    })
}
