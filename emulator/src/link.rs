//! The serial line between the virtual chip and the host, with its faults.
//!
//! [`Link`] wraps a [`Device`] the way smoltcp's `FaultInjector` wraps a network device: it
//! passes bytes through and, on the way, loses, flips, garbles, prefixes or cuts them as the
//! [`LinkFaults`] say. Like the device it is sans-I/O: the caller owns the clock and the
//! port. The in-memory pairing used by tests and the pty front end both drive a `Link`.
//!
//! The line model:
//! - **Baud rates.** When baud modelling is on (`--realtime`), the host's rate (set on the
//!   port) and the chip's [`Device::uart_baud`] both matter. Bytes sent at one rate and
//!   sampled at another go through [`resample_uart`], a bit-level 8N1 UART receiver, so a
//!   mismatch gives the same kind of garbage as on hardware. Without it, rates are ignored,
//!   except that output at the ROM's boot-log rate (74880 baud) always reaches the host
//!   resampled at the host's rate.
//! - **Framing.** The chip's UART frames bytes 8N1. A host port set to other data bits,
//!   parity or stop bits ([`Link::set_host_framing`]) reads and sends through the same
//!   bit-level receiver ([`resample_framed`]), baud modelling or not, so a client that
//!   opens the port 7E1 gets the garbage a board would give it.
//! - **Preamble.** After power-up and every reset, the boot log (`boot-log`, sent at 74880
//!   baud and resampled at the host's rate) and `noise` bytes wait for the chip's first
//!   reply and go out just before it: on a real board they would arrive while the host
//!   opens the port and syncs, so this is when the host sees them. With
//!   `noise:bytes=N,before=sync` the noise comes before every SYNC reply instead, as when
//!   each connection attempt resets the chip and its boot log arrives first.
//! - **Loss and corruption.** `drop` loses bytes in both directions; `bitflip` flips one bit
//!   of chip→host bytes. Both draw from a ChaCha8 generator seeded by the caller, so the
//!   same seed and the same input give the same run.
//! - **Baud limit.** `baud-limit:max=BAUD,rate=R` models an adapter that cannot keep up:
//!   while the host's rate is above BAUD, each byte in either direction is lost with
//!   probability R (a FIFO overrun), from the same generator.
//! - **Disconnect.** After `disconnect:after=N` chip→host bytes (host→chip bytes with
//!   `from=host`) the cable is pulled: the link delivers nothing more either way until
//!   [`Link::replug`]. The fault fires once.
//! - **Modem lines.** DTR and RTS reach the board's reset wiring
//!   ([`Link::set_control_lines`]); with `no-rts` the adapter's driver does not pass RTS,
//!   which then stays deasserted.

use std::time::Duration;

use esp_protocol::packet::ROM_BAUD;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::boot::{self, ResetCause, BOOT_LOG_BAUD};
use crate::device::Device;
use crate::faults::{LinkFaults, MAX_NOISE_BYTES};
use crate::rfc2217::{ControlLines, Parity, PortSettings, StopBits};

/// How the chip's output starts when it answers SYNC: frame start, response, opcode 0x08.
const SYNC_REPLY_START: [u8; 3] = [0xC0, 0x01, 0x08];

/// How a [`Link`] behaves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkConfig {
    /// The faults to inject.
    pub faults: LinkFaults,
    /// Seed of the generator behind every random fault.
    pub seed: u64,
    /// Garble bytes when the host's and the chip's baud rates differ.
    pub model_baud: bool,
}

/// A [`Device`] behind a faulty serial line.
#[derive(Debug)]
pub struct Link {
    device: Device,
    faults: LinkFaults,
    model_baud: bool,
    rng: ChaCha8Rng,
    host_baud: u32,
    /// The framing the host's port is set to (the chip's UART is always 8N1).
    host_framing: Framing,
    /// Boot log and noise waiting for the chip's first reply.
    preamble: Vec<u8>,
    /// Chip→host bytes delivered so far.
    delivered: u64,
    /// Host→chip bytes delivered so far.
    received: u64,
    disconnected: bool,
}

