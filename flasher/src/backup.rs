//! Whole-flash backup and restore.
//!
//! `backup` reads all of the flash (with the block retries of
//! [`Flasher::read_flash`]), checks it against the device's own MD5 of the
//! flash, and only then writes the image and its `FILE.json` record of where
//! it came from, as one pair ([`crate::files::write_pair`]: after any crash the
//! pair is the old one or the new one once [`finish_interrupted`] has looked).
//! `restore` checks the image against its record, or a plain image against
//! its header, and both against the connected chip before writing it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use esp_protocol::flash_params::{FlashMode, FlashSize};
use esp_protocol::image::{read_flash_params, IMAGE_V1_MAGIC, IMAGE_V2_MAGIC};

use crate::chip::ChipKind;
use crate::error::{Error, Result};
use crate::files::{remove_if_present, temporary_path, write_pair, Disk, RealDisk};
use crate::flasher::Flasher;
use crate::ops::erase::md5_of;
use crate::ops::size_probe::real_size_limit;
use crate::ops::write::{HeaderSize, Region, WriteOptions, WriteReport};
use crate::progress::{Event, Warning};
use crate::transport::Transport;

pub use crate::files::write_file_atomically;

/// What `FILE.json` says about a backup `FILE`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupRecord {
    /// esptool's chip description, e.g. "ESP8266EX".
    pub chip: String,
    /// The chip's MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The flash's JEDEC ID, stored as hex text ("ef4016") as esptool prints it.
    #[serde(with = "hex_id")]
    pub flash_jedec_id: u32,
    /// Bytes in the image: the whole flash.
    pub flash_size: u32,
    /// MD5 of the image, hex.
    pub md5: String,
    /// When the backup was taken, RFC 3339 UTC.
    pub date: String,
    /// The tool and version that took it.
    pub tool: String,
    /// True when it was read from the built-in virtual chip, not from a board
    /// (`"virtual"` in the file; absent in records older than the field: false).
    #[serde(rename = "virtual", default)]
    pub from_virtual_chip: bool,
    /// The `emu:` port of that virtual chip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emu: Option<String>,
}

/// A JEDEC ID as lower-case hex text in the record.
mod hex_id {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &u32, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{id:06x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
        let text = String::deserialize(deserializer)?;
        u32::from_str_radix(&text, 16)
            .map_err(|_| D::Error::custom(format!("flash ID \"{text}\" is not hex")))
    }
}

/// The record file beside `image`: the same name with `.json` appended.
pub fn record_path(image: &Path) -> PathBuf {
    let mut name = OsString::from(image.as_os_str());
    name.push(".json");
    PathBuf::from(name)
}

/// What an interrupted backup of the same file had left, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupted {
    /// Nothing: the last backup finished (or there was none).
    Nothing,
    /// It stopped before its commit: these temporary files were removed, and the previous
    /// backup (if any) is as it was.
    Removed(Vec<PathBuf>),
    /// It stopped after writing the new record: its image was moved into place.
    Finished,
}

/// Finishes or undoes what an interrupted backup of `image` left (see
/// [`crate::files::write_pair`] for the states): afterwards `image` and its record are one
/// pair and no temporary file of theirs is left. Run before a new backup of `image` and
/// before a restore of it.
pub fn finish_interrupted(image: &Path) -> Result<Interrupted> {
    finish_interrupted_with(&mut RealDisk, image)
}

fn finish_interrupted_with(disk: &mut impl Disk, image: &Path) -> Result<Interrupted> {
    let file_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::File { path, source }
    };
    let image_temporary = temporary_path(image);
    let record_temporary = temporary_path(&record_path(image));
    let present = |path: &Path| path.symlink_metadata().is_ok();
    if !present(&record_temporary) && pending_image(image).is_some() {
        disk.rename(&image_temporary, image)
            .map_err(file_error(&image_temporary))?;
        let folder = image.parent().filter(|p| !p.as_os_str().is_empty());
        disk.sync_folder(folder.unwrap_or(Path::new(".")))
            .map_err(file_error(image))?;
        return Ok(Interrupted::Finished);
    }
    let mut removed = Vec::new();
    for temporary in [record_temporary, image_temporary] {
        if present(&temporary) {
            remove_if_present(&temporary).map_err(file_error(&temporary))?;
            removed.push(temporary);
        }
    }
    Ok(match removed.is_empty() {
        true => Interrupted::Nothing,
        false => Interrupted::Removed(removed),
    })
}

