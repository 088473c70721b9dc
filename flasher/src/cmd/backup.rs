//! `backup FILE`: the whole flash to FILE, with a FILE.json record (stub only).

use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::Serialize;

use esp_flasher::backup::{backup, record_path, BackupRecord};

use esp_flasher::files::OutputLock;
use esp_flasher::Flasher;

use super::files::{check_output, check_output_folder, finish_interrupted_backup};
use super::fleet::template;
use super::session::{with_chip_or_demonstration, Line, Stopwatch};
use super::CmdError;
use crate::cli::{BackupArgs, ConnectArgs};
use crate::output::{rate, Output};

/// `backup`'s JSON result.
#[derive(Debug, Serialize)]
pub struct BackupResult {
    /// The flash image written.
    pub file: PathBuf,
    /// Its record, FILE.json.
    pub record_file: PathBuf,
    /// Seconds the read took on the line's clock.
    #[serde(serialize_with = "crate::json::rounded_seconds")]
    pub seconds: f64,
    /// What the record holds.
    pub record: BackupRecord,
}

/// Reads and checks the flash, then writes the image and its record as one pair. A FILE
/// named by `{mac}` is settled once the chip has answered.
pub fn run(args: &BackupArgs, connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    if template::needs_mac(&args.file) {
        check_output_folder(&args.file)?;
        return with_chip_or_demonstration(connect, out, |flasher, out| {
            let file = template::with_mac(&args.file, &flasher.chip().mac);
            template::claim(&file, flasher.transport().port(), &flasher.chip().mac)?;
            check_output(&file)?;
            let _lock = OutputLock::acquire(&file)?;
            finish_interrupted_backup(&file, out)?;
            back_up(flasher, args, &file, out)
        });
    }
    check_output(&args.file)?;
    // Held until the file is in place: a second run writing the same name is refused now.
    let _lock = OutputLock::acquire(&args.file)?;
    finish_interrupted_backup(&args.file, out)?;
    with_chip_or_demonstration(connect, out, |flasher, out| {
        back_up(flasher, args, &args.file, out)
    })
}

/// Backs the whole flash up to `file` and says what was saved.
fn back_up(
    flasher: &mut Flasher<Line>,
    args: &BackupArgs,
    file: &Path,
    out: &Output,
) -> Result<(), CmdError> {
    out.note_file(file);
    if args.no_compress {
        flasher.disable_compressed_reads();
    }
    let started = Stopwatch::start(flasher);
    let virtual_port = flasher.transport().virtual_port().map(str::to_string);
    let record = backup(flasher, file, virtual_port.as_deref())?;
    let seconds = started.seconds(flasher);
    out.line(format!(
        "Read {} bytes from 0x00000000 in {seconds:.1} seconds{} to '{}'.",
        record.flash_size,
        rate(record.flash_size as usize, seconds),
        file.display()
    ));
    out.line("Hash of data verified.");
    let origin = match &record.emu {
        Some(emu) => format!("the built-in virtual {} ({emu})", record.chip),
        None => record.chip.clone(),
    };
    out.line(format!(
        "Backup record: '{}' ({origin}, MAC {}, flash ID {:06x}, MD5 {}).",
        record_path(file).display(),
        record.mac,
        record.flash_jedec_id,
        record.md5
    ));
    out.result(&BackupResult {
        file: file.to_path_buf(),
        record_file: record_path(file),
        seconds,
        record,
    });
    Ok(())
}