impl Link {
    /// Puts `device`, just powered up, behind a line configured by `config`.
    pub fn new(device: Device, config: LinkConfig) -> Self {
        let mut link = Self {
            device,
            faults: config.faults,
            model_baud: config.model_baud,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            host_baud: ROM_BAUD,
            host_framing: Framing::EIGHT_N_ONE,
            preamble: Vec::new(),
            delivered: 0,
            received: 0,
            disconnected: false,
        };
        link.queue_preamble(ResetCause::PowerOn);
        link
    }

    /// The device behind the line.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The device behind the line, mutably.
    pub fn device_mut(&mut self) -> &mut Device {
        &mut self.device
    }

    /// Unwraps the device.
    pub fn into_device(self) -> Device {
        self.device
    }

    /// The baud rate the host's port is set to.
    pub fn host_baud(&self) -> u32 {
        self.host_baud
    }

    /// The line's faults, to change them mid-session (a test plugging in a worse adapter).
    pub fn faults_mut(&mut self) -> &mut LinkFaults {
        &mut self.faults
    }

    /// Tells the line the rate the host's port is set to.
    pub fn set_host_baud(&mut self, baud: u32) {
        self.host_baud = baud;
    }

    /// The framing the host's port is set to.
    pub fn host_framing(&self) -> Framing {
        self.host_framing
    }

    /// Tells the line the framing (data bits, parity, stop bits) the host's port is set to.
    /// The chip's UART frames 8N1: any other framing garbles bytes both ways, whether or not
    /// baud rates are modelled, as it would on a board.
    pub fn set_host_framing(&mut self, framing: Framing) {
        self.host_framing = framing;
    }

    /// True once the cable has been pulled and until [`Link::replug`].
    pub fn is_disconnected(&self) -> bool {
        self.disconnected
    }

    /// Host→chip: bytes the host sent, as they reach the chip.
    pub fn receive(&mut self, now: Duration, bytes: &[u8]) {
        if self.disconnected {
            return;
        }
        let mut bytes = self.drop_bytes(bytes.to_vec());
        bytes = self.overrun(bytes);
        if !bytes.is_empty() {
            self.device.measure_host_baud(now, self.host_baud);
        }
        let chip_baud = self.device.uart_baud();
        // Without baud modelling the host's rate counts as the chip's.
        let host_baud = if self.model_baud {
            self.host_baud
        } else {
            chip_baud
        };
        let (host, chip) = (
            (host_baud, self.host_framing),
            (chip_baud, Framing::EIGHT_N_ONE),
        );
        if host != chip {
            bytes = resample_framed(&bytes, host, chip);
        }
        if self.faults.disconnect_counts_host {
            if let Some(after) = self.faults.disconnect_after {
                let allowed = after.saturating_sub(self.received);
                if bytes.len() as u64 >= allowed {
                    bytes.truncate(allowed as usize);
                    self.disconnected = true;
                    self.faults.disconnect_after = None;
                }
            }
        }
        self.received += bytes.len() as u64;
        if !bytes.is_empty() {
            self.device.receive(now, &bytes);
        }
    }

    /// Chip→host: appends to `out` what the host receives by `now`.
    pub fn poll_output(&mut self, now: Duration, out: &mut Vec<u8>) {
        if self.disconnected {
            return;
        }
        let start = out.len();
        // The device stops at each change of its rate, so each piece has one rate.
        loop {
            let chip_baud = self.device.uart_baud();
            let piece_start = out.len();
            self.device.poll_output(now, out);
            if out.len() == piece_start {
                break;
            }
            let host_baud = if self.model_baud || chip_baud == BOOT_LOG_BAUD {
                self.host_baud
            } else {
                chip_baud
            };
            let host = (host_baud, self.host_framing);
            if (chip_baud, Framing::EIGHT_N_ONE) != host {
                let resampled =
                    resample_framed(&out[piece_start..], (chip_baud, Framing::EIGHT_N_ONE), host);
                out.truncate(piece_start);
                out.extend_from_slice(&resampled);
            }
            if self.device.uart_baud() == chip_baud {
                break;
            }
        }
        if out.len() == start {
            return;
        }
        // A clean line passes the bytes through where they are: no copy on the fast path.
        if self.alters_output() {
            let bytes = out.split_off(start);
            let bytes = self.apply_output_faults(bytes);
            out.extend_from_slice(&bytes);
        }
        self.delivered += (out.len() - start) as u64;
    }

