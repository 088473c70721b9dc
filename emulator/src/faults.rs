//! The `--fault SPEC` language: parses fault specifications into the three places faults
//! live — the device core ([`DeviceFaults`]), the serial line ([`LinkFaults`]) and the flash
//! chip ([`FlashFaults`]).
//!
//! The spec strings are a contract; scripts depend on them. Each spec is `KIND` or
//! `KIND:key=value,key=value`:
//!
//! | Spec | Where | Meaning |
//! |---|---|---|
//! | `short-read:frame=N,drop=K` | device | The N-th READ_FLASH data frame (1-based) loses its last K bytes. |
//! | `timeout:op=NAME,nth=N` | device | The N-th command (1-based) with esptool opcode name NAME (e.g. `FLASH_DEFL_DATA`, `SYNC`, `READ_FLASH`) gets no reply. May be repeated. |
//! | `bad-md5` | device | SPI_FLASH_MD5 replies with a wrong digest. |
//! | `bitflip:rate=R` | link | Each chip→host byte has one random bit flipped with probability R (e.g. `1e-5`). |
//! | `drop:rate=R` | link | Each byte, in either direction, is lost with probability R. |
//! | `disconnect:after=N` | link | After N chip→host bytes the cable is pulled: the pty hangs up (and is replugged once the client lets go). |
//! | `disconnect:after=N,from=host` | link | The same after N host→chip bytes: a given point in an upload, whichever client sends it. |
//! | `boot-log` | link | After power-up and every reset the ROM's boot message, sent at 74880 baud, precedes the first reply: garbage to a 115200 client. |
//! | `noise:bytes=N` | link | N random bytes (at most 65536) precede the first reply after power-up and every reset. |
//! | `noise:bytes=N,before=sync` | link | N random bytes (at most 65536) precede every reply to SYNC: a boot log or line noise on every connection attempt. |
//! | `baud-limit:max=BAUD[,rate=R]` | link | A USB adapter that cannot keep up above BAUD: while the host's port is set faster than BAUD, each byte in either direction is lost (an overrun) with probability R (default `1e-3`). esptool's `read-flash` then stops with `Corrupt data, expected 0x1000 bytes but received 0xffd bytes.` |
//! | `no-rts` | link | The adapter's driver does not pass RTS (as some CH340 drivers do): whatever the host sets, RTS stays deasserted, so an auto-reset circuit never pulls EN low and the chip is not reset. |
//! | `write-protect` | flash | The status register's block-protect bits cover the whole chip: writes and erases silently do nothing. |
//! | `stuck-sector:addr=ADDR` | flash | The 4 KiB sector holding ADDR (e.g. `0x10000`) will not erase. May be repeated. |
//! | `fake-size:real=SIZE` | flash | The ID claims the `--size` but only SIZE (e.g. `1MB`) is present: addresses wrap. |
//!
//! Numbers accept decimal or `0x` hex; sizes are `<N>KB` or `<N>MB`. Randomness comes from a
//! seeded [`ChaCha8Rng`](rand_chacha::ChaCha8Rng) (`--seed`), so a run is reproducible.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use esp_protocol::numbers::{parse_number, parse_size};
use esp_protocol::packet::Opcode;

use crate::device::{CommandTimeout, DeviceFaults, ShortRead};
use crate::flash::{FlashOptions, SECTOR_SIZE};

/// Byte loss rate of `baud-limit` when no `rate` is given.
pub const DEFAULT_BAUD_LIMIT_RATE: f64 = 1e-3;
/// Most bytes of `noise`: far more than any boot log, and each reset or SYNC reply
/// allocates them.
pub const MAX_NOISE_BYTES: usize = 65_536;

/// The accepted spec forms, quoted in every parse error.
pub const ACCEPTED_FORMS: &str = "short-read:frame=N,drop=K | timeout:op=NAME,nth=N | bad-md5 | \
bitflip:rate=R | drop:rate=R | disconnect:after=N[,from=host] | baud-limit:max=BAUD[,rate=R] | boot-log | noise:bytes=N[,before=sync] | no-rts | write-protect | \
stuck-sector:addr=0xADDR | fake-size:real=SIZE";

/// A `--fault` spec that could not be parsed; displays as one line naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpecError {
    spec: String,
    problem: String,
}

impl fmt::Display for FaultSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid --fault '{}': {}; accepted forms: {ACCEPTED_FORMS}",
            self.spec, self.problem
        )
    }
}

impl std::error::Error for FaultSpecError {}

