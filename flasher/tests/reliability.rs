//! What the `esp-flasher` binary leaves on disk when it is killed, interrupted or runs out of
//! space while it writes a backup over an older one: always the old pair or the new pair
//! (image + `.json` record), and no temporary file once the next run has looked.
#![cfg(unix)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use esp_flasher::backup::{finish_interrupted, load_backup, record_path, BackupRecord};
use esp_flasher::files::OutputLock;

/// Starts `esp-flasher args` in `dir`.
fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_esp-flasher"))
        .args(args)
        .current_dir(dir)
        .env_remove("ESP_FLASHER_STUB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start esp-flasher")
}

/// Runs a backup of the virtual chip seeded with `seed` (each seed a different flash) to `b.bin`.
fn backup(dir: &Path, seed: u32) -> std::process::Output {
    let port = format!("emu:1MB,seed={seed}");
    spawn(dir, &["--port", &port, "backup", "b.bin"])
        .wait_with_output()
        .expect("esp-flasher ran")
}

/// The temporary files of this crate in `dir`.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".esp-flasher.tmp"))
        .collect()
}

fn pair(dir: &Path) -> (Vec<u8>, BackupRecord) {
    load_backup(&dir.join("b.bin")).expect("a whole pair")
}

/// A tiny xorshift, so the test needs no random-number crate; seeded from the clock.
struct Moments(u64);

impl Moments {
    fn new() -> Moments {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Moments(u64::from(nanos) | 1)
    }

    /// A duration in `0..limit`.
    fn below(&mut self, limit: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        limit.mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

/// Waits until a temporary file shows up in `dir` or `child` exits; true if one did.
fn wait_for_temporary(dir: &Path, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if !temporaries(dir).is_empty() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::yield_now();
    }
    panic!("the backup neither wrote nor finished in 60 s");
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success() || name == "-9");
}

/// kill -9 at random moments of a backup over an older one (half of them while the files are
/// being written): a reader always finds the old pair or the new one, and after the next
/// run's look the folder holds exactly that pair.
#[test]
fn a_backup_killed_at_random_moments_leaves_the_old_pair_or_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    assert!(backup(dir.path(), 1).status.success());
    let whole_run = started.elapsed();
    let mut moments = Moments::new();
    let mut old = pair(dir.path());
    for round in 0..12u32 {
        let seed = round + 2;
        let mut child = spawn(
            dir.path(),
            &["--port", &format!("emu:1MB,seed={seed}"), "backup", "b.bin"],
        );
        if round % 2 == 0 {
            std::thread::sleep(moments.below(whole_run));
        } else if wait_for_temporary(dir.path(), &mut child) {
            std::thread::sleep(moments.below(Duration::from_millis(20)));
        }
        signal(&child, "-9");
        let status = child.wait().unwrap();
        let read = pair(dir.path());
        assert!(
            read == old || read.1.emu.as_deref() == Some(&format!("emu:1MB,seed={seed}")),
            "round {round} ({status}): neither the old pair nor the new one"
        );
        finish_interrupted(&dir.path().join("b.bin")).unwrap();
        assert!(temporaries(dir.path()).is_empty(), "round {round}");
        let settled = pair(dir.path());
        assert_eq!(settled, read, "round {round}");
        old = settled;
    }
}