    /// True when a fault may add, lose, change or cut chip→host bytes.
    fn alters_output(&self) -> bool {
        self.faults.noise_every_sync
            || !self.preamble.is_empty()
            || self.faults.drop_rate > 0.0
            || self.faults.baud_limit.is_some()
            || self.faults.bitflip_rate > 0.0
            || (self.faults.disconnect_after.is_some() && !self.faults.disconnect_counts_host)
    }

    fn apply_output_faults(&mut self, mut bytes: Vec<u8>) -> Vec<u8> {
        if self.faults.noise_every_sync && bytes.starts_with(&SYNC_REPLY_START) {
            let mut noise = vec![0; self.noise_bytes()];
            self.rng.fill_bytes(&mut noise);
            bytes.splice(0..0, noise);
        }
        if !self.preamble.is_empty() {
            bytes.splice(0..0, std::mem::take(&mut self.preamble));
        }
        let mut bytes = self.drop_bytes(bytes);
        bytes = self.overrun(bytes);
        self.flip_bits(&mut bytes);
        if let Some(after) = self
            .faults
            .disconnect_after
            .filter(|_| !self.faults.disconnect_counts_host)
        {
            let allowed = after.saturating_sub(self.delivered);
            if bytes.len() as u64 >= allowed {
                bytes.truncate(allowed as usize);
                self.disconnected = true;
                self.faults.disconnect_after = None;
            }
        }
        bytes
    }

    /// When the device next has output without further input, if it is waiting for time.
    pub fn next_output_at(&self) -> Option<Duration> {
        if self.disconnected {
            return None;
        }
        self.device.next_output_at()
    }

    /// Resets the chip (a board's auto-reset); the boot log and noise are sent again.
    pub fn reset(&mut self, now: Duration) {
        self.device.reset(now);
        self.queue_preamble(ResetCause::ExternalPin);
    }

    /// The host's DTR and RTS (see [`Device::set_control_lines`]); a reset they cause sends
    /// the boot log and noise again, as [`Link::reset`] does.
    pub fn set_control_lines(&mut self, now: Duration, mut lines: ControlLines) {
        if self.faults.rts_not_passed {
            lines.rts = false;
        }
        let held = self.device.in_reset();
        self.device.set_control_lines(now, lines.dtr, lines.rts);
        if !held && self.device.in_reset() {
            self.queue_preamble(ResetCause::ExternalPin);
        }
    }

    /// Plugs the cable back in after a disconnect: the chip powers up again.
    pub fn replug(&mut self, now: Duration) {
        self.disconnected = false;
        self.reset(now);
    }

    fn queue_preamble(&mut self, cause: ResetCause) {
        self.preamble.clear();
        if self.faults.boot_log {
            let log = boot::download_mode_log(cause);
            let garbled = resample_framed(
                log.as_bytes(),
                (BOOT_LOG_BAUD, Framing::EIGHT_N_ONE),
                (self.host_baud, self.host_framing),
            );
            self.preamble.extend_from_slice(&garbled);
        }
        if !self.faults.noise_every_sync {
            let start = self.preamble.len();
            self.preamble.resize(start + self.noise_bytes(), 0);
            self.rng.fill_bytes(&mut self.preamble[start..]);
        }
    }

