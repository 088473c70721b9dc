//! `read_flash ADDR SIZE|ALL FILE`: flash contents to a file (stub only).

use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::Serialize;

use esp_flasher::ops::size_probe::real_size_limit;

use esp_flasher::files::OutputLock;
use esp_flasher::Flasher;

use super::files::{check_output, check_output_folder};
use super::fleet::template;
use super::session::{with_chip, Line, Stopwatch};
use super::CmdError;
use crate::cli::{ConnectArgs, ReadFlashArgs, ReadSize};
use crate::output::{rate, Output};

/// `read_flash`'s JSON result.
#[derive(Debug, Serialize)]
pub struct ReadFlashResult {
    /// The first flash address read.
    pub address: u32,
    /// Bytes read and saved.
    pub size: u32,
    /// Where they were saved.
    pub file: PathBuf,
    /// Seconds the read took on the line's clock.
    #[serde(serialize_with = "crate::json::rounded_seconds")]
    pub seconds: f64,
}

/// Reads the range (ALL: up to the end of the flash) and saves it once complete. A FILE
/// named by `{mac}` is settled once the chip has answered.
pub fn run(args: &ReadFlashArgs, connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    if template::needs_mac(&args.file) {
        check_output_folder(&args.file)?;
        check_size(args)?;
        return with_chip("read_flash", connect, out, |flasher, out| {
            let file = template::with_mac(&args.file, &flasher.chip().mac);
            template::claim(&file, flasher.transport().port(), &flasher.chip().mac)?;
            check_output(&file)?;
            let _lock = OutputLock::acquire(&file)?;
            read_to(flasher, args, &file, out)
        });
    }
    check_output(&args.file)?;
    // Held until the file is in place: a second run writing the same name is refused now.
    let _lock = OutputLock::acquire(&args.file)?;
    check_size(args)?;
    with_chip("read_flash", connect, out, |flasher, out| {
        read_to(flasher, args, &args.file, out)
    })
}

/// Refuses a read of nothing.
fn check_size(args: &ReadFlashArgs) -> Result<(), CmdError> {
    match args.size {
        ReadSize::Bytes(0) => Err(CmdError::Usage("read_flash size 0 reads nothing".into())),
        _ => Ok(()),
    }
}

/// Reads the range into `file` and says how long it took.
fn read_to(
    flasher: &mut Flasher<Line>,
    args: &ReadFlashArgs,
    file: &Path,
    out: &Output,
) -> Result<(), CmdError> {
    out.note_file(file);
    let size = match args.size {
        ReadSize::Bytes(size) => size,
        ReadSize::All => flasher.flash_size()?.saturating_sub(args.address),
    };
    flasher.check_in_flash(args.address, size.into())?;
    real_size_limit(flasher, u64::from(args.address) + u64::from(size))?;
    if args.no_compress {
        flasher.disable_compressed_reads();
    }
    let started = Stopwatch::start(flasher);
    flasher.read_flash_to_file(args.address, size, file)?;
    let seconds = started.seconds(flasher);
    out.line(format!(
        "Read {size} bytes from {:#010x} in {seconds:.1} seconds{} to '{}'.",
        args.address,
        rate(size as usize, seconds),
        file.display()
    ));
    out.result(&ReadFlashResult {
        address: args.address,
        size,
        file: file.to_path_buf(),
        seconds,
    });
    Ok(())
}
