//! `read_mem ADDR`: one 32-bit word of memory or a register.

use std::rc::Rc;

use serde::Serialize;

use super::session::with_chip;
use super::CmdError;
use crate::cli::{ConnectArgs, ReadMemArgs};
use crate::output::Output;

/// `read_mem`'s JSON result.
#[derive(Debug, Serialize)]
pub struct ReadMemResult {
    /// The word's address.
    pub address: u32,
    /// Its value.
    pub value: u32,
}

/// Prints "0xADDR = 0xVALUE".
pub fn run(args: &ReadMemArgs, connect: &ConnectArgs, out: &Rc<Output>) -> Result<(), CmdError> {
    with_chip("read_mem", connect, out, |flasher, out| {
        let value = flasher.read_mem(args.address)?;
        out.line(format!("{:#010x} = {value:#010x}", args.address));
        out.result(&ReadMemResult {
            address: args.address,
            value,
        });
        Ok(())
    })
}
