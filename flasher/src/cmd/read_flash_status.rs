//! `read_flash_status [--bytes N]`: the SPI flash status register.

use std::rc::Rc;

use super::session::with_chip;
use super::CmdError;
use crate::cli::{ConnectArgs, ReadFlashStatusArgs};
use crate::output::Output;

/// Prints "Flash memory status: 0x0000".
pub fn run(
    args: &ReadFlashStatusArgs,
    connect: &ConnectArgs,
    out: &Rc<Output>,
) -> Result<(), CmdError> {
    with_chip("read_flash_status", connect, out, |flasher, out| {
        let status = flasher.read_flash_status(usize::from(args.bytes))?;
        out.line(format!("Flash memory status: {status:#06x}"));
        Ok(())
    })
}
