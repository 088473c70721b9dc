//! `erase_flash`: erases the whole chip (stub only).

use std::rc::Rc;

use super::session::{with_chip_to_change, Stopwatch};
use super::CmdError;
use crate::cli::ConnectArgs;
use crate::output::Output;

/// Erases everything and says how long it took.
pub fn run(connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    with_chip_to_change("erase_flash", connect, out, |flasher, out| {
        out.line("Erasing flash memory (this may take a while)...");
        let started = Stopwatch::start(flasher);
        flasher.erase_flash()?;
        out.line(format!(
            "Flash memory erased successfully in {:.1} seconds.",
            started.seconds(flasher)
        ));
        Ok(())
    })
}