/// Ctrl-C (SIGINT) and SIGTERM while a backup writes its files: the temporary files are
/// removed, the exit code is 130, and the pair is the old one or the new one.
#[test]
fn an_interrupted_backup_removes_its_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    assert!(backup(dir.path(), 1).status.success());
    let mut old = pair(dir.path());
    let mut interrupted_while_writing = 0;
    for (round, name) in ["-INT", "-TERM", "-INT", "-TERM", "-INT", "-INT"]
        .iter()
        .enumerate()
    {
        // 4MB: the files take long enough to write for the signal to fall among them.
        let seed = format!("emu:4MB,seed={}", round + 10);
        let mut child = spawn(dir.path(), &["--port", &seed, "backup", "b.bin"]);
        let writing = wait_for_temporary(dir.path(), &mut child);
        signal(&child, name);
        let output = child.wait_with_output().unwrap();
        let code = output.status.code();
        // 0 when the signal came as the commit had begun: the handler waits for it, and
        // the backup may finish first.
        assert!(
            matches!(code, Some(130 | 0)),
            "round {round} {name}: {:?} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        if code == Some(130) && writing {
            interrupted_while_writing += 1;
        }
        assert!(temporaries(dir.path()).is_empty(), "round {round} {name}");
        assert!(
            !dir.path().join("b.bin.esp-flasher.lock").exists(),
            "round {round} {name}: the lock file is left"
        );
        let read = pair(dir.path());
        let is_new = read.1.emu.as_deref() == Some(seed.as_str());
        assert!(read == old || is_new, "round {round}");
        assert!(
            code == Some(130) || is_new,
            "round {round}: exit 0 without the new pair"
        );
        assert_eq!(
            fs::read_to_string(record_path(&dir.path().join("b.bin"))).unwrap(),
            serde_json::to_string_pretty(&read.1).unwrap(),
            "the record on disk is the one read"
        );
        old = read;
    }
    eprintln!("{interrupted_while_writing} of 6 signals arrived while the files were written");
    assert!(
        interrupted_while_writing > 0,
        "no signal arrived while the files were written"
    );
}

/// A tmpfs with room for one 1MB backup: a second backup fails with one line, and the first
/// pair is untouched, with no temporary file left. Needs root to mount; elsewhere the
/// library's own full-disk tests (a writer that runs out of space) cover the same code.
#[test]
fn a_backup_onto_a_full_disk_fails_and_keeps_the_previous_pair() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small");
    fs::create_dir(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1600k", "tmpfs"])
        .arg(&mount)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !mounted {
        eprintln!(
            "cannot mount a tmpfs here (not root?): the full-disk test runs in the library only"
        );
        return;
    }
    let result = std::panic::catch_unwind(|| {
        assert!(backup(&mount, 1).status.success());
        let old = pair(&mount);
        let output = backup(&mount, 2);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("No space left on device"), "{stderr}");
        assert!(stderr.contains("nothing was replaced"), "{stderr}");
        assert_eq!(pair(&mount), old);
        assert!(temporaries(&mount).is_empty());
    });
    let unmounted = Command::new("umount").arg(&mount).status();
    assert!(
        unmounted.is_ok_and(|status| status.success()),
        "umount {}",
        mount.display()
    );
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Two runs writing one backup: the second used to settle the first one's temporary image as
/// "left by an interrupted backup" and remove it under the running first. Now the second is
/// refused before it touches anything.
#[test]
fn regression_a_second_backup_of_the_same_file_removed_the_first_runs_temporary_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("b.bin");
    // The first run, as it stands while it reads the chip: its lock, and its image half written.
    let first_run = OutputLock::acquire(&image).unwrap();
    let temporary = dir.path().join("b.bin.esp-flasher.tmp");
    fs::write(&temporary, [0x5A; 1000]).unwrap();

    let second = backup(dir.path(), 3);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another esp-flasher is writing") && stderr.contains("b.bin"),
        "{stderr}"
    );
    assert_eq!(
        fs::read(&temporary).unwrap(),
        [0x5A; 1000],
        "the first run's file was touched"
    );
    assert!(!image.exists() && !record_path(&image).exists());

    // Nor may a restore of that file settle the running backup's files.
    let restore = spawn(dir.path(), &["--port", "emu:1MB", "restore", "b.bin"])
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&restore.stderr);
    assert_eq!(restore.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another esp-flasher is writing"),
        "{stderr}"
    );
    assert_eq!(fs::read(&temporary).unwrap(), [0x5A; 1000]);

    drop(first_run);
    fs::remove_file(&temporary).unwrap();
    let third = backup(dir.path(), 3);
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    pair(dir.path());
    assert!(temporaries(dir.path()).is_empty());
    assert!(
        !dir.path().join("b.bin.esp-flasher.lock").exists(),
        "the lock file is removed at the end"
    );
}
