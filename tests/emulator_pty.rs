//! The `esp-emulator` command's contract (first line, --link, the flash file, errors,
//! SIGTERM, sessions) and the library's `PtyServer`.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use esp_emulator::device::DeviceConfig;
use esp_emulator::flash::SpiFlash;
use esp_emulator::pty::{PtyOptions, PtyServer, ServerEvent};
use esp_protocol::packet::Command as Request;

use crate::util::{binary, esptool, pseudo_random, run_output, Emulator, PtyUse};

const KIB: usize = 1024;

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Runs the emulator expecting it to refuse to start; returns its exit code and stderr.
fn refused(args: &[&str]) -> (i32, String) {
    let output = Command::new(binary("esp-emulator"))
        .args(args)
        .output()
        .expect("run esp-emulator");
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout when refusing: {:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    assert_eq!(
        stderr.lines().count(),
        1,
        "exactly one line on stderr: {stderr:?}"
    );
    (output.status.code().expect("exited, not killed"), stderr)
}

#[test]
fn first_line_is_the_slave_and_link_points_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let link = dir.path().join("ttyESP");
    // A stale symlink from an earlier run is replaced.
    std::os::unix::fs::symlink("/dev/pts/nonexistent", &link).unwrap();
    let emulator = Emulator::spawn(
        &[
            "--flash",
            path_arg(&flash),
            "--size",
            "256KB",
            "--link",
            path_arg(&link),
        ],
        &dir.path().join("emulator.log"),
    );
    assert!(
        emulator.port().starts_with("/dev/pts/"),
        "first line {:?}",
        emulator.port
    );
    assert_eq!(fs::read_link(&link).unwrap(), emulator.port);
    assert_eq!(fs::read(&flash).unwrap(), vec![0xFF; 256 * KIB]);
    let (status, stderr) = emulator.terminate();
    assert!(status.success(), "exit status {status}, stderr {stderr}");
    assert!(
        fs::symlink_metadata(&link).is_err(),
        "the symlink is removed on exit"
    );
}

#[test]
fn a_new_flash_file_defaults_to_4mb_of_ff() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let emulator = Emulator::spawn(
        &["--flash", path_arg(&flash)],
        &dir.path().join("emulator.log"),
    );
    let contents = fs::read(&flash).unwrap();
    assert_eq!(contents.len(), 4 * 1024 * KIB);
    assert!(contents.iter().all(|&byte| byte == 0xFF));
    assert!(emulator.terminate().0.success());
}

#[test]
fn a_size_that_disagrees_with_the_file_is_refused_and_the_file_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let contents = pseudo_random(1024 * KIB, 1);
    fs::write(&flash, &contents).unwrap();
    let modified = fs::metadata(&flash).unwrap().modified().unwrap();
    let (code, stderr) = refused(&["--flash", path_arg(&flash), "--size", "4MB"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("is 1MB but --size says 4MB") && stderr.contains("--size 1MB"),
        "{stderr}"
    );
    assert_eq!(fs::read(&flash).unwrap(), contents);
    assert_eq!(fs::metadata(&flash).unwrap().modified().unwrap(), modified);
}

#[test]
fn a_file_that_is_no_flash_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    fs::write(&flash, [0u8; 1000]).unwrap();
    let (code, stderr) = refused(&["--flash", path_arg(&flash)]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("is 1000 bytes, not a flash size"),
        "{stderr}"
    );
    assert_eq!(fs::read(&flash).unwrap(), [0u8; 1000]);
}

#[test]
fn a_bad_fault_spec_is_one_line_naming_the_accepted_forms() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let (code, stderr) = refused(&["--flash", path_arg(&flash), "--fault", "short-read:frame=1"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("invalid --fault 'short-read:frame=1': missing parameter 'drop'"),
        "{stderr}"
    );
    assert!(stderr.contains("accepted forms: short-read:frame=N,drop=K"));
    assert!(!flash.exists(), "nothing is created on a usage error");
}

