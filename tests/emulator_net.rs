//! The network endpoints: `esp-emulator --listen tcp://…` and `rfc2217://…` with the real
//! esptool, and the library's `Listener` against clients that misbehave.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use esp_emulator::board::{Board, BoardOptions, ServerEvent};
use esp_emulator::device::{BootMode, Device, DeviceConfig, Program, ResetWiring};
use esp_emulator::flash::SpiFlash;
use esp_emulator::link::{Link, LinkConfig};
use esp_emulator::listen::{Endpoint, ListenOptions, Listener};
use esp_emulator::sample_firmware::firmware_image;
use esp_protocol::packet::SYNC_PAYLOAD;

use crate::util::{binary, esptool, pseudo_random, run_output, Emulator};

const KIB: usize = 1024;
/// How long a test waits for a condition before it fails.
const LIMIT: Duration = Duration::from_secs(20);

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A board with a blank 256KB chip whose events go to the returned receiver.
fn board() -> (Arc<Board>, Receiver<ServerEvent>) {
    let device = Device::new(DeviceConfig::default(), SpiFlash::blank(256 * KIB).unwrap());
    let (sender, events) = mpsc::channel();
    let board = Board::new(
        Link::new(device, LinkConfig::default()),
        BoardOptions {
            on_event: Some(Box::new(move |event| {
                if !matches!(event, ServerEvent::Trace(_)) {
                    let _ = sender.send(event);
                }
            })),
            ..BoardOptions::default()
        },
    );
    (Arc::new(board), events)
}

fn listen(board: &Arc<Board>, url: &str, options: ListenOptions) -> Listener {
    let endpoint: Endpoint = url.parse().unwrap();
    Listener::start(Arc::clone(board), endpoint, options).unwrap()
}

fn sync_frame() -> Vec<u8> {
    let mut frame = vec![0xC0, 0x00, 0x08, SYNC_PAYLOAD.len() as u8, 0, 0, 0, 0, 0];
    frame.extend_from_slice(&SYNC_PAYLOAD);
    frame.push(0xC0);
    frame
}

/// Sends SYNC and waits for the start of its reply.
fn synced(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.write_all(&sync_frame()).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return false,
            Ok(count) => received.extend_from_slice(&buffer[..count]),
        }
        if received
            .windows(3)
            .any(|window| window == [0xC0, 0x01, 0x08])
        {
            return true;
        }
    }
    false
}

/// Everything the server sends until it closes the connection.
fn bytes_to_close(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    bytes
}

/// What the server says until it closes the connection.
fn read_to_close(stream: &mut TcpStream) -> String {
    String::from_utf8_lossy(&bytes_to_close(stream)).into_owned()
}

/// The first event `wanted` accepts, within [`LIMIT`].
fn wait_for(events: &Receiver<ServerEvent>, wanted: impl Fn(&ServerEvent) -> bool) -> ServerEvent {
    let start = Instant::now();
    loop {
        let left = LIMIT.saturating_sub(start.elapsed());
        match events.recv_timeout(left) {
            Ok(event) if wanted(&event) => return event,
            Ok(_) => {}
            Err(_) => panic!("the event never came"),
        }
    }
}

/// An esp-emulator with a new 1MB flash at `flash`, serving only `url` (port 0: any free
/// one); its stdout lines, the endpoint first.
fn serving_1mb(flash: &Path, url: &str) -> (Emulator, Vec<String>) {
    let log = flash.with_file_name("emulator.log");
    Emulator::spawn_with_endpoints(
        &[
            "--flash",
            path_arg(flash),
            "--size",
            "1MB",
            "--no-pty",
            "--listen",
            url,
        ],
        &log,
        1,
    )
}

