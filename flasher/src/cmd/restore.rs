//! `restore [-fs/-fm/-ff] [--force] FILE`: writes a backup made by `backup`, or a plain
//! firmware image, back to the chip.

use std::path::Path;
use std::rc::Rc;

use esp_flasher::backup::{load_restore_image, restore, RestoreOptions};
use esp_flasher::files::OutputLock;
use esp_flasher::{Error, Flasher, Loader, WriteOptions};

use super::files::{finish_interrupted_backup, io_reason};
use super::fleet::template;
use super::monitor::with_chip_to_change_then_monitor;
use super::session::{Line, Stopwatch};
use super::write_flash::{header_params, print_region};
use super::CmdError;
use crate::cli::{ConnectArgs, RestoreArgs};
use crate::output::Output;

/// Checks the image against its record (if any) before connecting, then against the chip,
/// and writes it at 0x0. A FILE named by `{mac}` (each board its own backup) is read once
/// the chip has answered.
pub fn run(args: &RestoreArgs, connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    if template::needs_mac(&args.file) {
        return with_chip_to_change_then_monitor(
            "restore",
            connect,
            &args.monitor,
            out,
            |flasher, out| {
                let file = template::with_mac(&args.file, &flasher.chip().mac);
                let _lock = check_image(&file, out)?;
                write_image(flasher, args, &file, out)
            },
        );
    }
    let _lock = match args.image_locked {
        true => None,
        false => check_image(&args.file, out)?,
    };
    with_chip_to_change_then_monitor("restore", connect, &args.monitor, out, |flasher, out| {
        write_image(flasher, args, &args.file, out)
    })
}

/// Settles an interrupted backup of `file` and checks that it loads, with its record if it
/// has one; the lock, if one could be taken, keeps a backup of the same name from starting
/// until the restore is done.
pub(super) fn check_image(file: &Path, out: &Output) -> Result<Option<OutputLock>, CmdError> {
    // A backup of this file still running must finish first: settling its files now would
    // take its temporary image for one an interrupted run left. Where no lock file can be
    // made (read-only media), no esp-flasher can be writing there either.
    let lock = match OutputLock::acquire(file) {
        Err(busy @ Error::OutputBusy { .. }) => return Err(busy.into()),
        held_or_read_only => held_or_read_only.ok(),
    };
    // A backup on read-only media can still be restored: load_restore_image takes a
    // committed image from its temporary name.
    if let Err(CmdError::Failed { message, .. }) = finish_interrupted_backup(file, out) {
        out.warn(format!("{message}; restoring from the files as they are"));
    }
    let image = load_restore_image(file).map_err(|error| match error {
        Error::File { path, source } => {
            CmdError::Usage(format!("{}: {}", path.display(), io_reason(&source)))
        }
        other => CmdError::Usage(other.to_string()),
    })?;
    if image.record.is_none() {
        out.line(format!(
            "'{}' has no .json record: checking its header against the chip instead.",
            file.display()
        ));
    }
    Ok(lock)
}

/// Checks the image in `file` against the chip and writes it.
fn write_image(
    flasher: &mut Flasher<Line>,
    args: &RestoreArgs,
    file: &Path,
    out: &Output,
) -> Result<(), CmdError> {
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
    let report = restore(flasher, file, &options)?;
    let seconds = started.seconds(flasher);
    for region in &report.regions {
        print_region(region, seconds, out);
    }
    out.line(format!("Restored '{}'.", file.display()));
    Ok(())
}
