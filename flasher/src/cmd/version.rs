//! `version`: prints the version of esp-flasher.

use serde::Serialize;

use super::CmdError;
use crate::output::Output;

/// `version`'s JSON result.
#[derive(Debug, Serialize)]
pub struct VersionResult {
    /// esp-flasher's version, "X.Y.Z".
    pub version: &'static str,
}

/// Prints "esp-flasher X.Y.Z".
pub fn run(out: &Output) -> Result<(), CmdError> {
    let version = env!("CARGO_PKG_VERSION");
    out.line(format!("esp-flasher {version}"));
    out.result(&VersionResult { version });
    Ok(())
}
