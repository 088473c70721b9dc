//! `esp-flasher`: flash, back up and restore ESP8266/ESP8285 boards with
//! esptool.py's command lines.

mod cli;
mod cmd;
mod output;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use cli::Cli;
use output::Output;

fn main() -> ExitCode {
    let argv = cli::normalize_args(std::env::args_os());
    let mut cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    cli.connect = match cli
        .connect
        .with_environment(|name| std::env::var(name).ok())
    {
        Ok(connect) => connect,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let out = Output::new(cli.connect.trace);
    remove_temporaries_on_interrupt();
    match cmd::run(&cli, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error.print(&out);
            error.exit_code()
        }
    }
}

/// On Ctrl-C, SIGTERM or SIGHUP (Ctrl-C and closing the console on Windows): removes the
/// temporary files of any write not yet committed, waiting for a commit in progress, and
/// exits 130. Without it the process would die and leave them behind.
fn remove_temporaries_on_interrupt() {
    let installed = ctrlc::set_handler(|| {
        cmd::monitor::restore_terminal();
        let removed = esp_flasher::files::remove_unfinished();
        match removed.is_empty() {
            true => eprintln!("Interrupted."),
            false => eprintln!(
                "Interrupted: removed the unfinished {}; nothing was replaced.",
                removed
                    .iter()
                    .map(|path| format!("'{}'", path.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        std::process::exit(130);
    });
    if let Err(error) = installed {
        eprintln!("Warning: cannot catch Ctrl-C ({error}); an interrupted write may leave a .esp-flasher.tmp file");
    }
}

/// Prints `--help`/`--version` as clap does, and any other parse error as one line; exit 2.
fn usage_error(error: &clap::Error) -> ExitCode {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Nothing useful is left to do if stdout is closed.
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(2)
        }
        _ => {
            eprintln!("{}", cli::one_line_error(error));
            ExitCode::from(2)
        }
    }
}
