//! `run`: leaves the loader and starts the firmware in flash.

use std::rc::Rc;

use super::session::{Access, Session};
use super::CmdError;
use crate::cli::ConnectArgs;
use crate::output::Output;

/// Starts the firmware; `--after` does not apply, the chip is already running it.
pub fn run(connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    Session::open(
        connect,
        out,
        Access::Board {
            command: "run",
            changes: false,
        },
    )?
    .run(None, |flasher, out| {
        flasher.run()?;
        out.line("Running the firmware in flash.");
        Ok(())
    })
}
