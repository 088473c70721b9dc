//! `restore [-fs/-fm/-ff] [--force] FILE`: writes a backup made by `backup`, or a plain
//! firmware image, back to the chip.

use std::rc::Rc;

use esp_flasher::backup::{load_restore_image, restore, RestoreOptions};
use esp_flasher::files::OutputLock;
use esp_flasher::{Error, Loader, WriteOptions};

use super::files::{finish_interrupted_backup, io_reason};
use super::monitor::with_chip_to_change_then_monitor;
use super::session::Stopwatch;
use super::write_flash::{header_params, print_region};
use super::CmdError;
use crate::cli::{ConnectArgs, RestoreArgs};
use crate::output::Output;

/// Checks the image against its record (if any) before connecting, then against the chip,
/// and writes it at 0x0.
pub fn run(args: &RestoreArgs, connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    // A backup of this file still running must finish first: settling its files now would
    // take its temporary image for one an interrupted run left. Where no lock file can be
    // made (read-only media), no esp-flasher can be writing there either.
    let _lock = match OutputLock::acquire(&args.file) {
        Err(busy @ Error::OutputBusy { .. }) => return Err(busy.into()),
        held_or_read_only => held_or_read_only.ok(),
    };
    // A backup on read-only media can still be restored: load_restore_image takes a
    // committed image from its temporary name.
    if let Err(CmdError::Failed { message, .. }) = finish_interrupted_backup(&args.file, out) {
        out.warn(format!("{message}; restoring from the files as they are"));
    }
    let image = load_restore_image(&args.file).map_err(|error| match error {
        Error::File { path, source } => {
            CmdError::Usage(format!("{}: {}", path.display(), io_reason(&source)))
        }
        other => CmdError::Usage(other.to_string()),
    })?;
    if image.record.is_none() {
        out.line(format!(
            "'{}' has no .json record: checking its header against the chip instead.",
            args.file.display()
        ));
    }
    let monitor = &args.monitor;
    with_chip_to_change_then_monitor("restore", connect, monitor, out, |flasher, out| {
        let stub = flasher.loader() == Loader::Stub;
        let options = RestoreOptions {
            write: WriteOptions {
                compress: stub,
                verify: stub,
                skip_unchanged: stub,
                header: header_params(&args.params),
            },
            force: args.force,
            to_virtual_chip: flasher.transport().virtual_port().is_some(),
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
