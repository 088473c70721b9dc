//! Checks of the files a command names, done before anything is sent.

use std::path::{Path, PathBuf};

use esp_flasher::backup::{finish_interrupted, Interrupted};
use esp_flasher::ops::write::share_a_sector;

use super::fleet::template::needs_mac;
use super::CmdError;
use crate::cli::parse_u32;
use crate::output::Output;

/// A file to put at a flash address.
#[derive(Debug)]
pub struct Region {
    /// Flash offset.
    pub address: u32,
    /// The file, for messages.
    pub path: PathBuf,
    /// Its contents.
    pub data: Vec<u8>,
}

/// Reads `ADDR FILE ...` pairs: numbers parse, files exist and are not empty,
/// and no two files share a flash sector (as esptool checks).
pub fn read_regions(addr_file: &[String]) -> Result<Vec<Region>, CmdError> {
    if !addr_file.len().is_multiple_of(2) {
        return Err(CmdError::Usage(format!(
            "\"{}\" has no address or no file: give ADDR FILE pairs",
            addr_file.last().map_or("", String::as_str)
        )));
    }
    let mut regions = Vec::new();
    for pair in addr_file.chunks(2) {
        let address =
            parse_u32(&pair[0]).map_err(|error| CmdError::Usage(format!("address {error}")))?;
        let path = PathBuf::from(&pair[1]);
        let data = read_input(&path)?;
        if data.is_empty() {
            return Err(CmdError::Usage(format!(
                "{} is empty: nothing to write",
                path.display()
            )));
        }
        if u64::from(address) + data.len() as u64 > 1 << 32 {
            return Err(CmdError::Usage(format!(
                "{} ({} bytes) at {address:#x} runs past the 4 GB address space",
                path.display(),
                data.len()
            )));
        }
        regions.push(Region {
            address,
            path,
            data,
        });
    }
    regions.sort_by_key(|region| region.address);
    for pair in regions.windows(2) {
        if share_a_sector(pair[0].address, pair[0].data.len(), pair[1].address) {
            return Err(CmdError::Usage(format!(
                "{} at {:#x} overlaps the sectors of {} at {:#x}",
                pair[1].path.display(),
                pair[1].address,
                pair[0].path.display(),
                pair[0].address
            )));
        }
    }
    Ok(regions)
}

/// Reads an input file; a missing or unreadable file is a usage error naming it.
pub fn read_input(path: &Path) -> Result<Vec<u8>, CmdError> {
    std::fs::read(path)
        .map_err(|error| CmdError::Usage(format!("{}: {}", path.display(), io_reason(&error))))
}

/// Checks that `path` can be created: its folder exists and it is not a folder itself.
pub fn check_output(path: &Path) -> Result<(), CmdError> {
    if path.is_dir() {
        return Err(CmdError::Usage(format!(
            "{} is a folder, not a file name",
            path.display()
        )));
    }
    let parent = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty());
    if let Some(parent) = parent {
        if !parent.is_dir() {
            return Err(CmdError::Usage(format!(
                "{}: folder {} does not exist",
                path.display(),
                parent.display()
            )));
        }
    }
    Ok(())
}

/// For an output name settled only once the chip has answered (`{mac}`): checks now what
/// can be, its folder when the placeholder is in the file's own name only.
pub fn check_output_folder(template: &Path) -> Result<(), CmdError> {
    let parent = template
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty() && !needs_mac(parent));
    match parent {
        Some(parent) if !parent.is_dir() => Err(CmdError::Usage(format!(
            "{}: folder {} does not exist",
            template.display(),
            parent.display()
        ))),
        _ => Ok(()),
    }
}

/// Settles what an interrupted backup of `image` left (finishing it, or removing its
/// temporary files) and says what was done.
pub fn finish_interrupted_backup(image: &Path, out: &Output) -> Result<(), CmdError> {
    match finish_interrupted(image)? {
        Interrupted::Nothing => {}
        Interrupted::Removed(files) => out.line(format!(
            "Removed what an interrupted backup left: {} ('{}' and its record are as before).",
            files
                .iter()
                .map(|file| format!("'{}'", file.display()))
                .collect::<Vec<_>>()
                .join(", "),
            image.display()
        )),
        Interrupted::Finished => out.line(format!(
            "An interrupted backup had written its record but not yet renamed its image: '{}' now holds that image.",
            image.display()
        )),
    }
    Ok(())
}

/// Writes an output file; failure is an operation error naming it.
pub fn write_output(path: &Path, data: &[u8]) -> Result<(), CmdError> {
    std::fs::write(path, data).map_err(|error| CmdError::Failed {
        message: format!("cannot write {}: {}", path.display(), io_reason(&error)),
        remedy: None,
    })
}

/// An I/O error's reason without the "(os error N)" suffix.
pub fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => {
            let text = error.to_string();
            match text.find(" (os error") {
                Some(end) => text[..end].to_string(),
                None => text,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn reads_pairs_sorted_by_address() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.bin");
        let b = dir.path().join("b.bin");
        std::fs::write(&a, [1; 10]).unwrap();
        std::fs::write(&b, [2; 10]).unwrap();
        let regions = read_regions(&pairs(&[
            "0x1000",
            b.to_str().unwrap(),
            "0",
            a.to_str().unwrap(),
        ]))
        .unwrap();
        assert_eq!(
            regions.iter().map(|r| r.address).collect::<Vec<_>>(),
            [0, 0x1000]
        );
        assert_eq!(regions[0].data, [1; 10]);
    }

    #[test]
    fn rejects_bad_addresses_missing_files_and_overlaps() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.bin");
        std::fs::write(&a, [1; 10]).unwrap();
        let a = a.to_str().unwrap();
        let message = |items: &[&str]| match read_regions(&pairs(items)) {
            Err(CmdError::Usage(message)) => message,
            other => panic!("{items:?}: {other:?}"),
        };
        assert!(message(&["0xZZ", a]).contains("\"0xZZ\""));
        assert!(message(&["0", "no-such.bin"]).contains("no-such.bin: no such file"));
        assert!(message(&["0", a, "0x800", a]).contains("overlaps"));
        assert!(read_regions(&pairs(&["0", a, "0x1000", a])).is_ok());
    }

    #[test]
    fn output_folder_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_output(&dir.path().join("out.bin")).is_ok());
        assert!(check_output(Path::new("out.bin")).is_ok());
        assert!(check_output(&dir.path().join("missing/out.bin")).is_err());
        assert!(check_output(dir.path()).is_err());
    }
}
