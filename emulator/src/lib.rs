//! placeholder
pub mod flash;