/// The image an interrupted backup committed but did not move into place: the temporary
/// image when the record names its size and MD5.
fn pending_image(image: &Path) -> Option<Vec<u8>> {
    let json = std::fs::read_to_string(record_path(image)).ok()?;
    let record: BackupRecord = serde_json::from_str(&json).ok()?;
    let data = std::fs::read(temporary_path(image)).ok()?;
    (data.len() == record.flash_size as usize && hex::encode(md5_of(&data)) == record.md5)
        .then_some(data)
}

/// Reads the whole flash into `path` and writes the record beside it. `virtual_port` is the
/// `emu:` port when the chip is the built-in virtual one, which the record then says.
pub fn backup<T: Transport>(
    flasher: &mut Flasher<T>,
    path: &Path,
    virtual_port: Option<&str>,
) -> Result<BackupRecord> {
    let size = flasher.flash_size()?;
    real_size_limit(flasher, size.into())?;
    let data = flasher.read_flash(0, size)?;
    let expected = md5_of(&data);
    let on_device = flasher.flash_md5(0, size)?;
    if on_device != expected {
        return Err(Error::VerifyFailed {
            address: 0,
            size: data.len(),
            expected: hex::encode(expected),
            got: hex::encode(on_device),
        });
    }
    flasher.report(Event::Verified {
        address: 0,
        size: data.len(),
    });
    let record = BackupRecord {
        chip: flasher.chip().description.clone(),
        mac: flasher.chip().mac_string(),
        flash_jedec_id: flasher.flash_info().jedec_id,
        flash_size: size,
        md5: hex::encode(expected),
        date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        tool: concat!("esp-flasher ", env!("CARGO_PKG_VERSION")).to_string(),
        from_virtual_chip: virtual_port.is_some(),
        emu: virtual_port.map(str::to_string),
    };
    save_backup(&mut RealDisk, path, &data, &record)?;
    Ok(record)
}

/// Writes the image and its record as one pair, after settling an earlier interrupted one
/// (its pending image must not be taken for an unfinished new one).
fn save_backup(
    disk: &mut impl Disk,
    path: &Path,
    data: &[u8],
    record: &BackupRecord,
) -> Result<()> {
    finish_interrupted(path)?;
    let json = serde_json::to_string_pretty(record).expect("a record always serialises");
    write_pair(disk, path, data, &record_path(path), json.as_bytes())
}

/// Reads a backup and its record, checking one against the other. The image is the one the
/// record names: `path`, or the image an interrupted backup committed but left under its
/// temporary name.
pub fn load_backup(path: &Path) -> Result<(Vec<u8>, BackupRecord)> {
    let record_file = record_path(path);
    let bad = |reason: String| Error::BadRecord {
        path: record_file.clone(),
        reason,
    };
    let json = std::fs::read_to_string(&record_file).map_err(|source| Error::File {
        path: record_file.clone(),
        source,
    })?;
    let record: BackupRecord = serde_json::from_str(&json).map_err(|e| bad(e.to_string()))?;
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(source) => {
            return pending_image(path)
                .map(|data| (data, record.clone()))
                .ok_or(Error::File {
                    path: path.to_path_buf(),
                    source,
                })
        }
    };
    if data.len() != record.flash_size as usize {
        if let Some(pending) = pending_image(path) {
            return Ok((pending, record));
        }
        return Err(bad(format!(
            "the image is {} bytes, the record says {}",
            data.len(),
            record.flash_size
        )));
    }
    let md5 = hex::encode(md5_of(&data));
    if md5 != record.md5 {
        if let Some(pending) = pending_image(path) {
            return Ok((pending, record));
        }
        return Err(bad(format!(
            "the image's MD5 is {md5}, the record says {}",
            record.md5
        )));
    }
    Ok((data, record))
}

/// An image to restore: a backup with its record, or a plain image without one (a
/// tutorial's `image1M.bin`, a downloaded firmware).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreImage {
    /// The bytes to write at 0x0.
    pub data: Vec<u8>,
    /// `FILE.json`, if there is one.
    pub record: Option<BackupRecord>,
}

/// Reads `path` and its record; without a record file the image stands alone.
pub fn load_restore_image(path: &Path) -> Result<RestoreImage> {
    match load_backup(path) {
        Ok((data, record)) => Ok(RestoreImage {
            data,
            record: Some(record),
        }),
        Err(Error::File {
            path: missing,
            source,
        }) if missing == record_path(path) && source.kind() == std::io::ErrorKind::NotFound => {
            let data = std::fs::read(path).map_err(|source| Error::File {
                path: path.to_path_buf(),
                source,
            })?;
            Ok(RestoreImage { data, record: None })
        }
        Err(other) => Err(other),
    }
}

