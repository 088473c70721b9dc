//! Installs the real esptool from PyPI into `target/esptool/<version>/`, once, for every
//! test and bench that needs it (included with `#[path]` by tests/util.rs and by the
//! flasher's CLI tests). A file lock (fs4, flock/LockFileEx) keeps parallel test processes
//! from installing at the same time, and the kernel releases it however its holder ends; a
//! marker file says an install finished. Nothing here skips: when python3, venv or pip
//! fails, it panics with the reason.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv of esptool `version` under `root` (`target/esptool`), installed if it is not yet.
pub fn installed_venv(root: &Path, version: &str) -> PathBuf {
    fs::create_dir_all(root).expect("create target/esptool");
    let venv = root.join(version);
    let marker = venv.join(".flashlab-installed");
    if !marker.exists() {
        let _lock = lock_exclusively(&root.join(format!("{version}.lock")));
        if !marker.exists() {
            install(version, &venv);
            File::create(&marker).expect("mark the esptool venv as installed");
        }
    }
    venv
}

fn install(version: &str, venv: &Path) {
    if venv.exists() {
        fs::remove_dir_all(venv).expect("remove a half-installed esptool venv");
    }
    let run = |program: &Path, args: &[&str]| {
        let output = Command::new(program).args(args).output().unwrap_or_else(|error| {
            panic!(
                "cannot run {} to install esptool {version} (is python3 with venv installed?): {error}",
                program.display()
            )
        });
        assert!(
            output.status.success(),
            "installing esptool {version}: {} {args:?} failed ({}):\n{}{}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let venv_text = venv.to_str().expect("the target directory path is UTF-8");
    run(Path::new("python3"), &["-m", "venv", venv_text]);
    let requirement = format!("esptool=={version}");
    run(
        &venv.join("bin/python"),
        &["-m", "pip", "install", "--quiet", &requirement],
    );
}

/// Waits for an exclusive lock on the file at `path` (created if missing); the lock lasts
/// until the returned file is closed.
fn lock_exclusively(path: &Path) -> File {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|error| panic!("cannot open {}: {error}", path.display()));
    // Called through the trait: std's own File::lock is newer than the workspace's MSRV.
    fs4::FileExt::lock(&file)
        .unwrap_or_else(|error| panic!("cannot lock {}: {error}", path.display()));
    file
}
