//! Is the flash as large as its ID claims? A fake or mislabelled chip answers to every
//! address of the size its JEDEC ID names, but its addresses wrap at the memory really
//! there, so a write past it overwrites the start and a read past it returns the start again.
//!
//! [`real_size_limit`] is the one entry point for reads and writes; [`real_size`] tells the
//! size itself (`board-info`). With flashlab's stub the chip measures itself
//! (FLASH_REAL_SIZE, one request); with esptool's stubs the same probe runs from the host,
//! through the stub's MD5s and a marker write ([`wrap_size`]).

use esp_protocol::packet::{Command, SMALLEST_FLASH};
use esp_protocol::rom_erase::SECTOR_SIZE;
use esp_protocol::status::ErrorCode;

use crate::connection::{timeout_per_mb, Loader, MD5_SECONDS_PER_MB};
use crate::error::{Error, Result};
use crate::flasher::Flasher;
use crate::ops::erase::md5_of;
use crate::ops::write::{Region, WriteOptions};
use crate::progress::{Event, Warning};
use crate::transport::Transport;

/// Fails with [`Error::FlashWraps`] when `end` (the end of a read or write) lies past the
/// memory the chip really has. Without a stub nothing can be measured, and a warning says so.
pub fn real_size_limit<T: Transport>(flasher: &mut Flasher<T>, end: u64) -> Result<()> {
    if end <= u64::from(SMALLEST_FLASH) {
        return Ok(());
    }
    if flasher.loader() != Loader::Stub {
        flasher.report(Event::Warning(Warning::RealSizeUnchecked));
        return Ok(());
    }
    let claimed = flasher.flash_size()?;
    match real_size(flasher, claimed)? {
        Some(real) if end > u64::from(real) => Err(Error::FlashWraps { claimed, real }),
        _ => Ok(()),
    }
}

/// The size at which the flash's addresses wrap when it is below `claimed` (a fake or
/// mislabelled chip), `None` when every claimed address is distinct: measured by the chip
/// with flashlab's stub, else probed from the host ([`wrap_size`]). Needs a stub.
pub fn real_size<T: Transport>(flasher: &mut Flasher<T>, claimed: u32) -> Result<Option<u32>> {
    match real_size_on_chip(flasher, claimed)? {
        Some(real) => Ok((real < claimed).then_some(real)),
        None => wrap_size(flasher, claimed),
    }
}

/// The chip's own measurement (FLASH_REAL_SIZE): the size at which its addresses wrap, or
/// `claimed`; `None` when the stub does not have the command (esptool's).
pub fn real_size_on_chip<T: Transport>(
    flasher: &mut Flasher<T>,
    claimed: u32,
) -> Result<Option<u32>> {
    if flasher.real_size_on_chip == Some(false) {
        return Ok(None);
    }
    // At worst the chip hashes both halves of every window: twice the claimed size.
    let timeout = timeout_per_mb(MD5_SECONDS_PER_MB, claimed.saturating_mul(2));
    match flasher
        .connection
        .command(&Command::FlashRealSize { claimed }, timeout)
    {
        Ok(response) => {
            flasher.real_size_on_chip = Some(true);
            Ok(Some(response.value))
        }
        Err(Error::Device {
            code: ErrorCode::CommandNotImplemented | ErrorCode::InvalidCommand,
            ..
        }) => {
            flasher.real_size_on_chip = Some(false);
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

/// The size after which the flash's addresses wrap, if they wrap below `claimed`, probed from
/// the host.
///
/// For each window from half the claimed size down: a chip that wraps at the window reads
/// the same at `a` and `a + window`. The device's MD5s of a sector and then of the two halves
/// usually tell at once (a genuine chip's first sector differs from the one in the middle).
/// When both halves read the same (an erased flash), only a write can tell: a marker is
/// written into an erased sector and looked for one window further, then erased again.
pub fn wrap_size<T: Transport>(flasher: &mut Flasher<T>, claimed: u32) -> Result<Option<u32>> {
    let mut wraps_at = None;
    let mut window = claimed / 2;
    while window >= SMALLEST_FLASH {
        if !wraps_every(flasher, window)? {
            break;
        }
        wraps_at = Some(window);
        window /= 2;
    }
    Ok(wraps_at)
}

/// True when the flash reads the same at `a` and `a + window`, as a chip of `window` bytes does.
fn wraps_every<T: Transport>(flasher: &mut Flasher<T>, window: u32) -> Result<bool> {
    if flasher.flash_md5(0, SECTOR_SIZE)? != flasher.flash_md5(window, SECTOR_SIZE)?
        || flasher.flash_md5(0, window)? != flasher.flash_md5(window, window)?
    {
        return Ok(false);
    }
    let erased = md5_of(&[0xFF; SECTOR_SIZE as usize]);
    // Where an erased sector is likeliest: the start of a blank chip, the end of the first half.
    let candidates = [0, window - SECTOR_SIZE, window / 2];
    for sector in candidates {
        if flasher.flash_md5(sector, SECTOR_SIZE)? == erased {
            return marker_seen_one_window_on(flasher, sector, window);
        }
    }
    // Both halves hold the same bytes and no erased sector can take a marker: whatever is
    // there, a read past `window` returns nothing the first half does not; treat it as wrapping.
    Ok(true)
}

/// Writes a marker into the erased sector at `sector`, checks whether it shows at
/// `sector + window`, and erases the sector again.
fn marker_seen_one_window_on<T: Transport>(
    flasher: &mut Flasher<T>,
    sector: u32,
    window: u32,
) -> Result<bool> {
    let marker: Vec<u8> = b"esp-flasher size probe "
        .iter()
        .cycle()
        .zip(0u32..)
        .map(|(byte, index)| byte ^ (index >> 5) as u8)
        .take(SECTOR_SIZE as usize)
        .collect();
    let options = WriteOptions {
        verify: false,
        ..WriteOptions::default()
    };
    flasher.write_flash(
        &[Region {
            address: sector,
            data: marker.clone(),
        }],
        &options,
    )?;
    let seen = flasher.flash_md5(sector + window, SECTOR_SIZE)? == md5_of(&marker);
    flasher.erase_region(sector, SECTOR_SIZE)?;
    Ok(seen)
}