/// Something about an image that does not fit the connected chip: `restore` stops unless
/// `--force` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The record names another chip.
    OtherChip {
        /// The chip in the record.
        recorded: String,
        /// The chip connected.
        connected: String,
    },
    /// The record names another flash chip.
    OtherFlash {
        /// The JEDEC ID in the record.
        recorded: u32,
        /// The connected flash's.
        connected: u32,
    },
    /// A plain image that does not start with an ESP8266 image header.
    NotAnImage {
        /// Its first byte.
        first_byte: u8,
    },
    /// A header flash mode byte that names no mode.
    UnknownFlashMode {
        /// The byte.
        byte: u8,
    },
    /// Header size bits that name no size.
    UnknownFlashSize {
        /// Header byte 3.
        byte: u8,
    },
    /// The header's flash size is larger than the chip's flash.
    HeaderSizeTooLarge {
        /// Bytes the header names.
        header: u32,
        /// Bytes of the connected flash.
        flash: u32,
    },
    /// A mode other than dout for an ESP8285, whose embedded flash needs dout.
    ModeNeedsDout {
        /// The header's mode.
        mode: FlashMode,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = |bytes: &u32| esp_protocol::flash_params::size_name((*bytes).into());
        match self {
            Mismatch::OtherChip { recorded, connected } => write!(
                f,
                "the backup was read from an {recorded}, but this chip is an {connected}"
            ),
            Mismatch::OtherFlash { recorded, connected } => write!(
                f,
                "the backup was read from flash ID {recorded:06x}, but this chip's flash is {connected:06x}"
            ),
            Mismatch::NotAnImage { first_byte } => write!(
                f,
                "it has no record and does not start like an ESP8266 firmware image (first byte {first_byte:#04x}, not 0xe9)"
            ),
            Mismatch::UnknownFlashMode { byte } => write!(
                f,
                "its header's flash mode byte {byte:#04x} is no mode (give -fm qio, qout, dio or dout)"
            ),
            Mismatch::UnknownFlashSize { byte } => write!(
                f,
                "its header's flash size bits ({byte:#04x}) name no size (give -fs)"
            ),
            Mismatch::HeaderSizeTooLarge { header, flash } => write!(
                f,
                "its header says a {} flash but this chip has {}: the firmware would look for its settings past the end (give -fs {})",
                size(header),
                size(flash),
                size(flash)
            ),
            Mismatch::ModeNeedsDout { mode } => write!(
                f,
                "its header says flash mode {mode}, but this ESP8285's embedded flash needs dout (give -fm dout)"
            ),
        }
    }
}

/// How to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreOptions {
    /// How to write.
    pub write: WriteOptions,
    /// Write even when a [`Mismatch`] was found (each becomes a warning).
    pub force: bool,
    /// The connected chip is the built-in virtual one, not a board.
    pub to_virtual_chip: bool,
}

/// Writes a backup (or a plain image) back, after checking it against its record and the
/// chip: a [`Mismatch`] stops it unless `force`, other differences become warnings.
pub fn restore<T: Transport>(
    flasher: &mut Flasher<T>,
    path: &Path,
    options: &RestoreOptions,
) -> Result<WriteReport> {
    let image = load_restore_image(path)?;
    let (mismatches, warnings) = match &image.record {
        Some(record) => record_checks(flasher, &image.data, record, options)?,
        None => (header_checks(flasher, &image.data, options)?, Vec::new()),
    };
    if !mismatches.is_empty() && !options.force {
        return Err(Error::RestoreMismatch {
            path: path.to_path_buf(),
            mismatches,
        });
    }
    for warning in warnings {
        flasher.report(Event::Warning(warning));
    }
    for mismatch in mismatches {
        // write_flash gives its own warning about a mode the ESP8285 cannot boot.
        if !matches!(mismatch, Mismatch::ModeNeedsDout { .. }) {
            flasher.report(Event::Warning(Warning::Forced(mismatch)));
        }
    }
    real_size_limit(flasher, image.data.len() as u64)?;
    flasher.write_flash(
        &[Region {
            address: 0,
            data: image.data,
        }],
        &options.write,
    )
}

