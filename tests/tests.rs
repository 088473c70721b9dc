//! Cross-crate integration tests, in one test binary (as in ripgrep): each module below is
//! one area.

mod emulator_net;
mod emulator_pty;
mod esptool_conformance;
mod everyday;
mod executed_code;
mod flasher_pty;
mod fleet;
mod monitor;
mod own_stub;
mod scenarios;
mod side_by_side;
mod util;
