//! `esp-flasher`: flash, back up and restore ESP8266/ESP8285 boards with
//! esptool.py's command lines.

mod cli;
mod cmd;
mod json;
mod output;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};

use cli::Cli;
use json::{Document, ErrorObject};
use output::Output;

fn main() -> ExitCode {
    let argv = cli::normalize_args(std::env::args_os());
    // Read before parsing, so that a command line clap refuses still gets its JSON document.
    let json_asked = argv.iter().any(|arg| arg == "--json");
    let parsed = Cli::command()
        .try_get_matches_from(&argv)
        .and_then(|matches| {
            let command = matches.subcommand_name().map(str::to_string);
            Cli::from_arg_matches(&matches).map(|cli| (cli, command))
        });
    let (mut cli, command) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return usage_error(&error, json_asked),
    };
    let json_command = cli.json.then(|| command.clone());
    cli.connect = match cli
        .connect
        .with_environment(|name| std::env::var(name).ok())
    {
        Ok(connect) => connect,
        Err(message) => {
            eprintln!("{message}");
            if let Some(command) = json_command {
                failure_document(command, ErrorObject::usage(&message)).print();
            }
            return ExitCode::from(2);
        }
    };
    remove_temporaries_on_interrupt(json_command.clone());
    if cli.connect.is_fleet() {
        return cmd::fleet::run(&cli);
    }
    let out = match cli.json {
        true => Output::json(cli.connect.trace),
        false => Output::new(cli.connect.trace),
    };
    let result = cmd::run(&cli, &out);
    if let Err(error) = &result {
        error.print(&out);
    }
    if let Some(command) = json_command {
        Document {
            command,
            ok: result.is_ok(),
            result: out.take_result(),
            error: result.as_ref().err().map(ErrorObject::from),
        }
        .print();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => error.exit_code(),
    }
}

/// The JSON document of a run that failed before its command could give a result.
fn failure_document(command: Option<String>, error: ErrorObject) -> Document {
    Document {
        command,
        ok: false,
        result: None,
        error: Some(error),
    }
}

/// On Ctrl-C, SIGTERM or SIGHUP (Ctrl-C and closing the console on Windows): removes the
/// temporary files of any write not yet committed, waiting for a commit in progress, and
/// exits 130. Without it the process would die and leave them behind. With `--json`
/// (`json_command` is then `Some`), the JSON document says "interrupted".
fn remove_temporaries_on_interrupt(json_command: Option<Option<String>>) {
    let installed = ctrlc::set_handler(move || {
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
        if let Some(command) = json_command.clone() {
            let error = ErrorObject {
                kind: "interrupted",
                message: "interrupted (Ctrl-C or a termination signal)".into(),
                remedy: None,
                exit_code: 130,
            };
            failure_document(command, error).print();
        }
        std::process::exit(130);
    });
    if let Err(error) = installed {
        eprintln!("Warning: cannot catch Ctrl-C ({error}); an interrupted write may leave a .esp-flasher.tmp file");
    }
}

/// Prints `--help`/`--version` as clap does, and any other parse error as one line (and,
/// with `--json`, as a JSON document); exit 2.
fn usage_error(error: &clap::Error, json: bool) -> ExitCode {
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
            let line = cli::one_line_error(error);
            eprintln!("{line}");
            if json {
                failure_document(None, ErrorObject::usage(&line)).print();
            }
            ExitCode::from(2)
        }
    }
}
