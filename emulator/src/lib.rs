//! `esp-emulator` is flashlab's virtual ESP8266. Its core is a device without
//! I/O — bytes and time go in, bytes come out — built on `esp-protocol`: the ROM
//! serial loader, the chip's memory map and peripherals (`machine`), the mask
//! ROM's functions done in Rust (`rom_functions`), and the `xtensa-lx106` CPU
//! that runs the code the chip is given (uploaded stubs, RAM programs, firmware
//! booted from flash), with a behavioural model of a flasher stub kept as a
//! second implementation; the flash is an SPI NOR chip model, and the board's
//! reset wiring turns DTR and RTS into EN and GPIO0. Around the core sit a seeded
//! fault injector, an in-memory pairing used by `esp-flasher`'s tests and its
//! `emu:` port, the RFC 2217 codec (no I/O either), and the front ends of the
//! `esp-emulator` binary that real, unmodified clients such as esptool talk to:
//! a [`board::Board`] shared by the pseudo-terminal (`pty`, Unix only) and the TCP
//! and RFC 2217 endpoints ([`listen`], `std::net` only). Everything but the pty
//! compiles on every target.
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