/// A backup against the chip: another chip or flash must be forced; another MAC, another
/// size or a virtual chip's backup going to a board are warnings.
fn record_checks<T: Transport>(
    flasher: &Flasher<T>,
    data: &[u8],
    record: &BackupRecord,
    options: &RestoreOptions,
) -> Result<(Vec<Mismatch>, Vec<Warning>)> {
    let mut mismatches = Vec::new();
    let mut warnings = Vec::new();
    let chip = flasher.chip();
    if record.chip != chip.description {
        mismatches.push(Mismatch::OtherChip {
            recorded: record.chip.clone(),
            connected: chip.description.clone(),
        });
    }
    let jedec_id = flasher.flash_info().jedec_id;
    if record.flash_jedec_id != jedec_id {
        mismatches.push(Mismatch::OtherFlash {
            recorded: record.flash_jedec_id,
            connected: jedec_id,
        });
    }
    if record.mac != chip.mac_string() {
        warnings.push(Warning::DifferentChip {
            recorded_mac: record.mac.clone(),
            connected_mac: chip.mac_string(),
        });
    }
    if record.from_virtual_chip && !options.to_virtual_chip {
        warnings.push(Warning::VirtualBackup {
            emu: record.emu.clone().unwrap_or_else(|| "emu:".into()),
        });
    }
    let flash_size = flasher.flash_size()?;
    if data.len() as u32 != flash_size {
        let suggested_size_name = FlashSize::from_bytes(data.len() as u32).map_or_else(
            || format!("{}KB", data.len() / 1024),
            |size| size.name().to_string(),
        );
        warnings.push(Warning::FlashSizeMismatch {
            image_size: data.len() as u32,
            flash_size,
            suggested_size_name,
        });
    }
    // write_flash itself warns about an image whose flash mode the chip cannot boot.
    Ok((mismatches, warnings))
}