#[test]
fn esptool_over_socket_reads_the_chip_and_writes_and_reads_flash() {
    let tool = esptool("5.6.0");
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let (emulator, lines) = serving_1mb(&flash, "tcp://127.0.0.1:0");
    let address = lines[0]
        .strip_prefix("tcp://")
        .unwrap_or_else(|| panic!("first line {:?} is the tcp endpoint", lines[0]));
    let port = format!("socket://{address}");
    let esptool = |args: &[&str], log: &str| {
        let mut all = vec!["--port", &port, "--before", "no-reset"];
        all.extend_from_slice(args);
        let (status, output) = run_output(&tool.executable, &all, &dir.path().join(log));
        assert!(status.success(), "esptool {args:?}:\n{output}");
        output
    };
    let output = esptool(&["chip-id"], "chip-id.log");
    assert!(output.contains("Chip ID: 0x00a1b2c3"), "{output}");
    let image = dir.path().join("image.bin");
    let data = pseudo_random(64 * KIB, 14);
    fs::write(&image, &data).unwrap();
    let output = esptool(&["write-flash", "0x10000", path_arg(&image)], "write.log");
    assert!(output.contains("Hash of data verified"), "{output}");
    let back = dir.path().join("back.bin");
    esptool(
        &["read-flash", "0x10000", "0x10000", path_arg(&back)],
        "read.log",
    );
    assert_eq!(fs::read(&back).unwrap(), data);
    let (status, stderr) = emulator.terminate();
    assert!(status.success(), "{stderr}");
    assert_eq!(&fs::read(&flash).unwrap()[0x10000..0x20000], &data[..]);
}

#[test]
fn the_pty_stays_the_first_line_and_the_endpoints_follow() {
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let (emulator, lines) = Emulator::spawn_with_endpoints(
        &[
            "--flash",
            path_arg(&flash),
            "--size",
            "256KB",
            "--listen",
            "tcp://127.0.0.1:0",
            "--listen",
            "rfc2217://127.0.0.1:0",
        ],
        &dir.path().join("emulator.log"),
        3,
    );
    assert!(lines[0].starts_with("/dev/pts/"), "{lines:?}");
    assert!(lines[1].starts_with("tcp://127.0.0.1:"), "{lines:?}");
    assert!(lines[2].starts_with("rfc2217://127.0.0.1:"), "{lines:?}");
    let mut client = TcpStream::connect(lines[1].strip_prefix("tcp://").unwrap()).unwrap();
    assert!(synced(&mut client));
    drop(client);
    assert!(emulator.terminate().0.success());
}

#[test]
fn regression_a_port_in_use_starts_the_emulator_anyway() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let url = format!("rfc2217://{address}");
    let output = Command::new(binary("esp-emulator"))
        .args([
            "--flash",
            path_arg(&flash),
            "--size",
            "256KB",
            "--listen",
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        output.stdout.is_empty(),
        "nothing printed before the refusal"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{url}: the address is already in use")),
        "{stderr}"
    );
}

#[test]
fn a_second_client_is_refused_with_the_reason_and_the_first_goes_on() {
    let (board, events) = board();
    let listener = listen(&board, "tcp://127.0.0.1:0", ListenOptions::default());
    let address = listener.endpoint().address;
    let mut first = TcpStream::connect(address).unwrap();
    assert!(synced(&mut first));
    let mut second = TcpStream::connect(address).unwrap();
    let told = read_to_close(&mut second);
    assert!(
        told.starts_with("esp-emulator: tcp://127.0.0.1:")
            && told.contains("is in use by")
            && told.contains("one client at a time"),
        "{told:?}"
    );
    assert!(matches!(
        wait_for(&events, |event| matches!(
            event,
            ServerEvent::ClientRefused { .. }
        )),
        ServerEvent::ClientRefused { .. }
    ));
    assert!(synced(&mut first), "the first client is still served");
}

#[test]
fn a_client_on_another_endpoint_keeps_the_chip() {
    let (board, _events) = board();
    let tcp = listen(&board, "tcp://127.0.0.1:0", ListenOptions::default());
    let rfc = listen(&board, "rfc2217://127.0.0.1:0", ListenOptions::default());
    let mut first = TcpStream::connect(tcp.endpoint().address).unwrap();
    assert!(synced(&mut first));
    let mut second = TcpStream::connect(rfc.endpoint().address).unwrap();
    let told = read_to_close(&mut second);
    assert!(
        told.contains(&format!(
            "the chip is in use by the client on {}",
            tcp.endpoint()
        )),
        "{told:?}"
    );
    drop(first);
    // Once the first client has left, the other endpoint serves.
    let start = Instant::now();
    loop {
        let mut again = TcpStream::connect(rfc.endpoint().address).unwrap();
        if synced(&mut again) {
            break;
        }
        assert!(start.elapsed() < LIMIT, "the chip was never released");
    }
}