#[test]
fn bad_flags_and_a_missing_directory_are_one_line_errors() {
    let (code, stderr) = refused(&["--flash", "/tmp/x.bin", "--chip", "esp32"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid value 'esp32'"), "{stderr}");
    let (code, stderr) = refused(&["--flash", "/nonexistent-flashlab-dir/flash.bin"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("directory /nonexistent-flashlab-dir does not exist"),
        "{stderr}"
    );
}

#[test]
fn sigterm_saves_writes_and_the_port_survives_sessions() {
    let tool = esptool("5.6.0");
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let emulator = Emulator::spawn(
        &["--flash", path_arg(&flash), "--size", "256KB", "-v"],
        &dir.path().join("emulator.log"),
    );
    let port = emulator.port().to_owned();

    // Session 1: a client that writes half a frame and goes away.
    {
        let mut raw = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&port)
            .unwrap();
        raw.write_all(&[0xC0, 0x00, 0x08, 0x24]).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !emulator.stderr().contains("client closed the port") {
        assert!(
            Instant::now() < deadline,
            "the emulator never saw the client go"
        );
        std::thread::yield_now();
    }

    // Sessions 2 and 3: esptool writes, then reads back, each a fresh process.
    let data = pseudo_random(10 * KIB, 7);
    let data_path = dir.path().join("data.bin");
    fs::write(&data_path, &data).unwrap();
    let (status, output) = run_output(
        &tool.executable,
        &[
            "--port",
            &port,
            "write-flash",
            "0x8000",
            path_arg(&data_path),
        ],
        &dir.path().join("write.log"),
    );
    assert!(status.success(), "write-flash failed:\n{output}");
    let readback = dir.path().join("readback.bin");
    let (status, output) = run_output(
        &tool.executable,
        &[
            "--port",
            &port,
            "read-flash",
            "0x8000",
            "0x2800",
            path_arg(&readback),
        ],
        &dir.path().join("read.log"),
    );
    assert!(status.success(), "read-flash failed:\n{output}");
    assert_eq!(fs::read(&readback).unwrap(), data);

    let (status, stderr) = emulator.terminate();
    assert!(status.success(), "exit {status}: {stderr}");
    let file = fs::read(&flash).unwrap();
    assert_eq!(file.len(), 256 * KIB);
    assert_eq!(&file[0x8000..0xA800], &data[..]);
    assert!(file[..0x8000].iter().all(|&byte| byte == 0xFF));
    assert!(file[0xA800..].iter().all(|&byte| byte == 0xFF));
}

#[test]
fn pty_server_serves_the_library_device_and_returns_it() {
    let tool = esptool("5.6.0");
    let dir = tempfile::tempdir().unwrap();
    let flash = SpiFlash::blank(1024 * KIB).unwrap();
    let _ptys = PtyUse::shared();
    let server = PtyServer::start(DeviceConfig::default(), flash, PtyOptions::default()).unwrap();
    let port = server.slave_path();
    let port = port.to_str().unwrap();
    let (status, output) = run_output(
        &tool.executable,
        &["--port", port, "flash-id"],
        &dir.path().join("flash-id.log"),
    );
    assert!(status.success(), "{output}");
    assert!(output.contains("Device: 4014"), "{output}");
    assert!(output.contains("Detected flash size: 1MB"), "{output}");
    let (status, output) = run_output(
        &tool.executable,
        &["--port", port, "erase-region", "0x0", "0x1000"],
        &dir.path().join("erase.log"),
    );
    assert!(status.success(), "{output}");
    assert_eq!(server.flash_snapshot().len(), 1024 * KIB);
    let device = server.stop().unwrap();
    assert_eq!(device.flash().size(), 1024 * KIB);
}

#[test]
fn a_client_hang_up_mid_stream_does_not_stop_the_server() {
    let flash = SpiFlash::blank(256 * KIB).unwrap();
    let _ptys = PtyUse::shared();
    let (events, ended) = std::sync::mpsc::channel();
    let options = PtyOptions {
        on_event: Some(Box::new(move |event| {
            if matches!(event, ServerEvent::SessionEnded { .. }) {
                let _ = events.send(());
            }
        })),
        ..PtyOptions::default()
    };
    let server = PtyServer::start(DeviceConfig::default(), flash, options).unwrap();
    for session in 0..3 {
        {
            let mut port = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(server.slave_path())
                .unwrap();
            port.write_all(b"\xC0garbage").unwrap();
        }
        ended
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("session {session}: the server never saw the hang-up"));
    }
    assert!(server.is_running());
    server.stop().unwrap();
}

/// esptool then esp-flasher, back to back: the second client opened the slave before the
/// server thread, busy on a loaded machine, had seen the first one's hang-up. The chip was
/// not reset and esp-flasher found "Stub flasher is already running". Every last close must
/// end a session, however soon the next client opens.
#[test]
fn regression_a_client_opening_right_after_a_close_found_the_chip_not_reset() {
    use esp_flasher::transport::SerialTransport;
    const SESSIONS: usize = 40;
    let flash = SpiFlash::blank(256 * KIB).unwrap();
    let _ptys = PtyUse::shared();
    let (events, ended) = std::sync::mpsc::channel();
    let options = PtyOptions {
        on_event: Some(Box::new(move |event| {
            if let ServerEvent::SessionEnded { chip_reset } = event {
                let _ = events.send(chip_reset);
            }
        })),
        ..PtyOptions::default()
    };
    let server = PtyServer::start(DeviceConfig::default(), flash, options).unwrap();
    let path = server.slave_path();
    for session in 0..SESSIONS {
        let mut port = SerialTransport::open(path.to_str().unwrap(), 115_200).unwrap();
        // The reset may swallow the first SYNC (what the last client left unread is dropped,
        // and the new one's first bytes with it, as a board's reset loses them): a client
        // syncs again, as esptool and esp-flasher do.
        assert!(
            (0..10).any(|_| answered_within(&mut port, &Request::Sync, Duration::from_millis(300))),
            "session {session}"
        );
    }
    for session in 0..SESSIONS {
        let chip_reset = ended
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("only {session} of {SESSIONS} sessions ended"));
        assert!(chip_reset, "session {session}");
    }
    server.stop().unwrap();
}

#[test]
fn regression_two_emulators_on_one_flash_file_mix_data() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let first = Emulator::spawn(
        &["--flash", path_arg(&flash), "--size", "256KB"],
        &dir.path().join("first.log"),
    );
    let (code, stderr) = refused(&["--flash", path_arg(&flash)]);
    assert_eq!(code, 1);
    // Linux names the holder's process (from /proc/locks); elsewhere it goes unnamed.
    let holder = match cfg!(target_os = "linux") {
        true => format!(" (process {})", first.pid()),
        false => String::new(),
    };
    assert!(
        stderr.contains(&format!(
            "{} is in use by another esp-emulator{holder} (it holds a lock on it); stop that one or use another file",
            flash.display(),
        )),
        "{stderr}"
    );
    let (status, stderr) = first.terminate();
    assert!(status.success(), "exit {status}: {stderr}");
    // The lock goes with the process.
    let second = Emulator::spawn(
        &["--flash", path_arg(&flash)],
        &dir.path().join("second.log"),
    );
    assert!(second.terminate().0.success());
}

