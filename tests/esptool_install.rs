//! Installs the real esptool from PyPI into `target/esptool/<version>/`, once, for every
//! test and bench that needs it (included with `#[path]` by tests/util.rs and by the
//! flasher's CLI tests). A lock directory keeps parallel test processes from installing at
//! the same time; a marker file says an install finished. Nothing here skips: when python3,
//! venv or pip fails, it panics with the reason.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// The venv of esptool `version` under `root` (`target/esptool`), installed if it is not yet.
pub fn installed_venv(root: &Path, version: &str) -> PathBuf {
    fs::create_dir_all(root).expect("create target/esptool");
    let venv = root.join(version);
    let marker = venv.join(".flashlab-installed");
    if !marker.exists() {
        let _lock = InstallLock::acquire(&root.join(format!("{version}.lock")));
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

/// A lock directory holding its owner's pid; a dead owner's lock is taken over.
struct InstallLock {
    path: PathBuf,
}

impl InstallLock {
    fn acquire(path: &Path) -> InstallLock {
        let start = Instant::now();
        loop {
            match fs::create_dir(path) {
                Ok(()) => {
                    fs::write(path.join("pid"), std::process::id().to_string())
                        .expect("write the lock's pid");
                    return InstallLock {
                        path: path.to_owned(),
                    };
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = fs::read_to_string(path.join("pid")).unwrap_or_default();
                    let owner_alive =
                        owner.is_empty() || Path::new("/proc").join(owner.trim()).exists();
                    if !owner_alive {
                        let _ = fs::remove_dir_all(path);
                        continue;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(600),
                        "waited 10 minutes for {}; remove it if no install is running",
                        path.display()
                    );
                    thread::sleep(Duration::from_millis(200));
                }
                Err(error) => panic!("cannot create {}: {error}", path.display()),
            }
        }
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}
