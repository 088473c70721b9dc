//! `chip_id`: the SDK's chip ID, from the eFuses.

use std::rc::Rc;

use super::session::with_chip;
use super::CmdError;
use crate::cli::ConnectArgs;
use crate::output::Output;

/// Prints "Chip ID: 0x...".
pub fn run(connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    with_chip("chip_id", connect, out, |flasher, out| {
        out.line(format!("Chip ID: {:#010x}", flasher.chip().chip_id));
        Ok(())
    })
}