/// `esp-flasher --port emu:...,file=flash.bin` on the file an esp-emulator was serving read
/// it, wrote its own copy over the name at exit, and the emulator went on saving into the
/// file no name led to any more: whichever wrote last won.
#[test]
fn regression_esp_flasher_wrote_over_a_flash_file_an_emulator_was_serving() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let emulator = Emulator::spawn(
        &["--flash", path_arg(&flash), "--size", "256KB"],
        &dir.path().join("emulator.log"),
    );
    let before = fs::read(&flash).unwrap();
    let port = format!("emu:256KB,file={}", flash.display());
    let run = Command::new(binary("esp-flasher"))
        .args(["--port", &port, "erase_flash"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is in use by another program (an esp-emulator serving it?)"),
        "{stderr}"
    );
    assert_eq!(fs::read(&flash).unwrap(), before);
    let (status, stderr) = emulator.terminate();
    assert!(status.success(), "{stderr}");
    // Once the emulator is gone the file is free.
    let run = Command::new(binary("esp-flasher"))
        .args(["--port", &port, "flash_id"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn regression_realtime_burst_leaves_the_port_deaf_for_the_next_client() {
    use std::os::unix::fs::OpenOptionsExt;
    // Linux's O_NONBLOCK on x86 and ARM.
    const O_NONBLOCK: i32 = 0o4000;
    let tool = esptool("5.6.0");
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let emulator = Emulator::spawn(
        &["--flash", path_arg(&flash), "--size", "256KB", "--realtime"],
        &dir.path().join("emulator.log"),
    );
    // 200 KB is 17 s of line time at 115200 baud: the emulator may only take what the line
    // carries, so the pty soon refuses more, and what it held must not reach the next client.
    {
        let mut port = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(O_NONBLOCK)
            .open(emulator.port())
            .unwrap();
        let burst = [0x55; 4096];
        let mut written = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while written < 200_000 && std::time::Instant::now() < deadline {
            match port.write(&burst) {
                Ok(count) => written += count,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(error) => panic!("writing the burst: {error}"),
            }
        }
        assert!(written < 100_000, "{written} bytes taken in 1 s");
    }
    let (status, output) = run_output(
        &tool.executable,
        &["--port", emulator.port(), "flash-id"],
        &dir.path().join("flash-id.log"),
    );
    assert!(
        status.success(),
        "flash-id after the burst failed:\n{output}"
    );
    assert!(emulator.terminate().0.success());
}

/// `--link notes.txt` replaced the file with a symlink and deleted it at exit (as it did
/// the flash file itself when `--link` named it).
#[test]
fn regression_link_replaced_and_deleted_a_file_it_did_not_create() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    fs::write(&notes, b"keep me").unwrap();
    let flash = dir.path().join("flash.bin");
    let (code, stderr) = refused(&[
        "--flash",
        path_arg(&flash),
        "--size",
        "256KB",
        "--link",
        path_arg(&notes),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("give a path that does not exist"),
        "{stderr}"
    );
    assert_eq!(fs::read(&notes).unwrap(), b"keep me");
    assert!(!flash.exists(), "nothing is created on a refused start");
}

/// `--flash new.bin --link new.bin`: the new flash file was created, then replaced by the
/// link to the pty, and the link deleted at exit: everything a client wrote was gone.
#[test]
fn regression_a_link_named_as_the_new_flash_file_deleted_it_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("new.bin");
    let (code, stderr) = refused(&[
        "--flash",
        path_arg(&flash),
        "--size",
        "256KB",
        "--link",
        path_arg(&flash),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is also the --flash file"), "{stderr}");
    assert!(!flash.exists(), "nothing is created on a refused start");
}

/// Each `--scenario` run without `--flash` left its 1.1 MB folder of input files behind.
#[test]
fn regression_scenario_runs_left_their_input_folders_behind() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::spawn(
        &["--scenario", "cable-pulled-during-write"],
        &dir.path().join("emulator.log"),
    );
    let stderr = emulator.stderr();
    let inputs = stderr
        .lines()
        .find_map(|line| line.strip_prefix("esp-emulator: its input files are in "))
        .unwrap_or_else(|| panic!("no input folder named in:\n{stderr}"))
        .to_owned();
    assert!(Path::new(&inputs).join("tasmota.bin").is_file(), "{inputs}");
    let (status, stderr) = emulator.terminate();
    assert!(status.success(), "{stderr}");
    assert!(!Path::new(&inputs).exists(), "{inputs} is still there");
}

/// A kill -9 during a write lost blocks the chip had acknowledged: the file was updated only
/// once a second. Now every acknowledged block is in the file before its reply goes out.
#[test]
fn regression_kill_9_lost_blocks_the_chip_had_acknowledged() {
    use esp_flasher::transport::{SerialTransport, Transport};
    use esp_protocol::packet::{BeginParams, DataBlock};
    use esp_protocol::slip::{self, SlipDecoder, SlipEvent};

    const OFFSET: u32 = 0x8000;
    const BLOCK: usize = 0x400;
    const BLOCKS: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let initial = pseudo_random(256 * KIB, 81);
    fs::write(&flash, &initial).unwrap();
    let emulator = Emulator::spawn(
        &["--flash", path_arg(&flash)],
        &dir.path().join("emulator.log"),
    );
    let mut port = SerialTransport::open(emulator.port(), 115_200).unwrap();
    let mut decoder = SlipDecoder::new();
    // Sends a command and waits for its reply (the ROM answers SYNC several times).
    let mut exchange = |command: &Request| {
        port.write_all(&slip::encode_to_vec(&command.to_bytes().unwrap()))
            .unwrap();
        let mut buffer = [0u8; 256];
        loop {
            let count = port.read(&mut buffer, Duration::from_secs(5)).unwrap();
            assert!(count > 0, "no reply to {command:?}");
            let replied = decoder.feed_to_vec(&buffer[..count]).iter().any(|event| {
                matches!(event, SlipEvent::Frame(frame) if frame.get(1) == Some(&(command.opcode() as u8)))
            });
            if replied {
                return;
            }
        }
    };
    exchange(&Request::Sync);
    exchange(&Request::FlashBegin(BeginParams {
        size: (BLOCK * BLOCKS) as u32,
        blocks: BLOCKS as u32,
        block_size: BLOCK as u32,
        offset: OFFSET,
        encrypted: None,
    }));
    let data = pseudo_random(BLOCK * BLOCKS, 82);
    let acknowledged = BLOCKS / 2;
    for (sequence, chunk) in data.chunks(BLOCK).take(acknowledged).enumerate() {
        exchange(&Request::FlashData(DataBlock {
            sequence: sequence as u32,
            data: chunk.to_vec(),
        }));
    }
    let killed = Command::new("kill")
        .args(["-KILL", &emulator.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, _) = emulator.terminate();
    assert!(!status.success(), "killed, not exited");
    let file = fs::read(&flash).unwrap();
    let written = OFFSET as usize..OFFSET as usize + acknowledged * BLOCK;
    assert!(
        file[written.clone()] == data[..acknowledged * BLOCK],
        "acknowledged blocks missing from the file after kill -9"
    );
    assert!(
        file[..OFFSET as usize] == initial[..OFFSET as usize],
        "bytes before the write"
    );
}

/// kill -9 of the emulator at moments spread over a compressed write through flashlab's stub
/// (executed by the virtual CPU, which acknowledges a block before programming it): whatever
/// esp-flasher then says the flash is written up to is in the file, and the bytes past the
/// region are as they were.
#[test]
fn a_kill_9_during_a_stub_write_keeps_what_esp_flasher_was_told_is_written() {
    const SIZE: usize = 1024 * KIB;
    let dir = tempfile::tempdir().unwrap();
    let image = esp_emulator::sample_firmware::firmware_image(768 * KIB, 3);
    let image_path = dir.path().join("image.bin");
    fs::write(&image_path, &image).unwrap();
    let mut interrupted = 0;
    for round in 0..6u32 {
        let flash = dir.path().join(format!("flash{round}.bin"));
        let initial = pseudo_random(SIZE, u64::from(round) + 90);
        fs::write(&flash, &initial).unwrap();
        let emulator = Emulator::spawn(
            &["--flash", path_arg(&flash), "--realtime"],
            &dir.path().join(format!("emulator{round}.log")),
        );
        let mut flasher = std::process::Command::new(binary("esp-flasher"))
            .args([
                "--port",
                emulator.port(),
                "--baud",
                "921600",
                "write_flash",
                "0x0",
            ])
            .arg(&image_path)
            .env_remove("ESP_FLASHER_STUB")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The write starts once the stub runs (about 1.3 s, longer on a loaded machine) and
        // takes about 8 s: each round kills at another moment of it.
        let stdout = flasher.stdout.take().unwrap();
        let (stub_running, stub_started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "Stub flasher running." {
                    let _ = stub_running.send(());
                }
            }
        });
        let _ = stub_started.recv_timeout(Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(200 + 1200 * u64::from(round)));
        let killed = Command::new("kill")
            .args(["-KILL", &emulator.pid().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let (status, _) = emulator.terminate();
        let output = flasher.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let file = fs::read(&flash).unwrap();
        assert!(
            file[image.len()..] == initial[image.len()..],
            "round {round}: past the region"
        );
        if output.status.success() {
            assert!(
                file[..image.len()] == image[..],
                "round {round}: reported written"
            );
            continue;
        }
        assert!(!status.success(), "round {round}: killed, not exited");
        let reached = stderr
            .split("the flash is written up to about 0x")
            .nth(1)
            .and_then(|rest| rest.get(..8))
            .and_then(|hex| usize::from_str_radix(hex, 16).ok())
            .unwrap_or_else(|| panic!("round {round}: no address reached in:\n{stderr}"));
        assert!(
            file[..reached] == image[..reached],
            "round {round}: esp-flasher said {reached:#x} is written; the file differs before it"
        );
        interrupted += 1;
    }
    assert!(interrupted > 0, "no kill fell inside a write");
}

/// Mounts a tmpfs of `size` at `mount` (root only); false where that cannot be done.
fn mount_tmpfs(mount: &Path, size: &str) -> bool {
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(mount)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !mounted {
        eprintln!("cannot mount a tmpfs here (not root?): this full-disk test does not run");
    }
    mounted
}

/// Fills the file system of `folder` with a file of zeros until a write fails.
fn fill(folder: &Path) {
    let mut filler = fs::File::create(folder.join("filler")).unwrap();
    let chunk = vec![0u8; 64 * KIB];
    while filler.write_all(&chunk).is_ok() {}
    // The last partial chunk may sit in no block yet: fill byte by byte.
    while filler.write_all(&[0]).is_ok() {}
}

/// Sends `command`; true if its reply arrives before the port goes quiet (3 s) or away.
fn answered(port: &mut esp_flasher::transport::SerialTransport, command: &Request) -> bool {
    answered_within(port, command, Duration::from_secs(3))
}

/// Sends `command`; true if its reply arrives before the port is `quiet` that long, or goes away.
fn answered_within(
    port: &mut esp_flasher::transport::SerialTransport,
    command: &Request,
    quiet: Duration,
) -> bool {
    use esp_flasher::transport::Transport;
    use esp_protocol::slip::{self, SlipDecoder, SlipEvent};
    // A server that stops while the bytes drain makes the write fail: no answer either.
    if port
        .write_all(&slip::encode_to_vec(&command.to_bytes().unwrap()))
        .is_err()
    {
        return false;
    }
    let mut decoder = SlipDecoder::new();
    let mut buffer = [0u8; 256];
    loop {
        let count = port.read(&mut buffer, quiet).unwrap_or(0);
        if count == 0 {
            return false;
        }
        let replied = decoder.feed_to_vec(&buffer[..count]).iter().any(|event| {
            matches!(event, SlipEvent::Frame(frame) if frame.get(1) == Some(&(command.opcode() as u8)))
        });
        if replied {
            return true;
        }
    }
}

/// The same without root: the library's server with a persist hook that finds the disk full
/// as soon as the flash has changed. The change is never acknowledged and the server stops
/// with the disk's error.
#[test]
fn a_persist_hook_that_fails_stops_the_server_before_the_reply() {
    use esp_flasher::transport::SerialTransport;
    use esp_protocol::packet::BeginParams;

    let _ptys = PtyUse::shared();
    let options = PtyOptions {
        persist: Some(Box::new(|flash: &mut SpiFlash| {
            match flash.dirty_sectors().next() {
                Some(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "No space left on device",
                )),
                None => Ok(()),
            }
        })),
        ..PtyOptions::default()
    };
    let flash = SpiFlash::blank(256 * KIB).unwrap();
    let server = PtyServer::start(DeviceConfig::default(), flash, options).unwrap();
    let mut port = SerialTransport::open(server.slave_path().to_str().unwrap(), 115_200).unwrap();
    assert!(answered(&mut port, &Request::Sync));
    let begin = Request::FlashBegin(BeginParams {
        size: 0x1000,
        blocks: 1,
        block_size: 0x1000,
        offset: 0,
        encrypted: None,
    });
    assert!(!answered(&mut port, &begin), "the erase was acknowledged");
    let Err(error) = server.stop() else {
        panic!("the server went on after the disk refused a change");
    };
    assert_eq!(error.kind(), std::io::ErrorKind::StorageFull, "{error}");
}

/// A full disk under the flash file: the emulator said "Hash of data verified" to esptool and
/// only then exited with part of the data saved. Now the write that fails stops it before any
/// reply to the command that changed the flash; and a new flash file that cannot be created
/// whole is not left behind.
#[test]
fn regression_a_full_disk_was_reported_after_the_client_was_told_the_write_succeeded() {
    use esp_flasher::transport::SerialTransport;
    use esp_protocol::packet::BeginParams;

    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small");
    fs::create_dir(&mount).unwrap();
    if !mount_tmpfs(&mount, "512k") {
        return;
    }
    // A flash file whose blocks are not allocated yet (sparse zeros): writing into it needs
    // space, as on a sparse copy or a copy-on-write file system.
    let flash = mount.join("flash.bin");
    fs::File::create(&flash)
        .unwrap()
        .set_len(256 * KIB as u64)
        .unwrap();
    fill(&mount);
    let result = std::panic::catch_unwind(|| {
        let created = Command::new(binary("esp-emulator"))
            .args(["--flash", path_arg(&mount.join("new.bin")), "--size", "1MB"])
            .output()
            .unwrap();
        assert!(!created.status.success());
        assert!(
            !mount.join("new.bin").exists(),
            "a truncated new flash file was left"
        );
        // Nor for a scenario's flash, which used to be written with a plain fs::write.
        let scenario = Command::new(binary("esp-emulator"))
            .args(["--scenario", "short-read", "--flash"])
            .arg(mount.join("scenario.bin"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&scenario.stderr);
        assert!(
            !scenario.status.success() && stderr.contains("cannot create flash file"),
            "{stderr}"
        );
        assert!(
            !mount.join("scenario.bin").exists(),
            "a truncated scenario flash file was left"
        );

        let emulator = Emulator::spawn(
            &["--flash", path_arg(&flash)],
            &dir.path().join("emulator.log"),
        );
        let mut port = SerialTransport::open(emulator.port(), 115_200).unwrap();
        let mut answered = |command: &Request| answered(&mut port, command);
        assert!(
            answered(&Request::Sync),
            "SYNC changes nothing and is answered"
        );
        // FLASH_BEGIN erases (changes) the sectors it will write: that change cannot be kept.
        let begun = answered(&Request::FlashBegin(BeginParams {
            size: 0x4000,
            blocks: 4,
            block_size: 0x1000,
            offset: 0,
            encrypted: None,
        }));
        assert!(
            !begun,
            "the chip acknowledged an erase the disk could not keep"
        );
        let (status, stderr) = emulator.terminate();
        assert!(!status.success(), "{stderr}");
        assert!(stderr.contains("No space left on device"), "{stderr}");
    });
    let unmounted = Command::new("umount").arg(&mount).status();
    assert!(unmounted.is_ok_and(|status| status.success()));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// The emulator's peak resident memory (VmHWM), in bytes.
fn peak_rss(pid: u32) -> usize {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * KIB
}

/// Opens the pty, sends SYNC and reads until its reply: the emulator serves a new session.
fn answers_sync(port: &str) -> bool {
    use esp_flasher::transport::{SerialTransport, Transport};
    use esp_protocol::slip::{self, SlipDecoder, SlipEvent};
    let mut line = SerialTransport::open(port, 115_200).unwrap();
    line.discard_input().unwrap();
    line.write_all(&slip::encode_to_vec(&Request::Sync.to_bytes().unwrap()))
        .unwrap();
    let mut decoder = SlipDecoder::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let count = line.read(&mut buffer, Duration::from_secs(1)).unwrap_or(0);
        let synced = decoder.feed_to_vec(&buffer[..count]).iter().any(|event| {
            matches!(event, SlipEvent::Frame(frame) if frame.get(1) == Some(&(Request::Sync.opcode() as u8)))
        });
        if synced {
            return true;
        }
    }
    false
}

/// Writes each flood to the pty in 64 KiB pieces, stopping at the first write that fails (a
/// full queue pushes back until the port's write timeout); returns the bytes written.
fn flood(port: &str, floods: Vec<Vec<u8>>) -> usize {
    use esp_flasher::transport::{SerialTransport, Transport};
    let mut line = SerialTransport::open(port, 115_200).unwrap();
    let mut written = 0;
    for piece in floods.iter().flat_map(|flood| flood.chunks(64 * KIB)) {
        if line.write_all(piece).is_err() {
            break;
        }
        written += piece.len();
    }
    written
}

/// Floods every bounded queue of the emulator, never reading: replies (the output backlog),
/// host bytes (an unterminated frame; the realtime input queue) and the register file
/// (WRITE_REG to every undecoded register address). The peak RSS stays under 64 MB, and the
/// next client is answered. Before the bounds: READ_FLASH windows took RSS to 313 MB,
/// WRITE_REG to 6M addresses added 74 MB, a 50 MB input grew the input queue.
#[test]
fn flooding_every_queue_keeps_the_emulator_under_64_mb_and_serving() {
    use esp_emulator::machine::MAX_UNKNOWN_REGISTERS;
    use esp_protocol::packet::RegisterWrite;
    use esp_protocol::slip;

    const LIMIT: usize = 64 * 1024 * KIB;
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    fs::write(&flash, vec![0xFF; 256 * KIB]).unwrap();
    // Replies nobody reads: 2 MB of SYNCs, 8 replies each.
    let sync = slip::encode_to_vec(&Request::Sync.to_bytes().unwrap());
    let syncs = sync.repeat(2 * 1024 * KIB / sync.len());
    // One frame that never ends: 50 MB.
    let mut endless = vec![0xC0];
    endless.resize(50 * 1024 * KIB, 0x55);
    // WRITE_REG to 8 times as many undecoded register addresses as the store keeps, 64 a
    // packet (the WRITE_REG path takes about 150 µs a write here, so not all 250,000).
    let writes: Vec<RegisterWrite> = (0x3FF0_1000u32..0x3FFE_8000)
        .step_by(4)
        .take(8 * MAX_UNKNOWN_REGISTERS)
        .map(|address| RegisterWrite {
            address,
            value: address,
            mask: u32::MAX,
            delay_us: 0,
        })
        .collect();
    let registers: Vec<u8> = writes
        .chunks(64)
        .flat_map(|chunk| {
            slip::encode_to_vec(&Request::WriteReg(chunk.to_vec()).to_bytes().unwrap())
        })
        .collect();

    for realtime in [false, true] {
        // -v: the emulator says when it has seen the flooding client hang up.
        let mut args = vec!["--flash", path_arg(&flash), "-v"];
        if realtime {
            // At 115200 baud the line takes 11.5 KB/s: the input queue fills at once.
            args.push("--realtime");
        }
        let emulator = Emulator::spawn(&args, &dir.path().join("emulator.log"));
        let floods = match realtime {
            false => vec![syncs.clone(), endless.clone(), registers.clone()],
            true => vec![endless.clone()],
        };
        let total: usize = floods.iter().map(Vec::len).sum();
        let written = flood(emulator.port(), floods);
        assert!(
            realtime || written == total,
            "the emulator stopped reading after {written} of {total} bytes"
        );
        let peak = peak_rss(emulator.pid());
        assert!(
            peak < LIMIT,
            "realtime {realtime}: peak RSS {} MB",
            peak / (1024 * KIB)
        );
        // The next client comes once the flooder's session has ended: opened at once, it
        // would share that session and the backlog the kernel still held for it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !emulator.stderr().contains("client closed the port") {
            assert!(
                Instant::now() < deadline,
                "realtime {realtime}: the hang-up was never noticed:\n{}",
                emulator.stderr()
            );
            std::thread::yield_now();
        }
        assert!(
            answers_sync(emulator.port()),
            "realtime {realtime}: the next client\n{}",
            emulator.stderr()
        );
        let (status, stderr) = emulator.terminate();
        assert!(status.success(), "{stderr}");
        eprintln!(
            "realtime {realtime}: {} MB sent, peak RSS {:.1} MB",
            written / (1024 * KIB),
            peak as f64 / (1024 * KIB) as f64
        );
    }
}
