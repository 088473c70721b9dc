//! `write_flash_status [--non-volatile] [--bytes N] VALUE`: sets the SPI flash status register.

use std::rc::Rc;

use super::session::with_chip_to_change;
use super::CmdError;
use crate::cli::{ConnectArgs, WriteFlashStatusArgs};
use crate::output::Output;

/// Prints the status before, the value set and the status after.
pub fn run(
    args: &WriteFlashStatusArgs,
    connect: &ConnectArgs,
    out: &Rc<Output>,
) -> Result<(), CmdError> {
    let bytes = usize::from(args.bytes);
    let limit = (1u64 << (8 * bytes)) - 1;
    if u64::from(args.value) > limit {
        return Err(CmdError::Usage(format!(
            "status value {:#x} does not fit in {bytes} byte(s) (at most {limit:#x})",
            args.value
        )));
    }
    let width = 2 + 2 * bytes;
    with_chip_to_change("write_flash_status", connect, out, |flasher, out| {
        let before = flasher.read_flash_status(bytes)?;
        out.line(format!("Initial flash memory status: {before:#0width$x}"));
        out.line(format!(
            "Setting flash memory status: {:#0width$x}",
            args.value
        ));
        flasher.write_flash_status(args.value, bytes, args.non_volatile)?;
        let after = flasher.read_flash_status(bytes)?;
        out.line(format!("After flash memory status:   {after:#0width$x}"));
        Ok(())
    })
}
