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
    match cmd::run(&cli, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error.print(&out);
            error.exit_code()
        }
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
