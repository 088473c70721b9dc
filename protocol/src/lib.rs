//! `esp-protocol` is the shared core of flashlab: the ESP8266 serial-loader
//! protocol with no I/O at all. The flasher (`esp-flasher`) and the virtual chip
//! (`esp-emulator`) both speak through it, so the two sides and the property
//! tests share one exact implementation of SLIP framing, command and response
//! packets, status codes, the firmware image format and the ROM's quirks, and
//! the chip facts both need: the chip-detect and eFuse registers and the eFuse
//! layout (`chip`), the SPI flash controller, opcodes and status bits
//! (`spi_flash`), the UARTs' registers (`uart`), the other peripherals'
//! registers (`peripherals`), the memory map (`memory_map`), the mask ROM's
//! function addresses (`rom_functions`), what the ROM prints at boot (`boot_log`:
//! reset causes, boot modes) and the CPU's exception causes (`exceptions`).
//! Encoding writes into a caller's buffer; decoding reads a slice and returns a
//! typed error.

#![warn(missing_docs)]

pub mod boot_log;
pub mod chip;
pub mod exceptions;
pub mod flash_params;
pub mod image;
pub mod memory_map;
pub mod numbers;
pub mod packet;
pub mod peripherals;
pub mod rom_erase;
pub mod rom_functions;
pub mod slip;
pub mod spi_flash;
pub mod status;
pub mod uart;
