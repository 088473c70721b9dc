//! `restore [-fs/-fm/-ff] FILE`: writes a backup made by `backup` back to the chip.

use std::rc::Rc;

use esp_flasher::backup::{load_backup, restore};
use esp_flasher::{Error, Loader, WriteOptions};

use super::files::io_reason;
use super::session::{with_chip, Stopwatch};
use super::write_flash::{header_params, print_region};
use super::CmdError;
use crate::cli::{ConnectArgs, RestoreArgs};
use crate::output::Output;

/// Checks the backup against its record before connecting, then writes it at 0x0.
pub fn run(args: &RestoreArgs, connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    load_backup(&args.file).map_err(|error| match error {
        Error::File { path, source } => {
            CmdError::Usage(format!("{}: {}", path.display(), io_reason(&source)))
        }
        other => CmdError::Usage(other.to_string()),
    })?;
    with_chip(connect, out, |flasher, out| {
        let stub = flasher.loader() == Loader::Stub;
        let options = WriteOptions {
            compress: stub,
            verify: stub,
            skip_unchanged: stub,
            header: header_params(&args.params),
        };
        let started = Stopwatch::start(flasher);
        let report = restore(flasher, &args.file, &options)?;
        let seconds = started.seconds(flasher);
        for region in &report.regions {
            print_region(region, seconds, out);
        }
        out.line(format!("Restored '{}'.", args.file.display()));
        Ok(())
    })
}