/// One parsed fault spec.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// `short-read:frame=N,drop=K`.
    ShortRead(ShortRead),
    /// `timeout:op=NAME,nth=N`.
    Timeout(CommandTimeout),
    /// `bad-md5`.
    BadMd5,
    /// `bitflip:rate=R`.
    BitFlip {
        /// Probability that a chip→host byte has a bit flipped.
        rate: f64,
    },
    /// `drop:rate=R`.
    Drop {
        /// Probability that a byte is lost.
        rate: f64,
    },
    /// `disconnect:after=N[,from=host]`.
    Disconnect {
        /// Bytes delivered before the hang-up.
        after: u64,
        /// Count host→chip bytes rather than chip→host ones.
        from_host: bool,
    },
    /// `baud-limit:max=BAUD[,rate=R]`.
    BaudLimit {
        /// The fastest host rate the adapter carries cleanly.
        max: u32,
        /// Probability that a byte is lost while the host's rate is above `max`.
        rate: f64,
    },
    /// `boot-log`.
    BootLog,
    /// `noise:bytes=N[,before=sync]`.
    Noise {
        /// Random bytes sent before the first reply.
        bytes: usize,
        /// Before every SYNC reply rather than only the first reply after a reset.
        every_sync: bool,
    },
    /// `no-rts`.
    NoRts,
    /// `write-protect`.
    WriteProtect,
    /// `stuck-sector:addr=ADDR`.
    StuckSector {
        /// An address inside the sector that will not erase.
        addr: u32,
    },
    /// `fake-size:real=SIZE`.
    FakeSize {
        /// Bytes really present.
        real: usize,
    },
}

impl FromStr for Fault {
    type Err = FaultSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        parse_fault(spec).map_err(|problem| FaultSpecError {
            spec: spec.to_owned(),
            problem,
        })
    }
}

/// The largest value of the 32-bit parameters (frame and command counts, rates, addresses).
const U32_MAX: u64 = u32::MAX as u64;

/// Parses one spec, returning the problem on failure.
fn parse_fault(spec: &str) -> Result<Fault, String> {
    let (kind, params) = spec.split_once(':').unwrap_or((spec, ""));
    let mut params = Params::parse(params)?;
    let fault = match kind {
        "short-read" => Fault::ShortRead(ShortRead {
            frame: params.number_in("frame", 1, U32_MAX)?,
            drop: params.number("drop", 1)?,
        }),
        "timeout" => {
            let name = params.take("op")?;
            let opcode = Opcode::from_name(&name).ok_or_else(|| {
                format!("unknown opcode name '{name}' (use esptool's, e.g. FLASH_DEFL_DATA)")
            })?;
            Fault::Timeout(CommandTimeout {
                opcode: opcode as u8,
                nth: params.number_in("nth", 1, U32_MAX)?,
            })
        }
        "bad-md5" => Fault::BadMd5,
        "bitflip" => Fault::BitFlip {
            rate: params.rate("rate")?,
        },
        "drop" => Fault::Drop {
            rate: params.rate("rate")?,
        },
        "disconnect" => Fault::Disconnect {
            after: params.number("after", 0)?,
            from_host: match params.take_optional("from").as_deref() {
                None | Some("chip") => false,
                Some("host") => true,
                Some(other) => return Err(format!("'from={other}' must be chip or host")),
            },
        },
        "baud-limit" => Fault::BaudLimit {
            max: params.number_in("max", 1, U32_MAX)?,
            rate: match params.pairs.iter().any(|(key, _)| key == "rate") {
                true => params.rate("rate")?,
                false => DEFAULT_BAUD_LIMIT_RATE,
            },
        },
        "boot-log" => Fault::BootLog,
        "noise" => Fault::Noise {
            bytes: params.number_in("bytes", 1, MAX_NOISE_BYTES as u64)?,
            every_sync: match params.take_optional("before").as_deref() {
                None | Some("reset") => false,
                Some("sync") => true,
                Some(other) => return Err(format!("'before={other}' must be reset or sync")),
            },
        },
        "no-rts" => Fault::NoRts,
        "write-protect" => Fault::WriteProtect,
        "stuck-sector" => Fault::StuckSector {
            addr: params.number_in("addr", 0, U32_MAX)?,
        },
        "fake-size" => Fault::FakeSize {
            real: params.size("real")?,
        },
        _ => return Err(format!("unknown fault kind '{kind}'")),
    };
    params.finish()?;
    Ok(fault)
}

