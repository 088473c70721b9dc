//! `chip_id`: the SDK's chip ID, from the eFuses.

use std::rc::Rc;

use serde::Serialize;

use super::session::with_chip;
use super::CmdError;
use crate::cli::ConnectArgs;
use crate::output::Output;

/// `chip_id`'s JSON result.
#[derive(Debug, Serialize)]
pub struct ChipIdResult {
    /// The SDK's `system_get_chip_id()`.
    pub chip_id: u32,
}

/// Prints "Chip ID: 0x...".
pub fn run(connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    with_chip("chip_id", connect, out, |flasher, out| {
        let chip_id = flasher.chip().chip_id;
        out.line(format!("Chip ID: {chip_id:#010x}"));
        out.result(&ChipIdResult { chip_id });
        Ok(())
    })
}
