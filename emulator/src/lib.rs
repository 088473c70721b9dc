//! `esp-emulator` is flashlab's virtual ESP8266. Its core is a device without
//! I/O — bytes and time go in, bytes come out — built on `esp-protocol`: the ROM
//! serial loader, the chip's memory map and peripherals (`machine`), the mask
//! ROM's functions done in Rust (`rom_functions`), and the `xtensa-lx106` CPU
//! that runs the code the chip is given (uploaded stubs, RAM programs, firmware
//! booted from flash), with a behavioural model of a flasher stub kept as a
//! second implementation; the flash is an SPI NOR chip model, and the board's
//! reset wiring turns DTR and RTS into EN and GPIO0. Around the core sit a seeded
//! fault injector, an in-process serial port ([`serial_port::VirtualPort`]), the
//! RFC 2217 codec (no I/O either), and the front ends of the `esp-emulator` binary
//! that real, unmodified clients such as esptool talk to: a [`board::Board`]
//! shared by the pseudo-terminal (`pty`, Unix only) and the TCP and RFC 2217
//! endpoints ([`listen`], `std::net` only). Everything but the pty compiles on
//! every target.
//!
//! # A guide for tool developers
//!
//! A flashing tool built on the [serialport](https://docs.rs/serialport) crate can test
//! itself against this chip in its own unit tests, on any OS, with no hardware, no binary
//! and no pseudo-terminal: it opens a [`serial_port::VirtualPort`] where it would open
//! `/dev/ttyUSB0`.
//!
//! **Start a chip.** A [`device::Device`] is the chip on its board: [`device::DeviceConfig`]
//! chooses the variant (ESP8266EX or ESP8285), the MAC in its eFuses, where GPIO0 is held
//! ([`device::BootMode`]), how DTR and RTS reach EN and GPIO0 ([`device::ResetWiring`]:
//! none, a NodeMCU auto-reset circuit or direct wires), and whether uploaded code runs on the
//! CPU or a stub model answers. A [`link::Link`] puts the chip behind a serial line;
//! [`serial_port::VirtualPort::new`] makes that line a `Box<dyn SerialPort>`.
//!
//! **Set its flash.** [`flash::SpiFlash::blank`] is an erased chip of a supported size
//! (256KB to 16MB); [`flash::SpiFlash::new`] takes the contents, for example a dump of a real
//! board or [`sample_firmware::sonoff_like_flash`], and [`flash::FlashOptions`] its JEDEC
//! ID, write protection, stuck sectors or a fake size.
//!
//! **Inject faults.** [`faults::FaultPlan::parse`] reads the same `--fault` specs as the
//! `esp-emulator` binary (`timeout:op=SYNC,nth=1`, `short-read:frame=3,drop=8`,
//! `bitflip:rate=1e-5`, `disconnect:after=80000`, `no-rts`, `write-protect`...; the table is
//! in [`faults`]) and splits them between the device ([`device::DeviceConfig::faults`]), the
//! line ([`link::LinkConfig::faults`], seeded by [`link::LinkConfig::seed`], so a run is
//! reproducible) and the flash ([`faults::FlashFaults::apply_to`]). Faults can change
//! mid-test through [`serial_port::VirtualPort::with_link`] and [`link::Link::faults_mut`].
//!
//! **Inspect what was written.** [`serial_port::VirtualPort::flash_snapshot`] copies the
//! flash; [`serial_port::VirtualPort::with_link`] reaches the device
//! ([`device::Device::flash`], [`device::Device::program`]: the ROM loader, a stub, running
//! code or the firmware) between reads and writes. [`device::Device::set_trace`] collects one
//! line per packet and per reset for [`device::Device::take_trace`].
//!
//! **Drive time.** On [`serial_port::PortTime::Virtual`] the chip's clock stands still until
//! a read waits, then jumps to when the chip has output: a timeout costs nothing, bytes take
//! their UART time at the port's baud rate, and [`serial_port::VirtualPort::sleep`] moves
//! the clock instead of the thread. [`device::DeviceConfig::realtime`] adds the flash's
//! datasheet busy times (page program, sector erase) to the replies, and
//! [`link::LinkConfig::model_baud`] garbles bytes sent at a rate the chip is not at.
//! [`serial_port::PortTime::Real`] runs the chip on the host's clock instead.
//!
//! For clients that are not Rust (esptool, pyserial), the `esp-emulator` binary serves the
//! same chip on a pseudo-terminal, `tcp://` or `rfc2217://` ([`listen`]).
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//!
//! use esp_emulator::device::{Device, DeviceConfig};
//! use esp_emulator::faults::FaultPlan;
//! use esp_emulator::flash::{FlashOptions, SpiFlash};
//! use esp_emulator::link::{Link, LinkConfig};
//! use esp_emulator::serial_port::{PortTime, VirtualPort};
//! use esp_protocol::chip::{decode_efuses, EFUSE_REGS};
//! use esp_protocol::packet::{BeginParams, Command, DataBlock, Response};
//! use esp_protocol::slip::{self, SlipDecoder, SlipEvent};
//! use esp_protocol::status::Status;
//! use serialport::SerialPort;
//!
//! /// Sends `command`; the first reply, or `None` when none comes before the port's timeout.
//! /// Nothing here knows it talks to a virtual chip: the serialport trait is all it uses.
//! fn ask(port: &mut dyn SerialPort, command: &Command) -> Option<Response> {
//!     port.write_all(&slip::encode_to_vec(&command.to_bytes().unwrap())).unwrap();
//!     let mut decoder = SlipDecoder::new();
//!     let mut buffer = [0u8; 256];
//!     loop {
//!         let count = port.read(&mut buffer).ok()?;
//!         for event in decoder.feed_to_vec(&buffer[..count]) {
//!             if let SlipEvent::Frame(frame) = event {
//!                 return Some(Response::decode(&frame).unwrap());
//!             }
//!         }
//!     }
//! }
//!
//! // A chip whose first SYNC goes unanswered, on a 1MB flash, on virtual time.
//! let plan = FaultPlan::parse(&["timeout:op=SYNC,nth=1"]).unwrap();
//! let mut options = FlashOptions::default();
//! plan.flash.apply_to(&mut options);
//! let flash = SpiFlash::new(vec![0xFF; 1 << 20], options).unwrap();
//! let config = DeviceConfig { faults: plan.device, ..DeviceConfig::default() };
//! let link = Link::new(
//!     Device::new(config, flash),
//!     LinkConfig { faults: plan.link, seed: 7, ..LinkConfig::default() },
//! );
//! let chip = VirtualPort::new(link, PortTime::Virtual);
//! let mut port: Box<dyn SerialPort> = Box::new(chip.clone());
//! port.set_timeout(Duration::from_millis(100)).unwrap();
//!
//! // Connect as a tool does: SYNC until the loader answers.
//! assert!(ask(port.as_mut(), &Command::Sync).is_none(), "the fault ate the first SYNC");
//! assert!(ask(port.as_mut(), &Command::Sync).is_some());
//! port.clear(serialport::ClearBuffer::Input).unwrap(); // SYNC's seven other replies
//!
//! // Read the MAC from the eFuses.
//! let mut words = [0u32; 4];
//! for (word, address) in words.iter_mut().zip(EFUSE_REGS) {
//!     *word = ask(port.as_mut(), &Command::ReadReg { address }).unwrap().value;
//! }
//! assert_eq!(decode_efuses(words).unwrap().mac, [0x18, 0xFE, 0x34, 0x12, 0x34, 0x56]);
//!
//! // Write one 1 KiB block at 0x1000 through the ROM loader.
//! let data = vec![0xA5; 0x400];
//! let begin = BeginParams { size: 0x400, blocks: 1, block_size: 0x400, offset: 0x1000, encrypted: None };
//! assert_eq!(ask(port.as_mut(), &Command::FlashBegin(begin)).unwrap().status, Status::Success);
//! let block = DataBlock { sequence: 0, data: data.clone() };
//! assert_eq!(ask(port.as_mut(), &Command::FlashData(block)).unwrap().status, Status::Success);
//!
//! // Inspect what was written, and how long it took on the virtual line.
//! let flash = chip.flash_snapshot();
//! assert_eq!(&flash[0x1000..0x1400], &data[..]);
//! assert!(flash[..0x1000].iter().all(|&byte| byte == 0xFF));
//! assert!(chip.now() >= Duration::from_millis(100), "the lost SYNC cost its timeout");
//! assert!(chip.now() < Duration::from_secs(1));
//! ```
#![warn(missing_docs)]

pub mod board;
pub mod boot;
pub mod device;
pub mod faults;
pub mod flash;
pub mod link;
pub mod listen;
pub mod machine;
#[cfg(unix)]
pub mod pty;
pub mod rfc2217;
pub mod rom_functions;
pub mod sample_firmware;
pub mod scenario;
pub mod serial_port;
