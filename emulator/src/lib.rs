//! `esp-emulator` is flashlab's virtual ESP8266. Its core is a device without
//! I/O — bytes and time go in, bytes come out — built on `esp-protocol`: the ROM
//! serial loader, a model of what a flasher stub does (uploaded code is not
//! executed), a register model and an SPI NOR flash chip. Around the core sit a
//! seeded fault injector, an in-memory pairing used by `esp-flasher`'s tests and
//! its `emu:` port, and the pseudo-terminal front end of the `esp-emulator`
//! binary that real, unmodified clients such as esptool talk to.
pub mod boot;
pub mod device;
pub mod faults;
pub mod flash;
pub mod link;
pub mod machine;
pub mod pty;
pub mod rom_functions;
pub mod sample_firmware;
pub mod scenario;
