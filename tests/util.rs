//! Helpers shared by the integration tests: the workspace's binaries, a spawned
//! `esp-emulator`, real esptool installed from PyPI on demand, and test data.
//!
//! Nothing here skips: when a tool cannot be built or installed, the helper panics with the
//! reason, so a check that did not run can never be reported as passed.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

#[path = "esptool_install.rs"]
mod esptool_install;

/// How long an esptool run may take before the test kills it and fails.
const ESPTOOL_TIME_LIMIT: Duration = Duration::from_secs(120);
/// How long the emulator may take to print its slave path.
const STARTUP_TIME_LIMIT: Duration = Duration::from_secs(20);

/// What one `esp-flasher` run did: its exit code (-1 when it was killed at the time limit)
/// and everything it printed.
#[derive(Debug)]
pub struct FlasherRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for FlasherRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `esp-flasher` with `args` in `dir`: stdin closed, no stub, port or baud from the
/// environment, killed after `limit`. Its output goes through files in `dir`.
pub fn run_flasher<S: AsRef<std::ffi::OsStr>>(
    dir: &Path,
    args: &[S],
    limit: Duration,
) -> FlasherRun {
    let (out, err) = (dir.join("flasher.out"), dir.join("flasher.err"));
    let mut child = Command::new(binary("esp-flasher"))
        .args(args)
        .current_dir(dir)
        .env_remove("ESP_FLASHER_STUB")
        .env_remove("ESPTOOL_PORT")
        .env_remove("ESPTOOL_BAUD")
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .expect("start esp-flasher");
    let status = wait_with_limit(&mut child, limit);
    FlasherRun {
        code: status.and_then(|status| status.code()).unwrap_or(-1),
        stdout: fs::read_to_string(out).unwrap(),
        stderr: fs::read_to_string(err).unwrap(),
    }
}

/// The workspace root (the root package's manifest directory).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo target directory this test executable was built in.
fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("the profile directory is inside the target directory")
        .to_owned()
}

/// `target/<profile>`: the test executable lives in its `deps` directory.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let deps = exe.parent().expect("the test executable is in a directory");
    deps.parent()
        .expect("the deps directory has a parent")
        .to_owned()
}

/// The path of workspace binary `name` (of the package of the same name), built once per
/// test process with the test's profile.
///
/// The root package does not own the binaries, so cargo neither builds them for its tests
/// nor sets `CARGO_BIN_EXE_*`; escargot runs the nested `cargo build` and reads the
/// binary's path from cargo's messages (a quick no-op when it is up to date).
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let profile = profile_dir();
    let build = escargot::CargoBuild::new()
        .manifest_path(workspace_root().join("Cargo.toml"))
        .package(name)
        .bin(name)
        .target_dir(target_dir());
    let build = match profile.file_name().and_then(|name| name.to_str()) {
        Some("debug") => build,
        Some("release") => build.release(),
        Some(other) => build.profile(other),
        None => panic!("cannot tell the cargo profile from {}", profile.display()),
    };
    let path = build
        .run()
        .unwrap_or_else(|error| panic!("cargo build --bin {name} failed: {error}"))
        .path()
        .to_owned();
    built.insert(name.to_owned(), path.clone());
    path
}

/// The right to use ptys in this test process.
///
/// The kernel hands a freed pty number to the next pty opened. A client that keeps reopening
/// its port after a hang-up — esptool's reconnect loop after a pulled cable — can therefore
/// open, and lock, another test's pty. A test that provokes such a client holds
/// [`PtyUse::exclusive`]: it waits until no other test has a pty and keeps new ones out until
/// it is dropped. Everything else that opens a pty (every [`Emulator`]) holds [`PtyUse::shared`].
pub struct PtyUse {
    exclusive: bool,
}

#[derive(Default)]
struct PtyUsers {
    shared: usize,
    exclusive_holder: Option<thread::ThreadId>,
}

fn pty_users() -> &'static (Mutex<PtyUsers>, Condvar) {
    static USERS: OnceLock<(Mutex<PtyUsers>, Condvar)> = OnceLock::new();
    USERS.get_or_init(Default::default)
}

