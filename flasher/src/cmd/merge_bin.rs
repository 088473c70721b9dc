//! `merge_bin -o OUT ADDR FILE ...`: one image of several files, gaps filled with 0xFF.

use esp_protocol::image::{patch_flash_params, FlashParamsPatch};

use super::files::{check_output, read_regions, write_output};
use super::CmdError;
use crate::cli::{FlashSizeArg, MergeBinArgs};
use crate::output::Output;

/// Builds the merged file, patching the header at 0x0 as `-fs/-fm/-ff` say.
pub fn run(args: &MergeBinArgs, out: &Output) -> Result<(), CmdError> {
    let size = match args.params.flash_size {
        FlashSizeArg::Keep => None,
        FlashSizeArg::Size(size) => Some(size),
        FlashSizeArg::Detect => {
            return Err(CmdError::Usage(
                "merge_bin has no chip to detect the flash size from: give -fs keep or a size such as 1MB".into(),
            ))
        }
    };
    let regions = read_regions(&args.addr_file)?;
    check_output(&args.output)?;
    let overrides = args.params.overrides(size);
    let mut merged = Vec::new();
    for region in regions {
        let mut data = region.data;
        let patch = patch_flash_params(&mut data, region.address, &overrides);
        match patch {
            FlashParamsPatch::Changed { after, .. } => {
                out.line(format!("Flash parameters set to {after}."))
            }
            FlashParamsPatch::NotAnImage | FlashParamsPatch::InvalidImage(_) => {
                out.warn(format!("{} at 0x0: {patch}", region.path.display()))
            }
            FlashParamsPatch::NotApplicable | FlashParamsPatch::Unchanged(_) => {}
        }
        out.line(format!(
            "Adding '{}' at {:#x}...",
            region.path.display(),
            region.address
        ));
        merged.resize(region.address as usize, 0xFF);
        merged.extend_from_slice(&data);
    }
    if let Some(pad) = args.pad_to_size {
        if merged.len() < pad.bytes() as usize {
            merged.resize(pad.bytes() as usize, 0xFF);
        }
    }
    write_output(&args.output, &merged)?;
    out.line(format!(
        "Wrote {:#x} bytes to file '{}', ready to flash to offset 0x0.",
        merged.len(),
        args.output.display()
    ));
    Ok(())
}
