//! The hardware watchdog (its registers are esp-protocol's
//! `peripherals::watchdog`): CTRL (bit 0 enables it), the stage-0 and stage-1
//! timeouts (2^n units of 0.8 ms, n in bits 3:0), the current stage (read-only
//! here) and FEED, where writing FEED_VALUE restarts the count.
//!
//! Model: once enabled and not fed for stage 0 plus stage 1, the watchdog
//! bites: the chip must reset with cause "wdt reset". It is disabled after
//! reset; whoever boots the firmware enables it the way the ROM does, by
//! writing the registers. Not modelled: the stage-0 interrupt (ETS_WDT_INUM 8)
//! and the response-mode bits of CTRL, which are stored and read back.

use esp_protocol::peripherals::watchdog::reg;
pub use esp_protocol::peripherals::watchdog::FEED_VALUE;

const CTRL_ENABLE: u32 = 1 << 0;
/// One timeout unit: 0.8 ms, in picoseconds.
const UNIT_PS: u64 = 800_000_000;
const BLOCK_WORDS: usize = 64;

/// The watchdog's registers and count.
#[derive(Debug, Clone)]
pub(super) struct Watchdog {
    registers: [u32; BLOCK_WORDS],
    /// When the count last restarted (enable or feed), in picoseconds of machine time.
    fed_at_ps: u64,
    bitten: bool,
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog {
            registers: [0; BLOCK_WORDS],
            fed_at_ps: 0,
            bitten: false,
        }
    }
}

impl Watchdog {
    fn register(&self, offset: u32) -> u32 {
        self.registers[(offset as usize / 4) % BLOCK_WORDS]
    }

    fn enabled(&self) -> bool {
        self.register(reg::CTRL) & CTRL_ENABLE != 0
    }

    fn stage_ps(&self, offset: u32) -> u64 {
        UNIT_PS << (self.register(offset) & 0xF)
    }

    /// Reads a register at machine time `now_ps`.
    pub(super) fn read(&self, offset: u32, now_ps: u64) -> u32 {
        match offset {
            reg::STAGE => {
                let waited = now_ps.saturating_sub(self.fed_at_ps);
                u32::from(self.enabled() && waited >= self.stage_ps(reg::STAGE0_TIMEOUT))
            }
            reg::FEED => 0,
            _ => self.register(offset),
        }
    }

    /// Writes a register at machine time `now_ps`.
    pub(super) fn write(&mut self, offset: u32, value: u32, now_ps: u64) {
        match offset {
            reg::FEED => {
                if value == FEED_VALUE {
                    self.fed_at_ps = now_ps;
                }
            }
            reg::STAGE => {}
            _ => {
                if offset == reg::CTRL && !self.enabled() && value & CTRL_ENABLE != 0 {
                    self.fed_at_ps = now_ps;
                }
                self.registers[(offset as usize / 4) % BLOCK_WORDS] = value;
            }
        }
    }

    /// When (machine time, ps) the watchdog bites unless fed, if it is running.
    pub(super) fn deadline_ps(&self) -> Option<u64> {
        (self.enabled() && !self.bitten).then(|| {
            self.fed_at_ps
                .saturating_add(self.stage_ps(reg::STAGE0_TIMEOUT))
                .saturating_add(self.stage_ps(reg::STAGE1_TIMEOUT))
        })
    }

    /// True once, when the watchdog has run out by `now_ps`; it then stays quiet until reset.
    pub(super) fn check(&mut self, now_ps: u64) -> bool {
        let bites = self
            .deadline_ps()
            .is_some_and(|deadline| now_ps >= deadline);
        self.bitten |= bites;
        bites
    }
}
