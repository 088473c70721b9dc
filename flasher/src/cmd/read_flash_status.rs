//! `read_flash_status [--bytes N]`: the SPI flash status register.

use std::rc::Rc;

use serde::Serialize;

use super::session::with_chip;
use super::CmdError;
use crate::cli::{ConnectArgs, ReadFlashStatusArgs};
use crate::output::Output;

/// `read_flash_status`'s JSON result.
#[derive(Debug, Serialize)]
pub struct ReadFlashStatusResult {
    /// The status register's value, status byte 1 in the low bits.
    pub status: u32,
    /// How many status bytes were read (`--bytes`).
    pub bytes: u8,
}

/// Prints "Flash memory status: 0x0000".
pub fn run(
    args: &ReadFlashStatusArgs,
    connect: &ConnectArgs,
    out: &Rc<Output>,
) -> Result<(), CmdError> {
    with_chip("read_flash_status", connect, out, |flasher, out| {
        let status = flasher.read_flash_status(usize::from(args.bytes))?;
        out.line(format!("Flash memory status: {status:#06x}"));
        out.result(&ReadFlashStatusResult {
            status,
            bytes: args.bytes,
        });
        Ok(())
    })
}
