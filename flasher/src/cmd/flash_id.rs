//! `flash_id`: the SPI flash chip's JEDEC ID and size.

use std::rc::Rc;

use esp_protocol::flash_params::{manufacturer_name, FlashSize};

use super::session::with_chip;
use super::CmdError;
use crate::cli::ConnectArgs;
use crate::output::Output;

/// Prints "Manufacturer: ef", "Device: 4016" and "Detected flash size: 4MB".
pub fn run(connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    with_chip("flash_id", connect, out, |flasher, out| {
        let flash = flasher.flash_info();
        let manufacturer = (flash.jedec_id >> 16) as u8;
        let device = flash.jedec_id & 0xFFFF;
        match manufacturer_name(manufacturer) {
            Some(name) => out.line(format!("Manufacturer: {manufacturer:02x} ({name})")),
            None => out.line(format!("Manufacturer: {manufacturer:02x}")),
        }
        out.line(format!("Device: {device:04x}"));
        let size = flash.size.and_then(FlashSize::from_bytes);
        out.line(format!(
            "Detected flash size: {}",
            size.map_or("Unknown", FlashSize::name)
        ));
        Ok(())
    })
}
