//! One module per command, each with a `run` function, plus the shared input
//! checks ([`files`]), the chip session ([`session`]) and the many-board driver ([`fleet`]).

mod backup;
mod board_info;
mod chip_id;
mod completions;
mod dump_mem;
mod erase_flash;
mod erase_region;
mod explain;
mod files;
mod flash_id;
pub mod fleet;
mod image_info;
mod list_ports;
mod merge_bin;
pub mod monitor;
mod read_flash;
mod read_flash_status;
mod read_mac;
mod read_mem;
mod restore;
mod run;
mod session;
mod verify_flash;
mod version;
mod write_flash;
mod write_flash_status;
mod write_mem;

use std::process::ExitCode;
use std::rc::Rc;

use crate::cli::{BaudArg, Cli, Command, ConnectArgs};
use crate::output::Output;

/// Why a command stopped.
#[derive(Debug)]
pub enum CmdError {
    /// Bad input found before anything was sent: exit code 2.
    Usage(String),
    /// The operation failed: exit code 1, with what to do about it if known.
    Failed {
        /// One line naming the problem.
        message: String,
        /// One line saying what to do.
        remedy: Option<String>,
    },
}

impl CmdError {
    /// A failure with a remedy.
    pub fn failed(message: impl Into<String>, remedy: impl Into<String>) -> CmdError {
        CmdError::Failed {
            message: message.into(),
            remedy: Some(remedy.into()),
        }
    }

    /// The process exit code: 2 for usage errors, 1 for failures.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CmdError::Usage(_) => ExitCode::from(2),
            CmdError::Failed { .. } => ExitCode::from(1),
        }
    }

    /// Prints the error (and remedy) on stderr.
    pub fn print(&self, out: &Output) {
        match self {
            CmdError::Usage(message) => out.error(message, None),
            CmdError::Failed { message, remedy } => out.error(message, remedy.as_deref()),
        }
    }
}

/// Runs the command the command line names on one board (or none); the file name
/// placeholders `{port}` and `{n}` (1) are expanded first.
pub fn run(cli: &Cli, out: &Rc<Output>) -> Result<(), CmdError> {
    let command = match &cli.connect.port {
        Some(port) => fleet::template::expand_command(&cli.command, port, 1),
        None => {
            let files = [
                fleet::template::output_file(&cli.command),
                restore_file(&cli.command),
            ];
            if let Some(file) = files.into_iter().flatten().find(|file| {
                file.to_str()
                    .is_some_and(|text| text.contains(fleet::template::PORT))
            }) {
                return Err(CmdError::Usage(format!(
                    "'{}' names the file by {}, but no --port was given: name the port, or use {} or {}",
                    file.display(),
                    fleet::template::PORT,
                    fleet::template::MAC,
                    fleet::template::INDEX
                )));
            }
            fleet::template::expand_command(&cli.command, "", 1)
        }
    };
    run_command(&command, &cli.connect, out)
}

/// `restore`'s FILE.
fn restore_file(command: &Command) -> Option<&std::path::Path> {
    match command {
        Command::Restore(args) => Some(&args.file),
        _ => None,
    }
}

/// Runs `command` on the board `connect` names.
pub fn run_command(
    command: &Command,
    connect: &ConnectArgs,
    out: &Rc<Output>,
) -> Result<(), CmdError> {
    match command {
        Command::ChipId => chip_id::run(connect, out),
        Command::ReadMac => read_mac::run(connect, out),
        Command::FlashId => flash_id::run(connect, out),
        Command::ReadFlash(args) => read_flash::run(args, connect, out),
        Command::WriteFlash(args) => write_flash::run(args, connect, out),
        Command::EraseFlash => erase_flash::run(connect, out),
        Command::EraseRegion(args) => erase_region::run(args, connect, out),
        Command::VerifyFlash(args) => verify_flash::run(args, connect, out),
        Command::ReadFlashStatus(args) => read_flash_status::run(args, connect, out),
        Command::WriteFlashStatus(args) => write_flash_status::run(args, connect, out),
        Command::ReadMem(args) => read_mem::run(args, connect, out),
        Command::WriteMem(args) => write_mem::run(args, connect, out),
        Command::DumpMem(args) => dump_mem::run(args, connect, out),
        Command::ImageInfo(args) => image_info::run(args, out),
        Command::MergeBin(args) => merge_bin::run(args, out),
        Command::Run(args) => run::run(args, connect, out),
        Command::Version => version::run(out),
        Command::Backup(args) => backup::run(args, &connect.with_default_baud(BaudArg::Auto), out),
        Command::Restore(args) => {
            restore::run(args, &connect.with_default_baud(BaudArg::Auto), out)
        }
        Command::ListPorts => list_ports::run(out),
        Command::BoardInfo => board_info::run(connect, out),
        Command::Completions(args) => completions::run(args, out),
        Command::Monitor(args) => monitor::run(args, connect, out),
    }
}
