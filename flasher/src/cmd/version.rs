//! `version`: prints the version of esp-flasher.

use super::CmdError;
use crate::output::Output;

/// Prints "esp-flasher X.Y.Z".
pub fn run(out: &Output) -> Result<(), CmdError> {
    out.line(format!("esp-flasher {}", env!("CARGO_PKG_VERSION")));
    Ok(())
}