/// The `key=value` list of a spec, consumed key by key.
struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    fn parse(text: &str) -> Result<Self, String> {
        let mut pairs = Vec::new();
        for pair in text.split(',').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("parameter '{pair}' is not key=value"))?;
            if pairs.iter().any(|(seen, _)| seen == key) {
                return Err(format!("parameter '{key}' given twice"));
            }
            pairs.push((key.to_owned(), value.to_owned()));
        }
        Ok(Self { pairs })
    }

    /// A parameter that may be left out.
    fn take_optional(&mut self, key: &str) -> Option<String> {
        self.take(key).ok()
    }

    fn take(&mut self, key: &str) -> Result<String, String> {
        let index = self.pairs.iter().position(|(name, _)| name == key);
        match index {
            Some(index) => Ok(self.pairs.remove(index).1),
            None => Err(format!("missing parameter '{key}'")),
        }
    }

    /// An integer parameter, decimal or 0x hex, no smaller than `min`.
    fn number<T: TryFrom<u64>>(&mut self, key: &str, min: u64) -> Result<T, String> {
        self.number_in(key, min, u64::MAX)
    }

    /// An integer parameter, decimal or 0x hex, from `min` to `max`.
    fn number_in<T: TryFrom<u64>>(&mut self, key: &str, min: u64, max: u64) -> Result<T, String> {
        let text = self.take(key)?;
        let value = parse_number::<u64>(&text)
            .ok()
            .filter(|value| (min..=max).contains(value))
            .and_then(|value| T::try_from(value).ok());
        value.ok_or_else(|| match max {
            u64::MAX => {
                format!("'{key}={text}' must be an integer of at least {min} (decimal or 0x hex)")
            }
            _ => {
                format!("'{key}={text}' must be an integer from {min} to {max} (decimal or 0x hex)")
            }
        })
    }

    /// A size parameter in bytes, such as `1M`, `1MB` or `0x100000`.
    fn size(&mut self, key: &str) -> Result<usize, String> {
        let text = self.take(key)?;
        parse_size(&text).map_err(|error| format!("'{key}={text}': {error}"))
    }

    /// A probability parameter in 0..=1.
    fn rate(&mut self, key: &str) -> Result<f64, String> {
        let text = self.take(key)?;
        match text.parse::<f64>() {
            Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
            _ => Err(format!(
                "'{key}={text}' must be a probability from 0 to 1, e.g. 1e-5"
            )),
        }
    }

    fn finish(self) -> Result<(), String> {
        match self.pairs.first() {
            Some((key, _)) => Err(format!("unexpected parameter '{key}'")),
            None => Ok(()),
        }
    }
}

/// Faults of the serial line between the chip and the host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkFaults {
    /// Probability that a chip→host byte has one bit flipped.
    pub bitflip_rate: f64,
    /// Probability that a byte, in either direction, is lost.
    pub drop_rate: f64,
    /// Bytes delivered before the cable is pulled.
    pub disconnect_after: Option<u64>,
    /// [`LinkFaults::disconnect_after`] counts host→chip bytes instead of chip→host ones.
    pub disconnect_counts_host: bool,
    /// Send the ROM boot message at 74880 baud after power-up and every reset.
    pub boot_log: bool,
    /// Random bytes sent before the first reply after power-up and every reset.
    pub noise_bytes: usize,
    /// `baud-limit`: above this host rate, bytes are lost at [`LinkFaults::baud_limit_rate`].
    pub baud_limit: Option<u32>,
    /// Probability that a byte is lost while the host's rate is above [`LinkFaults::baud_limit`].
    pub baud_limit_rate: f64,
    /// Send the noise before every SYNC reply instead.
    pub noise_every_sync: bool,
    /// `no-rts`: the host's RTS never reaches the board; it stays deasserted.
    pub rts_not_passed: bool,
}

/// Faults of the flash chip, applied to its [`FlashOptions`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlashFaults {
    /// Whole-chip block protection: writes silently fail.
    pub write_protect: bool,
    /// Physical 4 KiB sector indices that will not erase.
    pub stuck_sectors: BTreeSet<usize>,
    /// Memory really present when smaller than the claimed size.
    pub real_size: Option<usize>,
}

impl FlashFaults {
    /// Sets the fault options of `options`, keeping its other fields.
    pub fn apply_to(&self, options: &mut FlashOptions) {
        options.write_protected |= self.write_protect;
        options.stuck_sectors.extend(&self.stuck_sectors);
        if self.real_size.is_some() {
            options.physical_size = self.real_size;
        }
    }
}

/// Every fault of a run, sorted by where it acts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// Faults the device core injects.
    pub device: DeviceFaults,
    /// Faults of the serial line.
    pub link: LinkFaults,
    /// Faults of the flash chip.
    pub flash: FlashFaults,
}

