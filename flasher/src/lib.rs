//! `esp-flasher` is the library behind the `esp-flasher` binary: it flashes,
//! reads, backs up and restores ESP8266/ESP8285 boards, speaking the serial
//! loader protocol of [`esp_protocol`] over a [`Transport`] — a real serial
//! port ([`SerialTransport`]) or the in-process virtual chip
//! (`EmulatorTransport`, behind the default `emulator` feature).
//!
//! The library does the work and reports; it never prints. Progress,
//! warnings and what the line carried go to a [`ProgressSink`] as
//! [`Event`]s, failures come back as [`Error`] values with their facts; the
//! binary owns the terminal and the exit codes.
//!
//! A session: [`Flasher::connect`] resets and synchronises, identifies the
//! chip, optionally starts a flasher stub and finds the flash; then
//! [`Flasher::write_flash`], [`Flasher::read_flash`], [`Flasher::erase_region`],
//! [`backup::backup`], [`backup::restore`] and the rest; [`Flasher::finish`]
//! resets the chip as asked.
//!
//! [`monitor`] reads what a board prints afterwards: it decodes the ROM's boot log and crash
//! dumps into words and names code addresses from the firmware's ELF.

pub mod backup;
pub mod chip;
pub mod connection;
#[cfg(feature = "emulator")]
pub mod emulator_transport;
pub mod error;
pub mod files;
pub mod flasher;
pub mod monitor;
pub mod ops;
pub mod progress;
pub mod stub;
pub mod transport;

pub use chip::{ChipInfo, ChipKind};
pub use connection::{AfterReset, BeforeReset, Loader};
#[cfg(feature = "emulator")]
pub use emulator_transport::EmulatorTransport;
pub use error::{Error, Result};
pub use flasher::{ConnectOptions, FlashInfo, Flasher};
pub use ops::write::{HeaderParams, HeaderSize, Region, RegionReport, WriteOptions, WriteReport};
pub use progress::{Event, EventLog, ProgressSink, Silent, Warning};
pub use stub::StubImage;
pub use transport::{LineControl, SerialTransport, Transport};
