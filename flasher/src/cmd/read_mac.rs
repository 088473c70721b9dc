//! `read_mac`: the station MAC address.

use std::rc::Rc;

use serde::Serialize;

use super::session::with_chip;
use super::CmdError;
use crate::cli::ConnectArgs;
use crate::output::Output;

/// `read_mac`'s JSON result.
#[derive(Debug, Serialize)]
pub struct ReadMacResult {
    /// The station MAC, "aa:bb:cc:dd:ee:ff".
    pub mac: String,
}

/// Prints "MAC: aa:bb:cc:dd:ee:ff".
pub fn run(connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    with_chip("read_mac", connect, out, |flasher, out| {
        let mac = flasher.chip().mac_string();
        out.line(format!("{:<20}{mac}", "MAC:"));
        out.result(&ReadMacResult { mac });
        Ok(())
    })
}
