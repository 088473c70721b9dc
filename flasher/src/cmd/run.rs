//! `run [--monitor]`: leaves the loader and starts the firmware in flash.

use std::rc::Rc;

use super::monitor;
use super::session::{Access, Session};
use super::CmdError;
use crate::cli::{ConnectArgs, RunArgs};
use crate::output::Output;

/// Starts the firmware; `--after` does not apply, the chip is already running it. With
/// `--monitor` the monitor shows its boot log and output.
pub fn run(args: &RunArgs, connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    let access = Access::Board {
        command: "run",
        changes: false,
    };
    let start = |flasher: &mut esp_flasher::Flasher<_>, out: &crate::output::Output| {
        flasher.run()?;
        out.line("Running the firmware in flash.");
        Ok(())
    };
    if !args.monitor.monitor {
        return Session::open(connect, out, access)?.run(None, start);
    }
    let prepared = monitor::prepare(&args.monitor.options)?;
    let line = Session::open(connect, out, access)?
        .run_keeping_line(crate::cli::AfterArg::NoReset, start)?;
    monitor::after_command(line, None, &args.monitor.options, prepared)
}