#[test]
fn regression_a_client_that_connects_and_says_nothing_keeps_the_port() {
    let (board, events) = board();
    let options = ListenOptions {
        silent_limit: Duration::ZERO,
        ..ListenOptions::default()
    };
    let listener = listen(&board, "tcp://127.0.0.1:0", options);
    let mut silent = TcpStream::connect(listener.endpoint().address).unwrap();
    wait_for(&events, |event| {
        matches!(event, ServerEvent::ClientConnected { .. })
    });
    let mut next = TcpStream::connect(listener.endpoint().address).unwrap();
    assert!(synced(&mut next), "the next client is served");
    let ServerEvent::ClientGone {
        reason, dropped, ..
    } = wait_for(&events, |event| {
        matches!(event, ServerEvent::ClientGone { .. })
    })
    else {
        unreachable!()
    };
    assert!(dropped && reason.contains("sent nothing"), "{reason}");
    assert_eq!(
        read_to_close(&mut silent),
        "",
        "the silent client was hung up on"
    );
}

#[test]
fn regression_a_client_that_floods_and_never_reads_blocks_the_port() {
    let (board, events) = board();
    let options = ListenOptions {
        stall_limit: Duration::from_millis(300),
        ..ListenOptions::default()
    };
    let listener = listen(&board, "tcp://127.0.0.1:0", options);
    let address = listener.endpoint().address;
    let flooder = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_write_timeout(Some(LIMIT)).unwrap();
        let frames: Vec<u8> = (0..256).flat_map(|_| sync_frame()).collect();
        let mut sent = 0usize;
        // Each SYNC gets 8 replies: the chip has far more to say than the socket holds.
        while stream.write_all(&frames).is_ok() {
            sent += frames.len();
        }
        sent
    });
    let ServerEvent::ClientGone {
        reason, dropped, ..
    } = wait_for(&events, |event| {
        matches!(event, ServerEvent::ClientGone { .. })
    })
    else {
        unreachable!()
    };
    assert!(
        dropped && reason.contains("read none of the chip's output"),
        "{reason}"
    );
    let sent = flooder.join().unwrap();
    assert!(sent > 0);
    let mut next = TcpStream::connect(address).unwrap();
    assert!(synced(&mut next), "the next client is served");
}

#[test]
fn a_thousand_connections_in_a_row_leave_the_client_served() {
    let (board, _events) = board();
    let listener = listen(&board, "rfc2217://127.0.0.1:0", ListenOptions::default());
    let address = listener.endpoint().address;
    let mut first = TcpStream::connect(address).unwrap();
    // Plain SLIP bytes on an RFC 2217 port: data, as no byte is IAC.
    assert!(synced(&mut first));
    for attempt in 0..1000 {
        let mut other = TcpStream::connect(address).unwrap();
        let told = read_to_close(&mut other);
        assert!(told.contains("is in use by"), "attempt {attempt}: {told:?}");
    }
    assert!(synced(&mut first), "the client is still served");
    drop(first);
    listener.stop();
}

#[test]
fn an_rfc2217_subnegotiation_without_end_drops_the_client_and_the_next_is_served() {
    let (board, events) = board();
    let listener = listen(&board, "rfc2217://127.0.0.1:0", ListenOptions::default());
    let address = listener.endpoint().address;
    let mut garbage = TcpStream::connect(address).unwrap();
    // Option garbage first (refused), then IAC SB COM-PORT and no IAC SE, ever.
    garbage
        .write_all(&[255, 251, 99, 255, 253, 77, 255, 250, 44])
        .unwrap();
    let _ = garbage.write_all(&[b'x'; 300]);
    let ServerEvent::ClientGone {
        reason, dropped, ..
    } = wait_for(&events, |event| {
        matches!(event, ServerEvent::ClientGone { .. })
    })
    else {
        unreachable!()
    };
    assert!(dropped && reason.contains("subnegotiation"), "{reason}");
    let told = bytes_to_close(&mut garbage);
    // The refusals of the two unknown options came before the hang-up.
    assert_eq!(told, [255, 254, 99, 255, 252, 77]);
    let mut next = TcpStream::connect(address).unwrap();
    assert!(synced(&mut next));
}

