//! `erase_region ADDR SIZE`: erases whole sectors (stub only).

use std::rc::Rc;

use esp_flasher::ops::size_probe::real_size_limit;
use esp_protocol::rom_erase::SECTOR_SIZE;

use super::session::{with_chip_to_change, Stopwatch};
use super::CmdError;
use crate::cli::{ConnectArgs, EraseRegionArgs};
use crate::output::Output;

/// Checks the sector alignment before connecting, then erases.
pub fn run(
    args: &EraseRegionArgs,
    connect: &ConnectArgs,
    out: &Rc<Output>,
) -> Result<(), CmdError> {
    if !args.address.is_multiple_of(SECTOR_SIZE) {
        return Err(CmdError::Usage(format!(
            "erase_region address {:#x} is not a multiple of the {SECTOR_SIZE:#x}-byte sector",
            args.address
        )));
    }
    if !args.size.is_multiple_of(SECTOR_SIZE) || args.size == 0 {
        return Err(CmdError::Usage(format!(
            "erase_region size {:#x} is not a non-zero multiple of the {SECTOR_SIZE:#x}-byte sector",
            args.size
        )));
    }
    with_chip_to_change("erase_region", connect, out, |flasher, out| {
        flasher.check_in_flash(args.address, args.size.into())?;
        real_size_limit(flasher, u64::from(args.address) + u64::from(args.size))?;
        out.line("Erasing flash memory region (this may take a while depending on size)...");
        let started = Stopwatch::start(flasher);
        flasher.erase_region(args.address, args.size)?;
        out.line(format!(
            "Flash memory region erased successfully in {:.1} seconds.",
            started.seconds(flasher)
        ));
        Ok(())
    })
}
