//! The FRC timers at 0x60000600, clocked by the APB clock through a prescaler.
//!
//! FRC1 (LOAD 0x00, COUNT 0x04, CTRL 0x08, INT 0x0C) counts its 23-bit value
//! down; writing LOAD also loads the counter. When the count reaches zero the
//! interrupt status (CTRL bit 8) is set and, with autoload (CTRL bit 6), the
//! counter reloads from LOAD; without it the counter wraps to 0x7FFFFF and goes
//! on. FRC2 (LOAD 0x20, COUNT 0x24, CTRL 0x28, INT 0x2C, ALARM 0x30) counts
//! its 32-bit value up and raises its status when the count reaches ALARM.
//!
//! CTRL: bit 0 selects a level (1) or edge (0) interrupt, bits 3:2 the
//! prescaler (0: 1, 1: 16, 2 and 3: 256), bit 7 runs the timer. A level
//! interrupt holds the line while the status is set; any write to INT clears
//! the status. An edge interrupt is a pulse per expiry (see
//! [`super::Machine`]'s interrupt lines).
//!
//! Time only moves when the machine advances: counts read between advances
//! are those of the last advance.

/// Register offsets inside the timer block.
pub(super) mod reg {
    pub const FRC1_LOAD: u32 = 0x00;
    pub const FRC1_COUNT: u32 = 0x04;
    pub const FRC1_CTRL: u32 = 0x08;
    pub const FRC1_INT: u32 = 0x0C;
    pub const FRC2_LOAD: u32 = 0x20;
    pub const FRC2_COUNT: u32 = 0x24;
    pub const FRC2_CTRL: u32 = 0x28;
    pub const FRC2_INT: u32 = 0x2C;
    pub const FRC2_ALARM: u32 = 0x30;
}

const CTRL_LEVEL_INTERRUPT: u32 = 1 << 0;
const CTRL_AUTOLOAD: u32 = 1 << 6;
const CTRL_ENABLE: u32 = 1 << 7;
/// The read-only interrupt status bit of CTRL.
const CTRL_STATUS: u32 = 1 << 8;
/// CTRL bits software can write.
const CTRL_WRITABLE: u32 = 0xFF;
/// FRC1's counter is 23 bits wide.
const FRC1_MASK: u32 = 0x7F_FFFF;
const FRC1_RESET_COUNT: u32 = FRC1_MASK;

/// APB ticks per counter tick for a CTRL value.
fn prescaler(ctrl: u32) -> u64 {
    match (ctrl >> 2) & 3 {
        0 => 1,
        1 => 16,
        _ => 256,
    }
}

/// What a timer did while time advanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Expiry {
    /// The timer expired at least once.
    pub fired: bool,
    /// Its interrupt is edge-triggered: one pulse for the expiries.
    pub edge: bool,
}

/// State shared by both timers: control, status and the time of the last update.
#[derive(Debug, Clone, Default)]
struct Control {
    ctrl: u32,
    status: bool,
    /// The APB tick at which `count` was last brought up to date.
    anchor: u64,
}

impl Control {
    fn enabled(&self) -> bool {
        self.ctrl & CTRL_ENABLE != 0
    }

    /// Counter ticks since the last update, which moves to `now`.
    fn elapsed(&mut self, now: u64) -> u64 {
        let divider = prescaler(self.ctrl);
        let elapsed = if self.enabled() {
            (now / divider).saturating_sub(self.anchor / divider)
        } else {
            0
        };
        self.anchor = now;
        elapsed
    }

    fn ctrl_value(&self) -> u32 {
        self.ctrl | if self.status { CTRL_STATUS } else { 0 }
    }

    fn expiry(&mut self, fired: bool) -> Expiry {
        self.status |= fired;
        Expiry {
            fired,
            edge: self.ctrl & CTRL_LEVEL_INTERRUPT == 0,
        }
    }

    fn level_pending(&self) -> bool {
        self.status && self.ctrl & CTRL_LEVEL_INTERRUPT != 0
    }

    /// APB ticks until `ticks` counter ticks have passed, from `now`.
    fn apb_ticks_for(&self, ticks: u64, now: u64) -> u64 {
        let divider = prescaler(self.ctrl);
        (ticks * divider).saturating_sub(now % divider).max(1)
    }
}

/// FRC1: the 23-bit down-counter.
#[derive(Debug, Clone)]
pub(super) struct Frc1 {
    control: Control,
    load: u32,
    count: u32,
}

impl Default for Frc1 {
    fn default() -> Self {
        Frc1 {
            control: Control::default(),
            load: 0,
            count: FRC1_RESET_COUNT,
        }
    }
}

