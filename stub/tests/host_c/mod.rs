//! Builds the stub's C sources with the host's C compiler for the host tests (`inflate_host`,
//! `deflate_host`): with AddressSanitizer and UBSan when the compiler has them and the result
//! runs, else plainly. Each build lives in its own temporary directory under the test target
//! directory for as long as the test process runs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A built driver; its directory is removed when this is dropped.
pub struct Driver {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Driver {
    /// Builds `sources` (paths relative to `stub/c`) into the executable `name`. A build that
    /// starts but fails its smoke test (run with empty stdin) is tried again without the
    /// sanitizers; panics with the compiler's messages when neither build works.
    pub fn build(name: &str, sources: &[&str]) -> Driver {
        let c_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("c");
        remove_stale_builds(name);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temporary directory for a host C driver");
        let path = dir.path().join(name);
        let sources: Vec<PathBuf> = sources.iter().map(|source| c_dir.join(source)).collect();
        let sanitized = [
            "-O1",
            "-g",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
        ];
        let plain = ["-O2", "-g"];
        let driver = Driver { _dir: dir, path };
        let mut errors = String::new();
        for flags in [&sanitized[..], &plain[..]] {
            let result = Command::new("cc")
                .args(flags)
                .args(["-std=c99", "-Wall", "-Wextra"])
                .args(&sources)
                .arg("-o")
                .arg(&driver.path)
                .output();
            let output = match result {
                Ok(output) => output,
                Err(error) => panic!(
                    "the host C compiler `cc` cannot be started ({error}); \
                     install one (e.g. `apt-get install gcc`) to run these tests"
                ),
            };
            if output.status.success() && driver.smoke_test() {
                return driver;
            }
            errors.push_str(&String::from_utf8_lossy(&output.stderr));
        }
        panic!("cannot build {name} with `cc`:\n{errors}");
    }

    /// The driver, ready to be started with the sanitizers' options.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.path);
        command
            .env("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
            .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1");
        command
    }

    /// Runs the driver with `input` on stdin; returns how it exited, its stdout and its
    /// stderr. Panics when it runs longer than `timeout` (a hang ends there).
    pub fn run(&self, input: Vec<u8>, timeout: Duration) -> (ExitStatus, Vec<u8>, String) {
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the driver");
        let mut stdin = child.stdin.take().unwrap();
        // A crashed driver closes the pipe early; the exit status tells.
        let writer = thread::spawn(move || drop(stdin.write_all(&input)));
        let mut stdout = child.stdout.take().unwrap();
        let out_reader = thread::spawn(move || {
            let mut bytes = Vec::new();
            stdout.read_to_end(&mut bytes).map(|_| bytes)
        });
        let mut stderr = child.stderr.take().unwrap();
        let err_reader = thread::spawn(move || {
            let mut text = String::new();
            stderr.read_to_string(&mut text).map(|_| text)
        });

        let deadline = Instant::now() + timeout;
        let exit = loop {
            if let Some(exit) = child.try_wait().expect("wait for the driver") {
                break exit;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} hung", self.path.display());
            }
            thread::sleep(Duration::from_millis(1));
        };
        writer.join().unwrap();
        let output = out_reader.join().unwrap().expect("driver stdout");
        let log = err_reader.join().unwrap().expect("driver stderr");
        (exit, output, log)
    }

    fn smoke_test(&self) -> bool {
        self.command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

/// A driver kept in a static is never dropped, so earlier runs' directories are removed here
/// once they are an hour old.
fn remove_stale_builds(name: &str) {
    let Ok(entries) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };
    let prefix = format!("{name}-");
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(3600)));
        if old && entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
