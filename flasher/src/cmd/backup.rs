//! `backup FILE`: the whole flash to FILE, with a FILE.json record (stub only).

use std::path::PathBuf;
use std::rc::Rc;

use serde::Serialize;

use esp_flasher::backup::{backup, record_path, BackupRecord};

use esp_flasher::files::OutputLock;

use super::files::{check_output, finish_interrupted_backup};
use super::session::{with_chip_or_demonstration, Stopwatch};
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

/// Reads and checks the flash, then writes the image and its record as one pair.
pub fn run(args: &BackupArgs, connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    check_output(&args.file)?;
    // Held until the file is in place: a second run writing the same name is refused now.
    let _lock = OutputLock::acquire(&args.file)?;
    finish_interrupted_backup(&args.file, out)?;
    with_chip_or_demonstration(connect, out, |flasher, out| {
        if args.no_compress {
            flasher.disable_compressed_reads();
        }
        let started = Stopwatch::start(flasher);
        let virtual_port = flasher.transport().virtual_port().map(str::to_string);
        let record = backup(flasher, &args.file, virtual_port.as_deref())?;
        let seconds = started.seconds(flasher);
        out.line(format!(
            "Read {} bytes from 0x00000000 in {seconds:.1} seconds{} to '{}'.",
            record.flash_size,
            rate(record.flash_size as usize, seconds),
            args.file.display()
        ));
        out.line("Hash of data verified.");
        let origin = match &record.emu {
            Some(emu) => format!("the built-in virtual {} ({emu})", record.chip),
            None => record.chip.clone(),
        };
        out.line(format!(
            "Backup record: '{}' ({origin}, MAC {}, flash ID {:06x}, MD5 {}).",
            record_path(&args.file).display(),
            record.mac,
            record.flash_jedec_id,
            record.md5
        ));
        out.result(&BackupResult {
            file: args.file.clone(),
            record_file: record_path(&args.file),
            seconds,
            record,
        });
        Ok(())
    })
}