#[test]
fn esptool_over_rfc2217_reads_the_flash_id() {
    let tool = esptool("5.6.0");
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let (emulator, lines) = serving_1mb(&flash, "rfc2217://127.0.0.1:0");
    let (status, output) = run_output(
        &tool.executable,
        &["--port", &lines[0], "--before", "no-reset", "flash-id"],
        &dir.path().join("flash-id.log"),
    );
    assert!(status.success(), "{output}");
    assert!(output.contains("Device: 4014"), "{output}");
    assert!(output.contains("Detected flash size: 1MB"), "{output}");
    assert!(emulator.terminate().0.success());
}

/// The NodeMCU board the issue asks for: esptool's own reset sequences over RFC 2217, no
/// `--before`/`--after`, and the chip really goes into the loader and back to its firmware.
#[test]
fn nodemcu_wiring_over_rfc2217_resets_for_esptool_5_and_4_and_boots_the_flashed_image() {
    let dir = tempfile::tempdir().unwrap();
    let config = DeviceConfig {
        // GPIO0 on the board's pull-up: only the auto-reset circuit selects the loader.
        boot: BootMode::Flash,
        reset_wiring: ResetWiring::NodeMcu,
        ..DeviceConfig::default()
    };
    let mut device = Device::new(config, SpiFlash::blank(1024 * KIB).unwrap());
    device.set_trace(true);
    let board = Arc::new(Board::new(
        Link::new(device, LinkConfig::default()),
        BoardOptions::default(),
    ));
    let listener = listen(&board, "rfc2217://127.0.0.1:0", ListenOptions::default());
    let port = listener.endpoint().to_string();
    let image = dir.path().join("firmware.bin");
    let firmware = firmware_image(64 * KIB, 5);
    fs::write(&image, &firmware).unwrap();

    let v5 = esptool("5.6.0");
    let (status, output) = run_output(
        &v5.executable,
        &["--port", &port, "write-flash", "0x0", path_arg(&image)],
        &dir.path().join("write.log"),
    );
    assert!(status.success(), "{output}");
    assert!(!output.contains("NOT reset"), "{output}");
    assert!(output.contains("Hash of data verified"), "{output}");
    assert!(output.contains("Hard resetting via RTS pin"), "{output}");
    assert_eq!(&board.flash_snapshot()[..firmware.len()], &firmware[..]);
    // The hard reset released EN with GPIO0 high: the ROM boots the image just written.
    let start = Instant::now();
    let mut log = Vec::new();
    while !String::from_utf8_lossy(&log).contains("boot mode:(3,6)") {
        assert!(start.elapsed() < LIMIT, "no boot from flash: {log:?}");
        board.with_link(|link| {
            link.set_host_baud(74_880);
            link.poll_output(board.now(), &mut log);
        });
        std::thread::yield_now();
    }
    let trace = board.with_device(|device| device.take_trace());
    assert!(
        trace
            .iter()
            .any(|line| line.contains("reset (ExternalPin), booting from flash: ")),
        "{trace:?}"
    );
    assert!(!matches!(
        board.with_device(|device| device.program()),
        Program::RomLoader | Program::Stub(_)
    ));

    // The next session's default reset takes the running firmware back to the loader.
    let v4 = esptool("4.12.0");
    let (status, output) = run_output(
        &v4.executable,
        &["--port", &port, "flash_id"],
        &dir.path().join("flash-id.log"),
    );
    assert!(status.success(), "{output}");
    assert!(!output.contains("NOT reset"), "{output}");
    assert!(output.contains("Uploading stub..."), "{output}");
    assert!(output.contains("Detected flash size: 1MB"), "{output}");
}

/// IAC SB COM-PORT-OPTION SET-BAUDRATE `baud` IAC SE.
fn set_baudrate(baud: u32) -> Vec<u8> {
    let mut request = vec![255, 250, 44, 1];
    request.extend_from_slice(&baud.to_be_bytes());
    request.extend_from_slice(&[255, 240]);
    request
}

/// Reads until `wanted` shows up in what came (true) or `limit` passes (false).
fn receives_within(stream: &mut TcpStream, wanted: &[u8], limit: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    let start = Instant::now();
    while start.elapsed() < limit {
        match stream.read(&mut buffer) {
            Ok(0) => return false,
            Ok(count) => received.extend_from_slice(&buffer[..count]),
            Err(_) => {}
        }
        if received
            .windows(wanted.len())
            .any(|window| window == wanted)
        {
            return true;
        }
    }
    false
}

