//! Whole-flash backup and restore, and the atomic file writes they rely on.
//!
//! `backup` reads all of the flash (with the block retries of
//! [`Flasher::read_flash`]), checks it against the device's own MD5 of the
//! flash, and only then gives the image its final name, beside a
//! `FILE.json` record of where it came from. `restore` checks the image
//! against its record and the connected chip before writing it.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use esp_protocol::flash_params::FlashSize;
use esp_protocol::rom_erase::SECTOR_SIZE;

use crate::error::{hex, Error, Result};
use crate::flasher::Flasher;
use crate::ops::erase::md5_of;
use crate::ops::write::{Region, WriteOptions, WriteReport};
use crate::progress::{Event, Warning};
use crate::rfc3339;
use crate::transport::Transport;

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

/// Writes `data` to `path` so that `path` either keeps its old state or holds
/// all of `data`: a temporary file in the same directory, synced, then renamed.
pub fn write_file_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let file_error = |source| Error::File {
        path: path.to_path_buf(),
        source,
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let builder = &mut tempfile::Builder::new();
    // An ordinary file (0666 less the umask), not the temporary file's private 0600.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut temporary = builder.tempfile_in(directory).map_err(file_error)?;
    temporary.write_all(data).map_err(file_error)?;
    temporary.as_file().sync_all().map_err(file_error)?;
    temporary
        .persist(path)
        .map_err(|error| file_error(error.error))?;
    Ok(())
}

/// Reads the whole flash into `path` and writes the record beside it.
pub fn backup<T: Transport>(flasher: &mut Flasher<T>, path: &Path) -> Result<BackupRecord> {
    let size = flasher.flash_size()?;
    if let Some(real) = wrap_size(flasher, size)? {
        return Err(Error::FlashWraps {
            claimed: size,
            real,
        });
    }
    let data = flasher.read_flash(0, size)?;
    let expected = md5_of(&data);
    let on_device = flasher.flash_md5(0, size)?;
    if on_device != expected {
        return Err(Error::VerifyFailed {
            address: 0,
            size: data.len(),
            expected: hex(&expected),
            got: hex(&on_device),
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
        md5: hex(&expected),
        date: rfc3339::format_utc(SystemTime::now()),
        tool: concat!("esp-flasher ", env!("CARGO_PKG_VERSION")).to_string(),
    };
    write_file_atomically(path, &data)?;
    let json = serde_json::to_string_pretty(&record).expect("a record always serialises");
    write_file_atomically(&record_path(path), json.as_bytes())?;
    Ok(record)
}

/// The size after which the flash's addresses wrap, if they wrap below `size` (a fake chip
/// whose ID claims more than it holds). Compares the device's MD5s of the first half of
/// each window with its second half, so it writes nothing and reads little: a genuine
/// chip's first sector differs from the one in the middle, which ends the search. Flash
/// whose first sector is erased cannot tell and counts as not wrapping.
pub fn wrap_size<T: Transport>(flasher: &mut Flasher<T>, size: u32) -> Result<Option<u32>> {
    /// The smallest flash there is.
    const SMALLEST: u32 = 256 * 1024;
    let first_sector = flasher.flash_md5(0, SECTOR_SIZE)?;
    if first_sector == md5_of(&[0xFF; SECTOR_SIZE as usize]) {
        return Ok(None);
    }
    let mut wraps_at = None;
    let mut window = size / 2;
    while window >= SMALLEST {
        if flasher.flash_md5(window, SECTOR_SIZE)? != first_sector
            || flasher.flash_md5(0, window)? != flasher.flash_md5(window, window)?
        {
            break;
        }
        wraps_at = Some(window);
        window /= 2;
    }
    Ok(wraps_at)
}

/// Reads a backup and its record, checking one against the other.
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
    let data = std::fs::read(path).map_err(|source| Error::File {
        path: path.to_path_buf(),
        source,
    })?;
    if data.len() != record.flash_size as usize {
        return Err(bad(format!(
            "the image is {} bytes, the record says {}",
            data.len(),
            record.flash_size
        )));
    }
    let md5 = hex(&md5_of(&data));
    if md5 != record.md5 {
        return Err(bad(format!(
            "the image's MD5 is {md5}, the record says {}",
            record.md5
        )));
    }
    Ok((data, record))
}

/// Writes a backup back, after checking it against its record and the chip;
/// mismatches that may still be intended become warnings.
pub fn restore<T: Transport>(
    flasher: &mut Flasher<T>,
    path: &Path,
    options: &WriteOptions,
) -> Result<WriteReport> {
    let (data, record) = load_backup(path)?;
    for warning in restore_warnings(flasher, &data, &record)? {
        flasher.report(Event::Warning(warning));
    }
    flasher.write_flash(&[Region { address: 0, data }], options)
}

fn restore_warnings<T: Transport>(
    flasher: &Flasher<T>,
    data: &[u8],
    record: &BackupRecord,
) -> Result<Vec<Warning>> {
    let mut warnings = Vec::new();
    let connected_mac = flasher.chip().mac_string();
    if record.mac != connected_mac {
        warnings.push(Warning::DifferentChip {
            recorded_mac: record.mac.clone(),
            connected_mac,
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
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_path_appends_json() {
        assert_eq!(
            record_path(Path::new("dir/board.bin")),
            PathBuf::from("dir/board.bin.json")
        );
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporaries() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("image.bin");
        write_file_atomically(&path, b"old").unwrap();
        write_file_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(directory.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn atomic_write_makes_an_ordinary_file_not_a_private_one() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("image.bin");
        write_file_atomically(&path, b"data").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // 0666 less the umask: at least the owner reads and writes, and nothing executes.
        assert_eq!(mode & 0o600, 0o600);
        assert_eq!(mode & 0o111, 0);
        assert_ne!(
            mode, 0o600,
            "temporary-file permissions leaked into the result"
        );
    }

    #[test]
    fn record_stores_the_flash_id_as_hex_text() {
        let record = BackupRecord {
            chip: "ESP8266EX".into(),
            mac: "18:fe:34:00:00:01".into(),
            flash_jedec_id: 0xEF4016,
            flash_size: 0x40_0000,
            md5: "00".repeat(16),
            date: "2026-01-01T00:00:00Z".into(),
            tool: "test".into(),
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains(r#""flash_jedec_id":"ef4016""#), "{json}");
        assert_eq!(serde_json::from_str::<BackupRecord>(&json).unwrap(), record);
    }

    #[test]
    fn load_backup_rejects_an_image_that_differs_from_its_record() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("b.bin");
        std::fs::write(&path, [1, 2, 3, 4]).unwrap();
        let record = BackupRecord {
            chip: "ESP8266EX".into(),
            mac: "18:fe:34:00:00:01".into(),
            flash_jedec_id: 0xEF4016,
            flash_size: 4,
            md5: hex(&md5_of(&[9, 9, 9, 9])),
            date: "2026-01-01T00:00:00Z".into(),
            tool: "test".into(),
        };
        std::fs::write(record_path(&path), serde_json::to_string(&record).unwrap()).unwrap();
        let error = load_backup(&path).unwrap_err();
        assert!(matches!(error, Error::BadRecord { .. }), "{error}");
    }
}
