//! Many boards in one command: `--port A --port B ...` or `--port all`. The ports are
//! checked and the output file names expanded before anything starts; then every board runs
//! the command at the same time on its own thread, with its own session and [`Output`]
//! (lines behind "[PORT] ", bars in one shared `MultiProgress`), so that a board that fails,
//! hangs or is unplugged neither stops nor slows the others. A summary closes the run.

mod ports;
mod summary;
pub mod template;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use esp_flasher::files::OutputLock;
use indicatif::MultiProgress;

use super::files::{check_output, check_output_folder, read_regions};
use super::restore;
use super::session::{available_ports, port_list};
use super::CmdError;
use crate::cli::{Cli, Command};
use crate::output::Output;
use ports::{board_ports, serial_port_exists, PortsFound};
use summary::{BoardOutcome, Summary};

/// Runs `cli`'s command on every board it names; the exit code is 0 only when every board
/// succeeded, 2 for bad input (nothing started).
pub fn run(cli: &Cli) -> ExitCode {
    let out = Output::for_run(cli.connect.trace);
    // The locks on shared restore images are held until every board is done.
    let (ports, _image_locks) = match prepare(cli, &out) {
        Ok(prepared) => prepared,
        Err(error) => {
            error.print(&out);
            return error.exit_code();
        }
    };
    let started = Instant::now();
    let outcomes = run_boards(cli, &ports, started);
    let summary = Summary::new(&outcomes, started.elapsed().as_secs_f64());
    // A closed stdout (`| head`) loses the summary, not the boards' results: the exit code
    // still tells them.
    let mut stdout = std::io::stdout();
    if cli.json {
        eprint!("{}", summary.table());
        match serde_json::to_string_pretty(&summary) {
            Ok(json) => drop(writeln!(stdout, "{json}")),
            Err(error) => eprintln!("error: cannot write the JSON summary: {error}"),
        }
    } else {
        drop(write!(stdout, "{}", summary.table()));
    }
    exit_code(&outcomes)
}

/// Runs the command on every board at once, one thread each, bars in one `MultiProgress`
/// when stderr is a terminal; returns how each ended, in `--port` order. A board whose
/// thread panicked is reported as failed, as is one whose thread cannot start.
fn run_boards(cli: &Cli, ports: &[String], started: Instant) -> Vec<BoardOutcome> {
    let multi = std::io::stderr().is_terminal().then(MultiProgress::new);
    std::thread::scope(|scope| {
        let boards: Vec<_> = ports
            .iter()
            .enumerate()
            .map(|(index, port)| {
                let multi = multi.clone();
                let board = std::thread::Builder::new()
                    .name(format!("board {}", index + 1))
                    .spawn_scoped(scope, move || run_board(cli, port, index + 1, multi));
                (index, port, board)
            })
            .collect();
        boards
            .into_iter()
            .map(|(index, port, board)| {
                let crashed = |why: String| BoardOutcome {
                    n: index + 1,
                    port: port.clone(),
                    facts: Default::default(),
                    result: Err(CmdError::failed(why, "Please report this as a bug.")),
                    seconds: started.elapsed().as_secs_f64(),
                };
                match board {
                    Ok(handle) => handle.join().unwrap_or_else(|panic| {
                        crashed(format!(
                            "esp-flasher crashed on this board: {}",
                            panic_text(&panic)
                        ))
                    }),
                    Err(error) => crashed(format!("cannot start a thread for this board: {error}")),
                }
            })
            .collect()
    })
}