#[test]
fn with_realtime_the_rfc2217_baud_rate_must_match_the_chips() {
    let device = Device::new(
        DeviceConfig {
            realtime: true,
            ..DeviceConfig::default()
        },
        SpiFlash::blank(256 * KIB).unwrap(),
    );
    let link = Link::new(
        device,
        LinkConfig {
            model_baud: true,
            ..LinkConfig::default()
        },
    );
    let board = Arc::new(Board::new(
        link,
        BoardOptions {
            realtime: true,
            ..BoardOptions::default()
        },
    ));
    let listener = listen(&board, "rfc2217://127.0.0.1:0", ListenOptions::default());
    let mut client = TcpStream::connect(listener.endpoint().address).unwrap();
    let syncs_within = |client: &mut TcpStream, limit: Duration| {
        let start = Instant::now();
        loop {
            client.write_all(&sync_frame()).unwrap();
            if receives_within(client, &[0xC0, 0x01, 0x08], Duration::from_millis(500)) {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
        }
    };
    // The ROM loader takes the rate of the first bytes after the reset: 115200 here.
    assert!(syncs_within(&mut client, LIMIT), "no SYNC reply at 115200");
    // The rest of the replies to the SYNCs sent so far (eight each) must not count below.
    while receives_within(&mut client, &[0xC0], Duration::from_millis(300)) {}
    // At 9600 the chip, now listening at 115200, reads the SYNC as garbage: no reply.
    client.write_all(&set_baudrate(9_600)).unwrap();
    let mut acknowledged = set_baudrate(9_600);
    acknowledged[3] = 101;
    assert!(receives_within(&mut client, &acknowledged, LIMIT));
    assert!(
        !syncs_within(&mut client, Duration::from_secs(1)),
        "a SYNC sent at 9600 baud was understood at 115200"
    );
    assert_eq!(board.with_link(|link| link.host_baud()), 9_600);
    // At the chip's rate it answers.
    client.write_all(&set_baudrate(115_200)).unwrap();
    assert!(syncs_within(&mut client, LIMIT), "no SYNC reply at 115200");
}

#[test]
fn esptool_4_over_socket_reads_the_chip_id_twice() {
    let tool = esptool("4.12.0");
    let dir = tempfile::tempdir().unwrap();
    let flash = dir.path().join("flash.bin");
    let (emulator, lines) = serving_1mb(&flash, "tcp://127.0.0.1:0");
    let port = format!("socket://{}", lines[0].strip_prefix("tcp://").unwrap());
    // The second run finds the stub the first one left running: no reset over a socket.
    for (run, expected) in [(1, "Uploading stub..."), (2, "Stub is already running")] {
        let (status, output) = run_output(
            &tool.executable,
            &["--port", &port, "--before", "no_reset", "chip_id"],
            &dir.path().join(format!("chip-id-{run}.log")),
        );
        assert!(status.success(), "run {run}:\n{output}");
        assert!(
            output.contains("Chip ID: 0x00a1b2c3"),
            "run {run}:\n{output}"
        );
        assert!(output.contains(expected), "run {run}:\n{output}");
    }
    assert!(emulator.terminate().0.success());
}

/// IAC SB COM-PORT-OPTION `command` `value` IAC SE: SET-DATASIZE (2), SET-PARITY (3) or
/// SET-STOPSIZE (4).
fn set_framing(command: u8, value: u8) -> Vec<u8> {
    vec![255, 250, 44, command, value, 255, 240]
}

/// A client that sets 7E1 over RFC 2217 talks to a chip whose UART is 8N1: its SYNC is
/// garbage to the chip, as on a board; back at 8N1 the chip answers, and the next client
/// starts at 8N1 whatever the last one set.
#[test]
fn an_rfc2217_client_at_7e1_is_garbled_and_at_8n1_understood() {
    let (board, _events) = board();
    let listener = listen(&board, "rfc2217://127.0.0.1:0", ListenOptions::default());
    let mut client = TcpStream::connect(listener.endpoint().address).unwrap();
    client.write_all(&set_framing(2, 7)).unwrap();
    client.write_all(&set_framing(3, 3)).unwrap();
    // Both acknowledged (command + 100) before the data is sent.
    assert!(receives_within(
        &mut client,
        &[255, 250, 44, 103, 3, 255, 240],
        LIMIT
    ));
    for _ in 0..3 {
        client.write_all(&sync_frame()).unwrap();
        assert!(
            !receives_within(&mut client, &[0xC0, 0x01, 0x08], Duration::from_millis(300)),
            "a SYNC sent 7E1 was understood by an 8N1 chip"
        );
    }
    drop(client);
    // A new client, no framing set: 8N1.
    let start = Instant::now();
    let mut next = loop {
        let mut next = TcpStream::connect(listener.endpoint().address).unwrap();
        // Twice: the first SYNC's leading END may only close the garbage the 7E1 client left.
        next.write_all(&sync_frame()).unwrap();
        next.write_all(&sync_frame()).unwrap();
        if receives_within(&mut next, &[0xC0, 0x01, 0x08], Duration::from_millis(500)) {
            break next;
        }
        assert!(start.elapsed() < LIMIT, "the next client was not served");
    };
    // Two stop bits are a longer idle line to the chip's receiver: still understood.
    next.write_all(&set_framing(4, 2)).unwrap();
    assert!(synced(&mut next));
}

/// Issue 14's first "done when": esptool 5.6.0 and 4.12.0, over RFC 2217 to a NodeMCU board,
/// run the seed tutorial's workflow (flash_id, read_flash, erase_flash, write_flash,
/// verify_flash) with their default `--before` and `--after`: every command resets the chip
/// into the loader through DTR/RTS and back into its firmware, and none prints "Chip was NOT
/// reset".
#[test]
fn the_seed_workflow_over_rfc2217_with_default_resets_for_esptool_5_and_4() {
    for version in ["5.6.0", "4.12.0"] {
        let tool = esptool(version);
        let dir = tempfile::tempdir().unwrap();
        let contents = esp_emulator::sample_firmware::sonoff_like_flash(256 * KIB, 3);
        let config = DeviceConfig {
            boot: BootMode::Flash,
            reset_wiring: ResetWiring::NodeMcu,
            ..DeviceConfig::default()
        };
        let flash = SpiFlash::new(contents.clone(), Default::default()).unwrap();
        let board = Arc::new(Board::new(
            Link::new(Device::new(config, flash), LinkConfig::default()),
            BoardOptions::default(),
        ));
        let listener = listen(&board, "rfc2217://127.0.0.1:0", ListenOptions::default());
        let port = listener.endpoint().to_string();
        let backup = dir.path().join("image256K.bin");
        let run = |args: &[&str]| {
            let mut all = vec!["--port", port.as_str()];
            all.extend_from_slice(args);
            let log = dir.path().join(format!("{}.log", args[0]));
            let (status, output) = run_output(&tool.executable, &all, &log);
            assert!(status.success(), "esptool {version} {args:?}:\n{output}");
            assert!(
                !output.contains("NOT reset"),
                "esptool {version} {args:?}:\n{output}"
            );
            assert!(
                output.contains("Hard resetting via RTS pin"),
                "esptool {version} {args:?}:\n{output}"
            );
            output
        };
        let output = run(&[tool.spell("flash_id").as_str()]);
        assert!(output.contains("Detected flash size: 256KB"), "{output}");
        run(&[
            tool.spell("read_flash").as_str(),
            "0x0",
            "0x40000",
            path_arg(&backup),
        ]);
        assert!(
            fs::read(&backup).unwrap() == contents,
            "esptool {version}'s backup"
        );
        run(&[tool.spell("erase_flash").as_str()]);
        assert!(board.flash_snapshot().iter().all(|&byte| byte == 0xFF));
        run(&[tool.spell("write_flash").as_str(), "0x0", path_arg(&backup)]);
        let output = run(&[
            tool.spell("verify_flash").as_str(),
            "0x0",
            path_arg(&backup),
        ]);
        assert!(output.contains("digest matched"), "{output}");
        assert!(
            board.flash_snapshot() == contents,
            "esptool {version}'s restore"
        );
        listener.stop();
    }
}