impl PtyUse {
    /// A pty user among others; waits while another test holds the ptys exclusively.
    pub fn shared() -> PtyUse {
        let (users, changed) = pty_users();
        let mut users = users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let me = thread::current().id();
        while users.exclusive_holder.is_some_and(|holder| holder != me) {
            users = changed
                .wait(users)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        users.shared += 1;
        PtyUse { exclusive: false }
    }

    /// The only test using ptys, its own [`PtyUse::shared`] users aside.
    pub fn exclusive() -> PtyUse {
        let (users, changed) = pty_users();
        let mut users = users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while users.shared > 0 || users.exclusive_holder.is_some() {
            users = changed
                .wait(users)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        users.exclusive_holder = Some(thread::current().id());
        PtyUse { exclusive: true }
    }
}

impl Drop for PtyUse {
    fn drop(&mut self) {
        let (users, changed) = pty_users();
        let mut users = users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.exclusive {
            users.exclusive_holder = None;
        } else {
            users.shared -= 1;
        }
        changed.notify_all();
    }
}

/// An `esp-emulator` process serving a pty.
pub struct Emulator {
    child: Child,
    /// The slave path it printed on its first stdout line.
    pub port: PathBuf,
    stderr_path: PathBuf,
    _pty: PtyUse,
}

impl Emulator {
    /// Starts `esp-emulator` with `args`; its stderr goes to `log` (a file path).
    pub fn spawn(args: &[&str], log: &Path) -> Emulator {
        Self::spawn_with_endpoints(args, log, 1).0
    }

    /// Starts `esp-emulator` with `args` and reads the first `count` stdout lines: the pty
    /// (unless `--no-pty`), then each `--listen` endpoint as bound.
    pub fn spawn_with_endpoints(
        args: &[&str],
        log: &Path,
        count: usize,
    ) -> (Emulator, Vec<String>) {
        let pty = PtyUse::shared();
        let stderr = File::create(log).expect("create the emulator log");
        let mut child = Command::new(binary("esp-emulator"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start esp-emulator");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut lines = Vec::new();
            for _ in 0..count {
                let mut line = String::new();
                if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                lines.push(line.trim_end().to_owned());
            }
            let _ = sender.send(lines);
            // Keep the pipe open (and drained) while the emulator runs.
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        });
        let lines = receiver
            .recv_timeout(STARTUP_TIME_LIMIT)
            .unwrap_or_default();
        if lines.len() < count {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "esp-emulator {args:?} printed {lines:?}, not {count} endpoint lines; stderr: {}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        let emulator = Emulator {
            child,
            port: PathBuf::from(&lines[0]),
            stderr_path: log.to_owned(),
            _pty: pty,
        };
        (emulator, lines)
    }

    /// The emulator's process ID (for the benches' CPU figures).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The slave path as a string, for command lines.
    pub fn port(&self) -> &str {
        self.port.to_str().expect("pty paths are UTF-8")
    }

    /// Sends SIGTERM and waits; returns the exit status and everything it wrote to stderr.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let status = wait_with_limit(&mut self.child, Duration::from_secs(20))
            .expect("esp-emulator did not exit within 20 s of SIGTERM");
        (status, self.stderr())
    }

    /// What it has written to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` up to `limit`; `None` (after killing it) if it is still running.
pub fn wait_with_limit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Which processes have `path` open, with their command lines (Linux's /proc): for a client
/// that could not lock a pty, the other process that holds it. The kernel reuses pty numbers,
/// so a client of another test that reopens its old path lands on this test's pty; this names
/// it rather than guessing.
fn pty_holders(path: &str) -> String {
    let mut found = format!("\nprocesses with {path} open:\n");
    let processes = fs::read_dir("/proc").into_iter().flatten().flatten();
    for process in processes {
        let fds = fs::read_dir(process.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten();
        if fds
            .filter_map(|fd| fs::read_link(fd.path()).ok())
            .any(|target| target == Path::new(path))
        {
            let command = fs::read(process.path().join("cmdline")).unwrap_or_default();
            let command = String::from_utf8_lossy(&command).replace('\0', " ");
            found.push_str(&format!(
                "  pid {}: {command}\n",
                process.file_name().to_string_lossy()
            ));
        }
    }
    found
}

/// Runs `program` with `args` to completion; returns its status and its stdout+stderr.
pub fn run_output(program: &Path, args: &[&str], log: &Path) -> (ExitStatus, String) {
    let output = File::create(log).expect("create the output log");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("clone the log handle"))
        .stderr(output)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", program.display()));
    let status = wait_with_limit(&mut child, ESPTOOL_TIME_LIMIT);
    let mut text = String::new();
    File::open(log)
        .and_then(|mut file| file.read_to_string(&mut text))
        .expect("read the output log");
    if let Some(path) = text
        .split("Could not exclusively lock port ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
    {
        text.push_str(&pty_holders(path));
    }
    match status {
        Some(status) => (status, text),
        None => panic!(
            "{} {args:?} ran longer than {ESPTOOL_TIME_LIMIT:?}; output so far:\n{text}",
            program.display()
        ),
    }
}

/// A real esptool, installed from PyPI into its own venv under `target/esptool/<version>`.
#[derive(Debug, Clone)]
pub struct Esptool {
    /// The version, e.g. "5.6.0".
    pub version: &'static str,
    /// The venv's root.
    pub venv: PathBuf,
    /// The command: `esptool` (5.x) or `esptool.py` (4.x).
    pub executable: PathBuf,
}

impl Esptool {
    /// True for 5.x, which spells commands and choices with hyphens and words messages differently.
    pub fn is_v5(&self) -> bool {
        self.version.starts_with("5.")
    }

    /// A subcommand or choice in this version's spelling: `read_flash` becomes `read-flash` in 5.x.
    pub fn spell(&self, name: &str) -> String {
        if self.is_v5() {
            name.replace('_', "-")
        } else {
            name.to_owned()
        }
    }

    /// The stub image JSON this installation ships, flavour 1 (legacy) or 2 (esp-flasher-stub).
    pub fn stub_json(&self, flavour: u8) -> PathBuf {
        let lib = self.venv.join("lib");
        let site_packages = fs::read_dir(&lib)
            .unwrap_or_else(|error| panic!("cannot list {}: {error}", lib.display()))
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("site-packages"))
            .find(|path| path.is_dir())
            .unwrap_or_else(|| panic!("no site-packages under {}", lib.display()));
        let path = site_packages.join(format!(
            "esptool/targets/stub_flasher/{flavour}/esp8266.json"
        ));
        assert!(
            path.is_file(),
            "esptool {} has no {}",
            self.version,
            path.display()
        );
        path
    }
}

/// esptool `version` (e.g. "5.6.0", "4.12.0"), installed on first use.
///
/// Once per test process and version; a lock directory keeps parallel test processes from
/// installing at the same time. Panics with the reason if python3, venv or pip fails.
pub fn esptool(version: &'static str) -> Esptool {
    static INSTALLED: OnceLock<Mutex<HashMap<&'static str, Esptool>>> = OnceLock::new();
    let mut installed = INSTALLED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(tool) = installed.get(version) {
        return tool.clone();
    }
    let venv = esptool_install::installed_venv(&target_dir().join("esptool"), version);
    let name = if version.starts_with("4.") {
        "esptool.py"
    } else {
        "esptool"
    };
    let tool = Esptool {
        version,
        executable: venv.join("bin").join(name),
        venv,
    };
    assert!(
        tool.executable.is_file(),
        "esptool {version} is installed but {} is missing",
        tool.executable.display()
    );
    installed.insert(version, tool.clone());
    tool
}

/// Deterministic pseudo-random bytes (xorshift64*), different for each seed.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// esptool `version` of the 3.x line (e.g. "3.0"), installed on first use like [`esptool`];
/// 3.x installs only the `esptool.py` script and spells commands and choices with underscores.
pub fn esptool_3(version: &'static str) -> Esptool {
    let venv = esptool_install::installed_venv(&target_dir().join("esptool"), version);
    let tool = Esptool {
        version,
        executable: venv.join("bin").join("esptool.py"),
        venv,
    };
    assert!(
        tool.executable.is_file(),
        "esptool {version} is installed but {} is missing",
        tool.executable.display()
    );
    tool
}

/// Linux's unit for the times in `/proc/<pid>/stat` (USER_HZ: 100 on x86 and ARM).
const USER_HZ: u64 = 100;

/// The CPU time (user + system) process `pid` has used so far, from `/proc/<pid>/stat` (an
/// exited process not yet reaped, a zombie, still shows its final time there).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|error| panic!("cannot read /proc/{pid}/stat (is it running?): {error}"));
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .unwrap_or_else(|| panic!("/proc/{pid}/stat has too few fields: {stat}"))
        .iter()
        .map(|field| field.parse::<u64>().expect("utime and stime are numbers"))
        .sum();
    Duration::from_millis(ticks * 1000 / USER_HZ)
}

/// Declares, for each function `name(&Esptool)` listed, a module `name` of two tests that run
/// it with esptool 5.6.0 and with 4.12.0: `with_both_esptools!(read_mac, flash_id_1mb);`.
// The benches include this file too and declare no such tests.
#[allow(unused_macros)]
macro_rules! with_both_esptools {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn esptool_5_6_0() {
                super::$name(&crate::util::esptool("5.6.0"));
            }
            #[test]
            fn esptool_4_12_0() {
                super::$name(&crate::util::esptool("4.12.0"));
            }
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use with_both_esptools;