impl FaultPlan {
    /// Parses every spec, failing on the first bad one or on a single-valued fault given twice.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Self, FaultSpecError> {
        let mut plan = Self::default();
        for spec in specs {
            let spec = spec.as_ref();
            let fault = spec.parse()?;
            plan.add(fault).map_err(|problem| FaultSpecError {
                spec: spec.to_owned(),
                problem,
            })?;
        }
        Ok(plan)
    }

    /// Adds one fault; repeating a fault that has only one setting is an error.
    pub fn add(&mut self, fault: Fault) -> Result<(), String> {
        let repeated = match fault {
            Fault::ShortRead(short_read) => self.device.short_read.replace(short_read).is_some(),
            Fault::Timeout(timeout) => {
                self.device.timeouts.push(timeout);
                false
            }
            Fault::BadMd5 => std::mem::replace(&mut self.device.bad_md5, true),
            Fault::BitFlip { rate } => std::mem::replace(&mut self.link.bitflip_rate, rate) != 0.0,
            Fault::Drop { rate } => std::mem::replace(&mut self.link.drop_rate, rate) != 0.0,
            Fault::Disconnect { after, from_host } => {
                self.link.disconnect_counts_host = from_host;
                self.link.disconnect_after.replace(after).is_some()
            }
            Fault::BaudLimit { max, rate } => {
                self.link.baud_limit_rate = rate;
                self.link.baud_limit.replace(max).is_some()
            }
            Fault::BootLog => std::mem::replace(&mut self.link.boot_log, true),
            Fault::Noise { bytes, every_sync } => {
                self.link.noise_every_sync = every_sync;
                std::mem::replace(&mut self.link.noise_bytes, bytes) != 0
            }
            Fault::NoRts => std::mem::replace(&mut self.link.rts_not_passed, true),
            Fault::WriteProtect => std::mem::replace(&mut self.flash.write_protect, true),
            Fault::StuckSector { addr } => {
                !self.flash.stuck_sectors.insert(addr as usize / SECTOR_SIZE)
            }
            Fault::FakeSize { real } => self.flash.real_size.replace(real).is_some(),
        };
        if repeated {
            return Err("this fault is already set".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<Fault, String> {
        spec.parse::<Fault>().map_err(|error| error.to_string())
    }

    #[test]
    fn contract_specs_parse() {
        assert_eq!(
            parse("short-read:frame=1,drop=3"),
            Ok(Fault::ShortRead(ShortRead { frame: 1, drop: 3 }))
        );
        assert_eq!(
            parse("timeout:op=FLASH_DEFL_DATA,nth=1"),
            Ok(Fault::Timeout(CommandTimeout {
                opcode: 0x11,
                nth: 1
            }))
        );
        assert_eq!(
            parse("timeout:nth=2,op=read_flash"),
            Ok(Fault::Timeout(CommandTimeout {
                opcode: 0xD2,
                nth: 2
            }))
        );
        assert_eq!(parse("bad-md5"), Ok(Fault::BadMd5));
    }

    #[test]
    fn link_and_flash_specs_parse() {
        assert_eq!(
            parse("bitflip:rate=1e-5"),
            Ok(Fault::BitFlip { rate: 1e-5 })
        );
        assert_eq!(parse("drop:rate=0.5"), Ok(Fault::Drop { rate: 0.5 }));
        assert_eq!(
            parse("disconnect:after=0x100"),
            Ok(Fault::Disconnect {
                after: 256,
                from_host: false
            })
        );
        assert_eq!(
            parse("disconnect:after=9,from=host"),
            Ok(Fault::Disconnect {
                after: 9,
                from_host: true
            })
        );
        assert_eq!(
            parse("baud-limit:max=230400"),
            Ok(Fault::BaudLimit {
                max: 230_400,
                rate: 1e-3
            })
        );
        assert_eq!(
            parse("baud-limit:max=460800,rate=0.01"),
            Ok(Fault::BaudLimit {
                max: 460_800,
                rate: 0.01
            })
        );
        assert_eq!(parse("boot-log"), Ok(Fault::BootLog));
        assert_eq!(
            parse("noise:bytes=7"),
            Ok(Fault::Noise {
                bytes: 7,
                every_sync: false
            })
        );
        assert_eq!(
            parse("noise:bytes=7,before=sync"),
            Ok(Fault::Noise {
                bytes: 7,
                every_sync: true
            })
        );
        assert_eq!(parse("write-protect"), Ok(Fault::WriteProtect));
        assert_eq!(
            parse("stuck-sector:addr=0x10000"),
            Ok(Fault::StuckSector { addr: 0x10000 })
        );
        assert_eq!(
            parse("fake-size:real=1MB"),
            Ok(Fault::FakeSize { real: 1 << 20 })
        );
    }

    #[test]
    fn bad_specs_name_the_problem_and_the_accepted_forms() {
        for (spec, problem) in [
            ("bogus", "unknown fault kind 'bogus'"),
            ("short-read:frame=1", "missing parameter 'drop'"),
            (
                "short-read:frame=0,drop=3",
                "'frame=0' must be an integer from 1 to 4294967295",
            ),
            (
                "short-read:frame=1,drop=0",
                "'drop=0' must be an integer of at least 1",
            ),
            (
                "timeout:op=FLASH_NOPE,nth=1",
                "unknown opcode name 'FLASH_NOPE'",
            ),
            (
                "bitflip:rate=2",
                "'rate=2' must be a probability from 0 to 1",
            ),
            ("bad-md5:x=1", "unexpected parameter 'x'"),
            ("noise:bytes", "parameter 'bytes' is not key=value"),
            ("noise:bytes=1,bytes=2", "parameter 'bytes' given twice"),
            (
                "noise:bytes=1,before=later",
                "'before=later' must be reset or sync",
            ),
            (
                "fake-size:real=1GB",
                "'real=1GB': \"1GB\" is not a size (use e.g. 0x100000, 1048576, 1M or 1MB)",
            ),
        ] {
            let message = parse(spec).unwrap_err();
            assert!(
                message.starts_with(&format!("invalid --fault '{spec}': {problem}")),
                "{message}"
            );
            assert!(message.ends_with(ACCEPTED_FORMS), "{message}");
            assert!(!message.contains('\n'));
        }
    }

    #[test]
    fn regression_huge_noise_fault_panics_or_allocates_gigabytes() {
        for spec in [
            "noise:bytes=18446744073709551615",
            "noise:bytes=18446744073709551615,before=sync",
            "noise:bytes=3000000000",
            "noise:bytes=65537",
        ] {
            let message = parse(spec).unwrap_err();
            assert!(
                message.contains("must be an integer from 1 to 65536"),
                "{message}"
            );
        }
        assert_eq!(
            parse("noise:bytes=0x10000,before=sync"),
            Ok(Fault::Noise {
                bytes: MAX_NOISE_BYTES,
                every_sync: true
            })
        );
        // The other counts are 32-bit or only compared: too large is an error, not a wrap.
        for (spec, problem) in [
            ("short-read:frame=4294967296,drop=1", "'frame=4294967296'"),
            ("timeout:op=SYNC,nth=0x100000000", "'nth=0x100000000'"),
            ("baud-limit:max=99999999999", "'max=99999999999'"),
            ("stuck-sector:addr=0x100000000", "'addr=0x100000000'"),
            (
                "disconnect:after=18446744073709551616",
                "'after=18446744073709551616'",
            ),
        ] {
            let message = parse(spec).unwrap_err();
            assert!(message.contains(problem), "{message}");
        }
        assert!(parse("short-read:frame=1,drop=18446744073709551615").is_ok());
        assert!(parse("disconnect:after=18446744073709551615").is_ok());
    }

    #[test]
    fn plan_sorts_faults_and_rejects_repeats() {
        let plan = FaultPlan::parse(&[
            "timeout:op=SYNC,nth=1",
            "timeout:op=SYNC,nth=2",
            "stuck-sector:addr=0x1fff",
            "stuck-sector:addr=0x3000",
            "boot-log",
            "fake-size:real=256KB",
        ])
        .unwrap();
        assert_eq!(plan.device.timeouts.len(), 2);
        assert!(plan.link.boot_log);
        assert_eq!(plan.flash.stuck_sectors, BTreeSet::from([1, 3]));
        let mut options = FlashOptions::default();
        plan.flash.apply_to(&mut options);
        assert_eq!(options.physical_size, Some(256 * 1024));
        assert_eq!(options.stuck_sectors, BTreeSet::from([1, 3]));

        let error = FaultPlan::parse(&["bad-md5", "bad-md5"]).unwrap_err();
        assert!(error.to_string().contains("this fault is already set"));
    }

    #[test]
    fn regression_fake_size_refused_the_sizes_emu_accepts() {
        // `--port emu:1M,fault=fake-size:real=1M`: both halves read sizes the same way.
        for real in ["1M", "1MB", "1mb", "0x100000", "1048576"] {
            assert_eq!(
                parse(&format!("fake-size:real={real}")),
                Ok(Fault::FakeSize { real: 1 << 20 }),
                "{real}"
            );
        }
    }
}
