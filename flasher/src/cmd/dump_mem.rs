//! `dump_mem ADDR SIZE FILE`: memory to a file, a word at a time.

use std::path::PathBuf;
use std::rc::Rc;

use serde::Serialize;

use super::files::{check_output, check_output_folder, write_output};
use super::fleet::template;
use super::session::{with_chip, Stopwatch};
use super::CmdError;
use crate::cli::{ConnectArgs, DumpMemArgs};
use crate::output::{rate, Output};

/// `dump_mem`'s JSON result.
#[derive(Debug, Serialize)]
pub struct DumpMemResult {
    /// The first address read.
    pub address: u32,
    /// Bytes read and saved.
    pub size: usize,
    /// Where they were saved.
    pub file: PathBuf,
    /// Seconds the reading took on the line's clock.
    #[serde(serialize_with = "crate::json::rounded_seconds")]
    pub seconds: f64,
}

/// Reads SIZE bytes (a multiple of 4) and saves them. A FILE named by `{mac}` is settled
/// once the chip has answered.
pub fn run(args: &DumpMemArgs, connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    if !args.size.is_multiple_of(4) || !args.address.is_multiple_of(4) {
        return Err(CmdError::Usage(format!(
            "dump_mem reads whole words: address {:#x} and size {:#x} must be multiples of 4",
            args.address, args.size
        )));
    }
    let by_mac = template::needs_mac(&args.file);
    match by_mac {
        true => check_output_folder(&args.file)?,
        false => check_output(&args.file)?,
    }
    with_chip("dump_mem", connect, out, |flasher, out| {
        let file = template::with_mac(&args.file, &flasher.chip().mac);
        if by_mac {
            template::claim(&file, flasher.transport().port(), &flasher.chip().mac)?;
            check_output(&file)?;
        }
        out.note_file(&file);
        out.line(format!(
            "Dumping {} bytes from {:#010x} to file '{}'...",
            args.size,
            args.address,
            file.display()
        ));
        let started = Stopwatch::start(flasher);
        let data = flasher.dump_mem(args.address, args.size)?;
        let seconds = started.seconds(flasher);
        write_output(&file, &data)?;
        out.line(format!(
            "Dumped {} bytes from {:#010x} in {seconds:.1} seconds{} to '{}'.",
            data.len(),
            args.address,
            rate(data.len(), seconds),
            file.display()
        ));
        out.result(&DumpMemResult {
            address: args.address,
            size: data.len(),
            file,
            seconds,
        });
        Ok(())
    })
}
