//! Files written whole or not at all, and the temporary files a write leaves while it runs.
//!
//! One file (a `read_flash` image, the virtual chip's flash file) is written to
//! `NAME.esp-flasher.tmp` in the same folder, synced, then renamed over `NAME`: `NAME` holds
//! either its old contents or all of the new ones. A temporary file left by a kill -9 has
//! that name, and the next write of `NAME` replaces it.
//!
//! A backup is two files, the image and its record, and no file system renames two files in
//! one step; [`write_pair`] replaces them in an order that the next run can always finish or
//! undo (the order and the proof are on [`write_pair`]).
//!
//! The temporary files of writes not yet committed are listed while they exist, so that the
//! binary's Ctrl-C and SIGTERM handler can remove them ([`remove_unfinished`]) before it exits.
//!
//! A run that writes an output holds [`OutputLock`] on it from start to end, so a second run
//! on the same name is refused before it touches the first one's temporary files.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// The suffix of every temporary file this module writes.
pub const TEMPORARY_SUFFIX: &str = ".esp-flasher.tmp";

/// Temporary files of writes in progress that are not yet committed. A commit holds the lock
/// while it renames, so [`remove_unfinished`] never removes a file that a commit needs.
static UNFINISHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn unfinished() -> MutexGuard<'static, Vec<PathBuf>> {
    locked(&UNFINISHED)
}

/// One of this module's path lists, locked. A list stays meaningful even if a thread
/// panicked while holding it.
fn locked(list: &'static Mutex<Vec<PathBuf>>) -> MutexGuard<'static, Vec<PathBuf>> {
    list.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Lock files of the [`OutputLock`]s this process holds, for [`remove_unfinished`].
static HELD_LOCKS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn held_locks() -> MutexGuard<'static, Vec<PathBuf>> {
    locked(&HELD_LOCKS)
}

/// Removes the temporary files of every write not yet committed and returns their names; for
/// a signal handler, just before the process exits. A commit in progress is waited for, so
/// what is on disk afterwards is the old file (or pair) or the new one, never a mix. The lock
/// files of held [`OutputLock`]s go too (on Unix, as their `Drop` would).
pub fn remove_unfinished() -> Vec<PathBuf> {
    let mut list = unfinished();
    let removed: Vec<PathBuf> = list
        .drain(..)
        .filter(|path| std::fs::remove_file(path).is_ok())
        .collect();
    #[cfg(unix)]
    for lock in held_locks().drain(..) {
        let _ = std::fs::remove_file(lock);
    }
    // Keep the lock until the process exits: no commit may start after the cleanup.
    std::mem::forget(list);
    removed
}

/// `path` with [`TEMPORARY_SUFFIX`] appended: where its new contents are written first.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(TEMPORARY_SUFFIX);
    PathBuf::from(name)
}

/// The suffix of the lock file beside an output while a run writes it.
pub const LOCK_SUFFIX: &str = ".esp-flasher.lock";

/// An exclusive lock on an output name, held by the run that writes it, from before it reads
/// the chip until its file (or backup pair) is in place. The operating system releases it
/// however the run ends, kill -9 included, so a lock file left behind is simply taken over.
#[derive(Debug)]
pub struct OutputLock {
    /// Locked while open.
    file: File,
    path: PathBuf,
}

impl OutputLock {
    /// Locks `output` (through `OUTPUT.esp-flasher.lock`), or fails with
    /// [`Error::OutputBusy`] when another run holds it.
    pub fn acquire(output: &Path) -> Result<OutputLock> {
        let mut name = OsString::from(output.as_os_str());
        name.push(LOCK_SUFFIX);
        let path = PathBuf::from(name);
        let failed = |source| Error::File {
            path: path.clone(),
            source,
        };
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(failed)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::OutputBusy {
                        path: output.to_path_buf(),
                        lock: path,
                    })
                }
                Err(TryLockError::Error(source)) => return Err(failed(source)),
            }
            // A holder that finished removed the lock file after this run opened it: the lock
            // just taken is on a file no one else will open; take the one at the name now.
            if still_named(&file, &path) {
                held_locks().push(path.clone());
                return Ok(OutputLock { file, path });
            }
        }
    }
}