    /// The noise to send; `--fault` parsing limits it, a library caller's value is clamped.
    fn noise_bytes(&self) -> usize {
        self.faults.noise_bytes.min(MAX_NOISE_BYTES)
    }

    fn chance(&mut self, rate: f64) -> bool {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        rate > 0.0 && ((self.rng.next_u64() >> 11) as f64 * SCALE) < rate
    }

    fn drop_bytes(&mut self, mut bytes: Vec<u8>) -> Vec<u8> {
        let rate = self.faults.drop_rate;
        if rate > 0.0 {
            bytes.retain(|_| !self.chance(rate));
        }
        bytes
    }

    /// `baud-limit`: loses bytes while the host's rate is above what the adapter carries.
    fn overrun(&mut self, mut bytes: Vec<u8>) -> Vec<u8> {
        let rate = self.faults.baud_limit_rate;
        if self
            .faults
            .baud_limit
            .is_some_and(|max| self.host_baud > max)
            && rate > 0.0
        {
            bytes.retain(|_| !self.chance(rate));
        }
        bytes
    }

    fn flip_bits(&mut self, bytes: &mut [u8]) {
        let rate = self.faults.bitflip_rate;
        if rate > 0.0 {
            for byte in bytes {
                if self.chance(rate) {
                    *byte ^= 1 << (self.rng.next_u32() % 8);
                }
            }
        }
    }
}

/// How a UART frames each byte on the line: data bits, parity and stop bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    /// Data bits, 5 to 8 (fewer than 8: the byte's high bits are not sent, and read as 0).
    pub data_bits: u8,
    /// The parity bit after the data, if any.
    pub parity: Parity,
    /// The stop bits that end the frame.
    pub stop_bits: StopBits,
}

impl Framing {
    /// The ESP8266 UART's framing, and the host's unless it sets another: 8 data bits, no
    /// parity, 1 stop bit.
    pub const EIGHT_N_ONE: Framing = Framing {
        data_bits: 8,
        parity: Parity::None,
        stop_bits: StopBits::One,
    };

    /// Bits a byte takes on the line: start, data, parity and stop bits.
    pub fn bits_per_byte(&self) -> f64 {
        let stop = match self.stop_bits {
            StopBits::One => 1.0,
            StopBits::OnePointFive => 1.5,
            StopBits::Two => 2.0,
        };
        1.0 + f64::from(self.data_bits) + f64::from(u8::from(self.parity != Parity::None)) + stop
    }

    /// Half-bit times one frame lasts.
    fn half_bits(&self) -> u64 {
        let stop = match self.stop_bits {
            StopBits::One => 2,
            StopBits::OnePointFive => 3,
            StopBits::Two => 4,
        };
        2 * (1 + u64::from(self.data_bits) + u64::from(self.parity != Parity::None)) + stop
    }

    /// The parity bit sent after `data` (its low `data_bits` bits), if there is one.
    fn parity_bit(&self, data: u8) -> Option<bool> {
        let ones = data.count_ones() % 2 == 1;
        match self.parity {
            Parity::None => None,
            Parity::Odd => Some(!ones),
            Parity::Even => Some(ones),
            Parity::Mark => Some(true),
            Parity::Space => Some(false),
        }
    }

    /// The bits of `byte` this framing sends.
    fn data_mask(&self) -> u8 {
        (0xFFu16 >> (8 - self.data_bits.clamp(5, 8))) as u8
    }
}

impl Default for Framing {
    fn default() -> Self {
        Framing::EIGHT_N_ONE
    }
}

impl From<PortSettings> for Framing {
    fn from(settings: PortSettings) -> Self {
        Framing {
            data_bits: settings.data_bits,
            parity: settings.parity,
            stop_bits: settings.stop_bits,
        }
    }
}