impl Frc1 {
    /// Counter ticks from now until the count next reaches zero.
    fn ticks_to_expiry(&self) -> u64 {
        match self.count {
            0 => self.period(),
            count => u64::from(count),
        }
    }

    fn period(&self) -> u64 {
        if self.control.ctrl & CTRL_AUTOLOAD != 0 {
            u64::from(self.load.max(1))
        } else {
            u64::from(FRC1_MASK) + 1
        }
    }

    /// Brings the count up to APB tick `now`.
    pub(super) fn update(&mut self, now: u64) -> Expiry {
        let elapsed = self.control.elapsed(now);
        let to_expiry = self.ticks_to_expiry();
        if elapsed < to_expiry {
            self.count = self.count.wrapping_sub(elapsed as u32) & FRC1_MASK;
            return self.control.expiry(false);
        }
        let into_period = (elapsed - to_expiry) % self.period();
        self.count = if self.control.ctrl & CTRL_AUTOLOAD != 0 {
            if into_period == 0 {
                self.load
            } else {
                self.load - into_period as u32
            }
        } else {
            0u32.wrapping_sub(into_period as u32) & FRC1_MASK
        };
        self.control.expiry(true)
    }

    /// APB ticks from `now` until the next expiry, if the timer runs.
    pub(super) fn apb_ticks_to_expiry(&self, now: u64) -> Option<u64> {
        self.control
            .enabled()
            .then(|| self.control.apb_ticks_for(self.ticks_to_expiry(), now))
    }

    /// Reads a register (offset 0x00..0x10), up to date as of `now`.
    pub(super) fn read(&self, offset: u32) -> u32 {
        match offset {
            reg::FRC1_LOAD => self.load,
            reg::FRC1_COUNT => self.count,
            reg::FRC1_CTRL => self.control.ctrl_value(),
            _ => 0,
        }
    }

    /// Writes a register; call [`Frc1::update`] with the same `now` first.
    pub(super) fn write(&mut self, offset: u32, value: u32, now: u64) {
        match offset {
            reg::FRC1_LOAD => {
                self.load = value & FRC1_MASK;
                self.count = self.load;
            }
            reg::FRC1_CTRL => self.control.ctrl = value & CTRL_WRITABLE,
            reg::FRC1_INT => self.control.status = false,
            _ => {}
        }
        self.control.anchor = now;
    }

    /// The status holds a level-triggered interrupt line.
    pub(super) fn level_pending(&self) -> bool {
        self.control.level_pending()
    }
}

/// FRC2: the 32-bit up-counter with an alarm.
#[derive(Debug, Clone, Default)]
pub(super) struct Frc2 {
    control: Control,
    load: u32,
    count: u32,
    alarm: u32,
}

impl Frc2 {
    /// Counter ticks until the count next equals the alarm.
    fn ticks_to_alarm(&self) -> u64 {
        match self.alarm.wrapping_sub(self.count) {
            0 => 1 << 32,
            distance => u64::from(distance),
        }
    }

    /// Brings the count up to APB tick `now`.
    pub(super) fn update(&mut self, now: u64) -> Expiry {
        let elapsed = self.control.elapsed(now);
        let fired = elapsed >= self.ticks_to_alarm();
        self.count = self.count.wrapping_add(elapsed as u32);
        self.control.expiry(fired)
    }

    /// APB ticks from `now` until the alarm, if the timer runs.
    pub(super) fn apb_ticks_to_alarm(&self, now: u64) -> Option<u64> {
        self.control
            .enabled()
            .then(|| self.control.apb_ticks_for(self.ticks_to_alarm(), now))
    }

    /// Reads a register (offset 0x20..0x34).
    pub(super) fn read(&self, offset: u32) -> u32 {
        match offset {
            reg::FRC2_LOAD => self.load,
            reg::FRC2_COUNT => self.count,
            reg::FRC2_CTRL => self.control.ctrl_value(),
            reg::FRC2_ALARM => self.alarm,
            _ => 0,
        }
    }

    /// Writes a register; call [`Frc2::update`] with the same `now` first.
    pub(super) fn write(&mut self, offset: u32, value: u32, now: u64) {
        match offset {
            reg::FRC2_LOAD => {
                self.load = value;
                self.count = value;
            }
            reg::FRC2_CTRL => self.control.ctrl = value & CTRL_WRITABLE,
            reg::FRC2_INT => self.control.status = false,
            reg::FRC2_ALARM => self.alarm = value,
            _ => {}
        }
        self.control.anchor = now;
    }

    /// The status holds a level-triggered interrupt line.
    pub(super) fn level_pending(&self) -> bool {
        self.control.level_pending()
    }
}
