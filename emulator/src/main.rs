//! `esp-emulator`: serves a virtual ESP8266 on a pseudo-terminal (Unix) and on TCP and
//! RFC 2217 endpoints (every OS).
//!
//! ```text
//! esp-emulator --flash PATH [--size 1MB|4MB|...] [--chip esp8266|esp8285] [--flash-id HEX]
//!              [--mac AA:BB:CC:DD:EE:FF] [--link PATH] [--fault SPEC]... [--seed N]
//!              [--realtime] [--boot download|flash] [--flash-wiring qio|dio|dout]
//!              [--stub run|model] [-v|--verbose] [--trace]
//!              [--listen tcp://HOST:PORT|rfc2217://HOST:PORT]... [--no-pty]
//!              [--reset-wiring nodemcu|direct|none] [--gpio0 low|high]
//! esp-emulator --scenario NAME|PATH [--flash NEW_PATH] [--mac ...] [--link PATH] [--realtime] [-v] [--trace]
//! esp-emulator boot-report FILE [--size SIZE] [--flash-wiring qio|dio|dout]
//! ```
//!
//! `--scenario` reproduces a reported failure from the catalogue in `emulator/scenarios/`
//! (see the `scenario` module) and says on stderr which commands show it. `boot-report`
//! prints what the ROM does booting an image or flash dump: its boot log, verdict and notes.
//!
//! The first line on stdout is the slave path to give the client (e.g. `/dev/pts/7`), or with
//! `--no-pty` the first endpoint; each `--listen` endpoint as bound follows on its own line.
//! Logs go to stderr. Changed flash sectors are written back to the file every second, when a client
//! closes the port and on SIGINT/SIGTERM, after which the file is synced and the command
//! exits 0.

mod cli;

use std::process::ExitCode;

use {
    cli::{Args, BackingFile, Failure, Helper},
    esp_emulator::board::{Board as ChipBoard, BoardOptions, FlashPersist, ServerEvent},
    esp_emulator::boot::{self, FlashWiring, ResetCause},
    esp_emulator::device::{Device, DeviceConfig},
    esp_emulator::faults::FaultPlan,
    esp_emulator::flash::{FlashOptions, SpiFlash, SUPPORTED_SIZES},
    esp_emulator::link::{Link, LinkConfig},
    esp_emulator::listen::{Endpoint, ListenOptions, Listener, Protocol},
    esp_emulator::scenario::{self, Scenario},
    pty_front::Pty,
    std::io::{self, Write},
    std::path::{Path, PathBuf},
    std::sync::mpsc::{self, RecvTimeoutError},
    std::sync::{Arc, Mutex, MutexGuard},
    std::time::Duration,
};

/// The pty front end: a Unix pseudo-terminal, which Windows does not have.
#[cfg(unix)]
mod pty_front {
    pub use esp_emulator::pty::PtyServer as Pty;
}

/// No pseudo-terminal on this OS: a type with no values, so the code that serves one is
/// never reached (`run` asks for --listen instead).
#[cfg(not(unix))]
mod pty_front {
    use esp_emulator::board::Board;
    use std::io;
    use std::path::PathBuf;
    use std::sync::Arc;

    pub enum Pty {}

    impl Pty {
        pub fn serve(_: Arc<Board>) -> io::Result<Pty> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this OS has no pseudo-terminals; serve the chip with --listen",
            ))
        }

        pub fn slave_path(&self) -> PathBuf {
            match *self {}
        }

        pub fn is_running(&self) -> bool {
            match *self {}
        }

        pub fn shut_down(self) -> io::Result<Arc<Board>> {
            match self {}
        }
    }
}

