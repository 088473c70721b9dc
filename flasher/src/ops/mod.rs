//! Flash and memory operations of a [`crate::Flasher`] session, one module per kind.

pub mod baud;
pub mod erase;
pub mod mem;
pub mod read;
pub mod size_probe;
pub mod spi;
pub mod write;