/// Whether `file` is the file `path` names now.
#[cfg(unix)]
fn still_named(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// Elsewhere the lock file is never removed (see `Drop`), so the name always names it.
#[cfg(not(unix))]
fn still_named(_file: &File, _path: &Path) -> bool {
    true
}

impl Drop for OutputLock {
    /// On Unix the lock file goes while still locked, and a run that opened it meanwhile
    /// notices (`still_named`). Windows has no portable way to tell that a name now names
    /// another file, so there the empty lock file stays beside the output.
    fn drop(&mut self) {
        held_locks().retain(|held| held != &self.path);
        #[cfg(unix)]
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// The folder `path` is in ("." for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// The file-system operations a write is made of. Tests substitute a disk that fills up or
/// that stops (as a killed process does) after a given number of operations.
pub(crate) trait Disk {
    /// Creates or truncates `path`, writes `data` and syncs it to the device.
    fn write_synced(&mut self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Renames `from` over `to` (atomic within a folder).
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    /// Syncs the folder, so that the names it holds survive a power loss.
    fn sync_folder(&mut self, folder: &Path) -> io::Result<()>;
}

/// The real file system.
pub(crate) struct RealDisk;

impl Disk for RealDisk {
    fn write_synced(&mut self, path: &Path, data: &[u8]) -> io::Result<()> {
        // An ordinary file: std creates it 0666 less the umask.
        let mut file = std::fs::File::create(path)?;
        file.write_all(data)?;
        file.sync_all()
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_folder(&mut self, folder: &Path) -> io::Result<()> {
        // Windows cannot open a folder as a file; NTFS journals renames itself.
        if cfg!(unix) {
            std::fs::File::open(folder)?.sync_all()?;
        }
        Ok(())
    }
}

/// Removes `path`; a file that is already gone is fine.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// Writes `data` to `path` so that `path` either keeps its old state or holds all of `data`:
/// written to [`temporary_path`], synced, then renamed.
pub fn write_file_atomically(path: &Path, data: &[u8]) -> Result<()> {
    write_file_with(&mut RealDisk, path, data)
}

fn write_file_with(disk: &mut impl Disk, path: &Path, data: &[u8]) -> Result<()> {
    let temporary = temporary_path(path);
    let failed = |path: &Path, source| Error::File {
        path: path.to_path_buf(),
        source,
    };
    unfinished().push(temporary.clone());
    if let Err(source) = disk.write_synced(&temporary, data) {
        forget_unfinished(&[&temporary]);
        // Best effort: the error that matters is the write's.
        let _ = remove_if_present(&temporary);
        return Err(failed(&temporary, source));
    }
    let mut list = unfinished();
    let renamed = disk.rename(&temporary, path);
    list.retain(|listed| listed != &temporary);
    drop(list);
    if let Err(source) = renamed {
        let _ = remove_if_present(&temporary);
        return Err(failed(path, source));
    }
    disk.sync_folder(folder_of(path))
        .map_err(|source| failed(folder_of(path), source))
}

/// Takes `paths` off the list of unfinished temporary files.
fn forget_unfinished(paths: &[&Path]) {
    unfinished().retain(|listed| !paths.contains(&listed.as_path()));
}

/// Replaces the pair `image` + `record` (a backup and its `.json` record) with new contents.
///
/// The steps, with `I.tmp` and `R.tmp` the two [`temporary_path`]s:
/// 1. write and sync `I.tmp`, then `R.tmp`, then sync the folder;
/// 2. rename `R.tmp` over `record`: the commit point;
/// 3. rename `I.tmp` over `image`, sync the folder.
///
/// What a crash (kill -9, power loss) or a full disk leaves, and how the next run
/// ([`crate::backup::finish_interrupted`]) deals with it:
/// - during 1 (or a full disk there, which this function cleans up itself): the old pair is
///   untouched; `R.tmp` exists, or `I.tmp` exists and does not match the old record. Both
///   temporaries are removed.
/// - between 2 and 3: `record` is the new record, and `I.tmp` is the image whose size and MD5
///   it names. The rename of step 3 is done. (Readers meanwhile take the image from `I.tmp`.)
/// - after 3: the new pair.
///
/// `R.tmp` exists only before the commit, and after it `I.tmp` is exactly the image that
/// `record` describes, so the state tells which case it is: the pair is never half old and
/// half new once the next run has looked at it. Ctrl-C and SIGTERM remove the temporaries
/// before step 2 and wait for step 3 once step 2 has begun.
pub(crate) fn write_pair(
    disk: &mut impl Disk,
    image: &Path,
    image_data: &[u8],
    record: &Path,
    record_data: &[u8],
) -> Result<()> {
    let image_temporary = temporary_path(image);
    let record_temporary = temporary_path(record);
    let failed = |path: &Path, source| Error::File {
        path: path.to_path_buf(),
        source,
    };
    unfinished().extend([image_temporary.clone(), record_temporary.clone()]);
    let written = disk
        .write_synced(&image_temporary, image_data)
        .map_err(|source| failed(&image_temporary, source))
        .and_then(|()| {
            disk.write_synced(&record_temporary, record_data)
                .map_err(|source| failed(&record_temporary, source))
        })
        .and_then(|()| {
            disk.sync_folder(folder_of(image))
                .map_err(|source| failed(folder_of(image), source))
        });
    if let Err(error) = written {
        forget_unfinished(&[&image_temporary, &record_temporary]);
        let _ = remove_if_present(&record_temporary);
        let _ = remove_if_present(&image_temporary);
        return Err(error);
    }
    // From the commit on, a signal handler must wait: hold the list until the pair is whole.
    let mut list = unfinished();
    list.retain(|listed| listed != &image_temporary && listed != &record_temporary);
    if let Err(source) = disk.rename(&record_temporary, record) {
        drop(list);
        let _ = remove_if_present(&record_temporary);
        let _ = remove_if_present(&image_temporary);
        return Err(failed(record, source));
    }
    // Past the commit point the temporary image is the backup: it is never removed here.
    let committed = disk
        .sync_folder(folder_of(image))
        .and_then(|()| disk.rename(&image_temporary, image))
        .and_then(|()| disk.sync_folder(folder_of(image)));
    drop(list);
    committed.map_err(|source| failed(image, source))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A disk that runs out of space after `space` bytes, or that stops after `operations`
    /// operations as a killed process would: later operations do nothing, and a write cut
    /// short leaves the part written so far.
    pub(crate) struct FaultyDisk {
        /// Bytes that still fit; `None`: unlimited.
        pub space: Option<usize>,
        /// Operations (a write counts two: half the data, then the rest) before the process
        /// "dies"; `None`: it never does.
        pub operations: Option<usize>,
        /// Operations that actually happened.
        pub done: usize,
    }

    impl FaultyDisk {
        pub(crate) fn dying_after(operations: usize) -> FaultyDisk {
            FaultyDisk {
                space: None,
                operations: Some(operations),
                done: 0,
            }
        }

        pub(crate) fn with_space(space: usize) -> FaultyDisk {
            FaultyDisk {
                space: Some(space),
                operations: None,
                done: 0,
            }
        }

        /// True while the process is alive; counts the operation.
        fn alive(&mut self) -> bool {
            let alive = self.operations.is_none_or(|limit| self.done < limit);
            if alive {
                self.done += 1;
            }
            alive
        }
    }

    impl Disk for FaultyDisk {
        fn write_synced(&mut self, path: &Path, data: &[u8]) -> io::Result<()> {
            if !self.alive() {
                return Ok(());
            }
            let fits = self.space.map_or(data.len(), |space| space.min(data.len()));
            if !self.alive() {
                return RealDisk.write_synced(path, &data[..fits / 2]);
            }
            RealDisk.write_synced(path, &data[..fits])?;
            if let Some(space) = &mut self.space {
                *space -= fits;
                if fits < data.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        "No space left on device",
                    ));
                }
            }
            Ok(())
        }

        fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
            match self.alive() {
                true => RealDisk.rename(from, to),
                false => Ok(()),
            }
        }

        fn sync_folder(&mut self, _folder: &Path) -> io::Result<()> {
            self.alive();
            Ok(())
        }
    }

    #[test]
    fn a_second_lock_on_one_output_is_refused_until_the_first_is_dropped() {
        let folder = tempfile::tempdir().unwrap();
        let output = folder.path().join("b.bin");
        let first = OutputLock::acquire(&output).unwrap();
        let error = OutputLock::acquire(&output).unwrap_err();
        assert!(
            matches!(&error, Error::OutputBusy { path, .. } if *path == output),
            "{error}"
        );
        drop(first);
        let again = OutputLock::acquire(&output).unwrap();
        drop(again);
        #[cfg(unix)]
        assert!(names(folder.path()).is_empty(), "the lock file is removed");
    }

    fn names(folder: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporaries() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("image.bin");
        write_file_atomically(&path, b"old").unwrap();
        write_file_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(names(directory.path()), ["image.bin"]);
    }

    #[test]
    fn an_atomic_write_on_a_full_disk_keeps_the_old_file_and_no_temporary() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("image.bin");
        write_file_atomically(&path, b"old contents").unwrap();
        let error =
            write_file_with(&mut FaultyDisk::with_space(5), &path, b"new contents").unwrap_err();
        assert!(
            matches!(&error, Error::File { source, .. } if source.kind() == io::ErrorKind::StorageFull),
            "{error}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"old contents");
        assert_eq!(names(directory.path()), ["image.bin"]);
    }

    #[test]
    fn a_temporary_left_by_a_kill_is_replaced_by_the_next_write() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("image.bin");
        write_file_with(&mut FaultyDisk::dying_after(1), &path, b"killed").unwrap();
        assert_eq!(names(directory.path()), ["image.bin.esp-flasher.tmp"]);
        write_file_atomically(&path, b"next").unwrap();
        assert_eq!(names(directory.path()), ["image.bin"]);
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
}
