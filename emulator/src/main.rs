//! `esp-emulator`: serves a virtual ESP8266 on a pseudo-terminal.
//!
//! ```text
//! esp-emulator --flash PATH [--size 1MB|4MB|...] [--chip esp8266|esp8285] [--flash-id HEX]
//!              [--mac AA:BB:CC:DD:EE:FF] [--link PATH] [--fault SPEC]... [--seed N]
//!              [--realtime] [--boot download|flash] [-v|--verbose] [--trace]
//! ```
//!
//! The first line on stdout is the slave path to give the client (e.g. `/dev/pts/7`). Logs go
//! to stderr. Changed flash sectors are written back to the file every second, when a client
//! closes the port and on SIGINT/SIGTERM, after which the file is synced and the command
//! exits 0.

mod cli;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};

use cli::{Args, BackingFile, Failure};
use esp_emulator::device::DeviceConfig;
use esp_emulator::faults::FaultPlan;
use esp_emulator::flash::{FlashOptions, SpiFlash};
use esp_emulator::link::LinkConfig;
use esp_emulator::pty::{PtyOptions, PtyServer, ServerEvent};

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
    Signal(Signal),
    Server(ServerEvent),
}

fn run(args: Args) -> Result<(), Failure> {
    let plan = FaultPlan::parse(&args.faults).map_err(Failure::usage)?;
    let loaded = cli::load_flash(&args.flash, args.size)?;
    let size = loaded.contents.len();
    let mut options = FlashOptions {
        jedec_id: args.flash_id,
        ..FlashOptions::default()
    };
    plan.flash.apply_to(&mut options);
    let flash = SpiFlash::new(loaded.contents.clone(), options)
        .map_err(|error| Failure::usage(format!("{error}; check --size and the --fault specs")))?;
    let mut backing = loaded.into_backing(&args.flash, size)?;

    // Signals are taken by a thread with sigwait, so every thread must block them first.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals
        .thread_block()
        .map_err(|error| Failure::runtime(format!("cannot block signals: {error}")))?;
    let (events, received) = mpsc::channel();
    let signal_events = events.clone();
    std::thread::spawn(move || {
        if let Ok(signal) = signals.wait() {
            let _ = signal_events.send(Event::Signal(signal));
        }
    });

    let config = DeviceConfig {
        chip: args.chip.into(),
        mac: args.mac,
        boot: args.boot.into(),
        faults: plan.device,
        realtime: args.realtime,
    };
    let pty_options = PtyOptions {
        link: LinkConfig {
            faults: plan.link,
            seed: args.seed,
            model_baud: args.realtime,
        },
        realtime: args.realtime,
        trace: args.trace,
        on_event: Some(Box::new(move |event| {
            let _ = events.send(Event::Server(event));
        })),
    };
    let server = PtyServer::start(config, flash, pty_options)
        .map_err(|error| Failure::runtime(format!("cannot open a pseudo-terminal: {error}")))?;
    let slave = server.slave_path();
    if let Some(link) = &args.link {
        point_symlink(link, &slave)?;
    }
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{}", slave.display());
    let _ = stdout.flush();
    let verbose = args.verbose || args.trace;
    if verbose {
        eprintln!(
            "esp-emulator: serving {} on {}",
            args.flash.display(),
            slave.display()
        );
    }

    let outcome = serve(&server, &received, &mut backing, &args, verbose);
    let stopped = server
        .stop()
        .map_err(|error| Failure::runtime(format!("the pty server failed: {error}")));
    let saved = stopped.and_then(|mut device| {
        backing.save(device.flash_mut())?;
        backing.sync()
    });
    if let Some(link) = &args.link {
        let _ = std::fs::remove_file(link);
    }
    outcome.and(saved)
}

/// Waits for a signal, saving changed sectors meanwhile and handling the server's events.
fn serve(
    server: &PtyServer,
    events: &mpsc::Receiver<Event>,
    backing: &mut BackingFile,
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
            Ok(Event::Server(ServerEvent::SessionEnded)) => {
                if verbose {
                    eprintln!("esp-emulator: client closed the port; chip reset to the ROM loader");
                }
                save(server, backing)?;
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
            Err(RecvTimeoutError::Timeout) => {
                save(server, backing)?;
                if !server.is_running() {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

/// Copies the changed sectors with the device paused, then writes them without holding it.
fn save(server: &PtyServer, backing: &mut BackingFile) -> Result<(), Failure> {
    server.with_device(|device| backing.take_dirty(device.flash_mut()));
    backing.write_unsaved()
}

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
