//! placeholder
pub mod flash;
pub mod sample_firmware;
