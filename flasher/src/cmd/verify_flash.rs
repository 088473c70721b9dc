//! `verify_flash [-fs/-fm/-ff] ADDR FILE ...`: does the flash hold these files? (stub only)

use std::path::PathBuf;
use std::rc::Rc;

use serde::Serialize;

use esp_flasher::ops::size_probe::real_size_limit;
use esp_flasher::{Error, HeaderSize};
use esp_protocol::flash_params::FlashSize;
use esp_protocol::image::patch_flash_params;

use super::files::read_regions;
use super::session::with_chip;
use super::write_flash::{header_params, warn_if_larger_than_flash};
use super::CmdError;
use crate::cli::{ConnectArgs, VerifyFlashArgs};
use crate::output::Output;

/// `verify_flash`'s JSON result, also given when a file differs (the command then fails).
#[derive(Debug, Serialize)]
pub struct VerifyFlashResult {
    /// True when the flash holds every file.
    pub verified: bool,
    /// Each file, in the order given.
    pub regions: Vec<VerifiedRegion>,
}

/// One file compared.
#[derive(Debug, Serialize)]
pub struct VerifiedRegion {
    /// Where in flash it was compared.
    pub address: u32,
    /// Bytes compared.
    pub size: usize,
    /// The file.
    pub file: PathBuf,
    /// True when the flash holds it (with the header as `-fm/-fs/-ff` patch it).
    pub matches: bool,
}

/// Compares each file (with the header as write_flash would patch it) by MD5.
pub fn run(
    args: &VerifyFlashArgs,
    connect: &ConnectArgs,
    out: &Rc<Output>,
) -> Result<(), CmdError> {
    let regions = read_regions(&args.addr_file)?;
    with_chip("verify_flash", connect, out, |flasher, out| {
        for region in &regions {
            flasher.check_in_flash(region.address, region.data.len() as u64)?;
        }
        let end = regions
            .iter()
            .map(|r| u64::from(r.address) + r.data.len() as u64)
            .max();
        real_size_limit(flasher, end.unwrap_or(0))?;
        warn_if_larger_than_flash(&args.params, flasher, out)?;
        let header = header_params(&args.params);
        let size = match header.size {
            HeaderSize::Keep => None,
            HeaderSize::Set(size) => Some(size),
            HeaderSize::Detect => {
                let bytes = flasher.flash_size()?;
                let jedec_id = flasher.flash_info().jedec_id;
                Some(FlashSize::from_bytes(bytes).ok_or(Error::UnknownFlashSize { jedec_id })?)
            }
        };
        let overrides = args.params.overrides(size);
        let mut mismatches = Vec::new();
        let mut compared = Vec::new();
        for region in regions {
            let mut data = region.data;
            patch_flash_params(&mut data, region.address, &overrides);
            out.line(format!(
                "Verifying {:#x} ({}) bytes at {:#010x} in flash against '{}'...",
                data.len(),
                data.len(),
                region.address,
                region.path.display()
            ));
            let matches = match flasher.verify(region.address, &data) {
                Ok(()) => {
                    out.line("Hash of data verified.");
                    true
                }
                Err(Error::VerifyFailed { .. }) => {
                    out.line(format!(
                        "'{}' differs from the flash.",
                        region.path.display()
                    ));
                    mismatches.push(region.path.display().to_string());
                    false
                }
                Err(other) => return Err(other.into()),
            };
            compared.push(VerifiedRegion {
                address: region.address,
                size: data.len(),
                file: region.path,
                matches,
            });
        }
        out.result(&VerifyFlashResult {
            verified: mismatches.is_empty(),
            regions: compared,
        });
        if mismatches.is_empty() {
            out.line("Verification successful (digest matched).");
            Ok(())
        } else {
            Err(CmdError::failed(
                format!(
                    "verification failed: the flash does not hold {}",
                    mismatches.join(", ")
                ),
                "Write the file(s) again with write_flash.",
            ))
        }
    })
}