/// How often changed sectors are written back to the file.
const SAVE_INTERVAL: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    match cli::parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("esp-emulator: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// What the main thread waits for.
enum Event {
    /// SIGINT or SIGTERM, by name (Unix only).
    #[cfg_attr(not(unix), allow(dead_code))]
    Signal(String),
    Server(ServerEvent),
}

fn run(args: Args) -> Result<(), Failure> {
    if let Some(Helper::BootReport {
        file,
        size,
        flash_wiring,
    }) = &args.command
    {
        return boot_report(file, *size, *flash_wiring);
    }
    if let Some(link) = &args.link {
        check_link_path(link, args.flash.as_deref())?;
    }
    let board = match &args.scenario {
        Some(name) => scenario_board(name, args.flash.as_deref())?,
        None => flag_board(&args)?,
    };
    let Board {
        flash,
        config,
        link,
        backing,
        scenario,
    } = board;
    // Shared with the server, which keeps the changed sectors before any reply goes out.
    let backing = backing.map(|file| Arc::new(Mutex::new(file)));

    let no_pty = args.no_pty || !cfg!(unix);
    if no_pty && args.listen.is_empty() {
        return Err(Failure::usage(
            "this OS has no pseudo-terminals: serve the chip on a network endpoint, e.g. \
             --listen rfc2217://127.0.0.1:4000, and give esptool --port rfc2217://127.0.0.1:4000",
        ));
    }
    let (events, received) = mpsc::channel();
    watch_signals(events.clone())?;

    let config = DeviceConfig {
        mac: args.mac,
        realtime: args.realtime,
        execution: args.stub.into(),
        ..config
    };
    let mut device = Device::new(config, flash);
    device.set_trace(args.trace);
    let link = Link::new(
        device,
        LinkConfig {
            model_baud: args.realtime,
            ..link
        },
    );
    let board = Arc::new(ChipBoard::new(
        link,
        BoardOptions {
            realtime: args.realtime,
            on_event: Some(Box::new(move |event| {
                let _ = events.send(Event::Server(event));
            })),
            persist: backing.clone().map(|backing| -> FlashPersist {
                Box::new(move |flash| {
                    let mut backing = lock_backing(&backing);
                    backing.take_dirty(flash);
                    backing
                        .write_unsaved()
                        .map_err(|failure| io::Error::other(failure.message))
                })
            }),
        },
    ));
    // The endpoints are bound before anything is printed: a port in use stops the start.
    let mut listeners = Vec::new();
    for endpoint in &args.listen {
        let listener = Listener::start(Arc::clone(&board), *endpoint, ListenOptions::default())
            .map_err(Failure::runtime)?;
        listeners.push(listener);
    }
    let server =
        if no_pty {
            None
        } else {
            Some(Pty::serve(Arc::clone(&board)).map_err(|error| {
                Failure::runtime(format!("cannot open a pseudo-terminal: {error}"))
            })?)
        };
    let slave = server.as_ref().map(Pty::slave_path);
    if let (Some(link), Some(slave)) = (&args.link, &slave) {
        point_symlink(link, slave)?;
    }
    // What each endpoint prints, the pty first: the first line stays the first endpoint.
    let mut lines: Vec<String> = slave
        .iter()
        .map(|slave| slave.display().to_string())
        .collect();
    lines.extend(
        listeners
            .iter()
            .map(|listener| listener.endpoint().to_string()),
    );
    let verbose = args.verbose || args.trace;
    // The input files exist before the path is printed, so a client may start at once.
    let scenario_inputs = match &scenario {
        Some(scenario) => {
            let mut port = match (&slave, listeners.first()) {
                (Some(slave), _) => slave.display().to_string(),
                (None, Some(listener)) => esptool_port(listener.endpoint()),
                (None, None) => unreachable!("clap requires --listen with --no-pty"),
            };
            if scenario.needs_modem_lines() {
                match listeners
                    .iter()
                    .find(|listener| listener.endpoint().protocol == Protocol::Rfc2217)
                {
                    Some(listener) => port = esptool_port(listener.endpoint()),
                    None => eprintln!(
                        "esp-emulator: warning: scenario {} is about the board's DTR/RTS wiring, which only \
                         an RFC 2217 endpoint carries: add --listen rfc2217://127.0.0.1:4000",
                        scenario.name
                    ),
                }
            }
            describe_scenario(scenario, &port, args.flash.as_deref())?
        }
        None => None,
    };
    let mut stdout = std::io::stdout();
    for line in &lines {
        let _ = writeln!(stdout, "{line}");
    }
    let _ = stdout.flush();
    if scenario.is_none() && verbose {
        if let Some(flash) = &args.flash {
            eprintln!(
                "esp-emulator: serving {} on {}",
                flash.display(),
                lines.join(", ")
            );
        }
    }

    let outcome = serve(
        server.as_ref(),
        &board,
        &received,
        backing.as_deref(),
        &args,
        verbose,
    );
    for listener in listeners {
        listener.stop();
    }
    // The pty the link points at, if it is still ours (a pulled cable moves it).
    let last_slave = server.as_ref().map(Pty::slave_path);
    let stopped = match server {
        Some(server) => server
            .shut_down()
            .map(drop)
            .map_err(|error| Failure::runtime(format!("the pty server failed: {error}"))),
        None => Ok(()),
    };
    let saved = stopped.and_then(|()| match backing.as_deref() {
        Some(backing) => {
            let mut backing = lock_backing(backing);
            board.with_device(|device| backing.save(device.flash_mut()))?;
            backing.sync()
        }
        None => Ok(()),
    });
    if let Some(inputs) = scenario_inputs {
        let _ = std::fs::remove_dir_all(inputs);
    }
    if let Some(link) = &args.link {
        // Only a link that still points at our pty: another run may have taken it over.
        if std::fs::read_link(link).is_ok_and(|target| Some(target) == last_slave) {
            let _ = std::fs::remove_file(link);
        }
    }
    outcome.and(saved)
}

/// SIGINT and SIGTERM become [`Event::Signal`]s: a thread takes them with sigwait, so every
/// thread (all are started after this) blocks them.
#[cfg(unix)]
fn watch_signals(events: mpsc::Sender<Event>) -> Result<(), Failure> {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals
        .thread_block()
        .map_err(|error| Failure::runtime(format!("cannot block signals: {error}")))?;
    std::thread::spawn(move || {
        if let Ok(signal) = signals.wait() {
            let _ = events.send(Event::Signal(signal.to_string()));
        }
    });
    Ok(())
}

/// Without Unix signals, Ctrl-C ends the process where it is: every sector the chip changed
/// was written to the file before the reply that acknowledged it (the persist hook).
#[cfg(not(unix))]
fn watch_signals(_: mpsc::Sender<Event>) -> Result<(), Failure> {
    Ok(())
}

/// The `--port` esptool takes for `endpoint`: `socket://` for a raw TCP one.
fn esptool_port(endpoint: Endpoint) -> String {
    match endpoint.protocol {
        Protocol::Tcp => format!("socket://{}", endpoint.address),
        Protocol::Rfc2217 => endpoint.to_string(),
    }
}

/// Waits for a signal, saving changed sectors meanwhile and handling the servers' events.
fn serve(
    server: Option<&Pty>,
    board: &ChipBoard,
    events: &mpsc::Receiver<Event>,
    backing: Option<&Mutex<BackingFile>>,
    args: &Args,
    verbose: bool,
) -> Result<(), Failure> {
    loop {
        match events.recv_timeout(SAVE_INTERVAL) {
            Ok(Event::Signal(signal)) => {
                if verbose {
                    eprintln!("esp-emulator: {signal}, saving the flash and exiting");
                }
                return Ok(());
            }
            Ok(Event::Server(ServerEvent::Trace(line))) => {
                if args.trace {
                    eprintln!("esp-emulator: {line}");
                }
            }
            Ok(Event::Server(ServerEvent::SessionEnded { chip_reset })) => {
                if verbose && chip_reset {
                    eprintln!("esp-emulator: client closed the port; chip reset to the ROM loader");
                } else if verbose {
                    eprintln!(
                        "esp-emulator: client closed the port; the program the chip runs goes on"
                    );
                }
                save(board, backing)?;
            }
            Ok(Event::Server(ServerEvent::Replugged(path))) => {
                eprintln!(
                    "esp-emulator: cable pulled (disconnect fault); now serving on {}",
                    path.display()
                );
                if let Some(link) = &args.link {
                    point_symlink(link, &path)?;
                }
            }
            Ok(Event::Server(ServerEvent::ClientConnected { endpoint, peer })) => {
                if verbose {
                    eprintln!("esp-emulator: {endpoint}: client {peer} connected");
                }
            }
            Ok(Event::Server(ServerEvent::ClientGone {
                endpoint,
                peer,
                reason,
                dropped,
            })) => {
                if dropped {
                    eprintln!("esp-emulator: {endpoint}: client {peer} dropped: {reason}");
                } else if verbose {
                    eprintln!("esp-emulator: {endpoint}: client {peer} {reason}; the chip goes on");
                }
                save(board, backing)?;
            }
            Ok(Event::Server(ServerEvent::ClientRefused {
                endpoint,
                peer,
                reason,
            })) => {
                eprintln!("esp-emulator: {endpoint}: client {peer} refused: {reason}");
            }
            Err(RecvTimeoutError::Timeout) => {
                save(board, backing)?;
                if server.is_some_and(|server| !server.is_running()) {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

/// Copies the changed sectors with the device paused, then writes them without holding it.
fn save(board: &ChipBoard, backing: Option<&Mutex<BackingFile>>) -> Result<(), Failure> {
    let Some(backing) = backing else {
        return Ok(());
    };
    board.with_device(|device| lock_backing(backing).take_dirty(device.flash_mut()));
    lock_backing(backing).write_unsaved()
}

/// The backing file; a panic while it was held leaves it as consistent as any write does.
fn lock_backing(backing: &Mutex<BackingFile>) -> MutexGuard<'_, BackingFile> {
    backing
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The board to serve: its flash, its configuration, its line and where the flash is kept.
struct Board {
    flash: SpiFlash,
    config: DeviceConfig,
    link: LinkConfig,
    backing: Option<BackingFile>,
    /// The scenario it reproduces, if any.
    scenario: Option<Scenario>,
}

/// The board the flags describe, on the --flash backing file.
fn flag_board(args: &Args) -> Result<Board, Failure> {
    let path = args
        .flash
        .as_deref()
        .expect("clap requires --flash without --scenario");
    let plan = FaultPlan::parse(&args.faults).map_err(Failure::usage)?;
    let loaded = cli::load_flash(path, args.size)?;
    let size = loaded.contents.len();
    let mut options = FlashOptions {
        jedec_id: args.flash_id,
        ..FlashOptions::default()
    };
    plan.flash.apply_to(&mut options);
    let flash = SpiFlash::new(loaded.contents.clone(), options)
        .map_err(|error| Failure::usage(format!("{error}; check --size and the --fault specs")))?;
    let backing = loaded.into_backing(path, size)?;
    let config = DeviceConfig {
        chip: args.chip.into(),
        boot: args.gpio0(),
        reset_wiring: args.reset_wiring.into(),
        faults: plan.device,
        wiring: args.flash_wiring,
        ..DeviceConfig::default()
    };
    let link = LinkConfig {
        faults: plan.link,
        seed: args.seed,
        model_baud: false,
    };
    Ok(Board {
        flash,
        config,
        link,
        backing: Some(backing),
        scenario: None,
    })
}

/// The board a scenario describes; its flash goes to `flash_file` (a new file) if given.
fn scenario_board(name: &str, flash_file: Option<&Path>) -> Result<Board, Failure> {
    let scenario = scenario::load(name).map_err(Failure::usage)?;
    let flash = scenario.flash().map_err(Failure::usage)?;
    let backing = match flash_file {
        Some(path) if path.exists() => {
            return Err(Failure::usage(format!(
                "--scenario sets the flash contents, so --flash must name a new file, and {} exists; remove it or choose another path",
                path.display()
            )))
        }
        Some(path) => {
            let contents = scenario.flash_contents().map_err(Failure::usage)?;
            cli::create_flash_file_with(path, &contents)?;
            Some(cli::load_flash(path, Some(contents.len()))?.into_backing(path, contents.len())?)
        }
        None => None,
    };
    let plan = scenario.fault_plan().map_err(Failure::usage)?;
    let config = scenario.device_config().map_err(Failure::usage)?;
    let link = LinkConfig {
        faults: plan.link,
        seed: scenario.device.seed,
        model_baud: false,
    };
    Ok(Board {
        flash,
        config,
        link,
        backing,
        scenario: Some(scenario),
    })
}

/// Tells the user on stderr what the scenario reproduces and how to run it; writes its
/// inputs beside `flash_file`, else in a new temporary directory, which it returns for
/// removal at exit (the inputs serve only while this emulator runs).
fn describe_scenario(
    scenario: &Scenario,
    port: &str,
    flash_file: Option<&Path>,
) -> Result<Option<PathBuf>, Failure> {
    eprintln!(
        "esp-emulator: scenario {}: {}",
        scenario.name, scenario.summary
    );
    eprintln!(
        "esp-emulator: it fires once per run of esp-emulator: start it again for each command"
    );
    let port = port.to_owned();
    let mut directory = String::new();
    let mut temporary = None;
    if !scenario.inputs.is_empty() {
        let inputs = match flash_file.and_then(Path::parent) {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            Some(_) => PathBuf::from("."),
            None => {
                let created = std::env::temp_dir().join(format!(
                    "esp-emulator-{}-{}",
                    scenario.name,
                    std::process::id()
                ));
                temporary = Some(created.clone());
                created
            }
        };
        std::fs::create_dir_all(&inputs).map_err(|error| {
            Failure::runtime(format!("cannot create {}: {error}", inputs.display()))
        })?;
        scenario.write_inputs(&inputs).map_err(Failure::runtime)?;
        eprintln!("esp-emulator: its input files are in {}", inputs.display());
        directory = format!("cd {} && ", inputs.display());
    }
    eprintln!(
        "esp-emulator: try: {directory}{}",
        scenario.esptool_command(&port)
    );
    eprintln!(
        "esp-emulator:  or: {directory}{}",
        scenario.esp_flasher_command(&port)
    );
    Ok(temporary)
}

/// `esp-emulator boot-report FILE`: the ROM's boot of FILE, without a device.
fn boot_report(file: &Path, size: Option<usize>, wiring: FlashWiring) -> Result<(), Failure> {
    let contents = std::fs::read(file)
        .map_err(|error| Failure::usage(format!("cannot read {}: {error}", file.display())))?;
    let chip_size = size.unwrap_or(if SUPPORTED_SIZES.contains(&contents.len()) {
        contents.len()
    } else {
        4 * 1024 * 1024
    });
    let mut flash = contents;
    flash.resize(chip_size.max(flash.len()), 0xFF);
    let report = boot::boot_from_flash(&flash, chip_size, ResetCause::PowerOn, wiring);
    print!("{}", report.text());
    Ok(())
}

#[cfg(unix)]
/// `--link PATH` may only be a path that does not exist or a symlink to a pty that an
/// earlier run left behind: anything else would be replaced, then deleted at exit.
fn check_link_path(link: &Path, flash: Option<&Path>) -> Result<(), Failure> {
    // The flash file does not exist yet when it is new: compare the names as given.
    let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if flash.is_some_and(|flash| absolute(flash) == absolute(link)) {
        return Err(Failure::usage(format!(
            "--link {} is also the --flash file: the link would replace the flash file and be \
             deleted at exit; give the link another name",
            link.display()
        )));
    }
    match std::fs::symlink_metadata(link) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Ok(metadata)
            if metadata.file_type().is_symlink()
                && std::fs::read_link(link).is_ok_and(|target| is_pty_path(&target)) =>
        {
            Ok(())
        }
        _ => Err(Failure::usage(format!(
            "--link {}: the path exists and is no link to a pty left by esp-emulator; it would be \
             replaced and deleted at exit: give a path that does not exist",
            link.display()
        ))),
    }
}

#[cfg(unix)]
/// A pseudo-terminal's slave path, as `--link` points at it (Linux, then macOS).
fn is_pty_path(path: &Path) -> bool {
    path.starts_with("/dev/pts")
        || path
            .to_str()
            .is_some_and(|path| path.starts_with("/dev/ttys"))
}

#[cfg(unix)]
/// Makes `link` a symlink to `target`, atomically replacing whatever is there.
fn point_symlink(link: &Path, target: &Path) -> Result<(), Failure> {
    let mut temporary = PathBuf::from(link);
    temporary.set_file_name(format!(
        ".{}.{}",
        link.file_name()
            .map_or("link".into(), |name| name.to_string_lossy()),
        std::process::id()
    ));
    std::os::unix::fs::symlink(target, &temporary)
        .and_then(|()| std::fs::rename(&temporary, link))
        .map_err(|error| {
            let _ = std::fs::remove_file(&temporary);
            Failure::runtime(format!(
                "cannot create the --link symlink {}: {error}; check that its directory exists and is writable",
                link.display()
            ))
        })
}

/// `--link` makes a symlink to the pty, which this OS does not have.
#[cfg(not(unix))]
fn check_link_path(_: &Path, _: Option<&Path>) -> Result<(), Failure> {
    Err(Failure::usage(
        "--link points at a pseudo-terminal, which this OS does not have; drop it",
    ))
}

#[cfg(not(unix))]
fn point_symlink(_: &Path, _: &Path) -> Result<(), Failure> {
    Err(Failure::usage(
        "--link points at a pseudo-terminal, which this OS does not have; drop it",
    ))
}