/// What an 8N1 UART receiving at `rx_baud` reads from `bytes` sent back to back at `tx_baud`.
///
/// Bit-level model: the line idles high; each byte is a low start bit, eight data bits LSB
/// first and a high stop bit. The receiver waits for a falling edge, checks the start bit
/// half a bit later, then samples eight data bits and the stop bit at the middle of each of
/// its own bit times. A low stop bit is a framing error, which Linux in raw mode delivers as
/// 0x00. Equal rates give the bytes back unchanged.
pub fn resample_uart(bytes: &[u8], tx_baud: u32, rx_baud: u32) -> Vec<u8> {
    resample_framed(
        bytes,
        (tx_baud, Framing::EIGHT_N_ONE),
        (rx_baud, Framing::EIGHT_N_ONE),
    )
}

/// [`resample_uart`] for any framing on either side: what a UART receiving at `rx`'s rate and
/// framing reads from `bytes` sent back to back at `tx`'s. A receiver that expects a parity
/// bit samples it and ignores it (a host port opened as pyserial opens it does not check
/// parity); a low first stop bit is a framing error, read as 0x00. The same rate and framing
/// give the bytes back unchanged.
pub fn resample_framed(bytes: &[u8], tx: (u32, Framing), rx: (u32, Framing)) -> Vec<u8> {
    let ((tx_baud, tx_framing), (rx_baud, rx_framing)) = (tx, rx);
    if tx == rx {
        return bytes.to_vec();
    }
    if tx_baud == 0 || rx_baud == 0 {
        // A line with no bit time carries nothing a UART could sample.
        return Vec::new();
    }
    // Time in units of 1 / (2 * tx_baud * rx_baud) s: half a sent bit lasts rx_baud units and
    // half a received bit lasts tx_baud units.
    let half_tx_bit = u64::from(rx_baud);
    let half_rx_bit = u64::from(tx_baud);
    let frame = tx_framing.half_bits();
    let total_halves = frame * bytes.len() as u64;
    let data_bits = u64::from(tx_framing.data_bits.clamp(5, 8));
    let level = |half: u64| -> bool {
        if half >= total_halves {
            return true;
        }
        let byte = bytes[(half / frame) as usize] & tx_framing.data_mask();
        let position = half % frame;
        if position < 2 {
            return false;
        }
        let bit = (position - 2) / 2;
        if bit < data_bits {
            return byte >> bit & 1 == 1;
        }
        match tx_framing.parity_bit(byte) {
            Some(parity) if bit == data_bits => parity,
            _ => true,
        }
    };
    let level_at = |time: u64| level(time / half_tx_bit);
    let rx_data_bits = u64::from(rx_framing.data_bits.clamp(5, 8));
    let stop_index = 1 + rx_data_bits + u64::from(rx_framing.parity != Parity::None);
    let mut received = Vec::new();
    let mut time = 0u64;
    loop {
        let first = time.div_ceil(half_tx_bit);
        let Some(edge_half) =
            (first..total_halves).find(|&half| !level(half) && (half == 0 || level(half - 1)))
        else {
            return received;
        };
        let edge = edge_half * half_tx_bit;
        if level_at(edge + half_rx_bit) {
            time = edge + half_rx_bit;
            continue;
        }
        let sample = |index: u64| level_at(edge + (2 * index + 1) * half_rx_bit);
        let byte = (0..rx_data_bits).fold(0u8, |byte, bit| byte | u8::from(sample(bit + 1)) << bit);
        received.push(if sample(stop_index) { byte } else { 0x00 });
        time = edge + (2 * stop_index + 1) * half_rx_bit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceConfig;
    use crate::flash::SpiFlash;
    use esp_protocol::packet::SYNC_PAYLOAD;

    fn link(faults: LinkFaults, seed: u64) -> Link {
        let device = Device::new(
            DeviceConfig::default(),
            SpiFlash::blank(256 * 1024).unwrap(),
        );
        let config = LinkConfig {
            faults,
            seed,
            model_baud: false,
        };
        Link::new(device, config)
    }

    /// Regression: a reset into the firmware by the reset wiring, polled in the same call
    /// that the chip restarts in, sent its boot log at the loader's 115200 by the link's
    /// count (the rate read before the restart), garbling it for a host at 74880.
    #[test]
    fn regression_boot_log_after_a_wired_reset_goes_at_74880() {
        use crate::device::{BootMode, CodeExecution, ResetWiring, STRAP_WINDOW};
        let mut flash = crate::sample_firmware::sonoff_like_flash(1 << 20, 0);
        flash[3] &= 0x0F; // a 512KB header: the SDK's init data check does not matter here
        let config = DeviceConfig {
            boot: BootMode::Flash,
            reset_wiring: ResetWiring::NodeMcu,
            execution: CodeExecution::StubModel,
            ..DeviceConfig::default()
        };
        let device = Device::new(config, SpiFlash::new(flash, Default::default()).unwrap());
        let mut link = Link::new(
            device,
            LinkConfig {
                model_baud: true,
                ..LinkConfig::default()
            },
        );
        // esptool's reset into the loader, then the chip answers at 115200.
        let ms = Duration::from_millis;
        link.set_control_lines(
            ms(0),
            ControlLines {
                dtr: false,
                rts: true,
            },
        );
        link.set_control_lines(
            ms(100),
            ControlLines {
                dtr: true,
                rts: false,
            },
        );
        link.set_control_lines(
            ms(150),
            ControlLines {
                dtr: false,
                rts: false,
            },
        );
        let mut out = Vec::new();
        link.poll_output(ms(400), &mut out);
        assert_eq!(link.device().uart_baud(), ROM_BAUD);
        // A hard reset into the firmware, and a host that reads at the boot log's rate.
        link.set_host_baud(BOOT_LOG_BAUD);
        link.set_control_lines(
            ms(500),
            ControlLines {
                dtr: false,
                rts: true,
            },
        );
        link.set_control_lines(
            ms(600),
            ControlLines {
                dtr: false,
                rts: false,
            },
        );
        let mut log = Vec::new();
        let end = ms(600) + STRAP_WINDOW + ms(100);
        while log.len() < 40 && link.next_output_at().is_some_and(|at| at <= end) {
            link.poll_output(end, &mut log);
        }
        let text = String::from_utf8_lossy(&log);
        assert!(
            text.contains("ets Jan  8 2013,rst cause:2, boot mode:(3,6)"),
            "{text:?}"
        );
    }

    /// Sends SYNC and returns everything the host receives.
    fn sync(link: &mut Link) -> Vec<u8> {
        let mut frame = vec![0xC0, 0x00, 0x08, SYNC_PAYLOAD.len() as u8, 0, 0, 0, 0, 0];
        frame.extend_from_slice(&SYNC_PAYLOAD);
        frame.push(0xC0);
        link.receive(Duration::ZERO, &frame);
        let mut out = Vec::new();
        link.poll_output(Duration::ZERO, &mut out);
        out
    }

    #[test]
    fn preamble_precedes_the_first_reply_after_each_reset() {
        let faults = LinkFaults {
            boot_log: true,
            noise_bytes: 16,
            ..LinkFaults::default()
        };
        let clean = sync(&mut link(LinkFaults::default(), 0));
        assert_eq!(clean.first(), Some(&0xC0));
        let mut faulty = link(faults.clone(), 7);
        let first = sync(&mut faulty);
        assert!(first.ends_with(&clean) && first.len() > clean.len() + 16);
        assert_eq!(sync(&mut faulty), clean, "only before the first reply");
        faulty.reset(Duration::ZERO);
        let after_reset = sync(&mut faulty);
        assert!(after_reset.len() > clean.len() + 16);
        assert_eq!(
            first,
            sync(&mut link(faults.clone(), 7)),
            "same seed, same bytes"
        );
        assert_ne!(
            first,
            sync(&mut link(faults, 8)),
            "another seed, other noise"
        );
    }

    #[test]
    fn noise_before_sync_precedes_every_sync_reply() {
        let faults = LinkFaults {
            noise_bytes: 8,
            noise_every_sync: true,
            ..LinkFaults::default()
        };
        let clean = sync(&mut link(LinkFaults::default(), 0));
        let mut noisy = link(faults, 1);
        for _ in 0..3 {
            let reply = sync(&mut noisy);
            assert_eq!(reply.len(), clean.len() + 8);
            assert!(reply.ends_with(&clean));
        }
    }

    #[test]
    fn regression_huge_noise_fault_overflows_the_preamble() {
        for noise_every_sync in [false, true] {
            let faults = LinkFaults {
                noise_bytes: usize::MAX,
                noise_every_sync,
                ..LinkFaults::default()
            };
            let clean = sync(&mut link(LinkFaults::default(), 0));
            let reply = sync(&mut link(faults, 0));
            assert_eq!(reply.len(), clean.len() + MAX_NOISE_BYTES);
        }
    }

    #[test]
    fn disconnect_from_host_counts_what_the_chip_received() {
        let faults = LinkFaults {
            disconnect_after: Some(10),
            disconnect_counts_host: true,
            ..LinkFaults::default()
        };
        let mut link = link(faults, 0);
        assert!(
            sync(&mut link).is_empty(),
            "the SYNC frame was cut after 10 bytes"
        );
        assert!(link.is_disconnected());
    }

    #[test]
    fn disconnect_cuts_the_stream_until_replugged() {
        let faults = LinkFaults {
            disconnect_after: Some(5),
            ..LinkFaults::default()
        };
        let clean = sync(&mut link(LinkFaults::default(), 0));
        let mut link = link(faults, 0);
        assert_eq!(sync(&mut link), clean[..5]);
        assert!(link.is_disconnected());
        assert!(sync(&mut link).is_empty());
        link.replug(Duration::ZERO);
        assert_eq!(sync(&mut link), clean, "the fault fires once");
    }

    #[test]
    fn drop_and_bitflip_corrupt_deterministically() {
        let faults = LinkFaults {
            drop_rate: 0.05,
            bitflip_rate: 0.05,
            ..LinkFaults::default()
        };
        let clean: Vec<u8> = (0..20)
            .flat_map(|_| sync(&mut link(LinkFaults::default(), 0)))
            .collect();
        let run = |seed| {
            let mut link = link(faults.clone(), seed);
            (0..20).flat_map(|_| sync(&mut link)).collect::<Vec<u8>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), clean);
    }

    #[test]
    fn baud_limit_loses_bytes_only_above_the_limit() {
        let faults = LinkFaults {
            baud_limit: Some(230_400),
            baud_limit_rate: 0.05,
            ..LinkFaults::default()
        };
        let clean: Vec<u8> = (0..20)
            .flat_map(|_| sync(&mut link(LinkFaults::default(), 0)))
            .collect();
        let run = |baud| {
            let mut link = link(faults.clone(), 3);
            link.set_host_baud(baud);
            (0..20).flat_map(|_| sync(&mut link)).collect::<Vec<u8>>()
        };
        assert_eq!(run(230_400), clean);
        let fast = run(921_600);
        assert!(fast.len() < clean.len(), "bytes are lost above the limit");
    }

    /// esptool's `--baud 9600` reaches a board at 9600 from the start: the ROM loader measures
    /// the rate of the host's first bytes after a reset, and keeps it until the next one.
    #[test]
    fn rom_loader_answers_at_the_rate_of_the_hosts_first_bytes() {
        let clean = sync(&mut link(LinkFaults::default(), 0));
        let mut link = link(LinkFaults::default(), 0);
        link.model_baud = true;
        link.set_host_baud(9_600);
        assert_eq!(sync(&mut link), clean);
        assert_eq!(link.device().uart_baud(), 9_600);
        link.set_host_baud(115_200);
        assert_ne!(
            sync(&mut link),
            clean,
            "the measured rate holds until a reset"
        );
        link.reset(Duration::ZERO);
        assert_eq!(sync(&mut link), clean);
        assert_eq!(link.device().uart_baud(), 115_200);
    }

    #[test]
    fn equal_rates_pass_bytes_through() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(resample_uart(&bytes, 115_200, 115_200), bytes);
    }

    #[test]
    fn the_bit_level_receiver_decodes_matching_rates() {
        // Same rate expressed differently would short-circuit; a 1 ppm error must not matter.
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(resample_uart(&bytes, 1_000_000, 1_000_001), bytes);
    }

    #[test]
    fn mismatched_rates_garble() {
        let message = b"\xc0\x01\x08\x04\x00\x07\x07\x12\x20\x00\x00\xc0";
        let slow = resample_uart(message, 74_880, 115_200);
        let fast = resample_uart(message, 460_800, 115_200);
        assert_ne!(slow, message);
        assert_ne!(fast, message);
        assert!(
            fast.len() < message.len(),
            "a slow receiver sees fewer bytes"
        );
        assert_eq!(
            slow,
            resample_uart(message, 74_880, 115_200),
            "deterministic"
        );
    }

    const SEVEN_E_ONE: Framing = Framing {
        data_bits: 7,
        parity: Parity::Even,
        stop_bits: StopBits::One,
    };

    #[test]
    fn framing_other_than_8n1_garbles_both_ways_as_on_a_board() {
        let clean = sync(&mut link(LinkFaults::default(), 0));
        // 7E1 from the host: the chip's 8N1 receiver takes the parity bit for bit 7 (SYNC's
        // 0x08 arrives as 0x88), so the SYNC is not understood.
        let mut seven_e_one = link(LinkFaults::default(), 0);
        seven_e_one.set_host_framing(SEVEN_E_ONE);
        let reply = sync(&mut seven_e_one);
        assert!(
            !reply.windows(3).any(|window| window == SYNC_REPLY_START),
            "a 7E1 SYNC was understood: {reply:02x?}"
        );
        // The chip's 8N1 reply read 7E1: seven data bits, the eighth lost.
        let read = resample_framed(
            &clean,
            (ROM_BAUD, Framing::EIGHT_N_ONE),
            (ROM_BAUD, SEVEN_E_ONE),
        );
        assert_ne!(read, clean);
        assert!(read.iter().all(|&byte| byte < 0x80));
        // Two stop bits are only a longer idle line: an 8N1 receiver reads them, as a chip does.
        let mut eight_n_two = link(LinkFaults::default(), 0);
        eight_n_two.set_host_framing(Framing {
            stop_bits: StopBits::Two,
            ..Framing::EIGHT_N_ONE
        });
        assert_eq!(sync(&mut eight_n_two), clean);
    }

    #[test]
    fn regression_a_zero_baud_rate_hung_the_resampler() {
        assert!(resample_uart(b"\xC0\x00\x08", 0, ROM_BAUD).is_empty());
        assert!(resample_uart(b"\xC0\x00\x08", ROM_BAUD, 0).is_empty());
    }

    #[test]
    fn a_parity_bit_where_the_stop_bit_should_be_is_a_framing_error() {
        let eight_e_one = Framing {
            parity: Parity::Even,
            ..Framing::EIGHT_N_ONE
        };
        // 0x01 has one bit set: even parity sends 1, read as the stop bit; 0x03 sends 0, a
        // framing error (0x00).
        let read = resample_framed(
            &[0x01, 0x03],
            (ROM_BAUD, eight_e_one),
            (ROM_BAUD, Framing::EIGHT_N_ONE),
        );
        assert_eq!(read[..2], [0x01, 0x00]);
    }

    #[test]
    fn boot_log_is_garbage_at_115200() {
        let log = boot::download_mode_log(ResetCause::PowerOn);
        let garbled = resample_uart(log.as_bytes(), BOOT_LOG_BAUD, ROM_BAUD);
        assert!(!garbled.is_empty());
        assert!(!garbled.windows(4).any(|window| window == b"boot"));
    }
}
