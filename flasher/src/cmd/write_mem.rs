//! `write_mem ADDR VALUE [MASK]`: sets bits of a memory word or register.

use std::rc::Rc;

use super::session::with_chip_to_change;
use super::CmdError;
use crate::cli::{ConnectArgs, WriteMemArgs};
use crate::output::Output;

/// Prints "Wrote 0xVALUE with mask 0xMASK to 0xADDR.".
pub fn run(args: &WriteMemArgs, connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    with_chip_to_change("write_mem", connect, out, |flasher, out| {
        flasher.write_mem(args.address, args.value, args.mask)?;
        out.line(format!(
            "Wrote {:#010x} with mask {:#010x} to {:#010x}.",
            args.value, args.mask, args.address
        ));
        Ok(())
    })
}