/// 0 when every board succeeded; 2 when every board stopped on bad input of its own (a
/// usage error, found before anything was written: `restore 'b-{mac}.bin'` with no such
/// files, say); 1 otherwise.
fn exit_code(outcomes: &[BoardOutcome]) -> ExitCode {
    let usage = |outcome: &BoardOutcome| matches!(outcome.result, Err(CmdError::Usage(_)));
    if outcomes.iter().all(|outcome| outcome.result.is_ok()) {
        ExitCode::SUCCESS
    } else if outcomes.iter().all(usage) {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// The checks done before any board is opened: the command talks to a board, the ports
/// (see [`board_ports`]), the output names (no two boards write one file) and the input
/// files all boards share. Returns the ports in `--port` order and the locks of the restore
/// images the boards share.
fn prepare(cli: &Cli, out: &Output) -> Result<(Vec<String>, Vec<OutputLock>), CmdError> {
    if let Some(name) = boardless(&cli.command) {
        return Err(CmdError::Usage(format!(
            "{name} does not use a board: give at most one --port"
        )));
    }
    if watches_one_board(&cli.command) {
        return Err(CmdError::Usage(
            "the serial monitor shows one board's output: run it with one --port at a time".into(),
        ));
    }
    let detected = available_ports();
    // `all` is what a run without --port would try: the USB serial ports, and the device
    // files of USB adapters where the system names no USB details (some containers).
    let found = PortsFound {
        adapters: detected.iter().map(|port| port.port_name.clone()).collect(),
        listed: port_list(&detected),
    };
    let ports = board_ports(&cli.connect.ports, &found, serial_port_exists)?;
    if let Some(output) = template::output_file(&cli.command) {
        template::check_distinct_outputs(output, &ports).map_err(CmdError::Usage)?;
    }
    let mut images = Vec::new();
    let mut locks = Vec::new();
    for (index, port) in ports.iter().enumerate() {
        let command = template::expand_command(&cli.command, port, index + 1);
        check_files(&command)?;
        // A restore image shared by boards is checked and locked once, here.
        if let Some(image) = shared_image(&command) {
            if !images.contains(&image) {
                locks.extend(restore::check_image(&image, out)?);
                images.push(image);
            }
        }
    }
    Ok((ports, locks))
}

/// `restore`'s FILE when it is known before the boards answer (no `{mac}`).
fn shared_image(command: &Command) -> Option<PathBuf> {
    match command {
        Command::Restore(args) if !template::needs_mac(&args.file) => Some(args.file.clone()),
        _ => None,
    }
}

/// True for `monitor` and a command followed by it (`--monitor`): one terminal, one board.
fn watches_one_board(command: &Command) -> bool {
    match command {
        Command::Monitor(_) => true,
        Command::WriteFlash(args) => args.monitor.monitor,
        Command::Restore(args) => args.monitor.monitor,
        Command::Run(args) => args.monitor.monitor,
        _ => false,
    }
}

/// The name of a command that does not talk to a chip.
fn boardless(command: &Command) -> Option<&'static str> {
    match command {
        Command::ImageInfo(_) => Some("image_info"),
        Command::MergeBin(_) => Some("merge_bin"),
        Command::Version => Some("version"),
        Command::ListPorts => Some("list-ports"),
        Command::Completions(_) => Some("completions"),
        _ => None,
    }
}

/// Checks one board's files before anything starts: the output file's folder and the input
/// files of write_flash and verify_flash.
fn check_files(command: &Command) -> Result<(), CmdError> {
    if let Some(output) = template::output_file(command) {
        match template::needs_mac(output) {
            true => check_output_folder(output)?,
            false => check_output(output)?,
        }
    }
    match command {
        Command::WriteFlash(args) => read_regions(&args.addr_file).map(drop),
        Command::VerifyFlash(args) => read_regions(&args.addr_file).map(drop),
        _ => Ok(()),
    }
}

/// Runs the command on the board on `port`, the `n`th, with its own session and output.
fn run_board(cli: &Cli, port: &str, n: usize, multi: Option<MultiProgress>) -> BoardOutcome {
    let started = Instant::now();
    let out = Output::for_board(cli.connect.trace, port, multi);
    let connect = cli.connect.for_board(port);
    let mut command = template::expand_command(&cli.command, port, n);
    if let Command::Restore(args) = &mut command {
        // `prepare` checked and locked a shared image for every board.
        args.image_locked = !template::needs_mac(&args.file);
    }
    let result = super::run_command(&command, &connect, &out);
    if let Err(error) = &result {
        error.print(&out);
    }
    out.end_line();
    BoardOutcome {
        n,
        port: port.to_string(),
        facts: out.board_facts(),
        result,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// What a panic said, if it said it as text.
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}