/// A plain image against the chip, from what its header says once `-fm`/`-fs` are applied:
/// the magic byte, a known mode (dout on an ESP8285), a known size no larger than the flash.
/// An image larger than the flash is refused by the write itself, force or not.
fn header_checks<T: Transport>(
    flasher: &Flasher<T>,
    data: &[u8],
    options: &RestoreOptions,
) -> Result<Vec<Mismatch>> {
    let Some(params) = read_flash_params(data) else {
        return Ok(vec![Mismatch::NotAnImage {
            first_byte: data.first().copied().unwrap_or(0),
        }]);
    };
    debug_assert!(matches!(data[0], IMAGE_V1_MAGIC | IMAGE_V2_MAGIC));
    let mut mismatches = Vec::new();
    let header = options.write.header;
    match header.mode.map_or_else(|| params.mode(), Ok) {
        Err(_) => mismatches.push(Mismatch::UnknownFlashMode {
            byte: params.mode_byte,
        }),
        Ok(mode) if mode != FlashMode::Dout && flasher.chip().kind == ChipKind::Esp8285 => {
            mismatches.push(Mismatch::ModeNeedsDout { mode })
        }
        Ok(_) => {}
    }
    let flash = flasher.flash_size()?;
    let header_size = match header.size {
        HeaderSize::Keep => params.size().map(FlashSize::bytes),
        HeaderSize::Set(size) => Ok(size.bytes()),
        HeaderSize::Detect => Ok(flash),
    };
    match header_size {
        Err(_) => mismatches.push(Mismatch::UnknownFlashSize {
            byte: params.size_freq_byte,
        }),
        Ok(header) if header > flash => {
            mismatches.push(Mismatch::HeaderSizeTooLarge { header, flash })
        }
        Ok(_) => {}
    }
    Ok(mismatches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::tests::FaultyDisk;

    #[test]
    fn record_path_appends_json() {
        assert_eq!(
            record_path(Path::new("dir/board.bin")),
            PathBuf::from("dir/board.bin.json")
        );
    }

    fn record_of(data: &[u8], virtual_port: Option<&str>) -> BackupRecord {
        BackupRecord {
            chip: "ESP8266EX".into(),
            mac: "18:fe:34:00:00:01".into(),
            flash_jedec_id: 0xEF4016,
            flash_size: data.len() as u32,
            md5: hex::encode(md5_of(data)),
            date: "2026-01-01T00:00:00Z".into(),
            tool: "test".into(),
            from_virtual_chip: virtual_port.is_some(),
            emu: virtual_port.map(str::to_string),
        }
    }

    #[test]
    fn record_stores_the_flash_id_as_hex_text_and_says_when_it_is_virtual() {
        let record = record_of(&[1, 2, 3], None);
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains(r#""flash_jedec_id":"ef4016""#), "{json}");
        assert!(json.contains(r#""virtual":false"#), "{json}");
        assert!(!json.contains("emu"), "{json}");
        assert_eq!(serde_json::from_str::<BackupRecord>(&json).unwrap(), record);
        let record = record_of(&[1, 2, 3], Some("emu:4MB"));
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains(r#""virtual":true,"emu":"emu:4MB""#), "{json}");
        // A record written before the field existed reads as a board's.
        let old = json.replace(r#","virtual":true,"emu":"emu:4MB""#, "");
        assert!(
            !serde_json::from_str::<BackupRecord>(&old)
                .unwrap()
                .from_virtual_chip
        );
    }

    #[test]
    fn load_backup_rejects_an_image_that_differs_from_its_record() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("b.bin");
        std::fs::write(&path, [1, 2, 3, 4]).unwrap();
        let record = record_of(&[9, 9, 9, 9], None);
        std::fs::write(record_path(&path), serde_json::to_string(&record).unwrap()).unwrap();
        let error = load_backup(&path).unwrap_err();
        assert!(matches!(error, Error::BadRecord { .. }), "{error}");
    }

    fn names(folder: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn on_disk(path: &Path) -> (Vec<u8>, BackupRecord) {
        let json = std::fs::read_to_string(record_path(path)).unwrap();
        (
            std::fs::read(path).unwrap(),
            serde_json::from_str(&json).unwrap(),
        )
    }

    /// Every moment a backup can be killed at, over an old backup of another size: a reader
    /// gets the old pair or the new one, and after the next run's look the files are one
    /// of the two pairs and nothing else.
    #[test]
    fn a_backup_killed_at_any_step_leaves_the_old_pair_or_the_new_one() {
        let old = (vec![0x11; 4096], record_of(&[0x11; 4096], None));
        let new = (vec![0x22; 8192], record_of(&[0x22; 8192], Some("emu:1MB")));
        let mut finished_once = false;
        for operations in 0..=12 {
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("b.bin");
            save_backup(&mut RealDisk, &path, &old.0, &old.1).unwrap();
            let mut dying = FaultyDisk::dying_after(operations);
            save_backup(&mut dying, &path, &new.0, &new.1).unwrap();
            let read = load_backup(&path).unwrap();
            assert!(read == old || read == new, "killed after {operations}");
            let outcome = finish_interrupted(&path).unwrap();
            finished_once |= outcome == Interrupted::Finished;
            assert_eq!(
                names(directory.path()),
                ["b.bin", "b.bin.json"],
                "{operations}"
            );
            let pair = on_disk(&path);
            assert_eq!(pair, read, "killed after {operations}: {outcome:?}");
            if dying.done == operations + 1 || operations >= 9 {
                // The process outlived the save, which is then complete.
                assert_eq!(pair, new, "{operations}");
            }
        }
        assert!(
            finished_once,
            "no kill fell between the commit and the image's rename"
        );
    }

    #[test]
    fn a_full_disk_keeps_the_old_backup_and_leaves_no_temporary() {
        let old = (vec![0x11; 4096], record_of(&[0x11; 4096], None));
        let new_data = vec![0x22; 8192];
        let new = record_of(&new_data, None);
        for space in [0, 100, 8191, 8192, 8192 + 50] {
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("b.bin");
            save_backup(&mut RealDisk, &path, &old.0, &old.1).unwrap();
            let error = save_backup(&mut FaultyDisk::with_space(space), &path, &new_data, &new)
                .unwrap_err();
            assert!(
                matches!(&error, Error::File { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
                "{space}: {error}"
            );
            assert_eq!(on_disk(&path), old, "{space}");
            assert_eq!(names(directory.path()), ["b.bin", "b.bin.json"], "{space}");
        }
    }

    #[test]
    fn a_first_backup_killed_after_its_commit_is_finished_by_the_next_run() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("b.bin");
        let data = vec![0x33; 4096];
        let record = record_of(&data, None);
        // Write both temporaries (4 operations), sync, commit the record: 6 operations.
        save_backup(&mut FaultyDisk::dying_after(6), &path, &data, &record).unwrap();
        assert_eq!(
            names(directory.path()),
            ["b.bin.esp-flasher.tmp", "b.bin.json"]
        );
        assert_eq!(load_backup(&path).unwrap(), (data.clone(), record.clone()));
        assert_eq!(finish_interrupted(&path).unwrap(), Interrupted::Finished);
        assert_eq!(on_disk(&path), (data, record));
    }
}
