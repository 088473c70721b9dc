//! `write_flash [-fs/-fm/-ff] [-e] [-z|-u] [--verify|--no-verify] ADDR FILE ...`.

use std::rc::Rc;

use esp_flasher::ops::size_probe::real_size_limit;
use esp_flasher::{
    Flasher, HeaderParams, HeaderSize, Loader, Region, RegionReport, Transport, WriteOptions,
};
use esp_protocol::flash_params::size_name;

use super::files::{read_regions, Region as FileRegion};
use super::monitor::with_chip_to_change_then_monitor;
use super::session::Stopwatch;
use super::CmdError;
use crate::cli::{ConnectArgs, FlashParamArgs, FlashSizeArg, WriteFlashArgs};
use crate::output::{rate, Output};

/// Reads every file first, then writes them region by region.
pub fn run(args: &WriteFlashArgs, connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    let regions = read_regions(&args.addr_file)?;
    let monitor = &args.monitor;
    with_chip_to_change_then_monitor("write_flash", connect, monitor, out, |flasher, out| {
        let stub = flasher.loader() == Loader::Stub;
        let verify = match (args.verify, args.no_verify) {
            (true, _) => true,
            (_, true) => false,
            _ => stub,
        };
        if !verify && !args.no_verify {
            out.warn("the ROM loader cannot compute MD5s, so the written data will not be verified (a stub can)");
        }
        let options = WriteOptions {
            compress: args.compression().unwrap_or(stub),
            verify,
            skip_unchanged: stub && !args.erase_all,
            header: header_params(&args.params),
        };
        let to_write: Vec<Region> = regions
            .iter()
            .map(|file| Region {
                address: file.address,
                data: file.data.clone(),
            })
            .collect();
        flasher.check_regions(&to_write)?;
        let end = to_write
            .iter()
            .map(|r| u64::from(r.address) + r.data.len() as u64)
            .max();
        real_size_limit(flasher, end.unwrap_or(0))?;
        warn_if_larger_than_flash(&args.params, flasher, out)?;
        if args.erase_all {
            out.line("Erasing flash memory (this may take a while)...");
            flasher.erase_flash()?;
        }
        write_regions(flasher, &regions, to_write, &options, out)
    })
}

/// esptool's warning for a `-fs` larger than the flash found; the write goes on, as
/// esptool's does, with that size in the header (the regions must still fit the real flash).
pub fn warn_if_larger_than_flash<T: Transport>(
    params: &FlashParamArgs,
    flasher: &Flasher<T>,
    out: &Output,
) -> Result<(), CmdError> {
    if let FlashSizeArg::Size(size) = params.flash_size {
        let available = flasher.flash_size()?;
        if size.bytes() > available {
            out.warn(format!(
                "Set flash_size {} is larger than the available flash size of {}; writing it to the header anyway",
                size.name(),
                size_name(available.into())
            ));
        }
    }
    Ok(())
}

/// The library's header parameters for `-fs/-fm/-ff`.
pub fn header_params(params: &FlashParamArgs) -> HeaderParams {
    HeaderParams {
        mode: params.flash_mode.value(),
        freq: params.flash_freq.value(),
        size: match params.flash_size {
            FlashSizeArg::Keep => HeaderSize::Keep,
            FlashSizeArg::Detect => HeaderSize::Detect,
            FlashSizeArg::Size(size) => HeaderSize::Set(size),
        },
    }
}

/// Writes each file, timing it and saying what was sent.
fn write_regions<T: Transport>(
    flasher: &mut Flasher<T>,
    regions: &[FileRegion],
    to_write: Vec<Region>,
    options: &WriteOptions,
    out: &Output,
) -> Result<(), CmdError> {
    for (file, region) in regions.iter().zip(to_write) {
        if regions.len() > 1 {
            out.line(format!(
                "Writing '{}' at {:#010x}...",
                file.path.display(),
                file.address
            ));
        }
        let started = Stopwatch::start(flasher);
        let report = flasher.write_flash(&[region], options)?;
        let seconds = started.seconds(flasher);
        for region in &report.regions {
            print_region(region, seconds, out);
        }
    }
    Ok(())
}

/// esptool's "Compressed ...", "Wrote ..." and "Hash of data verified." lines for one region.
pub fn print_region(region: &RegionReport, seconds: f64, out: &Output) {
    if region.written > 0 {
        print_written(region, seconds, out);
    }
    if region.verified {
        out.line("Hash of data verified.");
    }
}

/// The lines for the bytes that were sent.
fn print_written(region: &RegionReport, seconds: f64, out: &Output) {
    let speed = rate(region.written, seconds);
    match region.compressed {
        Some(compressed) => {
            out.line(format!(
                "Compressed {} bytes to {compressed}...",
                region.written
            ));
            out.line(format!(
                "Wrote {} bytes ({compressed} compressed) at {:#010x} in {seconds:.1} seconds{speed}.",
                region.written, region.address
            ));
        }
        None => out.line(format!(
            "Wrote {} bytes at {:#010x} in {seconds:.1} seconds{speed}.",
            region.written, region.address
        )),
    }
}
