//! `read_mac`: the station MAC address.

use std::rc::Rc;

use super::session::with_chip;
use super::CmdError;
use crate::cli::ConnectArgs;
use crate::output::Output;

/// Prints "MAC: aa:bb:cc:dd:ee:ff".
pub fn run(connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    with_chip("read_mac", connect, out, |flasher, out| {
        out.line(format!("{:<20}{}", "MAC:", flasher.chip().mac_string()));
        Ok(())
    })
}
